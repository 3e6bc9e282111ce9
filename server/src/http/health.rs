use super::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::time::Duration;

pub fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

/// The process is up and answering.
async fn healthz() -> &'static str {
    "ok"
}

/// How long `/readyz` waits for the database before it calls it unavailable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Ready to serve: the database takes a write (not merely a read: regression, outside test run —
/// with its files unwritable the server answered "ready" while every write failed), and, when
/// this instance is the ingest leader, the MQTT broker is connected and has accepted our
/// subscription (a follower does not talk MQTT). 503 otherwise, saying what is missing; internals
/// go to the log. `role` says `leader` or `follower` (several instances: `crate::leader`).
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let database = match tokio::time::timeout(PROBE_TIMEOUT, state.store.probe_write()).await {
        Ok(Ok(())) => "ok",
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness: the database does not take writes");
            "unavailable"
        }
        Err(_) => {
            tracing::warn!("readiness: the database did not answer within {PROBE_TIMEOUT:?}");
            "unavailable"
        }
    };
    let leader = state.role.is_leader();
    let mqtt = state.ingest.as_ref().filter(|_| leader).map(|s| s.describe());
    let ready = database == "ok" && mqtt.is_none_or(|m| m == "connected");
    let mut body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "database": database,
        "role": state.role.as_str(),
    });
    if let Some(m) = mqtt {
        body["mqtt"] = json!(m);
    }
    (if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(body))
}
