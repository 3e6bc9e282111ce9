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
