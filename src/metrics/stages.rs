//! Where the time goes: one latency histogram per stage of a message's way through firewatch,
//! exposed as `firewatch_stage_seconds` (a Prometheus histogram).
//!
//! - `received_committed` (label `lane`: `event` or `reading`): from the publish leaving the
//!   MQTT client to the end of the group commit that made it durable;
//! - `committed_send_started` (label `channel`): from the commit of a notification row to its
//!   sender starting the attempt;
//! - `send_started_accepted` (label `channel`): the attempt itself, until the SMTP server or
//!   webhook accepted it (successful attempts only);
//! - `committed_in_tsdb`: from the commit of a reading to the time-series database's answer to
//!   the write that carried it.
//!
//! The commit times of rows are kept in a [`CommitLog`]: the pipeline records, after every
//! commit that added readings or notifications, the highest row ids so far; the forwarder and
//! the senders look up when the rows they handle became durable. Stage times use the
//! monotonic clock ([`Instant`]), never the pipeline's clock, which is a manual one in tests.

use crate::model::notification::ChannelKind;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Upper bounds of the buckets, in seconds (about 1.5× apart from 0.25 ms to 60 s, so that a
/// p99 read from the buckets is within one step of the true one).
pub const BOUNDS_S: [f64; 27] = [
    0.000_25, 0.000_5, 0.001, 0.002, 0.003, 0.005, 0.007_5, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0,
];

/// A latency histogram: counts per bucket (the last one is +Inf), their sum and count.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS_S.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// Counts one observation.
    pub fn observe(&self, d: Duration) {
        self.observe_n(d, 1);
    }

    /// Counts `n` observations of the same duration.
    pub fn observe_n(&self, d: Duration, n: u64) {
        if n == 0 {
            return;
        }
        let s = d.as_secs_f64();
        let i = BOUNDS_S.partition_point(|b| *b < s);
        self.buckets[i].fetch_add(n, Relaxed);
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_us.fetch_add(us.saturating_mul(n), Relaxed);
        self.count.fetch_add(n, Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines with `labels` (`k="v",…`).
    fn render(&self, s: &mut String, name: &str, labels: &str) {
        let mut cum = 0;
        for (i, b) in BOUNDS_S.iter().enumerate() {
            cum += self.buckets[i].load(Relaxed);
            let _ = writeln!(s, "{name}_bucket{{{labels},le=\"{b}\"}} {cum}");
        }
        cum += self.buckets[BOUNDS_S.len()].load(Relaxed);
        let _ = writeln!(s, "{name}_bucket{{{labels},le=\"+Inf\"}} {cum}");
        let sum = self.sum_us.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(s, "{name}_sum{{{labels}}} {sum:.6}");
        let _ = writeln!(s, "{name}_count{{{labels}}} {}", self.count());
    }
}

/// The histogram family's name.
pub const STAGE_SECONDS: &str = "firewatch_stage_seconds";

/// One histogram per stage (channel-indexed ones by `ChannelKind::index`).
#[derive(Debug, Default)]
pub struct Stages {
    /// Publish received → committed, events.
    pub event_committed: Histogram,
    /// Publish received → committed, everything else.
    pub reading_committed: Histogram,
    /// Notification committed → attempt started, per channel.
    pub send_started: [Histogram; ChannelKind::ALL.len()],
    /// Attempt started → accepted, per channel.
    pub accepted: [Histogram; ChannelKind::ALL.len()],
    /// Reading committed → written to the time-series database.
    pub in_tsdb: Histogram,
    /// When rows became durable.
    pub commits: CommitLog,
}

impl Stages {
    /// Prometheus exposition of every stage; `channels` names the channel indexes.
    pub fn render(&self, s: &mut String, channels: &[&str; ChannelKind::ALL.len()]) {
        let n = STAGE_SECONDS;
        let _ = writeln!(
            s,
            "# HELP {n} Time spent per stage: received_committed (lane), committed_send_started and send_started_accepted (channel), committed_in_tsdb.\n# TYPE {n} histogram"
        );
        self.event_committed
            .render(s, n, "stage=\"received_committed\",lane=\"event\"");
        self.reading_committed
            .render(s, n, "stage=\"received_committed\",lane=\"reading\"");
        for (i, ch) in channels.iter().enumerate() {
            self.send_started[i].render(
                s,
                n,
                &format!("stage=\"committed_send_started\",channel=\"{ch}\""),
            );
            self.accepted[i].render(
                s,
                n,
                &format!("stage=\"send_started_accepted\",channel=\"{ch}\""),
            );
        }
        self.in_tsdb.render(s, n, "stage=\"committed_in_tsdb\"");
    }
}

/// Commits kept: at one commit per millisecond, the last 16 seconds.
const COMMITS_KEPT: usize = 16_384;

#[derive(Debug, Clone, Copy)]
struct Mark {
    at: Instant,
    /// Highest reading id committed so far.
    reading: i64,
    /// Highest notification id committed so far.
    notification: i64,
}

/// The recent commits that added readings or notifications, with the highest row ids
/// committed so far (both never decrease).
#[derive(Debug, Default)]
pub struct CommitLog {
    marks: Mutex<VecDeque<Mark>>,
}

impl CommitLog {
    /// Records a commit at `at`; `reading` and `notification` are the highest ids it
    /// inserted, if any.
    pub fn committed(&self, at: Instant, reading: Option<i64>, notification: Option<i64>) {
        if reading.is_none() && notification.is_none() {
            return;
        }
        let Ok(mut m) = self.marks.lock() else {
            return;
        };
        let last = m.back().copied();
        let mark = Mark {
            at,
            reading: reading.max(last.map(|l| l.reading)).unwrap_or_default(),
            notification: notification
                .max(last.map(|l| l.notification))
                .unwrap_or_default(),
        };
        if m.len() == COMMITS_KEPT {
            m.pop_front();
        }
        m.push_back(mark);
    }

    /// When notification `id` was committed (`None` when that commit is no longer kept, or
    /// was made before this process started).
    pub fn notification(&self, id: i64) -> Option<Instant> {
        let m = self.marks.lock().ok()?;
        let i = m.partition_point(|k| k.notification < id);
        // The first mark at or past `id`; the one before it must be below `id` (else the row
        // predates the marks kept).
        let k = m.get(i)?;
        (i > 0 || m.len() < COMMITS_KEPT).then_some(k.at)
    }

    /// The readings with ids in `(after, upto]`, grouped by commit: (commit time, count).
    /// Readings whose commit is no longer kept are left out.
    pub fn readings(&self, after: i64, upto: i64) -> Vec<(Instant, u64)> {
        let Ok(m) = self.marks.lock() else {
            return Vec::new();
        };
        let mut i = m.partition_point(|k| k.reading <= after);
        if i == 0 && m.len() == COMMITS_KEPT {
            // The commit of the first readings in the range was dropped from the log.
            i = 1;
        }
        let mut out = Vec::new();
        let mut from = match i.checked_sub(1).and_then(|p| m.get(p)) {
            Some(p) => p.reading.max(after),
            None => after,
        };
        for k in m.iter().skip(i) {
            if from >= upto {
                break;
            }
            let to = k.reading.min(upto);
            if to > from {
                out.push((k.at, u64::try_from(to - from).unwrap_or(0)));
            }
            from = to;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_observation_lands_in_the_first_bucket_at_or_above_it() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(250)); // on a bound: that bucket
        h.observe(Duration::from_millis(40));
        h.observe_n(Duration::from_secs(120), 2); // past the last bound: +Inf
        let mut s = String::new();
        h.render(&mut s, "x", "a=\"b\"");
        assert!(s.contains("x_bucket{a=\"b\",le=\"0.00025\"} 1\n"), "{s}");
        assert!(s.contains("x_bucket{a=\"b\",le=\"0.03\"} 1\n"), "{s}");
        assert!(s.contains("x_bucket{a=\"b\",le=\"0.05\"} 2\n"), "{s}");
        assert!(s.contains("x_bucket{a=\"b\",le=\"60\"} 2\n"), "{s}");
        assert!(s.contains("x_bucket{a=\"b\",le=\"+Inf\"} 4\n"), "{s}");
        assert!(s.contains("x_sum{a=\"b\"} 240.040250\n"), "{s}");
        assert!(s.contains("x_count{a=\"b\"} 4\n"), "{s}");
    }

    #[test]
    fn rows_are_matched_to_the_commit_that_made_them_durable() {
        let log = CommitLog::default();
        let t0 = Instant::now();
        let t = |ms| t0 + Duration::from_millis(ms);
        log.committed(t(1), Some(10), None); // readings 1..=10
        log.committed(t(2), None, Some(3)); // notifications 1..=3
        log.committed(t(3), Some(25), Some(4));
        assert_eq!(log.notification(2), Some(t(2)));
        assert_eq!(log.notification(4), Some(t(3)));
        assert_eq!(log.notification(5), None, "not committed yet");
        // Readings 6..=22: five of the first commit, twelve of the third.
        assert_eq!(log.readings(5, 22), vec![(t(1), 5), (t(3), 12)]);
        assert_eq!(log.readings(10, 25), vec![(t(3), 15)]);
        assert_eq!(log.readings(25, 30), vec![]);
    }

    #[test]
    fn rows_older_than_the_kept_commits_are_not_guessed() {
        let log = CommitLog::default();
        let t0 = Instant::now();
        for i in 0..(COMMITS_KEPT as i64 + 10) {
            log.committed(t0, Some((i + 1) * 2), Some(i + 1));
        }
        // The first ten commits are gone: their rows have no commit time.
        assert_eq!(log.notification(3), None);
        assert_eq!(log.notification(11), None);
        assert_eq!(log.notification(12), Some(t0));
        let r = log.readings(0, 30);
        assert_eq!(r.iter().map(|x| x.1).sum::<u64>(), 8, "{r:?}");
    }
}
