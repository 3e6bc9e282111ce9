//! The fuzz target's end-to-end half (the generative half is `domain/tests/fuzz_desk_input.rs`):
//! generated hostile messages on desk topics, published over a real broker (embedded and
//! Mosquitto) to a running server. Each on a topic the server subscribes to is refused for the
//! reason `protocol::classify` gives (or `unknown_desk`) and counted by that reason; those on other
//! topics (`queue`, `State`, `x`) never reach it; none writes anything: the board's log and the
//! registered desk's row are as they were.

use domain::protocol::{self, Kind, MAX_PAYLOAD, Reject};
use std::collections::BTreeMap;
use testkit::{Broker, TestServer};

/// xorshift64*: reproducible inputs without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// A desk id (never the registered one), a kind (or not), and a payload from valid to garbage.
fn message(rng: &mut Rng, prefix: &str) -> (String, Vec<u8>) {
    let desk = match rng.below(4) {
        0 => format!("ghost-{}", rng.below(1000)),
        1 => "x".repeat(65 + rng.below(10)),
        2 => rng.pick(&["a b", "ü", "..", "-", "_"]).to_owned(),
        _ => format!("d{}", rng.next()),
    };
    let mut kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    kinds.extend(["queue", "State", "x"]);
    let kind = rng.pick(&kinds);
    let fields = ["boot", "seq", "present", "busy", "online", "version", "request", "action", "note"];
    let values = ["1", "-1", "0", "4294967296", "true", "null", "\"done\"", "1.5", "[]", "{}", "\"\""];
    let payload = match rng.below(5) {
        0 => (0..rng.below(40)).map(|_| (rng.next() & 0xff) as u8).collect(),
        1 => vec![b'x'; MAX_PAYLOAD + 1 + rng.below(100)],
        2 => br#"{"boot":1,"seq":2,"present":true}"#.to_vec(),
        _ => {
            let n = rng.below(6);
            let body: Vec<String> =
                (0..n).map(|_| format!("\"{}\":{}", rng.pick(&fields), rng.pick(&values))).collect();
            format!("{{{}}}", body.join(",")).into_bytes()
        }
    };
    (format!("{prefix}/desk/{desk}/{kind}"), payload)
}

fn rejected(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("consultease_mqtt_rejected_total{")) {
        let reason = line.split("reason=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_default();
        let n = line.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
        out.insert(reason.to_owned(), n);
    }
    out
}

async fn hostile_messages_are_refused_counted_and_write_nothing(broker: Broker) {
    let Some(addr) = broker.addr().await else { return };
    let s = match broker {
        Broker::Embedded => TestServer::start().await,
        Broker::Mosquitto => TestServer::builder().broker(addr).start().await,
    };
    let fid = s.faculty("Dr. Registered", "reg-1").await;
    let mut desk = s.desk("reg-1", 1, 0).await;
    desk.state(true, false).await;
    testkit::eventually("the registered desk is applied", || async {
        s.store.faculty(fid).await.unwrap().is_some_and(|f| f.present)
    })
    .await;
    let before_view = s.store.faculty(fid).await.unwrap().unwrap();
    let before_log = s.store.newest_event_id().await.unwrap();
    let metrics_url = format!("{}/metrics", s.url);
    let before = rejected(&reqwest::get(&metrics_url).await.unwrap().text().await.unwrap());

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let subscribed: Vec<String> = Kind::ALL.iter().map(|k| format!("/{}", k.as_str())).collect();
    for _ in 0..600 {
        let (topic, payload) = message(&mut rng, &s.prefix);
        let reason = match protocol::classify(&s.prefix, &topic, &payload) {
            Err(r) => r.label(),
            Ok(_) => Reject::UnknownDesk.label(),
        };
        if subscribed.iter().any(|k| topic.ends_with(k.as_str())) {
            *expected.entry(reason.to_owned()).or_default() += 1;
        }
        // Published with the desk's own connection: what a broken or hostile client would send.
        desk.publish_raw(&topic, payload).await;
    }
    let delta = || async {
        let after = rejected(&reqwest::get(&metrics_url).await.unwrap().text().await.unwrap());
        after
            .iter()
            .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
            .filter(|(_, v)| *v > 0)
            .collect::<BTreeMap<String, u64>>()
    };
    let n: u64 = expected.values().sum();
    assert!(n > 300, "most messages are on subscribed topics ({n})");
    testkit::eventually("every message is counted", || async { delta().await.values().sum::<u64>() >= n }).await;
    // Those on other topics would have arrived among them (one publisher, one connection).
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let got = delta().await;
    assert_eq!(got, expected, "each refused for the reason classify gives");
    assert_eq!(s.store.newest_event_id().await.unwrap(), before_log, "nothing reached the board's log");
    assert_eq!(
        s.store.faculty(fid).await.unwrap().unwrap(),
        before_view,
        "the registered desk's faculty row is unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_embedded() {
    hostile_messages_are_refused_counted_and_write_nothing(Broker::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_mosquitto() {
    hostile_messages_are_refused_counted_and_write_nothing(Broker::Mosquitto).await;
}
