//! Hazard work orders (隐患整改) and their history: every SQL statement about them.
//!
//! A work order is raised by an operator (`POST /api/v1/workorders`) or by the pipeline's tick
//! for a hazard alert still open `after_s` after it fired; the tick also marks the orders whose
//! deadline passed while `open`. Both timers are conditions on committed rows (no work order
//! for the alert yet; `overdue_at` not set yet), evaluated in the tick's transaction, so a
//! restart loses none and repeats none.

use super::sql::{Db, Engine, Row};
use super::{Result, StoreError};
use crate::args;
use crate::model::alert::alert_id;
pub use crate::model::workorder::{
    parse_workorder_id, workorder_id, Step, Workorder, WorkorderStatus,
};
use crate::model::{rfc3339, Millis};
use crate::settings::Problem;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The tables (created with the rest of the schema).
pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS workorders (
    id INTEGER PRIMARY KEY,
    alert_id INTEGER,
    building TEXT NOT NULL,
    rule TEXT,
    description TEXT NOT NULL,
    photo_url TEXT,
    status TEXT NOT NULL,
    auto INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    deadline_at INTEGER NOT NULL,
    overdue_at INTEGER,
    rectified_at INTEGER,
    rectified_by TEXT,
    closed_at INTEGER,
    closed_by TEXT,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS workorders_alert ON workorders(alert_id) WHERE alert_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS workorders_due ON workorders(deadline_at)
    WHERE status = 'open' AND overdue_at IS NULL;
CREATE INDEX IF NOT EXISTS workorders_building ON workorders(building, id);
CREATE TABLE IF NOT EXISTS workorder_history (
    id INTEGER PRIMARY KEY,
    workorder_id INTEGER NOT NULL,
    at INTEGER NOT NULL,
    what TEXT NOT NULL,
    by TEXT,
    note TEXT,
    photo_url TEXT,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS workorder_history_wo ON workorder_history(workorder_id, id);
"#;

/// Who raises automatic work orders.
pub const SYSTEM: &str = "firewatch";

/// The hazard rules that become work orders by default.
const HAZARDS: [&str; 10] = [
    "water_pressure.low",
    "water_pressure.high",
    "water_pressure.drop",
    "water_level.low",
    "electrical.residual_current",
    "electrical.temperature",
    "electrical.arc",
    "electrical.device_alarm",
    "fire_lane.blocked",
    "fire_lane.ebike",
];

/// Built-in per-rule deadlines: a blocked lane or exit, or an e-bike indoors, is cleared within
/// the hour; water pressure and electrical faults need a contractor and keep the day.
pub const BUILT_IN_DEADLINES: [(&str, u64); 2] =
    [("fire_lane.blocked", 3600), ("fire_lane.ebike", 3600)];

/// Longest deadline a work order may have (90 days).
pub const MAX_DEADLINE_S: u64 = 90 * 86_400;

/// `[workorders]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkordersConfig {
    /// Raise work orders for open hazard alerts automatically.
    pub enabled: bool,
    /// Seconds a hazard alert stays open (not closed) before it becomes a work order.
    pub after_s: u64,
    /// Seconds the manager has to rectify, unless the rule says otherwise.
    pub deadline_s: u64,
    /// Rules whose `major` alerts are hazards that become work orders.
    pub hazards: Vec<String>,
    /// Per-rule settings (`[workorders.rules."fire_lane.blocked"]`), over the built-in ones
    /// ([`BUILT_IN_DEADLINES`]).
    pub rules: BTreeMap<String, RuleWorkorder>,
}

/// `[workorders.rules."<rule>"]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuleWorkorder {
    /// The rule's `after_s`.
    pub after_s: Option<u64>,
    /// The rule's `deadline_s`.
    pub deadline_s: Option<u64>,
}

impl Default for WorkordersConfig {
    fn default() -> Self {
        WorkordersConfig {
            enabled: true,
            after_s: 1800,
            deadline_s: 86_400,
            hazards: HAZARDS.map(str::to_owned).to_vec(),
            rules: BTreeMap::new(),
        }
    }
}

impl WorkordersConfig {
    /// Every problem of the `[workorders]` settings.
    pub fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        let after = |key: &str, v: u64, p: &mut Vec<Problem>| {
            if v == 0 || v > MAX_DEADLINE_S {
                p.push(Problem::new(
                    key,
                    format!("must be 1–{MAX_DEADLINE_S} seconds"),
                ));
            }
        };
        let deadline = |key: &str, v: u64, p: &mut Vec<Problem>| {
            if !(60..=MAX_DEADLINE_S).contains(&v) {
                p.push(Problem::new(
                    key,
                    format!("must be 60–{MAX_DEADLINE_S} seconds"),
                ));
            }
        };
        after("workorders.after_s", self.after_s, &mut p);
        deadline("workorders.deadline_s", self.deadline_s, &mut p);
        for (i, h) in self.hazards.iter().enumerate() {
            if h.trim().is_empty() {
                p.push(Problem::new(
                    format!("workorders.hazards[{i}]"),
                    "must name a rule",
                ));
            }
        }
        for (rule, r) in &self.rules {
            let key = format!("workorders.rules.\"{rule}\"");
            if !self.hazards.contains(rule) {
                p.push(Problem::new(
                    key.clone(),
                    format!("{rule:?} is not in workorders.hazards"),
                ));
            }
            if let Some(v) = r.after_s {
                after(&format!("{key}.after_s"), v, &mut p);
            }
            if let Some(v) = r.deadline_s {
                deadline(&format!("{key}.deadline_s"), v, &mut p);
            }
        }
        p
    }

    /// Whether alerts of `rule` become work orders.
    pub fn is_hazard(&self, rule: &str) -> bool {
        self.hazards.iter().any(|h| h == rule)
    }

    /// Milliseconds a hazard alert of `rule` stays open before it becomes a work order.
    pub fn after_ms(&self, rule: &str) -> Millis {
        let s = self.rules.get(rule).and_then(|r| r.after_s);
        secs(s.unwrap_or(self.after_s))
    }

    /// Milliseconds the manager has to rectify a hazard of `rule` (any rule, or none).
    pub fn deadline_ms(&self, rule: Option<&str>) -> Millis {
        let own = rule
            .and_then(|r| self.rules.get(r))
            .and_then(|r| r.deadline_s);
        let built_in = rule.and_then(|r| {
            BUILT_IN_DEADLINES
                .iter()
                .find(|(id, _)| *id == r)
                .map(|(_, s)| *s)
        });
        secs(own.or(built_in).unwrap_or(self.deadline_s))
    }
}

fn secs(s: u64) -> Millis {
    Millis::try_from(s.min(MAX_DEADLINE_S)).unwrap_or(0) * 1000
}

/// Errors of work-order requests.
#[derive(Debug, thiserror::Error)]
pub enum WorkorderError {
    /// No such work order (or alert).
    #[error("{0}")]
    NotFound(String),
    /// The step does not fit the work order's status.
    #[error("{0}")]
    Conflict(String),
    /// Bad request.
    #[error("{0}")]
    Invalid(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for WorkorderError {
    fn from(e: rusqlite::Error) -> Self {
        WorkorderError::Store(StoreError::Sqlite(e))
    }
}

/// An operator's request for a work order (`POST /api/v1/workorders`).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkorderRequest {
    /// The alert it is for.
    pub alert: Option<i64>,
    /// Building.
    pub building: String,
    /// What is to be rectified.
    pub description: String,
    /// A photo.
    pub photo_url: Option<String>,
    /// Who raises it.
    pub by: String,
    /// Its own deadline, else the rule's or the default.
    pub deadline_s: Option<u64>,
}

/// What the pipeline is asked to do with work orders.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkorderOp {
    /// Raise one.
    Create(WorkorderRequest),
    /// A step of the lifecycle.
    Step {
        /// Work order.
        id: i64,
        /// Which.
        step: Step,
        /// Who.
        by: String,
        /// What was done or found.
        note: String,
        /// A photo of it.
        photo_url: Option<String>,
    },
}

const COLUMNS: &str = "id, alert_id, building, rule, description, photo_url, status, auto,
    created_at, created_by, deadline_at, overdue_at, rectified_at, rectified_by, closed_at,
    closed_by, updated_at";

fn from_row(r: &Row) -> Result<Workorder> {
    let status: String = r.get(6)?;
    Ok(Workorder {
        id: r.get(0)?,
        alert: r.get(1)?,
        building: r.get(2)?,
        rule: r.get(3)?,
        description: r.get(4)?,
        photo_url: r.get(5)?,
        status: status.parse().map_err(|()| StoreError::Corrupt {
            what: "work order",
            err: format!("unknown work order status {status:?}"),
        })?,
        auto: r.get::<i64>(7)? != 0,
        created_at: r.get(8)?,
        created_by: r.get(9)?,
        deadline_at: r.get(10)?,
        overdue_at: r.get(11)?,
        rectified_at: r.get(12)?,
        rectified_by: r.get(13)?,
        closed_at: r.get(14)?,
        closed_by: r.get(15)?,
        updated_at: r.get(16)?,
    })
}

/// One work order.
pub fn get(conn: &dyn Db, id: i64) -> Result<Option<Workorder>> {
    let sql = format!("SELECT {COLUMNS} FROM workorders WHERE id = ?1");
    conn.row(&sql, args![id])?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// The work order of an alert, if it has one.
pub fn of_alert(conn: &dyn Db, alert: i64) -> Result<Option<Workorder>> {
    let sql = format!("SELECT {COLUMNS} FROM workorders WHERE alert_id = ?1");
    conn.row(&sql, args![alert])?
        .as_ref()
        .map(from_row)
        .transpose()
}

#[allow(clippy::too_many_arguments)]
fn history(
    conn: &dyn Db,
    id: i64,
    at: Millis,
    what: &str,
    by: Option<&str>,
    note: Option<&str>,
    photo_url: Option<&str>,
    detail: Option<Value>,
) -> Result<()> {
    let detail = detail.map(|d| d.to_string());
    conn.exec(
        "INSERT INTO workorder_history (workorder_id, at, what, by, note, photo_url, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        args![id, at, what, by, note, photo_url, detail.as_deref()],
    )?;
    Ok(())
}

/// Records a notification attempt in the work order's history (`notified`, `notify_failed`,
/// `notify_gave_up`).
pub fn record_notification(
    conn: &dyn Db,
    id: i64,
    at: Millis,
    what: &str,
    detail: Value,
) -> Result<()> {
    history(conn, id, at, what, None, None, None, Some(detail))
}

/// Queues the notifications of the work order's latest step (`event`, its history entry) to
/// `routed`'s targets, and for a follow-up (closed, overdue) also to everyone told of the order
/// before, with the order as committed now, the step's person, note and photo, and the
/// building's name. Returns how many targets it went to.
pub fn enqueue_notifications(
    conn: &dyn Db,
    w: &Workorder,
    event: crate::model::notification::Event,
    routed: super::alerts::Routed,
    now: Millis,
) -> Result<usize> {
    use crate::model::notification::{Event, Subject};
    let subject = Subject::Workorder(w.id);
    let mut targets = routed.targets;
    if matches!(event, Event::WorkorderClosed | Event::WorkorderOverdue) {
        for t in super::notifications::told(conn, subject)? {
            if !targets.contains(&t) {
                targets.push(t);
            }
        }
    }
    let r = conn
        .row(
            "SELECT id, by, note, photo_url FROM workorder_history
             WHERE workorder_id = ?1
             AND what IN ('created', 'rectified', 'sent_back', 'accepted', 'overdue')
             ORDER BY id DESC LIMIT 1",
            args![w.id],
        )?
        .ok_or(StoreError::Corrupt {
            what: "work order history",
            err: format!("work order {} has no step", workorder_id(w.id)),
        })?;
    let (step, by, note, photo_url): (i64, Option<String>, Option<String>, Option<String>) =
        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
    let mut snapshot = w.to_json();
    snapshot["building_name"] = routed.building_name.into();
    snapshot["step"] = json!({"by": by, "note": note, "photo_url": photo_url});
    super::notifications::enqueue(
        conn,
        subject,
        event,
        step,
        super::notifications::Recipients {
            targets: &targets,
            look: &routed.look,
        },
        &snapshot,
        now,
    )?;
    Ok(targets.len())
}

/// A work order to insert.
#[derive(Debug, Clone)]
pub struct New<'a> {
    /// Alert.
    pub alert: Option<i64>,
    /// Building.
    pub building: &'a str,
    /// Rule of the alert.
    pub rule: Option<&'a str>,
    /// What.
    pub description: &'a str,
    /// Photo.
    pub photo_url: Option<&'a str>,
    /// Who.
    pub by: &'a str,
    /// Automatic.
    pub auto: bool,
    /// Deadline.
    pub deadline_at: Millis,
}

/// Inserts a work order and its `created` history entry.
pub fn insert(conn: &dyn Db, n: &New<'_>, now: Millis) -> Result<Workorder> {
    let id: i64 = conn
        .one(
            "INSERT INTO workorders (alert_id, building, rule, description, photo_url, status,
             auto, created_at, created_by, deadline_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'open', ?6, ?7, ?8, ?9, ?7) RETURNING id",
            args![
                n.alert,
                n.building,
                n.rule,
                n.description,
                n.photo_url,
                i64::from(n.auto),
                now,
                n.by,
                n.deadline_at
            ],
        )?
        .ok_or(StoreError::Corrupt {
            what: "work order",
            err: "no id returned".into(),
        })?;
    history(
        conn,
        id,
        now,
        "created",
        Some(n.by),
        Some(n.description),
        n.photo_url,
        Some(json!({"alert": n.alert.map(alert_id), "auto": n.auto,
                    "deadline_at": rfc3339(n.deadline_at)})),
    )?;
    get(conn, id)?.ok_or(StoreError::Corrupt {
        what: "work order",
        err: "inserted work order not found".into(),
    })
}

/// Raises the work order an operator asked for.
pub fn create(
    conn: &dyn Db,
    req: &WorkorderRequest,
    cfg: &WorkordersConfig,
    now: Millis,
) -> std::result::Result<Workorder, WorkorderError> {
    let mut rule = None;
    if let Some(a) = req.alert {
        let alert = super::alerts::get(conn, a)?
            .ok_or_else(|| WorkorderError::NotFound(format!("alert {} not found", alert_id(a))))?;
        if alert.building != req.building {
            return Err(WorkorderError::Invalid(format!(
                "building: alert {} is of building {}, not {}",
                alert_id(a),
                alert.building,
                req.building
            )));
        }
        if let Some(w) = of_alert(conn, a)? {
            return Err(WorkorderError::Conflict(format!(
                "alert {} already has the work order {}",
                alert_id(a),
                workorder_id(w.id)
            )));
        }
        rule = Some(alert.rule);
    }
    let deadline = match req.deadline_s {
        Some(s) => secs(s),
        None => cfg.deadline_ms(rule.as_deref()),
    };
    Ok(insert(
        conn,
        &New {
            alert: req.alert,
            building: &req.building,
            rule: rule.as_deref(),
            description: &req.description,
            photo_url: req.photo_url.as_deref(),
            by: &req.by,
            auto: false,
            deadline_at: now + deadline,
        },
        now,
    )?)
}

/// A step of the lifecycle, all or nothing (in a savepoint of the caller's transaction).
pub fn step(
    conn: &dyn Db,
    id: i64,
    step: Step,
    by: &str,
    note: &str,
    photo_url: Option<&str>,
    now: Millis,
) -> std::result::Result<Workorder, WorkorderError> {
    conn.batch("SAVEPOINT workorder_step")?;
    let r = step_inner(conn, id, step, by, note, photo_url, now);
    let end = if r.is_ok() {
        "RELEASE workorder_step"
    } else {
        "ROLLBACK TO workorder_step; RELEASE workorder_step"
    };
    conn.batch(end)?;
    r
}

fn step_inner(
    conn: &dyn Db,
    id: i64,
    step: Step,
    by: &str,
    note: &str,
    photo_url: Option<&str>,
    now: Millis,
) -> std::result::Result<Workorder, WorkorderError> {
    let w = get(conn, id)?.ok_or_else(|| {
        WorkorderError::NotFound(format!("work order {} not found", workorder_id(id)))
    })?;
    let to = step.apply(w.status).map_err(|why| {
        WorkorderError::Conflict(format!("work order {} {why}", workorder_id(id)))
    })?;
    match step {
        Step::Rectify => conn.exec(
            "UPDATE workorders SET status = ?2, rectified_at = ?3, rectified_by = ?4,
             updated_at = ?3 WHERE id = ?1",
            args![id, to.as_str(), now, by],
        )?,
        Step::Accept => conn.exec(
            "UPDATE workorders SET status = ?2, closed_at = ?3, closed_by = ?4, updated_at = ?3
             WHERE id = ?1",
            args![id, to.as_str(), now, by],
        )?,
        Step::SendBack => conn.exec(
            "UPDATE workorders SET status = ?2, updated_at = ?3 WHERE id = ?1",
            args![id, to.as_str(), now],
        )?,
    };
    history(
        conn,
        id,
        now,
        step.what(),
        Some(by),
        Some(note),
        photo_url,
        Some(json!({"from": w.status.as_str(), "to": to.as_str()})),
    )?;
    get(conn, id)?.ok_or_else(|| {
        WorkorderError::NotFound(format!("work order {} not found", workorder_id(id)))
    })
}

/// A hazard alert that may become a work order: open, `major`, of a hazard rule, without one.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Alert id.
    pub alert: i64,
    /// Its rule.
    pub rule: String,
    /// Building.
    pub building: String,
    /// Its message.
    pub message: String,
    /// When it fired.
    pub fired_at: Millis,
}

/// Open `major` alerts of the hazard rules without a work order, oldest first. Reads only the
/// alerts not closed (through the partial index of open alerts), so it stays cheap on every
/// tick however many alerts the store keeps.
pub fn candidates(conn: &dyn Db, hazards: &[String]) -> Result<Vec<Candidate>> {
    // `INDEXED BY` is SQLite's; PostgreSQL's planner picks the partial index by itself.
    let sql = match conn.engine() {
        Engine::Sqlite => {
            "SELECT a.id, a.rule, a.building, a.message,
             coalesce((SELECT min(h.at) FROM alert_history h WHERE h.alert_id = a.id
                       AND h.what = 'fired'), a.updated_at)
             FROM alerts a INDEXED BY alerts_one_open WHERE a.status != 'closed'
             AND a.severity = 'major'
             AND NOT EXISTS (SELECT 1 FROM workorders w WHERE w.alert_id = a.id)
             ORDER BY a.id"
        }
        Engine::Postgres => {
            "SELECT a.id, a.rule, a.building, a.message,
             coalesce((SELECT min(h.at) FROM alert_history h WHERE h.alert_id = a.id
                       AND h.what = 'fired'), a.updated_at)
             FROM alerts a WHERE a.status != 'closed'
             AND a.severity = 'major'
             AND NOT EXISTS (SELECT 1 FROM workorders w WHERE w.alert_id = a.id)
             ORDER BY a.id"
        }
    };
    let mut out = Vec::new();
    for r in conn.rows(sql, args![])? {
        let c = Candidate {
            alert: r.get(0)?,
            rule: r.get(1)?,
            building: r.get(2)?,
            message: r.get(3)?,
            fired_at: r.get(4)?,
        };
        if hazards.contains(&c.rule) {
            out.push(c);
        }
    }
    Ok(out)
}

/// Open work orders whose deadline passed and that are not marked overdue yet.
pub fn due_overdue(conn: &dyn Db, now: Millis, limit: u32) -> Result<Vec<Workorder>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM workorders WHERE status = 'open' AND overdue_at IS NULL
         AND deadline_at <= ?1 ORDER BY deadline_at, id LIMIT ?2"
    );
    conn.rows(&sql, args![now, limit])?
        .iter()
        .map(from_row)
        .collect()
}

/// Marks a work order overdue (once) with its history entry `overdue`.
pub fn mark_overdue(conn: &dyn Db, w: &Workorder, now: Millis) -> Result<()> {
    conn.exec(
        "UPDATE workorders SET overdue_at = ?2, updated_at = ?2 WHERE id = ?1 AND overdue_at IS NULL",
        args![w.id, now],
    )?;
    history(
        conn,
        w.id,
        now,
        "overdue",
        None,
        None,
        None,
        Some(json!({"deadline_at": rfc3339(w.deadline_at), "escalated_to": ["fire_office"]})),
    )
}

/// One history entry of a work order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    /// When.
    pub at: String,
    /// created, rectified, sent_back, accepted, overdue.
    pub what: String,
    /// Who.
    pub by: Option<String>,
    /// What they said.
    pub note: Option<String>,
    /// A photo.
    pub photo_url: Option<String>,
    /// Extra detail.
    pub detail: Option<Value>,
}

/// The history of a work order, oldest first.
pub fn history_of(conn: &dyn Db, id: i64) -> Result<Vec<HistoryEntry>> {
    conn.rows(
        "SELECT at, what, by, note, photo_url, detail FROM workorder_history
         WHERE workorder_id = ?1 ORDER BY id",
        args![id],
    )?
    .iter()
    .map(|r| {
        let detail: Option<String> = r.get(5)?;
        Ok(HistoryEntry {
            at: rfc3339(r.get(0)?),
            what: r.get(1)?,
            by: r.get(2)?,
            note: r.get(3)?,
            photo_url: r.get(4)?,
            detail: detail.map(|d| serde_json::from_str(&d).unwrap_or(Value::String(d))),
        })
    })
    .collect()
}

/// Filters of `GET /api/v1/workorders`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// building.
    pub building: Option<String>,
    /// status.
    pub status: Option<WorkorderStatus>,
    /// overdue=true/false (marked overdue or not).
    pub overdue: Option<bool>,
    /// at most.
    pub limit: u32,
}

/// Lists work orders, newest first.
pub fn list(conn: &dyn Db, f: &Filter) -> Result<Vec<Workorder>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM workorders WHERE (CAST(?1 AS TEXT) IS NULL OR building = ?1)
         AND (CAST(?2 AS TEXT) IS NULL OR status = ?2)
         AND (CAST(?3 AS BIGINT) IS NULL
              OR (CASE WHEN overdue_at IS NOT NULL THEN 1 ELSE 0 END) = ?3)
         ORDER BY id DESC LIMIT ?4"
    );
    conn.rows(
        &sql,
        args![
            f.building.as_deref(),
            f.status.map(WorkorderStatus::as_str),
            f.overdue.map(i64::from),
            f.limit
        ],
    )?
    .iter()
    .map(from_row)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_have_their_own_deadlines_and_unknown_ones_are_problems() {
        let mut c = WorkordersConfig::default();
        assert!(c.validate().is_empty());
        assert_eq!(c.deadline_ms(Some("fire_lane.blocked")), 3_600_000);
        assert_eq!(c.deadline_ms(Some("water_pressure.low")), 86_400_000);
        assert_eq!(c.deadline_ms(None), 86_400_000);
        assert_eq!(c.after_ms("fire_lane.blocked"), 1_800_000);
        assert!(c.is_hazard("fire_lane.ebike"));
        assert!(!c.is_hazard("transmitter.fire_alarm"));
        c.rules.insert(
            "fire_lane.fire".into(),
            RuleWorkorder {
                deadline_s: Some(10),
                after_s: Some(0),
            },
        );
        c.deadline_s = 0;
        let keys: Vec<String> = c.validate().into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "workorders.deadline_s",
                "workorders.rules.\"fire_lane.fire\"",
                "workorders.rules.\"fire_lane.fire\".after_s",
                "workorders.rules.\"fire_lane.fire\".deadline_s",
            ]
        );
    }

    #[test]
    fn a_step_that_does_not_fit_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::open_writer(dir.path(), "normal").unwrap();
        let n = New {
            alert: None,
            building: "b1",
            rule: None,
            description: "exit locked",
            photo_url: None,
            by: "Li",
            auto: false,
            deadline_at: 10_000,
        };
        let w = insert(&conn, &n, 1_000).unwrap();
        let r = step(&conn, w.id, Step::Accept, "Wang", "ok", None, 2_000);
        assert!(matches!(r, Err(WorkorderError::Conflict(_))), "{r:?}");
        let w2 = step(&conn, w.id, Step::Rectify, "Zhao", "unlocked", None, 3_000).unwrap();
        assert_eq!(w2.status, WorkorderStatus::Rectified);
        let steps: Vec<String> = history_of(&conn, w.id)
            .unwrap()
            .into_iter()
            .map(|h| h.what)
            .collect();
        assert_eq!(steps, ["created", "rectified"]);
        // Rectified orders are not overdue; open ones past their deadline are, once.
        assert!(due_overdue(&conn, 20_000, 10).unwrap().is_empty());
        step(
            &conn,
            w.id,
            Step::SendBack,
            "Wang",
            "still locked",
            None,
            4_000,
        )
        .unwrap();
        let due = due_overdue(&conn, 20_000, 10).unwrap();
        assert_eq!(due.len(), 1);
        mark_overdue(&conn, &due[0], 20_000).unwrap();
        assert!(due_overdue(&conn, 30_000, 10).unwrap().is_empty());
        let f = Filter {
            overdue: Some(true),
            limit: 10,
            ..Filter::default()
        };
        assert_eq!(list(&conn, &f).unwrap().len(), 1);
    }
}
