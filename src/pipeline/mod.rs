//! The pipeline core: one thread that owns the rule engine and the store's writer connection.
//!
//! It takes whatever inputs are queued (publishes from the broker, people actions from the
//! API), runs them through decoding, the engine and the alert manager, and commits everything
//! they changed in **one transaction** (group commit). Only after that commit are the
//! messages' acknowledgements handed to the MQTT client, in arrival order, and API callers
//! answered. Under load the batches grow by themselves (the queue fills while a commit runs),
//! so throughput scales with the fsync rate without any added waiting at low load.
//!
//! It is the store's only writer: the notification senders' and the forwarder's bookkeeping (outcomes of
//! deliveries, the time-series cursor) comes here as inputs too, so no connection ever waits
//! for SQLite's write lock (whose busy handler sleeps in steps of up to 100 ms).
//!
//! One thread, because both machines this runs on have two cores and the MQTT event loop needs
//! the other; the engine is keyed by device, so it can be sharded by device hash later.

mod duty_checks;
pub mod holds;
pub mod silences;
mod summaries;

pub use duty_checks::{DutyCheckError, DutyCheckRequest, DUTY_UNANSWERED};
pub use summaries::{SummaryError, SummaryReply, SummaryRequest, SummarySettings};

use crate::alerts::escalate::{Due, Timer};
use crate::alerts::route::Router;
use crate::bus::{AlertWhat, Bus, Change, DeviceState, Published};
use crate::clock::{wall_ms, SharedClock};
use crate::metrics::Metrics;
use crate::model::decode::{decode, parse_topic, Decoded, Rejection};
use crate::model::notification::Event;
use crate::model::{Body, EventState, Millis, Reason, MAX_PAYLOAD};
use crate::rules::engine::{Cond, CondKey, DeviceRecord, Engine, Transition};
use crate::store::alerts::{self, Action, ActionError, Alert, Applied, Routed};
use crate::store::changes;
use crate::store::commands::{self, Command, CommandError, CommandRequest};
use crate::store::escalations;
use crate::store::notifications::{self, Delivery};
use crate::store::rollups::Merged;
use crate::store::workorders::{self, Workorder, WorkorderError, WorkorderOp};
use crate::store::{self, StoreError};
use rusqlite::{Connection, Transaction};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, Notify};

/// Identifies a QoS 1 publish to acknowledge: the connection generation it arrived on, its
/// arrival number on that connection (acks go out in this order) and its packet id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckToken {
    /// Connection generation (bumped on every CONNACK).
    pub generation: u64,
    /// Arrival number of the QoS 1 publish on this connection, from 0.
    pub seq: u64,
    /// MQTT packet id.
    pub pkid: u16,
}

/// The pipeline's two input queues: events (fire alarms, video events, faults) overtake the
/// readings queued before them, as GB 26875.1 wants fire alarms sent ahead of other traffic;
/// everything else keeps its order. Acks still go out in arrival order (see
/// the MQTT ingest).
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Readings, status, API actions, bookkeeping, shutdown.
    pub normal: std::sync::mpsc::Sender<Input>,
    /// Events.
    pub priority: std::sync::mpsc::Sender<Input>,
}

impl Inputs {
    /// Queues an input on the normal queue.
    pub fn send(&self, i: Input) -> Result<(), Stopped> {
        self.normal.send(i).map_err(|_| Stopped)
    }

    /// Queues a publish, events on the priority queue (with a wake-up on the normal one, which
    /// the pipeline may be waiting on).
    pub fn publish(&self, m: Incoming) -> Result<(), Stopped> {
        if m.topic.ends_with("/event") {
            self.priority.send(Input::Publish(m)).map_err(|_| Stopped)?;
            self.send(Input::Wake)
        } else {
            self.send(Input::Publish(m))
        }
    }
}

/// The pipeline has stopped: nothing more is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

/// One publish from the broker.
#[derive(Debug)]
pub struct Incoming {
    /// Topic.
    pub topic: String,
    /// Payload.
    pub payload: bytes::Bytes,
    /// Retained flag.
    pub retained: bool,
    /// DUP flag: the broker sends it again (it may have been committed before a crash).
    pub dup: bool,
    /// Receive time.
    pub received: Millis,
    /// Receive instant (stage times).
    pub at: Instant,
    /// Ack after commit (QoS 1).
    pub ack: Option<AckToken>,
    /// (added) Told once the batch holding it is committed (the GB/T 26875.3 gateway confirms
    /// a frame then); dropped untold when the batch fails.
    pub committed: Option<oneshot::Sender<()>>,
    /// Arrival number on this ingest (every publish, from 0): shows events overtaking.
    pub arrival: u64,
}

/// Where the answer to a people action goes.
pub type Reply = oneshot::Sender<Result<Alert, ActionError>>;

/// What the pipeline takes.
#[derive(Debug)]
pub enum Input {
    /// A publish.
    Publish(Incoming),
    /// (added) Raw GB/T 26875.3 frames to keep for audit.
    GbFrames(Vec<store::frames::FrameRecord>),
    /// A people action on an alert.
    Act {
        /// Alert id.
        id: i64,
        /// What.
        action: Action,
        /// Answer, sent after the commit.
        reply: oneshot::Sender<Result<Alert, ActionError>>,
    },
    /// A notification attempt's outcome, from a channel's sender.
    Delivered(Delivery),
    /// How far the time-series forwarder has written (a `readings` id).
    TsdbCursor(i64),
    /// (added) How far a northbound target has forwarded, with the record it set aside.
    NorthboundCursor {
        /// The cursor's `meta` key (`store::northbound::cursor_key`).
        key: String,
        /// The last row id forwarded (or passed over).
        id: i64,
        /// A record the platform refused, kept in the same transaction.
        set_aside: Option<store::northbound::SetAside>,
    },
    /// Queue a command for a device (from the API); answered after the commit.
    Command {
        /// What and for whom.
        request: CommandRequest,
        /// The queued command, sent after the commit.
        reply: oneshot::Sender<Result<Command, CommandError>>,
    },
    /// The broker acknowledged a command's publish (from the command publisher).
    CommandPublished {
        /// Command row.
        id: i64,
        /// When the PUBACK arrived.
        at: Millis,
    },
    /// A command's publish attempt got no PUBACK (from the command publisher).
    CommandAttempt {
        /// Command row.
        id: i64,
        /// When the attempt was given up.
        at: Millis,
        /// Why.
        error: String,
        /// The last attempt: the command becomes `failed`.
        give_up: bool,
    },
    /// (added) Send a duty check to a control room's transmitters (from the API); answered
    /// after the commit with the check.
    DutyCheck {
        /// Which room, who asks.
        request: DutyCheckRequest,
        /// The check, sent after the commit.
        reply: duty_checks::CheckReply,
    },
    /// Raise a hazard work order or take a step of its lifecycle (from the API); answered
    /// after the commit.
    Workorder {
        /// What.
        op: WorkorderOp,
        /// The work order after it, sent after the commit.
        reply: oneshot::Sender<Result<Workorder, WorkorderError>>,
    },
    /// (added) Put a new registry in force: the batch in progress commits with the old one,
    /// the next starts with this one; answered once it is in force.
    Registry {
        /// The registry, validated.
        registry: Arc<crate::registry::Registry>,
        /// Answered after the swap.
        reply: oneshot::Sender<()>,
    },
    /// (added) Rollup deltas of the readings after the rollup cursor, from the rollup worker:
    /// merged and the cursor moved in one transaction; answered after the commit with whether
    /// they were merged (`false`: they did not start at the persisted cursor).
    Rollup {
        /// The deltas and the cursor they move.
        batch: store::rollups::Batch,
        /// Merged or not, sent after the commit.
        reply: oneshot::Sender<bool>,
    },
    /// (added) Make a building's daily summary now and send it to its fire-safety manager
    /// (from the API); answered after the commit with the summary.
    Summary {
        /// Which building, who asks.
        request: SummaryRequest,
        /// The summary, sent after the commit.
        reply: SummaryReply,
    },
    /// (added) Set or end a silence (from the API); answered after the commit.
    Silence {
        /// What.
        op: silences::SilenceOp,
        /// The silence after it, sent after the commit.
        reply: silences::SilenceReply,
    },
    /// Look at the priority queue.
    Wake,
    /// Finish the current batch and stop.
    Shutdown,
}

/// A rejected message to republish on `fw/v1/_rejected/{reason}`.
#[derive(Debug, Clone)]
pub struct Republish {
    /// Reason.
    pub reason: Reason,
    /// JSON document.
    pub body: Vec<u8>,
}

/// Where the pipeline's outputs go.
#[derive(Debug)]
pub struct Outputs {
    /// Acks, one vector per commit, in arrival order.
    pub acks: tokio::sync::mpsc::UnboundedSender<Vec<AckToken>>,
    /// Rejected messages to republish (best effort, QoS 0).
    pub republish: tokio::sync::mpsc::Sender<Republish>,
    /// Wakes the channels' senders after a commit that queued notifications (one each).
    pub notify_wake: Vec<Arc<Notify>>,
    /// Wakes the time-series forwarder after a commit with readings.
    pub tsdb_wake: Arc<Notify>,
    /// The change feed: each commit's changes, sent after the commit (never waits).
    pub changes: Bus,
    /// Wakes the command publisher after a commit that queued commands.
    pub command_wake: Arc<Notify>,
}

/// Settings the pipeline needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Who is told of alert transitions.
    pub router: Router,
    /// Rejected messages kept.
    pub rejected_keep: u32,
    /// Readings retention.
    pub retention_days: u32,
    /// Readings are forwarded to a time-series database: rows past its cursor are the spool and
    /// outlive the retention until they are written.
    pub tsdb_enabled: bool,
    /// Changes of the event feed kept.
    pub changes_keep: u32,
    /// The duty roster: control rooms' buildings and duty-check schedules.
    pub duty: Arc<crate::duty::Live>,
    /// Hazard work orders (`[workorders]`).
    pub workorders: workorders::WorkordersConfig,
    /// (added) The northbound targets' holds: rows after their cursors outlive the pruning.
    pub northbound: Vec<store::northbound::Hold>,
    /// Rollups retention (`storage.rollup_retention_days`).
    pub rollup_retention_days: u32,
    /// (added) Raw GB/T 26875.3 frames retention (`gb26875.frames_keep_days`).
    pub frames_keep_days: u32,
    /// (added) Daily summaries (`[summary]`, with `notify.tz`).
    pub summary: SummarySettings,
}

/// Inputs per group commit: large, to amortise the commit's fsync. An event never waits for a
/// whole batch: batches look for events every [`PREEMPT_EVERY`] inputs and commit early.
const MAX_BATCH: usize = 8192;
/// How often a batch looks for a waiting event (inputs).
const PREEMPT_EVERY: usize = 64;
/// Rollup deltas merged between two looks for a waiting event: about as long as
/// [`PREEMPT_EVERY`] readings take.
const ROLLUP_PART: usize = 256;
/// Rollup parts per batch at most, when no event waits (amortises the commit over a few
/// thousand upserts, and the readings' acks wait for no more).
const ROLLUP_PARTS_PER_BATCH: usize = 16;
const TICK: Duration = Duration::from_millis(250);
const HOUSEKEEPING: Duration = Duration::from_secs(600);

/// Inputs taken from the queues but left over by a batch cut short for an event.
#[derive(Debug, Default)]
struct Carry {
    priority: std::collections::VecDeque<Input>,
    normal: std::collections::VecDeque<Input>,
}

impl Carry {
    fn is_empty(&self) -> bool {
        self.priority.is_empty() && self.normal.is_empty()
    }
}

/// Logs at most one line per reason every 10 s, with the count of suppressed ones.
#[derive(Debug, Default)]
struct LogLimiter {
    last: HashMap<Reason, (Instant, u64)>,
}

impl LogLimiter {
    fn log(&mut self, reason: Reason, topic: &str, detail: &str) {
        let now = Instant::now();
        let e = self
            .last
            .entry(reason)
            .or_insert((now - Duration::from_secs(3600), 0));
        if now.duration_since(e.0) >= Duration::from_secs(10) {
            tracing::warn!(reason = %reason, topic, detail, suppressed = e.1, "Message rejected.");
            *e = (now, 0);
        } else {
            e.1 += 1;
        }
    }
}

/// The pipeline core.
#[derive(Debug)]
pub struct Pipeline {
    conn: Connection,
    engine: Engine,
    metrics: Arc<Metrics>,
    settings: Settings,
    out: Outputs,
    clock: SharedClock,
    limiter: LogLimiter,
    /// Highest arrival number of an event committed so far.
    last_event_arrival: Option<u64>,
    last_tick: Instant,
    last_housekeeping: Instant,
    /// The clock's time of the last housekeeping: on a manual clock, moving it runs
    /// housekeeping as the passing of real time does.
    last_housekeeping_ms: Millis,
    duty_schedule: duty_checks::Schedule,
    summary_schedule: summaries::Schedule,
    /// (added) Silences in force and the alerts they hold back (loaded when it runs).
    silences: silences::Silences,
    /// (added) Inhibition, shielded points and flapping (loaded when it runs).
    quiet: holds::Quiet,
}

struct Batch {
    acks: Vec<AckToken>,
    committed: Vec<oneshot::Sender<()>>,
    replies: Vec<(Reply, Result<Alert, ActionError>)>,
    command_replies: Vec<(CommandReply, Result<Command, CommandError>)>,
    workorder_replies: Vec<(WorkorderReply, Result<Workorder, WorkorderError>)>,
    republish: Vec<Republish>,
    transitions: Vec<Transition>,
    messages: u64,
    readings: bool,
    notifications: bool,
    /// The change feed's entries of this batch, inserted in its transaction.
    changes: Vec<Published>,
    commands: bool,
    /// Answers to on-demand duty checks, sent after the commit.
    check_replies: Vec<(
        duty_checks::CheckReply,
        Result<serde_json::Value, DutyCheckError>,
    )>,
    /// Receive instants of the publishes, events apart (stage times).
    received: Vec<(bool, Instant)>,
    /// Answers to the rollup worker, sent after the commit.
    rollup_replies: Vec<(oneshot::Sender<bool>, bool)>,
    /// Summaries asked for, made after the batch's device records are saved.
    summary_requests: Vec<(SummaryRequest, SummaryReply)>,
    /// Answers to them, sent after the commit.
    summary_replies: Vec<(SummaryReply, Result<serde_json::Value, SummaryError>)>,
    /// Answers to silence requests, sent after the commit.
    silence_replies: Vec<(
        silences::SilenceReply,
        Result<crate::model::silence::Silence, silences::SilenceError>,
    )>,
}

type CommandReply = oneshot::Sender<Result<Command, CommandError>>;
type WorkorderReply = oneshot::Sender<Result<Workorder, WorkorderError>>;

impl Pipeline {
    /// Builds the pipeline around a restored engine.
    pub fn new(
        conn: Connection,
        engine: Engine,
        metrics: Arc<Metrics>,
        settings: Settings,
        out: Outputs,
        clock: SharedClock,
    ) -> Self {
        Pipeline {
            conn,
            engine,
            metrics,
            settings,
            out,
            clock,
            limiter: LogLimiter::default(),
            last_event_arrival: None,
            last_tick: Instant::now(),
            last_housekeeping: Instant::now() - HOUSEKEEPING,
            last_housekeeping_ms: Millis::MIN,
            duty_schedule: duty_checks::Schedule::default(),
            summary_schedule: summaries::Schedule::default(),
            silences: silences::Silences::default(),
            quiet: holds::Quiet::default(),
        }
    }

    /// Runs until [`Input::Shutdown`] or every sender is gone. A store error ends the thread
    /// with the error: unacknowledged messages are redelivered after a restart, and the
    /// engine state is reloaded from what was committed.
    pub fn run(mut self, rx: Receiver<Input>, priority: Receiver<Input>) -> Result<(), StoreError> {
        self.silences = silences::Silences::load(&self.conn, self.clock.now_ms())?;
        self.quiet = holds::Quiet::load(&self.conn, self.engine.rules())?;
        let mut stopping = false;
        let mut carry = Carry::default();
        while !stopping || !carry.is_empty() {
            let wait = TICK.saturating_sub(self.last_tick.elapsed());
            // Events first, in arrival order (those taken by a cut batch, then the queue), in a
            // batch of their own: their commit does not wait for readings.
            let events: Vec<Input> = carry
                .priority
                .drain(..)
                .chain(priority.try_iter())
                .collect();
            if !events.is_empty() {
                self.batch(events, &priority, &mut carry)?;
                continue;
            }
            let mut inputs: Vec<Input> = Vec::new();
            while inputs.len() < MAX_BATCH {
                match carry.normal.pop_front() {
                    Some(i) => inputs.push(i),
                    None => break,
                }
            }
            if inputs.is_empty() && !stopping {
                match rx.recv_timeout(wait) {
                    Ok(i) => inputs.push(i),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => stopping = true,
                }
                // The wake-up of an event may be what ended the wait: events go first.
                let events: Vec<Input> = priority.try_iter().collect();
                if !events.is_empty() {
                    carry.priority.extend(events);
                    for i in inputs.drain(..).rev() {
                        carry.normal.push_front(i);
                    }
                    continue;
                }
            }
            while inputs.len() < MAX_BATCH && !stopping {
                match rx.try_recv() {
                    Ok(i) => inputs.push(i),
                    Err(_) => break,
                }
            }
            if inputs.iter().any(|i| matches!(i, Input::Shutdown)) {
                stopping = true;
            }
            self.batch(inputs, &priority, &mut carry)?;
            let clock_due = self
                .clock
                .now_ms()
                .saturating_sub(self.last_housekeeping_ms)
                >= HOUSEKEEPING.as_millis() as i64;
            if self.last_housekeeping.elapsed() >= HOUSEKEEPING || clock_due {
                self.housekeeping()?;
            }
        }
        tracing::info!("Pipeline stopped; everything received was committed.");
        Ok(())
    }

    /// One group commit. Every [`PREEMPT_EVERY`] inputs it looks at `priority`: when an event
    /// waits there, the rest of `inputs` goes back to `carry` and the batch commits at once, so
    /// the event waits for a few dozen readings, not for a whole batch.
    fn batch(
        &mut self,
        inputs: Vec<Input>,
        priority: &Receiver<Input>,
        carry: &mut Carry,
    ) -> Result<(), StoreError> {
        let tick_due = self.last_tick.elapsed() >= TICK;
        if inputs.is_empty() && !tick_due {
            return Ok(());
        }
        let started = Instant::now();
        let mut b = Batch {
            acks: Vec::new(),
            committed: Vec::new(),
            replies: Vec::new(),
            command_replies: Vec::new(),
            workorder_replies: Vec::new(),
            republish: Vec::new(),
            transitions: Vec::new(),
            messages: 0,
            readings: false,
            notifications: false,
            changes: Vec::new(),
            commands: false,
            check_replies: Vec::new(),
            received: Vec::new(),
            rollup_replies: Vec::new(),
            summary_requests: Vec::new(),
            summary_replies: Vec::new(),
            silence_replies: Vec::new(),
        };
        let mut depth = 0usize;
        // IMMEDIATE: take the write lock at BEGIN (waiting out any other writer). A deferred
        // transaction that reads first would fail with SQLITE_BUSY_SNAPSHOT, without waiting,
        // when another connection committed in between.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut inputs = inputs.into_iter();
        let mut done = 0usize;
        let mut swap = None;
        // Rollup parts merged in this batch, and whether an event waiting cut it short.
        let (mut rollup_parts, mut cut) = (0usize, false);
        for input in inputs.by_ref() {
            done += 1;
            if done % PREEMPT_EVERY == 0 {
                if let Ok(p) = priority.try_recv() {
                    // An event waits: it goes first in the next batch, and this one commits
                    // now; the inputs not yet processed keep their place in order.
                    carry.priority.push_back(p);
                    let rest: Vec<Input> = std::iter::once(input).chain(inputs.by_ref()).collect();
                    for i in rest.into_iter().rev() {
                        carry.normal.push_front(i);
                    }
                    break;
                }
            }
            match input {
                Input::Publish(m) => {
                    depth += 1;
                    let event = m.topic.ends_with("/event");
                    b.received.push((event, m.at));
                    if event {
                        self.last_event_arrival = self.last_event_arrival.max(Some(m.arrival));
                    } else if self.last_event_arrival.is_some_and(|e| m.arrival < e) {
                        self.metrics.overtaken.fetch_add(1, Relaxed);
                    }
                    handle_publish(
                        &tx,
                        &mut self.engine,
                        &self.metrics,
                        &mut self.limiter,
                        m,
                        &mut b,
                    )?;
                }
                Input::Act { id, action, reply } => {
                    let now = self.clock.now_ms();
                    let (router, registry) = (&self.settings.router, self.engine.registry());
                    let route = |a: &Alert, ev: Event| router.route(registry, a, ev);
                    let r = alerts::act(&tx, id, &action, now, &route);
                    if let (Ok(a), Action::Close { .. }) = (&r, &action) {
                        self.engine.rearm(&a.rule, &a.device, a.channel.as_deref());
                    }
                    if let (Ok(a), Action::Ack { .. } | Action::Close { .. }) = (&r, &action) {
                        // Someone took it: no further steps, reminders or deadline.
                        escalations::stop(&tx, a.id)?;
                        b.notifications = true;
                    }
                    if let Ok(a) = &r {
                        let what = match action {
                            Action::Ack { .. } => AlertWhat::Acknowledged,
                            Action::Close { .. } => AlertWhat::Closed,
                            Action::Note { .. } => AlertWhat::Note,
                            Action::Verify { .. } => AlertWhat::Verified,
                        };
                        alert_change(&tx, &self.clock, a.id, what, &mut b)?;
                    }
                    b.replies.push((reply, r));
                }
                Input::Delivered(d) => {
                    notifications::record_delivery(&tx, &d)?;
                    delivery_change(&tx, &self.clock, &d, &mut b)?;
                }
                Input::Command { request, reply } => {
                    let now = self.clock.now_ms();
                    let r = queue_command(&tx, &self.engine, &self.metrics, &request, now);
                    if let Err(CommandError::Store(e)) = r {
                        return Err(e);
                    }
                    if let Ok(c) = &r {
                        b.commands = true;
                        command_change(&tx, now, c.id, &mut b)?;
                    }
                    b.command_replies.push((reply, r));
                }
                Input::CommandPublished { id, at } => {
                    if commands::mark_published(&tx, id, at)? {
                        self.metrics.commands_published.fetch_add(1, Relaxed);
                        command_change(&tx, at, id, &mut b)?;
                    }
                }
                Input::CommandAttempt {
                    id,
                    at,
                    error,
                    give_up,
                } => {
                    if commands::record_attempt(&tx, id, at, &error, give_up)? {
                        self.metrics.commands_failed.fetch_add(1, Relaxed);
                        tracing::warn!(command = %commands::command_id(id), error = %error, "Command not published within its attempts; failed.");
                        command_change(&tx, at, id, &mut b)?;
                    }
                }
                Input::DutyCheck { request, reply } => {
                    let now = self.clock.now_ms();
                    let roster = self.settings.duty.get();
                    let deadline_s = request
                        .deadline_s
                        .unwrap_or_else(|| roster.check_deadline_s(&request.room));
                    let r = duty_checks::send(
                        &tx,
                        &roster,
                        &self.engine,
                        &self.metrics,
                        &request.room,
                        store::duty_checks::Reason::OnDemand,
                        None,
                        deadline_s,
                        &request.by,
                        now,
                        &mut b,
                    );
                    let r = match r {
                        Ok(id) => store::duty_checks::get(&tx, id)?.ok_or(StoreError::Corrupt {
                            what: "duty check",
                            err: format!("row {id} vanished after insert"),
                        }),
                        Err(DutyCheckError::Store(e)) => return Err(e),
                        Err(e) => {
                            b.check_replies.push((reply, Err(e)));
                            continue;
                        }
                    }?;
                    b.check_replies.push((reply, Ok(r)));
                }
                Input::Workorder { op, reply } => {
                    let now = self.clock.now_ms();
                    let r = workorder_op(&tx, &self.settings.workorders, &op, now);
                    if let Err(WorkorderError::Store(e)) = r {
                        return Err(e);
                    }
                    if let Ok(w) = &r {
                        let what = match &op {
                            WorkorderOp::Create(_) => "created",
                            WorkorderOp::Step { step, .. } => step.what(),
                        };
                        workorder_change(&tx, &self.clock, w, what, &mut b)?;
                        let (router, registry) = (&self.settings.router, self.engine.registry());
                        notify_workorder(&tx, router, registry, w, what, now, &mut b)?;
                    }
                    b.workorder_replies.push((reply, r));
                }
                Input::Registry { registry, reply } => {
                    // Between batches: what is left goes first into the next one.
                    let rest: Vec<Input> = inputs.by_ref().collect();
                    for i in rest.into_iter().rev() {
                        carry.normal.push_front(i);
                    }
                    swap = Some((registry, reply));
                    break;
                }
                Input::TsdbCursor(id) => store::set_meta(&tx, store::TSDB_CURSOR, id)?,
                Input::GbFrames(v) => store::frames::insert(&tx, &v)?,
                Input::NorthboundCursor { key, id, set_aside } => {
                    store::set_meta(&tx, &key, id)?;
                    if let Some(s) = &set_aside {
                        store::northbound::set_aside(&tx, s)?;
                    }
                }
                Input::Rollup { mut batch, reply } => loop {
                    let merged = store::rollups::merge(&tx, &mut batch, ROLLUP_PART)?;
                    if merged != Merged::Stale {
                        self.metrics.rollups.parts.fetch_add(1, Relaxed);
                    }
                    match merged {
                        Merged::Part => {
                            rollup_parts += 1;
                            let waiting = priority.try_recv().ok();
                            if rollup_parts < ROLLUP_PARTS_PER_BATCH && waiting.is_none() {
                                continue;
                            }
                            // The rest in the next batches; an event that waits goes first,
                            // and this batch commits now.
                            carry.normal.push_back(Input::Rollup { batch, reply });
                            if let Some(p) = waiting {
                                self.metrics.rollups.yields.fetch_add(1, Relaxed);
                                carry.priority.push_back(p);
                                cut = true;
                            }
                            break;
                        }
                        Merged::Done => {
                            b.rollup_replies.push((reply, true));
                            break;
                        }
                        Merged::Stale => {
                            tracing::warn!(
                                from = batch.from,
                                to = batch.to,
                                "Rollup deltas do not start where the rollups stand; not merged."
                            );
                            b.rollup_replies.push((reply, false));
                            break;
                        }
                    }
                },
                Input::Summary { request, reply } => b.summary_requests.push((request, reply)),
                Input::Silence { op, reply } => {
                    let r = self.silences.apply(&tx, op, self.clock.now_ms())?;
                    b.silence_replies.push((reply, r));
                }
                Input::Wake | Input::Shutdown => {}
            }
            if cut {
                let rest: Vec<Input> = inputs.by_ref().collect();
                for i in rest.into_iter().rev() {
                    carry.normal.push_front(i);
                }
                break;
            }
        }
        let mut ticked_at = None;
        if tick_due {
            let now = self.clock.now_ms();
            self.engine.tick(now, &mut b.transitions);
            let roster = self.settings.duty.get();
            self.duty_schedule
                .tick(&tx, &roster, &self.engine, &self.metrics, now, &mut b)?;
            ticked_at = Some(now);
            self.last_tick = Instant::now();
            self.metrics.pipeline_tick_ms.store(wall_ms(), Relaxed);
            refresh_gauges(&self.engine, &self.metrics);
        }
        {
            let (router, registry) = (&self.settings.router, self.engine.registry());
            let plain = |a: &Alert, ev: Event| -> Routed { router.route(registry, a, ev) };
            // The silence stage: an alert a silence covers as it fires is told to nobody.
            // Then inhibition and shielded points (the same), then flapping.
            self.quiet.sources_first(&mut b.transitions);
            let held = std::cell::RefCell::new(Vec::new());
            let kept = std::cell::RefCell::new(Vec::new());
            let flaps = std::cell::RefCell::new(Vec::new());
            let failed = std::cell::RefCell::new(None);
            let silences = &self.silences;
            let quiet = std::cell::RefCell::new(&mut self.quiet);
            let conn: &Connection = &tx;
            let route = |a: &Alert, ev: Event| -> Routed {
                let mut r = router.route(registry, a, ev);
                let fired = match ev {
                    Event::Fired | Event::Refired => true,
                    Event::Cleared | Event::Repeat => false,
                    _ => return r,
                };
                if fired {
                    if let Some(s) = silences.covering(a, a.updated_at) {
                        held.borrow_mut().push((a.id, s.clone()));
                        if s.mode.is_drill() {
                            // A drill: the control room on duty, nobody else.
                            r = router.control_room(registry, a);
                        } else {
                            r.targets.clear();
                        }
                        return r;
                    }
                }
                if silences.holds(a.id) {
                    r.quiet = true;
                    return r;
                }
                let hold = store::holds::hold_of(conn, a.id).and_then(|h| match h {
                    Some(h) => Ok(Some(h)),
                    None if fired => quiet.borrow().hold_for(conn, registry, a, a.updated_at),
                    None => Ok(None),
                });
                match hold {
                    Ok(Some(h)) => {
                        kept.borrow_mut().push(h);
                        r.quiet = true;
                        return r;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        failed.borrow_mut().get_or_insert(e);
                        return r;
                    }
                }
                if ev == Event::Repeat {
                    return r;
                }
                let mut q = quiet.borrow_mut();
                let f = q.on_change(a.id, fired, a.updated_at);
                if f != holds::Flap::Normal {
                    if let Some(m) = q.flap(a.id) {
                        if let Err(e) = store::holds::flap(conn, m) {
                            failed.borrow_mut().get_or_insert(e);
                        }
                        flaps.borrow_mut().push((a.id, f, m.changes));
                    }
                    r.quiet = f == holds::Flap::Quiet;
                }
                r
            };
            let mut touched = Vec::new();
            for t in &b.transitions {
                let applied = alerts::apply(&tx, t, &route)?;
                match applied {
                    Applied::Opened(id) => touched.push((id, AlertWhat::Fired)),
                    Applied::Reactivated(id) => touched.push((id, AlertWhat::Refired)),
                    Applied::Cleared(id) => touched.push((id, AlertWhat::Cleared)),
                    Applied::Reminded(id) => touched.push((id, AlertWhat::Repeat)),
                    Applied::Nothing => {}
                }
                match applied {
                    Applied::Opened(id) => {
                        self.metrics.alerts_opened.fetch_add(1, Relaxed);
                        tracing::info!(alert = %alerts::alert_id(id), rule = %t.rule, device = %t.device, severity = t.severity.as_str(), message = %t.message, "Alert fired.");
                        b.notifications = true;
                    }
                    Applied::Reactivated(id) => {
                        tracing::info!(alert = %alerts::alert_id(id), rule = %t.rule, device = %t.device, "Alert fired again.");
                        b.notifications = true;
                    }
                    Applied::Cleared(id) => {
                        self.metrics.alerts_cleared.fetch_add(1, Relaxed);
                        tracing::info!(alert = %alerts::alert_id(id), rule = %t.rule, device = %t.device, "Alert condition cleared.");
                        b.notifications = true;
                    }
                    Applied::Reminded(_) => b.notifications = true,
                    Applied::Nothing => {}
                }
            }
            if let Some(e) = failed.into_inner() {
                return Err(e);
            }
            let held = held.into_inner();
            for (id, s) in held.iter().filter(|(_, s)| s.mode.is_drill()) {
                if alerts::drill(&tx, *id, s, self.clock.now_ms())? {
                    self.metrics.alerts_drill.fetch_add(1, Relaxed);
                    tracing::info!(alert = %alerts::alert_id(*id), drill = %crate::model::silence::silence_id(s.id), mode = s.mode.as_str(), "Alert during a drill: classified test, told to the control room.");
                    touched.push((*id, AlertWhat::Drill));
                }
            }
            for (id, s) in held.iter().filter(|(_, s)| !s.mode.is_drill()) {
                if alerts::silence(&tx, *id, s, self.clock.now_ms())? {
                    self.metrics.alerts_silenced.fetch_add(1, Relaxed);
                    tracing::info!(alert = %alerts::alert_id(*id), silence = %crate::model::silence::silence_id(s.id), reason = %s.reason, "Alert silenced: recorded, nobody told.");
                    touched.push((*id, AlertWhat::Silenced));
                }
            }
            let kept = kept.into_inner();
            for h in &kept {
                if alerts::hold(&tx, h)? {
                    let what = match h.why {
                        store::holds::Why::Inhibited => {
                            self.metrics.alerts_inhibited.fetch_add(1, Relaxed);
                            AlertWhat::Inhibited
                        }
                        store::holds::Why::Shielded => {
                            self.metrics.alerts_shielded.fetch_add(1, Relaxed);
                            AlertWhat::Shielded
                        }
                    };
                    tracing::info!(alert = %alerts::alert_id(h.alert), why = h.why.as_str(), by = %h.source, rule = %h.reason, "Alert held back: recorded, nobody told.");
                    touched.push((h.alert, what));
                }
            }
            for (id, f, changes) in flaps.into_inner() {
                if f == holds::Flap::Marked {
                    alerts::flapping(&tx, id, changes, self.clock.now_ms())?;
                    self.metrics.alerts_flapping.fetch_add(1, Relaxed);
                    tracing::info!(alert = %alerts::alert_id(id), changes, "Alert flapping: told once, quiet until stable.");
                    touched.push((id, AlertWhat::Flapping));
                } else {
                    self.metrics.alerts_flap_quiet.fetch_add(1, Relaxed);
                }
            }
            for (id, what) in &touched {
                let quiet =
                    held.iter().any(|(h, _)| h == id) || kept.iter().any(|h| h.alert == *id);
                if *what == AlertWhat::Fired && !quiet {
                    start_escalation(&tx, router, *id)?;
                }
            }
            for (id, s) in held.iter().filter(|(_, s)| !s.mode.is_drill()) {
                self.silences.hold(*id, s.id);
            }
            for (id, what) in touched {
                alert_change(&tx, &self.clock, id, what, &mut b)?;
            }
            if let Some(now) = ticked_at {
                for (id, sid, notify) in self.silences.releases(now) {
                    let Some(told) = alerts::unsilence(&tx, id, sid, notify, &plain, now)? else {
                        continue;
                    };
                    if told {
                        b.notifications = true;
                        start_escalation_at(&tx, router, id, Some(now))?;
                    }
                    tracing::info!(alert = %alerts::alert_id(id), silence = %crate::model::silence::silence_id(sid), notified = told, "Silence over for this alert.");
                    alert_change(&tx, &self.clock, id, AlertWhat::Unsilenced, &mut b)?;
                }
                for h in store::holds::take_released(&tx)? {
                    // A silence that covers it now takes over from the hold.
                    let silence = alerts::get(&tx, h.alert)?.and_then(|a| {
                        self.silences
                            .covering(&a, now)
                            .filter(|s| !s.mode.is_drill())
                            .cloned()
                    });
                    let hush = |_: &Alert, _: Event| Routed {
                        quiet: true,
                        ..Routed::default()
                    };
                    let route: alerts::Route<'_> = if silence.is_some() { &hush } else { &plain };
                    let Some(told) = alerts::release(&tx, &h, route, now)? else {
                        continue;
                    };
                    if let Some(s) = silence {
                        if alerts::silence(&tx, h.alert, &s, now)? {
                            self.silences.hold(h.alert, s.id);
                        }
                    }
                    self.metrics.alerts_released.fetch_add(1, Relaxed);
                    if told {
                        b.notifications = true;
                        start_escalation_at(&tx, router, h.alert, Some(now))?;
                    }
                    tracing::info!(alert = %alerts::alert_id(h.alert), why = h.why.as_str(), by = %h.source, notified = told, "Hold over for this alert.");
                    alert_change(&tx, &self.clock, h.alert, AlertWhat::Released, &mut b)?;
                }
                for id in self.quiet.settled(now) {
                    store::holds::unflap(&tx, id)?;
                    let Some(told) = alerts::stable(&tx, id, &plain, now)? else {
                        continue;
                    };
                    if told {
                        b.notifications = true;
                    }
                    tracing::info!(alert = %alerts::alert_id(id), notified = told, "Flapping alert stable again.");
                    alert_change(&tx, &self.clock, id, AlertWhat::Stable, &mut b)?;
                }
                for (id, what) in run_escalations(&tx, router, registry, now)? {
                    b.notifications = true;
                    alert_change(&tx, &self.clock, id, what, &mut b)?;
                }
                let cfg = &self.settings.workorders;
                for (w, what) in run_workorders(&tx, cfg, router, registry, now)? {
                    if let (Some(alert), "overdue") = (w.alert, what) {
                        b.notifications = true;
                        alert_change(&tx, &self.clock, alert, AlertWhat::WorkorderOverdue, &mut b)?;
                    }
                    workorder_change(&tx, &self.clock, &w, what, &mut b)?;
                    notify_workorder(&tx, router, registry, &w, what, now, &mut b)?;
                }
            }
        }
        let dirty = self.engine.take_dirty();
        for (k, c) in &dirty.conds {
            store::save_cond(&tx, &k.encode(), c.as_ref())?;
        }
        for (id, rec) in &dirty.devices {
            store::upsert_device(&tx, id, &rec.building, rec.kind, rec)?;
        }
        for (id, before) in dirty.liveness {
            let Some(rec) = self.engine.device(&id) else {
                continue;
            };
            let state = DeviceState::of(rec.last_seen, rec.offline);
            let previous = DeviceState::of(before.seen.then_some(0), before.offline);
            if previous != state {
                let change = Change::Device {
                    device: id,
                    building: rec.building.clone(),
                    kind: rec.kind,
                    state,
                    previous,
                };
                record(&tx, &self.clock, change, &mut b)?;
            }
        }
        // Summaries read the device records: after this batch's are saved.
        if ticked_at.is_some() || !b.summary_requests.is_empty() {
            let roster = self.settings.duty.get();
            let cx = summaries::Context {
                settings: &self.settings.summary,
                router: &self.settings.router,
                roster: &roster,
                registry: self.engine.registry(),
                rules: self.engine.rules(),
                metrics: &self.metrics,
            };
            let now = ticked_at.unwrap_or_else(|| self.clock.now_ms());
            for (request, reply) in std::mem::take(&mut b.summary_requests) {
                let r = summaries::on_demand(&tx, &cx, &request, now, &mut b);
                if let Err(SummaryError::Store(e)) = r {
                    return Err(e);
                }
                b.summary_replies.push((reply, r));
            }
            if ticked_at.is_some() {
                self.summary_schedule.tick(&tx, &cx, now, &mut b)?;
            }
        }
        let reading = b.readings.then(|| store::max_reading_id(&tx)).transpose()?;
        let notification = b
            .notifications
            .then(|| notifications::max_id(&tx))
            .transpose()?;
        tx.commit()?;

        // Durable: now acknowledge, answer and announce.
        let committed = Instant::now();
        let stages = &self.metrics.stages;
        stages.commits.committed(committed, reading, notification);
        for (event, at) in b.received.drain(..) {
            let h = if event {
                &stages.event_committed
            } else {
                &stages.reading_committed
            };
            h.observe(committed.saturating_duration_since(at));
        }
        if let Some(t) = ticked_at {
            // After the commit: whatever the timers up to `t` raised is visible now.
            self.metrics.pipeline_clock_ms.store(t, Relaxed);
        }
        self.metrics.committed.fetch_add(b.messages, Relaxed);
        self.metrics.commits.fetch_add(1, Relaxed);
        self.metrics.last_commit_ms.store(wall_ms(), Relaxed);
        self.metrics
            .commit_us
            .fetch_add(started.elapsed().as_micros() as u64, Relaxed);
        self.metrics.queue_depth.fetch_sub(depth as i64, Relaxed);
        if !b.acks.is_empty() {
            // The receiver lives as long as the ingest task; if it is gone, we are stopping and
            // the broker redelivers.
            let _ = self.out.acks.send(std::mem::take(&mut b.acks));
        }
        for c in b.committed {
            let _ = c.send(());
        }
        for (reply, r) in b.replies {
            let _ = reply.send(r);
        }
        self.metrics
            .events_published
            .fetch_add(b.changes.len() as u64, Relaxed);
        for p in b.changes {
            self.out.changes.publish(p);
        }
        for (reply, r) in b.command_replies {
            let _ = reply.send(r);
        }
        for (reply, r) in b.check_replies {
            let _ = reply.send(r);
        }
        for (reply, r) in b.workorder_replies {
            let _ = reply.send(r);
        }
        for (reply, merged) in b.rollup_replies {
            let _ = reply.send(merged);
        }
        for (reply, r) in b.summary_replies {
            let _ = reply.send(r);
        }
        for (reply, r) in b.silence_replies {
            let _ = reply.send(r);
        }
        for r in b.republish {
            // Best effort, as the contract says (QoS 0): a full queue drops the copy, never the
            // kept row.
            if self.out.republish.try_send(r).is_err() {
                self.metrics.republish_dropped.fetch_add(1, Relaxed);
            }
        }
        if b.notifications {
            for w in &self.out.notify_wake {
                w.notify_one();
            }
        }
        if b.readings {
            self.out.tsdb_wake.notify_one();
        }
        if b.commands {
            self.out.command_wake.notify_one();
        }
        if let Some((registry, reply)) = swap {
            self.engine.set_registry(registry);
            let _ = reply.send(());
        }
        Ok(())
    }

    fn housekeeping(&mut self) -> Result<(), StoreError> {
        self.last_housekeeping = Instant::now();
        let now = self.clock.now_ms();
        self.last_housekeeping_ms = now;
        let cutoff = now - i64::from(self.settings.retention_days) * 86_400_000;
        // Readings not yet rolled up stay, however old, as the time-series spool does.
        let rollup_cursor = store::rollups::cursor(&self.conn)?;
        let spool_from = if self.settings.tsdb_enabled {
            let tsdb = store::get_meta(&self.conn, store::TSDB_CURSOR)?.unwrap_or(0);
            Some(tsdb.min(rollup_cursor))
        } else {
            Some(rollup_cursor)
        };
        // Northbound targets keep what they have not forwarded, up to their `max_backlog`.
        let (changes_floor, readings_floor) =
            store::northbound::floors(&self.conn, &self.settings.northbound)?;
        let spool_from = match (spool_from, readings_floor) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut pruned = 0;
        loop {
            let n = store::prune_readings(&self.conn, cutoff, 20_000, spool_from)?;
            pruned += n;
            if n < 20_000 {
                break;
            }
        }
        let rollup_cutoff = now - i64::from(self.settings.rollup_retention_days) * 86_400_000;
        let mut buckets = 0;
        loop {
            let n = store::rollups::prune(&self.conn, rollup_cutoff, 20_000)?;
            buckets += n;
            if n < 20_000 {
                break;
            }
        }
        let frames_cutoff = now - i64::from(self.settings.frames_keep_days) * 86_400_000;
        let mut frames = 0;
        loop {
            let n = store::frames::prune(&self.conn, frames_cutoff, 20_000)?;
            frames += n;
            if n < 20_000 {
                break;
            }
        }
        let r = store::prune_rejected(&self.conn, self.settings.rejected_keep)?;
        let c = match changes_floor {
            Some(floor) => {
                store::northbound::prune_changes(&self.conn, self.settings.changes_keep, floor)?
            }
            None => changes::prune(&self.conn, self.settings.changes_keep)?,
        };
        if pruned + buckets + r + c + frames > 0 {
            tracing::info!(
                readings = pruned,
                rollups = buckets,
                frames,
                rejected = r,
                changes = c,
                "Pruned old rows."
            );
        }
        Ok(())
    }
}

/// Records a change of this batch in its transaction (the row id is the change id).
fn record(
    tx: &Transaction<'_>,
    clock: &SharedClock,
    change: Change,
    b: &mut Batch,
) -> Result<(), StoreError> {
    record_at(tx, clock.now_ms(), change, b)
}

/// [`record`] at a given time.
fn record_at(
    tx: &Transaction<'_>,
    at: Millis,
    change: Change,
    b: &mut Batch,
) -> Result<(), StoreError> {
    let id = changes::insert(tx, at, change.kind(), change.building(), &change)?;
    b.changes.push(Published { id, at, change });
    Ok(())
}

/// Records a command's new status on the change feed.
/// Starts the escalation timer of a new alert, when its policy has more than the first step
/// (which routing took already), reminders or a deadline.
fn start_escalation(tx: &Transaction<'_>, router: &Router, id: i64) -> Result<(), StoreError> {
    start_escalation_at(tx, router, id, None)
}

/// [`start_escalation`] with its deadlines counted from `from` (an alert told only when its
/// silence ended) instead of from the alert's last change.
fn start_escalation_at(
    tx: &Transaction<'_>,
    router: &Router,
    id: i64,
    from: Option<Millis>,
) -> Result<(), StoreError> {
    let Some(a) = alerts::get(tx, id)? else {
        return Ok(());
    };
    if a.severity == crate::model::Severity::Info {
        return Ok(());
    }
    let policy = router
        .escalation
        .policy_for(&a, router.local_minute(&a, a.updated_at));
    let timer = Timer::start(&policy, from.unwrap_or(a.updated_at));
    escalations::save(tx, id, &timer, timer.next(&policy).map(|n| n.0))
}

/// Escalation timers handled per tick at most (the rest wait for the next tick).
const ESCALATIONS_PER_TICK: u32 = 256;

/// Handles the escalation timers due at `now`: deadlines, steps and reminders, each recorded
/// with the notifications it queues in this transaction. Returns the alert changes.
fn run_escalations(
    tx: &Transaction<'_>,
    router: &Router,
    registry: &crate::registry::Registry,
    now: Millis,
) -> Result<Vec<(i64, AlertWhat)>, StoreError> {
    let mut changes = Vec::new();
    for (id, mut timer) in escalations::due::<Timer>(tx, now, ESCALATIONS_PER_TICK)? {
        let alert = alerts::get(tx, id)?;
        let (Some(a), Some(policy)) = (alert, router.escalation.named(&timer.policy)) else {
            // The alert is gone, or its policy is no longer configured: nothing to escalate.
            escalations::stop(tx, id)?;
            continue;
        };
        if a.status != alerts::Status::Open {
            escalations::stop(tx, id)?;
            continue;
        }
        while let Some((_, due)) = timer.next(&policy).filter(|(at, _)| *at <= now) {
            match due {
                Due::Sla => {
                    alerts::miss_sla(tx, id, &policy.name, policy.ack_sla_s, now)?;
                    tracing::warn!(alert = %alerts::alert_id(id), policy = %policy.name, ack_sla_s = policy.ack_sla_s, "Alert not acknowledged within its deadline.");
                    changes.push((id, AlertWhat::SlaMissed));
                }
                Due::Step(n) => {
                    let audiences = &policy.steps[n].notify;
                    let routed = router.to(registry, &a, audiences, now);
                    let to: Vec<&str> = audiences.iter().map(|a| a.as_str()).collect();
                    let told = alerts::escalate(
                        tx,
                        id,
                        &alerts::Escalation {
                            step: n + 1,
                            policy: &policy.name,
                            to: &to,
                        },
                        routed,
                        now,
                    )?;
                    tracing::info!(alert = %alerts::alert_id(id), policy = %policy.name, step = n + 1, to = ?to, targets = told, "Alert escalated.");
                    changes.push((id, AlertWhat::Escalated));
                }
                Due::Repeat => {
                    let place = router.to(registry, &a, &[], now);
                    alerts::remind(tx, id, &policy.name, place, now)?;
                    changes.push((id, AlertWhat::Repeat));
                }
            }
            timer.advance(&policy, due, now);
        }
        escalations::save(tx, id, &timer, timer.next(&policy).map(|n| n.0))?;
    }
    Ok(changes)
}

fn command_change(
    tx: &Transaction<'_>,
    at: Millis,
    id: i64,
    b: &mut Batch,
) -> Result<(), StoreError> {
    if let Some(c) = commands::get(tx, id)? {
        let change = Change::Command {
            command: commands::command_id(c.id),
            building: c.building.clone(),
            device: c.device.clone(),
            status: c.status.as_str().to_owned(),
        };
        record_at(tx, at, change, b)?;
    }
    Ok(())
}

/// Records an alert change with the alert as it is now in the transaction.
fn alert_change(
    tx: &Transaction<'_>,
    clock: &SharedClock,
    id: i64,
    what: AlertWhat,
    b: &mut Batch,
) -> Result<(), StoreError> {
    let Some(a) = alerts::get(tx, id)? else {
        return Ok(());
    };
    let notes = alerts::notes_for(tx, &[id])?
        .remove(&id)
        .unwrap_or_default();
    let alert = alerts::json(tx, &a, notes)?;
    record(tx, clock, Change::Alert { what, alert }, b)
}

/// Records a work order's change with the order as it is now in the transaction.
fn workorder_change(
    tx: &Transaction<'_>,
    clock: &SharedClock,
    w: &Workorder,
    what: &str,
    b: &mut Batch,
) -> Result<(), StoreError> {
    let change = Change::Workorder {
        workorder: workorders::workorder_id(w.id),
        building: w.building.clone(),
        what: what.to_owned(),
        order: w.to_json(),
    };
    record(tx, clock, change, b)
}

/// Queues the notifications of a work order's step `what` (see [`Router::workorder_to`]).
fn notify_workorder(
    tx: &Transaction<'_>,
    router: &Router,
    registry: &crate::registry::Registry,
    w: &Workorder,
    what: &str,
    now: Millis,
    b: &mut Batch,
) -> Result<(), StoreError> {
    let Some(event) = crate::model::notification::Event::of_workorder(what) else {
        return Ok(());
    };
    let routed = router.workorder_to(registry, w, event, now);
    if workorders::enqueue_notifications(tx, w, event, routed, now)? > 0 {
        b.notifications = true;
    }
    Ok(())
}

/// Applies an operator's or manager's work-order request.
fn workorder_op(
    tx: &Transaction<'_>,
    cfg: &workorders::WorkordersConfig,
    op: &WorkorderOp,
    now: Millis,
) -> Result<Workorder, WorkorderError> {
    let w = match op {
        WorkorderOp::Create(req) => workorders::create(tx, req, cfg, now)?,
        WorkorderOp::Step {
            id,
            step,
            by,
            note,
            photo_url,
        } => workorders::step(tx, *id, *step, by, note, photo_url.as_deref(), now)?,
    };
    tracing::info!(workorder = %workorders::workorder_id(w.id), status = w.status.as_str(), building = %w.building, "Work order updated.");
    Ok(w)
}

/// Work-order timers handled per tick at most (the rest wait for the next tick).
const WORKORDERS_PER_TICK: u32 = 256;

/// The work-order timers at `now`: hazard alerts open for their `after_s` become work orders;
/// open orders past their deadline are marked overdue and, when raised for an alert, escalated
/// to the fire office (and everyone told of the alert). Both are conditions on committed rows,
/// so after a restart nothing is raised or escalated twice. Returns the changed orders.
fn run_workorders(
    tx: &Transaction<'_>,
    cfg: &workorders::WorkordersConfig,
    router: &Router,
    registry: &crate::registry::Registry,
    now: Millis,
) -> Result<Vec<(Workorder, &'static str)>, StoreError> {
    let mut out = Vec::new();
    if cfg.enabled {
        let due = workorders::candidates(tx, &cfg.hazards)?
            .into_iter()
            .filter(|c| c.fired_at + cfg.after_ms(&c.rule) <= now)
            .take(WORKORDERS_PER_TICK as usize);
        for c in due {
            let w = workorders::insert(
                tx,
                &workorders::New {
                    alert: Some(c.alert),
                    building: &c.building,
                    rule: Some(&c.rule),
                    description: &c.message,
                    photo_url: None,
                    by: workorders::SYSTEM,
                    auto: true,
                    deadline_at: now + cfg.deadline_ms(Some(&c.rule)),
                },
                now,
            )?;
            tracing::info!(workorder = %workorders::workorder_id(w.id), alert = %alerts::alert_id(c.alert), rule = %c.rule, "Hazard alert still open: work order raised.");
            out.push((w, "created"));
        }
    }
    for w in workorders::due_overdue(tx, now, WORKORDERS_PER_TICK)? {
        workorders::mark_overdue(tx, &w, now)?;
        let mut told = 0;
        if let Some(alert) = w.alert.map(|id| alerts::get(tx, id)).transpose()?.flatten() {
            let routed = router.to(
                registry,
                &alert,
                &[crate::alerts::escalate::Audience::FireOffice],
                now,
            );
            told = alerts::workorder_overdue(tx, alert.id, &w, routed, now)?;
        }
        tracing::warn!(workorder = %workorders::workorder_id(w.id), building = %w.building, targets = told, "Work order overdue: escalated to the fire office.");
        let w = workorders::get(tx, w.id)?.unwrap_or(w);
        out.push((w, "overdue"));
    }
    Ok(out)
}

/// Records the outcome of a delivery attempt.
fn delivery_change(
    tx: &Transaction<'_>,
    clock: &SharedClock,
    d: &Delivery,
    b: &mut Batch,
) -> Result<(), StoreError> {
    use crate::model::notification::Subject;
    let (building, alert, workorder) = match d.subject {
        Subject::Alert(id) => {
            let a = alerts::get(tx, id)?;
            (a.map(|a| a.building), Some(id), None)
        }
        Subject::Workorder(id) => {
            let w = workorders::get(tx, id)?;
            let alert = w.as_ref().and_then(|w| w.alert);
            (w.map(|w| w.building), alert, Some(id))
        }
        Subject::Summary(id) => (store::summaries::building_of(tx, id)?, None, None),
    };
    let building = building.unwrap_or_default();
    use crate::store::notifications::Outcome;
    let (outcome, error) = match &d.outcome {
        Outcome::Sent => ("sent", None),
        Outcome::Retry { error, .. } => ("retry", Some(error.clone())),
        Outcome::GaveUp { error, .. } => ("gave_up", Some(error.clone())),
    };
    let change = Change::Notification {
        alert: alert.map(alerts::alert_id),
        workorder: workorder.map(workorders::workorder_id),
        summary: d.subject.summary().map(crate::model::summary::summary_id),
        building,
        channel: d.channel.as_str().to_owned(),
        target: d.target.clone(),
        event: d.event.as_str().to_owned(),
        ok: outcome == "sent",
        outcome: outcome.to_owned(),
        error,
    };
    record(tx, clock, change, b)
}

/// Queues a command for a registered or seen device of the right kind.
fn queue_command(
    tx: &Transaction<'_>,
    engine: &Engine,
    metrics: &Metrics,
    request: &CommandRequest,
    now: Millis,
) -> Result<Command, CommandError> {
    let known = match engine.device(&request.device) {
        Some(d) => Some((d.building.clone(), d.kind)),
        None => engine
            .registry()
            .device(&request.device)
            .map(|e| (e.building.clone(), e.kind)),
    };
    let new = request.resolve(known)?;
    let c = commands::insert(tx, &new, now)?;
    metrics.commands_queued.fetch_add(1, Relaxed);
    tracing::info!(command = %commands::command_id(c.id), device = %c.device, r#ref = %c.reference, by = %c.requested_by, "Command queued.");
    Ok(c)
}

fn refresh_gauges(engine: &Engine, metrics: &Metrics) {
    let devices = engine.devices();
    metrics.devices.store(devices.len() as i64, Relaxed);
    metrics
        .conditions
        .store(engine.condition_count() as i64, Relaxed);
    // Saturating: device-chosen `seq` jumps can make single counts huge.
    let lost = devices
        .values()
        .fold(0u64, |sum, d| sum.saturating_add(d.lost));
    metrics.lost.store(lost, Relaxed);
    let refused = engine.refused();
    metrics.devices_refused.store(refused.devices, Relaxed);
    metrics.channels_refused.store(refused.values, Relaxed);
    metrics
        .redelivered_unrecognised
        .store(refused.redelivered_unrecognised, Relaxed);
}

fn handle_publish(
    tx: &Transaction<'_>,
    engine: &mut Engine,
    metrics: &Metrics,
    limiter: &mut LogLimiter,
    mut m: Incoming,
    b: &mut Batch,
) -> Result<(), StoreError> {
    metrics.received.fetch_add(1, Relaxed);
    let _ = metrics
        .first_message_ms
        .compare_exchange(0, m.received, Relaxed, Relaxed);
    b.messages += 1;
    if let Some(a) = m.ack {
        b.acks.push(a);
    }
    if let Some(c) = m.committed.take() {
        b.committed.push(c);
    }
    let outcome = decode(&m.topic, &m.payload, m.retained, m.received).and_then(|d| match d {
        Decoded::Ignored => Ok(None),
        Decoded::Message(msg) => {
            let delivery = crate::rules::engine::Delivery {
                redelivered: m.dup,
                // Only messages without `seq` are recognised by their digest.
                digest: if msg.seq.is_none() {
                    crate::rules::engine::digest(&m.payload)
                } else {
                    0
                },
            };
            engine.accept_delivered(&msg, delivery).map(|()| Some(msg))
        }
    });
    match outcome {
        Ok(None) => {
            metrics.ignored.fetch_add(1, Relaxed);
        }
        Ok(Some(msg)) => {
            metrics.accepted.fetch_add(1, Relaxed);
            match &msg.body {
                Body::Telemetry(samples) => {
                    for s in samples {
                        store::insert_reading(
                            tx,
                            msg.ts,
                            &msg.device,
                            s.metric,
                            s.channel.as_deref(),
                            s.value,
                        )?;
                    }
                    b.readings = true;
                }
                Body::Status(st) => {
                    for (metric, v) in [("battery_pct", st.battery_pct), ("rssi_dbm", st.rssi_dbm)]
                    {
                        if let Some(v) = v {
                            store::insert_reading(tx, msg.ts, &msg.device, metric, None, v)?;
                            b.readings = true;
                        }
                    }
                }
                Body::Event(ev) => {
                    let state = match ev.state {
                        EventState::Start => "start",
                        EventState::End => "end",
                        EventState::Pulse => "pulse",
                    };
                    let mut detail = serde_json::json!({
                        "point": ev.point, "snapshot_url": ev.snapshot_url, "ref": ev.reference,
                    });
                    if let Some((answer, matched)) =
                        match_answer(tx, metrics, &msg.device, ev, msg.received)?
                    {
                        detail["command"] = answer;
                        if let Some(id) = matched {
                            command_change(tx, msg.received, id, b)?;
                            duty_checks::on_answer(tx, id, msg.received, b)?;
                        }
                    }
                    if msg.kind == crate::model::Kind::Transmitter {
                        shield_event(tx, &msg.building, &msg.device, ev, msg.received)?;
                    }
                    store::insert_event(
                        tx,
                        msg.ts,
                        msg.received,
                        &msg.device,
                        &ev.name,
                        state,
                        ev.channel().as_deref(),
                        ev.confidence,
                        Some(&detail.to_string()),
                    )?;
                }
            }
            engine.evaluate(&msg, &mut b.transitions);
        }
        Err(rej) => {
            if rej.reason != Reason::Duplicate
                && rej.reason != Reason::Binding
                && rej.reason != Reason::Unregistered
            {
                // Engine-side rejections counted themselves against the device.
                if let Ok(t) = parse_topic(&m.topic) {
                    engine.count_rejected(t.device);
                }
            }
            reject(tx, metrics, limiter, &m, &rej, b)?;
        }
    }
    Ok(())
}

/// (added) A transmitter's `shield` start puts its point on the shielded list, its end takes
/// it off; a `reset` ends every shield of the transmitter (as it ends every condition).
fn shield_event(
    tx: &Transaction<'_>,
    building: &str,
    device: &str,
    ev: &crate::model::Event,
    at: Millis,
) -> Result<(), StoreError> {
    let channel = ev.channel().unwrap_or_default();
    match (ev.name.as_str(), ev.state) {
        ("shield", EventState::Start) => {
            let point = ev.point.as_ref().and_then(|p| serde_json::to_value(p).ok());
            store::holds::shield(tx, building, device, &channel, point.as_ref(), at)?;
        }
        ("shield", EventState::End) => {
            store::holds::unshield(tx, device, Some(&channel), at)?;
        }
        ("reset", _) => {
            store::holds::unshield(tx, device, None, at)?;
        }
        _ => {}
    }
    Ok(())
}

/// Matches a command answer (`duty_check_answer`) to its command by `ref`, in the event's
/// transaction. Returns what goes into the event's detail (the command id, or `"unmatched"`),
/// and the command newly answered.
fn match_answer(
    tx: &Transaction<'_>,
    metrics: &Metrics,
    device: &str,
    ev: &crate::model::Event,
    received: Millis,
) -> Result<Option<(serde_json::Value, Option<i64>)>, StoreError> {
    if !commands::CommandKind::ALL
        .iter()
        .any(|k| k.answer_event() == ev.name)
    {
        return Ok(None);
    }
    let answer = match &ev.reference {
        Some(r) => commands::answer(tx, device, r, &ev.name, received)?,
        None => commands::Answer::Unmatched,
    };
    Ok(Some(match answer {
        commands::Answer::Matched { id, delay_ms } => {
            metrics.commands_answered.fetch_add(1, Relaxed);
            tracing::info!(command = %commands::command_id(id), device, delay_ms, "Command answered.");
            (serde_json::json!(commands::command_id(id)), Some(id))
        }
        commands::Answer::Repeated { id } => (serde_json::json!(commands::command_id(id)), None),
        commands::Answer::Unmatched => {
            metrics.command_answers_unmatched.fetch_add(1, Relaxed);
            tracing::info!(device, r#ref = ?ev.reference, "Command answer matches no command of its device.");
            (serde_json::json!("unmatched"), None)
        }
    }))
}

fn reject(
    tx: &Transaction<'_>,
    metrics: &Metrics,
    limiter: &mut LogLimiter,
    m: &Incoming,
    rej: &Rejection,
    b: &mut Batch,
) -> Result<(), StoreError> {
    metrics.reject(rej.reason);
    limiter.log(rej.reason, &m.topic, &rej.detail);
    store::insert_rejected(
        tx,
        m.received,
        rej.reason.as_str(),
        &rej.detail,
        &m.topic,
        &m.payload,
    )?;
    b.republish.push(Republish {
        reason: rej.reason,
        body: republish_body(&m.topic, &m.payload, rej, m.received),
    });
    Ok(())
}

/// The JSON republished for a rejected message (contract section 5).
pub fn republish_body(topic: &str, payload: &[u8], rej: &Rejection, received: Millis) -> Vec<u8> {
    let cut = if payload.len() > MAX_PAYLOAD {
        &payload[..1024]
    } else {
        payload
    };
    let text = match std::str::from_utf8(cut) {
        Ok(s) => s.to_owned(),
        Err(_) => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(cut)
        }
    };
    serde_json::json!({
        "reason": rej.reason.as_str(),
        "detail": rej.detail,
        "topic": topic,
        "payload": text,
        "received_at": crate::model::rfc3339(received),
    })
    .to_string()
    .into_bytes()
}

/// Restores the engine from the store: conditions, device records, and rate-rule windows.
pub fn restore(conn: &Connection, engine: &mut Engine, now: Millis) -> Result<(), StoreError> {
    let (conds, devices) = store::load_state::<Cond, DeviceRecord>(conn)?;
    let conds = conds
        .into_iter()
        .map(|(k, c)| {
            CondKey::decode(&k)
                .map(|key| (key, c))
                .ok_or(StoreError::Corrupt {
                    what: "condition key",
                    err: k,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (nc, nd) = (conds.len(), devices.len());
    engine.restore(conds, devices, now);
    let rates: Vec<(String, f64)> = engine
        .rules()
        .rate
        .iter()
        .map(|r| (r.metric.clone(), r.window_s))
        .collect();
    let max_id = store::max_reading_id(conn)?;
    for (metric, window_s) in rates {
        let since = now - (window_s * 1000.0) as i64;
        let mut stmt = conn.prepare(
            "SELECT device, channel, ts, value FROM readings
             WHERE id > ?1 AND metric = ?2 AND ts >= ?3 ORDER BY id",
        )?;
        let rows = stmt.query_map(rusqlite::params![max_id - 200_000, metric, since], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, f64>(3)?,
            ))
        })?;
        for row in rows {
            let (device, channel, ts, v) = row?;
            if let Some(kind) = engine.device(&device).map(|d| d.kind) {
                engine.prime_window(&device, kind, &metric, channel.as_deref(), ts, v);
            }
        }
    }
    tracing::info!(conditions = nc, devices = nd, "Restored rule state.");
    Ok(())
}
