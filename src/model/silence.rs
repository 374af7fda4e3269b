//! Silences and maintenance windows: which alerts are recorded but not notified, and when.
//!
//! A silence names what it covers with matchers (building, device, rule, kind, channel,
//! severity: every one given must hold), a time span, optionally a weekly window inside that
//! span (the monthly detector test every Tuesday 09:00–11:00, say, in the control room's time
//! zone), a reason and who set it. An alert that fires while a silence covers it is kept and
//! shown as silenced, and nobody is told; when the silence ends with `notify_on_exit` and the
//! alert is still open and active, it is notified then. Pure: the pipeline keeps them.
//!
//! (added) A silence in mode `drill` (演练) or `test` (测试) is a drill of one building: the
//! alerts it covers are recorded, classified `test` and told only to the control room on duty
//! (no escalation, no integrations); they count in drill reports and never as false alarms.

use super::alert::Alert;
use super::Millis;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The alert fields a silence may match on.
pub const MATCHER_KEYS: [&str; 6] = ["building", "device", "rule", "kind", "channel", "severity"];

/// Longest reason, in bytes.
pub const REASON_MAX: usize = 500;

/// A weekly window: on `days` (1 = Monday … 7 = Sunday), from minute `from` to minute `to` of
/// the local day; `to` before `from` runs past midnight into the next day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Weekly {
    /// ISO weekdays, 1 = Monday.
    pub days: Vec<u8>,
    /// Minute of the day it opens.
    pub from: u16,
    /// Minute of the day it closes.
    pub to: u16,
}

/// What a silence does to the alerts it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Nobody is told.
    #[default]
    Silence,
    /// A fire drill (演练): the control room is told, nobody else; classified `test`.
    Drill,
    /// A test of the system (测试), e.g. the monthly simulated fire transmission: as a drill.
    Test,
}

impl Mode {
    /// Every mode.
    pub const ALL: [Mode; 3] = [Mode::Silence, Mode::Drill, Mode::Test];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Silence => "silence",
            Mode::Drill => "drill",
            Mode::Test => "test",
        }
    }

    /// A drill or a test (the control room is told).
    pub const fn is_drill(self) -> bool {
        matches!(self, Mode::Drill | Mode::Test)
    }
}

wire_enum!(Mode);

/// One silence or maintenance window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// Numeric id (shown as `s-000001`).
    pub id: i64,
    /// Field → value; a `rule` value ending in `*` matches by prefix.
    pub matchers: BTreeMap<String, String>,
    /// From when.
    pub starts_at: Millis,
    /// Until when (exclusive); none: a weekly window without an end.
    pub ends_at: Option<Millis>,
    /// Only inside this weekly window.
    pub every: Option<Weekly>,
    /// The time zone of `every` (IANA name).
    pub tz: String,
    /// Why.
    pub reason: String,
    /// Who set it.
    pub by: String,
    /// When it ends, tell of the alerts it held back that are still open and active.
    pub notify_on_exit: bool,
    /// When it was set.
    pub created_at: Millis,
    /// When someone ended it early.
    pub expired_at: Option<Millis>,
    /// Who ended it early.
    pub expired_by: Option<String>,
    /// (added) What it does: silence, or a drill or test of a building.
    #[serde(default)]
    pub mode: Mode,
}

/// Where a silence stands at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not started yet.
    Pending,
    /// Covering now.
    Active,
    /// Within its span, outside its weekly window.
    Waiting,
    /// Over (its end passed, or expired by hand).
    Expired,
}

impl State {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Active => "active",
            State::Waiting => "waiting",
            State::Expired => "expired",
        }
    }
}

/// The displayed id of a silence.
pub fn silence_id(id: i64) -> String {
    format!("s-{id:06}")
}

/// Parses `s-000001` (or `1`).
pub fn parse_id(s: &str) -> Option<i64> {
    s.strip_prefix("s-")
        .unwrap_or(s)
        .parse()
        .ok()
        .filter(|n| *n > 0)
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && s.len() == 5).then_some(h * 60 + m)
}

fn fmt_hhmm(m: u16) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

impl Weekly {
    /// From `{"days": ["tue"], "from": "09:00", "to": "11:00"}`.
    pub fn parse(v: &Value) -> Result<Weekly, String> {
        let days = v["days"]
            .as_array()
            .filter(|d| !d.is_empty())
            .ok_or("every.days: a list of weekdays (mon … sun)")?;
        let mut out = Vec::new();
        for d in days {
            let d = d.as_str().unwrap_or_default().to_ascii_lowercase();
            let n = DAYS
                .iter()
                .position(|x| *x == d)
                .ok_or_else(|| format!("every.days: {d:?} is not one of mon … sun"))?;
            let n = u8::try_from(n + 1).unwrap_or(1);
            if !out.contains(&n) {
                out.push(n);
            }
        }
        out.sort_unstable();
        let time = |k: &str| {
            v[k].as_str()
                .and_then(hhmm)
                .ok_or_else(|| format!("every.{k}: a local time HH:MM"))
        };
        let (from, to) = (time("from")?, time("to")?);
        if from == to {
            return Err("every: from and to are the same time".into());
        }
        Ok(Weekly {
            days: out,
            from,
            to,
        })
    }

    /// The wire form.
    pub fn to_json(&self) -> Value {
        let days: Vec<&str> = self
            .days
            .iter()
            .filter_map(|d| DAYS.get(usize::from(*d).wrapping_sub(1)).copied())
            .collect();
        json!({"days": days, "from": fmt_hhmm(self.from), "to": fmt_hhmm(self.to)})
    }

    /// Whether local weekday `day` (1 = Monday) at minute `minute` is inside the window.
    pub fn contains(&self, day: u8, minute: u16) -> bool {
        if self.from < self.to {
            self.days.contains(&day) && (self.from..self.to).contains(&minute)
        } else {
            let before = if day == 1 { 7 } else { day - 1 };
            (self.days.contains(&day) && minute >= self.from)
                || (self.days.contains(&before) && minute < self.to)
        }
    }
}

/// The local weekday (1 = Monday) and minute of the day of `at` in `tz`.
fn local(at: Millis, tz: &str) -> Option<(u8, u16)> {
    let tz = jiff::tz::TimeZone::get(tz).ok()?;
    let t = jiff::Timestamp::from_millisecond(at)
        .ok()?
        .to_zoned_datetime(tz);
    let day = u8::try_from(t.weekday().to_monday_one_offset()).ok()?;
    let minute = u16::try_from(i32::from(t.hour()) * 60 + i32::from(t.minute())).ok()?;
    Some((day, minute))
}

impl Silence {
    /// Whether it covers `alert`'s fields (not its time).
    pub fn matches(&self, a: &Alert) -> bool {
        self.matchers.iter().all(|(k, v)| match k.as_str() {
            "building" => a.building == *v,
            "device" => a.device == *v,
            "rule" => match v.strip_suffix('*') {
                Some(prefix) => a.rule.starts_with(prefix),
                None => a.rule == *v,
            },
            "kind" => a.kind.as_str() == v,
            "channel" => a.channel.as_deref() == Some(v.as_str()),
            "severity" => a.severity.as_str() == v,
            _ => false,
        })
    }

    /// Where it stands at `at`.
    pub fn state(&self, at: Millis) -> State {
        if self.expired_at.is_some_and(|e| e <= at) || self.ends_at.is_some_and(|e| e <= at) {
            return State::Expired;
        }
        if at < self.starts_at {
            return State::Pending;
        }
        match &self.every {
            None => State::Active,
            Some(w) => match local(at, &self.tz) {
                Some((day, minute)) if w.contains(day, minute) => State::Active,
                _ => State::Waiting,
            },
        }
    }

    /// Whether it holds back `alert`'s notifications at `at`.
    pub fn covers(&self, a: &Alert, at: Millis) -> bool {
        self.state(at) == State::Active && self.matches(a)
    }

    /// The wire form (contract section 3.8).
    pub fn to_json(&self, at: Millis) -> Value {
        json!({
            "id": silence_id(self.id),
            "matchers": self.matchers,
            "starts_at": super::rfc3339(self.starts_at),
            "ends_at": self.ends_at.map(super::rfc3339),
            "every": self.every.as_ref().map(Weekly::to_json),
            "tz": self.tz,
            "reason": self.reason,
            "by": self.by,
            "notify_on_exit": self.notify_on_exit,
            "created_at": super::rfc3339(self.created_at),
            "expired_at": self.expired_at.map(super::rfc3339),
            "expired_by": self.expired_by,
            "state": self.state(at).as_str(),
            "mode": self.mode.as_str(),
        })
    }

    /// A new silence from an API body: `{"matchers", "starts_at"?, "ends_at"?, "every"?,
    /// "tz"?, "reason", "notify_on_exit"?}`, set by `by` at `now`; `tz` defaults to
    /// `default_tz`. Every problem is named.
    pub fn parse(body: &Value, by: &str, now: Millis, default_tz: &str) -> Result<Silence, String> {
        let m = body["matchers"]
            .as_object()
            .filter(|m| !m.is_empty())
            .ok_or("matchers: an object naming at least one of building, device, rule, kind, channel, severity")?;
        let mut matchers = BTreeMap::new();
        for (k, v) in m {
            if !MATCHER_KEYS.contains(&k.as_str()) {
                return Err(format!(
                    "matchers.{k}: not one of {}",
                    MATCHER_KEYS.join(", ")
                ));
            }
            let v = v
                .as_str()
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.len() <= 200)
                .ok_or_else(|| format!("matchers.{k}: a non-empty string of at most 200 bytes"))?;
            let ok = match k.as_str() {
                "kind" => v.parse::<super::Kind>().is_ok(),
                "severity" => v.parse::<super::Severity>().is_ok(),
                _ => true,
            };
            if !ok {
                return Err(format!("matchers.{k}: {v:?} is not a known {k}"));
            }
            matchers.insert(k.clone(), v.to_owned());
        }
        let time = |k: &str| -> Result<Option<Millis>, String> {
            match &body[k] {
                Value::Null => Ok(None),
                Value::String(s) => s
                    .parse::<jiff::Timestamp>()
                    .map(|t| Some(t.as_millisecond()))
                    .map_err(|e| format!("{k}: not an RFC 3339 time ({e})")),
                _ => Err(format!("{k}: an RFC 3339 time")),
            }
        };
        let starts_at = time("starts_at")?.unwrap_or(now);
        let ends_at = time("ends_at")?;
        let every = match &body["every"] {
            Value::Null => None,
            v => Some(Weekly::parse(v)?),
        };
        if every.is_none() && ends_at.is_none() {
            return Err("ends_at: required unless the silence is a weekly window (every)".into());
        }
        if let Some(e) = ends_at {
            if e <= starts_at {
                return Err("ends_at: must be after starts_at".into());
            }
            if e <= now {
                return Err("ends_at: already passed".into());
            }
        }
        let tz = match &body["tz"] {
            Value::Null => default_tz.to_owned(),
            Value::String(s) => s.clone(),
            _ => return Err("tz: an IANA time zone name".into()),
        };
        if jiff::tz::TimeZone::get(&tz).is_err() {
            return Err(format!("tz: {tz:?} is not a known time zone"));
        }
        let reason = body["reason"]
            .as_str()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .ok_or("reason: say why (maintenance, a detector test, …)")?;
        if reason.len() > REASON_MAX {
            return Err(format!("reason: at most {REASON_MAX} bytes"));
        }
        let notify_on_exit = match &body["notify_on_exit"] {
            Value::Null => false,
            Value::Bool(b) => *b,
            _ => return Err("notify_on_exit: true or false".into()),
        };
        let mode = match &body["mode"] {
            Value::Null => Mode::Silence,
            Value::String(m) => m
                .parse()
                .map_err(|()| format!("mode: {m:?} is not one of silence, drill, test"))?,
            _ => return Err("mode: silence, drill or test".into()),
        };
        if mode.is_drill() {
            if !matchers.contains_key("building") {
                return Err("matchers.building: a drill or test is of one building".into());
            }
            if notify_on_exit {
                return Err(
                    "notify_on_exit: a drill's alerts are told to the control room as they come"
                        .into(),
                );
            }
        }
        Ok(Silence {
            id: 0,
            matchers,
            starts_at,
            ends_at,
            every,
            tz,
            reason: reason.to_owned(),
            by: by.to_owned(),
            notify_on_exit,
            created_at: now,
            expired_at: None,
            expired_by: None,
            mode,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ms(s: &str) -> Millis {
        s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    // 2026-12-01 is a Tuesday.
    const NOW: &str = "2026-12-01T01:00:00Z"; // 09:00 in Shanghai

    fn weekly(from: &str, to: &str) -> Silence {
        Silence::parse(
            &json!({"matchers": {"building": "b1"}, "every": {"days": ["tue"], "from": from, "to": to},
                    "reason": "monthly detector test"}),
            "admin",
            ms(NOW),
            "Asia/Shanghai",
        )
        .unwrap()
    }

    #[test]
    fn a_weekly_window_is_active_inside_it_in_its_time_zone_only() {
        let s = weekly("09:00", "11:00");
        assert_eq!(s.state(ms("2026-12-01T01:00:00Z")), State::Active); // Tue 09:00 +08
        assert_eq!(s.state(ms("2026-12-01T02:59:59Z")), State::Active); // 10:59:59
        assert_eq!(s.state(ms("2026-12-01T03:00:00Z")), State::Waiting); // 11:00
        assert_eq!(s.state(ms("2026-12-02T01:30:00Z")), State::Waiting); // Wednesday
        assert_eq!(s.state(ms("2026-12-08T02:00:00Z")), State::Active); // next Tuesday
    }

    #[test]
    fn a_window_past_midnight_runs_into_the_next_day() {
        let s = weekly("23:00", "02:00");
        assert_eq!(s.state(ms("2026-12-01T15:30:00Z")), State::Active); // Tue 23:30
        assert_eq!(s.state(ms("2026-12-01T17:59:00Z")), State::Active); // Wed 01:59
        assert_eq!(s.state(ms("2026-12-01T18:00:00Z")), State::Waiting); // Wed 02:00
        assert_eq!(s.state(ms("2026-12-01T14:00:00Z")), State::Waiting); // Tue 22:00
    }

    #[test]
    fn a_span_ends_and_an_early_expiry_ends_it_at_once() {
        let mut s = Silence::parse(
            &json!({"matchers": {"rule": "transmitter.*"}, "ends_at": "2026-12-01T02:00:00Z",
                    "reason": "维保", "notify_on_exit": true}),
            "admin",
            ms(NOW),
            "Asia/Shanghai",
        )
        .unwrap();
        assert!(s.notify_on_exit);
        assert_eq!(s.state(ms(NOW)), State::Active);
        assert_eq!(s.state(ms("2026-12-01T02:00:00Z")), State::Expired);
        s.expired_at = Some(ms("2026-12-01T01:10:00Z"));
        assert_eq!(s.state(ms("2026-12-01T01:10:00Z")), State::Expired);
        assert_eq!(s.state(ms("2026-12-01T01:09:59Z")), State::Active);
    }

    #[test]
    fn bad_bodies_are_named() {
        let p = |b: Value| Silence::parse(&b, "a", ms(NOW), "Asia/Shanghai").unwrap_err();
        assert!(
            p(json!({"reason": "x", "ends_at": "2027-01-01T00:00:00Z"})).starts_with("matchers")
        );
        assert!(p(
            json!({"matchers": {"floor": "3"}, "reason": "x", "ends_at": "2027-01-01T00:00:00Z"})
        )
        .starts_with("matchers.floor"));
        assert!(p(json!({"matchers": {"kind": "toaster"}, "reason": "x", "ends_at": "2027-01-01T00:00:00Z"}))
            .contains("not a known kind"));
        assert!(p(json!({"matchers": {"building": "b"}, "reason": "x"})).starts_with("ends_at"));
        assert!(p(
            json!({"matchers": {"building": "b"}, "reason": "x", "ends_at": "2026-11-30T00:00:00Z"})
        )
        .starts_with("ends_at"));
        assert!(
            p(json!({"matchers": {"building": "b"}, "ends_at": "2027-01-01T00:00:00Z"}))
                .starts_with("reason")
        );
        assert!(p(json!({"matchers": {"building": "b"}, "reason": "x", "every": {"days": ["tue"], "from": "9:00", "to": "11:00"}}))
            .starts_with("every.from"));
        assert!(p(json!({"matchers": {"building": "b"}, "reason": "x", "tz": "Mars/Olympus", "ends_at": "2027-01-01T00:00:00Z"}))
            .starts_with("tz"));
    }
}
