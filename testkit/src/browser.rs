//! An HTTP client that behaves like a browser on one of our pages: it keeps cookies (honouring
//! `Max-Age=0`), and sends `Sec-Fetch-Site: same-origin` and our `Origin` on every request, unless
//! told otherwise (an attacker's request).

use std::collections::BTreeMap;

pub struct Browser {
    pub base: String,
    client: reqwest::Client,
    /// Cookie name → value.
    pub cookies: BTreeMap<String, String>,
    /// Send `Sec-Fetch-Site` and `Origin` as a page of ours would.
    pub same_origin: bool,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// Every `Set-Cookie` header.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        let client =
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("an HTTP client");
        Browser { base: base.to_owned(), client, cookies: BTreeMap::new(), same_origin: true }
    }

    /// The same browser (cookies kept) on another address of the server, e.g. after a restart.
    pub fn moved_to(self, base: &str) -> Browser {
        Browser { base: base.to_owned(), ..self }
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.send(reqwest::Method::GET, path, None, &[]).await
    }

    pub async fn post_json(&mut self, path: &str, body: serde_json::Value) -> Reply {
        self.send(reqwest::Method::POST, path, Some(body.to_string()), &[("content-type", "application/json")]).await
    }

    /// Any request, with extra headers (which replace the browser-like defaults of the same name).
    pub async fn send(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        let overridden = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        if self.same_origin {
            if !overridden("sec-fetch-site") {
                req = req.header("sec-fetch-site", "same-origin");
            }
            if !overridden("origin") {
                req = req.header("origin", self.base.as_str());
            }
        }
        if !self.cookies.is_empty() && !overridden("cookie") {
            let jar: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header("cookie", jar.join("; "));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let res = req.send().await.expect("the server answers");
        let reply = Reply {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body: res.text().await.unwrap_or_default(),
        };
        for c in reply.set_cookies() {
            let Some((pair, attrs)) = c.split_once(';').or(Some((c.as_str(), ""))) else { continue };
            let Some((name, value)) = pair.split_once('=') else { continue };
            if attrs.contains("Max-Age=0") || value.is_empty() {
                self.cookies.remove(name.trim());
            } else {
                self.cookies.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
        reply
    }
}
