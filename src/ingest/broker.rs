//! The embedded broker (rumqttd), started in-process when `mqtt.url = "embedded"`.
//!
//! rumqttd only logs when its port is taken, and a client would then silently talk to whatever
//! else listens there; so the port is checked here first, and start-up fails with a clear error.
//! It keeps sessions in memory: a persistent session survives firewatch's client reconnecting,
//! not a restart of the process. Production deployments use Mosquitto (`deploy/mosquitto.conf`).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

/// The embedded broker as firewatch's own client reaches it.
#[derive(Debug)]
pub struct Embedded {
    /// Where firewatch's client connects.
    pub client: SocketAddr,
    /// The internal account firewatch's client uses (behind the gate only).
    pub account: Option<(String, String)>,
    /// The gate devices connect through, to be run ([`super::gate::run`]).
    pub gate: Option<super::gate::Gate>,
}

/// Starts the embedded broker of `cfg` and waits until it accepts connections: rumqttd on
/// `mqtt.embedded_listen`, or, when devices must prove who they are or speak TLS
/// ([`super::mqtt::MqttConfig::gated`]), rumqttd on a loopback port with one internal account
/// and the gate on `mqtt.embedded_listen`.
pub fn start(cfg: &super::mqtt::MqttConfig) -> Result<Embedded, String> {
    let listen = &cfg.embedded_listen;
    let addr: SocketAddr = listen
        .parse()
        .map_err(|e| format!("mqtt.embedded_listen {listen:?}: {e}"))?;
    let taken = |e: std::io::Error| {
        format!(
            "mqtt.embedded_listen {addr}: cannot listen ({e}); is another broker running there?"
        )
    };
    if !cfg.gated() {
        TcpListener::bind(addr).map_err(taken)?;
        start_rumqttd(addr, None)?;
        return Ok(Embedded {
            client: addr,
            account: None,
            gate: None,
        });
    }
    let listener = TcpListener::bind(addr).map_err(taken)?;
    let tls = match (&cfg.embedded_tls_cert, &cfg.embedded_tls_key) {
        (Some(cert), Some(key)) => Some(crate::tls::server_config(
            cert,
            key,
            cfg.embedded_client_ca.as_deref(),
        )?),
        _ => None,
    };
    let inner = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no loopback port for the embedded broker: {e}"))?;
    let secret = crate::auth::token::generate("")
        .map_err(|_| "no random numbers from the operating system".to_owned())?;
    let account = ("firewatch-gate".to_owned(), secret);
    start_rumqttd(inner, Some(&account))?;
    Ok(Embedded {
        client: inner,
        account: Some(account.clone()),
        gate: Some(super::gate::Gate {
            listener,
            tls,
            auth: cfg.embedded_auth,
            upstream: inner,
            account,
            rate: cfg.device_rate,
            burst: cfg.device_burst,
        }),
    })
}

/// Runs rumqttd on `addr` (with one account when given) and waits until it listens.
fn start_rumqttd(addr: SocketAddr, account: Option<&(String, String)>) -> Result<(), String> {
    let mut servers = HashMap::new();
    servers.insert(
        "v4".to_owned(),
        rumqttd::ServerSettings {
            name: "v4".to_owned(),
            listen: addr,
            tls: None,
            next_connection_delay_ms: 1,
            connections: rumqttd::ConnectionSettings {
                connection_timeout_ms: 60_000,
                // Larger than the contract's 64 KiB so oversize payloads reach firewatch and are
                // counted and kept as `too_large` instead of vanishing at the broker.
                max_payload_size: 1024 * 1024,
                // The in-flight window is firewatch's pipeline depth (acks follow commits).
                max_inflight_count: 20_000,
                auth: account.map(|(u, p)| HashMap::from([(u.clone(), p.clone())])),
                external_auth: None,
                dynamic_filters: true,
            },
        },
    );
    let config = rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: 100_010,
            max_outgoing_packet_count: 1000,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(servers),
        v5: None,
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    };
    std::thread::Builder::new()
        .name("embedded-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "Embedded broker stopped.");
            }
        })
        .map_err(|e| format!("cannot start the embedded broker thread: {e}"))?;
    for _ in 0..100 {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            tracing::info!(listen = %addr, "Embedded MQTT broker listening.");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "the embedded broker did not start listening on {addr}"
    ))
}
