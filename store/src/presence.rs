//! Returns to availability ("usually back around 13:10", `domain::presence`), drawn from the
//! board's event log by a background pass, so the ingest's hot path does not change.

use crate::{Result, Store, StoreError};
use domain::Status;
use std::collections::HashMap;

impl Store {
    /// Reads up to `limit` board events after the pass's cursor, records the returns among them
    /// (`domain::presence::returns`) and moves the cursor. The reading takes no write lock; the
    /// write is one short transaction (a few multi-row statements), so the ingest, which needs the
    /// same lock on SQLite, waits milliseconds at most (measured: reading 10,000 events inside the
    /// write transaction stalled a 20,000/s ingest for seconds). The cursor moves by
    /// compare-and-set, so two instances never record a return twice. Returns how many events
    /// were read (fewer than `limit`: caught up).
    pub async fn record_returns(&self, limit: i64) -> Result<usize> {
        let mut read = self.read_tx().await?;
        let (cursor, rows, known): (Option<String>, Vec<EventRow>, Vec<(i64, String)>) = on_tx!(&mut read, c => {
            let cursor: Option<String> = sqlx::query_scalar("SELECT value FROM store_meta WHERE key = 'returns_through'")
                .fetch_optional(&mut **c)
                .await?;
            let from: i64 = match &cursor {
                Some(v) => v.parse().map_err(|_| StoreError::Corrupt(format!("returns_through {v:?}")))?,
                None => 0,
            };
            let rows = sqlx::query_as("SELECT id, faculty_id, status, at FROM status_events WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(from)
                .bind(limit)
                .fetch_all(&mut **c)
                .await?;
            let known = sqlx::query_as("SELECT faculty_id, status FROM presence_last").fetch_all(&mut **c).await?;
            (cursor, rows, known)
        });
        read.rollback().await?;
        let Some(&(through, ..)) = rows.last() else { return Ok(0) };
        let mut last: HashMap<i64, Status> =
            known.into_iter().filter_map(|(f, s)| Some((f, Status::parse(&s)?))).collect();
        let before = last.clone();
        let events: Vec<(i64, Status, i64)> =
            rows.iter().filter_map(|(_, f, s, at)| Some((*f, Status::parse(s)?, *at))).collect();
        let found = domain::presence::returns(&mut last, &events);
        let changed: Vec<(i64, &'static str)> =
            last.iter().filter(|(f, s)| before.get(f) != Some(s)).map(|(f, s)| (*f, s.as_str())).collect();

        let mut tx = self.write_tx().await?;
        let moved = on_tx!(&mut tx, c => {
            match &cursor {
                Some(old) => sqlx::query("UPDATE store_meta SET value = $1 WHERE key = 'returns_through' AND value = $2")
                    .bind(through.to_string())
                    .bind(old)
                    .execute(&mut **c)
                    .await?
                    .rows_affected(),
                None => sqlx::query(
                    "INSERT INTO store_meta (key, value) VALUES ('returns_through', $1) ON CONFLICT (key) DO NOTHING",
                )
                .bind(through.to_string())
                .execute(&mut **c)
                .await?
                .rows_affected(),
            }
        });
        if moved != 1 {
            // Another instance moved the cursor meanwhile: its pass recorded these.
            tx.rollback().await?;
            return Ok(0);
        }
        for chunk in found.chunks(500) {
            let sql = format!("INSERT INTO presence_returns (faculty_id, at) VALUES {}", pairs(chunk.len()));
            on_tx!(&mut tx, c => {
                let mut q = sqlx::query(&sql);
                for (faculty, at) in chunk {
                    q = q.bind(faculty).bind(at);
                }
                q.execute(&mut **c).await.map(drop)?
            });
        }
        for chunk in changed.chunks(500) {
            let sql = format!(
                "INSERT INTO presence_last (faculty_id, status) VALUES {} \
                 ON CONFLICT (faculty_id) DO UPDATE SET status = excluded.status",
                pairs(chunk.len())
            );
            on_tx!(&mut tx, c => {
                let mut q = sqlx::query(&sql);
                for (faculty, status) in chunk {
                    q = q.bind(faculty).bind(*status);
                }
                q.execute(&mut **c).await.map(drop)?
            });
        }
        tx.commit().await?;
        Ok(rows.len())
    }

    /// Imports returns (faculty, at) recorded elsewhere: history carried over from the system this
    /// one replaces, and tests that need weeks of it.
    pub async fn add_returns(&self, rows: &[(i64, i64)]) -> Result<()> {
        let mut tx = self.write_tx().await?;
        for (faculty, at) in rows {
            on_tx!(&mut tx, c => {
                sqlx::query("INSERT INTO presence_returns (faculty_id, at) VALUES ($1, $2)")
                    .bind(faculty)
                    .bind(at)
                    .execute(&mut **c)
                    .await
                    .map(drop)?
            });
        }
        tx.commit().await
    }

    /// Every return recorded at or after `since` (Unix ms), as (faculty, at).
    pub async fn returns_since(&self, since: i64) -> Result<Vec<(i64, i64)>> {
        let sql = "SELECT faculty_id, at FROM presence_returns WHERE at >= $1 ORDER BY faculty_id, at";
        Ok(on_db!(&self.db, pool => sqlx::query_as(sql).bind(since).fetch_all(pool).await?))
    }

    /// Faculty member `id`'s returns at or after `since`.
    pub async fn faculty_returns_since(&self, id: i64, since: i64) -> Result<Vec<i64>> {
        let sql = "SELECT at FROM presence_returns WHERE faculty_id = $1 AND at >= $2 ORDER BY at";
        Ok(on_db!(&self.db, pool => sqlx::query_scalar(sql).bind(id).bind(since).fetch_all(pool).await?))
    }

    /// Deletes returns older than `before` (with the event log's retention).
    pub async fn prune_returns(&self, before: i64) -> Result<u64> {
        let sql = "DELETE FROM presence_returns WHERE at < $1";
        Ok(on_db!(&self.db, pool => sqlx::query(sql).bind(before).execute(pool).await?.rows_affected()))
    }
}

/// (id, faculty, status, at) of a board event.
type EventRow = (i64, i64, String, i64);

/// `($1, $2), ($3, $4), …` for `n` rows of two.
fn pairs(n: usize) -> String {
    (0..n).map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2)).collect::<Vec<_>>().join(", ")
}
