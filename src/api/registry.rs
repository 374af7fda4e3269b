//! (added) `/api/v1/registry`: the buildings and devices as registered, and reloads of
//! `registry.file` without a restart (`POST /api/v1/registry/reload` and the file watch,
//! `registry.watch_s`).
//!
//! A reload reads and validates the file as a start would (`Registry::load` and the rules'
//! registry check). A file with problems changes nothing: the problems go back to the caller
//! with their key paths and to the log, and `firewatch_registry_reloads_total{result="failed"}`
//! counts it. A good file goes to the pipeline first (`Input::Registry`: the rules engine, and
//! the routing that reads the engine's registry, swap it between two batches), then into the
//! API's [`crate::registry::Live`].

use super::{ApiError, ApiResult, ApiState};
use crate::model::{BuildingClass, Kind};
use crate::pipeline::Input;
use crate::registry::{required::CLASSES, BuildingEntry, DeviceEntry, Registry, Stamp};
use crate::settings::Problem;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/registry", get(get_registry))
        .route("/api/v1/registry/buildings/{id}", get(get_building))
        .route("/api/v1/registry/reload", post(post_reload))
}

fn kinds(k: &[Kind]) -> Value {
    json!(k.iter().map(|k| k.as_str()).collect::<Vec<_>>())
}

fn building_json(r: &Registry, b: &BuildingEntry) -> Value {
    let expected: BTreeMap<&str, u32> = b.expected.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    json!({
        "id": b.id,
        "name": b.name,
        "address": b.address,
        "lat": b.lat,
        "lon": b.lon,
        "class": b.class.as_str(),
        "height_m": b.height_m,
        "control_room": b.control_room,
        "manager": b.manager,
        "expected": expected,
        "required": b.required.as_deref().map(kinds),
        "required_kinds": kinds(&r.required_kinds(&b.id)),
        "devices": r.devices_of(&b.id).count(),
    })
}

fn device_json(d: &DeviceEntry) -> Value {
    let thresholds: BTreeMap<&str, Value> = d
        .thresholds
        .iter()
        .map(|(rule, l)| (rule.as_str(), json!({"raise": l.raise, "clear": l.clear})))
        .collect();
    json!({
        "id": d.id,
        "building": d.building,
        "kind": d.kind.as_str(),
        "floor": d.floor,
        "zone": d.zone,
        "location": d.location,
        "location_derived": d.location.is_some() && d.written_location().is_none(),
        "installed": d.installed,
        "power": d.power.map(|p| p.as_str()),
        "interval_s": d.interval_s,
        "thresholds": thresholds,
        "mqtt_credentials": d.mqtt_password_hash.is_some(),
    })
}

/// `GET /api/v1/registry`: every building and device as registered, the required kinds of each
/// class in force, and the file it came from.
async fn get_registry(State(s): State<ApiState>) -> ApiResult {
    let r = s.registry.get();
    let required: BTreeMap<&str, Value> = CLASSES
        .iter()
        .map(|&c: &BuildingClass| (c.as_str(), kinds(&r.required_for_class(c))))
        .collect();
    Ok(Json(json!({
        "file": s.registry.file().display().to_string(),
        "strict": r.strict,
        "required": required,
        "buildings": r.buildings.iter().map(|b| building_json(&r, b)).collect::<Vec<_>>(),
        "devices": r.devices.iter().map(device_json).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `GET /api/v1/registry/buildings/{id}`: one registered building with its devices.
async fn get_building(State(s): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    let r = s.registry.get();
    let b = r
        .building(&id)
        .ok_or_else(|| ApiError::NotFound(format!("building {id} is not registered")))?;
    let mut v = building_json(&r, b);
    v["device_list"] = json!(r.devices_of(&id).map(device_json).collect::<Vec<_>>());
    Ok(Json(v).into_response())
}

/// Why a reload changed nothing.
#[derive(Debug)]
pub enum ReloadError {
    /// The file has problems (with their key paths).
    Invalid(Vec<Problem>),
    /// The pipeline is stopping.
    Stopping,
    /// Reading the file failed inside firewatch (a task failure).
    Internal(String),
}

/// Reads `registry.file`, validates it and, when it is good, puts it in force everywhere.
/// Returns what changed. `why` names the trigger in the log (`api`, `file watch`).
pub async fn reload(s: &ApiState, why: &'static str) -> Result<Value, ReloadError> {
    let live = Arc::clone(&s.registry);
    let _one_at_a_time = live.reloading().await;
    let file = live.file().to_owned();
    let rules = Arc::clone(&s.rules);
    let (stamp, loaded) = tokio::task::spawn_blocking(move || {
        // Stamped before reading: a change during the read is seen by the next look.
        let stamp = Stamp::of(&file);
        if stamp.is_none() {
            let p = Problem::new(
                "registry.file",
                format!(
                    "cannot read {}: it does not exist (a reload never empties the registry in force)",
                    file.display()
                ),
            );
            return (stamp, Err(vec![p]));
        }
        let loaded = Registry::load(&file).and_then(|r| {
            let p = rules.check_registry(&r);
            if p.is_empty() {
                Ok(r)
            } else {
                Err(p)
            }
        });
        (stamp, loaded)
    })
    .await
    .map_err(|e| ReloadError::Internal(e.to_string()))?;
    live.mark_seen(stamp);
    let file = live.file().display().to_string();
    let new = match loaded {
        Ok(r) => Arc::new(r),
        Err(problems) => {
            s.metrics.registry_reloads_failed.fetch_add(1, Relaxed);
            let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
            tracing::warn!(
                file = %file,
                trigger = why,
                problems = %lines.join("; "),
                "Registry reload refused; the registry in force is kept."
            );
            return Err(ReloadError::Invalid(problems));
        }
    };
    let changes = live.get().diff(&new);
    let (tx, rx) = tokio::sync::oneshot::channel();
    s.pipeline
        .send(Input::Registry {
            registry: Arc::clone(&new),
            reply: tx,
        })
        .map_err(|_| ReloadError::Stopping)?;
    rx.await.map_err(|_| ReloadError::Stopping)?;
    live.set(Arc::clone(&new));
    s.metrics.registry_reloads_ok.fetch_add(1, Relaxed);
    tracing::info!(
        file = %file,
        trigger = why,
        strict = new.strict,
        buildings = new.buildings.len(),
        devices = new.devices.len(),
        buildings_added = changes.buildings.added,
        buildings_changed = changes.buildings.changed,
        buildings_removed = changes.buildings.removed,
        devices_added = changes.devices.added,
        devices_changed = changes.devices.changed,
        devices_removed = changes.devices.removed,
        "Registry reloaded."
    );
    Ok(json!({
        "result": "ok",
        "file": file,
        "strict": new.strict,
        "buildings": new.buildings.len(),
        "devices": new.devices.len(),
        "changes": changes,
    }))
}

/// `POST /api/v1/registry/reload`: 200 with what changed, or 422 with every problem of the
/// file (nothing changed).
async fn post_reload(State(s): State<ApiState>) -> Result<Response, ApiError> {
    match reload(&s, "api").await {
        Ok(v) => Ok(Json(v).into_response()),
        Err(ReloadError::Invalid(problems)) => {
            let list: Vec<Value> = problems
                .iter()
                .map(|p| json!({"key": p.key, "message": p.message}))
                .collect();
            let body = json!({
                "error": format!(
                    "registry.file has {} problem(s); the registry in force is kept",
                    problems.len()
                ),
                "problems": list,
            });
            Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response())
        }
        Err(ReloadError::Stopping) => Err(ApiError::Unavailable("the pipeline is stopping".into())),
        Err(ReloadError::Internal(e)) => Err(ApiError::Internal(e)),
    }
}

/// Looks at `registry.file` every `every` (its modification time and size) and reloads it when
/// it changed; ends on `shutdown`. A bad file is reported once per change, not at every look.
pub async fn watch(s: ApiState, every: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tick.tick().await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let live = Arc::clone(&s.registry);
        let changed = tokio::task::spawn_blocking(move || live.changed().is_some()).await;
        if !matches!(changed, Ok(true)) {
            continue;
        }
        match reload(&s, "file watch").await {
            Ok(_) | Err(ReloadError::Invalid(_)) => {}
            Err(ReloadError::Stopping) => return,
            Err(ReloadError::Internal(e)) => {
                tracing::error!(error = %e, "Registry file watch failed to read the file.");
            }
        }
    }
}
