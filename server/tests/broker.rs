//! The embedded broker as an attacker and a careless client would meet it, and the server's
//! reaction to a takeover of its client id on an external broker.

use domain::Status;
use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS};
use server::mqtt::BrokerAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use testkit::{TestServer, brokers, eventually, unique};

/// Connects a plain client; returns it with the CONNACK code it got.
async fn client(
    broker: &BrokerAddr,
    id: &str,
    login: Option<(&str, &str)>,
) -> (AsyncClient, ConnectReturnCode, tokio::sync::mpsc::UnboundedReceiver<rumqttc::Publish>) {
    let mut opts = MqttOptions::new(id, &broker.host, broker.port);
    opts.set_keep_alive(Duration::from_secs(5)).set_max_packet_size(1 << 20, 1 << 20);
    if let Some((u, p)) = login {
        opts.set_credentials(u, p);
    }
    let (client, mut el) = AsyncClient::new(opts, 1000);
    let (code_tx, code_rx) = tokio::sync::oneshot::channel();
    let (pub_tx, pub_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut code_tx = Some(code_tx);
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    if let Some(tx) = code_tx.take() {
                        let _ = tx.send(ack.code);
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = pub_tx.send(p);
                }
                Ok(_) => {}
                Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
                    if let Some(tx) = code_tx.take() {
                        let _ = tx.send(code);
                    }
                    return;
                }
                Err(_) => return,
            }
        }
    });
    let code = tokio::time::timeout(Duration::from_secs(5), code_rx).await.expect("a CONNACK").expect("a code");
    (client, code, pub_rx)
}

/// Regression (outside test run): any client connecting with the server's client id kicked the
/// server off and wiped its persistent session; 21-24 % of 2,000 QoS 1 messages never reached it.
/// The embedded broker now keeps that id for the server's own credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_else_can_connect_with_the_servers_client_id() {
    let s = TestServer::start().await;
    let id = s.faculty("Ada", "tk1").await;
    let mut desk = s.desk("tk1", 1, 0).await;
    assert!(s.running.broker.password.is_some(), "the server uses a credential on its own broker");
    let broker = s.broker();
    let taken = s.state().ingest.as_ref().unwrap().clone();
    let server_client_id = s.running.client_id.clone();
    let attacker = tokio::spawn({
        let broker = broker.clone();
        async move {
            let mut codes = Vec::new();
            for _ in 0..20 {
                let (_c, code, _) = client(&broker, &server_client_id, None).await;
                codes.push(code);
                let (_c, code, _) = client(&broker, &server_client_id, Some(("consultease-server", "guess"))).await;
                codes.push(code);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            codes
        }
    });
    for i in 0..2000 {
        desk.state(i % 2 == 0, false).await;
    }
    let codes = attacker.await.unwrap();
    assert!(codes.iter().all(|c| *c == ConnectReturnCode::NotAuthorized), "{codes:?}");
    eventually("every message is applied", || async { s.metrics().mqtt_applied.get() >= 2001 }).await;
    assert_eq!(s.metrics().mqtt_session_lost.get(), 0);
    assert!(taken.subscribed.load(Relaxed));
    assert!(s.metrics().broker_refusals("not_authorized") >= 40);
    let f = s.store.snapshot().await.unwrap().faculty.into_iter().find(|f| f.id == id).unwrap();
    assert_eq!(f.version, 2 + 2000, "every change committed once");
}

/// Connects over plain TCP and sends one QoS 1 PUBLISH on `topic`, unchecked; returns once the
/// broker has closed the connection.
async fn raw_publish(broker: &BrokerAddr, topic: &str) {
    use rumqttc::mqttbytes::v4::{Connect, Packet as Raw, Publish};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect((broker.host.as_str(), broker.port)).await.unwrap();
    let mut out = bytes::BytesMut::new();
    Raw::Connect(Connect::new(format!("raw-{}", unique()))).write(&mut out, usize::MAX).unwrap();
    let mut p = Publish::new(topic, QoS::AtLeastOnce, b"{}".to_vec());
    p.pkid = 1;
    Raw::Publish(p).write(&mut out, usize::MAX).unwrap();
    tcp.write_all(&out).await.unwrap();
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(n) = tcp.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the broker disconnects a client publishing on {topic:?}");
}

/// Regression (outside test run): PUBLISH topics holding `+`, `#` or NUL were passed on. Now the
/// publisher is disconnected and nothing reaches any subscriber, even one on `#`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_or_nul_in_a_published_topic_reaches_nobody() {
    let s = TestServer::start().await;
    let broker = s.broker();
    let (watcher, code, mut seen) = client(&broker, &format!("watch-{}", unique()), None).await;
    assert_eq!(code, ConnectReturnCode::Success);
    watcher.subscribe("#", QoS::AtLeastOnce).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // rumqttc refuses to send such topics: write the packets by hand, as a hostile client would.
    for bad in ["desk/+/state", "desk/#", "desk/d\0/state"] {
        raw_publish(&broker, &format!("{}/{bad}", s.prefix)).await;
    }
    let (c, _, _) = client(&broker, &format!("good-{}", unique()), None).await;
    c.publish(format!("{}/probe", s.prefix), QoS::AtLeastOnce, false, &b"ok"[..]).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), seen.recv()).await.unwrap().unwrap();
    assert_eq!(first.topic, format!("{}/probe", s.prefix), "the bad topics never arrived, the good one did");
    eventually("three refusals", || async { s.metrics().broker_refusals("bad_topic") == 3 }).await;
}

/// The embedded broker delivers a message once per client however many of its filters match
/// (regression: twelve-fold memory with one subscriber holding 20 overlapping filters), and keeps
/// no more than a client's queue limit for a client that does not read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_filters_deliver_once() {
    let broker = brokers::embedded();
    let prefix = format!("ov-{}", unique());
    let (sub, _, mut seen) = client(&broker, &format!("ov-sub-{}", unique()), None).await;
    let filters = [
        "#".to_owned(),
        format!("{prefix}/#"),
        format!("{prefix}/+/+"),
        format!("{prefix}/a/+"),
        format!("{prefix}/a/b"),
    ];
    for f in &filters {
        sub.subscribe(f, QoS::AtLeastOnce).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (publ, _, _) = client(&broker, &format!("ov-pub-{}", unique()), None).await;
    publ.publish(format!("{prefix}/a/b"), QoS::AtLeastOnce, false, &b"1"[..]).await.unwrap();
    publ.publish(format!("{prefix}/a/c"), QoS::AtLeastOnce, false, &b"2"[..]).await.unwrap();
    let mut got = Vec::new();
    while let Ok(Some(p)) = tokio::time::timeout(Duration::from_millis(500), seen.recv()).await {
        if p.topic.starts_with(&prefix) {
            got.push(String::from_utf8_lossy(&p.payload).into_owned());
        }
    }
    assert_eq!(got, ["1", "2"]);
}

/// On an external broker (Mosquitto, anonymous) nothing stops another client from taking the
/// server's client id: the server notices it lost its session, says so, counts it, re-subscribes,
/// and goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_reports_a_takeover_on_an_external_broker_and_resubscribes() {
    let Some(mosquitto) = brokers::mosquitto().await else { return };
    let s = TestServer::builder().broker(mosquitto.clone()).start().await;
    let id = s.faculty("Grace", "tk2").await;
    let mut desk = s.desk("tk2", 1, 0).await;
    s.store.snapshot().await.unwrap();
    // The intruder takes the id with a clean session (wiping the server's), then the server takes it back.
    let (intruder, _, _) = client(&mosquitto, &s.running.client_id, None).await;
    eventually("the server noticed", || async { s.metrics().mqtt_session_lost.get() >= 1 }).await;
    drop(intruder);
    let ingest = s.state().ingest.as_ref().unwrap().clone();
    eventually("the server is subscribed again", || async { ingest.subscribed.load(Relaxed) }).await;
    desk.state(true, false).await;
    eventually("the desk's change applies", || async {
        s.store.snapshot().await.unwrap().faculty.iter().any(|f| f.id == id && f.status == Status::Available)
    })
    .await;
}

/// A connection's end: its receiver closes when the broker drops it.
async fn dropped(rx: &mut tokio::sync::mpsc::UnboundedReceiver<rumqttc::Publish>, what: &str) -> Vec<rumqttc::Publish> {
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(6), rx.recv()).await {
            Ok(Some(p)) => got.push(p),
            Ok(None) => return got,
            Err(_) => panic!("{what}: the broker kept the connection"),
        }
    }
}

/// Desk units on their own credentials: anonymous, wrong and borrowed credentials are refused; a
/// desk publishes and subscribes only on its own topics (trying anything else drops it, is counted,
/// and changes nothing of the other desk); a rotated password stops working at once and the
/// connection made with it is dropped. The CLI's `desk add` prints the password once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desks_connect_with_their_own_credential_and_reach_only_their_own_topics() {
    let s = TestServer::builder().desk_credentials_required().start().await;
    let p = s.prefix.clone();
    let broker = s.broker();
    let a = s.faculty("Ada", "ka").await;
    let b = s.faculty("Bob", "kb").await;
    let (pa, pb) = (s.desk_password("ka").await, s.desk_password("kb").await);
    let metrics = s.running.state.metrics.clone();

    // Who may not connect at all.
    assert_eq!(client(&broker, "someone", None).await.1, ConnectReturnCode::NotAuthorized, "anonymous");
    assert_eq!(client(&broker, "ka", Some(("ka", "not the password"))).await.1, ConnectReturnCode::BadUserNamePassword);
    assert_eq!(client(&broker, "kb", Some(("ka", &pa))).await.1, ConnectReturnCode::NotAuthorized, "A's login, B's id");
    assert_eq!(
        client(&broker, "kz", Some(("kz", &pa))).await.1,
        ConnectReturnCode::BadUserNamePassword,
        "no such desk"
    );

    // Both desks report, with their credentials.
    let mut da = s.desk_with_password("ka", &pa, 1, 0).await;
    da.state(true, false).await;
    let mut db = s.desk_with_password("kb", &pb, 1, 0).await;
    db.state(true, false).await;
    let available = |id| {
        let store = s.store.clone();
        async move { store.faculty(id).await.unwrap().is_some_and(|f| f.status == Status::Available) }
    };
    eventually("both available", || async { available(a).await && available(b).await }).await;

    // The real desk A goes; a rogue firmware holding A's credential tries to speak for B: dropped,
    // counted, B unchanged (even with a boot that would pin B's clock).
    da.kill();
    let before = metrics.broker_refusals("publish_denied");
    let (evil, code, mut rx) = client(&broker, "ka", Some(("ka", &pa))).await;
    assert_eq!(code, ConnectReturnCode::Success);
    let forged =
        domain::protocol::Payload::State { clock: domain::DeskClock::new(4_000_000, 1), present: false, busy: false };
    evil.publish(format!("{p}/desk/kb/state"), QoS::AtLeastOnce, true, forged.encode()).await.unwrap();
    dropped(&mut rx, "publishing on B's topic").await;
    assert_eq!(metrics.broker_refusals("publish_denied"), before + 1);
    // ... nor clear B's retained state, nor write B's queue.
    for topic in [format!("{p}/desk/kb/state"), format!("{p}/desk/kb/queue"), format!("{p}/desk/ka/queue")] {
        let (evil, _, mut rx) = client(&broker, "ka", Some(("ka", &pa))).await;
        evil.publish(topic.clone(), QoS::AtLeastOnce, true, Vec::new()).await.unwrap();
        dropped(&mut rx, &topic).await;
    }
    assert_eq!(metrics.broker_refusals("publish_denied"), before + 4);
    // ... nor read B's queue, or everything.
    let denied = metrics.broker_refusals("subscribe_denied");
    for filter in
        [format!("{p}/desk/kb/queue"), "#".to_owned(), format!("{p}/desk/+/queue"), format!("{p}/desk/kb/state")]
    {
        let (evil, _, mut rx) = client(&broker, "ka", Some(("ka", &pa))).await;
        evil.subscribe(filter.clone(), QoS::AtLeastOnce).await.unwrap();
        let got = dropped(&mut rx, &filter).await;
        assert!(
            got.is_empty(),
            "{filter}: nothing delivered, got {:?}",
            got.iter().map(|m| &m.topic).collect::<Vec<_>>()
        );
    }
    assert_eq!(metrics.broker_refusals("subscribe_denied"), denied + 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(available(b).await, "B's state is B's own");

    // Its own queue it may read; its own topics it may write.
    let (own, _, mut own_rx) = client(&broker, "ka", Some(("ka", &pa))).await;
    own.subscribe(format!("{p}/desk/ka/queue"), QoS::AtLeastOnce).await.unwrap();
    own.publish(format!("{p}/desk/ka/heartbeat"), QoS::AtLeastOnce, false, br#"{"boot":1,"seq":50}"#.to_vec())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    while let Ok(m) = own_rx.try_recv() {
        assert_eq!(m.topic, format!("{p}/desk/ka/queue"), "only its own queue");
    }
    assert!(matches!(own_rx.try_recv(), Err(tokio::sync::mpsc::error::TryRecvError::Empty)), "still connected");

    // Rotation: the connection made with the old password drops; the old one is refused, the new works.
    let new = s.desk_password("ka").await;
    dropped(&mut own_rx, "after rotation").await;
    assert_eq!(client(&broker, "ka", Some(("ka", &pa))).await.1, ConnectReturnCode::BadUserNamePassword);
    assert_eq!(client(&broker, "ka", Some(("ka", &new))).await.1, ConnectReturnCode::Success);

    // The CLI issues a password once, as a `password:` line, and audits it.
    let c = s
        .store
        .add_faculty(&store::NewFaculty { name: "Cy".into(), department: "X".into(), email: None })
        .await
        .unwrap();
    let mut out = Vec::new();
    server::cli::desk(&s.store, server::config::DeskCmd::Add { desk: "kc".into(), faculty: c }, &mut out)
        .await
        .unwrap();
    let out = String::from_utf8(out).unwrap();
    let password = out.lines().find_map(|l| l.strip_prefix("password: ")).expect("a password line").to_owned();
    assert!(password.len() >= 32 && password.bytes().all(|b| b.is_ascii_hexdigit()), "≥ 128 bits: {password}");
    assert_eq!(client(&broker, "kc", Some(("kc", &password))).await.1, ConnectReturnCode::Success);
    let log = s.store.audit_log(20).await.unwrap();
    assert!(log.iter().any(|e| e.action == "desk_registered" && e.subject.as_deref() == Some("desk:kc")));
    assert!(log.iter().all(|e| !e.detail.as_deref().unwrap_or("").contains(&password)), "never in the audit");
    // desk-sim with that credential is desk kc.
    let sim_broker = BrokerAddr { username: Some("kc".into()), password: Some(password), ..broker.clone() };
    let here = server::desk_sim::Presence { present: true, busy: false };
    let _sim = server::desk_sim::SimDesk::connect(&sim_broker, &p, "kc", 1, here).await.unwrap();
    eventually("the simulated desk kc reports", || available(c)).await;
}

/// Defence in depth behind the credentials: a desk message whose boot jumps more than 1,000 past
/// the desk's last one (which would outrank everything the real desk sends, for good) is rejected
/// as `implausible_clock`, counted, and changes nothing — until an admin resets the desk's clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_implausible_boot_jump_is_rejected_until_the_clock_is_reset() {
    let s = TestServer::start().await;
    let id = s.faculty("Ada", "ic1").await;
    let mut desk = s.desk("ic1", 7, 0).await;
    desk.state(true, false).await;
    let status = || async { s.store.faculty(id).await.unwrap().map(|f| f.status) };
    eventually("available", || async { status().await == Some(Status::Available) }).await;
    let forged =
        domain::protocol::Payload::State { clock: domain::DeskClock::new(7 + 1001, 1), present: false, busy: true };
    desk.raw("state", forged.encode(), true).await;
    eventually("refused as implausible", || async { s.metrics().rejected("implausible_clock") == 1 }).await;
    assert_eq!(status().await, Some(Status::Available));
    desk.state(true, true).await; // the real desk goes on
    eventually("the real desk still counts", || async { status().await == Some(Status::Busy) }).await;
    // After a reset (a firmware wipe, say) the desk's next message applies whatever its boot.
    s.store.reset_desk_clock("ic1", None).await.unwrap();
    desk.raw("state", forged.encode(), true).await;
    eventually("applied after the reset", || async {
        s.store.faculty(id).await.unwrap().is_some_and(|f| f.status == Status::Busy && !f.present)
    })
    .await;
    assert_eq!(s.metrics().rejected("implausible_clock"), 1);
}

/// The Mosquitto binary, or `None` (after saying why) when it is not installed and not required.
fn mosquitto_bin() -> Option<std::path::PathBuf> {
    let found = ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(!testkit::services_required(), "Mosquitto required (CONSULTEASE_REQUIRE_SERVICES=1) but not installed");
        eprintln!("skipped: no mosquitto binary");
    }
    found
}

/// A Mosquitto process, killed when dropped.
struct Mosquitto(std::process::Child);

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts Mosquitto on a free loopback port with `settings` (written to `dir`), once it listens.
async fn start_mosquitto(bin: &std::path::Path, dir: &std::path::Path, settings: &str) -> (Mosquitto, u16) {
    let port = free_port();
    // Started as root, Mosquitto drops to its own user, which cannot read a test's temp files.
    let me = std::process::Command::new("id").arg("-un").output().unwrap();
    let me = String::from_utf8_lossy(&me.stdout).trim().to_owned();
    let conf = dir.join(format!("run-{port}.conf"));
    std::fs::write(&conf, format!("listener {port} 127.0.0.1\npersistence false\nuser {me}\n{settings}")).unwrap();
    let child = std::process::Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mosquitto = Mosquitto(child);
    eventually("mosquitto listens", || async { tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() })
        .await;
    (mosquitto, port)
}

/// `consultease broker export --mosquitto` against a real Mosquitto started with its files: the
/// server connects as its own user; desks only with their passwords; a desk cannot write another
/// desk's state nor read another desk's queue (Mosquitto drops such a publish and delivers nothing
/// of such a subscription); after a rotation and a new export, SIGHUP makes the old password fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_with_the_exported_files_keeps_desks_apart() {
    let Some(bin) = mosquitto_bin() else { return };
    let db = testkit::Database::Sqlite.fresh().await.unwrap();
    let store = store::Store::connect(&db.url).await.unwrap();
    let prefix = format!("mx-{}", unique());
    let mut ids = Vec::new();
    let mut passwords = Vec::new();
    for (name, desk) in [("Ada", "ma"), ("Bob", "mb")] {
        let nf = store::NewFaculty { name: name.into(), department: "X".into(), email: None };
        let id = store.add_faculty(&nf).await.unwrap();
        store.add_desk(desk, id).await.unwrap();
        let password = auth::mqtt_password::generate().unwrap();
        store.set_desk_mqtt_hash(desk, &auth::mqtt_password::hash(&password, 101).unwrap(), None).await.unwrap();
        ids.push(id);
        passwords.push(password);
    }
    let dir = tempfile::tempdir().unwrap();
    let server_password = auth::mqtt_password::generate().unwrap();
    let export = server::cli::mosquitto::Export {
        dir: dir.path(),
        prefix: &prefix,
        server_user: "consultease-server",
        server_password: &server_password,
        iterations: 1000,
    };
    assert_eq!(server::cli::mosquitto::export(&store, &export).await.unwrap(), 2);
    let passwd = std::fs::read_to_string(dir.path().join("passwd")).unwrap();
    assert!(passwd.lines().all(|l| l.split_once(':').is_some_and(|(_, h)| h.starts_with("$7$"))), "{passwd}");
    assert!(!passwd.contains(&passwords[0]) && !passwd.contains(&server_password), "hashes only");

    let snippet = std::fs::read_to_string(dir.path().join("mosquitto.conf")).unwrap();
    let (mosquitto, port) = start_mosquitto(&bin, dir.path(), &snippet).await;
    let addr = BrokerAddr::parse(&format!("mqtt://127.0.0.1:{port}")).unwrap();

    // The server, as its own user; desks only with their own passwords.
    let with = |u: &str, p: &str| BrokerAddr { username: Some(u.into()), password: Some(p.into()), ..addr.clone() };
    let s = TestServer::builder()
        .database(db)
        .prefix(&prefix)
        .broker(with("consultease-server", &server_password))
        .start()
        .await;
    assert_ne!(client(&addr, "someone", None).await.1, ConnectReturnCode::Success, "anonymous");
    assert_ne!(client(&addr, "ma", Some(("ma", "wrong"))).await.1, ConnectReturnCode::Success, "wrong password");
    assert_ne!(client(&addr, "ma", Some(("ma", &passwords[1]))).await.1, ConnectReturnCode::Success, "B's password");
    let mut a = testkit::Desk::connect_as(&with("ma", &passwords[0]), &prefix, "ma", "ma", 1, 0).await;
    let mut b = testkit::Desk::connect_as(&with("mb", &passwords[1]), &prefix, "mb", "mb", 1, 0).await;
    a.state(true, false).await;
    b.state(true, false).await;
    let status = |id: i64| {
        let store = s.store.clone();
        async move { store.faculty(id).await.unwrap().map(|f| f.status) }
    };
    eventually("both available", || async {
        status(ids[0]).await == Some(Status::Available) && status(ids[1]).await == Some(Status::Available)
    })
    .await;

    // B has a queue holding a student's message.
    let student = s
        .store
        .add_student(&store::NewStudent { number: "S-1".into(), name: "Grace".into(), ..Default::default() }, None)
        .await
        .unwrap();
    let new = store::NewRequest {
        student_id: student,
        faculty_id: ids[1],
        course: None,
        message: "B's private question".into(),
        hold: false,
    };
    s.store.place_request(&new).await.unwrap();
    b.subscribe_queue().await;
    let snap = b.snapshot_above(0).await;
    assert_eq!(snap.items.len(), 1, "B reads its own queue");

    // A, with its own credential, tries B's state and B's queue.
    let (evil, code, mut rx) = client(&addr, "ma", Some(("ma", &passwords[0]))).await;
    assert_eq!(code, ConnectReturnCode::Success);
    for filter in [format!("{prefix}/desk/mb/queue"), format!("{prefix}/desk/+/queue"), "#".to_owned()] {
        let _ = evil.subscribe(filter, QoS::AtLeastOnce).await;
    }
    let forged = domain::protocol::Payload::State { clock: domain::DeskClock::new(2, 1), present: false, busy: false };
    evil.publish(format!("{prefix}/desk/mb/state"), QoS::AtLeastOnce, true, forged.encode()).await.unwrap();
    // Clearing B's retained state: had Mosquitto passed the empty message on, the server would
    // have rejected it as malformed.
    evil.publish(format!("{prefix}/desk/mb/state"), QoS::AtLeastOnce, true, Vec::new()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(status(ids[1]).await, Some(Status::Available), "B's state is B's own");
    assert_eq!(s.metrics().rejected("malformed_json"), 0, "nothing of A's reached B's topics");
    while let Ok(m) = rx.try_recv() {
        assert!(
            !m.topic.contains("/mb/") && !String::from_utf8_lossy(&m.payload).contains("private"),
            "leaked {}",
            m.topic
        );
    }

    // Rotation: a new password, a new export, SIGHUP: the old password fails, the new one works.
    let rotated = auth::mqtt_password::generate().unwrap();
    s.store.set_desk_mqtt_hash("ma", &auth::mqtt_password::hash(&rotated, 101).unwrap(), None).await.unwrap();
    server::cli::mosquitto::export(&s.store, &export).await.unwrap();
    let pid = mosquitto.0.id().to_string();
    assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    eventually("the old password fails after the reload", || async {
        client(&addr, &format!("ma-{}", unique()), Some(("ma", &passwords[0]))).await.1 != ConnectReturnCode::Success
    })
    .await;
    assert_eq!(client(&addr, "ma", Some(("ma", &rotated))).await.1, ConnectReturnCode::Success);
}

/// A throw-away CA and a certificate for 127.0.0.1 and localhost signed by it: (ca, cert, key), PEM.
fn throwaway_ca() -> (String, String, String) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "ConsultEase test CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.subject_alt_names.push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Whether a client with these settings fails before any CONNACK (TLS refused or not spoken).
async fn cannot_connect(addr: &BrokerAddr) -> bool {
    let (_client, mut el) = AsyncClient::new(addr.mqtt_options(format!("probe-{}", unique())), 10);
    loop {
        match tokio::time::timeout(Duration::from_secs(5), el.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => return false,
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return true,
            Err(_) => return true,
        }
    }
}

/// The embedded broker's TLS listener: a desk whose firmware trusts the campus CA connects over
/// TLS with its credential and reports; a client that does not trust the certificate, or that
/// speaks plain MQTT to the TLS port, gets nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desks_reach_the_embedded_broker_over_tls() {
    let (ca, cert, key) = throwaway_ca();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let port = free_port();
    let s = TestServer::builder()
        .desk_credentials_required()
        .mqtt_tls(([127, 0, 0, 1], port).into(), cert_path, key_path)
        .start()
        .await;
    let id = s.faculty("Ada", "tl1").await;
    let password = s.desk_password("tl1").await;
    let tls = BrokerAddr {
        port,
        username: Some("tl1".into()),
        password: Some(password),
        ..BrokerAddr::local(([127, 0, 0, 1], port).into())
    }
    .with_ca(ca.into_bytes());
    let mut desk = testkit::Desk::connect_as(&tls, &s.prefix, "tl1", "tl1", 1, 0).await;
    desk.state(true, false).await;
    eventually("the desk reports over TLS", || async {
        s.store.faculty(id).await.unwrap().is_some_and(|f| f.status == Status::Available)
    })
    .await;
    assert!(
        cannot_connect(&BrokerAddr { tls: Some(server::mqtt::Tls::SystemRoots), ..tls.clone() }).await,
        "untrusted"
    );
    assert!(cannot_connect(&BrokerAddr { tls: None, ..tls.clone() }).await, "plain MQTT on the TLS port");
    assert!(s.metrics().broker_refusals("tls_handshake") >= 1);
}

/// `mqtts://` with `--mqtt-ca`: the server ingests through a Mosquitto TLS listener that trusts a
/// throw-away CA, and a desk reports through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_reaches_mosquitto_over_tls() {
    let Some(bin) = mosquitto_bin() else { return };
    let (ca, cert, key) = throwaway_ca();
    let dir = tempfile::tempdir().unwrap();
    for (name, pem) in [("ca.pem", &ca), ("cert.pem", &cert), ("key.pem", &key)] {
        std::fs::write(dir.path().join(name), pem).unwrap();
    }
    let d = dir.path().display();
    let tls_conf = format!("cafile {d}/ca.pem\ncertfile {d}/cert.pem\nkeyfile {d}/key.pem\nallow_anonymous true\n");
    let (_mosquitto, port) = start_mosquitto(&bin, dir.path(), &tls_conf).await;
    let tls = BrokerAddr::parse(&format!("mqtts://127.0.0.1:{port}")).unwrap().with_ca(ca.into_bytes());
    let s = TestServer::builder().broker(tls.clone()).start().await;
    let id = s.faculty("Ada", "tm1").await;
    let mut desk = testkit::Desk::connect(&tls, &s.prefix, "tm1", 1, 0).await;
    desk.state(true, false).await;
    eventually("ingested over TLS", || async {
        s.store.faculty(id).await.unwrap().is_some_and(|f| f.status == Status::Available)
    })
    .await;
    assert!(cannot_connect(&BrokerAddr { tls: None, ..tls }).await, "plain MQTT on the TLS port");
}

/// A desk unit moved to another faculty member (a broken unit replaced, an office swapped) and then
/// retired, as the dashboard does it: the old faculty member's card goes offline and the new one's
/// follows the desk; the desk takes the new queue although its version sequence is another faculty
/// member's (it is raised above every other); retired, its connection is dropped and its password
/// no longer works; each step is audited and the board gets every event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desk_moved_to_another_faculty_member_and_retired() {
    let s = TestServer::builder().desk_credentials_required().start().await;
    let a = s.faculty("Ada Lovelace", "mv1").await;
    let store = &s.store;
    let b = store
        .add_faculty(&store::NewFaculty { name: "Grace Hopper".into(), department: "Navy".into(), email: None })
        .await
        .unwrap();
    let password = s.desk_password("mv1").await;
    let mut desk = s.desk_with_password("mv1", &password, 1, 0).await;
    desk.subscribe_queue().await;
    desk.state(true, false).await;
    let status = |id: i64| async move { store.faculty(id).await.unwrap().map(|f| f.status) };
    eventually("Ada is available", || async { status(a).await == Some(Status::Available) }).await;
    // Ada's queue grows a few versions, so the desk shows a version Grace's queue never reached.
    let student = store
        .add_student(&store::NewStudent { number: "S-1".into(), name: "Sam".into(), ..Default::default() }, None)
        .await
        .unwrap();
    let asked = store
        .place_request(&store::NewRequest {
            student_id: student,
            faculty_id: a,
            course: None,
            message: "A question about the engine".into(),
            hold: false,
        })
        .await
        .unwrap();
    let shown = desk.snapshot_above(0).await;
    assert_eq!(shown.items.len(), 1);

    let entry =
        |action: &str| store::AuditEntry { actor: "admin:ada".into(), action: action.into(), ..Default::default() };
    let mut board = store.bus().subscribe();
    store.bind_desk("mv1", Some(b), &entry("desk_bound")).await.unwrap();
    let (first, second) = (board.recv().await.unwrap(), board.recv().await.unwrap());
    assert_eq!((first.faculty.id, first.faculty.status), (a, Status::Offline), "Ada has no desk now");
    assert_eq!((second.faculty.id, second.faculty.status), (b, Status::Available), "Grace takes the desk's state");
    let moved = desk.snapshot_above(shown.version).await;
    assert!(moved.items.is_empty() && moved.version > shown.version, "Grace's (empty) queue, newer: {moved:?}");
    assert_eq!(moved.faculty.name, "Grace Hopper");
    // Ada's open request stays hers (cancel or reassign it from the consultations page).
    assert_eq!(store.request_view(asked.id).await.unwrap().unwrap().faculty_id, a);
    // Taken desks and unknown ones are refused with a reason.
    let c = s.faculty("Katherine Johnson", "mv2").await;
    assert!(matches!(store.bind_desk("mv1", Some(c), &entry("desk_bound")).await, Err(store::StoreError::Conflict(_))));
    assert!(matches!(
        store.bind_desk("nope", Some(a), &entry("desk_bound")).await,
        Err(store::StoreError::NotFound(_))
    ));

    store.retire_desk("mv1", &entry("desk_retired")).await.unwrap();
    assert_eq!(status(b).await, Some(Status::Offline));
    assert!(store.list_desks().await.unwrap().iter().all(|d| d.id != "mv1"));
    eventually("the retired desk cannot connect", || async {
        client(&s.broker(), &format!("mv1-{}", unique()), Some(("mv1", &password))).await.1
            != ConnectReturnCode::Success
    })
    .await;
    let log = store.audit_log(20).await.unwrap();
    assert!(log.iter().any(|e| e.action == "desk_bound") && log.iter().any(|e| e.action == "desk_retired"));
    desk.kill();
}
