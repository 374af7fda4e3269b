//! The store's functions on both of its engines: the same calls, the same answers, on SQLite
//! (the embedded store) and on a real PostgreSQL (`FW_TEST_POSTGRES_URL`, started by
//! scripts/test-services.sh; each test makes a database of its own in it).

use firewatch::model::alert::{Change, Classification, Status, Transition};
use firewatch::model::notification::{ChannelKind, Event, Look};
use firewatch::model::{Kind, Severity};
use firewatch::store::alerts::{self, Action, ActionError, Alert, Applied, Filter, Routed};
use firewatch::store::notifications::{self, Delivery, Outcome};
use firewatch::store::sql::{Db, Pg};
use firewatch::store::{self, StoreError};
use firewatch::store::{changes, escalations, frames};
use serde_json::json;

/// Records by key, as the store reads them back.
type Records = Vec<(String, serde_json::Value)>;

/// One engine's store, made fresh for a test.
pub(crate) enum Store {
    Sqlite {
        /// Removed when the store is dropped.
        _dir: tempfile::TempDir,
        conn: rusqlite::Connection,
    },
    Pg(Box<Pg>),
}

impl Store {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Store::Sqlite { .. } => "sqlite",
            Store::Pg(_) => "postgres",
        }
    }

    /// Runs `f` in one transaction, committed when it returns `Ok`.
    pub(crate) fn tx<T>(
        &mut self,
        f: impl FnOnce(&dyn Db) -> store::Result<T>,
    ) -> store::Result<T> {
        match self {
            Store::Sqlite { conn, .. } => {
                let tx = conn.transaction()?;
                let v = f(&tx)?;
                tx.commit()?;
                Ok(v)
            }
            Store::Pg(p) => p.transaction(|db| f(db)),
        }
    }
}

/// A fresh database named after the test in the test server, migrated.
fn postgres(test: &str) -> Pg {
    let base = std::env::var("FW_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!("FW_TEST_POSTGRES_URL is not set: run scripts/test.sh, or scripts/test-services.sh start DIR and source DIR/env")
    });
    let name = format!("fw_{test}_{}", std::process::id());
    let mut admin = postgres::Client::connect(&base, postgres::NoTls).expect("test PostgreSQL");
    // One statement each: several in one string run as one transaction, which these refuse.
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .expect("drop an old test database");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create the test database");
    let mut url = url::Url::parse(&base).expect("FW_TEST_POSTGRES_URL is a URL");
    url.set_path(&name);
    store::pg::open(url.as_str()).expect("open and migrate the PostgreSQL store")
}

/// SQLite and PostgreSQL stores, both fresh.
pub(crate) fn engines(test: &str) -> Vec<Store> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let conn = store::open_writer(dir.path(), "normal").expect("open the SQLite store");
    vec![
        Store::Sqlite { _dir: dir, conn },
        Store::Pg(Box::new(postgres(test))),
    ]
}

#[test]
fn migrations_apply_once_and_a_newer_schema_is_refused() {
    let pg = postgres("migrations");
    let newest = store::pg::MIGRATIONS.last().map(|m| m.version).unwrap();
    assert_eq!(store::pg::version(&pg).unwrap(), newest);
    // A second instance starting on the same database has nothing to do.
    assert_eq!(store::pg::migrate(&pg).unwrap(), Vec::<i64>::new());
    // A database a newer firewatch migrated is not written by this one.
    pg.exec(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, 'future', 0)",
        firewatch::args![newest + 1],
    )
    .unwrap();
    let err = store::pg::migrate(&pg).unwrap_err();
    assert!(matches!(err, StoreError::Schema(_)), "{err}");
    assert!(err.to_string().contains("upgrade firewatch"), "{err}");
}

#[test]
fn device_state_meta_and_the_reading_spool_read_back_alike() {
    for mut s in engines("state") {
        let engine = s.name();
        s.tx(|db| {
            store::set_meta(db, "tsdb_cursor", 4)?;
            store::set_meta(db, "tsdb_cursor", 5)?;
            store::set_meta(db, "gone", 1)?;
            store::delete_meta(db, "gone")?;
            store::upsert_device(
                db,
                "wp-1",
                "b1",
                Kind::WaterPressure,
                &json!({"online": false}),
            )?;
            store::upsert_device(
                db,
                "wp-1",
                "b1",
                Kind::WaterPressure,
                &json!({"online": true}),
            )?;
            store::upsert_device(db, "el-1", "b2", Kind::Electrical, &json!({"online": true}))?;
            store::save_cond(db, "low|wp-1", Some(&json!({"since": 1})))?;
            store::save_cond(db, "high|wp-1", Some(&json!({"since": 2})))?;
            store::save_cond::<serde_json::Value>(db, "low|wp-1", None)?;
            for i in 0..10 {
                store::insert_reading(
                    db,
                    1_000 + i,
                    "wp-1",
                    "pressure_mpa",
                    None,
                    0.25 + 0.01 * i as f64,
                )?;
            }
            store::insert_event(
                db,
                1_000,
                1_001,
                "el-1",
                "arc_fault",
                "active",
                Some("L1"),
                None,
                Some("{}"),
            )?;
            store::insert_rejected(
                db,
                1_002,
                "bad_json",
                "expected value",
                "fw/v1/b1/x/y/telemetry",
                b"\xff\x00{",
            )?;
            Ok(())
        })
        .unwrap();
        s.tx(|db| {
            assert_eq!(store::get_meta(db, "tsdb_cursor")?, Some(5), "{engine}");
            assert_eq!(store::get_meta(db, "gone")?, None, "{engine}");
            let b1: Vec<(String, serde_json::Value)> = store::device_records(db, Some("b1"))?;
            assert_eq!(
                b1,
                vec![("wp-1".to_string(), json!({"online": true}))],
                "{engine}"
            );
            let all: Vec<(String, serde_json::Value)> = store::device_records(db, None)?;
            assert_eq!(all.len(), 2, "{engine}");
            let one: Option<serde_json::Value> = store::device_record(db, "el-1")?;
            assert_eq!(one, Some(json!({"online": true})), "{engine}");
            let (conds, devices): (Records, Records) = store::load_state(db)?;
            assert_eq!(
                conds,
                vec![("high|wp-1".to_string(), json!({"since": 2}))],
                "{engine}"
            );
            assert_eq!(devices.len(), 2, "{engine}");
            let spool = store::spool_after(db, 0, 100)?;
            assert_eq!(spool.len(), 10, "{engine}");
            assert_eq!(
                (spool[0].id, spool[0].ts, spool[0].value),
                (1, 1_000, 0.25),
                "{engine}"
            );
            assert_eq!(
                (spool[9].building.as_str(), spool[9].kind.as_str()),
                ("b1", "water_pressure"),
                "{engine}"
            );
            assert_eq!(store::spool_after(db, 8, 100)?.len(), 2, "{engine}");
            // Past retention, but the time-series database has only the first four.
            assert_eq!(
                store::prune_readings(db, 1_000_000, 100, Some(4))?,
                4 + 1,
                "{engine}: 4 readings, 1 event"
            );
            assert_eq!(store::spool_after(db, 0, 100)?[0].id, 5, "{engine}");
            assert_eq!(store::max_reading_id(db)?, 10, "{engine}");
            let kept: Vec<u8> = (db as &dyn Db)
                .one("SELECT payload FROM rejected", firewatch::args![])?
                .unwrap();
            assert_eq!(
                kept, b"\xff\x00{",
                "{engine}: the payload's bytes as received"
            );
            Ok(())
        })
        .unwrap();
    }
}

pub(crate) fn fired(at: i64) -> Transition {
    Transition {
        change: Change::Fired,
        rule: "transmitter.fire_alarm".into(),
        building: "b1".into(),
        kind: Kind::Transmitter,
        device: "tx-1".into(),
        channel: Some("1-1-3".into()),
        severity: Severity::Critical,
        at,
        since: at,
        value: None,
        threshold: None,
        message: "火警: 3 号楼 1 层烟感".into(),
        pulse: false,
    }
}

pub(crate) fn duty() -> Routed {
    Routed {
        targets: vec![
            (ChannelKind::Email, "duty@b1.example".into()),
            (ChannelKind::Sms, "+8613800000000".into()),
        ],
        location: Some("3 号楼 1 层".into()),
        building_name: Some("滨江花园".into()),
        look: Look {
            tz: Some("Asia/Shanghai".into()),
            english: vec![],
        },
        quiet: false,
    }
}

#[test]
fn an_alert_goes_from_fired_to_closed_with_one_notification_per_key_on_both_engines() {
    let route = |_: &Alert, _: Event| duty();
    for mut s in engines("alerts") {
        let engine = s.name();
        let id = s
            .tx(|db| match alerts::apply(db, &fired(10_000), &route)? {
                Applied::Opened(id) => Ok(id),
                other => panic!("{engine}: {other:?}"),
            })
            .unwrap();
        // The same condition firing again opens nothing new.
        let again = s
            .tx(|db| alerts::apply(db, &fired(11_000), &route))
            .unwrap();
        assert_eq!(again, Applied::Nothing, "{engine}");
        // One open alert per (rule, device, channel) is the database's rule, not only the code's.
        let dup = s.tx(|db| {
            db.exec(
                "INSERT INTO alerts (rule, severity, building, kind, device, channel, active, status,
                 message, started_at, updated_at) VALUES ('transmitter.fire_alarm', 'critical', 'b1',
                 'transmitter', 'tx-1', '1-1-3', 1, 'open', 'twice', 1, 1)",
                firewatch::args![],
            )
        });
        assert!(
            dup.is_err(),
            "{engine}: a second open alert for one key was accepted"
        );

        let (due, queued, _) = s
            .tx(|db| notifications::due(db, ChannelKind::Email, 20_000, 10))
            .unwrap();
        assert_eq!((due.len(), queued), (1, 1), "{engine}");
        assert_eq!(due[0].event, Event::Fired, "{engine}");
        assert_eq!(due[0].target, "duty@b1.example", "{engine}");
        assert_eq!(due[0].snapshot["building_name"], "滨江花园", "{engine}");
        assert_eq!(due[0].tz.as_deref(), Some("Asia/Shanghai"), "{engine}");
        // Queuing the same transition again (a replayed batch) adds no second row.
        let a = s.tx(|db| alerts::get(db, id)).unwrap().unwrap();
        s.tx(|db| {
            let targets = duty().targets;
            notifications::enqueue(
                db,
                firewatch::model::notification::Subject::Alert(id),
                Event::Fired,
                1,
                notifications::Recipients {
                    targets: &targets,
                    look: &Look::default(),
                },
                &a.to_json(vec![]),
                12_000,
            )
        })
        .unwrap();
        let (_, queued, _) = s
            .tx(|db| notifications::due(db, ChannelKind::Email, 20_000, 10))
            .unwrap();
        assert_eq!(queued, 1, "{engine}: one notification per idempotency key");

        // The e-mail goes out; its outcome is recorded with the alert's history.
        let n = &due[0];
        s.tx(|db| {
            notifications::record_delivery(
                db,
                &Delivery {
                    id: n.id,
                    subject: n.subject,
                    key: n.key.clone(),
                    event: n.event,
                    channel: n.channel,
                    target: n.target.clone(),
                    attempt: 1,
                    at: 13_000,
                    outcome: Outcome::Sent,
                    digest: None,
                },
            )
        })
        .unwrap();
        let (_, queued, _) = s
            .tx(|db| notifications::due(db, ChannelKind::Email, 20_000, 10))
            .unwrap();
        assert_eq!(queued, 0, "{engine}");

        let ack = Action::Ack {
            by: "李工".into(),
            note: Some("已派人到场".into()),
        };
        let acked = s
            .tx(|db| alerts::act(db, id, &ack, 14_000, &route).map_err(store_error))
            .unwrap();
        assert_eq!(acked.status, Status::Acknowledged, "{engine}");
        assert_eq!(acked.acknowledged_by.as_deref(), Some("李工"), "{engine}");
        let twice = s
            .tx(|db| Ok(alerts::act(db, id, &ack, 15_000, &route)))
            .unwrap();
        assert!(
            matches!(twice, Err(ActionError::Conflict(_))),
            "{engine}: {twice:?}"
        );
        // Those told of the alert learn who took it.
        let (due, _, _) = s
            .tx(|db| notifications::due(db, ChannelKind::Sms, 20_000, 10))
            .unwrap();
        let events: Vec<Event> = due.iter().map(|n| n.event).collect();
        assert_eq!(events, vec![Event::Fired, Event::Acknowledged], "{engine}");

        // A critical alert closes only with a note of what was found.
        let bare = Action::Close {
            by: "李工".into(),
            classification: Classification::FalseAlarm,
            note: None,
        };
        let refused = s
            .tx(|db| Ok(alerts::act(db, id, &bare, 16_000, &route)))
            .unwrap();
        assert!(
            matches!(refused, Err(ActionError::Invalid(_))),
            "{engine}: {refused:?}"
        );
        let close = Action::Close {
            by: "李工".into(),
            classification: Classification::FalseAlarm,
            note: Some("厨房油烟, 非火情".into()),
        };
        let closed = s
            .tx(|db| alerts::act(db, id, &close, 17_000, &route).map_err(store_error))
            .unwrap();
        assert_eq!(closed.status, Status::Closed, "{engine}");

        s.tx(|db| {
            let history: Vec<String> = alerts::history_of(db, id)?
                .into_iter()
                .map(|h| h.what)
                .collect();
            assert_eq!(
                history,
                ["fired", "notified", "acknowledged", "closed"],
                "{engine}"
            );
            let notes = alerts::notes_for(db, &[id])?;
            assert_eq!(
                notes[&id].len(),
                2,
                "{engine}: the acknowledgement's and the close's notes"
            );
            let list = alerts::list(
                db,
                &Filter {
                    status: Some(Status::Closed),
                    building: Some("b1".into()),
                    limit: 10,
                    ..Filter::default()
                },
            )?;
            assert_eq!(
                list.iter().map(|a| a.id).collect::<Vec<_>>(),
                vec![id],
                "{engine}"
            );
            let (false_alarms, total) =
                alerts::closed_as(db, "b1", Classification::FalseAlarm, 0, i64::MAX, 10)?;
            assert_eq!((false_alarms.len(), total), (1, 1), "{engine}");
            assert!(alerts::open_counts(db)?.is_empty(), "{engine}");
            Ok(())
        })
        .unwrap();
        // Closed, the key is free: the next fire alarm there is a new alert.
        let next = s
            .tx(|db| alerts::apply(db, &fired(18_000), &route))
            .unwrap();
        assert!(
            matches!(next, Applied::Opened(n) if n > id),
            "{engine}: {next:?}"
        );
        let open = s.tx(|db| alerts::open_by_building(db)).unwrap();
        assert_eq!(open["b1"].count, 1, "{engine}");
        assert_eq!(open["b1"].worst, Some(Severity::Critical), "{engine}");
    }
}

fn store_error(e: ActionError) -> StoreError {
    match e {
        ActionError::Store(e) => e,
        other => StoreError::Corrupt {
            what: "action",
            err: other.to_string(),
        },
    }
}

/// A transition of `rule` at a device's point (building `b1`).
pub(crate) fn alarm(
    change: Change,
    rule: &str,
    kind: Kind,
    device: &str,
    channel: Option<&str>,
    severity: Severity,
    at: i64,
) -> Transition {
    Transition {
        change,
        rule: rule.into(),
        building: "b1".into(),
        kind,
        device: device.into(),
        channel: channel.map(Into::into),
        severity,
        at,
        since: at,
        value: None,
        threshold: None,
        message: format!("{rule} at {device}"),
        pulse: false,
    }
}

/// The id of a newly opened alert.
pub(crate) fn opened(db: &dyn Db, t: &Transition) -> store::Result<i64> {
    let route = |_: &Alert, _: Event| duty();
    match alerts::apply(db, t, &route)? {
        Applied::Opened(id) => Ok(id),
        other => panic!("{} did not open an alert: {other:?}", t.rule),
    }
}

#[test]
fn changes_are_numbered_read_after_an_id_and_pruned_oldest_first_alike() {
    for mut s in engines("changes") {
        let engine = s.name();
        let ids = s
            .tx(|db| {
                assert_eq!(
                    changes::span(db)?,
                    changes::Span::default(),
                    "{engine}: empty"
                );
                (0..10)
                    .map(|n| {
                        let b = if n % 2 == 0 { "b1" } else { "b2" };
                        changes::insert(db, 1_000 + n, "alert", b, &json!({"n": n}))
                    })
                    .collect::<store::Result<Vec<i64>>>()
            })
            .unwrap();
        assert!(
            ids.windows(2).all(|w| w[1] == w[0] + 1),
            "{engine}: {ids:?}"
        );
        s.tx(|db| {
            let after = changes::after(db, ids[3], None, 100)?;
            assert_eq!(
                after.iter().map(|c| c.id).collect::<Vec<_>>(),
                ids[4..],
                "{engine}"
            );
            assert_eq!(
                (after[0].at, after[0].kind.as_str()),
                (1_004, "alert"),
                "{engine}"
            );
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&after[0].body).unwrap(),
                json!({"n": 4})
            );
            let b1 = changes::after(db, 0, Some("b1"), 100)?;
            assert_eq!(b1.len(), 5, "{engine}");
            assert!(b1.iter().all(|c| c.building == "b1"), "{engine}");
            assert_eq!(changes::after(db, 0, None, 3)?.len(), 3, "{engine}");
            assert_eq!(changes::prune(db, 4)?, 6, "{engine}");
            let span = changes::span(db)?;
            assert_eq!((span.oldest, span.newest), (ids[6], ids[9]), "{engine}");
            // Ids keep growing after a prune, even when everything went.
            assert_eq!(changes::prune(db, 0)?, 4, "{engine}");
            let next = changes::insert(db, 2_000, "device", "b1", &1)?;
            assert!(next > ids[9], "{engine}: {next}");
            Ok(())
        })
        .unwrap();
    }
}

#[test]
fn escalation_timers_are_saved_due_in_order_and_stopped_alike() {
    for mut s in engines("escalations") {
        let engine = s.name();
        s.tx(|db| {
            escalations::save(db, 10, &json!({"step": 0}), Some(5_000))?;
            escalations::save(db, 11, &json!({"step": 0}), Some(3_000))?;
            escalations::save(db, 12, &json!({"step": 2}), Some(9_000))?;
            escalations::save(db, 10, &json!({"step": 1}), Some(7_000))?;
            assert_eq!(escalations::count(db)?, 3, "{engine}");
            let ten: Option<serde_json::Value> = escalations::get(db, 10)?;
            assert_eq!(ten, Some(json!({"step": 1})), "{engine}: saved over");
            let due: Vec<(i64, serde_json::Value)> = escalations::due(db, 7_000, 10)?;
            assert_eq!(
                due,
                [(11, json!({"step": 0})), (10, json!({"step": 1}))],
                "{engine}"
            );
            let first: Vec<(i64, serde_json::Value)> = escalations::due(db, 7_000, 1)?;
            assert_eq!(first.len(), 1, "{engine}");
            assert_eq!(first[0].0, 11, "{engine}");
            escalations::save(db, 11, &json!({"step": 0}), None)?;
            assert_eq!(escalations::count(db)?, 2, "{engine}");
            escalations::stop(db, 12)?;
            let gone: Option<serde_json::Value> = escalations::get(db, 12)?;
            assert_eq!((gone, escalations::count(db)?), (None, 1), "{engine}");
            Ok(())
        })
        .unwrap();
    }
}

#[test]
fn gb_frames_are_listed_newest_first_by_device_and_time_and_pruned_alike() {
    let frame = |at: i64, device: Option<&str>, direction: &'static str| frames::FrameRecord {
        at,
        device: device.map(Into::into),
        peer: "10.0.0.7:40123".into(),
        direction,
        hex: format!("4040{at:04X}2323"),
        note: device.is_none().then(|| "bad checksum".to_string()),
    };
    for mut s in engines("frames") {
        let engine = s.name();
        s.tx(|db| {
            let records = [
                frame(1_000, Some("gb-1"), "in"),
                frame(2_000, Some("gb-1"), "out"),
                frame(3_000, None, "in"),
                frame(4_000, Some("gb-2"), "in"),
                frame(5_000, Some("gb-1"), "in"),
            ];
            frames::insert(db, &records)?;
            let all = frames::list(db, None, None, 10)?;
            assert_eq!(all.len(), 5, "{engine}");
            assert!(
                all.windows(2).all(|w| w[0].0 > w[1].0),
                "{engine}: newest first"
            );
            assert_eq!(all[0].1, records[4], "{engine}");
            assert_eq!(all[2].1, records[2], "{engine}: no device, a note");
            let ats = |v: Vec<(i64, frames::FrameRecord)>| {
                v.into_iter().map(|(_, f)| f.at).collect::<Vec<_>>()
            };
            assert_eq!(
                ats(frames::list(db, Some("gb-1"), None, 10)?),
                [5_000, 2_000, 1_000],
                "{engine}"
            );
            assert_eq!(
                ats(frames::list(db, Some("gb-1"), Some(2_000), 10)?),
                [5_000, 2_000],
                "{engine}"
            );
            assert_eq!(
                ats(frames::list(db, None, Some(3_000), 10)?),
                [5_000, 4_000, 3_000],
                "{engine}"
            );
            assert_eq!(
                ats(frames::list(db, None, None, 2)?),
                [5_000, 4_000],
                "{engine}"
            );
            assert_eq!(all[3].1.direction, "out", "{engine}");
            assert_eq!(frames::prune(db, 3_000, 1)?, 1, "{engine}");
            assert_eq!(frames::prune(db, 3_000, 10)?, 1, "{engine}");
            assert_eq!(
                ats(frames::list(db, None, None, 10)?),
                [5_000, 4_000, 3_000],
                "{engine}"
            );
            Ok(())
        })
        .unwrap();
    }
}
