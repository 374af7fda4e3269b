//! Alert latency: publish alert-worthy events and time them until the SMTP server accepted the
//! e-mail (the capture server's `received_at_ns`).

use crate::mqtt::{Counters, Link};
use rumqttc::QoS;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Options of `firewatch-sim latency`.
#[derive(Debug, Clone, clap::Args)]
pub struct LatencyOptions {
    /// Broker.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub broker: String,
    /// The SMTP capture server's mail folder (`.eml` + `.json`).
    #[arg(long)]
    pub maildir: PathBuf,
    /// Alerts to time.
    #[arg(long, default_value_t = 200)]
    pub count: u64,
    /// Milliseconds between alerts.
    #[arg(long, default_value_t = 20)]
    pub interval_ms: u64,
    /// Device id prefix (unique per run).
    #[arg(long, default_value = "lat")]
    pub prefix: String,
    /// Log in as each alerting device (one connection per alert, all made before the first).
    #[command(flatten)]
    pub login: crate::mqtt::Login,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LatencySummary {
    /// Alerts timed.
    pub count: usize,
    /// Alerts whose mail never arrived.
    pub missing: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Worst.
    pub max_ms: f64,
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

/// Percentile of sorted values (nearest rank).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs it.
pub async fn latency(o: LatencyOptions) -> anyhow::Result<LatencySummary> {
    let broker = crate::mqtt::parse_broker(&o.broker)?;
    let counters = Arc::new(Counters::default());
    let device = |i: u64| format!("{}-{i:05}", o.prefix);
    // Logged in, each device speaks for itself only: a connection per alert, all accepted
    // before the first alert so that no login is timed.
    let links: Vec<Link> = if o.login.device_password.is_some() {
        (0..o.count)
            .map(|i| {
                let d = device(i);
                Link::connect(
                    &broker,
                    &d,
                    None,
                    100,
                    Arc::clone(&counters),
                    None,
                    o.login.of(&d),
                )
            })
            .collect()
    } else {
        vec![Link::connect(
            &broker,
            &format!("{}-latency", o.prefix),
            None,
            100,
            Arc::clone(&counters),
            None,
            None,
        )]
    };
    Link::wait_connected(&counters, links.len() as u64, Duration::from_secs(30)).await?;
    let mut sent: HashMap<String, u128> = HashMap::new();
    for i in 0..o.count {
        let device = device(i);
        // A building of its own per alert: each is the first fire alarm of its building, which
        // firewatch's grouping sends at once (a second one in the same building would wait for
        // the group interval and go out in a digest).
        let topic = format!("fw/v1/{}-lat-{i:05}/fire_lane/{device}/event", o.prefix);
        let payload = r#"{"event":"smoke","state":"start","zone":"lobby"}"#;
        sent.insert(device, now_ns());
        links[i as usize % links.len()]
            .client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await?;
        tokio::time::sleep(Duration::from_millis(o.interval_ms)).await;
    }
    let mut got: HashMap<String, f64> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < sent.len() && Instant::now() < deadline {
        if let Ok(rd) = std::fs::read_dir(&o.maildir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_none_or(|x| x != "eml") {
                    continue;
                }
                let Ok(raw) = std::fs::read_to_string(&p) else {
                    continue;
                };
                // Device ids are fixed-width, so none is a prefix of another; the mail names the
                // device in its subject and body (headers may be folded at 76 columns).
                for (device, t0) in &sent {
                    if got.contains_key(device) || !raw.contains(device.as_str()) {
                        continue;
                    }
                    let meta: serde_json::Value = std::fs::read_to_string(p.with_extension("json"))
                        .ok()
                        .and_then(|s| serde_json::from_str(&s).ok())
                        .unwrap_or_default();
                    if let Some(t1) = meta["received_at_ns"].as_u64() {
                        got.insert(
                            device.clone(),
                            (u128::from(t1).saturating_sub(*t0)) as f64 / 1e6,
                        );
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for link in links {
        link.disconnect().await;
    }
    let mut v: Vec<f64> = got.values().copied().collect();
    v.sort_by(f64::total_cmp);
    Ok(LatencySummary {
        count: v.len(),
        missing: o.count - v.len() as u64,
        p50_ms: percentile(&v, 50.0),
        p99_ms: percentile(&v, 99.0),
        max_ms: v.last().copied().unwrap_or(f64::NAN),
    })
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
