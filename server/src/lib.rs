//! The `consultease` binary's parts: configuration, the process wiring, the HTTP layer, the MQTT
//! adapter, the admin CLI, the desk simulator.

pub mod cli;
pub mod config;
pub mod consult;
pub mod demo;
pub mod desk_sim;
pub mod http;
pub mod leader;
pub mod mqtt;
pub mod overrides;
pub mod presence;
pub mod process;
pub mod retention;
pub mod sys;
pub mod telemetry;
mod timers;

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
        Command::Broker {
            action:
                Some(config::BrokerCmd::Export { mosquitto, mqtt_prefix, server_user, new_server_password, iterations }),
            ..
        } => {
            let store = open().await?;
            let password = if new_server_password {
                auth::mqtt_password::generate()?
            } else {
                cli::read_secret(&format!("MQTT password of {server_user}"))?
            };
            let export = cli::mosquitto::Export {
                dir: &mosquitto,
                prefix: &mqtt_prefix,
                server_user: &server_user,
                server_password: &password,
                iterations,
            };
            let n = cli::mosquitto::export(&store, &export).await?;
            let desks = if n == 1 { "1 desk".to_owned() } else { format!("{n} desks") };
            println!("wrote passwd ({desks} and {server_user}), acl and mosquitto.conf in {}", mosquitto.display());
            if new_server_password {
                println!("server password: {password}");
            }
            println!("reload a running Mosquitto with: kill -HUP $(pidof mosquitto)");
            Ok(())
        }
        Command::Broker { mqtt_bind, .. } => {
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
