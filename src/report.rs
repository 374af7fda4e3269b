//! `firewatch report coverage|devices|alerts|quality`: the inventory and the alert figures on
//! the command line, as an aligned table, CSV or JSON, for people who live in spreadsheets.
//! Reads the store through a read-only connection: safe while the service runs.

use crate::config::Config;
use crate::inventory::{self, table};
use crate::model::Millis;
use crate::store;
use serde_json::{json, Value};

/// What to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum What {
    /// Required kinds against registered, connected and online devices, per building.
    Coverage,
    /// Every device with its state and health.
    Devices,
    /// Alerts per building and severity over the window: counts, times to acknowledge and close.
    Alerts,
    /// Devices with data-quality findings.
    Quality,
}

/// How to print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns.
    Table,
    /// RFC 4180 CSV.
    Csv,
    /// JSON, as the API answers.
    Json,
}

/// A report request.
#[derive(Debug, Clone)]
pub struct Request {
    /// What.
    pub what: What,
    /// How.
    pub format: Format,
    /// One building only.
    pub building: Option<String>,
    /// The alerts report's window: the last `days` days.
    pub days: u32,
}

/// Builds the report as text, at `now`.
pub fn run(cfg: &Config, req: &Request, now: Millis) -> Result<String, String> {
    let (rules, registry) = crate::app::check(cfg).map_err(|p| {
        p.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n  ")
    })?;
    let db = store::db_path(&cfg.storage.dir);
    if !db.exists() {
        return Err(format!(
            "no store at {} (storage.dir): has firewatch run here yet?",
            db.display()
        ));
    }
    let c = store::open_reader(&cfg.storage.dir).map_err(|e| format!("store: {e}"))?;
    let b = req.building.as_deref();
    let err = |e: store::StoreError| format!("store: {e}");
    let tz = crate::notify::render::time_zone(&cfg.notify.tz)?;
    let local = |v: &Value| -> String {
        v.as_str()
            .and_then(|s| s.parse::<jiff::Timestamp>().ok())
            .map(|t| {
                t.to_zoned_datetime(tz.clone())
                    .strftime("%Y-%m-%d %H:%M:%S")
                    .to_string()
            })
            .unwrap_or_default()
    };
    let (json, header, rows): (Value, Vec<&str>, Vec<Vec<String>>) = match req.what {
        What::Coverage => {
            let cov = inventory::coverage(&c, &registry, b).map_err(err)?;
            let pct = |r: Option<f64>| r.map(|r| format!("{:.1}%", r * 100.0)).unwrap_or_default();
            let kinds = |k: &[crate::model::Kind]| {
                k.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(" ")
            };
            let mut rows: Vec<Vec<String>> = cov
                .per_building
                .iter()
                .map(|x| {
                    vec![
                        x.building.clone(),
                        x.name.clone().unwrap_or_default(),
                        x.registered.to_string(),
                        x.connected.to_string(),
                        x.online.to_string(),
                        pct(x.connection_rate),
                        pct(x.online_rate),
                        x.never_seen.len().to_string(),
                        kinds(&x.missing_kinds),
                        kinds(&x.unconnected_kinds),
                        x.unregistered.to_string(),
                        if x.complete { "yes" } else { "no" }.to_owned(),
                    ]
                })
                .collect();
            rows.push(vec![
                "(town)".into(),
                format!("{} buildings, {} complete", cov.buildings, cov.complete),
                cov.registered.to_string(),
                cov.connected.to_string(),
                cov.online.to_string(),
                pct(cov.connection_rate),
                pct(cov.online_rate),
                cov.never_seen.to_string(),
                format!("{} buildings", cov.missing_kind),
                String::new(),
                cov.unregistered.to_string(),
                String::new(),
            ]);
            let header = vec![
                "building",
                "name",
                "registered",
                "connected",
                "online",
                "connection_rate",
                "online_rate",
                "never_seen",
                "missing_kinds",
                "unconnected_kinds",
                "unregistered",
                "complete",
            ];
            (json!(cov), header, rows)
        }
        What::Devices | What::Quality => {
            let mut devices = inventory::devices(&c, &registry, &rules, b).map_err(err)?;
            if req.what == What::Quality {
                devices.retain(inventory::has_findings);
            }
            let s = |d: &Value, k: &str| match &d[k] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            let rows = devices
                .iter()
                .map(|d| {
                    let quality = d["quality"]
                        .as_array()
                        .map(|q| {
                            q.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(" ")
                        })
                        .unwrap_or_default();
                    vec![
                        s(d, "id"),
                        s(d, "building"),
                        s(d, "kind"),
                        if d["registered"] == true { "yes" } else { "no" }.to_owned(),
                        s(d, "state"),
                        local(&d["last_seen"]),
                        s(d, "messages"),
                        s(d, "lost"),
                        s(d, "rejected"),
                        s(d, "battery_pct"),
                        s(d, "rssi_dbm"),
                        s(d, "open_alerts"),
                        quality,
                    ]
                })
                .collect();
            let header = vec![
                "device",
                "building",
                "kind",
                "registered",
                "state",
                "last_seen",
                "messages",
                "lost",
                "rejected",
                "battery_pct",
                "rssi_dbm",
                "open_alerts",
                "quality",
            ];
            (Value::Array(devices), header, rows)
        }
        What::Alerts => {
            let from = now - i64::from(req.days.max(1)) * 86_400_000;
            let rows = store::reports::alerts(&c, from, now + 1, b).map_err(err)?;
            let json_rows = rows.iter().map(store::reports::AlertRow::json).collect();
            let text_rows = rows.iter().map(store::reports::AlertRow::cells).collect();
            let header = store::reports::AlertRow::COLUMNS.to_vec();
            (Value::Array(json_rows), header, text_rows)
        }
    };
    Ok(match req.format {
        Format::Json => format!("{json:#}\n"),
        Format::Csv => table::csv(&header, &rows),
        Format::Table => table::text(&header, &rows),
    })
}
