//! The scenario runner: steps every device through device time at `--speed`, applies the
//! incidents of the timeline, and with `--expect` checks firewatch's alerts afterwards.

use crate::devices::{Device, LinkAction, Out};
use crate::mqtt::{Counters, Link};
use crate::rng::Rng;
use crate::scenario::{Expect, Scenario};
use firewatch::clock::wall_ms as now_ms;
use firewatch::model::Class;
use rumqttc::QoS;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of `firewatch-sim run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunOptions {
    /// Scenario file, e.g. simulators/scenarios/town.toml.
    pub scenario: PathBuf,
    /// Broker.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub broker: String,
    /// Device time per real time; run firewatch with `firewatch-sim rules --speed` to match.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Seed: the same seed gives the same messages (the `ts` field is the wall clock).
    #[arg(long)]
    pub seed: Option<u64>,
    /// After the run, check firewatch's alerts at this API base URL against the scenario's
    /// expectations; exit 1 on any missing or unexpected alert.
    #[arg(long, value_name = "API_URL", num_args = 0..=1, default_missing_value = "http://127.0.0.1:8080")]
    pub expect: Option<String>,
    /// API token for `--expect` (firewatch's API needs one: an API token or
    /// `auth.bootstrap_token`).
    #[arg(
        long,
        env = "FIREWATCH_API_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub api_token: Option<String>,
    /// Real seconds the fleet keeps reporting (without incidents) before checking.
    #[arg(long, default_value_t = 3.0)]
    pub settle: f64,
    /// Print only the summary.
    #[arg(long)]
    pub quiet: bool,
}

fn clock(t: f64) -> String {
    let s = t as u64;
    format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

async fn publish(link: &Link, d: &Device, o: Out, counters: &Counters) -> anyhow::Result<()> {
    let topic = d.topic(o.class);
    link.client
        .publish(topic, QoS::AtLeastOnce, o.retain, o.payload.to_string())
        .await?;
    counters.sent.fetch_add(1, Relaxed);
    Ok(())
}

fn connect(
    d: &Device,
    broker: &(String, u16),
    counters: &Arc<Counters>,
    cmd_tx: &tokio::sync::mpsc::UnboundedSender<(String, Vec<u8>)>,
) -> Link {
    let will = d.will();
    let link = Link::connect(
        broker,
        &format!("sim-{}", d.id),
        Some((
            d.topic(Class::Status),
            will.payload.to_string().into_bytes(),
        )),
        100,
        Arc::clone(counters),
        (d.kind == firewatch::model::Kind::Transmitter).then(|| cmd_tx.clone()),
        None,
    );
    if d.kind == firewatch::model::Kind::Transmitter {
        let _ = link
            .client
            .try_subscribe(d.topic(Class::Command), QoS::AtLeastOnce);
    }
    link
}

/// Runs a scenario; returns the number of expectation failures (0 without `--expect`).
pub async fn run(o: RunOptions) -> anyhow::Result<usize> {
    let sc = Scenario::load(&o.scenario)?;
    if !(o.speed.is_finite() && o.speed > 0.0) {
        anyhow::bail!("--speed must be a positive number");
    }
    let seed = o.seed.unwrap_or(sc.seed);
    let rng = Rng::new(seed);
    let broker = crate::mqtt::parse_broker(&o.broker)?;
    let counters = Arc::new(Counters::default());
    let (cmd_tx, mut cmd_rx) = tokio::sync::mpsc::unbounded_channel::<(String, Vec<u8>)>();

    let mut devices: Vec<Device> = sc
        .devices()
        .into_iter()
        .map(|(id, building, kind, class)| {
            let interval = sc.fleet.interval_s.get(&kind).copied().unwrap_or(60.0);
            let battery = sc.fleet.battery.contains(&kind);
            Device::new(
                &id, &building, kind, class, interval, battery, o.speed, &rng,
            )
        })
        .collect();
    let index: HashMap<String, usize> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id.clone(), i))
        .collect();
    let mut links: Vec<Option<Link>> = devices
        .iter()
        .map(|d| Some(connect(d, &broker, &counters, &cmd_tx)))
        .collect();
    let chaos = Link::connect(
        &broker,
        &format!("sim-{}-chaos", sc.fleet.prefix),
        None,
        100,
        Arc::clone(&counters),
        None,
        None,
    );
    let mut incidents = sc.incidents.clone();
    incidents.sort_by(|a, b| a.at.total_cmp(&b.at));
    let mut next_incident = 0;

    if !o.quiet {
        eprintln!(
            "Scenario {} ({}): {} buildings, {} devices, {} incidents, {} of device time at {}× (seed {seed}).",
            sc.name,
            sc.description,
            sc.fleet.buildings,
            devices.len(),
            incidents.len(),
            clock(sc.duration),
            o.speed
        );
    }
    let started = Instant::now();
    // With --expect the fleet lives on (no more incidents) while firewatch settles, so the
    // check sees the scenario, not devices falling silent because the run ended.
    let settle_device_time = if o.expect.is_some() {
        o.settle * o.speed
    } else {
        0.0
    };
    let steps = ((sc.duration + settle_device_time) / sc.tick).ceil() as u64;
    let mut last_progress = 0.0;
    for step in 0..=steps {
        let t = step as f64 * sc.tick;
        let wall = now_ms();
        while next_incident < incidents.len() && incidents[next_incident].at <= t {
            let inc = &incidents[next_incident];
            next_incident += 1;
            if !o.quiet {
                eprintln!(
                    "[{}] {} {}{}",
                    clock(t),
                    inc.what,
                    inc.device.as_deref().or(inc.topic.as_deref()).unwrap_or(""),
                    inc.note
                        .as_deref()
                        .map(|n| format!(" — {n}"))
                        .unwrap_or_default()
                );
            }
            if inc.what == "raw" {
                let topic = inc.topic.clone().unwrap_or_default();
                let payload = match (&inc.payload_hex, &inc.payload, inc.count) {
                    (Some(h), _, _) => hex(h)?,
                    (None, Some(p), _) => p.clone().into_bytes(),
                    // `count` alone: an oversize payload of that many bytes.
                    (None, None, Some(n)) => {
                        format!(r#"{{"values": {{}}, "pad": "{}"}}"#, "x".repeat(n as usize))
                            .into_bytes()
                    }
                    (None, None, None) => Vec::new(),
                };
                chaos
                    .client
                    .publish(topic, QoS::AtLeastOnce, false, payload)
                    .await?;
                counters.sent.fetch_add(1, Relaxed);
                continue;
            }
            let Some(&i) = inc.device.as_ref().and_then(|d| index.get(d)) else {
                continue;
            };
            let (outs, action) = devices[i].apply(inc, t, wall);
            if let Some(link) = links[i].as_ref() {
                for out in outs {
                    publish(link, &devices[i], out, &counters).await?;
                }
            }
            match action {
                Some(LinkAction::DropWithWill) => {
                    if let Some(l) = links[i].take() {
                        l.drop_with_will();
                    }
                }
                Some(LinkAction::Vanish) => {
                    if let Some(l) = links[i].take() {
                        l.disconnect().await;
                    }
                }
                Some(LinkAction::Reconnect) if links[i].is_none() => {
                    links[i] = Some(connect(&devices[i], &broker, &counters, &cmd_tx));
                }
                Some(LinkAction::Reconnect) => {}
                None => {}
            }
        }
        for (i, d) in devices.iter_mut().enumerate() {
            let outs = d.step(t, sc.tick, wall);
            if let Some(link) = links[i].as_ref() {
                for out in outs {
                    publish(link, d, out, &counters).await?;
                }
            }
        }
        // Duty checks (查岗): answer with the command's ref, unless told not to.
        while let Ok((topic, payload)) = cmd_rx.try_recv() {
            let Some(i) = devices
                .iter()
                .position(|d| d.topic(Class::Command) == topic)
            else {
                continue;
            };
            let cmd: Value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
            if cmd["command"] == "duty_check" && devices[i].answers_duty_checks {
                let answer = Out {
                    class: Class::Event,
                    payload: json!({"ts": now_ms(), "event": "duty_check_answer", "state": "pulse", "ref": cmd["ref"]}),
                    retain: false,
                };
                if let Some(link) = links[i].as_ref() {
                    publish(link, &devices[i], answer, &counters).await?;
                }
            }
        }
        if !o.quiet && t - last_progress >= 60.0 {
            last_progress = t;
            eprintln!(
                "[{}] {} messages sent, {} acknowledged by the broker",
                clock(t),
                counters.sent.load(Relaxed),
                counters.acked.load(Relaxed)
            );
        }
        // Pace: device time t happens at real time t / speed.
        let due = started + Duration::from_secs_f64((t + sc.tick) / o.speed);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
    }
    // Let the broker acknowledge everything.
    let deadline = Instant::now() + Duration::from_secs(30);
    while counters.acked.load(Relaxed) < counters.sent.load(Relaxed) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (sent, acked) = (counters.sent.load(Relaxed), counters.acked.load(Relaxed));
    eprintln!(
        "Done: {sent} messages sent, {acked} acknowledged, in {:.1} s real time.",
        started.elapsed().as_secs_f64()
    );
    let failures = match &o.expect {
        Some(api) => check(api, o.api_token.as_deref(), &sc, &sc.expects).await?,
        None => 0,
    };
    for l in links.into_iter().flatten() {
        l.disconnect().await;
    }
    chaos.disconnect().await;
    Ok(failures)
}

fn hex(s: &str) -> anyhow::Result<Vec<u8>> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if s.len() % 2 != 0 {
        anyhow::bail!("payload_hex has an odd number of digits");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| anyhow::anyhow!("payload_hex: {e}"))
        })
        .collect()
}

/// Compares firewatch's alerts for the scenario's buildings with the expectations; prints every
/// missing and every unexpected alert; returns how many there are.
pub async fn check(
    api: &str,
    token: Option<&str>,
    sc: &Scenario,
    expects: &[Expect],
) -> anyhow::Result<usize> {
    let url = format!("{}/api/v1/alerts?limit=10000", api.trim_end_matches('/'));
    let mut req = reqwest::Client::new().get(&url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await?;
    if r.status() == reqwest::StatusCode::UNAUTHORIZED {
        anyhow::bail!(
            "{url}: 401: pass an API token with --api-token or FIREWATCH_API_TOKEN (`firewatch token add USER --label sim`, or auth.bootstrap_token)"
        );
    }
    let alerts: Vec<Value> = r.error_for_status()?.json().await?;
    let buildings: BTreeSet<String> = sc.devices().into_iter().map(|d| d.1).collect();
    let actual: BTreeSet<Expect> = alerts
        .iter()
        .filter(|a| {
            a["building"]
                .as_str()
                .is_some_and(|b| buildings.contains(b))
        })
        .map(|a| Expect {
            rule: a["rule"].as_str().unwrap_or("").to_owned(),
            device: a["device"].as_str().unwrap_or("").to_owned(),
            channel: a["channel"].as_str().map(str::to_owned),
        })
        .collect();
    let wanted: BTreeSet<Expect> = expects.iter().cloned().collect();
    let missing: Vec<&Expect> = wanted.difference(&actual).collect();
    let unexpected: Vec<&Expect> = actual.difference(&wanted).collect();
    let show = |e: &Expect| match &e.channel {
        Some(c) => format!("{} on {} ({c})", e.rule, e.device),
        None => format!("{} on {}", e.rule, e.device),
    };
    println!(
        "Expected alerts: {}; present: {}.",
        wanted.len(),
        wanted.len() - missing.len()
    );
    for e in &missing {
        println!("MISSING     {}", show(e));
    }
    for e in &unexpected {
        println!("UNEXPECTED  {}", show(e));
    }
    if missing.is_empty() && unexpected.is_empty() {
        println!("All expected alerts are there, and no others.");
    }
    Ok(missing.len() + unexpected.len())
}
