//! An in-process server for integration tests: SQLite in a temp folder, the embedded broker on a
//! free port, the MQTT ingest and the HTTP app on a free port.

#![allow(dead_code)]

use server::http::{AppState, app};
use server::mqtt::{self, BrokerAddr, IngestStats, MqttConfig};
use std::sync::Arc;
use std::time::Duration;

pub struct TestServer {
    pub url: String,
    pub db: String,
    pub store: store::Store,
    pub state: AppState,
    pub broker: BrokerAddr,
    pub ingest: Arc<IngestStats>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts everything with desk topics under `prefix`; returns once the ingest is subscribed.
    pub async fn start(prefix: &str) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}/db.sqlite", dir.path().display());
        let store = store::Store::connect(&db).await.unwrap();
        let broker = BrokerAddr::local(mqtt::start_embedded_broker("127.0.0.1:0".parse().unwrap()).unwrap());
        let mut state = AppState::new(store.clone(), dir.path().join("site"));
        let config = MqttConfig {
            broker: broker.clone(),
            prefix: prefix.into(),
            client_id: format!("{prefix}-test-{}", std::process::id()),
            desk_timeout: Duration::from_secs(3600),
            batch_max: 256,
            batch_delay: Duration::from_millis(2),
        };
        let ingest = mqtt::start(config, store.clone(), state.shutdown.clone()).stats;
        state.ingest = Some(ingest.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (router, shutdown) = (app(state.clone()), state.shutdown.clone());
        tokio::spawn(async move {
            axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await.unwrap()
        });
        while !ingest.subscribed.load(std::sync::atomic::Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        TestServer { url, db, store, state, broker, ingest, _dir: dir }
    }

    pub fn mqtt_url(&self) -> String {
        format!("mqtt://{}:{}", self.broker.host, self.broker.port)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.state.shutdown.cancel();
    }
}
