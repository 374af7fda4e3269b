//! The rollup worker: keeps the rollups (`store::rollups`) up to date as readings arrive.
//!
//! It reads the readings after the persisted rollup cursor (`meta.rollup_cursor`) through a
//! read-only connection, at most [`BATCH`] at a time, adds them up as it reads into per-bucket
//! deltas (min, max, sum, count at 5 min, 1 h and 1 day) and hands them, with the new cursor,
//! to the store's only writer (the pipeline thread) through a [`DeltaReport`]. The pipeline
//! merges them in parts of a bounded size, one part per commit, so an alarm's commit never
//! waits behind a whole batch; it moves the cursor with the last part and answers after that
//! commit; only then does the worker read on. So the hot path of ingest gains no per-reading
//! work (one upsert per bucket touched, a few per device and pass). A crash between parts
//! means the same readings are read again and merging goes on after the last part that
//! committed (`store::rollups::Position`): none is counted twice.
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

/// Readings read and added up per pass at most. It bounds the worker's memory: the readings
/// are added up as they are read, into at most three deltas each (about 60 bytes apiece) and
/// each series' name once, so a pass holds a few MB even when every reading is of another
/// device.
pub const BATCH: usize = 20_000;
/// Pause between passes that found less than a full batch. A pass costs the store's writer one
/// upsert per bucket touched, whatever the readings in it: one series reporting every second
/// costs three upserts per pass, not three per reading.
pub const INTERVAL: Duration = Duration::from_secs(1);

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
        let mut at = self.blocking(|c| rollups::position(c)).await?;
        self.metrics.rollups.cursor.store(at.cursor, Relaxed);
        match at.pending {
            Some((to, merged)) => tracing::info!(
                cursor = at.cursor,
                to,
                merged,
                "Rolling up readings; first the rest of a batch merged in part."
            ),
            None => tracing::info!(cursor = at.cursor, "Rolling up readings."),
        }
        loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let from = at;
            let (batch, skipped, max_id, read): Pass = self
                .blocking(move |c| {
                    let (batch, skipped, read) = rollups::read_batch(c, from, BATCH)?;
                    Ok((batch, skipped, store::max_reading_id(c)?, read))
                })
                .await?;
            let cursor = at.cursor;
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
                        at = rollups::Position {
                            cursor: to,
                            pending: None,
                        };
                        let m = &self.metrics.rollups;
                        m.cursor.store(to, Relaxed);
                        m.backlog.store((max_id - to).max(0), Relaxed);
                        m.readings.fetch_add(readings, Relaxed);
                        m.deltas.fetch_add(deltas as u64, Relaxed);
                        m.skipped.fetch_add(skipped.len() as u64, Relaxed);
                    }
                    Ok(false) => {
                        // Not where the store stands: read on from there.
                        at = self.blocking(|c| rollups::position(c)).await?;
                        self.metrics.rollups.cursor.store(at.cursor, Relaxed);
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
