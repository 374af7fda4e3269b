//! False-alarm analytics from a small history built through the real broker and closed
//! through the API on the manual clock: the figures per point, device, building and
//! maintenance company are the ones counted by hand here, a drill's alarm never counts, a
//! point with two false alarms and a building with six in one local day are flagged, and the
//! CSV says the same.

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const MIN: i64 = 60_000;

fn ms(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

/// A fire alarm at `zone` that starts, ends and is closed as `class`; returns its id.
async fn alarm(fw: &InProcess, p: &mut Publisher, b: &str, zone: &str, class: &str) -> String {
    let tx = format!("tx-{b}");
    let topic = format!("fw/v1/{b}/transmitter/{tx}/event");
    let ev = |state: &str| json!({"event": "fire_alarm", "state": state, "zone": zone}).to_string();
    p.publish(&topic, ev("start")).await;
    let open = |a: &Value| a["channel"] == zone && a["status"] != "closed";
    let a = fw
        .wait_alert(b, "transmitter.fire_alarm", &tx, open, WAIT)
        .await;
    let id = a["id"].as_str().unwrap().to_owned();
    p.publish(&topic, ev("end")).await;
    wait_for("the alarm's end", WAIT, || async {
        let a = fw.get(&format!("/api/v1/alerts/{id}")).await;
        (a["active"] == false).then_some(())
    })
    .await;
    let (s, v) = fw
        .post(
            &format!("/api/v1/alerts/{id}/close"),
            json!({"by": "王值班", "classification": class, "note": "现场核实"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn false_alarms_are_counted_by_point_device_building_and_maintainer_and_reviews_flagged() {
    let (ba, bb) = (unique("bfa"), unique("bfb"));
    let registry = format!(
        "[[building]]\nid = \"{ba}\"\nmaintainer = \"维保甲\"\n\
         [[building]]\nid = \"{bb}\"\nmaintainer = \"维保甲\"\n\
         [[device]]\nid = \"tx-{ba}\"\nbuilding = \"{ba}\"\nkind = \"transmitter\"\n\
         [[device]]\nid = \"tx-{bb}\"\nbuilding = \"{bb}\"\nkind = \"transmitter\"\n"
    );
    let t0 = ms("2026-12-08T01:00:00Z"); // 09:00 in Shanghai
    let broker = Mosquitto::start();
    let mqtt = broker.url();
    let fw = InProcess::start_at(t0, &registry, move |c| {
        c.mqtt.url = mqtt;
        c.email.to = vec!["duty@fa.test".into()];
    })
    .await;
    let mut p = Publisher::connect(&broker.url()).await;

    // Building A: 3F false-alarms twice, 5F was a real fire.
    let a1 = alarm(&fw, &mut p, &ba, "3F", "false_alarm").await;
    fw.advance(10 * MIN).await;
    let a2 = alarm(&fw, &mut p, &ba, "3F", "false_alarm").await;
    alarm(&fw, &mut p, &ba, "5F", "real").await;
    // A test of building A: its alarm, even closed as a false alarm, never counts.
    let (s, d) = fw
        .post(
            "/api/v1/silences",
            json!({"mode": "test", "matchers": {"building": ba},
                   "ends_at": "2026-12-08T06:00:00Z", "reason": "探测器测试"}),
        )
        .await;
    assert_eq!(s, 201, "{d}");
    alarm(&fw, &mut p, &ba, "7F", "false_alarm").await;
    // Building B: six points false-alarm on the same local day.
    fw.advance(10 * MIN).await;
    for z in 1..=6 {
        alarm(&fw, &mut p, &bb, &format!("Z{z}"), "false_alarm").await;
    }

    let q = "/api/v1/reports/false_alarms?from=2026-12-07T16:00:00Z&until=2026-12-08T16:00:00Z";
    let r = fw.get(q).await;
    assert_eq!(r["false_alarms"], 8, "{r:#}");
    assert_eq!(r["time_zone"], "Asia/Shanghai");
    let points = r["points"].as_array().unwrap();
    assert_eq!(points.len(), 7, "3F of A and six points of B: {r:#}");
    assert_eq!(points[0]["building"], json!(ba));
    assert_eq!(points[0]["channel"], "3F");
    assert_eq!(points[0]["false_alarms"], 2);
    let ids: Vec<&Value> = points[0]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["id"])
        .collect();
    assert_eq!(ids, [&json!(a1), &json!(a2)]);
    assert_eq!(
        points[0]["alerts"][0]["link"],
        json!(format!("/api/v1/alerts/{a1}"))
    );
    assert_eq!(points[0]["flagged"], "2 false alarms at one point");
    let history = points[0]["history"].as_str().unwrap();
    let listed = fw.get(history).await;
    let listed: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["id"])
        .collect();
    assert_eq!(listed, [&json!(a2), &json!(a1)], "the point's history link");

    let buildings = r["buildings"].as_array().unwrap();
    let fig: Vec<(Value, Value, Value)> = buildings
        .iter()
        .map(|b| {
            (
                b["building"].clone(),
                b["false_alarms"].clone(),
                b["flagged"].clone(),
            )
        })
        .collect();
    assert_eq!(
        fig,
        [
            (
                json!(bb),
                json!(6),
                json!("more than 5 false alarms on 2026-12-08 (6)")
            ),
            (json!(ba), json!(2), Value::Null),
        ]
    );
    assert_eq!(buildings[0]["maintainer"], "维保甲");
    let m = &r["maintainers"][0];
    assert_eq!(
        (&m["maintainer"], &m["false_alarms"], &m["buildings"]),
        (&json!("维保甲"), &json!(8), &json!(2))
    );
    let flagged: Vec<(&Value, &Value)> = r["flagged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (&f["level"], &f["building"]))
        .collect();
    assert_eq!(
        flagged,
        [
            (&json!("point"), &json!(ba)),
            (&json!("building"), &json!(bb))
        ]
    );

    // The CSV: a header and one row per point, device, building and maintainer.
    let csv = fw.get_text(&format!("{q}&format=csv&building={ba}")).await;
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "level,building,device,channel,maintainer,false_alarms,buildings,first_at,last_at,\
         worst_day,worst_day_false_alarms,flagged,alerts,history"
    );
    assert_eq!(lines.len(), 5, "{csv}");
    assert!(
        lines[1].starts_with(&format!("point,{ba},tx-{ba},3F,维保甲,2,1,")),
        "{csv}"
    );
    assert!(
        lines[1].ends_with(&format!(
            ",2026-12-08,2,2 false alarms at one point,{a1} {a2},{history}"
        )),
        "{csv}"
    );
    assert!(lines[4].starts_with("maintainer,,,,维保甲,2,1,"), "{csv}");

    // A stricter review flags nothing; a bad threshold says so.
    let r = fw.get(&format!("{q}&repeated=3&per_day=6")).await;
    assert_eq!(r["flagged"], json!([]), "{r:#}");
    let s = fw
        .http
        .get(format!("{}{q}&per_day=0", fw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(s.status(), 400);
    fw.stop().await;
}
