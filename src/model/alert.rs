//! Alerts as the contract shows them (section 3): the closed sets of their people-side status
//! and classification, and the alert record itself.

use super::{rfc3339, Kind, Millis, Severity};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// People-side status of an alert: `open` → `acknowledged` → `closed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Nobody has acknowledged it yet.
    Open,
    /// A person has taken it on.
    Acknowledged,
    /// Closed with a classification.
    Closed,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 3] = [Status::Open, Status::Acknowledged, Status::Closed];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Acknowledged => "acknowledged",
            Status::Closed => "closed",
        }
    }
}

/// Why an alert was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    /// A real fire or hazard (真实警情).
    Real,
    /// A false alarm (误报).
    FalseAlarm,
    /// A test (测试).
    Test,
    /// A device fault (设备故障).
    Fault,
    /// The hazard was removed.
    Resolved,
}

impl Classification {
    /// Every classification.
    pub const ALL: [Classification; 5] = [
        Classification::Real,
        Classification::FalseAlarm,
        Classification::Test,
        Classification::Fault,
        Classification::Resolved,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Classification::Real => "real",
            Classification::FalseAlarm => "false_alarm",
            Classification::Test => "test",
            Classification::Fault => "fault",
            Classification::Resolved => "resolved",
        }
    }

    /// `real, false_alarm, …` for error messages.
    pub fn list() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

wire_enum!(Status);
wire_enum!(Classification);

/// What the on-site check of an alert (现场核实) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    /// A real fire (真实火警): 119 must have been called.
    Real,
    /// A false alarm (误报).
    FalseAlarm,
    /// A test (测试).
    Test,
    /// A device fault (设备故障).
    Fault,
}

impl Verification {
    /// Every result.
    pub const ALL: [Verification; 4] = [
        Verification::Real,
        Verification::FalseAlarm,
        Verification::Test,
        Verification::Fault,
    ];

    /// The wire name (the same as the matching [`Classification`]).
    pub const fn as_str(self) -> &'static str {
        match self {
            Verification::Real => "real",
            Verification::FalseAlarm => "false_alarm",
            Verification::Test => "test",
            Verification::Fault => "fault",
        }
    }

    /// `real, false_alarm, …` for error messages.
    pub fn list() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }

    /// Whether closing as `c` says the same as this verification.
    pub fn agrees_with(self, c: Classification) -> bool {
        self.as_str() == c.as_str()
    }
}

wire_enum!(Verification);

/// The confirmation side of an alert, kept apart from [`Alert`] (whose fields every stage
/// builds): the on-site check and the work order raised for it. Shown in the alert JSON.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Confirmation {
    /// When it was verified on site.
    pub verified_at: Option<Millis>,
    /// By whom.
    pub verified_by: Option<String>,
    /// What the check found.
    pub verification: Option<Verification>,
    /// When 119 was called (a real fire).
    pub called_119_at: Option<Millis>,
    /// The work order raised for the alert (its numeric id).
    pub workorder: Option<i64>,
}

impl Confirmation {
    /// Sets its fields in an alert's JSON (from [`Alert::to_json`]).
    pub fn apply(&self, j: &mut Value) {
        let t = |v: Option<Millis>| v.map(rfc3339);
        j["verified_at"] = t(self.verified_at).into();
        j["verified_by"] = self.verified_by.clone().into();
        j["verification"] = self.verification.map(Verification::as_str).into();
        j["called_119_at"] = t(self.called_119_at).into();
        j["workorder"] = self.workorder.map(super::workorder::workorder_id).into();
    }
}

/// An alert: one condition on one device (and channel), from firing until a person closes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Numeric id (shown as `a-000123`).
    pub id: i64,
    /// Rule id.
    pub rule: String,
    /// Severity.
    pub severity: Severity,
    /// Building.
    pub building: String,
    /// Kind.
    pub kind: Kind,
    /// Device.
    pub device: String,
    /// Channel.
    pub channel: Option<String>,
    /// Condition holds now.
    pub active: bool,
    /// open, acknowledged, closed.
    pub status: Status,
    /// Value.
    pub value: Option<f64>,
    /// Threshold.
    pub threshold: Option<f64>,
    /// Message.
    pub message: String,
    /// Started.
    pub started_at: Millis,
    /// Last change.
    pub updated_at: Millis,
    /// Cleared.
    pub cleared_at: Option<Millis>,
    /// Acknowledged.
    pub acknowledged_at: Option<Millis>,
    /// By whom.
    pub acknowledged_by: Option<String>,
    /// Closed.
    pub closed_at: Option<Millis>,
    /// By whom.
    pub closed_by: Option<String>,
    /// Classification on close.
    pub classification: Option<Classification>,
    /// When the acknowledgement deadline of its escalation policy passed unacknowledged.
    pub sla_missed_at: Option<Millis>,
}

#[cfg(test)]
impl Alert {
    /// An open, active alert of rule `r` on device `d`, for unit tests.
    pub fn sample(severity: super::Severity, kind: super::Kind, building: &str) -> Alert {
        Alert {
            id: 1,
            rule: "r".into(),
            severity,
            building: building.into(),
            kind,
            device: "d".into(),
            channel: None,
            active: true,
            status: Status::Open,
            value: None,
            threshold: None,
            message: "m".into(),
            started_at: 0,
            updated_at: 0,
            cleared_at: None,
            acknowledged_at: None,
            acknowledged_by: None,
            closed_at: None,
            closed_by: None,
            classification: None,
            sla_missed_at: None,
        }
    }
}

/// Formats an alert id.
pub fn alert_id(id: i64) -> String {
    format!("a-{id:06}")
}

/// (added) The API path listing the alerts that match `filters` (`[("device", "tx-1")]`), to link
/// a report row to its history.
pub fn alerts_link(filters: &[(&str, &str)]) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    /// What a query value may hold as is: RFC 3986's unreserved characters.
    const VALUE: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    let q: Vec<String> = filters
        .iter()
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, VALUE)))
        .collect();
    format!("/api/v1/alerts?{}", q.join("&"))
}

/// The API path of one alert.
pub fn alert_link(id: i64) -> String {
    format!("/api/v1/alerts/{}", alert_id(id))
}

/// Parses `a-000123` (or `123`).
pub fn parse_alert_id(s: &str) -> Option<i64> {
    s.strip_prefix("a-")
        .unwrap_or(s)
        .parse()
        .ok()
        .filter(|n| *n > 0)
}

/// The symbols of acknowledgement codes: digits and capitals without 0/O, 1/I/L.
const CODE_SYMBOLS: &[u8; 31] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
/// Codes have four symbols: 31⁴ of them.
const CODE_SPACE: i64 = 31 * 31 * 31 * 31;
/// Consecutive alerts get codes far apart (a multiplier prime to 31), so a mistyped code
/// hardly ever names a neighbouring alert.
const CODE_MUL: i64 = 500_009;
/// Its inverse modulo [`CODE_SPACE`].
const CODE_MUL_INV: i64 = 91_571;
const CODE_ADD: i64 = 271_828;

/// The short acknowledgement code of an alert (e.g. `K7Q2`), for replies by chat or SMS.
/// Distinct for 923,521 consecutive alert ids; the code alone is not a secret (the inbound
/// endpoint needs a token).
pub fn ack_code(id: i64) -> String {
    let mut v = (id.rem_euclid(CODE_SPACE) * CODE_MUL + CODE_ADD).rem_euclid(CODE_SPACE);
    let mut out = [b'2'; 4];
    for c in out.iter_mut().rev() {
        *c = CODE_SYMBOLS[(v % 31) as usize];
        v /= 31;
    }
    out.iter().map(|&b| char::from(b)).collect()
}

/// The alert ids a code can name: those congruent to the returned residue modulo
/// [`ack_code_space`]. Case and surrounding blanks do not matter; `None` for a malformed code.
pub fn ack_code_residue(code: &str) -> Option<i64> {
    let code = code.trim();
    if code.len() != 4 {
        return None;
    }
    let mut v = 0i64;
    for b in code.bytes() {
        let d = CODE_SYMBOLS
            .iter()
            .position(|&s| s == b.to_ascii_uppercase())?;
        v = v * 31 + d as i64;
    }
    Some(((v - CODE_ADD) * CODE_MUL_INV).rem_euclid(CODE_SPACE))
}

/// How many distinct codes there are.
pub const fn ack_code_space() -> i64 {
    CODE_SPACE
}

impl Alert {
    /// The contract JSON (section 3); `notes` filled from history when given.
    pub fn to_json(&self, notes: Vec<Value>) -> Value {
        let t = |v: Option<Millis>| v.map(rfc3339);
        json!({
            "id": alert_id(self.id),
            "rule": self.rule,
            "severity": self.severity.as_str(),
            "building": self.building,
            "kind": self.kind.as_str(),
            "device": self.device,
            "channel": self.channel,
            "active": self.active,
            "status": self.status.as_str(),
            "value": self.value,
            "threshold": self.threshold,
            "message": self.message,
            "started_at": rfc3339(self.started_at),
            "updated_at": rfc3339(self.updated_at),
            "cleared_at": t(self.cleared_at),
            "acknowledged_at": t(self.acknowledged_at),
            "acknowledged_by": self.acknowledged_by,
            "closed_at": t(self.closed_at),
            "closed_by": self.closed_by,
            "classification": self.classification.map(Classification::as_str),
            "ack_code": ack_code(self.id),
            "sla_missed_at": t(self.sla_missed_at),
            "verified_at": null,
            "verified_by": null,
            "verification": null,
            "called_119_at": null,
            "workorder": null,
            "notes": notes,
        })
    }
}

/// What happened to a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// The condition now holds: open (or re-activate) the alert.
    Fired,
    /// The condition no longer holds.
    Cleared,
    /// Still active after `repeat_s`: remind.
    Repeat,
}

/// One alert-worthy change, produced by the engine and applied by the alert manager.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// Fired, cleared or repeat.
    pub change: Change,
    /// Rule id.
    pub rule: String,
    /// Building id.
    pub building: String,
    /// Device kind.
    pub kind: Kind,
    /// Device id.
    pub device: String,
    /// Channel, zone or point.
    pub channel: Option<String>,
    /// Severity.
    pub severity: Severity,
    /// When (epoch ms).
    pub at: Millis,
    /// When the condition began.
    pub since: Millis,
    /// The value that caused it, when numeric.
    pub value: Option<f64>,
    /// The level it was compared with.
    pub threshold: Option<f64>,
    /// Human-readable description.
    pub message: String,
    /// An instantaneous event: the alert opens already inactive.
    pub pulse: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_codes_are_short_distinct_and_read_back() {
        let mut seen = std::collections::HashSet::new();
        for id in 1..=20_000 {
            let c = ack_code(id);
            assert_eq!(c.len(), 4);
            assert!(c.bytes().all(|b| CODE_SYMBOLS.contains(&b)), "{c}");
            assert!(seen.insert(c.clone()), "{id}: {c} twice");
            assert_eq!(ack_code_residue(&c), Some(id));
            assert_eq!(
                ack_code_residue(&format!(" {} ", c.to_lowercase())),
                Some(id)
            );
        }
        // Neighbours differ in more than the last symbol.
        let (a, b) = (ack_code(41), ack_code(42));
        assert_ne!(a[..3], b[..3], "{a} {b}");
        assert_eq!(ack_code_residue(&ack_code(ack_code_space() + 7)), Some(7));
        for bad in ["", "K7Q", "K7Q2X", "K7Q0", "K7QI", "K7Q-"] {
            assert_eq!(ack_code_residue(bad), None, "{bad}");
        }
    }

    #[test]
    fn closed_sets_round_trip_through_their_wire_names() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>(), Ok(s));
        }
        for c in Classification::ALL {
            assert_eq!(c.as_str().parse::<Classification>(), Ok(c));
        }
        assert!("maybe".parse::<Classification>().is_err());
        assert_eq!(parse_alert_id("a-000123"), Some(123));
        assert_eq!(parse_alert_id("a-0"), None);
    }
}
