//! `GET /metrics` (OpenMetrics text, from `telemetry::Metrics`), and the request counter.

use super::AppState;
use crate::telemetry::Metrics;
use crate::telemetry::metrics::RouteLabels;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

/// Counts one connected live stream while alive.
pub struct StreamGuard(Arc<Metrics>);

impl StreamGuard {
    pub fn new(m: Arc<Metrics>) -> StreamGuard {
        m.sse_clients.inc();
        StreamGuard(m)
    }

    pub fn metrics(&self) -> &Metrics {
        &self.0
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.sse_clients.dec();
    }
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// Middleware: counts requests by matched route (never the raw path: unbounded) and status.
pub async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let res = next.run(req).await;
    state.metrics.http_requests.get_or_create(&RouteLabels { route, status: res.status().as_u16() }).inc();
    res
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let m = &state.metrics;
    // Read at scrape time from the one source of truth.
    match state.store.count_online_desks().await {
        Ok(n) => {
            m.desks_online.set(n);
        }
        Err(err) => tracing::warn!(error = %err, "metrics: cannot count online desks"),
    }
    match state.store.count_dead_letters().await {
        Ok(n) => {
            m.dead_letters.set(n);
        }
        Err(err) => tracing::warn!(error = %err, "metrics: cannot count dead letters"),
    }
    if let Some(log) = &state.log {
        use std::sync::atomic::Ordering::Relaxed;
        // Counters only grow: add what the follower counted since the last scrape.
        m.notify_gaps.inc_by(log.gaps.load(Relaxed).saturating_sub(m.notify_gaps.get()));
        m.log_events.inc_by(log.events.load(Relaxed).saturating_sub(m.log_events.get()));
        m.notify_lag_seconds.set(log.lag_ms.load(Relaxed) as f64 / 1000.0);
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], m.encode())
}
