//! The HTTP layer's errors: the app's error type (`app::AppError`, also what server functions
//! return), mapped once to a status and a JSON body. Internal details never reach the client:
//! they were logged with the reference the body carries.

use app::AppError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(pub AppError);

impl HttpError {
    pub fn bad_request(message: impl Into<String>) -> HttpError {
        HttpError(AppError::Invalid { field: None, message: message.into() })
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The machine-readable kind, the `error` field of the body.
    fn code(&self) -> &'static str {
        match self.0 {
            AppError::Invalid { .. } => "invalid",
            AppError::Unauthorized | AppError::BadCredentials => "unauthorized",
            AppError::Forbidden => "forbidden",
            AppError::NotFound(_) => "not_found",
            AppError::Conflict(_) => "conflict",
            AppError::Gone(_) => "gone",
            AppError::TooMany { .. } => "too_many_requests",
            AppError::Unavailable | AppError::Transport(_) => "unavailable",
            AppError::Internal(_) => "internal",
        }
    }
}

impl From<AppError> for HttpError {
    fn from(e: AppError) -> Self {
        HttpError(e)
    }
}

impl From<store::StoreError> for HttpError {
    fn from(e: store::StoreError) -> Self {
        HttpError(AppError::from(e))
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code(), "message": self.0.to_string() });
        if let Some(field) = self.0.field() {
            body["field"] = json!(field);
        }
        if let AppError::Internal(reference) = &self.0 {
            body["reference"] = json!(reference);
        }
        let mut res = (self.status_code(), Json(body)).into_response();
        if let AppError::TooMany { retry_after_s } = self.0
            && let Ok(v) = HeaderValue::from_str(&retry_after_s.max(1).to_string())
        {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}
