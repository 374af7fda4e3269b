//! The notification outbox's bookkeeping: the outcome of each delivery attempt, recorded by the
//! store's single writer together with the alert's history.

use super::Result;
use crate::model::Millis;
use rusqlite::{params, Connection};

/// Longest wait between attempts.
pub const MAX_BACKOFF_MS: i64 = 300_000;

/// The outcome of one delivery attempt, recorded by the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Outbox row.
    pub id: i64,
    /// Its alert.
    pub alert_id: i64,
    /// fired, cleared, closed, repeat.
    pub event: String,
    /// Recipients.
    pub recipients: String,
    /// Attempts before this one.
    pub attempts: i64,
    /// When it finished.
    pub at: Millis,
    /// Ok, or (permanent, error).
    pub outcome: std::result::Result<(), (bool, String)>,
}

/// Records a delivery attempt inside the caller's transaction: the outbox row and the alert's
/// history change together.
pub fn record_delivery(c: &Connection, d: &Delivery) -> Result<()> {
    let (row, now, outcome) = (d, d.at, d.outcome.clone());
    let detail =
        serde_json::json!({"event": row.event, "to": row.recipients, "attempt": row.attempts + 1});
    match outcome {
        Ok(()) => {
            c.execute(
                "UPDATE outbox SET sent_at = ?2, attempts = attempts + 1, last_error = NULL WHERE id = ?1",
                params![row.id, now],
            )?;
            super::alerts::record_notification(c, row.alert_id, now, "notified", detail)?;
        }
        Err((permanent, msg)) => {
            let attempts = row.attempts + 1;
            // Exponential backoff from 1 s, capped at 5 min. A permanent failure still retries
            // at the cap: an alert must not vanish because the mail server refused once.
            let backoff = if permanent {
                MAX_BACKOFF_MS
            } else {
                (1000_i64 << attempts.min(20)).min(MAX_BACKOFF_MS)
            };
            c.execute(
                "UPDATE outbox SET attempts = ?2, next_attempt_at = ?3, last_error = ?4 WHERE id = ?1",
                params![row.id, attempts, now + backoff, msg],
            )?;
            let mut d = detail;
            d["error"] = msg.into();
            super::alerts::record_notification(c, row.alert_id, now, "notify_failed", d)?;
        }
    }
    Ok(())
}
