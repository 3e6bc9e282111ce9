//! Request events routed to the streams of the student they belong to.
//!
//! One task reads the store's request bus and hands each event to that student's channel only.
//! Why: with every stream subscribed to the whole bus, each event woke every stream to be dropped
//! by all but one; 1,000 student streams at 100 requests/s (4 events each) cost the server 0.94
//! cores and put the desk reply → student event p99 at 47 ms (`loadgen --consult`, BENCHMARKS.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use store::RequestEvent;
use tokio::sync::broadcast::{self, error::RecvError};

/// What a student's stream receives.
#[derive(Clone, Debug)]
pub enum Feed {
    Event(Arc<RequestEvent>),
    /// The router fell behind the store's bus and may have missed this student's events: read
    /// afresh (a snapshot).
    Resync,
}

/// Per student, at most this many events wait for a slow stream before it lags (and resyncs).
const PER_STUDENT: usize = 64;

type Channels = Arc<Mutex<HashMap<i64, broadcast::Sender<Feed>>>>;

#[derive(Clone, Debug)]
pub struct StudentFeeds {
    store: store::Store,
    channels: Channels,
    router: Arc<OnceLock<()>>,
}

impl StudentFeeds {
    pub fn new(store: store::Store) -> StudentFeeds {
        StudentFeeds { store, channels: Arc::default(), router: Arc::default() }
    }

    /// A receiver of `student`'s events committed from now on (subscribe before reading the log).
    pub fn subscribe(&self, student: i64) -> broadcast::Receiver<Feed> {
        // The router subscribes to the store's bus before this student's channel exists, so no
        // event committed after this call can pass it by.
        self.router.get_or_init(|| {
            let rx = self.store.requests_bus().subscribe();
            tokio::spawn(route(rx, self.channels.clone()));
        });
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.entry(student).or_insert_with(|| broadcast::channel(PER_STUDENT).0).subscribe()
    }
}

async fn route(mut rx: broadcast::Receiver<Arc<RequestEvent>>, channels: Channels) {
    loop {
        let feed = match rx.recv().await {
            Ok(ev) => Feed::Event(ev),
            Err(RecvError::Lagged(_)) => Feed::Resync,
            Err(RecvError::Closed) => return,
        };
        let mut channels = channels.lock().unwrap_or_else(|e| e.into_inner());
        match &feed {
            Feed::Event(ev) => {
                // A student without a stream open has no channel; one whose streams all closed
                // loses it here.
                if let Some(tx) = channels.get(&ev.student_id)
                    && tx.send(feed.clone()).is_err()
                {
                    channels.remove(&ev.student_id);
                }
            }
            Feed::Resync => channels.retain(|_, tx| tx.send(Feed::Resync).is_ok()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_student_gets_only_their_own_events_and_closed_channels_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = store::Store::connect(&format!("sqlite://{}/t.db", dir.path().display())).await.unwrap();
        let feeds = StudentFeeds::new(store.clone());
        let mut a = feeds.subscribe(1); // S-1
        let b = feeds.subscribe(2); // S-2, whose stream closes at once
        drop(b);
        let f = store
            .add_faculty(&store::NewFaculty { name: "X".into(), department: "Y".into(), email: None })
            .await
            .unwrap();
        for number in ["S-1", "S-2"] {
            let student_id = store
                .add_student(&store::NewStudent { number: number.into(), name: "S".into(), ..Default::default() }, None)
                .await
                .unwrap();
            let new = store::NewRequest {
                student_id,
                faculty_id: f,
                course: None,
                message: "A question long enough".into(),
                hold: true,
            };
            store.place_request(&new).await.unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let mut seen = Vec::new();
        while let Ok(Feed::Event(ev)) = a.try_recv() {
            seen.push(ev.student_id);
        }
        assert!(!seen.is_empty() && seen.iter().all(|s| *s == 1), "only student 1's events: {seen:?}");
        assert!(!feeds.channels.lock().unwrap().contains_key(&2), "a channel nobody reads is dropped");
    }
}
