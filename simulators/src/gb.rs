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
    /// Connections lost during the run.
    pub lost: u64,
}

#[derive(Default)]
struct Counts {
    connected: AtomicU64,
    heartbeats_sent: AtomicU64,
    heartbeats_confirmed: AtomicU64,
    commands: AtomicU64,
    lost: AtomicU64,
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
    done: oneshot::Sender<Instant>,
}

fn fire(serial: u16, me: Address, centre: Address, zone: u16, quirks: bool) -> Frame {
    let p = Profile::default();
    let time = if quirks {
        TimeLabel([0, 0, 0, 1, 1, 0])
    } else {
        TimeLabel::at(wall_ms(), &p)
    };
    let mut adu = Adu::ComponentStatus(vec![ComponentStatus {
        component: Component {
            system: System { kind: 1, addr: 1 },
            kind: 40,
            addr: u32::from(zone) | (1 << 16),
        },
        status: 0x0002,
        description: format!("{zone}F 烟感"),
        time,
    }])
    .encode();
    if quirks {
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

async fn transmitter(
    o: Arc<GbOptions>,
    n: u64,
    counts: Arc<Counts>,
    mut alarms: mpsc::UnboundedReceiver<Alarm>,
    stop: tokio_util::sync::CancellationToken,
) {
    let Ok(mut c) = TcpStream::connect(&o.connect).await else {
        return;
    };
    let _ = c.set_nodelay(true);
    counts.connected.fetch_add(1, Relaxed);
    let p = Profile::default();
    let me = Address::number(o.first_address + n);
    let centre = Address::number(o.centre);
    let mut serial: u16 = 0;
    let mut d = Decoder::new();
    let mut buf = vec![0u8; 2048];
    // Spread the heartbeats over the interval.
    let period = Duration::from_secs_f64(o.heartbeat_s.max(0.1));
    let offset = period.mul_f64((n as f64 * 0.618_034) % 1.0);
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
    let mut waiting: std::collections::HashMap<u16, Option<oneshot::Sender<Instant>>> =
        std::collections::HashMap::new();
    loop {
        let mut out = Vec::new();
        tokio::select! {
            () = stop.cancelled() => return,
            _ = beat.tick() => {
                serial = serial.wrapping_add(1);
                let f = Frame { serial, version: [1, 1], time: TimeLabel::at(wall_ms(), &p),
                    source: me, destination: centre, command: Command::Send, adu: Vec::new() };
                out.extend(f.encode(&p));
                waiting.insert(serial, None);
                counts.heartbeats_sent.fetch_add(1, Relaxed);
            }
            Some(a) = alarms.recv() => {
                serial = serial.wrapping_add(1);
                out.extend(fire(serial, me, centre, a.zone, o.quirks).encode(&p));
                waiting.insert(serial, Some(a.done));
            }
            r = c.read(&mut buf) => {
                let n = match r { Ok(0) | Err(_) => { counts.lost.fetch_add(1, Relaxed); return; } Ok(n) => n };
                d.push(&buf[..n]);
                while let Some(Chunk::Frame(b)) = d.next_chunk() {
                    let Ok(f) = Frame::decode(&b, &p) else { continue };
                    match f.command {
                        Command::Confirm => match waiting.remove(&f.serial) {
                            Some(Some(done)) => { let _ = done.send(Instant::now()); }
                            Some(None) => { counts.heartbeats_confirmed.fetch_add(1, Relaxed); }
                            None => {}
                        },
                        Command::Control | Command::Request => {
                            counts.commands.fetch_add(1, Relaxed);
                            let kind = f.adu.first().copied();
                            if kind == Some(81) {
                                let mut r = f.answer(Command::Response, TimeLabel::at(wall_ms(), &p));
                                r.adu = Adu::UitdStatus(vec![(0x01, TimeLabel::at(wall_ms(), &p))]).encode();
                                out.extend(r.encode(&p));
                            } else {
                                out.extend(f.answer(Command::Confirm, TimeLabel::at(wall_ms(), &p)).encode(&p));
                            }
                            if kind == Some(91) {
                                // The operator presses the answer key.
                                serial = serial.wrapping_add(1);
                                let key = Adu::UitdOperation(vec![Operation { system: None, flags: 0x20, operator: 1, time: TimeLabel::at(wall_ms(), &p) }]);
                                let f = Frame { serial, version: [1, 1], time: TimeLabel::at(wall_ms(), &p),
                                    source: me, destination: centre, command: Command::Send, adu: key.encode() };
                                out.extend(f.encode(&p));
                                waiting.insert(serial, None);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        if !out.is_empty() && c.write_all(&out).await.is_err() {
            counts.lost.fetch_add(1, Relaxed);
            return;
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
    let mut waits = Vec::new();
    for i in 0..o.alarms {
        let line = &lines[(i * 7919 % o.count.max(1)) as usize];
        let (done, rx) = oneshot::channel();
        let zone = u16::try_from(i % 60_000).unwrap_or(0) + 1;
        let sent = Instant::now();
        if line.send(Alarm { zone, done }).is_ok() {
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
    for t in tasks {
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
    })
}
