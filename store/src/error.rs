use sqlx::error::DatabaseError;
use thiserror::Error;

/// Errors of the store layer. Callers map them once (HTTP status, server-fn error, CLI message).
/// `Invalid`, `NotFound` and `Conflict` are meant for users; the others carry database details and
/// are logged, never shown.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("database URL must start with sqlite: or postgres:")]
    UnsupportedUrl,
    /// The database server cannot be reached (said in one sentence, at start-up).
    #[error("{0}")]
    Unreachable(String),
    #[error("cannot create {0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// A compare-and-set lost a race; the transaction was rolled back. Retried internally; seen by
    /// callers only when retries ran out.
    #[error("concurrent update, retries exhausted")]
    VersionConflict,
}

impl StoreError {
    /// Whether the same operation may succeed later: the database, or the way to it, failed (I/O,
    /// busy or locked, read-only or full for now, a lost connection, a serialisation failure or
    /// deadlock, a lost race), as opposed to the data or the request being wrong. A transient
    /// error is retried; a permanent one is reported (or, for a desk message, set aside).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(e) => transient(e),
            StoreError::VersionConflict | StoreError::Io(..) | StoreError::Unreachable(_) => true,
            StoreError::Invalid(_)
            | StoreError::NotFound(_)
            | StoreError::Conflict(_)
            | StoreError::UnsupportedUrl
            | StoreError::Migrate(_)
            | StoreError::Corrupt(_) => false,
        }
    }

    pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
        matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
    }
}

fn transient(err: &sqlx::Error) -> bool {
    use sqlx::Error as E;
    match err {
        E::Io(_) | E::Tls(_) | E::Protocol(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => true,
        E::Database(db) => {
            if let Some(e) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                // Primary result codes (the low byte of the extended code). The database file's
                // state (locked, busy, read-only, I/O, full, cannot open, even corrupt or not a
                // database) is the installation's problem, not the message's: keep it to retry.
                let code = DatabaseError::code(e).and_then(|c| c.parse::<i32>().ok()).unwrap_or(1) & 0xff;
                matches!(code, 5 | 6 | 7 | 8 | 10 | 11 | 13 | 14 | 15 | 26)
            } else if let Some(e) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                // SQLSTATE classes: connection exception, transaction rollback (serialisation
                // failure, deadlock), invalid transaction state (read-only after a failover),
                // insufficient resources, operator intervention (shutdown), system error.
                let state = e.code();
                matches!(&state[..2], "08" | "40" | "25" | "53" | "57" | "58") || state == "55P03"
            } else {
                false
            }
        }
        _ => false,
    }
}
