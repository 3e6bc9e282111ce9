//! `consultease-loadgen` (`cargo xtask loadgen -- …`): drives a running server the way desk units and browsers would, and checks
//! and measures what comes out.
//!
//! - D desks publish state changes at a total rate R on a fixed schedule (open loop: a slow server
//!   cannot slow the generator and hide its latency; latency counts from the *scheduled* time);
//! - K SSE clients follow `/api/events` from the snapshot's cursor and check that per faculty member
//!   versions arrive consecutively (no gap, nothing missing) and never go backwards;
//! - latency publish → SSE receipt over all clients, throughput, the server's RSS and CPU from /proc,
//!   and the floor: a raw MQTT round trip through the same broker, no server.

pub mod chaos;
pub mod consult;
mod procstat;

use anyhow::{Context, Result, bail};
use clap::Args;
use domain::DeskClock;
use domain::protocol::{Kind, Payload, topic};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde::{Deserialize, Serialize};
use server::config::{BrokerArgs, parse_duration};
use server::mqtt::BrokerAddr;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use store::{NewFaculty, Store};
use testkit::sse::SseConn;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone, Args)]
pub struct LoadgenArgs {
    /// The server under test. Several instances of one deployment: comma-separated URLs; the SSE
    /// clients are spread over them in turn (the first one answers everything else).
    #[arg(long, default_value = "http://127.0.0.1:3000", value_delimiter = ',')]
    pub url: Vec<String>,
    /// The server's database (the load desks are registered in it, once).
    #[arg(long, env = "CONSULTEASE_DATABASE_URL", default_value = "sqlite://data/consultease.db")]
    pub database_url: String,
    /// The broker the server ingests from.
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// Simulated desks (registered as `load-0001`… in the server's database, once).
    #[arg(long, default_value_t = 100)]
    pub desks: usize,
    /// Total state changes per second, over all desks.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// How long to publish.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// SSE clients following and checking the stream.
    #[arg(long, default_value_t = 10)]
    pub clients: usize,
    /// How long to measure the raw MQTT floor before the run (0 skips it).
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub floor_duration: Duration,
    /// How long to wait, after publishing, for the clients to receive everything.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// The server's process id, for RSS/CPU (default: a running `consultease serve`).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Write the report as JSON here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Also time this many sequential `GET /` (server-side rendering of the whole board).
    #[arg(long, default_value_t = 0)]
    pub ssr_requests: usize,
    /// While publishing, also send this many wrong-password admin sign-ins per second, each from
    /// one of 200 loopback source addresses (127.0.0.2…) in turn, for names that do not exist: every
    /// one costs the server a full argon2id verification (no address or account gets locked out
    /// within a 20 s run at 50/s), the worst case a distributed guesser can impose.
    #[arg(long, default_value_t = 0.0)]
    pub sign_in_flood: f64,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Each desk connects on its own, with its own credential (client id = user name = desk id), as
    /// real desk units do against a server that refuses anonymous clients: one MQTT connection per
    /// desk, and every publish checked against that desk's topics. Without it one anonymous
    /// connection publishes for every desk (the server needs --mqtt-allow-anonymous).
    #[arg(long)]
    pub desk_credentials: bool,
    /// Drive the consultation loop instead of presence: `--students` signed-in students submit
    /// requests at `--rate` per second to the `--desks` desks, which acknowledge, accept and finish
    /// each (see `consult`).
    #[arg(long)]
    pub consult: bool,
    /// Consultation mode: students, each following their own stream.
    #[arg(long, default_value_t = 1000)]
    pub students: usize,
}

/// What the sign-in flood saw.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Flood {
    pub sent: u64,
    /// Answers by HTTP status.
    pub statuses: std::collections::BTreeMap<u16, u64>,
    pub latency: Latency,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Latency {
    pub samples: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    fn of(mut micros: Vec<u32>) -> Latency {
        if micros.is_empty() {
            return Latency::default();
        }
        micros.sort_unstable();
        let q = |p: f64| f64::from(micros[((micros.len() - 1) as f64 * p).round() as usize]) / 1000.0;
        Latency {
            samples: micros.len() as u64,
            p50_ms: q(0.5),
            p90_ms: q(0.9),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            max_ms: q(1.0),
        }
    }
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Resources {
    /// Before the SSE clients connected.
    pub rss_before_kb: u64,
    /// Once they are connected, before publishing.
    pub rss_connected_kb: u64,
    pub rss_max_kb: u64,
    pub rss_after_kb: u64,
    /// Average CPU (cores) while publishing.
    pub cpu_cores: f64,
    /// Every 10 s while publishing: (seconds since start, changes published, server RSS in KB).
    pub rss_series: Vec<(u64, u64, u64)>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    pub desks: usize,
    pub clients: usize,
    pub target_rate: f64,
    pub duration_s: f64,
    pub published: u64,
    pub publish_rate: f64,
    /// Changes committed by the server during the run (sum of version increments).
    pub committed: u64,
    pub deliveries: u64,
    pub delivery_rate: f64,
    pub latency: Latency,
    pub floor: Latency,
    pub lost: u64,
    pub regressions: u64,
    pub gaps: u64,
    pub snapshots: u64,
    pub stale: u64,
    pub rejected: u64,
    pub server: Option<Resources>,
    pub generator_cpu_cores: f64,
    /// `GET /` round trips (new connection each), when asked for.
    pub ssr: Option<Latency>,
    pub board_size: usize,
    pub sign_in_flood: Option<Flood>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.lost == 0 && self.regressions == 0 && self.gaps == 0
    }
}

#[derive(Deserialize)]
struct Row {
    id: i64,
    version: i64,
}

#[derive(Deserialize)]
struct Snap {
    cursor: i64,
    faculty: Vec<Row>,
}

/// What every client and the publisher share.
struct Shared {
    start: Instant,
    /// faculty id → desk index.
    index: HashMap<i64, usize>,
    /// Version of each desk's faculty row before the run.
    base: Vec<i64>,
    /// Messages published per desk.
    sent: Vec<AtomicU64>,
    /// Scheduled publish time (ns since `start`) of each desk's k-th message.
    sched: Vec<Vec<AtomicU64>>,
    publishing_done: AtomicBool,
    received: AtomicU64,
    /// Clients whose stream has started (or failed to): publishing waits for all of them.
    settled: AtomicU64,
    /// Bounds the connections being opened at once, so none waits on a full accept queue (and
    /// counts its SYN retransmissions as latency).
    connecting: tokio::sync::Semaphore,
    stop: tokio_util::sync::CancellationToken,
}

#[derive(Default)]
struct ClientResult {
    held: Vec<i64>,
    latencies: Vec<u32>,
    regressions: u64,
    gaps: u64,
    snapshots: u64,
    error: Option<String>,
}

fn host_port(url: &str) -> Result<(String, u16)> {
    let u = url::Url::parse(url).with_context(|| format!("bad server URL {url:?}"))?;
    Ok((u.host_str().context("server URL without host")?.to_owned(), u.port_or_known_default().unwrap_or(80)))
}

/// A plain HTTP/1.1 GET (Connection: close); returns the body.
async fn http_get(host: &str, port: u16, path: &str) -> Result<String> {
    let mut s = tokio::net::TcpStream::connect((host, port)).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").context("no HTTP response")?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("GET {path}: {}", head.lines().next().unwrap_or(""));
    }
    Ok(body.to_owned())
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok()).sum()
}

pub(crate) async fn seed(store: &Store, n: usize) -> Result<Vec<String>> {
    let have: std::collections::HashSet<String> = store.list_desks().await?.into_iter().map(|d| d.id).collect();
    let mut ids = Vec::with_capacity(n);
    for i in 1..=n {
        let id = format!("load-{i:04}");
        if !have.contains(&id) {
            let nf = NewFaculty { name: format!("Load {i:04}"), department: "Load test".into(), email: None };
            let fid = store.add_faculty(&nf).await?;
            store.add_desk(&id, fid).await?;
        }
        ids.push(id);
    }
    Ok(ids)
}

fn mqtt_client(broker: &BrokerAddr, name: &str) -> (AsyncClient, rumqttc::EventLoop) {
    let mut opts = broker.mqtt_options(format!("{name}-{}", std::process::id()));
    opts.set_keep_alive(Duration::from_secs(30)).set_inflight(1000).set_request_channel_capacity(200_000);
    opts.set_max_packet_size(64 * 1024, 64 * 1024);
    let (client, mut eventloop) = AsyncClient::new(opts, 200_000);
    // As a desk unit's firmware should: small packets leave at once, not after the peer's delayed
    // TCP ack (rumqttc leaves Nagle's algorithm on).
    eventloop.network_options.set_tcp_nodelay(true);
    (client, eventloop)
}

/// Polls an event loop until it fails for good; reports ConnAck once.
fn drive(
    mut el: rumqttc::EventLoop,
    connected: tokio::sync::oneshot::Sender<()>,
    on_publish: Option<tokio::sync::mpsc::UnboundedSender<(Instant, bytes::Bytes)>>,
) {
    tokio::spawn(async move {
        let mut connected = Some(connected);
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Some(tx) = connected.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Some(tx) = &on_publish {
                        let _ = tx.send((Instant::now(), p.payload));
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
}

/// A client with exactly `client_id` (a desk connecting as itself).
async fn connect_exact(broker: &BrokerAddr, client_id: &str) -> Result<AsyncClient> {
    let mut opts = broker.mqtt_options(client_id);
    opts.set_keep_alive(Duration::from_secs(30)).set_inflight(100).set_request_channel_capacity(10_000);
    let (client, mut eventloop) = AsyncClient::new(opts, 10_000);
    eventloop.network_options.set_tcp_nodelay(true);
    let (tx, rx) = tokio::sync::oneshot::channel();
    drive(eventloop, tx, None);
    tokio::time::timeout(Duration::from_secs(10), rx)
        .await
        .with_context(|| format!("{client_id}: no connection to the broker"))??;
    Ok(client)
}

async fn connect(
    broker: &BrokerAddr,
    name: &str,
    sink: Option<tokio::sync::mpsc::UnboundedSender<(Instant, bytes::Bytes)>>,
) -> Result<AsyncClient> {
    let (client, el) = mqtt_client(broker, name);
    let (tx, rx) = tokio::sync::oneshot::channel();
    drive(el, tx, sink);
    tokio::time::timeout(Duration::from_secs(10), rx).await.context("no connection to the broker")??;
    Ok(client)
}

/// Wrong-password sign-ins at `rate` per second for `duration`, round-robin over 200 loopback
/// source addresses, each for a name that does not exist.
async fn sign_in_flood(
    host: String,
    port: u16,
    rate: f64,
    duration: Duration,
    stop: tokio_util::sync::CancellationToken,
) -> Flood {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u16, u32)>();
    let start = Instant::now();
    let total = (rate * duration.as_secs_f64()) as u64;
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    while sent < total && !stop.is_cancelled() {
        tick.tick().await;
        while sent < due(start.elapsed(), rate, total) {
            let (host, tx) = (host.clone(), tx.clone());
            let source = std::net::Ipv4Addr::new(127, 0, 0, 2 + (sent % 200) as u8);
            let body = format!(r#"{{"username":"flood-{sent}","password":"not the password {sent}"}}"#);
            tokio::spawn(async move {
                let t = Instant::now();
                let status = http_post_from(source, &host, port, "/api/admin/sign-in", &body).await.unwrap_or(0);
                let _ = tx.send((status, t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32));
            });
            sent += 1;
        }
    }
    drop(tx);
    let mut flood = Flood { sent, ..Flood::default() };
    let mut lat = Vec::with_capacity(sent as usize);
    while let Some((status, micros)) = rx.recv().await {
        *flood.statuses.entry(status).or_default() += 1;
        lat.push(micros);
    }
    flood.latency = Latency::of(lat);
    flood
}

/// A plain HTTP/1.1 POST of JSON from a given local address, as a page of the server's would send
/// it; returns the status.
async fn http_post_from(source: std::net::Ipv4Addr, host: &str, port: u16, path: &str, body: &str) -> Result<u16> {
    let ip: std::net::IpAddr = host.parse().context("the flood needs the server's IP address")?;
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind((source, 0).into())?;
    let mut s = socket.connect((ip, port).into()).await?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\nSec-Fetch-Site: same-origin\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let head = String::from_utf8_lossy(&buf);
    head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).context("no HTTP status")
}

/// How many of `total` messages are due `elapsed` into a schedule of `rate` per second: message
/// `i` is due at `i / rate` (so message 0 at once). Latency counts from that instant.
fn due(elapsed: Duration, rate: f64, total: u64) -> u64 {
    ((elapsed.as_secs_f64() * rate).floor() as u64).saturating_add(1).min(total)
}

/// Publish → receipt through the broker alone, at `rate` for `duration`.
async fn floor(broker: &BrokerAddr, prefix: &str, rate: f64, duration: Duration) -> Result<Latency> {
    if duration.is_zero() {
        return Ok(Latency::default());
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let sub = connect(broker, "loadgen-floor-sub", Some(tx)).await?;
    let topic = format!("{prefix}-floor/{}", std::process::id());
    sub.subscribe(&topic, QoS::AtLeastOnce).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let publ = connect(broker, "loadgen-floor-pub", None).await?;
    let start = Instant::now();
    let total = (rate * duration.as_secs_f64()) as u64;
    let collector = tokio::spawn(async move {
        let mut lat = Vec::with_capacity(total as usize);
        while let Ok(Some((at, payload))) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            let sent = u64::from_le_bytes(payload[..8].try_into().unwrap_or([0; 8]));
            let ns = at.duration_since(start).as_nanos() as u64;
            lat.push(((ns.saturating_sub(sent)) / 1000).min(u64::from(u32::MAX)) as u32);
            if lat.len() as u64 >= total {
                break;
            }
        }
        lat
    });
    let mut i = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    while i < total {
        tick.tick().await;
        let due = due(start.elapsed(), rate, total);
        while i < due {
            let sched = (i as f64 / rate * 1e9) as u64;
            publ.publish(&topic, QoS::AtLeastOnce, false, sched.to_le_bytes().to_vec()).await?;
            i += 1;
        }
    }
    let lat = collector.await?;
    let _ = publ.disconnect().await;
    let _ = sub.disconnect().await;
    Ok(Latency::of(lat))
}

async fn client(shared: Arc<Shared>, host: String, port: u16, cursor: i64) -> ClientResult {
    let mut r = ClientResult { held: shared.base.clone(), ..Default::default() };
    let opened = {
        let _permit = shared.connecting.acquire().await;
        SseConn::connect(&host, port, &format!("/api/events?after={cursor}")).await
    };
    shared.settled.fetch_add(1, Relaxed);
    let mut conn = match opened {
        Ok(c) => c,
        Err(e) => {
            r.error = Some(format!("{e:#}"));
            return r;
        }
    };
    let finished = |r: &ClientResult| {
        shared.publishing_done.load(Relaxed)
            && r.held.iter().enumerate().all(|(i, v)| *v >= shared.base[i] + shared.sent[i].load(Relaxed) as i64)
    };
    loop {
        let ev = tokio::select! {
            _ = shared.stop.cancelled() => break,
            ev = conn.next() => ev,
        };
        let ev = match ev {
            Ok(Some(ev)) => ev,
            Ok(None) => {
                r.error = Some("the stream ended".into());
                break;
            }
            Err(e) => {
                r.error = Some(format!("{e:#}"));
                break;
            }
        };
        let now = shared.start.elapsed().as_nanos() as u64;
        match ev.event.as_str() {
            "faculty" => {
                let Ok(row) = serde_json::from_str::<Row>(&ev.data) else { continue };
                let Some(&i) = shared.index.get(&row.id) else { continue };
                shared.received.fetch_add(1, Relaxed);
                let held = r.held[i];
                if row.version <= held {
                    r.regressions += 1;
                    continue;
                }
                if row.version > held + 1 {
                    r.gaps += (row.version - held - 1) as u64;
                }
                r.held[i] = row.version;
                let k = (row.version - shared.base[i] - 1) as usize;
                if let Some(at) = shared.sched[i].get(k).map(|a| a.load(Relaxed)).filter(|a| *a > 0) {
                    r.latencies.push((now.saturating_sub(at) / 1000).min(u64::from(u32::MAX)) as u32);
                }
            }
            "snapshot" => {
                r.snapshots += 1;
                if let Ok(snap) = serde_json::from_str::<Snap>(&ev.data) {
                    for row in snap.faculty {
                        if let Some(&i) = shared.index.get(&row.id) {
                            r.held[i] = r.held[i].max(row.version);
                        }
                    }
                }
            }
            _ => {}
        }
        if finished(&r) {
            break;
        }
    }
    r
}

/// Runs the load; the report says whether every change arrived, in order, once.
pub async fn run(args: &LoadgenArgs) -> Result<Report> {
    server::sys::raise_fd_limit();
    let database_url = args.database_url.as_str();
    let broker = args.broker.connect_to()?;
    let prefix = args.broker.mqtt_prefix.as_str();
    let (host, port) = host_port(args.url.first().context("no --url")?)?;
    let streams_at = args.url.iter().map(|u| host_port(u)).collect::<Result<Vec<_>>>()?;
    let d = args.desks.max(1);
    let say = |msg: &str| {
        if !args.quiet {
            eprintln!("loadgen: {msg}");
        }
    };

    say(&format!("registering {d} desks"));
    let store = Store::connect(database_url).await.context("opening the server's database to register desks")?;
    let desk_ids = seed(&store, d).await?;
    let known: HashMap<String, (Option<i64>, Option<i64>)> =
        store.list_desks().await?.into_iter().map(|x| (x.id, (x.faculty_id, x.boot))).collect();
    store.close().await;
    let mut faculty_of = Vec::with_capacity(d);
    let mut boots = Vec::with_capacity(d);
    for id in &desk_ids {
        let (fid, boot) = known.get(id).copied().unwrap_or((None, None));
        faculty_of.push(fid.context("load desk without a faculty member")?);
        boots.push(u32::try_from(boot.unwrap_or(0) + 1).unwrap_or(1));
    }

    // Desk credentials: one password for every load desk (hashed once), each desk its own connection.
    let publishers: Vec<AsyncClient> = if args.desk_credentials {
        say("giving each desk a credential and its own connection");
        let password = auth::mqtt_password::generate()?;
        let hash = auth::mqtt_password::hash(&password, auth::mqtt_password::ITERATIONS)?;
        let store = Store::connect(database_url).await?;
        for id in &desk_ids {
            store.set_desk_mqtt_hash(id, &hash, None).await?;
        }
        store.close().await;
        let mut out = Vec::with_capacity(d);
        for id in &desk_ids {
            let desk = BrokerAddr { username: Some(id.clone()), password: Some(password.clone()), ..broker.clone() };
            out.push(connect_exact(&desk, id).await?);
        }
        out
    } else {
        vec![connect(&broker, "loadgen", None).await?]
    };
    let publisher_of = |desk: usize| &publishers[desk % publishers.len()];
    say("announcing the desks (a fresh boot each)");
    for (i, id) in desk_ids.iter().enumerate() {
        let publisher = publisher_of(i);
        let b = boots[i];
        let hello = Payload::Online { clock: DeskClock::new(b, 1), online: true };
        publisher.publish(topic(prefix, id, Kind::Online), QoS::AtLeastOnce, false, hello.encode()).await?;
        let away = Payload::State { clock: DeskClock::new(b, 2), present: false, busy: false };
        publisher.publish(topic(prefix, id, Kind::State), QoS::AtLeastOnce, false, away.encode()).await?;
    }
    // Wait until the board is quiet (every announcement applied) and take its snapshot.
    let mut last = (-1, 0);
    let snap = loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let snap: Snap = serde_json::from_str(&http_get(&host, port, "/api/faculty").await?)?;
        let total: i64 = snap.faculty.iter().map(|f| f.version).sum();
        if (snap.cursor, total) == last {
            break snap;
        }
        last = (snap.cursor, total);
    };
    let versions: HashMap<i64, i64> = snap.faculty.iter().map(|f| (f.id, f.version)).collect();
    let base: Vec<i64> = faculty_of.iter().map(|f| versions.get(f).copied().unwrap_or(0)).collect();
    let index: HashMap<i64, usize> = faculty_of.iter().enumerate().map(|(i, f)| (*f, i)).collect();

    let ssr = if args.ssr_requests > 0 {
        say(&format!("timing {} GET / with {} faculty on the board", args.ssr_requests, snap.faculty.len()));
        let mut lat = Vec::with_capacity(args.ssr_requests);
        for _ in 0..args.ssr_requests {
            let t = Instant::now();
            let page = http_get(&host, port, "/").await?;
            lat.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
            anyhow::ensure!(page.contains("data-faculty-id"), "GET / rendered no board");
        }
        Some(Latency::of(lat))
    } else {
        None
    };
    let board_size = snap.faculty.len();

    let floor = if args.floor_duration.is_zero() {
        Latency::default()
    } else {
        say(&format!("measuring the MQTT floor for {:?}", args.floor_duration));
        floor(&broker, prefix, args.rate, args.floor_duration).await?
    };

    let total = (args.rate * args.duration.as_secs_f64()).round() as u64;
    let per_desk = (total as usize).div_ceil(d) + 1;
    let shared = Arc::new(Shared {
        start: Instant::now(),
        index,
        base: base.clone(),
        sent: (0..d).map(|_| AtomicU64::new(0)).collect(),
        sched: (0..d).map(|_| (0..per_desk).map(|_| AtomicU64::new(0)).collect()).collect(),
        publishing_done: AtomicBool::new(false),
        received: AtomicU64::new(0),
        settled: AtomicU64::new(0),
        connecting: tokio::sync::Semaphore::new(256),
        stop: tokio_util::sync::CancellationToken::new(),
    });
    let metrics_before = http_get(&host, port, "/metrics").await.unwrap_or_default();

    // Resource readings start before the clients connect, so RSS growth includes their streams.
    let pid = args.server_pid.or_else(procstat::find_server);
    let me = std::process::id();
    let before = pid.and_then(procstat::sample);
    let gen_before = procstat::sample(me);
    let rss_max = Arc::new(AtomicU64::new(before.map_or(0, |s| s.rss_kb)));

    say(&format!("connecting {} SSE clients", args.clients));
    let mut clients = Vec::with_capacity(args.clients);
    for k in 0..args.clients {
        let (host, port) = streams_at[k % streams_at.len()].clone();
        clients.push(tokio::spawn(client(shared.clone(), host, port, snap.cursor)));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while shared.settled.load(Relaxed) < args.clients as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the server finish what it allocates per stream before reading its RSS.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let connected = pid.and_then(procstat::sample);

    say(&format!("publishing {total} changes from {d} desks at {}/s for {:?}", args.rate, args.duration));
    let series = Arc::new(std::sync::Mutex::new(Vec::new()));
    let progress = {
        let (shared, rss_max, quiet, series) = (shared.clone(), rss_max.clone(), args.quiet, series.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut n = 0u64;
            loop {
                tick.tick().await;
                n += 1;
                let rss = pid.and_then(procstat::sample).map_or(0, |s| s.rss_kb);
                rss_max.fetch_max(rss, Relaxed);
                if n.is_multiple_of(10)
                    && let Ok(mut series) = series.lock()
                {
                    let sent: u64 = shared.sent.iter().map(|s| s.load(Relaxed)).sum();
                    series.push((n, sent, rss));
                }
                if !quiet {
                    let sent: u64 = shared.sent.iter().map(|s| s.load(Relaxed)).sum();
                    eprintln!(
                        "  t={:>4.0}s  published {sent:>9}  delivered {:>11}  server RSS {:>7} KB",
                        shared.start.elapsed().as_secs_f64(),
                        shared.received.load(Relaxed),
                        rss
                    );
                }
            }
        })
    };

    let flood = (args.sign_in_flood > 0.0).then(|| {
        let (host, stop) = (host.clone(), shared.stop.clone());
        tokio::spawn(sign_in_flood(host, port, args.sign_in_flood, args.duration, stop))
    });
    let t0 = Instant::now();
    let start_ns = shared.start.elapsed().as_nanos() as u64;
    let mut seqs: Vec<u64> = vec![2; d];
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut i = 0u64;
    while i < total {
        tick.tick().await;
        let due = due(t0.elapsed(), args.rate, total);
        while i < due {
            let desk = (i % d as u64) as usize;
            let k = shared.sent[desk].load(Relaxed) as usize;
            seqs[desk] += 1;
            let sched = start_ns + (i as f64 / args.rate * 1e9) as u64;
            if let Some(slot) = shared.sched[desk].get(k) {
                slot.store(sched.max(1), Relaxed);
            }
            // Alternate presence so that every message is a visible change (one version each).
            let present = k.is_multiple_of(2);
            let payload = Payload::State { clock: DeskClock::new(boots[desk], seqs[desk]), present, busy: false };
            publisher_of(desk)
                .publish(topic(prefix, &desk_ids[desk], Kind::State), QoS::AtLeastOnce, false, payload.encode())
                .await?;
            shared.sent[desk].fetch_add(1, Relaxed);
            i += 1;
        }
    }
    let published_for = t0.elapsed();
    shared.publishing_done.store(true, Relaxed);
    let during = pid.and_then(procstat::sample);
    let during_at = Instant::now();
    let gen_during = procstat::sample(me);

    let drain = {
        let stop = shared.stop.clone();
        let timeout = args.drain_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            stop.cancel();
        })
    };
    let mut results = Vec::with_capacity(clients.len());
    for c in clients {
        results.push(c.await?);
    }
    drain.abort();
    progress.abort();
    let sign_in_flood = match flood {
        Some(f) => Some(f.await?),
        None => None,
    };
    let after = pid.and_then(procstat::sample);
    let metrics_after = http_get(&host, port, "/metrics").await.unwrap_or_default();
    for publisher in &publishers {
        let _ = publisher.disconnect().await;
    }

    let final_snap: Snap = serde_json::from_str(&http_get(&host, port, "/api/faculty").await?)?;
    let committed: i64 =
        final_snap.faculty.iter().filter_map(|f| shared.index.get(&f.id).map(|i| f.version - base[*i])).sum();
    let expected: Vec<i64> = (0..d).map(|i| base[i] + shared.sent[i].load(Relaxed) as i64).collect();
    let mut report = Report {
        desks: d,
        clients: args.clients,
        target_rate: args.rate,
        duration_s: published_for.as_secs_f64(),
        published: total,
        publish_rate: total as f64 / published_for.as_secs_f64(),
        committed: committed.max(0) as u64,
        floor,
        ssr,
        sign_in_flood,
        board_size,
        ..Default::default()
    };
    let mut all = Vec::new();
    for r in results {
        if let Some(e) = &r.error {
            eprintln!("loadgen: a client failed: {e}");
        }
        report.lost += r.held.iter().zip(&expected).map(|(h, e)| (e - h).max(0) as u64).sum::<u64>();
        report.regressions += r.regressions;
        report.gaps += r.gaps;
        report.snapshots += r.snapshots;
        report.deliveries += r.latencies.len() as u64;
        all.extend(r.latencies);
    }
    report.latency = Latency::of(all);
    report.delivery_rate = report.deliveries as f64 / published_for.as_secs_f64();
    report.stale = metric(&metrics_after, "consultease_mqtt_stale_total")
        .saturating_sub(metric(&metrics_before, "consultease_mqtt_stale_total"));
    report.rejected = metric(&metrics_after, "consultease_mqtt_rejected_total")
        .saturating_sub(metric(&metrics_before, "consultease_mqtt_rejected_total"));
    if let (Some(b), Some(c), Some(d), Some(a)) = (before, connected, during, after) {
        report.server = Some(Resources {
            rss_before_kb: b.rss_kb,
            rss_connected_kb: c.rss_kb,
            rss_max_kb: rss_max.load(Relaxed).max(d.rss_kb),
            rss_after_kb: a.rss_kb,
            cpu_cores: procstat::cores(c, d, t0, during_at),
            rss_series: series.lock().map(|s| s.clone()).unwrap_or_default(),
        });
    }
    if let (Some(b), Some(d)) = (gen_before, gen_during) {
        report.generator_cpu_cores = procstat::cores(b, d, t0, during_at);
    }
    if committed as u64 != total {
        eprintln!("loadgen: the server committed {committed} changes of {total} published");
    }
    Ok(report)
}

/// The human-readable table.
pub fn print(r: &Report) {
    let ratio = |x: f64, floor: f64| if floor > 0.0 { format!("{:>7.1}×", x / floor) } else { "       -".into() };
    println!();
    println!(
        "desks {}  clients {}  target {:.0}/s  published {} in {:.1} s ({:.0}/s)",
        r.desks, r.clients, r.target_rate, r.published, r.duration_s, r.publish_rate
    );
    println!(
        "committed {}  deliveries {} ({:.0}/s)  stale {}  rejected {}  snapshots {}",
        r.committed, r.deliveries, r.delivery_rate, r.stale, r.rejected, r.snapshots
    );
    println!();
    println!("{:<22} {:>10} {:>10} {:>9}", "latency (ms)", "pipeline", "MQTT floor", "ratio");
    for (name, a, b) in [
        ("p50", r.latency.p50_ms, r.floor.p50_ms),
        ("p90", r.latency.p90_ms, r.floor.p90_ms),
        ("p99", r.latency.p99_ms, r.floor.p99_ms),
        ("p99.9", r.latency.p999_ms, r.floor.p999_ms),
        ("max", r.latency.max_ms, r.floor.max_ms),
    ] {
        println!("{name:<22} {a:>10.2} {b:>10.2} {}", ratio(a, b));
    }
    if let Some(s) = &r.server {
        println!();
        println!(
            "server RSS before {} KB, clients connected {} KB, max {} KB, after {} KB; CPU {:.2} cores while publishing",
            s.rss_before_kb, s.rss_connected_kb, s.rss_max_kb, s.rss_after_kb, s.cpu_cores
        );
        // With a handful of clients the difference is allocator noise, not a per-stream cost.
        if r.clients >= 100 {
            let per = (s.rss_connected_kb as f64 - s.rss_before_kb as f64) / r.clients as f64;
            println!("server RSS per connected SSE client: {per:.1} KB");
        }
    }
    println!("generator CPU {:.2} cores", r.generator_cpu_cores);
    if let Some(f) = &r.sign_in_flood {
        println!(
            "sign-in flood: {} sent, answers {:?}, latency p50 {:.1} ms p99 {:.1} ms",
            f.sent, f.statuses, f.latency.p50_ms, f.latency.p99_ms
        );
    }
    if let Some(s) = &r.ssr {
        println!(
            "GET / with {} faculty: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} requests)",
            r.board_size, s.p50_ms, s.p99_ms, s.max_ms, s.samples
        );
    }
    println!();
    println!(
        "lost {}  regressions {}  gaps {}  → {}",
        r.lost,
        r.regressions,
        r.gaps,
        if r.ok() { "OK" } else { "FAILED" }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_i_is_due_at_i_over_rate() {
        let ms = Duration::from_millis;
        // At 2/s: message 0 at 0 ms, message 1 at 500 ms, message 2 at 1000 ms.
        assert_eq!(due(ms(0), 2.0, 10), 1);
        assert_eq!(due(ms(499), 2.0, 10), 1);
        assert_eq!(due(ms(500), 2.0, 10), 2);
        assert_eq!(due(ms(1000), 2.0, 10), 3);
        assert_eq!(due(ms(60_000), 2.0, 10), 10);
        assert_eq!(due(ms(0), 2.0, 0), 0);
    }
}
