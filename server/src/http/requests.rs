//! Consultation requests over HTTP (docs/API.md): a student places, lists and cancels their own
//! requests and follows them live. Every route takes the student from the session; a request id
//! that is not theirs is a 404, never someone else's data. A ticket link (`/api/tickets/{token}`)
//! opens one request's progress, without the student's words, for as long as its token is valid.

use super::account::{Body, StudentSession};
use super::feeds::Feed;
use super::{AppState, HttpError};
use app::AppError;
use axum::body::Body as HttpBody;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use domain::RequestView;
use domain::consultation::Input;
use futures::StreamExt;
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/requests", post(place))
        .route("/api/requests/{id}/cancel", post(cancel))
        .route("/api/me/requests", get(mine))
        .route("/api/tickets/{token}", get(ticket))
}

/// The live streams (outside the compression layer, like the board's).
pub fn stream_routes() -> Router<AppState> {
    Router::new().route("/api/me/events", get(my_events)).route("/api/tickets/{token}/events", get(ticket_events))
}

#[derive(Deserialize)]
struct Place {
    faculty_id: i64,
    course: Option<String>,
    message: String,
    #[serde(default)]
    hold: bool,
}

async fn place(
    State(state): State<AppState>,
    StudentSession(student, _): StudentSession,
    Body(p): Body<Place>,
) -> Result<Response, HttpError> {
    let new = store::NewRequest {
        student_id: student,
        faculty_id: p.faculty_id,
        course: p.course,
        message: p.message,
        hold: p.hold,
    };
    let view = state.store.place_request(&new).await.map_err(AppError::from)?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn cancel(
    State(state): State<AppState>,
    StudentSession(student, _): StudentSession,
    Path(id): Path<i64>,
) -> Result<Response, HttpError> {
    let actor = store::Actor::Student(student);
    match state.store.change_request(id, Input::Cancel, &actor, None).await.map_err(AppError::from)? {
        Some(view) => Ok(Json(view).into_response()),
        // Already finished: answer with it as it is (cancelling again changes nothing).
        None => match state.store.request_view(id).await.map_err(AppError::from)? {
            Some(view) => Ok(Json(view).into_response()),
            None => Err(AppError::NotFound(format!("no request {id}")).into()),
        },
    }
}

async fn mine(
    State(state): State<AppState>,
    StudentSession(student, _): StudentSession,
) -> Result<Response, HttpError> {
    let mut res = Json(state.store.student_requests(student).await.map_err(AppError::from)?).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    Ok(res)
}

/// `GET /api/tickets/{token}`: the request a ticket link opens (redacted), the cursor to follow it
/// from, and the token to follow it with.
async fn ticket(State(state): State<AppState>, Path(token): Path<String>) -> Result<Response, HttpError> {
    let ticket = app::ssr::tickets::open(&state.app_context(), &token, store::now_ms()).await?;
    let mut res = Json(ticket).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    Ok(res)
}

#[derive(Deserialize)]
struct After {
    after: Option<i64>,
}

/// Whose request events a stream carries.
#[derive(Clone, Debug)]
enum Scope {
    /// All of a signed-in student's; the stream ends when the session does.
    Student { student: i64, session: String },
    /// One request, redacted, for a ticket link; the stream ends when its token expires.
    Ticket { student: i64, request: i64, token: String },
}

impl Scope {
    fn student(&self) -> i64 {
        match self {
            Scope::Student { student, .. } | Scope::Ticket { student, .. } => *student,
        }
    }

    /// The event as this stream shows it, if it shows it at all.
    fn show(&self, r: &RequestView) -> Option<RequestView> {
        match self {
            Scope::Student { .. } => Some(r.clone()),
            Scope::Ticket { request, .. } => (r.id == *request).then(|| r.clone().redacted()),
        }
    }

    /// Whatever grants the stream still does.
    async fn alive(&self, state: &AppState) -> bool {
        match self {
            Scope::Student { session, .. } => matches!(state.auth.session(session).await, Ok(Some(_))),
            Scope::Ticket { token, .. } => {
                matches!(state.auth.tickets().await.map(|t| t.verify(token, store::now_ms())), Ok(Ok(_)))
            }
        }
    }
}

async fn my_events(
    State(state): State<AppState>,
    StudentSession(student, _): StudentSession,
    headers: HeaderMap,
    Query(q): Query<After>,
) -> Result<Response, HttpError> {
    let session = state.cookies.read(&headers, state.cookies.session_name()).map(str::to_owned).unwrap_or_default();
    Ok(events(state, Scope::Student { student, session }, &headers, q))
}

/// `GET /api/tickets/{token}/events`: one request's events, as a ticket link shows them.
async fn ticket_events(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    Query(q): Query<After>,
) -> Result<Response, HttpError> {
    let (request, student) = app::ssr::tickets::verify(&state.auth, &state.store, &token, store::now_ms()).await?;
    Ok(events(state, Scope::Ticket { student, request, token }, &headers, q))
}

/// How often a stream checks that its session is still alive (and sends a comment if idle).
const SESSION_CHECK: Duration = Duration::from_secs(15);

/// A request stream (`/api/me/events`, a ticket's): the scope's events, replayed after `?after=`
/// (or `Last-Event-ID`), then live, with no gap or duplicate at the seam (subscribe first, then
/// read the log, then drop what was already sent); a snapshot (`event: snapshot`, the
/// `/api/me/requests` body) when resuming is not possible. The stream ends when its grant does.
fn events(state: AppState, scope: Scope, headers: &HeaderMap, q: After) -> Response {
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or(q.after)
        .filter(|n| *n >= 0);
    let mut rx = state.feeds.subscribe(scope.student());
    let (store, max_replay) = (state.store.clone(), state.max_replay);
    let shutdown = state.shutdown.clone();
    let stream = async_stream(move |tx| async move {
        let mut last = match start(&store, &scope, after, max_replay, &tx).await {
            Some(last) => last,
            None => return,
        };
        loop {
            let received = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = tokio::time::timeout(SESSION_CHECK, rx.recv()) => r,
            };
            match received {
                Err(_) => {
                    // Quiet: is the grant still valid? Then a comment keeps proxies from closing.
                    if !scope.alive(&state).await {
                        return;
                    }
                    if tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                        return;
                    }
                }
                Ok(Ok(Feed::Event(ev))) if ev.id > last => {
                    last = ev.id;
                    if let Some(view) = scope.show(&ev.request)
                        && tx.send(super::live::render(ev.id, "request", &view)).await.is_err()
                    {
                        return;
                    }
                }
                Ok(Ok(Feed::Event(_))) => {}
                Ok(Ok(Feed::Resync) | Err(RecvError::Lagged(_))) => match snapshot(&store, &scope, &tx).await {
                    Some(cursor) => last = cursor,
                    None => return,
                },
                Ok(Err(RecvError::Closed)) => return,
            }
        }
    });
    let headers = [(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-store")];
    (headers, HttpBody::from_stream(stream.map(Ok::<_, Infallible>))).into_response()
}

type Sender = tokio::sync::mpsc::Sender<Bytes>;

/// The preamble and the replay (or a snapshot). Returns the cursor reached, `None` if the client left.
async fn start(store: &store::Store, scope: &Scope, after: Option<i64>, max_replay: i64, tx: &Sender) -> Option<i64> {
    tx.send(Bytes::from_static(b"retry: 1000\n: live\n\n")).await.ok()?;
    let Some(after) = after else { return snapshot(store, scope, tx).await };
    let student = scope.student();
    let events = match store.request_events_after(student, after, max_replay + 1).await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "cannot replay a student's events");
            return None;
        }
    };
    let newest = store.newest_request_event(student).await.ok()?;
    if after > newest || events.len() as i64 > max_replay {
        return snapshot(store, scope, tx).await;
    }
    let mut last = after;
    for ev in events {
        last = ev.id;
        if let Some(view) = scope.show(&ev.request) {
            tx.send(super::live::render(ev.id, "request", &view)).await.ok()?;
        }
    }
    Some(last)
}

/// Everything the scope shows as it is now, in the `/api/me/requests` shape.
async fn snapshot(store: &store::Store, scope: &Scope, tx: &Sender) -> Option<i64> {
    let mine = match store.student_requests(scope.student()).await {
        Ok(m) => {
            domain::MyRequests { cursor: m.cursor, requests: m.requests.iter().filter_map(|r| scope.show(r)).collect() }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a student's requests");
            return None;
        }
    };
    let cursor = mine.cursor;
    tx.send(super::live::render(cursor, "snapshot", &mine)).await.ok()?;
    Some(cursor)
}

/// A stream fed by a task through a small channel (the task ends when the client goes away).
fn async_stream<F, Fut>(body: F) -> impl futures::Stream<Item = Bytes>
where
    F: FnOnce(Sender) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(body(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
