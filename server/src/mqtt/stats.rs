//! Counters of the ingest, read by `/metrics` and by tests.

use crate::telemetry::histogram::{Histogram, SECONDS, SIZES};
use domain::protocol::Reject;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

#[derive(Debug)]
pub struct IngestStats {
    pub received: AtomicU64,
    /// Messages acknowledged to the broker (after their commit, or rejection).
    pub acked: AtomicU64,
    pub applied: AtomicU64,
    pub stale: AtomicU64,
    rejected: [AtomicU64; Reject::LABELS.len()],
    pub batches: AtomicU64,
    pub commit_errors: AtomicU64,
    pub desks_timed_out: AtomicU64,
    pub connected: AtomicBool,
    /// The broker accepted our subscription on the current connection.
    pub subscribed: AtomicBool,
    /// Messages per committed transaction.
    pub batch_size: Histogram,
    /// Time to apply and commit one batch.
    pub commit_seconds: Histogram,
    /// From a message's arrival at the server to its commit.
    pub apply_latency_seconds: Histogram,
}

impl Default for IngestStats {
    fn default() -> Self {
        IngestStats {
            received: AtomicU64::default(),
            acked: AtomicU64::default(),
            applied: AtomicU64::default(),
            stale: AtomicU64::default(),
            rejected: Default::default(),
            batches: AtomicU64::default(),
            commit_errors: AtomicU64::default(),
            desks_timed_out: AtomicU64::default(),
            connected: AtomicBool::default(),
            subscribed: AtomicBool::default(),
            batch_size: Histogram::new(SIZES),
            commit_seconds: Histogram::new(SECONDS),
            apply_latency_seconds: Histogram::new(SECONDS),
        }
    }
}

impl IngestStats {
    pub fn reject(&self, reason: &'static str) {
        if let Some(i) = Reject::LABELS.iter().position(|l| *l == reason) {
            self.rejected[i].fetch_add(1, Relaxed);
        }
    }

    pub fn rejected_by_reason(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Reject::LABELS.iter().zip(&self.rejected).map(|(l, n)| (*l, n.load(Relaxed)))
    }
}
