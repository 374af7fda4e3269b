//! Acceptance tests: the simulators' scenarios against firewatch (started in-process from the
//! library, as the binary does) over the real Mosquitto started by scripts/test.sh.

#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests with scripts/test.sh"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// `auth.bootstrap_token` of the firewatch these tests start.
const TOKEN: &str = "scenario-test-token-0123456789";

/// GET with the token.
async fn get(url: String) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
}

fn sim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_firewatch-sim"))
        .current_dir(root())
        .env("FIREWATCH_API_TOKEN", TOKEN)
        .args(args)
        .output()
        .unwrap()
}

/// Starts firewatch in this process with rules sped up `speed` times and the scenario's registry.
async fn firewatch(
    scenario: &str,
    speed: f64,
    strict: bool,
    dir: &Path,
) -> (String, tokio_util::sync::CancellationToken) {
    let rules = sim(&["rules", "--speed", &speed.to_string()]);
    assert!(rules.status.success());
    std::fs::write(dir.join("rules.toml"), &rules.stdout).unwrap();
    let mut args = vec!["registry", scenario];
    if strict {
        args.push("--strict");
    }
    let reg = sim(&args);
    assert!(
        reg.status.success(),
        "{}",
        String::from_utf8_lossy(&reg.stderr)
    );
    std::fs::write(dir.join("registry.toml"), &reg.stdout).unwrap();

    let mut cfg = firewatch::config::Config::default();
    cfg.mqtt.url = env("FW_TEST_MQTT_URL");
    cfg.mqtt.client_id = format!("fw-accept-{}-{}", std::process::id(), free_port());
    let port = free_port();
    cfg.http.listen = format!("127.0.0.1:{port}");
    cfg.storage.dir = dir.join("data");
    cfg.storage.synchronous = "normal".into();
    cfg.auth.bootstrap_token = Some(firewatch::settings::Secret::new(TOKEN));
    cfg.rules.file = dir.join("rules.toml");
    cfg.registry.file = dir.join("registry.toml");
    let (base, token, _) = serve(cfg).await;
    (base, token)
}

/// Runs firewatch with `cfg` in this process until healthy: its URL, what stops it, and its
/// task.
async fn serve(
    cfg: firewatch::config::Config,
) -> (
    String,
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let base = format!("http://{}", cfg.http.listen);
    let token = tokio_util::sync::CancellationToken::new();
    let t = token.clone();
    let task = tokio::spawn(async move {
        firewatch::app::run(cfg, t.cancelled_owned()).await.unwrap();
    });
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(format!("{base}/healthz")).await {
            if r.status().is_success() {
                return (base, token, task);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("firewatch did not become healthy");
}

/// The `incidents` scenario: every expected alert is raised and no other (near-misses stay quiet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_scenario_raises_exactly_the_expected_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = "simulators/scenarios/incidents.toml";
    let (api, stop) = firewatch(scenario, 20.0, false, dir.path()).await;
    let broker = env("FW_TEST_MQTT_URL");
    let out = tokio::task::spawn_blocking(move || {
        sim(&[
            "run", scenario, "--broker", &broker, "--speed", "20", "--quiet", "--expect", &api,
        ])
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Expected alerts: 21; present: 21."),
        "{stdout}"
    );
    assert!(stdout.contains("and no others"), "{stdout}");
    stop.cancel();
}

/// The `chaos` scenario: every rejection reason is counted, and firewatch stays healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_scenario_counts_every_rejection_reason() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = "simulators/scenarios/chaos.toml";
    let (api, stop) = firewatch(scenario, 10.0, true, dir.path()).await;
    let broker = env("FW_TEST_MQTT_URL");
    let out = tokio::task::spawn_blocking(move || {
        sim(&[
            "run", scenario, "--broker", &broker, "--speed", "10", "--quiet",
        ])
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What the scenario sends, per reason (simulators/scenarios/chaos.toml): two bad topics,
    // two bad JSON payloads, two schema errors, two duplicates (the repeated last message, and
    // the "late" older seq, which was already seen), one of each other reason. `unregistered`
    // is checked below by topic: the shared broker also replays other tests' retained status
    // messages, whose devices this strict registry does not know either.
    let expected: Vec<(&str, f64)> = vec![
        ("topic", 2.0),
        ("json", 2.0),
        ("schema", 2.0),
        ("unknown_metric", 1.0),
        ("range", 1.0),
        ("timestamp", 1.0),
        ("too_large", 1.0),
        ("unregistered", 1.0),
        ("binding", 1.0),
        ("duplicate", 2.0),
    ];
    assert_eq!(expected.len(), firewatch::model::Reason::ALL.len());
    let count = |metrics: &str, reason: &str| -> f64 {
        let line = format!("firewatch_messages_rejected_total{{reason=\"{reason}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    // The simulator has exited: wait (bounded) until firewatch has committed every rejection.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let metrics = reqwest::get(format!("{api}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let done = expected.iter().all(|(r, n)| count(&metrics, r) >= *n);
        if done || std::time::Instant::now() > deadline {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for (reason, n) in &expected {
        if *reason != "unregistered" {
            assert_eq!(count(&metrics, reason), *n, "{reason}\n{metrics}");
        }
    }
    let unregistered: serde_json::Value = get(format!(
        "{api}/api/v1/rejected?reason=unregistered&limit=10000"
    ))
    .await
    .json()
    .await
    .unwrap();
    let intruder = unregistered
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["topic"] == "fw/v1/chaos-001/water_pressure/wp-intruder-1/telemetry")
        .count();
    assert_eq!(intruder, 1, "{unregistered:#}");
    let health = reqwest::get(format!("{api}/healthz")).await.unwrap();
    assert!(health.status().is_success());
    let dev: serde_json::Value = get(format!("{api}/api/v1/devices/wl-chaos-001-1"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(dev["lost"], 3, "the seq gap of three is counted: {dev}");
    let skewed: serde_json::Value = get(format!("{api}/api/v1/devices/ef-chaos-002-1"))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        skewed["quality"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q == "clock_skew"),
        "{skewed}"
    );
    stop.cancel();
}

/// One metric's value from `/metrics` (0 when absent).
async fn metric(base: &str, name: &str) -> f64 {
    let text = get(format!("{base}/metrics")).await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Waits, with a bound, until `name` is `want`.
async fn wait_metric(base: &str, name: &str, want: f64) {
    for _ in 0..600 {
        if metric(base, name).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} never became {want}");
}

/// The GB/T 26875.3 transmitter simulator over real TCP: three transmitters connect, one drops
/// its first upload mid-frame; firewatch restarts and they reconnect; then a fire alarm, a
/// detector fault and a main power fault, each confirmed once committed, become alerts in the
/// API and e-mails in the outbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gb_transmitters_reach_alerts_and_mail_across_a_dropped_frame_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let b = format!("sim-gb-{}", std::process::id());
    let mut reg = format!("[[building]]\nid = \"{b}\"\n");
    for i in 0..3 {
        reg.push_str(&format!(
            "[[device]]\nid = \"uitd-{b}-{i}\"\nbuilding = \"{b}\"\nkind = \"transmitter\"\ngb_address = \"{}\"\n",
            30_000 + i
        ));
    }
    std::fs::write(dir.path().join("registry.toml"), reg).unwrap();
    let mut cfg = firewatch::config::Config::default();
    cfg.mqtt.url = env("FW_TEST_MQTT_URL");
    cfg.mqtt.client_id = format!("fw-accept-gb-{}", std::process::id());
    cfg.http.listen = format!("127.0.0.1:{}", free_port());
    let gb = format!("127.0.0.1:{}", free_port());
    cfg.gb26875.listen = gb.clone();
    cfg.storage.dir = dir.path().join("data");
    cfg.storage.synchronous = "normal".into();
    cfg.auth.bootstrap_token = Some(firewatch::settings::Secret::new(TOKEN));
    cfg.rules.file = root().join("config/rules.toml");
    cfg.registry.file = dir.path().join("registry.toml");
    cfg.notify.group.wait_s = 0;
    cfg.notify.group.interval_s = 0;
    let (base, stop, task) = serve(cfg.clone()).await;

    let go = dir.path().join("go");
    let go_arg = go.display().to_string();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_firewatch-sim"))
        .args([
            "gb",
            "--connect",
            &gb,
            "--count",
            "3",
            "--first-address",
            "30000",
            "--heartbeat-s",
            "1",
            "--settle-s",
            "0",
            "--alarms",
            "3",
            "--interval-ms",
            "10",
            "--events",
            "fire,fault,power",
            "--wait-file",
            &go_arg,
            "--quirks",
            "--drop-mid-frame",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_metric(&base, "firewatch_gb_connections", 3.0).await;
    // firewatch restarts; the transmitters reconnect.
    stop.cancel();
    task.await.unwrap();
    let (base, stop, _task) = serve(cfg).await;
    wait_metric(&base, "firewatch_gb_connections", 3.0).await;
    std::fs::write(&go, "").unwrap();
    let out = tokio::task::spawn_blocking(move || {
        let o = child.wait_with_output().unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    })
    .await
    .unwrap();
    assert!(out.0, "{}\n{}", out.1, out.2);
    let summary: serde_json::Value = serde_json::from_str(out.1.trim()).unwrap();
    assert_eq!(summary["alarms"], 3, "{summary}");
    assert_eq!(summary["unconfirmed"], 0, "{summary}");
    // Three lines at least lost at the restart, one dropped mid-frame (whose upload, the fire
    // alarm, was sent again whole and confirmed like the others).
    assert!(summary["lost"].as_u64().unwrap() >= 4, "{summary}");

    // The alerts are there (confirmed means committed), each once.
    let alerts: serde_json::Value = get(format!("{base}/api/v1/alerts?building={b}&limit=1000"))
        .await
        .json()
        .await
        .unwrap();
    let rules: Vec<&str> = alerts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["rule"] != "device.offline")
        .map(|a| a["rule"].as_str().unwrap())
        .collect();
    let mut sorted = rules.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            "transmitter.fault",
            "transmitter.fire_alarm",
            "transmitter.mains_fault"
        ],
        "{alerts:#}"
    );
    // And mailed (the embedded default: the outbox folder).
    let outbox = dir.path().join("data/outbox");
    for _ in 0..600 {
        let n = std::fs::read_dir(&outbox)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                    .count()
            })
            .unwrap_or(0);
        if n >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mails: Vec<String> = std::fs::read_dir(&outbox)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert!(mails.len() >= 3, "{} mails", mails.len());
    stop.cancel();
}

/// `firewatch-sim load --device-password` logs in as each device at a broker that checks (the
/// embedded broker with `mqtt.embedded_auth`): every reading committed; with a wrong password
/// it stops at once with an error that says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_logs_in_as_each_device_where_the_broker_checks() {
    const PASSWORD: &str = "sim-device-password";
    let dir = tempfile::tempdir().unwrap();
    let hash = firewatch::ingest::access::hash(PASSWORD, b"sim-testsalt");
    let mut registry = String::from("[[building]]\nid = \"ld-b0000\"\n");
    for d in 0..3 {
        registry.push_str(&format!(
            "[[device]]\nid = \"ld-{d:06}\"\nbuilding = \"ld-b0000\"\nkind = \"water_pressure\"\nmqtt_password_hash = \"{hash}\"\n"
        ));
    }
    std::fs::write(dir.path().join("registry.toml"), registry).unwrap();
    let mut cfg = firewatch::config::Config::default();
    let mqtt = free_port();
    cfg.mqtt.url = "embedded".into();
    cfg.mqtt.embedded_listen = format!("127.0.0.1:{mqtt}");
    cfg.mqtt.embedded_auth = true;
    cfg.http.listen = format!("127.0.0.1:{}", free_port());
    cfg.storage.dir = dir.path().join("data");
    cfg.storage.synchronous = "normal".into();
    cfg.auth.bootstrap_token = Some(firewatch::settings::Secret::new(TOKEN));
    cfg.registry.file = dir.path().join("registry.toml");
    cfg.rules.file = root().join("config/rules.toml");
    let (base, stop, task) = serve(cfg).await;
    let broker = format!("mqtt://127.0.0.1:{mqtt}");
    let run = |password: &'static str| {
        let broker = broker.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_firewatch-sim"))
                .env("FW_SIM_DEVICE_PASSWORD", password)
                .args([
                    "load",
                    "--broker",
                    &broker,
                    "--devices",
                    "3",
                    "--count",
                    "30",
                ])
                .args(["--qos", "1", "--prefix", "ld", "--quiet"])
                .output()
                .unwrap()
        })
    };
    let out = run(PASSWORD).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (summary["sent"].as_u64(), summary["acked"].as_u64()),
        (Some(30), Some(30))
    );
    wait_metric(&base, "firewatch_messages_committed_total", 30.0).await;
    assert_eq!(
        metric(
            &base,
            "firewatch_broker_refused_total{reason=\"credentials\"}"
        )
        .await,
        0.0
    );

    let out = run("not-the-password").await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("the broker refused"), "{stderr}");
    assert!(
        metric(
            &base,
            "firewatch_broker_refused_total{reason=\"credentials\"}"
        )
        .await
            >= 1.0
    );
    assert_eq!(
        metric(&base, "firewatch_messages_committed_total").await,
        30.0
    );
    stop.cancel();
    task.await.unwrap();
}
