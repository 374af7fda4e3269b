//! Access control against a running firewatch fed through the real broker: the first admin,
//! logins with sessions and CSRF, roles, the `by` of an action, API tokens made on the command
//! line, the login rate limit and the open routes.

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// A dashboard login: the session cookie (as a browser would send it back) and the CSRF token.
#[derive(Debug, Clone)]
struct Session {
    cookie: String,
    csrf: String,
    body: Value,
    set_cookie: String,
}

impl Session {
    fn get(&self, url: String) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .get(url)
            .header("cookie", &self.cookie)
    }
    fn post(&self, url: String) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .post(url)
            .header("cookie", &self.cookie)
    }
}

async fn login(base: &str, user: &str, password: &str) -> Result<Session, (u16, Value)> {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/login"))
        .json(&json!({"user": user, "password": password}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let set_cookie = r
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = r.json().await.unwrap_or(Value::Null);
    match (status, set_cookie) {
        (200, Some(set_cookie)) => Ok(Session {
            cookie: set_cookie.split(';').next().unwrap().to_owned(),
            csrf: body["csrf"].as_str().unwrap().to_owned(),
            body,
            set_cookie,
        }),
        _ => Err((status, body)),
    }
}

async fn status_of(r: reqwest::RequestBuilder) -> (u16, Value) {
    let r = r.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_needs_a_login_or_a_token_and_the_role_decides() {
    let b = unique("bauth");
    let mut fw = Firewatch::start(Options::default()).await;
    let base = fw.base.clone();
    let anon = reqwest::Client::new();

    // Open: health and metrics. Everything under /api/v1 needs a login or a token.
    assert_eq!(status_of(anon.get(format!("{base}/healthz"))).await.0, 200);
    assert_eq!(status_of(anon.get(format!("{base}/metrics"))).await.0, 200);
    let (s, e) = status_of(anon.get(format!("{base}/api/v1/alerts"))).await;
    assert_eq!(s, 401, "{e}");
    assert!(e["error"].as_str().unwrap().contains("Bearer"), "{e}");
    let (s, _) = status_of(
        anon.get(format!("{base}/api/v1/alerts"))
            .bearer_auth("fwt_not-a-token"),
    )
    .await;
    assert_eq!(s, 401);

    // The first start made `admin`, with its password in a file only this user may read; the
    // log says where, never the password.
    let file = fw.dir.join("initial-admin-password");
    let admin_pw = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }
    let log = fw.log();
    assert!(log.contains("initial-admin-password"), "{log}");
    assert!(!log.contains(&admin_pw), "the password is in the log");

    // A browser logs in: the session is an HttpOnly, SameSite=Strict cookie.
    let admin = login(&base, "admin", &admin_pw).await.unwrap();
    let cookie = &admin.set_cookie;
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert_eq!(admin.body["role"], "admin");
    let csrf = admin.csrf.clone();
    let (s, who) = status_of(admin.get(format!("{base}/api/v1/me"))).await;
    assert_eq!(s, 200, "{who}");
    assert_eq!(
        (who["user"].as_str(), who["via"].as_str()),
        (Some("admin"), Some("session"))
    );
    // What the dashboard needs: the session's CSRF token, the control room's zone, no tiles.
    assert_eq!(who["csrf"].as_str(), Some(csrf.as_str()));
    assert_eq!(who["tz"], "Asia/Shanghai");
    assert_eq!(who["map_tiles"], Value::Null);

    // An operator and a manager, made on the command line while the service runs.
    let (ok, out, err) = cli(
        &fw,
        &[
            "user",
            "add",
            "li",
            "--role",
            "operator",
            "--display",
            "李伟",
            "--password-stdin",
        ],
        "operator-password-1\n",
    );
    assert!(ok, "{out}{err}");
    assert!(!out.contains("operator-password-1"));
    let (ok, out, err) = cli(
        &fw,
        &["user", "add", "wang", "--role", "manager", "--building", &b],
        "",
    );
    assert!(ok, "{out}{err}");
    let wang_pw = out
        .lines()
        .find_map(|l| l.strip_prefix("Password (shown once): "))
        .unwrap()
        .to_owned();
    let (ok, _, err) = cli(&fw, &["user", "add", "x", "--role", "manager"], "");
    assert!(!ok && err.contains("--building"), "{err}");

    // A fire alarm to act on, and, published before it, one in a building that is not the
    // manager's (so its changes come first in the feed).
    let other = format!("{b}-other");
    let mut p = Publisher::connect(&env("FW_TEST_MQTT_URL")).await;
    for building in [&other, &b] {
        p.publish(
            &format!("fw/v1/{building}/fire_lane/cam-{building}/event"),
            json!({"event": "flame", "state": "start", "zone": "garage"}).to_string(),
        )
        .await;
    }
    let a = fw
        .wait_alert(&b, "fire_lane.fire", &format!("cam-{b}"), |_| true, T)
        .await;
    let id = a["id"].as_str().unwrap().to_owned();
    let a2 = fw
        .wait_alert(
            &other,
            "fire_lane.fire",
            &format!("cam-{other}"),
            |_| true,
            T,
        )
        .await;
    let other_id = a2["id"].as_str().unwrap().to_owned();
    let ack = format!("{base}/api/v1/alerts/{id}/ack");

    // The manager sees their building's alerts, devices and building, nothing of another
    // building through any of those routes, and may not handle alerts.
    let manager = login(&base, "wang", &wang_pw).await.unwrap();
    let (s, list) = status_of(manager.get(format!("{base}/api/v1/alerts"))).await;
    assert_eq!(s, 200, "{list}");
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str()], "only the alert of their building");
    let (s, _) = status_of(manager.get(format!("{base}/api/v1/alerts?building={other}"))).await;
    assert_eq!(s, 404);
    let (s, v) = status_of(manager.get(format!("{base}/api/v1/alerts/{id}"))).await;
    assert_eq!((s, v["id"].as_str()), (200, Some(id.as_str())));
    let (s, _) = status_of(manager.get(format!("{base}/api/v1/alerts/{other_id}"))).await;
    assert_eq!(s, 404, "another building's alert does not exist for them");
    let (s, devices) = status_of(manager.get(format!("{base}/api/v1/devices"))).await;
    assert_eq!(s, 200);
    let buildings: Vec<&str> = devices
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["building"].as_str().unwrap())
        .collect();
    assert_eq!(buildings, [b.as_str()], "{devices}");
    let (s, _) = status_of(manager.get(format!("{base}/api/v1/devices/cam-{other}"))).await;
    assert_eq!(s, 404);
    let (s, _) =
        status_of(manager.get(format!("{base}/api/v1/devices/cam-{other}/readings"))).await;
    assert_eq!(s, 404);
    let (s, _) = status_of(manager.get(format!("{base}/api/v1/devices/cam-{b}/readings"))).await;
    assert_eq!(s, 200);
    let (s, _) = status_of(manager.get(format!("{base}/api/v1/buildings/{other}"))).await;
    assert_eq!(s, 404);
    let (s, list) = status_of(manager.get(format!("{base}/api/v1/buildings"))).await;
    assert_eq!(s, 200);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|x| x["id"] == b.as_str()),
        "{list}"
    );
    // The shield list and the false-alarm report: of the manager's building, not another's.
    for path in ["/api/v1/shielded", "/api/v1/reports/false_alarms"] {
        let (s, v) = status_of(manager.get(format!("{base}{path}"))).await;
        assert_eq!(s, 200, "{path}: {v}");
        assert_eq!(v["building"], json!(b), "{path}: {v}");
        let (s, _) = status_of(manager.get(format!("{base}{path}?building={other}"))).await;
        assert_eq!(s, 404, "{path}");
    }
    // The change feed from the start: the manager's building only. The other building's
    // changes were committed first, so had they passed they would precede this one's alert.
    let (s, _) = status_of(manager.get(format!("{base}/api/v1/events?building={other}"))).await;
    assert_eq!(s, 404);
    let mut feed = manager
        .get(format!("{base}/api/v1/events?since=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), 200);
    let mut seen = String::new();
    let mine = format!("\"cam-{b}\"");
    let deadline = std::time::Instant::now() + T;
    while !seen.contains(&mine) {
        assert!(
            std::time::Instant::now() < deadline,
            "no change of {b} in {seen}"
        );
        let chunk = tokio::time::timeout(T, feed.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!seen.contains(&format!("\"cam-{other}\"")), "{seen}");
    drop(feed);
    // Routes that do not narrow their answers refuse managers: the rejected messages, the
    // notifications.
    for path in ["/api/v1/rejected", "/api/v1/notifications"] {
        let (s, _) = status_of(manager.get(format!("{base}{path}"))).await;
        assert_eq!(s, 403, "{path}");
    }
    let (s, _) = status_of(
        manager
            .post(ack.clone())
            .header("x-csrf-token", &manager.csrf)
            .json(&json!({})),
    )
    .await;
    assert_eq!(s, 403, "a manager does not acknowledge");
    // Work orders: the manager sees and rectifies their building's, not another's.
    let mut orders = Vec::new();
    for building in [&b, &other] {
        let (s, v) = fw
            .post(
                "/api/v1/workorders",
                json!({"building": building, "description": "B1 安全出口上锁", "by": "值班员"}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        orders.push(v["id"].as_str().unwrap().to_owned());
    }
    let (s, list) = status_of(manager.get(format!("{base}/api/v1/workorders"))).await;
    assert_eq!(s, 200, "{list}");
    let listed: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [orders[0].as_str()]);
    let (s, _) = status_of(manager.get(format!("{base}/api/v1/workorders/{}", orders[1]))).await;
    assert_eq!(s, 404);
    let rectify = json!({"note": "已开锁", "by": "not me"});
    let (s, _) = status_of(
        manager
            .post(format!("{base}/api/v1/workorders/{}/rectify", orders[1]))
            .header("x-csrf-token", &manager.csrf)
            .json(&rectify),
    )
    .await;
    assert_eq!(s, 404, "another building's work order");
    let (s, v) = status_of(
        manager
            .post(format!("{base}/api/v1/workorders/{}/rectify", orders[0]))
            .header("x-csrf-token", &manager.csrf)
            .json(&rectify),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "rectified");
    let full = fw.get(&format!("/api/v1/workorders/{}", orders[0])).await;
    let step = full["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["note"] == "已开锁")
        .cloned()
        .unwrap();
    assert_eq!(step["by"], "wang", "{full}");
    let (s, me) = status_of(manager.get(format!("{base}/api/v1/me"))).await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["buildings"], json!([b]));

    // The operator acknowledges: without the CSRF header the write is refused; with it, the
    // alert is acknowledged by the logged-in user, whatever the body says.
    let op = login(&base, "li", "operator-password-1").await.unwrap();
    let op_csrf = op.csrf.clone();
    let (s, e) = status_of(op.post(ack.clone()).json(&json!({"by": "someone else"}))).await;
    assert_eq!(s, 403, "{e}");
    assert!(e["error"].as_str().unwrap().contains("x-csrf-token"), "{e}");
    let (s, _) = status_of(
        op.post(ack.clone())
            .header("x-csrf-token", &csrf)
            .json(&json!({})),
    )
    .await;
    assert_eq!(s, 403, "another session's CSRF token does not do");
    let (s, v) = status_of(
        op.post(ack.clone())
            .header("x-csrf-token", &op_csrf)
            .json(&json!({"by": "someone else", "note": "on my way"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["acknowledged_by"], "li");

    // The operator may not reload the registry (admin only); the admin may.
    let reload = format!("{base}/api/v1/registry/reload");
    let (s, _) = status_of(op.post(reload.clone()).header("x-csrf-token", &op_csrf)).await;
    assert_eq!(s, 403);
    let (s, v) = status_of(admin.post(reload).header("x-csrf-token", &csrf)).await;
    assert_eq!(s, 200, "{v}");
    // Silences are set by admins: an operator may read them, not set them; the admin is
    // their `by`; a manager may not even list them (they are not narrowed to buildings).
    let silence =
        json!({"matchers": {"building": b}, "ends_at": "2099-01-01T00:00:00Z", "reason": "维保"});
    let silences = format!("{base}/api/v1/silences");
    let (s, _) = status_of(
        op.post(silences.clone())
            .header("x-csrf-token", &op_csrf)
            .json(&silence),
    )
    .await;
    assert_eq!(s, 403, "an operator does not set silences");
    let (s, v) = status_of(
        admin
            .post(silences.clone())
            .header("x-csrf-token", &csrf)
            .json(&silence),
    )
    .await;
    assert_eq!((s, v["by"].as_str()), (201, Some("admin")), "{v}");
    let (s, _) = status_of(op.get(silences.clone())).await;
    assert_eq!(s, 200);
    let (s, _) = status_of(manager.get(silences)).await;
    assert_eq!(s, 403, "a manager does not list silences");

    // An API token acts as its user, until it is revoked.
    let (ok, out, err) = cli(&fw, &["token", "add", "li", "--label", "city-platform"], "");
    assert!(ok, "{out}{err}");
    let tok = out
        .lines()
        .find(|l| l.starts_with("fwt_"))
        .unwrap()
        .to_owned();
    let (s, me) = status_of(anon.get(format!("{base}/api/v1/me")).bearer_auth(&tok)).await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(
        (me["user"].as_str(), me["via"].as_str()),
        (Some("li"), Some("token"))
    );
    let (s, v) = status_of(
        anon.post(format!("{base}/api/v1/alerts/{id}/notes"))
            .bearer_auth(&tok)
            .json(&json!({"note": "camera 3 checked", "by": "not me"})),
    )
    .await;
    assert_eq!(s, 200, "a token needs no CSRF header: {v}");
    let full = fw.get(&format!("/api/v1/alerts/{id}")).await;
    let note = full["notes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["note"] == "camera 3 checked")
        .cloned()
        .unwrap();
    assert_eq!(note["by"], "li", "{full}");
    let (ok, out, _) = cli(&fw, &["token", "list"], "");
    assert!(
        ok && out.contains("city-platform") && !out.contains(&tok),
        "{out}"
    );
    let token_id = out
        .lines()
        .nth(1)
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_owned();
    assert!(cli(&fw, &["token", "revoke", &token_id], "").0);
    let (s, _) = status_of(anon.get(format!("{base}/api/v1/me")).bearer_auth(&tok)).await;
    assert_eq!(s, 401, "revoked");

    // A disabled user's session ends at once; logging out ends one's own.
    assert!(cli(&fw, &["user", "disable", "wang"], "").0);
    let (s, _) = status_of(manager.get(format!("{base}/api/v1/me"))).await;
    assert_eq!(s, 401);
    let (s, _) = status_of(op.post(format!("{base}/api/v1/logout"))).await;
    assert_eq!(s, 403, "a logout is a write: it needs the CSRF token too");
    let (s, _) = status_of(
        op.post(format!("{base}/api/v1/logout"))
            .header("x-csrf-token", &op_csrf),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = status_of(op.get(format!("{base}/api/v1/me"))).await;
    assert_eq!(s, 401, "the old cookie no longer works");

    // A new admin password removes the file of the first one.
    let (ok, out, err) = cli(
        &fw,
        &["user", "passwd", "admin", "--password-stdin"],
        "admin-password-2\n",
    );
    assert!(ok, "{out}{err}");
    assert!(!file.exists());
    assert_eq!(login(&base, "admin", &admin_pw).await.unwrap_err().0, 401);
    assert!(login(&base, "admin", "admin-password-2").await.is_ok());

    // Refusals are counted by reason.
    for (reason, at_least) in [
        ("unauthenticated", 3.0),
        ("csrf", 3.0),
        ("role", 1.0),
        ("scope", 2.0),
    ] {
        let n = fw
            .metric(&format!(
                "firewatch_auth_refused_total{{reason=\"{reason}\"}}"
            ))
            .await;
        assert!(n >= at_least, "{reason}: {n}");
    }
    let stopped = fw.stop();
    assert!(stopped.success(), "{}", fw.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_passwords_hold_the_login_back() {
    let mut fw = Firewatch::start(Options::default()).await;
    let base = fw.base.clone();
    let (ok, out, err) = cli(
        &fw,
        &[
            "user",
            "add",
            "zhao",
            "--role",
            "operator",
            "--password-stdin",
        ],
        "right-password-1\n",
    );
    assert!(ok, "{out}{err}");
    for i in 0..5 {
        let (s, e) = login(&base, "zhao", "wrong-password").await.unwrap_err();
        assert_eq!(s, 401, "attempt {i}: {e}");
        assert_eq!(e["error"], "wrong user name or password");
    }
    // An unknown name gets the same answer as a wrong password; other names from the same
    // address are not held back by zhao's failures (a control room shares one address).
    let (s, e) = login(&base, "nobody-here", "whatever-password")
        .await
        .unwrap_err();
    assert_eq!(s, 401, "{e}");
    assert_eq!(e["error"], "wrong user name or password");
    // Bad input is a clear 400, not a failed login.
    for body in [
        "not json".to_owned(),
        json!({"user": "zhao"}).to_string(),
        json!({"user": "z".repeat(65), "password": "whatever-password"}).to_string(),
    ] {
        let r = reqwest::Client::new()
            .post(format!("{base}/api/v1/login"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let e: Value = r.json().await.unwrap();
        assert!(e["error"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
    }
    // zhao's right password is held back, with a Retry-After.
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/login"))
        .json(&json!({"user": "zhao", "password": "right-password-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry), "{retry}");
    assert_eq!(
        fw.metric("firewatch_auth_refused_total{reason=\"bad_login\"}")
            .await,
        6.0
    );
    assert_eq!(
        fw.metric("firewatch_auth_refused_total{reason=\"rate_limited\"}")
            .await,
        1.0
    );
    let stopped = fw.stop();
    assert!(stopped.success(), "{}", fw.log());
}
