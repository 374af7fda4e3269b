//! The wiring: builds every stage, runs them, and shuts them down in order. Only this module
//! knows every stage; the stages know only the ones below them (docs/architecture.md).
//!
//! Shutdown order (backend before frontend):
//! 1. ingest stops handing messages to the pipeline (what arrives from then on is not
//!    acknowledged and comes back on the persistent session);
//! 2. the time-series forwarder, the northbound targets and the notification senders get a bounded grace period and hand their last
//!    bookkeeping to the pipeline (unsent rows stay in the store);
//! 3. the pipeline commits what it holds and stops;
//! 4. ingest sends the acknowledgements of those last commits, then disconnects;
//! 5. HTTP stops last.
//!
//! Each step has a deadline; a step that overruns it is named in the log and left behind.

use crate::alerts::route::Router;
use crate::api::{self, ApiState};
use crate::bus::Bus;
use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, Problem};
use crate::ingest::{broker, mqtt};
use crate::metrics::Metrics;
use crate::model::notification::ChannelKind;
use crate::notify::dingtalk::Dingtalk;
use crate::notify::email::Email;
use crate::notify::sms::Sms;
use crate::notify::webhook::Webhooks;
use crate::notify::wecom::Wecom;
use crate::notify::{Channel, Report, Sender};
use crate::pipeline::{self, Input, Inputs, Outputs, Pipeline, Settings};
use crate::registry::Registry;
use crate::rules::engine::Engine;
use crate::rules::Rules;
use crate::store;
use crate::tsdb::Forwarder;
use anyhow::{anyhow, Context};
use futures::future::{FusedFuture, FutureExt};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Loads and validates everything `run` needs, without starting anything.
pub fn check(cfg: &Config) -> Result<(Rules, Registry), Vec<Problem>> {
    let mut problems = cfg.validate();
    let rules = match Rules::load(&cfg.rules.file) {
        Ok(r) => Some(r),
        Err(p) => {
            problems.extend(p);
            None
        }
    };
    let registry = match Registry::load(&cfg.registry.file) {
        Ok(r) => Some(r),
        Err(p) => {
            problems.extend(p);
            None
        }
    };
    if let (Some(r), Some(g)) = (&rules, &registry) {
        problems.extend(r.check_registry(g));
    }
    if let Err(p) = crate::duty::Roster::load(&cfg.duty.file) {
        problems.extend(p);
    }
    match (rules, registry) {
        (Some(r), Some(g)) if problems.is_empty() => Ok((r, g)),
        _ => Err(problems),
    }
}

/// What a sender task ends with: its channel and how it ended.
type SenderEnd = (ChannelKind, Result<(), store::StoreError>);

/// Starts the sender task of `channel` in `set`; `wakes` gets its wake-up, for the pipeline.
#[allow(clippy::too_many_arguments)]
fn start_sender<C: Channel>(
    set: &mut JoinSet<SenderEnd>,
    wakes: &mut Vec<Arc<Notify>>,
    channel: C,
    cfg: &Config,
    metrics: &Arc<Metrics>,
    clock: &SharedClock,
    report: Report,
    shutdown: CancellationToken,
) {
    let kind = channel.kind();
    let wake = Arc::new(Notify::new());
    wakes.push(Arc::clone(&wake));
    let sender = Sender::new(
        channel,
        &cfg.storage.dir,
        cfg.notify.clone(),
        Arc::clone(metrics),
        wake,
        Arc::clone(clock),
    );
    set.spawn(async move { (kind, sender.run(report, shutdown).await) });
}

fn problems_error(p: Vec<Problem>) -> anyhow::Error {
    let lines: Vec<String> = p.iter().map(ToString::to_string).collect();
    anyhow!("invalid configuration:\n  {}", lines.join("\n  "))
}

/// Runs firewatch on the wall clock until `signal` completes or a stage fails.
pub async fn run(cfg: Config, signal: impl Future<Output = ()>) -> anyhow::Result<()> {
    run_with(cfg, Arc::new(SystemClock), signal).await
}

/// Waits for `f` at most `limit`; says so in the log when it overran.
async fn bounded<F: Future>(name: &str, limit: Duration, f: F) -> Option<F::Output> {
    match tokio::time::timeout(limit, f).await {
        Ok(v) => Some(v),
        Err(_) => {
            tracing::warn!(
                stage = name,
                limit_s = limit.as_secs(),
                "Still running at its shutdown deadline; leaving it behind."
            );
            None
        }
    }
}

/// On a store without users: creates the account `admin` (role admin) with a random password,
/// writes the password to [`crate::auth::INITIAL_PASSWORD_FILE`] (readable by this user only) and says once,
/// in the log, where it is and how to log in. The password itself is never logged.
fn first_admin(
    conn: &rusqlite::Connection,
    dir: &std::path::Path,
    now: i64,
    url: &str,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if store::auth::count_users(conn)? > 0 {
        return Ok(());
    }
    let password = crate::auth::token::generate("")?;
    let hash = crate::auth::password::hash(&password)?;
    let path = dir.join(crate::auth::INITIAL_PASSWORD_FILE);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(f, "{password}")?;
    f.sync_all()?;
    let admin = crate::auth::User {
        name: "admin".into(),
        display: "管理员".into(),
        role: crate::auth::Role::Admin,
        buildings: Default::default(),
        disabled: false,
        created_at: now,
    };
    store::auth::insert_user(conn, &admin, &hash)?;
    tracing::warn!(
        file = %path.display(),
        "First start: created the account \"admin\". Its password is in the file (readable by \
         this user only). Log in at {url}/ and set a new one with `firewatch user passwd admin`, \
         which deletes the file."
    );
    Ok(())
}

/// Runs firewatch on `clock` until `signal` completes or a stage fails.
pub async fn run_with(
    cfg: Config,
    clock: SharedClock,
    signal: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // Start-up reads files and SQLite: off the async threads.
    let setup_cfg = cfg.clone();
    let setup_clock = Arc::clone(&clock);
    let (rules, registry, conn, engine, email, roster, embedded) =
        tokio::task::spawn_blocking(move || {
            let (rules, registry) = check(&setup_cfg).map_err(problems_error)?;
            let rules = Arc::new(rules);
            let registry = Arc::new(registry);
            let dir = &setup_cfg.storage.dir;
            let conn = store::open_writer(dir, &setup_cfg.storage.synchronous)
                .with_context(|| format!("opening the store in {}", dir.display()))?;
            let mut engine = Engine::new(Arc::clone(&rules), Arc::clone(&registry)).with_limits(
                crate::rules::engine::Limits {
                    max_unregistered: setup_cfg.registry.max_unregistered,
                    max_values: setup_cfg.registry.max_values_per_device,
                },
            );
            pipeline::restore(&conn, &mut engine, setup_clock.now_ms())
                .context("restoring rule state")?;
            first_admin(
                &conn,
                dir,
                setup_clock.now_ms(),
                &setup_cfg.http.public_url(),
            )
            .context("creating the first admin account")?;
            let roster = crate::duty::Roster::load(&setup_cfg.duty.file).map_err(problems_error)?;
            let kept_from = setup_clock
                .now_ms()
                .saturating_sub(crate::duty::OVERRIDES_KEPT_MS);
            let overrides =
                store::duty::load(&conn, kept_from).context("loading duty overrides")?;
            let roster = roster.with_overrides(overrides);
            let embedded = if setup_cfg.mqtt.url == "embedded" {
                Some(broker::start(&setup_cfg.mqtt).map_err(|e| anyhow!(e))?)
            } else {
                None
            };
            // The e-mail channel may create the `.eml` outbox folder.
            let look = setup_cfg
                .notify
                .render_context(&setup_cfg.http.public_url())
                .map_err(|e| anyhow!("notify.tz: {e}"))?;
            let email = Email::new(&setup_cfg.email, dir, look).map_err(|e| anyhow!(e))?;
            anyhow::Ok((rules, registry, conn, engine, email, roster, embedded))
        })
        .await
        .context("start-up task")??;
    let dir = cfg.storage.dir.clone();
    tracing::info!(
        file = %cfg.duty.file.display(),
        control_rooms = roster.room_ids().len(),
        people = roster.people_count(),
        overrides = roster.overrides().len(),
        "Duty roster."
    );
    let duty = crate::duty::Live::new(roster);

    let metrics = Arc::new(Metrics::default());
    metrics.pipeline_tick_ms.store(
        crate::clock::wall_ms(),
        std::sync::atomic::Ordering::Relaxed,
    );
    let (input_tx, input_rx) = std::sync::mpsc::channel::<Input>();
    let (priority_tx, priority_rx) = std::sync::mpsc::channel::<Input>();
    let (ack_tx, ack_rx) = tokio::sync::mpsc::unbounded_channel();
    // Republishing rejected messages is best effort (QoS 0); 10k copies may wait, more are
    // dropped and counted.
    let (rep_tx, rep_rx) = tokio::sync::mpsc::channel(10_000);
    let tsdb_wake = Arc::new(Notify::new());
    // The change feed: bounded; the pipeline never waits for it (see `bus`).
    let bus = Bus::new(crate::bus::CAPACITY);
    let command_wake = Arc::new(Notify::new());

    let backend_token = CancellationToken::new();
    let report = |kind: ChannelKind| -> Report {
        let delivered_tx = input_tx.clone();
        Box::new(move |d| {
            debug_assert_eq!(d.channel, kind);
            delivered_tx.send(Input::Delivered(d)).is_ok()
        })
    };
    // One sender per channel, each with its own retries: a stalled SMTP server never delays a
    // webhook or a robot.
    let look = cfg
        .notify
        .render_context(&cfg.http.public_url())
        .map_err(|e| anyhow!("notify.tz: {e}"))?;
    let mut senders = JoinSet::new();
    let mut notify_wake = Vec::new();
    let (set, wakes) = (&mut senders, &mut notify_wake);
    let (token, m) = (&backend_token, &metrics);
    let fail = |e: String| anyhow!(e);
    start_sender(
        set,
        wakes,
        email,
        &cfg,
        m,
        &clock,
        report(ChannelKind::Email),
        token.clone(),
    );
    let webhooks = Webhooks::new(&cfg.webhook).map_err(fail)?;
    start_sender(
        set,
        wakes,
        webhooks,
        &cfg,
        m,
        &clock,
        report(ChannelKind::Webhook),
        token.clone(),
    );
    let wecom = Wecom::new(&cfg.wecom, look.clone()).map_err(fail)?;
    start_sender(
        set,
        wakes,
        wecom,
        &cfg,
        m,
        &clock,
        report(ChannelKind::Wecom),
        token.clone(),
    );
    let dingtalk = Dingtalk::new(&cfg.dingtalk, look.clone()).map_err(fail)?;
    start_sender(
        set,
        wakes,
        dingtalk,
        &cfg,
        m,
        &clock,
        report(ChannelKind::Dingtalk),
        token.clone(),
    );
    let sms = Sms::new(cfg.sms.as_ref(), look).map_err(fail)?;
    start_sender(
        set,
        wakes,
        sms,
        &cfg,
        m,
        &clock,
        report(ChannelKind::Sms),
        token.clone(),
    );

    let core = Pipeline::new(
        conn,
        engine,
        Arc::clone(&metrics),
        Settings {
            router: Router {
                email_to: cfg.email.to.clone(),
                webhooks: cfg.webhook.iter().map(|w| w.name.clone()).collect(),
                escalation: cfg.escalation.clone(),
                wecom: cfg.wecom.iter().map(|w| w.name.clone()).collect(),
                dingtalk: cfg.dingtalk.iter().map(|d| d.name.clone()).collect(),
                sms_to: cfg.sms.iter().flat_map(|s| s.to.clone()).collect(),
                duty: Arc::clone(&duty),
                sms: cfg.sms.is_some(),
            },
            rejected_keep: cfg.storage.rejected_keep,
            retention_days: cfg.storage.retention_days,
            tsdb_enabled: cfg.tsdb.url.is_some(),
            changes_keep: cfg.storage.changes_keep,
            duty: Arc::clone(&duty),
            workorders: cfg.workorders.clone(),
            northbound: cfg
                .northbound
                .iter()
                .flat_map(crate::northbound::NorthboundConfig::holds)
                .collect(),
            rollup_retention_days: cfg.storage.rollup_retention_days,
            frames_keep_days: cfg.gb26875.frames_keep_days,
            summary: pipeline::SummarySettings {
                config: cfg.summary.clone(),
                tz: crate::notify::render::time_zone(&cfg.notify.tz)
                    .map_err(|e| anyhow!("notify.tz: {e}"))?,
            },
        },
        Outputs {
            acks: ack_tx,
            republish: rep_tx,
            notify_wake,
            tsdb_wake: Arc::clone(&tsdb_wake),
            changes: bus.clone(),
            command_wake: Arc::clone(&command_wake),
        },
        Arc::clone(&clock),
    );
    let (core_done_tx, mut core_done) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("pipeline".into())
        .spawn(move || {
            let r = core.run(input_rx, priority_rx);
            let _ = core_done_tx.send(r);
        })
        .context("starting the pipeline thread")?;

    match &cfg.email.smtp_url {
        Some(u) => {
            if let Ok(t) = crate::notify::SmtpTarget::parse(u.expose()) {
                tracing::info!(smtp = %t.redacted(), to = ?cfg.email.to, "E-mail via SMTP.");
            }
        }
        None => {
            tracing::info!(outbox = %dir.join("outbox").display(), to = ?cfg.email.to, "E-mail written as .eml files.")
        }
    }
    for w in &cfg.webhook {
        tracing::info!(name = %w.name, url = %w.redacted(), "Webhook.");
    }
    for w in &cfg.wecom {
        tracing::info!(name = %w.name, url = %crate::notify::redacted(w.url.expose()), "WeCom robot.");
    }
    for d in &cfg.dingtalk {
        tracing::info!(name = %d.name, url = %crate::notify::redacted(d.url.expose()), signed = d.secret.is_some(), "DingTalk robot.");
    }
    if let Some(s) = &cfg.sms {
        tracing::info!(gateway = %crate::notify::redacted(s.url.expose()), to = s.to.len(), "SMS gateway.");
    }

    let http_listener = tokio::net::TcpListener::bind(&cfg.http.listen)
        .await
        .with_context(|| format!("http.listen {}: cannot listen", cfg.http.listen))?;
    let http_token = CancellationToken::new();
    let tls = match (&cfg.http.tls_cert, &cfg.http.tls_key) {
        (Some(c), Some(k)) => Some(api::tls::server_config(c, k).map_err(|ps| {
            anyhow!(ps
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "))
        })?),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(listen = %cfg.http.listen, tls = tls.is_some(), "HTTP API and dashboard on {scheme}://{}/", cfg.http.listen);
    // (added) Northbound targets: one task each, reporting cursors to the pipeline.
    let mut northbound = JoinSet::new();
    for t in &cfg.northbound {
        tracing::info!(name = %t.name, url = %t.redacted(), "Northbound target.");
        let tx = input_tx.clone();
        let report: crate::northbound::CursorReport = Arc::new(move |key, id, set_aside| {
            tx.send(Input::NorthboundCursor { key, id, set_aside })
                .is_ok()
        });
        let fwd = crate::northbound::Forwarder::new(
            t.clone(),
            dir.clone(),
            &metrics,
            bus.clone(),
            report,
            Arc::clone(&clock),
        );
        let (name, token) = (t.name.clone(), backend_token.clone());
        northbound.spawn(async move { (name, fwd.run(token).await) });
    }
    let live = crate::registry::Live::new(Arc::clone(&registry), cfg.registry.file.clone());
    let state = ApiState {
        changes: bus,
        shutdown: http_token.clone(),
        dir: dir.clone(),
        pipeline: input_tx.clone(),
        metrics: Arc::clone(&metrics),
        registry: Arc::clone(&live),
        rules: Arc::clone(&rules),
        clock: Arc::clone(&clock),
        ack_token: cfg.http.ack_token.clone(),
        duty: Arc::clone(&duty),
        auth: Arc::new(api::auth::Auth::new(&cfg.auth)),
        map_tiles: cfg.http.map_tiles.clone(),
        time_zone: cfg.notify.tz.clone(),
    };

    // (added) The registry file watch: reloads go through the pipeline, so it ends with the
    // backends, before the pipeline stops.
    let mut registry_watch = match cfg.registry.watch_s {
        0 => tokio::spawn(async {}),
        s => tokio::spawn(api::registry::watch(
            state.clone(),
            Duration::from_secs(s),
            backend_token.clone(),
        )),
    }
    .fuse();
    let ingest_token = CancellationToken::new();

    let mut http = {
        let t = http_token.clone();
        let app = api::router(state);
        match tls {
            None => tokio::spawn(async move {
                axum::serve(
                    http_listener,
                    app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
                )
                .with_graceful_shutdown(t.cancelled_owned())
                .await
            }),
            Some(tls) => {
                use axum::serve::ListenerExt as _;
                // `tap_io` only lends the listener axum's peer-address support.
                let listener = api::tls::TlsListener::new(http_listener, tls, t.clone())
                    .context("http.listen: cannot serve HTTPS")?
                    .tap_io(|_| {});
                tokio::spawn(async move {
                    axum::serve(
                        listener,
                        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
                    )
                    .with_graceful_shutdown(t.cancelled_owned())
                    .await
                })
            }
        }
    }
    .fuse();
    let gb_priority_tx = priority_tx.clone();
    let gb_links = Arc::new(crate::ingest::gbt26875::server::GbLinks::default());
    // Behind the embedded broker's gate, firewatch's own client connects to rumqttd directly,
    // with the internal account; devices go through the gate.
    let mut ingest_cfg = cfg.mqtt.clone();
    if let Some(e) = embedded {
        ingest_cfg.embedded_listen = e.client.to_string();
        if let Some((user, password)) = e.account {
            ingest_cfg.username = Some(user);
            ingest_cfg.password = Some(crate::settings::Secret::new(password));
        }
        if let Some(gate) = e.gate {
            tokio::spawn(crate::ingest::gate::run(
                gate,
                Arc::clone(&live),
                Arc::clone(&metrics),
            ));
        }
    }
    let mut ingest = tokio::spawn(mqtt::run(
        ingest_cfg,
        Inputs {
            normal: input_tx.clone(),
            priority: priority_tx,
        },
        Arc::clone(&metrics),
        ack_rx,
        rep_rx,
        Arc::clone(&clock),
        crate::ingest::commands::CommandPublisher {
            cfg: cfg.commands.clone(),
            dir: dir.clone(),
            pipeline: input_tx.clone(),
            metrics: Arc::clone(&metrics),
            wake: command_wake,
            clock: Arc::clone(&clock),
            gb: Arc::clone(&gb_links),
        },
        ingest_token.clone(),
    ))
    .fuse();
    // (added) The GB/T 26875.3 gateway: an ingest like MQTT, stopped with it.
    let mut gateway = tokio::spawn(crate::ingest::gbt26875::server::run(
        cfg.gb26875.clone(),
        Inputs {
            normal: input_tx.clone(),
            priority: gb_priority_tx,
        },
        Arc::clone(&live),
        Arc::clone(&metrics),
        Arc::clone(&clock),
        gb_links,
        ingest_token.clone(),
    ))
    .fuse();
    let cursor_tx = input_tx.clone();
    let mut forwarder = tokio::spawn(
        Forwarder::new(
            cfg.tsdb.clone(),
            dir.clone(),
            Arc::clone(&metrics),
            tsdb_wake,
            Box::new(move |id| cursor_tx.send(Input::TsdbCursor(id)).is_ok()),
            Arc::clone(&clock),
        )
        .run(backend_token.clone()),
    )
    .fuse();
    let rollup_tx = input_tx.clone();
    let mut rollup_worker = tokio::spawn(
        crate::rollup::Worker::new(
            dir.clone(),
            Arc::clone(&metrics),
            Box::new(move |batch, reply| rollup_tx.send(Input::Rollup { batch, reply }).is_ok()),
        )
        .run(backend_token.clone()),
    )
    .fuse();
    let gauge = Arc::clone(&metrics);
    let mut duty_task = tokio::spawn(crate::duty::watch(
        duty,
        Arc::clone(&clock),
        Box::new(move |n| {
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            gauge
                .duty_unstaffed_rooms
                .store(n, std::sync::atomic::Ordering::Relaxed);
        }),
        backend_token.clone(),
    ))
    .fuse();
    // Run until a signal or a failing stage.
    let mut failure: Option<anyhow::Error> = None;
    tokio::select! {
        () = signal => tracing::info!("Shutting down."),
        r = &mut ingest => failure = Some(anyhow!("ingest stopped: {}", flat(r))),
        r = &mut gateway => failure = Some(anyhow!("GB/T 26875.3 gateway stopped: {}", flat(r.map(|r| r.map_err(|e| e.to_string()))))),
        r = &mut core_done => failure = Some(anyhow!("pipeline stopped: {}", match r { Ok(Ok(())) => "no error".into(), Ok(Err(e)) => e.to_string(), Err(_) => "panicked".into() })),
        r = &mut forwarder => failure = Some(anyhow!("time-series forwarder stopped: {}", flat(r.map(|r| r.map_err(|e| e.to_string()))))),
        r = &mut rollup_worker => failure = Some(anyhow!("rollup worker stopped: {}", flat(r.map(|r| r.map_err(|e| e.to_string()))))),
        Some(r) = senders.join_next() => failure = Some(match r {
            Ok((kind, r)) => anyhow!("{kind} sender stopped: {}", flat(Ok(r.map_err(|e| e.to_string())))),
            Err(e) => anyhow!("a notification sender failed: {e}"),
        }),
        Some(r) = northbound.join_next() => failure = Some(match r {
            Ok((name, r)) => anyhow!("northbound target {name} stopped: {}", flat(Ok(r.map_err(|e| e.to_string())))),
            Err(e) => anyhow!("a northbound target failed: {e}"),
        }),
        r = &mut http => failure = Some(anyhow!("HTTP server stopped: {}", flat(r.map(|r| r.map_err(|e| e.to_string()))))),
    }
    if let Some(e) = &failure {
        tracing::error!(error = %e, "A stage failed; shutting down.");
    }

    // 1. Ingest stops handing messages to the pipeline.
    ingest_token.cancel();
    // 2. Backends, bounded: each notification sender finishes the one it is sending, the forwarder makes a
    // last write; their bookkeeping goes to the pipeline, which is still running.
    backend_token.cancel();
    bounded("time-series forwarder", Duration::from_secs(5), async {
        if !forwarder.is_terminated() {
            let _ = (&mut forwarder).await;
        }
    })
    .await;
    bounded("rollup worker", Duration::from_secs(5), async {
        if !rollup_worker.is_terminated() {
            let _ = (&mut rollup_worker).await;
        }
    })
    .await;
    bounded("duty check", Duration::from_secs(5), async {
        if !duty_task.is_terminated() {
            let _ = (&mut duty_task).await;
        }
    })
    .await;
    bounded("registry watch", Duration::from_secs(5), async {
        if !registry_watch.is_terminated() {
            let _ = (&mut registry_watch).await;
        }
    })
    .await;
    bounded("notification senders", Duration::from_secs(5), async {
        while senders.join_next().await.is_some() {}
    })
    .await;
    bounded("northbound targets", Duration::from_secs(5), async {
        while northbound.join_next().await.is_some() {}
    })
    .await;
    // 3. Pipeline: commit what is queued. It drops its end of the ack channel when it stops.
    let _ = input_tx.send(Input::Shutdown);
    drop(input_tx);
    if !core_done.is_terminated() {
        bounded("pipeline", Duration::from_secs(20), &mut core_done).await;
    }
    // 4. Ingest sends the last acknowledgements and disconnects.
    if !ingest.is_terminated() {
        bounded("ingest", Duration::from_secs(30), &mut ingest).await;
    }
    if !gateway.is_terminated() {
        bounded(
            "GB/T 26875.3 gateway",
            Duration::from_secs(10),
            &mut gateway,
        )
        .await;
    }
    // 5. HTTP last.
    http_token.cancel();
    if !http.is_terminated() {
        bounded("HTTP server", Duration::from_secs(5), &mut http).await;
    }
    tracing::info!("Stopped.");
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn flat<E: std::fmt::Display>(r: Result<Result<(), E>, tokio::task::JoinError>) -> String {
    match r {
        Ok(Ok(())) => "ended".into(),
        Ok(Err(e)) => e.to_string(),
        Err(e) => format!("task failed: {e}"),
    }
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
