//! The dashboard in a real browser: headless Chromium (Debian's `chromium`, driven through
//! `chromedriver`) against a running firewatch fed through a real Mosquitto. Logs in, sees a
//! fire alarm arrive within a second, acknowledges, verifies and closes it, checks what a
//! manager may see and do, and that the board recovers from a server restart. Screenshots of
//! the board, the risk map, a building page and the duty page are kept in
//! `target/test-artifacts/` (`FW_TEST_ARTIFACTS`).

use crate::common::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// Three buildings with coordinates, in the control room of `config/duty.toml`.
const REGISTRY: &str = r#"
strict = true

[[building]]
id = "bsy-0012"
name = "滨江大厦12号楼"
address = "滨江路12号"
lat = 30.2084
lon = 120.2101
control_room = "cr-main"
class = "residential"
expected = { water_pressure = 1, fire_lane = 1, transmitter = 1 }

[[building]]
id = "bsy-0013"
name = "滨江大厦13号楼"
lat = 30.2121
lon = 120.2188
control_room = "cr-main"
class = "residential"

[[building]]
id = "bsy-0014"
name = "江南公寓"
lat = 30.2016
lon = 120.2230
control_room = "cr-main"
class = "public_class2"

[[device]]
id = "wp-0012-03"
building = "bsy-0012"
kind = "water_pressure"
floor = "B1"
zone = "泵房"
interval_s = 60

[[device]]
id = "cam-0012-01"
building = "bsy-0012"
kind = "fire_lane"
location = "北侧消防车道"

[[device]]
id = "uitd-0012"
building = "bsy-0012"
kind = "transmitter"
location = "一层消防控制室"

[[device]]
id = "uitd-0013"
building = "bsy-0013"
kind = "transmitter"
location = "一层消防控制室"

[[device]]
id = "uitd-0014"
building = "bsy-0014"
kind = "transmitter"
location = "一层消防控制室"

[[device]]
id = "wp-0014-01"
building = "bsy-0014"
kind = "water_pressure"
location = "屋顶最不利点"
interval_s = 60
"#;

struct Site {
    fw: Firewatch,
    broker: Mosquitto,
    _roster: tempfile::TempDir,
}

/// firewatch on a private broker (so no other test's messages reach it), with the registry
/// above, the shipped duty roster and two accounts: operator `op-zhang` and manager
/// `mgr-zhou` of bsy-0012.
async fn site() -> Site {
    let broker = Mosquitto::start();
    let roster = tempfile::tempdir().unwrap();
    let duty = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/duty.toml");
    let fw = Firewatch::start(Options {
        mqtt_url: Some(broker.url()),
        registry: Some(REGISTRY.into()),
        env: vec![("FIREWATCH__DUTY__FILE".into(), duty.display().to_string())],
        ..Default::default()
    })
    .await;
    for (name, role, building) in [
        ("op-zhang", "operator", None),
        ("mgr-zhou", "manager", Some("bsy-0012")),
        ("adm-wu", "admin", None),
    ] {
        let mut args = vec!["user", "add", name, "--role", role, "--password-stdin"];
        if let Some(b) = building {
            args.extend(["--building", b]);
        }
        let (ok, out, err) = cli(&fw, &args, "correct-horse-battery\n");
        assert!(ok, "user add {name}: {out} {err}");
    }
    Site {
        fw,
        broker,
        _roster: roster,
    }
}

/// Logs in through the form and waits for the board.
async fn log_in(b: &Browser, base: &str, user: &str) {
    b.goto(&format!("{base}/board")).await;
    b.wait_for_css("the login form", "#login input[name=user]", T)
        .await;
    b.type_into("#login input[name=user]", user).await;
    b.type_into("#login input[name=password]", "correct-horse-battery")
        .await;
    b.click("#login button[type=submit]").await;
    b.wait_for_css("the board after logging in", "#board-rows", T)
        .await;
    b.wait_js(
        "the change feed connected",
        "return document.querySelector('#conn').dataset.state === 'connected'",
        T,
    )
    .await;
}

fn fire_event(state: &str) -> String {
    json!({"event": "fire_alarm", "state": state, "zone": "3F",
        "point": {"system_type": 1, "system_addr": 1, "component_type": 40,
                  "component_addr": "0A000300", "description": "3F 东侧走廊 感烟探测器"}})
    .to_string()
}

/// Records, in the page, the wall-clock time each alert's row first appeared on the board.
const WATCH_ROWS: &str = r#"
window.__seen = window.__seen || {};
const mark = () => { for (const r of document.querySelectorAll('#board-rows tr[data-alert]')) {
  if (!(r.dataset.alert in window.__seen)) window.__seen[r.dataset.alert] = Date.now(); } };
mark();
if (!window.__obs) { window.__obs = new MutationObserver(mark);
  window.__obs.observe(document.body, {childList: true, subtree: true}); }
return true;
"#;

#[tokio::test]
async fn an_operator_sees_a_fire_alarm_within_a_second_and_closes_it_from_the_board() {
    let site = site().await;
    let base = site.fw.base.clone();
    let mut p = Publisher::connect(&site.broker.url()).await;
    // Some history for the building page's chart, and a second building with a hazard.
    for (i, v) in [0.32, 0.31, 0.33, 0.30].iter().enumerate() {
        let ts = wall_ms() - (4 - i as i64) * 60_000;
        p.publish(
            "fw/v1/bsy-0012/water_pressure/wp-0012-03/telemetry",
            json!({"ts": ts, "values": {"pressure_mpa": v}}).to_string(),
        )
        .await;
    }
    p.publish(
        "fw/v1/bsy-0013/transmitter/uitd-0013/event",
        json!({"event": "fault", "state": "start", "zone": "2F-loop-1"}).to_string(),
    )
    .await;

    // Security headers on the page and on the API.
    for path in ["/", "/api/v1/me"] {
        let r = reqwest::get(format!("{base}{path}")).await.unwrap();
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self';"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
    }

    let b = Browser::start().await;
    log_in(&b, &base, "op-zhang").await;
    // The policy holds in the browser: an injected inline script does not run (the pages
    // below render with it, their scripts and styles all of their own).
    let blocked = b
        .exec(
            "const s = document.createElement('script'); s.textContent = 'window.__inline = 1'; \
             document.body.appendChild(s); return window.__inline === undefined",
            vec![],
        )
        .await;
    assert_eq!(blocked, true, "an inline script ran");
    b.wait_for_css(
        "the transmitter fault on the board",
        "#board-rows tr[data-alert]",
        T,
    )
    .await;
    b.exec(WATCH_ROWS, vec![]).await;

    // A fire alarm: on the board within 1 s of its MQTT message, flashing, with the alarm on.
    let sent_at = wall_ms();
    p.publish(
        "fw/v1/bsy-0012/transmitter/uitd-0012/event",
        fire_event("start"),
    )
    .await;
    let row = "#board-rows tr[data-severity=critical]";
    b.wait_for_css("the fire alarm on the board", row, T).await;
    let id = b.attr(row, "data-alert").await.unwrap();
    let seen = b
        .exec("return window.__seen[arguments[0]]", vec![json!(id)])
        .await
        .as_i64()
        .unwrap();
    let latency = seen - sent_at;
    println!("fire alarm {id} on the board {latency} ms after its MQTT message");
    assert!(
        latency <= 1000,
        "the fire alarm took {latency} ms to reach the board"
    );
    assert!(b.attr(row, "class").await.unwrap().contains("flash"));
    assert_eq!(
        b.exec("return document.body.dataset.alarm", vec![]).await,
        json!("on")
    );
    // Sorted by severity: the critical alarm comes before the older minor fault.
    let order = b
        .exec(
            "return [...document.querySelectorAll('#board-rows tr[data-alert]')].map(r => r.dataset.severity)",
            vec![],
        )
        .await;
    assert_eq!(order[0], json!("critical"), "{order}");
    b.screenshot("board").await;

    // Acknowledge: one click; the flashing and the alarm stop.
    let this = format!("#board-rows tr[data-alert='{id}']");
    b.click(&format!("{this} button[data-act=ack]")).await;
    b.wait_for_css(
        "the alarm acknowledged",
        &format!("{this}[data-status=acknowledged]"),
        T,
    )
    .await;
    assert!(!b.attr(&this, "class").await.unwrap().contains("flash"));
    b.wait_js(
        "the alarm sound off",
        "return document.body.dataset.alarm === 'off'",
        T,
    )
    .await;

    // A note, then the on-site check, then close with a classification: it leaves the board.
    b.click(&format!("{this} button[data-act=note]")).await;
    b.type_into("#dialog textarea[name=note]", "已派保安到3楼查看")
        .await;
    b.click("#dialog-ok").await;
    b.wait_gone("the note dialog closed", "#dialog[open]", T)
        .await;
    b.click(&format!("{this} button[data-act=verify]")).await;
    b.exec(
        "document.querySelector('#dialog select[name=result]').value = 'false_alarm'; return true",
        vec![],
    )
    .await;
    b.type_into("#dialog textarea[name=note]", "烟感误报，厨房油烟")
        .await;
    b.click("#dialog-ok").await;
    b.wait_gone("the verify dialog closed", "#dialog[open]", T)
        .await;
    b.wait_gone(
        "the verify button gone once verified",
        &format!("{this} button[data-act=verify]"),
        T,
    )
    .await;
    b.click(&format!("{this} button[data-act=close]")).await;
    b.exec(
        "document.querySelector('#dialog select[name=classification]').value = 'false_alarm'; return true",
        vec![],
    )
    .await;
    // A critical alert needs a note to close: without one the dialog stays open.
    b.click("#dialog-ok").await;
    assert!(b.find("#dialog[open]").await.is_some());
    b.type_into("#dialog textarea[name=note]", "已复位，通知维保更换探测器")
        .await;
    b.click("#dialog-ok").await;
    b.wait_gone("the closed alarm off the board", &this, T)
        .await;

    // Its whole history on one page, with the people who acted.
    let a: Value = site.fw.get(&format!("/api/v1/alerts/{id}")).await;
    assert_eq!(a["status"], "closed");
    assert_eq!(a["classification"], "false_alarm");
    assert_eq!(a["acknowledged_by"], "op-zhang");
    assert_eq!(a["verified_by"], "op-zhang");
    b.goto(&format!("{base}/alerts/{id}")).await;
    b.wait_for_css("the alert page", "#alert-status[data-status=closed]", T)
        .await;
    // (The notification is the e-mail to the outbox folder of the embedded default.)
    for what in [
        "fired",
        "notified",
        "acknowledged",
        "note",
        "verified",
        "closed",
    ] {
        b.wait_for_css(
            &format!("the {what} entry"),
            &format!("tr[data-what={what}]"),
            T,
        )
        .await;
    }
    assert!(b.text("main").await.contains("op-zhang"));
    b.screenshot("alert").await;

    // The risk map: every building at its coordinates, bsy-0013 coloured by its open fault
    // (minor), bsy-0012 green again now that its alarm is closed.
    b.click("nav a[href='/map']").await;
    b.wait_for_css(
        "bsy-0012 on the map without open alerts",
        "#risk-map a[data-building=bsy-0012][data-worst=none]",
        T,
    )
    .await;
    b.wait_for_css(
        "bsy-0013 on the map",
        "#risk-map a[data-building=bsy-0013][data-worst=minor]",
        T,
    )
    .await;
    b.wait_for_css(
        "bsy-0014 on the map",
        "#risk-map a[data-building=bsy-0014]",
        T,
    )
    .await;
    b.screenshot("map").await;
    b.click("#risk-map a[data-building=bsy-0012]").await;

    // The building page: devices with their values, a chart of the pressure, coverage.
    b.wait_for_css(
        "the pressure monitor on the building page",
        "tr[data-device=wp-0012-03][data-state=online]",
        T,
    )
    .await;
    assert!(b
        .text("tr[data-device=wp-0012-03]")
        .await
        .contains("pressure_mpa"));
    b.click("tr[data-device=wp-0012-03] button[data-act=chart]")
        .await;
    let points = b
        .wait_js(
            "the pressure chart drawn",
            "const c = document.querySelector('#chart'); return c && Number(c.dataset.points) >= 4 && c.dataset.points",
            T,
        )
        .await;
    println!("chart with {points} points");
    b.wait_for_css("the coverage table", "#coverage", T).await;
    // The last hour, on a window tall enough for the whole page.
    b.exec(
        "const r = document.querySelector('#chart-range'); r.value = '1h'; r.dispatchEvent(new Event('change')); return true",
        vec![],
    )
    .await;
    b.wait_for_css(
        "the chart of the last hour",
        "#chart[data-range='1h'][data-points='4']",
        T,
    )
    .await;
    b.resize(1400, 1500).await;
    b.screenshot("building").await;
    b.resize(1400, 900).await;

    // The duty page: who is on duty in the control room, the handover summary.
    b.click("nav a[href='/duty']").await;
    b.wait_for_css(
        "the control room on the duty page",
        "#duty-rooms [data-room=cr-main]",
        T,
    )
    .await;
    b.wait_for_css("the handover summary", "#handover", T).await;
    b.screenshot("duty").await;

    // Every action was taken as the logged-in user and is in the audit trail.
    let audit: Value = site.fw.get("/api/v1/audit?actor=op-zhang").await;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "POST /api/v1/login",
        "POST /api/v1/alerts/{id}/ack",
        "POST /api/v1/alerts/{id}/notes",
        "POST /api/v1/alerts/{id}/verify",
        "POST /api/v1/alerts/{id}/close",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
}

#[tokio::test]
async fn a_manager_sees_only_their_building_and_cannot_acknowledge() {
    let site = site().await;
    let base = site.fw.base.clone();
    let mut p = Publisher::connect(&site.broker.url()).await;
    p.publish(
        "fw/v1/bsy-0012/transmitter/uitd-0012/event",
        fire_event("start"),
    )
    .await;
    p.publish(
        "fw/v1/bsy-0013/transmitter/uitd-0013/event",
        fire_event("start"),
    )
    .await;
    let theirs = site
        .fw
        .wait_alert(
            "bsy-0012",
            "transmitter.fire_alarm",
            "uitd-0012",
            |_| true,
            T,
        )
        .await;
    let other = site
        .fw
        .wait_alert(
            "bsy-0013",
            "transmitter.fire_alarm",
            "uitd-0013",
            |_| true,
            T,
        )
        .await;

    let b = Browser::start().await;
    log_in(&b, &base, "mgr-zhou").await;
    let row = format!(
        "#board-rows tr[data-alert='{}']",
        theirs["id"].as_str().unwrap()
    );
    b.wait_for_css("their building's alarm", &row, T).await;
    assert!(
        b.find(&format!(
            "#board-rows tr[data-alert='{}']",
            other["id"].as_str().unwrap()
        ))
        .await
        .is_none(),
        "a manager sees another building's alert"
    );
    assert!(b
        .find(&format!("{row} button[data-act=ack]"))
        .await
        .is_none());
    // On a phone the board is a list of cards, one per alert.
    b.resize(390, 844).await;
    b.wait_js(
        "the board as cards",
        "return getComputedStyle(document.querySelector('#board-rows tr[data-alert]')).display === 'block'",
        T,
    )
    .await;
    b.screenshot("board-phone").await;
    b.resize(1400, 900).await;
    assert!(b.find("nav a[href='/duty']:not([hidden])").await.is_none());

    // Forced from the page with the session's CSRF token, the server refuses it too.
    let status = b
        .exec_async(
            "const done = arguments[arguments.length - 1];
             fetch('/api/v1/me').then(r => r.json()).then(me =>
               fetch('/api/v1/alerts/' + arguments[0] + '/ack', {method: 'POST',
                 headers: {'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf}, body: '{}'}))
             .then(r => done(r.status), e => done(String(e)));",
            vec![theirs["id"].clone()],
        )
        .await;
    assert_eq!(status, json!(403));
    let a: Value = site
        .fw
        .get(&format!(
            "/api/v1/alerts/{}",
            theirs["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(a["status"], "open");

    // The map shows their building only.
    b.click("nav a[href='/map']").await;
    b.wait_for_css(
        "their building on the map",
        "#risk-map a[data-building=bsy-0012]",
        T,
    )
    .await;
    assert!(b
        .find("#risk-map a[data-building=bsy-0013]")
        .await
        .is_none());
    // Another building's page is not found.
    b.goto(&format!("{base}/buildings/bsy-0013")).await;
    b.wait_for_css("another building not found", "#view-error", T)
        .await;
}

#[tokio::test]
async fn the_board_says_it_is_not_connected_and_recovers_after_a_server_restart() {
    let mut site = site().await;
    let base = site.fw.base.clone();
    let mut p = Publisher::connect(&site.broker.url()).await;
    p.publish(
        "fw/v1/bsy-0012/transmitter/uitd-0012/event",
        fire_event("start"),
    )
    .await;
    let first = site
        .fw
        .wait_alert(
            "bsy-0012",
            "transmitter.fire_alarm",
            "uitd-0012",
            |_| true,
            T,
        )
        .await;
    let first_id = first["id"].as_str().unwrap().to_owned();

    let b = Browser::start().await;
    log_in(&b, &base, "op-zhang").await;
    b.wait_for_css(
        "the first alarm",
        &format!("#board-rows tr[data-alert='{first_id}']"),
        T,
    )
    .await;

    // The server goes away: the page says so plainly.
    site.fw.stop();
    b.wait_js(
        "the board saying it is not connected",
        "return document.querySelector('#conn').dataset.state === 'disconnected' && !document.querySelector('#offline').hidden",
        T,
    )
    .await;
    b.screenshot("board-disconnected").await;
    // Meanwhile a second building's fire alarm waits in the broker for firewatch.
    p.publish(
        "fw/v1/bsy-0013/transmitter/uitd-0013/event",
        fire_event("start"),
    )
    .await;

    site.fw.restart().await;
    let second = site
        .fw
        .wait_alert(
            "bsy-0013",
            "transmitter.fire_alarm",
            "uitd-0013",
            |_| true,
            T,
        )
        .await;
    // And someone acknowledges the first one elsewhere.
    let (status, acked) = site
        .fw
        .post(
            &format!("/api/v1/alerts/{first_id}/ack"),
            json!({"by": "值班长 李"}),
        )
        .await;
    assert_eq!((status, &acked["status"]), (200, &json!("acknowledged")));

    // The board reconnects by itself and shows what happened meanwhile.
    b.wait_js(
        "the board connected again",
        "return document.querySelector('#conn').dataset.state === 'connected' && document.querySelector('#offline').hidden",
        T,
    )
    .await;
    b.wait_for_css(
        "the alarm that came while the board was away",
        &format!(
            "#board-rows tr[data-alert='{}'][data-status=open]",
            second["id"].as_str().unwrap()
        ),
        T,
    )
    .await;
    b.wait_for_css(
        "the first alarm acknowledged meanwhile",
        &format!("#board-rows tr[data-alert='{first_id}'][data-status=acknowledged]"),
        T,
    )
    .await;
}

#[tokio::test]
async fn an_admin_sets_a_maintenance_silence_and_the_board_shows_the_alarm_without_sounding_it() {
    let site = site().await;
    let base = site.fw.base.clone();
    let b = Browser::start().await;
    log_in(&b, &base, "adm-wu").await;
    b.click("nav a[href='/admin']").await;
    b.click("button[data-act=new-silence]").await;
    b.type_into("#dialog input[name=building]", "bsy-0014")
        .await;
    b.type_into("#dialog textarea[name=reason]", "消防水泵房检修")
        .await;
    b.click("#dialog-ok").await;
    b.wait_gone("the silence dialog closed", "#dialog[open]", T)
        .await;
    let row = "tr[data-silence][data-state=active]";
    b.wait_for_css("the new silence on the admin page", row, T)
        .await;
    let sid = b.attr(row, "data-silence").await.unwrap();
    assert!(b.text(row).await.contains("building=bsy-0014"));
    b.screenshot("admin").await;

    // A fire alarm in that building: on the board, marked silenced, not flashing, no alarm.
    let mut p = Publisher::connect(&site.broker.url()).await;
    p.publish(
        "fw/v1/bsy-0014/transmitter/uitd-0014/event",
        fire_event("start"),
    )
    .await;
    let a = site
        .fw
        .wait_alert(
            "bsy-0014",
            "transmitter.fire_alarm",
            "uitd-0014",
            |_| true,
            T,
        )
        .await;
    assert_eq!(a["silenced"]["silence"], json!(sid), "{a}");
    b.click("nav a[href='/board']").await;
    let this = format!("#board-rows tr[data-alert='{}']", a["id"].as_str().unwrap());
    b.wait_for_css(
        "the silenced alarm on the board",
        &format!("{this} [data-silenced='{sid}']"),
        T,
    )
    .await;
    assert!(!b.attr(&this, "class").await.unwrap().contains("flash"));
    assert_eq!(
        b.exec("return document.body.dataset.alarm || 'off'", vec![])
            .await,
        json!("off")
    );

    // Ended early from the admin page; the audit trail has both writes by the admin.
    b.click("nav a[href='/admin']").await;
    b.click(&format!("tr[data-silence='{sid}'] button[data-act=expire]"))
        .await;
    b.wait_gone(
        "the ended silence off the current list",
        &format!("tr[data-silence='{sid}']"),
        T,
    )
    .await;
    let audit: Value = site.fw.get("/api/v1/audit?actor=adm-wu").await;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for want in ["POST /api/v1/silences", "POST /api/v1/silences/{id}/expire"] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
}
