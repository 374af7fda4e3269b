//! HTTPS in firewatch itself (`http.tls_cert`, `http.tls_key`): certificates from
//! `deploy/make-certs.sh`, a client that trusts only their authority, the dashboard and the API
//! over TLS with the security headers, and plain HTTP on the same port not served.

use crate::common::*;
use std::path::Path;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firewatch_serves_https_only_with_its_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/make-certs.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg(certs.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let dir = certs.path();
    // The helper waits for plain-HTTP health, which a TLS-only port never answers: start it by
    // hand with the same environment.
    let mut fw = Firewatch::start(Options::default()).await;
    fw.stop();
    let mut cmd = fw.command();
    cmd.env("FIREWATCH__HTTP__TLS_CERT", dir.join("server.crt"))
        .env("FIREWATCH__HTTP__TLS_KEY", dir.join("server.key"))
        .stderr(std::fs::File::create(fw.dir.join("https.log")).unwrap());
    let mut child = cmd.spawn().unwrap();
    let port = fw.base.rsplit(':').next().unwrap().to_owned();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(dir.join("ca.crt")).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let https = format!("https://localhost:{port}");
    wait_for(
        "firewatch healthy over HTTPS",
        Duration::from_secs(30),
        || async {
            let r = client.get(format!("{https}/healthz")).send().await.ok()?;
            r.status().is_success().then_some(())
        },
    )
    .await;

    // The dashboard, with the security headers.
    let r = client.get(format!("{https}/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(r.text().await.unwrap().contains("/ui/app.js"));
    // An API route, with the token, at 127.0.0.1 too (the certificate names both).
    let r = client
        .get(format!("https://127.0.0.1:{port}/api/v1/alerts?limit=1"))
        .bearer_auth(TEST_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(r.json::<serde_json::Value>().await.unwrap().is_array());

    // Plain HTTP on the same port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .timeout(Duration::from_secs(15))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP was served: {plain:?}");
    // A client that does not trust the authority is refused.
    let untrusting = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    assert!(untrusting
        .get(format!("{https}/healthz"))
        .send()
        .await
        .is_err());
    // HTTPS still answers after the failed handshakes.
    let r = client.get(format!("{https}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // The orderly stop still works.
    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(fw.dir.join("https.log")).unwrap();
    assert!(status.success(), "{status}\n{log}");
    assert!(log.contains("https://"), "{log}");
}
