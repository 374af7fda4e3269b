//! (added) The embedded broker's gate: connections refused, publishes and subscriptions
//! refused by the access rules, and publishes held back to a device's rate.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The gate's figures.
#[derive(Debug, Default)]
pub struct BrokerMetrics {
    /// Device connections open now.
    pub connections: AtomicU64,
    /// Connections refused: unknown user or wrong password.
    pub refused_credentials: AtomicU64,
    /// Connections refused: no identity, or a certificate or last will of another device.
    pub refused_not_authorized: AtomicU64,
    /// Connections closed: not MQTT 3.1.1, or a malformed packet.
    pub refused_protocol: AtomicU64,
    /// Connections refused: the TLS handshake failed.
    pub refused_tls: AtomicU64,
    /// Publishes refused: a topic not the device's own.
    pub denied_publish: AtomicU64,
    /// Subscriptions refused: a filter not the device's own command topic.
    pub denied_subscribe: AtomicU64,
    /// Publishes held back to keep a device to `mqtt.device_rate`.
    pub throttled: AtomicU64,
}

impl BrokerMetrics {
    /// Prometheus text.
    pub fn render(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "# HELP firewatch_broker_connections Device connections open at the embedded broker's gate.\n\
             # TYPE firewatch_broker_connections gauge\nfirewatch_broker_connections {}",
            self.connections.load(Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP firewatch_broker_refused_total Device connections refused by the embedded broker's gate, by reason.\n\
             # TYPE firewatch_broker_refused_total counter"
        );
        for (reason, v) in [
            ("credentials", &self.refused_credentials),
            ("not_authorized", &self.refused_not_authorized),
            ("protocol", &self.refused_protocol),
            ("tls", &self.refused_tls),
        ] {
            let _ = writeln!(
                s,
                "firewatch_broker_refused_total{{reason=\"{reason}\"}} {}",
                v.load(Relaxed)
            );
        }
        let _ = writeln!(
            s,
            "# HELP firewatch_broker_denied_total Publishes and subscriptions refused: not the device's own topics.\n\
             # TYPE firewatch_broker_denied_total counter"
        );
        for (action, v) in [
            ("publish", &self.denied_publish),
            ("subscribe", &self.denied_subscribe),
        ] {
            let _ = writeln!(
                s,
                "firewatch_broker_denied_total{{action=\"{action}\"}} {}",
                v.load(Relaxed)
            );
        }
        let _ = writeln!(
            s,
            "# HELP firewatch_broker_throttled_total Publishes held back to keep a device to mqtt.device_rate.\n\
             # TYPE firewatch_broker_throttled_total counter\nfirewatch_broker_throttled_total {}",
            self.throttled.load(Relaxed)
        );
    }
}
