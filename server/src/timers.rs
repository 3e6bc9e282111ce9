//! The server's timers (override ends, the presence pass, the event log's retention) run on
//! [`every`].

use std::time::Duration;

/// Runs `job` at once and then every `period` until shutdown; a tick missed while a slow run
/// went on is not made up in a burst. The server's timers (override ends, the presence pass,
/// the event log's retention) run on it.
pub(crate) fn every<F, Fut>(period: Duration, shutdown: tokio_util::sync::CancellationToken, mut job: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            job().await;
        }
    });
}
