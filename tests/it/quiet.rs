//! Inhibition by topology and shielded points on the manual clock, through the real broker:
//! a gateway's offline alert holds back those of the devices behind it (registry `via`) until
//! it clears, when what is still offline is told; an alarm of a shielded point is recorded,
//! not told, and told when the point is unshielded, and listed as shielded meanwhile; a point
//! that fires and clears more than five times in half an hour is told once, then quiet until
//! stable for half an hour. Each test has a broker of its own, so the
//! counters it reads are its own.

use crate::common::{notified, steps, unique, Api, InProcess, Mosquitto, Publisher};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const SEC: i64 = 1000;

/// firewatch at `t0` on the manual clock, with `registry`, on a broker of its own, mailing
/// the duty address.
async fn own(t0: i64, registry: &str) -> (Mosquitto, InProcess) {
    let broker = Mosquitto::start();
    let mqtt = broker.url();
    let fw = InProcess::start_at(t0, registry, move |c| {
        c.mqtt.url = mqtt;
        c.email.to = vec!["duty@quiet.test".into()];
    })
    .await;
    (broker, fw)
}

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
    let (broker, fw) = own(t0, &registry).await;
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
    let (broker, fw) = own(ms("2026-12-01T06:00:00Z"), "").await;
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

    // The point is on the list of points shielded now, with the alarm it held back.
    fw.advance(120 * SEC).await;
    let list = fw.get(&format!("/api/v1/shielded?building={b}")).await;
    let rows = list["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{list:#}");
    let history = format!("/api/v1/alerts?device=tx-{b}&channel=3F");
    assert_eq!(
        (&rows[0]["device"], &rows[0]["channel"], &rows[0]["alarms"]),
        (&json!(tx), &json!("3F"), &json!(1)),
        "{list:#}"
    );
    assert_eq!(rows[0]["since"], "2026-12-01T06:00:00.000Z");
    assert_eq!(rows[0]["until"], Value::Null);
    assert_eq!(rows[0]["shielded_s"], 120);
    assert_eq!(rows[0]["history"], json!(history));
    let listed = fw.get(&history).await;
    assert_eq!(
        listed[0]["id"],
        json!(id),
        "the history link lists the point's alarm"
    );
    let csv = fw
        .get_text(&format!("/api/v1/shielded?building={b}&format=csv"))
        .await;
    assert_eq!(
        csv,
        format!(
            "building,device,channel,since,until,shielded_s,alarms,alert,history\r\n\
             {b},{tx},3F,2026-12-01T06:00:00.000Z,,120,1,,{history}\r\n"
        )
    );

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

    // Off the list now; the report of the day still has the shield, over.
    let list = fw.get(&format!("/api/v1/shielded?building={b}")).await;
    assert_eq!(list["rows"], json!([]), "{list:#}");
    let r = fw
        .get(&format!(
            "/api/v1/reports/shielded?building={b}&from=2026-12-01T00:00:00Z&until=2026-12-02T00:00:00Z"
        ))
        .await;
    let rows = r["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{r:#}");
    assert_eq!(rows[0]["until"], "2026-12-01T06:02:00.000Z");
    assert_eq!(rows[0]["shielded_s"], 120);
    // A window before the shield has none.
    let r = fw
        .get(&format!(
            "/api/v1/reports/shielded?building={b}&from=2026-11-30T00:00:00Z&until=2026-12-01T06:00:00Z"
        ))
        .await;
    assert_eq!(r["rows"], json!([]), "{r:#}");
    fw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_point_is_told_once_then_quiet_until_stable() {
    let b = unique("bflp");
    let tx = format!("tx-{b}");
    let (broker, fw) = own(ms("2026-12-01T06:00:00Z"), "").await;
    let mut p = Publisher::connect(&broker.url()).await;
    let topic = format!("fw/v1/{b}/transmitter/{tx}/event");
    let mut sent = 0;
    // One change a minute: well inside the 30-minute window of the default `[flapping]`.
    let mut change = async |p: &mut Publisher, state: &str| {
        let ev = json!({"event": "fire_alarm", "state": state, "zone": "2F"});
        p.publish(&topic, ev.to_string()).await;
        sent += 1;
        fw.wait_messages(&tx, sent).await;
        fw.advance(60 * SEC).await;
    };
    change(&mut p, "start").await;
    let a = fw
        .wait_alert(&b, "transmitter.fire_alarm", &tx, |_| true, WAIT)
        .await;
    let id = a["id"].as_str().unwrap().to_owned();
    // Acknowledged at once, so no reminder or escalation is told meanwhile.
    let (s, v) = fw
        .post(&format!("/api/v1/alerts/{id}/ack"), json!({"by": "王值班"}))
        .await;
    assert_eq!(s, 200, "{v}");
    // Four clears and re-fires (five fires): each told, as any alert's.
    for _ in 0..4 {
        change(&mut p, "end").await;
        change(&mut p, "start").await;
    }
    let told = |n: usize| {
        let mut v = vec!["fired".to_owned(), "acknowledged".to_owned()];
        for _ in 0..n {
            v.extend(["cleared".to_owned(), "refired".to_owned()]);
        }
        v
    };
    assert_eq!(notified(&fw, &id).await, told(4));
    assert!(!steps(&fw, &id).await.contains(&"flapping".to_owned()));
    // The sixth fire in the window marks it flapping, and is told (once).
    change(&mut p, "end").await;
    change(&mut p, "start").await;
    let full = fw.get(&format!("/api/v1/alerts/{id}")).await;
    assert_eq!(full["flapping"]["changes"], 6, "{:#}", full["flapping"]);
    assert_eq!(notified(&fw, &id).await, told(5));
    assert_eq!(fw.metric("firewatch_alerts_flapping_total").await, 1.0);
    // Two more clears and re-fires: recorded, told to nobody.
    for _ in 0..2 {
        change(&mut p, "end").await;
        change(&mut p, "start").await;
    }
    assert_eq!(notified(&fw, &id).await, told(5));
    let st = steps(&fw, &id).await;
    assert_eq!(st.iter().filter(|s| *s == "flapping").count(), 1, "{st:?}");
    assert_eq!(st.iter().filter(|s| *s == "refired").count(), 7, "{st:?}");
    assert_eq!(fw.metric("firewatch_alerts_flap_quiet_total").await, 4.0);
    // Stable for 30 minutes since the last change (one minute ago): still active, told so.
    fw.advance(28 * 60 * SEC).await;
    assert_eq!(notified(&fw, &id).await, told(5), "not stable yet");
    fw.advance(60 * SEC).await;
    crate::common::wait_for("the point stable", WAIT, || async {
        let st = steps(&fw, &id).await;
        (st.last().map(String::as_str) == Some("stable")).then_some(())
    })
    .await;
    let n = crate::common::wait_for("its state told", WAIT, || async {
        let n = notified(&fw, &id).await;
        (n.len() == told(5).len() + 1).then_some(n)
    })
    .await;
    assert_eq!(
        n.last().map(String::as_str),
        Some("refired"),
        "active: {n:?}"
    );
    let full = fw.get(&format!("/api/v1/alerts/{id}")).await;
    assert_eq!(full["flapping"], Value::Null);
    assert_eq!(full["active"], true);
    fw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transmitter_link_fault_folds_the_devices_behind_it_and_surfaces_what_is_still_wrong() {
    let b = unique("blnk");
    let tx = format!("tx-{b}");
    let monitors: Vec<String> = (1..=3).map(|i| format!("ef{i}-{b}")).collect();
    let mut registry = format!(
        "[[building]]\nid = \"{b}\"\n\
         [[device]]\nid = \"{tx}\"\nbuilding = \"{b}\"\nkind = \"transmitter\"\n"
    );
    for m in &monitors {
        registry.push_str(&format!(
            "[[device]]\nid = \"{m}\"\nbuilding = \"{b}\"\nkind = \"electrical\"\n\
             interval_s = 60\nvia = \"{tx}\"\n"
        ));
    }
    let (broker, fw) = own(ms("2026-12-01T06:00:00Z"), &registry).await;
    let mut p = Publisher::connect(&broker.url()).await;
    let online = json!({"online": true}).to_string();
    let status = |d: &str| {
        format!(
            "fw/v1/{b}/{}/{d}/status",
            if d == tx { "transmitter" } else { "electrical" }
        )
    };
    let event = format!("fw/v1/{b}/transmitter/{tx}/event");
    let mut tx_sent = 0;
    // Everything the transmitter sends, each waited for.
    let mut send = async |p: &mut Publisher, topic: &str, payload: String| {
        p.publish(topic, payload).await;
        tx_sent += 1;
        fw.wait_messages(&tx, tx_sent).await;
    };
    let (tx_status, link) = (status(&tx), |state: &str| {
        json!({"event": "link_fault", "state": state}).to_string()
    });
    send(&mut p, &tx_status, online.clone()).await;
    for m in &monitors {
        p.publish(&status(m), online.clone()).await;
        fw.wait_messages(m, 1).await;
    }
    // The panel link is lost: the transmitter stays online but hears nothing from the panel.
    send(&mut p, &event, link("start")).await;
    let l = fw
        .wait_alert(&b, "transmitter.link_fault", &tx, |_| true, WAIT)
        .await;
    let lid = l["id"].as_str().unwrap().to_owned();
    // The monitors behind it fall silent (3 × 60 s); the transmitter's heartbeat goes on.
    for _ in 0..2 {
        fw.advance(80 * SEC).await;
        send(&mut p, &tx_status, online.clone()).await;
    }
    fw.advance(80 * SEC).await;
    let mut ids = Vec::new();
    for m in &monitors {
        let a = fw.wait_alert(&b, "device.offline", m, |_| true, WAIT).await;
        assert_eq!(a["inhibited"]["by"], json!(lid), "{a}");
        ids.push(a["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        assert_eq!(steps(&fw, id).await, ["fired", "inhibited"]);
        assert_eq!(notified(&fw, id).await, Vec::<String>::new());
    }
    let l = fw.get(&format!("/api/v1/alerts/{lid}")).await;
    assert_eq!(
        l["inhibits"], 3,
        "one link-down alert stands for three: {l}"
    );
    assert_eq!(fw.metric("firewatch_alerts_inhibited_total").await, 3.0);

    // One monitor is back before the link; then the link is back.
    send(&mut p, &tx_status, online.clone()).await;
    p.publish(&status(&monitors[0]), online.clone()).await;
    fw.wait_messages(&monitors[0], 2).await;
    send(&mut p, &event, link("end")).await;
    fw.advance(SEC).await;
    for id in &ids[1..] {
        crate::common::wait_for("a monitor still offline told", WAIT, || async {
            (notified(&fw, id).await == ["fired"]).then_some(())
        })
        .await;
    }
    crate::common::wait_for("the monitor back released", WAIT, || async {
        let s = steps(&fw, &ids[0]).await;
        s.contains(&"released".to_owned()).then_some(())
    })
    .await;
    assert_eq!(
        notified(&fw, &ids[0]).await,
        Vec::<String>::new(),
        "back before the link: nothing to tell"
    );
    assert_eq!(fw.metric("firewatch_alerts_released_total").await, 3.0);
    fw.stop().await;
}
