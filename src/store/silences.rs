//! Silences and maintenance windows (table `silences`, the spec as JSON) and which open alerts
//! one holds back now (table `alert_silences`). Written by the pipeline, which keeps both in
//! memory; read by the API.

use super::{Result, StoreError};
use crate::model::silence::Silence;
use crate::model::Millis;
use rusqlite::{params, Connection, OptionalExtension};

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
pub fn insert(c: &Connection, s: &Silence) -> Result<Silence> {
    c.prepare_cached("INSERT INTO silences (spec, created_at) VALUES (?1, ?2)")?
        .execute(params![encode(s)?, s.created_at])?;
    let mut s = s.clone();
    s.id = c.last_insert_rowid();
    Ok(s)
}

/// Writes a silence's spec back (after an early expiry).
pub fn update(c: &Connection, s: &Silence) -> Result<()> {
    c.prepare_cached("UPDATE silences SET spec = ?2, expired_at = ?3 WHERE id = ?1")?
        .execute(params![s.id, encode(s)?, s.expired_at])?;
    Ok(())
}

/// One silence.
pub fn get(c: &Connection, id: i64) -> Result<Option<Silence>> {
    let spec: Option<String> = c
        .prepare_cached("SELECT spec FROM silences WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    spec.map(|s| decode(id, &s)).transpose()
}

/// Every silence, newest first.
pub fn all(c: &Connection) -> Result<Vec<Silence>> {
    let mut st = c.prepare_cached("SELECT id, spec FROM silences ORDER BY id DESC")?;
    let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
    let mut out = Vec::new();
    for r in rows {
        let (id, spec) = r?;
        out.push(decode(id, &spec)?);
    }
    Ok(out)
}

/// Silences that may still cover something at or after `at` (the pipeline's working set:
/// nothing expired before `at`).
pub fn in_force(c: &Connection, at: Millis) -> Result<Vec<Silence>> {
    Ok(all(c)?
        .into_iter()
        .filter(|s| s.state(at) != crate::model::silence::State::Expired)
        .collect())
}

/// Records that `silence` holds back `alert` since `at`.
pub fn mark(c: &Connection, alert: i64, silence: i64, at: Millis) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO alert_silences (alert_id, silence_id, since) VALUES (?1, ?2, ?3)
         ON CONFLICT (alert_id) DO NOTHING",
    )?
    .execute(params![alert, silence, at])?;
    Ok(())
}

/// The alert is no longer held back.
pub fn unmark(c: &Connection, alert: i64) -> Result<()> {
    c.prepare_cached("DELETE FROM alert_silences WHERE alert_id = ?1")?
        .execute([alert])?;
    Ok(())
}

/// The silence holding `alert` back, and since when.
pub fn mark_of(c: &Connection, alert: i64) -> Result<Option<(i64, Millis)>> {
    Ok(
        c.prepare_cached("SELECT silence_id, since FROM alert_silences WHERE alert_id = ?1")?
            .query_row([alert], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?,
    )
}

/// (added) Records that `alert` fired during drill `silence` (mode `drill` or `test`), for
/// good: the mark stays after the drill.
pub fn mark_drill(c: &Connection, alert: i64, s: &Silence, at: Millis) -> Result<bool> {
    Ok(c.prepare_cached(
        "INSERT INTO alert_drills (alert_id, silence_id, mode, since) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (alert_id) DO NOTHING",
    )?
    .execute(params![alert, s.id, s.mode.as_str(), at])?
        > 0)
}

/// (added) The drill `alert` fired during: silence id, mode, since.
pub fn drill_of(c: &Connection, alert: i64) -> Result<Option<(i64, String, Millis)>> {
    Ok(
        c.prepare_cached("SELECT silence_id, mode, since FROM alert_drills WHERE alert_id = ?1")?
            .query_row([alert], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?,
    )
}

/// Every held-back alert with its silence.
pub fn marks(c: &Connection) -> Result<Vec<(i64, i64)>> {
    let mut st = c.prepare_cached("SELECT alert_id, silence_id FROM alert_silences")?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// How many alerts each silence holds back now.
pub fn held_counts(c: &Connection) -> Result<std::collections::HashMap<i64, i64>> {
    let mut st =
        c.prepare_cached("SELECT silence_id, COUNT(*) FROM alert_silences GROUP BY silence_id")?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
