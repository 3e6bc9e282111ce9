//! The embedded MQTT broker (rumqttd), so the default run needs nothing installed.

use anyhow::{Context, Result, bail};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use std::collections::HashMap;
use std::net::SocketAddr;

/// Starts a broker on `bind` (port 0 picks a free port) in its own thread; returns the address it
/// listens on. Fails clearly when the port is taken.
pub fn start_embedded_broker(bind: SocketAddr) -> Result<SocketAddr> {
    // rumqttd binds inside its own thread and cannot report a failure back: probe the port first.
    let probe = std::net::TcpListener::bind(bind).with_context(|| {
        format!(
            "cannot start the embedded MQTT broker on {bind}: the port is taken (another broker?). \
             Use --mqtt-url mqtt://{bind} to connect to that broker, or --mqtt-bind to choose another port"
        )
    })?;
    let addr = probe.local_addr()?;
    drop(probe);

    let connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        // Larger than the protocol's 4 KiB so oversized payloads reach the ingest and are counted.
        max_payload_size: 64 * 1024,
        max_inflight_count: 500,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: "consultease-embedded".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 0,
        connections,
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 20_000,
            max_outgoing_packet_count: 500,
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 10,
            ..Default::default()
        },
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        ..Default::default()
    };
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(err) = broker.start() {
                tracing::error!(%err, "embedded MQTT broker stopped");
            }
        })
        .context("spawning the broker thread")?;
    // Wait until it accepts connections.
    for _ in 0..100 {
        if std::net::TcpStream::connect(addr).is_ok() {
            tracing::info!(%addr, "embedded MQTT broker listening");
            return Ok(addr);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    bail!("the embedded MQTT broker did not start listening on {addr}")
}
