//! The rule and device-health engine: pure and synchronous, with time always passed in.
//!
//! [`Engine::accept`] checks a decoded message against the registry and the device's `seq`
//! history, [`Engine::evaluate`] runs it through the rules, and [`Engine::tick`] expires hold
//! times, offline timers, repeats and stale events. All three emit [`Transition`]s; nothing here
//! does I/O, so unit tests drive hours of device time in microseconds.
//!
//! Conditions (a rule on a device and channel, between first breach and clear) and device
//! records are marked dirty when they change; the pipeline persists them in the same
//! transaction as the messages that changed them ([`Engine::take_dirty`]) and restores them on
//! start ([`Engine::restore`]).

use super::quality::Band;
use super::small_map::SmallMap;
use super::{Direction, EventRule, Levels, QualityRule, RateRule, Rules, ThresholdRule};
pub use crate::model::alert::{Change, Transition};
use crate::model::decode::Rejection;
use crate::model::{Body, EventState, Kind, Message, Millis, Reason, Severity};
use crate::registry::{Power, Registry};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// Key of a condition: rule source, rule id, device, channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CondKey {
    /// `t` threshold, `r` rate, `e` event, `o` offline.
    pub source: char,
    /// Rule id.
    pub rule: String,
    /// Device id.
    pub device: String,
    /// Channel.
    pub channel: Option<String>,
}

impl CondKey {
    /// Stable text form used as the persistence key.
    pub fn encode(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.source,
            self.rule,
            self.device,
            self.channel.as_deref().unwrap_or("")
        )
    }

    /// Inverse of [`CondKey::encode`].
    pub fn decode(s: &str) -> Option<CondKey> {
        let mut it = s.splitn(4, '|');
        let source = it.next()?.chars().next()?;
        let rule = it.next()?.to_owned();
        let device = it.next()?.to_owned();
        let channel = it.next()?;
        Some(CondKey {
            source,
            rule,
            device,
            channel: (!channel.is_empty()).then(|| channel.to_owned()),
        })
    }
}

/// Phase of a condition. A condition that is not in the map is normal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Past the raise level, waiting out the hold time.
    Pending,
    /// Fired.
    Active,
    /// Fired, back at the clear level, waiting out the clear hold time.
    Clearing,
}

/// A condition's persisted state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cond {
    /// Phase.
    pub phase: Phase,
    /// When the condition began (first breach or `start`).
    pub since: Millis,
    /// When the current phase began.
    pub phase_since: Millis,
    /// Latest value.
    pub value: Option<f64>,
    /// Level compared with.
    pub threshold: Option<f64>,
    /// Last notification (fired or repeat), for `repeat_s`.
    pub notified: Millis,
    /// Last time the condition was asserted (event `start`, rate drop).
    pub refreshed: Millis,
    /// Severity to report.
    pub severity: Severity,
    /// Building and kind, for transitions raised by timers.
    pub building: String,
    /// Device kind.
    pub kind: Kind,
    /// Message detail (event name, zone) for timer transitions.
    pub detail: String,
}

/// A device's health record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// Building id.
    pub building: String,
    /// Kind.
    pub kind: Kind,
    /// First accepted message.
    pub first_seen: Option<Millis>,
    /// Latest accepted message that is a sign of life.
    pub last_seen: Option<Millis>,
    /// Offline now (silent, or last will).
    pub offline: bool,
    /// Accepted messages.
    pub messages: u64,
    /// Rejected messages.
    pub rejected: u64,
    /// Messages missing from the `seq` sequence.
    pub lost: u64,
    /// Highest `seq` seen.
    pub max_seq: Option<u64>,
    /// Bit i set: `max_seq - 1 - i` arrived.
    pub seq_window: u64,
    /// Messages that arrived with a `seq` below the highest (late arrivals).
    pub out_of_order: u64,
    /// `interval_s` announced in `status`.
    pub interval_s: Option<u64>,
    /// Battery charge, %.
    pub battery_pct: Option<f64>,
    /// Signal, dBm.
    pub rssi_dbm: Option<f64>,
    /// Firmware.
    pub firmware: Option<String>,
    /// Latest values by `metric` or `metric.channel`.
    pub last_values: SmallMap<f64>,
    /// Largest |device ts − receive time| of the latest message, ms.
    pub skew_ms: i64,
    /// Read from records written before [`DeviceRecord::held`]: since when none of the latest
    /// values had changed. Taken over by `held` at the device's next telemetry; never written.
    #[serde(default, skip_serializing)]
    pub unchanged_since: Option<Millis>,
    /// Since when each latest value (by `metric` or `metric.channel`) has held (stuck detection).
    #[serde(default, skip_serializing_if = "SmallMap::is_empty")]
    pub held: SmallMap<Millis>,
    /// Digests of the latest payloads that carried no `seq`, newest last: a redelivery by the
    /// broker (MQTT DUP flag) of one of them is recognised as a duplicate, also after a crash.
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    pub recent: VecDeque<u64>,
    /// When it went offline within the flapping window, oldest first.
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    pub flaps: VecDeque<Millis>,
    /// Reported as flapping (its drops are not reported one by one).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub flapping: bool,
    /// Not persisted: offline checks wait until this time after a restart.
    #[serde(skip)]
    pub grace_until: Millis,
}

impl DeviceRecord {
    /// A record of a device not heard from yet.
    pub fn new(building: &str, kind: Kind) -> Self {
        DeviceRecord {
            building: building.to_owned(),
            kind,
            first_seen: None,
            last_seen: None,
            offline: false,
            messages: 0,
            rejected: 0,
            lost: 0,
            max_seq: None,
            seq_window: 0,
            out_of_order: 0,
            interval_s: None,
            battery_pct: None,
            rssi_dbm: None,
            firmware: None,
            last_values: SmallMap::new(),
            skew_ms: 0,
            unchanged_since: None,
            held: SmallMap::new(),
            flaps: VecDeque::new(),
            flapping: false,
            recent: VecDeque::new(),
            grace_until: 0,
        }
    }

    /// Every finding [`DeviceRecord::quality`] names.
    pub const FINDINGS: [&'static str; 9] = [
        "clock_skew",
        "out_of_order",
        "gaps",
        "loss_rate",
        "low_battery",
        "weak_signal",
        "flapping",
        "stuck",
        "implausible",
    ];

    /// Data-quality findings (contract section 4), with the plausible bands and stuck times of
    /// `q`: some of [`DeviceRecord::FINDINGS`], in that order.
    pub fn quality(&self, q: &QualityRule) -> Vec<&'static str> {
        let mut f = Vec::new();
        if self.skew_ms.abs() > CLOCK_SKEW_MS {
            f.push("clock_skew");
        }
        if self.out_of_order > 0 {
            f.push("out_of_order");
        }
        if self.lost > 0 {
            f.push("gaps");
        }
        if self.lost > 0 && self.lost.saturating_mul(20) > self.messages.saturating_add(self.lost) {
            f.push("loss_rate");
        }
        if self.battery_pct.is_some_and(|b| b < LOW_BATTERY_PCT) {
            f.push("low_battery");
        }
        if self.rssi_dbm.is_some_and(|r| r < WEAK_SIGNAL_DBM) {
            f.push("weak_signal");
        }
        if self.flapping {
            f.push("flapping");
        }
        if self.stuck(q).next().is_some() {
            f.push("stuck");
        }
        if self.implausible(q).next().is_some() {
            f.push("implausible");
        }
        f
    }

    /// The latest values (`metric` or `metric.channel`) outside their metric's plausible band,
    /// with the value and the bound it passed.
    pub fn implausible<'a>(
        &'a self,
        q: &'a QualityRule,
    ) -> impl Iterator<Item = (&'a str, f64, f64)> + 'a {
        self.last_values
            .iter()
            .filter_map(|(k, &v)| match q.check(metric_of(k), v) {
                Band::Below(b) | Band::Above(b) => Some((k, v, b)),
                Band::Inside | Band::Floor => None,
            })
    }

    /// The latest values that have held longer than their metric's stuck time, with the value,
    /// since when it held and that stuck time (ms). A value holds up to the device's latest
    /// sign of life: a device that falls silent is offline, not stuck.
    pub fn stuck<'a>(
        &'a self,
        q: &'a QualityRule,
    ) -> impl Iterator<Item = (&'a str, f64, Millis, Millis)> + 'a {
        let last = self.last_seen;
        let interval = self.interval_s;
        self.held.iter().filter_map(move |(k, &since)| {
            let v = *self.last_values.get(k)?;
            let held = last? - since;
            let limit = match q.stuck_s(metric_of(k)) {
                Some(s) if s <= 0.0 => return None,
                Some(s) => secs(s),
                // The fallback: 48 announced intervals, and at least 6 h.
                None => {
                    let i = i64::try_from(interval?).unwrap_or(i64::MAX / 2000) * 1000;
                    (STUCK_INTERVALS.saturating_mul(i)).max(STUCK_MIN_MS)
                }
            };
            (held > limit).then_some((k, v, since, limit))
        })
    }
}

/// The metric of a latest-value key (`metric` or `metric.channel`).
fn metric_of(key: &str) -> &str {
    key.split_once('.').map_or(key, |(m, _)| m)
}

/// A battery below this charge (%) is flagged `low_battery` (the `[battery]` rule alerts).
const LOW_BATTERY_PCT: f64 = 20.0;
/// A signal below this (dBm) is flagged `weak_signal`: NB-IoT/4G links below about −105 dBm
/// lose messages.
const WEAK_SIGNAL_DBM: f64 = -105.0;
/// A device clock further off than this is flagged `clock_skew`.
const CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;
/// Fallback for a metric without a stuck time: a value unchanged for this many announced
/// intervals (and more than [`STUCK_MIN_MS`]) is flagged `stuck`.
const STUCK_INTERVALS: i64 = 48;
const STUCK_MIN_MS: i64 = 6 * 3600 * 1000;
/// Sequence numbers further back than this are a counter reset, not a duplicate.
const SEQ_RESET_DISTANCE: u64 = 1024;
/// Payload digests kept per device for messages without `seq`.
const RECENT_DIGESTS: usize = 32;

/// Bounds on state that grows with what devices send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Records of devices the registry does not list (open mode); past it, messages of further
    /// unknown devices are rejected (`unregistered`) and counted.
    pub max_unregistered: usize,
    /// Latest values (`metric` or `metric.channel`) kept per device; further channel names are
    /// not kept and are counted.
    pub max_values: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_unregistered: 200_000,
            max_values: 64,
        }
    }
}

/// What the engine refused to keep, and redeliveries it could not recognise (counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refused {
    /// Messages of unknown devices refused a record ([`Limits::max_unregistered`]).
    pub devices: u64,
    /// Values not kept as latest values ([`Limits::max_values`]).
    pub values: u64,
    /// Redelivered messages (DUP) without `seq` matching no recent payload of their device.
    pub redelivered_unrecognised: u64,
}

/// FNV-1a, 64 bits: a digest that stays the same across builds and restarts (persisted).
pub fn digest(payload: &[u8]) -> u64 {
    payload.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// How a message reached firewatch, beyond what it says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// The broker marked it as a redelivery (MQTT DUP flag).
    pub redelivered: bool,
    /// Digest of its payload ([`digest`]).
    pub digest: u64,
}

fn secs(s: f64) -> Millis {
    // Rule times are configured in seconds (fractions allowed for fast replays).
    (s * 1000.0).round() as Millis
}

/// A sliding window keeping the maximum of the last `window` ms of values.
#[derive(Debug, Default, Clone)]
struct MaxWindow {
    /// (time, value), values strictly decreasing from the front.
    q: VecDeque<(Millis, f64)>,
}

impl MaxWindow {
    fn push(&mut self, t: Millis, v: f64, window: Millis) -> f64 {
        while self.q.back().is_some_and(|&(_, b)| b <= v) {
            self.q.pop_back();
        }
        self.q.push_back((t, v));
        while self.q.front().is_some_and(|&(ft, _)| ft < t - window) {
            self.q.pop_front();
        }
        self.q.front().map_or(v, |&(_, m)| m)
    }
}

/// The engine. See the module docs.
#[derive(Debug)]
pub struct Engine {
    rules: Arc<Rules>,
    registry: Arc<Registry>,
    conds: HashMap<CondKey, Cond>,
    devices: HashMap<String, DeviceRecord>,
    windows: HashMap<(usize, String, Option<String>), MaxWindow>,
    dirty_conds: HashSet<CondKey>,
    dirty_devices: HashSet<String>,
    limits: Limits,
    /// Liveness before the first change since the last `take_dirty`, by device.
    liveness_before: HashMap<String, Liveness>,
    unregistered: usize,
    refused: Refused,
}

/// What [`Engine::take_dirty`] hands to the store.
#[derive(Debug, Default)]
pub struct Dirty {
    /// Conditions to upsert (`Some`) or delete (`None`).
    pub conds: Vec<(CondKey, Option<Cond>)>,
    /// Device records to upsert.
    pub devices: Vec<(String, DeviceRecord)>,
    /// Devices whose liveness changed, with what it was before (the current one is in their
    /// record).
    pub liveness: Vec<(String, Liveness)>,
}

/// Whether a device has shown a sign of life, and whether it is offline now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Liveness {
    /// A sign of life was seen (`last_seen` is set).
    pub seen: bool,
    /// Offline now.
    pub offline: bool,
}

impl Liveness {
    /// The liveness of a record.
    pub fn of(d: &DeviceRecord) -> Liveness {
        Liveness {
            seen: d.last_seen.is_some(),
            offline: d.offline,
        }
    }
}

impl Engine {
    /// A new engine with no state.
    pub fn new(rules: Arc<Rules>, registry: Arc<Registry>) -> Self {
        Engine {
            rules,
            registry,
            conds: HashMap::new(),
            devices: HashMap::new(),
            windows: HashMap::new(),
            dirty_conds: HashSet::new(),
            dirty_devices: HashSet::new(),
            limits: Limits::default(),
            liveness_before: HashMap::new(),
            unregistered: 0,
            refused: Refused::default(),
        }
    }

    /// Sets the bounds on device-driven state.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// What was refused so far.
    pub fn refused(&self) -> Refused {
        self.refused
    }

    /// Restores persisted state at start-up. Offline checks of devices are deferred by one
    /// reporting interval after `now`, so devices whose messages were queued by the broker
    /// while firewatch was down are not reported offline before those messages arrive; a device
    /// that stays silent is still reported, at most one interval late.
    pub fn restore(
        &mut self,
        conds: Vec<(CondKey, Cond)>,
        devices: Vec<(String, DeviceRecord)>,
        now: Millis,
    ) {
        self.conds.extend(conds);
        for (id, mut d) in devices {
            let interval = self.offline_timeout(&id, &d) as f64 / self.rules.offline.factor;
            d.grace_until = now + interval as Millis;
            if self.registry.device(&id).is_none() {
                self.unregistered += 1;
            }
            self.devices.insert(id, d);
        }
    }

    /// Feeds a past reading into rate-rule windows without evaluating (rebuilds them after a
    /// restart from the embedded store).
    pub fn prime_window(
        &mut self,
        device: &str,
        kind: Kind,
        metric: &str,
        channel: Option<&str>,
        t: Millis,
        v: f64,
    ) {
        for (i, r) in self.rules.rate.iter().enumerate() {
            if r.kind == kind && r.metric == metric {
                self.windows
                    .entry((i, device.to_owned(), channel.map(str::to_owned)))
                    .or_default()
                    .push(t, v, secs(r.window_s));
            }
        }
    }

    /// The rules in force.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The registry in force.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// (added) Puts a new registry in force (a reload). Records of devices it lists move to the
    /// building and kind it gives them; the count of unregistered records is taken again, so
    /// devices it adds stop counting against `max_unregistered` and those it drops start to.
    pub fn set_registry(&mut self, registry: Arc<Registry>) {
        self.unregistered = 0;
        for (id, rec) in &mut self.devices {
            match registry.device(id) {
                Some(r) => {
                    if rec.building != r.building || rec.kind != r.kind {
                        rec.building.clone_from(&r.building);
                        rec.kind = r.kind;
                        self.dirty_devices.insert(id.clone());
                    }
                }
                None => self.unregistered += 1,
            }
        }
        self.registry = registry;
    }

    /// All device records.
    pub fn devices(&self) -> &HashMap<String, DeviceRecord> {
        &self.devices
    }

    /// One device record.
    pub fn device(&self, id: &str) -> Option<&DeviceRecord> {
        self.devices.get(id)
    }

    /// Number of conditions held (pending, active or clearing).
    pub fn condition_count(&self) -> usize {
        self.conds.len()
    }

    /// Hands out what changed since the last call.
    pub fn take_dirty(&mut self) -> Dirty {
        let mut d = Dirty::default();
        for k in self.dirty_conds.drain() {
            let c = self.conds.get(&k).cloned();
            d.conds.push((k, c));
        }
        for id in self.dirty_devices.drain() {
            if let Some(r) = self.devices.get(&id) {
                d.devices.push((id, r.clone()));
            }
        }
        for (id, before) in self.liveness_before.drain() {
            if self
                .devices
                .get(&id)
                .is_some_and(|r| Liveness::of(r) != before)
            {
                d.liveness.push((id, before));
            }
        }
        d
    }

    /// Notes a device's liveness before something may change it.
    fn note_liveness(&mut self, id: &str) {
        if let Some(r) = self.devices.get(id) {
            if !self.liveness_before.contains_key(id) {
                self.liveness_before.insert(id.to_owned(), Liveness::of(r));
            }
        }
    }

    /// Counts a rejected message against its device (when the topic named one).
    pub fn count_rejected(&mut self, device: &str) {
        // A registered device's record belongs where the registry puts it, not under the topic
        // of a rejected message (a `binding` rejection names the wrong building or kind). An
        // unknown device that never sent an accepted message gets no record: rejected input
        // must not grow state (it is counted by reason and kept in the rejected list).
        let registry = Arc::clone(&self.registry);
        if let Some(rec) = self.devices.get_mut(device) {
            rec.rejected += 1;
            self.dirty_devices.insert(device.to_owned());
            return;
        }
        if let Some(r) = registry.device(device) {
            let mut rec = DeviceRecord::new(&r.building, r.kind);
            rec.rejected = 1;
            self.devices.insert(device.to_owned(), rec);
            self.dirty_devices.insert(device.to_owned());
        }
    }

    /// Checks registry binding and `seq`; on success the message is counted as accepted.
    pub fn accept(&mut self, msg: &Message) -> Result<(), Rejection> {
        self.accept_delivered(msg, Delivery::default())
    }

    /// [`Engine::accept`] for a message with its delivery facts: a redelivery (DUP) of a
    /// payload without `seq` that the device sent recently is a duplicate.
    pub fn accept_delivered(&mut self, msg: &Message, delivery: Delivery) -> Result<(), Rejection> {
        let registry = Arc::clone(&self.registry);
        if let Some(reg) = registry.device(&msg.device) {
            if reg.building != msg.building || reg.kind != msg.kind {
                self.count_rejected(&msg.device);
                return Err(Rejection::new(
                    Reason::Binding,
                    format!(
                        "device {} is registered as {} in building {}, not {} in {}",
                        msg.device, reg.kind, reg.building, msg.kind, msg.building
                    ),
                ));
            }
        } else if registry.strict {
            // No record for a device the registry does not know (counted by reason only).
            return Err(Rejection::new(
                Reason::Unregistered,
                format!("device {} is not in the registry", msg.device),
            ));
        } else if let Some(rec) = self.devices.get(&msg.device) {
            if rec.building != msg.building || rec.kind != msg.kind {
                let detail = format!(
                    "device {} was first seen as {} in building {}, not {} in {}",
                    msg.device, rec.kind, rec.building, msg.kind, msg.building
                );
                self.count_rejected(&msg.device);
                return Err(Rejection::new(Reason::Binding, detail));
            }
        } else if self.unregistered >= self.limits.max_unregistered {
            self.refused.devices += 1;
            return Err(Rejection::new(
                Reason::Unregistered,
                format!(
                    "device {} is not in the registry and {} unregistered devices are known already",
                    msg.device, self.limits.max_unregistered
                ),
            ));
        }
        if !self.devices.contains_key(&msg.device) && registry.device(&msg.device).is_none() {
            self.unregistered += 1;
        }
        let rec = self
            .devices
            .entry(msg.device.clone())
            .or_insert_with(|| DeviceRecord::new(&msg.building, msg.kind));
        if let (Some(seq), false) = (msg.seq, msg.retained) {
            match rec.max_seq {
                None => rec.max_seq = Some(seq),
                Some(max) if seq > max => {
                    let gap = seq - max - 1;
                    // Saturating: the device chooses `seq`, and a jump to near u64::MAX must
                    // neither panic nor wrap.
                    rec.lost = rec.lost.saturating_add(gap);
                    // A jump of exactly 64 still keeps the previous highest (bit 63).
                    rec.seq_window = if seq - max > 64 {
                        0
                    } else {
                        rec.seq_window.checked_shl((seq - max) as u32).unwrap_or(0)
                            | (1 << (seq - max - 1))
                    };
                    rec.max_seq = Some(seq);
                }
                Some(max) => {
                    let back = max - seq; // 0 = same as the highest
                    if (seq == 0 && back > 0) || back > SEQ_RESET_DISTANCE {
                        // The device restarted its counter (at 0) or jumped far back. Checked
                        // before the gap window: a seq 0 that was never seen is a restart, not a
                        // late arrival (else the restarted device's next messages would fall on
                        // seqs already seen and be rejected as duplicates).
                        rec.max_seq = Some(seq);
                        rec.seq_window = 0;
                    } else if (1..=64).contains(&back) && rec.seq_window & (1 << (back - 1)) == 0 {
                        // A late arrival fills its gap.
                        rec.seq_window |= 1 << (back - 1);
                        rec.lost = rec.lost.saturating_sub(1);
                        rec.out_of_order += 1;
                    } else {
                        rec.rejected += 1;
                        self.dirty_devices.insert(msg.device.clone());
                        return Err(Rejection::new(
                            Reason::Duplicate,
                            format!("seq {seq} already seen (highest {max})"),
                        ));
                    }
                }
            }
        }
        if msg.seq.is_none() && !msg.retained {
            if delivery.redelivered && rec.recent.contains(&delivery.digest) {
                rec.rejected += 1;
                self.dirty_devices.insert(msg.device.clone());
                return Err(Rejection::new(
                    Reason::Duplicate,
                    "redelivered (DUP) payload already received from this device",
                ));
            }
            if delivery.redelivered {
                // Maybe a copy of a message older than the digests kept: it may be stored twice.
                self.refused.redelivered_unrecognised += 1;
            }
            if rec.recent.len() >= RECENT_DIGESTS {
                rec.recent.pop_front();
            }
            rec.recent.push_back(delivery.digest);
        }
        rec.messages += 1;
        rec.first_seen.get_or_insert(msg.received);
        if msg.has_ts {
            rec.skew_ms = msg.ts - msg.received;
        }
        self.dirty_devices.insert(msg.device.clone());
        Ok(())
    }

    /// Evaluates an accepted message; time is the message's receive time.
    pub fn evaluate(&mut self, msg: &Message, out: &mut Vec<Transition>) {
        let now = msg.received;
        self.note_liveness(&msg.device);
        self.liveness(msg, out);
        match &msg.body {
            Body::Telemetry(samples) => {
                let rec = self.devices.get_mut(&msg.device);
                if let Some(rec) = rec {
                    // Records written before per-value times: their unchanged values held
                    // since the device-wide time.
                    let legacy = rec.unchanged_since.take();
                    let mut joined = String::new();
                    for s in samples {
                        let key: &str = match &s.channel {
                            Some(c) => {
                                joined.clear();
                                joined.push_str(s.metric);
                                joined.push('.');
                                joined.push_str(c);
                                &joined
                            }
                            None => s.metric,
                        };
                        if !rec.last_values.contains_key(key)
                            && rec.last_values.len() >= self.limits.max_values
                        {
                            // Any channel name a device sends would be kept otherwise.
                            self.refused.values += 1;
                            continue;
                        }
                        let prev = rec.last_values.insert(key, s.value);
                        if prev != Some(s.value) {
                            rec.held.insert(key, now);
                        } else {
                            rec.held.insert_if_absent(key, legacy.unwrap_or(now));
                        }
                    }
                }
                for s in samples {
                    self.eval_thresholds(msg, s.metric, s.channel.as_deref(), s.value, out);
                    self.eval_rates(msg, s.metric, s.channel.as_deref(), s.value, out);
                }
            }
            Body::Event(ev) => {
                if ev.name == "reset" && msg.kind == Kind::Transmitter {
                    self.reset_device(&msg.device, now, out);
                }
                let channel = ev.channel();
                let rules = Arc::clone(&self.rules);
                for r in rules.event.iter().filter(|r| r.kind == msg.kind) {
                    if r.events.contains(&ev.name) {
                        self.eval_event(r, msg, ev, channel.clone(), out);
                    }
                }
            }
            Body::Status(st) => {
                if let Some(rec) = self.devices.get_mut(&msg.device) {
                    if st.interval_s.is_some() {
                        rec.interval_s = st.interval_s;
                    }
                    if st.battery_pct.is_some() {
                        rec.battery_pct = st.battery_pct;
                    }
                    if st.rssi_dbm.is_some() {
                        rec.rssi_dbm = st.rssi_dbm;
                    }
                    if st.firmware.is_some() {
                        rec.firmware.clone_from(&st.firmware);
                    }
                }
                if let Some(pct) = st.battery_pct {
                    self.eval_battery(&msg.device, pct, msg.received, out);
                }
            }
        }
        // Any message may change the findings: new values, or a sign of life that makes a
        // held value stuck.
        self.eval_quality(&msg.device, now, out);
    }

    /// The `[quality]` alerts follow their findings: `device.implausible` while a latest value
    /// is outside its plausible band, `device.stuck` while one has held past its stuck time.
    /// One alert per device each; its value and detail are those of the first such value.
    fn eval_quality(&mut self, id: &str, now: Millis, out: &mut Vec<Transition>) {
        let rules = Arc::clone(&self.rules);
        let q = &rules.quality;
        let Some(rec) = self.devices.get(id) else {
            return;
        };
        let implausible = rec.implausible(q).next().map(|(k, v, bound)| {
            let side = if v < bound { "below" } else { "above" };
            let (lo, hi) = q.band(metric_of(k));
            let band = format!(
                "{}–{}",
                lo.map_or("…".into(), fmt_num),
                hi.map_or("…".into(), fmt_num)
            );
            let detail = format!(
                "{k} {} {side} its plausible band {band}: a sensor, range or unit fault",
                fmt_num(v)
            );
            (v, bound, detail)
        });
        let stuck = rec.stuck(q).next().map(|(k, v, since, limit)| {
            let floor = q.check(metric_of(k), v) == Band::Floor;
            let mut detail = format!(
                "{k} unchanged at {} for {} (stuck after {})",
                fmt_num(v),
                fmt_span(now - since),
                fmt_span(limit)
            );
            if floor {
                detail.push_str(
                    ", at the floor of its plausible band: a dead sensor or a closed valve",
                );
            }
            (v, limit as f64 / 1000.0, detail)
        });
        let (building, kind) = (rec.building.clone(), rec.kind);
        for (rule, found) in [(&q.implausible_id, implausible), (&q.stuck_id, stuck)] {
            let key = CondKey {
                source: 'q',
                rule: rule.clone(),
                device: id.to_owned(),
                channel: None,
            };
            match found {
                Some((v, threshold, detail)) => {
                    if let Some(c) = self.conds.get_mut(&key) {
                        // Another value now: the alert tells of it when it clears. (Not the
                        // growing duration of a stuck value: no write per message for that.)
                        if c.value != Some(v) {
                            c.value = Some(v);
                            c.threshold = Some(threshold);
                            c.detail = detail;
                            self.dirty_conds.insert(key);
                        }
                        continue;
                    }
                    let c = Cond {
                        phase: Phase::Pending,
                        since: now,
                        phase_since: now,
                        value: Some(v),
                        threshold: Some(threshold),
                        notified: now,
                        refreshed: now,
                        severity: q.severity,
                        building: building.clone(),
                        kind,
                        detail,
                    };
                    self.conds.insert(key.clone(), c);
                    self.fire(&key, now, out);
                }
                None => self.clear(&key, now, out),
            }
        }
    }

    /// The `[battery]` rule: fires below `raise_pct`, clears at `clear_pct` or above.
    fn eval_battery(&mut self, id: &str, pct: f64, now: Millis, out: &mut Vec<Transition>) {
        let Some(rec) = self.devices.get(id) else {
            return;
        };
        let r = &self.rules.battery;
        let key = CondKey {
            source: 'q',
            rule: r.id.clone(),
            device: id.to_owned(),
            channel: None,
        };
        let active = self.conds.contains_key(&key);
        if pct < r.raise_pct && !active {
            let c = Cond {
                phase: Phase::Pending,
                since: now,
                phase_since: now,
                value: Some(pct),
                threshold: Some(r.raise_pct),
                notified: now,
                refreshed: now,
                severity: r.severity,
                building: rec.building.clone(),
                kind: rec.kind,
                detail: format!("battery {pct:.0} % below {:.0} %", r.raise_pct),
            };
            self.conds.insert(key.clone(), c);
            self.fire(&key, now, out);
        } else if pct >= r.clear_pct && active {
            self.clear(&key, now, out);
        }
    }

    /// Timers: hold times, clear holds, rate clears, event expiry, repeats, offline devices.
    pub fn tick(&mut self, now: Millis, out: &mut Vec<Transition>) {
        let rules = Arc::clone(&self.rules);
        let keys: Vec<CondKey> = self.conds.keys().cloned().collect();
        for key in keys {
            let Some(c) = self.conds.get(&key).cloned() else {
                continue;
            };
            match key.source {
                't' => {
                    let Some(r) = rules
                        .threshold
                        .iter()
                        .find(|r| r.id == key.rule && r.kind == c.kind)
                    else {
                        continue;
                    };
                    match c.phase {
                        Phase::Pending if now - c.phase_since >= secs(r.hold_s) => {
                            self.fire(&key, now, out);
                        }
                        Phase::Clearing if now - c.phase_since >= secs(r.clear_hold_s) => {
                            self.clear(&key, now, out);
                        }
                        _ => {}
                    }
                }
                'r' => {
                    let Some(r) = rules
                        .rate
                        .iter()
                        .find(|r| r.id == key.rule && r.kind == c.kind)
                    else {
                        continue;
                    };
                    if now - c.refreshed >= secs(r.clear_after_s) {
                        self.clear(&key, now, out);
                    }
                }
                'e' => {
                    let Some(r) = rules
                        .event
                        .iter()
                        .find(|r| r.id == key.rule && r.kind == c.kind)
                    else {
                        continue;
                    };
                    if r.expire_s > 0.0 && now - c.refreshed >= secs(r.expire_s) {
                        match c.phase {
                            Phase::Pending => self.forget(&key),
                            _ => self.clear(&key, now, out),
                        }
                        continue;
                    }
                    match c.phase {
                        Phase::Pending if now - c.phase_since >= secs(r.hold_s) => {
                            self.fire(&key, now, out);
                        }
                        Phase::Active
                            if r.repeat_s > 0.0 && now - c.notified >= secs(r.repeat_s) =>
                        {
                            if let Some(c) = self.conds.get_mut(&key) {
                                c.notified = now;
                                let t = transition(&key, c, Change::Repeat, now, false);
                                self.dirty_conds.insert(key.clone());
                                out.push(t);
                            }
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        // Flapping devices quiet for a whole window: the flapping alert clears; one still
        // offline then is reported offline.
        let window = secs(rules.offline.flap_window_s);
        let calm: Vec<String> = self
            .devices
            .iter()
            .filter(|(_, d)| d.flapping && d.flaps.back().is_none_or(|t| now - t > window))
            .map(|(id, _)| id.clone())
            .collect();
        for id in calm {
            let offline = match self.devices.get_mut(&id) {
                Some(d) => {
                    d.flapping = false;
                    d.flaps.clear();
                    d.offline
                }
                None => continue,
            };
            self.dirty_devices.insert(id.clone());
            let key = CondKey {
                source: 'o',
                rule: rules.offline.flapping_id.clone(),
                device: id.clone(),
                channel: None,
            };
            self.clear(&key, now, out);
            if offline {
                let timeout = self.devices.get(&id).map(|d| self.offline_timeout(&id, d));
                self.fire_offline(&id, now, timeout, out);
            }
        }
        // Offline devices.
        let mut newly_offline = Vec::new();
        for (id, d) in &self.devices {
            if d.offline || now < d.grace_until {
                continue;
            }
            if let Some(last) = d.last_seen {
                let timeout = self.offline_timeout(id, d);
                if now - last > timeout {
                    newly_offline.push((id.clone(), timeout));
                }
            }
        }
        newly_offline.sort();
        for (id, timeout) in newly_offline {
            self.note_liveness(&id);
            self.go_offline(&id, now, Some(timeout), out);
        }
    }

    /// The offline timeout of a device, ms.
    pub fn offline_timeout(&self, id: &str, d: &DeviceRecord) -> Millis {
        offline_timeout(&self.rules, &self.registry, id, d)
    }

    /// A person closed the alert of this condition: forget the condition, so a hazard that
    /// persists raises a new alert after its hold time instead of hiding behind a closed one.
    pub fn rearm(&mut self, rule: &str, device: &str, channel: Option<&str>) {
        let keys: Vec<CondKey> = self
            .conds
            .keys()
            .filter(|k| k.rule == rule && k.device == device && k.channel.as_deref() == channel)
            .cloned()
            .collect();
        for k in keys {
            if k.source == 'o' {
                // Offline stays tracked by the device record; a new message clears it.
                continue;
            }
            self.forget(&k);
        }
    }

    fn liveness(&mut self, msg: &Message, out: &mut Vec<Transition>) {
        let now = msg.received;
        let going_offline = matches!(&msg.body, Body::Status(s) if s.online == Some(false));
        let Some(rec) = self.devices.get_mut(&msg.device) else {
            return;
        };
        if msg.retained && !going_offline {
            // A retained message replayed by the broker on subscribe is no sign of life.
            return;
        }
        rec.last_seen = Some(now);
        let was_offline = rec.offline;
        if going_offline {
            if !was_offline {
                let id = msg.device.clone();
                self.go_offline(&id, now, None, out);
            }
            return;
        }
        if was_offline {
            rec.offline = false;
            let key = CondKey {
                source: 'o',
                rule: self.rules.offline.id.clone(),
                device: msg.device.clone(),
                channel: None,
            };
            self.clear(&key, now, out);
        }
    }

    fn go_offline(
        &mut self,
        id: &str,
        now: Millis,
        timeout: Option<Millis>,
        out: &mut Vec<Transition>,
    ) {
        let o = &self.rules.offline;
        let (window, count) = (secs(o.flap_window_s), o.flap_count as usize);
        let flapping_id = o.flapping_id.clone();
        let Some(rec) = self.devices.get_mut(id) else {
            return;
        };
        rec.offline = true;
        self.dirty_devices.insert(id.to_owned());
        rec.flaps.push_back(now);
        while rec.flaps.front().is_some_and(|t| now - t > window) || rec.flaps.len() > count {
            rec.flaps.pop_front();
        }
        if rec.flapping {
            // Reported once already, as flapping.
            return;
        }
        if rec.flaps.len() >= count {
            rec.flapping = true;
            let key = CondKey {
                source: 'o',
                rule: flapping_id,
                device: id.to_owned(),
                channel: None,
            };
            let c = Cond {
                phase: Phase::Pending,
                since: rec.flaps.front().copied().unwrap_or(now),
                phase_since: now,
                value: Some(rec.flaps.len() as f64),
                threshold: Some(count as f64),
                notified: now,
                refreshed: now,
                severity: self.rules.offline.severity,
                building: rec.building.clone(),
                kind: rec.kind,
                detail: format!(
                    "offline {} times within {} s",
                    rec.flaps.len(),
                    window / 1000
                ),
            };
            self.conds.insert(key.clone(), c);
            self.fire(&key, now, out);
            return;
        }
        self.fire_offline(id, now, timeout, out);
    }

    /// Raises the offline alert of a device already marked offline.
    fn fire_offline(
        &mut self,
        id: &str,
        now: Millis,
        timeout: Option<Millis>,
        out: &mut Vec<Transition>,
    ) {
        let Some(rec) = self.devices.get(id) else {
            return;
        };
        let since = rec.last_seen.unwrap_or(now);
        let detail = match timeout {
            Some(t) => format!("silent for more than {} s", t / 1000),
            None => "announced offline (last will)".to_owned(),
        };
        let key = CondKey {
            source: 'o',
            rule: self.rules.offline.id.clone(),
            device: id.to_owned(),
            channel: None,
        };
        let c = Cond {
            phase: Phase::Pending,
            since,
            phase_since: now,
            value: None,
            threshold: timeout.map(|t| t as f64 / 1000.0),
            notified: now,
            refreshed: now,
            severity: self.rules.offline.severity,
            building: rec.building.clone(),
            kind: rec.kind,
            detail,
        };
        self.conds.insert(key.clone(), c);
        self.fire(&key, now, out);
    }

    fn levels(&self, r: &ThresholdRule, msg: &Message) -> Levels {
        if let Some(l) = self
            .registry
            .device(&msg.device)
            .and_then(|d| d.thresholds.get(&r.id))
        {
            return *l;
        }
        let class = self.registry.class_of(&msg.building);
        r.by_class.get(&class).copied().unwrap_or(Levels {
            raise: r.raise,
            clear: r.clear,
        })
    }

    fn eval_thresholds(
        &mut self,
        msg: &Message,
        metric: &str,
        channel: Option<&str>,
        v: f64,
        out: &mut Vec<Transition>,
    ) {
        let now = msg.received;
        let rules = Arc::clone(&self.rules);
        for r in rules
            .threshold
            .iter()
            .filter(|r| r.kind == msg.kind && r.metric == metric)
        {
            let l = self.levels(r, msg);
            let breach = match (r.direction, r.inclusive) {
                (Direction::Below, false) => v < l.raise,
                (Direction::Below, true) => v <= l.raise,
                (Direction::Above, false) => v > l.raise,
                (Direction::Above, true) => v >= l.raise,
            };
            let cleared = match r.direction {
                Direction::Below => v >= l.clear,
                Direction::Above => v <= l.clear,
            };
            let key = CondKey {
                source: 't',
                rule: r.id.clone(),
                device: msg.device.clone(),
                channel: channel.map(str::to_owned),
            };
            let phase = self.conds.get(&key).map(|c| c.phase);
            match phase {
                None if breach => {
                    let c = Cond {
                        phase: Phase::Pending,
                        since: now,
                        phase_since: now,
                        value: Some(v),
                        threshold: Some(l.raise),
                        notified: now,
                        refreshed: now,
                        severity: r.severity,
                        building: msg.building.clone(),
                        kind: msg.kind,
                        detail: threshold_text(r, v, l.raise),
                    };
                    self.conds.insert(key.clone(), c);
                    self.dirty_conds.insert(key.clone());
                    if r.hold_s <= 0.0 {
                        self.fire(&key, now, out);
                    }
                }
                None => {}
                Some(Phase::Pending) => {
                    if breach {
                        self.update_value(&key, v, threshold_text(r, v, l.raise));
                        let since = self.conds.get(&key).map_or(now, |c| c.phase_since);
                        if now - since >= secs(r.hold_s) {
                            self.fire(&key, now, out);
                        }
                    } else {
                        // A dip shorter than the hold time: nothing to report.
                        self.forget(&key);
                    }
                }
                Some(Phase::Active) => {
                    if cleared {
                        self.update_value(&key, v, threshold_text(r, v, l.raise));
                        if r.clear_hold_s <= 0.0 {
                            self.clear(&key, now, out);
                        } else if let Some(c) = self.conds.get_mut(&key) {
                            c.phase = Phase::Clearing;
                            c.phase_since = now;
                        }
                    } else if breach {
                        self.update_value(&key, v, threshold_text(r, v, l.raise));
                    }
                }
                Some(Phase::Clearing) => {
                    if cleared || breach {
                        // The clear (or the renewed breach) reports the latest reading.
                        self.update_value(&key, v, threshold_text(r, v, l.raise));
                    }
                    if cleared {
                        let since = self.conds.get(&key).map_or(now, |c| c.phase_since);
                        if now - since >= secs(r.clear_hold_s) {
                            self.clear(&key, now, out);
                        }
                    } else if let Some(c) = self.conds.get_mut(&key) {
                        // Back inside the band or past the raise level: still active.
                        c.phase = Phase::Active;
                        c.phase_since = now;
                        self.dirty_conds.insert(key);
                    }
                }
            }
        }
    }

    fn eval_rates(
        &mut self,
        msg: &Message,
        metric: &str,
        channel: Option<&str>,
        v: f64,
        out: &mut Vec<Transition>,
    ) {
        let now = msg.received;
        let rules = Arc::clone(&self.rules);
        for (i, r) in rules.rate.iter().enumerate() {
            if r.kind != msg.kind || r.metric != metric {
                continue;
            }
            let max = self
                .windows
                .entry((i, msg.device.clone(), channel.map(str::to_owned)))
                .or_default()
                .push(now, v, secs(r.window_s));
            let fall = max - v;
            if fall + 1e-9 < r.drop {
                continue;
            }
            let key = CondKey {
                source: 'r',
                rule: r.id.clone(),
                device: msg.device.clone(),
                channel: channel.map(str::to_owned),
            };
            let detail = rate_text(r, max, v);
            if let Some(c) = self.conds.get_mut(&key) {
                c.refreshed = now;
                c.value = Some(v);
                c.detail = detail;
                self.dirty_conds.insert(key);
            } else {
                let c = Cond {
                    phase: Phase::Pending,
                    since: now,
                    phase_since: now,
                    value: Some(v),
                    threshold: Some(r.drop),
                    notified: now,
                    refreshed: now,
                    severity: r.severity,
                    building: msg.building.clone(),
                    kind: msg.kind,
                    detail,
                };
                self.conds.insert(key.clone(), c);
                self.fire(&key, now, out);
            }
        }
    }

    fn eval_event(
        &mut self,
        r: &EventRule,
        msg: &Message,
        ev: &crate::model::Event,
        channel: Option<String>,
        out: &mut Vec<Transition>,
    ) {
        let now = msg.received;
        if ev.state != EventState::End && ev.confidence.unwrap_or(1.0) < r.min_confidence {
            return;
        }
        let key = CondKey {
            source: 'e',
            rule: r.id.clone(),
            device: msg.device.clone(),
            channel: channel.clone(),
        };
        let severity = r
            .severity_by_event
            .get(&ev.name)
            .copied()
            .unwrap_or(r.severity);
        let detail = event_text(r, ev);
        match ev.state {
            EventState::Start => {
                if let Some(c) = self.conds.get_mut(&key) {
                    c.refreshed = now;
                    self.dirty_conds.insert(key);
                    return;
                }
                let c = Cond {
                    phase: Phase::Pending,
                    since: now,
                    phase_since: now,
                    value: ev.confidence,
                    threshold: (r.min_confidence > 0.0).then_some(r.min_confidence),
                    notified: now,
                    refreshed: now,
                    severity,
                    building: msg.building.clone(),
                    kind: msg.kind,
                    detail,
                };
                self.conds.insert(key.clone(), c);
                self.dirty_conds.insert(key.clone());
                if r.hold_s <= 0.0 {
                    self.fire(&key, now, out);
                }
            }
            EventState::End => match self.conds.get(&key).map(|c| c.phase) {
                Some(Phase::Pending) => self.forget(&key),
                Some(_) => self.clear(&key, now, out),
                None => {}
            },
            EventState::Pulse => {
                let c = Cond {
                    phase: Phase::Active,
                    since: now,
                    phase_since: now,
                    value: ev.confidence,
                    threshold: None,
                    notified: now,
                    refreshed: now,
                    severity,
                    building: msg.building.clone(),
                    kind: msg.kind,
                    detail,
                };
                out.push(transition(&key, &c, Change::Fired, now, true));
            }
        }
    }

    /// A transmitter `reset`: every event condition of the device ends.
    fn reset_device(&mut self, device: &str, now: Millis, out: &mut Vec<Transition>) {
        let mut keys: Vec<CondKey> = self
            .conds
            .keys()
            .filter(|k| k.device == device && k.source == 'e')
            .cloned()
            .collect();
        keys.sort();
        for k in keys {
            match self.conds.get(&k).map(|c| c.phase) {
                Some(Phase::Pending) => self.forget(&k),
                Some(_) => self.clear(&k, now, out),
                None => {}
            }
        }
    }

    fn update_value(&mut self, key: &CondKey, v: f64, detail: String) {
        if let Some(c) = self.conds.get_mut(key) {
            if c.value != Some(v) {
                c.value = Some(v);
                c.detail = detail;
                self.dirty_conds.insert(key.clone());
            }
        }
    }

    fn forget(&mut self, key: &CondKey) {
        if self.conds.remove(key).is_some() {
            self.dirty_conds.insert(key.clone());
        }
    }

    /// The same alert raised by another source (threshold and event sharing a rule id).
    fn sibling_active(&self, key: &CondKey) -> bool {
        self.conds.iter().any(|(k, c)| {
            k.source != key.source
                && k.rule == key.rule
                && k.device == key.device
                && k.channel == key.channel
                && c.phase != Phase::Pending
        })
    }

    fn fire(&mut self, key: &CondKey, now: Millis, out: &mut Vec<Transition>) {
        let sibling = self.sibling_active(key);
        let Some(c) = self.conds.get_mut(key) else {
            return;
        };
        c.phase = Phase::Active;
        c.phase_since = now;
        c.notified = now;
        self.dirty_conds.insert(key.clone());
        if !sibling {
            out.push(transition(key, c, Change::Fired, now, false));
        }
    }

    fn clear(&mut self, key: &CondKey, now: Millis, out: &mut Vec<Transition>) {
        let Some(c) = self.conds.remove(key) else {
            return;
        };
        self.dirty_conds.insert(key.clone());
        if c.phase != Phase::Pending && !self.sibling_active(key) {
            out.push(transition(key, &c, Change::Cleared, now, false));
        }
    }
}

/// The offline timeout of a device, ms: `factor` × its interval (announced in `status`, else
/// from the registry), else the per-kind default (battery devices: `battery_s`).
pub fn offline_timeout(rules: &Rules, registry: &Registry, id: &str, d: &DeviceRecord) -> Millis {
    let o = &rules.offline;
    let reg = registry.device(id);
    let interval = d.interval_s.or_else(|| reg.and_then(|r| r.interval_s));
    if let Some(i) = interval {
        return secs(i as f64 * o.factor);
    }
    let power = reg.and_then(|r| r.power);
    let battery = power == Some(Power::Battery) || (power.is_none() && d.battery_pct.is_some());
    if battery && d.kind != Kind::Transmitter {
        return secs(o.battery_s);
    }
    secs(o.default_s.get(&d.kind).copied().unwrap_or(900.0))
}

fn transition(key: &CondKey, c: &Cond, change: Change, at: Millis, pulse: bool) -> Transition {
    Transition {
        change,
        rule: key.rule.clone(),
        building: c.building.clone(),
        kind: c.kind,
        device: key.device.clone(),
        channel: key.channel.clone(),
        severity: c.severity,
        at,
        since: c.since,
        value: c.value,
        threshold: c.threshold,
        message: c.detail.clone(),
        pulse,
    }
}

fn fmt_num(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_owned()
}

/// A duration for messages: `90 min`, `26 h`, `3 d`.
fn fmt_span(ms: Millis) -> String {
    let min = ms / 60_000;
    if min < 120 {
        format!("{min} min")
    } else if min < 72 * 60 {
        format!("{} h", min / 60)
    } else {
        format!("{} d", min / (24 * 60))
    }
}

fn threshold_text(r: &ThresholdRule, v: f64, level: f64) -> String {
    let label = r.label.clone().unwrap_or_else(|| r.metric.clone());
    let side = match r.direction {
        Direction::Below => "below",
        Direction::Above => "above",
    };
    let unit = if r.unit.is_empty() {
        String::new()
    } else {
        format!(" {}", r.unit)
    };
    let hold = if r.hold_s > 0.0 {
        format!(" for {} s", fmt_num(r.hold_s))
    } else {
        String::new()
    };
    format!(
        "{label} {}{unit} {side} {}{unit}{hold}",
        fmt_num(v),
        fmt_num(level)
    )
}

fn rate_text(r: &RateRule, from: f64, to: f64) -> String {
    let label = r.label.clone().unwrap_or_else(|| r.metric.clone());
    let unit = if r.unit.is_empty() {
        String::new()
    } else {
        format!(" {}", r.unit)
    };
    format!(
        "{label} fell {}{unit} within {} s ({} → {}{unit})",
        fmt_num(from - to),
        fmt_num(r.window_s),
        fmt_num(from),
        fmt_num(to)
    )
}

fn event_text(r: &EventRule, ev: &crate::model::Event) -> String {
    let mut s = r.label.clone().unwrap_or_else(|| r.id.clone());
    s.push_str(&format!(": {}", ev.name));
    if let Some(z) = &ev.zone {
        s.push_str(&format!(" in {z}"));
    }
    if let Some(p) = &ev.point {
        if let Some(d) = p.description.as_deref().filter(|d| !d.trim().is_empty()) {
            s.push_str(&format!(" at {}", d.trim()));
        }
        if let Some(a) = &p.component_addr {
            s.push_str(&format!(" (point {a})"));
        }
    }
    if let Some(c) = ev.confidence {
        s.push_str(&format!(", confidence {}", fmt_num(c)));
    }
    if r.hold_s > 0.0 {
        s.push_str(&format!(", for more than {} s", fmt_num(r.hold_s)));
    }
    s
}

#[cfg(test)]
mod tests;
