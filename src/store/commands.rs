//! The command outbox: commands to devices (contract section 2.4), written by the store's single
//! writer, read by the command publisher and the API through read-only connections.
//!
//! A row is `pending` until the broker's PUBACK for its publish arrived (`published`), then
//! `answered` when the device's `duty_check_answer` with the same `ref` was accepted. A row that
//! could not be published within its bounded attempts is `failed`.

use super::sql::{Db, Row};
use super::Result;
use crate::args;
use crate::model::{rfc3339, Kind, Millis};
use serde_json::{json, Value};
use std::fmt;
use std::str::FromStr;

/// What a command asks of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandKind {
    /// 查岗: the control room presses its duty-check answer key.
    DutyCheck,
}

impl CommandKind {
    /// Every command.
    pub const ALL: [CommandKind; 1] = [CommandKind::DutyCheck];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            CommandKind::DutyCheck => "duty_check",
        }
    }

    /// The device kind that takes this command.
    pub const fn target(self) -> Kind {
        match self {
            CommandKind::DutyCheck => Kind::Transmitter,
        }
    }

    /// The event a device answers this command with.
    pub const fn answer_event(self) -> &'static str {
        match self {
            CommandKind::DutyCheck => "duty_check_answer",
        }
    }
}

impl FromStr for CommandKind {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        CommandKind::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or(())
    }
}

impl fmt::Display for CommandKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a command is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandStatus {
    /// Queued; not confirmed by the broker yet.
    Pending,
    /// The broker acknowledged the publish (PUBACK).
    Published,
    /// The device answered.
    Answered,
    /// Could not be published within the bounded attempts.
    Failed,
}

impl CommandStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [CommandStatus; 4] = [
        CommandStatus::Pending,
        CommandStatus::Published,
        CommandStatus::Answered,
        CommandStatus::Failed,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            CommandStatus::Pending => "pending",
            CommandStatus::Published => "published",
            CommandStatus::Answered => "answered",
            CommandStatus::Failed => "failed",
        }
    }
}

impl FromStr for CommandStatus {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        CommandStatus::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or(())
    }
}

impl fmt::Display for CommandStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `c-000012`
pub fn command_id(id: i64) -> String {
    format!("c-{id:06}")
}

/// Parses `c-000012` (or `12`).
pub fn parse_command_id(s: &str) -> Option<i64> {
    s.strip_prefix("c-")
        .unwrap_or(s)
        .parse()
        .ok()
        .filter(|n| *n > 0)
}

/// A command as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Row id.
    pub id: i64,
    /// Device id.
    pub device: String,
    /// Its building.
    pub building: String,
    /// Its kind.
    pub kind: String,
    /// The command.
    pub command: String,
    /// Correlates the answer (unique).
    pub reference: String,
    /// The JSON published, byte for byte.
    pub payload: String,
    /// Queued at.
    pub created_at: Millis,
    /// The device should answer by then.
    pub deadline_at: Millis,
    /// Status.
    pub status: CommandStatus,
    /// Failed publish attempts so far.
    pub attempts: i64,
    /// Not published again before.
    pub next_attempt_at: Millis,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The broker's PUBACK arrived at.
    pub published_at: Option<Millis>,
    /// The answer was received at.
    pub answered_at: Option<Millis>,
    /// Answer receive time − published_at (− created_at when the PUBACK was not recorded yet).
    pub answer_delay_ms: Option<i64>,
    /// Who asked.
    pub requested_by: String,
}

impl Command {
    /// The topic it is published on: `fw/v1/{building}/{kind}/{device}/command`.
    pub fn topic(&self) -> String {
        format!(
            "{}{}/{}/{}/command",
            crate::model::TOPIC_PREFIX,
            self.building,
            self.kind,
            self.device
        )
    }

    /// The API's JSON.
    pub fn to_json(&self) -> Value {
        let t = |v: Option<Millis>| v.map(rfc3339);
        let payload: Value = serde_json::from_str(&self.payload).unwrap_or(Value::Null);
        json!({
            "id": command_id(self.id),
            "device": self.device,
            "building": self.building,
            "kind": self.kind,
            "command": self.command,
            "ref": self.reference,
            "status": self.status.as_str(),
            "payload": payload,
            "topic": self.topic(),
            "created_at": rfc3339(self.created_at),
            "deadline_at": rfc3339(self.deadline_at),
            "attempts": self.attempts,
            "last_error": self.last_error,
            "published_at": t(self.published_at),
            "answered_at": t(self.answered_at),
            "answer_delay_ms": self.answer_delay_ms,
            "requested_by": self.requested_by,
        })
    }
}

const COLUMNS: &str = "id, device, building, kind, command, ref, payload, created_at, deadline_at,
    status, attempts, next_attempt_at, last_error, published_at, answered_at, answer_delay_ms,
    requested_by";

fn from_row(r: &Row) -> Result<Command> {
    let status: String = r.get(9)?;
    Ok(Command {
        id: r.get(0)?,
        device: r.get(1)?,
        building: r.get(2)?,
        kind: r.get(3)?,
        command: r.get(4)?,
        reference: r.get(5)?,
        payload: r.get(6)?,
        created_at: r.get(7)?,
        deadline_at: r.get(8)?,
        // The column is only ever written from `CommandStatus::as_str`.
        status: status.parse().unwrap_or(CommandStatus::Pending),
        attempts: r.get(10)?,
        next_attempt_at: r.get(11)?,
        last_error: r.get(12)?,
        published_at: r.get(13)?,
        answered_at: r.get(14)?,
        answer_delay_ms: r.get(15)?,
        requested_by: r.get(16)?,
    })
}

/// A command to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCommand {
    /// Device id.
    pub device: String,
    /// Its building.
    pub building: String,
    /// Its kind.
    pub kind: Kind,
    /// The command.
    pub command: CommandKind,
    /// Seconds the device has to answer.
    pub deadline_s: u32,
    /// Who asks.
    pub by: String,
}

/// Why a command was not queued.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The device is neither registered nor seen.
    #[error("{0}")]
    UnknownDevice(String),
    /// The device's kind does not take this command.
    #[error("{0}")]
    WrongKind(String),
    /// The store failed.
    #[error("{0}")]
    Store(#[from] super::StoreError),
}

/// A request to queue a command for a device, resolved by the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandRequest {
    /// Device id.
    pub device: String,
    /// The command.
    pub command: CommandKind,
    /// Seconds the device has to answer.
    pub deadline_s: u32,
    /// Who asks.
    pub by: String,
}

impl CommandRequest {
    /// Checks the device's kind and turns the request into a row to insert; `known` is the
    /// device's (building, kind) if it is registered or seen.
    pub fn resolve(
        &self,
        known: Option<(String, Kind)>,
    ) -> std::result::Result<NewCommand, CommandError> {
        let (building, kind) = known.ok_or_else(|| {
            CommandError::UnknownDevice(format!(
                "device {} is neither registered nor seen",
                self.device
            ))
        })?;
        if kind != self.command.target() {
            return Err(CommandError::WrongKind(format!(
                "device {} is a {} device; {} goes to {} devices",
                self.device,
                kind,
                self.command,
                self.command.target()
            )));
        }
        Ok(NewCommand {
            device: self.device.clone(),
            building,
            kind,
            command: self.command,
            deadline_s: self.deadline_s,
            by: self.by.clone(),
        })
    }
}

/// `20261129T093000` (UTC) for refs.
fn compact_time(ms: Millis) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => {
            let format =
                time::macros::format_description!("[year][month][day]T[hour][minute][second]");
            t.format(&format).unwrap_or_else(|_| ms.to_string())
        }
        Err(_) => ms.to_string(),
    }
}

/// Queues a command inside the caller's transaction; returns it. Its `ref` is
/// `dc-{device}-{created, UTC}-{id}`, unique by its row id.
pub fn insert(c: &dyn Db, n: &NewCommand, now: Millis) -> Result<Command> {
    let deadline_at = now + i64::from(n.deadline_s) * 1000;
    // A placeholder `ref` until the row id is known (the real one replaces it below, in the
    // same transaction): random, so that writers on one PostgreSQL database queuing in the same
    // millisecond never make the same one.
    let placeholder = crate::auth::token::random_bytes::<12>()
        .map(|b| format!("new-{}", hex::encode(b)))
        .map_err(|e| super::StoreError::Io(std::io::Error::other(e)))?;
    let id: i64 = c
        .one(
            "INSERT INTO commands (device, building, kind, command, ref, payload, created_at,
                 deadline_at, status, attempts, next_attempt_at, requested_by)
             VALUES (?1, ?2, ?3, ?4,
                 ?8, '', ?5, ?6, 'pending', 0, ?5, ?7)
             RETURNING id",
            args![
                &n.device,
                &n.building,
                n.kind.as_str(),
                n.command.as_str(),
                now,
                deadline_at,
                &n.by,
                &placeholder
            ],
        )?
        .ok_or(super::StoreError::Corrupt {
            what: "command",
            err: "no id returned".into(),
        })?;
    let prefix = match n.command {
        CommandKind::DutyCheck => "dc",
    };
    let reference = format!("{prefix}-{}-{}-{id}", n.device, compact_time(now));
    let payload = json!({
        "command": n.command.as_str(),
        "ref": reference,
        "deadline_s": n.deadline_s,
        "ts": rfc3339(now),
    })
    .to_string();
    c.exec(
        "UPDATE commands SET ref = ?2, payload = ?3 WHERE id = ?1",
        args![id, &reference, &payload],
    )?;
    get(c, id)?.ok_or(super::StoreError::Corrupt {
        what: "command",
        err: format!("row {id} vanished after insert"),
    })
}

/// One command.
pub fn get(c: &dyn Db, id: i64) -> Result<Option<Command>> {
    c.row(
        &format!("SELECT {COLUMNS} FROM commands WHERE id = ?1"),
        args![id],
    )?
    .as_ref()
    .map(from_row)
    .transpose()
}

/// Commands, newest first.
pub fn list(
    c: &dyn Db,
    device: Option<&str>,
    status: Option<CommandStatus>,
    limit: u32,
) -> Result<Vec<Command>> {
    c.rows(
        &format!(
            "SELECT {COLUMNS} FROM commands WHERE (CAST(?1 AS TEXT) IS NULL OR device = ?1)
         AND (CAST(?2 AS TEXT) IS NULL OR status = ?2) ORDER BY id DESC LIMIT ?3"
        ),
        args![device, status.map(CommandStatus::as_str), limit],
    )?
    .iter()
    .map(from_row)
    .collect()
}

/// Pending commands due for an attempt at `now`, oldest first, and how many are pending in all.
pub fn due(c: &dyn Db, now: Millis, limit: u32) -> Result<(Vec<Command>, i64)> {
    let rows = c
        .rows(
            &format!(
                "SELECT {COLUMNS} FROM commands WHERE status = 'pending' AND next_attempt_at <= ?1
         ORDER BY id LIMIT ?2"
            ),
            args![now, limit],
        )?
        .iter()
        .map(from_row)
        .collect::<Result<Vec<_>>>()?;
    let pending: i64 = c
        .one::<i64>(
            "SELECT count(*) FROM commands WHERE status = 'pending'",
            args![],
        )?
        .unwrap_or(0);
    Ok((rows, pending))
}

/// The earliest `next_attempt_at` after `now` of a pending command (one backing off).
pub fn next_due_after(c: &dyn Db, now: Millis) -> Result<Option<Millis>> {
    Ok(c.one::<Option<Millis>>(
        "SELECT min(next_attempt_at) FROM commands
             WHERE status = 'pending' AND next_attempt_at > ?1",
        args![now],
    )?
    .flatten())
}

/// Records the broker's PUBACK: `pending` → `published`. An answer may have been recorded
/// first (the device can answer before the PUBACK is processed): then only `published_at` is
/// filled in. Returns whether the row changed to `published`.
pub fn mark_published(c: &dyn Db, id: i64, at: Millis) -> Result<bool> {
    let n = c.exec(
        "UPDATE commands SET status = 'published', published_at = ?2, last_error = NULL
             WHERE id = ?1 AND status = 'pending'",
        args![id, at],
    )?;
    if n == 0 {
        c.exec(
            "UPDATE commands SET published_at = ?2 WHERE id = ?1 AND published_at IS NULL
             AND status = 'answered'",
            args![id, at],
        )?;
    }
    Ok(n > 0)
}

/// Longest wait between publish attempts.
pub const MAX_BACKOFF_MS: i64 = 60_000;

/// Records a failed publish attempt: the next one waits (1 s doubling, capped at
/// [`MAX_BACKOFF_MS`]); with `give_up` the row becomes `failed`. Returns whether it failed
/// for good.
pub fn record_attempt(c: &dyn Db, id: i64, at: Millis, error: &str, give_up: bool) -> Result<bool> {
    let attempts: Option<i64> = c.one(
        "SELECT attempts FROM commands WHERE id = ?1 AND status = 'pending'",
        args![id],
    )?;
    let Some(attempts) = attempts else {
        return Ok(false); // confirmed or answered meanwhile
    };
    let attempts = attempts + 1;
    let backoff = (1000_i64 << attempts.clamp(0, 20)).min(MAX_BACKOFF_MS);
    let status = if give_up { "failed" } else { "pending" };
    c.exec(
        "UPDATE commands SET attempts = ?2, next_attempt_at = ?3, last_error = ?4, status = ?5
         WHERE id = ?1",
        args![id, attempts, at + backoff, error, status],
    )?;
    Ok(give_up)
}

/// What an answer matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The command it answers, now `answered`.
    Matched {
        /// Command row.
        id: i64,
        /// Answer delay.
        delay_ms: i64,
    },
    /// A command already answered: the first answer stays.
    Repeated {
        /// Command row.
        id: i64,
    },
    /// No command of this device has this ref.
    Unmatched,
}

/// Matches an answer event of `device` by `ref`, inside the caller's transaction (the event's).
/// A late answer (after the deadline) or one of a `failed` command is still recorded.
pub fn answer(
    c: &dyn Db,
    device: &str,
    reference: &str,
    event: &str,
    received: Millis,
) -> Result<Answer> {
    let row: Option<(i64, String, String, Millis, Option<Millis>)> = c
        .row(
            "SELECT id, command, status, created_at, published_at FROM commands
             WHERE ref = ?1 AND device = ?2",
            args![reference, device],
        )?
        .map(|r| -> Result<_> { Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)) })
        .transpose()?;
    let Some((id, command, status, created_at, published_at)) = row else {
        return Ok(Answer::Unmatched);
    };
    if command
        .parse::<CommandKind>()
        .map_or(true, |k| k.answer_event() != event)
    {
        return Ok(Answer::Unmatched);
    }
    if status == CommandStatus::Answered.as_str() {
        return Ok(Answer::Repeated { id });
    }
    let delay_ms = (received - published_at.unwrap_or(created_at)).max(0);
    c.exec(
        "UPDATE commands SET status = 'answered', answered_at = ?2, answer_delay_ms = ?3
         WHERE id = ?1",
        args![id, received, delay_ms],
    )?;
    Ok(Answer::Matched { id, delay_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, rusqlite::Connection) {
        let dir = tempfile::tempdir().unwrap();
        let c = crate::store::open_writer(dir.path(), "normal").unwrap();
        (dir, c)
    }

    fn duty_check(device: &str) -> NewCommand {
        NewCommand {
            device: device.into(),
            building: "bsy-0012".into(),
            kind: Kind::Transmitter,
            command: CommandKind::DutyCheck,
            deadline_s: 600,
            by: "wang".into(),
        }
    }

    const T0: Millis = 1_795_908_600_000; // 2026-11-28T23:30:00Z

    #[test]
    fn a_duty_check_is_queued_with_a_unique_ref_and_the_contract_payload() {
        let (_d, c) = store();
        let a = insert(&c, &duty_check("uitd-01"), T0).unwrap();
        let b = insert(&c, &duty_check("uitd-01"), T0).unwrap();
        assert_eq!(a.reference, format!("dc-uitd-01-20261128T233000-{}", a.id));
        assert_ne!(a.reference, b.reference);
        assert_eq!(a.status, CommandStatus::Pending);
        assert_eq!(a.deadline_at, T0 + 600_000);
        assert_eq!(a.topic(), "fw/v1/bsy-0012/transmitter/uitd-01/command");
        let p: Value = serde_json::from_str(&a.payload).unwrap();
        assert_eq!(
            p,
            json!({"command": "duty_check", "ref": a.reference, "deadline_s": 600,
                   "ts": "2026-11-28T23:30:00.000Z"})
        );
        let (due_now, pending) = due(&c, T0, 10).unwrap();
        assert_eq!((due_now.len(), pending), (2, 2));
    }

    #[test]
    fn published_then_answered_with_the_delay_from_the_puback() {
        let (_d, c) = store();
        let a = insert(&c, &duty_check("uitd-01"), T0).unwrap();
        assert!(mark_published(&c, a.id, T0 + 200).unwrap());
        let r = answer(&c, "uitd-01", &a.reference, "duty_check_answer", T0 + 5200).unwrap();
        assert_eq!(
            r,
            Answer::Matched {
                id: a.id,
                delay_ms: 5000
            }
        );
        let got = get(&c, a.id).unwrap().unwrap();
        assert_eq!(got.status, CommandStatus::Answered);
        assert_eq!(got.answer_delay_ms, Some(5000));
        assert_eq!(
            answer(&c, "uitd-01", &a.reference, "duty_check_answer", T0 + 9000).unwrap(),
            Answer::Repeated { id: a.id }
        );
        // A late PUBACK changes nothing.
        assert!(!mark_published(&c, a.id, T0 + 9500).unwrap());
        assert_eq!(
            get(&c, a.id).unwrap().unwrap().status,
            CommandStatus::Answered
        );
    }

    #[test]
    fn an_answer_before_the_puback_counts_from_creation() {
        let (_d, c) = store();
        let a = insert(&c, &duty_check("uitd-01"), T0).unwrap();
        let r = answer(&c, "uitd-01", &a.reference, "duty_check_answer", T0 + 300).unwrap();
        assert_eq!(
            r,
            Answer::Matched {
                id: a.id,
                delay_ms: 300
            }
        );
        assert!(!mark_published(&c, a.id, T0 + 400).unwrap());
        let got = get(&c, a.id).unwrap().unwrap();
        assert_eq!(got.published_at, Some(T0 + 400));
        assert_eq!(got.status, CommandStatus::Answered);
    }

    #[test]
    fn unknown_refs_and_other_devices_do_not_match() {
        let (_d, c) = store();
        let a = insert(&c, &duty_check("uitd-01"), T0).unwrap();
        assert_eq!(
            answer(&c, "uitd-02", &a.reference, "duty_check_answer", T0).unwrap(),
            Answer::Unmatched
        );
        assert_eq!(
            answer(&c, "uitd-01", "dc-nope", "duty_check_answer", T0).unwrap(),
            Answer::Unmatched
        );
        assert_eq!(
            answer(&c, "uitd-01", &a.reference, "reset", T0).unwrap(),
            Answer::Unmatched
        );
    }

    #[test]
    fn attempts_back_off_and_end_failed() {
        let (_d, c) = store();
        let a = insert(&c, &duty_check("uitd-01"), T0).unwrap();
        assert!(!record_attempt(&c, a.id, T0, "no PUBACK", false).unwrap());
        let got = get(&c, a.id).unwrap().unwrap();
        assert_eq!(
            (got.attempts, got.next_attempt_at, got.status),
            (1, T0 + 2000, CommandStatus::Pending)
        );
        assert!(due(&c, T0 + 1999, 10).unwrap().0.is_empty());
        assert!(record_attempt(&c, a.id, T0 + 2000, "no PUBACK", true).unwrap());
        let got = get(&c, a.id).unwrap().unwrap();
        assert_eq!(got.status, CommandStatus::Failed);
        assert_eq!(got.last_error.as_deref(), Some("no PUBACK"));
        assert_eq!(due(&c, T0 + 100_000, 10).unwrap(), (vec![], 0));
        // An answer to a failed command (published after all) is still recorded.
        assert!(matches!(
            answer(&c, "uitd-01", &a.reference, "duty_check_answer", T0 + 3000).unwrap(),
            Answer::Matched { .. }
        ));
    }
}
