//! Escalation timers: one row per alert whose escalation is under way, with its state (a
//! record the alert stage defines) and when it is next due. Written in the pipeline's
//! transaction together with the notifications a step queues, so a restart in the middle of
//! an escalation neither repeats a step nor misses one.

use super::sql::Db;
use super::{from_json, to_json, Result};
use crate::args;
use crate::model::Millis;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Saves the timer of `alert`, next due at `next_at`; `None` ends it.
pub fn save<T: Serialize>(
    conn: &dyn Db,
    alert: i64,
    timer: &T,
    next_at: Option<Millis>,
) -> Result<()> {
    let Some(next_at) = next_at else {
        return stop(conn, alert);
    };
    conn.exec(
        "INSERT INTO escalations (alert_id, next_at, timer) VALUES (?1, ?2, ?3)
         ON CONFLICT(alert_id) DO UPDATE SET next_at = excluded.next_at, timer = excluded.timer",
        args![alert, next_at, &to_json(timer, "escalation timer")?],
    )?;
    Ok(())
}

/// Ends the escalation of `alert` (acknowledged or closed).
pub fn stop(conn: &dyn Db, alert: i64) -> Result<()> {
    conn.exec("DELETE FROM escalations WHERE alert_id = ?1", args![alert])?;
    Ok(())
}

/// The timer of `alert`, if its escalation is under way.
pub fn get<T: DeserializeOwned>(conn: &dyn Db, alert: i64) -> Result<Option<T>> {
    let s: Option<String> = conn.one(
        "SELECT timer FROM escalations WHERE alert_id = ?1",
        args![alert],
    )?;
    s.map(|s| from_json(&s, "escalation timer")).transpose()
}

/// Timers due at `now`, the earliest first (at most `limit`).
pub fn due<T: DeserializeOwned>(conn: &dyn Db, now: Millis, limit: u32) -> Result<Vec<(i64, T)>> {
    conn.rows(
        "SELECT alert_id, timer FROM escalations WHERE next_at <= ?1 ORDER BY next_at, alert_id LIMIT ?2",
        args![now, limit],
    )?
    .iter()
    .map(|r| {
        let s: String = r.get(1)?;
        Ok((r.get::<i64>(0)?, from_json(&s, "escalation timer")?))
    })
    .collect()
}

/// Escalations under way.
pub fn count(conn: &dyn Db) -> Result<i64> {
    Ok(conn
        .one::<i64>("SELECT count(*) FROM escalations", args![])?
        .unwrap_or(0))
}
