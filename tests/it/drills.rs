//! Drills and tests of a building (演练 / 测试) on the manual clock, through a private broker:
//! an alert during one is recorded, marked and classified `test`, told to the control room on
//! duty only (not the integration webhook, no escalation); the drill report counts it and the
//! monthly simulated fire transmission is passed for that building and missed for another.

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const MIN: i64 = 60_000;

fn ms(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

fn registry(buildings: &[&str]) -> String {
    buildings
        .iter()
        .map(|b| {
            format!(
                "[[building]]\nid = \"{b}\"\n[[device]]\nid = \"tx-{b}\"\nbuilding = \"{b}\"\nkind = \"transmitter\"\n"
            )
        })
        .collect()
}

async fn alarm(broker: &Mosquitto, fw: &InProcess, b: &str) -> Value {
    let mut p = Publisher::connect(&broker.url()).await;
    p.publish(
        &format!("fw/v1/{b}/transmitter/tx-{b}/event"),
        json!({"event": "fire_alarm", "state": "start", "zone": "5F"}).to_string(),
    )
    .await;
    fw.wait_alert(
        b,
        "transmitter.fire_alarm",
        &format!("tx-{b}"),
        |_| true,
        WAIT,
    )
    .await
}

/// The notification rows of alert `id`.
async fn rows_of(fw: &InProcess, id: &str) -> Vec<Value> {
    fw.get(&format!("/api/v1/notifications?alert={id}"))
        .await
        .as_array()
        .cloned()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_of_a_building_is_told_to_the_control_room_only_and_passes_its_monthly_transmission()
{
    let broker = Mosquitto::start();
    let hook = Receiver::start(&[], 200).await;
    let (b, other) = (unique("bdr"), unique("bdro"));
    let t0 = ms("2026-12-08T01:00:00Z"); // 09:00 in Shanghai
    let (mqtt, url) = (broker.url(), hook.url.clone());
    let fw = InProcess::start_at(t0, &registry(&[&b, &other]), move |c| {
        c.mqtt.url = mqtt;
        c.email.to = vec!["duty@drill.test".into()];
        c.webhook = vec![serde_json::from_value(
            json!({"name": "city", "url": url, "secret": "0123456789abcdef"}),
        )
        .unwrap()];
    })
    .await;

    // Mistakes are named.
    let (s, v) = fw
        .post(
            "/api/v1/silences",
            json!({"mode": "test", "matchers": {"rule": "transmitter.*"},
                   "ends_at": "2026-12-08T03:00:00Z", "reason": "月度测试"}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("matchers.building"),
        "{v}"
    );
    let (s, v) = fw
        .post(
            "/api/v1/silences",
            json!({"mode": "exercise", "matchers": {"building": b},
                   "ends_at": "2026-12-08T03:00:00Z", "reason": "x"}),
        )
        .await;
    assert_eq!(s, 400, "{v}");

    let (s, d) = fw
        .post(
            "/api/v1/silences",
            json!({"mode": "test", "matchers": {"building": b},
                   "ends_at": "2026-12-08T03:00:00Z", "reason": "月度模拟火警传输测试"}),
        )
        .await;
    assert_eq!(s, 201, "{d}");
    assert_eq!(d["mode"], "test");
    let drill = d["id"].as_str().unwrap().to_owned();

    let a = alarm(&broker, &fw, &b).await;
    let id = a["id"].as_str().unwrap().to_owned();
    let a = wait_for("the drill mark", WAIT, || async {
        let a = fw.get(&format!("/api/v1/alerts/{id}")).await;
        (!a["drill"].is_null()).then_some(a)
    })
    .await;
    assert_eq!(a["drill"]["drill"], json!(drill), "{a}");
    assert_eq!(a["drill"]["mode"], "test");
    assert_eq!(a["classification"], "test", "{a}");
    assert!(a["silenced"].is_null(), "a drill is not a silence: {a}");
    fw.wait_history(&id, "notified").await;
    let rows = rows_of(&fw, &id).await;
    assert_eq!(rows.len(), 1, "the control room only: {rows:#?}");
    assert_eq!(rows[0]["channel"], "email");
    assert_eq!(rows[0]["target"], "duty@drill.test");

    // An alarm in the other building, no drill: the integration is told of it.
    let o = alarm(&broker, &fw, &other).await;
    let oid = o["id"].as_str().unwrap().to_owned();
    wait_for("the webhook call of the other building", WAIT, || async {
        (hook.requests().len() == 1).then_some(())
    })
    .await;
    assert_eq!(hook.requests()[0].json()["alert"]["id"], json!(oid));
    assert!(o["drill"].is_null());

    // Past the escalation times of a fire alarm: the drill's alarm goes no further up.
    fw.advance(6 * MIN).await;
    let full = fw.get(&format!("/api/v1/alerts/{id}")).await;
    let steps = history_steps(&full);
    assert!(steps.contains(&"drill"), "{steps:?}");
    assert!(!steps.contains(&"escalated"), "{steps:?}");
    assert_eq!(rows_of(&fw, &id).await.len(), 1);
    // (Both transmitters have gone quiet meanwhile: offline alerts, in the drill too.)
    for r in hook.requests() {
        let j = r.json();
        assert_eq!(
            j["alert"]["building"],
            json!(other),
            "the webhook never hears of the drill: {j}"
        );
    }
    let other_steps = history_steps(&fw.get(&format!("/api/v1/alerts/{oid}")).await)
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    assert!(
        other_steps.iter().any(|s| s == "escalated"),
        "{other_steps:?}"
    );

    // The drill report counts it; the month's transmission passed here, missed there.
    let r = fw
        .get(&format!(
            "/api/v1/reports/drills?from=2026-12-01T00:00:00Z&until=2027-01-01T00:00:00Z&building={b}"
        ))
        .await;
    let row = &r["rows"][0];
    assert_eq!(row["id"], json!(drill), "{r}");
    // The fire alarm and the transmitter's offline alert, both during the test.
    assert_eq!(
        (row["alerts"].as_u64(), row["fire_alarms"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(row["result"], "passed");
    assert_eq!(row["state"], "active");

    let m = fw
        .get("/api/v1/reports/fire_transmission?month=2026-12")
        .await;
    assert_eq!(m["month"], "2026-12");
    assert_eq!(m["from"], "2026-11-30T16:00:00.000Z", "the month in UTC+8");
    let by: std::collections::HashMap<String, Value> = m["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["building"].as_str().unwrap().to_owned(), r.clone()))
        .collect();
    assert_eq!(by[&b]["result"], "passed", "{m}");
    assert_eq!(by[&b]["alert"], json!(id));
    assert_eq!(by[&b]["tests"], 1);
    assert_eq!(by[&other]["result"], "missed", "{m}");
    assert_eq!(by[&other]["tests"], 0);
    let csv = fw
        .http
        .get(format!(
            "{}/api/v1/reports/fire_transmission?month=2026-12&format=csv&building={other}",
            fw.base
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        csv,
        format!("building,tests,result,fire_alarm_at,alert\r\n{other},0,missed,,\r\n")
    );
    // A month that is not one is a 400 that says so.
    for bad in ["2026-13", "december", "2026-12-01"] {
        let r = fw
            .http
            .get(format!(
                "{}/api/v1/reports/fire_transmission?month={bad}",
                fw.base
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "month must be YYYY-MM", "{bad}");
    }
    // The month before: nothing passed.
    let nov = fw
        .get(&format!(
            "/api/v1/reports/fire_transmission?month=2026-11&building={b}"
        ))
        .await;
    assert_eq!(nov["rows"][0]["result"], "missed", "{nov}");
}
