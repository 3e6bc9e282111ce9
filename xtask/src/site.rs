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

pub fn assemble(root: &Path, wasm: &Path, site: &Path, profile: Profile) -> Result<()> {
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
        wasm_opt(&wasm_out)?;
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

/// Runs wasm-opt -Oz when a recent one (binaryen >= 116) is on PATH. Debian's binaryen 108 breaks
/// hydration, so older versions are skipped.
fn wasm_opt(wasm: &Path) -> Result<()> {
    let Ok(out) = Command::new("wasm-opt").arg("--version").output() else {
        return Ok(());
    };
    let version = String::from_utf8_lossy(&out.stdout);
    let major = version.split_whitespace().find_map(|w| w.parse::<u32>().ok()).unwrap_or(0);
    if major < 116 {
        step(&format!("skipping wasm-opt {major}: versions before 116 break hydration"));
        return Ok(());
    }
    step("optimising the wasm for size (wasm-opt -Oz)");
    let status = Command::new("wasm-opt")
        .args(["-Oz", "--enable-bulk-memory", "--enable-nontrapping-float-to-int", "--enable-sign-ext", "-o"])
        .arg(wasm)
        .arg(wasm)
        .status()?;
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
