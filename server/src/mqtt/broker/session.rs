//! A client's session: its subscriptions, the messages waiting for it, those sent and not yet
//! acknowledged. A persistent session (clean_session = 0) outlives its connection; messages that
//! arrive meanwhile wait here, up to a bound.

use super::policy::Identity;
use bytes::Bytes;
use rumqttc::QoS;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::{Notify, watch};

/// A message on its way to one client.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub topic: Arc<str>,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
}

impl Outgoing {
    pub fn size(&self) -> usize {
        self.topic.len() + self.payload.len() + 64
    }
}

pub struct Session {
    pub client_id: String,
    state: Mutex<State>,
    /// Woken when a message is queued for this session.
    pub wake: Notify,
    /// The generation of the connection that owns the session; a new connection bumps it, and
    /// the old one, watching, ends.
    pub owner: watch::Sender<u64>,
}

pub struct State {
    pub identity: Identity,
    pub clean: bool,
    pub connected: bool,
    /// Filter → granted QoS.
    pub subscriptions: HashMap<String, QoS>,
    pub queue: VecDeque<Outgoing>,
    /// Bytes held in `queue`.
    pub queued_bytes: usize,
    /// Sent at QoS 1, waiting for PUBACK, in send order.
    pub inflight: VecDeque<(u16, Outgoing)>,
    next_pkid: u16,
    /// QoS 2 packet ids received and not yet released (a re-sent PUBLISH with one is not routed again).
    pub awaiting_release: HashSet<u16>,
    /// Most messages, and bytes, `queue` holds; more are dropped (and counted).
    pub limit: (usize, usize),
    /// Most messages in flight at once.
    pub window: usize,
}

impl Session {
    pub fn new(client_id: &str, identity: Identity, clean: bool, limit: (usize, usize), window: usize) -> Session {
        Session {
            client_id: client_id.to_owned(),
            state: Mutex::new(State {
                identity,
                clean,
                connected: false,
                subscriptions: HashMap::new(),
                queue: VecDeque::new(),
                queued_bytes: 0,
                inflight: VecDeque::new(),
                next_pkid: 0,
                awaiting_release: HashSet::new(),
                limit,
                window,
            }),
            wake: Notify::new(),
            owner: watch::channel(0).0,
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `msg` for this client. Returns false when the session is full (the message is
    /// dropped) or the client is offline and the message is QoS 0 (not kept, as in Mosquitto).
    pub fn offer(&self, msg: Outgoing) -> bool {
        let mut st = self.state();
        if !st.connected && msg.qos == QoS::AtMostOnce {
            return false;
        }
        if st.queue.len() >= st.limit.0 || st.queued_bytes + msg.size() > st.limit.1 {
            return false;
        }
        st.queued_bytes += msg.size();
        st.queue.push_back(msg);
        drop(st);
        self.wake.notify_one();
        true
    }
}

impl State {
    /// The next message to send, if the window allows: QoS 1 ones get a packet id and stay in
    /// flight until acknowledged.
    pub fn next_to_send(&mut self) -> Option<(u16, Outgoing)> {
        if self.inflight.len() >= self.window {
            // QoS 0 messages need no window; send them only behind what is in flight, in order.
            return None;
        }
        let msg = self.queue.pop_front()?;
        self.queued_bytes = self.queued_bytes.saturating_sub(msg.size());
        if msg.qos == QoS::AtMostOnce {
            return Some((0, msg));
        }
        let pkid = self.fresh_pkid();
        self.inflight.push_back((pkid, msg.clone()));
        Some((pkid, msg))
    }

    fn fresh_pkid(&mut self) -> u16 {
        loop {
            self.next_pkid = self.next_pkid.wrapping_add(1).max(1);
            if !self.inflight.iter().any(|(id, _)| *id == self.next_pkid) {
                return self.next_pkid;
            }
        }
    }

    pub fn acked(&mut self, pkid: u16) {
        if let Some(at) = self.inflight.iter().position(|(id, _)| *id == pkid) {
            self.inflight.remove(at);
        }
    }
}
