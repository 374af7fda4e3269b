//! The PostgreSQL store: the embedded store's tables in a PostgreSQL database, for firewatch
//! instances that share their state (docs/scaling.md).
//!
//! The store functions are the same (they take [`Db`]); this module opens the connection and
//! brings the schema up to date. Migrations are numbered SQL files (`src/store/pg/NNNN_*.sql`),
//! applied in order, each once, each in its own transaction, and recorded in
//! `schema_migrations`; an advisory lock makes instances that start together take turns. A
//! database whose schema is newer than this firewatch knows is refused: an older instance must
//! not write to tables it does not understand.

use super::sql::{Db, Pg};
use super::{Result, StoreError};
use crate::args;

/// One schema migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Its number: applied in this order, each once.
    pub version: i64,
    /// What it does, in a word or two.
    pub name: &'static str,
    /// The statements.
    pub sql: &'static str,
}

/// Every migration, oldest first. Add to the end; never change one that has shipped.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "tables",
    sql: include_str!("pg/0001_tables.sql"),
}];

/// Key of the advisory lock held while migrating ("firewatch" in ASCII, as a number).
const MIGRATION_LOCK: i64 = 0x6669_7265_7761_7463;

/// Connects to `url` and migrates its schema to the newest this firewatch knows.
pub fn open(url: &str) -> Result<Pg> {
    let pg = Pg::connect(url)?;
    migrate(&pg)?;
    Ok(pg)
}

/// Applies the migrations `pg` lacks; returns the versions applied now.
pub fn migrate(pg: &Pg) -> Result<Vec<i64>> {
    check_collation(pg)?;
    pg.batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at BIGINT NOT NULL
        )",
    )?;
    let mut applied = Vec::new();
    for m in MIGRATIONS {
        let done = pg.transaction(|db| {
            db.exec("SELECT pg_advisory_xact_lock(?1)", args![MIGRATION_LOCK])?;
            let newest: i64 = (db as &dyn Db)
                .one(
                    "SELECT coalesce(max(version), 0) FROM schema_migrations",
                    args![],
                )?
                .unwrap_or(0);
            let known = MIGRATIONS.last().map_or(0, |m| m.version);
            if newest > known {
                return Err(StoreError::Schema(format!(
                    "the database's schema is version {newest}, newer than this firewatch knows \
                     ({known}): upgrade firewatch"
                )));
            }
            if newest >= m.version {
                return Ok(false);
            }
            db.batch(m.sql)?;
            db.exec(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                args![m.version, m.name, crate::clock::wall_ms()],
            )?;
            Ok(true)
        })?;
        if done {
            tracing::info!(
                version = m.version,
                name = m.name,
                "PostgreSQL schema migrated"
            );
            applied.push(m.version);
        }
    }
    Ok(applied)
}

/// The schema version of the database (0: none applied).
pub fn version(pg: &Pg) -> Result<i64> {
    Ok((pg as &dyn Db)
        .one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            args![],
        )?
        .unwrap_or(0))
}

/// Text sorts byte-wise in the embedded store (SQLite's BINARY); a PostgreSQL database with a
/// language collation (`en_US.UTF-8`, `zh_CN.UTF-8`) would list users, metrics and channels in
/// another order, so it is refused with what to do instead.
fn check_collation(pg: &Pg) -> Result<()> {
    let collation: String = (pg as &dyn Db)
        .one(
            "SELECT datcollate::text FROM pg_database WHERE datname = current_database()",
            args![],
        )?
        .unwrap_or_default();
    if matches!(collation.as_str(), "C" | "POSIX" | "C.UTF-8" | "C.utf8") {
        return Ok(());
    }
    Err(StoreError::Schema(format!(
        "the database's collation is {collation:?}; firewatch needs \"C\" or \"C.UTF-8\" (text \
         sorted byte-wise, as in the embedded store): CREATE DATABASE firewatch TEMPLATE template0 \
         LOCALE 'C.UTF-8' ENCODING 'UTF8'"
    )))
}
