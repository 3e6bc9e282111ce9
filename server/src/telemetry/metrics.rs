//! Every metric the server exports, registered once with the Prometheus project's own client
//! (`prometheus-client`), which writes the OpenMetrics text format. A new metric is one field and
//! one `register` line; `GET /metrics` encodes the registry (see `http::metrics`).

use domain::protocol::Reject;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Seconds, for durations from 100 µs to 10 s.
const SECONDS: [f64; 15] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];
/// Counts, for batch sizes.
const SIZES: [f64; 12] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub status: u16,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    // The MQTT ingest.
    pub mqtt_received: Counter,
    pub mqtt_applied: Counter,
    pub mqtt_stale: Counter,
    pub mqtt_rejected: Family<ReasonLabel, Counter>,
    pub mqtt_acked: Counter,
    pub mqtt_dead_lettered: Counter,
    pub mqtt_connected: Gauge,
    pub mqtt_pending: Gauge,
    pub mqtt_session_lost: Counter,
    pub desk_answers: Family<ReasonLabel, Counter>,
    pub commit_batches: Counter,
    pub commit_errors: Counter,
    pub desks_timed_out: Counter,
    pub events_pruned: Counter,
    pub commit_batch_size: Histogram,
    pub commit_duration_seconds: Histogram,
    pub apply_latency_seconds: Histogram,
    // The embedded broker.
    pub broker_connections: Gauge,
    pub broker_refused: Family<ReasonLabel, Counter>,
    pub broker_dropped: Counter,
    // Read from the database at scrape time.
    pub desks_online: Gauge,
    pub dead_letters: Gauge,
    // The HTTP layer and the live streams.
    pub sse_clients: Gauge,
    pub sse_events_sent: Counter,
    pub sse_lagged: Counter,
    pub sse_snapshots: Counter,
    pub http_requests: Family<RouteLabels, Counter>,
    // Several instances (PostgreSQL).
    pub leader: Gauge,
    pub leader_terms: Counter,
    pub leader_lost: Counter,
    pub notify_lag_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub notify_gaps: Counter,
    pub log_events: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("consultease"),
            mqtt_received: Counter::default(),
            mqtt_applied: Counter::default(),
            mqtt_stale: Counter::default(),
            mqtt_rejected: Family::default(),
            mqtt_acked: Counter::default(),
            mqtt_dead_lettered: Counter::default(),
            mqtt_connected: Gauge::default(),
            mqtt_pending: Gauge::default(),
            mqtt_session_lost: Counter::default(),
            desk_answers: Family::default(),
            commit_batches: Counter::default(),
            commit_errors: Counter::default(),
            desks_timed_out: Counter::default(),
            events_pruned: Counter::default(),
            leader: Gauge::default(),
            leader_terms: Counter::default(),
            leader_lost: Counter::default(),
            notify_lag_seconds: Gauge::default(),
            notify_gaps: Counter::default(),
            log_events: Counter::default(),
            commit_batch_size: Histogram::new(SIZES),
            commit_duration_seconds: Histogram::new(SECONDS),
            apply_latency_seconds: Histogram::new(SECONDS),
            broker_connections: Gauge::default(),
            broker_refused: Family::default(),
            broker_dropped: Counter::default(),
            desks_online: Gauge::default(),
            dead_letters: Gauge::default(),
            sse_clients: Gauge::default(),
            sse_events_sent: Counter::default(),
            sse_lagged: Counter::default(),
            sse_snapshots: Counter::default(),
            http_requests: Family::default(),
        };
        // Every reason is exported from the start, at 0: a dashboard can tell "none" from "unknown".
        for reason in Reject::LABELS {
            let _ = m.mqtt_rejected.get_or_create(&ReasonLabel { reason });
        }
        let r = &mut m.registry;
        r.register("mqtt_received", "Desk messages received from the broker", m.mqtt_received.clone());
        r.register("mqtt_applied", "Desk messages that changed a desk's record", m.mqtt_applied.clone());
        r.register("mqtt_stale", "Desk messages older than what was recorded", m.mqtt_stale.clone());
        r.register("mqtt_rejected", "Desk messages rejected, by reason", m.mqtt_rejected.clone());
        r.register("mqtt_acked", "Desk messages acknowledged to the broker (after their commit)", m.mqtt_acked.clone());
        r.register(
            "mqtt_dead_lettered",
            "Desk messages set aside because applying them failed for a permanent reason",
            m.mqtt_dead_lettered.clone(),
        );
        r.register("mqtt_connected", "Whether the ingest is connected to the broker", m.mqtt_connected.clone());
        r.register(
            "mqtt_pending",
            "Desk messages received and not yet committed and acknowledged",
            m.mqtt_pending.clone(),
        );
        r.register(
            "mqtt_session_lost",
            "Reconnections on which the broker had lost the server's session (another client took its id?)",
            m.mqtt_session_lost.clone(),
        );
        r.register(
            "desk_answers",
            "Desk acks and answers to consultation requests, by outcome (applied, stale, unknown_request, wrong_desk)",
            m.desk_answers.clone(),
        );
        r.register("commit_batches", "Transactions committed by the ingest", m.commit_batches.clone());
        r.register("commit_errors", "Failed ingest commits (retried)", m.commit_errors.clone());
        r.register("desks_timed_out", "Desks marked offline by the timeout", m.desks_timed_out.clone());
        r.register(
            "events_pruned",
            "Board events deleted by the retention (--event-retention)",
            m.events_pruned.clone(),
        );
        r.register("commit_batch_size", "Desk messages per ingest transaction", m.commit_batch_size.clone());
        r.register(
            "commit_duration_seconds",
            "Time to apply and commit one ingest batch",
            m.commit_duration_seconds.clone(),
        );
        r.register(
            "apply_latency_seconds",
            "From a desk message's arrival to its commit",
            m.apply_latency_seconds.clone(),
        );
        r.register("broker_connections", "Clients connected to the embedded MQTT broker", m.broker_connections.clone());
        r.register(
            "broker_refused",
            "Connections, publishes and subscriptions the embedded broker refused, by reason",
            m.broker_refused.clone(),
        );
        r.register(
            "broker_dropped",
            "Messages the embedded broker dropped because a client's queue was full",
            m.broker_dropped.clone(),
        );
        r.register("desks_online", "Desk units online", m.desks_online.clone());
        r.register("dead_letters", "Desk messages held in the dead-letter table", m.dead_letters.clone());
        r.register("sse_clients", "Live event streams connected", m.sse_clients.clone());
        r.register("sse_events_sent", "Events written to live streams", m.sse_events_sent.clone());
        r.register("sse_lagged", "Stream receivers that fell behind the bus", m.sse_lagged.clone());
        r.register("sse_snapshots", "Snapshots sent instead of a replay", m.sse_snapshots.clone());
        r.register("http_requests", "HTTP requests by route and status", m.http_requests.clone());
        r.register("leader", "1 while this instance is the ingest leader", m.leader.clone());
        r.register("leader_terms", "Times this instance became the ingest leader", m.leader_terms.clone());
        r.register(
            "leader_lost",
            "Times this instance lost the leader's lock without stopping (its database connection ended)",
            m.leader_lost.clone(),
        );
        r.register(
            "notify_lag_seconds",
            "From the newest board event's write to its publication on this instance, at the last read of the shared log",
            m.notify_lag_seconds.clone(),
        );
        r.register(
            "notify_gaps",
            "Times the database's notifications were lost (each one read the log again from the cursor)",
            m.notify_gaps.clone(),
        );
        r.register("log_events", "Board events read from the shared log", m.log_events.clone());
        m
    }

    pub fn reject(&self, reason: &'static str) {
        self.mqtt_rejected.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub fn desk_answer(&self, outcome: store::DeskOutcome) {
        let reason = match outcome {
            store::DeskOutcome::Applied => "applied",
            store::DeskOutcome::Stale => "stale",
            store::DeskOutcome::UnknownRequest => "unknown_request",
            store::DeskOutcome::WrongDesk => "wrong_desk",
        };
        self.desk_answers.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub fn broker_refused(&self, reason: &'static str) {
        self.broker_refused.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// How many times the embedded broker refused something for `reason`.
    pub fn broker_refusals(&self, reason: &'static str) -> u64 {
        self.broker_refused.get_or_create(&ReasonLabel { reason }).get()
    }

    /// How many messages were rejected for `reason` so far.
    pub fn rejected(&self, reason: &'static str) -> u64 {
        self.mqtt_rejected.get_or_create(&ReasonLabel { reason }).get()
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8192);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
