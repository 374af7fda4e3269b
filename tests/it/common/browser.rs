//! A real browser for the dashboard tests: headless Chromium (Debian's `chromium`) driven over
//! the W3C WebDriver protocol by Debian's `chromedriver`, one private driver per test.
//!
//! `scripts/test-services.sh` installs both and exports `FW_TEST_CHROMIUM` and
//! `FW_TEST_CHROMEDRIVER`. Screenshots go to `FW_TEST_ARTIFACTS` (default
//! `target/test-artifacts`).

use super::{free_port, wait_for};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One browser session on its own chromedriver; both end when it is dropped.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

fn program(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

/// Where screenshots of this run are kept.
pub fn artifacts() -> PathBuf {
    std::env::var_os("FW_TEST_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts"))
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium session.
    pub async fn start() -> Browser {
        let driver_bin = program("FW_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = program("FW_TEST_CHROMIUM", "/usr/bin/chromium");
        let port = free_port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {driver_bin}: {e} (scripts/test-services.sh installs chromium-driver)")
            });
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let status = format!("http://127.0.0.1:{port}/status");
        wait_for("chromedriver ready", Duration::from_secs(20), || {
            let http = http.clone();
            let status = status.clone();
            async move {
                let v: Value = http.get(&status).send().await.ok()?.json().await.ok()?;
                v["value"]["ready"].as_bool().filter(|r| *r)
            }
        })
        .await;
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1400,900", "--lang=zh-CN", "--no-first-run",
                    "--autoplay-policy=no-user-gesture-required",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": {"intl.accept_languages": "zh-CN,zh"},
            },
        }}});
        let res: Value = http
            .post(format!("http://127.0.0.1:{port}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new WebDriver session")
            .json()
            .await
            .unwrap();
        let session = res["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver refused a session: {res}"))
            .to_owned();
        Browser {
            driver,
            port,
            session,
            http,
            _profile: profile,
        }
    }

    fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/session/{}{path}",
            self.port, self.session
        )
    }

    /// One WebDriver command; returns its `value`, or the error as `Err`.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Value> {
        let req = match method {
            "GET" => self.http.get(self.url(path)),
            "DELETE" => self.http.delete(self.url(path)),
            _ => self
                .http
                .post(self.url(path))
                .json(&body.unwrap_or_else(|| json!({}))),
        };
        let res = req.send().await.expect("WebDriver request");
        let ok = res.status().is_success();
        let v: Value = res.json().await.unwrap_or(Value::Null);
        if ok {
            Ok(v["value"].clone())
        } else {
            Err(v["value"].clone())
        }
    }

    async fn must(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path} failed: {e}"))
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.must("POST", "/url", Some(json!({ "url": url }))).await;
    }

    /// The element matching `css` now, if any.
    pub async fn find(&self, css: &str) -> Option<String> {
        let v = self
            .call(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await
            .ok()?;
        v[ELEMENT].as_str().map(str::to_owned)
    }

    /// Waits, up to `timeout`, for an element matching `css`.
    pub async fn wait_for_css(&self, what: &str, css: &str, timeout: Duration) -> String {
        let what = format!("{what} ({css})");
        let start = Instant::now();
        loop {
            if let Some(e) = self.find(css).await {
                return e;
            }
            if start.elapsed() > timeout {
                let name = format!("timeout-{}", start.elapsed().as_millis());
                self.screenshot(&name).await;
                panic!(
                    "timed out after {timeout:?} waiting for {what}; screenshot {name}.png in {}",
                    artifacts().display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits, up to `timeout`, until nothing matches `css`.
    pub async fn wait_gone(&self, what: &str, css: &str, timeout: Duration) {
        let start = Instant::now();
        while self.find(css).await.is_some() {
            if start.elapsed() > timeout {
                self.screenshot("timeout-gone").await;
                panic!("timed out after {timeout:?} waiting for {what} ({css} still there)");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits, up to `timeout`, until `script` returns something truthy; returns it.
    pub async fn wait_js(&self, what: &str, script: &str, timeout: Duration) -> Value {
        let start = Instant::now();
        loop {
            let v = self.exec(script, vec![]).await;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            if start.elapsed() > timeout {
                self.screenshot("timeout-js").await;
                panic!("timed out after {timeout:?} waiting for {what} (last: {v})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for `css` and clicks it.
    pub async fn click(&self, css: &str) {
        let start = Instant::now();
        loop {
            let e = self
                .wait_for_css("an element to click", css, Duration::from_secs(30))
                .await;
            match self
                .call("POST", &format!("/element/{e}/click"), None)
                .await
            {
                Ok(_) => return,
                // The page re-rendered (a change-feed update) between finding the element and
                // clicking it: click the element that matches now.
                Err(v)
                    if v["error"] == "stale element reference"
                        && start.elapsed() < Duration::from_secs(30) => {}
                Err(v) => panic!("WebDriver click on {css} failed: {v}"),
            }
        }
    }

    /// Waits for `css` and types `text` into it.
    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self
            .wait_for_css("an element to type into", css, Duration::from_secs(30))
            .await;
        self.must(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// The visible text of the first element matching `css` (waited for).
    pub async fn text(&self, css: &str) -> String {
        let e = self
            .wait_for_css("an element's text", css, Duration::from_secs(30))
            .await;
        self.must("GET", &format!("/element/{e}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// An attribute of the first element matching `css` (waited for).
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        let e = self
            .wait_for_css("an element's attribute", css, Duration::from_secs(30))
            .await;
        self.must("GET", &format!("/element/{e}/attribute/{name}"), None)
            .await
            .as_str()
            .map(str::to_owned)
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page; returns its result.
    pub async fn exec(&self, script: &str, args: Vec<Value>) -> Value {
        self.must(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Runs an asynchronous `script`: it calls `arguments[arguments.length - 1]` with its result.
    pub async fn exec_async(&self, script: &str, args: Vec<Value>) -> Value {
        self.must(
            "POST",
            "/execute/async",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Sets the window's size in CSS pixels (a taller window shows a whole page at once).
    pub async fn resize(&self, width: u32, height: u32) {
        self.must(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    /// Saves a PNG of the window as `NAME.png` in [`artifacts`].
    pub async fn screenshot(&self, name: &str) {
        use base64::Engine;
        let Ok(v) = self.call("GET", "/screenshot", None).await else {
            return;
        };
        let Some(png) = v
            .as_str()
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        else {
            return;
        };
        let dir = artifacts();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        println!("screenshot {}", path.display());
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // End the session (chromedriver then closes Chromium), then the driver itself.
        use std::io::{Read, Write};
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                s,
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                self.session
            );
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
