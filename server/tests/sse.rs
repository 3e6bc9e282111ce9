//! The live stream over real HTTP: snapshot + cursor, replay then live with no gap or duplicate,
//! snapshots for lagging or far-behind clients, and shutdown.

use domain::{DeskClock, DeskMessage};
use futures::StreamExt;
use server::http::app;
use std::time::Duration;
use store::{Change, NewFaculty, Store};
use testkit::TestServer;
use testkit::sse::SseConn;

async fn server(bus_capacity: usize, max_replay: i64) -> TestServer {
    TestServer::builder().bus_capacity(bus_capacity).max_replay(max_replay).start().await
}

async fn sse(url: &str, last_event_id: Option<&str>) -> SseConn {
    let headers: Vec<(&str, &str)> = last_event_id.map(|id| ("last-event-id", id)).into_iter().collect();
    SseConn::open(url, &headers).await.unwrap()
}

async fn desks(store: &Store, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = store
            .add_faculty(&NewFaculty { name: format!("Faculty {i}"), department: "Dept".into(), email: None })
            .await
            .unwrap();
        let desk = format!("desk-{i}");
        store.add_desk(&desk, id).await.unwrap();
        store
            .apply(&[Change::Message {
                desk: desk.clone(),
                message: DeskMessage::Online { clock: DeskClock::new(1, 1), online: true },
            }])
            .await
            .unwrap();
        ids.push(desk);
    }
    ids
}

fn state_change(desk: &str, seq: u64) -> Change {
    Change::Message {
        desk: desk.into(),
        message: DeskMessage::State {
            clock: DeskClock::new(1, seq),
            present: seq.is_multiple_of(2),
            busy: seq.is_multiple_of(3),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faculty_endpoint_is_a_snapshot_with_a_cursor() {
    let s = server(4096, 1000).await;
    desks(&s.store, 2).await;
    let body: serde_json::Value = reqwest::get(format!("{}/api/faculty", s.url)).await.unwrap().json().await.unwrap();
    assert_eq!(body["cursor"], 2);
    let f = &body["faculty"][0];
    for key in
        ["id", "name", "department", "status", "present", "busy", "desk_online", "last_seen", "changed_at", "version"]
    {
        assert!(f.get(key).is_some(), "missing {key} in {f}");
    }
    assert_eq!((f["status"].as_str(), f["version"].as_i64()), (Some("away"), Some(2)));
}

/// Subscribe with a cursor in the middle of a burst of concurrent changes: replay plus live events
/// are exactly the committed events after the cursor, in order, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_opened_mid_burst_gets_every_later_event_once_in_order() {
    let s = server(4096, 100_000).await;
    let store = s.store.clone();
    let ids = desks(&store, 4).await;
    let mut writers = Vec::new();
    for desk in ids.clone() {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for seq in 2..152u64 {
                store.apply(&[state_change(&desk, seq)]).await.unwrap();
            }
        }));
    }
    // Wait until the burst is well under way, then join it at its current cursor.
    while store.newest_event_id().await.unwrap() < 100 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let cursor = store.newest_event_id().await.unwrap();
    let mut client = sse(&format!("{}/api/events?after={cursor}", s.url), None).await;
    for w in writers {
        w.await.unwrap();
    }
    let newest = store.newest_event_id().await.unwrap();
    let expected = store.events_after(cursor, 100_000).await.unwrap();
    assert!(expected.len() > 100, "the stream must straddle replay and live ({} events)", expected.len());
    let mut got = Vec::new();
    while got.last().is_none_or(|(id, _): &(i64, serde_json::Value)| *id < newest) {
        let ev = client.next_event().await.expect("stream ended early");
        assert_eq!(ev.event, "faculty");
        got.push((ev.id.unwrap().parse().unwrap(), serde_json::from_str(&ev.data).unwrap()));
    }
    let want: Vec<(i64, serde_json::Value)> =
        expected.iter().map(|e| (e.id, serde_json::to_value(&e.faculty).unwrap())).collect();
    assert_eq!(got, want);
}

/// A client whose receiver lags behind the bus gets a snapshot, then live events — never silence.
#[tokio::test]
async fn a_lagging_client_gets_a_snapshot() {
    let s = server(8, 1000).await;
    let store = s.store.clone();
    let ids = desks(&store, 1).await;
    let cursor = store.newest_event_id().await.unwrap();
    let mut client = sse(&format!("{}/api/events?after={cursor}", s.url), None).await;
    // First one event seen live: the stream has replayed and is following the bus. (Without it,
    // the burst could commit before the stream's replay read, which then replays all 50 within
    // --max-replay: seen once in a full parallel run.)
    store.apply(&[state_change(&ids[0], 2)]).await.unwrap();
    assert_eq!(client.next_event().await.unwrap().event, "faculty");
    // One transaction publishing 50 events: on this single-threaded runtime the stream cannot run
    // while they are published, so its receiver (capacity 8) lags.
    let burst: Vec<Change> = (3..53).map(|seq| state_change(&ids[0], seq)).collect();
    store.apply(&burst).await.unwrap();
    let ev = client.next_event().await.unwrap();
    assert_eq!(ev.event, "snapshot", "{ev:?}");
    let snap: domain::Snapshot = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(snap.cursor, store.newest_event_id().await.unwrap());
    assert_eq!(ev.id.as_deref(), Some(snap.cursor.to_string().as_str()));
    assert_eq!(snap.faculty[0].version, 53);
    // Then live events continue after the snapshot's cursor.
    store.apply(&[state_change(&ids[0], 60)]).await.unwrap();
    let ev = client.next_event().await.unwrap();
    assert_eq!((ev.event.as_str(), ev.id), ("faculty", Some((snap.cursor + 1).to_string())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn far_behind_or_no_cursor_gets_a_snapshot_and_last_event_id_wins() {
    let s = server(4096, 5).await;
    let store = s.store.clone();
    let ids = desks(&store, 1).await;
    let batch: Vec<Change> = (2..12).map(|seq| state_change(&ids[0], seq)).collect();
    store.apply(&batch).await.unwrap();
    let newest = store.newest_event_id().await.unwrap();
    for url in [format!("{}/api/events?after=0", s.url), format!("{}/api/events", s.url)] {
        let ev = sse(&url, None).await.next_event().await.unwrap();
        assert_eq!((ev.event.as_str(), ev.id), ("snapshot", Some(newest.to_string())), "{url}");
    }
    // A reconnecting browser's Last-Event-ID is newer than the page's ?after: it wins.
    let mut client = sse(&format!("{}/api/events?after=0", s.url), Some(&(newest - 2).to_string())).await;
    let ids: Vec<String> =
        vec![client.next_event().await.unwrap().id.unwrap(), client.next_event().await.unwrap().id.unwrap()];
    assert_eq!(ids, [(newest - 1).to_string(), newest.to_string()]);
    // A cursor from the future (another database) gets a snapshot.
    let ev = sse(&format!("{}/api/events?after=999999", s.url), None).await.next_event().await.unwrap();
    assert_eq!(ev.event, "snapshot");
    // Bad input is a 400 with a reason.
    let res = reqwest::get(format!("{}/api/events?after=-3", s.url)).await.unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("non-negative integer"));
}

/// The event log's retention: a stream resuming from a cursor whose next events were deleted gets a
/// snapshot, never a replay with a hole; one resuming from at or after what was kept replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_older_than_the_kept_log_gets_a_snapshot_not_a_hole() {
    let s = server(4096, 1000).await;
    let store = s.store.clone();
    let ids = desks(&store, 1).await;
    let old_cursor = store.newest_event_id().await.unwrap();
    store.apply(&(2..8).map(|seq| state_change(&ids[0], seq)).collect::<Vec<_>>()).await.unwrap();
    let kept_from = store.newest_event_id().await.unwrap();
    // Everything so far is "old" (before now + 1); the newest event is always kept.
    let deleted = store.prune_events(store::now_ms() + 1).await.unwrap();
    assert!(deleted >= 6, "{deleted}");
    let watermark = store.events_pruned_through().await.unwrap();
    assert_eq!(watermark, kept_from - 1);
    store.apply(&[state_change(&ids[0], 8)]).await.unwrap();
    let newest = store.newest_event_id().await.unwrap();

    let ev = sse(&format!("{}/api/events?after={old_cursor}", s.url), None).await.next_event().await.unwrap();
    assert_eq!((ev.event.as_str(), ev.id), ("snapshot", Some(newest.to_string())), "a snapshot, not a partial replay");
    let mut replay = sse(&format!("{}/api/events?after={watermark}", s.url), None).await;
    let got: Vec<Option<String>> = vec![replay.next_event().await.unwrap().id, replay.next_event().await.unwrap().id];
    assert_eq!(got, [Some(kept_from.to_string()), Some(newest.to_string())], "what was kept replays");
}

/// `--event-retention` runs at start (and hourly): a server restarted with a short retention deletes
/// what is older, keeps the newest event, counts what it deleted, and its board is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_timer_prunes_at_start_and_counts_it() {
    let s = server(4096, 1000).await;
    let ids = desks(&s.store, 2).await;
    s.store.apply(&(2..6).map(|seq| state_change(&ids[0], seq)).collect::<Vec<_>>()).await.unwrap();
    let newest = s.store.newest_event_id().await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let s = s.stop_for_restart().await.event_retention(Duration::from_millis(10)).start().await;
    testkit::eventually("old events are deleted at start", || async {
        s.store.events_pruned_through().await.unwrap() == newest - 1
    })
    .await;
    assert!(s.metrics().events_pruned.get() >= 5, "{}", s.metrics().events_pruned.get());
    assert_eq!(s.store.snapshot().await.unwrap().faculty.len(), 2);
    assert_eq!(s.store.newest_event_id().await.unwrap(), newest);
}

/// Original defect 4: an event was published before the cache was cleared, and a cached list served
/// stale data. Here an event is published only after its commit and there is no cache: whoever
/// reacts to an event by reading the board sees that change at least.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defect4_a_reader_reacting_to_an_event_never_reads_older_data() {
    let s = server(4096, 1000).await;
    let store = s.store.clone();
    let ids = desks(&store, 2).await;
    let mut rx = store.bus().subscribe();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for seq in 2..42u64 {
                for desk in &ids {
                    store.apply(&[state_change(desk, seq)]).await.unwrap();
                }
            }
        })
    };
    let http = reqwest::Client::new();
    for _ in 0..80 {
        let ev = rx.recv().await.unwrap();
        let snap: domain::Snapshot =
            http.get(format!("{}/api/faculty", s.url)).send().await.unwrap().json().await.unwrap();
        let row = snap.faculty.iter().find(|f| f.id == ev.faculty.id).unwrap();
        assert!(row.version >= ev.faculty.version, "read v{} after event v{}", row.version, ev.faculty.version);
        assert!(snap.cursor >= ev.id);
    }
    writer.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_end_when_the_server_shuts_down() {
    let s = server(4096, 1000).await;
    let mut client = sse(&format!("{}/api/events", s.url), None).await;
    assert_eq!(client.next_event().await.unwrap().event, "snapshot");
    s.state().shutdown.cancel();
    let end = tokio::time::timeout(Duration::from_secs(5), client.next()).await.expect("the stream must end").unwrap();
    assert_eq!(end, None);
}

/// Browsers accept gzip and brotli, but a compressed event stream would sit in the encoder's
/// buffer: streams go out uncompressed, uncached, and start with the reconnection delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_not_compressed_nor_cached_and_set_the_retry_delay() {
    let s = server(4096, 1000).await;
    let ids = desks(&s.store, 1).await;
    let res = reqwest::Client::new()
        .get(format!("{}/api/events?after=1", s.url))
        .header("accept-encoding", "br, gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers().get("content-encoding"), None);
    assert_eq!(res.headers()["cache-control"], "no-cache");
    let mut body = res.bytes_stream();
    let mut text = String::new();
    s.store.apply(&[state_change(&ids[0], 2)]).await.unwrap();
    while !text.contains("event: faculty") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), body.next()).await.unwrap().unwrap().unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(text.starts_with("retry: 1000\n"), "{text:?}");
    assert!(text.contains("id: 2\nevent: faculty\ndata: {"), "{text:?}");
}

/// A quiet stream still carries a comment now and then, so that proxies and browsers keep it open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_stream_gets_keep_alive_comments() {
    let s = server(4096, 1000).await;
    let mut state = s.state().clone();
    state.keep_alive = Duration::from_millis(100);
    // Serve the changed state on a new listener.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = app(state);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    desks(&s.store, 1).await;
    let res = reqwest::get(format!("{url}/api/events?after=1")).await.unwrap();
    let mut body = res.bytes_stream();
    let mut text = String::new();
    let started = std::time::Instant::now();
    while text.matches(": keep-alive\n\n").count() < 2 {
        let chunk = tokio::time::timeout(Duration::from_secs(5), body.next()).await.unwrap().unwrap().unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(started.elapsed() >= Duration::from_millis(200), "comments come only after quiet spells");
    assert!(!text.contains("event:"), "{text:?}");
}

/// Regression (outside test run): no header-read timeout, so 1,000 idle or half-sent connections
/// were held for ever. Now a connection that sends no complete request head in time is closed —
/// and an event stream, once answered, is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_connections_are_closed_but_streams_stay_open() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::builder().header_timeout(Duration::from_millis(300)).start().await;
    let addr = s.running.http;
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut half = tokio::net::TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut stream = sse(&format!("{}/api/events", s.url), None).await;
    assert_eq!(stream.next_event().await.unwrap().event, "snapshot");
    for conn in [&mut idle, &mut half] {
        let mut buf = [0u8; 512];
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {} // a 408 may come first
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the connection was not closed");
    }
    // The stream outlives the timeout many times over.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ids = desks(&s.store, 1).await;
    s.store.apply(&[state_change(&ids[0], 2)]).await.unwrap();
    let ev = stream.next_event().await.unwrap();
    assert_eq!(ev.event, "faculty");
}
