//! Silences and maintenance windows on the manual clock, through the real broker: an alert a
//! silence covers is recorded and marked, nobody is told and nothing escalates; when the
//! silence ends (its end, its weekly window's end, an early expiry) the alert is released,
//! and with `notify_on_exit` told then, once, also across a restart. Other buildings are not
//! touched.

use crate::common::{fire_alarm, notified, steps, unique, Api, InProcess, Publisher};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const SEC: i64 = 1000;
const MIN: i64 = 60 * SEC;

async fn start_at(at: i64) -> InProcess {
    InProcess::start_at(at, "", |c| c.email.to = vec!["duty@silence.test".into()]).await
}

async fn silence(fw: &InProcess, body: Value) -> String {
    let (s, v) = fw.post("/api/v1/silences", body).await;
    assert_eq!(s, 201, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

/// A manual alarm of transmitter `device` in `building`; returns the alert id.
async fn alarm(fw: &InProcess, building: &str, device: &str) -> String {
    let mut p = Publisher::connect(&crate::common::env("FW_TEST_MQTT_URL")).await;
    p.publish(
        &format!("fw/v1/{building}/transmitter/{device}/event"),
        json!({"event": "manual_alarm", "state": "start", "zone": "2F"}).to_string(),
    )
    .await;
    let a = fw
        .wait_alert(building, "transmitter.fire_alarm", device, |_| true, WAIT)
        .await;
    a["id"].as_str().unwrap().to_owned()
}

fn ms(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silenced_fire_alarm_is_recorded_untold_and_notified_once_when_the_silence_ends() {
    let (b, other) = (unique("bsil"), unique("bsilo"));
    let t0 = ms("2026-12-01T06:00:00Z");
    let mut fw = start_at(t0).await;
    let sid = silence(
        &fw,
        json!({"matchers": {"building": b}, "ends_at": "2026-12-01T07:00:00Z",
               "reason": "喷淋系统维保", "notify_on_exit": true}),
    )
    .await;

    let id = fire_alarm(&fw, &b).await;
    let a = fw.get(&format!("/api/v1/alerts/{id}")).await;
    assert_eq!(a["silenced"]["silence"], json!(sid), "{a}");
    assert_eq!(a["status"], "open");
    assert_eq!(notified(&fw, &id).await, Vec::<String>::new());
    assert_eq!(steps(&fw, &id).await, ["fired", "silenced"]);
    assert_eq!(fw.metric("firewatch_alerts_silenced_total").await, 1.0);
    let s = fw.get(&format!("/api/v1/silences/{sid}")).await;
    assert_eq!(
        (s["state"].as_str(), s["held"].as_i64()),
        (Some("active"), Some(1))
    );
    assert_eq!(s["by"], "bootstrap");

    // Another building is told as always.
    let elsewhere = fire_alarm(&fw, &other).await;
    assert_eq!(notified(&fw, &elsewhere).await, ["fired"]);

    // Nothing escalates while it is held back (the fire alarm's deadline is two minutes), and
    // a restart keeps the silence and the mark.
    fw.advance(10 * MIN).await;
    assert_eq!(steps(&fw, &id).await, ["fired", "silenced"]);
    fw.restart().await;
    fw.advance(SEC).await;
    assert_eq!(notified(&fw, &id).await, Vec::<String>::new());

    // The silence ends with the alarm still open and active: told now, once, and its
    // deadline counts from now.
    fw.advance(50 * MIN).await;
    assert_eq!(notified(&fw, &id).await, ["fired"]);
    assert_eq!(steps(&fw, &id).await, ["fired", "silenced", "unsilenced"]);
    let a = fw.get(&format!("/api/v1/alerts/{id}")).await;
    assert_eq!(a["silenced"], Value::Null);
    let h = a["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["what"] == "unsilenced")
        .unwrap()
        .clone();
    assert_eq!(h["detail"], json!({"silence": sid, "notified": true}));
    fw.advance(SEC).await;
    assert_eq!(steps(&fw, &id).await, ["fired", "silenced", "unsilenced"]);
    fw.advance(2 * MIN).await;
    assert_eq!(
        steps(&fw, &id).await,
        ["fired", "silenced", "unsilenced", "sla_missed", "escalated"]
    );
    assert_eq!(notified(&fw, &id).await, ["fired"]);
    let s = fw.get(&format!("/api/v1/silences/{sid}")).await;
    assert_eq!(
        (s["state"].as_str(), s["held"].as_i64()),
        (Some("expired"), Some(0))
    );
    fw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weekly_maintenance_window_holds_alarms_back_only_inside_it() {
    let b = unique("bwin");
    // Tuesday 1 December 2026, 09:30 in Shanghai.
    let mut fw = start_at(ms("2026-12-01T01:30:00Z")).await;
    let sid = silence(
        &fw,
        json!({"matchers": {"building": b, "rule": "transmitter.*"},
               "every": {"days": ["tue"], "from": "09:00", "to": "11:00"},
               "reason": "每月火灾自动报警系统测试"}),
    )
    .await;
    let s = fw.get(&format!("/api/v1/silences/{sid}")).await;
    assert_eq!(
        s["every"],
        json!({"days": ["tue"], "from": "09:00", "to": "11:00"})
    );
    assert_eq!(
        (s["tz"].as_str(), s["state"].as_str()),
        (Some("Asia/Shanghai"), Some("active"))
    );

    let first = alarm(&fw, &b, "tx-a").await;
    assert_eq!(steps(&fw, &first).await, ["fired", "silenced"]);

    // 11:00: the window closes; without notify_on_exit the alarm is released untold.
    fw.advance(90 * MIN).await;
    assert_eq!(
        steps(&fw, &first).await,
        ["fired", "silenced", "unsilenced"]
    );
    assert_eq!(notified(&fw, &first).await, Vec::<String>::new());
    let s = fw.get(&format!("/api/v1/silences/{sid}")).await;
    assert_eq!(s["state"], "waiting");
    // Outside the window an alarm is told.
    let second = alarm(&fw, &b, "tx-b").await;
    assert_eq!(notified(&fw, &second).await, ["fired"]);
    assert_eq!(steps(&fw, &second).await[0], "fired");

    // The next Tuesday at 09:10 the window holds again, also after a restart.
    fw.restart().await;
    fw.advance(7 * 24 * 60 * MIN - 110 * MIN).await;
    let third = alarm(&fw, &b, "tx-c").await;
    assert_eq!(steps(&fw, &third).await, ["fired", "silenced"]);
    assert_eq!(notified(&fw, &third).await, Vec::<String>::new());
    let active: Vec<Value> = fw
        .get("/api/v1/silences?state=active")
        .await
        .as_array()
        .cloned()
        .unwrap();
    assert!(active.iter().any(|s| s["id"] == json!(sid)));
    fw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_ended_early_releases_its_alarms_and_bad_requests_are_named() {
    let b = unique("bexp");
    let fw = start_at(ms("2026-12-01T06:00:00Z")).await;
    let sid = silence(
        &fw,
        json!({"matchers": {"building": b, "severity": "critical"}, "ends_at": "2026-12-02T06:00:00Z",
               "reason": "探测器更换", "notify_on_exit": true}),
    )
    .await;
    let id = fire_alarm(&fw, &b).await;
    assert_eq!(steps(&fw, &id).await, ["fired", "silenced"]);

    let (s, v) = fw
        .post(&format!("/api/v1/silences/{sid}/expire"), json!({}))
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("expired")), "{v}");
    assert_eq!(v["expired_by"], "bootstrap");
    fw.advance(SEC).await;
    assert_eq!(notified(&fw, &id).await, ["fired"]);
    assert_eq!(steps(&fw, &id).await, ["fired", "silenced", "unsilenced"]);

    let (s, v) = fw
        .post(&format!("/api/v1/silences/{sid}/expire"), json!({}))
        .await;
    assert_eq!(s, 409, "{v}");
    let (s, _) = fw.post("/api/v1/silences/s-999999/expire", json!({})).await;
    assert_eq!(s, 404);
    for (body, says) in [
        (
            json!({"reason": "x", "ends_at": "2026-12-02T00:00:00Z"}),
            "matchers",
        ),
        (
            json!({"matchers": {"floor": "3"}, "reason": "x", "ends_at": "2026-12-02T00:00:00Z"}),
            "matchers.floor",
        ),
        (
            json!({"matchers": {"building": b}, "reason": "x"}),
            "ends_at",
        ),
        (
            json!({"matchers": {"building": b}, "ends_at": "2026-12-02T00:00:00Z"}),
            "reason",
        ),
        (
            json!({"matchers": {"building": b}, "reason": "x", "ends_at": "2026-11-30T00:00:00Z"}),
            "ends_at",
        ),
    ] {
        let (s, v) = fw.post("/api/v1/silences", body.clone()).await;
        assert_eq!(s, 400, "{body} → {v}");
        assert!(
            v["error"].as_str().unwrap().starts_with(says),
            "{body} → {v}"
        );
    }
    let (s, v) = fw.post("/api/v1/silences?", json!([1])).await;
    assert_eq!(s, 400, "{v}");
    fw.stop().await;
}
