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
    /// Bumps on every committed change of this row; readers drop anything older than they hold.
    pub version: i64,
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
