//! WeCom and DingTalk group robots and an SMS gateway against a real HTTP receiver started in
//! the test (`common::Receiver`), which answers as those services do: HTTP 200 with an
//! `errcode`, or a gateway's JSON. Each test has its own broker, so only its own alert is
//! notified.

use crate::common::*;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;

const OK: &str = r#"{"errcode":0,"errmsg":"ok"}"#;
const PUBLIC_URL: &str = "https://fw.example.org";

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, x)| ((*k).to_owned(), (*x).to_owned()))
        .collect();
    v.push(("FIREWATCH__HTTP__PUBLIC_URL".into(), PUBLIC_URL.into()));
    v
}

fn steps_of(full: &Value, channel: &str) -> Vec<(String, Value)> {
    full["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["detail"]["channel"] == channel)
        .map(|h| (h["what"].as_str().unwrap().to_owned(), h["detail"].clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wecom_robot_gets_the_chinese_markdown_with_the_link() {
    let robot = Receiver::answering(vec![], (200, OK.into())).await;
    let url = format!("{}/cgi-bin/webhook/send?key=wecom-key-0001", robot.base);
    let env = vars(&[
        ("FIREWATCH__WECOM__0__NAME", "duty-room"),
        ("FIREWATCH__WECOM__0__URL", &url),
        ("FIREWATCH__WECOM__0__MENTIONED_MOBILE_LIST", "13800000000"),
    ]);
    let (_broker, fw, id) = fire("bwc1", None, env).await;
    let row = settled(&fw, &id, "wecom").await;
    assert_eq!(row["status"], "sent", "{row}");
    assert_eq!(row["target"], "duty-room");
    assert!(row["key"].as_str().unwrap().ends_with(":wecom:duty-room"));
    let reqs = robot.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.query("key").as_deref(), Some("wecom-key-0001"));
    let body = r.json();
    assert_eq!(body["msgtype"], "markdown");
    assert_eq!(body["markdown"]["mentioned_mobile_list"][0], "13800000000");
    let content = body["markdown"]["content"].as_str().unwrap();
    for needle in [
        "【紧急·报警】火灾报警 bwc1 3F",
        "区域/点位 3F",
        "处置：立即现场确认，确认真实火警后拨打119",
        &format!("{PUBLIC_URL}/alerts/{id}"),
        "(UTC+08:00)",
    ] {
        assert!(
            content.contains(needle),
            "{needle:?} missing from\n{content}"
        );
    }
    let full = fw.get(&format!("/api/v1/alerts/{id}")).await;
    let steps = steps_of(&full, "wecom");
    assert_eq!(steps.len(), 1, "{full:#}");
    assert_eq!(steps[0].0, "notified");
    assert_eq!(steps[0].1["target"], "duty-room");
    assert_eq!(
        fw.metric(r#"firewatch_notifications_total{channel="wecom",outcome="sent"}"#)
            .await,
        1.0
    );
    // The key is a secret: not in the log.
    assert!(
        !fw.log().contains("wecom-key-0001"),
        "the robot key was logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dingtalk_robot_with_a_secret_gets_a_signed_request() {
    const SECRET: &str = "SEC0123456789abcdef-test";
    let robot = Receiver::answering(vec![], (200, OK.into())).await;
    let url = format!("{}/robot/send?access_token=dt-token-0001", robot.base);
    let env = vars(&[
        ("FIREWATCH__DINGTALK__0__NAME", "estate"),
        ("FIREWATCH__DINGTALK__0__URL", &url),
        ("FIREWATCH__DINGTALK__0__SECRET", SECRET),
        ("FIREWATCH__DINGTALK__0__AT_MOBILES", "13900000000"),
    ]);
    let before = wall_ms();
    let (_broker, fw, id) = fire("bdt1", None, env).await;
    let row = settled(&fw, &id, "dingtalk").await;
    assert_eq!(row["status"], "sent", "{row}");
    let reqs = robot.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    let r = &reqs[0];
    assert_eq!(r.query("access_token").as_deref(), Some("dt-token-0001"));
    // The signature: base64(HMAC-SHA256(secret, "{timestamp}\n{secret}")), URL-encoded.
    let ts: i64 = r.query("timestamp").unwrap().parse().unwrap();
    assert!(ts >= before && ts <= wall_ms(), "timestamp {ts} is not now");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{ts}\n{SECRET}").as_bytes());
    let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(r.query("sign").unwrap(), want);
    let body = r.json();
    assert_eq!(body["msgtype"], "markdown");
    assert_eq!(body["at"]["atMobiles"][0], "13900000000");
    let title = body["markdown"]["title"].as_str().unwrap();
    assert!(title.contains("火灾报警"), "{title}");
    let text = body["markdown"]["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("{PUBLIC_URL}/alerts/{id}")),
        "{text}"
    );
    assert!(text.contains("@13900000000"), "{text}");
    let log = fw.log();
    assert!(!log.contains("dt-token-0001") && !log.contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_robot_rate_limit_answer_is_retried_until_it_succeeds() {
    let limited = (
        200,
        r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#.to_owned(),
    );
    let robot = Receiver::answering(vec![limited.clone(), limited], (200, OK.into())).await;
    let url = format!("{}/cgi-bin/webhook/send?key=k", robot.base);
    let env = vars(&[
        ("FIREWATCH__WECOM__0__NAME", "duty-room"),
        ("FIREWATCH__WECOM__0__URL", &url),
    ]);
    let (_broker, fw, id) = fire("bwc5", None, env).await;
    let row = settled(&fw, &id, "wecom").await;
    assert_eq!(row["status"], "sent", "{row}");
    assert_eq!(row["attempts"], 3);
    assert_eq!(robot.requests().len(), 3);
    let full = fw.get(&format!("/api/v1/alerts/{id}")).await;
    let steps = steps_of(&full, "wecom");
    let what: Vec<&str> = steps.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        what,
        ["notify_failed", "notify_failed", "notified"],
        "{full:#}"
    );
    assert!(steps[0].1["error"].as_str().unwrap().contains("45009"));
    // A permanent refusal is not retried.
    let refused = (
        200,
        r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#.to_owned(),
    );
    let robot = Receiver::answering(vec![], refused).await;
    let url = format!("{}/cgi-bin/webhook/send?key=gone", robot.base);
    let env = vars(&[
        ("FIREWATCH__WECOM__0__NAME", "old"),
        ("FIREWATCH__WECOM__0__URL", &url),
    ]);
    let (_broker, fw, id) = fire("bwc6", None, env).await;
    let row = settled(&fw, &id, "wecom").await;
    assert_eq!(row["status"], "failed", "{row}");
    assert_eq!(row["attempts"], 1);
    assert!(
        row["last_error"].as_str().unwrap().contains("93000"),
        "{row}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_gateway_gets_the_phone_and_the_text_through_the_template() {
    let gateway = Receiver::answering(vec![], (200, r#"{"code": 0, "msg": "ok"}"#.into())).await;
    let url = format!("{}/sms/send", gateway.base);
    let env = vars(&[
        ("FIREWATCH__SMS__URL", &url),
        (
            "FIREWATCH__SMS__BODY",
            r#"{"mobile": "{phone}", "content": "{text}", "sign": "消防"}"#,
        ),
        ("FIREWATCH__SMS__TO", "+8613800000000"),
        ("FIREWATCH__SMS__SUCCESS_FIELD", "code"),
        ("FIREWATCH__SMS__SUCCESS_VALUE", "0"),
        ("FIREWATCH__SMS__HEADERS__X_API_TOKEN", "sms-token-0001"),
    ]);
    let (_broker, fw, id) = fire("bsm1", None, env).await;
    let row = settled(&fw, &id, "sms").await;
    assert_eq!(row["status"], "sent", "{row}");
    assert_eq!(row["target"], "+8613800000000");
    let reqs = gateway.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    let r = &reqs[0];
    assert_eq!(r.uri.path(), "/sms/send");
    assert!(r.header("content-type").starts_with("application/json"));
    assert_eq!(r.header("x_api_token"), "sms-token-0001");
    let body = r.json();
    assert_eq!(body["mobile"], "+8613800000000");
    assert_eq!(body["sign"], "消防");
    let text = body["content"].as_str().unwrap();
    assert!(text.starts_with("【紧急报警】火灾报警：bsm1 3F"), "{text}");
    assert!(
        text.ends_with(&format!("{PUBLIC_URL}/alerts/{id}")),
        "{text}"
    );
    // The gist, then the acknowledgement code, then the link.
    let alert = fw.get(&format!("/api/v1/alerts/{id}")).await;
    let code = alert["ack_code"].as_str().unwrap();
    assert!(text.contains(&format!("回复确认码 {code}。")), "{text}");
    let gist = text.split("回复确认码").next().unwrap();
    assert!(
        gist.chars().count() <= 70,
        "{} characters: {text}",
        gist.chars().count()
    );
    assert!(!fw.log().contains("sms-token-0001"));
}
