//! Which MQTT topics a desk unit may use (enforced by the embedded broker, and written out for
//! Mosquitto as an ACL file): a desk publishes only its own `P/desk/{id}/{state,online,heartbeat,
//! queue_ack,reply}` and subscribes only to its own `P/desk/{id}/queue` — never a wildcard, so it
//! can neither act as another desk nor read another desk's queue (students' names and messages).

use crate::protocol::{Kind, queue_topic};

/// May desk `desk` publish on `name`?
pub fn desk_may_publish(prefix: &str, desk: &str, name: &str) -> bool {
    // Checked on every publish: matched in place, no topic strings built.
    let kind = name
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix("/desk/"))
        .and_then(|r| r.strip_prefix(desk))
        .and_then(|r| r.strip_prefix('/'));
    plausible_id(desk) && kind.is_some_and(|k| Kind::ALL.iter().any(|kind| kind.as_str() == k))
}

/// May desk `desk` subscribe to `filter`? Only its own queue, spelled out (no wildcard).
pub fn desk_may_subscribe(prefix: &str, desk: &str, filter: &str) -> bool {
    plausible_id(desk) && filter == queue_topic(prefix, desk)
}

/// A desk id that can stand in a topic level: no level separator, wildcard or NUL.
fn plausible_id(desk: &str) -> bool {
    !desk.is_empty() && !desk.contains(['/', '+', '#', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::topic;
    use proptest::prelude::*;

    #[test]
    fn a_desk_uses_its_own_topics_only() {
        for kind in Kind::ALL {
            assert!(desk_may_publish("P", "d1", &topic("P", "d1", kind)));
            assert!(!desk_may_publish("P", "d1", &topic("P", "d2", kind)));
        }
        assert!(!desk_may_publish("P", "d1", &queue_topic("P", "d1")), "the queue is the server's to write");
        assert!(desk_may_subscribe("P", "d1", "P/desk/d1/queue"));
        for filter in ["#", "P/#", "P/desk/+/queue", "P/desk/d1/+", "P/desk/d1/#", "P/desk/d2/queue", "+/desk/d1/queue"]
        {
            assert!(!desk_may_subscribe("P", "d1", filter), "{filter}");
        }
        // A desk id that would itself be a wildcard or span levels gets nothing.
        assert!(!desk_may_subscribe("P", "+", "P/desk/+/queue"));
        assert!(!desk_may_publish("P", "a/b", "P/desk/a/b/state"));
    }

    proptest! {
        /// Whatever two different desks are called, neither may publish or subscribe where the
        /// other's topics are; and no granted subscription holds a wildcard.
        #[test]
        fn desks_are_isolated(a in "[a-z0-9+#/-]{1,8}", b in "[a-z0-9+#/-]{1,8}", kind in 0usize..5, filter in "[a-z0-9+#/]{0,24}") {
            prop_assume!(a != b);
            let kind = Kind::ALL[kind];
            prop_assert!(!desk_may_publish("P", &a, &topic("P", &b, kind)) || topic("P", &a, kind) == topic("P", &b, kind));
            prop_assert!(!desk_may_subscribe("P", &a, &queue_topic("P", &b)));
            if desk_may_subscribe("P", &a, &filter) {
                prop_assert!(!filter.contains(['+', '#']));
                prop_assert_eq!(filter, queue_topic("P", &a));
            }
        }
    }
}
