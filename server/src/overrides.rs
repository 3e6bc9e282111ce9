//! Ends admins' status overrides at their end time ("in class until 14:30"). The end time is in the
//! database, so an override ends on time after a restart too, and once: clearing it is the same
//! transaction as the board's event. A check a second is one query on the faculty table (hundreds of rows).

use std::time::Duration;
use store::Store;
use tokio_util::sync::CancellationToken;

pub fn start(store: Store, shutdown: CancellationToken) {
    crate::timers::every(Duration::from_secs(1), shutdown, move || {
        let store = store.clone();
        async move {
            match store.expire_overrides(store::now_ms()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(ended = n, "status overrides ended at their end time"),
                Err(e) => tracing::warn!(error = %e, "cannot end status overrides; trying again"),
            }
        }
    });
}
