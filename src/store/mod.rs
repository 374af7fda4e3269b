//! The embedded store: one SQLite database in WAL mode under `storage.dir`.
//!
//! One writer (the pipeline thread) commits groups of messages in one transaction each, together
//! with the notification senders' and the time-series forwarder's bookkeeping, which they send it; they and
//! the API read through read-only connections (WAL readers never wait for the writer). Tables:
//!
//! | table | what |
//! |---|---|
//! | `readings` | every accepted numeric value; also the time-series spool (rows past `meta.tsdb_cursor`) |
//! | `events` | every accepted event |
//! | `devices` | device health records (the rule engine's, as JSON) |
//! | `conds` | rule conditions: pending hold times, active conditions (the engine's, as JSON) |
//! | `alerts`, `alert_history` | alerts and every transition, action and notification |
//! | `notifications` | the outbox: one row per (transition, channel, target), with its key, the alert, work order or daily summary as committed, status, attempts and backoff (replaces the former `outbox` table; `notifications.rs`) |
//! | `summaries` | (added) daily summaries to buildings' fire-safety managers: what each says (fixed when made), why, for which local day; at most one scheduled per building and day (`summaries.rs`) |
//! | `rejected` | rejected messages (contract section 5) |
//! | `meta` | cursors and counters |
//! | `changes` | the change feed's log (alerts, devices, notifications, commands), for resume |
//! | `commands` | commands to devices (duty checks) and their answers |
//! | `duty_checks`, `duty_check_commands`, `duty_check_schedule` | (added) duty checks of control rooms, the transmitters each went to, the last scheduled check per room (`duty_checks.rs`) |
//! | `workorders`, `workorder_history` | hazard work orders (隐患整改) and every step (`workorders.rs`) |
//! | `northbound_set_aside` | (added) records a city platform refused, kept per target (`northbound.rs`); the targets' cursors are in `meta` |
//! | `rollups` | (added) min, max, sum and count of the readings per device, metric, channel, step (5 min, 1 h, 1 day) and bucket, merged by the single writer from the rollup worker's deltas (`rollups.rs`) |
//! | `duty_overrides` | swaps and leaves of the duty roster; written by the API's own small writer connection (`duty.rs`) |

pub mod alerts;
pub mod analytics;
pub mod auth;
pub mod changes;
pub mod commands;
pub mod duty;
pub mod duty_checks;
pub mod escalations;
pub mod frames;
pub mod holds;
pub mod northbound;
pub mod notifications;
pub mod pg;
pub mod reports;
pub mod rollups;
pub mod silences;
pub mod sql;
pub mod summaries;
pub mod workorders;

pub use sql::{Db, Engine};

use crate::args;
use crate::model::{Kind, Millis};
use crate::settings::Problem;
use rusqlite::{Connection, OpenFlags};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `[storage]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directory of the embedded store and the outbox.
    pub dir: PathBuf,
    /// Days of readings kept in the embedded store.
    pub retention_days: u32,
    /// Rejected messages kept for `GET /api/v1/rejected`.
    pub rejected_keep: u32,
    /// SQLite `synchronous`: `full` survives power loss, `normal` survives process crashes.
    pub synchronous: String,
    /// Changes of the event feed kept for subscribers that resume (at least 10,000).
    pub changes_keep: u32,
    /// Days of rollups (5 min, 1 h, 1 day buckets of the readings) kept; at least
    /// `retention_days`: the rollups outlive the raw readings.
    pub rollup_retention_days: u32,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            dir: PathBuf::from("data"),
            retention_days: 30,
            rejected_keep: 10_000,
            synchronous: "full".into(),
            changes_keep: 100_000,
            rollup_retention_days: 365,
        }
    }
}

impl StorageConfig {
    /// Every problem of the `[storage]` settings.
    pub fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.retention_days == 0 {
            p.push(Problem::new("storage.retention_days", "must be at least 1"));
        }
        if self.rollup_retention_days < self.retention_days.max(1) {
            p.push(Problem::new(
                "storage.rollup_retention_days",
                format!(
                    "must be at least storage.retention_days ({}): rollups outlive the raw readings",
                    self.retention_days.max(1)
                ),
            ));
        }
        if self.rollup_retention_days > MAX_ROLLUP_RETENTION_DAYS {
            p.push(Problem::new(
                "storage.rollup_retention_days",
                format!("must be at most {MAX_ROLLUP_RETENTION_DAYS} (100 years)"),
            ));
        }
        if self.changes_keep < MIN_CHANGES_KEEP {
            p.push(Problem::new(
                "storage.changes_keep",
                format!("must be at least {MIN_CHANGES_KEEP}"),
            ));
        }
        if !matches!(self.synchronous.as_str(), "full" | "normal") {
            p.push(Problem::new(
                "storage.synchronous",
                "must be \"full\" or \"normal\"",
            ));
        }
        p
    }
}

/// The most days `storage.rollup_retention_days` may keep.
pub const MAX_ROLLUP_RETENTION_DAYS: u32 = 36_500;

/// The fewest changes `storage.changes_keep` may keep.
pub const MIN_CHANGES_KEEP: u32 = 10_000;

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed.
    #[error("postgres: {0}")]
    Postgres(#[from] postgres::Error),
    /// The database's schema cannot be used by this version.
    #[error("schema: {0}")]
    Schema(String),
    /// Persisted JSON could not be read back.
    #[error("corrupt {what}: {err}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// Why it failed.
        err: String,
    },
    /// File system.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, StoreError>;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS readings (
    id INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL,
    device TEXT NOT NULL,
    metric TEXT NOT NULL,
    channel TEXT,
    value REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS readings_device_ts ON readings(device, ts);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL,
    received INTEGER NOT NULL,
    device TEXT NOT NULL,
    event TEXT NOT NULL,
    state TEXT NOT NULL,
    channel TEXT,
    confidence REAL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS events_device_ts ON events(device, ts);
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY,
    building TEXT NOT NULL,
    kind TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS conds (
    key TEXT PRIMARY KEY,
    cond TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    building TEXT NOT NULL,
    kind TEXT NOT NULL,
    device TEXT NOT NULL,
    channel TEXT,
    active INTEGER NOT NULL,
    status TEXT NOT NULL,
    value REAL,
    threshold REAL,
    message TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    cleared_at INTEGER,
    acknowledged_at INTEGER,
    acknowledged_by TEXT,
    closed_at INTEGER,
    closed_by TEXT,
    classification TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_open
    ON alerts(rule, device, ifnull(channel, '')) WHERE status != 'closed';
CREATE INDEX IF NOT EXISTS alerts_building ON alerts(building, id);
CREATE TABLE IF NOT EXISTS alert_history (
    id INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL,
    at INTEGER NOT NULL,
    what TEXT NOT NULL,
    by TEXT,
    note TEXT,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS alert_history_alert ON alert_history(alert_id, id);
CREATE TABLE IF NOT EXISTS rejected (
    id INTEGER PRIMARY KEY,
    received INTEGER NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    building TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_building ON changes(building, id);
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    building TEXT NOT NULL,
    kind TEXT NOT NULL,
    command TEXT NOT NULL,
    ref TEXT NOT NULL UNIQUE,
    payload TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    deadline_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    published_at INTEGER,
    answered_at INTEGER,
    answer_delay_ms INTEGER,
    requested_by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS commands_pending ON commands(next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS commands_device ON commands(device, id);
DROP TABLE IF EXISTS outbox;
CREATE TABLE IF NOT EXISTS escalations (
    alert_id INTEGER PRIMARY KEY,
    next_at INTEGER NOT NULL,
    timer TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS escalations_next ON escalations(next_at);
CREATE TABLE IF NOT EXISTS duty_overrides (
    id INTEGER PRIMARY KEY,
    room TEXT NOT NULL,
    shift TEXT,
    from_ms INTEGER NOT NULL,
    until_ms INTEGER NOT NULL,
    replace_person TEXT NOT NULL,
    with_person TEXT,
    by TEXT NOT NULL,
    note TEXT,
    created_at INTEGER NOT NULL,
    ended_at INTEGER
);
"#;

/// Columns added to tables of older stores: (table, column, declaration).
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("alerts", "sla_missed_at", "INTEGER"),
    ("notifications", "lang", "TEXT"),
    ("notifications", "tz", "TEXT"),
    ("alerts", "verified_at", "INTEGER"),
    ("alerts", "verified_by", "TEXT"),
    ("alerts", "verification", "TEXT"),
    ("alerts", "called_119_at", "INTEGER"),
    ("notifications", "workorder_id", "INTEGER"),
    ("notifications", "summary_id", "INTEGER"),
];

/// Adds the [`ADDED_COLUMNS`] a store made by an older version lacks.
fn add_columns(conn: &Connection) -> Result<()> {
    for (table, column, decl) in ADDED_COLUMNS {
        let has: i64 = conn.query_row(
            &format!("SELECT count(*) FROM pragma_table_info('{table}') WHERE name = ?1"),
            [column],
            |r| r.get(0),
        )?;
        if has == 0 {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))?;
        }
    }
    Ok(())
}

/// `meta` key of the time-series forwarder's cursor (the last `readings` id written).
pub const TSDB_CURSOR: &str = "tsdb_cursor";

/// The database file inside `storage.dir`.
pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("firewatch.db")
}

/// Opens (and creates or migrates) the store for writing.
pub fn open_writer(dir: &Path, synchronous: &str) -> Result<Connection> {
    std::fs::create_dir_all(dir)?;
    let conn = Connection::open(db_path(dir))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let sync = if synchronous == "normal" {
        "NORMAL"
    } else {
        "FULL"
    };
    conn.pragma_update(None, "synchronous", sync)?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    // Keep the WAL from growing without bound under sustained load.
    conn.pragma_update(None, "wal_autocheckpoint", 4000)?;
    // A page cache large enough for a group commit's working set (the readings index is
    // written all over): with SQLite's 2 MB default, large batches spilled pages to the WAL
    // mid-transaction and re-read index pages with pread (about a fifth of the pipeline's time
    // in a 200k-message profile).
    conn.pragma_update(None, "cache_size", -65_536)?; // KiB: 64 MiB
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.execute_batch(SCHEMA)?;
    duty_checks::create(&conn)?;
    auth::create(&conn)?;
    conn.execute_batch(workorders::SCHEMA)?;
    conn.execute_batch(rollups::SCHEMA)?;
    conn.execute_batch(summaries::SCHEMA)?;
    conn.execute_batch(silences::SCHEMA)?;
    conn.execute_batch(holds::SCHEMA)?;
    conn.execute_batch(frames::SCHEMA)?;
    notifications::create(&conn)?;
    northbound::create(&conn)?;
    add_columns(&conn)?;
    notifications::migrate(&conn)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Opens a read-only connection (API, forwarder reads).
pub fn open_reader(dir: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        db_path(dir),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(conn)
}

/// Appends one reading.
pub fn insert_reading(
    tx: &dyn Db,
    ts: Millis,
    device: &str,
    metric: &str,
    channel: Option<&str>,
    value: f64,
) -> Result<()> {
    tx.exec(
        "INSERT INTO readings (ts, device, metric, channel, value) VALUES (?1, ?2, ?3, ?4, ?5)",
        args![ts, device, metric, channel, value],
    )?;
    Ok(())
}

/// Appends one event.
#[allow(clippy::too_many_arguments)]
pub fn insert_event(
    tx: &dyn Db,
    ts: Millis,
    received: Millis,
    device: &str,
    event: &str,
    state: &str,
    channel: Option<&str>,
    confidence: Option<f64>,
    detail: Option<&str>,
) -> Result<()> {
    tx.exec(
        "INSERT INTO events (ts, received, device, event, state, channel, confidence, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        args![ts, received, device, event, state, channel, confidence, detail],
    )?;
    Ok(())
}

/// Keeps a rejected message (payload cut to 64 KiB).
pub fn insert_rejected(
    tx: &dyn Db,
    received: Millis,
    reason: &str,
    detail: &str,
    topic: &str,
    payload: &[u8],
) -> Result<()> {
    let kept = &payload[..payload.len().min(crate::model::MAX_PAYLOAD)];
    tx.exec(
        "INSERT INTO rejected (received, reason, detail, topic, payload, size)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        args![received, reason, detail, topic, kept, payload.len()],
    )?;
    Ok(())
}

fn to_json<T: Serialize>(v: &T, what: &'static str) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt {
        what,
        err: e.to_string(),
    })
}

fn from_json<T: DeserializeOwned>(s: &str, what: &'static str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt {
        what,
        err: e.to_string(),
    })
}

/// Upserts a device record (any serialisable record; the engine's in practice).
pub fn upsert_device<T: Serialize>(
    tx: &dyn Db,
    id: &str,
    building: &str,
    kind: Kind,
    rec: &T,
) -> Result<()> {
    let json = to_json(rec, "device record")?;
    tx.exec(
        "INSERT INTO devices (id, building, kind, record) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(id) DO UPDATE SET building = excluded.building, kind = excluded.kind,
         record = excluded.record",
        args![id, building, kind.as_str(), &json],
    )?;
    Ok(())
}

/// Upserts (`Some`) or deletes (`None`) a condition under its key.
pub fn save_cond<T: Serialize>(tx: &dyn Db, key: &str, cond: Option<&T>) -> Result<()> {
    match cond {
        Some(c) => {
            let json = to_json(c, "condition")?;
            tx.exec(
                "INSERT INTO conds (key, cond) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET cond = excluded.cond",
                args![key, &json],
            )?;
        }
        None => {
            tx.exec("DELETE FROM conds WHERE key = ?1", args![key])?;
        }
    }
    Ok(())
}

/// Every condition (by key) and device record (by id).
#[allow(clippy::type_complexity)]
pub fn load_state<C: DeserializeOwned, D: DeserializeOwned>(
    conn: &dyn Db,
) -> Result<(Vec<(String, C)>, Vec<(String, D)>)> {
    let conds = conn
        .rows("SELECT key, cond FROM conds", args![])?
        .iter()
        .map(|r| Ok((r.get(0)?, r.json(1, "condition")?)))
        .collect::<Result<_>>()?;
    let devices = conn
        .rows("SELECT id, record FROM devices", args![])?
        .iter()
        .map(|r| Ok((r.get(0)?, r.json(1, "device record")?)))
        .collect::<Result<_>>()?;
    Ok((conds, devices))
}

/// Device records, by id (of one building, or all).
pub fn device_records<D: DeserializeOwned>(
    conn: &dyn Db,
    building: Option<&str>,
) -> Result<Vec<(String, D)>> {
    conn.rows(
        "SELECT id, record FROM devices WHERE CAST(?1 AS TEXT) IS NULL OR building = ?1",
        args![building],
    )?
    .iter()
    .map(|r| Ok((r.get(0)?, r.json(1, "device record")?)))
    .collect()
}

/// One device record.
pub fn device_record<D: DeserializeOwned>(conn: &dyn Db, id: &str) -> Result<Option<D>> {
    conn.row("SELECT record FROM devices WHERE id = ?1", args![id])?
        .map(|r| r.json(0, "device record"))
        .transpose()
}

/// Reads a `meta` value.
pub fn get_meta(conn: &dyn Db, key: &str) -> Result<Option<i64>> {
    conn.one("SELECT value FROM meta WHERE key = ?1", args![key])
}

/// Writes a `meta` value.
pub fn set_meta(conn: &dyn Db, key: &str, value: i64) -> Result<()> {
    conn.exec(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        args![key, value],
    )?;
    Ok(())
}

/// Removes a `meta` value.
pub fn delete_meta(conn: &dyn Db, key: &str) -> Result<()> {
    conn.exec("DELETE FROM meta WHERE key = ?1", args![key])?;
    Ok(())
}

/// Largest reading id (0 when empty).
pub fn max_reading_id(conn: &dyn Db) -> Result<i64> {
    Ok(conn
        .one("SELECT coalesce(max(id), 0) FROM readings", args![])?
        .unwrap_or(0))
}

/// Deletes up to `limit` readings (and events) older than `cutoff`; returns how many went.
/// With `spool_from` (the time-series cursor), readings after it are the spool of what the
/// time-series database has not received yet: they stay, however old (the pipeline passes the
/// rollup cursor the same way, so that no reading goes before it is rolled up).
pub fn prune_readings(
    conn: &dyn Db,
    cutoff: Millis,
    limit: i64,
    spool_from: Option<i64>,
) -> Result<usize> {
    // Ids grow with arrival; the first id whose ts is recent bounds the old rows.
    let bound: Option<i64> = conn.one(
        "SELECT id FROM readings WHERE ts >= ?1 ORDER BY id LIMIT 1",
        args![cutoff],
    )?;
    let max = max_reading_id(conn)?;
    // The newest reading always stays: SQLite gives a new row max(id) + 1, so an emptied table
    // would hand out ids again that the cursors (time series, rollups) have already passed.
    let bound = bound.unwrap_or(max + 1).min(max);
    let bound = match spool_from {
        Some(cursor) => bound.min(cursor.saturating_add(1)),
        None => bound,
    };
    let n = conn.exec(
        "DELETE FROM readings WHERE id IN (SELECT id FROM readings WHERE id < ?1 ORDER BY id LIMIT ?2)",
        args![bound, limit],
    )?;
    let e = conn.exec(
        "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE ts < ?1 ORDER BY id LIMIT ?2)",
        args![cutoff, limit],
    )?;
    Ok(usize::try_from(n + e).unwrap_or(usize::MAX))
}

/// Keeps only the newest `keep` rejected messages.
pub fn prune_rejected(conn: &dyn Db, keep: u32) -> Result<usize> {
    let n = conn.exec(
        "DELETE FROM rejected WHERE id <= (SELECT coalesce(max(id), 0) FROM rejected) - ?1",
        args![keep],
    )?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// A reading as the time-series forwarder sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct SpoolRow {
    /// Reading id (the cursor).
    pub id: i64,
    /// Measurement time.
    pub ts: Millis,
    /// Device.
    pub device: String,
    /// Building.
    pub building: String,
    /// Kind (the measurement).
    pub kind: String,
    /// Metric (the field).
    pub metric: String,
    /// Channel (a tag).
    pub channel: Option<String>,
    /// Value.
    pub value: f64,
}

/// Readings after `cursor`, oldest first.
pub fn spool_after(conn: &dyn Db, cursor: i64, limit: usize) -> Result<Vec<SpoolRow>> {
    conn.rows(
        "SELECT r.id, r.ts, r.device, coalesce(d.building, ''), coalesce(d.kind, ''), r.metric,
                r.channel, r.value
         FROM readings r LEFT JOIN devices d ON d.id = r.device
         WHERE r.id > ?1 ORDER BY r.id LIMIT ?2",
        args![cursor, limit],
    )?
    .iter()
    .map(|r| {
        Ok(SpoolRow {
            id: r.get(0)?,
            ts: r.get(1)?,
            device: r.get(2)?,
            building: r.get(3)?,
            kind: r.get(4)?,
            metric: r.get(5)?,
            channel: r.get(6)?,
            value: r.get(7)?,
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollups_must_outlive_the_raw_readings() {
        let mut c = StorageConfig::default();
        assert_eq!(c.rollup_retention_days, 365);
        assert!(c.validate().is_empty());
        c.rollup_retention_days = 29;
        let p = c.validate();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].key, "storage.rollup_retention_days", "{}", p[0]);
        c.rollup_retention_days = MAX_ROLLUP_RETENTION_DAYS + 1;
        assert_eq!(c.validate()[0].key, "storage.rollup_retention_days");
    }

    #[test]
    fn retention_never_eats_readings_the_time_series_database_has_not_received() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open_writer(dir.path(), "normal").unwrap();
        let tx = conn.transaction().unwrap();
        for i in 0..10 {
            insert_reading(&tx, 1_000 + i, "wp-1", "pressure_mpa", None, 0.3).unwrap();
        }
        tx.commit().unwrap();
        // All ten are past the retention; the forwarder has written the first four.
        set_meta(&conn, TSDB_CURSOR, 4).unwrap();
        let cursor = get_meta(&conn, TSDB_CURSOR).unwrap();
        assert_eq!(prune_readings(&conn, 1_000_000, 100, cursor).unwrap(), 4);
        let left: Vec<i64> = spool_after(&conn, 0, 100)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(left, (5..=10).collect::<Vec<_>>(), "the spool stays");
        // Without a time-series database, retention alone decides; the newest reading stays,
        // so that ids keep growing past the cursors.
        assert_eq!(prune_readings(&conn, 1_000_000, 100, None).unwrap(), 5);
        assert_eq!(max_reading_id(&conn).unwrap(), 10);
        let tx = conn.transaction().unwrap();
        insert_reading(&tx, 2_000_000, "wp-1", "pressure_mpa", None, 0.3).unwrap();
        tx.commit().unwrap();
        assert_eq!(max_reading_id(&conn).unwrap(), 11);
    }
}
