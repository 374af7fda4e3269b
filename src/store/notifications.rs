//! The channel-agnostic notification outbox: one row per (alert transition, channel, target),
//! queued in the transaction that committed the transition, with the alert as it was then.
//! Each channel's sender reads its own rows through a read-only connection; the outcome of
//! every attempt is recorded here by the store's single writer, together with the alert's
//! history.

use super::Result;
use crate::model::notification::{ChannelKind, DeliveryStatus, Event, Look, Notification};
use crate::model::{rfc3339, Millis};
use rusqlite::{params, Connection};
use serde_json::{json, Value};

/// Who a transition's notifications go to, and how they read.
#[derive(Debug, Clone, Copy)]
pub struct Recipients<'a> {
    /// (channel, target) pairs.
    pub targets: &'a [(ChannelKind, String)],
    /// Language and time zone per target.
    pub look: &'a Look,
}

/// Queues one notification per target for an alert transition (`transition` is its
/// alert-history entry). A key already queued is left as it is.
pub fn enqueue(
    conn: &Connection,
    alert: i64,
    event: Event,
    transition: i64,
    to: Recipients<'_>,
    snapshot: &Value,
    now: Millis,
) -> Result<()> {
    let Recipients { targets, look } = to;
    let snapshot = snapshot.to_string();
    let mut stmt = conn.prepare_cached(
        "INSERT INTO notifications (alert_id, event, channel, target, key, created_at,
         next_attempt_at, alert, lang, tz) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8, ?9)
         ON CONFLICT(key) DO NOTHING",
    )?;
    for (channel, target) in targets {
        let key = crate::model::notification::key(alert, event, transition, *channel, target);
        let lang = look.english.contains(target).then_some("en");
        stmt.execute(params![
            alert,
            event.as_str(),
            channel.as_str(),
            target,
            key,
            now,
            snapshot,
            lang,
            look.tz
        ])?;
    }
    Ok(())
}

fn corrupt(what: &'static str, v: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("unknown {what} {v:?}").into(),
    )
}

/// Every (channel, target) told of `alert` so far, in the order first told.
pub fn told(c: &Connection, alert: i64) -> Result<Vec<(ChannelKind, String)>> {
    let mut stmt = c.prepare_cached(
        "SELECT channel, target FROM notifications WHERE alert_id = ?1
         GROUP BY channel, target ORDER BY min(id)",
    )?;
    let rows = stmt.query_map([alert], |r| {
        let ch: String = r.get(0)?;
        let channel = ch.parse().map_err(|()| corrupt("channel", &ch))?;
        Ok((channel, r.get::<_, String>(1)?))
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// The highest notification id (0 when there is none).
pub fn max_id(c: &Connection) -> Result<i64> {
    Ok(
        c.query_row("SELECT ifnull(max(id), 0) FROM notifications", [], |r| {
            r.get(0)
        })?,
    )
}

/// Pending rows of one channel that are due at `now` (at most `limit`, oldest first), the
/// count of its pending rows, and when the next one is due.
#[allow(clippy::type_complexity)]
pub fn due(
    c: &Connection,
    channel: ChannelKind,
    now: Millis,
    limit: u32,
) -> Result<(Vec<Notification>, i64, Option<Millis>)> {
    let mut stmt = c.prepare_cached(
        "SELECT id, alert_id, key, event, target, created_at, attempts, alert, lang, tz
         FROM notifications WHERE status = 'pending' AND channel = ?1 AND next_attempt_at <= ?2
         ORDER BY next_attempt_at, id LIMIT ?3",
    )?;
    let rows = stmt
        .query_map(params![channel.as_str(), now, limit], |r| {
            let event: String = r.get(3)?;
            let alert: String = r.get(7)?;
            Ok(Notification {
                id: r.get(0)?,
                alert_id: r.get(1)?,
                key: r.get(2)?,
                event: event.parse().map_err(|()| corrupt("event", &event))?,
                channel,
                target: r.get(4)?,
                created_at: r.get(5)?,
                attempts: r.get(6)?,
                alert: serde_json::from_str(&alert).map_err(|_| corrupt("snapshot", &alert))?,
                lang: r.get(8)?,
                tz: r.get(9)?,
            })
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let (queued, next): (i64, Option<Millis>) = c
        .prepare_cached(
            "SELECT count(*), min(next_attempt_at) FROM notifications
             WHERE status = 'pending' AND channel = ?1",
        )?
        .query_row([channel.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok((rows, queued, next))
}

/// How one attempt ended, as its channel's sender decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The receiver accepted it.
    Sent,
    /// A transient failure: try again at `next_attempt_at`.
    Retry {
        /// Why it failed.
        error: String,
        /// When to try again.
        next_attempt_at: Millis,
    },
    /// No more attempts: a permanent refusal, or the last allowed attempt failed.
    GaveUp {
        /// Why it failed.
        error: String,
        /// The receiver refused for good (not a count of transient failures).
        permanent: bool,
    },
}

/// The outcome of one delivery attempt, recorded by the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Outbox row.
    pub id: i64,
    /// Its alert.
    pub alert_id: i64,
    /// Idempotency key.
    pub key: String,
    /// What it told of.
    pub event: Event,
    /// How.
    pub channel: ChannelKind,
    /// To whom.
    pub target: String,
    /// This attempt's number, from 1.
    pub attempt: u32,
    /// When it finished.
    pub at: Millis,
    /// How it ended.
    pub outcome: Outcome,
}

/// Records a delivery attempt inside the caller's transaction: the outbox row and the alert's
/// history change together. A report for a row that is no longer pending (a repeated report)
/// changes nothing.
pub fn record_delivery(c: &Connection, d: &Delivery) -> Result<()> {
    let mut detail = json!({
        "event": d.event.as_str(),
        "channel": d.channel.as_str(),
        "target": d.target,
        "attempt": d.attempt,
        "key": d.key,
    });
    if d.channel == ChannelKind::Email {
        detail["to"] = d.target.clone().into();
    }
    let alerts = super::alerts::record_notification;
    match &d.outcome {
        Outcome::Sent => {
            let n = c.execute(
                "UPDATE notifications SET status = 'sent', sent_at = ?2, attempts = ?3,
                 last_error = NULL WHERE id = ?1 AND status = 'pending'",
                params![d.id, d.at, d.attempt],
            )?;
            if n > 0 {
                alerts(c, d.alert_id, d.at, "notified", detail)?;
            }
        }
        Outcome::Retry {
            error,
            next_attempt_at,
        } => {
            let n = c.execute(
                "UPDATE notifications SET attempts = ?2, next_attempt_at = ?3, last_error = ?4
                 WHERE id = ?1 AND status = 'pending'",
                params![d.id, d.attempt, next_attempt_at, error],
            )?;
            if n > 0 {
                detail["error"] = error.clone().into();
                detail["next_attempt_at"] = rfc3339(*next_attempt_at).into();
                alerts(c, d.alert_id, d.at, "notify_failed", detail)?;
            }
        }
        Outcome::GaveUp { error, permanent } => {
            let n = c.execute(
                "UPDATE notifications SET status = 'failed', attempts = ?2, last_error = ?3
                 WHERE id = ?1 AND status = 'pending'",
                params![d.id, d.attempt, error],
            )?;
            if n > 0 {
                detail["error"] = error.clone().into();
                detail["permanent"] = (*permanent).into();
                alerts(c, d.alert_id, d.at, "notify_failed", detail.clone())?;
                alerts(c, d.alert_id, d.at, "notify_gave_up", detail)?;
            }
        }
    }
    Ok(())
}

/// Filters of `GET /api/v1/notifications`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// One alert's.
    pub alert: Option<i64>,
    /// pending, sent, failed.
    pub status: Option<DeliveryStatus>,
    /// email, webhook, wecom, dingtalk, sms.
    pub channel: Option<ChannelKind>,
    /// At most.
    pub limit: u32,
}

/// Outbox rows, newest first, in API form.
pub fn list(c: &Connection, f: &Filter) -> Result<Vec<Value>> {
    let mut stmt = c.prepare_cached(
        "SELECT id, alert_id, key, event, channel, target, status, attempts, created_at,
         next_attempt_at, sent_at, last_error FROM notifications
         WHERE (?1 IS NULL OR alert_id = ?1) AND (?2 IS NULL OR status = ?2)
         AND (?3 IS NULL OR channel = ?3) ORDER BY id DESC LIMIT ?4",
    )?;
    let rows = stmt.query_map(
        params![
            f.alert,
            f.status.map(DeliveryStatus::as_str),
            f.channel.map(ChannelKind::as_str),
            f.limit
        ],
        |r| {
            let status: String = r.get(6)?;
            Ok(json!({
                "id": r.get::<_, i64>(0)?,
                "alert": crate::model::alert::alert_id(r.get(1)?),
                "key": r.get::<_, String>(2)?,
                "event": r.get::<_, String>(3)?,
                "channel": r.get::<_, String>(4)?,
                "target": r.get::<_, String>(5)?,
                "status": status,
                "attempts": r.get::<_, i64>(7)?,
                "created_at": rfc3339(r.get(8)?),
                "next_attempt_at": (status == "pending").then(|| r.get(9).map(rfc3339)).transpose()?,
                "sent_at": r.get::<_, Option<Millis>>(10)?.map(rfc3339),
                "last_error": r.get::<_, Option<String>>(11)?,
            }))
        },
    )?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}
