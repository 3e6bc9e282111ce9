//! The MQTT adapter: connects to a broker (external, or the embedded one), turns desk messages into
//! store changes in batches, acknowledges them only after the commit, and times out silent desks.
//!
//! Three tasks, so that nothing blocks the client's poll loop:
//! - `poll`: drives the connection, subscribes on every ConnAck, forwards publishes to a channel,
//!   backs off (capped) on errors;
//! - `batch`: takes what arrived together (bounded count and delay), validates, applies it in one
//!   transaction, counts outcomes, then acks;
//! - `sweep`: marks desks silent for longer than the timeout offline.

pub mod broker;
mod ingest;

pub use broker::{EmbeddedBroker, Limits};
pub use ingest::{IngestHandle, start};

/// The ingest's connection state, for `/readyz` (its counters are in `telemetry::Metrics`).
#[derive(Debug, Default)]
pub struct IngestStatus {
    pub connected: std::sync::atomic::AtomicBool,
    /// The broker accepted our subscription on the current connection.
    pub subscribed: std::sync::atomic::AtomicBool,
}

use std::net::SocketAddr;
use std::time::Duration;

/// Where and how to talk MQTT.
#[derive(Clone, Debug)]
pub struct MqttConfig {
    /// `host:port` of the broker, with optional credentials.
    pub broker: BrokerAddr,
    pub prefix: String,
    pub client_id: String,
    pub desk_timeout: Duration,
    pub batch_max: usize,
    pub batch_delay: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerAddr {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl BrokerAddr {
    /// Parses `mqtt://[user[:pass]@]host[:port]` (`tcp://` also accepted; port defaults to 1883).
    pub fn parse(url: &str) -> Result<BrokerAddr, String> {
        let u = url::Url::parse(url).map_err(|e| format!("invalid MQTT URL {url:?}: {e}"))?;
        if !matches!(u.scheme(), "mqtt" | "tcp") {
            return Err(format!("MQTT URL must start with mqtt:// (got {}://)", u.scheme()));
        }
        let host = u.host_str().filter(|h| !h.is_empty()).ok_or_else(|| format!("MQTT URL {url:?} has no host"))?;
        let decode = |s: &str| percent_decode(s);
        Ok(BrokerAddr {
            host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
            port: u.port().unwrap_or(1883),
            username: Some(u.username()).filter(|s| !s.is_empty()).map(decode),
            password: u.password().map(decode),
        })
    }

    pub fn local(addr: SocketAddr) -> BrokerAddr {
        BrokerAddr { host: addr.ip().to_string(), port: addr.port(), username: None, password: None }
    }

    /// Client options for this broker: address and credentials; the caller adds the rest.
    pub fn mqtt_options(&self, client_id: impl Into<String>) -> rumqttc::MqttOptions {
        let mut opts = rumqttc::MqttOptions::new(client_id, &self.host, self.port);
        if let Some(user) = &self.username {
            opts.set_credentials(user, self.password.as_deref().unwrap_or(""));
        }
        opts
    }
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let a = BrokerAddr::parse("mqtt://desk:p%40ss@broker.example:1884").unwrap();
        assert_eq!(a.host, "broker.example");
        assert_eq!(a.port, 1884);
        assert_eq!(a.username.as_deref(), Some("desk"));
        assert_eq!(a.password.as_deref(), Some("p@ss"));
        let b = BrokerAddr::parse("tcp://127.0.0.1").unwrap();
        assert_eq!((b.host.as_str(), b.port, b.username), ("127.0.0.1", 1883, None));
        assert!(BrokerAddr::parse("http://x").unwrap_err().contains("mqtt://"));
        assert!(BrokerAddr::parse("not a url").is_err());
    }
}
