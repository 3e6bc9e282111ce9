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

/// One embedded broker for the whole test process, on a free port.
pub fn embedded() -> BrokerAddr {
    static ADDR: OnceLock<BrokerAddr> = OnceLock::new();
    ADDR.get_or_init(|| {
        let addr = mqtt::start_embedded_broker("127.0.0.1:0".parse().expect("a socket address"))
            .expect("the embedded broker starts");
        BrokerAddr::local(addr)
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
