//! The registry of buildings and devices (`registry.file`, TOML): where each device is, what it
//! is, how it is powered, how often it reports, and per-device level overrides.

use crate::model::{BuildingClass, Kind};
use crate::settings::Problem;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// A raise and a clear level.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Levels {
    /// The alert fires past this level.
    pub raise: f64,
    /// The alert clears at or past this level (on the good side).
    pub clear: f64,
}

/// Power supply of a device, which sets its default offline timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Power {
    /// Mains-powered: reports every 5–15 min.
    Mains,
    /// Battery (NB-IoT/4G): reports every 30–60 min.
    Battery,
}

/// `[[building]]` in the registry.
#[derive(Debug, Clone, Deserialize)]
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
    /// Building class (sets the minimum fire-water pressure).
    #[serde(default = "unknown_class")]
    pub class: BuildingClass,
    /// Expected number of devices per kind (coverage).
    #[serde(default)]
    pub expected: HashMap<Kind, u32>,
}

fn unknown_class() -> BuildingClass {
    BuildingClass::Unknown
}

/// `[[device]]` in the registry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceEntry {
    /// Device id.
    pub id: String,
    /// Building id.
    pub building: String,
    /// Kind.
    pub kind: Kind,
    /// Where it is (e.g. "B1 pump room").
    #[serde(default)]
    pub location: Option<String>,
    /// Power supply.
    #[serde(default)]
    pub power: Option<Power>,
    /// Reporting interval when the device does not announce one.
    #[serde(default)]
    pub interval_s: Option<u64>,
    /// Per-rule level overrides, by rule id.
    #[serde(default)]
    pub thresholds: HashMap<String, Levels>,
}

/// The registry of buildings and devices.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    /// Reject messages from devices not listed here.
    #[serde(default)]
    pub strict: bool,
    /// Buildings.
    #[serde(default, rename = "building")]
    pub buildings: Vec<BuildingEntry>,
    /// Devices.
    #[serde(default, rename = "device")]
    pub devices: Vec<DeviceEntry>,
    #[serde(skip)]
    building_index: HashMap<String, usize>,
    #[serde(skip)]
    device_index: HashMap<String, usize>,
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
        let mut r: Registry =
            toml::from_str(text).map_err(|e| vec![crate::settings::toml_problem(&e)])?;
        let mut p = Vec::new();
        for (i, b) in r.buildings.iter().enumerate() {
            if !crate::model::valid_id(&b.id) {
                p.push(Problem::new(
                    format!("building[{i}].id"),
                    format!("{:?} is not [A-Za-z0-9_-]{{1,64}}", b.id),
                ));
            }
            if r.building_index.insert(b.id.clone(), i).is_some() {
                p.push(Problem::new(
                    format!("building[{i}].id"),
                    format!("duplicate building {:?}", b.id),
                ));
            }
        }
        for (i, d) in r.devices.iter().enumerate() {
            if !crate::model::valid_id(&d.id) {
                p.push(Problem::new(
                    format!("device[{i}].id"),
                    format!("{:?} is not [A-Za-z0-9_-]{{1,64}}", d.id),
                ));
            }
            if !r.building_index.contains_key(&d.building) {
                p.push(Problem::new(
                    format!("device[{i}].building"),
                    format!("building {:?} is not listed", d.building),
                ));
            }
            if r.device_index.insert(d.id.clone(), i).is_some() {
                p.push(Problem::new(
                    format!("device[{i}].id"),
                    format!("duplicate device {:?}", d.id),
                ));
            }
        }
        if p.is_empty() {
            Ok(r)
        } else {
            Err(p)
        }
    }

    /// A registered device.
    pub fn device(&self, id: &str) -> Option<&DeviceEntry> {
        self.device_index.get(id).map(|&i| &self.devices[i])
    }

    /// A registered building.
    pub fn building(&self, id: &str) -> Option<&BuildingEntry> {
        self.building_index.get(id).map(|&i| &self.buildings[i])
    }

    /// The device kinds a building must have: those its `expected` counts name, sorted.
    pub fn required_kinds(&self, building: &str) -> Vec<Kind> {
        let mut v: Vec<Kind> = self
            .building(building)
            .map(|b| {
                b.expected
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(k, _)| *k)
                    .collect()
            })
            .unwrap_or_default();
        v.sort_unstable_by_key(|k| k.as_str());
        v.dedup();
        v
    }

    /// The class of a building (unknown when not registered).
    pub fn class_of(&self, building: &str) -> BuildingClass {
        self.building(building)
            .map_or(BuildingClass::Unknown, |b| b.class)
    }
}
