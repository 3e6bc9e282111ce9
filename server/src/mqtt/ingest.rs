//! The ingest: MQTT client, batching, commit-then-ack, and the desk timeout sweep.

use super::{IngestStats, MqttConfig};
use domain::protocol::{self, Reject};
use rumqttc::{AsyncClient, Event, EventLoop, Packet, Publish, QoS, SubscribeReasonCode};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use store::{Change, Outcome, Store};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Handle to a running ingest (it stops with the cancellation token given to `start`).
#[derive(Clone, Debug)]
pub struct IngestHandle {
    pub stats: Arc<IngestStats>,
}

/// Capacity of rumqttc's request channel, which carries our acks to the event loop.
const REQUESTS: usize = 65_536;

pub fn start(config: MqttConfig, store: Store, shutdown: CancellationToken) -> IngestHandle {
    let mut opts = config.broker.mqtt_options(&config.client_id);
    opts.set_clean_session(false) // a persistent session: what arrives while we are down is kept
        .set_manual_acks(true) // acked only after the commit
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(64 * 1024, 64 * 1024)
        .set_request_channel_capacity(REQUESTS)
        .set_inflight(1000);
    let (client, eventloop) = AsyncClient::new(opts, REQUESTS);
    let stats = Arc::new(IngestStats::default());
    // Unbounded on purpose: the poll loop must never wait on the batcher. The acks the batcher
    // sends after each commit travel through the same event loop, so a poll loop blocked on a full
    // channel and a batcher blocked on a full request queue wait for each other for ever — seen
    // under sustained overload, when Mosquitto 2.0.11 delivered far more than its in-flight window
    // (65,537 unacknowledged messages). What bounds this queue is the broker's in-flight window;
    // `consultease_mqtt_pending` shows its length.
    let (tx, rx) = mpsc::unbounded_channel();
    let connected_since = Arc::new(std::sync::Mutex::new(None::<Instant>));
    tokio::spawn(poll(
        eventloop,
        client.clone(),
        protocol::subscription(&config.prefix),
        tx,
        stats.clone(),
        connected_since.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(batch(config.clone(), store.clone(), client.clone(), rx, stats.clone(), shutdown.clone()));
    tokio::spawn(sweep(config.desk_timeout, store, stats.clone(), connected_since, shutdown));
    IngestHandle { stats }
}

async fn poll(
    mut eventloop: EventLoop,
    client: AsyncClient,
    filter: String,
    tx: mpsc::UnboundedSender<(Instant, Publish)>,
    stats: Arc<IngestStats>,
    connected_since: Arc<std::sync::Mutex<Option<Instant>>>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    let mut last_error_log: Option<Instant> = None;
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            ev = eventloop.poll() => ev,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                tracing::info!(session_present = ack.session_present, "connected to the MQTT broker");
                backoff = Duration::from_millis(100);
                stats.connected.store(true, Relaxed);
                set(&connected_since, Some(Instant::now()));
                // Subscribe on every ConnAck: a broker that lost our session has no subscription.
                if let Err(err) = client.try_subscribe(filter.clone(), QoS::AtLeastOnce) {
                    tracing::error!(%err, "cannot queue the subscription");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack.return_codes.iter().any(|c| matches!(c, SubscribeReasonCode::Failure)) {
                    tracing::error!(%filter, "the broker refused our subscription");
                } else {
                    stats.subscribed.store(true, Relaxed);
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                stats.received.fetch_add(1, Relaxed);
                if tx.send((Instant::now(), publish)).is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(err) => {
                stats.connected.store(false, Relaxed);
                stats.subscribed.store(false, Relaxed);
                set(&connected_since, None);
                if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(%err, retry_in = ?backoff, "MQTT connection failed");
                    last_error_log = Some(Instant::now());
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    let _ = client.try_disconnect();
}

fn set<T>(slot: &std::sync::Mutex<T>, value: T) {
    if let Ok(mut g) = slot.lock() {
        *g = value;
    }
}

/// Logs rejections at most once per second per reason, with how many were not logged.
#[derive(Default)]
struct RejectLog {
    last: HashMap<&'static str, (Instant, u64)>,
}

impl RejectLog {
    fn log(&mut self, topic: &str, reject: &Reject) {
        let reason = reject.label();
        let now = Instant::now();
        let entry = self.last.entry(reason).or_insert((now - Duration::from_secs(2), 0));
        if now.duration_since(entry.0) >= Duration::from_secs(1) {
            tracing::warn!(topic, reason, detail = %reject, suppressed = entry.1, "rejected desk message");
            *entry = (now, 0);
        } else {
            entry.1 += 1;
        }
    }
}

async fn batch(
    config: MqttConfig,
    store: Store,
    client: AsyncClient,
    mut rx: mpsc::UnboundedReceiver<(Instant, Publish)>,
    stats: Arc<IngestStats>,
    shutdown: CancellationToken,
) {
    let mut rejects = RejectLog::default();
    let mut publishes: Vec<(Instant, Publish)> = Vec::with_capacity(config.batch_max);
    loop {
        publishes.clear();
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = rx.recv() => match p { Some(p) => p, None => break },
        };
        publishes.push(first);
        // Take whatever else is already there, then wait a little for more (bounded).
        let deadline = tokio::time::Instant::now() + config.batch_delay;
        while publishes.len() < config.batch_max {
            match rx.try_recv() {
                Ok(p) => publishes.push(p),
                Err(_) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(p)) => publishes.push(p),
                    _ => break,
                },
            }
        }

        let mut changes = Vec::with_capacity(publishes.len());
        let mut arrivals = Vec::with_capacity(publishes.len());
        for (arrived, p) in &publishes {
            match parse(&config.prefix, p) {
                Ok(change) => {
                    changes.push(change);
                    arrivals.push(*arrived);
                }
                Err(reject) => {
                    stats.reject(reject.label());
                    rejects.log(&p.topic, &reject);
                }
            }
        }
        if !changes.is_empty() {
            let mut backoff = Duration::from_millis(50);
            let outcomes = loop {
                let started = Instant::now();
                match store.apply(&changes).await {
                    Ok(o) => {
                        stats.commit_seconds.observe(started.elapsed().as_secs_f64());
                        break Some(o);
                    }
                    Err(err) => {
                        // Not acked: the broker keeps the messages. Retry until the database is back.
                        stats.commit_errors.fetch_add(1, Relaxed);
                        tracing::error!(error = %err, batch = changes.len(), retry_in = ?backoff, "cannot commit desk messages");
                        tokio::select! {
                            _ = shutdown.cancelled() => break None,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            };
            let Some(outcomes) = outcomes else { break };
            // Histograms first, outcome counters last: a reader that sees a message counted as
            // applied or stale also sees its batch and latency observations.
            stats.batches.fetch_add(1, Relaxed);
            stats.batch_size.observe(changes.len() as f64);
            for arrived in &arrivals {
                stats.apply_latency_seconds.observe(arrived.elapsed().as_secs_f64());
            }
            for (change, outcome) in changes.iter().zip(&outcomes) {
                match outcome {
                    Outcome::Applied { .. } => stats.applied.fetch_add(1, Relaxed),
                    Outcome::Stale => stats.stale.fetch_add(1, Relaxed),
                    Outcome::UnknownDesk => {
                        rejects.log(change.desk(), &Reject::UnknownDesk);
                        stats.reject(Reject::UnknownDesk.label());
                        0
                    }
                };
            }
        }
        // Committed (or rejected): now the broker may forget them.
        for (_, p) in &publishes {
            match client.ack(p).await {
                Ok(()) => stats.acked.fetch_add(1, Relaxed),
                Err(err) => {
                    tracing::warn!(%err, "cannot ack");
                    0
                }
            };
        }
    }
}

fn parse(prefix: &str, p: &Publish) -> Result<Change, Reject> {
    let (desk, kind) = protocol::parse_topic(prefix, &p.topic)?;
    let payload = protocol::Payload::parse(kind, &p.payload)?;
    Ok(Change::Message { desk: desk.to_owned(), message: payload.message() })
}

/// Every few seconds, times out desks silent for longer than `timeout`. Silence is only held
/// against a desk once we have been connected for the whole timeout (a desk is not to blame for
/// our own downtime).
async fn sweep(
    timeout: Duration,
    store: Store,
    stats: Arc<IngestStats>,
    connected_since: Arc<std::sync::Mutex<Option<Instant>>>,
    shutdown: CancellationToken,
) {
    let every = (timeout / 4).clamp(Duration::from_millis(200), Duration::from_secs(5));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let since = connected_since.lock().ok().and_then(|g| *g);
        if since.is_none_or(|s| s.elapsed() < timeout) {
            continue;
        }
        let cutoff = store::now_ms() - i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        match store.time_out_silent_desks(cutoff).await {
            Ok(gone) if !gone.is_empty() => {
                stats.desks_timed_out.fetch_add(gone.len() as u64, Relaxed);
                tracing::info!(desks = ?gone, "desks timed out (silent for {timeout:?})");
            }
            Ok(_) => {}
            Err(err) => tracing::error!(error = %err, "desk timeout sweep failed"),
        }
    }
}
