//! Reports: `GET /api/v1/reports/alerts?from=&until=&building=&format=`,
//! `GET /api/v1/reports/duty_checks?from=&until=&control_room=&format=` and
//! `GET /api/v1/reports/workorders?from=&until=&building=&format=`, as JSON or CSV
//! (RFC 4180: a header row, CRLF line ends, fields with a comma, quote or line break
//! quoted). The SQL is in `store/reports.rs`.

use super::auth::one_building;
use super::{parse_time, read, ApiError, ApiResult, ApiState};
use crate::auth::Principal;
use crate::inventory::table::csv;
use crate::model::{rfc3339, Millis};
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
}

/// The parameters every report takes.
struct Window {
    from: Millis,
    until: Millis,
    csv: bool,
    filter: Option<String>,
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
            "format" => {
                csv = match v.as_str() {
                    "json" => false,
                    "csv" => true,
                    _ => return Err(ApiError::BadRequest("format must be json or csv".into())),
                }
            }
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
        return Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            csv(header, csv_rows),
        )
            .into_response());
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
