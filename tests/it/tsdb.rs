//! The time-series path when the database refuses points: a refused (HTTP 4xx) point is set
//! aside and counted, and the spool goes on; it does not block every later reading.

use crate::common::*;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// A fake InfluxDB v2 write API — a fault injection: no real server refuses one chosen point on
/// demand (VictoriaMetrics even answers 204 to malformed lines). It answers 400 to any request
/// that carries the value `current_a=13.13` and keeps the lines of every other request.
async fn refusing_write_api() -> (String, Arc<Mutex<Vec<String>>>) {
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let app = axum::Router::new()
        .route(
            "/api/v2/write",
            post(
                |State(lines): State<Arc<Mutex<Vec<String>>>>, body: String| async move {
                    if body.contains("current_a=13.13") {
                        return (StatusCode::BAD_REQUEST, "unable to parse point".to_owned());
                    }
                    lines
                        .lock()
                        .unwrap()
                        .extend(body.lines().map(str::to_owned));
                    (StatusCode::NO_CONTENT, String::new())
                },
            ),
        )
        .with_state(Arc::clone(&lines));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_point_the_database_refuses_is_set_aside_and_the_spool_goes_on() {
    let (url, lines) = refusing_write_api().await;
    let b = unique("bpoison");
    let fw = Firewatch::start(Options {
        tsdb_url: Some(url),
        ..Default::default()
    })
    .await;
    let mut p = Publisher::connect(&env("FW_TEST_MQTT_URL")).await;
    let topic = format!("fw/v1/{b}/electrical/ef-{b}/telemetry");
    for i in 0..20 {
        let v = if i == 7 { 13.13 } else { f64::from(i) };
        p.send(&topic, json!({"values": {"current_a": v}}).to_string())
            .await;
    }
    p.flush().await;
    let device = format!("device=ef-{b}");
    let got = wait_for("the 19 accepted points", T, || async {
        let n = lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(&device))
            .count();
        (n == 19).then_some(n)
    })
    .await;
    assert_eq!(got, 19);
    assert_eq!(fw.metric("firewatch_tsdb_points_refused_total").await, 1.0);
    wait_for("spool drained", T, || async {
        (fw.metric("firewatch_tsdb_spool_points").await == 0.0).then_some(())
    })
    .await;
    // The refused reading is still in the embedded store.
    let stored = stored_values(&fw, &format!("ef-{b}"), "current_a").await;
    assert_eq!(stored.len(), 20);
    assert!(stored.contains(&13.13));
    // And later readings keep flowing.
    p.publish(&topic, json!({"values": {"current_a": 99.0}}).to_string())
        .await;
    wait_for("a later point", T, || async {
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(&device) && l.contains("current_a=99"))
            .then_some(())
    })
    .await;
}

/// A partial batch goes to the database as soon as the readings stop coming, not after the
/// flush interval (here an hour): a burst that ends is never left waiting in the spool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_batch_is_written_when_the_readings_pause() {
    let b = unique("bquiet");
    let fw = Firewatch::start(Options {
        tsdb_url: Some(env("FW_TEST_TSDB_URL")),
        env: vec![(
            "FIREWATCH__TSDB__FLUSH_INTERVAL_MS".into(),
            "3600000".into(),
        )],
        ..Default::default()
    })
    .await;
    let mut p = Publisher::connect(&env("FW_TEST_MQTT_URL")).await;
    let topic = format!("fw/v1/{b}/water_pressure/wp-{b}/telemetry");
    for i in 0..3 {
        p.publish(
            &topic,
            json!({"values": {"pressure_mpa": 0.3 + f64::from(i) / 100.0}}).to_string(),
        )
        .await;
    }
    let tsdb = env("FW_TEST_TSDB_URL");
    let points = wait_for("the three points in the TSDB", T, || async {
        let v = tsdb_values(&tsdb, &format!("{{device=\"wp-{b}\"}}")).await;
        (v.len() >= 3).then_some(v)
    })
    .await;
    assert_eq!(points.len(), 3, "{points:?}");
    wait_for("an empty spool", T, || async {
        (fw.metric("firewatch_tsdb_spool_points").await == 0.0).then_some(())
    })
    .await;
}
