//! The HTTP layer: Leptos pages and server functions, health checks, static assets.
//! [`app`] builds the router (tests drive it with `oneshot`); [`serve`] binds and runs it.

mod assets;
mod error;
mod health;
mod live;
mod metrics;

pub use error::HttpError;

use crate::config::ServeArgs;
use crate::mqtt::IngestStats;
use anyhow::Context;
use app::{App, Assets, ssr::AppContext};
use axum::Router;
use axum::extract::FromRef;
use axum::serve::ListenerExt;
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use tower_http::compression::CompressionLayer;
use tower_http::trace::TraceLayer;

/// Everything a request handler may need; cloned per request (all fields are cheap handles).
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: store::Store,
    pub started: Instant,
    pub leptos: LeptosOptions,
    pub assets: Option<Assets>,
    pub site_root: PathBuf,
    /// Cancelled when the server shuts down: long-lived responses end on it.
    pub shutdown: CancellationToken,
    /// The MQTT ingest's counters and connection state (`None` when not ingesting, as in tests).
    pub ingest: Option<Arc<IngestStats>>,
    /// A stream resuming further back than this many events gets a snapshot instead.
    pub max_replay: i64,
    /// An idle event stream gets a comment this often, so that proxies do not close it.
    pub keep_alive: std::time::Duration,
    pub metrics: Arc<metrics::HttpMetrics>,
    /// Recent events rendered once for all event streams.
    pub frames: Arc<live::Frames>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

impl AppState {
    pub fn new(store: store::Store, site_root: PathBuf) -> AppState {
        let leptos = LeptosOptions::builder()
            .output_name("consultease")
            .site_root(site_root.display().to_string())
            .site_pkg_dir("pkg")
            .build();
        let assets = assets::read_manifest(&site_root);
        AppState {
            store,
            started: Instant::now(),
            leptos,
            assets,
            site_root,
            shutdown: CancellationToken::new(),
            ingest: None,
            max_replay: 1000,
            keep_alive: std::time::Duration::from_secs(15),
            metrics: Arc::default(),
            frames: Arc::default(),
        }
    }

    fn app_context(&self) -> AppContext {
        AppContext { store: self.store.clone(), started: self.started }
    }
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let context = {
        let (cx, assets) = (state.app_context(), state.assets.clone());
        move || {
            provide_context(cx.clone());
            if let Some(a) = assets.clone() {
                provide_context(a);
            }
        }
    };
    Router::new()
        .merge(health::routes())
        .merge(metrics::routes())
        .route("/api/faculty", axum::routing::get(live::faculty))
        .nest_service("/pkg", assets::pkg_service(&state))
        .leptos_routes_with_context(&state, routes, context.clone(), {
            let options = state.leptos.clone();
            move || app::shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<AppState, _>(context, app::shell))
        // Pages and JSON compressed on the fly; /pkg is served precompressed.
        .layer(CompressionLayer::new())
        // Event streams are added after (outside) the compression layer: they are never compressed,
        // and its body wrapper (sized for a brotli encoder, ~6 KB) would sit in every open stream.
        .route("/api/events", axum::routing::get(live::events))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::count_requests))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// A listening socket with a deep accept queue: after a restart, every kiosk and phone reconnects
/// at once, and the default backlog (1,024) would make the surplus wait for SYN retransmissions
/// (1 s, 3 s, 7 s…). The kernel caps it at `net.core.somaxconn`.
fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Starts the MQTT ingest, binds `args.bind` and serves until SIGINT/SIGTERM, then drains open
/// requests and ends long-lived streams.
pub async fn serve(args: ServeArgs, store: store::Store) -> anyhow::Result<()> {
    let fds = crate::sys::raise_fd_limit();
    tracing::debug!(open_files = fds, "file descriptor limit");
    let mut state = AppState::new(store.clone(), args.site_root.clone());
    state.max_replay = args.max_replay;
    let mqtt = args.mqtt.start_broker()?;
    tracing::info!(broker = %format!("{}:{}", mqtt.broker.host, mqtt.broker.port), prefix = %mqtt.prefix, "ingesting desk messages");
    let broker = mqtt.broker.clone();
    let prefix = mqtt.prefix.clone();
    let ingest = crate::mqtt::start(mqtt, store.clone(), state.shutdown.clone());
    state.ingest = Some(ingest.stats.clone());
    if state.assets.is_none() {
        tracing::warn!(site_root = %args.site_root.display(), "no browser bundle manifest: pages will not hydrate until `cargo xtask build` has run");
    }
    let listener = listen(args.bind)
        .with_context(|| format!("cannot listen on {} (is another server running there?)", args.bind))?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    if args.demo {
        crate::demo::run(&store, broker, prefix, std::path::Path::new("data/desk-sim"), state.shutdown.clone()).await?;
    }
    let shutdown = state.shutdown.clone();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            crate::telemetry::shutdown_signal().await;
            tracing::info!("shutting down");
            shutdown.cancel();
        }
    });
    // Live events are small writes: send them at once (no Nagle delay).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // `into_make_service`: each connection gets a reference to the one router. Serving the `Router`
    // itself re-finalises (deep-clones) every route per connection — about 20 KB each, measured
    // with massif, which is most of what an idle event stream costs.
    axum::serve(listener, app(state).into_make_service()).with_graceful_shutdown(shutdown.cancelled_owned()).await?;
    store.close().await;
    Ok(())
}
