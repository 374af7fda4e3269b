//! Unit tests of the rule engine. Time is always passed in, so hours of device time run in
//! milliseconds: messages are decoded from the wire form with their receive time, and
//! [`Engine::tick`] is called at chosen instants.

use super::*;
use crate::model::decode::{decode, Decoded};
use std::collections::BTreeMap;
use std::path::Path;

/// 2026-11-29T01:30:00Z.
const T0: Millis = 1_795_908_600_000;
const MS: Millis = 1;
const SEC: Millis = 1_000;
const MIN: Millis = 60 * SEC;
const HOUR: Millis = 60 * MIN;

fn shipped_rules() -> Rules {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rules.toml");
    Rules::load(&path).unwrap_or_else(|p| panic!("{p:?}"))
}

/// Buildings of every class, and devices with overrides, power and intervals.
const REGISTRY: &str = r#"
strict = false

[[building]]
id = "res"
class = "residential"

[[building]]
id = "pub2"
class = "public_class2"

[[building]]
id = "pub1"
class = "public_class1"

[[building]]
id = "ind"
class = "industrial"

[[building]]
id = "tall"
class = "public_class1_over_100m"

[[building]]
id = "plain"

[[device]]
id = "wp-override"
building = "res"
kind = "water_pressure"
thresholds."water_pressure.low" = { raise = 0.20, clear = 0.25 }

[[device]]
id = "wl-tank"
building = "res"
kind = "water_level"
thresholds."water_level.low" = { raise = 1.2, clear = 1.4 }
thresholds."water_level.high" = { raise = 3.0, clear = 2.9 }

[[device]]
id = "wp-battery"
building = "res"
kind = "water_pressure"
power = "battery"

[[device]]
id = "wp-mains"
building = "res"
kind = "water_pressure"
power = "mains"

[[device]]
id = "wp-interval"
building = "res"
kind = "water_pressure"
power = "battery"
interval_s = 1800

[[device]]
id = "uitd-a"
building = "res"
kind = "transmitter"
"#;

fn topic(building: &str, kind: &str, device: &str, class: &str) -> String {
    format!("fw/v1/{building}/{kind}/{device}/{class}")
}

/// Test harness: an engine plus the transitions of the latest call.
struct H {
    engine: Engine,
    out: Vec<Transition>,
}

impl H {
    /// Shipped rules, empty non-strict registry.
    fn new() -> H {
        H::with(shipped_rules(), "")
    }

    /// Shipped rules and [`REGISTRY`].
    fn registered() -> H {
        H::with(shipped_rules(), REGISTRY)
    }

    fn with(rules: Rules, registry: &str) -> H {
        let registry = Registry::parse(registry).unwrap_or_else(|p| panic!("{p:?}"));
        assert!(rules.check_registry(&registry).is_empty());
        H {
            engine: Engine::new(Arc::new(rules), Arc::new(registry)),
            out: Vec::new(),
        }
    }

    fn message(t: Millis, topic: &str, json: &str, retained: bool) -> Message {
        match decode(topic, json.as_bytes(), retained, t) {
            Ok(Decoded::Message(m)) => *m,
            other => panic!("{topic} {json}: not a message: {other:?}"),
        }
    }

    /// `accept` then, when accepted, `evaluate`, as the pipeline does.
    fn offer(
        &mut self,
        t: Millis,
        topic: &str,
        json: &str,
        retained: bool,
    ) -> Result<Vec<Transition>, Reason> {
        let m = H::message(t, topic, json, retained);
        self.engine.accept(&m).map_err(|r| r.reason)?;
        self.engine.evaluate(&m, &mut self.out);
        Ok(std::mem::take(&mut self.out))
    }

    fn send(&mut self, t: Millis, topic: &str, json: &str) -> Vec<Transition> {
        self.offer(t, topic, json, false)
            .unwrap_or_else(|r| panic!("{topic} {json} rejected: {r}"))
    }

    fn send_retained(&mut self, t: Millis, topic: &str, json: &str) -> Vec<Transition> {
        self.offer(t, topic, json, true)
            .unwrap_or_else(|r| panic!("{topic} {json} rejected: {r}"))
    }

    fn tick(&mut self, t: Millis) -> Vec<Transition> {
        self.engine.tick(t, &mut self.out);
        std::mem::take(&mut self.out)
    }

    /// Ticks at `from`, `from + step`, … up to and including `to`.
    fn ticks(&mut self, from: Millis, to: Millis, step: Millis) -> Vec<Transition> {
        let mut all = Vec::new();
        let mut t = from;
        while t <= to {
            all.extend(self.tick(t));
            t += step;
        }
        all
    }

    fn pressure(&mut self, t: Millis, building: &str, device: &str, v: f64) -> Vec<Transition> {
        self.send(
            t,
            &topic(building, "water_pressure", device, "telemetry"),
            &format!(r#"{{"values": {{"pressure_mpa": {v}}}}}"#),
        )
    }

    fn arc(&mut self, t: Millis, count: f64) -> Vec<Transition> {
        self.send(
            t,
            &topic("plain", "electrical", "ef-1", "telemetry"),
            &format!(r#"{{"values": {{"arc_count": {count}}}}}"#),
        )
    }

    /// The arc-fault detector's own event on `ef-1`.
    fn arc_fault(&mut self, t: Millis, state: &str) -> Vec<Transition> {
        self.event(
            t,
            "plain",
            "electrical",
            "ef-1",
            &format!(r#"{{"event": "arc_fault", "state": "{state}"}}"#),
        )
    }

    fn event(
        &mut self,
        t: Millis,
        building: &str,
        kind: &str,
        device: &str,
        json: &str,
    ) -> Vec<Transition> {
        self.send(t, &topic(building, kind, device, "event"), json)
    }

    fn status(&mut self, t: Millis, building: &str, kind: &str, device: &str, json: &str) {
        let got = self.send(t, &topic(building, kind, device, "status"), json);
        assert!(got.is_empty(), "status produced {got:?}");
    }

    /// Announces a one-day reporting interval (offline after 3 days), so that long quiet
    /// stretches in a test are not interrupted by `device.offline`.
    fn daily(&mut self, building: &str, kind: &str, device: &str) {
        self.status(T0 - MIN, building, kind, device, r#"{"interval_s": 86400}"#);
    }

    /// The data-quality findings of a device.
    fn quality(&self, device: &str) -> Vec<&'static str> {
        let d = self.engine.device(device).unwrap();
        d.quality(&self.engine.rules().quality)
    }

    /// Hands the dirty state to `store`, as the pipeline does after every batch.
    fn persist(&mut self, store: &mut Store) {
        store.absorb(self.engine.take_dirty());
    }

    /// A new engine with the same rules and registry, restored from `store` at `now`.
    fn restart(&self, store: &Store, now: Millis) -> H {
        let mut engine = Engine::new(
            Arc::new(self.engine.rules().clone()),
            Arc::new(self.engine.registry().clone()),
        );
        let (conds, devices) = store.load();
        engine.restore(conds, devices, now);
        H {
            engine,
            out: Vec::new(),
        }
    }
}

/// What the pipeline's store keeps: the latest upsert per key, deletes applied, as JSON.
#[derive(Default)]
struct Store {
    conds: BTreeMap<String, String>,
    devices: BTreeMap<String, String>,
}

impl Store {
    fn absorb(&mut self, d: Dirty) {
        for (k, c) in d.conds {
            match c {
                Some(c) => {
                    self.conds
                        .insert(k.encode(), serde_json::to_string(&c).unwrap());
                }
                None => {
                    self.conds.remove(&k.encode());
                }
            }
        }
        for (id, r) in d.devices {
            self.devices.insert(id, serde_json::to_string(&r).unwrap());
        }
    }

    #[allow(clippy::type_complexity)]
    fn load(&self) -> (Vec<(CondKey, Cond)>, Vec<(String, DeviceRecord)>) {
        let conds = self
            .conds
            .iter()
            .map(|(k, c)| {
                (
                    CondKey::decode(k).unwrap(),
                    serde_json::from_str(c).unwrap(),
                )
            })
            .collect();
        let devices = self
            .devices
            .iter()
            .map(|(id, r)| (id.clone(), serde_json::from_str(r).unwrap()))
            .collect();
        (conds, devices)
    }
}

/// The asserted fields of a transition; floats rounded so that 0.1 + 0.2 style noise does not
/// matter.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
struct Want {
    rule: String,
    device: String,
    channel: Option<String>,
    change: String,
    severity: Severity,
    value: Option<f64>,
    threshold: Option<f64>,
    pulse: bool,
}

fn round(v: Option<f64>) -> Option<f64> {
    v.map(|v| (v * 1e9).round() / 1e9)
}

impl From<&Transition> for Want {
    fn from(t: &Transition) -> Want {
        Want {
            rule: t.rule.clone(),
            device: t.device.clone(),
            channel: t.channel.clone(),
            change: format!("{:?}", t.change),
            severity: t.severity,
            value: round(t.value),
            threshold: round(t.threshold),
            pulse: t.pulse,
        }
    }
}

fn want(
    change: Change,
    rule: &str,
    device: &str,
    channel: Option<&str>,
    severity: Severity,
    value: Option<f64>,
    threshold: Option<f64>,
) -> Want {
    Want {
        rule: rule.to_owned(),
        device: device.to_owned(),
        channel: channel.map(str::to_owned),
        change: format!("{change:?}"),
        severity,
        value: round(value),
        threshold: round(threshold),
        pulse: false,
    }
}

fn fired(
    rule: &str,
    device: &str,
    channel: Option<&str>,
    severity: Severity,
    value: Option<f64>,
    threshold: Option<f64>,
) -> Want {
    want(
        Change::Fired,
        rule,
        device,
        channel,
        severity,
        value,
        threshold,
    )
}

fn cleared(
    rule: &str,
    device: &str,
    channel: Option<&str>,
    severity: Severity,
    value: Option<f64>,
    threshold: Option<f64>,
) -> Want {
    want(
        Change::Cleared,
        rule,
        device,
        channel,
        severity,
        value,
        threshold,
    )
}

fn pulse(w: Want) -> Want {
    Want { pulse: true, ..w }
}

/// Asserts the transitions, in any order (timers run over a hash map).
#[track_caller]
fn check(got: &[Transition], want: &[Want]) {
    let mut g: Vec<Want> = got.iter().map(Want::from).collect();
    let mut w = want.to_vec();
    let by = |a: &Want, b: &Want| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal);
    g.sort_by(by);
    w.sort_by(by);
    assert_eq!(g, w, "full transitions: {got:#?}");
}

#[track_caller]
fn nothing(got: &[Transition]) {
    assert!(got.is_empty(), "expected no transition, got {got:#?}");
}

use Severity::{Critical, Info, Major, Minor};

// ---------------------------------------------------------------- water_pressure.low --------

#[test]
fn pressure_low_fires_on_a_reading_after_the_hold() {
    let mut h = H::new();
    h.daily("plain", "water_pressure", "wp-1");
    let low = |v| {
        fired(
            "water_pressure.low",
            "wp-1",
            None,
            Major,
            Some(v),
            Some(0.10),
        )
    };
    nothing(&h.pressure(T0, "plain", "wp-1", 0.05));
    nothing(&h.pressure(T0 + 30 * SEC, "plain", "wp-1", 0.06));
    nothing(&h.pressure(T0 + 60 * SEC - MS, "plain", "wp-1", 0.05));
    let got = h.pressure(T0 + 60 * SEC, "plain", "wp-1", 0.04);
    check(&got, &[low(0.04)]);
    assert_eq!(got[0].since, T0);
    assert_eq!(got[0].at, T0 + 60 * SEC);
    assert_eq!(got[0].building, "plain");
    assert_eq!(got[0].kind, Kind::WaterPressure);
    assert!(!got[0].pulse);
    // Still low: no second alert, neither by readings nor by the timer.
    nothing(&h.pressure(T0 + 61 * SEC, "plain", "wp-1", 0.05));
    nothing(&h.ticks(T0 + 61 * SEC, T0 + 2 * HOUR, 10 * SEC));
    nothing(&h.pressure(T0 + 2 * HOUR, "plain", "wp-1", 0.03));
}

#[test]
fn pressure_low_fires_on_the_timer_without_a_new_reading() {
    let mut h = H::new();
    h.daily("plain", "water_pressure", "wp-1");
    nothing(&h.pressure(T0, "plain", "wp-1", 0.05));
    nothing(&h.tick(T0 + 30 * SEC));
    nothing(&h.tick(T0 + 60 * SEC - MS));
    let got = h.tick(T0 + 60 * SEC);
    check(
        &got,
        &[fired(
            "water_pressure.low",
            "wp-1",
            None,
            Major,
            Some(0.05),
            Some(0.10),
        )],
    );
    assert_eq!((got[0].since, got[0].at), (T0, T0 + 60 * SEC));
    nothing(&h.ticks(T0 + 60 * SEC, T0 + HOUR, SEC));
}

#[test]
fn pressure_dip_shorter_than_the_hold_does_not_fire() {
    // Back at the clear level, or only back inside the hysteresis band: both end the dip.
    for back in [0.13, 0.11] {
        let mut h = H::new();
        h.daily("plain", "water_pressure", "wp-1");
        nothing(&h.pressure(T0, "plain", "wp-1", 0.15));
        nothing(&h.pressure(T0 + 10 * SEC, "plain", "wp-1", 0.08));
        nothing(&h.pressure(T0 + 69 * SEC, "plain", "wp-1", back));
        nothing(&h.ticks(T0 + 69 * SEC, T0 + HOUR, SEC));
        assert_eq!(h.engine.condition_count(), 0, "back at {back}");
        // A later dip starts its own hold.
        let t = T0 + HOUR;
        nothing(&h.pressure(t, "plain", "wp-1", 0.08));
        nothing(&h.tick(t + 60 * SEC - MS));
        let got = h.tick(t + 60 * SEC);
        check(
            &got,
            &[fired(
                "water_pressure.low",
                "wp-1",
                None,
                Major,
                Some(0.08),
                Some(0.10),
            )],
        );
        assert_eq!(got[0].since, t);
    }
}

#[test]
fn pressure_low_hysteresis_band_neither_clears_nor_refires() {
    let mut h = H::new();
    let p = |h: &mut H, t, v| h.pressure(t, "plain", "wp-1", v);
    nothing(&p(&mut h, T0, 0.05));
    check(
        &h.tick(T0 + 60 * SEC),
        &[fired(
            "water_pressure.low",
            "wp-1",
            None,
            Major,
            Some(0.05),
            Some(0.10),
        )],
    );
    // Oscillating between the raise level (0.10) and the clear level (0.12), and dipping below
    // the raise level again: the alert stays as it is.
    let mut t = T0 + 2 * MIN;
    for v in [0.11, 0.10, 0.115, 0.1199, 0.09, 0.105, 0.08, 0.119] {
        nothing(&p(&mut h, t, v));
        nothing(&h.ticks(t, t + 5 * MIN, 30 * SEC));
        t += 6 * MIN;
    }
    let got = p(&mut h, t, 0.12);
    check(
        &got,
        &[cleared(
            "water_pressure.low",
            "wp-1",
            None,
            Major,
            Some(0.12),
            Some(0.10),
        )],
    );
    assert_eq!((got[0].since, got[0].at), (T0, t));
    assert_eq!(h.engine.condition_count(), 0);
    // Normal again: inside the band does nothing, a new breach holds anew.
    nothing(&p(&mut h, t + MIN, 0.11));
    nothing(&p(&mut h, t + 2 * MIN, 0.09));
    nothing(&h.tick(t + 3 * MIN - MS));
    check(
        &h.tick(t + 3 * MIN),
        &[fired(
            "water_pressure.low",
            "wp-1",
            None,
            Major,
            Some(0.09),
            Some(0.10),
        )],
    );
}

#[test]
fn pressure_low_levels_follow_the_building_class() {
    // (building, raise, clear): GB 50974-2014 5.2.2 by class; 0.10 when the class is unknown,
    // whether the building is registered without a class or not registered at all.
    let cases = [
        ("res", 0.07, 0.09),
        ("pub2", 0.07, 0.09),
        ("pub1", 0.10, 0.12),
        ("ind", 0.10, 0.12),
        ("tall", 0.15, 0.17),
        ("plain", 0.10, 0.12),
        ("nowhere", 0.10, 0.12),
    ];
    for (building, raise, clear) in cases {
        let mut h = H::registered();
        let dev = format!("wp-{building}");
        let w = |change, v| {
            want(
                change,
                "water_pressure.low",
                &dev,
                None,
                Major,
                Some(v),
                Some(raise),
            )
        };
        // Exactly at the raise level is not below it.
        nothing(&h.pressure(T0, building, &dev, raise));
        nothing(&h.ticks(T0, T0 + 5 * MIN, 10 * SEC));
        let t = T0 + 10 * MIN;
        let low = raise - 0.01;
        nothing(&h.pressure(t, building, &dev, low));
        nothing(&h.tick(t + 60 * SEC - MS));
        check(&h.tick(t + 60 * SEC), &[w(Change::Fired, low)]);
        let t = t + 2 * MIN;
        nothing(&h.pressure(t, building, &dev, clear - 0.005));
        nothing(&h.ticks(t, t + 5 * MIN, 10 * SEC));
        check(
            &h.pressure(t + 6 * MIN, building, &dev, clear),
            &[w(Change::Cleared, clear)],
        );
    }
}

#[test]
fn pressure_low_class_levels_keep_class_buildings_quiet_where_unknown_would_fire() {
    // 0.08 MPa is low for an unknown class (0.10) but fine for a residential building (0.07);
    // 0.12 MPa is fine for an unknown class but low for a class-1 building over 100 m (0.15).
    for (building, v, fires) in [
        ("plain", 0.08, true),
        ("res", 0.08, false),
        ("plain", 0.12, false),
        ("tall", 0.12, true),
    ] {
        let mut h = H::registered();
        nothing(&h.pressure(T0, building, "wp-x", v));
        let got = h.ticks(T0, T0 + 10 * MIN, 10 * SEC);
        assert_eq!(got.len(), usize::from(fires), "{building} {v}: {got:#?}");
    }
}

#[test]
fn pressure_low_device_override_beats_the_building_class() {
    // wp-override is in a residential building (0.07) but has raise 0.20, clear 0.25.
    let mut h = H::registered();
    let w = |change, v| {
        want(
            change,
            "water_pressure.low",
            "wp-override",
            None,
            Major,
            Some(v),
            Some(0.20),
        )
    };
    nothing(&h.pressure(T0, "res", "wp-override", 0.20));
    nothing(&h.ticks(T0, T0 + 5 * MIN, 10 * SEC));
    nothing(&h.pressure(T0 + 6 * MIN, "res", "wp-override", 0.19));
    nothing(&h.tick(T0 + 7 * MIN - MS));
    check(&h.tick(T0 + 7 * MIN), &[w(Change::Fired, 0.19)]);
    nothing(&h.pressure(T0 + 8 * MIN, "res", "wp-override", 0.245));
    nothing(&h.ticks(T0 + 8 * MIN, T0 + 20 * MIN, 10 * SEC));
    check(
        &h.pressure(T0 + 21 * MIN, "res", "wp-override", 0.25),
        &[w(Change::Cleared, 0.25)],
    );
    // A sibling device in the same building uses the class level.
    nothing(&h.pressure(T0 + 21 * MIN, "res", "wp-other", 0.19));
    nothing(&h.ticks(T0 + 21 * MIN, T0 + 30 * MIN, 10 * SEC));
}

// ---------------------------------------------------------------- plain thresholds ----------

struct Case {
    rule: &'static str,
    building: &'static str,
    kind: &'static str,
    device: &'static str,
    metric: &'static str,
    channel: Option<&'static str>,
    severity: Severity,
    hold: Millis,
    raise: f64,
    /// Exactly the raise level: not a breach (the rule is not inclusive).
    quiet: f64,
    breach: f64,
    /// Between raise and clear.
    band: f64,
    clear: f64,
}

impl Case {
    fn send(&self, h: &mut H, t: Millis, v: f64) -> Vec<Transition> {
        let values = match self.channel {
            Some(c) => format!(r#"{{"{}": {{"{c}": {v}}}}}"#, self.metric),
            None => format!(r#"{{"{}": {v}}}"#, self.metric),
        };
        h.send(
            t,
            &topic(self.building, self.kind, self.device, "telemetry"),
            &format!(r#"{{"values": {values}}}"#),
        )
    }

    fn want(&self, change: Change, v: f64) -> Want {
        want(
            change,
            self.rule,
            self.device,
            self.channel,
            self.severity,
            Some(v),
            Some(self.raise),
        )
    }
}

#[test]
fn threshold_rules_hold_fire_and_clear_with_hysteresis() {
    let cases = [
        Case {
            rule: "water_pressure.high",
            building: "plain",
            kind: "water_pressure",
            device: "wp-1",
            metric: "pressure_mpa",
            channel: None,
            severity: Major,
            hold: 60 * SEC,
            raise: 1.0,
            quiet: 1.0,
            breach: 1.01,
            band: 0.97,
            clear: 0.95,
        },
        Case {
            rule: "water_level.low",
            building: "plain",
            kind: "water_level",
            device: "wl-1",
            metric: "level_m",
            channel: None,
            severity: Major,
            hold: 120 * SEC,
            raise: 0.5,
            quiet: 0.5,
            breach: 0.49,
            band: 0.55,
            clear: 0.6,
        },
        Case {
            rule: "water_level.high",
            building: "plain",
            kind: "water_level",
            device: "wl-1",
            metric: "level_m",
            channel: None,
            severity: Minor,
            hold: 120 * SEC,
            raise: 5.0,
            quiet: 5.0,
            breach: 5.1,
            band: 4.95,
            clear: 4.9,
        },
        // Per-tank override: 1.1 m would be fine by the default (0.5 m).
        Case {
            rule: "water_level.low",
            building: "res",
            kind: "water_level",
            device: "wl-tank",
            metric: "level_m",
            channel: None,
            severity: Major,
            hold: 120 * SEC,
            raise: 1.2,
            quiet: 1.2,
            breach: 1.1,
            band: 1.3,
            clear: 1.4,
        },
        // Per-tank override: 3.1 m would be fine by the default (5.0 m).
        Case {
            rule: "water_level.high",
            building: "res",
            kind: "water_level",
            device: "wl-tank",
            metric: "level_m",
            channel: None,
            severity: Minor,
            hold: 120 * SEC,
            raise: 3.0,
            quiet: 3.0,
            breach: 3.1,
            band: 2.95,
            clear: 2.9,
        },
        Case {
            rule: "electrical.residual_current",
            building: "plain",
            kind: "electrical",
            device: "ef-1",
            metric: "residual_current_ma",
            channel: None,
            severity: Major,
            hold: 5 * SEC,
            raise: 300.0,
            quiet: 300.0,
            breach: 301.0,
            band: 260.0,
            clear: 250.0,
        },
        Case {
            rule: "electrical.temperature",
            building: "plain",
            kind: "electrical",
            device: "ef-1",
            metric: "temperature_c",
            channel: Some("L1"),
            severity: Major,
            hold: 10 * SEC,
            raise: 70.0,
            quiet: 70.0,
            breach: 75.0,
            band: 66.0,
            clear: 65.0,
        },
    ];
    for c in &cases {
        let ctx = format!("{} {}", c.rule, c.device);
        let mut h = H::registered();
        h.daily(c.building, c.kind, c.device);
        // At the raise level: nothing, however long.
        nothing(&c.send(&mut h, T0, c.quiet));
        nothing(&h.ticks(T0, T0 + c.hold + MIN, SEC));
        // A breach shorter than the hold: nothing.
        let t = T0 + 5 * MIN;
        nothing(&c.send(&mut h, t, c.breach));
        nothing(&c.send(&mut h, t + c.hold / 2, c.band));
        nothing(&h.ticks(t, t + c.hold + MIN, SEC));
        assert_eq!(h.engine.condition_count(), 0, "{ctx}");
        // A breach for the hold: fires on the timer.
        let t = T0 + 10 * MIN;
        nothing(&c.send(&mut h, t, c.breach));
        nothing(&h.tick(t + c.hold - MS));
        let got = h.tick(t + c.hold);
        check(&got, &[c.want(Change::Fired, c.breach)]);
        assert_eq!((got[0].since, got[0].at), (t, t + c.hold), "{ctx}");
        // Inside the band: still active, no repeat of the alert.
        let t = t + c.hold + SEC;
        nothing(&c.send(&mut h, t, c.band));
        nothing(&h.ticks(t, t + 10 * MIN, SEC));
        nothing(&c.send(&mut h, t + 10 * MIN, c.breach));
        // At the clear level: cleared at once (no clear hold).
        let t = t + 11 * MIN;
        check(
            &c.send(&mut h, t, c.clear),
            &[c.want(Change::Cleared, c.clear)],
        );
        nothing(&h.ticks(t, t + HOUR, 10 * SEC));
        assert_eq!(h.engine.condition_count(), 0, "{ctx}");
    }
}

#[test]
fn pressure_high_fires_on_a_later_reading_after_the_hold() {
    let mut h = H::new();
    nothing(&h.pressure(T0, "plain", "wp-1", 1.2));
    nothing(&h.pressure(T0 + 59 * SEC, "plain", "wp-1", 1.25));
    check(
        &h.pressure(T0 + 60 * SEC, "plain", "wp-1", 1.3),
        &[fired(
            "water_pressure.high",
            "wp-1",
            None,
            Major,
            Some(1.3),
            Some(1.0),
        )],
    );
}

#[test]
fn temperature_channels_alert_independently() {
    let mut h = H::new();
    let tel = topic("plain", "electrical", "ef-1", "telemetry");
    let send = |h: &mut H, t, l1: f64, l2: f64| {
        h.send(
            t,
            &tel,
            &format!(
                r#"{{"values": {{"residual_current_ma": 120, "temperature_c": {{"L1": {l1}, "L2": {l2}, "N": 35.0}}}}}}"#
            ),
        )
    };
    let temp = |change, ch, v| {
        want(
            change,
            "electrical.temperature",
            "ef-1",
            Some(ch),
            Major,
            Some(v),
            Some(70.0),
        )
    };
    nothing(&send(&mut h, T0, 75.0, 40.0));
    nothing(&send(&mut h, T0 + 5 * SEC, 76.0, 80.0));
    nothing(&h.tick(T0 + 10 * SEC - MS));
    check(&h.tick(T0 + 10 * SEC), &[temp(Change::Fired, "L1", 76.0)]);
    nothing(&h.tick(T0 + 15 * SEC - MS));
    check(&h.tick(T0 + 15 * SEC), &[temp(Change::Fired, "L2", 80.0)]);
    check(
        &send(&mut h, T0 + 20 * SEC, 60.0, 81.0),
        &[temp(Change::Cleared, "L1", 60.0)],
    );
    nothing(&h.ticks(T0 + 20 * SEC, T0 + 10 * MIN, SEC));
    check(
        &send(&mut h, T0 + 11 * MIN, 60.0, 64.0),
        &[temp(Change::Cleared, "L2", 64.0)],
    );
    assert_eq!(h.engine.condition_count(), 0);
}

// ---------------------------------------------------------------- water_pressure.drop -------

fn drop_w(change: Change, v: f64) -> Want {
    want(
        change,
        "water_pressure.drop",
        "wp-1",
        None,
        Major,
        Some(v),
        Some(0.10),
    )
}

#[test]
fn pressure_drop_fires_at_once_and_clears_a_minute_after_the_last_drop() {
    let mut h = H::new();
    h.daily("plain", "water_pressure", "wp-1");
    nothing(&h.pressure(T0, "plain", "wp-1", 0.30));
    nothing(&h.pressure(T0 + 20 * SEC, "plain", "wp-1", 0.25));
    let got = h.pressure(T0 + 40 * SEC, "plain", "wp-1", 0.19);
    check(&got, &[drop_w(Change::Fired, 0.19)]);
    assert_eq!((got[0].since, got[0].at), (T0 + 40 * SEC, T0 + 40 * SEC));
    // No further drop: cleared by the timer 60 s later.
    nothing(&h.tick(T0 + 100 * SEC - MS));
    check(&h.tick(T0 + 100 * SEC), &[drop_w(Change::Cleared, 0.19)]);
    nothing(&h.ticks(T0 + 100 * SEC, T0 + HOUR, 10 * SEC));
    assert_eq!(h.engine.condition_count(), 0);
}

#[test]
fn pressure_drop_further_drops_extend_the_alert() {
    let mut h = H::new();
    nothing(&h.pressure(T0, "plain", "wp-1", 0.60));
    check(
        &h.pressure(T0 + 10 * SEC, "plain", "wp-1", 0.45),
        &[drop_w(Change::Fired, 0.45)],
    );
    // A second drop 50 s later: one alert, refreshed.
    nothing(&h.pressure(T0 + 60 * SEC, "plain", "wp-1", 0.30));
    nothing(&h.tick(T0 + 70 * SEC));
    nothing(&h.tick(T0 + 120 * SEC - MS));
    check(&h.tick(T0 + 120 * SEC), &[drop_w(Change::Cleared, 0.30)]);
}

#[test]
fn pressure_drop_boundaries() {
    // (readings as (seconds after T0, MPa), fires)
    let cases: [(&[(i64, f64)], bool); 4] = [
        // Exactly 0.10 within exactly 60 s: fires (float noise must not hide it).
        (&[(0, 0.30), (60, 0.20)], true),
        // 0.09 within 60 s: not enough.
        (&[(0, 0.30), (30, 0.21)], false),
        // 0.15 over 120 s, never 0.10 within 60 s: a slow fall is not a drop.
        (&[(0, 0.30), (40, 0.25), (80, 0.20), (120, 0.15)], false),
        // 0.10 but over 61 s.
        (&[(0, 0.30), (61, 0.20)], false),
    ];
    for (readings, fires) in cases {
        let mut h = H::new();
        let mut got = Vec::new();
        for &(s, v) in readings {
            got.extend(h.pressure(T0 + s * SEC, "plain", "wp-1", v));
        }
        let last = readings.last().unwrap().1;
        if fires {
            check(&got, &[drop_w(Change::Fired, last)]);
        } else {
            nothing(&got);
        }
    }
}

#[test]
fn pressure_drop_to_low_raises_both_alerts() {
    let mut h = H::new();
    nothing(&h.pressure(T0, "plain", "wp-1", 0.30));
    check(
        &h.pressure(T0 + 30 * SEC, "plain", "wp-1", 0.05),
        &[drop_w(Change::Fired, 0.05)],
    );
    check(
        &h.tick(T0 + 90 * SEC),
        &[
            drop_w(Change::Cleared, 0.05),
            fired(
                "water_pressure.low",
                "wp-1",
                None,
                Major,
                Some(0.05),
                Some(0.10),
            ),
        ],
    );
}

// ---------------------------------------------------------------- electrical.arc ------------

fn arc_w(change: Change, value: Option<f64>, threshold: Option<f64>) -> Want {
    want(
        change,
        "electrical.arc",
        "ef-1",
        None,
        Major,
        value,
        threshold,
    )
}

#[test]
fn arc_count_fires_at_fourteen_and_clears_after_a_minute_below() {
    let mut h = H::new();
    nothing(&h.arc(T0, 13.0));
    nothing(&h.ticks(T0, T0 + MIN, SEC));
    // >= 14 is inclusive and there is no hold.
    let got = h.arc(T0 + 2 * MIN, 14.0);
    check(&got, &[arc_w(Change::Fired, Some(14.0), Some(14.0))]);
    assert_eq!(got[0].at, T0 + 2 * MIN);
    let t = T0 + 2 * MIN;
    nothing(&h.arc(t + SEC, 30.0));
    // Below 14, then back at 14 before the minute is out: still active.
    nothing(&h.arc(t + 2 * SEC, 13.0));
    nothing(&h.tick(t + 61 * SEC));
    nothing(&h.arc(t + 30 * SEC, 14.0));
    nothing(&h.tick(t + 90 * SEC));
    // Below 14 for a full minute: cleared by the timer.
    nothing(&h.arc(t + 100 * SEC, 5.0));
    nothing(&h.arc(t + 130 * SEC, 2.0));
    nothing(&h.tick(t + 160 * SEC - MS));
    check(
        &h.tick(t + 160 * SEC),
        &[arc_w(Change::Cleared, Some(2.0), Some(14.0))],
    );
    assert_eq!(h.engine.condition_count(), 0);
}

#[test]
fn arc_count_clears_on_a_reading_after_a_minute_below() {
    let mut h = H::new();
    check(
        &h.arc(T0, 20.0),
        &[arc_w(Change::Fired, Some(20.0), Some(14.0))],
    );
    nothing(&h.arc(T0 + SEC, 0.0));
    nothing(&h.arc(T0 + 60 * SEC, 0.0));
    check(
        &h.arc(T0 + 61 * SEC, 1.0),
        &[arc_w(Change::Cleared, Some(1.0), Some(14.0))],
    );
}

#[test]
fn arc_count_and_arc_fault_share_one_alert_count_clears_last() {
    let mut h = H::new();
    let mut all = Vec::new();
    let got = h.arc_fault(T0, "start");
    check(&got, &[arc_w(Change::Fired, None, None)]);
    all.extend(got);
    all.extend(h.arc(T0 + SEC, 15.0));
    all.extend(h.arc(T0 + 2 * SEC, 40.0));
    all.extend(h.arc_fault(T0 + 3 * SEC, "end"));
    all.extend(h.arc(T0 + 4 * SEC, 3.0));
    all.extend(h.ticks(T0 + 4 * SEC, T0 + 64 * SEC - MS, SEC));
    assert_eq!(all.len(), 1, "{all:#?}");
    let got = h.tick(T0 + 64 * SEC);
    check(&got, &[arc_w(Change::Cleared, Some(3.0), Some(14.0))]);
    assert_eq!(got[0].since, T0 + SEC);
    assert_eq!(h.engine.condition_count(), 0);
    // Quiet again: a new arc is a new alert.
    check(
        &h.arc(T0 + 10 * MIN, 14.0),
        &[arc_w(Change::Fired, Some(14.0), Some(14.0))],
    );
}

#[test]
fn arc_count_and_arc_fault_share_one_alert_event_clears_last() {
    let mut h = H::new();
    check(
        &h.arc(T0, 20.0),
        &[arc_w(Change::Fired, Some(20.0), Some(14.0))],
    );
    nothing(&h.arc_fault(T0 + SEC, "start"));
    nothing(&h.arc(T0 + 2 * SEC, 0.0));
    // The count clears after a minute below 14, but the detector still reports an arc fault.
    nothing(&h.ticks(T0 + 2 * SEC, T0 + 10 * MIN, SEC));
    assert_eq!(h.engine.condition_count(), 1);
    // The arc fault starting again while active changes nothing.
    nothing(&h.arc_fault(T0 + 10 * MIN, "start"));
    check(
        &h.arc_fault(T0 + 11 * MIN, "end"),
        &[arc_w(Change::Cleared, None, None)],
    );
    assert_eq!(h.engine.condition_count(), 0);
}

#[test]
fn arc_fault_while_the_count_is_clearing_keeps_one_alert() {
    let mut h = H::new();
    check(
        &h.arc(T0, 20.0),
        &[arc_w(Change::Fired, Some(20.0), Some(14.0))],
    );
    nothing(&h.arc(T0 + SEC, 0.0));
    // The count is waiting out its clear hold when the detector raises its own alarm.
    nothing(&h.arc_fault(T0 + 30 * SEC, "start"));
    nothing(&h.ticks(T0 + 30 * SEC, T0 + 5 * MIN, SEC));
    check(
        &h.arc_fault(T0 + 6 * MIN, "end"),
        &[arc_w(Change::Cleared, None, None)],
    );
}

// ---------------------------------------------------------------- events --------------------

fn lane(h: &mut H, t: Millis, json: &str) -> Vec<Transition> {
    h.event(t, "plain", "fire_lane", "cam-1", json)
}

const BLOCKED_START: &str = r#"{"event": "fire_lane_blocked", "state": "start", "zone": "north-lane", "confidence": 0.93, "snapshot_url": "https://cam.example/s/1.jpg"}"#;
const BLOCKED_END: &str = r#"{"event": "fire_lane_blocked", "state": "end", "zone": "north-lane"}"#;

/// The blocked-lane alert of [`BLOCKED_START`]: its value is the confidence of the start.
fn blocked(change: Change) -> Want {
    want(
        change,
        "fire_lane.blocked",
        "cam-1",
        Some("north-lane"),
        Major,
        Some(0.93),
        None,
    )
}

#[test]
fn fire_lane_blocked_shorter_than_the_dwell_is_nothing() {
    let mut h = H::new();
    h.daily("plain", "fire_lane", "cam-1");
    nothing(&lane(&mut h, T0, BLOCKED_START));
    nothing(&h.ticks(T0, T0 + 59 * SEC, SEC));
    nothing(&lane(&mut h, T0 + 60 * SEC - MS, BLOCKED_END));
    nothing(&h.ticks(T0 + 60 * SEC, T0 + HOUR, SEC));
    assert_eq!(h.engine.condition_count(), 0);
}

#[test]
fn fire_lane_blocked_fires_after_the_dwell_repeats_and_clears_on_end() {
    let mut h = H::new();
    h.daily("plain", "fire_lane", "cam-1");
    nothing(&lane(&mut h, T0, BLOCKED_START));
    // The camera re-sends start: the dwell still counts from the first one.
    nothing(&lane(&mut h, T0 + 30 * SEC, BLOCKED_START));
    nothing(&h.tick(T0 + 60 * SEC - MS));
    let got = h.tick(T0 + 60 * SEC);
    check(&got, &[blocked(Change::Fired)]);
    assert_eq!((got[0].since, got[0].at), (T0, T0 + 60 * SEC));
    // An hour of ticks every second: a reminder every 300 s after firing.
    let got = h.ticks(T0 + 60 * SEC + SEC, T0 + HOUR, SEC);
    let ats: Vec<Millis> = got.iter().map(|t| (t.at - T0) / SEC).collect();
    assert_eq!(
        ats,
        (1..=11).map(|i| 60 + 300 * i).collect::<Vec<_>>(),
        "{got:#?}"
    );
    for t in &got {
        check(std::slice::from_ref(t), &[blocked(Change::Repeat)]);
        assert_eq!(t.since, T0);
    }
    // A start while active neither fires again nor resets the repeat.
    nothing(&lane(&mut h, T0 + HOUR + SEC, BLOCKED_START));
    check(&h.tick(T0 + 3660 * SEC), &[blocked(Change::Repeat)]);
    let got = lane(&mut h, T0 + 3700 * SEC, BLOCKED_END);
    check(&got, &[blocked(Change::Cleared)]);
    assert_eq!(got[0].since, T0);
    nothing(&h.ticks(T0 + 3700 * SEC, T0 + 2 * HOUR, SEC));
    assert_eq!(h.engine.condition_count(), 0);
}

#[test]
fn fire_lane_blocked_covers_exits_per_zone() {
    let mut h = H::new();
    nothing(&lane(
        &mut h,
        T0,
        r#"{"event": "exit_blocked", "state": "start", "zone": "exit-2"}"#,
    ));
    nothing(&lane(
        &mut h,
        T0 + 10 * SEC,
        r#"{"event": "exit_locked", "state": "start", "zone": "exit-3"}"#,
    ));
    check(
        &h.tick(T0 + 60 * SEC),
        &[fired(
            "fire_lane.blocked",
            "cam-1",
            Some("exit-2"),
            Major,
            None,
            None,
        )],
    );
    check(
        &h.tick(T0 + 70 * SEC),
        &[fired(
            "fire_lane.blocked",
            "cam-1",
            Some("exit-3"),
            Major,
            None,
            None,
        )],
    );
}

#[test]
fn fire_lane_ebike_ignores_low_confidence() {
    let mut h = H::new();
    h.daily("plain", "fire_lane", "cam-1");
    let ebike = |change, zone, value| {
        want(
            change,
            "fire_lane.ebike",
            "cam-1",
            Some(zone),
            Major,
            value,
            Some(0.8),
        )
    };
    nothing(&lane(
        &mut h,
        T0,
        r#"{"event": "ebike_in_elevator", "state": "start", "zone": "lift-1", "confidence": 0.79}"#,
    ));
    nothing(&h.ticks(T0, T0 + 10 * MIN, SEC));
    assert_eq!(h.engine.condition_count(), 0);
    // 0.8 is enough, and there is no dwell.
    check(
        &lane(
            &mut h,
            T0 + 11 * MIN,
            r#"{"event": "ebike_in_elevator", "state": "start", "zone": "lift-1", "confidence": 0.8}"#,
        ),
        &[ebike(Change::Fired, "lift-1", Some(0.8))],
    );
    // The end counts whatever its confidence.
    check(
        &lane(
            &mut h,
            T0 + 12 * MIN,
            r#"{"event": "ebike_in_elevator", "state": "end", "zone": "lift-1", "confidence": 0.3}"#,
        ),
        &[ebike(Change::Cleared, "lift-1", Some(0.8))],
    );
    // No confidence at all is not a low confidence.
    check(
        &lane(
            &mut h,
            T0 + 13 * MIN,
            r#"{"event": "ebike_charging", "state": "start", "zone": "corridor-3"}"#,
        ),
        &[ebike(Change::Fired, "corridor-3", None)],
    );
    // An end without a start is nothing.
    nothing(&lane(
        &mut h,
        T0 + 14 * MIN,
        r#"{"event": "ebike_in_elevator", "state": "end", "zone": "lift-9"}"#,
    ));
}

#[test]
fn fire_lane_smoke_and_flame_are_critical_at_once() {
    let mut h = H::new();
    h.daily("plain", "fire_lane", "cam-1");
    let fire = |change, zone, value| {
        want(
            change,
            "fire_lane.fire",
            "cam-1",
            Some(zone),
            Critical,
            value,
            None,
        )
    };
    check(
        &lane(
            &mut h,
            T0,
            r#"{"event": "smoke", "state": "start", "zone": "lobby", "confidence": 0.6}"#,
        ),
        &[fire(Change::Fired, "lobby", Some(0.6))],
    );
    check(
        &lane(
            &mut h,
            T0 + SEC,
            r#"{"event": "flame", "state": "start", "zone": "garage"}"#,
        ),
        &[fire(Change::Fired, "garage", None)],
    );
    nothing(&h.ticks(T0, T0 + HOUR, 10 * SEC));
    check(
        &lane(
            &mut h,
            T0 + HOUR,
            r#"{"event": "smoke", "state": "end", "zone": "lobby"}"#,
        ),
        &[fire(Change::Cleared, "lobby", Some(0.6))],
    );
}

fn uitd(h: &mut H, t: Millis, device: &str, json: &str) -> Vec<Transition> {
    h.event(t, "res", "transmitter", device, json)
}

const POINT: &str = r#"{"system_type": 1, "system_addr": 1, "component_type": 40, "component_addr": "0A000200", "description": "3F east corridor"}"#;

#[test]
fn transmitter_fire_alarms_are_per_zone_or_point_and_reset_clears_them_all() {
    let mut h = H::registered();
    let fa = |change, dev, ch: Option<&str>| {
        want(
            change,
            "transmitter.fire_alarm",
            dev,
            ch,
            Critical,
            None,
            None,
        )
    };
    // Channel: the point address when there is no zone.
    let got = uitd(
        &mut h,
        T0,
        "uitd-a",
        &format!(r#"{{"event": "fire_alarm", "state": "start", "point": {POINT}}}"#),
    );
    check(&got, &[fa(Change::Fired, "uitd-a", Some("0A000200"))]);
    assert!(
        got[0].message.contains("3F east corridor"),
        "{}",
        got[0].message
    );
    assert_eq!(got[0].building, "res");
    // The zone when there is one, even with a point.
    check(
        &uitd(
            &mut h,
            T0 + SEC,
            "uitd-a",
            &format!(
                r#"{{"event": "fire_alarm", "state": "start", "zone": "Z2", "point": {POINT}}}"#
            ),
        ),
        &[fa(Change::Fired, "uitd-a", Some("Z2"))],
    );
    // A manual alarm on the same point is the same alert.
    nothing(&uitd(
        &mut h,
        T0 + 2 * SEC,
        "uitd-a",
        &format!(r#"{{"event": "manual_alarm", "state": "start", "point": {POINT}}}"#),
    ));
    // Neither zone nor point: no channel.
    check(
        &uitd(
            &mut h,
            T0 + 3 * SEC,
            "uitd-a",
            r#"{"event": "manual_alarm", "state": "start"}"#,
        ),
        &[fa(Change::Fired, "uitd-a", None)],
    );
    check(
        &uitd(
            &mut h,
            T0 + 4 * SEC,
            "uitd-a",
            r#"{"event": "main_power_fault", "state": "start"}"#,
        ),
        &[fired(
            "transmitter.mains_fault",
            "uitd-a",
            None,
            Minor,
            None,
            None,
        )],
    );
    check(
        &uitd(
            &mut h,
            T0 + 5 * SEC,
            "uitd-a",
            r#"{"event": "supervisory", "state": "start", "zone": "Z9"}"#,
        ),
        &[fired(
            "transmitter.supervisory",
            "uitd-a",
            Some("Z9"),
            Minor,
            None,
            None,
        )],
    );
    // Another transmitter's alarm is not touched by this one's reset.
    check(
        &uitd(
            &mut h,
            T0 + 6 * SEC,
            "uitd-b",
            r#"{"event": "fire_alarm", "state": "start", "zone": "Z1"}"#,
        ),
        &[fa(Change::Fired, "uitd-b", Some("Z1"))],
    );
    nothing(&h.ticks(T0, T0 + 80 * SEC, SEC));
    let got = uitd(
        &mut h,
        T0 + 80 * SEC,
        "uitd-a",
        r#"{"event": "reset", "state": "pulse"}"#,
    );
    check(
        &got,
        &[
            fa(Change::Cleared, "uitd-a", Some("0A000200")),
            fa(Change::Cleared, "uitd-a", Some("Z2")),
            fa(Change::Cleared, "uitd-a", None),
            cleared("transmitter.mains_fault", "uitd-a", None, Minor, None, None),
            cleared(
                "transmitter.supervisory",
                "uitd-a",
                Some("Z9"),
                Minor,
                None,
                None,
            ),
        ],
    );
    assert!(got.iter().all(|t| t.at == T0 + 80 * SEC));
    assert_eq!(h.engine.condition_count(), 1);
    // A second reset has nothing left to clear.
    nothing(&uitd(
        &mut h,
        T0 + 81 * SEC,
        "uitd-a",
        r#"{"event": "reset", "state": "pulse"}"#,
    ));
    check(
        &uitd(
            &mut h,
            T0 + 82 * SEC,
            "uitd-b",
            r#"{"event": "reset", "state": "start"}"#,
        ),
        &[fa(Change::Cleared, "uitd-b", Some("Z1"))],
    );
    assert_eq!(h.engine.condition_count(), 0);
}

#[test]
fn a_point_shielded_for_a_day_is_a_minor_alert_and_a_shorter_shield_is_not() {
    let mut h = H::registered();
    let shield = |state: &str, zone: &str| {
        format!(r#"{{"event": "shield", "state": "{state}", "zone": "{zone}"}}"#)
    };
    // The transmitter falls silent and goes offline meanwhile: only the shield rule matters here.
    let only = |v: Vec<Transition>| -> Vec<Transition> {
        v.into_iter()
            .filter(|t| t.rule == "transmitter.shielded")
            .collect()
    };
    // Shielded for an hour: no alert at all.
    nothing(&uitd(&mut h, T0, "uitd-a", &shield("start", "Z1")));
    nothing(&uitd(&mut h, T0, "uitd-a", &shield("start", "Z2")));
    nothing(&only(h.ticks(T0, T0 + 3600 * SEC, 60 * SEC)));
    nothing(&only(uitd(
        &mut h,
        T0 + 3600 * SEC,
        "uitd-a",
        &shield("end", "Z1"),
    )));
    // Z2 stays shielded: at one day it is an alert, cleared when it is unshielded.
    nothing(&only(h.ticks(T0 + 3600 * SEC, T0 + 86_399 * SEC, 60 * SEC)));
    check(
        &only(h.tick(T0 + 86_400 * SEC)),
        &[fired(
            "transmitter.shielded",
            "uitd-a",
            Some("Z2"),
            Minor,
            None,
            None,
        )],
    );
    check(
        &only(uitd(
            &mut h,
            T0 + 90_000 * SEC,
            "uitd-a",
            &shield("end", "Z2"),
        )),
        &[cleared(
            "transmitter.shielded",
            "uitd-a",
            Some("Z2"),
            Minor,
            None,
            None,
        )],
    );
}

#[test]
fn transmitter_supervisory_severity_by_event() {
    let cases = [
        ("supervisory", Minor),
        ("startup", Info),
        ("feedback", Info),
    ];
    let mut h = H::registered();
    for (i, (event, severity)) in cases.into_iter().enumerate() {
        let zone = format!("Z{i}");
        let t = T0 + i as Millis * SEC;
        check(
            &uitd(
                &mut h,
                t,
                "uitd-a",
                &format!(r#"{{"event": "{event}", "state": "start", "zone": "{zone}"}}"#),
            ),
            &[fired(
                "transmitter.supervisory",
                "uitd-a",
                Some(&zone),
                severity,
                None,
                None,
            )],
        );
        check(
            &uitd(
                &mut h,
                t + MIN,
                "uitd-a",
                &format!(r#"{{"event": "{event}", "state": "end", "zone": "{zone}"}}"#),
            ),
            &[cleared(
                "transmitter.supervisory",
                "uitd-a",
                Some(&zone),
                severity,
                None,
                None,
            )],
        );
    }
}

#[test]
fn pulse_events_fire_without_leaving_a_condition() {
    // (kind, device, payload, expected pulse alert)
    let cases: Vec<(&str, &str, &str, Option<Want>)> = vec![
        (
            "transmitter",
            "uitd-a",
            r#"{"event": "manual_alarm", "state": "pulse", "zone": "Z1"}"#,
            Some(fired(
                "transmitter.fire_alarm",
                "uitd-a",
                Some("Z1"),
                Critical,
                None,
                None,
            )),
        ),
        (
            "fire_lane",
            "cam-1",
            r#"{"event": "smoke", "state": "pulse", "zone": "lobby", "confidence": 0.9}"#,
            Some(fired(
                "fire_lane.fire",
                "cam-1",
                Some("lobby"),
                Critical,
                Some(0.9),
                None,
            )),
        ),
        (
            "fire_lane",
            "cam-1",
            r#"{"event": "ebike_charging", "state": "pulse", "zone": "c3", "confidence": 0.85}"#,
            Some(fired(
                "fire_lane.ebike",
                "cam-1",
                Some("c3"),
                Major,
                Some(0.85),
                None,
            )),
        ),
        (
            "electrical",
            "ef-1",
            r#"{"event": "arc_fault", "state": "pulse"}"#,
            Some(fired("electrical.arc", "ef-1", None, Major, None, None)),
        ),
        (
            "transmitter",
            "uitd-a",
            r#"{"event": "startup", "state": "pulse", "zone": "Z4"}"#,
            Some(fired(
                "transmitter.supervisory",
                "uitd-a",
                Some("Z4"),
                Info,
                None,
                None,
            )),
        ),
        // Below the confidence floor: nothing.
        (
            "fire_lane",
            "cam-1",
            r#"{"event": "ebike_charging", "state": "pulse", "zone": "c3", "confidence": 0.5}"#,
            None,
        ),
        // No rule for a self test.
        (
            "transmitter",
            "uitd-a",
            r#"{"event": "self_test", "state": "pulse"}"#,
            None,
        ),
    ];
    for (kind, device, json, expected) in cases {
        let mut h = H::registered();
        let building = if kind == "transmitter" {
            "res"
        } else {
            "plain"
        };
        let got = h.event(T0, building, kind, device, json);
        match expected {
            Some(w) => {
                check(&got, &[pulse(w)]);
                assert_eq!((got[0].since, got[0].at), (T0, T0));
            }
            None => nothing(&got),
        }
        assert_eq!(h.engine.condition_count(), 0, "{json}");
        nothing(&h.ticks(T0, T0 + 20 * SEC, SEC));
    }
}

#[test]
fn events_that_never_end_expire() {
    // Hikvision-style cameras re-send start about every second and never send end.
    let rules = Rules::parse(
        r#"
[[event]]
id = "fire_lane.blocked"
kind = "fire_lane"
events = ["fire_lane_blocked"]
severity = "major"
expire_s = 5
"#,
    )
    .unwrap_or_else(|p| panic!("{p:?}"));
    let mut h = H::with(rules, "");
    let start = r#"{"event": "fire_lane_blocked", "state": "start", "zone": "z"}"#;
    let w = |change| {
        want(
            change,
            "fire_lane.blocked",
            "cam-1",
            Some("z"),
            Major,
            None,
            None,
        )
    };
    check(&lane(&mut h, T0, start), &[w(Change::Fired)]);
    for s in 1..=30 {
        nothing(&lane(&mut h, T0 + s * SEC, start));
        nothing(&h.tick(T0 + s * SEC + 500));
    }
    nothing(&h.tick(T0 + 35 * SEC - MS));
    check(&h.tick(T0 + 35 * SEC), &[w(Change::Cleared)]);
    assert_eq!(h.engine.condition_count(), 0);
}

// ---------------------------------------------------------------- device.offline ------------

fn offline(change: Change, device: &str, threshold: Option<f64>) -> Want {
    want(
        change,
        "device.offline",
        device,
        None,
        Minor,
        None,
        threshold,
    )
}

#[test]
fn transmitter_goes_offline_after_ninety_seconds_of_silence() {
    let mut h = H::registered();
    nothing(&uitd(
        &mut h,
        T0,
        "uitd-a",
        r#"{"event": "self_test", "state": "pulse"}"#,
    ));
    nothing(&h.ticks(T0, T0 + 89 * SEC, SEC));
    nothing(&h.tick(T0 + 90 * SEC - MS));
    let got = h.tick(T0 + 90 * SEC + MS);
    check(&got, &[offline(Change::Fired, "uitd-a", Some(90.0))]);
    assert_eq!(got[0].since, T0);
    assert_eq!(got[0].building, "res");
    assert_eq!(got[0].kind, Kind::Transmitter);
    assert!(h.engine.device("uitd-a").unwrap().offline);
    // Reported once.
    nothing(&h.ticks(T0 + 91 * SEC, T0 + HOUR, SEC));
    // Any message clears it.
    let got = h.send(
        T0 + HOUR,
        &topic("res", "transmitter", "uitd-a", "telemetry"),
        r#"{"values": {"analog": 1.5}}"#,
    );
    check(&got, &[offline(Change::Cleared, "uitd-a", Some(90.0))]);
    assert!(!h.engine.device("uitd-a").unwrap().offline);
    // And the timer starts again from that message.
    nothing(&h.tick(T0 + HOUR + 90 * SEC - MS));
    check(
        &h.tick(T0 + HOUR + 90 * SEC + MS),
        &[offline(Change::Fired, "uitd-a", Some(90.0))],
    );
}

#[test]
fn offline_timeout_by_kind_power_and_interval() {
    // (building, kind, device, status payloads, timeout in s)
    let cases: [(&str, &str, &str, &[&str], i64); 14] = [
        ("plain", "transmitter", "t-1", &[r#"{"online": true}"#], 90),
        (
            "plain",
            "water_pressure",
            "p-1",
            &[r#"{"online": true}"#],
            900,
        ),
        ("plain", "water_level", "l-1", &[r#"{"online": true}"#], 900),
        ("plain", "electrical", "e-1", &[r#"{"online": true}"#], 900),
        ("plain", "fire_lane", "c-1", &[r#"{"online": true}"#], 300),
        // interval_s announced: 3 × interval.
        (
            "plain",
            "transmitter",
            "t-2",
            &[r#"{"interval_s": 60}"#],
            180,
        ),
        ("plain", "fire_lane", "c-2", &[r#"{"interval_s": 60}"#], 180),
        // A battery device with an unknown interval: 3 h; a transmitter stays at 90 s.
        (
            "plain",
            "water_pressure",
            "p-2",
            &[r#"{"battery_pct": 80}"#],
            10_800,
        ),
        (
            "plain",
            "transmitter",
            "t-3",
            &[r#"{"battery_pct": 80}"#],
            90,
        ),
        // From the registry: battery power; mains power beats a battery level.
        (
            "res",
            "water_pressure",
            "wp-battery",
            &[r#"{"online": true}"#],
            10_800,
        ),
        (
            "res",
            "water_pressure",
            "wp-mains",
            &[r#"{"battery_pct": 80}"#],
            900,
        ),
        // The registry interval, until the device announces its own.
        (
            "res",
            "water_pressure",
            "wp-interval",
            &[r#"{"online": true}"#],
            5400,
        ),
        (
            "res",
            "water_pressure",
            "wp-interval",
            &[r#"{"online": true}"#, r#"{"interval_s": 60}"#],
            180,
        ),
        // A later status without interval_s keeps the announced one.
        (
            "plain",
            "water_level",
            "l-2",
            &[r#"{"interval_s": 600}"#, r#"{"battery_pct": 50}"#],
            1800,
        ),
    ];
    for (building, kind, device, statuses, timeout) in cases {
        let mut h = H::registered();
        for s in statuses {
            h.status(T0, building, kind, device, s);
        }
        let timeout = timeout * SEC;
        nothing(&h.tick(T0 + timeout / 2));
        nothing(&h.tick(T0 + timeout - MS));
        let got = h.tick(T0 + timeout + MS);
        check(
            &got,
            &[offline(Change::Fired, device, Some((timeout / SEC) as f64))],
        );
        assert_eq!(got[0].since, T0, "{device}");
    }
}

#[test]
fn last_will_is_offline_at_once() {
    for retained in [false, true] {
        let mut h = H::registered();
        let status = topic("res", "transmitter", "uitd-a", "status");
        h.status(T0, "res", "transmitter", "uitd-a", r#"{"online": true}"#);
        let got = h
            .offer(T0 + 10 * SEC, &status, r#"{"online": false}"#, retained)
            .unwrap();
        check(&got, &[offline(Change::Fired, "uitd-a", None)]);
        assert_eq!(got[0].at, T0 + 10 * SEC);
        // Not reported again by the timer, nor by a second will.
        nothing(&h.ticks(T0 + 10 * SEC, T0 + HOUR, 10 * SEC));
        nothing(
            &h.offer(T0 + HOUR, &status, r#"{"online": false}"#, retained)
                .unwrap(),
        );
        check(
            &h.send(T0 + HOUR + SEC, &status, r#"{"online": true}"#),
            &[offline(Change::Cleared, "uitd-a", None)],
        );
    }
}

#[test]
fn retained_messages_are_no_sign_of_life() {
    let mut h = H::registered();
    let status = topic("res", "transmitter", "uitd-a", "status");
    h.status(T0, "res", "transmitter", "uitd-a", r#"{"online": true}"#);
    // The broker replays the retained status (e.g. after a reconnect).
    nothing(&h.send_retained(T0 + 60 * SEC, &status, r#"{"online": true}"#));
    nothing(&h.tick(T0 + 90 * SEC - MS));
    let got = h.tick(T0 + 90 * SEC + MS);
    check(&got, &[offline(Change::Fired, "uitd-a", Some(90.0))]);
    assert_eq!(got[0].since, T0);
    // Offline now: a retained replay does not bring it back, a live message does.
    nothing(&h.send_retained(T0 + 2 * MIN, &status, r#"{"online": true}"#));
    assert!(h.engine.device("uitd-a").unwrap().offline);
    check(
        &h.send(T0 + 3 * MIN, &status, r#"{"online": true}"#),
        &[offline(Change::Cleared, "uitd-a", Some(90.0))],
    );
    // A device only ever seen retained is not timed out.
    let mut h = H::registered();
    nothing(&h.send_retained(
        T0,
        &topic("plain", "fire_lane", "cam-9", "status"),
        r#"{"online": true, "interval_s": 60}"#,
    ));
    nothing(&h.ticks(T0, T0 + HOUR, MIN));
    // But the retained status still tells its interval.
    assert_eq!(h.engine.device("cam-9").unwrap().interval_s, Some(60));
}

// ---------------------------------------------------------------- accept: seq and binding ---

#[test]
fn seq_duplicates_gaps_late_arrivals_and_resets() {
    // (seq, accepted or why not, lost afterwards)
    let steps: &[(Option<u64>, Result<(), Reason>, u64)] = &[
        (Some(10), Ok(()), 0),
        (Some(11), Ok(()), 0),
        (Some(11), Err(Reason::Duplicate), 0),
        (Some(15), Ok(()), 3),
        (Some(13), Ok(()), 2),
        (Some(13), Err(Reason::Duplicate), 2),
        (Some(12), Ok(()), 1),
        (Some(14), Ok(()), 0),
        (Some(15), Err(Reason::Duplicate), 0),
        (Some(10), Err(Reason::Duplicate), 0),
        (None, Ok(()), 0),
        (Some(16), Ok(()), 0),
        (Some(20), Ok(()), 3),
        // The device restarted its counter.
        (Some(0), Ok(()), 3),
        (Some(1), Ok(()), 3),
        (Some(3), Ok(()), 4),
        (Some(2), Ok(()), 3),
        (Some(2), Err(Reason::Duplicate), 3),
    ];
    let mut h = H::new();
    let tel = topic("plain", "water_pressure", "wp-1", "telemetry");
    let (mut accepted, mut rejected) = (0, 0);
    for (i, &(seq, expect, lost)) in steps.iter().enumerate() {
        let json = match seq {
            Some(s) => format!(r#"{{"seq": {s}, "values": {{"pressure_mpa": 0.3}}}}"#),
            None => r#"{"values": {"pressure_mpa": 0.3}}"#.to_owned(),
        };
        let got = h
            .offer(T0 + i as Millis * SEC, &tel, &json, false)
            .map(|_| ());
        assert_eq!(got, expect, "step {i}: seq {seq:?}");
        match got {
            Ok(()) => accepted += 1,
            Err(_) => rejected += 1,
        }
        let d = h.engine.device("wp-1").unwrap();
        assert_eq!(d.lost, lost, "step {i}: seq {seq:?}");
    }
    let d = h.engine.device("wp-1").unwrap();
    assert_eq!((d.messages, d.rejected), (accepted, rejected));
    assert_eq!(d.out_of_order, 4);
    assert_eq!(d.max_seq, Some(3));
    assert!(h.quality("wp-1").contains(&"gaps"));
    assert!(h.quality("wp-1").contains(&"out_of_order"));
}

#[test]
fn seq_edge_cases() {
    // Each: a sequence of (seq, accepted or why not), then the expected lost count.
    type Steps = &'static [(u64, Result<(), Reason>)];
    let cases: [(Steps, u64); 6] = [
        // The first message redelivered (QoS 1).
        (&[(0, Ok(())), (0, Err(Reason::Duplicate))], 0),
        // After a counter reset, the reset message redelivered.
        (&[(7, Ok(())), (0, Ok(())), (0, Err(Reason::Duplicate))], 0),
        // A jump of exactly 64 keeps the previous highest in the window.
        (
            &[(100, Ok(())), (164, Ok(())), (100, Err(Reason::Duplicate))],
            63,
        ),
        (&[(100, Ok(())), (164, Ok(())), (101, Ok(()))], 62),
        // Far back (more than 1024): a counter that jumped, not a duplicate.
        (&[(5000, Ok(())), (10, Ok(())), (11, Ok(()))], 0),
        // A jump of 65: the message 64 back was lost and may still arrive.
        (&[(100, Ok(())), (165, Ok(())), (101, Ok(()))], 63),
    ];
    for (steps, lost) in cases {
        let mut h = H::new();
        let tel = topic("plain", "water_pressure", "wp-1", "telemetry");
        for (i, &(seq, expect)) in steps.iter().enumerate() {
            let json = format!(r#"{{"seq": {seq}, "values": {{"pressure_mpa": 0.3}}}}"#);
            let got = h
                .offer(T0 + i as Millis * SEC, &tel, &json, false)
                .map(|_| ());
            assert_eq!(got, expect, "{steps:?} step {i}");
        }
        assert_eq!(h.engine.device("wp-1").unwrap().lost, lost, "{steps:?}");
    }
}

#[test]
fn a_restarted_counter_is_not_taken_for_duplicates() {
    // firewatch first sees the device at seq 1 (seq 0 went by before it started); the device
    // reboots at seq 30 and counts from 0 again: every new message must be accepted.
    let mut h = H::new();
    let ev = topic("plain", "fire_lane", "cam-1", "event");
    let smoke = |seq: u64| {
        format!(r#"{{"seq": {seq}, "event": "smoke", "state": "pulse", "zone": "z{seq}"}}"#)
    };
    let mut t = T0;
    for seq in (1..=30).chain(0..=30) {
        t += SEC;
        let got = h.offer(t, &ev, &smoke(seq), false);
        assert_eq!(got.map(|g| g.len()), Ok(1), "seq {seq}");
    }
    let d = h.engine.device("cam-1").unwrap();
    assert_eq!((d.messages, d.lost, d.rejected), (61, 0, 0));
    assert_eq!(
        h.offer(t + SEC, &ev, &smoke(30), false),
        Err(Reason::Duplicate)
    );
}

#[test]
fn retained_messages_skip_the_seq_check() {
    let mut h = H::new();
    let status = topic("plain", "water_pressure", "wp-1", "status");
    h.send(T0, &status, r#"{"seq": 5, "online": true}"#);
    // The broker replays the retained copy of seq 5: not a duplicate, nothing lost.
    h.send_retained(T0 + SEC, &status, r#"{"seq": 5, "online": true}"#);
    h.send_retained(T0 + 2 * SEC, &status, r#"{"seq": 1, "online": true}"#);
    h.send(T0 + 3 * SEC, &status, r#"{"seq": 6, "online": true}"#);
    let d = h.engine.device("wp-1").unwrap();
    assert_eq!(
        (d.messages, d.rejected, d.lost, d.max_seq),
        (4, 0, 0, Some(6))
    );
}

#[test]
fn duplicates_are_not_evaluated() {
    let mut h = H::registered();
    let ev = topic("res", "transmitter", "uitd-a", "event");
    let json = r#"{"seq": 3, "event": "manual_alarm", "state": "pulse", "zone": "Z1"}"#;
    assert_eq!(h.offer(T0, &ev, json, false).unwrap().len(), 1);
    assert_eq!(h.offer(T0 + SEC, &ev, json, false), Err(Reason::Duplicate));
}

#[test]
fn binding_to_the_registry() {
    let mut h = H::registered();
    let tel = |b: &str, k: &str, d: &str| topic(b, k, d, "telemetry");
    let p = r#"{"values": {"pressure_mpa": 0.3}}"#;
    // wp-mains is registered in "res" as water_pressure.
    assert_eq!(
        h.offer(T0, &tel("plain", "water_pressure", "wp-mains"), p, false),
        Err(Reason::Binding)
    );
    assert_eq!(
        h.offer(
            T0 + SEC,
            &tel("res", "water_level", "wp-mains"),
            r#"{"values": {"level_m": 2}}"#,
            false
        ),
        Err(Reason::Binding)
    );
    assert!(h
        .offer(
            T0 + 2 * SEC,
            &tel("res", "water_pressure", "wp-mains"),
            p,
            false
        )
        .is_ok());
    let d = h.engine.device("wp-mains").unwrap();
    assert_eq!((d.messages, d.rejected), (1, 2));
    // The record keeps the registered binding, whatever topic was seen first.
    assert_eq!((d.building.as_str(), d.kind), ("res", Kind::WaterPressure));
    // So does its offline alert.
    let got = h.tick(T0 + 2 * SEC + 900 * SEC + MS);
    check(&got, &[offline(Change::Fired, "wp-mains", Some(900.0))]);
    assert_eq!(
        (got[0].building.as_str(), got[0].kind),
        ("res", Kind::WaterPressure)
    );

    // Unregistered devices are bound to where they were first seen.
    assert!(h
        .offer(T0, &tel("plain", "water_pressure", "wp-free"), p, false)
        .is_ok());
    assert_eq!(
        h.offer(T0 + SEC, &tel("res", "water_pressure", "wp-free"), p, false),
        Err(Reason::Binding)
    );
    assert_eq!(
        h.offer(
            T0 + 2 * SEC,
            &tel("plain", "water_level", "wp-free"),
            r#"{"values": {"level_m": 2}}"#,
            false
        ),
        Err(Reason::Binding)
    );
    assert!(h
        .offer(
            T0 + 3 * SEC,
            &tel("plain", "water_pressure", "wp-free"),
            p,
            false
        )
        .is_ok());
    let d = h.engine.device("wp-free").unwrap();
    assert_eq!((d.messages, d.rejected), (2, 2));
    assert_eq!(d.building, "plain");
}

#[test]
fn strict_registry_rejects_unknown_devices() {
    let registry = r#"
strict = true

[[building]]
id = "res"
class = "residential"

[[device]]
id = "wp-1"
building = "res"
kind = "water_pressure"
"#;
    let mut h = H::with(shipped_rules(), registry);
    let p = r#"{"values": {"pressure_mpa": 0.05}}"#;
    assert_eq!(
        h.offer(
            T0,
            &topic("res", "water_pressure", "ghost", "telemetry"),
            p,
            false
        ),
        Err(Reason::Unregistered)
    );
    assert!(
        h.engine.device("ghost").is_none(),
        "a rejected unknown device grows no state"
    );
    // Its readings are never evaluated.
    nothing(&h.ticks(T0, T0 + 10 * MIN, 10 * SEC));
    assert_eq!(h.engine.condition_count(), 0);
    assert!(h
        .offer(
            T0,
            &topic("res", "water_pressure", "wp-1", "telemetry"),
            p,
            false
        )
        .is_ok());
    // Residential: 0.05 < 0.07.
    check(
        &h.tick(T0 + 60 * SEC),
        &[fired(
            "water_pressure.low",
            "wp-1",
            None,
            Major,
            Some(0.05),
            Some(0.07),
        )],
    );
}

// ---------------------------------------------------------------- persistence ---------------

#[test]
fn a_pending_hold_survives_a_restart_and_fires_once() {
    let mut store = Store::default();
    let mut h = H::new();
    nothing(&h.pressure(T0, "plain", "wp-1", 0.05));
    nothing(&h.tick(T0 + 10 * SEC));
    h.persist(&mut store);
    assert_eq!(store.conds.len(), 1);
    // Down at T0 + 10 s, up again at T0 + 20 s.
    let mut h = h.restart(&store, T0 + 20 * SEC);
    assert_eq!(h.engine.condition_count(), 1);
    nothing(&h.ticks(T0 + 20 * SEC, T0 + 59 * SEC, SEC));
    nothing(&h.tick(T0 + 60 * SEC - MS));
    let got = h.tick(T0 + 60 * SEC);
    check(
        &got,
        &[fired(
            "water_pressure.low",
            "wp-1",
            None,
            Major,
            Some(0.05),
            Some(0.10),
        )],
    );
    assert_eq!(got[0].since, T0);
    nothing(&h.ticks(T0 + 61 * SEC, T0 + 5 * MIN, SEC));
    nothing(&h.pressure(T0 + 5 * MIN, "plain", "wp-1", 0.04));
    h.persist(&mut store);
    // Restarted again while active: no second Fired, by timer or by reading.
    let mut h = h.restart(&store, T0 + 6 * MIN);
    nothing(&h.ticks(T0 + 6 * MIN, T0 + 14 * MIN, SEC));
    nothing(&h.pressure(T0 + 14 * MIN, "plain", "wp-1", 0.05));
    let got = h.pressure(T0 + 15 * MIN, "plain", "wp-1", 0.12);
    check(
        &got,
        &[cleared(
            "water_pressure.low",
            "wp-1",
            None,
            Major,
            Some(0.12),
            Some(0.10),
        )],
    );
    assert_eq!(got[0].since, T0);
    h.persist(&mut store);
    assert!(store.conds.is_empty(), "{:?}", store.conds);
}

#[test]
fn a_dip_that_ended_before_the_restart_stays_forgotten() {
    let mut store = Store::default();
    let mut h = H::new();
    nothing(&h.pressure(T0, "plain", "wp-1", 0.05));
    h.persist(&mut store);
    nothing(&h.pressure(T0 + 30 * SEC, "plain", "wp-1", 0.3));
    h.persist(&mut store);
    assert!(store.conds.is_empty());
    let mut h = h.restart(&store, T0 + 40 * SEC);
    nothing(&h.ticks(T0 + 40 * SEC, T0 + 10 * MIN, SEC));
}

#[test]
fn an_active_event_survives_a_restart_without_a_second_alert() {
    let mut store = Store::default();
    let mut h = H::new();
    nothing(&lane(&mut h, T0, BLOCKED_START));
    check(&h.tick(T0 + 60 * SEC), &[blocked(Change::Fired)]);
    h.persist(&mut store);
    let mut h = h.restart(&store, T0 + 100 * SEC);
    // The camera re-sends start after the restart: still the same alert.
    nothing(&lane(&mut h, T0 + 101 * SEC, BLOCKED_START));
    // Reminders keep their rhythm (every 300 s from the Fired at T0 + 60 s).
    nothing(&h.ticks(T0 + 100 * SEC, T0 + 360 * SEC - MS, SEC));
    check(&h.tick(T0 + 360 * SEC), &[blocked(Change::Repeat)]);
    check(
        &lane(&mut h, T0 + 400 * SEC, BLOCKED_END),
        &[blocked(Change::Cleared)],
    );
}

#[test]
fn a_silent_device_is_still_reported_offline_after_a_restart() {
    let mut store = Store::default();
    let mut h = H::registered();
    check(
        &uitd(
            &mut h,
            T0,
            "uitd-a",
            r#"{"seq": 1, "event": "fault", "state": "start"}"#,
        ),
        &[fired(
            "transmitter.fault",
            "uitd-a",
            None,
            Minor,
            None,
            None,
        )],
    );
    h.persist(&mut store);
    // firewatch was down from T0 + 10 s to T0 + 200 s: the transmitter has been silent longer
    // than its 90 s timeout, but queued messages get one interval (90 s / 3) to arrive.
    let mut h = h.restart(&store, T0 + 200 * SEC);
    nothing(&h.ticks(T0 + 200 * SEC, T0 + 229 * SEC, SEC));
    nothing(&h.tick(T0 + 230 * SEC - MS));
    let got = h.tick(T0 + 230 * SEC);
    check(&got, &[offline(Change::Fired, "uitd-a", Some(90.0))]);
    assert_eq!(got[0].since, T0);
    nothing(&h.ticks(T0 + 231 * SEC, T0 + HOUR, 10 * SEC));
    // The device record (seq history, counters) came back too.
    let d = h.engine.device("uitd-a").unwrap();
    assert_eq!((d.messages, d.max_seq), (1, Some(1)));
    assert_eq!(
        h.offer(
            T0 + HOUR,
            &topic("res", "transmitter", "uitd-a", "event"),
            r#"{"seq": 1, "event": "fault", "state": "start"}"#,
            false
        ),
        Err(Reason::Duplicate)
    );
    // A reset brings it back online and ends the fault, which did not fire twice.
    check(
        &uitd(
            &mut h,
            T0 + HOUR,
            "uitd-a",
            r#"{"seq": 2, "event": "reset", "state": "pulse"}"#,
        ),
        &[
            offline(Change::Cleared, "uitd-a", Some(90.0)),
            cleared("transmitter.fault", "uitd-a", None, Minor, None, None),
        ],
    );
}

#[test]
fn a_queued_message_within_the_grace_keeps_the_device_online() {
    let mut store = Store::default();
    let mut h = H::registered();
    h.status(T0, "res", "transmitter", "uitd-a", r#"{"online": true}"#);
    h.persist(&mut store);
    let mut h = h.restart(&store, T0 + 200 * SEC);
    nothing(&h.ticks(T0 + 200 * SEC, T0 + 210 * SEC, SEC));
    // The broker delivers what it queued while firewatch was down.
    nothing(&uitd(
        &mut h,
        T0 + 210 * SEC,
        "uitd-a",
        r#"{"event": "self_test", "state": "pulse"}"#,
    ));
    nothing(&h.ticks(T0 + 210 * SEC, T0 + 300 * SEC, SEC));
    check(
        &h.tick(T0 + 300 * SEC + MS),
        &[offline(Change::Fired, "uitd-a", Some(90.0))],
    );
}

#[test]
fn an_offline_device_stays_offline_across_a_restart() {
    let mut store = Store::default();
    let mut h = H::registered();
    h.status(T0, "res", "transmitter", "uitd-a", r#"{"online": true}"#);
    check(
        &h.tick(T0 + 91 * SEC),
        &[offline(Change::Fired, "uitd-a", Some(90.0))],
    );
    h.persist(&mut store);
    let mut h = h.restart(&store, T0 + HOUR);
    nothing(&h.ticks(T0 + HOUR, T0 + 2 * HOUR, 10 * SEC));
    assert!(h.engine.device("uitd-a").unwrap().offline);
    check(
        &h.send(
            T0 + 2 * HOUR,
            &topic("res", "transmitter", "uitd-a", "status"),
            r#"{"online": true}"#,
        ),
        &[offline(Change::Cleared, "uitd-a", Some(90.0))],
    );
}

#[test]
fn rate_windows_are_primed_after_a_restart() {
    let mut store = Store::default();
    let mut h = H::new();
    nothing(&h.pressure(T0, "plain", "wp-1", 0.30));
    h.persist(&mut store);
    // Without the reading before the restart, the drop is not seen.
    let mut cold = h.restart(&store, T0 + 10 * SEC);
    nothing(&cold.pressure(T0 + 30 * SEC, "plain", "wp-1", 0.18));
    // Primed from the stored readings, it is.
    let mut warm = h.restart(&store, T0 + 10 * SEC);
    warm.engine
        .prime_window("wp-1", Kind::WaterPressure, "pressure_mpa", None, T0, 0.30);
    check(
        &warm.pressure(T0 + 30 * SEC, "plain", "wp-1", 0.18),
        &[drop_w(Change::Fired, 0.18)],
    );
}

#[test]
fn take_dirty_hands_out_each_change_once() {
    let mut h = H::new();
    nothing(&h.pressure(T0, "plain", "wp-1", 0.05));
    let d = h.engine.take_dirty();
    assert_eq!(d.devices.len(), 1);
    assert_eq!(d.conds.len(), 1);
    let (k, c) = &d.conds[0];
    assert_eq!(
        k,
        &CondKey {
            source: 't',
            rule: "water_pressure.low".into(),
            device: "wp-1".into(),
            channel: None,
        }
    );
    assert_eq!(CondKey::decode(&k.encode()).as_ref(), Some(k));
    assert_eq!(c.as_ref().map(|c| c.phase), Some(Phase::Pending));
    // Nothing changed since.
    nothing(&h.tick(T0 + SEC));
    let d = h.engine.take_dirty();
    assert!(d.conds.is_empty() && d.devices.is_empty(), "{d:?}");
    // A forgotten condition is handed out as a delete.
    nothing(&h.pressure(T0 + 2 * SEC, "plain", "wp-1", 0.3));
    let d = h.engine.take_dirty();
    assert_eq!(d.conds.len(), 1);
    assert!(d.conds[0].1.is_none());
    // Channels with '|'-free names round-trip through the key encoding.
    let k = CondKey {
        source: 'e',
        rule: "fire_lane.blocked".into(),
        device: "cam-1".into(),
        channel: Some("north-lane".into()),
    };
    assert_eq!(CondKey::decode(&k.encode()), Some(k));
}

// ---------------------------------------------------------------- rearm ---------------------

#[test]
fn rearm_after_close_raises_a_new_alert_for_a_persisting_hazard() {
    let mut h = H::new();
    let low = |change, v| {
        want(
            change,
            "water_pressure.low",
            "wp-1",
            None,
            Major,
            Some(v),
            Some(0.10),
        )
    };
    nothing(&h.pressure(T0, "plain", "wp-1", 0.05));
    check(&h.tick(T0 + 60 * SEC), &[low(Change::Fired, 0.05)]);
    // An operator closes the alert while the pressure is still low.
    h.engine.rearm("water_pressure.low", "wp-1", None);
    assert_eq!(h.engine.condition_count(), 0);
    nothing(&h.ticks(T0 + 61 * SEC, T0 + 5 * MIN, SEC));
    // The next reading is still low: a new alert after the hold.
    let t = T0 + 5 * MIN;
    nothing(&h.pressure(t, "plain", "wp-1", 0.05));
    nothing(&h.tick(t + 60 * SEC - MS));
    let got = h.tick(t + 60 * SEC);
    check(&got, &[low(Change::Fired, 0.05)]);
    assert_eq!(got[0].since, t);
    // Rearming an offline device changes nothing: its record still tracks it.
    let mut h = H::registered();
    h.status(T0, "res", "transmitter", "uitd-a", r#"{"online": true}"#);
    check(
        &h.tick(T0 + 91 * SEC),
        &[offline(Change::Fired, "uitd-a", Some(90.0))],
    );
    h.engine.rearm("device.offline", "uitd-a", None);
    nothing(&h.ticks(T0 + 92 * SEC, T0 + HOUR, 10 * SEC));
    check(
        &h.send(
            T0 + HOUR,
            &topic("res", "transmitter", "uitd-a", "status"),
            r#"{"online": true}"#,
        ),
        &[offline(Change::Cleared, "uitd-a", Some(90.0))],
    );
}

#[test]
fn rearm_forgets_only_the_closed_condition() {
    let mut h = H::new();
    let tel = topic("plain", "electrical", "ef-1", "telemetry");
    nothing(&h.send(
        T0,
        &tel,
        r#"{"values": {"temperature_c": {"L1": 80, "L2": 80}}}"#,
    ));
    assert_eq!(h.tick(T0 + 10 * SEC).len(), 2);
    h.engine.rearm("electrical.temperature", "ef-1", Some("L1"));
    assert_eq!(h.engine.condition_count(), 1);
    // L2 still clears as usual; L1's cooling is not reported (its alert is closed).
    check(
        &h.send(
            T0 + MIN,
            &tel,
            r#"{"values": {"temperature_c": {"L1": 20, "L2": 20}}}"#,
        ),
        &[cleared(
            "electrical.temperature",
            "ef-1",
            Some("L2"),
            Major,
            Some(20.0),
            Some(70.0),
        )],
    );
}

// ---------------------------------------------------------------- long runs -----------------

#[test]
fn a_healthy_building_stays_quiet_for_a_day() {
    let mut h = H::registered();
    let mut got = Vec::new();
    let mut seq = 0;
    let mut t = T0;
    while t < T0 + 24 * HOUR {
        if (t - T0) % (10 * MIN) == 0 {
            seq += 1;
            // Small, slow variations: never a breach, never a drop.
            let p = 0.30 + 0.01 * ((seq % 7) as f64);
            got.extend(h.send(
                t,
                &topic("res", "water_pressure", "wp-mains", "telemetry"),
                &format!(r#"{{"seq": {seq}, "values": {{"pressure_mpa": {p}}}}}"#),
            ));
            got.extend(h.send(
                t,
                &topic("res", "water_level", "wl-tank", "telemetry"),
                r#"{"values": {"level_m": 2.5}}"#,
            ));
        }
        if (t - T0) % (30 * SEC) == 0 {
            got.extend(h.send(
                t,
                &topic("res", "transmitter", "uitd-a", "status"),
                r#"{"online": true}"#,
            ));
        }
        got.extend(h.tick(t));
        t += 5 * SEC;
    }
    nothing(&got);
    assert_eq!(h.engine.condition_count(), 0);
    let d = h.engine.device("wp-mains").unwrap();
    assert_eq!((d.messages, d.lost, d.rejected), (144, 0, 0));
}

#[test]
fn a_seq_jump_to_the_top_of_the_range_saturates_the_loss_count() {
    // Failed before: `lost += gap` overflowed (a panic in debug builds, a wrap in release).
    let mut h = H::new();
    let tel = topic("plain", "water_pressure", "wp-1", "telemetry");
    let send = |h: &mut H, t: Millis, seq: u64| {
        let json = format!(r#"{{"seq": {seq}, "values": {{"pressure_mpa": 0.3}}}}"#);
        h.offer(t, &tel, &json, false)
    };
    assert_eq!(send(&mut h, T0, 0), Ok(vec![]));
    assert_eq!(send(&mut h, T0 + SEC, u64::MAX - 1), Ok(vec![]));
    assert_eq!(
        send(&mut h, T0 + 2 * SEC, 1),
        Ok(vec![]),
        "a reset, not a panic"
    );
    assert_eq!(send(&mut h, T0 + 3 * SEC, u64::MAX), Ok(vec![]));
    let d = h.engine.device("wp-1").unwrap();
    assert_eq!(d.lost, u64::MAX, "saturated, not wrapped");
    assert_eq!(d.messages, 4);
}

#[test]
fn rejected_messages_of_unknown_devices_create_no_record() {
    // Failed before: every rejected message of a never-seen device left a record behind.
    let mut h = H::with(
        shipped_rules(),
        "strict = true\n[[building]]\nid = \"res\"\n",
    );
    let tel = topic("res", "water_pressure", "ghost-1", "telemetry");
    assert_eq!(
        h.offer(T0, &tel, r#"{"values": {"pressure_mpa": 0.3}}"#, false),
        Err(Reason::Unregistered)
    );
    h.engine.count_rejected("ghost-2");
    assert!(h.engine.device("ghost-1").is_none());
    assert!(h.engine.device("ghost-2").is_none());
    assert!(h.engine.devices().is_empty());
}

#[test]
fn unknown_devices_and_channel_names_are_bounded() {
    let mut h = H::new();
    h.engine = std::mem::replace(
        &mut h.engine,
        Engine::new(Arc::new(shipped_rules()), Arc::new(Registry::default())),
    )
    .with_limits(Limits {
        max_unregistered: 3,
        max_values: 4,
    });
    for i in 0..5 {
        let tel = topic("plain", "water_pressure", &format!("wp-{i}"), "telemetry");
        let got = h.offer(T0, &tel, r#"{"values": {"pressure_mpa": 0.3}}"#, false);
        if i < 3 {
            assert_eq!(got, Ok(vec![]), "device {i}");
        } else {
            assert_eq!(got, Err(Reason::Unregistered), "device {i}");
        }
    }
    assert_eq!(h.engine.devices().len(), 3);
    assert_eq!(h.engine.refused().devices, 2);
    // Ten channel names from one device: four are kept as latest values.
    let mut h2 = H::new();
    h2.engine = std::mem::replace(
        &mut h2.engine,
        Engine::new(Arc::new(shipped_rules()), Arc::new(Registry::default())),
    )
    .with_limits(Limits {
        max_unregistered: 10,
        max_values: 4,
    });
    let channels: Vec<String> = (0..10).map(|i| format!(r#""C{i}": 40"#)).collect();
    let json = format!(
        r#"{{"values": {{"temperature_c": {{{}}}}}}}"#,
        channels.join(", ")
    );
    let ef = topic("plain", "electrical", "ef-9", "telemetry");
    h2.send(T0, &ef, &json);
    let d = h2.engine.device("ef-9").unwrap();
    assert_eq!(d.last_values.len(), 4);
    assert_eq!(h2.engine.refused().values, 6);
}

#[test]
fn a_redelivered_payload_without_seq_is_recognised_also_after_a_restart() {
    let mut h = H::new();
    let tel = topic("plain", "water_pressure", "wp-1", "telemetry");
    let payload = r#"{"values": {"pressure_mpa": 0.31}}"#;
    let m = H::message(T0, &tel, payload, false);
    let first = Delivery {
        redelivered: false,
        digest: digest(payload.as_bytes()),
    };
    assert!(h.engine.accept_delivered(&m, first).is_ok());
    // The same payload sent again by the device (not a redelivery) is a new reading.
    assert!(h.engine.accept_delivered(&m, first).is_ok());
    // Restart: the record (with its digests) comes back from the store.
    let dirty = h.engine.take_dirty();
    let mut restarted = Engine::new(Arc::new(shipped_rules()), Arc::new(Registry::default()));
    let stored: Vec<(String, DeviceRecord)> = dirty
        .devices
        .into_iter()
        .map(|(id, r)| {
            let json = serde_json::to_string(&r).unwrap();
            (id, serde_json::from_str(&json).unwrap())
        })
        .collect();
    restarted.restore(Vec::new(), stored, T0 + MIN);
    let dup = Delivery {
        redelivered: true,
        ..first
    };
    let again = restarted.accept_delivered(&m, dup);
    assert_eq!(again.map_err(|r| r.reason), Err(Reason::Duplicate));
    // A redelivery of something not among the recent payloads is accepted, and counted.
    let other = r#"{"values": {"pressure_mpa": 0.29}}"#;
    let m2 = H::message(T0 + MIN, &tel, other, false);
    let d2 = Delivery {
        redelivered: true,
        digest: digest(other.as_bytes()),
    };
    assert!(restarted.accept_delivered(&m2, d2).is_ok());
    assert_eq!(restarted.refused().redelivered_unrecognised, 1);
    assert_eq!(restarted.device("wp-1").unwrap().messages, 3);
}

#[test]
fn liveness_changes_are_handed_out_with_what_they_were_before() {
    let mut h = H::new();
    let status = topic("plain", "water_pressure", "wp-1", "status");
    h.send(T0, &status, r#"{"online": true}"#);
    let d = h.engine.take_dirty();
    assert_eq!(d.liveness, vec![("wp-1".to_owned(), Liveness::default())]);
    // Another message: still online, nothing to report.
    h.send(T0 + SEC, &status, r#"{"online": true}"#);
    assert!(h.engine.take_dirty().liveness.is_empty());
    // The last will: online → offline.
    h.send(T0 + 2 * SEC, &status, r#"{"online": false}"#);
    let d = h.engine.take_dirty();
    let before = Liveness {
        seen: true,
        offline: false,
    };
    assert_eq!(d.liveness, vec![("wp-1".to_owned(), before)]);
    assert!(h.engine.device("wp-1").unwrap().offline);
}

// ---------------------------------------------------------------- flapping, battery ---------

/// A transmitter that drops four times within the hour is reported once, as flapping (the
/// first three drops each as offline); further drops say nothing; an hour without a drop
/// clears it. The drops survive a restart.
#[test]
fn a_device_that_flaps_is_reported_once_as_flapping() {
    let mut h = H::registered();
    let mut store = Store::default();
    let status = topic("res", "transmitter", "uitd-a", "status");
    let (up, down) = (r#"{"online": true}"#, r#"{"online": false}"#);
    // A daily heartbeat: the quiet hour below is not silence.
    h.daily("res", "transmitter", "uitd-a");
    h.status(T0, "res", "transmitter", "uitd-a", up);
    let mut t = T0;
    for n in 1..=3 {
        t += 5 * MIN;
        check(
            &h.send(t, &status, down),
            &[offline(Change::Fired, "uitd-a", None)],
        );
        t += MIN;
        check(
            &h.send(t, &status, up),
            &[offline(Change::Cleared, "uitd-a", None)],
        );
        assert_eq!(h.engine.device("uitd-a").unwrap().flaps.len(), n);
    }
    h.persist(&mut store);
    let mut h = h.restart(&store, t);
    t += 5 * MIN;
    let flapping = |change| {
        want(
            change,
            "device.flapping",
            "uitd-a",
            None,
            Minor,
            Some(4.0),
            Some(4.0),
        )
    };
    check(&h.send(t, &status, down), &[flapping(Change::Fired)]);
    assert!(h.quality("uitd-a").contains(&"flapping"));
    t += MIN;
    nothing(&h.send(t, &status, up));
    t += 10 * MIN;
    nothing(&h.send(t, &status, down));
    t += MIN;
    nothing(&h.send(t, &status, up));
    // Quiet for an hour after the last drop (at t - MIN): cleared, and online, so nothing more.
    nothing(&h.tick(t + HOUR - 2 * MIN));
    check(&h.tick(t + HOUR), &[flapping(Change::Cleared)]);
    assert!(!h.engine.device("uitd-a").unwrap().flapping);
    // A drop after that is an ordinary drop again.
    check(
        &h.send(t + 2 * HOUR, &status, down),
        &[offline(Change::Fired, "uitd-a", None)],
    );
}

#[test]
fn a_low_battery_fires_once_and_clears_above_its_clear_level() {
    let mut h = H::registered();
    let status = topic("res", "transmitter", "uitd-a", "status");
    let battery = |change| {
        want(
            change,
            "device.battery_low",
            "uitd-a",
            None,
            Minor,
            Some(15.0),
            Some(20.0),
        )
    };
    check(
        &h.send(T0, &status, r#"{"online": true, "battery_pct": 15}"#),
        &[battery(Change::Fired)],
    );
    assert!(h.quality("uitd-a").contains(&"low_battery"));
    nothing(&h.send(T0 + MIN, &status, r#"{"battery_pct": 12}"#));
    nothing(&h.send(T0 + 2 * MIN, &status, r#"{"battery_pct": 22}"#));
    check(
        &h.send(T0 + 3 * MIN, &status, r#"{"battery_pct": 60}"#),
        &[battery(Change::Cleared)],
    );
    assert!(h.quality("uitd-a").is_empty());
}

#[test]
fn a_new_registry_admits_added_devices_rejects_dropped_ones_and_moves_records() {
    let reg = |devices: &str| {
        Arc::new(
            Registry::parse(&format!(
                "strict = true\n[[building]]\nid = \"res\"\nclass = \"residential\"\n[[building]]\nid = \"pub\"\nclass = \"public_class1\"\n{devices}"
            ))
            .unwrap(),
        )
    };
    let dev = |id: &str, b: &str| {
        format!("[[device]]\nid = \"{id}\"\nbuilding = \"{b}\"\nkind = \"water_pressure\"\n")
    };
    let mut h = H::with(
        shipped_rules(),
        &reg(&dev("wp-1", "res")).to_toml().unwrap(),
    );
    let p = r#"{"values": {"pressure_mpa": 0.3}}"#;
    let offer = |h: &mut H, b: &str, d: &str| {
        h.offer(T0, &topic(b, "water_pressure", d, "telemetry"), p, false)
    };
    assert!(offer(&mut h, "res", "wp-1").is_ok());
    assert_eq!(offer(&mut h, "res", "wp-2"), Err(Reason::Unregistered));
    // wp-2 added; wp-1 moved to another building.
    h.engine
        .set_registry(reg(&(dev("wp-1", "pub") + &dev("wp-2", "res"))));
    assert!(offer(&mut h, "res", "wp-2").is_ok());
    assert_eq!(h.engine.device("wp-1").unwrap().building, "pub");
    assert!(offer(&mut h, "pub", "wp-1").is_ok());
    assert_eq!(offer(&mut h, "res", "wp-1"), Err(Reason::Binding));
    // Both dropped: rejected again.
    h.engine.set_registry(reg(""));
    assert_eq!(offer(&mut h, "res", "wp-2"), Err(Reason::Unregistered));
    assert_eq!(offer(&mut h, "pub", "wp-1"), Err(Reason::Unregistered));
}

#[test]
fn devices_a_new_registry_lists_stop_counting_as_unregistered() {
    let mut h = H::new();
    h.engine = std::mem::replace(
        &mut h.engine,
        Engine::new(Arc::new(shipped_rules()), Arc::new(Registry::default())),
    )
    .with_limits(Limits {
        max_unregistered: 1,
        max_values: 4,
    });
    let p = r#"{"values": {"pressure_mpa": 0.3}}"#;
    let tel = |d: &str| topic("plain", "water_pressure", d, "telemetry");
    assert!(h.offer(T0, &tel("wp-a"), p, false).is_ok());
    assert_eq!(
        h.offer(T0, &tel("wp-b"), p, false),
        Err(Reason::Unregistered)
    );
    let open = "[[building]]\nid = \"plain\"\n[[device]]\nid = \"wp-a\"\nbuilding = \"plain\"\nkind = \"water_pressure\"\n";
    h.engine
        .set_registry(Arc::new(Registry::parse(open).unwrap()));
    assert!(h.offer(T0, &tel("wp-b"), p, false).is_ok());
}

// ---------------------------------------------------------------- stuck, implausible --------

fn quality_alerts(got: &[Transition]) -> Vec<Want> {
    got.iter()
        .filter(|t| t.rule == "device.stuck" || t.rule == "device.implausible")
        .map(Want::from)
        .collect()
}

/// The issue's example: a water-pressure monitor reading 0.00 MPa for days. Failed before:
/// without an announced `interval_s` nothing was ever stuck.
#[test]
fn a_pressure_of_zero_for_days_is_stuck_after_a_day_and_clears_when_it_moves() {
    let mut h = H::new();
    let mut store = Store::default();
    let stuck = |change| {
        want(
            change,
            "device.stuck",
            "wp-1",
            None,
            Minor,
            Some(0.0),
            Some(86_400.0),
        )
    };
    // Hourly 0.00 MPa, no status: a day holds still, the 25th hour is past it.
    for hour in 0..=24 {
        let got = h.pressure(T0 + hour * HOUR, "plain", "wp-1", 0.0);
        assert_eq!(quality_alerts(&got), [], "hour {hour}");
    }
    assert!(!h.quality("wp-1").contains(&"stuck"));
    let got = h.pressure(T0 + 25 * HOUR, "plain", "wp-1", 0.0);
    assert_eq!(quality_alerts(&got), [stuck(Change::Fired)]);
    let fired = got.iter().find(|t| t.rule == "device.stuck").unwrap();
    assert!(
        fired
            .message
            .contains("pressure_mpa unchanged at 0 for 25 h")
            && fired.message.contains("floor of its plausible band"),
        "{}",
        fired.message
    );
    let q = h.quality("wp-1");
    assert!(q.contains(&"stuck") && !q.contains(&"implausible"), "{q:?}");
    h.persist(&mut store);

    // Days more at 0.00, across a restart: the one alert stays, nothing fires again.
    let mut h = h.restart(&store, T0 + 26 * HOUR);
    for hour in 26..72 {
        let got = h.pressure(T0 + hour * HOUR, "plain", "wp-1", 0.0);
        assert_eq!(quality_alerts(&got), [], "hour {hour}");
    }
    let rules = h.engine.rules().quality.clone();
    let d = h.engine.device("wp-1").unwrap();
    let held: Vec<(&str, f64, Millis)> = d.stuck(&rules).map(|(k, v, s, _)| (k, v, s)).collect();
    assert_eq!(
        held,
        [("pressure_mpa", 0.0, T0)],
        "held since the first 0.00"
    );

    // The valve opened: the value moves and the alert clears.
    let got = h.pressure(T0 + 72 * HOUR, "plain", "wp-1", 0.31);
    assert_eq!(quality_alerts(&got), [stuck(Change::Cleared)]);
    assert!(!h.quality("wp-1").contains(&"stuck"));
}

/// Pressure may hold still for hours, temperature hardly ever; an arc counter sits at 0 for
/// ever; a transmitter's analog value falls back to 48 announced intervals and 6 h.
#[test]
fn stuck_times_are_per_metric() {
    let mut h = H::new();
    // Announced every 5 min: the old device-wide rule called 0.30 MPa stuck after 6 h.
    h.status(
        T0 - MIN,
        "plain",
        "water_pressure",
        "wp-1",
        r#"{"interval_s": 300}"#,
    );
    let ef = topic("plain", "electrical", "ef-1", "telemetry");
    let mut got = Vec::new();
    let mut t = T0;
    let mut n = 0;
    while t <= T0 + 12 * HOUR {
        got.extend(h.pressure(t, "plain", "wp-1", 0.30));
        // Residual current wanders, the temperature of L1 does not, L2 does.
        let json = format!(
            r#"{{"values": {{"residual_current_ma": {}, "arc_count": 0, "temperature_c": {{"L1": 31.0, "L2": {}}}}}}}"#,
            110 + n % 5,
            30.0 + f64::from(n % 3) / 10.0
        );
        got.extend(h.send(t, &ef, &json));
        t += 30 * MIN;
        n += 1;
    }
    // L1 held 6 h at T0 + 6 h, past it at the next reading.
    let fired: Vec<&Transition> = got.iter().filter(|t| t.rule == "device.stuck").collect();
    assert_eq!(fired.len(), 1, "{fired:#?}");
    assert_eq!(
        (fired[0].device.as_str(), fired[0].at, fired[0].value),
        ("ef-1", T0 + 6 * HOUR + 30 * MIN, Some(31.0))
    );
    assert!(fired[0]
        .message
        .starts_with("temperature_c.L1 unchanged at 31 for 6 h"));
    let rules = h.engine.rules().quality.clone();
    let keys = |h: &H, id: &str| -> Vec<String> {
        let d = h.engine.device(id).unwrap();
        d.stuck(&rules).map(|(k, ..)| k.to_owned()).collect()
    };
    assert_eq!(
        keys(&h, "ef-1"),
        ["temperature_c.L1"],
        "arc_count is never stuck"
    );
    assert!(
        keys(&h, "wp-1").is_empty(),
        "12 h of one pressure is a quiet building"
    );
    // A day and a bit: the pressure too, at the first reading past 24 h.
    let mut got = Vec::new();
    for k in 1..=26 {
        let t = T0 + 12 * HOUR + k * 30 * MIN;
        let fired = quality_alerts(&h.pressure(t, "plain", "wp-1", 0.30));
        if !fired.is_empty() {
            assert_eq!(t, T0 + 24 * HOUR + 30 * MIN);
        }
        got.extend(fired);
    }
    assert_eq!(
        got,
        [want(
            Change::Fired,
            "device.stuck",
            "wp-1",
            None,
            Minor,
            Some(0.30),
            Some(86_400.0)
        )]
    );

    // No stuck time for `analog`: 48 × 60 s is under 6 h, so 6 h it is.
    let uitd = topic("plain", "transmitter", "tx-1", "telemetry");
    h.status(T0, "plain", "transmitter", "tx-1", r#"{"interval_s": 60}"#);
    let mut got = Vec::new();
    for m in 0..=6 * 60 + 1 {
        got.extend(h.send(T0 + m * MIN, &uitd, r#"{"values": {"analog": 42}}"#));
    }
    let at: Vec<Millis> = got
        .iter()
        .filter(|t| t.rule == "device.stuck")
        .map(|t| t.at)
        .collect();
    assert_eq!(at, [T0 + 6 * HOUR + MIN]);
}

#[test]
fn an_implausible_value_raises_and_a_plausible_one_clears() {
    let mut h = H::new();
    let ef = topic("plain", "electrical", "ef-1", "telemetry");
    let implausible = |change, v| {
        want(
            change,
            "device.implausible",
            "ef-1",
            None,
            Minor,
            Some(v),
            Some(500.0),
        )
    };
    // 230 V is fine; 650 V is inside the physical range (0–1000 V), not on a 220/380 V circuit.
    nothing(&h.send(T0, &ef, r#"{"values": {"voltage_v": {"L1": 230.1}}}"#));
    check(
        &h.send(T0 + MIN, &ef, r#"{"values": {"voltage_v": {"L1": 650}}}"#),
        &[implausible(Change::Fired, 650.0)],
    );
    assert!(h.quality("ef-1").contains(&"implausible"));
    let fired = &h.engine.conds.values().next().unwrap().detail;
    assert_eq!(
        fired,
        "voltage_v.L1 650 above its plausible band 0–500: a sensor, range or unit fault"
    );
    // Still implausible: one alert, its latest value kept for the clear.
    nothing(&h.send(
        T0 + 2 * MIN,
        &ef,
        r#"{"values": {"voltage_v": {"L1": 700}}}"#,
    ));
    check(
        &h.send(
            T0 + 3 * MIN,
            &ef,
            r#"{"values": {"voltage_v": {"L1": 229.8}}}"#,
        ),
        &[implausible(Change::Cleared, 700.0)],
    );
    assert!(!h.quality("ef-1").contains(&"implausible"));
    nothing(&h.send(
        T0 + 4 * MIN,
        &ef,
        r#"{"values": {"voltage_v": {"L1": 231}}}"#,
    ));
    assert_eq!(h.engine.condition_count(), 0);
}

#[test]
fn bands_and_stuck_times_follow_the_quality_table() {
    let rules = Rules::parse(
        r#"
[quality]
severity = "info"
[quality.metric.level_m]
min = 0.2
stuck_s = 3600
"#,
    )
    .unwrap();
    let mut h = H::with(rules, "");
    let tel = topic("plain", "water_level", "wl-1", "telemetry");
    let level = |v: f64| format!(r#"{{"values": {{"level_m": {v}}}}}"#);
    // Below the floor set for this deployment (the sensor sits 0.2 m above the tank floor).
    check(
        &h.send(T0, &tel, &level(0.1)),
        &[want(
            Change::Fired,
            "device.implausible",
            "wl-1",
            None,
            Info,
            Some(0.1),
            Some(0.2),
        )],
    );
    check(
        &h.send(T0 + MIN, &tel, &level(2.0)),
        &[want(
            Change::Cleared,
            "device.implausible",
            "wl-1",
            None,
            Info,
            Some(0.1),
            Some(0.2),
        )],
    );
    // Stuck after an hour instead of three days; max stays the default 10 m.
    nothing(&h.send(T0 + 61 * MIN, &tel, &level(2.0)));
    let got = h.send(T0 + 62 * MIN, &tel, &level(2.0));
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].rule.as_str(), got[0].severity),
        ("device.stuck", Info)
    );
    assert_eq!(
        h.engine.rules().quality.band("level_m"),
        (Some(0.2), Some(10.0))
    );
}

/// Values hold up to the device's latest message: a device that falls silent is offline, not
/// stuck, and a status that comes while the value holds may make it stuck.
#[test]
fn a_value_holds_up_to_the_latest_message_of_its_device() {
    let mut h = H::new();
    h.daily("plain", "electrical", "ef-1");
    let ef = topic("plain", "electrical", "ef-1", "telemetry");
    nothing(&h.send(T0, &ef, r#"{"values": {"temperature_c": 31.0}}"#));
    // Silent for a day: nothing to say about the value, whatever the time.
    assert!(!h.quality("ef-1").contains(&"stuck"));
    let status = topic("plain", "electrical", "ef-1", "status");
    let got = h.send(T0 + 7 * HOUR, &status, r#"{"rssi_dbm": -80}"#);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].rule, "device.stuck");
    assert!(h.quality("ef-1").contains(&"stuck"));
}

/// Records written before per-value times carried one device-wide `unchanged_since`: the
/// values that still hold keep it.
#[test]
fn a_record_from_before_per_value_times_keeps_its_unchanged_since() {
    let mut h = H::new();
    nothing(&h.pressure(T0, "plain", "wp-1", 0.3));
    let mut store = Store::default();
    h.persist(&mut store);
    let mut rec: serde_json::Value = serde_json::from_str(&store.devices["wp-1"]).unwrap();
    let obj = rec.as_object_mut().unwrap();
    obj.remove("held");
    obj.insert("unchanged_since".into(), serde_json::json!(T0 - 30 * HOUR));
    store.devices.insert("wp-1".into(), rec.to_string());
    let mut h = h.restart(&store, T0 + MIN);
    let got = h.pressure(T0 + HOUR, "plain", "wp-1", 0.3);
    assert_eq!(quality_alerts(&got).len(), 1, "{got:#?}");
    h.persist(&mut store);
    assert!(!store.devices["wp-1"].contains("unchanged_since"));
}
