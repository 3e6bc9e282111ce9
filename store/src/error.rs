use thiserror::Error;

/// Errors of the store layer. Callers map them once (HTTP status, server-fn error, CLI message);
/// the variants that carry database details are logged, never shown to users.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database URL must start with sqlite: or postgres:")]
    UnsupportedUrl,
    #[error("cannot create {0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}
