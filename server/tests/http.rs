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
    let store = store::Store::connect(&format!("sqlite://{}/db.sqlite", dir.path().display())).await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
    assert_eq!(body, r#"{"database":"unavailable","role":"follower","status":"not ready"}"#);
    let (status, _, _) = get(&state, "/healthz", &[]).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_page_links_the_hashed_bundle() {
    let (state, _dir) = state_with_site().await;
    let (status, headers, body) = get(&state, "/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    assert!(body.contains(r#"href="/pkg/consultease.123.css""#), "{body}");
    assert!(body.contains("import init, { hydrate } from '/pkg/consultease.abc.js'"), "{body}");
    assert!(body.contains("module_or_path: '/pkg/consultease.def.wasm'"), "{body}");
    assert!(!body.contains("Check server"), "the skeleton's system panel is gone from the public board");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_compressed_for_clients_that_accept_it() {
    let (state, _dir) = state_with_site().await;
    let (status, headers, _) = get(&state, "/", &[("accept-encoding", "br")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_ENCODING], "br");
    let (_, headers, body) = get(&state, "/", &[]).await;
    assert!(!headers.contains_key(header::CONTENT_ENCODING));
    assert!(body.contains("ConsultEase"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_path_is_a_404_page() {
    let (state, _dir) = state_with_site().await;
    let (status, _, body) = get(&state, "/nope", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("Page not found"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundle_errors_are_never_cached_and_absurd_names_are_a_plain_404() {
    let (state, _dir) = state_with_site().await;
    let long = format!("/pkg/{}.js", "a".repeat(300));
    for path in ["/pkg/consultease.missing.js", long.as_str(), "/pkg/../Cargo.toml", "/pkg/a%20b.js"] {
        let (status, headers, _) = get(&state, path, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        let cache = headers.get(header::CACHE_CONTROL).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(cache.as_deref(), Some("no-store"), "{path}: an error is not cached");
    }
}

/// Regression (outside test run): every query parameter was copied into every filter link, so
/// `/?` with 8,000 junk parameters answered 261 KB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_query_parameters_are_not_echoed_into_the_page() {
    let (state, _dir) = state_with_site().await;
    let junk: Vec<String> = (0..8000).map(|i| format!("j{i}=x")).collect();
    let uri = format!("/?q=ada&{}", junk.join("&"));
    let (status, _, body) = get(&state, &uri, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.len() < 40_000, "{} bytes", body.len());
    assert!(!body.contains("j17=x"));
    assert!(
        body.contains("href=\"/?q=ada&amp;status=available\"") || body.contains("href=\"/?q=ada&status=available\""),
        "the search is kept"
    );
}

/// The skeleton's `POST /api/system_info` told anyone the schema version, backend and uptime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_system_info_endpoint_is_gone() {
    let (state, _dir) = state_with_site().await;
    let req = Request::post("/api/system_info")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "same-origin")
        .body(Body::empty())
        .unwrap();
    let res = app(state.clone()).oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

/// Regression (outside test run): with the database failing, the board showed an error with HTTP
/// 200. An error page is never a 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_board_that_cannot_be_read_is_not_a_200() {
    let (state, _dir) = state_with_site().await;
    let url = format!("sqlite://{}/db.sqlite", _dir.path().display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.unwrap();
    sqlx::query("ALTER TABLE faculty RENAME TO gone").execute(&mut conn).await.unwrap();
    let (status, _, body) = get(&state, "/", &[]).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(body.contains("role=\"alert\"") && body.contains("reference"), "{body}");
    assert!(!body.contains("gone") && !body.contains("no such table"), "no internals: {body}");
    assert!(!body.to_lowercase().contains("pool"), "no internals: {body}");
    let (status, _, body) = get(&state, "/api/faculty", &[]).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains(r#""error":"internal""#) && body.contains("reference"), "{body}");
    // A database that is unreachable is a 503 (it may come back), not a 500.
    state.store.close().await;
    let (status, _, body) = get(&state, "/", &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, _, _) = get(&state, "/api/faculty", &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}
