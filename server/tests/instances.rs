//! Several instances on one PostgreSQL database and one broker (issue 10): one ingest leader,
//! every instance's streams carry every instance's events, a lost leader's lock hands the ingest
//! over with nothing lost, a lost notification connection is read again from the cursor.
//! Over both brokers; PostgreSQL only (one SQLite file serves one process).

use std::time::Duration;
use testkit::sse::SseConn;
use testkit::{Broker, Database, TestServer, TestServerBuilder};

/// A builder for instances sharing one fresh PostgreSQL database, broker, prefix and MQTT client id.
async fn cluster(broker: Broker) -> Option<TestServerBuilder> {
    let db = Database::Postgres.fresh().await?;
    Some(TestServer::builder().database(db).broker(broker.addr().await?))
}

async fn role(s: &TestServer) -> String {
    let body: serde_json::Value = reqwest::get(format!("{}/readyz", s.url)).await.unwrap().json().await.unwrap();
    body["role"].as_str().unwrap_or_default().to_owned()
}

/// The board's cursor now (from any instance: one database).
async fn cursor(s: &TestServer) -> i64 {
    let body: serde_json::Value = reqwest::get(format!("{}/api/faculty", s.url)).await.unwrap().json().await.unwrap();
    body["cursor"].as_i64().unwrap()
}

/// A live stream of `s` resuming after `cursor`.
async fn stream_from(s: &TestServer, cursor: i64) -> SseConn {
    let cursor = cursor.to_string();
    SseConn::open(&format!("{}/api/events", s.url), &[("last-event-id", cursor.as_str())]).await.unwrap()
}

async fn stream(s: &TestServer) -> SseConn {
    stream_from(s, cursor(s).await).await
}

/// The board events after `cursor` in the database, by id.
async fn logged_after(db: &str, cursor: i64) -> Vec<i64> {
    let pool = sqlx::PgPool::connect(db).await.unwrap();
    let ids = sqlx::query_scalar("SELECT id FROM status_events WHERE id > $1 ORDER BY id")
        .bind(cursor)
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    ids
}

/// Waits until the desk's message `seq` is applied.
async fn applied(s: &TestServer, desk: &str, seq: u64) {
    testkit::eventually("the desk's newest message is applied", || async {
        let desks = s.store.list_desks().await.unwrap();
        desks.iter().any(|d| d.id == desk && d.seq == Some(seq as i64))
    })
    .await;
}

/// The next board event's (id, faculty id, status).
async fn next_faculty(sse: &mut SseConn) -> (i64, i64, String) {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), sse.next_event())
            .await
            .expect("an event within 10 s")
            .expect("the stream is open");
        if ev.event == "faculty" {
            let v: serde_json::Value = serde_json::from_str(&ev.data).unwrap();
            let id = ev.id.as_deref().and_then(|i| i.parse().ok()).expect("an event id");
            return (id, v["id"].as_i64().unwrap(), v["status"].as_str().unwrap().to_owned());
        }
    }
}

/// Holders of the leader's lock, by backend pid (the lock key is `store::shared::LEADER_KEY`).
async fn leader_backends(db: &str) -> Vec<i32> {
    let pool = sqlx::PgPool::connect(db).await.unwrap();
    let pids = sqlx::query_scalar(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = 7290002 AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    pids
}

async fn terminate(db: &str, pids: &[i32]) {
    let pool = sqlx::PgPool::connect(db).await.unwrap();
    for pid in pids {
        sqlx::query("SELECT pg_terminate_backend($1)").bind(pid).execute(&pool).await.unwrap();
    }
    pool.close().await;
}

async fn one_leader(a: &TestServer, b: &TestServer) {
    testkit::eventually("exactly one leader", || async {
        let roles = [role(a).await, role(b).await];
        roles.iter().filter(|r| *r == "leader").count() == 1 && roles.iter().filter(|r| *r == "follower").count() == 1
    })
    .await;
}

async fn two_instances_share_events_and_queues(broker: Broker) {
    let Some(builder) = cluster(broker).await else { return };
    let a = builder.clone().start().await;
    let b = builder.another_instance().start().await;
    assert_eq!((role(&a).await, role(&b).await), ("leader".to_owned(), "follower".to_owned()));
    let ready = reqwest::get(format!("{}/readyz", b.url)).await.unwrap();
    assert_eq!(ready.status(), 200, "a follower is ready without an MQTT connection");

    let fid = a.faculty("Dr. Shared", "desk-s").await;
    let from = cursor(&a).await;
    let (mut on_a, mut on_b) = (stream_from(&a, from).await, stream_from(&b, from).await);
    let mut desk = a.desk("desk-s", 1, 0).await;
    desk.state(true, false).await;
    // Both instances' streams carry the leader's ingest, the same ids in the same order.
    let mut seen = Vec::new();
    for sse in [&mut on_a, &mut on_b] {
        let mut evs = Vec::new();
        loop {
            let ev = next_faculty(sse).await;
            evs.push(ev.clone());
            if ev.2 == "available" {
                break;
            }
        }
        assert!(evs.windows(2).all(|w| w[0].0 < w[1].0), "ids increase: {evs:?}");
        seen.push(evs);
    }
    assert_eq!(seen[0], seen[1]);

    // A request placed on the follower reaches the desk through the leader's queue publisher.
    desk.subscribe_queue().await;
    let student = b.student("S-1", "Ada", "123456", None).await;
    let placed = b
        .store
        .place_request(&store::NewRequest {
            student_id: student,
            faculty_id: fid,
            course: None,
            message: "Question about the project".into(),
            hold: false,
        })
        .await
        .unwrap();
    let snapshot = desk.snapshot_above(0).await;
    assert!(snapshot.items.iter().any(|i| i.id == placed.id), "{snapshot:?}");
    // The board event of the new count reaches the leader's stream too.
    let (_, f, _) = next_faculty(&mut on_a).await;
    assert_eq!(f, fid);
}

/// The leader's lock connection is killed (as when its process dies or the database drops it):
/// one instance leads again within seconds, and the desk messages sent meanwhile — kept in the
/// broker's persistent session — are all applied, the newest last.
async fn a_lost_leader_lock_hands_the_ingest_over_with_nothing_lost(broker: Broker) {
    let Some(builder) = cluster(broker).await else { return };
    let a = builder.clone().start().await;
    let b = builder.another_instance().start().await;
    let fid = a.faculty("Dr. Failover", "desk-f").await;
    let mut desk = a.desk("desk-f", 1, 0).await;
    let mut on_b = stream(&b).await;
    let holders = leader_backends(&a.db).await;
    assert_eq!(holders.len(), 1, "one instance holds the lock");
    terminate(&a.db, &holders).await;
    testkit::eventually("the leader notices", || async {
        a.metrics().leader_lost.get() + b.metrics().leader_lost.get() == 1
    })
    .await;
    // Messages during the handover: 40 changes, the last one `available`.
    for i in 0..40 {
        desk.state(i % 2 == 1, false).await;
    }
    one_leader(&a, &b).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, f, status) =
            tokio::time::timeout_at(deadline, next_faculty(&mut on_b)).await.expect("the newest state arrives");
        if f == fid && status == "available" {
            let view = b.store.faculty(fid).await.unwrap().unwrap();
            if view.status == domain::Status::Available {
                break;
            }
        }
    }
    assert!(a.metrics().leader_terms.get() + b.metrics().leader_terms.get() >= 2);
}

/// Regression guard for the notification seam: a follower's listening connection is killed while
/// the leader commits; nothing is missed — the follower reads the log again from its cursor — and
/// the gap is counted.
async fn a_lost_notification_connection_is_read_again_from_the_cursor(broker: Broker) {
    let Some(builder) = cluster(broker).await else { return };
    let a = builder.clone().start().await;
    let b = builder.another_instance().start().await;
    a.faculty("Dr. Gap", "desk-g").await;
    let from = cursor(&a).await;
    let mut on_b = stream_from(&b, from).await;
    let mut desk = a.desk("desk-g", 1, 0).await;
    let pool = sqlx::PgPool::connect(&a.db).await.unwrap();
    let listeners: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(listeners.len(), 2, "each instance listens once");
    terminate(&a.db, &listeners).await;
    let mut seq = 0;
    for i in 0..30 {
        seq = desk.state(i % 2 == 0, false).await;
    }
    applied(&a, "desk-g", seq).await;
    let logged = logged_after(&a.db, from).await;
    let newest = *logged.last().expect("events were logged");
    let mut got = Vec::new();
    while got.last() != Some(&newest) {
        got.push(next_faculty(&mut on_b).await.0);
    }
    assert_eq!(got, logged, "the follower's stream carries exactly the log, in order");
    testkit::eventually("the gap is counted", || async {
        let body = reqwest::get(format!("{}/metrics", b.url)).await.unwrap().text().await.unwrap();
        body.lines().any(|l| l.starts_with("consultease_notify_gaps_total") && !l.ends_with(" 0"))
    })
    .await;
    pool.close().await;
}

testkit::over_brokers!(
    two_instances_share_events_and_queues,
    a_lost_leader_lock_hands_the_ingest_over_with_nothing_lost,
    a_lost_notification_connection_is_read_again_from_the_cursor,
);
