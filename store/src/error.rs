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
    pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
        matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
    }
}
