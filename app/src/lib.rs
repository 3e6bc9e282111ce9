//! ConsultEase's user interface: the page shell, the routes, the components and the server functions.
//! Compiled twice: with `ssr` into the server (rendering, server functions) and with `hydrate` into
//! the browser bundle. Server-only code lives in [`ssr`].

// The dashboard's forms nest deep view types; the hydrate build computes their layouts past the
// default query depth of 128 ("queries overflow the depth limit").
#![recursion_limit = "256"]

pub mod account;
pub mod admin;
pub mod consult;
pub mod error;
pub mod format;
pub mod live;
pub mod pages;
pub mod server_fns;
#[cfg(feature = "ssr")]
pub mod ssr;

pub use error::AppError;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Title, provide_meta_context};
use leptos_router::{
    SsrMode, StaticSegment,
    components::{Route, Router, Routes},
    path,
};

/// The browser bundle's file names as served under `/pkg` (content-hashed by `cargo xtask`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Assets {
    pub js: String,
    pub wasm: String,
    pub css: String,
}

/// The Content-Security-Policy of every page: scripts only from this origin and with this render's
/// nonce (the boot script, and the data Leptos inlines for hydration), WebAssembly compilation
/// allowed, nothing framed, no plugins, forms and connections to this origin only.
pub fn csp(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; \
         form-action 'self'"
    )
}

/// The policy of an HTML response that did not set its own: no script at all.
pub const CSP_WITHOUT_SCRIPTS: &str = "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; \
     frame-ancestors 'none'; form-action 'self'";

/// The HTML document around the app. With [`Assets`] in context (the xtask build) it links the
/// hashed bundle; without (a `cargo leptos` build) it falls back to Leptos's own hydration scripts.
/// On the server it also sets the page's CSP with the render's nonce.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    let nonce = leptos::nonce::use_nonce();
    #[cfg(feature = "ssr")]
    if let (Some(n), Some(res)) = (&nonce, use_context::<leptos_axum::ResponseOptions>())
        && let Ok(v) = http::HeaderValue::from_str(&csp(n))
    {
        res.insert_header(http::header::CONTENT_SECURITY_POLICY, v);
    }
    let head = match use_context::<Assets>() {
        Some(a) => {
            let boot = format!(
                "import init, {{ hydrate }} from '/pkg/{}'; init({{ module_or_path: '/pkg/{}' }}).then(() => hydrate());",
                a.js, a.wasm
            );
            view! {
                <link rel="stylesheet" href=format!("/pkg/{}", a.css) />
                <link rel="modulepreload" href=format!("/pkg/{}", a.js) />
                <link rel="preload" href=format!("/pkg/{}", a.wasm) r#as="fetch" r#type="application/wasm" crossorigin="" />
                <script type="module" nonce=nonce>{boot}</script>
            }
            .into_any()
        }
        None => {
            let css = format!("/{}/{}.css", options.site_pkg_dir, options.output_name);
            view! {
                <link rel="stylesheet" href=css />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
            }
            .into_any()
        }
    };
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                {head}
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Effects run only in the browser: this marks the page as hydrated (for tests and styles).
    Effect::new(|_| {
        #[cfg(feature = "hydrate")]
        if let Some(root) = document().document_element() {
            let _ = root.set_attribute("data-hydrated", "");
        }
    });
    view! {
        <Title text="ConsultEase" />
        <Router>
            <Routes fallback=|| view! { <pages::NotFound /> }>
                // Async: the whole page (board included) is in the first response, so it is
                // complete before (or without) the wasm.
                <Route path=StaticSegment("") view=pages::Home ssr=SsrMode::Async />
                <Route path=StaticSegment("kiosk") view=pages::Kiosk ssr=SsrMode::Async />
                <Route path=StaticSegment("sign-in") view=pages::SignIn ssr=SsrMode::Async />
                <Route path=path!("/admin/sign-in") view=pages::AdminSignInPage ssr=SsrMode::Async />
                <Route path=path!("/admin") view=pages::admin::FacultyListPage ssr=SsrMode::Async />
                <Route path=path!("/admin/faculty") view=pages::admin::FacultyListPage ssr=SsrMode::Async />
                <Route path=path!("/admin/faculty/:id") view=pages::admin::FacultyEditPage ssr=SsrMode::Async />
                <Route path=path!("/admin/desks") view=pages::admin::DesksPage ssr=SsrMode::Async />
                <Route path=path!("/admin/students") view=pages::admin::StudentsPage ssr=SsrMode::Async />
                <Route path=path!("/admin/kiosks") view=pages::admin::KiosksPage ssr=SsrMode::Async />
                <Route path=path!("/admin/consultations") view=pages::admin::ConsultationsPage ssr=SsrMode::Async />
                <Route path=path!("/admin/audit") view=pages::admin::AuditPage ssr=SsrMode::Async />
                <Route path=path!("/admin/system") view=pages::admin::SystemPage ssr=SsrMode::Async />
                <Route path=path!("/kiosk/enrol") view=pages::KioskEnrolPage ssr=SsrMode::Async />
                <Route path=path!("/request/:id") view=pages::RequestPage ssr=SsrMode::Async />
                <Route path=StaticSegment("me") view=pages::MyRequestsPage ssr=SsrMode::Async />
                <Route path=path!("/t/:token") view=pages::TicketPage ssr=SsrMode::Async />
            </Routes>
        </Router>
    }
}
