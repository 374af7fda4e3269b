//! Duty checks (查岗) in the pipeline: a check sends a `duty_check` command to every
//! transmitter of the buildings a control room watches (on demand, or on the room's schedule
//! at each tick), and a transmitter that does not answer by the deadline raises
//! [`DUTY_UNANSWERED`] through the alert manager like any engine transition, so there is one
//! open alert per transmitter; an answer to a later check clears it.

use super::{command_change, Batch};
use crate::duty::Roster;
use crate::metrics::Metrics;
use crate::model::alert::Change;
use crate::model::{Kind, Millis, Severity};
use crate::rules::engine::{Engine, Transition};
use crate::store::commands::{self, CommandKind, NewCommand};
use crate::store::duty_checks::{self as rows, Reason};
use crate::store::StoreError;
use rusqlite::Transaction;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering::Relaxed;

/// The rule of a transmitter that did not answer a duty check in time (the control room may
/// be unattended, 脱岗).
pub const DUTY_UNANSWERED: &str = "transmitter.duty_unanswered";

/// Who a scheduled check is requested by.
pub const SCHEDULE_BY: &str = "schedule";

/// Unanswered transmitters handled per tick at most (the rest wait for the next tick).
const UNANSWERED_PER_TICK: u32 = 256;

/// How long a room without any scheduled check in sight waits before it is looked at again.
const RECHECK_MS: Millis = 3_600_000;

/// A check asked for through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DutyCheckRequest {
    /// Control-room id.
    pub room: String,
    /// Who asks.
    pub by: String,
    /// Seconds to answer; `None`: the room's `deadline_s`.
    pub deadline_s: Option<u32>,
}

/// Why a check was not sent.
#[derive(Debug, thiserror::Error)]
pub enum DutyCheckError {
    /// No such control room.
    #[error("{0}")]
    UnknownRoom(String),
    /// The room's buildings have no transmitter.
    #[error("{0}")]
    NoTransmitters(String),
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Where the answer to an on-demand check goes: the check as `GET /api/v1/duty/checks`
/// shows it, after the commit.
pub type CheckReply = tokio::sync::oneshot::Sender<Result<serde_json::Value, DutyCheckError>>;

/// The schedule's in-memory side: when each room is next due, so a tick does no store work
/// for a room until then. The store's `duty_check_schedule` is the truth after a restart.
#[derive(Debug, Default)]
pub(super) struct Schedule {
    next: HashMap<String, Millis>,
}

/// The transmitters of the buildings `room` watches: registered ones and those seen.
fn transmitters(roster: &Roster, engine: &Engine, room: &str) -> Vec<(String, String)> {
    let buildings: BTreeSet<String> = roster.buildings_of(room).into_iter().collect();
    let mut found: BTreeSet<(String, String)> = engine
        .registry()
        .devices
        .iter()
        .filter(|d| d.kind == Kind::Transmitter && buildings.contains(&d.building))
        .map(|d| (d.id.clone(), d.building.clone()))
        .collect();
    found.extend(
        engine
            .devices()
            .iter()
            .filter(|(_, d)| d.kind == Kind::Transmitter && buildings.contains(&d.building))
            .map(|(id, d)| (id.clone(), d.building.clone())),
    );
    found.into_iter().collect()
}

/// Sends one check of `room`: a command per transmitter, in the caller's transaction.
/// Returns the check's row id.
#[allow(clippy::too_many_arguments)]
pub(super) fn send(
    tx: &Transaction<'_>,
    roster: &Roster,
    engine: &Engine,
    metrics: &Metrics,
    room: &str,
    reason: Reason,
    scheduled_for: Option<Millis>,
    deadline_s: u32,
    by: &str,
    now: Millis,
    b: &mut Batch,
) -> Result<i64, DutyCheckError> {
    if roster.shifts_of(room).is_none() {
        return Err(DutyCheckError::UnknownRoom(format!(
            "unknown control room {room:?}"
        )));
    }
    let targets = transmitters(roster, engine, room);
    if targets.is_empty() {
        return Err(DutyCheckError::NoTransmitters(format!(
            "the buildings of control room {room:?} have no transmitter"
        )));
    }
    let deadline_at = now + i64::from(deadline_s) * 1000;
    let id = rows::insert(tx, room, reason, scheduled_for, now, deadline_at, by)?;
    for (device, building) in targets {
        let c = commands::insert(
            tx,
            &NewCommand {
                device,
                building,
                kind: Kind::Transmitter,
                command: CommandKind::DutyCheck,
                deadline_s,
                by: by.to_owned(),
            },
            now,
        )?;
        rows::add_command(tx, id, c.id, &c.device, &c.building, c.deadline_at)?;
        metrics.commands_queued.fetch_add(1, Relaxed);
        command_change(tx, now, c.id, b)?;
    }
    b.commands = true;
    metrics.duty_checks_sent.fetch_add(1, Relaxed);
    tracing::info!(check = %rows::check_id(id), control_room = room, reason = reason.as_str(), by, deadline_s, "Duty check sent.");
    Ok(id)
}

impl Schedule {
    /// Sends the scheduled checks of every room due at `now` (one per room, however many were
    /// missed), then raises the alert for every transmitter whose deadline passed unanswered.
    pub(super) fn tick(
        &mut self,
        tx: &Transaction<'_>,
        roster: &Roster,
        engine: &Engine,
        metrics: &Metrics,
        now: Millis,
        b: &mut Batch,
    ) -> Result<(), StoreError> {
        for room in roster.check_rooms() {
            if self.next.get(room).is_some_and(|n| now < *n) {
                continue;
            }
            match rows::last_scheduled(tx, room)? {
                // A schedule seen for the first time starts now: nothing before is due.
                None => rows::set_last_scheduled(tx, room, now)?,
                Some(last) => {
                    if let Some(due) = roster.check_due(room, last, now) {
                        let deadline_s = roster.check_deadline_s(room);
                        let r = send(
                            tx,
                            roster,
                            engine,
                            metrics,
                            room,
                            Reason::Scheduled,
                            Some(due),
                            deadline_s,
                            SCHEDULE_BY,
                            now,
                            b,
                        );
                        match r {
                            Ok(_) => {}
                            Err(DutyCheckError::Store(e)) => return Err(e),
                            Err(e) => {
                                tracing::warn!(control_room = room, error = %e, "Scheduled duty check not sent.");
                            }
                        }
                    }
                    rows::set_last_scheduled(tx, room, now)?;
                }
            }
            let next = roster
                .next_check_after(room, now)
                .unwrap_or(now + RECHECK_MS);
            self.next.insert(room.to_owned(), next);
        }
        for u in rows::take_unanswered(tx, now, UNANSWERED_PER_TICK)? {
            metrics.duty_checks_unanswered.fetch_add(1, Relaxed);
            tracing::warn!(check = %rows::check_id(u.check_id), device = %u.device, r#ref = %u.reference, "Duty check not answered by its deadline.");
            let deadline_s = (u.deadline_at - u.created_at) / 1000;
            b.transitions.push(Transition {
                change: Change::Fired,
                rule: DUTY_UNANSWERED.to_owned(),
                building: u.building,
                kind: Kind::Transmitter,
                device: u.device,
                channel: None,
                severity: Severity::Major,
                at: now,
                since: u.created_at,
                value: None,
                threshold: None,
                message: format!(
                    "Duty check {} not answered within {deadline_s} s: the control room may be unattended",
                    u.reference
                ),
                pulse: false,
            });
        }
        Ok(())
    }
}

/// A `duty_check` command was answered: when it belongs to a check, the transmitter's
/// [`DUTY_UNANSWERED`] alert (if one is active) clears.
pub(super) fn on_answer(
    tx: &Transaction<'_>,
    command_id: i64,
    at: Millis,
    b: &mut Batch,
) -> Result<(), StoreError> {
    if let Some((device, building)) = rows::answered(tx, command_id)? {
        b.transitions.push(Transition {
            change: Change::Cleared,
            rule: DUTY_UNANSWERED.to_owned(),
            building,
            kind: Kind::Transmitter,
            device,
            channel: None,
            severity: Severity::Major,
            at,
            since: at,
            value: None,
            threshold: None,
            message: "Duty check answered".to_owned(),
            pulse: false,
        });
    }
    Ok(())
}
