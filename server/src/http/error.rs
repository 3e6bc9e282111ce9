use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Errors of the HTTP layer, mapped to a status once here. Internal details are logged, and the
/// client gets a generic message.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    BadRequest(String),
    #[error("database unavailable")]
    Store(#[from] store::StoreError),
}

impl HttpError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            HttpError::BadRequest(_) => StatusCode::BAD_REQUEST,
            HttpError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        if let HttpError::Store(err) = &self {
            tracing::error!(error = %err, "request failed");
        }
        (self.status_code(), Json(serde_json::json!({ "error": self.to_string() }))).into_response()
    }
}
