//! The `serve` process: how its parts are started, wired together and stopped.
//!
//! [`start`] brings them up in order — the broker (external, or the embedded one), on PostgreSQL the
//! shared log's follower, the leader election whose terms run the MQTT ingest and the timers
//! (`LeaderWork`), the HTTP listener, the demo desks — and returns a [`Running`] server; [`serve`] is that plus
//! waiting for SIGINT/SIGTERM and a graceful stop. Tests start the same wiring on free ports.

use crate::config::{MqttArgs, ServeArgs};
use crate::http::{self, AppState};
use crate::mqtt::broker::{self, Credentials, Policy, ServerCredential};
use crate::mqtt::{self, BrokerAddr, Limits, MqttConfig};
use crate::telemetry::{self, Metrics};
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use store::Store;
use tokio::task::JoinHandle;

/// A started server.
pub struct Running {
    pub state: AppState,
    /// Where HTTP is served.
    pub http: SocketAddr,
    /// The broker the ingest talks to.
    pub broker: BrokerAddr,
    /// The server's MQTT client id.
    pub client_id: String,
    /// The MQTT ingest's connection (while this instance leads).
    pub ingest: Arc<mqtt::IngestStatus>,
    server: JoinHandle<()>,
}

impl Running {
    /// Stops everything: ends the live streams, lets open requests finish (for at most a few
    /// seconds), stops the ingest and closes the database.
    pub async fn stop(self) {
        self.state.shutdown.cancel();
        if tokio::time::timeout(Duration::from_secs(10), self.server).await.is_err() {
            tracing::warn!("some connections did not close within 10 s; stopping anyway");
        }
        self.state.store.close().await;
    }
}

/// Starts the broker (unless external), the log follower (PostgreSQL), the leader election and with
/// it the ingest, the HTTP listener and (with `--demo`) the demo desks.
pub async fn start(args: ServeArgs, store: Store) -> anyhow::Result<Running> {
    // On PostgreSQL every instance's buses carry every instance's events (see `crate::leader`).
    let store = store.with_shared_log();
    let fds = crate::sys::raise_fd_limit();
    tracing::debug!(open_files = fds, "file descriptor limit");
    let metrics = Arc::new(Metrics::new());
    let mut state = AppState::new(store.clone(), args.site_root.clone());
    state.max_replay = args.max_replay;
    state.metrics = metrics.clone();
    let hasher = auth::Hasher::new(usize::from(args.hash_concurrency))?;
    state.auth = auth::Auth::new(store.clone(), hasher).with_kiosk_idle(args.kiosk_idle);
    let (origins, cookies, public_url) = web_security(&args);
    state.origins = Arc::new(origins);
    state.public_url = Arc::new(public_url);
    if let Some(zone) = &args.timezone {
        state.zone = zone.clone();
    }
    tracing::info!(timezone = state.zone.iana_name().unwrap_or("(no name)"), "office hours are local times here");
    state.cookies = cookies;
    if state.assets.is_none() {
        tracing::warn!(site_root = %args.site_root.display(), "no browser bundle manifest: pages will not hydrate until `cargo xtask build` has run");
    }

    let client_id = match &args.mqtt.mqtt_client_id {
        Some(id) => id.clone(),
        None => store.server_client_id().await.context("reading the server's MQTT client id")?,
    };
    let broker = broker(&args.mqtt, &store, args.demo, &client_id, metrics.clone(), state.shutdown.clone()).await?;
    let config = MqttConfig {
        broker: broker.clone(),
        prefix: args.mqtt.broker.mqtt_prefix.clone(),
        client_id: client_id.clone(),
        desk_timeout: args.mqtt.desk_timeout,
        batch_max: usize::try_from(args.mqtt.batch_max).unwrap_or(512),
        batch_delay: args.mqtt.batch_delay,
    };
    tracing::info!(broker = %format!("{}:{}", broker.host, broker.port), prefix = %config.prefix, "ingesting desk messages");
    let consult = crate::consult::ConsultConfig {
        prefix: config.prefix.clone(),
        hold_expiry: args.hold_expiry,
        request_expiry: args.request_expiry,
    };
    let status = Arc::new(mqtt::IngestStatus::default());
    state.ingest = Some(status.clone());
    if store.shared_log() {
        state.log = Some(store.follow_log(state.shutdown.clone()).await.context("following the shared event log")?);
    }
    let leader_work = LeaderWork {
        store: store.clone(),
        mqtt: config,
        consult,
        status: status.clone(),
        metrics: metrics.clone(),
        event_retention: args.event_retention,
    };
    // Elected only where instances share a broker; with the embedded one each ingests its own desks.
    let elect = store.shared_log() && args.mqtt.broker.mqtt_url.is_some();
    state.role =
        crate::leader::run(store.clone(), elect, metrics, state.shutdown.clone(), move |term| leader_work.start(term));

    let listener = http::listener::listen(args.bind)
        .with_context(|| format!("cannot listen on {} (is another server running there?)", args.bind))?;
    let addr = listener.local_addr()?;
    tracing::info!("listening on http://{addr}");
    if args.demo {
        let dir = std::path::Path::new("data/desk-sim");
        let prefix = args.mqtt.broker.mqtt_prefix.clone();
        // The demo's desks are ordinary clients: not the server's credential.
        let desks = BrokerAddr { username: None, password: None, ..broker.clone() };
        crate::demo::run(&store, desks, prefix, dir, state.shutdown.clone()).await?;
    }
    let router = http::app(state.clone());
    let server = tokio::spawn(http::listener::serve(listener, router, state.shutdown.clone(), args.header_timeout));
    Ok(Running { state, http: addr, broker, client_id, ingest: status, server })
}

/// What the ingest leader runs, for each of its terms.
struct LeaderWork {
    store: Store,
    mqtt: MqttConfig,
    consult: crate::consult::ConsultConfig,
    status: Arc<mqtt::IngestStatus>,
    metrics: Arc<Metrics>,
    event_retention: Duration,
}

impl LeaderWork {
    /// Starts the ingest and the timers; all stop when `term` is cancelled.
    fn start(&self, term: tokio_util::sync::CancellationToken) {
        let store = &self.store;
        let ingest =
            mqtt::start(self.mqtt.clone(), store.clone(), self.metrics.clone(), self.status.clone(), term.clone());
        crate::consult::start(store.clone(), ingest.client, self.consult.clone(), term.clone());
        crate::overrides::start(store.clone(), term.clone());
        crate::presence::start(store.clone(), term.clone());
        crate::retention::start(store.clone(), self.event_retention, self.metrics.clone(), term.clone());
        let status = self.status.clone();
        tokio::spawn(async move {
            term.cancelled().await;
            use std::sync::atomic::Ordering::Relaxed;
            status.connected.store(false, Relaxed);
            status.subscribed.store(false, Relaxed);
        });
    }
}

/// The origins allowed to change state, and how cookies are written, from `--public-url` and
/// `--bind`.
fn web_security(args: &ServeArgs) -> (http::security::Origins, app::ssr::session::Cookies, url::Url) {
    let explicit = args.public_url.is_some();
    let public = args.public_url.clone().unwrap_or_else(|| {
        url::Url::parse(&format!("http://{}", args.bind))
            .unwrap_or_else(|_| url::Url::parse("http://127.0.0.1/").expect("a constant URL"))
    });
    let loopback = match public.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    let secure = public.scheme() == "https" || loopback;
    if !secure {
        tracing::warn!(
            public_url = %public,
            "cookies are sent without `Secure` over plain HTTP: serve ConsultEase over HTTPS (--public-url https://…)"
        );
    }
    let origins = http::security::Origins::new(&public, args.bind, explicit);
    (origins, app::ssr::session::Cookies { secure }, public)
}

/// Serves until SIGINT or SIGTERM, then stops gracefully.
pub async fn serve(args: ServeArgs, store: Store) -> anyhow::Result<()> {
    let running = start(args, store).await?;
    telemetry::shutdown_signal().await;
    tracing::info!("shutting down");
    running.stop().await;
    Ok(())
}

/// The external broker named by `--mqtt-url`, or the embedded one, started on `--mqtt-bind`, with the
/// server's client id reserved for a credential made here (and never shown). In the demo, when that
/// port is taken (a developer's own Mosquitto on 1883, say), the embedded broker takes a free port
/// instead and says so: the demo's desks are simulated in-process and follow it.
async fn broker(
    args: &MqttArgs,
    store: &Store,
    demo: bool,
    client_id: &str,
    metrics: Arc<Metrics>,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<BrokerAddr> {
    if let Some(external) = args.broker.external()? {
        return Ok(external);
    }
    let credential = ServerCredential {
        client_id: client_id.to_owned(),
        username: "consultease-server".into(),
        password: store::random_hex(16)?,
    };
    let allow_anonymous = demo || args.mqtt_allow_anonymous;
    if allow_anonymous {
        tracing::warn!(
            "the embedded MQTT broker takes anonymous clients ({}): anyone who reaches it can act as any desk \
             and read every desk's queue",
            if demo { "--demo" } else { "--mqtt-allow-anonymous" }
        );
    }
    let credentials = Arc::new(Credentials {
        server: credential.clone(),
        store: store.clone(),
        prefix: args.broker.mqtt_prefix.clone(),
        allow_anonymous,
        admitted: Default::default(),
    });
    let policy: Arc<dyn Policy> = credentials.clone();
    let start = |bind| broker::start(bind, policy.clone(), Limits::default(), metrics.clone(), stop.clone());
    let embedded = match start(args.mqtt_bind).await {
        Ok(b) => b,
        Err(err) if demo => {
            let b = start(SocketAddr::new(args.mqtt_bind.ip(), 0)).await?;
            tracing::warn!(
                "{:#}; for the demo the embedded MQTT broker listens on {} instead (the demo's desks use it; \
                 real desk units would need --mqtt-bind)",
                err,
                b.addr
            );
            b
        }
        Err(err) => return Err(err),
    };
    tokio::spawn(credentials.drop_rotated(embedded.clone(), stop.clone()));
    if let (Some(bind), Some(cert), Some(key)) = (args.mqtt_tls_bind, &args.mqtt_tls_cert, &args.mqtt_tls_key) {
        let acceptor = mqtt::tls_acceptor(cert, key)?;
        embedded.listen_tls(bind, acceptor, stop.clone()).await?;
    }
    let mut addr = BrokerAddr::local(embedded.addr);
    addr.username = Some(credential.username);
    addr.password = Some(credential.password);
    Ok(addr)
}
