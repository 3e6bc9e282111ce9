//! Who ingests: the leader election of several instances on one PostgreSQL database and one
//! external broker. (With the embedded broker each instance is its own desks' broker and ingests
//! from it: no election.)
//!
//! Exactly the leader subscribes to the desks' topics (with the one persistent client id, so a new
//! leader inherits the broker's backlog of unacknowledged messages) and runs the timers (desk
//! time-out, override ends, request expiry, presence, retention). Every instance serves HTTP,
//! server functions and live streams. The lock is the store's ([`store::LeaderLock`]); here is
//! the loop around it: take it when free, check it every [`CHECK`], and stop the leader's work
//! the moment it is gone. On SQLite the one process leads from the start.

use crate::telemetry::Metrics;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;
use store::Store;
use tokio_util::sync::CancellationToken;

/// How often a follower tries the lock, and the leader checks it still holds it. Why 500 ms: a
/// killed leader's lock is free as soon as PostgreSQL sees its connection close, so failover
/// takes about this long plus the new leader's MQTT connect (measured: BENCHMARKS.md, row 10c).
pub const CHECK: Duration = Duration::from_millis(500);

/// The lock connection must answer within this, or the leader steps down (its connection may be
/// gone without a reset, as when the network between it and the database drops packets).
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// This instance's role, as `/readyz` and `/metrics` say it.
#[derive(Debug, Default)]
pub struct Role {
    leader: AtomicBool,
}

impl Role {
    pub fn is_leader(&self) -> bool {
        self.leader.load(Relaxed)
    }

    pub fn as_str(&self) -> &'static str {
        if self.is_leader() { "leader" } else { "follower" }
    }
}

/// Runs `lead` for every term this instance leads, with a token cancelled when the term ends
/// (the lock was lost, or shutdown). Returns the role's handle at once. Without `elect` the
/// instance leads from the start and for good (an embedded broker: each instance ingests from
/// its own).
pub fn run<F>(store: Store, elect: bool, metrics: Arc<Metrics>, shutdown: CancellationToken, mut lead: F) -> Arc<Role>
where
    F: FnMut(CancellationToken) + Send + 'static,
{
    let role = Arc::new(Role::default());
    let out = role.clone();
    tokio::spawn(async move {
        if !elect {
            begin(&role, &metrics);
            lead(shutdown.child_token());
            return;
        }
        let mut failures = 0u32;
        let mut candidate: Option<store::LeaderLock> = None;
        while !shutdown.is_cancelled() {
            let tried = match candidate.as_mut() {
                Some(lock) => lock.try_acquire().await,
                None => match store.leader_lock().await {
                    Ok(lock) => candidate.insert(lock).try_acquire().await,
                    Err(e) => Err(e),
                },
            };
            match tried {
                Ok(true) => {
                    failures = 0;
                    let Some(mut lock) = candidate.take() else { continue };
                    let term = shutdown.child_token();
                    begin(&role, &metrics);
                    lead(term.clone());
                    let lost = hold(&mut lock, &shutdown).await;
                    term.cancel();
                    role.leader.store(false, Relaxed);
                    metrics.leader.set(0);
                    if lost {
                        metrics.leader_lost.inc();
                        tracing::warn!(
                            "lost the leader's lock (its database connection ended); the ingest stopped here"
                        );
                    } else {
                        lock.release().await;
                    }
                }
                Ok(false) => failures = 0,
                Err(e) => {
                    // The candidate's connection is gone (or never opened): a new one next time.
                    candidate = None;
                    failures += 1;
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(error = %e, failures, "cannot try the leader's lock");
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(CHECK) => {}
            }
        }
    });
    out
}

fn begin(role: &Role, metrics: &Metrics) {
    role.leader.store(true, Relaxed);
    metrics.leader.set(1);
    metrics.leader_terms.inc();
    tracing::info!("this instance is the ingest leader");
}

/// Holds the lock until shutdown (`false`) or until it is lost (`true`).
async fn hold(lock: &mut store::LeaderLock, shutdown: &CancellationToken) -> bool {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(CHECK) => {}
        }
        match tokio::time::timeout(CHECK_TIMEOUT, lock.check()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the leader's lock connection failed");
                return true;
            }
            Err(_) => {
                tracing::warn!("the leader's lock connection did not answer within {CHECK_TIMEOUT:?}");
                return true;
            }
        }
    }
}
