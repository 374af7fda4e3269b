//! Scenario files (`simulators/scenarios/*.toml`): a fleet of buildings and devices, a timeline
//! of incidents, and the alerts the run must (and must not) produce.

use anyhow::{bail, Context};
use firewatch::model::{BuildingClass, Kind};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Parses `500ms`, `30s`, `2m`, `1h`, `1h30m` or a plain number of seconds.
pub fn parse_duration(s: &str) -> anyhow::Result<f64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<f64>() {
        return Ok(n);
    }
    let mut total = 0.0;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let unit = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            0.001
        } else {
            match c {
                'h' => 3600.0,
                'm' => 60.0,
                's' => 1.0,
                'd' => 86_400.0,
                _ => bail!("{s:?}: unknown unit {c:?} (use ms, s, m, h, d)"),
            }
        };
        let n: f64 = num
            .parse()
            .with_context(|| format!("{s:?}: a number must come before each unit"))?;
        total += n * unit;
        num.clear();
        any = true;
    }
    if !num.is_empty() || !any {
        bail!("{s:?} is not a duration like 30s, 2m or 1h30m");
    }
    Ok(total)
}

/// [`parse_duration`] for command-line arguments.
pub fn parse_duration_arg(s: &str) -> Result<f64, String> {
    parse_duration(s).map_err(|e| format!("{e:#}"))
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum D {
        S(String),
        N(f64),
    }
    match D::deserialize(d)? {
        D::S(s) => parse_duration(&s).map_err(serde::de::Error::custom),
        D::N(n) => Ok(n),
    }
}

fn opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    duration(d).map(Some)
}

/// A scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name.
    pub name: String,
    /// What it shows.
    #[serde(default)]
    pub description: String,
    /// Device time the scenario lasts.
    #[serde(deserialize_with = "duration")]
    pub duration: f64,
    /// Simulation step, device time.
    #[serde(default = "one_second", deserialize_with = "duration")]
    pub tick: f64,
    /// Default seed.
    #[serde(default)]
    pub seed: u64,
    /// Buildings and devices.
    pub fleet: Fleet,
    /// Timeline.
    #[serde(default, rename = "incident")]
    pub incidents: Vec<Incident>,
    /// Alerts the run must produce (checked with `--expect`).
    #[serde(default, rename = "expect")]
    pub expects: Vec<Expect>,
}

fn one_second() -> f64 {
    1.0
}

/// The fleet: `buildings` buildings `{prefix}-001…`, each with `devices` per kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    /// Number of buildings.
    pub buildings: u32,
    /// Building id prefix.
    pub prefix: String,
    /// Building classes, cycled over the buildings.
    #[serde(default)]
    pub classes: Vec<BuildingClass>,
    /// Devices per building, by kind.
    pub devices: BTreeMap<Kind, u32>,
    /// Reporting interval by kind (seconds of device time): telemetry for sensors, the
    /// `status` heartbeat for cameras and transmitters.
    #[serde(default)]
    pub interval_s: BTreeMap<Kind, f64>,
    /// Kinds powered by battery (they report `battery_pct`).
    #[serde(default)]
    pub battery: Vec<Kind>,
}

/// One incident on the timeline.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incident {
    /// When, device time from the start.
    #[serde(deserialize_with = "duration")]
    pub at: f64,
    /// Device id (see [`device_id`]); for `raw`, optional.
    #[serde(default)]
    pub device: Option<String>,
    /// What happens (see docs/benchmarks.md and the README of the scenarios).
    pub what: String,
    /// Target value.
    #[serde(default)]
    pub value: Option<f64>,
    /// Second value (oscillation).
    #[serde(default)]
    pub value2: Option<f64>,
    /// Rate per minute (leaks, drains).
    #[serde(default)]
    pub rate_per_min: Option<f64>,
    /// How long, device time.
    #[serde(default, deserialize_with = "opt_duration")]
    pub duration: Option<f64>,
    /// Event name.
    #[serde(default)]
    pub event: Option<String>,
    /// Event state (start, end, pulse).
    #[serde(default)]
    pub state: Option<String>,
    /// Zone.
    #[serde(default)]
    pub zone: Option<String>,
    /// Confidence.
    #[serde(default)]
    pub confidence: Option<f64>,
    /// Channel (electrical temperature channel).
    #[serde(default)]
    pub channel: Option<String>,
    /// GB/T 26875.3 point of a transmitter event.
    #[serde(default)]
    pub point: Option<serde_json::Value>,
    /// Raw topic.
    #[serde(default)]
    pub topic: Option<String>,
    /// Raw payload text.
    #[serde(default)]
    pub payload: Option<String>,
    /// Raw payload as hex (binary).
    #[serde(default)]
    pub payload_hex: Option<String>,
    /// Repeat count / size.
    #[serde(default)]
    pub count: Option<u64>,
    /// Note printed when it happens.
    #[serde(default)]
    pub note: Option<String>,
}

/// An alert the run must produce.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Rule id.
    pub rule: String,
    /// Device id.
    pub device: String,
    /// Channel, zone or point, when the alert has one.
    #[serde(default)]
    pub channel: Option<String>,
}

/// Short prefix of a kind in device ids.
pub fn kind_prefix(k: Kind) -> &'static str {
    match k {
        Kind::WaterPressure => "wp",
        Kind::WaterLevel => "wl",
        Kind::Electrical => "ef",
        Kind::FireLane => "cam",
        Kind::Transmitter => "uitd",
    }
}

/// Building id `{prefix}-{n:03}` (n from 1).
pub fn building_id(prefix: &str, n: u32) -> String {
    format!("{prefix}-{n:03}")
}

/// Device id `{kind prefix}-{fleet prefix}-{building number:03}-{n}` (n from 1), e.g.
/// `wp-town-003-1`: unique across scenarios, as the contract wants device ids.
pub fn device_id(fleet_prefix: &str, kind: Kind, building: u32, n: u32) -> String {
    format!("{}-{fleet_prefix}-{building:03}-{n}", kind_prefix(kind))
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let s: Scenario =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        s.check()?;
        Ok(s)
    }

    /// Every device id of the fleet, with its building and kind.
    pub fn devices(&self) -> Vec<(String, String, Kind, BuildingClass)> {
        let f = &self.fleet;
        let mut out = Vec::new();
        for b in 1..=f.buildings {
            let class = if f.classes.is_empty() {
                BuildingClass::Unknown
            } else {
                f.classes[(b as usize - 1) % f.classes.len()]
            };
            for (kind, n) in &f.devices {
                for i in 1..=*n {
                    out.push((
                        device_id(&f.prefix, *kind, b, i),
                        building_id(&f.prefix, b),
                        *kind,
                        class,
                    ));
                }
            }
        }
        out
    }

    /// A firewatch registry for the fleet (TOML).
    pub fn registry(&self, strict: bool) -> String {
        let f = &self.fleet;
        let mut s = format!(
            "# Registry for scenario {:?}\nstrict = {strict}\n",
            self.name
        );
        let expected: Vec<String> = f
            .devices
            .iter()
            .map(|(k, n)| format!("{} = {n}", k.as_str()))
            .collect();
        let devices = self.devices();
        for b in 1..=f.buildings {
            let id = building_id(&f.prefix, b);
            let class = devices
                .iter()
                .find(|d| d.1 == id)
                .map_or("unknown", |d| d.3.as_str());
            s.push_str(&format!(
                "\n[[building]]\nid = \"{id}\"\nname = \"{} building {b}\"\nclass = \"{class}\"\nexpected = {{ {} }}\n",
                self.name,
                expected.join(", ")
            ));
        }
        for (id, building, kind, _) in &devices {
            s.push_str(&format!(
                "\n[[device]]\nid = \"{id}\"\nbuilding = \"{building}\"\nkind = \"{}\"\n",
                kind.as_str()
            ));
            if f.battery.contains(kind) {
                s.push_str("power = \"battery\"\n");
            }
        }
        s
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.tick <= 0.0 || self.duration <= 0.0 {
            bail!("tick and duration must be positive");
        }
        let ids: std::collections::HashSet<String> =
            self.devices().into_iter().map(|d| d.0).collect();
        for (i, inc) in self.incidents.iter().enumerate() {
            if let Some(d) = &inc.device {
                if !ids.contains(d) {
                    bail!(
                        "incident[{i}] ({}): device {d:?} is not in the fleet",
                        inc.what
                    );
                }
            } else if inc.what != "raw" {
                bail!("incident[{i}] ({}) needs a device", inc.what);
            }
            if inc.at > self.duration {
                bail!("incident[{i}] at {} s is after the end", inc.at);
            }
        }
        for (i, e) in self.expects.iter().enumerate() {
            if !ids.contains(&e.device) {
                bail!("expect[{i}]: device {:?} is not in the fleet", e.device);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2m").unwrap(), 120.0);
        assert_eq!(parse_duration("1h30m").unwrap(), 5400.0);
        assert_eq!(parse_duration("500ms").unwrap(), 0.5);
        assert_eq!(parse_duration("45").unwrap(), 45.0);
        assert!(parse_duration("2 weeks").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn shipped_scenarios_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        for name in ["town", "incidents", "chaos"] {
            let s = Scenario::load(&dir.join(format!("{name}.toml")))
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert!(!s.devices().is_empty());
            let reg = firewatch::registry::Registry::parse(&s.registry(true))
                .unwrap_or_else(|p| panic!("{name} registry: {p:?}"));
            assert_eq!(reg.devices.len(), s.devices().len());
        }
    }
}
