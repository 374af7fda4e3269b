//! `firewatch user …` and `firewatch token …` on the command line: accounts and API tokens in
//! the store, safe while the service runs (each is one short write transaction).
//!
//! A password is read from standard input (`--password-stdin`, one line) or generated and
//! printed once; a token is printed once, when it is made. Neither is stored: the store keeps
//! an Argon2id hash of the password and a SHA-256 digest of the token.

use crate::auth::{check_name, password, token, Role, User};
use crate::config::Config;
use crate::store;
use anyhow::{anyhow, bail, Context};
use std::collections::BTreeSet;
use std::io::BufRead as _;

/// What to do.
#[derive(Debug, Clone)]
pub enum Action {
    /// Add a user.
    Add {
        /// Login name.
        name: String,
        /// Role.
        role: Role,
        /// A manager's buildings.
        buildings: Vec<String>,
        /// Display name (defaults to the login name).
        display: Option<String>,
        /// Read the password from standard input instead of generating one.
        password_stdin: bool,
    },
    /// Set a new password (ends the user's sessions).
    Passwd {
        /// Login name.
        name: String,
        /// Read the password from standard input instead of generating one.
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Disable (`true`) or enable a user.
    Disable {
        /// Login name.
        name: String,
        /// Disable or enable.
        disabled: bool,
    },
    /// Make an API token acting as a user.
    TokenAdd {
        /// The user it acts as.
        user: String,
        /// What it is for.
        label: String,
    },
    /// List API tokens.
    TokenList,
    /// Revoke an API token.
    TokenRevoke {
        /// Its id (from `token list`).
        id: i64,
    },
}

fn new_password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        let pw = line.trim_end_matches(['\r', '\n']).to_owned();
        password::check(&pw)?;
        Ok((pw, false))
    } else {
        Ok((token::generate("")?, true))
    }
}

/// Carries out `action` on the store of `cfg`; returns what to print.
pub fn run(cfg: &Config, action: Action, now: i64) -> anyhow::Result<String> {
    let dir = &cfg.storage.dir;
    let mut conn = store::open_writer(dir, &cfg.storage.synchronous)
        .with_context(|| format!("opening the store in {}", dir.display()))?;
    let audited = audit_of(&action);
    let out = apply(&mut conn, dir, action, now)?;
    if let Some((what, target)) = audited {
        store::auth::insert_audit(
            &conn,
            &store::auth::AuditEntry {
                id: 0,
                at: now,
                actor: std::env::var("USER").unwrap_or_else(|_| "cli".to_owned()),
                via: "cli".to_owned(),
                role: None,
                action: what.to_owned(),
                target,
                status: 0,
                addr: None,
            },
        )?;
    }
    Ok(out)
}

/// The audit trail's action and target of a command that changes something.
fn audit_of(action: &Action) -> Option<(&'static str, String)> {
    match action {
        Action::Add { name, .. } => Some(("user add", name.clone())),
        Action::Passwd { name, .. } => Some(("user passwd", name.clone())),
        Action::Disable {
            name,
            disabled: true,
        } => Some(("user disable", name.clone())),
        Action::Disable { name, .. } => Some(("user enable", name.clone())),
        Action::TokenAdd { user, .. } => Some(("token add", user.clone())),
        Action::TokenRevoke { id } => Some(("token revoke", id.to_string())),
        Action::List | Action::TokenList => None,
    }
}

fn apply(
    conn: &mut rusqlite::Connection,
    dir: &std::path::Path,
    action: Action,
    now: i64,
) -> anyhow::Result<String> {
    match action {
        Action::Add {
            name,
            role,
            buildings,
            display,
            password_stdin,
        } => {
            check_name(&name).map_err(|e| anyhow!(e))?;
            if role == Role::Manager && buildings.is_empty() {
                bail!("a manager needs at least one --building");
            }
            if role != Role::Manager && !buildings.is_empty() {
                bail!("only managers are limited to buildings (operators and admins see all)");
            }
            let (pw, generated) = new_password(password_stdin)?;
            let user = User {
                display: display.unwrap_or_else(|| name.clone()),
                name,
                role,
                buildings: buildings.into_iter().collect::<BTreeSet<_>>(),
                disabled: false,
                created_at: now,
            };
            if !store::auth::insert_user(conn, &user, &password::hash(&pw)?)? {
                bail!("there is a user {:?} already", user.name);
            }
            let mut out = format!("Added {} ({}, {}).\n", user.name, user.display, user.role);
            if generated {
                out.push_str(&format!("Password (shown once): {pw}\n"));
            }
            Ok(out)
        }
        Action::Passwd {
            name,
            password_stdin,
        } => {
            let (pw, generated) = new_password(password_stdin)?;
            if !store::auth::set_password(conn, &name, &password::hash(&pw)?)? {
                bail!("no user {name:?}");
            }
            let mut out = format!("New password for {name}; its sessions have ended.\n");
            if generated {
                out.push_str(&format!("Password (shown once): {pw}\n"));
            }
            let initial = dir.join(crate::auth::INITIAL_PASSWORD_FILE);
            if name == "admin" && initial.exists() {
                std::fs::remove_file(&initial)
                    .with_context(|| format!("removing {}", initial.display()))?;
                out.push_str(&format!("Removed {}.\n", initial.display()));
            }
            Ok(out)
        }
        Action::List => {
            let mut out = String::from("name\trole\tdisabled\tbuildings\tdisplay\n");
            for u in store::auth::users(conn)? {
                let b: Vec<&str> = u.buildings.iter().map(String::as_str).collect();
                out.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}\n",
                    u.name,
                    u.role,
                    if u.disabled { "yes" } else { "no" },
                    if b.is_empty() {
                        "all".to_owned()
                    } else {
                        b.join(",")
                    },
                    u.display
                ));
            }
            Ok(out)
        }
        Action::Disable { name, disabled } => {
            if !store::auth::set_disabled(conn, &name, disabled)? {
                bail!("no user {name:?}");
            }
            Ok(if disabled {
                format!("Disabled {name}: its sessions and tokens stop working.\n")
            } else {
                format!("Enabled {name}.\n")
            })
        }
        Action::TokenAdd { user, label } => {
            if store::auth::user(conn, &user)?.is_none() {
                bail!("no user {user:?}");
            }
            let label = label.trim();
            if label.is_empty() || label.len() > 200 {
                bail!("--label: say what the token is for (at most 200 bytes)");
            }
            let t = token::generate(token::API)?;
            let id = store::auth::insert_token(conn, &token::digest(&t), label, &user, now)?;
            Ok(format!(
                "Token {id} for {user} ({label}), shown once:\n{t}\nSend it as `Authorization: Bearer {t}`.\n"
            ))
        }
        Action::TokenList => {
            let mut out = String::from("id\tuser\tlabel\tcreated\trevoked\n");
            for t in store::auth::tokens(conn)? {
                out.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}\n",
                    t.id,
                    t.user,
                    t.label,
                    crate::model::rfc3339(t.created_at),
                    t.revoked_at.map_or("-".to_owned(), crate::model::rfc3339)
                ));
            }
            Ok(out)
        }
        Action::TokenRevoke { id } => {
            if !store::auth::revoke_token(conn, id, now)? {
                bail!("no unrevoked token {id}");
            }
            Ok(format!("Revoked token {id}.\n"))
        }
    }
}
