//! Duty rosters over HTTP: `GET /api/v1/duty` (every control room now, or one building at an
//! instant) and the overrides, `GET`/`POST /api/v1/duty/overrides` and
//! `DELETE /api/v1/duty/overrides/{id}`; (added) duty checks, `GET`/`POST /api/v1/duty/checks`
//! (a check is sent by the pipeline, like any command).
//!
//! Resolution reads the roster in memory ([`crate::duty::Live`]). An override is written to
//! the store through a small writer connection of its own (`store::duty`), then the set in
//! force is reloaded from the store, so memory never holds an override the store does not.

use super::auth::actor;
use super::{parse_time, ApiError, ApiResult, ApiState};
use crate::auth::Principal;
use crate::duty::{Duty, Override, Party, Person, RoomDuty, RoomInfo, Roster, ShiftOnDuty};
use crate::model::{parse_rfc3339, rfc3339, Millis};
use crate::store::duty::{self as rows, override_id, parse_override_id};
use crate::store::StoreError;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Longest override (a leave of a year).
const MAX_OVERRIDE_MS: Millis = 366 * 86_400_000;

/// The duty routes, merged into the API's router.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/duty", get(get_duty))
        .route(
            "/api/v1/duty/overrides",
            get(list_overrides).post(post_override),
        )
        .route("/api/v1/duty/overrides/{id}", delete(delete_override))
        .route("/api/v1/duty/checks", get(list_checks).post(post_check))
}

fn person(p: &Person) -> Value {
    json!({"id": p.id, "name": p.name, "email": p.email, "phone": p.phone,
           "lang": p.lang.as_str()})
}

fn people(ps: &[Person]) -> Value {
    Value::Array(ps.iter().map(person).collect())
}

fn party(p: &Party) -> Value {
    let mut v = json!({"name": p.name, "people": people(&p.people), "email": p.email,
                       "phone": p.phone});
    if let Some(id) = &p.id {
        v["id"] = json!(id);
    }
    v
}

fn room(r: &RoomInfo) -> Value {
    json!({"id": r.id, "name": r.name, "tz": r.tz, "wecom": r.wecom, "dingtalk": r.dingtalk})
}

fn shift(s: Option<&ShiftOnDuty>) -> Value {
    s.map_or(Value::Null, |s| {
        json!({"name": s.name, "day": s.day, "start": s.start_local, "end": s.end_local,
               "starts_at": rfc3339(s.start), "ends_at": rfc3339(s.end)})
    })
}

fn override_ids(ids: &[i64]) -> Value {
    Value::Array(ids.iter().map(|&i| json!(override_id(i))).collect())
}

fn room_duty(roster: &Roster, d: &RoomDuty) -> Value {
    let next = d
        .next_change
        .and_then(|t| roster.now_for_room(&d.room.id, t))
        .map_or(Value::Null, |n| {
            json!({"shift": shift(n.shift.as_ref()), "operators": people(&n.operators),
                   "unstaffed": n.unstaffed()})
        });
    json!({
        "control_room": room(&d.room),
        "shift": shift(d.shift.as_ref()),
        "operators": people(&d.operators),
        "unstaffed": d.unstaffed(),
        "overrides": override_ids(&d.overrides),
        "next_change_at": d.next_change.map(rfc3339),
        "next": next,
    })
}

fn building_duty(d: &Duty, at: Millis) -> Value {
    json!({
        "at": rfc3339(at),
        "building": d.building,
        "control_room": room(&d.room),
        "shift": shift(d.shift.as_ref()),
        "operators": people(&d.operators),
        "unstaffed": d.operators.is_empty(),
        "overrides": override_ids(&d.overrides),
        "manager": d.manager.as_ref().map_or(Value::Null, person),
        "maintenance": d.maintenance.as_ref().map_or(Value::Null, party),
        "fire_office": d.fire_office.as_ref().map_or(Value::Null, party),
    })
}

fn status_of(o: &Override, now: Millis) -> &'static str {
    if o.ended_at.is_some_and(|e| e < o.until) && o.effective_until() <= now {
        "ended"
    } else if o.effective_until() <= now {
        "over"
    } else if o.from > now {
        "future"
    } else {
        "active"
    }
}

fn override_json(o: &Override, now: Millis) -> Value {
    json!({
        "id": override_id(o.id),
        "control_room": o.room,
        "shift": o.shift,
        "from": rfc3339(o.from),
        "until": rfc3339(o.until),
        "replace": o.replace,
        "with": o.with,
        "by": o.by,
        "note": o.note,
        "created_at": rfc3339(o.created_at),
        "ended_at": o.ended_at.map(rfc3339),
        "status": status_of(o, now),
    })
}

/// `GET /api/v1/duty?building=&at=`
async fn get_duty(
    State(s): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let mut building = None;
    let mut at = s.clock.now_ms();
    for (k, v) in &q {
        match k.as_str() {
            "building" => building = Some(v.clone()),
            "at" => at = parse_time(v, k)?,
            other => return Err(ApiError::BadRequest(format!("unknown parameter {other:?}"))),
        }
    }
    let roster = s.duty.get();
    let body = match building {
        Some(b) => {
            let d = roster.on_duty(&b, at).ok_or_else(|| {
                ApiError::NotFound(format!("building {b:?} is in no control room's roster"))
            })?;
            building_duty(&d, at)
        }
        None => json!({
            "at": rfc3339(at),
            "control_rooms": roster
                .all_rooms(at)
                .iter()
                .map(|d| room_duty(&roster, d))
                .collect::<Vec<_>>(),
        }),
    };
    Ok(Json(body).into_response())
}

/// `GET /api/v1/duty/overrides?control_room=`: overrides in force now or later, by `from`.
async fn list_overrides(
    State(s): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let mut room = None;
    for (k, v) in &q {
        match k.as_str() {
            "control_room" => room = Some(v.clone()),
            other => return Err(ApiError::BadRequest(format!("unknown parameter {other:?}"))),
        }
    }
    let now = s.clock.now_ms();
    let roster = s.duty.get();
    let mut list: Vec<&Override> = roster
        .overrides()
        .iter()
        .filter(|o| o.effective_until() > now)
        .filter(|o| room.as_deref().is_none_or(|r| o.room == r))
        .collect();
    list.sort_by_key(|o| (o.from, o.id));
    let v: Vec<Value> = list.iter().map(|o| override_json(o, now)).collect();
    Ok(Json(v).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideBody {
    control_room: String,
    #[serde(default)]
    shift: Option<String>,
    from: String,
    until: String,
    replace: String,
    #[serde(default)]
    with: Option<String>,
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

fn bad(m: String) -> ApiError {
    ApiError::BadRequest(m)
}

/// Checks a new override against the roster; the override to store.
fn check(roster: &Roster, b: OverrideBody, by: String, now: Millis) -> Result<Override, ApiError> {
    let shifts = roster.shifts_of(&b.control_room).ok_or_else(|| {
        bad(format!(
            "control_room: unknown control room {:?}",
            b.control_room
        ))
    })?;
    if let Some(sh) = &b.shift {
        if !shifts.contains(&sh.as_str()) {
            return Err(bad(format!(
                "shift: control room {:?} has no shift {sh:?} (it has {})",
                b.control_room,
                shifts.join(", ")
            )));
        }
    }
    let time = |v: &str, key: &str| {
        parse_rfc3339(v).ok_or_else(|| bad(format!("{key}: {v:?} is not an RFC 3339 time")))
    };
    let from = time(&b.from, "from")?;
    let until = time(&b.until, "until")?;
    if until <= from {
        return Err(bad("until must be after from".into()));
    }
    if until <= now {
        return Err(bad("until is in the past".into()));
    }
    if until - from > MAX_OVERRIDE_MS {
        return Err(bad("an override lasts at most 366 days".into()));
    }
    if roster.person(&b.replace).is_none() {
        return Err(bad(format!("replace: unknown person {:?}", b.replace)));
    }
    if let Some(w) = &b.with {
        if roster.person(w).is_none() {
            return Err(bad(format!("with: unknown person {w:?}")));
        }
        if *w == b.replace {
            return Err(bad("with must be someone other than replace".into()));
        }
    }
    if b.note.as_ref().is_some_and(|n| n.len() > 10_000) {
        return Err(bad("note too long".into()));
    }
    Ok(Override {
        id: 0,
        room: b.control_room,
        shift: b.shift,
        from,
        until,
        replace: b.replace,
        with: b.with,
        by,
        note: b.note.filter(|n| !n.trim().is_empty()),
        created_at: now,
        ended_at: None,
    })
}

/// Runs `f` on the override writer connection with the writer lock held, then puts the
/// overrides in the store in force.
async fn write<T: Send + 'static>(
    s: &ApiState,
    now: Millis,
    f: impl FnOnce(&rusqlite::Connection) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let live = Arc::clone(&s.duty);
    let dir = s.dir.clone();
    tokio::task::spawn_blocking(move || {
        let _one_writer = live.writer();
        let conn = rows::open_writer(&dir).map_err(busy)?;
        let out = f(&conn)?;
        live.set_overrides(
            rows::load(&conn, now.saturating_sub(crate::duty::OVERRIDES_KEPT_MS)).map_err(busy)?,
        );
        Ok(out)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
}

/// The pipeline held the write lock for the whole busy timeout (sustained heavy ingest): a 503
/// the caller may retry; other store failures are 500s.
fn busy(e: StoreError) -> ApiError {
    match &e {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            ApiError::Unavailable("the store is busy; try again".into())
        }
        _ => e.into(),
    }
}

/// `POST /api/v1/duty/overrides`
async fn post_override(
    State(s): State<ApiState>,
    Extension(p): Extension<Principal>,
    b: Bytes,
) -> ApiResult {
    let body: OverrideBody = serde_json::from_slice(&b).map_err(|e| bad(format!("body: {e}")))?;
    let by = actor(&p, body.by.as_deref())?;
    let now = s.clock.now_ms();
    let o = check(&s.duty.get(), body, by, now)?;
    let stored = write(&s, now, move |c| rows::insert(c, &o).map_err(busy)).await?;
    Ok((StatusCode::CREATED, Json(override_json(&stored, now))).into_response())
}

/// `DELETE /api/v1/duty/overrides/{id}`: ends an override now.
async fn delete_override(State(s): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    let n = parse_override_id(&id)
        .ok_or_else(|| ApiError::NotFound(format!("override {id} not found")))?;
    let now = s.clock.now_ms();
    let ended = write(&s, now, move |c| {
        let o = rows::get(c, n)
            .map_err(busy)?
            .ok_or_else(|| ApiError::NotFound(format!("override {id} not found")))?;
        if !rows::end(c, n, now).map_err(busy)? {
            return Err(ApiError::Conflict(format!(
                "override {} is already over",
                override_id(o.id)
            )));
        }
        Ok(rows::get(c, n)?.unwrap_or(o))
    })
    .await?;
    Ok(Json(override_json(&ended, now)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckBody {
    control_room: String,
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    deadline_s: Option<u32>,
}

/// `POST /api/v1/duty/checks` `{"control_room", "by", "deadline_s"}`: sends a duty check to
/// every transmitter of the room's buildings; 202 with the check once it is durable.
async fn post_check(
    State(s): State<ApiState>,
    Extension(p): Extension<Principal>,
    b: Bytes,
) -> ApiResult {
    use crate::duty::checks::DEADLINE_RANGE_S;
    use crate::pipeline::{DutyCheckError, DutyCheckRequest, Input};
    let b: CheckBody = serde_json::from_slice(&b).map_err(|e| bad(format!("body: {e}")))?;
    let by = actor(&p, b.by.as_deref())?;
    if b.deadline_s.is_some_and(|d| !DEADLINE_RANGE_S.contains(&d)) {
        return Err(bad(format!(
            "deadline_s must be {}–{}",
            DEADLINE_RANGE_S.start(),
            DEADLINE_RANGE_S.end()
        )));
    }
    if s.duty.get().shifts_of(&b.control_room).is_none() {
        return Err(bad(format!("unknown control_room {:?}", b.control_room)));
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let stopping = || ApiError::Unavailable("the pipeline is stopping".into());
    s.pipeline
        .send(Input::DutyCheck {
            request: DutyCheckRequest {
                room: b.control_room,
                by,
                deadline_s: b.deadline_s,
            },
            reply: tx,
        })
        .map_err(|_| stopping())?;
    match rx.await.map_err(|_| stopping())? {
        Ok(v) => Ok((StatusCode::ACCEPTED, Json(v)).into_response()),
        Err(DutyCheckError::UnknownRoom(m)) => Err(bad(m)),
        Err(DutyCheckError::NoTransmitters(m)) => Err(ApiError::Conflict(m)),
        Err(DutyCheckError::Store(e)) => Err(e.into()),
    }
}

/// `GET /api/v1/duty/checks?control_room=&limit=`: checks, newest first, with the status of
/// every transmitter.
async fn list_checks(
    State(s): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let mut room = None;
    for (k, v) in &q {
        match k.as_str() {
            "control_room" => room = Some(v.clone()),
            "limit" => {}
            other => return Err(ApiError::BadRequest(format!("unknown parameter {other:?}"))),
        }
    }
    let limit = super::parse_limit(q.get("limit"), 100, 10_000)?;
    let v = super::read(&s, move |c| {
        Ok(crate::store::duty_checks::list(c, room.as_deref(), limit)?)
    })
    .await?;
    Ok(Json(v).into_response())
}
