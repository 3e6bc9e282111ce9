//! The fault-injection suite (`cargo xtask chaos`; a short run in `cargo xtask test`).
//!
//! Three `consultease serve` processes on one fresh PostgreSQL database and one Mosquitto of the
//! suite's own (so it can be restarted), each instance reaching the broker and the database through
//! a TCP proxy of the suite's (so the network between them can drop, hold or refuse). Under a
//! steady load — desks changing state, students placing and cancelling requests, live-stream
//! clients spread over the instances — each scenario injects its fault, then the model is checked:
//!
//! - **register**: every desk's state in the database is that of its newest message published;
//! - **streams**: each client saw per-faculty versions strictly increasing and event ids strictly
//!   increasing with no gap after its cursor — exactly the log — or a snapshot;
//! - **requests**: every request acknowledged to a student (201) exists; placed at one instance and
//!   cancelled (200) at a second, it is cancelled, and its student's own stream at the third showed
//!   it so, versions strictly increasing.

use anyhow::{Context, Result, bail, ensure};
use domain::DeskClock;
use domain::protocol::{Kind, Payload, topic};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::Store;
use testkit::sse::SseConn;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const PREFIX: &str = "chaos";

#[derive(Debug, Clone, clap::Args)]
pub struct ChaosArgs {
    /// The `consultease` binary under test.
    #[arg(long)]
    pub server_bin: PathBuf,
    /// PostgreSQL to create the suite's database in.
    #[arg(long, env = "CONSULTEASE_TEST_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub postgres: String,
    /// The `mosquitto` binary (the suite runs its own, to restart it).
    #[arg(long, default_value = "mosquitto")]
    pub mosquitto: PathBuf,
    /// Only these scenarios (default: all): leader-kill, broker-restart, db-connections, db-outage,
    /// freeze, broker-network, storm.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// How many times the leader is killed (failover time over all of them).
    #[arg(long, default_value_t = 10)]
    pub kills: usize,
    /// Desk state changes per second during every scenario.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    #[arg(long, default_value_t = 50)]
    pub desks: usize,
    /// Live-stream clients per instance.
    #[arg(long, default_value_t = 2)]
    pub clients: usize,
    /// A short run (for `cargo xtask test`): fewer kills, shorter loads.
    #[arg(long)]
    pub short: bool,
    /// Write the report as JSON here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Where the processes' logs go (kept on failure).
    #[arg(long, default_value = "target/chaos")]
    pub dir: PathBuf,
}

#[derive(Debug, Default, Serialize)]
pub struct ScenarioReport {
    pub name: String,
    pub published: u64,
    pub applied_newest: bool,
    pub requests_acked: u64,
    pub requests_missing: u64,
    /// Students' own streams (at a third instance) that showed their cancelled request.
    pub request_streams: u64,
    pub stream_events: u64,
    pub regressions: u64,
    pub gaps: u64,
    pub snapshots: u64,
    pub reconnects: u64,
    /// Leader kills: the last desk event committed before → the first after (ms).
    pub failover_ms: Vec<u64>,
    /// The fault's own check failed (e.g. nobody ingested while the leader was frozen).
    pub fault_failed: bool,
    pub notes: Vec<String>,
}

impl ScenarioReport {
    fn ok(&self) -> bool {
        !self.fault_failed
            && self.applied_newest
            && self.requests_missing == 0
            && self.regressions == 0
            && self.gaps == 0
    }
}

#[derive(Debug, Default, Serialize)]
pub struct ChaosReport {
    pub scenarios: Vec<ScenarioReport>,
    pub failover_p50_ms: u64,
    pub failover_max_ms: u64,
}

impl ChaosReport {
    pub fn ok(&self) -> bool {
        self.scenarios.iter().all(ScenarioReport::ok)
    }
}

// ---------------------------------------------------------------------------------------------
// A TCP proxy whose traffic can pass, be held (read and not forwarded), or be refused; `cut`
// closes every connection through it.

const PASS: u8 = 0;
const HOLD: u8 = 1;
const REFUSE: u8 = 2;

struct Proxy {
    port: u16,
    mode: Arc<AtomicU8>,
    cut: Arc<Mutex<CancellationToken>>,
}

impl Proxy {
    async fn start(upstream: (String, u16)) -> Result<Proxy> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let mode = Arc::new(AtomicU8::new(PASS));
        let cut = Arc::new(Mutex::new(CancellationToken::new()));
        let (m, c) = (mode.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                if m.load(Relaxed) == REFUSE {
                    continue; // dropped: closed at once
                }
                let token = c.lock().map(|t| t.clone()).unwrap_or_default();
                let (m, upstream) = (m.clone(), upstream.clone());
                tokio::spawn(async move {
                    let Ok(up) = tokio::net::TcpStream::connect((upstream.0.as_str(), upstream.1)).await else {
                        return;
                    };
                    let _ = down.set_nodelay(true);
                    let _ = up.set_nodelay(true);
                    let (dr, dw) = down.into_split();
                    let (ur, uw) = up.into_split();
                    tokio::select! {
                        _ = token.cancelled() => {}
                        _ = pipe(dr, uw, m.clone()) => {}
                        _ = pipe(ur, dw, m) => {}
                    }
                });
            }
        });
        Ok(Proxy { port, mode, cut })
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Relaxed);
    }

    /// Closes every connection through the proxy.
    fn cut(&self) {
        if let Ok(mut t) = self.cut.lock() {
            t.cancel();
            *t = CancellationToken::new();
        }
    }
}

async fn pipe(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, mode: Arc<AtomicU8>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while mode.load(Relaxed) == HOLD {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Processes: Mosquitto and the server instances.

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

struct Mosquitto {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Mosquitto {
    async fn start(bin: &Path, dir: &Path) -> Result<Mosquitto> {
        let mut m = Mosquitto { bin: bin.into(), dir: dir.join("mosquitto"), port: free_port()?, child: None };
        std::fs::create_dir_all(&m.dir)?;
        let conf = format!(
            "listener {} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\n\
             max_queued_messages 1000000\nmax_inflight_messages 1000\nlog_dest file {}/mosquitto.log\n",
            m.port,
            m.dir.display(),
            m.dir.display()
        );
        std::fs::write(m.dir.join("mosquitto.conf"), conf)?;
        m.spawn().await?;
        Ok(m)
    }

    async fn spawn(&mut self) -> Result<()> {
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {} (Debian: apt-get install mosquitto)", self.bin.display()))?;
        self.child = Some(child);
        wait_for_port(self.port).await
    }

    /// Stops it the way a service manager does (SIGTERM: it saves its sessions), and starts it again.
    async fn restart(&mut self, down_for: Duration) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), libc::SIGTERM);
            let _ = tokio::task::spawn_blocking(move || c.wait()).await;
        }
        tokio::time::sleep(down_for).await;
        self.spawn().await
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn wait_for_port(port: u16) -> Result<()> {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("nothing listens on port {port} after 10 s")
}

fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) with a pid this process spawned and a valid signal number.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

struct Instance {
    port: u16,
    child: Option<Child>,
    n: usize,
}

impl Instance {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

struct Cluster {
    args: ChaosArgs,
    dir: PathBuf,
    db_direct: String,
    db_proxy: Proxy,
    db_name: String,
    broker: Mosquitto,
    broker_proxy: Proxy,
    instances: Vec<Instance>,
    store: Store,
}

impl Cluster {
    /// The suite's database URL, by way of the proxy (user and password as given).
    fn db_via_proxy(&self) -> String {
        let mut u = url::Url::parse(&self.db_direct).expect("the database URL parsed before");
        let _ = u.set_host(Some("127.0.0.1"));
        let _ = u.set_port(Some(self.db_proxy.port));
        u.to_string()
    }

    async fn start_instance(&mut self, n: usize) -> Result<()> {
        let port = free_port()?;
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(format!("instance-{n}.log")))?;
        let child = Command::new(&self.args.server_bin)
            .arg("serve")
            .args(["--database-url", &self.db_via_proxy()])
            .args(["--mqtt-url", &format!("mqtt://127.0.0.1:{}", self.broker_proxy.port)])
            .args(["--mqtt-prefix", PREFIX])
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .args(["--event-retention", "0s", "--log", "info"])
            .arg("--site-root")
            .arg(self.dir.join("site"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting an instance")?;
        let inst = Instance { port, child: Some(child), n };
        wait_for_port(port).await?;
        if let Some(slot) = self.instances.iter_mut().find(|i| i.n == n) {
            *slot = inst;
        } else {
            self.instances.push(inst);
        }
        Ok(())
    }

    /// The instances' roles (`None`: not answering).
    async fn roles(&self) -> Vec<Option<String>> {
        let mut out = Vec::new();
        for i in &self.instances {
            let role = match reqwest::get(format!("{}/readyz", i.url())).await {
                Ok(r) => r.json::<serde_json::Value>().await.ok().and_then(|v| v["role"].as_str().map(str::to_owned)),
                Err(_) => None,
            };
            out.push(role);
        }
        out
    }

    /// Waits for every live instance to be ready and exactly one to lead; returns the leader's index.
    async fn settled(&self, within: Duration) -> Result<usize> {
        let deadline = Instant::now() + within;
        loop {
            let mut ready = true;
            for i in self.instances.iter().filter(|i| i.child.is_some()) {
                let ok = reqwest::get(format!("{}/readyz", i.url())).await.map(|r| r.status() == 200).unwrap_or(false);
                ready &= ok;
            }
            let roles = self.roles().await;
            let leaders: Vec<usize> =
                roles.iter().enumerate().filter(|(_, r)| r.as_deref() == Some("leader")).map(|(i, _)| i).collect();
            if ready && leaders.len() == 1 {
                return Ok(leaders[0]);
            }
            if Instant::now() > deadline {
                bail!("no single ready leader within {within:?}: roles {roles:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in &mut self.instances {
            if let Some(c) = i.child.as_mut() {
                signal(c.id(), libc::SIGCONT);
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The load: desks, students, stream clients.

/// Every desk's newest message published: (boot, seq, present).
type Register = Arc<Mutex<Vec<(u32, u64, bool)>>>;

#[derive(Clone)]
struct Desks {
    ids: Vec<String>,
    client: AsyncClient,
    register: Register,
    published: Arc<AtomicU64>,
}

impl Desks {
    /// One connection publishes for every desk; on every reconnection each desk republishes its
    /// state with its next seq, as the protocol asks of a desk unit that was cut off.
    async fn connect(port: u16, ids: Vec<String>, boot: u32) -> Result<Desks> {
        let mut opts = rumqttc::MqttOptions::new(format!("chaos-desks-{}", std::process::id()), "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(5)).set_inflight(1000).set_request_channel_capacity(100_000);
        let (client, mut el) = AsyncClient::new(opts, 100_000);
        let register: Register = Arc::new(Mutex::new(ids.iter().map(|_| (boot, 0, false)).collect()));
        let published = Arc::new(AtomicU64::new(0));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut tx = Some(tx);
        let (c, reg, ids2, n) = (client.clone(), register.clone(), ids.clone(), published.clone());
        tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(());
                        } else {
                            let (c, reg, ids, n) = (c.clone(), reg.clone(), ids2.clone(), n.clone());
                            tokio::spawn(async move {
                                for i in 0..ids.len() {
                                    republish(&c, &reg, &ids, i, &n).await;
                                }
                            });
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), rx).await.context("the desks cannot reach the broker")??;
        Ok(Desks { ids, client, register, published })
    }

    /// Desk `i` flips its presence (its next message).
    async fn change(&self, i: usize) {
        let payload = {
            let Ok(mut reg) = self.register.lock() else { return };
            let r = &mut reg[i];
            r.1 += 1;
            r.2 = !r.2;
            Payload::State { clock: DeskClock::new(r.0, r.1), present: r.2, busy: false }
        };
        self.send(i, &payload).await;
    }

    async fn send(&self, i: usize, payload: &Payload) {
        self.published.fetch_add(1, Relaxed);
        let _ = self
            .client
            .publish(topic(PREFIX, &self.ids[i], Kind::State), QoS::AtLeastOnce, false, payload.encode())
            .await;
    }
}

async fn republish(c: &AsyncClient, reg: &Register, ids: &[String], i: usize, n: &AtomicU64) {
    let payload = {
        let Ok(mut reg) = reg.lock() else { return };
        let r = &mut reg[i];
        r.1 += 1;
        Payload::State { clock: DeskClock::new(r.0, r.1), present: r.2, busy: false }
    };
    n.fetch_add(1, Relaxed);
    let _ = c.publish(topic(PREFIX, &ids[i], Kind::State), QoS::AtLeastOnce, false, payload.encode()).await;
}

/// One live-stream client: follows an instance, and on any end resumes from its last event id
/// at the next instance.
#[derive(Default)]
struct Watch {
    /// Runs of events with no gap allowed: (the cursor it started after, event ids).
    segments: Vec<(i64, Vec<i64>)>,
    versions: HashMap<i64, i64>,
    regressions: u64,
    snapshots: u64,
    reconnects: u64,
}

async fn watch(
    urls: Arc<Mutex<Vec<String>>>,
    start: usize,
    cursor: i64,
    progress: Arc<AtomicI64>,
    stop: CancellationToken,
) -> Watch {
    let mut w = Watch { segments: vec![(cursor, Vec::new())], ..Watch::default() };
    let mut at = start;
    let mut last = cursor;
    while !stop.is_cancelled() {
        let url = urls.lock().map(|u| u[at % u.len()].clone()).unwrap_or_default();
        let Ok(u) = url::Url::parse(&url) else { break };
        let (host, port) = (u.host_str().unwrap_or("127.0.0.1").to_owned(), u.port().unwrap_or(80));
        let conn = tokio::time::timeout(
            Duration::from_secs(3),
            SseConn::connect(&host, port, &format!("/api/events?after={last}")),
        )
        .await;
        let mut conn = match conn {
            Ok(Ok(c)) => c,
            _ => {
                at += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        loop {
            let ev = tokio::select! {
                _ = stop.cancelled() => return w,
                ev = tokio::time::timeout(Duration::from_secs(20), conn.next()) => ev,
            };
            let ev = match ev {
                Ok(Ok(Some(ev))) => ev,
                // The instance is gone, frozen or cut off: resume elsewhere from the last id.
                _ => break,
            };
            match ev.event.as_str() {
                "faculty" => {
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(&ev.data) else { continue };
                    let id = ev.id.as_deref().and_then(|i| i.parse::<i64>().ok()).unwrap_or(0);
                    if id <= last {
                        w.regressions += 1;
                        continue;
                    }
                    let (fid, version) = (v["id"].as_i64().unwrap_or(0), v["version"].as_i64().unwrap_or(0));
                    let held = w.versions.entry(fid).or_insert(0);
                    if version <= *held {
                        w.regressions += 1;
                    }
                    *held = version.max(*held);
                    last = id;
                    if let Some(seg) = w.segments.last_mut() {
                        seg.1.push(id);
                    }
                    progress.store(id, Relaxed);
                }
                "snapshot" => {
                    w.snapshots += 1;
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(&ev.data) else { continue };
                    let cursor = v["cursor"].as_i64().unwrap_or(last);
                    for f in v["faculty"].as_array().into_iter().flatten() {
                        let (fid, version) = (f["id"].as_i64().unwrap_or(0), f["version"].as_i64().unwrap_or(0));
                        let held = w.versions.entry(fid).or_insert(0);
                        *held = version.max(*held);
                    }
                    last = cursor;
                    progress.store(cursor, Relaxed);
                    w.segments.push((cursor, Vec::new()));
                }
                _ => {}
            }
        }
        w.reconnects += 1;
        at += 1;
    }
    w
}

/// A request acknowledged to a student: its id, whether its cancel was acknowledged, and what the
/// student's own stream (at a third instance) showed of it.
struct Placed {
    id: i64,
    cancelled: bool,
    stream: tokio::task::JoinHandle<StudentStream>,
}

#[derive(Default)]
struct StudentStream {
    /// The request's states in the order the stream showed them.
    states: Vec<String>,
    regressions: u64,
}

async fn student_stream(url: &str, cookie: &str, after: &str) -> Option<SseConn> {
    let u = url::Url::parse(url).ok()?;
    let (host, port) = (u.host_str()?.to_owned(), u.port()?);
    let headers = [("cookie", cookie)];
    let path = format!("/api/me/events?after={after}");
    let conn = SseConn::connect_with(&host, port, &path, &headers);
    tokio::time::timeout(Duration::from_secs(3), conn).await.ok()?.ok()
}

/// Reads a student's stream until their request shows `cancelled` (or 20 s pass). When the
/// instance it is on goes away (a killed leader), it resumes from its last event at another, as a
/// browser's EventSource would. (Without this, a stream on the instance killed just after the
/// cancel was answered showed nothing, and the run failed for the harness's sake.)
async fn follow_student(mut conn: SseConn, urls: Arc<Mutex<Vec<String>>>, cookie: String, k: usize) -> StudentStream {
    let mut out = StudentStream::default();
    let mut version = 0;
    let mut last_id = "0".to_owned();
    let mut next_url = k + 3;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ev = match tokio::time::timeout_at(deadline, conn.next()).await {
            Ok(Ok(Some(ev))) => ev,
            Err(_) => break,
            // The stream ended: resume elsewhere.
            Ok(_) => {
                let mut resumed = None;
                while resumed.is_none() && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let url = urls.lock().map(|u| u[next_url % u.len()].clone()).unwrap_or_default();
                    next_url += 1;
                    resumed = student_stream(&url, &cookie, &last_id).await;
                }
                match resumed {
                    Some(c) => {
                        conn = c;
                        continue;
                    }
                    None => break,
                }
            }
        };
        if let Some(id) = &ev.id {
            last_id.clone_from(id);
        }
        if ev.event != "request" {
            continue;
        }
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&ev.data) else { continue };
        let (state, v_now) = (v["state"].as_str().unwrap_or_default().to_owned(), v["version"].as_i64().unwrap_or(0));
        if v_now <= version {
            out.regressions += 1;
        }
        version = version.max(v_now);
        let done = state == "cancelled";
        out.states.push(state);
        if done {
            break;
        }
    }
    out
}

/// Students placing requests (held when the faculty member is away) at random instances, and
/// cancelling each at another instance. Returns the ids acknowledged with 201, each with whether
/// its cancel was acknowledged (200).
async fn students(
    store: &Store,
    urls: Arc<Mutex<Vec<String>>>,
    faculty: Vec<i64>,
    n: usize,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<Vec<Placed>>> {
    let tokens = crate::consult::students(store, n).await?;
    Ok(tokio::spawn(async move {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default();
        let mut acked = Vec::new();
        for (k, token) in tokens.into_iter().enumerate() {
            if stop.is_cancelled() {
                break;
            }
            let base = urls.lock().map(|u| u[k % u.len()].clone()).unwrap_or_default();
            let other = urls.lock().map(|u| u[(k + 1) % u.len()].clone()).unwrap_or_default();
            let cookie = crate::consult::cookie(&token);
            // The student follows their own stream at a third instance.
            let third = urls.lock().map(|u| u[(k + 2) % u.len()].clone()).unwrap_or_default();
            let Some(stream) = student_stream(&third, &cookie, "0").await else { continue };
            let body = serde_json::json!({
                "faculty_id": faculty[k % faculty.len()], "message": format!("chaos request {k}"), "hold": true
            });
            let res = http
                .post(format!("{base}/api/requests"))
                .header("cookie", &cookie)
                .header("origin", &base)
                .header("sec-fetch-site", "same-origin")
                .json(&body)
                .send()
                .await;
            if let Ok(r) = res
                && r.status() == 201
                && let Ok(v) = r.json::<serde_json::Value>().await
                && let Some(id) = v["id"].as_i64()
            {
                let cancelled = http
                    .post(format!("{other}/api/requests/{id}/cancel"))
                    .header("cookie", &cookie)
                    .header("origin", &other)
                    .header("sec-fetch-site", "same-origin")
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                let follow = follow_student(stream, urls.clone(), cookie.clone(), k + 2);
                acked.push(Placed { id, cancelled, stream: tokio::spawn(follow) });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        acked
    }))
}

// ---------------------------------------------------------------------------------------------

/// Runs the suite.
pub async fn run(args: ChaosArgs) -> Result<ChaosReport> {
    server::sys::raise_fd_limit();
    let dir = std::path::absolute(&args.dir)?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("site"))?;
    let (head, _) = args.postgres.rsplit_once('/').context("--postgres ends in /database")?;
    let db_name = format!("consultease_chaos_{}", std::process::id());
    drop_leftovers(&args.postgres).await;
    let db_direct = format!("{head}/{db_name}");
    let db_name_kept = db_name.clone();
    let store = Store::connect(&db_direct).await.context("creating the suite's database")?;
    let pg = url::Url::parse(&args.postgres)?;
    let db_proxy = Proxy::start((pg.host_str().unwrap_or("127.0.0.1").to_owned(), pg.port().unwrap_or(5432))).await?;
    let broker = Mosquitto::start(&args.mosquitto, &dir).await?;
    let broker_proxy = Proxy::start(("127.0.0.1".to_owned(), broker.port)).await?;
    let desk_ids = crate::seed(&store, args.desks).await?;
    let faculty: Vec<i64> = {
        let desks = store.list_desks().await?;
        desk_ids.iter().filter_map(|id| desks.iter().find(|d| &d.id == id).and_then(|d| d.faculty_id)).collect()
    };
    let mut c = Cluster {
        args: args.clone(),
        dir: dir.clone(),
        db_direct,
        db_proxy,
        db_name: db_name_kept,
        broker,
        broker_proxy,
        instances: Vec::new(),
        store,
    };
    for n in 0..3 {
        c.start_instance(n).await?;
    }
    c.settled(Duration::from_secs(30)).await?;
    let desks = Desks::connect(c.broker.port, desk_ids, 1).await?;

    let all = ["leader-kill", "broker-restart", "db-connections", "db-outage", "freeze", "broker-network", "storm"];
    let chosen: Vec<&str> =
        all.iter().copied().filter(|s| args.only.is_empty() || args.only.iter().any(|o| o == s)).collect();
    let mut report = ChaosReport::default();
    for name in chosen {
        eprintln!("chaos: {name}");
        let r = scenario(&mut c, &desks, &faculty, name).await;
        let r = match r {
            Ok(r) => r,
            Err(e) => ScenarioReport { name: name.into(), notes: vec![format!("failed: {e:#}")], ..Default::default() },
        };
        eprintln!(
            "chaos: {name}: {} — published {}, newest applied {}, requests {} (missing {}, seen cancelled on their \
             student's stream {}), stream events {}, \
             regressions {}, gaps {}, snapshots {}, reconnects {}{}{}",
            if r.ok() { "ok" } else { "FAILED" },
            r.published,
            r.applied_newest,
            r.requests_acked,
            r.requests_missing,
            r.request_streams,
            r.stream_events,
            r.regressions,
            r.gaps,
            r.snapshots,
            r.reconnects,
            if r.failover_ms.is_empty() { String::new() } else { format!(", failover ms {:?}", r.failover_ms) },
            if r.notes.is_empty() { String::new() } else { format!(" — {}", r.notes.join("; ")) },
        );
        report.scenarios.push(r);
    }
    let mut fo: Vec<u64> = report.scenarios.iter().flat_map(|s| s.failover_ms.clone()).collect();
    fo.sort_unstable();
    if !fo.is_empty() {
        report.failover_p50_ms = fo[(fo.len() - 1) / 2];
        report.failover_max_ms = fo[fo.len() - 1];
    }
    drop(c);
    // The suite's database goes with it (PG 13+: FORCE ends any connection left).
    if let Ok(pool) = sqlx::PgPool::connect(&args.postgres).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")).execute(&pool).await;
        pool.close().await;
    }
    Ok(report)
}

/// Drops the databases of earlier runs whose process is gone (a run killed half-way keeps its own).
async fn drop_leftovers(postgres: &str) {
    let Ok(pool) = sqlx::PgPool::connect(postgres).await else { return };
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'consultease\\_chaos\\_%'")
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
    for name in names {
        let pid = name.rsplit('_').next().unwrap_or_default();
        if !Path::new("/proc").join(pid).exists() {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&pool).await;
        }
    }
    pool.close().await;
}

/// One scenario under load, then the model's check.
async fn scenario(c: &mut Cluster, desks: &Desks, faculty: &[i64], name: &str) -> Result<ScenarioReport> {
    let mut r = ScenarioReport { name: name.into(), ..Default::default() };
    c.settled(Duration::from_secs(60)).await?;
    let urls = Arc::new(Mutex::new(c.instances.iter().map(Instance::url).collect::<Vec<_>>()));
    let cursor = c.store.newest_event_id().await?;
    let stop = CancellationToken::new();
    let mut watchers = Vec::new();
    let mut progress = Vec::new();
    for k in 0..c.instances.len() * c.args.clients {
        let p = Arc::new(AtomicI64::new(cursor));
        progress.push(p.clone());
        watchers.push(tokio::spawn(watch(urls.clone(), k, cursor, p, stop.clone())));
    }
    let published_before = desks.published.load(Relaxed);
    let load_stop = CancellationToken::new();
    let load = {
        let (rate, n, stop) = (c.args.rate, desks.ids.len(), load_stop.clone());
        let desks = desks.clone();
        tokio::spawn(async move {
            let t0 = Instant::now();
            let mut i = 0u64;
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            while !stop.is_cancelled() {
                tick.tick().await;
                let due = (t0.elapsed().as_secs_f64() * rate) as u64;
                while i < due {
                    desks.change((i % n as u64) as usize).await;
                    i += 1;
                }
            }
        })
    };
    let student_stop = CancellationToken::new();
    let requests = students(&c.store, urls.clone(), faculty.to_vec(), 12, student_stop.clone()).await?;
    let short = c.args.short;
    let steady = if short { Duration::from_secs(2) } else { Duration::from_secs(5) };
    tokio::time::sleep(steady).await;

    // The fault; whatever happens to it, the load and the streams are stopped and checked below.
    if let Err(e) = inject(c, desks, name, short, &urls, &mut r).await {
        r.notes.push(format!("the fault's own check failed: {e:#}"));
        r.fault_failed = true;
    }

    tokio::time::sleep(steady).await;
    load_stop.cancel();
    student_stop.cancel();
    let _ = load.await;
    let acked = requests.await.unwrap_or_default();
    r.published = desks.published.load(Relaxed) - published_before;

    // The model.
    c.settled(Duration::from_secs(60)).await?;
    r.applied_newest = newest_applied(&c.store, desks, Duration::from_secs(60)).await?;
    let newest_event = c.store.newest_event_id().await?;
    // Every stream reaches the newest event (or is reported below as stopped short).
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && progress.iter().any(|p| p.load(Relaxed) < newest_event) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    let log = log_ids(&c.store, cursor, newest_event).await?;
    for w in watchers {
        let w = w.await?;
        r.regressions += w.regressions;
        r.snapshots += w.snapshots;
        r.reconnects += w.reconnects;
        for (from, ids) in &w.segments {
            r.stream_events += ids.len() as u64;
            let Some(&to) = ids.last() else { continue };
            let expected: Vec<i64> = log.iter().copied().filter(|id| id > from && *id <= to).collect();
            if &expected != ids {
                let missing: Vec<i64> = expected.iter().copied().filter(|id| !ids.contains(id)).collect();
                let extra: Vec<i64> = ids.iter().copied().filter(|id| !expected.contains(id)).collect();
                r.notes.push(format!(
                    "a stream from {from} lacks {} events (first {:?}) and has {} not in the log (first {:?})",
                    missing.len(),
                    &missing[..missing.len().min(5)],
                    extra.len(),
                    &extra[..extra.len().min(5)]
                ));
                r.gaps += missing.len().max(1) as u64;
            }
        }
        let reached = w.segments.iter().filter_map(|s| s.1.last()).max().copied().unwrap_or(0);
        if reached < newest_event && w.segments.last().is_some_and(|s| s.0 < newest_event) {
            r.notes.push(format!("a stream stopped at event {reached} of {newest_event}"));
            r.gaps += 1;
        }
    }
    r.requests_acked = acked.len() as u64;
    for Placed { id, cancelled, stream } in acked {
        let seen = stream.await.unwrap_or_default();
        r.regressions += seen.regressions;
        if seen.states.last().map(String::as_str) == Some("cancelled") {
            r.request_streams += 1;
        }
        if cancelled && seen.states.last().map(String::as_str) != Some("cancelled") {
            r.notes.push(format!("request {id}: its student's stream (a third instance) showed {:?}", seen.states));
            r.gaps += 1;
        }
        match c.store.request_view(id).await? {
            None => r.requests_missing += 1,
            // A cancel answered 200 (at another instance than the placement) holds.
            Some(v) if cancelled && v.state != domain::consultation::State::Cancelled => {
                r.notes.push(format!("request {id}: cancel acknowledged, state {}", v.state.as_str()));
                r.requests_missing += 1;
            }
            Some(_) => {}
        }
    }
    Ok(r)
}

/// Injects scenario `name`'s fault (and checks what can only be seen during it).
async fn inject(
    c: &mut Cluster,
    desks: &Desks,
    name: &str,
    short: bool,
    urls: &Arc<Mutex<Vec<String>>>,
    r: &mut ScenarioReport,
) -> Result<()> {
    match name {
        "leader-kill" => {
            let kills = if short { 1 } else { c.args.kills };
            for _ in 0..kills {
                let leader = c.settled(Duration::from_secs(60)).await?;
                tokio::time::sleep(Duration::from_secs(1)).await;
                let pid = c.instances[leader].pid().context("the leader's process")?;
                let killed_at = Instant::now();
                signal(pid, libc::SIGKILL);
                if let Some(mut ch) = c.instances[leader].child.take() {
                    let _ = ch.wait();
                }
                c.settled(Duration::from_secs(30)).await.context("no new leader after a kill")?;
                tokio::time::sleep(Duration::from_secs(2)).await;
                r.failover_ms.push(ingest_silence(&c.db_direct, killed_at).await?);
                let n = c.instances[leader].n;
                c.start_instance(n).await?;
                if let Ok(mut u) = urls.lock() {
                    u[leader] = c.instances[leader].url();
                }
            }
        }
        "broker-restart" => {
            c.broker.restart(Duration::from_secs(2)).await?;
            r.notes.push("Mosquitto stopped (SIGTERM) for 2 s and started again".into());
        }
        "db-connections" => {
            let killed = terminate_backends(&c.db_direct, &c.db_name).await?;
            r.notes.push(format!("pg_terminate_backend on {killed} connections"));
        }
        "db-outage" => {
            c.db_proxy.set(REFUSE);
            c.db_proxy.cut();
            let down = Instant::now();
            let mut unready = false;
            while down.elapsed() < Duration::from_secs(if short { 4 } else { 8 }) {
                let url = c.instances[0].url();
                if let Ok(res) = reqwest::get(format!("{url}/readyz")).await
                    && res.status() == 503
                {
                    unready = true;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            c.db_proxy.set(PASS);
            r.notes.push(format!("database unreachable for {:?}; /readyz said 503: {unready}", down.elapsed()));
            ensure!(unready, "an instance without its database did not report unready");
        }
        "freeze" => {
            let leader = c.settled(Duration::from_secs(30)).await?;
            let pid = c.instances[leader].pid().context("the leader's process")?;
            let frozen_at = Instant::now();
            signal(pid, libc::SIGSTOP);
            tokio::time::sleep(Duration::from_secs(if short { 6 } else { 10 })).await;
            let silence = ingest_silence(&c.db_direct, frozen_at).await;
            signal(pid, libc::SIGCONT);
            // PostgreSQL ends the frozen leader's idle lock session after 3 s; another instance
            // takes over while it is still frozen.
            let silence = silence.context("nobody ingested while the leader was frozen")?;
            r.notes.push(format!("the leader frozen (SIGSTOP) and resumed (SIGCONT); ingest silent for {silence} ms"));
            ensure!(silence < 5_500, "the ingest stopped for {silence} ms while the leader was frozen");
        }
        "broker-network" => {
            c.broker_proxy.set(HOLD);
            tokio::time::sleep(Duration::from_secs(if short { 2 } else { 6 })).await;
            c.broker_proxy.cut();
            c.broker_proxy.set(REFUSE);
            tokio::time::sleep(Duration::from_secs(2)).await;
            c.broker_proxy.set(PASS);
            r.notes.push("server↔broker traffic held, then cut, refused for 2 s, restored".into());
        }
        "storm" => {
            // Duplicates and stale replays of every desk's recent messages among the new ones.
            for round in 0..if short { 3 } else { 10 } {
                for i in 0..desks.ids.len() {
                    let (boot, seq, present) = desks.register.lock().map(|r| r[i]).unwrap_or((1, 1, false));
                    for back in [0u64, 1, 2, 5] {
                        if seq > back {
                            let old = Payload::State {
                                clock: DeskClock::new(boot, seq - back),
                                present: if back % 2 == 0 { present } else { !present },
                                busy: round % 2 == 1,
                            };
                            desks.send(i, &old).await;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            r.notes.push("stale and duplicate replays of every desk's recent messages".into());
        }
        other => bail!("no scenario {other}"),
    }
    Ok(())
}

/// The ingest's silence across `at` (a kill, a freeze): from the last desk event committed before
/// it to the first committed after it, by the log's commit times. An error when nothing has been
/// committed since (a failover that did not happen is not a fast one).
async fn ingest_silence(db: &str, at: Instant) -> Result<u64> {
    let at_ms = store::now_ms() - i64::try_from(at.elapsed().as_millis()).unwrap_or(0);
    let pool = sqlx::PgPool::connect(db).await?;
    let before: Option<i64> = sqlx::query_scalar("SELECT MAX(at) FROM status_events WHERE source = 'desk' AND at < $1")
        .bind(at_ms)
        .fetch_one(&pool)
        .await?;
    let after: Option<i64> = sqlx::query_scalar("SELECT MIN(at) FROM status_events WHERE source = 'desk' AND at >= $1")
        .bind(at_ms)
        .fetch_one(&pool)
        .await?;
    pool.close().await;
    match (before, after) {
        (Some(b), Some(a)) => Ok(u64::try_from(a - b).unwrap_or(0)),
        _ => bail!("no desk event committed on both sides of the fault"),
    }
}

async fn newest_applied(store: &Store, desks: &Desks, within: Duration) -> Result<bool> {
    let deadline = Instant::now() + within;
    loop {
        let want = desks.register.lock().map(|r| r.clone()).unwrap_or_default();
        let have: HashMap<String, (Option<i64>, Option<i64>, bool)> =
            store.list_desks().await?.into_iter().map(|d| (d.id, (d.boot, d.seq, d.present))).collect();
        let all = desks.ids.iter().zip(&want).all(|(id, (boot, seq, present))| {
            have.get(id).is_some_and(|(b, s, p)| {
                *b == Some(i64::from(*boot)) && *s == i64::try_from(*seq).ok() && *p == *present
            })
        });
        if all {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn log_ids(store: &Store, from: i64, to: i64) -> Result<Vec<i64>> {
    let mut out = Vec::new();
    let mut cursor = from;
    loop {
        let evs = store.events_after(cursor, 10_000).await?;
        let Some(last) = evs.last() else { break };
        cursor = last.id;
        out.extend(evs.iter().map(|e| e.id).filter(|id| *id <= to));
        if cursor >= to {
            break;
        }
    }
    Ok(out)
}

/// Ends every connection to the suite's database but this one (as an operator's
/// `pg_terminate_backend` or a connection reaper would): the instances' pools, listeners and the
/// leader's lock.
async fn terminate_backends(db_url: &str, db: &str) -> Result<u64> {
    let pool = sqlx::PgPool::connect(db_url).await?;
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()) t",
    )
    .bind(db)
    .fetch_one(&pool)
    .await?;
    pool.close().await;
    Ok(u64::try_from(n).unwrap_or(0))
}
