//! The in-process event buses. Only the store publishes, and only after a commit.

use domain::FacultyEvent;
use std::sync::Arc;
use tokio::sync::broadcast;

/// A broadcast of committed events. A receiver that falls more than the capacity behind gets
/// `RecvError::Lagged` and must resynchronise from the database.
#[derive(Clone, Debug)]
pub struct Bus<T: Clone> {
    tx: broadcast::Sender<T>,
}

/// The board's events (faculty rows).
pub type EventBus = Bus<Arc<FacultyEvent>>;

impl<T: Clone> Bus<T> {
    pub fn new(capacity: usize) -> Bus<T> {
        Bus { tx: broadcast::channel(capacity).0 }
    }

    /// A receiver of every event committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<T> {
        self.tx.subscribe()
    }

    pub(crate) fn publish_one(&self, ev: T) {
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(ev);
    }
}

impl EventBus {
    pub(crate) fn publish(&self, events: Vec<Arc<FacultyEvent>>) {
        for ev in events {
            self.publish_one(ev);
        }
    }
}
