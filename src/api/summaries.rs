//! (added) Daily summaries to fire-safety managers: `GET /api/v1/summaries?building=&limit=`
//! (the summaries made, newest first), `GET /api/v1/summaries/{id}` (what one says and where
//! it went) and `POST /api/v1/summaries/send` (make one now and send it to the building's
//! manager; it goes through the pipeline like every write).

use super::{parse_limit, read, ApiError, ApiResult, ApiState};
use crate::auth::Principal;
use crate::model::summary::parse_summary_id;
use crate::pipeline::{Input, SummaryError, SummaryRequest};
use crate::store::{notifications, summaries};
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
        .route("/api/v1/summaries", get(list))
        .route("/api/v1/summaries/send", post(send))
        .route("/api/v1/summaries/{id}", get(one))
}

async fn list(State(s): State<ApiState>, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    let limit = parse_limit(q.get("limit"), 100, 1000)?;
    let mut building = None;
    for (k, v) in &q {
        match k.as_str() {
            "building" => building = Some(v.clone()),
            "limit" => {}
            other => return Err(ApiError::BadRequest(format!("unknown parameter {other:?}"))),
        }
    }
    let v = read(&s, move |c| {
        Ok(summaries::list(c, building.as_deref(), limit)?
            .iter()
            .map(|x| x.to_json(true))
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(Json(v).into_response())
}

async fn one(State(s): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    let n = parse_summary_id(&id);
    let not_found = move || ApiError::NotFound(format!("summary {id} not found"));
    let n = n.ok_or_else(not_found.clone())?;
    let v = read(&s, move |c| {
        let x = summaries::get(c, n)?.ok_or_else(not_found)?;
        let mut j = x.to_json(false);
        let f = notifications::Filter {
            summary: Some(n),
            limit: 1000,
            ..notifications::Filter::default()
        };
        j["notifications"] = notifications::list(c, &f)?.into();
        Ok(j)
    })
    .await?;
    Ok(Json(v).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    building: String,
    #[serde(default)]
    by: Option<String>,
}

async fn send(
    State(s): State<ApiState>,
    Extension(p): Extension<Principal>,
    b: Bytes,
) -> ApiResult {
    let b: SendBody =
        serde_json::from_slice(&b).map_err(|e| ApiError::BadRequest(format!("body: {e}")))?;
    let building = b.building.trim().to_owned();
    if building.is_empty() || building.len() > 64 {
        return Err(ApiError::BadRequest(
            "building: a building id is required".into(),
        ));
    }
    let by = super::auth::actor(&p, b.by.as_deref())?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    s.pipeline
        .send(Input::Summary {
            request: SummaryRequest { building, by },
            reply: tx,
        })
        .map_err(|_| ApiError::Unavailable("the pipeline is stopping".into()))?;
    let r = rx
        .await
        .map_err(|_| ApiError::Unavailable("the pipeline is stopping".into()))?;
    match r {
        Ok(v) => Ok((StatusCode::CREATED, Json(v)).into_response()),
        Err(SummaryError::UnknownBuilding(m)) => Err(ApiError::NotFound(m)),
        Err(SummaryError::NoRecipient(m)) => Err(ApiError::Conflict(m)),
        Err(SummaryError::Store(e)) => Err(e.into()),
    }
}
