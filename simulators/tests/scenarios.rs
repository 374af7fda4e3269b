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
    let token = tokio_util::sync::CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        firewatch::app::run(cfg, t.cancelled_owned()).await.unwrap();
    });
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(format!("{base}/healthz")).await {
            if r.status().is_success() {
                return (base, token);
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
