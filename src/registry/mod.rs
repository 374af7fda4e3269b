//! The registry of buildings and devices (`registry.file`, TOML): the inventory of what should be
//! installed where. Buildings carry their class (which sets levels and the device kinds they must
//! have), place, height, control room and fire-safety manager; devices their building, kind,
//! floor and zone, installation date, power supply, reporting interval and per-device level
//! overrides.
//!
//! [`Registry::parse`] validates a whole file and reports every problem with its key path;
//! [`Live`] is the registry in force, shared by the API and replaced by a reload; `csv.rs` holds
//! the CSV import and export of `firewatch registry`.

pub mod csv;
pub mod required;

use crate::model::{BuildingClass, Kind};
use crate::settings::Problem;
use serde::{Deserialize, Serialize, Serializer};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

pub use required::{default_required, parse_class};

/// A raise and a clear level.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Levels {
    /// The alert fires past this level.
    pub raise: f64,
    /// The alert clears at or past this level (on the good side).
    pub clear: f64,
}

/// Power supply of a device, which sets its default offline timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Power {
    /// Mains-powered: reports every 5–15 min.
    Mains,
    /// Battery (NB-IoT/4G): reports every 30–60 min.
    Battery,
}

impl Power {
    /// The configuration name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Power::Mains => "mains",
            Power::Battery => "battery",
        }
    }

    /// A power supply by its configuration name.
    pub fn parse(s: &str) -> Option<Power> {
        [Power::Mains, Power::Battery]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// `[[building]]` in the registry.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BuildingEntry {
    /// Building id.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Address.
    #[serde(default)]
    pub address: Option<String>,
    /// (added) Latitude, degrees (WGS 84), -90..90; given together with `lon`.
    #[serde(default)]
    pub lat: Option<f64>,
    /// (added) Longitude, degrees (WGS 84), -180..180; given together with `lat`.
    #[serde(default)]
    pub lon: Option<f64>,
    /// Building class (sets the minimum fire-water pressure and the required device kinds).
    #[serde(default = "unknown_class", skip_serializing_if = "is_unknown")]
    pub class: BuildingClass,
    /// (added) Height in metres.
    #[serde(default)]
    pub height_m: Option<f64>,
    /// (added) The control room that watches it (a duty-roster control room id).
    #[serde(default)]
    pub control_room: Option<String>,
    /// (added) The fire-safety manager (消防安全管理人): a name or a duty-roster person id.
    #[serde(default)]
    pub manager: Option<String>,
    /// (added) The maintenance company (维保单位) that services its fire systems.
    #[serde(default)]
    pub maintainer: Option<String>,
    /// (added) The device kinds this building must have, replacing those of its class.
    #[serde(default)]
    pub required: Option<Vec<Kind>>,
    /// Expected number of devices per kind (coverage).
    #[serde(
        default,
        skip_serializing_if = "HashMap::is_empty",
        serialize_with = "sorted"
    )]
    pub expected: HashMap<Kind, u32>,
}

fn unknown_class() -> BuildingClass {
    BuildingClass::Unknown
}

fn is_unknown(c: &BuildingClass) -> bool {
    *c == BuildingClass::Unknown
}

fn sorted<K: Serialize + Ord, V: Serialize, S: Serializer>(
    m: &HashMap<K, V>,
    s: S,
) -> Result<S::Ok, S::Error> {
    m.iter().collect::<BTreeMap<_, _>>().serialize(s)
}

/// `[[device]]` in the registry.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceEntry {
    /// Device id.
    pub id: String,
    /// Building id.
    pub building: String,
    /// Kind.
    pub kind: Kind,
    /// (added) Floor, e.g. "B1", "12F", "roof".
    #[serde(default)]
    pub floor: Option<String>,
    /// (added) Zone or room on the floor, e.g. "泵房".
    #[serde(default)]
    pub zone: Option<String>,
    /// Where it is (e.g. "B1 pump room"), shown in notifications; when only `floor` and `zone`
    /// are given it is derived from them ("B1 泵房").
    #[serde(default)]
    pub location: Option<String>,
    /// (added) Installation date, `YYYY-MM-DD`.
    #[serde(default)]
    pub installed: Option<String>,
    /// Power supply.
    #[serde(default)]
    pub power: Option<Power>,
    /// Reporting interval when the device does not announce one.
    #[serde(default)]
    pub interval_s: Option<u64>,
    /// (added) The gateway or transmitter (a device id) this device's messages pass through:
    /// while that one is offline or has lost its link, this one's offline alert is inhibited.
    #[serde(default)]
    pub via: Option<String>,
    /// (added) A transmitter's GB/T 26875.3 address, as it connects over TCP: a number
    /// (`"889"`) or an IPv4 address and port (`"192.168.1.20:5000"`), as its vendor sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gb_address: Option<String>,
    /// (added) Its vendor profile (`[gb26875.vendor.NAME]`): time labels, checksum, scales.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// (added) Its MQTT password, as Mosquitto's PBKDF2-SHA512 hash (`$7$…`, set with
    /// `firewatch registry passwd`): the device connects with its id as user name. Not in the
    /// CSV export; an import keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt_password_hash: Option<String>,
    /// Per-rule level overrides, by rule id.
    #[serde(
        default,
        skip_serializing_if = "HashMap::is_empty",
        serialize_with = "sorted"
    )]
    pub thresholds: HashMap<String, Levels>,
    /// `location` was derived from `floor` and `zone`, not written in the file.
    #[serde(skip)]
    location_derived: bool,
}

/// The registry of buildings and devices.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    /// Reject messages from devices not listed here.
    #[serde(default)]
    pub strict: bool,
    /// (added) Required device kinds per building class, replacing the built-in defaults
    /// ([`default_required`]) of the classes listed.
    #[serde(
        default,
        skip_serializing_if = "HashMap::is_empty",
        serialize_with = "sorted_classes"
    )]
    pub required: HashMap<BuildingClass, Vec<Kind>>,
    /// Buildings.
    #[serde(default, rename = "building", skip_serializing_if = "Vec::is_empty")]
    pub buildings: Vec<BuildingEntry>,
    /// Devices.
    #[serde(default, rename = "device", skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceEntry>,
    #[serde(skip)]
    building_index: HashMap<String, usize>,
    #[serde(skip)]
    device_index: HashMap<String, usize>,
    #[serde(skip)]
    address_index: HashMap<[u8; 6], usize>,
}

/// (added) The six address bytes of a GB/T 26875.3 address as the registry writes it: a
/// number (little-endian, below 2^48) or `a.b.c.d:port` (four bytes and a little-endian port).
pub fn parse_gb_address(s: &str) -> Option<[u8; 6]> {
    if let Some((ip, port)) = s.split_once(':') {
        let ip: std::net::Ipv4Addr = ip.parse().ok()?;
        let port: u16 = port.parse().ok()?;
        let [a, b, c, d] = ip.octets();
        let [p0, p1] = port.to_le_bytes();
        return Some([a, b, c, d, p0, p1]);
    }
    let n: u64 = s.parse().ok().filter(|n| *n < 1 << 48)?;
    let b = n.to_le_bytes();
    Some([b[0], b[1], b[2], b[3], b[4], b[5]])
}

fn sorted_classes<S: Serializer>(
    m: &HashMap<BuildingClass, Vec<Kind>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    m.iter()
        .map(|(c, k)| (c.as_str(), k))
        .collect::<BTreeMap<_, _>>()
        .serialize(s)
}

/// Longest free text (name, address, manager, floor, zone, location), bytes.
const MAX_TEXT: usize = 200;

fn text_problem(field: &'static str, v: &Option<String>) -> Option<(&'static str, String)> {
    let v = v.as_ref()?;
    if v.trim().is_empty() {
        Some((field, "is empty: leave it out instead".into()))
    } else if v.len() > MAX_TEXT {
        Some((field, format!("is longer than {MAX_TEXT} bytes")))
    } else {
        None
    }
}

/// True when `s` is a calendar date written `YYYY-MM-DD`.
pub fn valid_date(s: &str) -> bool {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    s.len() == 10 && time::Date::parse(s, &format).is_ok()
}

impl BuildingEntry {
    /// A building with only its id (every other field absent or default).
    pub fn new(id: impl Into<String>) -> Self {
        BuildingEntry {
            id: id.into(),
            name: None,
            address: None,
            lat: None,
            lon: None,
            class: BuildingClass::Unknown,
            height_m: None,
            control_room: None,
            manager: None,
            maintainer: None,
            required: None,
            expected: HashMap::new(),
        }
    }

    /// Problems of this entry on its own, as (field, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        if !crate::model::valid_id(&self.id) {
            p.push(("id", format!("{:?} is not [A-Za-z0-9_-]{{1,64}}", self.id)));
        }
        p.extend(text_problem("name", &self.name));
        p.extend(text_problem("address", &self.address));
        p.extend(text_problem("manager", &self.manager));
        p.extend(text_problem("maintainer", &self.maintainer));
        match (self.lat, self.lon) {
            (Some(_), None) => p.push(("lon", "missing: give lat and lon together".into())),
            (None, Some(_)) => p.push(("lat", "missing: give lat and lon together".into())),
            _ => {}
        }
        if let Some(lat) = self.lat {
            if !(-90.0..=90.0).contains(&lat) {
                p.push(("lat", format!("{lat} is not a latitude (-90..90)")));
            }
        }
        if let Some(lon) = self.lon {
            if !(-180.0..=180.0).contains(&lon) {
                p.push(("lon", format!("{lon} is not a longitude (-180..180)")));
            }
        }
        if let Some(h) = self.height_m {
            if !(h > 0.0 && h <= 1000.0) {
                p.push((
                    "height_m",
                    format!("{h} is not a height in metres (0..1000]"),
                ));
            }
        }
        if let Some(r) = &self.control_room {
            if !crate::model::valid_id(r) {
                p.push((
                    "control_room",
                    format!("{r:?} is not a control room id ([A-Za-z0-9_-]{{1,64}})"),
                ));
            }
        }
        p
    }
}

impl DeviceEntry {
    /// A device with its id, building and kind (every other field absent).
    pub fn new(id: impl Into<String>, building: impl Into<String>, kind: Kind) -> Self {
        DeviceEntry {
            id: id.into(),
            building: building.into(),
            kind,
            floor: None,
            zone: None,
            location: None,
            installed: None,
            power: None,
            interval_s: None,
            via: None,
            gb_address: None,
            vendor: None,
            mqtt_password_hash: None,
            thresholds: HashMap::new(),
            location_derived: false,
        }
    }

    /// The location written in the file, `None` when it is derived from floor and zone.
    pub fn written_location(&self) -> Option<&str> {
        if self.location_derived {
            None
        } else {
            self.location.as_deref()
        }
    }

    /// The same entry as written in a file: without a derived location.
    pub fn as_written(&self) -> DeviceEntry {
        let mut d = self.clone();
        if d.location_derived {
            d.location = None;
            d.location_derived = false;
        }
        d
    }

    /// Problems of this entry on its own, as (field, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        if !crate::model::valid_id(&self.id) {
            p.push(("id", format!("{:?} is not [A-Za-z0-9_-]{{1,64}}", self.id)));
        }
        p.extend(text_problem("floor", &self.floor));
        if let Some(a) = &self.gb_address {
            if parse_gb_address(a).is_none() {
                p.push((
                    "gb_address",
                    format!("{a:?} is not a number below 2^48 or an IPv4 address:port"),
                ));
            } else if self.kind != Kind::Transmitter {
                p.push(("gb_address", "only a transmitter has one".into()));
            }
        }
        p.extend(text_problem("vendor", &self.vendor));
        if let Some(h) = &self.mqtt_password_hash {
            if !crate::auth::mosquitto::valid_hash(h) {
                p.push((
                    "mqtt_password_hash",
                    "is not a Mosquitto $7$ hash (set it with `firewatch registry passwd`)".into(),
                ));
            }
        }
        p.extend(text_problem("zone", &self.zone));
        p.extend(text_problem("location", &self.location));
        if let Some(d) = &self.installed {
            if !valid_date(d) {
                p.push(("installed", format!("{d:?} is not a date (YYYY-MM-DD)")));
            }
        }
        if self.interval_s == Some(0) {
            p.push(("interval_s", "must be at least 1".into()));
        }
        for (rule, l) in &self.thresholds {
            if !l.raise.is_finite() || !l.clear.is_finite() {
                p.push((
                    "thresholds",
                    format!("{rule}: levels must be finite numbers"),
                ));
            }
        }
        p
    }

    /// Fills `location` from `floor` and `zone` when the file gives none.
    fn derive_location(&mut self) {
        if self.location.is_some() {
            return;
        }
        let parts: Vec<&str> = [self.floor.as_deref(), self.zone.as_deref()]
            .into_iter()
            .flatten()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if !parts.is_empty() {
            self.location = Some(parts.join(" "));
            self.location_derived = true;
        }
    }
}

/// How one list of entries changed between two registries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Ids only in the new one.
    pub added: usize,
    /// Ids in both, with different entries.
    pub changed: usize,
    /// Ids in both, with equal entries.
    pub unchanged: usize,
    /// Ids only in the old one.
    pub removed: usize,
}

/// How a registry changed: [`Registry::diff`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    /// Buildings.
    pub buildings: Counts,
    /// Devices.
    pub devices: Counts,
}

fn count<T: PartialEq>(
    old: &[T],
    new: &[T],
    id: impl Fn(&T) -> &str,
    old_get: impl Fn(&str) -> Option<usize>,
) -> Counts {
    let mut c = Counts::default();
    let mut seen = 0;
    for n in new {
        match old_get(id(n)) {
            Some(i) => {
                seen += 1;
                if old[i] == *n {
                    c.unchanged += 1;
                } else {
                    c.changed += 1;
                }
            }
            None => c.added += 1,
        }
    }
    c.removed = old.len() - seen;
    c
}

impl Registry {
    /// Reads the registry; a missing file is an empty registry.
    pub fn load(path: &Path) -> Result<Registry, Vec<Problem>> {
        if !path.exists() {
            return Ok(Registry::default());
        }
        crate::settings::load_file(path, "registry.file", Self::parse)
    }

    /// Parses and validates registry TOML.
    pub fn parse(text: &str) -> Result<Registry, Vec<Problem>> {
        let r: Registry =
            toml::from_str(text).map_err(|e| vec![crate::settings::toml_problem(&e)])?;
        r.validated()
    }

    /// A registry of these entries, validated as [`Registry::parse`] validates a file.
    pub fn from_entries(
        strict: bool,
        required: HashMap<BuildingClass, Vec<Kind>>,
        buildings: Vec<BuildingEntry>,
        devices: Vec<DeviceEntry>,
    ) -> Result<Registry, Vec<Problem>> {
        Registry {
            strict,
            required,
            buildings,
            devices,
            ..Registry::default()
        }
        .validated()
    }

    /// Validates, derives locations and builds the indexes.
    fn validated(mut self) -> Result<Registry, Vec<Problem>> {
        let mut p = Vec::new();
        self.building_index.clear();
        self.device_index.clear();
        self.address_index.clear();
        for (i, b) in self.buildings.iter().enumerate() {
            for (field, m) in b.problems() {
                p.push(Problem::new(format!("building[{i}].{field}"), m));
            }
            if self.building_index.insert(b.id.clone(), i).is_some() {
                p.push(Problem::new(
                    format!("building[{i}].id"),
                    format!("duplicate building {:?}", b.id),
                ));
            }
        }
        for (i, d) in self.devices.iter_mut().enumerate() {
            for (field, m) in d.problems() {
                p.push(Problem::new(format!("device[{i}].{field}"), m));
            }
            if !self.building_index.contains_key(&d.building) {
                p.push(Problem::new(
                    format!("device[{i}].building"),
                    format!("building {:?} is not listed", d.building),
                ));
            }
            if self.device_index.insert(d.id.clone(), i).is_some() {
                p.push(Problem::new(
                    format!("device[{i}].id"),
                    format!("duplicate device {:?}", d.id),
                ));
            }
            d.derive_location();
        }
        for (i, d) in self.devices.iter().enumerate() {
            let Some(a) = d.gb_address.as_deref().and_then(parse_gb_address) else {
                continue;
            };
            if let Some(j) = self.address_index.insert(a, i) {
                p.push(Problem::new(
                    format!("device[{i}].gb_address"),
                    format!(
                        "{:?} is also the address of {:?}",
                        d.gb_address.as_deref().unwrap_or_default(),
                        self.devices[j].id
                    ),
                ));
            }
        }
        for (i, d) in self.devices.iter().enumerate() {
            let Some(via) = &d.via else { continue };
            if via == &d.id {
                p.push(Problem::new(
                    format!("device[{i}].via"),
                    "a device cannot sit behind itself",
                ));
            } else if !self.device_index.contains_key(via) {
                p.push(Problem::new(
                    format!("device[{i}].via"),
                    format!("device {via:?} is not listed"),
                ));
            }
        }
        if p.is_empty() {
            Ok(self)
        } else {
            Err(p)
        }
    }

    /// The registry as TOML, in the form [`Registry::parse`] reads back to an equal registry
    /// (derived locations left out; comments of the file it came from are not kept).
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        let mut out = self.clone();
        out.devices = self.devices.iter().map(DeviceEntry::as_written).collect();
        let body = toml::to_string(&out)?;
        Ok(format!(
            "# firewatch registry (written by `firewatch registry import`).\n\n{body}"
        ))
    }

    /// True when both hold the same settings, buildings and devices.
    pub fn same_as(&self, other: &Registry) -> bool {
        self.strict == other.strict
            && self.required == other.required
            && self.buildings == other.buildings
            && self.devices == other.devices
    }

    /// How `new` differs from this registry, by id.
    pub fn diff(&self, new: &Registry) -> Changes {
        Changes {
            buildings: count(
                &self.buildings,
                &new.buildings,
                |b| &b.id,
                |id| self.building_index.get(id).copied(),
            ),
            devices: count(
                &self.devices,
                &new.devices,
                |d| &d.id,
                |id| self.device_index.get(id).copied(),
            ),
        }
    }

    /// (added) Sets or removes a device's MQTT password hash; false when it is not registered.
    pub fn set_mqtt_password_hash(&mut self, id: &str, hash: Option<String>) -> bool {
        match self.device_index.get(id) {
            Some(&i) => {
                self.devices[i].mqtt_password_hash = hash;
                true
            }
            None => false,
        }
    }

    /// A registered device.
    pub fn device(&self, id: &str) -> Option<&DeviceEntry> {
        self.device_index.get(id).map(|&i| &self.devices[i])
    }

    /// (added) The transmitter registered with this GB/T 26875.3 address.
    pub fn device_at(&self, address: &[u8; 6]) -> Option<&DeviceEntry> {
        self.address_index.get(address).map(|&i| &self.devices[i])
    }

    /// A registered building.
    pub fn building(&self, id: &str) -> Option<&BuildingEntry> {
        self.building_index.get(id).map(|&i| &self.buildings[i])
    }

    /// The class of a building (unknown when not registered).
    pub fn class_of(&self, building: &str) -> BuildingClass {
        self.building(building)
            .map_or(BuildingClass::Unknown, |b| b.class)
    }

    /// The device kinds a class requires: the file's `[required]` entry for it, else the
    /// built-in default.
    pub fn required_for_class(&self, class: BuildingClass) -> Vec<Kind> {
        let mut k = match self.required.get(&class) {
            Some(k) => k.clone(),
            None => default_required(class).to_vec(),
        };
        k.sort();
        k.dedup();
        k
    }

    /// The device kinds a building must have, sorted and deduplicated: its own `required`,
    /// else those of its class ([`Registry::required_for_class`]), together with every kind
    /// its `expected` counts name; a building the registry does not list counts as of unknown
    /// class.
    pub fn required_kinds(&self, building: &str) -> Vec<Kind> {
        let mut k = match self.building(building) {
            Some(BuildingEntry {
                required: Some(k), ..
            }) => k.clone(),
            Some(b) => self.required_for_class(b.class),
            None => self.required_for_class(BuildingClass::Unknown),
        };
        if let Some(b) = self.building(building) {
            k.extend(
                b.expected
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(kind, _)| *kind),
            );
        }
        k.sort();
        k.dedup();
        k
    }

    /// The devices of a building, in file order.
    pub fn devices_of<'a>(&'a self, building: &'a str) -> impl Iterator<Item = &'a DeviceEntry> {
        self.devices.iter().filter(move |d| d.building == building)
    }
}

/// What a file looked like when last read: modification time and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

impl Stamp {
    /// The stamp of `path` now; `None` when it cannot be read (e.g. it does not exist).
    pub fn of(path: &Path) -> Option<Stamp> {
        let m = std::fs::metadata(path).ok()?;
        Some(Stamp {
            modified: m.modified().ok(),
            len: m.len(),
        })
    }
}

/// The registry in force, shared by the API, the file watch and reloads; the rules engine holds
/// its own copy (the pipeline swaps it between batches).
///
/// A `std` lock: it is held only to clone or replace the `Arc`, never across an await. Reloads
/// are serialised by [`Live::reloading`], an async lock held for the whole reload.
#[derive(Debug)]
pub struct Live {
    current: RwLock<Arc<Registry>>,
    file: PathBuf,
    seen: Mutex<Option<Stamp>>,
    reload: tokio::sync::Mutex<()>,
}

impl Live {
    /// Shares `registry`, read from `file` (whose stamp is taken now).
    pub fn new(registry: Arc<Registry>, file: PathBuf) -> Arc<Live> {
        let seen = Stamp::of(&file);
        Arc::new(Live {
            current: RwLock::new(registry),
            file,
            seen: Mutex::new(seen),
            reload: tokio::sync::Mutex::new(()),
        })
    }

    /// The registry now (a cheap clone of the `Arc`).
    pub fn get(&self) -> Arc<Registry> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts `registry` in force.
    pub fn set(&self, registry: Arc<Registry>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = registry;
    }

    /// `registry.file`.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Held for the whole of a reload, so two reloads cannot put an older file in force after
    /// a newer one.
    pub async fn reloading(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.reload.lock().await
    }

    /// The file's stamp now, when it differs from the one last seen.
    pub fn changed(&self) -> Option<Option<Stamp>> {
        let now = Stamp::of(&self.file);
        let seen = *self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        (now != seen).then_some(now)
    }

    /// Notes the stamp of the file as read by a reload (good or bad), so the watch does not
    /// read it again until it changes.
    pub fn mark_seen(&self, stamp: Option<Stamp>) {
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = stamp;
    }
}

#[cfg(test)]
mod tests;
