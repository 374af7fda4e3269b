//! The nine published sample frames (domain notes, section 2.5) decode to what the notes
//! say; every ADU type and frames round-trip; the stream decoder finds every frame however
//! TCP cuts, glues or pollutes the stream.

use super::adu::*;
use super::frame::*;
use super::stream::{Chunk, Decoder};
use proptest::prelude::*;

/// The samples, spaces between fields as published.
const SAMPLES: [&str; 9] = [
    "4040 0100 0101 203A091A090C 790300000000 385B01000000 3000 02 0201 01 01 28 0A000200 0200 202020202020202020202020202020202020202020202020202020202020 00 023A091A090C 46 2323",
    "4040 0100 0101 233A091A090C 385B01000000 790300000000 0000 03 AB 2323",
    "4040 0100 0101 233A091A090C 385B01000000 790300000000 0000 06 AE 2323",
    "4040 0100 0101 203A091A090C 790300000000 385B01000000 0900 02 1501 08 023A091A090C 42 2323",
    "4040 0100 0101 203A091A090C 790300000000 385B01000000 0A00 02 1801 20 01 023A091A090C 5F 2323",
    "4040 0100 0101 203A091A090C 385B01000000 790300000000 0300 01 5B01 0A 0F 2323",
    "4040 0100 0101 203A091A090C 385B01000000 790300000000 0300 04 5101 00 FE 2323",
    "4040 0100 0101 203A091A090C 790300000000 385B01000000 0400 02 1901 0101 C7 2323",
    "4040 0100 0101 203A091A090C 790300000000 385B01000000 0800 02 1C01 023A091A090C 40 2323",
];

fn bytes(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

fn at(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

fn sample(i: usize) -> (Frame, Option<Adu>) {
    let p = Profile::default();
    let f = Frame::decode(&bytes(SAMPLES[i]), &p).unwrap();
    let adu = Adu::decode(&f.adu).unwrap();
    (f, adu)
}

const DEVICE: u64 = 889;
const CENTRE: u64 = 88888;
/// 2012-09-26 09:58:02 in China Standard Time.
const EVENT: &str = "2012-09-26T01:58:02Z";

#[test]
fn the_nine_sample_frames_decode_as_published() {
    let p = Profile::default();
    for (i, s) in SAMPLES.iter().enumerate() {
        let (f, _) = sample(i);
        assert_eq!(f.serial, 1, "sample {}", i + 1);
        assert_eq!(f.version, [1, 1]);
        assert_eq!(f.encode(&p), bytes(s), "sample {} encodes back", i + 1);
    }

    // 1. A smoke detector's fire alarm.
    let (f, adu) = sample(0);
    assert_eq!(f.time.millis(&p), Some(at("2012-09-26T01:58:32Z")));
    assert_eq!(
        (f.source, f.destination),
        (Address::number(DEVICE), Address::number(CENTRE))
    );
    assert_eq!(f.source.text(AddressForm::Number), "889");
    assert_eq!((f.command, f.adu.len()), (Command::Send, 48));
    let Some(Adu::ComponentStatus(v)) = adu else {
        panic!("{adu:?}")
    };
    assert_eq!(v.len(), 1);
    let c = &v[0];
    assert_eq!(c.component.system, System { kind: 1, addr: 1 });
    assert_eq!(c.component.kind, 40, "smoke detector");
    assert_eq!(c.component.addr, 0x0002_000A, "zone 10, point 2");
    assert_eq!(c.component.addr & 0xFFFF, 10);
    assert_eq!(c.component.addr >> 16, 2);
    assert_eq!(c.status, 0x0002, "bit 1: fire alarm");
    assert_eq!(c.description, " ".repeat(30));
    assert_eq!(c.time.millis(&p), Some(at(EVENT)));

    // 2. and 3. The centre's confirm and deny: serial echoed, addresses swapped, no ADU.
    for (i, cmd) in [(1, Command::Confirm), (2, Command::Deny)] {
        let (f, adu) = sample(i);
        assert_eq!(f.command, cmd);
        assert_eq!(adu, None);
        assert_eq!(f.source, Address::number(CENTRE));
        assert_eq!(f.time.millis(&p), Some(at("2012-09-26T01:58:35Z")));
        let (upload, _) = sample(0);
        assert_eq!(
            upload.answer(cmd, f.time),
            f,
            "the answer firewatch would give"
        );
    }

    // 4. Transmitter status: main power fault.
    let (_, adu) = sample(3);
    let Some(Adu::UitdStatus(v)) = adu else {
        panic!("{adu:?}")
    };
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].0, 0x08, "bit 3: main power fault");
    assert_eq!(v[0].1.millis(&p), Some(at(EVENT)));

    // 5. Transmitter operation: the duty-check answer by operator 1.
    let (_, adu) = sample(4);
    let Some(Adu::UitdOperation(v)) = adu else {
        panic!("{adu:?}")
    };
    assert_eq!((v[0].flags, v[0].operator, v[0].system), (0x20, 1, None));
    assert_eq!(v[0].time.millis(&p), Some(at(EVENT)));

    // 6. The centre's duty check, 10 minutes to answer.
    let (f, adu) = sample(5);
    assert_eq!(f.command, Command::Control);
    assert_eq!(f.source, Address::number(CENTRE));
    assert_eq!(adu, Some(Adu::DutyCheck(10)));

    // 7. Read the transmitter's status.
    let (f, adu) = sample(6);
    assert_eq!(f.command, Command::Request);
    assert_eq!(adu, Some(Adu::ReadUitdStatus));

    // 8. Transmitter software version 1.1.
    assert_eq!(sample(7).1, Some(Adu::UitdVersion(1, 1)));

    // 9. Transmitter time.
    let (_, adu) = sample(8);
    let Some(Adu::UitdTime(t)) = adu else {
        panic!("{adu:?}")
    };
    assert_eq!(t.millis(&p), Some(at(EVENT)));
}

#[test]
fn bad_frames_are_named() {
    let p = Profile::default();
    let good = bytes(SAMPLES[0]);
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 3] ^= 0xFF;
    assert!(matches!(
        Frame::decode(&bad, &p),
        Err(FrameError::Checksum { expected: 0x46, .. })
    ));
    let mut bad = good.clone();
    bad[n - 1] = b'#' + 1;
    assert_eq!(Frame::decode(&bad, &p), Err(FrameError::End));
    assert_eq!(Frame::decode(&good[..40], &p), Err(FrameError::Short(40)));
    let mut bad = good;
    bad[0] = 0;
    assert_eq!(Frame::decode(&bad, &p), Err(FrameError::Start));
    assert_eq!(Adu::decode(&[2]), Err(AduError::NoCount(1)));
    assert!(matches!(
        Adu::decode(&[2, 2, 1, 1]),
        Err(AduError::Short {
            kind: 2,
            count: 2,
            len: 2
        })
    ));
}

#[test]
fn vendor_profiles_bcd_times_xor_checksums_ip_addresses_and_scales() {
    let bcd = Profile {
        time: TimeCoding::Bcd,
        checksum: Checksum::Xor,
        checksum_from_start: true,
        address: AddressForm::IpPort,
        scales: vec![(9, 0.001)],
        ..Profile::default()
    };
    let t = TimeLabel::at(at(EVENT), &bcd);
    assert_eq!(t.0, [0x02, 0x58, 0x09, 0x26, 0x09, 0x12], "BCD fields");
    assert_eq!(t.millis(&bcd), Some(at(EVENT)));
    assert_eq!(
        t.millis(&Profile::default()),
        None,
        "0x58 minutes is no binary time"
    );
    let f = Frame {
        serial: 7,
        version: [2, 0],
        time: t,
        source: Address([192, 168, 1, 20, 0x88, 0x13]),
        destination: Address::number(CENTRE),
        command: Command::Send,
        adu: Vec::new(),
    };
    let b = f.encode(&bcd);
    let x = b[..HEADER].iter().fold(0u8, |a, c| a ^ c);
    assert_eq!(b[HEADER], x, "XOR from the start bytes");
    assert_eq!(Frame::decode(&b, &bcd), Ok(f.clone()), "version 2 accepted");
    assert!(Frame::decode(&b, &Profile::default()).is_err());
    assert_eq!(f.source.text(AddressForm::IpPort), "192.168.1.20:5000");
    assert_eq!(bcd.scale(9), 0.001);
    assert_eq!(Profile::default().scale(9), 0.1);
    assert_eq!(Profile::default().scale(2), 0.01);
    assert_eq!(Profile::default().scale(12), 1.0);
    assert_eq!(Profile::default().scale(200), 1.0);
    // A clock never set.
    assert_eq!(TimeLabel([0; 6]).millis(&Profile::default()), None);
}

#[test]
fn descriptions_end_at_a_nul_whatever_follows_and_are_gb18030() {
    let mut adu = Adu::ComponentStatus(vec![ComponentStatus {
        component: Component::default(),
        status: 2,
        description: "三层东侧烟感".into(),
        time: TimeLabel::default(),
    }])
    .encode();
    // Leftover bytes after the NUL, as some vendors send.
    // type, count, component (7), status (2), then the description: 12 bytes and a NUL.
    let d = 11 + 12;
    assert_eq!(adu[d], 0);
    adu[d + 1..11 + 31].fill(0x41);
    let Ok(Some(Adu::ComponentStatus(v))) = Adu::decode(&adu) else {
        panic!()
    };
    assert_eq!(v[0].description, "三层东侧烟感");
}

#[test]
fn the_stream_decoder_resynchronises_on_garbage_split_and_glued_frames() {
    let a = bytes(SAMPLES[0]);
    let b = bytes(SAMPLES[3]);
    let mut stream = b"\x00\xFFjunk@".to_vec();
    stream.extend(&a);
    stream.extend(b"@@\x01\x02"); // a false start
    stream.extend(&b);
    stream.extend(&b);
    let mut d = Decoder::new();
    let mut out = Vec::new();
    for piece in stream.chunks(5) {
        d.push(piece);
        while let Some(c) = d.next_chunk() {
            out.push(c);
        }
    }
    assert_eq!(
        out,
        [Chunk::Frame(a), Chunk::Frame(b.clone()), Chunk::Frame(b)]
    );
    assert_eq!(d.garbage(), 7 + 4);
    assert_eq!(d.buffered(), 0);

    // An announced ADU over 1024 bytes is skipped, with its serial to deny.
    let mut long = bytes(SAMPLES[1]);
    long[2] = 9;
    long[24..26].copy_from_slice(&2000u16.to_le_bytes());
    let mut d = Decoder::new();
    d.push(&long);
    assert_eq!(
        d.next_chunk(),
        Some(Chunk::TooLong {
            serial: 9,
            len: 2000
        })
    );
    assert_eq!(d.next_chunk(), None);
    assert!(d.buffered() <= 1, "{}", d.buffered());
}

fn time_label() -> impl Strategy<Value = TimeLabel> {
    any::<[u8; 6]>().prop_map(TimeLabel)
}

fn system() -> impl Strategy<Value = System> {
    (any::<u8>(), any::<u8>()).prop_map(|(kind, addr)| System { kind, addr })
}

fn component() -> impl Strategy<Value = Component> {
    (system(), any::<u8>(), any::<u32>()).prop_map(|(system, kind, addr)| Component {
        system,
        kind,
        addr,
    })
}

fn point() -> impl Strategy<Value = Point> {
    (system(), any::<u32>()).prop_map(|(system, addr)| Point { system, addr })
}

/// Text that encodes in 31 GB 18030 bytes without a NUL.
fn description() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 烟感三层东侧消防泵]{0,10}"
}

fn operation(with_system: bool) -> impl Strategy<Value = Operation> {
    (system(), any::<u8>(), any::<u8>(), time_label()).prop_map(
        move |(s, flags, operator, time)| Operation {
            system: with_system.then_some(s),
            flags,
            operator,
            time,
        },
    )
}

fn v<S: Strategy>(s: S) -> proptest::collection::VecStrategy<S> {
    proptest::collection::vec(s, 0..6)
}

fn adu() -> impl Strategy<Value = Adu> {
    prop_oneof![
        v((system(), any::<u16>(), time_label()).boxed()).prop_map(Adu::SystemStatus),
        v((component(), any::<u16>(), description(), time_label())
            .prop_map(|(component, status, description, time)| ComponentStatus {
                component,
                status,
                description,
                time
            })
            .boxed())
        .prop_map(Adu::ComponentStatus),
        v((component(), any::<u8>(), any::<i16>(), time_label())
            .prop_map(|(component, kind, raw, time)| Analog {
                component,
                kind,
                raw,
                time
            })
            .boxed())
        .prop_map(Adu::ComponentAnalog),
        v(operation(true).boxed()).prop_map(Adu::SystemOperation),
        v((system(), any::<u8>(), any::<u8>()).boxed()).prop_map(Adu::SystemVersion),
        v((system(), description()).boxed()).prop_map(Adu::SystemConfig),
        v((component(), description()).boxed()).prop_map(Adu::ComponentConfig),
        v((system(), time_label()).boxed()).prop_map(Adu::SystemTime),
        v((any::<u8>(), time_label()).boxed()).prop_map(Adu::UitdStatus),
        v(operation(false).boxed()).prop_map(Adu::UitdOperation),
        (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Adu::UitdVersion(a, b)),
        description().prop_map(Adu::UitdConfig),
        time_label().prop_map(Adu::UitdTime),
        v(system().boxed()).prop_map(Adu::ReadSystemStatus),
        v(point().boxed()).prop_map(Adu::ReadComponentStatus),
        v(point().boxed()).prop_map(Adu::ReadComponentAnalog),
        (system(), any::<u8>(), time_label())
            .prop_map(|(s, n, t)| Adu::ReadSystemOperations(s, n, t)),
        system().prop_map(Adu::ReadSystemVersion),
        v(system().boxed()).prop_map(Adu::ReadSystemConfig),
        v(point().boxed()).prop_map(Adu::ReadComponentConfig),
        system().prop_map(Adu::ReadSystemTime),
        Just(Adu::ReadUitdStatus),
        (any::<u8>(), time_label()).prop_map(|(n, t)| Adu::ReadUitdOperations(n, t)),
        Just(Adu::ReadUitdVersion),
        Just(Adu::ReadUitdConfig),
        Just(Adu::ReadUitdTime),
        Just(Adu::InitUitd),
        time_label().prop_map(Adu::SyncClock),
        any::<u8>().prop_map(Adu::DutyCheck),
        (129u8..=254, proptest::collection::vec(any::<u8>(), 1..40))
            .prop_map(|(k, b)| Adu::Other(k, b)),
    ]
}

fn profile() -> impl Strategy<Value = Profile> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(bcd, xor, from_start)| Profile {
        time: if bcd {
            TimeCoding::Bcd
        } else {
            TimeCoding::Binary
        },
        checksum: if xor { Checksum::Xor } else { Checksum::Sum },
        checksum_from_start: from_start,
        ..Profile::default()
    })
}

fn frame() -> impl Strategy<Value = Frame> {
    (
        any::<u16>(),
        any::<[u8; 2]>(),
        time_label(),
        any::<[u8; 6]>(),
        any::<[u8; 6]>(),
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..=MAX_ADU),
    )
        .prop_map(|(serial, version, time, s, d, c, adu)| Frame {
            serial,
            version,
            time,
            source: Address(s),
            destination: Address(d),
            command: Command::from_code(c),
            adu,
        })
}

proptest! {
    #[test]
    fn every_adu_type_round_trips(a in adu()) {
        let b = a.encode();
        prop_assert_eq!(Adu::decode(&b), Ok(Some(a)));
    }

    #[test]
    fn frames_round_trip_under_any_profile(f in frame(), p in profile()) {
        let b = f.encode(&p);
        prop_assert_eq!(b.len(), OVERHEAD + f.adu.len());
        prop_assert_eq!(Frame::decode(&b, &p), Ok(f));
    }

    #[test]
    fn times_round_trip_in_both_codings(
        secs in 946_684_800i64..4_102_444_799,
        p in profile(),
    ) {
        let ms = secs * 1000;
        prop_assert_eq!(TimeLabel::at(ms, &p).millis(&p), Some(ms));
    }

    #[test]
    fn the_stream_decoder_finds_every_frame_however_the_stream_is_cut(
        frames in proptest::collection::vec(frame(), 1..5),
        garbage in proptest::collection::vec(proptest::collection::vec(0u8..0x40, 0..20), 5),
        cut in 1usize..200,
    ) {
        let p = Profile::default();
        let mut stream = Vec::new();
        let mut want = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            stream.extend(&garbage[i % garbage.len()]);
            let b = f.encode(&p);
            stream.extend(&b);
            want.push(Chunk::Frame(b));
        }
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for piece in stream.chunks(cut) {
            d.push(piece);
            while let Some(c) = d.next_chunk() {
                got.push(c);
            }
        }
        prop_assert_eq!(got, want);
    }

    #[test]
    fn the_stream_decoder_never_panics_and_holds_little(
        data in proptest::collection::vec(any::<u8>(), 0..4000),
        cut in 1usize..600,
    ) {
        let mut d = Decoder::new();
        for piece in data.chunks(cut) {
            d.push(piece);
            while let Some(c) = d.next_chunk() {
                if let Chunk::Frame(b) = c {
                    let _ = Frame::decode(&b, &Profile::default())
                        .map(|f| Adu::decode(&f.adu));
                }
            }
            prop_assert!(d.buffered() <= OVERHEAD + MAX_ADU + cut);
        }
    }
}
