//! Turns the compiled wasm into the served bundle: bindgen, optional wasm-opt, content hashes,
//! brotli + gzip copies, and `manifest.json` naming the files.

use crate::{Profile, step};
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;

const NAME: &str = "consultease";

pub fn assemble(root: &Path, wasm: &Path, site: &Path, profile: Profile, tools: &Path) -> Result<()> {
    // Nothing changed since the last assembly (same wasm, stylesheet, static files): keep it.
    let stamp = inputs_hash(root, wasm)?;
    let stamp_file = site.join(".inputs");
    if site.join("manifest.json").exists() && fs::read_to_string(&stamp_file).is_ok_and(|s| s == stamp) {
        step("browser bundle unchanged");
        return Ok(());
    }
    step("generating JS bindings (wasm-bindgen)");
    let staging = site.with_extension("staging");
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging)?;
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(wasm)
        .out_name(NAME)
        .web(true)?
        .typescript(false)
        .debug(profile == Profile::Debug)
        .generate(&staging)
        .map_err(|e| anyhow::anyhow!("wasm-bindgen: {e:#}"))?;
    let wasm_out = staging.join(format!("{NAME}_bg.wasm"));
    if profile == Profile::Release {
        wasm_opt(&wasm_out, tools)?;
    }

    let pkg = site.join("pkg");
    let _ = fs::remove_dir_all(site);
    fs::create_dir_all(&pkg)?;
    let js = publish(&staging.join(format!("{NAME}.js")), &pkg, "js", profile)?;
    let wasm = publish(&wasm_out, &pkg, "wasm", profile)?;
    let css = publish(&root.join("style/main.css"), &pkg, "css", profile)?;
    // Snippets (inline JS of dependencies) already sit in content-hashed folders.
    let snippets = staging.join("snippets");
    if snippets.exists() {
        copy_dir(&snippets, &pkg.join("snippets"))?;
    }
    copy_dir(&root.join("public"), site)?;
    let manifest = serde_json::json!({ "js": js, "wasm": wasm, "css": css });
    fs::write(site.join("manifest.json"), serde_json::to_vec_pretty(&manifest)?)?;
    fs::write(&stamp_file, stamp)?;
    fs::remove_dir_all(&staging)?;
    for name in [&js, &wasm, &css] {
        let raw = fs::metadata(pkg.join(name))?.len();
        let br = fs::metadata(pkg.join(format!("{name}.br")))?.len();
        eprintln!("    pkg/{name}: {raw} bytes, {br} brotli");
    }
    Ok(())
}

/// A hash of everything the bundle is made from.
fn inputs_hash(root: &Path, wasm: &Path) -> Result<String> {
    let mut h = Sha256::new();
    h.update(fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?);
    h.update(fs::read(root.join("style/main.css"))?);
    let mut files: Vec<_> = fs::read_dir(root.join("public"))
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for f in files.iter().filter(|f| f.is_file()) {
        h.update(f.to_string_lossy().as_bytes());
        h.update(fs::read(f)?);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Copies `src` into `pkg` as `<stem>.<hash>.<ext>`, with `.br` and `.gz` beside it.
fn publish(src: &Path, pkg: &Path, ext: &str, profile: Profile) -> Result<String> {
    let bytes = fs::read(src).with_context(|| format!("reading {}", src.display()))?;
    let hash = Sha256::digest(&bytes);
    let hex: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let name = format!("{NAME}.{hex}.{ext}");
    fs::write(pkg.join(&name), &bytes)?;
    let mut br = Vec::new();
    {
        let params = brotli::enc::BrotliEncoderParams {
            quality: if profile == Profile::Release { 11 } else { 5 },
            lgwin: 22,
            ..Default::default()
        };
        brotli::BrotliCompress(&mut bytes.as_slice(), &mut br, &params)?;
    }
    fs::write(pkg.join(format!("{name}.br")), br)?;
    let mut gz = flate2::write::GzEncoder::new(
        Vec::new(),
        if profile == Profile::Release { flate2::Compression::best() } else { flate2::Compression::fast() },
    );
    gz.write_all(&bytes)?;
    fs::write(pkg.join(format!("{name}.gz")), gz.finish()?)?;
    Ok(name)
}

/// The binaryen release the bundle is optimised with when no wasm-opt is installed: from the npm
/// registry (binaryen compiled to WebAssembly, run by Node.js), which installs in seconds where
/// `cargo install wasm-opt` compiles binaryen's C++ for 8 minutes.
const BINARYEN_NPM: &str = "132.0.0";

/// Shrinks the wasm with `wasm-opt -Oz` (about a third smaller as served). Uses a wasm-opt of
/// binaryen 116 or newer on the PATH; else binaryen from the npm registry, installed once under
/// `tools/`; else (no Node.js either) says what the bundle costs and how to shrink it. Debian's
/// binaryen 108 breaks hydration, so older versions are never used.
fn wasm_opt(wasm: &Path, tools: &Path) -> Result<()> {
    let flags = ["-Oz", "--enable-bulk-memory", "--enable-nontrapping-float-to-int", "--enable-sign-ext", "-o"];
    if let Ok(out) = Command::new("wasm-opt").arg("--version").output() {
        let version = String::from_utf8_lossy(&out.stdout);
        let major = version.split_whitespace().find_map(|w| w.parse::<u32>().ok()).unwrap_or(0);
        if major >= 116 {
            step(&format!("optimising the wasm for size (wasm-opt {major} -Oz)"));
            let status = Command::new("wasm-opt").args(flags).arg(wasm).arg(wasm).status()?;
            anyhow::ensure!(status.success(), "wasm-opt failed");
            return Ok(());
        }
        step(&format!("skipping the installed wasm-opt {major}: versions before 116 break hydration"));
    }
    let prefix = tools.join(format!("binaryen-{BINARYEN_NPM}"));
    let script = prefix.join("node_modules/binaryen/bin/wasm-opt");
    if !script.exists() {
        if Command::new("npm").arg("--version").output().is_err() {
            step(
                "no wasm-opt and no npm: the bundle stays unoptimised (about 310 KB instead of 210 KB as served); \
                  install Node.js, or `cargo install wasm-opt --version 0.116.1 --locked`",
            );
            return Ok(());
        }
        step(&format!("installing binaryen {BINARYEN_NPM} from the npm registry for wasm-opt (once)"));
        fs::create_dir_all(&prefix)?;
        let status = Command::new("npm")
            .args(["install", "--no-save", "--no-audit", "--no-fund", "--prefix"])
            .arg(&prefix)
            .arg(format!("binaryen@{BINARYEN_NPM}"))
            .status()
            .context("running npm")?;
        anyhow::ensure!(status.success() && script.exists(), "npm install binaryen@{BINARYEN_NPM} failed");
    }
    step(&format!("optimising the wasm for size (binaryen {BINARYEN_NPM} wasm-opt -Oz, under Node.js)"));
    let status = Command::new("node").arg(&script).args(flags).arg(wasm).arg(wasm).status().context("running node")?;
    anyhow::ensure!(status.success(), "wasm-opt failed");
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    if !from.exists() {
        return Ok(());
    }
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &dest)?;
        } else {
            fs::copy(entry.path(), dest)?;
        }
    }
    Ok(())
}
