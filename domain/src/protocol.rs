//! The desk-unit MQTT contract (docs/PROTOCOL.md is the prose version of this module): topics, and
//! every payload typed, with its encoding *and* its parsing here, so that the server, the desk
//! simulator, the load generator and the tests speak one message set.
//!
//! Topics under a prefix `P` (default `consultease`): `P/desk/{desk}/{kind}`. Payloads are JSON
//! objects carrying the desk's clock (`boot`, `seq`).

use crate::clock::DeskClock;
use crate::consultation::{self, Action};
use crate::desk::DeskMessage;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Payloads larger than this are rejected unread.
pub const MAX_PAYLOAD: usize = 4096;
pub const DEFAULT_PREFIX: &str = "consultease";

/// The desk → server topics' last level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    State,
    Online,
    Heartbeat,
    /// The desk shows queue snapshot `version` (v1 addition).
    QueueAck,
    /// A faculty member's answer to a request (v1 addition).
    Reply,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::State, Kind::Online, Kind::Heartbeat, Kind::QueueAck, Kind::Reply];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::State => "state",
            Kind::Online => "online",
            Kind::Heartbeat => "heartbeat",
            Kind::QueueAck => "queue_ack",
            Kind::Reply => "reply",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Why a message was rejected. `label()` is the metrics label; `Display` is the log line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    #[error("topic {0:?} is not a desk topic")]
    BadTopic(String),
    #[error("desk id must be 1-64 characters of A-Z a-z 0-9 _ -")]
    BadDeskId,
    #[error("payload is {0} bytes, over the {MAX_PAYLOAD}-byte limit")]
    TooLarge(usize),
    #[error("payload is not a JSON object: {0}")]
    MalformedJson(String),
    #[error("field `{0}` is missing")]
    MissingField(&'static str),
    #[error("field `{0}` must be {1}")]
    WrongType(&'static str, &'static str),
    #[error("desk is not registered")]
    UnknownDesk,
    #[error("no such consultation request")]
    UnknownRequest,
    #[error("the request is not for this desk's faculty member")]
    WrongDesk,
    #[error("boot jumps implausibly far past the desk's last one (an admin may reset its clock)")]
    ImplausibleClock,
}

impl Reject {
    pub fn label(&self) -> &'static str {
        match self {
            Reject::BadTopic(_) => "bad_topic",
            Reject::BadDeskId => "bad_desk_id",
            Reject::TooLarge(_) => "too_large",
            Reject::MalformedJson(_) => "malformed_json",
            Reject::MissingField(_) => "missing_field",
            Reject::WrongType(..) => "wrong_type",
            Reject::UnknownDesk => "unknown_desk",
            Reject::UnknownRequest => "unknown_request",
            Reject::WrongDesk => "wrong_desk",
            Reject::ImplausibleClock => "implausible_clock",
        }
    }

    pub const LABELS: [&'static str; 10] = [
        "bad_topic",
        "bad_desk_id",
        "too_large",
        "malformed_json",
        "missing_field",
        "wrong_type",
        "unknown_desk",
        "unknown_request",
        "wrong_desk",
        "implausible_clock",
    ];
}

pub fn valid_desk_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Topic filters the server subscribes to: one per kind of message a desk sends.
///
/// Not `P/desk/+/+`: that filter also matches the queue snapshots the server itself publishes
/// (`P/desk/{desk}/queue`), so every snapshot came back to the server, was counted and logged as a
/// rejected desk message (`bad_topic`), and took a place in the ingest's batches: at 2,000
/// consultation requests/s, 4 of every 10 messages the ingest read were its own snapshots
/// (`loadgen --consult`, BENCHMARKS.md row 8b‴). A message on any other topic under `P/desk/` now
/// does not reach the server at all.
pub fn subscriptions(prefix: &str) -> Vec<String> {
    Kind::ALL.iter().map(|k| format!("{prefix}/desk/+/{}", k.as_str())).collect()
}

/// The filter servers before 2026-12 subscribed to (see [`subscriptions`]). Their persistent
/// sessions keep it at the broker until the server unsubscribes from it.
pub fn former_subscription(prefix: &str) -> String {
    format!("{prefix}/desk/+/+")
}

pub fn topic(prefix: &str, desk: &str, kind: Kind) -> String {
    format!("{prefix}/desk/{desk}/{}", kind.as_str())
}

/// The server → desk topic of a desk's queue snapshot (QoS 1, retained).
pub fn queue_topic(prefix: &str, desk: &str) -> String {
    format!("{prefix}/desk/{desk}/queue")
}

/// Splits `P/desk/{desk}/{kind}` into the desk id and the kind. A topic holding a wildcard (`+`,
/// `#`) or NUL is never a desk topic: a broker must not pass one on, and if it does it is refused
/// here before anything else is looked at.
pub fn parse_topic<'t>(prefix: &str, topic: &'t str) -> Result<(&'t str, Kind), Reject> {
    let bad = || Reject::BadTopic(topic.chars().take(128).map(|c| if c == '\0' { '\u{FFFD}' } else { c }).collect());
    if topic.contains(['+', '#', '\0']) {
        return Err(bad());
    }
    let rest = topic.strip_prefix(prefix).and_then(|r| r.strip_prefix("/desk/")).ok_or_else(bad)?;
    let (desk, kind) = rest.split_once('/').ok_or_else(bad)?;
    let kind = Kind::parse(kind).ok_or_else(bad)?;
    if !valid_desk_id(desk) {
        return Err(Reject::BadDeskId);
    }
    Ok((desk, kind))
}

/// What the server makes of one message on a desk topic: the desk and its typed payload, or why
/// it is refused. The ingest's whole reading of the wire (the fuzz target `tests/fuzz_desk_input.rs`
/// drives it). The size is checked first: an oversized payload is `too_large` wherever it was sent.
pub fn classify<'t>(prefix: &str, topic: &'t str, payload: &[u8]) -> Result<(&'t str, Payload), Reject> {
    if payload.len() > MAX_PAYLOAD {
        return Err(Reject::TooLarge(payload.len()));
    }
    let (desk, kind) = parse_topic(prefix, topic)?;
    Ok((desk, Payload::parse(kind, payload)?))
}

/// Everything a desk publishes, typed. [`Payload::encode`] writes what [`Payload::parse`] reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// `P/desk/{desk}/state`, QoS 1, retained.
    State { clock: DeskClock, present: bool, busy: bool },
    /// `P/desk/{desk}/online`, QoS 1, retained (also the desk's last will).
    Online { clock: DeskClock, online: bool },
    /// `P/desk/{desk}/heartbeat`, QoS 0: liveness, and what the firmware tells about itself.
    Heartbeat { clock: DeskClock, info: DeskInfo },
    /// `P/desk/{desk}/queue_ack`, QoS 1: the desk now shows queue snapshot `version`.
    QueueAck { clock: DeskClock, version: i64 },
    /// `P/desk/{desk}/reply`, QoS 1: the faculty member answered request `request`.
    Reply { clock: DeskClock, request: i64, action: Action, note: Option<String> },
}

/// Optional facts a heartbeat may carry, for the admin's desk list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeskInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rssi: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub free_heap: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
}

impl Payload {
    pub fn kind(&self) -> Kind {
        match self {
            Payload::State { .. } => Kind::State,
            Payload::Online { .. } => Kind::Online,
            Payload::Heartbeat { .. } => Kind::Heartbeat,
            Payload::QueueAck { .. } => Kind::QueueAck,
            Payload::Reply { .. } => Kind::Reply,
        }
    }

    pub fn clock(&self) -> DeskClock {
        match self {
            Payload::State { clock, .. }
            | Payload::Online { clock, .. }
            | Payload::Heartbeat { clock, .. }
            | Payload::QueueAck { clock, .. }
            | Payload::Reply { clock, .. } => *clock,
        }
    }

    /// What the desk's record rules (`crate::desk`) need of this payload: acks and replies, like
    /// heartbeats, show the desk is alive.
    pub fn message(&self) -> DeskMessage {
        match *self {
            Payload::State { clock, present, busy } => DeskMessage::State { clock, present, busy },
            Payload::Online { clock, online } => DeskMessage::Online { clock, online },
            Payload::Heartbeat { clock, .. } | Payload::QueueAck { clock, .. } | Payload::Reply { clock, .. } => {
                DeskMessage::Heartbeat { clock }
            }
        }
    }

    /// The JSON bytes a desk publishes.
    pub fn encode(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Wire<'a> {
            boot: u32,
            seq: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            present: Option<bool>,
            #[serde(skip_serializing_if = "Option::is_none")]
            busy: Option<bool>,
            #[serde(skip_serializing_if = "Option::is_none")]
            online: Option<bool>,
            #[serde(flatten)]
            info: Option<&'a DeskInfo>,
            #[serde(skip_serializing_if = "Option::is_none")]
            version: Option<i64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            request: Option<i64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            action: Option<Action>,
            #[serde(skip_serializing_if = "Option::is_none")]
            note: Option<&'a str>,
        }
        let c = self.clock();
        let mut w = Wire {
            boot: c.boot,
            seq: c.seq,
            present: None,
            busy: None,
            online: None,
            info: None,
            version: None,
            request: None,
            action: None,
            note: None,
        };
        match self {
            Payload::State { present, busy, .. } => (w.present, w.busy) = (Some(*present), Some(*busy)),
            Payload::Online { online, .. } => w.online = Some(*online),
            Payload::Heartbeat { info, .. } => w.info = Some(info),
            Payload::QueueAck { version, .. } => w.version = Some(*version),
            Payload::Reply { request, action, note, .. } => {
                (w.request, w.action, w.note) = (Some(*request), Some(*action), note.as_deref())
            }
        }
        // A struct of plain fields always serialises.
        serde_json::to_vec(&w).unwrap_or_default()
    }

    /// Validates a payload of the given kind. Unknown extra fields are ignored (forward
    /// compatibility); a key given twice is refused (two firmware bugs must not cancel out).
    pub fn parse(kind: Kind, payload: &[u8]) -> Result<Payload, Reject> {
        if payload.len() > MAX_PAYLOAD {
            return Err(Reject::TooLarge(payload.len()));
        }
        let obj: Object = serde_json::from_slice(payload).map_err(|e| Reject::MalformedJson(e.to_string()))?;
        let boot = u32::try_from(obj.uint("boot", u32::MAX.into())?).map_err(|_| Reject::WrongType("boot", "u32"))?;
        let seq = obj.uint("seq", i64::MAX as u64)?;
        let clock = DeskClock::new(boot, seq);
        Ok(match kind {
            Kind::State => Payload::State {
                clock,
                present: obj.boolean("present")?.ok_or(Reject::MissingField("present"))?,
                busy: obj.boolean("busy")?.unwrap_or(false),
            },
            Kind::Online => {
                Payload::Online { clock, online: obj.boolean("online")?.ok_or(Reject::MissingField("online"))? }
            }
            Kind::Heartbeat => Payload::Heartbeat {
                clock,
                // Informational: a field of the wrong type is dropped, not a reason to lose liveness.
                info: DeskInfo {
                    uptime_s: obj.get("uptime_s").and_then(Value::as_u64),
                    rssi: obj.get("rssi").and_then(Value::as_i64),
                    free_heap: obj.get("free_heap").and_then(Value::as_u64),
                    firmware: obj.get("firmware").and_then(Value::as_str).map(|s| s.chars().take(64).collect()),
                },
            },
            Kind::QueueAck => Payload::QueueAck { clock, version: obj.id("version")? },
            Kind::Reply => {
                let action = match obj.get("action") {
                    None => return Err(Reject::MissingField("action")),
                    Some(v) => v
                        .as_str()
                        .and_then(Action::parse)
                        .ok_or(Reject::WrongType("action", "one of accept, busy, decline, done, no_show"))?,
                };
                let note = match obj.get("note") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(n)) if consultation::check_note(n).is_ok() => Some(n.clone()),
                    Some(_) => return Err(Reject::WrongType("note", "a string of at most 140 characters")),
                };
                Payload::Reply { clock, request: obj.id("request")?, action, note }
            }
        })
    }
}

/// A desk's whole queue, as the server publishes it (retained) on `P/desk/{desk}/queue` after each
/// committed change. `version` only grows: a desk ignores a snapshot not newer than the one it
/// shows, so a late redelivery or a second publisher can never show an older queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSnapshot {
    pub version: i64,
    pub faculty: QueueFaculty,
    /// Whether the faculty member takes requests now (available or busy).
    pub accepting: bool,
    /// In queue order, at most [`QueueSnapshot::MAX_ITEMS`].
    pub items: Vec<QueueItem>,
    /// How many more wait beyond `items`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueFaculty {
    pub name: String,
    pub status: crate::status::Status,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueItem {
    pub id: i64,
    pub ticket: String,
    pub student: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub course: Option<String>,
    pub message: String,
    pub requested_at: i64,
    pub state: consultation::State,
}

impl QueueSnapshot {
    pub const MAX_ITEMS: usize = 20;

    pub fn encode(&self) -> Vec<u8> {
        // A struct of plain fields always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// For the desk side (the simulator, tests): reads a snapshot.
    pub fn parse(payload: &[u8]) -> Result<QueueSnapshot, Reject> {
        serde_json::from_slice(payload).map_err(|e| Reject::MalformedJson(e.to_string()))
    }
}

/// A JSON object whose keys were checked for duplicates while reading (`serde_json::Value` keeps
/// the last of two equal keys without a word).
struct Object(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Object, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Object;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object, A::Error> {
                let mut fields: Vec<(String, Value)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if fields.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format_args!("duplicate key {key:?}")));
                    }
                    let value = map.next_value()?;
                    fields.push((key, value));
                }
                Ok(Object(fields))
            }
        }
        d.deserialize_map(V)
    }
}

impl Object {
    fn get(&self, field: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == field).map(|(_, v)| v)
    }

    /// A positive identifier (a request id, a queue version).
    fn id(&self, field: &'static str) -> Result<i64, Reject> {
        let v = self.uint(field, i64::MAX as u64)?;
        i64::try_from(v).map_err(|_| Reject::WrongType(field, "a positive integer"))
    }

    fn uint(&self, field: &'static str, max: u64) -> Result<u64, Reject> {
        let v = self.get(field).ok_or(Reject::MissingField(field))?;
        let kind = if max == u64::from(u32::MAX) { "an integer 0..=4294967295" } else { "a non-negative integer" };
        v.as_u64().filter(|n| *n <= max).ok_or(Reject::WrongType(field, kind))
    }

    fn boolean(&self, field: &'static str) -> Result<Option<bool>, Reject> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(Reject::WrongType(field, "true or false")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn topics() {
        assert_eq!(parse_topic("consultease", "consultease/desk/d-1_A/state"), Ok(("d-1_A", Kind::State)));
        assert_eq!(parse_topic("x/y", "x/y/desk/d/heartbeat"), Ok(("d", Kind::Heartbeat)));
        assert_eq!(parse_topic("consultease", "consultease/desk/d/online"), Ok(("d", Kind::Online)));
        for bad in
            ["other/desk/d/state", "consultease/desk/d", "consultease/desk/d/state/x", "consultease/desks/d/state"]
        {
            assert_eq!(parse_topic("consultease", bad).map_err(|e| e.label()), Err("bad_topic"), "{bad}");
        }
        let long = format!("consultease/desk/{}/state", "a".repeat(65));
        assert_eq!(parse_topic("consultease", &long), Err(Reject::BadDeskId));
        assert_eq!(parse_topic("consultease", "consultease/desk/a.b/state"), Err(Reject::BadDeskId));
        assert_eq!(topic("p", "d", Kind::Online), "p/desk/d/online");
        assert_eq!(
            subscriptions("p"),
            ["p/desk/+/state", "p/desk/+/online", "p/desk/+/heartbeat", "p/desk/+/queue_ack", "p/desk/+/reply"]
        );
        // The server's own publications are not among them.
        assert!(!subscriptions("p").iter().any(|f| f.ends_with("/queue") || f.ends_with("/+")));
    }

    #[test]
    fn acks_and_replies() {
        let c = DeskClock::new(3, 9);
        assert_eq!(
            Payload::parse(Kind::QueueAck, br#"{"boot":3,"seq":9,"version":12}"#),
            Ok(Payload::QueueAck { clock: c, version: 12 })
        );
        assert_eq!(
            Payload::parse(Kind::Reply, br#"{"boot":3,"seq":9,"request":41,"action":"busy","note":"5 min"}"#),
            Ok(Payload::Reply { clock: c, request: 41, action: Action::Busy, note: Some("5 min".into()) })
        );
        assert_eq!(parse_topic("p", "p/desk/d/reply"), Ok(("d", Kind::Reply)));
        assert_eq!(parse_topic("p", "p/desk/d/queue_ack"), Ok(("d", Kind::QueueAck)));
        let bad: [(&[u8], &str); 4] = [
            (br#"{"boot":3,"seq":9,"request":41,"action":"maybe"}"#, "wrong_type"),
            (br#"{"boot":3,"seq":9,"request":41}"#, "missing_field"),
            (br#"{"boot":3,"seq":9,"action":"accept"}"#, "missing_field"),
            (br#"{"boot":3,"seq":9,"request":-1,"action":"accept"}"#, "wrong_type"),
        ];
        for (payload, want) in bad {
            assert_eq!(Payload::parse(Kind::Reply, payload).map_err(|e| e.label()), Err(want));
        }
        let long = format!(r#"{{"boot":3,"seq":9,"request":1,"action":"busy","note":"{}"}}"#, "x".repeat(141));
        assert_eq!(Payload::parse(Kind::Reply, long.as_bytes()).map_err(|e| e.label()), Err("wrong_type"));
    }

    #[test]
    fn queue_snapshots_round_trip() {
        let snap = QueueSnapshot {
            version: 7,
            faculty: QueueFaculty { name: "Ada".into(), status: crate::status::Status::Available },
            accepting: true,
            items: vec![QueueItem {
                id: 3,
                ticket: "T3".into(),
                student: "Grace".into(),
                course: Some("CS101".into()),
                message: "Recursion".into(),
                requested_at: 1,
                state: consultation::State::Delivered,
            }],
            more: 0,
        };
        let json = String::from_utf8(snap.encode()).unwrap();
        assert!(json.contains(r#""state":"delivered""#) && !json.contains("more"), "{json}");
        assert_eq!(QueueSnapshot::parse(json.as_bytes()), Ok(snap));
    }

    #[test]
    fn wildcards_and_nul_in_a_published_topic_are_bad_topics() {
        for bad in [
            "consultease/desk/+/state",
            "consultease/desk/#",
            "consultease/desk/d/+",
            "consultease/desk/d\0/state",
            "consultease/desk/d/state\0",
        ] {
            let got = parse_topic("consultease", bad);
            assert_eq!(got.as_ref().map_err(Reject::label), Err("bad_topic"), "{bad:?}");
            assert!(!got.unwrap_err().to_string().contains('\0'), "a NUL never reaches the log");
        }
    }

    #[test]
    fn payloads() {
        let c = DeskClock::new(7, 42);
        assert_eq!(
            Payload::parse(Kind::State, br#"{"boot":7,"seq":42,"present":true}"#),
            Ok(Payload::State { clock: c, present: true, busy: false })
        );
        assert_eq!(
            Payload::parse(Kind::State, br#"{"boot":7,"seq":42,"present":false,"busy":true,"extra":1}"#),
            Ok(Payload::State { clock: c, present: false, busy: true })
        );
        assert_eq!(
            Payload::parse(Kind::Online, br#"{"boot":7,"seq":42,"online":false}"#),
            Ok(Payload::Online { clock: c, online: false })
        );
        let info = DeskInfo { uptime_s: Some(5), rssi: Some(-60), free_heap: None, firmware: Some("1.2.0".into()) };
        assert_eq!(
            Payload::parse(Kind::Heartbeat, br#"{"boot":7,"seq":42,"uptime_s":5,"rssi":-60,"firmware":"1.2.0"}"#),
            Ok(Payload::Heartbeat { clock: c, info })
        );
        // Informational fields of the wrong type do not cost the heartbeat.
        assert_eq!(
            Payload::parse(Kind::Heartbeat, br#"{"boot":7,"seq":42,"uptime_s":"long"}"#),
            Ok(Payload::Heartbeat { clock: c, info: DeskInfo::default() })
        );
    }

    #[test]
    fn rejections_name_their_reason() {
        let cases: [(&[u8], &str); 11] = [
            (b"not json", "malformed_json"),
            (b"[1,2]", "malformed_json"),
            (br#"{"seq":1,"present":true}"#, "missing_field"),
            (br#"{"boot":1,"present":true}"#, "missing_field"),
            (br#"{"boot":1,"seq":1}"#, "missing_field"),
            (br#"{"boot":"1","seq":1,"present":true}"#, "wrong_type"),
            (br#"{"boot":-1,"seq":1,"present":true}"#, "wrong_type"),
            (br#"{"boot":4294967296,"seq":1,"present":true}"#, "wrong_type"),
            (br#"{"boot":1,"seq":1.5,"present":true}"#, "wrong_type"),
            (br#"{"boot":1,"seq":1,"present":"yes"}"#, "wrong_type"),
            (br#"{"boot":1,"seq":1,"present":true,"busy":1}"#, "wrong_type"),
        ];
        for (payload, want) in cases {
            let got = Payload::parse(Kind::State, payload).map_err(|e| e.label());
            assert_eq!(got, Err(want), "{}", String::from_utf8_lossy(payload));
        }
        let big = vec![b' '; MAX_PAYLOAD + 1];
        assert_eq!(Payload::parse(Kind::Heartbeat, &big), Err(Reject::TooLarge(MAX_PAYLOAD + 1)));
        assert_eq!(
            Payload::parse(Kind::State, br#"{"boot":1,"seq":9223372036854775808,"present":true}"#)
                .map_err(|e| e.label()),
            Err("wrong_type")
        );
    }

    /// Regression (outside test run): `{"present":true,"present":false}` was read as the last value.
    #[test]
    fn duplicate_keys_are_malformed_json() {
        for payload in [
            &br#"{"boot":1,"seq":2,"present":true,"present":false}"#[..],
            br#"{"boot":1,"boot":9,"seq":2,"present":true}"#,
            br#"{"boot":1,"seq":2,"present":true,"x":1,"x":2}"#,
        ] {
            let got = Payload::parse(Kind::State, payload);
            assert_eq!(
                got.as_ref().map_err(Reject::label),
                Err("malformed_json"),
                "{}",
                String::from_utf8_lossy(payload)
            );
            assert!(got.unwrap_err().to_string().contains("duplicate key"));
        }
    }

    fn payload() -> impl Strategy<Value = Payload> {
        let clock = (any::<u32>(), 0..=i64::MAX as u64).prop_map(|(b, s)| DeskClock::new(b, s));
        let info = (
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<i64>()),
            proptest::option::of(any::<u64>()),
            proptest::option::of("[ -~]{0,64}"),
        )
            .prop_map(|(uptime_s, rssi, free_heap, firmware)| DeskInfo { uptime_s, rssi, free_heap, firmware });
        prop_oneof![
            (clock.clone(), any::<bool>(), any::<bool>()).prop_map(|(clock, present, busy)| Payload::State {
                clock,
                present,
                busy
            }),
            (clock.clone(), any::<bool>()).prop_map(|(clock, online)| Payload::Online { clock, online }),
            (clock.clone(), info).prop_map(|(clock, info)| Payload::Heartbeat { clock, info }),
            (clock.clone(), 0..=i64::MAX).prop_map(|(clock, version)| Payload::QueueAck { clock, version }),
            (clock, 0..=i64::MAX, prop::sample::select(Action::ALL.to_vec()), proptest::option::of("[ -~]{0,140}"))
                .prop_map(|(clock, request, action, note)| Payload::Reply { clock, request, action, note }),
        ]
    }

    proptest! {
        #[test]
        fn every_payload_round_trips(p in payload()) {
            let bytes = p.encode();
            prop_assert!(bytes.len() <= MAX_PAYLOAD);
            prop_assert_eq!(Payload::parse(p.kind(), &bytes), Ok(p));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            for kind in Kind::ALL {
                let _ = Payload::parse(kind, &bytes);
            }
        }
    }
}
