//! (added) What keeps an alert quiet besides silences: inhibition by topology and shielded
//! points (table `alert_holds`: the alert, why, and what holds it), the points shielded now and
//! before (table `shields`), and flapping alerts (table `alert_flapping`). Written by the
//! pipeline in its transactions; read by the API.

use super::sql::{Db, Row};
use super::Result;
use crate::args;
use crate::model::{rfc3339, Millis};
use serde_json::{json, Value};

/// The tables.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS alert_holds (
    alert_id    INTEGER PRIMARY KEY,
    why         TEXT NOT NULL,
    source      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    since       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_holds_source ON alert_holds(why, source);
CREATE TABLE IF NOT EXISTS shields (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    building    TEXT NOT NULL,
    device      TEXT NOT NULL,
    channel     TEXT NOT NULL,
    point       TEXT,
    since       INTEGER NOT NULL,
    until       INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS shields_now ON shields(device, channel) WHERE until IS NULL;
CREATE INDEX IF NOT EXISTS shields_since ON shields(since);
CREATE INDEX IF NOT EXISTS alerts_point ON alerts(device, channel, started_at);
CREATE TABLE IF NOT EXISTS alert_flapping (
    alert_id    INTEGER PRIMARY KEY,
    since       INTEGER NOT NULL,
    last_change INTEGER NOT NULL,
    changes     INTEGER NOT NULL
);
"#;

/// Why an alert is held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// An alert upstream (a gateway offline, a mains failure) explains it.
    Inhibited,
    /// Its point is shielded.
    Shielded,
}

impl Why {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Why::Inhibited => "inhibited",
            Why::Shielded => "shielded",
        }
    }

    fn parse(s: &str) -> Why {
        if s == "shielded" {
            Why::Shielded
        } else {
            Why::Inhibited
        }
    }
}

/// One held-back alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Hold {
    /// The alert.
    pub alert: i64,
    /// Why.
    pub why: Why,
    /// What holds it: the inhibiting alert's row id, or the shielded point `device/channel`.
    pub source: String,
    /// The inhibit rule's id, or `shield`.
    pub reason: String,
    /// Since when.
    pub since: Millis,
}

/// The key of a shielded point.
pub fn point_key(device: &str, channel: &str) -> String {
    format!("{device}/{channel}")
}

/// Holds `alert` back; false when something already does.
pub fn hold(c: &dyn Db, h: &Hold) -> Result<bool> {
    Ok(c.exec(
        "INSERT INTO alert_holds (alert_id, why, source, reason, since) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (alert_id) DO NOTHING",
        args![h.alert, h.why.as_str(), &h.source, &h.reason, h.since],
    )? > 0)
}

/// What holds `alert` back, if anything.
pub fn hold_of(c: &dyn Db, alert: i64) -> Result<Option<Hold>> {
    c.row(
        "SELECT alert_id, why, source, reason, since FROM alert_holds WHERE alert_id = ?1",
        args![alert],
    )?
    .as_ref()
    .map(hold_row)
    .transpose()
}

fn hold_row(r: &Row) -> Result<Hold> {
    Ok(Hold {
        alert: r.get(0)?,
        why: Why::parse(&r.get::<String>(1)?),
        source: r.get(2)?,
        reason: r.get(3)?,
        since: r.get(4)?,
    })
}

/// The holds that are over: inhibitions whose source alert is no longer open and active,
/// and alerts of points no longer shielded. Taken out of the table.
pub fn take_released(c: &dyn Db) -> Result<Vec<Hold>> {
    let out: Vec<Hold> = c
        .rows(
            "SELECT h.alert_id, h.why, h.source, h.reason, h.since FROM alert_holds h
         WHERE (h.why = 'inhibited' AND NOT EXISTS (
                  SELECT 1 FROM alerts s WHERE s.id = CAST(CASE WHEN h.why = 'inhibited' THEN h.source END AS BIGINT)
                  AND s.active = 1 AND s.status != 'closed'))
            OR (h.why = 'shielded' AND NOT EXISTS (
                  SELECT 1 FROM shields p WHERE p.until IS NULL
                  AND p.device || '/' || p.channel = h.source))
         ORDER BY h.alert_id",
            args![],
        )?
        .iter()
        .map(hold_row)
        .collect::<Result<_>>()?;
    for h in &out {
        c.exec(
            "DELETE FROM alert_holds WHERE alert_id = ?1",
            args![h.alert],
        )?;
    }
    Ok(out)
}

/// How many alerts the alert `source` inhibits now.
pub fn inhibiting(c: &dyn Db, source: i64) -> Result<i64> {
    Ok(c.one::<i64>(
        "SELECT COUNT(*) FROM alert_holds WHERE why = 'inhibited' AND source = ?1",
        args![&source.to_string()],
    )?
    .unwrap_or(0))
}

/// The contract JSON of what holds an alert back: (`inhibited`, `shielded`), `null` for none.
pub fn json_of(c: &dyn Db, alert: i64) -> Result<(Value, Value)> {
    Ok(match hold_of(c, alert)? {
        Some(h) if h.why == Why::Inhibited => {
            let by = h.source.parse::<i64>().map(crate::model::alert::alert_id);
            let j =
                json!({"by": by.unwrap_or(h.source), "rule": h.reason, "since": rfc3339(h.since)});
            (j, Value::Null)
        }
        Some(h) => (
            Value::Null,
            json!({"point": h.source, "since": rfc3339(h.since)}),
        ),
        None => (Value::Null, Value::Null),
    })
}

/// A point is shielded from `at` (nothing when it already is).
pub fn shield(
    c: &dyn Db,
    building: &str,
    device: &str,
    channel: &str,
    point: Option<&Value>,
    at: Millis,
) -> Result<bool> {
    let point = point.map(Value::to_string);
    Ok(c.exec(
        "INSERT INTO shields (building, device, channel, point, since) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT DO NOTHING",
        args![building, device, channel, point.as_deref(), at],
    )? > 0)
}

/// The point is unshielded at `at`; `None` for every point of the device (a panel reset).
/// Returns how many shields ended.
pub fn unshield(c: &dyn Db, device: &str, channel: Option<&str>, at: Millis) -> Result<usize> {
    let n = c.exec(
        "UPDATE shields SET until = ?3 WHERE device = ?1 AND until IS NULL
         AND (CAST(?2 AS TEXT) IS NULL OR channel = ?2)",
        args![device, channel, at],
    )?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// Whether the point is shielded now.
pub fn is_shielded(c: &dyn Db, device: &str, channel: &str) -> Result<bool> {
    Ok(c.row(
        "SELECT 1 FROM shields WHERE device = ?1 AND channel = ?2 AND until IS NULL",
        args![device, channel],
    )?
    .is_some())
}

/// The rule of a point shielded longer than its hold time (a minor alert of its own).
pub const SHIELD_RULE: &str = "transmitter.shielded";

/// One shield of a point, over or not.
#[derive(Debug, Clone, PartialEq)]
pub struct Shield {
    /// Its row id.
    pub id: i64,
    /// The building.
    pub building: String,
    /// The transmitter.
    pub device: String,
    /// The point (`zone`, or `loop/point`).
    pub channel: String,
    /// The point as the transmitter described it (`loop`, `point`, `zone`…).
    pub point: Option<Value>,
    /// Shielded at.
    pub since: Millis,
    /// Unshielded at (none: still shielded).
    pub until: Option<Millis>,
    /// Alerts of the point that started while it was shielded.
    pub alarms: i64,
    /// The long-shield alert of the point (rule [`SHIELD_RULE`]) raised during the shield.
    pub alert: Option<i64>,
}

impl Shield {
    /// The CSV header.
    pub const COLUMNS: &'static [&'static str] = &[
        "building",
        "device",
        "channel",
        "since",
        "until",
        "shielded_s",
        "alarms",
        "alert",
        "history",
    ];

    /// How long it has been (or was) shielded at `now`, in seconds.
    pub fn shielded_s(&self, now: Millis) -> i64 {
        (self.until.unwrap_or(now) - self.since).max(0) / 1000
    }

    /// The alerts of the point in the API.
    pub fn history(&self) -> String {
        crate::model::alert::alerts_link(&[("device", &self.device), ("channel", &self.channel)])
    }

    /// The API's JSON.
    pub fn json(&self, now: Millis) -> Value {
        json!({
            "building": self.building, "device": self.device, "channel": self.channel,
            "point": self.point, "since": rfc3339(self.since), "until": self.until.map(rfc3339),
            "shielded_s": self.shielded_s(now), "alarms": self.alarms,
            "alert": self.alert.map(crate::model::alert::alert_id), "history": self.history(),
        })
    }

    /// A CSV row.
    pub fn cells(&self, now: Millis) -> Vec<String> {
        vec![
            self.building.clone(),
            self.device.clone(),
            self.channel.clone(),
            rfc3339(self.since),
            self.until.map(rfc3339).unwrap_or_default(),
            self.shielded_s(now).to_string(),
            self.alarms.to_string(),
            self.alert
                .map(crate::model::alert::alert_id)
                .unwrap_or_default(),
            self.history(),
        ]
    }
}

/// Shields of points: with `span` none, the points shielded now; with `Some((from, until))`
/// every shield overlapping `[from, until)`. Optionally of some buildings only; oldest first.
pub fn shields(
    c: &dyn Db,
    span: Option<(Millis, Millis)>,
    buildings: Option<&[String]>,
) -> Result<Vec<Shield>> {
    let (from, until) = span.map_or((None, None), |(f, u)| (Some(f), Some(u)));
    let rows = c.rows(
        "SELECT s.id, s.building, s.device, s.channel, s.point, s.since, s.until,
                (SELECT count(*) FROM alerts a WHERE a.device = s.device AND a.channel = s.channel
                   AND a.rule != ?3 AND a.started_at >= s.since
                   AND (s.until IS NULL OR a.started_at < s.until)),
                (SELECT min(a.id) FROM alerts a WHERE a.device = s.device
                   AND a.channel = s.channel AND a.rule = ?3 AND a.started_at >= s.since
                   AND (s.until IS NULL OR a.started_at <= s.until))
         FROM shields s
         WHERE CASE WHEN CAST(?1 AS BIGINT) IS NULL THEN s.until IS NULL
                    ELSE s.since < ?2 AND (s.until IS NULL OR s.until > ?1) END
         ORDER BY s.since, s.id",
        args![from, until, SHIELD_RULE],
    )?;
    let mut out: Vec<Shield> = rows
        .iter()
        .map(|r| {
            Ok(Shield {
                id: r.get(0)?,
                building: r.get(1)?,
                device: r.get(2)?,
                channel: r.get(3)?,
                point: r
                    .get::<Option<String>>(4)?
                    .and_then(|p| serde_json::from_str(&p).ok()),
                since: r.get(5)?,
                until: r.get(6)?,
                alarms: r.get(7)?,
                alert: r.get(8)?,
            })
        })
        .collect::<Result<_>>()?;
    if let Some(bs) = buildings {
        out.retain(|s| bs.contains(&s.building));
    }
    Ok(out)
}

/// One flapping alert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flap {
    /// The alert.
    pub alert: i64,
    /// Marked flapping at.
    pub since: Millis,
    /// Its last clear or re-fire.
    pub last_change: Millis,
    /// Clears and re-fires since it was marked, and the ones that marked it.
    pub changes: i64,
}

/// Marks `alert` flapping, or records one more change of a flapping alert.
pub fn flap(c: &dyn Db, f: &Flap) -> Result<()> {
    c.exec(
        "INSERT INTO alert_flapping (alert_id, since, last_change, changes) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (alert_id) DO UPDATE SET last_change = excluded.last_change,
         changes = excluded.changes",
        args![f.alert, f.since, f.last_change, f.changes],
    )?;
    Ok(())
}

/// `alert` is no longer flapping.
pub fn unflap(c: &dyn Db, alert: i64) -> Result<()> {
    c.exec(
        "DELETE FROM alert_flapping WHERE alert_id = ?1",
        args![alert],
    )?;
    Ok(())
}

/// Every flapping alert.
pub fn flapping(c: &dyn Db) -> Result<Vec<Flap>> {
    c.rows(
        "SELECT alert_id, since, last_change, changes FROM alert_flapping",
        args![],
    )?
    .iter()
    .map(flap_row)
    .collect()
}

fn flap_row(r: &Row) -> Result<Flap> {
    Ok(Flap {
        alert: r.get(0)?,
        since: r.get(1)?,
        last_change: r.get(2)?,
        changes: r.get(3)?,
    })
}

/// The flapping mark of `alert`, if it has one.
pub fn flap_of(c: &dyn Db, alert: i64) -> Result<Option<Flap>> {
    c.row(
        "SELECT alert_id, since, last_change, changes FROM alert_flapping WHERE alert_id = ?1",
        args![alert],
    )?
    .as_ref()
    .map(flap_row)
    .transpose()
}
