//! Rows as stored, and their conversion to and from the domain's types.

use crate::{Result, StoreError};
use domain::batch::FacultyState;
use domain::status::{AdminOverride, Status};
use domain::{DeskClock, DeskRecord, FacultyView};

pub(crate) const DESK_COLUMNS: &str = "id, faculty_id, last_boot, last_seq, state_boot, state_seq, present, busy, \
     online_boot, online_seq, online, last_seen, version";

#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct DeskRow {
    pub id: String,
    pub faculty_id: Option<i64>,
    pub last_boot: Option<i64>,
    pub last_seq: Option<i64>,
    pub state_boot: Option<i64>,
    pub state_seq: Option<i64>,
    pub present: bool,
    pub busy: bool,
    pub online_boot: Option<i64>,
    pub online_seq: Option<i64>,
    pub online: bool,
    pub last_seen: Option<i64>,
    pub version: i64,
}

fn clock(boot: Option<i64>, seq: Option<i64>) -> Result<Option<DeskClock>> {
    match (boot, seq) {
        (Some(b), Some(s)) => {
            let boot = u32::try_from(b).map_err(|_| StoreError::Corrupt(format!("boot {b}")))?;
            let seq = u64::try_from(s).map_err(|_| StoreError::Corrupt(format!("seq {s}")))?;
            Ok(Some(DeskClock::new(boot, seq)))
        }
        (None, None) => Ok(None),
        _ => Err(StoreError::Corrupt("half a desk clock".into())),
    }
}

/// Splits a clock into columns (seq is capped at i64::MAX; the protocol rejects larger ones).
pub(crate) fn columns(c: Option<DeskClock>) -> (Option<i64>, Option<i64>) {
    match c {
        Some(c) => (Some(i64::from(c.boot)), Some(i64::try_from(c.seq).unwrap_or(i64::MAX))),
        None => (None, None),
    }
}

impl DeskRow {
    pub fn record(&self) -> Result<DeskRecord> {
        Ok(DeskRecord {
            last: clock(self.last_boot, self.last_seq)?,
            state_at: clock(self.state_boot, self.state_seq)?,
            present: self.present,
            busy: self.busy,
            online_at: clock(self.online_boot, self.online_seq)?,
            online: self.online,
        })
    }
}

pub(crate) const FACULTY_COLUMNS: &str = "id, name, department, status, \
     override_status, override_note, override_expires_at, changed_at, waiting, active, office_hours, version";

#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct FacultyRow {
    pub id: i64,
    pub name: String,
    pub department: String,
    pub status: String,
    pub override_status: Option<String>,
    pub override_note: Option<String>,
    pub override_expires_at: Option<i64>,
    pub changed_at: i64,
    pub waiting: i64,
    pub active: bool,
    pub office_hours: Option<String>,
    pub version: i64,
}

/// The slots of a stored schedule (written by `domain::faculty::check`, so it parses; anything
/// else reads as none rather than failing the board).
pub(crate) fn hours(text: Option<&str>) -> Vec<domain::schedule::Slot> {
    text.and_then(|t| domain::schedule::parse(t).ok()).unwrap_or_default()
}

impl FacultyRow {
    pub fn admin_override(&self) -> Option<AdminOverride> {
        let status = Status::parse(self.override_status.as_deref()?)?;
        Some(AdminOverride {
            status,
            note: self.override_note.clone().unwrap_or_default(),
            expires_at: self.override_expires_at,
        })
    }

    /// The row as the batch rules (`domain::batch`) see it.
    pub fn state(&self) -> Result<FacultyState> {
        Ok(FacultyState {
            id: self.id,
            name: self.name.clone(),
            department: self.department.clone(),
            status: parse_status(&self.status)?,
            admin_override: self.admin_override(),
            changed_at: self.changed_at,
            waiting: self.waiting,
            active: self.active,
            hours: hours(self.office_hours.as_deref()),
            version: self.version,
        })
    }
}

pub(crate) const VIEW_SELECT: &str = "SELECT f.id, f.name, f.department, f.status, f.present, f.busy, \
     f.desk_online, d.last_seen, f.changed_at, f.waiting, f.override_note AS note, f.override_expires_at AS until_at, \
     f.active, f.office_hours, f.version FROM faculty f LEFT JOIN desks d ON d.faculty_id = f.id";

#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct ViewRow {
    pub id: i64,
    pub name: String,
    pub department: String,
    pub status: String,
    pub present: bool,
    pub busy: bool,
    pub desk_online: bool,
    pub last_seen: Option<i64>,
    pub changed_at: i64,
    pub waiting: i64,
    /// The override's note and end (NULL without an override: they are cleared with it).
    pub note: Option<String>,
    pub until_at: Option<i64>,
    pub active: bool,
    pub office_hours: Option<String>,
    pub version: i64,
}

pub(crate) fn parse_status(s: &str) -> Result<Status> {
    Status::parse(s).ok_or_else(|| StoreError::Corrupt(format!("status {s:?}")))
}

impl TryFrom<ViewRow> for FacultyView {
    type Error = StoreError;

    fn try_from(r: ViewRow) -> Result<FacultyView> {
        Ok(FacultyView {
            id: r.id,
            status: parse_status(&r.status)?,
            name: r.name,
            department: r.department,
            present: r.present,
            busy: r.busy,
            desk_online: r.desk_online,
            last_seen: r.last_seen,
            changed_at: r.changed_at,
            waiting: r.waiting,
            note: r.note.filter(|n| !n.is_empty()),
            until: r.until_at,
            active: r.active,
            hours: hours(r.office_hours.as_deref()),
            version: r.version,
        })
    }
}
