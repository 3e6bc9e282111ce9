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

/// Ready to serve: the database answers and (when ingesting) the MQTT broker is connected and has
/// accepted our subscription — connected but refused, nothing would arrive; 503 otherwise, with
/// what is missing.
async fn readyz(State(state): State<AppState>) -> Result<(StatusCode, Json<Value>), HttpError> {
    state.store.ping().await?;
    use std::sync::atomic::Ordering::Relaxed;
    let mqtt = state.ingest.as_ref().map(|s| (s.connected.load(Relaxed), s.subscribed.load(Relaxed)));
    let body = match mqtt {
        None => json!({ "status": "ready", "database": "ok" }),
        Some((true, true)) => json!({ "status": "ready", "database": "ok", "mqtt": "connected" }),
        Some((connected, _)) => {
            let mqtt = if connected { "not subscribed" } else { "disconnected" };
            let body = json!({ "status": "not ready", "database": "ok", "mqtt": mqtt });
            return Ok((StatusCode::SERVICE_UNAVAILABLE, Json(body)));
        }
    };
    Ok((StatusCode::OK, Json(body)))
}
