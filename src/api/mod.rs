//! The HTTP API (contract sections 3–5), `/healthz`, `/metrics` and a small status page.
//!
//! Reads go straight to the store through read-only connections on the blocking pool; people
//! actions (ack, close, notes) go through the pipeline thread, so they are serialised with the
//! rule engine and committed with the same durability as everything else.

mod ack;
pub mod auth;
mod duty;
mod events;
mod gateway;
mod readings;
pub mod registry;
mod reports;
mod silences;
mod summaries;
pub mod tls;
mod ui;
mod workorders;

use crate::auth::Principal;
use crate::bus::Bus;
use crate::clock::{wall_ms, SharedClock};
use crate::inventory;
use crate::metrics::Metrics;
use crate::model::alert::{Classification, Status};
use crate::model::notification::{ChannelKind, DeliveryStatus};
use crate::model::{parse_rfc3339, rfc3339, Kind, Millis, Severity};
use crate::pipeline::Input;
use crate::settings::{Problem, Secret};
use crate::store::alerts::{self, Action, ActionError};
use crate::store::commands::{self, CommandError, CommandKind, CommandRequest, CommandStatus};
use crate::store::notifications;
use crate::store::{self, StoreError};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use rusqlite::{params, Connection};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// API and dashboard listen address.
    pub listen: String,
    /// Token of `POST /api/v1/ack/{code}` (off when unset).
    pub ack_token: Option<Secret>,
    /// The address people reach the dashboard at, for the links in notifications; unset:
    /// `http://{listen}`.
    pub public_url: Option<String>,
    /// (added) Map tiles behind the dashboard's risk map, as a URL template with `{z}`, `{x}`
    /// and `{y}` (e.g. a town's own tile server); unset: a plain background, no tiles.
    pub map_tiles: Option<String>,
    /// (added) PEM certificate chain: with `tls_key`, `listen` serves HTTPS only.
    pub tls_cert: Option<PathBuf>,
    /// (added) PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".into(),
            ack_token: None,
            public_url: None,
            map_tiles: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl HttpConfig {
    /// Every problem of the `[http]` settings.
    pub fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            p.push(Problem::new(
                "http.listen",
                format!("{:?} is not host:port", self.listen),
            ));
        }
        if self
            .ack_token
            .as_ref()
            .is_some_and(|t| t.expose().trim().len() < 16)
        {
            p.push(Problem::new(
                "http.ack_token",
                "too short: use at least 16 characters (e.g. `openssl rand -hex 16`)",
            ));
        }
        if let Some(u) = &self.public_url {
            match url::Url::parse(u) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => p.push(Problem::new(
                    "http.public_url",
                    format!("{u:?} is not an http:// or https:// URL"),
                )),
            }
        }
        if let Some(t) = &self.map_tiles {
            let scheme_ok = t.starts_with("http://") || t.starts_with("https://");
            let has_all = ["{z}", "{x}", "{y}"].iter().all(|k| t.contains(k));
            if !scheme_ok || !has_all {
                p.push(Problem::new(
                    "http.map_tiles",
                    format!("{t:?} is not an http(s) URL template with {{z}}, {{x}} and {{y}}"),
                ));
            }
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => p.push(Problem::new(
                "http.tls_key",
                "http.tls_cert is set: set http.tls_key too (or neither)",
            )),
            (None, Some(_)) => p.push(Problem::new(
                "http.tls_cert",
                "http.tls_key is set: set http.tls_cert too (or neither)",
            )),
            (Some(c), Some(k)) => {
                if let Err(e) = tls::server_config(c, k) {
                    p.extend(e);
                }
            }
            (None, None) => {}
        }
        p
    }

    /// Whether `listen` serves HTTPS (`tls_cert` and `tls_key` set).
    pub fn tls(&self) -> bool {
        self.tls_cert.is_some() && self.tls_key.is_some()
    }

    /// The base of the links to the dashboard (`http.public_url`, else `http://{listen}`, or
    /// `https://{listen}` with TLS), without a trailing `/`.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None if self.tls() => format!("https://{}", self.listen),
            None => format!("http://{}", self.listen),
        }
    }
}

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// `storage.dir`.
    pub dir: PathBuf,
    /// The pipeline's input.
    pub pipeline: Sender<Input>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The registry in force (replaced by a reload: take it with `get()` per request).
    pub registry: Arc<crate::registry::Live>,
    /// Offline timeouts are computed with the rules.
    pub rules: Arc<crate::rules::Rules>,
    /// The clock (device states and default time ranges are relative to it).
    pub clock: SharedClock,
    /// The change feed (`GET /api/v1/events`).
    pub changes: Bus,
    /// Ends the event streams when the HTTP server stops.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// `http.ack_token`.
    pub ack_token: Option<Secret>,
    /// The duty roster with the overrides in force (`/api/v1/duty`).
    pub duty: Arc<crate::duty::Live>,
    /// (added) Access control (`[auth]`).
    pub auth: Arc<auth::Auth>,
    /// (added) `http.map_tiles`, for the dashboard.
    pub map_tiles: Option<String>,
    /// (added) `notify.tz`: the dashboard shows times in it.
    pub time_zone: String,
}

/// API errors: the caller's mistakes are 4xx with a message; our failures are a plain 500.
#[derive(Debug)]
pub enum ApiError {
    /// 400.
    BadRequest(String),
    /// 401.
    Unauthorized(String),
    /// 404.
    NotFound(String),
    /// 409.
    Conflict(String),
    /// 503.
    Unavailable(String),
    /// 500, logged, never shown.
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, msg) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m),
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
            ApiError::Internal(m) => {
                // The detail (store, I/O) is for the log; the caller gets an id to quote.
                let id = error_id();
                tracing::error!(error = %m, error_id = %id, "API request failed.");
                let body = json!({ "error": "internal error", "error_id": id });
                return (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response();
            }
        };
        (status, Json(json!({ "error": msg }))).into_response()
    }
}

/// (added) A short random id tying a 500 answer to its line in the log.
fn error_id() -> String {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut b = [0u8; 6];
    match SystemRandom::new().fill(&mut b) {
        Ok(()) => hex::encode(b),
        Err(_) => format!("{:x}", wall_ms()),
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        ApiError::Internal(e.to_string())
    }
}

type ApiResult = Result<Response, ApiError>;

/// Builds the router.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/metrics/coverage", get(coverage_metrics))
        .route("/api/v1/alerts", get(list_alerts))
        .route("/api/v1/alerts/{id}", get(get_alert))
        .route("/api/v1/alerts/{id}/ack", post(ack_alert))
        .route("/api/v1/alerts/{id}/close", post(close_alert))
        .route("/api/v1/alerts/{id}/notes", post(note_alert))
        .route("/api/v1/devices", get(list_devices))
        .route("/api/v1/devices/{id}", get(get_device))
        .route("/api/v1/buildings", get(list_buildings))
        .route("/api/v1/buildings/{id}", get(get_building))
        .route("/api/v1/coverage", get(coverage))
        .route("/api/v1/rejected", get(list_rejected))
        .route("/api/v1/events", get(events::events))
        .route("/api/v1/devices/{id}/commands", post(post_command))
        .route("/api/v1/commands", get(list_commands))
        .route("/api/v1/commands/{id}", get(get_command))
        .route("/api/v1/notifications", get(list_notifications))
        .route("/api/v1/ack/{code}", post(ack::ack_by_code))
        .merge(duty::routes())
        .merge(reports::routes())
        .merge(workorders::routes())
        .merge(summaries::routes())
        .merge(silences::routes())
        .merge(registry::routes())
        .merge(readings::routes())
        .merge(gateway::routes())
        .merge(auth::routes())
        .merge(ui::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require,
        ))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(axum::middleware::from_fn_with_state(
            content_security_policy(state.map_tiles.as_deref()),
            security_headers,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .with_state(state)
}

/// (added) The dashboard's Content-Security-Policy: its own scripts only (no inline script),
/// styles of its own (and the style attributes it sets), images of its own and of the map-tile
/// server (`http.map_tiles`), the API and the change feed of its own origin, never framed.
fn content_security_policy(map_tiles: Option<&str>) -> HeaderValue {
    let tiles = map_tiles
        .and_then(|t| url::Url::parse(&t.replace(['{', '}'], "")).ok())
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o != "null")
        .map(|o| format!(" {o}"))
        .unwrap_or_default();
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self'{tiles}; connect-src 'self'; font-src 'self'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    );
    HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static("default-src 'none'"))
}

/// (added) Security headers on every answer: the CSP, no MIME sniffing, no framing, no
/// referrer.
async fn security_headers(
    State(csp): State<HeaderValue>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, csp);
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

async fn read<T: Send + 'static>(
    state: &ApiState,
    f: impl FnOnce(&Connection) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let dir = state.dir.clone();
    tokio::task::spawn_blocking(move || {
        let conn = store::open_reader(&dir)?;
        f(&conn)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
}

fn parse_time(s: &str, key: &str) -> Result<Millis, ApiError> {
    s.parse::<i64>()
        .ok()
        .or_else(|| parse_rfc3339(s))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "{key}: {s:?} is not RFC 3339 or epoch milliseconds"
            ))
        })
}

fn parse_bool(s: &str, key: &str) -> Result<bool, ApiError> {
    match s {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::BadRequest(format!(
            "{key}: {s:?} is not true or false"
        ))),
    }
}

fn parse_limit(s: Option<&String>, default: u32, max: u32) -> Result<u32, ApiError> {
    match s {
        None => Ok(default),
        Some(s) => match s.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::BadRequest(format!("limit must be 1–{max}"))),
        },
    }
}

async fn metrics(State(s): State<ApiState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

/// `/metrics/coverage`: the coverage gauges, per building and for the town. Apart from
/// `/metrics`, because computing them reads every device record: scrape it at its own, longer
/// interval.
async fn coverage_metrics(State(s): State<ApiState>) -> ApiResult {
    let reg = s.registry.get();
    let cov = read(&s, move |c| Ok(inventory::coverage(c, &reg, None)?)).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        inventory::prometheus(&cov),
    )
        .into_response())
}

async fn healthz(State(s): State<ApiState>) -> Response {
    let m = &s.metrics;
    let mut problems = Vec::new();
    if !m.mqtt_connected.load(Relaxed) {
        problems.push("mqtt: not connected to the broker".to_owned());
    } else if !m.mqtt_subscribed.load(Relaxed) {
        // Connected but not subscribed receives nothing (SUBACK pending or refused).
        problems.push("mqtt: the subscription to fw/v1/# is not granted".to_owned());
    }
    let dir = s.dir.clone();
    let store_ok = tokio::task::spawn_blocking(move || {
        store::open_reader(&dir)
            .and_then(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
    })
    .await;
    if !matches!(store_ok, Ok(Ok(1))) {
        problems.push("store: not readable".to_owned());
    }
    let tick = m.pipeline_tick_ms.load(Relaxed);
    if wall_ms() - tick > 5_000 {
        problems.push(format!("pipeline: no progress since {}", rfc3339(tick)));
    }
    let failing = m.tsdb_failing_since.load(Relaxed);
    if failing != 0 && s.clock.now_ms() - failing > 60_000 {
        problems.push(format!(
            "tsdb: writes failing since {}, {} readings spooled",
            rfc3339(failing),
            m.tsdb_spool.load(Relaxed)
        ));
    }
    let body = json!({
        "status": if problems.is_empty() { "ok" } else { "unavailable" },
        "problems": problems,
        "mqtt_connected": m.mqtt_connected.load(Relaxed),
        "mqtt_subscribed": m.mqtt_subscribed.load(Relaxed),
        "tsdb_spool": m.tsdb_spool.load(Relaxed),
        "notifications_queued": m.notify_queued(),
    });
    let code = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn list_alerts(
    State(s): State<ApiState>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let mut f = alerts::Filter {
        limit: parse_limit(q.get("limit"), 100, 10_000)?,
        ..Default::default()
    };
    for (k, v) in &q {
        match k.as_str() {
            "active" => f.active = Some(parse_bool(v, k)?),
            "status" => {
                f.status = Some(v.parse::<Status>().map_err(|()| {
                    ApiError::BadRequest(format!(
                        "status must be one of {}",
                        Status::ALL.map(Status::as_str).join(", ")
                    ))
                })?);
            }
            "building" => f.building = Some(v.clone()),
            "device" => f.device = Some(v.clone()),
            "channel" => f.channel = Some(v.clone()),
            "rule" => f.rule = Some(v.clone()),
            "severity" => {
                f.severity = Some(v.parse::<Severity>().map_err(|()| {
                    ApiError::BadRequest("severity must be critical, major, minor or info".into())
                })?);
            }
            "since" => f.since = Some(parse_time(v, k)?),
            "limit" => {}
            other => return Err(ApiError::BadRequest(format!("unknown parameter {other:?}"))),
        }
    }
    f.building = auth::one_building(&p, f.building)?;
    let out = read(&s, move |c| {
        let list = alerts::list(c, &f)?;
        let ids: Vec<i64> = list.iter().map(|a| a.id).collect();
        let mut notes = alerts::notes_for(c, &ids)?;
        Ok(list
            .iter()
            .map(|a| alerts::json(c, a, notes.remove(&a.id).unwrap_or_default()))
            .collect::<Result<Vec<Value>, _>>()?)
    })
    .await?;
    Ok(Json(out).into_response())
}

fn alert_param(id: &str) -> Result<i64, ApiError> {
    alerts::parse_alert_id(id).ok_or_else(|| ApiError::NotFound(format!("alert {id} not found")))
}

async fn get_alert(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Extension(p): Extension<Principal>,
) -> ApiResult {
    let n = alert_param(&id)?;
    let v = read(&s, move |c| {
        let a = alerts::get(c, n)?
            .filter(|a| p.scope.allows(&a.building))
            .ok_or_else(|| ApiError::NotFound(format!("alert {id} not found")))?;
        let history = alerts::history_of(c, n)?;
        let mut j = alerts::json(c, &a, alerts::notes_of(&history))?;
        j["history"] =
            serde_json::to_value(&history).map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(j)
    })
    .await?;
    Ok(Json(v).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActBody {
    /// Who acts: only with `auth.bootstrap_token` ([`auth::actor`]).
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    classification: Option<String>,
}

fn body(bytes: &Bytes) -> Result<ActBody, ApiError> {
    let b: ActBody =
        serde_json::from_slice(bytes).map_err(|e| ApiError::BadRequest(format!("body: {e}")))?;
    if b.note.as_ref().is_some_and(|n| n.len() > 10_000) {
        return Err(ApiError::BadRequest("note too long".into()));
    }
    Ok(b)
}

async fn act(s: &ApiState, id: &str, action: Action) -> ApiResult {
    act_on(s, alert_param(id)?, action).await
}

/// Hands a people action on alert `n` to the pipeline; answers with the alert after the commit.
async fn act_on(s: &ApiState, n: i64, action: Action) -> ApiResult {
    let (tx, rx) = tokio::sync::oneshot::channel();
    s.pipeline
        .send(Input::Act {
            id: n,
            action,
            reply: tx,
        })
        .map_err(|_| ApiError::Unavailable("the pipeline is stopping".into()))?;
    let r = rx
        .await
        .map_err(|_| ApiError::Unavailable("the pipeline is stopping".into()))?;
    match r {
        Ok(a) => {
            let id = a.id;
            let j = read(s, move |c| {
                let notes = alerts::notes_for(c, &[id])?.into_values().next();
                Ok(alerts::json(c, &a, notes.unwrap_or_default())?)
            })
            .await?;
            Ok(Json(j).into_response())
        }
        Err(ActionError::NotFound(m)) => Err(ApiError::NotFound(m)),
        Err(ActionError::Conflict(m)) => Err(ApiError::Conflict(m)),
        Err(ActionError::Invalid(m)) => Err(ApiError::BadRequest(m)),
        Err(ActionError::Store(e)) => Err(e.into()),
    }
}

async fn ack_alert(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Extension(p): Extension<Principal>,
    b: Bytes,
) -> ApiResult {
    let b = body(&b)?;
    let by = auth::actor(&p, b.by.as_deref())?;
    act(&s, &id, Action::Ack { by, note: b.note }).await
}

async fn close_alert(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Extension(p): Extension<Principal>,
    b: Bytes,
) -> ApiResult {
    let b = body(&b)?;
    let by = auth::actor(&p, b.by.as_deref())?;
    let classification = b
        .classification
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "classification is required: one of {}",
                Classification::list()
            ))
        })?
        .parse::<Classification>()
        .map_err(|()| {
            ApiError::BadRequest(format!(
                "classification must be one of {}",
                Classification::list()
            ))
        })?;
    act(
        &s,
        &id,
        Action::Close {
            by,
            classification,
            note: b.note,
        },
    )
    .await
}

async fn note_alert(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Extension(p): Extension<Principal>,
    b: Bytes,
) -> ApiResult {
    let b = body(&b)?;
    let by = auth::actor(&p, b.by.as_deref())?;
    let note = b
        .note
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ApiError::BadRequest("note is required".into()))?;
    act(&s, &id, Action::Note { by, note }).await
}

async fn list_devices(
    State(s): State<ApiState>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let mut building = None;
    let mut kind = None;
    let mut online = None;
    for (k, v) in &q {
        match k.as_str() {
            "building" => building = Some(v.clone()),
            "kind" => {
                kind = Some(v.parse::<Kind>().map_err(|()| {
                    ApiError::BadRequest(format!("kind {v:?} is not a device kind"))
                })?);
            }
            "online" => online = Some(parse_bool(v, k)?),
            other => return Err(ApiError::BadRequest(format!("unknown parameter {other:?}"))),
        }
    }
    let (reg, rules) = (s.registry.get(), Arc::clone(&s.rules));
    let list = read(&s, move |c| {
        Ok(inventory::devices(c, &reg, &rules, building.as_deref())?)
    })
    .await?;
    let out: Vec<Value> = list
        .into_iter()
        .filter(|d| kind.is_none_or(|k| d["kind"] == k.as_str()))
        .filter(|d| online.is_none_or(|o| (d["state"] == "online") == o))
        .filter(|d| p.scope.allows(d["building"].as_str().unwrap_or("")))
        .collect();
    Ok(Json(out).into_response())
}

async fn get_device(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Extension(p): Extension<Principal>,
) -> ApiResult {
    let (reg, rules) = (s.registry.get(), Arc::clone(&s.rules));
    let v = read(&s, move |c| {
        // A store failure is a 500, never "not found".
        inventory::device(c, &reg, &rules, &id)?
            .filter(|d| p.scope.allows(d["building"].as_str().unwrap_or("")))
            .ok_or_else(|| ApiError::NotFound(format!("device {id} not found")))
    })
    .await?;
    Ok(Json(v).into_response())
}

async fn list_buildings(
    State(s): State<ApiState>,
    Extension(p): Extension<Principal>,
) -> ApiResult {
    let (reg, rules) = (s.registry.get(), Arc::clone(&s.rules));
    let mut v = read(&s, move |c| Ok(inventory::buildings(c, &reg, &rules)?)).await?;
    v.retain(|b| p.scope.allows(b["id"].as_str().unwrap_or("")));
    Ok(Json(v).into_response())
}

async fn get_building(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Extension(p): Extension<Principal>,
) -> ApiResult {
    let (reg, rules) = (s.registry.get(), Arc::clone(&s.rules));
    let v = read(&s, move |c| {
        if !p.scope.allows(&id) {
            return Err(ApiError::NotFound(format!("building {id} not found")));
        }
        inventory::building(c, &reg, &rules, &id)?
            .ok_or_else(|| ApiError::NotFound(format!("building {id} not found")))
    })
    .await?;
    Ok(Json(v).into_response())
}

/// `GET /api/v1/coverage?building=`: required kinds against registered, connected and online
/// devices, per building and for the town.
async fn coverage(
    State(s): State<ApiState>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let mut building = None;
    for (k, v) in &q {
        match k.as_str() {
            "building" => building = Some(v.clone()),
            other => return Err(ApiError::BadRequest(format!("unknown parameter {other:?}"))),
        }
    }
    let building = auth::one_building(&p, building)?;
    let reg = s.registry.get();
    let v = read(&s, move |c| {
        Ok(inventory::coverage(c, &reg, building.as_deref())?)
    })
    .await?;
    Ok(Json(v).into_response())
}

async fn list_rejected(
    State(s): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let mut reason = None;
    for (k, v) in &q {
        match k.as_str() {
            "reason" => reason = Some(v.clone()),
            "limit" => {}
            other => return Err(ApiError::BadRequest(format!("unknown parameter {other:?}"))),
        }
    }
    let limit = parse_limit(q.get("limit"), 100, 10_000)?;
    let v = read(&s, move |c| {
        let mut stmt = c.prepare(
            "SELECT id, received, reason, detail, topic, payload, size FROM rejected
             WHERE ?1 IS NULL OR reason = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![reason, limit], |r| {
            let payload: Vec<u8> = r.get(5)?;
            let text = match String::from_utf8(payload) {
                Ok(s) => json!(s),
                Err(e) => {
                    use base64::Engine as _;
                    json!({"base64": base64::engine::general_purpose::STANDARD.encode(e.as_bytes())})
                }
            };
            Ok(json!({
                "id": r.get::<_, i64>(0)?,
                "received_at": rfc3339(r.get(1)?),
                "reason": r.get::<_, String>(2)?,
                "detail": r.get::<_, String>(3)?,
                "topic": r.get::<_, String>(4)?,
                "payload": text,
                "size": r.get::<_, i64>(6)?,
            }))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    })
    .await?;
    Ok(Json(v).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    #[test]
    fn the_policy_allows_the_map_tile_server_and_nothing_inline_for_scripts() {
        let csp = content_security_policy(None);
        let csp = csp.to_str().unwrap();
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(csp.contains("img-src 'self';"), "{csp}");
        let csp = content_security_policy(Some("https://tiles.example.org:8443/{z}/{x}/{y}.png"));
        let csp = csp.to_str().unwrap();
        assert!(
            csp.contains("img-src 'self' https://tiles.example.org:8443;"),
            "{csp}"
        );
    }

    fn state(dir: &std::path::Path) -> ApiState {
        let (tx, _rx) = std::sync::mpsc::channel();
        ApiState {
            dir: dir.to_owned(),
            pipeline: tx,
            metrics: Arc::new(Metrics::default()),
            registry: crate::registry::Live::new(
                Arc::new(crate::registry::Registry::default()),
                PathBuf::new(),
            ),
            rules: Arc::new(crate::rules::Rules::default()),
            clock: Arc::new(crate::clock::SystemClock),
            changes: crate::bus::Bus::default(),
            shutdown: tokio_util::sync::CancellationToken::new(),
            ack_token: None,
            duty: crate::duty::Live::new(crate::duty::Roster::default()),
            auth: Arc::new(auth::Auth::new(&crate::auth::AuthConfig {
                bootstrap_token: Some(Secret::new(TOKEN)),
                ..Default::default()
            })),
            map_tiles: None,
            time_zone: "Asia/Shanghai".into(),
        }
    }

    #[test]
    fn a_short_ack_token_is_a_problem() {
        let mut c = HttpConfig {
            ack_token: Some(Secret::new("short")),
            ..HttpConfig::default()
        };
        let p = c.validate();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].key, "http.ack_token");
        c.ack_token = Some(Secret::new("0123456789abcdef"));
        assert!(c.validate().is_empty());
    }

    const TOKEN: &str = "unit-test-token-0123456789";

    async fn status(router: Router, uri: &str) -> StatusCode {
        router
            .oneshot(
                Request::get(uri)
                    .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap()
            .status()
    }

    #[tokio::test]
    async fn a_store_failure_is_an_error_not_a_missing_device() {
        let dir = tempfile::tempdir().unwrap();
        let conn = store::open_writer(dir.path(), "normal").unwrap();
        assert_eq!(
            status(router(state(dir.path())), "/api/v1/devices/wp-1").await,
            StatusCode::NOT_FOUND
        );
        // Fault injection: the table is gone, so reading it fails. Failed before: the SQLite
        // error was taken for "no such device" (404).
        conn.execute_batch("DROP TABLE devices").unwrap();
        assert_eq!(
            status(router(state(dir.path())), "/api/v1/devices/wp-1").await,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        // The answer is generic with an id; SQLite's text stays in the log.
        let r = router(state(dir.path()))
            .oneshot(
                Request::get("/api/v1/devices/wp-1")
                    .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "internal error", "{v}");
        assert_eq!(v["error_id"].as_str().map(str::len), Some(12), "{v}");
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains("devices") && !text.contains("table"),
            "{text}"
        );
    }
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    command: String,
    #[serde(default = "default_deadline_s")]
    deadline_s: u32,
    #[serde(default)]
    by: Option<String>,
}

const fn default_deadline_s() -> u32 {
    600
}

/// Longest answer deadline a command may ask for (a day).
const MAX_DEADLINE_S: u32 = 86_400;

async fn post_command(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Extension(p): Extension<Principal>,
    b: Bytes,
) -> ApiResult {
    let b: CommandBody =
        serde_json::from_slice(&b).map_err(|e| ApiError::BadRequest(format!("body: {e}")))?;
    let command = b.command.parse::<CommandKind>().map_err(|()| {
        ApiError::BadRequest(format!(
            "command must be one of {}",
            CommandKind::ALL.map(CommandKind::as_str).join(", ")
        ))
    })?;
    if !(10..=MAX_DEADLINE_S).contains(&b.deadline_s) {
        return Err(ApiError::BadRequest(format!(
            "deadline_s must be 10–{MAX_DEADLINE_S}"
        )));
    }
    let by = auth::actor(&p, b.by.as_deref())?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    s.pipeline
        .send(Input::Command {
            request: CommandRequest {
                device: id,
                command,
                deadline_s: b.deadline_s,
                by,
            },
            reply: tx,
        })
        .map_err(|_| ApiError::Unavailable("the pipeline is stopping".into()))?;
    let r = rx
        .await
        .map_err(|_| ApiError::Unavailable("the pipeline is stopping".into()))?;
    match r {
        Ok(c) => Ok((StatusCode::ACCEPTED, Json(c.to_json())).into_response()),
        Err(CommandError::UnknownDevice(m)) => Err(ApiError::NotFound(m)),
        Err(CommandError::WrongKind(m)) => Err(ApiError::Conflict(m)),
        Err(CommandError::Store(e)) => Err(e.into()),
    }
}

async fn list_commands(
    State(s): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let mut device = None;
    let mut status = None;
    for (k, v) in &q {
        match k.as_str() {
            "device" => device = Some(v.clone()),
            "status" => {
                status = Some(v.parse::<CommandStatus>().map_err(|()| {
                    ApiError::BadRequest(format!(
                        "status must be one of {}",
                        CommandStatus::ALL.map(CommandStatus::as_str).join(", ")
                    ))
                })?);
            }
            "limit" => {}
            other => return Err(ApiError::BadRequest(format!("unknown parameter {other:?}"))),
        }
    }
    let limit = parse_limit(q.get("limit"), 100, 10_000)?;
    let v = read(&s, move |c| {
        Ok(commands::list(c, device.as_deref(), status, limit)?
            .iter()
            .map(commands::Command::to_json)
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(Json(v).into_response())
}

async fn get_command(State(s): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    let n = commands::parse_command_id(&id)
        .ok_or_else(|| ApiError::NotFound(format!("command {id} not found")))?;
    let v = read(&s, move |c| {
        commands::get(c, n)?
            .map(|c| c.to_json())
            .ok_or_else(|| ApiError::NotFound(format!("command {id} not found")))
    })
    .await?;
    Ok(Json(v).into_response())
}

/// `GET /api/v1/notifications?alert=&workorder=&status=&channel=&limit=`: outbox rows,
/// newest first.
async fn list_notifications(
    State(s): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let mut f = notifications::Filter {
        limit: parse_limit(q.get("limit"), 100, 10_000)?,
        ..Default::default()
    };
    for (k, v) in &q {
        match k.as_str() {
            "alert" => {
                f.alert = Some(alerts::parse_alert_id(v).ok_or_else(|| {
                    ApiError::BadRequest(format!("alert: {v:?} is not an alert id"))
                })?);
            }
            "workorder" => {
                let id = crate::model::workorder::parse_workorder_id(v);
                f.workorder = Some(id.ok_or_else(|| {
                    ApiError::BadRequest(format!("workorder: {v:?} is not a work order id"))
                })?);
            }
            "summary" => {
                let id = crate::model::summary::parse_summary_id(v);
                f.summary = Some(id.ok_or_else(|| {
                    ApiError::BadRequest(format!("summary: {v:?} is not a summary id"))
                })?);
            }
            "status" => {
                f.status = Some(v.parse::<DeliveryStatus>().map_err(|()| {
                    ApiError::BadRequest(format!(
                        "status must be one of {}",
                        DeliveryStatus::ALL.map(DeliveryStatus::as_str).join(", ")
                    ))
                })?);
            }
            "channel" => {
                f.channel = Some(v.parse::<ChannelKind>().map_err(|()| {
                    ApiError::BadRequest(format!(
                        "channel must be one of {}",
                        ChannelKind::ALL.map(ChannelKind::as_str).join(", ")
                    ))
                })?);
            }
            "limit" => {}
            other => return Err(ApiError::BadRequest(format!("unknown parameter {other:?}"))),
        }
    }
    let v = read(&s, move |c| Ok(notifications::list(c, &f)?)).await?;
    Ok(Json(v).into_response())
}
