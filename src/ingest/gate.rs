//! The embedded broker's gate: the port devices connect to when the embedded broker checks who
//! they are (`mqtt.embedded_auth`) or speaks TLS (`mqtt.embedded_tls_cert`).
//!
//! rumqttd has no per-topic access control, so it listens on a loopback port of its own with one
//! account, and the gate stands in front of it. Per connection the gate:
//! - terminates TLS; with `mqtt.embedded_client_ca` a device's certificate names its device id;
//! - checks the CONNECT: the user name is a registered device id and the password matches its
//!   registry hash (or the certificate identifies it), else CONNACK 4 or 5;
//! - rewrites the client id to `dev.{device}.{client id}` and the credentials to the internal
//!   account, so no device can take over another's session or firewatch's own;
//! - lets a PUBLISH through only to the device's own telemetry, event and status topics and a
//!   SUBSCRIBE only to its own command topic ([`super::access`]); a refused publish is answered
//!   as Mosquitto does (PUBACK or PUBREC) and dropped, a refused subscription gets 0x80, and both
//!   are counted;
//! - holds each device to `mqtt.device_rate` publishes a second (burst `mqtt.device_burst`) by
//!   reading its socket no faster: a flood slows its own sender and nobody else, and nothing it
//!   sent is dropped.
//!
//! Everything else passes through unchanged, packet by packet.

use super::access::{self, Identity};
use crate::metrics::Metrics;
use crate::registry::Live;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Largest packet the gate passes (rumqttd's own limit is the same).
const MAX_PACKET: usize = 1024 * 1024 + 1024;
/// How long a new connection has to send its CONNECT.
const CONNECT_WITHIN: Duration = Duration::from_secs(10);

/// What the gate needs, fixed at start-up.
#[derive(Debug)]
pub struct Gate {
    /// The devices' port, bound at start-up.
    pub listener: std::net::TcpListener,
    /// TLS, when configured.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Devices must prove who they are.
    pub auth: bool,
    /// rumqttd's own loopback port.
    pub upstream: SocketAddr,
    /// The internal account (user name, password) the gate connects to rumqttd with.
    pub account: (String, String),
    /// Publishes a second per device.
    pub rate: f64,
    /// Publishes a device may send at once before the rate applies.
    pub burst: f64,
}

/// A token bucket, on a clock given by the caller: how long the next message must wait.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    at_ms: u64,
}

impl Bucket {
    /// A full bucket at `now_ms`.
    pub fn new(burst: f64, now_ms: u64) -> Self {
        Bucket {
            tokens: burst,
            at_ms: now_ms,
        }
    }

    /// Takes `cost` tokens; returns the milliseconds to wait before the message may go (0: now).
    /// Tokens taken while waiting are owed, so a steady flood settles at exactly `rate`.
    pub fn take(&mut self, now_ms: u64, cost: f64, rate: f64, burst: f64) -> u64 {
        let elapsed = now_ms.saturating_sub(self.at_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at_ms = self.at_ms.max(now_ms);
        self.tokens -= cost;
        if self.tokens >= 0.0 {
            0
        } else {
            (-self.tokens * 1000.0 / rate).ceil() as u64
        }
    }
}

/// Accepts device connections until the process ends.
pub async fn run(gate: Gate, registry: Arc<Live>, metrics: Arc<Metrics>) {
    let listener = match gate
        .listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpListener::from_std(gate.listener))
    {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "The embedded broker's gate cannot listen.");
            return;
        }
    };
    let shared = Arc::new(Shared {
        tls: gate.tls.map(tokio_rustls::TlsAcceptor::from),
        auth: gate.auth,
        upstream: gate.upstream,
        account: gate.account,
        rate: gate.rate,
        burst: gate.burst,
        buckets: Mutex::new(HashMap::new()),
        epoch: Instant::now(),
        registry,
        metrics,
    });
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "Accepting a device connection failed.");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            shared.metrics.broker.connections.fetch_add(1, Relaxed);
            let result = shared.serve(stream).await;
            shared.metrics.broker.connections.fetch_sub(1, Relaxed);
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "Device connection closed.");
            }
        });
    }
}

struct Shared {
    tls: Option<tokio_rustls::TlsAcceptor>,
    auth: bool,
    upstream: SocketAddr,
    account: (String, String),
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
    epoch: Instant,
    registry: Arc<Live>,
    metrics: Arc<Metrics>,
}

/// Why a connection was refused, as counted.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    Credentials,
    NotAuthorized,
    Protocol,
    Tls,
}

impl Shared {
    async fn serve(self: &Arc<Self>, stream: TcpStream) -> Result<(), String> {
        match &self.tls {
            None => self.session(stream, None).await,
            Some(acceptor) => {
                let tls = match tokio::time::timeout(CONNECT_WITHIN, acceptor.accept(stream)).await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        self.refused(Refusal::Tls);
                        return Err(format!("TLS handshake: {e}"));
                    }
                    Err(_) => {
                        self.refused(Refusal::Tls);
                        return Err("TLS handshake timed out".into());
                    }
                };
                let cn = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(crate::tls::common_name);
                self.session(tls, cn).await
            }
        }
    }

    fn refused(&self, why: Refusal) {
        let m = &self.metrics.broker;
        match why {
            Refusal::Credentials => &m.refused_credentials,
            Refusal::NotAuthorized => &m.refused_not_authorized,
            Refusal::Protocol => &m.refused_protocol,
            Refusal::Tls => &m.refused_tls,
        }
        .fetch_add(1, Relaxed);
    }

    /// Who the CONNECT speaks for: `Ok(None)` when devices need not prove it.
    fn identify(&self, c: &Connect, cert_cn: Option<&str>) -> Result<Option<Identity>, Refusal> {
        if !self.auth {
            return Ok(None);
        }
        let registry = self.registry.get();
        let id = match (cert_cn, c.username.as_deref()) {
            // A certificate names the device; a user name, if given, must agree.
            (Some(cn), user) => {
                if user.is_some_and(|u| u != cn) {
                    return Err(Refusal::NotAuthorized);
                }
                registry.device(cn).ok_or(Refusal::NotAuthorized)?
            }
            (None, Some(user)) => {
                let d = registry.device(user).ok_or(Refusal::Credentials)?;
                let hash = d
                    .mqtt_password_hash
                    .as_deref()
                    .ok_or(Refusal::Credentials)?;
                let password = c.password.as_deref().unwrap_or_default();
                let password = std::str::from_utf8(password).map_err(|_| Refusal::Credentials)?;
                if !access::verify(hash, password) {
                    return Err(Refusal::Credentials);
                }
                d
            }
            (None, None) => return Err(Refusal::NotAuthorized),
        };
        let identity = Identity::of(id);
        if let Some((topic, _)) = &c.will {
            if !identity.may_publish(topic) {
                return Err(Refusal::NotAuthorized);
            }
        }
        Ok(Some(identity))
    }

    async fn session<S>(self: &Arc<Self>, stream: S, cert_cn: Option<String>) -> Result<(), String>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut from_client, mut to_client) = tokio::io::split(stream);
        let first = tokio::time::timeout(CONNECT_WITHIN, read_packet(&mut from_client))
            .await
            .map_err(|_| "no CONNECT in time".to_owned())?
            .map_err(|e| e.to_string())?;
        let Some((0x10, body)) = first else {
            self.refused(Refusal::Protocol);
            return Err("the first packet is not a CONNECT".into());
        };
        let Some(mut connect) = Connect::parse(&body) else {
            self.refused(Refusal::Protocol);
            let _ = to_client.write_all(&[0x20, 2, 0, 1]).await;
            return Err("a CONNECT that is not MQTT 3.1.1".into());
        };
        let identity = match self.identify(&connect, cert_cn.as_deref()) {
            Ok(i) => i,
            Err(why) => {
                self.refused(why);
                let code = match why {
                    Refusal::Credentials => 4,
                    _ => 5,
                };
                let _ = to_client.write_all(&[0x20, 2, 0, code]).await;
                return Err(format!("refused ({why:?})"));
            }
        };
        let owner = identity
            .as_ref()
            .map_or_else(|| connect.client_id.clone(), |i| i.device.clone());
        connect.client_id = format!("dev.{owner}.{}", connect.client_id);
        connect.username = Some(self.account.0.clone());
        connect.password = Some(self.account.1.clone().into_bytes());

        let upstream = TcpStream::connect(self.upstream)
            .await
            .map_err(|e| format!("the embedded broker: {e}"))?;
        let _ = upstream.set_nodelay(true);
        let (mut from_broker, mut to_broker) = upstream.into_split();
        to_broker
            .write_all(&frame(0x10, &connect.encode()))
            .await
            .map_err(|e| e.to_string())?;

        // One writer towards the device: the broker's packets and the gate's own answers.
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
        let writer = tokio::spawn(async move {
            while let Some(bytes) = rx.recv().await {
                if to_client.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            let _ = to_client.shutdown().await;
        });
        let down = {
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Ok(Some((header, body))) = read_packet(&mut from_broker).await {
                    if tx.send(frame(header, &body)).await.is_err() {
                        break;
                    }
                }
            })
        };
        let result = self
            .relay(
                &mut from_client,
                &mut to_broker,
                &tx,
                identity.as_ref(),
                &owner,
            )
            .await;
        down.abort();
        drop(tx);
        let _ = to_broker.shutdown().await;
        let _ = writer.await;
        result
    }

    /// The device's packets towards the broker, checked one by one.
    async fn relay<R: AsyncRead + Unpin>(
        &self,
        from_client: &mut R,
        to_broker: &mut tokio::net::tcp::OwnedWriteHalf,
        answers: &mpsc::Sender<Vec<u8>>,
        identity: Option<&Identity>,
        owner: &str,
    ) -> Result<(), String> {
        let m = &self.metrics.broker;
        let mut refused_qos2: HashSet<u16> = HashSet::new();
        loop {
            let Some((header, body)) = read_packet(from_client).await.map_err(|e| e.to_string())?
            else {
                return Ok(());
            };
            match header >> 4 {
                3 => {
                    let Some(p) = Publish::parse(header, &body) else {
                        self.refused(Refusal::Protocol);
                        return Err("a malformed PUBLISH".into());
                    };
                    if identity.is_some_and(|i| !i.may_publish(p.topic)) {
                        m.denied_publish.fetch_add(1, Relaxed);
                        tracing::debug!(device = owner, topic = p.topic, "Publish refused.");
                        let answer = match (p.qos, p.pkid) {
                            (1, Some(id)) => Some(frame(0x40, &id.to_be_bytes())),
                            (2, Some(id)) => {
                                refused_qos2.insert(id);
                                Some(frame(0x50, &id.to_be_bytes()))
                            }
                            _ => None,
                        };
                        if let Some(a) = answer {
                            answers.send(a).await.map_err(|e| e.to_string())?;
                        }
                        continue;
                    }
                    let wait = self.wait_for(owner, cost(body.len()));
                    if wait > 0 {
                        m.throttled.fetch_add(1, Relaxed);
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                    }
                }
                // PUBREL of a refused QoS 2 publish: the broker never saw it.
                6 if body.len() >= 2 => {
                    let id = u16::from_be_bytes([body[0], body[1]]);
                    if refused_qos2.remove(&id) {
                        answers
                            .send(frame(0x70, &id.to_be_bytes()))
                            .await
                            .map_err(|e| e.to_string())?;
                        continue;
                    }
                }
                8 => {
                    let Some((pkid, filters)) = parse_subscribe(&body) else {
                        self.refused(Refusal::Protocol);
                        return Err("a malformed SUBSCRIBE".into());
                    };
                    if let Some(i) = identity {
                        if !filters.iter().all(|f| i.may_subscribe(f)) {
                            m.denied_subscribe.fetch_add(1, Relaxed);
                            let mut ack = pkid.to_be_bytes().to_vec();
                            ack.extend(std::iter::repeat_n(0x80, filters.len()));
                            answers
                                .send(frame(0x90, &ack))
                                .await
                                .map_err(|e| e.to_string())?;
                            continue;
                        }
                    }
                }
                1 => {
                    self.refused(Refusal::Protocol);
                    return Err("a second CONNECT".into());
                }
                _ => {}
            }
            to_broker
                .write_all(&frame(header, &body))
                .await
                .map_err(|e| e.to_string())?;
            if header >> 4 == 14 {
                return Ok(());
            }
        }
    }

    /// Milliseconds the next publish of `owner` (costing `cost` tokens) waits to keep it to
    /// its rate.
    fn wait_for(&self, owner: &str, cost: f64) -> u64 {
        let now = self.epoch.elapsed().as_millis() as u64;
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() > 200_000 {
            // Idle devices' full buckets are forgotten; a new one starts full anyway.
            buckets.retain(|_, b| b.tokens < self.burst - 1.0);
        }
        buckets
            .entry(owner.to_owned())
            .or_insert_with(|| Bucket::new(self.burst, now))
            .take(now, cost, self.rate, self.burst)
    }
}

/// Tokens a publish of `len` bytes costs: one, and one more for every started 16 KiB past the
/// first, so that large payloads cannot carry a flood of bytes at the message rate.
fn cost(len: usize) -> f64 {
    1.0 + (len.saturating_sub(1) / PAYLOAD_PER_TOKEN) as f64
}

/// Bytes a single token carries.
const PAYLOAD_PER_TOKEN: usize = 16 * 1024;

/// One packet: its first byte and its body; `None` at a clean end of the stream.
async fn read_packet<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut first = [0_u8; 1];
    if r.read(&mut first).await? == 0 {
        return Ok(None);
    }
    let mut len = 0_usize;
    for shift in (0..4).map(|i| 7 * i) {
        let b = r.read_u8().await?;
        len |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            if len > MAX_PACKET {
                return Err(std::io::Error::other(format!("a packet of {len} bytes")));
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).await?;
            return Ok(Some((first[0], body)));
        }
    }
    Err(std::io::Error::other(
        "a packet length of more than 4 bytes",
    ))
}

/// A packet on the wire: its first byte, the remaining length and the body.
fn frame(header: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(header);
    let mut n = body.len();
    loop {
        let b = (n % 128) as u8;
        n /= 128;
        out.push(if n > 0 { b | 0x80 } else { b });
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// Reads a length-prefixed field at `*at`.
fn field<'a>(b: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    let len = usize::from(u16::from_be_bytes([*b.get(*at)?, *b.get(*at + 1)?]));
    let v = b.get(*at + 2..*at + 2 + len)?;
    *at += 2 + len;
    Some(v)
}

fn put_field(out: &mut Vec<u8>, v: &[u8]) {
    out.extend_from_slice(&(v.len().min(65535) as u16).to_be_bytes());
    out.extend_from_slice(&v[..v.len().min(65535)]);
}

/// A CONNECT (MQTT 3.1.1).
#[derive(Debug, Clone, PartialEq)]
struct Connect {
    flags: u8,
    keep_alive: u16,
    client_id: String,
    will: Option<(String, Vec<u8>)>,
    username: Option<String>,
    password: Option<Vec<u8>>,
}

impl Connect {
    fn parse(b: &[u8]) -> Option<Connect> {
        let mut at = 0;
        if field(b, &mut at)? != b"MQTT" || *b.get(at)? != 4 {
            return None;
        }
        let flags = *b.get(at + 1)?;
        if flags & 1 != 0 {
            return None; // the reserved bit (MQTT 3.1.1 section 3.1.2.3)
        }
        let keep_alive = u16::from_be_bytes([*b.get(at + 2)?, *b.get(at + 3)?]);
        at += 4;
        let client_id = String::from_utf8(field(b, &mut at)?.to_vec()).ok()?;
        let will = if flags & 0x04 != 0 {
            let topic = String::from_utf8(field(b, &mut at)?.to_vec()).ok()?;
            Some((topic, field(b, &mut at)?.to_vec()))
        } else {
            None
        };
        let username = if flags & 0x80 != 0 {
            Some(String::from_utf8(field(b, &mut at)?.to_vec()).ok()?)
        } else {
            None
        };
        let password = if flags & 0x40 != 0 {
            Some(field(b, &mut at)?.to_vec())
        } else {
            None
        };
        (at == b.len()).then_some(Connect {
            flags,
            keep_alive,
            client_id,
            will,
            username,
            password,
        })
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_field(&mut out, b"MQTT");
        out.push(4);
        let mut flags = self.flags & 0x3e; // will flag, QoS, retain and clean session
        flags |= u8::from(self.username.is_some()) << 7 | u8::from(self.password.is_some()) << 6;
        out.push(flags);
        out.extend_from_slice(&self.keep_alive.to_be_bytes());
        put_field(&mut out, self.client_id.as_bytes());
        if let Some((topic, payload)) = &self.will {
            put_field(&mut out, topic.as_bytes());
            put_field(&mut out, payload);
        }
        if let Some(u) = &self.username {
            put_field(&mut out, u.as_bytes());
        }
        if let Some(p) = &self.password {
            put_field(&mut out, p);
        }
        out
    }
}

/// The parts of a PUBLISH the gate looks at.
#[derive(Debug)]
struct Publish<'a> {
    topic: &'a str,
    qos: u8,
    pkid: Option<u16>,
}

impl<'a> Publish<'a> {
    fn parse(header: u8, b: &'a [u8]) -> Option<Publish<'a>> {
        let qos = (header >> 1) & 3;
        let mut at = 0;
        let topic = std::str::from_utf8(field(b, &mut at)?).ok()?;
        let pkid = match qos {
            0 => None,
            1 | 2 => Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?])),
            _ => return None,
        };
        Some(Publish { topic, qos, pkid })
    }
}

fn parse_subscribe(b: &[u8]) -> Option<(u16, Vec<String>)> {
    let pkid = u16::from_be_bytes([*b.first()?, *b.get(1)?]);
    let mut at = 2;
    let mut filters = Vec::new();
    while at < b.len() {
        filters.push(String::from_utf8(field(b, &mut at)?.to_vec()).ok()?);
        b.get(at)?;
        at += 1;
    }
    (!filters.is_empty()).then_some((pkid, filters))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // What a device sends is untrusted: no byte string makes the parsers panic, and a
        // CONNECT that parses encodes back to one that parses the same.
        #[test]
        fn parsers_take_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300), header in any::<u8>()) {
            let _ = Publish::parse(header, &bytes);
            let _ = parse_subscribe(&bytes);
            if let Some(c) = Connect::parse(&bytes) {
                prop_assert_eq!(Connect::parse(&c.encode()), Some(c));
            }
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async {
                let mut r = &bytes[..];
                while let Ok(Some(_)) = read_packet(&mut r).await {}
            });
        }
    }

    #[test]
    fn a_bucket_lets_the_burst_through_then_holds_to_the_rate() {
        let mut b = Bucket::new(3.0, 0);
        assert_eq!(
            [
                b.take(0, 1.0, 10.0, 3.0),
                b.take(0, 1.0, 10.0, 3.0),
                b.take(0, 1.0, 10.0, 3.0)
            ],
            [0, 0, 0]
        );
        // The fourth waits one token's time (100 ms at 10/s), the fifth two.
        assert_eq!(b.take(0, 1.0, 10.0, 3.0), 100);
        assert_eq!(b.take(0, 1.0, 10.0, 3.0), 200);
        // After a quiet second the bucket is full again, not fuller.
        assert_eq!(b.take(1300, 1.0, 10.0, 3.0), 0);
        assert_eq!(b.take(1300, 1.0, 10.0, 3.0), 0);
        assert_eq!(b.take(1300, 1.0, 10.0, 3.0), 0);
        assert_eq!(b.take(1300, 1.0, 10.0, 3.0), 100);
    }

    #[test]
    fn a_large_payload_costs_a_token_per_16_kib() {
        assert_eq!(cost(0), 1.0);
        assert_eq!(cost(16 * 1024), 1.0);
        assert_eq!(cost(16 * 1024 + 1), 2.0);
        assert_eq!(cost(1024 * 1024), 64.0);
        // Megabytes from a full bucket of 500 at 50/s: seven go through at once, the eighth
        // waits for the 12 tokens it lacks (240 ms), the ninth for 76 (1.52 s).
        let mut b = Bucket::new(500.0, 0);
        let waits: Vec<u64> = (0..9)
            .map(|_| b.take(0, cost(1 << 20), 50.0, 500.0))
            .collect();
        assert_eq!(waits[..7], [0; 7]);
        assert_eq!(waits[7], 240);
        assert_eq!(waits[8], 1520);
    }

    #[test]
    fn connect_round_trips_and_a_rewrite_keeps_the_will() {
        let c = Connect {
            flags: 0x04 | 0x08 | 0x20, // will, will QoS 1, will retain; persistent session
            keep_alive: 30,
            client_id: "wp-1".into(),
            will: Some((
                "fw/v1/b/water_pressure/wp-1/status".into(),
                b"{\"online\":false}".to_vec(),
            )),
            username: Some("wp-1".into()),
            password: Some(b"pw".to_vec()),
        };
        let bytes = c.encode();
        let back = Connect::parse(&bytes).unwrap();
        assert_eq!(back.client_id, "wp-1");
        assert_eq!(back.will, c.will);
        assert_eq!(back.username.as_deref(), Some("wp-1"));
        assert_eq!(back.password.as_deref(), Some(&b"pw"[..]));
        assert_eq!(back.flags, 0x04 | 0x08 | 0x20 | 0x80 | 0x40);
        let mut anon = back.clone();
        anon.username = None;
        anon.password = None;
        assert_eq!(Connect::parse(&anon.encode()).unwrap().flags, 0x2c);
        // MQTT 5 and garbage are not CONNECTs the gate passes.
        let mut v5 = bytes.clone();
        v5[6] = 5;
        assert!(Connect::parse(&v5).is_none());
        assert!(Connect::parse(&bytes[..bytes.len() - 1]).is_none());
    }

    #[tokio::test]
    async fn packets_are_framed_whatever_their_length() {
        for len in [0, 1, 127, 128, 16_383, 16_384, 300_000] {
            let body = vec![7_u8; len];
            let bytes = frame(0x30, &body);
            let mut r = &bytes[..];
            let (h, b) = read_packet(&mut r).await.unwrap().unwrap();
            assert_eq!((h, b.len()), (0x30, len));
            assert!(read_packet(&mut r).await.unwrap().is_none());
        }
        let p = {
            let mut b = Vec::new();
            put_field(&mut b, b"fw/v1/b/k/d/event");
            b.extend_from_slice(&9_u16.to_be_bytes());
            b.extend_from_slice(b"{}");
            b
        };
        let parsed = Publish::parse(0x32, &p).unwrap();
        assert_eq!(
            (parsed.topic, parsed.qos, parsed.pkid),
            ("fw/v1/b/k/d/event", 1, Some(9))
        );
        let mut s = 5_u16.to_be_bytes().to_vec();
        put_field(&mut s, b"fw/v1/b/k/d/command");
        s.push(1);
        assert_eq!(
            parse_subscribe(&s),
            Some((5, vec!["fw/v1/b/k/d/command".to_owned()]))
        );
        assert!(parse_subscribe(&s[..s.len() - 1]).is_none());
    }
}
