//! The webhook channel: an HTTP POST of the alert snapshot as JSON to each configured
//! `[[webhook]]`, signed with its secret.
//!
//! Request: `Content-Type: application/json`, body `{"key", "event", "alert"}` (the alert in
//! contract form as committed with the transition, plus `location`), header
//! `X-Firewatch-Signature: sha256=<hex HMAC-SHA256 of the body bytes with the secret>`, header
//! `Idempotency-Key: <key>` (the same on every attempt of that notification). Redirects are
//! not followed.
//!
//! Classification: any 2xx is delivered; 408, 429, 5xx, network failures and timeouts are
//! transient; every other status (other 4xx, 3xx) is permanent.

use super::{Batch, Channel, SendError};
use crate::model::notification::{ChannelKind, Notification, Subject};
use crate::settings::{Problem, Secret};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

pub use super::http::classify_status;

/// Default request timeout, seconds.
pub const DEFAULT_TIMEOUT_S: f64 = super::http::DEFAULT_TIMEOUT_S;

/// One `[[webhook]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Name: the outbox target and part of the idempotency key (`[A-Za-z0-9_-]`).
    pub name: String,
    /// `http://` or `https://` URL the notifications are POSTed to.
    pub url: String,
    /// HMAC-SHA256 key of the `X-Firewatch-Signature` header.
    #[serde(default)]
    pub secret: Secret,
    /// Request timeout, seconds (default 10).
    #[serde(default)]
    pub timeout_s: Option<f64>,
}

impl WebhookConfig {
    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_s.unwrap_or(DEFAULT_TIMEOUT_S))
    }

    /// Scheme, host and port of the URL, for logs (no path, no credentials).
    pub fn redacted(&self) -> String {
        super::http::redacted(&self.url)
    }
}

/// Every problem of the `[[webhook]]` entries, with `webhook[i].` key paths.
pub fn validate(hooks: &[WebhookConfig]) -> Vec<Problem> {
    let mut p = Vec::new();
    let mut names = HashSet::new();
    for (i, h) in hooks.iter().enumerate() {
        let key = |k: &str| format!("webhook[{i}].{k}");
        if h.name.is_empty()
            || !h
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            p.push(Problem::new(
                key("name"),
                format!("{:?} is not a name of letters, digits, _ and -", h.name),
            ));
        } else if !names.insert(h.name.as_str()) {
            p.push(Problem::new(
                key("name"),
                format!("{:?} is used twice", h.name),
            ));
        }
        match url::Url::parse(&h.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
            Ok(u) => p.push(Problem::new(
                key("url"),
                format!("scheme {:?} is not http:// or https://", u.scheme()),
            )),
            Err(e) => p.push(Problem::new(key("url"), format!("not a URL: {e}"))),
        }
        if h.secret.expose().is_empty() {
            p.push(Problem::new(
                key("secret"),
                "needs a secret to sign the requests with",
            ));
        }
        if let Some(t) = h.timeout_s {
            if !(t > 0.0 && t <= 300.0) {
                p.push(Problem::new(
                    key("timeout_s"),
                    "must be above 0 and at most 300",
                ));
            }
        }
    }
    p
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` with `secret`, as the signature header carries it.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length; the error case cannot happen.
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        Err(_) => String::new(),
    }
}

/// The webhook channel: every configured webhook, by name.
#[derive(Debug)]
pub struct Webhooks {
    hooks: HashMap<String, WebhookConfig>,
    client: reqwest::Client,
}

impl Webhooks {
    /// Builds the channel.
    pub fn new(hooks: &[WebhookConfig]) -> Result<Webhooks, String> {
        let client = super::http::client()?;
        Ok(Webhooks {
            hooks: hooks.iter().map(|h| (h.name.clone(), h.clone())).collect(),
            client,
        })
    }
}

/// One notification as JSON: `{"key", "event", "alert" | "workorder" | "summary"}`.
fn one(n: &Notification) -> serde_json::Value {
    let what = match n.subject {
        Subject::Alert(_) => "alert",
        Subject::Workorder(_) => "workorder",
        Subject::Summary(_) => "summary",
    };
    serde_json::json!({"key": n.key, "event": n.event.as_str(), what: n.snapshot})
}

/// The body POSTed for a message: one notification as itself; (added) a digest (only with
/// `notify.group.webhooks` or under a rate limit) as
/// `{"key", "event": "digest", "notifications": [one, …]}`.
pub fn body(b: &Batch) -> Vec<u8> {
    let v = match b.single() {
        Some(n) => one(n),
        None => serde_json::json!({
            "key": b.key,
            "event": "digest",
            "notifications": b.rows.iter().map(one).collect::<Vec<_>>(),
        }),
    };
    v.to_string().into_bytes()
}

impl Channel for Webhooks {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Webhook
    }

    async fn send(&mut self, b: &Batch) -> Result<(), SendError> {
        let Some(hook) = self.hooks.get(b.target()) else {
            return Err(SendError::Permanent(format!(
                "webhook {:?} is not configured",
                b.target()
            )));
        };
        let body = body(b);
        let sig = signature(hook.secret.expose().as_bytes(), &body);
        let r = self
            .client
            .post(&hook.url)
            .timeout(hook.timeout())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Firewatch-Signature", sig)
            .header("Idempotency-Key", &b.key)
            .body(body)
            .send()
            .await
            .map_err(super::http::classify_error)?;
        classify_status(r.status().as_u16())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hex_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_digest_carries_each_notification_as_its_own_body_would() {
        let row = |id: i64| Notification {
            id,
            subject: Subject::Alert(id),
            key: format!("a-{id:06}:fired:1:webhook:ops"),
            event: crate::model::notification::Event::Fired,
            channel: ChannelKind::Webhook,
            target: "ops".into(),
            created_at: 0,
            attempts: 0,
            snapshot: serde_json::json!({"id": format!("a-{id:06}")}),
            lang: None,
            tz: None,
        };
        let one: serde_json::Value = serde_json::from_slice(&body(&Batch::one(row(1)))).unwrap();
        assert_eq!(one["key"], "a-000001:fired:1:webhook:ops");
        assert_eq!(one["alert"]["id"], "a-000001");
        let b = Batch {
            key: "digest:webhook:ops:1:2".into(),
            rows: vec![row(1), row(2)],
        };
        let d: serde_json::Value = serde_json::from_slice(&body(&b)).unwrap();
        assert_eq!(d["event"], "digest");
        assert_eq!(d["key"], "digest:webhook:ops:1:2");
        assert_eq!(d["notifications"][0], one);
        assert_eq!(d["notifications"][1]["alert"]["id"], "a-000002");
    }

    #[test]
    fn statuses_are_classified() {
        assert_eq!(classify_status(200), Ok(()));
        assert_eq!(classify_status(204), Ok(()));
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(
                matches!(classify_status(s), Err(SendError::Transient(_))),
                "{s}"
            );
        }
        for s in [301, 400, 401, 403, 404, 410, 422] {
            assert!(
                matches!(classify_status(s), Err(SendError::Permanent(_))),
                "{s}"
            );
        }
    }

    #[test]
    fn validation_names_the_entry() {
        let hooks = vec![
            WebhookConfig {
                name: "ops".into(),
                url: "https://hooks.example.org/fw".into(),
                secret: Secret::new("s"),
                timeout_s: None,
            },
            WebhookConfig {
                name: "ops".into(),
                url: "ftp://x".into(),
                secret: Secret::default(),
                timeout_s: Some(0.0),
            },
        ];
        let keys: Vec<String> = validate(&hooks).into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "webhook[1].name",
                "webhook[1].url",
                "webhook[1].secret",
                "webhook[1].timeout_s"
            ]
        );
    }
}
