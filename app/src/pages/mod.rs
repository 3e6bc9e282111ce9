mod account;
pub mod admin;
pub mod board;
mod consult;
mod home;

pub use account::{AccountBar, AdminSignInPage, KioskEnrolPage, SignIn};
pub use consult::{MyRequestsPage, RequestPage, TicketPage};
pub use home::{Home, Kiosk};

use crate::AppError;
use leptos::prelude::*;

/// The header of every page: the name, the two views and the account bar. `current` is the view's
/// path when the page is one of them (`/` or `/kiosk`, which is also laid out for a touchscreen).
#[component]
pub fn Header(#[prop(optional)] current: &'static str) -> impl IntoView {
    let kiosk = current == "/kiosk";
    let here = move |path: &'static str| (current == path).then_some("page");
    view! {
        <header class=if kiosk { "top kiosk" } else { "top" }>
            <div>
                <h1>"ConsultEase"</h1>
                <p class="tagline">"Who is available for consultation, live."</p>
            </div>
            <nav class="views" aria-label="Views">
                <a href="/" aria-current=here("/")>"Board"</a>
                <a href="/kiosk" aria-current=here("/kiosk")>"Kiosk"</a>
                <AccountBar />
            </nav>
        </header>
    }
}

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

/// An action's error as a line under its form, unless it names one of `fields` (shown by the field).
pub(crate) fn form_error<T: Clone + Send + Sync + 'static>(
    value: impl Get<Value = Option<Result<T, AppError>>> + Send + Sync + 'static,
    fields: &'static [&'static str],
) -> impl IntoView {
    move || {
        value
            .get()
            .and_then(Result::err)
            .filter(|e| e.field().is_none_or(|f| !fields.contains(&f)))
            .map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })
    }
}

/// The error of `field` from an action's last answer, shown under that field.
pub(crate) fn field_error<T: Clone + Send + Sync + 'static>(
    value: impl Get<Value = Option<Result<T, AppError>>> + Send + Sync + 'static,
    field: &'static str,
) -> impl IntoView {
    move || {
        value.get().and_then(Result::err).filter(|e| e.field() == Some(field)).map(|e| {
            view! { <p class="field-error" id=format!("{field}-error") role="alert">{e.to_string()}</p> }
        })
    }
}
