//! Server-only pieces of the app: the context server functions run in, and error mapping.

use crate::AppError;
use std::time::Instant;

/// Provided to every server function and SSR render by the server (`leptos_routes_with_context`).
#[derive(Clone, Debug)]
pub struct AppContext {
    pub store: store::Store,
    pub started: Instant,
}

impl AppContext {
    /// The context of the current request.
    pub fn current() -> Result<AppContext, AppError> {
        leptos::prelude::use_context::<AppContext>().ok_or_else(|| {
            tracing::error!("AppContext missing: the server did not provide it");
            AppError::Internal
        })
    }
}

impl From<store::StoreError> for AppError {
    fn from(err: store::StoreError) -> Self {
        tracing::error!(error = %err, "store error in a server function");
        AppError::Internal
    }
}
