//! (added) The raw GB/T 26875.3 frames, both ways, kept for audit (table `gb_frames`): when,
//! which transmitter, from which peer, the bytes in hex, and what was wrong with a frame that
//! was denied. Written by the pipeline as the gateway hands them over; pruned after
//! `gb26875.frames_keep_days`.

use super::sql::{Db, Row};
use super::Result;
use crate::args;
use crate::model::{rfc3339, Millis};
use serde_json::{json, Value};

/// The table.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS gb_frames (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    device      TEXT,
    peer        TEXT NOT NULL,
    direction   TEXT NOT NULL,
    hex         TEXT NOT NULL,
    note        TEXT
);
CREATE INDEX IF NOT EXISTS gb_frames_device ON gb_frames(device, id);
CREATE INDEX IF NOT EXISTS gb_frames_at ON gb_frames(at);
"#;

/// One frame as it crossed the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameRecord {
    /// When (firewatch's clock).
    pub at: Millis,
    /// The transmitter, once known.
    pub device: Option<String>,
    /// The peer's `ip:port`.
    pub peer: String,
    /// `in` (from the transmitter) or `out`.
    pub direction: &'static str,
    /// The bytes, in upper-case hex.
    pub hex: String,
    /// Why it was denied, or what it was.
    pub note: Option<String>,
}

impl FrameRecord {
    /// The API's JSON (with its row id).
    pub fn json(&self, id: i64) -> Value {
        json!({
            "id": id, "at": rfc3339(self.at), "device": self.device, "peer": self.peer,
            "direction": self.direction, "hex": self.hex, "note": self.note,
        })
    }
}

/// Writes `records`.
pub fn insert(c: &dyn Db, records: &[FrameRecord]) -> Result<()> {
    for r in records {
        c.exec(
            "INSERT INTO gb_frames (at, device, peer, direction, hex, note)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            args![
                r.at,
                r.device.as_deref(),
                &r.peer,
                r.direction,
                &r.hex,
                r.note.as_deref()
            ],
        )?;
    }
    Ok(())
}

/// Deletes up to `max` frames older than `cutoff`; returns how many.
pub fn prune(c: &dyn Db, cutoff: Millis, max: usize) -> Result<usize> {
    let n = c.exec(
        "DELETE FROM gb_frames WHERE id IN
         (SELECT id FROM gb_frames WHERE at < ?1 ORDER BY id LIMIT ?2)",
        args![cutoff, max],
    )?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// Frames, newest first: of one device, at or after `since`, at most `limit`.
pub fn list(
    c: &dyn Db,
    device: Option<&str>,
    since: Option<Millis>,
    limit: u32,
) -> Result<Vec<(i64, FrameRecord)>> {
    c.rows(
        "SELECT id, at, device, peer, direction, hex, note FROM gb_frames
         WHERE (CAST(?1 AS TEXT) IS NULL OR device = ?1) AND (CAST(?2 AS BIGINT) IS NULL OR at >= ?2)
         ORDER BY id DESC LIMIT ?3",
        args![device, since, limit],
    )?
    .iter()
    .map(frame_row)
    .collect()
}

fn frame_row(r: &Row) -> Result<(i64, FrameRecord)> {
    let direction: String = r.get(4)?;
    Ok((
        r.get(0)?,
        FrameRecord {
            at: r.get(1)?,
            device: r.get(2)?,
            peer: r.get(3)?,
            direction: if direction == "out" { "out" } else { "in" },
            hex: r.get(5)?,
            note: r.get(6)?,
        },
    ))
}
