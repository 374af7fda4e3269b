//! The GB/T 26875.3 gateway over real TCP, on the manual clock and a private broker: a
//! transmitter sends the published sample fire alarm (garbage before it, cut in two), which is
//! confirmed only once its alert is committed, becomes an alert, an e-mail and an API record;
//! a bad checksum is denied with the serial echoed; a connection dropped mid-frame loses
//! nothing confirmed and the next connection goes on; after a firewatch restart the
//! transmitter reconnects and is heard. A connection that sends only garbage, or floods, or
//! falls silent, is closed and counted while another is served. An unknown address is listed
//! as a device of building `unassigned`, or refused in strict mode.

use crate::common::*;
use firewatch::clock::Clock;
use firewatch::ingest::gbt26875::adu::Adu;
use firewatch::ingest::gbt26875::frame::{Address, Command, Frame, Profile, TimeLabel};
use firewatch::ingest::gbt26875::stream::{Chunk, Decoder};
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(30);

fn ms(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

/// Sample frame 1 of the domain notes: a smoke detector's fire alarm at zone 10, point 2.
const FIRE: &str = "4040 0100 0101 203A091A090C 790300000000 385B01000000 3000 02 0201 01 01 28 0A000200 0200 202020202020202020202020202020202020202020202020202020202020 00 023A091A090C 46 2323";
/// Sample frame 4: the transmitter's main power fault.
const MAINS: &str =
    "4040 0100 0101 203A091A090C 790300000000 385B01000000 0900 02 1501 08 023A091A090C 42 2323";

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

/// A transmitter's end of a connection.
struct Line {
    c: TcpStream,
    d: Decoder,
}

impl Line {
    async fn open(port: u16) -> Line {
        Line {
            c: connect(port).await,
            d: Decoder::new(),
        }
    }

    async fn send(&mut self, b: &[u8]) {
        self.c.write_all(b).await.unwrap();
    }

    /// The next frame firewatch sends.
    async fn frame(&mut self) -> Frame {
        let mut buf = [0u8; 256];
        loop {
            if let Some(Chunk::Frame(b)) = self.d.next_chunk() {
                return Frame::decode(&b, &Profile::default()).unwrap();
            }
            let n = tokio::time::timeout(WAIT, self.c.read(&mut buf))
                .await
                .expect("a frame in time")
                .expect("the connection open");
            assert!(n > 0, "closed by firewatch");
            self.d.push(&buf[..n]);
        }
    }

    /// The next confirm or deny, and the commands firewatch sent before it.
    async fn answer(&mut self) -> (Frame, Vec<Frame>) {
        let mut commands = Vec::new();
        loop {
            let f = self.frame().await;
            match f.command {
                Command::Confirm | Command::Deny => return (f, commands),
                _ => commands.push(f),
            }
        }
    }
}

/// An upload (command 2) from the transmitter at `address` to the centre 88888, sent at `now`,
/// as bytes in the standard profile; an empty `adu` is a heartbeat.
fn upload(address: u64, serial: u16, now: i64, adu: Vec<u8>) -> Vec<u8> {
    let p = Profile::default();
    Frame {
        serial,
        version: [1, 1],
        time: TimeLabel::at(now, &p),
        source: Address::number(address),
        destination: Address::number(88888),
        command: Command::Send,
        adu,
    }
    .encode(&p)
}

/// Waits, with a bound, until the gateway closes `c` (what it still sends is read past).
async fn closed(c: &mut TcpStream) {
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(WAIT, c.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(_)) => continue,
            Err(_) => panic!("not closed in time"),
        }
    }
}

async fn connect(port: u16) -> TcpStream {
    wait_for("the gateway listening", WAIT, || async {
        TcpStream::connect(("127.0.0.1", port)).await.ok()
    })
    .await
}

async fn start(
    b: &str,
    port: u16,
    tweak: impl FnOnce(&mut firewatch::config::Config),
) -> (Mosquitto, InProcess) {
    let registry = format!(
        "[[building]]\nid = \"{b}\"\n\
         [[device]]\nid = \"uitd-{b}\"\nbuilding = \"{b}\"\nkind = \"transmitter\"\ngb_address = \"889\"\n"
    );
    let broker = Mosquitto::start();
    let mqtt = broker.url();
    let fw = InProcess::start_at(ms("2026-12-01T02:00:00Z"), &registry, move |c| {
        c.mqtt.url = mqtt;
        c.email.to = vec!["duty@gb.test".into()];
        c.gb26875.listen = format!("127.0.0.1:{port}");
        c.gb26875.address = 88888;
        tweak(c);
    })
    .await;
    (broker, fw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transmitter_over_tcp_raises_a_fire_alarm_confirmed_after_commit() {
    let b = unique("bgb");
    let dev = format!("uitd-{b}");
    let port = free_port();
    let (_broker, mut fw) = start(&b, port, |_| {}).await;
    let mut c = Line::open(port).await;

    // Garbage first, then the fire alarm in two pieces.
    let fire = hex(FIRE);
    c.send(b"\r\n\x00garbage@").await;
    c.send(&fire[..20]).await;
    c.c.flush().await.unwrap();
    c.send(&fire[20..]).await;
    let (a, _) = c.answer().await;
    assert_eq!(a.command, Command::Confirm);
    assert_eq!(a.serial, 1, "the serial echoed");
    assert_eq!(
        (a.source, a.destination),
        (Address::number(88888), Address::number(889))
    );
    // Confirmed after commit: the alert is there the moment the confirm is.
    let alerts = fw.alerts(&b).await;
    let alert = alerts
        .iter()
        .find(|a| a["rule"] == "transmitter.fire_alarm")
        .unwrap_or_else(|| panic!("no fire alarm at confirm time: {alerts:#?}"));
    assert_eq!(alert["device"], dev.as_str());
    assert_eq!(alert["channel"], "0A000200");
    assert_eq!(
        alert["started_at"], "2026-12-01T02:00:00.000Z",
        "the panel's 2012 clock is not believed"
    );
    let id = alert["id"].as_str().unwrap().to_owned();
    fw.wait_history(&id, "notified").await;
    let outbox = fw.store_dir().join("outbox");
    let mails: Vec<String> = std::fs::read_dir(&outbox)
        .unwrap()
        .flatten()
        .map(|e| mail_text(&std::fs::read_to_string(e.path()).unwrap()))
        .collect();
    assert!(mails.iter().any(|m| m.contains(&dev)), "{mails:#?}");
    assert_eq!(fw.metric("firewatch_gb_clock_unset_total").await, 1.0);
    assert_eq!(fw.metric("firewatch_gb_confirmed_total").await, 1.0);
    assert_eq!(
        fw.metric("firewatch_gb_garbage_bytes_total").await,
        11.0,
        "the 11 bytes before the frame"
    );

    // A bad checksum: denied, serial echoed, nothing recorded.
    let mut bad = hex(MAINS);
    let n = bad.len();
    bad[2] = 2;
    bad[n - 3] = bad[n - 3].wrapping_add(7);
    c.send(&bad).await;
    let (d, _) = c.answer().await;
    assert_eq!((d.command, d.serial), (Command::Deny, 2));
    assert_eq!(fw.metric("firewatch_gb_denied_total").await, 1.0);
    // Both ways, kept for audit: the fire alarm as sent, firewatch's confirm, the bad frame
    // with what was wrong, its deny.
    let frames = wait_for("the frames recorded", WAIT, || async {
        let v = fw
            .get(&format!("/api/v1/gb26875/frames?device={dev}&limit=1000"))
            .await;
        let v = v.as_array().unwrap().clone();
        v.iter()
            .any(|f| f["note"].as_str().is_some_and(|n| n.contains("checksum")))
            .then_some(v)
    })
    .await;
    let seen: Vec<(&str, &str)> = frames
        .iter()
        .rev()
        .filter(|f| f["note"].is_null() || f["direction"] == "in")
        .map(|f| (f["direction"].as_str().unwrap(), f["hex"].as_str().unwrap()))
        .collect();
    let fire_hex = FIRE.replace(' ', "");
    assert_eq!(seen[0], ("in", fire_hex.as_str()), "{frames:#?}");
    let confirm = seen[1];
    assert_eq!(confirm.0, "out");
    assert_eq!(&confirm.1[52..54], "03", "a confirm: {confirm:?}");
    assert_eq!(seen.iter().filter(|f| f.0 == "in").count(), 2, "{seen:?}");
    assert_eq!(
        frames[0]["direction"], "out",
        "the deny is the last: {frames:#?}"
    );

    // Dropped mid-frame: half a frame, then the line goes.
    let mains = hex(MAINS);
    c.send(&mains[..15]).await;
    drop(c);
    // The next connection sends it whole: confirmed and recorded, once.
    let mut c = Line::open(port).await;
    c.send(&mains).await;
    assert_eq!(c.answer().await.0.command, Command::Confirm);
    let mains_alert = fw
        .wait_alert(&b, "transmitter.mains_fault", &dev, |_| true, WAIT)
        .await;
    assert_eq!(mains_alert["active"], true);

    // firewatch restarts: the transmitter reconnects and its heartbeat is confirmed.
    drop(c);
    fw.restart().await;
    let mut c = Line::open(port).await;
    c.send(&upload(889, 3, fw.clock.now_ms(), Vec::new())).await;
    let (a, _) = c.answer().await;
    assert_eq!((a.command, a.serial), (Command::Confirm, 3));
    let d = fw.get(&format!("/api/v1/devices/{dev}")).await;
    assert_eq!(d["state"], "online", "{d}");
    let all = fw.alerts(&b).await;
    let fires: Vec<&Value> = all
        .iter()
        .filter(|a| a["rule"] == "transmitter.fire_alarm")
        .collect();
    assert_eq!(
        fires.len(),
        1,
        "one fire alarm, before and after the restart: {all:#?}"
    );
    // Past gb26875.frames_keep_days (30), the frames go.
    drop(c);
    fw.advance(31 * 86_400_000).await;
    fw.advance(11 * 60_000).await;
    wait_for("the old frames pruned", WAIT, || async {
        let v = fw
            .get(&format!("/api/v1/gb26875/frames?device={dev}"))
            .await;
        v.as_array().unwrap().is_empty().then_some(())
    })
    .await;
    fw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_floods_and_silence_close_a_connection_and_others_are_served() {
    let b = unique("bgbx");
    let port = free_port();
    let (_broker, fw) = start(&b, port, |c| {
        c.gb26875.max_garbage_bytes = 1000;
        c.gb26875.max_frames_per_s = 2;
        c.gb26875.idle_s = 2;
    })
    .await;

    // Only garbage: closed past 1000 bytes.
    let mut g = connect(port).await;
    let _ = g.write_all(&[0x55u8; 1500]).await;
    closed(&mut g).await;
    assert_eq!(
        fw.metric("firewatch_gb_closed_total{reason=\"garbage\"}")
            .await,
        1.0
    );

    // A flood: more than 2 frames a second over 10 s (20 frames) closes it.
    let mut f = connect(port).await;
    let fire = hex(FIRE);
    let mut flood = Vec::new();
    for _ in 0..25 {
        flood.extend(&fire);
    }
    let _ = f.write_all(&flood).await;
    closed(&mut f).await;
    assert_eq!(
        fw.metric("firewatch_gb_closed_total{reason=\"flood\"}")
            .await,
        1.0
    );

    // Meanwhile another connection is served.
    let mut ok = Line::open(port).await;
    ok.send(&hex(MAINS)).await;
    assert_eq!(ok.answer().await.0.command, Command::Confirm);
    // And then falls silent: closed after idle_s on firewatch's clock.
    fw.advance(3000).await;
    closed(&mut ok.c).await;
    assert_eq!(
        fw.metric("firewatch_gb_closed_total{reason=\"idle\"}")
            .await,
        1.0
    );
    fw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_centre_sets_the_clock_on_connect_resends_unanswered_and_patrols() {
    let b = unique("bgbc");
    let port = free_port();
    let (_broker, fw) = start(&b, port, |c| {
        c.gb26875.patrol_s = 600;
        c.gb26875.idle_s = 100_000;
    })
    .await;
    let p = Profile::default();
    let mut c = Line::open(port).await;
    c.send(&upload(889, 1, fw.clock.now_ms(), Vec::new())).await;
    // The clock sync, at once: firewatch's serial 1, the time now in China Standard Time.
    let mut sync = None;
    while sync.is_none() {
        let f = c.frame().await;
        if f.command == Command::Control {
            sync = Some(f);
        }
    }
    let sync = sync.unwrap();
    assert_eq!(sync.serial, 1);
    assert_eq!(
        (sync.source, sync.destination),
        (Address::number(88888), Address::number(889))
    );
    let now = fw.clock.now_ms();
    assert_eq!(
        Adu::decode(&sync.adu).unwrap(),
        Some(Adu::SyncClock(TimeLabel::at(now, &p)))
    );
    assert_eq!(
        TimeLabel::at(now, &p).0,
        [0, 0, 10, 1, 12, 26],
        "10:00 local on 2026-12-01"
    );
    // Not answered: sent again after resend_s (10 s), the same serial, the clock of then.
    fw.advance(10_000).await;
    let again = c.frame().await;
    assert_eq!((again.command, again.serial), (Command::Control, 1));
    assert_eq!(
        Adu::decode(&again.adu).unwrap(),
        Some(Adu::SyncClock(TimeLabel::at(now + 10_000, &p)))
    );
    assert_eq!(fw.metric("firewatch_gb_commands_resent_total").await, 1.0);
    // Confirmed now; on the patrol (600 s) the status is read, and the response is heard.
    c.send(&again.answer(Command::Confirm, again.time).encode(&p))
        .await;
    fw.advance(600_000).await;
    let read = c.frame().await;
    assert_eq!((read.command, read.serial), (Command::Request, 2));
    assert_eq!(Adu::decode(&read.adu).unwrap(), Some(Adu::ReadUitdStatus));
    let t = TimeLabel::at(fw.clock.now_ms(), &p);
    let mut response = read.answer(Command::Response, t);
    response.adu = Adu::UitdStatus(vec![(0x08, t)]).encode();
    c.send(&response.encode(&p)).await;
    let dev = format!("uitd-{b}");
    let mains = fw
        .wait_alert(&b, "transmitter.mains_fault", &dev, |_| true, WAIT)
        .await;
    assert_eq!(mains["active"], true);
    assert_eq!(fw.metric("firewatch_gb_commands_sent_total").await, 2.0);
    assert_eq!(fw.metric("firewatch_gb_commands_failed_total").await, 0.0);
    fw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duty_check_goes_out_as_type_91_and_the_answer_key_answers_it() {
    let b = unique("bgbd");
    let room = format!("cr-{b}");
    let port = free_port();
    let roster = format!(
        "[[person]]\nid = \"p1\"\nname = \"张伟\"\n\
         [[control_room]]\nid = \"{room}\"\nname = \"一号消防控制室\"\ntz = \"Asia/Shanghai\"\nbuildings = [\"{b}\"]\n\
         [[control_room.shift]]\nname = \"all\"\nstart = \"00:00\"\nend = \"00:00\"\npeople = [\"p1\"]\n\
         [control_room.duty_check]\ndeadline_s = 600\n"
    );
    let (_broker, fw) = start(&b, port, move |c| {
        let path = c.registry.file.parent().unwrap().join("duty.toml");
        std::fs::write(&path, roster).unwrap();
        c.duty.file = path;
    })
    .await;
    let p = Profile::default();
    let mut c = Line::open(port).await;
    c.send(&upload(889, 1, fw.clock.now_ms(), Vec::new())).await;
    let (a, _) = c.answer().await;
    assert_eq!(a.command, Command::Confirm);

    let (status, check) = fw
        .post(
            "/api/v1/duty/checks",
            serde_json::json!({"control_room": room, "by": "值班长 李"}),
        )
        .await;
    assert_eq!(status, 202, "{check}");
    assert_eq!(check["transmitters"][0]["device"], format!("uitd-{b}"));
    // The clock sync first (confirmed), then the duty check: 10 minutes to answer.
    let duty = loop {
        let f = c.frame().await;
        c.send(&f.answer(Command::Confirm, f.time).encode(&p)).await;
        if Adu::decode(&f.adu).unwrap() == Some(Adu::DutyCheck(10)) {
            break f;
        }
    };
    assert_eq!(duty.command, Command::Control);
    let command = format!(
        "/api/v1/commands/{}",
        check["transmitters"][0]["command"].as_str().unwrap()
    );
    wait_for(
        "the duty check confirmed by the transmitter",
        WAIT,
        || async { (fw.get(&command).await["status"] == "published").then_some(()) },
    )
    .await;
    // The operator presses the answer key 7 s later: type 24, bit 5.
    fw.advance(7000).await;
    let now = fw.clock.now_ms();
    let answer_key = Adu::UitdOperation(vec![firewatch::ingest::gbt26875::adu::Operation {
        system: None,
        flags: 0x20,
        operator: 1,
        time: TimeLabel::at(now, &p),
    }]);
    c.send(&upload(889, 2, now, answer_key.encode())).await;
    assert_eq!(c.answer().await.0.command, Command::Confirm);
    let answered = wait_for("the check answered", WAIT, || async {
        let v = fw
            .get(&format!("/api/v1/duty/checks?control_room={room}"))
            .await;
        let c = v.as_array().unwrap()[0].clone();
        (c["status"] == "answered").then_some(c)
    })
    .await;
    assert_eq!(
        answered["transmitters"][0]["answer_delay_ms"], 7000,
        "{answered}"
    );
    fw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_address_is_listed_or_in_strict_mode_refused() {
    let heartbeat = |address: u64, now: i64| upload(address, 1, now, Vec::new());
    // Open: confirmed, and listed as a device of building `unassigned`.
    let b = unique("bgbu");
    let port = free_port();
    let (_broker, fw) = start(&b, port, |_| {}).await;
    let mut c = Line::open(port).await;
    c.send(&heartbeat(777_001, fw.clock.now_ms())).await;
    assert_eq!(c.answer().await.0.command, Command::Confirm);
    let d = fw.get("/api/v1/devices/gb-777001").await;
    assert_eq!(
        (&d["building"], &d["kind"], &d["registered"]),
        (
            &Value::from("unassigned"),
            &Value::from("transmitter"),
            &Value::from(false)
        ),
        "{d}"
    );
    let listed = fw.get("/api/v1/devices?building=unassigned").await;
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["id"] == "gb-777001"),
        "{listed}"
    );
    fw.stop().await;

    // Strict: refused and counted; a registered transmitter is still heard.
    let b = unique("bgbs");
    let port = free_port();
    let (_broker, fw) = start(&b, port, |c| c.gb26875.strict = true).await;
    let mut c = Line::open(port).await;
    c.send(&heartbeat(777_002, fw.clock.now_ms())).await;
    closed(&mut c.c).await;
    assert_eq!(
        fw.metric("firewatch_gb_closed_total{reason=\"refused\"}")
            .await,
        1.0
    );
    let mut ok = Line::open(port).await;
    ok.send(&heartbeat(889, fw.clock.now_ms())).await;
    assert_eq!(ok.answer().await.0.command, Command::Confirm);
    fw.stop().await;
}
