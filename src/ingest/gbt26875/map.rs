//! From GB/T 26875.3 uploads to the wire contract's messages (`event`, `telemetry` and
//! `status` payloads of a `transmitter`), so that everything downstream of the decoder works
//! as for MQTT. Status words become events by their changes: a bit that sets is a `start`, a
//! bit that clears an `end`; the first word of a component on a connection also ends what it
//! does not set (the panel's full state). Operation flags are pulses.

use super::adu::{Adu, Component, Operation, System};
use super::frame::{Profile, TimeLabel};
use crate::model::{rfc3339, Millis};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// One contract message for the transmitter.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// `event`, `telemetry` or `status`.
    pub suffix: &'static str,
    /// Its JSON payload.
    pub payload: Value,
}

/// What one upload became.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mapped {
    /// The messages, in order.
    pub messages: Vec<Message>,
    /// Object times that were no time or far from the receive time (a panel clock never set):
    /// the receive time was used.
    pub clock_unset: u32,
}

/// Bits of a status word and the events they are. Several bits may be one event (a fault).
type Bits = &'static [(&'static [u32], &'static str)];

/// Facility system status (type 1).
const SYSTEM: Bits = &[
    (&[1], "fire_alarm"),
    (&[2, 10], "fault"),
    (&[3], "shield"),
    (&[4], "supervisory"),
    (&[5], "startup"),
    (&[6], "feedback"),
    (&[8], "main_power_fault"),
    (&[9], "backup_power_fault"),
];

/// Component status (type 2); bit 8 is the component's power fault.
const COMPONENT: Bits = &[
    (&[1], "fire_alarm"),
    (&[2, 8], "fault"),
    (&[3], "shield"),
    (&[4], "supervisory"),
    (&[5], "startup"),
    (&[6], "feedback"),
];

/// Transmitter status (type 21); bit 5 (its channel to the centre) is this connection.
const UITD: Bits = &[
    (&[1], "fire_alarm"),
    (&[2], "fault"),
    (&[3], "main_power_fault"),
    (&[4], "backup_power_fault"),
    (&[6], "link_fault"),
];

/// Operation flags (types 4 and 24) that are events, as pulses.
const OPERATIONS: &[(u32, &str)] = &[
    (0, "reset"),
    (2, "manual_alarm"),
    (4, "self_test"),
    (5, "duty_check_answer"),
];

/// How far an object time may lie before the receive time (buffered events after a link
/// loss) and after it, to be believed.
const PAST_MS: Millis = 7 * 86_400_000;
const FUTURE_MS: Millis = 5 * 60_000;

/// Where a status word comes from, to track its changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    System(System),
    Component(System, u32),
    Uitd,
}

/// The mapping state of one connection: the last status word of each source.
#[derive(Debug, Default)]
pub struct Mapper {
    last: HashMap<Source, u32>,
}

/// A component address as sent, in hex (`0A000200`): the alert's channel.
pub fn component_addr(addr: u32) -> String {
    hex::encode_upper(addr.to_le_bytes())
}

fn point_of(system: Option<System>, c: Option<&Component>, description: Option<&str>) -> Value {
    let mut p = Map::new();
    if let Some(s) = system.or(c.map(|c| c.system)) {
        p.insert("system_type".into(), s.kind.into());
        p.insert("system_addr".into(), s.addr.into());
    }
    if let Some(c) = c {
        p.insert("component_type".into(), c.kind.into());
        p.insert("component_addr".into(), component_addr(c.addr).into());
    }
    if let Some(d) = description
        .map(|d| d.trim_matches(' '))
        .filter(|d| !d.is_empty())
    {
        p.insert("description".into(), d.into());
    }
    Value::Object(p)
}

impl Mapper {
    /// A mapper that has seen nothing.
    pub fn new() -> Mapper {
        Mapper::default()
    }

    /// The contract messages of one upload (`None`: an empty ADU, a heartbeat) received at
    /// `received`.
    pub fn map(&mut self, adu: Option<&Adu>, p: &Profile, received: Millis) -> Mapped {
        let mut out = Mapped::default();
        let Some(adu) = adu else {
            out.push("status", json!({ "online": true }));
            return out;
        };
        match adu {
            Adu::SystemStatus(v) => {
                for (s, word, t) in v {
                    let ts = out.time(t, p, received);
                    let point = point_of(Some(*s), None, None);
                    self.word(
                        &mut out,
                        Source::System(*s),
                        u32::from(*word),
                        SYSTEM,
                        ts,
                        &point,
                    );
                }
            }
            Adu::ComponentStatus(v) => {
                for c in v {
                    let ts = out.time(&c.time, p, received);
                    let point = point_of(None, Some(&c.component), Some(&c.description));
                    let src = Source::Component(c.component.system, c.component.addr);
                    self.word(&mut out, src, u32::from(c.status), COMPONENT, ts, &point);
                }
            }
            Adu::UitdStatus(v) => {
                for (word, t) in v {
                    let ts = out.time(t, p, received);
                    self.word(
                        &mut out,
                        Source::Uitd,
                        u32::from(*word),
                        UITD,
                        ts,
                        &Value::Null,
                    );
                }
            }
            Adu::SystemOperation(v) | Adu::UitdOperation(v) => {
                for op in v {
                    out.operation(op, p, received);
                }
            }
            Adu::ComponentAnalog(v) => {
                for a in v {
                    let ts = out.time(&a.time, p, received);
                    let value = f64::from(a.raw) * p.scale(a.kind);
                    let channel = component_addr(a.component.addr);
                    out.push(
                        "telemetry",
                        json!({"ts": rfc3339(ts), "values": {"analog": {channel: value}}}),
                    );
                }
            }
            Adu::UitdVersion(major, minor) => {
                out.push("status", json!({"firmware": format!("{major}.{minor}")}));
            }
            // Versions, configurations and times of the facilities, and the transmitter's
            // own: kept in the frame record, nothing for the rules.
            _ => {}
        }
        out
    }

    fn word(
        &mut self,
        out: &mut Mapped,
        src: Source,
        word: u32,
        bits: Bits,
        ts: Millis,
        point: &Value,
    ) {
        let before = self.last.insert(src, word);
        let on = |w: u32, b: &[u32]| b.iter().any(|bit| w & (1 << bit) != 0);
        for (b, event) in bits {
            let now = on(word, b);
            let state = match before {
                Some(w) if on(w, b) == now => continue,
                None if !now => "end",
                _ if now => "start",
                _ => "end",
            };
            let mut m = json!({"ts": rfc3339(ts), "event": event, "state": state});
            if !point.is_null() {
                m["point"] = point.clone();
            }
            out.push("event", m);
        }
    }
}

impl Mapped {
    fn push(&mut self, suffix: &'static str, payload: Value) {
        self.messages.push(Message { suffix, payload });
    }

    /// The object time if it is believable, else the receive time (counted).
    fn time(&mut self, t: &TimeLabel, p: &Profile, received: Millis) -> Millis {
        match t.millis(p) {
            Some(ms) if ms >= received - PAST_MS && ms <= received + FUTURE_MS => ms,
            _ => {
                self.clock_unset += 1;
                received
            }
        }
    }

    fn operation(&mut self, op: &Operation, p: &Profile, received: Millis) {
        let ts = self.time(&op.time, p, received);
        for (bit, event) in OPERATIONS {
            if u32::from(op.flags) & (1 << bit) == 0 {
                continue;
            }
            // On a facility (type 4) bit 5 is "confirm", not a duty-check answer.
            if *bit == 5 && op.system.is_some() {
                continue;
            }
            let mut m = json!({"ts": rfc3339(ts), "event": event, "state": "pulse"});
            if op.system.is_some() {
                m["point"] = point_of(op.system, None, None);
            }
            self.push("event", m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::gbt26875::adu::ComponentStatus;

    fn at(s: &str) -> Millis {
        s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    fn smoke(status: u16, t: Millis) -> Adu {
        let p = Profile::default();
        Adu::ComponentStatus(vec![ComponentStatus {
            component: Component {
                system: System { kind: 1, addr: 1 },
                kind: 40,
                addr: 0x0002_000A,
            },
            status,
            description: "3F 东走廊    ".into(),
            time: TimeLabel::at(t, &p),
        }])
    }

    fn events(m: &Mapped) -> Vec<(String, String)> {
        m.messages
            .iter()
            .filter(|m| m.suffix == "event")
            .map(|m| {
                (
                    m.payload["event"].as_str().unwrap().to_owned(),
                    m.payload["state"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn status_words_become_events_by_their_changes() {
        let p = Profile::default();
        let now = at("2026-12-01T02:00:00Z");
        let mut m = Mapper::new();
        // First word: the fire alarm starts, everything else it does not set ends.
        let first = m.map(Some(&smoke(0x0002, now - 3000)), &p, now);
        assert_eq!(
            events(&first),
            pairs(&[
                ("fire_alarm", "start"),
                ("fault", "end"),
                ("shield", "end"),
                ("supervisory", "end"),
                ("startup", "end"),
                ("feedback", "end"),
            ])
        );
        let e = &first.messages[0].payload;
        assert_eq!(e["ts"], "2026-12-01T01:59:57.000Z", "the object time");
        assert_eq!(
            e["point"],
            json!({"system_type": 1, "system_addr": 1, "component_type": 40,
                   "component_addr": "0A000200", "description": "3F 东走廊"})
        );
        // The same word again: nothing. The power-fault bit: a fault starts.
        assert_eq!(
            events(&m.map(Some(&smoke(0x0002, now)), &p, now)),
            pairs(&[])
        );
        assert_eq!(
            events(&m.map(Some(&smoke(0x0102, now)), &p, now)),
            pairs(&[("fault", "start")])
        );
        // Back to normal: both end.
        assert_eq!(
            events(&m.map(Some(&smoke(0x0001, now)), &p, now)),
            pairs(&[("fire_alarm", "end"), ("fault", "end")])
        );
    }

    #[test]
    fn transmitter_status_operations_analog_values_and_heartbeats() {
        let p = Profile::default();
        let now = at("2026-12-01T02:00:00Z");
        let t = TimeLabel::at(now, &p);
        let mut m = Mapper::new();
        let s = m.map(Some(&Adu::UitdStatus(vec![(0x08, t)])), &p, now);
        assert_eq!(events(&s)[0], ("fire_alarm".into(), "end".into()));
        assert!(events(&s).contains(&("main_power_fault".into(), "start".into())));
        let ops = Adu::UitdOperation(vec![Operation {
            system: None,
            flags: 0x20,
            operator: 1,
            time: t,
        }]);
        assert_eq!(
            events(&m.map(Some(&ops), &p, now)),
            pairs(&[("duty_check_answer", "pulse")])
        );
        // A facility's "confirm" (bit 5 of type 4) is no duty-check answer; a reset is a reset.
        let ops = Adu::SystemOperation(vec![Operation {
            system: Some(System { kind: 1, addr: 1 }),
            flags: 0x21,
            operator: 1,
            time: t,
        }]);
        assert_eq!(
            events(&m.map(Some(&ops), &p, now)),
            pairs(&[("reset", "pulse")])
        );
        // Pressure in kPa (type 5, 0.1): 350 → 35.0.
        let a = Adu::ComponentAnalog(vec![crate::ingest::gbt26875::adu::Analog {
            component: Component {
                system: System { kind: 11, addr: 1 },
                kind: 99,
                addr: 7,
            },
            kind: 5,
            raw: 350,
            time: t,
        }]);
        let v = m.map(Some(&a), &p, now);
        assert_eq!(v.messages[0].suffix, "telemetry");
        assert_eq!(v.messages[0].payload["values"]["analog"]["07000000"], 35.0);
        let hb = m.map(None, &p, now);
        assert_eq!(
            hb.messages,
            [Message {
                suffix: "status",
                payload: json!({"online": true})
            }]
        );
    }

    #[test]
    fn a_panel_clock_never_set_is_flagged_and_the_receive_time_used() {
        let p = Profile::default();
        let now = at("2026-12-01T02:00:00Z");
        let mut m = Mapper::new();
        let mut adu = smoke(0x0002, now);
        if let Adu::ComponentStatus(v) = &mut adu {
            v[0].time = TimeLabel([0, 0, 0, 1, 1, 0]); // 2000-01-01
        }
        let out = m.map(Some(&adu), &p, now);
        assert_eq!(out.clock_unset, 1);
        assert_eq!(out.messages[0].payload["ts"], rfc3339(now));
        let mut adu = smoke(0x0002, now);
        if let Adu::ComponentStatus(v) = &mut adu {
            v[0].time = TimeLabel([0; 6]);
        }
        assert_eq!(Mapper::new().map(Some(&adu), &p, now).clock_unset, 1);
    }
}
