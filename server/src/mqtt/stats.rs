//! Counters of the ingest, read by `/metrics` and by tests.

use domain::protocol::Reject;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct IngestStats {
    pub received: AtomicU64,
    pub applied: AtomicU64,
    pub stale: AtomicU64,
    rejected: [AtomicU64; Reject::LABELS.len()],
    pub batches: AtomicU64,
    pub batch_messages: AtomicU64,
    pub commit_errors: AtomicU64,
    pub desks_timed_out: AtomicU64,
    pub connected: AtomicBool,
    /// The broker accepted our subscription on the current connection.
    pub subscribed: AtomicBool,
}

impl IngestStats {
    pub fn reject(&self, reason: &'static str) {
        if let Some(i) = Reject::LABELS.iter().position(|l| *l == reason) {
            self.rejected[i].fetch_add(1, Relaxed);
        }
    }

    pub fn rejected(&self, reason: &str) -> u64 {
        Reject::LABELS.iter().position(|l| *l == reason).map_or(0, |i| self.rejected[i].load(Relaxed))
    }

    pub fn rejected_by_reason(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Reject::LABELS.iter().zip(&self.rejected).map(|(l, n)| (*l, n.load(Relaxed)))
    }
}
