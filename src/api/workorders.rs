//! `POST /api/v1/alerts/{id}/verify` (the on-site check, 现场核实) and the hazard work orders
//! (隐患整改): `GET`/`POST /api/v1/workorders`, `GET /api/v1/workorders/{id}`,
//! `POST …/rectify` and `POST …/verify`. Writes go through the pipeline.

use super::auth::actor;
use super::{
    act_on, alert_param, parse_bool, parse_limit, parse_time, read, ApiError, ApiResult, ApiState,
};
use crate::auth::Principal;
use crate::model::alert::Verification;
use crate::pipeline::Input;
use crate::store::alerts::{self, Action};
use crate::store::workorders::{
    self, Step, WorkorderError, WorkorderOp, WorkorderRequest, WorkorderStatus,
};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use std::collections::HashMap;

/// The routes of this module.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/alerts/{id}/verify", post(verify_alert))
        .route("/api/v1/workorders", get(list).post(create))
        .route("/api/v1/workorders/{id}", get(one))
        .route("/api/v1/workorders/{id}/rectify", post(rectify))
        .route("/api/v1/workorders/{id}/verify", post(verify))
}

fn parse<T: serde::de::DeserializeOwned>(b: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(b).map_err(|e| ApiError::BadRequest(format!("body: {e}")))
}

fn text(key: &str, v: Option<String>, required: bool) -> Result<Option<String>, ApiError> {
    let v = v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    match v {
        None if required => Err(ApiError::BadRequest(format!("{key} is required"))),
        Some(s) if s.len() > 10_000 => Err(ApiError::BadRequest(format!("{key} too long"))),
        v => Ok(v),
    }
}

fn photo(v: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(u) = text("photo_url", v, false)? else {
        return Ok(None);
    };
    match url::Url::parse(&u) {
        Ok(p) if matches!(p.scheme(), "http" | "https") => Ok(Some(u)),
        _ => Err(ApiError::BadRequest(format!(
            "photo_url: {u:?} is not an http:// or https:// URL"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyAlertBody {
    #[serde(default)]
    by: Option<String>,
    result: String,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    called_119_at: Option<String>,
    #[serde(default)]
    called_119: Option<bool>,
}

async fn verify_alert(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Extension(p): Extension<Principal>,
    b: Bytes,
) -> ApiResult {
    let n = alert_param(&id)?;
    let b: VerifyAlertBody = parse(&b)?;
    let by = actor(&p, b.by.as_deref())?;
    let result = b.result.parse::<Verification>().map_err(|()| {
        ApiError::BadRequest(format!("result must be one of {}", Verification::list()))
    })?;
    let called_119_at = match (b.called_119_at, b.called_119) {
        (Some(t), _) => Some(parse_time(&t, "called_119_at")?),
        (None, Some(true)) => Some(s.clock.now_ms()),
        (None, _) => None,
    };
    let action = Action::Verify {
        by,
        result,
        note: text("note", b.note, false)?,
        called_119_at,
    };
    act_on(&s, n, action).await
}

fn workorder_param(id: &str) -> Result<i64, ApiError> {
    workorders::parse_workorder_id(id)
        .ok_or_else(|| ApiError::NotFound(format!("work order {id} not found")))
}

async fn send(s: &ApiState, op: WorkorderOp, created: bool) -> ApiResult {
    let (tx, rx) = tokio::sync::oneshot::channel();
    s.pipeline
        .send(Input::Workorder { op, reply: tx })
        .map_err(|_| ApiError::Unavailable("the pipeline is stopping".into()))?;
    let r = rx
        .await
        .map_err(|_| ApiError::Unavailable("the pipeline is stopping".into()))?;
    match r {
        Ok(w) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((status, Json(w.to_json())).into_response())
        }
        Err(WorkorderError::NotFound(m)) => Err(ApiError::NotFound(m)),
        Err(WorkorderError::Conflict(m)) => Err(ApiError::Conflict(m)),
        Err(WorkorderError::Invalid(m)) => Err(ApiError::BadRequest(m)),
        Err(WorkorderError::Store(e)) => Err(e.into()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[serde(default)]
    alert: Option<String>,
    building: String,
    description: String,
    #[serde(default)]
    photo_url: Option<String>,
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    deadline_s: Option<u64>,
}

async fn create(
    State(s): State<ApiState>,
    Extension(p): Extension<Principal>,
    b: Bytes,
) -> ApiResult {
    let b: CreateBody = parse(&b)?;
    let alert = b
        .alert
        .map(|a| {
            alerts::parse_alert_id(&a)
                .ok_or_else(|| ApiError::BadRequest(format!("alert: {a:?} is not an alert id")))
        })
        .transpose()?;
    let building = b.building.trim().to_owned();
    if building.is_empty() {
        return Err(ApiError::BadRequest("building is required".into()));
    }
    if let Some(d) = b.deadline_s {
        if !(60..=workorders::MAX_DEADLINE_S).contains(&d) {
            return Err(ApiError::BadRequest(format!(
                "deadline_s must be 60–{}",
                workorders::MAX_DEADLINE_S
            )));
        }
    }
    let req = WorkorderRequest {
        alert,
        building,
        description: text("description", Some(b.description), true)?.unwrap_or_default(),
        photo_url: photo(b.photo_url)?,
        by: actor(&p, b.by.as_deref())?,
        deadline_s: b.deadline_s,
    };
    send(&s, WorkorderOp::Create(req), true).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RectifyBody {
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    photo_url: Option<String>,
}

async fn rectify(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Extension(p): Extension<Principal>,
    b: Bytes,
) -> ApiResult {
    let id = workorder_param(&id)?;
    let b: RectifyBody = parse(&b)?;
    if p.scope.buildings().is_some() {
        // A manager reports rectification of their own buildings' work orders only.
        let found = read(&s, move |c| Ok(workorders::get(c, id)?)).await?;
        if !found.is_some_and(|w| p.scope.allows(&w.building)) {
            return Err(ApiError::NotFound(format!(
                "work order {} not found",
                crate::model::workorder::workorder_id(id)
            )));
        }
    }
    let op = WorkorderOp::Step {
        id,
        step: Step::Rectify,
        by: actor(&p, b.by.as_deref())?,
        note: text("note", b.note, true)?.unwrap_or_default(),
        photo_url: photo(b.photo_url)?,
    };
    send(&s, op, false).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    accept: Option<bool>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    photo_url: Option<String>,
}

async fn verify(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Extension(p): Extension<Principal>,
    b: Bytes,
) -> ApiResult {
    let id = workorder_param(&id)?;
    let b: VerifyBody = parse(&b)?;
    let accept = b
        .accept
        .ok_or_else(|| ApiError::BadRequest("accept is required: true or false".into()))?;
    let op = WorkorderOp::Step {
        id,
        step: if accept { Step::Accept } else { Step::SendBack },
        by: actor(&p, b.by.as_deref())?,
        note: text("note", b.note, true)?.unwrap_or_default(),
        photo_url: photo(b.photo_url)?,
    };
    send(&s, op, false).await
}

async fn list(
    State(s): State<ApiState>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let mut f = workorders::Filter {
        limit: parse_limit(q.get("limit"), 100, 10_000)?,
        ..Default::default()
    };
    for (k, v) in &q {
        match k.as_str() {
            "building" => f.building = Some(v.clone()),
            "status" => {
                f.status = Some(v.parse::<WorkorderStatus>().map_err(|()| {
                    ApiError::BadRequest(format!(
                        "status must be one of {}",
                        WorkorderStatus::ALL.map(WorkorderStatus::as_str).join(", ")
                    ))
                })?);
            }
            "overdue" => f.overdue = Some(parse_bool(v, k)?),
            "limit" => {}
            other => return Err(ApiError::BadRequest(format!("unknown parameter {other:?}"))),
        }
    }
    f.building = super::auth::one_building(&p, f.building)?;
    let v = read(&s, move |c| {
        Ok(workorders::list(c, &f)?
            .iter()
            .map(workorders::Workorder::to_json)
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(Json(v).into_response())
}

async fn one(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Extension(p): Extension<Principal>,
) -> ApiResult {
    let n = workorder_param(&id)?;
    let v = read(&s, move |c| {
        let w = workorders::get(c, n)?
            .filter(|w| p.scope.allows(&w.building))
            .ok_or_else(|| ApiError::NotFound(format!("work order {id} not found")))?;
        let mut j = w.to_json();
        j["history"] = serde_json::to_value(workorders::history_of(c, n)?)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(j)
    })
    .await?;
    Ok(Json(v).into_response())
}
