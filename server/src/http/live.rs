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
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use domain::{FacultyEvent, Snapshot};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::broadcast::{Receiver, error::RecvError};

/// Sent first on every stream: how soon a browser reconnects after losing it (ms), and a comment.
const PREAMBLE: &[u8] = b"retry: 1000\n: live\n\n";
const KEEP_ALIVE_FRAME: &[u8] = b": keep-alive\n\n";

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
) -> Result<Response, HttpError> {
    // A reconnecting EventSource sends the id of the last event it got; it wins over the URL's.
    let raw = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_owned).or(query.after);
    let after = match raw.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            s.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| HttpError::bad_request("after must be a non-negative integer event id"))?,
        ),
    };
    let rx = state.store.bus().subscribe();
    let live = LiveStream {
        store: state.store.clone(),
        frames: state.frames.clone(),
        rx,
        last: 0,
        queue: VecDeque::new(),
        max_replay: state.max_replay,
        keep_alive: state.keep_alive,
        guard: StreamGuard::new(state.metrics.clone()),
    };
    let stream = live.into_stream(after).take_until(state.shutdown.clone().cancelled_owned());
    let headers = [(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")];
    Ok((headers, Body::from_stream(stream.map(Ok::<_, Infallible>))).into_response())
}

/// One SSE frame: `id`, `event` and the JSON on a single `data` line (compact JSON has no raw
/// newlines, so no line of it can end the frame early).
pub(super) fn render(id: i64, kind: &str, data: &impl Serialize) -> Bytes {
    let mut out = BytesMut::with_capacity(256).writer();
    let rendered = (|| -> std::io::Result<()> {
        use std::io::Write;
        write!(out, "id: {id}\nevent: {kind}\ndata: ")?;
        serde_json::to_writer(&mut out, data)?;
        out.write_all(b"\n\n")
    })();
    match rendered {
        Ok(()) => out.into_inner().freeze(),
        Err(err) => {
            tracing::error!(%err, id, "cannot serialise an event");
            Bytes::from_static(b": unserialisable event\n\n")
        }
    }
}

/// Committed events rendered once as SSE frames and shared by every stream: a delivery to each
/// of thousands of clients is a reference-count increment and a socket write, not a
/// serialisation. Recent events only (a slot per `id % SLOTS`); an event id names one immutable
/// log entry, so a frame never goes stale.
#[derive(Debug)]
pub struct Frames {
    slots: Box<[Mutex<(i64, Bytes)>]>,
}

impl Default for Frames {
    fn default() -> Self {
        const SLOTS: usize = 1024;
        Frames { slots: (0..SLOTS).map(|_| Mutex::new((-1, Bytes::new()))).collect() }
    }
}

impl Frames {
    fn faculty(&self, ev: &FacultyEvent) -> Bytes {
        let slot = &self.slots[ev.id.unsigned_abs() as usize % self.slots.len()];
        // Held while rendering: streams woken by the same event wait for the one rendering it.
        let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.0 != ev.id {
            *slot = (ev.id, render(ev.id, "faculty", &ev.faculty));
        }
        slot.1.clone()
    }
}

struct LiveStream {
    store: store::Store,
    frames: Arc<Frames>,
    rx: Receiver<Arc<FacultyEvent>>,
    /// The newest event id this client has (from the replay, a snapshot or a live event).
    last: i64,
    queue: VecDeque<Bytes>,
    max_replay: i64,
    /// A comment goes out after this long without an event.
    keep_alive: Duration,
    /// Counts this stream as connected, and its events.
    guard: StreamGuard,
}

impl LiveStream {
    fn into_stream(self, after: Option<i64>) -> impl futures::Stream<Item = Bytes> {
        futures::stream::unfold((self, Some(after)), |(mut st, start)| async move {
            if let Some(after) = start {
                // Boxed: the replay's database futures are large, and an unboxed await would
                // size every idle stream's state for them.
                if let Err(err) = Box::pin(st.start(after)).await {
                    tracing::error!(error = %err, "cannot start an event stream");
                    return None;
                }
                return Some((Bytes::from_static(PREAMBLE), (st, None)));
            }
            loop {
                if let Some(frame) = st.queue.pop_front() {
                    if st.queue.is_empty() {
                        st.queue.shrink_to(0);
                    }
                    st.guard.metrics().sse_events_sent.inc();
                    return Some((frame, (st, None)));
                }
                // A comment after a quiet spell keeps proxies and browsers from timing out.
                let Ok(received) = tokio::time::timeout(st.keep_alive, st.rx.recv()).await else {
                    return Some((Bytes::from_static(KEEP_ALIVE_FRAME), (st, None)));
                };
                match received {
                    Ok(ev) if ev.id > st.last => {
                        st.last = ev.id;
                        st.guard.metrics().sse_events_sent.inc();
                        return Some((st.frames.faculty(&ev), (st, None)));
                    }
                    Ok(_) => {} // already sent in the replay
                    Err(RecvError::Lagged(missed)) => {
                        st.guard.metrics().sse_lagged.inc();
                        tracing::warn!(missed, "event stream receiver lagged; sending a snapshot");
                        if let Err(err) = Box::pin(st.snapshot()).await {
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
        // Read after the events: the watermark only grows, so if it is not above `after` now, no
        // event after `after` was gone when they were read.
        let pruned = self.store.events_pruned_through().await?;
        if after > newest || events.len() as i64 > self.max_replay || after < pruned {
            // From another database, too far behind, or older than the log kept: a snapshot.
            return self.snapshot().await;
        }
        self.last = after;
        for ev in &events {
            self.queue.push_back(self.frames.faculty(ev));
            self.last = ev.id;
        }
        Ok(())
    }

    async fn snapshot(&mut self) -> store::Result<()> {
        self.guard.metrics().sse_snapshots.inc();
        let snap = self.store.snapshot().await?;
        self.last = snap.cursor;
        self.queue.push_back(render(snap.cursor, "snapshot", &snap));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{FacultyView, Status};

    fn event(id: i64, version: i64) -> FacultyEvent {
        let faculty = FacultyView {
            id: 7,
            name: "Ada \"the first\"\nLovelace".into(),
            department: "CS".into(),
            status: Status::Available,
            present: true,
            busy: false,
            desk_online: true,
            last_seen: Some(1),
            changed_at: 1,
            waiting: 0,
            note: None,
            until: None,
            active: true,
            hours: vec![],
            version,
        };
        FacultyEvent { id, faculty }
    }

    #[test]
    fn a_frame_is_one_event_with_its_json_on_one_data_line() {
        let frame = Frames::default().faculty(&event(42, 3));
        let text = std::str::from_utf8(&frame).unwrap();
        let (head, data) = text.split_once("data: ").unwrap();
        assert_eq!(head, "id: 42\nevent: faculty\n");
        assert!(data.ends_with("\n\n") && !data.trim_end().contains('\n'), "{text:?}");
        let json: serde_json::Value = serde_json::from_str(data.trim_end()).unwrap();
        assert_eq!((json["version"].as_i64(), json["name"].as_str()), (Some(3), Some("Ada \"the first\"\nLovelace")));
    }

    #[test]
    fn each_event_is_rendered_once_and_shared() {
        let frames = Frames::default();
        let a = frames.faculty(&event(5, 1));
        let b = frames.faculty(&event(5, 1));
        assert_eq!(a.as_ptr(), b.as_ptr(), "the second stream gets the same buffer");
        // An event that lands in the same slot replaces it; the slot never serves the wrong id.
        let later = frames.faculty(&event(5 + 1024, 2));
        assert!(std::str::from_utf8(&later).unwrap().starts_with("id: 1029\n"));
        assert!(std::str::from_utf8(&frames.faculty(&event(5, 1))).unwrap().starts_with("id: 5\n"));
    }
}
