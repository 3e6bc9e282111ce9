//! Consultation requests: placing one, every later change of its state, the desk's queue, the
//! student's view. Each change is one transaction that compare-and-sets the request's version,
//! keeps the faculty member's `waiting` count and queue version (and the places in line) right,
//! logs the events, and only then publishes them.

use crate::rows::FacultyRow;
use crate::tx::Tx;
use crate::{Result, Store, StoreError, now_ms};
use domain::consultation::{self as rules, Action, Input, Limit, State};
use domain::protocol::{QueueFaculty, QueueItem, QueueSnapshot};
use domain::status::Status;
use domain::{DeskClock, FacultyEvent, RequestView};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

mod bulk;

/// A request a student is placing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRequest {
    pub student_id: i64,
    pub faculty_id: i64,
    pub course: Option<String>,
    pub message: String,
    /// Wait for a faculty member who is away or offline (else such a request is refused).
    pub hold: bool,
}

/// Why a request cannot be placed (the student is told).
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("{0}")]
    Invalid(&'static str, &'static str),
    #[error("That faculty member is {0} now.")]
    Away(Status),
    #[error("{}", .0.message())]
    Limit(Limit),
    #[error("no such faculty member")]
    NoFaculty,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for PlaceError {
    fn from(e: sqlx::Error) -> Self {
        PlaceError::Store(e.into())
    }
}

/// Who asks for a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// The student who placed the request.
    Student(i64),
    /// An admin (cancelling with a reason): the change writes this audit entry (with the reason)
    /// in its transaction.
    Admin(Box<crate::AuditEntry>),
    /// A desk unit's reply, with its clock.
    Desk { desk: String, clock: DeskClock },
    /// The server itself (release, expiry).
    System,
}

/// Which requests the admin lists; `None` fields match everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestFilter {
    pub state: Option<State>,
    /// Only requests that are not finished (ignored when `state` is given).
    pub open_only: bool,
    pub faculty_id: Option<i64>,
    /// Requested at or after (Unix ms).
    pub from: Option<i64>,
    /// Requested before (Unix ms).
    pub to: Option<i64>,
}

/// A request as the admin sees it: who asked whom.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct AdminRequest {
    pub id: i64,
    pub state: String,
    pub course: Option<String>,
    pub message: String,
    pub note: Option<String>,
    pub requested_at: i64,
    pub changed_at: i64,
    pub version: i64,
    pub faculty_id: i64,
    pub faculty_name: String,
    pub student_number: String,
    pub student_name: String,
}

/// What became of a desk's reply or ack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeskOutcome {
    Applied,
    /// Older than (or equal to) the last reply applied, or not fitting the request's state.
    Stale,
    /// No such request.
    UnknownRequest,
    /// The request is not for the faculty member this desk is bound to.
    WrongDesk,
}

impl DeskOutcome {
    /// The rejection label (`consultease_mqtt_rejected_total{reason}`) for refused ones.
    pub fn reject_label(self) -> Option<&'static str> {
        match self {
            DeskOutcome::UnknownRequest => Some("unknown_request"),
            DeskOutcome::WrongDesk => Some("wrong_desk"),
            _ => None,
        }
    }
}

/// A committed change of a request, for the student's stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestEvent {
    pub id: i64,
    pub student_id: i64,
    pub request: RequestView,
}

#[derive(Clone, Debug, sqlx::FromRow)]
struct Row {
    id: i64,
    student_id: i64,
    faculty_id: i64,
    course: Option<String>,
    message: String,
    state: String,
    note: Option<String>,
    requested_at: i64,
    changed_at: i64,
    queued_in: Option<i64>,
    reply_boot: Option<i64>,
    reply_seq: Option<i64>,
    accepted_at: Option<i64>,
    finished_at: Option<i64>,
    position: Option<i64>,
    version: i64,
}

const ROW_COLUMNS: &str = "id, student_id, faculty_id, course, message, state, note, requested_at, changed_at, \
     queued_in, reply_boot, reply_seq, accepted_at, finished_at, position, version";

impl Row {
    fn state(&self) -> Result<State> {
        State::parse(&self.state).ok_or_else(|| StoreError::Corrupt(format!("request state {:?}", self.state)))
    }
}

/// Where a queued placement's outcome goes.
type Answer = tokio::sync::oneshot::Sender<std::result::Result<RequestView, PlaceError>>;

/// Placements waiting for the next group commit (see [`Store::place_request`]).
pub(crate) type Placements = crate::group::Group<(NewRequest, Answer)>;

/// A desk's ack or answer (applied in batches with [`Store::desk_answers`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeskWork {
    /// The desk shows queue `version`.
    Ack { desk: String, version: i64 },
    /// A button pressed on the desk.
    Reply { desk: String, clock: DeskClock, request: i64, action: Action, note: Option<String> },
}

/// One transaction's work on requests: what it has read (each desk binding and faculty member's
/// line once per transaction, however many requests of a batch touch them; a batch of desk answers
/// reads all of it up front, [`bulk::prefetch`]), the requests it changed (kept here, written
/// together before the commit), the lines it changed (settled together, just before the commit)
/// and what it publishes after the commit.
///
/// Why: each SQL statement is a round trip to the database's connection (for SQLite, to its
/// worker thread), and the writes are serial. Settling a line after every change, reading a desk's
/// binding and request for every reply, logging each change as it happened, and reading each
/// changed request's view after the commit (four statements per event) made about 36 round trips
/// per request on the ingest's path; with the batch's reads shared, one settle per line, one
/// event per changed request logged in one statement and the views read in one, about 8
/// (`loadgen --consult`, BENCHMARKS.md row 8b).
#[derive(Default)]
struct Changes {
    /// Faculty members' lines as this transaction found them (and as `settle` left them).
    lines: HashMap<i64, FacultyLine>,
    /// Desk → the faculty member it is bound to.
    desks: HashMap<String, Option<i64>>,
    /// Faculty members whose line changed here, and whether their desk's queue did.
    unsettled: BTreeMap<i64, bool>,
    /// Requests as this transaction has them (read once, kept as it changes them).
    rows: HashMap<i64, Row>,
    /// Requests changed here and not written yet, with the version read (the compare-and-set of
    /// their one write, [`bulk::flush`], before anything reads them by SQL again).
    dirty: BTreeMap<i64, i64>,
    /// Faculty members all of whose queued requests are in `rows` (what an ack may deliver).
    queued_of: BTreeSet<i64>,
    /// Requests changed here: each gets one event in the log, with the version it commits.
    changed: BTreeSet<i64>,
    /// The board's events.
    board: Vec<Arc<FacultyEvent>>,
    /// Faculty members whose desk queue changed.
    queues: Vec<i64>,
}

/// What the line rules need of a faculty member's row.
#[derive(Clone, Copy, Debug, sqlx::FromRow)]
struct FacultyLine {
    id: i64,
    version: i64,
    waiting: i64,
    queue_version: i64,
}

/// The default when a faculty member has too little history for a wait estimate.
const RECENT_DURATIONS: i64 = 20;

/// The most placements one group commit takes; the rest wait for the next, after the desks' answers
/// waiting for the write order have had their turn.
///
/// Why: the desks' answers are what empties the lines, and the ingest takes them in batches of
/// bounded size, while a placement group took everything waiting. Once behind, groups grew to a
/// thousand placements holding the write order for 300-500 ms each, the ingest got one batch a
/// second between them, lines grew, and every answer cost more (each moves the rest of its line):
/// a 40 s run at 2,000 requests/s went from all answered to 879/s (`loadgen --consult`,
/// BENCHMARKS.md row 8b‴).
const PLACEMENT_GROUP_MAX: usize = 128;

impl Store {
    /// Places a request: queued when the faculty member takes requests now (available or busy),
    /// held when they are away or offline and the student chose to wait, refused otherwise.
    pub async fn place_request(&self, new: &NewRequest) -> std::result::Result<RequestView, PlaceError> {
        let course = new.course.as_deref().map(str::trim).filter(|c| !c.is_empty());
        if let Some(c) = course {
            rules::check_course(c).map_err(|e| PlaceError::Invalid("course", e))?;
        }
        rules::check_message(&new.message).map_err(|e| PlaceError::Invalid("message", e))?;
        let (answer, answered) = tokio::sync::oneshot::channel();
        // Group commit (`crate::group`): placements waiting together are placed in one
        // transaction. Why: each placement on its own was a transaction of ~13 round trips to the
        // database, one writer at a time; placed together, the transaction's own statements
        // (begin, the event log, the views, commit) are shared by the group.
        if let Some(lead) = self.placements.push((new.clone(), answer)) {
            // In a task of its own: the others' placements it carries must not be cancelled with
            // this request (a client that goes away drops its handler's future).
            let store = self.clone();
            tokio::spawn(async move { store.lead_placements(lead).await });
        }
        answered
            .await
            .unwrap_or_else(|_| Err(PlaceError::Store(StoreError::Corrupt("a placement went unanswered".into()))))
    }

    /// Places what waits, a group of at most [`PLACEMENT_GROUP_MAX`] at a time, until nothing does.
    async fn lead_placements(&self, lead: crate::group::Lead<(NewRequest, Answer)>) {
        loop {
            let t0 = std::time::Instant::now();
            let order = self.write_order.lock().await;
            let waited = t0.elapsed();
            let Some(group) = lead.take_up_to(PLACEMENT_GROUP_MAX) else { return };
            let (n, t1) = (group.len(), std::time::Instant::now());
            self.place_group(group).await;
            tracing::debug!(n, ?waited, placing = ?t1.elapsed(), "placement group timing");
            drop(order);
        }
    }

    /// Places a group of requests in one transaction and answers each. When the transaction fails
    /// as a whole, each is placed alone (so that one cannot fail the others).
    async fn place_group(&self, group: Vec<(NewRequest, Answer)>) {
        let (news, answers): (Vec<NewRequest>, Vec<Answer>) = group.into_iter().unzip();
        match self.place_all(&news).await {
            Ok(results) => {
                for (answer, result) in answers.into_iter().zip(results) {
                    let _ = answer.send(result);
                }
            }
            Err(e) if news.len() > 1 => {
                tracing::warn!(error = %e, group = news.len(), "placements failed together; placing them one by one");
                for (new, answer) in news.iter().zip(answers) {
                    let result = match self.place_all(std::slice::from_ref(new)).await {
                        Ok(mut results) => results.pop().unwrap_or_else(|| {
                            Err(PlaceError::Store(StoreError::Corrupt(
                                "a placement placed alone gave no outcome".into(),
                            )))
                        }),
                        Err(e) => Err(e.into()),
                    };
                    let _ = answer.send(result);
                }
            }
            Err(e) => {
                if let Some(answer) = answers.into_iter().next() {
                    let _ = answer.send(Err(e.into()));
                }
            }
        }
    }

    /// Places `news` in one transaction, each judged against the state the ones before it left
    /// (the rules, the line). The caller holds the write order.
    ///
    /// Set-wise: the group's students locked, faculty rows and students' counts read, and the
    /// placed requests inserted, one statement each (per [`bulk`] run) rather than per request.
    /// Why: at 2,000 requests/s the per-request statements made a group of 50 take 14 ms of the
    /// write order (`loadgen --consult`, BENCHMARKS.md row 8b).
    async fn place_all(&self, news: &[NewRequest]) -> Result<Vec<std::result::Result<RequestView, PlaceError>>> {
        let now = now_ms();
        let mut tx = self.event_tx().await?;
        let mut ch = Changes::default();
        let mut students: Vec<i64> = news.iter().map(|n| n.student_id).collect();
        students.sort_unstable();
        students.dedup();
        lock_students(&mut tx, &students).await?;
        let fids: Vec<i64> = news.iter().map(|n| n.faculty_id).collect();
        let faculty = bulk::faculty_rows(&mut tx, &fids).await?;
        // (student, faculty member) → (open requests, requested in the last hour).
        let mut counts = bulk::student_counts(&mut tx, &students, now - 3_600_000).await?;
        // Each student's (open requests, requested in the last hour) over all faculty members.
        let mut totals: HashMap<i64, (i64, i64)> = HashMap::new();
        for ((sid, _), (o, h)) in &counts {
            let t = totals.entry(*sid).or_default();
            t.0 += o;
            t.1 += h;
        }
        // Requests placed in this transaction, per faculty member (their places in line).
        let mut added: HashMap<i64, i64> = HashMap::new();
        let mut placing: Vec<bulk::Placing> = Vec::new();
        let mut outcomes: Vec<std::result::Result<usize, PlaceError>> = Vec::with_capacity(news.len());
        for new in news {
            let Some(f) = faculty.get(&new.faculty_id).filter(|f| f.active) else {
                outcomes.push(Err(PlaceError::NoFaculty));
                continue;
            };
            let status = crate::rows::parse_status(&f.status)?;
            let (open, last_hour) = totals.get(&new.student_id).copied().unwrap_or_default();
            let with_faculty = counts.get(&(new.student_id, new.faculty_id)).map_or(0, |(o, _)| *o);
            if let Err(limit) = rules::check_limits(with_faculty as usize, open as usize, last_hour as usize) {
                outcomes.push(Err(PlaceError::Limit(limit)));
                continue;
            }
            let accepting = matches!(status, Status::Available | Status::Busy);
            if !accepting && !new.hold {
                outcomes.push(Err(PlaceError::Away(status)));
                continue;
            }
            let state = if accepting { State::Queued } else { State::Held };
            ch.lines.entry(f.id).or_insert(FacultyLine {
                id: f.id,
                version: f.version,
                waiting: f.waiting,
                queue_version: f.queue_version,
            });
            let before = added.entry(f.id).or_default();
            *before += 1;
            for seen in
                [counts.entry((new.student_id, new.faculty_id)).or_default(), totals.entry(new.student_id).or_default()]
            {
                seen.0 += 1;
                seen.1 += 1;
            }
            // Entering the queue: in the version this transaction commits (see `settle_lines`); at
            // the end of the line (which `settle_lines` checks).
            placing.push(bulk::Placing {
                student_id: new.student_id,
                faculty_id: new.faculty_id,
                course: new.course.as_deref().map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned),
                message: new.message.trim().to_owned(),
                state,
                queued_in: accepting.then_some(f.queue_version + 1),
                position: f.waiting + *before,
            });
            *ch.unsettled.entry(f.id).or_default() |= accepting;
            outcomes.push(Ok(placing.len() - 1));
        }
        let ids = bulk::insert_requests(&mut tx, &placing, now).await?;
        ch.changed.extend(ids.iter().copied());
        let mut views = if ids.is_empty() {
            tx.rollback().await?;
            HashMap::new()
        } else {
            self.finish(tx, ch, now, &ids).await?
        };
        Ok(outcomes
            .into_iter()
            .map(|o| {
                let id = ids.get(o?).copied();
                id.and_then(|id| views.remove(&id))
                    .ok_or_else(|| PlaceError::Store(StoreError::Corrupt("placed request vanished".into())))
            })
            .collect())
    }

    /// Applies `input` to request `id` for `actor`. Returns the request's new view, or `None` when
    /// the input changes nothing (a late or repeated answer, a state that does not take it).
    /// A student may act only on their own requests (anyone else's is `NotFound`).
    pub async fn change_request(
        &self,
        id: i64,
        input: Input,
        actor: &Actor,
        note: Option<&str>,
    ) -> Result<Option<RequestView>> {
        let now = now_ms();
        let _order = self.write_order.lock().await;
        let mut tx = self.event_tx().await?;
        let mut ch = Changes::default();
        let Some(row) = request_row(&mut tx, id, &mut ch).await? else {
            tx.rollback().await?;
            return Err(StoreError::NotFound(format!("no request {id}")));
        };
        if let Actor::Student(sid) = actor
            && *sid != row.student_id
        {
            tx.rollback().await?;
            return Err(StoreError::NotFound(format!("no request {id}")));
        }
        let changed = self.apply_input(&mut tx, &row, input, actor, note, now, &mut ch).await?;
        if !changed {
            tx.rollback().await?;
            return Ok(None);
        }
        if let Actor::Admin(entry) = actor {
            let detail = serde_json::json!({ "request": id, "input": format!("{input:?}"), "reason": note });
            let entry = crate::AuditEntry { detail: Some(detail.to_string()), ..(**entry).clone() };
            on_tx!(&mut tx, c => crate::sessions::audit_in!(&mut **c, &entry)?);
        }
        Ok(self.finish(tx, ch, now, &[id]).await?.remove(&id))
    }

    /// A desk's answer to a request: applied when the desk is bound to the request's faculty
    /// member, the clock is newer than the last answer applied, and the state takes it.
    pub async fn desk_reply(
        &self,
        desk: &str,
        clock: DeskClock,
        request: i64,
        action: Action,
        note: Option<&str>,
    ) -> Result<DeskOutcome> {
        let work = DeskWork::Reply { desk: desk.to_owned(), clock, request, action, note: note.map(str::to_owned) };
        Ok(self.desk_answers(std::slice::from_ref(&work)).await?.pop().unwrap_or(DeskOutcome::Stale))
    }

    /// A desk shows queue `version` of its faculty member: the requests queued in that version or
    /// before are delivered. Returns how many changed.
    pub async fn queue_ack(&self, desk: &str, version: i64) -> Result<usize> {
        let now = now_ms();
        let _order = self.write_order.lock().await;
        let mut tx = self.event_tx().await?;
        let mut ch = Changes::default();
        let n = self.ack_in(&mut tx, desk, version, now, &mut ch).await?;
        if n == 0 {
            tx.rollback().await?;
            return Ok(0);
        }
        self.finish(tx, ch, now, &[]).await?;
        Ok(n)
    }

    /// Desks' acks and answers, in order, in one transaction (one commit and one publication for
    /// a whole ingest batch). Each is judged exactly as [`Store::queue_ack`] and
    /// [`Store::desk_reply`] would, against the state the ones before it left.
    ///
    /// Why one transaction: each ack or answer on its own cost a transaction and a publication
    /// (the request's view, the desk's queue) of its own; with a desk acknowledging, accepting and
    /// finishing each request, those were three per request and bounded the consultation loop near
    /// 170 requests/s (`loadgen --consult`, BENCHMARKS.md row 8b).
    pub async fn desk_answers(&self, work: &[DeskWork]) -> Result<Vec<DeskOutcome>> {
        let turn = self.write_turn().await;
        self.desk_answers_in_turn(&turn, work).await
    }

    /// [`Store::desk_answers`] in a turn of the write order the caller holds.
    pub async fn desk_answers_in_turn(&self, turn: &crate::WriteTurn, work: &[DeskWork]) -> Result<Vec<DeskOutcome>> {
        self.check_turn(turn)?;
        let now = now_ms();
        let t0 = std::time::Instant::now();
        let mut tx = self.event_tx().await?;
        let mut ch = Changes::default();
        bulk::prefetch(&mut tx, work, &mut ch).await?;
        let mut outcomes = Vec::with_capacity(work.len());
        for w in work {
            let outcome = match w {
                DeskWork::Ack { desk, version } => match self.ack_in(&mut tx, desk, *version, now, &mut ch).await? {
                    0 => DeskOutcome::Stale,
                    _ => DeskOutcome::Applied,
                },
                DeskWork::Reply { desk, clock, request, action, note } => {
                    self.reply_in(&mut tx, desk, *clock, *request, *action, note.as_deref(), now, &mut ch).await?
                }
            };
            outcomes.push(outcome);
        }
        if !outcomes.contains(&DeskOutcome::Applied) {
            tx.rollback().await?;
            return Ok(outcomes);
        }
        self.finish(tx, ch, now, &[]).await?;
        tracing::debug!(n = work.len(), total = ?t0.elapsed(), "desk answers timing");
        Ok(outcomes)
    }

    /// A desk's answer inside the caller's transaction (nothing written unless it applies).
    #[allow(clippy::too_many_arguments)]
    async fn reply_in(
        &self,
        tx: &mut Tx,
        desk: &str,
        clock: DeskClock,
        request: i64,
        action: Action,
        note: Option<&str>,
        now: i64,
        ch: &mut Changes,
    ) -> Result<DeskOutcome> {
        let Some(row) = request_row(tx, request, ch).await? else { return Ok(DeskOutcome::UnknownRequest) };
        if desk_faculty(tx, desk, ch).await? != Some(row.faculty_id) {
            return Ok(DeskOutcome::WrongDesk);
        }
        let last = match (row.reply_boot, row.reply_seq) {
            (Some(b), Some(s)) => Some((b, s)),
            _ => None,
        };
        let this = (i64::from(clock.boot), i64::try_from(clock.seq).unwrap_or(i64::MAX));
        if last.is_some_and(|l| this <= l) {
            return Ok(DeskOutcome::Stale);
        }
        let actor = Actor::Desk { desk: desk.to_owned(), clock };
        let changed = self.apply_input(tx, &row, Input::Reply(action), &actor, note, now, ch).await?;
        Ok(if changed { DeskOutcome::Applied } else { DeskOutcome::Stale })
    }

    /// A desk's queue ack inside the caller's transaction. Returns how many requests it delivered.
    async fn ack_in(&self, tx: &mut Tx, desk: &str, version: i64, now: i64, ch: &mut Changes) -> Result<usize> {
        let Some(fid) = desk_faculty(tx, desk, ch).await? else { return Ok(0) };
        if !ch.queued_of.contains(&fid) {
            bulk::load_queued(tx, &[fid], ch).await?;
        }
        // Every request of the line queued in that version or before, as this transaction has it.
        let mut due: Vec<Row> = ch
            .rows
            .values()
            .filter(|r| r.faculty_id == fid && r.state == State::Queued.as_str())
            .filter(|r| r.queued_in.is_some_and(|q| q <= version))
            .cloned()
            .collect();
        due.sort_unstable_by_key(|r| r.id);
        let mut n = 0;
        for row in &due {
            if self.apply_input(tx, row, Input::Delivered, &Actor::System, None, now, ch).await? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// The faculty member is available: their held requests join the queue. Returns how many.
    pub async fn release_held(&self, faculty_id: i64) -> Result<usize> {
        self.bulk_input(
            "SELECT {ROW_COLUMNS} FROM requests WHERE faculty_id = $1 AND state = 'held' ORDER BY requested_at, id",
            faculty_id,
            Input::Release,
        )
        .await
    }

    /// Expires held requests older than `hold_ms` and open ones older than `open_ms`. Returns how many.
    pub async fn expire_requests(&self, hold_ms: i64, open_ms: i64) -> Result<usize> {
        let now = now_ms();
        let ids: Vec<i64> = on_db!(&self.db, pool => {
            sqlx::query_scalar(
                "SELECT id FROM requests WHERE (state = 'held' AND requested_at < $1) \
                 OR (state IN ('queued','delivered','busy','accepted') AND requested_at < $2) ORDER BY id LIMIT 500",
            )
            .bind(now - hold_ms)
            .bind(now - open_ms)
            .fetch_all(pool)
            .await?
        });
        let mut n = 0;
        for id in ids {
            if self.change_request(id, Input::Expire, &Actor::System, None).await?.is_some() {
                n += 1;
            }
        }
        Ok(n)
    }

    async fn bulk_input(&self, select: &str, faculty_id: i64, input: Input) -> Result<usize> {
        let now = now_ms();
        let _order = self.write_order.lock().await;
        let mut tx = self.event_tx().await?;
        let sql = select.replace("{ROW_COLUMNS}", ROW_COLUMNS);
        let rows: Vec<Row> = on_tx!(&mut tx, c => sqlx::query_as(&sql).bind(faculty_id).fetch_all(&mut **c).await?);
        let mut ch = Changes::default();
        let mut n = 0;
        for row in &rows {
            if self.apply_input(&mut tx, row, input, &Actor::System, None, now, &mut ch).await? {
                n += 1;
            }
        }
        if n == 0 {
            tx.rollback().await?;
            return Ok(0);
        }
        self.finish(tx, ch, now, &[]).await?;
        Ok(n)
    }

    /// One input on one request inside the caller's transaction: the request's new state (written
    /// before the commit, compare-and-set on the version read) and its faculty member's line to
    /// settle. Returns whether anything changed.
    #[allow(clippy::too_many_arguments)]
    async fn apply_input(
        &self,
        tx: &mut Tx,
        row: &Row,
        input: Input,
        actor: &Actor,
        note: Option<&str>,
        now: i64,
        ch: &mut Changes,
    ) -> Result<bool> {
        let from = row.state()?;
        let Some(to) = rules::next(from, input) else { return Ok(false) };
        let line = faculty_line(tx, row.faculty_id, ch)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("request {} without its faculty member", row.id)))?;
        // Any change on the desk gives the queue a new version (one per transaction, taken when
        // its lines settle); a request entering the queue enters it in that version.
        let queue_changed = from.on_desk() || to.on_desk();
        let queued_in = if to == State::Queued { Some(line.queue_version + 1) } else { row.queued_in };
        let (reply_boot, reply_seq) = match actor {
            Actor::Desk { clock, .. } => {
                (Some(i64::from(clock.boot)), Some(i64::try_from(clock.seq).unwrap_or(i64::MAX)))
            }
            _ => (row.reply_boot, row.reply_seq),
        };
        let note: Option<String> =
            note.map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).or_else(|| row.note.clone());
        let accepted_at = if to == State::Accepted { Some(now) } else { row.accepted_at };
        let finished_at = if to.is_terminal() { Some(now) } else { row.finished_at };
        // Written once, with the transaction's other changed requests, by `bulk::flush`; a request
        // leaving the line forgets its place here (the line's settle numbers the rest).
        let now_row = Row {
            state: to.as_str().to_owned(),
            note,
            changed_at: now,
            queued_in,
            reply_boot,
            reply_seq,
            accepted_at,
            finished_at,
            position: row.position.filter(|_| to.waiting()),
            version: row.version + 1,
            ..row.clone()
        };
        ch.dirty.entry(row.id).or_insert(row.version);
        ch.rows.insert(row.id, now_row);
        ch.changed.insert(row.id);
        *ch.unsettled.entry(row.faculty_id).or_default() |= queue_changed;
        Ok(true)
    }

    /// Writes the changed requests, then settles every line this transaction changed, all of them
    /// together: recomputes the places in line (bumping the requests whose place moved), each
    /// waiting count (a new faculty version and a board event when it moved) and queue version.
    ///
    /// Why together: a statement per line (read it, renumber it, count it, log it) was four round
    /// trips per faculty member in a batch, tens per ingest batch; set-wise it is five or six in
    /// all (`loadgen --consult`, BENCHMARKS.md row 8b).
    async fn settle_lines(&self, tx: &mut Tx, now: i64, ch: &mut Changes) -> Result<()> {
        bulk::flush(tx, ch).await?;
        let unsettled = std::mem::take(&mut ch.unsettled);
        if unsettled.is_empty() {
            return Ok(());
        }
        let fids: Vec<i64> = unsettled.keys().copied().collect();
        bulk::load_lines(tx, &fids, ch).await?;
        let members = bulk::line_members(tx, &fids).await?;
        let mut waiting: HashMap<i64, i64> = HashMap::new();
        let mut moves: Vec<(i64, i64)> = Vec::new();
        for (fid, id, position) in members {
            let place = waiting.entry(fid).or_default();
            *place += 1;
            if position != Some(*place) {
                moves.push((id, *place));
                ch.rows.remove(&id);
                ch.changed.insert(id);
            }
        }
        bulk::move_places(tx, &moves).await?;
        let mut lines: Vec<(i64, FacultyLine)> = Vec::new();
        let mut recount: Vec<i64> = Vec::new();
        for (fid, queue_changed) in unsettled {
            let f = *ch.lines.get(&fid).ok_or_else(|| StoreError::Corrupt(format!("no faculty member {fid}")))?;
            let now_waiting = waiting.get(&fid).copied().unwrap_or(0);
            if queue_changed {
                ch.queues.push(fid);
            }
            let counted = now_waiting != f.waiting;
            if !(counted || queue_changed) {
                continue;
            }
            // The queue version is the desk's alone; the row's version bumps with what the board shows.
            let line = FacultyLine {
                waiting: now_waiting,
                version: f.version + i64::from(counted),
                queue_version: f.queue_version + i64::from(queue_changed),
                ..f
            };
            lines.push((f.version, line));
            ch.lines.insert(fid, line);
            if counted {
                recount.push(fid);
            }
        }
        bulk::write_lines(tx, &lines).await?;
        // The board's events for the new counts, with the rows as they now are.
        ch.board.extend(bulk::log_faculty_views(&self.bulk, tx, &recount, now, "request").await?);
        Ok(())
    }

    /// Ends a transaction of request changes: settles its lines, logs one event per changed
    /// request, reads their views (in one statement, inside the transaction: they are what it
    /// commits), commits, and
    /// only then publishes the board's events, the desks' queues and the students' events (in
    /// event order). Returns the views of requests `want`.
    async fn finish(&self, mut tx: Tx, mut ch: Changes, now: i64, want: &[i64]) -> Result<HashMap<i64, RequestView>> {
        self.settle_lines(&mut tx, now, &mut ch).await?;
        let mut events = log_events(&mut tx, &ch.changed, now).await?;
        // Fed from the shared log, this instance publishes no request events of its own.
        if self.shared_log {
            events.retain(|(_, request, _)| want.contains(request));
        }
        let mut ids: Vec<i64> = events.iter().map(|(_, request, _)| *request).collect();
        ids.extend(want.iter().filter(|w| !ch.changed.contains(w)));
        let mut views = views_in(&mut tx, &ids).await?;
        let wanted = want.iter().filter_map(|w| views.get(w).map(|v| (*w, v.clone()))).collect();
        tx.commit().await?;
        self.publish_faculty(ch.board);
        // Queue cues stay local too: this instance may be the one publishing queues (the shared
        // log's NOTIFY cues the others), and a cue twice publishes the same queue twice.
        for fid in ch.queues {
            self.queues_bus.publish_one(fid);
        }
        if !self.shared_log {
            for (id, request, student_id) in events {
                if let Some(request) = views.remove(&request) {
                    self.requests_bus.publish_one(Arc::new(RequestEvent { id, student_id, request }));
                }
            }
        }
        Ok(wanted)
    }

    /// One request as its student sees it.
    pub async fn request_view(&self, id: i64) -> Result<Option<RequestView>> {
        Ok(self.request_views(&[id]).await?.remove(&id))
    }

    /// Requests as their students see them, by id (one consistent read).
    pub(crate) async fn request_views(&self, ids: &[i64]) -> Result<HashMap<i64, RequestView>> {
        let mut tx = self.read_tx().await?;
        let views = views_in(&mut tx, ids).await?;
        tx.rollback().await?;
        Ok(views)
    }

    /// Requests as the admin's consultations page lists them, newest first: with their faculty
    /// member and student, filtered by state (or only the open ones), faculty member and time.
    pub async fn admin_requests(&self, filter: &RequestFilter, limit: i64) -> Result<Vec<AdminRequest>> {
        let open = open_states();
        let sql = format!(
            "SELECT r.id, r.state, r.course, r.message, r.note, r.requested_at, r.changed_at, r.version, \
             f.id AS faculty_id, f.name AS faculty_name, s.number AS student_number, s.name AS student_name \
             FROM requests r JOIN faculty f ON f.id = r.faculty_id JOIN students s ON s.id = r.student_id \
             WHERE ($1 IS NULL OR r.state = $1) AND ($2 IS NULL OR r.faculty_id = $2) \
             AND ($3 IS NULL OR r.requested_at >= $3) AND ($4 IS NULL OR r.requested_at < $4) \
             AND ($5 = FALSE OR r.state IN ({open})) ORDER BY r.requested_at DESC, r.id DESC LIMIT $6"
        );
        Ok(on_db!(&self.db, pool => sqlx::query_as(&sql)
            .bind(filter.state.map(State::as_str))
            .bind(filter.faculty_id)
            .bind(filter.from)
            .bind(filter.to)
            .bind(filter.open_only)
            .bind(limit)
            .fetch_all(pool)
            .await?))
    }

    /// The student a request belongs to.
    pub async fn request_owner(&self, id: i64) -> Result<Option<i64>> {
        let sql = "SELECT student_id FROM requests WHERE id = $1";
        Ok(on_db!(&self.db, pool => sqlx::query_scalar(sql).bind(id).fetch_optional(pool).await?))
    }

    /// A student's requests (newest first), and the cursor of their live stream.
    pub async fn student_requests(&self, student_id: i64) -> Result<domain::MyRequests> {
        let mut tx = self.read_tx().await?;
        let (cursor, ids): (i64, Vec<i64>) = on_tx!(&mut tx, c => (
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM request_events WHERE student_id = $1")
                .bind(student_id)
                .fetch_one(&mut **c)
                .await?,
            sqlx::query_scalar("SELECT id FROM requests WHERE student_id = $1 ORDER BY requested_at DESC, id DESC LIMIT 50")
                .bind(student_id)
                .fetch_all(&mut **c)
                .await?,
        ));
        let mut views = views_in(&mut tx, &ids).await?;
        tx.rollback().await?;
        let requests = ids.iter().filter_map(|id| views.remove(id)).collect();
        Ok(domain::MyRequests { cursor, requests })
    }

    /// A student's request events after `cursor` (at most `limit`), each with its request as it is now.
    pub async fn request_events_after(&self, student_id: i64, cursor: i64, limit: i64) -> Result<Vec<RequestEvent>> {
        let sql = "SELECT MAX(id), request_id FROM request_events WHERE student_id = $1 AND id > $2 \
                   GROUP BY request_id ORDER BY MAX(id) LIMIT $3";
        let mut tx = self.read_tx().await?;
        let evs: Vec<(i64, i64)> = on_tx!(&mut tx, c => sqlx::query_as(sql).bind(student_id).bind(cursor).bind(limit).fetch_all(&mut **c).await?);
        let ids: Vec<i64> = evs.iter().map(|(_, request)| *request).collect();
        let mut views = views_in(&mut tx, &ids).await?;
        tx.rollback().await?;
        Ok(evs
            .into_iter()
            .filter_map(|(id, request)| views.remove(&request).map(|request| RequestEvent { id, student_id, request }))
            .collect())
    }

    /// The newest request event id of a student (0 when none).
    pub async fn newest_request_event(&self, student_id: i64) -> Result<i64> {
        let sql = "SELECT COALESCE(MAX(id), 0) FROM request_events WHERE student_id = $1";
        Ok(on_db!(&self.db, pool => sqlx::query_scalar(sql).bind(student_id).fetch_one(pool).await?))
    }

    /// The desk's queue for faculty member `faculty_id`, as it is committed now, and the desk it
    /// goes to (`None` without a bound desk).
    pub async fn queue_snapshot(&self, faculty_id: i64) -> Result<Option<(String, QueueSnapshot)>> {
        Ok(self.queue_snapshots(&[faculty_id]).await?.remove(&faculty_id))
    }

    /// The desks' queues of faculty members `ids` (those with a bound desk), in one consistent
    /// read: faculty member → (desk, queue).
    ///
    /// Why together: the publisher sends every queue that changed since its last round; read one
    /// at a time, each cost five round trips to the database, one at a time behind the writes.
    pub async fn queue_snapshots(&self, ids: &[i64]) -> Result<HashMap<i64, (String, QueueSnapshot)>> {
        type Head = (i64, String, String, String, i64);
        type Item = (i64, i64, String, Option<String>, String, i64, String);
        let mut out = HashMap::with_capacity(ids.len());
        let mut tx = self.read_tx().await?;
        for chunk in padded_chunks(ids) {
            let list = in_list(chunk.len());
            let heads_sql = format!(
                "SELECT f.id, d.id, f.name, f.status, f.queue_version FROM faculty f \
                 JOIN desks d ON d.faculty_id = f.id WHERE f.id IN ({list})"
            );
            let items_sql = format!(
                "SELECT r.faculty_id, r.id, s.name, r.course, r.message, r.requested_at, r.state FROM requests r \
                 JOIN students s ON s.id = r.student_id WHERE r.faculty_id IN ({list}) \
                 AND r.state IN ('queued','delivered','busy','accepted') ORDER BY r.faculty_id, r.requested_at, r.id"
            );
            let (heads, items): (Vec<Head>, Vec<Item>) = on_tx!(&mut tx, c => {
                let mut q = sqlx::query_as(&heads_sql);
                for id in &chunk {
                    q = q.bind(*id);
                }
                let heads = q.fetch_all(&mut **c).await?;
                let mut q = sqlx::query_as(&items_sql);
                for id in &chunk {
                    q = q.bind(*id);
                }
                (heads, q.fetch_all(&mut **c).await?)
            });
            let mut lines: HashMap<i64, Vec<Item>> = HashMap::new();
            for item in items {
                lines.entry(item.0).or_default().push(item);
            }
            for (fid, desk, name, status, version) in heads {
                let status = crate::rows::parse_status(&status)?;
                let line = lines.remove(&fid).unwrap_or_default();
                let total = line.len();
                let items = line
                    .into_iter()
                    .take(QueueSnapshot::MAX_ITEMS)
                    .map(|(_, id, student, course, message, requested_at, state)| {
                        Ok(QueueItem {
                            id,
                            ticket: format!("T{id}"),
                            student,
                            course,
                            message,
                            requested_at,
                            state: State::parse(&state)
                                .ok_or_else(|| StoreError::Corrupt(format!("request state {state:?}")))?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let more = u32::try_from(total.saturating_sub(QueueSnapshot::MAX_ITEMS)).unwrap_or(u32::MAX);
                let snapshot = QueueSnapshot {
                    version,
                    faculty: QueueFaculty { name, status },
                    accepting: matches!(status, Status::Available | Status::Busy),
                    items,
                    more,
                };
                out.insert(fid, (desk, snapshot));
            }
        }
        tx.rollback().await?;
        Ok(out)
    }

    /// Faculty members who are available and have held requests (to release them).
    pub async fn releasable(&self) -> Result<Vec<i64>> {
        let sql = "SELECT DISTINCT r.faculty_id FROM requests r JOIN faculty f ON f.id = r.faculty_id \
                   WHERE r.state = 'held' AND f.status = 'available' ORDER BY r.faculty_id";
        Ok(on_db!(&self.db, pool => sqlx::query_scalar(sql).fetch_all(pool).await?))
    }

    /// Faculty members with a desk and a non-empty queue (to publish at start-up).
    pub async fn faculty_with_queues(&self) -> Result<Vec<i64>> {
        let sql =
            "SELECT f.id FROM faculty f JOIN desks d ON d.faculty_id = f.id WHERE f.queue_version > 0 ORDER BY f.id";
        Ok(on_db!(&self.db, pool => sqlx::query_scalar(sql).fetch_all(pool).await?))
    }
}

/// Faculty member `id`'s line as this transaction has it (read once per transaction).
async fn faculty_line(tx: &mut Tx, id: i64, ch: &mut Changes) -> Result<Option<FacultyLine>> {
    if let Some(line) = ch.lines.get(&id) {
        return Ok(Some(*line));
    }
    let sql = "SELECT id, version, waiting, queue_version FROM faculty WHERE id = $1";
    let line: Option<FacultyLine> = on_tx!(tx, c => sqlx::query_as(sql).bind(id).fetch_optional(&mut **c).await?);
    if let Some(line) = line {
        ch.lines.insert(id, line);
    }
    Ok(line)
}

/// The faculty member desk `desk` is bound to (read once per transaction).
async fn desk_faculty(tx: &mut Tx, desk: &str, ch: &mut Changes) -> Result<Option<i64>> {
    if let Some(bound) = ch.desks.get(desk) {
        return Ok(*bound);
    }
    let bound: Option<Option<i64>> = on_tx!(tx, c => {
        sqlx::query_scalar("SELECT faculty_id FROM desks WHERE id = $1").bind(desk).fetch_optional(&mut **c).await?
    });
    let bound = bound.flatten();
    ch.desks.insert(desk.to_owned(), bound);
    Ok(bound)
}

/// Request `id` as this transaction has it.
async fn request_row(tx: &mut Tx, id: i64, ch: &mut Changes) -> Result<Option<Row>> {
    if let Some(row) = ch.rows.get(&id) {
        return Ok(Some(row.clone()));
    }
    let sql = format!("SELECT {ROW_COLUMNS} FROM requests WHERE id = $1");
    let row: Option<Row> = on_tx!(tx, c => sqlx::query_as(&sql).bind(id).fetch_optional(&mut **c).await?);
    if let Some(row) = &row {
        ch.rows.insert(id, row.clone());
    }
    Ok(row)
}

/// Logs one event per changed request, each with the version the transaction leaves it at (a
/// student's stream shows a request as it is, so changes committed together are one event).
/// Returns (event, request, student), in event order.
async fn log_events(tx: &mut Tx, changed: &BTreeSet<i64>, now: i64) -> Result<Vec<(i64, i64, i64)>> {
    let ids: Vec<i64> = changed.iter().copied().collect();
    let mut events = Vec::with_capacity(ids.len());
    for chunk in padded_chunks(&ids) {
        let sql = format!(
            "INSERT INTO request_events (request_id, student_id, version, at) \
             SELECT id, student_id, version, $1 FROM requests WHERE id IN ({}) ORDER BY id \
             RETURNING id, request_id, student_id",
            in_list_from(2, chunk.len())
        );
        let logged: Vec<(i64, i64, i64)> = on_tx!(tx, c => {
            let mut q = sqlx::query_as(&sql).bind(now);
            for id in &chunk {
                q = q.bind(*id);
            }
            q.fetch_all(&mut **c).await?
        });
        events.extend(logged);
    }
    events.sort_unstable();
    Ok(events)
}

/// At most this many ids in one `IN (…)` list (SQLite allows 32,766 parameters, PostgreSQL 65,535).
const IN_LIST_MAX: usize = 512;

/// `ids` in chunks of at most [`IN_LIST_MAX`], each padded (with its last id again) to a power of
/// two. Why: each length of an `IN (…)` list is a statement of its own in the connection's cache of
/// prepared statements (100 by default); batches of every size from 1 to 500 would evict the
/// store's fixed statements. Padded, a query has at most ten shapes. A repeated id matches the
/// same row once.
fn padded_chunks<T: Clone>(ids: &[T]) -> impl Iterator<Item = Vec<T>> + '_ {
    padded_chunks_of(ids, IN_LIST_MAX)
}

/// [`padded_chunks`] of at most `max` (a power of two).
fn padded_chunks_of<T: Clone>(ids: &[T], max: usize) -> impl Iterator<Item = Vec<T>> + '_ {
    ids.chunks(max).map(|chunk| {
        let mut padded = chunk.to_vec();
        if let Some(last) = chunk.last() {
            padded.resize(chunk.len().next_power_of_two(), last.clone());
        }
        padded
    })
}

/// `$1, $2, …, $n`.
fn in_list(n: usize) -> String {
    in_list_from(1, n)
}

/// `$first, …`: n parameters.
fn in_list_from(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// Faculty members per statement of [`recent_durations`] (a compound statement of one part each:
/// SQLite allows 500 parts).
const RECENT_PER_STATEMENT: usize = 64;

/// Each of faculty members `fids`' most recent accept → done durations (ms), newest first.
///
/// One `LIMIT`ed part per faculty member, each read newest first from the index
/// `requests_done_recent`. Why: a window over every finished request of the line read all of its
/// history for every view (a placement group's, every moved request's): a placement grew from
/// 0.18 to 0.30 ms of the write order over a 40 s run at 2,000 requests/s as each desk's history
/// grew (`loadgen --consult`, BENCHMARKS.md row 8b‴), and a year of history would be thousands of
/// rows per view.
async fn recent_durations(tx: &mut Tx, fids: &[i64]) -> Result<HashMap<i64, Vec<i64>>> {
    let mut found: Vec<(i64, i64, i64, i64)> = Vec::new();
    for padded in padded_chunks_of(fids, RECENT_PER_STATEMENT) {
        let sql = (1..=padded.len())
            .map(|i| {
                format!(
                    "SELECT * FROM (SELECT faculty_id, id, finished_at, finished_at - accepted_at AS d FROM requests \
                     WHERE faculty_id = ${i} AND state = 'done' AND accepted_at IS NOT NULL \
                     ORDER BY finished_at DESC LIMIT {RECENT_DURATIONS}) AS r{i}"
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let rows: Vec<(i64, i64, i64, i64)> = on_tx!(tx, c => {
            let mut q = sqlx::query_as(&sql);
            for id in &padded {
                q = q.bind(*id);
            }
            q.fetch_all(&mut **c).await?
        });
        found.extend(rows);
    }
    // Newest first; a padded faculty member's rows came twice.
    found.sort_unstable_by_key(|r| (r.0, std::cmp::Reverse(r.2), r.1));
    found.dedup_by_key(|r| r.1);
    let mut recent: HashMap<i64, Vec<i64>> = HashMap::new();
    for (fid, _, _, d) in found {
        recent.entry(fid).or_default().push(d);
    }
    Ok(recent)
}

/// A request row with its faculty member's name.
#[derive(sqlx::FromRow)]
struct NamedRow {
    #[sqlx(flatten)]
    row: Row,
    faculty_name: String,
}

/// Requests `ids` as their students see them, as `tx` has them: one statement for the rows, one
/// for the wait estimates of those waiting in line.
async fn views_in(tx: &mut Tx, ids: &[i64]) -> Result<HashMap<i64, RequestView>> {
    let mut rows: Vec<NamedRow> = Vec::with_capacity(ids.len());
    for chunk in padded_chunks(ids) {
        let sql = format!(
            "SELECT {ROW_COLUMNS}, (SELECT f.name FROM faculty f WHERE f.id = requests.faculty_id) AS faculty_name \
             FROM requests WHERE id IN ({})",
            in_list(chunk.len())
        );
        let found: Vec<NamedRow> = on_tx!(tx, c => {
            let mut q = sqlx::query_as(&sql);
            for id in &chunk {
                q = q.bind(*id);
            }
            q.fetch_all(&mut **c).await?
        });
        rows.extend(found);
    }
    let mut waiting_at: Vec<i64> = Vec::new();
    for r in &rows {
        if r.row.position.is_some() && r.row.state()?.waiting() {
            waiting_at.push(r.row.faculty_id);
        }
    }
    waiting_at.sort_unstable();
    waiting_at.dedup();
    let recent = recent_durations(tx, &waiting_at).await?;
    let mut views = HashMap::with_capacity(rows.len());
    for NamedRow { row: r, faculty_name } in rows {
        let state = r.state()?;
        let position = r.position.filter(|_| state.waiting());
        let (wait_min, wait_max) = match position {
            Some(p) => {
                let history = recent.get(&r.faculty_id).map_or(&[][..], Vec::as_slice);
                let (lo, hi) = rules::wait_estimate(p as usize, history);
                (Some(lo), Some(hi))
            }
            None => (None, None),
        };
        let view = RequestView {
            ticket: format!("T{}", r.id),
            id: r.id,
            faculty_id: r.faculty_id,
            faculty_name,
            state,
            position,
            wait_min,
            wait_max,
            course: r.course,
            message: r.message,
            note: r.note,
            version: r.version,
            requested_at: r.requested_at,
            changed_at: r.changed_at,
        };
        views.insert(view.id, view);
    }
    Ok(views)
}

/// Serialises students' placements: two submitted at the same instant for a student's last open
/// slot must not both see the slot free. (SQLite's `BEGIN IMMEDIATE` already serialises writers.)
async fn lock_students(tx: &mut Tx, students: &[i64]) -> Result<()> {
    if let Tx::Postgres(_) = tx {
        let _locked: Vec<(i64,)> = bulk::fetch_in(tx, students, |list| {
            format!("SELECT id FROM students WHERE id IN ({list}) ORDER BY id FOR UPDATE")
        })
        .await?;
    }
    Ok(())
}

/// A faculty row with its queue version.
#[derive(sqlx::FromRow)]
struct FacultyQueueRow {
    #[sqlx(flatten)]
    row: FacultyRow,
    queue_version: i64,
}

impl std::ops::Deref for FacultyQueueRow {
    type Target = FacultyRow;
    fn deref(&self) -> &FacultyRow {
        &self.row
    }
}

/// Logs faculty member `id`'s row, as it now is in `tx`, as a board event (`source` says what
/// changed it); returns the event to publish after the commit.
pub(crate) async fn log_faculty_view(
    bulk: &crate::ingest::BulkSql,
    tx: &mut Tx,
    id: i64,
    now: i64,
    source: &str,
) -> Result<Arc<FacultyEvent>> {
    bulk::log_faculty_views(bulk, tx, &[id], now, source)
        .await?
        .pop()
        .ok_or_else(|| StoreError::NotFound(format!("no faculty member {id}")))
}

/// The states of a request that is not finished, as an SQL list: `'requested', 'held', …`.
pub(crate) fn open_states() -> String {
    State::ALL.iter().filter(|s| !s.is_terminal()).map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_lists_come_in_few_shapes_and_keep_every_id() {
        let ids: Vec<i64> = (1..=1100).collect();
        let chunks: Vec<Vec<i64>> = padded_chunks(&ids).collect();
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [512, 512, 128]);
        let mut seen: Vec<i64> = chunks.concat();
        seen.dedup();
        assert_eq!(seen, ids, "every id, in order; padding only repeats the last of a chunk");
        assert_eq!(padded_chunks(&[7, 8, 9]).collect::<Vec<_>>(), [vec![7, 8, 9, 9]]);
        assert_eq!(padded_chunks::<i64>(&[]).count(), 0);
        assert_eq!(in_list_from(2, 3), "$2, $3, $4");
    }
}
