//! (added) Daily summaries (每日汇总) to buildings' fire-safety managers: one row per summary
//! made, with what it says as JSON (the snapshot, fixed when it was made), in the transaction
//! that queues its notifications. A partial unique index allows one scheduled summary per
//! building and local day, so the schedule cannot make a second one of a day after a restart.
//! Written by the pipeline only.

use super::sql::{Db, Row};
use super::{Result, StoreError};
use crate::args;
use crate::model::summary::{summary_id, SummaryReason};
use crate::model::{rfc3339, Millis};
use serde_json::Value;

/// The table, created with the store.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS summaries (
    id INTEGER PRIMARY KEY,
    building TEXT NOT NULL,
    day TEXT NOT NULL,
    reason TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    targets INTEGER NOT NULL,
    snapshot TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS summaries_daily ON summaries(building, day)
    WHERE reason = 'scheduled';
CREATE INDEX IF NOT EXISTS summaries_building ON summaries(building, id);
";

/// A summary to insert.
#[derive(Debug, Clone, Copy)]
pub struct New<'a> {
    /// Building id.
    pub building: &'a str,
    /// The control room's local date it is for, `YYYY-MM-DD`.
    pub day: &'a str,
    /// Why.
    pub reason: SummaryReason,
    /// Who asked (`schedule` for the schedule).
    pub by: &'a str,
    /// How many (channel, target) pairs it goes to.
    pub targets: usize,
    /// What it says.
    pub snapshot: &'a Value,
}

/// Inserts a summary; returns its row id.
pub fn insert(c: &dyn Db, n: &New<'_>, now: Millis) -> Result<i64> {
    let snapshot = n.snapshot.to_string();
    c.one(
        "INSERT INTO summaries (building, day, reason, requested_by, created_at, targets,
         snapshot) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        args![
            n.building,
            n.day,
            n.reason.as_str(),
            n.by,
            now,
            i64::try_from(n.targets).unwrap_or(i64::MAX),
            &snapshot
        ],
    )?
    .ok_or(StoreError::Corrupt {
        what: "summary",
        err: "no id returned".into(),
    })
}

/// The scheduled summary of `building` for local `day` was made already.
pub fn scheduled_exists(c: &dyn Db, building: &str, day: &str) -> Result<bool> {
    Ok(c.row(
        "SELECT 1 FROM summaries WHERE building = ?1 AND day = ?2 AND reason = 'scheduled'",
        args![building, day],
    )?
    .is_some())
}

/// One summary as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Row id (shown as `s-000001`).
    pub id: i64,
    /// Building.
    pub building: String,
    /// Local date.
    pub day: String,
    /// Why it was made.
    pub reason: SummaryReason,
    /// Who asked.
    pub requested_by: String,
    /// When it was made.
    pub created_at: Millis,
    /// How many (channel, target) pairs it went to.
    pub targets: i64,
    /// What it says (with its `id`).
    pub snapshot: Value,
}

impl Summary {
    /// The API's JSON: the row, and the snapshot unless `brief` (then only its `counts`).
    pub fn to_json(&self, brief: bool) -> Value {
        let mut j = serde_json::json!({
            "id": summary_id(self.id),
            "building": self.building,
            "building_name": self.snapshot.get("building_name"),
            "day": self.day,
            "reason": self.reason.as_str(),
            "requested_by": self.requested_by,
            "created_at": rfc3339(self.created_at),
            "targets": self.targets,
            "counts": self.snapshot.get("counts"),
        });
        if !brief {
            j["snapshot"] = self.snapshot.clone();
        }
        j
    }
}

const COLUMNS: &str = "id, building, day, reason, requested_by, created_at, targets, snapshot";

fn from_row(r: &Row) -> Result<(Summary, String)> {
    let reason: String = r.get(3)?;
    let reason = reason.parse().map_err(|()| StoreError::Corrupt {
        what: "summary",
        err: format!("column 3: unknown summary reason {reason:?}"),
    })?;
    Ok((
        Summary {
            id: r.get(0)?,
            building: r.get(1)?,
            day: r.get(2)?,
            reason,
            requested_by: r.get(4)?,
            created_at: r.get(5)?,
            targets: r.get(6)?,
            snapshot: Value::Null,
        },
        r.get(7)?,
    ))
}

fn with_snapshot((mut s, text): (Summary, String)) -> Result<Summary> {
    let mut v: Value = serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
        what: "summary snapshot",
        err: e.to_string(),
    })?;
    v["id"] = summary_id(s.id).into();
    s.snapshot = v;
    Ok(s)
}

/// One summary.
pub fn get(c: &dyn Db, id: i64) -> Result<Option<Summary>> {
    let sql = format!("SELECT {COLUMNS} FROM summaries WHERE id = ?1");
    c.row(&sql, args![id])?
        .as_ref()
        .map(|r| from_row(r).and_then(with_snapshot))
        .transpose()
}

/// Summaries, newest first, optionally of one building.
pub fn list(c: &dyn Db, building: Option<&str>, limit: u32) -> Result<Vec<Summary>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM summaries WHERE (?1 IS NULL OR building = ?1)
         ORDER BY id DESC LIMIT ?2"
    );
    let rows = c
        .rows(&sql, args![building, limit])?
        .iter()
        .map(from_row)
        .collect::<Result<Vec<_>>>()?;
    rows.into_iter().map(with_snapshot).collect()
}

/// The building of summary `id`, for the change feed of its deliveries.
pub fn building_of(c: &dyn Db, id: i64) -> Result<Option<String>> {
    c.one("SELECT building FROM summaries WHERE id = ?1", args![id])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_scheduled_summary_per_building_and_day() {
        let dir = tempfile::tempdir().unwrap();
        let c = super::super::open_writer(dir.path(), "normal").unwrap();
        let snap = serde_json::json!({"building": "b1", "counts": {"offline": 2}});
        let new = |reason, day| New {
            building: "b1",
            day,
            reason,
            by: "schedule",
            targets: 1,
            snapshot: &snap,
        };
        assert!(!scheduled_exists(&c, "b1", "2026-12-01").unwrap());
        let id = insert(&c, &new(SummaryReason::Scheduled, "2026-12-01"), 5).unwrap();
        assert!(scheduled_exists(&c, "b1", "2026-12-01").unwrap());
        assert!(!scheduled_exists(&c, "b2", "2026-12-01").unwrap());
        assert!(
            insert(&c, &new(SummaryReason::Scheduled, "2026-12-01"), 6).is_err(),
            "a second scheduled one of the day"
        );
        // On demand: as many as asked for.
        insert(&c, &new(SummaryReason::OnDemand, "2026-12-01"), 7).unwrap();
        insert(&c, &new(SummaryReason::OnDemand, "2026-12-01"), 8).unwrap();
        insert(&c, &new(SummaryReason::Scheduled, "2026-12-02"), 9).unwrap();
        let all = list(&c, Some("b1"), 10).unwrap();
        assert_eq!(all.len(), 4);
        assert_eq!(all[3].id, id);
        let s = get(&c, id).unwrap().unwrap();
        assert_eq!(s.snapshot["id"], "s-000001");
        assert_eq!(s.to_json(true)["counts"]["offline"], 2);
        assert!(s.to_json(true).get("snapshot").is_none());
        assert_eq!(building_of(&c, id).unwrap().as_deref(), Some("b1"));
        assert!(list(&c, Some("b2"), 10).unwrap().is_empty());
    }
}
