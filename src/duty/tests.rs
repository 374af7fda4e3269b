use super::*;
use crate::model::parse_rfc3339;

const ROSTER: &str = r#"
[[person]]
id = "p1"
name = "张伟"
email = "p1@example.org"
phone = "+86 138 0000 0001"
[[person]]
id = "p2"
name = "李娜"
[[person]]
id = "p3"
name = "王芳"
[[person]]
id = "p4"
name = "刘洋"
[[person]]
id = "p5"
name = "陈静"
[[person]]
id = "p6"
name = "杨磊"
[[person]]
id = "p7"
name = "赵敏"
[[person]]
id = "p8"
name = "黄强"
[[person]]
id = "e1"
name = "Anna"
lang = "en"
[[person]]
id = "e2"
name = "Ben"
lang = "en"
[[person]]
id = "m1"
name = "周经理"
[[person]]
id = "f1"
name = "消防站值班"

[[control_room]]
id = "sh"
name = "上海中控室"
tz = "Asia/Shanghai"
buildings = ["b1", "b2"]
wecom = "sh-robot"
[[control_room.shift]]
name = "day"
start = "08:00"
end = "20:00"
people = ["p1", "p2"]
[[control_room.shift]]
name = "night"
start = "20:00"
end = "08:00"
rotation = [["p3", "p4"], ["p5", "p6"], ["p7", "p8"]]
rotation_start = "2026-01-01"

[[control_room]]
id = "ber"
name = "Berlin"
tz = "Europe/Berlin"
buildings = ["b3"]
[[control_room.shift]]
name = "early"
start = "06:00"
end = "14:00"
people = ["e1"]
[[control_room.shift]]
name = "late"
start = "14:00"
end = "22:00"
people = ["e2"]

[[building]]
id = "b1"
manager = "m1"
maintenance = "mc1"

[[maintenance]]
id = "mc1"
name = "安保维保公司"
people = ["p8"]
phone = "400-000-0000"

[fire_office]
name = "镇消防办"
people = ["f1"]
"#;

fn t(s: &str) -> Millis {
    parse_rfc3339(s).unwrap()
}

fn roster() -> Roster {
    Roster::parse(ROSTER).unwrap()
}

fn ids(ps: &[Person]) -> Vec<&str> {
    ps.iter().map(|p| p.id.as_str()).collect()
}

fn on(r: &Roster, building: &str, at: &str) -> (Option<String>, Vec<String>) {
    let d = r.on_duty(building, t(at)).unwrap();
    (
        d.shift.map(|s| s.name),
        d.operators.into_iter().map(|p| p.id).collect(),
    )
}

fn swap(id: i64, replace: &str, with: Option<&str>, from: &str, until: &str) -> Override {
    Override {
        id,
        room: "sh".into(),
        shift: None,
        from: t(from),
        until: t(until),
        replace: replace.into(),
        with: with.map(Into::into),
        by: "值班长".into(),
        note: None,
        created_at: t(from),
        ended_at: None,
    }
}

#[test]
fn a_night_shift_across_midnight_belongs_to_the_evening_it_started() {
    let r = roster();
    for at in ["2026-01-01T23:30:00+08:00", "2026-01-02T02:00:00+08:00"] {
        let d = r.on_duty("b1", t(at)).unwrap();
        let s = d.shift.unwrap();
        assert_eq!(s.name, "night", "{at}");
        assert_eq!(s.day, "2026-01-01", "{at}");
        assert_eq!(s.start, t("2026-01-01T20:00:00+08:00"));
        assert_eq!(s.end, t("2026-01-02T08:00:00+08:00"));
        assert_eq!(
            (s.start_local.as_str(), s.end_local.as_str()),
            ("20:00", "08:00")
        );
        assert_eq!(ids(&d.operators), ["p3", "p4"], "{at}: rotation day 0");
    }
    // The boundaries: 08:00 belongs to the day shift, 07:59 still to the night.
    assert_eq!(
        on(&r, "b1", "2026-01-02T07:59:00+08:00").0.as_deref(),
        Some("night")
    );
    assert_eq!(
        on(&r, "b1", "2026-01-02T08:00:00+08:00").0.as_deref(),
        Some("day")
    );
}

#[test]
fn a_rotation_turns_over_three_days_in_local_dates() {
    let r = roster();
    let night = |d: &str| on(&r, "b2", &format!("{d}T21:00:00+08:00")).1;
    assert_eq!(night("2026-01-01"), ["p3", "p4"]);
    assert_eq!(night("2026-01-02"), ["p5", "p6"]);
    assert_eq!(night("2026-01-03"), ["p7", "p8"]);
    assert_eq!(night("2026-01-04"), ["p3", "p4"]);
    // Before rotation_start it counts backwards.
    assert_eq!(night("2025-12-31"), ["p7", "p8"]);
    // 01:00 on the 3rd is the night of the 2nd. In UTC it is still the 2nd (17:00): the day
    // index counts in the room's local dates.
    assert_eq!(on(&r, "b2", "2026-01-02T17:00:00Z").1, ["p5", "p6"]);
    // The day shift is the same every day.
    assert_eq!(on(&r, "b2", "2026-01-03T09:00:00+08:00").1, ["p1", "p2"]);
}

#[test]
fn the_same_instant_is_a_different_shift_in_another_time_zone() {
    let r = roster();
    // 10:00 UTC: 18:00 in Shanghai, 11:00 in Berlin (CET).
    assert_eq!(
        on(&r, "b1", "2026-01-01T10:00:00Z").0.as_deref(),
        Some("day")
    );
    assert_eq!(
        on(&r, "b3", "2026-01-01T10:00:00Z").0.as_deref(),
        Some("early")
    );
    // 13:30 UTC: 21:30 in Shanghai, 14:30 in Berlin.
    assert_eq!(
        on(&r, "b1", "2026-01-01T13:30:00Z").0.as_deref(),
        Some("night")
    );
    let (shift, ops) = on(&r, "b3", "2026-01-01T13:30:00Z");
    assert_eq!(
        (shift.as_deref(), ops),
        (Some("late"), vec!["e2".to_owned()])
    );
    // Summer time: 12:00 UTC is 14:00 CEST, the start of the late shift.
    let d = r.on_duty("b3", t("2026-07-01T12:00:00Z")).unwrap();
    let s = d.shift.unwrap();
    assert_eq!(
        (s.name.as_str(), s.start),
        ("late", t("2026-07-01T12:00:00Z"))
    );
    assert_eq!(s.end, t("2026-07-01T20:00:00Z"));
    assert_eq!(d.operators[0].lang, Lang::En);
}

#[test]
fn a_gap_between_shifts_is_unstaffed_with_the_next_change() {
    let r = roster();
    // 23:30 in Berlin: after late, before early.
    let at = t("2026-01-01T22:30:00Z");
    let d = r.now_for_room("ber", at).unwrap();
    assert!(d.shift.is_none() && d.unstaffed());
    assert_eq!(d.next_change, Some(t("2026-01-02T06:00:00+01:00")));
    let un: Vec<String> = r
        .unstaffed_rooms(at)
        .into_iter()
        .map(|d| d.room.id)
        .collect();
    assert_eq!(un, ["ber"], "Shanghai is on its night shift");
    // The building still has its room and the fire office.
    let b = r.on_duty("b3", at).unwrap();
    assert_eq!(b.room.id, "ber");
    assert!(b.operators.is_empty() && b.manager.is_none());
    assert_eq!(b.fire_office.unwrap().people[0].id, "f1");
    // Next change while on a shift: its end.
    let d = r
        .now_for_room("sh", t("2026-01-01T09:00:00+08:00"))
        .unwrap();
    assert_eq!(d.next_change, Some(t("2026-01-01T20:00:00+08:00")));
}

#[test]
fn on_duty_names_the_building_manager_maintenance_and_fire_office() {
    let r = roster();
    let d = r.on_duty("b1", t("2026-01-01T09:00:00+08:00")).unwrap();
    assert_eq!(d.building, "b1");
    assert_eq!(d.room.id, "sh");
    assert_eq!(d.room.tz, "Asia/Shanghai");
    assert_eq!(d.room.wecom.as_deref(), Some("sh-robot"));
    assert_eq!(d.operators[0].email.as_deref(), Some("p1@example.org"));
    assert_eq!(d.operators[0].lang, Lang::Zh);
    assert_eq!(d.manager.unwrap().id, "m1");
    let m = d.maintenance.unwrap();
    assert_eq!((m.id.as_deref(), ids(&m.people)), (Some("mc1"), vec!["p8"]));
    assert_eq!(d.fire_office.unwrap().name, "镇消防办");
    assert!(r
        .on_duty("nowhere", t("2026-01-01T09:00:00+08:00"))
        .is_none());
}

#[test]
fn overrides_swap_and_take_people_off_duty_for_their_time_only() {
    let r = roster().with_overrides(vec![
        swap(
            2,
            "p2",
            None,
            "2026-01-01T12:00:00+08:00",
            "2026-01-01T14:00:00+08:00",
        ),
        swap(
            1,
            "p1",
            Some("p7"),
            "2026-01-01T10:00:00+08:00",
            "2026-01-01T16:00:00+08:00",
        ),
    ]);
    assert_eq!(
        on(&r, "b1", "2026-01-01T09:59:00+08:00").1,
        ["p1", "p2"],
        "before"
    );
    assert_eq!(
        on(&r, "b1", "2026-01-01T11:00:00+08:00").1,
        ["p7", "p2"],
        "the swap"
    );
    let d = r.on_duty("b1", t("2026-01-01T13:00:00+08:00")).unwrap();
    assert_eq!(ids(&d.operators), ["p7"], "the swap and the leave");
    assert_eq!(d.overrides, [1, 2], "in id order");
    assert_eq!(
        on(&r, "b1", "2026-01-01T16:00:00+08:00").1,
        ["p1", "p2"],
        "until is exclusive"
    );
    // Both on leave: unstaffed.
    let r = roster().with_overrides(vec![
        swap(
            1,
            "p1",
            None,
            "2026-01-01T10:00:00+08:00",
            "2026-01-01T11:00:00+08:00",
        ),
        swap(
            2,
            "p2",
            None,
            "2026-01-01T10:00:00+08:00",
            "2026-01-01T11:00:00+08:00",
        ),
    ]);
    let d = r
        .now_for_room("sh", t("2026-01-01T10:30:00+08:00"))
        .unwrap();
    assert!(d.shift.is_some() && d.unstaffed());
}

#[test]
fn an_override_for_one_shift_or_ended_early_does_not_apply_elsewhere() {
    let mut night_only = swap(
        1,
        "p1",
        Some("p8"),
        "2026-01-01T00:00:00+08:00",
        "2026-01-03T00:00:00+08:00",
    );
    night_only.shift = Some("night".into());
    let mut ended = swap(
        2,
        "p3",
        Some("p6"),
        "2026-01-01T20:00:00+08:00",
        "2026-01-02T08:00:00+08:00",
    );
    ended.ended_at = Some(t("2026-01-01T22:00:00+08:00"));
    let r = roster().with_overrides(vec![night_only, ended]);
    assert_eq!(on(&r, "b1", "2026-01-01T09:00:00+08:00").1, ["p1", "p2"]);
    assert_eq!(on(&r, "b1", "2026-01-01T21:00:00+08:00").1, ["p6", "p4"]);
    assert_eq!(
        on(&r, "b1", "2026-01-01T23:00:00+08:00").1,
        ["p3", "p4"],
        "ended"
    );
    // Someone already on the shift swapped in does not count twice.
    let r = roster().with_overrides(vec![swap(
        3,
        "p1",
        Some("p2"),
        "2026-01-01T00:00:00+08:00",
        "2026-01-02T00:00:00+08:00",
    )]);
    assert_eq!(on(&r, "b1", "2026-01-01T09:00:00+08:00").1, ["p2"]);
}

#[test]
fn validation_reports_every_problem_with_its_key() {
    let bad = r#"
[[person]]
id = "p1"
name = "a"
[[person]]
id = "p1"
name = "b"
[[control_room]]
id = "r1"
name = "R1"
tz = "Mars/Olympus"
buildings = ["b1"]
[[control_room.shift]]
name = "day"
start = "08:00"
end = "20:00"
people = ["p1", "ghost"]
[[control_room.shift]]
name = "late"
start = "19:00"
end = "23:00"
people = ["p1"]
[[control_room.shift]]
name = "odd"
start = "25:00"
end = "7"
rotation = [["p1"], ["nobody"]]
[[control_room]]
id = "r1"
name = "R1 again"
tz = "Asia/Urumqi"
buildings = ["b1"]
[[building]]
id = "b9"
manager = "who"
maintenance = "none"
"#;
    let keys: Vec<String> = Roster::parse(bad)
        .unwrap_err()
        .into_iter()
        .map(|p| p.key)
        .collect();
    for k in [
        "person[1].id",
        "control_room[0].tz",
        "control_room[0].shift[0].people[1]",
        "control_room[0].shift[1]",
        "control_room[0].shift[2].start",
        "control_room[0].shift[2].end",
        "control_room[0].shift[2].rotation[1][0]",
        "control_room[0].shift[2].rotation_start",
        "control_room[1].id",
        "control_room[1].buildings[0]",
        "building[0].manager",
        "building[0].maintenance",
        "building[0].id",
    ] {
        assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
    }
    // Problems name the file key when loaded from a file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("duty.toml");
    std::fs::write(&path, bad).unwrap();
    let p = Roster::load(&path).unwrap_err();
    assert!(p[0].key.starts_with("duty.file: "), "{}", p[0]);
    // A missing file is no roster.
    let none = Roster::load(&dir.path().join("absent.toml")).unwrap();
    assert!(none.room_ids().is_empty());
    assert!(none.on_duty("b1", 0).is_none());
    // Unknown fields and languages are TOML problems.
    assert!(Roster::parse("[[person]]\nid = \"a\"\nname = \"a\"\nlang = \"fr\"\n").is_err());
}

#[test]
fn the_shipped_roster_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/duty.toml");
    let r = Roster::load(&path).unwrap();
    assert!(!r.room_ids().is_empty());
}

#[tokio::test]
async fn watch_counts_unstaffed_rooms_on_the_clock() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let clock = crate::clock::ManualClock::new(t("2026-01-01T10:00:00Z"));
    let live = Live::new(roster());
    let seen = Arc::new(AtomicUsize::new(usize::MAX));
    let s = Arc::clone(&seen);
    let token = CancellationToken::new();
    let task = tokio::spawn(watch(
        Arc::clone(&live),
        clock.clone(),
        Box::new(move |n| s.store(n, Ordering::SeqCst)),
        token.clone(),
    ));
    let wait = |n: usize| {
        let seen = Arc::clone(&seen);
        async move {
            tokio::time::timeout(std::time::Duration::from_secs(5), async {
                while seen.load(Ordering::SeqCst) != n {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            })
            .await
            .unwrap();
        }
    };
    wait(0).await;
    // 23:30 in Berlin: the gap.
    clock.set(t("2026-01-01T22:30:00Z"));
    wait(1).await;
    // Both Shanghai day operators on leave: two rooms (override changes wake it at once).
    live.set_overrides(vec![
        swap(
            1,
            "p3",
            None,
            "2026-01-01T00:00:00Z",
            "2026-01-03T00:00:00Z",
        ),
        swap(
            2,
            "p4",
            None,
            "2026-01-01T00:00:00Z",
            "2026-01-03T00:00:00Z",
        ),
    ]);
    wait(2).await;
    token.cancel();
    task.await.unwrap();
}

const CHECKS: &str = r#"
[[person]]
id = "p1"
name = "一"
[[control_room]]
id = "cr-sh"
name = "上海"
tz = "Asia/Shanghai"
buildings = ["b1", "b2"]
[[control_room.shift]]
name = "day"
start = "08:00"
end = "20:00"
people = ["p1"]
[[control_room.shift]]
name = "night"
start = "20:00"
end = "08:00"
people = ["p1"]
[control_room.duty_check]
times = ["21:00", "09:00"]
deadline_s = 300
[[control_room]]
id = "cr-rand"
name = "随机"
tz = "Europe/Berlin"
[[control_room.shift]]
name = "all"
start = "06:00"
end = "06:00"
people = ["p1"]
[control_room.duty_check]
random_per_shift = 2
"#;

#[test]
fn fixed_duty_checks_are_local_times_and_only_the_latest_missed_one_is_due() {
    let r = Roster::parse(CHECKS).unwrap();
    assert_eq!(r.check_rooms(), ["cr-sh", "cr-rand"]);
    assert_eq!(r.check_deadline_s("cr-sh"), 300);
    assert_eq!(r.check_deadline_s("cr-rand"), 600);
    assert_eq!(r.buildings_of("cr-sh"), ["b1", "b2"]);
    // 09:00 in Shanghai is 01:00 UTC.
    let nine = t("2026-11-29T01:00:00Z");
    assert_eq!(r.next_check_after("cr-sh", nine - 1), Some(nine));
    assert_eq!(
        r.next_check_after("cr-sh", nine),
        Some(t("2026-11-29T13:00:00Z"))
    );
    assert_eq!(r.check_due("cr-sh", nine - 60_000, nine - 1), None);
    assert_eq!(r.check_due("cr-sh", nine - 60_000, nine), Some(nine));
    // Down for a day and a half: one catch-up, the latest.
    assert_eq!(
        r.check_due(
            "cr-sh",
            t("2026-11-27T00:00:00Z"),
            t("2026-11-28T14:00:00Z")
        ),
        Some(t("2026-11-28T13:00:00Z"))
    );
}

#[test]
fn random_duty_checks_are_the_same_on_every_run_and_inside_the_shift() {
    let a = Roster::parse(CHECKS).unwrap();
    let b = Roster::parse(CHECKS).unwrap();
    // The 24 h shift of 29 November starts 06:00 Berlin (05:00 UTC).
    let start = t("2026-11-29T05:00:00Z");
    let end = start + 86_400_000;
    let mut times = Vec::new();
    let mut at = start;
    while let Some(n) = a.next_check_after("cr-rand", at).filter(|n| *n < end) {
        assert_eq!(b.next_check_after("cr-rand", at), Some(n));
        times.push(n);
        at = n;
    }
    assert!(!times.is_empty() && times.len() <= 2, "{times:?}");
    for x in times {
        assert!(x >= start + 15 * 60_000 && x <= end - 15 * 60_000);
    }
}

#[test]
fn a_bad_duty_check_schedule_is_reported_with_its_key() {
    let bad = CHECKS
        .replace("\"21:00\"", "\"25:00\"")
        .replace("deadline_s = 300", "deadline_s = 5");
    let p = Roster::parse(&bad).unwrap_err();
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    assert!(
        keys.contains(&"control_room[0].duty_check.times[0]"),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"control_room[0].duty_check.deadline_s"),
        "{keys:?}"
    );
}
