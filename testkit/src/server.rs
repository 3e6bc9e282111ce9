//! The server under test: the real `serve` wiring (`server::process::start`) on free ports, with a
//! throw-away database (SQLite unless given one), on the embedded broker or an external one.

use crate::databases::TestDatabase;
use server::config::{BrokerArgs, MqttArgs, ServeArgs};
use server::process::{self, Running};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

pub struct TestServer {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// The database URL (for the CLI, or a second store on it).
    pub db: String,
    pub store: store::Store,
    pub running: Running,
    pub prefix: String,
    /// How it was started (for [`TestServer::restart`]).
    config: TestServerBuilder,
    _site: tempfile::TempDir,
}

#[derive(Clone)]
pub struct TestServerBuilder {
    database: Option<Arc<TestDatabase>>,
    client_id: String,
    prefix: String,
    broker: Option<server::mqtt::BrokerAddr>,
    desk_timeout: Duration,
    bus_capacity: Option<usize>,
    max_replay: i64,
    header_timeout: Duration,
    anonymous_desks: bool,
    mqtt_tls: Option<(std::net::SocketAddr, std::path::PathBuf, std::path::PathBuf)>,
    event_retention: Duration,
    wait_for_ingest: bool,
}

impl TestServer {
    /// A server with its own embedded broker; desk topics under a unique prefix.
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder {
            database: None,
            client_id: format!("consultease-test-{}", crate::unique()),
            prefix: format!("t-{}", crate::unique()),
            broker: None,
            desk_timeout: Duration::from_secs(3600),
            bus_capacity: None,
            max_replay: 1000,
            header_timeout: Duration::from_secs(10),
            anonymous_desks: true,
            mqtt_tls: None,
            event_retention: Duration::ZERO,
            wait_for_ingest: true,
        }
    }

    pub async fn start() -> TestServer {
        TestServer::builder().start().await
    }

    pub fn state(&self) -> &server::http::AppState {
        &self.running.state
    }

    pub fn metrics(&self) -> &server::telemetry::Metrics {
        &self.running.state.metrics
    }

    /// The broker's URL, without the server's credential.
    pub fn mqtt_url(&self) -> String {
        format!("mqtt://{}:{}", self.running.broker.host, self.running.broker.port)
    }

    /// The broker's address as a client without the server's credential sees it.
    pub fn broker(&self) -> server::mqtt::BrokerAddr {
        server::mqtt::BrokerAddr { username: None, password: None, ..self.running.broker.clone() }
    }

    /// A desk unit connected to this server's broker (anonymously), under its prefix.
    pub async fn desk(&self, id: &str, boot: u32, will_seq: u64) -> crate::Desk {
        crate::Desk::connect(&self.broker(), &self.prefix, id, boot, will_seq).await
    }

    /// A desk unit connected with its credential (client id = username = `id`).
    pub async fn desk_with_password(&self, id: &str, password: &str, boot: u32, will_seq: u64) -> crate::Desk {
        let broker =
            server::mqtt::BrokerAddr { username: Some(id.into()), password: Some(password.into()), ..self.broker() };
        crate::Desk::connect_as(&broker, &self.prefix, id, id, boot, will_seq).await
    }

    /// Issues desk `id` an MQTT password (as `consultease desk add` does); returns it.
    pub async fn desk_password(&self, id: &str) -> String {
        let password = auth::mqtt_password::generate().expect("random");
        let hash = auth::mqtt_password::hash(&password, auth::mqtt_password::ITERATIONS).expect("hashed");
        self.store.set_desk_mqtt_hash(id, &hash, None).await.expect("credential stored");
        password
    }

    /// Adds a faculty member with a desk; returns the faculty id.
    pub async fn faculty(&self, name: &str, desk: &str) -> i64 {
        let nf = store::NewFaculty { name: name.into(), department: "Engineering".into(), email: None };
        let id = self.store.add_faculty(&nf).await.expect("faculty added");
        self.store.add_desk(desk, id).await.expect("desk added");
        id
    }

    /// The accounts service the server uses.
    pub fn auth(&self) -> &auth::Auth {
        &self.running.state.auth
    }

    /// Creates an admin (as the CLI would).
    pub async fn admin(&self, username: &str, password: &str) {
        self.auth().create_admin(username, password, "test", &auth::Client::default()).await.expect("admin created");
    }

    /// Adds a student with a PIN (and a card, if given); returns their id.
    pub async fn student(&self, number: &str, name: &str, pin: &str, card: Option<&str>) -> i64 {
        let new = store::NewStudent {
            number: number.into(),
            name: name.into(),
            card_uid: card.map(str::to_owned),
            ..Default::default()
        };
        let id = self.store.add_student(&new, None).await.expect("student added");
        self.auth().set_student_pin(number, pin, "test", &auth::Client::default()).await.expect("PIN set");
        id
    }

    /// A browser on this server's pages.
    pub fn browser(&self) -> crate::Browser {
        crate::Browser::new(&self.url)
    }

    pub async fn stop(self) {
        self.running.stop().await;
    }

    /// Stops it (gracefully); returns how to start it again on the same database and broker with
    /// the same MQTT client id, so its persistent session (and the messages queued in it while it
    /// is down) is kept. The HTTP address changes.
    pub async fn stop_for_restart(self) -> TestServerBuilder {
        self.running.stop().await;
        self.config
    }
}

impl TestServerBuilder {
    /// Runs on this database instead of a fresh SQLite one.
    pub fn database(mut self, db: TestDatabase) -> Self {
        self.database = Some(Arc::new(db));
        self
    }

    /// The MQTT client id the server will connect with (its persistent session's name).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Ingest from this broker instead of an embedded one.
    pub fn broker(mut self, broker: server::mqtt::BrokerAddr) -> Self {
        self.broker = Some(broker);
        self
    }

    pub fn desk_timeout(mut self, timeout: Duration) -> Self {
        self.desk_timeout = timeout;
        self
    }

    /// A small event bus, so that a slow stream lags.
    pub fn bus_capacity(mut self, capacity: usize) -> Self {
        self.bus_capacity = Some(capacity);
        self
    }

    pub fn header_timeout(mut self, t: Duration) -> Self {
        self.header_timeout = t;
        self
    }

    /// The embedded broker refuses clients without credentials (as a production server does);
    /// by default tests' desks connect anonymously (`--mqtt-allow-anonymous`), and only tests of
    /// the credentials themselves turn this on.
    pub fn desk_credentials_required(mut self) -> Self {
        self.anonymous_desks = false;
        self
    }

    /// The embedded broker also listens for TLS on `bind` with this certificate and key (PEM files).
    pub fn mqtt_tls(mut self, bind: std::net::SocketAddr, cert: std::path::PathBuf, key: std::path::PathBuf) -> Self {
        self.mqtt_tls = Some((bind, cert, key));
        self
    }

    /// `--event-retention` (off unless set).
    pub fn event_retention(mut self, keep: Duration) -> Self {
        self.event_retention = keep;
        self
    }

    pub fn max_replay(mut self, n: i64) -> Self {
        self.max_replay = n;
        self
    }

    /// Another instance on the same PostgreSQL database and broker (as its leader's builder says):
    /// `start` returns without waiting for an ingest, which only the leader runs.
    pub fn another_instance(mut self) -> Self {
        self.wait_for_ingest = false;
        self
    }

    /// Starts it; returns once the ingest's subscription is accepted (unless
    /// [`TestServerBuilder::another_instance`]).
    pub async fn start(mut self) -> TestServer {
        let dir = tempfile::tempdir().expect("a temp dir");
        let database = self.database.get_or_insert_with(|| Arc::new(crate::databases::sqlite())).clone();
        let db = database.url.clone();
        let mut store = store::Store::connect(&db).await.expect("the database opens");
        if let Some(n) = self.bus_capacity {
            store = store.with_bus_capacity(n);
        }
        let args = ServeArgs {
            bind: "127.0.0.1:0".parse().expect("an address"),
            site_root: dir.path().join("site"),
            demo: false,
            public_url: None,
            timezone: None,
            hash_concurrency: 2,
            kiosk_idle: Duration::from_secs(120),
            hold_expiry: Duration::from_secs(3600),
            request_expiry: Duration::from_secs(4 * 3600),
            event_retention: self.event_retention,
            header_timeout: self.header_timeout,
            max_replay: self.max_replay,
            mqtt: MqttArgs {
                broker: BrokerArgs {
                    mqtt_url: self.broker.as_ref().map(|b| {
                        let scheme = if b.tls.is_some() { "mqtts" } else { "mqtt" };
                        match (&b.username, &b.password) {
                            (Some(u), Some(p)) => format!("{scheme}://{u}:{p}@{}:{}", b.host, b.port),
                            (Some(u), None) => format!("{scheme}://{u}@{}:{}", b.host, b.port),
                            _ => format!("{scheme}://{}:{}", b.host, b.port),
                        }
                    }),
                    mqtt_prefix: self.prefix.clone(),
                    mqtt_ca: match self.broker.as_ref().and_then(|b| b.tls.as_ref()) {
                        Some(server::mqtt::Tls::Ca(pem)) => {
                            let path = dir.path().join("mqtt-ca.pem");
                            std::fs::write(&path, pem).expect("the CA file is written");
                            Some(path)
                        }
                        _ => None,
                    },
                },
                mqtt_bind: "127.0.0.1:0".parse().expect("an address"),
                mqtt_allow_anonymous: self.anonymous_desks,
                mqtt_tls_bind: self.mqtt_tls.as_ref().map(|t| t.0),
                mqtt_tls_cert: self.mqtt_tls.as_ref().map(|t| t.1.clone()),
                mqtt_tls_key: self.mqtt_tls.as_ref().map(|t| t.2.clone()),
                mqtt_client_id: Some(self.client_id.clone()),
                desk_timeout: self.desk_timeout,
                batch_max: 256,
                batch_delay: Duration::from_millis(2),
            },
        };
        let running = process::start(args, store.clone()).await.expect("the server starts");
        let status = running.ingest.clone();
        if self.wait_for_ingest {
            crate::eventually("the ingest subscribes", || {
                let s = status.clone();
                async move { s.subscribed.load(Relaxed) }
            })
            .await;
        }
        // The server's own handle: on PostgreSQL its buses are fed from the shared log, and a
        // write through another handle on the same buses would also publish directly.
        let store = running.state.store.clone();
        TestServer {
            url: format!("http://{}", running.http),
            db,
            store,
            running,
            prefix: self.prefix.clone(),
            config: self,
            _site: dir,
        }
    }
}
