//! (added) Silences and maintenance windows: `GET /api/v1/silences?state=` (newest first, with
//! how many alerts each holds back now), `GET /api/v1/silences/{id}`, `POST /api/v1/silences`
//! (set one) and `POST /api/v1/silences/{id}/expire` (end one now). Writes go through the
//! pipeline, which applies silences to the alerts as they fire.

use super::{read, ApiError, ApiResult, ApiState};
use crate::auth::Principal;
use crate::model::silence::{parse_id, silence_id, Silence};
use crate::pipeline::silences::{SilenceError, SilenceOp};
use crate::pipeline::Input;
use crate::store;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::Value;
use std::collections::HashMap;

/// The routes of this module.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/silences", get(list).post(create))
        .route("/api/v1/silences/{id}", get(one))
        .route("/api/v1/silences/{id}/expire", post(expire))
}

const STATES: [&str; 4] = ["pending", "active", "waiting", "expired"];

fn shown(s: &Silence, now: i64, held: &HashMap<i64, i64>) -> Value {
    let mut v = s.to_json(now);
    v["held"] = held.get(&s.id).copied().unwrap_or(0).into();
    v
}

async fn list(State(s): State<ApiState>, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    let mut state = None;
    for (k, v) in &q {
        match k.as_str() {
            "state" if STATES.contains(&v.as_str()) || v == "current" => state = Some(v.clone()),
            "state" => {
                return Err(ApiError::BadRequest(format!(
                    "state: one of current, {}",
                    STATES.join(", ")
                )))
            }
            other => return Err(ApiError::BadRequest(format!("unknown parameter {other:?}"))),
        }
    }
    let now = s.clock.now_ms();
    let v = read(&s, move |c| {
        let held = store::silences::held_counts(c)?;
        Ok(store::silences::all(c)?
            .iter()
            .filter(|x| {
                let st = x.state(now).as_str();
                match state.as_deref() {
                    None => true,
                    Some("current") => st != "expired",
                    Some(want) => st == want,
                }
            })
            .map(|x| shown(x, now, &held))
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(Json(v).into_response())
}

fn id_of(raw: &str) -> Result<i64, ApiError> {
    parse_id(raw).ok_or_else(|| ApiError::NotFound(format!("no silence {raw:?}")))
}

async fn one(State(s): State<ApiState>, Path(raw): Path<String>) -> ApiResult {
    let id = id_of(&raw)?;
    let now = s.clock.now_ms();
    let v = read(&s, move |c| {
        let held = store::silences::held_counts(c)?;
        Ok(store::silences::get(c, id)?.map(|x| shown(&x, now, &held)))
    })
    .await?;
    match v {
        Some(v) => Ok(Json(v).into_response()),
        None => Err(ApiError::NotFound(format!("no silence {}", silence_id(id)))),
    }
}

async fn send(s: &ApiState, op: SilenceOp) -> Result<Silence, ApiError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let stopping = || ApiError::Unavailable("the pipeline is stopping".into());
    s.pipeline
        .send(Input::Silence { op, reply: tx })
        .map_err(|_| stopping())?;
    match rx.await.map_err(|_| stopping())? {
        Ok(x) => Ok(x),
        Err(SilenceError::NotFound(m)) => Err(ApiError::NotFound(m)),
        Err(SilenceError::Expired(m)) => Err(ApiError::Conflict(m)),
        Err(SilenceError::Store(e)) => Err(e.into()),
    }
}

async fn create(
    State(s): State<ApiState>,
    Extension(p): Extension<Principal>,
    b: Bytes,
) -> ApiResult {
    let body: Value =
        serde_json::from_slice(&b).map_err(|e| ApiError::BadRequest(format!("body: {e}")))?;
    let by = super::auth::actor(&p, body["by"].as_str())?;
    let now = s.clock.now_ms();
    let silence = Silence::parse(&body, &by, now, &s.time_zone).map_err(ApiError::BadRequest)?;
    let x = send(&s, SilenceOp::Create(silence)).await?;
    tracing::info!(silence = %silence_id(x.id), by = %x.by, reason = %x.reason, "Silence set.");
    Ok((StatusCode::CREATED, Json(shown(&x, now, &HashMap::new()))).into_response())
}

async fn expire(
    State(s): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path(raw): Path<String>,
    b: Bytes,
) -> ApiResult {
    let id = id_of(&raw)?;
    let body: Value = if b.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&b).map_err(|e| ApiError::BadRequest(format!("body: {e}")))?
    };
    let by = super::auth::actor(&p, body["by"].as_str())?;
    let x = send(&s, SilenceOp::Expire { id, by }).await?;
    tracing::info!(silence = %silence_id(x.id), by = ?x.expired_by, "Silence ended early.");
    Ok(Json(x.to_json(s.clock.now_ms())).into_response())
}
