//! The `consultease` binary's parts: configuration, the HTTP layer, and the admin CLI.

pub mod config;
pub mod http;
pub mod telemetry;

use anyhow::Context;
use config::{Cli, Command};

/// Runs what the command line asked for.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or_default() {
        Command::Serve(args) => {
            let store = store::Store::connect(&cli.database_url)
                .await
                .with_context(|| format!("opening the database at {}", cli.database_url))?;
            http::serve(args, store).await
        }
    }
}
