//! `firewatch-sim`: device simulators for firewatch — scenarios, load, alert latency.

mod devices;
mod latency;
mod load;
mod mqtt;
mod rng;
mod run;
mod scenario;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Stand-ins for fire-safety devices: water pressure and level monitors, electrical fire
/// monitors, fire-lane cameras and control-room transmitters, publishing the firewatch contract.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Play a scenario (a fleet and a timeline of incidents).
    Run {
        /// Scenario file, e.g. simulators/scenarios/town.toml.
        scenario: PathBuf,
        /// Broker.
        #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
        broker: String,
        /// Device time per real time; run firewatch with `firewatch-sim rules --speed` to match.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Seed: the same seed gives the same messages (the `ts` field is the wall clock).
        #[arg(long)]
        seed: Option<u64>,
        /// After the run, check firewatch's alerts at this API base URL against the
        /// scenario's expectations; exit 1 on any missing or unexpected alert.
        #[arg(long, value_name = "API_URL", num_args = 0..=1, default_missing_value = "http://127.0.0.1:8080")]
        expect: Option<String>,
        /// Real seconds the fleet keeps reporting (without incidents) before checking.
        #[arg(long, default_value_t = 3.0)]
        settle: f64,
        /// Print only the summary.
        #[arg(long)]
        quiet: bool,
    },
    /// Publish steady load from many devices.
    Load {
        /// Broker.
        #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
        broker: String,
        /// Devices.
        #[arg(long, default_value_t = 1000)]
        devices: u64,
        /// Messages per second in total (0 = as fast as the broker takes them).
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// How long, e.g. 30s or 2m.
        #[arg(long)]
        duration: Option<String>,
        /// How many messages.
        #[arg(long)]
        count: Option<u64>,
        /// QoS 0 or 1.
        #[arg(long, default_value_t = 1)]
        qos: u8,
        /// Connections.
        #[arg(long, default_value_t = 4)]
        connections: u64,
        /// Id prefix.
        #[arg(long, default_value = "load")]
        prefix: String,
        /// No progress lines.
        #[arg(long)]
        quiet: bool,
    },
    /// Time alerts from publish to e-mail accepted by the SMTP capture server.
    Latency {
        /// Broker.
        #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
        broker: String,
        /// The capture server's mail folder.
        #[arg(long)]
        maildir: PathBuf,
        /// Alerts.
        #[arg(long, default_value_t = 200)]
        count: u64,
        /// Milliseconds between alerts.
        #[arg(long, default_value_t = 20)]
        interval_ms: u64,
        /// Id prefix (unique per run).
        #[arg(long, default_value = "lat")]
        prefix: String,
    },
    /// Print a firewatch registry (buildings, classes, expected devices) for a scenario's fleet.
    Registry {
        /// Scenario file.
        scenario: PathBuf,
        /// Mark the registry strict (unlisted devices are rejected as `unregistered`).
        #[arg(long)]
        strict: bool,
    },
    /// Print the rules with every time divided by --speed, for firewatch to match a fast replay.
    Rules {
        /// The speed the scenario will run at.
        #[arg(long)]
        speed: f64,
        /// Rule file.
        #[arg(long, default_value = "config/rules.toml")]
        rules: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("firewatch-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("firewatch-sim: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn dispatch(c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::Run {
            scenario,
            broker,
            speed,
            seed,
            expect,
            settle,
            quiet,
        } => {
            let failures = run::run(run::RunOptions {
                scenario,
                broker,
                speed,
                seed,
                expect,
                settle,
                quiet,
            })
            .await?;
            Ok(if failures == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Load {
            broker,
            devices,
            rate,
            duration,
            count,
            qos,
            connections,
            prefix,
            quiet,
        } => {
            let duration = duration.map(|d| scenario::parse_duration(&d)).transpose()?;
            let s = load::load(load::LoadOptions {
                broker,
                devices,
                rate,
                duration,
                count,
                qos,
                connections,
                prefix,
                quiet,
            })
            .await?;
            println!("{}", serde_json::to_string(&s)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Latency {
            broker,
            maildir,
            count,
            interval_ms,
            prefix,
        } => {
            let s = latency::latency(latency::LatencyOptions {
                broker,
                maildir,
                count,
                interval_ms,
                prefix,
            })
            .await?;
            println!("{}", serde_json::to_string(&s)?);
            Ok(if s.missing == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Registry { scenario, strict } => {
            let sc = scenario::Scenario::load(&scenario)?;
            print!("{}", sc.registry(strict));
            Ok(ExitCode::SUCCESS)
        }
        Command::Rules { speed, rules } => {
            if !(speed.is_finite() && speed > 0.0) {
                anyhow::bail!("--speed must be a positive number");
            }
            let text = std::fs::read_to_string(&rules)?;
            let scaled = firewatch::rules::scale_rule_times(&text, 1.0 / speed)
                .map_err(|p| anyhow::anyhow!("{p}"))?;
            print!(
                "# {} with every time divided by {speed}\n{scaled}",
                rules.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
