//! The e-mail channel: `[email]` settings, the SMTP URL, the mail (subject and plain-text
//! UTF-8 body from [`super::render`], in the deployment's language), and the transports: `.eml` files when no SMTP URL is set, a kept-open `TCP_NODELAY`
//! connection for plain and STARTTLS SMTP, lettre's pooled transport for implicit TLS.
//!
//! Every mail carries a `Message-ID` stable per outbox row (`<a-000123.42@firewatch>`), so a
//! repeated delivery after a crash can be dropped by mail systems.
//!
//! SMTP latency: lettre writes the message body and its terminating `.` in two writes; with
//! Nagle's algorithm on, the second waits for the server's delayed ACK (~40 ms per mail). Plain
//! and STARTTLS connections are therefore made here with `TCP_NODELAY` and kept open between
//! mails; implicit TLS (`smtps://`) goes through lettre's own pooled transport.
//!
//! Classification: SMTP 5xx answers and addresses that do not parse are permanent; 4xx answers,
//! network failures and timeouts are transient.

use super::render::Context;
use super::{Batch, Channel, SendError};
use crate::model::notification::{ChannelKind, Subject};
use crate::settings::{Problem, Secret};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// `[email]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// `smtp://host:port`, `smtps://user:pass@host`; unset: `.eml` files in `{storage.dir}/outbox`.
    pub smtp_url: Option<Secret>,
    /// Sender.
    pub from: String,
    /// Default recipients: an array, or one comma-separated string.
    #[serde(deserialize_with = "one_or_many")]
    pub to: Vec<String>,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            smtp_url: None,
            from: "firewatch <firewatch@localhost>".into(),
            to: vec!["duty@localhost".into()],
        }
    }
}

impl EmailConfig {
    /// Every problem of the e-mail settings, with `email.` key paths.
    pub fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if let Some(url) = &self.smtp_url {
            if let Err(e) = SmtpTarget::parse(url.expose()) {
                p.push(Problem::new("email.smtp_url", e));
            }
        }
        if self.from.parse::<Mailbox>().is_err() {
            p.push(Problem::new(
                "email.from",
                format!("{:?} is not an e-mail address", self.from),
            ));
        }
        if self.to.is_empty() {
            p.push(Problem::new("email.to", "needs at least one address"));
        }
        for (i, to) in self.to.iter().enumerate() {
            if to.parse::<Mailbox>().is_err() {
                p.push(Problem::new(
                    format!("email.to[{i}]"),
                    format!("{to:?} is not an e-mail address"),
                ));
            }
        }
        p
    }
}

/// Deserialises an array of strings, or one comma-separated string (the form an environment
/// variable takes).
pub(crate) fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        OneOrMany::Many(v) => v,
    })
}

/// Where mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain SMTP.
    None,
    /// STARTTLS after connecting (`smtp://…?tls=starttls`).
    StartTls,
    /// Implicit TLS (`smtps://`).
    Implicit,
}

/// A parsed `email.smtp_url`.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpTarget {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS mode.
    pub security: SmtpSecurity,
    /// User name.
    pub user: Option<String>,
    /// Password.
    pub password: Option<Secret>,
}

impl std::fmt::Debug for SmtpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.redacted())
    }
}

impl SmtpTarget {
    /// Parses `smtp://[user:pass@]host[:port][?tls=starttls]` or `smtps://…`.
    pub fn parse(s: &str) -> Result<SmtpTarget, String> {
        let u = url::Url::parse(s).map_err(|e| format!("not a URL: {e}"))?;
        let security = match (u.scheme(), u.query_pairs().find(|(k, _)| k == "tls")) {
            ("smtps", _) => SmtpSecurity::Implicit,
            ("smtp", Some((_, v))) if v == "starttls" => SmtpSecurity::StartTls,
            ("smtp", Some((_, v))) if v == "none" => SmtpSecurity::None,
            ("smtp", None) => SmtpSecurity::None,
            ("smtp", Some((_, v))) => return Err(format!("tls={v} is not starttls or none")),
            (other, _) => return Err(format!("scheme {other:?} is not smtp:// or smtps://")),
        };
        let host = u
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("has no host")?
            .trim_matches(|c| c == '[' || c == ']')
            .to_owned();
        let port = u.port().unwrap_or(match security {
            SmtpSecurity::Implicit => 465,
            _ => 25,
        });
        let decode = percent_decode;
        let user = (!u.username().is_empty()).then(|| decode(u.username()));
        let password = u.password().map(|p| Secret::new(decode(p)));
        Ok(SmtpTarget {
            host,
            port,
            security,
            user,
            password,
        })
    }

    /// `scheme://host:port` without credentials, for logs.
    pub fn redacted(&self) -> String {
        let scheme = if self.security == SmtpSecurity::Implicit {
            "smtps"
        } else {
            "smtp"
        };
        format!("{scheme}://{}:{}", self.host, self.port)
    }
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Longest wait for a new connection's greeting, STARTTLS and AUTH.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

enum Transport {
    Files(AsyncFileTransport<Tokio1Executor>),
    Direct {
        target: SmtpTarget,
        conn: Option<Box<AsyncSmtpConnection>>,
    },
    Pooled(AsyncSmtpTransport<Tokio1Executor>),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Files(_) => f.write_str("Files"),
            Transport::Direct { target, .. } => write!(f, "Direct({})", target.redacted()),
            Transport::Pooled(_) => f.write_str("Pooled"),
        }
    }
}

fn classify(e: &lettre::transport::smtp::Error) -> SendError {
    if e.is_permanent() {
        SendError::Permanent(e.to_string())
    } else {
        SendError::Transient(e.to_string())
    }
}

impl Transport {
    fn new(cfg: &EmailConfig, outbox: &Path) -> Result<Transport, String> {
        match &cfg.smtp_url {
            None => {
                std::fs::create_dir_all(outbox)
                    .map_err(|e| format!("cannot create {}: {e}", outbox.display()))?;
                Ok(Transport::Files(AsyncFileTransport::new(outbox)))
            }
            Some(url) => {
                let target = SmtpTarget::parse(url.expose())?;
                if target.security == SmtpSecurity::Implicit {
                    let t = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                        .map_err(|e| e.to_string())?
                        .timeout(Some(Duration::from_secs(20)))
                        .build();
                    Ok(Transport::Pooled(t))
                } else {
                    Ok(Transport::Direct { target, conn: None })
                }
            }
        }
    }

    async fn connect(target: &SmtpTarget) -> Result<AsyncSmtpConnection, SendError> {
        let addr = (target.host.as_str(), target.port);
        let tcp = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        .map_err(|_| SendError::Transient("connect timed out".into()))?
        .map_err(|e| SendError::Transient(format!("connect: {e}")))?;
        tcp.set_nodelay(true)
            .map_err(|e| SendError::Transient(format!("nodelay: {e}")))?;
        let hello = ClientId::default();
        let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello)
            .await
            .map_err(|e| classify(&e))?;
        if target.security == SmtpSecurity::StartTls {
            let tls = TlsParameters::new(target.host.clone())
                .map_err(|e| SendError::Permanent(e.to_string()))?;
            conn.starttls(tls, &hello).await.map_err(|e| classify(&e))?;
        }
        if let (Some(user), Some(pass)) = (&target.user, &target.password) {
            let creds = Credentials::new(user.clone(), pass.expose().to_owned());
            conn.auth(
                &[
                    lettre::transport::smtp::authentication::Mechanism::Plain,
                    lettre::transport::smtp::authentication::Mechanism::Login,
                ],
                &creds,
            )
            .await
            .map_err(|e| classify(&e))?;
        }
        Ok(conn)
    }

    async fn send(&mut self, msg: Message) -> Result<(), SendError> {
        match self {
            Transport::Files(t) => t
                .send(msg)
                .await
                .map(|_| ())
                .map_err(|e| SendError::Transient(format!("writing .eml: {e}"))),
            Transport::Pooled(t) => t.send(msg).await.map(|_| ()).map_err(|e| classify(&e)),
            Transport::Direct { target, conn } => {
                // A kept-open connection may have been closed by the server: one fresh retry.
                for attempt in 0..2 {
                    let mut c = match conn.take() {
                        Some(c) if !c.has_broken() => c,
                        // The greeting, STARTTLS and AUTH of a silent server must not hold
                        // the e-mail sender for ever.
                        _ => Box::new(
                            tokio::time::timeout(HANDSHAKE_TIMEOUT, Self::connect(target))
                                .await
                                .map_err(|_| {
                                    SendError::Transient("no answer from the server".into())
                                })??,
                        ),
                    };
                    let envelope = msg.envelope().clone();
                    let bytes = msg.formatted();
                    let r =
                        tokio::time::timeout(Duration::from_secs(30), c.send(&envelope, &bytes))
                            .await;
                    match r {
                        Ok(Ok(_)) => {
                            *conn = Some(c);
                            return Ok(());
                        }
                        Ok(Err(e)) if e.is_permanent() => {
                            *conn = Some(c);
                            return Err(classify(&e));
                        }
                        Ok(Err(e)) if attempt == 1 || e.is_transient() => {
                            // A 4xx answer: the server is up but refuses for now.
                            if e.is_transient() {
                                *conn = Some(c);
                            }
                            return Err(classify(&e));
                        }
                        Ok(Err(_)) => {} // broken connection: reconnect once
                        Err(_) => return Err(SendError::Transient("send timed out".into())),
                    }
                }
                Err(SendError::Transient("connection lost".into()))
            }
        }
    }
}

/// The e-mail channel.
#[derive(Debug)]
pub struct Email {
    from: Mailbox,
    transport: Transport,
    look: Context,
}

impl Email {
    /// Builds the channel (file transport into `{storage.dir}/outbox` when no SMTP URL); mails
    /// are rendered with `look`.
    pub fn new(cfg: &EmailConfig, dir: &Path, look: Context) -> Result<Email, String> {
        let from: Mailbox = cfg.from.parse().map_err(|e| format!("email.from: {e}"))?;
        let transport = Transport::new(cfg, &dir.join("outbox"))?;
        Ok(Email {
            from,
            transport,
            look,
        })
    }

    fn build(&self, b: &Batch) -> Result<Message, String> {
        let Some(n) = b.single() else {
            return self.build_digest(b);
        };
        let r = self.look.render_for(n);
        let (subject, body) = (r.subject.clone(), r.plain());
        let mut m = self
            .builder(&n.target)?
            .subject(subject)
            .message_id(Some(format!("<{}.{}@firewatch>", n.subject, n.id)));
        // Plain ASCII for mail filters and scripts: the subject and body are UTF-8 (encoded).
        let field = |k: &str| n.snapshot.get(k).and_then(serde_json::Value::as_str);
        let alert = match n.subject {
            Subject::Alert(id) => Some(crate::model::alert::alert_id(id)),
            Subject::Workorder(_) => field("alert").map(str::to_owned),
            Subject::Summary(_) => None,
        };
        let workorder = n
            .subject
            .workorder()
            .map(crate::model::workorder::workorder_id);
        m = headers(
            m,
            [
                ("X-Firewatch-Alert", alert),
                ("X-Firewatch-Workorder", workorder),
                (
                    "X-Firewatch-Summary",
                    n.subject.summary().map(crate::model::summary::summary_id),
                ),
                ("X-Firewatch-Event", Some(n.event.as_str().to_owned())),
                ("X-Firewatch-Severity", field("severity").map(str::to_owned)),
                ("X-Firewatch-Rule", field("rule").map(str::to_owned)),
                ("X-Firewatch-Building", field("building").map(str::to_owned)),
                ("X-Firewatch-Device", field("device").map(str::to_owned)),
            ],
        );
        m.header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| e.to_string())
    }

    /// (added) A digest of several notifications: `X-Firewatch-Event: digest`, the number of
    /// rows in `X-Firewatch-Digest`, the alert ids in `X-Firewatch-Alerts` and the building in
    /// `X-Firewatch-Building` when there is one.
    fn build_digest(&self, b: &Batch) -> Result<Message, String> {
        let r = super::digest::render(&self.look, b);
        let buildings = b.buildings();
        let first = b.rows.first().map_or(0, |n| n.id);
        let alerts: Vec<String> = b
            .rows
            .iter()
            .filter_map(|n| n.subject.alert().map(crate::model::alert::alert_id))
            .collect();
        let m = self
            .builder(b.target())?
            .subject(r.subject.clone())
            .message_id(Some(format!("<digest.{first}.{}@firewatch>", b.rows.len())));
        let m = headers(
            m,
            [
                ("X-Firewatch-Event", Some("digest".to_owned())),
                ("X-Firewatch-Digest", Some(b.rows.len().to_string())),
                ("X-Firewatch-Alerts", Some(alerts.join(" "))),
                (
                    "X-Firewatch-Building",
                    (buildings.len() == 1).then(|| buildings[0].to_owned()),
                ),
            ],
        );
        m.header(ContentType::TEXT_PLAIN)
            .body(r.plain())
            .map_err(|e| e.to_string())
    }

    /// A message from us to `target`.
    fn builder(&self, target: &str) -> Result<lettre::message::MessageBuilder, String> {
        let to = target
            .parse::<Mailbox>()
            .map_err(|e| format!("recipient {target:?}: {e}"))?;
        Ok(Message::builder().from(self.from.clone()).to(to))
    }
}

/// Adds the headers with a value that is plain ASCII on one line.
fn headers<const N: usize>(
    mut m: lettre::message::MessageBuilder,
    fields: [(&'static str, Option<String>); N],
) -> lettre::message::MessageBuilder {
    for (name, value) in fields {
        if let Some(v) =
            value.filter(|v| !v.is_empty() && v.is_ascii() && !v.contains(['\r', '\n']))
        {
            m = m.raw_header(HeaderValue::new(HeaderName::new_from_ascii_str(name), v));
        }
    }
    m
}

impl Channel for Email {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }

    async fn send(&mut self, b: &Batch) -> Result<(), SendError> {
        let msg = self.build(b).map_err(SendError::Permanent)?;
        self.transport.send(msg).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::alert::{Alert, Status};
    use crate::model::notification::Event;

    #[test]
    fn smtp_urls_parse_and_redact() {
        let t = SmtpTarget::parse("smtps://user:p%40ss@mail.example.org").unwrap();
        assert_eq!(t.security, SmtpSecurity::Implicit);
        assert_eq!(t.port, 465);
        assert_eq!(t.user.as_deref(), Some("user"));
        assert_eq!(t.password.as_ref().map(Secret::expose), Some("p@ss"));
        assert_eq!(format!("{t:?}"), "smtps://mail.example.org:465");
        let t = SmtpTarget::parse("smtp://127.0.0.1:2525?tls=starttls").unwrap();
        assert_eq!(t.security, SmtpSecurity::StartTls);
        assert!(SmtpTarget::parse("http://x").is_err());
        assert!(SmtpTarget::parse("smtp://x?tls=maybe").is_err());
    }

    #[test]
    fn mail_says_what_where_since_value_threshold() {
        let a = Alert {
            id: 123,
            rule: "water_pressure.low".into(),
            severity: crate::model::Severity::Major,
            building: "bsy-0012".into(),
            kind: crate::model::Kind::WaterPressure,
            device: "wp-0012-03".into(),
            channel: None,
            active: true,
            status: Status::Open,
            value: Some(0.05),
            threshold: Some(0.1),
            message: "Fire-water pressure 0.05 MPa below 0.1 MPa for 60 s".into(),
            started_at: 1_795_908_600_000,
            updated_at: 1_795_908_660_000,
            cleared_at: None,
            acknowledged_at: None,
            acknowledged_by: None,
            closed_at: None,
            closed_by: None,
            classification: None,
            sla_missed_at: None,
        };
        let mut snap = a.to_json(Vec::new());
        snap["location"] = "B1 pump room".into();
        let dir = tempfile::tempdir().unwrap();
        let email = Email::new(&EmailConfig::default(), dir.path(), Context::default()).unwrap();
        let mut n = row("duty@x.org");
        n.snapshot = snap;
        let mail =
            String::from_utf8(email.build(&Batch::one(n.clone())).unwrap().formatted()).unwrap();
        // Filters and scripts find the alert in plain ASCII headers.
        for h in [
            "X-Firewatch-Alert: a-000001",
            "X-Firewatch-Event: fired",
            "X-Firewatch-Severity: major",
            "X-Firewatch-Rule: water_pressure.low",
        ] {
            assert!(mail.contains(&format!("{h}\r\n")), "{h} missing: {mail}");
        }
        assert!(
            mail.contains("Content-Type: text/plain; charset=utf-8"),
            "{mail}"
        );
        // The subject is encoded (UTF-8); what filters look for stays readable in the body's
        // source, the subject is checked through the renderer.
        let r = Context::default().render(&n.snapshot, n.event);
        assert!(r.subject.contains("a-000123"));
        assert!(r.subject.contains("MAJOR"));
        let body = r.plain();
        for needle in [
            "bsy-0012",
            "wp-0012-03",
            "B1 pump room",
            "2026-",
            "0.05 MPa",
            "0.10 MPa",
            "低于",
            "(UTC+08:00)",
        ] {
            assert!(body.contains(needle), "{needle} missing from {body}");
        }
        assert!(body.starts_with("【重要·报警】"), "{body}");
    }

    /// A scripted SMTP server: greets, accepts EHLO, answers MAIL FROM with `reply`.
    async fn answering(reply: &'static str) -> String {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("smtp://{}", l.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((c, _)) = l.accept().await {
                let (r, mut w) = c.into_split();
                let mut lines = BufReader::new(r).lines();
                w.write_all(b"220 test\r\n").await.unwrap();
                while let Ok(Some(line)) = lines.next_line().await {
                    let answer = match line.get(..4).unwrap_or("").to_ascii_uppercase().as_str() {
                        "EHLO" | "HELO" => "250 test\r\n",
                        "MAIL" => reply,
                        "QUIT" => "221 bye\r\n",
                        _ => "250 ok\r\n",
                    };
                    w.write_all(answer.as_bytes()).await.unwrap();
                }
            }
        });
        url
    }

    fn row(target: &str) -> crate::model::notification::Notification {
        crate::model::notification::Notification {
            id: 1,
            subject: Subject::Alert(1),
            key: "k".into(),
            event: Event::Fired,
            channel: ChannelKind::Email,
            target: target.into(),
            created_at: 0,
            attempts: 0,
            snapshot: serde_json::json!({"id": "a-000001"}),
            lang: None,
            tz: None,
        }
    }

    #[tokio::test]
    async fn smtp_5xx_is_permanent_and_4xx_transient() {
        let dir = tempfile::tempdir().unwrap();
        for (reply, permanent) in [("550 no such sender\r\n", true), ("451 later\r\n", false)] {
            let cfg = EmailConfig {
                smtp_url: Some(Secret::new(answering(reply).await)),
                ..EmailConfig::default()
            };
            let mut email = Email::new(&cfg, dir.path(), Context::default()).unwrap();
            match email.send(&Batch::one(row("duty@x.org"))).await {
                Err(SendError::Permanent(e)) => assert!(permanent, "{reply}: {e}"),
                Err(SendError::Transient(e)) => assert!(!permanent, "{reply}: {e}"),
                Ok(()) => panic!("{reply}: sent"),
            }
        }
        // Nobody listening: a network failure, transient.
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("smtp://{}", free.local_addr().unwrap());
        drop(free);
        let cfg = EmailConfig {
            smtp_url: Some(Secret::new(url)),
            ..EmailConfig::default()
        };
        let mut email = Email::new(&cfg, dir.path(), Context::default()).unwrap();
        assert!(matches!(
            email.send(&Batch::one(row("duty@x.org"))).await,
            Err(SendError::Transient(_))
        ));
    }

    #[test]
    fn a_bad_recipient_is_a_permanent_failure() {
        let dir = tempfile::tempdir().unwrap();
        let mut email =
            Email::new(&EmailConfig::default(), dir.path(), Context::default()).unwrap();
        let n = row("not an address");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(matches!(
            rt.block_on(email.send(&Batch::one(n.clone()))),
            Err(SendError::Permanent(_))
        ));
    }
}
