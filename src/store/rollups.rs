//! Rollups of readings, and the device history they serve: every SQL statement about them.
//!
//! A rollup is, per (device, metric, channel), [`Step`] and bucket, the min, max, sum and
//! count of the readings whose device time falls into the bucket. They are kept as data
//! arrives, not computed at query time: the rollup worker (`src/rollup/`) reads the readings
//! after a persisted cursor (`meta.rollup_cursor`) through a read-only connection, adds them up
//! as it reads ([`read_batch`], [`Aggregator`]) into per-bucket [`Delta`]s and hands them, as
//! one [`Batch`], to the store's only writer, which [`merge`]s them (min of mins, max of maxes,
//! sum + sum, count + count) in parts, recording its progress with each part, and moves the
//! cursor with the last. A part is merged only when the batch starts where the rollups stand
//! ([`Position`]), so a reading is counted exactly once across crashes and restarts. A late or
//! out-of-order reading lands in the bucket of its own device time.
//!
//! Buckets start at multiples of their step since the Unix epoch: `1d` buckets are UTC days.
//! Rollups outlive the raw readings (`storage.rollup_retention_days`); [`prune`] removes old
//! buckets in bounded chunks.

use super::sql::{Db, Row, Value};
use super::Result;
use crate::args;
use crate::model::Millis;
use std::collections::HashMap;

/// `meta` key of the rollup worker's cursor (the last `readings` id merged into the rollups).
pub const CURSOR: &str = "rollup_cursor";

/// The table (created with the rest of the schema). `channel` is `''` for values without a
/// channel (channel names are 1 to 64 bytes, so `''` names none): a primary key cannot hold
/// NULL. Without rowid, the rows of one device and step lie together in bucket order, so a
/// range is one contiguous read. `rollups_bucket` serves the retention.
pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS rollups (
    device TEXT NOT NULL,
    step INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    metric TEXT NOT NULL,
    channel TEXT NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    sum REAL NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (device, step, bucket, metric, channel)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rollups_bucket ON rollups(bucket);
"#;

/// A rollup resolution.
///
/// Why these three: 5 minutes is about the reporting interval of the slowest devices (pressure
/// and level monitors report every few minutes), so a day of it (288 points) still shows every
/// change a person looks for; 1 hour turns a month into 720 points, the width of a chart; 1 day
/// turns the year of `storage.rollup_retention_days` into 365. Each step is 12 or 24 times the
/// one below, so every range of up to a few thousand points has a step that fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// 5 minutes.
    FiveMinutes,
    /// 1 hour.
    Hour,
    /// 1 day (UTC).
    Day,
}

impl Step {
    /// Every step, finest first.
    pub const ALL: [Step; 3] = [Step::FiveMinutes, Step::Hour, Step::Day];

    /// The bucket width, milliseconds.
    pub const fn ms(self) -> Millis {
        match self {
            Step::FiveMinutes => 300_000,
            Step::Hour => 3_600_000,
            Step::Day => 86_400_000,
        }
    }

    /// The name in the API (`5m`, `1h`, `1d`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Step::FiveMinutes => "5m",
            Step::Hour => "1h",
            Step::Day => "1d",
        }
    }

    /// The step named `s` in the API.
    pub fn parse(s: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The start of the bucket holding `ts` (also for times before the epoch).
    pub const fn bucket(self, ts: Millis) -> Millis {
        ts.div_euclid(self.ms()) * self.ms()
    }
}

/// Min, max, sum and count of some readings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Agg {
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Sum of the values.
    pub sum: f64,
    /// How many.
    pub count: i64,
}

impl Agg {
    /// One value.
    pub const fn of(v: f64) -> Agg {
        Agg {
            min: v,
            max: v,
            sum: v,
            count: 1,
        }
    }

    /// Both together: min of mins, max of maxes, sum + sum, count + count.
    pub fn merge(&mut self, o: &Agg) {
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.sum += o.sum;
        self.count += o.count;
    }
}

/// One series: a device's metric on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Series {
    /// Device.
    pub device: String,
    /// Metric.
    pub metric: String,
    /// Channel; `None` for a value without one.
    pub channel: Option<String>,
}

/// What some readings add to one bucket of one series at one step.
#[derive(Debug, Clone, PartialEq)]
pub struct Delta {
    /// Index into [`Batch::series`].
    pub series: u32,
    /// Resolution.
    pub step: Step,
    /// Bucket start.
    pub bucket: Millis,
    /// What they add.
    pub agg: Agg,
}

/// The rollup worker's hand-over: the deltas of the readings with ids in `(from, to]`.
///
/// The single writer merges it in parts of a bounded size ([`merge`]), one part per
/// transaction, so that no commit waits behind a large batch; `merged` says how many deltas
/// are in. Between parts the progress is persisted with the part (`meta.rollup_pending_*`): a
/// batch cut short by a crash is read again over exactly the same readings, which add up to
/// the same deltas in the same order, and merging goes on after the last part that committed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    /// The cursor the readings were read after (the persisted cursor when they were read).
    pub from: i64,
    /// The last reading id they cover: the new cursor.
    pub to: i64,
    /// How many readings they are.
    pub readings: u64,
    /// The series the deltas touch, in key order.
    pub series: Vec<Series>,
    /// One per bucket touched (at every step), in (series, step, bucket) order.
    pub deltas: Vec<Delta>,
    /// Deltas already merged (a prefix of `deltas`).
    pub merged: usize,
}

/// Adds readings up into per-bucket deltas as they are read, one at a time: the memory it
/// holds grows with the buckets touched (each series' name once), not with the readings.
#[derive(Debug, Default)]
pub struct Aggregator {
    index: HashMap<String, u32>,
    series: Vec<Series>,
    aggs: HashMap<(u32, Step, Millis), Agg>,
    name: String,
    skipped: Vec<i64>,
    readings: u64,
    last: Option<i64>,
}

impl Aggregator {
    /// Adds one reading (in id order). A reading with a non-finite value (which decoding never
    /// lets through) would spoil min, max and sum for good: it is left out, and named by
    /// [`Aggregator::finish`].
    pub fn add(
        &mut self,
        id: i64,
        ts: Millis,
        device: &str,
        metric: &str,
        channel: Option<&str>,
        value: f64,
    ) {
        self.last = Some(id);
        if !value.is_finite() {
            self.skipped.push(id);
            return;
        }
        self.readings += 1;
        // One lookup key per series, built in a reused buffer: no allocation per reading.
        self.name.clear();
        for part in [device, metric, channel.unwrap_or("")] {
            self.name.push_str(part);
            self.name.push('\0');
        }
        self.name.push(if channel.is_some() { '1' } else { '0' });
        let series = match self.index.get(self.name.as_str()) {
            Some(&i) => i,
            None => {
                let i = u32::try_from(self.series.len()).unwrap_or(u32::MAX);
                self.series.push(Series {
                    device: device.to_owned(),
                    metric: metric.to_owned(),
                    channel: channel.map(str::to_owned),
                });
                self.index.insert(self.name.clone(), i);
                i
            }
        };
        for step in Step::ALL {
            self.aggs
                .entry((series, step, step.bucket(ts)))
                .and_modify(|a| a.merge(&Agg::of(value)))
                .or_insert_with(|| Agg::of(value));
        }
    }

    /// The batch of the readings after `from` added so far, and the readings left out (by id).
    pub fn finish(self, from: i64) -> (Batch, Vec<i64>) {
        // Series in key order, deltas in (series, step, bucket) order: the same readings always
        // give the same batch, and the merge walks the table's key in order.
        let mut order: Vec<usize> = (0..self.series.len()).collect();
        order.sort_by(|&a, &b| self.series[a].cmp(&self.series[b]));
        let mut rank = vec![0u32; order.len()];
        for (pos, &old) in order.iter().enumerate() {
            rank[old] = u32::try_from(pos).unwrap_or(u32::MAX);
        }
        let mut slots: Vec<Option<Series>> = self.series.into_iter().map(Some).collect();
        let series = order.iter().filter_map(|&old| slots[old].take()).collect();
        let mut deltas: Vec<Delta> = self
            .aggs
            .into_iter()
            .map(|((s, step, bucket), agg)| Delta {
                series: rank[s as usize],
                step,
                bucket,
                agg,
            })
            .collect();
        deltas.sort_by_key(|d| (d.series, d.step, d.bucket));
        let batch = Batch {
            from,
            to: self.last.unwrap_or(from),
            readings: self.readings,
            series,
            deltas,
            merged: 0,
        };
        (batch, self.skipped)
    }
}

/// `meta` keys of a batch merged in part: its last reading id, and how many of its deltas are
/// in. Absent when no batch is half merged.
pub const PENDING_TO: &str = "rollup_pending_to";
/// See [`PENDING_TO`].
pub const PENDING_MERGED: &str = "rollup_pending_merged";

/// Where the rollups stand: the cursor, and a batch merged in part `(to, merged)`, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// The last reading id merged entirely.
    pub cursor: i64,
    /// A batch of the readings in `(cursor, to]` of which `merged` deltas are in.
    pub pending: Option<(i64, usize)>,
}

/// The persisted [`Position`].
pub fn position(conn: &dyn Db) -> Result<Position> {
    let pending = match (
        super::get_meta(conn, PENDING_TO)?,
        super::get_meta(conn, PENDING_MERGED)?,
    ) {
        (Some(to), Some(merged)) => Some((to, usize::try_from(merged).unwrap_or(0))),
        _ => None,
    };
    Ok(Position {
        cursor: cursor(conn)?,
        pending,
    })
}

/// Reads and adds up the next batch from `at`: the readings of its pending batch again, when
/// there is one, else at most `limit` readings after its cursor. Returns the batch (its
/// `merged` where the pending one stood), the readings left out, and the rows read.
pub fn read_batch(conn: &dyn Db, at: Position, limit: usize) -> Result<(Batch, Vec<i64>, usize)> {
    let (until, limit) = match at.pending {
        Some((to, _)) => (to, i64::MAX),
        None => (i64::MAX, i64::try_from(limit).unwrap_or(i64::MAX)),
    };
    let mut agg = Aggregator::default();
    let read = conn.each(
        "SELECT id, ts, device, metric, channel, value FROM readings
         WHERE id > ?1 AND id <= ?2 ORDER BY id LIMIT ?3",
        args![at.cursor, until, limit],
        &mut |r| {
            let (device, metric, channel) = (
                text_or_null(r, 2)?.unwrap_or(""),
                text_or_null(r, 3)?.unwrap_or(""),
                text_or_null(r, 4)?,
            );
            agg.add(r.get(0)?, r.get(1)?, device, metric, channel, r.get(5)?);
            Ok(())
        },
    )?;
    let (mut batch, skipped) = agg.finish(at.cursor);
    if let Some((to, merged)) = at.pending {
        batch.to = to;
        batch.merged = merged;
    }
    Ok((batch, skipped, read))
}

/// The persisted cursor (0 before the first merge).
pub fn cursor(conn: &dyn Db) -> Result<i64> {
    Ok(super::get_meta(conn, CURSOR)?.unwrap_or(0))
}

/// What [`merge`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merged {
    /// The batch does not start where the rollups stand (one read before another was merged,
    /// or the same one twice): nothing changed.
    Stale,
    /// A part is in; the rest goes in later transactions.
    Part,
    /// The last part is in and the cursor moved to `batch.to`.
    Done,
}

/// Merges the next at most `max` deltas of `batch` into the rollups, in `tx`, and records how
/// far it got: the cursor moves to `batch.to` with the last part. Only when the batch starts
/// at the persisted position (its cursor, and the part merged before): otherwise nothing
/// changes and [`Merged::Stale`] comes back, so no reading is counted twice.
pub fn merge(tx: &dyn Db, batch: &mut Batch, max: usize) -> Result<Merged> {
    let at = position(tx)?;
    let expected = (batch.merged > 0).then_some((batch.to, batch.merged));
    if at.cursor != batch.from || batch.to < batch.from || at.pending != expected {
        return Ok(Merged::Stale);
    }
    let start = batch.merged.min(batch.deltas.len());
    let end = start.saturating_add(max.max(1)).min(batch.deltas.len());
    for d in &batch.deltas[start..end] {
        let Some(s) = batch.series.get(d.series as usize) else {
            return Err(super::StoreError::Corrupt {
                what: "rollup batch",
                err: format!("delta names series {} of {}", d.series, batch.series.len()),
            });
        };
        tx.exec(
            "INSERT INTO rollups (device, step, bucket, metric, channel, min, max, sum, count)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT(device, step, bucket, metric, channel) DO UPDATE SET
             min = CASE WHEN rollups.min <= excluded.min THEN rollups.min ELSE excluded.min END,
             max = CASE WHEN rollups.max >= excluded.max THEN rollups.max ELSE excluded.max END,
             sum = rollups.sum + excluded.sum, count = rollups.count + excluded.count",
            args![
                &s.device,
                d.step.ms(),
                d.bucket,
                &s.metric,
                s.channel.as_deref().unwrap_or(""),
                d.agg.min,
                d.agg.max,
                d.agg.sum,
                d.agg.count
            ],
        )?;
    }
    batch.merged = end;
    if end < batch.deltas.len() {
        super::set_meta(tx, PENDING_TO, batch.to)?;
        super::set_meta(tx, PENDING_MERGED, i64::try_from(end).unwrap_or(i64::MAX))?;
        return Ok(Merged::Part);
    }
    super::delete_meta(tx, PENDING_TO)?;
    super::delete_meta(tx, PENDING_MERGED)?;
    super::set_meta(tx, CURSOR, batch.to)?;
    Ok(Merged::Done)
}

/// Deletes up to `limit` buckets that start before `cutoff`; returns how many went.
pub fn prune(conn: &dyn Db, cutoff: Millis, limit: i64) -> Result<usize> {
    let n = conn.exec(
        "DELETE FROM rollups WHERE (device, step, bucket, metric, channel) IN
             (SELECT device, step, bucket, metric, channel FROM rollups
              WHERE bucket < ?1 ORDER BY bucket LIMIT ?2)",
        args![cutoff, limit],
    )?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// Readings rolled up and readings not yet: (the cursor, readings after it).
pub fn backlog(conn: &dyn Db) -> Result<(i64, i64)> {
    let at = cursor(conn)?;
    let max = super::max_reading_id(conn)?;
    Ok((at, (max - at).max(0)))
}

/// What `GET /api/v1/devices/{id}/readings` asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    /// Device.
    pub device: String,
    /// Only this metric, or all.
    pub metric: Option<String>,
    /// From (device time, inclusive).
    pub since: Millis,
    /// Until (inclusive).
    pub until: Millis,
    /// At most this many rows.
    pub limit: u32,
}

/// A raw reading of the device history.
#[derive(Debug, Clone, PartialEq)]
pub struct RawReading {
    /// Device time.
    pub ts: Millis,
    /// Metric.
    pub metric: String,
    /// Channel.
    pub channel: Option<String>,
    /// Value.
    pub value: f64,
}

/// One bucket of the device history.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    /// Bucket start.
    pub ts: Millis,
    /// Metric.
    pub metric: String,
    /// Channel.
    pub channel: Option<String>,
    /// Its readings.
    pub agg: Agg,
}

/// A raw reading as [`each_raw`] hands it over: borrowed from the row being read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawReadingRef<'a> {
    /// Device time.
    pub ts: Millis,
    /// Metric.
    pub metric: &'a str,
    /// Channel.
    pub channel: Option<&'a str>,
    /// Value.
    pub value: f64,
}

/// A bucket as [`each_bucket`] hands it over: borrowed from the row being read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketRef<'a> {
    /// Bucket start.
    pub ts: Millis,
    /// Metric.
    pub metric: &'a str,
    /// Channel.
    pub channel: Option<&'a str>,
    /// Its readings.
    pub agg: Agg,
}

/// Column `i` of `row` as text borrowed from the row.
fn text(row: &Row, i: usize) -> Result<&str> {
    match row.0.get(i) {
        Some(Value::Text(s)) => Ok(s),
        // Not text: the row's own error for it.
        _ => row.get::<String>(i).and(Err(not_text(i))),
    }
}

/// Column `i` of `row` as text borrowed from the row, or `None` for NULL.
fn text_or_null(row: &Row, i: usize) -> Result<Option<&str>> {
    match row.0.get(i) {
        Some(Value::Null) => Ok(None),
        _ => text(row, i).map(Some),
    }
}

fn not_text(i: usize) -> super::StoreError {
    super::StoreError::Corrupt {
        what: "row",
        err: format!("column {i}: want text"),
    }
}

/// The raw readings of `r`, oldest first.
pub fn raw(conn: &dyn Db, r: &Range) -> Result<Vec<RawReading>> {
    let mut out = Vec::new();
    each_raw(conn, r, |x| {
        out.push(RawReading {
            ts: x.ts,
            metric: x.metric.to_owned(),
            channel: x.channel.map(str::to_owned),
            value: x.value,
        });
    })?;
    Ok(out)
}

/// Hands the raw readings of `r`, oldest first, to `f` one by one as the statement steps (on
/// SQLite one row in memory at a time; reading only the columns the history shows); returns
/// how many.
pub fn each_raw(conn: &dyn Db, r: &Range, mut f: impl FnMut(RawReadingRef<'_>)) -> Result<usize> {
    conn.each(
        "SELECT ts, metric, channel, value FROM readings
         WHERE device = ?1 AND ts >= ?2 AND ts <= ?3 AND (CAST(?4 AS TEXT) IS NULL OR metric = ?4)
         ORDER BY ts, id LIMIT ?5",
        args![&r.device, r.since, r.until, r.metric.as_deref(), r.limit],
        &mut |row| {
            f(RawReadingRef {
                ts: row.get(0)?,
                metric: text(row, 1)?,
                channel: text_or_null(row, 2)?,
                value: row.get(3)?,
            });
            Ok(())
        },
    )
}

/// The buckets of `step` that overlap `r` (from the one holding `since`), oldest first, each
/// instant's metrics and channels in name order.
pub fn buckets(conn: &dyn Db, step: Step, r: &Range) -> Result<Vec<Bucket>> {
    let mut out = Vec::new();
    each_bucket(conn, step, r, |b| {
        out.push(Bucket {
            ts: b.ts,
            metric: b.metric.to_owned(),
            channel: b.channel.map(str::to_owned),
            agg: b.agg,
        });
    })?;
    Ok(out)
}

/// Hands the buckets of [`buckets`] to `f` one by one as the statement steps (a range is one
/// contiguous read of the primary key); returns how many.
pub fn each_bucket(
    conn: &dyn Db,
    step: Step,
    r: &Range,
    mut f: impl FnMut(BucketRef<'_>),
) -> Result<usize> {
    conn.each(
        "SELECT bucket, metric, channel, min, max, sum, count FROM rollups
         WHERE device = ?1 AND step = ?2 AND bucket >= ?3 AND bucket <= ?4
           AND (CAST(?5 AS TEXT) IS NULL OR metric = ?5)
         ORDER BY bucket, metric, channel LIMIT ?6",
        args![
            &r.device,
            step.ms(),
            step.bucket(r.since),
            r.until,
            r.metric.as_deref(),
            r.limit
        ],
        &mut |row| {
            let channel = text(row, 2)?;
            f(BucketRef {
                ts: row.get(0)?,
                metric: text(row, 1)?,
                channel: (!channel.is_empty()).then_some(channel),
                agg: Agg {
                    min: row.get(3)?,
                    max: row.get(4)?,
                    sum: row.get(5)?,
                    count: row.get(6)?,
                },
            });
            Ok(())
        },
    )
}

/// How many buckets of `step` [`buckets`] would return without its limit, counted up to
/// `cap + 1` (enough to tell whether they fit in `cap`).
fn count_buckets(conn: &dyn Db, step: Step, r: &Range, cap: u32) -> Result<i64> {
    Ok(conn
        .one::<i64>(
            "SELECT count(*) FROM (SELECT 1 FROM rollups
             WHERE device = ?1 AND step = ?2 AND bucket >= ?3 AND bucket <= ?4
               AND (CAST(?5 AS TEXT) IS NULL OR metric = ?5) LIMIT ?6) AS capped",
            args![
                &r.device,
                step.ms(),
                step.bucket(r.since),
                r.until,
                r.metric.as_deref(),
                i64::from(cap) + 1
            ],
        )?
        .unwrap_or(0))
}

/// Whether the raw readings of `r` are all still kept: no reading rolled up into a 5-minute
/// bucket of the range lies before the first raw reading left in it (retention prunes the
/// oldest readings first).
fn raw_complete(conn: &dyn Db, r: &Range) -> Result<bool> {
    let first_bucket: Option<Millis> = conn.one(
        "SELECT bucket FROM rollups WHERE device = ?1 AND step = ?2 AND bucket >= ?3
             AND bucket <= ?4 ORDER BY bucket LIMIT 1",
        args![
            &r.device,
            Step::FiveMinutes.ms(),
            Step::FiveMinutes.bucket(r.since),
            r.until
        ],
    )?;
    let Some(first_bucket) = first_bucket else {
        return Ok(true);
    };
    let first_raw: Option<Millis> = conn.one(
        "SELECT ts FROM readings WHERE device = ?1 AND ts >= ?2 AND ts <= ?3
             ORDER BY ts LIMIT 1",
        args![&r.device, r.since, r.until],
    )?;
    Ok(first_raw.is_some_and(|ts| Step::FiveMinutes.bucket(ts) <= first_bucket))
}

/// Readings of `r` rolled up so far (from the hourly buckets that overlap it: an estimate of
/// the raw rows, slightly high at the edges, blind to readings not rolled up yet).
fn rolled_up(conn: &dyn Db, r: &Range) -> Result<i64> {
    Ok(conn
        .one::<i64>(
            "SELECT coalesce(sum(count), 0) FROM rollups
             WHERE device = ?1 AND step = ?2 AND bucket >= ?3 AND bucket <= ?4
               AND (CAST(?5 AS TEXT) IS NULL OR metric = ?5)",
            args![
                &r.device,
                Step::Hour.ms(),
                Step::Hour.bucket(r.since),
                r.until,
                r.metric.as_deref()
            ],
        )?
        .unwrap_or(0))
}

/// `step=auto`: the finest resolution that returns at most `r.limit` rows. Raw readings
/// (`None`) when they fit and are all still kept (a short range, as before rollups existed),
/// else the finest [`Step`] whose buckets fit, else `1d`.
pub fn auto_step(conn: &dyn Db, r: &Range) -> Result<Option<Step>> {
    if rolled_up(conn, r)? <= i64::from(r.limit) && raw_complete(conn, r)? {
        return Ok(None);
    }
    for step in [Step::FiveMinutes, Step::Hour] {
        if count_buckets(conn, step, r, r.limit)? <= i64::from(r.limit) {
            return Ok(Some(step));
        }
    }
    Ok(Some(Step::Day))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{params, Connection};

    /// (id, ts, value) of device `wp-1`'s `pressure_mpa`.
    type R = (i64, Millis, f64);

    fn reading(id: i64, ts: Millis, value: f64) -> R {
        (id, ts, value)
    }

    fn aggregate(from: i64, rows: &[R]) -> (Batch, Vec<i64>) {
        let mut a = Aggregator::default();
        for &(id, ts, v) in rows {
            a.add(id, ts, "wp-1", "pressure_mpa", None, v);
        }
        a.finish(from)
    }

    #[test]
    fn buckets_start_at_multiples_of_their_step_also_before_the_epoch() {
        assert_eq!(Step::FiveMinutes.bucket(0), 0);
        assert_eq!(Step::FiveMinutes.bucket(299_999), 0);
        assert_eq!(Step::FiveMinutes.bucket(300_000), 300_000);
        assert_eq!(Step::Hour.bucket(3_600_000 * 5 + 1), 3_600_000 * 5);
        // 2026-11-29T09:30:00Z → the UTC day 2026-11-29T00:00:00Z.
        let ts = 1_795_944_600_000;
        assert_eq!(Step::Day.bucket(ts), 1_795_910_400_000);
        assert_eq!(Step::FiveMinutes.bucket(-1), -300_000);
        assert_eq!(Step::parse("1h"), Some(Step::Hour));
        assert_eq!(Step::parse("raw"), None);
        for s in Step::ALL {
            assert_eq!(Step::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn aggregate_adds_each_reading_to_its_bucket_at_every_step() {
        let h = 3_600_000;
        let rows = [
            reading(11, 10 * h, 0.30),
            reading(12, 10 * h + 60_000, 0.10),
            reading(13, 10 * h + 300_000, 0.50),
            // Late: an hour earlier, its own buckets.
            reading(14, 9 * h + 1, 0.20),
        ];
        let (b, skipped) = aggregate(10, &rows);
        assert!(skipped.is_empty());
        assert_eq!((b.from, b.to, b.readings), (10, 14, 4));
        let get = |step: Step, bucket: Millis| {
            b.deltas
                .iter()
                .find(|d| d.step == step && d.bucket == bucket)
                .map(|d| d.agg)
                .unwrap()
        };
        let first = get(Step::FiveMinutes, 10 * h);
        assert_eq!((first.min, first.max, first.count), (0.10, 0.30, 2));
        assert!((first.sum - 0.40).abs() < 1e-12);
        assert_eq!(get(Step::FiveMinutes, 10 * h + 300_000).count, 1);
        let hour = get(Step::Hour, 10 * h);
        assert_eq!((hour.min, hour.max, hour.count), (0.10, 0.50, 3));
        assert_eq!(get(Step::Hour, 9 * h).count, 1);
        let day = get(Step::Day, 0);
        assert_eq!((day.min, day.max, day.count), (0.10, 0.50, 4));
        // 5m: 3 buckets, 1h: 2, 1d: 1.
        assert_eq!(b.deltas.len(), 6);
    }

    #[test]
    fn a_non_finite_value_is_left_out_and_named() {
        let (b, skipped) = aggregate(0, &[reading(1, 0, 0.3), reading(2, 0, f64::NAN)]);
        assert_eq!(skipped, vec![2]);
        assert_eq!((b.to, b.readings), (2, 1));
        assert!(b.deltas.iter().all(|d| d.agg.count == 1));
    }

    #[test]
    fn merge_combines_with_what_is_there_once_and_only_from_the_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = super::super::open_writer(dir.path(), "normal").unwrap();
        let first = aggregate(0, &[reading(1, 0, 0.3), reading(2, 1, 0.1)]);
        let second = aggregate(2, &[reading(3, 2, 0.7)]);
        let (mut first, mut second) = (first.0, second.0);
        let tx = conn.transaction().unwrap();
        assert_eq!(merge(&tx, &mut first, 100).unwrap(), Merged::Done);
        // The same batch again (or one read before `first` was merged): nothing changes.
        first.merged = 0;
        assert_eq!(merge(&tx, &mut first, 100).unwrap(), Merged::Stale);
        assert_eq!(merge(&tx, &mut second, 100).unwrap(), Merged::Done);
        tx.commit().unwrap();
        assert_eq!(cursor(&conn).unwrap(), 3);
        let r = Range {
            device: "wp-1".into(),
            metric: None,
            since: 0,
            until: 10,
            limit: 100,
        };
        let b = buckets(&conn, Step::FiveMinutes, &r).unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].channel, None);
        assert_eq!((b[0].agg.min, b[0].agg.max, b[0].agg.count), (0.1, 0.7, 3));
        assert!((b[0].agg.sum - 1.1).abs() < 1e-12);
        // Retention: buckets before the cutoff go, in chunks.
        assert_eq!(prune(&conn, 1, 2).unwrap(), 2);
        assert_eq!(prune(&conn, 1, 2).unwrap(), 1);
        assert!(buckets(&conn, Step::Day, &r).unwrap().is_empty());
    }

    /// Every bucket of `conn`, in key order.
    /// One `rollups` row: the key, then min, max, sum and count.
    type Row = (String, i64, i64, String, String, f64, f64, f64, i64);

    fn all(conn: &Connection) -> Vec<Row> {
        let mut stmt = conn
            .prepare("SELECT device, step, bucket, metric, channel, min, max, sum, count FROM rollups ORDER BY 1, 2, 3, 4, 5")
            .unwrap();
        stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
            ))
        })
        .unwrap()
        .collect::<std::result::Result<_, _>>()
        .unwrap()
    }

    fn insert_readings(conn: &Connection, n: i64) {
        for id in 1..=n {
            let (device, channel) = (
                format!("wp-{}", id % 7),
                (id % 3 == 0).then(|| format!("c{}", id % 2)),
            );
            conn.execute(
                "INSERT INTO readings (id, ts, device, metric, channel, value)
                 VALUES (?1, ?2, ?3, 'pressure_mpa', ?4, ?5)",
                params![id, id * 97_000, device, channel, (id % 11) as f64 / 10.0],
            )
            .unwrap();
        }
    }

    #[test]
    fn a_batch_merged_in_parts_and_cut_short_ends_as_if_merged_at_once() {
        let (one, parts) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut whole = super::super::open_writer(one.path(), "normal").unwrap();
        let mut cut = super::super::open_writer(parts.path(), "normal").unwrap();
        insert_readings(&whole, 400);
        insert_readings(&cut, 400);

        // At once.
        let (mut b, _, read) = read_batch(&whole, position(&whole).unwrap(), 1000).unwrap();
        assert_eq!((read, b.to, b.merged), (400, 400, 0));
        let tx = whole.transaction().unwrap();
        assert_eq!(merge(&tx, &mut b, usize::MAX).unwrap(), Merged::Done);
        tx.commit().unwrap();

        // In parts of 7, the batch dropped after three of them (a crash), then read again.
        let (mut b, _, _) = read_batch(&cut, position(&cut).unwrap(), 1000).unwrap();
        let total = b.deltas.len();
        assert!(total > 30, "{total} deltas");
        for _ in 0..3 {
            let tx = cut.transaction().unwrap();
            assert_eq!(merge(&tx, &mut b, 7).unwrap(), Merged::Part);
            tx.commit().unwrap();
        }
        let at = position(&cut).unwrap();
        assert_eq!(
            at,
            Position {
                cursor: 0,
                pending: Some((400, 21))
            }
        );
        // Readings that arrived since are not part of the batch read again.
        cut.execute(
            "INSERT INTO readings (id, ts, device, metric, channel, value)
             VALUES (401, 0, 'wp-1', 'pressure_mpa', NULL, 9.0)",
            [],
        )
        .unwrap();
        let (mut again, _, read) = read_batch(&cut, at, 1000).unwrap();
        assert_eq!(
            (read, again.to, again.merged, again.deltas.len()),
            (400, 400, 21, total)
        );
        // A fresh batch from the cursor is refused while the part-merged one is pending.
        let (mut fresh, _, _) = read_batch(
            &cut,
            Position {
                cursor: 0,
                pending: None,
            },
            1000,
        )
        .unwrap();
        let tx = cut.transaction().unwrap();
        assert_eq!(merge(&tx, &mut fresh, 7).unwrap(), Merged::Stale);
        let mut parts_merged = 0;
        loop {
            parts_merged += 1;
            match merge(&tx, &mut again, 7).unwrap() {
                Merged::Part => {}
                Merged::Done => break,
                Merged::Stale => panic!("stale"),
            }
        }
        tx.commit().unwrap();
        assert_eq!(parts_merged, (total - 21).div_ceil(7));
        assert_eq!(
            position(&cut).unwrap(),
            Position {
                cursor: 400,
                pending: None
            }
        );
        assert_eq!(all(&whole), all(&cut));
    }
}
