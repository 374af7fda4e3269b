//! The MQTT contract decoder on an arbitrary topic and payload: nothing panics, a rejection
//! says why, a `command` topic is ignored, and an accepted message carries the topic's building,
//! kind, device and class, a timestamp inside the accepted window and values inside the
//! physical range of their metric.
//!
//! Input: byte 0 is the topic length, byte 1 bit 0 the retained flag, then the topic (UTF-8,
//! invalid sequences replaced) and the payload (the rest).
#![no_main]

use firewatch::model::decode::{decode, parse_topic, Decoded};
use firewatch::model::{Body, Class, MAX_PAYLOAD};
use libfuzzer_sys::fuzz_target;

/// A fixed receive time (2026-11-29T09:30:00Z), so a run is reproducible.
const RECEIVED: i64 = 1_795_908_600_000;
/// The accepted `ts` window: from 2000-01-01 to 24 h after the receive time.
const MIN_TS: i64 = 946_684_800_000;
const MAX_FUTURE: i64 = 24 * 3600 * 1000;

fuzz_target!(|data: &[u8]| {
    let [len, flags, rest @ ..] = data else {
        return;
    };
    let (topic, payload) = rest.split_at(usize::from(*len).min(rest.len()));
    let topic = String::from_utf8_lossy(topic);
    let retained = flags & 1 == 1;
    match decode(&topic, payload, retained, RECEIVED) {
        Err(r) => assert!(
            !r.detail.is_empty(),
            "rejection {:?} without a detail",
            r.reason
        ),
        Ok(Decoded::Ignored) => {
            let t = parse_topic(&topic).expect("an ignored publish has a valid topic");
            assert_eq!(t.class, Class::Command);
        }
        Ok(Decoded::Message(m)) => {
            let t = parse_topic(&topic).expect("an accepted message has a valid topic");
            assert_eq!(m.building, t.building);
            assert_eq!(m.device, t.device);
            assert_eq!(m.kind, t.kind);
            assert_eq!(m.class(), t.class);
            assert_ne!(t.class, Class::Command);
            assert!(payload.len() <= MAX_PAYLOAD);
            assert_eq!(m.retained, retained);
            assert_eq!(m.received, RECEIVED);
            if m.has_ts {
                assert!(
                    (MIN_TS..=RECEIVED + MAX_FUTURE).contains(&m.ts),
                    "ts {}",
                    m.ts
                );
            } else {
                assert_eq!(m.ts, RECEIVED);
            }
            match &m.body {
                Body::Telemetry(samples) => {
                    for s in samples {
                        let spec = m
                            .kind
                            .metric(s.metric)
                            .expect("a sample's metric belongs to its kind");
                        assert!(s.value.is_finite());
                        assert!((spec.min..=spec.max).contains(&s.value), "{s:?}");
                    }
                }
                Body::Event(e) => {
                    assert!(m.kind.events().contains(&e.name.as_str()), "{e:?}");
                    if let Some(c) = e.confidence {
                        assert!((0.0..=1.0).contains(&c), "{e:?}");
                    }
                    for s in [&e.zone, &e.snapshot_url, &e.reference]
                        .into_iter()
                        .flatten()
                    {
                        assert!(s.len() <= 1024, "{e:?}");
                    }
                }
                Body::Status(_) => {}
            }
        }
    }
});
