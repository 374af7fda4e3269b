//! The people's workflow on the manual clock: a fire alarm confirmed on site (现场核实, with the
//! 119 call) and closed with its note; hazard work orders (隐患整改) raised by an operator or by
//! an alert left open, rectified, sent back, accepted, and escalated when overdue — persisted,
//! so a restart repeats nothing.

use crate::common;
use crate::common::{fire_alarm, mails_to, unique, Api, InProcess, Publisher, SmtpServer};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const SEC: i64 = 1000;
const DUTY: &str = "duty@workflow.test";

async fn start() -> InProcess {
    InProcess::start_with("", |c| c.email.to = vec![DUTY.into()]).await
}

/// An e-bike in an elevator (a major hazard, no hold time); returns the alert id.
async fn ebike(fw: &InProcess, b: &str) -> String {
    let mut p = Publisher::connect(&common::env("FW_TEST_MQTT_URL")).await;
    p.publish(
        &format!("fw/v1/{b}/fire_lane/cam-{b}/event"),
        json!({"event": "ebike_in_elevator", "state": "start", "zone": "lift-2",
               "confidence": 0.93})
        .to_string(),
    )
    .await;
    let dev = format!("cam-{b}");
    let a = fw
        .wait_alert(b, "fire_lane.ebike", &dev, |_| true, WAIT)
        .await;
    a["id"].as_str().unwrap().to_owned()
}

fn steps(v: &Value) -> Vec<String> {
    common::history_steps(v)
        .into_iter()
        .filter(|s| !s.starts_with("notif"))
        .map(String::from)
        .collect()
}

/// The steps of a work order's history, without its notification attempts.
fn order_steps(w: &Value) -> Vec<&str> {
    w["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["what"].as_str().unwrap())
        .filter(|s| !s.starts_with("notif"))
        .collect()
}

async fn workorders(fw: &InProcess, b: &str) -> Vec<Value> {
    fw.get(&format!("/api/v1/workorders?building={b}"))
        .await
        .as_array()
        .cloned()
        .unwrap()
}

/// The escalation notifications of an alert (to the duty address).
async fn escalations(fw: &InProcess, id: &str) -> usize {
    let n = fw.get(&format!("/api/v1/notifications?alert={id}")).await;
    n.as_array()
        .unwrap()
        .iter()
        .filter(|n| n["event"] == "escalated" && n["target"] == DUTY)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_fire_is_verified_with_its_119_call_and_closed_with_a_note() {
    let b = unique("bwfire");
    let fw = start().await;
    let id = fire_alarm(&fw, &b).await;
    let a = fw.get(&format!("/api/v1/alerts/{id}")).await;
    for k in [
        "verified_at",
        "verified_by",
        "verification",
        "called_119_at",
    ] {
        assert!(a[k].is_null(), "{k}: {a}");
    }

    // Not before someone took it.
    let verify = format!("/api/v1/alerts/{id}/verify");
    let (s, v) = fw
        .post(&verify, json!({"by": "张三", "result": "false_alarm"}))
        .await;
    assert_eq!(s, 409, "{v}");
    let (s, v) = fw
        .post(&format!("/api/v1/alerts/{id}/ack"), json!({"by": "张三"}))
        .await;
    assert_eq!(s, 200, "{v}");

    let (s, v) = fw
        .post(&verify, json!({"by": "张三", "result": "real"}))
        .await;
    assert_eq!(s, 400, "a real fire needs its 119 time: {v}");
    assert!(
        v["error"].as_str().unwrap().contains("called_119_at"),
        "{v}"
    );
    let (s, v) = fw
        .post(&verify, json!({"by": "张三", "result": "smoke"}))
        .await;
    assert_eq!(s, 400, "{v}");

    fw.advance(60 * SEC).await;
    let called = firewatch::model::rfc3339(firewatch::clock::Clock::now_ms(&*fw.clock) - 30 * SEC);
    let (s, v) = fw
        .post(
            &verify,
            json!({"by": "张三", "result": "real", "called_119_at": called,
                   "note": "3F 东走廊有明火"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["verification"], "real");
    assert_eq!(v["verified_by"], "张三");
    assert_eq!(v["called_119_at"], called);
    assert!(v["verified_at"].is_string(), "{v}");
    let (s, v) = fw
        .post(&verify, json!({"by": "李四", "result": "test"}))
        .await;
    assert_eq!(s, 409, "verified once: {v}");

    // Closing a critical alert needs a note too.
    let close = format!("/api/v1/alerts/{id}/close");
    let (s, v) = fw
        .post(&close, json!({"by": "张三", "classification": "real"}))
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("note"), "{v}");
    let (s, v) = fw
        .post(
            &close,
            json!({"by": "张三", "classification": "false_alarm", "note": "复查为厨房油烟"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["verification"], "real", "the check stays on record");

    let full = fw.get(&format!("/api/v1/alerts/{id}")).await;
    assert_eq!(
        steps(&full),
        ["fired", "acknowledged", "verified", "closed"],
        "{full}"
    );
    let h = full["history"].as_array().unwrap();
    let verified = h.iter().find(|h| h["what"] == "verified").unwrap();
    assert_eq!(verified["by"], "张三");
    assert_eq!(verified["detail"]["result"], "real");
    assert_eq!(verified["detail"]["called_119_at"], called);
    assert_eq!(verified["note"], "3F 东走廊有明火");
    let closed = h.iter().find(|h| h["what"] == "closed").unwrap();
    assert_eq!(closed["detail"]["verification"], "real");
    assert_eq!(closed["detail"]["differs_from_verification"], true);
    let people = ["acknowledged", "verified", "closed"];
    for e in h
        .iter()
        .filter(|h| people.contains(&h["what"].as_str().unwrap()))
    {
        assert!(e["at"].is_string() && e["by"].is_string(), "{e}");
    }
    fw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_work_order_is_rectified_sent_back_rectified_again_and_accepted() {
    let b = unique("bwwo");
    let fw = start().await;
    let (s, v) = fw
        .post(
            "/api/v1/workorders",
            json!({"building": b, "description": "B1 安全出口上锁", "by": "王五"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(v["status"], "open");
    assert_eq!(v["alert"], Value::Null);
    let wo = format!("/api/v1/workorders/{id}");

    let (s, v) = fw
        .post(
            &format!("{wo}/verify"),
            json!({"by": "王五", "accept": true, "note": "?"}),
        )
        .await;
    assert_eq!(s, 409, "nothing to verify yet: {v}");
    let (s, v) = fw
        .post(&format!("{wo}/rectify"), json!({"by": "赵六"}))
        .await;
    assert_eq!(s, 400, "a rectification says what was done: {v}");

    let rectify =
        json!({"by": "赵六", "note": "已开锁", "photo_url": "https://img.example.org/1.jpg"});
    let (s, v) = fw.post(&format!("{wo}/rectify"), rectify.clone()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "rectified");
    let (s, v) = fw
        .post(
            &format!("{wo}/verify"),
            json!({"by": "王五", "accept": false, "note": "门禁仍锁闭"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "open", "sent back");
    let (s, v) = fw.post(&format!("{wo}/rectify"), rectify).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = fw
        .post(
            &format!("{wo}/verify"),
            json!({"by": "王五", "accept": true, "note": "复查合格"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "closed");
    assert_eq!(v["closed_by"], "王五");

    let full = fw.get(&wo).await;
    assert_eq!(
        order_steps(&full),
        ["created", "rectified", "sent_back", "rectified", "accepted"]
    );
    let h: Vec<&Value> = full["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| !h["what"].as_str().unwrap().starts_with("notif"))
        .collect();
    assert_eq!(h[1]["photo_url"], "https://img.example.org/1.jpg");
    assert_eq!(h[2]["note"], "门禁仍锁闭");
    assert_eq!(h[2]["by"], "王五");
    let (s, _) = fw
        .post(&format!("{wo}/rectify"), json!({"by": "赵六", "note": "x"}))
        .await;
    assert_eq!(s, 409, "closed");

    // Lists and errors.
    assert_eq!(workorders(&fw, &b).await.len(), 1);
    let none = fw
        .get(&format!("/api/v1/workorders?building={b}&status=open"))
        .await;
    assert_eq!(none, json!([]));
    let r = fw
        .http
        .get(format!("{}/api/v1/workorders?colour=red", fw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = fw
        .http
        .get(format!("{}/api/v1/workorders/w-999999", fw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let (s, v) = fw
        .post(
            "/api/v1/workorders",
            json!({"building": b, "description": "x", "by": "王五", "alert": "a-999999"}),
        )
        .await;
    assert_eq!(s, 404, "{v}");
    fw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hazard_left_open_becomes_a_work_order_goes_overdue_once_and_survives_restarts() {
    let b = unique("bwhaz");
    let mut fw = start().await;
    let id = ebike(&fw, &b).await;

    fw.advance(1799 * SEC).await;
    assert!(workorders(&fw, &b).await.is_empty(), "not yet half an hour");
    fw.advance(2 * SEC).await;
    let list = workorders(&fw, &b).await;
    assert_eq!(list.len(), 1, "{list:?}");
    let wo = list[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list[0]["alert"], id.as_str());
    assert_eq!(list[0]["auto"], true);
    assert_eq!(list[0]["rule"], "fire_lane.ebike");
    let a = fw.get(&format!("/api/v1/alerts/{id}")).await;
    assert_eq!(a["workorder"], wo.as_str());

    // A restart raises no second one.
    fw.restart().await;
    fw.advance(SEC).await;
    assert_eq!(workorders(&fw, &b).await.len(), 1);

    // The e-bike deadline is an hour.
    assert_eq!(escalations(&fw, &id).await, 0);
    fw.advance(3590 * SEC).await;
    let w = fw.get(&format!("/api/v1/workorders/{wo}")).await;
    assert_eq!(w["overdue"], false, "{w}");
    fw.advance(10 * SEC).await;
    let w = fw.get(&format!("/api/v1/workorders/{wo}")).await;
    assert_eq!(w["overdue"], true, "{w}");
    assert!(w["overdue_at"].is_string());
    assert_eq!(order_steps(&w), ["created", "overdue"]);
    let overdue = fw
        .get(&format!("/api/v1/workorders?building={b}&overdue=true"))
        .await;
    assert_eq!(overdue.as_array().unwrap().len(), 1);

    let a = fw.get(&format!("/api/v1/alerts/{id}")).await;
    assert_eq!(
        steps(&a)
            .iter()
            .filter(|s| *s == "workorder_overdue")
            .count(),
        1,
        "{a}"
    );
    // Told to the fire office (no contacts configured here) and everyone told before.
    assert_eq!(escalations(&fw, &id).await, 1);
    let r = fw
        .get(&format!("/api/v1/reports/alerts?building={b}"))
        .await;
    assert_eq!(r["rows"][0]["severity"], "major", "{r}");
    assert_eq!(r["rows"][0]["workorders_overdue"], 1, "{r}");

    // Restarts and later ticks escalate nothing twice.
    fw.restart().await;
    fw.advance(600 * SEC).await;
    let a = fw.get(&format!("/api/v1/alerts/{id}")).await;
    assert_eq!(
        steps(&a)
            .iter()
            .filter(|s| *s == "workorder_overdue")
            .count(),
        1
    );
    let w = fw.get(&format!("/api/v1/workorders/{wo}")).await;
    assert_eq!(order_steps(&w), ["created", "overdue"]);
    assert_eq!(escalations(&fw, &id).await, 1);
    fw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_raises_a_work_order_for_an_alert_only_once() {
    let b = unique("bwop");
    let fw = start().await;
    let id = ebike(&fw, &b).await;
    let body = json!({"alert": id, "building": b, "description": "电梯内电动车", "by": "王五",
                      "deadline_s": 600});
    let (s, v) = fw.post("/api/v1/workorders", body.clone()).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["rule"], "fire_lane.ebike");
    let (s, v) = fw.post("/api/v1/workorders", body).await;
    assert_eq!(s, 409, "{v}");
    let (s, v) = fw
        .post(
            "/api/v1/workorders",
            json!({"alert": id, "building": "elsewhere", "description": "x", "by": "王五"}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = fw
        .post(
            "/api/v1/workorders",
            json!({"building": b, "description": "x", "by": "王五", "deadline_s": 5}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    // The automatic timer sees it has one.
    fw.advance(1801 * SEC).await;
    assert_eq!(workorders(&fw, &b).await.len(), 1);
    fw.stop().await;
}

/// The decoded mails to `rcpt` that contain `needle`.
fn texts(smtp: &SmtpServer, rcpt: &str, needle: &str) -> Vec<String> {
    mails_to(&smtp.maildir, rcpt)
        .into_iter()
        .map(|m| m.text())
        .filter(|t| t.contains(needle))
        .collect()
}

/// Waits for a mail to `rcpt` that contains `needle`.
async fn mail(smtp: &SmtpServer, rcpt: &str, needle: &str) -> String {
    common::wait_for(&format!("{needle} to {rcpt}"), WAIT, || async {
        texts(smtp, rcpt, needle).pop()
    })
    .await
}

/// With a duty roster, each step of a work order reaches whoever acts next, by e-mail through
/// the real SMTP server: the building's fire-safety manager is told of a new order, with its
/// deadline in the control room's time zone; the operator on duty of a rectification (to
/// check it); the manager of a send-back; both of the closing. An order raised without an
/// alert that goes overdue reaches the manager and the town fire office. Every attempt is in
/// the order's history, and the work-order report counts it all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_step_of_a_work_order_reaches_whoever_acts_next() {
    let b = unique("bwnot");
    let smtp = SmtpServer::start(0);
    let dir = tempfile::tempdir().unwrap();
    let roster = dir.path().join("duty.toml");
    let manager = format!("manager@{b}.test");
    let (op, office) = ("op@cr.test", "office@fire.test");
    std::fs::write(
        &roster,
        format!(
            r#"
[[person]]
id = "op"
name = "张伟"
email = "{op}"
[[person]]
id = "mgr"
name = "刘强"
email = "{manager}"
[[person]]
id = "fo"
name = "镇消防办值班员"
email = "{office}"
[[control_room]]
id = "cr"
name = "一号消防控制室"
tz = "Asia/Shanghai"
buildings = ["{b}"]
  [[control_room.shift]]
  name = "all day"
  start = "08:00"
  end = "08:00"
  people = ["op"]
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
    let url = smtp.url();
    let fw = InProcess::start_with("", |c| {
        c.email.to = vec![DUTY.into()];
        c.email.smtp_url = Some(firewatch::settings::Secret::new(url));
        c.duty.file = roster.clone();
        // The clock starts at the wall time: past 08:00 local the manager would also get
        // the day's summary (tests/summaries.rs), which this test does not count.
        c.summary.enabled = false;
    })
    .await;
    let (s, v) = fw
        .post(
            "/api/v1/workorders",
            json!({"building": b, "description": "消防通道堆放杂物", "by": "王五",
                   "deadline_s": 7200}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let wo = format!("/api/v1/workorders/{id}");
    let deadline: jiff::Timestamp = v["deadline_at"].as_str().unwrap().parse().unwrap();
    let local = deadline
        .to_zoned_datetime(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap())
        .strftime("%Y-%m-%d %H:%M:%S (UTC+08:00)")
        .to_string();

    let m = mail(&smtp, &manager, "【隐患整改·新工单】").await;
    for needle in [
        "消防通道堆放杂物",
        &format!("整改期限：{local}"),
        &format!("/workorders/{id}"),
        &format!("X-Firewatch-Workorder: {id}"),
        "上报整改结果",
    ] {
        assert!(m.contains(needle), "{needle} missing from {m}");
    }

    let (s, v) = fw
        .post(
            &format!("{wo}/rectify"),
            json!({"by": "刘强", "note": "杂物已清理", "photo_url": "https://img.example.org/2.jpg"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let m = mail(&smtp, op, "【隐患整改·待复查】").await;
    for needle in [
        "杂物已清理",
        "刘强",
        "https://img.example.org/2.jpg",
        "复查现场",
    ] {
        assert!(m.contains(needle), "{needle} missing from {m}");
    }
    let (s, v) = fw
        .post(
            &format!("{wo}/verify"),
            json!({"by": "张伟", "accept": false, "note": "楼梯口仍有纸箱"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let m = mail(&smtp, &manager, "【隐患整改·退回重改】").await;
    assert!(m.contains("楼梯口仍有纸箱"), "{m}");
    let (s, _) = fw
        .post(
            &format!("{wo}/rectify"),
            json!({"by": "刘强", "note": "纸箱已搬走"}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = fw
        .post(
            &format!("{wo}/verify"),
            json!({"by": "张伟", "accept": true, "note": "复查合格"}),
        )
        .await;
    assert_eq!(s, 200);
    for rcpt in [manager.as_str(), op] {
        let m = mail(&smtp, rcpt, "【隐患整改·已销号】").await;
        assert!(m.contains("复查合格"), "{m}");
    }
    // created, sent_back and closed to the manager; both rectifications and the closing to
    // the operator: each once, each with its `notified` entry.
    let w = common::wait_for("every attempt in the history", WAIT, || async {
        let w = fw.get(&wo).await;
        let notified = w["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["what"] == "notified")
            .count();
        (notified == 6).then_some(w)
    })
    .await;
    assert_eq!(
        order_steps(&w),
        ["created", "rectified", "sent_back", "rectified", "accepted"]
    );
    assert_eq!(mails_to(&smtp.maildir, &manager).len(), 3);
    assert_eq!(mails_to(&smtp.maildir, op).len(), 3);
    let rows = fw
        .get(&format!("/api/v1/notifications?workorder={id}"))
        .await;
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 6, "{rows:?}");
    assert!(rows
        .iter()
        .all(|r| r["status"] == "sent" && r["workorder"] == id.as_str()));
    assert!(rows.iter().all(|r| r["alert"].is_null()));

    // An order without an alert, past its deadline: the manager and the fire office.
    let (s, v) = fw
        .post(
            "/api/v1/workorders",
            json!({"building": b, "description": "二层防火门闭门器损坏", "by": "王五",
                   "deadline_s": 600}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let late = v["id"].as_str().unwrap().to_owned();
    mail(&smtp, &manager, "二层防火门闭门器损坏").await;
    assert!(
        texts(&smtp, office, "二层防火门闭门器损坏").is_empty(),
        "not yet"
    );
    fw.advance(601 * SEC).await;
    let m = mail(&smtp, office, "【隐患整改·已超期】").await;
    assert!(
        m.contains(&late) && m.contains("二层防火门闭门器损坏"),
        "{m}"
    );
    mail(&smtp, &manager, "【隐患整改·已超期】").await;
    // (The shared broker carries other tests' devices too: only this building's mails count.)
    let stray = texts(&smtp, DUTY, &format!("X-Firewatch-Building: {b}"));
    assert!(
        stray.is_empty(),
        "the roster covers the building: {stray:?}"
    );

    let r = fw
        .get(&format!("/api/v1/reports/workorders?building={b}"))
        .await;
    let row = &r["rows"][0];
    assert_eq!(r["rows"].as_array().unwrap().len(), 1, "{r}");
    for (k, want) in [
        ("raised", 2),
        ("auto", 0),
        ("rectified", 1),
        ("sent_back", 1),
        ("closed", 1),
        ("overdue", 1),
        ("open", 1),
    ] {
        assert_eq!(row[k], want, "{k}: {r}");
    }
    assert!(row["close_median_s"].as_f64().is_some(), "{r}");
    fw.stop().await;
}
