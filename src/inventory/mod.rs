//! The inventory as people read it: every device with its state and health (contract section
//! 4), building summaries, and coverage — which device kinds a building must have against
//! what is registered, connected (has ever reported) and online now, per building and for the
//! town (接入率 / 在线率). Read-only: computed from the store's device records, the registry
//! and the rules, for the API, `/metrics` and `firewatch report` alike.

use crate::model::{rfc3339, Kind};
use crate::registry::Registry;
use crate::rules::engine::DeviceRecord;
use crate::rules::Rules;
use crate::store::{self, StoreError};
use rusqlite::Connection;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

pub mod table;

/// A device's connection state, as people read it.
pub fn state(rec: Option<&DeviceRecord>) -> &'static str {
    match rec {
        None => "never_seen",
        // Heard only through retained messages (replayed by the broker): no sign of life yet.
        Some(r) if r.last_seen.is_none() => "never_seen",
        Some(r) if r.offline => "offline",
        Some(_) => "online",
    }
}

/// One device as the API shows it (contract section 4).
pub fn device_json(
    id: &str,
    rec: Option<&DeviceRecord>,
    reg: &Registry,
    rules: &Rules,
    open: i64,
) -> Value {
    let entry = reg.device(id);
    let (building, kind) = match (rec, entry) {
        (Some(r), _) => (r.building.clone(), r.kind.as_str().to_owned()),
        (None, Some(e)) => (e.building.clone(), e.kind.as_str().to_owned()),
        (None, None) => (String::new(), String::new()),
    };
    let mut last_values = serde_json::Map::new();
    if let Some(r) = rec {
        for (k, v) in r.last_values.iter() {
            match k.split_once('.') {
                Some((metric, channel)) => {
                    let e = last_values
                        .entry(metric.to_owned())
                        .or_insert_with(|| json!({}));
                    if let Value::Object(m) = e {
                        m.insert(channel.to_owned(), json!(v));
                    }
                }
                None => {
                    last_values.insert(k.to_owned(), json!(v));
                }
            }
        }
    }
    let timeout = rec.map(|r| crate::rules::engine::offline_timeout(rules, reg, id, r) / 1000);
    json!({
        "id": id,
        "building": building,
        "kind": kind,
        "registered": entry.is_some(),
        "location": entry.and_then(|e| e.location.clone()),
        "state": state(rec),
        "first_seen": rec.and_then(|r| r.first_seen).map(rfc3339),
        "last_seen": rec.and_then(|r| r.last_seen).map(rfc3339),
        "last_values": last_values,
        "battery_pct": rec.and_then(|r| r.battery_pct),
        "rssi_dbm": rec.and_then(|r| r.rssi_dbm),
        "firmware": rec.and_then(|r| r.firmware.clone()),
        "interval_s": rec.and_then(|r| r.interval_s).or(entry.and_then(|e| e.interval_s)),
        "offline_after_s": timeout,
        "messages": rec.map_or(0, |r| r.messages),
        "rejected": rec.map_or(0, |r| r.rejected),
        "lost": rec.map_or(0, |r| r.lost),
        "open_alerts": open,
        "quality": rec.map(|r| r.quality(&rules.quality)).unwrap_or_default(),
        "quality_metrics": rec.map(|r| quality_metrics(r, rules)),
    })
}

/// Which values a device's `stuck` and `implausible` findings are about: `metric` or
/// `metric.channel` keys, as in `last_values`.
fn quality_metrics(rec: &DeviceRecord, rules: &Rules) -> Value {
    let q = &rules.quality;
    let stuck: Vec<&str> = rec.stuck(q).map(|(k, ..)| k).collect();
    let implausible: Vec<&str> = rec.implausible(q).map(|(k, ..)| k).collect();
    json!({"stuck": stuck, "implausible": implausible})
}

/// A device (as [`device_json`] shows it) has data-quality findings: what `firewatch report
/// quality` lists and the daily summary counts.
pub fn has_findings(d: &Value) -> bool {
    d["quality"].as_array().is_some_and(|q| !q.is_empty())
}

/// Every device of interest, by id: seen ones plus registered ones never seen, optionally of
/// one building.
pub fn devices(
    c: &Connection,
    reg: &Registry,
    rules: &Rules,
    building: Option<&str>,
) -> Result<Vec<Value>, StoreError> {
    let recs: BTreeMap<String, DeviceRecord> =
        store::device_records(c, building)?.into_iter().collect();
    let open = store::alerts::open_counts(c)?;
    let mut ids: Vec<&str> = recs.keys().map(String::as_str).collect();
    for d in &reg.devices {
        if building.is_none_or(|b| b == d.building) && !recs.contains_key(&d.id) {
            ids.push(&d.id);
        }
    }
    ids.sort_unstable();
    Ok(ids
        .into_iter()
        .map(|id| {
            let open = open.get(id).copied().unwrap_or(0);
            device_json(id, recs.get(id), reg, rules, open)
        })
        .collect())
}

/// One device, or `None` when it is neither registered nor seen.
pub fn device(
    c: &Connection,
    reg: &Registry,
    rules: &Rules,
    id: &str,
) -> Result<Option<Value>, StoreError> {
    let rec: Option<DeviceRecord> = store::device_record(c, id)?;
    if rec.is_none() && reg.device(id).is_none() {
        return Ok(None);
    }
    let open = store::alerts::open_of_device(c, id)?;
    Ok(Some(device_json(id, rec.as_ref(), reg, rules, open)))
}

/// A building summary (contract section 3) from its devices as [`devices`] shows them.
pub fn building_summary(
    id: &str,
    devices: &[Value],
    reg: &Registry,
    open: store::alerts::OpenAlerts,
) -> Value {
    let entry = reg.building(id);
    let mut kinds: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for d in devices {
        let k = d["kind"].as_str().unwrap_or("").to_owned();
        let st = d["state"].as_str().unwrap_or("").to_owned();
        *kinds.entry(k).or_default().entry(st).or_insert(0) += 1;
    }
    let online = devices.iter().filter(|d| d["state"] == "online").count();
    let offline = devices.iter().filter(|d| d["state"] == "offline").count();
    let with_findings = devices
        .iter()
        .filter(|d| d["quality"].as_array().is_some_and(|q| !q.is_empty()))
        .count();
    let registered = devices.iter().filter(|d| d["registered"] == true).count();
    let reporting = devices
        .iter()
        .filter(|d| d["registered"] == true && d["state"] != "never_seen")
        .count();
    let expected: u32 = entry.map_or(0, |b| b.expected.values().sum());
    let online_rate = if devices.is_empty() {
        Value::Null
    } else {
        json!(online as f64 / devices.len() as f64)
    };
    json!({
        "id": id,
        "name": entry.and_then(|b| b.name.clone()),
        "class": entry.map(|b| b.class.as_str()),
        "registered": entry.is_some(),
        "devices": devices.len(),
        "online": online,
        "by_kind": kinds,
        "open_alerts": open.count,
        "worst_open": open.worst,
        "offline": offline,
        "with_findings": with_findings,
        "address": entry.and_then(|b| b.address.clone()),
        "lat": entry.and_then(|b| b.lat),
        "lon": entry.and_then(|b| b.lon),
        "control_room": entry.and_then(|b| b.control_room.clone()),
        "coverage": {
            "expected": expected,
            "registered": registered,
            "reporting": reporting,
            "online_rate": online_rate,
        },
    })
}

/// Every building's summary: the registered buildings and those only seen in messages.
pub fn buildings(c: &Connection, reg: &Registry, rules: &Rules) -> Result<Vec<Value>, StoreError> {
    let mut by: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for b in &reg.buildings {
        by.entry(b.id.clone()).or_default();
    }
    for d in devices(c, reg, rules, None)? {
        by.entry(d["building"].as_str().unwrap_or("").to_owned())
            .or_default()
            .push(d);
    }
    let open = store::alerts::open_by_building(c)?;
    Ok(by
        .iter()
        .map(|(id, ds)| building_summary(id, ds, reg, open.get(id).copied().unwrap_or_default()))
        .collect())
}

/// One building's summary with its `device_list`, or `None` when it is neither registered
/// nor seen.
pub fn building(
    c: &Connection,
    reg: &Registry,
    rules: &Rules,
    id: &str,
) -> Result<Option<Value>, StoreError> {
    let devices = devices(c, reg, rules, Some(id))?;
    if devices.is_empty() && reg.building(id).is_none() {
        return Ok(None);
    }
    let open = store::alerts::open_by_building(c)?
        .get(id)
        .copied()
        .unwrap_or_default();
    let mut j = building_summary(id, &devices, reg, open);
    j["device_list"] = Value::Array(devices);
    Ok(Some(j))
}

/// The kinds a building must have.
fn required(reg: &Registry, building: &str) -> Vec<Kind> {
    reg.required_kinds(building)
}

/// Registered, connected and online devices of one kind in one building.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KindCoverage {
    /// The building must have this kind.
    pub required: bool,
    /// Registered devices.
    pub registered: u64,
    /// Of them, those that have ever sent an accepted message (接入).
    pub connected: u64,
    /// Of them, those online now (在线).
    pub online: u64,
}

/// One building's coverage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuildingCoverage {
    /// Building id.
    pub building: String,
    /// Its registry name.
    pub name: Option<String>,
    /// Its class.
    pub class: Option<&'static str>,
    /// In the registry.
    pub registered_building: bool,
    /// The kinds it must have.
    pub required: Vec<Kind>,
    /// Per kind (required ones and any registered).
    pub kinds: BTreeMap<Kind, KindCoverage>,
    /// Registered devices.
    pub registered: u64,
    /// Of them, connected.
    pub connected: u64,
    /// Of them, online now.
    pub online: u64,
    /// `connected` ÷ `registered` (接入率), null without registered devices.
    pub connection_rate: Option<f64>,
    /// `online` ÷ `registered` (在线率), null without registered devices.
    pub online_rate: Option<f64>,
    /// Registered devices that have never reported.
    pub never_seen: Vec<String>,
    /// Required kinds with no registered device.
    pub missing_kinds: Vec<Kind>,
    /// Required kinds with no connected device.
    pub unconnected_kinds: Vec<Kind>,
    /// Devices that report but are not registered (open mode).
    pub unregistered: u64,
    /// Every required kind has a connected device, and every registered device has reported.
    pub complete: bool,
}

/// The town's coverage: every building, and the totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coverage {
    /// Buildings (registered ones, and those only seen in messages).
    pub buildings: u64,
    /// Of them, complete.
    pub complete: u64,
    /// Buildings missing a required kind (none registered).
    pub missing_kind: u64,
    /// Registered devices.
    pub registered: u64,
    /// Connected.
    pub connected: u64,
    /// Online now.
    pub online: u64,
    /// `connected` ÷ `registered`.
    pub connection_rate: Option<f64>,
    /// `online` ÷ `registered`.
    pub online_rate: Option<f64>,
    /// Registered devices never seen.
    pub never_seen: u64,
    /// Devices reporting without being registered.
    pub unregistered: u64,
    /// Per building, by id.
    pub per_building: Vec<BuildingCoverage>,
}

fn rate(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Coverage from the device records (`records`: id → record) and the registry; `building`
/// keeps one.
pub fn coverage_of(
    records: &BTreeMap<String, DeviceRecord>,
    reg: &Registry,
    building: Option<&str>,
) -> Coverage {
    let mut per: BTreeMap<String, BuildingCoverage> = BTreeMap::new();
    let new = |id: &str| {
        let entry = reg.building(id);
        let required = required(reg, id);
        let kinds = required
            .iter()
            .map(|k| {
                let c = KindCoverage {
                    required: true,
                    ..KindCoverage::default()
                };
                (*k, c)
            })
            .collect();
        BuildingCoverage {
            building: id.to_owned(),
            name: entry.and_then(|b| b.name.clone()),
            class: entry.map(|b| b.class.as_str()),
            registered_building: entry.is_some(),
            required,
            kinds,
            registered: 0,
            connected: 0,
            online: 0,
            connection_rate: None,
            online_rate: None,
            never_seen: Vec::new(),
            missing_kinds: Vec::new(),
            unconnected_kinds: Vec::new(),
            unregistered: 0,
            complete: false,
        }
    };
    let wanted = |b: &str| building.is_none_or(|x| x == b);
    for b in reg.buildings.iter().filter(|b| wanted(&b.id)) {
        per.insert(b.id.clone(), new(&b.id));
    }
    for d in reg.devices.iter().filter(|d| wanted(&d.building)) {
        let b = per
            .entry(d.building.clone())
            .or_insert_with(|| new(&d.building));
        let k = b.kinds.entry(d.kind).or_default();
        k.registered += 1;
        b.registered += 1;
        match state(records.get(&d.id)) {
            "never_seen" => b.never_seen.push(d.id.clone()),
            st => {
                k.connected += 1;
                b.connected += 1;
                if st == "online" {
                    k.online += 1;
                    b.online += 1;
                }
            }
        }
    }
    for (id, rec) in records {
        if reg.device(id).is_none() && wanted(&rec.building) {
            per.entry(rec.building.clone())
                .or_insert_with(|| new(&rec.building))
                .unregistered += 1;
        }
    }
    let mut town = Coverage {
        buildings: 0,
        complete: 0,
        missing_kind: 0,
        registered: 0,
        connected: 0,
        online: 0,
        connection_rate: None,
        online_rate: None,
        never_seen: 0,
        unregistered: 0,
        per_building: Vec::new(),
    };
    for mut b in per.into_values() {
        let required: BTreeSet<Kind> = b.required.iter().copied().collect();
        b.missing_kinds = required
            .iter()
            .filter(|k| b.kinds.get(k).is_none_or(|c| c.registered == 0))
            .copied()
            .collect();
        b.unconnected_kinds = required
            .iter()
            .filter(|k| b.kinds.get(k).is_none_or(|c| c.connected == 0))
            .copied()
            .collect();
        b.connection_rate = rate(b.connected, b.registered);
        b.online_rate = rate(b.online, b.registered);
        b.complete = b.unconnected_kinds.is_empty() && b.never_seen.is_empty() && b.registered > 0;
        town.buildings += 1;
        town.complete += u64::from(b.complete);
        town.missing_kind += u64::from(!b.missing_kinds.is_empty());
        town.registered += b.registered;
        town.connected += b.connected;
        town.online += b.online;
        town.never_seen += b.never_seen.len() as u64;
        town.unregistered += b.unregistered;
        town.per_building.push(b);
    }
    town.connection_rate = rate(town.connected, town.registered);
    town.online_rate = rate(town.online, town.registered);
    town
}

/// [`coverage_of`] the store's device records.
pub fn coverage(
    c: &Connection,
    reg: &Registry,
    building: Option<&str>,
) -> Result<Coverage, StoreError> {
    let records: BTreeMap<String, DeviceRecord> =
        store::device_records(c, building)?.into_iter().collect();
    Ok(coverage_of(&records, reg, building))
}

/// A per-building gauge: name, help, value.
type Gauge = (
    &'static str,
    &'static str,
    fn(&BuildingCoverage) -> Option<f64>,
);

/// Coverage as Prometheus gauges: per building (`building` label) and for the town.
pub fn prometheus(c: &Coverage) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let label = |b: &str| b.replace('\\', "\\\\").replace('"', "\\\"");
    let gauges: [Gauge; 6] = [
        (
            "firewatch_building_devices_registered",
            "Registered devices of the building.",
            |b| Some(b.registered as f64),
        ),
        (
            "firewatch_building_devices_connected",
            "Registered devices that have ever reported (接入).",
            |b| Some(b.connected as f64),
        ),
        (
            "firewatch_building_devices_online",
            "Registered devices online now (在线).",
            |b| Some(b.online as f64),
        ),
        (
            "firewatch_building_connection_rate",
            "Connected ÷ registered devices (接入率).",
            |b| b.connection_rate,
        ),
        (
            "firewatch_building_online_rate",
            "Online ÷ registered devices (在线率).",
            |b| b.online_rate,
        ),
        (
            "firewatch_building_missing_kinds",
            "Required device kinds without a registered device.",
            |b| Some(b.missing_kinds.len() as f64),
        ),
    ];
    for (name, help, f) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for b in &c.per_building {
            if let Some(v) = f(b) {
                let _ = writeln!(out, "{name}{{building=\"{}\"}} {v}", label(&b.building));
            }
        }
    }
    let town: [(&str, &str, Option<f64>); 5] = [
        (
            "firewatch_coverage_buildings",
            "Buildings known (registered or seen).",
            Some(c.buildings as f64),
        ),
        (
            "firewatch_coverage_buildings_complete",
            "Buildings with every required kind connected and no device never seen.",
            Some(c.complete as f64),
        ),
        (
            "firewatch_coverage_buildings_missing_kind",
            "Buildings missing a required device kind.",
            Some(c.missing_kind as f64),
        ),
        (
            "firewatch_coverage_connection_rate",
            "Town connection rate (接入率): connected ÷ registered devices.",
            c.connection_rate,
        ),
        (
            "firewatch_coverage_online_rate",
            "Town online rate (在线率): online ÷ registered devices.",
            c.online_rate,
        ),
    ];
    for (name, help, v) in town {
        if let Some(v) = v {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
    }
    out
}

#[cfg(test)]
mod tests;
