//! The change feed's log: every change the pipeline publishes, written inside the transaction
//! that made it, so a change id (the row id) is durable with what it describes. Subscribers
//! that resume (`Last-Event-ID`) or lagged read what they missed from here.

use super::sql::Db;
use super::{Result, StoreError};
use crate::args;
use crate::model::Millis;
use serde::Serialize;

/// One stored change.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredChange {
    /// Change id.
    pub id: i64,
    /// When it was recorded.
    pub at: Millis,
    /// Change type.
    pub kind: String,
    /// Building.
    pub building: String,
    /// The change as JSON.
    pub body: String,
}

/// The ids held: (oldest, newest), both 0 when there are none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// Oldest id kept.
    pub oldest: i64,
    /// Newest id.
    pub newest: i64,
}

/// Appends a change inside the caller's transaction; returns its id.
pub fn insert<T: Serialize>(
    conn: &dyn Db,
    at: Millis,
    kind: &str,
    building: &str,
    body: &T,
) -> Result<i64> {
    let json = super::to_json(body, "change")?;
    conn.one(
        "INSERT INTO changes (at, kind, building, body) VALUES (?1, ?2, ?3, ?4) RETURNING id",
        args![at, kind, building, &json],
    )?
    .ok_or(StoreError::Corrupt {
        what: "change",
        err: "no id returned".into(),
    })
}

/// Up to `limit` changes after `since`, oldest first, of one building or all.
pub fn after(
    conn: &dyn Db,
    since: i64,
    building: Option<&str>,
    limit: usize,
) -> Result<Vec<StoredChange>> {
    conn.rows(
        "SELECT id, at, kind, building, body FROM changes
         WHERE id > ?1 AND (CAST(?2 AS TEXT) IS NULL OR building = ?2) ORDER BY id LIMIT ?3",
        args![since, building, i64::try_from(limit).unwrap_or(i64::MAX)],
    )?
    .iter()
    .map(|r| {
        Ok(StoredChange {
            id: r.get(0)?,
            at: r.get(1)?,
            kind: r.get(2)?,
            building: r.get(3)?,
            body: r.get(4)?,
        })
    })
    .collect()
}

/// The oldest and newest change ids held.
pub fn span(conn: &dyn Db) -> Result<Span> {
    let r = conn
        .row(
            "SELECT coalesce(min(id), 0), coalesce(max(id), 0) FROM changes",
            args![],
        )?
        .ok_or(StoreError::Corrupt {
            what: "change span",
            err: "no row returned".into(),
        })?;
    Ok(Span {
        oldest: r.get(0)?,
        newest: r.get(1)?,
    })
}

/// Keeps only the newest `keep` changes; returns how many went.
pub fn prune(conn: &dyn Db, keep: u32) -> Result<usize> {
    let n = conn.exec(
        "DELETE FROM changes WHERE id <= (SELECT coalesce(max(id), 0) FROM changes) - ?1",
        args![i64::from(keep)],
    )?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_numbered_read_back_in_order_and_pruned_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = super::super::open_writer(dir.path(), "normal").unwrap();
        let tx = c.transaction().unwrap();
        let mut ids = Vec::new();
        for n in 0..10 {
            let b = if n % 2 == 0 { "b1" } else { "b2" };
            ids.push(insert(&tx, n, "alert", b, &serde_json::json!({"n": n})).unwrap());
        }
        tx.commit().unwrap();
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1));
        let all = after(&c, ids[3], None, 100).unwrap();
        assert_eq!(all.len(), 6);
        assert_eq!(all[0].id, ids[4]);
        let b1 = after(&c, 0, Some("b1"), 100).unwrap();
        assert_eq!(b1.len(), 5);
        assert!(b1.iter().all(|r| r.building == "b1"));
        assert_eq!(after(&c, 0, None, 3).unwrap().len(), 3);
        assert_eq!(prune(&c, 4).unwrap(), 6);
        let s = span(&c).unwrap();
        assert_eq!((s.oldest, s.newest), (ids[6], ids[9]));
        // Ids keep growing after a prune, even when everything went.
        prune(&c, 0).unwrap();
        let next = insert(&c, 11, "device", "b1", &1).unwrap();
        assert!(next > ids[9]);
    }

    #[test]
    fn fewer_than_ten_thousand_kept_changes_is_a_configuration_problem() {
        let ok = super::super::StorageConfig::default();
        assert_eq!(ok.changes_keep, 100_000);
        assert!(ok.validate().is_empty());
        let low = super::super::StorageConfig {
            changes_keep: 9_999,
            ..Default::default()
        };
        let p = low.validate();
        assert_eq!(p.len(), 1);
        assert!(
            p[0].to_string().contains("storage.changes_keep"),
            "{}",
            p[0]
        );
    }
}
