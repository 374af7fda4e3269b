//! (added) The daily summary (每日汇总) to each building's fire-safety manager: devices offline
//! now, data-quality findings, open alerts and work orders, and the false alarms of the last
//! 24 hours, once a day at `summary.at` in the local time of the control room watching the
//! building.
//!
//! - [`SummaryConfig`]: the `[summary]` settings;
//! - [`due_day`] and [`next_due`]: the schedule, pure (the instant is a parameter), with the
//!   duty roster's local-time handling ([`crate::duty::at_local`]);
//! - [`compose`]: what a summary says, read from the store in the caller's transaction through
//!   the same functions the inventory, the API and `firewatch report` use.
//!
//! The pipeline makes summaries (`pipeline/summaries.rs`): the snapshot goes into the store
//! with its outbox rows in one transaction, and each channel renders it when it sends
//! (`notify::render::summary`).

use crate::inventory;
use crate::model::alert::{alert_id, Classification, Status};
use crate::model::notification::ChannelKind;
use crate::model::summary::SummaryReason;
use crate::model::workorder::{workorder_id, WorkorderStatus};
use crate::model::{rfc3339, Millis, Severity};
use crate::registry::Registry;
use crate::rules::Rules;
use crate::settings::Problem;
use crate::store::{self, alerts, workorders, StoreError};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use rusqlite::Connection;
use serde::Deserialize;
use serde_json::{json, Value};

/// `[summary]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SummaryConfig {
    /// Send each building's fire-safety manager a summary every day (buildings without a
    /// manager get none). On-demand summaries (`POST /api/v1/summaries/send`) work either way.
    pub enabled: bool,
    /// When, `HH:MM`, in the time zone of the control room watching the building
    /// (`notify.tz` for a building no control room watches).
    pub at: String,
    /// Which channels carry it: `email`, `sms` (the manager's address and phone),
    /// `wecom`, `dingtalk` (the robots of the building's control room). Unset: the manager's
    /// own, as the duty roster has them (e-mail, and SMS when `[sms]` is configured).
    pub channels: Option<Vec<ChannelKind>>,
}

impl Default for SummaryConfig {
    fn default() -> Self {
        SummaryConfig {
            enabled: true,
            at: "08:00".into(),
            channels: None,
        }
    }
}

/// The default `summary.at`, minutes after midnight.
const DEFAULT_AT: u16 = 8 * 60;

impl SummaryConfig {
    /// Every problem of the `[summary]` settings.
    pub fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if crate::duty::parse_time_of_day(&self.at).is_none() {
            p.push(Problem::new(
                "summary.at",
                format!("{:?} is not a time HH:MM (00:00–23:59)", self.at),
            ));
        }
        if let Some(ch) = &self.channels {
            if ch.is_empty() {
                p.push(Problem::new(
                    "summary.channels",
                    "empty: leave it unset for the manager's own channels, or set enabled = false",
                ));
            }
            for (i, c) in ch.iter().enumerate() {
                if *c == ChannelKind::Webhook {
                    p.push(Problem::new(
                        format!("summary.channels[{i}]"),
                        "webhooks are integrations of alerts; use email, sms, wecom or dingtalk",
                    ));
                }
            }
        }
        p
    }

    /// `at` in minutes after midnight (08:00 when it does not parse, which
    /// [`SummaryConfig::validate`] reports).
    pub fn at_minute(&self) -> u16 {
        crate::duty::parse_time_of_day(&self.at).unwrap_or(DEFAULT_AT)
    }
}

/// The local date of `now` in `tz`.
pub fn local_day(tz: &TimeZone, now: Millis) -> Option<Date> {
    let t = jiff::Timestamp::from_millisecond(now).ok()?;
    Some(tz.to_datetime(t).date())
}

/// The local day whose summary is due at `now` (`at`: minutes after local midnight in `tz`):
/// today, from `at` until local midnight; `None` before `at`. A summary is made on its own
/// day only: a day firewatch was stopped over is not made up later, and after a restart the
/// day's summary is due again only if it was not made (the caller looks in the store).
pub fn due_day(tz: &TimeZone, at: u16, now: Millis) -> Option<Date> {
    let today = local_day(tz, now)?;
    let due = crate::duty::at_local(tz, today, at)?;
    (now >= due).then_some(today)
}

/// The first instant after `now` at which a day's summary becomes due: today's `at` when it
/// is still ahead, else tomorrow's.
pub fn next_due(tz: &TimeZone, at: u16, now: Millis) -> Millis {
    let fallback = now.saturating_add(3_600_000);
    let Some(today) = local_day(tz, now) else {
        return fallback;
    };
    match crate::duty::at_local(tz, today, at) {
        Some(t) if t > now => t,
        _ => today
            .tomorrow()
            .ok()
            .and_then(|d| crate::duty::at_local(tz, d, at))
            .filter(|t| *t > now)
            .unwrap_or(fallback),
    }
}

/// The schedule's in-memory side: when each building is next due, so a tick does no store
/// work for a building until then. The store (`store::summaries::scheduled_exists`) is the
/// truth after a restart: a day's summary made before it is not made again.
#[derive(Debug, Default)]
pub struct Schedule {
    next: std::collections::HashMap<String, Millis>,
}

impl Schedule {
    /// The local day (`YYYY-MM-DD`) to make `building`'s summary for at `now`, if one is due
    /// ([`due_day`]) and `made(day)` says it was not made yet; remembers when the building is
    /// next due ([`next_due`]). Before that, it answers `None` without asking `made`.
    pub fn due<E>(
        &mut self,
        building: &str,
        tz: &TimeZone,
        at: u16,
        now: Millis,
        made: impl FnOnce(&str) -> Result<bool, E>,
    ) -> Result<Option<String>, E> {
        if self.next.get(building).is_some_and(|n| now < *n) {
            return Ok(None);
        }
        let day = due_day(tz, at, now).map(|d| d.to_string());
        let todo = match day {
            Some(d) if !made(&d)? => Some(d),
            _ => None,
        };
        self.next.insert(building.to_owned(), next_due(tz, at, now));
        Ok(todo)
    }
}

/// How far back a summary looks for false alarms and new alerts.
pub const WINDOW_MS: Millis = 86_400_000;

/// Entries of each list a summary keeps (the counts are always whole).
pub const MAX_LISTED: usize = 50;

/// What a summary is about.
#[derive(Debug, Clone, Copy)]
pub struct About<'a> {
    /// Building id.
    pub building: &'a str,
    /// Its name (the registry's).
    pub building_name: Option<&'a str>,
    /// The local date it is for.
    pub day: &'a str,
    /// Why it is made.
    pub reason: SummaryReason,
}

fn severity_rank(s: Severity) -> u8 {
    match s {
        Severity::Critical => 0,
        Severity::Major => 1,
        Severity::Minor => 2,
        Severity::Info => 3,
    }
}

/// What the summary of `about` says at `now`, read in the caller's transaction (or any
/// connection): every device of the building with its state and findings
/// ([`inventory::devices`], as the API and `firewatch report devices|quality` show them), the
/// open alerts and work orders, the false alarms closed and the alerts fired in the last
/// [`WINDOW_MS`] (the same count as `GET /api/v1/reports/alerts`). Each list keeps at most
/// [`MAX_LISTED`] entries, worst first; `counts` are whole.
pub fn compose(
    c: &Connection,
    registry: &Registry,
    rules: &Rules,
    about: About<'_>,
    now: Millis,
) -> Result<Value, StoreError> {
    let b = about.building;
    let from = now - WINDOW_MS;
    let location = |device: &str| registry.device(device).and_then(|d| d.location.clone());

    let devices = inventory::devices(c, registry, rules, Some(b))?;
    let state = |d: &Value, s: &str| d["state"] == s;
    let brief = |d: &Value| json!({"id": d["id"], "kind": d["kind"], "location": d["location"]});
    let mut offline: Vec<&Value> = devices.iter().filter(|d| state(d, "offline")).collect();
    // Longest silent first (RFC 3339 UTC strings order as times do).
    offline.sort_by(|x, y| {
        let key = |d: &Value| d["last_seen"].as_str().unwrap_or("").to_owned();
        key(x).cmp(&key(y))
    });
    let offline_list: Vec<Value> = offline
        .iter()
        .take(MAX_LISTED)
        .map(|d| {
            let mut v = brief(d);
            v["last_seen"] = d["last_seen"].clone();
            v
        })
        .collect();
    let never: Vec<&Value> = devices
        .iter()
        .filter(|d| state(d, "never_seen") && d["registered"] == true)
        .collect();
    let findings: Vec<&Value> = devices
        .iter()
        .filter(|d| inventory::has_findings(d))
        .collect();
    let quality_list: Vec<Value> = findings
        .iter()
        .take(MAX_LISTED)
        .map(|d| {
            let mut v = brief(d);
            v["quality"] = d["quality"].clone();
            v
        })
        .collect();
    let online = devices.iter().filter(|d| state(d, "online")).count();

    let mut open = Vec::new();
    for status in [Status::Open, Status::Acknowledged] {
        let f = alerts::Filter {
            building: Some(b.to_owned()),
            status: Some(status),
            limit: 10_000,
            ..alerts::Filter::default()
        };
        open.extend(alerts::list(c, &f)?);
    }
    open.sort_by_key(|a| (severity_rank(a.severity), a.started_at, a.id));
    let open_critical = open
        .iter()
        .filter(|a| a.severity == Severity::Critical)
        .count();
    let open_list: Vec<Value> = open
        .iter()
        .take(MAX_LISTED)
        .map(|a| {
            json!({
                "id": alert_id(a.id), "rule": a.rule, "severity": a.severity.as_str(),
                "status": a.status.as_str(), "device": a.device, "channel": a.channel,
                "location": location(&a.device), "started_at": rfc3339(a.started_at),
                "message": a.message,
            })
        })
        .collect();

    let mut orders = Vec::new();
    for status in [WorkorderStatus::Open, WorkorderStatus::Rectified] {
        let f = workorders::Filter {
            building: Some(b.to_owned()),
            status: Some(status),
            limit: 10_000,
            ..workorders::Filter::default()
        };
        orders.extend(workorders::list(c, &f)?);
    }
    let overdue = |w: &workorders::Workorder| {
        w.overdue_at.is_some() || (w.status == WorkorderStatus::Open && w.deadline_at <= now)
    };
    // Overdue first, then by deadline.
    orders.sort_by_key(|w| (!overdue(w), w.deadline_at, w.id));
    let orders_overdue = orders.iter().filter(|w| overdue(w)).count();
    let order_list: Vec<Value> = orders
        .iter()
        .take(MAX_LISTED)
        .map(|w| {
            json!({
                "id": workorder_id(w.id), "status": w.status.as_str(), "rule": w.rule,
                "description": w.description, "deadline_at": rfc3339(w.deadline_at),
                "overdue": overdue(w), "alert": w.alert.map(alert_id),
            })
        })
        .collect();

    let limit = u32::try_from(MAX_LISTED).unwrap_or(u32::MAX);
    let (false_alarms, false_total) =
        alerts::closed_as(c, b, Classification::FalseAlarm, from, now + 1, limit)?;
    let false_list: Vec<Value> = false_alarms
        .iter()
        .map(|a| {
            json!({
                "id": alert_id(a.id), "rule": a.rule, "severity": a.severity.as_str(),
                "device": a.device, "location": location(&a.device),
                "started_at": rfc3339(a.started_at), "closed_at": a.closed_at.map(rfc3339),
                "closed_by": a.closed_by,
            })
        })
        .collect();

    let fired = store::reports::alerts(c, from, now + 1, Some(b))?;
    let fired_total: u64 = fired.iter().map(|r| r.alerts).sum();
    let by_severity: serde_json::Map<String, Value> = fired
        .iter()
        .map(|r| (r.severity.clone(), json!(r.alerts)))
        .collect();

    Ok(json!({
        "building": b,
        "building_name": about.building_name,
        "day": about.day,
        "reason": about.reason.as_str(),
        "created_at": rfc3339(now),
        "window": {"from": rfc3339(from), "until": rfc3339(now)},
        "counts": {
            "devices": devices.len(),
            "online": online,
            "offline": offline.len(),
            "never_seen": never.len(),
            "quality": findings.len(),
            "open_alerts": open.len(),
            "open_critical": open_critical,
            "workorders": orders.len(),
            "workorders_overdue": orders_overdue,
            "false_alarms": false_total,
            "alerts_fired": fired_total,
        },
        "offline": offline_list,
        "never_seen": never.iter().take(MAX_LISTED).map(|d| brief(d)).collect::<Vec<_>>(),
        "quality": quality_list,
        "open_alerts": open_list,
        "workorders": order_list,
        "false_alarms": false_list,
        "alerts_fired": by_severity,
    }))
}

#[cfg(test)]
mod tests;
