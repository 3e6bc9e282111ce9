//! Server-side sessions, failed sign-in records, and the append-only audit log.

use crate::{Result, Store, StoreError};
use domain::auth::{Attempts, Role};
use serde::Serialize;

/// A session's use waiting to be written: (token hash, when, told when written).
pub(crate) type Touch = (String, i64, tokio::sync::oneshot::Sender<()>);

/// Sessions' uses waiting for their group commit.
pub(crate) type Touches = crate::group::Group<Touch>;

/// A session as stored (the token itself is never stored, only its SHA-256).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRow {
    pub role: Role,
    pub subject_id: i64,
    pub kiosk_id: Option<i64>,
    pub created_at: i64,
    pub last_seen: i64,
}

/// One audit entry to write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditEntry {
    /// `admin:NAME`, `student:NUMBER`, `cli`, `system`, or, for a failed sign-in, what was claimed.
    pub actor: String,
    pub action: String,
    pub subject: Option<String>,
    /// JSON: the before/after of an edit, a reason.
    pub detail: Option<String>,
    pub client_addr: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: Option<String>,
    pub detail: Option<String>,
    pub client_addr: Option<String>,
    pub user_agent: Option<String>,
}

pub(crate) const AUDIT_INSERT: &str = "INSERT INTO audit (at, actor, action, subject, detail, client_addr, user_agent) \
                            VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Writes an audit entry on a connection inside the caller's transaction (a macro: written per
/// backend, as `on_tx!` bodies are).
macro_rules! audit_in {
    ($conn:expr, $a:expr) => {{
        let a: &$crate::AuditEntry = $a;
        sqlx::query($crate::sessions::AUDIT_INSERT)
            .bind($crate::now_ms())
            .bind(a.actor.as_str())
            .bind(a.action.as_str())
            .bind(a.subject.as_deref())
            .bind(a.detail.as_deref())
            .bind(a.client_addr.as_deref())
            .bind(a.user_agent.as_deref())
            .execute($conn)
            .await
            .map(drop)
    }};
}
pub(crate) use audit_in;

impl Store {
    /// Starts a session under `token_hash`, first ending `replaces` (the session the browser had
    /// before signing in, if any: a sign-in always gets a new id), and writes `audit`, in one
    /// transaction.
    pub async fn start_session(
        &self,
        token_hash: &str,
        row: &SessionRow,
        replaces: Option<&str>,
        audit: &AuditEntry,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        on_tx!(&mut tx, c => {
            if let Some(old) = replaces {
                sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(old).execute(&mut **c).await?;
            }
            sqlx::query(
                "INSERT INTO sessions (token_hash, role, subject_id, kiosk_id, created_at, last_seen) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(token_hash)
            .bind(row.role.as_str())
            .bind(row.subject_id)
            .bind(row.kiosk_id)
            .bind(row.created_at)
            .bind(row.last_seen)
            .execute(&mut **c)
            .await?;
            audit_in!(&mut **c, audit)?
        });
        tx.commit().await
    }

    pub async fn session(&self, token_hash: &str) -> Result<Option<SessionRow>> {
        let sql = "SELECT role, subject_id, kiosk_id, created_at, last_seen FROM sessions WHERE token_hash = $1";
        let row: Option<(String, i64, Option<i64>, i64, i64)> =
            on_db!(&self.db, pool => sqlx::query_as(sql).bind(token_hash).fetch_optional(pool).await?);
        row.map(|(role, subject_id, kiosk_id, created_at, last_seen)| {
            let role = Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("session role {role:?}")))?;
            Ok(SessionRow { role, subject_id, kiosk_id, created_at, last_seen })
        })
        .transpose()
    }

    /// Marks a session used at `now`. Sessions' uses arriving together are written together (group
    /// commit, `crate::group`), in one statement, on the writer's connection behind the store's
    /// other writes. Why: a student's session is written at most every thirtieth of its idle limit,
    /// but a student asks seldom, so nearly every request writes it: at 2,000 requests/s from
    /// 8,000 students those were 2,000 transactions a second of their own, and the consultation
    /// loop fell behind at half that rate (`loadgen --consult`, BENCHMARKS.md row 8b″).
    ///
    /// A write that fails is logged, not returned: the session then ends up to one interval early
    /// (never late), and the request it came with goes on.
    pub async fn touch_session(&self, token_hash: &str, now: i64) -> Result<()> {
        let (done, written) = tokio::sync::oneshot::channel();
        if let Some(lead) = self.touches.push((token_hash.to_owned(), now, done)) {
            let store = self.clone();
            tokio::spawn(async move { store.lead_touches(lead).await });
        }
        let _ = written.await;
        Ok(())
    }

    /// Writes what waits, a group at a time, until nothing does.
    async fn lead_touches(&self, lead: crate::group::Lead<Touch>) {
        loop {
            // SQLite has one writer: queue behind the store's other writes rather than meet them
            // at the database, whose busy handler sleeps (1, 2, 5, 10 ms …).
            let order = match self.db {
                crate::Db::Sqlite(_) => Some(self.write_order.lock().await),
                crate::Db::Postgres(_) => None,
            };
            let Some(group) = lead.take() else { return };
            // The newest use of each session.
            let mut newest: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
            for (hash, now, _) in &group {
                let at = newest.entry(hash.as_str()).or_insert(*now);
                *at = (*at).max(*now);
            }
            let uses: Vec<(&str, i64)> = newest.into_iter().collect();
            if let Err(e) = self.write_touches(&uses).await {
                tracing::warn!(error = %e, sessions = uses.len(), "cannot record sessions' last use");
            }
            drop(order);
            for (_, _, done) in group {
                let _ = done.send(());
            }
        }
    }

    async fn write_touches(&self, uses: &[(&str, i64)]) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let params = tx.params();
        for chunk in crate::ingest::shaped(uses) {
            let sql = format!(
                "UPDATE sessions SET last_seen = v.column2 FROM (VALUES {}) AS v \
                 WHERE sessions.token_hash = v.column1 AND sessions.last_seen < v.column2",
                crate::ingest::typed_rows(params, chunk.len(), &["TEXT", "BIGINT"])
            );
            on_tx!(&mut tx, c => {
                let mut q = sqlx::query(&sql);
                for (hash, at) in chunk {
                    q = q.bind(*hash).bind(*at);
                }
                q.execute(&mut **c).await.map(drop)?
            });
        }
        tx.commit().await
    }

    /// Ends a session; writes `audit` when it existed. Returns whether it existed.
    pub async fn end_session(&self, token_hash: &str, audit: Option<&AuditEntry>) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let n = on_tx!(&mut tx, c => {
            sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash).execute(&mut **c).await?.rows_affected()
        });
        if let (1.., Some(a)) = (n, audit) {
            on_tx!(&mut tx, c => audit_in!(&mut **c, a)?);
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Failed sign-in records for `keys` (a key never failed has the default, empty record).
    pub async fn attempts(&self, keys: &[&str]) -> Result<Vec<Attempts>> {
        let sql = "SELECT failures, window_start, locked_until FROM sign_in_attempts WHERE key = $1";
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let row: Option<(i64, i64, i64)> =
                on_db!(&self.db, pool => sqlx::query_as(sql).bind(*key).fetch_optional(pool).await?);
            out.push(row.map_or_else(Attempts::default, |(f, w, l)| Attempts {
                failures: u32::try_from(f).unwrap_or(u32::MAX),
                window_start: w,
                locked_until: l,
            }));
        }
        Ok(out)
    }

    /// Stores the new records of `keys` and writes `audit`, in one transaction.
    pub async fn record_attempts(&self, records: &[(&str, Attempts)], audit: &[AuditEntry]) -> Result<()> {
        let sql = "INSERT INTO sign_in_attempts (key, failures, window_start, locked_until) VALUES ($1, $2, $3, $4) \
                   ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, window_start = excluded.window_start, \
                   locked_until = excluded.locked_until";
        let mut tx = self.write_tx().await?;
        for (key, a) in records {
            on_tx!(&mut tx, c => {
                sqlx::query(sql)
                    .bind(*key)
                    .bind(i64::from(a.failures))
                    .bind(a.window_start)
                    .bind(a.locked_until)
                    .execute(&mut **c)
                    .await
                    .map(drop)?
            });
        }
        for a in audit {
            on_tx!(&mut tx, c => audit_in!(&mut **c, a)?);
        }
        tx.commit().await
    }

    /// Forgets the failures of `key` (after a successful sign-in).
    pub async fn clear_attempts(&self, key: &str) -> Result<()> {
        on_db!(&self.db, pool => {
            sqlx::query("DELETE FROM sign_in_attempts WHERE key = $1").bind(key).execute(pool).await.map(drop)?
        });
        Ok(())
    }

    /// Appends one entry to the audit log.
    pub async fn audit(&self, entry: &AuditEntry) -> Result<()> {
        let mut tx = self.write_tx().await?;
        on_tx!(&mut tx, c => audit_in!(&mut **c, entry)?);
        tx.commit().await
    }

    /// The newest `limit` audit entries, newest first.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditRow>> {
        self.audit_search(&AuditFilter::default(), limit).await
    }

    /// Audit entries matching `filter`, newest first, at most `limit`.
    pub async fn audit_search(&self, filter: &AuditFilter, limit: i64) -> Result<Vec<AuditRow>> {
        // Each condition holds when its parameter is NULL, so one statement serves every filter.
        let sql = "SELECT id, at, actor, action, subject, detail, client_addr, user_agent FROM audit \
                   WHERE ($1 IS NULL OR actor = $1) AND ($2 IS NULL OR action = $2) \
                   AND ($3 IS NULL OR at >= $3) AND ($4 IS NULL OR at < $4) ORDER BY id DESC LIMIT $5";
        Ok(on_db!(&self.db, pool => sqlx::query_as(sql)
            .bind(filter.actor.as_deref())
            .bind(filter.action.as_deref())
            .bind(filter.from)
            .bind(filter.to)
            .bind(limit)
            .fetch_all(pool)
            .await?))
    }
}

/// Which audit entries to read; `None` fields match everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Unix ms, inclusive.
    pub from: Option<i64>,
    /// Unix ms, exclusive.
    pub to: Option<i64>,
}
