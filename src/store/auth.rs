//! Accounts: tables `users`, `sessions` and `api_tokens`, and the audit trail (`audit`): every
//! write through the API and the command line, with who made it.
//!
//! Like duty overrides (`store::duty`), these rows are written through a small connection of
//! their own ([`super::duty::open_writer`]), not by the pipeline thread: a login, a logout or a
//! new user is one short transaction, a few times a shift, serialised with the pipeline's group
//! commits by SQLite's write lock. Sessions and tokens are stored as the SHA-256 digest of the
//! secret the client holds (`auth::token::digest`), passwords as Argon2id PHC strings.

use super::sql::{Db, Row};
use super::{Result, StoreError};
use crate::args;
use crate::auth::{Role, User};
use rusqlite::Connection;
use std::collections::BTreeSet;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS users (
    name       TEXT PRIMARY KEY,
    display    TEXT NOT NULL,
    role       TEXT NOT NULL,
    buildings  TEXT NOT NULL DEFAULT '[]',
    password   TEXT NOT NULL,
    disabled   INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    digest     TEXT PRIMARY KEY,
    user       TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user);
CREATE TABLE IF NOT EXISTS api_tokens (
    id         INTEGER PRIMARY KEY,
    digest     TEXT NOT NULL UNIQUE,
    label      TEXT NOT NULL,
    user       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS audit (
    id     INTEGER PRIMARY KEY,
    at     INTEGER NOT NULL,
    actor  TEXT NOT NULL,
    via    TEXT NOT NULL,
    role   TEXT,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    status INTEGER NOT NULL,
    addr   TEXT
);
CREATE INDEX IF NOT EXISTS audit_actor ON audit (actor, id);
"#;

/// Creates the tables (at start, by the store's writer).
pub fn create(c: &Connection) -> Result<()> {
    c.execute_batch(SCHEMA)?;
    Ok(())
}

const USER_COLUMNS: &str = "name, display, role, buildings, disabled, created_at";

fn user_row(r: &Row) -> Result<(User, String, String)> {
    Ok((
        User {
            name: r.get(0)?,
            display: r.get(1)?,
            role: Role::Operator, // replaced in `user_of`
            buildings: BTreeSet::new(),
            disabled: r.get(4)?,
            created_at: r.get(5)?,
        },
        r.get(2)?,
        r.get(3)?,
    ))
}

fn user_of((mut u, role, buildings): (User, String, String)) -> Result<User> {
    u.role = role.parse().map_err(|err| StoreError::Corrupt {
        what: "users.role",
        err,
    })?;
    u.buildings = serde_json::from_str(&buildings).map_err(|e| StoreError::Corrupt {
        what: "users.buildings",
        err: e.to_string(),
    })?;
    Ok(u)
}

/// The id an `INSERT … RETURNING id` gave back.
fn returned_id(id: Option<i64>, what: &'static str) -> Result<i64> {
    id.ok_or(StoreError::Corrupt {
        what,
        err: "no id returned".into(),
    })
}

/// Adds a user with a password hash; `false` when the name is taken.
pub fn insert_user(c: &dyn Db, u: &User, password_phc: &str) -> Result<bool> {
    let buildings = serde_json::to_string(&u.buildings).map_err(|e| StoreError::Corrupt {
        what: "users.buildings",
        err: e.to_string(),
    })?;
    let n = c.exec(
        "INSERT INTO users (name, display, role, buildings, password, disabled, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (name) DO NOTHING",
        args![
            &u.name,
            &u.display,
            u.role.as_str(),
            &buildings,
            password_phc,
            u.disabled,
            u.created_at
        ],
    )?;
    Ok(n == 1)
}

/// A user and its password hash.
pub fn user_with_password(c: &dyn Db, name: &str) -> Result<Option<(User, String)>> {
    let Some(r) = c.row(
        &format!("SELECT {USER_COLUMNS}, password FROM users WHERE name = ?1"),
        args![name],
    )?
    else {
        return Ok(None);
    };
    let (u, phc) = (user_row(&r)?, r.get::<String>(6)?);
    Ok(Some((user_of(u)?, phc)))
}

/// A user.
pub fn user(c: &dyn Db, name: &str) -> Result<Option<User>> {
    Ok(user_with_password(c, name)?.map(|(u, _)| u))
}

/// Every user, by name.
pub fn users(c: &dyn Db) -> Result<Vec<User>> {
    c.rows(
        &format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"),
        args![],
    )?
    .iter()
    .map(|r| user_of(user_row(r)?))
    .collect()
}

/// How many users there are.
pub fn count_users(c: &dyn Db) -> Result<u64> {
    let n = c
        .one::<i64>("SELECT count(*) FROM users", args![])?
        .unwrap_or(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Sets a user's password hash and ends its sessions; `false` when there is no such user.
pub fn set_password(c: &mut Connection, name: &str, password_phc: &str) -> Result<bool> {
    let tx = c.transaction()?;
    let changed = set_password_in(&tx, name, password_phc)?;
    tx.commit()?;
    Ok(changed)
}

/// [`set_password`] in a transaction the caller holds.
pub fn set_password_in(tx: &dyn Db, name: &str, password_phc: &str) -> Result<bool> {
    let n = tx.exec(
        "UPDATE users SET password = ?2 WHERE name = ?1",
        args![name, password_phc],
    )?;
    tx.exec(r#"DELETE FROM sessions WHERE "user" = ?1"#, args![name])?;
    Ok(n == 1)
}

/// Enables or disables a user; disabling ends its sessions. `false` when there is no such user.
pub fn set_disabled(c: &mut Connection, name: &str, disabled: bool) -> Result<bool> {
    let tx = c.transaction()?;
    let changed = set_disabled_in(&tx, name, disabled)?;
    tx.commit()?;
    Ok(changed)
}

/// [`set_disabled`] in a transaction the caller holds.
pub fn set_disabled_in(tx: &dyn Db, name: &str, disabled: bool) -> Result<bool> {
    let n = tx.exec(
        "UPDATE users SET disabled = ?2 WHERE name = ?1",
        args![name, disabled],
    )?;
    if disabled {
        tx.exec(r#"DELETE FROM sessions WHERE "user" = ?1"#, args![name])?;
    }
    Ok(n == 1)
}

/// Stores a new session.
pub fn insert_session(
    c: &dyn Db,
    digest: &str,
    user: &str,
    csrf: &str,
    created_at: i64,
    expires_at: i64,
) -> Result<()> {
    c.exec(
        r#"INSERT INTO sessions (digest, "user", csrf, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)"#,
        args![digest, user, csrf, created_at, expires_at],
    )?;
    Ok(())
}

/// The enabled user of an unexpired session, with the session's CSRF token.
pub fn session(c: &dyn Db, digest: &str, now: i64) -> Result<Option<(User, String)>> {
    let Some(r) = c.row(
        r#"SELECT u.name, u.display, u.role, u.buildings, u.disabled, u.created_at, s.csrf
             FROM sessions s JOIN users u ON u.name = s."user"
             WHERE s.digest = ?1 AND s.expires_at > ?2 AND u.disabled = 0"#,
        args![digest, now],
    )?
    else {
        return Ok(None);
    };
    let (u, csrf) = (user_row(&r)?, r.get::<String>(6)?);
    Ok(Some((user_of(u)?, csrf)))
}

/// Ends a session; `false` when there was none.
pub fn delete_session(c: &dyn Db, digest: &str) -> Result<bool> {
    Ok(c.exec("DELETE FROM sessions WHERE digest = ?1", args![digest])? == 1)
}

/// Deletes expired sessions; returns how many.
pub fn prune_sessions(c: &dyn Db, now: i64) -> Result<usize> {
    let n = c.exec("DELETE FROM sessions WHERE expires_at <= ?1", args![now])?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// An API token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiToken {
    /// Row id.
    pub id: i64,
    /// What it is for, e.g. `city-platform`.
    pub label: String,
    /// The user it acts as.
    pub user: String,
    /// Created, ms since the epoch.
    pub created_at: i64,
    /// Revoked, ms since the epoch.
    pub revoked_at: Option<i64>,
}

/// Stores a new API token for `user`; returns its id.
pub fn insert_token(
    c: &dyn Db,
    digest: &str,
    label: &str,
    user: &str,
    created_at: i64,
) -> Result<i64> {
    let id = c.one(
        r#"INSERT INTO api_tokens (digest, label, "user", created_at) VALUES (?1, ?2, ?3, ?4)
         RETURNING id"#,
        args![digest, label, user, created_at],
    )?;
    returned_id(id, "api_tokens.id")
}

/// The enabled user an unrevoked API token acts as.
pub fn token_user(c: &dyn Db, digest: &str) -> Result<Option<User>> {
    c.row(
        r#"SELECT u.name, u.display, u.role, u.buildings, u.disabled, u.created_at
             FROM api_tokens t JOIN users u ON u.name = t."user"
             WHERE t.digest = ?1 AND t.revoked_at IS NULL AND u.disabled = 0"#,
        args![digest],
    )?
    .map(|r| user_of(user_row(&r)?))
    .transpose()
}

/// Every API token, newest first.
pub fn tokens(c: &dyn Db) -> Result<Vec<ApiToken>> {
    c.rows(
        r#"SELECT id, label, "user", created_at, revoked_at FROM api_tokens ORDER BY id DESC"#,
        args![],
    )?
    .iter()
    .map(|r| {
        Ok(ApiToken {
            id: r.get(0)?,
            label: r.get(1)?,
            user: r.get(2)?,
            created_at: r.get(3)?,
            revoked_at: r.get(4)?,
        })
    })
    .collect()
}

/// Revokes a token; `false` when there is no such unrevoked token.
pub fn revoke_token(c: &dyn Db, id: i64, at: i64) -> Result<bool> {
    Ok(c.exec(
        "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        args![id, at],
    )? == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::token;

    fn conn() -> Connection {
        let c = Connection::open_in_memory().expect("open");
        create(&c).expect("schema");
        c
    }

    fn manager(name: &str) -> User {
        User {
            name: name.to_owned(),
            display: "王芳".to_owned(),
            role: Role::Manager,
            buildings: ["b-001".to_owned(), "b-002".to_owned()].into(),
            disabled: false,
            created_at: 1_000,
        }
    }

    #[test]
    fn users_round_trip_and_names_are_unique() {
        let c = conn();
        let u = manager("wang");
        assert!(insert_user(&c, &u, "$argon2id$x").expect("insert"));
        assert!(!insert_user(&c, &u, "$argon2id$y").expect("second insert"));
        assert_eq!(user(&c, "wang").expect("read"), Some(u.clone()));
        let (_, phc) = user_with_password(&c, "wang")
            .expect("read")
            .expect("there");
        assert_eq!(phc, "$argon2id$x", "the first insert's hash stays");
        assert_eq!(users(&c).expect("list"), [u]);
        assert_eq!(count_users(&c).expect("count"), 1);
        assert_eq!(user(&c, "li").expect("read"), None);
    }

    #[test]
    fn sessions_expire_and_end_with_the_user() {
        let mut c = conn();
        insert_user(&c, &manager("wang"), "h").expect("insert");
        let d = token::digest("fws_secret");
        insert_session(&c, &d, "wang", "csrf-1", 1_000, 2_000).expect("session");
        let (u, csrf) = session(&c, &d, 1_999).expect("read").expect("live");
        assert_eq!((u.name.as_str(), csrf.as_str()), ("wang", "csrf-1"));
        assert_eq!(session(&c, &d, 2_000).expect("read"), None, "expired");
        assert_eq!(session(&c, "other", 1_500).expect("read"), None);
        // Disabling the user ends the session at once.
        assert!(set_disabled(&mut c, "wang", true).expect("disable"));
        assert_eq!(session(&c, &d, 1_500).expect("read"), None);
        // A new password ends sessions too.
        set_disabled(&mut c, "wang", false).expect("enable");
        insert_session(&c, &d, "wang", "csrf-2", 1_000, 9_000).expect("session");
        assert!(set_password(&mut c, "wang", "h2").expect("password"));
        assert_eq!(session(&c, &d, 1_500).expect("read"), None);
        insert_session(&c, &d, "wang", "csrf-3", 1_000, 3_000).expect("session");
        assert_eq!(prune_sessions(&c, 3_000).expect("prune"), 1);
        assert!(!delete_session(&c, &d).expect("delete"));
    }

    #[test]
    fn tokens_act_as_their_user_until_revoked() {
        let mut c = conn();
        insert_user(&c, &manager("wang"), "h").expect("insert");
        let d = token::digest("fwt_secret");
        let id = insert_token(&c, &d, "city", "wang", 5).expect("token");
        assert_eq!(
            token_user(&c, &d).expect("read").map(|u| u.name),
            Some("wang".to_owned())
        );
        set_disabled(&mut c, "wang", true).expect("disable");
        assert_eq!(token_user(&c, &d).expect("read"), None, "user disabled");
        set_disabled(&mut c, "wang", false).expect("enable");
        assert!(revoke_token(&c, id, 9).expect("revoke"));
        assert!(!revoke_token(&c, id, 10).expect("again"));
        assert_eq!(token_user(&c, &d).expect("read"), None, "revoked");
        let listed = tokens(&c).expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].revoked_at, Some(9));
    }
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    /// Its id (grows).
    pub id: i64,
    /// When, ms.
    pub at: i64,
    /// Who: a user name, `bootstrap`, or the name a login tried.
    pub actor: String,
    /// How: `session`, `token`, `bootstrap_token`, `login` or `cli`.
    pub via: String,
    /// The actor's role, when known.
    pub role: Option<String>,
    /// What: an HTTP method and route (`POST /api/v1/alerts/{id}/ack`), or a command.
    pub action: String,
    /// On what: the request path, or the command's object.
    pub target: String,
    /// The HTTP status of the answer (the command line: 0 done).
    pub status: i64,
    /// The client's address, when known.
    pub addr: Option<String>,
}

/// Appends an entry to the audit trail (its `id` is ignored).
pub fn insert_audit(c: &dyn Db, e: &AuditEntry) -> Result<i64> {
    let id = c.one(
        "INSERT INTO audit (at, actor, via, role, action, target, status, addr) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
        args![
            e.at,
            &e.actor,
            &e.via,
            e.role.as_deref(),
            &e.action,
            &e.target,
            e.status,
            e.addr.as_deref()
        ],
    )?;
    returned_id(id, "audit.id")
}

/// Audit entries, newest first: of one actor (or all), with an id below `before` (or all).
pub fn audit(
    c: &dyn Db,
    actor: Option<&str>,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<AuditEntry>> {
    c.rows(
        "SELECT id, at, actor, via, role, action, target, status, addr FROM audit \
         WHERE (CAST(?1 AS TEXT) IS NULL OR actor = ?1) AND (CAST(?2 AS BIGINT) IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3",
        args![actor, before, limit],
    )?
    .iter()
    .map(|r| {
        Ok(AuditEntry {
            id: r.get(0)?,
            at: r.get(1)?,
            actor: r.get(2)?,
            via: r.get(3)?,
            role: r.get(4)?,
            action: r.get(5)?,
            target: r.get(6)?,
            status: r.get(7)?,
            addr: r.get(8)?,
        })
    })
    .collect()
}
