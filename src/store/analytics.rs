//! (added) Drill reports: the drills and tests of buildings (silences in mode `drill` or
//! `test`) with what they recorded, and the monthly simulated fire transmission per building
//! (passed when a transmitter fire alarm arrived during a drill or test of that month).

use super::Result;
use crate::model::silence::{silence_id, State};
use crate::model::Millis;
use rusqlite::{params, Connection, OptionalExtension};

/// The rule of a fire alarm relayed by a building's transmitter.
pub const FIRE_ALARM_RULE: &str = "transmitter.fire_alarm";

/// One drill or test in a report.
#[derive(Debug, Clone, PartialEq)]
pub struct DrillRow {
    /// `s-000001`.
    pub id: String,
    /// Its building.
    pub building: String,
    /// `drill` or `test`.
    pub mode: String,
    /// From.
    pub starts_at: Millis,
    /// Until (a weekly window without an end: none).
    pub ends_at: Option<Millis>,
    /// `pending`, `active`, `waiting` or `expired`.
    pub state: String,
    /// Why.
    pub reason: String,
    /// Who set it.
    pub by: String,
    /// Alerts recorded during it.
    pub alerts: u64,
    /// Of them transmitter fire alarms (the simulated fire transmission).
    pub fire_alarms: u64,
    /// When the first fire alarm arrived.
    pub first_fire_alarm_at: Option<Millis>,
    /// `passed` (a fire alarm arrived), `missed` (over without one) or `pending`.
    pub result: &'static str,
}

impl DrillRow {
    /// The CSV header.
    pub const COLUMNS: &'static [&'static str] = &[
        "id",
        "building",
        "mode",
        "starts_at",
        "ends_at",
        "state",
        "reason",
        "by",
        "alerts",
        "fire_alarms",
        "first_fire_alarm_at",
        "result",
    ];
}

/// Alerts recorded during drill `id`: (all, fire alarms, first fire alarm).
fn recorded(c: &Connection, id: i64) -> Result<(u64, u64, Option<Millis>)> {
    Ok(c.prepare_cached(
        "SELECT count(*), coalesce(sum(a.rule = ?2), 0),
                min(CASE WHEN a.rule = ?2 THEN d.since END)
         FROM alert_drills d JOIN alerts a ON a.id = d.alert_id WHERE d.silence_id = ?1",
    )?
    .query_row(params![id, FIRE_ALARM_RULE], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?)
}

/// Drills and tests overlapping `[from, until)`, optionally of one building, oldest first.
pub fn drills(
    c: &Connection,
    from: Millis,
    until: Millis,
    building: Option<&str>,
    now: Millis,
) -> Result<Vec<DrillRow>> {
    let mut out = Vec::new();
    for s in super::silences::all(c)?.into_iter().rev() {
        let Some(b) = s.matchers.get("building").cloned() else {
            continue;
        };
        let end = s.expired_at.or(s.ends_at);
        let overlaps = s.starts_at < until && end.is_none_or(|e| e > from);
        if !s.mode.is_drill() || !overlaps || building.is_some_and(|x| x != b) {
            continue;
        }
        let (alerts, fire_alarms, first_fire_alarm_at) = recorded(c, s.id)?;
        let state = s.state(now);
        let result = if fire_alarms > 0 {
            "passed"
        } else if state == State::Expired {
            "missed"
        } else {
            "pending"
        };
        out.push(DrillRow {
            id: silence_id(s.id),
            building: b,
            mode: s.mode.as_str().to_owned(),
            starts_at: s.starts_at,
            ends_at: end,
            state: state.as_str().to_owned(),
            reason: s.reason.clone(),
            by: s.by.clone(),
            alerts,
            fire_alarms,
            first_fire_alarm_at,
            result,
        });
    }
    Ok(out)
}

/// One building's simulated fire transmission of a month.
#[derive(Debug, Clone, PartialEq)]
pub struct TransmissionRow {
    /// The building.
    pub building: String,
    /// Drills and tests of the building that began in the month.
    pub tests: u64,
    /// The first transmitter fire alarm recorded during one of them, and its alert.
    pub first: Option<(Millis, String)>,
}

impl TransmissionRow {
    /// The CSV header.
    pub const COLUMNS: &'static [&'static str] =
        &["building", "tests", "result", "fire_alarm_at", "alert"];

    /// `passed` or `missed`.
    pub const fn result(&self) -> &'static str {
        if self.first.is_some() {
            "passed"
        } else {
            "missed"
        }
    }
}

/// The simulated fire transmission of each of `buildings` in `[from, until)` (a month in the
/// control room's zone): passed when a transmitter fire alarm was recorded during a drill or
/// test of the building then.
pub fn fire_transmission(
    c: &Connection,
    buildings: &[String],
    from: Millis,
    until: Millis,
) -> Result<Vec<TransmissionRow>> {
    let drills = super::silences::all(c)?;
    let mut out = Vec::new();
    for b in buildings {
        let tests = drills
            .iter()
            .filter(|s| s.mode.is_drill() && s.matchers.get("building") == Some(b))
            .filter(|s| s.starts_at >= from && s.starts_at < until)
            .count() as u64;
        let first: Option<(Millis, i64)> = c
            .prepare_cached(
                "SELECT d.since, a.id FROM alert_drills d JOIN alerts a ON a.id = d.alert_id
                 WHERE a.building = ?1 AND a.rule = ?2 AND d.since >= ?3 AND d.since < ?4
                 ORDER BY d.since LIMIT 1",
            )?
            .query_row(params![b, FIRE_ALARM_RULE, from, until], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        out.push(TransmissionRow {
            building: b.clone(),
            tests,
            first: first.map(|(at, id)| (at, crate::model::alert::alert_id(id))),
        });
    }
    Ok(out)
}
