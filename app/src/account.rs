//! Signing in and out from the pages: server functions over the same accounts service as the JSON
//! endpoints (`auth::Auth`). Each works from a plain form without JavaScript (the browser follows
//! the redirect; an error comes back in the URL and is shown by the form) and from the hydrated
//! page.

use crate::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// Who is looking at the page.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Viewer {
    pub me: Option<Me>,
    /// This browser is an enrolled kiosk.
    pub kiosk: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub name: String,
    pub admin: bool,
    /// A student session started at a kiosk (it ends after a short idle time).
    pub at_kiosk: bool,
    /// How long the session lasts without input (ms).
    pub idle_ms: i64,
}

#[server(endpoint = "viewer")]
pub async fn get_viewer() -> Result<Viewer, AppError> {
    crate::ssr::respond(ssr::viewer().await)
}

#[server(endpoint = "student_sign_in")]
pub async fn student_sign_in(number: String, pin: String) -> Result<(), AppError> {
    crate::ssr::respond(ssr::student(number, pin).await)
}

#[server(endpoint = "card_sign_in")]
pub async fn card_sign_in(card: String) -> Result<(), AppError> {
    crate::ssr::respond(ssr::card(card).await)
}

#[server(endpoint = "admin_sign_in")]
pub async fn admin_sign_in(username: String, password: String) -> Result<(), AppError> {
    crate::ssr::respond(ssr::admin(username, password).await)
}

#[server(endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), AppError> {
    crate::ssr::respond(ssr::sign_out().await)
}

#[server(endpoint = "enrol_kiosk")]
pub async fn enrol_kiosk(code: String) -> Result<(), AppError> {
    crate::ssr::respond(ssr::enrol(code).await)
}

#[cfg(feature = "ssr")]
mod ssr {
    use super::{Me, Viewer};
    use crate::AppError;
    use crate::ssr::AppContext;
    use crate::ssr::session::client;
    use auth::{AuthError, Principal, SignedIn};
    use http::header::SET_COOKIE;
    use http::request::Parts;
    use leptos::prelude::*;
    use leptos_axum::ResponseOptions;

    fn parts() -> Result<Parts, AppError> {
        use_context::<Parts>().ok_or_else(|| crate::ssr::internal("request parts missing"))
    }

    fn set_cookie(value: String) {
        if let (Some(res), Ok(v)) = (use_context::<ResponseOptions>(), http::HeaderValue::from_str(&value)) {
            res.append_header(SET_COOKIE, v);
        }
    }

    fn session_token<'p>(ctx: &AppContext, parts: &'p Parts) -> Option<&'p str> {
        ctx.cookies.read(&parts.headers, ctx.cookies.session_name())
    }

    async fn kiosk_id(ctx: &AppContext, parts: &Parts) -> Result<Option<i64>, AppError> {
        let Some(token) = ctx.cookies.read(&parts.headers, ctx.cookies.kiosk_name()) else { return Ok(None) };
        Ok(ctx.auth.kiosk(token).await?.map(|k| k.id))
    }

    /// Sets the session cookie and sends the browser on to `to`.
    fn signed_in(ctx: &AppContext, result: Result<SignedIn, AuthError>, to: &str) -> Result<(), AppError> {
        let s = result.map_err(|e| match e {
            AuthError::Rejected => AppError::BadCredentials,
            e => e.into(),
        })?;
        set_cookie(ctx.cookies.session(&s.token, s.principal.role(), s.max_age_s));
        leptos_axum::redirect(to);
        Ok(())
    }

    pub async fn viewer() -> Result<Viewer, AppError> {
        let ctx = AppContext::current()?;
        let parts = parts()?;
        let kiosk = kiosk_id(&ctx, &parts).await?.is_some();
        let me = crate::ssr::session::current().await?.map(|s| match s.principal {
            Principal::Admin { username, .. } => {
                Me { name: username, admin: true, at_kiosk: false, idle_ms: s.idle_ms }
            }
            Principal::Student { name, kiosk_id, .. } => {
                Me { name, admin: false, at_kiosk: kiosk_id.is_some(), idle_ms: s.idle_ms }
            }
        });
        Ok(Viewer { me, kiosk })
    }

    pub async fn student(number: String, pin: String) -> Result<(), AppError> {
        let ctx = AppContext::current()?;
        let parts = parts()?;
        let kiosk = kiosk_id(&ctx, &parts).await?;
        let old = session_token(&ctx, &parts);
        let result = ctx.auth.sign_in_student(&number, &pin, kiosk, old, &client(&parts)).await;
        signed_in(&ctx, result, if kiosk.is_some() { "/kiosk" } else { "/" })
    }

    pub async fn card(card: String) -> Result<(), AppError> {
        let ctx = AppContext::current()?;
        let parts = parts()?;
        let Some(kiosk) = kiosk_id(&ctx, &parts).await? else { return Err(AppError::Forbidden) };
        let old = session_token(&ctx, &parts);
        let result = ctx.auth.sign_in_card(kiosk, &card, old, &client(&parts)).await;
        signed_in(&ctx, result, "/kiosk")
    }

    pub async fn admin(username: String, password: String) -> Result<(), AppError> {
        let ctx = AppContext::current()?;
        let parts = parts()?;
        let old = session_token(&ctx, &parts);
        let result = ctx.auth.sign_in_admin(&username, &password, old, &client(&parts)).await;
        signed_in(&ctx, result, "/admin")
    }

    pub async fn sign_out() -> Result<(), AppError> {
        let ctx = AppContext::current()?;
        let parts = parts()?;
        if let Some(token) = session_token(&ctx, &parts) {
            ctx.auth.sign_out(token, &client(&parts)).await?;
        }
        set_cookie(ctx.cookies.clear_session());
        let to = if kiosk_id(&ctx, &parts).await?.is_some() { "/kiosk" } else { "/" };
        leptos_axum::redirect(to);
        Ok(())
    }

    pub async fn enrol(code: String) -> Result<(), AppError> {
        let ctx = AppContext::current()?;
        let parts = parts()?;
        let (_, token) = ctx.auth.enrol_kiosk(&code, &client(&parts)).await.map_err(|e| match e {
            AuthError::Rejected => {
                AppError::invalid("code", "That code is not valid (wrong, used, or older than 15 minutes).")
            }
            e => e.into(),
        })?;
        set_cookie(ctx.cookies.kiosk(&token));
        leptos_axum::redirect("/kiosk");
        Ok(())
    }
}
