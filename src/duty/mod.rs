//! Duty rosters: who is on duty, when. Control rooms are staffed around the clock in shifts;
//! each shift has the same people every day or a rotation over several days, in the room's own
//! time zone. Swaps and leaves (overrides) change who is on duty for a while.
//!
//! - `file.rs`: the roster file (`duty.file`, TOML) as written;
//! - `checks.rs`: scheduled duty checks (查岗): fixed local times, reproducible random times
//!   within shifts;
//! - `roster.rs`: the validated [`Roster`] and its pure resolution, [`Roster::on_duty`] (a
//!   building at an instant) and [`Roster::now_for_room`] (a control room at an instant);
//! - this file: the `[duty]` settings, [`Live`] (the roster with the overrides in force, shared
//!   by the API and the unstaffed check) and [`watch`], the periodic unstaffed check.
//!
//! A leaf: it knows neither the store nor the API. Overrides are persisted by `store::duty`
//! and handed in with [`Live::set_overrides`].

pub mod checks;
mod file;
mod roster;
#[cfg(test)]
mod tests;

pub use file::{Lang, RosterFile};
pub use roster::{
    at_local, parse_time_of_day, Duty, Override, Party, Person, RoomDuty, RoomInfo, Roster,
    ShiftOnDuty,
};

use crate::clock::SharedClock;
use crate::model::Millis;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// `[duty]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DutyConfig {
    /// The roster file; optional (a missing file means no control rooms).
    pub file: PathBuf,
}

impl Default for DutyConfig {
    fn default() -> Self {
        DutyConfig {
            file: PathBuf::from("config/duty.toml"),
        }
    }
}

/// How often the unstaffed check runs (on the app's clock).
pub const CHECK_EVERY_MS: Millis = 30_000;

/// A room that stays unstaffed is logged again after this long.
pub const WARN_EVERY_MS: Millis = 10 * 60_000;

/// Overrides that ended longer ago than this are not kept in memory (resolutions of older
/// instants ignore them).
pub const OVERRIDES_KEPT_MS: Millis = 90 * 86_400_000;

/// The roster with the overrides in force, shared by the API handlers and [`watch`].
///
/// A `std` lock: it is held only to clone or replace the roster (the configured part is behind
/// an `Arc`), never across an await.
#[derive(Debug, Default)]
pub struct Live {
    roster: RwLock<Roster>,
    changed: Notify,
    writer: Mutex<()>,
}

impl Live {
    /// Shares `roster`.
    pub fn new(roster: Roster) -> Arc<Live> {
        Arc::new(Live {
            roster: RwLock::new(roster),
            changed: Notify::new(),
            writer: Mutex::new(()),
        })
    }

    /// The roster now (a cheap clone).
    pub fn get(&self) -> Roster {
        self.roster
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Puts these overrides in force (all of them, replacing the previous set) and wakes
    /// [`watch`].
    pub fn set_overrides(&self, overrides: Vec<Override>) {
        let mut r = self
            .roster
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *r = r.with_overrides(overrides);
        drop(r);
        self.changed.notify_one();
    }

    /// Held while an override is written and the set reloaded, so that two writers cannot put
    /// an older set in force after a newer one. Blocking: take it on the blocking pool.
    pub fn writer(&self) -> MutexGuard<'_, ()> {
        self.writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Checks every [`CHECK_EVERY_MS`] on `clock` (and after every override change) which control
/// rooms have nobody on duty: reports the count to `gauge` and logs a warning per room when it
/// becomes unstaffed, then at most every [`WARN_EVERY_MS`] while it stays so. Ends on
/// `shutdown`.
pub async fn watch(
    live: Arc<Live>,
    clock: SharedClock,
    gauge: Box<dyn Fn(usize) + Send + Sync>,
    shutdown: CancellationToken,
) {
    let mut warned: HashMap<String, Millis> = HashMap::new();
    loop {
        let now = clock.now_ms();
        let unstaffed = live.get().unstaffed_rooms(now);
        gauge(unstaffed.len());
        for r in &unstaffed {
            let due = warned
                .get(&r.room.id)
                .is_none_or(|&last| now - last >= WARN_EVERY_MS);
            if due {
                tracing::warn!(
                    control_room = %r.room.id,
                    shift = r.shift.as_ref().map(|s| s.name.as_str()),
                    next_change = r.next_change.map(crate::model::rfc3339),
                    "Control room has nobody on duty."
                );
                warned.insert(r.room.id.clone(), now);
            }
        }
        warned.retain(|room, _| {
            let still = unstaffed.iter().any(|r| r.room.id == *room);
            if !still {
                tracing::info!(control_room = %room, "Control room is staffed again.");
            }
            still
        });
        tokio::select! {
            () = clock.wait_until(now.saturating_add(CHECK_EVERY_MS)) => {}
            () = live.changed.notified() => {}
            () = shutdown.cancelled() => return,
        }
    }
}
