//! A faculty member's status, derived from its inputs by one pure function.
//!
//! Precedence, highest first:
//! 1. an admin override that has not expired (room for the admin dashboard);
//! 2. no desk, or desk not online → `offline`;
//! 3. desk says busy → `busy`;
//! 4. desk says present → `available`;
//! 5. otherwise → `away`.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Available,
    Busy,
    Away,
    Offline,
}

impl Status {
    pub const ALL: [Status; 4] = [Status::Available, Status::Busy, Status::Away, Status::Offline];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Available => "available",
            Status::Busy => "busy",
            Status::Away => "away",
            Status::Offline => "offline",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The word shown to people (status is never shown by colour alone).
    pub fn label(self) -> &'static str {
        match self {
            Status::Available => "Available",
            Status::Busy => "Busy",
            Status::Away => "Away",
            Status::Offline => "Offline",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the desk unit reports, as far as status is concerned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeskInputs {
    pub online: bool,
    pub present: bool,
    pub busy: bool,
}

/// An admin's manual status, with a note shown to students and an optional expiry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminOverride {
    pub status: Status,
    pub note: String,
    /// Unix milliseconds; `None` means until removed.
    pub expires_at: Option<i64>,
}

impl AdminOverride {
    pub fn is_active(&self, now_ms: i64) -> bool {
        self.expires_at.is_none_or(|exp| now_ms < exp)
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct StatusInputs<'a> {
    /// `None`: the faculty member has no desk unit.
    pub desk: Option<DeskInputs>,
    pub admin_override: Option<&'a AdminOverride>,
}

/// Derives the status. `now_ms` only matters for an override's expiry.
pub fn derive(inputs: StatusInputs<'_>, now_ms: i64) -> Status {
    if let Some(ov) = inputs.admin_override.filter(|ov| ov.is_active(now_ms)) {
        return ov.status;
    }
    match inputs.desk {
        None | Some(DeskInputs { online: false, .. }) => Status::Offline,
        Some(DeskInputs { busy: true, .. }) => Status::Busy,
        Some(DeskInputs { present: true, .. }) => Status::Available,
        Some(_) => Status::Away,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desk(online: bool, present: bool, busy: bool) -> Option<DeskInputs> {
        Some(DeskInputs { online, present, busy })
    }

    #[test]
    fn desk_precedence_table() {
        let cases = [
            (None, Status::Offline),
            (desk(false, true, true), Status::Offline),
            (desk(false, false, false), Status::Offline),
            (desk(true, true, true), Status::Busy),
            (desk(true, false, true), Status::Busy),
            (desk(true, true, false), Status::Available),
            (desk(true, false, false), Status::Away),
        ];
        for (d, want) in cases {
            assert_eq!(derive(StatusInputs { desk: d, admin_override: None }, 0), want, "{d:?}");
        }
    }

    #[test]
    fn active_override_beats_everything_and_expires() {
        let ov = AdminOverride { status: Status::Away, note: "At a conference".into(), expires_at: Some(1_000) };
        let inputs = StatusInputs { desk: desk(true, true, false), admin_override: Some(&ov) };
        assert_eq!(derive(inputs, 999), Status::Away);
        assert_eq!(derive(inputs, 1_000), Status::Available);
        let forever = AdminOverride { expires_at: None, ..ov };
        assert_eq!(derive(StatusInputs { desk: None, admin_override: Some(&forever) }, i64::MAX), Status::Away);
    }

    #[test]
    fn names_round_trip() {
        for st in Status::ALL {
            assert_eq!(Status::parse(st.as_str()), Some(st));
            assert_eq!(serde_json::to_string(&st).unwrap(), format!("\"{st}\""));
        }
        assert_eq!(Status::parse("gone"), None);
    }
}
