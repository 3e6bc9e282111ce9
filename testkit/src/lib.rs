//! ConsultEase's one test harness, shared by every integration test and the load generator:
//!
//! - [`TestServer`]: the real `serve` wiring (`server::process`) on free ports with a throw-away
//!   database, on the embedded broker or an external one;
//! - [`brokers`]: the embedded broker and Mosquitto (required on CI);
//! - [`databases`]: a fresh SQLite or PostgreSQL database (PostgreSQL required on CI);
//! - [`Desk`]: a desk unit over MQTT, speaking docs/PROTOCOL.md through `domain::protocol`;
//! - [`sse`]: a frugal live-stream client;
//! - [`Browser`]: HTTP with cookies and a page's request headers (or an attacker's);
//! - [`eventually`], [`unique`]: waiting on a condition, unique names.

pub mod brokers;
mod browser;
pub mod databases;
mod desk;
mod server;
pub mod sse;

pub use brokers::Broker;
pub use browser::{Browser, Reply};
pub use databases::{Database, TestDatabase};
pub use desk::Desk;
pub use server::{TestServer, TestServerBuilder};

use std::time::Duration;

/// Whether services that may be missing on a developer's machine (PostgreSQL, Mosquitto) must be
/// there: set by `.ci/run`, so that CI can never skip their tests silently.
pub fn services_required() -> bool {
    std::env::var("CONSULTEASE_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// A string no other test (in this process or another) uses: for topic prefixes, client ids, names.
pub fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_micros();
    format!("{}-{}-{}", std::process::id(), t % 1_000_000_000, N.fetch_add(1, Ordering::Relaxed))
}

/// Waits (up to 20 s) until `check` holds; panics naming `what` otherwise. Correctness, not speed:
/// the bound is generous.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}
