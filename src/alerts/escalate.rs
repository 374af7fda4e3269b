//! Escalation policies: whom an alert reaches first, whom next when nobody acknowledges it in
//! time, how often it reminds, and the acknowledgement deadline (SLA) of fire alarms.
//!
//! Policies come from `[[escalation.policy]]` (first match wins) and then from the built-in
//! defaults, one per severity, so that a deployment overrides only what it must:
//!
//! | severity | step 1 (at once) | step 2 | step 3 | reminder | acknowledge within |
//! |---|---|---|---|---|---|
//! | critical | operators on duty | + fire-safety manager after 2 min | + town fire office after 5 min | every 5 min | 2 min |
//! | major | operators on duty | + fire-safety manager after 10 min | + town fire office after 30 min | every 30 min | — |
//! | minor | operators on duty | — | — | — | — |
//! | info | (recorded, not sent) | | | | |
//!
//! This module only decides; the pipeline keeps each alert's next step as a persisted timer
//! (`store::escalations`) and routing turns an audience into contacts.

use crate::model::alert::Alert;
use crate::model::{Kind, Severity};
use crate::settings::Problem;
use serde::{Deserialize, Serialize};

/// Who a step tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// The operators on duty in the control room covering the building.
    OnDuty,
    /// The building's fire-safety manager (消防安全管理人).
    Manager,
    /// The building's maintenance company.
    Maintenance,
    /// The town fire office.
    FireOffice,
}

impl Audience {
    /// Every audience.
    pub const ALL: [Audience; 4] = [
        Audience::OnDuty,
        Audience::Manager,
        Audience::Maintenance,
        Audience::FireOffice,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Audience::OnDuty => "on_duty",
            Audience::Manager => "manager",
            Audience::Maintenance => "maintenance",
            Audience::FireOffice => "fire_office",
        }
    }
}

/// One step: after `after_s` without acknowledgement (from the alert firing), `notify` is told.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Seconds after the alert fired (0 for the first step).
    #[serde(default)]
    pub after_s: u64,
    /// Who is told at this step (those of earlier steps are not told again).
    pub notify: Vec<Audience>,
}

/// One policy: which alerts it covers, its steps, reminders and deadline.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Name, shown in the alert history.
    pub name: String,
    /// Severities it covers (empty: every severity).
    #[serde(default)]
    pub severity: Vec<Severity>,
    /// Device kinds it covers (empty: every kind).
    #[serde(default)]
    pub kinds: Vec<Kind>,
    /// Buildings it covers (empty: every building).
    #[serde(default)]
    pub buildings: Vec<String>,
    /// Rules it covers (empty: every rule).
    #[serde(default)]
    pub rules: Vec<String>,
    /// Local time of day it covers, in the control room's time zone, `"22:00-06:00"`
    /// (crossing midnight when the end is before the start); absent: all day.
    #[serde(default)]
    pub hours: Option<String>,
    /// Steps, by increasing `after_s`; the first one has `after_s = 0`.
    pub steps: Vec<Step>,
    /// A reminder to everyone told so far every `repeat_s` while nobody acknowledged (0: none).
    #[serde(default)]
    pub repeat_s: u64,
    /// Acknowledge within this many seconds, else the alert is marked as missing its deadline
    /// (0: no deadline).
    #[serde(default)]
    pub ack_sla_s: u64,
}

/// A time of day window in minutes since local midnight, `[start, end)`, crossing midnight
/// when `end <= start`.
fn parse_hours(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-')?;
    let hm = |t: &str| -> Option<u16> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60 && t.trim().len() == 5).then_some(h * 60 + m)
    };
    Some((hm(a)?, hm(b)?))
}

impl Policy {
    /// Whether the policy covers `alert` at `minute` of the local day (`None`: the time of
    /// day is unknown, and only policies without `hours` cover it).
    pub fn covers(&self, alert: &Alert, minute: Option<u16>) -> bool {
        let any = |v: &[String], x: &str| v.is_empty() || v.iter().any(|y| y == x);
        (self.severity.is_empty() || self.severity.contains(&alert.severity))
            && (self.kinds.is_empty() || self.kinds.contains(&alert.kind))
            && any(&self.buildings, &alert.building)
            && any(&self.rules, &alert.rule)
            && match (&self.hours, minute) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(h), Some(m)) => match parse_hours(h) {
                    Some((a, b)) if a < b => a <= m && m < b,
                    Some((a, b)) => m >= a || m < b,
                    None => false,
                },
            }
    }

    /// The built-in policy of a severity.
    pub fn default_for(severity: Severity) -> Policy {
        let step = |after_s, notify: &[Audience]| Step {
            after_s,
            notify: notify.to_vec(),
        };
        let (steps, repeat_s, ack_sla_s) = match severity {
            Severity::Critical => (
                vec![
                    step(0, &[Audience::OnDuty]),
                    step(120, &[Audience::Manager]),
                    step(300, &[Audience::FireOffice]),
                ],
                300,
                120,
            ),
            Severity::Major => (
                vec![
                    step(0, &[Audience::OnDuty]),
                    step(600, &[Audience::Manager]),
                    step(1800, &[Audience::FireOffice]),
                ],
                1800,
                0,
            ),
            Severity::Minor => (vec![step(0, &[Audience::OnDuty])], 0, 0),
            Severity::Info => (Vec::new(), 0, 0),
        };
        Policy {
            name: format!("default {}", severity.as_str()),
            severity: vec![severity],
            kinds: Vec::new(),
            buildings: Vec::new(),
            rules: Vec::new(),
            hours: None,
            steps,
            repeat_s,
            ack_sla_s,
        }
    }
}

/// `[escalation]`
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EscalationConfig {
    /// Policies, first match wins; the built-in default of the alert's severity follows them.
    pub policy: Vec<Policy>,
}

impl EscalationConfig {
    /// The policy an alert follows (the built-in default of its severity when none matches).
    pub fn policy_for(&self, alert: &Alert, minute: Option<u16>) -> Policy {
        self.policy
            .iter()
            .find(|p| p.covers(alert, minute))
            .cloned()
            .unwrap_or_else(|| Policy::default_for(alert.severity))
    }

    /// A policy by name (configured, or a built-in `default <severity>`).
    pub fn named(&self, name: &str) -> Option<Policy> {
        self.policy
            .iter()
            .find(|p| p.name == name)
            .cloned()
            .or_else(|| {
                [
                    Severity::Critical,
                    Severity::Major,
                    Severity::Minor,
                    Severity::Info,
                ]
                .into_iter()
                .map(Policy::default_for)
                .find(|p| p.name == name)
            })
    }

    /// Every problem, with key paths `escalation.policy[i]…`.
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        for (i, p) in self.policy.iter().enumerate() {
            let key = |k: &str| format!("escalation.policy[{i}].{k}");
            if p.name.trim().is_empty() {
                out.push(Problem::new(key("name"), "a policy needs a name"));
            }
            if self.policy[..i].iter().any(|q| q.name == p.name) {
                out.push(Problem::new(
                    key("name"),
                    format!("{:?} is the name of an earlier policy", p.name),
                ));
            }
            if p.name.starts_with("default ") {
                out.push(Problem::new(
                    key("name"),
                    "names starting with \"default \" are the built-in policies'",
                ));
            }
            if let Some(h) = &p.hours {
                if parse_hours(h).is_none() {
                    out.push(Problem::new(
                        key("hours"),
                        format!("{h:?} is not HH:MM-HH:MM"),
                    ));
                }
            }
            match p.steps.first() {
                None if !p.severity.iter().all(|s| *s == Severity::Info)
                    || p.severity.is_empty() =>
                {
                    out.push(Problem::new(
                        key("steps"),
                        "a policy needs at least one step (info alerts are never sent)",
                    ))
                }
                Some(s) if s.after_s != 0 => out.push(Problem::new(
                    key("steps[0].after_s"),
                    "the first step is at once: after_s = 0",
                )),
                _ => {}
            }
            for (j, w) in p.steps.windows(2).enumerate() {
                if w[1].after_s <= w[0].after_s {
                    out.push(Problem::new(
                        key(&format!("steps[{}].after_s", j + 1)),
                        "steps must come later than the step before",
                    ));
                }
            }
            for (j, s) in p.steps.iter().enumerate() {
                if s.notify.is_empty() {
                    out.push(Problem::new(
                        key(&format!("steps[{j}].notify")),
                        format!(
                            "say who is told: {}",
                            Audience::ALL.map(Audience::as_str).join(", ")
                        ),
                    ));
                }
            }
        }
        out
    }
}

/// The next thing due on an escalation timer, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Step `n` (0-based index into the policy's steps).
    Step(usize),
    /// A reminder.
    Repeat,
    /// The acknowledgement deadline passed.
    Sla,
}

/// Where an alert's escalation stands (persisted by the store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    /// The policy's name.
    pub policy: String,
    /// When the alert fired (steps count from here).
    pub since: i64,
    /// The next step to take (index; `steps.len()` when all were taken).
    pub next_step: usize,
    /// When the next reminder is due (`None`: no reminders).
    pub repeat_at: Option<i64>,
    /// When the acknowledgement deadline passes (`None`: none, or passed already).
    pub sla_at: Option<i64>,
}

impl Timer {
    /// A timer for an alert that fired at `now` under `policy`; step 0 is taken at once by
    /// the caller, so the timer starts at step 1.
    pub fn start(policy: &Policy, now: i64) -> Timer {
        let ms = |s: u64| i64::try_from(s).unwrap_or(i64::MAX / 2) * 1000;
        Timer {
            policy: policy.name.clone(),
            since: now,
            next_step: 1,
            repeat_at: (policy.repeat_s > 0).then(|| now + ms(policy.repeat_s)),
            sla_at: (policy.ack_sla_s > 0).then(|| now + ms(policy.ack_sla_s)),
        }
    }

    /// When the next thing is due under `policy`, and what (`None`: nothing more).
    pub fn next(&self, policy: &Policy) -> Option<(i64, Due)> {
        let step = policy.steps.get(self.next_step).map(|s| {
            (
                self.since + i64::try_from(s.after_s).unwrap_or(i64::MAX / 2) * 1000,
                Due::Step(self.next_step),
            )
        });
        // At the same instant, the deadline is marked first, then the step, then a reminder.
        [
            self.sla_at.map(|t| (t, Due::Sla)),
            step,
            self.repeat_at.map(|t| (t, Due::Repeat)),
        ]
        .into_iter()
        .flatten()
        .min_by_key(|(t, _)| *t)
    }

    /// Records that `due` was handled at `now`.
    pub fn advance(&mut self, policy: &Policy, due: Due, now: i64) {
        match due {
            Due::Step(n) => self.next_step = n + 1,
            Due::Sla => self.sla_at = None,
            Due::Repeat => {
                let every = i64::try_from(policy.repeat_s).unwrap_or(i64::MAX / 2) * 1000;
                self.repeat_at =
                    (every > 0).then(|| now.max(self.repeat_at.unwrap_or(now)) + every);
            }
        }
    }

    /// Everyone told up to (not including) step `upto`.
    pub fn told(policy: &Policy, upto: usize) -> Vec<Audience> {
        let mut v: Vec<Audience> = policy
            .steps
            .iter()
            .take(upto)
            .flat_map(|s| s.notify.iter().copied())
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(severity: Severity, kind: Kind, building: &str) -> Alert {
        Alert::sample(severity, kind, building)
    }

    #[test]
    fn defaults_escalate_critical_after_two_minutes_and_major_after_ten() {
        let c = EscalationConfig::default();
        let p = c.policy_for(&alert(Severity::Critical, Kind::Transmitter, "b"), None);
        assert_eq!(p.name, "default critical");
        assert_eq!(p.steps[1].after_s, 120);
        assert_eq!(p.ack_sla_s, 120);
        let p = c.policy_for(&alert(Severity::Major, Kind::WaterPressure, "b"), None);
        assert_eq!(p.steps[1].after_s, 600);
        let p = c.policy_for(&alert(Severity::Minor, Kind::WaterPressure, "b"), None);
        assert_eq!(p.steps.len(), 1, "minor: no escalation");
        assert_eq!(p.repeat_s, 0);
        assert!(c.validate().is_empty());
        assert_eq!(c.named("default major").map(|p| p.steps.len()), Some(3));
    }

    #[test]
    fn the_first_matching_policy_wins_by_kind_building_and_hours() {
        let night = Policy {
            name: "night lanes".into(),
            severity: vec![Severity::Major],
            kinds: vec![Kind::FireLane],
            buildings: vec!["b1".into()],
            rules: Vec::new(),
            hours: Some("22:00-06:00".into()),
            steps: vec![Step {
                after_s: 0,
                notify: vec![Audience::OnDuty, Audience::Manager],
            }],
            repeat_s: 0,
            ack_sla_s: 0,
        };
        let c = EscalationConfig {
            policy: vec![night],
        };
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        let a = alert(Severity::Major, Kind::FireLane, "b1");
        assert_eq!(c.policy_for(&a, Some(23 * 60)).name, "night lanes");
        assert_eq!(c.policy_for(&a, Some(5 * 60 + 59)).name, "night lanes");
        assert_eq!(c.policy_for(&a, Some(6 * 60)).name, "default major");
        assert_eq!(c.policy_for(&a, None).name, "default major");
        let other = alert(Severity::Major, Kind::FireLane, "b2");
        assert_eq!(c.policy_for(&other, Some(23 * 60)).name, "default major");
    }

    #[test]
    fn a_timer_takes_steps_marks_the_deadline_and_reminds_in_order() {
        let p = Policy::default_for(Severity::Critical);
        let mut t = Timer::start(&p, 1_000);
        // 2 min: deadline first, then step 2 at the same instant.
        assert_eq!(t.next(&p), Some((121_000, Due::Sla)));
        t.advance(&p, Due::Sla, 121_000);
        assert_eq!(t.next(&p), Some((121_000, Due::Step(1))));
        t.advance(&p, Due::Step(1), 121_000);
        assert_eq!(
            Timer::told(&p, t.next_step),
            vec![Audience::OnDuty, Audience::Manager]
        );
        // 5 min: step 3 before the reminder of the same instant.
        assert_eq!(t.next(&p), Some((301_000, Due::Step(2))));
        t.advance(&p, Due::Step(2), 301_000);
        assert_eq!(t.next(&p), Some((301_000, Due::Repeat)));
        t.advance(&p, Due::Repeat, 301_000);
        assert_eq!(t.next(&p), Some((601_000, Due::Repeat)));
        // Handled late (after a restart): the next reminder counts from now.
        t.advance(&p, Due::Repeat, 700_000);
        assert_eq!(t.next(&p), Some((1_000_000, Due::Repeat)));
    }

    #[test]
    fn mistakes_in_policies_are_problems_with_their_keys() {
        let bad = Policy {
            name: "x".into(),
            severity: Vec::new(),
            kinds: Vec::new(),
            buildings: Vec::new(),
            rules: Vec::new(),
            hours: Some("25:00-06:00".into()),
            steps: vec![
                Step {
                    after_s: 5,
                    notify: vec![Audience::OnDuty],
                },
                Step {
                    after_s: 5,
                    notify: Vec::new(),
                },
            ],
            repeat_s: 0,
            ack_sla_s: 0,
        };
        let c = EscalationConfig {
            policy: vec![bad.clone(), bad],
        };
        let keys: Vec<String> = c.validate().into_iter().map(|p| p.key).collect();
        for k in [
            "escalation.policy[0].hours",
            "escalation.policy[0].steps[0].after_s",
            "escalation.policy[0].steps[1].after_s",
            "escalation.policy[0].steps[1].notify",
            "escalation.policy[1].name",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
        }
    }
}
