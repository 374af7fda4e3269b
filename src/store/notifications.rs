//! The channel-agnostic notification outbox: one row per (transition, channel, target) of an
//! alert or a work order, or per (channel, target) of a daily summary, queued in the
//! transaction that committed the transition (or made the summary), with the subject as it
//! was then. Each channel's sender reads its own rows through a read-only
//! connection; the outcome of every attempt is recorded here by the store's single writer,
//! together with the alert's or work order's history.

use super::sql::{Db, Row};
use super::{Result, StoreError};
use crate::args;
use crate::model::notification::{ChannelKind, DeliveryStatus, Event, Look, Notification, Subject};
use crate::model::{rfc3339, Millis};
use rusqlite::Connection;
use serde_json::{json, Value};

/// The outbox table. `alert_id`, `workorder_id` or (added) `summary_id` names the subject;
/// `alert` holds its snapshot (the alert's, the work order's or the summary's JSON).
const TABLE: &str = "
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY,
    alert_id INTEGER,
    event TEXT NOT NULL,
    channel TEXT NOT NULL,
    target TEXT NOT NULL,
    key TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    sent_at INTEGER,
    last_error TEXT,
    alert TEXT NOT NULL,
    lang TEXT,
    tz TEXT,
    workorder_id INTEGER,
    summary_id INTEGER
);";

/// Its indexes.
const INDEXES: &str = "
CREATE UNIQUE INDEX IF NOT EXISTS notifications_key ON notifications(key);
CREATE INDEX IF NOT EXISTS notifications_due
    ON notifications(channel, next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS notifications_alert ON notifications(alert_id, id);
CREATE INDEX IF NOT EXISTS notifications_workorder ON notifications(workorder_id, id)
    WHERE workorder_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS notifications_summary ON notifications(summary_id, id)
    WHERE summary_id IS NOT NULL;";

/// Creates the table when it is missing (its indexes come with [`migrate`]).
pub(super) fn create(conn: &Connection) -> Result<()> {
    conn.execute_batch(TABLE)?;
    Ok(())
}

/// Brings the table of an older store up to date, once its added columns are there
/// (`workorder_id`, `summary_id`: nullable, added in place): stores from before work-order
/// notifications declared `alert_id NOT NULL`, which SQLite cannot relax in place, so the
/// table is rebuilt with every row. Then the indexes.
pub(super) fn migrate(conn: &Connection) -> Result<()> {
    let strict: i64 = conn.query_row(
        "SELECT count(*) FROM pragma_table_info('notifications')
         WHERE name = 'alert_id' AND \"notnull\" = 1",
        [],
        |r| r.get(0),
    )?;
    if strict > 0 {
        let columns = "id, alert_id, event, channel, target, key, created_at, status, attempts,
             next_attempt_at, sent_at, last_error, alert, lang, tz, workorder_id, summary_id";
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE;
             DROP INDEX IF EXISTS notifications_key;
             DROP INDEX IF EXISTS notifications_due;
             DROP INDEX IF EXISTS notifications_alert;
             DROP INDEX IF EXISTS notifications_workorder;
             DROP INDEX IF EXISTS notifications_summary;
             ALTER TABLE notifications RENAME TO notifications_before;
             {TABLE}
             INSERT INTO notifications ({columns}) SELECT {columns} FROM notifications_before;
             DROP TABLE notifications_before;
             COMMIT;"
        ))?;
        tracing::info!("Outbox table migrated: rows may now tell of work orders.");
    }
    conn.execute_batch(INDEXES)?;
    Ok(())
}

/// Who a transition's notifications go to, and how they read.
#[derive(Debug, Clone, Copy)]
pub struct Recipients<'a> {
    /// (channel, target) pairs.
    pub targets: &'a [(ChannelKind, String)],
    /// Language and time zone per target.
    pub look: &'a Look,
}

/// Queues one notification per target for a transition of `subject` (`transition` is its
/// history entry). A key already queued is left as it is.
pub fn enqueue(
    conn: &dyn Db,
    subject: Subject,
    event: Event,
    transition: i64,
    to: Recipients<'_>,
    snapshot: &Value,
    now: Millis,
) -> Result<()> {
    let key = |channel, target: &str| {
        crate::model::notification::key(subject, event, transition, channel, target)
    };
    insert(conn, subject, event, to, snapshot, now, &key).map(|_| ())
}

/// (added) Queues the notifications of daily summary `id` of `building` for local `day`, one
/// per target, with the keys of [`crate::model::notification::summary_key`]: a scheduled
/// summary's key names only the building and the day, so a second one of the same day could
/// not be queued even if it were made. Returns how many rows were queued (a key already
/// queued is left as it is and not counted).
#[allow(clippy::too_many_arguments)]
pub fn enqueue_summary(
    conn: &dyn Db,
    id: i64,
    building: &str,
    day: &str,
    on_demand: bool,
    to: Recipients<'_>,
    snapshot: &Value,
    now: Millis,
) -> Result<usize> {
    let key = |channel, target: &str| {
        crate::model::notification::summary_key(
            building,
            day,
            on_demand.then_some(id),
            channel,
            target,
        )
    };
    let subject = Subject::Summary(id);
    insert(conn, subject, Event::DailySummary, to, snapshot, now, &key)
}

/// Inserts one row per target, keyed by `key(channel, target)`; returns the rows inserted.
fn insert(
    conn: &dyn Db,
    subject: Subject,
    event: Event,
    to: Recipients<'_>,
    snapshot: &Value,
    now: Millis,
    key: &dyn Fn(ChannelKind, &str) -> String,
) -> Result<usize> {
    let Recipients { targets, look } = to;
    let snapshot = snapshot.to_string();
    let mut n: u64 = 0;
    for (channel, target) in targets {
        let lang = look.english.contains(target).then_some("en");
        n += conn.exec(
            "INSERT INTO notifications (alert_id, workorder_id, summary_id, event, channel, target,
             key, created_at, next_attempt_at, alert, lang, tz)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10, ?11) ON CONFLICT(key) DO NOTHING",
            args![
                subject.alert(),
                subject.workorder(),
                subject.summary(),
                event.as_str(),
                channel.as_str(),
                target,
                &key(*channel, target),
                now,
                &snapshot,
                lang,
                look.tz.as_deref()
            ],
        )?;
    }
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

fn corrupt(what: &'static str, v: &str) -> StoreError {
    StoreError::Corrupt {
        what: "notification",
        err: format!("unknown {what} {v:?}"),
    }
}

/// Every (channel, target) told of `subject` so far, in the order first told.
pub fn told(c: &dyn Db, subject: Subject) -> Result<Vec<(ChannelKind, String)>> {
    let sql = match subject {
        Subject::Alert(_) => {
            "SELECT channel, target FROM notifications WHERE alert_id = ?1
             GROUP BY channel, target ORDER BY min(id)"
        }
        Subject::Workorder(_) => {
            "SELECT channel, target FROM notifications WHERE workorder_id = ?1
             GROUP BY channel, target ORDER BY min(id)"
        }
        Subject::Summary(_) => {
            "SELECT channel, target FROM notifications WHERE summary_id = ?1
             GROUP BY channel, target ORDER BY min(id)"
        }
    };
    let id = subject
        .alert()
        .or(subject.workorder())
        .or(subject.summary());
    c.rows(sql, args![id])?
        .iter()
        .map(|r| {
            let ch: String = r.get(0)?;
            let channel = ch.parse().map_err(|()| corrupt("channel", &ch))?;
            Ok((channel, r.get::<String>(1)?))
        })
        .collect()
}

/// The subject of a row from its three id columns.
fn subject(alert: Option<i64>, workorder: Option<i64>, summary: Option<i64>) -> Result<Subject> {
    match (alert, workorder, summary) {
        (Some(a), _, _) => Ok(Subject::Alert(a)),
        (None, Some(w), _) => Ok(Subject::Workorder(w)),
        (None, None, Some(s)) => Ok(Subject::Summary(s)),
        (None, None, None) => Err(corrupt("subject", "none")),
    }
}

/// The highest notification id (0 when there is none).
pub fn max_id(c: &dyn Db) -> Result<i64> {
    Ok(
        c.one::<i64>("SELECT coalesce(max(id), 0) FROM notifications", args![])?
            .unwrap_or(0),
    )
}

/// Pending rows of one channel that are due at `now` (at most `limit`, oldest first), the
/// count of its pending rows, and when the next one not due yet is due.
#[allow(clippy::type_complexity)]
pub fn due(
    c: &dyn Db,
    channel: ChannelKind,
    now: Millis,
    limit: u32,
) -> Result<(Vec<Notification>, i64, Option<Millis>)> {
    let rows = c
        .rows(
            "SELECT id, alert_id, key, event, target, created_at, attempts, alert, lang, tz,
             workorder_id, summary_id FROM notifications
             WHERE status = 'pending' AND channel = ?1 AND next_attempt_at <= ?2
             ORDER BY next_attempt_at, id LIMIT ?3",
            args![channel.as_str(), now, limit],
        )?
        .iter()
        .map(|r| {
            let event: String = r.get(3)?;
            let alert: String = r.get(7)?;
            Ok(Notification {
                id: r.get(0)?,
                subject: subject(r.get(1)?, r.get(10)?, r.get(11)?)?,
                key: r.get(2)?,
                event: event.parse().map_err(|()| corrupt("event", &event))?,
                channel,
                target: r.get(4)?,
                created_at: r.get(5)?,
                attempts: r.get(6)?,
                snapshot: serde_json::from_str(&alert).map_err(|_| corrupt("snapshot", &alert))?,
                lang: r.get(8)?,
                tz: r.get(9)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let counts: Option<Row> = c.row(
        "SELECT count(*), min(CASE WHEN next_attempt_at > ?2 THEN next_attempt_at END)
         FROM notifications WHERE status = 'pending' AND channel = ?1",
        args![channel.as_str(), now],
    )?;
    let (queued, next): (i64, Option<Millis>) = match counts {
        Some(r) => (r.get(0)?, r.get(1)?),
        None => (0, None),
    };
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
    /// Its alert, work order or daily summary.
    pub subject: Subject,
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
    /// (added) The digest it went out in, with its size: key and rows (`None`: on its own).
    pub digest: Option<(String, usize)>,
}

/// Records a delivery attempt inside the caller's transaction: the outbox row and the alert's
/// or work order's history change together (a daily summary has no history: its rows are its
/// record). A report for a row that is no longer pending (a repeated report) changes nothing.
pub fn record_delivery(c: &dyn Db, d: &Delivery) -> Result<()> {
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
    if let Some((key, size)) = &d.digest {
        detail["digest"] = json!({"key": key, "size": size});
    }
    let history = |what: &str, detail: Value| match d.subject {
        Subject::Alert(id) => super::alerts::record_notification(c, id, d.at, what, detail),
        Subject::Workorder(id) => super::workorders::record_notification(c, id, d.at, what, detail),
        Subject::Summary(_) => Ok(()),
    };
    match &d.outcome {
        Outcome::Sent => {
            let n = c.exec(
                "UPDATE notifications SET status = 'sent', sent_at = ?2, attempts = ?3,
                 last_error = NULL WHERE id = ?1 AND status = 'pending'",
                args![d.id, d.at, d.attempt],
            )?;
            if n > 0 {
                history("notified", detail)?;
            }
        }
        Outcome::Retry {
            error,
            next_attempt_at,
        } => {
            let n = c.exec(
                "UPDATE notifications SET attempts = ?2, next_attempt_at = ?3, last_error = ?4
                 WHERE id = ?1 AND status = 'pending'",
                args![d.id, d.attempt, *next_attempt_at, error],
            )?;
            if n > 0 {
                detail["error"] = error.clone().into();
                detail["next_attempt_at"] = rfc3339(*next_attempt_at).into();
                history("notify_failed", detail)?;
            }
        }
        Outcome::GaveUp { error, permanent } => {
            let n = c.exec(
                "UPDATE notifications SET status = 'failed', attempts = ?2, last_error = ?3
                 WHERE id = ?1 AND status = 'pending'",
                args![d.id, d.attempt, error],
            )?;
            if n > 0 {
                detail["error"] = error.clone().into();
                detail["permanent"] = (*permanent).into();
                history("notify_failed", detail.clone())?;
                history("notify_gave_up", detail)?;
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
    /// One work order's.
    pub workorder: Option<i64>,
    /// (added) One daily summary's.
    pub summary: Option<i64>,
    /// pending, sent, failed.
    pub status: Option<DeliveryStatus>,
    /// email, webhook, wecom, dingtalk, sms.
    pub channel: Option<ChannelKind>,
    /// At most.
    pub limit: u32,
}

/// Outbox rows, newest first, in API form.
pub fn list(c: &dyn Db, f: &Filter) -> Result<Vec<Value>> {
    c.rows(
        "SELECT id, alert_id, key, event, channel, target, status, attempts, created_at,
         next_attempt_at, sent_at, last_error, workorder_id, summary_id FROM notifications
         WHERE (CAST(?1 AS BIGINT) IS NULL OR alert_id = ?1) AND (CAST(?2 AS TEXT) IS NULL OR status = ?2)
         AND (CAST(?3 AS TEXT) IS NULL OR channel = ?3) AND (CAST(?5 AS BIGINT) IS NULL OR workorder_id = ?5)
         AND (CAST(?6 AS BIGINT) IS NULL OR summary_id = ?6)
         ORDER BY id DESC LIMIT ?4",
        args![
            f.alert,
            f.status.map(DeliveryStatus::as_str),
            f.channel.map(ChannelKind::as_str),
            f.limit,
            f.workorder,
            f.summary
        ],
    )?
    .iter()
    .map(|r| {
        let status: String = r.get(6)?;
        let subject = subject(r.get(1)?, r.get(12)?, r.get(13)?)?;
        Ok(json!({
            "id": r.get::<i64>(0)?,
            "alert": subject.alert().map(crate::model::alert::alert_id),
            "workorder": subject.workorder().map(crate::model::workorder::workorder_id),
            "summary": subject.summary().map(crate::model::summary::summary_id),
            "key": r.get::<String>(2)?,
            "event": r.get::<String>(3)?,
            "channel": r.get::<String>(4)?,
            "target": r.get::<String>(5)?,
            "status": status,
            "attempts": r.get::<i64>(7)?,
            "created_at": rfc3339(r.get(8)?),
            "next_attempt_at": (status == "pending").then(|| r.get(9).map(rfc3339)).transpose()?,
            "sent_at": r.get::<Option<Millis>>(10)?.map(rfc3339),
            "last_error": r.get::<Option<String>>(11)?,
        }))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store from before work-order notifications (`alert_id NOT NULL`, no `workorder_id`)
    /// keeps its rows and takes rows of work orders after opening.
    #[test]
    fn an_older_outbox_is_migrated_with_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = Connection::open(super::super::db_path(dir.path())).unwrap();
            c.execute_batch(
                "CREATE TABLE notifications (id INTEGER PRIMARY KEY, alert_id INTEGER NOT NULL,
                 event TEXT NOT NULL, channel TEXT NOT NULL, target TEXT NOT NULL,
                 key TEXT NOT NULL, created_at INTEGER NOT NULL,
                 status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
                 next_attempt_at INTEGER NOT NULL, sent_at INTEGER, last_error TEXT,
                 alert TEXT NOT NULL, lang TEXT, tz TEXT);
                 CREATE UNIQUE INDEX notifications_key ON notifications(key);
                 CREATE INDEX notifications_alert ON notifications(alert_id, id);
                 INSERT INTO notifications (alert_id, event, channel, target, key, created_at,
                   next_attempt_at, alert) VALUES (7, 'fired', 'email', 'a@x.org',
                   'a-000007:fired:1:email:a@x.org', 5, 5, '{\"id\": \"a-000007\"}');",
            )
            .unwrap();
        }
        let c = super::super::open_writer(dir.path(), "normal").unwrap();
        let (rows, _, _) = due(&c, ChannelKind::Email, 10, 10).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].subject, Subject::Alert(7));
        let look = Look::default();
        let to = [(ChannelKind::Email, "m@x.org".to_owned())];
        let recipients = Recipients {
            targets: &to,
            look: &look,
        };
        let snapshot = json!({"id": "w-000002"});
        let w = Subject::Workorder(2);
        enqueue(&c, w, Event::WorkorderCreated, 3, recipients, &snapshot, 6).unwrap();
        let (rows, queued, _) = due(&c, ChannelKind::Email, 10, 10).unwrap();
        assert_eq!(queued, 2);
        assert_eq!(rows[1].subject, w);
        assert_eq!(rows[1].key, "w-000002:workorder_created:3:email:m@x.org");
        assert_eq!(told(&c, w).unwrap(), to);
        // Opening again changes nothing.
        drop(c);
        let c = super::super::open_writer(dir.path(), "normal").unwrap();
        assert_eq!(due(&c, ChannelKind::Email, 10, 10).unwrap().0.len(), 2);
    }

    /// A store from before daily summaries (no `summary_id`) keeps its rows and takes rows of
    /// summaries, whose scheduled keys allow one per building, day and target.
    #[test]
    fn an_outbox_from_before_summaries_keeps_its_rows_and_takes_theirs() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = Connection::open(super::super::db_path(dir.path())).unwrap();
            c.execute_batch(
                "CREATE TABLE notifications (id INTEGER PRIMARY KEY, alert_id INTEGER,
                 event TEXT NOT NULL, channel TEXT NOT NULL, target TEXT NOT NULL,
                 key TEXT NOT NULL, created_at INTEGER NOT NULL,
                 status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
                 next_attempt_at INTEGER NOT NULL, sent_at INTEGER, last_error TEXT,
                 alert TEXT NOT NULL, lang TEXT, tz TEXT, workorder_id INTEGER);
                 CREATE UNIQUE INDEX notifications_key ON notifications(key);
                 INSERT INTO notifications (workorder_id, event, channel, target, key,
                   created_at, next_attempt_at, alert) VALUES (4, 'workorder_created', 'email',
                   'm@x.org', 'w-000004:workorder_created:9:email:m@x.org', 5, 5,
                   '{\"id\": \"w-000004\"}');",
            )
            .unwrap();
        }
        let c = super::super::open_writer(dir.path(), "normal").unwrap();
        let (rows, _, _) = due(&c, ChannelKind::Email, 10, 10).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].subject, Subject::Workorder(4));
        let look = Look {
            tz: Some("Asia/Shanghai".into()),
            english: vec!["m@x.org".into()],
        };
        let to = [(ChannelKind::Email, "m@x.org".to_owned())];
        let recipients = Recipients {
            targets: &to,
            look: &look,
        };
        let snap = json!({"building": "b1"});
        let n = enqueue_summary(&c, 3, "b1", "2026-12-01", false, recipients, &snap, 6).unwrap();
        assert_eq!(n, 1);
        // The same day again (a summary made twice by mistake) queues nothing.
        let n = enqueue_summary(&c, 4, "b1", "2026-12-01", false, recipients, &snap, 7).unwrap();
        assert_eq!(n, 0);
        // On demand: its own keys.
        let n = enqueue_summary(&c, 5, "b1", "2026-12-01", true, recipients, &snap, 8).unwrap();
        assert_eq!(n, 1);
        let (rows, queued, _) = due(&c, ChannelKind::Email, 10, 10).unwrap();
        assert_eq!(queued, 3);
        assert_eq!(rows[1].subject, Subject::Summary(3));
        assert_eq!(rows[1].key, "summary:b1:2026-12-01:email:m@x.org");
        assert_eq!(rows[1].event, Event::DailySummary);
        assert_eq!(rows[1].lang.as_deref(), Some("en"));
        assert_eq!(rows[2].key, "summary:b1:2026-12-01:s-000005:email:m@x.org");
        let f = Filter {
            summary: Some(3),
            limit: 10,
            ..Filter::default()
        };
        let listed = list(&c, &f).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0]["summary"], "s-000003");
        assert!(listed[0]["alert"].is_null() && listed[0]["workorder"].is_null());
        assert_eq!(told(&c, Subject::Summary(3)).unwrap(), to);
    }
}
