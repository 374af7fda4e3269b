//! One clock for everything that asks what time it is: the rule engine's timers, the pipeline's
//! receive stamps and ticks, the notification senders' retries and every schedule built on them.
//!
//! [`SystemClock`] is the wall clock; [`ManualClock`] stands still until a test moves it, so
//! hold times, reminders and retry backoffs are tested by advancing time, not by sleeping
//! (influxdb3's `TimeProvider` and `MockProvider`). Waiting goes through the clock too
//! ([`Clock::wait_until`]): on a manual clock a waiter wakes when the clock is moved past its
//! deadline.

use crate::model::Millis;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A future returned by [`Clock::wait_until`].
pub type Wait = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The source of time.
pub trait Clock: Send + Sync + Debug {
    /// Now, in epoch milliseconds.
    fn now_ms(&self) -> Millis;

    /// Completes once `now_ms() >= deadline`.
    fn wait_until(&self, deadline: Millis) -> Wait;
}

/// The clock handed to every stage.
pub type SharedClock = Arc<dyn Clock>;

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// The wall clock in epoch milliseconds.
pub fn wall_ms() -> Millis {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        wall_ms()
    }

    fn wait_until(&self, deadline: Millis) -> Wait {
        let ms = deadline.saturating_sub(wall_ms()).max(0);
        Box::pin(tokio::time::sleep(Duration::from_millis(
            u64::try_from(ms).unwrap_or(0),
        )))
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: AtomicI64,
    moved: tokio::sync::watch::Sender<Millis>,
}

impl ManualClock {
    /// A manual clock standing at `start` (epoch ms).
    pub fn new(start: Millis) -> Arc<ManualClock> {
        let (moved, _) = tokio::sync::watch::channel(start);
        Arc::new(ManualClock {
            now: AtomicI64::new(start),
            moved,
        })
    }

    /// Sets the time (never backwards: an earlier time is ignored).
    pub fn set(&self, t: Millis) {
        let prev = self.now.fetch_max(t, Ordering::SeqCst);
        if t > prev {
            self.moved.send_replace(t);
        }
    }

    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: Millis) {
        self.set(self.now_ms().saturating_add(ms.max(0)));
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Millis {
        self.now.load(Ordering::SeqCst)
    }

    fn wait_until(&self, deadline: Millis) -> Wait {
        let mut rx = self.moved.subscribe();
        Box::pin(async move {
            // `wait_for` looks at the current value first, then at every change.
            let _ = rx.wait_for(|t| *t >= deadline).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_wakes_waiters_when_moved_past_their_deadline() {
        let c = ManualClock::new(1_000);
        let shared: SharedClock = c.clone();
        let w = tokio::spawn(shared.wait_until(1_500));
        c.advance(400);
        tokio::task::yield_now().await;
        assert!(!w.is_finished(), "1 400 < 1 500");
        c.advance(100);
        tokio::time::timeout(Duration::from_secs(5), w)
            .await
            .expect("woken")
            .unwrap();
        c.set(10);
        assert_eq!(c.now_ms(), 1_500, "never backwards");
    }
}
