//! MQTT links: one client connection with its event loop task, counting broker acknowledgements.

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Messages sent and acknowledged, over all links.
#[derive(Debug, Default)]
pub struct Counters {
    /// Publishes handed to a client.
    pub sent: AtomicU64,
    /// PUBACKs received.
    pub acked: AtomicU64,
    /// CONNACKs received (a reconnect counts again).
    pub connected: AtomicU64,
    /// Connections the broker refused (wrong password, not authorised…).
    pub refused: AtomicU64,
}

/// How a simulated device logs in to a broker that knows each device: firewatch's embedded broker
/// with `mqtt.embedded_auth`, or Mosquitto with the files `firewatch registry mosquitto-passwd`
/// and `mosquitto-acl` write. Without a password nobody logs in.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Login {
    /// Log in as each device, its id as the user name, with this password (the one set for it
    /// with `firewatch registry passwd`); every device then has a connection of its own.
    #[arg(long, env = "FW_SIM_DEVICE_PASSWORD", hide_env_values = true)]
    pub device_password: Option<String>,
}

impl Login {
    /// User name and password for `device`, when logging in.
    pub fn of<'a>(&'a self, device: &'a str) -> Option<(&'a str, &'a str)> {
        self.device_password.as_deref().map(|pw| (device, pw))
    }
}

/// Broker host and port from `mqtt://host:port`.
pub fn parse_broker(url: &str) -> anyhow::Result<(String, u16)> {
    let u = url::Url::parse(url).map_err(|e| anyhow::anyhow!("--broker {url:?}: {e}"))?;
    if u.scheme() != "mqtt" && u.scheme() != "tcp" {
        anyhow::bail!("--broker {url:?}: use mqtt://host:port");
    }
    let host = u
        .host_str()
        .ok_or_else(|| anyhow::anyhow!("--broker {url:?}: no host"))?
        .to_owned();
    Ok((host, u.port().unwrap_or(1883)))
}

/// One connection.
#[derive(Debug)]
pub struct Link {
    /// The client.
    pub client: AsyncClient,
    task: JoinHandle<()>,
}

impl Link {
    /// Connects (in the background; publishes queue until connected). Incoming publishes go to
    /// `incoming`.
    pub fn connect(
        broker: &(String, u16),
        client_id: &str,
        will: Option<(String, Vec<u8>)>,
        inflight: u16,
        counters: Arc<Counters>,
        incoming: Option<tokio::sync::mpsc::UnboundedSender<(String, Vec<u8>)>>,
        login: Option<(&str, &str)>,
    ) -> Link {
        let mut o = MqttOptions::new(client_id, broker.0.clone(), broker.1);
        o.set_keep_alive(Duration::from_secs(30))
            .set_inflight(inflight)
            .set_max_packet_size(1 << 20, 1 << 20);
        if let Some((user, password)) = login {
            o.set_credentials(user, password);
        }
        if let Some((topic, payload)) = will {
            o.set_last_will(LastWill::new(topic, payload, QoS::AtLeastOnce, true));
        }
        let (client, mut el) = AsyncClient::new(o, 10_000);
        let task = tokio::spawn(async move {
            let mut errors = 0u32;
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        counters.acked.fetch_add(1, Relaxed);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if let Some(tx) = &incoming {
                            let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
                        }
                    }
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        errors = 0;
                        counters.connected.fetch_add(1, Relaxed);
                    }
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                    Ok(_) => {}
                    Err(e) => {
                        if matches!(e, rumqttc::ConnectionError::ConnectionRefused(_)) {
                            counters.refused.fetch_add(1, Relaxed);
                        }
                        errors += 1;
                        if errors == 1 || errors % 50 == 0 {
                            eprintln!("warning: MQTT connection error: {e}; retrying");
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        Link { client, task }
    }

    /// Waits, up to `bound`, until `counters` has seen `n` CONNACKs.
    pub async fn wait_connected(
        counters: &Counters,
        n: u64,
        bound: Duration,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + bound;
        while counters.connected.load(Relaxed) < n {
            if counters.refused.load(Relaxed) > 0 {
                anyhow::bail!(
                    "the broker refused {} connection(s): wrong --device-password, or a device it does not know",
                    counters.refused.load(Relaxed)
                );
            }
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!(
                    "{} of {n} connections accepted by the broker after {bound:?}",
                    counters.connected.load(Relaxed)
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Drops the connection without DISCONNECT: the broker publishes the last will.
    pub fn drop_with_will(self) {
        self.task.abort();
    }

    /// Disconnects cleanly (no last will).
    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
    }
}
