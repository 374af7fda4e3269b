//! Device models for the five kinds. Each device steps through device time and returns the
//! messages it would publish; incidents change its state. Pure: no I/O, no clock.

use crate::rng::Rng;
use crate::scenario::Incident;
use firewatch::model::{BuildingClass, Class, Kind};
use serde_json::{json, Value};

/// A message a device publishes.
#[derive(Debug, Clone, PartialEq)]
pub struct Out {
    /// Topic class.
    pub class: Class,
    /// Payload.
    pub payload: Value,
    /// Retained (status).
    pub retain: bool,
}

/// A connection-level action the runner must take for a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkAction {
    /// Drop the connection without DISCONNECT: the broker publishes the last will.
    DropWithWill,
    /// Disconnect cleanly and stop: a device gone without a last will.
    Vanish,
    /// Connect again.
    Reconnect,
}

#[derive(Debug, Clone)]
enum Model {
    Pressure {
        standby: f64,
        value: f64,
        jockey: bool,
        leak_per_s: f64,
        hold: Option<(f64, f64)>,           // (value, until)
        oscillate: Option<(f64, f64, f64)>, // (lo, hi, until)
    },
    Level {
        value: f64,
        high: f64,
        refill: bool,
        rate_per_s: f64,
        floor: f64,
    },
    Electrical {
        residual: f64,
        residual_target: Option<(f64, f64, f64)>, // (from, to, over_s) started at t0
        residual_t0: f64,
        channels: Vec<(String, f64, Option<f64>)>, // (name, base, overheat value)
        arc: Option<(f64, f64)>,                   // (count, until)
    },
    Events,
}

/// One simulated device.
#[derive(Debug, Clone)]
pub struct Device {
    /// Device id.
    pub id: String,
    /// Building id.
    pub building: String,
    /// Kind.
    pub kind: Kind,
    interval: f64,
    announced_interval: u64,
    next_report: f64,
    next_status: f64,
    /// Next `seq`.
    pub seq: u64,
    rng: Rng,
    battery: Option<f64>,
    rssi: f64,
    /// Publishing at all.
    pub alive: bool,
    /// Added to `ts` (clock skew), ms.
    pub skew_ms: i64,
    model: Model,
    ends: Vec<(f64, Value)>, // scheduled event ends: (at, payload)
    /// Answer duty checks.
    pub answers_duty_checks: bool,
    last: Option<Out>,
}

/// Standby pressure by building class (MPa): comfortably above the class minimum.
fn standby_pressure(class: BuildingClass) -> f64 {
    match class {
        BuildingClass::Residential | BuildingClass::PublicClass2 => 0.25,
        BuildingClass::PublicClass1 | BuildingClass::Industrial | BuildingClass::Unknown => 0.32,
        BuildingClass::PublicClass1Over100m => 0.45,
    }
}

impl Device {
    /// A device of `kind` reporting every `interval` s of device time. `speed` scales the
    /// `interval_s` it announces, so firewatch's offline timeout follows the replay speed.
    #[allow(
        clippy::too_many_arguments,
        reason = "one plain constructor of the model"
    )]
    pub fn new(
        id: &str,
        building: &str,
        kind: Kind,
        class: BuildingClass,
        interval: f64,
        battery: bool,
        speed: f64,
        rng: &Rng,
    ) -> Device {
        let mut rng = rng.derive(id);
        let model = match kind {
            Kind::WaterPressure => {
                let standby = standby_pressure(class);
                Model::Pressure {
                    standby,
                    value: standby + rng.noise(0.005),
                    jockey: false,
                    leak_per_s: 0.0,
                    hold: None,
                    oscillate: None,
                }
            }
            Kind::WaterLevel => Model::Level {
                value: rng.range(3.0, 3.6),
                high: 3.8,
                refill: false,
                rate_per_s: 0.0,
                floor: 0.0,
            },
            Kind::Electrical => Model::Electrical {
                residual: rng.range(60.0, 140.0),
                residual_target: None,
                residual_t0: 0.0,
                channels: ["L1", "L2", "L3", "N"]
                    .iter()
                    .map(|c| (c.to_string(), rng.range(30.0, 38.0), None))
                    .collect(),
                arc: None,
            },
            Kind::FireLane | Kind::Transmitter => Model::Events,
        };
        let phase = rng.range(0.0, interval.max(1.0));
        Device {
            id: id.to_owned(),
            building: building.to_owned(),
            kind,
            interval,
            announced_interval: ((interval / speed).round() as u64).max(1),
            next_report: phase,
            next_status: 0.0,
            seq: 0,
            battery: battery.then(|| rng.range(60.0, 100.0)),
            rssi: rng.range(-95.0, -60.0),
            alive: true,
            skew_ms: 0,
            model,
            ends: Vec::new(),
            answers_duty_checks: true,
            last: None,
            rng,
        }
    }

    /// The topic of one of its message classes.
    pub fn topic(&self, class: Class) -> String {
        firewatch::model::topic(&self.building, self.kind, &self.id, class)
    }

    /// The last will: `{"online": false}` on its status topic.
    pub fn will(&self) -> Out {
        Out {
            class: Class::Status,
            payload: json!({"online": false}),
            retain: true,
        }
    }

    fn stamp(&mut self, mut payload: Value, wall_ms: i64, seq: bool) -> Value {
        payload["ts"] = json!(wall_ms + self.skew_ms);
        if seq {
            payload["seq"] = json!(self.seq);
            self.seq += 1;
        }
        payload
    }

    fn status(&mut self, wall_ms: i64) -> Out {
        let mut p = json!({
            "online": true,
            "rssi_dbm": (self.rssi + self.rng.noise(1.5)).round(),
            "firmware": "2.3.1",
            "interval_s": self.announced_interval,
        });
        if let Some(b) = self.battery {
            p["battery_pct"] = json!(b.round());
        }
        Out {
            class: Class::Status,
            payload: self.stamp(p, wall_ms, false),
            retain: true,
        }
    }

    /// Advances to device time `t` (seconds) by `dt`; returns what it publishes.
    pub fn step(&mut self, t: f64, dt: f64, wall_ms: i64) -> Vec<Out> {
        let mut out = Vec::new();
        self.physics(t, dt);
        if !self.alive {
            return out;
        }
        if t >= self.next_status {
            self.next_status = t + self.status_interval();
            out.push(self.status(wall_ms));
        }
        // Scheduled event ends.
        let mut due = Vec::new();
        self.ends.retain(|(at, p)| {
            if *at <= t {
                due.push(p.clone());
                false
            } else {
                true
            }
        });
        for p in due {
            out.push(Out {
                class: Class::Event,
                payload: self.stamp(p, wall_ms, true),
                retain: false,
            });
        }
        if matches!(self.model, Model::Events) {
            return out;
        }
        if t >= self.next_report {
            self.next_report += self.interval;
            if self.next_report <= t {
                self.next_report = t + self.interval;
            }
            let values = self.values();
            out.push(Out {
                class: Class::Telemetry,
                payload: self.stamp(json!({ "values": values }), wall_ms, true),
                retain: false,
            });
        }
        if let Some(o) = out.last() {
            self.last = Some(o.clone());
        }
        out
    }

    fn status_interval(&self) -> f64 {
        match self.kind {
            // Cameras and transmitters beat on their interval; sensors report status less often.
            Kind::FireLane | Kind::Transmitter => self.interval,
            _ => self.interval * 10.0,
        }
    }

    fn physics(&mut self, t: f64, dt: f64) {
        if let Some(b) = self.battery.as_mut() {
            *b = (*b - dt * 1e-6).max(0.0);
        }
        match &mut self.model {
            Model::Pressure {
                standby,
                value,
                jockey,
                leak_per_s,
                hold,
                oscillate,
            } => {
                if let Some((_, until)) = hold {
                    if t >= *until {
                        *hold = None;
                        *value = *standby;
                    }
                }
                if let Some((_, _, until)) = oscillate {
                    if t >= *until {
                        *oscillate = None;
                        *value = *standby;
                    }
                }
                // Natural slow loss, topped up by the jockey pump (a few cycles an hour).
                *value -= (0.000_25 + *leak_per_s) * dt;
                if *leak_per_s == 0.0 {
                    if *value < *standby - 0.03 {
                        *jockey = true;
                    }
                    if *jockey {
                        *value += 0.005 * dt;
                        if *value >= *standby + 0.01 {
                            *jockey = false;
                        }
                    }
                }
                *value = value.clamp(0.0, 4.0);
            }
            Model::Level {
                value,
                high,
                refill,
                rate_per_s,
                floor,
            } => {
                if *rate_per_s > 0.0 {
                    *value = (*value - *rate_per_s * dt).max(*floor);
                } else {
                    *value -= 0.000_02 * dt;
                    if *value < *high - 0.5 {
                        *refill = true;
                    }
                    if *refill {
                        *value += 0.002 * dt;
                        if *value >= *high - 0.1 {
                            *refill = false;
                        }
                    }
                }
                *value = value.clamp(0.0, 100.0);
            }
            Model::Electrical {
                residual,
                residual_target,
                residual_t0,
                arc,
                ..
            } => {
                if let Some((from, to, over)) = residual_target {
                    let k = ((t - *residual_t0) / over.max(1.0)).clamp(0.0, 1.0);
                    *residual = *from + (*to - *from) * k;
                }
                if let Some((_, until)) = arc {
                    if t >= *until {
                        *arc = None;
                    }
                }
            }
            Model::Events => {}
        }
    }

    fn values(&mut self) -> Value {
        let noise = self.rng.noise(1.0);
        match &self.model {
            Model::Pressure {
                value,
                hold,
                oscillate,
                ..
            } => {
                let v = if let Some((v, _)) = hold {
                    *v
                } else if let Some((lo, hi, _)) = oscillate {
                    if self.seq % 2 == 0 {
                        *lo
                    } else {
                        *hi
                    }
                } else {
                    *value + noise * 0.002
                };
                json!({"pressure_mpa": round(v.clamp(0.0, 4.0), 3)})
            }
            Model::Level { value, .. } => {
                json!({"level_m": round(*value, 3), "level_pct": round((value / 4.0 * 100.0).clamp(0.0, 100.0), 1)})
            }
            Model::Electrical {
                residual,
                channels,
                arc,
                ..
            } => {
                // Daily load cycle: temperatures follow the load.
                let load = 0.5 + 0.4 * (self.next_report / 86_400.0 * std::f64::consts::TAU).sin();
                let mut temps = serde_json::Map::new();
                for (name, base, over) in channels {
                    let v = over.unwrap_or(base + 12.0 * load + noise * 0.3);
                    temps.insert(name.clone(), json!(round(v, 1)));
                }
                let arcs = arc.map_or(0.0, |(c, _)| c);
                json!({
                    // Natural leakage grows with the load (cable capacitance, appliances).
                    "residual_current_ma": round((residual + 25.0 * load + noise * 3.0).max(0.0), 1),
                    "temperature_c": temps,
                    "arc_count": arcs,
                    "current_a": round(40.0 * load + noise, 1),
                })
            }
            Model::Events => json!({}),
        }
    }

    /// Applies an incident at device time `t`; returns messages to publish now and a link
    /// action, if any.
    pub fn apply(
        &mut self,
        inc: &Incident,
        t: f64,
        wall_ms: i64,
    ) -> (Vec<Out>, Option<LinkAction>) {
        let until = t + inc.duration.unwrap_or(f64::INFINITY);
        let mut out = Vec::new();
        let mut action = None;
        match (inc.what.as_str(), &mut self.model) {
            ("leak", Model::Pressure { leak_per_s, .. }) => {
                *leak_per_s = inc.rate_per_min.unwrap_or(0.01) / 60.0;
            }
            ("valve_closed" | "burst" | "overpressure" | "dip", Model::Pressure { hold, .. }) => {
                *hold = Some((inc.value.unwrap_or(0.02), until));
            }
            ("oscillate", Model::Pressure { oscillate, .. }) => {
                *oscillate = Some((
                    inc.value.unwrap_or(0.105),
                    inc.value2.unwrap_or(0.115),
                    until,
                ));
            }
            (
                "restore",
                Model::Pressure {
                    hold,
                    oscillate,
                    leak_per_s,
                    value,
                    standby,
                    ..
                },
            ) => {
                *hold = None;
                *oscillate = None;
                *leak_per_s = 0.0;
                *value = *standby;
            }
            (
                "drain",
                Model::Level {
                    rate_per_s, floor, ..
                },
            ) => {
                *rate_per_s = inc.rate_per_min.unwrap_or(0.2) / 60.0;
                *floor = inc.value.unwrap_or(0.0);
            }
            (
                "fill",
                Model::Level {
                    value, rate_per_s, ..
                },
            ) => {
                *rate_per_s = 0.0;
                *value = inc.value.unwrap_or(3.5);
            }
            (
                "leak_current",
                Model::Electrical {
                    residual,
                    residual_target,
                    residual_t0,
                    ..
                },
            ) => {
                *residual_target = Some((
                    *residual,
                    inc.value.unwrap_or(450.0),
                    inc.duration.unwrap_or(60.0),
                ));
                *residual_t0 = t;
            }
            ("overheat", Model::Electrical { channels, .. }) => {
                let ch = inc.channel.clone().unwrap_or_else(|| "L1".into());
                for c in channels.iter_mut().filter(|c| c.0 == ch) {
                    c.2 = inc.value;
                }
            }
            ("arc_burst", Model::Electrical { arc, .. }) => {
                *arc = Some((inc.value.unwrap_or(20.0), t + inc.duration.unwrap_or(10.0)));
            }
            (
                "normal",
                Model::Electrical {
                    residual_target,
                    channels,
                    arc,
                    residual,
                    ..
                },
            ) => {
                *residual_target = None;
                *residual = 100.0;
                *arc = None;
                for c in channels.iter_mut() {
                    c.2 = None;
                }
            }
            ("event", _) => {
                let name = inc.event.clone().unwrap_or_else(|| "fault".into());
                let state = inc.state.clone().unwrap_or_else(|| {
                    if inc.duration.is_some() {
                        "start".into()
                    } else {
                        "pulse".into()
                    }
                });
                let mut p = json!({"event": name, "state": state});
                if let Some(z) = &inc.zone {
                    p["zone"] = json!(z);
                }
                if let Some(c) = inc.confidence {
                    p["confidence"] = json!(c);
                }
                if let Some(pt) = &inc.point {
                    p["point"] = pt.clone();
                }
                if state == "start" {
                    if let Some(d) = inc.duration {
                        let mut end = p.clone();
                        end["state"] = json!("end");
                        if let Some(o) = end.as_object_mut() {
                            o.remove("confidence");
                        }
                        self.ends.push((t + d, end));
                    }
                }
                out.push(Out {
                    class: Class::Event,
                    payload: self.stamp(p, wall_ms, true),
                    retain: false,
                });
            }
            ("offline", _) => {
                self.alive = false;
                action = Some(LinkAction::DropWithWill);
            }
            ("vanish", _) => {
                self.alive = false;
                action = Some(LinkAction::Vanish);
            }
            ("online", _) => {
                self.alive = true;
                self.next_status = t;
                action = Some(LinkAction::Reconnect);
            }
            ("ignore_duty_checks", _) => self.answers_duty_checks = false,
            ("skew", _) => self.skew_ms = (inc.value.unwrap_or(-7200.0) * 1000.0) as i64,
            ("gap", _) => self.seq += inc.count.unwrap_or(5),
            ("duplicate", _) => {
                if let Some(l) = self.last.clone() {
                    out.push(l);
                }
            }
            ("seq_back", _) => {
                // Out of order: resend with an older seq than the last one.
                let back = inc.count.unwrap_or(3);
                if let Some(mut l) = self.last.clone() {
                    l.payload["seq"] = json!(self.seq.saturating_sub(back + 1));
                    out.push(l);
                }
            }
            (what, _) => {
                tracing_free_warn(&format!(
                    "incident {what:?} does not apply to {} device {}; ignored",
                    self.kind, self.id
                ));
            }
        }
        // Monitors report at once on a sudden change (vendor practice), not only on their
        // interval.
        if matches!(
            inc.what.as_str(),
            "valve_closed" | "burst" | "overpressure" | "dip" | "fill" | "overheat" | "arc_burst"
        ) {
            self.next_report = t;
        }
        if let Some(o) = out.last() {
            self.last = Some(o.clone());
        }
        (out, action)
    }
}

fn tracing_free_warn(msg: &str) {
    eprintln!("warning: {msg}");
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;
    use firewatch::model::decode::{decode, Decoded};

    fn each_kind() -> Vec<Device> {
        let rng = Rng::new(1);
        firewatch::model::Kind::ALL
            .iter()
            .map(|k| {
                Device::new(
                    &format!("d-{}", k.as_str()),
                    "b-1",
                    *k,
                    BuildingClass::Residential,
                    30.0,
                    true,
                    1.0,
                    &rng,
                )
            })
            .collect()
    }

    /// Every message a model produces decodes with firewatch's own decoder: the simulators
    /// and the contract cannot drift apart.
    #[test]
    fn every_generated_message_passes_the_contract() {
        let now = firewatch::clock::wall_ms();
        for mut d in each_kind() {
            let mut msgs = Vec::new();
            for step in 0..600 {
                msgs.extend(d.step(f64::from(step), 1.0, now));
            }
            let event = d.kind.events()[0].to_owned();
            let inc = |what: &str| Incident {
                what: what.into(),
                event: Some(event.clone()),
                duration: Some(10.0),
                zone: Some("z1".into()),
                confidence: Some(0.9),
                ..Default::default()
            };
            for what in [
                "event",
                "leak",
                "dip",
                "drain",
                "leak_current",
                "overheat",
                "arc_burst",
            ] {
                msgs.extend(d.apply(&inc(what), 600.0, now).0);
            }
            for step in 600..700 {
                msgs.extend(d.step(f64::from(step), 1.0, now));
            }
            msgs.push(d.will());
            assert!(msgs.len() > 10, "{} sent {}", d.id, msgs.len());
            for m in msgs {
                let topic = d.topic(m.class);
                let bytes = m.payload.to_string();
                match decode(&topic, bytes.as_bytes(), m.retain, now) {
                    Ok(Decoded::Message(_)) => {}
                    other => panic!("{topic} {bytes}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn same_seed_same_messages() {
        let run = || {
            let mut d = each_kind().remove(2);
            (0..300)
                .flat_map(|s| d.step(f64::from(s), 1.0, 0))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn a_leak_drains_the_pressure_below_the_class_minimum() {
        let rng = Rng::new(3);
        let mut d = Device::new(
            "wp",
            "b",
            Kind::WaterPressure,
            BuildingClass::Residential,
            60.0,
            false,
            1.0,
            &rng,
        );
        d.apply(
            &Incident {
                what: "leak".into(),
                rate_per_min: Some(0.02),
                ..Default::default()
            },
            0.0,
            0,
        );
        let mut last = 1.0;
        for s in 0..1200 {
            for m in d.step(f64::from(s), 1.0, 0) {
                if let Some(v) = m.payload["values"]["pressure_mpa"].as_f64() {
                    last = v;
                }
            }
        }
        assert!(last < 0.07, "{last}");
    }
}
