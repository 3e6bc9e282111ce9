//! The HTTP listener: accepts connections and serves the router on each, with the limits a public
//! server needs and `axum::serve` does not set, and a graceful shutdown.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// A listening socket with a deep accept queue: after a restart, every kiosk and phone reconnects
/// at once, and the default backlog (1,024) would make the surplus wait for SYN retransmissions
/// (1 s, 3 s, 7 s…). The kernel caps it at `net.core.somaxconn`.
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Serves `router` on `listener` until `shutdown`, then lets open requests finish (long-lived
/// streams end on the same token) and returns.
///
/// A client must send a request's headers within `header_timeout`, on a new connection and between
/// requests on a kept-alive one. Regression (outside test run): without it (axum's own server sets
/// no timer), 1,000 idle half-open connections were held for ever. Responses being streamed (the
/// live event stream) are not affected: the timer runs only while a request head is awaited.
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken, header_timeout: Duration) {
    // Dropped when the accept loop ends; each connection task holds a receiver, so `closed()` below
    // resolves once every connection is gone.
    let (close_tx, close_rx) = tokio::sync::watch::channel(());
    loop {
        let (tcp, remote) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(err) => {
                    // EMFILE and friends: wait a moment instead of spinning.
                    tracing::warn!(%err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Live events are small writes: send them at once (no Nagle delay).
        let _ = tcp.set_nodelay(true);
        // A clone of the router is a reference count (`Router` is an `Arc` inside).
        let service = router.clone().map_request(move |mut req: axum::http::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(remote));
            req.map(axum::body::Body::new)
        });
        let (shutdown, close_rx) = (shutdown.clone(), close_rx.clone());
        tokio::spawn(async move {
            // HTTP/1.1 only: the auto (h1/h2) builder reads the connection's first bytes to tell the
            // versions apart before any timer runs, so a silent client was never timed out.
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service))
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(err) = result {
                        tracing::trace!(%err, "connection ended with an error");
                    }
                    return;
                }
                _ = shutdown.cancelled() => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
            drop(close_rx);
        });
    }
    drop(close_rx);
    drop(listener);
    close_tx.closed().await;
}
