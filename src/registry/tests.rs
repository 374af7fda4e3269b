use super::csv::{export, merge, RowProblem};
use super::*;

const FULL: &str = r#"
strict = true

[required]
industrial = ["water_pressure", "electrical", "water_pressure"]

[[building]]
id = "bsy-0012"
name = "滨江大厦 12"
address = "12 Binjiang Road"
lat = 30.2084
lon = 120.2101
class = "residential"
height_m = 99.5
control_room = "cr-east"
manager = "p-zhang"
expected = { water_pressure = 2, transmitter = 1 }

[[building]]
id = "plant-3"
class = "industrial"

[[building]]
id = "annex"
class = "public_class1"
required = ["transmitter", "fire_lane", "transmitter"]

[[device]]
id = "wp-0012-01"
building = "bsy-0012"
kind = "water_pressure"
floor = "B1"
zone = "泵房"
installed = "2024-03-18"
interval_s = 1800
power = "battery"

[[device]]
id = "wl-0012-01"
building = "bsy-0012"
kind = "water_level"
floor = "roof"
location = "Roof fire water tank"
thresholds."water_level.low" = { raise = 1.2, clear = 1.4 }
"#;

fn full() -> Registry {
    Registry::parse(FULL).unwrap_or_else(|p| panic!("{p:?}"))
}

fn keys(p: &[Problem]) -> Vec<&str> {
    p.iter().map(|p| p.key.as_str()).collect()
}

#[test]
fn the_added_fields_load() {
    let r = full();
    let b = r.building("bsy-0012").unwrap();
    assert_eq!((b.lat, b.lon), (Some(30.2084), Some(120.2101)));
    assert_eq!(b.height_m, Some(99.5));
    assert_eq!(b.control_room.as_deref(), Some("cr-east"));
    assert_eq!(b.manager.as_deref(), Some("p-zhang"));
    let d = r.device("wp-0012-01").unwrap();
    assert_eq!(d.installed.as_deref(), Some("2024-03-18"));
    assert_eq!(
        (d.floor.as_deref(), d.zone.as_deref()),
        (Some("B1"), Some("泵房"))
    );
}

#[test]
fn a_location_is_derived_from_floor_and_zone_only_when_none_is_written() {
    let r = full();
    let derived = r.device("wp-0012-01").unwrap();
    assert_eq!(derived.location.as_deref(), Some("B1 泵房"));
    assert_eq!(derived.written_location(), None);
    let written = r.device("wl-0012-01").unwrap();
    assert_eq!(written.location.as_deref(), Some("Roof fire water tank"));
    assert_eq!(written.written_location(), Some("Roof fire water tank"));
    let only_zone = Registry::parse(
        "[[building]]\nid = \"b\"\n[[device]]\nid = \"d\"\nbuilding = \"b\"\nkind = \"fire_lane\"\nzone = \"北侧消防车道\"\n",
    )
    .unwrap();
    assert_eq!(
        only_zone.device("d").unwrap().location.as_deref(),
        Some("北侧消防车道")
    );
}

#[test]
fn bad_values_are_reported_each_with_its_key() {
    let text = r#"
[[building]]
id = "b1"
lat = 123.4
lon = 500
height_m = -3
control_room = "east room"
[[building]]
id = "b2"
lat = 30.0
[[device]]
id = "d1"
building = "b1"
kind = "water_level"
installed = "2024-13-01"
interval_s = 0
[[device]]
id = "d2"
building = "nowhere"
kind = "electrical"
manager = "x"
"#;
    // `manager` is a building field: unknown on a device, a TOML error before anything else.
    let p = Registry::parse(text).unwrap_err();
    assert_eq!(keys(&p), ["toml"], "{p:?}");
    let p = Registry::parse(&text.replace("manager = \"x\"\n", "")).unwrap_err();
    assert_eq!(
        keys(&p),
        [
            "building[0].lat",
            "building[0].lon",
            "building[0].height_m",
            "building[0].control_room",
            "building[1].lon",
            "device[0].installed",
            "device[0].interval_s",
            "device[1].building",
        ],
        "{p:?}"
    );
    assert_eq!(p[0].message, "123.4 is not a latitude (-90..90)");
    assert_eq!(p[4].message, "missing: give lat and lon together");
}

#[test]
fn required_kinds_follow_the_class_the_file_and_the_building() {
    let r = full();
    // Built-in default of a residential high-rise: all five kinds, sorted.
    assert_eq!(
        r.required_kinds("bsy-0012"),
        [
            Kind::WaterPressure,
            Kind::WaterLevel,
            Kind::Electrical,
            Kind::FireLane,
            Kind::Transmitter
        ]
    );
    // The file's [required] for industrial, deduplicated.
    assert_eq!(
        r.required_kinds("plant-3"),
        [Kind::WaterPressure, Kind::Electrical]
    );
    // The building's own list, sorted and deduplicated.
    assert_eq!(
        r.required_kinds("annex"),
        [Kind::FireLane, Kind::Transmitter]
    );
    // Not registered: unknown class, the four kinds every high-rise has.
    assert_eq!(
        r.required_kinds("elsewhere"),
        [
            Kind::WaterPressure,
            Kind::WaterLevel,
            Kind::Electrical,
            Kind::Transmitter
        ]
    );
    assert!(Registry::default()
        .required_kinds("x")
        .contains(&Kind::Transmitter));
}

#[test]
fn an_unknown_class_or_kind_in_required_is_an_error() {
    assert!(Registry::parse("[required]\noffice = [\"water_level\"]\n").is_err());
    assert!(Registry::parse("[required]\nresidential = [\"sprinkler\"]\n").is_err());
}

#[test]
fn toml_written_reads_back_to_the_same_registry() {
    let r = full();
    let text = r.to_toml().unwrap();
    assert!(
        !text.contains("B1 泵房"),
        "a derived location is not written:\n{text}"
    );
    let back = Registry::parse(&text).unwrap_or_else(|p| panic!("{p:?}\n{text}"));
    assert!(back.same_as(&r), "{text}");
    assert_eq!(r.diff(&back).devices.unchanged, 2);
}

#[test]
fn diff_counts_added_changed_unchanged_and_removed() {
    let old = full();
    let mut b = old.buildings.clone();
    b[0].name = Some("renamed".into());
    b.remove(1);
    b.push(BuildingEntry::new("new-1"));
    let new = Registry::from_entries(true, HashMap::new(), b, old.devices.clone()).unwrap();
    let c = old.diff(&new);
    assert_eq!(
        c.buildings,
        Counts {
            added: 1,
            changed: 1,
            unchanged: 1,
            removed: 1
        }
    );
    assert_eq!(c.devices.unchanged, 2);
}

fn no_check(_: &Registry) -> Vec<Problem> {
    Vec::new()
}

fn csv_merge(current: &Registry, csv: &str, replace: bool) -> Result<Registry, Vec<RowProblem>> {
    merge(current, csv.as_bytes(), replace, &no_check, &mut |_| {}).map(|(r, _, _)| r)
}

#[test]
fn export_then_import_round_trips() {
    let r = full();
    let mut buf = Vec::new();
    assert_eq!(export(&r, &mut buf).unwrap(), 5);
    let csv = String::from_utf8(buf).unwrap();
    // Into the same registry: every row unchanged.
    let same = csv_merge(&r, &csv, false).unwrap();
    assert!(same.same_as(&r), "{csv}");
    // Into an empty one with the same file-wide settings: the same buildings and devices.
    let empty = Registry::from_entries(true, r.required.clone(), vec![], vec![]).unwrap();
    let back = csv_merge(&empty, &csv, true).unwrap();
    assert!(back.same_as(&r), "{csv}");
}

#[test]
fn every_bad_row_is_reported_with_its_line_and_column() {
    let csv = "\
record,id,building,kind,lat,lon,class,installed,interval_s,power,expected,thresholds
building,b1,,,30.1,120.2,residential,,,,water_pressure=2,
device,d6,b2,water_level,,,,,,,,
building,b2,,,123.4,120.0,,,,,,
device,d1,b1,water_pressure,,,,2024-03-18,600,mains,,
device,d2,b9,water_level,,,,,,,,
device,d3,b1,sprinkler,,,,,,,,
building,b1,,,31.0,121.0,,,,,,
device,d4,b1,electrical,,,,yesterday,ten,solar,,x
room,r1,,,,,,,,,,
device,d5,b1,water_level,,,,,,,water_level=1,
";
    let p = csv_merge(&Registry::default(), csv, false).unwrap_err();
    let shown: Vec<String> = p.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "line 3, column building: building \"b2\" is left out: its row has problems",
            "line 4, column lat: 123.4 is not a latitude (-90..90)",
            "line 6, column building: building \"b9\" is not listed",
            "line 7, column kind: \"sprinkler\" is not a device kind (water_pressure, water_level, electrical, fire_lane, transmitter)",
            "line 8, column id: duplicate building \"b1\" (first on line 2)",
            "line 9, column interval_s: \"ten\" is not a whole number of seconds",
            "line 9, column power: \"solar\" is not a power supply (mains, battery)",
            "line 9, column thresholds: \"x\" is not rule=raise/clear",
            "line 9, column installed: \"yesterday\" is not a date (YYYY-MM-DD)",
            "line 10, column record: \"room\" is not a record type (building, device)",
            "line 11, column expected: does not apply to a device row: leave it empty",
        ],
    );
}

#[test]
fn a_bad_header_is_reported_before_any_row() {
    let p = csv_merge(&Registry::default(), "id,colour\nb1,red\n", false).unwrap_err();
    let shown: Vec<String> = p.iter().map(ToString::to_string).collect();
    assert_eq!(shown.len(), 2, "{shown:?}");
    assert!(shown[0].starts_with("line 1: unknown column \"colour\""));
    assert_eq!(shown[1], "line 1: the column \"record\" is missing");
}

#[test]
fn rows_upsert_by_id_and_replace_replaces() {
    let r = full();
    let csv = "record,id,name,class\nbuilding,plant-3,Plant 3,industrial\nbuilding,new-1,,\n";
    let m = csv_merge(&r, csv, false).unwrap();
    assert_eq!(m.buildings.len(), 4);
    assert_eq!(
        m.building("plant-3").unwrap().name.as_deref(),
        Some("Plant 3")
    );
    let c = r.diff(&m);
    assert_eq!((c.buildings.added, c.buildings.changed), (1, 1));
    // Replacing drops the devices of buildings no longer listed: their rows would be errors.
    let m = csv_merge(&r, csv, true).unwrap();
    assert_eq!(m.buildings.len(), 2);
    assert!(m.devices.is_empty());
    assert!(m.strict, "file-wide settings are kept");
}

#[test]
fn the_rules_check_is_reported_at_the_row() {
    let csv = "record,id,building,kind,thresholds\nbuilding,b1,,,\ndevice,d1,b1,water_level,nope.rule=1/2\n";
    let check = |r: &Registry| {
        r.devices
            .iter()
            .enumerate()
            .filter(|(_, d)| d.thresholds.contains_key("nope.rule"))
            .map(|(i, _)| {
                Problem::new(
                    format!("registry.file: device[{i}].thresholds.nope.rule"),
                    "no threshold rule has this id",
                )
            })
            .collect()
    };
    let p = merge(
        &Registry::default(),
        csv.as_bytes(),
        false,
        &check,
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!(
        p[0].to_string(),
        "line 3, column thresholds: no threshold rule has this id"
    );
}

#[test]
fn live_swaps_and_sees_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("registry.toml");
    std::fs::write(&file, "strict = false\n").unwrap();
    let live = Live::new(Arc::new(Registry::default()), file.clone());
    assert_eq!(live.changed(), None);
    std::fs::write(&file, "strict = true\n[[building]]\nid = \"b\"\n").unwrap();
    let now = live.changed().expect("a change");
    live.mark_seen(now);
    assert_eq!(live.changed(), None);
    live.set(Arc::new(Registry::parse("strict = true\n").unwrap()));
    assert!(live.get().strict);
}

#[test]
fn gb_addresses_are_numbers_or_ip_and_port_of_one_transmitter_each() {
    let dev = |id: &str, kind: &str, a: &str| {
        format!("[[device]]\nid = \"{id}\"\nbuilding = \"b\"\nkind = \"{kind}\"\ngb_address = \"{a}\"\n")
    };
    let head = "[[building]]\nid = \"b\"\n";
    let r = Registry::parse(&format!(
        "{head}{}{}",
        dev("t1", "transmitter", "889"),
        dev("t2", "transmitter", "192.168.1.20:5000")
    ))
    .unwrap_or_else(|p| panic!("{p:?}"));
    assert_eq!(
        r.device_at(&[0x79, 0x03, 0, 0, 0, 0])
            .map(|d| d.id.as_str()),
        Some("t1")
    );
    assert_eq!(
        r.device_at(&[192, 168, 1, 20, 0x88, 0x13])
            .map(|d| d.id.as_str()),
        Some("t2")
    );
    for (text, key) in [
        (
            dev("t1", "transmitter", "281474976710656"),
            "device[0].gb_address",
        ),
        (
            dev("t1", "transmitter", "10.0.0.1:99999"),
            "device[0].gb_address",
        ),
        (dev("w1", "water_pressure", "5"), "device[0].gb_address"),
        (
            format!(
                "{}{}",
                dev("t1", "transmitter", "7"),
                dev("t2", "transmitter", "7")
            ),
            "device[1].gb_address",
        ),
    ] {
        let p = Registry::parse(&format!("{head}{text}")).unwrap_err();
        assert_eq!(keys(&p), [key], "{text}: {p:?}");
    }
}
