//! The databases tests run against: SQLite (always, a file in a temp dir) and PostgreSQL at
//! `CONSULTEASE_TEST_POSTGRES_URL` (default postgres://postgres@127.0.0.1:5432/test; skipped when
//! unreachable, required with `CONSULTEASE_REQUIRE_SERVICES=1`), a fresh database per test.

use sqlx::Connection;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Database {
    Sqlite,
    Postgres,
}

/// A throw-away database: its URL, and (SQLite) the directory holding it.
#[derive(Debug)]
pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Database {
    /// A fresh, empty database (the server migrates it), or `None` (after saying why) when
    /// PostgreSQL is unreachable and not required.
    pub async fn fresh(self) -> Option<TestDatabase> {
        match self {
            Database::Sqlite => Some(sqlite()),
            Database::Postgres => postgres().await,
        }
    }
}

pub fn sqlite() -> TestDatabase {
    let dir = tempfile::tempdir().expect("a temp dir");
    TestDatabase { url: format!("sqlite://{}/db.sqlite", dir.path().display()), _dir: Some(dir) }
}

/// Databases of this harness are named `consultease_tk_{pid}_{n}`.
const PREFIX: &str = "consultease_tk_";

async fn postgres() -> Option<TestDatabase> {
    let base = std::env::var("CONSULTEASE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut admin = match sqlx::PgConnection::connect(&base).await {
        Ok(c) => c,
        Err(e) if crate::services_required() => {
            panic!("PostgreSQL required (CONSULTEASE_REQUIRE_SERVICES=1) but {base} is unreachable: {e}")
        }
        Err(e) => {
            eprintln!("skipping: PostgreSQL at {base} unreachable ({e})");
            return None;
        }
    };
    drop_leftovers(&mut admin).await;
    let name = format!("{PREFIX}{}_{}", std::process::id(), crate::unique().replace('-', "_"));
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.expect("a test database");
    let (head, _) = base.rsplit_once('/').expect("CONSULTEASE_TEST_POSTGRES_URL ends in /database");
    Some(TestDatabase { url: format!("{head}/{name}"), _dir: None })
}

/// Drops the databases of test processes that have exited (a test process cannot drop its own on
/// the way out: its runtime is gone by then).
async fn drop_leftovers(admin: &mut sqlx::PgConnection) {
    if !std::path::Path::new("/proc/self").exists() {
        return; // no way to tell here which processes are alive: leave them
    }
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'consultease\\_tk\\_%'")
            .fetch_all(&mut *admin)
            .await
            .unwrap_or_default();
    for name in names {
        let pid = name.trim_start_matches(PREFIX).split('_').next().unwrap_or_default();
        let alive = std::path::Path::new("/proc").join(pid).exists();
        if !alive {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut *admin).await;
        }
    }
}
