//! Time-series forwarding to the InfluxDB v2 write API (influxdb2 crate).
//!
//! The embedded store's `readings` table is the spool: every accepted reading is already durable
//! there before its message is acknowledged, and this task forwards the rows past a persisted
//! cursor (`meta.tsdb_cursor`) in batches, oldest first. While the database is down the cursor
//! stays put and the spool grows on disk; when it returns, the backlog is replayed in order.
//! A slow or dead database therefore never delays ingest or alerts: they do not wait for it.
//!
//! Points: measurement = device kind, tags = `building`, `device`, `channel` (when the value has
//! one), fields = metrics; values of one device, channel and timestamp share one point.

use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::settings::{Problem, Secret};
use crate::store::{self, SpoolRow};
use influxdb2::api::write::TimestampPrecision;
use influxdb2::models::DataPoint;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// `meta` key of the forwarder's cursor (the last `readings` id written).
pub const CURSOR: &str = store::TSDB_CURSOR;

/// `[tsdb]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TsdbConfig {
    /// InfluxDB v2 base URL; unset: only the embedded store is written.
    pub url: Option<String>,
    /// Organisation.
    pub org: String,
    /// Bucket.
    pub bucket: String,
    /// API token.
    pub token: Option<Secret>,
    /// Points per write.
    pub batch_size: usize,
    /// Longest wait before a partial batch is written, milliseconds.
    pub flush_interval_ms: u64,
}

impl Default for TsdbConfig {
    fn default() -> Self {
        TsdbConfig {
            url: None,
            org: "firewatch".into(),
            bucket: "firewatch".into(),
            token: None,
            batch_size: 5000,
            flush_interval_ms: 1000,
        }
    }
}

impl TsdbConfig {
    /// Every problem of the `[tsdb]` settings.
    pub fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if let Some(url) = &self.url {
            match url::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => p.push(Problem::new(
                    "tsdb.url",
                    format!("{url:?} is not an http:// or https:// URL"),
                )),
            }
            if self.org.is_empty() {
                p.push(Problem::new("tsdb.org", "must be set when tsdb.url is set"));
            }
            if self.bucket.is_empty() {
                p.push(Problem::new(
                    "tsdb.bucket",
                    "must be set when tsdb.url is set",
                ));
            }
        }
        if self.batch_size == 0 {
            p.push(Problem::new("tsdb.batch_size", "must be at least 1"));
        }
        p
    }
}

/// Where the forwarder reports how far it has written (a `readings` id): the store's single
/// writer saves it. Returns `false` when that writer is gone.
pub type CursorReport = Box<dyn Fn(i64) -> bool + Send + Sync>;
const WRITE_TIMEOUT: Duration = Duration::from_secs(15);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// No commit for this long: the ingest paused, and a partial batch goes at once instead of
/// waiting out `tsdb.flush_interval_ms`.
const QUIET: Duration = Duration::from_millis(50);

/// Forwarder errors that stop the task (store failures); write failures are retried.
#[derive(Debug, thiserror::Error)]
pub enum TsdbError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// A blocking task failed.
    #[error("task: {0}")]
    Task(String),
    /// The client could not be built.
    #[error("client: {0}")]
    Client(String),
}

/// Whether a write failure is worth retrying: HTTP 4xx other than 408 and 429 means the
/// database refuses these points and will refuse them again.
fn refused(e: &influxdb2::RequestError) -> bool {
    match e {
        influxdb2::RequestError::Http { status, .. } => {
            let s = status.as_u16();
            (400..500).contains(&s) && s != 408 && s != 429
        }
        _ => false,
    }
}

/// Groups spool rows into points. Rows that cannot become a point are returned with the
/// reason, to be counted and logged: they are not silently dropped.
pub fn to_points(rows: &[SpoolRow]) -> (Vec<DataPoint>, Vec<(i64, String)>) {
    let mut invalid = Vec::new();
    let mut points = Vec::with_capacity(rows.len());
    let mut i = 0;
    while i < rows.len() {
        let r = &rows[i];
        let mut b = DataPoint::builder(r.kind.clone())
            .tag("building", r.building.clone())
            .tag("device", r.device.clone());
        if let Some(c) = &r.channel {
            b = b.tag("channel", c.clone());
        }
        b = b.field(r.metric.clone(), r.value);
        let mut j = i + 1;
        while j < rows.len()
            && rows[j].device == r.device
            && rows[j].ts == r.ts
            && rows[j].channel == r.channel
            && rows[j].metric != r.metric
        {
            b = b.field(rows[j].metric.clone(), rows[j].value);
            j += 1;
        }
        match b.timestamp(r.ts).build() {
            Ok(p) => points.push(p),
            Err(e) => invalid.extend(rows[i..j].iter().map(|r| (r.id, e.to_string()))),
        }
        i = j;
    }
    (points, invalid)
}

/// The forwarder task.
pub struct Forwarder {
    cfg: TsdbConfig,
    dir: PathBuf,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    report: CursorReport,
    clock: SharedClock,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("url", &self.cfg.url)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Forwarder {
    /// A forwarder for `cfg` reading the store in `dir`; its cursor is saved through `report`.
    pub fn new(
        cfg: TsdbConfig,
        dir: PathBuf,
        metrics: Arc<Metrics>,
        wake: Arc<Notify>,
        report: CursorReport,
        clock: SharedClock,
    ) -> Self {
        Forwarder {
            cfg,
            dir,
            metrics,
            wake,
            report,
            clock,
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T, store::StoreError> + Send + 'static,
    ) -> Result<T, TsdbError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            thread_local! {
                static CONN: std::cell::RefCell<Option<rusqlite::Connection>> = const { std::cell::RefCell::new(None) };
            }
            CONN.with(|c| {
                let mut c = c.borrow_mut();
                if c.is_none() {
                    *c = Some(store::open_reader(&dir)?);
                }
                match c.as_ref() {
                    Some(conn) => f(conn),
                    None => Err(store::StoreError::Corrupt {
                        what: "connection",
                        err: "not open".into(),
                    }),
                }
            })
        })
        .await
        .map_err(|e| TsdbError::Task(e.to_string()))?
        .map_err(TsdbError::from)
    }

    /// Forwards until cancelled; on cancel, one last bounded flush attempt.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), TsdbError> {
        let Some(url) = self.cfg.url.clone() else {
            // Not configured: the embedded store is the only time series.
            shutdown.cancelled().await;
            return Ok(());
        };
        self.metrics.tsdb_enabled.store(true, Relaxed);
        let token = self
            .cfg
            .token
            .as_ref()
            .map(|t| t.expose().to_owned())
            .unwrap_or_default();
        let client = influxdb2::ClientBuilder::new(url.clone(), self.cfg.org.clone(), token)
            .build()
            .map_err(|e| TsdbError::Client(e.to_string()))?;
        // First time forwarding from this store: everything in it goes.
        let mut cursor = self
            .blocking(|c| store::get_meta(c, CURSOR))
            .await?
            .unwrap_or(0);
        let batch = self.cfg.batch_size;
        // Shrinks while the database refuses a batch (4xx), to find the point it refuses.
        let mut limit = batch;
        let interval = Duration::from_millis(self.cfg.flush_interval_ms);
        let mut backoff = Duration::from_millis(500);
        let mut pending_since: Option<Instant> = None;
        tracing::info!(url = %url, bucket = %self.cfg.bucket, cursor, "Forwarding readings to the time-series database.");
        // The ingest paused (no commit woke us for QUIET): write what is spooled now.
        let mut quiet = false;
        loop {
            let depth = self
                .blocking(move |c| Ok(store::max_reading_id(c)? - cursor))
                .await?;
            self.metrics.tsdb_spool.store(depth, Relaxed);
            let stopping = shutdown.is_cancelled();
            let full = depth >= i64::try_from(limit).unwrap_or(i64::MAX);
            let due = full
                || (depth > 0
                    && (quiet
                        || stopping
                        || pending_since.is_some_and(|t| t.elapsed() >= interval)));
            quiet = false;
            let rows = if due {
                self.blocking(move |c| store::spool_after(c, cursor, limit))
                    .await?
            } else {
                Vec::new()
            };
            if rows.is_empty() {
                if stopping {
                    return Ok(());
                }
                if depth > 0 && pending_since.is_none() {
                    pending_since = Some(Instant::now());
                }
                // Wait for the batch to fill (every commit wakes us), for the flush interval,
                // or for the ingest to pause.
                let wait = match pending_since {
                    Some(t) if depth > 0 => interval.saturating_sub(t.elapsed()).min(QUIET),
                    _ => Duration::from_secs(1),
                };
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(wait) => quiet = depth > 0,
                    () = shutdown.cancelled() => {}
                }
                continue;
            }
            let last = rows.last().map_or(cursor, |r| r.id);
            let (points, invalid) = to_points(&rows);
            for (id, e) in &invalid {
                self.metrics.tsdb_points_invalid.fetch_add(1, Relaxed);
                tracing::warn!(reading = id, error = %e, "Reading cannot be written as a point; it stays in the embedded store only.");
            }
            let n = points.len() as u64;
            let started = Instant::now();
            let result = tokio::time::timeout(
                WRITE_TIMEOUT,
                client.write_with_precision(
                    &self.cfg.bucket,
                    futures::stream::iter(points),
                    TimestampPrecision::Milliseconds,
                ),
            )
            .await;
            let took = started.elapsed().as_micros() as u64;
            self.metrics.tsdb_writes.fetch_add(1, Relaxed);
            self.metrics.tsdb_last_latency_us.store(took, Relaxed);
            self.metrics.tsdb_latency_us.fetch_add(took, Relaxed);
            let mut poison = false;
            let err = match result {
                Ok(Ok(())) => None,
                Ok(Err(e)) => {
                    poison = refused(&e);
                    Some(e.to_string())
                }
                Err(_) => Some(format!(
                    "write timed out after {} s",
                    WRITE_TIMEOUT.as_secs()
                )),
            };
            match err {
                None => {
                    let written = Instant::now();
                    let stages = &self.metrics.stages;
                    for (at, n) in stages.commits.readings(cursor, last) {
                        stages
                            .in_tsdb
                            .observe_n(written.saturating_duration_since(at), n);
                    }
                    cursor = last;
                    // Saved by the store's single writer; if firewatch stops before that
                    // commit, these points are written again after the restart (the same
                    // series and timestamps, so the database keeps one copy).
                    if !(self.report)(last) {
                        return Ok(());
                    }
                    self.metrics.tsdb_points.fetch_add(n, Relaxed);
                    if self.metrics.tsdb_failing_since.swap(0, Relaxed) != 0 {
                        tracing::info!(
                            spooled = depth,
                            "Time-series database is back; replaying the spool."
                        );
                    }
                    backoff = Duration::from_millis(500);
                    pending_since = None;
                    if limit < batch && rows.len() < limit {
                        limit = batch;
                    }
                }
                Some(e) if poison && rows.len() > 1 => {
                    // Refused, not unreachable: halve the batch until the refused point is
                    // alone; the points before it go through meanwhile.
                    self.metrics.tsdb_errors.fetch_add(1, Relaxed);
                    limit = (rows.len() / 2).max(1);
                    tracing::warn!(error = %e, points = rows.len(), retry_with = limit, "Time-series database refused a batch; looking for the refused points.");
                }
                Some(e) if poison => {
                    // One point the database will never take: set it aside (it stays in the
                    // embedded store), count it, and go on with the spool.
                    self.metrics.tsdb_errors.fetch_add(1, Relaxed);
                    self.metrics.tsdb_points_refused.fetch_add(1, Relaxed);
                    if let Some(r) = rows.first() {
                        tracing::warn!(error = %e, reading = r.id, device = %r.device, metric = %r.metric, value = r.value, "Time-series database refused a point; set aside.");
                    }
                    cursor = last;
                    limit = batch;
                    if !(self.report)(last) {
                        return Ok(());
                    }
                }
                Some(e) => {
                    self.metrics.tsdb_errors.fetch_add(1, Relaxed);
                    let _ = self.metrics.tsdb_failing_since.compare_exchange(
                        0,
                        self.clock.now_ms(),
                        Relaxed,
                        Relaxed,
                    );
                    tracing::warn!(error = %e, spooled = depth, retry_in_ms = backoff.as_millis() as u64, "Time-series write failed; readings stay spooled.");
                    if shutdown.is_cancelled() {
                        return Ok(());
                    }
                    // Full jitter keeps a restarted database from being hit by every writer at once.
                    let jitter =
                        (crate::clock::wall_ms().rem_euclid(1000) as f64 / 1000.0).max(0.1);
                    let wait = backoff.mul_f64(jitter);
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = shutdown.cancelled() => return Ok(()),
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use influxdb2::models::WriteDataPoint;

    fn row(id: i64, ts: i64, metric: &str, channel: Option<&str>, value: f64) -> SpoolRow {
        SpoolRow {
            id,
            ts,
            device: "e1".into(),
            building: "b1".into(),
            kind: "electrical".into(),
            metric: metric.into(),
            channel: channel.map(Into::into),
            value,
        }
    }

    #[test]
    fn values_of_one_message_share_a_point() {
        let rows = vec![
            row(1, 1000, "residual_current_ma", None, 120.0),
            row(2, 1000, "current_a", None, 3.0),
            row(3, 1000, "temperature_c", Some("L1"), 41.2),
            row(4, 1000, "temperature_c", Some("N"), 35.0),
            row(5, 2000, "residual_current_ma", None, 121.0),
        ];
        let (points, invalid) = to_points(&rows);
        assert_eq!(points.len(), 4);
        assert!(invalid.is_empty());
        let mut line = Vec::new();
        points[0].write_data_point_to(&mut line).unwrap();
        let line = String::from_utf8(line).unwrap();
        assert!(
            line.starts_with("electrical,building=b1,device=e1 "),
            "{line}"
        );
        assert!(line.contains("residual_current_ma=120"), "{line}");
        assert!(line.contains("current_a=3"), "{line}");
        assert!(line.trim_end().ends_with(" 1000"), "{line}");
        let mut line = Vec::new();
        points[1].write_data_point_to(&mut line).unwrap();
        assert!(String::from_utf8(line).unwrap().contains("channel=L1"));
    }
}
