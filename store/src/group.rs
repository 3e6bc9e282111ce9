//! Group commit: work that arrives while a transaction runs waits for the next one, and one task at
//! a time leads, taking everything waiting into one transaction until nothing waits.
//!
//! Why a leader: with every caller waiting for the store's write order itself, the order (which is
//! fair) went from caller to caller, each taking only the one or two items that had arrived since
//! the last: placements grouped 1.5 at a time at 1,000 requests/s, each waiting ~8 ms
//! (`loadgen --consult`, BENCHMARKS.md row 8b″). With one leader the groups grow with the load and
//! other writers get the order between them.

use std::sync::{Arc, Mutex, PoisonError};

/// Items waiting for a group commit.
#[derive(Debug)]
pub(crate) struct Group<T>(Arc<Mutex<Queue<T>>>);

#[derive(Debug)]
struct Queue<T> {
    waiting: Vec<T>,
    /// A task is leading (and will take whatever waits before it stops).
    leading: bool,
}

impl<T> Default for Group<T> {
    fn default() -> Self {
        Group(Arc::new(Mutex::new(Queue { waiting: Vec::new(), leading: false })))
    }
}

impl<T> Clone for Group<T> {
    fn clone(&self) -> Self {
        Group(self.0.clone())
    }
}

impl<T> Group<T> {
    /// Queues `item`. Returns a lead when no one leads: the caller must then run
    /// [`Lead::take`] until it returns `None` (in a task of its own, so that a caller going away
    /// cancels no one else's work).
    pub(crate) fn push(&self, item: T) -> Option<Lead<T>> {
        let mut queue = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        queue.waiting.push(item);
        (!std::mem::replace(&mut queue.leading, true)).then(|| Lead(self.clone()))
    }
}

/// The right to take what waits. Dropped however the leading task ends (a panic included), it
/// gives the lead up: the next item queued then leads, and takes what was left.
pub(crate) struct Lead<T>(Group<T>);

impl<T> Lead<T> {
    /// Everything waiting, or `None` (the lead ends) when nothing does. Call it holding the write
    /// order, so that what arrived while waiting for it is in the group.
    pub(crate) fn take(&self) -> Option<Vec<T>> {
        self.take_up_to(usize::MAX)
    }

    /// The `max` longest waiting (in the order they came), or `None` (the lead ends) when nothing
    /// waits; the rest wait for the next group.
    pub(crate) fn take_up_to(&self, max: usize) -> Option<Vec<T>> {
        let mut queue = (self.0).0.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.waiting.is_empty() {
            queue.leading = false;
            return None;
        }
        if queue.waiting.len() <= max {
            return Some(std::mem::take(&mut queue.waiting));
        }
        let rest = queue.waiting.split_off(max);
        Some(std::mem::replace(&mut queue.waiting, rest))
    }
}

impl<T> Drop for Lead<T> {
    fn drop(&mut self) {
        (self.0).0.lock().unwrap_or_else(PoisonError::into_inner).leading = false;
    }
}

#[cfg(test)]
mod tests {
    use super::Group;

    #[test]
    fn one_leads_until_nothing_waits_then_the_next_leads() {
        let group = Group::default();
        let lead = group.push(1).expect("the first leads");
        assert!(group.push(2).is_none(), "one leader at a time");
        assert_eq!(lead.take(), Some(vec![1, 2]));
        assert!(group.push(3).is_none());
        assert_eq!(lead.take(), Some(vec![3]));
        assert_eq!(lead.take(), None);
        drop(lead);
        let next = group.push(4).expect("after the lead ended, the next leads");
        assert_eq!(next.take(), Some(vec![4]));
        drop(next); // given up without emptying: the next push leads again
        assert!(group.push(5).is_some());
    }

    #[test]
    fn a_capped_take_leaves_the_newest_for_the_next_group() {
        let group = Group::default();
        let lead = group.push(1).expect("the first leads");
        for i in 2..=5 {
            assert!(group.push(i).is_none());
        }
        assert_eq!(lead.take_up_to(2), Some(vec![1, 2]));
        assert_eq!(lead.take_up_to(2), Some(vec![3, 4]));
        assert_eq!(lead.take_up_to(2), Some(vec![5]));
        assert_eq!(lead.take_up_to(2), None);
    }
}
