//! Escalation timers: one row per alert whose escalation is under way, with its state (a
//! record the alert stage defines) and when it is next due. Written in the pipeline's
//! transaction together with the notifications a step queues, so a restart in the middle of
//! an escalation neither repeats a step nor misses one.

use super::{from_json, to_json, Result};
use crate::model::Millis;
use rusqlite::{params, Connection, OptionalExtension};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Saves the timer of `alert`, next due at `next_at`; `None` ends it.
pub fn save<T: Serialize>(
    conn: &Connection,
    alert: i64,
    timer: &T,
    next_at: Option<Millis>,
) -> Result<()> {
    let Some(next_at) = next_at else {
        return stop(conn, alert);
    };
    conn.prepare_cached(
        "INSERT INTO escalations (alert_id, next_at, timer) VALUES (?1, ?2, ?3)
         ON CONFLICT(alert_id) DO UPDATE SET next_at = excluded.next_at, timer = excluded.timer",
    )?
    .execute(params![alert, next_at, to_json(timer, "escalation timer")?])?;
    Ok(())
}

/// Ends the escalation of `alert` (acknowledged or closed).
pub fn stop(conn: &Connection, alert: i64) -> Result<()> {
    conn.prepare_cached("DELETE FROM escalations WHERE alert_id = ?1")?
        .execute([alert])?;
    Ok(())
}

/// The timer of `alert`, if its escalation is under way.
pub fn get<T: DeserializeOwned>(conn: &Connection, alert: i64) -> Result<Option<T>> {
    let s: Option<String> = conn
        .prepare_cached("SELECT timer FROM escalations WHERE alert_id = ?1")?
        .query_row([alert], |r| r.get(0))
        .optional()?;
    s.map(|s| from_json(&s, "escalation timer")).transpose()
}

/// Timers due at `now`, the earliest first (at most `limit`).
pub fn due<T: DeserializeOwned>(
    conn: &Connection,
    now: Millis,
    limit: u32,
) -> Result<Vec<(i64, T)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT alert_id, timer FROM escalations WHERE next_at <= ?1 ORDER BY next_at LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now, limit], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, s) = row?;
        out.push((id, from_json(&s, "escalation timer")?));
    }
    Ok(out)
}

/// Escalations under way.
pub fn count(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT count(*) FROM escalations", [], |r| r.get(0))?)
}
