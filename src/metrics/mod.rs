//! Process counters, exposed at `GET /metrics` in the Prometheus text format.
//!
//! Plain atomics: every stage bumps its own counters without locks, and the exposition reads
//! them all at once. Names are constants here so docs, tests and the benchmark harness agree.

use crate::model::notification::ChannelKind;
use crate::model::Reason;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};

pub mod broker;
pub mod gateway;
pub mod northbound;
pub mod rollups;
pub mod stages;

/// All counters and gauges.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Publishes received from the broker.
    pub received: AtomicU64,
    /// Messages accepted.
    pub accepted: AtomicU64,
    /// Command echoes ignored.
    pub ignored: AtomicU64,
    /// Rejected by reason (index: [`Reason::index`]).
    pub rejected: [AtomicU64; 10],
    /// QoS 0 messages dropped because the pipeline queue was over its bound.
    pub dropped_qos0: AtomicU64,
    /// Messages (accepted or rejected) committed to the store.
    pub committed: AtomicU64,
    /// Group commits.
    pub commits: AtomicU64,
    /// Wall time of the last commit, epoch ms.
    pub last_commit_ms: AtomicI64,
    /// Wall time of the first received message, epoch ms.
    pub first_message_ms: AtomicI64,
    /// Total commit time, microseconds.
    pub commit_us: AtomicU64,
    /// PUBACKs handed to the MQTT client.
    pub acked: AtomicU64,
    /// Acks withheld because the connection they came on is gone (broker redelivers).
    pub acks_skipped: AtomicU64,
    /// Messages waiting for the pipeline.
    pub queue_depth: AtomicI64,
    /// Last pipeline tick, epoch ms (liveness of the pipeline thread).
    pub pipeline_tick_ms: AtomicI64,
    /// The clock's time at the last tick (timers ran up to here); the wall clock in
    /// production, a manual clock in tests.
    pub pipeline_clock_ms: AtomicI64,
    /// Readings committed after an event that arrived later than they did (events overtake).
    pub overtaken: AtomicU64,
    /// Broker connected.
    pub mqtt_connected: AtomicBool,
    /// The broker granted the subscription (SUBACK, or a present session).
    pub mqtt_subscribed: AtomicBool,
    /// Connections made.
    pub mqtt_connects: AtomicU64,
    /// Connection errors.
    pub mqtt_errors: AtomicU64,
    /// Rejected messages republished.
    pub republished: AtomicU64,
    /// Rejected-message copies not republished (queue full or client busy).
    pub republish_dropped: AtomicU64,
    /// Redelivered messages (DUP flag) without `seq` that matched no recent payload digest of
    /// their device, so they may be stored twice.
    pub redelivered_unrecognised: AtomicU64,
    /// Messages refused a new device record: unknown device ids past `storage.max_unregistered`.
    pub devices_refused: AtomicU64,
    /// Values not kept in a device's latest values: channel names past the per-device cap.
    pub channels_refused: AtomicU64,
    /// `seq` gaps counted as lost.
    pub lost: AtomicU64,
    /// Alerts opened.
    pub alerts_opened: AtomicU64,
    /// Alerts cleared.
    pub alerts_cleared: AtomicU64,
    /// (added) Alerts that fired while a silence covered them (recorded, nobody told).
    pub alerts_silenced: AtomicU64,
    /// (added) Alerts that fired during a drill or test of their building.
    pub alerts_drill: AtomicU64,
    /// (added) Alerts held back by an inhibiting alert upstream.
    pub alerts_inhibited: AtomicU64,
    /// (added) Alerts held back because their point was shielded.
    pub alerts_shielded: AtomicU64,
    /// (added) Held-back alerts released (the inhibiting alert or the shield is over).
    pub alerts_released: AtomicU64,
    /// (added) Alerts marked flapping.
    pub alerts_flapping: AtomicU64,
    /// (added) Changes of flapping alerts recorded and told to nobody.
    pub alerts_flap_quiet: AtomicU64,
    /// Conditions held by the engine.
    pub conditions: AtomicI64,
    /// Devices known.
    pub devices: AtomicI64,
    /// Points written to the time-series database.
    pub tsdb_points: AtomicU64,
    /// Write requests.
    pub tsdb_writes: AtomicU64,
    /// Failed write requests.
    pub tsdb_errors: AtomicU64,
    /// Readings set aside because the database refused them (HTTP 4xx for that point alone).
    pub tsdb_points_refused: AtomicU64,
    /// Readings that could not be made into a point.
    pub tsdb_points_invalid: AtomicU64,
    /// Readings not yet written (the spool).
    pub tsdb_spool: AtomicI64,
    /// Last write latency, microseconds.
    pub tsdb_last_latency_us: AtomicU64,
    /// Total write latency, microseconds.
    pub tsdb_latency_us: AtomicU64,
    /// Failing since (epoch ms; 0 = healthy).
    pub tsdb_failing_since: AtomicI64,
    /// Time-series forwarding configured.
    pub tsdb_enabled: AtomicBool,
    /// Notifications sent.
    pub notify_sent: AtomicU64,
    /// Failed attempts.
    pub notify_failed: AtomicU64,
    /// Waiting in the outbox, per channel (index: [`ChannelKind::index`]).
    pub notify_queue: [AtomicI64; ChannelKind::ALL.len()],
    /// (added) Grouping and rate limits per channel ([`ChannelKind::index`]).
    pub notify_plan: [PlanCounters; ChannelKind::ALL.len()],
    /// Attempt outcomes per channel ([`ChannelKind::index`]) and [`NotifyOutcome`].
    pub notify_outcomes: [[AtomicU64; 3]; ChannelKind::ALL.len()],
    /// Last send latency (enqueue → accepted), microseconds.
    pub notify_last_latency_us: AtomicU64,
    /// Changes published on the event feed.
    pub events_published: AtomicU64,
    /// Event feed subscribers connected.
    pub events_subscribers: AtomicI64,
    /// Times a subscriber fell behind the feed's bound and caught up from the store.
    pub events_lagged: AtomicU64,
    /// Commands queued.
    pub commands_queued: AtomicU64,
    /// Commands whose publish the broker acknowledged.
    pub commands_published: AtomicU64,
    /// Commands answered by their device.
    pub commands_answered: AtomicU64,
    /// Commands not published within their attempts.
    pub commands_failed: AtomicU64,
    /// Command publish attempts without a PUBACK (retried).
    pub command_attempts_failed: AtomicU64,
    /// Command answers whose `ref` matched no command of their device.
    pub command_answers_unmatched: AtomicU64,
    /// (added) Duty checks sent to control rooms.
    pub duty_checks_sent: AtomicU64,
    /// (added) Transmitters that did not answer a duty check by its deadline.
    pub duty_checks_unanswered: AtomicU64,
    /// Commands waiting for their PUBACK.
    pub commands_pending: AtomicI64,
    /// Control rooms with nobody on duty (the duty roster's unstaffed check).
    pub duty_unstaffed_rooms: AtomicI64,
    /// (added) Registry reloads that put a new registry in force.
    pub registry_reloads_ok: AtomicU64,
    /// (added) Registry reloads refused: the file had problems, nothing changed.
    pub registry_reloads_failed: AtomicU64,
    /// (added) Daily summaries made on the schedule.
    pub summaries_scheduled: AtomicU64,
    /// (added) Daily summaries made on demand.
    pub summaries_on_demand: AtomicU64,
    /// (added) Scheduled summaries that reached nobody: the manager has no contact on the
    /// summary's channels.
    pub summaries_unrouted: AtomicU64,
    /// (added) API requests refused by access control, by reason ([`AUTH_REASONS`]).
    pub auth_refused: [AtomicU64; 6],
    /// Latency per stage.
    pub stages: stages::Stages,
    /// (added) Northbound targets (city platforms).
    pub northbound: northbound::Targets,
    /// (added) The GB/T 26875.3 gateway.
    pub gb: gateway::GbMetrics,
    /// (added) The embedded broker's gate.
    pub broker: broker::BrokerMetrics,
    /// (added) The rollup worker.
    pub rollups: rollups::Rollups,
}

/// Counter names (exposition and docs).
pub mod names {
    /// Messages rejected, by reason.
    pub const REJECTED: &str = "firewatch_messages_rejected_total";
    /// Messages committed.
    pub const COMMITTED: &str = "firewatch_messages_committed_total";
    /// Last commit time.
    pub const LAST_COMMIT: &str = "firewatch_last_commit_timestamp_ms";
    /// Control rooms with nobody on duty.
    pub const DUTY_UNSTAFFED: &str = "firewatch_duty_unstaffed_rooms";
    /// Notification attempts by channel and outcome.
    pub const NOTIFICATIONS: &str = "firewatch_notifications_total";
    /// Notifications waiting, by channel.
    pub const NOTIFICATIONS_QUEUED_BY: &str = "firewatch_notifications_channel_queued";
    /// Time-series spool depth.
    pub const TSDB_SPOOL: &str = "firewatch_tsdb_spool_points";
    /// Commands by outcome (`status` label: queued, published, answered, failed).
    pub const COMMANDS: &str = "firewatch_commands_total";
    /// Command answers matching no command.
    pub const COMMAND_ANSWERS_UNMATCHED: &str = "firewatch_command_answers_unmatched_total";
    /// Commands waiting for their PUBACK.
    pub const COMMANDS_PENDING: &str = "firewatch_commands_pending";
    /// (added) Registry reloads by result (`ok`, `failed`).
    pub const REGISTRY_RELOADS: &str = "firewatch_registry_reloads_total";
    /// (added) Daily summaries made, by reason (`scheduled`, `on_demand`).
    pub const SUMMARIES: &str = "firewatch_summaries_total";
    /// (added) Scheduled daily summaries that reached nobody.
    pub const SUMMARIES_UNROUTED: &str = "firewatch_summaries_unrouted_total";
    /// (added) API requests refused by access control.
    pub const AUTH_REFUSED: &str = "firewatch_auth_refused_total";
}

/// Reasons of `firewatch_auth_refused_total`, in the order of [`Metrics::auth_refused`].
pub const AUTH_REASONS: [&str; 6] = [
    "unauthenticated",
    "bad_login",
    "rate_limited",
    "csrf",
    "role",
    "scope",
];

/// Counters of one channel's grouping and rate limits.
#[derive(Debug, Default)]
pub struct PlanCounters {
    /// Messages of several rows.
    pub digests: AtomicU64,
    /// Messages folding several buildings under a rate limit.
    pub folded: AtomicU64,
    /// Rounds a target's window was full.
    pub limited: AtomicU64,
    /// The clock time of the sender's last finished round (epoch ms): what was due then has
    /// been sent or held.
    pub round_at: AtomicI64,
}

/// How a notification attempt ended, for `firewatch_notifications_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyOutcome {
    /// Delivered.
    Sent,
    /// Failed (retried, or the last attempt).
    Failed,
    /// No more attempts: the row ended `failed`.
    GaveUp,
}

impl NotifyOutcome {
    /// Every outcome.
    pub const ALL: [NotifyOutcome; 3] = [
        NotifyOutcome::Sent,
        NotifyOutcome::Failed,
        NotifyOutcome::GaveUp,
    ];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            NotifyOutcome::Sent => "sent",
            NotifyOutcome::Failed => "failed",
            NotifyOutcome::GaveUp => "gave_up",
        }
    }

    const fn index(self) -> usize {
        match self {
            NotifyOutcome::Sent => 0,
            NotifyOutcome::Failed => 1,
            NotifyOutcome::GaveUp => 2,
        }
    }
}

impl Metrics {
    /// Counts a notification attempt's outcome (and the totals over all channels).
    pub fn notified(&self, channel: ChannelKind, outcome: NotifyOutcome) {
        self.notify_outcomes[channel.index()][outcome.index()].fetch_add(1, Relaxed);
        match outcome {
            NotifyOutcome::Sent => self.notify_sent.fetch_add(1, Relaxed),
            NotifyOutcome::Failed => self.notify_failed.fetch_add(1, Relaxed),
            NotifyOutcome::GaveUp => 0,
        };
    }

    /// Attempts of one channel that ended so.
    pub fn notified_of(&self, channel: ChannelKind, outcome: NotifyOutcome) -> u64 {
        self.notify_outcomes[channel.index()][outcome.index()].load(Relaxed)
    }

    /// Notifications waiting, all channels.
    pub fn notify_queued(&self) -> i64 {
        self.notify_queue.iter().map(|q| q.load(Relaxed)).sum()
    }

    /// Counts a rejection.
    pub fn reject(&self, r: Reason) {
        self.rejected[r.index()].fetch_add(1, Relaxed);
    }

    /// Rejections of one reason so far.
    pub fn rejected_of(&self, r: Reason) -> u64 {
        self.rejected[r.index()].load(Relaxed)
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(4096);
        let mut c = |name: &str, help: &str, kind: &str, v: String| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        let l = |a: &AtomicU64| a.load(Relaxed).to_string();
        let g = |a: &AtomicI64| a.load(Relaxed).to_string();
        c(
            "firewatch_messages_received_total",
            "MQTT publishes received.",
            "counter",
            l(&self.received),
        );
        c(
            "firewatch_messages_accepted_total",
            "Messages that passed validation.",
            "counter",
            l(&self.accepted),
        );
        c(
            "firewatch_messages_ignored_total",
            "Command echoes ignored.",
            "counter",
            l(&self.ignored),
        );
        c(
            "firewatch_messages_dropped_qos0_total",
            "QoS 0 messages dropped while the pipeline queue was full.",
            "counter",
            l(&self.dropped_qos0),
        );
        c(
            names::COMMITTED,
            "Messages durable in the embedded store.",
            "counter",
            l(&self.committed),
        );
        c(
            "firewatch_store_commits_total",
            "Group commits.",
            "counter",
            l(&self.commits),
        );
        c(
            "firewatch_store_commit_seconds_total",
            "Time spent committing.",
            "counter",
            format!("{:.6}", self.commit_us.load(Relaxed) as f64 / 1e6),
        );
        c(
            names::LAST_COMMIT,
            "Wall time of the last commit (epoch ms).",
            "gauge",
            g(&self.last_commit_ms),
        );
        c(
            names::DUTY_UNSTAFFED,
            "Control rooms with nobody on duty now.",
            "gauge",
            g(&self.duty_unstaffed_rooms),
        );
        c(
            "firewatch_pipeline_clock_ms",
            "The clock's time at the last timer tick (epoch ms).",
            "gauge",
            g(&self.pipeline_clock_ms),
        );
        c(
            "firewatch_pipeline_readings_overtaken_total",
            "Messages committed after an event that arrived later than they did.",
            "counter",
            l(&self.overtaken),
        );
        c(
            "firewatch_first_message_timestamp_ms",
            "Wall time of the first message received (epoch ms).",
            "gauge",
            g(&self.first_message_ms),
        );
        c(
            "firewatch_mqtt_acks_total",
            "Acknowledgements sent to the broker: after the durable write (on receipt on the embedded broker).",
            "counter",
            l(&self.acked),
        );
        c(
            "firewatch_mqtt_acks_withheld_total",
            "Acks withheld after a reconnect; the broker redelivers those messages.",
            "counter",
            l(&self.acks_skipped),
        );
        c(
            "firewatch_pipeline_queue_depth",
            "Messages waiting for the pipeline.",
            "gauge",
            g(&self.queue_depth),
        );
        c(
            "firewatch_mqtt_connected",
            "1 when connected to the broker.",
            "gauge",
            u8::from(self.mqtt_connected.load(Relaxed)).to_string(),
        );
        c(
            "firewatch_mqtt_subscribed",
            "1 when the broker granted the subscription to fw/v1/#.",
            "gauge",
            u8::from(self.mqtt_subscribed.load(Relaxed)).to_string(),
        );
        c(
            "firewatch_mqtt_connects_total",
            "Broker connections made.",
            "counter",
            l(&self.mqtt_connects),
        );
        c(
            "firewatch_mqtt_errors_total",
            "Broker connection errors.",
            "counter",
            l(&self.mqtt_errors),
        );
        c(
            "firewatch_rejected_republished_total",
            "Rejected messages republished to fw/v1/_rejected/.",
            "counter",
            l(&self.republished),
        );
        c(
            "firewatch_rejected_republish_dropped_total",
            "Rejected-message copies dropped instead of republished (queue full).",
            "counter",
            l(&self.republish_dropped),
        );
        c(
            "firewatch_redelivered_unrecognised_total",
            "Redelivered messages without seq that matched no recent payload of their device.",
            "counter",
            l(&self.redelivered_unrecognised),
        );
        c(
            "firewatch_devices_refused_total",
            "Messages whose unknown device got no record (cap on unregistered devices reached).",
            "counter",
            l(&self.devices_refused),
        );
        c(
            "firewatch_channels_refused_total",
            "Values not kept as latest values: a device's channel names past the cap.",
            "counter",
            l(&self.channels_refused),
        );
        c(
            "firewatch_messages_lost",
            "Messages missing from device seq sequences now (late arrivals fill gaps).",
            "gauge",
            l(&self.lost),
        );
        c(
            "firewatch_alerts_opened_total",
            "Alerts opened.",
            "counter",
            l(&self.alerts_opened),
        );
        c(
            "firewatch_alerts_silenced_total",
            "Alerts that fired while a silence or maintenance window covered them: recorded, not notified.",
            "counter",
            l(&self.alerts_silenced),
        );
        c(
            "firewatch_alerts_drill_total",
            "Alerts that fired during a drill or test of their building: classified test, told to the control room only.",
            "counter",
            l(&self.alerts_drill),
        );
        c(
            "firewatch_alerts_inhibited_total",
            "Alerts that fired while an alert upstream (a gateway offline, a mains failure) explained them: recorded, not notified until it is over.",
            "counter",
            l(&self.alerts_inhibited),
        );
        c(
            "firewatch_alerts_shielded_total",
            "Alerts that fired on a shielded point: recorded, not notified until it is unshielded.",
            "counter",
            l(&self.alerts_shielded),
        );
        c(
            "firewatch_alerts_released_total",
            "Inhibited or shielded alerts released when what held them back was over.",
            "counter",
            l(&self.alerts_released),
        );
        c(
            "firewatch_alerts_flapping_total",
            "Alerts marked flapping (fired and cleared too often): told once, then quiet until stable.",
            "counter",
            l(&self.alerts_flapping),
        );
        c(
            "firewatch_alerts_flap_quiet_total",
            "Clears and re-fires of flapping alerts recorded and told to nobody.",
            "counter",
            l(&self.alerts_flap_quiet),
        );
        c(
            "firewatch_alerts_cleared_total",
            "Alert conditions cleared.",
            "counter",
            l(&self.alerts_cleared),
        );
        c(
            "firewatch_rule_conditions",
            "Conditions held (pending, active, clearing).",
            "gauge",
            g(&self.conditions),
        );
        c(
            "firewatch_devices",
            "Devices known.",
            "gauge",
            g(&self.devices),
        );
        c(
            "firewatch_tsdb_points_written_total",
            "Points written to the time-series database.",
            "counter",
            l(&self.tsdb_points),
        );
        c(
            "firewatch_tsdb_writes_total",
            "Write requests.",
            "counter",
            l(&self.tsdb_writes),
        );
        c(
            "firewatch_tsdb_write_errors_total",
            "Failed write requests.",
            "counter",
            l(&self.tsdb_errors),
        );
        c(
            "firewatch_tsdb_points_refused_total",
            "Readings the database refused (4xx) and that were set aside; they stay in the embedded store.",
            "counter",
            l(&self.tsdb_points_refused),
        );
        c(
            "firewatch_tsdb_points_invalid_total",
            "Readings that could not be made into a point; they stay in the embedded store.",
            "counter",
            l(&self.tsdb_points_invalid),
        );
        c(
            "firewatch_tsdb_enabled",
            "1 when readings are forwarded to a time-series database.",
            "gauge",
            u8::from(self.tsdb_enabled.load(Relaxed)).to_string(),
        );
        c(
            names::TSDB_SPOOL,
            "Readings spooled on disk, not yet in the time-series database.",
            "gauge",
            g(&self.tsdb_spool),
        );
        c(
            "firewatch_tsdb_write_latency_seconds",
            "Latency of the last write.",
            "gauge",
            format!(
                "{:.6}",
                self.tsdb_last_latency_us.load(Relaxed) as f64 / 1e6
            ),
        );
        c(
            "firewatch_tsdb_write_seconds_total",
            "Time spent in writes.",
            "counter",
            format!("{:.6}", self.tsdb_latency_us.load(Relaxed) as f64 / 1e6),
        );
        c(
            "firewatch_notifications_sent_total",
            "Notifications delivered.",
            "counter",
            l(&self.notify_sent),
        );
        c(
            "firewatch_notifications_failed_total",
            "Failed delivery attempts (retried or given up).",
            "counter",
            l(&self.notify_failed),
        );
        c(
            "firewatch_notifications_queued",
            "Notifications waiting in the outbox.",
            "gauge",
            self.notify_queued().to_string(),
        );
        c(
            "firewatch_notification_latency_seconds",
            "Last notification: transition to accepted by the server.",
            "gauge",
            format!(
                "{:.6}",
                self.notify_last_latency_us.load(Relaxed) as f64 / 1e6
            ),
        );
        c(
            "firewatch_events_published_total",
            "Changes published on the event feed (GET /api/v1/events).",
            "counter",
            l(&self.events_published),
        );
        c(
            "firewatch_events_subscribers",
            "Event feed subscribers connected.",
            "gauge",
            g(&self.events_subscribers),
        );
        c(
            "firewatch_events_lagged_total",
            "Times a subscriber fell behind the feed's bound and caught up from the store.",
            "counter",
            l(&self.events_lagged),
        );
        let _ = writeln!(
            s,
            "# HELP {n} Notification attempts, by channel and outcome.\n# TYPE {n} counter",
            n = names::NOTIFICATIONS
        );
        for ch in ChannelKind::ALL {
            for o in NotifyOutcome::ALL {
                let _ = writeln!(
                    s,
                    "{}{{channel=\"{}\",outcome=\"{}\"}} {}",
                    names::NOTIFICATIONS,
                    ch.as_str(),
                    o.as_str(),
                    self.notified_of(ch, o)
                );
            }
        }
        let _ = writeln!(
            s,
            "# HELP {n} Notifications waiting, by channel.\n# TYPE {n} gauge",
            n = names::NOTIFICATIONS_QUEUED_BY
        );
        for ch in ChannelKind::ALL {
            let _ = writeln!(
                s,
                "{}{{channel=\"{}\"}} {}",
                names::NOTIFICATIONS_QUEUED_BY,
                ch.as_str(),
                self.notify_queue[ch.index()].load(Relaxed)
            );
        }
        for (name, help, get) in [
            (
                "firewatch_notify_digests_total",
                "Messages that carried several notifications, by channel.",
                (|p: &PlanCounters| p.digests.load(Relaxed)) as fn(&PlanCounters) -> u64,
            ),
            (
                "firewatch_notify_folded_total",
                "Messages that folded several buildings because a rate limit forced it, by channel.",
                |p| p.folded.load(Relaxed),
            ),
            (
                "firewatch_notify_rate_limited_total",
                "Rounds in which a target's per-minute limit held its messages back, by channel.",
                |p| p.limited.load(Relaxed),
            ),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter");
            for ch in ChannelKind::ALL {
                let v = get(&self.notify_plan[ch.index()]);
                let _ = writeln!(s, "{name}{{channel=\"{}\"}} {v}", ch.as_str());
            }
        }
        let name = "firewatch_notify_round_clock_ms";
        let _ = writeln!(
            s,
            "# HELP {name} Clock time of each sender's last finished round, by channel.\n# TYPE {name} gauge"
        );
        for ch in ChannelKind::ALL {
            let v = self.notify_plan[ch.index()].round_at.load(Relaxed);
            let _ = writeln!(s, "{name}{{channel=\"{}\"}} {v}", ch.as_str());
        }
        let _ = writeln!(
            s,
            "# HELP {} Messages rejected, by reason.\n# TYPE {} counter",
            names::REJECTED,
            names::REJECTED
        );
        for r in Reason::ALL {
            let _ = writeln!(
                s,
                "{}{{reason=\"{}\"}} {}",
                names::REJECTED,
                r.as_str(),
                self.rejected_of(r)
            );
        }
        self.render_commands(&mut s);
        self.render_registry(&mut s);
        self.render_summaries(&mut s);
        self.render_auth(&mut s);
        self.northbound.render(&mut s);
        self.gb.render(&mut s);
        self.broker.render(&mut s);
        self.rollups.render(&mut s);
        self.stages
            .render(&mut s, &ChannelKind::ALL.map(ChannelKind::as_str));
        s
    }

    fn render_registry(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "# HELP {n} Registry reloads (API or file watch), by result.\n# TYPE {n} counter",
            n = names::REGISTRY_RELOADS
        );
        for (result, v) in [
            ("ok", &self.registry_reloads_ok),
            ("failed", &self.registry_reloads_failed),
        ] {
            let _ = writeln!(
                s,
                "{}{{result=\"{result}\"}} {}",
                names::REGISTRY_RELOADS,
                v.load(Relaxed)
            );
        }
    }

    /// Counts a request refused by access control (`reason` one of [`AUTH_REASONS`]).
    pub fn auth_refused(&self, reason: &str) {
        if let Some(i) = AUTH_REASONS.iter().position(|r| *r == reason) {
            self.auth_refused[i].fetch_add(1, Relaxed);
        }
    }

    fn render_auth(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "# HELP {n} API requests refused by access control, by reason.\n# TYPE {n} counter",
            n = names::AUTH_REFUSED
        );
        for (reason, v) in AUTH_REASONS.iter().zip(&self.auth_refused) {
            let _ = writeln!(
                s,
                "{}{{reason=\"{reason}\"}} {}",
                names::AUTH_REFUSED,
                v.load(Relaxed)
            );
        }
    }

    fn render_summaries(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "# HELP {n} Daily summaries made for fire-safety managers, by reason.\n# TYPE {n} counter",
            n = names::SUMMARIES
        );
        for (reason, v) in [
            ("scheduled", &self.summaries_scheduled),
            ("on_demand", &self.summaries_on_demand),
        ] {
            let _ = writeln!(
                s,
                "{}{{reason=\"{reason}\"}} {}",
                names::SUMMARIES,
                v.load(Relaxed)
            );
        }
        let _ = writeln!(
            s,
            "# HELP {n} Scheduled daily summaries whose manager has no contact on the summary's channels.\n# TYPE {n} counter\n{n} {}",
            self.summaries_unrouted.load(Relaxed),
            n = names::SUMMARIES_UNROUTED
        );
    }

    fn render_commands(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "# HELP {n} Commands to devices, by outcome.\n# TYPE {n} counter",
            n = names::COMMANDS
        );
        for (status, v) in [
            ("queued", &self.commands_queued),
            ("published", &self.commands_published),
            ("answered", &self.commands_answered),
            ("failed", &self.commands_failed),
        ] {
            let _ = writeln!(
                s,
                "{}{{status=\"{status}\"}} {}",
                names::COMMANDS,
                v.load(Relaxed)
            );
        }
        for (name, help, kind, v) in [
            (
                "firewatch_command_attempts_failed_total",
                "Command publishes without a PUBACK in time (retried).",
                "counter",
                self.command_attempts_failed.load(Relaxed).to_string(),
            ),
            (
                names::COMMAND_ANSWERS_UNMATCHED,
                "Command answers whose ref matches no command of their device.",
                "counter",
                self.command_answers_unmatched.load(Relaxed).to_string(),
            ),
            (
                "firewatch_duty_checks_total",
                "Duty checks sent to control rooms (scheduled and on demand).",
                "counter",
                self.duty_checks_sent.load(Relaxed).to_string(),
            ),
            (
                "firewatch_duty_checks_unanswered_total",
                "Transmitters that did not answer a duty check by its deadline.",
                "counter",
                self.duty_checks_unanswered.load(Relaxed).to_string(),
            ),
            (
                names::COMMANDS_PENDING,
                "Commands waiting for the broker's PUBACK.",
                "gauge",
                self.commands_pending.load(Relaxed).to_string(),
            ),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        }
    }
}
