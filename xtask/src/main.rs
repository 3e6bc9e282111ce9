//! `cargo xtask`: build, run and test ConsultEase with nothing installed but rustup and cargo.
//!
//! The browser bundle is built with plain cargo for wasm32, passed through wasm-bindgen (as a
//! library, pinned to the workspace's wasm-bindgen), content-hashed and precompressed into
//! `<target>/site*/pkg`, with a `manifest.json` the server reads to link the hashed names.

mod site;
mod tools;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::Command;

#[derive(Parser)]
#[command(about = "Build, run and test ConsultEase")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the server and the browser bundle (release unless --debug).
    Build {
        #[arg(long)]
        debug: bool,
    },
    /// Build (release unless --debug) and serve at http://127.0.0.1:3000. Arguments after `--` go to
    /// the server, e.g. `cargo xtask run -- --help`.
    Run {
        #[arg(long)]
        debug: bool,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Build the load generator (release) and run it against a running server; arguments after
    /// `--` go to it, e.g. `cargo xtask loadgen -- --rate 1000 --clients 10`.
    Loadgen {
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Every check: fmt, clippy (server and wasm), unit and integration tests, a short
    /// fault-injection run (when PostgreSQL and mosquitto are there), browser tests.
    Test {
        /// Skip the browser tests (they need Chromium and Node.js).
        #[arg(long)]
        no_browser: bool,
    },
    /// The fault-injection suite (release build): three instances on PostgreSQL and a Mosquitto of
    /// its own, faults under load, the model checked after each. Needs PostgreSQL
    /// (CONSULTEASE_TEST_POSTGRES_URL) and the `mosquitto` binary. `-- --help` for its options.
    Chaos {
        #[arg(last = true)]
        args: Vec<String>,
    },
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("\x1b[1;31merror:\x1b[0m {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let ws = Workspace::locate()?;
    match cli.cmd {
        Cmd::Build { debug } => {
            ws.build(Profile::from_debug(debug))?;
        }
        Cmd::Run { debug, args } => {
            let profile = Profile::from_debug(debug);
            let built = ws.build(profile)?;
            step("starting the server (default http://127.0.0.1:3000; `cargo xtask run -- --help` lists its options)");
            let status = Command::new(&built.server)
                .arg("serve")
                .arg("--site-root")
                .arg(&built.site)
                .args(&args)
                .current_dir(&ws.root)
                .status()
                .context("starting the server")?;
            if !status.success() {
                bail!("server exited with {status}");
            }
        }
        Cmd::Loadgen { args } => {
            ws.cargo("building the load generator", &["build", "--release", "-p=loadgen"])?;
            let bin = ws.target.join("release").join("consultease-loadgen");
            let status =
                Command::new(bin).args(&args).current_dir(&ws.root).status().context("starting the load generator")?;
            if !status.success() {
                bail!("the load generator reported a failure ({status})");
            }
        }
        Cmd::Test { no_browser } => ws.test(!no_browser)?,
        Cmd::Chaos { args } => {
            ws.cargo(
                "building the server and the suite (release)",
                &["build", "--release", "-p=server", "--bin=consultease", "-p=loadgen", "--bin=consultease-chaos"],
            )?;
            ws.chaos(Profile::Release, &args)?;
        }
    }
    Ok(())
}

pub fn step(msg: &str) {
    eprintln!("\x1b[1;36m==>\x1b[0m {msg}");
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

impl Profile {
    fn from_debug(debug: bool) -> Profile {
        if debug { Profile::Debug } else { Profile::Release }
    }
}

pub struct Workspace {
    pub root: PathBuf,
    pub target: PathBuf,
}

pub struct Built {
    pub server: PathBuf,
    pub site: PathBuf,
}

/// Server-side packages (built together: they share `app` with the `ssr` feature).
const SERVER_PACKAGES: [&str; 7] =
    ["-p=domain", "-p=store", "-p=auth", "-p=app", "-p=server", "-p=testkit", "-p=loadgen"];

impl Workspace {
    fn locate() -> Result<Workspace> {
        let out = Command::new(cargo()).args(["metadata", "--format-version=1", "--no-deps"]).output()?;
        if !out.status.success() {
            bail!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let path = |key: &str| meta[key].as_str().map(PathBuf::from).context("cargo metadata without paths");
        Ok(Workspace { root: path("workspace_root")?, target: path("target_directory")? })
    }

    fn cargo(&self, what: &str, args: &[&str]) -> Result<()> {
        step(what);
        let status = Command::new(cargo()).args(args).current_dir(&self.root).status()?;
        if !status.success() {
            bail!("{what}: failed ({status})");
        }
        Ok(())
    }

    pub fn build(&self, profile: Profile) -> Result<Built> {
        tools::ensure_wasm_target()?;
        let site = self.target.join(if profile == Profile::Release { "site" } else { "site-debug" });
        let (wasm_profile, wasm_dir, server_args, server_dir) = match profile {
            Profile::Release => ("--profile=wasm-release", "wasm-release", vec!["--release"], "release"),
            Profile::Debug => ("--profile=dev", "debug", vec![], "debug"),
        };
        self.cargo(
            "building the browser bundle (wasm32)",
            &["build", "-p=frontend", "--lib", "--target=wasm32-unknown-unknown", wasm_profile],
        )?;
        let wasm = self.target.join("wasm32-unknown-unknown").join(wasm_dir).join("frontend.wasm");
        site::assemble(&self.root, &wasm, &site, profile, &self.target.join("tools"))?;
        let mut args = vec!["build", "-p=server", "--bin=consultease"];
        args.extend(server_args);
        self.cargo("building the server", &args)?;
        Ok(Built { server: self.target.join(server_dir).join("consultease"), site })
    }

    fn test(&self, browser: bool) -> Result<()> {
        tools::ensure_wasm_target()?;
        self.cargo("checking formatting (cargo fmt --check)", &["fmt", "--all", "--", "--check"])?;
        let mut clippy = vec!["clippy", "--all-targets"];
        clippy.extend(SERVER_PACKAGES);
        clippy.extend(["-p=xtask", "--", "-D", "warnings"]);
        self.cargo("clippy: server side", &clippy)?;
        self.cargo(
            "clippy: browser side (wasm32)",
            &["clippy", "-p=frontend", "-p=app", "--target=wasm32-unknown-unknown", "--", "-D", "warnings"],
        )?;
        let mut test = vec!["test"];
        test.extend(SERVER_PACKAGES);
        test.push("-p=xtask");
        self.cargo("unit and integration tests", &test)?;
        if chaos_services()? {
            self.cargo(
                "building the server and the fault-injection suite",
                &["build", "-p=server", "--bin=consultease", "-p=loadgen", "--bin=consultease-chaos"],
            )?;
            self.chaos(Profile::Debug, &["--short".into()])?;
        }
        if !browser {
            step("browser tests skipped (--no-browser)");
            return Ok(());
        }
        let built = self.build(Profile::Debug)?;
        tools::ensure_chromium()?;
        let e2e = self.root.join("end2end");
        tools::ensure_npm_packages(&e2e)?;
        step("browser tests (end2end, headless Chromium)");
        let status = Command::new("node")
            .args(["--test", "--test-concurrency=1"])
            .current_dir(&e2e)
            .env("CONSULTEASE_BIN", &built.server)
            .env("CONSULTEASE_SITE_ROOT", &built.site)
            .status()
            .context("running node (is Node.js installed?)")?;
        if !status.success() {
            bail!("browser tests failed ({status})");
        }
        Ok(())
    }
}

impl Workspace {
    /// Runs the fault-injection suite with this profile's binaries.
    fn chaos(&self, profile: Profile, args: &[String]) -> Result<()> {
        let dir = self.target.join(if profile == Profile::Release { "release" } else { "debug" });
        step(&format!("fault-injection suite {}", args.join(" ")));
        let status = Command::new(dir.join("consultease-chaos"))
            .arg("--server-bin")
            .arg(dir.join("consultease"))
            .arg("--dir")
            .arg(self.target.join("chaos"))
            .args(args)
            .current_dir(&self.root)
            .status()
            .context("starting the fault-injection suite")?;
        if !status.success() {
            bail!(
                "the fault-injection suite failed ({status}); the processes' logs are in {}",
                self.target.join("chaos").display()
            );
        }
        Ok(())
    }
}

/// Whether the short fault-injection run can go: PostgreSQL reachable and `mosquitto` installed.
/// Where services are required (CI), their absence is an error, never a silent skip.
fn chaos_services() -> Result<bool> {
    let url = std::env::var("CONSULTEASE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let addr = url
        .split_once("://")
        .map(|(_, rest)| rest.rsplit_once('@').map_or(rest, |(_, h)| h))
        .and_then(|rest| rest.split('/').next())
        .map(|hp| if hp.contains(':') { hp.to_owned() } else { format!("{hp}:5432") })
        .unwrap_or_default();
    let postgres = std::net::ToSocketAddrs::to_socket_addrs(&addr)
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(2)).is_ok());
    let mosquitto = Command::new("mosquitto").arg("-h").output().is_ok();
    let required = std::env::var("CONSULTEASE_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
    match (postgres && mosquitto, required) {
        (true, _) => Ok(true),
        (false, true) => bail!(
            "the fault-injection suite needs PostgreSQL at {addr} (reachable: {postgres}) and the mosquitto binary (found: {mosquitto})"
        ),
        (false, false) => {
            step(&format!(
                "fault-injection suite skipped: it needs PostgreSQL at {addr} (reachable: {postgres}) and mosquitto (found: {mosquitto})"
            ));
            Ok(false)
        }
    }
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}
