//! Secrets never show (contract, security point 5): a full run of the real binary with every
//! kind of secret configured — some in variables, some in `*_file` files — that does real work
//! (a device's alarm raised, mailed, posted to a webhook, chat robots, an SMS gateway and a
//! northbound platform, readings written to the time-series database), and every output a
//! person or another party reads is searched for each secret.
//!
//! What is searched: firewatch's standard output and error (its log), `check-config` output,
//! every HTTP body the API and the dashboard answered (successes and 401/404/400/403 errors,
//! `/metrics`), the mails as delivered, and the bodies the HTTP receivers got (plus every
//! header of the webhook requests). What is not: the places a secret is meant to reach — the
//! SMTP password goes to the SMTP server's AUTH, a robot's key is in the query of its own URL,
//! the SMS gateway's and the platform's tokens are headers of requests to them, and the webhook
//! and DingTalk keys sign (an HMAC) and are never sent at all.

use crate::common::*;
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// (name, value): each distinctive, so a match is a leak, not a coincidence.
const MQTT_PASSWORD: &str = "mqttpw-SECRET-7f3a21";
const TSDB_TOKEN: &str = "tsdbtok-SECRET-91c2b7";
const SMTP_PASSWORD: &str = "smtppw-SECRET-44ad0e";
const BOOTSTRAP: &str = "bootstrap-SECRET-0c9e77aa51";
const ACK_TOKEN: &str = "acktoken-SECRET-5b1d9e";
const HOOK_KEY: &str = "hookhmac-SECRET-e21f6c";
const WECOM_KEY: &str = "wecomkey-SECRET-a8b344";
const DEAD_WECOM_KEY: &str = "deadkey-SECRET-f00d17";
const DING_TOKEN: &str = "dingtok-SECRET-3d7019";
const DING_SECRET: &str = "dingsec-SECRET-6c05aa";
const SMS_KEY: &str = "smskey-SECRET-90fe3b";
const SMS_HEADER: &str = "smshdr-SECRET-17aa42";
const NB_TOKEN: &str = "nbtok-SECRET-b4e6d1";
const NB_HEADER: &str = "nbhdr-SECRET-c2d8f9";

const SECRETS: &[(&str, &str)] = &[
    ("mqtt.password", MQTT_PASSWORD),
    ("tsdb.token", TSDB_TOKEN),
    ("email.smtp_url password", SMTP_PASSWORD),
    ("auth.bootstrap_token", BOOTSTRAP),
    ("http.ack_token", ACK_TOKEN),
    ("webhook[0].secret", HOOK_KEY),
    ("wecom[0].url key", WECOM_KEY),
    ("wecom[1].url key", DEAD_WECOM_KEY),
    ("dingtalk[0].url access_token", DING_TOKEN),
    ("dingtalk[0].secret", DING_SECRET),
    ("sms.url key", SMS_KEY),
    ("sms.headers", SMS_HEADER),
    ("northbound[0].token", NB_TOKEN),
    ("northbound[0].headers", NB_HEADER),
];

/// Every (output name, text) that holds a secret, as "output: secret" lines.
fn leaks(outputs: &[(String, String)]) -> Vec<String> {
    let mut found = Vec::new();
    for (what, text) in outputs {
        for (name, secret) in SECRETS {
            if text.contains(secret) {
                found.push(format!("{what}: {name}"));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_shows_in_any_output_of_a_full_run() {
    let receiver = Receiver::answering(
        vec![],
        (200, r#"{"errcode":0,"errmsg":"ok","code":0}"#.into()),
    )
    .await;
    let smtp = SmtpServer::start(0);
    let secrets = tempfile::tempdir().unwrap();
    let file = |name: &str, text: String| {
        let p = secrets.path().join(name);
        // As systemd and Kubernetes write them: with a trailing newline.
        std::fs::write(&p, text + "\n").unwrap();
        p.display().to_string()
    };
    let base = &receiver.base;
    let building = unique("bsec");
    let vars: Vec<(&str, String)> = vec![
        // From files.
        ("FIREWATCH__MQTT__USERNAME", "firewatch".into()),
        (
            "FIREWATCH__MQTT__PASSWORD_FILE",
            file("mqtt_password", MQTT_PASSWORD.into()),
        ),
        (
            "FIREWATCH__EMAIL__SMTP_URL_FILE",
            file(
                "smtp_url",
                format!("smtp://alerts:{SMTP_PASSWORD}@127.0.0.1:{}", smtp.port),
            ),
        ),
        (
            "FIREWATCH__AUTH__BOOTSTRAP_TOKEN_FILE",
            file("bootstrap", BOOTSTRAP.into()),
        ),
        ("FIREWATCH__WEBHOOK__0__NAME", "ops".into()),
        ("FIREWATCH__WEBHOOK__0__URL", format!("{base}/hook")),
        (
            "FIREWATCH__WEBHOOK__0__SECRET_FILE",
            file("hook", HOOK_KEY.into()),
        ),
        ("FIREWATCH__DINGTALK__0__NAME", "estate".into()),
        (
            "FIREWATCH__DINGTALK__0__URL_FILE",
            file(
                "ding_url",
                format!("{base}/robot/send?access_token={DING_TOKEN}"),
            ),
        ),
        (
            "FIREWATCH__SMS__URL_FILE",
            file("sms_url", format!("{base}/sms/send?key={SMS_KEY}")),
        ),
        (
            "FIREWATCH__SMS__HEADERS__X_API_TOKEN_FILE",
            file("sms_header", SMS_HEADER.into()),
        ),
        (
            "FIREWATCH__NORTHBOUND__0__TOKEN_FILE",
            file("nb_token", NB_TOKEN.into()),
        ),
        // From variables.
        ("FIREWATCH__TSDB__URL", env("FW_TEST_TSDB_URL")),
        ("FIREWATCH__TSDB__TOKEN", TSDB_TOKEN.into()),
        ("FIREWATCH__HTTP__ACK_TOKEN", ACK_TOKEN.into()),
        ("FIREWATCH__WECOM__0__NAME", "duty".into()),
        (
            "FIREWATCH__WECOM__0__URL",
            format!("{base}/cgi-bin/webhook/send?key={WECOM_KEY}"),
        ),
        // A robot nobody answers for: its failures are logged and stored, with no key.
        ("FIREWATCH__WECOM__1__NAME", "gone".into()),
        (
            "FIREWATCH__WECOM__1__URL",
            format!(
                "http://127.0.0.1:{}/cgi-bin/webhook/send?key={DEAD_WECOM_KEY}",
                free_port()
            ),
        ),
        ("FIREWATCH__DINGTALK__0__SECRET", DING_SECRET.into()),
        ("FIREWATCH__SMS__TO", "+8613800000000".into()),
        (
            "FIREWATCH__SMS__BODY",
            r#"{"mobile": "{phone}", "content": "{text}"}"#.into(),
        ),
        ("FIREWATCH__SMS__SUCCESS_FIELD", "code".into()),
        ("FIREWATCH__SMS__SUCCESS_VALUE", "0".into()),
        ("FIREWATCH__NORTHBOUND__0__NAME", "city".into()),
        ("FIREWATCH__NORTHBOUND__0__URL", format!("{base}/nb")),
        (
            "FIREWATCH__NORTHBOUND__0__HEADERS__X_NB_KEY",
            NB_HEADER.into(),
        ),
        ("FIREWATCH__NORTHBOUND__0__BACKOFF_MAX_S", "1".into()),
    ];
    let mut fw = Firewatch::start(Options {
        env: vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        unset: vec!["FIREWATCH__AUTH__BOOTSTRAP_TOKEN".into()],
        ..Default::default()
    })
    .await;
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {BOOTSTRAP}").parse().unwrap(),
    );
    fw.http = reqwest::Client::builder()
        .default_headers(h)
        .build()
        .unwrap();
    let mut outputs: Vec<(String, String)> = Vec::new();

    // The work: a transmitter's fire alarm, raised, mailed and sent on every channel.
    let id = fire_alarm(&fw, &building).await;
    let mail = wait_for("the alarm's mail", T, || async {
        mails_to(&smtp.maildir, "duty@test.local")
            .into_iter()
            .find(|m| m.decoded_subject().contains(&building))
    })
    .await;
    for channel in ["webhook", "wecom", "dingtalk", "sms"] {
        wait_for(&format!("the {channel} delivery"), T, || async {
            rows(&fw, &id, channel)
                .await
                .into_iter()
                .any(|r| r["status"] == "sent")
                .then_some(())
        })
        .await;
    }
    // The dead robot has failed at least once (its error is in the log and the outbox).
    wait_for("the dead robot's failure", T, || async {
        rows(&fw, &id, "wecom")
            .await
            .into_iter()
            .any(|r| r["target"] == "gone" && r["attempts"].as_i64().unwrap_or(0) >= 1)
            .then_some(())
    })
    .await;
    wait_for("the platform's batch", T, || async {
        receiver
            .requests()
            .iter()
            .any(|r| r.uri.path() == "/nb")
            .then_some(())
    })
    .await;
    outputs.push(("mail".into(), mail.raw.clone()));
    outputs.push(("mail text".into(), mail.text()));

    // The API and the dashboard, with the token, without it, and wrong.
    let anonymous = reqwest::Client::new();
    let get = |c: &reqwest::Client, path: &str| c.get(format!("{}{path}", fw.base));
    for path in [
        "/",
        "/ui/app.js",
        "/ui/app.css",
        "/ui/words.json",
        "/healthz",
        "/metrics",
        "/metrics/coverage",
        "/api/v1/alerts?limit=1000",
        &format!("/api/v1/alerts/{id}"),
        &format!("/api/v1/notifications?alert={id}"),
        "/api/v1/devices",
        "/api/v1/buildings",
        "/api/v1/me",
        "/api/v1/users",
        "/api/v1/audit",
        "/api/v1/rejected",
        "/api/v1/no-such-route",
        "/api/v1/alerts/no-such-alert",
        "/api/v1/alerts?since=yesterday",
    ] {
        let r = get(&fw.http, path).send().await.unwrap();
        let status = r.status();
        outputs.push((format!("GET {path} ({status})"), r.text().await.unwrap()));
    }
    let r = get(&anonymous, "/api/v1/alerts").send().await.unwrap();
    assert_eq!(r.status(), 401);
    outputs.push((
        "GET /api/v1/alerts anonymous".into(),
        r.text().await.unwrap(),
    ));
    for (path, body) in [
        (
            "/api/v1/login",
            json!({"user": "admin", "password": "wrong"}),
        ),
        ("/api/v1/login", json!({"nobody": true})),
        ("/api/v1/ack/000000", json!({})),
    ] {
        let r = anonymous
            .post(format!("{}{path}", fw.base))
            .header("authorization", "Bearer wrong-token-wrong-token")
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert!(status.is_client_error(), "POST {path}: {status}");
        outputs.push((format!("POST {path} ({status})"), r.text().await.unwrap()));
    }
    let (status, v) = fw
        .post(&format!("/api/v1/alerts/{id}/ack"), json!({"by": "tester"}))
        .await;
    assert_eq!(status, 200, "{v}");
    outputs.push(("POST ack".into(), v.to_string()));

    // The same configuration checked.
    let out = fw.command().arg("check-config").output().unwrap();
    let check =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{check}");
    outputs.push(("check-config".into(), check));
    // A configuration with a problem: the message names the key and the file, not the value.
    let mut broken = fw.command();
    broken
        .arg("check-config")
        .env("FIREWATCH__TSDB__TOKEN_FILE", file("t", TSDB_TOKEN.into()));
    let out = broken.output().unwrap();
    let check = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success() && check.contains("tsdb.token"),
        "{check}"
    );
    outputs.push(("check-config with a problem".into(), check));

    // What the receivers got: every body, and the webhook's headers too.
    for r in receiver.requests() {
        let what = format!("{} {} body", r.method, r.uri.path());
        outputs.push((what, String::from_utf8_lossy(&r.body).into_owned()));
        if r.uri.path() == "/hook" {
            let headers = format!("{:?}", r.headers);
            outputs.push(("webhook headers".into(), headers));
        }
    }

    // The orderly stop, then the whole log and standard output.
    let status = fw.stop();
    assert!(status.success(), "{status}");
    let log = fw.log();
    let stdout = std::fs::read_to_string(fw.dir.join("firewatch.stdout")).unwrap_or_default();
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        log.contains("SMS gateway.") && log.contains("Notification failed."),
        "{log}"
    );
    outputs.push(("log (stderr)".into(), log));
    outputs.push(("stdout".into(), stdout));

    // The search itself finds a secret where there is one.
    let probe = [("probe".to_owned(), format!("token={BOOTSTRAP}&"))];
    assert_eq!(leaks(&probe), ["probe: auth.bootstrap_token"]);
    let found = leaks(&outputs);
    assert!(found.is_empty(), "secrets shown:\n{}", found.join("\n"));
    // Not vacuous: the searched outputs are the ones of real work.
    let alerts = outputs
        .iter()
        .find(|(w, _)| w.starts_with("GET /api/v1/alerts?limit"))
        .unwrap();
    assert!(alerts.1.contains(&id), "{}", alerts.1);
    assert!(outputs.iter().any(|(w, _)| w == "POST /hook body"));
    assert!(
        mail.decoded_subject().contains(&building),
        "{}",
        mail.decoded_subject()
    );
}
