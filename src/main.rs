//! The `firewatch` binary: parse the command line, load the configuration, run.

use clap::{Parser, Subcommand};
use firewatch::config::Config;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    /// (added) Import or export the registry (`registry.file`) as CSV.
    Registry {
        #[command(subcommand)]
        action: RegistryCommand,
    },
    /// (added) Accounts of the dashboard and the API.
    User {
        #[command(subcommand)]
        action: UserCommand,
    },
    /// (added) API tokens for integrations.
    Token {
        #[command(subcommand)]
        action: TokenCommand,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user; prints a generated password once (or reads one with --password-stdin).
    Add {
        /// Login name.
        name: String,
        /// operator, manager or admin.
        #[arg(long)]
        role: firewatch::auth::Role,
        /// A manager's building (repeat for several).
        #[arg(long = "building", value_name = "ID")]
        buildings: Vec<String>,
        /// Display name, e.g. 张伟.
        #[arg(long)]
        display: Option<String>,
        /// Read the password (one line, at least 10 characters) from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new password; ends the user's sessions.
    Passwd {
        /// Login name.
        name: String,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Disable a user: no login, its sessions and tokens stop working.
    Disable {
        /// Login name.
        name: String,
    },
    /// Enable a disabled user.
    Enable {
        /// Login name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make an API token acting as USER (its role and buildings); prints it once.
    Add {
        /// The user it acts as.
        user: String,
        /// What it is for, e.g. city-platform.
        #[arg(long)]
        label: String,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token.
    Revoke {
        /// Its id, from `token list`.
        id: i64,
    },
}

fn accounts_command(cfg: &Config, action: firewatch::accounts::Action) -> ExitCode {
    match firewatch::accounts::run(cfg, action, firewatch::clock::wall_ms()) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("firewatch: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[derive(Debug, Subcommand)]
enum RegistryCommand {
    /// Write every building and device to FILE (one CSV, a `record` column per row).
    Export {
        /// The CSV file to write.
        file: PathBuf,
    },
    /// Validate FILE and merge it into the registry (rows upsert by id); on any problem print
    /// every one and change nothing (exit status 2).
    Import {
        /// The CSV file to read.
        file: PathBuf,
        /// Replace all buildings and devices by those of FILE (`strict` and `[required]` stay).
        #[arg(long)]
        replace: bool,
    },
    /// Set or rotate DEVICE's MQTT password: read it from standard input (one line), or make a
    /// new one with --generate and print it once. The registry keeps only its hash.
    Passwd {
        /// The device id (its MQTT user name).
        device: String,
        /// Make a random password and print it.
        #[arg(long)]
        generate: bool,
    },
    /// Write Mosquitto's password file (`password_file`) from the registry, with firewatch's own
    /// account (`mqtt.username` and `mqtt.password`) when configured. `-` writes to stdout.
    MosquittoPasswd {
        /// The file to write.
        file: PathBuf,
    },
    /// Write Mosquitto's ACL file (`acl_file`) from the registry: each device publishes only its
    /// own topics and reads only its own commands. `-` writes to stdout.
    MosquittoAcl {
        /// The file to write.
        file: PathBuf,
    },
}

/// Writes `text` to `file` atomically (mode 0600 for password files), or to stdout for `-`.
fn write_out(file: &Path, text: &str, what: &str) -> ExitCode {
    if file == Path::new("-") {
        print!("{text}");
        return ExitCode::SUCCESS;
    }
    match firewatch::registry::csv::write_atomically(file, text.as_bytes()) {
        Ok(()) => {
            eprintln!(
                "Wrote {what} {}; reload Mosquitto (SIGHUP) to apply it.",
                file.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("firewatch: cannot write {}: {e}", file.display());
            ExitCode::from(2)
        }
    }
}

/// Prints `message` as firewatch's error and gives the exit status of a refused command.
fn refuse(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("firewatch: {message}");
    ExitCode::from(2)
}

/// The registry file, or the refusal that names every problem in it.
fn load_registry(cfg: &Config) -> Result<firewatch::registry::Registry, ExitCode> {
    firewatch::registry::Registry::load(&cfg.registry.file).map_err(|problems| {
        eprintln!("firewatch: cannot read the registry:");
        for p in problems {
            eprintln!("  {p}");
        }
        ExitCode::from(2)
    })
}

/// A fresh salt for a password hash.
fn salt() -> Result<[u8; 12], ExitCode> {
    firewatch::auth::token::random_bytes::<12>()
        .map_err(|_| refuse("no random numbers from the operating system"))
}

/// `firewatch registry passwd DEVICE [--generate]`.
fn passwd_command(cfg: &Config, device: &str, generate: bool) -> Result<ExitCode, ExitCode> {
    let registry_file = &cfg.registry.file;
    let mut registry = load_registry(cfg)?;
    let password = if generate {
        firewatch::auth::token::generate("")
            .map_err(|_| refuse("no random numbers from the operating system"))?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|_| refuse("cannot read the password from standard input"))?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if password.len() < 12 {
        return Err(refuse(
            "the password is too short: use at least 12 characters, or --generate",
        ));
    }
    let hash = firewatch::ingest::access::hash(&password, &salt()?);
    if !registry.set_mqtt_password_hash(device, Some(hash)) {
        return Err(refuse(format_args!(
            "device {device:?} is not in {}",
            registry_file.display()
        )));
    }
    let text = registry
        .to_toml()
        .map_err(|e| refuse(format_args!("cannot write the registry as TOML: {e}")))?;
    firewatch::registry::csv::write_atomically(registry_file, text.as_bytes()).map_err(|e| {
        refuse(format_args!(
            "cannot write {}: {e}",
            registry_file.display()
        ))
    })?;
    if generate {
        println!("{password}");
    }
    eprintln!(
        "Set the MQTT password of {device} in {}. The embedded broker uses it at once; for Mosquitto run `firewatch registry mosquitto-passwd` and reload it.",
        registry_file.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `firewatch registry mosquitto-passwd FILE`.
fn mosquitto_passwd_command(cfg: &Config, file: &Path) -> Result<ExitCode, ExitCode> {
    use firewatch::ingest::access;
    let registry = load_registry(cfg)?;
    let service = match (&cfg.mqtt.username, &cfg.mqtt.password) {
        (Some(user), Some(pw)) => Some(access::Service {
            user,
            hash: Some(access::hash(pw.expose(), &salt()?)),
        }),
        _ => None,
    };
    let (text, missing) = access::mosquitto_passwd(&registry, service.as_ref());
    if service.is_none() {
        eprintln!("Note: mqtt.username/mqtt.password are not set; firewatch's own account is not in the file.");
    }
    if !missing.is_empty() {
        eprintln!(
            "Note: {} device(s) have no MQTT password and cannot connect with one (set it with `firewatch registry passwd DEVICE`): {}",
            missing.len(),
            missing.join(", ")
        );
    }
    Ok(write_out(file, &text, "the password file"))
}

/// `firewatch registry mosquitto-acl FILE`.
fn mosquitto_acl_command(cfg: &Config, file: &Path) -> Result<ExitCode, ExitCode> {
    let registry = load_registry(cfg)?;
    let user = cfg.mqtt.username.as_deref().unwrap_or("firewatch");
    Ok(write_out(
        file,
        &firewatch::ingest::access::mosquitto_acl(&registry, user),
        "the ACL file",
    ))
}

/// `firewatch registry …`.
fn registry_command(cfg: &Config, action: RegistryCommand) -> ExitCode {
    let registry_file = &cfg.registry.file;
    match action {
        RegistryCommand::Passwd { device, generate } => {
            passwd_command(cfg, &device, generate).unwrap_or_else(|refused| refused)
        }
        RegistryCommand::MosquittoPasswd { file } => {
            mosquitto_passwd_command(cfg, &file).unwrap_or_else(|refused| refused)
        }
        RegistryCommand::MosquittoAcl { file } => {
            mosquitto_acl_command(cfg, &file).unwrap_or_else(|refused| refused)
        }
        RegistryCommand::Export { file } => {
            match firewatch::registry::csv::export_file(registry_file, &file) {
                Ok((b, d)) => {
                    println!(
                        "Exported {b} buildings and {d} devices from {} to {}.",
                        registry_file.display(),
                        file.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(problems) => {
                    eprintln!("firewatch: cannot export the registry:");
                    for p in problems {
                        eprintln!("  {p}");
                    }
                    ExitCode::from(2)
                }
            }
        }
        RegistryCommand::Import { file, replace } => {
            let rules = match firewatch::rules::Rules::load(&cfg.rules.file) {
                Ok(r) => r,
                Err(problems) => {
                    eprintln!("firewatch: the rules are needed to check the registry:");
                    for p in problems {
                        eprintln!("  {p}");
                    }
                    return ExitCode::from(2);
                }
            };
            let check = |r: &firewatch::registry::Registry| rules.check_registry(r);
            let mut progress = |n: usize| eprintln!("  {n} rows read…");
            match firewatch::registry::csv::import_file(
                registry_file,
                &file,
                replace,
                &check,
                &mut progress,
            ) {
                Ok(done) => {
                    let (b, d) = (done.changes.buildings, done.changes.devices);
                    println!(
                        "{} rows of {}: buildings {} added, {} changed, {} unchanged, {} removed; devices {} added, {} changed, {} unchanged, {} removed.",
                        done.rows,
                        file.display(),
                        b.added,
                        b.changed,
                        b.unchanged,
                        b.removed,
                        d.added,
                        d.changed,
                        d.unchanged,
                        d.removed
                    );
                    if done.written {
                        println!(
                            "Wrote {}; a running firewatch reloads it within registry.watch_s, or on POST /api/v1/registry/reload.",
                            registry_file.display()
                        );
                    } else {
                        println!(
                            "Nothing changed; {} left as it was.",
                            registry_file.display()
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(problems) => {
                    eprintln!(
                        "firewatch: {} problem(s) in {}; {} left as it was:",
                        problems.len(),
                        file.display(),
                        registry_file.display()
                    );
                    for p in problems {
                        eprintln!("  {p}");
                    }
                    ExitCode::from(2)
                }
            }
        }
    }
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
        Command::Registry { action } => registry_command(&cfg, action),
        Command::User { action } => {
            use firewatch::accounts::Action;
            accounts_command(
                &cfg,
                match action {
                    UserCommand::Add {
                        name,
                        role,
                        buildings,
                        display,
                        password_stdin,
                    } => Action::Add {
                        name,
                        role,
                        buildings,
                        display,
                        password_stdin,
                    },
                    UserCommand::Passwd {
                        name,
                        password_stdin,
                    } => Action::Passwd {
                        name,
                        password_stdin,
                    },
                    UserCommand::List => Action::List,
                    UserCommand::Disable { name } => Action::Disable {
                        name,
                        disabled: true,
                    },
                    UserCommand::Enable { name } => Action::Disable {
                        name,
                        disabled: false,
                    },
                },
            )
        }
        Command::Token { action } => accounts_command(
            &cfg,
            match action {
                TokenCommand::Add { user, label } => {
                    firewatch::accounts::Action::TokenAdd { user, label }
                }
                TokenCommand::List => firewatch::accounts::Action::TokenList,
                TokenCommand::Revoke { id } => firewatch::accounts::Action::TokenRevoke { id },
            },
        ),
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
