//! Keeps the board's event log to `--event-retention` (default 30 days): `status_events` would
//! otherwise grow for ever (about 1.7 billion rows a day at the ingest's 20,000 changes/s). Runs
//! at start and every hour; deletes in rounds of 10,000 so no transaction holds the log long.
//! Readers stay correct: a stream resuming from before what was deleted gets a snapshot.

use std::time::Duration;
use store::Store;
use tokio_util::sync::CancellationToken;

pub fn start(
    store: Store,
    keep: Duration,
    metrics: std::sync::Arc<crate::telemetry::Metrics>,
    shutdown: CancellationToken,
) {
    if keep.is_zero() {
        tracing::info!("event retention off: the board's event log keeps everything");
        return;
    }
    let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
    crate::timers::every(Duration::from_secs(3600), shutdown, move || {
        let (store, metrics) = (store.clone(), metrics.clone());
        async move {
            let before = store::now_ms().saturating_sub(keep_ms);
            if let Err(e) = store.prune_returns(before).await {
                tracing::warn!(error = %e, "cannot delete old presence returns; trying again in an hour");
            }
            match store.prune_events(before).await {
                Ok(0) => {}
                Ok(n) => {
                    metrics.events_pruned.inc_by(n);
                    tracing::info!(deleted = n, "old board events deleted");
                }
                Err(e) => tracing::warn!(error = %e, "cannot delete old board events; trying again in an hour"),
            }
        }
    });
}
