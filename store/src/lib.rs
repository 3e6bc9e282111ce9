//! The one store API. Everything that reads or writes ConsultEase's data (server functions, the MQTT
//! ingest, the admin CLI) goes through [`Store`]. The database is the only source of truth: no
//! caches of mutable state live here.
//!
//! Every write is one transaction with one commit point. Rows carry a `version` that bumps on each
//! change and is compare-and-set (`… WHERE id = $1 AND version = $2`); a lost race rolls the whole
//! transaction back and retries it from fresh reads. Events are published on the in-process bus only
//! after their transaction committed, carrying the new version.
//!
//! Both backends run the same SQL text (SQLite accepts PostgreSQL's `$1` placeholders), except
//! that the ingest's bulk statements bind plain `?` on SQLite (see [`Params`]); `on_db!`
//! type-checks a body once per backend.

/// Runs `$body` with `$pool` bound to the concrete pool of whichever backend is configured.
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::Db::Sqlite($pool) => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` with `$conn` bound to the connection of a [`tx::Tx`] on its backend.
macro_rules! on_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::tx::Tx::Sqlite($conn) => $body,
            $crate::tx::Tx::Postgres($conn) => $body,
        }
    };
}

mod accounts;
mod admin;
mod bus;
mod error;
mod group;
mod ingest;
mod meta;
mod presence;
mod read;
mod requests;
mod rows;
mod sessions;
mod shared;
mod tx;

pub use accounts::{Admin, AdminCredential, Kiosk, NewStudent, Student, StudentCredential, StudentFields};
pub use admin::{DeskInfo, Edit, NewFaculty};
pub use bus::{Bus, EventBus};
pub use error::StoreError;
pub use ingest::{Change, DeadLetter, Outcome};
pub use meta::random_hex;
pub use requests::{Actor, AdminRequest, DeskOutcome, DeskWork, NewRequest, PlaceError, RequestEvent, RequestFilter};
pub use sessions::{AuditEntry, AuditFilter, AuditRow, SessionRow};
pub use shared::{LeaderLock, LogFollower};

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tx::Tx;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Clone, Debug)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Which backend a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The name shown to users: `sqlite` or `postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    /// Where write transactions run: on SQLite one connection of its own (see [`Store::connect`]);
    /// on PostgreSQL the same pool as `db`.
    writer: Db,
    bus: EventBus,
    /// Students' request events (after commit).
    requests_bus: Bus<Arc<RequestEvent>>,
    /// Faculty members whose desk queue changed (after commit): the queue publisher's cue.
    queues_bus: Bus<i64>,
    /// Held from a write transaction's start until its events are published, so that this
    /// process publishes events in commit (= id) order. Writers are serialised by the database
    /// anyway (SQLite's single writer, PostgreSQL's event-log lock), so this costs no concurrency.
    write_order: Arc<tokio::sync::Mutex<()>>,
    /// Placements waiting for their group commit.
    placements: requests::Placements,
    /// Sessions' last uses waiting for their group commit.
    touches: sessions::Touches,
    /// The ingest's bulk statements for this backend.
    bulk: Arc<ingest::BulkSql>,
    /// The buses are fed from the shared log ([`Store::follow_log`]), not by this store's writes.
    shared_log: bool,
}

/// The store's write order, held ([`Store::write_turn`]): the writes given it run back to back, no
/// other writer between them.
///
/// Why: the MQTT ingest writes each batch in two transactions (the desks' state, then their acks
/// and answers). Taking the order for each, it waited behind a placement group twice per batch;
/// with a turn of its own it waits once (`loadgen --consult`, BENCHMARKS.md row 8b‴).
#[derive(Debug)]
pub struct WriteTurn(tokio::sync::OwnedMutexGuard<()>);

/// Current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

impl Store {
    /// Waits for the write order and holds it until the turn is dropped. Only the `*_in_turn`
    /// writes may run while it is held (any other write of this store would wait for it for ever).
    pub async fn write_turn(&self) -> WriteTurn {
        WriteTurn(self.write_order.clone().lock_owned().await)
    }

    /// A turn of this store's write order, or an error (a turn of another store orders nothing here).
    fn check_turn(&self, turn: &WriteTurn) -> Result<()> {
        if Arc::ptr_eq(tokio::sync::OwnedMutexGuard::mutex(&turn.0), &self.write_order) {
            Ok(())
        } else {
            Err(StoreError::Corrupt("a write turn of another store".into()))
        }
    }

    /// Connects to `url` (`sqlite://path/to/file.db`, `sqlite::memory:` or `postgres://…`), creating
    /// a SQLite file (and its folder) when missing, and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Store> {
        let mut writers = None;
        let db = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            // A transaction left open by a stalled process (frozen, hung, cut off mid-transaction)
            // would hold its row locks — and the event-log lock every writer takes — until the
            // process came back: every instance's writes would wait on it. Ours never idle between
            // statements (the next one follows at once), so 3 s idle in a transaction means the
            // process is gone: PostgreSQL ends that session and the writes go on. (Found by the
            // chaos suite's `freeze`: a leader stopped inside its ingest transaction held the
            // new leader's first commit for the whole freeze.)
            let opts = PgConnectOptions::from_str(url)?.options([("idle_in_transaction_session_timeout", "3s")]);
            postgres_reachable(url, &opts).await?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(opts)
                .await?;
            sqlx::migrate!("../migrations/postgres").run(&pool).await?;
            Db::Postgres(pool)
        } else if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true);
            if let Some(dir) = std::path::Path::new(opts.get_filename()).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(dir.display().to_string(), e))?;
            }
            // No ping before each use: a connection to a local file cannot go stale the way a
            // network one can, and the ping was a round trip to the connection's worker thread
            // before every statement outside a transaction (measured: with the consultation loop
            // at 300 requests/s, 43 % of the server's CPU samples were in those threads and the
            // kernel's wake-ups between them).
            // An in-memory database lives only as long as its connection: keep exactly one.
            let memory = url.contains(":memory:") || url.contains("mode=memory");
            let mut pool = SqlitePoolOptions::new().max_connections(8).test_before_acquire(false);
            if memory {
                pool = pool.max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None);
            }
            let pool = pool.connect_with(opts.clone()).await?;
            sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
            // Every write transaction on one connection of its own. Why: in WAL mode a connection
            // drops its whole page cache when it finds that another connection wrote since its last
            // transaction, and the pool hands out its connections in turn, so every write began
            // with a cold cache: with the consultation loop at 800 requests/s, 16 % of the
            // server's CPU went to allocating page-cache pages (`perf`, BENCHMARKS.md row 8b). One
            // writer keeps its cache; SQLite has one writer at a time anyway.
            let writer = if memory {
                pool.clone()
            } else {
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .test_before_acquire(false)
                    .connect_with(opts)
                    .await?
            };
            writers = Some(Db::Sqlite(writer));
            Db::Sqlite(pool)
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        let params = match db {
            Db::Sqlite(_) => Params::InOrder,
            Db::Postgres(_) => Params::Numbered,
        };
        let bulk = Arc::new(ingest::BulkSql::new(params));
        let writer = writers.unwrap_or_else(|| db.clone());
        Ok(Store {
            db,
            writer,
            bus: EventBus::new(4096),
            requests_bus: Bus::new(4096),
            queues_bus: Bus::new(4096),
            write_order: Arc::default(),
            placements: Default::default(),
            touches: Default::default(),
            bulk,
            shared_log: false,
        })
    }

    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// The after-commit event bus.
    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    /// Students' request events, after their commit.
    pub fn requests_bus(&self) -> &Bus<Arc<RequestEvent>> {
        &self.requests_bus
    }

    /// Faculty members whose desk queue changed, after the commit.
    pub fn queues_bus(&self) -> &Bus<i64> {
        &self.queues_bus
    }

    /// Replaces the event bus with one of `capacity` (a receiver further behind than that lags).
    pub fn with_bus_capacity(mut self, capacity: usize) -> Store {
        self.bus = EventBus::new(capacity);
        self
    }

    /// After a commit: the board's events go on the bus — unless the bus is fed from the shared log,
    /// which will carry these too, in id order with every other instance's.
    pub(crate) fn publish_faculty(&self, events: Vec<Arc<domain::FacultyEvent>>) {
        if !self.shared_log {
            self.bus.publish(events);
        }
    }

    /// A round trip to the database (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        on_db!(&self.db, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop))?;
        Ok(())
    }

    /// The newest applied migration's version.
    pub async fn schema_version(&self) -> Result<i64> {
        let sql = "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success";
        let v: i64 = on_db!(&self.db, pool => sqlx::query_scalar(sql).fetch_one(pool).await)?;
        Ok(v)
    }

    pub async fn close(&self) {
        on_db!(&self.writer, pool => pool.close().await);
        on_db!(&self.db, pool => pool.close().await)
    }

    /// Opens a write transaction. SQLite takes the write lock up front (a deferred transaction that
    /// reads then writes can fail with SQLITE_BUSY instead of waiting).
    pub(crate) async fn write_tx(&self) -> Result<Tx> {
        let begin = match self.db {
            Db::Sqlite(_) => "BEGIN IMMEDIATE",
            Db::Postgres(_) => "BEGIN",
        };
        Tx::begin(&self.writer, begin).await
    }

    /// Opens a write transaction that appends to the event log. On PostgreSQL, such writers take one
    /// transaction-scoped lock so that events commit in id order (a reader resuming after id N must
    /// never later see an id below N appear). SQLite has a single writer already.
    pub(crate) async fn event_tx(&self) -> Result<Tx> {
        let mut tx = self.write_tx().await?;
        if let Tx::Postgres(conn) = &mut tx {
            sqlx::query("SELECT pg_advisory_xact_lock(7290001)").execute(&mut **conn).await?;
        }
        Ok(tx)
    }

    /// Opens a consistent multi-statement read (PostgreSQL's READ COMMITTED would give each
    /// statement its own snapshot; SQLite's read transactions are snapshots already).
    pub(crate) async fn read_tx(&self) -> Result<Tx> {
        let begin = match self.db {
            Db::Sqlite(_) => "BEGIN",
            Db::Postgres(_) => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        };
        Tx::begin(&self.db, begin).await
    }
}

/// Says at once, in one sentence, why PostgreSQL cannot be used (the pool would retry for its whole
/// acquire timeout and then report only "pool timed out"), and creates the database when the
/// server is up but the database does not exist yet (as SQLite creates its file).
async fn postgres_reachable(url: &str, opts: &PgConnectOptions) -> Result<()> {
    use sqlx::migrate::MigrateDatabase;
    let at = format!("{}:{}", opts.get_host(), opts.get_port());
    let db = opts.get_database().unwrap_or("postgres").to_owned();
    match sqlx::PgConnection::connect_with(opts).await {
        Ok(conn) => {
            let _ = conn.close().await;
            Ok(())
        }
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("3D000") => {
            // 3D000 invalid_catalog_name: the server answers, the database is missing.
            sqlx::Postgres::create_database(url).await.map_err(|e| {
                StoreError::Unreachable(format!(
                    "PostgreSQL at {at} has no database {db:?} and creating it failed: {}",
                    one_line(&e)
                ))
            })?;
            tracing::info!(database = %db, server = %at, "created the PostgreSQL database");
            Ok(())
        }
        Err(e) => Err(StoreError::Unreachable(format!("cannot connect to PostgreSQL at {at}: {}", one_line(&e)))),
    }
}

/// An sqlx error's innermost message, once (its Display repeats its sources).
fn one_line(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}

/// A database URL fit for a log line or an error message: the password is never shown.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// How generated bulk SQL spells its n-th bind parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Params {
    /// PostgreSQL: `$n`.
    Numbered,
    /// SQLite: a plain `?`, bound in order. A numbered `?NNN` (or `$NNN`) is a *named* parameter
    /// there: sqlx asks for every parameter's name, and SQLite finds each by a linear search, so a
    /// bulk statement with hundreds of them binds in quadratic time (measured: a third of the
    /// ingest's CPU at 12,000 changes/s). Generated statements use their parameters in order.
    InOrder,
}

impl Params {
    fn nth(self, n: usize) -> String {
        match self {
            Params::Numbered => format!("${n}"),
            Params::InOrder => "?".to_owned(),
        }
    }

    /// `n` parameters from `start` on, comma-separated.
    fn list(self, start: usize, n: usize) -> String {
        (start..start + n).map(|i| self.nth(i)).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_file_is_created_and_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/sub/db.sqlite", dir.path().display());
        let store = Store::connect(&url).await.unwrap();
        store.ping().await.unwrap();
        // The newest file in migrations/ (not the embedded list: that would agree with a stale build).
        let newest = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations/sqlite"))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.split('_').next()?.parse::<i64>().ok())
            .max();
        assert_eq!(Some(store.schema_version().await.unwrap()), newest);
        assert_eq!(store.backend(), Backend::Sqlite);
        store.close().await;
        // Migrating again is a no-op.
        let again = Store::connect(&url).await.unwrap();
        assert_eq!(Some(again.schema_version().await.unwrap()), newest);
    }

    #[tokio::test]
    async fn unknown_scheme_is_a_clear_error() {
        let err = Store::connect("mysql://localhost/x").await.unwrap_err();
        assert!(matches!(err, StoreError::UnsupportedUrl), "{err}");
    }
}
