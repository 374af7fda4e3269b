//! The dashboard: one page and its script and style, built into the binary (no build step, no
//! CDN). The page routes (`/board`, `/map`, `/buildings/{id}`, `/duty`, `/alerts/{id}`,
//! `/workorders/{id}`, `/admin`) all answer the same page, which draws the view of its
//! address from the API (contract section 7 for who may see what) and follows the change feed
//! (`GET /api/v1/events`). Links in notifications (`{public_url}/alerts/{id}`) land here.

use super::ApiState;
use crate::notify::render::RULES;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};
use std::sync::LazyLock;

const PAGE: &str = include_str!("ui/index.html");
const SCRIPT: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/app.css");

/// The dashboard's routes.
pub(super) fn routes() -> Router<ApiState> {
    let mut r = Router::new();
    for path in [
        "/",
        "/board",
        "/map",
        "/duty",
        "/admin",
        "/login",
        "/buildings/{id}",
        "/alerts/{id}",
        "/workorders/{id}",
    ] {
        r = r.route(path, get(page));
    }
    r.route("/ui/app.js", get(script))
        .route("/ui/app.css", get(style))
        .route("/ui/words.json", get(words))
}

/// Cached for a short while only: a new version of firewatch serves new assets at once.
const CACHE: &str = "no-cache";

async fn page() -> Response {
    ([(header::CACHE_CONTROL, CACHE)], Html(PAGE)).into_response()
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        SCRIPT,
    )
        .into_response()
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        STYLE,
    )
        .into_response()
}

/// The rules' names and next steps in both languages, from the table the notifications use.
static WORDS: LazyLock<String> = LazyLock::new(|| {
    let rules: Map<String, Value> = RULES
        .iter()
        .map(|r| {
            (
                r.id.to_owned(),
                json!({"zh": r.zh, "en": r.en, "action_zh": r.action_zh, "action_en": r.action_en,
                       "unit": r.unit}),
            )
        })
        .collect();
    json!({ "rules": rules }).to_string()
});

async fn words() -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, CACHE),
        ],
        WORDS.as_str(),
    )
        .into_response()
}
