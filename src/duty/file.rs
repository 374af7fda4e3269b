//! The roster file (`duty.file`, TOML) as written, before validation.

use serde::{Deserialize, Serialize};

/// The language a person reads notifications in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Chinese (the default).
    #[default]
    Zh,
    /// English.
    En,
}

impl Lang {
    /// Every language.
    pub const ALL: [Lang; 2] = [Lang::Zh, Lang::En];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }
}

/// The whole roster file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterFile {
    /// `[[person]]`: everyone the roster names.
    #[serde(default, rename = "person")]
    pub people: Vec<PersonEntry>,
    /// `[[control_room]]`: control rooms, their buildings and shifts.
    #[serde(default, rename = "control_room")]
    pub rooms: Vec<RoomEntry>,
    /// `[[building]]`: who answers for each building besides the control room.
    #[serde(default, rename = "building")]
    pub buildings: Vec<BuildingEntry>,
    /// `[[maintenance]]`: maintenance companies.
    #[serde(default)]
    pub maintenance: Vec<MaintenanceEntry>,
    /// `[fire_office]`: the town fire office.
    #[serde(default)]
    pub fire_office: Option<FireOfficeEntry>,
}

/// `[[person]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonEntry {
    /// Person id, `[A-Za-z0-9_-]{1,64}`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// E-mail address.
    #[serde(default)]
    pub email: Option<String>,
    /// Phone number.
    #[serde(default)]
    pub phone: Option<String>,
    /// Language of what the person is sent (`zh` by default).
    #[serde(default)]
    pub lang: Lang,
}

/// `[[control_room]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomEntry {
    /// Control-room id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// IANA time zone of its shifts, e.g. `Asia/Shanghai`.
    pub tz: String,
    /// The buildings it watches (each building in at most one control room).
    #[serde(default)]
    pub buildings: Vec<String>,
    /// WeCom robot name (stored, not used yet).
    #[serde(default)]
    pub wecom: Option<String>,
    /// DingTalk robot name (stored, not used yet).
    #[serde(default)]
    pub dingtalk: Option<String>,
    /// `[[control_room.shift]]`
    #[serde(default)]
    pub shift: Vec<ShiftEntry>,
    /// `[control_room.duty_check]`: scheduled duty checks (查岗) of the room's transmitters.
    #[serde(default)]
    pub duty_check: Option<DutyCheckEntry>,
}

/// `[control_room.duty_check]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DutyCheckEntry {
    /// Fixed local times, `HH:MM`, every day.
    #[serde(default)]
    pub times: Vec<String>,
    /// This many checks at random times within each shift (not in its first or last 15
    /// minutes), the same times for a (room, shift, day) on every run.
    #[serde(default)]
    pub random_per_shift: u32,
    /// Seconds the control room has to answer (10–86400, default 600).
    #[serde(default)]
    pub deadline_s: Option<u32>,
}

/// `[[control_room.shift]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftEntry {
    /// Shift name, unique in its room (e.g. `day`, `night`).
    pub name: String,
    /// Local start, `HH:MM`.
    pub start: String,
    /// Local end, `HH:MM` (`24:00` allowed); before `start` the shift crosses midnight, equal to
    /// it the shift lasts 24 h.
    pub end: String,
    /// The same people every day.
    #[serde(default)]
    pub people: Option<Vec<String>>,
    /// Or one set of people per day, in turn.
    #[serde(default)]
    pub rotation: Option<Vec<Vec<String>>>,
    /// The local date on which `rotation[0]` works (`YYYY-MM-DD`).
    #[serde(default)]
    pub rotation_start: Option<String>,
}

/// `[[building]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildingEntry {
    /// Building id (as in the registry and the topics).
    pub id: String,
    /// Person id of the building's fire-safety manager (消防安全管理人).
    #[serde(default)]
    pub manager: Option<String>,
    /// Id of its maintenance company.
    #[serde(default)]
    pub maintenance: Option<String>,
}

/// `[[maintenance]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceEntry {
    /// Company id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Contact people (person ids).
    #[serde(default)]
    pub people: Vec<String>,
    /// The company's e-mail address.
    #[serde(default)]
    pub email: Option<String>,
    /// The company's phone number.
    #[serde(default)]
    pub phone: Option<String>,
}

/// `[fire_office]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FireOfficeEntry {
    /// Display name.
    pub name: String,
    /// Contact people (person ids).
    #[serde(default)]
    pub people: Vec<String>,
    /// The office's e-mail address.
    #[serde(default)]
    pub email: Option<String>,
    /// The office's phone number.
    #[serde(default)]
    pub phone: Option<String>,
}
