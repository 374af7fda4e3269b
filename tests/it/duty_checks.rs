//! Duty checks (查岗) on the manual clock: a check asked for through the API goes to every
//! transmitter of the control room's buildings; an answer records its delay and raises
//! nothing, no answer by the deadline raises `transmitter.duty_unanswered`, a later answer
//! clears it; a check at a fixed local time of the room fires once when the clock passes it,
//! also across a restart. And the reports over alerts and duty checks, as JSON and CSV.

use crate::common;
use crate::common::{env, unique, wait_for, Api, InProcess, Publisher};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);
const SEC: i64 = 1000;
const RULE: &str = "transmitter.duty_unanswered";

fn registry(b: &str) -> String {
    format!(
        r#"
[[building]]
id = "{b}"
[[device]]
id = "uitd-{b}"
building = "{b}"
kind = "transmitter"
[[device]]
id = "wp-{b}"
building = "{b}"
kind = "water_pressure"
"#
    )
}

/// A roster with one control room `cr-{b}` in Shanghai watching building `b`, with
/// `[control_room.duty_check]` `check` (TOML lines).
fn roster(b: &str, check: &str) -> String {
    format!(
        r#"
[[person]]
id = "p1"
name = "张伟"
[[control_room]]
id = "cr-{b}"
name = "一号消防控制室"
tz = "Asia/Shanghai"
buildings = ["{b}"]
[[control_room.shift]]
name = "all"
start = "00:00"
end = "00:00"
people = ["p1"]
[control_room.duty_check]
{check}
"#
    )
}

async fn start(b: &str, check: &str) -> InProcess {
    let text = roster(b, check);
    InProcess::start_with(&registry(b), move |c| {
        let path = c.registry.file.parent().unwrap().join("duty.toml");
        std::fs::write(&path, text).unwrap();
        c.duty.file = path;
    })
    .await
}

/// The transmitter's side: subscribed to its command topic, it hands over every command.
struct Transmitter {
    commands: tokio::sync::mpsc::UnboundedReceiver<Value>,
    task: tokio::task::JoinHandle<()>,
    event_topic: String,
    /// Refs received: a repeat (published again before firewatch saw the PUBACK) is dropped,
    /// as contract 2.4 tells devices to.
    seen: std::collections::HashSet<String>,
}

impl Transmitter {
    async fn connect(b: &str) -> Transmitter {
        let u = url::Url::parse(&env("FW_TEST_MQTT_URL")).unwrap();
        let command_topic = format!("fw/v1/{b}/transmitter/uitd-{b}/command");
        let mut o = MqttOptions::new(unique("uitd"), u.host_str().unwrap(), u.port().unwrap());
        o.set_keep_alive(Duration::from_secs(30));
        let (client, mut el) = AsyncClient::new(o, 100);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let topic = command_topic.clone();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        client
                            .try_subscribe(topic.clone(), QoS::AtLeastOnce)
                            .unwrap();
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == topic => {
                        let _ = tx.send(serde_json::from_slice(&p.payload).unwrap());
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        let mut t = Transmitter {
            commands: rx,
            task,
            event_topic: format!("fw/v1/{b}/transmitter/uitd-{b}/event"),
            seen: Default::default(),
        };
        // Subscribed once a probe on its command topic comes back.
        let mut probe = Publisher::connect(&env("FW_TEST_MQTT_URL")).await;
        let started = std::time::Instant::now();
        loop {
            probe
                .publish(&command_topic, r#"{"command": "probe"}"#)
                .await;
            let got = tokio::time::timeout(Duration::from_millis(200), t.commands.recv()).await;
            if matches!(got, Ok(Some(_))) {
                break;
            }
            assert!(started.elapsed() < T, "subscribed within {T:?}");
        }
        t
    }

    /// The next duty check it receives (probes and repeats skipped).
    async fn duty_check(&mut self) -> Value {
        loop {
            let v = tokio::time::timeout(T, self.commands.recv())
                .await
                .expect("a duty check within the bound")
                .unwrap();
            let r = v["ref"].as_str().unwrap_or_default().to_owned();
            if v["command"] == "duty_check" && self.seen.insert(r) {
                return v;
            }
        }
    }

    /// Presses 查岗应答: a `duty_check_answer` with the check's `ref`.
    async fn answer(&self, reference: &Value) {
        let mut p = Publisher::connect(&env("FW_TEST_MQTT_URL")).await;
        p.publish(
            &self.event_topic,
            json!({"event": "duty_check_answer", "state": "pulse", "ref": reference}).to_string(),
        )
        .await;
    }
}

impl Drop for Transmitter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn checks(fw: &InProcess, room: &str) -> Vec<Value> {
    fw.get(&format!("/api/v1/duty/checks?control_room={room}"))
        .await
        .as_array()
        .cloned()
        .unwrap()
}

/// Waits until the newest check of `room` satisfies `pred`.
async fn wait_check(fw: &InProcess, room: &str, pred: impl Fn(&Value) -> bool) -> Value {
    wait_for(&format!("a check of {room}"), T, || async {
        checks(fw, room)
            .await
            .into_iter()
            .next()
            .filter(|c| pred(c))
    })
    .await
}

async fn duty_alerts(fw: &InProcess, b: &str) -> Vec<Value> {
    fw.alerts(b)
        .await
        .into_iter()
        .filter(|a| a["rule"] == RULE)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answered_check_records_the_delay_and_raises_nothing() {
    let b = unique("bdc");
    let room = format!("cr-{b}");
    let fw = start(&b, "deadline_s = 600").await;
    let mut dev = Transmitter::connect(&b).await;

    let (status, check) = fw
        .post(
            "/api/v1/duty/checks",
            json!({"control_room": room, "by": "值班长 李"}),
        )
        .await;
    assert_eq!(status, 202, "{check}");
    assert_eq!(check["reason"], "on_demand");
    assert_eq!(
        check["transmitters"].as_array().unwrap().len(),
        1,
        "{check}"
    );
    assert_eq!(check["transmitters"][0]["device"], format!("uitd-{b}"));
    let cmd = dev.duty_check().await;
    assert_eq!(cmd["ref"], check["transmitters"][0]["ref"]);
    assert_eq!(cmd["deadline_s"], 600);
    // The broker's PUBACK is recorded on the clock as it is; the operator answers 7 s later.
    let published = format!(
        "/api/v1/commands/{}",
        check["transmitters"][0]["command"].as_str().unwrap()
    );
    wait_for("the PUBACK recorded", T, || async {
        (fw.get(&published).await["status"] == "published").then_some(())
    })
    .await;
    fw.advance(7 * SEC).await;
    dev.answer(&cmd["ref"]).await;

    let c = wait_check(&fw, &room, |c| c["status"] == "answered").await;
    assert_eq!(c["transmitters"][0]["answer_delay_ms"], 7000, "{c}");
    assert_eq!(c["answered"], 1);
    fw.advance(601 * SEC).await;
    assert!(duty_alerts(&fw, &b).await.is_empty());
    assert_eq!(checks(&fw, &room).await[0]["status"], "answered");

    let r = fw
        .get(&format!("/api/v1/reports/duty_checks?control_room={room}"))
        .await;
    let row = &r["rows"][0];
    assert_eq!(
        (
            row["checks"].as_u64(),
            row["sent"].as_u64(),
            row["answered"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{r}"
    );
    assert_eq!(row["answer_rate"], 1.0);
    assert_eq!(row["delay_median_s"], 7.0);
    fw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_check_raises_duty_unanswered_at_the_deadline_and_a_later_answer_clears_it() {
    let b = unique("bdu");
    let room = format!("cr-{b}");
    let fw = start(&b, "deadline_s = 60").await;
    let mut dev = Transmitter::connect(&b).await;

    let (status, _) = fw
        .post(
            "/api/v1/duty/checks",
            json!({"control_room": room, "by": "test"}),
        )
        .await;
    assert_eq!(status, 202);
    dev.duty_check().await;
    fw.advance(59 * SEC).await;
    assert!(
        duty_alerts(&fw, &b).await.is_empty(),
        "not before the deadline"
    );
    fw.advance(2 * SEC).await;
    let a = fw
        .wait_alert(&b, RULE, &format!("uitd-{b}"), |a| a["active"] == true, T)
        .await;
    assert_eq!(a["severity"], "major");
    let c = wait_check(&fw, &room, |c| c["status"] == "unanswered").await;
    assert_eq!(c["transmitters"][0]["status"], "unanswered");
    assert_eq!(
        fw.metric("firewatch_duty_checks_unanswered_total").await,
        1.0
    );

    // The next check is answered: the alert clears (still one alert).
    let (status, _) = fw
        .post(
            "/api/v1/duty/checks",
            json!({"control_room": room, "by": "test", "deadline_s": 120}),
        )
        .await;
    assert_eq!(status, 202);
    let cmd = dev.duty_check().await;
    assert_eq!(cmd["deadline_s"], 120);
    dev.answer(&cmd["ref"]).await;
    fw.wait_alert(&b, RULE, &format!("uitd-{b}"), |a| a["active"] == false, T)
        .await;
    assert_eq!(duty_alerts(&fw, &b).await.len(), 1);

    // Bad requests.
    for body in [
        json!({"control_room": "nope", "by": "x"}),
        json!({"control_room": room, "by": "x", "deadline_s": 5}),
    ] {
        assert_eq!(
            fw.post("/api/v1/duty/checks", body.clone()).await.0,
            400,
            "{body}"
        );
    }
    fw.stop().await;
}

/// Local `HH:MM` in Shanghai of the epoch ms `ms`.
fn shanghai_hhmm(ms: i64) -> String {
    let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
    let t = tz.to_datetime(jiff::Timestamp::from_millisecond(ms).unwrap());
    format!("{:02}:{:02}", t.hour(), t.minute())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_at_a_fixed_local_time_fires_once_across_a_restart() {
    let b = unique("bds");
    let room = format!("cr-{b}");
    // The clock starts at the wall time: the check is due 2–3 minutes later, local time.
    let at = shanghai_hhmm(common::wall_ms() + 3 * 60 * SEC);
    let mut fw = start(&b, &format!("times = [\"{at}\"]\ndeadline_s = 600")).await;
    let mut dev = Transmitter::connect(&b).await;
    fw.advance(SEC).await;
    assert!(checks(&fw, &room).await.is_empty());
    fw.advance(60 * SEC).await;
    assert!(checks(&fw, &room).await.is_empty(), "not before {at}");
    fw.advance(3 * 60 * SEC).await;
    let c = wait_check(&fw, &room, |_| true).await;
    assert_eq!(c["reason"], "scheduled");
    assert_eq!(
        shanghai_hhmm(
            firewatch::model::parse_rfc3339(c["scheduled_for"].as_str().unwrap()).unwrap()
        ),
        at
    );
    dev.duty_check().await;

    fw.restart().await;
    fw.advance(60 * SEC).await;
    assert_eq!(
        checks(&fw, &room).await.len(),
        1,
        "not again after the restart"
    );
    // A day later it is due again, once.
    fw.advance(86_400 * SEC - 4 * 60 * SEC).await;
    assert_eq!(checks(&fw, &room).await.len(), 1);
    fw.advance(5 * 60 * SEC).await;
    wait_for("the next day's check", T, || async {
        (checks(&fw, &room).await.len() == 2).then_some(())
    })
    .await;
    fw.stop().await;
}

/// A fire alarm of transmitter `uitd-{b}`; returns the alert.
async fn fire_alarm(fw: &InProcess, b: &str, zone: &str) -> Value {
    let mut p = Publisher::connect(&env("FW_TEST_MQTT_URL")).await;
    p.publish(
        &format!("fw/v1/{b}/transmitter/uitd-{b}/event"),
        json!({"event": "fire_alarm", "state": "start", "zone": zone}).to_string(),
    )
    .await;
    fw.wait_alert(
        b,
        "transmitter.fire_alarm",
        &format!("uitd-{b}"),
        |a| a["channel"] == zone,
        T,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alerts_report_counts_and_times_acknowledgements_per_building_and_severity() {
    let b = unique("brp");
    let fw = start(&b, "").await;
    let from = {
        use firewatch::clock::Clock;
        fw.clock.now_ms()
    };
    let a1 = fire_alarm(&fw, &b, "1F").await;
    fw.advance(30 * SEC).await;
    let a2 = fire_alarm(&fw, &b, "2F").await;
    fw.advance(30 * SEC).await;
    // a1 acknowledged 60 s after it fired, a2 30 s after.
    for a in [&a1, &a2] {
        let (s, v) = fw
            .post(
                &format!("/api/v1/alerts/{}/ack", a["id"].as_str().unwrap()),
                json!({"by": "王"}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }
    fw.advance(40 * SEC).await;
    let (s, _) = fw
        .post(
            &format!("/api/v1/alerts/{}/close", a1["id"].as_str().unwrap()),
            json!({"by": "王", "classification": "false_alarm", "note": "烟感误报，已复位"}),
        )
        .await;
    assert_eq!(
        s, 200,
        "a critical alert closes with a classification and a note"
    );
    let until = {
        use firewatch::clock::Clock;
        fw.clock.now_ms() + 1
    };

    let r = fw
        .get(&format!(
            "/api/v1/reports/alerts?building={b}&from={from}&until={until}"
        ))
        .await;
    assert_eq!(r["building"], b.as_str());
    let rows = r["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{r}");
    let row = &rows[0];
    assert_eq!(row["severity"], "critical");
    assert_eq!(row["alerts"], 2);
    assert_eq!(row["acknowledged"], 2);
    assert_eq!(row["ack_median_s"], 45.0);
    assert_eq!(row["ack_worst_s"], 60.0);
    assert_eq!(row["closed"], 1);
    assert_eq!(row["close_worst_s"], 100.0);
    assert_eq!(row["sla_missed"], 0);
    assert_eq!(row["escalations"], 0);
    assert_eq!(row["workorders_overdue"], 0);

    let text = fw
        .http
        .get(format!(
            "{}/api/v1/reports/alerts?building={b}&from={from}&until={until}&format=csv",
            fw.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 200);
    assert!(text.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = text.text().await.unwrap();
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(
        lines[0],
        "building,severity,alerts,acknowledged,ack_median_s,ack_worst_s,closed,close_median_s,close_worst_s,sla_missed,escalations,workorders_overdue"
    );
    assert_eq!(lines[1], format!("{b},critical,2,2,45,60,1,100,100,0,0,0"));
    assert_eq!(lines[2], "", "the document ends with a line break");

    // Outside the window, nothing; bad parameters are 400.
    let r = fw
        .get(&format!("/api/v1/reports/alerts?building={b}&until={from}"))
        .await;
    assert!(r["rows"].as_array().unwrap().is_empty());
    for q in [
        "from=yesterday",
        "format=xml",
        "nope=1",
        &format!("from={until}&until={from}"),
    ] {
        let s = fw
            .http
            .get(format!("{}/api/v1/reports/alerts?{q}", fw.base))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(s, 400, "{q}");
    }
    let text = fw
        .http
        .get(format!(
            "{}/api/v1/reports/duty_checks?format=csv&control_room=none",
            fw.base
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        text,
        "control_room,checks,sent,answered,late,unanswered,waiting,answer_rate,delay_median_s,delay_worst_s\r\n"
    );
    fw.stop().await;
}
