//! The HTTP layer driven as a client would, through `Router::oneshot`.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use server::http::{AppState, app};
use tower::ServiceExt;

async fn state_with_site() -> (AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(pkg.join("consultease.abc.js"), "export default 1;").unwrap();
    std::fs::write(pkg.join("consultease.abc.js.br"), b"brotli-bytes").unwrap();
    std::fs::write(
        dir.path().join("manifest.json"),
        r#"{"js":"consultease.abc.js","wasm":"consultease.def.wasm","css":"consultease.123.css"}"#,
    )
    .unwrap();
    let store = store::Store::connect("sqlite::memory:").await.unwrap();
    (AppState::new(store, dir.path().to_path_buf()), dir)
}

async fn get(state: &AppState, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, http::HeaderMap, String) {
    let mut req = Request::get(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = app(state.clone()).oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn health_and_readiness() {
    let (state, _dir) = state_with_site().await;
    let (status, _, body) = get(&state, "/healthz", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    let (status, _, body) = get(&state, "/readyz", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(r#""database":"ok""#), "{body}");

    // Database gone: not ready, and the client is not shown internals.
    state.store.close().await;
    let (status, _, body) = get(&state, "/readyz", &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, r#"{"database":"unavailable","status":"not ready"}"#);
    let (status, _, _) = get(&state, "/healthz", &[]).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn home_page_links_the_hashed_bundle() {
    let (state, _dir) = state_with_site().await;
    let (status, headers, body) = get(&state, "/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    assert!(body.contains(r#"href="/pkg/consultease.123.css""#), "{body}");
    assert!(body.contains("import init, { hydrate } from '/pkg/consultease.abc.js'"), "{body}");
    assert!(body.contains("module_or_path: '/pkg/consultease.def.wasm'"), "{body}");
    assert!(body.contains("Check server"));
}

#[tokio::test]
async fn bundle_is_served_precompressed_and_cached_for_a_year() {
    let (state, _dir) = state_with_site().await;
    let (status, headers, body) = get(&state, "/pkg/consultease.abc.js", &[("accept-encoding", "br, gzip")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_ENCODING], "br");
    assert_eq!(headers[header::CACHE_CONTROL], "public, max-age=31536000, immutable");
    assert_eq!(body, "brotli-bytes");
    // A client without brotli gets the plain file.
    let (_, headers, body) = get(&state, "/pkg/consultease.abc.js", &[]).await;
    assert!(!headers.contains_key(header::CONTENT_ENCODING));
    assert_eq!(body, "export default 1;");
}

#[tokio::test]
async fn pages_are_compressed_for_clients_that_accept_it() {
    let (state, _dir) = state_with_site().await;
    let (status, headers, _) = get(&state, "/", &[("accept-encoding", "br")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_ENCODING], "br");
    let (_, headers, body) = get(&state, "/", &[]).await;
    assert!(!headers.contains_key(header::CONTENT_ENCODING));
    assert!(body.contains("ConsultEase"));
}

#[tokio::test]
async fn unknown_path_is_a_404_page() {
    let (state, _dir) = state_with_site().await;
    let (status, _, body) = get(&state, "/nope", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("Page not found"), "{body}");
}

#[tokio::test]
async fn server_function_reads_the_database() {
    let (state, _dir) = state_with_site().await;
    let req = Request::post("/api/system_info")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::empty())
        .unwrap();
    let res = app(state.clone()).oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let info: serde_json::Value = serde_json::from_slice(&body).unwrap();
    // The newest migration's number, read from the migrations folder (the server reads it from the database).
    let newest = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations/sqlite"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.split('_').next()?.parse::<i64>().ok())
        .max()
        .unwrap();
    assert_eq!(info["schema_version"], newest);
    assert_eq!(info["backend"], "sqlite");
}
