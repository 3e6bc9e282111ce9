//! Draws returns to availability from the board's event log every minute
//! (`Store::record_returns`), for "usually back around …". A minute late is fine for an estimate
//! over weeks, and the ingest's hot path stays as measured: at most [`PER_TICK`] events a minute,
//! with a pause between rounds. A department's desks change a few hundred times an hour, far
//! below that; under a synthetic 20,000 changes/s the pass falls behind (the estimate then lags)
//! rather than slow the ingest.

use std::time::Duration;
use store::Store;
use tokio_util::sync::CancellationToken;

/// Events read per round.
const ROUND: i64 = 5_000;

/// Rounds per minute at most.
const PER_TICK: usize = 20;

pub fn start(store: Store, shutdown: CancellationToken) {
    crate::timers::every(Duration::from_secs(60), shutdown, move || {
        let store = store.clone();
        async move {
            for _ in 0..PER_TICK {
                match store.record_returns(ROUND).await {
                    Ok(n) if n as i64 == ROUND => {
                        // Behind: another round, after the ingest has had the database.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read returns from the event log; trying again in a minute");
                        break;
                    }
                }
            }
        }
    });
}
