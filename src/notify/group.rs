//! Grouping and rate limits, between the outbox and a channel: which due rows go out now, and
//! together in which message ([`Batch`]).
//!
//! **Grouping** (`[notify.group]`). New alarms (`fired`, `refired`, `escalated`) and the
//! follow-ups of alerts for one building and one target are a group. The first new alarm of a
//! group waits `wait_s` for company; after a group's message, what comes next for it waits
//! until `interval_s` after that message and then goes out as one. An alarm of `immediate`
//! severity or above (default `critical`: a fire alarm) does not wait for company: the first
//! of its building goes at once and takes whatever its group holds with it, and what follows
//! it is grouped as usual (the board shows every alarm as it comes, grouped or not). A retry
//! of a row that failed is never held again. Work orders and daily summaries are not grouped; webhooks
//! (integrations, not people) are grouped only with `webhooks = true`.
//!
//! **Rate limits** (`[notify.per_minute]`): at most that many messages per target in any 60 s
//! (WeCom and DingTalk robots take about 20 a minute each). When the groups ready for a target
//! exceed what its window allows, they are folded into one message of per-building summaries
//! instead; when the window is full, they wait for its first free place, not longer. Nothing
//! is dropped: every row goes out in some message, and its history names the message.
//!
//! The planner is pure (times are passed in), so grouping and limits are tested on made-up
//! times; its memory (messages in the last minute per target, the last message per group) is
//! lost on a restart, which can at most send one minute's limit again.

use crate::model::notification::{ChannelKind, Event, Notification, Subject};
use crate::model::{Millis, Severity};
use crate::settings::Problem;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// The window of the rate limits.
pub const WINDOW_MS: Millis = 60_000;

/// `[notify.group]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupConfig {
    /// How long the first new alarm of a building waits for others, seconds (0: none).
    pub wait_s: u64,
    /// After a building's message, how long what follows waits to go out together, seconds
    /// (0 with `wait_s = 0`: no grouping).
    pub interval_s: u64,
    /// Alarms of this severity or above go at once.
    pub immediate: Severity,
    /// Group webhook notifications too.
    pub webhooks: bool,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            wait_s: 10,
            interval_s: 30,
            immediate: Severity::Critical,
            webhooks: false,
        }
    }
}

impl GroupConfig {
    /// Every problem of the settings.
    pub fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        for (k, v) in [("wait_s", self.wait_s), ("interval_s", self.interval_s)] {
            if v > 3600 {
                p.push(Problem::new(
                    format!("notify.group.{k}"),
                    "must be at most 3600 (an hour)",
                ));
            }
        }
        p
    }
}

/// `[notify.per_minute]`: messages per target and minute, per channel (0: no limit).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PerMinute {
    /// Per e-mail address.
    pub email: u32,
    /// Per webhook.
    pub webhook: u32,
    /// Per WeCom robot (the robot takes 20).
    pub wecom: u32,
    /// Per DingTalk robot (the robot takes 20).
    pub dingtalk: u32,
    /// Per phone.
    pub sms: u32,
}

impl Default for PerMinute {
    fn default() -> Self {
        PerMinute {
            email: 0,
            webhook: 0,
            wecom: 20,
            dingtalk: 20,
            sms: 0,
        }
    }
}

impl PerMinute {
    /// The limit of `channel` (0: none).
    pub const fn of(&self, channel: ChannelKind) -> u32 {
        match channel {
            ChannelKind::Email => self.email,
            ChannelKind::Webhook => self.webhook,
            ChannelKind::Wecom => self.wecom,
            ChannelKind::Dingtalk => self.dingtalk,
            ChannelKind::Sms => self.sms,
        }
    }
}

/// One message: rows of one channel for one target, in id order. One row is sent as itself;
/// several are a digest.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The idempotency key: the row's own, or `digest:{channel}:{target}:{first id}:{rows}`.
    pub key: String,
    /// The rows, at least one.
    pub rows: Vec<Notification>,
}

impl Batch {
    /// A batch of one row.
    pub fn one(n: Notification) -> Batch {
        Batch {
            key: n.key.clone(),
            rows: vec![n],
        }
    }

    /// A batch of `rows` (not empty, one target), sorted by id.
    fn of(channel: ChannelKind, mut rows: Vec<Notification>) -> Batch {
        rows.sort_by_key(|r| r.id);
        if rows.len() == 1 {
            return Batch {
                key: rows[0].key.clone(),
                rows,
            };
        }
        let key = format!(
            "digest:{}:{}:{}:{}",
            channel.as_str(),
            rows[0].target,
            rows[0].id,
            rows.len()
        );
        Batch { key, rows }
    }

    /// The single row, when it is not a digest.
    pub fn single(&self) -> Option<&Notification> {
        match self.rows.as_slice() {
            [n] => Some(n),
            _ => None,
        }
    }

    /// Who it goes to.
    pub fn target(&self) -> &str {
        self.rows.first().map_or("", |r| r.target.as_str())
    }

    /// The buildings it tells of, in the order of their first row.
    pub fn buildings(&self) -> Vec<&str> {
        let mut v: Vec<&str> = Vec::new();
        for r in &self.rows {
            let b = building(r);
            if !v.contains(&b) {
                v.push(b);
            }
        }
        v
    }
}

/// The building a row tells of (`""` when its snapshot names none).
pub fn building(n: &Notification) -> &str {
    n.snapshot
        .get("building")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
}

/// The severity of a row's alert (`None` for work orders and summaries).
pub fn severity(n: &Notification) -> Option<Severity> {
    match n.subject {
        Subject::Alert(_) => n
            .snapshot
            .get("severity")
            .and_then(serde_json::Value::as_str)
            .and_then(|s| s.parse().ok()),
        Subject::Workorder(_) | Subject::Summary(_) => None,
    }
}

/// A new alarm (what a group's wait is for), as opposed to a follow-up.
pub const fn is_new_alarm(e: Event) -> bool {
    matches!(e, Event::Fired | Event::Refired | Event::Escalated)
}

/// What one planning round decided.
#[derive(Debug, Default)]
pub struct Plan {
    /// Messages to send now, oldest first.
    pub batches: Vec<Batch>,
    /// The earliest time a held row may go (`None`: nothing is held).
    pub next_at: Option<Millis>,
    /// Targets whose window was full this round.
    pub limited: u64,
    /// Messages that fold the groups of several buildings (their limit forced it).
    pub folded: u64,
}

/// A group: (target, building), or (target, `#row id`) for a row alone.
type GroupKey = (String, String);

/// Decides, round after round, which due rows of one channel go out together.
#[derive(Debug)]
pub struct Planner {
    channel: ChannelKind,
    grouping: bool,
    wait_ms: Millis,
    interval_ms: Millis,
    immediate: Severity,
    per_minute: usize,
    /// Send times in the last window, per target.
    sent: HashMap<String, VecDeque<Millis>>,
    /// The last message of each (target, building) group.
    last: HashMap<GroupKey, Millis>,
}

impl Planner {
    /// A planner for `channel` with the deployment's settings.
    pub fn new(channel: ChannelKind, group: &GroupConfig, per_minute: &PerMinute) -> Planner {
        let grouping = (group.wait_s > 0 || group.interval_s > 0)
            && (channel != ChannelKind::Webhook || group.webhooks);
        let ms = |s: u64| Millis::try_from(s.saturating_mul(1000)).unwrap_or(Millis::MAX);
        Planner {
            channel,
            grouping,
            wait_ms: ms(group.wait_s),
            interval_ms: ms(group.interval_s),
            immediate: group.immediate,
            per_minute: per_minute.of(channel) as usize,
            sent: HashMap::new(),
            last: HashMap::new(),
        }
    }

    /// The group a row belongs to: its target and building for an alert's row when grouping,
    /// else the row alone.
    fn group_of(&self, n: &Notification) -> GroupKey {
        match n.subject {
            Subject::Alert(_) if self.grouping => (n.target.clone(), building(n).to_owned()),
            _ => (n.target.clone(), format!("#{}", n.id)),
        }
    }

    /// When row `n` of group `g` may go.
    fn ready_at(&self, n: &Notification, g: &GroupKey) -> Millis {
        if !self.grouping || n.attempts > 0 || !matches!(n.subject, Subject::Alert(_)) {
            return Millis::MIN;
        }
        let new = is_new_alarm(n.event);
        let urgent = severity(n).is_some_and(|s| s >= self.immediate);
        let wait = if new && !urgent {
            n.created_at.saturating_add(self.wait_ms)
        } else {
            Millis::MIN
        };
        let after_last = self
            .last
            .get(g)
            .map_or(Millis::MIN, |t| t.saturating_add(self.interval_ms));
        wait.max(after_last)
    }

    /// Plans the round at `now` for `rows`: the channel's due rows not in flight.
    pub fn plan(&mut self, now: Millis, rows: Vec<Notification>) -> Plan {
        let mut plan = Plan::default();
        // Forget what no longer matters: sends out of the window, groups past their interval.
        for w in self.sent.values_mut() {
            while w.front().is_some_and(|t| *t <= now - WINDOW_MS) {
                w.pop_front();
            }
        }
        self.sent.retain(|_, w| !w.is_empty());
        let interval = self.interval_ms;
        self.last.retain(|_, t| t.saturating_add(interval) > now);

        // Groups, with the time each may go (its earliest row's).
        let mut groups: HashMap<GroupKey, (Millis, Vec<Notification>)> = HashMap::new();
        for n in rows {
            let g = self.group_of(&n);
            let at = self.ready_at(&n, &g);
            let e = groups.entry(g).or_insert((Millis::MAX, Vec::new()));
            e.0 = e.0.min(at);
            e.1.push(n);
        }
        // Ready groups per target, in the order of their oldest row.
        let mut ready: BTreeMap<String, Vec<(GroupKey, Vec<Notification>)>> = BTreeMap::new();
        for (g, (at, mut members)) in groups {
            if at <= now {
                members.sort_by_key(|r| r.id);
                ready.entry(g.0.clone()).or_default().push((g, members));
            } else {
                plan.next_at = Some(plan.next_at.map_or(at, |n| n.min(at)));
            }
        }
        for (target, mut gs) in ready {
            gs.sort_by_key(|(_, m)| m[0].id);
            let window = self.sent.entry(target).or_default();
            let room = if self.per_minute == 0 {
                usize::MAX
            } else {
                self.per_minute.saturating_sub(window.len())
            };
            if room == 0 {
                plan.limited += 1;
                if let Some(first) = window.front() {
                    let free = first + WINDOW_MS;
                    plan.next_at = Some(plan.next_at.map_or(free, |n| n.min(free)));
                }
                continue;
            }
            let keys: Vec<GroupKey> = gs.iter().map(|(g, _)| g.clone()).collect();
            if gs.len() <= room {
                for (_, members) in gs {
                    window.push_back(now);
                    plan.batches.push(Batch::of(self.channel, members));
                }
            } else {
                window.push_back(now);
                plan.folded += 1;
                let all = gs.into_iter().flat_map(|(_, m)| m).collect();
                plan.batches.push(Batch::of(self.channel, all));
            }
            for g in keys {
                if !g.1.starts_with('#') {
                    self.last.insert(g, now);
                }
            }
        }
        plan.batches.sort_by_key(|b| b.rows[0].id);
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(id: i64, building: &str, severity: &str, event: Event, at: Millis) -> Notification {
        Notification {
            id,
            subject: Subject::Alert(id),
            key: format!("k{id}"),
            event,
            channel: ChannelKind::Wecom,
            target: "duty".into(),
            created_at: at,
            attempts: 0,
            snapshot: json!({"building": building, "severity": severity}),
            lang: None,
            tz: None,
        }
    }

    fn ids(p: &Plan) -> Vec<Vec<i64>> {
        p.batches
            .iter()
            .map(|b| b.rows.iter().map(|r| r.id).collect())
            .collect()
    }

    fn planner(limit: u32) -> Planner {
        let per = PerMinute {
            wecom: limit,
            ..PerMinute::default()
        };
        Planner::new(ChannelKind::Wecom, &GroupConfig::default(), &per)
    }

    #[test]
    fn a_major_alarm_waits_for_company_and_goes_with_it() {
        let mut p = planner(0);
        let rows = vec![row(1, "b1", "major", Event::Fired, 0)];
        let plan = p.plan(1_000, rows.clone());
        assert!(plan.batches.is_empty());
        assert_eq!(plan.next_at, Some(10_000));
        let mut rows = rows;
        rows.push(row(2, "b1", "minor", Event::Fired, 4_000));
        rows.push(row(3, "b2", "major", Event::Fired, 5_000));
        let plan = p.plan(10_000, rows);
        assert_eq!(ids(&plan), vec![vec![1, 2]]);
        assert_eq!(plan.next_at, Some(15_000));
        assert_eq!(plan.batches[0].key, "digest:wecom:duty:1:2");
    }

    #[test]
    fn a_fire_alarm_goes_at_once_and_what_follows_is_grouped() {
        let mut p = planner(0);
        // A minor alarm waiting for company goes along with the fire alarm.
        let plan = p.plan(0, vec![row(1, "b1", "minor", Event::Fired, 0)]);
        assert!(plan.batches.is_empty());
        let fire = row(2, "b1", "critical", Event::Fired, 1_000);
        let plan = p.plan(1_000, vec![row(1, "b1", "minor", Event::Fired, 0), fire]);
        assert_eq!(ids(&plan), vec![vec![1, 2]]);
        // What follows, a second fire alarm too, waits for the interval after that message.
        let next = vec![
            row(3, "b1", "critical", Event::Cleared, 2_000),
            row(4, "b1", "critical", Event::Fired, 20_000),
        ];
        let plan = p.plan(20_000, next.clone());
        assert!(plan.batches.is_empty());
        assert_eq!(plan.next_at, Some(31_000));
        let plan = p.plan(31_000, next);
        assert_eq!(ids(&plan), vec![vec![3, 4]]);
        // Another building's fire alarm is not held by this one's interval.
        let plan = p.plan(32_000, vec![row(5, "b2", "critical", Event::Fired, 32_000)]);
        assert_eq!(ids(&plan), vec![vec![5]]);
        assert_eq!(plan.batches[0].key, "k5");
    }

    #[test]
    fn retries_and_work_orders_are_never_held() {
        let mut p = planner(0);
        let mut r = row(1, "b1", "major", Event::Fired, 0);
        r.attempts = 2;
        let mut w = row(2, "b1", "major", Event::WorkorderCreated, 0);
        w.subject = Subject::Workorder(2);
        let plan = p.plan(100, vec![r, w]);
        assert_eq!(ids(&plan), vec![vec![1], vec![2]]);
    }

    #[test]
    fn webhooks_are_not_grouped_unless_asked() {
        let g = GroupConfig::default();
        let mut p = Planner::new(ChannelKind::Webhook, &g, &PerMinute::default());
        let mut a = row(1, "b1", "major", Event::Fired, 0);
        let mut b = row(2, "b1", "major", Event::Fired, 0);
        a.channel = ChannelKind::Webhook;
        b.channel = ChannelKind::Webhook;
        let plan = p.plan(0, vec![a, b]);
        assert_eq!(ids(&plan), vec![vec![1], vec![2]]);
    }

    #[test]
    fn a_full_window_folds_buildings_into_one_message_and_waits_no_longer_than_it_must() {
        let mut p = planner(3);
        // Five buildings' fire alarms at once: more groups than the window's three places.
        let rows: Vec<_> = (1..=5)
            .map(|i| row(i, &format!("b{i}"), "critical", Event::Fired, 0))
            .collect();
        let plan = p.plan(0, rows);
        assert_eq!(ids(&plan), vec![vec![1, 2, 3, 4, 5]]);
        assert_eq!(plan.folded, 1);
        assert_eq!(plan.batches[0].buildings(), ["b1", "b2", "b3", "b4", "b5"]);
        // Two more, each alone: they fit the two places left.
        let plan = p.plan(1_000, vec![row(6, "b6", "critical", Event::Fired, 1_000)]);
        assert_eq!(ids(&plan), vec![vec![6]]);
        let plan = p.plan(2_000, vec![row(7, "b7", "critical", Event::Fired, 2_000)]);
        assert_eq!(ids(&plan), vec![vec![7]]);
        // The window is full: the next waits for the first place to free, at 60 s.
        let plan = p.plan(3_000, vec![row(8, "b8", "critical", Event::Fired, 3_000)]);
        assert!(plan.batches.is_empty());
        assert_eq!(plan.limited, 1);
        assert_eq!(plan.next_at, Some(60_000));
        let plan = p.plan(60_000, vec![row(8, "b8", "critical", Event::Fired, 3_000)]);
        assert_eq!(ids(&plan), vec![vec![8]]);
    }

    #[test]
    fn no_grouping_when_both_times_are_zero() {
        let g = GroupConfig {
            wait_s: 0,
            interval_s: 0,
            ..GroupConfig::default()
        };
        let mut p = Planner::new(ChannelKind::Email, &g, &PerMinute::default());
        let rows = vec![
            row(1, "b1", "major", Event::Fired, 0),
            row(2, "b1", "major", Event::Fired, 0),
        ];
        assert_eq!(ids(&p.plan(0, rows)), vec![vec![1], vec![2]]);
    }

    #[test]
    fn settings_are_checked() {
        let g = GroupConfig {
            wait_s: 7200,
            ..GroupConfig::default()
        };
        assert_eq!(g.validate()[0].key, "notify.group.wait_s");
        assert!(GroupConfig::default().validate().is_empty());
    }
}
