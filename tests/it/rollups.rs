//! Rollups on the manual clock and the real broker: readings with known values land in the
//! right 5 min, 1 h and 1 day buckets (min, max, mean and count worked out here by hand), a
//! late reading updates its old bucket, `step=auto` picks coarser steps for longer ranges,
//! a restart counts nothing twice, and the rollups stay when retention prunes the raw readings.
//! Each test has a broker of its own, so the backlog and cursor it reads are its own.

use crate::common;
use crate::common::{unique, wait_for, Api, InProcess, Publisher};
use firewatch::clock::Clock;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

/// A firewatch on a broker of its own: its rollup backlog and cursor are its own readings'
/// (on the shared broker, other tests' readings would be rolled up too).
async fn own() -> (common::Mosquitto, InProcess) {
    let broker = common::Mosquitto::start();
    let url = broker.url();
    let fw = InProcess::start_with("", move |c| c.mqtt.url = url).await;
    (broker, fw)
}

/// Publishes `pressure_mpa` readings `(ts, value)` of a water-pressure device and waits until
/// the broker took them all.
async fn publish(broker: &common::Mosquitto, device: &str, readings: &[(i64, f64)]) {
    let mut p = Publisher::connect(&broker.url()).await;
    let topic = format!("fw/v1/b-{device}/water_pressure/{device}/telemetry");
    for (ts, v) in readings {
        p.send(
            &topic,
            json!({"ts": ts, "values": {"pressure_mpa": v}}).to_string(),
        )
        .await;
    }
    p.flush().await;
}

/// `GET /api/v1/devices/{device}/readings?{query}` as an array.
async fn history(fw: &InProcess, device: &str, query: &str) -> Vec<Value> {
    fw.get(&format!("/api/v1/devices/{device}/readings?{query}"))
        .await
        .as_array()
        .cloned()
        .unwrap()
}

/// Readings counted in the buckets of `step` over all time.
async fn counted(fw: &InProcess, device: &str, step: &str) -> i64 {
    history(
        fw,
        device,
        &format!("step={step}&since=0&until=9999999999999"),
    )
    .await
    .iter()
    .map(|b| b["count"].as_i64().unwrap())
    .sum()
}

/// Waits until every step's buckets count `n` readings of `device`.
async fn wait_counted(fw: &InProcess, device: &str, n: i64) {
    wait_for(
        &format!("{n} readings of {device} rolled up"),
        WAIT,
        || async {
            for step in ["5m", "1h", "1d"] {
                if counted(fw, device, step).await != n {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
}

/// min, max, mean and count of `values`, worked out directly.
fn by_hand(values: &[f64]) -> (f64, f64, f64, i64) {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    (min, max, mean, values.len() as i64)
}

/// The readings grouped into buckets of `width` ms, by bucket start.
fn grouped(readings: &[(i64, f64)], width: i64) -> BTreeMap<i64, Vec<f64>> {
    let mut g: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for (ts, v) in readings {
        g.entry(ts.div_euclid(width) * width).or_default().push(*v);
    }
    g
}

/// Checks the buckets the API returns for `step` against the readings, bucket by bucket.
async fn check_buckets(fw: &InProcess, device: &str, step: &str, width: i64, all: &[(i64, f64)]) {
    let got = history(
        fw,
        device,
        &format!("step={step}&since=0&until=9999999999999"),
    )
    .await;
    let want = grouped(all, width);
    assert_eq!(got.len(), want.len(), "{step} buckets: {got:?}");
    for (b, (start, values)) in got.iter().zip(want.iter()) {
        let (min, max, mean, count) = by_hand(values);
        assert_eq!(b["ts"], firewatch::model::rfc3339(*start), "{step}: {b}");
        assert_eq!(b["step"], step);
        assert_eq!(b["metric"], "pressure_mpa");
        assert_eq!(b["channel"], Value::Null);
        assert_eq!(b["count"].as_i64().unwrap(), count, "{step}: {b}");
        // Within 1e-9: values such as 0.20 + 4 × 0.01 are not exact in binary.
        assert!(
            (b["min"].as_f64().unwrap() - min).abs() < 1e-9,
            "{step}: {b}, min {min}"
        );
        assert!(
            (b["max"].as_f64().unwrap() - max).abs() < 1e-9,
            "{step}: {b}, max {max}"
        );
        assert!(
            (b["mean"].as_f64().unwrap() - mean).abs() < 1e-9,
            "{step}: {b}, mean by hand {mean}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_land_in_their_buckets_and_a_late_one_updates_its_old_bucket() {
    let (broker, fw) = own().await;
    let dev = unique("wp-rb");
    // Two hours ago, on a whole hour: buckets are whole multiples of their step.
    let h0 = fw.clock.now_ms().div_euclid(HOUR) * HOUR - 2 * HOUR;
    let mut all = vec![
        (h0, 0.30),
        (h0 + MIN, 0.10),
        (h0 + 4 * MIN, 0.50),
        (h0 + 5 * MIN + 1, 0.20),
        (h0 + HOUR, 0.40),
    ];
    publish(&broker, &dev, &all).await;
    wait_counted(&fw, &dev, 5).await;
    // 5m: {0.30, 0.10, 0.50} at h0 (min 0.10, max 0.50, mean 0.30), {0.20}, {0.40}.
    let five = history(&fw, &dev, &format!("step=5m&since={h0}")).await;
    assert_eq!(five.len(), 3, "{five:?}");
    assert_eq!(five[0]["count"], 3);
    assert_eq!(five[0]["min"], 0.10);
    assert_eq!(five[0]["max"], 0.50);
    assert!((five[0]["mean"].as_f64().unwrap() - 0.30).abs() < 1e-9);
    // 1h: {0.30, 0.10, 0.50, 0.20} (mean 0.275) and {0.40}.
    let hours = history(&fw, &dev, &format!("step=1h&since={h0}")).await;
    assert_eq!(hours.len(), 2, "{hours:?}");
    assert_eq!(hours[0]["count"], 4);
    assert!((hours[0]["mean"].as_f64().unwrap() - 0.275).abs() < 1e-9);
    assert_eq!(hours[1]["count"], 1);
    assert_eq!(hours[1]["min"], 0.40);
    assert_eq!(hours[1]["ts"], firewatch::model::rfc3339(h0 + HOUR));
    for (step, width) in [("5m", 5 * MIN), ("1h", HOUR), ("1d", DAY)] {
        check_buckets(&fw, &dev, step, width, &all).await;
    }

    // A late reading, 30 s into the first bucket, after the later ones: it updates that bucket.
    let late = (h0 + 30_000, 0.05);
    publish(&broker, &dev, &[late]).await;
    all.push(late);
    wait_counted(&fw, &dev, 6).await;
    let five = history(&fw, &dev, &format!("step=5m&since={h0}")).await;
    assert_eq!(five[0]["count"], 4, "{five:?}");
    assert_eq!(five[0]["min"], 0.05);
    for (step, width) in [("5m", 5 * MIN), ("1h", HOUR), ("1d", DAY)] {
        check_buckets(&fw, &dev, step, width, &all).await;
    }

    // Raw rows as before, and a short range without `step` answers with them.
    let raw = history(&fw, &dev, &format!("step=raw&since={h0}")).await;
    assert_eq!(raw.len(), 6);
    assert_eq!(raw[0]["value"], 0.30);
    assert_eq!(raw[1]["value"], 0.05, "oldest first, by device time");
    let auto = history(&fw, &dev, &format!("since={h0}")).await;
    assert_eq!(auto, raw);
    // `metric=` filters buckets too.
    assert!(history(&fw, &dev, "step=1h&since=0&metric=level_m")
        .await
        .is_empty());
    let r = fw
        .http
        .get(format!("{}/api/v1/devices/{dev}/readings?step=2h", fw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("step"), "{body}");
    assert_eq!(fw.metric("firewatch_rollup_backlog").await, 0.0);
    fw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_picks_a_coarser_step_for_a_longer_range() {
    let (broker, fw) = own().await;
    let dev = unique("wp-ra");
    // Two days, one reading every 2 minutes: 1,440 readings, 576 five-minute buckets, 48 hours.
    let start = fw.clock.now_ms().div_euclid(DAY) * DAY - 2 * DAY;
    let all: Vec<(i64, f64)> = (0..1440)
        .map(|i| (start + i * 2 * MIN, 0.30 + (i % 7) as f64 * 0.01))
        .collect();
    publish(&broker, &dev, &all).await;
    wait_counted(&fw, &dev, 1440).await;
    let range = format!("since={start}&until={}", start + 2 * DAY - 1);
    let step_of = |rows: &[Value]| {
        rows.first().map(|r| {
            r.get("step")
                .and_then(Value::as_str)
                .unwrap_or("raw")
                .to_owned()
        })
    };
    let raw = history(&fw, &dev, &format!("{range}&limit=2000")).await;
    assert_eq!((raw.len(), step_of(&raw).as_deref()), (1440, Some("raw")));
    let five = history(&fw, &dev, &format!("{range}&limit=1000")).await;
    assert_eq!((five.len(), step_of(&five).as_deref()), (576, Some("5m")));
    let hours = history(&fw, &dev, &format!("{range}&limit=100")).await;
    assert_eq!((hours.len(), step_of(&hours).as_deref()), (48, Some("1h")));
    let days = history(&fw, &dev, &format!("{range}&limit=10")).await;
    assert_eq!((days.len(), step_of(&days).as_deref()), (2, Some("1d")));
    assert_eq!(days[0]["count"], 720);
    // Too many even by the day: the coarsest step, cut at the limit.
    let one = history(&fw, &dev, &format!("{range}&limit=1")).await;
    assert_eq!((one.len(), step_of(&one).as_deref()), (1, Some("1d")));
    fw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_survive_a_restart_without_double_counting() {
    let (broker, mut fw) = own().await;
    let dev = unique("wp-rr");
    let start = fw.clock.now_ms().div_euclid(HOUR) * HOUR - 20 * HOUR;
    let all: Vec<(i64, f64)> = (0..1000)
        .map(|i| (start + i * MIN, 0.20 + (i % 11) as f64 * 0.01))
        .collect();
    publish(&broker, &dev, &all[..600]).await;
    fw.wait_messages(&dev, 600).await;
    // Restart at once: the worker may be anywhere in these 600 readings.
    fw.restart().await;
    publish(&broker, &dev, &all[600..]).await;
    fw.wait_messages(&dev, 1000).await;
    wait_counted(&fw, &dev, 1000).await;
    wait_for("no rollup backlog", WAIT, || async {
        (fw.metric("firewatch_rollup_backlog").await == 0.0).then_some(())
    })
    .await;
    for (step, width) in [("5m", 5 * MIN), ("1h", HOUR), ("1d", DAY)] {
        check_buckets(&fw, &dev, step, width, &all).await;
    }
    // Once more, with nothing new: still exact.
    fw.restart().await;
    wait_for("the rollup cursor after the restart", WAIT, || async {
        (fw.metric("firewatch_rollup_cursor").await > 0.0).then_some(())
    })
    .await;
    for (step, width) in [("5m", 5 * MIN), ("1h", HOUR), ("1d", DAY)] {
        check_buckets(&fw, &dev, step, width, &all).await;
    }
    fw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_stay_after_retention_prunes_the_raw_readings() {
    let (broker, fw) = own().await;
    let dev = unique("wp-rp");
    let t0 = fw.clock.now_ms().div_euclid(HOUR) * HOUR - HOUR;
    let all: Vec<(i64, f64)> = (0..12)
        .map(|i| (t0 + i * 5 * MIN, 0.25 + i as f64 * 0.01))
        .collect();
    publish(&broker, &dev, &all).await;
    wait_counted(&fw, &dev, 12).await;
    let range = format!("since={}&until={}", t0 - HOUR, t0 + 2 * HOUR);
    assert_eq!(
        history(&fw, &dev, &format!("step=raw&{range}")).await.len(),
        12
    );

    // Past `storage.retention_days` (30): housekeeping prunes the readings (the newest reading
    // of the store always stays, so another device reports once meanwhile).
    fw.advance(31 * DAY).await;
    let other = unique("wp-rp-other");
    publish(&broker, &other, &[(fw.clock.now_ms(), 0.3)]).await;
    fw.wait_messages(&other, 1).await;
    fw.advance(11 * MIN).await;
    wait_for("the raw readings pruned", WAIT, || async {
        history(&fw, &dev, &format!("step=raw&{range}"))
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    for (step, width) in [("5m", 5 * MIN), ("1h", HOUR), ("1d", DAY)] {
        check_buckets(&fw, &dev, step, width, &all).await;
    }
    // A range beyond the raw retention comes from the rollups.
    let auto = history(&fw, &dev, &range).await;
    assert_eq!(auto.len(), 12, "{auto:?}");
    assert_eq!(auto[0]["step"], "5m");

    // Past `storage.rollup_retention_days` (365) the rollups go as well.
    fw.advance(335 * DAY).await;
    wait_for("the rollups pruned", WAIT, || async {
        (counted(&fw, &dev, "1d").await == 0).then_some(())
    })
    .await;
    fw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_while_rolling_up_counts_every_stored_reading_once() {
    // A private broker: the binary's persistent session redelivers after the kill, and no other
    // test's traffic reaches it.
    let broker = common::Mosquitto::start();
    let mut fw = common::Firewatch::start(common::Options {
        mqtt_url: Some(broker.url()),
        ..Default::default()
    })
    .await;
    let dev = unique("wp-rk");
    let topic = format!("fw/v1/b-{dev}/water_pressure/{dev}/telemetry");
    let start = common::wall_ms().div_euclid(HOUR) * HOUR - 10 * HOUR;
    let n = 5000;
    let mut p = Publisher::connect(&broker.url()).await;
    for i in 0..n {
        let payload = json!({"ts": start + i * 6_000, "seq": i, "values": {"pressure_mpa": 0.3}});
        p.send(&topic, payload.to_string()).await;
    }
    wait_for("a first rollup batch merged", WAIT, || async {
        (fw.metric("firewatch_rollup_cursor").await > 0.0).then_some(())
    })
    .await;
    fw.kill9();
    fw.restart().await;
    p.flush().await;
    let raw_count = || async {
        fw.get(&format!(
            "/api/v1/devices/{dev}/readings?step=raw&since=0&limit=100000"
        ))
        .await
        .as_array()
        .unwrap()
        .len() as i64
    };
    let total = |step: &'static str| {
        let (fw, dev) = (&fw, &dev);
        async move {
            fw.get(&format!(
                "/api/v1/devices/{dev}/readings?step={step}&since=0"
            ))
            .await
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["count"].as_i64().unwrap())
            .sum::<i64>()
        }
    };
    // Every message is stored at least once (a redelivered one that `seq` cannot tell from a
    // counter reset may be stored twice: ingest is at least once); whatever is stored, the
    // rollups count exactly once.
    let stored = wait_for("every reading stored and rolled up", WAIT, || async {
        let raw = raw_count().await;
        let idle = fw.metric("firewatch_rollup_backlog").await == 0.0;
        (raw >= n && idle && total("1d").await == raw).then_some(raw)
    })
    .await;
    for step in ["5m", "1h", "1d"] {
        assert_eq!(
            total(step).await,
            stored,
            "{step}: every stored reading once"
        );
    }
    assert_eq!(raw_count().await, stored);
}

/// One message of 300 channels is 300 readings and 900 bucket deltas in whichever pass reads
/// it: more than one part (256 deltas), so the merge goes in parts, one commit each, with a
/// look for a waiting event between two. Every channel still ends in its buckets once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_larger_than_a_part_is_merged_in_parts_and_counted_once() {
    let (broker, fw) = own().await;
    let dev = unique("wp-rp");
    let ts = fw.clock.now_ms().div_euclid(HOUR) * HOUR - 3 * HOUR;
    let values: serde_json::Map<String, Value> = (0..300)
        .map(|i| (format!("c{i:03}"), json!(f64::from(i + 1) / 1024.0)))
        .collect();
    let mut p = Publisher::connect(&broker.url()).await;
    p.send(
        &format!("fw/v1/b-{dev}/water_pressure/{dev}/telemetry"),
        json!({"ts": ts, "values": {"pressure_mpa": values}}).to_string(),
    )
    .await;
    p.flush().await;
    wait_counted(&fw, &dev, 300).await;
    for step in ["5m", "1h", "1d"] {
        let rows = history(
            &fw,
            &dev,
            &format!("step={step}&since=0&until=9999999999999"),
        )
        .await;
        assert_eq!(rows.len(), 300, "{step}");
        for r in &rows {
            let ch = r["channel"].as_str().unwrap();
            let i: f64 = ch[1..].parse().unwrap();
            let v = (i + 1.0) / 1024.0;
            assert_eq!(r["count"], 1, "{step} {ch}");
            assert_eq!(
                (r["min"].as_f64(), r["max"].as_f64()),
                (Some(v), Some(v)),
                "{step} {ch}"
            );
        }
    }
    // The worker counts a batch after the pipeline's answer, a moment after the commit that
    // the history above already shows. (Other tests publish to the same broker: their readings
    // may be rolled up here too, so these are lower bounds.)
    wait_for("the batch counted", WAIT, || async {
        (fw.metric("firewatch_rollup_deltas_total").await >= 900.0).then_some(())
    })
    .await;
    // 900 deltas in at least ⌈900 / 256⌉ = 4 parts.
    let parts = fw.metric("firewatch_rollup_parts_total").await;
    assert!(parts >= 4.0, "{parts} parts");
    fw.stop().await;
}

/// `GET {path}` as text, after checking the status and the content type.
async fn body_text(fw: &InProcess, path: &str) -> String {
    let r = fw
        .http
        .get(format!("{}{path}", fw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    assert_eq!(
        r.headers()[reqwest::header::CONTENT_TYPE],
        "application/json",
        "{path}"
    );
    r.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_keeps_its_bytes_and_auto_keeps_to_a_point_budget_without_a_limit() {
    let (broker, fw) = own().await;
    let dev = unique("wp-rj");
    // Six days, a reading every 150 s: 3,456 readings, 1,728 five-minute buckets (both more
    // than the 1,500 points of `auto` without a limit), 144 hours, 6 days. The values repeat
    // every 4 readings (0.25, 0.375, 0.5, 0.625): the means are 0.3125 and 0.5625 per five
    // minutes and 0.4375 per hour and day, so every number of the answers is short and exact in
    // binary, and the text parses back to the same numbers.
    let start = fw.clock.now_ms().div_euclid(DAY) * DAY - 6 * DAY;
    let all: Vec<(i64, f64)> = (0..3456)
        .map(|i| (start + i * 150_000, 0.25 + (i % 4) as f64 * 0.125))
        .collect();
    publish(&broker, &dev, &all).await;
    wait_counted(&fw, &dev, 3456).await;
    let path = |q: &str| {
        format!(
            "/api/v1/devices/{dev}/readings?since={start}&until={}{q}",
            start + 6 * DAY - 1
        )
    };

    let mut seen = Vec::new();
    for (q, rows, step) in [
        // No limit: the budget picks the hours.
        ("", 144, "1h"),
        // An explicit limit as before: the finest resolution that fits it.
        ("&limit=2000", 1728, "5m"),
        ("&limit=1500", 144, "1h"),
        ("&limit=10000", 3456, "raw"),
        ("&step=5m", 1728, "5m"),
        ("&step=1d", 6, "1d"),
    ] {
        let text = body_text(&fw, &path(q)).await;
        let v: Vec<Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(v.len(), rows, "{q}");
        assert_eq!(
            v[0].get("step").and_then(Value::as_str).unwrap_or("raw"),
            step,
            "{q}"
        );
        // The text is what serde_json writes for these values: no spaces, the fields in name
        // order, numbers in their shortest form, no NaN.
        assert_eq!(text, serde_json::to_string(&v).unwrap(), "{q}");
        assert!(!text.contains("NaN") && !text.contains("inf"), "{q}");
        seen.push(text);
    }
    let first_hour = &seen[0][..seen[0].find('}').unwrap() + 1];
    assert_eq!(
        first_hour,
        format!(
            r#"[{{"channel":null,"count":24,"max":0.625,"mean":0.4375,"metric":"pressure_mpa","min":0.25,"step":"1h","ts":"{}"}}"#,
            firewatch::model::rfc3339(start)
        )
    );
    let first_raw = &seen[3][..seen[3].find('}').unwrap() + 1];
    assert_eq!(
        first_raw,
        format!(
            r#"[{{"channel":null,"metric":"pressure_mpa","ts":"{}","value":0.25}}"#,
            firewatch::model::rfc3339(start)
        )
    );
    // The budget answers the same as an explicit limit of 1,500.
    assert_eq!(seen[0], seen[2]);
    for (step, width) in [("5m", 5 * MIN), ("1h", HOUR), ("1d", DAY)] {
        check_buckets(&fw, &dev, step, width, &all).await;
    }

    // A day fits the budget: raw readings, as before rollups existed.
    let day = history(
        &fw,
        &dev,
        &format!("since={start}&until={}", start + DAY - 1),
    )
    .await;
    assert_eq!(day.len(), 576);
    assert!(day[0].get("step").is_none(), "{}", day[0]);
    // An empty range is an empty array.
    assert_eq!(
        body_text(
            &fw,
            &format!("/api/v1/devices/{dev}/readings?since=0&until=1000")
        )
        .await,
        "[]"
    );
    fw.stop().await;
}
