use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

/// The error every server function (and every page that loads data) returns. What crosses the
/// network is only what a user may see: a user's mistake says what was wrong; an internal fault
/// says only that it happened, with a reference to the log line that has the details.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    /// Bad input; `field` names the form field it is about.
    #[error("{message}")]
    Invalid { field: Option<String>, message: String },
    #[error("Please sign in.")]
    Unauthorized,
    /// A sign-in that failed: one answer whatever was wrong, and whether or not the account exists.
    #[error("Those sign-in details are not right.")]
    BadCredentials,
    #[error("You are not allowed to do that.")]
    Forbidden,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Something that was valid once and is no longer (an expired ticket link).
    #[error("{0}")]
    Gone(String),
    #[error("Too many attempts. Please wait {} and try again.", wait_words(*retry_after_s))]
    TooMany { retry_after_s: u64 },
    /// The database or another service is unreachable for now.
    #[error("The service is briefly unavailable. Please try again in a moment.")]
    Unavailable,
    /// A fault on the server; the string is the reference logged with its details.
    #[error("Something went wrong on our side (reference {0}). Please try again.")]
    Internal(String),
    #[error("Could not reach the server: {0}")]
    Transport(String),
}

impl AppError {
    pub fn invalid(field: &str, message: impl Into<String>) -> AppError {
        AppError::Invalid { field: Some(field.into()), message: message.into() }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            AppError::Invalid { .. } => 400,
            AppError::Unauthorized | AppError::BadCredentials => 401,
            AppError::Forbidden => 403,
            AppError::NotFound(_) => 404,
            AppError::Conflict(_) => 409,
            AppError::Gone(_) => 410,
            AppError::TooMany { .. } => 429,
            AppError::Unavailable | AppError::Transport(_) => 503,
            AppError::Internal(_) => 500,
        }
    }

    /// The form field this error is about, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            AppError::Invalid { field, .. } => field.as_deref(),
            _ => None,
        }
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Request(e) | ServerFnErrorErr::Response(e) => AppError::Transport(e),
            ServerFnErrorErr::Args(e) | ServerFnErrorErr::MissingArg(e) => {
                AppError::Invalid { field: None, message: e }
            }
            _ => AppError::Internal("server-fn".into()),
        }
    }
}

/// Answers the current request (a page or a server function) with `err`'s status: an error page
/// is never a 200. Does nothing in the browser.
pub fn set_status(err: &AppError) {
    #[cfg(feature = "ssr")]
    if let Some(res) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>()
        && let Ok(status) = http::StatusCode::from_u16(err.status())
    {
        res.set_status(status);
    }
    #[cfg(not(feature = "ssr"))]
    let _ = err;
}

/// "45 s", "15 min": a wait as people say it.
fn wait_words(seconds: u64) -> String {
    if seconds < 120 { format!("{seconds} s") } else { format!("{} min", seconds.div_ceil(60)) }
}
