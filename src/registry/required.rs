//! The device kinds a building must have, by building class: firewatch's built-in defaults.
//! The registry file overrides them per class (`[required]`) and per building (`required`).
//!
//! Sources (labels as in the domain reference: [S] secondary, [U] a firewatch design default):
//!
//! - `water_pressure`, `water_level`: every high-rise has a fire-water supply whose pressure
//!   (GB 50974-2014 5.2.2 sets its minimum by building class) and tank or pool level (GB
//!   50974-2014 ch. 11: the pump panel shows high and low level alarms) are monitored [S].
//! - `electrical`: electrical fire monitoring systems (GB 14287, GB 50116-2013 ch. 9: residual
//!   current alarms at 300–500 mA) [S].
//! - `transmitter`: the user information transmission device (GB 26875.1) that connects the
//!   building's fire alarm controller to the remote monitoring centre [S]; requiring one in
//!   every monitored high-rise is firewatch's default [U].
//! - `fire_lane`: fire-lane and e-bike cameras for residential high-rises and public buildings,
//!   where blocked lanes and exits are fined (消防法) and e-bikes in lobbies, corridors,
//!   stairwells and exits are banned (高层民用建筑消防安全管理规定 2021, art. 37) [S]; that a
//!   camera is required there, and not in industrial buildings, is firewatch's default [U].
//! - A building of unknown class needs the four kinds every high-rise has: firewatch monitors
//!   high-rise buildings, and a missing device is better reported than overlooked [U].

use crate::model::{BuildingClass, Kind};

/// The four kinds every high-rise building must have.
const EVERY_HIGH_RISE: &[Kind] = &[
    Kind::WaterPressure,
    Kind::WaterLevel,
    Kind::Electrical,
    Kind::Transmitter,
];

/// Those four and fire-lane cameras.
const WITH_FIRE_LANE: &[Kind] = &[
    Kind::WaterPressure,
    Kind::WaterLevel,
    Kind::Electrical,
    Kind::FireLane,
    Kind::Transmitter,
];

/// The built-in required kinds of a building class (in contract order).
pub const fn default_required(class: BuildingClass) -> &'static [Kind] {
    match class {
        BuildingClass::Residential
        | BuildingClass::PublicClass2
        | BuildingClass::PublicClass1
        | BuildingClass::PublicClass1Over100m => WITH_FIRE_LANE,
        BuildingClass::Industrial | BuildingClass::Unknown => EVERY_HIGH_RISE,
    }
}

/// Every building class, in the order of the configuration's documentation.
pub const CLASSES: [BuildingClass; 6] = [
    BuildingClass::Residential,
    BuildingClass::PublicClass2,
    BuildingClass::PublicClass1,
    BuildingClass::PublicClass1Over100m,
    BuildingClass::Industrial,
    BuildingClass::Unknown,
];

/// A building class by its configuration name.
pub fn parse_class(s: &str) -> Option<BuildingClass> {
    CLASSES.into_iter().find(|c| c.as_str() == s)
}
