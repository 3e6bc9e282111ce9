//! Simulated desk units, speaking docs/PROTOCOL.md exactly: a persisted boot counter, a will
//! reserved at connect, the announcement right after, state changes and heartbeats with a running
//! seq; the queue the server sends (subscribed on every connection, older snapshots ignored, each
//! new one acknowledged as a desk does once it is on the screen) and the buttons' answers. Used by
//! `consultease desk-sim`, the `--demo` server, tests and the benchmarks.

use crate::mqtt::BrokerAddr;
use anyhow::{Context, Result};
use domain::DeskClock;
use domain::consultation::{Action, State};
use domain::protocol::{DeskInfo, Kind, Payload, QueueSnapshot, queue_topic, topic};
use rumqttc::{AsyncClient, Event, LastWill, Packet, QoS};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// What a desk reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Presence {
    pub present: bool,
    pub busy: bool,
}

/// One connected simulated desk.
pub struct SimDesk {
    pub id: String,
    prefix: String,
    client: AsyncClient,
    boot: u32,
    seq: Arc<AtomicU64>,
    queue: watch::Receiver<Option<QueueSnapshot>>,
    task: tokio::task::JoinHandle<()>,
}

/// Reads, bumps and writes the desk's boot counter under `dir` (as firmware keeps it in flash).
pub fn next_boot(dir: &Path, desk: &str) -> Result<u32> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path: PathBuf = dir.join(format!("{desk}.boot"));
    let boot = match std::fs::read_to_string(&path) {
        Ok(s) => s.trim().parse::<u32>().unwrap_or(0).wrapping_add(1),
        Err(_) => 1,
    };
    std::fs::write(&path, boot.to_string()).with_context(|| format!("writing {}", path.display()))?;
    Ok(boot)
}

impl SimDesk {
    /// Connects as desk `id`: will reserved at seq 0, announcement at seq 1 (and a fresh will and
    /// announcement on every reconnection), then the initial `presence`.
    pub async fn connect(
        broker: &BrokerAddr,
        prefix: &str,
        id: &str,
        boot: u32,
        presence: Presence,
    ) -> Result<SimDesk> {
        // Seq 0 is reserved for the first connection's will and 1 for its announcement.
        let seq = Arc::new(AtomicU64::new(1));
        // With its own credential a desk is its id (client id = username); otherwise (anonymous,
        // where allowed) a client id of its own.
        let client_id = if broker.username.as_deref() == Some(id) { id.to_owned() } else { format!("desk-{id}") };
        let online_topic = topic(prefix, id, Kind::Online);
        let make_opts = {
            let (broker, online_topic, client_id) = (broker.clone(), online_topic.clone(), client_id.clone());
            move |will_seq: u64| {
                let mut opts = broker.mqtt_options(client_id.clone());
                opts.set_keep_alive(Duration::from_secs(15)).set_clean_session(true);
                let will = Payload::Online { clock: DeskClock::new(boot, will_seq), online: false }.encode();
                opts.set_last_will(LastWill::new(online_topic.clone(), will, QoS::AtLeastOnce, true));
                opts
            }
        };
        let (client, mut eventloop) = AsyncClient::new(make_opts(0), 64);
        // A button press leaves at once (rumqttc leaves Nagle's algorithm on; see mqtt::ingest).
        eventloop.network_options.set_tcp_nodelay(true);
        let connected = Arc::new(Notify::new());
        let (shown, queue) = watch::channel(None::<QueueSnapshot>);
        let task = {
            let (client, seq, connected, online_topic) = (client.clone(), seq.clone(), connected.clone(), online_topic);
            let (queue_topic, ack_topic) = (queue_topic(prefix, id), topic(prefix, id, Kind::QueueAck));
            tokio::spawn(async move {
                let mut will_seq = 0;
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            // This connection's will reserved `will_seq`; announce at the next seq.
                            let hello =
                                Payload::Online { clock: DeskClock::new(boot, will_seq + 1), online: true }.encode();
                            let _ = client.try_publish(online_topic.clone(), QoS::AtLeastOnce, true, hello);
                            // Every connection (clean session): the retained queue comes at once.
                            let _ = client.try_subscribe(queue_topic.clone(), QoS::AtLeastOnce);
                            connected.notify_one();
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) if p.topic == queue_topic => {
                            let Ok(snap) = QueueSnapshot::parse(&p.payload) else { continue };
                            // Never an older queue than the one on the screen (a late redelivery).
                            if shown.borrow().as_ref().is_some_and(|s| s.version >= snap.version) {
                                continue;
                            }
                            let clock = DeskClock::new(boot, seq.fetch_add(1, Relaxed) + 1);
                            let ack = Payload::QueueAck { clock, version: snap.version }.encode();
                            // try_: the poll loop never waits on its own request queue.
                            let _ = client.try_publish(ack_topic.clone(), QoS::AtLeastOnce, false, ack);
                            shown.send_replace(Some(snap));
                        }
                        Ok(_) => {}
                        Err(_) => {
                            // Reserve two seqs for the next connection: its will and its announcement.
                            will_seq = seq.fetch_add(2, Relaxed) + 1;
                            eventloop.mqtt_options = make_opts(will_seq);
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
            })
        };
        tokio::time::timeout(Duration::from_secs(10), connected.notified())
            .await
            .with_context(|| format!("desk {id}: no connection to the broker at {}:{}", broker.host, broker.port))?;
        let desk = SimDesk { id: id.to_owned(), prefix: prefix.to_owned(), client, boot, seq, queue, task };
        desk.report(presence).await?;
        Ok(desk)
    }

    fn next(&self) -> u64 {
        self.seq.fetch_add(1, Relaxed) + 1
    }

    /// Publishes a state message (QoS 1, retained). Returns its seq.
    pub async fn report(&self, p: Presence) -> Result<u64> {
        let seq = self.next();
        let payload =
            Payload::State { clock: DeskClock::new(self.boot, seq), present: p.present, busy: p.busy }.encode();
        self.client.publish(topic(&self.prefix, &self.id, Kind::State), QoS::AtLeastOnce, true, payload).await?;
        Ok(seq)
    }

    pub async fn heartbeat(&self, uptime_s: u64) -> Result<()> {
        let seq = self.next();
        let info = DeskInfo {
            uptime_s: Some(uptime_s),
            rssi: Some(-58),
            firmware: Some(concat!("desk-sim ", env!("CARGO_PKG_VERSION")).into()),
            ..DeskInfo::default()
        };
        let payload = Payload::Heartbeat { clock: DeskClock::new(self.boot, seq), info }.encode();
        self.client.publish(topic(&self.prefix, &self.id, Kind::Heartbeat), QoS::AtMostOnce, false, payload).await?;
        Ok(())
    }

    /// Answers request `request` with a button (QoS 1). Returns its seq.
    pub async fn reply(&self, request: i64, action: Action, note: Option<String>) -> Result<u64> {
        let seq = self.next();
        let payload = Payload::Reply { clock: DeskClock::new(self.boot, seq), request, action, note }.encode();
        self.client.publish(topic(&self.prefix, &self.id, Kind::Reply), QoS::AtLeastOnce, false, payload).await?;
        Ok(seq)
    }

    /// The queue on this desk's screen (the newest snapshot received; acknowledged already).
    pub fn queue(&self) -> watch::Receiver<Option<QueueSnapshot>> {
        self.queue.clone()
    }

    /// Goes offline politely: publishes `online:false` and disconnects.
    pub async fn shutdown(self) {
        let seq = self.next();
        let payload = Payload::Online { clock: DeskClock::new(self.boot, seq), online: false }.encode();
        let _ = self.client.publish(topic(&self.prefix, &self.id, Kind::Online), QoS::AtLeastOnce, true, payload).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = self.client.disconnect().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.task.abort();
    }

    /// Loses power: the connection drops without a DISCONNECT, so the broker publishes the will.
    pub fn kill(self) {
        self.task.abort();
    }
}

/// The simulated faculty member looks at a new request after this long…
const ANSWER: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(6));
/// …and the consultation takes this long.
const TALK: (Duration, Duration) = (Duration::from_secs(8), Duration::from_secs(30));

/// Sends `accept` for `id` after `answer`, then `done` after `talk` more.
fn answer_after(to: &tokio::sync::mpsc::UnboundedSender<(i64, Action)>, id: i64, answer: Duration, talk: Duration) {
    let to = to.clone();
    tokio::spawn(async move {
        tokio::time::sleep(answer).await;
        if to.send((id, Action::Accept)).is_ok() {
            tokio::time::sleep(talk).await;
            let _ = to.send((id, Action::Done));
        }
    });
}

/// One line per item of a queue snapshot, as a desk's screen would list them.
pub fn describe_queue(desk: &str, q: &QueueSnapshot) -> String {
    let mut out = format!(
        "{desk}: queue v{} for {} ({}), {} item(s){}",
        q.version,
        q.faculty.name,
        if q.accepting { "accepting" } else { "not accepting" },
        q.items.len(),
        if q.more > 0 { format!(" and {} more", q.more) } else { String::new() },
    );
    for i in &q.items {
        let course = i.course.as_deref().map(|c| format!("{c} · ")).unwrap_or_default();
        out.push_str(&format!(
            "\n  {:>6} {:<10} {} [{}] {course}{}",
            i.id,
            i.ticket,
            i.student,
            i.state.as_str(),
            i.message
        ));
    }
    out
}

/// A small deterministic random source (xorshift64*), enough for simulated presence.
pub struct Rng(u64);

impl Rng {
    pub fn seeded() -> Rng {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        Rng((t as u64) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A plausible presence: mostly in, sometimes busy, sometimes away.
    pub fn presence(&mut self) -> Presence {
        match self.next_u64() % 10 {
            0..=4 => Presence { present: true, busy: false },
            5..=6 => Presence { present: true, busy: true },
            _ => Presence { present: false, busy: false },
        }
    }

    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_millis().max(1) as u64;
        lo + Duration::from_millis(self.next_u64() % span)
    }
}

/// Runs `desks` with random presence changes every `min..max` and heartbeats every 30 s, and
/// answers what reaches each desk as a faculty member would: accept after a few seconds, done a
/// little later ([`answer_after`]), until `stop` is cancelled.
pub async fn run_random(desks: Vec<SimDesk>, min: Duration, max: Duration, stop: tokio_util::sync::CancellationToken) {
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for desk in desks {
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::seeded();
            let mut heartbeat = tokio::time::interval(Duration::from_secs(30));
            // Pinned outside the loop: a heartbeat must not restart the wait for the next change.
            let change = tokio::time::sleep(rng.between(min, max));
            tokio::pin!(change);
            let mut queue = desk.queue();
            let mut seen = HashSet::new();
            let (answers, mut answer) = tokio::sync::mpsc::unbounded_channel::<(i64, Action)>();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = heartbeat.tick() => {
                        let _ = desk.heartbeat(started.elapsed().as_secs()).await;
                    }
                    _ = &mut change => {
                        let _ = desk.report(rng.presence()).await;
                        change.as_mut().reset(tokio::time::Instant::now() + rng.between(min, max));
                    }
                    Ok(()) = queue.changed() => {
                        let fresh: Vec<i64> = queue
                            .borrow_and_update()
                            .iter()
                            .flat_map(|q| &q.items)
                            .filter(|i| matches!(i.state, State::Queued | State::Delivered) && seen.insert(i.id))
                            .map(|i| i.id)
                            .collect();
                        for id in fresh {
                            answer_after(&answers, id, rng.between(ANSWER.0, ANSWER.1), rng.between(TALK.0, TALK.1));
                        }
                    }
                    Some((id, action)) = answer.recv() => {
                        let _ = desk.reply(id, action, None).await;
                    }
                }
            }
            desk.shutdown().await;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}
