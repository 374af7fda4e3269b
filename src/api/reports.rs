//! Reports: `GET /api/v1/reports/alerts?from=&until=&building=&format=`,
//! `GET /api/v1/reports/duty_checks?from=&until=&control_room=&format=` and
//! `GET /api/v1/reports/workorders?from=&until=&building=&format=`, (added)
//! `GET /api/v1/reports/drills?from=&until=&building=&format=` and
//! `GET /api/v1/reports/fire_transmission?month=&building=&format=`, (added)
//! `GET /api/v1/shielded?building=&format=` (the points shielded now),
//! `GET /api/v1/reports/shielded?from=&until=&building=&format=` and
//! `GET /api/v1/reports/false_alarms?from=&until=&building=&format=`, as JSON or CSV
//! (RFC 4180: a header row, CRLF line ends, fields with a comma, quote or line break
//! quoted). The SQL is in `store/reports.rs`.

use super::auth::one_building;
use super::{parse_time, read, ApiError, ApiResult, ApiState};
use crate::auth::Principal;
use crate::inventory::table::csv;
use crate::model::alert::{alert_id, alert_link};
use crate::model::{rfc3339, Millis};
use crate::store::analytics::Level;
use crate::store::holds::{self, Shield};
use crate::store::reports::{self, cell as num, AlertRow, DutyCheckRow, WorkorderRow};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;

/// Default window: the last 24 h on the app's clock.
const DEFAULT_WINDOW_MS: Millis = 86_400_000;

/// The report routes, merged into the API's router.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/reports/alerts", get(alerts))
        .route("/api/v1/reports/duty_checks", get(duty_checks))
        .route("/api/v1/reports/workorders", get(workorders))
        .route("/api/v1/reports/drills", get(drills))
        .route("/api/v1/reports/fire_transmission", get(fire_transmission))
        .route("/api/v1/shielded", get(shielded_now))
        .route("/api/v1/reports/shielded", get(shielded))
        .route("/api/v1/reports/false_alarms", get(false_alarms))
}

/// The parameters every report takes.
struct Window {
    from: Millis,
    until: Millis,
    csv: bool,
    filter: Option<String>,
}

/// A CSV answer (RFC 4180, see `csv`).
fn csv_answer(header: &[&str], rows: &[Vec<String>]) -> axum::response::Response {
    (
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
        csv(header, rows),
    )
        .into_response()
}

/// `format=json` (false) or `format=csv` (true).
fn is_csv(v: &str) -> Result<bool, ApiError> {
    match v {
        "json" => Ok(false),
        "csv" => Ok(true),
        _ => Err(ApiError::BadRequest("format must be json or csv".into())),
    }
}

fn window(s: &ApiState, q: &HashMap<String, String>, filter: &str) -> Result<Window, ApiError> {
    let mut from = None;
    let mut until = None;
    let mut csv = false;
    let mut f = None;
    for (k, v) in q {
        match k.as_str() {
            "from" => from = Some(parse_time(v, k)?),
            "until" => until = Some(parse_time(v, k)?),
            "format" => csv = is_csv(v)?,
            k if k == filter => f = Some(v.clone()),
            other => return Err(ApiError::BadRequest(format!("unknown parameter {other:?}"))),
        }
    }
    let until = until.unwrap_or_else(|| s.clock.now_ms());
    let from = from.unwrap_or(until - DEFAULT_WINDOW_MS);
    if until <= from {
        return Err(ApiError::BadRequest("until must be after from".into()));
    }
    Ok(Window {
        from,
        until,
        csv,
        filter: f,
    })
}

fn respond(
    w: &Window,
    header: &[&str],
    json_rows: Vec<Value>,
    csv_rows: &[Vec<String>],
    key: &str,
) -> ApiResult {
    if w.csv {
        return Ok(csv_answer(header, csv_rows));
    }
    Ok(Json(json!({
        "from": rfc3339(w.from),
        "until": rfc3339(w.until),
        key: w.filter,
        "rows": json_rows,
    }))
    .into_response())
}

/// `GET /api/v1/reports/alerts`
async fn alerts(
    State(s): State<ApiState>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let mut w = window(&s, &q, "building")?;
    w.filter = one_building(&p, w.filter.take())?;
    let (from, until, b) = (w.from, w.until, w.filter.clone());
    let rows = read(&s, move |c| {
        Ok(reports::alerts(c, from, until, b.as_deref())?)
    })
    .await?;
    let csv_rows: Vec<Vec<String>> = rows.iter().map(AlertRow::cells).collect();
    respond(
        &w,
        AlertRow::COLUMNS,
        rows.iter().map(AlertRow::json).collect(),
        &csv_rows,
        "building",
    )
}

const DUTY_COLUMNS: &[&str] = &[
    "control_room",
    "checks",
    "sent",
    "answered",
    "late",
    "unanswered",
    "waiting",
    "answer_rate",
    "delay_median_s",
    "delay_worst_s",
];

fn duty_json(r: &DutyCheckRow) -> Value {
    json!({
        "control_room": r.control_room, "checks": r.checks, "sent": r.sent,
        "answered": r.answered, "late": r.late, "unanswered": r.unanswered,
        "waiting": r.waiting, "answer_rate": r.answer_rate,
        "delay_median_s": r.delay_median_s, "delay_worst_s": r.delay_worst_s,
    })
}

fn duty_csv(r: &DutyCheckRow) -> Vec<String> {
    vec![
        r.control_room.clone(),
        r.checks.to_string(),
        r.sent.to_string(),
        r.answered.to_string(),
        r.late.to_string(),
        r.unanswered.to_string(),
        r.waiting.to_string(),
        num(r.answer_rate),
        num(r.delay_median_s),
        num(r.delay_worst_s),
    ]
}

/// `GET /api/v1/reports/duty_checks`
async fn duty_checks(
    State(s): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let w = window(&s, &q, "control_room")?;
    let (from, until, room, now) = (w.from, w.until, w.filter.clone(), s.clock.now_ms());
    let rows = read(&s, move |c| {
        Ok(reports::duty_checks(c, from, until, room.as_deref(), now)?)
    })
    .await?;
    let csv_rows: Vec<Vec<String>> = rows.iter().map(duty_csv).collect();
    respond(
        &w,
        DUTY_COLUMNS,
        rows.iter().map(duty_json).collect(),
        &csv_rows,
        "control_room",
    )
}

const WORKORDER_COLUMNS: &[&str] = &[
    "building",
    "raised",
    "auto",
    "rectified",
    "sent_back",
    "closed",
    "overdue",
    "open",
    "rectify_median_s",
    "rectify_worst_s",
    "close_median_s",
    "close_worst_s",
];

fn workorder_json(r: &WorkorderRow) -> Value {
    json!({
        "building": r.building, "raised": r.raised, "auto": r.auto,
        "rectified": r.rectified, "sent_back": r.sent_back, "closed": r.closed,
        "overdue": r.overdue, "open": r.open,
        "rectify_median_s": r.rectify_median_s, "rectify_worst_s": r.rectify_worst_s,
        "close_median_s": r.close_median_s, "close_worst_s": r.close_worst_s,
    })
}

fn workorder_csv(r: &WorkorderRow) -> Vec<String> {
    vec![
        r.building.clone(),
        r.raised.to_string(),
        r.auto.to_string(),
        r.rectified.to_string(),
        r.sent_back.to_string(),
        r.closed.to_string(),
        r.overdue.to_string(),
        r.open.to_string(),
        num(r.rectify_median_s),
        num(r.rectify_worst_s),
        num(r.close_median_s),
        num(r.close_worst_s),
    ]
}

/// `GET /api/v1/reports/workorders`
async fn workorders(
    State(s): State<ApiState>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let mut w = window(&s, &q, "building")?;
    w.filter = one_building(&p, w.filter.take())?;
    let (from, until, b) = (w.from, w.until, w.filter.clone());
    let rows = read(&s, move |c| {
        Ok(reports::workorders(c, from, until, b.as_deref())?)
    })
    .await?;
    let csv_rows: Vec<Vec<String>> = rows.iter().map(workorder_csv).collect();
    respond(
        &w,
        WORKORDER_COLUMNS,
        rows.iter().map(workorder_json).collect(),
        &csv_rows,
        "building",
    )
}

/// `GET /api/v1/reports/drills`: the drills and tests overlapping the window.
async fn drills(
    State(s): State<ApiState>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    use crate::store::analytics::{self, DrillRow};
    let mut w = window(&s, &q, "building")?;
    w.filter = one_building(&p, w.filter.take())?;
    let (from, until, b, now) = (w.from, w.until, w.filter.clone(), s.clock.now_ms());
    let rows = read(&s, move |c| {
        Ok(analytics::drills(c, from, until, b.as_deref(), now)?)
    })
    .await?;
    let opt_time = |t: Option<Millis>| t.map(rfc3339).unwrap_or_default();
    let csv_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r: &DrillRow| {
            vec![
                r.id.clone(),
                r.building.clone(),
                r.mode.clone(),
                rfc3339(r.starts_at),
                opt_time(r.ends_at),
                r.state.clone(),
                r.reason.clone(),
                r.by.clone(),
                r.alerts.to_string(),
                r.fire_alarms.to_string(),
                opt_time(r.first_fire_alarm_at),
                r.result.to_owned(),
            ]
        })
        .collect();
    let json_rows = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.id, "building": r.building, "mode": r.mode,
                "starts_at": rfc3339(r.starts_at), "ends_at": r.ends_at.map(rfc3339),
                "state": r.state, "reason": r.reason, "by": r.by, "alerts": r.alerts,
                "fire_alarms": r.fire_alarms,
                "first_fire_alarm_at": r.first_fire_alarm_at.map(rfc3339), "result": r.result,
            })
        })
        .collect();
    respond(&w, DrillRow::COLUMNS, json_rows, &csv_rows, "building")
}

/// The month `YYYY-MM` (default: the current one) in the control room's zone, as
/// `[from, until)`.
fn month(s: &ApiState, given: Option<&String>) -> Result<(String, Millis, Millis), ApiError> {
    let tz = jiff::tz::TimeZone::get(&s.time_zone)
        .map_err(|e| ApiError::Internal(format!("notify.tz: {e}")))?;
    let bad = || ApiError::BadRequest("month must be YYYY-MM".into());
    let first = match given {
        Some(m) => {
            let (y, mo) = m.split_once('-').ok_or_else(bad)?;
            let (y, mo): (i16, i8) = (
                y.parse().map_err(|_| bad())?,
                mo.parse().map_err(|_| bad())?,
            );
            jiff::civil::Date::new(y, mo, 1).map_err(|_| bad())?
        }
        None => {
            let now = jiff::Timestamp::from_millisecond(s.clock.now_ms())
                .map_err(|e| ApiError::Internal(e.to_string()))?
                .to_zoned_datetime(tz.clone());
            now.date().first_of_month()
        }
    };
    let next = first
        .checked_add(jiff::Span::new().months(1))
        .map_err(|_| bad())?;
    let at = |d: jiff::civil::Date| -> Result<Millis, ApiError> {
        Ok(d.to_zoned_datetime(tz.clone())
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .timestamp()
            .as_millisecond())
    };
    Ok((first.strftime("%Y-%m").to_string(), at(first)?, at(next)?))
}

/// `GET /api/v1/reports/fire_transmission`: per building with a transmitter (or a drill that
/// month), whether the monthly simulated fire transmission arrived.
async fn fire_transmission(
    State(s): State<ApiState>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    use crate::store::analytics::{self, TransmissionRow};
    let mut csv_out = false;
    let mut building = None;
    for (k, v) in &q {
        match k.as_str() {
            "month" => {}
            "building" => building = Some(v.clone()),
            "format" => csv_out = is_csv(v)?,
            other => return Err(ApiError::BadRequest(format!("unknown parameter {other:?}"))),
        }
    }
    let building = one_building(&p, building)?;
    let (label, from, until) = month(&s, q.get("month"))?;
    let registry = s.registry.get();
    let mut buildings: Vec<String> = registry
        .buildings
        .iter()
        .filter(|b| {
            registry
                .devices_of(&b.id)
                .any(|d| d.kind == crate::model::Kind::Transmitter)
        })
        .map(|b| b.id.clone())
        .collect();
    let drilled: Vec<String> = read(&s, move |c| {
        Ok(crate::store::silences::all(c)?
            .into_iter()
            .filter(|x| x.mode.is_drill() && x.starts_at >= from && x.starts_at < until)
            .filter_map(|x| x.matchers.get("building").cloned())
            .collect())
    })
    .await?;
    buildings.extend(drilled);
    buildings.sort();
    buildings.dedup();
    buildings.retain(|b| building.as_ref().is_none_or(|x| x == b));
    if let Some(mine) = p.scope.buildings() {
        buildings.retain(|b| mine.contains(b));
    }
    let rows = read(&s, move |c| {
        Ok(analytics::fire_transmission(c, &buildings, from, until)?)
    })
    .await?;
    if csv_out {
        let csv_rows: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.building.clone(),
                    r.tests.to_string(),
                    r.result().to_owned(),
                    r.first.as_ref().map(|f| rfc3339(f.0)).unwrap_or_default(),
                    r.first.as_ref().map(|f| f.1.clone()).unwrap_or_default(),
                ]
            })
            .collect();
        return Ok(csv_answer(TransmissionRow::COLUMNS, &csv_rows));
    }
    let json_rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "building": r.building, "tests": r.tests, "result": r.result(),
                "fire_alarm_at": r.first.as_ref().map(|f| rfc3339(f.0)),
                "alert": r.first.as_ref().map(|f| f.1.clone()),
            })
        })
        .collect();
    Ok(Json(json!({
        "month": label, "from": rfc3339(from), "until": rfc3339(until), "rows": json_rows,
    }))
    .into_response())
}

/// The buildings a list may show: `given` (one of the caller's), or all of the caller's
/// (`None`: every building).
fn buildings_for(p: &Principal, given: Option<String>) -> Result<Option<Vec<String>>, ApiError> {
    match (given, p.scope.buildings()) {
        (Some(b), Some(mine)) if !mine.contains(&b) => {
            Err(ApiError::NotFound(format!("building {b} not found")))
        }
        (Some(b), _) => Ok(Some(vec![b])),
        (None, Some(mine)) => Ok(Some(mine.iter().cloned().collect())),
        (None, None) => Ok(None),
    }
}

/// The building a list of `bs` is of, when it is of one.
fn single(bs: &Option<Vec<String>>) -> Option<String> {
    bs.as_ref().filter(|b| b.len() == 1).map(|b| b[0].clone())
}

/// `GET /api/v1/shielded`: the points shielded now, longest first.
async fn shielded_now(
    State(s): State<ApiState>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let mut csv_out = false;
    let mut building = None;
    for (k, v) in &q {
        match k.as_str() {
            "building" => building = Some(v.clone()),
            "format" => csv_out = is_csv(v)?,
            other => return Err(ApiError::BadRequest(format!("unknown parameter {other:?}"))),
        }
    }
    let bs = buildings_for(&p, building)?;
    let building = single(&bs);
    let rows = read(&s, move |c| Ok(holds::shields(c, None, bs.as_deref())?)).await?;
    let now = s.clock.now_ms();
    if csv_out {
        let csv_rows: Vec<Vec<String>> = rows.iter().map(|r| r.cells(now)).collect();
        return Ok(csv_answer(Shield::COLUMNS, &csv_rows));
    }
    Ok(Json(json!({
        "at": rfc3339(now),
        "building": building,
        "rows": rows.iter().map(|r| r.json(now)).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `GET /api/v1/reports/shielded`: every shield overlapping the window, oldest first.
async fn shielded(
    State(s): State<ApiState>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let mut w = window(&s, &q, "building")?;
    let bs = buildings_for(&p, w.filter.take())?;
    w.filter = single(&bs);
    let (from, until) = (w.from, w.until);
    let rows = read(&s, move |c| {
        Ok(holds::shields(c, Some((from, until)), bs.as_deref())?)
    })
    .await?;
    let now = s.clock.now_ms();
    let csv_rows: Vec<Vec<String>> = rows.iter().map(|r| r.cells(now)).collect();
    respond(
        &w,
        Shield::COLUMNS,
        rows.iter().map(|r| r.json(now)).collect(),
        &csv_rows,
        "building",
    )
}

/// `GET /api/v1/reports/false_alarms`: false alarms by point, device, building and
/// maintenance company over the window, with what calls for a review flagged
/// (`repeated=`: false alarms at one point, default 2; `per_day=`: more than this many in a
/// building in one local day, default 5).
async fn false_alarms(
    State(s): State<ApiState>,
    Extension(p): Extension<Principal>,
    Query(mut q): Query<HashMap<String, String>>,
) -> ApiResult {
    use crate::store::analytics::{self, FalseAlarmRow, Review};
    let mut review = Review::default();
    for (key, slot) in [
        ("repeated", &mut review.repeated),
        ("per_day", &mut review.per_day),
    ] {
        if let Some(v) = q.remove(key) {
            *slot =
                v.parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    ApiError::BadRequest(format!("{key} must be a whole number ≥ 1"))
                })?;
        }
    }
    let mut w = window(&s, &q, "building")?;
    let bs = buildings_for(&p, w.filter.take())?;
    w.filter = single(&bs);
    let tz = jiff::tz::TimeZone::get(&s.time_zone)
        .map_err(|e| ApiError::Internal(format!("notify.tz: {e}")))?;
    let (from, until) = (w.from, w.until);
    let alarms = read(&s, move |c| {
        Ok(analytics::false_alarms(c, from, until, bs.as_deref())?)
    })
    .await?;
    let registry = s.registry.get();
    let maintainer = |b: &str| registry.building(b).and_then(|b| b.maintainer.clone());
    let day = |ms: Millis| {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| t.to_zoned_datetime(tz.clone()).date().to_string())
            .unwrap_or_default()
    };
    let rows = analytics::false_alarm_rows(&alarms, maintainer, day, review);
    let ids = |r: &FalseAlarmRow| r.alerts.iter().map(|id| alert_id(*id)).collect::<Vec<_>>();
    if w.csv {
        let csv_rows: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let o = |x: &Option<String>| x.clone().unwrap_or_default();
                vec![
                    r.level.as_str().to_owned(),
                    o(&r.building),
                    o(&r.device),
                    o(&r.channel),
                    o(&r.maintainer),
                    r.false_alarms.to_string(),
                    r.buildings.to_string(),
                    rfc3339(r.first_at),
                    rfc3339(r.last_at),
                    r.worst_day.0.clone(),
                    r.worst_day.1.to_string(),
                    o(&r.flagged),
                    ids(r).join(" "),
                    o(&r.history()),
                ]
            })
            .collect();
        return Ok(csv_answer(FalseAlarmRow::COLUMNS, &csv_rows));
    }
    let json_row = |r: &FalseAlarmRow| {
        json!({
            "building": r.building, "device": r.device, "channel": r.channel,
            "maintainer": r.maintainer, "false_alarms": r.false_alarms,
            "buildings": r.buildings,
            "first_at": rfc3339(r.first_at), "last_at": rfc3339(r.last_at),
            "worst_day": {"day": r.worst_day.0, "false_alarms": r.worst_day.1},
            "days_over": r.days_over.iter()
                .map(|(d, n)| json!({"day": d, "false_alarms": n})).collect::<Vec<_>>(),
            "flagged": r.flagged,
            "alerts": r.alerts.iter()
                .map(|id| json!({"id": alert_id(*id), "link": alert_link(*id)}))
                .collect::<Vec<_>>(),
            "history": r.history(),
        })
    };
    let level = |l: Level| {
        rows.iter()
            .filter(|r| r.level == l)
            .map(json_row)
            .collect::<Vec<_>>()
    };
    let flagged: Vec<Value> = rows
        .iter()
        .filter(|r| r.flagged.is_some())
        .map(|r| {
            let mut v = json_row(r);
            v["level"] = r.level.as_str().into();
            v
        })
        .collect();
    Ok(Json(json!({
        "from": rfc3339(w.from), "until": rfc3339(w.until), "building": w.filter,
        "time_zone": s.time_zone,
        "review": {"repeated": review.repeated, "per_day": review.per_day},
        "false_alarms": alarms.len(),
        "flagged": flagged,
        "points": level(Level::Point),
        "devices": level(Level::Device),
        "buildings": level(Level::Building),
        "maintainers": level(Level::Maintainer),
    }))
    .into_response())
}
