//! The browser bundle under `/pkg`: precompressed (brotli, gzip) files written by `cargo xtask build`.
//! Hashed names never change content, so they are cached for a year; without a manifest (a
//! `cargo leptos` build, unhashed names) the browser must revalidate.

use super::AppState;
use app::Assets;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::path::Path;
use tower_http::services::ServeDir;

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

/// `/pkg`: the bundle's files, precompressed. Only a successful answer is cached (regression: 404s,
/// and a 500 for a 300-character file name, were served "immutable" for a year, and that 500 logged
/// two ERROR lines per request); a name no bundle file could have is a plain 404 without touching
/// the disk.
pub fn pkg_service(state: &AppState) -> Router<AppState> {
    let cache = HeaderValue::from_static(if state.assets.is_some() {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    });
    let dir = ServeDir::new(state.site_root.join("pkg")).precompressed_br().precompressed_gzip();
    Router::new().fallback_service(dir).layer(axum::middleware::from_fn_with_state(cache, guard))
}

async fn guard(State(cache): State<HeaderValue>, req: Request, next: Next) -> Response {
    if !plausible(req.uri().path()) {
        return (StatusCode::NOT_FOUND, [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))])
            .into_response();
    }
    let mut res = next.run(req).await;
    let ok = res.status().is_success() || res.status() == StatusCode::NOT_MODIFIED;
    res.headers_mut().insert(header::CACHE_CONTROL, if ok { cache } else { HeaderValue::from_static("no-store") });
    res
}

/// A path the bundle could hold: short segments of letters, digits, `.`, `_`, `-` (no `..`).
fn plausible(path: &str) -> bool {
    let path = path.trim_start_matches('/');
    !path.is_empty()
        && path.len() <= 200
        && path.split('/').all(|seg| {
            (1..=100).contains(&seg.len())
                && seg != ".."
                && seg.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn plausible_bundle_paths() {
        for ok in ["/consultease.0123abcd.js", "/snippets/leptos-abc/inline0.js", "/consultease.1.wasm.br"] {
            assert!(super::plausible(ok), "{ok}");
        }
        let long = format!("/{}.js", "a".repeat(300));
        for bad in ["/", "/../Cargo.toml", "/a/../b", "/a b.js", "/%2e%2e/x", long.as_str()] {
            assert!(!super::plausible(bad), "{bad}");
        }
    }
}
