//! Contract decoding: topic + bytes → [`Message`] or [`Rejection`]. Pure: no I/O, no clock.

use crate::model::{
    parse_rfc3339, valid_id, Body, Class, Event, EventState, Kind, Message, Millis, Point, Reason,
    Sample, Status, MAX_PAYLOAD, TOPIC_PREFIX,
};
use serde_json::{Map, Value};

/// Earliest accepted `ts`: 2000-01-01T00:00:00Z.
const MIN_TS: Millis = 946_684_800_000;
/// Latest accepted `ts` relative to the receive time: 24 h ahead.
const MAX_FUTURE: Millis = 24 * 3600 * 1000;

/// Why a message was not accepted, with a human-readable detail.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The contract reason.
    pub reason: Reason,
    /// What exactly was wrong.
    pub detail: String,
}

impl Rejection {
    /// Builds a rejection.
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Rejection {
            reason,
            detail: detail.into(),
        }
    }
}

/// The outcome of decoding one publish.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A valid device message.
    Message(Box<Message>),
    /// A `command` echo of our own subscription: ignored, not rejected.
    Ignored,
}

/// The parts of a device topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topic<'a> {
    /// Building id.
    pub building: &'a str,
    /// Device kind.
    pub kind: Kind,
    /// Device id.
    pub device: &'a str,
    /// Message class.
    pub class: Class,
}

/// Parses `fw/v1/{building}/{kind}/{device}/{class}`.
pub fn parse_topic(topic: &str) -> Result<Topic<'_>, Rejection> {
    let rest = topic
        .strip_prefix(TOPIC_PREFIX)
        .ok_or_else(|| Rejection::new(Reason::Topic, "topic does not start with fw/v1/"))?;
    let mut parts = rest.split('/');
    let (Some(building), Some(kind), Some(device), Some(class), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(Rejection::new(
            Reason::Topic,
            "topic must be fw/v1/{building}/{kind}/{device}/{class}",
        ));
    };
    if !valid_id(building) {
        return Err(Rejection::new(
            Reason::Topic,
            format!("building id {building:?} is not [A-Za-z0-9_-]{{1,64}}"),
        ));
    }
    if !valid_id(device) {
        return Err(Rejection::new(
            Reason::Topic,
            format!("device id {device:?} is not [A-Za-z0-9_-]{{1,64}}"),
        ));
    }
    let kind: Kind = kind
        .parse()
        .map_err(|()| Rejection::new(Reason::Topic, format!("unknown kind {kind:?}")))?;
    let class: Class = class
        .parse()
        .map_err(|()| Rejection::new(Reason::Topic, format!("unknown class {class:?}")))?;
    Ok(Topic {
        building,
        kind,
        device,
        class,
    })
}

/// Decodes one publish received at `received` (epoch ms).
pub fn decode(
    topic: &str,
    payload: &[u8],
    retained: bool,
    received: Millis,
) -> Result<Decoded, Rejection> {
    let t = parse_topic(topic)?;
    if t.class == Class::Command {
        return Ok(Decoded::Ignored);
    }
    if payload.len() > MAX_PAYLOAD {
        return Err(Rejection::new(
            Reason::TooLarge,
            format!("payload is {} bytes, limit {MAX_PAYLOAD}", payload.len()),
        ));
    }
    let text = std::str::from_utf8(payload)
        .map_err(|e| Rejection::new(Reason::Json, format!("payload is not UTF-8: {e}")))?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Rejection::new(Reason::Json, format!("invalid JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(Rejection::new(
            Reason::Json,
            "payload is JSON but not an object",
        ));
    };

    let ts = match obj.get("ts") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_ts(v, received)?),
    };
    let seq = match obj.get("seq") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| Rejection::new(Reason::Schema, "seq must be an unsigned integer"))?,
        ),
    };
    let body = match t.class {
        Class::Telemetry => Body::Telemetry(decode_values(t.kind, &obj)?),
        Class::Event => Body::Event(decode_event(t.kind, &obj)?),
        Class::Status => Body::Status(decode_status(&obj)?),
        Class::Command => return Ok(Decoded::Ignored),
    };
    Ok(Decoded::Message(Box::new(Message {
        building: t.building.to_owned(),
        kind: t.kind,
        device: t.device.to_owned(),
        ts: ts.unwrap_or(received),
        has_ts: ts.is_some(),
        received,
        seq,
        retained,
        body,
    })))
}

fn parse_ts(v: &Value, received: Millis) -> Result<Millis, Rejection> {
    let ms = match v {
        Value::String(s) => parse_rfc3339(s).ok_or_else(|| {
            Rejection::new(
                Reason::Schema,
                format!("ts {s:?} is not RFC 3339 with an offset"),
            )
        })?,
        Value::Number(n) => n.as_i64().ok_or_else(|| {
            Rejection::new(Reason::Schema, "ts must be integer epoch milliseconds")
        })?,
        _ => {
            return Err(Rejection::new(
                Reason::Schema,
                "ts must be an RFC 3339 string or epoch milliseconds",
            ))
        }
    };
    if ms < MIN_TS {
        return Err(Rejection::new(Reason::Timestamp, "ts is before 2000"));
    }
    if ms > received.saturating_add(MAX_FUTURE) {
        return Err(Rejection::new(
            Reason::Timestamp,
            "ts is more than 24 h in the future",
        ));
    }
    Ok(ms)
}

fn number(v: &Value, what: &str) -> Result<f64, Rejection> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| Rejection::new(Reason::Range, format!("{what} is not a finite number"))),
        _ => Err(Rejection::new(
            Reason::Schema,
            format!("{what} must be a number"),
        )),
    }
}

fn decode_values(kind: Kind, obj: &Map<String, Value>) -> Result<Vec<Sample>, Rejection> {
    let values = match obj.get("values") {
        Some(Value::Object(v)) => v,
        Some(_) => return Err(Rejection::new(Reason::Schema, "values must be an object")),
        None => return Err(Rejection::new(Reason::Schema, "telemetry needs values")),
    };
    if values.is_empty() {
        return Err(Rejection::new(Reason::Schema, "values is empty"));
    }
    let mut out = Vec::with_capacity(values.len());
    for (name, v) in values {
        let spec = kind.metric(name).ok_or_else(|| {
            Rejection::new(
                Reason::UnknownMetric,
                format!("metric {name:?} is not defined for kind {kind}"),
            )
        })?;
        let mut push = |channel: Option<&str>, v: &Value| -> Result<(), Rejection> {
            let what = match channel {
                Some(c) => format!("values.{name}.{c}"),
                None => format!("values.{name}"),
            };
            let x = number(v, &what)?;
            if !x.is_finite() || x < spec.min || x > spec.max {
                return Err(Rejection::new(
                    Reason::Range,
                    format!("{what} = {x} is outside {} – {}", spec.min, spec.max),
                ));
            }
            out.push(Sample {
                metric: spec.name,
                channel: channel.map(str::to_owned),
                value: x,
            });
            Ok(())
        };
        match v {
            Value::Object(channels) => {
                if channels.is_empty() {
                    return Err(Rejection::new(
                        Reason::Schema,
                        format!("values.{name} has no channels"),
                    ));
                }
                for (c, cv) in channels {
                    if c.is_empty() || c.len() > 64 {
                        return Err(Rejection::new(
                            Reason::Schema,
                            format!("values.{name} has a channel name of length {}", c.len()),
                        ));
                    }
                    push(Some(c), cv)?;
                }
            }
            other => push(None, other)?,
        }
    }
    Ok(out)
}

fn opt_str(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, Rejection> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= 1024 => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(Rejection::new(
            Reason::Schema,
            format!("{key} is longer than 1024 bytes"),
        )),
        Some(_) => Err(Rejection::new(
            Reason::Schema,
            format!("{key} must be a string"),
        )),
    }
}

fn decode_event(kind: Kind, obj: &Map<String, Value>) -> Result<Event, Rejection> {
    let name = match obj.get("event") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(Rejection::new(Reason::Schema, "event must be a string")),
        None => return Err(Rejection::new(Reason::Schema, "event message needs event")),
    };
    if !kind.events().contains(&name.as_str()) {
        return Err(Rejection::new(
            Reason::Schema,
            format!("event {name:?} is not defined for kind {kind}"),
        ));
    }
    let state = match obj.get("state") {
        Some(Value::String(s)) => match s.as_str() {
            "start" => EventState::Start,
            "end" => EventState::End,
            "pulse" => EventState::Pulse,
            other => {
                return Err(Rejection::new(
                    Reason::Schema,
                    format!("state {other:?} is not start, end or pulse"),
                ))
            }
        },
        Some(_) => return Err(Rejection::new(Reason::Schema, "state must be a string")),
        None => return Err(Rejection::new(Reason::Schema, "event message needs state")),
    };
    let confidence = match obj.get("confidence") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let c = number(v, "confidence")?;
            if !(0.0..=1.0).contains(&c) {
                return Err(Rejection::new(
                    Reason::Range,
                    format!("confidence {c} is outside 0 – 1"),
                ));
            }
            Some(c)
        }
    };
    let point = match obj.get("point") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => Some(
            serde_json::from_value::<Point>(v.clone())
                .map_err(|e| Rejection::new(Reason::Schema, format!("point: {e}")))?,
        ),
        Some(_) => return Err(Rejection::new(Reason::Schema, "point must be an object")),
    };
    Ok(Event {
        name,
        state,
        zone: opt_str(obj, "zone")?,
        confidence,
        point,
        snapshot_url: opt_str(obj, "snapshot_url")?,
        reference: opt_str(obj, "ref")?,
    })
}

fn decode_status(obj: &Map<String, Value>) -> Result<Status, Rejection> {
    let online = match obj.get("online") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(Rejection::new(Reason::Schema, "online must be a boolean")),
    };
    let ranged = |key: &str, lo: f64, hi: f64| -> Result<Option<f64>, Rejection> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                let x = number(v, key)?;
                if !x.is_finite() || x < lo || x > hi {
                    return Err(Rejection::new(
                        Reason::Range,
                        format!("{key} = {x} is outside {lo} – {hi}"),
                    ));
                }
                Ok(Some(x))
            }
        }
    };
    let interval_s = match obj.get("interval_s") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=86_400 * 7).contains(&n) => Some(n),
            _ => {
                return Err(Rejection::new(
                    Reason::Schema,
                    "interval_s must be an integer from 1 to 604800",
                ))
            }
        },
    };
    Ok(Status {
        online,
        battery_pct: ranged("battery_pct", 0.0, 100.0)?,
        rssi_dbm: ranged("rssi_dbm", -200.0, 0.0)?,
        firmware: opt_str(obj, "firmware")?,
        interval_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_795_908_600_000;

    fn reason(topic: &str, payload: &str) -> Reason {
        match decode(topic, payload.as_bytes(), false, NOW) {
            Err(r) => r.reason,
            Ok(d) => panic!("expected a rejection, got {d:?}"),
        }
    }

    fn message(topic: &str, payload: &str) -> Message {
        match decode(topic, payload.as_bytes(), false, NOW) {
            Ok(Decoded::Message(m)) => *m,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    #[test]
    fn decodes_multi_channel_telemetry() {
        let m = message(
            "fw/v1/b1/electrical/e1/telemetry",
            r#"{"ts": 1795908600000, "seq": 7, "values": {"residual_current_ma": 120, "temperature_c": {"L1": 41.2, "N": 35.0}}}"#,
        );
        assert_eq!(m.ts, 1_795_908_600_000);
        assert_eq!(m.seq, Some(7));
        let Body::Telemetry(s) = m.body else {
            panic!("not telemetry")
        };
        assert_eq!(s.len(), 3);
        assert!(s.contains(&Sample {
            metric: "temperature_c",
            channel: Some("L1".into()),
            value: 41.2
        }));
    }

    #[test]
    fn missing_ts_uses_receive_time() {
        let m = message(
            "fw/v1/b1/water_pressure/p1/telemetry",
            r#"{"values": {"pressure_mpa": 0.3}}"#,
        );
        assert_eq!(m.ts, NOW);
        assert!(!m.has_ts);
    }

    #[test]
    fn decodes_events_and_status() {
        let m = message(
            "fw/v1/b1/fire_lane/c1/event",
            r#"{"event": "fire_lane_blocked", "state": "start", "zone": "north", "confidence": 0.93, "extra": 1}"#,
        );
        let Body::Event(e) = m.body else { panic!() };
        assert_eq!(e.state, EventState::Start);
        assert_eq!(e.channel().as_deref(), Some("north"));
        let m = message(
            "fw/v1/b1/transmitter/t1/status",
            r#"{"online": false, "battery_pct": 87, "rssi_dbm": -71, "firmware": "1.4.2", "interval_s": 30}"#,
        );
        let Body::Status(s) = m.body else { panic!() };
        assert_eq!(s.online, Some(false));
        assert_eq!(s.interval_s, Some(30));
    }

    #[test]
    fn commands_are_ignored() {
        assert_eq!(
            decode("fw/v1/b1/transmitter/t1/command", b"{}", false, NOW),
            Ok(Decoded::Ignored)
        );
    }

    #[test]
    fn every_decode_reason_is_reachable() {
        let tel = "fw/v1/b1/water_pressure/p1/telemetry";
        assert_eq!(reason("fw/v1/b1/pump/p1/telemetry", "{}"), Reason::Topic);
        assert_eq!(
            reason("fw/v1/b 1/water_pressure/p1/telemetry", "{}"),
            Reason::Topic
        );
        assert_eq!(
            reason("fw/v1/b1/water_pressure/p1/blah", "{}"),
            Reason::Topic
        );
        assert_eq!(reason(tel, "not json"), Reason::Json);
        assert_eq!(reason(tel, "[1,2]"), Reason::Json);
        assert_eq!(reason(tel, r#"{"values": 3}"#), Reason::Schema);
        assert_eq!(
            reason(tel, r#"{"values": {"pressure_mpa": "x"}}"#),
            Reason::Schema
        );
        assert_eq!(
            reason(tel, r#"{"seq": -1, "values": {"pressure_mpa": 1}}"#),
            Reason::Schema
        );
        assert_eq!(
            reason(tel, r#"{"values": {"level_m": 1}}"#),
            Reason::UnknownMetric
        );
        assert_eq!(
            reason(tel, r#"{"values": {"pressure_mpa": 4.5}}"#),
            Reason::Range
        );
        assert_eq!(
            reason(tel, r#"{"values": {"pressure_mpa": -0.1}}"#),
            Reason::Range
        );
        assert_eq!(
            reason(tel, r#"{"ts": 5, "values": {"pressure_mpa": 1}}"#),
            Reason::Timestamp
        );
        let future = format!(
            r#"{{"ts": {}, "values": {{"pressure_mpa": 1}}}}"#,
            NOW + 25 * 3_600_000
        );
        assert_eq!(reason(tel, &future), Reason::Timestamp);
        let big = format!(
            r#"{{"values": {{"pressure_mpa": 1}}, "pad": "{}"}}"#,
            "x".repeat(70_000)
        );
        assert_eq!(reason(tel, &big), Reason::TooLarge);
        assert_eq!(
            decode(tel, &[0xff, 0xfe], false, NOW).map_err(|r| r.reason),
            Err(Reason::Json)
        );
        let ev = "fw/v1/b1/fire_lane/c1/event";
        assert_eq!(
            reason(ev, r#"{"event": "fire_alarm", "state": "start"}"#),
            Reason::Schema
        );
        assert_eq!(
            reason(ev, r#"{"event": "smoke", "state": "maybe"}"#),
            Reason::Schema
        );
        assert_eq!(
            reason(
                ev,
                r#"{"event": "smoke", "state": "start", "confidence": 1.5}"#
            ),
            Reason::Range
        );
    }

    #[test]
    fn nan_like_numbers_never_pass() {
        // serde_json refuses NaN and Infinity literals, so they are JSON errors.
        let tel = "fw/v1/b1/water_pressure/p1/telemetry";
        assert_eq!(
            reason(tel, r#"{"values": {"pressure_mpa": NaN}}"#),
            Reason::Json
        );
        assert_eq!(
            reason(tel, r#"{"values": {"pressure_mpa": 1e999}}"#),
            Reason::Json
        );
    }
}
