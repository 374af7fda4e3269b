//! Coverage (接入率 / 在线率) for a small registry, computed by hand here, from messages sent
//! through the real broker: a device that reports, one that announces itself offline with its
//! last will, one that goes silent past its offline timeout on the manual clock and comes back,
//! one registered but never seen, and one that reports without being registered.

use crate::common;
use crate::common::{unique, Api, InProcess, Publisher};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coverage_follows_the_devices_building_by_building() {
    let (a, b) = (unique("bcova"), unique("bcovb"));
    let registry = format!(
        r#"
[[building]]
id = "{a}"
name = "一号楼"
expected = {{ water_pressure = 1, transmitter = 1, electrical = 1 }}
required = ["water_pressure", "transmitter", "electrical"]
[[building]]
id = "{b}"
expected = {{ fire_lane = 1 }}
required = ["fire_lane"]
[[device]]
id = "wp-{a}"
building = "{a}"
kind = "water_pressure"
interval_s = 60
[[device]]
id = "tx-{a}"
building = "{a}"
kind = "transmitter"
[[device]]
id = "ef-{a}"
building = "{a}"
kind = "electrical"
"#
    );
    let fw = InProcess::start(&registry).await;
    let mut p = Publisher::connect(&common::env("FW_TEST_MQTT_URL")).await;
    let wp = format!("fw/v1/{a}/water_pressure/wp-{a}/telemetry");
    p.publish(&wp, json!({"values": {"pressure_mpa": 0.31}}).to_string())
        .await;
    p.publish(
        &format!("fw/v1/{a}/transmitter/tx-{a}/status"),
        json!({"online": true}).to_string(),
    )
    .await;
    p.publish(
        &format!("fw/v1/{a}/fire_lane/cam-{a}/status"),
        json!({"online": true}).to_string(),
    )
    .await;
    fw.wait_messages(&format!("cam-{a}"), 1).await;
    fw.wait_messages(&format!("tx-{a}"), 1).await;
    // The transmitter's last will.
    p.publish(
        &format!("fw/v1/{a}/transmitter/tx-{a}/status"),
        json!({"online": false}).to_string(),
    )
    .await;
    let cov = common::wait_for("the last will counted", WAIT, || async {
        let c = fw.get("/api/v1/coverage").await;
        let mine = building(&c, &a);
        (mine["online"] == 1).then_some(c)
    })
    .await;
    let ca = building(&cov, &a);
    // a: 3 registered, wp and tx connected, wp online; ef never seen; cam unregistered.
    assert_eq!(ca["registered"], 3, "{ca}");
    assert_eq!(ca["connected"], 2, "{ca}");
    assert_eq!(ca["online"], 1, "{ca}");
    assert_eq!(ca["connection_rate"], 2.0 / 3.0);
    assert_eq!(ca["online_rate"], 1.0 / 3.0);
    assert_eq!(ca["never_seen"], json!([format!("ef-{a}")]));
    assert_eq!(ca["unregistered"], 1);
    assert_eq!(ca["missing_kinds"], json!([]));
    assert_eq!(ca["unconnected_kinds"], json!(["electrical"]));
    assert_eq!(ca["complete"], false);
    assert_eq!(ca["kinds"]["water_pressure"]["online"], 1);
    // b: a fire-lane camera required, none registered.
    let cb = building(&cov, &b);
    assert_eq!(cb["missing_kinds"], json!(["fire_lane"]));
    assert_eq!(cb["connection_rate"], Value::Null);

    // One building only; a bad parameter is a 400.
    let one = fw.get(&format!("/api/v1/coverage?building={b}")).await;
    assert_eq!(one["buildings"], 1);
    assert_eq!(one["missing_kind"], 1);
    let r = fw
        .http
        .get(format!("{}/api/v1/coverage?colour=red", fw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // The same as gauges (on /metrics/coverage, not on the cheap /metrics).
    let online = format!("firewatch_building_devices_online{{building=\"{a}\"}}");
    assert_eq!(fw.metric_at("/metrics/coverage", &online).await, 1.0);
    let missing = format!("firewatch_building_missing_kinds{{building=\"{b}\"}}");
    assert_eq!(fw.metric_at("/metrics/coverage", &missing).await, 1.0);

    // The same from the command line, read-only on the running service's store.
    let dir = tempfile::tempdir().unwrap();
    let reg_file = dir.path().join("registry.toml");
    std::fs::write(&reg_file, &registry).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let conf = dir.path().join("firewatch.toml");
    std::fs::write(
        &conf,
        format!(
            "[storage]\ndir = {:?}\n[registry]\nfile = {:?}\n[rules]\nfile = {:?}\n",
            fw.store_dir(),
            reg_file,
            root.join("config/rules.toml")
        ),
    )
    .unwrap();
    let report = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_firewatch"))
            .arg("--config")
            .arg(&conf)
            .arg("report")
            .args(args)
            .env_remove("FIREWATCH__STORAGE__DIR")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "report {args:?}: {stderr}");
        String::from_utf8(out.stdout).unwrap()
    };
    let j: Value = serde_json::from_str(&report(&["coverage", "--format", "json"])).unwrap();
    assert_eq!(building(&j, &a)["connected"], 2, "{j}");
    let csv = report(&["coverage", "--format", "csv", "--building", &a]);
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert!(
        lines[0].starts_with("building,name,registered,connected,online,"),
        "{csv}"
    );
    assert!(
        lines[1].starts_with(&format!("{a},一号楼,3,2,1,66.7%,33.3%,1,,electrical,1,no")),
        "{csv}"
    );
    assert!(lines[2].starts_with("(town),"), "{csv}");
    let table = report(&["devices", "--building", &a]);
    assert!(table.starts_with("device "), "{table}");
    assert_eq!(
        table.lines().count(),
        2 + 4,
        "header, rule, 4 devices: {table}"
    );
    assert!(
        table.contains(&format!("ef-{a}")) && table.contains("never_seen"),
        "{table}"
    );

    let alerts: Value =
        serde_json::from_str(&report(&["alerts", "--format", "json", "--building", &a])).unwrap();
    let offline = alerts.as_array().unwrap();
    assert_eq!(offline.len(), 1, "the transmitter's last will: {alerts}");
    assert_eq!(offline[0]["severity"], "minor");
    let quality = report(&["quality", "--building", &a]);
    assert_eq!(quality.lines().count(), 2, "no findings yet: {quality}");

    // The water-pressure monitor goes silent past 3 × 60 s, then comes back.
    fw.advance(181_000).await;
    common::wait_for("the silent monitor offline", WAIT, || async {
        let c = fw.get(&format!("/api/v1/coverage?building={a}")).await;
        (building(&c, &a)["online"] == 0).then_some(())
    })
    .await;
    assert_eq!(fw.metric_at("/metrics/coverage", &online).await, 0.0);
    p.publish(&wp, json!({"values": {"pressure_mpa": 0.30}}).to_string())
        .await;
    common::wait_for("the monitor back online", WAIT, || async {
        let c = fw.get(&format!("/api/v1/coverage?building={a}")).await;
        let ca = building(&c, &a);
        (ca["online"] == 1 && ca["connected"] == 2).then_some(())
    })
    .await;
    fw.stop().await;
}

fn building<'a>(cov: &'a Value, id: &str) -> &'a Value {
    cov["per_building"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["building"] == id)
        .unwrap_or_else(|| panic!("{id} not in {cov}"))
}
