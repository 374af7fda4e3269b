//! (added) Daily summaries in the pipeline: at each tick, for every building with a
//! fire-safety manager whose local `summary.at` has passed today, the day's summary is made
//! unless the store has it already; on demand (`POST /api/v1/summaries/send`), one is made at
//! once. Making one is one step of the batch's transaction: what it says
//! ([`crate::summary::compose`], read after the batch's device records were saved), its row
//! (`store::summaries`) and its outbox rows to the manager ([`Router::summary_to`]), so a
//! crash leaves either all of it or nothing, and a restart makes the day's summary only if it
//! was not made.

use super::Batch;
use crate::alerts::route::Router;
use crate::duty::Roster;
use crate::metrics::Metrics;
use crate::model::summary::{summary_id, SummaryReason};
use crate::model::Millis;
use crate::registry::Registry;
use crate::rules::Rules;
use crate::store::notifications::{self, Recipients};
use crate::store::summaries as rows;
use crate::store::StoreError;
use crate::summary::{self, About, SummaryConfig};
use jiff::tz::TimeZone;
use rusqlite::Transaction;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::atomic::Ordering::Relaxed;

/// Who the schedule's summaries are requested by.
pub const SCHEDULE_BY: &str = "schedule";

/// Summaries made per tick at most (the rest follow on the next ticks).
const PER_TICK: usize = 32;

/// The `[summary]` settings the pipeline needs, with the deployment's time zone.
#[derive(Debug, Clone)]
pub struct SummarySettings {
    /// `[summary]`.
    pub config: SummaryConfig,
    /// `notify.tz`: the time zone of a building no control room watches.
    pub tz: TimeZone,
}

/// A summary asked for through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRequest {
    /// Building id.
    pub building: String,
    /// Who asks.
    pub by: String,
}

/// Why a summary was not made.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    /// The building is neither registered nor named by the duty roster.
    #[error("{0}")]
    UnknownBuilding(String),
    /// Nobody to send it to: no manager, or no contact on the summary's channels.
    #[error("{0}")]
    NoRecipient(String),
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Where the answer to an on-demand summary goes: the summary as `GET /api/v1/summaries/{id}`
/// shows it, after the commit.
pub type SummaryReply = tokio::sync::oneshot::Sender<Result<Value, SummaryError>>;

/// What the pipeline needs to make summaries.
pub(super) struct Context<'a> {
    pub(super) settings: &'a SummarySettings,
    pub(super) router: &'a Router,
    pub(super) roster: &'a Roster,
    pub(super) registry: &'a Registry,
    pub(super) rules: &'a Rules,
    pub(super) metrics: &'a Metrics,
}

impl Context<'_> {
    /// The time zone of `building`'s summaries: its control room's, else `notify.tz`.
    fn tz(&self, building: &str) -> TimeZone {
        self.roster
            .tz_of(building)
            .cloned()
            .unwrap_or_else(|| self.settings.tz.clone())
    }
}

/// The buildings that may have a manager: registered ones with a `manager`, and those the
/// roster names one for.
fn managed(registry: &Registry, roster: &Roster) -> BTreeSet<String> {
    let mut v: BTreeSet<String> = registry
        .buildings
        .iter()
        .filter(|b| b.manager.is_some())
        .map(|b| b.id.clone())
        .collect();
    v.extend(roster.managed_buildings().into_iter().map(str::to_owned));
    v
}

/// Makes one summary of `building` for local `day` in the caller's transaction: the snapshot,
/// its row and its outbox rows. Returns the row id and how many targets it went to. An
/// on-demand summary that would reach nobody is not made.
#[allow(clippy::too_many_arguments)]
fn make(
    tx: &Transaction<'_>,
    cx: &Context<'_>,
    building: &str,
    day: &str,
    reason: SummaryReason,
    by: &str,
    now: Millis,
    b: &mut Batch,
) -> Result<(i64, usize), SummaryError> {
    let manager = cx.router.manager(cx.registry, building).ok_or_else(|| {
        SummaryError::NoRecipient(format!(
            "building {building:?} has no fire-safety manager in the duty roster \
             (a roster [[building]] manager, or a registry manager naming a roster person)"
        ))
    })?;
    let channels = cx.settings.config.channels.as_deref();
    let routed = cx
        .router
        .summary_to(cx.registry, building, &manager, channels, now);
    if routed.targets.is_empty() && reason == SummaryReason::OnDemand {
        return Err(SummaryError::NoRecipient(format!(
            "the fire-safety manager of {building:?} ({}) has no contact on the summary's channels",
            manager.name
        )));
    }
    let name = routed.building_name.as_deref();
    let about = About {
        building,
        building_name: name,
        day,
        reason,
    };
    let mut snapshot = summary::compose(tx, cx.registry, cx.rules, about, now)?;
    snapshot["manager"] = manager.name.clone().into();
    let id = rows::insert(
        tx,
        &rows::New {
            building,
            day,
            reason,
            by,
            targets: routed.targets.len(),
            snapshot: &snapshot,
        },
        now,
    )?;
    snapshot["id"] = summary_id(id).into();
    let to = Recipients {
        targets: &routed.targets,
        look: &routed.look,
    };
    let on_demand = reason == SummaryReason::OnDemand;
    let queued =
        notifications::enqueue_summary(tx, id, building, day, on_demand, to, &snapshot, now)?;
    if queued > 0 {
        b.notifications = true;
    }
    match reason {
        SummaryReason::Scheduled => cx.metrics.summaries_scheduled.fetch_add(1, Relaxed),
        SummaryReason::OnDemand => cx.metrics.summaries_on_demand.fetch_add(1, Relaxed),
    };
    let counts = &snapshot["counts"];
    if routed.targets.is_empty() {
        cx.metrics.summaries_unrouted.fetch_add(1, Relaxed);
        tracing::warn!(summary = %summary_id(id), building, manager = %manager.name, "Daily summary made, but its manager has no contact on the summary's channels.");
    } else {
        tracing::info!(summary = %summary_id(id), building, day, reason = reason.as_str(), by, targets = routed.targets.len(), offline = %counts["offline"], open_alerts = %counts["open_alerts"], workorders = %counts["workorders"], "Daily summary made.");
    }
    Ok((id, routed.targets.len()))
}

/// The schedule: when each building is next due ([`summary::Schedule`]).
#[derive(Debug, Default)]
pub(super) struct Schedule {
    inner: summary::Schedule,
}

impl Schedule {
    /// Makes the summaries due at `now` ([`PER_TICK`] at most; the rest wait for the next tick).
    pub(super) fn tick(
        &mut self,
        tx: &Transaction<'_>,
        cx: &Context<'_>,
        now: Millis,
        b: &mut Batch,
    ) -> Result<(), StoreError> {
        let cfg = &cx.settings.config;
        if !cfg.enabled {
            return Ok(());
        }
        let at = cfg.at_minute();
        let mut made = 0;
        for building in managed(cx.registry, cx.roster) {
            if made >= PER_TICK {
                break;
            }
            let tz = cx.tz(&building);
            let due = self.inner.due(&building, &tz, at, now, |day| {
                rows::scheduled_exists(tx, &building, day)
            })?;
            let Some(day) = due else {
                continue;
            };
            match make(
                tx,
                cx,
                &building,
                &day,
                SummaryReason::Scheduled,
                SCHEDULE_BY,
                now,
                b,
            ) {
                Ok(_) => made += 1,
                Err(SummaryError::Store(e)) => return Err(e),
                // A manager known by name only: nothing to send, nothing kept.
                Err(e) => tracing::debug!(building = %building, error = %e, "No daily summary."),
            }
        }
        Ok(())
    }
}

/// Makes the summary asked for now; returns it as the API shows it.
pub(super) fn on_demand(
    tx: &Transaction<'_>,
    cx: &Context<'_>,
    request: &SummaryRequest,
    now: Millis,
    b: &mut Batch,
) -> Result<Value, SummaryError> {
    let building = request.building.as_str();
    let known = cx.registry.building(building).is_some()
        || cx.roster.room_of(building).is_some()
        || managed(cx.registry, cx.roster).contains(building);
    if !known {
        return Err(SummaryError::UnknownBuilding(format!(
            "building {building:?} is neither registered nor in the duty roster"
        )));
    }
    let day = summary::local_day(&cx.tz(building), now)
        .map(|d| d.to_string())
        .unwrap_or_default();
    let (id, _) = make(
        tx,
        cx,
        building,
        &day,
        SummaryReason::OnDemand,
        &request.by,
        now,
        b,
    )?;
    let s = rows::get(tx, id)?.ok_or(StoreError::Corrupt {
        what: "summary",
        err: format!("row {id} vanished after insert"),
    })?;
    let mut j = s.to_json(false);
    j["notifications"] = notifications::list(
        tx,
        &notifications::Filter {
            summary: Some(id),
            limit: 1000,
            ..notifications::Filter::default()
        },
    )?
    .into();
    Ok(j)
}
