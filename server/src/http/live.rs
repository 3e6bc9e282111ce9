//! The live board's HTTP contract: `GET /api/faculty` (snapshot + cursor) and `GET /api/events`
//! (Server-Sent Events resuming from a cursor).
//!
//! A stream subscribes to the event bus *before* it reads the log after the client's cursor, then
//! sends the replay and continues with live events, dropping any it already sent (by id): no gap
//! and no duplicate at the seam. A client too far behind, past the log, or whose receiver lagged,
//! gets `event: snapshot` (the `/api/faculty` body) instead and continues from its cursor.

use super::metrics::StreamGuard;
use super::{AppState, HttpError};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use domain::{FacultyEvent, Snapshot};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::sync::broadcast::{Receiver, error::RecvError};

pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How soon a browser reconnects after losing the stream.
const RETRY: Duration = Duration::from_secs(1);

pub async fn faculty(State(state): State<AppState>) -> Result<Json<Snapshot>, HttpError> {
    Ok(Json(state.store.snapshot().await?))
}

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    after: Option<String>,
}

pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, HttpError> {
    // A reconnecting EventSource sends the id of the last event it got; it wins over the URL's.
    let raw = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_owned).or(query.after);
    let after = match raw.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            s.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| HttpError::BadRequest("after must be a non-negative integer event id".into()))?,
        ),
    };
    let rx = state.store.bus().subscribe();
    let live = LiveStream {
        store: state.store.clone(),
        rx,
        last: 0,
        queue: VecDeque::new(),
        max_replay: state.max_replay,
        guard: StreamGuard::new(state.metrics.clone()),
    };
    let stream = live.into_stream(after).take_until(state.shutdown.clone().cancelled_owned());
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

struct LiveStream {
    store: store::Store,
    rx: Receiver<Arc<FacultyEvent>>,
    /// The newest event id this client has (from the replay, a snapshot or a live event).
    last: i64,
    queue: VecDeque<Event>,
    max_replay: i64,
    /// Counts this stream as connected, and its events.
    guard: StreamGuard,
}

fn faculty_event(ev: &FacultyEvent) -> Event {
    Event::default().id(ev.id.to_string()).event("faculty").json_data(&ev.faculty).unwrap_or_else(|err| {
        tracing::error!(%err, "cannot serialise an event");
        Event::default().comment("unserialisable event")
    })
}

impl LiveStream {
    fn into_stream(self, after: Option<i64>) -> impl Stream<Item = Result<Event, Infallible>> {
        futures::stream::unfold((self, Some(after)), |(mut st, start)| async move {
            if let Some(after) = start {
                st.queue.push_back(Event::default().retry(RETRY).comment("live"));
                if let Err(err) = st.start(after).await {
                    tracing::error!(error = %err, "cannot start an event stream");
                    return None;
                }
            }
            loop {
                if let Some(ev) = st.queue.pop_front() {
                    if st.queue.is_empty() {
                        st.queue.shrink_to(0);
                    }
                    st.guard.metrics().sse_events_sent.fetch_add(1, Relaxed);
                    return Some((Ok(ev), (st, None)));
                }
                match st.rx.recv().await {
                    Ok(ev) if ev.id > st.last => {
                        st.last = ev.id;
                        st.guard.metrics().sse_events_sent.fetch_add(1, Relaxed);
                        return Some((Ok(faculty_event(&ev)), (st, None)));
                    }
                    Ok(_) => {} // already sent in the replay
                    Err(RecvError::Lagged(missed)) => {
                        st.guard.metrics().sse_lagged.fetch_add(1, Relaxed);
                        tracing::warn!(missed, "event stream receiver lagged; sending a snapshot");
                        if let Err(err) = st.snapshot().await {
                            tracing::error!(error = %err, "cannot resynchronise an event stream");
                            return None;
                        }
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        })
    }

    /// Queues the replay after `after`, or a snapshot when that is not possible or sensible.
    async fn start(&mut self, after: Option<i64>) -> store::Result<()> {
        let Some(after) = after else { return self.snapshot().await };
        let events = self.store.events_after(after, self.max_replay + 1).await?;
        let newest = match events.last() {
            Some(ev) => ev.id,
            None => self.store.newest_event_id().await?,
        };
        if after > newest || events.len() as i64 > self.max_replay {
            // From another database, or too far behind: a snapshot is cheaper than the replay.
            return self.snapshot().await;
        }
        self.last = after;
        for ev in &events {
            self.queue.push_back(faculty_event(ev));
            self.last = ev.id;
        }
        Ok(())
    }

    async fn snapshot(&mut self) -> store::Result<()> {
        self.guard.metrics().sse_snapshots.fetch_add(1, Relaxed);
        let snap = self.store.snapshot().await?;
        self.last = snap.cursor;
        let ev = Event::default().id(snap.cursor.to_string()).event("snapshot").json_data(&snap).unwrap_or_default();
        self.queue.push_back(ev);
        Ok(())
    }
}
