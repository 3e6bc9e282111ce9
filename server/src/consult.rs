//! The consultation loop's background work, beside the MQTT ingest:
//!
//! - publish each desk's queue after every committed change: the whole queue, retained, QoS 1,
//!   read from the committed state, with its version (a desk ignores anything not newer);
//! - release held requests when their faculty member becomes available;
//! - expire requests that waited too long (`--hold-expiry`, `--request-expiry`).

use domain::Status;
use domain::protocol::queue_topic;
use rumqttc::{AsyncClient, QoS};
use std::collections::BTreeSet;
use std::time::Duration;
use store::Store;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug)]
pub struct ConsultConfig {
    pub prefix: String,
    pub hold_expiry: Duration,
    pub request_expiry: Duration,
}

pub fn start(store: Store, client: AsyncClient, config: ConsultConfig, shutdown: CancellationToken) {
    tokio::spawn(publisher(store.clone(), client, config.prefix.clone(), shutdown.clone()));
    tokio::spawn(releaser(store.clone(), shutdown.clone()));
    tokio::spawn(expirer(store, config, shutdown));
}

/// Publishes the queues of the faculty members the store says changed. A burst of changes to one
/// queue is one publish (of the newest state).
async fn publisher(store: Store, client: AsyncClient, prefix: String, shutdown: CancellationToken) {
    let mut rx = store.queues_bus().subscribe();
    // At start (and after falling behind): every queue, so that a broker without persistence, or a
    // desk that missed one, gets the current one.
    let mut pending: BTreeSet<i64> = store.faculty_with_queues().await.unwrap_or_default().into_iter().collect();
    // And every queue once more when a former leader has surely stopped (it steps down within
    // `leader::CHECK` + its check's timeout of losing the lock): a snapshot it read before the
    // handover and published late may have replaced a newer retained one.
    let resettle = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut resettled = false;
    loop {
        loop {
            match rx.try_recv() {
                Ok(id) => {
                    pending.insert(id);
                }
                Err(TryRecvError::Lagged(_)) => pending.extend(store.faculty_with_queues().await.unwrap_or_default()),
                Err(TryRecvError::Empty) | Err(TryRecvError::Closed) => break,
            }
        }
        if shutdown.is_cancelled() {
            return; // this term is over: another leader publishes now
        }
        // Every queue that changed since the last round, read together (one consistent read).
        let due: Vec<i64> = std::mem::take(&mut pending).into_iter().collect();
        match store.queue_snapshots(&due).await {
            Ok(mut queues) => {
                for fid in due {
                    let Some((desk, snapshot)) = queues.remove(&fid) else { continue };
                    if shutdown.is_cancelled() {
                        return;
                    }
                    if let Err(e) =
                        client.publish(queue_topic(&prefix, &desk), QoS::AtLeastOnce, true, snapshot.encode()).await
                    {
                        tracing::warn!(error = %e, desk, "cannot publish a desk's queue");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, queues = due.len(), "cannot read the desks' queues; retrying");
                pending.extend(due);
            }
        }
        let next = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = rx.recv() => r,
            // A queue that failed to read is tried again.
            _ = tokio::time::sleep(Duration::from_secs(1)), if !pending.is_empty() => continue,
            _ = tokio::time::sleep_until(resettle), if !resettled => {
                resettled = true;
                pending.extend(store.faculty_with_queues().await.unwrap_or_default());
                continue;
            }
        };
        match next {
            Ok(id) => {
                pending.insert(id);
            }
            Err(RecvError::Lagged(_)) => pending.extend(store.faculty_with_queues().await.unwrap_or_default()),
            Err(RecvError::Closed) => return,
        }
    }
}

/// Watches the board's events: when anyone becomes available, looks (once per 250 ms at most) for
/// held requests to release; and every 30 s regardless (events missed while lagging, a restart).
async fn releaser(store: Store, shutdown: CancellationToken) {
    let mut rx = store.bus().subscribe();
    let mut due = true;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut sweeps = 0u32;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            ev = rx.recv() => match ev {
                Ok(ev) => due |= ev.faculty.status == Status::Available,
                Err(RecvError::Lagged(_)) => due = true,
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                sweeps += 1;
                if !(due || sweeps.is_multiple_of(120)) {
                    continue;
                }
                due = false;
                match store.releasable().await {
                    Ok(ids) => {
                        for fid in ids {
                            match store.release_held(fid).await {
                                Ok(n) if n > 0 => tracing::info!(faculty = fid, released = n, "held requests joined the queue"),
                                Ok(_) => {}
                                Err(e) => tracing::warn!(error = %e, faculty = fid, "cannot release held requests"),
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot look for held requests"),
                }
            }
        }
    }
}

async fn expirer(store: Store, config: ConsultConfig, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match store.expire_requests(ms(config.hold_expiry), ms(config.request_expiry)).await {
            Ok(n) if n > 0 => tracing::info!(expired = n, "requests expired"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot expire requests"),
        }
    }
}
