//! The command publisher: works off the persisted command outbox (`commands` rows in `pending`)
//! and publishes each command at QoS 1 on its device's `command` topic through the ingest
//! connection's client, so commands share the one session with the subscription.
//!
//! A command counts as published only when the broker's PUBACK for its packet arrived; the
//! pipeline records that. The MQTT event loop forwards the packet-id events of outgoing
//! publishes to this task ([`LinkEvent`]); this client is the connection's only QoS 1
//! publisher (rejected copies go out at QoS 0, which have no packet id), so rumqttc assigns
//! packet ids to our publishes in the order we hand them over, and [`Tracker`] pairs them.
//!
//! What is not confirmed stays `pending` and is published again: after a reconnect whose
//! session the broker lost (rumqttc then drops its unacknowledged publishes), after
//! `commands.ack_timeout_s` without a PUBACK while connected, and after a restart. Devices
//! drop repeats by `ref`. Publishes are made only while connected, at most [`WINDOW`] at a
//! time, so none waits in the client's request queue across a reconnect. An attempt that
//! timed out counts; after `commands.max_attempts` the command is `failed`.

use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::model::Millis;
use crate::pipeline::Input;
use crate::settings::Problem;
use crate::store::commands::{self, Command};
use crate::store::{self, StoreError};
use rumqttc::{AsyncClient, QoS};
use serde::Deserialize;
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// `[commands]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommandsConfig {
    /// Publish attempts without a PUBACK before a command is `failed`.
    pub max_attempts: u32,
    /// Seconds to wait for the broker's PUBACK (while connected) before an attempt counts as
    /// failed and the command is published again.
    pub ack_timeout_s: u64,
}

impl Default for CommandsConfig {
    fn default() -> Self {
        CommandsConfig {
            max_attempts: 20,
            ack_timeout_s: 30,
        }
    }
}

impl CommandsConfig {
    /// Every problem of the `[commands]` settings.
    pub fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.max_attempts == 0 {
            p.push(Problem::new("commands.max_attempts", "must be at least 1"));
        }
        if self.ack_timeout_s == 0 {
            p.push(Problem::new("commands.ack_timeout_s", "must be at least 1"));
        }
        p
    }
}

/// Commands published and not yet confirmed, at most.
pub const WINDOW: usize = 32;
/// Rows read per look.
const BATCH: u32 = 64;

/// What the MQTT event loop tells the publisher about the connection and our packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkEvent {
    /// CONNACK.
    Connected {
        /// The broker kept the session (rumqttc then resends unacknowledged publishes).
        session_present: bool,
    },
    /// The connection failed.
    Disconnected,
    /// A QoS 1 publish went out with this packet id (`Outgoing::Publish`, also resends).
    Sent(u16),
    /// A QoS 1 publish got this packet id but waits for an earlier one with the same id
    /// (`Outgoing::AwaitAck`); it goes out after that one's PUBACK.
    Waiting(u16),
    /// The broker's PUBACK.
    PubAck(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flight {
    id: i64,
    attempts: i64,
    since: Millis,
}

/// Pairs our publishes with their packet ids and PUBACKs.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Handed to the client, no packet id yet (in order).
    unassigned: VecDeque<Flight>,
    /// By packet id.
    inflight: HashMap<u16, Flight>,
    /// Has a packet id whose earlier holder was not acknowledged yet.
    waiting: Option<(u16, Flight)>,
}

impl Tracker {
    /// A publish handed to the client.
    pub fn sent(&mut self, id: i64, attempts: i64, now: Millis) {
        self.unassigned.push_back(Flight {
            id,
            attempts,
            since: now,
        });
    }

    /// Whether a command is in flight.
    pub fn contains(&self, id: i64) -> bool {
        self.unassigned.iter().any(|f| f.id == id)
            || self.inflight.values().any(|f| f.id == id)
            || self.waiting.is_some_and(|(_, f)| f.id == id)
    }

    /// Commands in flight.
    pub fn len(&self) -> usize {
        self.unassigned.len() + self.inflight.len() + usize::from(self.waiting.is_some())
    }

    /// Nothing in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes a link event; returns the command whose PUBACK arrived.
    pub fn event(&mut self, ev: LinkEvent, now: Millis) -> Option<i64> {
        match ev {
            LinkEvent::Sent(pkid) => {
                if self.inflight.contains_key(&pkid) {
                    return None; // a resend after a reconnect
                }
                if let Some((p, f)) = self.waiting {
                    if p == pkid {
                        self.waiting = None;
                        self.inflight.insert(pkid, f);
                        return None;
                    }
                }
                if let Some(f) = self.unassigned.pop_front() {
                    self.inflight.insert(pkid, f);
                }
                None
            }
            LinkEvent::Waiting(pkid) => {
                if let Some(f) = self.unassigned.pop_front() {
                    self.waiting = Some((pkid, f));
                }
                None
            }
            LinkEvent::PubAck(pkid) => self.inflight.remove(&pkid).map(|f| f.id),
            LinkEvent::Connected {
                session_present: false,
            } => {
                // The client dropped what it had not got acknowledged: publish again.
                self.forget();
                None
            }
            LinkEvent::Connected {
                session_present: true,
            } => {
                // Resent by the client; the PUBACK wait starts again.
                for f in self.inflight.values_mut().chain(self.unassigned.iter_mut()) {
                    f.since = now;
                }
                if let Some((_, f)) = self.waiting.as_mut() {
                    f.since = now;
                }
                None
            }
            LinkEvent::Disconnected => None,
        }
    }

    /// Forgets everything in flight.
    pub fn forget(&mut self) {
        self.unassigned.clear();
        self.inflight.clear();
        self.waiting = None;
    }

    /// Takes out the commands waiting longer than `timeout_ms` for their PUBACK, with their
    /// attempts so far. An unassigned publish that timed out means the pairing can no longer
    /// be trusted: then everything is forgotten (and published again later).
    pub fn expired(&mut self, now: Millis, timeout_ms: i64) -> Vec<(i64, i64)> {
        let old = |f: &Flight| now - f.since >= timeout_ms;
        let mut out: Vec<(i64, i64)> = Vec::new();
        if self.unassigned.iter().any(old) || self.waiting.is_some_and(|(_, f)| old(&f)) {
            out.extend(self.unassigned.iter().map(|f| (f.id, f.attempts)));
            out.extend(self.inflight.values().map(|f| (f.id, f.attempts)));
            out.extend(self.waiting.iter().map(|(_, f)| (f.id, f.attempts)));
            self.forget();
            return out;
        }
        self.inflight.retain(|_, f| {
            if old(f) {
                out.push((f.id, f.attempts));
                false
            } else {
                true
            }
        });
        out
    }
}

/// The command publisher.
#[derive(Debug)]
pub struct CommandPublisher {
    /// Settings.
    pub cfg: CommandsConfig,
    /// `storage.dir`.
    pub dir: PathBuf,
    /// The pipeline, which records PUBACKs and failed attempts.
    pub pipeline: std::sync::mpsc::Sender<Input>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Woken after a commit that queued commands.
    pub wake: Arc<Notify>,
    /// The clock.
    pub clock: SharedClock,
    /// (added) Transmitters connected over GB/T 26875.3: their commands go there.
    pub gb: Arc<crate::ingest::gbt26875::server::GbLinks>,
}

fn task_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: "command reader",
        err: e.to_string(),
    }
}

impl CommandPublisher {
    /// Publishes pending commands until cancelled. Reads through a read-only connection;
    /// outcomes go to the pipeline. `link` carries the event loop's [`LinkEvent`]s.
    pub async fn run(
        self,
        client: AsyncClient,
        mut link: tokio::sync::mpsc::UnboundedReceiver<LinkEvent>,
        shutdown: CancellationToken,
    ) -> Result<(), StoreError> {
        let conn = Arc::new(std::sync::Mutex::new(store::open_reader(&self.dir)?));
        let timeout_ms =
            i64::try_from(self.cfg.ack_timeout_s.saturating_mul(1000)).unwrap_or(i64::MAX);
        let max_attempts = i64::from(self.cfg.max_attempts);
        let mut tracker = Tracker::default();
        let mut connected = false;
        // Outcomes handed to the pipeline and maybe not committed yet: those rows still look
        // due and are not published again until the pipeline's change is visible.
        let mut reported: HashMap<i64, Millis> = HashMap::new();
        loop {
            while let Ok(ev) = link.try_recv() {
                self.link_event(ev, &mut tracker, &mut connected, &mut reported);
            }
            let now = self.clock.now_ms();
            if connected {
                for (id, attempts) in tracker.expired(now, timeout_ms) {
                    let give_up = attempts + 1 >= max_attempts;
                    self.metrics.command_attempts_failed.fetch_add(1, Relaxed);
                    tracing::warn!(command = %commands::command_id(id), attempt = attempts + 1, "No PUBACK for a command in time; it is published again.");
                    reported.insert(id, now);
                    let input = Input::CommandAttempt {
                        id,
                        at: now,
                        error: format!("no PUBACK within {} s", self.cfg.ack_timeout_s),
                        give_up,
                    };
                    if self.pipeline.send(input).is_err() {
                        return Ok(());
                    }
                }
            }
            let c = Arc::clone(&conn);
            let (rows, pending, next) = tokio::task::spawn_blocking(move || {
                let conn = c.lock().map_err(task_error)?;
                let (rows, pending) = commands::due(&*conn, now, BATCH)?;
                let next = commands::next_due_after(&*conn, now)?;
                Ok::<_, StoreError>((rows, pending, next))
            })
            .await
            .map_err(task_error)??;
            self.metrics.commands_pending.store(pending, Relaxed);
            let due: HashSet<i64> = rows.iter().map(|r| r.id).collect();
            // Forget reported rows once their change is visible (no longer due), or after a
            // while in any case (a row past the first `BATCH` is not seen here).
            reported.retain(|id, at| due.contains(id) && now - *at < 10_000);
            // Transmitters connected over GB/T 26875.3 get theirs there, connected to the
            // broker or not; their connection reports the outcome as a PUBACK would.
            for row in &rows {
                if !reported.contains_key(&row.id) && self.gb.send(row) {
                    reported.insert(row.id, now);
                }
            }
            if connected {
                for row in rows {
                    if tracker.len() >= WINDOW {
                        break;
                    }
                    if tracker.contains(row.id) || reported.contains_key(&row.id) {
                        continue;
                    }
                    if !self.publish(&client, &row) {
                        break; // the client's queue is full; later
                    }
                    tracker.sent(row.id, row.attempts, now);
                }
            }
            let due_at = next.unwrap_or(i64::MAX);
            // In flight: look at the PUBACK timeouts every second.
            let poll = if tracker.is_empty() && reported.is_empty() {
                Duration::from_secs(5)
            } else if tracker.is_empty() {
                Duration::from_millis(100)
            } else {
                Duration::from_secs(1)
            };
            tokio::select! {
                ev = link.recv() => match ev {
                    Some(ev) => self.link_event(ev, &mut tracker, &mut connected, &mut reported),
                    None => return Ok(()), // the event loop is gone
                },
                () = self.wake.notified() => {}
                () = self.clock.wait_until(due_at) => {}
                () = tokio::time::sleep(poll) => {}
                () = shutdown.cancelled() => return Ok(()),
            }
        }
    }

    fn link_event(
        &self,
        ev: LinkEvent,
        tracker: &mut Tracker,
        connected: &mut bool,
        reported: &mut HashMap<i64, Millis>,
    ) {
        match ev {
            LinkEvent::Connected { .. } => *connected = true,
            LinkEvent::Disconnected => *connected = false,
            _ => {}
        }
        let now = self.clock.now_ms();
        if let Some(id) = tracker.event(ev, now) {
            tracing::info!(command = %commands::command_id(id), "Command published (PUBACK).");
            reported.insert(id, now);
            // The pipeline is gone only when stopping; the row stays pending and is published
            // again after a restart.
            let _ = self.pipeline.send(Input::CommandPublished { id, at: now });
        }
    }

    fn publish(&self, client: &AsyncClient, row: &Command) -> bool {
        client
            .try_publish(
                row.topic(),
                QoS::AtLeastOnce,
                false,
                row.payload.clone().into_bytes(),
            )
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pubacks_pair_with_publishes_in_order_and_resends_are_not_new_publishes() {
        let mut t = Tracker::default();
        t.sent(1, 0, 0);
        t.sent(2, 0, 0);
        assert_eq!(t.event(LinkEvent::Sent(7), 0), None);
        assert_eq!(t.event(LinkEvent::Sent(8), 0), None);
        // Reconnected with the session: the client resends 8.
        assert_eq!(
            t.event(
                LinkEvent::Connected {
                    session_present: true
                },
                5
            ),
            None
        );
        assert_eq!(t.event(LinkEvent::Sent(8), 5), None);
        assert_eq!(t.event(LinkEvent::PubAck(8), 6), Some(2));
        assert_eq!(t.event(LinkEvent::PubAck(7), 6), Some(1));
        assert_eq!(t.event(LinkEvent::PubAck(7), 6), None);
        assert!(t.is_empty());
    }

    #[test]
    fn a_publish_waiting_for_its_packet_id_goes_out_after_the_earlier_puback() {
        let mut t = Tracker::default();
        t.sent(1, 0, 0);
        t.event(LinkEvent::Sent(3), 0);
        t.sent(2, 0, 0);
        t.event(LinkEvent::Waiting(3), 0);
        assert!(t.contains(2));
        assert_eq!(t.event(LinkEvent::PubAck(3), 1), Some(1));
        t.event(LinkEvent::Sent(3), 1);
        assert_eq!(t.event(LinkEvent::PubAck(3), 2), Some(2));
        assert!(t.is_empty());
    }

    #[test]
    fn a_lost_session_forgets_everything_in_flight() {
        let mut t = Tracker::default();
        t.sent(1, 0, 0);
        t.event(LinkEvent::Sent(1), 0);
        t.sent(2, 0, 0);
        t.event(
            LinkEvent::Connected {
                session_present: false,
            },
            1,
        );
        assert!(t.is_empty());
        assert_eq!(t.event(LinkEvent::PubAck(1), 2), None);
    }

    #[test]
    fn unacknowledged_publishes_expire_with_their_attempts() {
        let mut t = Tracker::default();
        t.sent(1, 3, 0);
        t.event(LinkEvent::Sent(1), 0);
        t.sent(2, 0, 500);
        t.event(LinkEvent::Sent(2), 500);
        assert_eq!(t.expired(999, 1000), vec![]);
        assert_eq!(t.expired(1000, 1000), vec![(1, 3)]);
        assert!(t.contains(2) && !t.contains(1));
        // One never handed a packet id: nothing can be trusted, all are forgotten.
        t.sent(3, 0, 600);
        let mut all = t.expired(1600, 1000);
        all.sort_unstable();
        assert_eq!(all, vec![(2, 0), (3, 0)]);
        assert!(t.is_empty());
    }
}
