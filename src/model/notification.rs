//! Notifications as the outbox holds them: which channel, which target, which event of which
//! alert, work order or daily summary, and the subject as it was when the change committed.
//! Channels render it only when they send.

use super::Millis;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A way of telling people (the `channel` column of the outbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// E-mail over SMTP (or `.eml` files).
    Email,
    /// An HTTP POST of signed JSON.
    Webhook,
    /// A WeCom (企业微信) group robot.
    Wecom,
    /// A DingTalk (钉钉) group robot.
    Dingtalk,
    /// A text message through an HTTP SMS gateway.
    Sms,
}

impl ChannelKind {
    /// Every channel.
    pub const ALL: [ChannelKind; 5] = [
        ChannelKind::Email,
        ChannelKind::Webhook,
        ChannelKind::Wecom,
        ChannelKind::Dingtalk,
        ChannelKind::Sms,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Email => "email",
            ChannelKind::Webhook => "webhook",
            ChannelKind::Wecom => "wecom",
            ChannelKind::Dingtalk => "dingtalk",
            ChannelKind::Sms => "sms",
        }
    }

    /// Position in [`ChannelKind::ALL`] (for counters).
    pub const fn index(self) -> usize {
        match self {
            ChannelKind::Email => 0,
            ChannelKind::Webhook => 1,
            ChannelKind::Wecom => 2,
            ChannelKind::Dingtalk => 3,
            ChannelKind::Sms => 4,
        }
    }
}

/// The alert event a notification tells of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A new alert.
    Fired,
    /// An open, inactive alert became active again.
    Refired,
    /// The condition no longer holds.
    Cleared,
    /// Still active and not acknowledged: a reminder.
    Repeat,
    /// A person closed the alert.
    Closed,
    /// A person acknowledged the alert (told to everyone told of it before).
    Acknowledged,
    /// Nobody acknowledged in time: the next step of the escalation policy is told.
    Escalated,
    /// A hazard work order was raised: the building's fire-safety manager is to rectify it.
    WorkorderCreated,
    /// The manager reports the hazard rectified: the operators on duty check it (复查).
    WorkorderRectified,
    /// An operator sent the rectification back: the manager is to rectify again.
    WorkorderSentBack,
    /// The deadline passed unrectified: the manager and, for an order without an alert, the
    /// fire office are told (an alert's order escalates through the alert).
    WorkorderOverdue,
    /// An operator accepted the rectification: everyone told of the order hears it is closed.
    WorkorderClosed,
    /// (added) The daily summary of a building to its fire-safety manager.
    DailySummary,
}

impl Event {
    /// Every event.
    pub const ALL: [Event; 13] = [
        Event::Fired,
        Event::Refired,
        Event::Cleared,
        Event::Repeat,
        Event::Closed,
        Event::Acknowledged,
        Event::Escalated,
        Event::WorkorderCreated,
        Event::WorkorderRectified,
        Event::WorkorderSentBack,
        Event::WorkorderOverdue,
        Event::WorkorderClosed,
        Event::DailySummary,
    ];

    /// An event of a work order, not of an alert.
    pub const fn is_workorder(self) -> bool {
        matches!(
            self,
            Event::WorkorderCreated
                | Event::WorkorderRectified
                | Event::WorkorderSentBack
                | Event::WorkorderOverdue
                | Event::WorkorderClosed
        )
    }

    /// The notification event of a work-order change (`created`, `rectified`, `sent_back`,
    /// `accepted`, `overdue`).
    pub fn of_workorder(what: &str) -> Option<Event> {
        Some(match what {
            "created" => Event::WorkorderCreated,
            "rectified" => Event::WorkorderRectified,
            "sent_back" => Event::WorkorderSentBack,
            "overdue" => Event::WorkorderOverdue,
            "accepted" => Event::WorkorderClosed,
            _ => return None,
        })
    }

    /// A follow-up goes to whoever was told of the alert before, not to a routed audience.
    pub const fn is_follow_up(self) -> bool {
        matches!(
            self,
            Event::Cleared | Event::Repeat | Event::Closed | Event::Acknowledged
        )
    }

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Event::Fired => "fired",
            Event::Refired => "refired",
            Event::Cleared => "cleared",
            Event::Repeat => "repeat",
            Event::Closed => "closed",
            Event::Acknowledged => "acknowledged",
            Event::Escalated => "escalated",
            Event::WorkorderCreated => "workorder_created",
            Event::WorkorderRectified => "workorder_rectified",
            Event::WorkorderSentBack => "workorder_sent_back",
            Event::WorkorderOverdue => "workorder_overdue",
            Event::WorkorderClosed => "workorder_closed",
            Event::DailySummary => "daily_summary",
        }
    }
}

/// Delivery status of an outbox row: `pending` → `sent` | `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not delivered yet; attempted again at `next_attempt_at`.
    Pending,
    /// Accepted by the receiver.
    Sent,
    /// Given up on: a permanent refusal, or `notify.max_attempts` transient failures.
    Failed,
}

impl DeliveryStatus {
    /// Every status.
    pub const ALL: [DeliveryStatus; 3] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Sent,
        DeliveryStatus::Failed,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Failed => "failed",
        }
    }
}

wire_enum!(ChannelKind);
wire_enum!(Event);
wire_enum!(DeliveryStatus);

/// What a notification tells of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    /// An alert (row id).
    Alert(i64),
    /// A hazard work order (row id).
    Workorder(i64),
    /// (added) A daily summary (row id of `summaries`).
    Summary(i64),
}

impl Subject {
    /// The id people read: `a-000123`, `w-000001` or `s-000001`.
    pub fn id(self) -> String {
        match self {
            Subject::Alert(id) => super::alert::alert_id(id),
            Subject::Workorder(id) => super::workorder::workorder_id(id),
            Subject::Summary(id) => super::summary::summary_id(id),
        }
    }

    /// The alert's row id, for an alert.
    pub const fn alert(self) -> Option<i64> {
        match self {
            Subject::Alert(id) => Some(id),
            Subject::Workorder(_) | Subject::Summary(_) => None,
        }
    }

    /// The work order's row id, for a work order.
    pub const fn workorder(self) -> Option<i64> {
        match self {
            Subject::Workorder(id) => Some(id),
            Subject::Alert(_) | Subject::Summary(_) => None,
        }
    }

    /// The summary's row id, for a daily summary.
    pub const fn summary(self) -> Option<i64> {
        match self {
            Subject::Summary(id) => Some(id),
            Subject::Alert(_) | Subject::Workorder(_) => None,
        }
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.id())
    }
}

/// The idempotency key of one notification: unique per (subject, transition, channel,
/// target), e.g. `a-000123:fired:42:webhook:ops`, where `42` is the transition's alert-history
/// entry (a work order's: `w-000001:workorder_created:7:email:m@x.org`, its history entry).
pub fn key(
    subject: Subject,
    event: Event,
    transition: i64,
    channel: ChannelKind,
    target: &str,
) -> String {
    format!(
        "{subject}:{}:{transition}:{}:{target}",
        event.as_str(),
        channel.as_str()
    )
}

/// The idempotency key of one daily summary's notification: `summary:{building}:{day}:{channel}:{target}`
/// for the scheduled one of a local day (at most one per building and day, whatever restarts
/// happen), `summary:{building}:{day}:s-000007:{channel}:{target}` for one asked for on demand.
pub fn summary_key(
    building: &str,
    day: &str,
    on_demand: Option<i64>,
    channel: ChannelKind,
    target: &str,
) -> String {
    match on_demand {
        None => format!("summary:{building}:{day}:{}:{target}", channel.as_str()),
        Some(id) => format!(
            "summary:{building}:{day}:{}:{}:{target}",
            super::summary::summary_id(id),
            channel.as_str()
        ),
    }
}

/// One outbox row, as a channel's sender reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Row id.
    pub id: i64,
    /// The alert, work order or daily summary it tells of.
    pub subject: Subject,
    /// Idempotency key (see [`key`]).
    pub key: String,
    /// What happened.
    pub event: Event,
    /// How.
    pub channel: ChannelKind,
    /// An e-mail address, a webhook's or robot's configured name, or a phone number.
    pub target: String,
    /// When it was queued.
    pub created_at: Millis,
    /// Attempts so far.
    pub attempts: u32,
    /// The subject as committed with the transition: the alert (contract JSON, plus
    /// `location`), the work order (plus `building_name` and the step's `note`) or the daily
    /// summary (its snapshot).
    pub snapshot: Value,
    /// The recipient's language (`zh`, `en`), when it is not the deployment's.
    pub lang: Option<String>,
    /// The time zone of the control room covering the building (IANA name), if one does.
    pub tz: Option<String>,
}

/// How the messages of a transition should read, per target: the control room's time zone and
/// the targets of people who read English.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Look {
    /// IANA time zone of the control room covering the building.
    pub tz: Option<String>,
    /// Targets (addresses, phones) of people whose language is English.
    pub english: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_keys_are_unique_per_target() {
        for c in ChannelKind::ALL {
            assert_eq!(c.as_str().parse::<ChannelKind>(), Ok(c));
            assert_eq!(ChannelKind::ALL[c.index()], c);
        }
        for e in Event::ALL {
            assert_eq!(e.as_str().parse::<Event>(), Ok(e));
        }
        assert_eq!(
            key(
                Subject::Alert(123),
                Event::Fired,
                3,
                ChannelKind::Webhook,
                "ops"
            ),
            "a-000123:fired:3:webhook:ops"
        );
        assert_eq!(
            key(
                Subject::Workorder(7),
                Event::WorkorderCreated,
                9,
                ChannelKind::Email,
                "m@x"
            ),
            "w-000007:workorder_created:9:email:m@x"
        );
        for what in ["created", "rectified", "sent_back", "overdue", "accepted"] {
            assert!(Event::of_workorder(what).is_some_and(Event::is_workorder));
        }
        assert!(Event::ALL.iter().filter(|e| e.is_workorder()).count() == 5);
        assert!(!Event::DailySummary.is_workorder() && !Event::DailySummary.is_follow_up());
        assert_eq!(
            summary_key("b1", "2026-12-01", None, ChannelKind::Email, "m@x"),
            "summary:b1:2026-12-01:email:m@x"
        );
        assert_eq!(
            summary_key("b1", "2026-12-01", Some(7), ChannelKind::Sms, "138"),
            "summary:b1:2026-12-01:s-000007:sms:138"
        );
        assert_eq!(Subject::Summary(3).id(), "s-000003");
        assert_eq!(Subject::Summary(3).summary(), Some(3));
        assert_eq!(Subject::Summary(3).alert(), None);
    }
}
