//! Applying desk messages (and desk timeouts): the write path of the live status pipeline.

use crate::rows::{DESK_COLUMNS, DeskRow, FACULTY_COLUMNS, FacultyRow, columns, parse_status};
use crate::{Params, Result, Store, StoreError, now_ms};
use domain::status::DeskInputs;
use domain::{DeskMessage, DeskRecord, DeskUpdate, FacultyEvent, FacultyView};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

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

/// What became of one change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Recorded. `event` is the status event's id when a faculty member's row changed.
    Applied { event: Option<i64> },
    /// Older than (or equal to) what the desk's record holds: nothing changed.
    Stale,
    /// No desk with that id is registered: nothing changed.
    UnknownDesk,
}

const MAX_ATTEMPTS: u32 = 20;

impl Store {
    /// Applies `changes` in order, in one transaction; publishes the resulting events after the
    /// commit. On a lost compare-and-set the transaction is rolled back and redone from fresh reads,
    /// so a retry can never apply a change twice.
    pub async fn apply(&self, changes: &[Change]) -> Result<Vec<Outcome>> {
        let mut attempt = 0;
        let _order = self.write_order.lock().await;
        loop {
            match self.try_apply(changes).await {
                Ok((outcomes, events)) => {
                    self.bus.publish(events);
                    return Ok(outcomes);
                }
                Err(StoreError::VersionConflict) if attempt + 1 < MAX_ATTEMPTS => {
                    attempt += 1;
                    tracing::debug!(attempt, "version conflict, retrying the transaction");
                    tokio::time::sleep(Duration::from_millis(u64::from(attempt.min(10)))).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Times out every online desk silent since before `silent_before` (Unix ms). Returns the desks
    /// that went offline.
    pub async fn time_out_silent_desks(&self, silent_before: i64) -> Result<Vec<String>> {
        let sql = "SELECT id FROM desks WHERE online AND (last_seen IS NULL OR last_seen < $1) ORDER BY id";
        let ids: Vec<String> =
            on_db!(&self.db, pool => sqlx::query_scalar(sql).bind(silent_before).fetch_all(pool).await)?;
        if ids.is_empty() {
            return Ok(ids);
        }
        let changes: Vec<Change> =
            ids.iter().map(|desk| Change::TimeOut { desk: desk.clone(), silent_before }).collect();
        let outcomes = self.apply(&changes).await?;
        Ok(ids
            .into_iter()
            .zip(outcomes)
            .filter(|(_, o)| matches!(o, Outcome::Applied { .. }))
            .map(|(d, _)| d)
            .collect())
    }

    /// One attempt, in one transaction and a handful of statements whatever the batch's size: load
    /// the desks and faculty rows involved, decide every change in memory (`domain` rules), then
    /// write faculty rows (compare-and-set on their version), events, and desk rows (compare-and-set)
    /// in bulk. Any lost compare-and-set rolls everything back.
    async fn try_apply(&self, changes: &[Change]) -> Result<(Vec<Outcome>, Vec<Arc<FacultyEvent>>)> {
        let now = now_ms();
        let mut desk_ids: Vec<&str> = Vec::new();
        {
            let mut seen = std::collections::HashSet::new();
            desk_ids.extend(changes.iter().map(Change::desk).filter(|d| seen.insert(*d)));
        }
        on_db!(&self.db, pool => {
            let t0 = std::time::Instant::now();
            let mut tx = pool.begin_with(self.begin_write()).await?;
            if let Some(lock) = self.event_log_lock() {
                sqlx::query(lock).execute(&mut *tx).await?;
            }
            let t_begin = t0.elapsed();
            // 1. Read what the batch touches.
            let mut desks: HashMap<String, Touched<DeskRow>> = HashMap::with_capacity(desk_ids.len());
            for chunk in shaped(&desk_ids) {
                let mut q = sqlx::query_as::<_, DeskRow>(&self.bulk.rows(chunk.len()).select_desks);
                for id in chunk {
                    q = q.bind(*id);
                }
                for row in q.fetch_all(&mut *tx).await? {
                    let version = row.version;
                    desks.insert(row.id.clone(), Touched::new(row, version));
                }
            }
            let mut fids: Vec<i64> = desks.values().filter_map(|d| d.row.faculty_id).collect();
            fids.sort_unstable();
            fids.dedup();
            let mut faculty: HashMap<i64, Touched<FacultyRow>> = HashMap::with_capacity(fids.len());
            for chunk in shaped(&fids) {
                let mut q = sqlx::query_as::<_, FacultyRow>(&self.bulk.rows(chunk.len()).select_faculty);
                for id in chunk {
                    q = q.bind(*id);
                }
                for row in q.fetch_all(&mut *tx).await? {
                    let (id, version) = (row.id, row.version);
                    faculty.insert(id, Touched::new(row, version));
                }
            }

            let t_read = t0.elapsed();
            // 2. Decide every change in order, in memory.
            let mut outcomes = Vec::with_capacity(changes.len());
            let mut pending: Vec<PendingEvent> = Vec::new();
            for change in changes {
                let Some(desk) = desks.get_mut(change.desk()) else {
                    outcomes.push(Outcome::UnknownDesk);
                    continue;
                };
                let record = desk.row.record()?;
                let (next, visible, source, clock) = match change {
                    Change::Message { message, .. } => match record.apply(*message) {
                        DeskUpdate::Stale => {
                            outcomes.push(Outcome::Stale);
                            continue;
                        }
                        DeskUpdate::Applied { record: next, visible } => {
                            desk.row.last_seen = Some(now);
                            (next, visible, "desk", Some(message.clock()))
                        }
                    },
                    Change::TimeOut { silent_before, .. } => {
                        // Re-checked inside the transaction: the desk may have spoken since.
                        let silent = desk.row.last_seen.is_none_or(|seen| seen < *silent_before);
                        match record.time_out().filter(|_| silent) {
                            Some(next) => (next, true, "timeout", record.last),
                            None => {
                                outcomes.push(Outcome::Stale);
                                continue;
                            }
                        }
                    }
                };
                desk.row.set_record(&next);
                desk.dirty = true;
                let touched = match desk.row.faculty_id {
                    Some(fid) if visible => faculty.get_mut(&fid),
                    _ => None,
                };
                let Some(f) = touched else {
                    outcomes.push(Outcome::Applied { event: None });
                    continue;
                };
                let view = faculty_changed(&f.row, &next, desk.row.last_seen, now)?;
                // The next change to this row in the batch builds on this one.
                f.row.version = view.version;
                f.row.status = view.status.as_str().to_owned();
                f.row.changed_at = view.changed_at;
                outcomes.push(Outcome::Applied { event: Some(pending.len() as i64) });
                pending.push(PendingEvent { view, source, desk: change.desk().to_owned(), clock });
            }

            let t_decide = t0.elapsed();
            // 3. Write: faculty rows (compare-and-set), events, desk rows (compare-and-set).
            // Each changed faculty row is written once, as of its newest event in the batch.
            let mut newest: HashMap<i64, &FacultyView> = HashMap::with_capacity(pending.len());
            for ev in &pending {
                newest.insert(ev.view.id, &ev.view);
            }
            let rows: Vec<&FacultyView> = newest.into_values().collect();
            for chunk in shaped(&rows) {
                let mut q = sqlx::query(&self.bulk.rows(chunk.len()).update_faculty);
                for v in chunk {
                    let read = faculty.get(&v.id).ok_or_else(|| StoreError::Corrupt("changed faculty row not read".into()))?;
                    q = q
                        .bind(v.id)
                        .bind(read.version_read)
                        .bind(v.version)
                        .bind(v.status.as_str())
                        .bind(v.present)
                        .bind(v.busy)
                        .bind(v.desk_online)
                        .bind(v.changed_at);
                }
                if q.execute(&mut *tx).await?.rows_affected() != chunk.len() as u64 {
                    return Err(StoreError::VersionConflict);
                }
            }
            let t_fac = t0.elapsed();
            let mut ids: HashMap<(i64, i64), i64> = HashMap::with_capacity(pending.len());
            for chunk in shaped(&pending) {
                let mut q = sqlx::query_as::<_, (i64, i64, i64)>(&self.bulk.rows(chunk.len()).insert_events);
                for ev in chunk {
                    let (boot, seq) = columns(ev.clock);
                    let v = &ev.view;
                    q = q
                        .bind(v.id)
                        .bind(v.version)
                        .bind(v.status.as_str())
                        .bind(v.present)
                        .bind(v.busy)
                        .bind(v.desk_online)
                        .bind(v.changed_at)
                        .bind(v.last_seen)
                        .bind(ev.source)
                        .bind(ev.desk.as_str())
                        .bind(boot)
                        .bind(seq)
                        .bind(now);
                }
                for (id, fid, version) in q.fetch_all(&mut *tx).await? {
                    ids.insert((fid, version), id);
                }
            }
            let t_ev = t0.elapsed();
            let rows: Vec<&Touched<DeskRow>> = desks.values().filter(|d| d.dirty).collect();
            for chunk in shaped(&rows) {
                let mut q = sqlx::query(&self.bulk.rows(chunk.len()).update_desks);
                for d in chunk {
                    let r = &d.row;
                    q = q
                        .bind(r.id.as_str())
                        .bind(d.version_read)
                        .bind(r.last_boot)
                        .bind(r.last_seq)
                        .bind(r.state_boot)
                        .bind(r.state_seq)
                        .bind(r.present)
                        .bind(r.busy)
                        .bind(r.online_boot)
                        .bind(r.online_seq)
                        .bind(r.online)
                        .bind(r.last_seen);
                }
                if q.execute(&mut *tx).await?.rows_affected() != chunk.len() as u64 {
                    return Err(StoreError::VersionConflict);
                }
            }
            let t_write = t0.elapsed();
            tx.commit().await?;
            tracing::debug!(n = changes.len(), ?t_begin, ?t_read, ?t_decide, ?t_fac, ?t_ev, ?t_write, total = ?t0.elapsed(), "apply timing");

            // Outcomes carried the index of their pending event; give them the event's id.
            let event_id = |i: i64| -> Result<i64> {
                let ev = pending.get(i as usize).ok_or_else(|| StoreError::Corrupt("event index".into()))?;
                ids.get(&(ev.view.id, ev.view.version)).copied().ok_or_else(|| StoreError::Corrupt("event id missing".into()))
            };
            for o in &mut outcomes {
                if let Outcome::Applied { event: Some(i) } = o {
                    *i = event_id(*i)?;
                }
            }
            let mut events: Vec<Arc<FacultyEvent>> = pending
                .into_iter()
                .filter_map(|ev| {
                    let id = *ids.get(&(ev.view.id, ev.view.version))?;
                    Some(Arc::new(FacultyEvent { id, faculty: ev.view }))
                })
                .collect();
            events.sort_by_key(|e| e.id);
            Ok((outcomes, events))
        })
    }
}

/// The most rows one bulk statement carries: 64 rows of 13 parameters stay far below SQLite's
/// 32,766 and PostgreSQL's 65,535.
const MAX_ROWS: usize = 64;

/// Splits `items` into runs of [`MAX_ROWS`], then of the largest power of two that fits, so that
/// each bulk statement comes in a few shapes (64, 32, …, 1 rows) that every connection's statement
/// cache keeps prepared. (A shape per batch size thrashed the cache and cost more than the work.)
fn shaped<T>(items: &[T]) -> Vec<&[T]> {
    let mut out = Vec::new();
    let mut rest = items;
    while !rest.is_empty() {
        let n = if rest.len() >= MAX_ROWS { MAX_ROWS } else { 1 << (usize::BITS - 1 - rest.len().leading_zeros()) };
        let (run, tail) = rest.split_at(n);
        out.push(run);
        rest = tail;
    }
    out
}

/// The bulk statements of `try_apply`, one set per shape that [`shaped`] makes, written once when
/// the store connects instead of on every batch.
pub(crate) struct BulkSql {
    /// Index k holds the statements for 2^k rows.
    shapes: Vec<ShapeSql>,
}

struct ShapeSql {
    select_desks: String,
    select_faculty: String,
    update_faculty: String,
    insert_events: String,
    update_desks: String,
}

impl std::fmt::Debug for BulkSql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BulkSql({} shapes)", self.shapes.len())
    }
}

impl BulkSql {
    pub(crate) fn new(params: Params) -> BulkSql {
        let shapes = (0..=MAX_ROWS.trailing_zeros())
            .map(|k| {
                let n = 1 << k;
                ShapeSql {
                    select_desks: format!("SELECT {DESK_COLUMNS} FROM desks WHERE id IN ({})", params.list(1, n)),
                    select_faculty: format!("SELECT {FACULTY_COLUMNS} FROM faculty WHERE id IN ({})", params.list(1, n)),
                    update_faculty: format!(
                        "UPDATE faculty SET version = v.column3, status = v.column4, present = v.column5, busy = v.column6, \
                         desk_online = v.column7, changed_at = v.column8 FROM (VALUES {}) AS v \
                         WHERE faculty.id = v.column1 AND faculty.version = v.column2",
                        typed_rows(params, n, &["BIGINT", "BIGINT", "BIGINT", "TEXT", "BOOLEAN", "BOOLEAN", "BOOLEAN", "BIGINT"])
                    ),
                    insert_events: format!(
                        "INSERT INTO status_events (kind, faculty_id, version, status, present, busy, desk_online, \
                         changed_at, last_seen, source, desk_id, boot, seq, at) VALUES {} \
                         RETURNING id, faculty_id, version",
                        (0..n).map(|i| format!("('faculty_status', {})", params.list(i * 13 + 1, 13))).collect::<Vec<_>>().join(", ")
                    ),
                    update_desks: format!(
                        "UPDATE desks SET last_boot = v.column3, last_seq = v.column4, state_boot = v.column5, \
                         state_seq = v.column6, present = v.column7, busy = v.column8, online_boot = v.column9, \
                         online_seq = v.column10, online = v.column11, last_seen = v.column12, version = desks.version + 1 \
                         FROM (VALUES {}) AS v WHERE desks.id = v.column1 AND desks.version = v.column2",
                        typed_rows(
                            params,
                            n,
                            &[
                                "TEXT", "BIGINT", "BIGINT", "BIGINT", "BIGINT", "BIGINT", "BOOLEAN", "BOOLEAN", "BIGINT",
                                "BIGINT", "BOOLEAN", "BIGINT",
                            ]
                        )
                    ),
                }
            })
            .collect();
        BulkSql { shapes }
    }

    /// The statements for a run of `n` rows, as [`shaped`] cuts them (a power of two up to [`MAX_ROWS`]).
    fn rows(&self, n: usize) -> &ShapeSql {
        debug_assert!(n.is_power_of_two() && n <= MAX_ROWS);
        &self.shapes[n.trailing_zeros() as usize]
    }
}

/// `n` VALUES rows of typed parameters, `(CAST(p AS type), …)`: the casts give the VALUES columns
/// the table's types on PostgreSQL (SQLite ignores them).
fn typed_rows(params: Params, n: usize, types: &[&str]) -> String {
    (0..n)
        .map(|i| {
            let columns = types
                .iter()
                .enumerate()
                .map(|(j, t)| format!("CAST({} AS {t})", params.nth(i * types.len() + j + 1)))
                .collect::<Vec<_>>();
            format!("({})", columns.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A row read in this transaction, the version it had then (the compare-and-set's expectation), and
/// whether it changed (desk rows; changed faculty rows are those with a pending event).
struct Touched<R> {
    row: R,
    version_read: i64,
    dirty: bool,
}

impl<R> Touched<R> {
    fn new(row: R, version_read: i64) -> Touched<R> {
        Touched { row, version_read, dirty: false }
    }
}

/// An event decided in memory, waiting for its id from the insert.
struct PendingEvent {
    view: FacultyView,
    source: &'static str,
    desk: String,
    clock: Option<domain::DeskClock>,
}

/// The faculty row after its desk's record became `desk`: the new view, version bumped.
fn faculty_changed(f: &FacultyRow, desk: &DeskRecord, last_seen: Option<i64>, now: i64) -> Result<FacultyView> {
    let inputs = DeskInputs { online: desk.online, present: desk.present, busy: desk.busy };
    let status = f.derive(Some(inputs), now);
    let changed_at = if status == parse_status(&f.status)? { f.changed_at } else { now };
    Ok(FacultyView {
        id: f.id,
        name: f.name.clone(),
        department: f.department.clone(),
        status,
        present: desk.present,
        busy: desk.busy,
        desk_online: desk.online,
        last_seen,
        changed_at,
        version: f.version + 1,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn shapes_are_few() {
        let lens = |n: usize| super::shaped(&vec![0u8; n]).iter().map(|c| c.len()).collect::<Vec<_>>();
        assert_eq!(lens(0), Vec::<usize>::new());
        assert_eq!(lens(1), [1]);
        assert_eq!(lens(100), [64, 32, 4]);
        assert_eq!(lens(128), [64, 64]);
        assert_eq!(lens(7), [4, 2, 1]);
        assert_eq!(lens(1000).iter().sum::<usize>(), 1000);
    }
}
