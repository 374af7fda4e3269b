//! (added) Per-target figures of the northbound forwarders (city platforms): each target
//! registers its own [`Target`] at start; `/metrics` shows them with a `target` label.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// Metric names.
pub mod names {
    /// Records not yet forwarded, per target.
    pub const BACKLOG: &str = "firewatch_northbound_backlog_records";
    /// Age of the oldest record not yet forwarded, per target.
    pub const LAG: &str = "firewatch_northbound_lag_seconds";
    /// Records forwarded (acknowledged by the platform), per target.
    pub const FORWARDED: &str = "firewatch_northbound_forwarded_total";
    /// Failed delivery attempts (retried), per target.
    pub const FAILED: &str = "firewatch_northbound_failed_total";
    /// Records the platform refused, set aside, per target.
    pub const SET_ASIDE: &str = "firewatch_northbound_set_aside_total";
    /// Records pruned before they were forwarded (past `max_backlog`), per target.
    pub const DROPPED: &str = "firewatch_northbound_dropped_total";
    /// MQTT targets: 1 while connected to the upstream broker.
    pub const CONNECTED: &str = "firewatch_northbound_connected";
}

/// One target's figures.
#[derive(Debug, Default)]
pub struct Target {
    /// Target name (the `target` label).
    pub name: String,
    /// An MQTT target (has a connected gauge).
    pub mqtt: bool,
    /// Records behind.
    pub backlog: AtomicI64,
    /// Lag, milliseconds.
    pub lag_ms: AtomicI64,
    /// Records forwarded.
    pub forwarded: AtomicU64,
    /// Failed attempts.
    pub failed: AtomicU64,
    /// Records set aside.
    pub set_aside: AtomicU64,
    /// Records dropped by the prune.
    pub dropped: AtomicU64,
    /// Connected (MQTT).
    pub connected: AtomicI64,
}

/// Every registered target.
#[derive(Debug, Default)]
pub struct Targets {
    all: Mutex<Vec<Arc<Target>>>,
}

impl Targets {
    /// Registers a target's figures (a second registration of a name replaces the first).
    pub fn register(&self, name: &str, mqtt: bool) -> Arc<Target> {
        let t = Arc::new(Target {
            name: name.to_owned(),
            mqtt,
            ..Target::default()
        });
        // A poisoned lock only means a panic elsewhere while registering; the list is intact.
        let mut all = self.all.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|o| o.name != name);
        all.push(Arc::clone(&t));
        t
    }

    /// Appends the exposition of every target.
    pub fn render(&self, s: &mut String) {
        let all = self.all.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if all.is_empty() {
            return;
        }
        type Get = fn(&Target) -> String;
        let rows: [(&str, &str, &str, Get); 6] = [
            (
                names::BACKLOG,
                "Records not yet forwarded to the platform.",
                "gauge",
                |t| t.backlog.load(Relaxed).to_string(),
            ),
            (
                names::LAG,
                "Age of the oldest record not yet forwarded.",
                "gauge",
                |t| format!("{:.3}", t.lag_ms.load(Relaxed) as f64 / 1000.0),
            ),
            (
                names::FORWARDED,
                "Records the platform acknowledged.",
                "counter",
                |t| t.forwarded.load(Relaxed).to_string(),
            ),
            (
                names::FAILED,
                "Delivery attempts that failed (retried).",
                "counter",
                |t| t.failed.load(Relaxed).to_string(),
            ),
            (
                names::SET_ASIDE,
                "Records the platform refused, set aside.",
                "counter",
                |t| t.set_aside.load(Relaxed).to_string(),
            ),
            (
                names::DROPPED,
                "Records pruned past max_backlog before they were forwarded.",
                "counter",
                |t| t.dropped.load(Relaxed).to_string(),
            ),
        ];
        for (name, help, kind, get) in rows {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for t in &all {
                let _ = writeln!(s, "{name}{{target=\"{}\"}} {}", t.name, get(t));
            }
        }
        let n = names::CONNECTED;
        let _ = writeln!(
            s,
            "# HELP {n} Connected to the upstream broker (MQTT targets).\n# TYPE {n} gauge"
        );
        for t in all.iter().filter(|t| t.mqtt) {
            let _ = writeln!(
                s,
                "{n}{{target=\"{}\"}} {}",
                t.name,
                t.connected.load(Relaxed)
            );
        }
    }
}
