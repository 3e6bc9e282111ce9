//! The ingest: MQTT client, batching, commit-then-ack, dead letters, and the desk timeout sweep.

use super::{IngestStatus, MqttConfig};
use crate::telemetry::Metrics;
use domain::protocol::{self, Reject};
use rumqttc::{AsyncClient, Event, EventLoop, Packet, Publish, QoS, SubscribeReasonCode};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use store::{Change, DeskOutcome, DeskWork, Outcome, Store, StoreError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Handle to a running ingest (it stops with the cancellation token given to `start`).
#[derive(Clone, Debug)]
pub struct IngestHandle {
    pub status: Arc<IngestStatus>,
    /// The server's MQTT client (for what the server publishes: the desks' queues).
    pub client: AsyncClient,
}

/// Capacity of rumqttc's request channel, which carries our acks to the event loop.
const REQUESTS: usize = 65_536;

/// The largest packet MQTT can carry (a 268,435,455-byte remaining length and its header).
///
/// Regression (outside test run): with a 64 KiB limit here, one 70,000-byte QoS 1 message on a desk
/// topic made the client drop the connection before it could be acknowledged; the broker
/// redelivered it on every reconnection, for ever (a restart did not help), and a retained one did
/// the same at every subscription. Now every packet the broker sends is read, the ingest rejects an
/// oversized payload as `too_large`, acknowledges it, and goes on. What bounds the memory a big
/// message costs is the broker's own limit (docs/DEPLOY.md: Mosquitto's `message_size_limit`).
const MAX_INCOMING_PACKET: usize = 268_435_455 + 5;

/// Starts the ingest, reporting its connection on `status` (one per process, kept across the
/// terms of a leader: see `crate::leader`).
pub fn start(
    config: MqttConfig,
    store: Store,
    metrics: Arc<Metrics>,
    status: Arc<IngestStatus>,
    shutdown: CancellationToken,
) -> IngestHandle {
    let mut opts = config.broker.mqtt_options(&config.client_id);
    opts.set_clean_session(false) // a persistent session: what arrives while we are down is kept
        .set_manual_acks(true) // acked only after the commit
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(MAX_INCOMING_PACKET, 64 * 1024)
        .set_request_channel_capacity(REQUESTS)
        .set_inflight(1000);
    let (client, mut eventloop) = AsyncClient::new(opts, REQUESTS);
    // Small packets leave at once. Why: rumqttc leaves Nagle's algorithm on, so a desk's queue
    // snapshot written while the connection awaited a TCP ack (for the PUBACK before it) waited
    // for the broker's delayed ack, up to 40 ms on Linux: measured as a flat 0-50 ms spread of
    // submit -> desk snapshot at any load (`loadgen --consult`, p50 23 ms, p99 47 ms at 0.2 cores).
    eventloop.network_options.set_tcp_nodelay(true);
    // Unbounded on purpose: the poll loop must never wait on the batcher. The acks the batcher
    // sends after each commit travel through the same event loop, so a poll loop blocked on a full
    // channel and a batcher blocked on a full request queue wait for each other for ever — seen
    // under sustained overload, when Mosquitto 2.0.11 delivered far more than its in-flight window
    // (65,537 unacknowledged messages). What bounds this queue is the broker's in-flight window;
    // `consultease_mqtt_pending` shows its length.
    let (tx, rx) = mpsc::unbounded_channel();
    let connected_since = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let poller = Poller {
        client: client.clone(),
        filters: protocol::subscriptions(&config.prefix),
        former: protocol::former_subscription(&config.prefix),
        tx,
        status: status.clone(),
        metrics: metrics.clone(),
        connected_since: connected_since.clone(),
    };
    tokio::spawn(poller.run(eventloop, shutdown.clone()));
    let batcher = Batcher {
        config: config.clone(),
        store: store.clone(),
        client: client.clone(),
        metrics: metrics.clone(),
        status: status.clone(),
    };
    tokio::spawn(batcher.run(rx, shutdown.clone()));
    tokio::spawn(sweep(config.desk_timeout, store, metrics, connected_since, shutdown));
    IngestHandle { status, client }
}

struct Poller {
    client: AsyncClient,
    filters: Vec<String>,
    /// What earlier versions subscribed to; dropped from our persistent session on connection.
    former: String,
    tx: mpsc::UnboundedSender<(Instant, Publish)>,
    status: Arc<IngestStatus>,
    metrics: Arc<Metrics>,
    connected_since: Arc<std::sync::Mutex<Option<Instant>>>,
}

impl Poller {
    async fn run(self, mut eventloop: EventLoop, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        let mut last_error_log: Option<Instant> = None;
        let mut connected_before = false;
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => break,
                ev = eventloop.poll() => ev,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    tracing::info!(session_present = ack.session_present, "connected to the MQTT broker");
                    if connected_before && !ack.session_present {
                        // The broker forgot us: another client connected with our client id (which
                        // ends our session), or the broker restarted without persistence. Messages
                        // queued for us in between are gone from the broker.
                        self.metrics.mqtt_session_lost.inc();
                        tracing::warn!(
                            "the MQTT broker had lost the server's session: another client may have connected with \
                             the server's client id; re-subscribing"
                        );
                    }
                    connected_before = true;
                    backoff = Duration::from_millis(100);
                    self.status.connected.store(true, Relaxed);
                    self.metrics.mqtt_connected.set(1);
                    set(&self.connected_since, Some(Instant::now()));
                    // Subscribe on every ConnAck: a broker that lost our session has no subscription.
                    let filters =
                        self.filters.iter().map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
                    if let Err(err) = self.client.try_subscribe_many(filters) {
                        tracing::error!(%err, "cannot queue the subscription");
                    }
                    if ack.session_present
                        && let Err(err) = self.client.try_unsubscribe(self.former.clone())
                    {
                        tracing::error!(%err, "cannot queue the unsubscription of the former filter");
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    if ack.return_codes.iter().any(|c| matches!(c, SubscribeReasonCode::Failure)) {
                        tracing::error!(filters = ?self.filters, "the broker refused our subscription");
                    } else {
                        self.status.subscribed.store(true, Relaxed);
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    self.metrics.mqtt_received.inc();
                    self.metrics.mqtt_pending.inc();
                    if self.tx.send((Instant::now(), publish)).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    self.status.connected.store(false, Relaxed);
                    self.status.subscribed.store(false, Relaxed);
                    self.metrics.mqtt_connected.set(0);
                    set(&self.connected_since, None);
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
        let _ = self.client.try_disconnect();
    }
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
            let topic: String = topic.chars().take(128).map(|c| if c.is_control() { '\u{FFFD}' } else { c }).collect();
            tracing::warn!(topic, reason, detail = %reject, suppressed = entry.1, "rejected desk message");
            *entry = (now, 0);
        } else {
            entry.1 += 1;
        }
    }
}

struct Batcher {
    config: MqttConfig,
    store: Store,
    client: AsyncClient,
    metrics: Arc<Metrics>,
    status: Arc<IngestStatus>,
}

/// A desk's queue ack or answer counts this fraction of a state message against `--batch-max`.
///
/// Why: acks and answers cost a second transaction per batch (`Store::desk_answers`: a dozen
/// statements whatever the batch's size), so they need larger batches to keep up. Measured with
/// `loadgen --consult` at 2,000 requests/s (≈ 10,000 desk messages/s): batches capped at 128 kept
/// up with 1,172 requests/s, at 512 with all 2,000 (reply → student p99 48 ms); while state
/// messages alone at 20,000/s had p99 15 ms in batches of 128 and 40-142 ms in batches of 512
/// (BENCHMARKS.md row 8b″).
const ANSWER_SHARE: usize = 4;

/// What became of a batch: the outcome of each valid message, by its index in the batch.
type Applied = Vec<(usize, Outcome)>;

/// What a message on `topic` counts against `--batch-max` × [`ANSWER_SHARE`]: a state message (or
/// anything unreadable) the whole share, an ack or an answer 1.
fn weight(prefix: &str, topic: &str) -> usize {
    match protocol::parse_topic(prefix, topic) {
        Ok((_, protocol::Kind::QueueAck | protocol::Kind::Reply)) => 1,
        _ => ANSWER_SHARE,
    }
}

impl Batcher {
    fn weight(&self, p: &Publish) -> usize {
        weight(&self.config.prefix, &p.topic)
    }

    async fn run(self, mut rx: mpsc::UnboundedReceiver<(Instant, Publish)>, shutdown: CancellationToken) {
        let mut rejects = RejectLog::default();
        let mut publishes: Vec<(Instant, Publish)> = Vec::with_capacity(self.config.batch_max);
        loop {
            publishes.clear();
            let first = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = rx.recv() => match p { Some(p) => p, None => break },
            };
            let mut weight = self.weight(&first.1);
            publishes.push(first);
            // Take whatever else is already there, then wait a little for more (bounded).
            let deadline = tokio::time::Instant::now() + self.config.batch_delay;
            while weight < self.config.batch_max * ANSWER_SHARE {
                let p = match rx.try_recv() {
                    Ok(p) => p,
                    Err(_) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(p)) => p,
                        _ => break,
                    },
                };
                weight += self.weight(&p.1);
                publishes.push(p);
            }

            let t0 = Instant::now();
            let (mut t_apply, mut t_answers) = (Duration::ZERO, Duration::ZERO);
            let mut changes = Vec::with_capacity(publishes.len());
            let mut index = Vec::with_capacity(publishes.len());
            let mut work = Vec::new();
            for (i, (_, p)) in publishes.iter().enumerate() {
                match parse(&self.config.prefix, p) {
                    Ok((change, payload)) => {
                        if matches!(
                            payload,
                            protocol::Payload::QueueAck { .. }
                                | protocol::Payload::Reply { .. }
                                | protocol::Payload::Heartbeat { .. }
                        ) {
                            work.push((changes.len(), change.desk().to_owned(), payload));
                        }
                        changes.push(change);
                        index.push(i);
                    }
                    Err(reject) => {
                        self.metrics.reject(reject.label());
                        rejects.log(&p.topic, &reject);
                    }
                }
            }
            if !changes.is_empty() {
                // The batch's two transactions in one turn of the write order (`store::WriteTurn`);
                // after a failure, each on its own with retries and narrowing down.
                let turn = self.store.write_turn().await;
                let (applied, mut turn): (Applied, _) = match self.store.apply_in_turn(&turn, &changes).await {
                    Ok(outcomes) => (index.iter().copied().zip(outcomes).collect(), Some(turn)),
                    Err(err) => {
                        drop(turn);
                        tracing::debug!(error = %err, "a desk batch failed in its turn; retrying it on its own");
                        let Some(applied) = self.apply(&changes, &index, &publishes, &shutdown).await else { break };
                        (applied, None)
                    }
                };
                t_apply = t0.elapsed();
                // Histograms first, outcome counters last: a reader that sees a message counted as
                // applied or stale also sees its batch and latency observations.
                self.metrics.commit_batches.inc();
                self.metrics.commit_batch_size.observe(changes.len() as f64);
                for (i, _) in &applied {
                    self.metrics.apply_latency_seconds.observe(publishes[*i].0.elapsed().as_secs_f64());
                }
                for (i, outcome) in &applied {
                    match outcome {
                        Outcome::Applied { .. } => self.metrics.mqtt_applied.inc(),
                        Outcome::Stale => self.metrics.mqtt_stale.inc(),
                        Outcome::UnknownDesk => {
                            rejects.log(&publishes[*i].1.topic, &Reject::UnknownDesk);
                            self.metrics.reject(Reject::UnknownDesk.label());
                            0
                        }
                        Outcome::Implausible => {
                            rejects.log(&publishes[*i].1.topic, &Reject::ImplausibleClock);
                            self.metrics.reject(Reject::ImplausibleClock.label());
                            0
                        }
                    };
                }
                // Acks and answers of registered desks, in arrival order, after the desks' liveness
                // above: one transaction for the batch.
                let (places, work): (Vec<usize>, Vec<DeskWork>) = work
                    .into_iter()
                    .filter_map(|(k, desk, payload)| {
                        let i = index[k];
                        let known = applied
                            .iter()
                            .any(|(j, o)| *j == i && matches!(o, Outcome::Applied { .. } | Outcome::Stale));
                        // A newer heartbeat of a registered desk: what it says about itself.
                        let fresh = applied.iter().any(|(j, o)| *j == i && matches!(o, Outcome::Applied { .. }));
                        if let (true, protocol::Payload::Heartbeat { info, .. }) = (fresh, &payload) {
                            let mut infos =
                                self.status.desk_info.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                            infos.insert(desk.clone(), info.clone());
                        }
                        known.then(|| desk_work(desk, payload)).flatten().map(|w| (i, w))
                    })
                    .unzip();
                if !work.is_empty() {
                    // The turn ends with this transaction, whatever becomes of it.
                    let in_turn = match turn.take() {
                        Some(t) => (self.store.desk_answers_in_turn(&t, &work).await)
                            .inspect_err(|err| tracing::debug!(error = %err, "desks' answers failed in their turn"))
                            .ok(),
                        None => None,
                    };
                    let outcomes = match in_turn {
                        Some(outcomes) => outcomes,
                        None => {
                            let Some(outcomes) = self.desk_work(&work, &shutdown).await else { break };
                            outcomes
                        }
                    };
                    t_answers = t0.elapsed();
                    for (i, outcome) in places.into_iter().zip(outcomes) {
                        self.metrics.desk_answer(outcome);
                        if let Some(reason) = outcome.reject_label() {
                            let reject =
                                if reason == "wrong_desk" { Reject::WrongDesk } else { Reject::UnknownRequest };
                            rejects.log(&publishes[i].1.topic, &reject);
                            self.metrics.reject(reject.label());
                        }
                    }
                }
            }
            // Committed, rejected or set aside: now the broker may forget them.
            for (_, p) in &publishes {
                match self.client.ack(p).await {
                    Ok(()) => {
                        self.metrics.mqtt_acked.inc();
                        self.metrics.mqtt_pending.dec();
                    }
                    Err(err) => tracing::warn!(%err, "cannot ack"),
                };
            }
            tracing::debug!(n = publishes.len(), ?t_apply, ?t_answers, total = ?t0.elapsed(), "ingest batch timing");
        }
    }

    /// Applies the batch's valid changes (`index[k]` is change k's place in `publishes`). A
    /// transient failure is retried until the database is back (nothing is acknowledged meanwhile,
    /// so the broker keeps the messages). A permanent failure is narrowed down to the messages
    /// that cause it by applying them one at a time; those go to the dead-letter table with the
    /// reason, and the rest apply. `None`: shutting down.
    async fn apply(
        &self,
        changes: &[Change],
        index: &[usize],
        publishes: &[(Instant, Publish)],
        shutdown: &CancellationToken,
    ) -> Option<Applied> {
        match self.retrying(shutdown, || self.store.apply(changes)).await? {
            Ok(outcomes) => return Some(index.iter().copied().zip(outcomes).collect()),
            Err(err) => {
                tracing::warn!(error = %err, batch = changes.len(), "a desk batch failed permanently; applying its messages one by one")
            }
        }
        let mut applied = Vec::with_capacity(changes.len());
        for (change, &i) in changes.iter().zip(index) {
            match self.retrying(shutdown, || self.store.apply(std::slice::from_ref(change))).await? {
                Ok(mut outcome) => applied.push((i, outcome.pop().unwrap_or(Outcome::Stale))),
                Err(err) => {
                    let p = &publishes[i].1;
                    let reason = err.to_string();
                    tracing::error!(topic = %p.topic, %reason, "desk message set aside (dead letter)");
                    match self.retrying(shutdown, || self.store.dead_letter(&p.topic, &p.payload, &reason)).await? {
                        Ok(_) => {
                            self.metrics.mqtt_dead_lettered.inc();
                        }
                        Err(err) => tracing::error!(error = %err, "cannot record a dead letter; dropping the message"),
                    }
                }
            }
        }
        Some(applied)
    }

    /// Desks' acks and answers, in one transaction, retried while the database is away. If the
    /// batch fails for good, each is tried alone; one that still fails is logged and counted as
    /// stale (and acknowledged: it cannot succeed later either). `None`: shutting down.
    async fn desk_work(&self, work: &[DeskWork], shutdown: &CancellationToken) -> Option<Vec<DeskOutcome>> {
        match self.retrying(shutdown, || self.store.desk_answers(work)).await? {
            Ok(outcomes) => return Some(outcomes),
            Err(e) => {
                tracing::warn!(error = %e, batch = work.len(), "desks' answers failed together; applying them one by one")
            }
        }
        let mut outcomes = Vec::with_capacity(work.len());
        for w in work {
            let outcome = match self.retrying(shutdown, || self.store.desk_answers(std::slice::from_ref(w))).await? {
                Ok(mut o) => o.pop().unwrap_or(DeskOutcome::Stale),
                Err(e) => {
                    tracing::error!(error = %e, work = ?w, "a desk's ack or answer failed");
                    DeskOutcome::Stale
                }
            };
            outcomes.push(outcome);
        }
        Some(outcomes)
    }

    /// Runs `op` until it succeeds or fails permanently, backing off (capped) on transient errors.
    /// `None` when shutdown interrupts the wait.
    async fn retrying<T, F, Fut>(&self, shutdown: &CancellationToken, mut op: F) -> Option<Result<T, StoreError>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut backoff = Duration::from_millis(50);
        loop {
            let started = Instant::now();
            match op().await {
                Ok(v) => {
                    self.metrics.commit_duration_seconds.observe(started.elapsed().as_secs_f64());
                    return Some(Ok(v));
                }
                Err(err) if err.is_transient() => {
                    self.metrics.commit_errors.inc();
                    tracing::error!(error = %err, retry_in = ?backoff, "cannot commit desk messages");
                    tokio::select! {
                        _ = shutdown.cancelled() => return None,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(err) => return Some(Err(err)),
            }
        }
    }
}

/// The store's work for an ack or an answer (`None` for other messages).
fn desk_work(desk: String, payload: protocol::Payload) -> Option<DeskWork> {
    match payload {
        protocol::Payload::QueueAck { version, .. } => Some(DeskWork::Ack { desk, version }),
        protocol::Payload::Reply { clock, request, action, note } => {
            Some(DeskWork::Reply { desk, clock, request, action, note })
        }
        _ => None,
    }
}

/// A desk message: its effect on the desk's record, and the payload (for acks and answers).
fn parse(prefix: &str, p: &Publish) -> Result<(Change, protocol::Payload), Reject> {
    let (desk, payload) = protocol::classify(prefix, &p.topic, &p.payload)?;
    Ok((Change::Message { desk: desk.to_owned(), message: payload.message() }, payload))
}

/// Every few seconds, times out desks silent for longer than `timeout`. Silence is only held
/// against a desk once we have been connected for the whole timeout (a desk is not to blame for
/// our own downtime).
async fn sweep(
    timeout: Duration,
    store: Store,
    metrics: Arc<Metrics>,
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
                metrics.desks_timed_out.inc_by(gone.len() as u64);
                tracing::info!(desks = ?gone, "desks timed out (silent for {timeout:?})");
            }
            Ok(_) => {}
            Err(err) => tracing::error!(error = %err, "desk timeout sweep failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ANSWER_SHARE, weight};

    /// A batch capped at `--batch-max` state messages holds `ANSWER_SHARE` times as many acks and
    /// answers; anything else (presence, unreadable topics) counts as a state message.
    #[test]
    fn acks_and_answers_weigh_a_share_of_a_state_message() {
        assert_eq!(weight("ce", "ce/desk/d1/state"), ANSWER_SHARE);
        assert_eq!(weight("ce", "ce/desk/d1/online"), ANSWER_SHARE);
        assert_eq!(weight("ce", "ce/desk/d1/heartbeat"), ANSWER_SHARE);
        assert_eq!(weight("ce", "ce/desk/d1/queue_ack"), 1);
        assert_eq!(weight("ce", "ce/desk/d1/reply"), 1);
        assert_eq!(weight("ce", "other/desk/d1/reply"), ANSWER_SHARE);
        assert_eq!(weight("ce", "ce/desk/+/reply"), ANSWER_SHARE);
    }
}
