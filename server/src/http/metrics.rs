//! `GET /metrics`: Prometheus text exposition of the ingest's counters.

use super::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = String::with_capacity(2048);
    if let Some(s) = &state.ingest {
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n");
        };
        counter("consultease_mqtt_received_total", "Desk messages received from the broker.", s.received.load(Relaxed));
        counter(
            "consultease_mqtt_applied_total",
            "Desk messages that changed a desk's record.",
            s.applied.load(Relaxed),
        );
        counter("consultease_mqtt_stale_total", "Desk messages older than what was recorded.", s.stale.load(Relaxed));
        counter("consultease_commit_batches_total", "Transactions committed by the ingest.", s.batches.load(Relaxed));
        counter("consultease_commit_errors_total", "Failed ingest commits (retried).", s.commit_errors.load(Relaxed));
        counter(
            "consultease_desks_timed_out_total",
            "Desks marked offline by the timeout.",
            s.desks_timed_out.load(Relaxed),
        );
        out.push_str("# HELP consultease_mqtt_rejected_total Desk messages rejected, by reason.\n");
        out.push_str("# TYPE consultease_mqtt_rejected_total counter\n");
        for (reason, n) in s.rejected_by_reason() {
            let _ = writeln!(out, "consultease_mqtt_rejected_total{{reason=\"{reason}\"}} {n}");
        }
        out.push_str("# HELP consultease_mqtt_connected Whether the ingest is connected to the broker.\n");
        out.push_str("# TYPE consultease_mqtt_connected gauge\n");
        let _ = writeln!(out, "consultease_mqtt_connected {}", u8::from(s.connected.load(Relaxed)));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out)
}
