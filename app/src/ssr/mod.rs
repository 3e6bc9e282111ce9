//! Server-only pieces of the app: the context server functions run in, sessions, error mapping.

pub mod session;
pub mod tickets;

use crate::AppError;
use std::time::Instant;

/// Provided to every server function and SSR render by the server (`leptos_routes_with_context`).
#[derive(Clone, Debug)]
pub struct AppContext {
    pub store: store::Store,
    pub auth: auth::Auth,
    pub cookies: session::Cookies,
    pub started: Instant,
    /// Where users reach the server (`--public-url`): links shown as QR codes point there.
    pub public_url: String,
    /// The process's live numbers for the admin's system page.
    pub system: std::sync::Arc<dyn SystemProbe>,
    /// The university's local time (office hours).
    pub local: std::sync::Arc<dyn LocalClock>,
}

/// What only the server process counts, as `/metrics` and `/readyz` export it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessNumbers {
    /// "connected", "not subscribed", "disconnected"; `None` when this process does not ingest.
    pub broker: Option<String>,
    pub live_streams: i64,
    pub mqtt_received: u64,
    pub mqtt_applied: u64,
    pub mqtt_stale: u64,
    pub mqtt_rejected: u64,
}

/// The university's time zone (`--timezone`), as the pages need it.
pub trait LocalClock: Send + Sync + std::fmt::Debug {
    /// Minutes the local time is ahead of UTC at `at_ms` (Unix ms).
    fn utc_offset_min(&self, at_ms: i64) -> i32;
}

/// What only the server process knows (its broker connection, live streams, ingest counters),
/// read for the admin's system page from the same values `/metrics` exports.
pub trait SystemProbe: Send + Sync + std::fmt::Debug {
    /// The live numbers (the system page reads the rest from the database).
    fn numbers(&self) -> ProcessNumbers;

    /// What desk `desk`'s newest heartbeat said about itself ("firmware 1.2.0 · −60 dBm · up 3 h").
    fn desk_info(&self, desk: &str) -> Option<String>;
}

impl AppContext {
    /// The context of the current request.
    pub fn current() -> Result<AppContext, AppError> {
        leptos::prelude::use_context::<AppContext>()
            .ok_or_else(|| internal("AppContext missing: the server did not provide it"))
    }
}

/// An internal fault: logged here with a fresh reference, which is all the user sees.
pub fn internal(detail: impl std::fmt::Display) -> AppError {
    let reference = store::random_hex(4).unwrap_or_else(|_| "-".into());
    tracing::error!(reference, %detail, "internal error");
    AppError::Internal(reference)
}

/// Ends a server function: an error also sets the response's status (4xx/5xx, never 200) — except
/// for a plain form post (no JavaScript), which the server answers with a redirect back to the form
/// carrying the error in its URL: a browser follows a 302, not a 401.
pub fn respond<T>(result: Result<T, AppError>) -> Result<T, AppError> {
    if let Err(e) = &result {
        let form_post = leptos::prelude::use_context::<http::request::Parts>().is_some_and(|p| {
            p.headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"))
        });
        if !form_post {
            crate::error::set_status(e);
        }
    }
    result
}

impl From<store::PlaceError> for AppError {
    fn from(err: store::PlaceError) -> Self {
        use domain::consultation::Limit;
        use store::PlaceError as E;
        match err {
            E::Invalid(field, message) => AppError::invalid(field, message),
            E::Away(_) => AppError::Conflict(err.to_string()),
            E::Limit(Limit::PerHour) => AppError::TooMany { retry_after_s: 3600 },
            E::Limit(_) => AppError::Conflict(err.to_string()),
            E::NoFaculty => AppError::NotFound("No such faculty member.".into()),
            E::Store(e) => e.into(),
        }
    }
}

impl From<store::StoreError> for AppError {
    fn from(err: store::StoreError) -> Self {
        use store::StoreError as E;
        match err {
            E::Invalid(m) => AppError::Invalid { field: None, message: m },
            E::NotFound(m) => AppError::NotFound(m),
            E::Conflict(m) => AppError::Conflict(m),
            e if e.is_transient() => {
                tracing::warn!(error = %e, "store unavailable in a request");
                AppError::Unavailable
            }
            e => internal(e),
        }
    }
}
