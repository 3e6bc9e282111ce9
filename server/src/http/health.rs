use super::{AppState, HttpError};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

pub fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

/// The process is up and answering.
async fn healthz() -> &'static str {
    "ok"
}

/// Ready to serve: the database answers (503 otherwise).
async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, HttpError> {
    state.store.ping().await?;
    Ok(Json(json!({ "status": "ready", "database": "ok" })))
}
