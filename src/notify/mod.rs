//! Notifications: rendering alert transitions as e-mail, and the sender that works off the
//! persisted outbox with retries and backoff.
//!
//! Delivery is at least once: a row is marked sent after the server accepted the mail, so a
//! crash between the two sends it again; every mail carries a stable `Message-ID`
//! (`<a-000123.42@firewatch>`) so mail systems can drop that duplicate.
//!
//! SMTP latency: lettre writes the message body and its terminating `.` in two writes; with
//! Nagle's algorithm on, the second waits for the server's delayed ACK (~40 ms per mail). Plain
//! and STARTTLS connections are therefore made here with `TCP_NODELAY` and kept open between
//! mails; implicit TLS (`smtps://`) goes through lettre's own pooled transport.

use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::model::alert::{alert_id, Alert};
use crate::model::{rfc3339, Millis};
use crate::settings::{Problem, Secret};
use crate::store::alerts::Outgoing;
pub use crate::store::outbox::Delivery;
use crate::store::{self};
use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rusqlite::Connection;
use serde::Deserialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

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

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
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

/// Where delivery outcomes go: the store's single writer (the pipeline), which records them.
/// Returns `false` when it is gone (shutting down).
pub type Report = Box<dyn Fn(Delivery) -> bool + Send + Sync>;

/// Renders the e-mail for an alert event (`fired`, `cleared`, `closed`, `repeat`).
pub fn render(
    alert: &Alert,
    event: &'static str,
    to: &[String],
    location: Option<&str>,
) -> Outgoing {
    let what = match event {
        "fired" if !alert.active => "ALERT (momentary)",
        "fired" => "ALERT",
        "cleared" => "CLEARED",
        "closed" => "CLOSED",
        "repeat" => "STILL ACTIVE",
        other => other,
    };
    let place = match &alert.channel {
        Some(c) => format!("{} / {} / {}", alert.building, alert.device, c),
        None => format!("{} / {}", alert.building, alert.device),
    };
    let subject = format!(
        "[firewatch] {what} {} {}: {} ({})",
        alert.severity.as_str().to_uppercase(),
        alert.rule,
        place,
        alert_id(alert.id)
    );
    let num = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), |v| format!("{v}"));
    let mut body = format!(
        "{what}: {}\n\n\
         What:      {} ({} severity)\n\
         Where:     building {}, {} device {}{}{}\n\
         Since:     {}\n\
         Value:     {}\n\
         Threshold: {}\n\
         Status:    {}, condition {}\n\
         Alert:     {}\n",
        alert.message,
        alert.rule,
        alert.severity.as_str(),
        alert.building,
        alert.kind,
        alert.device,
        alert
            .channel
            .as_ref()
            .map(|c| format!(", zone/channel {c}"))
            .unwrap_or_default(),
        location.map(|l| format!(" ({l})")).unwrap_or_default(),
        rfc3339(alert.started_at),
        num(alert.value),
        num(alert.threshold),
        alert.status,
        if alert.active {
            "active"
        } else {
            "no longer active"
        },
        alert_id(alert.id),
    );
    if let Some(c) = alert.cleared_at {
        body.push_str(&format!("Cleared:   {}\n", rfc3339(c)));
    }
    if event == "closed" {
        body.push_str(&format!(
            "Closed:    by {} as {}\n",
            alert.closed_by.as_deref().unwrap_or("?"),
            alert.classification.map_or("?", |c| c.as_str())
        ));
    }
    body.push_str("\nAcknowledge and close it in the firewatch dashboard or API:\n");
    body.push_str(&format!(
        "  POST /api/v1/alerts/{}/ack   {{\"by\": \"<name>\"}}\n",
        alert_id(alert.id)
    ));
    Outgoing {
        event,
        recipients: to.to_vec(),
        subject,
        body,
    }
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

/// Sending errors, classified for retry.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth retrying (network, 4xx SMTP answers).
    #[error("{0}")]
    Transient(String),
    /// Will not succeed by retrying (5xx answers, bad addresses).
    #[error("{0}")]
    Permanent(String),
}

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
                        _ => Box::new(Self::connect(target).await?),
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

/// The outbox sender task.
#[derive(Debug)]
pub struct Notifier {
    dir: PathBuf,
    from: Mailbox,
    transport: Transport,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    clock: SharedClock,
}

impl Notifier {
    /// Builds the notifier (file transport into `{storage.dir}/outbox` when no SMTP URL).
    pub fn new(
        cfg: &EmailConfig,
        dir: &Path,
        metrics: Arc<Metrics>,
        wake: Arc<Notify>,
        clock: SharedClock,
    ) -> Result<Notifier, String> {
        let from: Mailbox = cfg.from.parse().map_err(|e| format!("email.from: {e}"))?;
        let transport = Transport::new(cfg, &dir.join("outbox"))?;
        Ok(Notifier {
            dir: dir.to_owned(),
            from,
            transport,
            metrics,
            wake,
            clock,
        })
    }

    /// Works off the outbox until cancelled. The outbox is read through a read-only
    /// connection; outcomes go to the pipeline, the store's single writer, so the notifier never
    /// waits for (or holds) the write lock. Rows whose outcome is not committed yet stay in
    /// `reported` and are not sent again.
    pub async fn run(
        mut self,
        report: Report,
        shutdown: CancellationToken,
    ) -> Result<(), store::StoreError> {
        let conn = Arc::new(std::sync::Mutex::new(store::open_reader(&self.dir)?));
        let mut reported: HashSet<i64> = HashSet::new();
        loop {
            let c = Arc::clone(&conn);
            let now = self.clock.now_ms();
            let (rows, queued, next_due) = tokio::task::spawn_blocking(move || {
                let conn = c.lock().map_err(|_| store::StoreError::Corrupt {
                    what: "outbox reader",
                    err: "lock poisoned".into(),
                })?;
                due_rows(&conn, now)
            })
            .await
            .map_err(|e| store::StoreError::Corrupt {
                what: "task",
                err: e.to_string(),
            })??;
            let due: HashSet<i64> = rows.iter().map(|r| r.id).collect();
            reported.retain(|id| due.contains(id));
            self.metrics
                .notify_queue
                .store(queued - reported.len() as i64, Relaxed);
            let fresh: Vec<OutboxRow> = rows
                .into_iter()
                .filter(|r| !reported.contains(&r.id))
                .collect();
            for row in fresh {
                if shutdown.is_cancelled() {
                    return Ok(());
                }
                let result = match self.build(&row) {
                    Ok(m) => self.transport.send(m).await,
                    Err(e) => Err(SendError::Permanent(e)),
                };
                let now = self.clock.now_ms();
                match &result {
                    Ok(()) => {
                        self.metrics.notify_sent.fetch_add(1, Relaxed);
                        let lat = (now - row.created_at).max(0) as u64 * 1000;
                        self.metrics.notify_last_latency_us.store(lat, Relaxed);
                    }
                    Err(e) => {
                        self.metrics.notify_failed.fetch_add(1, Relaxed);
                        tracing::warn!(alert = %alert_id(row.alert_id), event = %row.event, attempt = row.attempts + 1, error = %e, "Notification failed; will retry.");
                    }
                }
                let outcome = result.map_err(|e| match e {
                    SendError::Permanent(m) => (true, m),
                    SendError::Transient(m) => (false, m),
                });
                reported.insert(row.id);
                let delivery = Delivery {
                    id: row.id,
                    alert_id: row.alert_id,
                    event: row.event,
                    recipients: row.recipients,
                    attempts: row.attempts,
                    at: now,
                    outcome,
                };
                if !report(delivery) {
                    // The pipeline has stopped: the row stays unsent and goes out after a
                    // restart (at least once).
                    return Ok(());
                }
            }
            // Wait for the next due row on the clock (a manual clock in tests), for new rows
            // (the pipeline's wake-up), and at most 5 s of real time in any case.
            let (due_at, poll) = if reported.is_empty() {
                (next_due.unwrap_or(i64::MAX), Duration::from_secs(5))
            } else {
                // Outcomes not committed yet (those rows still look due): look again soon.
                (i64::MAX, Duration::from_millis(50))
            };
            tokio::select! {
                () = self.wake.notified() => {}
                () = self.clock.wait_until(due_at) => {}
                () = tokio::time::sleep(poll) => {}
                () = shutdown.cancelled() => return Ok(()),
            }
        }
    }

    fn build(&self, row: &OutboxRow) -> Result<Message, String> {
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(row.subject.clone())
            .message_id(Some(format!(
                "<{}.{}@firewatch>",
                alert_id(row.alert_id),
                row.id
            )))
            .header(ContentType::TEXT_PLAIN);
        for r in row.recipients.split(',').filter(|r| !r.is_empty()) {
            b = b.to(r
                .parse::<Mailbox>()
                .map_err(|e| format!("recipient {r:?}: {e}"))?);
        }
        b.body(row.body.clone()).map_err(|e| e.to_string())
    }
}

#[derive(Debug, Clone)]
struct OutboxRow {
    id: i64,
    alert_id: i64,
    event: String,
    created_at: Millis,
    attempts: i64,
    recipients: String,
    subject: String,
    body: String,
}

#[allow(clippy::type_complexity)]
fn due_rows(
    c: &Connection,
    now: Millis,
) -> Result<(Vec<OutboxRow>, i64, Option<Millis>), store::StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT id, alert_id, event, created_at, attempts, recipients, subject, body FROM outbox
         WHERE sent_at IS NULL AND next_attempt_at <= ?1 ORDER BY id LIMIT 50",
    )?;
    let rows = stmt
        .query_map([now], |r| {
            Ok(OutboxRow {
                id: r.get(0)?,
                alert_id: r.get(1)?,
                event: r.get(2)?,
                created_at: r.get(3)?,
                attempts: r.get(4)?,
                recipients: r.get(5)?,
                subject: r.get(6)?,
                body: r.get(7)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let (queued, next): (i64, Option<Millis>) = c.query_row(
        "SELECT count(*), min(next_attempt_at) FROM outbox WHERE sent_at IS NULL",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok((rows, queued, next))
}

#[cfg(test)]
mod tests {
    use super::*;

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
            status: crate::model::alert::Status::Open,
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
        };
        let m = render(&a, "fired", &["duty@x.org".into()], Some("B1 pump room"));
        assert!(m.subject.contains("a-000123"));
        assert!(m.subject.contains("MAJOR"));
        for needle in [
            "bsy-0012",
            "wp-0012-03",
            "B1 pump room",
            "2026-",
            "0.05",
            "0.1",
            "below",
        ] {
            assert!(m.body.contains(needle), "{needle} missing from {}", m.body);
        }
    }
}
