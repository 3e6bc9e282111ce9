//! The browser bundle under `/pkg`: precompressed (brotli, gzip) files written by `cargo xtask build`.
//! Hashed names never change content, so they are cached for a year; without a manifest (a
//! `cargo leptos` build, unhashed names) the browser must revalidate.

use super::AppState;
use app::Assets;
use axum::http::{HeaderValue, header};
use std::path::Path;
use tower::Layer;
use tower_http::services::ServeDir;
use tower_http::set_header::{SetResponseHeader, SetResponseHeaderLayer};

pub const MANIFEST: &str = "manifest.json";

pub fn read_manifest(site_root: &Path) -> Option<Assets> {
    let path = site_root.join(MANIFEST);
    let text = std::fs::read_to_string(&path).ok()?;
    match serde_json::from_str(&text) {
        Ok(assets) => Some(assets),
        Err(err) => {
            tracing::error!(path = %path.display(), %err, "unreadable asset manifest");
            None
        }
    }
}

pub fn pkg_service(state: &AppState) -> SetResponseHeader<ServeDir, HeaderValue> {
    let cache = if state.assets.is_some() { "public, max-age=31536000, immutable" } else { "no-cache" };
    let dir = ServeDir::new(state.site_root.join("pkg")).precompressed_br().precompressed_gzip();
    SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static(cache)).layer(dir)
}
