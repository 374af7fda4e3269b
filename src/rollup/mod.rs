//! The rollup worker: keeps the rollups (`store::rollups`) up to date as readings arrive.
//!
//! It reads the readings after the persisted rollup cursor (`meta.rollup_cursor`) through a
//! read-only connection, at most [`BATCH`] at a time, adds them up into per-bucket deltas in
//! memory (min, max, sum, count at 5 min, 1 h and 1 day) and hands them, with the new cursor,
//! to the store's only writer (the pipeline thread) through a [`DeltaReport`]. The pipeline
//! merges them and moves the cursor in one transaction, and answers after its commit; only
//! then does the worker read on. So the hot path of ingest gains no per-reading work (one
//! upsert per bucket touched, a few per device and pass), a crash between read and commit
//! only means the same readings are read again, and none is counted twice.
//!
//! While readings arrive it makes a pass every [`INTERVAL`]; a backlog (after an upgrade, or
//! readings that arrived faster than a pass takes) goes in full batches one after the other.

use crate::metrics::Metrics;
use crate::store::{self, rollups};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// Readings read and added up per pass at most (bounds the worker's memory: at most three
/// deltas per reading).
pub const BATCH: usize = 50_000;
/// Pause between passes that found less than a full batch.
pub const INTERVAL: Duration = Duration::from_millis(500);

/// Where the worker hands a batch of deltas: the store's single writer, which answers on the
/// sender after its commit whether it merged them. Returns `false` when that writer is gone.
pub type DeltaReport = Box<dyn Fn(rollups::Batch, oneshot::Sender<bool>) -> bool + Send + Sync>;

/// Errors that stop the worker.
#[derive(Debug, thiserror::Error)]
pub enum RollupError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// A blocking task failed.
    #[error("task: {0}")]
    Task(String),
}

/// The rollup worker task.
pub struct Worker {
    dir: PathBuf,
    metrics: Arc<Metrics>,
    report: DeltaReport,
    conn: Arc<Mutex<Option<rusqlite::Connection>>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// One pass's reading: the deltas, the readings left out, the largest reading id, the rows
/// read.
type Pass = (rollups::Batch, Vec<i64>, i64, usize);

impl Worker {
    /// A worker reading the store in `dir` and handing its deltas to `report`.
    pub fn new(dir: PathBuf, metrics: Arc<Metrics>, report: DeltaReport) -> Self {
        Worker {
            dir,
            metrics,
            report,
            conn: Arc::new(Mutex::new(None)),
        }
    }

    /// Runs `f` on the worker's read-only connection, on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T, store::StoreError> + Send + 'static,
    ) -> Result<T, RollupError> {
        let (dir, conn) = (self.dir.clone(), Arc::clone(&self.conn));
        tokio::task::spawn_blocking(move || {
            // Only this task uses the connection, one call at a time: the lock is never
            // contended, it only makes the connection shareable with the blocking pool.
            let mut guard = conn.lock().map_err(|e| store::StoreError::Corrupt {
                what: "rollup connection",
                err: e.to_string(),
            })?;
            if guard.is_none() {
                *guard = Some(store::open_reader(&dir)?);
            }
            match guard.as_ref() {
                Some(c) => f(c),
                None => Err(store::StoreError::Corrupt {
                    what: "rollup connection",
                    err: "not open".into(),
                }),
            }
        })
        .await
        .map_err(|e| RollupError::Task(e.to_string()))?
        .map_err(RollupError::from)
    }

    /// Rolls up until cancelled (the readings not rolled up yet stay in the store for the next
    /// start).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), RollupError> {
        let mut cursor = self.blocking(rollups::cursor).await?;
        self.metrics.rollups.cursor.store(cursor, Relaxed);
        tracing::info!(cursor, "Rolling up readings.");
        loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let from = cursor;
            let (batch, skipped, max_id, read): Pass = self
                .blocking(move |c| {
                    let rows = rollups::readings_after(c, from, BATCH)?;
                    let (batch, skipped) = rollups::aggregate(from, &rows);
                    Ok((batch, skipped, store::max_reading_id(c)?, rows.len()))
                })
                .await?;
            self.metrics
                .rollups
                .backlog
                .store((max_id - cursor).max(0), Relaxed);
            let full = read >= BATCH;
            if batch.to > batch.from {
                for id in &skipped {
                    tracing::warn!(
                        reading = id,
                        "Reading value is not finite; left out of the rollups."
                    );
                }
                let (readings, deltas, to) = (batch.readings, batch.deltas.len(), batch.to);
                let (tx, rx) = oneshot::channel();
                if !(self.report)(batch, tx) {
                    return Ok(());
                }
                // Answered after the pipeline's commit (it runs until after this task has
                // stopped, so the answer comes also while shutting down).
                match rx.await {
                    Ok(true) => {
                        cursor = to;
                        let m = &self.metrics.rollups;
                        m.cursor.store(cursor, Relaxed);
                        m.backlog.store((max_id - cursor).max(0), Relaxed);
                        m.readings.fetch_add(readings, Relaxed);
                        m.deltas.fetch_add(deltas as u64, Relaxed);
                        m.skipped.fetch_add(skipped.len() as u64, Relaxed);
                    }
                    Ok(false) => {
                        // Not where the store's cursor is: read on from there.
                        cursor = self.blocking(rollups::cursor).await?;
                        self.metrics.rollups.cursor.store(cursor, Relaxed);
                        continue;
                    }
                    Err(_) => return Ok(()),
                }
            }
            if !full {
                tokio::select! {
                    () = tokio::time::sleep(INTERVAL) => {}
                    () = shutdown.cancelled() => return Ok(()),
                }
            }
        }
    }
}
