//! `GET /metrics` in Prometheus text format, and the HTTP layer's own counters.

use super::AppState;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// Counters of the HTTP layer and the live streams.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    pub sse_clients: AtomicI64,
    pub sse_events_sent: AtomicU64,
    pub sse_lagged: AtomicU64,
    pub sse_snapshots: AtomicU64,
    /// (route, status) → requests.
    requests: Mutex<HashMap<(String, u16), u64>>,
}

/// Counts one connected stream while alive.
pub struct StreamGuard(std::sync::Arc<HttpMetrics>);

impl StreamGuard {
    pub fn new(m: std::sync::Arc<HttpMetrics>) -> StreamGuard {
        m.sse_clients.fetch_add(1, Relaxed);
        StreamGuard(m)
    }
    pub fn metrics(&self) -> &HttpMetrics {
        &self.0
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.sse_clients.fetch_sub(1, Relaxed);
    }
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// Middleware: counts requests by matched route and status.
pub async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let res = next.run(req).await;
    if let Ok(mut m) = state.metrics.requests.lock() {
        *m.entry((route, res.status().as_u16())).or_default() += 1;
    }
    res
}

fn counter(out: &mut String, name: &str, help: &str, kind: &str, value: impl std::fmt::Display) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n");
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = String::with_capacity(8192);
    let m = &state.metrics;
    counter(&mut out, "consultease_sse_clients", "Live event streams connected.", "gauge", m.sse_clients.load(Relaxed));
    counter(
        &mut out,
        "consultease_sse_events_sent_total",
        "Events written to live streams.",
        "counter",
        m.sse_events_sent.load(Relaxed),
    );
    counter(
        &mut out,
        "consultease_sse_lagged_total",
        "Stream receivers that fell behind the bus.",
        "counter",
        m.sse_lagged.load(Relaxed),
    );
    counter(
        &mut out,
        "consultease_sse_snapshots_total",
        "Snapshots sent instead of a replay.",
        "counter",
        m.sse_snapshots.load(Relaxed),
    );
    match state.store.count_online_desks().await {
        Ok(n) => counter(&mut out, "consultease_desks_online", "Desk units online.", "gauge", n),
        Err(err) => tracing::warn!(error = %err, "metrics: cannot count online desks"),
    }
    out.push_str("# HELP consultease_http_requests_total HTTP requests by route and status.\n");
    out.push_str("# TYPE consultease_http_requests_total counter\n");
    if let Ok(reqs) = m.requests.lock() {
        let mut rows: Vec<_> = reqs.iter().collect();
        rows.sort();
        for ((route, status), n) in rows {
            let route = route.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(out, "consultease_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
        }
    }
    if let Some(s) = &state.ingest {
        let c = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            counter(out, name, help, "counter", v.load(Relaxed))
        };
        c(&mut out, "consultease_mqtt_received_total", "Desk messages received from the broker.", &s.received);
        c(&mut out, "consultease_mqtt_applied_total", "Desk messages that changed a desk's record.", &s.applied);
        c(&mut out, "consultease_mqtt_stale_total", "Desk messages older than what was recorded.", &s.stale);
        c(&mut out, "consultease_commit_batches_total", "Transactions committed by the ingest.", &s.batches);
        counter(
            &mut out,
            "consultease_mqtt_pending",
            "Desk messages received and not yet committed and acknowledged.",
            "gauge",
            s.received.load(Relaxed).saturating_sub(s.acked.load(Relaxed)),
        );
        c(
            &mut out,
            "consultease_mqtt_acked_total",
            "Desk messages acknowledged to the broker (after their commit).",
            &s.acked,
        );
        c(&mut out, "consultease_commit_errors_total", "Failed ingest commits (retried).", &s.commit_errors);
        c(&mut out, "consultease_desks_timed_out_total", "Desks marked offline by the timeout.", &s.desks_timed_out);
        out.push_str("# HELP consultease_mqtt_rejected_total Desk messages rejected, by reason.\n");
        out.push_str("# TYPE consultease_mqtt_rejected_total counter\n");
        for (reason, n) in s.rejected_by_reason() {
            let _ = writeln!(out, "consultease_mqtt_rejected_total{{reason=\"{reason}\"}} {n}");
        }
        counter(
            &mut out,
            "consultease_mqtt_connected",
            "Whether the ingest is connected to the broker.",
            "gauge",
            u8::from(s.connected.load(Relaxed)),
        );
        s.batch_size.write(&mut out, "consultease_commit_batch_size", "Desk messages per ingest transaction.");
        s.commit_seconds.write(
            &mut out,
            "consultease_commit_duration_seconds",
            "Time to apply and commit one ingest batch.",
        );
        s.apply_latency_seconds.write(
            &mut out,
            "consultease_apply_latency_seconds",
            "From a desk message's arrival to its commit.",
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out)
}
