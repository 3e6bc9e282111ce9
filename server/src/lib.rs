//! The `consultease` binary's parts: configuration, the process wiring, the HTTP layer, the MQTT
//! adapter, the admin CLI, the desk simulator.

pub mod cli;
pub mod config;
pub mod consult;
pub mod demo;
pub mod desk_sim;
pub mod http;
pub mod mqtt;
pub mod process;
pub mod sys;
pub mod telemetry;

use anyhow::Context;
use config::{Cli, Command};

/// Runs what the command line asked for.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let url = cli.database_url;
    let open = || async {
        store::Store::connect(&url).await.with_context(|| format!("opening the database {}", store::redact_url(&url)))
    };
    match cli.command.unwrap_or_default() {
        Command::Serve(args) => process::serve(*args, open().await?).await,
        Command::Faculty(cmd) => cli::faculty(&open().await?, cmd, &mut std::io::stdout()).await,
        Command::Desk(cmd) => cli::desk(&open().await?, cmd, &mut std::io::stdout()).await,
        Command::Admin(cmd) => cli::admin(&cli::accounts(open().await?)?, cmd, &mut std::io::stdout()).await,
        Command::Student(cmd) => cli::student(&cli::accounts(open().await?)?, cmd, &mut std::io::stdout()).await,
        Command::Kiosk(cmd) => cli::kiosk(&cli::accounts(open().await?)?, cmd, &mut std::io::stdout()).await,
        Command::DeskSim(args) => demo::desk_sim(args).await,
        Command::Broker { mqtt_bind } => {
            let stop = tokio_util::sync::CancellationToken::new();
            let open = std::sync::Arc::new(mqtt::broker::Open { server: None });
            let metrics = std::sync::Arc::new(telemetry::Metrics::new());
            let broker = mqtt::broker::start(mqtt_bind, open, mqtt::Limits::default(), metrics, stop.clone()).await?;
            tracing::warn!("this broker accepts anonymous clients on every topic: for development and tests only");
            println!("MQTT broker listening on {}", broker.addr);
            telemetry::shutdown_signal().await;
            stop.cancel();
            Ok(())
        }
    }
}
