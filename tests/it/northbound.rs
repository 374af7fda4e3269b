//! Northbound forwarding to an upstream (city) platform against real parts: firewatch in the
//! test process on the manual clock (`InProcess`, on the shared test broker), a second, private
//! Mosquitto as the upstream broker, and a small real HTTP receiver started by the test.
//!
//! Delivery is at least once: a record may arrive twice (after a reconnect or a retry), so the
//! tests dedupe by the idempotency key and then require every record of the store's change
//! feed (alerts and devices), and with readings included every reading, each once or more, in
//! id order.

use crate::common::*;
use firewatch::northbound::NorthboundConfig;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// The alert and device changes in the store, in id order: (id, kind, building, body).
fn store_changes(dir: &Path) -> Vec<(i64, String, String, Value)> {
    let conn = firewatch::store::open_reader(dir).unwrap();
    firewatch::store::changes::after(&conn, 0, None, 100_000)
        .unwrap()
        .into_iter()
        .filter(|c| c.kind == "alert" || c.kind == "device")
        .map(|c| {
            let body: Value = serde_json::from_str(&c.body).unwrap();
            (c.id, c.kind, c.building, body)
        })
        .collect()
}

/// The first arrival of each key, in arrival order.
fn dedupe(got: &[(String, Value)], key_field: &str) -> Vec<(String, Value)> {
    let mut seen = HashSet::new();
    got.iter()
        .filter(|(_, r)| seen.insert(r[key_field].as_str().unwrap().to_owned()))
        .cloned()
        .collect()
}

/// A subscriber on the upstream broker with a persistent session (kept across the broker's
/// restart); it reconnects by itself.
struct Upstream {
    got: Arc<Mutex<Vec<(String, Value)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    async fn subscribe(url: &str, filter: &str) -> Upstream {
        let u = url::Url::parse(url).unwrap();
        let mut o = MqttOptions::new(unique("city-sub"), u.host_str().unwrap(), u.port().unwrap());
        o.set_clean_session(false)
            .set_keep_alive(Duration::from_secs(5));
        let (client, mut el) = AsyncClient::new(o, 100);
        client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
        let got: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let (suback_tx, suback_rx) = tokio::sync::oneshot::channel();
        let g = Arc::clone(&got);
        let task = tokio::spawn(async move {
            let _client = client;
            let mut suback = Some(suback_tx);
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(tx) = suback.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let v: Value = serde_json::from_slice(&p.payload).unwrap();
                        g.lock().unwrap().push((p.topic.clone(), v));
                    }
                    Ok(_) => {}
                    // The broker is down: rumqttc reconnects on the next poll.
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        tokio::time::timeout(T, suback_rx).await.unwrap().unwrap();
        Upstream { got, task }
    }

    fn got(&self) -> Vec<(String, Value)> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn mqtt_target(url: &str) -> NorthboundConfig {
    toml::from_str(&format!(
        r#"
        name = "city"
        url = "{url}"
        topic = "city/v1/{{building}}/{{type}}"
        include = ["alert", "device"]
        batch = 4
        timeout_s = 5
        backoff_max_s = 2
        key_field = "requestId"
        [fields]
        platformBuildingId = "building"
        eventTime = "at"
        eventType = "type"
        level = "alert.severity"
        alertId = "alert.id"
        what = "what"
        state = "state"
        [constants]
        platform = "firewatch-test"
        "#
    ))
    .unwrap()
}

/// Checks that `got` (deduped) is exactly the store's alert and device changes, in order,
/// mapped as configured; returns how many.
fn check_mapped(dir: &Path, got: &[(String, Value)]) -> usize {
    let want = store_changes(dir);
    let firsts = dedupe(got, "requestId");
    let keys: Vec<&str> = firsts
        .iter()
        .map(|(_, r)| r["requestId"].as_str().unwrap())
        .collect();
    let want_keys: Vec<String> = want
        .iter()
        .map(|(id, ..)| format!("firewatch:change:{id}"))
        .collect();
    assert_eq!(keys, want_keys, "every change once or more, in order");
    for ((topic, r), (_, kind, building, body)) in firsts.iter().zip(&want) {
        assert_eq!(topic, &format!("city/v1/{building}/{kind}"));
        assert_eq!(r["platformBuildingId"], building.as_str(), "{r}");
        assert_eq!(r["eventType"], kind.as_str());
        assert_eq!(r["platform"], "firewatch-test");
        assert!(r["eventTime"].as_str().unwrap().ends_with('Z'), "{r}");
        if kind == "alert" {
            assert_eq!(r["level"], body["alert"]["severity"], "{r}");
            assert_eq!(r["alertId"], body["alert"]["id"]);
            assert_eq!(r["what"], body["what"]);
            assert_eq!(r["state"], Value::Null);
        } else {
            assert_eq!(r["state"], body["state"], "{r}");
            assert_eq!(r["level"], Value::Null);
        }
    }
    want.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_and_device_changes_reach_the_upstream_broker_in_order_across_its_outage() {
    let mut broker = Mosquitto::start();
    let upstream = Upstream::subscribe(&broker.url(), "city/v1/#").await;
    let target = mqtt_target(&broker.url());
    let fw = InProcess::start_with("", |c| c.northbound = vec![target]).await;
    let dir = fw.store_dir().to_owned();
    let connected = r#"firewatch_northbound_connected{target="city"}"#;
    let backlog = r#"firewatch_northbound_backlog_records{target="city"}"#;

    // Alerts fired and acknowledged, transmitters coming online.
    let (b1, b2) = (unique("nbm"), unique("nbm"));
    let a1 = fire_alarm(&fw, &b1).await;
    let a2 = fire_alarm(&fw, &b2).await;
    let (s, _) = fw
        .post(
            &format!("/api/v1/alerts/{a1}/ack"),
            json!({"by": "Li Wei", "note": "on site"}),
        )
        .await;
    assert_eq!(s, 200);
    // Past the transmitters' offline timeout (and the critical alerts' first escalation).
    fw.advance(600_000).await;
    wait_for("the devices offline", T, || async {
        let devs = store_changes(&dir)
            .into_iter()
            .filter(|(_, kind, building, b)| {
                kind == "device" && b["state"] == "offline" && [&b1, &b2].contains(&building)
            })
            .count();
        (devs == 2).then_some(())
    })
    .await;
    let before = wait_for("every change upstream", T, || async {
        let n = store_changes(&dir).len();
        let got = upstream.got();
        (dedupe(&got, "requestId").len() == n).then_some(got)
    })
    .await;
    let n1 = check_mapped(&dir, &before);
    assert!(
        n1 >= 8,
        "fired ×2, acknowledged, online ×2, offline ×2, escalated: {n1}"
    );
    assert_eq!(fw.metric(connected).await, 1.0);
    wait_for("no backlog", T, || async {
        (fw.metric(backlog).await == 0.0).then_some(())
    })
    .await;

    // The upstream broker goes away; alerts and changes go on.
    broker.stop();
    let b3 = unique("nbm");
    let a3 = fire_alarm(&fw, &b3).await;
    let (s, _) = fw
        .post(
            &format!("/api/v1/alerts/{a2}/ack"),
            json!({"by": "Zhang Min"}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = fw
        .post(
            &format!("/api/v1/alerts/{a3}/ack"),
            json!({"by": "Zhang Min"}),
        )
        .await;
    assert_eq!(s, 200);
    wait_for("the backlog while the broker is down", T, || async {
        let down = fw.metric(connected).await == 0.0;
        (down && fw.metric(backlog).await >= 4.0).then_some(())
    })
    .await;
    assert!(
        fw.metric(r#"firewatch_northbound_failed_total{target="city"}"#)
            .await
            >= 1.0
    );

    // Back: nothing is lost and the order holds.
    broker.restart();
    let after = wait_for("every change upstream after the outage", T, || async {
        let n = store_changes(&dir).len();
        let got = upstream.got();
        (n > n1 && dedupe(&got, "requestId").len() == n).then_some(got)
    })
    .await;
    let n2 = check_mapped(&dir, &after);
    assert!(n2 >= n1 + 4, "{n1} then {n2}");
    wait_for("connected again, no backlog", T, || async {
        let up = fw.metric(connected).await == 1.0;
        (up && fw.metric(backlog).await == 0.0).then_some(())
    })
    .await;
    fw.stop().await;
}

/// The readings in the store, in id order.
fn store_readings(dir: &Path) -> Vec<firewatch::store::SpoolRow> {
    let conn = firewatch::store::open_reader(dir).unwrap();
    firewatch::store::spool_after(&conn, 0, 1_000_000).unwrap()
}

/// Checks the reading records upstream against the store: a copy of a record (a batch sent
/// again) is identical to its first arrival, the first arrivals are the store's readings in id
/// order (up to the newest of `mine`, the test's own devices; the shared broker brings other
/// tests' readings too), each as stored. Returns the first arrivals and the number of copies.
fn check_readings(
    dir: &Path,
    got: &[(String, Value)],
    mine: &[&str],
) -> (Vec<(String, Value)>, usize) {
    let readings: Vec<(String, Value)> = got
        .iter()
        .filter(|(_, r)| r["type"] == "reading")
        .cloned()
        .collect();
    let mut by_key: std::collections::HashMap<String, &(String, Value)> = Default::default();
    for r in &readings {
        let key = r.1["key"].as_str().unwrap().to_owned();
        if let Some(first) = by_key.insert(key, r) {
            assert_eq!(first, r, "a copy differs from its first arrival");
        }
    }
    let firsts = dedupe(&readings, "key");
    let store = store_readings(dir);
    let last_mine = store
        .iter()
        .filter(|r| mine.contains(&r.device.as_str()))
        .map(|r| r.id)
        .max()
        .unwrap();
    let want: Vec<&firewatch::store::SpoolRow> =
        store.iter().filter(|r| r.id <= last_mine).collect();
    assert!(
        firsts.len() >= want.len(),
        "{} of {}",
        firsts.len(),
        want.len()
    );
    for ((topic, r), w) in firsts.iter().zip(&want) {
        assert_eq!(
            r["key"],
            format!("firewatch:reading:{}", w.id),
            "in id order: {r}"
        );
        assert_eq!(r["id"], w.id);
        assert_eq!(
            topic,
            &format!("city/v1/{}/reading/{}", w.building, w.device)
        );
        assert_eq!(
            (&r["building"], &r["device"], &r["kind"], &r["metric"]),
            (
                &json!(w.building),
                &json!(w.device),
                &json!(w.kind),
                &json!(w.metric)
            ),
            "{r}"
        );
        assert_eq!(r["channel"], json!(w.channel));
        assert_eq!(r["value"].as_f64(), Some(w.value));
        assert_eq!(r["at"], firewatch::model::rfc3339(w.ts));
    }
    (firsts, readings.len() - by_key.len())
}

/// Publishes message `seq` of the test's two devices: a pressure, and an electrical monitor's
/// residual current and two temperatures (channels).
async fn readings(p: &mut Publisher, b: &str, seq: u64) {
    p.publish(
        &format!("fw/v1/{b}/water_pressure/wp-{b}/telemetry"),
        json!({"seq": seq, "values": {"pressure_mpa": 0.30 + seq as f64 / 1000.0}}).to_string(),
    )
    .await;
    p.publish(
        &format!("fw/v1/{b}/electrical/ef-{b}/telemetry"),
        json!({"seq": seq, "values": {
            "residual_current_ma": 100 + seq,
            "temperature_c": {"L1": 30.0 + seq as f64 / 10.0, "L2": 28.0}
        }})
        .to_string(),
    )
    .await;
}

/// The values of one device and metric upstream, in arrival order of their first copies.
fn values_of(firsts: &[(String, Value)], device: &str, metric: &str, ch: Value) -> Vec<f64> {
    firsts
        .iter()
        .filter(|(_, r)| r["device"] == device && r["metric"] == metric && r["channel"] == ch)
        .map(|(_, r)| r["value"].as_f64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_reach_the_upstream_broker_in_order_with_their_keys_across_its_outage() {
    let mut broker = Mosquitto::start();
    let upstream = Upstream::subscribe(&broker.url(), "city/v1/#").await;
    let url = broker.url();
    let target: NorthboundConfig = toml::from_str(&format!(
        r#"
        name = "city-readings"
        url = "{url}"
        topic = "city/v1/{{building}}/{{type}}/{{device}}"
        include = ["alert", "device", "reading"]
        batch = 8
        timeout_s = 5
        backoff_max_s = 2
        "#
    ))
    .unwrap();
    let batch = target.batch;
    let fw = InProcess::start_with("", |c| c.northbound = vec![target]).await;
    let dir = fw.store_dir().to_owned();
    let connected = r#"firewatch_northbound_connected{target="city-readings"}"#;
    let backlog = r#"firewatch_northbound_backlog_records{target="city-readings"}"#;
    let failed = r#"firewatch_northbound_failed_total{target="city-readings"}"#;
    let b = unique("nbr");
    let (wp, ef) = (format!("wp-{b}"), format!("ef-{b}"));
    let mine = [wp.as_str(), ef.as_str()];
    let mut p = Publisher::connect(&env("FW_TEST_MQTT_URL")).await;

    // Twelve messages of each device: 12 pressures and 36 electrical readings.
    for seq in 1..=12 {
        readings(&mut p, &b, seq).await;
    }
    fw.wait_messages(&ef, 12).await;
    let mine_upstream = |n: usize| {
        let upstream = &upstream;
        move || async move {
            let got = upstream.got();
            let firsts = dedupe(
                &got.iter()
                    .filter(|(_, r)| r["type"] == "reading")
                    .cloned()
                    .collect::<Vec<_>>(),
                "key",
            );
            let count = firsts
                .iter()
                .filter(|(_, r)| mine.contains(&r["device"].as_str().unwrap_or("")))
                .count();
            (count == n).then_some(got)
        }
    };
    let got = wait_for("the first 48 readings upstream", T, mine_upstream(48)).await;
    let (firsts, _) = check_readings(&dir, &got, &mine);
    assert_eq!(
        values_of(&firsts, &wp, "pressure_mpa", Value::Null).len(),
        12
    );
    assert_eq!(fw.metric(connected).await, 1.0);

    // The upstream broker goes away; readings keep coming and wait in the store.
    broker.stop();
    for seq in 13..=24 {
        readings(&mut p, &b, seq).await;
    }
    fw.wait_messages(&ef, 24).await;
    wait_for("the readings held while the broker is down", T, || async {
        let down = fw.metric(connected).await == 0.0;
        (down && fw.metric(backlog).await >= 48.0).then_some(())
    })
    .await;
    assert!(fw.metric(failed).await >= 1.0);

    // Back: every reading once (after dedupe by key), in order, the copies only of batches
    // sent again.
    broker.restart();
    let got = wait_for("all 96 readings upstream", T, mine_upstream(96)).await;
    let (firsts, copies) = check_readings(&dir, &got, &mine);
    let attempts_failed = fw.metric(failed).await as usize;
    assert!(
        copies <= batch * attempts_failed,
        "{copies} copies from {attempts_failed} failed batches of {batch}"
    );
    let want = |f: fn(u64) -> f64| (1..=24).map(f).collect::<Vec<f64>>();
    assert_eq!(
        values_of(&firsts, &wp, "pressure_mpa", Value::Null),
        want(|s| 0.30 + s as f64 / 1000.0)
    );
    assert_eq!(
        values_of(&firsts, &ef, "residual_current_ma", Value::Null),
        want(|s| 100.0 + s as f64)
    );
    assert_eq!(
        values_of(&firsts, &ef, "temperature_c", json!("L1")),
        want(|s| 30.0 + s as f64 / 10.0)
    );
    assert_eq!(
        values_of(&firsts, &ef, "temperature_c", json!("L2")),
        want(|_| 28.0)
    );
    wait_for("connected again", T, || async {
        (fw.metric(connected).await == 1.0).then_some(())
    })
    .await;
    fw.stop().await;
}

/// One request the platform got, and its answer.
#[derive(Debug, Clone)]
struct Posted {
    status: u16,
    key: String,
    records: Vec<Value>,
}

/// A platform that answers 503 to its first two requests, then 400 to any batch holding a
/// record of `poison` (an unknown building, say), and 200 to the rest.
async fn platform(poison: String) -> (String, Arc<Mutex<Vec<Posted>>>) {
    let got: Arc<Mutex<Vec<Posted>>> = Arc::default();
    let g = Arc::clone(&got);
    let app = axum::Router::new().fallback(
        move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let (g, poison) = (Arc::clone(&g), poison.clone());
            async move {
                let records: Vec<Value> = serde_json::from_slice(&body).unwrap();
                let key = headers
                    .get("idempotency-key")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                let mut g = g.lock().unwrap();
                let status = if g.len() < 2 {
                    503
                } else if records.iter().any(|r| r["building"] == poison.as_str()) {
                    400
                } else {
                    200
                };
                g.push(Posted {
                    status,
                    key,
                    records,
                });
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/city/v1/events", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_platform_gets_everything_after_its_503s_and_a_refused_record_is_set_aside() {
    let poison = unique("nbp");
    let (url, got) = platform(poison.clone()).await;
    let target: NorthboundConfig = toml::from_str(&format!(
        r#"
        name = "city-http"
        url = "{url}"
        batch = 50
        timeout_s = 5
        backoff_max_s = 1
        [headers]
        X-Api-Key = "k-0001"
        "#
    ))
    .unwrap();
    let fw = InProcess::start_with("", |c| c.northbound = vec![target]).await;
    let dir = fw.store_dir().to_owned();
    let (b1, b2) = (unique("nbh"), unique("nbh"));
    fire_alarm(&fw, &b1).await;
    fire_alarm(&fw, &poison).await;
    fire_alarm(&fw, &b2).await;
    let set_aside = r#"firewatch_northbound_set_aside_total{target="city-http"}"#;
    wait_for("the refused records set aside", T, || async {
        (fw.metric(set_aside).await == 2.0).then_some(())
    })
    .await;
    // Firewatch sees the other tests' devices on the shared broker too: compare with the
    // whole store, as it is when everything has arrived.
    let (accepted, bad) = wait_for("every other change accepted", T, || async {
        let (bad, good): (Vec<_>, Vec<_>) = store_changes(&dir)
            .into_iter()
            .partition(|(_, _, b, _)| *b == poison);
        let ok: Vec<(String, Value)> = got
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.status == 200)
            .flat_map(|p| p.records.iter().map(|r| (String::new(), r.clone())))
            .collect();
        let keys: Vec<String> = dedupe(&ok, "key")
            .into_iter()
            .map(|(_, r)| r["key"].as_str().unwrap().to_owned())
            .collect();
        let want: Vec<String> = good
            .iter()
            .map(|(id, ..)| format!("firewatch:change:{id}"))
            .collect();
        // Every one, once or more, in order, none lost.
        (keys == want).then_some((ok, bad))
    })
    .await;
    assert_eq!(
        bad.len(),
        2,
        "the poison building's alert and online change"
    );
    // As is: the change feed's record (the alert first: the pipeline records its transition
    // before the transmitter's liveness) with its key, building, device and kind on top.
    let first = dedupe(&accepted, "key")
        .into_iter()
        .map(|(_, r)| r)
        .find(|r| r["building"] == b1.as_str())
        .unwrap();
    assert_eq!(first["type"], "alert", "{first}");
    assert_eq!(first["what"], "fired");
    assert_eq!(first["device"], first["alert"]["device"]);
    assert_eq!(first["kind"], "transmitter");
    assert!(first["at"].as_str().is_some(), "{first}");
    let posted = got.lock().unwrap().clone();
    assert_eq!(
        posted.iter().take(2).map(|p| p.status).collect::<Vec<_>>(),
        [503, 503]
    );
    // The same batch again after the 503s: the same idempotency key.
    assert_eq!(posted[0].key, posted[1].key);
    assert!(posted
        .iter()
        .all(|p| p.key.starts_with("firewatch:change:")));
    assert!(posted.iter().any(|p| p.status == 400));
    assert!(
        fw.metric(r#"firewatch_northbound_failed_total{target="city-http"}"#)
            .await
            >= 3.0
    );
    // Kept, with the platform's answer.
    let conn = firewatch::store::open_reader(&dir).unwrap();
    let kept = firewatch::store::northbound::set_aside_of(&conn, "city-http").unwrap();
    let kept_keys: Vec<String> = kept.iter().map(|s| s.key.clone()).collect();
    let bad_keys: Vec<String> = bad
        .iter()
        .map(|(id, ..)| format!("firewatch:change:{id}"))
        .collect();
    assert_eq!(kept_keys, bad_keys);
    assert!(kept.iter().all(|s| s.error == "HTTP 400"));
    let rec: Value = serde_json::from_str(&kept[0].record).unwrap();
    assert_eq!(rec["building"], poison.as_str());
    fw.stop().await;
}

#[test]
fn northbound_configuration_loads_with_its_field_names_and_problems_have_key_paths() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fw.toml");
    std::fs::write(
        &file,
        r#"
        [[northbound]]
        name = "city"
        url = "https://platform.example.org/api/events"
        include = ["alert", "reading"]
        [northbound.fields]
        platformBuildingId = "building"
        eventTime = "at"
        [northbound.constants]
        platformCode = "SH-01"
        version = 2

        [[northbound]]
        name = "city"
        url = "mqtt://up.example.org"
        include = ["alarm"]
        "#,
    )
    .unwrap();
    let env = vec![(
        "FIREWATCH__NORTHBOUND__0__TOKEN".to_owned(),
        "s3cr3t-token".to_owned(),
    )];
    let cfg =
        firewatch::config::Config::load_from(Path::new("/nonexistent"), Some(&file), env).unwrap();
    let t = &cfg.northbound[0];
    assert_eq!(t.fields["platformBuildingId"], "building");
    assert_eq!(t.constants["platformCode"], "SH-01");
    assert_eq!(t.constants["version"], 2);
    assert_eq!(t.token.as_ref().unwrap().expose(), "s3cr3t-token");
    assert!(!format!("{t:?}").contains("s3cr3t"));
    let problems: Vec<String> = cfg.validate().iter().map(ToString::to_string).collect();
    for k in [
        "northbound[1].name",
        "northbound[1].topic",
        "northbound[1].include[0]",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(k)),
            "{k} missing from {problems:?}"
        );
    }
}
