//! The in-process event bus. Only the store publishes, and only after a commit.

use domain::FacultyEvent;
use std::sync::Arc;
use tokio::sync::broadcast;

#[derive(Clone, Debug)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<FacultyEvent>>,
}

impl EventBus {
    pub fn new(capacity: usize) -> EventBus {
        EventBus { tx: broadcast::channel(capacity).0 }
    }

    /// A receiver of every event committed from now on. A receiver that falls more than the bus's
    /// capacity behind gets `RecvError::Lagged` and must resynchronise from the database.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<FacultyEvent>> {
        self.tx.subscribe()
    }

    pub(crate) fn publish(&self, events: Vec<Arc<FacultyEvent>>) {
        for ev in events {
            // No receivers is fine: nobody is watching.
            let _ = self.tx.send(ev);
        }
    }
}
