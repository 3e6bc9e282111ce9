//! The load generator itself, on a short run against a real server (embedded broker, SQLite):
//! correctness only — every change arrives at every client, in order, once. No time thresholds.

use clap::Parser;
use loadgen::LoadgenArgs;
use testkit::TestServer;

#[derive(Parser)]
struct Wrap {
    #[command(flatten)]
    args: LoadgenArgs,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_loses_nothing_and_never_goes_backwards() {
    let server = TestServer::builder().prefix("lg").start().await;
    let pid = std::process::id().to_string();
    let mqtt_url = server.mqtt_url();
    let args = Wrap::parse_from([
        "loadgen",
        "--url",
        &server.url,
        "--database-url",
        &server.db,
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
    let report = loadgen::run(&args).await.unwrap();
    loadgen::print(&report);
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.published, 800);
    assert_eq!(report.committed, 800, "every published change was committed once");
    assert_eq!(report.deliveries, 800 * 4, "every client got every change");
    assert_eq!((report.lost, report.regressions, report.gaps, report.rejected), (0, 0, 0, 0));
    assert!(report.floor.samples > 0);
    assert!(report.server.is_some());
}
