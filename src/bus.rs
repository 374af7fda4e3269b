//! The change feed: what each commit changed, for live views (`GET /api/v1/events`).
//!
//! The pipeline collects a batch's [`Change`]s while it works, inserts them into the store's
//! `changes` table **inside the batch's transaction** (their row ids are the change ids, so a
//! change is durable exactly when what it describes is), and after the commit sends them here.
//!
//! The bus is a [`tokio::sync::broadcast`] channel of [`CAPACITY`] changes. Its full-policy:
//! the sender never waits — a subscriber that falls more than [`CAPACITY`] changes behind
//! loses the oldest ones from the channel and is told so (`RecvError::Lagged`); it then reads
//! what it missed from the store, where every change stays for `storage.changes_keep` changes.
//! A slow subscriber therefore never slows the pipeline and never misses a change silently.

use crate::model::{rfc3339, Kind, Millis};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Changes the bus holds for its slowest subscriber.
pub const CAPACITY: usize = 4096;

/// What happened to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertWhat {
    /// A new alert opened.
    Fired,
    /// An open alert became active again.
    Refired,
    /// Its condition cleared.
    Cleared,
    /// A reminder: still active.
    Repeat,
    /// A person acknowledged it.
    Acknowledged,
    /// A person closed it.
    Closed,
    /// A person added a note.
    Note,
    /// Nobody acknowledged in time: the next step of its policy was told.
    Escalated,
    /// Its acknowledgement deadline passed.
    SlaMissed,
    /// A person recorded the on-site check (现场核实).
    Verified,
    /// Its work order passed its deadline unrectified; the fire office was told.
    WorkorderOverdue,
    /// (added) It fired while a silence covered it: recorded, nobody told.
    Silenced,
    /// (added) The silence holding it back is over.
    Unsilenced,
    /// (added) It fired during a drill or test of its building: classified `test`, told to
    /// the control room only.
    Drill,
    /// (added) It fired while an alert upstream explained it (a gateway offline, a mains
    /// failure): recorded, nobody told.
    Inhibited,
    /// (added) It fired on a shielded point: recorded, nobody told.
    Shielded,
    /// (added) What held it back (an inhibiting alert, a shield) is over.
    Released,
    /// (added) It fired and cleared too often: told once, then quiet until stable.
    Flapping,
    /// (added) A flapping alert has been stable long enough: its state now was told.
    Stable,
}

/// A device's connection state, as `GET /api/v1/devices` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// No sign of life yet.
    NeverSeen,
    /// Heard from within its offline timeout.
    Online,
    /// Silent past its timeout, or its last will arrived.
    Offline,
}

impl DeviceState {
    /// The state of a device record: `last_seen` (a sign of life) and its offline flag.
    pub fn of(last_seen: Option<Millis>, offline: bool) -> DeviceState {
        match (last_seen, offline) {
            (None, _) => DeviceState::NeverSeen,
            (Some(_), true) => DeviceState::Offline,
            (Some(_), false) => DeviceState::Online,
        }
    }

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeviceState::NeverSeen => "never_seen",
            DeviceState::Online => "online",
            DeviceState::Offline => "offline",
        }
    }
}

/// One change, as the feed shows it (`type` names the variant; `id` and `at` are added by
/// [`envelope`], so no variant has fields of those names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Change {
    /// An alert transition or a people action.
    Alert {
        /// What happened.
        what: AlertWhat,
        /// The alert after it, as the API shows it (contract section 3).
        alert: Value,
    },
    /// A device's connection state changed.
    Device {
        /// Device id.
        device: String,
        /// Building.
        building: String,
        /// Kind.
        kind: Kind,
        /// The state now.
        state: DeviceState,
        /// The state before.
        previous: DeviceState,
    },
    /// The outcome of a notification delivery attempt.
    Notification {
        /// Alert id (`a-000123`): the alert told of, or the work order's alert; absent for a
        /// work order raised without one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        alert: Option<String>,
        /// Work order id (`w-000001`), for a notification of a work order.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workorder: Option<String>,
        /// (added) Daily summary id (`s-000001`), for a notification of a summary.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        summary: Option<String>,
        /// The alert's, work order's or summary's building.
        building: String,
        /// Channel (`email`, `webhook`).
        channel: String,
        /// Who: an e-mail address, or the webhook's name.
        target: String,
        /// Notification event: fired, cleared, closed, repeat, … (contract section 3).
        event: String,
        /// Delivered.
        ok: bool,
        /// `sent`, `retry` (will be tried again) or `gave_up` (ended `failed`).
        outcome: String,
        /// Why not.
        error: Option<String>,
    },
    /// The outcome of a command to a device.
    Command {
        /// Command id.
        command: String,
        /// Building.
        building: String,
        /// Device.
        device: String,
        /// Its status (sent, acknowledged, failed, ...).
        status: String,
    },
    /// A hazard work order was raised, took a step or went overdue.
    Workorder {
        /// Work order id (`w-000001`).
        workorder: String,
        /// Building.
        building: String,
        /// What happened: created, rectified, sent_back, accepted, overdue.
        what: String,
        /// The work order after it.
        order: Value,
    },
}

impl Change {
    /// The change type (the SSE `event:` name and the store's `kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Alert { .. } => "alert",
            Change::Device { .. } => "device",
            Change::Notification { .. } => "notification",
            Change::Command { .. } => "command",
            Change::Workorder { .. } => "workorder",
        }
    }

    /// The building it belongs to (for filters).
    pub fn building(&self) -> &str {
        match self {
            Change::Alert { alert, .. } => alert["building"].as_str().unwrap_or(""),
            Change::Device { building, .. }
            | Change::Notification { building, .. }
            | Change::Command { building, .. }
            | Change::Workorder { building, .. } => building,
        }
    }
}

/// A committed change with its id (the store's row id: increasing, never reused).
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    /// Change id.
    pub id: i64,
    /// When it was recorded (inside its transaction, just before the commit).
    pub at: Millis,
    /// What.
    pub change: Change,
}

impl Published {
    /// The JSON a subscriber receives: the change's fields with `id` and `at` (RFC 3339).
    pub fn to_json(&self) -> Value {
        envelope(
            self.id,
            self.at,
            serde_json::to_value(&self.change).unwrap_or(Value::Null),
        )
    }
}

/// A change's JSON (as stored) with its `id` and `at` added: what a subscriber receives, the
/// same for live and for stored changes.
pub fn envelope(id: i64, at: Millis, mut change: Value) -> Value {
    if let Value::Object(m) = &mut change {
        m.insert("id".into(), id.into());
        m.insert("at".into(), rfc3339(at).into());
    }
    change
}

/// The broadcast side of the feed. Cloning shares it.
#[derive(Debug, Clone)]
pub struct Bus {
    tx: broadcast::Sender<Arc<Published>>,
}

impl Default for Bus {
    fn default() -> Self {
        Bus::new(CAPACITY)
    }
}

impl Bus {
    /// A bus holding `capacity` changes for its slowest subscriber (at least 1).
    pub fn new(capacity: usize) -> Bus {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Bus { tx }
    }

    /// Sends a committed change to every subscriber. Never waits: a full channel overwrites
    /// the oldest change, and the subscribers that had not read it are told they lagged.
    /// Without subscribers the change is only in the store.
    pub fn publish(&self, p: Published) {
        let _ = self.tx.send(Arc::new(p));
    }

    /// A new subscriber: it receives every change published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.tx.subscribe()
    }

    /// Subscribers now.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::broadcast::error::RecvError;

    fn change(n: i64) -> Published {
        Published {
            id: n,
            at: 1_700_000_000_000 + n,
            change: Change::Command {
                command: format!("c-{n}"),
                building: "b1".into(),
                device: "d1".into(),
                status: "sent".into(),
            },
        }
    }

    /// A subscriber that does not read while far more changes than the capacity are sent:
    /// every send returns at once, and the subscriber is told how many it lost before it
    /// reads on from the oldest change still held.
    #[tokio::test]
    async fn a_lagging_subscriber_is_told_and_the_sender_never_waits() {
        let bus = Bus::new(16);
        let mut slow = bus.subscribe();
        let mut fast = bus.subscribe();
        let started = std::time::Instant::now();
        for n in 1..=10_000 {
            bus.publish(change(n));
            // The fast subscriber keeps up.
            let got = fast.try_recv().unwrap();
            assert_eq!(got.id, n);
        }
        // Sending never blocks: 10,000 sends to a subscriber that reads nothing are done
        // well within a second (a blocking send would never have returned).
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        match slow.recv().await {
            Err(RecvError::Lagged(n)) => assert_eq!(n, 10_000 - 16),
            other => panic!("expected a lag notice, got {other:?}"),
        }
        // Then the oldest held change, and on in order.
        assert_eq!(slow.recv().await.unwrap().id, 10_000 - 15);
        assert_eq!(bus.subscribers(), 2);
    }

    #[test]
    fn changes_serialise_with_their_type_and_round_trip() {
        let p = Published {
            id: 7,
            at: 0,
            change: Change::Device {
                device: "d1".into(),
                building: "b1".into(),
                kind: Kind::WaterLevel,
                state: DeviceState::Online,
                previous: DeviceState::NeverSeen,
            },
        };
        let v = p.to_json();
        assert_eq!(v["type"], "device");
        assert_eq!(v["id"], 7);
        assert_eq!(v["at"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["device"], "d1");
        assert_eq!(v["state"], "online");
        assert_eq!(v["previous"], "never_seen");
        assert_eq!(v["kind"], "water_level");
        let back: Change = serde_json::from_value(v).unwrap();
        assert_eq!(back, p.change);
        assert_eq!(p.change.building(), "b1");
        assert_eq!(p.change.kind(), "device");
        let a = Change::Alert {
            what: AlertWhat::Fired,
            alert: serde_json::json!({"id": "a-000001", "building": "b2"}),
        };
        assert_eq!(a.building(), "b2");
        assert_eq!(serde_json::to_value(&a).unwrap()["what"], "fired");
    }
}
