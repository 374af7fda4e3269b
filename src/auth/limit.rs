//! The login rate limit: after a number of failed logins within [`WINDOW_MS`] for one key,
//! further attempts for that key are refused until the oldest of those failures is older than
//! the window. The API keeps two: [`MAX_FAILURES`] per user name and client address (a
//! password guessed at one account), and [`MAX_ADDRESS_FAILURES`] per address (names tried in
//! turn); a control room behind one address is not locked out by one operator's typos. A success clears the key. Time is passed
//! in (the service's clock), and the table is bounded: at [`MAX_KEYS`] keys the one whose last
//! failure is oldest is forgotten first.

use std::collections::{HashMap, VecDeque};

/// Failures allowed per user name and address within the window.
pub const MAX_FAILURES: usize = 5;
/// Failures allowed per address within the window.
pub const MAX_ADDRESS_FAILURES: usize = 30;
/// The window, ms.
pub const WINDOW_MS: i64 = 5 * 60_000;
/// Keys kept at most.
pub const MAX_KEYS: usize = 10_000;

/// Failed logins per key.
#[derive(Debug)]
pub struct Limiter {
    max: usize,
    failures: HashMap<String, VecDeque<i64>>,
}

impl Limiter {
    /// An empty limiter allowing `max` failures per key within the window.
    pub fn new(max: usize) -> Self {
        Limiter {
            max: max.max(1),
            failures: HashMap::new(),
        }
    }

    /// `Err(retry_after_ms)` while `key` may not try again at `now`.
    pub fn check(&mut self, key: &str, now: i64) -> Result<(), i64> {
        let Some(q) = self.failures.get_mut(key) else {
            return Ok(());
        };
        while q.front().is_some_and(|&t| t <= now - WINDOW_MS) {
            q.pop_front();
        }
        if q.is_empty() {
            self.failures.remove(key);
            return Ok(());
        }
        if q.len() >= self.max {
            let oldest = q.front().copied().unwrap_or(now);
            return Err((oldest + WINDOW_MS - now).max(1));
        }
        Ok(())
    }

    /// Records a failed attempt.
    pub fn failed(&mut self, key: &str, now: i64) {
        if !self.failures.contains_key(key) && self.failures.len() >= MAX_KEYS {
            let stalest = self
                .failures
                .iter()
                .min_by_key(|(_, q)| q.back().copied().unwrap_or(i64::MIN))
                .map(|(k, _)| k.clone());
            if let Some(k) = stalest {
                self.failures.remove(&k);
            }
        }
        let q = self.failures.entry(key.to_owned()).or_default();
        q.push_back(now);
        while q.len() > self.max {
            q.pop_front();
        }
    }

    /// A successful login clears the key.
    pub fn succeeded(&mut self, key: &str) {
        self.failures.remove(key);
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.failures.len()
    }

    /// No keys held.
    pub fn is_empty(&self) -> bool {
        self.failures.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_lock_the_key_until_the_oldest_leaves_the_window() {
        let mut l = Limiter::new(MAX_FAILURES);
        let t0 = 1_000_000;
        for i in 0..5 {
            assert_eq!(l.check("zhang", t0 + i * 1000), Ok(()));
            l.failed("zhang", t0 + i * 1000);
        }
        // The sixth attempt, a second later, waits for the first failure to age out.
        assert_eq!(l.check("zhang", t0 + 5000), Err(WINDOW_MS - 5000));
        // Other keys are not affected.
        assert_eq!(l.check("li", t0 + 5000), Ok(()));
        // At the end of the window of the first failure, one more try is allowed.
        assert_eq!(l.check("zhang", t0 + WINDOW_MS), Ok(()));
        l.failed("zhang", t0 + WINDOW_MS);
        assert!(l.check("zhang", t0 + WINDOW_MS + 1).is_err());
        // A success clears it.
        l.succeeded("zhang");
        assert_eq!(l.check("zhang", t0 + WINDOW_MS + 2), Ok(()));
        assert!(l.is_empty());
    }

    #[test]
    fn the_table_is_bounded() {
        let mut l = Limiter::new(MAX_FAILURES);
        for i in 0..(MAX_KEYS as i64 + 10) {
            l.failed(&format!("10.0.{}.{}", i / 256, i % 256), i);
        }
        assert_eq!(l.len(), MAX_KEYS);
        // The oldest keys went first; the newest is still held.
        assert!(!l.failures.contains_key("10.0.0.0"));
        let newest = MAX_KEYS as i64 + 9;
        assert!(l
            .failures
            .contains_key(&format!("10.0.{}.{}", newest / 256, newest % 256)));
    }
}
