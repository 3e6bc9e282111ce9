//! Sign-in, sign-out, who am I, kiosk enrolment: the JSON endpoints (docs/API.md). The pages'
//! forms reach the same `auth::Auth` through server functions.

use super::{AppState, HttpError};
use app::AppError;
use app::ssr::session::Cookies;
use auth::{Client, Principal, Session, SignedIn};
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/admin/sign-in", post(admin_sign_in))
        .route("/api/student/sign-in", post(student_sign_in))
        .route("/api/kiosk/card-sign-in", post(card_sign_in))
        .route("/api/admin/sign-out", post(sign_out))
        .route("/api/student/sign-out", post(sign_out))
        .route("/api/me", get(me))
        .route("/api/kiosk/enrol", post(enrol))
}

/// Where the request came from (peer address from the listener, user agent).
pub struct ClientInfo(pub Client);

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let addr = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string());
        let user_agent = parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned);
        Ok(ClientInfo(Client { addr, user_agent }))
    }
}

/// The request's session, if it has a live one (and its token).
pub struct MaybeSession(pub Option<(String, Session)>);

impl FromRequestParts<AppState> for MaybeSession {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HttpError> {
        let Some(token) = state.cookies.read(&parts.headers, state.cookies.session_name()) else {
            return Ok(MaybeSession(None));
        };
        let session = state.auth.session(token).await.map_err(AppError::from)?;
        Ok(MaybeSession(session.map(|s| (token.to_owned(), s))))
    }
}

/// A signed-in admin; 401 without a session, 403 for anyone else's. The one check every admin
/// route uses.
pub struct AdminSession(pub Session);

impl FromRequestParts<AppState> for AdminSession {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HttpError> {
        match MaybeSession::from_request_parts(parts, state).await?.0 {
            Some((_, s)) if matches!(s.principal, Principal::Admin { .. }) => Ok(AdminSession(s)),
            Some(_) => Err(AppError::Forbidden.into()),
            None => Err(AppError::Unauthorized.into()),
        }
    }
}

/// A signed-in student (their id); 401 without a session, 403 for an admin's. The one check every
/// student route uses.
pub struct StudentSession(pub i64, pub Session);

impl FromRequestParts<AppState> for StudentSession {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HttpError> {
        match MaybeSession::from_request_parts(parts, state).await?.0 {
            Some((_, s)) => match s.principal {
                Principal::Student { id, .. } => Ok(StudentSession(id, s)),
                Principal::Admin { .. } => Err(AppError::Forbidden.into()),
            },
            None => Err(AppError::Unauthorized.into()),
        }
    }
}

/// A JSON body; anything unparsable is a 400 saying why.
pub struct Body<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = HttpError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, HttpError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| HttpError::bad_request("the request body could not be read"))?;
        serde_json::from_slice(&bytes).map(Body).map_err(|e| HttpError::bad_request(format!("invalid JSON body: {e}")))
    }
}

#[derive(Deserialize)]
struct AdminCredentials {
    username: String,
    password: String,
}

#[derive(Deserialize)]
struct StudentCredentials {
    number: String,
    pin: String,
}

#[derive(Deserialize)]
struct Card {
    card: String,
}

#[derive(Deserialize)]
struct EnrolCode {
    code: String,
}

/// Answers a sign-in: 204 and the new session's cookie, or the error. Every failure of the
/// credentials is the same 401, whether or not the account exists.
fn signed_in(cookies: &Cookies, result: Result<SignedIn, auth::AuthError>) -> Result<Response, HttpError> {
    let s = result.map_err(|e| match e {
        auth::AuthError::Rejected => HttpError(AppError::BadCredentials),
        e => HttpError(e.into()),
    })?;
    let cookie = cookies.session(&s.token, s.principal.role(), s.max_age_s);
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

async fn admin_sign_in(
    State(state): State<AppState>,
    MaybeSession(old): MaybeSession,
    ClientInfo(client): ClientInfo,
    Body(c): Body<AdminCredentials>,
) -> Result<Response, HttpError> {
    let old = old.map(|(t, _)| t);
    let result = state.auth.sign_in_admin(&c.username, &c.password, old.as_deref(), &client).await;
    signed_in(&state.cookies, result)
}

async fn student_sign_in(
    State(state): State<AppState>,
    MaybeSession(old): MaybeSession,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    Body(c): Body<StudentCredentials>,
) -> Result<Response, HttpError> {
    let kiosk = kiosk_of(&state, &headers).await?;
    let old = old.map(|(t, _)| t);
    let result = state.auth.sign_in_student(&c.number, &c.pin, kiosk, old.as_deref(), &client).await;
    signed_in(&state.cookies, result)
}

/// Card taps are accepted only from an enrolled (and not revoked) kiosk.
async fn card_sign_in(
    State(state): State<AppState>,
    MaybeSession(old): MaybeSession,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    Body(c): Body<Card>,
) -> Result<Response, HttpError> {
    let Some(kiosk) = kiosk_of(&state, &headers).await? else {
        return Err(HttpError(AppError::Forbidden));
    };
    let old = old.map(|(t, _)| t);
    let result = state.auth.sign_in_card(kiosk, &c.card, old.as_deref(), &client).await;
    signed_in(&state.cookies, result)
}

/// The enrolled kiosk this browser is, if any.
async fn kiosk_of(state: &AppState, headers: &HeaderMap) -> Result<Option<i64>, HttpError> {
    let Some(token) = state.cookies.read(headers, state.cookies.kiosk_name()) else { return Ok(None) };
    Ok(state.auth.kiosk(token).await.map_err(AppError::from)?.map(|k| k.id))
}

async fn sign_out(
    State(state): State<AppState>,
    MaybeSession(session): MaybeSession,
    ClientInfo(client): ClientInfo,
) -> Result<Response, HttpError> {
    if let Some((token, _)) = session {
        state.auth.sign_out(&token, &client).await.map_err(AppError::from)?;
    }
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, state.cookies.clear_session())]).into_response())
}

async fn me(MaybeSession(session): MaybeSession) -> Result<Response, HttpError> {
    let Some((_, s)) = session else { return Err(AppError::Unauthorized.into()) };
    let body = match &s.principal {
        Principal::Admin { username, .. } => json!({ "role": "admin", "name": username, "username": username }),
        Principal::Student { number, name, kiosk_id, .. } => {
            json!({ "role": "student", "name": name, "number": number, "kiosk": kiosk_id.is_some() })
        }
    };
    let mut body = body;
    body["ends_at"] = json!(s.ends_at);
    let mut res = Json(body).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

async fn enrol(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    Body(c): Body<EnrolCode>,
) -> Result<Response, HttpError> {
    let (_, token) = state.auth.enrol_kiosk(&c.code, &client).await.map_err(|e| match e {
        auth::AuthError::Rejected => HttpError(AppError::BadCredentials),
        e => HttpError(e.into()),
    })?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, state.cookies.kiosk(&token))]).into_response())
}
