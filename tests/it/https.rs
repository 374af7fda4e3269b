//! HTTPS in firewatch itself (`http.tls_cert`, `http.tls_key`): certificates from
//! `deploy/make-certs.sh`, a client that trusts only their authority, the dashboard and the API
//! over TLS with the security headers, and plain HTTP on the same port not served. And HTTPS
//! in front of it: Debian's nginx with `deploy/nginx-firewatch.conf`.

use crate::common::*;
use std::path::Path;
use std::time::Duration;

/// The dashboard page with firewatch's security headers: its headers, for more checks.
async fn dashboard(r: reqwest::Response) -> reqwest::header::HeaderMap {
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(r.text().await.unwrap().contains("/ui/app.js"));
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firewatch_serves_https_only_with_its_certificate() {
    let certs = make_certs(&[]);
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
    let h = dashboard(r).await;
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
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

/// nginx with `deploy/nginx-firewatch.conf`, its addresses and file paths the only change, in a
/// directory of its own; stopped when dropped.
struct Nginx {
    child: std::process::Child,
    https: u16,
    http: u16,
    log: std::path::PathBuf,
}

impl Nginx {
    fn start(dir: &Path, certs: &Path, upstream: u16) -> Nginx {
        let snippet = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx-firewatch.conf"),
        )
        .unwrap();
        let (https, http) = (free_port(), free_port());
        let mut conf = snippet.clone();
        for (from, to) in [
            (
                "server 127.0.0.1:8080;",
                format!("server 127.0.0.1:{upstream};"),
            ),
            ("listen 80;", format!("listen 127.0.0.1:{http};")),
            ("listen 443 ssl;", format!("listen 127.0.0.1:{https} ssl;")),
            (
                "/etc/firewatch/tls/server.crt",
                certs.join("server.crt").display().to_string(),
            ),
            (
                "/etc/firewatch/tls/server.key",
                certs.join("server.key").display().to_string(),
            ),
        ] {
            assert!(conf.contains(from), "the snippet no longer has {from:?}");
            conf = conf.replace(from, &to);
        }
        // IPv6 listeners: loopback only here, and a machine may have no IPv6 at all.
        conf = conf
            .lines()
            .filter(|l| !l.trim_start().starts_with("listen [::]"))
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(dir.join("firewatch.conf"), conf).unwrap();
        let d = dir.display();
        std::fs::write(
            dir.join("nginx.conf"),
            format!(
                "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
                 fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
                 include {d}/firewatch.conf;\n}}\n"
            ),
        )
        .unwrap();
        let log = dir.join("nginx.log");
        let child = std::process::Command::new("/usr/sbin/nginx")
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("nginx (Debian's nginx-light, installed by scripts/test-services.sh)");
        let n = Nginx {
            child,
            https,
            http,
            log,
        };
        wait_port(https, "nginx");
        n
    }

    fn logs(&self) -> String {
        let dir = self.log.parent().unwrap();
        format!(
            "{}{}",
            std::fs::read_to_string(&self.log).unwrap_or_default(),
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        )
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The reverse-proxy snippet of the operations guide works as written: TLS at nginx, the
/// dashboard with firewatch's security headers and nginx's HSTS, the API with a token, the
/// change feed unbuffered (an alert arrives while the stream is open), bodies over 64 KiB
/// refused at nginx, and plain HTTP redirected to HTTPS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nginx_snippet_terminates_tls_in_front_of_firewatch() {
    let certs = make_certs(&[]);
    let fw = Firewatch::start(Options::default()).await;
    let upstream: u16 = fw.base.rsplit(':').next().unwrap().parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::start(dir.path(), certs.path(), upstream);
    let ca = std::fs::read(certs.path().join("ca.crt")).unwrap();
    let mut auth = reqwest::header::HeaderMap::new();
    auth.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {TEST_TOKEN}").parse().unwrap(),
    );
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .default_headers(auth)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let https = format!("https://localhost:{}", nginx.https);

    let r = client.get(format!("{https}/")).send().await;
    let r = r.unwrap_or_else(|e| panic!("{e}\n{}", nginx.logs()));
    assert_eq!(r.status(), 200, "{}", nginx.logs());
    let h = dashboard(r).await;
    assert_eq!(h["strict-transport-security"], "max-age=31536000");

    let r = client
        .get(format!("{https}/api/v1/alerts?limit=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.json::<serde_json::Value>().await.unwrap().is_array());

    // The change feed through nginx: an alert raised while the stream is open arrives (a
    // buffering proxy would hold it until its buffer filled).
    let b = unique("bngx");
    let mut stream = EventStream::open_with(
        &client,
        &format!("{https}/api/v1/events?building={b}"),
        None,
    )
    .await;
    let cam = format!("cam-{b}");
    let mut p = Publisher::connect(&env("FW_TEST_MQTT_URL")).await;
    p.publish(
        &format!("fw/v1/{b}/fire_lane/{cam}/event"),
        r#"{"event": "flame", "state": "start", "zone": "lobby"}"#,
    )
    .await;
    stream
        .until(Duration::from_secs(10), |e| {
            e.event == "alert" && e.data["what"] == "fired" && e.data["alert"]["device"] == cam
        })
        .await;

    // Over 64 KiB: refused at nginx, before firewatch reads it.
    let r = client
        .post(format!("{https}/api/v1/alerts/none/ack"))
        .body(vec![b' '; 100 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let page = r.text().await.unwrap();
    assert!(page.contains("nginx"), "not nginx's refusal: {page}");

    // Plain HTTP is sent to HTTPS.
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{}/healthz", nginx.http))
        .header("host", "localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(r.headers()["location"], "https://localhost/healthz");
}
