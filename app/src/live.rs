//! The browser side of the live board: [`follow`] (hydrate only) follows `/api/events` from the
//! page's cursor with an `EventSource`, applies only newer versions, reconnects by itself, and ticks
//! the clock that card ages are computed from; [`Link`] is the connection state pages show.

/// The state of the live connection, shown by the indicator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Connecting,
    Live,
    Reconnecting,
}

impl Link {
    pub fn label(self) -> &'static str {
        match self {
            Link::Connecting => "Connecting…",
            Link::Live => "Live",
            Link::Reconnecting => "Reconnecting…",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Link::Connecting => "connecting",
            Link::Live => "live",
            Link::Reconnecting => "reconnecting",
        }
    }
}

#[cfg(feature = "hydrate")]
pub use follower::{follow, follow_requests};

#[cfg(feature = "hydrate")]
mod follower {
    use super::Link;
    use domain::{Applied, FacultyView, Snapshot, apply_view, merge_snapshot};
    use leptos::prelude::*;
    use send_wrapper::SendWrapper;
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    use std::time::Duration;
    use wasm_bindgen::JsCast;
    use wasm_bindgen::closure::Closure;
    use web_sys::{EventSource, MessageEvent};

    type Listener = Closure<dyn FnMut(web_sys::Event)>;
    /// An open stream and the listeners attached to it (dropped together).
    type Connection = Option<(EventSource, Vec<Listener>)>;

    /// What a connection needs: the signals it writes, and where it resumes.
    #[derive(Clone)]
    struct Follower {
        faculty: RwSignal<Vec<FacultyView>>,
        link: RwSignal<Link>,
        announce: RwSignal<String>,
        /// The newest event id applied (the stream's cursor).
        last: Rc<Cell<i64>>,
        conn: Rc<RefCell<Connection>>,
        closed: Rc<Cell<bool>>,
    }

    pub fn follow(
        cursor: i64,
        faculty: RwSignal<Vec<FacultyView>>,
        now: RwSignal<i64>,
        link: RwSignal<Link>,
        announce: RwSignal<String>,
    ) {
        let f = Follower {
            faculty,
            link,
            announce,
            last: Rc::new(Cell::new(cursor)),
            conn: Rc::default(),
            closed: Rc::default(),
        };
        f.open();
        let tick = set_interval_with_handle(move || now.set(js_sys::Date::now() as i64), Duration::from_secs(10)).ok();
        now.set(js_sys::Date::now() as i64);
        let cleanup = SendWrapper::new(f);
        on_cleanup(move || {
            cleanup.closed.set(true);
            if let Some((es, _)) = cleanup.conn.borrow_mut().take() {
                es.close();
            }
            if let Some(t) = tick {
                t.clear();
            }
        });
    }

    impl Follower {
        fn open(&self) {
            if self.closed.get() {
                return;
            }
            let url = format!("/api/events?after={}", self.last.get());
            let es = match EventSource::new(&url) {
                Ok(es) => es,
                Err(_) => return self.retry_later(),
            };
            let mut listeners = Vec::new();
            let mut on = |name: &str, handler: Box<dyn FnMut(web_sys::Event)>| {
                let cb = Closure::wrap(handler);
                let _ = es.add_event_listener_with_callback(name, cb.as_ref().unchecked_ref());
                listeners.push(cb);
            };
            let me = self.clone();
            on("open", Box::new(move |_| me.link.set(Link::Live)));
            let me = self.clone();
            on(
                "error",
                Box::new(move |_| {
                    me.link.set(Link::Reconnecting);
                    // The browser retries by itself unless the stream was closed for good.
                    let closed =
                        me.conn.borrow().as_ref().is_some_and(|(es, _)| es.ready_state() == EventSource::CLOSED);
                    if closed {
                        me.retry_later();
                    }
                }),
            );
            let me = self.clone();
            on(
                "faculty",
                Box::new(move |e| {
                    let Some(msg) = e.dyn_ref::<MessageEvent>() else { return };
                    let Some(row) = msg.data().as_string().and_then(|d| serde_json::from_str::<FacultyView>(&d).ok())
                    else {
                        return;
                    };
                    if let Ok(id) = msg.last_event_id().parse::<i64>() {
                        me.last.set(me.last.get().max(id));
                    }
                    let (name, status) = (row.name.clone(), row.status);
                    let mut applied = Applied::Stale;
                    me.faculty.update(|list| applied = apply_view(list, row));
                    if let Applied::Updated { status_changed: true } = applied {
                        me.announce.set(format!("{name} is now {}", status.label()));
                    }
                }),
            );
            let me = self.clone();
            on(
                "snapshot",
                Box::new(move |e| {
                    let Some(msg) = e.dyn_ref::<MessageEvent>() else { return };
                    let Some(snap) = msg.data().as_string().and_then(|d| serde_json::from_str::<Snapshot>(&d).ok())
                    else {
                        return;
                    };
                    me.last.set(snap.cursor);
                    me.faculty.update(|list| merge_snapshot(list, snap));
                }),
            );
            *self.conn.borrow_mut() = Some((es, listeners));
        }

        /// Opens a fresh connection (resuming from the newest id applied) in a couple of seconds.
        fn retry_later(&self) {
            if let Some((es, _)) = self.conn.borrow_mut().take() {
                es.close();
            }
            let me = self.clone();
            set_timeout(move || me.open(), Duration::from_secs(2));
        }
    }

    /// Follows a request stream (`/api/me/events`, or a ticket's) from `cursor`: applies only newer
    /// versions of its requests, replaces the list on a snapshot, reconnects by itself.
    pub fn follow_requests(
        stream: String,
        cursor: i64,
        list: RwSignal<Vec<domain::RequestView>>,
        link: RwSignal<Link>,
    ) {
        let stream = Rc::new(stream);
        let last = Rc::new(Cell::new(cursor));
        let conn: Rc<RefCell<Connection>> = Rc::default();
        let closed = Rc::new(Cell::new(false));
        fn open(
            stream: Rc<String>,
            last: Rc<Cell<i64>>,
            conn: Rc<RefCell<Connection>>,
            closed: Rc<Cell<bool>>,
            list: RwSignal<Vec<domain::RequestView>>,
            link: RwSignal<Link>,
        ) {
            if closed.get() {
                return;
            }
            let Ok(es) = EventSource::new(&format!("{stream}?after={}", last.get())) else { return };
            let mut listeners = Vec::new();
            let mut on = |name: &str, handler: Box<dyn FnMut(web_sys::Event)>| {
                let cb = Closure::wrap(handler);
                let _ = es.add_event_listener_with_callback(name, cb.as_ref().unchecked_ref());
                listeners.push(cb);
            };
            on("open", Box::new(move |_| link.set(Link::Live)));
            {
                let (stream, last, conn, closed) = (stream.clone(), last.clone(), conn.clone(), closed.clone());
                on(
                    "error",
                    Box::new(move |_| {
                        link.set(Link::Reconnecting);
                        let gone =
                            conn.borrow().as_ref().is_some_and(|(es, _)| es.ready_state() == EventSource::CLOSED);
                        if gone {
                            if let Some((es, _)) = conn.borrow_mut().take() {
                                es.close();
                            }
                            let (stream, last, conn, closed) =
                                (stream.clone(), last.clone(), conn.clone(), closed.clone());
                            set_timeout(move || open(stream, last, conn, closed, list, link), Duration::from_secs(2));
                        }
                    }),
                );
            }
            {
                let last = last.clone();
                on(
                    "request",
                    Box::new(move |e| {
                        let Some(msg) = e.dyn_ref::<MessageEvent>() else { return };
                        let Some(r) =
                            msg.data().as_string().and_then(|d| serde_json::from_str::<domain::RequestView>(&d).ok())
                        else {
                            return;
                        };
                        if let Ok(id) = msg.last_event_id().parse::<i64>() {
                            last.set(last.get().max(id));
                        }
                        list.update(|l| {
                            domain::apply_request(l, r);
                        });
                    }),
                );
            }
            {
                let last = last.clone();
                on(
                    "snapshot",
                    Box::new(move |e| {
                        let Some(msg) = e.dyn_ref::<MessageEvent>() else { return };
                        let Some(mine) =
                            msg.data().as_string().and_then(|d| serde_json::from_str::<domain::MyRequests>(&d).ok())
                        else {
                            return;
                        };
                        last.set(mine.cursor);
                        list.update(|l| {
                            let mut next = mine.requests;
                            for r in next.iter_mut() {
                                if let Some(held) = l.iter().find(|h| h.id == r.id && h.version > r.version) {
                                    *r = held.clone();
                                }
                            }
                            *l = next;
                        });
                    }),
                );
            }
            *conn.borrow_mut() = Some((es, listeners));
        }
        open(stream, last, conn.clone(), closed.clone(), list, link);
        let cleanup = SendWrapper::new((conn, closed));
        on_cleanup(move || {
            let (conn, closed) = cleanup.take();
            closed.set(true);
            if let Some((es, _)) = conn.borrow_mut().take() {
                es.close();
            }
        });
    }
}
