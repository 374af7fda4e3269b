//! Alarm storms on the manual clock, with the shipped grouping (`[notify.group]` defaults:
//! wait 10 s, interval 30 s, critical at once) and rate limits (a WeCom robot takes 20
//! messages a minute), through a private broker so only the test's own alerts are told:
//! a storm becomes a few grouped messages, never more than the robot's limit in any minute,
//! every alert is accounted for (in the store, in the counts the messages give, and by id in
//! the e-mail digests), and none is later than grouping and the limit force.

use crate::common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

const OK: &str = r#"{"errcode":0,"errmsg":"ok"}"#;
const SEC: i64 = 1000;
const WAIT: Duration = Duration::from_secs(60);
/// Clock time a storm may take to go out: below the two minutes after which unacknowledged
/// fire alarms escalate (which would add messages of their own).
const LIMIT: i64 = 115 * SEC;

/// firewatch on a private broker with the shipped grouping, a WeCom robot at `robot` and
/// e-mail to the outbox folder.
async fn start(broker: &Mosquitto, robot: &Receiver) -> InProcess {
    let url = format!("{}/cgi-bin/webhook/send?key=storm", robot.base);
    let mqtt = broker.url();
    InProcess::start_with("", move |c| {
        c.mqtt.url = mqtt;
        c.notify.group = firewatch::notify::GroupConfig::default();
        c.email.to = vec!["duty@storm.test".into()];
        c.wecom = vec![serde_json::from_value(json!({"name": "duty", "url": url})).unwrap()];
    })
    .await
}

/// Publishes one camera event per device: `critical` of each building's devices see smoke
/// (critical), the others an e-bike in the elevator (major). Waits for every PUBACK.
async fn storm(broker: &Mosquitto, buildings: &[String], per_building: usize, critical: usize) {
    let mut p = Publisher::connect(&broker.url()).await;
    for b in buildings {
        for i in 0..per_building {
            let ev = if i >= per_building - critical {
                json!({"event": "smoke", "state": "start", "zone": "lobby"})
            } else {
                json!({"event": "ebike_in_elevator", "state": "start", "confidence": 0.93})
            };
            p.send(
                &format!("fw/v1/{b}/fire_lane/cam-{b}-{i:03}/event"),
                ev.to_string(),
            )
            .await;
        }
    }
    p.flush().await;
}

/// The outbox rows of `channel` telling of new alerts (all of them: the broker is private).
async fn rows(fw: &InProcess, channel: &str) -> Vec<Value> {
    fw.get(&format!(
        "/api/v1/notifications?channel={channel}&limit=10000"
    ))
    .await
    .as_array()
    .unwrap()
    .iter()
    .filter(|r| r["event"] == "fired")
    .cloned()
    .collect()
}

async fn round_at(fw: &InProcess, channel: &str) -> f64 {
    fw.metric(&format!(
        "firewatch_notify_round_clock_ms{{channel=\"{channel}\"}}"
    ))
    .await
}

/// Moves the clock by `step` until every row of both channels is sent (at most `limit` of
/// clock time); after each step, waits until both senders have finished a round at the new
/// time. Returns the robot's requests per clock time.
async fn run_out(
    fw: &InProcess,
    robot: &Receiver,
    n: usize,
    step: i64,
    limit: i64,
) -> Vec<(i64, usize)> {
    use firewatch::clock::Clock;
    let t0 = fw.clock.now_ms();
    let mut seen = 0;
    let mut per_time = Vec::new();
    loop {
        let now = fw.clock.now_ms();
        wait_for("both senders to finish a round", WAIT, || async {
            let ok = round_at(fw, "wecom").await >= now as f64
                && round_at(fw, "email").await >= now as f64;
            ok.then_some(())
        })
        .await;
        let got = robot.requests().len();
        if got > seen {
            per_time.push((now, got - seen));
            seen = got;
        }
        let sent = |v: &[Value]| v.iter().filter(|r| r["status"] == "sent").count();
        if sent(&rows(fw, "wecom").await) == n && sent(&rows(fw, "email").await) == n {
            return per_time;
        }
        assert!(
            now - t0 < limit,
            "not everything sent within {} s of clock time",
            limit / SEC
        );
        fw.advance(step).await;
    }
}

/// At most `max` messages in any 60 s of clock time.
fn assert_within_limit(per_time: &[(i64, usize)], max: usize) {
    for (i, (t, _)) in per_time.iter().enumerate() {
        let in_window: usize = per_time[i..]
            .iter()
            .take_while(|(u, _)| *u < t + 60 * SEC)
            .map(|(_, c)| c)
            .sum();
        assert!(
            in_window <= max,
            "{in_window} messages in the minute from {t}: {per_time:?}"
        );
    }
}

/// How many notifications a robot message stands for: 1 for a message of its own, else the
/// counts its digest title gives (`新告警 N 条` and `另有 M 条其他通知`).
fn told(content: &str) -> usize {
    let title = content.lines().next().unwrap();
    if !title.contains("【告警汇总】") {
        return 1;
    }
    let number_before = |marker: &str| -> usize {
        title.find(marker).map_or(0, |i| {
            let head = &title[..i];
            let digits: String = head
                .chars()
                .rev()
                .skip_while(|c| *c == ' ')
                .take_while(char::is_ascii_digit)
                .collect();
            digits.chars().rev().collect::<String>().parse().unwrap()
        })
    };
    number_before(" 条，").max(number_before(" 条"))
        + if title.contains("另有") {
            number_before(" 条其他通知")
        } else {
            0
        }
}

/// Every row sent no later than `max_ms` after it was queued; returns the latest.
fn assert_lateness(rows: &[Value], max_ms: i64) -> i64 {
    let ms = |v: &Value| {
        v.as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond()
    };
    let late = rows
        .iter()
        .map(|r| ms(&r["sent_at"]) - ms(&r["created_at"]))
        .max()
        .unwrap();
    assert!(
        late <= max_ms,
        "a row was sent {late} ms after it was queued"
    );
    late
}

/// The alert ids the e-mails of the outbox name (`X-Firewatch-Alert` of a single one,
/// `X-Firewatch-Alerts` of a digest), and the number of mails.
fn mailed_ids(dir: &std::path::Path) -> (HashSet<String>, usize) {
    let mut ids = HashSet::new();
    let mut mails = 0;
    for e in std::fs::read_dir(dir.join("outbox")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "eml") {
            continue;
        }
        mails += 1;
        let raw = std::fs::read_to_string(&p).unwrap().replace("\r\n ", " ");
        for line in raw.lines() {
            for h in ["X-Firewatch-Alert: ", "X-Firewatch-Alerts: "] {
                if let Some(v) = line.strip_prefix(h) {
                    ids.extend(v.split_whitespace().map(str::to_owned));
                }
            }
        }
    }
    (ids, mails)
}

async fn alert_ids(fw: &InProcess, buildings: &[String]) -> HashSet<String> {
    let mut ids = HashSet::new();
    for b in buildings {
        for a in fw.alerts(b).await {
            ids.insert(a["id"].as_str().unwrap().to_owned());
        }
    }
    ids
}

async fn wait_rows(fw: &InProcess, n: usize) {
    wait_for(&format!("{n} rows for each channel"), WAIT, || async {
        (rows(fw, "wecom").await.len() == n && rows(fw, "email").await.len() == n).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_200_alerts_in_one_building_is_a_couple_of_messages_with_all_of_them() {
    let broker = Mosquitto::start();
    let robot = Receiver::answering(vec![], (200, OK.into())).await;
    let fw = start(&broker, &robot).await;
    let b = vec![unique("bst")];
    storm(&broker, &b, 200, 10).await;
    wait_rows(&fw, 200).await;

    let per_time = run_out(&fw, &robot, 200, 5 * SEC, LIMIT).await;
    let msgs = robot.requests();
    // A fire alarm goes at once (with whatever was waiting); the rest after the interval.
    assert!(
        (1..=3).contains(&msgs.len()),
        "{} robot messages: {per_time:?}",
        msgs.len()
    );
    assert_within_limit(&per_time, 20);
    let contents: Vec<String> = msgs
        .iter()
        .map(|r| r.json()["markdown"]["content"].as_str().unwrap().to_owned())
        .collect();
    let total: usize = contents.iter().map(|c| told(c)).sum();
    assert_eq!(total, 200, "{contents:#?}");
    assert!(
        contents
            .iter()
            .any(|c| c.contains(&format!("【告警汇总】{}：新告警", b[0]))),
        "{contents:#?}"
    );
    // Nothing later than the group interval after it was queued.
    let wecom = rows(&fw, "wecom").await;
    assert_lateness(&wecom, 30 * SEC);

    // E-mail (no limit) is grouped the same way and names every alert.
    let ids = alert_ids(&fw, &b).await;
    assert_eq!(ids.len(), 200);
    let (mailed, mails) = mailed_ids(fw.store_dir());
    assert_eq!(mailed, ids);
    assert!(mails <= 3, "{mails} mails");
    // Each row's history names the message it went out in.
    let digests = fw
        .metric(r#"firewatch_notify_digests_total{channel="wecom"}"#)
        .await;
    assert!(digests >= 1.0);
    let full = fw
        .get(&format!("/api/v1/alerts/{}", ids.iter().min().unwrap()))
        .await;
    let step = full["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["what"] == "notified" && h["detail"]["channel"] == "wecom")
        .unwrap()
        .clone();
    assert!(
        step["detail"]["digest"]["key"]
            .as_str()
            .unwrap()
            .starts_with("digest:wecom:duty:"),
        "{step}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_2000_alerts_in_50_buildings_stays_within_the_robots_limit_and_loses_none() {
    let broker = Mosquitto::start();
    let robot = Receiver::answering(vec![], (200, OK.into())).await;
    let fw = start(&broker, &robot).await;
    let prefix = unique("bsx");
    let buildings: Vec<String> = (0..50).map(|i| format!("{prefix}-{i:02}")).collect();
    storm(&broker, &buildings, 40, 2).await;
    wait_rows(&fw, 2000).await;

    let per_time = run_out(&fw, &robot, 2000, 5 * SEC, LIMIT).await;
    let msgs = robot.requests();
    assert_within_limit(&per_time, 20);
    let contents: Vec<String> = msgs
        .iter()
        .map(|r| r.json()["markdown"]["content"].as_str().unwrap().to_owned())
        .collect();
    // Every notification is in some message's counts: none dropped, none twice.
    let total: usize = contents.iter().map(|c| told(c)).sum();
    assert_eq!(total, 2000, "{} messages", contents.len());
    // The limit forced folding: per-building summaries in one message.
    assert!(
        fw.metric(r#"firewatch_notify_folded_total{channel="wecom"}"#)
            .await
            >= 1.0
    );
    let folded = contents
        .iter()
        .find(|c| c.contains(" 栋楼："))
        .expect("a message of several buildings");
    assert!(
        folded
            .lines()
            .any(|l| l.contains(&format!("{prefix}-")) && l.contains("新告警")),
        "{folded}"
    );
    // Late only by what grouping and the limit force: the interval and one window.
    let wecom = rows(&fw, "wecom").await;
    let late = assert_lateness(&wecom, 90 * SEC);
    eprintln!(
        "2,000 alerts: {} robot messages, latest {late} ms after queueing; per clock time {per_time:?}",
        msgs.len()
    );

    // E-mail has no limit: a building's alerts stay in that building's mails, and every
    // alert is named.
    let ids = alert_ids(&fw, &buildings).await;
    assert_eq!(ids.len(), 2000);
    let (mailed, mails) = mailed_ids(fw.store_dir());
    assert_eq!(mailed, ids);
    assert!(mails <= 50 * 3, "{mails} mails");
    let by_status: BTreeMap<String, usize> =
        rows(&fw, "email")
            .await
            .iter()
            .fold(BTreeMap::new(), |mut m, r| {
                *m.entry(r["status"].as_str().unwrap().to_owned())
                    .or_default() += 1;
                m
            });
    assert_eq!(by_status, BTreeMap::from([("sent".to_owned(), 2000)]));
}
