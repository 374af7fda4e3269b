//! The store's one seam to its engines: SQL in the common dialect of SQLite and PostgreSQL,
//! run through [`Db`] on either.
//!
//! A store function takes `&dyn Db` and writes its SQL once: placeholders `?1`, `?2`… (or bare
//! `?`), `ON CONFLICT … DO UPDATE`, `RETURNING`, `coalesce`, `count(*)`. SQLite runs it as it
//! is; [`Pg`] rewrites the placeholders to `$1`, `$2`… and binds each argument as the type
//! PostgreSQL inferred for its place (an integer argument for a `DOUBLE PRECISION` column is sent
//! as a float, a bool column gets `true`/`false`), and reads `BIGINT`, `INTEGER`, `DOUBLE
//! PRECISION`, `NUMERIC` (what `sum` of integers gives), `TEXT`, `BYTEA` and `BOOLEAN` columns
//! back as the same [`Value`]s SQLite gives. What the two engines cannot say alike is asked for
//! by [`Db::engine`].
//!
//! Rows come back whole (`Vec<Row>`): the store's queries are bounded (they page with `LIMIT`),
//! and a materialised row keeps the trait object-safe and the engines' lifetimes out of it.

use super::{Result, StoreError};
use std::cell::RefCell;
use std::collections::HashMap;

/// Which engine a [`Db`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// SQLite (the embedded store).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A value read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// An integer (and a PostgreSQL boolean, as 0 or 1).
    Int(i64),
    /// A float.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

/// An argument bound to a placeholder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arg<'a> {
    /// SQL NULL.
    Null,
    /// An integer.
    Int(i64),
    /// A float.
    Real(f64),
    /// Text.
    Text(&'a str),
    /// Bytes.
    Blob(&'a [u8]),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}
impl From<i32> for Arg<'_> {
    fn from(v: i32) -> Self {
        Arg::Int(v.into())
    }
}
impl From<u32> for Arg<'_> {
    fn from(v: u32) -> Self {
        Arg::Int(v.into())
    }
}
impl From<usize> for Arg<'_> {
    fn from(v: usize) -> Self {
        Arg::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<u64> for Arg<'_> {
    fn from(v: u64) -> Self {
        Arg::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Int(v.into())
    }
}
impl From<f64> for Arg<'_> {
    fn from(v: f64) -> Self {
        Arg::Real(v)
    }
}
impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(v)
    }
}
impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(v)
    }
}
impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(v: &'a [u8]) -> Self {
        Arg::Blob(v)
    }
}
impl<'a, T: Into<Arg<'a>>> From<Option<T>> for Arg<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Arg::Null, Into::into)
    }
}

/// The arguments of a statement: `args![a, b, c]`, each anything with `Into<Arg>`.
#[macro_export]
macro_rules! args {
    ($($e:expr),* $(,)?) => {
        &[$($crate::store::sql::Arg::from($e)),*][..]
    };
}
pub use crate::args;

/// A row as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<Value>);

impl Row {
    /// Column `i` as `T`.
    pub fn get<T: FromValue>(&self, i: usize) -> Result<T> {
        let v = self
            .0
            .get(i)
            .ok_or_else(|| type_error(i, "a column", "none"))?;
        T::from_value(v).map_err(|want| type_error(i, want, kind(v)))
    }
}

impl Row {
    /// Column `i`, text of a closed set parsed by its wire name (`FromStr`): an unknown name is
    /// a corrupt row, not a default.
    pub fn wire<T: std::str::FromStr>(&self, i: usize) -> Result<T> {
        let s: String = self.get(i)?;
        s.parse().map_err(|_| StoreError::Corrupt {
            what: "row",
            err: format!("column {i}: unknown value {s:?}"),
        })
    }

    /// [`Row::wire`] of a column that may be NULL.
    pub fn wire_opt<T: std::str::FromStr>(&self, i: usize) -> Result<Option<T>> {
        match self.0.get(i) {
            Some(Value::Null) => Ok(None),
            _ => self.wire(i).map(Some),
        }
    }

    /// Column `i`, JSON text read back as `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self, i: usize, what: &'static str) -> Result<T> {
        let s: String = self.get(i)?;
        serde_json::from_str(&s).map_err(|e| StoreError::Corrupt {
            what,
            err: e.to_string(),
        })
    }
}

impl<'a> From<&'a Value> for Arg<'a> {
    fn from(v: &'a Value) -> Self {
        match v {
            Value::Null => Arg::Null,
            Value::Int(i) => Arg::Int(*i),
            Value::Real(f) => Arg::Real(*f),
            Value::Text(s) => Arg::Text(s),
            Value::Blob(b) => Arg::Blob(b),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "NULL",
        Value::Int(_) => "an integer",
        Value::Real(_) => "a float",
        Value::Text(_) => "text",
        Value::Blob(_) => "bytes",
    }
}

fn type_error(i: usize, want: &str, got: &str) -> StoreError {
    StoreError::Corrupt {
        what: "row",
        err: format!("column {i}: want {want}, got {got}"),
    }
}

/// Conversion from a column's [`Value`]; `Err` names what was wanted.
pub trait FromValue: Sized {
    /// The value as `Self`, or what `Self` needed.
    fn from_value(v: &Value) -> std::result::Result<Self, &'static str>;
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> std::result::Result<Self, &'static str> {
        match v {
            Value::Int(i) => Ok(*i),
            _ => Err("an integer"),
        }
    }
}
impl FromValue for u32 {
    fn from_value(v: &Value) -> std::result::Result<Self, &'static str> {
        match v {
            Value::Int(i) => u32::try_from(*i).map_err(|_| "an integer of 0..2^32"),
            _ => Err("an integer"),
        }
    }
}
impl FromValue for usize {
    fn from_value(v: &Value) -> std::result::Result<Self, &'static str> {
        match v {
            Value::Int(i) => usize::try_from(*i).map_err(|_| "a non-negative integer"),
            _ => Err("an integer"),
        }
    }
}
impl FromValue for bool {
    fn from_value(v: &Value) -> std::result::Result<Self, &'static str> {
        match v {
            Value::Int(i) => Ok(*i != 0),
            _ => Err("an integer (boolean)"),
        }
    }
}
impl FromValue for f64 {
    fn from_value(v: &Value) -> std::result::Result<Self, &'static str> {
        match v {
            Value::Real(f) => Ok(*f),
            // SQLite keeps a whole REAL as an integer when asked through `sum` and friends.
            #[allow(clippy::cast_precision_loss)]
            Value::Int(i) => Ok(*i as f64),
            _ => Err("a number"),
        }
    }
}
impl FromValue for String {
    fn from_value(v: &Value) -> std::result::Result<Self, &'static str> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            _ => Err("text"),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> std::result::Result<Self, &'static str> {
        match v {
            Value::Blob(b) => Ok(b.clone()),
            Value::Text(s) => Ok(s.as_bytes().to_vec()),
            _ => Err("bytes"),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> std::result::Result<Self, &'static str> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// A connection (or a transaction on one) of either engine.
pub trait Db {
    /// Which engine this is.
    fn engine(&self) -> Engine;
    /// Runs a statement; the number of rows it changed.
    fn exec(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64>;
    /// Runs a query; every row.
    fn rows(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>>;
    /// Runs a query; its first row, if any.
    fn row(&self, sql: &str, args: &[Arg<'_>]) -> Result<Option<Row>> {
        Ok(self.rows(sql, args)?.into_iter().next())
    }
    /// Runs a query and hands its rows to `f` one by one (SQLite: as the statement steps, one
    /// row in memory at a time); returns how many. For long answers streamed out as they are
    /// read (the readings history).
    fn each(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        f: &mut dyn FnMut(&Row) -> Result<()>,
    ) -> Result<usize> {
        let rows = self.rows(sql, args)?;
        for r in &rows {
            f(r)?;
        }
        Ok(rows.len())
    }
    /// Runs statements without arguments, separated by `;` (schema).
    fn batch(&self, sql: &str) -> Result<()>;
}

impl dyn Db + '_ {
    /// The first column of the first row, if there is a row.
    pub fn one<T: FromValue>(&self, sql: &str, args: &[Arg<'_>]) -> Result<Option<T>> {
        self.row(sql, args)?.map(|r| r.get(0)).transpose()
    }
}

// --- SQLite -------------------------------------------------------------------------------

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Arg::Null => ValueRef::Null,
            Arg::Int(i) => ValueRef::Integer(*i),
            Arg::Real(f) => ValueRef::Real(*f),
            Arg::Text(s) => ValueRef::Text(s.as_bytes()),
            Arg::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

fn sqlite_rows(c: &rusqlite::Connection, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    sqlite_each(c, sql, args, &mut |r| {
        out.push(r.clone());
        Ok(())
    })?;
    Ok(out)
}

/// Steps the statement, reading each row into one reused [`Row`].
fn sqlite_each(
    c: &rusqlite::Connection,
    sql: &str,
    args: &[Arg<'_>],
    f: &mut dyn FnMut(&Row) -> Result<()>,
) -> Result<usize> {
    use rusqlite::types::ValueRef;
    let mut stmt = c.prepare_cached(sql)?;
    let n = stmt.column_count();
    let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
    let mut row = Row(Vec::with_capacity(n));
    let mut count = 0;
    while let Some(r) = rows.next()? {
        row.0.clear();
        for i in 0..n {
            row.0.push(match r.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(i) => Value::Int(i),
                ValueRef::Real(f) => Value::Real(f),
                ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            });
        }
        f(&row)?;
        count += 1;
    }
    Ok(count)
}

impl Db for rusqlite::Connection {
    fn engine(&self) -> Engine {
        Engine::Sqlite
    }
    fn exec(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        let n = self
            .prepare_cached(sql)?
            .execute(rusqlite::params_from_iter(args.iter()))?;
        Ok(n as u64)
    }
    fn rows(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>> {
        sqlite_rows(self, sql, args)
    }
    fn each(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        f: &mut dyn FnMut(&Row) -> Result<()>,
    ) -> Result<usize> {
        sqlite_each(self, sql, args, f)
    }
    fn batch(&self, sql: &str) -> Result<()> {
        Ok(self.execute_batch(sql)?)
    }
}

impl Db for rusqlite::Transaction<'_> {
    fn engine(&self) -> Engine {
        Engine::Sqlite
    }
    fn exec(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        Db::exec(&**self, sql, args)
    }
    fn rows(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>> {
        sqlite_rows(self, sql, args)
    }
    fn each(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        f: &mut dyn FnMut(&Row) -> Result<()>,
    ) -> Result<usize> {
        sqlite_each(self, sql, args, f)
    }
    fn batch(&self, sql: &str) -> Result<()> {
        Ok(self.execute_batch(sql)?)
    }
}

// --- PostgreSQL ---------------------------------------------------------------------------

/// SQL of the common dialect as PostgreSQL takes it: `?N` becomes `$N`, a bare `?` the next
/// number after the largest so far (SQLite's rule); quoted text, quoted names and comments are
/// left as they are.
pub fn to_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut next = 1u32;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == '\n' {
                        break;
                    }
                }
            }
            '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    digits.push(d);
                    chars.next();
                }
                let n = digits.parse().unwrap_or(next);
                next = next.max(n + 1);
                out.push('$');
                out.push_str(&n.to_string());
            }
            c => out.push(c),
        }
    }
    out
}

/// One PostgreSQL connection with its prepared statements; a transaction is `BEGIN` … `COMMIT`
/// on it ([`Pg::transaction`]).
pub struct Pg {
    client: RefCell<postgres::Client>,
    statements: RefCell<HashMap<String, postgres::Statement>>,
}

impl std::fmt::Debug for Pg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pg")
            .field("statements", &self.statements.borrow().len())
            .finish_non_exhaustive()
    }
}

impl Pg {
    /// Connects to `url` (`postgres://user:password@host:port/database`, or key=value form).
    pub fn connect(url: &str) -> Result<Pg> {
        let client = postgres::Client::connect(url, postgres::NoTls)?;
        Ok(Pg {
            client: RefCell::new(client),
            statements: RefCell::new(HashMap::new()),
        })
    }

    /// Runs `f` in a transaction: committed when it returns `Ok`, rolled back otherwise.
    pub fn transaction<T>(&self, f: impl FnOnce(&Pg) -> Result<T>) -> Result<T> {
        self.client.borrow_mut().batch_execute("BEGIN")?;
        match f(self) {
            Ok(v) => {
                self.client.borrow_mut().batch_execute("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                // A failed rollback leaves the connection unusable; the first error is the one
                // to report, and the next statement reports the connection's.
                let _ = self.client.borrow_mut().batch_execute("ROLLBACK");
                Err(e)
            }
        }
    }

    fn statement(&self, sql: &str) -> Result<postgres::Statement> {
        if let Some(s) = self.statements.borrow().get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.borrow_mut().prepare(&to_postgres(sql))?;
        self.statements
            .borrow_mut()
            .insert(sql.to_owned(), s.clone());
        Ok(s)
    }
}

/// An argument bound as the type PostgreSQL inferred for its place.
#[derive(Debug)]
struct PgArg<'a>(Arg<'a>);

impl postgres::types::ToSql for PgArg<'_> {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>>
    {
        use postgres::types::Type;
        let wrong = || -> Box<dyn std::error::Error + Sync + Send> {
            format!("cannot bind {:?} as {ty}", self.0).into()
        };
        match (self.0, ty) {
            (Arg::Null, _) => Ok(postgres::types::IsNull::Yes),
            (Arg::Int(i), &Type::INT8) => i.to_sql(ty, out),
            (Arg::Int(i), &Type::INT4) => i32::try_from(i).map_err(|_| wrong())?.to_sql(ty, out),
            (Arg::Int(i), &Type::INT2) => i16::try_from(i).map_err(|_| wrong())?.to_sql(ty, out),
            #[allow(clippy::cast_precision_loss)]
            (Arg::Int(i), &Type::FLOAT8) => (i as f64).to_sql(ty, out),
            (Arg::Int(i), &Type::BOOL) => (i != 0).to_sql(ty, out),
            (Arg::Int(i), &Type::TEXT | &Type::VARCHAR) => i.to_string().to_sql(ty, out),
            (Arg::Real(f), &Type::FLOAT8) => f.to_sql(ty, out),
            #[allow(clippy::cast_possible_truncation)]
            (Arg::Real(f), &Type::FLOAT4) => (f as f32).to_sql(ty, out),
            (Arg::Text(s), &Type::TEXT | &Type::VARCHAR | &Type::BPCHAR | &Type::NAME) => {
                s.to_sql(ty, out)
            }
            (Arg::Text(s), &Type::BYTEA) => s.as_bytes().to_sql(ty, out),
            (Arg::Blob(b), &Type::BYTEA) => b.to_sql(ty, out),
            _ => Err(wrong()),
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// A `NUMERIC` read as a float (what PostgreSQL's `sum` of integers gives).
struct Numeric(f64);

impl<'a> postgres::types::FromSql<'a> for Numeric {
    fn from_sql(
        _: &postgres::types::Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        // Binary NUMERIC: ndigits, weight, sign, dscale (i16 each), then base-10000 digits.
        let word =
            |i: usize| -> std::result::Result<i16, Box<dyn std::error::Error + Sync + Send>> {
                let b = raw.get(i * 2..i * 2 + 2).ok_or("short NUMERIC")?;
                Ok(i16::from_be_bytes([b[0], b[1]]))
            };
        let (n, weight, sign) = (word(0)?, word(1)?, word(2)?);
        if sign == -16_384 {
            return Ok(Numeric(f64::NAN)); // 0xC000: NaN
        }
        let mut v = 0f64;
        for k in 0..usize::try_from(n).unwrap_or(0) {
            let d = f64::from(word(4 + k)?);
            let exp = i32::from(weight) - i32::try_from(k).unwrap_or(i32::MAX);
            v += d * 10_000f64.powi(exp);
        }
        Ok(Numeric(if sign == 0x4000 { -v } else { v }))
    }

    fn accepts(ty: &postgres::types::Type) -> bool {
        *ty == postgres::types::Type::NUMERIC
    }
}

fn pg_value(row: &postgres::Row, i: usize) -> Result<Value> {
    use postgres::types::Type;
    let ty = row.columns()[i].type_().clone();
    let v = match ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Value::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)?
            .map(|v| Value::Int(v.into())),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)?
            .map(|v| Value::Int(v.into())),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(i)?
            .map(|v| Value::Int(v.into())),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(i)?.map(Value::Real),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(i)?
            .map(|v| Value::Real(v.into())),
        Type::NUMERIC => {
            // Integral sums stay integers, as SQLite gives them.
            row.try_get::<_, Option<Numeric>>(i)?.map(|Numeric(f)| {
                #[allow(clippy::cast_possible_truncation)]
                let whole = f as i64;
                #[allow(clippy::cast_precision_loss)]
                if f.fract() == 0.0 && (whole as f64) == f {
                    Value::Int(whole)
                } else {
                    Value::Real(f)
                }
            })
        }
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            row.try_get::<_, Option<String>>(i)?.map(Value::Text)
        }
        Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob),
        other => {
            return Err(StoreError::Corrupt {
                what: "row",
                err: format!("column {i}: PostgreSQL type {other} is not one the store reads"),
            })
        }
    };
    Ok(v.unwrap_or(Value::Null))
}

impl Db for Pg {
    fn engine(&self) -> Engine {
        Engine::Postgres
    }
    fn exec(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        let stmt = self.statement(sql)?;
        let bound: Vec<PgArg<'_>> = args.iter().map(|a| PgArg(*a)).collect();
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = bound
            .iter()
            .map(|a| a as &(dyn postgres::types::ToSql + Sync))
            .collect();
        Ok(self.client.borrow_mut().execute(&stmt, &refs)?)
    }
    fn rows(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>> {
        let stmt = self.statement(sql)?;
        let bound: Vec<PgArg<'_>> = args.iter().map(|a| PgArg(*a)).collect();
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = bound
            .iter()
            .map(|a| a as &(dyn postgres::types::ToSql + Sync))
            .collect();
        let rows = self.client.borrow_mut().query(&stmt, &refs)?;
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| pg_value(r, i))
                    .collect::<Result<_>>()
                    .map(Row)
            })
            .collect()
    }
    fn batch(&self, sql: &str) -> Result<()> {
        Ok(self.client.borrow_mut().batch_execute(sql)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_postgres_numbers_outside_quotes() {
        assert_eq!(
            to_postgres("SELECT a FROM t WHERE b = ?1 AND c = ?2 OR ?1 IS NULL"),
            "SELECT a FROM t WHERE b = $1 AND c = $2 OR $1 IS NULL"
        );
        assert_eq!(to_postgres("VALUES (?, ?, ?)"), "VALUES ($1, $2, $3)");
        assert_eq!(to_postgres("VALUES (?3, ?)"), "VALUES ($3, $4)");
        assert_eq!(
            to_postgres("SELECT '?1', \"a?\" -- what?\n FROM t WHERE x = ?"),
            "SELECT '?1', \"a?\" -- what?\n FROM t WHERE x = $1"
        );
    }

    #[test]
    fn sqlite_rows_come_back_as_values() -> Result<()> {
        let c = rusqlite::Connection::open_in_memory()?;
        let db: &dyn Db = &c;
        db.batch("CREATE TABLE t (i INTEGER, f REAL, s TEXT, b BLOB)")?;
        let n = db.exec(
            "INSERT INTO t VALUES (?1, ?2, ?3, ?4), (?, NULL, NULL, NULL)",
            args![7i64, 2.5, "水压", &b"\x00\x01"[..], Some(8i64)],
        )?;
        assert_eq!(n, 2);
        let rows = db.rows("SELECT i, f, s, b FROM t ORDER BY i", args![])?;
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].get::<i64>(0)?, 7);
        assert_eq!(rows[0].get::<f64>(1)?, 2.5);
        assert_eq!(rows[0].get::<String>(2)?, "水压");
        assert_eq!(rows[0].get::<Vec<u8>>(3)?, vec![0, 1]);
        assert_eq!(rows[1].get::<Option<f64>>(1)?, None);
        assert_eq!(db.one::<i64>("SELECT sum(i) FROM t", args![])?, Some(15));
        let err = rows[0].get::<i64>(2).unwrap_err().to_string();
        assert!(err.contains("column 2: want an integer, got text"), "{err}");
        Ok(())
    }
}
