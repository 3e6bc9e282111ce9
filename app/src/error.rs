use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

/// The error every server function returns. What crosses the network is only what a user may see;
/// the server logs the details when it builds one of these (see `ssr`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    #[error("The server could not complete the request. Please try again.")]
    Internal,
    #[error("{0}")]
    Invalid(String),
    #[error("Could not reach the server: {0}")]
    Transport(String),
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Request(e) | ServerFnErrorErr::Response(e) => AppError::Transport(e),
            ServerFnErrorErr::Args(e) | ServerFnErrorErr::MissingArg(e) => AppError::Invalid(e),
            _ => AppError::Internal,
        }
    }
}
