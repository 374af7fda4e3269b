//! Rule definitions (`config/rules.toml`), the device registry (`config/registry.toml`) and
//! the pure evaluation engine ([`engine::Engine`]).
//!
//! Rule shapes:
//! - `[[threshold]]`: a metric below or above a raise level for `hold_s`, cleared when it is back
//!   at or past a separate clear level for `clear_hold_s` (hysteresis); levels can be overridden
//!   per building class and per device;
//! - `[[rate]]`: a metric falling by `drop` within `window_s`; clears after `clear_after_s`
//!   without a further drop;
//! - `[[event]]`: device events with `start`/`end`/`pulse`, an optional dwell (`hold_s`),
//!   repeat while active (`repeat_s`), minimum confidence and expiry of events that never end;
//! - `[offline]`: a device silent for `factor` × its interval;
//! - `[battery]`: a device reporting a low battery;
//! - `[quality]`: plausible bands and stuck times per metric ([`quality`]), raising
//!   `device.implausible` and `device.stuck`.

pub mod engine;
pub mod quality;
pub mod small_map;

use crate::model::{BuildingClass, Kind, Severity};
pub use crate::registry::Levels;
use crate::registry::Registry;
use crate::settings::{toml_problem, Problem};
pub use quality::QualityRule;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// Which side of the raise level is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Alert when the value is below the raise level.
    Below,
    /// Alert when the value is above the raise level.
    Above,
}

/// `[[threshold]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdRule {
    /// Rule id, e.g. `water_pressure.low`.
    pub id: String,
    /// Device kind it applies to.
    pub kind: Kind,
    /// Metric it watches.
    pub metric: String,
    /// Below or above.
    pub direction: Direction,
    /// Raise level.
    pub raise: f64,
    /// Clear level.
    pub clear: f64,
    /// Raise also at exactly the raise level (`>=` / `<=`).
    #[serde(default)]
    pub inclusive: bool,
    /// Seconds the value must stay past the raise level before the alert fires.
    #[serde(default)]
    pub hold_s: f64,
    /// Seconds the value must stay at or past the clear level before the alert clears.
    #[serde(default)]
    pub clear_hold_s: f64,
    /// Severity.
    pub severity: Severity,
    /// Unit shown in messages.
    #[serde(default)]
    pub unit: String,
    /// What is measured, for messages (e.g. "Fire-water pressure").
    #[serde(default)]
    pub label: Option<String>,
    /// Levels by building class.
    #[serde(default)]
    pub by_class: HashMap<BuildingClass, Levels>,
}

/// `[[rate]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateRule {
    /// Rule id, e.g. `water_pressure.drop`.
    pub id: String,
    /// Device kind.
    pub kind: Kind,
    /// Metric.
    pub metric: String,
    /// Fall that raises the alert (positive number).
    pub drop: f64,
    /// Window in which the fall must happen, seconds.
    pub window_s: f64,
    /// Seconds without a further fall before the alert clears.
    pub clear_after_s: f64,
    /// Severity.
    pub severity: Severity,
    /// Unit shown in messages.
    #[serde(default)]
    pub unit: String,
    /// What is measured, for messages.
    #[serde(default)]
    pub label: Option<String>,
}

/// `[[event]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRule {
    /// Rule id, e.g. `fire_lane.blocked`.
    pub id: String,
    /// Device kind.
    pub kind: Kind,
    /// Event names that raise it.
    pub events: Vec<String>,
    /// Severity.
    pub severity: Severity,
    /// Severity by event name, where it differs.
    #[serde(default)]
    pub severity_by_event: HashMap<String, Severity>,
    /// Dwell: seconds the condition must last before the alert fires.
    #[serde(default)]
    pub hold_s: f64,
    /// Re-notify every this many seconds while active and not acknowledged (0 = never).
    #[serde(default)]
    pub repeat_s: f64,
    /// Events with a lower `confidence` are ignored.
    #[serde(default)]
    pub min_confidence: f64,
    /// A `start` not repeated within this many seconds counts as ended (0 = wait for `end`).
    #[serde(default)]
    pub expire_s: f64,
    /// What happened, for messages (e.g. "Fire lane blocked").
    #[serde(default)]
    pub label: Option<String>,
}

/// `[offline]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OfflineRule {
    /// Rule id.
    pub id: String,
    /// Severity.
    pub severity: Severity,
    /// A device is offline after `factor` × `interval_s` of silence.
    pub factor: f64,
    /// Timeout when the interval is unknown, seconds, by kind (mains-powered).
    pub default_s: HashMap<Kind, f64>,
    /// Timeout when the interval is unknown for battery devices, seconds.
    pub battery_s: f64,
    /// Rule id of a device that goes offline `flap_count` times within `flap_window_s`:
    /// reported once, as flapping, instead of every time it drops.
    pub flapping_id: String,
    /// Offline transitions within the window that make a device flapping.
    pub flap_count: u32,
    /// The window, seconds; flapping clears after a window without a drop.
    pub flap_window_s: f64,
}

impl Default for OfflineRule {
    fn default() -> Self {
        OfflineRule {
            id: "device.offline".into(),
            severity: Severity::Minor,
            factor: 3.0,
            default_s: HashMap::from([
                (Kind::Transmitter, 90.0),
                (Kind::WaterPressure, 900.0),
                (Kind::WaterLevel, 900.0),
                (Kind::Electrical, 900.0),
                (Kind::FireLane, 300.0),
            ]),
            battery_s: 10_800.0,
            flapping_id: "device.flapping".into(),
            flap_count: 4,
            flap_window_s: 3600.0,
        }
    }
}

/// `[battery]`: a device whose `status` reports its battery below `raise_pct`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatteryRule {
    /// Rule id.
    pub id: String,
    /// Severity.
    pub severity: Severity,
    /// Fires below this charge, %.
    pub raise_pct: f64,
    /// Clears at or above this charge, %.
    pub clear_pct: f64,
}

impl Default for BatteryRule {
    fn default() -> Self {
        BatteryRule {
            id: "device.battery_low".into(),
            severity: Severity::Minor,
            raise_pct: 20.0,
            clear_pct: 25.0,
        }
    }
}

/// The whole rule file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Threshold rules.
    #[serde(default)]
    pub threshold: Vec<ThresholdRule>,
    /// Rate-of-change rules.
    #[serde(default)]
    pub rate: Vec<RateRule>,
    /// Event rules.
    #[serde(default)]
    pub event: Vec<EventRule>,
    /// The offline rule.
    #[serde(default)]
    pub offline: OfflineRule,
    /// The low-battery rule.
    #[serde(default)]
    pub battery: BatteryRule,
    /// Plausible bands, stuck times and the data-quality alerts.
    #[serde(default)]
    pub quality: QualityRule,
    /// (added) Inhibition by topology: which alerts hold back which others.
    #[serde(default)]
    pub inhibit: Vec<InhibitRule>,
    /// (added) Flapping alerts: told once, then quiet until stable.
    #[serde(default)]
    pub flapping: FlappingRule,
}

/// (added) Where an inhibiting alert and the alerts it holds back must be related.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The held-back alert's device sits behind the source's device (registry `via`).
    Via,
    /// Both are in the same building.
    Building,
}

impl Scope {
    /// The configuration name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Via => "via",
            Scope::Building => "building",
        }
    }
}

/// (added) `[[inhibit]]`: while an alert of a `source` rule is open and active, a new alert of
/// a `target` rule in its `scope` is recorded and marked inhibited, and nobody is told of it;
/// when the source clears or is closed, what is still active is notified.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRule {
    /// Name (shown in the alert and its history).
    pub name: String,
    /// Rule ids whose alerts inhibit.
    pub source: Vec<String>,
    /// Rule ids whose alerts are inhibited.
    pub target: Vec<String>,
    /// How source and target are related.
    pub scope: Scope,
    /// Only targets whose device has this power supply in the registry.
    #[serde(default)]
    pub power: Option<crate::registry::Power>,
}

/// (added) `[flapping]`: an alert whose condition fires and clears more than `changes` times
/// within `window_s` is marked flapping; its further clears and re-fires are recorded and told
/// to nobody until it has not changed for `stable_s`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlappingRule {
    /// Clears and re-fires within the window that make an alert flapping (0: never).
    pub changes: u32,
    /// The window, seconds.
    pub window_s: f64,
    /// Time without a change after which a flapping alert is re-armed, seconds.
    pub stable_s: f64,
}

impl Default for FlappingRule {
    fn default() -> Self {
        FlappingRule {
            changes: 5,
            window_s: 1800.0,
            stable_s: 1800.0,
        }
    }
}

impl Rules {
    /// Reads and validates a rule file.
    pub fn load(path: &Path) -> Result<Rules, Vec<Problem>> {
        crate::settings::load_file(path, "rules.file", Self::parse)
    }

    /// Parses and validates rule TOML.
    pub fn parse(text: &str) -> Result<Rules, Vec<Problem>> {
        let rules: Rules = toml::from_str(text).map_err(|e| vec![toml_problem(&e)])?;
        let p = rules.validate();
        if p.is_empty() {
            Ok(rules)
        } else {
            Err(p)
        }
    }

    /// Every problem in the rules.
    pub fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        // The arc-fault alert is raised by `arc_count` and by the detector's own `arc_fault`:
        // the engine keeps one alert for both sources.
        let mut ids: Vec<(&str, &str, Option<Kind>, String)> = Vec::new();
        ids.extend(self.threshold.iter().enumerate().map(|(i, r)| {
            (
                r.id.as_str(),
                "threshold",
                Some(r.kind),
                format!("threshold[{i}].id"),
            )
        }));
        ids.extend(
            self.rate
                .iter()
                .enumerate()
                .map(|(i, r)| (r.id.as_str(), "rate", Some(r.kind), format!("rate[{i}].id"))),
        );
        ids.extend(self.event.iter().enumerate().map(|(i, r)| {
            (
                r.id.as_str(),
                "event",
                Some(r.kind),
                format!("event[{i}].id"),
            )
        }));
        ids.push((
            self.offline.id.as_str(),
            "offline",
            None,
            "offline.id".into(),
        ));
        ids.push((
            self.offline.flapping_id.as_str(),
            "offline",
            None,
            "offline.flapping_id".into(),
        ));
        ids.push((
            self.battery.id.as_str(),
            "battery",
            None,
            "battery.id".into(),
        ));
        ids.push((
            self.quality.stuck_id.as_str(),
            "quality",
            None,
            "quality.stuck_id".into(),
        ));
        ids.push((
            self.quality.implausible_id.as_str(),
            "quality",
            None,
            "quality.implausible_id".into(),
        ));
        for (n, (id, ty, kind, key)) in ids.iter().enumerate() {
            if id.is_empty() {
                p.push(Problem::new(key.clone(), "id must not be empty"));
                continue;
            }
            // Shared ids are fine across kinds (`device.sensor_fault` for each kind), and for
            // one threshold plus one event rule of the same kind.
            let clash = ids[..n].iter().any(|(pid, pty, pkind, _)| {
                let other_kind = pkind.is_some() && kind.is_some() && pkind != kind;
                let pair = pkind == kind
                    && matches!((*pty, *ty), ("threshold", "event") | ("event", "threshold"));
                pid == id && !other_kind && !pair
            });
            if clash {
                p.push(Problem::new(
                    key.clone(),
                    format!("duplicate rule id {id:?}"),
                ));
            }
        }
        for (i, r) in self.threshold.iter().enumerate() {
            let k = format!("threshold[{i}]");
            if r.kind.metric(&r.metric).is_none() {
                p.push(Problem::new(
                    format!("{k}.metric"),
                    format!("{:?} is not a metric of kind {}", r.metric, r.kind),
                ));
            }
            let mut check = |levels: Levels, at: String| {
                if !levels.raise.is_finite() || !levels.clear.is_finite() {
                    p.push(Problem::new(at, "levels must be finite numbers"));
                    return;
                }
                let ok = match r.direction {
                    Direction::Below => levels.clear >= levels.raise,
                    Direction::Above => levels.clear <= levels.raise,
                };
                if !ok {
                    p.push(Problem::new(
                        at,
                        format!(
                            "clear level {} is on the wrong side of raise level {} for a {:?} rule",
                            levels.clear, levels.raise, r.direction
                        ),
                    ));
                }
            };
            check(
                Levels {
                    raise: r.raise,
                    clear: r.clear,
                },
                format!("{k}.clear"),
            );
            for (class, levels) in &r.by_class {
                check(*levels, format!("{k}.by_class.{}", class.as_str()));
            }
            if r.hold_s < 0.0 || r.clear_hold_s < 0.0 {
                p.push(Problem::new(
                    format!("{k}.hold_s"),
                    "hold times must not be negative",
                ));
            }
        }
        for (i, r) in self.rate.iter().enumerate() {
            let k = format!("rate[{i}]");
            if r.kind.metric(&r.metric).is_none() {
                p.push(Problem::new(
                    format!("{k}.metric"),
                    format!("{:?} is not a metric of kind {}", r.metric, r.kind),
                ));
            }
            if r.drop <= 0.0 || !r.drop.is_finite() {
                p.push(Problem::new(
                    format!("{k}.drop"),
                    "must be a positive number",
                ));
            }
            if r.window_s <= 0.0 {
                p.push(Problem::new(format!("{k}.window_s"), "must be positive"));
            }
            if r.clear_after_s < 0.0 {
                p.push(Problem::new(
                    format!("{k}.clear_after_s"),
                    "must not be negative",
                ));
            }
        }
        for (i, r) in self.event.iter().enumerate() {
            let k = format!("event[{i}]");
            if r.events.is_empty() {
                p.push(Problem::new(
                    format!("{k}.events"),
                    "needs at least one event",
                ));
            }
            for e in r.events.iter().chain(r.severity_by_event.keys()) {
                if !r.kind.events().contains(&e.as_str()) {
                    p.push(Problem::new(
                        format!("{k}.events"),
                        format!("{e:?} is not an event of kind {}", r.kind),
                    ));
                }
            }
            if !(0.0..=1.0).contains(&r.min_confidence) {
                p.push(Problem::new(
                    format!("{k}.min_confidence"),
                    "must be between 0 and 1",
                ));
            }
            if r.hold_s < 0.0 || r.repeat_s < 0.0 || r.expire_s < 0.0 {
                p.push(Problem::new(
                    format!("{k}.hold_s"),
                    "hold_s, repeat_s and expire_s must not be negative",
                ));
            }
        }
        if self.offline.flap_count < 2 {
            p.push(Problem::new("offline.flap_count", "must be at least 2"));
        }
        let window = self.offline.flap_window_s;
        if !window.is_finite() || window <= 0.0 {
            p.push(Problem::new("offline.flap_window_s", "must be above 0"));
        }
        let b = &self.battery;
        let ok = (0.0..=100.0).contains(&b.raise_pct)
            && b.clear_pct > b.raise_pct
            && b.clear_pct <= 100.0;
        if !ok {
            p.push(Problem::new(
                "battery",
                "need 0 ≤ raise_pct < clear_pct ≤ 100",
            ));
        }
        if self.offline.factor < 1.0 {
            p.push(Problem::new("offline.factor", "must be at least 1"));
        }
        p.extend(self.quality.validate());
        let known = self.ids();
        for (i, r) in self.inhibit.iter().enumerate() {
            let k = format!("inhibit[{i}]");
            if r.name.is_empty() {
                p.push(Problem::new(format!("{k}.name"), "must not be empty"));
            }
            for (field, list) in [("source", &r.source), ("target", &r.target)] {
                if list.is_empty() {
                    p.push(Problem::new(
                        format!("{k}.{field}"),
                        "needs at least one rule id",
                    ));
                }
                for id in list.iter().filter(|id| !known.contains(&id.as_str())) {
                    p.push(Problem::new(
                        format!("{k}.{field}"),
                        format!("no rule has the id {id:?}"),
                    ));
                }
            }
        }
        let f = &self.flapping;
        let times = [f.window_s, f.stable_s];
        if f.changes > 0 && !times.iter().all(|t| t.is_finite() && *t > 0.0) {
            p.push(Problem::new(
                "flapping",
                "window_s and stable_s must be above 0",
            ));
        }
        p
    }

    /// The threshold rule with this id.
    pub fn threshold_rule(&self, id: &str) -> Option<&ThresholdRule> {
        self.threshold.iter().find(|r| r.id == id)
    }

    /// Problems of the registry's per-device level overrides against these rules: an override
    /// must name a threshold rule and keep its clear level on the good side.
    pub fn check_registry(&self, registry: &Registry) -> Vec<Problem> {
        let mut p = Vec::new();
        for (i, d) in registry.devices.iter().enumerate() {
            let mut overrides: Vec<(&String, &Levels)> = d.thresholds.iter().collect();
            overrides.sort_by(|a, b| a.0.cmp(b.0));
            for (rule, levels) in overrides {
                let key = format!("registry.file: device[{i}].thresholds.{rule}");
                match self.threshold_rule(rule) {
                    None => p.push(Problem::new(key, "no threshold rule has this id")),
                    Some(tr) => {
                        let ok = match tr.direction {
                            Direction::Below => levels.clear >= levels.raise,
                            Direction::Above => levels.clear <= levels.raise,
                        };
                        if !ok {
                            p.push(Problem::new(
                                key,
                                "clear level is on the wrong side of the raise level",
                            ));
                        }
                    }
                }
            }
        }
        p
    }

    /// Every rule id.
    pub fn ids(&self) -> Vec<&str> {
        self.threshold
            .iter()
            .map(|r| r.id.as_str())
            .chain(self.rate.iter().map(|r| r.id.as_str()))
            .chain(self.event.iter().map(|r| r.id.as_str()))
            .chain([
                self.offline.id.as_str(),
                self.offline.flapping_id.as_str(),
                self.battery.id.as_str(),
                self.quality.stuck_id.as_str(),
                self.quality.implausible_id.as_str(),
            ])
            .collect()
    }
}

/// Rewrites rule TOML with every time (`*_s` keys, and the per-kind `offline.default_s`)
/// multiplied by `factor`: replaying device time `1 / factor` times faster than real time
/// (simulators' `--speed`, fast tests) with the same rule logic.
pub fn scale_rule_times(text: &str, factor: f64) -> Result<String, Problem> {
    fn scale(v: &mut toml::Value, factor: f64, all: bool) {
        match v {
            toml::Value::Table(t) => {
                for (k, x) in t.iter_mut() {
                    let timed = all || k.ends_with("_s");
                    match x {
                        toml::Value::Integer(i) if timed => {
                            *x = toml::Value::Float(*i as f64 * factor)
                        }
                        toml::Value::Float(f) if timed => *x = toml::Value::Float(*f * factor),
                        toml::Value::Table(_) if k == "default_s" => scale(x, factor, true),
                        _ => scale(x, factor, false),
                    }
                }
            }
            toml::Value::Array(a) => a.iter_mut().for_each(|x| scale(x, factor, all)),
            _ => {}
        }
    }
    if !(factor.is_finite() && factor > 0.0) {
        return Err(Problem::new("factor", "must be a positive number"));
    }
    let mut v: toml::Value = toml::from_str(text).map_err(|e| toml_problem(&e))?;
    scale(&mut v, factor, false);
    toml::to_string(&v).map_err(|e| Problem::new("toml", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_rules_load_and_cover_the_default_table() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rules.toml");
        let rules = Rules::load(&path).unwrap_or_else(|p| panic!("{p:?}"));
        let ids = rules.ids();
        for id in [
            "water_pressure.low",
            "water_pressure.high",
            "water_pressure.drop",
            "water_level.low",
            "water_level.high",
            "electrical.residual_current",
            "electrical.temperature",
            "electrical.arc",
            "electrical.device_alarm",
            "fire_lane.blocked",
            "fire_lane.ebike",
            "fire_lane.fire",
            "transmitter.fire_alarm",
            "transmitter.fault",
            "transmitter.mains_fault",
            "transmitter.link_fault",
            "transmitter.supervisory",
            "transmitter.shielded",
            "device.offline",
            "device.sensor_fault",
        ] {
            assert!(ids.contains(&id), "{id} missing");
        }
        let low = rules.threshold_rule("water_pressure.low").unwrap();
        assert_eq!(low.raise, 0.10);
        assert_eq!(low.by_class[&BuildingClass::Residential].raise, 0.07);
        assert_eq!(
            low.by_class[&BuildingClass::PublicClass1Over100m].raise,
            0.15
        );
    }

    #[test]
    fn example_registry_loads() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let rules = Rules::load(&root.join("config/rules.toml")).unwrap();
        let reg = Registry::load(&root.join("config/registry.example.toml"))
            .unwrap_or_else(|p| panic!("{p:?}"));
        assert!(!reg.devices.is_empty());
        assert!(rules.check_registry(&reg).is_empty());
    }

    #[test]
    fn bad_rules_report_every_problem_with_its_path() {
        let text = r#"
[[threshold]]
id = "x"
kind = "water_pressure"
metric = "level_m"
direction = "below"
raise = 0.1
clear = 0.05
severity = "major"

[[threshold]]
id = "x"
kind = "water_pressure"
metric = "pressure_mpa"
direction = "above"
raise = 1
clear = 0.9
severity = "major"

[[event]]
id = "y"
kind = "fire_lane"
events = ["fire_alarm"]
severity = "major"
min_confidence = 2
"#;
        let keys: Vec<String> = Rules::parse(text)
            .unwrap_err()
            .into_iter()
            .map(|p| p.key)
            .collect();
        for k in [
            "threshold[0].metric",
            "threshold[0].clear",
            "threshold[1].id",
            "event[0].events",
            "event[0].min_confidence",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing in {keys:?}");
        }
    }

    #[test]
    fn scaling_rule_times_keeps_levels() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rules.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let fast = Rules::parse(&scale_rule_times(&text, 0.1).unwrap()).unwrap();
        let low = fast.threshold_rule("water_pressure.low").unwrap();
        assert!((low.hold_s - 6.0).abs() < 1e-9);
        assert_eq!(low.raise, 0.10);
        assert!((fast.offline.default_s[&Kind::Transmitter] - 9.0).abs() < 1e-9);
        assert!((fast.offline.battery_s - 1080.0).abs() < 1e-9);
        assert_eq!(fast.offline.factor, 3.0, "factor is not a time");
        let stuck = fast.quality.stuck_s("pressure_mpa").unwrap();
        assert!((stuck - 8640.0).abs() < 1e-9, "{stuck}");
        assert_eq!(fast.quality.band("pressure_mpa"), (Some(0.0), Some(2.5)));
        assert!(scale_rule_times(&text, 0.0).is_err());
    }

    #[test]
    fn unknown_fields_are_errors() {
        let e = Rules::parse("[[threshold]]\nid='a'\nthreshhold=1\n").unwrap_err();
        assert!(e[0].message.contains("unknown field"), "{e:?}");
    }
}
