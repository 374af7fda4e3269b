//! The DingTalk (钉钉) group robot channel: each `[[dingtalk]]` robot gets the rendered message
//! as markdown, the URL signed at every attempt when the robot has a `secret` (加签).
//!
//! Request: `POST {url}&timestamp={ms}&sign={sign}` (`https://oapi.dingtalk.com/robot/send?
//! access_token=…`; the token and the secret are never logged), where `sign` is
//! `urlencode(base64(HMAC-SHA256(secret, "{ms}\n{secret}")))` and `ms` the wall-clock time in
//! milliseconds (DingTalk refuses a timestamp more than an hour off). Body
//! `{"msgtype": "markdown", "markdown": {"title", "text"}, "at": {"atMobiles": […]}}`; the
//! mentioned numbers are also written into the text, where DingTalk looks for them.
//!
//! Classification: the robot answers HTTP 200 with `{"errcode": 0, "errmsg": "ok"}`. A non-zero
//! `errcode` is a failure: `-1` (system busy), `130101` (send too fast: a robot takes 20
//! messages a minute, then is throttled for 10 minutes) and `410100` (throttled) are
//! transient; every other code is permanent, among them `310000` (signature, keyword or IP
//! allow-list check failed), `300001` and `400101` (an invalid or unknown access token).

use super::http::{self, robot_answer};
use super::render::{truncate_bytes, Context};
use super::{Batch, Channel, SendError};
use crate::model::notification::ChannelKind;
use crate::settings::{Problem, Secret};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Deserialize;
use sha2::Sha256;
use std::collections::{HashMap, HashSet};

/// Longest markdown text sent, bytes.
pub const MAX_TEXT_BYTES: usize = 4096;
/// Longest title (the notification preview), bytes.
pub const MAX_TITLE_BYTES: usize = 64;

/// One `[[dingtalk]]` robot.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DingtalkConfig {
    /// Name: the outbox target and part of the idempotency key (`[A-Za-z0-9_-]`).
    pub name: String,
    /// The robot's webhook address, with its access token (secret).
    pub url: Secret,
    /// The robot's signing secret (`SEC…`), when its security setting is 加签.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// Mobile numbers of group members to mention (`@`); an array or a comma-separated string.
    #[serde(default, deserialize_with = "super::email::one_or_many")]
    pub at_mobiles: Vec<String>,
    /// Request timeout, seconds (default 10).
    #[serde(default)]
    pub timeout_s: Option<f64>,
}

/// Every problem of the `[[dingtalk]]` entries, with `dingtalk[i].` key paths.
pub fn validate(robots: &[DingtalkConfig]) -> Vec<Problem> {
    let mut p = Vec::new();
    let mut names = HashSet::new();
    for (i, r) in robots.iter().enumerate() {
        let key = |k: &str| format!("dingtalk[{i}].{k}");
        p.extend(http::check_name(&key, &r.name, &mut names));
        p.extend(http::check(&key, r.url.expose(), r.timeout_s));
        if r.secret.as_ref().is_some_and(|s| s.expose().is_empty()) {
            p.push(Problem::new(key("secret"), "is empty"));
        }
        p.extend(http::check_phones(&key("at_mobiles"), &r.at_mobiles));
    }
    p
}

/// Whether an `errcode` of the robot is worth retrying.
pub fn is_transient(errcode: i64) -> bool {
    matches!(errcode, -1 | 130101 | 410100)
}

/// `base64(HMAC-SHA256(secret, "{ms}\n{secret}"))`, not yet URL-encoded.
pub fn sign(secret: &str, ms: i64) -> String {
    // HMAC takes keys of any length; the error case cannot happen.
    match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(format!("{ms}\n{secret}").as_bytes());
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// `url` with `timestamp` and `sign` appended.
pub fn signed_url(url: &str, secret: &str, ms: i64) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    let sign = utf8_percent_encode(&sign(secret, ms), NON_ALPHANUMERIC).to_string();
    format!("{url}{sep}timestamp={ms}&sign={sign}")
}

/// The body POSTed to a robot.
pub fn body(title: &str, text: &str, at: &[String]) -> serde_json::Value {
    let mut text = text.to_owned();
    if !at.is_empty() {
        let mentions: Vec<String> = at.iter().map(|m| format!("@{m}")).collect();
        text = format!("{}\n\n{}", text.trim_end(), mentions.join(" "));
    }
    serde_json::json!({
        "msgtype": "markdown",
        "markdown": {
            "title": truncate_bytes(title, MAX_TITLE_BYTES),
            "text": truncate_bytes(&text, MAX_TEXT_BYTES),
        },
        "at": {"atMobiles": at, "isAtAll": false},
    })
}

/// The DingTalk channel: every configured robot, by name.
#[derive(Debug)]
pub struct Dingtalk {
    robots: HashMap<String, DingtalkConfig>,
    client: reqwest::Client,
    look: Context,
}

impl Dingtalk {
    /// Builds the channel; messages are rendered with `look`.
    pub fn new(robots: &[DingtalkConfig], look: Context) -> Result<Dingtalk, String> {
        Ok(Dingtalk {
            robots: robots.iter().map(|r| (r.name.clone(), r.clone())).collect(),
            client: http::client()?,
            look,
        })
    }
}

impl Channel for Dingtalk {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Dingtalk
    }

    async fn send(&mut self, b: &Batch) -> Result<(), SendError> {
        let Some(robot) = self.robots.get(b.target()) else {
            return Err(SendError::Permanent(format!(
                "dingtalk robot {:?} is not configured",
                b.target()
            )));
        };
        let r = self.look.render_batch(b);
        // Signed now, at each attempt: DingTalk checks the timestamp against its own clock.
        let url = match &robot.secret {
            Some(s) => signed_url(robot.url.expose(), s.expose(), crate::clock::wall_ms()),
            None => robot.url.expose().to_owned(),
        };
        let req = self
            .client
            .post(url)
            .timeout(http::timeout(robot.timeout_s))
            .json(&body(&r.title, &r.markdown(), &robot.at_mobiles));
        let (status, answer) = http::send(req).await?;
        robot_answer(status, &answer, is_transient)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_base64_hmac_sha256_of_timestamp_and_secret() {
        // Computed independently (Python hmac, base64, urllib.parse.quote_plus).
        assert_eq!(
            sign("SECtest", 1_700_000_000_000),
            "aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g="
        );
        assert_eq!(
            signed_url(
                "https://oapi.dingtalk.com/robot/send?access_token=t",
                "SECtest",
                1_700_000_000_000
            ),
            "https://oapi.dingtalk.com/robot/send?access_token=t&timestamp=1700000000000\
             &sign=aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g%3D"
        );
    }

    #[test]
    fn errcodes_are_classified() {
        let limited = br#"{"errcode":130101,"errmsg":"send too fast"}"#;
        assert!(matches!(
            robot_answer(200, limited, is_transient),
            Err(SendError::Transient(_))
        ));
        let refused = br#"{"errcode":310000,"errmsg":"sign not match"}"#;
        assert!(matches!(
            robot_answer(200, refused, is_transient),
            Err(SendError::Permanent(e)) if e.contains("310000")
        ));
        assert_eq!(robot_answer(200, br#"{"errcode":0}"#, is_transient), Ok(()));
    }

    #[test]
    fn mentions_are_in_the_text_and_in_at() {
        let b = body("t", "### x\n", &["13800000000".into()]);
        assert_eq!(b["at"]["atMobiles"][0], "13800000000");
        assert!(b["markdown"]["text"]
            .as_str()
            .unwrap()
            .ends_with("@13800000000"));
        let long_title = "火".repeat(40);
        let b = body(&long_title, "x", &[]);
        assert!(b["markdown"]["title"].as_str().unwrap().len() <= MAX_TITLE_BYTES);
    }
}
