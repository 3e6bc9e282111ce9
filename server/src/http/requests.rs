//! Consultation requests over HTTP (docs/API.md): a student places, lists and cancels their own
//! requests and follows them live. Every route takes the student from the session; a request id
//! that is not theirs is a 404, never someone else's data.

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
}

/// The student's live stream (outside the compression layer, like the board's).
pub fn stream_routes() -> Router<AppState> {
    Router::new().route("/api/me/events", get(events))
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

#[derive(Deserialize)]
struct After {
    after: Option<i64>,
}

/// How often a stream checks that its session is still alive (and sends a comment if idle).
const SESSION_CHECK: Duration = Duration::from_secs(15);

/// `GET /api/me/events`: this student's request events, replayed after `?after=` (or
/// `Last-Event-ID`), then live, with no gap or duplicate at the seam (subscribe first, then read
/// the log, then drop what was already sent); a snapshot (`event: snapshot`, the
/// `/api/me/requests` body) when resuming is not possible. The stream ends when the session does.
async fn events(
    State(state): State<AppState>,
    StudentSession(student, _): StudentSession,
    headers: HeaderMap,
    Query(q): Query<After>,
) -> Result<Response, HttpError> {
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or(q.after)
        .filter(|n| *n >= 0);
    let token = state.cookies.read(&headers, state.cookies.session_name()).map(str::to_owned).unwrap_or_default();
    let mut rx = state.feeds.subscribe(student);
    let (store, auth, max_replay) = (state.store.clone(), state.auth.clone(), state.max_replay);
    let shutdown = state.shutdown.clone();
    let stream = async_stream(move |tx| async move {
        let mut last = match start(&store, student, after, max_replay, &tx).await {
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
                    // Quiet: is the session still alive? Then a comment keeps proxies from closing.
                    if !matches!(auth.session(&token).await, Ok(Some(_))) {
                        return;
                    }
                    if tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                        return;
                    }
                }
                Ok(Ok(Feed::Event(ev))) if ev.id > last => {
                    last = ev.id;
                    if tx.send(super::live::render(ev.id, "request", &ev.request)).await.is_err() {
                        return;
                    }
                }
                Ok(Ok(Feed::Event(_))) => {}
                Ok(Ok(Feed::Resync) | Err(RecvError::Lagged(_))) => match snapshot(&store, student, &tx).await {
                    Some(cursor) => last = cursor,
                    None => return,
                },
                Ok(Err(RecvError::Closed)) => return,
            }
        }
    });
    let headers = [(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-store")];
    Ok((headers, HttpBody::from_stream(stream.map(Ok::<_, Infallible>))).into_response())
}

type Sender = tokio::sync::mpsc::Sender<Bytes>;

/// The preamble and the replay (or a snapshot). Returns the cursor reached, `None` if the client left.
async fn start(store: &store::Store, student: i64, after: Option<i64>, max_replay: i64, tx: &Sender) -> Option<i64> {
    tx.send(Bytes::from_static(b"retry: 1000\n: live\n\n")).await.ok()?;
    let Some(after) = after else { return snapshot(store, student, tx).await };
    let events = match store.request_events_after(student, after, max_replay + 1).await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "cannot replay a student's events");
            return None;
        }
    };
    let newest = store.newest_request_event(student).await.ok()?;
    if after > newest || events.len() as i64 > max_replay {
        return snapshot(store, student, tx).await;
    }
    let mut last = after;
    for ev in events {
        last = ev.id;
        tx.send(super::live::render(ev.id, "request", &ev.request)).await.ok()?;
    }
    Some(last)
}

async fn snapshot(store: &store::Store, student: i64, tx: &Sender) -> Option<i64> {
    let mine = match store.student_requests(student).await {
        Ok(m) => m,
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
