//! The validated roster and its pure resolution: who is on duty for a building or in a control
//! room at an instant, overrides included. Time is always a parameter.

use super::checks::{self, CheckPlan};
use super::file::{DutyCheckEntry, Lang, RosterFile};
use crate::model::{valid_id, Millis};
use crate::settings::Problem;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

/// Minutes in a day.
const DAY_MIN: u16 = 1440;

/// A person the roster names, with contacts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Person {
    /// Person id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// E-mail address.
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// Language of what the person is sent.
    pub lang: Lang,
}

/// A maintenance company or the fire office: a name, contact people and its own contacts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Party {
    /// Company id (`None` for the fire office).
    pub id: Option<String>,
    /// Display name.
    pub name: String,
    /// Contact people.
    pub people: Vec<Person>,
    /// Its e-mail address.
    pub email: Option<String>,
    /// Its phone number.
    pub phone: Option<String>,
}

/// A control room as a resolution names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomInfo {
    /// Control-room id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// IANA time zone.
    pub tz: String,
    /// WeCom robot name.
    pub wecom: Option<String>,
    /// DingTalk robot name.
    pub dingtalk: Option<String>,
}

/// One occurrence of a shift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShiftOnDuty {
    /// Shift name.
    pub name: String,
    /// The local date it starts on (its rotation day).
    pub day: String,
    /// Local start, `HH:MM`.
    pub start_local: String,
    /// Local end, `HH:MM`.
    pub end_local: String,
    /// Start, epoch ms.
    pub start: Millis,
    /// End, epoch ms (exclusive).
    pub end: Millis,
}

/// Who is on duty in one control room at an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomDuty {
    /// The control room.
    pub room: RoomInfo,
    /// The shift on now; `None` in a gap between shifts.
    pub shift: Option<ShiftOnDuty>,
    /// Operators on duty, overrides applied (empty: the room is unstaffed).
    pub operators: Vec<Person>,
    /// Ids of the overrides that changed `operators`.
    pub overrides: Vec<i64>,
    /// The next shift boundary (a shift starts or ends), epoch ms.
    pub next_change: Option<Millis>,
}

impl RoomDuty {
    /// Nobody is on duty.
    pub fn unstaffed(&self) -> bool {
        self.operators.is_empty()
    }
}

/// Who is on duty for one building at an instant: its control room's operators and the people
/// who answer for the building.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Duty {
    /// The building.
    pub building: String,
    /// The control room that watches it.
    pub room: RoomInfo,
    /// The shift on; `None` in a gap between shifts.
    pub shift: Option<ShiftOnDuty>,
    /// Operators on duty, overrides applied (empty: nobody is on duty).
    pub operators: Vec<Person>,
    /// Ids of the overrides that changed `operators`.
    pub overrides: Vec<i64>,
    /// The building's fire-safety manager (消防安全管理人).
    pub manager: Option<Person>,
    /// Its maintenance company.
    pub maintenance: Option<Party>,
    /// The town fire office.
    pub fire_office: Option<Party>,
}

/// A swap (`with` takes the place of `replace`) or a leave (`with` is `None`) in one control
/// room from `from` until `until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Override {
    /// Row id.
    pub id: i64,
    /// Control-room id.
    pub room: String,
    /// Only this shift; `None`: any shift of the room.
    pub shift: Option<String>,
    /// Start, epoch ms (inclusive).
    pub from: Millis,
    /// End, epoch ms (exclusive).
    pub until: Millis,
    /// Person id taken off duty.
    pub replace: String,
    /// Person id put on duty instead; `None`: a leave.
    pub with: Option<String>,
    /// Who made it.
    pub by: String,
    /// Why.
    pub note: Option<String>,
    /// Made at, epoch ms.
    pub created_at: Millis,
    /// Ended early (`DELETE`) at, epoch ms.
    pub ended_at: Option<Millis>,
}

impl Override {
    /// When it stops applying: `until`, or earlier when it was ended.
    pub fn effective_until(&self) -> Millis {
        self.ended_at.map_or(self.until, |e| e.min(self.until))
    }

    /// It applies to `shift` of `room` at `at`.
    pub fn applies(&self, room: &str, shift: &str, at: Millis) -> bool {
        self.room == room
            && self.shift.as_deref().is_none_or(|s| s == shift)
            && self.from <= at
            && at < self.effective_until()
    }
}

#[derive(Debug, Clone)]
enum Staff {
    Every(Vec<String>),
    Rotation { sets: Vec<Vec<String>>, start: Date },
}

#[derive(Debug, Clone)]
struct Shift {
    name: String,
    /// Minutes after local midnight.
    start: u16,
    end: u16,
    staff: Staff,
}

impl Shift {
    /// The local date of the occurrence covering minute `m` of local date `d`, if any.
    fn day_of(&self, d: Date, m: u16) -> Option<Date> {
        let crosses = self.end <= self.start;
        if !crosses {
            (self.start <= m && m < self.end).then_some(d)
        } else if m >= self.start {
            Some(d)
        } else if m < self.end || self.start == self.end {
            d.yesterday().ok()
        } else {
            None
        }
    }

    fn people_on(&self, day: Date) -> Vec<String> {
        match &self.staff {
            Staff::Every(p) => p.clone(),
            Staff::Rotation { sets, start } => {
                let n = i64::try_from(sets.len()).unwrap_or(1).max(1);
                let i = start
                    .until(day)
                    .map(|s| i64::from(s.get_days()))
                    .unwrap_or(0)
                    .rem_euclid(n);
                sets.get(usize::try_from(i).unwrap_or(0))
                    .cloned()
                    .unwrap_or_default()
            }
        }
    }

    /// Start and end (epoch ms) of the occurrence starting on local `day`.
    fn span(&self, tz: &TimeZone, day: Date) -> Option<(Millis, Millis)> {
        let end_day = if self.end <= self.start {
            day.tomorrow().ok()?
        } else {
            day
        };
        Some((
            at_local(tz, day, self.start)?,
            at_local(tz, end_day, self.end)?,
        ))
    }

    fn covers(&self, m: u16) -> bool {
        if self.start == self.end {
            return true;
        }
        if self.start < self.end {
            self.start <= m && m < self.end
        } else {
            m >= self.start || m < self.end
        }
    }
}

/// The instant (epoch ms) of `minute` after midnight on local date `day` in `tz`, as every
/// local time of the roster (shift starts, duty checks) and the daily summary's `summary.at`
/// resolve: a time a clock change skips or repeats takes jiff's compatible choice.
pub fn at_local(tz: &TimeZone, day: Date, minute: u16) -> Option<Millis> {
    let h = i8::try_from(minute / 60).ok()?;
    let m = i8::try_from(minute % 60).ok()?;
    let z = tz.to_zoned_datetime(day.at(h, m, 0, 0)).ok()?;
    Some(z.timestamp().as_millisecond())
}

fn hhmm(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

#[derive(Debug, Clone)]
struct Room {
    info: RoomInfo,
    tz: TimeZone,
    shifts: Vec<Shift>,
    buildings: Vec<String>,
    checks: Option<CheckPlan>,
}

#[derive(Debug, Clone)]
struct PartyIds {
    id: Option<String>,
    name: String,
    people: Vec<String>,
    email: Option<String>,
    phone: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct BuildingIds {
    manager: Option<String>,
    maintenance: Option<String>,
}

#[derive(Debug, Default)]
struct Plan {
    people: HashMap<String, Person>,
    rooms: Vec<Room>,
    room_of_building: HashMap<String, usize>,
    buildings: HashMap<String, BuildingIds>,
    maintenance: HashMap<String, PartyIds>,
    fire_office: Option<PartyIds>,
}

/// The duty roster: control rooms with their shifts, people, buildings, and the overrides in
/// force. Cheap to clone (the configured part is shared).
#[derive(Debug, Clone, Default)]
pub struct Roster {
    plan: Arc<Plan>,
    overrides: Vec<Override>,
}

/// Parses a local time of day `HH:MM` (00:00–23:59) into minutes after midnight, as the roster's
/// times are written.
pub fn parse_time_of_day(s: &str) -> Option<u16> {
    parse_hhmm(s, false)
}

/// Parses `HH:MM` into minutes after midnight; `24:00` only when `end`.
fn parse_hhmm(s: &str, end: bool) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    if end && h == 24 && m == 0 {
        return Some(0);
    }
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl Roster {
    /// Reads the roster file; a missing file is an empty roster (no control rooms).
    pub fn load(path: &Path) -> Result<Roster, Vec<Problem>> {
        if !path.exists() {
            return Ok(Roster::default());
        }
        crate::settings::load_file(path, "duty.file", Self::parse)
    }

    /// Parses and validates roster TOML; reports every problem with its key path.
    pub fn parse(text: &str) -> Result<Roster, Vec<Problem>> {
        let f: RosterFile =
            toml::from_str(text).map_err(|e| vec![crate::settings::toml_problem(&e)])?;
        Self::from_file(f)
    }

    /// Validates a parsed roster file.
    pub fn from_file(f: RosterFile) -> Result<Roster, Vec<Problem>> {
        let mut p = Vec::new();
        let mut plan = Plan::default();
        for (i, e) in f.people.iter().enumerate() {
            let key = format!("person[{i}].id");
            if !valid_id(&e.id) {
                p.push(Problem::new(
                    &key,
                    format!("{:?} is not [A-Za-z0-9_-]{{1,64}}", e.id),
                ));
            }
            let person = Person {
                id: e.id.clone(),
                name: e.name.clone(),
                email: e.email.clone(),
                phone: e.phone.clone(),
                lang: e.lang,
            };
            if plan.people.insert(e.id.clone(), person).is_some() {
                p.push(Problem::new(key, format!("duplicate person {:?}", e.id)));
            }
        }
        let known = |p: &mut Vec<Problem>, key: String, id: &str, people: &HashMap<_, _>| {
            if !people.contains_key(id) {
                p.push(Problem::new(key, format!("unknown person {id:?}")));
            }
        };
        let mut room_ids = HashSet::new();
        for (r, e) in f.rooms.iter().enumerate() {
            let base = format!("control_room[{r}]");
            if !valid_id(&e.id) {
                p.push(Problem::new(
                    format!("{base}.id"),
                    format!("{:?} is not [A-Za-z0-9_-]{{1,64}}", e.id),
                ));
            }
            if !room_ids.insert(e.id.clone()) {
                p.push(Problem::new(
                    format!("{base}.id"),
                    format!("duplicate control room {:?}", e.id),
                ));
            }
            let tz = match TimeZone::get(&e.tz) {
                Ok(tz) => tz,
                Err(_) => {
                    p.push(Problem::new(
                        format!("{base}.tz"),
                        format!(
                            "unknown time zone {:?} (an IANA name, e.g. Asia/Shanghai)",
                            e.tz
                        ),
                    ));
                    TimeZone::UTC
                }
            };
            for (b, id) in e.buildings.iter().enumerate() {
                if let Some(other) = plan.room_of_building.insert(id.clone(), r) {
                    let msg = if other == r {
                        format!("building {id:?} listed twice")
                    } else {
                        format!("building {id:?} is also covered by control_room[{other}]")
                    };
                    p.push(Problem::new(format!("{base}.buildings[{b}]"), msg));
                }
            }
            let mut shifts: Vec<Shift> = Vec::new();
            let mut names = HashSet::new();
            for (s, se) in e.shift.iter().enumerate() {
                let key = format!("{base}.shift[{s}]");
                if se.name.trim().is_empty() || !names.insert(se.name.clone()) {
                    p.push(Problem::new(
                        format!("{key}.name"),
                        format!("shift name {:?} is empty or used twice", se.name),
                    ));
                }
                let start = parse_hhmm(&se.start, false);
                let end = parse_hhmm(&se.end, true);
                if start.is_none() {
                    p.push(Problem::new(
                        format!("{key}.start"),
                        format!("{:?} is not a time HH:MM (00:00–23:59)", se.start),
                    ));
                }
                if end.is_none() {
                    p.push(Problem::new(
                        format!("{key}.end"),
                        format!("{:?} is not a time HH:MM (00:00–24:00)", se.end),
                    ));
                }
                for (j, id) in se.people.iter().flatten().enumerate() {
                    known(&mut p, format!("{key}.people[{j}]"), id, &plan.people);
                }
                for (d, set) in se.rotation.iter().flatten().enumerate() {
                    for (j, id) in set.iter().enumerate() {
                        known(
                            &mut p,
                            format!("{key}.rotation[{d}][{j}]"),
                            id,
                            &plan.people,
                        );
                    }
                }
                let staff = match (&se.people, &se.rotation, &se.rotation_start) {
                    (Some(people), None, None) => Some(Staff::Every(people.clone())),
                    (None, Some(sets), Some(start)) => {
                        if sets.is_empty() {
                            p.push(Problem::new(
                                format!("{key}.rotation"),
                                "needs at least one day",
                            ));
                        }
                        match start.parse::<Date>() {
                            Ok(d) => Some(Staff::Rotation {
                                sets: sets.clone(),
                                start: d,
                            }),
                            Err(_) => {
                                p.push(Problem::new(
                                    format!("{key}.rotation_start"),
                                    format!("{start:?} is not a date YYYY-MM-DD"),
                                ));
                                None
                            }
                        }
                    }
                    (None, Some(_), None) => {
                        p.push(Problem::new(
                            format!("{key}.rotation_start"),
                            "a rotation needs rotation_start (the local date of rotation[0])",
                        ));
                        None
                    }
                    _ => {
                        p.push(Problem::new(
                            key.clone(),
                            "give either people = [...] or rotation = [[...], ...] with rotation_start",
                        ));
                        None
                    }
                };
                if let (Some(start), Some(end), Some(staff)) = (start, end, staff) {
                    for (o, other) in shifts.iter().enumerate() {
                        if (0..DAY_MIN).any(|m| other.covers(m) && covers(start, end, m)) {
                            p.push(Problem::new(
                                key.clone(),
                                format!(
                                    "shift {:?} ({}–{}) overlaps shift {:?} ({}–{}), {base}.shift[{o}]",
                                    se.name,
                                    se.start,
                                    se.end,
                                    other.name,
                                    hhmm(other.start),
                                    hhmm(other.end)
                                ),
                            ));
                        }
                    }
                    shifts.push(Shift {
                        name: se.name.clone(),
                        start,
                        end,
                        staff,
                    });
                }
            }
            plan.rooms.push(Room {
                info: RoomInfo {
                    id: e.id.clone(),
                    name: e.name.clone(),
                    tz: e.tz.clone(),
                    wecom: e.wecom.clone(),
                    dingtalk: e.dingtalk.clone(),
                },
                tz,
                shifts,
                buildings: e.buildings.clone(),
                checks: e
                    .duty_check
                    .as_ref()
                    .and_then(|c| check_plan(c, &format!("{base}.duty_check"), &mut p)),
            });
        }
        for (i, m) in f.maintenance.iter().enumerate() {
            for (j, id) in m.people.iter().enumerate() {
                known(
                    &mut p,
                    format!("maintenance[{i}].people[{j}]"),
                    id,
                    &plan.people,
                );
            }
            let party = PartyIds {
                id: Some(m.id.clone()),
                name: m.name.clone(),
                people: m.people.clone(),
                email: m.email.clone(),
                phone: m.phone.clone(),
            };
            if plan.maintenance.insert(m.id.clone(), party).is_some() {
                p.push(Problem::new(
                    format!("maintenance[{i}].id"),
                    format!("duplicate maintenance company {:?}", m.id),
                ));
            }
        }
        for (i, b) in f.buildings.iter().enumerate() {
            let base = format!("building[{i}]");
            if let Some(m) = &b.manager {
                known(&mut p, format!("{base}.manager"), m, &plan.people);
            }
            if let Some(c) = &b.maintenance {
                if !plan.maintenance.contains_key(c) {
                    p.push(Problem::new(
                        format!("{base}.maintenance"),
                        format!("unknown maintenance company {c:?}"),
                    ));
                }
            }
            if !plan.room_of_building.contains_key(&b.id) {
                p.push(Problem::new(
                    format!("{base}.id"),
                    format!("building {:?} is in no control room's buildings", b.id),
                ));
            }
            let ids = BuildingIds {
                manager: b.manager.clone(),
                maintenance: b.maintenance.clone(),
            };
            if plan.buildings.insert(b.id.clone(), ids).is_some() {
                p.push(Problem::new(
                    format!("{base}.id"),
                    format!("duplicate building {:?}", b.id),
                ));
            }
        }
        if let Some(fo) = &f.fire_office {
            for (j, id) in fo.people.iter().enumerate() {
                known(&mut p, format!("fire_office.people[{j}]"), id, &plan.people);
            }
            plan.fire_office = Some(PartyIds {
                id: None,
                name: fo.name.clone(),
                people: fo.people.clone(),
                email: fo.email.clone(),
                phone: fo.phone.clone(),
            });
        }
        if p.is_empty() {
            Ok(Roster {
                plan: Arc::new(plan),
                overrides: Vec::new(),
            })
        } else {
            Err(p)
        }
    }

    /// The same roster with these overrides in force (applied in id order).
    pub fn with_overrides(&self, mut overrides: Vec<Override>) -> Roster {
        overrides.sort_by_key(|o| o.id);
        Roster {
            plan: Arc::clone(&self.plan),
            overrides,
        }
    }

    /// The overrides in force.
    pub fn overrides(&self) -> &[Override] {
        &self.overrides
    }

    /// Control-room ids, in file order.
    pub fn room_ids(&self) -> Vec<&str> {
        self.plan.rooms.iter().map(|r| r.info.id.as_str()).collect()
    }

    /// The control room exists; its shift names.
    pub fn shifts_of(&self, room: &str) -> Option<Vec<&str>> {
        self.room(room)
            .map(|r| r.shifts.iter().map(|s| s.name.as_str()).collect())
    }

    /// A person of the roster.
    pub fn person(&self, id: &str) -> Option<&Person> {
        self.plan.people.get(id)
    }

    /// Number of people.
    pub fn people_count(&self) -> usize {
        self.plan.people.len()
    }

    /// (added) The fire-safety manager the roster names for `building` (`[[building]]
    /// manager`).
    pub fn manager_of(&self, building: &str) -> Option<&Person> {
        self.plan
            .buildings
            .get(building)
            .and_then(|b| b.manager.as_deref())
            .and_then(|m| self.person(m))
    }

    /// (added) The buildings the roster names a fire-safety manager for, sorted.
    pub fn managed_buildings(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .plan
            .buildings
            .iter()
            .filter(|(_, b)| b.manager.is_some())
            .map(|(id, _)| id.as_str())
            .collect();
        v.sort_unstable();
        v
    }

    /// (added) The time zone of the control room watching `building`.
    pub fn tz_of(&self, building: &str) -> Option<&TimeZone> {
        self.plan
            .room_of_building
            .get(building)
            .and_then(|&i| self.plan.rooms.get(i))
            .map(|r| &r.tz)
    }

    /// The control room watching `building`.
    pub fn room_of(&self, building: &str) -> Option<&str> {
        self.plan
            .room_of_building
            .get(building)
            .and_then(|&i| self.plan.rooms.get(i))
            .map(|r| r.info.id.as_str())
    }

    fn room(&self, id: &str) -> Option<&Room> {
        self.plan.rooms.iter().find(|r| r.info.id == id)
    }

    fn persons(&self, ids: &[String]) -> Vec<Person> {
        ids.iter()
            .filter_map(|id| self.person(id).cloned())
            .collect()
    }

    fn party(&self, p: &PartyIds) -> Party {
        Party {
            id: p.id.clone(),
            name: p.name.clone(),
            people: self.persons(&p.people),
            email: p.email.clone(),
            phone: p.phone.clone(),
        }
    }

    /// Who is on duty in control room `room` at `at`; `None` for an unknown room.
    pub fn now_for_room(&self, room: &str, at: Millis) -> Option<RoomDuty> {
        let r = self.room(room)?;
        let next_change = next_change(r, at);
        let Ok(ts) = Timestamp::from_millisecond(at) else {
            return Some(RoomDuty {
                room: r.info.clone(),
                shift: None,
                operators: Vec::new(),
                overrides: Vec::new(),
                next_change,
            });
        };
        let local = r.tz.to_datetime(ts);
        let minute =
            u16::try_from(i32::from(local.hour()) * 60 + i32::from(local.minute())).unwrap_or(0);
        let found = r.shifts.iter().find_map(|s| {
            let day = s.day_of(local.date(), minute)?;
            let (start, end) = s.span(&r.tz, day)?;
            Some((s, day, start, end))
        });
        let Some((s, day, start, end)) = found else {
            return Some(RoomDuty {
                room: r.info.clone(),
                shift: None,
                operators: Vec::new(),
                overrides: Vec::new(),
                next_change,
            });
        };
        let mut ids = s.people_on(day);
        let mut applied = Vec::new();
        for o in self
            .overrides
            .iter()
            .filter(|o| o.applies(room, &s.name, at))
        {
            let Some(pos) = ids.iter().position(|p| *p == o.replace) else {
                continue;
            };
            match &o.with {
                Some(w) if !ids.contains(w) => ids[pos] = w.clone(),
                _ => {
                    ids.remove(pos);
                }
            }
            applied.push(o.id);
        }
        Some(RoomDuty {
            room: r.info.clone(),
            shift: Some(ShiftOnDuty {
                name: s.name.clone(),
                day: day.to_string(),
                start_local: hhmm(s.start),
                end_local: hhmm(s.end),
                start,
                end,
            }),
            operators: self.persons(&ids),
            overrides: applied,
            next_change,
        })
    }

    /// Who is on duty for `building` at `at`: its control room's shift and operators, the
    /// building's manager and maintenance company, and the fire office. `None` when no control
    /// room watches the building; in a gap between shifts `shift` is `None` and `operators`
    /// empty.
    pub fn on_duty(&self, building: &str, at: Millis) -> Option<Duty> {
        let room = self.room_of(building)?;
        let rd = self.now_for_room(room, at)?;
        let b = self
            .plan
            .buildings
            .get(building)
            .cloned()
            .unwrap_or_default();
        Some(Duty {
            building: building.to_owned(),
            room: rd.room,
            shift: rd.shift,
            operators: rd.operators,
            overrides: rd.overrides,
            manager: b.manager.as_deref().and_then(|m| self.person(m).cloned()),
            maintenance: b
                .maintenance
                .as_deref()
                .and_then(|m| self.plan.maintenance.get(m))
                .map(|m| self.party(m)),
            fire_office: self.plan.fire_office.as_ref().map(|f| self.party(f)),
        })
    }

    /// Every control room at `at`, in file order.
    pub fn all_rooms(&self, at: Millis) -> Vec<RoomDuty> {
        self.plan
            .rooms
            .iter()
            .filter_map(|r| self.now_for_room(&r.info.id, at))
            .collect()
    }

    /// Control rooms with nobody on duty at `at`.
    pub fn unstaffed_rooms(&self, at: Millis) -> Vec<RoomDuty> {
        self.all_rooms(at)
            .into_iter()
            .filter(RoomDuty::unstaffed)
            .collect()
    }
}

/// Validates `[control_room.duty_check]`.
fn check_plan(e: &DutyCheckEntry, base: &str, p: &mut Vec<Problem>) -> Option<CheckPlan> {
    let before = p.len();
    let mut times = Vec::new();
    for (i, t) in e.times.iter().enumerate() {
        match parse_hhmm(t, false) {
            Some(m) => times.push(m),
            None => p.push(Problem::new(
                format!("{base}.times[{i}]"),
                format!("{t:?} is not a time HH:MM (00:00–23:59)"),
            )),
        }
    }
    times.sort_unstable();
    times.dedup();
    if e.random_per_shift > checks::MAX_RANDOM_PER_SHIFT {
        p.push(Problem::new(
            format!("{base}.random_per_shift"),
            format!("at most {}", checks::MAX_RANDOM_PER_SHIFT),
        ));
    }
    let deadline_s = e.deadline_s.unwrap_or(checks::DEFAULT_DEADLINE_S);
    if !checks::DEADLINE_RANGE_S.contains(&deadline_s) {
        p.push(Problem::new(
            format!("{base}.deadline_s"),
            format!(
                "must be {}–{}",
                checks::DEADLINE_RANGE_S.start(),
                checks::DEADLINE_RANGE_S.end()
            ),
        ));
    }
    (p.len() == before).then_some(CheckPlan {
        times,
        random_per_shift: e.random_per_shift,
        deadline_s,
    })
}

impl Room {
    /// The scheduled check times of local date `day` (fixed times on that date, random
    /// times of the shift occurrences starting on it), sorted.
    fn check_times_on(&self, day: Date) -> Vec<Millis> {
        let Some(plan) = &self.checks else {
            return Vec::new();
        };
        let mut v: Vec<Millis> = plan
            .times
            .iter()
            .filter_map(|m| at_local(&self.tz, day, *m))
            .collect();
        if plan.random_per_shift > 0 {
            let d = day.to_string();
            for s in &self.shifts {
                if let Some((start, end)) = s.span(&self.tz, day) {
                    v.extend(checks::random_times(
                        &self.info.id,
                        &s.name,
                        &d,
                        start,
                        end,
                        plan.random_per_shift,
                    ));
                }
            }
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Every scheduled check time in `(after, upto]`.
    fn check_times_between(&self, after: Millis, upto: Millis) -> Vec<Millis> {
        let (Ok(a), Ok(u)) = (
            Timestamp::from_millisecond(after),
            Timestamp::from_millisecond(upto),
        ) else {
            return Vec::new();
        };
        let (Ok(mut day), last) = (
            self.tz.to_datetime(a).date().yesterday(),
            self.tz.to_datetime(u).date(),
        ) else {
            return Vec::new();
        };
        let mut v = Vec::new();
        while day <= last {
            v.extend(
                self.check_times_on(day)
                    .into_iter()
                    .filter(|t| *t > after && *t <= upto),
            );
            match day.tomorrow() {
                Ok(d) => day = d,
                Err(_) => break,
            }
        }
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// How far back a catch-up looks for a missed scheduled check.
const CATCH_UP_DAYS: i64 = 2;

impl Roster {
    /// Rooms with a duty-check schedule, in file order.
    pub fn check_rooms(&self) -> Vec<&str> {
        self.plan
            .rooms
            .iter()
            .filter(|r| r.checks.is_some())
            .map(|r| r.info.id.as_str())
            .collect()
    }

    /// Seconds room `room` has to answer a duty check (its `deadline_s`, else 600).
    pub fn check_deadline_s(&self, room: &str) -> u32 {
        self.room(room)
            .and_then(|r| r.checks.as_ref())
            .map_or(checks::DEFAULT_DEADLINE_S, |c| c.deadline_s)
    }

    /// The buildings control room `room` watches, in file order.
    pub fn buildings_of(&self, room: &str) -> Vec<String> {
        self.room(room)
            .map(|r| r.buildings.clone())
            .unwrap_or_default()
    }

    /// The latest scheduled duty check of `room` in `(after, upto]`: the one check a tick
    /// sends, however many were missed while firewatch was down (at most one catch-up).
    pub fn check_due(&self, room: &str, after: Millis, upto: Millis) -> Option<Millis> {
        let after = after.max(upto - CATCH_UP_DAYS * 86_400_000);
        self.room(room)?
            .check_times_between(after, upto)
            .last()
            .copied()
    }

    /// The next scheduled duty check of `room` after `after` (within three days).
    pub fn next_check_after(&self, room: &str, after: Millis) -> Option<Millis> {
        let r = self.room(room)?;
        r.check_times_between(after, after + 3 * 86_400_000)
            .first()
            .copied()
    }
}

fn covers(start: u16, end: u16, m: u16) -> bool {
    Shift {
        name: String::new(),
        start,
        end,
        staff: Staff::Every(Vec::new()),
    }
    .covers(m)
}

/// The first shift start or end after `at`.
fn next_change(r: &Room, at: Millis) -> Option<Millis> {
    let ts = Timestamp::from_millisecond(at).ok()?;
    let today = r.tz.to_datetime(ts).date();
    let mut best: Option<Millis> = None;
    let mut day = today.yesterday().ok()?;
    for _ in 0..4 {
        for s in &r.shifts {
            if let Some((a, b)) = s.span(&r.tz, day) {
                for t in [a, b] {
                    if t > at && best.is_none_or(|x| t < x) {
                        best = Some(t);
                    }
                }
            }
        }
        day = day.tomorrow().ok()?;
    }
    best
}
