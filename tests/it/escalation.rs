//! Escalation on the manual clock: a fire alarm nobody acknowledges misses its 2-minute
//! deadline, goes to the next step, reminds every 5 minutes, and stops when someone takes it;
//! every step is a persisted timer, so a restart in the middle neither repeats nor misses one.
//! Everyone told of the alert learns who acknowledged it, once.

use crate::common;
use crate::common::{fire_alarm, notified, steps, unique, Api, InProcess, Publisher};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const SEC: i64 = 1000;
const DUTY: &str = "duty@esc.test";

async fn start() -> InProcess {
    InProcess::start_with("", |c| c.email.to = vec![DUTY.into()]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_fire_alarm_misses_its_deadline_escalates_and_reminds_until_taken() {
    let b = unique("besc");
    let fw = start().await;
    let id = fire_alarm(&fw, &b).await;
    assert_eq!(notified(&fw, &id).await, ["fired"]);

    fw.advance(119 * SEC).await;
    assert_eq!(steps(&fw, &id).await, ["fired"], "not yet two minutes");
    fw.advance(2 * SEC).await;
    assert_eq!(steps(&fw, &id).await, ["fired", "sla_missed", "escalated"]);
    let a = fw.get(&format!("/api/v1/alerts/{id}")).await;
    assert!(a["sla_missed_at"].is_string(), "{a}");
    let escalated = a["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["what"] == "escalated")
        .unwrap()
        .clone();
    assert_eq!(escalated["detail"]["step"], 2);
    assert_eq!(escalated["detail"]["to"], json!(["manager"]));
    assert_eq!(escalated["detail"]["policy"], "default critical");

    // Five minutes: the town fire office, then a reminder to everyone told so far.
    fw.advance(180 * SEC).await;
    assert_eq!(
        steps(&fw, &id).await,
        ["fired", "sla_missed", "escalated", "escalated", "repeat"]
    );
    assert_eq!(notified(&fw, &id).await, ["fired", "repeat"]);

    // Taken: everyone told hears who took it, and nothing follows.
    let (s, v) = fw
        .post(&format!("/api/v1/alerts/{id}/ack"), json!({"by": "Li Wei"}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        notified(&fw, &id).await,
        ["fired", "repeat", "acknowledged"]
    );
    fw.advance(900 * SEC).await;
    assert_eq!(
        steps(&fw, &id).await,
        [
            "fired",
            "sla_missed",
            "escalated",
            "escalated",
            "repeat",
            "acknowledged"
        ]
    );
    assert_eq!(
        notified(&fw, &id).await,
        ["fired", "repeat", "acknowledged"]
    );
    fw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_of_an_escalation_sends_nothing_twice_and_misses_nothing() {
    let b = unique("bescr");
    let mut fw = start().await;
    let id = fire_alarm(&fw, &b).await;
    fw.advance(121 * SEC).await;
    assert_eq!(steps(&fw, &id).await, ["fired", "sla_missed", "escalated"]);
    fw.restart().await;
    // Time the restart took on the clock: nothing; the same tick again handles nothing twice.
    fw.advance(SEC).await;
    assert_eq!(steps(&fw, &id).await, ["fired", "sla_missed", "escalated"]);
    fw.restart().await;
    fw.advance(179 * SEC).await;
    assert_eq!(
        steps(&fw, &id).await,
        ["fired", "sla_missed", "escalated", "escalated", "repeat"]
    );
    assert_eq!(notified(&fw, &id).await, ["fired", "repeat"]);
    fw.stop().await;
}

/// A minor alert has one step and no reminders: no timer is left running for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minor_alert_is_told_once_and_never_escalates() {
    let b = unique("besm");
    let fw = start().await;
    let mut p = Publisher::connect(&common::env("FW_TEST_MQTT_URL")).await;
    p.publish(
        &format!("fw/v1/{b}/transmitter/tx-{b}/event"),
        json!({"event": "fault", "state": "start"}).to_string(),
    )
    .await;
    let a = fw
        .wait_alert(&b, "transmitter.fault", &format!("tx-{b}"), |_| true, WAIT)
        .await;
    let id = a["id"].as_str().unwrap().to_owned();
    assert_eq!(a["severity"], "minor", "{a}");
    fw.advance(3600 * SEC).await;
    assert_eq!(notified(&fw, &id).await, ["fired"]);
    assert!(
        !steps(&fw, &id).await.iter().any(|s| s == "escalated"),
        "{:?}",
        steps(&fw, &id).await
    );
    fw.stop().await;
}

/// With a duty roster, the first alarm reaches the operators on duty in the building's
/// control room (not the deployment's fallback list); the second step the building's
/// fire-safety manager; the third the town fire office. Nobody is told twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_roster_decides_who_is_told_at_each_step() {
    let b = unique("bescd");
    let dir = tempfile::tempdir().unwrap();
    let roster = dir.path().join("duty.toml");
    std::fs::write(
        &roster,
        format!(
            r#"
[[person]]
id = "op1"
name = "张伟"
email = "op1@cr.test"
[[person]]
id = "op2"
name = "李娜"
email = "op2@cr.test"
[[person]]
id = "mgr"
name = "Alex Miller"
email = "manager@{b}.test"
lang = "en"
[[person]]
id = "fo"
name = "镇消防办值班员"
email = "office@fire.test"
[[control_room]]
id = "cr"
name = "一号消防控制室"
tz = "Asia/Urumqi"
buildings = ["{b}"]
  [[control_room.shift]]
  name = "day"
  start = "08:00"
  end = "20:00"
  people = ["op1", "op2"]
  [[control_room.shift]]
  name = "night"
  start = "20:00"
  end = "08:00"
  people = ["op1", "op2"]
[[building]]
id = "{b}"
manager = "mgr"
[fire_office]
name = "镇消防安全委员会办公室"
people = ["fo"]
"#
        ),
    )
    .unwrap();
    let fw = InProcess::start_with("", |c| {
        c.email.to = vec![DUTY.into()];
        c.duty.file = roster.clone();
        // The clock starts at the wall time: past 08:00 local the manager would also get
        // the day's summary (tests/summaries.rs), which this test does not count.
        c.summary.enabled = false;
    })
    .await;
    let id = fire_alarm(&fw, &b).await;
    let targets = |rows: Value| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    n["event"].as_str().unwrap().to_owned(),
                    n["target"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let rows = fw.get(&format!("/api/v1/notifications?alert={id}")).await;
    assert_eq!(
        targets(rows),
        [
            ("fired".to_owned(), "op1@cr.test".to_owned()),
            ("fired".to_owned(), "op2@cr.test".to_owned())
        ],
        "the operators on duty, not {DUTY}"
    );
    fw.advance(121 * SEC).await;
    fw.advance(180 * SEC).await;
    let rows = fw.get(&format!("/api/v1/notifications?alert={id}")).await;
    let got = targets(rows);
    for want in [
        ("escalated", format!("manager@{b}.test")),
        ("escalated", "office@fire.test".to_owned()),
        ("repeat", "op1@cr.test".to_owned()),
        ("repeat", format!("manager@{b}.test")),
        ("repeat", "office@fire.test".to_owned()),
    ] {
        assert!(
            got.contains(&(want.0.to_owned(), want.1.clone())),
            "{want:?} missing from {got:?}"
        );
    }
    assert!(!got.iter().any(|(_, t)| t == DUTY), "{got:?}");
    // Each reads it in their language, with times in the control room's zone (UTC+6).
    let outbox = fw.store_dir().join("outbox");
    let mail_to = |rcpt: &str| -> Vec<String> {
        let mut v = Vec::new();
        for e in std::fs::read_dir(&outbox).unwrap().flatten() {
            let raw = std::fs::read_to_string(e.path()).unwrap();
            if raw.contains(&format!("To: {rcpt}")) {
                v.push(common::mail_text(&raw));
            }
        }
        v
    };
    let started = fw.get(&format!("/api/v1/alerts/{id}")).await["started_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let utc: jiff::Timestamp = started.parse().unwrap();
    let local = utc
        .to_zoned_datetime(jiff::tz::TimeZone::get("Asia/Urumqi").unwrap())
        .strftime("%H:%M")
        .to_string();
    let manager = common::wait_for("the manager's mails", WAIT, || async {
        let m = mail_to(&format!("manager@{b}.test"));
        (m.len() >= 2).then_some(m)
    })
    .await;
    assert!(manager.iter().all(|m| m.contains("Next:")), "{manager:?}");
    assert!(
        manager.iter().any(|m| m.contains(&local)),
        "{local} in {manager:?}"
    );
    let operator = common::wait_for("the operator's mails", WAIT, || async {
        let m = mail_to("op1@cr.test");
        (!m.is_empty()).then_some(m)
    })
    .await;
    assert!(operator[0].contains("处置"), "{}", operator[0]);
    assert!(operator[0].contains(&local), "{local} in {}", operator[0]);
    assert_eq!(
        got.iter().filter(|(e, _)| e == "escalated").count(),
        2,
        "{got:?}"
    );
    fw.stop().await;
}

/// A reply with the alert's code (through the inbound endpoint a chat bot or SMS gateway
/// calls) stops the escalation like an acknowledgement in the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_code_stops_the_escalation() {
    let b = unique("besrc");
    let token = "escalation-reply-token";
    let fw = InProcess::start_with("", |c| {
        c.email.to = vec![DUTY.into()];
        c.http.ack_token = Some(firewatch::settings::Secret::new(token));
    })
    .await;
    let id = fire_alarm(&fw, &b).await;
    let code = fw.get(&format!("/api/v1/alerts/{id}")).await["ack_code"]
        .as_str()
        .unwrap()
        .to_owned();
    fw.advance(60 * SEC).await;
    let r = fw
        .http
        .post(format!("{}/api/v1/ack/{code}?token={token}", fw.base))
        .json(&json!({"from": "+8613800000000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    fw.advance(900 * SEC).await;
    assert_eq!(steps(&fw, &id).await, ["fired", "acknowledged"]);
    assert_eq!(notified(&fw, &id).await, ["fired", "acknowledged"]);
    fw.stop().await;
}
