//! Duty checks (查岗) of control rooms: one `duty_checks` row per check (scheduled or asked
//! for), one `duty_check_commands` row per transmitter it went to (the `duty_check` command in
//! `commands`), and `duty_check_schedule`, the last scheduled check time of each room, so a
//! restart neither skips nor repeats one. Written by the pipeline only.

use super::sql::Db;
use super::{Result, StoreError};
use crate::args;
use crate::model::{rfc3339, Millis};
use rusqlite::Connection;
use serde_json::{json, Value};

/// The tables, created with the store.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS duty_checks (
    id INTEGER PRIMARY KEY,
    room TEXT NOT NULL,
    reason TEXT NOT NULL,
    scheduled_for INTEGER,
    created_at INTEGER NOT NULL,
    deadline_at INTEGER NOT NULL,
    requested_by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS duty_checks_room ON duty_checks(room, id);
CREATE INDEX IF NOT EXISTS duty_checks_created ON duty_checks(created_at);
CREATE TABLE IF NOT EXISTS duty_check_commands (
    command_id INTEGER PRIMARY KEY,
    check_id INTEGER NOT NULL,
    device TEXT NOT NULL,
    building TEXT NOT NULL,
    deadline_at INTEGER NOT NULL,
    waiting INTEGER NOT NULL DEFAULT 1,
    unanswered_at INTEGER
);
CREATE INDEX IF NOT EXISTS duty_check_commands_check ON duty_check_commands(check_id);
CREATE INDEX IF NOT EXISTS duty_check_commands_waiting
    ON duty_check_commands(deadline_at) WHERE waiting = 1;
CREATE TABLE IF NOT EXISTS duty_check_schedule (
    room TEXT PRIMARY KEY,
    last_at INTEGER NOT NULL
);
";

/// Creates the tables (with the store).
pub fn create(c: &Connection) -> Result<()> {
    c.execute_batch(SCHEMA)?;
    Ok(())
}

/// `chk-000007`
pub fn check_id(id: i64) -> String {
    format!("chk-{id:06}")
}

/// Why a check was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The room's schedule.
    Scheduled,
    /// Someone asked (`POST /api/v1/duty/checks`).
    OnDemand,
}

impl Reason {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Scheduled => "scheduled",
            Reason::OnDemand => "on_demand",
        }
    }
}

/// Records a check (its commands follow with [`add_command`]); returns its row id.
pub fn insert(
    c: &dyn Db,
    room: &str,
    reason: Reason,
    scheduled_for: Option<Millis>,
    now: Millis,
    deadline_at: Millis,
    by: &str,
) -> Result<i64> {
    c.one(
        "INSERT INTO duty_checks (room, reason, scheduled_for, created_at, deadline_at, requested_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         RETURNING id",
        args![room, reason.as_str(), scheduled_for, now, deadline_at, by],
    )?
    .ok_or(StoreError::Corrupt {
        what: "duty check",
        err: "no id returned".into(),
    })
}

/// Links the `duty_check` command `command_id` to check `check_id`.
pub fn add_command(
    c: &dyn Db,
    check_id: i64,
    command_id: i64,
    device: &str,
    building: &str,
    deadline_at: Millis,
) -> Result<()> {
    c.exec(
        "INSERT INTO duty_check_commands (command_id, check_id, device, building, deadline_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        args![command_id, check_id, device, building, deadline_at],
    )?;
    Ok(())
}

/// The last scheduled check time of `room` (or when its schedule was first seen).
pub fn last_scheduled(c: &dyn Db, room: &str) -> Result<Option<Millis>> {
    c.one(
        "SELECT last_at FROM duty_check_schedule WHERE room = ?1",
        args![room],
    )
}

/// Records how far the schedule of `room` has been handled.
pub fn set_last_scheduled(c: &dyn Db, room: &str, at: Millis) -> Result<()> {
    c.exec(
        "INSERT INTO duty_check_schedule (room, last_at) VALUES (?1, ?2)
         ON CONFLICT(room) DO UPDATE SET last_at = excluded.last_at",
        args![room, at],
    )?;
    Ok(())
}

/// A transmitter's part of a check whose deadline passed unanswered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unanswered {
    /// Command row.
    pub command_id: i64,
    /// Check row.
    pub check_id: i64,
    /// The transmitter.
    pub device: String,
    /// Its building.
    pub building: String,
    /// The command's ref.
    pub reference: String,
    /// Sent at.
    pub created_at: Millis,
    /// Deadline.
    pub deadline_at: Millis,
}

/// Takes the commands of checks whose deadline passed at `now` without an answer (at most
/// `limit`): they are marked unanswered and no longer waiting.
pub fn take_unanswered(c: &dyn Db, now: Millis, limit: u32) -> Result<Vec<Unanswered>> {
    let rows = c
        .rows(
            "SELECT d.command_id, d.check_id, d.device, d.building, c.ref, c.created_at,
                    d.deadline_at, c.status
             FROM duty_check_commands d JOIN commands c ON c.id = d.command_id
             WHERE d.waiting = 1 AND d.deadline_at <= ?1 ORDER BY d.deadline_at, d.command_id
             LIMIT ?2",
            args![now, limit],
        )?
        .iter()
        .map(|r| {
            Ok((
                Unanswered {
                    command_id: r.get(0)?,
                    check_id: r.get(1)?,
                    device: r.get(2)?,
                    building: r.get(3)?,
                    reference: r.get(4)?,
                    created_at: r.get(5)?,
                    deadline_at: r.get(6)?,
                },
                r.get::<String>(7)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::new();
    for (u, status) in rows {
        if status == "answered" {
            // Answered (the answer marks the row), kept waiting only by an older store.
            c.exec(
                "UPDATE duty_check_commands SET waiting = 0 WHERE command_id = ?1",
                args![u.command_id],
            )?;
            continue;
        }
        c.exec(
            "UPDATE duty_check_commands SET waiting = 0, unanswered_at = ?2 WHERE command_id = ?1",
            args![u.command_id, now],
        )?;
        out.push(u);
    }
    Ok(out)
}

/// Records the answer to command `command_id`, if it is a duty check's: returns the
/// transmitter and its building.
pub fn answered(c: &dyn Db, command_id: i64) -> Result<Option<(String, String)>> {
    let row = c
        .row(
            "SELECT device, building FROM duty_check_commands WHERE command_id = ?1",
            args![command_id],
        )?
        .map(|r| -> Result<(String, String)> { Ok((r.get(0)?, r.get(1)?)) })
        .transpose()?;
    if row.is_some() {
        c.exec(
            "UPDATE duty_check_commands SET waiting = 0 WHERE command_id = ?1",
            args![command_id],
        )?;
    }
    Ok(row)
}

/// Checks as the API shows them (`GET /api/v1/duty/checks`), newest first, each with its
/// transmitters.
pub fn list(c: &dyn Db, room: Option<&str>, limit: u32) -> Result<Vec<Value>> {
    let ids: Vec<i64> = c
        .rows(
            "SELECT id FROM duty_checks WHERE (CAST(?1 AS TEXT) IS NULL OR room = ?1) ORDER BY id DESC LIMIT ?2",
            args![room, limit],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(v) = get(c, id)? {
            out.push(v);
        }
    }
    Ok(out)
}

/// One check with its transmitters:
/// `status` is `waiting` (before the deadline, no answer yet), `answered`, or `unanswered`.
pub fn get(c: &dyn Db, id: i64) -> Result<Option<Value>> {
    let head = c
        .row(
            "SELECT room, reason, scheduled_for, created_at, deadline_at, requested_by
             FROM duty_checks WHERE id = ?1",
            args![id],
        )?
        .map(|r| -> Result<_> {
            Ok((
                r.get::<String>(0)?,
                r.get::<String>(1)?,
                r.get::<Option<Millis>>(2)?,
                r.get::<Millis>(3)?,
                r.get::<Millis>(4)?,
                r.get::<String>(5)?,
            ))
        })
        .transpose()?;
    let Some((room, reason, scheduled_for, created_at, deadline_at, by)) = head else {
        return Ok(None);
    };
    let mut counts = (0, 0, 0);
    let transmitters = c
        .rows(
            "SELECT d.device, d.building, d.command_id, c.ref, c.status, c.answered_at,
                c.answer_delay_ms, d.unanswered_at
         FROM duty_check_commands d JOIN commands c ON c.id = d.command_id
         WHERE d.check_id = ?1 ORDER BY d.command_id",
            args![id],
        )?
        .iter()
        .map(|r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<String>(1)?,
                r.get::<i64>(2)?,
                r.get::<String>(3)?,
                r.get::<String>(4)?,
                r.get::<Option<Millis>>(5)?,
                r.get::<Option<i64>>(6)?,
                r.get::<Option<Millis>>(7)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .map(
            |(device, building, cid, reference, cstatus, answered_at, delay, unanswered_at)| {
                let status = if cstatus == "answered" {
                    counts.0 += 1;
                    "answered"
                } else if unanswered_at.is_some() {
                    counts.1 += 1;
                    "unanswered"
                } else {
                    counts.2 += 1;
                    "waiting"
                };
                json!({
                    "device": device, "building": building,
                    "command": super::commands::command_id(cid), "ref": reference,
                    "status": status, "command_status": cstatus,
                    "answered_at": answered_at.map(rfc3339), "answer_delay_ms": delay,
                    "late": answered_at.is_some_and(|a| a > deadline_at),
                    "unanswered_at": unanswered_at.map(rfc3339),
                })
            },
        )
        .collect::<Vec<_>>();
    let status = match counts {
        (_, 0, 0) => "answered",
        (_, _, 0) => "unanswered",
        _ => "waiting",
    };
    Ok(Some(json!({
        "id": check_id(id), "control_room": room, "reason": reason,
        "scheduled_for": scheduled_for.map(rfc3339),
        "created_at": rfc3339(created_at), "deadline_at": rfc3339(deadline_at),
        "requested_by": by, "status": status,
        "answered": counts.0, "unanswered": counts.1, "waiting": counts.2,
        "transmitters": transmitters,
    })))
}
