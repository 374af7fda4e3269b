//! The SMS channel: a text message to each phone number through an HTTP gateway, configured as
//! a request template (`[sms]`), because every gateway has its own API.
//!
//! The request: `method` (POST by default) to `url`, the `headers` (values may hold secrets),
//! and `body`, a template where `{phone}` and `{text}` are replaced: JSON-escaped when
//! `content_type` is JSON (`{"to": "{phone}", "msg": "{text}"}`), URL-encoded when it is
//! `application/x-www-form-urlencoded` (`to={phone}&msg={text}`), as they are otherwise.
//! Placeholders in the URL are URL-encoded (for gateways that take a GET).
//!
//! The text is [`super::render::Rendered::short`]: the gist in about 70 Chinese characters (one
//! segment), then the acknowledgement code and the link, two or three segments in all.
//!
//! Classification: a 2xx answer delivers it, unless `success_field` is set and the answer's
//! JSON field (a dotted path, `result.code`) is not `success_value`: then the gateway refused
//! and the failure is permanent (it names the field's value). Other statuses, network failures
//! and timeouts are classified as for webhooks.

use super::http;
use super::render::Context;
use super::{Batch, Channel, SendError};
use crate::model::notification::ChannelKind;
use crate::settings::{Problem, Secret};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Characters left as they are in URL-encoded values (RFC 3986 unreserved).
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `[sms]`: the gateway request template and the recipients.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    /// The gateway's address (secret: it may hold a key); `{phone}` and `{text}` are replaced.
    pub url: Secret,
    /// `POST` (default), `PUT` or `GET`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Content type of the body (default `application/json`); it decides the escaping.
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// Request headers (values are secrets: tokens, signatures).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// Body template with `{phone}` and `{text}`; required unless the method is `GET`.
    #[serde(default)]
    pub body: String,
    /// Phone numbers told of critical alerts (until duty rosters route them); an array or a
    /// comma-separated string.
    #[serde(default, deserialize_with = "super::email::one_or_many")]
    pub to: Vec<String>,
    /// A field of the JSON answer that says whether the gateway accepted it (`code`).
    #[serde(default)]
    pub success_field: Option<String>,
    /// The value of `success_field` that means accepted (`0`).
    #[serde(default)]
    pub success_value: Option<String>,
    /// Request timeout, seconds (default 10).
    #[serde(default)]
    pub timeout_s: Option<f64>,
}

fn default_method() -> String {
    "POST".into()
}

fn default_content_type() -> String {
    "application/json".into()
}

impl SmsConfig {
    /// Every problem of the `[sms]` settings, with `sms.` key paths.
    pub fn validate(&self) -> Vec<Problem> {
        let key = |k: &str| format!("sms.{k}");
        // The URL may hold placeholders: check it with them filled in.
        let url = self
            .url
            .expose()
            .replace("{phone}", "0")
            .replace("{text}", "x");
        let mut p = http::check(&key, &url, self.timeout_s);
        let method = self.method.to_ascii_uppercase();
        if !matches!(method.as_str(), "POST" | "PUT" | "GET") {
            p.push(Problem::new(
                key("method"),
                format!("{:?} is not POST, PUT or GET", self.method),
            ));
        } else if method != "GET" && self.body.is_empty() {
            p.push(Problem::new(
                key("body"),
                "needs a template for a POST or PUT",
            ));
        }
        if self
            .content_type
            .parse::<reqwest::header::HeaderValue>()
            .is_err()
        {
            p.push(Problem::new(key("content_type"), "is not a header value"));
        }
        for (name, value) in &self.headers {
            if name.parse::<reqwest::header::HeaderName>().is_err()
                || value
                    .expose()
                    .parse::<reqwest::header::HeaderValue>()
                    .is_err()
            {
                p.push(Problem::new(
                    format!("sms.headers.{name}"),
                    "is not a valid header",
                ));
            }
        }
        if self.success_field.is_some() != self.success_value.is_some() {
            p.push(Problem::new(
                key("success_value"),
                "success_field and success_value go together",
            ));
        }
        p.extend(http::check_phones(&key("to"), &self.to));
        p
    }
}

/// How a placeholder's value is escaped in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    Json,
    Form,
    None,
}

fn escape(s: &str, how: Escape) -> String {
    match how {
        Escape::Json => {
            let quoted = serde_json::to_string(s).unwrap_or_default();
            let inner = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"'));
            inner.unwrap_or_default().to_owned()
        }
        Escape::Form => utf8_percent_encode(s, VALUE).to_string(),
        Escape::None => s.to_owned(),
    }
}

/// `template` with `{phone}` and `{text}` replaced, escaped as `content_type` needs.
pub fn fill(template: &str, content_type: &str, phone: &str, text: &str) -> String {
    let ct = content_type.to_ascii_lowercase();
    let how = if ct.contains("json") {
        Escape::Json
    } else if ct.contains("x-www-form-urlencoded") {
        Escape::Form
    } else {
        Escape::None
    };
    // One pass, so a `{text}` inside the phone (or the other way round) stays as it is.
    let mut out = String::with_capacity(template.len() + text.len());
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("{phone}") {
            out.push_str(&escape(phone, how));
            rest = t;
        } else if let Some(t) = tail.strip_prefix("{text}") {
            out.push_str(&escape(text, how));
            rest = t;
        } else {
            out.push('{');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Whether a 2xx answer says the gateway accepted the message.
fn accepted(answer: &[u8], field: &str, want: &str) -> Result<(), SendError> {
    let v: Value = serde_json::from_slice(answer).unwrap_or_default();
    let got = field
        .split('.')
        .try_fold(&v, |v, k| v.get(k))
        .map(|g| match g {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    match got {
        Some(g) if g == want => Ok(()),
        Some(g) => Err(SendError::Permanent(format!(
            "gateway refused: {field} = {}",
            super::render::truncate_bytes(&g, 200)
        ))),
        None => Err(SendError::Permanent(format!(
            "gateway answer has no {field}"
        ))),
    }
}

/// The SMS channel.
#[derive(Debug)]
pub struct Sms {
    cfg: Option<SmsConfig>,
    client: reqwest::Client,
    look: Context,
}

impl Sms {
    /// Builds the channel (`cfg` unset: every row fails as not configured); messages are
    /// rendered with `look`.
    pub fn new(cfg: Option<&SmsConfig>, look: Context) -> Result<Sms, String> {
        Ok(Sms {
            cfg: cfg.cloned(),
            client: http::client()?,
            look,
        })
    }
}

impl Channel for Sms {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Sms
    }

    async fn send(&mut self, b: &Batch) -> Result<(), SendError> {
        let Some(cfg) = &self.cfg else {
            return Err(SendError::Permanent("sms is not configured".into()));
        };
        let text = self.look.render_batch(b).short;
        let phone = b.target();
        let url = fill(cfg.url.expose(), "x-www-form-urlencoded", phone, &text);
        let method = reqwest::Method::from_bytes(cfg.method.to_ascii_uppercase().as_bytes())
            .map_err(|e| SendError::Permanent(format!("sms.method: {e}")))?;
        let mut req = self
            .client
            .request(method, url)
            .timeout(http::timeout(cfg.timeout_s));
        for (name, value) in &cfg.headers {
            req = req.header(name.as_str(), value.expose());
        }
        if !cfg.body.is_empty() {
            req = req
                .header(reqwest::header::CONTENT_TYPE, cfg.content_type.as_str())
                .body(fill(&cfg.body, &cfg.content_type, phone, &text));
        }
        let (status, answer) = http::send(req).await?;
        http::classify_status(status)?;
        match (&cfg.success_field, &cfg.success_value) {
            (Some(f), Some(v)) => accepted(&answer, f, v),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_escaped_for_the_content_type() {
        let text = "【紧急报警】\"3F\" & 东";
        let json = fill(
            r#"{"mobile": "{phone}", "content": "{text}"}"#,
            "application/json; charset=utf-8",
            "+8613800000000",
            text,
        );
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["content"], text);
        assert_eq!(v["mobile"], "+8613800000000");
        let form = fill(
            "to={phone}&msg={text}",
            "application/x-www-form-urlencoded",
            "+86138",
            "a b&c",
        );
        assert_eq!(form, "to=%2B86138&msg=a%20b%26c");
        assert_eq!(
            fill("{x} {text}", "text/plain", "1", "{phone}"),
            "{x} {phone}"
        );
    }

    #[test]
    fn a_configured_success_field_decides() {
        assert_eq!(accepted(br#"{"code": 0}"#, "code", "0"), Ok(()));
        assert_eq!(
            accepted(br#"{"r": {"code": "OK"}}"#, "r.code", "OK"),
            Ok(())
        );
        assert!(matches!(
            accepted(br#"{"code": 1001, "msg": "no balance"}"#, "code", "0"),
            Err(SendError::Permanent(e)) if e.contains("1001")
        ));
        assert!(accepted(b"ok", "code", "0").is_err());
    }

    #[test]
    fn validation_reports_every_problem() {
        let cfg = SmsConfig {
            url: Secret::new("https://sms.example.org/send?key=k"),
            method: "DELETE".into(),
            content_type: "application/json".into(),
            headers: BTreeMap::new(),
            body: String::new(),
            to: vec!["13800000000".into(), "x".into()],
            success_field: Some("code".into()),
            success_value: None,
            timeout_s: None,
        };
        let keys: Vec<String> = cfg.validate().into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["sms.method", "sms.success_value", "sms.to[1]"]);
    }
}
