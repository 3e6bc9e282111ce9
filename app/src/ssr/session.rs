//! The session and kiosk cookies, and who the current request is (server only).

use crate::AppError;
use auth::{Client, Principal, Session};
use domain::auth::Role;
use http::HeaderMap;
use http::header::{COOKIE, USER_AGENT};

/// How cookies are written. `secure`: served over HTTPS, or plain HTTP on a loopback address
/// (which browsers treat as secure): cookies get `Secure` and the `__Host-` prefix (no domain, path
/// `/`, only over a secure channel).
#[derive(Clone, Copy, Debug)]
pub struct Cookies {
    pub secure: bool,
}

/// The kiosk cookie lives a year: an enrolled kiosk stays enrolled until revoked.
const KIOSK_MAX_AGE_S: i64 = 365 * 24 * 3600;

impl Cookies {
    pub fn session_name(&self) -> &'static str {
        if self.secure { "__Host-ce_session" } else { "ce_session" }
    }

    pub fn kiosk_name(&self) -> &'static str {
        if self.secure { "__Host-ce_kiosk" } else { "ce_kiosk" }
    }

    fn attributes(&self, same_site: &str, max_age_s: i64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("Path=/; HttpOnly; SameSite={same_site}; Max-Age={max_age_s}{secure}")
    }

    /// `Set-Cookie` for a new session: `SameSite=Strict` for admins (no cross-site navigation
    /// carries their session), `Lax` for students (a link from the university's site keeps them
    /// signed in).
    pub fn session(&self, token: &str, role: Role, max_age_s: i64) -> String {
        let same_site = match role {
            Role::Admin => "Strict",
            Role::Student => "Lax",
        };
        format!("{}={token}; {}", self.session_name(), self.attributes(same_site, max_age_s))
    }

    pub fn clear_session(&self) -> String {
        format!("{}=; {}", self.session_name(), self.attributes("Lax", 0))
    }

    pub fn kiosk(&self, token: &str) -> String {
        format!("{}={token}; {}", self.kiosk_name(), self.attributes("Strict", KIOSK_MAX_AGE_S))
    }

    pub fn clear_kiosk(&self) -> String {
        format!("{}=; {}", self.kiosk_name(), self.attributes("Strict", 0))
    }

    /// The value of cookie `name` in a request's headers.
    pub fn read<'h>(&self, headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
            .filter(|v| !v.is_empty() && v.len() <= 128)
    }
}

/// Where a request came from: its peer address (set by the server's listener) and user agent.
pub fn client(parts: &http::request::Parts) -> Client {
    Client {
        addr: parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip().to_string()),
        user_agent: parts.headers.get(USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned),
    }
}

impl From<auth::AuthError> for AppError {
    fn from(e: auth::AuthError) -> Self {
        use auth::AuthError as E;
        match e {
            E::Rejected => AppError::Unauthorized,
            E::LockedOut { retry_after_s } => AppError::TooMany { retry_after_s },
            E::Invalid(m) => AppError::Invalid { field: None, message: m.to_owned() },
            E::Store(s) => s.into(),
            E::Hash(h) => super::internal(h),
        }
    }
}

/// The current request's session, if any (for pages and server functions).
pub async fn current() -> Result<Option<Session>, AppError> {
    let ctx = super::AppContext::current()?;
    let Some(parts) = leptos::prelude::use_context::<http::request::Parts>() else { return Ok(None) };
    let Some(token) = ctx.cookies.read(&parts.headers, ctx.cookies.session_name()) else { return Ok(None) };
    Ok(ctx.auth.session(token).await?)
}

/// The signed-in student, or `Unauthorized`.
pub async fn student() -> Result<(i64, Session), AppError> {
    let Some(s) = current().await? else { return Err(AppError::Unauthorized) };
    match s.principal {
        Principal::Student { id, .. } => Ok((id, s)),
        Principal::Admin { .. } => Err(AppError::Forbidden),
    }
}

/// The signed-in admin, or `Unauthorized` / `Forbidden`.
pub async fn admin() -> Result<Session, AppError> {
    match current().await? {
        Some(s) if s.principal.role() == Role::Admin => Ok(s),
        Some(_) => Err(AppError::Forbidden),
        None => Err(AppError::Unauthorized),
    }
}
