//! CSV import and export of the registry (`firewatch registry import|export FILE.csv`).
//!
//! One file holds both record types: the `record` column says `building` or `device`, and the
//! other columns are the union of both ([`COLUMNS`]); a cell that does not apply to its record
//! type stays empty. Lists inside a cell are separated by `;`:
//!
//! - `required`: kinds, e.g. `water_pressure;water_level` (`none`: explicitly no kind);
//! - `expected`: `kind=count`, e.g. `water_pressure=2;transmitter=1`;
//! - `thresholds`: `rule=raise/clear`, e.g. `water_level.low=1.2/1.4`.
//!
//! An import validates every row and reports every problem with its line and column; on any
//! problem nothing is written. Rows upsert by id into the registry in force (or replace all of
//! its buildings and devices); the file-wide settings (`strict`, `[required]`) are kept. The
//! merged registry is validated as a load would validate it ([`Registry::parse`] of the text to
//! be written, then the caller's rules check) and written atomically.

use super::{BuildingEntry, Changes, DeviceEntry, Levels, Power, Registry};
use crate::model::Kind;
use crate::settings::Problem;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{Read, Write};
use std::path::Path;

/// Every column, in the order an export writes them.
pub const COLUMNS: [&str; 25] = [
    "record",
    "id",
    "building",
    "kind",
    "name",
    "address",
    "lat",
    "lon",
    "class",
    "height_m",
    "control_room",
    "manager",
    "required",
    "expected",
    "floor",
    "zone",
    "location",
    "installed",
    "interval_s",
    "power",
    "thresholds",
    "maintainer",
    "via",
    "gb_address",
    "vendor",
];

/// Columns of a building row (besides `record`).
const BUILDING_COLUMNS: [&str; 13] = [
    "id",
    "name",
    "address",
    "lat",
    "lon",
    "class",
    "height_m",
    "control_room",
    "manager",
    "maintainer",
    "required",
    "expected",
    "building",
];

/// Columns of a device row (besides `record`).
const DEVICE_COLUMNS: [&str; 13] = [
    "id",
    "building",
    "kind",
    "floor",
    "zone",
    "location",
    "installed",
    "interval_s",
    "power",
    "thresholds",
    "via",
    "gb_address",
    "vendor",
];

/// One problem of an import: where (line, column) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    /// Line of the CSV file (from 1); `None` for a problem of the registry file.
    pub line: Option<u64>,
    /// Column name.
    pub column: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl RowProblem {
    fn at(line: u64, column: &str, message: impl Into<String>) -> Self {
        RowProblem {
            line: Some(line),
            column: Some(column.to_owned()),
            message: message.into(),
        }
    }

    fn line(line: u64, message: impl Into<String>) -> Self {
        RowProblem {
            line: Some(line),
            column: None,
            message: message.into(),
        }
    }

    fn general(message: impl Into<String>) -> Self {
        RowProblem {
            line: None,
            column: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for RowProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, &self.column) {
            (Some(l), Some(c)) => write!(f, "line {l}, column {c}: {}", self.message),
            (Some(l), None) => write!(f, "line {l}: {}", self.message),
            (None, _) => f.write_str(&self.message),
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// Data rows read.
    pub rows: usize,
    /// How the registry changed.
    pub changes: Changes,
    /// The registry file was written (false when nothing changed).
    pub written: bool,
}

/// One CSV row, by column name (empty cells left out).
struct Row {
    line: u64,
    cells: HashMap<String, String>,
}

impl Row {
    fn get(&self, column: &str) -> Option<&str> {
        self.cells.get(column).map(String::as_str)
    }
}

fn kinds_list() -> String {
    Kind::ALL.map(Kind::as_str).join(", ")
}

fn parse_kind(s: &str) -> Result<Kind, String> {
    s.parse::<Kind>()
        .map_err(|()| format!("{s:?} is not a device kind ({})", kinds_list()))
}

fn parse_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("{s:?} is not a number")),
    }
}

fn parse_u64(s: &str) -> Result<u64, String> {
    s.parse::<u64>()
        .map_err(|_| format!("{s:?} is not a whole number of seconds"))
}

fn items(s: &str) -> impl Iterator<Item = &str> {
    s.split(';').map(str::trim).filter(|s| !s.is_empty())
}

fn parse_required(s: &str) -> Result<Vec<Kind>, String> {
    if s == "none" {
        return Ok(Vec::new());
    }
    items(s).map(parse_kind).collect()
}

fn parse_expected(s: &str) -> Result<HashMap<Kind, u32>, String> {
    let mut m = HashMap::new();
    for item in items(s) {
        let (k, n) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?} is not kind=count"))?;
        let kind = parse_kind(k.trim())?;
        let n = n
            .trim()
            .parse::<u32>()
            .map_err(|_| format!("{n:?} is not a device count"))?;
        if m.insert(kind, n).is_some() {
            return Err(format!("{} is given twice", kind.as_str()));
        }
    }
    Ok(m)
}

fn parse_thresholds(s: &str) -> Result<HashMap<String, Levels>, String> {
    let mut m = HashMap::new();
    for item in items(s) {
        let bad = || format!("{item:?} is not rule=raise/clear");
        let (rule, levels) = item.split_once('=').ok_or_else(bad)?;
        let (raise, clear) = levels.split_once('/').ok_or_else(bad)?;
        let levels = Levels {
            raise: parse_f64(raise.trim())?,
            clear: parse_f64(clear.trim())?,
        };
        if m.insert(rule.trim().to_owned(), levels).is_some() {
            return Err(format!("rule {} is given twice", rule.trim()));
        }
    }
    Ok(m)
}

/// Runs `parse` on a cell when it is present; a failure becomes a problem of that column.
fn cell<T>(
    row: &Row,
    column: &str,
    problems: &mut Vec<RowProblem>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    let v = row.get(column)?;
    match parse(v) {
        Ok(v) => Some(v),
        Err(m) => {
            problems.push(RowProblem::at(row.line, column, m));
            None
        }
    }
}

fn text(row: &Row, column: &str) -> Option<String> {
    row.get(column).map(str::to_owned)
}

fn building_of(row: &Row, problems: &mut Vec<RowProblem>) -> Option<BuildingEntry> {
    let mut b = BuildingEntry::new(row.get("id").unwrap_or_default());
    b.name = text(row, "name");
    b.address = text(row, "address");
    b.lat = cell(row, "lat", problems, parse_f64);
    b.lon = cell(row, "lon", problems, parse_f64);
    if let Some(c) = cell(row, "class", problems, |s| {
        super::parse_class(s).ok_or_else(|| {
            let all = super::required::CLASSES.map(|c| c.as_str()).join(", ");
            format!("{s:?} is not a building class ({all})")
        })
    }) {
        b.class = c;
    }
    b.height_m = cell(row, "height_m", problems, parse_f64);
    b.control_room = text(row, "control_room");
    b.manager = text(row, "manager");
    b.maintainer = text(row, "maintainer");
    b.required = cell(row, "required", problems, parse_required);
    b.expected = cell(row, "expected", problems, parse_expected).unwrap_or_default();
    if row.get("building").is_some_and(|v| v != b.id) {
        problems.push(RowProblem::at(
            row.line,
            "building",
            "does not apply to a building row (leave it empty or repeat the id)",
        ));
    }
    Some(b)
}

fn device_of(row: &Row, problems: &mut Vec<RowProblem>) -> Option<DeviceEntry> {
    let Some(building) = row.get("building") else {
        problems.push(RowProblem::at(
            row.line,
            "building",
            "missing: a device names its building",
        ));
        return None;
    };
    let kind = match row.get("kind") {
        None => {
            problems.push(RowProblem::at(row.line, "kind", "missing"));
            None
        }
        Some(_) => cell(row, "kind", problems, parse_kind),
    }?;
    let mut d = DeviceEntry::new(row.get("id").unwrap_or_default(), building, kind);
    d.floor = text(row, "floor");
    d.zone = text(row, "zone");
    d.location = text(row, "location");
    d.installed = text(row, "installed");
    d.via = text(row, "via");
    d.gb_address = text(row, "gb_address");
    d.vendor = text(row, "vendor");
    d.interval_s = cell(row, "interval_s", problems, parse_u64);
    d.power = cell(row, "power", problems, |s| {
        Power::parse(s).ok_or_else(|| format!("{s:?} is not a power supply (mains, battery)"))
    });
    d.thresholds = cell(row, "thresholds", problems, parse_thresholds).unwrap_or_default();
    Some(d)
}

/// The rows of a CSV file, or every problem of its header and cells' syntax.
fn read_rows(
    input: impl Read,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<Row>, Vec<RowProblem>> {
    let mut r = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .trim(::csv::Trim::All)
        .from_reader(input);
    let header: Vec<String> = r
        .headers()
        .map_err(|e| vec![RowProblem::line(1, format!("cannot read the header: {e}"))])?
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let h = if i == 0 {
                h.trim_start_matches('\u{feff}')
            } else {
                h
            };
            h.to_owned()
        })
        .collect();
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for h in &header {
        if !COLUMNS.contains(&h.as_str()) {
            problems.push(RowProblem::line(
                1,
                format!("unknown column {h:?} (columns: {})", COLUMNS.join(", ")),
            ));
        } else if !seen.insert(h.as_str()) {
            problems.push(RowProblem::line(1, format!("column {h:?} is given twice")));
        }
    }
    for needed in ["record", "id"] {
        if !seen.contains(needed) {
            problems.push(RowProblem::line(
                1,
                format!("the column {needed:?} is missing"),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut rows = Vec::new();
    for rec in r.records() {
        match rec {
            Ok(rec) => {
                let line = rec.position().map_or(0, ::csv::Position::line);
                let cells = header
                    .iter()
                    .zip(rec.iter())
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(h, v)| (h.clone(), v.to_owned()))
                    .collect();
                rows.push(Row { line, cells });
                if rows.len() % 10_000 == 0 {
                    progress(rows.len());
                }
            }
            Err(e) => {
                let line = e.position().map_or(0, ::csv::Position::line);
                let why = match e.kind() {
                    ::csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => format!("{len} fields where the header has {expected_len}"),
                    ::csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".to_owned(),
                    _ => e.to_string(),
                };
                problems.push(RowProblem::line(line, why));
            }
        }
    }
    if problems.is_empty() {
        Ok(rows)
    } else {
        Err(problems)
    }
}

/// Where a merged entry came from: its CSV line, if it came from the CSV.
type Origins = Vec<Option<u64>>;

/// `device[3].building` → (`device`, 3, `building`).
fn split_key(key: &str) -> Option<(&str, usize, &str)> {
    let (list, rest) = key.split_once('[')?;
    let (index, rest) = rest.split_once(']')?;
    let field = rest.strip_prefix('.').unwrap_or(rest);
    let field = field.split('.').next().unwrap_or(field);
    Some((list, index.parse().ok()?, field))
}

/// A problem of the merged registry, at the CSV line and column it came from when known.
fn locate(p: &Problem, buildings: &Origins, devices: &Origins) -> RowProblem {
    let key = p.key.strip_prefix("registry.file: ").unwrap_or(&p.key);
    let line = split_key(key).and_then(|(list, i, field)| {
        let origin = match list {
            "building" => buildings.get(i).copied().flatten(),
            "device" => devices.get(i).copied().flatten(),
            _ => None,
        }?;
        Some((origin, field))
    });
    match line {
        Some((l, field)) => RowProblem::at(l, field, &p.message),
        None => RowProblem::general(format!("registry.file: {p}")),
    }
}

/// The `building` cell of the CSV row a problem points at.
fn devices_building(p: &RowProblem, rows: &[Row]) -> Option<String> {
    let line = p.line?;
    rows.iter()
        .find(|r| r.line == line)
        .and_then(|r| r.get("building"))
        .map(str::to_owned)
}

/// Merges the rows of `input` into `current` (or replaces its buildings and devices when
/// `replace`), validating as a load would: [`Registry::parse`] of the text to be written, and
/// `check` (the rules' registry check). Returns the merged registry and its TOML, or every
/// problem found, in line order.
pub fn merge(
    current: &Registry,
    input: impl Read,
    replace: bool,
    check: &dyn Fn(&Registry) -> Vec<Problem>,
    progress: &mut dyn FnMut(usize),
) -> Result<(Registry, String, usize), Vec<RowProblem>> {
    merge_rows(current, input, replace, check, progress).map_err(|mut p| {
        p.sort_by_key(|p| (p.line.is_none(), p.line));
        p
    })
}

fn merge_rows(
    current: &Registry,
    input: impl Read,
    replace: bool,
    check: &dyn Fn(&Registry) -> Vec<Problem>,
    progress: &mut dyn FnMut(usize),
) -> Result<(Registry, String, usize), Vec<RowProblem>> {
    let rows = read_rows(input, progress)?;
    let mut problems = Vec::new();
    let (mut buildings, mut devices) = if replace {
        (Vec::new(), Vec::new())
    } else {
        (current.buildings.clone(), current.devices.clone())
    };
    let mut b_origin: Origins = vec![None; buildings.len()];
    let mut d_origin: Origins = vec![None; devices.len()];
    let mut b_index: HashMap<String, usize> = buildings
        .iter()
        .enumerate()
        .map(|(i, b)| (b.id.clone(), i))
        .collect();
    let mut d_index: HashMap<String, usize> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id.clone(), i))
        .collect();
    // Buildings of rows left out for their own problems: their devices are not "unknown".
    let mut bad_buildings: HashSet<String> = HashSet::new();
    let mut first_b: HashMap<String, u64> = HashMap::new();
    let mut first_d: HashMap<String, u64> = HashMap::new();
    for row in &rows {
        let record = row.get("record").unwrap_or_default();
        let allowed: &[&str] = match record {
            "building" => &BUILDING_COLUMNS,
            "device" => &DEVICE_COLUMNS,
            other => {
                problems.push(RowProblem::at(
                    row.line,
                    "record",
                    format!("{other:?} is not a record type (building, device)"),
                ));
                continue;
            }
        };
        let mut columns: Vec<&String> = row.cells.keys().collect();
        columns.sort();
        for c in columns {
            if c != "record" && !allowed.contains(&c.as_str()) {
                problems.push(RowProblem::at(
                    row.line,
                    c,
                    format!("does not apply to a {record} row: leave it empty"),
                ));
            }
        }
        let Some(id) = row.get("id") else {
            problems.push(RowProblem::at(row.line, "id", "missing"));
            continue;
        };
        let before = problems.len();
        if record == "building" {
            let Some(b) = building_of(row, &mut problems) else {
                continue;
            };
            for (field, m) in b.problems() {
                problems.push(RowProblem::at(row.line, field, m));
            }
            if let Some(first) = first_b.insert(id.to_owned(), row.line) {
                problems.push(RowProblem::at(
                    row.line,
                    "id",
                    format!("duplicate building {id:?} (first on line {first})"),
                ));
                continue;
            }
            if problems.len() > before {
                bad_buildings.insert(id.to_owned());
                continue;
            }
            match b_index.get(id) {
                Some(&i) => {
                    buildings[i] = b;
                    b_origin[i] = Some(row.line);
                }
                None => {
                    b_index.insert(id.to_owned(), buildings.len());
                    buildings.push(b);
                    b_origin.push(Some(row.line));
                }
            }
        } else {
            let Some(d) = device_of(row, &mut problems) else {
                continue;
            };
            for (field, m) in d.problems() {
                problems.push(RowProblem::at(row.line, field, m));
            }
            if let Some(first) = first_d.insert(id.to_owned(), row.line) {
                problems.push(RowProblem::at(
                    row.line,
                    "id",
                    format!("duplicate device {id:?} (first on line {first})"),
                ));
                continue;
            }
            if problems.len() > before {
                continue;
            }
            // Credentials are not in the CSV: the device keeps the one it has.
            let mut d = d;
            d.mqtt_password_hash = current
                .device(id)
                .and_then(|c| c.mqtt_password_hash.clone());
            match d_index.get(id) {
                Some(&i) => {
                    devices[i] = d;
                    d_origin[i] = Some(row.line);
                }
                None => {
                    d_index.insert(id.to_owned(), devices.len());
                    devices.push(d);
                    d_origin.push(Some(row.line));
                }
            }
        }
    }
    // Devices of unknown buildings, and anything else only the whole registry shows. Rows with
    // problems of their own were left out: report those first, the rest would repeat them.
    let merged =
        Registry::from_entries(current.strict, current.required.clone(), buildings, devices);
    let merged = match merged {
        Ok(m) => Some(m),
        Err(ps) => {
            for p in &ps {
                let mut rp = locate(p, &b_origin, &d_origin);
                let bad = split_key(&p.key)
                    .filter(|(list, _, field)| *list == "device" && *field == "building")
                    .and_then(|_| devices_building(&rp, &rows));
                if let Some(b) = bad.filter(|b| bad_buildings.contains(b)) {
                    rp.message = format!("building {b:?} is left out: its row has problems");
                }
                problems.push(rp);
            }
            None
        }
    };
    let Some(merged) = merged else {
        return Err(problems);
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    // Validated exactly as a load would: parse the text to be written, then the rules check.
    let text = merged.to_toml().map_err(|e| {
        vec![RowProblem::general(format!(
            "cannot write the registry as TOML: {e}"
        ))]
    })?;
    let reread = Registry::parse(&text).map_err(|ps| {
        ps.iter()
            .map(|p| locate(p, &b_origin, &d_origin))
            .collect::<Vec<_>>()
    })?;
    let ps = check(&reread);
    if !ps.is_empty() {
        return Err(ps.iter().map(|p| locate(p, &b_origin, &d_origin)).collect());
    }
    if !reread.same_as(&merged) {
        return Err(vec![RowProblem::general(
            "internal error: the registry written would read back differently; nothing written",
        )]);
    }
    Ok((reread, text, rows.len()))
}

/// Imports `csv_file` into the registry at `registry_file` (see [`merge`]) and writes the
/// result atomically when it differs. On any problem nothing is written.
pub fn import_file(
    registry_file: &Path,
    csv_file: &Path,
    replace: bool,
    check: &dyn Fn(&Registry) -> Vec<Problem>,
    progress: &mut dyn FnMut(usize),
) -> Result<Imported, Vec<RowProblem>> {
    let current = Registry::load(registry_file).map_err(|ps| {
        ps.iter()
            .map(|p| RowProblem::general(p.to_string()))
            .collect::<Vec<_>>()
    })?;
    let input = std::fs::File::open(csv_file).map_err(|e| {
        vec![RowProblem::general(format!(
            "cannot read {}: {e}",
            csv_file.display()
        ))]
    })?;
    let (merged, text, rows) = merge(
        &current,
        std::io::BufReader::new(input),
        replace,
        check,
        progress,
    )?;
    let changes = current.diff(&merged);
    let written = !merged.same_as(&current) || !registry_file.exists();
    if written {
        write_atomically(registry_file, text.as_bytes()).map_err(|e| {
            vec![RowProblem::general(format!(
                "cannot write {}: {e}",
                registry_file.display()
            ))]
        })?;
    }
    Ok(Imported {
        rows,
        changes,
        written,
    })
}

fn f(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn s(v: Option<&str>) -> String {
    v.unwrap_or_default().to_owned()
}

/// Writes every building, then every device, of `registry` as CSV; returns the rows written.
pub fn export(registry: &Registry, out: impl Write) -> Result<usize, ::csv::Error> {
    let mut w = ::csv::Writer::from_writer(out);
    w.write_record(COLUMNS)?;
    let mut rows = 0;
    for b in &registry.buildings {
        let mut expected: Vec<(Kind, u32)> = b.expected.iter().map(|(k, n)| (*k, *n)).collect();
        expected.sort();
        let required = b.required.as_ref().map(|r| {
            if r.is_empty() {
                "none".to_owned()
            } else {
                r.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(";")
            }
        });
        let class = (b.class != crate::model::BuildingClass::Unknown).then(|| b.class.as_str());
        let cells: [String; 25] = [
            "building".into(),
            b.id.clone(),
            String::new(),
            String::new(),
            s(b.name.as_deref()),
            s(b.address.as_deref()),
            f(b.lat),
            f(b.lon),
            s(class),
            f(b.height_m),
            s(b.control_room.as_deref()),
            s(b.manager.as_deref()),
            required.unwrap_or_default(),
            expected
                .iter()
                .map(|(k, n)| format!("{}={n}", k.as_str()))
                .collect::<Vec<_>>()
                .join(";"),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            s(b.maintainer.as_deref()),
            String::new(),
            String::new(),
            String::new(),
        ];
        w.write_record(&cells)?;
        rows += 1;
    }
    for d in &registry.devices {
        let mut thresholds: Vec<(&String, &Levels)> = d.thresholds.iter().collect();
        thresholds.sort_by(|a, b| a.0.cmp(b.0));
        let cells: [String; 25] = [
            "device".into(),
            d.id.clone(),
            d.building.clone(),
            d.kind.as_str().into(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            s(d.floor.as_deref()),
            s(d.zone.as_deref()),
            s(d.written_location()),
            s(d.installed.as_deref()),
            d.interval_s.map(|i| i.to_string()).unwrap_or_default(),
            s(d.power.map(Power::as_str)),
            thresholds
                .iter()
                .map(|(r, l)| format!("{r}={}/{}", l.raise, l.clear))
                .collect::<Vec<_>>()
                .join(";"),
            String::new(),
            s(d.via.as_deref()),
            s(d.gb_address.as_deref()),
            s(d.vendor.as_deref()),
        ];
        w.write_record(&cells)?;
        rows += 1;
    }
    w.flush()?;
    Ok(rows)
}

/// Exports the registry at `registry_file` to `csv_file` (written atomically); returns the
/// buildings and devices written.
pub fn export_file(registry_file: &Path, csv_file: &Path) -> Result<(usize, usize), Vec<String>> {
    let r = Registry::load(registry_file)
        .map_err(|ps| ps.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let mut buf = Vec::new();
    export(&r, &mut buf).map_err(|e| vec![format!("cannot write CSV: {e}")])?;
    write_atomically(csv_file, &buf)
        .map_err(|e| vec![format!("cannot write {}: {e}", csv_file.display())])?;
    Ok((r.buildings.len(), r.devices.len()))
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename
/// over `path`, fsync of the directory. A reader sees the old file or the new one, never part.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "registry".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // The rename is durable once the directory is.
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
