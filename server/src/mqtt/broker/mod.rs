//! The embedded MQTT 3.1.1 broker, so the default run needs nothing installed.
//!
//! Written for this product rather than embedding a general broker (docs/ARCHITECTURE.md says
//! why): every connection is authenticated and every publish and subscription checked by a
//! [`Policy`]; published topics are validated; memory is bounded by construction (a queue limit
//! per session, a message delivered once per client however many of its filters match, a cap on
//! retained topics, sessions and connections); an oversized packet disconnects its sender. The wire
//! format is `rumqttc`'s codec, so client and broker share one implementation of the packets.
//!
//! Supported: QoS 0 and 1 (QoS 2 is accepted from publishers and delivered at QoS 1), retained
//! messages, last wills, persistent sessions, keep-alive, session takeover.

mod connection;
pub mod policy;
mod session;
pub mod topic;

pub use policy::{Credentials, Identity, Open, Policy, ServerCredential};

use crate::telemetry::Metrics;
use anyhow::Context;
use bytes::Bytes;
use rumqttc::QoS;
use session::{Outgoing, Session};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Limits of the embedded broker.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest packet accepted from a client; a larger one disconnects it.
    pub max_packet: usize,
    pub max_connections: usize,
    pub max_sessions: usize,
    pub max_retained: usize,
    pub max_subscriptions: usize,
    /// Messages and bytes a client's queue holds (the server's own session gets `server_queue`).
    pub client_queue: (usize, usize),
    pub server_queue: (usize, usize),
    /// Messages in flight (sent, not yet acknowledged) per client, and for the server.
    pub client_window: usize,
    pub server_window: usize,
    /// A CONNECT must arrive within this long after the TCP connection.
    pub connect_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_packet: 64 * 1024,
            max_connections: 20_000,
            max_sessions: 50_000,
            max_retained: 100_000,
            max_subscriptions: 64,
            client_queue: (1_000, 1 << 20),
            // What the server may have waiting while it restarts: minutes of a busy campus.
            server_queue: (1_000_000, 256 << 20),
            client_window: 32,
            server_window: 1_000,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// A running embedded broker.
#[derive(Clone)]
pub struct EmbeddedBroker {
    pub addr: SocketAddr,
    inner: Arc<Broker>,
}

impl EmbeddedBroker {
    /// Also takes MQTT over TLS on `bind` (the same broker: sessions, policy and limits are
    /// shared). Returns the address bound.
    pub async fn listen_tls(
        &self,
        bind: SocketAddr,
        acceptor: tokio_rustls::TlsAcceptor,
        stop: CancellationToken,
    ) -> anyhow::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("the embedded MQTT broker cannot listen for TLS on {bind}"))?;
        let addr = listener.local_addr()?;
        tokio::spawn(accept(listener, self.inner.clone(), Some(acceptor), stop));
        tracing::info!(%addr, "embedded MQTT broker listening for TLS");
        Ok(addr)
    }

    /// Ends the connection of `client_id`, if any (its session stays). Returns whether it had one.
    pub fn disconnect(&self, client_id: &str) -> bool {
        let session = self.inner.sessions().get(client_id).cloned();
        session.map(|s| s.owner.send_modify(|g| *g += 1)).is_some()
    }

    /// Clients connected now.
    pub fn connections(&self) -> usize {
        self.inner.connections.load(Relaxed)
    }

    /// Messages queued for every session, in total (for memory checks).
    pub fn queued(&self) -> usize {
        self.inner.sessions().values().map(|s| s.state().queue.len()).sum()
    }
}

struct Broker {
    limits: Limits,
    policy: Arc<dyn Policy>,
    metrics: Arc<Metrics>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    subscriptions: RwLock<Index>,
    retained: Mutex<HashMap<Arc<str>, (Bytes, QoS)>>,
    connections: AtomicUsize,
    /// When a refusal was last logged, and how many were not logged since (a client retrying a
    /// refused connection every half second must not flood the log).
    last_warning: Mutex<(Option<std::time::Instant>, u64)>,
}

/// Which sessions want which topics: exact filters by topic, wildcard filters in a list (a desk
/// subscribes to its own exact topic; the few wildcard subscribers are scanned).
#[derive(Default)]
struct Index {
    exact: HashMap<String, Vec<(Arc<Session>, QoS)>>,
    wildcard: Vec<(String, Arc<Session>, QoS)>,
}

impl Index {
    fn add(&mut self, filter: &str, session: &Arc<Session>, qos: QoS) {
        self.remove(filter, session);
        if topic::has_wildcard(filter) {
            self.wildcard.push((filter.to_owned(), session.clone(), qos));
        } else {
            self.exact.entry(filter.to_owned()).or_default().push((session.clone(), qos));
        }
    }

    fn remove(&mut self, filter: &str, session: &Arc<Session>) {
        if topic::has_wildcard(filter) {
            self.wildcard.retain(|(f, s, _)| !(f == filter && Arc::ptr_eq(s, session)));
        } else if let Some(list) = self.exact.get_mut(filter) {
            list.retain(|(s, _)| !Arc::ptr_eq(s, session));
            if list.is_empty() {
                self.exact.remove(filter);
            }
        }
    }

    /// Every session with a filter matching `topic`, once each, at the highest QoS granted.
    fn targets(&self, topic: &str) -> Vec<(Arc<Session>, QoS)> {
        let mut out: Vec<(Arc<Session>, QoS)> = Vec::new();
        let exact = self.exact.get(topic).into_iter().flatten().map(|(s, q)| (s, *q));
        let wild = self.wildcard.iter().filter(|(f, _, _)| topic::matches(f, topic)).map(|(_, s, q)| (s, *q));
        for (s, q) in exact.chain(wild) {
            match out.iter_mut().find(|(o, _)| Arc::ptr_eq(o, s)) {
                Some(seen) => seen.1 = qos_max(seen.1, q),
                None => out.push((s.clone(), q)),
            }
        }
        out
    }
}

/// Starts the broker on `bind` (port 0 picks a free port); returns once it listens. Fails clearly
/// when the port is taken. It runs until `stop`.
pub async fn start(
    bind: SocketAddr,
    policy: Arc<dyn Policy>,
    limits: Limits,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> anyhow::Result<EmbeddedBroker> {
    let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| {
        format!(
            "cannot start the embedded MQTT broker on {bind}: the port is taken (another broker?). \
             Use --mqtt-url mqtt://{bind} to connect to that broker, or --mqtt-bind to choose another port"
        )
    })?;
    let addr = listener.local_addr()?;
    let inner = Arc::new(Broker {
        limits,
        policy,
        metrics,
        sessions: Mutex::default(),
        subscriptions: RwLock::default(),
        retained: Mutex::default(),
        connections: AtomicUsize::new(0),
        last_warning: Mutex::new((None, 0)),
    });
    tokio::spawn(accept(listener, inner.clone(), None, stop));
    tracing::info!(%addr, "embedded MQTT broker listening");
    Ok(EmbeddedBroker { addr, inner })
}

/// Takes connections on `listener` until `stop`: plain MQTT, or with `tls` a TLS session first
/// (its handshake gets the same time as a CONNECT would; a failed one is counted).
async fn accept(
    listener: tokio::net::TcpListener,
    broker: Arc<Broker>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: CancellationToken,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(err) => {
                    tracing::warn!(%err, tls = tls.is_some(), "MQTT broker: cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if broker.connections.load(Relaxed) >= broker.limits.max_connections {
            broker.metrics.broker_refused("too_many_connections");
            continue; // dropped: the client sees the connection close
        }
        let _ = stream.set_nodelay(true);
        let Some(acceptor) = tls.clone() else {
            tokio::spawn(connection::serve(broker.clone(), stream, peer, stop.clone()));
            continue;
        };
        let (broker, stop) = (broker.clone(), stop.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(broker.limits.connect_timeout, acceptor.accept(stream)).await {
                Ok(Ok(session)) => connection::serve_stream(broker, session, peer, stop).await,
                Ok(Err(err)) => {
                    broker.metrics.broker_refused("tls_handshake");
                    tracing::debug!(%peer, %err, "MQTT TLS handshake failed");
                }
                Err(_) => broker.metrics.broker_refused("tls_handshake"),
            }
        });
    }
}

impl Broker {
    /// Counts a refusal and logs it, at most once a second (saying how many were not logged).
    fn refuse(&self, reason: &'static str, client_id: &str, detail: &str) {
        self.metrics.broker_refused(reason);
        let mut last = self.last_warning.lock().unwrap_or_else(PoisonError::into_inner);
        if last.0.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            last.1 += 1;
            return;
        }
        let client_id: String =
            client_id.chars().take(128).map(|c| if c.is_control() { '\u{FFFD}' } else { c }).collect();
        tracing::warn!(reason, %client_id, detail, suppressed = last.1, "MQTT broker refused a client");
        *last = (Some(std::time::Instant::now()), 0);
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Delivers a published message to every matching session; keeps it when it is retained.
    fn route(&self, topic: &str, payload: Bytes, qos: QoS, retain: bool) {
        let qos = qos_min(qos, QoS::AtLeastOnce);
        let topic: Arc<str> = Arc::from(topic);
        if retain {
            let mut kept = self.retained.lock().unwrap_or_else(PoisonError::into_inner);
            if payload.is_empty() {
                kept.remove(&topic);
            } else if kept.len() < self.limits.max_retained || kept.contains_key(&topic) {
                kept.insert(topic.clone(), (payload.clone(), qos));
            } else {
                self.metrics.broker_refused("retained_full");
            }
        }
        let targets = self.subscriptions.read().unwrap_or_else(PoisonError::into_inner).targets(&topic);
        for (session, granted) in targets {
            let msg =
                Outgoing { topic: topic.clone(), payload: payload.clone(), qos: qos_min(qos, granted), retain: false };
            if !session.offer(msg) {
                self.metrics.broker_dropped.inc();
            }
        }
    }

    /// The retained messages matching `filter`, for a new subscription.
    fn retained_for(&self, filter: &str, granted: QoS) -> Vec<Outgoing> {
        let kept = self.retained.lock().unwrap_or_else(PoisonError::into_inner);
        kept.iter()
            .filter(|(t, _)| topic::matches(filter, t))
            .map(|(t, (p, q))| Outgoing {
                topic: t.clone(),
                payload: p.clone(),
                qos: qos_min(*q, granted),
                retain: true,
            })
            .collect()
    }
}

pub(crate) fn qos_min(a: QoS, b: QoS) -> QoS {
    if (a as u8) <= (b as u8) { a } else { b }
}

fn qos_max(a: QoS, b: QoS) -> QoS {
    if (a as u8) >= (b as u8) { a } else { b }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str) -> Arc<Session> {
        Arc::new(Session::new(id, Identity::Anonymous, true, (10, 1 << 20), 10))
    }

    #[test]
    fn a_message_reaches_each_session_once_at_its_highest_granted_qos() {
        let (a, b) = (session("a"), session("b"));
        let mut index = Index::default();
        for f in ["p/desk/+/state", "p/#", "p/desk/d1/state", "#"] {
            index.add(f, &a, QoS::AtMostOnce);
        }
        index.add("p/desk/d1/+", &a, QoS::AtLeastOnce);
        index.add("p/desk/d2/state", &b, QoS::AtLeastOnce);
        let t = index.targets("p/desk/d1/state");
        assert_eq!(t.len(), 1, "one delivery however many filters match");
        assert!(Arc::ptr_eq(&t[0].0, &a) && t[0].1 == QoS::AtLeastOnce);
        assert_eq!(index.targets("p/desk/d2/state").len(), 2);
        index.remove("p/desk/d2/state", &b);
        assert_eq!(index.targets("p/desk/d2/state").len(), 1);
        assert!(!index.exact.contains_key("p/desk/d2/state"), "empty entries go");
    }
}
