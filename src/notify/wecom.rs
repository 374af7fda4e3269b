//! The WeCom (企业微信) group robot channel: each `[[wecom]]` robot gets the rendered message as
//! markdown.
//!
//! Request: `POST {url}` (`https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…`; the key is
//! a secret and never logged), body
//! `{"msgtype": "markdown", "markdown": {"content": …, "mentioned_mobile_list": […]}}`, the
//! content cut to 4096 bytes at a character boundary.
//!
//! Classification: the robot answers HTTP 200 with `{"errcode": 0, "errmsg": "ok"}`. A non-zero
//! `errcode` is a failure: `-1` (system busy), `45009` (api freq out of limit: a robot takes
//! about 20 messages a minute) and `45033` (too many concurrent calls) are transient; every
//! other code is permanent, among them `93000` (invalid webhook url: a wrong or deleted key)
//! and `40008` / `40058` / `44004` (a malformed message). HTTP statuses, network failures and
//! timeouts are classified as for webhooks.

use super::http::{self, robot_answer};
use super::render::{truncate_bytes, Context};
use super::{Batch, Channel, SendError};
use crate::model::notification::ChannelKind;
use crate::settings::{Problem, Secret};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};

/// Longest markdown content a robot takes, bytes.
pub const MAX_CONTENT_BYTES: usize = 4096;

/// One `[[wecom]]` robot.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WecomConfig {
    /// Name: the outbox target and part of the idempotency key (`[A-Za-z0-9_-]`).
    pub name: String,
    /// The robot's webhook address, with its key (secret).
    pub url: Secret,
    /// Mobile numbers of group members to mention (`@`); an array or a comma-separated string.
    #[serde(default, deserialize_with = "super::email::one_or_many")]
    pub mentioned_mobile_list: Vec<String>,
    /// Request timeout, seconds (default 10).
    #[serde(default)]
    pub timeout_s: Option<f64>,
}

/// Every problem of the `[[wecom]]` entries, with `wecom[i].` key paths.
pub fn validate(robots: &[WecomConfig]) -> Vec<Problem> {
    let mut p = Vec::new();
    let mut names = HashSet::new();
    for (i, r) in robots.iter().enumerate() {
        let key = |k: &str| format!("wecom[{i}].{k}");
        p.extend(http::check_name(&key, &r.name, &mut names));
        p.extend(http::check(&key, r.url.expose(), r.timeout_s));
        p.extend(http::check_phones(
            &key("mentioned_mobile_list"),
            &r.mentioned_mobile_list,
        ));
    }
    p
}

/// Whether an `errcode` of the robot is worth retrying.
pub fn is_transient(errcode: i64) -> bool {
    matches!(errcode, -1 | 45009 | 45033)
}

/// The body POSTed to a robot.
pub fn body(content: &str, mentioned: &[String]) -> serde_json::Value {
    let mut markdown = serde_json::json!({"content": truncate_bytes(content, MAX_CONTENT_BYTES)});
    if !mentioned.is_empty() {
        markdown["mentioned_mobile_list"] = mentioned.into();
    }
    serde_json::json!({"msgtype": "markdown", "markdown": markdown})
}

/// The WeCom channel: every configured robot, by name.
#[derive(Debug)]
pub struct Wecom {
    robots: HashMap<String, WecomConfig>,
    client: reqwest::Client,
    look: Context,
}

impl Wecom {
    /// Builds the channel; messages are rendered with `look`.
    pub fn new(robots: &[WecomConfig], look: Context) -> Result<Wecom, String> {
        Ok(Wecom {
            robots: robots.iter().map(|r| (r.name.clone(), r.clone())).collect(),
            client: http::client()?,
            look,
        })
    }
}

impl Channel for Wecom {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Wecom
    }

    async fn send(&mut self, b: &Batch) -> Result<(), SendError> {
        let Some(robot) = self.robots.get(b.target()) else {
            return Err(SendError::Permanent(format!(
                "wecom robot {:?} is not configured",
                b.target()
            )));
        };
        let content = self.look.render_batch(b).markdown();
        let req = self
            .client
            .post(robot.url.expose())
            .timeout(http::timeout(robot.timeout_s))
            .json(&body(&content, &robot.mentioned_mobile_list));
        let (status, answer) = http::send(req).await?;
        robot_answer(status, &answer, is_transient)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errcodes_are_classified() {
        let ok = br#"{"errcode":0,"errmsg":"ok"}"#;
        assert_eq!(robot_answer(200, ok, is_transient), Ok(()));
        let limited = br#"{"errcode":45009,"errmsg":"api freq out of limit"}"#;
        assert!(matches!(
            robot_answer(200, limited, is_transient),
            Err(SendError::Transient(e)) if e.contains("45009")
        ));
        let bad_key = br#"{"errcode":93000,"errmsg":"invalid webhook url"}"#;
        assert!(matches!(
            robot_answer(200, bad_key, is_transient),
            Err(SendError::Permanent(_))
        ));
        assert!(matches!(
            robot_answer(200, b"<html>", is_transient),
            Err(SendError::Transient(_))
        ));
        assert!(matches!(
            robot_answer(502, b"", is_transient),
            Err(SendError::Transient(_))
        ));
    }

    #[test]
    fn the_body_is_markdown_cut_at_a_character_boundary() {
        let long = "火".repeat(2000); // 6000 bytes
        let b = body(&long, &["13800000000".into()]);
        let content = b["markdown"]["content"].as_str().unwrap();
        assert!(content.len() <= MAX_CONTENT_BYTES && content.len() > 4090);
        assert_eq!(b["msgtype"], "markdown");
        assert_eq!(b["markdown"]["mentioned_mobile_list"][0], "13800000000");
        assert!(body("x", &[])["markdown"]
            .get("mentioned_mobile_list")
            .is_none());
    }

    #[test]
    fn validation_names_the_entry_and_never_the_key() {
        let robots = vec![
            WecomConfig {
                name: "duty".into(),
                url: Secret::new("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"),
                mentioned_mobile_list: vec![],
                timeout_s: None,
            },
            WecomConfig {
                name: "duty".into(),
                url: Secret::new("ftp://x?key=s3cret"),
                mentioned_mobile_list: vec!["call me".into()],
                timeout_s: None,
            },
        ];
        let p = validate(&robots);
        let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "wecom[1].name",
                "wecom[1].url",
                "wecom[1].mentioned_mobile_list[0]"
            ]
        );
        assert!(!format!("{p:?}").contains("s3cret"));
    }
}
