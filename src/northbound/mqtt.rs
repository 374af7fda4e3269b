//! An MQTT target: its own connection to the upstream broker (not the ingest one), with its
//! own client id and a clean session.
//!
//! A batch is published at QoS 1 and counts as delivered only when a PUBACK arrived for each of
//! its publishes. The connection is this client's alone and carries only this batch's QoS 1
//! publishes, so every PUBACK belongs to one of them. Any failure (no CONNACK, a connection
//! error, PUBACKs missing after `timeout_s`) drops the connection; the next attempt connects
//! afresh and publishes the whole batch again from the cursor. rumqttc's own resending after a
//! reconnect is thereby never relied on, and the order holds: a record is never published
//! before every record ahead of it was acknowledged or is being published again with it.

use super::{NorthboundConfig, SendError};
use crate::metrics::northbound::Target;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS, Transport};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// The connection to an upstream broker.
pub struct MqttSink {
    options: MqttOptions,
    timeout: Duration,
    batch: usize,
    conn: Option<(AsyncClient, EventLoop)>,
    metrics: Arc<Target>,
    name: String,
}

impl std::fmt::Debug for MqttSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSink")
            .field("name", &self.name)
            .field("connected", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

impl MqttSink {
    /// A sink for `cfg` on `host:port`; it connects at the first batch.
    pub fn new(
        cfg: &NorthboundConfig,
        host: String,
        port: u16,
        tls: bool,
        metrics: Arc<Target>,
    ) -> MqttSink {
        let mut o = MqttOptions::new(cfg.client_id(), host, port);
        o.set_clean_session(true)
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(1024 * 1024, 1024 * 1024);
        if let Some(user) = &cfg.username {
            let pw = cfg
                .password
                .as_ref()
                .map(|p| p.expose().to_owned())
                .unwrap_or_default();
            o.set_credentials(user.clone(), pw);
        }
        if tls {
            o.set_transport(Transport::tls_with_config(
                rumqttc::TlsConfiguration::default(),
            ));
        }
        MqttSink {
            options: o,
            timeout: Duration::from_secs_f64(cfg.timeout_s),
            batch: cfg.batch,
            conn: None,
            metrics,
            name: cfg.name.clone(),
        }
    }

    fn down(&mut self, why: &str) {
        if self.conn.take().is_some() {
            tracing::warn!(target_name = %self.name, error = why, "Northbound broker connection lost.");
        }
        self.metrics.connected.store(0, Relaxed);
    }

    async fn connect(&mut self) -> Result<(), SendError> {
        // Room for a whole batch in the request queue: publishing never waits.
        let (client, mut events) = AsyncClient::new(self.options.clone(), self.batch + 8);
        let connack = tokio::time::timeout(self.timeout, async {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        })
        .await;
        match connack {
            Ok(Ok(())) => {
                tracing::info!(target_name = %self.name, "Connected to the northbound broker.");
                self.metrics.connected.store(1, Relaxed);
                self.conn = Some((client, events));
                Ok(())
            }
            Ok(Err(e)) => Err(SendError::Retry(format!("connect: {e}"))),
            Err(_) => Err(SendError::Retry("connect: no CONNACK in time".into())),
        }
    }

    /// Publishes `batch` ((topic, record) pairs) at QoS 1 and waits for every PUBACK.
    pub async fn send(&mut self, batch: &[(String, Value)]) -> Result<(), SendError> {
        if self.conn.is_none() {
            self.connect().await?;
        }
        let r = self.publish(batch).await;
        if let Err(SendError::Retry(e)) = &r {
            let e = e.clone();
            self.down(&e);
        }
        r
    }

    async fn publish(&mut self, batch: &[(String, Value)]) -> Result<(), SendError> {
        let Some((client, events)) = self.conn.as_mut() else {
            return Err(SendError::Retry("not connected".into()));
        };
        for (topic, record) in batch {
            client
                .try_publish(topic.clone(), QoS::AtLeastOnce, false, record.to_string())
                .map_err(|e| SendError::Retry(format!("publish: {e}")))?;
        }
        let n = batch.len();
        let (mut sent, mut waiting) = (0usize, HashSet::new());
        let done = tokio::time::timeout(self.timeout, async {
            loop {
                match events.poll().await {
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        sent += 1;
                        waiting.insert(pkid);
                    }
                    Ok(Event::Incoming(Packet::PubAck(a))) => {
                        waiting.remove(&a.pkid);
                        if sent == n && waiting.is_empty() {
                            return Ok(());
                        }
                    }
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        })
        .await;
        match done {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(SendError::Retry(e)),
            Err(_) => Err(SendError::Retry(format!(
                "{} of {n} PUBACKs missing after {} s",
                n - (sent - waiting.len().min(sent)),
                self.timeout.as_secs_f64()
            ))),
        }
    }

    /// Keeps the connection (pings) until `wake` completes; a broken connection is dropped.
    pub async fn idle(&mut self, wake: impl std::future::Future<Output = ()>) {
        let Some((_, events)) = self.conn.as_mut() else {
            wake.await;
            return;
        };
        let broken = tokio::select! {
            () = wake => None,
            e = async {
                loop {
                    if let Err(e) = events.poll().await {
                        return e.to_string();
                    }
                }
            } => Some(e),
        };
        if let Some(e) = broken {
            self.down(&e);
        }
    }
}
