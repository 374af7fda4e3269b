//! The embedded broker (rumqttd), started in-process when `mqtt.url = "embedded"`.
//!
//! rumqttd only logs when its port is taken, and a client would then silently talk to whatever
//! else listens there; so the port is checked here first, and start-up fails with a clear error.
//! It keeps sessions in memory: a persistent session survives firewatch's client reconnecting,
//! not a restart of the process. Production deployments use Mosquitto (`deploy/mosquitto.conf`).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

/// Starts rumqttd on `listen` in a background thread and waits until it accepts connections.
pub fn start(listen: &str) -> Result<(), String> {
    let addr: SocketAddr = listen
        .parse()
        .map_err(|e| format!("mqtt.embedded_listen {listen:?}: {e}"))?;
    TcpListener::bind(addr).map_err(|e| {
        format!(
            "mqtt.embedded_listen {addr}: cannot listen ({e}); is another broker running there?"
        )
    })?;
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
                auth: None,
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
