//! (added) What the northbound targets (forwarding to a city platform) need from the store:
//! their cursors in `meta`, the backlog and lag behind them, the records a platform refused
//! (`northbound_set_aside`), and the pruning floors that keep what a target has not forwarded.

use super::sql::{Db, Row};
use super::{changes, Result};
use crate::args;
use crate::model::Millis;
use rusqlite::Connection;

/// Creates the table of set-aside records (idempotent).
pub fn create(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS northbound_set_aside (
            id INTEGER PRIMARY KEY,
            target TEXT NOT NULL,
            key TEXT NOT NULL,
            at INTEGER NOT NULL,
            error TEXT NOT NULL,
            record TEXT NOT NULL
        );",
    )?;
    Ok(())
}

/// Which table a target reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The change feed (`changes`): alerts and devices.
    Changes,
    /// Readings (`readings`).
    Readings,
}

impl Source {
    /// The name in idempotency keys and cursor keys.
    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Changes => "change",
            Source::Readings => "reading",
        }
    }
}

/// The `meta` key of a target's cursor on a source.
pub fn cursor_key(target: &str, source: Source) -> String {
    format!("northbound.{target}.{}", source.as_str())
}

/// A target's hold on pruning: the rows after its cursor stay, unless more than `max_backlog`
/// rows are behind it (then the oldest go as usual, and the target counts them as dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The cursor's `meta` key ([`cursor_key`]).
    pub cursor_key: String,
    /// Which table.
    pub source: Source,
    /// Rows kept behind the cursor at most.
    pub max_backlog: i64,
}

/// A record a platform refused, kept with the cursor that passes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    /// Target name.
    pub target: String,
    /// The record's idempotency key.
    pub key: String,
    /// When it was set aside.
    pub at: Millis,
    /// The platform's answer.
    pub error: String,
    /// The record as sent (JSON).
    pub record: String,
}

/// Keeps a refused record (inside the caller's transaction).
pub fn set_aside(conn: &dyn Db, s: &SetAside) -> Result<()> {
    conn.exec(
        "INSERT INTO northbound_set_aside (target, key, at, error, record)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        args![&s.target, &s.key, s.at, &s.error, &s.record],
    )?;
    Ok(())
}

/// Set-aside records of a target, oldest first.
pub fn set_aside_of(conn: &dyn Db, target: &str) -> Result<Vec<SetAside>> {
    conn.rows(
        "SELECT target, key, at, error, record FROM northbound_set_aside
         WHERE target = ?1 ORDER BY id",
        args![target],
    )?
    .iter()
    .map(|r: &Row| {
        Ok(SetAside {
            target: r.get(0)?,
            key: r.get(1)?,
            at: r.get(2)?,
            error: r.get(3)?,
            record: r.get(4)?,
        })
    })
    .collect()
}

/// Oldest id held in a source (0 when empty).
pub fn oldest_id(conn: &dyn Db, source: Source) -> Result<i64> {
    let sql = match source {
        Source::Changes => "SELECT coalesce(min(id), 0) FROM changes",
        Source::Readings => "SELECT coalesce(min(id), 0) FROM readings",
    };
    Ok(conn.one::<i64>(sql, args![])?.unwrap_or(0))
}

/// Newest id held in a source (0 when empty).
pub fn newest_id(conn: &dyn Db, source: Source) -> Result<i64> {
    match source {
        Source::Changes => Ok(changes::span(conn)?.newest),
        Source::Readings => super::max_reading_id(conn),
    }
}

/// What is behind a cursor: records not yet forwarded and the time of the oldest of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Behind {
    /// Records after the cursor (of the kinds forwarded).
    pub records: i64,
    /// Time of the oldest of them (change time, or reading time).
    pub oldest_at: Option<Millis>,
}

/// Changes of the `kinds` after `cursor`.
pub fn changes_behind(conn: &dyn Db, cursor: i64, kinds: &[&str]) -> Result<Behind> {
    let (alert, device) = (kinds.contains(&"alert"), kinds.contains(&"device"));
    conn.row(
        "SELECT count(*), min(at) FROM changes WHERE id > ?1
             AND ((?2 = 1 AND kind = 'alert') OR (?3 = 1 AND kind = 'device'))",
        args![cursor, alert, device],
    )?
    .map_or(Ok(Behind::default()), |r| {
        Ok(Behind {
            records: r.get(0)?,
            oldest_at: r.get(1)?,
        })
    })
}

/// Readings after `cursor` (by id: ids are contiguous between prunes of the oldest).
pub fn readings_behind(conn: &dyn Db, cursor: i64) -> Result<Behind> {
    let newest = super::max_reading_id(conn)?;
    let oldest_at: Option<Millis> = conn.one(
        "SELECT ts FROM readings WHERE id > ?1 ORDER BY id LIMIT 1",
        args![cursor],
    )?;
    Ok(Behind {
        records: (newest - cursor).max(0),
        oldest_at,
    })
}

/// The lowest id each source must keep for the holds (rows after it stay): `None` for a source
/// no hold is on.
pub fn floors(conn: &dyn Db, holds: &[Hold]) -> Result<(Option<i64>, Option<i64>)> {
    let (mut changes_floor, mut readings_floor): (Option<i64>, Option<i64>) = (None, None);
    for h in holds {
        let cursor = super::get_meta(conn, &h.cursor_key)?.unwrap_or(0);
        let newest = newest_id(conn, h.source)?;
        let floor = cursor.max(newest.saturating_sub(h.max_backlog));
        let slot = match h.source {
            Source::Changes => &mut changes_floor,
            Source::Readings => &mut readings_floor,
        };
        *slot = Some(slot.map_or(floor, |f| f.min(floor)));
    }
    Ok((changes_floor, readings_floor))
}

/// [`changes::prune`] that also keeps every change after `floor`; returns how many went.
pub fn prune_changes(conn: &dyn Db, keep: u32, floor: i64) -> Result<usize> {
    let n = conn.exec(
        "DELETE FROM changes WHERE id <= CASE
             WHEN (SELECT coalesce(max(id), 0) FROM changes) - ?1 <= ?2
             THEN (SELECT coalesce(max(id), 0) FROM changes) - ?1
             ELSE ?2 END",
        args![i64::from(keep), floor],
    )?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_a_target_has_not_forwarded_outlive_the_prune_up_to_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let c = super::super::open_writer(dir.path(), "normal").unwrap();
        for n in 0..100 {
            let kind = if n % 2 == 0 { "alert" } else { "device" };
            changes::insert(&c, n, kind, "b1", &serde_json::json!({"n": n})).unwrap();
        }
        let hold = Hold {
            cursor_key: cursor_key("city", Source::Changes),
            source: Source::Changes,
            max_backlog: 60,
        };
        super::super::set_meta(&c, &hold.cursor_key, 10).unwrap();
        // Keep 20 by count, but the target is at 10 with 90 behind: the bound (60) wins.
        let (floor, readings) = floors(&c, std::slice::from_ref(&hold)).unwrap();
        assert_eq!((floor, readings), (Some(40), None));
        assert_eq!(prune_changes(&c, 20, 40).unwrap(), 40);
        assert_eq!(oldest_id(&c, Source::Changes).unwrap(), 41);
        // The target catches up to 95: the count decides again.
        super::super::set_meta(&c, &hold.cursor_key, 95).unwrap();
        let (floor, _) = floors(&c, &[hold]).unwrap();
        assert_eq!(prune_changes(&c, 20, floor.unwrap()).unwrap(), 40);
        assert_eq!(oldest_id(&c, Source::Changes).unwrap(), 81);
        let b = changes_behind(&c, 90, &["alert"]).unwrap();
        assert_eq!(b.records, 5);
        assert_eq!(b.oldest_at, Some(90));
    }

    #[test]
    fn set_aside_records_are_kept_per_target() {
        let dir = tempfile::tempdir().unwrap();
        let c = super::super::open_writer(dir.path(), "normal").unwrap();
        let s = SetAside {
            target: "city".into(),
            key: "firewatch:change:7".into(),
            at: 5,
            error: "HTTP 400".into(),
            record: "{}".into(),
        };
        set_aside(&c, &s).unwrap();
        assert_eq!(set_aside_of(&c, "city").unwrap(), vec![s]);
        assert!(set_aside_of(&c, "other").unwrap().is_empty());
    }
}
