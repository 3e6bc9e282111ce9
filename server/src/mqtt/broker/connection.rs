//! One client connection: CONNECT and authentication, then packets both ways until it ends.

use super::policy::{Identity, Refusal};
use super::session::{Outgoing, Session};
use super::{Broker, topic};
use bytes::BytesMut;
use rumqttc::mqttbytes::Error as CodecError;
use rumqttc::{
    ConnAck, ConnectReturnCode, LastWill, Packet, PubAck, PubComp, PubRec, Publish, QoS, SubAck, SubscribeReasonCode,
    UnsubAck,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// How a connection ended: a DISCONNECT is clean (no will); anything else publishes the will.
enum End {
    Clean,
    Abnormal(&'static str),
}

/// Serves a plain TCP connection.
pub(super) async fn serve(broker: Arc<Broker>, stream: TcpStream, peer: SocketAddr, stop: CancellationToken) {
    let (rd, wr) = stream.into_split();
    serve_halves(broker, Box::new(rd), Box::new(wr), peer, stop).await
}

/// Serves a connection over any stream (a TLS session).
pub(super) async fn serve_stream<S>(broker: Arc<Broker>, stream: S, peer: SocketAddr, stop: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(stream);
    serve_halves(broker, Box::new(rd), Box::new(wr), peer, stop).await
}

type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

async fn serve_halves(broker: Arc<Broker>, rd: Reader, wr: Writer, peer: SocketAddr, stop: CancellationToken) {
    broker.connections.fetch_add(1, Relaxed);
    broker.metrics.broker_connections.inc();
    let mut conn = Conn { broker: broker.clone(), rd, wr, buf: BytesMut::with_capacity(4096), out: BytesMut::new() };
    if let Err(reason) = conn.session(peer, stop).await {
        tracing::debug!(%peer, reason, "MQTT connection closed");
    }
    broker.connections.fetch_sub(1, Relaxed);
    broker.metrics.broker_connections.dec();
}

struct Conn {
    broker: Arc<Broker>,
    rd: Reader,
    wr: Writer,
    buf: BytesMut,
    out: BytesMut,
}

impl Conn {
    async fn session(&mut self, peer: SocketAddr, stop: CancellationToken) -> Result<(), &'static str> {
        let limits = self.broker.limits.clone();
        let connect = match tokio::time::timeout(limits.connect_timeout, self.read_packet()).await {
            Ok(Ok(Packet::Connect(c))) => c,
            Ok(Ok(_)) => return Err("the first packet was not CONNECT"),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("no CONNECT in time"),
        };
        if connect.protocol != rumqttc::Protocol::V4 {
            self.send(Packet::ConnAck(ConnAck::new(ConnectReturnCode::RefusedProtocolVersion, false))).await?;
            return Err("not MQTT 3.1.1");
        }
        let client_id = if connect.client_id.is_empty() && connect.clean_session {
            format!("anon-{}-{}", peer.port(), store::random_hex(6).unwrap_or_default())
        } else {
            connect.client_id.clone()
        };
        if client_id.is_empty() {
            self.send(Packet::ConnAck(ConnAck::new(ConnectReturnCode::BadClientId, false))).await?;
            return Err("a persistent session needs a client id");
        }
        let identity = match self.broker.policy.authenticate(&client_id, connect.login.as_ref()).await {
            Ok(identity) => identity,
            Err(refusal) => {
                self.broker.refuse(refusal.label(), &client_id, &format!("CONNECT from {peer}"));
                let code = match refusal {
                    Refusal::BadCredentials => ConnectReturnCode::BadUserNamePassword,
                    Refusal::NotAuthorized => ConnectReturnCode::NotAuthorized,
                    Refusal::Unavailable => ConnectReturnCode::ServiceUnavailable,
                };
                self.send(Packet::ConnAck(ConnAck::new(code, false))).await?;
                return Err("refused");
            }
        };
        let Some((session, present, generation)) = self.attach(&client_id, identity.clone(), connect.clean_session)
        else {
            self.send(Packet::ConnAck(ConnAck::new(ConnectReturnCode::ServiceUnavailable, false))).await?;
            return Err("too many sessions");
        };
        let will = connect.last_will.clone();
        self.send(Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, present))).await?;

        let keep_alive = match connect.keep_alive {
            0 => Duration::from_secs(24 * 3600),
            s => Duration::from_millis(u64::from(s) * 1500),
        };
        let mut owner = session.owner.subscribe();
        // Counted from the last packet received (not from the last wake-up: a client that only
        // receives must still show it is alive).
        let mut deadline = tokio::time::Instant::now() + keep_alive;
        let end = loop {
            // Send what is queued (within the window) before waiting again.
            if let Err(e) = self.flush(&session).await {
                break End::Abnormal(e);
            }
            tokio::select! {
                _ = stop.cancelled() => break End::Abnormal("broker stopping"),
                changed = owner.changed() => {
                    if changed.is_err() || *owner.borrow() != generation {
                        break End::Abnormal("taken over by a new connection with the same client id");
                    }
                }
                _ = session.wake.notified() => {}
                read = tokio::time::timeout_at(deadline, self.read_packet()) => match read {
                    Err(_) => break End::Abnormal("keep-alive expired"),
                    Ok(Err(e)) => break End::Abnormal(e),
                    Ok(Ok(Packet::Disconnect)) => break End::Clean,
                    Ok(Ok(packet)) => {
                        deadline = tokio::time::Instant::now() + keep_alive;
                        if let Err(e) = self.handle(packet, &session, &identity).await {
                            break End::Abnormal(e);
                        }
                    }
                },
            }
        };
        self.detach(&session, generation);
        if let (End::Abnormal(_), Some(will)) = (&end, will) {
            self.publish_will(&identity, will);
        }
        match end {
            End::Clean => Ok(()),
            End::Abnormal(reason) => Err(reason),
        }
    }

    /// Takes over (or creates) the client's session. Returns the session, whether it existed, and
    /// this connection's generation; `None` when the broker holds as many sessions as it may.
    fn attach(&self, client_id: &str, identity: Identity, clean: bool) -> Option<(Arc<Session>, bool, u64)> {
        let limits = &self.broker.limits;
        let (queue, window) = match identity {
            Identity::Server => (limits.server_queue, limits.server_window),
            Identity::Anonymous | Identity::Desk(_) => (limits.client_queue, limits.client_window),
        };
        let mut sessions = self.broker.sessions();
        let existing = sessions.get(client_id).cloned();
        let (session, present) = match existing {
            Some(old) if !clean && old.state().identity == identity => (old, true),
            old => {
                if let Some(old) = old {
                    // A clean start (or another identity): the old session goes, with its subscriptions.
                    self.forget(&old);
                    old.owner.send_modify(|g| *g += 1);
                } else if sessions.len() >= limits.max_sessions {
                    return None;
                }
                let fresh = Arc::new(Session::new(client_id, identity, clean, queue, window));
                sessions.insert(client_id.to_owned(), fresh.clone());
                (fresh, false)
            }
        };
        drop(sessions);
        // Ends the previous connection of this session, if any (takeover).
        let mut generation = 0;
        session.owner.send_modify(|g| {
            *g += 1;
            generation = *g;
        });
        let mut st = session.state();
        st.connected = true;
        st.clean = clean;
        // Unacknowledged messages go out again first, marked as duplicates.
        let resend: Vec<Outgoing> = st.inflight.drain(..).map(|(_, m)| m).collect();
        for m in resend.into_iter().rev() {
            st.queued_bytes += m.size();
            st.queue.push_front(m);
        }
        drop(st);
        session.wake.notify_one();
        Some((session, present, generation))
    }

    /// The connection ended: a clean session goes; a persistent one waits for its client.
    fn detach(&self, session: &Arc<Session>, generation: u64) {
        if *session.owner.borrow() != generation {
            return; // taken over: the session belongs to the new connection now
        }
        let clean = {
            let mut st = session.state();
            st.connected = false;
            st.clean
        };
        if clean {
            let mut sessions = self.broker.sessions();
            if sessions.get(&session.client_id).is_some_and(|s| Arc::ptr_eq(s, session)) {
                sessions.remove(&session.client_id);
            }
            drop(sessions);
            self.forget(session);
        }
    }

    fn forget(&self, session: &Arc<Session>) {
        let filters: Vec<String> = session.state().subscriptions.keys().cloned().collect();
        let mut index = self.broker.subscriptions.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        for f in filters {
            index.remove(&f, session);
        }
    }

    fn publish_will(&self, identity: &Identity, will: LastWill) {
        if topic::valid_name(&will.topic) && self.broker.policy.may_publish(identity, &will.topic) {
            self.broker.route(&will.topic, will.message, will.qos, will.retain);
        } else {
            self.broker.metrics.broker_refused("will_not_allowed");
        }
    }

    async fn handle(&mut self, packet: Packet, session: &Arc<Session>, who: &Identity) -> Result<(), &'static str> {
        match packet {
            Packet::Publish(p) => self.publish(p, session, who).await,
            Packet::PubAck(ack) => {
                session.state().acked(ack.pkid);
                Ok(())
            }
            Packet::PubRel(rel) => {
                session.state().awaiting_release.remove(&rel.pkid);
                self.send(Packet::PubComp(PubComp::new(rel.pkid))).await
            }
            // We deliver at most at QoS 1: no PUBREC/PUBCOMP come back from our clients.
            Packet::PubRec(_) | Packet::PubComp(_) => Ok(()),
            Packet::Subscribe(sub) => {
                let mut codes = Vec::with_capacity(sub.filters.len());
                let mut retained = Vec::new();
                let mut denied = false;
                for f in sub.filters {
                    let allowed = topic::valid_filter(&f.path) && self.broker.policy.may_subscribe(who, &f.path);
                    let room = {
                        let st = session.state();
                        st.subscriptions.contains_key(&f.path)
                            || st.subscriptions.len() < self.broker.limits.max_subscriptions
                    };
                    denied |= !allowed;
                    if !allowed || !room {
                        self.broker.metrics.broker_refused(if allowed {
                            "too_many_subscriptions"
                        } else {
                            "subscribe_denied"
                        });
                        tracing::warn!(client_id = %printable(&session.client_id), filter = %printable(&f.path), "MQTT subscription refused");
                        codes.push(SubscribeReasonCode::Failure);
                        continue;
                    }
                    let granted = super::qos_min(f.qos, QoS::AtLeastOnce);
                    session.state().subscriptions.insert(f.path.clone(), granted);
                    self.broker
                        .subscriptions
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .add(&f.path, session, granted);
                    retained.extend(self.broker.retained_for(&f.path, granted));
                    codes.push(SubscribeReasonCode::Success(granted));
                }
                self.send(Packet::SubAck(SubAck::new(sub.pkid, codes))).await?;
                if denied {
                    // Told (the SUBACK above), then dropped: asking for another desk's queue or
                    // for a wildcard is not a mistake firmware makes.
                    return Err("subscription not allowed");
                }
                for m in retained {
                    session.offer(m);
                }
                Ok(())
            }
            Packet::Unsubscribe(unsub) => {
                for f in &unsub.topics {
                    session.state().subscriptions.remove(f);
                    self.broker
                        .subscriptions
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .remove(f, session);
                }
                self.send(Packet::UnsubAck(UnsubAck::new(unsub.pkid))).await
            }
            Packet::PingReq => self.send(Packet::PingResp).await,
            Packet::Connect(_) => Err("a second CONNECT"),
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp | Packet::Disconnect => {
                Err("a packet only a broker sends")
            }
        }
    }

    async fn publish(&mut self, p: Publish, session: &Arc<Session>, who: &Identity) -> Result<(), &'static str> {
        if !topic::valid_name(&p.topic) {
            self.broker.refuse("bad_topic", &session.client_id, &printable(&p.topic));
            return Err("a published topic with a wildcard or NUL");
        }
        if !self.broker.policy.may_publish(who, &p.topic) {
            self.broker.refuse("publish_denied", &session.client_id, &printable(&p.topic));
            return Err("publish not allowed");
        }
        match p.qos {
            QoS::AtMostOnce => self.broker.route(&p.topic, p.payload, p.qos, p.retain),
            QoS::AtLeastOnce => {
                self.broker.route(&p.topic, p.payload, p.qos, p.retain);
                self.send(Packet::PubAck(PubAck::new(p.pkid))).await?;
            }
            QoS::ExactlyOnce => {
                let first = session.state().awaiting_release.insert(p.pkid);
                if first {
                    self.broker.route(&p.topic, p.payload, p.qos, p.retain);
                }
                self.send(Packet::PubRec(PubRec::new(p.pkid))).await?;
            }
        }
        Ok(())
    }

    /// Writes queued messages while the window allows.
    async fn flush(&mut self, session: &Arc<Session>) -> Result<(), &'static str> {
        loop {
            let batch: Vec<(u16, Outgoing)> = {
                let mut st = session.state();
                std::iter::from_fn(|| st.next_to_send()).take(256).collect()
            };
            if batch.is_empty() {
                return Ok(());
            }
            for (pkid, m) in batch {
                let mut p = Publish::from_bytes(m.topic.as_ref(), m.qos, m.payload);
                p.pkid = pkid;
                p.retain = m.retain;
                Packet::Publish(p).write(&mut self.out, usize::MAX).map_err(|_| "cannot encode a PUBLISH")?;
            }
            self.write_out().await?;
        }
    }

    async fn send(&mut self, packet: Packet) -> Result<(), &'static str> {
        packet.write(&mut self.out, usize::MAX).map_err(|_| "cannot encode a packet")?;
        self.write_out().await
    }

    async fn write_out(&mut self) -> Result<(), &'static str> {
        let out = self.out.split();
        self.wr.write_all(&out).await.map_err(|_| "the connection broke while writing")
    }

    /// Reads one packet. An oversized or malformed one ends the connection.
    async fn read_packet(&mut self) -> Result<Packet, &'static str> {
        loop {
            match Packet::read(&mut self.buf, self.broker.limits.max_packet) {
                Ok(p) => return Ok(p),
                Err(CodecError::InsufficientBytes(_)) => {}
                Err(CodecError::PayloadSizeLimitExceeded(_)) => {
                    self.broker.metrics.broker_refused("too_large");
                    return Err("a packet over the size limit");
                }
                Err(_) => {
                    self.broker.metrics.broker_refused("malformed_packet");
                    return Err("a malformed packet");
                }
            }
            if self.buf.capacity() - self.buf.len() < 1024 {
                self.buf.reserve(4096);
            }
            match self.rd.read_buf(&mut self.buf).await {
                Ok(0) => return Err("the client closed the connection"),
                Ok(_) => {}
                Err(_) => return Err("the connection broke while reading"),
            }
        }
    }
}

/// A client-chosen string fit for a log line.
fn printable(s: &str) -> String {
    s.chars().take(128).map(|c| if c.is_control() { '\u{FFFD}' } else { c }).collect()
}
