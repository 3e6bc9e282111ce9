//! The brokers tests run against: the embedded one (always), Mosquitto (when reachable; required
//! with `CONSULTEASE_REQUIRE_SERVICES=1`).

use server::mqtt::{self, BrokerAddr};
use std::sync::OnceLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broker {
    Embedded,
    Mosquitto,
}

impl Broker {
    /// The broker's address, or `None` (after saying why) when Mosquitto is not reachable and not
    /// required.
    pub async fn addr(self) -> Option<BrokerAddr> {
        match self {
            Broker::Embedded => Some(embedded()),
            Broker::Mosquitto => mosquitto().await,
        }
    }
}

/// One embedded broker (anonymous clients allowed, as for development) for the whole test process,
/// on a free port, on a runtime of its own: it outlives every test's runtime.
pub fn embedded() -> BrokerAddr {
    static ADDR: OnceLock<BrokerAddr> = OnceLock::new();
    ADDR.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime for the test broker");
            rt.block_on(async {
                let open = std::sync::Arc::new(mqtt::broker::Open { server: None });
                let metrics = std::sync::Arc::new(server::telemetry::Metrics::new());
                let stop = tokio_util::sync::CancellationToken::new();
                let broker = mqtt::broker::start(
                    "127.0.0.1:0".parse().expect("an address"),
                    open,
                    mqtt::Limits::default(),
                    metrics,
                    stop,
                )
                .await
                .expect("the embedded broker starts");
                let _ = tx.send(broker.addr);
                std::future::pending::<()>().await;
            });
        });
        BrokerAddr::local(rx.recv().expect("the test broker reports its address"))
    })
    .clone()
}

/// Mosquitto at `CONSULTEASE_TEST_MQTT_URL` (default mqtt://127.0.0.1:1883).
pub async fn mosquitto() -> Option<BrokerAddr> {
    let url = std::env::var("CONSULTEASE_TEST_MQTT_URL").unwrap_or_else(|_| "mqtt://127.0.0.1:1883".into());
    let addr = BrokerAddr::parse(&url).expect("CONSULTEASE_TEST_MQTT_URL is an mqtt:// URL");
    match tokio::net::TcpStream::connect((addr.host.as_str(), addr.port)).await {
        Ok(_) => Some(addr),
        Err(e) if crate::services_required() => {
            panic!("Mosquitto required (CONSULTEASE_REQUIRE_SERVICES=1) but {url} is unreachable: {e}")
        }
        Err(e) => {
            eprintln!("skipping: MQTT broker at {url} unreachable ({e})");
            None
        }
    }
}

/// Runs each named `async fn case(broker: Broker)` of the calling test file over both brokers: a
/// module per case with an `embedded` and a `mosquitto` test.
#[macro_export]
macro_rules! over_brokers {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::$case($crate::Broker::Embedded).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mosquitto() {
                super::$case($crate::Broker::Mosquitto).await;
            }
        }
    )*};
}
