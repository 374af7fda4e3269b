//! The GB/T 26875.3 gateway: a TCP listener that is the remote monitoring centre for
//! transmitters. Each connection has its own task, stream decoder and mapping state; an
//! upload becomes contract messages for the pipeline and is confirmed (command 3) only once
//! they are committed, as MQTT messages are acknowledged; a frame that is not valid is denied
//! (command 6). A connection silent for `idle_s`, sending more than `max_frames_per_s`, or
//! more than `max_garbage_bytes` of bytes that frame nothing, is closed and counted; it has
//! its own task and buffers, so it never slows the others.

use super::adu::Adu;
use super::frame::{
    self, Address, AddressForm, Checksum, Command, Frame, Profile, TimeCoding, TimeLabel,
};
use super::map::Mapper;
use super::stream::{Chunk, Decoder};
use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::pipeline::{Incoming, Input, Inputs};
use crate::registry::Live;
use crate::settings::Problem;
use crate::store::commands::Command as StoredCommand;
use crate::store::frames::FrameRecord;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// `[gb26875]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GbConfig {
    /// Where to listen (`0.0.0.0:5555`); empty: off.
    pub listen: String,
    /// The centre's own address (the source of what firewatch sends).
    pub address: u64,
    /// A connection silent this long (no frame, no heartbeat) is closed, seconds.
    pub idle_s: u64,
    /// At most this many connections; more are refused and counted.
    pub max_connections: usize,
    /// Frames a connection may send per second (over a 10-second window) before it is closed.
    pub max_frames_per_s: u32,
    /// Bytes that frame nothing a connection may send before it is closed.
    pub max_garbage_bytes: u64,
    /// What firewatch sends and is not answered within this many seconds is sent again.
    pub resend_s: u64,
    /// Times it is sent again before it is given up.
    pub retries: u32,
    /// The transmitters' clocks are set on connect and then every this many hours (0: on
    /// connect only).
    pub clock_sync_h: u64,
    /// The transmitters' status is read every this many seconds (patrol; 0: never).
    pub patrol_s: u64,
    /// The raw frames are kept this many days for audit (0: not kept).
    pub frames_keep_days: u32,
    /// Refuse transmitters whose address is not in the registry (else they are taken as
    /// `gb-{address}` in building `unassigned`).
    pub strict: bool,
    /// The vendor profile of transmitters that name none.
    pub default_vendor: String,
    /// Vendor profiles by name.
    pub vendor: BTreeMap<String, VendorConfig>,
}

impl Default for GbConfig {
    fn default() -> Self {
        GbConfig {
            listen: String::new(),
            address: 0,
            idle_s: 180,
            max_connections: 10_000,
            max_frames_per_s: 50,
            max_garbage_bytes: 16 * 1024,
            resend_s: 10,
            retries: 3,
            clock_sync_h: 24,
            patrol_s: 3600,
            frames_keep_days: 30,
            strict: false,
            default_vendor: "standard".into(),
            vendor: BTreeMap::new(),
        }
    }
}

/// `[gb26875.vendor.NAME]`: what a vendor's devices do differently.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VendorConfig {
    /// `binary` (the standard) or `bcd` time labels.
    pub time: TimeCoding,
    /// The time zone of the time labels.
    pub tz: String,
    /// `sum` (the standard) or `xor`.
    pub checksum: Checksum,
    /// The checksum covers the start bytes too.
    pub checksum_from_start: bool,
    /// `number` (the standard) or `ip_port` addresses.
    pub address: AddressForm,
    /// Resolution per analog type (`{ "9" = 0.001 }`: current in mA steps).
    pub scales: BTreeMap<String, f64>,
}

impl Default for VendorConfig {
    fn default() -> Self {
        VendorConfig {
            time: TimeCoding::Binary,
            tz: "Asia/Shanghai".into(),
            checksum: Checksum::Sum,
            checksum_from_start: false,
            address: AddressForm::Number,
            scales: BTreeMap::new(),
        }
    }
}

impl VendorConfig {
    fn profile(&self) -> Result<Profile, String> {
        let tz = jiff::tz::TimeZone::get(&self.tz).map_err(|e| format!("tz: {e}"))?;
        let mut scales = Vec::new();
        for (k, v) in &self.scales {
            let t: u8 = k
                .parse()
                .map_err(|_| format!("scales: {k:?} is not an analog type 0–255"))?;
            if !v.is_finite() || *v <= 0.0 {
                return Err(format!("scales: {k} = {v} is not a positive number"));
            }
            scales.push((t, *v));
        }
        Ok(Profile {
            time: self.time,
            tz,
            checksum: self.checksum,
            checksum_from_start: self.checksum_from_start,
            address: self.address,
            scales,
        })
    }
}

impl GbConfig {
    /// Every problem of the `[gb26875]` settings.
    pub fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if !self.listen.is_empty() && self.listen.parse::<SocketAddr>().is_err() {
            p.push(Problem::new(
                "gb26875.listen",
                format!("{:?} is not host:port", self.listen),
            ));
        }
        if self.address >= 1 << 48 {
            p.push(Problem::new("gb26875.address", "must be below 2^48"));
        }
        if self.idle_s == 0 {
            p.push(Problem::new("gb26875.idle_s", "must be at least 1"));
        }
        if !(1..=10).contains(&self.resend_s) {
            p.push(Problem::new(
                "gb26875.resend_s",
                "must be 1–10 (the standard: at most 10 s)",
            ));
        }
        if self.max_frames_per_s == 0 {
            p.push(Problem::new(
                "gb26875.max_frames_per_s",
                "must be at least 1",
            ));
        }
        if self.default_vendor != "standard" && !self.vendor.contains_key(&self.default_vendor) {
            p.push(Problem::new(
                "gb26875.default_vendor",
                format!("{:?} is not a [gb26875.vendor.*]", self.default_vendor),
            ));
        }
        for (name, v) in &self.vendor {
            if let Err(e) = v.profile() {
                p.push(Problem::new(format!("gb26875.vendor.{name}"), e));
            }
        }
        p
    }

    /// The profiles by vendor name, `standard` among them.
    fn profiles(&self) -> BTreeMap<String, Arc<Profile>> {
        let mut out: BTreeMap<String, Arc<Profile>> = self
            .vendor
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), Arc::new(v.profile().ok()?))))
            .collect();
        out.entry("standard".into())
            .or_insert_with(|| Arc::new(Profile::default()));
        out
    }
}

/// The transmitters connected now, each with a way to hand its connection a command (a duty
/// check) from the command outbox. Shared with the command publisher, which sends the
/// commands of these devices here instead of over MQTT.
#[derive(Debug, Default)]
pub struct GbLinks {
    links: std::sync::Mutex<
        std::collections::HashMap<String, (u64, tokio::sync::mpsc::UnboundedSender<StoredCommand>)>,
    >,
    next: AtomicU64,
}

impl GbLinks {
    /// Hands `c` to its device's connection; `false` when the device is not connected here.
    pub fn send(&self, c: &StoredCommand) -> bool {
        let links = self
            .links
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        links
            .get(&c.device)
            .is_some_and(|(_, tx)| tx.send(c.clone()).is_ok())
    }

    fn open(&self, device: &str) -> (u64, tokio::sync::mpsc::UnboundedReceiver<StoredCommand>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let n = self.next.fetch_add(1, Relaxed);
        self.links
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(device.to_owned(), (n, tx));
        (n, rx)
    }

    fn close(&self, device: &str, n: u64) {
        let mut links = self
            .links
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if links.get(device).is_some_and(|(m, _)| *m == n) {
            links.remove(device);
        }
    }
}

/// What every connection shares.
struct Shared {
    cfg: GbConfig,
    profiles: BTreeMap<String, Arc<Profile>>,
    inputs: Inputs,
    registry: Arc<Live>,
    metrics: Arc<Metrics>,
    clock: SharedClock,
    arrivals: AtomicU64,
    links: Arc<GbLinks>,
}

/// Runs the listener until `token` is cancelled (nothing when `listen` is empty).
pub async fn run(
    cfg: GbConfig,
    inputs: Inputs,
    registry: Arc<Live>,
    metrics: Arc<Metrics>,
    clock: SharedClock,
    links: Arc<GbLinks>,
    token: CancellationToken,
) -> anyhow::Result<()> {
    if cfg.listen.is_empty() {
        token.cancelled().await;
        return Ok(());
    }
    let listener = TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| anyhow::anyhow!("gb26875.listen {}: {e}", cfg.listen))?;
    tracing::info!(listen = %listener.local_addr()?, "GB/T 26875.3 gateway listening.");
    serve(
        listener, cfg, inputs, registry, metrics, clock, links, token,
    )
    .await
}

/// Serves connections from `listener` until `token` is cancelled.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    listener: TcpListener,
    cfg: GbConfig,
    inputs: Inputs,
    registry: Arc<Live>,
    metrics: Arc<Metrics>,
    clock: SharedClock,
    links: Arc<GbLinks>,
    token: CancellationToken,
) -> anyhow::Result<()> {
    let shared = Arc::new(Shared {
        profiles: cfg.profiles(),
        cfg,
        inputs,
        registry,
        metrics,
        clock,
        arrivals: AtomicU64::new(0),
        links,
    });
    let tasks = tokio_util::task::TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = token.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "GB/T 26875.3 accept failed.");
                    continue;
                }
            },
        };
        let m = &shared.metrics.gb;
        if m.connections.load(Relaxed) as usize >= shared.cfg.max_connections {
            m.refused.fetch_add(1, Relaxed);
            drop(stream);
            continue;
        }
        m.accepted.fetch_add(1, Relaxed);
        m.connections.fetch_add(1, Relaxed);
        let (s, t) = (Arc::clone(&shared), token.clone());
        tasks.spawn(async move {
            let end = connection(&s, stream, peer, &t).await;
            s.metrics.gb.connections.fetch_sub(1, Relaxed);
            match end {
                Ok(why) => tracing::info!(%peer, why, "GB/T 26875.3 connection closed."),
                Err(e) => tracing::info!(%peer, error = %e, "GB/T 26875.3 connection lost."),
            }
        });
    }
    // No more connections queue on a listener nobody accepts from.
    drop(listener);
    tasks.close();
    tasks.wait().await;
    Ok(())
}

/// The transmitter behind a connection, once its first valid frame named it.
#[derive(Debug, Clone)]
struct Device {
    id: String,
    building: String,
    profile: Arc<Profile>,
}

impl Shared {
    /// The device at `address`, with its profile; `None` when it must be refused.
    fn device(&self, address: &Address) -> Option<Device> {
        let reg = self.registry.get();
        // (`default_vendor` is validated to name a profile; the standard one otherwise.)
        let standard = || {
            self.profiles
                .get(self.cfg.default_vendor.as_str())
                .map_or_else(|| Arc::new(Profile::default()), Arc::clone)
        };
        match reg.device_at(&address.0) {
            Some(d) => Some(Device {
                id: d.id.clone(),
                building: d.building.clone(),
                profile: d
                    .vendor
                    .as_deref()
                    .and_then(|v| self.profiles.get(v))
                    .map_or_else(standard, Arc::clone),
            }),
            None if self.cfg.strict => None,
            None => {
                let profile = standard();
                Some(Device {
                    id: format!(
                        "gb-{}",
                        address.text(profile.address).replace(['.', ':'], "-")
                    ),
                    building: "unassigned".into(),
                    profile,
                })
            }
        }
    }

    /// Queues `payload` for the device's `suffix` topic; the receiver is told on commit.
    fn publish(
        &self,
        d: &Device,
        suffix: &str,
        payload: &serde_json::Value,
        received: i64,
    ) -> Option<oneshot::Receiver<()>> {
        let (tx, rx) = oneshot::channel();
        let input = Incoming {
            topic: format!("fw/v1/{}/transmitter/{}/{suffix}", d.building, d.id),
            payload: bytes::Bytes::from(payload.to_string()),
            retained: false,
            dup: false,
            received,
            at: Instant::now(),
            ack: None,
            committed: Some(tx),
            arrival: self.arrivals.fetch_add(1, Relaxed),
        };
        self.metrics.queue_depth.fetch_add(1, Relaxed);
        self.inputs.publish(input).ok().map(|()| rx)
    }
}

/// One connection until it closes; returns why it was closed.
async fn connection(
    s: &Shared,
    mut stream: TcpStream,
    peer: SocketAddr,
    token: &CancellationToken,
) -> std::io::Result<&'static str> {
    let _ = stream.set_nodelay(true);
    let m = &s.metrics.gb;
    let idle_ms = i64::try_from(s.cfg.idle_s.saturating_mul(1000)).unwrap_or(i64::MAX);
    let mut decoder = Decoder::new();
    let mut mapper = Mapper::new();
    let mut device: Option<Device> = None;
    let mut buf = vec![0u8; 4096];
    let mut window = (Instant::now(), 0u32);
    let budget = s.cfg.max_frames_per_s.saturating_mul(10);
    let centre = Address::number(s.cfg.address);
    let mut last_frame = s.clock.now_ms();
    let mut outbox = Outbox::default();
    let mut audit = Audit {
        on: s.cfg.frames_keep_days > 0,
        peer: peer.to_string(),
        records: Vec::new(),
    };
    // Commands of the command outbox for this transmitter, once it is known; the reference
    // of the last duty check it confirmed, for its answer.
    let mut link: Option<(u64, tokio::sync::mpsc::UnboundedReceiver<StoredCommand>)> = None;
    let mut duty_ref: Option<String> = None;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let result = loop {
        let mut out: Vec<u8> = Vec::new();
        let n = tokio::select! {
            () = token.cancelled() => break Ok("shutdown"),
            Some(c) = async {
                match &mut link {
                    Some((_, rx)) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                outbox.duty_check(&c, s.clock.now_ms());
                continue;
            }
            _ = tick.tick() => {
                let now = s.clock.now_ms();
                if now - last_frame >= idle_ms {
                    m.closed_idle.fetch_add(1, Relaxed);
                    break Ok("idle");
                }
                if let Some(d) = &device {
                    match outbox.due(&s.cfg, now) {
                        Due::Send(f, again) => {
                            if again {
                                m.commands_resent.fetch_add(1, Relaxed);
                            } else {
                                m.commands_sent.fetch_add(1, Relaxed);
                            }
                            let b = stamp(f, &d.profile, now).encode(&d.profile);
                            audit.add(now, Some(d), "out", &b, Some(if again { "sent again" } else { "command" }.into()));
                            out.extend(b);
                        }
                        Due::GaveUp(f, tag) => {
                            m.commands_failed.fetch_add(1, Relaxed);
                            if let Some(t) = tag {
                                // The command outbox tries again later (or gives up itself).
                                let _ = s.inputs.send(Input::CommandAttempt {
                                    id: t.id,
                                    at: now,
                                    error: format!("not confirmed by the transmitter over GB/T 26875.3 ({} tries)", s.cfg.retries + 1),
                                    give_up: false,
                                });
                            }
                            audit.add(now, Some(d), "out", &[], Some(format!("given up: {f}")));
                            tracing::warn!(%peer, device = %d.id, frame = %f, "GB/T 26875.3 command unanswered; given up.");
                        }
                        Due::Nothing => {}
                    }
                }
                audit.flush(&s.inputs);
                if !out.is_empty() {
                    if let Err(e) = stream.write_all(&out).await {
                        break Err(e);
                    }
                }
                continue;
            }
            r = stream.read(&mut buf) => match r {
                Ok(0) => break Ok("closed by the device"),
                Ok(n) => n,
                Err(e) => break Err(e),
            },
        };
        let before = decoder.garbage();
        decoder.push(&buf[..n]);
        let mut stop = None;
        while let Some(chunk) = decoder.next_chunk() {
            if window.0.elapsed() >= Duration::from_secs(10) {
                window = (Instant::now(), 0);
            }
            window.1 += 1;
            if window.1 > budget {
                m.closed_flood.fetch_add(1, Relaxed);
                stop = Some("flood");
                break;
            }
            let raw = match chunk {
                Chunk::Frame(raw) => raw,
                Chunk::TooLong { serial, len } => {
                    tracing::debug!(%peer, serial, len, "GB/T 26875.3 frame over 1024 bytes denied.");
                    m.denied.fetch_add(1, Relaxed);
                    let p = device
                        .as_ref()
                        .map_or_else(Profile::default, |d| (*d.profile).clone());
                    let now = s.clock.now_ms();
                    let deny = deny_serial(serial, centre, &p, now);
                    let why = format!("ADU length {len} over 1024, serial {serial}");
                    audit.add(now, device.as_ref(), "in", &[], Some(why));
                    audit.add(now, device.as_ref(), "out", &deny, None);
                    out.extend(deny);
                    continue;
                }
            };
            if device.is_none() {
                let Some(src) = frame::source_of(&raw) else {
                    continue;
                };
                match s.device(&src) {
                    Some(d) => {
                        tracing::info!(%peer, device = %d.id, building = %d.building, "GB/T 26875.3 transmitter connected.");
                        outbox.start(&s.cfg, centre, src, s.clock.now_ms());
                        link = Some(s.links.open(&d.id));
                        device = Some(d);
                    }
                    None => {
                        m.refused.fetch_add(1, Relaxed);
                        tracing::warn!(%peer, address = %src.text(AddressForm::Number), "GB/T 26875.3 transmitter refused: its address is not in the registry (gb26875.strict).");
                        stop = Some("unknown address");
                        break;
                    }
                }
            }
            let Some(d) = device.as_ref() else { continue };
            let now = s.clock.now_ms();
            let f = match Frame::decode(&raw, &d.profile) {
                Ok(f) => f,
                Err(e) => {
                    tracing::debug!(%peer, device = %d.id, error = %e, "GB/T 26875.3 frame denied.");
                    m.denied.fetch_add(1, Relaxed);
                    let serial = frame::serial_of(&raw).unwrap_or(0);
                    let deny = deny_serial(serial, centre, &d.profile, now);
                    audit.add(now, Some(d), "in", &raw, Some(e.to_string()));
                    audit.add(now, Some(d), "out", &deny, None);
                    out.extend(deny);
                    continue;
                }
            };
            audit.add(now, Some(d), "in", &raw, None);
            m.frames.fetch_add(1, Relaxed);
            last_frame = now;
            let label = TimeLabel::at(now, &d.profile);
            match f.command {
                Command::Send => {}
                Command::Confirm | Command::Deny => {
                    if let Some(t) = outbox.answered(f.serial, f.command == Command::Confirm) {
                        // The duty check reached the control room: published, its answer
                        // carries its reference.
                        let _ = s.inputs.send(Input::CommandPublished { id: t.id, at: now });
                        duty_ref = Some(t.reference);
                    }
                    continue;
                }
                Command::Response => {
                    outbox.answered(f.serial, true);
                }
                // Requests and controls are the centre's to send.
                _ => {
                    m.denied.fetch_add(1, Relaxed);
                    let deny = f.answer(Command::Deny, label).encode(&d.profile);
                    audit.add(
                        now,
                        Some(d),
                        "out",
                        &deny,
                        Some("not the device's command".into()),
                    );
                    out.extend(deny);
                    continue;
                }
            }
            let adu = match Adu::decode(&f.adu) {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(%peer, device = %d.id, error = %e, "GB/T 26875.3 ADU denied.");
                    m.denied.fetch_add(1, Relaxed);
                    if f.command == Command::Send {
                        let deny = f.answer(Command::Deny, label).encode(&d.profile);
                        audit.add(now, Some(d), "out", &deny, Some(e.to_string()));
                        out.extend(deny);
                    }
                    continue;
                }
            };
            let mut mapped = mapper.map(adu.as_ref(), &d.profile, now);
            for msg in &mut mapped.messages {
                if msg.payload["event"] == "duty_check_answer" {
                    if let Some(r) = &duty_ref {
                        msg.payload["ref"] = r.clone().into();
                    }
                }
            }
            m.clock_unset
                .fetch_add(u64::from(mapped.clock_unset), Relaxed);
            let mut waits = Vec::with_capacity(mapped.messages.len());
            for msg in &mapped.messages {
                match s.publish(d, msg.suffix, &msg.payload, now) {
                    Some(rx) => waits.push(rx),
                    None => {
                        stop = Some("shutdown");
                        break;
                    }
                }
            }
            if stop.is_some() {
                break;
            }
            // Confirm only what is committed: a failed batch drops the senders, and the
            // transmitter sends the frame again.
            let mut committed = true;
            for rx in waits {
                committed &= rx.await.is_ok();
            }
            if !committed {
                stop = Some("the pipeline stopped");
                break;
            }
            if f.command == Command::Send {
                m.confirmed.fetch_add(1, Relaxed);
                let confirm = f.answer(Command::Confirm, label).encode(&d.profile);
                audit.add(now, Some(d), "out", &confirm, None);
                out.extend(confirm);
            }
        }
        let garbage = decoder.garbage() - before;
        m.garbage_bytes.fetch_add(garbage, Relaxed);
        audit.flush(&s.inputs);
        if !out.is_empty() {
            if let Err(e) = stream.write_all(&out).await {
                break Err(e);
            }
        }
        if let Some(why) = stop {
            break Ok(why);
        }
        if decoder.garbage() > s.cfg.max_garbage_bytes {
            m.closed_garbage.fetch_add(1, Relaxed);
            break Ok("garbage");
        }
    };
    if let (Some(d), Some((n, _))) = (&device, &link) {
        s.links.close(&d.id, *n);
    }
    // The link is gone: the transmitter is offline now, not when its silence says so (not
    // when firewatch stops: it reconnects to the next one).
    if let (Some(d), false) = (&device, matches!(result, Ok("shutdown"))) {
        let offline = serde_json::json!({"online": false});
        if let Some(rx) = s.publish(d, "status", &offline, s.clock.now_ms()) {
            let _ = rx.await;
        }
    }
    result
}

/// The frames of one connection waiting to be recorded.
struct Audit {
    on: bool,
    peer: String,
    records: Vec<FrameRecord>,
}

impl Audit {
    fn add(
        &mut self,
        at: i64,
        device: Option<&Device>,
        direction: &'static str,
        raw: &[u8],
        note: Option<String>,
    ) {
        if self.on {
            self.records.push(FrameRecord {
                at,
                device: device.map(|d| d.id.clone()),
                peer: self.peer.clone(),
                direction,
                hex: hex::encode_upper(raw),
                note,
            });
        }
    }

    /// Hands what was recorded to the pipeline.
    fn flush(&mut self, inputs: &Inputs) {
        if !self.records.is_empty() {
            let _ = inputs.send(Input::GbFrames(std::mem::take(&mut self.records)));
        }
    }
}

/// How often a connection looks at its clock (idle, resends, clock sync, patrol).
const TICK: Duration = Duration::from_millis(200);

/// What firewatch sends a transmitter: one command at a time, answered or sent again
/// `retries` times `resend_s` apart (the standard: at most 10 s, 3 times).
#[derive(Debug, Default)]
struct Outbox {
    /// Ours, counted from 0 on each connection.
    serial: u16,
    centre: Address,
    device: Address,
    queue: std::collections::VecDeque<(Command, Adu, Option<Tag>)>,
    pending: Option<Pending>,
    next_sync: Option<i64>,
    next_patrol: Option<i64>,
}

/// A command of the command outbox (a duty check) being sent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tag {
    id: i64,
    reference: String,
}

#[derive(Debug)]
struct Pending {
    frame: Frame,
    tries: u32,
    sent: i64,
    tag: Option<Tag>,
}

/// What is due on a tick.
enum Due {
    /// Send this frame (again: a resend).
    Send(Frame, bool),
    /// This frame was never answered.
    GaveUp(Frame, Option<Tag>),
    Nothing,
}

impl Outbox {
    /// The transmitter is known: its clock is set now, its status read on the patrol.
    fn start(&mut self, cfg: &GbConfig, centre: Address, device: Address, now: i64) {
        self.centre = centre;
        self.device = device;
        self.next_sync = Some(now);
        self.next_patrol = (cfg.patrol_s > 0).then(|| now + secs(cfg.patrol_s));
    }

    /// A duty check of the command outbox, answered within its deadline.
    fn duty_check(&mut self, c: &StoredCommand, now: i64) {
        let minutes = ((c.deadline_at - now).max(0) + 59_999) / 60_000;
        let minutes = u8::try_from(minutes.clamp(1, 255)).unwrap_or(u8::MAX);
        let tag = Tag {
            id: c.id,
            reference: c.reference.clone(),
        };
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.tag.as_ref() == Some(&tag))
            || self.queue.iter().any(|q| q.2.as_ref() == Some(&tag))
        {
            return;
        }
        self.queue
            .push_back((Command::Control, Adu::DutyCheck(minutes), Some(tag)));
    }

    /// An answer with `serial`: the tag of the command it confirms, if it was one.
    fn answered(&mut self, serial: u16, ok: bool) -> Option<Tag> {
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.frame.serial == serial)
        {
            let p = self.pending.take()?;
            return p.tag.filter(|_| ok);
        }
        None
    }

    fn due(&mut self, cfg: &GbConfig, now: i64) -> Due {
        if let Some(at) = self.next_sync.filter(|at| *at <= now) {
            // The clock of the sync is taken when it is sent.
            self.queue
                .push_back((Command::Control, Adu::SyncClock(TimeLabel::default()), None));
            self.next_sync = (cfg.clock_sync_h > 0).then(|| at + secs(cfg.clock_sync_h * 3600));
        }
        if let Some(at) = self.next_patrol.filter(|at| *at <= now) {
            self.queue
                .push_back((Command::Request, Adu::ReadUitdStatus, None));
            self.next_patrol = Some(at + secs(cfg.patrol_s));
        }
        if let Some(p) = &mut self.pending {
            if now - p.sent < secs(cfg.resend_s) {
                return Due::Nothing;
            }
            if p.tries > cfg.retries {
                let p = self.pending.take();
                return p.map_or(Due::Nothing, |p| Due::GaveUp(p.frame, p.tag));
            }
            p.tries += 1;
            p.sent = now;
            return Due::Send(p.frame.clone(), true);
        }
        let Some((command, adu, tag)) = self.queue.pop_front() else {
            return Due::Nothing;
        };
        self.serial = self.serial.wrapping_add(1);
        let frame = Frame {
            serial: self.serial,
            version: [1, 1],
            // Set by `stamp` when sent, in the transmitter's coding.
            time: TimeLabel::default(),
            source: self.centre,
            destination: self.device,
            command,
            adu: adu.encode(),
        };
        self.pending = Some(Pending {
            frame: frame.clone(),
            tries: 1,
            sent: now,
            tag,
        });
        Due::Send(frame, false)
    }
}

/// `f` as sent at `now`: its time label, and for a clock sync the time to set, in the
/// transmitter's coding and zone.
fn stamp(mut f: Frame, p: &Profile, now: i64) -> Frame {
    let label = TimeLabel::at(now, p);
    f.time = label;
    if f.adu.first() == Some(&90) {
        f.adu = Adu::SyncClock(label).encode();
    }
    f
}

fn secs(s: u64) -> i64 {
    i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// A deny for a frame known only by its serial.
fn deny_serial(serial: u16, centre: Address, p: &Profile, now: i64) -> Vec<u8> {
    Frame {
        serial,
        version: [1, 0],
        time: TimeLabel::at(now, p),
        source: centre,
        destination: Address::default(),
        command: Command::Deny,
        adu: Vec::new(),
    }
    .encode(p)
}
