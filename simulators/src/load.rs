//! Load mode: many devices publishing water-pressure readings at a steady rate (or as fast as
//! the broker takes them), with progress output and a summary.

use crate::mqtt::{Counters, Link};
use rumqttc::QoS;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of `firewatch-sim load`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadOptions {
    /// Broker.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub broker: String,
    /// Number of devices.
    #[arg(long, default_value_t = 1000)]
    pub devices: u64,
    /// Messages per second in total (0 = as fast as the broker takes them).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// How long, e.g. 30s or 2m…
    #[arg(long, value_parser = crate::scenario::parse_duration_arg)]
    pub duration: Option<f64>,
    /// …or how many messages.
    #[arg(long)]
    pub count: Option<u64>,
    /// QoS 0 or 1.
    #[arg(long, default_value_t = 1)]
    pub qos: u8,
    /// Connections to spread the devices over.
    #[arg(long, default_value_t = 4)]
    pub connections: u64,
    /// Building and device id prefix.
    #[arg(long, default_value = "load")]
    pub prefix: String,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
    /// Log in as each device (one connection per device, `--connections` ignored).
    #[command(flatten)]
    pub login: crate::mqtt::Login,
}

/// Summary of a load run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// Messages published.
    pub sent: u64,
    /// Acknowledged by the broker (QoS 1).
    pub acked: u64,
    /// Seconds from the first publish to the last acknowledgement (QoS 1) or publish (QoS 0).
    pub elapsed_s: f64,
    /// sent / elapsed.
    pub rate: f64,
    /// Devices.
    pub devices: u64,
    /// QoS.
    pub qos: u8,
}

/// The id of load device `d`.
pub fn device_id(prefix: &str, d: u64) -> String {
    format!("{prefix}-{d:06}")
}

/// Topic and payload of message `n` (device `n % devices`, its seq `n / devices`).
pub fn message(prefix: &str, devices: u64, n: u64) -> (String, String) {
    let d = n % devices;
    let seq = n / devices;
    let topic = format!(
        "fw/v1/{prefix}-b{:04}/water_pressure/{}/telemetry",
        d / 100,
        device_id(prefix, d)
    );
    // Healthy readings around 0.30 MPa: load, not alerts.
    let v = 0.3 + (n % 50) as f64 / 1000.0;
    (
        topic,
        format!(r#"{{"seq":{seq},"values":{{"pressure_mpa":{v:.3}}}}}"#),
    )
}

/// Runs the load.
pub async fn load(o: LoadOptions) -> anyhow::Result<Summary> {
    if o.devices == 0 || o.connections == 0 {
        anyhow::bail!("--devices and --connections must be at least 1");
    }
    if o.duration.is_none() && o.count.is_none() {
        anyhow::bail!("give --duration or --count");
    }
    let qos = match o.qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        q => anyhow::bail!("--qos {q}: use 0 or 1"),
    };
    let broker = crate::mqtt::parse_broker(&o.broker)?;
    let counters = Arc::new(Counters::default());
    let login = o.login.device_password.is_some();
    let connections = if login { o.devices } else { o.connections };
    let links: Vec<Link> = (0..connections)
        .map(|i| {
            let device = device_id(&o.prefix, i);
            let client_id = if login {
                device.clone()
            } else {
                format!("{}-load-{i}-{}", o.prefix, std::process::id())
            };
            Link::connect(
                &broker,
                &client_id,
                None,
                1000,
                Arc::clone(&counters),
                None,
                o.login.of(&device),
            )
        })
        .collect();
    if login {
        Link::wait_connected(&counters, connections, Duration::from_secs(30)).await?;
    }
    let limit = o.count.unwrap_or(u64::MAX);
    let until = o.duration.map(Duration::from_secs_f64);
    let started = Instant::now();
    let mut last_progress = Instant::now();
    let mut n = 0u64;
    while n < limit && until.is_none_or(|u| started.elapsed() < u) {
        // Pace in slices of 1 ms worth of messages.
        let slice = if o.rate > 0.0 {
            (o.rate / 1000.0).ceil().max(1.0) as u64
        } else {
            1000
        };
        for _ in 0..slice.min(limit - n) {
            let (topic, payload) = message(&o.prefix, o.devices, n);
            let link = &links[(n % o.devices % connections) as usize];
            link.client.publish(topic, qos, false, payload).await?;
            n += 1;
        }
        counters.sent.store(n, Relaxed);
        if o.rate > 0.0 {
            let due = started + Duration::from_secs_f64(n as f64 / o.rate);
            if let Some(w) = due.checked_duration_since(Instant::now()) {
                tokio::time::sleep(w).await;
            }
        }
        if !o.quiet && last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            let s = started.elapsed().as_secs_f64();
            eprintln!(
                "{s:6.1} s  sent {n:>9}  acked {:>9}  {:>8.0} msg/s",
                counters.acked.load(Relaxed),
                n as f64 / s
            );
        }
    }
    if qos == QoS::AtLeastOnce {
        let deadline = Instant::now() + Duration::from_secs(120);
        while counters.acked.load(Relaxed) < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    for l in links {
        l.disconnect().await;
    }
    let acked = counters.acked.load(Relaxed);
    let s = Summary {
        sent: n,
        acked,
        elapsed_s: elapsed,
        rate: n as f64 / elapsed,
        devices: o.devices,
        qos: o.qos,
    };
    if !o.quiet {
        eprintln!("Sent {n} messages from {} devices in {elapsed:.2} s ({:.0} msg/s); {acked} acknowledged.", o.devices, s.rate);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use firewatch::model::decode::{decode, Decoded};

    #[test]
    fn load_messages_pass_the_contract() {
        for n in [0, 1, 99_999, 1_234_567] {
            let (t, p) = message("ld", 100_000, n);
            assert!(
                matches!(decode(&t, p.as_bytes(), false, 0), Ok(Decoded::Message(_))),
                "{t} {p}"
            );
        }
    }
}
