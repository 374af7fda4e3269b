//! `[quality]`: the plausible band and the stuck time of each metric, and the two data-quality
//! alerts raised from them (`device.stuck`, `device.implausible`).
//!
//! A value outside its metric's physical range never reaches the engine (decode rejects it,
//! reason `range`). Inside that range, a value outside the metric's *plausible band* is what a
//! working sensor on a building's fire-water network or circuit does not report (a pressure of
//! 3.5 MPa, a cable at 350 °C): the device record shows `implausible`. A value that holds still
//! for longer than its metric normally does (`stuck_s`) shows `stuck` — at the band's floor too,
//! where a water-pressure monitor reading 0.00 MPa for days is a dead sensor or a closed valve.
//!
//! The defaults below carry their reasoning; every one is a firewatch design default [U] that a
//! `[quality.metric.NAME]` table overrides field by field.

use crate::model::{Kind, Severity};
use crate::settings::Problem;
use serde::Deserialize;
use std::collections::HashMap;

/// Per-metric settings of `[quality.metric.NAME]`; a field left out keeps its default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricQuality {
    /// Lowest plausible value (inclusive).
    pub min: Option<f64>,
    /// Highest plausible value (inclusive).
    pub max: Option<f64>,
    /// Seconds a value may hold still before it counts as stuck; 0: never stuck.
    pub stuck_s: Option<f64>,
}

/// The built-in defaults of a metric ([`QualityRule::band`], [`QualityRule::stuck_s`]).
///
/// - `pressure_mpa` 0–2.5 MPa, stuck after 24 h: hydrant static pressure is zoned to at most
///   1.0 MPa (docs: `water_pressure.high`, GB 50974 [S]) and pump outlets on high zones stay well
///   under the 2.5 MPa rating (PN25) of a network's fittings, so a higher reading is the sensor,
///   not the water. Standby pressure in a quiet building holds at one 0.01 MPa step for hours,
///   overnight included; the jockey pump moves it at least once a day.
/// - `level_m` 0–10 m, `level_pct` 0–100 %, stuck after 72 h: fire tanks and pools are rarely
///   deeper than about 6 m (the shipped `water_level.high` is 5.0 m); set `max` to the deepest
///   tank of a deployment. An untouched tank loses millimetres a day, under one 0.01 m step
///   for days.
/// - `temperature_c` −40–200 °C, stuck after 6 h: cable insulation is rated 70–90 °C in use and
///   250 °C for a short circuit; a monitor reading above 200 °C has lost its cable. A cable's
///   temperature follows its load and the room at 0.1 °C resolution: six hours at exactly one
///   value is a frozen sensor.
/// - `residual_current_ma` 0–2000 mA, stuck after 6 h: alarms are set at 300–500 mA
///   (GB 50116-2013 9.2.3 [S]) and detectors measure up to about 1–2 A; natural leakage
///   (100–200 mA) wanders with the load.
/// - `current_a` 0–2500 A, stuck after 24 h: the largest low-voltage incomer of a high-rise
///   (a 1600 kVA transformer gives about 2300 A); a switched-off circuit reads 0 A for a day.
/// - `voltage_v` 0–500 V, stuck after 6 h: monitors sit on 220/380 V circuits (380 V + 10 % is
///   418 V); mains voltage wanders at 0.1 V resolution all the time.
/// - `arc_count` 0–200 (its physical range), never stuck: a healthy circuit counts 0 for ever.
/// - `analog` (a transmitter's analog value of any type): no band; stuck by the fallback rule.
pub fn metric_default(metric: &str) -> MetricQuality {
    const H: f64 = 3600.0;
    let (min, max, stuck_s) = match metric {
        "pressure_mpa" => (0.0, 2.5, 24.0 * H),
        "level_m" => (0.0, 10.0, 72.0 * H),
        "level_pct" => (0.0, 100.0, 72.0 * H),
        "temperature_c" => (-40.0, 200.0, 6.0 * H),
        "residual_current_ma" => (0.0, 2000.0, 6.0 * H),
        "current_a" => (0.0, 2500.0, 24.0 * H),
        "voltage_v" => (0.0, 500.0, 6.0 * H),
        "arc_count" => (0.0, 200.0, 0.0),
        _ => return MetricQuality::default(),
    };
    MetricQuality {
        min: Some(min),
        max: Some(max),
        stuck_s: Some(stuck_s),
    }
}

/// `[quality]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QualityRule {
    /// Rule id of a device with a stuck value.
    pub stuck_id: String,
    /// Rule id of a device with a value outside its plausible band.
    pub implausible_id: String,
    /// Severity of both.
    pub severity: Severity,
    /// Overrides by metric name (`pressure_mpa`, `temperature_c`, …).
    pub metric: HashMap<String, MetricQuality>,
}

impl Default for QualityRule {
    fn default() -> Self {
        QualityRule {
            stuck_id: "device.stuck".into(),
            implausible_id: "device.implausible".into(),
            severity: Severity::Minor,
            metric: HashMap::new(),
        }
    }
}

/// Where a value stands against its metric's plausible band.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Band {
    /// Inside, above the floor.
    Inside,
    /// Exactly at the floor (0.00 MPa): plausible, and the first suspect when it holds still.
    Floor,
    /// Below the floor; the floor given.
    Below(f64),
    /// Above the ceiling; the ceiling given.
    Above(f64),
}

impl QualityRule {
    fn setting(&self, metric: &str) -> MetricQuality {
        let d = metric_default(metric);
        match self.metric.get(metric) {
            None => d,
            Some(o) => MetricQuality {
                min: o.min.or(d.min),
                max: o.max.or(d.max),
                stuck_s: o.stuck_s.or(d.stuck_s),
            },
        }
    }

    /// The plausible band of a metric (`metric`, not `metric.channel`), if it has one.
    pub fn band(&self, metric: &str) -> (Option<f64>, Option<f64>) {
        let s = self.setting(metric);
        (s.min, s.max)
    }

    /// Where `v` stands in the band of `metric`.
    pub fn check(&self, metric: &str, v: f64) -> Band {
        match self.band(metric) {
            (Some(lo), _) if v < lo => Band::Below(lo),
            (_, Some(hi)) if v > hi => Band::Above(hi),
            (Some(lo), _) if v == lo => Band::Floor,
            _ => Band::Inside,
        }
    }

    /// Seconds a value of `metric` may hold still: `Some(0.0)` never stuck, `None` the
    /// fallback rule (48 announced intervals and at least 6 h).
    pub fn stuck_s(&self, metric: &str) -> Option<f64> {
        self.setting(metric).stuck_s
    }

    /// Every problem of `[quality]`.
    pub fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        let known = |m: &str| Kind::ALL.iter().any(|k| k.metric(m).is_some());
        let mut names: Vec<&String> = self.metric.keys().collect();
        names.sort();
        for name in names {
            let key = format!("quality.metric.{name}");
            if !known(name) {
                p.push(Problem::new(
                    key.clone(),
                    format!("{name:?} is not a metric of any kind"),
                ));
            }
            let s = self.setting(name);
            let finite = [s.min, s.max, s.stuck_s]
                .into_iter()
                .flatten()
                .all(f64::is_finite);
            if !finite {
                p.push(Problem::new(key.clone(), "values must be finite numbers"));
                continue;
            }
            if let (Some(lo), Some(hi)) = (s.min, s.max) {
                if lo >= hi {
                    p.push(Problem::new(
                        format!("{key}.min"),
                        format!("min {lo} must be below max {hi}"),
                    ));
                }
            }
            if s.stuck_s.is_some_and(|t| t < 0.0) {
                p.push(Problem::new(
                    format!("{key}.stuck_s"),
                    "must not be negative (0: never stuck)",
                ));
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_of_the_contract_has_a_band_except_analog() {
        let q = QualityRule::default();
        for kind in Kind::ALL {
            for m in kind.metrics() {
                let (lo, hi) = q.band(m.name);
                if m.name == "analog" {
                    assert_eq!((lo, hi), (None, None));
                    assert_eq!(q.stuck_s(m.name), None, "analog falls back");
                    continue;
                }
                let (lo, hi) = (lo.unwrap(), hi.unwrap());
                // Inside the physical range, which decode enforces.
                assert!(m.min <= lo && lo < hi && hi <= m.max, "{}", m.name);
                assert!(q.stuck_s(m.name).is_some(), "{}", m.name);
            }
        }
        assert_eq!(q.check("pressure_mpa", 0.0), Band::Floor);
        assert_eq!(q.check("pressure_mpa", 0.31), Band::Inside);
        assert_eq!(q.check("pressure_mpa", 2.5), Band::Inside);
        assert_eq!(q.check("pressure_mpa", 2.6), Band::Above(2.5));
        assert_eq!(q.check("analog", 1e9), Band::Inside);
    }

    #[test]
    fn an_override_changes_only_the_fields_it_gives() {
        let q: QualityRule =
            toml::from_str("[metric.pressure_mpa]\nmax = 1.6\n[metric.level_m]\nstuck_s = 0\n")
                .unwrap();
        assert!(q.validate().is_empty());
        assert_eq!(q.band("pressure_mpa"), (Some(0.0), Some(1.6)));
        assert_eq!(q.stuck_s("pressure_mpa"), Some(86_400.0));
        assert_eq!(q.stuck_s("level_m"), Some(0.0));
        assert_eq!(q.band("level_m"), (Some(0.0), Some(10.0)));
        assert_eq!(q.stuck_id, "device.stuck");
    }

    #[test]
    fn bad_overrides_are_reported_with_their_keys() {
        let q: QualityRule = toml::from_str(
            "[metric.presure_mpa]\nmax = 1\n[metric.level_m]\nmin = 5\nmax = 4\nstuck_s = -1\n",
        )
        .unwrap();
        let keys: Vec<String> = q.validate().into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "quality.metric.level_m.min",
                "quality.metric.level_m.stuck_s",
                "quality.metric.presure_mpa",
            ]
        );
        assert!(toml::from_str::<QualityRule>("[metric.level_m]\nmaximum = 4\n").is_err());
    }
}
