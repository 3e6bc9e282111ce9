//! Applying desk messages (and desk timeouts): the write path of the live status pipeline.
//!
//! One batch is one transaction in three steps: [`read`] the desks and faculty rows it touches,
//! let `domain::batch::plan` decide every change in memory, then [`write`] what changed in bulk,
//! compare-and-set on the versions read. A lost compare-and-set rolls everything back and the
//! batch is redone from fresh reads.

use crate::rows::{DESK_COLUMNS, DeskRow, FACULTY_COLUMNS, FacultyRow, columns};
use crate::tx::Tx;
use crate::{Params, Result, Store, StoreError, now_ms};
use domain::batch::{self, Decision, DeskState, FacultyState, Plan};
use domain::{FacultyEvent, FacultyView};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub use domain::batch::Change;

/// What became of one change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Recorded. `event` is the status event's id when a faculty member's row changed.
    Applied { event: Option<i64> },
    /// Older than (or equal to) what the desk's record holds: nothing changed.
    Stale,
    /// No desk with that id is registered: nothing changed.
    UnknownDesk,
    /// The desk's `boot` jumped implausibly far (`domain::desk::MAX_BOOT_JUMP`): nothing changed.
    Implausible,
}

const MAX_ATTEMPTS: u32 = 20;

impl Store {
    /// Applies `changes` in order, in one transaction; publishes the resulting events after the
    /// commit. On a lost compare-and-set the transaction is rolled back and redone from fresh reads,
    /// so a retry can never apply a change twice.
    pub async fn apply(&self, changes: &[Change]) -> Result<Vec<Outcome>> {
        let turn = self.write_turn().await;
        self.apply_in_turn(&turn, changes).await
    }

    /// [`Store::apply`] in a turn of the write order the caller holds.
    pub async fn apply_in_turn(&self, turn: &crate::WriteTurn, changes: &[Change]) -> Result<Vec<Outcome>> {
        self.check_turn(turn)?;
        let mut attempt = 0;
        loop {
            match self.try_apply(changes).await {
                Ok((outcomes, events)) => {
                    self.publish_faculty(events);
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

    /// One attempt: read, plan, write, commit. Any lost compare-and-set rolls everything back.
    async fn try_apply(&self, changes: &[Change]) -> Result<(Vec<Outcome>, Vec<Arc<FacultyEvent>>)> {
        let now = now_ms();
        let t0 = std::time::Instant::now();
        let mut tx = self.event_tx().await?;
        let mut found = read(&self.bulk, &mut tx, changes).await?;
        let t_read = t0.elapsed();
        let plan = batch::plan(changes, &mut found.desks, &mut found.faculty, now);
        let ids = write(&self.bulk, &mut tx, &found, &plan, now).await?;
        let t_write = t0.elapsed();
        tx.commit().await?;
        tracing::debug!(n = changes.len(), ?t_read, ?t_write, total = ?t0.elapsed(), "apply timing");

        let event_id = |i: usize| -> Result<i64> {
            let ev = plan.events.get(i).ok_or_else(|| StoreError::Corrupt("event index".into()))?;
            ids.get(&(ev.view.id, ev.view.version))
                .copied()
                .ok_or_else(|| StoreError::Corrupt("event id missing".into()))
        };
        let outcomes = plan
            .decisions
            .iter()
            .map(|d| {
                Ok(match *d {
                    Decision::Applied { event } => Outcome::Applied { event: event.map(event_id).transpose()? },
                    Decision::Stale => Outcome::Stale,
                    Decision::UnknownDesk => Outcome::UnknownDesk,
                    Decision::Implausible => Outcome::Implausible,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut events: Vec<Arc<FacultyEvent>> = plan
            .events
            .into_iter()
            .filter_map(|ev| {
                let id = *ids.get(&(ev.view.id, ev.view.version))?;
                Some(Arc::new(FacultyEvent { id, faculty: ev.view }))
            })
            .collect();
        events.sort_by_key(|e| e.id);
        Ok((outcomes, events))
    }
}

/// A desk message set aside because applying it failed for a permanent reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: i64,
    /// Unix ms.
    pub at: i64,
    pub topic: String,
    pub payload: Vec<u8>,
    pub reason: String,
}

impl Store {
    /// Sets a message aside with the reason it could not be applied.
    pub async fn dead_letter(&self, topic: &str, payload: &[u8], reason: &str) -> Result<i64> {
        let sql = "INSERT INTO dead_letters (at, topic, payload, reason) VALUES ($1, $2, $3, $4) RETURNING id";
        Ok(on_db!(&self.db, pool => {
            sqlx::query_scalar(sql).bind(now_ms()).bind(topic).bind(payload).bind(reason).fetch_one(pool).await?
        }))
    }

    /// The newest dead letters first.
    pub async fn dead_letters(&self, limit: i64) -> Result<Vec<DeadLetter>> {
        let sql = "SELECT id, at, topic, payload, reason FROM dead_letters ORDER BY id DESC LIMIT $1";
        let rows: Vec<(i64, i64, String, Vec<u8>, String)> =
            on_db!(&self.db, pool => sqlx::query_as(sql).bind(limit).fetch_all(pool).await?);
        Ok(rows
            .into_iter()
            .map(|(id, at, topic, payload, reason)| DeadLetter { id, at, topic, payload, reason })
            .collect())
    }

    pub async fn count_dead_letters(&self) -> Result<i64> {
        Ok(on_db!(&self.db, pool => sqlx::query_scalar("SELECT COUNT(*) FROM dead_letters").fetch_one(pool).await?))
    }
}

/// The rows a batch touches, as read inside its transaction, with the versions read (what the
/// compare-and-set expects).
struct Found {
    desks: HashMap<String, DeskState>,
    desk_versions: HashMap<String, i64>,
    faculty: HashMap<i64, FacultyState>,
    faculty_versions: HashMap<i64, i64>,
}

/// Step 1: the desks the batch names, and the faculty rows bound to them.
async fn read(bulk: &BulkSql, tx: &mut Tx, changes: &[Change]) -> Result<Found> {
    let mut desk_ids: Vec<&str> = changes.iter().map(Change::desk).collect();
    desk_ids.sort_unstable();
    desk_ids.dedup();
    let mut found = Found {
        desks: HashMap::with_capacity(desk_ids.len()),
        desk_versions: HashMap::with_capacity(desk_ids.len()),
        faculty: HashMap::new(),
        faculty_versions: HashMap::new(),
    };
    for chunk in shaped(&desk_ids) {
        let sql = &bulk.rows(chunk.len()).select_desks;
        let rows: Vec<DeskRow> = on_tx!(tx, c => {
            let mut q = sqlx::query_as(sql);
            for id in chunk {
                q = q.bind(*id);
            }
            q.fetch_all(&mut **c).await?
        });
        for row in rows {
            let state = DeskState { faculty_id: row.faculty_id, record: row.record()?, last_seen: row.last_seen };
            found.desk_versions.insert(row.id.clone(), row.version);
            found.desks.insert(row.id, state);
        }
    }
    let mut fids: Vec<i64> = found.desks.values().filter_map(|d| d.faculty_id).collect();
    fids.sort_unstable();
    fids.dedup();
    for chunk in shaped(&fids) {
        let sql = &bulk.rows(chunk.len()).select_faculty;
        let rows: Vec<FacultyRow> = on_tx!(tx, c => {
            let mut q = sqlx::query_as(sql);
            for id in chunk {
                q = q.bind(*id);
            }
            q.fetch_all(&mut **c).await?
        });
        for row in rows {
            found.faculty_versions.insert(row.id, row.version);
            found.faculty.insert(row.id, row.state()?);
        }
    }
    Ok(found)
}

/// Step 3: the changed faculty rows (compare-and-set), their events, the changed desk rows
/// (compare-and-set). Returns each event's id by (faculty id, version).
async fn write(bulk: &BulkSql, tx: &mut Tx, found: &Found, plan: &Plan, now: i64) -> Result<HashMap<(i64, i64), i64>> {
    let rows: Vec<&FacultyView> = plan.faculty_rows().collect();
    for chunk in shaped(&rows) {
        let sql = &bulk.rows(chunk.len()).update_faculty;
        let mut expected = Vec::with_capacity(chunk.len());
        for v in chunk {
            let read = found.faculty_versions.get(&v.id);
            expected.push(*read.ok_or_else(|| StoreError::Corrupt("changed faculty row not read".into()))?);
        }
        let updated = on_tx!(tx, c => {
            let mut q = sqlx::query(sql);
            for (v, read) in chunk.iter().zip(&expected) {
                q = q
                    .bind(v.id)
                    .bind(*read)
                    .bind(v.version)
                    .bind(v.status.as_str())
                    .bind(v.present)
                    .bind(v.busy)
                    .bind(v.desk_online)
                    .bind(v.changed_at);
            }
            q.execute(&mut **c).await?.rows_affected()
        });
        if updated != chunk.len() as u64 {
            return Err(StoreError::VersionConflict);
        }
    }
    let events: Vec<EventRow> = plan
        .events
        .iter()
        .map(|ev| EventRow {
            view: &ev.view,
            source: ev.source.as_str(),
            desk: Some(ev.desk.as_str()),
            clock: ev.clock,
        })
        .collect();
    let ids: HashMap<(i64, i64), i64> = insert_events(bulk, tx, &events, now)
        .await?
        .into_iter()
        .map(|(id, fid, version)| ((fid, version), id))
        .collect();
    for chunk in shaped(&plan.desks) {
        let sql = &bulk.rows(chunk.len()).update_desks;
        let mut rows = Vec::with_capacity(chunk.len());
        for id in chunk {
            let (Some(d), Some(read)) = (found.desks.get(id), found.desk_versions.get(id)) else {
                return Err(StoreError::Corrupt(format!("changed desk {id} not read")));
            };
            rows.push((id.as_str(), *read, d));
        }
        let updated = on_tx!(tx, c => {
            let mut q = sqlx::query(sql);
            for (id, read, d) in &rows {
                let r = &d.record;
                let (last_boot, last_seq) = columns(r.last);
                let (state_boot, state_seq) = columns(r.state_at);
                let (online_boot, online_seq) = columns(r.online_at);
                q = q
                    .bind(*id)
                    .bind(*read)
                    .bind(last_boot)
                    .bind(last_seq)
                    .bind(state_boot)
                    .bind(state_seq)
                    .bind(r.present)
                    .bind(r.busy)
                    .bind(online_boot)
                    .bind(online_seq)
                    .bind(r.online)
                    .bind(d.last_seen);
            }
            q.execute(&mut **c).await?.rows_affected()
        });
        if updated != chunk.len() as u64 {
            return Err(StoreError::VersionConflict);
        }
    }
    Ok(ids)
}

/// A board event to log: the faculty row as it now is, what changed it, and for a desk message the
/// desk and its clock.
pub(crate) struct EventRow<'a> {
    pub view: &'a FacultyView,
    pub source: &'a str,
    pub desk: Option<&'a str>,
    pub clock: Option<domain::DeskClock>,
}

/// Logs `rows` as board events, one statement per [`shaped`] run. Returns (event, faculty member,
/// version) of each.
pub(crate) async fn insert_events(
    bulk: &BulkSql,
    tx: &mut Tx,
    rows: &[EventRow<'_>],
    now: i64,
) -> Result<Vec<(i64, i64, i64)>> {
    let mut logged = Vec::with_capacity(rows.len());
    for chunk in shaped(rows) {
        let sql = &bulk.rows(chunk.len()).insert_events;
        let inserted: Vec<(i64, i64, i64)> = on_tx!(tx, c => {
            let mut q = sqlx::query_as(sql);
            for ev in chunk {
                let (boot, seq) = columns(ev.clock);
                let v = ev.view;
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
                    .bind(ev.desk)
                    .bind(boot)
                    .bind(seq)
                    .bind(now)
                    .bind(v.waiting);
            }
            q.fetch_all(&mut **c).await?
        });
        logged.extend(inserted);
    }
    Ok(logged)
}

/// The most rows one bulk statement carries: 64 rows of 14 parameters stay far below SQLite's
/// 32,766 and PostgreSQL's 65,535.
const MAX_ROWS: usize = 64;

/// Splits `items` into runs of [`MAX_ROWS`], then of the largest power of two that fits, so that
/// each bulk statement comes in a few shapes (64, 32, …, 1 rows) that every connection's statement
/// cache keeps prepared. (A shape per batch size thrashed the cache and cost more than the work.)
pub(crate) fn shaped<T>(items: &[T]) -> Vec<&[T]> {
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
                         changed_at, last_seen, source, desk_id, boot, seq, at, waiting) VALUES {} \
                         RETURNING id, faculty_id, version",
                        (0..n).map(|i| format!("('faculty_status', {})", params.list(i * 14 + 1, 14))).collect::<Vec<_>>().join(", ")
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
pub(crate) fn typed_rows(params: Params, n: usize, types: &[&str]) -> String {
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
