//! The ingest over a real broker: the embedded one, and Mosquitto (CONSULTEASE_TEST_MQTT_URL,
//! default mqtt://127.0.0.1:1883) when reachable. A plain MQTT client publishes as a desk would.
//! With CONSULTEASE_REQUIRE_SERVICES=1 an unreachable Mosquitto fails the tests instead of skipping.

use domain::Status;
use domain::protocol::Payload;
use server::mqtt::{self, BrokerAddr, IngestHandle, MqttConfig};
use server::telemetry::Metrics;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use store::{NewFaculty, Store};
use testkit::{Broker, Desk, eventually, unique};
use tokio_util::sync::CancellationToken;

/// A store, a broker, and the server's ingest (stoppable and restartable, like the server).
struct Harness {
    store: Store,
    broker: BrokerAddr,
    prefix: String,
    client_id: String,
    timeout: Duration,
    ingest: Option<(IngestHandle, CancellationToken)>,
    metrics: Arc<Metrics>,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn new(broker: Broker, timeout: Duration) -> Option<Harness> {
        let broker = broker.addr().await?;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}/db.sqlite", dir.path().display())).await.unwrap();
        let id = unique();
        let mut h = Harness {
            store,
            broker,
            prefix: format!("test-{id}"),
            client_id: format!("consultease-test-{id}"),
            timeout,
            ingest: None,
            metrics: Arc::new(Metrics::new()),
            _dir: dir,
        };
        h.start().await;
        Some(h)
    }

    async fn start(&mut self) {
        let config = MqttConfig {
            broker: self.broker.clone(),
            prefix: self.prefix.clone(),
            client_id: self.client_id.clone(),
            desk_timeout: self.timeout,
            batch_max: 64,
            batch_delay: Duration::from_millis(2),
        };
        let token = CancellationToken::new();
        let handle = mqtt::start(config, self.store.clone(), self.metrics.clone(), Default::default(), token.clone());
        let stats = handle.status.clone();
        self.ingest = Some((handle, token));
        eventually("the ingest subscribes", || {
            let s = stats.clone();
            async move { s.subscribed.load(Relaxed) }
        })
        .await;
    }

    /// Stops the ingest as a server shutdown would (the broker keeps the session).
    async fn stop(&mut self) {
        if let Some((_, token)) = self.ingest.take() {
            token.cancel();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    async fn faculty(&self, name: &str, desk: &str) -> i64 {
        let id = self
            .store
            .add_faculty(&NewFaculty { name: name.into(), department: "Engineering".into(), email: None })
            .await
            .unwrap();
        self.store.add_desk(desk, id).await.unwrap();
        id
    }

    async fn view(&self, id: i64) -> domain::FacultyView {
        self.store.snapshot().await.unwrap().faculty.into_iter().find(|f| f.id == id).unwrap()
    }

    async fn wait_status(&self, id: i64, status: Status) -> domain::FacultyView {
        eventually(&format!("faculty {id} becomes {status}"), || async move { self.view(id).await.status == status })
            .await;
        self.view(id).await
    }

    /// Waits until the ingest has handled `n` messages in total (applied, stale or rejected).
    async fn wait_handled(&self, n: u64) {
        eventually(&format!("{n} messages handled"), || async move {
            let m = self.metrics();
            let rejected: u64 = domain::protocol::Reject::LABELS.iter().map(|r| m.rejected(r)).sum();
            m.mqtt_applied.get() + m.mqtt_stale.get() + rejected >= n
        })
        .await;
    }

    /// A desk unit as docs/PROTOCOL.md describes it: last will reserved at `seq`, announcement at
    /// `seq + 1`.
    async fn desk(&self, id: &str, boot: u32, seq: u64) -> Desk {
        Desk::connect(&self.broker, &self.prefix, id, boot, seq).await
    }
}

testkit::over_brokers!(
    state_is_committed_with_its_version,
    duplicates_and_reordered_messages_change_nothing,
    messages_published_while_the_server_is_down_are_applied_after_it_starts,
    malformed_payloads_are_counted_and_change_nothing,
    last_will_makes_the_desk_offline,
    silence_makes_the_desk_offline,
    defect1_a_dead_desk_does_not_stay_available,
    defect2_old_queued_statuses_after_a_reconnect_do_not_win,
    defect3_a_burst_for_one_faculty_member_ends_in_order,
    an_oversized_message_is_rejected_acknowledged_and_the_next_one_applies,
    an_oversized_retained_message_does_not_stop_the_subscription,
    a_message_that_fails_permanently_is_set_aside_and_the_rest_apply,
);

const LONG: Duration = Duration::from_secs(3600);

async fn state_is_committed_with_its_version(broker: Broker) {
    let Some(h) = Harness::new(broker, LONG).await else { return };
    let id = h.faculty("Ada", "d1").await;
    let mut desk = h.desk("d1", 7, 0).await;
    let f = h.wait_status(id, Status::Away).await;
    assert_eq!((f.version, f.desk_online), (2, true));
    desk.state(true, false).await;
    let f = h.wait_status(id, Status::Available).await;
    assert_eq!(f.version, 3);
    desk.state(true, true).await;
    assert_eq!(h.wait_status(id, Status::Busy).await.version, 4);
    // A heartbeat is recorded on the desk but changes no faculty version.
    desk.heartbeat().await;
    h.wait_handled(4).await;
    assert_eq!(h.view(id).await.version, 4);
    let d = h.store.list_desks().await.unwrap().pop().unwrap();
    assert_eq!((d.boot, d.seq), (Some(7), Some(4)));
}

async fn duplicates_and_reordered_messages_change_nothing(broker: Broker) {
    let Some(h) = Harness::new(broker, LONG).await else { return };
    let id = h.faculty("Alan", "d2").await;
    let mut desk = h.desk("d2", 3, 0).await;
    let s2 = desk.state(true, false).await;
    let s3 = desk.state(false, false).await;
    let before = h.wait_status(id, Status::Away).await;
    assert_eq!(before.version, 4);
    let events = h.store.newest_event_id().await.unwrap();
    // The same messages again, and older ones, in a different order.
    desk.raw("state", desk.state_payload(s3, false, false), false).await;
    desk.raw("state", desk.state_payload(s2, true, false), false).await;
    desk.raw("state", desk.state_payload(s2 - 1, true, true), false).await;
    let old_will = Payload::Online { clock: domain::DeskClock::new(2, 9), online: false };
    desk.raw("online", old_will.encode(), false).await;
    h.wait_handled(7).await;
    assert_eq!(h.metrics().mqtt_stale.get(), 4);
    assert_eq!(h.view(id).await, before);
    assert_eq!(h.store.newest_event_id().await.unwrap(), events);
}

async fn messages_published_while_the_server_is_down_are_applied_after_it_starts(broker: Broker) {
    let Some(mut h) = Harness::new(broker, LONG).await else { return };
    let id = h.faculty("Grace", "d3").await;
    let mut desk = h.desk("d3", 1, 0).await;
    h.wait_status(id, Status::Away).await;
    h.stop().await;
    desk.state(true, false).await;
    desk.state(true, true).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.view(id).await.status, Status::Away, "nobody is ingesting");
    h.start().await;
    let f = h.wait_status(id, Status::Busy).await;
    assert_eq!(f.version, 4, "both queued changes were applied, in order");
}

async fn malformed_payloads_are_counted_and_change_nothing(broker: Broker) {
    let Some(h) = Harness::new(broker, LONG).await else { return };
    let id = h.faculty("Katherine", "d4").await;
    let mut desk = h.desk("d4", 1, 0).await;
    desk.state(true, false).await;
    let before = h.wait_status(id, Status::Available).await;
    let bad: [(&str, Vec<u8>); 6] = [
        ("state", b"{not json".to_vec()),
        ("state", br#"{"boot":1,"present":false}"#.to_vec()),
        ("state", br#"{"boot":1,"seq":"9","present":false}"#.to_vec()),
        ("online", br#"{"boot":1,"seq":9}"#.to_vec()),
        ("state", vec![b' '; 5000]),
        // Not a kind desks send: the server does not subscribe to it, so it never arrives.
        ("reboot", br#"{"boot":1,"seq":9}"#.to_vec()),
    ];
    for (kind, payload) in bad {
        desk.raw(kind, payload, false).await;
    }
    let ghost = h.desk("ghost", 1, 0).await;
    ghost.raw("state", ghost.state_payload(5, true, true), false).await;
    h.wait_handled(9).await;
    let m = h.metrics();
    let got: Vec<(&str, u64)> =
        domain::protocol::Reject::LABELS.iter().map(|r| (*r, m.rejected(r))).filter(|(_, n)| *n > 0).collect();
    assert_eq!(
        got,
        [("too_large", 1), ("malformed_json", 1), ("missing_field", 2), ("wrong_type", 1), ("unknown_desk", 2)]
    );
    assert_eq!(h.view(id).await, before);
    // The desk keeps working afterwards.
    desk.state(false, false).await;
    h.wait_status(id, Status::Away).await;
    assert_eq!(h.metrics().rejected("bad_topic"), 0, "the unknown kind never reached the server");
}

async fn last_will_makes_the_desk_offline(broker: Broker) {
    let Some(h) = Harness::new(broker, LONG).await else { return };
    let id = h.faculty("Hedy", "d5").await;
    let mut desk = h.desk("d5", 2, 0).await;
    desk.state(true, false).await;
    h.wait_status(id, Status::Available).await;
    desk.kill();
    let f = h.wait_status(id, Status::Offline).await;
    assert!(!f.desk_online);
    // Back after a power cycle: new boot, new will, new announcement.
    let mut desk = h.desk("d5", 3, 0).await;
    desk.state(true, false).await;
    h.wait_status(id, Status::Available).await;
}

async fn silence_makes_the_desk_offline(broker: Broker) {
    let Some(h) = Harness::new(broker, Duration::from_millis(1500)).await else { return };
    let id = h.faculty("Barbara", "d6").await;
    let mut desk = h.desk("d6", 1, 0).await;
    desk.state(true, false).await;
    h.wait_status(id, Status::Available).await;
    // The desk stays connected but says nothing (its firmware hung).
    let f = h.wait_status(id, Status::Offline).await;
    assert!(!f.desk_online);
    assert!(h.metrics().desks_timed_out.get() >= 1);
}

/// Original defect 1: a dead desk showed "available" forever (retained status, no will, no
/// staleness check). Here its will ends it, and the retained "present" it left behind, delivered
/// again to a restarted server, cannot bring it back.
async fn defect1_a_dead_desk_does_not_stay_available(broker: Broker) {
    let Some(mut h) = Harness::new(broker, LONG).await else { return };
    let id = h.faculty("Edsger", "d7").await;
    let mut desk = h.desk("d7", 5, 0).await;
    desk.state(true, false).await;
    h.wait_status(id, Status::Available).await;
    desk.kill();
    h.wait_status(id, Status::Offline).await;
    h.stop().await;
    h.client_id = format!("consultease-test-{}", unique()); // a fresh session gets the retained messages
    h.start().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.view(id).await.status, Status::Offline);
}

/// Original defect 2: after a reconnect, the unit flushed old queued statuses after the fresh one.
/// With (boot, seq) clocks the fresh status stands, within a boot and across a reboot.
async fn defect2_old_queued_statuses_after_a_reconnect_do_not_win(broker: Broker) {
    let Some(h) = Harness::new(broker, LONG).await else { return };
    let id = h.faculty("Frances", "d8").await;
    let mut desk = h.desk("d8", 1, 0).await;
    let fresh = desk.state(true, true).await + 5;
    desk.raw("state", desk.state_payload(fresh, false, false), true).await; // fresh: away
    for seq in (fresh - 4)..fresh {
        desk.raw("state", desk.state_payload(seq, true, seq % 2 == 0), false).await; // the old queue
    }
    h.wait_handled(7).await;
    assert_eq!(h.view(id).await.status, Status::Away);
    // A reboot: seq restarts, boot counts up; the previous boot's queue cannot win either.
    let mut rebooted = h.desk("d8", 2, 0).await;
    rebooted.state(true, false).await;
    desk.raw("state", desk.state_payload(fresh + 100, false, true), false).await;
    h.wait_handled(10).await;
    assert_eq!(h.view(id).await.status, Status::Available);
}

/// Original defect 3: status messages for one faculty member were handled in parallel, out of
/// order. A burst ends in the state of its newest message, every change committed once, in order.
async fn defect3_a_burst_for_one_faculty_member_ends_in_order(broker: Broker) {
    let Some(h) = Harness::new(broker, LONG).await else { return };
    let id = h.faculty("Barbara", "d9").await;
    let mut desk = h.desk("d9", 1, 0).await;
    h.wait_status(id, Status::Away).await;
    let start = h.store.newest_event_id().await.unwrap();
    for i in 0..200 {
        desk.state(i % 2 == 0, false).await;
    }
    desk.state(true, true).await;
    h.wait_status(id, Status::Busy).await;
    let events = h.store.events_after(start, 1000).await.unwrap();
    assert_eq!(events.len(), 201);
    let versions: Vec<i64> = events.iter().map(|e| e.faculty.version).collect();
    assert!(versions.windows(2).all(|w| w[1] == w[0] + 1), "consecutive versions");
    assert_eq!(h.view(id).await.version, 203);
}

/// Regression (outside test run): one 70,000-byte QoS 1 message on a desk topic stopped the ingest
/// for good on Mosquitto — the client dropped the connection on the oversized packet, the broker
/// redelivered it at every reconnection, `/readyz` stayed 503, and a restart did not help. Now it
/// is rejected as `too_large`, acknowledged, and the next message applies. (The embedded broker
/// refuses such a packet from its publisher itself: the sender is disconnected, the server never
/// sees it, and the next message applies all the same.)
async fn an_oversized_message_is_rejected_acknowledged_and_the_next_one_applies(broker: Broker) {
    let Some(mut h) = Harness::new(broker, LONG).await else { return };
    let id = h.faculty("Lise", "big1").await;
    let desk = h.desk("big1", 1, 0).await;
    h.wait_status(id, Status::Away).await;
    let big = vec![b'x'; 70_000];
    desk.raw("state", big.clone(), false).await;
    // The next message comes from a fresh connection (the embedded broker drops the sender).
    let mut desk = h.desk("big1", 2, 0).await;
    desk.state(true, false).await;
    h.wait_status(id, Status::Available).await;
    if broker == Broker::Mosquitto {
        assert_eq!(h.metrics().rejected("too_large"), 1, "counted once: acknowledged, not redelivered");
    }
    // A restart does not bring it back.
    h.stop().await;
    h.start().await;
    desk.state(true, true).await;
    h.wait_status(id, Status::Busy).await;
    assert!(h.metrics().rejected("too_large") <= 1);
}

/// Regression (outside test run): a retained oversized message on a subscribed topic held the
/// subscription (and `/readyz`) down for ever, redelivered at every subscription.
async fn an_oversized_retained_message_does_not_stop_the_subscription(broker: Broker) {
    if broker == Broker::Embedded {
        return; // the embedded broker never takes such a message in (see the test above)
    }
    let Some(mut h) = Harness::new(broker, LONG).await else { return };
    let id = h.faculty("Chien-Shiung", "big2").await;
    let desk = h.desk("big2", 1, 0).await;
    h.wait_status(id, Status::Away).await;
    h.stop().await;
    let topic = format!("{}/desk/big2/heartbeat", h.prefix);
    desk.client.publish(&topic, rumqttc::QoS::AtMostOnce, true, vec![b'y'; 70_000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A fresh session subscribes and gets the retained message at once.
    h.client_id = format!("consultease-test-{}", unique());
    h.start().await; // waits for the subscription to be accepted
    eventually("the retained message is rejected", || async { h.metrics().rejected("too_large") >= 1 }).await;
    let mut desk = h.desk("big2", 2, 0).await;
    desk.state(true, false).await;
    h.wait_status(id, Status::Available).await;
    assert!(h.ingest.as_ref().unwrap().0.status.subscribed.load(Relaxed));
    // Leave the shared broker clean.
    desk.client.publish(&topic, rumqttc::QoS::AtLeastOnce, true, Vec::<u8>::new()).await.unwrap();
}

/// Regression (outside test run): the ingest retried a failing batch for ever, so one message that
/// could never apply (here: its desk's stored clock is corrupt) blocked every message behind it.
/// Now it goes to the dead-letter table with its reason, is acknowledged, and the rest apply.
async fn a_message_that_fails_permanently_is_set_aside_and_the_rest_apply(broker: Broker) {
    let Some(h) = Harness::new(broker, LONG).await else { return };
    let bad = h.faculty("Rosalind", "rot1").await;
    let good = h.faculty("Dorothy", "ok1").await;
    let mut d_bad = h.desk("rot1", 1, 0).await;
    let mut d_good = h.desk("ok1", 1, 0).await;
    h.wait_status(bad, Status::Away).await;
    h.wait_status(good, Status::Away).await;
    // Corrupt the stored clock of one desk, behind the store's back.
    let url = format!("sqlite://{}", h._dir.path().join("db.sqlite").display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.unwrap();
    sqlx::query("UPDATE desks SET last_boot = -5 WHERE id = 'rot1'").execute(&mut conn).await.unwrap();
    d_bad.state(true, false).await;
    d_good.state(true, false).await;
    h.wait_status(good, Status::Available).await;
    eventually("the bad message is set aside", || async { h.metrics().mqtt_dead_lettered.get() == 1 }).await;
    let letters = h.store.dead_letters(10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].topic, format!("{}/desk/rot1/state", h.prefix));
    assert!(letters[0].reason.contains("boot -5"), "{}", letters[0].reason);
    assert_eq!(h.view(bad).await.status, Status::Away, "nothing of it was applied");
    // The good desk keeps going.
    d_good.state(true, true).await;
    h.wait_status(good, Status::Busy).await;
}
