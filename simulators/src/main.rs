//! `firewatch-sim`: device simulators for firewatch — scenarios, load, alert latency.

mod devices;
mod gb;
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
    Run(run::RunOptions),
    /// Publish steady load from many devices.
    Load(load::LoadOptions),
    /// Time alerts from publish to e-mail accepted by the SMTP capture server.
    Latency(latency::LatencyOptions),
    /// GB/T 26875.3 transmitters over TCP: heartbeats from many, fire alarms timed to the
    /// gateway's confirm.
    Gb(gb::GbOptions),
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
        Command::Run(o) => {
            let failures = run::run(o).await?;
            Ok(if failures == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Load(o) => {
            let s = load::load(o).await?;
            println!("{}", serde_json::to_string(&s)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Latency(o) => {
            let s = latency::latency(o).await?;
            println!("{}", serde_json::to_string(&s)?);
            Ok(if s.missing == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Gb(o) => {
            let s = gb::run(o).await?;
            println!("{}", serde_json::to_string(&s)?);
            Ok(if s.unconfirmed == 0 {
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
