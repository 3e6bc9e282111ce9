//! Consistent reads: the board's snapshot with its cursor, and the event log after a cursor.

use crate::rows::{VIEW_SELECT, ViewRow};
use crate::{Result, Store, StoreError};
use domain::{FacultyEvent, FacultyView, Snapshot};

#[derive(sqlx::FromRow)]
struct EventRow {
    event_id: i64,
    #[sqlx(flatten)]
    view: ViewRow,
}

/// The id of the newest status event, the event cursor (0 when there is none).
const NEWEST_EVENT_ID: &str = "SELECT COALESCE(MAX(id), 0) FROM status_events";

impl Store {
    /// Every faculty member, and the id of the newest status event the read includes — read in one
    /// transaction, so that the events after `cursor` are exactly the changes the snapshot lacks.
    pub async fn snapshot(&self) -> Result<Snapshot> {
        let sql = format!("{VIEW_SELECT} WHERE f.active ORDER BY f.name, f.id");
        let mut tx = self.read_tx().await?;
        let (cursor, rows): (i64, Vec<ViewRow>) = on_tx!(&mut tx, c => (
            sqlx::query_scalar(NEWEST_EVENT_ID).fetch_one(&mut **c).await?,
            sqlx::query_as(&sql).fetch_all(&mut **c).await?,
        ));
        tx.rollback().await?;
        let faculty = rows.into_iter().map(FacultyView::try_from).collect::<Result<_>>()?;
        Ok(Snapshot { cursor, faculty })
    }

    /// Up to `limit` events after `cursor`, oldest first, each with the faculty row as of that event.
    pub async fn events_after(&self, cursor: i64, limit: i64) -> Result<Vec<FacultyEvent>> {
        let sql = "SELECT e.id AS event_id, f.id, f.name, f.department, e.status, e.present, e.busy, e.desk_online, \
                   e.last_seen, e.changed_at, e.waiting, f.override_note AS note, f.override_expires_at AS until_at, f.active, f.office_hours, e.version \
                   FROM status_events e JOIN faculty f ON f.id = e.faculty_id \
                   WHERE e.id > $1 ORDER BY e.id LIMIT $2";
        let rows: Vec<EventRow> =
            on_db!(&self.db, pool => sqlx::query_as(sql).bind(cursor).bind(limit).fetch_all(pool).await)?;
        rows.into_iter().map(|r| Ok(FacultyEvent { id: r.event_id, faculty: r.view.try_into()? })).collect()
    }

    /// One faculty member as the board shows them.
    pub async fn faculty(&self, id: i64) -> Result<Option<FacultyView>> {
        let sql = format!("{VIEW_SELECT} WHERE f.id = $1");
        let row: Option<ViewRow> = on_db!(&self.db, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?);
        row.map(FacultyView::try_from).transpose()
    }

    /// Colleagues of faculty member `id` in the same department who are available now.
    pub async fn available_colleagues(&self, id: i64) -> Result<Vec<FacultyView>> {
        let sql = format!(
            "{VIEW_SELECT} WHERE f.active AND f.status = 'available' AND f.id <> $1 \
             AND f.department = (SELECT department FROM faculty WHERE id = $1) ORDER BY f.name LIMIT 5"
        );
        let rows: Vec<ViewRow> = on_db!(&self.db, pool => sqlx::query_as(&sql).bind(id).fetch_all(pool).await?);
        rows.into_iter().map(FacultyView::try_from).collect()
    }

    /// Deletes the board's events older than `before` (Unix ms), oldest first, in transactions of at
    /// most 10,000, never the newest event (the cursor every reader resumes from). Raises the
    /// watermark [`Store::events_pruned_through`] in each transaction: a stream resuming from at
    /// or below it gets a snapshot, never a replay with a hole. Returns how many were deleted.
    pub async fn prune_events(&self, before: i64) -> Result<u64> {
        // Ids grow with time (assigned under the write order at commit), so the events older than
        // `before` are a prefix of the log by id: each round looks at the oldest 10,000 only (the
        // primary key's order; no index on `at` to slow every insert).
        const ROUND: i64 = 10_000;
        let boundary = "SELECT MAX(c.id) FROM (SELECT id, at FROM status_events ORDER BY id LIMIT $2) c \
                        WHERE c.at < $1 AND c.id < (SELECT MAX(id) FROM status_events)";
        let mark = "INSERT INTO store_meta (key, value) VALUES ('events_pruned_through', $1) \
                    ON CONFLICT (key) DO UPDATE SET value = excluded.value";
        let mut total = 0;
        loop {
            let mut tx = self.write_tx().await?;
            let upto: Option<i64> =
                on_tx!(&mut tx, c => sqlx::query_scalar(boundary).bind(before).bind(ROUND).fetch_one(&mut **c).await?);
            let Some(upto) = upto else {
                tx.rollback().await?;
                return Ok(total);
            };
            let n = on_tx!(&mut tx, c => {
                sqlx::query("DELETE FROM status_events WHERE id <= $1").bind(upto).execute(&mut **c).await?.rows_affected()
            });
            on_tx!(&mut tx, c => sqlx::query(mark).bind(upto.to_string()).execute(&mut **c).await.map(drop)?);
            tx.commit().await?;
            total += n;
            if n < ROUND as u64 {
                return Ok(total);
            }
        }
    }

    /// The newest event id deleted by [`Store::prune_events`] (0 when none was): events at or below
    /// it are gone, so a reader whose cursor is below it cannot replay.
    pub async fn events_pruned_through(&self) -> Result<i64> {
        let sql = "SELECT value FROM store_meta WHERE key = 'events_pruned_through'";
        let v: Option<String> = on_db!(&self.db, pool => sqlx::query_scalar(sql).fetch_optional(pool).await?);
        v.map_or(Ok(0), |v| v.parse().map_err(|_| StoreError::Corrupt(format!("events_pruned_through {v:?}"))))
    }

    /// How many desk units are online now.
    pub async fn count_online_desks(&self) -> Result<i64> {
        let sql = "SELECT COUNT(*) FROM desks WHERE online";
        Ok(on_db!(&self.db, pool => sqlx::query_scalar(sql).fetch_one(pool).await)?)
    }

    /// The id of the newest status event (0 when there is none).
    pub async fn newest_event_id(&self) -> Result<i64> {
        Ok(on_db!(&self.db, pool => sqlx::query_scalar(NEWEST_EVENT_ID).fetch_one(pool).await)?)
    }
}
