//! (added) Northbound: forwarding to upstream (city) platforms (接入市级平台), store and forward.
//!
//! Each `[[northbound]]` target is one task. It reads what it forwards from the store through
//! a read-only connection, after its own cursors (a change id and a reading id, in `meta`):
//! alert and device changes from the persisted change feed (`changes`), and, when included,
//! readings (`readings`). Changes go first: a batch of readings is read only when no change is
//! waiting. Each record carries its idempotency key (`firewatch:{source}:{id}`), and goes out
//! mapped as configured ([`mapping`]).
//!
//! Delivery is at least once and in order: a batch is sent, and only when the platform has
//! taken all of it (MQTT: every PUBACK; HTTP: a 2xx answer) does the cursor move past it. The
//! cursor goes to the pipeline, the store's only writer ([`CursorReport`]); after a restart
//! the batch after the saved cursor is sent again. Failures (network, timeouts, HTTP 408, 429
//! and 5xx other than 501) are retried with exponential backoff and full jitter, without
//! skipping. A batch an HTTP platform refuses (another 4xx) is halved until the refused record
//! is alone; that record is set aside (kept in `northbound_set_aside`, counted, logged) and
//! the stream goes on.
//!
//! The pipeline's housekeeping keeps every row after a target's cursor, up to the target's
//! `max_backlog`; rows pruned past that bound before they were forwarded are counted as
//! dropped when the target finds the gap.

pub mod http;
pub mod mapping;
pub mod mqtt;

use crate::bus::Bus;
use crate::clock::SharedClock;
use crate::metrics::northbound::Target as TargetMetrics;
use crate::metrics::Metrics;
use crate::model::rfc3339;
use crate::settings::{Problem, Secret};
use crate::store::northbound::{self as nbstore, Behind, SetAside, Source};
use crate::store::{self, StoreError};
use mapping::{Mapping, Record, RecordType, Topic};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One `[[northbound]]` target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NorthboundConfig {
    /// Name: metrics label, cursor and client id (`[A-Za-z0-9_-]`, unique).
    pub name: String,
    /// `mqtt://host[:port]` / `mqtts://host[:port]` (an upstream broker), or `http://` /
    /// `https://` (JSON batches are POSTed there).
    pub url: String,
    /// MQTT topic template (`{building}`, `{type}`, `{device}`, `{kind}`); required for MQTT.
    #[serde(default)]
    pub topic: Option<String>,
    /// What is forwarded: `alert`, `device`, `reading` (default alerts and devices).
    #[serde(default = "default_include")]
    pub include: Vec<String>,
    /// Records per batch (an HTTP request; MQTT publishes awaiting their PUBACKs together).
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Request timeout (HTTP), or wait for a batch's PUBACKs (MQTT), seconds.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: f64,
    /// Longest wait between attempts, seconds; the wait doubles from 1 s, with jitter.
    #[serde(default = "default_backoff_max_s")]
    pub backoff_max_s: u64,
    /// Rows kept for this target past the store's pruning, at most (per source).
    #[serde(default = "default_max_backlog")]
    pub max_backlog: i64,
    /// MQTT client id (default `firewatch-nb-{name}`).
    #[serde(default)]
    pub client_id: Option<String>,
    /// MQTT user name.
    #[serde(default)]
    pub username: Option<String>,
    /// MQTT password (secret).
    #[serde(default)]
    pub password: Option<Secret>,
    /// HTTP: sent as `Authorization: Bearer …` (secret).
    #[serde(default)]
    pub token: Option<Secret>,
    /// HTTP: extra request headers (their values are secrets).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// Output name of the idempotency key (default `key`).
    #[serde(default = "default_key_field")]
    pub key_field: String,
    /// Field mapping: output name → path in the record (`alert.severity`); empty: as is.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Constant output fields.
    #[serde(default)]
    pub constants: BTreeMap<String, Value>,
}

fn default_include() -> Vec<String> {
    vec!["alert".into(), "device".into()]
}
const fn default_batch() -> usize {
    100
}
const fn default_timeout_s() -> f64 {
    10.0
}
const fn default_backoff_max_s() -> u64 {
    60
}
const fn default_max_backlog() -> i64 {
    1_000_000
}
fn default_key_field() -> String {
    "key".into()
}

/// The protocol of a target's URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    /// An upstream broker.
    Mqtt {
        /// Host.
        host: String,
        /// Port (1883, or 8883 with TLS).
        port: u16,
        /// `mqtts://`.
        tls: bool,
    },
    /// JSON batches.
    Http,
}

impl NorthboundConfig {
    /// The protocol of `url`.
    pub fn protocol(&self) -> Result<Protocol, String> {
        let u = url::Url::parse(&self.url).map_err(|e| format!("not a URL: {e}"))?;
        let host = u.host_str().filter(|h| !h.is_empty());
        match (u.scheme(), host) {
            ("mqtt" | "mqtts", Some(h)) => {
                let tls = u.scheme() == "mqtts";
                Ok(Protocol::Mqtt {
                    host: h.trim_start_matches('[').trim_end_matches(']').to_owned(),
                    port: u.port().unwrap_or(if tls { 8883 } else { 1883 }),
                    tls,
                })
            }
            ("http" | "https", Some(_)) => Ok(Protocol::Http),
            (_, None) => Err("has no host".into()),
            (s, _) => Err(format!(
                "scheme {s:?} is not mqtt://, mqtts://, http:// or https://"
            )),
        }
    }

    /// The record types forwarded.
    pub fn types(&self) -> Vec<RecordType> {
        self.include
            .iter()
            .filter_map(|s| RecordType::parse(s))
            .collect()
    }

    /// The configured mapping.
    pub fn mapping(&self) -> Mapping {
        Mapping {
            fields: self
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            constants: self
                .constants
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            key_field: self.key_field.clone(),
        }
    }

    /// The MQTT client id.
    pub fn client_id(&self) -> String {
        self.client_id
            .clone()
            .unwrap_or_else(|| format!("firewatch-nb-{}", self.name))
    }

    /// Scheme, host and port of the URL, for logs (no path, query or credentials).
    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.url) {
            Ok(u) => format!(
                "{}://{}:{}",
                u.scheme(),
                u.host_str().unwrap_or("?"),
                u.port_or_known_default()
                    .or(match u.scheme() {
                        "mqtt" => Some(1883),
                        "mqtts" => Some(8883),
                        _ => None,
                    })
                    .unwrap_or(0)
            ),
            Err(_) => "?".into(),
        }
    }

    /// The holds this target puts on the store's pruning.
    pub fn holds(&self) -> Vec<nbstore::Hold> {
        self.sources()
            .into_iter()
            .map(|source| nbstore::Hold {
                cursor_key: nbstore::cursor_key(&self.name, source),
                source,
                max_backlog: self.max_backlog,
            })
            .collect()
    }

    fn sources(&self) -> Vec<Source> {
        let t = self.types();
        let mut s = Vec::new();
        if t.contains(&RecordType::Alert) || t.contains(&RecordType::Device) {
            s.push(Source::Changes);
        }
        if t.contains(&RecordType::Reading) {
            s.push(Source::Readings);
        }
        s
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Every problem of the `[[northbound]]` entries, with `northbound[i].` key paths.
pub fn validate(targets: &[NorthboundConfig]) -> Vec<Problem> {
    let mut p = Vec::new();
    let mut names = HashSet::new();
    for (i, t) in targets.iter().enumerate() {
        let key = |k: &str| format!("northbound[{i}].{k}");
        if !is_name(&t.name) {
            p.push(Problem::new(
                key("name"),
                format!(
                    "{:?} is not a name of at most 64 letters, digits, _ and -",
                    t.name
                ),
            ));
        } else if !names.insert(t.name.as_str()) {
            p.push(Problem::new(
                key("name"),
                format!("{:?} is used twice", t.name),
            ));
        }
        let protocol = t.protocol();
        match &protocol {
            // Never the URL itself in the message: it may hold credentials.
            Err(e) => p.push(Problem::new(key("url"), e.clone())),
            Ok(Protocol::Mqtt { .. }) => {
                match t.topic.as_deref().map(Topic::parse) {
                    None => p.push(Problem::new(
                        key("topic"),
                        "an MQTT target needs a topic template, e.g. \"city/v1/{building}/{type}\"",
                    )),
                    Some(Err(e)) => p.push(Problem::new(key("topic"), e)),
                    Some(Ok(_)) => {}
                }
                if !is_name(&t.client_id()) {
                    p.push(Problem::new(
                        key("client_id"),
                        "must be 1 to 64 letters, digits, _ and -",
                    ));
                }
                if t.token.is_some() || !t.headers.is_empty() {
                    p.push(Problem::new(
                        key("token"),
                        "token and headers are for HTTP targets; MQTT takes username and password",
                    ));
                }
            }
            Ok(Protocol::Http) => {
                if t.topic.is_some() || t.username.is_some() || t.password.is_some() {
                    p.push(Problem::new(
                        key("topic"),
                        "topic, username and password are for MQTT targets",
                    ));
                }
                for (h, v) in &t.headers {
                    let bad_name = reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_err();
                    let bad_value = reqwest::header::HeaderValue::from_str(v.expose()).is_err();
                    if bad_name || bad_value {
                        p.push(Problem::new(
                            format!("northbound[{i}].headers.{h}"),
                            "is not a valid HTTP header name and value",
                        ));
                    }
                }
            }
        }
        if t.include.is_empty() {
            p.push(Problem::new(key("include"), "names nothing to forward"));
        }
        for (j, s) in t.include.iter().enumerate() {
            if RecordType::parse(s).is_none() {
                p.push(Problem::new(
                    format!("northbound[{i}].include[{j}]"),
                    format!("{s:?} is not one of alert, device, reading"),
                ));
            }
        }
        if !(1..=10_000).contains(&t.batch) {
            p.push(Problem::new(key("batch"), "must be 1 to 10000"));
        }
        if !(t.timeout_s > 0.0 && t.timeout_s <= 300.0) {
            p.push(Problem::new(
                key("timeout_s"),
                "must be above 0 and at most 300",
            ));
        }
        if t.backoff_max_s == 0 {
            p.push(Problem::new(key("backoff_max_s"), "must be at least 1"));
        }
        if t.max_backlog < 1 {
            p.push(Problem::new(key("max_backlog"), "must be at least 1"));
        }
        if t.key_field.is_empty() {
            p.push(Problem::new(key("key_field"), "must not be empty"));
        }
        for (name, path) in &t.fields {
            if let Err(e) = mapping::check_path(path) {
                p.push(Problem::new(format!("northbound[{i}].fields.{name}"), e));
            }
            if name == &t.key_field {
                p.push(Problem::new(
                    format!("northbound[{i}].fields.{name}"),
                    "is the key_field, which always holds the idempotency key",
                ));
            }
        }
        for name in t.constants.keys() {
            if t.fields.contains_key(name) || name == &t.key_field {
                p.push(Problem::new(
                    format!("northbound[{i}].constants.{name}"),
                    "is also a mapped field or the key_field",
                ));
            }
        }
    }
    p
}

/// Where a target reports how far it has forwarded (and a record it set aside): the store's
/// single writer saves it. Arguments: the cursor's `meta` key, the new cursor, the record set
/// aside with it. Returns `false` when that writer is gone.
pub type CursorReport = Arc<dyn Fn(String, i64, Option<SetAside>) -> bool + Send + Sync>;

/// Errors that stop a target (store failures); delivery failures are retried.
#[derive(Debug, thiserror::Error)]
pub enum NorthboundError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blocking task failed.
    #[error("task: {0}")]
    Task(String),
    /// The client could not be built.
    #[error("client: {0}")]
    Client(String),
}

/// Why a batch did not go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Try again later (network, timeout, 408, 429, 5xx).
    Retry(String),
    /// The platform refuses these records and will refuse them again (other 4xx).
    Refused(String),
}

/// A target's way out: an upstream broker or an HTTP endpoint.
#[derive(Debug)]
enum Sink {
    Mqtt(Box<mqtt::MqttSink>),
    Http(http::HttpSink),
}

impl Sink {
    async fn send(&mut self, batch: &[(String, Value)]) -> Result<(), SendError> {
        match self {
            Sink::Mqtt(s) => s.send(batch).await,
            Sink::Http(s) => s.send(batch).await,
        }
    }

    /// Waits for `wake` while keeping the connection alive (MQTT pings).
    async fn idle(&mut self, wake: impl std::future::Future<Output = ()>) {
        match self {
            Sink::Mqtt(s) => s.idle(wake).await,
            Sink::Http(_) => wake.await,
        }
    }
}

/// How often an idle target looks at the store for readings (changes wake it at once).
const POLL: Duration = Duration::from_millis(500);
/// Rows of the change feed read per look (records of other types are passed over).
const SCAN: usize = 1000;

/// One target's task.
pub struct Forwarder {
    cfg: NorthboundConfig,
    dir: PathBuf,
    metrics: Arc<TargetMetrics>,
    bus: Bus,
    report: CursorReport,
    clock: SharedClock,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("northbound::Forwarder")
            .field("name", &self.cfg.name)
            .field("url", &self.cfg.redacted())
            .finish_non_exhaustive()
    }
}

/// One source's position.
#[derive(Debug)]
struct Cursor {
    source: Source,
    key: String,
    at: i64,
    /// Rows read per batch: shrinks while the platform refuses a batch.
    limit: usize,
}

impl Forwarder {
    /// A forwarder for `cfg` reading the store in `dir`; its cursors go through `report`, its
    /// figures are registered in `metrics`.
    pub fn new(
        cfg: NorthboundConfig,
        dir: PathBuf,
        metrics: &Metrics,
        bus: Bus,
        report: CursorReport,
        clock: SharedClock,
    ) -> Self {
        let mqtt = matches!(cfg.protocol(), Ok(Protocol::Mqtt { .. }));
        let metrics = metrics.northbound.register(&cfg.name, mqtt);
        Forwarder {
            cfg,
            dir,
            metrics,
            bus,
            report,
            clock,
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, NorthboundError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            let conn = store::open_reader(&dir)?;
            // One snapshot for everything `f` reads.
            conn.execute_batch("BEGIN")?;
            let r = f(&conn);
            conn.execute_batch("COMMIT")?;
            r
        })
        .await
        .map_err(|e| NorthboundError::Task(e.to_string()))?
        .map_err(NorthboundError::from)
    }

    /// Forwards until cancelled.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), NorthboundError> {
        let name = self.cfg.name.clone();
        let mut sink =
            match self.cfg.protocol() {
                Ok(Protocol::Mqtt { host, port, tls }) => Sink::Mqtt(Box::new(
                    mqtt::MqttSink::new(&self.cfg, host, port, tls, Arc::clone(&self.metrics)),
                )),
                Ok(Protocol::Http) => {
                    Sink::Http(http::HttpSink::new(&self.cfg).map_err(NorthboundError::Client)?)
                }
                Err(e) => return Err(NorthboundError::Client(e)),
            };
        let types = self.cfg.types();
        let kinds: Vec<&'static str> = types
            .iter()
            .filter(|t| **t != RecordType::Reading)
            .map(|t| t.as_str())
            .collect();
        let mapping = self.cfg.mapping();
        let topic = self.cfg.topic.as_deref().map(Topic::parse).transpose();
        let topic = topic.map_err(NorthboundError::Client)?;
        let mut cursors = Vec::new();
        for source in self.cfg.sources() {
            let key = nbstore::cursor_key(&name, source);
            let k = key.clone();
            let saved = self.blocking(move |c| store::get_meta(c, &k)).await?;
            let at = match saved {
                Some(at) => at,
                // First time: everything the store holds goes.
                None => self
                    .blocking(move |c| nbstore::oldest_id(c, source))
                    .await?
                    .saturating_sub(1)
                    .max(0),
            };
            cursors.push(Cursor {
                source,
                key,
                at,
                limit: self.cfg.batch,
            });
        }
        tracing::info!(target_name = %name, url = %self.cfg.redacted(), include = ?self.cfg.include, "Forwarding to the northbound platform.");
        let mut changes = self.bus.subscribe();
        let mut backoff = Duration::from_secs(1);
        let max_backoff = Duration::from_secs(self.cfg.backoff_max_s);
        let mut failing = false;
        let mut retry: Option<(usize, Vec<Record>, i64)> = None;
        loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            self.refresh(&cursors, kinds.clone()).await?;
            // The first source with something to send: changes before readings.
            // A batch that failed goes again as it was (the same records, the same batch key).
            let mut work = retry.take();
            for (n, c) in cursors.iter_mut().enumerate() {
                if work.is_some() {
                    break;
                }
                self.skip_gap(c).await?;
                let (recs, scanned) = self.read(c, kinds.clone()).await?;
                if scanned > c.at {
                    work = Some((n, recs, scanned));
                    break;
                }
            }
            let Some((n, recs, scanned)) = work else {
                let wake = async {
                    tokio::select! {
                        _ = changes.recv() => {}
                        () = tokio::time::sleep(POLL) => {}
                        () = shutdown.cancelled() => {}
                    }
                };
                sink.idle(wake).await;
                continue;
            };
            let c = &mut cursors[n];
            if recs.is_empty() {
                // Only rows of types this target does not forward.
                c.at = scanned;
                if !(self.report)(c.key.clone(), scanned, None) {
                    return Ok(());
                }
                continue;
            }
            let batch: Vec<(String, Value)> = recs
                .iter()
                .map(|r| {
                    let t = topic.as_ref().map(|t| t.render(r)).unwrap_or_default();
                    (t, mapping.apply(r))
                })
                .collect();
            let result = tokio::select! {
                r = sink.send(&batch) => r,
                () = shutdown.cancelled() => return Ok(()),
            };
            match result {
                Ok(()) => {
                    c.at = scanned;
                    // Past a refused batch, grow back to the configured size.
                    c.limit = (c.limit * 2).min(self.cfg.batch);
                    self.metrics.forwarded.fetch_add(recs.len() as u64, Relaxed);
                    if !(self.report)(c.key.clone(), scanned, None) {
                        return Ok(());
                    }
                    if failing {
                        tracing::info!(target_name = %name, "Northbound platform is back; replaying in order.");
                        failing = false;
                    }
                    backoff = Duration::from_secs(1);
                }
                Err(SendError::Refused(e)) if recs.len() > 1 => {
                    // Refused, not unreachable: halve the batch until the refused record is
                    // alone; the records before it go through meanwhile.
                    self.metrics.failed.fetch_add(1, Relaxed);
                    c.limit = (recs.len() / 2).max(1);
                    tracing::warn!(target_name = %name, error = %e, records = recs.len(), retry_with = c.limit, "Northbound platform refused a batch; looking for the refused record.");
                }
                Err(SendError::Refused(e)) => {
                    self.metrics.failed.fetch_add(1, Relaxed);
                    self.metrics.set_aside.fetch_add(1, Relaxed);
                    let (r, (_, body)) = (&recs[0], &batch[0]);
                    let key = Record::key(r.source, r.id);
                    tracing::warn!(target_name = %name, key = %key, error = %e, "Northbound platform refused a record; set aside.");
                    let aside = SetAside {
                        target: name.clone(),
                        key,
                        at: self.clock.now_ms(),
                        error: e,
                        record: body.to_string(),
                    };
                    c.at = scanned;
                    c.limit = self.cfg.batch;
                    if !(self.report)(c.key.clone(), scanned, Some(aside)) {
                        return Ok(());
                    }
                }
                Err(SendError::Retry(e)) => {
                    self.metrics.failed.fetch_add(1, Relaxed);
                    failing = true;
                    // Full jitter keeps a restarted platform from being hit by every sender at once.
                    let jitter =
                        (crate::clock::wall_ms().rem_euclid(1000) as f64 / 1000.0).max(0.1);
                    let wait = backoff.mul_f64(jitter);
                    tracing::warn!(target_name = %name, error = %e, records = recs.len(), retry_in_ms = wait.as_millis() as u64, "Northbound delivery failed; will retry.");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = shutdown.cancelled() => return Ok(()),
                    }
                    backoff = (backoff * 2).min(max_backoff);
                    retry = Some((n, recs, scanned));
                }
            }
        }
    }

    /// Counts the rows pruned after the cursor (past `max_backlog`) as dropped, and moves the
    /// cursor to the oldest row held.
    async fn skip_gap(&self, c: &mut Cursor) -> Result<(), NorthboundError> {
        let source = c.source;
        let oldest = self
            .blocking(move |conn| nbstore::oldest_id(conn, source))
            .await?;
        if oldest > c.at.saturating_add(1) {
            let lost = oldest - c.at - 1;
            self.metrics.dropped.fetch_add(lost as u64, Relaxed);
            tracing::error!(target_name = %self.cfg.name, source = source.as_str(), from = c.at + 1, to = oldest - 1, rows = lost, "Rows were pruned before they were forwarded (max_backlog); dropped.");
            c.at = oldest - 1;
            if !(self.report)(c.key.clone(), c.at, None) {
                return Ok(());
            }
        }
        Ok(())
    }

    /// The next records after a cursor, and the last row id read.
    async fn read(
        &self,
        c: &Cursor,
        kinds: Vec<&'static str>,
    ) -> Result<(Vec<Record>, i64), NorthboundError> {
        let (at, limit) = (c.at, c.limit);
        match c.source {
            Source::Changes => {
                self.blocking(move |conn| {
                    // Scan at most `SCAN` rows, take at most `limit` records.
                    let rows = store::changes::after(conn, at, None, SCAN.max(limit))?;
                    let mut recs = Vec::new();
                    let mut scanned = at;
                    for row in rows {
                        let t = RecordType::parse(&row.kind)
                            .filter(|_| kinds.contains(&row.kind.as_str()));
                        if let Some(t) = t {
                            if recs.len() == limit {
                                break;
                            }
                            // Stored bodies were written by the pipeline; one that no longer
                            // parses still goes, as a string, so nothing is skipped.
                            let body = serde_json::from_str::<Value>(&row.body)
                                .unwrap_or_else(|_| Value::from(row.body.clone()));
                            let body = crate::bus::envelope(row.id, row.at, body);
                            recs.push(Record::new(Source::Changes, row.id, t, row.at, body));
                        }
                        scanned = row.id;
                    }
                    Ok((recs, scanned))
                })
                .await
            }
            Source::Readings => {
                self.blocking(move |conn| {
                    let rows = store::spool_after(conn, at, limit)?;
                    let scanned = rows.last().map_or(at, |r| r.id);
                    let recs = rows
                        .into_iter()
                        .map(|r| {
                            let body = serde_json::json!({
                                "type": "reading",
                                "id": r.id,
                                "at": rfc3339(r.ts),
                                "building": r.building,
                                "device": r.device,
                                "kind": r.kind,
                                "metric": r.metric,
                                "channel": r.channel,
                                "value": r.value,
                            });
                            Record::new(Source::Readings, r.id, RecordType::Reading, r.ts, body)
                        })
                        .collect();
                    Ok((recs, scanned))
                })
                .await
            }
        }
    }

    /// Updates the backlog and lag figures.
    async fn refresh(
        &self,
        cursors: &[Cursor],
        kinds: Vec<&'static str>,
    ) -> Result<(), NorthboundError> {
        let at: Vec<(Source, i64)> = cursors.iter().map(|c| (c.source, c.at)).collect();
        let behind = self
            .blocking(move |conn| {
                let mut all = Vec::new();
                for (source, at) in at {
                    all.push(match source {
                        Source::Changes => nbstore::changes_behind(conn, at, &kinds)?,
                        Source::Readings => nbstore::readings_behind(conn, at)?,
                    });
                }
                Ok(all)
            })
            .await?;
        let records: i64 = behind.iter().map(|b| b.records).sum();
        let oldest = behind.iter().filter_map(|b: &Behind| b.oldest_at).min();
        self.metrics.backlog.store(records, Relaxed);
        let lag = oldest.map_or(0, |t| (self.clock.now_ms() - t).max(0));
        self.metrics.lag_ms.store(lag, Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> NorthboundConfig {
        NorthboundConfig {
            name: "city".into(),
            url: url.into(),
            topic: Some("city/v1/{building}/{type}".into()),
            include: default_include(),
            batch: 100,
            timeout_s: 10.0,
            backoff_max_s: 60,
            max_backlog: 1000,
            client_id: None,
            username: None,
            password: None,
            token: None,
            headers: BTreeMap::new(),
            key_field: "key".into(),
            fields: BTreeMap::new(),
            constants: BTreeMap::new(),
        }
    }

    #[test]
    fn protocols_come_from_the_url() {
        assert_eq!(
            target("mqtt://up.example.org").protocol(),
            Ok(Protocol::Mqtt {
                host: "up.example.org".into(),
                port: 1883,
                tls: false
            })
        );
        assert_eq!(
            target("mqtts://up.example.org").protocol(),
            Ok(Protocol::Mqtt {
                host: "up.example.org".into(),
                port: 8883,
                tls: true
            })
        );
        assert_eq!(
            target("https://p.example.org/in").protocol(),
            Ok(Protocol::Http)
        );
        assert!(target("ftp://p.example.org").protocol().is_err());
        assert_eq!(target("mqtt://u:pw@h:1999").redacted(), "mqtt://h:1999");
    }

    #[test]
    fn every_problem_is_reported_with_its_key_path() {
        let mut bad = target("mqtt://up:1883");
        bad.topic = Some("city/{floor}".into());
        bad.include = vec!["alert".into(), "alarm".into()];
        bad.batch = 0;
        bad.fields.insert("level".into(), "alert..severity".into());
        bad.constants.insert("key".into(), Value::from(1));
        let mut http = target("https://p.example.org");
        http.name = "city".into();
        let keys: Vec<String> = validate(&[bad, http]).into_iter().map(|p| p.key).collect();
        for k in [
            "northbound[0].topic",
            "northbound[0].include[1]",
            "northbound[0].batch",
            "northbound[0].fields.level",
            "northbound[0].constants.key",
            "northbound[1].name",
            "northbound[1].topic",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
        }
        assert!(validate(&[target("mqtt://up:1883")]).is_empty());
    }

    #[test]
    fn readings_are_held_only_when_included() {
        let mut t = target("mqtt://up");
        assert_eq!(t.holds().len(), 1);
        assert_eq!(t.holds()[0].cursor_key, "northbound.city.change");
        t.include.push("reading".into());
        let h = t.holds();
        assert_eq!(h.len(), 2);
        assert_eq!(h[1].source, Source::Readings);
    }
}
