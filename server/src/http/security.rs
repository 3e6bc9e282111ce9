//! Request-level protections: the CSRF guard on every state-changing request, and the security
//! headers on every response.

use super::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Which origins may send state-changing requests.
#[derive(Clone, Debug)]
pub struct Origins {
    /// Exact origins (`scheme://host[:port]`), from `--public-url` (and the loopback aliases).
    pub allowed: Vec<String>,
    /// Bound to every interface without a `--public-url`: also accept an `Origin` equal to
    /// `http://` + the request's own `Host` (a browser cannot forge either header).
    pub same_host: bool,
}

impl Origins {
    /// From the public URL and the bind address: the public URL's origin; for a loopback bind also
    /// `http://localhost:PORT` and `http://127.0.0.1:PORT`.
    pub fn new(public_url: &url::Url, bind: std::net::SocketAddr, explicit: bool) -> Origins {
        let mut allowed = vec![public_url.origin().ascii_serialization()];
        if bind.ip().is_loopback() {
            let port = bind.port();
            for host in ["localhost", "127.0.0.1", "[::1]"] {
                let o = format!("http://{host}:{port}");
                if !allowed.contains(&o) {
                    allowed.push(o);
                }
            }
        }
        Origins { allowed, same_host: !explicit && bind.ip().is_unspecified() }
    }

    fn permits(&self, origin: &str, host: Option<&str>) -> bool {
        self.allowed.iter().any(|a| a == origin)
            || (self.same_host && host.is_some_and(|h| origin == format!("http://{h}")))
    }
}

/// Refuses (403) a state-changing request that does not come from one of our own pages:
/// `Sec-Fetch-Site` must say `same-origin`; a browser too old to send it must send an `Origin` we
/// serve; a request with neither is refused. Safe methods pass: nothing changes state by GET.
pub async fn csrf(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let headers = req.headers();
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let allowed = match (text("sec-fetch-site"), text("origin")) {
        (Some("same-origin"), _) => true,
        (Some(_), _) => false,
        (None, Some(origin)) => state.origins.permits(origin, text("host")),
        (None, None) => false,
    };
    if !allowed {
        tracing::warn!(
            method = %req.method(),
            path = %loggable_path(req.uri().path()),
            sec_fetch_site = text("sec-fetch-site").unwrap_or("-"),
            origin = text("origin").unwrap_or("-"),
            "refused a cross-site or unattributed state-changing request"
        );
        let body = serde_json::json!({ "error": "forbidden", "message": "Cross-site request refused." });
        return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
    }
    next.run(req).await
}

/// Headers every response carries; HTML pages are never stored by caches (they may show personal
/// data), and get a restrictive CSP when the page did not set its own (the app's shell sets one
/// with the render's nonce).
pub async fn headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let html = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/html"));
    if html {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
            h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(app::CSP_WITHOUT_SCRIPTS));
        }
    }
    res
}

/// A request path as logs may show it: a ticket link's token is a key to a student's request, so
/// `/t/{token}` and `/api/tickets/{token}/…` lose it (query strings are never logged).
pub fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    for prefix in ["/t/", "/api/tickets/"] {
        if let Some(rest) = path.strip_prefix(prefix) {
            let tail = rest.find('/').map_or("", |i| &rest[i..]);
            return format!("{prefix}<token>{tail}").into();
        }
    }
    path.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let o = Origins::new(&"http://127.0.0.1:3000".parse().unwrap(), "127.0.0.1:3000".parse().unwrap(), false);
        assert!(o.permits("http://127.0.0.1:3000", None));
        assert!(o.permits("http://localhost:3000", None));
        assert!(!o.permits("http://localhost:3001", None));
        assert!(!o.permits("http://evil.example", Some("evil.example")));
        let public =
            Origins::new(&"https://consult.uni.example".parse().unwrap(), "0.0.0.0:3000".parse().unwrap(), true);
        assert!(public.permits("https://consult.uni.example", None));
        assert!(!public.permits("http://consult.uni.example", None), "scheme matters");
        assert!(
            !public.permits("http://10.0.0.5:3000", Some("10.0.0.5:3000")),
            "an explicit public URL is the only origin"
        );
        let any = Origins::new(&"http://0.0.0.0:3000".parse().unwrap(), "0.0.0.0:3000".parse().unwrap(), false);
        assert!(any.permits("http://10.0.0.5:3000", Some("10.0.0.5:3000")));
        assert!(!any.permits("http://evil.example", Some("10.0.0.5:3000")));
    }

    #[test]
    fn ticket_tokens_never_reach_the_logs() {
        assert_eq!(loggable_path("/t/12.1700000000000.0123456789abcdef0123456789abcdef"), "/t/<token>");
        assert_eq!(loggable_path("/api/tickets/12.17.00ff/events"), "/api/tickets/<token>/events");
        assert_eq!(loggable_path("/api/me/events"), "/api/me/events");
    }
}
