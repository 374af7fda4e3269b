//! (added) The GB/T 26875.3 gateway's audit record: `GET /api/v1/gb26875/frames?device=&since=&limit=`
//! (the raw frames both ways, newest first).

use super::{parse_limit, parse_time, read, ApiError, ApiResult, ApiState};
use crate::store::frames;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;
use std::collections::HashMap;

/// The routes of this module.
pub(super) fn routes() -> Router<ApiState> {
    Router::new().route("/api/v1/gb26875/frames", get(list))
}

async fn list(State(s): State<ApiState>, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    let limit = parse_limit(q.get("limit"), 100, 10_000)?;
    let (mut device, mut since) = (None, None);
    for (k, v) in &q {
        match k.as_str() {
            "device" => device = Some(v.clone()),
            "since" => since = Some(parse_time(v, k)?),
            "limit" => {}
            other => return Err(ApiError::BadRequest(format!("unknown parameter {other:?}"))),
        }
    }
    let rows = read(&s, move |c| {
        Ok(frames::list(c, device.as_deref(), since, limit)?)
    })
    .await?;
    let v: Vec<Value> = rows.iter().map(|(id, r)| r.json(*id)).collect();
    Ok(Json(v).into_response())
}
