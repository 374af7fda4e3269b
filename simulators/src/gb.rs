//! GB/T 26875.3 transmitters over TCP: `count` connections to firewatch's gateway, each
//! with its own address (`first_address` upwards), a heartbeat every `heartbeat_s` (spread
//! over the interval), firewatch's own commands (clock sync, patrol, duty checks) confirmed
//! as a device does, the duty check answered with the answer key; then `alarms` smoke-detector
//! fire alarms from connections picked in turn, each timed from the send until firewatch's
//! confirm (which comes only once the alarm's alert is committed). `--quirks` sends what some
//! panels do: descriptions with bytes after their NUL and object times from a clock never set.

use firewatch::ingest::gbt26875::adu::{Adu, Component, ComponentStatus, Operation, System};
use firewatch::ingest::gbt26875::frame::{Address, Command, Frame, Profile, TimeLabel};
use firewatch::ingest::gbt26875::stream::{Chunk, Decoder};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// Options of `firewatch-sim gb`.
#[derive(Debug, Clone, clap::Args)]
pub struct GbOptions {
    /// The gateway (`gb26875.listen`).
    #[arg(long, default_value = "127.0.0.1:5555")]
    pub connect: String,
    /// Transmitters (one connection each).
    #[arg(long, default_value_t = 100)]
    pub count: u64,
    /// The first transmitter's address (the others count up from it).
    #[arg(long, default_value_t = 10_000)]
    pub first_address: u64,
    /// The centre's address.
    #[arg(long, default_value_t = 0)]
    pub centre: u64,
    /// Seconds between heartbeats of one transmitter.
    #[arg(long, default_value_t = 30.0)]
    pub heartbeat_s: f64,
    /// Seconds to keep the connections with heartbeats before the alarms.
    #[arg(long, default_value_t = 60.0)]
    pub settle_s: f64,
    /// Fire alarms to time.
    #[arg(long, default_value_t = 200)]
    pub alarms: u64,
    /// Milliseconds between fire alarms.
    #[arg(long, default_value_t = 50)]
    pub interval_ms: u64,
    /// Send fire alarms with an object time from a panel clock never set (2000-01-01) and
    /// descriptions with bytes after their NUL.
    #[arg(long)]
    pub quirks: bool,
    /// What the timed uploads are, in turn: `fire` (a smoke detector's fire alarm), `fault`
    /// (a detector's fault), `power` (the transmitter's main power fault).
    #[arg(long, value_delimiter = ',', default_value = "fire")]
    pub events: Vec<Event>,
    /// Wait for this file to exist before the timed uploads (instead of only `--settle-s`).
    #[arg(long)]
    pub wait_file: Option<std::path::PathBuf>,
    /// Extra connections that flood while the uploads are timed: even ones send garbage as fast
    /// as they can, odd ones valid heartbeats without waiting for confirms; each reconnects
    /// when firewatch closes it.
    #[arg(long, default_value_t = 0)]
    pub flooders: u64,
    /// The first transmitter sends half of its first upload and drops the connection; it
    /// reconnects and sends the upload whole, as a device resends what was not confirmed.
    #[arg(long)]
    pub drop_mid_frame: bool,
}

/// A timed upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Event {
    /// A smoke detector's fire alarm.
    Fire,
    /// A detector's fault.
    Fault,
    /// The transmitter's main power fault.
    Power,
}

/// What a run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GbSummary {
    /// Connections that were established.
    pub connected: u64,
    /// Heartbeats sent and confirmed.
    pub heartbeats_sent: u64,
    /// Of them confirmed.
    pub heartbeats_confirmed: u64,
    /// Commands of firewatch's received and confirmed.
    pub commands: u64,
    /// Fire alarms timed.
    pub alarms: usize,
    /// Fire alarms never confirmed (within 30 s).
    pub unconfirmed: u64,
    /// Send → confirm, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Worst.
    pub max_ms: f64,
    /// Connections lost during the run (each reconnected).
    pub lost: u64,
    /// Bytes the flooders wrote.
    pub flood_bytes: u64,
    /// Times firewatch closed a flooder.
    pub flood_closed: u64,
}

#[derive(Default)]
struct Counts {
    connected: AtomicU64,
    heartbeats_sent: AtomicU64,
    heartbeats_confirmed: AtomicU64,
    commands: AtomicU64,
    lost: AtomicU64,
    flood_bytes: AtomicU64,
    flood_closed: AtomicU64,
}

/// A flooding connection (see `--flooders`) until `stop`.
async fn flooder(
    o: Arc<GbOptions>,
    k: u64,
    counts: Arc<Counts>,
    stop: tokio_util::sync::CancellationToken,
) {
    let p = Profile::default();
    let me = Address::number(o.first_address + o.count + k);
    let chunk: Vec<u8> = if k % 2 == 0 {
        (0..16 * 1024).map(|i| (i % 251) as u8 & 0x3F).collect()
    } else {
        let mut v = Vec::new();
        for serial in 0..300u16 {
            let f = Frame {
                serial,
                version: [1, 1],
                time: TimeLabel::at(wall_ms(), &p),
                source: me,
                destination: Address::number(o.centre),
                command: Command::Send,
                adu: Vec::new(),
            };
            v.extend(f.encode(&p));
        }
        v
    };
    while !stop.is_cancelled() {
        let Ok(mut c) = TcpStream::connect(&o.connect).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                r = c.write_all(&chunk) => {
                    if r.is_err() {
                        counts.flood_closed.fetch_add(1, Relaxed);
                        break;
                    }
                    counts.flood_bytes.fetch_add(chunk.len() as u64, Relaxed);
                }
            }
        }
    }
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// A fire alarm to send, with where to say when it was confirmed.
struct Alarm {
    zone: u16,
    event: Event,
    done: oneshot::Sender<Instant>,
}

fn upload(serial: u16, me: Address, centre: Address, a: &Alarm, quirks: bool) -> Frame {
    let p = Profile::default();
    let time = if quirks {
        TimeLabel([0, 0, 0, 1, 1, 0])
    } else {
        TimeLabel::at(wall_ms(), &p)
    };
    let zone = a.zone;
    let status = match a.event {
        Event::Fire => 0x0002,
        Event::Fault | Event::Power => 0x0004,
    };
    let mut adu = match a.event {
        Event::Power => Adu::UitdStatus(vec![(0x08, time)]),
        _ => Adu::ComponentStatus(vec![ComponentStatus {
            component: Component {
                system: System { kind: 1, addr: 1 },
                kind: 40,
                addr: u32::from(zone) | (1 << 16),
            },
            status,
            description: format!("{zone}F 烟感"),
            time,
        }]),
    }
    .encode();
    if quirks && a.event != Event::Power {
        // Bytes after the description's NUL, as some panels leave them.
        let end = 11 + 31;
        if let Some(tail) = adu.get_mut(end - 8..end) {
            tail.fill(b'x');
        }
    }
    Frame {
        serial,
        version: [1, 1],
        time: TimeLabel::at(wall_ms(), &p),
        source: me,
        destination: centre,
        command: Command::Send,
        adu,
    }
}

/// One transmitter's state across its connections: what it sent and was not confirmed yet is
/// sent again on the next connection, as a device does.
struct State {
    serial: u16,
    /// Unconfirmed uploads by serial: their bytes, and where to say when confirmed (none for
    /// a heartbeat or an answer key).
    waiting: std::collections::BTreeMap<u16, (Vec<u8>, Option<oneshot::Sender<Instant>>)>,
    /// The first upload goes out cut in half, then the line drops (`--drop_mid_frame`).
    drop_next: bool,
}

impl State {
    fn next(&mut self) -> u16 {
        self.serial = self.serial.wrapping_add(1);
        self.serial
    }
}

async fn transmitter(
    o: Arc<GbOptions>,
    n: u64,
    counts: Arc<Counts>,
    mut alarms: mpsc::UnboundedReceiver<Alarm>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut st = State {
        serial: 0,
        waiting: std::collections::BTreeMap::new(),
        drop_next: o.drop_mid_frame && n == 0,
    };
    let mut first = true;
    while !stop.is_cancelled() {
        let Ok(c) = TcpStream::connect(&o.connect).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if first {
            counts.connected.fetch_add(1, Relaxed);
            first = false;
        }
        if connection(&o, n, &counts, &mut alarms, &stop, c, &mut st).await {
            return;
        }
        counts.lost.fetch_add(1, Relaxed);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One connection; `true` when the run is over, `false` when the line was lost.
async fn connection(
    o: &GbOptions,
    n: u64,
    counts: &Counts,
    alarms: &mut mpsc::UnboundedReceiver<Alarm>,
    stop: &tokio_util::sync::CancellationToken,
    mut c: TcpStream,
    st: &mut State,
) -> bool {
    let _ = c.set_nodelay(true);
    let p = Profile::default();
    let me = Address::number(o.first_address + n);
    let centre = Address::number(o.centre);
    let mut d = Decoder::new();
    let mut buf = vec![0u8; 2048];
    // What was not confirmed on the last connection goes out again first.
    let again: Vec<u8> = st.waiting.values().flat_map(|w| w.0.clone()).collect();
    if !again.is_empty() && c.write_all(&again).await.is_err() {
        return false;
    }
    // Spread the heartbeats over the interval.
    let period = Duration::from_secs_f64(o.heartbeat_s.max(0.1));
    let offset = period.mul_f64((n as f64 * 0.618_034) % 1.0);
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
    loop {
        let mut out = Vec::new();
        tokio::select! {
            () = stop.cancelled() => return true,
            _ = beat.tick() => {
                let serial = st.next();
                let f = Frame { serial, version: [1, 1], time: TimeLabel::at(wall_ms(), &p),
                    source: me, destination: centre, command: Command::Send, adu: Vec::new() };
                let b = f.encode(&p);
                out.extend(&b);
                st.waiting.insert(serial, (b, None));
                counts.heartbeats_sent.fetch_add(1, Relaxed);
            }
            Some(a) = alarms.recv() => {
                let serial = st.next();
                let b = upload(serial, me, centre, &a, o.quirks).encode(&p);
                st.waiting.insert(serial, (b.clone(), Some(a.done)));
                if std::mem::take(&mut st.drop_next) {
                    // Half a frame, and the line goes.
                    let _ = c.write_all(&b[..b.len() / 2]).await;
                    return false;
                }
                out.extend(b);
            }
            r = c.read(&mut buf) => {
                let n = match r { Ok(0) | Err(_) => return false, Ok(n) => n };
                d.push(&buf[..n]);
                while let Some(Chunk::Frame(b)) = d.next_chunk() {
                    let Ok(f) = Frame::decode(&b, &p) else { continue };
                    match f.command {
                        Command::Confirm => match st.waiting.remove(&f.serial) {
                            Some((_, Some(done))) => { let _ = done.send(Instant::now()); }
                            Some((_, None)) => { counts.heartbeats_confirmed.fetch_add(1, Relaxed); }
                            None => {}
                        },
                        Command::Control | Command::Request => {
                            counts.commands.fetch_add(1, Relaxed);
                            let kind = f.adu.first().copied();
                            let now = TimeLabel::at(wall_ms(), &p);
                            if kind == Some(81) {
                                let mut r = f.answer(Command::Response, now);
                                r.adu = Adu::UitdStatus(vec![(0x01, now)]).encode();
                                out.extend(r.encode(&p));
                            } else {
                                out.extend(f.answer(Command::Confirm, now).encode(&p));
                            }
                            if kind == Some(91) {
                                // The operator presses the answer key.
                                let serial = st.next();
                                let key = Adu::UitdOperation(vec![Operation { system: None, flags: 0x20, operator: 1, time: now }]);
                                let f = Frame { serial, version: [1, 1], time: now,
                                    source: me, destination: centre, command: Command::Send, adu: key.encode() };
                                let b = f.encode(&p);
                                out.extend(&b);
                                st.waiting.insert(serial, (b, None));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        if !out.is_empty() && c.write_all(&out).await.is_err() {
            return false;
        }
    }
}

/// Runs the transmitters and times the alarms.
pub async fn run(o: GbOptions) -> anyhow::Result<GbSummary> {
    let o = Arc::new(o);
    let counts = Arc::new(Counts::default());
    let stop = tokio_util::sync::CancellationToken::new();
    let mut lines = Vec::new();
    let mut tasks = Vec::new();
    for n in 0..o.count {
        let (tx, rx) = mpsc::unbounded_channel();
        lines.push(tx);
        tasks.push(tokio::spawn(transmitter(
            Arc::clone(&o),
            n,
            Arc::clone(&counts),
            rx,
            stop.clone(),
        )));
        if n % 200 == 199 {
            // Do not flood the listen backlog.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    eprintln!(
        "firewatch-sim gb: {} transmitters connecting, heartbeats every {} s; settling {} s",
        o.count, o.heartbeat_s, o.settle_s
    );
    tokio::time::sleep(Duration::from_secs_f64(o.settle_s)).await;
    if let Some(f) = &o.wait_file {
        eprintln!("firewatch-sim gb: waiting for {}", f.display());
        while !f.exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let floods: Vec<_> = (0..o.flooders)
        .map(|k| {
            tokio::spawn(flooder(
                Arc::clone(&o),
                k,
                Arc::clone(&counts),
                stop.clone(),
            ))
        })
        .collect();
    let kinds = if o.events.is_empty() {
        vec![Event::Fire]
    } else {
        o.events.clone()
    };
    let mut waits = Vec::new();
    for i in 0..o.alarms {
        let line = &lines[(i * 7919 % o.count.max(1)) as usize];
        let (done, rx) = oneshot::channel();
        let zone = u16::try_from(i % 60_000).unwrap_or(0) + 1;
        let event = kinds[(i as usize) % kinds.len()];
        let sent = Instant::now();
        if line.send(Alarm { zone, event, done }).is_ok() {
            waits.push((sent, rx));
        }
        tokio::time::sleep(Duration::from_millis(o.interval_ms)).await;
    }
    let mut ms = Vec::new();
    let mut unconfirmed = 0;
    for (sent, rx) in waits {
        match tokio::time::timeout(Duration::from_secs(30), rx).await {
            Ok(Ok(at)) => ms.push(at.duration_since(sent).as_secs_f64() * 1000.0),
            _ => unconfirmed += 1,
        }
    }
    stop.cancel();
    for t in tasks.into_iter().chain(floods) {
        let _ = t.await;
    }
    ms.sort_by(f64::total_cmp);
    let pct = crate::latency::percentile;
    Ok(GbSummary {
        connected: counts.connected.load(Relaxed),
        heartbeats_sent: counts.heartbeats_sent.load(Relaxed),
        heartbeats_confirmed: counts.heartbeats_confirmed.load(Relaxed),
        commands: counts.commands.load(Relaxed),
        alarms: ms.len(),
        unconfirmed,
        p50_ms: pct(&ms, 50.0),
        p99_ms: pct(&ms, 99.0),
        max_ms: ms.last().copied().unwrap_or(f64::NAN),
        lost: counts.lost.load(Relaxed),
        flood_bytes: counts.flood_bytes.load(Relaxed),
        flood_closed: counts.flood_closed.load(Relaxed),
    })
}
