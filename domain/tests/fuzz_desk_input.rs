//! The fuzz target over everything a desk (or anyone on the broker) can send: every topic shape and
//! payload the ingest reads goes through `protocol::classify`, the ingest's whole reading of the
//! wire. Generative (proptest, stable Rust), structure-aware so that inputs reach deep: valid
//! messages mutated byte by byte, JSON objects of the protocol's own field names with values of
//! every type, raw bytes, oversized payloads, and topics from valid to hostile.
//!
//! Properties: it never panics; what it accepts is a well-formed message (it re-encodes to
//! something read back identically); what it refuses carries one of the reasons the metrics count.
//! (That a refused message writes nothing and is counted is checked end to end, over a broker, in
//! `server/tests/fuzz_ingest.rs`.)
//!
//! Cases: `CONSULTEASE_FUZZ_CASES` (default 20,000 in `cargo test`); the long run is
//! `CONSULTEASE_FUZZ_CASES=1000000 cargo test --release -p domain --test fuzz_desk_input`.

use domain::protocol::{self, Kind, MAX_PAYLOAD, Payload, Reject};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value};

const PREFIX: &str = "consultease";

/// The protocol's own field names, and some near misses.
const FIELDS: [&str; 20] = [
    "boot",
    "seq",
    "present",
    "busy",
    "online",
    "version",
    "request",
    "action",
    "note",
    "uptime_s",
    "rssi",
    "free_heap",
    "firmware",
    "Boot",
    "seq ",
    "",
    "présent",
    "__proto__",
    "version\u{0}",
    "items",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            Just(0i64),
            Just(-1),
            Just(1),
            Just(i64::from(u32::MAX)),
            Just(i64::from(u32::MAX) + 1),
            Just(i64::MAX)
        ]
        .prop_map(Value::from),
        "[ -~]{0,20}".prop_map(Value::String),
        prop::sample::select(vec!["accept", "busy", "decline", "done", "no_show", "ACCEPT", ""])
            .prop_map(|s| Value::String(s.into())),
        "\\PC{0,200}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS.to_vec()), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

/// An object of protocol fields with values of any type, sometimes with a key written twice.
fn protocol_object() -> impl Strategy<Value = Vec<u8>> {
    (prop::collection::vec((prop::sample::select(FIELDS.to_vec()), json_value()), 0..8), any::<bool>()).prop_map(
        |(kv, duplicate)| {
            let mut m = Map::new();
            for (k, v) in &kv {
                m.insert((*k).to_owned(), v.clone());
            }
            let mut bytes = serde_json::to_vec(&Value::Object(m)).unwrap_or_default();
            if duplicate && let Some((k, v)) = kv.first() {
                // `{"boot":1, … ,"boot":2}`: a key twice.
                let extra = format!(",{}:{}", Value::String((*k).to_owned()), v);
                if bytes.len() > 2 {
                    bytes.splice(bytes.len() - 1..bytes.len() - 1, extra.into_bytes());
                }
            }
            bytes
        },
    )
}

/// A valid message of some kind, then mutated: bytes flipped, cut, inserted.
fn mutated_valid() -> impl Strategy<Value = Vec<u8>> {
    let valid = prop_oneof![
        (any::<u32>(), 0..=i64::MAX as u64, any::<bool>(), any::<bool>()).prop_map(|(b, s, p, busy)| {
            Payload::State { clock: domain::DeskClock::new(b, s), present: p, busy }.encode()
        }),
        (any::<u32>(), 0..=i64::MAX as u64, any::<bool>()).prop_map(|(b, s, o)| Payload::Online {
            clock: domain::DeskClock::new(b, s),
            online: o
        }
        .encode()),
        (any::<u32>(), 0..=i64::MAX as u64, 0..=i64::MAX).prop_map(|(b, s, v)| Payload::QueueAck {
            clock: domain::DeskClock::new(b, s),
            version: v
        }
        .encode()),
    ];
    let edits =
        prop_oneof![Just(Vec::new()), prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6)];
    (valid, edits).prop_map(|(mut bytes, edits)| {
        for (at, byte, op) in edits {
            if bytes.is_empty() {
                break;
            }
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => bytes.truncate(i),
                _ => bytes.insert(i, byte),
            }
        }
        bytes
    })
}

fn payload_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => protocol_object(),
        3 => mutated_valid(),
        2 => prop::collection::vec(any::<u8>(), 0..64),
        1 => json_value().prop_map(|v| serde_json::to_vec(&v).unwrap_or_default()),
        1 => (MAX_PAYLOAD - 2..MAX_PAYLOAD + 64).prop_map(|n| {
            let mut b = br#"{"boot":1,"seq":1,"present":true,"pad":""#.to_vec();
            b.resize(n.saturating_sub(2).max(b.len()), b'x');
            b.extend_from_slice(br#""}"#);
            b
        }),
    ]
}

fn topic() -> impl Strategy<Value = String> {
    let kind = prop_oneof![
        6 => prop::sample::select(Kind::ALL.to_vec()).prop_map(|k| k.as_str().to_owned()),
        1 => prop::sample::select(vec!["queue", "State", "", "state/", "+", "#", "reply\u{0}"]).prop_map(str::to_owned),
    ];
    let desk = prop_oneof![
        8 => "[A-Za-z0-9_-]{1,64}",
        1 => "[A-Za-z0-9_-]{65,80}",
        1 => Just(String::new()),
        1 => "\\PC{1,10}",
        1 => prop::sample::select(vec!["+", "#", "a/b", "a\u{0}b", "..", " "]).prop_map(str::to_owned),
    ];
    let prefix = prop_oneof![
        4 => Just(PREFIX.to_owned()),
        1 => prop::sample::select(vec!["", "consultease/", "Consultease", "other", "consultease/desk"]).prop_map(str::to_owned),
    ];
    prop_oneof![
        12 => (prefix, desk, kind).prop_map(|(p, d, k)| format!("{p}/desk/{d}/{k}")),
        1 => "\\PC{0,80}",
        1 => prop::collection::vec("[a-z+#]{0,6}", 0..7).prop_map(|parts| parts.join("/")),
    ]
}

fn cases() -> u32 {
    std::env::var("CONSULTEASE_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(20_000)
}

#[test]
fn every_desk_input_is_read_or_refused_for_a_counted_reason() {
    let mut runner = TestRunner::new(Config { cases: cases(), failure_persistence: None, ..Config::default() });
    let accepted = std::cell::Cell::new(0u64);
    let refused = std::cell::RefCell::new(std::collections::BTreeMap::<&'static str, u64>::new());
    runner
        .run(&(topic(), payload_bytes()), |(topic, bytes)| {
            match protocol::classify(PREFIX, &topic, &bytes) {
                Ok((desk, payload)) => {
                    prop_assert!(protocol::valid_desk_id(desk), "accepted desk id {desk:?}");
                    let again = payload.encode();
                    prop_assert!(again.len() <= MAX_PAYLOAD);
                    prop_assert_eq!(Payload::parse(payload.kind(), &again), Ok(payload.clone()));
                    prop_assert_eq!(protocol::topic(PREFIX, desk, payload.kind()), topic.clone());
                    accepted.set(accepted.get() + 1);
                }
                Err(reject) => {
                    prop_assert!(Reject::LABELS.contains(&reject.label()), "{reject:?}");
                    // The reason shown in the log is one line, whatever the input was.
                    prop_assert!(!reject.to_string().contains('\n'));
                    *refused.borrow_mut().entry(reject.label()).or_default() += 1;
                }
            }
            Ok(())
        })
        .unwrap();
    let refused = refused.into_inner();
    eprintln!("fuzz: {} cases, {} accepted, refused by reason {refused:?}", cases(), accepted.get());
    // The generators reach both sides and the main reasons (not a test of luck: at the default
    // count each of these is hit hundreds of times).
    if cases() >= 10_000 {
        assert!(accepted.get() > 0);
        for reason in ["bad_topic", "bad_desk_id", "too_large", "malformed_json", "missing_field", "wrong_type"] {
            assert!(refused.get(reason).copied().unwrap_or(0) > 0, "no input was refused as {reason}: {refused:?}");
        }
    }
}
