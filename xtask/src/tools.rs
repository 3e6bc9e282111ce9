//! Installs what the build and tests need, once: the wasm target, Chromium, the end2end npm packages.

use crate::step;
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::Command;

pub fn ensure_wasm_target() -> Result<()> {
    let out = Command::new("rustup").args(["target", "list", "--installed"]).output();
    match out {
        Ok(out) if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == "wasm32-unknown-unknown") => Ok(()),
        Ok(_) => {
            step("installing the wasm32-unknown-unknown target (once)");
            let status = Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]).status()?;
            if !status.success() {
                bail!("rustup target add wasm32-unknown-unknown failed");
            }
            Ok(())
        }
        // No rustup: the toolchain must already have the target.
        Err(_) => Ok(()),
    }
}

pub const CHROMIUM: &str = "/usr/bin/chromium";

pub fn ensure_chromium() -> Result<()> {
    if Path::new(CHROMIUM).exists() {
        return Ok(());
    }
    step("installing Chromium for the browser tests (apt-get install chromium, once)");
    let sudo = !is_root();
    let run = |args: &[&str]| -> Result<bool> {
        let mut cmd = if sudo { Command::new("sudo") } else { Command::new(args[0]) };
        if sudo {
            cmd.args(args);
        } else {
            cmd.args(&args[1..]);
        }
        Ok(cmd.env("DEBIAN_FRONTEND", "noninteractive").status().context("running apt-get")?.success())
    };
    if !run(&["apt-get", "update", "-qq"])? || !run(&["apt-get", "install", "-y", "-qq", "chromium"])? {
        bail!("could not install Chromium; install the `chromium` package, or run `cargo xtask test --no-browser`");
    }
    Ok(())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

pub fn ensure_npm_packages(dir: &Path) -> Result<()> {
    let stamp = dir.join("node_modules/.package-lock.json");
    let lock = dir.join("package-lock.json");
    let fresh = match (std::fs::metadata(&stamp), std::fs::metadata(&lock)) {
        (Ok(s), Ok(l)) => s.modified()? >= l.modified()?,
        _ => false,
    };
    if fresh {
        return Ok(());
    }
    step("installing the end2end npm packages (npm ci, once)");
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .status()
        .context("running npm (is Node.js installed?)")?;
    if !status.success() {
        bail!("npm ci failed in {}", dir.display());
    }
    Ok(())
}
