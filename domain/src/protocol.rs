//! The desk-unit MQTT contract, v1 (docs/PROTOCOL.md is the prose version of this module).
//!
//! Topics under a prefix `P` (default `consultease`): `P/desk/{desk}/state`, `P/desk/{desk}/online`,
//! `P/desk/{desk}/heartbeat`. Payloads are JSON objects carrying the desk's clock (`boot`, `seq`).

use crate::clock::DeskClock;
use crate::desk::DeskMessage;
use serde_json::{Map, Value};

/// Payloads larger than this are rejected unread.
pub const MAX_PAYLOAD: usize = 4096;
pub const DEFAULT_PREFIX: &str = "consultease";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    State,
    Online,
    Heartbeat,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::State => "state",
            Kind::Online => "online",
            Kind::Heartbeat => "heartbeat",
        }
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
        }
    }

    pub const LABELS: [&'static str; 7] =
        ["bad_topic", "bad_desk_id", "too_large", "malformed_json", "missing_field", "wrong_type", "unknown_desk"];
}

pub fn valid_desk_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Topic filter the server subscribes to.
pub fn subscription(prefix: &str) -> String {
    format!("{prefix}/desk/+/+")
}

pub fn topic(prefix: &str, desk: &str, kind: Kind) -> String {
    format!("{prefix}/desk/{desk}/{}", kind.as_str())
}

/// Splits `P/desk/{desk}/{kind}` into the desk id and the kind.
pub fn parse_topic<'t>(prefix: &str, topic: &'t str) -> Result<(&'t str, Kind), Reject> {
    let bad = || Reject::BadTopic(topic.chars().take(128).collect());
    let rest = topic.strip_prefix(prefix).and_then(|r| r.strip_prefix("/desk/")).ok_or_else(bad)?;
    let (desk, kind) = rest.split_once('/').ok_or_else(bad)?;
    let kind = match kind {
        "state" => Kind::State,
        "online" => Kind::Online,
        "heartbeat" => Kind::Heartbeat,
        _ => return Err(bad()),
    };
    if !valid_desk_id(desk) {
        return Err(Reject::BadDeskId);
    }
    Ok((desk, kind))
}

/// Validates a payload of the given kind. Extra fields are ignored (forward compatibility).
pub fn parse_payload(kind: Kind, payload: &[u8]) -> Result<DeskMessage, Reject> {
    if payload.len() > MAX_PAYLOAD {
        return Err(Reject::TooLarge(payload.len()));
    }
    let obj = match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(obj)) => obj,
        Ok(_) => return Err(Reject::MalformedJson("expected an object".into())),
        Err(e) => return Err(Reject::MalformedJson(e.to_string())),
    };
    let boot = u32::try_from(uint(&obj, "boot", u32::MAX.into())?).map_err(|_| Reject::WrongType("boot", "u32"))?;
    let seq = uint(&obj, "seq", i64::MAX as u64)?;
    let clock = DeskClock::new(boot, seq);
    Ok(match kind {
        Kind::State => DeskMessage::State {
            clock,
            present: boolean(&obj, "present")?.ok_or(Reject::MissingField("present"))?,
            busy: boolean(&obj, "busy")?.unwrap_or(false),
        },
        Kind::Online => {
            DeskMessage::Online { clock, online: boolean(&obj, "online")?.ok_or(Reject::MissingField("online"))? }
        }
        Kind::Heartbeat => DeskMessage::Heartbeat { clock },
    })
}

fn uint(obj: &Map<String, Value>, field: &'static str, max: u64) -> Result<u64, Reject> {
    let v = obj.get(field).ok_or(Reject::MissingField(field))?;
    let kind = if max == u64::from(u32::MAX) { "an integer 0..=4294967295" } else { "a non-negative integer" };
    v.as_u64().filter(|n| *n <= max).ok_or(Reject::WrongType(field, kind))
}

fn boolean(obj: &Map<String, Value>, field: &'static str) -> Result<Option<bool>, Reject> {
    match obj.get(field) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(Reject::WrongType(field, "true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(subscription("p"), "p/desk/+/+");
    }

    #[test]
    fn payloads() {
        let c = DeskClock::new(7, 42);
        assert_eq!(
            parse_payload(Kind::State, br#"{"boot":7,"seq":42,"present":true}"#),
            Ok(DeskMessage::State { clock: c, present: true, busy: false })
        );
        assert_eq!(
            parse_payload(Kind::State, br#"{"boot":7,"seq":42,"present":false,"busy":true,"extra":1}"#),
            Ok(DeskMessage::State { clock: c, present: false, busy: true })
        );
        assert_eq!(
            parse_payload(Kind::Online, br#"{"boot":7,"seq":42,"online":false}"#),
            Ok(DeskMessage::Online { clock: c, online: false })
        );
        assert_eq!(
            parse_payload(Kind::Heartbeat, br#"{"boot":7,"seq":42,"uptime_s":5,"rssi":-60}"#),
            Ok(DeskMessage::Heartbeat { clock: c })
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
            let got = parse_payload(Kind::State, payload).map_err(|e| e.label());
            assert_eq!(got, Err(want), "{}", String::from_utf8_lossy(payload));
        }
        let big = vec![b' '; MAX_PAYLOAD + 1];
        assert_eq!(parse_payload(Kind::Heartbeat, &big), Err(Reject::TooLarge(MAX_PAYLOAD + 1)));
        assert_eq!(
            parse_payload(Kind::State, br#"{"boot":1,"seq":9223372036854775808,"present":true}"#)
                .map_err(|e| e.label()),
            Err("wrong_type")
        );
    }
}
