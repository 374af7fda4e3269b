//! An HTTP target: each batch is one `POST` of a JSON array of records, with
//! `Idempotency-Key: {first record's key}..{last record's id}` (the same on every retry of the
//! batch), the configured headers and the bearer token.
//!
//! Classification: 2xx is delivered; 408, 429, 5xx other than 501, timeouts and network
//! failures are retried; every other answer (4xx, 3xx, 501) is a refusal.

use super::{NorthboundConfig, SendError};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use std::time::Duration;

/// The HTTP endpoint of a target.
pub struct HttpSink {
    client: reqwest::Client,
    url: String,
    headers: HeaderMap,
    key_field: String,
}

impl std::fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither the URL (it may carry a key) nor the headers (secrets).
        f.debug_struct("HttpSink").finish_non_exhaustive()
    }
}

/// What an HTTP status means for the batch.
pub fn classify_status(status: u16) -> Result<(), SendError> {
    match status {
        200..=299 => Ok(()),
        408 | 429 => Err(SendError::Retry(format!("HTTP {status}"))),
        500..=599 if status != 501 => Err(SendError::Retry(format!("HTTP {status}"))),
        other => Err(SendError::Refused(format!("HTTP {other}"))),
    }
}

impl HttpSink {
    /// The sink of `cfg` (validated: headers parse).
    pub fn new(cfg: &NorthboundConfig) -> Result<HttpSink, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs_f64(cfg.timeout_s))
            .user_agent(concat!("firewatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let mut headers = HeaderMap::new();
        for (k, v) in &cfg.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("header {k:?} is not a header name"))?;
            let mut value = HeaderValue::from_str(v.expose())
                .map_err(|_| format!("header {k:?} has a value that is not a header value"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        if let Some(t) = &cfg.token {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", t.expose()))
                .map_err(|_| "token is not a header value".to_owned())?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        Ok(HttpSink {
            client,
            url: cfg.url.clone(),
            headers,
            key_field: cfg.key_field.clone(),
        })
    }

    /// The batch's idempotency key, from its first and last record keys.
    fn batch_key(&self, batch: &[(String, Value)]) -> String {
        let key = |v: Option<&(String, Value)>| {
            v.and_then(|(_, r)| r.get(&self.key_field))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let (first, last) = (key(batch.first()), key(batch.last()));
        let last_id = last.rsplit(':').next().unwrap_or("");
        format!("{first}..{last_id}")
    }

    /// POSTs the records of `batch` as one JSON array.
    pub async fn send(&mut self, batch: &[(String, Value)]) -> Result<(), SendError> {
        let body = Value::Array(batch.iter().map(|(_, r)| r.clone()).collect());
        let r = self
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .header("Idempotency-Key", self.batch_key(batch))
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                let e = e.without_url();
                if e.is_builder() {
                    SendError::Refused(format!("request: {e}"))
                } else if e.is_timeout() {
                    SendError::Retry("timed out".into())
                } else {
                    SendError::Retry(e.to_string())
                }
            })?;
        classify_status(r.status().as_u16())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_as_the_style_guide_says() {
        assert_eq!(classify_status(204), Ok(()));
        for s in [408, 429, 500, 502, 503] {
            assert!(
                matches!(classify_status(s), Err(SendError::Retry(_))),
                "{s}"
            );
        }
        for s in [400, 401, 404, 422, 501, 302] {
            assert!(
                matches!(classify_status(s), Err(SendError::Refused(_))),
                "{s}"
            );
        }
    }
}
