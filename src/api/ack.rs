//! `POST /api/v1/ack/{code}`: acknowledgement by the short code a notification carries, for
//! chat bots and SMS gateways that relay a person's reply. It needs `http.ack_token`, given
//! as `Authorization: Bearer …` or as `?token=…` (many gateways cannot set headers).

use super::{act_on, ApiError, ApiResult, ApiState};
use crate::model::alert::ack_code_residue;
use crate::store::alerts::{self, Action};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CodeBody {
    /// Who replied (a name).
    by: Option<String>,
    /// Or where the reply came from (a phone number, a chat user id).
    from: Option<String>,
    note: Option<String>,
}

/// Equal in time independent of where the strings differ.
pub(super) async fn ack_by_code(
    State(s): State<ApiState>,
    Path(code): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    b: Bytes,
) -> ApiResult {
    let Some(token) = s.ack_token.as_ref() else {
        return Err(ApiError::NotFound(
            "acknowledgement by code is off: set http.ack_token".into(),
        ));
    };
    // The header or the query (a gateway that cannot set headers); either may carry it, so a
    // client that sends its API token in the header can still pass the code's token in the query.
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let query = q.get("token").map(String::as_str);
    let valid = |g: Option<&str>| g.is_some_and(|g| super::auth::same(g.trim(), token.expose()));
    if !(valid(header) || valid(query)) {
        return Err(ApiError::Unauthorized("a valid token is needed".into()));
    }
    let body: CodeBody = if b.iter().all(u8::is_ascii_whitespace) {
        CodeBody::default()
    } else {
        serde_json::from_slice(&b).map_err(|e| ApiError::BadRequest(format!("body: {e}")))?
    };
    let by = body
        .by
        .or(body.from)
        .map(|b| b.trim().to_owned())
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| format!("code {}", code.trim().to_uppercase()));
    if by.len() > 200 || body.note.as_ref().is_some_and(|n| n.len() > 10_000) {
        return Err(ApiError::BadRequest("by or note too long".into()));
    }
    let residue = ack_code_residue(&code)
        .ok_or_else(|| ApiError::BadRequest(format!("{code:?} is not an acknowledgement code")))?;
    let alert = super::read(&s, move |c| Ok(alerts::by_code(c, residue)?))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no alert has the code {code:?}")))?;
    act_on(
        &s,
        alert.id,
        Action::Ack {
            by,
            note: body.note,
        },
    )
    .await
}
