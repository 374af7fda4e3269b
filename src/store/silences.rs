//! Silences and maintenance windows (table `silences`, the spec as JSON) and which open alerts
//! one holds back now (table `alert_silences`). Written by the pipeline, which keeps both in
//! memory; read by the API.

use super::sql::{Db, Row};
use super::{Result, StoreError};
use crate::args;
use crate::model::silence::Silence;
use crate::model::Millis;

/// The tables.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS silences (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    spec        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expired_at  INTEGER
);
CREATE TABLE IF NOT EXISTS alert_silences (
    alert_id    INTEGER PRIMARY KEY,
    silence_id  INTEGER NOT NULL,
    since       INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_drills (
    alert_id    INTEGER PRIMARY KEY,
    silence_id  INTEGER NOT NULL,
    mode        TEXT NOT NULL,
    since       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_drills_silence ON alert_drills(silence_id);
"#;

fn decode(id: i64, spec: &str) -> Result<Silence> {
    let mut s: Silence = serde_json::from_str(spec).map_err(|e| StoreError::Corrupt {
        what: "silence",
        err: e.to_string(),
    })?;
    s.id = id;
    Ok(s)
}

fn encode(s: &Silence) -> Result<String> {
    serde_json::to_string(s).map_err(|e| StoreError::Corrupt {
        what: "silence",
        err: e.to_string(),
    })
}

/// Stores a new silence; returns it with its id.
pub fn insert(c: &dyn Db, s: &Silence) -> Result<Silence> {
    let id: i64 = c
        .one(
            "INSERT INTO silences (spec, created_at) VALUES (?1, ?2) RETURNING id",
            args![&encode(s)?, s.created_at],
        )?
        .ok_or(StoreError::Corrupt {
            what: "silence",
            err: "no id returned".into(),
        })?;
    let mut s = s.clone();
    s.id = id;
    Ok(s)
}

/// Writes a silence's spec back (after an early expiry).
pub fn update(c: &dyn Db, s: &Silence) -> Result<()> {
    c.exec(
        "UPDATE silences SET spec = ?2, expired_at = ?3 WHERE id = ?1",
        args![s.id, &encode(s)?, s.expired_at],
    )?;
    Ok(())
}

/// One silence.
pub fn get(c: &dyn Db, id: i64) -> Result<Option<Silence>> {
    let spec: Option<String> = c.one("SELECT spec FROM silences WHERE id = ?1", args![id])?;
    spec.map(|s| decode(id, &s)).transpose()
}

/// Every silence, newest first.
pub fn all(c: &dyn Db) -> Result<Vec<Silence>> {
    c.rows("SELECT id, spec FROM silences ORDER BY id DESC", args![])?
        .iter()
        .map(|r| decode(r.get(0)?, &r.get::<String>(1)?))
        .collect()
}

/// Silences that may still cover something at or after `at` (the pipeline's working set:
/// nothing expired before `at`).
pub fn in_force(c: &dyn Db, at: Millis) -> Result<Vec<Silence>> {
    Ok(all(c)?
        .into_iter()
        .filter(|s| s.state(at) != crate::model::silence::State::Expired)
        .collect())
}

/// Records that `silence` holds back `alert` since `at`.
pub fn mark(c: &dyn Db, alert: i64, silence: i64, at: Millis) -> Result<()> {
    c.exec(
        "INSERT INTO alert_silences (alert_id, silence_id, since) VALUES (?1, ?2, ?3)
         ON CONFLICT (alert_id) DO NOTHING",
        args![alert, silence, at],
    )?;
    Ok(())
}

/// The alert is no longer held back.
pub fn unmark(c: &dyn Db, alert: i64) -> Result<()> {
    c.exec(
        "DELETE FROM alert_silences WHERE alert_id = ?1",
        args![alert],
    )?;
    Ok(())
}

/// The silence holding `alert` back, and since when.
pub fn mark_of(c: &dyn Db, alert: i64) -> Result<Option<(i64, Millis)>> {
    c.row(
        "SELECT silence_id, since FROM alert_silences WHERE alert_id = ?1",
        args![alert],
    )?
    .map(|r| Ok((r.get(0)?, r.get(1)?)))
    .transpose()
}

/// (added) Records that `alert` fired during drill `silence` (mode `drill` or `test`), for
/// good: the mark stays after the drill.
pub fn mark_drill(c: &dyn Db, alert: i64, s: &Silence, at: Millis) -> Result<bool> {
    Ok(c.exec(
        "INSERT INTO alert_drills (alert_id, silence_id, mode, since) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (alert_id) DO NOTHING",
        args![alert, s.id, s.mode.as_str(), at],
    )? > 0)
}

/// (added) The drill `alert` fired during: silence id, mode, since.
pub fn drill_of(c: &dyn Db, alert: i64) -> Result<Option<(i64, String, Millis)>> {
    c.row(
        "SELECT silence_id, mode, since FROM alert_drills WHERE alert_id = ?1",
        args![alert],
    )?
    .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
    .transpose()
}

fn pair(r: &Row) -> Result<(i64, i64)> {
    Ok((r.get(0)?, r.get(1)?))
}

/// Every held-back alert with its silence.
pub fn marks(c: &dyn Db) -> Result<Vec<(i64, i64)>> {
    c.rows("SELECT alert_id, silence_id FROM alert_silences", args![])?
        .iter()
        .map(pair)
        .collect()
}

/// How many alerts each silence holds back now.
pub fn held_counts(c: &dyn Db) -> Result<std::collections::HashMap<i64, i64>> {
    c.rows(
        "SELECT silence_id, COUNT(*) FROM alert_silences GROUP BY silence_id",
        args![],
    )?
    .iter()
    .map(pair)
    .collect()
}
