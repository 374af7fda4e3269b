//! (added) Drill reports: the drills and tests of buildings (silences in mode `drill` or
//! `test`) with what they recorded, and the monthly simulated fire transmission per building
//! (passed when a transmitter fire alarm arrived during a drill or test of that month).

use super::sql::{Db, Row};
use super::Result;
use crate::args;
use crate::model::silence::{silence_id, State};
use crate::model::Millis;

/// The rule of a fire alarm relayed by a building's transmitter.
pub const FIRE_ALARM_RULE: &str = "transmitter.fire_alarm";

/// One drill or test in a report.
#[derive(Debug, Clone, PartialEq)]
pub struct DrillRow {
    /// `s-000001`.
    pub id: String,
    /// Its building.
    pub building: String,
    /// `drill` or `test`.
    pub mode: String,
    /// From.
    pub starts_at: Millis,
    /// Until (a weekly window without an end: none).
    pub ends_at: Option<Millis>,
    /// `pending`, `active`, `waiting` or `expired`.
    pub state: String,
    /// Why.
    pub reason: String,
    /// Who set it.
    pub by: String,
    /// Alerts recorded during it.
    pub alerts: u64,
    /// Of them transmitter fire alarms (the simulated fire transmission).
    pub fire_alarms: u64,
    /// When the first fire alarm arrived.
    pub first_fire_alarm_at: Option<Millis>,
    /// `passed` (a fire alarm arrived), `missed` (over without one) or `pending`.
    pub result: &'static str,
}

impl DrillRow {
    /// The CSV header.
    pub const COLUMNS: &'static [&'static str] = &[
        "id",
        "building",
        "mode",
        "starts_at",
        "ends_at",
        "state",
        "reason",
        "by",
        "alerts",
        "fire_alarms",
        "first_fire_alarm_at",
        "result",
    ];
}

/// Column `i`, a count, as `u64`.
fn count(r: &Row, i: usize) -> Result<u64> {
    Ok(r.get::<usize>(i)? as u64)
}

/// Alerts recorded during drill `id`: (all, fire alarms, first fire alarm).
fn recorded(c: &dyn Db, id: i64) -> Result<(u64, u64, Option<Millis>)> {
    c.row(
        "SELECT count(*), coalesce(sum(CASE WHEN a.rule = ?2 THEN 1 ELSE 0 END), 0),
                min(CASE WHEN a.rule = ?2 THEN d.since END)
         FROM alert_drills d JOIN alerts a ON a.id = d.alert_id WHERE d.silence_id = ?1",
        args![id, FIRE_ALARM_RULE],
    )?
    .map_or(Ok((0, 0, None)), |r| {
        Ok((count(&r, 0)?, count(&r, 1)?, r.get(2)?))
    })
}

/// Drills and tests overlapping `[from, until)`, optionally of one building, oldest first.
pub fn drills(
    c: &dyn Db,
    from: Millis,
    until: Millis,
    building: Option<&str>,
    now: Millis,
) -> Result<Vec<DrillRow>> {
    let mut out = Vec::new();
    for s in super::silences::all(c)?.into_iter().rev() {
        let Some(b) = s.matchers.get("building").cloned() else {
            continue;
        };
        let end = s.expired_at.or(s.ends_at);
        let overlaps = s.starts_at < until && end.is_none_or(|e| e > from);
        if !s.mode.is_drill() || !overlaps || building.is_some_and(|x| x != b) {
            continue;
        }
        let (alerts, fire_alarms, first_fire_alarm_at) = recorded(c, s.id)?;
        let state = s.state(now);
        let result = if fire_alarms > 0 {
            "passed"
        } else if state == State::Expired {
            "missed"
        } else {
            "pending"
        };
        out.push(DrillRow {
            id: silence_id(s.id),
            building: b,
            mode: s.mode.as_str().to_owned(),
            starts_at: s.starts_at,
            ends_at: end,
            state: state.as_str().to_owned(),
            reason: s.reason.clone(),
            by: s.by.clone(),
            alerts,
            fire_alarms,
            first_fire_alarm_at,
            result,
        });
    }
    Ok(out)
}

/// One building's simulated fire transmission of a month.
#[derive(Debug, Clone, PartialEq)]
pub struct TransmissionRow {
    /// The building.
    pub building: String,
    /// Drills and tests of the building that began in the month.
    pub tests: u64,
    /// The first transmitter fire alarm recorded during one of them, and its alert.
    pub first: Option<(Millis, String)>,
}

impl TransmissionRow {
    /// The CSV header.
    pub const COLUMNS: &'static [&'static str] =
        &["building", "tests", "result", "fire_alarm_at", "alert"];

    /// `passed` or `missed`.
    pub const fn result(&self) -> &'static str {
        if self.first.is_some() {
            "passed"
        } else {
            "missed"
        }
    }
}

/// The simulated fire transmission of each of `buildings` in `[from, until)` (a month in the
/// control room's zone): passed when a transmitter fire alarm was recorded during a drill or
/// test of the building then.
pub fn fire_transmission(
    c: &dyn Db,
    buildings: &[String],
    from: Millis,
    until: Millis,
) -> Result<Vec<TransmissionRow>> {
    let drills = super::silences::all(c)?;
    let mut out = Vec::new();
    for b in buildings {
        let tests = drills
            .iter()
            .filter(|s| s.mode.is_drill() && s.matchers.get("building") == Some(b))
            .filter(|s| s.starts_at >= from && s.starts_at < until)
            .count() as u64;
        let first: Option<(Millis, i64)> = c
            .row(
                "SELECT d.since, a.id FROM alert_drills d JOIN alerts a ON a.id = d.alert_id
                 WHERE a.building = ?1 AND a.rule = ?2 AND d.since >= ?3 AND d.since < ?4
                 ORDER BY d.since LIMIT 1",
                args![b, FIRE_ALARM_RULE, from, until],
            )?
            .map(|r| -> Result<_> { Ok((r.get(0)?, r.get(1)?)) })
            .transpose()?;
        out.push(TransmissionRow {
            building: b.clone(),
            tests,
            first: first.map(|(at, id)| (at, crate::model::alert::alert_id(id))),
        });
    }
    Ok(out)
}

/// One false alarm: an alert closed as `false_alarm`, or found one on site and not closed
/// otherwise; alerts recorded during drills and tests are never false alarms.
#[derive(Debug, Clone, PartialEq)]
pub struct FalseAlarm {
    /// The alert.
    pub id: i64,
    /// Its building.
    pub building: String,
    /// Its device.
    pub device: String,
    /// Its point (`zone`, `loop/point`, circuit), if it has one.
    pub channel: Option<String>,
    /// Its rule.
    pub rule: String,
    /// When it started.
    pub started_at: Millis,
}

/// The false alarms that started in `[from, until)`, optionally of some buildings only,
/// oldest first.
pub fn false_alarms(
    c: &dyn Db,
    from: Millis,
    until: Millis,
    buildings: Option<&[String]>,
) -> Result<Vec<FalseAlarm>> {
    let mut out: Vec<FalseAlarm> = c
        .rows(
            "SELECT id, building, device, channel, rule, started_at FROM alerts
         WHERE coalesce(classification, verification) = 'false_alarm'
           AND started_at >= ?1 AND started_at < ?2
           AND id NOT IN (SELECT alert_id FROM alert_drills)
         ORDER BY started_at, id",
            args![from, until],
        )?
        .iter()
        .map(|r| {
            Ok(FalseAlarm {
                id: r.get(0)?,
                building: r.get(1)?,
                device: r.get(2)?,
                channel: r.get(3)?,
                rule: r.get(4)?,
                started_at: r.get(5)?,
            })
        })
        .collect::<Result<_>>()?;
    if let Some(bs) = buildings {
        out.retain(|a| bs.contains(&a.building));
    }
    Ok(out)
}

/// When false alarms call for a review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Review {
    /// A point with at least this many false alarms in the period is flagged.
    pub repeated: u64,
    /// A building with more than this many false alarms in one local day is flagged.
    pub per_day: u64,
}

impl Default for Review {
    /// 2 at one point; more than 5 a day in one building (the remote monitoring centres'
    /// threshold for a review).
    fn default() -> Self {
        Review {
            repeated: 2,
            per_day: 5,
        }
    }
}

/// What false alarms are counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// A detector point (device and channel).
    Point,
    /// A device.
    Device,
    /// A building.
    Building,
    /// A maintenance company (the building's `maintainer`).
    Maintainer,
}

impl Level {
    /// The name in the report.
    pub const fn as_str(self) -> &'static str {
        match self {
            Level::Point => "point",
            Level::Device => "device",
            Level::Building => "building",
            Level::Maintainer => "maintainer",
        }
    }
}

/// The false alarms of one point, device, building or maintainer.
#[derive(Debug, Clone, PartialEq)]
pub struct FalseAlarmRow {
    /// What it counts.
    pub level: Level,
    /// The building (none for a maintainer).
    pub building: Option<String>,
    /// The device (point and device rows).
    pub device: Option<String>,
    /// The channel (point rows, when the alerts have one).
    pub channel: Option<String>,
    /// The maintenance company (none when the building names none).
    pub maintainer: Option<String>,
    /// How many.
    pub false_alarms: u64,
    /// The buildings (maintainer rows).
    pub buildings: u64,
    /// The alerts, oldest first.
    pub alerts: Vec<i64>,
    /// The first and the last.
    pub first_at: Millis,
    /// The last.
    pub last_at: Millis,
    /// The local day (`YYYY-MM-DD`) with the most, and how many then.
    pub worst_day: (String, u64),
    /// The local days over [`Review::per_day`] (building rows).
    pub days_over: Vec<(String, u64)>,
    /// Why it is flagged for review (empty: it is not).
    pub flagged: Option<String>,
}

impl FalseAlarmRow {
    /// The CSV header.
    pub const COLUMNS: &'static [&'static str] = &[
        "level",
        "building",
        "device",
        "channel",
        "maintainer",
        "false_alarms",
        "buildings",
        "first_at",
        "last_at",
        "worst_day",
        "worst_day_false_alarms",
        "flagged",
        "alerts",
        "history",
    ];

    /// The alerts behind the row in the API.
    pub fn history(&self) -> Option<String> {
        use crate::model::alert::alerts_link;
        let b = self.building.as_deref()?;
        Some(match (self.level, &self.device, &self.channel) {
            (Level::Point, Some(d), Some(ch)) => alerts_link(&[("device", d), ("channel", ch)]),
            (Level::Point | Level::Device, Some(d), _) => alerts_link(&[("device", d)]),
            _ => alerts_link(&[("building", b)]),
        })
    }
}

/// Counts `alarms` by point, device, building and maintainer (`maintainer` of a building),
/// by local day (`day` of a time), and flags what `review` calls for. Rows by level, then
/// most false alarms first.
pub fn false_alarm_rows(
    alarms: &[FalseAlarm],
    maintainer: impl Fn(&str) -> Option<String>,
    day: impl Fn(Millis) -> String,
    review: Review,
) -> Vec<FalseAlarmRow> {
    use std::collections::BTreeMap;
    let mut groups: BTreeMap<(Level, Vec<Option<String>>), Vec<&FalseAlarm>> = BTreeMap::new();
    for a in alarms {
        let b = Some(a.building.clone());
        let d = Some(a.device.clone());
        for key in [
            (Level::Point, vec![b.clone(), d.clone(), a.channel.clone()]),
            (Level::Device, vec![b.clone(), d]),
            (Level::Building, vec![b.clone()]),
            (Level::Maintainer, vec![maintainer(&a.building)]),
        ] {
            groups.entry(key).or_default().push(a);
        }
    }
    let mut out: Vec<FalseAlarmRow> = groups
        .into_iter()
        .map(|((level, key), v)| {
            let mut days: BTreeMap<String, u64> = BTreeMap::new();
            for a in &v {
                *days.entry(day(a.started_at)).or_default() += 1;
            }
            let worst_day = days
                .iter()
                .max_by(|x, y| x.1.cmp(y.1).then(y.0.cmp(x.0)))
                .map(|(d, n)| (d.clone(), *n))
                .unwrap_or_default();
            let n = v.len() as u64;
            let days_over: Vec<(String, u64)> = if level == Level::Building {
                days.into_iter().filter(|d| d.1 > review.per_day).collect()
            } else {
                Vec::new()
            };
            let flagged = match level {
                Level::Point if n >= review.repeated => {
                    Some(format!("{n} false alarms at one point"))
                }
                Level::Building if !days_over.is_empty() => Some(format!(
                    "more than {} false alarms on {}",
                    review.per_day,
                    days_over
                        .iter()
                        .map(|(d, n)| format!("{d} ({n})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                _ => None,
            };
            let mut buildings: Vec<&str> = v.iter().map(|a| a.building.as_str()).collect();
            buildings.sort_unstable();
            buildings.dedup();
            let (building, device, channel, maintainer_of) = match level {
                Level::Maintainer => (None, None, None, key[0].clone()),
                _ => {
                    let b = key[0].clone();
                    let m = b.as_deref().and_then(&maintainer);
                    (
                        b,
                        key.get(1).cloned().flatten(),
                        key.get(2).cloned().flatten(),
                        m,
                    )
                }
            };
            FalseAlarmRow {
                level,
                building,
                device,
                channel,
                maintainer: maintainer_of,
                false_alarms: n,
                buildings: buildings.len() as u64,
                alerts: v.iter().map(|a| a.id).collect(),
                first_at: v.iter().map(|a| a.started_at).min().unwrap_or_default(),
                last_at: v.iter().map(|a| a.started_at).max().unwrap_or_default(),
                worst_day,
                days_over,
                flagged,
            }
        })
        .collect();
    out.sort_by(|x, y| {
        x.level
            .cmp(&y.level)
            .then(y.false_alarms.cmp(&x.false_alarms))
            .then_with(|| {
                (&x.building, &x.device, &x.channel).cmp(&(&y.building, &y.device, &y.channel))
            })
            .then_with(|| x.maintainer.cmp(&y.maintainer))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Millis {
        s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    fn alarm(id: i64, b: &str, d: &str, ch: &str, t: &str) -> FalseAlarm {
        FalseAlarm {
            id,
            building: b.into(),
            device: d.into(),
            channel: Some(ch.into()),
            rule: FIRE_ALARM_RULE.into(),
            started_at: at(t),
        }
    }

    /// The figures of a small history, counted by hand: local days in UTC+8.
    #[test]
    fn false_alarms_count_by_point_device_building_and_maintainer_and_flag_reviews() {
        let mut v = vec![
            // b-a: 3F twice (repeated), 5F once; all on 12-01 local.
            alarm(1, "b-a", "tx-a", "3F", "2026-12-01T02:00:00Z"),
            alarm(2, "b-a", "tx-a", "3F", "2026-12-01T06:00:00Z"),
            alarm(3, "b-a", "tx-a", "5F", "2026-12-01T15:30:00Z"), // 23:30 local
            alarm(9, "b-c", "tx-c", "1F", "2026-12-01T03:00:00Z"),
        ];
        // b-b: six points on 12-02 local (the first is 12-01 in UTC), one on 12-03.
        for (i, t) in [
            "2026-12-01T16:30:00Z",
            "2026-12-02T01:00:00Z",
            "2026-12-02T02:00:00Z",
            "2026-12-02T03:00:00Z",
            "2026-12-02T04:00:00Z",
            "2026-12-02T15:59:00Z",
            "2026-12-02T16:00:00Z",
        ]
        .iter()
        .enumerate()
        {
            v.push(alarm(10 + i as i64, "b-b", "tx-b", &format!("z{i}"), t));
        }
        let tz = jiff::tz::TimeZone::fixed(jiff::tz::offset(8));
        let day = |ms: Millis| {
            jiff::Timestamp::from_millisecond(ms)
                .unwrap()
                .to_zoned_datetime(tz.clone())
                .date()
                .to_string()
        };
        let maintainer = |b: &str| (b != "b-c").then(|| "m-1".to_owned());
        let rows = false_alarm_rows(&v, maintainer, day, Review::default());
        let of = |l: Level| {
            rows.iter()
                .filter(move |r| r.level == l)
                .collect::<Vec<_>>()
        };

        let points = of(Level::Point);
        assert_eq!(points.len(), 10);
        assert_eq!(points[0].channel.as_deref(), Some("3F"));
        assert_eq!(points[0].false_alarms, 2);
        assert_eq!(points[0].alerts, [1, 2]);
        assert_eq!(
            points[0].flagged.as_deref(),
            Some("2 false alarms at one point")
        );
        assert_eq!(
            points[0].history().as_deref(),
            Some("/api/v1/alerts?device=tx-a&channel=3F")
        );
        assert!(points[1..]
            .iter()
            .all(|p| p.false_alarms == 1 && p.flagged.is_none()));

        let devices = of(Level::Device);
        let counts: Vec<(&str, u64)> = devices
            .iter()
            .map(|d| (d.device.as_deref().unwrap(), d.false_alarms))
            .collect();
        assert_eq!(counts, [("tx-b", 7), ("tx-a", 3), ("tx-c", 1)]);

        let buildings = of(Level::Building);
        assert_eq!(buildings[0].building.as_deref(), Some("b-b"));
        assert_eq!(buildings[0].false_alarms, 7);
        assert_eq!(buildings[0].worst_day, ("2026-12-02".to_owned(), 6));
        assert_eq!(buildings[0].days_over, [("2026-12-02".to_owned(), 6)]);
        assert_eq!(
            buildings[0].flagged.as_deref(),
            Some("more than 5 false alarms on 2026-12-02 (6)")
        );
        assert_eq!(buildings[0].maintainer.as_deref(), Some("m-1"));
        assert_eq!(buildings[1].building.as_deref(), Some("b-a"));
        assert_eq!(buildings[1].worst_day, ("2026-12-01".to_owned(), 3));
        assert_eq!(buildings[1].flagged, None);
        assert_eq!(buildings[2].maintainer, None);

        let m = of(Level::Maintainer);
        let counts: Vec<(Option<&str>, u64, u64)> = m
            .iter()
            .map(|r| (r.maintainer.as_deref(), r.false_alarms, r.buildings))
            .collect();
        assert_eq!(counts, [(Some("m-1"), 10, 2), (None, 1, 1)]);
        assert_eq!(m[0].history(), None);

        // A stricter review: 3 at one point, more than 6 a day: nothing flagged.
        let strict = Review {
            repeated: 3,
            per_day: 6,
        };
        let rows = false_alarm_rows(&v, maintainer, day, strict);
        assert!(rows.iter().all(|r| r.flagged.is_none()));
    }
}
