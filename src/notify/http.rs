//! What the HTTP channels share: the client, the URL checks, and the classification of HTTP
//! answers and failures, and of the `errcode` JSON answers of the chat robots.

use super::SendError;
use crate::settings::Problem;
use std::time::Duration;

/// Default request timeout, seconds.
pub(crate) const DEFAULT_TIMEOUT_S: f64 = 10.0;

/// The HTTP client of a channel: redirects are not followed, connections time out after 10 s.
pub(crate) fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("firewatch/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// A request timeout setting (`timeout_s`), or the default.
pub(crate) fn timeout(timeout_s: Option<f64>) -> Duration {
    Duration::from_secs_f64(timeout_s.unwrap_or(DEFAULT_TIMEOUT_S))
}

/// Scheme, host and port of a URL, for logs (no path, no query, no credentials: robot keys and
/// tokens are in the query).
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}:{}",
            u.scheme(),
            u.host_str().unwrap_or("?"),
            u.port_or_known_default().unwrap_or(0)
        ),
        Err(_) => "?".into(),
    }
}

/// The problems of a `url` setting (`http://` or `https://` with a host) and of `timeout_s`.
pub(crate) fn check(
    key: &dyn Fn(&str) -> String,
    url: &str,
    timeout_s: Option<f64>,
) -> Vec<Problem> {
    let mut p = Vec::new();
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
        // Never the URL itself in the message: it may hold a key.
        Ok(u) => p.push(Problem::new(
            key("url"),
            format!("scheme {:?} is not http:// or https://", u.scheme()),
        )),
        Err(e) => p.push(Problem::new(key("url"), format!("not a URL: {e}"))),
    }
    if let Some(t) = timeout_s {
        if !(t > 0.0 && t <= 300.0) {
            p.push(Problem::new(
                key("timeout_s"),
                "must be above 0 and at most 300",
            ));
        }
    }
    p
}

/// The problem of a channel entry's `name` (`[A-Za-z0-9_-]`, unique among `names`).
pub(crate) fn check_name(
    key: &dyn Fn(&str) -> String,
    name: &str,
    names: &mut std::collections::HashSet<String>,
) -> Option<Problem> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        Some(Problem::new(
            key("name"),
            format!("{name:?} is not a name of letters, digits, _ and -"),
        ))
    } else if !names.insert(name.to_owned()) {
        Some(Problem::new(key("name"), format!("{name:?} is used twice")))
    } else {
        None
    }
}

/// The problems of a list of mobile numbers (digits, an optional leading `+`).
pub(crate) fn check_phones(key: &str, phones: &[String]) -> Vec<Problem> {
    phones
        .iter()
        .enumerate()
        .filter(|(_, m)| {
            let digits = m.strip_prefix('+').unwrap_or(m);
            !(5..=20).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit())
        })
        .map(|(i, m)| {
            Problem::new(
                format!("{key}[{i}]"),
                format!("{m:?} is not a phone number"),
            )
        })
        .collect()
}

/// What an HTTP status means for the delivery.
pub fn classify_status(status: u16) -> Result<(), SendError> {
    match status {
        200..=299 => Ok(()),
        408 | 429 | 500..=599 => Err(SendError::Transient(format!("HTTP {status}"))),
        400..=499 => Err(SendError::Permanent(format!("HTTP {status}"))),
        other => Err(SendError::Permanent(format!("unexpected HTTP {other}"))),
    }
}

/// A failed request, classified; the URL (which may carry a key) is left out of the text.
pub(crate) fn classify_error(e: reqwest::Error) -> SendError {
    let e = e.without_url();
    if e.is_builder() {
        SendError::Permanent(format!("request: {e}"))
    } else if e.is_timeout() {
        SendError::Transient("timed out".into())
    } else if e.is_connect() {
        SendError::Transient(format!("connect: {e}"))
    } else {
        SendError::Transient(e.to_string())
    }
}

/// The answer of a chat robot: HTTP 200 with JSON `{"errcode": 0, "errmsg": "ok"}`. Another
/// status is classified as any HTTP answer; a non-zero `errcode` is transient when
/// `transient(errcode)` says so, else permanent; an answer without `errcode` is transient (a
/// proxy's page, say).
pub(crate) fn robot_answer(
    status: u16,
    body: &[u8],
    transient: fn(i64) -> bool,
) -> Result<(), SendError> {
    classify_status(status)?;
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let Some(code) = v.get("errcode").and_then(serde_json::Value::as_i64) else {
        return Err(SendError::Transient(format!(
            "HTTP {status} without an errcode"
        )));
    };
    if code == 0 {
        return Ok(());
    }
    let msg = v
        .get("errmsg")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    // errmsg may quote the caller's address and a long hint; the start is enough.
    let msg = super::render::truncate_bytes(msg, 200);
    let error = format!("errcode {code}: {msg}");
    if transient(code) {
        Err(SendError::Transient(error))
    } else {
        Err(SendError::Permanent(error))
    }
}

/// Sends a request and reads its answer (status and body, at most 64 KiB of it kept).
pub(crate) async fn send(req: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), SendError> {
    let r = req.send().await.map_err(classify_error)?;
    let status = r.status().as_u16();
    let body = r.bytes().await.map_err(classify_error)?;
    let keep = body.len().min(64 * 1024);
    Ok((status, body[..keep].to_vec()))
}
