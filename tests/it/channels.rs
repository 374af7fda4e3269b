//! Notification channels against real receivers: an HTTP server started in the test
//! (`common::Receiver`) records the webhook requests and answers a scripted status; an SMTP server that accepts and never
//! answers stands for a stalled mail server. Each test has its own broker, so only its own
//! alerts are notified.

use crate::common::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);
const SECRET: &str = "wh-s3cret-for-tests";

fn webhook_env(url: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v = vec![
        ("FIREWATCH__WEBHOOK__0__NAME".to_owned(), "ops".to_owned()),
        ("FIREWATCH__WEBHOOK__0__URL".to_owned(), url.to_owned()),
        (
            "FIREWATCH__WEBHOOK__0__SECRET".to_owned(),
            SECRET.to_owned(),
        ),
        (
            "FIREWATCH__WEBHOOK__0__TIMEOUT_S".to_owned(),
            "5".to_owned(),
        ),
    ];
    v.extend(
        extra
            .iter()
            .map(|(k, x)| ((*k).to_owned(), (*x).to_owned())),
    );
    v
}

fn webhook_steps(full: &Value) -> Vec<(String, Value)> {
    full["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["detail"]["channel"] == "webhook")
        .map(|h| (h["what"].as_str().unwrap().to_owned(), h["detail"].clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_gets_the_signed_alert_with_its_idempotency_key() {
    let hook = Receiver::start(&[], 200).await;
    let (_broker, fw, id) = fire("bwh1", None, webhook_env(&hook.url, &[])).await;
    let row = settled(&fw, &id, "webhook").await;
    assert_eq!(row["status"], "sent", "{row}");
    assert_eq!(row["attempts"], 1);
    let reqs = hook.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    let r = &reqs[0];
    // The signature: HMAC-SHA256 of the exact body bytes with the configured secret.
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&r.body);
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(r.header("x-firewatch-signature"), want);
    assert!(r.header("content-type").starts_with("application/json"));
    let body = r.json();
    assert_eq!(r.header("idempotency-key"), body["key"].as_str().unwrap());
    assert_eq!(body["key"], row["key"]);
    assert!(
        body["key"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{id}:fired:")),
        "{body}"
    );
    assert!(body["key"].as_str().unwrap().ends_with(":webhook:ops"));
    assert_eq!(body["event"], "fired");
    assert_eq!(body["alert"]["id"], id.as_str());
    assert_eq!(body["alert"]["severity"], "critical");
    assert_eq!(body["alert"]["building"], "bwh1");
    assert_eq!(body["alert"]["channel"], "3F");
    // History, metrics; the e-mail went its own way (an .eml file).
    let full = fw.get(&format!("/api/v1/alerts/{id}")).await;
    let steps = webhook_steps(&full);
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert_eq!(steps[0].0, "notified");
    assert_eq!(steps[0].1["target"], "ops");
    assert_eq!(steps[0].1["attempt"], 1);
    assert_eq!(
        fw.metric(r#"firewatch_notifications_total{channel="webhook",outcome="sent"}"#)
            .await,
        1.0
    );
    assert_eq!(settled(&fw, &id, "email").await["status"], "sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_answering_400_fails_after_one_attempt() {
    let hook = Receiver::start(&[], 400).await;
    let (_broker, fw, id) = fire("bwh4", None, webhook_env(&hook.url, &[])).await;
    let row = settled(&fw, &id, "webhook").await;
    assert_eq!(row["status"], "failed", "{row}");
    assert_eq!(row["attempts"], 1);
    assert!(row["last_error"].as_str().unwrap().contains("400"), "{row}");
    let full = fw.get(&format!("/api/v1/alerts/{id}")).await;
    let steps: Vec<String> = webhook_steps(&full).into_iter().map(|s| s.0).collect();
    assert_eq!(steps, ["notify_failed", "notify_gave_up"], "{full:#}");
    let m = |o: &'static str| {
        let fw = &fw;
        async move {
            fw.metric(&format!(
                "firewatch_notifications_total{{channel=\"webhook\",outcome=\"{o}\"}}"
            ))
            .await
        }
    };
    assert_eq!(m("failed").await, 1.0);
    assert_eq!(m("gave_up").await, 1.0);
    assert_eq!(m("sent").await, 0.0);
    // Not tried again: still one request after more than the first backoff.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(hook.requests().len(), 1);
    let failed = fw
        .get("/api/v1/notifications?status=failed&channel=webhook")
        .await;
    assert_eq!(failed.as_array().unwrap().len(), 1, "{failed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_answering_503_is_retried_until_it_succeeds() {
    let hook = Receiver::start(&[503, 503], 200).await;
    let (_broker, fw, id) = fire("bwh5", None, webhook_env(&hook.url, &[])).await;
    let row = settled(&fw, &id, "webhook").await;
    assert_eq!(row["status"], "sent", "{row}");
    assert_eq!(row["attempts"], 3);
    let reqs = hook.requests();
    assert_eq!(reqs.len(), 3);
    // Every attempt carries the same key.
    for r in &reqs {
        assert_eq!(r.header("idempotency-key"), row["key"].as_str().unwrap());
    }
    let full = fw.get(&format!("/api/v1/alerts/{id}")).await;
    let steps = webhook_steps(&full);
    let what: Vec<&str> = steps.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(what, ["notify_failed", "notify_failed", "notified"]);
    assert_eq!(steps[1].1["attempt"], 2);
    assert!(steps[0].1["error"].as_str().unwrap().contains("503"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_keeps_failing_is_given_up_after_max_attempts() {
    let hook = Receiver::start(&[], 503).await;
    let env = webhook_env(&hook.url, &[("FIREWATCH__NOTIFY__MAX_ATTEMPTS", "2")]);
    let (_broker, fw, id) = fire("bwh6", None, env).await;
    let row = settled(&fw, &id, "webhook").await;
    assert_eq!(row["status"], "failed", "{row}");
    assert_eq!(row["attempts"], 2);
    assert_eq!(hook.requests().len(), 2);
    let full = fw.get(&format!("/api/v1/alerts/{id}")).await;
    let gave_up: Vec<Value> = webhook_steps(&full)
        .into_iter()
        .filter(|s| s.0 == "notify_gave_up")
        .map(|s| s.1)
        .collect();
    assert_eq!(gave_up.len(), 1, "{full:#}");
    assert_eq!(gave_up[0]["permanent"], false);
    assert_eq!(gave_up[0]["attempt"], 2);
    assert_eq!(
        fw.metric(r#"firewatch_notifications_total{channel="webhook",outcome="gave_up"}"#)
            .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_smtp_server_does_not_delay_the_webhook() {
    // Accepts connections and never says a word.
    let stalled = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let smtp_url = format!("smtp://{}", stalled.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        loop {
            if let Ok((c, _)) = stalled.accept().await {
                conns.push(c);
            }
        }
    });
    let hook = Receiver::start(&[], 200).await;
    let (_broker, fw, id) = fire("bwhs", Some(smtp_url), webhook_env(&hook.url, &[])).await;
    let row = settled(&fw, &id, "webhook").await;
    assert_eq!(row["status"], "sent", "{row}");
    assert_eq!(hook.requests().len(), 1);
    // The mail of the same alert is still waiting on the silent server.
    let mail = rows(&fw, &id, "email").await;
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0]["status"], "pending", "{mail:?}");
    assert_eq!(mail[0]["attempts"], 0, "{mail:?}");
    held.abort();
}

/// The backoff runs on the service clock: in-process on a manual clock, a failed webhook is not
/// tried again until the clock has passed the backoff, and then at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_wait_for_the_service_clock() {
    use firewatch::clock::{ManualClock, SharedClock};
    let hook = Receiver::start(&[503], 200).await;
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let vars = [
        ("FIREWATCH__MQTT__URL", broker.url()),
        ("FIREWATCH__MQTT__CLIENT_ID", unique("fw-clock")),
        ("FIREWATCH__HTTP__LISTEN", format!("127.0.0.1:{port}")),
        ("FIREWATCH__STORAGE__DIR", dir.path().display().to_string()),
        ("FIREWATCH__STORAGE__SYNCHRONOUS", "normal".into()),
        ("FIREWATCH__AUTH__BOOTSTRAP_TOKEN", TEST_TOKEN.into()),
        (
            "FIREWATCH__REGISTRY__FILE",
            dir.path().join("registry.toml").display().to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .chain(webhook_env(&hook.url, &[]));
    let cfg =
        firewatch::config::Config::load_from(std::path::Path::new("/nonexistent"), None, vars)
            .unwrap();
    let clock = ManualClock::new(1_795_908_600_000);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shared: SharedClock = clock.clone();
    let service = tokio::spawn(firewatch::app::run_with(cfg, shared, async {
        let _ = stopped.await;
    }));
    let base = format!("http://127.0.0.1:{port}");
    let http = api_client();
    wait_for("the in-process service", T, || async {
        let r = http.get(format!("{base}/healthz")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    let mut p = Publisher::connect(&broker.url()).await;
    p.publish(
        "fw/v1/bclk/transmitter/tx-bclk/event",
        json!({"event": "manual_alarm", "state": "start", "zone": "1F"}).to_string(),
    )
    .await;
    let get = |path: String| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            http.get(format!("{base}{path}"))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let row = wait_for("the first, failed attempt recorded", T, || async {
        let rows = get("/api/v1/notifications?channel=webhook".into()).await;
        let r = rows.as_array()?.first()?.clone();
        (r["attempts"] == 1).then_some(r)
    })
    .await;
    assert_eq!(row["status"], "pending", "{row}");
    // Real time passes, the service clock does not: no second attempt (the first backoff is at
    // most 1 s; the sender also looks every 5 s of real time).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(hook.requests().len(), 1);
    clock.advance(1000);
    let row = wait_for("the retry after the clock moved", T, || async {
        let rows = get("/api/v1/notifications?channel=webhook".into()).await;
        let r = rows.as_array()?.first()?.clone();
        (r["status"] == "sent").then_some(r)
    })
    .await;
    assert_eq!(row["attempts"], 2);
    assert_eq!(hook.requests().len(), 2);
    let _ = stop.send(());
    service.await.unwrap().unwrap();
}
