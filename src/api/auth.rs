//! Access control of `/api/v1` (contract section 7): who is asking ([`authenticate`]), whether
//! their role may ([`permission`]), and the login, logout and `me` routes.
//!
//! Every `/api/v1` route but `POST /api/v1/login` and `POST /api/v1/ack/{code}` (which carries
//! its own token) goes through [`require`]. A request is authenticated by, in this order:
//! - `Authorization: Bearer <token>`: `auth.bootstrap_token` (an admin) or an API token (acts as
//!   the user who owns it);
//! - the `fw_session` cookie of a dashboard login; its writes need the session's CSRF token in
//!   the `X-CSRF-Token` header (the cookie is `SameSite=Strict` as well).
//!
//! The role decides per route ([`permission`]). A manager sees only their own buildings; routes
//! that do not yet narrow their answers to a manager's buildings refuse managers altogether
//! (403), so no route shows a manager another building's data.

use super::{ApiError, ApiResult, ApiState};
use crate::auth::limit::{self, Limiter};
use crate::auth::{password, token, Permission, Principal, Role, Via};
use crate::settings::Secret;
use crate::store;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Mutex;

/// The session cookie.
pub const COOKIE: &str = "fw_session";
/// The header of the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Access-control state of the API.
#[derive(Debug)]
pub struct Auth {
    /// `auth.bootstrap_token`.
    pub bootstrap: Option<Secret>,
    /// How long a session lasts, ms.
    pub session_ms: i64,
    /// Failed logins per user name and address, and per address.
    pub limiter: Mutex<Limiters>,
}

impl Auth {
    /// From `[auth]`.
    pub fn new(cfg: &crate::auth::AuthConfig) -> Self {
        Auth {
            bootstrap: cfg.bootstrap_token.clone(),
            session_ms: cfg.session_ms(),
            limiter: Mutex::new(Limiters {
                account: Limiter::new(limit::MAX_FAILURES),
                address: Limiter::new(limit::MAX_ADDRESS_FAILURES),
            }),
        }
    }
}

/// The two login limits ([`limit`]).
#[derive(Debug)]
pub struct Limiters {
    /// Per user name and address.
    pub account: Limiter,
    /// Per address.
    pub address: Limiter,
}

/// The routes of this module (login and logout, and who am I).
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/login", post(login))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/me", get(me))
        .route("/api/v1/users", get(users))
        .route("/api/v1/audit", get(audit_list))
}

/// `GET /api/v1/users`: every account (admins only), without secrets.
async fn users(State(s): State<ApiState>) -> ApiResult {
    let users = super::read(&s, |c| Ok(store::auth::users(c)?)).await?;
    let v: Vec<_> = users
        .iter()
        .map(|u| {
            json!({
                "user": u.name, "display": u.display, "role": u.role,
                "buildings": u.buildings, "disabled": u.disabled,
                "created_at": crate::model::rfc3339(u.created_at),
            })
        })
        .collect();
    Ok(Json(v).into_response())
}

/// `GET /api/v1/audit?actor=&before=&limit=`: the audit trail, newest first (admins only).
async fn audit_list(
    State(s): State<ApiState>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> ApiResult {
    let (mut actor, mut before, mut limit) = (None, None, 100_u32);
    for (k, v) in &q {
        match k.as_str() {
            "actor" => actor = Some(v.clone()),
            "before" => {
                before = Some(v.parse::<i64>().map_err(|_| {
                    ApiError::BadRequest(format!("before: {v:?} is not an entry id"))
                })?)
            }
            "limit" => {
                limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=10_000).contains(n))
                    .ok_or_else(|| ApiError::BadRequest("limit: 1 to 10000".into()))?
            }
            other => return Err(ApiError::BadRequest(format!("unknown parameter {other:?}"))),
        }
    }
    let rows = super::read(&s, move |c| {
        Ok(store::auth::audit(c, actor.as_deref(), before, limit)?)
    })
    .await?;
    let v: Vec<_> = rows
        .iter()
        .map(|e| {
            json!({
                "id": e.id, "at": crate::model::rfc3339(e.at), "actor": e.actor, "via": e.via,
                "role": e.role, "action": e.action, "target": e.target, "status": e.status,
                "addr": e.addr,
            })
        })
        .collect();
    Ok(Json(v).into_response())
}

/// Routes every role may use on its own account, whatever its scope.
const OWN: [&str; 2] = ["/api/v1/me", "/api/v1/logout"];

/// Reads only an admin may make: accounts and the audit trail.
const ADMIN_READS: [&str; 2] = ["/api/v1/users", "/api/v1/audit"];

/// Routes that narrow what they answer to a manager's buildings (an object of another building
/// is not found, a list leaves it out). Managers are refused on every other route.
const SCOPED: [&str; 19] = [
    "/api/v1/events",
    "/api/v1/coverage",
    "/api/v1/reports/alerts",
    "/api/v1/reports/workorders",
    "/api/v1/reports/drills",
    "/api/v1/reports/fire_transmission",
    "/api/v1/reports/shielded",
    "/api/v1/reports/false_alarms",
    "/api/v1/shielded",
    "/api/v1/alerts",
    "/api/v1/alerts/{id}",
    "/api/v1/devices",
    "/api/v1/devices/{id}",
    "/api/v1/devices/{id}/readings",
    "/api/v1/buildings",
    "/api/v1/buildings/{id}",
    "/api/v1/workorders",
    "/api/v1/workorders/{id}",
    "/api/v1/workorders/{id}/rectify",
];

/// The one building a list asks for, as a principal may ask it: anyone may filter by a building
/// (`given`); a manager must, and only by one of theirs (a manager of exactly one building
/// gets theirs when they give none).
pub fn one_building(p: &Principal, given: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(mine) = p.scope.buildings() else {
        return Ok(given);
    };
    match given {
        Some(b) if mine.contains(&b) => Ok(Some(b)),
        Some(b) => Err(ApiError::NotFound(format!("building {b} not found"))),
        None if mine.len() == 1 => Ok(mine.iter().next().cloned()),
        None => Err(ApiError::BadRequest(format!(
            "building: name one of your buildings ({})",
            mine.iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// What a route needs (by method and route pattern). Reads need [`Permission::Read`]; every
/// write not listed here needs [`Permission::Admin`], so a new route is closed until it is
/// given its permission.
pub fn permission(method: &Method, route: &str) -> Permission {
    if ADMIN_READS.contains(&route) {
        return Permission::Admin;
    }
    if matches!(*method, Method::GET | Method::HEAD) {
        return Permission::Read;
    }
    match route {
        "/api/v1/alerts/{id}/ack"
        | "/api/v1/alerts/{id}/close"
        | "/api/v1/alerts/{id}/notes"
        | "/api/v1/alerts/{id}/verify" => Permission::HandleAlerts,
        "/api/v1/workorders" | "/api/v1/workorders/{id}/verify" => Permission::HandleWorkorders,
        "/api/v1/workorders/{id}/rectify" => Permission::ReportRectification,
        "/api/v1/devices/{id}/commands"
        | "/api/v1/duty/checks"
        | "/api/v1/duty/overrides"
        | "/api/v1/duty/overrides/{id}" => Permission::DutyChecks,
        r if OWN.contains(&r) => Permission::Read,
        _ => Permission::Admin,
    }
}

/// Who acts: the logged-in user or the API token's user. Only `auth.bootstrap_token` (which is
/// no person) may name who it acts for, in the body's `by`; otherwise `by` is ignored.
pub fn actor(p: &Principal, given: Option<&str>) -> Result<String, ApiError> {
    match p.via {
        Via::Bootstrap => {
            let by = given.map(str::trim).filter(|b| !b.is_empty());
            match by {
                Some(b) if b.len() > 200 => {
                    Err(ApiError::BadRequest("by: at most 200 bytes".into()))
                }
                Some(b) => Ok(b.to_owned()),
                None => Ok(p.name.clone()),
            }
        }
        Via::Session | Via::Token => Ok(p.name.clone()),
    }
}

fn forbidden(msg: impl Into<String>) -> Response {
    (StatusCode::FORBIDDEN, Json(json!({ "error": msg.into() }))).into_response()
}

/// Equal in constant time (for equal lengths).
pub(super) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0_u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// Who a request is, with the session's CSRF token when it came with a session.
async fn authenticate(
    s: &ApiState,
    headers: &HeaderMap,
) -> Result<Option<(Principal, Option<String>)>, ApiError> {
    if let Some(t) = bearer(headers) {
        if let Some(b) = &s.auth.bootstrap {
            if same(t, b.expose()) {
                return Ok(Some((Principal::bootstrap(), None)));
            }
        }
        let digest = token::digest(t);
        let user = super::read(s, move |c| Ok(store::auth::token_user(c, &digest)?)).await?;
        return Ok(user.map(|u| (u.principal(Via::Token), None)));
    }
    if let Some(sid) = cookie(headers, COOKIE) {
        let digest = token::digest(sid);
        let now = s.clock.now_ms();
        let found = super::read(s, move |c| Ok(store::auth::session(c, &digest, now)?)).await?;
        return Ok(found.map(|(u, csrf)| (u.principal(Via::Session), Some(csrf))));
    }
    Ok(None)
}

/// The middleware of every protected route: authenticates, checks role, scope and CSRF, and
/// hands the [`Principal`] to the handler (`Extension<Principal>`).
pub async fn require(State(s): State<ApiState>, mut req: Request, next: Next) -> Response {
    // The route pattern (`/api/v1/alerts/{id}`); without one (never expected under a route
    // layer) the literal path, so a missing pattern cannot open a route.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| req.uri().path().to_owned(), |m| m.as_str().to_owned());
    let open = route == "/api/v1/login" || route == "/api/v1/ack/{code}";
    if open || !route.starts_with("/api/v1/") {
        return next.run(req).await;
    }
    let (p, csrf) = match authenticate(&s, req.headers()).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            s.metrics.auth_refused("unauthenticated");
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(json!({
                    "error": "log in, or send Authorization: Bearer <token> (contract section 7)"
                })),
            )
                .into_response();
        }
        Err(e) => return e.into_response(),
    };
    let method = req.method().clone();
    let writes = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    if writes && p.via == Via::Session {
        let given = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !csrf.as_deref().is_some_and(|c| same(c, given)) {
            s.metrics.auth_refused("csrf");
            return forbidden(format!(
                "a write from a dashboard session needs the session's {CSRF_HEADER} header"
            ));
        }
    }
    let need = permission(&method, &route);
    if !p.role.may(need) {
        s.metrics.auth_refused("role");
        return forbidden(format!("the role {} may not do this", p.role));
    }
    if p.role == Role::Manager
        && !OWN.contains(&route.as_str())
        && !SCOPED.contains(&route.as_str())
    {
        s.metrics.auth_refused("scope");
        return forbidden("not available to the manager role on this route");
    }
    if let Some(c) = csrf {
        req.extensions_mut().insert(SessionCsrf(c));
    }
    if !writes {
        req.extensions_mut().insert(p);
        return next.run(req).await;
    }
    let target = req.uri().path().to_owned();
    let addr = peer_of(&req);
    let entry = store::auth::AuditEntry {
        id: 0,
        at: s.clock.now_ms(),
        actor: p.name.clone(),
        via: via_name(p.via).to_owned(),
        role: Some(p.role.as_str().to_owned()),
        action: format!("{method} {route}"),
        target,
        status: 0,
        addr,
    };
    req.extensions_mut().insert(p);
    let res = next.run(req).await;
    audit(
        &s,
        store::auth::AuditEntry {
            status: i64::from(res.status().as_u16()),
            ..entry
        },
    )
    .await;
    res
}

/// The client's address, when the server was given it.
fn peer_of(req: &Request) -> Option<String> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

fn via_name(v: Via) -> &'static str {
    match v {
        Via::Session => "session",
        Via::Token => "token",
        Via::Bootstrap => "bootstrap_token",
    }
}

/// Appends to the audit trail. The action it records has been done: a failure to record it is
/// logged and counted, and does not change the answer.
async fn audit(s: &ApiState, e: store::auth::AuditEntry) {
    let dir = s.dir.clone();
    let done = tokio::task::spawn_blocking(move || -> Result<i64, ApiError> {
        let conn = store::duty::open_writer(&dir)?;
        Ok(store::auth::insert_audit(&conn, &e)?)
    })
    .await;
    if !matches!(done, Ok(Ok(_))) {
        s.metrics.auth_refused("audit_failed");
        tracing::error!(result = ?done.map(|r| r.map_err(|e| format!("{e:?}"))), "Could not append to the audit trail.");
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    user: String,
    password: String,
}

/// `POST /api/v1/login`: a dashboard session as an `HttpOnly`, `SameSite=Strict` cookie; the
/// answer carries the CSRF token for the session's writes.
async fn login(
    State(s): State<ApiState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: Bytes,
) -> ApiResult {
    let b: LoginBody =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("body: {e}")))?;
    // Names are at most 64 characters (`auth::check_name`): a longer one cannot log in, and
    // must not become a large key of the login limit.
    if b.user.chars().count() > 64 || b.password.len() > password::MAX_BYTES {
        return Err(ApiError::BadRequest(format!(
            "user: at most 64 characters; password: at most {} bytes",
            password::MAX_BYTES
        )));
    }
    let now = s.clock.now_ms();
    let peer = peer.map_or_else(|| "unknown".to_owned(), |p| p.0 .0.ip().to_string());
    let by_user = format!("{}@{peer}", b.user);
    {
        let mut l = s
            .auth
            .limiter
            .lock()
            .map_err(|_| ApiError::Internal("login limiter poisoned".into()))?;
        let wait = l
            .account
            .check(&by_user, now)
            .err()
            .max(l.address.check(&peer, now).err());
        if let Some(ms) = wait {
            s.metrics.auth_refused("rate_limited");
            let secs = (ms + 999) / 1000;
            return Ok((
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, secs.to_string())],
                Json(json!({ "error": format!("too many failed logins: try again in {secs} s") })),
            )
                .into_response());
        }
    }
    let name = b.user.clone();
    let found = super::read(&s, move |c| Ok(store::auth::user_with_password(c, &name)?)).await?;
    // Hash even for an unknown user, so the answer's timing does not tell which names exist.
    let pw = b.password;
    let ok_user = tokio::task::spawn_blocking(move || match found {
        Some((u, phc)) if !u.disabled && password::verify(&pw, &phc) => Some(u),
        Some(_) => None,
        None => {
            let _ = password::verify(&pw, &DUMMY_HASH);
            None
        }
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let Some(user) = ok_user else {
        if let Ok(mut l) = s.auth.limiter.lock() {
            l.account.failed(&by_user, now);
            l.address.failed(&peer, now);
        }
        s.metrics.auth_refused("bad_login");
        tracing::warn!(user = %b.user, peer = %peer, "Login refused.");
        audit(&s, login_entry(now, &b.user, None, 401, &peer)).await;
        return Err(ApiError::Unauthorized("wrong user name or password".into()));
    };
    if let Ok(mut l) = s.auth.limiter.lock() {
        l.account.succeeded(&by_user);
    }
    let sid = token::generate(token::SESSION).map_err(|e| ApiError::Internal(e.to_string()))?;
    let csrf = token::generate("").map_err(|e| ApiError::Internal(e.to_string()))?;
    let expires = now + s.auth.session_ms;
    let (dir, digest, name, c2) = (
        s.dir.clone(),
        token::digest(&sid),
        user.name.clone(),
        csrf.clone(),
    );
    tokio::task::spawn_blocking(move || -> Result<(), ApiError> {
        let conn = store::duty::open_writer(&dir)?;
        store::auth::prune_sessions(&conn, now)?;
        store::auth::insert_session(&conn, &digest, &name, &c2, now, expires)?;
        Ok(())
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    tracing::info!(user = %user.name, role = %user.role, "Logged in.");
    audit(
        &s,
        login_entry(now, &user.name, Some(user.role), 200, &peer),
    )
    .await;
    let cookie = format!(
        "{COOKIE}={sid}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        s.auth.session_ms / 1000
    );
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(json!({
            "user": user.name,
            "display": user.display,
            "role": user.role,
            "buildings": user.buildings,
            "csrf": csrf,
            "expires_at": crate::model::rfc3339(expires),
        })),
    )
        .into_response())
}

fn login_entry(
    at: i64,
    user: &str,
    role: Option<Role>,
    status: u16,
    peer: &str,
) -> store::auth::AuditEntry {
    store::auth::AuditEntry {
        id: 0,
        at,
        actor: user.to_owned(),
        via: "login".to_owned(),
        role: role.map(|r| r.as_str().to_owned()),
        action: "POST /api/v1/login".to_owned(),
        target: "/api/v1/login".to_owned(),
        status: i64::from(status),
        addr: Some(peer.to_owned()),
    }
}

/// A hash of a random password, verified against when the user is unknown, so that an unknown
/// name costs as much time as a wrong password.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    token::generate("")
        .ok()
        .and_then(|pw| password::hash(&format!("unknown-user-{pw}")).ok())
        .unwrap_or_default()
});

/// `POST /api/v1/logout`: ends the session of the cookie.
async fn logout(State(s): State<ApiState>, headers: HeaderMap) -> ApiResult {
    if let Some(sid) = cookie(&headers, COOKIE) {
        let (dir, digest) = (s.dir.clone(), token::digest(sid));
        tokio::task::spawn_blocking(move || -> Result<bool, ApiError> {
            let conn = store::duty::open_writer(&dir)?;
            Ok(store::auth::delete_session(&conn, &digest)?)
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    }
    let clear = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    Ok((
        [(header::SET_COOKIE, clear)],
        Json(json!({ "logged_out": true })),
    )
        .into_response())
}

/// `GET /api/v1/me`: who the request acts as.
/// The CSRF token of the session a request came with (for `GET /api/v1/me`).
#[derive(Debug, Clone)]
struct SessionCsrf(String);

/// `GET /api/v1/me`: who the request acts as; for a session also its CSRF token (a dashboard
/// reloaded in the browser gets it again: a cross-site page cannot read this answer), and what
/// the dashboard needs to know.
async fn me(
    State(s): State<ApiState>,
    Extension(p): Extension<Principal>,
    csrf: Option<Extension<SessionCsrf>>,
) -> ApiResult {
    let via = via_name(p.via);
    Ok(Json(json!({
        "user": p.name,
        "role": p.role,
        "buildings": p.scope.buildings(),
        "via": via,
        "csrf": csrf.map(|c| c.0 .0),
        "map_tiles": s.map_tiles,
        "tz": s.time_zone,
        "version": env!("CARGO_PKG_VERSION"),
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_write_needs_its_permission_and_unknown_writes_need_admin() {
        let post = Method::POST;
        assert_eq!(permission(&Method::GET, "/api/v1/alerts"), Permission::Read);
        assert_eq!(
            permission(&post, "/api/v1/alerts/{id}/ack"),
            Permission::HandleAlerts
        );
        assert_eq!(
            permission(&post, "/api/v1/workorders/{id}/rectify"),
            Permission::ReportRectification
        );
        assert_eq!(
            permission(&Method::DELETE, "/api/v1/duty/overrides/{id}"),
            Permission::DutyChecks
        );
        assert_eq!(
            permission(&post, "/api/v1/registry/reload"),
            Permission::Admin
        );
        assert_eq!(
            permission(&post, "/api/v1/summaries/send"),
            Permission::Admin
        );
        assert_eq!(
            permission(&post, "/api/v1/some/new/route"),
            Permission::Admin
        );
    }

    #[test]
    fn only_the_bootstrap_token_names_who_it_acts_for() {
        let boot = Principal::bootstrap();
        assert_eq!(actor(&boot, Some(" 张伟 ")).expect("named"), "张伟");
        assert_eq!(actor(&boot, None).expect("unnamed"), "bootstrap");
        assert!(actor(&boot, Some(&"x".repeat(201))).is_err());
        let user = Principal {
            name: "li".into(),
            role: Role::Operator,
            scope: crate::auth::Scope::All,
            via: Via::Session,
        };
        assert_eq!(actor(&user, Some("someone else")).expect("user"), "li");
    }

    #[test]
    fn the_dummy_hash_is_a_valid_hash() {
        assert!(argon2::password_hash::PasswordHash::new(&DUMMY_HASH).is_ok());
    }

    #[test]
    fn cookies_and_bearer_tokens_are_read_from_the_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; fw_session=fws_x; b=2".parse().expect("header"),
        );
        h.insert(
            header::AUTHORIZATION,
            "Bearer  fwt_y".parse().expect("header"),
        );
        assert_eq!(cookie(&h, COOKIE), Some("fws_x"));
        assert_eq!(cookie(&h, "c"), None);
        assert_eq!(bearer(&h), Some("fwt_y"));
        // Tokens compare whole (the comparison shared with POST /api/v1/ack/{code}).
        assert!(same("s3cret", "s3cret"));
        assert!(!same("s3cret", "s3creT"));
        assert!(!same("s3cret", "s3cret!"));
        assert!(!same("", "x"));
    }
}
