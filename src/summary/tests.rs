use super::*;
use crate::clock::{Clock, ManualClock};
use crate::model::alert::{Change, Transition};
use crate::model::Kind;
use crate::rules::engine::DeviceRecord;
use std::collections::HashSet;

fn shanghai() -> TimeZone {
    crate::notify::render::time_zone("Asia/Shanghai").unwrap()
}

/// Epoch ms of a local time in Shanghai.
fn local(s: &str) -> Millis {
    let dt: jiff::civil::DateTime = s.parse().unwrap();
    dt.to_zoned_datetime(shanghai())
        .unwrap()
        .timestamp()
        .as_millisecond()
}

const MIN: Millis = 60_000;

/// The pipeline's use of [`Schedule`], with a set of made (building, day) pairs standing for
/// the store: what a tick at the clock's time makes.
fn tick(
    s: &mut Schedule,
    made: &mut HashSet<(String, String)>,
    b: &str,
    now: Millis,
) -> Vec<String> {
    let tz = shanghai();
    let day = s
        .due(b, &tz, 8 * 60, now, |d| {
            Ok::<_, ()>(made.contains(&(b.to_owned(), d.to_owned())))
        })
        .unwrap();
    if let Some(d) = &day {
        made.insert((b.to_owned(), d.clone()));
    }
    day.into_iter().collect()
}

#[test]
fn the_summary_is_due_at_the_local_time_on_its_own_day() {
    let tz = shanghai();
    let at = 8 * 60;
    // 07:59:59 local: not yet; 08:00 to 23:59: today; after midnight: nothing until 08:00.
    assert_eq!(due_day(&tz, at, local("2026-12-01T07:59:59")), None);
    let d = due_day(&tz, at, local("2026-12-01T08:00:00")).unwrap();
    assert_eq!(d.to_string(), "2026-12-01");
    let d = due_day(&tz, at, local("2026-12-01T23:59:59")).unwrap();
    assert_eq!(d.to_string(), "2026-12-01");
    assert_eq!(due_day(&tz, at, local("2026-12-02T00:00:00")), None);
    // 08:00 in Shanghai is 00:00 UTC.
    assert_eq!(local("2026-12-01T08:00:00") % 86_400_000, 0);
    assert_eq!(
        next_due(&tz, at, local("2026-12-01T07:00:00")),
        local("2026-12-01T08:00:00")
    );
    assert_eq!(
        next_due(&tz, at, local("2026-12-01T08:00:00")),
        local("2026-12-02T08:00:00")
    );
    assert_eq!(
        next_due(&tz, at, local("2026-12-01T23:30:00")),
        local("2026-12-02T08:00:00")
    );
    // Another zone, another instant: 08:00 in Berlin (winter) is 07:00 UTC.
    let berlin = crate::notify::render::time_zone("Europe/Berlin").unwrap();
    let eight = jiff::civil::date(2026, 12, 1)
        .at(8, 0, 0, 0)
        .to_zoned_datetime(berlin.clone())
        .unwrap()
        .timestamp()
        .as_millisecond();
    assert_eq!(eight % 86_400_000, 7 * 3_600_000);
    assert_eq!(due_day(&berlin, at, eight - 1), None);
    assert!(due_day(&berlin, at, eight).is_some());
}

#[test]
fn a_manual_clock_across_midnight_makes_one_summary_a_day() {
    let clock = ManualClock::new(local("2026-12-01T07:00:00"));
    let mut s = Schedule::default();
    let mut made = HashSet::new();
    let mut all = Vec::new();
    // Every minute for two days and a bit.
    while clock.now_ms() < local("2026-12-03T09:00:00") {
        all.extend(tick(&mut s, &mut made, "b1", clock.now_ms()));
        clock.advance(MIN);
    }
    assert_eq!(all, ["2026-12-01", "2026-12-02", "2026-12-03"]);
    // The first was made at 08:00 sharp, not a minute later.
    let mut s = Schedule::default();
    let mut made = HashSet::new();
    assert!(tick(&mut s, &mut made, "b1", local("2026-12-01T07:59:00")).is_empty());
    assert_eq!(
        tick(&mut s, &mut made, "b1", local("2026-12-01T08:00:00")),
        ["2026-12-01"]
    );
}

#[test]
fn a_restart_makes_the_days_summary_once_and_a_missed_day_never() {
    let mut made = HashSet::new();
    let mut s = Schedule::default();
    assert_eq!(
        tick(&mut s, &mut made, "b1", local("2026-12-01T08:00:00")),
        ["2026-12-01"]
    );
    // A restart at 09:00: a new schedule, the same store: nothing again today.
    let mut s = Schedule::default();
    assert!(tick(&mut s, &mut made, "b1", local("2026-12-01T09:00:00")).is_empty());
    assert!(tick(&mut s, &mut made, "b1", local("2026-12-01T22:00:00")).is_empty());
    // A building whose summary was not made before the restart gets it once, late.
    assert_eq!(
        tick(&mut s, &mut made, "b2", local("2026-12-01T09:00:00")),
        ["2026-12-01"]
    );
    assert!(tick(&mut s, &mut made, "b2", local("2026-12-01T09:01:00")).is_empty());
    // Stopped from 07:00 on the 2nd to 10:00 on the 4th: the 2nd and 3rd are not made up,
    // the 4th is made at once.
    let mut s = Schedule::default();
    assert!(tick(&mut s, &mut made, "b1", local("2026-12-02T07:00:00")).is_empty());
    let mut s = Schedule::default();
    assert_eq!(
        tick(&mut s, &mut made, "b1", local("2026-12-04T10:00:00")),
        ["2026-12-04"]
    );
    // Stopped over 08:00 and back the next morning before 08:00: yesterday's is not made.
    let mut s = Schedule::default();
    assert!(tick(&mut s, &mut made, "b3", local("2026-12-05T07:59:00")).is_empty());
    assert_eq!(
        tick(&mut s, &mut made, "b3", local("2026-12-05T08:00:00")),
        ["2026-12-05"]
    );
    let days: Vec<&str> = {
        let mut v: Vec<&str> = made
            .iter()
            .filter(|(b, _)| b == "b1")
            .map(|(_, d)| d.as_str())
            .collect();
        v.sort_unstable();
        v
    };
    assert_eq!(days, ["2026-12-01", "2026-12-04"]);
}

#[test]
fn a_store_error_leaves_the_building_due() {
    let mut s = Schedule::default();
    let tz = shanghai();
    let now = local("2026-12-01T08:00:00");
    let r = s.due("b1", &tz, 8 * 60, now, |_| Err::<bool, _>("busy"));
    assert_eq!(r, Err("busy"));
    let r = s.due("b1", &tz, 8 * 60, now + 1000, |_| Ok::<_, ()>(false));
    assert_eq!(r, Ok(Some("2026-12-01".to_owned())));
}

#[test]
fn bad_settings_are_problems_with_their_keys() {
    assert!(SummaryConfig::default().validate().is_empty());
    assert_eq!(SummaryConfig::default().at_minute(), 480);
    let c = SummaryConfig {
        enabled: true,
        at: "8:00".into(),
        channels: Some(vec![ChannelKind::Email, ChannelKind::Webhook]),
    };
    let keys: Vec<String> = c.validate().into_iter().map(|p| p.key).collect();
    assert_eq!(keys, ["summary.at", "summary.channels[1]"]);
    let c = SummaryConfig {
        channels: Some(Vec::new()),
        at: "24:00".into(),
        ..SummaryConfig::default()
    };
    let keys: Vec<String> = c.validate().into_iter().map(|p| p.key).collect();
    assert_eq!(keys, ["summary.at", "summary.channels"]);
}

fn transition(rule: &str, device: &str, kind: Kind, severity: Severity, at: Millis) -> Transition {
    Transition {
        change: Change::Fired,
        rule: rule.into(),
        building: "b1".into(),
        kind,
        device: device.into(),
        channel: None,
        severity,
        at,
        since: at,
        value: None,
        threshold: None,
        message: format!("{rule} on {device}"),
        pulse: false,
    }
}

/// A store with one building's devices (one offline, one with low battery, one never seen,
/// one online), an open alert, a closed false alarm (and an older one), a work order past
/// its deadline, and another building's alert that must not show.
#[test]
fn a_summary_says_what_the_store_holds_for_its_building() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = store::open_writer(dir.path(), "normal").unwrap();
    let registry = Registry::parse(
        r#"
[[building]]
id = "b1"
name = "滨江大厦"
[[device]]
id = "wp-1"
building = "b1"
kind = "water_pressure"
location = "B1 泵房"
[[device]]
id = "wp-2"
building = "b1"
kind = "water_pressure"
location = "屋顶水箱"
[[device]]
id = "cam-1"
building = "b1"
kind = "fire_lane"
[[device]]
id = "tx-1"
building = "b1"
kind = "transmitter"
[[building]]
id = "b2"
[[device]]
id = "tx-2"
building = "b2"
kind = "transmitter"
"#,
    )
    .unwrap();
    let rules = Rules::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/rules.toml"
    )))
    .unwrap();
    let now = local("2026-12-01T08:00:00");
    let tx = conn.transaction().unwrap();
    let mut off = DeviceRecord::new("b1", Kind::WaterPressure);
    off.last_seen = Some(now - 3 * 3_600_000);
    off.offline = true;
    store::upsert_device(&tx, "wp-1", "b1", Kind::WaterPressure, &off).unwrap();
    let mut weak = DeviceRecord::new("b1", Kind::WaterPressure);
    weak.last_seen = Some(now - MIN);
    weak.battery_pct = Some(9.0);
    store::upsert_device(&tx, "wp-2", "b1", Kind::WaterPressure, &weak).unwrap();
    let mut ok = DeviceRecord::new("b1", Kind::Transmitter);
    ok.last_seen = Some(now - MIN);
    store::upsert_device(&tx, "tx-1", "b1", Kind::Transmitter, &ok).unwrap();
    let route = |_: &alerts::Alert, _| alerts::Routed::default();
    let open = transition(
        "water_pressure.low",
        "wp-2",
        Kind::WaterPressure,
        Severity::Major,
        now - 600_000,
    );
    let alerts::Applied::Opened(open) = alerts::apply(&tx, &open, &route).unwrap() else {
        panic!("opened");
    };
    let fire = transition(
        "transmitter.fire_alarm",
        "tx-1",
        Kind::Transmitter,
        Severity::Critical,
        now - 7_200_000,
    );
    let alerts::Applied::Opened(fire) = alerts::apply(&tx, &fire, &route).unwrap() else {
        panic!("opened");
    };
    let close = alerts::Action::Close {
        by: "张三".into(),
        classification: Classification::FalseAlarm,
        note: Some("烟感误报".into()),
    };
    alerts::act(&tx, fire, &close, now - 3_600_000, &route).unwrap();
    // A false alarm closed two days ago is outside the window.
    let old = transition(
        "transmitter.fire_alarm",
        "tx-1",
        Kind::Transmitter,
        Severity::Critical,
        now - 3 * 86_400_000,
    );
    let alerts::Applied::Opened(old) = alerts::apply(&tx, &old, &route).unwrap() else {
        panic!("opened");
    };
    alerts::act(&tx, old, &close, now - 2 * 86_400_000, &route).unwrap();
    let elsewhere = Transition {
        building: "b2".into(),
        ..transition(
            "transmitter.fire_alarm",
            "tx-2",
            Kind::Transmitter,
            Severity::Critical,
            now - 60_000,
        )
    };
    alerts::apply(&tx, &elsewhere, &route).unwrap();
    let w = workorders::insert(
        &tx,
        &workorders::New {
            alert: None,
            building: "b1",
            rule: None,
            description: "消防通道堆放杂物",
            photo_url: None,
            by: "王五",
            auto: false,
            deadline_at: now - 60_000,
        },
        now - 86_400_000,
    )
    .unwrap();
    let about = About {
        building: "b1",
        building_name: Some("滨江大厦"),
        day: "2026-12-01",
        reason: SummaryReason::Scheduled,
    };
    let s = compose(&tx, &registry, &rules, about, now).unwrap();
    let counts = &s["counts"];
    for (k, want) in [
        ("devices", 4),
        ("online", 2),
        ("offline", 1),
        ("never_seen", 1),
        ("quality", 1),
        ("open_alerts", 1),
        ("open_critical", 0),
        ("workorders", 1),
        ("workorders_overdue", 1),
        ("false_alarms", 1),
        ("alerts_fired", 2),
    ] {
        assert_eq!(counts[k], want, "{k}: {s:#}");
    }
    assert_eq!(s["offline"][0]["id"], "wp-1");
    assert_eq!(s["offline"][0]["location"], "B1 泵房");
    assert_eq!(s["never_seen"][0]["id"], "cam-1");
    assert_eq!(s["quality"][0]["id"], "wp-2");
    assert_eq!(s["quality"][0]["quality"], json!(["low_battery"]));
    assert_eq!(s["open_alerts"][0]["id"], alert_id(open));
    assert_eq!(s["open_alerts"][0]["location"], "屋顶水箱");
    assert_eq!(s["workorders"][0]["id"], workorder_id(w.id));
    assert_eq!(s["workorders"][0]["overdue"], true);
    assert_eq!(s["false_alarms"][0]["id"], alert_id(fire));
    assert_eq!(s["false_alarms"][0]["closed_by"], "张三");
    assert_eq!(s["false_alarms"].as_array().unwrap().len(), 1);
    assert_eq!(s["alerts_fired"]["critical"], 1);
    assert_eq!(s["building_name"], "滨江大厦");
    assert_eq!(s["window"]["until"], rfc3339(now));
}
