mod account;
pub mod board;
mod home;

pub use account::{AccountBar, AdminSignInPage, KioskEnrolPage, SignIn};
pub use home::{Home, Kiosk};

use leptos::prelude::*;

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
        resp.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <main class="page">
            <h1>"Page not found"</h1>
            <p><a href="/">"Back to the board"</a></p>
        </main>
    }
}
