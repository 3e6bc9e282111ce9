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
    /// What each registered desk's newest heartbeat said about itself (firmware, signal, uptime),
    /// for the admin's desk list. Telemetry, not state: kept in memory, refilled by the next
    /// heartbeat after a restart, never read by any decision.
    pub desk_info: std::sync::Mutex<std::collections::HashMap<String, domain::protocol::DeskInfo>>,
}

impl IngestStatus {
    /// "connected" (and subscribed), "not subscribed" or "disconnected", as `/readyz` says it.
    pub fn describe(&self) -> &'static str {
        use std::sync::atomic::Ordering::Relaxed;
        match (self.connected.load(Relaxed), self.subscribed.load(Relaxed)) {
            (true, true) => "connected",
            (true, false) => "not subscribed",
            (false, _) => "disconnected",
        }
    }
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

#[derive(Clone, PartialEq, Eq)]
pub struct BrokerAddr {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    /// TLS (`mqtts://`): `None` for plain TCP.
    pub tls: Option<Tls>,
}

impl std::fmt::Debug for BrokerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerAddr")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<secret>"))
            .field("tls", &self.tls.as_ref().map(|t| matches!(t, Tls::Ca(_))))
            .finish()
    }
}

/// Which certificate authorities a TLS connection to the broker trusts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tls {
    /// The system's roots.
    SystemRoots,
    /// Only the CA certificates in this PEM (`--mqtt-ca FILE`).
    Ca(Vec<u8>),
}

/// The embedded broker's TLS setup from a PEM certificate chain and its private key.
pub fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use anyhow::Context;
    let read = |p: &std::path::Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let certs = rustls_pemfile::certs(&mut read(cert)?.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: not a PEM certificate chain", cert.display()))?;
    anyhow::ensure!(!certs.is_empty(), "{}: no certificate in it", cert.display());
    let key = rustls_pemfile::private_key(&mut read(key)?.as_slice())
        .with_context(|| format!("{}: not a PEM private key", key.display()))?
        .with_context(|| format!("{}: no private key in it", key.display()))?;
    let config =
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("the TLS certificate and key do not go together")?;
    Ok(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)))
}

/// Makes `ring` the process's TLS provider (rustls needs one chosen; idempotent).
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl BrokerAddr {
    /// Parses `mqtt://[user[:pass]@]host[:port]` (`tcp://` also accepted; port defaults to 1883),
    /// or `mqtts://…` for TLS (port 8883) with the system's roots (see [`BrokerAddr::with_ca`]).
    pub fn parse(url: &str) -> Result<BrokerAddr, String> {
        let u = url::Url::parse(url).map_err(|e| format!("invalid MQTT URL {url:?}: {e}"))?;
        let (tls, default_port) = match u.scheme() {
            "mqtt" | "tcp" => (None, 1883),
            "mqtts" | "ssl" => (Some(Tls::SystemRoots), 8883),
            other => return Err(format!("MQTT URL must start with mqtt:// or mqtts:// (got {other}://)")),
        };
        let host = u.host_str().filter(|h| !h.is_empty()).ok_or_else(|| format!("MQTT URL {url:?} has no host"))?;
        let decode = |s: &str| percent_decode(s);
        Ok(BrokerAddr {
            host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
            port: u.port().unwrap_or(default_port),
            username: Some(u.username()).filter(|s| !s.is_empty()).map(decode),
            password: u.password().map(decode),
            tls,
        })
    }

    /// Trusts only the CA certificates in `pem` (for a TLS broker: `mqtts://` URL or not).
    pub fn with_ca(mut self, pem: Vec<u8>) -> BrokerAddr {
        self.tls = Some(Tls::Ca(pem));
        self
    }

    pub fn local(addr: SocketAddr) -> BrokerAddr {
        BrokerAddr { host: addr.ip().to_string(), port: addr.port(), username: None, password: None, tls: None }
    }

    /// Client options for this broker: address and credentials; the caller adds the rest.
    pub fn mqtt_options(&self, client_id: impl Into<String>) -> rumqttc::MqttOptions {
        let mut opts = rumqttc::MqttOptions::new(client_id, &self.host, self.port);
        if let Some(user) = &self.username {
            opts.set_credentials(user, self.password.as_deref().unwrap_or(""));
        }
        match &self.tls {
            None => {}
            Some(Tls::SystemRoots) => {
                install_tls_provider();
                opts.set_transport(rumqttc::Transport::tls_with_default_config());
            }
            Some(Tls::Ca(pem)) => {
                install_tls_provider();
                opts.set_transport(rumqttc::Transport::tls(pem.clone(), None, None));
            }
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
