//! Command-line and environment configuration. Every option has an environment variable.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// ConsultEase: live faculty availability and consultation requests.
#[derive(Debug, Parser)]
#[command(name = "consultease", version, about, long_about = None)]
pub struct Cli {
    /// Database: `sqlite://PATH` (created and migrated at start) or `postgres://USER@HOST/DB`.
    #[arg(long, env = "CONSULTEASE_DATABASE_URL", default_value = "sqlite://data/consultease.db", global = true)]
    pub database_url: String,

    /// Log filter, in `tracing` EnvFilter syntax (e.g. `info`, `server=debug,sqlx=warn`).
    #[arg(long, env = "CONSULTEASE_LOG", default_value = "info", global = true)]
    pub log: String,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the web app (the default when no command is given).
    Serve(ServeArgs),
}

impl Default for Command {
    fn default() -> Self {
        Command::Serve(ServeArgs::parse_from(["serve"]))
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address the HTTP server listens on.
    #[arg(long, env = "CONSULTEASE_BIND", default_value = "127.0.0.1:3000")]
    pub bind: SocketAddr,

    /// Folder with the built browser bundle (`pkg/`), as written by `cargo xtask build`.
    #[arg(long, env = "CONSULTEASE_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,
}

impl ServeArgs {
    fn parse_from<I: IntoIterator<Item = &'static str>>(args: I) -> Self {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            args: ServeArgs,
        }
        Only::parse_from(args).args
    }
}
