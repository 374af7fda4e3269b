//! The domain model shared by the service and the simulators: kinds, classes, metrics,
//! severities, decoded messages and the topic layout of the wire contract (docs/contract.md).

/// `FromStr` and `Display` by wire name for a closed set with `ALL` and `as_str`.
macro_rules! wire_enum {
    ($t:ty) => {
        impl std::str::FromStr for $t {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                <$t>::ALL.into_iter().find(|v| v.as_str() == s).ok_or(())
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub mod alert;
pub mod decode;
pub mod notification;
pub mod silence;
pub mod summary;
pub mod workorder;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Topic prefix of every device topic: `fw/v1/{building}/{kind}/{device}/{class}`.
pub const TOPIC_PREFIX: &str = "fw/v1/";
/// The one subscription firewatch holds.
pub const SUBSCRIPTION: &str = "fw/v1/+/+/+/+";
/// Prefix under which rejected messages are republished: `fw/v1/_rejected/{reason}`.
pub const REJECTED_PREFIX: &str = "fw/v1/_rejected/";
/// Largest accepted payload.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// The topic of a device message: `fw/v1/{building}/{kind}/{device}/{class}`.
pub fn topic(building: &str, kind: Kind, device: &str, class: Class) -> String {
    format!(
        "{TOPIC_PREFIX}{building}/{}/{device}/{}",
        kind.as_str(),
        class.as_str()
    )
}

/// Epoch milliseconds, the one time type inside the pipeline.
pub type Millis = i64;

/// Device kind (second topic segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Fire-water pipe-network pressure monitor.
    WaterPressure,
    /// Fire water tank or pool level monitor.
    WaterLevel,
    /// Electrical fire monitor.
    Electrical,
    /// Fire-lane AI camera.
    FireLane,
    /// Control-room user information transmission device (GB 26875).
    Transmitter,
}

impl Kind {
    /// All kinds, in contract order.
    pub const ALL: [Kind; 5] = [
        Kind::WaterPressure,
        Kind::WaterLevel,
        Kind::Electrical,
        Kind::FireLane,
        Kind::Transmitter,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::WaterPressure => "water_pressure",
            Kind::WaterLevel => "water_level",
            Kind::Electrical => "electrical",
            Kind::FireLane => "fire_lane",
            Kind::Transmitter => "transmitter",
        }
    }

    /// Telemetry metrics this kind may send, with their physical range.
    pub fn metrics(self) -> &'static [MetricSpec] {
        const WATER_PRESSURE: &[MetricSpec] = &[MetricSpec::new("pressure_mpa", 0.0, 4.0)];
        const WATER_LEVEL: &[MetricSpec] = &[
            MetricSpec::new("level_m", 0.0, 100.0),
            MetricSpec::new("level_pct", 0.0, 100.0),
        ];
        const ELECTRICAL: &[MetricSpec] = &[
            MetricSpec::new("residual_current_ma", 0.0, 10_000.0),
            MetricSpec::new("temperature_c", -40.0, 400.0),
            MetricSpec::new("arc_count", 0.0, 200.0),
            MetricSpec::new("current_a", 0.0, 10_000.0),
            MetricSpec::new("voltage_v", 0.0, 1000.0),
        ];
        const TRANSMITTER: &[MetricSpec] = &[MetricSpec::new("analog", f64::MIN, f64::MAX)];
        match self {
            Kind::WaterPressure => WATER_PRESSURE,
            Kind::WaterLevel => WATER_LEVEL,
            Kind::Electrical => ELECTRICAL,
            Kind::Transmitter => TRANSMITTER,
            Kind::FireLane => &[],
        }
    }

    /// Looks a metric of this kind up by name.
    pub fn metric(self, name: &str) -> Option<&'static MetricSpec> {
        self.metrics().iter().find(|m| m.name == name)
    }

    /// Event names this kind may send.
    pub fn events(self) -> &'static [&'static str] {
        match self {
            Kind::FireLane => &[
                "fire_lane_blocked",
                "exit_blocked",
                "exit_locked",
                "ebike_in_elevator",
                "ebike_charging",
                "smoke",
                "flame",
            ],
            Kind::Transmitter => &[
                "fire_alarm",
                "manual_alarm",
                "fault",
                "supervisory",
                "shield",
                "startup",
                "feedback",
                "main_power_fault",
                "backup_power_fault",
                "link_fault",
                "reset",
                "self_test",
                "duty_check_answer",
            ],
            Kind::Electrical => &[
                "residual_current_alarm",
                "temperature_alarm",
                "arc_fault",
                "sensor_fault",
            ],
            Kind::WaterPressure | Kind::WaterLevel => &["sensor_fault", "tamper"],
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s).ok_or(())
    }
}

/// A telemetry metric and its physical range (inclusive).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricSpec {
    /// Wire name, e.g. `pressure_mpa`.
    pub name: &'static str,
    /// Smallest physically possible value.
    pub min: f64,
    /// Largest physically possible value.
    pub max: f64,
}

impl MetricSpec {
    const fn new(name: &'static str, min: f64, max: f64) -> Self {
        MetricSpec { name, min, max }
    }
}

/// Message class (last topic segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Periodic readings.
    Telemetry,
    /// Discrete events with a state.
    Event,
    /// Health and heartbeat; retained; the last will.
    Status,
    /// firewatch → device; ignored on ingest.
    Command,
}

impl Class {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Class::Telemetry => "telemetry",
            Class::Event => "event",
            Class::Status => "status",
            Class::Command => "command",
        }
    }
}

impl FromStr for Class {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "telemetry" => Ok(Class::Telemetry),
            "event" => Ok(Class::Event),
            "status" => Ok(Class::Status),
            "command" => Ok(Class::Command),
            _ => Err(()),
        }
    }
}

/// Alert severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Informational record.
    Info,
    /// Device faults, offline, battery.
    Minor,
    /// A fire-safety hazard.
    Major,
    /// Fire, flame, smoke, manual alarm.
    Critical,
}

impl Severity {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Minor => "minor",
            Severity::Major => "major",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "info" => Ok(Severity::Info),
            "minor" => Ok(Severity::Minor),
            "major" => Ok(Severity::Major),
            "critical" => Ok(Severity::Critical),
            _ => Err(()),
        }
    }
}

/// State of an event (`start`/`end` bound a condition, `pulse` is instantaneous).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventState {
    /// The condition begins (or is re-asserted).
    Start,
    /// The condition ends.
    End,
    /// An instantaneous event.
    Pulse,
}

/// Why a message was rejected (contract section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Topic does not match the contract.
    Topic,
    /// Payload is not a JSON object in UTF-8.
    Json,
    /// A known field has the wrong type or an impossible value.
    Schema,
    /// A metric not listed for the kind.
    UnknownMetric,
    /// NaN, infinite or outside the physical range.
    Range,
    /// `ts` too far in the future or before 2000.
    Timestamp,
    /// Payload over 64 KiB.
    TooLarge,
    /// Device not in the registry while the registry is strict.
    Unregistered,
    /// Topic building or kind disagrees with the registry.
    Binding,
    /// Same `seq` seen before.
    Duplicate,
}

impl Reason {
    /// All reasons, for metrics exposition.
    pub const ALL: [Reason; 10] = [
        Reason::Topic,
        Reason::Json,
        Reason::Schema,
        Reason::UnknownMetric,
        Reason::Range,
        Reason::Timestamp,
        Reason::TooLarge,
        Reason::Unregistered,
        Reason::Binding,
        Reason::Duplicate,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Topic => "topic",
            Reason::Json => "json",
            Reason::Schema => "schema",
            Reason::UnknownMetric => "unknown_metric",
            Reason::Range => "range",
            Reason::Timestamp => "timestamp",
            Reason::TooLarge => "too_large",
            Reason::Unregistered => "unregistered",
            Reason::Binding => "binding",
            Reason::Duplicate => "duplicate",
        }
    }

    /// Index into per-reason counter arrays.
    pub fn index(self) -> usize {
        Reason::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One numeric sample of a telemetry message.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name (one of the kind's metrics).
    pub metric: &'static str,
    /// Channel for multi-channel metrics (`L1`, `N`, …).
    pub channel: Option<String>,
    /// The value, finite and inside the physical range.
    pub value: f64,
}

/// GB/T 26875.3 point of a transmitter event.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Point {
    /// Facility system type (1 = fire alarm system).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_type: Option<u32>,
    /// Facility system address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_addr: Option<u32>,
    /// Component type (40 = smoke detector, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_type: Option<u32>,
    /// Component address as sent (hex string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_addr: Option<String>,
    /// Component description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A decoded `event` message.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Event name (one of the kind's events).
    pub name: String,
    /// start / end / pulse.
    pub state: EventState,
    /// Camera zone, panel loop/point or channel.
    pub zone: Option<String>,
    /// Detector confidence 0–1.
    pub confidence: Option<f64>,
    /// Transmitter point.
    pub point: Option<Point>,
    /// Picture of the scene.
    pub snapshot_url: Option<String>,
    /// Correlates an answer to a command.
    pub reference: Option<String>,
}

impl Event {
    /// The channel an event condition is tracked under: its zone, else its point address.
    pub fn channel(&self) -> Option<String> {
        self.zone
            .clone()
            .or_else(|| self.point.as_ref().and_then(|p| p.component_addr.clone()))
    }
}

/// A decoded `status` message.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Status {
    /// Online flag (`false` in the last will).
    pub online: Option<bool>,
    /// Battery charge, %.
    pub battery_pct: Option<f64>,
    /// Signal strength, dBm.
    pub rssi_dbm: Option<f64>,
    /// Firmware version.
    pub firmware: Option<String>,
    /// The device's own reporting interval.
    pub interval_s: Option<u64>,
}

/// The body of a decoded message.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// Readings.
    Telemetry(Vec<Sample>),
    /// An event.
    Event(Event),
    /// Health.
    Status(Status),
}

/// A message that passed contract validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Building id from the topic.
    pub building: String,
    /// Kind from the topic.
    pub kind: Kind,
    /// Device id from the topic.
    pub device: String,
    /// Measurement time (device `ts`, else receive time).
    pub ts: Millis,
    /// Whether the device sent `ts`.
    pub has_ts: bool,
    /// When firewatch received it.
    pub received: Millis,
    /// Per-device sequence number.
    pub seq: Option<u64>,
    /// Delivered as a retained message (not a fresh sign of life).
    pub retained: bool,
    /// What it says.
    pub body: Body,
}

impl Message {
    /// The topic class of this message.
    pub fn class(&self) -> Class {
        match self.body {
            Body::Telemetry(_) => Class::Telemetry,
            Body::Event(_) => Class::Event,
            Body::Status(_) => Class::Status,
        }
    }
}

/// Building class, which sets the minimum fire-water pressure (GB 50974-2014 5.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildingClass {
    /// High-rise residential building.
    Residential,
    /// Class-2 high-rise public building.
    PublicClass2,
    /// Class-1 high-rise public building up to 100 m.
    PublicClass1,
    /// Class-1 high-rise public building over 100 m.
    #[serde(rename = "public_class1_over_100m")]
    PublicClass1Over100m,
    /// Industrial building.
    Industrial,
    /// Not known.
    Unknown,
}

impl BuildingClass {
    /// The configuration name.
    pub const fn as_str(self) -> &'static str {
        match self {
            BuildingClass::Residential => "residential",
            BuildingClass::PublicClass2 => "public_class2",
            BuildingClass::PublicClass1 => "public_class1",
            BuildingClass::PublicClass1Over100m => "public_class1_over_100m",
            BuildingClass::Industrial => "industrial",
            BuildingClass::Unknown => "unknown",
        }
    }
}

/// Formats epoch milliseconds as RFC 3339 UTC with millisecond precision
/// (`2026-11-29T09:30:00.000Z`); outside the years 0000 to 9999, whatever the `time` crate
/// writes, or the number itself where it has no date.
pub fn rfc3339(ms: Millis) -> String {
    match rfc3339_bytes(ms) {
        Some(b) => b.iter().copied().map(char::from).collect(),
        None => rfc3339_by_time(ms),
    }
}

/// The first and last millisecond of the years 0000 to 9999.
const RFC3339_FAST: std::ops::RangeInclusive<Millis> = -62_167_219_200_000..=253_402_300_799_999;

/// [`rfc3339`] as its 24 ASCII bytes, worked out with integer arithmetic (no formatter, no
/// allocation): a device history writes one per row. `None` outside the years 0000 to 9999.
pub fn rfc3339_bytes(ms: Millis) -> Option<[u8; 24]> {
    if !RFC3339_FAST.contains(&ms) {
        return None;
    }
    let days = ms.div_euclid(86_400_000);
    let of_day = ms.rem_euclid(86_400_000);
    // Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut b = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: i64| {
        for i in (at..at + width).rev() {
            // `v % 10` is a digit: the range check above bounds every field.
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, of_day / 3_600_000);
    put(14, 2, of_day / 60_000 % 60);
    put(17, 2, of_day / 1_000 % 60);
    put(20, 3, of_day % 1_000);
    Some(b)
}

/// Epoch milliseconds that serialize as their [`rfc3339`] string, without allocating one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc3339(pub Millis);

impl Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match rfc3339_bytes(self.0) {
            Some(b) => match std::str::from_utf8(&b) {
                Ok(text) => s.serialize_str(text),
                Err(_) => s.serialize_str(&rfc3339_by_time(self.0)),
            },
            None => s.serialize_str(&rfc3339_by_time(self.0)),
        }
    }
}

/// [`rfc3339`] through the `time` crate's formatter.
fn rfc3339_by_time(ms: Millis) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => {
            let format = time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            );
            t.format(&format).unwrap_or_else(|_| ms.to_string())
        }
        Err(_) => ms.to_string(),
    }
}

/// Parses an RFC 3339 timestamp into epoch milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// True when `s` is a valid building or device id: `[A-Za-z0-9_-]{1,64}`.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        let ms = 1_795_908_600_123;
        assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms));
        assert_eq!(
            parse_rfc3339("2026-11-29T09:30:00+08:00"),
            Some(1_795_915_800_000)
        );
    }

    #[test]
    fn the_fast_rfc3339_writes_what_the_time_crate_writes() {
        let fast = |ms: Millis| {
            let b = rfc3339_bytes(ms).unwrap();
            String::from_utf8(b.to_vec()).unwrap()
        };
        let (first, last) = (*RFC3339_FAST.start(), *RFC3339_FAST.end());
        let mut edges = vec![
            0,
            -1,
            1,
            999,
            86_399_999,
            86_400_000,
            1_795_908_600_123,
            // 2000-02-29, 2100-03-01 (no leap day), 2400-02-29 and the days around them.
            951_782_400_000,
            4_107_542_400_000,
            13_574_563_200_000,
            first,
            first + 1,
            last,
            last - 1,
        ];
        // Every day of 1896 to 2104 at a time of day that moves, and some instants all over
        // the range (a fixed linear congruential sequence).
        let day: Millis = 86_400_000;
        let mut ms = -2_335_219_200_000;
        while ms < 4_260_211_200_000 {
            edges.push(ms + (ms / day).rem_euclid(day));
            ms += day;
        }
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..100_000 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let span = (last - first) as u64;
            edges.push(first + (x % span) as i64);
        }
        for ms in edges {
            assert_eq!(fast(ms), rfc3339_by_time(ms), "{ms}");
            assert_eq!(rfc3339(ms), rfc3339_by_time(ms), "{ms}");
            assert_eq!(
                serde_json::to_string(&Rfc3339(ms)).unwrap(),
                format!("\"{}\"", rfc3339_by_time(ms))
            );
        }
        // Outside the years 0000 to 9999: what the `time` crate writes, or the number.
        for ms in [first - 1, last + 1, i64::MIN, i64::MAX] {
            assert_eq!(rfc3339_bytes(ms), None);
            assert_eq!(rfc3339(ms), rfc3339_by_time(ms));
            assert_eq!(
                serde_json::to_string(&Rfc3339(ms)).unwrap(),
                format!("\"{}\"", rfc3339_by_time(ms))
            );
        }
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(last), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(first), "0000-01-01T00:00:00.000Z");
    }

    #[test]
    fn ids_follow_the_contract() {
        assert!(valid_id("bsy-0012"));
        assert!(valid_id("wp_0012-03"));
        assert!(!valid_id(""));
        assert!(!valid_id("a/b"));
        assert!(!valid_id(&"x".repeat(65)));
    }
}
