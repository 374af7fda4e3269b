//! Data quality per device, from messages through the real broker on the manual clock: seq
//! gaps, a duplicate and a late arrival, a device clock off by an hour, a sensor stuck at one
//! value, a low battery and a weak signal — each visible in `GET /api/v1/devices/{id}`
//! (`quality`), the battery also as a minor alert.

#![allow(clippy::unwrap_used)]

mod common;

use common::{unique, Api, InProcess, Publisher};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const MIN: i64 = 60_000;

async fn device(fw: &InProcess, id: &str) -> Value {
    fw.get(&format!("/api/v1/devices/{id}")).await
}

fn findings(d: &Value) -> Vec<String> {
    d["quality"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quality_findings_follow_what_the_devices_send() {
    let b = unique("bqual");
    let fw = InProcess::start("").await;
    let mut p = Publisher::connect(&common::env("FW_TEST_MQTT_URL")).await;
    let (wp, ef) = (format!("wp-{b}"), format!("ef-{b}"));
    let tel = |d: &str, k: &str| format!("fw/v1/{b}/{k}/{d}/telemetry");
    let wp_t = tel(&wp, "water_pressure");

    // Seq 1, 2, 5: two lost; 5 again: a duplicate, rejected; 3 late: out of order.
    for seq in [1, 2, 5, 5, 3] {
        p.publish(
            &wp_t,
            json!({"seq": seq, "values": {"pressure_mpa": 0.30}}).to_string(),
        )
        .await;
    }
    fw.wait_messages(&wp, 4).await;
    let d = common::wait_for("four accepted, one duplicate", WAIT, || async {
        let d = device(&fw, &wp).await;
        (d["messages"] == 4 && d["rejected"] == 1).then_some(d)
    })
    .await;
    assert_eq!(d["lost"], 1, "3 filled its gap, 4 is still missing: {d}");
    let q = findings(&d);
    for f in ["gaps", "out_of_order", "loss_rate"] {
        assert!(q.contains(&f.to_owned()), "{f} missing: {d}");
    }
    assert!(!q.contains(&"clock_skew".to_owned()), "{d}");

    // A clock an hour behind.
    let behind = {
        use firewatch::clock::Clock;
        fw.clock.now_ms() - 60 * MIN
    };
    p.publish(
        &tel(&ef, "electrical"),
        json!({"ts": behind, "values": {"temperature_c": 31.0}}).to_string(),
    )
    .await;
    fw.wait_messages(&ef, 1).await;
    let d = common::wait_for("the skewed clock", WAIT, || async {
        let d = device(&fw, &ef).await;
        findings(&d).contains(&"clock_skew".to_owned()).then_some(d)
    })
    .await;
    assert_eq!(d["messages"], 1);

    // Stuck: 0.30 MPa unchanged for more than 48 announced intervals and 6 h.
    let wp_s = format!("fw/v1/{b}/water_pressure/{wp}/status");
    p.publish(&wp_s, json!({"interval_s": 300}).to_string())
        .await;
    fw.wait_messages(&wp, 5).await;
    for (i, seq) in (6..=10).enumerate() {
        fw.advance(90 * MIN).await;
        p.publish(
            &wp_t,
            json!({"seq": seq, "values": {"pressure_mpa": 0.30}}).to_string(),
        )
        .await;
        fw.wait_messages(&wp, 6 + i as u64).await;
    }
    let d = device(&fw, &wp).await;
    assert!(
        findings(&d).contains(&"stuck".to_owned()),
        "7.5 h unchanged: {d}"
    );
    p.publish(
        &wp_t,
        json!({"seq": 11, "values": {"pressure_mpa": 0.31}}).to_string(),
    )
    .await;
    common::wait_for("no longer stuck", WAIT, || async {
        let d = device(&fw, &wp).await;
        (!findings(&d).contains(&"stuck".to_owned())).then_some(())
    })
    .await;

    // A weak signal and a low battery: both findings, the battery also a minor alert.
    p.publish(
        &wp_s,
        json!({"battery_pct": 12, "rssi_dbm": -112}).to_string(),
    )
    .await;
    let a = fw
        .wait_alert(&b, "device.battery_low", &wp, |_| true, WAIT)
        .await;
    assert_eq!(a["severity"], "minor");
    let d = device(&fw, &wp).await;
    let q = findings(&d);
    assert!(
        q.contains(&"low_battery".to_owned()) && q.contains(&"weak_signal".to_owned()),
        "{d}"
    );
    fw.stop().await;
}
