//! The catalog in PostgreSQL (`[store] catalog = "postgres"`): one database that several
//! sluice nodes share, through tokio-postgres and a deadpool pool on a runtime of its own (the
//! catalog is synchronous and may be called from inside the daemon's runtime, as the Qdrant
//! client is).
//!
//! Guarantees as SQLite gives them: a write is one transaction, and writes never interleave,
//! because each takes the catalog's advisory lock first (`pg_advisory_xact_lock`, released by
//! the commit or rollback, and by PostgreSQL itself when a node dies mid-write). A read runs in a
//! `REPEATABLE READ READ ONLY` transaction, so every statement of it sees one snapshot.
//! Text columns sort by code point (`COLLATE "C"`), as SQLite's do, so every ordered result,
//! and so every export, is the same on both engines.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use futures_util::TryStreamExt;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{NoTls, Row as PgRow};

use super::sql::{Database, Dialect, Row, Sql, Value};
use crate::error::{Result, StoreError};

/// Schema versions, each applied once, in order, in one transaction (the `meta` table records
/// the version reached). Version 5 is where the SQLite catalog's history had arrived when
/// PostgreSQL came: both engines number their schemas alike from there on.
const MIGRATIONS: &[(i64, &str)] = &[
    (5, include_str!("postgres/0005_catalog.sql")),
    (6, include_str!("postgres/0006_cluster.sql")),
    (7, include_str!("postgres/0007_enrich.sql")),
];

/// Rows a streamed query may hold between the database and the code reading them.
const STREAM_ROWS: usize = 256;

/// Where and how to reach the database.
#[derive(Clone, Debug)]
pub struct PostgresSettings {
    /// A connection string (`postgresql://user@host:port/db` or `host=… user=…`).
    pub url: String,
    /// The schema the catalog's tables live in (created if missing): several deployments, or
    /// the tests, can share one database.
    pub schema: String,
    pub pool_size: usize,
    pub connect_timeout: Duration,
}

/// A pool of connections to the catalog's database.
pub struct PostgresDatabase {
    pool: Pool,
    runtime: tokio::runtime::Runtime,
    /// The advisory lock every write of this catalog (this schema) takes first.
    write_lock: i64,
    files_dir: PathBuf,
    schema: String,
    /// The database, as errors name it (no password).
    describe: String,
}

impl PostgresDatabase {
    /// Connects, creates the schema if missing and migrates it. `files_dir` is where this node
    /// keeps the files that go with the catalog (rotated audit segments).
    pub fn open(settings: &PostgresSettings, files_dir: &Path) -> Result<Self> {
        if !valid_schema_name(&settings.schema) {
            return Err(StoreError::Invalid(format!(
                "store.postgres.schema must be 1-63 of a-z, 0-9 and '_', starting with a letter; got {:?}",
                settings.schema
            )));
        }
        let mut config = tokio_postgres::Config::from_str(&settings.url)
            .map_err(|err| StoreError::Invalid(format!("the PostgreSQL connection string does not parse: {err}")))?;
        config.connect_timeout(settings.connect_timeout);
        config.application_name("sluice");
        // Every connection works in the catalog's schema, and never waits on a lock forever.
        config.options(format!("-c search_path={} -c lock_timeout=60000", settings.schema));
        let describe = describe(&config, &settings.schema);
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("postgres-client")
            .enable_all()
            .build()
            .map_err(|source| StoreError::Io { path: "postgres-client runtime".into(), source })?;
        let pool = {
            let _entered = runtime.enter();
            Pool::builder(manager)
                .max_size(settings.pool_size.max(2))
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(Duration::from_secs(60)))
                .create_timeout(Some(settings.connect_timeout))
                .build()
                .map_err(|err| StoreError::Invalid(format!("PostgreSQL pool: {err}")))?
        };
        let write_lock = lock_key("catalog writes", &settings.schema);
        let database = Self {
            pool,
            runtime,
            write_lock,
            files_dir: files_dir.to_owned(),
            schema: settings.schema.clone(),
            describe,
        };
        database.migrate(&settings.schema)?;
        Ok(database)
    }

    fn migrate(&self, schema: &str) -> Result<()> {
        let session = self.session()?;
        let result = (|| {
            // Two nodes starting together: one migrates, the other waits and finds it done.
            session.batch(&format!(
                "BEGIN; SET LOCAL client_min_messages = warning; SELECT pg_advisory_xact_lock({});
                 CREATE SCHEMA IF NOT EXISTS {schema};
                 CREATE TABLE IF NOT EXISTS meta (key TEXT COLLATE \"C\" PRIMARY KEY, value TEXT NOT NULL);",
                lock_key("catalog migrations", schema)
            ))?;
            let stored: Option<String> =
                (&session as &dyn Sql).query_value_opt("SELECT value FROM meta WHERE key = 'schema_version'", &[])?;
            let stored = match stored {
                None => 0,
                Some(text) => text
                    .parse::<i64>()
                    .map_err(|_| StoreError::Corrupt(format!("schema_version {text:?} is not a number")))?,
            };
            let newest = MIGRATIONS.last().map_or(0, |(version, _)| *version);
            if stored > newest {
                return Err(StoreError::Invalid(format!(
                    "the catalog in schema {schema} has schema version {stored}; this build reads version {newest}"
                )));
            }
            for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > stored) {
                session.batch(sql)?;
                (&session as &dyn Sql).execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    &[Value::Text(version.to_string())],
                )?;
            }
            session.batch("COMMIT")
        })();
        session.finish(result)
    }

    fn session(&self) -> Result<Session<'_>> {
        let pool = self.pool.clone();
        let client = self
            .block_on(async move { pool.get().await })
            .map_err(|err| StoreError::Unavailable(format!("PostgreSQL ({}): no connection: {err}", self.describe)))?;
        Ok(Session { database: self, client: std::cell::RefCell::new(Some(client)) })
    }

    /// Runs `future` on the client's runtime and waits for it: from any thread, the daemon's
    /// runtime threads included (blocking on the future there directly would panic).
    fn block_on<T: Send + 'static>(&self, future: impl Future<Output = T> + Send + 'static) -> T {
        let (answer, receive) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let _ = answer.send(future.await);
        });
        receive.recv().expect("the PostgreSQL client runtime runs as long as the catalog")
    }
}

impl Database for PostgresDatabase {
    fn read(&self, work: &mut dyn FnMut(&dyn Sql) -> Result<()>) -> Result<()> {
        let session = self.session()?;
        let result = session
            .batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .and_then(|()| work(&session))
            .and_then(|()| session.batch("COMMIT"));
        session.finish(result)
    }

    fn write(&self, work: &mut dyn FnMut(&dyn Sql) -> Result<()>) -> Result<()> {
        let session = self.session()?;
        let result = session
            .batch(&format!("BEGIN; SELECT pg_advisory_xact_lock({})", self.write_lock))
            .and_then(|()| work(&session))
            .and_then(|()| session.batch("COMMIT"));
        session.finish(result)
    }

    fn hold_lock(&self, name: &str) -> Result<Box<dyn Send>> {
        let key = lock_key(name, &self.schema);
        let session = self.session()?;
        // Waits up to the connection's lock_timeout, then fails as retryable.
        session.batch(&format!("SELECT pg_advisory_lock({key})"))?;
        let client = session.take_client()?;
        Ok(Box::new(HeldLock { client: Some(client), key, runtime: self.runtime.handle().clone() }))
    }

    fn files_dir(&self) -> &Path {
        &self.files_dir
    }
}

/// A session-level advisory lock and the connection that holds it.
struct HeldLock {
    client: Option<Object>,
    key: i64,
    runtime: tokio::runtime::Handle,
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else { return };
        let key = self.key;
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let unlocked = client.batch_execute(&format!("SELECT pg_advisory_unlock({key})")).await;
            // A connection that could not unlock is closed, which unlocks.
            if unlocked.is_err() {
                drop(Object::take(client));
            }
            let _ = done.send(());
        });
        let _ = wait.recv();
    }
}

/// One pooled connection, held for one transaction.
struct Session<'a> {
    database: &'a PostgresDatabase,
    /// Moved into each request's task and back, so the request owns it while it runs.
    client: std::cell::RefCell<Option<Object>>,
}

impl Session<'_> {
    /// Runs `request` on the connection, on the client's runtime.
    fn call<T, Request>(&self, request: impl FnOnce(Object) -> Request) -> Result<T>
    where
        T: Send + 'static,
        Request: Future<Output = (Object, Result<T, tokio_postgres::Error>)> + Send + 'static,
    {
        let client = self.take_client()?;
        let (client, result) = self.database.block_on(request(client));
        *self.client.borrow_mut() = Some(client);
        result.map_err(StoreError::from)
    }

    fn take_client(&self) -> Result<Object> {
        self.client.borrow_mut().take().ok_or_else(|| {
            StoreError::Unavailable(format!("PostgreSQL ({}): the connection was lost", self.database.describe))
        })
    }

    /// Runs statements without parameters (transaction control, DDL).
    fn batch(&self, sql: &str) -> Result<()> {
        let sql = sql.to_owned();
        self.call(move |client| async move {
            let result = client.batch_execute(&sql).await;
            (client, result)
        })
    }

    /// Ends the transaction: on an error, rolls back, and drops a connection that cannot even
    /// do that rather than return it to the pool in an unknown state.
    fn finish<T>(self, result: Result<T>) -> Result<T> {
        if result.is_err()
            && self.batch("ROLLBACK").is_err()
            && let Some(client) = self.client.borrow_mut().take()
        {
            drop(Object::take(client));
        }
        result
    }
}

impl Sql for Session<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64> {
        let (sql, params) = (numbered_parameters(sql), params.to_vec());
        self.call(move |client| async move {
            let result = async {
                let statement = client.prepare_cached(&sql).await?;
                client.execute_raw(&statement, params.iter().map(|p| p as &(dyn ToSql + Sync))).await
            }
            .await;
            (client, result)
        })
    }

    fn for_each_row(&self, sql: &str, params: &[Value], each: &mut dyn FnMut(&Row) -> Result<()>) -> Result<()> {
        let (sql, params) = (numbered_parameters(sql), params.to_vec());
        let client = self.take_client()?;
        // The query streams rows into a bounded channel as `each` consumes them; the task hands
        // the connection back when the stream ends or `each` stops reading.
        let (rows_in, rows_out) = std::sync::mpsc::sync_channel::<Result<Row>>(STREAM_ROWS);
        let (returned, give_back) = std::sync::mpsc::sync_channel(1);
        self.database.runtime.spawn(async move {
            let streamed: Result<(), tokio_postgres::Error> = async {
                let statement = client.prepare_cached(&sql).await?;
                let stream = client.query_raw(&statement, params.iter().map(|p| p as &(dyn ToSql + Sync))).await?;
                let mut stream = std::pin::pin!(stream);
                while let Some(row) = stream.try_next().await? {
                    let row = row_values(&row);
                    // A full channel waits here: the reader is behind, not gone.
                    if blocking_send(&rows_in, row).await.is_err() {
                        break;
                    }
                }
                Ok(())
            }
            .await;
            if let Err(err) = streamed {
                let _ = blocking_send(&rows_in, Err(StoreError::from(err))).await;
            }
            drop(rows_in);
            let _ = returned.send(client);
        });
        let mut outcome = Ok(());
        for row in &rows_out {
            if let Err(err) = row.and_then(|row| each(&row)) {
                outcome = Err(err);
                break;
            }
        }
        drop(rows_out);
        let client = give_back.recv().map_err(|_| {
            StoreError::Unavailable(format!("PostgreSQL ({}): the client stopped", self.database.describe))
        })?;
        *self.client.borrow_mut() = Some(client);
        outcome
    }
}

/// Sends on a bounded std channel from async code without blocking the runtime's thread.
async fn blocking_send<T: Send + 'static>(channel: &std::sync::mpsc::SyncSender<T>, mut item: T) -> Result<(), ()> {
    loop {
        match channel.try_send(item) {
            Ok(()) => return Ok(()),
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return Err(()),
            Err(std::sync::mpsc::TrySendError::Full(back)) => {
                item = back;
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
    }
}

/// `?N` (what the catalog's SQL is written with, and SQLite reads) to `$N`, outside string
/// literals and quoted names.
fn numbered_parameters(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (None, '?') if chars.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
            (None, c) => out.push(c),
        }
    }
    out
}

/// A row's columns as [`Value`]s, by the types the catalog's schema uses.
fn row_values(row: &PgRow) -> Result<Row> {
    let mut values = Vec::with_capacity(row.len());
    for (index, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let value = match *ty {
            Type::BOOL => row.try_get::<_, Option<bool>>(index)?.map(|b| Value::Int(i64::from(b))),
            Type::INT2 => row.try_get::<_, Option<i16>>(index)?.map(|n| Value::Int(n.into())),
            Type::INT4 => row.try_get::<_, Option<i32>>(index)?.map(|n| Value::Int(n.into())),
            Type::INT8 => row.try_get::<_, Option<i64>>(index)?.map(Value::Int),
            Type::FLOAT4 => row.try_get::<_, Option<f32>>(index)?.map(|x| Value::Real(x.into())),
            Type::FLOAT8 => row.try_get::<_, Option<f64>>(index)?.map(Value::Real),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
                row.try_get::<_, Option<String>>(index)?.map(Value::Text)
            }
            Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(index)?.map(Value::Blob),
            _ => {
                return Err(StoreError::Invalid(format!(
                    "column {} has type {ty}, which the catalog does not read (cast it to BIGINT or TEXT)",
                    column.name()
                )));
            }
        };
        values.push(value.unwrap_or(Value::Null));
    }
    Ok(Row::new(values))
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match (self, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Int(n), &Type::INT8) => n.to_sql(ty, out),
            (Value::Int(n), &Type::INT4) => i32::try_from(*n)?.to_sql(ty, out),
            (Value::Int(n), &Type::INT2) => i16::try_from(*n)?.to_sql(ty, out),
            (Value::Int(n), &Type::BOOL) => (*n != 0).to_sql(ty, out),
            (Value::Int(n), &Type::FLOAT8) => (*n as f64).to_sql(ty, out),
            (Value::Real(x), &Type::FLOAT8) => x.to_sql(ty, out),
            (Value::Real(x), &Type::FLOAT4) => (*x as f32).to_sql(ty, out),
            // jsonb's binary form is a version byte and the text.
            (Value::Text(text), &Type::JSONB) => {
                out.extend_from_slice(&[1]);
                out.extend_from_slice(text.as_bytes());
                Ok(IsNull::No)
            }
            (Value::Text(text), &Type::JSON) => {
                out.extend_from_slice(text.as_bytes());
                Ok(IsNull::No)
            }
            (Value::Text(text), _) if <&str as ToSql>::accepts(ty) => text.as_str().to_sql(ty, out),
            (Value::Blob(bytes), &Type::BYTEA) => bytes.as_slice().to_sql(ty, out),
            (value, ty) => Err(format!("cannot bind {value:?} to a parameter of type {ty}").into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// An advisory lock key for `purpose` in `schema`: the same on every node.
fn lock_key(purpose: &str, schema: &str) -> i64 {
    let hash = blake3::hash(format!("sluice {purpose} {schema}").as_bytes());
    i64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes"))
}

fn valid_schema_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `user@host:port/db schema S`, for logs: never the password.
fn describe(config: &tokio_postgres::Config, schema: &str) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{}@{host}:{port}/{} schema {schema}", config.get_user().unwrap_or("?"), config.get_dbname().unwrap_or("?"))
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(err: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        let code = err.code().cloned();
        let message = match err.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => err.to_string(),
        };
        let retryable = err.is_closed()
            || code.is_none()
            || code.as_ref().is_some_and(|code| {
                [
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    SqlState::T_R_DEADLOCK_DETECTED,
                    SqlState::LOCK_NOT_AVAILABLE,
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::TOO_MANY_CONNECTIONS,
                    SqlState::DISK_FULL,
                    SqlState::QUERY_CANCELED,
                ]
                .contains(code)
                    || code.code().starts_with("08")
            });
        if retryable {
            StoreError::Unavailable(format!("catalog (PostgreSQL): {message}"))
        } else if code == Some(SqlState::UNIQUE_VIOLATION) {
            StoreError::Conflict(format!("catalog (PostgreSQL): {message}"))
        } else {
            StoreError::Postgres(message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_renumbered_outside_quotes() {
        assert_eq!(
            numbered_parameters(r#"SELECT '?1', "a?2" FROM t WHERE a = ?1 AND b = ?12 AND c = ?"#),
            r#"SELECT '?1', "a?2" FROM t WHERE a = $1 AND b = $12 AND c = ?"#
        );
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(valid_schema_name("sluice_test_1"));
        assert!(!valid_schema_name("Sluice"));
        assert!(!valid_schema_name("a; DROP TABLE x"));
        assert!(!valid_schema_name(""));
    }
}
