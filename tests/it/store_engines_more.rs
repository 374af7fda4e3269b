//! More of the store's functions on both engines (see `store_engines`): silences, holds,
//! work orders, commands, duty checks and overrides, accounts and the audit trail, rollups.

use crate::store_engines::{alarm, duty, engines, fired, opened};
use firewatch::auth::{token, Role, User};
use firewatch::duty::Override;
use firewatch::model::alert::{alert_id, Change};
use firewatch::model::notification::{ChannelKind, Event, Subject};
use firewatch::model::silence::{Mode, Silence};
use firewatch::model::{rfc3339, Kind, Severity};
use firewatch::store::alerts::{self, Alert, Applied, Routed};
use firewatch::store::auth::{self as accounts, AuditEntry};
use firewatch::store::commands::{self, Answer, CommandKind, CommandStatus, NewCommand};
use firewatch::store::holds::{self, Flap, Hold, Why};
use firewatch::store::rollups::{self, Merged, Position, Range, Step};
use firewatch::store::workorders::{
    self, New, Step as WoStep, WorkorderError, WorkorderRequest, WorkorderStatus, WorkordersConfig,
};
use firewatch::store::{self, duty as overrides, duty_checks, notifications, silences, StoreError};
use serde_json::{json, Value};

fn silence(mode: Mode, starts_at: i64, ends_at: i64) -> Silence {
    Silence {
        id: 0,
        matchers: [("building".to_string(), "b1".to_string())].into(),
        starts_at,
        ends_at: Some(ends_at),
        every: None,
        tz: "Asia/Shanghai".into(),
        reason: "季度维保".into(),
        by: "李工".into(),
        notify_on_exit: true,
        created_at: starts_at - 100,
        expired_at: None,
        expired_by: None,
        mode,
    }
}

#[test]
fn silences_expire_early_and_the_alerts_they_hold_back_are_counted_alike() {
    for mut s in engines("silences") {
        let engine = s.name();
        let (a, b, d) = s
            .tx(|db| {
                Ok((
                    silences::insert(db, &silence(Mode::Silence, 1_000, 50_000))?,
                    silences::insert(db, &silence(Mode::Silence, 2_000, 9_000))?,
                    silences::insert(db, &silence(Mode::Drill, 3_000, 60_000))?,
                ))
            })
            .unwrap();
        assert!(
            a.id > 0 && a.id < b.id && b.id < d.id,
            "{engine}: {} {} {}",
            a.id,
            b.id,
            d.id
        );
        s.tx(|db| {
            assert_eq!(silences::get(db, a.id)?.as_ref(), Some(&a), "{engine}");
            assert_eq!(silences::get(db, d.id + 100)?, None, "{engine}");
            let ids = |v: Vec<Silence>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
            assert_eq!(
                ids(silences::all(db)?),
                [d.id, b.id, a.id],
                "{engine}: newest first"
            );
            // Ended early by hand: the spec and the column both say so.
            let early = Silence {
                expired_at: Some(5_000),
                expired_by: Some("王工".into()),
                ..a.clone()
            };
            silences::update(db, &early)?;
            assert_eq!(silences::get(db, a.id)?.as_ref(), Some(&early), "{engine}");
            let col: Option<i64> = db.one(
                "SELECT expired_at FROM silences WHERE id = ?1",
                firewatch::args![a.id],
            )?;
            assert_eq!(col, Some(5_000), "{engine}");
            assert_eq!(
                ids(silences::in_force(db, 6_000)?),
                [d.id, b.id],
                "{engine}"
            );
            assert_eq!(ids(silences::in_force(db, 9_000)?), [d.id], "{engine}");

            // Alert 101 is held by `a` first; a second mark leaves the first in place.
            silences::mark(db, 101, a.id, 1_500)?;
            silences::mark(db, 101, b.id, 2_500)?;
            silences::mark(db, 102, b.id, 2_600)?;
            silences::mark(db, 103, b.id, 2_700)?;
            assert_eq!(silences::mark_of(db, 101)?, Some((a.id, 1_500)), "{engine}");
            let mut marks = silences::marks(db)?;
            marks.sort_unstable();
            assert_eq!(marks, [(101, a.id), (102, b.id), (103, b.id)], "{engine}");
            let held = silences::held_counts(db)?;
            assert_eq!(held, [(a.id, 1), (b.id, 2)].into(), "{engine}");
            silences::unmark(db, 102)?;
            assert_eq!(silences::mark_of(db, 102)?, None, "{engine}");
            assert_eq!(
                silences::held_counts(db)?,
                [(a.id, 1), (b.id, 1)].into(),
                "{engine}"
            );

            // A drill's mark is for good, and only the first counts.
            assert!(silences::mark_drill(db, 104, &d, 3_500)?, "{engine}");
            assert!(!silences::mark_drill(db, 104, &d, 3_600)?, "{engine}");
            assert_eq!(
                silences::drill_of(db, 104)?,
                Some((d.id, "drill".to_string(), 3_500)),
                "{engine}"
            );
            assert_eq!(silences::drill_of(db, 101)?, None, "{engine}");
            Ok(())
        })
        .unwrap();
    }
}

#[test]
fn inhibitions_and_shields_hold_alerts_until_their_source_ends_alike() {
    let point = json!({"loop": 1, "point": 3});
    for mut s in engines("holds") {
        let engine = s.name();
        let (src, inh, long, fault) = s
            .tx(|db| {
                assert!(
                    holds::shield(db, "b1", "tx-1", "1-1-3", Some(&point), 1_000)?,
                    "{engine}"
                );
                assert!(
                    !holds::shield(db, "b1", "tx-1", "1-1-3", None, 1_100)?,
                    "{engine}: already"
                );
                let src = opened(
                    db,
                    &alarm(
                        Change::Fired,
                        "transmitter.offline",
                        Kind::Transmitter,
                        "tx-9",
                        None,
                        Severity::Major,
                        2_000,
                    ),
                )?;
                let inh = opened(db, &fired(3_000))?;
                let long = opened(
                    db,
                    &alarm(
                        Change::Fired,
                        holds::SHIELD_RULE,
                        Kind::Transmitter,
                        "tx-1",
                        Some("1-1-3"),
                        Severity::Minor,
                        4_000,
                    ),
                )?;
                let fault = opened(
                    db,
                    &alarm(
                        Change::Fired,
                        "transmitter.fault",
                        Kind::Transmitter,
                        "tx-1",
                        Some("1-1-3"),
                        Severity::Minor,
                        4_500,
                    ),
                )?;
                Ok((src, inh, long, fault))
            })
            .unwrap();
        let inhibited = Hold {
            alert: inh,
            why: Why::Inhibited,
            source: src.to_string(),
            reason: "gateway_offline".into(),
            since: 3_000,
        };
        let shielded = Hold {
            alert: fault,
            why: Why::Shielded,
            source: holds::point_key("tx-1", "1-1-3"),
            reason: "shield".into(),
            since: 4_500,
        };
        s.tx(|db| {
            assert!(holds::is_shielded(db, "tx-1", "1-1-3")?, "{engine}");
            assert!(!holds::is_shielded(db, "tx-1", "1-1-4")?, "{engine}");
            let now = holds::shields(db, None, None)?;
            assert_eq!(now.len(), 1, "{engine}");
            assert_eq!((now[0].since, now[0].until), (1_000, None), "{engine}");
            assert_eq!(now[0].point.as_ref(), Some(&point), "{engine}");
            // The fire alarm and the fault started under the shield; the long-shield alert is
            // the shield's own.
            assert_eq!((now[0].alarms, now[0].alert), (2, Some(long)), "{engine}");

            assert!(holds::hold(db, &inhibited)?, "{engine}");
            assert!(
                !holds::hold(
                    db,
                    &Hold {
                        since: 3_100,
                        ..inhibited.clone()
                    }
                )?,
                "{engine}"
            );
            assert!(holds::hold(db, &shielded)?, "{engine}");
            assert_eq!(
                holds::hold_of(db, inh)?.as_ref(),
                Some(&inhibited),
                "{engine}"
            );
            assert_eq!(holds::inhibiting(db, src)?, 1, "{engine}");
            assert_eq!(holds::inhibiting(db, inh)?, 0, "{engine}");
            assert_eq!(
                holds::json_of(db, inh)?,
                (
                    json!({"by": firewatch::model::alert::alert_id(src), "rule": "gateway_offline",
                           "since": firewatch::model::rfc3339(3_000)}),
                    serde_json::Value::Null
                ),
                "{engine}"
            );
            assert_eq!(
                holds::json_of(db, fault)?,
                (
                    serde_json::Value::Null,
                    json!({"point": "tx-1/1-1-3", "since": firewatch::model::rfc3339(4_500)})
                ),
                "{engine}"
            );
            assert_eq!(
                holds::json_of(db, src)?,
                (serde_json::Value::Null, serde_json::Value::Null)
            );
            // The source alert is open and active, the point still shielded: nothing is over.
            assert_eq!(holds::take_released(db)?, vec![], "{engine}");
            Ok(())
        })
        .unwrap();

        // The gateway is back: the inhibition is over, the shield not yet.
        s.tx(|db| {
            let route = |_: &Alert, _: Event| duty();
            let cleared = alarm(
                Change::Cleared,
                "transmitter.offline",
                Kind::Transmitter,
                "tx-9",
                None,
                Severity::Major,
                5_000,
            );
            assert_eq!(
                alerts::apply(db, &cleared, &route)?,
                Applied::Cleared(src),
                "{engine}"
            );
            assert_eq!(
                holds::take_released(db)?,
                vec![inhibited.clone()],
                "{engine}"
            );
            assert_eq!(holds::hold_of(db, inh)?, None, "{engine}: taken out");
            assert_eq!(
                holds::unshield(db, "tx-1", Some("1-1-4"), 6_000)?,
                0,
                "{engine}"
            );
            assert_eq!(holds::unshield(db, "tx-1", None, 6_000)?, 1, "{engine}");
            assert!(!holds::is_shielded(db, "tx-1", "1-1-3")?, "{engine}");
            assert_eq!(
                holds::take_released(db)?,
                vec![shielded.clone()],
                "{engine}"
            );
            assert_eq!(holds::take_released(db)?, vec![], "{engine}");

            assert!(holds::shields(db, None, None)?.is_empty(), "{engine}");
            let past = holds::shields(db, Some((0, 10_000)), None)?;
            assert_eq!(past.len(), 1, "{engine}");
            assert_eq!(
                (past[0].until, past[0].alarms, past[0].alert),
                (Some(6_000), 2, Some(long)),
                "{engine}"
            );
            assert_eq!(past[0].shielded_s(99_999), 5, "{engine}");
            assert!(
                holds::shields(db, Some((7_000, 8_000)), None)?.is_empty(),
                "{engine}"
            );
            let other = ["b2".to_string()];
            assert!(
                holds::shields(db, Some((0, 10_000)), Some(&other))?.is_empty(),
                "{engine}"
            );
            // Shielded again: a new shield of the point.
            assert!(
                holds::shield(db, "b1", "tx-1", "1-1-3", None, 7_000)?,
                "{engine}"
            );
            assert_eq!(
                holds::shields(db, Some((0, 10_000)), None)?.len(),
                2,
                "{engine}"
            );
            Ok(())
        })
        .unwrap();

        s.tx(|db| {
            let f = Flap {
                alert: inh,
                since: 3_000,
                last_change: 3_100,
                changes: 3,
            };
            holds::flap(db, &f)?;
            holds::flap(
                db,
                &Flap {
                    since: 9_999,
                    last_change: 3_500,
                    changes: 4,
                    ..f
                },
            )?;
            holds::flap(db, &Flap { alert: fault, ..f })?;
            let again = Flap {
                last_change: 3_500,
                changes: 4,
                ..f
            };
            assert_eq!(
                holds::flap_of(db, inh)?,
                Some(again),
                "{engine}: marked since the first"
            );
            let mut all: Vec<i64> = holds::flapping(db)?.into_iter().map(|f| f.alert).collect();
            all.sort_unstable();
            assert_eq!(all, [inh, fault], "{engine}");
            holds::unflap(db, inh)?;
            assert_eq!(holds::flap_of(db, inh)?, None, "{engine}");
            assert_eq!(holds::flapping(db)?.len(), 1, "{engine}");
            Ok(())
        })
        .unwrap();
    }
}

/// A work-order error as the store's, to end a transaction with.
fn wo(e: WorkorderError) -> StoreError {
    match e {
        WorkorderError::Store(e) => e,
        other => StoreError::Corrupt {
            what: "work order",
            err: other.to_string(),
        },
    }
}

#[test]
fn a_hazard_becomes_a_work_order_that_is_rectified_sent_back_accepted_or_overdue_alike() {
    let cfg = WorkordersConfig::default();
    let ops = Routed {
        targets: vec![(ChannelKind::Email, "ops@b1.example".into())],
        ..duty()
    };
    for mut s in engines("workorders") {
        let engine = s.name();
        let (hazard, fire) = s
            .tx(|db| {
                let hazard = opened(
                    db,
                    &alarm(
                        Change::Fired,
                        "water_pressure.low",
                        Kind::WaterPressure,
                        "wp-1",
                        None,
                        Severity::Major,
                        10_000,
                    ),
                )?;
                // Critical, not a hazard: no work order.
                let fire = opened(db, &fired(11_000))?;
                Ok((hazard, fire))
            })
            .unwrap();
        let w = s
            .tx(|db| {
                let c = workorders::candidates(db, &cfg.hazards)?;
                assert_eq!(c.len(), 1, "{engine}: {c:?}");
                assert_eq!(
                    (
                        c[0].alert,
                        c[0].rule.as_str(),
                        c[0].building.as_str(),
                        c[0].fired_at
                    ),
                    (hazard, "water_pressure.low", "b1", 10_000),
                    "{engine}"
                );
                assert_eq!(c[0].message, "water_pressure.low at wp-1", "{engine}");
                let req = |alert: Option<i64>, building: &str| WorkorderRequest {
                    alert,
                    building: building.into(),
                    description: "稳压泵压力低".into(),
                    photo_url: None,
                    by: "王工".into(),
                    deadline_s: None,
                };
                let wrong = workorders::create(db, &req(Some(hazard), "b2"), &cfg, 20_000);
                assert!(
                    matches!(wrong, Err(WorkorderError::Invalid(_))),
                    "{engine}: {wrong:?}"
                );
                let none = workorders::create(db, &req(Some(fire + 100), "b1"), &cfg, 20_000);
                assert!(
                    matches!(none, Err(WorkorderError::NotFound(_))),
                    "{engine}: {none:?}"
                );
                let w =
                    workorders::create(db, &req(Some(hazard), "b1"), &cfg, 20_000).map_err(wo)?;
                let twice = workorders::create(db, &req(Some(hazard), "b1"), &cfg, 20_500);
                assert!(
                    matches!(twice, Err(WorkorderError::Conflict(_))),
                    "{engine}: {twice:?}"
                );
                assert!(
                    workorders::candidates(db, &cfg.hazards)?.is_empty(),
                    "{engine}"
                );
                Ok(w)
            })
            .unwrap();
        assert_eq!(w.alert, Some(hazard), "{engine}");
        assert_eq!(w.rule.as_deref(), Some("water_pressure.low"), "{engine}");
        assert_eq!(
            (w.status, w.auto),
            (WorkorderStatus::Open, false),
            "{engine}"
        );
        assert_eq!(
            (w.created_at, w.deadline_at),
            (20_000, 20_000 + 86_400_000),
            "{engine}"
        );

        let lane = s
            .tx(|db| {
                assert_eq!(workorders::get(db, w.id)?.as_ref(), Some(&w), "{engine}");
                assert_eq!(
                    workorders::of_alert(db, hazard)?.as_ref(),
                    Some(&w),
                    "{engine}"
                );
                assert_eq!(workorders::of_alert(db, fire)?, None, "{engine}");
                let lane = workorders::insert(
                    db,
                    &New {
                        alert: None,
                        building: "b1",
                        rule: None,
                        description: "消防通道堵塞",
                        photo_url: Some("https://img.example/lane.jpg"),
                        by: workorders::SYSTEM,
                        auto: true,
                        deadline_at: 30_000,
                    },
                    25_000,
                )?;
                assert_eq!(
                    workorders::enqueue_notifications(
                        db,
                        &w,
                        Event::WorkorderCreated,
                        duty(),
                        20_000
                    )?,
                    2
                );
                workorders::record_notification(
                    db,
                    w.id,
                    21_000,
                    "notified",
                    json!({"channel": "email"}),
                )?;
                Ok(lane)
            })
            .unwrap();
        assert!(lane.auto && lane.id > w.id, "{engine}");
        assert_eq!(
            lane.photo_url.as_deref(),
            Some("https://img.example/lane.jpg"),
            "{engine}"
        );

        // The lifecycle: only the steps that fit, each in the history.
        let step = |s: &mut crate::store_engines::Store, st: WoStep, by: &str, at: i64| {
            s.tx(|db| {
                Ok(workorders::step(
                    db,
                    w.id,
                    st,
                    by,
                    "已处理",
                    Some("https://img.example/ok.jpg"),
                    at,
                ))
            })
            .unwrap()
        };
        let early = step(&mut s, WoStep::Accept, "张班长", 21_500);
        assert!(
            matches!(early, Err(WorkorderError::Conflict(_))),
            "{engine}: {early:?}"
        );
        let r = step(&mut s, WoStep::Rectify, "李经理", 22_000).unwrap();
        assert_eq!(
            (r.status, r.rectified_at, r.rectified_by.as_deref()),
            (WorkorderStatus::Rectified, Some(22_000), Some("李经理"))
        );
        assert_eq!(
            step(&mut s, WoStep::SendBack, "张班长", 22_500)
                .unwrap()
                .status,
            WorkorderStatus::Open
        );
        step(&mut s, WoStep::Rectify, "李经理", 23_000).unwrap();
        let closed = step(&mut s, WoStep::Accept, "张班长", 24_000).unwrap();
        assert_eq!(
            (closed.status, closed.closed_at, closed.closed_by.as_deref()),
            (WorkorderStatus::Closed, Some(24_000), Some("张班长"))
        );
        assert_eq!(closed.updated_at, 24_000, "{engine}");
        let late = step(&mut s, WoStep::Rectify, "李经理", 24_500);
        assert!(
            matches!(late, Err(WorkorderError::Conflict(_))),
            "{engine}: {late:?}"
        );
        let missing = s
            .tx(|db| {
                Ok(workorders::step(
                    db,
                    lane.id + 100,
                    WoStep::Rectify,
                    "李经理",
                    "",
                    None,
                    24_600,
                ))
            })
            .unwrap();
        assert!(
            matches!(missing, Err(WorkorderError::NotFound(_))),
            "{engine}: {missing:?}"
        );

        s.tx(|db| {
            let h = workorders::history_of(db, w.id)?;
            let whats: Vec<&str> = h.iter().map(|h| h.what.as_str()).collect();
            assert_eq!(
                whats,
                [
                    "created",
                    "notified",
                    "rectified",
                    "sent_back",
                    "rectified",
                    "accepted"
                ],
                "{engine}"
            );
            assert_eq!(
                h[0].detail.as_ref().unwrap()["deadline_at"],
                rfc3339(20_000 + 86_400_000),
                "{engine}"
            );
            assert_eq!(
                h[0].detail.as_ref().unwrap()["alert"],
                alert_id(hazard),
                "{engine}"
            );
            assert_eq!(h[1].detail, Some(json!({"channel": "email"})), "{engine}");
            assert_eq!(
                (h[2].by.as_deref(), h[2].note.as_deref()),
                (Some("李经理"), Some("已处理")),
                "{engine}"
            );
            assert_eq!(
                h[5].detail,
                Some(json!({"from": "rectified", "to": "closed"})),
                "{engine}"
            );
            // Closed: everyone told of the order hears it, with the one routed now.
            let n = workorders::enqueue_notifications(
                db,
                &closed,
                Event::WorkorderClosed,
                ops.clone(),
                24_000,
            )?;
            assert_eq!(n, 3, "{engine}");
            let (due, queued, _) = notifications::due(db, ChannelKind::Email, 100_000, 10)?;
            let due: Vec<(Subject, Event, &str)> = due
                .iter()
                .map(|n| (n.subject, n.event, n.target.as_str()))
                .collect();
            let sub = Subject::Workorder(w.id);
            assert!(
                due.contains(&(sub, Event::WorkorderCreated, "duty@b1.example")),
                "{engine}: {due:?}"
            );
            assert!(
                due.contains(&(sub, Event::WorkorderClosed, "duty@b1.example")),
                "{engine}: {due:?}"
            );
            assert!(
                due.contains(&(sub, Event::WorkorderClosed, "ops@b1.example")),
                "{engine}: {due:?}"
            );
            // The two alerts' e-mails and the three of the order.
            assert_eq!(queued, 5, "{engine}");

            // The lane's order passes its deadline open; the closed one is never overdue.
            assert!(
                workorders::due_overdue(db, 29_999, 10)?.is_empty(),
                "{engine}"
            );
            let overdue = workorders::due_overdue(db, 30_000, 10)?;
            assert_eq!(
                overdue.iter().map(|w| w.id).collect::<Vec<_>>(),
                [lane.id],
                "{engine}"
            );
            workorders::mark_overdue(db, &overdue[0], 31_000)?;
            assert!(
                workorders::due_overdue(db, 40_000, 10)?.is_empty(),
                "{engine}: once"
            );
            assert_eq!(
                workorders::get(db, lane.id)?.unwrap().overdue_at,
                Some(31_000),
                "{engine}"
            );
            let last = workorders::history_of(db, lane.id)?.pop().unwrap();
            assert_eq!(last.what, "overdue", "{engine}");

            let list = |f: workorders::Filter| -> store::Result<Vec<i64>> {
                Ok(
                    workorders::list(db, &workorders::Filter { limit: 10, ..f })?
                        .into_iter()
                        .map(|w| w.id)
                        .collect(),
                )
            };
            let all = workorders::Filter::default();
            assert_eq!(
                list(all.clone())?,
                [lane.id, w.id],
                "{engine}: newest first"
            );
            let f = |status, overdue, building: Option<&str>| workorders::Filter {
                status,
                overdue,
                building: building.map(Into::into),
                ..all.clone()
            };
            assert_eq!(
                list(f(Some(WorkorderStatus::Closed), None, None))?,
                [w.id],
                "{engine}"
            );
            assert_eq!(
                list(f(Some(WorkorderStatus::Open), None, Some("b1")))?,
                [lane.id],
                "{engine}"
            );
            assert_eq!(list(f(None, Some(true), None))?, [lane.id], "{engine}");
            assert_eq!(list(f(None, Some(false), None))?, [w.id], "{engine}");
            assert_eq!(
                list(f(None, None, Some("b2")))?,
                Vec::<i64>::new(),
                "{engine}"
            );
            let one = workorders::list(db, &workorders::Filter { limit: 1, ..all })?;
            assert_eq!(one.len(), 1, "{engine}");
            Ok(())
        })
        .unwrap();
    }
}

/// 2026-11-28T23:30:00Z
const T0: i64 = 1_795_908_600_000;

fn duty_check(device: &str) -> NewCommand {
    NewCommand {
        device: device.into(),
        building: "bsy-0012".into(),
        kind: Kind::Transmitter,
        command: CommandKind::DutyCheck,
        deadline_s: 600,
        by: "wang".into(),
    }
}

#[test]
fn commands_are_queued_published_retried_and_answered_alike() {
    for mut s in engines("commands") {
        let engine = s.name();
        s.tx(|db| {
            let a = commands::insert(db, &duty_check("uitd-01"), T0)?;
            let b = commands::insert(db, &duty_check("uitd-01"), T0)?;
            let c = commands::insert(db, &duty_check("uitd-02"), T0 + 1_000)?;
            assert_eq!(
                a.reference,
                format!("dc-uitd-01-20261128T233000-{}", a.id),
                "{engine}"
            );
            assert_ne!(a.reference, b.reference, "{engine}");
            assert_eq!(
                (a.status, a.deadline_at, a.next_attempt_at),
                (CommandStatus::Pending, T0 + 600_000, T0)
            );
            let p: Value = serde_json::from_str(&a.payload).unwrap();
            assert_eq!(
                p,
                json!({"command": "duty_check", "ref": a.reference, "deadline_s": 600,
                       "ts": "2026-11-28T23:30:00.000Z"}),
                "{engine}"
            );
            assert_eq!(commands::get(db, a.id)?.as_ref(), Some(&a), "{engine}");
            assert_eq!(commands::get(db, c.id + 1)?, None, "{engine}");
            let ids = |v: Vec<commands::Command>| v.into_iter().map(|c| c.id).collect::<Vec<_>>();
            assert_eq!(
                ids(commands::list(db, None, None, 10)?),
                [c.id, b.id, a.id],
                "{engine}"
            );
            assert_eq!(
                ids(commands::list(db, Some("uitd-01"), None, 10)?),
                [b.id, a.id],
                "{engine}"
            );
            assert_eq!(
                ids(commands::list(db, None, Some(CommandStatus::Pending), 2)?),
                [c.id, b.id]
            );
            let (due, pending) = commands::due(db, T0, 10)?;
            assert_eq!((ids(due), pending), (vec![a.id, b.id], 3), "{engine}");

            // No PUBACK: the next attempt waits 2 s.
            assert!(
                !commands::record_attempt(db, a.id, T0, "no PUBACK", false)?,
                "{engine}"
            );
            let got = commands::get(db, a.id)?.unwrap();
            assert_eq!(
                (got.attempts, got.next_attempt_at, got.last_error.as_deref()),
                (1, T0 + 2_000, Some("no PUBACK"))
            );
            assert_eq!(
                commands::next_due_after(db, T0 + 500)?,
                Some(T0 + 1_000),
                "{engine}"
            );
            assert_eq!(
                commands::next_due_after(db, T0 + 1_500)?,
                Some(T0 + 2_000),
                "{engine}"
            );
            assert_eq!(commands::next_due_after(db, T0 + 5_000)?, None, "{engine}");

            // Published, then answered: the delay counts from the PUBACK.
            assert!(commands::mark_published(db, b.id, T0 + 200)?, "{engine}");
            assert_eq!(
                ids(commands::list(
                    db,
                    None,
                    Some(CommandStatus::Published),
                    10
                )?),
                [b.id]
            );
            let answer = |dev: &str, r: &str, ev: &str, at| commands::answer(db, dev, r, ev, at);
            let ev = "duty_check_answer";
            assert_eq!(
                answer("uitd-01", &b.reference, ev, T0 + 5_200)?,
                Answer::Matched {
                    id: b.id,
                    delay_ms: 5_000
                }
            );
            assert_eq!(
                answer("uitd-01", &b.reference, ev, T0 + 9_000)?,
                Answer::Repeated { id: b.id }
            );
            assert!(
                !commands::mark_published(db, b.id, T0 + 9_500)?,
                "{engine}: a late PUBACK"
            );
            let got = commands::get(db, b.id)?.unwrap();
            assert_eq!(
                (got.status, got.answered_at, got.answer_delay_ms),
                (CommandStatus::Answered, Some(T0 + 5_200), Some(5_000))
            );
            assert_eq!(
                answer("uitd-02", &a.reference, ev, T0)?,
                Answer::Unmatched,
                "{engine}"
            );
            assert_eq!(
                answer("uitd-01", "dc-nope", ev, T0)?,
                Answer::Unmatched,
                "{engine}"
            );
            assert_eq!(
                answer("uitd-01", &a.reference, "reset", T0)?,
                Answer::Unmatched,
                "{engine}"
            );
            // Answered before the PUBACK: from creation; the PUBACK only fills in its time.
            assert_eq!(
                answer("uitd-02", &c.reference, ev, T0 + 1_300)?,
                Answer::Matched {
                    id: c.id,
                    delay_ms: 300
                }
            );
            assert!(!commands::mark_published(db, c.id, T0 + 1_400)?, "{engine}");
            let got = commands::get(db, c.id)?.unwrap();
            assert_eq!(
                (got.status, got.published_at),
                (CommandStatus::Answered, Some(T0 + 1_400)),
                "{engine}"
            );

            // The last attempt fails for good; an answer after all is still recorded.
            assert!(
                commands::record_attempt(db, a.id, T0 + 2_000, "no PUBACK", true)?,
                "{engine}"
            );
            assert_eq!(
                commands::get(db, a.id)?.unwrap().status,
                CommandStatus::Failed,
                "{engine}"
            );
            assert!(
                !commands::record_attempt(db, a.id, T0 + 3_000, "again", true)?,
                "{engine}"
            );
            assert_eq!(
                commands::due(db, T0 + 100_000, 10)?,
                (vec![], 0),
                "{engine}"
            );
            assert!(matches!(
                answer("uitd-01", &a.reference, ev, T0 + 3_000)?,
                Answer::Matched { .. }
            ));
            Ok(())
        })
        .unwrap();
    }
}

#[test]
fn a_duty_check_ends_answered_or_unanswered_per_transmitter_alike() {
    for mut s in engines("duty_checks") {
        let engine = s.name();
        let deadline = T0 + 600_000;
        let (check, other, one, two) = s
            .tx(|db| {
                let check = duty_checks::insert(
                    db,
                    "cr-1",
                    duty_checks::Reason::Scheduled,
                    Some(T0),
                    T0,
                    deadline,
                    "firewatch",
                )?;
                let other = duty_checks::insert(
                    db,
                    "cr-2",
                    duty_checks::Reason::OnDemand,
                    None,
                    T0 + 10,
                    deadline + 10,
                    "wang",
                )?;
                let one = commands::insert(db, &duty_check("uitd-01"), T0)?;
                let two = commands::insert(db, &duty_check("uitd-02"), T0)?;
                let three = commands::insert(db, &duty_check("uitd-03"), T0 + 10)?;
                duty_checks::add_command(db, check, one.id, "uitd-01", "bsy-0012", deadline)?;
                duty_checks::add_command(db, check, two.id, "uitd-02", "bsy-0012", deadline)?;
                duty_checks::add_command(
                    db,
                    other,
                    three.id,
                    "uitd-03",
                    "bsy-0012",
                    deadline + 10,
                )?;
                // Answered as a command only (as an older store did): not unanswered.
                commands::answer(
                    db,
                    "uitd-03",
                    &three.reference,
                    "duty_check_answer",
                    T0 + 50,
                )?;
                Ok((check, other, one, two))
            })
            .unwrap();
        s.tx(|db| {
            let v = duty_checks::get(db, check)?.unwrap();
            assert_eq!(
                (v["status"].as_str(), v["waiting"].as_i64()),
                (Some("waiting"), Some(2)),
                "{engine}"
            );
            assert_eq!(v["scheduled_for"], rfc3339(T0), "{engine}");
            let r = commands::answer(
                db,
                "uitd-01",
                &one.reference,
                "duty_check_answer",
                T0 + 700_000,
            )?;
            assert_eq!(
                r,
                Answer::Matched {
                    id: one.id,
                    delay_ms: 700_000
                },
                "{engine}"
            );
            assert_eq!(
                duty_checks::answered(db, one.id)?,
                Some(("uitd-01".into(), "bsy-0012".into())),
                "{engine}"
            );
            assert_eq!(duty_checks::answered(db, two.id + 100)?, None, "{engine}");
            assert!(
                duty_checks::take_unanswered(db, deadline - 1, 10)?.is_empty(),
                "{engine}"
            );
            let un = duty_checks::take_unanswered(db, deadline + 10, 10)?;
            assert_eq!(un.len(), 1, "{engine}: {un:?}");
            assert_eq!(
                (
                    un[0].command_id,
                    un[0].check_id,
                    un[0].device.as_str(),
                    un[0].reference.as_str()
                ),
                (two.id, check, "uitd-02", two.reference.as_str()),
                "{engine}"
            );
            assert_eq!(
                (un[0].created_at, un[0].deadline_at),
                (T0, deadline),
                "{engine}"
            );
            assert!(
                duty_checks::take_unanswered(db, deadline + 20, 10)?.is_empty(),
                "{engine}: once"
            );

            let v = duty_checks::get(db, check)?.unwrap();
            assert_eq!(v["id"], duty_checks::check_id(check), "{engine}");
            assert_eq!(
                (
                    v["status"].as_str(),
                    v["control_room"].as_str(),
                    v["reason"].as_str()
                ),
                (Some("unanswered"), Some("cr-1"), Some("scheduled"))
            );
            assert_eq!(
                (
                    v["answered"].as_i64(),
                    v["unanswered"].as_i64(),
                    v["waiting"].as_i64()
                ),
                (Some(1), Some(1), Some(0))
            );
            let t = v["transmitters"].as_array().unwrap();
            assert_eq!(
                (t[0]["status"].as_str(), t[0]["late"].as_bool()),
                (Some("answered"), Some(true)),
                "{engine}"
            );
            assert_eq!(t[0]["answer_delay_ms"], 700_000, "{engine}");
            assert_eq!(t[1]["status"], "unanswered", "{engine}");
            assert_eq!(t[1]["unanswered_at"], rfc3339(deadline + 10), "{engine}");
            let o = duty_checks::get(db, other)?.unwrap();
            assert_eq!(
                (o["status"].as_str(), o["scheduled_for"].is_null()),
                (Some("answered"), true),
                "{engine}"
            );
            let ids = |v: Vec<Value>| {
                v.into_iter()
                    .map(|v| v["id"].as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
            };
            let (c, o) = (duty_checks::check_id(check), duty_checks::check_id(other));
            assert_eq!(
                ids(duty_checks::list(db, None, 10)?),
                [o.clone(), c.clone()],
                "{engine}"
            );
            assert_eq!(
                ids(duty_checks::list(db, Some("cr-1"), 10)?),
                [c],
                "{engine}"
            );
            assert_eq!(ids(duty_checks::list(db, None, 1)?), [o], "{engine}");
            assert_eq!(duty_checks::get(db, other + 100)?, None, "{engine}");

            assert_eq!(duty_checks::last_scheduled(db, "cr-1")?, None, "{engine}");
            duty_checks::set_last_scheduled(db, "cr-1", T0)?;
            duty_checks::set_last_scheduled(db, "cr-1", T0 + 3_600_000)?;
            duty_checks::set_last_scheduled(db, "cr-2", T0)?;
            assert_eq!(
                duty_checks::last_scheduled(db, "cr-1")?,
                Some(T0 + 3_600_000),
                "{engine}"
            );
            Ok(())
        })
        .unwrap();
    }
}

#[test]
fn duty_overrides_are_stored_ended_once_and_loaded_by_their_end_alike() {
    let o = Override {
        id: 0,
        room: "cr".into(),
        shift: Some("night".into()),
        from: 1_000,
        until: 5_000,
        replace: "p1".into(),
        with: None,
        by: "lead".into(),
        note: Some("病假".into()),
        created_at: 900,
        ended_at: None,
    };
    for mut s in engines("overrides") {
        let engine = s.name();
        s.tx(|db| {
            let a = overrides::insert(db, &o)?;
            let b = overrides::insert(
                db,
                &Override {
                    until: 9_000,
                    with: Some("p2".into()),
                    shift: None,
                    ..o.clone()
                },
            )?;
            assert!(a.id > 0 && b.id > a.id, "{engine}");
            assert_eq!(overrides::get(db, a.id)?.as_ref(), Some(&a), "{engine}");
            assert_eq!(overrides::get(db, b.id)?.as_ref(), Some(&b), "{engine}");
            assert_eq!(
                overrides::load(db, 4_000)?,
                [a.clone(), b.clone()],
                "{engine}"
            );
            assert!(overrides::end(db, b.id, 3_000)?, "{engine}");
            assert!(!overrides::end(db, b.id, 3_500)?, "{engine}: already ended");
            assert!(
                !overrides::end(db, b.id + 100, 3_500)?,
                "{engine}: no such override"
            );
            assert!(
                !overrides::end(db, a.id, 6_000)?,
                "{engine}: over by itself"
            );
            assert_eq!(
                overrides::get(db, b.id)?.unwrap().ended_at,
                Some(3_000),
                "{engine}"
            );
            assert_eq!(overrides::load(db, 2_999)?.len(), 2, "{engine}");
            assert_eq!(
                overrides::load(db, 4_000)?,
                std::slice::from_ref(&a),
                "{engine}"
            );
            assert!(overrides::load(db, 5_000)?.is_empty(), "{engine}");
            Ok(())
        })
        .unwrap();
    }
}

fn manager(name: &str) -> User {
    User {
        name: name.to_owned(),
        display: "王芳".to_owned(),
        role: Role::Manager,
        buildings: ["b-001".to_owned(), "b-002".to_owned()].into(),
        disabled: false,
        created_at: 1_000,
    }
}

#[test]
fn users_sessions_tokens_and_the_audit_trail_read_back_alike() {
    for mut s in engines("accounts") {
        let engine = s.name();
        let wang = manager("wang");
        let admin = User {
            role: Role::Admin,
            buildings: Default::default(),
            display: "管理员".into(),
            ..manager("admin")
        };
        s.tx(|db| {
            assert!(accounts::insert_user(db, &wang, "$argon2id$x")?, "{engine}");
            assert!(
                !accounts::insert_user(db, &wang, "$argon2id$y")?,
                "{engine}: the name is taken"
            );
            assert!(
                accounts::insert_user(db, &admin, "$argon2id$a")?,
                "{engine}"
            );
            assert_eq!(
                accounts::user(db, "wang")?.as_ref(),
                Some(&wang),
                "{engine}"
            );
            assert_eq!(accounts::user(db, "li")?, None, "{engine}");
            let (_, phc) = accounts::user_with_password(db, "wang")?.unwrap();
            assert_eq!(
                phc, "$argon2id$x",
                "{engine}: the first insert's hash stays"
            );
            assert_eq!(
                accounts::users(db)?,
                [admin.clone(), wang.clone()],
                "{engine}: by name"
            );
            assert_eq!(accounts::count_users(db)?, 2, "{engine}");
            Ok(())
        })
        .unwrap();
        let d = token::digest("fws_secret");
        s.tx(|db| {
            accounts::insert_session(db, &d, "wang", "csrf-1", 1_000, 2_000)?;
            let (u, csrf) = accounts::session(db, &d, 1_999)?.unwrap();
            assert_eq!(
                (u.name.as_str(), csrf.as_str(), u.role),
                ("wang", "csrf-1", Role::Manager),
                "{engine}"
            );
            assert_eq!(u.buildings, wang.buildings, "{engine}");
            assert_eq!(accounts::session(db, &d, 2_000)?, None, "{engine}: expired");
            assert_eq!(accounts::session(db, "other", 1_500)?, None, "{engine}");
            // Disabling the user ends the session at once; a new password ends them too.
            assert!(accounts::set_disabled_in(db, "wang", true)?, "{engine}");
            assert!(accounts::user(db, "wang")?.unwrap().disabled, "{engine}");
            assert_eq!(accounts::session(db, &d, 1_500)?, None, "{engine}");
            assert!(accounts::set_disabled_in(db, "wang", false)?, "{engine}");
            assert!(
                !accounts::set_disabled_in(db, "li", true)?,
                "{engine}: no such user"
            );
            accounts::insert_session(db, &d, "wang", "csrf-2", 1_000, 9_000)?;
            assert!(accounts::session(db, &d, 1_500)?.is_some(), "{engine}");
            assert!(
                accounts::set_password_in(db, "wang", "$argon2id$z")?,
                "{engine}"
            );
            assert!(
                !accounts::set_password_in(db, "li", "$argon2id$z")?,
                "{engine}"
            );
            assert_eq!(
                accounts::user_with_password(db, "wang")?.unwrap().1,
                "$argon2id$z"
            );
            assert_eq!(accounts::session(db, &d, 1_500)?, None, "{engine}");
            accounts::insert_session(db, &d, "wang", "csrf-3", 1_000, 3_000)?;
            accounts::insert_session(db, "other", "admin", "csrf-4", 1_000, 8_000)?;
            assert_eq!(accounts::prune_sessions(db, 3_000)?, 1, "{engine}");
            assert!(!accounts::delete_session(db, &d)?, "{engine}: pruned");
            assert!(accounts::delete_session(db, "other")?, "{engine}");
            Ok(())
        })
        .unwrap();
        s.tx(|db| {
            let t = token::digest("fwt_secret");
            let id = accounts::insert_token(db, &t, "city-platform", "wang", 5)?;
            let other = accounts::insert_token(db, &token::digest("fwt_2"), "bms", "admin", 6)?;
            assert!(other > id, "{engine}");
            assert_eq!(
                accounts::token_user(db, &t)?.map(|u| u.name),
                Some("wang".into()),
                "{engine}"
            );
            accounts::set_disabled_in(db, "wang", true)?;
            assert_eq!(
                accounts::token_user(db, &t)?,
                None,
                "{engine}: user disabled"
            );
            accounts::set_disabled_in(db, "wang", false)?;
            assert!(accounts::revoke_token(db, id, 9)?, "{engine}");
            assert!(!accounts::revoke_token(db, id, 10)?, "{engine}: again");
            assert_eq!(accounts::token_user(db, &t)?, None, "{engine}: revoked");
            let listed = accounts::tokens(db)?;
            assert_eq!(
                listed.iter().map(|t| t.id).collect::<Vec<_>>(),
                [other, id],
                "{engine}"
            );
            assert_eq!(
                (listed[1].label.as_str(), listed[1].user.as_str()),
                ("city-platform", "wang")
            );
            assert_eq!(
                (
                    listed[1].created_at,
                    listed[1].revoked_at,
                    listed[0].revoked_at
                ),
                (5, Some(9), None)
            );

            let entry = |at, actor: &str, status| AuditEntry {
                id: 0,
                at,
                actor: actor.into(),
                via: "session".into(),
                role: (actor != "nobody").then(|| "manager".to_string()),
                action: "POST /api/v1/alerts/{id}/ack".into(),
                target: "/api/v1/alerts/a-000001/ack".into(),
                status,
                addr: Some("10.0.0.9".into()),
            };
            let e1 = accounts::insert_audit(db, &entry(100, "wang", 200))?;
            let e2 = accounts::insert_audit(db, &entry(200, "nobody", 401))?;
            let e3 = accounts::insert_audit(db, &entry(300, "wang", 409))?;
            let ids = |v: Vec<AuditEntry>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
            assert_eq!(
                ids(accounts::audit(db, None, None, 10)?),
                [e3, e2, e1],
                "{engine}"
            );
            assert_eq!(
                ids(accounts::audit(db, Some("wang"), None, 10)?),
                [e3, e1],
                "{engine}"
            );
            assert_eq!(
                ids(accounts::audit(db, Some("wang"), Some(e3), 10)?),
                [e1],
                "{engine}"
            );
            assert_eq!(
                ids(accounts::audit(db, None, Some(e3), 1)?),
                [e2],
                "{engine}"
            );
            let got = accounts::audit(db, Some("nobody"), None, 10)?;
            assert_eq!(
                got,
                [AuditEntry {
                    id: e2,
                    ..entry(200, "nobody", 401)
                }],
                "{engine}"
            );
            Ok(())
        })
        .unwrap();
    }
}

#[test]
fn rollups_merge_in_parts_once_and_serve_the_device_history_alike() {
    const H: i64 = 3_600_000;
    let base = 10 * H;
    let range = |device: &str, limit: u32| Range {
        device: device.into(),
        metric: None,
        since: base,
        until: base + H - 1,
        limit,
    };
    for mut s in engines("rollups") {
        let engine = s.name();
        s.tx(|db| {
            // wp-1: 12 readings, one every 100 s: four 5-minute buckets of three.
            for i in 0..12 {
                store::insert_reading(
                    db,
                    base + i * 100_000,
                    "wp-1",
                    "pressure_mpa",
                    None,
                    0.20 + 0.01 * i as f64,
                )?;
            }
            for (i, v) in [1.0, 2.0, 3.0].into_iter().enumerate() {
                store::insert_reading(
                    db,
                    base + 10_000 * (i as i64 + 1),
                    "el-1",
                    "current_a",
                    Some("L1"),
                    v,
                )?;
            }
            Ok(())
        })
        .unwrap();
        let at = s.tx(|db| rollups::position(db)).unwrap();
        assert_eq!(at, Position::default(), "{engine}");
        let (mut batch, skipped, read) = s.tx(|db| rollups::read_batch(db, at, 1_000)).unwrap();
        assert_eq!(
            (read, batch.to, batch.readings, skipped),
            (15, 15, 15, vec![]),
            "{engine}"
        );
        // wp-1: 4 + 1 + 1 buckets, el-1: 1 + 1 + 1.
        assert_eq!(batch.deltas.len(), 9, "{engine}");
        assert_eq!(
            s.tx(|db| rollups::merge(db, &mut batch, 4)).unwrap(),
            Merged::Part,
            "{engine}"
        );
        let at = s.tx(|db| rollups::position(db)).unwrap();
        assert_eq!(
            at,
            Position {
                cursor: 0,
                pending: Some((15, 4))
            },
            "{engine}"
        );
        // Cut short: read again from the position, the same batch goes on where it stood.
        let (mut again, _, read) = s.tx(|db| rollups::read_batch(db, at, 1_000)).unwrap();
        assert_eq!(
            (read, again.merged, again.deltas.len()),
            (15, 4, 9),
            "{engine}"
        );
        let mut fresh = s
            .tx(|db| rollups::read_batch(db, Position::default(), 1_000))
            .unwrap()
            .0;
        assert_eq!(
            s.tx(|db| rollups::merge(db, &mut fresh, 100)).unwrap(),
            Merged::Stale,
            "{engine}"
        );
        assert_eq!(
            s.tx(|db| rollups::merge(db, &mut again, 4)).unwrap(),
            Merged::Part,
            "{engine}"
        );
        assert_eq!(
            s.tx(|db| rollups::merge(db, &mut again, 4)).unwrap(),
            Merged::Done,
            "{engine}"
        );
        assert_eq!(
            s.tx(|db| rollups::merge(db, &mut batch, 4)).unwrap(),
            Merged::Stale,
            "{engine}"
        );

        s.tx(|db| {
            assert_eq!(rollups::cursor(db)?, 15, "{engine}");
            assert_eq!(
                rollups::position(db)?,
                Position {
                    cursor: 15,
                    pending: None
                },
                "{engine}"
            );
            assert_eq!(rollups::backlog(db)?, (15, 0), "{engine}");
            let five = rollups::buckets(db, Step::FiveMinutes, &range("wp-1", 100))?;
            assert_eq!(
                five.iter().map(|b| b.ts).collect::<Vec<_>>(),
                [base, base + 300_000, base + 600_000, base + 900_000]
            );
            assert!(five
                .iter()
                .all(|b| b.agg.count == 3 && b.channel.is_none() && b.metric == "pressure_mpa"));
            assert_eq!((five[0].agg.min, five[0].agg.max), (0.20, 0.22), "{engine}");
            assert!(
                (five[0].agg.sum - 0.63).abs() < 1e-9,
                "{engine}: {}",
                five[0].agg.sum
            );
            let hour = rollups::buckets(db, Step::Hour, &range("wp-1", 100))?;
            assert_eq!(hour.len(), 1, "{engine}");
            assert_eq!(
                (
                    hour[0].ts,
                    hour[0].agg.count,
                    hour[0].agg.min,
                    hour[0].agg.max
                ),
                (base, 12, 0.20, 0.31)
            );
            let day = rollups::buckets(db, Step::Day, &range("el-1", 100))?;
            assert_eq!(day.len(), 1, "{engine}");
            assert_eq!(
                (day[0].ts, day[0].channel.as_deref(), day[0].agg.count),
                (0, Some("L1"), 3)
            );
            assert_eq!(
                (day[0].agg.min, day[0].agg.max, day[0].agg.sum),
                (1.0, 3.0, 6.0),
                "{engine}"
            );
            let mut n = 0;
            assert_eq!(
                rollups::each_bucket(db, Step::FiveMinutes, &range("wp-1", 2), |_| n += 1)?,
                2
            );
            assert_eq!(n, 2, "{engine}");
            let only = Range {
                metric: Some("nope".into()),
                ..range("wp-1", 100)
            };
            assert!(
                rollups::buckets(db, Step::Hour, &only)?.is_empty(),
                "{engine}"
            );

            let raw = rollups::raw(db, &range("el-1", 100))?;
            assert_eq!(raw.len(), 3, "{engine}");
            assert_eq!(
                (
                    raw[0].ts,
                    raw[0].metric.as_str(),
                    raw[0].channel.as_deref(),
                    raw[0].value
                ),
                (base + 10_000, "current_a", Some("L1"), 1.0)
            );
            assert!(rollups::raw(db, &only)?.is_empty(), "{engine}");
            let mut sum = 0.0;
            assert_eq!(
                rollups::each_raw(db, &range("wp-1", 5), |r| sum += r.value)?,
                5,
                "{engine}"
            );
            assert!((sum - 1.10).abs() < 1e-9, "{engine}: {sum}");

            // Raw while it fits and is whole, else the finest step that fits.
            assert_eq!(
                rollups::auto_step(db, &range("wp-1", 100))?,
                None,
                "{engine}"
            );
            assert_eq!(
                rollups::auto_step(db, &range("wp-1", 5))?,
                Some(Step::FiveMinutes),
                "{engine}"
            );
            assert_eq!(
                rollups::auto_step(db, &range("wp-1", 3))?,
                Some(Step::Hour),
                "{engine}"
            );
            assert_eq!(
                rollups::auto_step(db, &range("wp-1", 0))?,
                Some(Step::Day),
                "{engine}"
            );
            // The first bucket's raw readings are gone: the history comes from the rollups.
            assert_eq!(
                store::prune_readings(db, base + 300_000, 100, None)?,
                3,
                "{engine}"
            );
            assert_eq!(
                rollups::auto_step(db, &range("wp-1", 100))?,
                Some(Step::FiveMinutes),
                "{engine}"
            );

            store::insert_reading(db, 1, "wp-1", "pressure_mpa", None, 0.5)?;
            assert_eq!(rollups::backlog(db)?, (15, 1), "{engine}");
            // Retention, in chunks.
            // Before base + 5 min: both devices' first 5m, hour and day buckets.
            assert_eq!(rollups::prune(db, base + 300_000, 100)?, 6, "{engine}");
            let left = rollups::buckets(db, Step::FiveMinutes, &range("wp-1", 100))?;
            assert_eq!(left.len(), 3, "{engine}");
            assert!(
                rollups::buckets(db, Step::Hour, &range("wp-1", 100))?.is_empty(),
                "{engine}"
            );
            assert_eq!(rollups::prune(db, i64::MAX, 2)?, 2, "{engine}");
            assert_eq!(rollups::prune(db, i64::MAX, 100)?, 1, "{engine}");
            assert_eq!(rollups::prune(db, i64::MAX, 100)?, 0, "{engine}");
            Ok(())
        })
        .unwrap();
    }
}

/// Rows due at the same instant come in the order of their ids on both engines (SQLite reads
/// them through an index on the time, in rowid order within a time; PostgreSQL, without a
/// tie-break, in the order the rows lie in the table, where an updated row moves to the end).
#[test]
fn timers_due_at_the_same_instant_come_in_id_order_alike() {
    for mut s in engines("ties") {
        let engine = s.name();
        s.tx(|db| {
            for alert in [30, 20, 40, 10] {
                store::escalations::save(db, alert, &json!({"step": 0}), Some(5_000))?;
            }
            let due: Vec<(i64, Value)> = store::escalations::due(db, 5_000, 3)?;
            let due: Vec<i64> = due.into_iter().map(|(a, _)| a).collect();
            assert_eq!(due, [10, 20, 30], "{engine}");

            let new = |description| New {
                alert: None,
                building: "b1",
                rule: None,
                description,
                photo_url: None,
                by: "王工",
                auto: false,
                deadline_at: 9_000,
            };
            let a = workorders::insert(db, &new("安全出口上锁"), 1_000)?;
            let b = workorders::insert(db, &new("灭火器过期"), 1_000)?;
            // Rectified and sent back: open again, as it was, with a row written since.
            workorders::step(db, a.id, WoStep::Rectify, "李经理", "已开锁", None, 2_000)
                .map_err(wo)?;
            workorders::step(db, a.id, WoStep::SendBack, "张班长", "仍上锁", None, 3_000)
                .map_err(wo)?;
            let due = workorders::due_overdue(db, 9_000, 1)?;
            assert_eq!(
                due.iter().map(|w| w.id).collect::<Vec<_>>(),
                [a.id],
                "{engine}"
            );
            let due = workorders::due_overdue(db, 9_000, 10)?;
            assert_eq!(
                due.iter().map(|w| w.id).collect::<Vec<_>>(),
                [a.id, b.id],
                "{engine}"
            );

            let deadline = T0 + 600_000;
            let check = duty_checks::insert(
                db,
                "cr-1",
                duty_checks::Reason::OnDemand,
                None,
                T0,
                deadline,
                "wang",
            )?;
            let one = commands::insert(db, &duty_check("uitd-01"), T0)?;
            let two = commands::insert(db, &duty_check("uitd-02"), T0)?;
            duty_checks::add_command(db, check, two.id, "uitd-02", "bsy-0012", deadline)?;
            duty_checks::add_command(db, check, one.id, "uitd-01", "bsy-0012", deadline)?;
            let un = duty_checks::take_unanswered(db, deadline, 1)?;
            assert_eq!(
                un.iter().map(|u| u.command_id).collect::<Vec<_>>(),
                [one.id],
                "{engine}"
            );
            Ok(())
        })
        .unwrap();
    }
}
