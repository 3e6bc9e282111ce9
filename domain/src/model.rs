//! Types shared by the server and the browser (the JSON of `/api/faculty` and the event stream).

use crate::status::Status;
use serde::{Deserialize, Serialize};

/// One faculty member as the board shows it. Times are Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacultyView {
    pub id: i64,
    pub name: String,
    pub department: String,
    pub status: Status,
    pub present: bool,
    pub busy: bool,
    pub desk_online: bool,
    /// When the desk last sent a message that was applied; `None` without a desk or before any.
    pub last_seen: Option<i64>,
    /// When `status` last changed.
    pub changed_at: i64,
    /// Consultation requests waiting for this faculty member (a count; no names).
    #[serde(default)]
    pub waiting: i64,
    /// An admin's status override in force: its note ("In class") and when it ends (Unix ms;
    /// `None`: until cleared). Both absent without an override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    /// `false` once an admin deactivated them: readers keep the row (its version guards against
    /// older events) but show it nowhere. Omitted while `true`.
    #[serde(default = "active", skip_serializing_if = "is_active")]
    pub active: bool,
    /// Weekly office hours (the board says "office hours today …" in the university's local time).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hours: Vec<crate::schedule::Slot>,
    /// Bumps on every committed change of this row; readers drop anything older than they hold.
    pub version: i64,
}

fn active() -> bool {
    true
}

fn is_active(a: &bool) -> bool {
    *a
}

/// A consultation request as its student sees it (`/api/me/requests`, the student's live stream).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestView {
    pub id: i64,
    /// A short number to tell at a kiosk or the door.
    pub ticket: String,
    pub faculty_id: i64,
    pub faculty_name: String,
    pub state: crate::consultation::State,
    /// Place in line (1 = next) while waiting.
    pub position: Option<i64>,
    /// The wait estimate in minutes, while waiting.
    pub wait_min: Option<i64>,
    pub wait_max: Option<i64>,
    pub course: Option<String>,
    pub message: String,
    /// The faculty member's note with an answer.
    pub note: Option<String>,
    pub version: i64,
    pub requested_at: i64,
    pub changed_at: i64,
}

impl RequestView {
    /// What a ticket link shows (`/t/{token}`): the request's progress, without the student's own
    /// words (a QR code on a kiosk's screen can be photographed by someone else).
    pub fn redacted(mut self) -> RequestView {
        self.course = None;
        self.message = String::new();
        self
    }
}

/// A student's requests with the cursor of their live stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MyRequests {
    pub cursor: i64,
    pub requests: Vec<RequestView>,
}

/// A signed, short-lived link to one request's ticket, and its QR code (an SVG element).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketLink {
    pub id: i64,
    pub url: String,
    pub svg: String,
}

/// What a ticket link opens (`/t/{token}`): the request without the student's words, the stream's
/// cursor, and the token the page follows it with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub request: RequestView,
    pub cursor: i64,
    pub follow: String,
}

/// A reader's rule for request views, as for the board: only a newer version replaces what it
/// holds; new requests go first (newest first).
pub fn apply_request(list: &mut Vec<RequestView>, r: RequestView) -> bool {
    match list.iter_mut().find(|x| x.id == r.id) {
        Some(held) if r.version <= held.version => false,
        Some(held) => {
            *held = r;
            true
        }
        None => {
            list.insert(0, r);
            true
        }
    }
}

/// A consistent read of the board: `cursor` is the id of the newest status event it includes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub cursor: i64,
    pub faculty: Vec<FacultyView>,
}

/// One committed change, as the live stream carries it: `id` is the status event's id (the
/// stream's cursor), `faculty` the row as of that change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacultyEvent {
    pub id: i64,
    pub faculty: FacultyView,
}

/// What a reader did with an incoming row (see [`apply_view`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Not newer than the row held: dropped.
    Stale,
    /// Replaced the held row; `status_changed` tells whether to announce it.
    Updated { status_changed: bool },
    /// A row the reader did not hold yet.
    Added,
}

/// Applies `row` to a reader's list: only a newer version replaces what it holds. Keeps the list in
/// the board's order (name, then id).
pub fn apply_view(list: &mut Vec<FacultyView>, row: FacultyView) -> Applied {
    match list.iter_mut().find(|f| f.id == row.id) {
        Some(held) if row.version <= held.version => Applied::Stale,
        Some(held) => {
            let status_changed = held.status != row.status;
            *held = row;
            Applied::Updated { status_changed }
        }
        None => {
            let at = list.partition_point(|f| (f.name.as_str(), f.id) < (row.name.as_str(), row.id));
            list.insert(at, row);
            Applied::Added
        }
    }
}

/// Replaces a reader's list with a (newer) snapshot, keeping any row it holds at a newer version.
pub fn merge_snapshot(list: &mut Vec<FacultyView>, snapshot: Snapshot) {
    let mut next = snapshot.faculty;
    for row in next.iter_mut() {
        if let Some(held) = list.iter().find(|f| f.id == row.id && f.version > row.version) {
            *row = held.clone();
        }
    }
    *list = next;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, name: &str, status: Status, version: i64) -> FacultyView {
        FacultyView {
            id,
            name: name.into(),
            department: "D".into(),
            status,
            present: false,
            busy: false,
            desk_online: true,
            last_seen: None,
            changed_at: 0,
            waiting: 0,
            note: None,
            until: None,
            active: true,
            hours: vec![],
            version,
        }
    }

    #[test]
    fn only_newer_versions_replace() {
        let mut list = vec![row(1, "Ada", Status::Away, 3)];
        assert_eq!(apply_view(&mut list, row(1, "Ada", Status::Busy, 3)), Applied::Stale);
        assert_eq!(apply_view(&mut list, row(1, "Ada", Status::Busy, 2)), Applied::Stale);
        assert_eq!(list[0].status, Status::Away);
        assert_eq!(apply_view(&mut list, row(1, "Ada", Status::Busy, 4)), Applied::Updated { status_changed: true });
        assert_eq!(apply_view(&mut list, row(1, "Ada", Status::Busy, 5)), Applied::Updated { status_changed: false });
        assert_eq!(list[0].version, 5);
    }

    #[test]
    fn new_rows_are_inserted_in_board_order() {
        let mut list = vec![row(1, "Ada", Status::Away, 1), row(2, "Grace", Status::Away, 1)];
        assert_eq!(apply_view(&mut list, row(3, "Edsger", Status::Busy, 2)), Applied::Added);
        let names: Vec<_> = list.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["Ada", "Edsger", "Grace"]);
    }

    #[test]
    fn snapshot_merge_keeps_newer_held_rows_and_drops_removed_ones() {
        let mut list = vec![row(1, "Ada", Status::Busy, 9), row(2, "Grace", Status::Away, 1)];
        let snap =
            Snapshot { cursor: 5, faculty: vec![row(1, "Ada", Status::Away, 7), row(3, "Alan", Status::Away, 1)] };
        merge_snapshot(&mut list, snap);
        assert_eq!(list.iter().map(|f| (f.id, f.version)).collect::<Vec<_>>(), [(1, 9), (3, 1)]);
    }
}
