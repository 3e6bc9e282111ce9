//! Deciding a batch of desk changes: the pure middle of the ingest's transaction. The store reads
//! the desks and faculty rows a batch touches (inside its transaction), [`plan`] decides every
//! change in arrival order with the desk rules ([`crate::desk`]) and the status rule
//! ([`crate::status`]), and the store writes what the plan changed — compare-and-set on the versions
//! it read — then commits. Nothing here knows about SQL.

use crate::clock::DeskClock;
use crate::desk::{DeskMessage, DeskRecord, DeskUpdate};
use crate::model::FacultyView;
use crate::status::{self, AdminOverride, DeskInputs, Status, StatusInputs};
use std::collections::HashMap;

/// One change to offer a desk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A validated message from the desk.
    Message { desk: String, message: DeskMessage },
    /// The desk has been silent since before `silent_before` (Unix ms): offline, as if its will came.
    TimeOut { desk: String, silent_before: i64 },
}

impl Change {
    pub fn desk(&self) -> &str {
        match self {
            Change::Message { desk, .. } | Change::TimeOut { desk, .. } => desk,
        }
    }
}

/// A desk as the batch found it (and, after [`plan`], as it leaves it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeskState {
    pub faculty_id: Option<i64>,
    pub record: DeskRecord,
    /// When the desk last sent a message that applied (Unix ms).
    pub last_seen: Option<i64>,
}

/// A faculty member's row as the batch found it (and, after [`plan`], as it leaves it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FacultyState {
    pub id: i64,
    pub name: String,
    pub department: String,
    pub status: Status,
    pub admin_override: Option<AdminOverride>,
    pub changed_at: i64,
    /// Consultation requests waiting (carried into every event of the row).
    pub waiting: i64,
    /// Deactivated rows still follow their desk (carried into every event of the row).
    pub active: bool,
    /// Office hours (carried into every event of the row).
    pub hours: Vec<crate::schedule::Slot>,
    pub version: i64,
}

/// Where a status event came from (the event log's `source` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Desk,
    Timeout,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Desk => "desk",
            Source::Timeout => "timeout",
        }
    }
}

/// What became of one change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The desk's record changed; `event` indexes [`Plan::events`] when a faculty row changed too.
    Applied { event: Option<usize> },
    /// Older than (or equal to) what the desk's record holds: nothing changes.
    Stale,
    /// No desk with that id was found.
    UnknownDesk,
    /// Its `boot` jumped implausibly far (see [`crate::desk::MAX_BOOT_JUMP`]): nothing changes.
    Implausible,
}

/// A faculty row's new version, to be logged as a status event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedEvent {
    pub view: FacultyView,
    pub source: Source,
    pub desk: String,
    pub clock: Option<DeskClock>,
}

/// Everything a batch changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// One per change, in order.
    pub decisions: Vec<Decision>,
    /// Desks whose state changed (each once, in first-change order).
    pub desks: Vec<String>,
    /// Faculty rows' new versions, in order; a row may appear more than once.
    pub events: Vec<PlannedEvent>,
}

impl Plan {
    /// The faculty rows that changed, each once, as of its newest event.
    pub fn faculty_rows(&self) -> impl Iterator<Item = &FacultyView> {
        let mut newest: HashMap<i64, usize> = HashMap::with_capacity(self.events.len());
        for (i, ev) in self.events.iter().enumerate() {
            newest.insert(ev.view.id, i);
        }
        let mut at: Vec<usize> = newest.into_values().collect();
        at.sort_unstable();
        at.into_iter().map(|i| &self.events[i].view)
    }
}

/// Decides `changes` in order against the states read. `desks` and `faculty` are updated in place
/// (each change builds on the ones before it in the batch); `now` (Unix ms) stamps what changed.
pub fn plan(
    changes: &[Change],
    desks: &mut HashMap<String, DeskState>,
    faculty: &mut HashMap<i64, FacultyState>,
    now: i64,
) -> Plan {
    let mut plan = Plan { decisions: Vec::with_capacity(changes.len()), ..Plan::default() };
    for change in changes {
        let Some(desk) = desks.get_mut(change.desk()) else {
            plan.decisions.push(Decision::UnknownDesk);
            continue;
        };
        let record = desk.record;
        let (next, visible, source, clock) = match change {
            Change::Message { message, .. } => match record.apply(*message) {
                DeskUpdate::Stale => {
                    plan.decisions.push(Decision::Stale);
                    continue;
                }
                DeskUpdate::Implausible => {
                    plan.decisions.push(Decision::Implausible);
                    continue;
                }
                DeskUpdate::Applied { record: next, visible } => {
                    desk.last_seen = Some(now);
                    (next, visible, Source::Desk, Some(message.clock()))
                }
            },
            Change::TimeOut { silent_before, .. } => {
                // Re-checked against the state read in the transaction: the desk may have spoken since.
                let silent = desk.last_seen.is_none_or(|seen| seen < *silent_before);
                match record.time_out().filter(|_| silent) {
                    Some(next) => (next, true, Source::Timeout, record.last),
                    None => {
                        plan.decisions.push(Decision::Stale);
                        continue;
                    }
                }
            }
        };
        desk.record = next;
        if !plan.desks.iter().any(|d| d == change.desk()) {
            plan.desks.push(change.desk().to_owned());
        }
        let row = match desk.faculty_id {
            Some(fid) if visible => faculty.get_mut(&fid),
            _ => None,
        };
        let Some(f) = row else {
            plan.decisions.push(Decision::Applied { event: None });
            continue;
        };
        let view = faculty_view(f, &next, desk.last_seen, now);
        f.version = view.version;
        f.status = view.status;
        f.changed_at = view.changed_at;
        plan.decisions.push(Decision::Applied { event: Some(plan.events.len()) });
        plan.events.push(PlannedEvent { view, source, desk: change.desk().to_owned(), clock });
    }
    plan
}

/// The faculty row after its desk's record became `desk`: the new view, version bumped.
fn faculty_view(f: &FacultyState, desk: &DeskRecord, last_seen: Option<i64>, now: i64) -> FacultyView {
    let inputs = DeskInputs { online: desk.online, present: desk.present, busy: desk.busy };
    let status = status::derive(StatusInputs { desk: Some(inputs), admin_override: f.admin_override.as_ref() }, now);
    let active = f.admin_override.as_ref().filter(|ov| ov.is_active(now));
    FacultyView {
        id: f.id,
        name: f.name.clone(),
        department: f.department.clone(),
        status,
        present: desk.present,
        busy: desk.busy,
        desk_online: desk.online,
        last_seen,
        changed_at: if status == f.status { f.changed_at } else { now },
        waiting: f.waiting,
        note: active.and_then(|ov| Some(ov.note.clone()).filter(|n| !n.is_empty())),
        until: active.and_then(|ov| ov.expires_at),
        active: f.active,
        hours: f.hours.clone(),
        version: f.version + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(boot: u32, seq: u64) -> DeskClock {
        DeskClock::new(boot, seq)
    }

    fn world() -> (HashMap<String, DeskState>, HashMap<i64, FacultyState>) {
        let desk = |fid| DeskState { faculty_id: fid, record: DeskRecord::default(), last_seen: None };
        let desks = HashMap::from([("a".to_owned(), desk(Some(1))), ("spare".to_owned(), desk(None))]);
        let ada = FacultyState {
            id: 1,
            name: "Ada".into(),
            department: "CS".into(),
            status: Status::Offline,
            admin_override: None,
            changed_at: 0,
            waiting: 0,
            active: true,
            hours: vec![],
            version: 4,
        };
        (desks, HashMap::from([(1, ada)]))
    }

    fn msg(desk: &str, message: DeskMessage) -> Change {
        Change::Message { desk: desk.into(), message }
    }

    #[test]
    fn each_visible_change_is_one_version_and_one_event_in_order() {
        let (mut desks, mut faculty) = world();
        let changes = [
            msg("a", DeskMessage::Online { clock: c(1, 1), online: true }),
            msg("a", DeskMessage::State { clock: c(1, 2), present: true, busy: false }),
            msg("a", DeskMessage::Heartbeat { clock: c(1, 3) }),
            msg("a", DeskMessage::State { clock: c(1, 2), present: true, busy: false }),
            msg("ghost", DeskMessage::Heartbeat { clock: c(1, 1) }),
            msg("spare", DeskMessage::Online { clock: c(1, 1), online: true }),
        ];
        let plan = plan(&changes, &mut desks, &mut faculty, 1_000);
        assert_eq!(
            plan.decisions,
            [
                Decision::Applied { event: Some(0) },
                Decision::Applied { event: Some(1) },
                Decision::Applied { event: None },
                Decision::Stale,
                Decision::UnknownDesk,
                Decision::Applied { event: None },
            ]
        );
        let seen: Vec<_> = plan.events.iter().map(|e| (e.view.version, e.view.status)).collect();
        assert_eq!(seen, [(5, Status::Away), (6, Status::Available)]);
        assert_eq!(plan.desks, ["a", "spare"]);
        assert_eq!(plan.faculty_rows().map(|v| v.version).collect::<Vec<_>>(), [6]);
        assert_eq!((faculty[&1].version, faculty[&1].status, faculty[&1].changed_at), (6, Status::Available, 1_000));
        assert_eq!(desks["a"].last_seen, Some(1_000));
    }

    #[test]
    fn a_time_out_is_rechecked_against_the_desks_last_message() {
        let (mut desks, mut faculty) = world();
        plan(&[msg("a", DeskMessage::Online { clock: c(1, 1), online: true })], &mut desks, &mut faculty, 5_000);
        let spoke_since = plan(
            &[Change::TimeOut { desk: "a".into(), silent_before: 4_000 }],
            &mut desks.clone(),
            &mut faculty.clone(),
            9_000,
        );
        assert_eq!(spoke_since.decisions, [Decision::Stale]);
        let silent =
            plan(&[Change::TimeOut { desk: "a".into(), silent_before: 6_000 }], &mut desks, &mut faculty, 9_000);
        assert_eq!(silent.decisions, [Decision::Applied { event: Some(0) }]);
        assert_eq!((silent.events[0].source, silent.events[0].view.status), (Source::Timeout, Status::Offline));
    }

    #[test]
    fn an_active_override_keeps_the_status_but_not_the_inputs() {
        let (mut desks, mut faculty) = world();
        faculty.get_mut(&1).unwrap().admin_override =
            Some(AdminOverride { status: Status::Away, note: "In class".into(), expires_at: None });
        faculty.get_mut(&1).unwrap().status = Status::Away;
        let p =
            plan(&[msg("a", DeskMessage::Online { clock: c(1, 1), online: true })], &mut desks, &mut faculty, 1_000);
        let v = &p.events[0].view;
        assert_eq!((v.status, v.desk_online, v.changed_at), (Status::Away, true, 0));
    }
}
