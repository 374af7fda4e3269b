//! Notifications: the [`Channel`]s that tell people of alert transitions (e-mail in [`email`],
//! signed JSON webhooks in [`webhook`], WeCom and DingTalk group robots in [`wecom`] and
//! [`dingtalk`], text messages through an HTTP gateway in [`sms`]), what people read
//! ([`render`], shared by every channel), and the [`Sender`] task that works off one channel's
//! rows of the persisted outbox, with its own retries and backoff.
//!
//! Each channel has its own sender task, so a stalled SMTP server never delays a webhook. A
//! sender reads its rows through a read-only connection and reports every attempt's outcome to
//! the pipeline (the store's single writer), which records it with the alert's history.
//!
//! Delivery is at least once: a row is marked sent after the receiver accepted it, so a crash
//! between the two sends it again; every notification carries a stable idempotency key (the
//! e-mail's `Message-ID`, the webhook's `Idempotency-Key`) so receivers can drop that duplicate.
//!
//! Retries: a permanent refusal ends the row as `failed` after that attempt; a transient failure
//! is retried after an exponential backoff with jitter (1 s, 2 s, 4 s … capped at
//! `notify.backoff_max_s`, each drawn from its upper half) until `notify.max_attempts`
//! attempts have failed, then the row ends `failed`. Nothing is retried forever, and every
//! attempt is in the alert's history and in `/metrics`.

pub mod digest;
pub mod dingtalk;
pub mod email;
pub mod group;
mod http;
pub mod render;
pub mod sms;
pub mod webhook;
pub mod wecom;

use crate::clock::SharedClock;
use crate::metrics::{Metrics, NotifyOutcome};
use crate::model::notification::{ChannelKind, Notification};
use crate::model::Millis;
use crate::settings::Problem;
pub use crate::store::notifications::{Delivery, Outcome};
use crate::store::{self, notifications};
pub use dingtalk::DingtalkConfig;
pub use email::{EmailConfig, SmtpSecurity, SmtpTarget};
pub use group::{Batch, GroupConfig, PerMinute, Planner};
pub use http::redacted;
pub use render::Lang;
use serde::Deserialize;
pub use sms::SmsConfig;
use std::collections::HashSet;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
pub use webhook::WebhookConfig;
pub use wecom::WecomConfig;

/// `[notify]`: the retry policy every channel's sender follows, and how messages read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Attempts of a notification before it ends `failed` (transient failures).
    pub max_attempts: u32,
    /// Longest wait between two attempts, seconds.
    pub backoff_max_s: u64,
    /// Language of the messages: `zh` (default) or `en`.
    pub lang: Lang,
    /// The control room's time zone (IANA name), for the times in messages.
    pub tz: String,
    /// (added) Grouping of a building's alerts into one message per target.
    pub group: GroupConfig,
    /// (added) Messages per target and minute, per channel.
    pub per_minute: PerMinute,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            max_attempts: 20,
            backoff_max_s: 300,
            lang: Lang::Zh,
            tz: "Asia/Shanghai".into(),
            group: GroupConfig::default(),
            per_minute: PerMinute::default(),
        }
    }
}

impl NotifyConfig {
    /// Every problem of the `[notify]` settings.
    pub fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.max_attempts == 0 {
            p.push(Problem::new("notify.max_attempts", "must be at least 1"));
        }
        if self.backoff_max_s == 0 || self.backoff_max_s > 86_400 {
            p.push(Problem::new(
                "notify.backoff_max_s",
                "must be between 1 and 86400",
            ));
        }
        if let Err(e) = render::time_zone(&self.tz) {
            p.push(Problem::new("notify.tz", e));
        }
        p.extend(self.group.validate());
        p
    }

    /// How messages are rendered, with links under `public_url`.
    pub fn render_context(&self, public_url: &str) -> Result<render::Context, String> {
        Ok(render::Context {
            lang: self.lang,
            tz: render::time_zone(&self.tz)?,
            public_url: public_url.to_owned(),
        })
    }

    /// The wait before attempt `failed + 1` after `failed` failed attempts, without jitter:
    /// 1 s, 2 s, 4 s …, at most `backoff_max_s`.
    pub fn backoff_ms(&self, failed: u32) -> i64 {
        let max = i64::try_from(self.backoff_max_s.saturating_mul(1000)).unwrap_or(i64::MAX);
        (1000_i64 << failed.saturating_sub(1).min(30)).min(max)
    }

    /// [`NotifyConfig::backoff_ms`] with jitter: a point in its upper half, so senders that
    /// failed together do not retry together.
    pub fn backoff_with_jitter_ms(&self, failed: u32, seed: &str) -> i64 {
        let base = self.backoff_ms(failed);
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write(seed.as_bytes());
        h.write_u32(failed);
        let half = base / 2;
        half + (h.finish() % (half as u64 + 1)) as i64
    }

    /// How an attempt (number `attempt`, from 1) that ended in `result` leaves its row.
    pub fn outcome(
        &self,
        attempt: u32,
        result: Result<(), SendError>,
        now: Millis,
        seed: &str,
    ) -> Outcome {
        match result {
            Ok(()) => Outcome::Sent,
            Err(SendError::Permanent(error)) => Outcome::GaveUp {
                error,
                permanent: true,
            },
            Err(SendError::Transient(error)) if attempt >= self.max_attempts => Outcome::GaveUp {
                error,
                permanent: false,
            },
            Err(SendError::Transient(error)) => Outcome::Retry {
                error,
                next_attempt_at: now + self.backoff_with_jitter_ms(attempt, seed),
            },
        }
    }
}

/// Sending errors, classified at the channel's boundary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying: network failures, timeouts, SMTP 4xx, HTTP 408, 429 and 5xx.
    #[error("{0}")]
    Transient(String),
    /// Will not succeed by retrying: SMTP 5xx, bad addresses, HTTP 4xx other than 408 and 429.
    #[error("{0}")]
    Permanent(String),
}

/// A way of telling people: renders a message into its own form and delivers it.
pub trait Channel: Send + 'static {
    /// Which channel this is (the outbox rows it sends).
    fn kind(&self) -> ChannelKind;

    /// Delivers one message (one notification, or a digest of several for one target),
    /// classifying any failure.
    fn send(&mut self, b: &Batch) -> impl Future<Output = Result<(), SendError>> + Send;
}

/// Where delivery outcomes go: the store's single writer (the pipeline), which records them.
/// Returns `false` when it is gone (shutting down).
pub type Report = Box<dyn Fn(Delivery) -> bool + Send + Sync>;

/// Due rows a sender reads at a time: enough for a storm, which the planner folds.
const FETCH: u32 = 10_000;

/// One channel's outbox sender task.
#[derive(Debug)]
pub struct Sender<C> {
    channel: C,
    dir: PathBuf,
    policy: NotifyConfig,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    clock: SharedClock,
}

impl<C: Channel> Sender<C> {
    /// A sender for `channel`'s rows of the store in `dir`; `wake` is its wake-up from the
    /// pipeline after commits that queued notifications.
    pub fn new(
        channel: C,
        dir: &Path,
        policy: NotifyConfig,
        metrics: Arc<Metrics>,
        wake: Arc<Notify>,
        clock: SharedClock,
    ) -> Self {
        Sender {
            channel,
            dir: dir.to_owned(),
            policy,
            metrics,
            wake,
            clock,
        }
    }

    /// Works off the channel's rows until cancelled. Rows whose outcome is reported but not
    /// committed yet stay in `reported` and are not sent again.
    pub async fn run(
        mut self,
        report: Report,
        shutdown: CancellationToken,
    ) -> Result<(), store::StoreError> {
        let kind = self.channel.kind();
        let conn = Arc::new(std::sync::Mutex::new(store::open_reader(&self.dir)?));
        let mut reported: HashSet<i64> = HashSet::new();
        let mut planner = Planner::new(kind, &self.policy.group, &self.policy.per_minute);
        loop {
            let c = Arc::clone(&conn);
            let now = self.clock.now_ms();
            let (rows, queued, next_due) = tokio::task::spawn_blocking(move || {
                let conn = c.lock().map_err(|_| store::StoreError::Corrupt {
                    what: "outbox reader",
                    err: "lock poisoned".into(),
                })?;
                notifications::due(&*conn, kind, now, FETCH)
            })
            .await
            .map_err(|e| store::StoreError::Corrupt {
                what: "task",
                err: e.to_string(),
            })??;
            let due: HashSet<i64> = rows.iter().map(|r| r.id).collect();
            reported.retain(|id| due.contains(id));
            self.metrics.notify_queue[kind.index()].store(queued - reported.len() as i64, Relaxed);
            let fresh: Vec<Notification> = rows
                .into_iter()
                .filter(|r| !reported.contains(&r.id))
                .collect();
            let plan = planner.plan(now, fresh);
            let m = &self.metrics.notify_plan[kind.index()];
            m.limited.fetch_add(plan.limited, Relaxed);
            m.folded.fetch_add(plan.folded, Relaxed);
            for b in plan.batches {
                if shutdown.is_cancelled() {
                    return Ok(());
                }
                if !self.deliver(b, &report, &mut reported).await {
                    // The pipeline has stopped: the rows stay pending and go out after a
                    // restart (at least once).
                    return Ok(());
                }
            }
            self.metrics.notify_plan[kind.index()]
                .round_at
                .store(now, Relaxed);
            // Wait for the next due row on the clock (a manual clock in tests), for new rows
            // (the pipeline's wake-up), and at most 5 s of real time in any case.
            let held = plan.next_at.unwrap_or(i64::MAX);
            let (due_at, poll) = if reported.is_empty() {
                (
                    next_due.unwrap_or(i64::MAX).min(held),
                    Duration::from_secs(5),
                )
            } else {
                // Outcomes not committed yet (those rows still look due): look again soon.
                (held, Duration::from_millis(50))
            };
            tokio::select! {
                () = self.wake.notified() => {}
                () = self.clock.wait_until(due_at) => {}
                () = tokio::time::sleep(poll) => {}
                () = shutdown.cancelled() => return Ok(()),
            }
        }
    }

    /// Sends batch `b` and reports the outcome of each of its rows; `false` when the pipeline
    /// is gone.
    async fn deliver(&mut self, b: Batch, report: &Report, reported: &mut HashSet<i64>) -> bool {
        let kind = self.channel.kind();
        let started = Instant::now();
        let stages = &self.metrics.stages;
        for n in &b.rows {
            if n.attempts == 0 {
                if let Some(committed) = stages.commits.notification(n.id) {
                    stages.send_started[kind.index()]
                        .observe(started.saturating_duration_since(committed));
                }
            }
        }
        let result = self.channel.send(&b).await;
        let now = self.clock.now_ms();
        let size = b.rows.len();
        let digest = (size > 1).then(|| (b.key.clone(), size));
        if digest.is_some() {
            self.metrics.notify_plan[kind.index()]
                .digests
                .fetch_add(1, Relaxed);
        }
        let target = b.target().to_owned();
        match &result {
            Ok(()) => {
                stages.accepted[kind.index()].observe(started.elapsed());
                let oldest = b.rows.iter().map(|n| n.created_at).min().unwrap_or(now);
                let lat = (now - oldest).max(0) as u64 * 1000;
                self.metrics.notify_last_latency_us.store(lat, Relaxed);
            }
            Err(e) => {
                tracing::warn!(key = %b.key, rows = size, channel = %kind, target = %target, error = %e, "Notification failed.");
            }
        }
        let counted = if result.is_ok() {
            NotifyOutcome::Sent
        } else {
            NotifyOutcome::Failed
        };
        for n in b.rows {
            self.metrics.notified(kind, counted);
            let attempt = n.attempts + 1;
            let outcome = self.policy.outcome(attempt, result.clone(), now, &n.key);
            if let Outcome::GaveUp { error, permanent } = &outcome {
                self.metrics.notified(kind, NotifyOutcome::GaveUp);
                tracing::error!(subject = %n.subject, channel = %kind, target = %n.target, event = %n.event, attempt, permanent, error = %error, "Notification given up.");
            }
            reported.insert(n.id);
            let delivery = Delivery {
                id: n.id,
                subject: n.subject,
                key: n.key,
                event: n.event,
                channel: kind,
                target: n.target,
                attempt,
                at: now,
                outcome,
                digest: digest.clone(),
            };
            if !report(delivery) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter_in_the_upper_half() {
        let p = NotifyConfig {
            max_attempts: 4,
            backoff_max_s: 5,
            ..NotifyConfig::default()
        };
        assert_eq!(
            (1..=5).map(|n| p.backoff_ms(n)).collect::<Vec<_>>(),
            vec![1000, 2000, 4000, 5000, 5000]
        );
        for n in 1..=5 {
            let j = p.backoff_with_jitter_ms(n, "k");
            assert!(j >= p.backoff_ms(n) / 2 && j <= p.backoff_ms(n), "{n}: {j}");
        }
    }

    #[test]
    fn permanent_ends_at_once_transient_at_max_attempts() {
        let p = NotifyConfig {
            max_attempts: 3,
            backoff_max_s: 300,
            ..NotifyConfig::default()
        };
        let perm = || Err(SendError::Permanent("550".into()));
        let tran = || Err(SendError::Transient("451".into()));
        assert_eq!(
            p.outcome(1, perm(), 0, "k"),
            Outcome::GaveUp {
                error: "550".into(),
                permanent: true
            }
        );
        assert!(matches!(
            p.outcome(2, tran(), 0, "k"),
            Outcome::Retry { next_attempt_at, .. } if (1000..=2000).contains(&next_attempt_at)
        ));
        assert_eq!(
            p.outcome(3, tran(), 0, "k"),
            Outcome::GaveUp {
                error: "451".into(),
                permanent: false
            }
        );
        assert_eq!(p.outcome(1, Ok(()), 0, "k"), Outcome::Sent);
    }
}
