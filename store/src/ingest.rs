//! Applying desk messages (and desk timeouts): the write path of the live status pipeline.

use crate::rows::{DESK_COLUMNS, DeskRow, FACULTY_COLUMNS, FacultyRow, columns, parse_status};
use crate::{Result, Store, StoreError, now_ms};
use domain::status::DeskInputs;
use domain::{DeskMessage, DeskRecord, DeskUpdate, FacultyEvent, FacultyView};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
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
    fn desk(&self) -> &str {
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

    async fn try_apply(&self, changes: &[Change]) -> Result<(Vec<Outcome>, Vec<Arc<FacultyEvent>>)> {
        let now = now_ms();
        let desk_sql = format!("SELECT {DESK_COLUMNS} FROM desks WHERE id = $1");
        let faculty_sql = format!("SELECT {FACULTY_COLUMNS} FROM faculty WHERE id = $1");
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            if let Some(lock) = self.event_log_lock() {
                sqlx::query(lock).execute(&mut *tx).await?;
            }
            let mut desks: HashMap<&str, (DeskRow, bool)> = HashMap::new();
            let mut faculty: HashMap<i64, FacultyRow> = HashMap::new();
            let mut outcomes = Vec::with_capacity(changes.len());
            let mut events = Vec::new();
            for change in changes {
                let id = change.desk();
                let (desk, dirty) = match desks.entry(id) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => {
                        let row: Option<DeskRow> =
                            sqlx::query_as(&desk_sql).bind(id).fetch_optional(&mut *tx).await?;
                        match row {
                            Some(row) => e.insert((row, false)),
                            None => {
                                outcomes.push(Outcome::UnknownDesk);
                                continue;
                            }
                        }
                    }
                };
                let record = desk.record()?;
                let (next, visible, source, clock) = match change {
                    Change::Message { message, .. } => match record.apply(*message) {
                        DeskUpdate::Stale => {
                            outcomes.push(Outcome::Stale);
                            continue;
                        }
                        DeskUpdate::Applied { record: next, visible } => {
                            desk.last_seen = Some(now);
                            (next, visible, "desk", Some(message.clock()))
                        }
                    },
                    Change::TimeOut { silent_before, .. } => {
                        // Re-checked inside the transaction: the desk may have spoken since.
                        let silent = desk.last_seen.is_none_or(|seen| seen < *silent_before);
                        match record.time_out().filter(|_| silent) {
                            Some(next) => (next, true, "timeout", desk.clock()?),
                            None => {
                                outcomes.push(Outcome::Stale);
                                continue;
                            }
                        }
                    }
                };
                desk.set_record(&next);
                *dirty = true;
                let mut event = None;
                if let (true, Some(fid)) = (visible, desk.faculty_id) {
                    let f = match faculty.entry(fid) {
                        Entry::Occupied(e) => e.into_mut(),
                        Entry::Vacant(e) => {
                            e.insert(sqlx::query_as(&faculty_sql).bind(fid).fetch_one(&mut *tx).await?)
                        }
                    };
                    let ev = faculty_changed(f, &next, desk.last_seen, now)?;
                    let res = sqlx::query(
                        "UPDATE faculty SET status = $1, present = $2, busy = $3, desk_online = $4, changed_at = $5, \
                         version = version + 1 WHERE id = $6 AND version = $7",
                    )
                    .bind(ev.status.as_str())
                    .bind(ev.present)
                    .bind(ev.busy)
                    .bind(ev.desk_online)
                    .bind(ev.changed_at)
                    .bind(fid)
                    .bind(f.version)
                    .execute(&mut *tx)
                    .await?;
                    if res.rows_affected() != 1 {
                        return Err(StoreError::VersionConflict);
                    }
                    f.version = ev.version;
                    f.status = ev.status.as_str().to_owned();
                    f.changed_at = ev.changed_at;
                    let (boot, seq) = columns(clock);
                    let event_id: i64 = sqlx::query_scalar(
                        "INSERT INTO status_events (kind, faculty_id, version, status, present, busy, desk_online, \
                         changed_at, last_seen, source, desk_id, boot, seq, at) \
                         VALUES ('faculty_status', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
                    )
                    .bind(fid)
                    .bind(ev.version)
                    .bind(ev.status.as_str())
                    .bind(ev.present)
                    .bind(ev.busy)
                    .bind(ev.desk_online)
                    .bind(ev.changed_at)
                    .bind(ev.last_seen)
                    .bind(source)
                    .bind(id)
                    .bind(boot)
                    .bind(seq)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                    events.push(Arc::new(FacultyEvent { id: event_id, faculty: ev }));
                    event = Some(event_id);
                }
                outcomes.push(Outcome::Applied { event });
            }
            for (desk, _) in desks.values().filter(|(_, dirty)| *dirty) {
                let res = sqlx::query(
                    "UPDATE desks SET last_boot = $1, last_seq = $2, state_boot = $3, state_seq = $4, present = $5, \
                     busy = $6, online_boot = $7, online_seq = $8, online = $9, last_seen = $10, version = version + 1 \
                     WHERE id = $11 AND version = $12",
                )
                .bind(desk.last_boot)
                .bind(desk.last_seq)
                .bind(desk.state_boot)
                .bind(desk.state_seq)
                .bind(desk.present)
                .bind(desk.busy)
                .bind(desk.online_boot)
                .bind(desk.online_seq)
                .bind(desk.online)
                .bind(desk.last_seen)
                .bind(&desk.id)
                .bind(desk.version)
                .execute(&mut *tx)
                .await?;
                if res.rows_affected() != 1 {
                    return Err(StoreError::VersionConflict);
                }
            }
            tx.commit().await?;
            Ok((outcomes, events))
        })
    }
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
