//! The load generator itself, on a short run against a real server (embedded broker, SQLite):
//! correctness only — every change arrives at every client, in order, once. No time thresholds.

use clap::Parser;
use server::http::{AppState, app};
use server::loadgen::{self, LoadgenArgs};
use server::mqtt::{self, BrokerAddr, MqttConfig};
use std::time::Duration;

#[derive(Parser)]
struct Wrap {
    #[command(flatten)]
    args: LoadgenArgs,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_loses_nothing_and_never_goes_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/db.sqlite", dir.path().display());
    let store = store::Store::connect(&db).await.unwrap();
    let broker = BrokerAddr::local(mqtt::start_embedded_broker("127.0.0.1:0".parse().unwrap()).unwrap());
    let mut state = AppState::new(store.clone(), dir.path().join("site"));
    let config = MqttConfig {
        broker: broker.clone(),
        prefix: "lg".into(),
        client_id: format!("loadgen-test-{}", std::process::id()),
        desk_timeout: Duration::from_secs(3600),
        batch_max: 256,
        batch_delay: Duration::from_millis(2),
    };
    state.ingest = Some(mqtt::start(config, store.clone(), state.shutdown.clone()).stats);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = app(state.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let pid = std::process::id().to_string();
    let mqtt_url = format!("mqtt://{}:{}", broker.host, broker.port);
    let args = Wrap::parse_from([
        "loadgen",
        "--url",
        &url,
        "--mqtt-url",
        &mqtt_url,
        "--mqtt-prefix",
        "lg",
        "--desks",
        "8",
        "--rate",
        "400",
        "--duration",
        "2s",
        "--clients",
        "4",
        "--floor-duration",
        "500ms",
        "--server-pid",
        &pid,
        "--quiet",
    ])
    .args;
    let report = loadgen::run(&args, &db).await.unwrap();
    loadgen::print(&report);
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.published, 800);
    assert_eq!(report.committed, 800, "every published change was committed once");
    assert_eq!(report.deliveries, 800 * 4, "every client got every change");
    assert_eq!((report.lost, report.regressions, report.gaps, report.rejected), (0, 0, 0, 0));
    assert!(report.floor.samples > 0);
    assert!(report.server.is_some());
    state.shutdown.cancel();
}
