//! Duty rosters over HTTP: who is on duty for a building at an instant, swaps and leaves
//! (`/api/v1/duty/overrides`) before, during and after them and across a restart, the caller's
//! mistakes, and the unstaffed check on a manual clock.

use crate::common::{wait_for, Api, Firewatch, InProcess, Options};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

const PEOPLE: &str = r#"
[[person]]
id = "p1"
name = "张伟"
email = "p1@test.local"
[[person]]
id = "p2"
name = "李娜"
[[person]]
id = "p3"
name = "王芳"
[[person]]
id = "p4"
name = "刘洋"
[[person]]
id = "p7"
name = "赵敏"
[[person]]
id = "m1"
name = "周经理"
[[person]]
id = "e1"
name = "Anna"
lang = "en"
"#;

/// A Shanghai room (day and night) watching `b-sh`, a Berlin room (one day shift, a gap at
/// night) watching `b-ber`.
fn roster() -> String {
    PEOPLE.to_owned()
        + r#"
[[control_room]]
id = "cr-sh"
name = "一号中控室"
tz = "Asia/Shanghai"
buildings = ["b-sh"]
[[control_room.shift]]
name = "day"
start = "08:00"
end = "20:00"
people = ["p1", "p2"]
[[control_room.shift]]
name = "night"
start = "20:00"
end = "08:00"
people = ["p3", "p4"]

[[control_room]]
id = "cr-ber"
name = "Berlin"
tz = "Europe/Berlin"
buildings = ["b-ber"]
[[control_room.shift]]
name = "day"
start = "08:00"
end = "16:00"
people = ["e1"]

[[building]]
id = "b-sh"
manager = "m1"
maintenance = "mc"
[[maintenance]]
id = "mc"
name = "维保公司"
people = ["p7"]
[fire_office]
name = "镇消防办"
"#
}

fn write_roster(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("duty.toml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn delete(api: &impl Api, path: &str) -> (u16, Value) {
    let r = api
        .http()
        .delete(format!("{}{path}", api.base()))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json::<Value>().await.unwrap_or(Value::Null))
}

async fn status_of(api: &impl Api, path: &str) -> u16 {
    api.http()
        .get(format!("{}{path}", api.base()))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Operator ids on duty for `building` at `at`.
async fn operators(api: &impl Api, building: &str, at: &str) -> Vec<String> {
    let d = api
        .get(&format!(
            "/api/v1/duty?building={building}&at={}",
            at.replace('+', "%2B")
        ))
        .await;
    d["operators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_swap_and_a_leave_change_who_is_on_duty_for_their_time_only() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_roster(&dir, &roster());
    let mut fw = Firewatch::start(Options {
        env: vec![("FIREWATCH__DUTY__FILE".into(), file.display().to_string())],
        ..Default::default()
    })
    .await;

    // The whole answer for a building, in the night shift that started the evening before.
    let d = fw
        .get("/api/v1/duty?building=b-sh&at=2030-06-01T02:00:00%2B08:00")
        .await;
    assert_eq!(d["control_room"]["id"], "cr-sh");
    assert_eq!(d["control_room"]["tz"], "Asia/Shanghai");
    assert_eq!(d["shift"]["name"], "night");
    assert_eq!(d["shift"]["day"], "2030-05-31");
    assert_eq!(d["shift"]["start"], "20:00");
    assert_eq!(d["shift"]["starts_at"], "2030-05-31T12:00:00.000Z");
    assert_eq!(d["shift"]["ends_at"], "2030-06-01T00:00:00.000Z");
    assert_eq!(d["unstaffed"], false);
    assert_eq!(d["manager"]["id"], "m1");
    assert_eq!(d["maintenance"]["people"][0]["id"], "p7");
    assert_eq!(d["fire_office"]["name"], "镇消防办");
    // The same instant in Berlin is 20:00: nobody there.
    let b = fw
        .get("/api/v1/duty?building=b-ber&at=2030-06-01T02:00:00%2B08:00")
        .await;
    assert_eq!(
        (b["shift"].clone(), b["unstaffed"].clone()),
        (Value::Null, json!(true))
    );

    let before = "2030-06-01T09:00:00+08:00";
    let during = "2030-06-01T11:00:00+08:00";
    let after = "2030-06-01T12:00:00+08:00";
    assert_eq!(operators(&fw, "b-sh", before).await, ["p1", "p2"]);

    let (code, swap) = fw
        .post(
            "/api/v1/duty/overrides",
            json!({"control_room": "cr-sh", "shift": "day", "from": "2030-06-01T10:00:00+08:00",
                   "until": after, "replace": "p1", "with": "p7", "by": "值班长",
                   "note": "调班"}),
        )
        .await;
    assert_eq!(code, 201, "{swap}");
    assert_eq!(swap["status"], "future");
    assert_eq!(swap["from"], "2030-06-01T02:00:00.000Z");
    let swap_id = swap["id"].as_str().unwrap().to_owned();
    let (code, leave) = fw
        .post(
            "/api/v1/duty/overrides",
            json!({"control_room": "cr-sh", "from": "2030-06-01T10:30:00+08:00",
                   "until": "2030-06-01T11:30:00+08:00", "replace": "p2", "with": null,
                   "by": "值班长"}),
        )
        .await;
    assert_eq!(code, 201, "{leave}");

    assert_eq!(operators(&fw, "b-sh", before).await, ["p1", "p2"], "before");
    assert_eq!(
        operators(&fw, "b-sh", "2030-06-01T10:15:00+08:00").await,
        ["p7", "p2"],
        "the swap"
    );
    assert_eq!(
        operators(&fw, "b-sh", during).await,
        ["p7"],
        "swap and leave"
    );
    let d = fw
        .get("/api/v1/duty?building=b-sh&at=2030-06-01T11:00:00%2B08:00")
        .await;
    assert_eq!(d["overrides"].as_array().unwrap().len(), 2);
    assert_eq!(operators(&fw, "b-sh", after).await, ["p1", "p2"], "after");

    let list = fw.get("/api/v1/duty/overrides").await;
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], swap_id, "ordered by from");

    // Overrides are in the store: a restart loads them.
    fw.stop();
    fw.restart().await;
    assert_eq!(
        operators(&fw, "b-sh", during).await,
        ["p7"],
        "after a restart"
    );

    // Ending the swap now: it never applies.
    let (code, ended) = delete(&fw, &format!("/api/v1/duty/overrides/{swap_id}")).await;
    assert_eq!(code, 200, "{ended}");
    assert_eq!(ended["status"], "ended");
    assert_eq!(
        operators(&fw, "b-sh", during).await,
        ["p1"],
        "only the leave"
    );
    assert_eq!(
        delete(&fw, &format!("/api/v1/duty/overrides/{swap_id}"))
            .await
            .0,
        409
    );
    assert_eq!(delete(&fw, "/api/v1/duty/overrides/o-999999").await.0, 404);
    assert_eq!(delete(&fw, "/api/v1/duty/overrides/nonsense").await.0, 404);
    assert_eq!(
        fw.get("/api/v1/duty/overrides")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn mistakes_in_an_override_are_400s_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_roster(&dir, &roster());
    let fw = Firewatch::start(Options {
        env: vec![("FIREWATCH__DUTY__FILE".into(), file.display().to_string())],
        ..Default::default()
    })
    .await;
    let good = json!({"control_room": "cr-sh", "from": "2030-06-01T10:00:00+08:00",
                      "until": "2030-06-01T12:00:00+08:00", "replace": "p1", "with": "p7",
                      "by": "值班长"});
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    for (body, says) in [
        (
            with("control_room", json!("cr-nowhere")),
            "unknown control room",
        ),
        (with("shift", json!("evening")), "has no shift"),
        (with("replace", json!("ghost")), "replace: unknown person"),
        (with("with", json!("ghost")), "with: unknown person"),
        (with("with", json!("p1")), "someone other"),
        (
            with("until", json!("2030-06-01T10:00:00+08:00")),
            "after from",
        ),
        (
            with("until", json!("2030-06-01T09:00:00+08:00")),
            "after from",
        ),
        (with("from", json!("tomorrow")), "RFC 3339"),
        (
            with("from", json!("2020-01-01T00:00:00Z"))
                .as_object()
                .cloned()
                .map(|mut o| {
                    o.insert("until".into(), json!("2020-01-02T00:00:00Z"));
                    Value::Object(o)
                })
                .unwrap(),
            "in the past",
        ),
        (with("colour", json!("red")), "unknown field"),
    ] {
        let (code, v) = fw.post("/api/v1/duty/overrides", body.clone()).await;
        assert_eq!(code, 400, "{body}: {v}");
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains(says), "{body}: {msg:?} should say {says:?}");
    }
    let mut no_until = good.clone();
    no_until.as_object_mut().unwrap().remove("until");
    assert_eq!(fw.post("/api/v1/duty/overrides", no_until).await.0, 400);
    assert!(fw
        .get("/api/v1/duty/overrides")
        .await
        .as_array()
        .unwrap()
        .is_empty());
    // Queries.
    assert_eq!(status_of(&fw, "/api/v1/duty?building=b-none").await, 404);
    assert_eq!(status_of(&fw, "/api/v1/duty?at=yesterday").await, 400);
    assert_eq!(status_of(&fw, "/api/v1/duty?colour=red").await, 400);
}

/// Epoch ms of the next UTC midnight at least a day after `now`.
fn next_midnight(now: i64) -> i64 {
    (now / 86_400_000 + 2) * 86_400_000
}

#[tokio::test]
async fn a_room_with_nobody_on_duty_is_counted_and_shown_unstaffed() {
    use firewatch::clock::Clock;
    // `cr-gap` is staffed 08:00–09:00 UTC only; `cr-full` around the clock.
    let text = PEOPLE.to_owned()
        + r#"
[[control_room]]
id = "cr-gap"
name = "Gap"
tz = "UTC"
buildings = ["b-gap"]
[[control_room.shift]]
name = "morning"
start = "08:00"
end = "09:00"
people = ["p1"]
[[control_room]]
id = "cr-full"
name = "Full"
tz = "Asia/Urumqi"
buildings = ["b-full"]
[[control_room.shift]]
name = "all-day"
start = "00:00"
end = "00:00"
people = ["p3"]
"#;
    let dir = tempfile::tempdir().unwrap();
    let file = write_roster(&dir, &text);
    let fw = InProcess::start_with("", |cfg| cfg.duty.file = file.clone()).await;
    let gauge = |n: f64| {
        let fw = &fw;
        async move {
            wait_for(&format!("{n} unstaffed rooms"), T, || async {
                (fw.metric("firewatch_duty_unstaffed_rooms").await == n).then_some(())
            })
            .await;
        }
    };
    let day = next_midnight(fw.clock.now_ms());
    // 08:30 UTC: both staffed.
    fw.advance(day + 8 * 3_600_000 + 1_800_000 - fw.clock.now_ms())
        .await;
    gauge(0.0).await;
    // 09:30 UTC: the gap.
    fw.advance(3_600_000).await;
    gauge(1.0).await;
    let all = fw.get("/api/v1/duty").await;
    let rooms = all["control_rooms"].as_array().unwrap();
    let gap = rooms
        .iter()
        .find(|r| r["control_room"]["id"] == "cr-gap")
        .unwrap();
    assert_eq!(gap["unstaffed"], true, "{gap}");
    assert_eq!(gap["shift"], Value::Null);
    let tomorrow_8 = firewatch::model::rfc3339(day + 86_400_000 + 8 * 3_600_000);
    assert_eq!(gap["next_change_at"], tomorrow_8.as_str());
    assert_eq!(gap["next"]["shift"]["name"], "morning");
    assert_eq!(gap["next"]["operators"][0]["id"], "p1");
    let full = rooms
        .iter()
        .find(|r| r["control_room"]["id"] == "cr-full")
        .unwrap();
    assert_eq!(full["unstaffed"], false);
    assert_eq!(full["operators"][0]["id"], "p3");
    // A leave of the only operator of `cr-full` makes it unstaffed too, at once.
    let now = fw.clock.now_ms();
    let (code, v) = fw
        .post(
            "/api/v1/duty/overrides",
            json!({"control_room": "cr-full", "from": firewatch::model::rfc3339(now),
                   "until": firewatch::model::rfc3339(now + 3_600_000), "replace": "p3",
                   "by": "值班长", "note": "病假"}),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["status"], "active");
    gauge(2.0).await;
    // Past the leave and into the next morning: both staffed again.
    fw.advance(day + 86_400_000 + 8 * 3_600_000 + 60_000 - fw.clock.now_ms())
        .await;
    gauge(0.0).await;
    assert!(fw
        .get("/api/v1/duty/overrides")
        .await
        .as_array()
        .unwrap()
        .is_empty());
    fw.stop().await;
}
