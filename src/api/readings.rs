//! `GET /api/v1/devices/{id}/readings`: a device's history, as raw readings or as buckets of
//! the rollups (`store::rollups`).
//!
//! `step` chooses: `raw`, `5m`, `1h`, `1d`, or `auto` (the default): the finest resolution
//! that returns at most `limit` rows, raw readings when they fit and are all still kept, so a
//! short range answers as before rollups existed and a range beyond the raw retention comes
//! from the rollups.

use super::{parse_limit, parse_time, read, ApiError, ApiResult, ApiState};
use crate::model::rfc3339;
use crate::store::rollups::{self, Range, Step};
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;

/// The route.
pub(super) fn routes() -> Router<ApiState> {
    Router::new().route("/api/v1/devices/{id}/readings", get(readings))
}

/// What `step` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Raw,
    Step(Step),
    Auto,
}

fn parse_step(s: &str) -> Result<Want, ApiError> {
    match s {
        "raw" => Ok(Want::Raw),
        "auto" => Ok(Want::Auto),
        _ => Step::parse(s).map(Want::Step).ok_or_else(|| {
            ApiError::BadRequest(format!("step: {s:?} is not raw, 5m, 1h, 1d or auto"))
        }),
    }
}

async fn readings(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let now = s.clock.now_ms();
    let mut range = Range {
        device: id,
        metric: None,
        since: now - 86_400_000,
        until: now + 86_400_000,
        limit: parse_limit(q.get("limit"), 10_000, 100_000)?,
    };
    let mut want = Want::Auto;
    for (k, v) in &q {
        match k.as_str() {
            "metric" => range.metric = Some(v.clone()),
            "since" => range.since = parse_time(v, k)?,
            "until" => range.until = parse_time(v, k)?,
            "step" => want = parse_step(v)?,
            "limit" => {}
            other => return Err(ApiError::BadRequest(format!("unknown parameter {other:?}"))),
        }
    }
    let v = read(&s, move |c| {
        let step = match want {
            Want::Raw => None,
            Want::Step(st) => Some(st),
            Want::Auto => rollups::auto_step(c, &range)?,
        };
        Ok(match step {
            None => rollups::raw(c, &range)?
                .into_iter()
                .map(|r| {
                    json!({
                        "ts": rfc3339(r.ts),
                        "metric": r.metric,
                        "channel": r.channel,
                        "value": r.value,
                    })
                })
                .collect::<Vec<Value>>(),
            Some(st) => rollups::buckets(c, st, &range)?
                .into_iter()
                .map(|b| {
                    json!({
                        "ts": rfc3339(b.ts),
                        "metric": b.metric,
                        "channel": b.channel,
                        "min": b.agg.min,
                        "max": b.agg.max,
                        "mean": b.agg.sum / b.agg.count.max(1) as f64,
                        "count": b.agg.count,
                        "step": st.as_str(),
                    })
                })
                .collect(),
        })
    })
    .await?;
    Ok(Json(v).into_response())
}
