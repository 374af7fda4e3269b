//! (added) The GB/T 26875.3 gateway's figures.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The gateway's figures.
#[derive(Debug, Default)]
pub struct GbMetrics {
    /// Connections open now.
    pub connections: AtomicU64,
    /// Connections accepted in all.
    pub accepted: AtomicU64,
    /// Valid frames received.
    pub frames: AtomicU64,
    /// Frames confirmed after commit.
    pub confirmed: AtomicU64,
    /// Frames denied (checksum, length, ADU).
    pub denied: AtomicU64,
    /// Bytes that framed nothing.
    pub garbage_bytes: AtomicU64,
    /// Object times not believed (a panel clock never set).
    pub clock_unset: AtomicU64,
    /// Connections closed: silent too long.
    pub closed_idle: AtomicU64,
    /// Connections closed: too many frames.
    pub closed_flood: AtomicU64,
    /// Connections closed: too much garbage.
    pub closed_garbage: AtomicU64,
    /// Connections refused: unknown address in strict mode, or over `max_connections`.
    pub refused: AtomicU64,
    /// Commands sent (clock syncs, patrols), first attempts.
    pub commands_sent: AtomicU64,
    /// Commands sent again, unanswered.
    pub commands_resent: AtomicU64,
    /// Commands given up after every retry.
    pub commands_failed: AtomicU64,
}

impl GbMetrics {
    /// Prometheus text.
    pub fn render(&self, s: &mut String) {
        let mut c = |name: &str, help: &str, kind: &str, v: &AtomicU64| {
            let _ = writeln!(
                s,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Relaxed)
            );
        };
        c(
            "firewatch_gb_connections",
            "GB/T 26875.3 connections open.",
            "gauge",
            &self.connections,
        );
        c(
            "firewatch_gb_connections_total",
            "GB/T 26875.3 connections accepted.",
            "counter",
            &self.accepted,
        );
        c(
            "firewatch_gb_frames_total",
            "Valid GB/T 26875.3 frames received.",
            "counter",
            &self.frames,
        );
        c(
            "firewatch_gb_confirmed_total",
            "Frames confirmed after what they changed was committed.",
            "counter",
            &self.confirmed,
        );
        c(
            "firewatch_gb_denied_total",
            "Frames denied (checksum, length or ADU).",
            "counter",
            &self.denied,
        );
        c(
            "firewatch_gb_garbage_bytes_total",
            "Received bytes that framed nothing.",
            "counter",
            &self.garbage_bytes,
        );
        c(
            "firewatch_gb_clock_unset_total",
            "Object times not believed (panel clock never set); the receive time was used.",
            "counter",
            &self.clock_unset,
        );
        c(
            "firewatch_gb_commands_sent_total",
            "Commands sent to transmitters (clock syncs, patrols).",
            "counter",
            &self.commands_sent,
        );
        c(
            "firewatch_gb_commands_resent_total",
            "Commands sent again, unanswered.",
            "counter",
            &self.commands_resent,
        );
        c(
            "firewatch_gb_commands_failed_total",
            "Commands given up after every retry.",
            "counter",
            &self.commands_failed,
        );
        let _ = writeln!(
            s,
            "# HELP firewatch_gb_closed_total Connections closed by firewatch, by reason.\n# TYPE firewatch_gb_closed_total counter"
        );
        for (reason, v) in [
            ("idle", &self.closed_idle),
            ("flood", &self.closed_flood),
            ("garbage", &self.closed_garbage),
            ("refused", &self.refused),
        ] {
            let _ = writeln!(
                s,
                "firewatch_gb_closed_total{{reason=\"{reason}\"}} {}",
                v.load(Relaxed)
            );
        }
    }
}
