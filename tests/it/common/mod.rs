//! Shared helpers for the integration tests: real services (Mosquitto, VictoriaMetrics for the
//! InfluxDB v2 write API, an aiosmtpd SMTP server) and the real `firewatch` binary.
//!
//! `scripts/test.sh` starts one instance of each service and exports their addresses in
//! `FW_TEST_*` variables. Tests that must break or restart a service start a private
//! instance of the same program on a free port instead ([`Mosquitto::start`],
//! [`VictoriaMetrics::start`], [`SmtpServer::start`]).

#![allow(dead_code)]

pub mod browser;
pub mod receiver;

#[allow(unused_imports)]
pub use browser::Browser;
#[allow(unused_imports)]
pub use receiver::Receiver;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A required environment variable set by `scripts/test.sh`.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the integration tests with scripts/test.sh (it starts Mosquitto, VictoriaMetrics and an SMTP server)")
    })
}

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A unique name for this test run and purpose.
pub fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `f` every 100 ms until it returns `Some`, or panics after `timeout` with `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until something listens on loopback `port`.
pub fn wait_port(port: u16, what: &str) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A private Mosquitto, configured from `deploy/mosquitto.conf`.
#[derive(Debug)]
pub struct Mosquitto {
    /// Its port.
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Mosquitto {
    /// Starts one on a free port.
    pub fn start() -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut m = Mosquitto {
            port,
            dir,
            child: None,
        };
        m.restart();
        m
    }

    /// (Re)starts it on the same port and persistence directory.
    pub fn restart(&mut self) {
        let deploy = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/mosquitto.conf"),
        )
        .unwrap();
        // Keep the deploy settings (queues, in-flight window, persistence); replace the
        // listener, authentication and file locations.
        let mut conf: Vec<String> = deploy
            .lines()
            .filter(|l| {
                let l = l.trim_start();
                !(l.starts_with("listener")
                    || l.starts_with("password_file")
                    || l.starts_with("acl_file")
                    || l.starts_with("allow_anonymous")
                    || l.starts_with("persistence_location")
                    || l.starts_with("pid_file")
                    || l.starts_with("log_dest")
                    || l.starts_with("user "))
            })
            .map(str::to_owned)
            .collect();
        conf.push(format!("listener {} 127.0.0.1", self.port));
        conf.push("allow_anonymous true".into());
        conf.push(format!(
            "persistence_location {}/",
            self.dir.path().display()
        ));
        conf.push("log_dest stderr".into());
        conf.push("user root".into());
        let path = self.dir.path().join("mosquitto.conf");
        std::fs::write(&path, conf.join("\n")).unwrap();
        let log = std::fs::File::create(self.dir.path().join("mosquitto.log")).unwrap();
        let child = Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("mosquitto must be installed (scripts/test.sh installs it)");
        self.child = Some(child);
        wait_port(self.port, "mosquitto");
    }

    /// Stops it gracefully (SIGTERM: it saves its persistent state).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(&c, "TERM");
            let _ = c.wait();
        }
    }

    /// `mqtt://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn signal(c: &Child, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(c.id().to_string())
        .status();
}

/// A private VictoriaMetrics (InfluxDB v2 write API).
#[derive(Debug)]
pub struct VictoriaMetrics {
    /// Its port.
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl VictoriaMetrics {
    /// Starts one on a free port.
    pub fn start() -> VictoriaMetrics {
        let mut v = VictoriaMetrics {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        v.restart();
        v
    }

    /// (Re)starts it on the same port and storage.
    pub fn restart(&mut self) {
        let child = Command::new("/usr/bin/victoria-metrics")
            .arg(format!("-httpListenAddr=127.0.0.1:{}", self.port))
            .arg(format!("-storageDataPath={}", self.dir.path().display()))
            .arg("-retentionPeriod=100y")
            .arg("-search.latencyOffset=0s")
            .arg("-search.disableCache")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("victoria-metrics must be installed (scripts/test.sh installs it)");
        self.child = Some(child);
        wait_port(self.port, "victoria-metrics");
    }

    /// Stops it (an outage). SIGTERM: VictoriaMetrics keeps recent points in memory for about a
    /// second and loses them on SIGKILL, which would test its durability, not firewatch's.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(&c, "TERM");
            let _ = c.wait();
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for VictoriaMetrics {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `auth.bootstrap_token` of every firewatch the tests start: the API answers only with a token
/// (contract section 7), and the tests act as this admin, naming who acts in `by`.
pub const TEST_TOKEN: &str = "test-bootstrap-token-0123456789";

/// An HTTP client that sends [`TEST_TOKEN`] with every request.
pub fn api_client() -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {TEST_TOKEN}")).unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(h)
        .build()
        .unwrap()
}

/// Values stored in VictoriaMetrics for series matching `selector` (e.g. `{device="d1"}`).
pub async fn tsdb_values(base: &str, selector: &str) -> Vec<(String, f64, i64)> {
    let r = reqwest::Client::new()
        .get(format!("{base}/api/v1/export"))
        .query(&[("match[]", selector)])
        .send()
        .await;
    let Ok(r) = r else { return Vec::new() };
    let text = r.text().await.unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap();
        let name = v["metric"]["__name__"].as_str().unwrap_or("").to_owned();
        let values = v["values"].as_array().cloned().unwrap_or_default();
        let ts = v["timestamps"].as_array().cloned().unwrap_or_default();
        for (x, t) in values.iter().zip(ts.iter()) {
            out.push((name.clone(), x.as_f64().unwrap(), t.as_i64().unwrap()));
        }
    }
    out
}

/// A private SMTP capture server (scripts/smtp_capture.py with Debian's aiosmtpd).
#[derive(Debug)]
pub struct SmtpServer {
    /// Its port.
    pub port: u16,
    /// Where mails land.
    pub maildir: PathBuf,
    _dir: tempfile::TempDir,
    child: Option<Child>,
}

impl SmtpServer {
    /// Starts one on `port` (0 = a free one).
    pub fn start(port: u16) -> SmtpServer {
        Self::start_failing(port, 0)
    }

    /// Starts one that answers `451 Try again later` to the first `fail_first` mails: a server
    /// that is up but refuses for now, which a real server does not do on demand.
    pub fn start_failing(port: u16, fail_first: u32) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let port = if port == 0 { free_port() } else { port };
        let maildir = dir.path().join("mail");
        std::fs::create_dir_all(&maildir).unwrap();
        let child = Command::new("/usr/bin/python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/smtp_capture.py"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--maildir")
            .arg(&maildir)
            .arg("--fail-first")
            .arg(fail_first.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3-aiosmtpd must be installed (scripts/test.sh installs it)");
        wait_port(port, "smtp capture");
        SmtpServer {
            port,
            maildir,
            _dir: dir,
            child: Some(child),
        }
    }

    /// `smtp://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A mail as captured: the raw message and its envelope recipients.
#[derive(Debug, Clone)]
pub struct Mail {
    /// Raw RFC 5322 text.
    pub raw: String,
    /// Envelope recipients.
    pub rcpt: Vec<String>,
}

impl Mail {
    /// The (unfolded) Subject header.
    pub fn subject(&self) -> String {
        let mut out = String::new();
        let mut in_subject = false;
        for line in self.raw.lines() {
            if in_subject && (line.starts_with(' ') || line.starts_with('\t')) {
                out.push_str(line.trim_start_matches(['\t']));
                continue;
            }
            in_subject = false;
            if let Some(s) = line.strip_prefix("Subject: ") {
                out.push_str(s);
                in_subject = true;
            }
        }
        out
    }
}

impl Mail {
    /// The Subject header with its RFC 2047 encoded words (`=?utf-8?b?…?=`, `=?utf-8?q?…?=`)
    /// decoded, as a mail program shows it.
    pub fn decoded_subject(&self) -> String {
        use base64::Engine as _;
        let raw = self.subject();
        let mut out = String::new();
        // Whitespace between two encoded words is not part of the text; elsewhere it is.
        let mut plain_before = false;
        for word in raw.split_whitespace() {
            let inner = word
                .strip_prefix("=?")
                .and_then(|w| w.strip_suffix("?="))
                .and_then(|w| {
                    let mut parts = w.splitn(3, '?');
                    Some((parts.next()?, parts.next()?, parts.next()?))
                });
            if inner.is_some() && plain_before {
                out.push(' ');
            }
            plain_before = inner.is_none();
            match inner {
                Some((_, enc, text)) if enc.eq_ignore_ascii_case("b") => {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .unwrap();
                    out.push_str(&String::from_utf8(bytes).unwrap());
                }
                Some((_, enc, text)) if enc.eq_ignore_ascii_case("q") => {
                    let text = text.replace('_', " ");
                    let mut bytes = Vec::new();
                    let mut it = text.bytes();
                    while let Some(b) = it.next() {
                        if b == b'=' {
                            let hex: Vec<u8> = it.by_ref().take(2).collect();
                            let hex = std::str::from_utf8(&hex).unwrap();
                            bytes.push(u8::from_str_radix(hex, 16).unwrap());
                        } else {
                            bytes.push(b);
                        }
                    }
                    out.push_str(&String::from_utf8(bytes).unwrap());
                }
                _ => {
                    if !out.is_empty() {
                        out.push(' ');
                    }
                    out.push_str(word);
                }
            }
        }
        out
    }

    /// The mail with its body decoded (see [`mail_text`]).
    pub fn text(&self) -> String {
        mail_text(&self.raw)
    }
}

/// An RFC 5322 mail (or `.eml` file) with its body decoded from base64 or quoted-printable, so
/// that tests can look for the UTF-8 text people read.
pub fn mail_text(raw: &str) -> String {
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .or_else(|| raw.split_once("\n\n"))
        .unwrap_or((raw, ""));
    let encoding = head.to_ascii_lowercase();
    let body = if encoding.contains("content-transfer-encoding: base64") {
        use base64::Engine as _;
        let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .unwrap();
        String::from_utf8(bytes).unwrap()
    } else if encoding.contains("content-transfer-encoding: quoted-printable") {
        let joined = body.replace("=\r\n", "").replace("=\n", "");
        let mut bytes = Vec::new();
        let mut it = joined.bytes();
        while let Some(b) = it.next() {
            if b == b'=' {
                let hex: Vec<u8> = it.by_ref().take(2).collect();
                bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).unwrap(), 16).unwrap());
            } else {
                bytes.push(b);
            }
        }
        String::from_utf8(bytes).unwrap()
    } else {
        body.to_owned()
    };
    format!("{head}\n\n{body}")
}

/// Mails in `maildir` sent to `rcpt`.
pub fn mails_to(maildir: &Path, rcpt: &str) -> Vec<Mail> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(maildir) else {
        return out;
    };
    let mut names: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    names.sort();
    for eml in names {
        let json = eml.with_extension("json");
        let Ok(meta) = std::fs::read_to_string(&json) else {
            continue;
        };
        let meta: Value = serde_json::from_str(&meta).unwrap();
        let rcpt_tos: Vec<String> = meta["rcpt_tos"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if rcpt_tos.iter().any(|r| r == rcpt) {
            out.push(Mail {
                raw: std::fs::read_to_string(&eml).unwrap(),
                rcpt: rcpt_tos,
            });
        }
    }
    out
}

/// Writes the shipped rules with every time (`*_s`) multiplied by `factor`, for fast tests.
pub fn scaled_rules(dir: &Path, factor: f64) -> PathBuf {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rules.toml"))
            .unwrap();
    let path = dir.join("rules.toml");
    std::fs::write(
        &path,
        firewatch::rules::scale_rule_times(&text, factor).unwrap(),
    )
    .unwrap();
    path
}

/// How to start firewatch.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Broker URL (default: the shared test Mosquitto).
    pub mqtt_url: Option<String>,
    /// TSDB URL.
    pub tsdb_url: Option<String>,
    /// SMTP URL (None: .eml files in the outbox).
    pub smtp_url: Option<String>,
    /// Recipient.
    pub email_to: Option<String>,
    /// Rule time factor (1.0 = shipped rules).
    pub time_factor: Option<f64>,
    /// Registry TOML.
    pub registry: Option<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// Variables of the usual environment to leave out (e.g. `FIREWATCH__AUTH__BOOTSTRAP_TOKEN`
    /// when a test gives it as `_FILE`).
    pub unset: Vec<String>,
}

/// A running firewatch binary with its own store, client id and HTTP port.
#[derive(Debug)]
pub struct Firewatch {
    /// HTTP base URL.
    pub base: String,
    /// `storage.dir`.
    pub dir: PathBuf,
    /// The options it was started with.
    pub opts: Options,
    client_id: String,
    http_port: u16,
    _tmp: Option<tempfile::TempDir>,
    child: Option<Child>,
    /// HTTP client.
    pub http: reqwest::Client,
}

impl Firewatch {
    /// Starts firewatch and waits until it is connected to its broker.
    pub async fn start(opts: Options) -> Firewatch {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_owned();
        let mut fw = Firewatch {
            base: String::new(),
            dir,
            opts,
            client_id: unique("fw"),
            http_port: free_port(),
            _tmp: Some(tmp),
            child: None,
            http: api_client(),
        };
        fw.base = format!("http://127.0.0.1:{}", fw.http_port);
        fw.spawn().await;
        fw
    }

    /// The command that starts this firewatch (`run` when no subcommand is added), with its
    /// environment (a started one logs to `firewatch.log`, its standard output goes to
    /// `firewatch.stdout`).
    pub fn command(&self) -> Command {
        let o = &self.opts;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_firewatch"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("RUST_LOG")
            .env("RUST_LOG", "info,rumqttd=off")
            .env(
                "FIREWATCH__MQTT__URL",
                o.mqtt_url
                    .clone()
                    .unwrap_or_else(|| env("FW_TEST_MQTT_URL")),
            )
            .env("FIREWATCH__MQTT__CLIENT_ID", &self.client_id)
            .env("FIREWATCH__MQTT__RECONNECT_MAX_S", "1")
            .env(
                "FIREWATCH__HTTP__LISTEN",
                format!("127.0.0.1:{}", self.http_port),
            )
            .env("FIREWATCH__STORAGE__DIR", &self.dir)
            .env("FIREWATCH__STORAGE__SYNCHRONOUS", "normal")
            .env("FIREWATCH__AUTH__BOOTSTRAP_TOKEN", TEST_TOKEN)
            .env(
                "FIREWATCH__EMAIL__TO",
                o.email_to
                    .clone()
                    .unwrap_or_else(|| "duty@test.local".into()),
            )
            .env("FIREWATCH__TSDB__FLUSH_INTERVAL_MS", "200")
            // Every alert its own message: the tests of grouping set it themselves.
            .env("FIREWATCH__NOTIFY__GROUP__WAIT_S", "0")
            .env("FIREWATCH__NOTIFY__GROUP__INTERVAL_S", "0");
        std::fs::create_dir_all(&self.dir).unwrap();
        if let Some(u) = &o.tsdb_url {
            cmd.env("FIREWATCH__TSDB__URL", u);
        }
        if let Some(u) = &o.smtp_url {
            cmd.env("FIREWATCH__EMAIL__SMTP_URL", u);
        }
        if let Some(f) = o.time_factor {
            cmd.env("FIREWATCH__RULES__FILE", scaled_rules(&self.dir, f));
        }
        let reg = self.dir.join("registry.toml");
        std::fs::write(&reg, o.registry.clone().unwrap_or_default()).unwrap();
        cmd.env("FIREWATCH__REGISTRY__FILE", &reg);
        for (k, v) in &o.env {
            cmd.env(k, v);
        }
        for k in &o.unset {
            cmd.env_remove(k);
        }
        cmd
    }

    async fn spawn(&mut self) {
        let mut cmd = self.command();
        cmd.stderr(std::fs::File::create(self.dir.join("firewatch.log")).unwrap())
            .stdout(std::fs::File::create(self.dir.join("firewatch.stdout")).unwrap());
        self.child = Some(cmd.spawn().unwrap());
        let http = self.http.clone();
        let url = format!("{}/healthz", self.base);
        let log = self.dir.join("firewatch.log");
        let start = Instant::now();
        loop {
            if let Ok(r) = http.get(&url).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!(
                        "firewatch exited with {status}:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "firewatch did not become healthy:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for the orderly shutdown.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        signal(&c, "TERM");
        c.wait().unwrap()
    }

    /// Starts again with the same store, client id and port.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill it first");
        self.spawn().await;
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("firewatch.log")).unwrap_or_default()
    }
}

/// The HTTP API of a running firewatch (a child process or one in this test process).
#[allow(async_fn_in_trait)]
pub trait Api {
    /// HTTP base URL.
    fn base(&self) -> &str;
    /// HTTP client.
    fn http(&self) -> &reqwest::Client;

    /// GET a JSON document.
    async fn get(&self, path: &str) -> Value {
        let r = self
            .http()
            .get(format!("{}{path}", self.base()))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v = r.json::<Value>().await.unwrap();
        assert!(status.is_success(), "GET {path}: {status} {v}");
        v
    }

    /// POST JSON; returns status and body.
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http()
            .post(format!("{}{path}", self.base()))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap_or(Value::Null))
    }

    /// Alerts of a building (all statuses).
    async fn alerts(&self, building: &str) -> Vec<Value> {
        self.get(&format!("/api/v1/alerts?building={building}&limit=1000"))
            .await
            .as_array()
            .cloned()
            .unwrap()
    }

    /// One metric's value from `/metrics`.
    async fn metric(&self, name: &str) -> f64 {
        self.metric_at("/metrics", name).await
    }

    /// GET a text document (CSV, Prometheus text), whatever its status.
    async fn get_text(&self, path: &str) -> String {
        self.http()
            .get(format!("{}{path}", self.base()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// One metric's value from the Prometheus text at `path` (`/metrics`, `/metrics/coverage`).
    async fn metric_at(&self, path: &str, name: &str) -> f64 {
        let text = self.get_text(path).await;
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("metric {name} not in {path}"))
    }

    /// Waits until an alert for (rule, device) satisfies `pred`; returns it.
    async fn wait_alert(
        &self,
        building: &str,
        rule: &str,
        device: &str,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Value {
        wait_for(&format!("alert {rule} on {device}"), timeout, || async {
            self.alerts(building)
                .await
                .into_iter()
                .find(|a| a["rule"] == rule && a["device"] == device && pred(a))
        })
        .await
    }

    /// Waits until the history of alert `id` holds `step` (a delivery is recorded only after
    /// the receiving server has answered, so a mail on disk can precede it); returns the steps.
    async fn wait_history(&self, id: &str, step: &str) -> Vec<String> {
        wait_for(
            &format!("{step} in the history of {id}"),
            Duration::from_secs(60),
            || async {
                let full = self.get(&format!("/api/v1/alerts/{id}")).await;
                let what: Vec<String> =
                    history_steps(&full).into_iter().map(String::from).collect();
                what.iter().any(|s| s == step).then_some(what)
            },
        )
        .await
    }
}

impl Api for Firewatch {
    fn base(&self) -> &str {
        &self.base
    }
    fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

/// firewatch running inside the test process on a [`ManualClock`], with the shipped rules:
/// hold times, offline timeouts and retries pass when the test moves the clock, not by sleeping
/// or by scaling rule times.
pub struct InProcess {
    /// HTTP base URL.
    pub base: String,
    /// The clock it runs on.
    pub clock: std::sync::Arc<firewatch::clock::ManualClock>,
    /// HTTP client.
    pub http: reqwest::Client,
    token: tokio_util::sync::CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    cfg: firewatch::config::Config,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for InProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InProcess({})", self.base)
    }
}

impl InProcess {
    /// Starts it against the shared test broker, with `registry` TOML, and waits until healthy.
    pub async fn start(registry: &str) -> InProcess {
        Self::start_with(registry, |_| {}).await
    }

    /// As [`InProcess::start`], with the configuration changed by `tweak` first.
    pub async fn start_with(
        registry: &str,
        tweak: impl FnOnce(&mut firewatch::config::Config),
    ) -> InProcess {
        Self::start_at(firewatch::clock::wall_ms(), registry, tweak).await
    }

    /// As [`InProcess::start_with`], on a clock that starts at `start` (epoch ms) instead of
    /// the wall time: for tests of what happens at a local time of day.
    pub async fn start_at(
        start: i64,
        registry: &str,
        tweak: impl FnOnce(&mut firewatch::config::Config),
    ) -> InProcess {
        let dir = tempfile::tempdir().unwrap();
        let clock = firewatch::clock::ManualClock::new(start);
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut cfg = firewatch::config::Config::default();
        cfg.mqtt.url = env("FW_TEST_MQTT_URL");
        cfg.mqtt.client_id = unique("fw-inproc");
        cfg.mqtt.reconnect_max_s = 1;
        let port = free_port();
        cfg.http.listen = format!("127.0.0.1:{port}");
        cfg.storage.dir = dir.path().join("data");
        cfg.storage.synchronous = "normal".into();
        cfg.auth.bootstrap_token = Some(firewatch::settings::Secret::new(TEST_TOKEN));
        cfg.rules.file = root.join("config/rules.toml");
        let reg = dir.path().join("registry.toml");
        std::fs::write(&reg, registry).unwrap();
        cfg.registry.file = reg;
        // Every alert its own message: the tests of grouping set it themselves.
        cfg.notify.group.wait_s = 0;
        cfg.notify.group.interval_s = 0;
        tweak(&mut cfg);
        let mut fw = InProcess {
            base: format!("http://127.0.0.1:{port}"),
            clock,
            http: api_client(),
            token: tokio_util::sync::CancellationToken::new(),
            task: None,
            cfg,
            _dir: dir,
        };
        fw.run().await;
        fw
    }

    /// The directory of its store (and its e-mail outbox, `outbox/`).
    pub fn store_dir(&self) -> &Path {
        &self.cfg.storage.dir
    }

    /// Its `registry.file`.
    pub fn registry_file(&self) -> &Path {
        &self.cfg.registry.file
    }

    async fn run(&mut self) {
        self.token = tokio_util::sync::CancellationToken::new();
        let run = firewatch::app::run_with(
            self.cfg.clone(),
            self.clock.clone(),
            self.token.clone().cancelled_owned(),
        );
        self.task = Some(tokio::spawn(run));
        wait_for(
            "in-process firewatch healthy",
            Duration::from_secs(30),
            || async {
                let r = self
                    .http
                    .get(format!("{}/healthz", self.base))
                    .send()
                    .await
                    .ok()?;
                r.status().is_success().then_some(())
            },
        )
        .await;
    }

    /// Stops it (as SIGTERM would) and starts it again on the same store and clock.
    pub async fn restart(&mut self) {
        self.token.cancel();
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
        self.run().await;
    }

    /// Moves the clock forward and waits until the pipeline's timers have run at the new time.
    pub async fn advance(&self, ms: i64) {
        use firewatch::clock::Clock;
        self.clock.advance(ms);
        let now = self.clock.now_ms() as f64;
        wait_for(
            "a pipeline tick at the new time",
            Duration::from_secs(10),
            || async { (self.metric("firewatch_pipeline_clock_ms").await >= now).then_some(()) },
        )
        .await;
    }

    /// Waits until `device` has `n` accepted messages committed.
    pub async fn wait_messages(&self, device: &str, n: u64) {
        wait_for(
            &format!("{n} messages of {device}"),
            Duration::from_secs(30),
            || async {
                let r = self
                    .http
                    .get(format!("{}/api/v1/devices/{device}", self.base))
                    .send()
                    .await
                    .ok()?;
                let d: Value = r.json().await.ok()?;
                (d["messages"].as_u64() == Some(n)).then_some(())
            },
        )
        .await;
    }

    /// Stops it (as SIGTERM would) and waits for the orderly shutdown.
    pub async fn stop(mut self) {
        self.token.cancel();
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }
}

impl Api for InProcess {
    fn base(&self) -> &str {
        &self.base
    }
    fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

impl Drop for Firewatch {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "--- firewatch log ({}) ---\n{}",
                self.dir.display(),
                self.log()
            );
        }
    }
}

/// A device-side MQTT client that waits for every PUBACK.
pub struct Publisher {
    client: AsyncClient,
    events: tokio::sync::mpsc::UnboundedReceiver<u16>,
    task: tokio::task::JoinHandle<()>,
    /// PUBACKs received.
    pub acked: u64,
    sent: u64,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Publisher(acked {})", self.acked)
    }
}

impl Publisher {
    /// Connects to `url` (`mqtt://host:port`).
    pub async fn connect(url: &str) -> Publisher {
        let u = url::Url::parse(url).unwrap();
        let mut o = MqttOptions::new(
            unique("pub"),
            u.host_str().unwrap(),
            u.port().unwrap_or(1883),
        );
        o.set_keep_alive(Duration::from_secs(30));
        o.set_inflight(500);
        o.set_max_packet_size(1024 * 1024, 1024 * 1024);
        let (client, mut el) = AsyncClient::new(o, 1000);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(a))) => {
                        let _ = tx.send(a.pkid);
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(_))) => {}
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        Publisher {
            client,
            events: rx,
            task,
            acked: 0,
            sent: 0,
        }
    }

    /// Publishes at QoS 1 without waiting.
    pub async fn send(&mut self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.into())
            .await
            .unwrap();
        self.sent += 1;
    }

    /// Publishes retained at QoS 1.
    pub async fn send_retained(&mut self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, true, payload.into())
            .await
            .unwrap();
        self.sent += 1;
    }

    /// Waits until every publish so far was acknowledged by the broker.
    pub async fn flush(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.acked < self.sent {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.events.recv()).await {
                Ok(Some(_)) => self.acked += 1,
                _ => panic!(
                    "broker acknowledged {} of {} publishes",
                    self.acked, self.sent
                ),
            }
        }
    }

    /// Counts acknowledgements that already arrived, without waiting.
    pub fn drain_acks(&mut self) {
        while self.events.try_recv().is_ok() {
            self.acked += 1;
        }
    }

    /// Publishes and waits for its PUBACK.
    pub async fn publish(&mut self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.send(topic, payload).await;
        self.flush().await;
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Distinct values of a metric stored for a device (via the API).
pub async fn stored_values(fw: &Firewatch, device: &str, metric: &str) -> Vec<f64> {
    fw.get(&format!(
        "/api/v1/devices/{device}/readings?metric={metric}&since=0&limit=100000"
    ))
    .await
    .as_array()
    .unwrap()
    .iter()
    .map(|r| r["value"].as_f64().unwrap())
    .collect()
}

/// The `what` of every history entry of an alert (`GET /api/v1/alerts/{id}`), oldest first.
pub fn history_steps(alert: &Value) -> Vec<&str> {
    alert["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["what"].as_str().unwrap())
        .collect()
}

/// The events of an alert's notifications, oldest first.
pub async fn notified(fw: &impl Api, id: &str) -> Vec<String> {
    let mut v: Vec<Value> = fw
        .get(&format!("/api/v1/notifications?alert={id}"))
        .await
        .as_array()
        .cloned()
        .unwrap();
    v.reverse();
    v.iter()
        .map(|n| n["event"].as_str().unwrap().to_owned())
        .collect()
}

/// An alert's history steps, notification attempts left out.
pub async fn steps(fw: &impl Api, id: &str) -> Vec<String> {
    let a = fw.get(&format!("/api/v1/alerts/{id}")).await;
    history_steps(&a)
        .into_iter()
        .filter(|s| !s.starts_with("notif"))
        .map(String::from)
        .collect()
}

/// Counts distinct values (as fixed-point keys).
pub fn distinct(values: &[f64]) -> usize {
    values
        .iter()
        .map(|v| (v * 1e6).round() as i64)
        .collect::<HashSet<_>>()
        .len()
}

/// One Server-Sent Event as read from `GET /api/v1/events`.
#[derive(Debug, Clone)]
pub struct SseEvent {
    /// `id:` (the change id).
    pub id: i64,
    /// `event:` (the change type).
    pub event: String,
    /// `data:` parsed as JSON.
    pub data: Value,
    /// Wall time (epoch ms) when the test had read the whole event.
    pub read_at_ms: i64,
}

/// Wall time in epoch milliseconds.
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A client of the event stream: an HTTP/1.1 response body read chunk by chunk.
#[derive(Debug)]
pub struct EventStream {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl EventStream {
    /// Opens `GET {base}{path}`, with `Last-Event-ID` when given; returns once the response
    /// headers arrived (the server has subscribed to the feed by then).
    pub async fn open(base: &str, path: &str, last_event_id: Option<i64>) -> EventStream {
        EventStream::open_with(&api_client(), &format!("{base}{path}"), last_event_id).await
    }

    /// As `open`, with `client` (which carries the credentials) at `url`.
    pub async fn open_with(
        client: &reqwest::Client,
        url: &str,
        last_event_id: Option<i64>,
    ) -> EventStream {
        let mut req = client.get(url);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "GET {url}");
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("text/event-stream"), "content type {ct}");
        EventStream {
            resp,
            buf: Vec::new(),
        }
    }

    /// The next event (comments such as keep-alives skipped), or a panic after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> SseEvent {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let bytes: Vec<u8> = self.buf.drain(..end + 2).collect();
                let block = String::from_utf8(bytes).unwrap();
                let (mut id, mut event, mut data) = (None, String::from("message"), Vec::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim_start().to_owned());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim_start().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.strip_prefix(' ').unwrap_or(v).to_owned());
                    }
                }
                if data.is_empty() {
                    continue; // a comment (keep-alive)
                }
                return SseEvent {
                    id: id.expect("every event has an id").parse().unwrap(),
                    event,
                    data: serde_json::from_str(&data.join("\n")).unwrap(),
                    read_at_ms: wall_ms(),
                };
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .unwrap_or_else(|_| panic!("no event within {timeout:?}"))
                .unwrap()
                .expect("the event stream ended");
            self.buf.extend_from_slice(&chunk);
        }
    }

    /// Reads events until one satisfies `pred`; returns every event read, that one last.
    pub async fn until(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&SseEvent) -> bool,
    ) -> Vec<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let e = self.next(left).await;
            let done = pred(&e);
            out.push(e);
            if done {
                return out;
            }
        }
    }
}

/// Longest wait for a notification.
pub const NOTIFY_T: Duration = Duration::from_secs(60);

/// Starts firewatch on a private broker with `env` (the channels), fires a manual alarm
/// (critical, zone `3F`) of transmitter `tx-{building}`; returns the broker, firewatch and the
/// alert id.
pub async fn fire(
    building: &str,
    smtp_url: Option<String>,
    env: Vec<(String, String)>,
) -> (Mosquitto, Firewatch, String) {
    let broker = Mosquitto::start();
    let fw = Firewatch::start(Options {
        mqtt_url: Some(broker.url()),
        smtp_url,
        env,
        ..Default::default()
    })
    .await;
    let mut p = Publisher::connect(&broker.url()).await;
    p.publish(
        &format!("fw/v1/{building}/transmitter/tx-{building}/event"),
        json!({"event": "manual_alarm", "state": "start", "zone": "3F"}).to_string(),
    )
    .await;
    let a = fw
        .wait_alert(
            building,
            "transmitter.fire_alarm",
            &format!("tx-{building}"),
            |_| true,
            NOTIFY_T,
        )
        .await;
    let id = a["id"].as_str().unwrap().to_owned();
    (broker, fw, id)
}

/// The alert's outbox rows on `channel`.
pub async fn rows(fw: &Firewatch, id: &str, channel: &str) -> Vec<Value> {
    fw.get(&format!(
        "/api/v1/notifications?alert={id}&channel={channel}"
    ))
    .await
    .as_array()
    .unwrap()
    .clone()
}

/// Waits until the alert's only row on `channel` is no longer pending; returns it.
pub async fn settled(fw: &Firewatch, id: &str, channel: &str) -> Value {
    wait_for(
        &format!("the {channel} notification of {id} settled"),
        NOTIFY_T,
        || async {
            let r = rows(fw, id, channel).await;
            (r.len() == 1 && r[0]["status"] != "pending").then(|| r[0].clone())
        },
    )
    .await
}

/// Publishes a transmitter's fire alarm (critical) in `building` on the shared test broker
/// and waits for its alert; returns the alert id.
pub async fn fire_alarm(fw: &impl Api, building: &str) -> String {
    let mut p = Publisher::connect(&env("FW_TEST_MQTT_URL")).await;
    p.publish(
        &format!("fw/v1/{building}/transmitter/tx-{building}/event"),
        serde_json::json!({"event": "fire_alarm", "state": "start", "zone": "3F"}).to_string(),
    )
    .await;
    let dev = format!("tx-{building}");
    let a = fw
        .wait_alert(
            building,
            "transmitter.fire_alarm",
            &dev,
            |_| true,
            Duration::from_secs(30),
        )
        .await;
    a["id"].as_str().unwrap().to_owned()
}

/// `firewatch ARGS` on the store of `fw`, with `stdin` as its standard input.
pub fn cli(fw: &Firewatch, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_firewatch"));
    cmd.args(args)
        .env("FIREWATCH__STORAGE__DIR", &fw.dir)
        .env("FIREWATCH__STORAGE__SYNCHRONOUS", "normal");
    run_with_stdin(cmd, stdin)
}

/// Runs `cmd` with `stdin` as its standard input: (success, stdout, stderr).
pub fn run_with_stdin(mut cmd: std::process::Command, stdin: &str) -> (bool, String, String) {
    use std::io::Write as _;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The CA, server (localhost, 127.0.0.1) and device certificates `deploy/make-certs.sh` makes,
/// one device certificate per entry of `clients`.
pub fn make_certs(clients: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/make-certs.sh");
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(script).arg(dir.path());
    for c in clients {
        cmd.arg("--client").arg(c);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}
