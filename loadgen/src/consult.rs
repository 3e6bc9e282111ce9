//! `--consult`: the consultation loop under load, the way students and desk units drive it.
//!
//! - S students, each signed in (a session row made directly in the database: a real sign-in costs
//!   an argon2id hash, which would make setting up 1,000 students take minutes) and following
//!   `/api/me/events` on its own stream;
//! - requests submitted with `POST /api/requests` at a total rate R on a fixed schedule (open loop;
//!   latency counts from the scheduled time), request k from student k mod S, to a different desk
//!   each round;
//! - D desks, all available; their queue snapshots are read from `P/desk/+/queue`; for every new
//!   item the desk acknowledges the snapshot, accepts the request and marks it done at once;
//! - measured: submit → the snapshot holding the request received at the desk, desk reply → the
//!   first event on the student's stream showing the answer, and the HTTP submit itself; checked:
//!   every accepted submission reaches its desk and its student sees it end, versions never go
//!   backwards.

use crate::{Latency, connect, due, floor, host_port, procstat, seed};
use anyhow::{Context, Result};
use domain::DeskClock;
use domain::consultation::Action;
use domain::protocol::{Kind, Payload, QueueSnapshot, topic};
use rumqttc::QoS;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use store::Store;
use testkit::sse::SseConn;

#[derive(Debug, Default, Clone, Serialize)]
pub struct ConsultReport {
    pub desks: usize,
    pub students: usize,
    pub target_rate: f64,
    pub duration_s: f64,
    pub submitted: u64,
    /// Answers to the submissions by HTTP status (0: no answer).
    pub statuses: BTreeMap<u16, u64>,
    /// Submissions finished (seen `done` on the student's stream) per second of the whole run.
    pub completed_rate: f64,
    pub completed: u64,
    pub submit_http: Latency,
    /// Scheduled submit → the first snapshot holding the request received by the desk.
    pub to_desk: Latency,
    /// Desk publishes `accept` → the first event on the student's stream showing the answer
    /// (`accepted`, or `done` when both presses committed in one batch).
    pub reply_to_student: Latency,
    /// The raw broker floor (publish → receipt, QoS 1) at the same rate, same broker.
    pub floor: Latency,
    /// Accepted submissions that never appeared in a desk's snapshot.
    pub lost_at_desk: u64,
    /// Answered requests whose student never saw them end.
    pub lost_at_student: u64,
    /// Student stream events older than (or as old as) one already held for that request.
    pub regressions: u64,
    /// Snapshots sent to student streams (a lagged receiver, or a reconnection).
    pub snapshots: u64,
    pub stream_errors: u64,
    pub server_rss_before_kb: u64,
    pub server_rss_max_kb: u64,
    pub server_cpu_cores: f64,
}

impl ConsultReport {
    pub fn ok(&self) -> bool {
        self.lost_at_desk == 0 && self.lost_at_student == 0 && self.regressions == 0
    }
}

/// Request k's life as the generator sees it (times: ns since the run's start, 0 = not yet).
#[derive(Default)]
struct Req {
    id: AtomicI64,
    created: AtomicBool,
    at_desk: AtomicU64,
    replied: AtomicU64,
    accepted_seen: AtomicBool,
    done_seen: AtomicBool,
}

struct Shared {
    start: Instant,
    rate: f64,
    reqs: Vec<Req>,
    to_desk: std::sync::Mutex<Vec<u32>>,
    to_student: std::sync::Mutex<Vec<u32>>,
    /// When submitting began (ns since `start`): request k is due `k / rate` after it.
    submit_base: AtomicU64,
    stop: tokio_util::sync::CancellationToken,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
    fn sched_ns(&self, k: usize) -> u64 {
        self.submit_base.load(Relaxed) + (k as f64 / self.rate * 1e9) as u64
    }
}

fn micros(ns: u64) -> u32 {
    (ns / 1000).min(u64::from(u32::MAX)) as u32
}

/// The message of request k: long enough for the rules, and names k.
fn message(k: usize) -> String {
    format!("load request {k} from the generator")
}

/// The desk request k goes to: student k mod S asks a different desk each round (the same pair
/// again would meet the one-open-request-per-faculty-member rule).
fn desk_for(k: usize, students: usize, desks: usize) -> usize {
    (k + k / students) % desks
}

fn request_index(message: &str) -> Option<usize> {
    message.strip_prefix("load request ")?.split(' ').next()?.parse().ok()
}

/// Students `L{run}-{i}`, each with a fresh session; returns the session tokens.
pub(crate) async fn students(store: &Store, n: usize) -> Result<Vec<String>> {
    let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() % 1_000_000;
    let new: Vec<store::NewStudent> = (0..n)
        .map(|i| store::NewStudent {
            number: format!("L{run}-{i:05}"),
            name: format!("Load student {i}"),
            ..Default::default()
        })
        .collect();
    let ids = store.add_students(&new, None).await?;
    let now = store::now_ms();
    let mut tokens = Vec::with_capacity(n);
    for (id, s) in ids.into_iter().zip(&new) {
        let token = store::random_hex(32)?;
        let row = store::SessionRow {
            role: domain::auth::Role::Student,
            subject_id: id,
            kiosk_id: None,
            created_at: now,
            last_seen: now,
        };
        let audit = store::AuditEntry {
            actor: "cli".into(),
            action: "session.load_test".into(),
            subject: Some(format!("student:{}", s.number)),
            ..Default::default()
        };
        store.start_session(&auth::token_hash(&token), &row, None, &audit).await?;
        tokens.push(token);
    }
    Ok(tokens)
}

pub(crate) fn cookie(token: &str) -> String {
    // The server reads the one its URL calls for (`__Host-` over HTTPS and loopback).
    format!("__Host-ce_session={token}; ce_session={token}")
}

pub async fn run(args: &crate::LoadgenArgs) -> Result<ConsultReport> {
    server::sys::raise_fd_limit();
    let broker = args.broker.connect_to()?;
    let prefix = args.broker.mqtt_prefix.clone();
    let url = args.url.first().context("no --url")?;
    let (host, port) = host_port(url)?;
    let (d, s) = (args.desks.max(1), args.students.max(1));
    let say = |msg: &str| {
        if !args.quiet {
            eprintln!("loadgen: {msg}");
        }
    };

    say(&format!("registering {d} desks and {s} students with sessions"));
    let store = Store::connect(&args.database_url).await.context("opening the server's database")?;
    let desk_ids = seed(&store, d).await?;
    let tokens = students(&store, s).await?;
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

    let publisher = connect(&broker, "loadgen-consult-desks", None).await?;
    let seqs: Arc<Vec<AtomicU64>> = Arc::new((0..d).map(|_| AtomicU64::new(2)).collect());
    say("announcing the desks, all available");
    for (i, id) in desk_ids.iter().enumerate() {
        let b = boots[i];
        let hello = Payload::Online { clock: DeskClock::new(b, 1), online: true };
        publisher.publish(topic(&prefix, id, Kind::Online), QoS::AtLeastOnce, false, hello.encode()).await?;
        let here = Payload::State { clock: DeskClock::new(b, 2), present: true, busy: false };
        publisher.publish(topic(&prefix, id, Kind::State), QoS::AtLeastOnce, false, here.encode()).await?;
    }
    // Until every load desk shows available.
    let wanted: std::collections::HashSet<i64> = faculty_of.iter().copied().collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = crate::http_get(&host, port, "/api/faculty").await?;
        let v: serde_json::Value = serde_json::from_str(&body)?;
        let available = v["faculty"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|f| f["status"] == "available" && f["id"].as_i64().is_some_and(|id| wanted.contains(&id)))
                    .count()
            })
            .unwrap_or(0);
        if available == d {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "only {available} of {d} load desks became available");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let floor = if args.floor_duration.is_zero() {
        Latency::default()
    } else {
        say(&format!("measuring the MQTT floor for {:?}", args.floor_duration));
        floor(&broker, &prefix, args.rate, args.floor_duration).await?
    };

    let total = (args.rate * args.duration.as_secs_f64()).round() as usize;
    let shared = Arc::new(Shared {
        start: Instant::now(),
        rate: args.rate,
        reqs: (0..total).map(|_| Req::default()).collect(),
        to_desk: Default::default(),
        to_student: Default::default(),
        submit_base: AtomicU64::new(0),
        stop: tokio_util::sync::CancellationToken::new(),
    });

    // The desks: every queue snapshot, acknowledged; every new item accepted and done at once.
    say("subscribing to the desks' queues");
    let (qtx, mut qrx) = tokio::sync::mpsc::unbounded_channel();
    let queues = connect(&broker, "loadgen-consult-queues", Some(qtx)).await?;
    queues.subscribe(format!("{prefix}/desk/+/queue"), QoS::AtLeastOnce).await?;
    let desk_task = {
        let students = s;
        let (shared, publisher, seqs, desk_ids, prefix) =
            (shared.clone(), publisher.clone(), seqs.clone(), desk_ids.clone(), prefix.clone());
        let boots = boots.clone();
        tokio::spawn(async move {
            let mut acked: HashMap<usize, i64> = HashMap::new();
            while let Some((at, payload)) = qrx.recv().await {
                let Ok(snap) = QueueSnapshot::parse(&payload) else { continue };
                let now = at.duration_since(shared.start).as_nanos() as u64;
                let mut desk = None;
                let mut fresh = Vec::new();
                for item in &snap.items {
                    let Some(k) = request_index(&item.message).filter(|k| *k < shared.reqs.len()) else { continue };
                    let r = &shared.reqs[k];
                    desk = Some(desk_for(k, students, desk_ids.len()));
                    if r.at_desk.compare_exchange(0, now.max(1), Relaxed, Relaxed).is_ok() {
                        shared.to_desk.lock().map(|mut v| v.push(micros(now.saturating_sub(shared.sched_ns(k))))).ok();
                        fresh.push((k, item.id));
                    }
                }
                let Some(i) = desk else { continue };
                let (desk_id, boot) = (&desk_ids[i], boots[i]);
                let next = || DeskClock::new(boot, seqs[i].fetch_add(1, Relaxed) + 1);
                if acked.get(&i).is_none_or(|v| *v < snap.version) {
                    acked.insert(i, snap.version);
                    let ack = Payload::QueueAck { clock: next(), version: snap.version };
                    let _ = publisher
                        .publish(topic(&prefix, desk_id, Kind::QueueAck), QoS::AtLeastOnce, false, ack.encode())
                        .await;
                }
                for (k, id) in fresh {
                    shared.reqs[k].replied.store(shared.now_ns().max(1), Relaxed);
                    for action in [Action::Accept, Action::Done] {
                        let reply = Payload::Reply { clock: next(), request: id, action, note: None };
                        let _ = publisher
                            .publish(topic(&prefix, desk_id, Kind::Reply), QoS::AtLeastOnce, false, reply.encode())
                            .await;
                    }
                }
            }
        })
    };

    // The students' streams.
    say(&format!("opening {s} student streams"));
    let connecting = Arc::new(tokio::sync::Semaphore::new(256));
    let regressions = Arc::new(AtomicU64::new(0));
    let snapshots = Arc::new(AtomicU64::new(0));
    let stream_errors = Arc::new(AtomicU64::new(0));
    let mut streams = Vec::with_capacity(s);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    for token in &tokens {
        let (shared, host, c) = (shared.clone(), host.clone(), cookie(token));
        let (connecting, regressions, snapshots, errors, ready) =
            (connecting.clone(), regressions.clone(), snapshots.clone(), stream_errors.clone(), ready_tx.clone());
        streams.push(tokio::spawn(async move {
            let opened = {
                let _permit = connecting.acquire().await;
                SseConn::connect_with(&host, port, "/api/me/events?after=0", &[("cookie", &c)]).await
            };
            let _ = ready.send(());
            let Ok(mut conn) = opened else {
                errors.fetch_add(1, Relaxed);
                return;
            };
            let mut held: HashMap<i64, i64> = HashMap::new();
            loop {
                let ev = tokio::select! {
                    _ = shared.stop.cancelled() => break,
                    ev = conn.next() => ev,
                };
                let Ok(Some(ev)) = ev else {
                    errors.fetch_add(1, Relaxed);
                    break;
                };
                let now = shared.now_ns();
                let views: Vec<domain::RequestView> = match ev.event.as_str() {
                    "request" => serde_json::from_str(&ev.data).into_iter().collect(),
                    "snapshot" => {
                        snapshots.fetch_add(1, Relaxed);
                        serde_json::from_str::<domain::MyRequests>(&ev.data).map(|m| m.requests).unwrap_or_default()
                    }
                    _ => continue,
                };
                for v in views {
                    let Some(k) = request_index(&v.message).filter(|k| *k < shared.reqs.len()) else { continue };
                    if held.get(&v.id).is_some_and(|h| *h >= v.version) {
                        if ev.event == "request" {
                            regressions.fetch_add(1, Relaxed);
                        }
                        continue;
                    }
                    held.insert(v.id, v.version);
                    let r = &shared.reqs[k];
                    use domain::consultation::State;
                    if matches!(v.state, State::Accepted | State::Done) && !r.accepted_seen.swap(true, Relaxed) {
                        let replied = r.replied.load(Relaxed);
                        // The desk's two presses may commit together: then `done` is the first
                        // event showing its answer.
                        if replied > 0 {
                            shared.to_student.lock().map(|mut l| l.push(micros(now.saturating_sub(replied)))).ok();
                        }
                    }
                    if v.state == State::Done {
                        r.done_seen.store(true, Relaxed);
                    }
                }
            }
        }));
    }
    drop(ready_tx);
    for _ in 0..s {
        ready_rx.recv().await;
    }

    // Submissions, open loop.
    let pid = args.server_pid.or_else(procstat::find_server);
    let before = pid.and_then(procstat::sample);
    let t0 = Instant::now();
    say(&format!("submitting {total} requests at {}/s", args.rate));
    let http = reqwest::Client::builder().pool_max_idle_per_host(1024).build()?;
    let base = url.trim_end_matches('/').to_owned();
    let (stx, mut srx) = tokio::sync::mpsc::unbounded_channel::<(u16, u32)>();
    let started = Instant::now();
    shared.submit_base.store(shared.now_ns(), Relaxed);
    let mut sent = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let mut rss_max = 0;
    let mut last_sample = Instant::now();
    while sent < total {
        tick.tick().await;
        let due = due(started.elapsed(), args.rate, total as u64) as usize;
        while sent < due {
            let k = sent;
            let (http, url, c, shared, tx) =
                (http.clone(), format!("{base}/api/requests"), cookie(&tokens[k % s]), shared.clone(), stx.clone());
            let body =
                serde_json::json!({ "faculty_id": faculty_of[desk_for(k, s, d)], "message": message(k) }).to_string();
            let origin = base.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                let res = http
                    .post(url)
                    .header("content-type", "application/json")
                    .header("cookie", c)
                    .header("origin", origin)
                    .header("sec-fetch-site", "same-origin")
                    .body(body)
                    .send()
                    .await;
                let status = match res {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        if status == 201
                            && let Ok(v) = r.json::<serde_json::Value>().await
                        {
                            shared.reqs[k].id.store(v["id"].as_i64().unwrap_or(0), Relaxed);
                            shared.reqs[k].created.store(true, Relaxed);
                        }
                        status
                    }
                    Err(_) => 0,
                };
                let _ = tx.send((status, t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32));
            });
            sent += 1;
        }
        if last_sample.elapsed() > Duration::from_secs(1) {
            rss_max = rss_max.max(pid.and_then(procstat::sample).map_or(0, |x| x.rss_kb));
            last_sample = Instant::now();
        }
    }
    drop(stx);
    let mut statuses = BTreeMap::new();
    let mut http_lat = Vec::with_capacity(total);
    while let Some((status, us)) = srx.recv().await {
        *statuses.entry(status).or_insert(0u64) += 1;
        http_lat.push(us);
    }

    // Until every created request ended at its student, or the drain timeout.
    say("waiting for every request to end at its student");
    let deadline = Instant::now() + args.drain_timeout;
    loop {
        let open = shared.reqs.iter().filter(|r| r.created.load(Relaxed) && !r.done_seen.load(Relaxed)).count();
        if open == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = t0.elapsed();
    let after = pid.and_then(procstat::sample);
    shared.stop.cancel();
    for t in streams {
        let _ = t.await;
    }
    desk_task.abort();
    let _ = queues.disconnect().await;
    let _ = publisher.disconnect().await;

    let created: Vec<&Req> = shared.reqs.iter().filter(|r| r.created.load(Relaxed)).collect();
    let completed = created.iter().filter(|r| r.done_seen.load(Relaxed)).count() as u64;
    let to_desk = std::mem::take(&mut *shared.to_desk.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    let to_student = std::mem::take(&mut *shared.to_student.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    Ok(ConsultReport {
        desks: d,
        students: s,
        target_rate: args.rate,
        duration_s: args.duration.as_secs_f64(),
        submitted: total as u64,
        statuses,
        completed_rate: completed as f64 / elapsed.as_secs_f64(),
        completed,
        submit_http: Latency::of(http_lat),
        to_desk: Latency::of(to_desk),
        reply_to_student: Latency::of(to_student),
        floor,
        lost_at_desk: created.iter().filter(|r| r.at_desk.load(Relaxed) == 0).count() as u64,
        lost_at_student: created.iter().filter(|r| r.replied.load(Relaxed) > 0 && !r.done_seen.load(Relaxed)).count()
            as u64,
        regressions: regressions.load(Relaxed),
        snapshots: snapshots.load(Relaxed),
        stream_errors: stream_errors.load(Relaxed),
        server_rss_before_kb: before.map_or(0, |x| x.rss_kb),
        server_rss_max_kb: rss_max.max(after.map_or(0, |x| x.rss_kb)),
        server_cpu_cores: match (before, after) {
            (Some(b), Some(a)) => procstat::cores(b, a, t0, Instant::now()),
            _ => 0.0,
        },
    })
}

pub fn print(r: &ConsultReport) {
    let lat = |name: &str, l: &Latency| {
        println!(
            "  {name:<28} p50 {:>8.2} ms  p90 {:>8.2}  p99 {:>8.2}  p99.9 {:>8.2}  max {:>8.2}  (n={})",
            l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms, l.samples
        )
    };
    println!(
        "consultations: {} desks, {} students, {:.0} requests/s for {:.0} s",
        r.desks, r.students, r.target_rate, r.duration_s
    );
    println!("  submitted {}  answers {:?}", r.submitted, r.statuses);
    println!("  completed {} ({:.0}/s over the run, drain included)", r.completed, r.completed_rate);
    lat("submit (HTTP 201)", &r.submit_http);
    lat("submit -> desk snapshot", &r.to_desk);
    lat("desk reply -> student event", &r.reply_to_student);
    lat("MQTT floor (QoS 1)", &r.floor);
    println!(
        "  lost at desk {}  lost at student {}  regressions {}  stream snapshots {}  stream errors {}",
        r.lost_at_desk, r.lost_at_student, r.regressions, r.snapshots, r.stream_errors
    );
    if r.server_rss_before_kb > 0 {
        println!(
            "  server RSS {} -> max {} KB, CPU {:.2} cores",
            r.server_rss_before_kb, r.server_rss_max_kb, r.server_cpu_cores
        );
    }
    println!("  {}", if r.ok() { "OK: nothing lost or regressed" } else { "FAILED: see above" });
}
