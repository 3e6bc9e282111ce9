use super::{AppState, HttpError};
use axum::extract::State;
use axum::http::StatusCode;
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

/// Ready to serve: the database answers and (when ingesting) the MQTT broker is connected; 503
/// otherwise, with what is missing.
async fn readyz(State(state): State<AppState>) -> Result<(StatusCode, Json<Value>), HttpError> {
    state.store.ping().await?;
    let mqtt = state.ingest.as_ref().map(|s| s.connected.load(std::sync::atomic::Ordering::Relaxed));
    let body = match mqtt {
        None => json!({ "status": "ready", "database": "ok" }),
        Some(true) => json!({ "status": "ready", "database": "ok", "mqtt": "connected" }),
        Some(false) => {
            let body = json!({ "status": "not ready", "database": "ok", "mqtt": "disconnected" });
            return Ok((StatusCode::SERVICE_UNAVAILABLE, Json(body)));
        }
    };
    Ok((StatusCode::OK, Json(body)))
}
