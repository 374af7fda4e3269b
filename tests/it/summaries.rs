//! The daily summary (每日汇总) on the manual clock, through the real SMTP capture server: at
//! 08:00 in the control room's time zone each building's fire-safety manager gets one mail
//! with the building's devices offline, data-quality findings, open alerts and work orders
//! (overdue marked) and the false alarms of the last 24 hours; a restart sends nothing twice;
//! the next day brings the next one; one can be asked for on demand.

use crate::common;
use crate::common::{
    fire_alarm, mails_to, unique, wait_for, Api, InProcess, Mail, Publisher, SmtpServer,
};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const SEC: i64 = 1000;
const DUTY: &str = "duty@summaries.test";

fn shanghai() -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get("Asia/Shanghai").unwrap()
}

/// The first 07:00 in Shanghai after the wall time, as epoch ms and its local date.
fn next_seven() -> (i64, jiff::civil::Date) {
    let now = jiff::Timestamp::now().to_zoned_datetime(shanghai());
    let mut day = now.date();
    loop {
        let t = day
            .at(7, 0, 0, 0)
            .to_zoned_datetime(shanghai())
            .unwrap()
            .timestamp();
        if t > now.timestamp() {
            return (t.as_millisecond(), day);
        }
        day = day.tomorrow().unwrap();
    }
}

fn eight_on(day: jiff::civil::Date) -> i64 {
    day.at(8, 0, 0, 0)
        .to_zoned_datetime(shanghai())
        .unwrap()
        .timestamp()
        .as_millisecond()
}

/// Moves the clock to `t` (never backwards) and waits for the pipeline's tick there.
async fn advance_to(fw: &InProcess, t: i64) {
    use firewatch::clock::Clock;
    let now = fw.clock.now_ms();
    assert!(t >= now, "the clock does not go back");
    fw.advance(t - now).await;
}

/// The summary mails to `rcpt` (the ones with an `X-Firewatch-Summary` header).
fn summary_mails(smtp: &SmtpServer, rcpt: &str) -> Vec<Mail> {
    mails_to(&smtp.maildir, rcpt)
        .into_iter()
        .filter(|m| m.raw.contains("X-Firewatch-Summary: "))
        .collect()
}

async fn wait_summary_mails(smtp: &SmtpServer, rcpt: &str, n: usize) -> Vec<Mail> {
    wait_for(&format!("{n} summary mails to {rcpt}"), WAIT, || async {
        let m = summary_mails(smtp, rcpt);
        (m.len() >= n).then_some(m)
    })
    .await
}

async fn device_state(fw: &InProcess, id: &str) -> String {
    fw.get(&format!("/api/v1/devices/{id}")).await["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn wait_state(fw: &InProcess, id: &str, state: &str) {
    wait_for(&format!("{id} {state}"), WAIT, || async {
        (device_state(fw, id).await == state).then_some(())
    })
    .await;
}

/// Ids of the building's alerts that are not closed.
async fn open_alert_ids(fw: &InProcess, b: &str) -> BTreeSet<String> {
    fw.alerts(b)
        .await
        .iter()
        .filter(|a| a["status"] != "closed")
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

fn ids(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn summaries(fw: &InProcess, b: &str) -> Vec<Value> {
    fw.get(&format!("/api/v1/summaries?building={b}"))
        .await
        .as_array()
        .cloned()
        .unwrap()
}

/// Every daily-summary row of the outbox to `target`.
async fn summary_rows(fw: &InProcess, target: &str) -> Vec<Value> {
    fw.get("/api/v1/notifications?limit=10000")
        .await
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["event"] == "daily_summary" && n["target"] == target)
        .cloned()
        .collect()
}

/// Two buildings with managers (one named by the roster, one by the registry, who reads
/// English) get one summary each at 08:00 local with what their building holds; a restart
/// and later ticks send nothing twice; the next morning brings the next day's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_manager_gets_one_daily_summary_at_eight_local_time() {
    let (b1, b2) = (unique("bsum"), unique("bsum"));
    let smtp = SmtpServer::start(0);
    let dir = tempfile::tempdir().unwrap();
    let (m1, m2) = (format!("m1@{b1}.test"), format!("m2@{b2}.test"));
    let roster = dir.path().join("duty.toml");
    std::fs::write(
        &roster,
        format!(
            r#"
[[person]]
id = "op"
name = "张伟"
email = "op@cr.test"
[[person]]
id = "mgr1"
name = "刘强"
email = "{m1}"
[[person]]
id = "mgr2"
name = "Lee"
email = "{m2}"
lang = "en"
[[control_room]]
id = "cr"
name = "一号消防控制室"
tz = "Asia/Shanghai"
buildings = ["{b1}", "{b2}"]
  [[control_room.shift]]
  name = "all day"
  start = "08:00"
  end = "08:00"
  people = ["op"]
[[building]]
id = "{b1}"
manager = "mgr1"
"#
        ),
    )
    .unwrap();
    let (wp1, wp2, cam, el) = (
        format!("wp-{b1}-1"),
        format!("wp-{b1}-2"),
        format!("cam-{b1}"),
        format!("el-{b1}"),
    );
    let tx1 = format!("tx-{b1}");
    let wp3 = format!("wp-{b2}-1");
    let registry = format!(
        r#"
[[building]]
id = "{b1}"
name = "滨江大厦"
[[building]]
id = "{b2}"
name = "江北花园"
manager = "mgr2"
[[device]]
id = "{wp1}"
building = "{b1}"
kind = "water_pressure"
location = "B1 泵房"
[[device]]
id = "{wp2}"
building = "{b1}"
kind = "water_pressure"
location = "屋顶水箱"
[[device]]
id = "{cam}"
building = "{b1}"
kind = "fire_lane"
location = "2号电梯"
[[device]]
id = "{tx1}"
building = "{b1}"
kind = "transmitter"
[[device]]
id = "{el}"
building = "{b1}"
kind = "electrical"
location = "3F 电井"
[[device]]
id = "{wp3}"
building = "{b2}"
kind = "water_pressure"
location = "地下水泵房"
"#
    );
    let (seven, day1) = next_seven();
    let url = smtp.url();
    let mut fw = InProcess::start_at(seven, &registry, |c| {
        c.email.to = vec![DUTY.into()];
        c.email.smtp_url = Some(firewatch::settings::Secret::new(url));
        c.duty.file = roster.clone();
    })
    .await;

    // 07:00: the devices report. Those announcing a week's interval stay online; the two
    // that do not are offline after 15 minutes of silence; the weak signal is a finding.
    let mut p = Publisher::connect(&common::env("FW_TEST_MQTT_URL")).await;
    let week = json!({"interval_s": 604_800});
    for (b, kind, d, body) in [
        (
            &b1,
            "water_pressure",
            &wp2,
            json!({"interval_s": 604_800, "rssi_dbm": -110}),
        ),
        (&b1, "fire_lane", &cam, week.clone()),
        (&b1, "transmitter", &tx1, week.clone()),
    ] {
        p.publish(&format!("fw/v1/{b}/{kind}/{d}/status"), body.to_string())
            .await;
    }
    for (b, d) in [(&b1, &wp1), (&b1, &wp2), (&b2, &wp3)] {
        p.publish(
            &format!("fw/v1/{b}/water_pressure/{d}/telemetry"),
            json!({"values": {"pressure_mpa": 0.32}}).to_string(),
        )
        .await;
    }
    fw.wait_messages(&wp2, 2).await;
    fw.wait_messages(&wp3, 1).await;
    fw.wait_messages(&tx1, 1).await;
    fw.wait_messages(&cam, 1).await;
    fw.wait_messages(&wp1, 1).await;
    fw.advance(40 * 60 * SEC).await;
    wait_state(&fw, &wp1, "offline").await;
    wait_state(&fw, &wp3, "offline").await;
    assert_eq!(device_state(&fw, &wp2).await, "online");

    // 07:40: an e-bike in the lift (open), a fire alarm closed as a false alarm, a work order
    // in each building — b2's due in ten minutes.
    p.publish(
        &format!("fw/v1/{b1}/fire_lane/{cam}/event"),
        json!({"event": "ebike_in_elevator", "state": "start", "zone": "lift-2",
               "confidence": 0.93})
        .to_string(),
    )
    .await;
    let ebike = fw
        .wait_alert(&b1, "fire_lane.ebike", &cam, |_| true, WAIT)
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let false_alarm = fire_alarm(&fw, &b1).await;
    let (s, v) = fw
        .post(
            &format!("/api/v1/alerts/{false_alarm}/close"),
            json!({"by": "张伟", "classification": "false_alarm", "note": "烟感受潮误报"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = fw
        .post(
            "/api/v1/workorders",
            json!({"building": b1, "description": "二层防火门闭门器损坏", "by": "张伟",
                   "deadline_s": 86_400}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let wo1 = v["id"].as_str().unwrap().to_owned();
    let (s, v) = fw
        .post(
            "/api/v1/workorders",
            json!({"building": b2, "description": "消防通道堆放杂物", "by": "张伟",
                   "deadline_s": 600}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let wo2 = v["id"].as_str().unwrap().to_owned();

    // A second before 08:00: nothing yet.
    let eight = eight_on(day1);
    advance_to(&fw, eight - SEC).await;
    assert!(summaries(&fw, &b1).await.is_empty());
    assert!(summaries(&fw, &b2).await.is_empty());
    let open1 = open_alert_ids(&fw, &b1).await;
    let open2 = open_alert_ids(&fw, &b2).await;

    // 08:00.
    advance_to(&fw, eight).await;
    let date = day1.to_string();
    let mail1 = wait_summary_mails(&smtp, &m1, 1).await;
    let mail2 = wait_summary_mails(&smtp, &m2, 1).await;

    // What the store says it said: the counts and ids of each building.
    let list1 = summaries(&fw, &b1).await;
    assert_eq!(list1.len(), 1, "{list1:?}");
    assert_eq!(list1[0]["day"], date.as_str());
    assert_eq!(list1[0]["reason"], "scheduled");
    let sid1 = list1[0]["id"].as_str().unwrap().to_owned();
    let s1 = fw.get(&format!("/api/v1/summaries/{sid1}")).await;
    let snap = &s1["snapshot"];
    assert_eq!(snap["created_at"], firewatch::model::rfc3339(eight));
    assert_eq!(ids(&snap["offline"]), BTreeSet::from([wp1.clone()]));
    assert_eq!(ids(&snap["never_seen"]), BTreeSet::from([el.clone()]));
    assert_eq!(ids(&snap["quality"]), BTreeSet::from([wp2.clone()]));
    assert_eq!(snap["quality"][0]["quality"], json!(["weak_signal"]));
    // The e-bike and wp1's offline alert; the false alarm is closed.
    assert_eq!(ids(&snap["open_alerts"]), open1);
    assert!(
        open1.contains(&ebike) && !open1.contains(&false_alarm),
        "{open1:?}"
    );
    assert_eq!(open1.len(), 2, "{open1:?}");
    assert_eq!(ids(&snap["workorders"]), BTreeSet::from([wo1.clone()]));
    assert_eq!(snap["workorders"][0]["overdue"], false);
    assert_eq!(
        ids(&snap["false_alarms"]),
        BTreeSet::from([false_alarm.clone()])
    );
    for (k, want) in [
        ("devices", 5),
        ("online", 3),
        ("offline", 1),
        ("never_seen", 1),
        ("quality", 1),
        ("open_alerts", 2),
        ("workorders", 1),
        ("workorders_overdue", 0),
        ("false_alarms", 1),
    ] {
        assert_eq!(snap["counts"][k], want, "{k}: {snap:#}");
    }
    let rows = s1["notifications"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["target"], m1.as_str());
    assert_eq!(
        rows[0]["key"],
        format!("summary:{b1}:{date}:email:{m1}").as_str()
    );

    let list2 = summaries(&fw, &b2).await;
    assert_eq!(list2.len(), 1, "{list2:?}");
    let sid2 = list2[0]["id"].as_str().unwrap().to_owned();
    let s2 = fw.get(&format!("/api/v1/summaries/{sid2}")).await;
    let snap2 = &s2["snapshot"];
    assert_eq!(ids(&snap2["offline"]), BTreeSet::from([wp3.clone()]));
    assert_eq!(ids(&snap2["open_alerts"]), open2);
    assert_eq!(ids(&snap2["workorders"]), BTreeSet::from([wo2.clone()]));
    assert_eq!(snap2["workorders"][0]["overdue"], true);
    assert_eq!(snap2["counts"]["workorders_overdue"], 1);
    assert_eq!(snap2["counts"]["false_alarms"], 0);

    // The mails people read: Chinese for 刘强, English for Lee, times in UTC+8.
    assert_eq!(mail1.len(), 1);
    assert_eq!(
        mail1[0].decoded_subject(),
        format!("[firewatch] 每日消防物联汇总 · 滨江大厦 · {date}")
    );
    let t = mail1[0].text();
    let local_eight = format!("{date} 08:00:00 (UTC+08:00)");
    for needle in [
        format!("X-Firewatch-Summary: {sid1}"),
        format!("X-Firewatch-Building: {b1}"),
        "X-Firewatch-Event: daily_summary".to_owned(),
        format!("统计时间：{local_eight}"),
        "设备：共 5 台，在线 3 台，离线 1 台，未接入 1 台".to_owned(),
        format!("离线设备：1 台（{wp1}）"),
        format!("- {wp1} B1 泵房，最后上报 {date} 07:00:00 (UTC+08:00)"),
        format!("- {el} 3F 电井"),
        format!("- {wp2} 屋顶水箱：信号弱"),
        "未关闭告警：2 条".to_owned(),
        format!("- {ebike} 【重要】电动车违规进梯/充电 {cam} 2号电梯"),
        format!("- {wo1} 待整改：二层防火门闭门器损坏"),
        "近24小时误报：1 次".to_owned(),
        format!("- {false_alarm} 火灾报警 {tx1}"),
        "由 张伟 确认为误报".to_owned(),
        format!("/api/v1/summaries/{sid1}"),
    ] {
        assert!(t.contains(&needle), "{needle} missing from {t}");
    }
    for id in &open1 {
        assert!(t.contains(id.as_str()), "{id} missing from {t}");
    }
    assert!(!t.contains("【已超期】"), "{t}");
    assert_eq!(
        mail2[0].decoded_subject(),
        format!("[firewatch] Daily fire-safety IoT summary · 江北花园 · {date}")
    );
    let t2 = mail2[0].text();
    for needle in [
        format!("- {wo2} to rectify: 消防通道堆放杂物"),
        "[OVERDUE]".to_owned(),
        format!("Offline: 1 devices ({wp3})"),
        "False alarms, last 24 h: 0".to_owned(),
    ] {
        assert!(t2.contains(&needle), "{needle} missing from {t2}");
    }
    assert!(!t2.contains(&b1), "only its own building: {t2}");

    // Delivered (and recorded) before the restart, so nothing is pending to go again.
    for m in [&m1, &m2] {
        wait_for(
            &format!("the summary to {m} recorded sent"),
            WAIT,
            || async {
                let r = summary_rows(&fw, m).await;
                (r.len() == 1 && r[0]["status"] == "sent").then_some(())
            },
        )
        .await;
    }
    // A restart after 08:00 and ticks later that day make and send nothing again.
    fw.restart().await;
    fw.advance(60 * SEC).await;
    fw.advance(3 * 3600 * SEC).await;
    for (b, m) in [(&b1, &m1), (&b2, &m2)] {
        assert_eq!(summaries(&fw, b).await.len(), 1, "{b}");
        assert_eq!(summary_rows(&fw, m).await.len(), 1, "{m}");
        assert_eq!(summary_mails(&smtp, m).len(), 1, "{m}");
    }

    // The next morning: the next day's, once each.
    let day2 = day1.tomorrow().unwrap();
    advance_to(&fw, eight_on(day2) - SEC).await;
    assert_eq!(summaries(&fw, &b1).await.len(), 1);
    advance_to(&fw, eight_on(day2)).await;
    let m = wait_summary_mails(&smtp, &m1, 2).await;
    assert!(
        m[1].decoded_subject().ends_with(&day2.to_string()),
        "{}",
        m[1].decoded_subject()
    );
    wait_summary_mails(&smtp, &m2, 2).await;
    fw.advance(60 * SEC).await;
    for (b, m) in [(&b1, &m1), (&b2, &m2)] {
        let l = summaries(&fw, b).await;
        assert_eq!(l.len(), 2, "{b}: {l:?}");
        assert_eq!(l[0]["day"], day2.to_string().as_str());
        assert_eq!(summary_rows(&fw, m).await.len(), 2, "{m}");
    }
    // Counted since the restart: the second day's two.
    assert_eq!(
        fw.metric("firewatch_summaries_total{reason=\"scheduled\"}")
            .await,
        2.0
    );
    fw.stop().await;
}

/// An operator asks for a summary now: it goes to the manager at once, with its own key;
/// an unknown building is 404, a building whose manager has no contact 409, a bad body 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_summary_on_demand_goes_out_at_once() {
    let (b1, b3) = (unique("bsod"), unique("bsod"));
    let smtp = SmtpServer::start(0);
    let dir = tempfile::tempdir().unwrap();
    let m1 = format!("m1@{b1}.test");
    let roster = dir.path().join("duty.toml");
    std::fs::write(
        &roster,
        format!(
            r#"
[[person]]
id = "op"
name = "张伟"
email = "op@cr.test"
[[person]]
id = "mgr1"
name = "刘强"
email = "{m1}"
[[control_room]]
id = "cr"
name = "一号消防控制室"
tz = "Asia/Shanghai"
buildings = ["{b1}"]
  [[control_room.shift]]
  name = "all day"
  start = "08:00"
  end = "08:00"
  people = ["op"]
[[building]]
id = "{b1}"
manager = "mgr1"
"#
        ),
    )
    .unwrap();
    let registry = format!(
        r#"
[[building]]
id = "{b1}"
name = "滨江大厦"
[[building]]
id = "{b3}"
manager = "王经理"
"#
    );
    // 07:00 local: nothing scheduled is due.
    let (seven, day) = next_seven();
    let url = smtp.url();
    let fw = InProcess::start_at(seven, &registry, |c| {
        c.email.to = vec![DUTY.into()];
        c.email.smtp_url = Some(firewatch::settings::Secret::new(url));
        c.duty.file = roster.clone();
    })
    .await;
    let (s, v) = fw
        .post(
            "/api/v1/summaries/send",
            json!({"building": b1, "by": "值班长"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["reason"], "on_demand");
    assert_eq!(v["requested_by"], "值班长");
    assert_eq!(v["day"], day.to_string().as_str());
    let sid = v["id"].as_str().unwrap().to_owned();
    let rows = v["notifications"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{v}");
    assert_eq!(
        rows[0]["key"],
        format!("summary:{b1}:{day}:{sid}:email:{m1}").as_str()
    );
    let m = wait_summary_mails(&smtp, &m1, 1).await;
    assert!(m[0].raw.contains(&format!("X-Firewatch-Summary: {sid}")));
    assert!(
        m[0].text().contains("【每日汇总】滨江大厦"),
        "{}",
        m[0].text()
    );

    for (body, status) in [
        (json!({"building": "nowhere-at-all", "by": "x"}), 404),
        (json!({"building": b3, "by": "x"}), 409),
        (json!({"building": "", "by": "x"}), 400),
    ] {
        let (s, v) = fw.post("/api/v1/summaries/send", body.clone()).await;
        assert_eq!(s, status, "{body}: {v}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    }
    // The 08:00 one is still made: an on-demand summary is not the day's.
    advance_to(&fw, eight_on(day)).await;
    wait_summary_mails(&smtp, &m1, 2).await;
    let l = summaries(&fw, &b1).await;
    assert_eq!(l.len(), 2, "{l:?}");
    assert_eq!(l[0]["reason"], "scheduled");
    assert_eq!(l[1]["reason"], "on_demand");
    assert!(summaries(&fw, &b3).await.is_empty());
    fw.stop().await;
}
