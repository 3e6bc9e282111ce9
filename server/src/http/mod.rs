//! The HTTP layer: Leptos pages and server functions, the live stream, health checks, metrics,
//! static assets. [`app`] builds the router (tests drive it with `oneshot`); [`listener`] serves it.

pub mod account;
mod admin;
mod assets;
mod error;
pub mod feeds;
mod health;
pub mod listener;
mod live;
mod metrics;
mod requests;
pub mod security;

pub use error::HttpError;

use crate::mqtt::IngestStatus;
use crate::telemetry::Metrics;
use app::{App, Assets, ssr::AppContext};
use axum::Router;
use axum::extract::FromRef;
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use tower_http::compression::CompressionLayer;
use tower_http::trace::TraceLayer;

/// Everything a request handler may need; cloned per request, so every field is a cheap handle
/// (no `String` or `PathBuf` of its own: their copies were 4 % of the server's CPU under load).
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: store::Store,
    /// Accounts, sign-in, sessions.
    pub auth: auth::Auth,
    pub cookies: app::ssr::session::Cookies,
    /// Where users reach the server (`--public-url`, else the bind address).
    pub public_url: Arc<url::Url>,
    /// Origins allowed to send state-changing requests.
    pub origins: Arc<security::Origins>,
    pub started: Instant,
    pub leptos: LeptosOptions,
    pub assets: Option<Arc<Assets>>,
    pub site_root: Arc<std::path::Path>,
    /// Cancelled when the server shuts down: long-lived responses end on it.
    pub shutdown: CancellationToken,
    /// The MQTT ingest's connection state (`None` when not ingesting, as in some tests).
    pub ingest: Option<Arc<IngestStatus>>,
    /// A stream resuming further back than this many events gets a snapshot instead.
    pub max_replay: i64,
    /// An idle event stream gets a comment this often, so that proxies do not close it.
    pub keep_alive: std::time::Duration,
    /// Every counter the server exports (`/metrics`).
    pub metrics: Arc<Metrics>,
    /// Recent events rendered once for all event streams.
    pub frames: Arc<live::Frames>,
    /// Request events, routed to each student's streams.
    pub feeds: feeds::StudentFeeds,
    /// The university's time zone (`--timezone`): office hours are its local times.
    pub zone: jiff::tz::TimeZone,
    /// Whether this instance is the ingest leader (always, on SQLite).
    pub role: Arc<crate::leader::Role>,
    /// The shared log's follower (PostgreSQL), for `/metrics`.
    pub log: Option<Arc<store::LogFollower>>,
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
        let assets = assets::read_manifest(&site_root).map(Arc::new);
        let hasher = auth::Hasher::new(1).unwrap_or_else(|_| auth::Hasher::for_tests());
        let bind: std::net::SocketAddr = ([127, 0, 0, 1], 3000).into();
        let public = url::Url::parse("http://127.0.0.1:3000").expect("a constant URL parses");
        AppState {
            zone: jiff::tz::TimeZone::system(),
            auth: auth::Auth::new(store.clone(), hasher),
            feeds: feeds::StudentFeeds::new(store.clone()),
            cookies: app::ssr::session::Cookies { secure: true },
            origins: Arc::new(security::Origins::new(&public, bind, false)),
            public_url: Arc::new(public),
            store,
            started: Instant::now(),
            leptos,
            assets,
            site_root: site_root.into(),
            shutdown: CancellationToken::new(),
            ingest: None,
            max_replay: 1000,
            keep_alive: std::time::Duration::from_secs(15),
            metrics: Arc::default(),
            frames: Arc::default(),
            role: Arc::default(),
            log: None,
        }
    }

    fn app_context(&self) -> AppContext {
        AppContext {
            store: self.store.clone(),
            auth: self.auth.clone(),
            cookies: self.cookies,
            started: self.started,
            public_url: self.public_url.to_string(),
            system: Arc::new(Probe { metrics: self.metrics.clone(), ingest: self.ingest.clone() }),
            local: Arc::new(Zone(self.zone.clone())),
        }
    }
}

/// The university's local time, from `--timezone`.
#[derive(Debug)]
struct Zone(jiff::tz::TimeZone);

impl app::ssr::LocalClock for Zone {
    fn utc_offset_min(&self, at_ms: i64) -> i32 {
        let at = jiff::Timestamp::from_millisecond(at_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        self.0.to_offset(at).seconds() / 60
    }
}

/// The admin's system page reads the same counters `/metrics` exports and the state `/readyz` reports.
#[derive(Debug)]
struct Probe {
    metrics: Arc<Metrics>,
    ingest: Option<Arc<IngestStatus>>,
}

impl app::ssr::SystemProbe for Probe {
    fn numbers(&self) -> app::ssr::ProcessNumbers {
        let m = &self.metrics;
        app::ssr::ProcessNumbers {
            broker: self.ingest.as_ref().map(|s| s.describe().to_owned()),
            live_streams: m.sse_clients.get(),
            mqtt_received: m.mqtt_received.get(),
            mqtt_applied: m.mqtt_applied.get(),
            mqtt_stale: m.mqtt_stale.get(),
            mqtt_rejected: domain::protocol::Reject::LABELS.iter().map(|r| m.rejected(r)).sum(),
        }
    }

    fn desk_info(&self, desk: &str) -> Option<String> {
        let ingest = self.ingest.as_ref()?;
        let infos = ingest.desk_info.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let i = infos.get(desk)?;
        let parts: Vec<String> = [
            i.firmware.as_ref().map(|f| format!("firmware {f}")),
            i.rssi.map(|r| format!("{r} dBm")),
            i.uptime_s
                .map(|u| format!("up {}", app::format::ago(i64::try_from(u).unwrap_or(i64::MAX).saturating_mul(1000)))),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!parts.is_empty()).then(|| parts.join(" · "))
    }
}

/// The app's route list, generated once per process. Generating it sets a process-global flag in
/// `leptos_server` that makes any resource *first polled* meanwhile, on any thread, wait for ever
/// (leptos issue #4773): a router built while another request renders would hang that request.
/// Seen here as a rare hang of a test rendering the board while another test built its router.
fn routes() -> Vec<leptos_axum::AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<leptos_axum::AxumRouteListing>> = std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

/// Each request's trace span: method and path, with any ticket token cut out of the path.
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::debug_span!("request", method = %req.method(), path = %security::loggable_path(req.uri().path()))
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let routes = routes();
    let context = {
        let (cx, assets) = (state.app_context(), state.assets.clone());
        move || {
            provide_context(cx.clone());
            if let Some(a) = assets.as_deref() {
                provide_context(a.clone());
            }
        }
    };
    Router::new()
        .merge(health::routes())
        .merge(metrics::routes())
        .merge(account::routes())
        .merge(admin::routes())
        .merge(requests::routes())
        .route("/api/faculty", axum::routing::get(live::faculty))
        .nest("/pkg", assets::pkg_service(&state))
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
        .merge(requests::stream_routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), security::csrf))
        .layer(axum::middleware::from_fn(security::headers))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::count_requests))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}
