//! Several instances on one PostgreSQL database (docs/ARCHITECTURE.md, "Several instances").
//!
//! - **Leadership**: one instance ingests desk messages and runs the timers. It holds a session
//!   advisory lock on a dedicated connection ([`LeaderLock`]); when that connection ends (the
//!   process died, the database restarted, the connection was killed) PostgreSQL releases the lock
//!   and another instance takes it. Correctness never rests on there being one leader — every
//!   write is a versioned transaction and every desk message carries its clock — leadership keeps
//!   one desk's messages on one subscriber, in order, and the timers from running N times.
//! - **Live events**: with a shared log ([`Store::with_shared_log`]) the buses are fed by
//!   [`Store::follow_log`], which reads the event logs from this instance's own cursors whenever
//!   a NOTIFY (migration 0011) says there is something new, and every [`POLL`] regardless. The
//!   writers' own after-commit publishing is then off, so every event reaches the buses once, in
//!   id order, whichever instance committed it.
//!
//! Why id order holds: every transaction that appends to a log takes the event-log lock first
//! ([`Store::event_tx`]) and holds it until its commit is visible, so an id becomes visible only
//! after every smaller one that will ever exist.

use crate::requests::RequestEvent;
use crate::{Db, Result, Store, StoreError};
use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The advisory lock key of the ingest leader (another key than the event-log lock's).
const LEADER_KEY: i64 = 7_290_002;

/// The NOTIFY channel of migration 0011.
const CHANNEL: &str = "consultease";

/// How often the log is read without a notification: the safety net for a notification lost
/// while the listener was reconnecting (it also re-reads at once on every reconnect).
pub const POLL: Duration = Duration::from_secs(2);

/// Events read per round.
const PAGE: i64 = 1000;

/// A candidate for the ingest leader's lock: one dedicated connection, kept across tries (not a
/// new backend every try). Dropping it ends the connection, which releases the lock if held.
pub struct LeaderLock {
    /// `None` on SQLite: one process owns the file, and so leads.
    conn: Option<PgConnection>,
    held: bool,
}

impl std::fmt::Debug for LeaderLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderLock").field("postgres", &self.conn.is_some()).field("held", &self.held).finish()
    }
}

/// Server-side limits on the lock's connection, so that PostgreSQL itself frees the lock of a
/// leader that stopped answering — frozen (SIGSTOP), hung, or cut off without a reset — instead
/// of holding it until the operating system's keepalive (2 h) notices. The leader sends a round
/// trip every 500 ms, so 3 s idle means it is gone. `idle_session_timeout` needs PostgreSQL 14;
/// older servers keep only the TCP limits.
const LOCK_SESSION: [&str; 5] = [
    "SET idle_session_timeout = '3s'",
    "SET tcp_keepalives_idle = 2",
    "SET tcp_keepalives_interval = 1",
    "SET tcp_keepalives_count = 2",
    "SET tcp_user_timeout = 3000",
];

impl LeaderLock {
    /// Tries to take the lock (a no-op once held): `true` when this instance now holds it.
    pub async fn try_acquire(&mut self) -> Result<bool> {
        let Some(conn) = self.conn.as_mut() else { return Ok(true) };
        if !self.held {
            self.held =
                sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(LEADER_KEY).fetch_one(&mut *conn).await?;
        }
        Ok(self.held)
    }

    /// A round trip on the lock's connection: `Ok` while it lives (and with it a held lock). An
    /// error means the connection is gone, and with it the lock: open a new candidate.
    pub async fn check(&mut self) -> Result<()> {
        if let Some(conn) = self.conn.as_mut() {
            sqlx::query("SELECT 1").execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Gives the lock up at once (a graceful stop: the next leader need not wait).
    pub async fn release(mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
    }
}

/// What [`Store::follow_log`] has seen, for `/metrics`.
#[derive(Debug, Default)]
pub struct LogFollower {
    /// Times the listener's connection was lost (each one read again from the cursor).
    pub gaps: AtomicU64,
    /// Milliseconds from the newest event's write to its publication here, at the last round.
    pub lag_ms: AtomicI64,
    /// Events published from the log.
    pub events: AtomicU64,
}

impl Store {
    /// This store's buses carry what every instance commits, read back from the logs by
    /// [`Store::follow_log`] (which must then run); its own writes no longer publish directly.
    /// For PostgreSQL only (one SQLite file serves one process); a no-op elsewhere.
    pub fn with_shared_log(mut self) -> Store {
        self.shared_log = matches!(self.db, Db::Postgres(_));
        self
    }

    /// Whether the buses are fed from the shared log.
    pub fn shared_log(&self) -> bool {
        self.shared_log
    }

    /// A candidate for the ingest leader's lock, on a connection of its own (see [`LeaderLock`]).
    /// On SQLite it always holds.
    pub async fn leader_lock(&self) -> Result<LeaderLock> {
        let Db::Postgres(pool) = &self.db else { return Ok(LeaderLock { conn: None, held: true }) };
        let mut conn = PgConnection::connect_with(&pool.connect_options()).await?;
        for set in LOCK_SESSION {
            if let Err(e) = sqlx::query(set).execute(&mut conn).await {
                tracing::debug!(error = %e, set, "this PostgreSQL does not take a limit on the leader's connection");
            }
        }
        Ok(LeaderLock { conn: Some(conn), held: false })
    }

    /// Feeds this store's buses from the shared log until `shutdown` (see the module's notes).
    /// Starts from the newest events as of now; call before serving pages.
    pub async fn follow_log(&self, shutdown: CancellationToken) -> Result<Arc<LogFollower>> {
        let Db::Postgres(pool) = &self.db else {
            return Err(StoreError::Corrupt("only a PostgreSQL store follows a shared log".into()));
        };
        let stats = Arc::new(LogFollower::default());
        let mut cursors =
            Cursors { events: self.newest_event_id().await?, requests: self.newest_request_event_id().await? };
        let (store, pool, out) = (self.clone(), pool.clone(), stats.clone());
        tokio::spawn(async move {
            let mut failures = 0u32;
            while !shutdown.is_cancelled() {
                match follow(&store, &pool, &mut cursors, &out, &shutdown).await {
                    Ok(()) => return,
                    Err(e) => {
                        out.gaps.fetch_add(1, Relaxed);
                        failures += 1;
                        if failures == 1 || failures.is_power_of_two() {
                            tracing::warn!(error = %e, failures, "lost the database's notifications; reading the log again from this instance's cursor");
                        }
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                        }
                    }
                }
            }
        });
        Ok(stats)
    }

    /// The newest request event id (0 when none).
    async fn newest_request_event_id(&self) -> Result<i64> {
        let sql = "SELECT COALESCE(MAX(id), 0) FROM request_events";
        Ok(on_db!(&self.db, pool => sqlx::query_scalar(sql).fetch_one(pool).await)?)
    }

    /// Request events after `cursor`, oldest first (each request once, at its newest event, with the
    /// request as it is now), and the cursor after them.
    async fn request_events_since(&self, cursor: i64) -> Result<(Vec<RequestEvent>, i64, bool)> {
        let sql = "SELECT id, request_id, student_id FROM request_events WHERE id > $1 ORDER BY id LIMIT $2";
        let rows: Vec<(i64, i64, i64)> =
            on_db!(&self.db, pool => sqlx::query_as(sql).bind(cursor).bind(PAGE).fetch_all(pool).await)?;
        let full = rows.len() as i64 == PAGE;
        let next = rows.last().map_or(cursor, |r| r.0);
        let mut newest = std::collections::HashMap::new();
        for (id, request, student) in rows {
            newest.insert(request, (id, student));
        }
        let mut newest: Vec<_> = newest.into_iter().collect();
        newest.sort_by_key(|(_, (id, _))| *id);
        let ids: Vec<i64> = newest.iter().map(|(request, _)| *request).collect();
        let mut views = self.request_views(&ids).await?;
        let out = newest
            .into_iter()
            .filter_map(|(request, (id, student_id))| {
                views.remove(&request).map(|request| RequestEvent { id, student_id, request })
            })
            .collect();
        Ok((out, next, full))
    }

    /// Publishes the logs' events after the cursors; advances them. The two logs are read
    /// independently: a failure in one does not hold the other back.
    async fn catch_up(&self, cursors: &mut Cursors, stats: &LogFollower) -> Result<()> {
        let board = self.catch_up_board(cursors, stats).await;
        let requests = self.catch_up_requests(cursors).await;
        board.and(requests)
    }

    async fn catch_up_board(&self, cursors: &mut Cursors, stats: &LogFollower) -> Result<()> {
        loop {
            let events = self.events_after(cursors.events, PAGE).await?;
            let full = events.len() as i64 == PAGE;
            if let Some(last) = events.last().map(|e| e.id) {
                // Publish, then advance, then measure: nothing after reading may fail between
                // advancing the cursor and publishing. (Found by the chaos suite's
                // `db-connections`: the lag query failed on a killed connection after the cursor
                // had moved, and one event never reached this instance's streams.)
                stats.events.fetch_add(events.len() as u64, Relaxed);
                self.bus.publish(events.into_iter().map(Arc::new).collect());
                cursors.events = last;
                let at: std::result::Result<Option<i64>, sqlx::Error> = on_db!(&self.db, pool => {
                    sqlx::query_scalar("SELECT at FROM status_events WHERE id = $1").bind(last).fetch_optional(pool).await
                });
                if let Ok(Some(at)) = at {
                    stats.lag_ms.store(crate::now_ms().saturating_sub(at), Relaxed);
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    async fn catch_up_requests(&self, cursors: &mut Cursors) -> Result<()> {
        loop {
            let (events, next, full) = self.request_events_since(cursors.requests).await?;
            cursors.requests = next;
            for ev in events {
                self.requests_bus.publish_one(Arc::new(ev));
            }
            if !full {
                break;
            }
        }
        Ok(())
    }

    /// Every faculty member with a queue: cued after a gap, when a queue change may have been missed.
    async fn cue_all_queues(&self) -> Result<()> {
        for fid in self.faculty_with_queues().await? {
            self.queues_bus.publish_one(fid);
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
struct Cursors {
    events: i64,
    requests: i64,
}

/// One listening connection's life: listen, read everything after the cursors (whatever was
/// missed while not listening), then read again on each notification or every [`POLL`]. Returns
/// `Ok` at shutdown, `Err` when the connection is lost (the caller counts a gap and comes back).
async fn follow(
    store: &Store,
    pool: &sqlx::PgPool,
    cursors: &mut Cursors,
    stats: &LogFollower,
    shutdown: &CancellationToken,
) -> Result<()> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    catch_up(store, cursors, stats).await?;
    store.cue_all_queues().await?;
    loop {
        let mut due = false;
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            n = listener.try_recv() => {
                // `None`: the connection was lost (and is re-opened by the next call); anything
                // sent meanwhile is gone, so this is a gap like an error.
                let Some(n) = n? else { return Err(StoreError::Unreachable("the notification connection closed".into())) };
                due |= note(store, n.payload(), cursors);
                while let Some(n) = listener.next_buffered() {
                    due |= note(store, n.payload(), cursors);
                }
            }
            _ = tokio::time::sleep(POLL) => due = true,
        }
        if due {
            catch_up(store, cursors, stats).await?;
        }
    }
}

/// How long one read of the logs may take before this instance counts a gap and starts over (a
/// pooled connection left half-open by the network would otherwise stall it for the kernel's
/// retransmission time, some 15 minutes, with nobody told).
const READ_TIMEOUT: Duration = Duration::from_secs(10);

async fn catch_up(store: &Store, cursors: &mut Cursors, stats: &LogFollower) -> Result<()> {
    match tokio::time::timeout(READ_TIMEOUT, store.catch_up(cursors, stats)).await {
        Ok(r) => r,
        Err(_) => Err(StoreError::Unreachable(format!("reading the shared log took over {READ_TIMEOUT:?}"))),
    }
}

/// Acts on one notification: a queue cue goes straight to the queue publisher; a log's new id
/// says whether there is anything to read.
fn note(store: &Store, payload: &str, cursors: &Cursors) -> bool {
    let (kind, id) = payload.split_once(':').unwrap_or(("", ""));
    let Ok(id) = id.parse::<i64>() else {
        tracing::warn!(payload, "a notification not of this version's form; reading the log");
        return true;
    };
    match kind {
        "q" => {
            store.queues_bus.publish_one(id);
            false
        }
        "e" => id > cursors.events,
        "r" => id > cursors.requests,
        _ => true,
    }
}
