//! (added) The rollup worker's gauges and counters (`src/rollup/`).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// Metric names.
pub mod names {
    /// Readings not yet rolled up.
    pub const BACKLOG: &str = "firewatch_rollup_backlog";
    /// The rollup cursor.
    pub const CURSOR: &str = "firewatch_rollup_cursor";
    /// Readings rolled up.
    pub const READINGS: &str = "firewatch_rollup_readings_total";
    /// Bucket deltas merged.
    pub const DELTAS: &str = "firewatch_rollup_deltas_total";
    /// Readings left out of the rollups (a value that is not finite).
    pub const SKIPPED: &str = "firewatch_rollup_readings_skipped_total";
    /// Parts merged (a batch goes in parts of a bounded size).
    pub const PARTS: &str = "firewatch_rollup_parts_total";
    /// Times a merge stopped between parts for a waiting event.
    pub const YIELDS: &str = "firewatch_rollup_yields_total";
}

/// The rollup worker's numbers.
#[derive(Debug, Default)]
pub struct Rollups {
    /// Readings after the rollup cursor (not yet in the rollups).
    pub backlog: AtomicI64,
    /// The last reading id merged into the rollups.
    pub cursor: AtomicI64,
    /// Readings rolled up since the start.
    pub readings: AtomicU64,
    /// Bucket deltas merged since the start.
    pub deltas: AtomicU64,
    /// Readings left out (not finite).
    pub skipped: AtomicU64,
    /// Parts merged since the start.
    pub parts: AtomicU64,
    /// Merges that stopped between parts for a waiting event.
    pub yields: AtomicU64,
}

impl Rollups {
    /// Appends the exposition.
    pub fn render(&self, s: &mut String) {
        for (name, help, kind, v) in [
            (
                names::BACKLOG,
                "Readings stored but not yet rolled up.",
                "gauge",
                self.backlog.load(Relaxed).to_string(),
            ),
            (
                names::CURSOR,
                "The last reading id merged into the rollups.",
                "gauge",
                self.cursor.load(Relaxed).to_string(),
            ),
            (
                names::READINGS,
                "Readings merged into the rollups.",
                "counter",
                self.readings.load(Relaxed).to_string(),
            ),
            (
                names::DELTAS,
                "Bucket deltas (per series, step and bucket) merged into the rollups.",
                "counter",
                self.deltas.load(Relaxed).to_string(),
            ),
            (
                names::SKIPPED,
                "Readings left out of the rollups because their value is not finite.",
                "counter",
                self.skipped.load(Relaxed).to_string(),
            ),
            (
                names::PARTS,
                "Parts merged into the rollups (a batch of deltas goes in parts of at most 256, one look for a waiting event between two).",
                "counter",
                self.parts.load(Relaxed).to_string(),
            ),
            (
                names::YIELDS,
                "Times a rollup merge stopped between two parts because an event waited (it went first).",
                "counter",
                self.yields.load(Relaxed).to_string(),
            ),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        }
    }
}
