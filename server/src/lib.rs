//! The `consultease` binary's parts: configuration, the HTTP layer, the MQTT adapter, the admin CLI.

pub mod cli;
pub mod config;
pub mod demo;
pub mod desk_sim;
pub mod http;
pub mod loadgen;
pub mod mqtt;
pub mod sys;
pub mod telemetry;

use anyhow::Context;
use config::{Cli, Command, MqttArgs};

/// Runs what the command line asked for.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let url = cli.database_url;
    let open = || async { store::Store::connect(&url).await.with_context(|| format!("opening the database at {url}")) };
    match cli.command.unwrap_or_default() {
        Command::Serve(args) => http::serve(args, open().await?).await,
        Command::Faculty(cmd) => cli::faculty(&open().await?, cmd, &mut std::io::stdout()).await,
        Command::Desk(cmd) => cli::desk(&open().await?, cmd, &mut std::io::stdout()).await,
        Command::DeskSim(args) => demo::desk_sim(args).await,
        Command::Broker { mqtt_bind } => {
            let addr = mqtt::start_embedded_broker(mqtt_bind)?;
            println!("MQTT broker listening on {addr}");
            telemetry::shutdown_signal().await;
            Ok(())
        }
        Command::Loadgen(args) => {
            let report = loadgen::run(&args, &url).await?;
            loadgen::print(&report);
            if let Some(path) = &args.report {
                std::fs::write(path, serde_json::to_vec_pretty(&report)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            anyhow::ensure!(report.ok(), "changes were lost, reordered or missing");
            Ok(())
        }
    }
}

impl MqttArgs {
    /// Resolves the broker: the external one named by --mqtt-url, or starts the embedded one.
    pub fn start_broker(&self) -> anyhow::Result<mqtt::MqttConfig> {
        let broker = match &self.mqtt_url {
            Some(url) => mqtt::BrokerAddr::parse(url).map_err(anyhow::Error::msg)?,
            None => mqtt::BrokerAddr::local(mqtt::start_embedded_broker(self.mqtt_bind)?),
        };
        Ok(mqtt::MqttConfig {
            broker,
            prefix: self.mqtt_prefix.clone(),
            client_id: self.mqtt_client_id.clone(),
            desk_timeout: self.desk_timeout,
            batch_max: usize::try_from(self.batch_max).unwrap_or(512),
            batch_delay: self.batch_delay,
        })
    }
}
