//! The MQTT client: a fixed client id, a persistent session, one QoS 1 subscription, manual
//! acknowledgements.
//!
//! The event loop is polled continuously and never awaits anything that can fill up: publishes
//! go into the pipeline's unbounded queue, whose size is bounded by the broker's in-flight
//! window because nothing is acknowledged before it is durable (Mosquitto
//! `max_inflight_messages`; QoS 0 messages, which the broker does not window, are dropped and
//! counted past [`QOS0_QUEUE_LIMIT`]). Acks are sent by a separate task in arrival order after
//! each group commit. An ack whose message arrived on an earlier connection is withheld: the
//! packet id may since have been reused, and the broker redelivers the message anyway (then
//! dropped as a duplicate `seq`).

use super::commands::{CommandPublisher, LinkEvent};
use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::model::{REJECTED_PREFIX, SUBSCRIPTION};
use crate::pipeline::{AckToken, Incoming, Inputs, Republish};
use crate::settings::{Problem, Secret};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS, Transport};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// `[mqtt]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// `embedded` starts the built-in broker; otherwise `mqtt://host:port` or `mqtts://host:port`.
    pub url: String,
    /// Listen address of the built-in broker.
    pub embedded_listen: String,
    /// Fixed client id, so the broker keeps the session across restarts.
    pub client_id: String,
    /// Broker user name.
    pub username: Option<String>,
    /// Broker password.
    pub password: Option<Secret>,
    /// MQTT keep-alive in seconds.
    pub keep_alive_s: u64,
    /// Longest wait between reconnect attempts, seconds (the backoff doubles up to it).
    pub reconnect_max_s: u64,
    /// (added) `mqtts://`: the authorities that sign the broker's certificate (PEM); without
    /// it the built-in web roots.
    pub ca_file: Option<PathBuf>,
    /// (added) `mqtts://`: firewatch's client certificate (PEM), with `client_key`.
    pub client_cert: Option<PathBuf>,
    /// (added) `mqtts://`: the key of `client_cert` (PEM).
    pub client_key: Option<PathBuf>,
    /// (added) `mqtts://`: the name the broker's certificate must carry, when it is not the
    /// URL's host (e.g. the broker is reached by IP address).
    pub tls_server_name: Option<String>,
    /// (added) The embedded broker admits only registered devices, each with its registry
    /// password or client certificate, and each only to its own topics.
    pub embedded_auth: bool,
    /// (added) The embedded broker speaks TLS with this certificate (PEM), with
    /// `embedded_tls_key`.
    pub embedded_tls_cert: Option<PathBuf>,
    /// (added) The key of `embedded_tls_cert` (PEM).
    pub embedded_tls_key: Option<PathBuf>,
    /// (added) With TLS: every device must present a certificate this authority signed; its
    /// common name is its device id.
    pub embedded_client_ca: Option<PathBuf>,
    /// (added) Publishes a second one device may send through the embedded broker's gate;
    /// faster senders are slowed (nothing is dropped).
    pub device_rate: f64,
    /// (added) Publishes a device may send at once before `device_rate` applies.
    pub device_burst: f64,
}

impl MqttConfig {
    /// Every problem of the `[mqtt]` settings.
    pub fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.url == "embedded" {
            if self
                .embedded_listen
                .parse::<std::net::SocketAddr>()
                .is_err()
            {
                p.push(Problem::new(
                    "mqtt.embedded_listen",
                    format!("{:?} is not host:port", self.embedded_listen),
                ));
            }
        } else if let Err(e) = parse_mqtt_url(&self.url) {
            p.push(Problem::new("mqtt.url", e));
        }
        if !crate::model::valid_id(&self.client_id) {
            p.push(Problem::new(
                "mqtt.client_id",
                "must be 1–64 characters of A-Z a-z 0-9 _ -",
            ));
        }
        if self.password.is_some() && self.username.is_none() {
            p.push(Problem::new(
                "mqtt.username",
                "mqtt.password is set but mqtt.username is not",
            ));
        }
        if self.keep_alive_s < 5 {
            p.push(Problem::new("mqtt.keep_alive_s", "must be at least 5"));
        }
        p.extend(self.tls_problems());
        p
    }

    /// Whether the embedded broker runs behind its gate (access rules or TLS).
    pub fn gated(&self) -> bool {
        self.embedded_auth || self.embedded_tls_cert.is_some()
    }

    fn tls_problems(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        let tls = parse_mqtt_url(&self.url).is_ok_and(|u| u.tls);
        let client_side = [
            ("mqtt.ca_file", self.ca_file.is_some()),
            ("mqtt.client_cert", self.client_cert.is_some()),
            ("mqtt.tls_server_name", self.tls_server_name.is_some()),
        ];
        for (key, set) in client_side {
            if set && !tls {
                p.push(Problem::new(key, "applies to an mqtts:// broker only"));
            }
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            p.push(Problem::new(
                "mqtt.client_key",
                "mqtt.client_cert and mqtt.client_key go together",
            ));
        }
        if tls {
            if let Err(e) = self.client_tls() {
                p.push(Problem::new("mqtt.ca_file", e));
            }
        }
        if let Some(n) = &self.tls_server_name {
            if !crate::tls::valid_server_name(n) {
                p.push(Problem::new(
                    "mqtt.tls_server_name",
                    format!("{n:?} is not a DNS name or an IP address"),
                ));
            }
        }
        if self.embedded_tls_cert.is_some() != self.embedded_tls_key.is_some() {
            p.push(Problem::new(
                "mqtt.embedded_tls_key",
                "mqtt.embedded_tls_cert and mqtt.embedded_tls_key go together",
            ));
        }
        if self.embedded_client_ca.is_some() && self.embedded_tls_cert.is_none() {
            p.push(Problem::new(
                "mqtt.embedded_client_ca",
                "client certificates need TLS: set mqtt.embedded_tls_cert and _key",
            ));
        }
        if let (true, Some(cert), Some(key)) = (
            self.url == "embedded",
            &self.embedded_tls_cert,
            &self.embedded_tls_key,
        ) {
            if let Err(e) = crate::tls::server_config(cert, key, self.embedded_client_ca.as_deref())
            {
                p.push(Problem::new("mqtt.embedded_tls_cert", e));
            }
        }
        if self.url == "embedded" && !self.embedded_auth {
            if let Ok(a) = self.embedded_listen.parse::<std::net::SocketAddr>() {
                if !a.ip().is_loopback() {
                    p.push(Problem::new(
                        "mqtt.embedded_auth",
                        format!(
                            "the embedded broker listens on {a}, beyond this host: set mqtt.embedded_auth = true so that only registered devices connect, each to its own topics"
                        ),
                    ));
                }
            }
        }
        if !(self.device_rate > 0.0 && self.device_rate.is_finite()) {
            p.push(Problem::new("mqtt.device_rate", "must be above 0"));
        }
        if !(self.device_burst >= 1.0 && self.device_burst.is_finite()) {
            p.push(Problem::new("mqtt.device_burst", "must be at least 1"));
        }
        p
    }

    /// The rustls client configuration of an `mqtts://` broker.
    pub fn client_tls(&self) -> Result<rustls::ClientConfig, String> {
        let pair = self.client_cert.as_deref().zip(self.client_key.as_deref());
        crate::tls::client_config(
            self.ca_file.as_deref(),
            pair,
            self.tls_server_name.as_deref(),
        )
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            url: "embedded".into(),
            embedded_listen: "127.0.0.1:1883".into(),
            client_id: "firewatch".into(),
            username: None,
            password: None,
            keep_alive_s: 30,
            reconnect_max_s: 30,
            ca_file: None,
            client_cert: None,
            client_key: None,
            tls_server_name: None,
            embedded_auth: false,
            embedded_tls_cert: None,
            embedded_tls_key: None,
            embedded_client_ca: None,
            device_rate: 50.0,
            device_burst: 500.0,
        }
    }
}

/// A parsed external broker address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttUrl {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS (`mqtts://`).
    pub tls: bool,
}

/// Parses `mqtt://host:port` or `mqtts://host:port`.
pub fn parse_mqtt_url(s: &str) -> Result<MqttUrl, String> {
    let u = url::Url::parse(s).map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    let tls = match u.scheme() {
        "mqtt" | "tcp" => false,
        "mqtts" | "ssl" => true,
        other => {
            return Err(format!(
                "scheme {other:?} is not mqtt:// or mqtts:// (or \"embedded\")"
            ))
        }
    };
    let host = u
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("{s:?} has no host"))?
        .trim_matches(|c| c == '[' || c == ']')
        .to_owned();
    let port = u.port().unwrap_or(if tls { 8883 } else { 1883 });
    Ok(MqttUrl { host, port, tls })
}

/// QoS 0 messages are dropped (and counted) while more than this many wait for the pipeline.
pub const QOS0_QUEUE_LIMIT: i64 = 200_000;

/// Puts acknowledgements back in arrival order. Events overtake readings in the pipeline, so
/// commits can finish out of arrival order; acks must still go out in arrival order (MQTT 3.1.1
/// section 4.6): a committed message waits here until everything that arrived before it on the
/// same connection is committed too.
#[derive(Debug, Default)]
pub struct AckOrder {
    waiting: BTreeMap<u64, AckToken>,
    generation: u64,
    next: u64,
}

impl AckOrder {
    /// Takes the tokens of one commit; returns the packet ids to ack now, in order, and how many
    /// acks were withheld because their connection (generation) is gone.
    pub fn commit(&mut self, live: u64, tokens: Vec<AckToken>) -> (Vec<u16>, u64) {
        let mut withheld = 0;
        if self.generation != live {
            // A new connection: the old one's acks are withheld (the broker redelivers).
            withheld += self.waiting.len() as u64;
            self.waiting.clear();
            self.generation = live;
            self.next = 0;
        }
        for a in tokens {
            if a.generation == live {
                self.waiting.insert(a.seq, a);
            } else {
                withheld += 1;
            }
        }
        let mut ready = Vec::new();
        while let Some(a) = self.waiting.remove(&self.next) {
            self.next += 1;
            ready.push(a.pkid);
        }
        (ready, withheld)
    }
}

/// Builds the client options from the configuration.
pub fn options(cfg: &MqttConfig) -> Result<MqttOptions, String> {
    let (host, port, tls) = if cfg.url == "embedded" {
        let addr: std::net::SocketAddr = cfg
            .embedded_listen
            .parse()
            .map_err(|e| format!("mqtt.embedded_listen: {e}"))?;
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            addr.ip().to_string()
        };
        (host, addr.port(), false)
    } else {
        let u = parse_mqtt_url(&cfg.url)?;
        (u.host, u.port, u.tls)
    };
    let mut o = MqttOptions::new(cfg.client_id.clone(), host, port);
    o.set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(cfg.keep_alive_s))
        // Oversize payloads must reach the decoder to be counted as `too_large`; a smaller
        // limit here would make one such message break the connection again and again.
        .set_max_packet_size(256 * 1024 * 1024, 1024 * 1024)
        .set_inflight(100);
    if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
        o.set_credentials(u.clone(), p.expose().to_owned());
    } else if let Some(u) = &cfg.username {
        o.set_credentials(u.clone(), "");
    }
    if tls {
        o.set_transport(Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(Arc::new(cfg.client_tls()?)),
        ));
    }
    Ok(o)
}

/// Runs the event loop until cancelled.
#[allow(clippy::too_many_arguments)] // the stages the connection serves, wired by `app`
pub async fn run(
    cfg: MqttConfig,
    pipeline: Inputs,
    metrics: Arc<Metrics>,
    mut acks: tokio::sync::mpsc::UnboundedReceiver<Vec<AckToken>>,
    mut republish: tokio::sync::mpsc::Receiver<Republish>,
    clock: SharedClock,
    commands: CommandPublisher,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let opts = options(&cfg)?;
    let (client, mut eventloop) = AsyncClient::new(opts, 10_000);
    let generation = Arc::new(AtomicU64::new(0));

    // The command publisher shares this connection. Its link events are unbounded so the poll
    // loop never waits: they are a few per command in flight (at most `commands::WINDOW`) and
    // one per connect or failure.
    let (link_tx, link_rx) = tokio::sync::mpsc::unbounded_channel();
    let commands_stop = shutdown.child_token();
    let command_task = {
        let client = client.clone();
        let stop = commands_stop.clone();
        tokio::spawn(async move {
            if let Err(e) = commands.run(client, link_rx, stop).await {
                tracing::error!(error = %e, "Command publisher stopped.");
            }
        })
    };

    // The acker: acks in commit order, only for the connection they arrived on.
    let acker = {
        let client = client.clone();
        let generation = Arc::clone(&generation);
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let mut order = AckOrder::default();
            // Until the pipeline has stopped and dropped its end: every commit's acks go out,
            // also those of the last commits made during shutdown.
            while let Some(batch) = acks.recv().await {
                let (ready, withheld) = order.commit(generation.load(SeqCst), batch);
                metrics.acks_skipped.fetch_add(withheld, Relaxed);
                for pkid in ready {
                    let mut p = rumqttc::Publish::new("", QoS::AtLeastOnce, Vec::new());
                    p.pkid = pkid;
                    if client.ack(&p).await.is_err() {
                        return;
                    }
                    metrics.acked.fetch_add(1, Relaxed);
                }
            }
        })
    };
    // Republisher of rejected messages (QoS 0, best effort).
    let republisher = {
        let client = client.clone();
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            while let Some(r) = republish.recv().await {
                let topic = format!("{REJECTED_PREFIX}{}", r.reason.as_str());
                if client
                    .try_publish(topic, QoS::AtMostOnce, false, r.body)
                    .is_ok()
                {
                    metrics.republished.fetch_add(1, Relaxed);
                } else {
                    metrics.republish_dropped.fetch_add(1, Relaxed);
                }
            }
        })
    };

    let result = poll_loop(
        &cfg,
        &client,
        &mut eventloop,
        &pipeline,
        &metrics,
        &generation,
        &clock,
        &link_tx,
        &shutdown,
    )
    .await;
    // Commands not confirmed by now stay pending and are published after a restart.
    commands_stop.cancel();
    drop(link_tx);
    let _ = command_task.await;
    // No new message goes to the pipeline from here on (what arrives now is not acknowledged
    // and comes back on the persistent session). The event loop keeps running until the
    // pipeline has committed what it holds and its acknowledgements are on the wire; only
    // then does the connection close, so nothing committed comes back as a redelivery.
    let mut acker = acker;
    let drained = tokio::time::timeout(ACK_DRAIN, async {
        loop {
            tokio::select! {
                r = &mut acker => break r.is_ok(),
                ev = eventloop.poll() => if ev.is_err() {
                    // The broker is gone: acks can no longer be sent.
                    break false;
                },
            }
        }
    })
    .await;
    if !matches!(drained, Ok(true)) {
        tracing::warn!(
            "Stopped before every commit was acknowledged; the broker redelivers the rest."
        );
        acker.abort();
    }
    republisher.abort();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        // The disconnect is queued behind the acks the acker handed the client.
        let _ = client.disconnect().await;
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    metrics.mqtt_connected.store(false, Relaxed);
    result
}

/// How long shutdown waits for the pipeline's last acknowledgements.
const ACK_DRAIN: Duration = Duration::from_secs(25);

#[allow(clippy::too_many_arguments)] // the loop's whole context, borrowed from `run`
async fn poll_loop(
    cfg: &MqttConfig,
    client: &AsyncClient,
    eventloop: &mut EventLoop,
    pipeline: &Inputs,
    metrics: &Metrics,
    generation: &AtomicU64,
    clock: &SharedClock,
    link: &tokio::sync::mpsc::UnboundedSender<LinkEvent>,
    shutdown: &CancellationToken,
) -> Result<(), String> {
    // The command publisher may have stopped (a store error, logged); the link then has no
    // receiver and its events are dropped.
    let tell = |ev: LinkEvent| {
        let _ = link.send(ev);
    };
    let max_backoff = Duration::from_secs(cfg.reconnect_max_s.max(1));
    let mut backoff = Duration::from_millis(250);
    let mut last_error_log: Option<std::time::Instant> = None;
    let mut arrivals = 0u64; // QoS 1 publishes on the current connection acked after commit
    let mut published = 0u64; // every publish handed to the pipeline
                              // On the embedded broker, acks go on receipt: that broker keeps its queue in this
                              // process's memory and has acknowledged the device on receipt already, so a crash loses
                              // the same messages either way, while acking after commit would cap a group commit at
                              // rumqttd's 100 unacknowledged publishes per subscriber. Once an immediate ack does not
                              // fit the client's request queue, the connection falls back to acks after commit (acks
                              // stay in arrival order).
    let embedded = cfg.url == "embedded";
    let mut immediate = embedded;

    loop {
        let ev = tokio::select! {
            ev = eventloop.poll() => ev,
            () = shutdown.cancelled() => return Ok(()),
        };
        match ev {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let received = clock.now_ms();
                let _ = metrics
                    .first_message_ms
                    .compare_exchange(0, received, Relaxed, Relaxed);
                let qos1 = p.qos != QoS::AtMostOnce;
                if !qos1 && metrics.queue_depth.load(Relaxed) > QOS0_QUEUE_LIMIT {
                    metrics.dropped_qos0.fetch_add(1, Relaxed);
                    continue;
                }
                if qos1 && immediate {
                    if client.try_ack(&p).is_ok() {
                        metrics.acked.fetch_add(1, Relaxed);
                    } else {
                        immediate = false;
                    }
                }
                let ack = (qos1 && !immediate).then(|| {
                    arrivals += 1;
                    AckToken {
                        generation: generation.load(SeqCst),
                        seq: arrivals - 1,
                        pkid: p.pkid,
                    }
                });
                metrics.queue_depth.fetch_add(1, Relaxed);
                let input = Incoming {
                    topic: p.topic,
                    payload: p.payload,
                    retained: p.retain,
                    dup: p.dup,
                    arrival: {
                        published += 1;
                        published - 1
                    },
                    received,
                    at: std::time::Instant::now(),
                    ack,
                    committed: None,
                };
                if pipeline.publish(input).is_err() {
                    return Err("the pipeline stopped".into());
                }
            }
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                generation.fetch_add(1, SeqCst);
                arrivals = 0;
                immediate = embedded;
                metrics.mqtt_connected.store(true, Relaxed);
                metrics.mqtt_connects.fetch_add(1, Relaxed);
                backoff = Duration::from_millis(250);
                tell(LinkEvent::Connected {
                    session_present: ack.session_present,
                });
                tracing::info!(
                    session_present = ack.session_present,
                    "Connected to the MQTT broker."
                );
                // The broker keeps the subscription of a present session.
                metrics.mqtt_subscribed.store(ack.session_present, Relaxed);
                if !ack.session_present {
                    client
                        .try_subscribe(SUBSCRIPTION, QoS::AtLeastOnce)
                        .map_err(|e| format!("subscribe: {e}"))?;
                }
            }
            Ok(Event::Incoming(Packet::SubAck(s))) => {
                let granted = s
                    .return_codes
                    .iter()
                    .all(|c| matches!(c, rumqttc::SubscribeReasonCode::Success(_)));
                metrics.mqtt_subscribed.store(granted, Relaxed);
                if granted {
                    tracing::info!(topic = SUBSCRIPTION, result = ?s.return_codes, "Subscribed.");
                } else {
                    tracing::error!(topic = SUBSCRIPTION, result = ?s.return_codes, "The broker refused the subscription: no message will arrive. Check the broker's ACL for this client.");
                }
            }
            // Packet ids of QoS 1 publishes: only the command publisher sends those (rejected
            // copies are QoS 0, packet id 0).
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) if pkid != 0 => {
                tell(LinkEvent::Sent(pkid));
            }
            Ok(Event::Outgoing(Outgoing::AwaitAck(pkid))) => tell(LinkEvent::Waiting(pkid)),
            Ok(Event::Incoming(Packet::PubAck(a))) => tell(LinkEvent::PubAck(a.pkid)),
            Ok(_) => {}
            Err(e) => {
                tell(LinkEvent::Disconnected);
                metrics.mqtt_connected.store(false, Relaxed);
                metrics.mqtt_subscribed.store(false, Relaxed);
                metrics.mqtt_errors.fetch_add(1, Relaxed);
                if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "MQTT connection failed; reconnecting.");
                    last_error_log = Some(std::time::Instant::now());
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shutdown.cancelled() => return Ok(()),
                }
                backoff = (backoff * 2).min(max_backoff);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(generation: u64, seq: u64) -> AckToken {
        AckToken {
            generation,
            seq,
            pkid: (seq + 100) as u16,
        }
    }

    #[test]
    fn acks_leave_in_arrival_order_when_events_overtake_readings() {
        let mut o = AckOrder::default();
        // Readings 0..3 queued; event 3 committed first.
        assert_eq!(o.commit(1, vec![t(1, 3)]), (vec![], 0));
        assert_eq!(o.commit(1, vec![t(1, 0), t(1, 1)]), (vec![100, 101], 0));
        assert_eq!(
            o.commit(1, vec![t(1, 2), t(1, 4)]),
            (vec![102, 103, 104], 0)
        );
    }

    #[test]
    fn acks_of_an_old_connection_are_withheld() {
        let mut o = AckOrder::default();
        assert_eq!(o.commit(1, vec![t(1, 1)]), (vec![], 0));
        // Reconnected: the waiting one and a late one of the old connection are withheld.
        assert_eq!(o.commit(2, vec![t(1, 0), t(2, 0)]), (vec![100], 2));
        assert_eq!(o.commit(2, vec![t(2, 1)]), (vec![101], 0));
    }
}
