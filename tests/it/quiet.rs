//! Inhibition by topology and shielded points on the manual clock, through the real broker:
//! a gateway's offline alert holds back those of the devices behind it (registry `via`) until
//! it clears, when what is still offline is told; an alarm of a shielded point is recorded,
//! not told, and told when the point is unshielded. Each test has a broker of its own, so the
//! counters it reads are its own.

use crate::common::{notified, steps, unique, Api, InProcess, Mosquitto, Publisher};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const SEC: i64 = 1000;

fn ms(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_offline_folds_the_offline_alerts_behind_it_and_releases_them_when_back() {
    let b = unique("binh");
    let (gw, wp) = (format!("gw-{b}"), format!("wp-{b}"));
    let registry = format!(
        "[[building]]\nid = \"{b}\"\n\
         [[device]]\nid = \"{gw}\"\nbuilding = \"{b}\"\nkind = \"transmitter\"\n\
         [[device]]\nid = \"{wp}\"\nbuilding = \"{b}\"\nkind = \"water_pressure\"\n\
         interval_s = 60\nvia = \"{gw}\"\n"
    );
    let t0 = ms("2026-12-01T06:00:00Z");
    let broker = Mosquitto::start();
    let mqtt = broker.url();
    let fw = InProcess::start_at(t0, &registry, move |c| {
        c.mqtt.url = mqtt;
        c.email.to = vec!["duty@quiet.test".into()]
    })
    .await;
    let mut p = Publisher::connect(&broker.url()).await;
    let online = json!({"online": true}).to_string();
    p.publish(
        &format!("fw/v1/{b}/transmitter/{gw}/status"),
        online.clone(),
    )
    .await;
    p.publish(
        &format!("fw/v1/{b}/water_pressure/{wp}/status"),
        online.clone(),
    )
    .await;
    fw.wait_messages(&gw, 1).await;
    fw.wait_messages(&wp, 1).await;

    // The gateway falls silent first (90 s), the pump-room monitor behind it later (3 × 60 s).
    fw.advance(100 * SEC).await;
    let g = fw
        .wait_alert(&b, "device.offline", &gw, |_| true, WAIT)
        .await;
    let gid = g["id"].as_str().unwrap().to_owned();
    fw.advance(100 * SEC).await;
    let d = fw
        .wait_alert(&b, "device.offline", &wp, |_| true, WAIT)
        .await;
    let did = d["id"].as_str().unwrap().to_owned();
    assert_eq!(d["inhibited"]["by"], json!(gid), "{d}");
    assert_eq!(d["inhibited"]["rule"], "link_down");
    assert_eq!(steps(&fw, &did).await, ["fired", "inhibited"]);
    assert_eq!(notified(&fw, &did).await, Vec::<String>::new());
    assert_eq!(notified(&fw, &gid).await, ["fired"]);
    let g = fw.get(&format!("/api/v1/alerts/{gid}")).await;
    assert_eq!(g["inhibits"], 1, "{g}");
    assert_eq!(fw.metric("firewatch_alerts_inhibited_total").await, 1.0);

    // The gateway is back; the monitor is still silent: released and told now, once.
    p.publish(
        &format!("fw/v1/{b}/transmitter/{gw}/status"),
        online.clone(),
    )
    .await;
    fw.wait_messages(&gw, 2).await;
    fw.advance(SEC).await;
    crate::common::wait_for("the monitor's alert released", WAIT, || async {
        let n = notified(&fw, &did).await;
        (n == ["fired"]).then_some(())
    })
    .await;
    assert_eq!(steps(&fw, &did).await, ["fired", "inhibited", "released"]);
    let d = fw.get(&format!("/api/v1/alerts/{did}")).await;
    assert_eq!(d["inhibited"], Value::Null);
    assert_eq!(d["active"], true);
    fw.advance(SEC).await;
    assert_eq!(notified(&fw, &did).await, ["fired"]);
    assert_eq!(fw.metric("firewatch_alerts_released_total").await, 1.0);
    fw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_of_a_shielded_point_is_recorded_and_told_when_the_point_is_unshielded() {
    let b = unique("bshd");
    let tx = format!("tx-{b}");
    let broker = Mosquitto::start();
    let mqtt = broker.url();
    let fw = InProcess::start_at(ms("2026-12-01T06:00:00Z"), "", move |c| {
        c.mqtt.url = mqtt;
        c.email.to = vec!["duty@quiet.test".into()]
    })
    .await;
    let mut p = Publisher::connect(&broker.url()).await;
    let topic = format!("fw/v1/{b}/transmitter/{tx}/event");
    let ev = |event: &str, state: &str, zone: &str| {
        json!({"event": event, "state": state, "zone": zone}).to_string()
    };
    p.publish(&topic, ev("shield", "start", "3F")).await;
    p.publish(&topic, ev("fire_alarm", "start", "3F")).await;
    // Another point of the same transmitter is told as always.
    p.publish(&topic, ev("fire_alarm", "start", "5F")).await;
    let a = fw
        .wait_alert(
            &b,
            "transmitter.fire_alarm",
            &tx,
            |a| a["channel"] == "3F",
            WAIT,
        )
        .await;
    let id = a["id"].as_str().unwrap().to_owned();
    let other = fw
        .wait_alert(
            &b,
            "transmitter.fire_alarm",
            &tx,
            |a| a["channel"] == "5F",
            WAIT,
        )
        .await;
    let other = other["id"].as_str().unwrap().to_owned();
    assert_eq!(a["shielded"]["point"], json!(format!("{tx}/3F")), "{a}");
    assert_eq!(steps(&fw, &id).await, ["fired", "shielded"]);
    assert_eq!(notified(&fw, &id).await, Vec::<String>::new());
    crate::common::wait_for("the other point told", WAIT, || async {
        (notified(&fw, &other).await == ["fired"]).then_some(())
    })
    .await;
    assert_eq!(fw.metric("firewatch_alerts_shielded_total").await, 1.0);

    // Unshielded with the alarm still on: told now.
    p.publish(&topic, ev("shield", "end", "3F")).await;
    fw.wait_messages(&tx, 4).await;
    fw.advance(SEC).await;
    crate::common::wait_for("the shielded alarm released", WAIT, || async {
        (notified(&fw, &id).await == ["fired"]).then_some(())
    })
    .await;
    assert_eq!(steps(&fw, &id).await, ["fired", "shielded", "released"]);
    let a = fw.get(&format!("/api/v1/alerts/{id}")).await;
    assert_eq!(a["shielded"], Value::Null);
    fw.stop().await;
}
