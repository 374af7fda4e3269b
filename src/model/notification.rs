//! Notifications as the outbox holds them: which channel, which target, which alert event, and
//! the alert as it was when the transition committed. Channels render it only when they send.

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
}

impl Event {
    /// Every event.
    pub const ALL: [Event; 7] = [
        Event::Fired,
        Event::Refired,
        Event::Cleared,
        Event::Repeat,
        Event::Closed,
        Event::Acknowledged,
        Event::Escalated,
    ];

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

/// The idempotency key of one notification: unique per (alert, transition, channel, target),
/// e.g. `a-000123:fired:42:webhook:ops`, where `42` is the transition's alert-history entry.
pub fn key(
    alert: i64,
    event: Event,
    transition: i64,
    channel: ChannelKind,
    target: &str,
) -> String {
    format!(
        "{}:{}:{transition}:{}:{target}",
        super::alert::alert_id(alert),
        event.as_str(),
        channel.as_str()
    )
}

/// One outbox row, as a channel's sender reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Row id.
    pub id: i64,
    /// The alert.
    pub alert_id: i64,
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
    /// The alert as committed with the transition (contract JSON, plus `location`).
    pub alert: Value,
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
            key(123, Event::Fired, 3, ChannelKind::Webhook, "ops"),
            "a-000123:fired:3:webhook:ops"
        );
    }
}
