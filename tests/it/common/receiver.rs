//! An HTTP receiver on 127.0.0.1 that records every request (webhooks, chat robots, an SMS
//! gateway) and answers from a script.

use axum::http::{HeaderMap, StatusCode, Uri};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// Method.
    pub method: String,
    /// Path and query.
    pub uri: Uri,
    /// Headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    /// A header's value (it must be there).
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).unwrap().to_str().unwrap()
    }
    /// A query parameter, decoded.
    pub fn query(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.uri.query().unwrap_or("").as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// A receiver: answers the scripted (status, body) pairs in order, then `then`, to any path
/// and method.
pub struct Receiver {
    /// `http://127.0.0.1:port/hook`.
    pub url: String,
    /// `http://127.0.0.1:port`.
    pub base: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// Answers the scripted statuses (empty bodies), then `then`.
    pub async fn start(script: &[u16], then: u16) -> Receiver {
        let answers = script.iter().map(|s| (*s, String::new())).collect();
        Self::answering(answers, (then, String::new())).await
    }

    /// Answers the scripted (status, body) pairs, then `then`.
    pub async fn answering(script: Vec<(u16, String)>, then: (u16, String)) -> Receiver {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let script = Arc::new(Mutex::new(script.into_iter().collect::<VecDeque<_>>()));
        let (g, s) = (Arc::clone(&got), Arc::clone(&script));
        let app = axum::Router::new().fallback(
            move |method: axum::http::Method,
                  uri: Uri,
                  headers: HeaderMap,
                  body: axum::body::Bytes| {
                let (g, s, then) = (Arc::clone(&g), Arc::clone(&s), then.clone());
                async move {
                    g.lock().unwrap().push(Received {
                        method: method.to_string(),
                        uri,
                        headers,
                        body: body.to_vec(),
                    });
                    let (status, body) = s.lock().unwrap().pop_front().unwrap_or(then);
                    (StatusCode::from_u16(status).unwrap(), body)
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url: format!("{base}/hook"),
            base,
            got,
        }
    }

    /// The requests so far.
    pub fn requests(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}
