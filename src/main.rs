//! The `firewatch` binary: parse the command line, load the configuration, run.

use clap::{Parser, Subcommand};
use firewatch::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

/// Fire-safety IoT monitoring for high-rise buildings.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file, layered over config/default.toml.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service (the default).
    Run,
    /// Load and validate the configuration, rules and registry; print every problem.
    CheckConfig,
    /// Print a report from the store (read-only; safe while the service runs).
    Report {
        /// What to report.
        #[arg(value_enum)]
        what: firewatch::report::What,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: firewatch::report::Format,
        /// One building only.
        #[arg(long, value_name = "ID")]
        building: Option<String>,
        /// The alerts report's window: the last DAYS days.
        #[arg(long, default_value_t = 1, value_name = "DAYS")]
        days: u32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttd=off,rumqttc=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // One TLS crypto provider for every client (MQTT, SMTP, InfluxDB).
    let _ = rustls::crypto::ring::default_provider().install_default();

    let cfg = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(p) => {
            eprintln!("firewatch: configuration problem:\n  {p}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::Report {
            what,
            format,
            building,
            days,
        } => {
            let req = firewatch::report::Request {
                what,
                format,
                building,
                days,
            };
            match firewatch::report::run(&cfg, &req, firewatch::clock::wall_ms()) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("firewatch: report: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::CheckConfig => match firewatch::app::check(&cfg) {
            Ok((rules, registry)) => {
                println!(
                    "Configuration OK: {} rules, {} buildings and {} devices registered.",
                    rules.ids().len(),
                    registry.buildings.len(),
                    registry.devices.len()
                );
                ExitCode::SUCCESS
            }
            Err(problems) => {
                eprintln!("firewatch: {} configuration problem(s):", problems.len());
                for p in problems {
                    eprintln!("  {p}");
                }
                ExitCode::from(2)
            }
        },
        Command::Run => {
            if let Err(problems) = firewatch::app::check(&cfg) {
                eprintln!("firewatch: {} configuration problem(s):", problems.len());
                for p in problems {
                    eprintln!("  {p}");
                }
                return ExitCode::from(2);
            }
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("firewatch: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(firewatch::app::run(cfg, firewatch::app::shutdown_signal())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("firewatch: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
