//! Duty overrides (swaps and leaves), table `duty_overrides`.
//!
//! Unlike every other table, these rows are written by the API through a connection of their
//! own ([`open_writer`]), not by the pipeline thread: an override is one row, written a few
//! times a day, and SQLite in WAL mode serialises it with the pipeline's group commits (both
//! connections wait up to their busy timeout for the other's write lock, and an override's
//! transaction holds it for well under a millisecond). The roster in memory is then reloaded
//! from these rows ([`load`]).

use super::sql::{Db, Row};
use super::{Result, StoreError};
use crate::args;
use crate::duty::Override;
use crate::model::Millis;
use rusqlite::Connection;
use std::path::Path;
use std::time::Duration;

/// `o-000012`
pub fn override_id(id: i64) -> String {
    format!("o-{id:06}")
}

/// Parses `o-000012` (or `12`).
pub fn parse_override_id(s: &str) -> Option<i64> {
    s.strip_prefix("o-")
        .unwrap_or(s)
        .parse()
        .ok()
        .filter(|n| *n > 0)
}

/// Opens a small writer connection for overrides on a store the pipeline has created.
pub fn open_writer(dir: &Path) -> Result<Connection> {
    let conn = Connection::open(super::db_path(dir))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

const COLUMNS: &str =
    "id, room, shift, from_ms, until_ms, replace_person, with_person, by, note, created_at, ended_at";

fn row(r: &Row) -> Result<Override> {
    Ok(Override {
        id: r.get(0)?,
        room: r.get(1)?,
        shift: r.get(2)?,
        from: r.get(3)?,
        until: r.get(4)?,
        replace: r.get(5)?,
        with: r.get(6)?,
        by: r.get(7)?,
        note: r.get(8)?,
        created_at: r.get(9)?,
        ended_at: r.get(10)?,
    })
}

/// Stores a new override (its `id` is ignored); returns it with its id.
pub fn insert(conn: &dyn Db, o: &Override) -> Result<Override> {
    let id: i64 = conn
        .one(
            "INSERT INTO duty_overrides (room, shift, from_ms, until_ms, replace_person, with_person, by,
                                     note, created_at, ended_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL)
         RETURNING id",
            args![
                &o.room,
                o.shift.as_deref(),
                o.from,
                o.until,
                &o.replace,
                o.with.as_deref(),
                &o.by,
                o.note.as_deref(),
                o.created_at
            ],
        )?
        .ok_or(StoreError::Corrupt {
            what: "duty override",
            err: "no id returned".into(),
        })?;
    Ok(Override {
        id,
        ended_at: None,
        ..o.clone()
    })
}

/// One override.
pub fn get(conn: &dyn Db, id: i64) -> Result<Option<Override>> {
    conn.row(
        &format!("SELECT {COLUMNS} FROM duty_overrides WHERE id = ?1"),
        args![id],
    )?
    .as_ref()
    .map(row)
    .transpose()
}

/// Ends an override at `at` (it stops applying then); `false` when it had already ended or
/// does not exist.
pub fn end(conn: &dyn Db, id: i64, at: Millis) -> Result<bool> {
    let n = conn.exec(
        "UPDATE duty_overrides SET ended_at = ?2
         WHERE id = ?1 AND ended_at IS NULL AND until_ms > ?2",
        args![id, at],
    )?;
    Ok(n == 1)
}

/// Overrides still applying after `after` (their end, or the time they were ended, is later),
/// by id.
pub fn load(conn: &dyn Db, after: Millis) -> Result<Vec<Override>> {
    conn.rows(
        &format!(
            "SELECT {COLUMNS} FROM duty_overrides
         WHERE CASE WHEN until_ms <= coalesce(ended_at, until_ms) THEN until_ms
                    ELSE coalesce(ended_at, until_ms) END > ?1 ORDER BY id"
        ),
        args![after],
    )?
    .iter()
    .map(row)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_are_stored_ended_and_loaded_by_their_end() {
        let dir = tempfile::tempdir().unwrap();
        let _pipeline = super::super::open_writer(dir.path(), "normal").unwrap();
        let conn = open_writer(dir.path()).unwrap();
        let o = Override {
            id: 0,
            room: "cr".into(),
            shift: Some("night".into()),
            from: 1_000,
            until: 5_000,
            replace: "p1".into(),
            with: None,
            by: "lead".into(),
            note: Some("病假".into()),
            created_at: 900,
            ended_at: None,
        };
        let a = insert(&conn, &o).unwrap();
        let b = insert(
            &conn,
            &Override {
                until: 9_000,
                ..o.clone()
            },
        )
        .unwrap();
        assert_eq!(get(&conn, a.id).unwrap().unwrap(), a);
        assert_eq!(load(&conn, 4_000).unwrap(), vec![a.clone(), b.clone()]);
        assert!(end(&conn, b.id, 3_000).unwrap());
        assert!(!end(&conn, b.id, 3_500).unwrap(), "already ended");
        assert!(!end(&conn, 999, 3_500).unwrap(), "no such override");
        assert_eq!(get(&conn, b.id).unwrap().unwrap().ended_at, Some(3_000));
        assert_eq!(load(&conn, 4_000).unwrap(), vec![a.clone()]);
        assert!(load(&conn, 5_000).unwrap().is_empty());
        assert_eq!(parse_override_id(&override_id(a.id)), Some(a.id));
    }
}
