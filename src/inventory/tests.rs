#![allow(clippy::unwrap_used)]

use super::*;

/// Two buildings, computed by hand: `a` must have water pressure and a transmitter and has
/// three registered devices (one online, one offline, one never seen) plus one unregistered
/// device reporting; `b` must have electrical monitoring and has none registered.
#[test]
fn coverage_counts_what_is_required_registered_connected_and_online() {
    let reg = Registry::parse(
        r#"
[[building]]
id = "a"
name = "一号楼"
expected = { water_pressure = 2, transmitter = 1 }
required = ["water_pressure", "transmitter"]
[[building]]
id = "b"
expected = { electrical = 1 }
required = ["electrical"]
[[device]]
id = "wp-1"
building = "a"
kind = "water_pressure"
[[device]]
id = "wp-2"
building = "a"
kind = "water_pressure"
[[device]]
id = "tx-1"
building = "a"
kind = "transmitter"
"#,
    )
    .unwrap();
    let mut records = BTreeMap::new();
    let mut online = DeviceRecord::new("a", Kind::WaterPressure);
    online.last_seen = Some(1);
    records.insert("wp-1".to_owned(), online.clone());
    let mut offline = DeviceRecord::new("a", Kind::Transmitter);
    offline.last_seen = Some(1);
    offline.offline = true;
    records.insert("tx-1".to_owned(), offline);
    // Heard only through a retained message: not connected.
    records.insert(
        "wp-2".to_owned(),
        DeviceRecord::new("a", Kind::WaterPressure),
    );
    records.insert("cam-9".to_owned(), online);

    let c = coverage_of(&records, &reg, None);
    assert_eq!(c.buildings, 2);
    assert_eq!((c.registered, c.connected, c.online), (3, 2, 1));
    assert_eq!(c.connection_rate, Some(2.0 / 3.0));
    assert_eq!(c.online_rate, Some(1.0 / 3.0));
    assert_eq!((c.never_seen, c.unregistered), (1, 1));
    assert_eq!((c.complete, c.missing_kind), (0, 1));

    let a = &c.per_building[0];
    assert_eq!(a.building, "a");
    assert_eq!(a.required, [Kind::WaterPressure, Kind::Transmitter]);
    assert_eq!(a.never_seen, ["wp-2"]);
    assert!(a.missing_kinds.is_empty() && a.unconnected_kinds.is_empty());
    assert_eq!(
        a.kinds[&Kind::WaterPressure],
        KindCoverage {
            required: true,
            registered: 2,
            connected: 1,
            online: 1
        }
    );
    assert!(!a.complete, "wp-2 has never reported");
    let b = &c.per_building[1];
    assert_eq!(b.missing_kinds, [Kind::Electrical]);
    assert_eq!(b.connection_rate, None, "no registered device");

    let one = coverage_of(&records, &reg, Some("b"));
    assert_eq!(one.buildings, 1);
    assert_eq!(one.per_building[0].building, "b");

    let text = prometheus(&c);
    assert!(
        text.contains("firewatch_building_devices_online{building=\"a\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("firewatch_building_missing_kinds{building=\"b\"} 1\n"),
        "{text}"
    );
    assert!(
        !text.contains("firewatch_building_online_rate{building=\"b\"}"),
        "{text}"
    );
    assert!(
        text.contains("firewatch_coverage_connection_rate 0.66"),
        "{text}"
    );
}
