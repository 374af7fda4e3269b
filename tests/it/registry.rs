//! The registry as the inventory: CSV import (every bad row reported, nothing changed on any
//! problem) and export (a round trip), and reloads without a restart through the API and the
//! file watch, checked against the real broker: a strict registry rejects a device until a
//! reload adds it, and a bad file changes nothing and says why.

use crate::common;
use crate::common::{unique, wait_for, Api, Firewatch, InProcess, Options, Publisher};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// Runs `firewatch registry ARGS` against `registry_file`, with the shipped rules.
fn registry_cli(registry_file: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_firewatch"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("FIREWATCH__REGISTRY__FILE", registry_file)
        .arg("registry")
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A strict registry of building `b` with the given water-pressure monitors.
fn strict_registry(b: &str, devices: &[&str]) -> String {
    let mut t = format!("strict = true\n\n[[building]]\nid = \"{b}\"\nclass = \"residential\"\n");
    for d in devices {
        t += &format!(
            "\n[[device]]\nid = \"{d}\"\nbuilding = \"{b}\"\nkind = \"water_pressure\"\nfloor = \"B1\"\nzone = \"泵房\"\n"
        );
    }
    t
}

async fn publish_pressure(b: &str, d: &str) {
    let mut p = Publisher::connect(&common::env("FW_TEST_MQTT_URL")).await;
    p.publish(
        &format!("fw/v1/{b}/water_pressure/{d}/telemetry"),
        json!({"values": {"pressure_mpa": 0.32}}).to_string(),
    )
    .await;
}

/// Waits until a message of `device` is in the rejected list with `reason`.
async fn wait_rejected(fw: &impl Api, device: &str, reason: &str) -> Value {
    wait_for(
        &format!("a {reason} rejection of {device}"),
        WAIT,
        || async {
            let list = fw
                .get(&format!("/api/v1/rejected?reason={reason}&limit=1000"))
                .await;
            list.as_array()
                .unwrap()
                .iter()
                .find(|r| {
                    r["topic"]
                        .as_str()
                        .unwrap()
                        .contains(&format!("/{device}/"))
                })
                .cloned()
        },
    )
    .await
}

async fn registered_buildings(fw: &impl Api) -> Vec<String> {
    fw.get("/api/v1/registry").await["buildings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_csv_import_with_bad_rows_reports_every_one_and_leaves_the_registry_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("registry.toml");
    let before = "# kept as written\nstrict = false\n\n[[building]]\nid = \"bsy-0001\"\nclass = \"residential\"\n";
    std::fs::write(&reg, before).unwrap();
    let csv = dir.path().join("bad.csv");
    std::fs::write(
        &csv,
        "\
record,id,building,kind,name,lat,lon,class,floor,zone,installed,power,thresholds
building,bsy-0002,,,Tower 2,30.2,120.1,residential,,,,,
building,bsy-0003,,,Tower 3,123.4,120.1,public_class1,,,,,
device,wp-0002-01,bsy-0002,water_pressure,,,,,B1,泵房,2024-03-18,mains,
device,wp-0009-01,bsy-0009,water_pressure,,,,,,,,,
device,sp-0002-01,bsy-0002,sprinkler,,,,,,,,,
device,wp-0002-01,bsy-0002,water_pressure,,,,,,,,,
building,bsy-0004,,,,,,skyscraper,,,,,
device,wl-0002-01,bsy-0002,water_level,,,,,,,2024-02-30,solar,
device,wl-0002-02,bsy-0002,water_level,,,,,,,,,water_level.lowest=1/2
",
    )
    .unwrap();
    let out = registry_cli(&reg, &["import", csv.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for want in [
        "line 3, column lat: 123.4 is not a latitude (-90..90)",
        "line 5, column building: building \"bsy-0009\" is not listed",
        "line 6, column kind: \"sprinkler\" is not a device kind",
        "line 7, column id: duplicate device \"wp-0002-01\" (first on line 4)",
        "line 8, column class: \"skyscraper\" is not a building class",
        "line 9, column installed: \"2024-02-30\" is not a date (YYYY-MM-DD)",
        "line 9, column power: \"solar\" is not a power supply (mains, battery)",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(err.contains("7 problem(s)"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&reg).unwrap(),
        before,
        "byte for byte unchanged"
    );
    // The rule check runs only on a registry that is otherwise good: the unknown rule of
    // line 10 is reported once the other rows are fixed (here: left out).
    let all = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = all
        .lines()
        .enumerate()
        .filter(|(i, _)| [0, 1, 3, 9].contains(i))
        .map(|(_, l)| l)
        .collect();
    std::fs::write(&csv, lines.join("\n") + "\n").unwrap();
    let out = registry_cli(&reg, &["import", csv.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("line 4, column thresholds: no threshold rule has this id"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&reg).unwrap(),
        before,
        "byte for byte unchanged"
    );
}

#[test]
fn a_good_import_is_written_loads_and_round_trips_through_export() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("registry.toml");
    std::fs::write(&reg, "strict = true\n\n[required]\nindustrial = [\"water_pressure\", \"electrical\"]\n\n[[building]]\nid = \"bsy-0001\"\nclass = \"residential\"\n").unwrap();
    let csv = dir.path().join("in.csv");
    std::fs::write(
        &csv,
        "\
record,id,building,kind,name,address,lat,lon,class,height_m,control_room,manager,required,expected,floor,zone,location,installed,interval_s,power,thresholds
building,bsy-0001,,,滨江大厦 1,\"1 Binjiang Road, Hangzhou\",30.2084,120.2101,residential,99.5,cr-east,p-zhang,,water_pressure=2;transmitter=1,,,,,,,
building,plant-7,,,Plant 7,,,,industrial,,,王工,,,,,,,,,
device,wp-0001-01,bsy-0001,water_pressure,,,,,,,,,,,B1,泵房,,2024-03-18,1800,battery,
device,wl-0001-01,bsy-0001,water_level,,,,,,,,,,,roof,,Roof fire water tank,,,mains,water_level.low=1.2/1.4
device,ef-0007-01,plant-7,electrical,,,,,,,,,,,1F,配电室,,,,,
",
    )
    .unwrap();
    let out = registry_cli(&reg, &["import", csv.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("buildings 1 added, 1 changed, 0 unchanged, 0 removed; devices 3 added, 0 changed, 0 unchanged, 0 removed"),
        "{stdout}"
    );
    // Loaded and checked as a start would: check-config accepts the file written.
    let check = Command::new(env!("CARGO_BIN_EXE_firewatch"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("FIREWATCH__REGISTRY__FILE", &reg)
        .arg("check-config")
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert!(
        text(&check.stdout).contains("2 buildings and 3 devices registered"),
        "{}",
        text(&check.stdout)
    );
    let written = std::fs::read_to_string(&reg).unwrap();
    assert!(
        written.contains("strict = true"),
        "file-wide settings kept:\n{written}"
    );
    assert!(written.contains("[required]"), "{written}");
    let firewatch_registry = firewatch::registry::Registry::parse(&written).unwrap();
    assert_eq!(
        firewatch_registry
            .device("wp-0001-01")
            .unwrap()
            .location
            .as_deref(),
        Some("B1 泵房")
    );

    // Export, then import the export: nothing changes, the file is not rewritten.
    let exported = dir.path().join("out.csv");
    let out = registry_cli(&reg, &["export", exported.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Exported 2 buildings and 3 devices"));
    let out = registry_cli(&reg, &["import", exported.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("buildings 0 added, 0 changed, 2 unchanged, 0 removed; devices 0 added, 0 changed, 3 unchanged, 0 removed"),
        "{stdout}"
    );
    assert_eq!(std::fs::read_to_string(&reg).unwrap(), written);

    // Into a fresh file with --replace: the same buildings and devices, the same text.
    let fresh = dir.path().join("fresh.toml");
    std::fs::write(
        &fresh,
        "strict = true\n\n[required]\nindustrial = [\"water_pressure\", \"electrical\"]\n",
    )
    .unwrap();
    let out = registry_cli(&fresh, &["import", "--replace", exported.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&fresh).unwrap(), written);
    let again = dir.path().join("again.csv");
    assert!(registry_cli(&fresh, &["export", again.to_str().unwrap()])
        .status
        .success());
    assert_eq!(
        std::fs::read(&again).unwrap(),
        std::fs::read(&exported).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_through_the_api_admits_a_device_the_strict_registry_rejected() {
    let b = unique("breg");
    let (old, new) = (format!("wp-{b}-01"), format!("wp-{b}-02"));
    let fw = InProcess::start_with(&strict_registry(&b, &[&old]), |c| c.registry.watch_s = 0).await;
    publish_pressure(&b, &old).await;
    fw.wait_messages(&old, 1).await;
    publish_pressure(&b, &new).await;
    let r = wait_rejected(&fw, &new, "unregistered").await;
    assert!(
        r["detail"]
            .as_str()
            .unwrap()
            .contains("not in the registry"),
        "{r}"
    );

    // The reload adds the new device and drops the old one.
    std::fs::write(fw.registry_file(), strict_registry(&b, &[&new])).unwrap();
    let (status, body) = fw.post("/api/v1/registry/reload", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changes"]["devices"]["added"], 1, "{body}");
    assert_eq!(body["changes"]["devices"]["removed"], 1, "{body}");
    assert_eq!(body["changes"]["buildings"]["unchanged"], 1, "{body}");

    // Accepted now, through the real broker.
    publish_pressure(&b, &new).await;
    fw.wait_messages(&new, 1).await;
    // The device dropped from the strict registry is rejected from now on.
    let before = fw
        .get("/api/v1/rejected?reason=unregistered&limit=1000")
        .await
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["topic"].as_str().unwrap().contains(&format!("/{old}/")))
        .count();
    assert_eq!(before, 0);
    publish_pressure(&b, &old).await;
    wait_rejected(&fw, &old, "unregistered").await;

    // The API shows the registry in force, with the derived location.
    let reg = fw.get("/api/v1/registry").await;
    let devices = reg["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 1, "{reg}");
    assert_eq!(devices[0]["id"], new.as_str());
    assert_eq!(devices[0]["location"], "B1 泵房");
    assert_eq!(devices[0]["location_derived"], true);
    let one = fw.get(&format!("/api/v1/registry/buildings/{b}")).await;
    assert_eq!(
        one["required_kinds"],
        json!([
            "water_pressure",
            "water_level",
            "electrical",
            "fire_lane",
            "transmitter"
        ])
    );
    assert_eq!(one["device_list"][0]["id"], new.as_str());
    let m = fw
        .metric("firewatch_registry_reloads_total{result=\"ok\"}")
        .await;
    assert_eq!(m, 1.0);
    fw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_reload_changes_nothing_and_says_why() {
    let b = unique("bbad");
    let d = format!("wp-{b}-01");
    let fw = Firewatch::start(Options {
        registry: Some(strict_registry(&b, &[&d])),
        env: vec![("FIREWATCH__REGISTRY__WATCH_S".into(), "0".into())],
        ..Options::default()
    })
    .await;
    let file = fw.dir.join("registry.toml");
    let before = fw.get("/api/v1/registry").await;
    std::fs::write(
        &file,
        format!(
            "strict = true\n[[building]]\nid = \"{b}\"\nlat = 123.4\nlon = 120.0\n[[device]]\nid = \"{d}\"\nbuilding = \"elsewhere\"\nkind = \"water_pressure\"\n"
        ),
    )
    .unwrap();
    let (status, body) = fw.post("/api/v1/registry/reload", json!({})).await;
    assert_eq!(status, 422, "{body}");
    let problems: Vec<(String, String)> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["key"].as_str().unwrap().to_owned(),
                p["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        problems,
        [
            (
                "registry.file: building[0].lat".to_owned(),
                "123.4 is not a latitude (-90..90)".to_owned()
            ),
            (
                "registry.file: device[0].building".to_owned(),
                "building \"elsewhere\" is not listed".to_owned()
            ),
        ]
    );
    // An override of a rule that does not exist: the rules' check, as at start.
    std::fs::write(
        &file,
        strict_registry(&b, &[&d])
            + "thresholds.\"water_pressure.lowest\" = { raise = 0.1, clear = 0.2 }\n",
    )
    .unwrap();
    let (status, body) = fw.post("/api/v1/registry/reload", json!({})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["problems"][0]["key"],
        "registry.file: device[0].thresholds.water_pressure.lowest"
    );
    // Nothing changed: the same registry, and the registered device is still accepted.
    assert_eq!(fw.get("/api/v1/registry").await, before);
    publish_pressure(&b, &d).await;
    wait_for("the registered device accepted", WAIT, || async {
        let v = fw.get(&format!("/api/v1/devices/{d}")).await;
        (v["messages"] == 1).then_some(())
    })
    .await;
    assert_eq!(
        fw.metric("firewatch_registry_reloads_total{result=\"failed\"}")
            .await,
        2.0
    );
    let log = fw.log();
    assert!(
        log.contains("Registry reload refused; the registry in force is kept.")
            && log.contains("building[0].lat: 123.4 is not a latitude (-90..90)"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_watch_puts_a_changed_file_in_force() {
    let b = unique("bwatch");
    let added = unique("bnew");
    let fw = Firewatch::start(Options {
        registry: Some(strict_registry(&b, &[])),
        env: vec![("FIREWATCH__REGISTRY__WATCH_S".into(), "1".into())],
        ..Options::default()
    })
    .await;
    assert_eq!(registered_buildings(&fw).await, vec![b.clone()]);
    let file = fw.dir.join("registry.toml");
    let text = strict_registry(&b, &[])
        + &format!("\n[[building]]\nid = \"{added}\"\nclass = \"industrial\"\n");
    // Written as `firewatch registry import` writes: a new file renamed over the old one.
    firewatch::registry::csv::write_atomically(&file, text.as_bytes()).unwrap();
    wait_for("the new building in GET /api/v1/registry", WAIT, || async {
        let ids = registered_buildings(&fw).await;
        ids.contains(&added).then_some(())
    })
    .await;
    let one = fw.get(&format!("/api/v1/registry/buildings/{added}")).await;
    assert_eq!(one["class"], "industrial");
    assert_eq!(
        fw.metric("firewatch_registry_reloads_total{result=\"ok\"}")
            .await,
        1.0
    );
    assert!(fw.log().contains("trigger=\"file watch\""), "{}", fw.log());
}
