//! Draws returns to availability from the board's event log every minute
//! (`Store::record_returns`), for "usually back around …". A minute late is fine for an estimate
//! over weeks, and the ingest's hot path stays as measured.

use std::time::Duration;
use store::Store;
use tokio_util::sync::CancellationToken;

/// Events read per transaction.
const ROUND: i64 = 10_000;

pub fn start(store: Store, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            loop {
                match store.record_returns(ROUND).await {
                    Ok(n) if n as i64 == ROUND => continue,
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
