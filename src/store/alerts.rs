//! Alerts: one row per condition episode, at most one open per (rule, device, channel)
//! (a unique index enforces it), with a full history and the notifications of its transitions.
//!
//! The pipeline applies engine [`Transition`]s here inside its group-commit transaction, so an
//! alert, its history entry and its queued notification become durable together, before the
//! messages that caused them are acknowledged to the broker.

use super::sql::{Arg, Db, Row, Value as SqlValue};
use super::{Result, StoreError};
use crate::args;
pub use crate::model::alert::{
    alert_id, parse_alert_id, Alert, Classification, Confirmation, Status, Verification,
};
use crate::model::alert::{Change, Transition};
use crate::model::notification::{ChannelKind, Event, Subject};
use crate::model::{rfc3339, Millis};
use serde::Serialize;
use serde_json::{json, Value};

const COLUMNS: &str = "id, rule, severity, building, kind, device, channel, active, status, value,
    threshold, message, started_at, updated_at, cleared_at, acknowledged_at, acknowledged_by,
    closed_at, closed_by, classification, sla_missed_at";

fn from_row(r: &Row) -> Result<Alert> {
    Ok(Alert {
        id: r.get(0)?,
        rule: r.get(1)?,
        // Closed sets stored by their wire names: an unknown name is a corrupt row, not a
        // default.
        severity: r.wire(2)?,
        building: r.get(3)?,
        kind: r.wire(4)?,
        device: r.get(5)?,
        channel: r.get(6)?,
        active: r.get::<i64>(7)? != 0,
        status: r.wire(8)?,
        value: r.get(9)?,
        threshold: r.get(10)?,
        message: r.get(11)?,
        started_at: r.get(12)?,
        updated_at: r.get(13)?,
        cleared_at: r.get(14)?,
        acknowledged_at: r.get(15)?,
        acknowledged_by: r.get(16)?,
        closed_at: r.get(17)?,
        closed_by: r.get(18)?,
        classification: r.wire_opt(19)?,
        sla_missed_at: r.get(20)?,
    })
}

/// One history entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    /// When.
    pub at: String,
    /// fired, refired, cleared, repeat, acknowledged, closed, note, notified, notify_failed,
    /// notify_gave_up.
    pub what: String,
    /// Who (people actions).
    pub by: Option<String>,
    /// Note text.
    pub note: Option<String>,
    /// Extra detail (value, message; channel, target, attempt, error).
    pub detail: Option<Value>,
}

/// Who is told of an alert transition, and where the device is (decided by the routing stage).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Routed {
    /// (channel, target) pairs: an e-mail address, a webhook's or robot's name, a phone.
    pub targets: Vec<(ChannelKind, String)>,
    /// The device's location from the registry, shown in the notification.
    pub location: Option<String>,
    /// The building's name from the registry, shown in the notification.
    pub building_name: Option<String>,
    /// How the messages read: the control room's time zone, English-reading targets.
    pub look: crate::model::notification::Look,
    /// (added) Tell nobody, not even those told of the alert before (a flapping alert's
    /// clears and re-fires, an inhibited or shielded alert's follow-ups).
    pub quiet: bool,
}

/// Routes an alert transition to its targets (set by the routing stage).
pub type Route<'a> = &'a dyn Fn(&Alert, Event) -> Routed;

/// The open alert for a key, if any.
pub fn find_open(
    conn: &dyn Db,
    rule: &str,
    device: &str,
    channel: Option<&str>,
) -> Result<Option<Alert>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM alerts WHERE rule = ?1 AND device = ?2
         AND coalesce(channel, '') = coalesce(?3, '') AND status != 'closed'"
    );
    conn.row(&sql, args![rule, device, channel])?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// The alert an acknowledgement code names: of the alerts whose id is congruent to `residue`
/// (see [`crate::model::alert::ack_code_residue`]), the newest that is not closed, else the
/// newest (so that a late reply gets a clear conflict, not "unknown code").
pub fn by_code(conn: &dyn Db, residue: i64) -> Result<Option<Alert>> {
    let space = crate::model::alert::ack_code_space();
    let max: i64 = conn
        .one("SELECT coalesce(max(id), 0) FROM alerts", args![])?
        .unwrap_or(0);
    let mut newest = None;
    let mut id = residue + (max - residue).div_euclid(space) * space;
    while id > 0 {
        if let Some(a) = get(conn, id)? {
            if a.status != Status::Closed {
                return Ok(Some(a));
            }
            newest.get_or_insert(a);
        }
        id -= space;
    }
    Ok(newest)
}

/// One alert.
pub fn get(conn: &dyn Db, id: i64) -> Result<Option<Alert>> {
    let sql = format!("SELECT {COLUMNS} FROM alerts WHERE id = ?1");
    conn.row(&sql, args![id])?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// The confirmation side of an alert: its on-site check and its work order.
pub fn confirmation(conn: &dyn Db, id: i64) -> Result<Confirmation> {
    let c = conn
        .row(
            "SELECT verified_at, verified_by, verification, called_119_at,
             (SELECT max(w.id) FROM workorders w WHERE w.alert_id = a.id)
             FROM alerts a WHERE a.id = ?1",
            args![id],
        )?
        .map(|r| {
            Ok::<_, StoreError>(Confirmation {
                verified_at: r.get(0)?,
                verified_by: r.get(1)?,
                verification: r.wire_opt(2)?,
                called_119_at: r.get(3)?,
                workorder: r.get(4)?,
            })
        })
        .transpose()?;
    Ok(c.unwrap_or_default())
}

/// The contract JSON of an alert (section 3) with its confirmation fields.
pub fn json(conn: &dyn Db, alert: &Alert, notes: Vec<Value>) -> Result<Value> {
    let mut j = alert.to_json(notes);
    confirmation(conn, alert.id)?.apply(&mut j);
    // (added) The silence holding its notifications back, if one does.
    j["silenced"] = match super::silences::mark_of(conn, alert.id)? {
        Some((s, since)) => json!({
            "silence": crate::model::silence::silence_id(s),
            "since": crate::model::rfc3339(since),
        }),
        None => Value::Null,
    };
    // (added) The drill or test it fired during.
    j["drill"] = match super::silences::drill_of(conn, alert.id)? {
        Some((s, mode, since)) => json!({
            "drill": crate::model::silence::silence_id(s),
            "mode": mode,
            "since": crate::model::rfc3339(since),
        }),
        None => Value::Null,
    };
    // (added) Held back by an inhibiting alert or a shielded point; holding others back.
    let (inhibited, shielded) = super::holds::json_of(conn, alert.id)?;
    j["inhibited"] = inhibited;
    j["shielded"] = shielded;
    j["inhibits"] = super::holds::inhibiting(conn, alert.id)?.into();
    j["flapping"] = match super::holds::flap_of(conn, alert.id)? {
        Some(f) => json!({
            "since": crate::model::rfc3339(f.since),
            "changes": f.changes,
            "last_change": crate::model::rfc3339(f.last_change),
        }),
        None => Value::Null,
    };
    Ok(j)
}

fn history(
    conn: &dyn Db,
    id: i64,
    at: Millis,
    what: &str,
    by: Option<&str>,
    note: Option<&str>,
    detail: Option<Value>,
) -> Result<i64> {
    let detail = detail.map(|d| d.to_string());
    inserted(
        conn,
        "INSERT INTO alert_history (alert_id, at, what, by, note, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        args![id, at, what, by, note, detail.as_deref()],
        "alert history",
    )
}

/// Runs an `INSERT … RETURNING id`; the id.
fn inserted(conn: &dyn Db, sql: &str, args: &[Arg<'_>], what: &'static str) -> Result<i64> {
    conn.one(sql, args)?.ok_or(StoreError::Corrupt {
        what,
        err: "no id returned".into(),
    })
}

/// Records a notification attempt outcome in the alert's history.
pub fn record_notification(
    conn: &dyn Db,
    alert: i64,
    at: Millis,
    what: &str,
    detail: Value,
) -> Result<()> {
    history(conn, alert, at, what, None, None, Some(detail)).map(|_| ())
}

/// Queues the notifications of a transition (its history entry `transition`): the alert as
/// committed now, for every target the route names. Returns whether any were queued.
fn enqueue(
    conn: &dyn Db,
    alert: &Alert,
    event: Event,
    transition: i64,
    route: Route<'_>,
    now: Millis,
) -> Result<bool> {
    enqueue_with(conn, alert, event, transition, route, now, None)
}

/// [`enqueue`] with one more field in the snapshot (what the renderer needs to tell).
fn enqueue_with(
    conn: &dyn Db,
    alert: &Alert,
    event: Event,
    transition: i64,
    route: Route<'_>,
    now: Millis,
    extra: Option<(&str, Value)>,
) -> Result<bool> {
    let mut routed = route(alert, event);
    if routed.quiet {
        return Ok(false);
    }
    if event.is_follow_up() {
        routed.targets = super::notifications::told(conn, Subject::Alert(alert.id))?;
    }
    if routed.targets.is_empty() {
        return Ok(false);
    }
    let notes = if event == Event::Closed {
        notes_of(&history_of(conn, alert.id)?)
    } else {
        Vec::new()
    };
    let mut snapshot = json(conn, alert, notes)?;
    if let Some((k, v)) = extra {
        snapshot[k] = v;
    }
    snapshot["location"] = routed.location.into();
    snapshot["building_name"] = routed.building_name.into();
    super::notifications::enqueue(
        conn,
        Subject::Alert(alert.id),
        event,
        transition,
        super::notifications::Recipients {
            targets: &routed.targets,
            look: &routed.look,
        },
        &snapshot,
        now,
    )?;
    Ok(true)
}

/// (added) A silence holds back the notifications of `alert` (which fired while it covered
/// the alert): marked, with a `silenced` history entry. Returns false when it already was.
pub fn silence(
    conn: &dyn Db,
    alert: i64,
    s: &crate::model::silence::Silence,
    now: Millis,
) -> Result<bool> {
    if super::silences::mark_of(conn, alert)?.is_some() {
        return Ok(false);
    }
    super::silences::mark(conn, alert, s.id, now)?;
    let detail = json!({
        "silence": crate::model::silence::silence_id(s.id),
        "reason": s.reason,
        "by": s.by,
        "ends_at": s.ends_at.map(rfc3339),
    });
    history(conn, alert, now, "silenced", None, None, Some(detail))?;
    Ok(true)
}

/// (added) `alert` fired during drill `s` of its building: marked for good, classified `test`
/// (a person closing it may still say otherwise), with a `drill` history entry. Returns false
/// when it already was.
pub fn drill(
    conn: &dyn Db,
    alert: i64,
    s: &crate::model::silence::Silence,
    now: Millis,
) -> Result<bool> {
    if !super::silences::mark_drill(conn, alert, s, now)? {
        return Ok(false);
    }
    conn.exec(
        "UPDATE alerts SET classification = 'test' WHERE id = ?1 AND classification IS NULL",
        args![alert],
    )?;
    let detail = json!({
        "drill": crate::model::silence::silence_id(s.id),
        "mode": s.mode.as_str(),
        "reason": s.reason,
        "by": s.by,
    });
    history(conn, alert, now, "drill", None, None, Some(detail))?;
    Ok(true)
}

/// (added) The silence holding `alert` back is over: unmarked, with an `unsilenced` history
/// entry; with `notify` and the alert still open and active, it is notified now as fired.
/// Returns whether notifications were queued (`None`: the alert is gone or closed, nothing
/// recorded).
pub fn unsilence(
    conn: &dyn Db,
    alert: i64,
    silence: i64,
    notify: bool,
    route: Route<'_>,
    now: Millis,
) -> Result<Option<bool>> {
    super::silences::unmark(conn, alert)?;
    let Some(a) = get(conn, alert)? else {
        return Ok(None);
    };
    if a.status == Status::Closed {
        return Ok(None);
    }
    let tell = notify && a.active && a.status == Status::Open;
    let detail = json!({
        "silence": crate::model::silence::silence_id(silence),
        "notified": tell,
    });
    let h = history(conn, alert, now, "unsilenced", None, None, Some(detail))?;
    if !tell {
        return Ok(Some(false));
    }
    enqueue(conn, &a, Event::Fired, h, route, now).map(Some)
}

/// (added) `alert` is held back (inhibited or shielded): the hold, with a history entry
/// `inhibited` or `shielded`. Returns false when something held it already.
pub fn hold(conn: &dyn Db, h: &super::holds::Hold) -> Result<bool> {
    if super::silences::mark_of(conn, h.alert)?.is_some() || !super::holds::hold(conn, h)? {
        return Ok(false);
    }
    let (inhibited, shielded) = super::holds::json_of(conn, h.alert)?;
    let detail = if inhibited.is_null() {
        shielded
    } else {
        inhibited
    };
    history(
        conn,
        h.alert,
        h.since,
        h.why.as_str(),
        None,
        None,
        Some(detail),
    )?;
    Ok(true)
}

/// (added) What held `alert` back is over (the hold is already taken out): a `released`
/// history entry, and when the alert is still open and active it is notified now as fired.
/// Returns whether notifications were queued (`None`: the alert is gone or closed).
pub fn release(
    conn: &dyn Db,
    h: &super::holds::Hold,
    route: Route<'_>,
    now: Millis,
) -> Result<Option<bool>> {
    let Some(a) = get(conn, h.alert)? else {
        return Ok(None);
    };
    if a.status == Status::Closed {
        return Ok(None);
    }
    let tell = a.active && a.status == Status::Open;
    let detail = json!({"why": h.why.as_str(), "source": h.source, "notified": tell});
    let hid = history(conn, h.alert, now, "released", None, None, Some(detail))?;
    if !tell {
        return Ok(Some(false));
    }
    enqueue(conn, &a, Event::Fired, hid, route, now).map(Some)
}

/// (added) `alert` fired and cleared `changes` times within the window: a `flapping` history
/// entry (its mark is already set).
pub fn flapping(conn: &dyn Db, alert: i64, changes: i64, now: Millis) -> Result<()> {
    let detail = json!({"changes": changes});
    history(conn, alert, now, "flapping", None, None, Some(detail))?;
    Ok(())
}

/// (added) A flapping alert has not changed for a while (its mark is already gone): a
/// `stable` history entry, and its state now is told (fired again when active, cleared
/// otherwise, to those told of it). Returns whether notifications were queued (`None`: the
/// alert is gone or closed).
pub fn stable(conn: &dyn Db, alert: i64, route: Route<'_>, now: Millis) -> Result<Option<bool>> {
    let Some(a) = get(conn, alert)? else {
        return Ok(None);
    };
    if a.status == Status::Closed {
        return Ok(None);
    }
    let event = if a.active {
        Event::Refired
    } else {
        Event::Cleared
    };
    let detail = json!({"active": a.active});
    let hid = history(conn, alert, now, "stable", None, None, Some(detail))?;
    // Told as its fires and clears are, acknowledged or not: the last state they were told
    // may be long out of date.
    enqueue(conn, &a, event, hid, route, now).map(Some)
}

/// What applying a transition did (for counters and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A new alert was opened.
    Opened(i64),
    /// An open, inactive alert became active again.
    Reactivated(i64),
    /// The alert's condition cleared.
    Cleared(i64),
    /// A reminder was queued.
    Reminded(i64),
    /// Nothing to do (no open alert, already in that state, or acknowledged).
    Nothing,
}

/// Applies one engine transition.
pub fn apply(conn: &dyn Db, t: &Transition, route: Route<'_>) -> Result<Applied> {
    let open = find_open(conn, &t.rule, &t.device, t.channel.as_deref())?;
    let detail = json!({"value": t.value, "threshold": t.threshold, "message": t.message});
    match (t.change, open) {
        (Change::Fired, None) => {
            let id = inserted(
                conn,
                "INSERT INTO alerts (rule, severity, building, kind, device, channel, active,
                 status, value, threshold, message, started_at, updated_at, cleared_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'open', ?8, ?9, ?10, ?11, ?12, ?13)
                 RETURNING id",
                args![
                    &t.rule,
                    t.severity.as_str(),
                    &t.building,
                    t.kind.as_str(),
                    &t.device,
                    t.channel.as_deref(),
                    i64::from(!t.pulse),
                    t.value,
                    t.threshold,
                    &t.message,
                    t.since,
                    t.at,
                    t.pulse.then_some(t.at),
                ],
                "alert",
            )?;
            let h = history(conn, id, t.at, "fired", None, None, Some(detail))?;
            let alert = get(conn, id)?.ok_or(StoreError::Corrupt {
                what: "alert",
                err: "inserted alert not found".into(),
            })?;
            enqueue(conn, &alert, Event::Fired, h, route, t.at)?;
            Ok(Applied::Opened(id))
        }
        (Change::Fired, Some(a)) => {
            if a.active && !t.pulse {
                return Ok(Applied::Nothing);
            }
            // A pulse on an alert whose condition holds leaves it active (the condition's own
            // end clears it); on an inactive alert it stays inactive.
            let active = a.active || !t.pulse;
            conn.exec(
                "UPDATE alerts SET active = ?2, value = ?3, threshold = ?4, message = ?5,
                 updated_at = ?6, cleared_at = ?7 WHERE id = ?1",
                args![
                    a.id,
                    i64::from(active),
                    t.value,
                    t.threshold,
                    &t.message,
                    t.at,
                    if active { None } else { Some(t.at) },
                ],
            )?;
            let h = history(conn, a.id, t.at, "refired", None, None, Some(detail))?;
            let alert = get(conn, a.id)?.unwrap_or(a);
            enqueue(conn, &alert, Event::Refired, h, route, t.at)?;
            Ok(Applied::Reactivated(alert.id))
        }
        (Change::Cleared, Some(a)) if a.active => {
            conn.exec(
                "UPDATE alerts SET active = 0, cleared_at = ?2, updated_at = ?2,
                 value = coalesce(?3, value) WHERE id = ?1",
                args![a.id, t.at, t.value],
            )?;
            let h = history(conn, a.id, t.at, "cleared", None, None, Some(detail))?;
            let alert = get(conn, a.id)?.unwrap_or(a);
            enqueue(conn, &alert, Event::Cleared, h, route, t.at)?;
            Ok(Applied::Cleared(alert.id))
        }
        (Change::Repeat, Some(a)) if a.active && a.status == Status::Open => {
            let h = history(conn, a.id, t.at, "repeat", None, None, Some(detail))?;
            enqueue(conn, &a, Event::Repeat, h, route, t.at)?;
            Ok(Applied::Reminded(a.id))
        }
        _ => Ok(Applied::Nothing),
    }
}

/// An escalation step: the history entry `escalated` and the notifications to the routed
/// targets not told of the alert before. Returns how many were queued.
pub fn escalate(
    conn: &dyn Db,
    id: i64,
    step: &Escalation<'_>,
    routed: Routed,
    now: Millis,
) -> Result<usize> {
    let Some(alert) = get(conn, id)? else {
        return Ok(0);
    };
    let told = super::notifications::told(conn, Subject::Alert(id))?;
    let fresh: Vec<(ChannelKind, String)> = routed
        .targets
        .into_iter()
        .filter(|t| !told.contains(t))
        .collect();
    let h = history(
        conn,
        id,
        now,
        "escalated",
        None,
        None,
        Some(
            json!({"step": step.step, "policy": step.policy, "to": step.to, "targets": fresh.len()}),
        ),
    )?;
    let n = fresh.len();
    let routed = Routed {
        targets: fresh,
        ..routed
    };
    let route = |_: &Alert, _: Event| routed.clone();
    enqueue(conn, &alert, Event::Escalated, h, &route, now)?;
    Ok(n)
}

/// The work order raised for alert `id` passed its deadline unrectified: the history entry
/// `workorder_overdue` and an escalation notification to `routed` (the fire office's contacts)
/// and everyone told of the alert before. Returns how many were queued.
pub fn workorder_overdue(
    conn: &dyn Db,
    id: i64,
    workorder: &crate::model::workorder::Workorder,
    routed: Routed,
    now: Millis,
) -> Result<usize> {
    let Some(alert) = get(conn, id)? else {
        return Ok(0);
    };
    let mut targets = routed.targets.clone();
    for t in super::notifications::told(conn, Subject::Alert(id))? {
        if !targets.contains(&t) {
            targets.push(t);
        }
    }
    let wo = crate::model::workorder::workorder_id(workorder.id);
    let detail = json!({"workorder": wo, "deadline_at": rfc3339(workorder.deadline_at),
                        "to": ["fire_office"], "targets": targets.len()});
    let h = history(
        conn,
        id,
        now,
        "workorder_overdue",
        None,
        None,
        Some(detail.clone()),
    )?;
    let n = targets.len();
    let routed = Routed { targets, ..routed };
    let route = |_: &Alert, _: Event| routed.clone();
    enqueue_with(
        conn,
        &alert,
        Event::Escalated,
        h,
        &route,
        now,
        Some(("workorder_overdue", detail)),
    )?;
    Ok(n)
}

/// One escalation step, as the history records it.
#[derive(Debug, Clone, Copy)]
pub struct Escalation<'a> {
    /// 1-based, as people count (step 1 is the first alarm).
    pub step: usize,
    /// The policy's name.
    pub policy: &'a str,
    /// The audiences told at this step.
    pub to: &'a [&'a str],
}

/// The acknowledgement deadline of `policy` (`sla_s` seconds) passed with the alert still
/// open: marks it (`sla_missed_at`) and records `sla_missed` in its history.
pub fn miss_sla(conn: &dyn Db, id: i64, policy: &str, sla_s: u64, now: Millis) -> Result<()> {
    conn.exec(
        "UPDATE alerts SET sla_missed_at = ?2 WHERE id = ?1 AND sla_missed_at IS NULL",
        args![id, now],
    )?;
    history(
        conn,
        id,
        now,
        "sla_missed",
        None,
        None,
        Some(json!({"policy": policy, "ack_sla_s": sla_s})),
    )?;
    Ok(())
}

/// A reminder of `policy` while nobody acknowledged: `repeat` in the history and a
/// notification to everyone told so far (`place`: the routed location and building name).
pub fn remind(conn: &dyn Db, id: i64, policy: &str, place: Routed, now: Millis) -> Result<()> {
    let Some(alert) = get(conn, id)? else {
        return Ok(());
    };
    let h = history(
        conn,
        id,
        now,
        "repeat",
        None,
        None,
        Some(json!({"policy": policy, "message": alert.message})),
    )?;
    // A follow-up: the store finds everyone told; `place` says where the device is.
    let route = |_: &Alert, _: Event| place.clone();
    enqueue(conn, &alert, Event::Repeat, h, &route, now)?;
    Ok(())
}

/// Errors of people actions on alerts.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// No such alert.
    #[error("alert {0} not found")]
    NotFound(String),
    /// The action does not fit the alert's status.
    #[error("{0}")]
    Conflict(String),
    /// Bad request body.
    #[error("{0}")]
    Invalid(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for ActionError {
    fn from(e: rusqlite::Error) -> Self {
        ActionError::Store(StoreError::Sqlite(e))
    }
}

/// A people action on an alert.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Acknowledge.
    Ack {
        /// Who.
        by: String,
        /// Optional note.
        note: Option<String>,
    },
    /// Close with a classification.
    Close {
        /// Who.
        by: String,
        /// real, false_alarm, test, fault, resolved.
        classification: Classification,
        /// Optional note.
        note: Option<String>,
    },
    /// Add a note.
    Note {
        /// Who.
        by: String,
        /// Text.
        note: String,
    },
    /// Record the on-site check (现场核实); only after acknowledgement, once.
    Verify {
        /// Who.
        by: String,
        /// What the check found.
        result: Verification,
        /// Optional note.
        note: Option<String>,
        /// When 119 was called: required for a real fire.
        called_119_at: Option<Millis>,
    },
}

/// How far ahead of the clock a reported 119 call may be (clocks of phones differ a little).
const CALL_SKEW_MS: Millis = 5 * 60_000;

/// Checks a verification against the alert: conflicts (not acknowledged, already verified)
/// first, then the request itself (a real fire needs its 119 time).
pub fn check_verify(
    a: &Alert,
    verified: bool,
    result: Verification,
    called_119_at: Option<Millis>,
    now: Millis,
) -> std::result::Result<(), ActionError> {
    match a.status {
        Status::Acknowledged => {}
        Status::Open => {
            return Err(ActionError::Conflict(format!(
                "alert {} is not acknowledged yet: acknowledge it before verifying on site",
                alert_id(a.id)
            )))
        }
        Status::Closed => {
            return Err(ActionError::Conflict(format!(
                "alert {} is closed",
                alert_id(a.id)
            )))
        }
    }
    if verified {
        return Err(ActionError::Conflict(format!(
            "alert {} is already verified",
            alert_id(a.id)
        )));
    }
    if result == Verification::Real && called_119_at.is_none() {
        return Err(ActionError::Invalid(
            "called_119_at is required for a real fire: when was 119 called (RFC 3339), or \"called_119\": true for now".into(),
        ));
    }
    if called_119_at.is_some_and(|t| t > now + CALL_SKEW_MS) {
        return Err(ActionError::Invalid(
            "called_119_at is in the future".into(),
        ));
    }
    Ok(())
}

/// Checks a close: a critical alert needs a note (what was found) as well as a classification.
pub fn check_close(a: &Alert, note: Option<&str>) -> std::result::Result<(), ActionError> {
    if a.severity == crate::model::Severity::Critical && note.is_none_or(|n| n.trim().is_empty()) {
        return Err(ActionError::Invalid(format!(
            "note is required to close the critical alert {}: what was found and done",
            alert_id(a.id)
        )));
    }
    Ok(())
}

/// Applies a people action; returns the updated alert. The action is all or nothing: it runs
/// inside a savepoint of the caller's transaction, so a failure halfway (the status changed, the
/// history entry not written) leaves nothing behind when the caller commits its other work.
pub fn act(
    conn: &dyn Db,
    id: i64,
    action: &Action,
    now: Millis,
    route: Route<'_>,
) -> std::result::Result<Alert, ActionError> {
    conn.batch("SAVEPOINT people_action")?;
    let r = act_inner(conn, id, action, now, route);
    let end = if r.is_ok() {
        "RELEASE people_action"
    } else {
        "ROLLBACK TO people_action; RELEASE people_action"
    };
    conn.batch(end)?;
    r
}

fn act_inner(
    conn: &dyn Db,
    id: i64,
    action: &Action,
    now: Millis,
    route: Route<'_>,
) -> std::result::Result<Alert, ActionError> {
    let a = get(conn, id)?.ok_or_else(|| ActionError::NotFound(alert_id(id)))?;
    match action {
        Action::Ack { by, note } => {
            if a.status != Status::Open {
                return Err(ActionError::Conflict(format!(
                    "alert {} is {}, only open alerts can be acknowledged",
                    alert_id(id),
                    a.status
                )));
            }
            conn.exec(
                "UPDATE alerts SET status = 'acknowledged', acknowledged_at = ?2,
                 acknowledged_by = ?3, updated_at = ?2 WHERE id = ?1",
                args![id, now, by],
            )?;
            let h = history(
                conn,
                id,
                now,
                "acknowledged",
                Some(by),
                note.as_deref(),
                None,
            )?;
            // Everyone told of the alert learns who took it, once (the key names this entry).
            let acked = get(conn, id)?.unwrap_or(a.clone());
            enqueue(conn, &acked, Event::Acknowledged, h, route, now)?;
        }
        Action::Close {
            by,
            classification,
            note,
        } => {
            if a.status == Status::Closed {
                return Err(ActionError::Conflict(format!(
                    "alert {} is already closed",
                    alert_id(id)
                )));
            }
            check_close(&a, note.as_deref())?;
            conn.exec(
                "UPDATE alerts SET status = 'closed', closed_at = ?2, closed_by = ?3,
                 classification = ?4, updated_at = ?2 WHERE id = ?1",
                args![id, now, by, classification.as_str()],
            )?;
            let mut detail =
                json!({"classification": classification.as_str(), "active_when_closed": a.active});
            if let Some(v) = confirmation(conn, id)?.verification {
                // Allowed: the later, fuller picture wins, and the difference stays on record.
                detail["verification"] = v.as_str().into();
                detail["differs_from_verification"] = (!v.agrees_with(*classification)).into();
            }
            let h = history(
                conn,
                id,
                now,
                "closed",
                Some(by),
                note.as_deref(),
                Some(detail),
            )?;
            let closed = get(conn, id)?.unwrap_or(a.clone());
            enqueue(conn, &closed, Event::Closed, h, route, now)?;
        }
        Action::Note { by, note } => {
            conn.exec(
                "UPDATE alerts SET updated_at = ?2 WHERE id = ?1",
                args![id, now],
            )?;
            history(conn, id, now, "note", Some(by), Some(note), None)?;
        }
        Action::Verify {
            by,
            result,
            note,
            called_119_at,
        } => {
            let verified = confirmation(conn, id)?.verified_at.is_some();
            check_verify(&a, verified, *result, *called_119_at, now)?;
            conn.exec(
                "UPDATE alerts SET verified_at = ?2, verified_by = ?3, verification = ?4,
                 called_119_at = ?5, updated_at = ?2 WHERE id = ?1",
                args![id, now, by, result.as_str(), *called_119_at],
            )?;
            history(
                conn,
                id,
                now,
                "verified",
                Some(by),
                note.as_deref(),
                Some(
                    json!({"result": result.as_str(), "called_119_at": called_119_at.map(rfc3339)}),
                ),
            )?;
        }
    }
    get(conn, id)?.ok_or_else(|| ActionError::NotFound(alert_id(id)))
}

/// Filters of `GET /alerts`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// active=true/false.
    pub active: Option<bool>,
    /// status.
    pub status: Option<Status>,
    /// building.
    pub building: Option<String>,
    /// device.
    pub device: Option<String>,
    /// (added) channel (a point of a transmitter, a circuit of a monitor).
    pub channel: Option<String>,
    /// severity.
    pub severity: Option<crate::model::Severity>,
    /// rule.
    pub rule: Option<String>,
    /// started or updated since.
    pub since: Option<Millis>,
    /// at most.
    pub limit: u32,
}

/// Lists alerts, newest first.
pub fn list(conn: &dyn Db, f: &Filter) -> Result<Vec<Alert>> {
    let mut sql = format!("SELECT {COLUMNS} FROM alerts WHERE 1 = 1");
    let mut args: Vec<SqlValue> = Vec::new();
    let mut push = |cond: &str, v: SqlValue, sql: &mut String| {
        args.push(v);
        sql.push_str(&format!(" AND {cond} ?{}", args.len()));
    };
    if let Some(a) = f.active {
        push("active =", SqlValue::Int(i64::from(a)), &mut sql);
    }
    if let Some(s) = &f.status {
        push("status =", SqlValue::Text(s.as_str().to_owned()), &mut sql);
    }
    if let Some(b) = &f.building {
        push("building =", SqlValue::Text(b.clone()), &mut sql);
    }
    if let Some(d) = &f.device {
        push("device =", SqlValue::Text(d.clone()), &mut sql);
    }
    if let Some(ch) = &f.channel {
        push("channel =", SqlValue::Text(ch.clone()), &mut sql);
    }
    if let Some(s) = &f.severity {
        push(
            "severity =",
            SqlValue::Text(s.as_str().to_owned()),
            &mut sql,
        );
    }
    if let Some(r) = &f.rule {
        push("rule =", SqlValue::Text(r.clone()), &mut sql);
    }
    if let Some(s) = f.since {
        push("updated_at >=", SqlValue::Int(s), &mut sql);
    }
    sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", f.limit));
    conn.rows(&sql, &args.iter().map(Arg::from).collect::<Vec<_>>())?
        .iter()
        .map(from_row)
        .collect()
}

/// (added) Alerts of `building` closed in `[from, until)` as `classification` (the daily
/// summary's false alarms), most recently closed first, at most `limit`; and how many there
/// are in all.
pub fn closed_as(
    conn: &dyn Db,
    building: &str,
    classification: Classification,
    from: Millis,
    until: Millis,
    limit: u32,
) -> Result<(Vec<Alert>, u64)> {
    let sql = format!(
        "SELECT {COLUMNS} FROM alerts WHERE building = ?1 AND status = 'closed'
         AND classification = ?2 AND closed_at >= ?3 AND closed_at < ?4
         ORDER BY closed_at DESC, id DESC LIMIT ?5"
    );
    let args = args![building, classification.as_str(), from, until, limit];
    let rows = conn
        .rows(&sql, args)?
        .iter()
        .map(from_row)
        .collect::<Result<Vec<_>>>()?;
    let total = conn
        .one::<i64>(
            "SELECT count(*) FROM alerts WHERE building = ?1 AND status = 'closed'
             AND classification = ?2 AND closed_at >= ?3 AND closed_at < ?4",
            args![building, classification.as_str(), from, until],
        )?
        .unwrap_or(0);
    Ok((rows, u64::try_from(total).unwrap_or(0)))
}

/// The history of an alert, oldest first.
pub fn history_of(conn: &dyn Db, id: i64) -> Result<Vec<HistoryEntry>> {
    conn.rows(
        "SELECT at, what, by, note, detail FROM alert_history WHERE alert_id = ?1 ORDER BY id",
        args![id],
    )?
    .iter()
    .map(|r| {
        let detail: Option<String> = r.get(4)?;
        Ok(HistoryEntry {
            at: rfc3339(r.get(0)?),
            what: r.get(1)?,
            by: r.get(2)?,
            note: r.get(3)?,
            // A detail that is not JSON (written by hand, or by an older version) is shown as
            // text rather than dropped.
            detail: detail.map(|d| serde_json::from_str(&d).unwrap_or(Value::String(d))),
        })
    })
    .collect()
}

/// Notes of an alert in contract form (`[{"at", "by", "note"}]`).
pub fn notes_of(history: &[HistoryEntry]) -> Vec<Value> {
    history
        .iter()
        .filter(|h| h.note.is_some())
        .map(|h| json!({"at": h.at, "by": h.by, "note": h.note, "with": h.what}))
        .collect()
}

/// Notes of several alerts at once (contract form), by alert id.
pub fn notes_for(conn: &dyn Db, ids: &[i64]) -> Result<std::collections::HashMap<i64, Vec<Value>>> {
    let mut out: std::collections::HashMap<i64, Vec<Value>> = std::collections::HashMap::new();
    let (Some(lo), Some(hi)) = (ids.iter().min(), ids.iter().max()) else {
        return Ok(out);
    };
    let wanted: std::collections::HashSet<i64> = ids.iter().copied().collect();
    let rows = conn.rows(
        "SELECT alert_id, at, what, by, note FROM alert_history
         WHERE alert_id BETWEEN ?1 AND ?2 AND note IS NOT NULL ORDER BY id",
        args![*lo, *hi],
    )?;
    for r in &rows {
        let id = r.get::<i64>(0)?;
        let note = json!({"at": rfc3339(r.get(1)?), "by": r.get::<Option<String>>(3)?,
                          "note": r.get::<Option<String>>(4)?, "with": r.get::<String>(2)?});
        if wanted.contains(&id) {
            out.entry(id).or_default().push(note);
        }
    }
    Ok(out)
}

/// Count of open alerts per device (for device health).
pub fn open_counts(conn: &dyn Db) -> Result<std::collections::HashMap<String, i64>> {
    conn.rows(
        "SELECT device, count(*) FROM alerts WHERE status != 'closed' GROUP BY device",
        args![],
    )?
    .iter()
    .map(|r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?)))
    .collect()
}

/// Open (not closed) alerts of one device.
pub fn open_of_device(conn: &dyn Db, device: &str) -> Result<i64> {
    Ok(conn
        .one::<i64>(
            "SELECT count(*) FROM alerts WHERE device = ?1 AND status != 'closed'",
            args![device],
        )?
        .unwrap_or(0))
}

/// Open alerts of one building: how many, and the worst severity among them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenAlerts {
    /// Alerts not closed.
    pub count: i64,
    /// The most severe of them (`None` without any).
    pub worst: Option<crate::model::Severity>,
}

/// Per building, its alerts that are not closed.
pub fn open_by_building(conn: &dyn Db) -> Result<std::collections::HashMap<String, OpenAlerts>> {
    conn.rows(
        "SELECT building, count(*), min(CASE severity WHEN 'critical' THEN 0 WHEN 'major' THEN 1 \
         WHEN 'minor' THEN 2 ELSE 3 END) FROM alerts WHERE status != 'closed' GROUP BY building",
        args![],
    )?
    .iter()
    .map(|r| {
        let worst = match r.get::<i64>(2)? {
            0 => crate::model::Severity::Critical,
            1 => crate::model::Severity::Major,
            2 => crate::model::Severity::Minor,
            _ => crate::model::Severity::Info,
        };
        Ok((
            r.get::<String>(0)?,
            OpenAlerts {
                count: r.get(1)?,
                worst: Some(worst),
            },
        ))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Kind, Severity};

    fn fired(at: Millis) -> Transition {
        Transition {
            change: Change::Fired,
            rule: "fire_lane.fire".into(),
            building: "b1".into(),
            kind: Kind::FireLane,
            device: "cam-1".into(),
            channel: Some("lobby".into()),
            severity: Severity::Critical,
            at,
            since: at,
            value: None,
            threshold: None,
            message: "smoke".into(),
            pulse: false,
        }
    }

    #[test]
    fn a_people_action_that_fails_halfway_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = super::super::open_writer(dir.path(), "normal").unwrap();
        let none = |_: &Alert, _: crate::model::notification::Event| Routed::default();
        let id = match apply(&conn, &fired(1_000), &none).unwrap() {
            Applied::Opened(id) => id,
            other => panic!("{other:?}"),
        };
        // Fault injection (SQLite does not fail on demand): the history entry of an
        // acknowledgement cannot be written, after the alert row was already updated.
        conn.execute_batch(
            "CREATE TRIGGER no_ack_history BEFORE INSERT ON alert_history
             WHEN NEW.what = 'acknowledged' BEGIN SELECT RAISE(ABORT, 'injected'); END;",
        )
        .unwrap();
        let tx = conn.transaction().unwrap();
        let ack = Action::Ack {
            by: "Li".into(),
            note: None,
        };
        let r = act(&tx, id, &ack, 2_000, &none);
        assert!(matches!(r, Err(ActionError::Store(_))), "{r:?}");
        // The batch around it goes on and commits its other work.
        tx.execute("INSERT INTO meta (key, value) VALUES ('other', 1)", [])
            .unwrap();
        tx.commit().unwrap();
        let a = get(&conn, id).unwrap().unwrap();
        assert_eq!(
            a.status,
            Status::Open,
            "the half-applied ack was rolled back"
        );
        assert_eq!(a.acknowledged_by, None);
        assert_eq!(super::super::get_meta(&conn, "other").unwrap(), Some(1));
    }

    #[test]
    fn verification_needs_an_acknowledged_alert_once_and_a_119_time_for_a_real_fire() {
        let mut a = get_fired();
        let real = Verification::Real;
        assert!(matches!(
            check_verify(&a, false, real, Some(1), 10),
            Err(ActionError::Conflict(_))
        ));
        a.status = Status::Acknowledged;
        assert!(matches!(
            check_verify(&a, false, real, None, 10),
            Err(ActionError::Invalid(_))
        ));
        assert!(check_verify(&a, false, real, Some(5), 10).is_ok());
        assert!(check_verify(&a, false, Verification::FalseAlarm, None, 10).is_ok());
        assert!(matches!(
            check_verify(&a, true, real, Some(5), 10),
            Err(ActionError::Conflict(_))
        ));
        assert!(matches!(
            check_verify(&a, false, real, Some(10 + CALL_SKEW_MS + 1), 10),
            Err(ActionError::Invalid(_))
        ));
        a.status = Status::Closed;
        assert!(matches!(
            check_verify(&a, false, real, Some(5), 10),
            Err(ActionError::Conflict(_))
        ));
    }

    #[test]
    fn closing_a_critical_alert_needs_a_note_others_do_not() {
        let mut a = get_fired();
        assert!(matches!(
            check_close(&a, None),
            Err(ActionError::Invalid(_))
        ));
        assert!(matches!(
            check_close(&a, Some("  ")),
            Err(ActionError::Invalid(_))
        ));
        assert!(check_close(&a, Some("smoke from cooking")).is_ok());
        a.severity = Severity::Major;
        assert!(check_close(&a, None).is_ok());
    }

    fn get_fired() -> Alert {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::open_writer(dir.path(), "normal").unwrap();
        let none = |_: &Alert, _: crate::model::notification::Event| Routed::default();
        apply(&conn, &fired(1_000), &none).unwrap();
        get(&conn, 1).unwrap().unwrap()
    }

    #[test]
    fn history_details_that_are_not_json_are_shown_as_text() {
        // Failed before: such a detail was dropped (`null`).
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::open_writer(dir.path(), "normal").unwrap();
        conn.execute(
            "INSERT INTO alert_history (alert_id, at, what, detail) VALUES (1, 5, 'note', 'plain words')",
            [],
        )
        .unwrap();
        let h = history_of(&conn, 1).unwrap();
        assert_eq!(h[0].detail, Some(Value::String("plain words".into())));
    }
}
