//! The set-wise reads and writes of a transaction of request changes ([`super::Changes`]): what a
//! batch of desk answers touches, read up front in a few statements; every changed request written
//! in one; every changed line renumbered, recounted and logged in a few more.
//!
//! Why: one statement per request and per line made a transaction's round trips grow with its
//! size (about eight per request answered), and the desks' answers fell behind near 300
//! requests/s (`loadgen --consult`, BENCHMARKS.md row 8b). These keep a batch's round trips
//! nearly constant, as the status ingest's bulk statements do (`crate::ingest`).

use super::{Changes, DeskWork, FacultyLine, FacultyQueueRow, ROW_COLUMNS, Row, padded_chunks};
use crate::ingest::{BulkSql, EventRow, insert_events, shaped, typed_rows};
use crate::rows::FACULTY_COLUMNS;
use crate::tx::Tx;
use crate::{Result, StoreError};
use domain::consultation::State;
use domain::{FacultyEvent, FacultyView};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Postgres, Sqlite};
use std::collections::HashMap;
use std::sync::Arc;

/// Reads what `work` will touch: the desks' bindings, the requests answered, the queued requests
/// of every line acknowledged, and those lines. Judging the batch then reads nothing more.
pub(super) async fn prefetch(tx: &mut Tx, work: &[DeskWork], ch: &mut Changes) -> Result<()> {
    let mut desks: Vec<String> = work
        .iter()
        .map(|w| match w {
            DeskWork::Ack { desk, .. } | DeskWork::Reply { desk, .. } => desk.clone(),
        })
        .filter(|d| !ch.desks.contains_key(d))
        .collect();
    desks.sort_unstable();
    desks.dedup();
    let found: Vec<(String, Option<i64>)> =
        fetch_in(tx, &desks, |list| format!("SELECT id, faculty_id FROM desks WHERE id IN ({list})")).await?;
    ch.desks.extend(found);
    for desk in desks {
        ch.desks.entry(desk).or_insert(None);
    }
    let answered: Vec<i64> = work
        .iter()
        .filter_map(|w| match w {
            DeskWork::Reply { request, .. } => Some(*request),
            DeskWork::Ack { .. } => None,
        })
        .collect();
    load_rows(tx, &answered, ch).await?;
    let acked: Vec<i64> = work
        .iter()
        .filter_map(|w| match w {
            DeskWork::Ack { desk, .. } => ch.desks.get(desk).copied().flatten(),
            DeskWork::Reply { .. } => None,
        })
        .collect();
    load_queued(tx, &acked, ch).await?;
    let lines: Vec<i64> = ch.desks.values().filter_map(|f| *f).collect();
    load_lines(tx, &lines, ch).await
}

/// Requests `ids` not in `ch` yet.
async fn load_rows(tx: &mut Tx, ids: &[i64], ch: &mut Changes) -> Result<()> {
    let mut ids: Vec<i64> = ids.iter().copied().filter(|id| !ch.rows.contains_key(id)).collect();
    ids.sort_unstable();
    ids.dedup();
    let found: Vec<Row> =
        fetch_in(tx, &ids, |list| format!("SELECT {ROW_COLUMNS} FROM requests WHERE id IN ({list})")).await?;
    for row in found {
        ch.rows.entry(row.id).or_insert(row);
    }
    Ok(())
}

/// Every queued request of faculty members `fids` (those this transaction has already are kept as
/// it has them).
pub(super) async fn load_queued(tx: &mut Tx, fids: &[i64], ch: &mut Changes) -> Result<()> {
    let mut fids: Vec<i64> = fids.iter().copied().filter(|f| !ch.queued_of.contains(f)).collect();
    fids.sort_unstable();
    fids.dedup();
    let found: Vec<Row> = fetch_in(tx, &fids, |list| {
        format!("SELECT {ROW_COLUMNS} FROM requests WHERE faculty_id IN ({list}) AND state = 'queued'")
    })
    .await?;
    for row in found {
        ch.rows.entry(row.id).or_insert(row);
    }
    ch.queued_of.extend(fids);
    Ok(())
}

/// The rows of the statement `sql` makes of an `IN (…)` list, for every id of `ids` (in
/// [`padded_chunks`]): the one shape of every set-wise read here.
pub(super) async fn fetch_in<I, T>(tx: &mut Tx, ids: &[I], sql: impl Fn(&str) -> String) -> Result<Vec<T>>
where
    I: Clone + Send + for<'q> sqlx::Encode<'q, Sqlite> + sqlx::Type<Sqlite>,
    I: for<'q> sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres>,
    T: for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
{
    let mut out = Vec::new();
    for chunk in padded_chunks(ids) {
        let sql = sql(&tx.params().list(1, chunk.len()));
        let found: Vec<T> = on_tx!(tx, c => {
            let mut q = sqlx::query_as(&sql);
            for id in chunk.iter().cloned() {
                q = q.bind(id);
            }
            q.fetch_all(&mut **c).await?
        });
        out.extend(found);
    }
    Ok(out)
}

/// The lines of faculty members `fids` not in `ch` yet.
pub(super) async fn load_lines(tx: &mut Tx, fids: &[i64], ch: &mut Changes) -> Result<()> {
    let mut fids: Vec<i64> = fids.iter().copied().filter(|f| !ch.lines.contains_key(f)).collect();
    fids.sort_unstable();
    fids.dedup();
    let found: Vec<FacultyLine> = fetch_in(tx, &fids, |list| {
        format!("SELECT id, version, waiting, queue_version FROM faculty WHERE id IN ({list})")
    })
    .await?;
    ch.lines.extend(found.into_iter().map(|line| (line.id, line)));
    Ok(())
}

/// Writes every request changed since the last flush, compare-and-set on the version read: one
/// statement per [`shaped`] run of rows.
pub(super) async fn flush(tx: &mut Tx, ch: &mut Changes) -> Result<()> {
    let dirty = std::mem::take(&mut ch.dirty);
    let mut rows: Vec<(&Row, i64)> = Vec::with_capacity(dirty.len());
    for (id, read) in &dirty {
        let row = ch.rows.get(id).ok_or_else(|| StoreError::Corrupt(format!("changed request {id} not kept")))?;
        rows.push((row, *read));
    }
    let params = tx.params();
    for chunk in shaped(&rows) {
        let sql = format!(
            "UPDATE requests SET state = v.column3, note = v.column4, changed_at = v.column5, queued_in = v.column6, \
             reply_boot = v.column7, reply_seq = v.column8, accepted_at = v.column9, finished_at = v.column10, \
             position = v.column11, version = v.column12 FROM (VALUES {}) AS v \
             WHERE requests.id = v.column1 AND requests.version = v.column2",
            typed_rows(
                params,
                chunk.len(),
                &[
                    "BIGINT", "BIGINT", "TEXT", "TEXT", "BIGINT", "BIGINT", "BIGINT", "BIGINT", "BIGINT", "BIGINT",
                    "BIGINT", "BIGINT",
                ]
            )
        );
        let updated = on_tx!(tx, c => {
            let mut q = sqlx::query(&sql);
            for (r, read) in chunk {
                q = q
                    .bind(r.id)
                    .bind(*read)
                    .bind(r.state.as_str())
                    .bind(r.note.as_deref())
                    .bind(r.changed_at)
                    .bind(r.queued_in)
                    .bind(r.reply_boot)
                    .bind(r.reply_seq)
                    .bind(r.accepted_at)
                    .bind(r.finished_at)
                    .bind(r.position)
                    .bind(r.version);
            }
            q.execute(&mut **c).await?.rows_affected()
        });
        if updated != chunk.len() as u64 {
            return Err(StoreError::VersionConflict);
        }
    }
    Ok(())
}

/// The lines of faculty members `fids` as the database now has them: (faculty member, request,
/// place recorded), each line in its order.
pub(super) async fn line_members(tx: &mut Tx, fids: &[i64]) -> Result<Vec<(i64, i64, Option<i64>)>> {
    fetch_in(tx, fids, |list| {
        format!(
            "SELECT faculty_id, id, position FROM requests WHERE faculty_id IN ({list}) \
             AND state IN ('held','queued','delivered','busy') ORDER BY faculty_id, requested_at, id"
        )
    })
    .await
}

/// Gives requests new places in line: (request, place), each a new version.
pub(super) async fn move_places(tx: &mut Tx, moves: &[(i64, i64)]) -> Result<()> {
    let params = tx.params();
    for chunk in shaped(moves) {
        let sql = format!(
            "UPDATE requests SET position = v.column2, version = requests.version + 1 FROM (VALUES {}) AS v \
             WHERE requests.id = v.column1",
            typed_rows(params, chunk.len(), &["BIGINT", "BIGINT"])
        );
        let updated = on_tx!(tx, c => {
            let mut q = sqlx::query(&sql);
            for (id, place) in chunk {
                q = q.bind(*id).bind(*place);
            }
            q.execute(&mut **c).await?.rows_affected()
        });
        if updated != chunk.len() as u64 {
            return Err(StoreError::Corrupt("a request in line vanished while renumbering it".into()));
        }
    }
    Ok(())
}

/// Writes lines' new counts and queue versions: (version read, the line now), compare-and-set.
pub(super) async fn write_lines(tx: &mut Tx, lines: &[(i64, FacultyLine)]) -> Result<()> {
    let params = tx.params();
    for chunk in shaped(lines) {
        let sql = format!(
            "UPDATE faculty SET waiting = v.column3, queue_version = v.column4, version = v.column5 \
             FROM (VALUES {}) AS v WHERE faculty.id = v.column1 AND faculty.version = v.column2",
            typed_rows(params, chunk.len(), &["BIGINT", "BIGINT", "BIGINT", "BIGINT", "BIGINT"])
        );
        let updated = on_tx!(tx, c => {
            let mut q = sqlx::query(&sql);
            for (read, line) in chunk {
                q = q.bind(line.id).bind(*read).bind(line.waiting).bind(line.queue_version).bind(line.version);
            }
            q.execute(&mut **c).await?.rows_affected()
        });
        if updated != chunk.len() as u64 {
            return Err(StoreError::VersionConflict);
        }
    }
    Ok(())
}

/// Logs faculty members `fids`' rows, as they now are in `tx`, as board events (`source` says
/// what changed them): one read and one insert. Returns the events, in event order.
pub(super) async fn log_faculty_views(
    bulk: &BulkSql,
    tx: &mut Tx,
    fids: &[i64],
    now: i64,
    source: &str,
) -> Result<Vec<Arc<FacultyEvent>>> {
    let found: Vec<crate::rows::ViewRow> =
        fetch_in(tx, fids, |list| format!("{} WHERE f.id IN ({list})", crate::rows::VIEW_SELECT)).await?;
    let views = found.into_iter().map(FacultyView::try_from).collect::<Result<Vec<_>>>()?;
    let rows: Vec<EventRow> = views.iter().map(|view| EventRow { view, source, desk: None, clock: None }).collect();
    let mut events = Vec::with_capacity(views.len());
    for (id, fid, _) in insert_events(bulk, tx, &rows, now).await? {
        let view = views
            .iter()
            .find(|v| v.id == fid)
            .ok_or_else(|| StoreError::Corrupt(format!("board event for faculty member {fid} not asked for")))?;
        events.push(Arc::new(FacultyEvent { id, faculty: view.clone() }));
    }
    events.sort_by_key(|e| e.id);
    Ok(events)
}

/// Faculty members `fids`' rows with their queue versions, by id.
pub(super) async fn faculty_rows(tx: &mut Tx, fids: &[i64]) -> Result<HashMap<i64, FacultyQueueRow>> {
    let mut fids = fids.to_vec();
    fids.sort_unstable();
    fids.dedup();
    let found: Vec<FacultyQueueRow> = fetch_in(tx, &fids, |list| {
        format!("SELECT {FACULTY_COLUMNS}, queue_version FROM faculty WHERE id IN ({list})")
    })
    .await?;
    Ok(found.into_iter().map(|row| (row.id, row)).collect())
}

/// Students `students`' requests by faculty member: (student, faculty member) → (open ones, those
/// requested after `since`).
pub(super) async fn student_counts(
    tx: &mut Tx,
    students: &[i64],
    since: i64,
) -> Result<HashMap<(i64, i64), (i64, i64)>> {
    let mut counts = HashMap::new();
    let params = tx.params();
    for chunk in padded_chunks(students) {
        let sql = format!(
            "SELECT student_id, faculty_id, \
               COALESCE(SUM(CASE WHEN state IN ('held','queued','delivered','busy','accepted') THEN 1 ELSE 0 END), 0), \
               COALESCE(SUM(CASE WHEN requested_at > {} THEN 1 ELSE 0 END), 0) \
             FROM requests WHERE student_id IN ({}) GROUP BY student_id, faculty_id",
            params.nth(1),
            params.list(2, chunk.len())
        );
        let found: Vec<(i64, i64, i64, i64)> = on_tx!(tx, c => {
            let mut q = sqlx::query_as(&sql).bind(since);
            for id in &chunk {
                q = q.bind(*id);
            }
            q.fetch_all(&mut **c).await?
        });
        for (student, faculty, open, recent) in found {
            counts.insert((student, faculty), (open, recent));
        }
    }
    Ok(counts)
}

/// A request about to be inserted by [`insert_requests`].
pub(super) struct Placing {
    pub student_id: i64,
    pub faculty_id: i64,
    pub course: Option<String>,
    pub message: String,
    pub state: State,
    pub queued_in: Option<i64>,
    pub position: i64,
}

/// Inserts `placing`, in order (their ids ascend in that order, as their places in line do).
/// Returns their ids, in the same order.
pub(super) async fn insert_requests(tx: &mut Tx, placing: &[Placing], now: i64) -> Result<Vec<i64>> {
    let params = tx.params();
    let mut ids = Vec::with_capacity(placing.len());
    for chunk in shaped(placing) {
        let rows = (0..chunk.len()).map(|i| format!("({})", params.list(i * 9 + 1, 9))).collect::<Vec<_>>();
        let sql = format!(
            "INSERT INTO requests (student_id, faculty_id, course, message, state, requested_at, changed_at, \
             queued_in, position) VALUES {} RETURNING id, student_id, faculty_id",
            rows.join(", ")
        );
        let inserted: Vec<(i64, i64, i64)> = on_tx!(tx, c => {
            let mut q = sqlx::query_as(&sql);
            for p in chunk {
                q = q
                    .bind(p.student_id)
                    .bind(p.faculty_id)
                    .bind(p.course.as_deref())
                    .bind(p.message.as_str())
                    .bind(p.state.as_str())
                    .bind(now)
                    .bind(now)
                    .bind(p.queued_in)
                    .bind(p.position);
            }
            q.fetch_all(&mut **c).await?
        });
        // Matched by (student, faculty member): a group places at most one request per pair (a
        // second would break the one-open-request-per-faculty-member rule), so the match holds
        // whatever order the rows come back in.
        for p in chunk {
            let id = inserted
                .iter()
                .find(|(_, s, f)| *s == p.student_id && *f == p.faculty_id)
                .map(|(id, ..)| *id)
                .ok_or_else(|| StoreError::Corrupt("an inserted request came back without its id".into()))?;
            ids.push(id);
        }
    }
    Ok(ids)
}
