//! How a desk message changes what we know about a desk.
//!
//! The rule the product promises: any permutation of a desk's messages, with any duplicates, ends
//! in the same record as the messages applied in (boot, seq) order. A single "last clock per desk"
//! cannot keep that promise (a heartbeat at seq 43 overtaking the state at seq 42 would make the
//! state look stale and lose it), so each fact carries the clock of the message that set it:
//!
//! - `present`/`busy` change only on a `state` message newer than `state_at`;
//! - `online` changes only on an `online` message whose ordering key is newer than the current one
//!   (see [`online_key`]: a desk's last will, reserved at seq `w`, ends the connection announced at
//!   `w + 1`, so the will outranks that announcement but not a later reconnection);
//! - heartbeats only move `last`, the newest clock seen.
//!
//! A message that would change nothing is [`DeskUpdate::Stale`]: no write, no version bump, no event.

use crate::clock::DeskClock;
use serde::{Deserialize, Serialize};

/// What a desk said, already validated (see [`crate::protocol`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeskMessage {
    State { clock: DeskClock, present: bool, busy: bool },
    Online { clock: DeskClock, online: bool },
    Heartbeat { clock: DeskClock },
}

impl DeskMessage {
    pub fn clock(&self) -> DeskClock {
        match *self {
            Self::State { clock, .. } | Self::Online { clock, .. } | Self::Heartbeat { clock } => clock,
        }
    }
}

/// Everything the server records about a desk's reported state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeskRecord {
    /// The newest (effective) clock of any message applied.
    pub last: Option<DeskClock>,
    /// The clock of the `state` message that set `present` and `busy`.
    pub state_at: Option<DeskClock>,
    pub present: bool,
    pub busy: bool,
    /// The effective clock of the `online` fact (see [`online_key`]).
    pub online_at: Option<DeskClock>,
    pub online: bool,
}

/// The outcome of offering a message to a desk record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeskUpdate {
    /// Older than (or equal to) what the record already holds for that fact: nothing changes.
    Stale,
    /// A `boot` more than [`MAX_BOOT_JUMP`] past the newest one applied: refused, nothing changes
    /// (until an admin resets the desk's clock).
    Implausible,
    /// The new record. `visible` is true when something a faculty status depends on changed
    /// (`online`, `present`, `busy`): only then does the faculty row's version move.
    Applied { record: DeskRecord, visible: bool },
}

/// How far a desk's `boot` may jump past the newest one applied. A desk counts one boot per
/// power-up: a thousand is years of reboots, while a forged or corrupted message with a huge boot
/// would otherwise outrank everything the real desk sends for good ("a later boot always wins").
pub const MAX_BOOT_JUMP: u32 = 1000;

/// The ordering key of an online/offline fact. An announcement (`online: true`) at seq `s` keys at
/// `(boot, s, 0)`; a will or offline (`online: false`) reserved at seq `w` keys at `(boot, w + 1, 1)`,
/// so it outranks the announcement of its own connection (seq `w + 1`) and nothing newer.
pub fn online_key(clock: DeskClock, online: bool) -> (DeskClock, bool) {
    if online { (clock, false) } else { (DeskClock::new(clock.boot, clock.seq.saturating_add(1)), true) }
}

impl DeskRecord {
    fn current_online_key(&self) -> Option<(DeskClock, bool)> {
        self.online_at.map(|at| (at, !self.online))
    }

    /// Offers `msg` to this record. Pure: the caller persists the result.
    pub fn apply(&self, msg: DeskMessage) -> DeskUpdate {
        // For an online fact the effective clock is its key's (a will reserved at `w` covers `w + 1`).
        let mut clock = msg.clock();
        if self.last.is_some_and(|last| clock.boot > last.boot.saturating_add(MAX_BOOT_JUMP)) {
            return DeskUpdate::Implausible;
        }
        let mut next = *self;
        match msg {
            DeskMessage::State { present, busy, .. } => {
                if self.state_at.is_some_and(|at| clock <= at) {
                    return DeskUpdate::Stale;
                }
                next.state_at = Some(clock);
                next.present = present;
                next.busy = busy;
            }
            DeskMessage::Online { online, .. } => {
                let key = online_key(clock, online);
                if self.current_online_key().is_some_and(|cur| key <= cur) {
                    return DeskUpdate::Stale;
                }
                next.online_at = Some(key.0);
                next.online = online;
                clock = key.0;
            }
            DeskMessage::Heartbeat { .. } => {
                if self.last.is_some_and(|last| clock <= last) {
                    return DeskUpdate::Stale;
                }
            }
        }
        next.last = Some(self.last.map_or(clock, |last| last.max(clock)));
        let visible = (next.online, next.present, next.busy) != (self.online, self.present, self.busy);
        DeskUpdate::Applied { record: next, visible }
    }

    /// The desk fell silent for longer than the timeout: offline, exactly as if its last will (reserved
    /// at the newest clock seen) had arrived. `None` when the desk is already offline.
    pub fn time_out(&self) -> Option<DeskRecord> {
        if !self.online {
            return None;
        }
        let last = self.last.unwrap_or_default();
        let (at, _) = online_key(last, false);
        Some(DeskRecord { online: false, online_at: Some(at.max(self.online_at.unwrap_or_default())), ..*self })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c(boot: u32, seq: u64) -> DeskClock {
        DeskClock::new(boot, seq)
    }

    fn apply_all(msgs: &[DeskMessage]) -> DeskRecord {
        msgs.iter().fold(DeskRecord::default(), |rec, m| match rec.apply(*m) {
            DeskUpdate::Applied { record, .. } => record,
            DeskUpdate::Stale | DeskUpdate::Implausible => rec,
        })
    }

    #[test]
    fn state_applies_then_older_and_repeated_are_stale() {
        let r = apply_all(&[DeskMessage::State { clock: c(1, 5), present: true, busy: false }]);
        assert!(r.present);
        assert_eq!(r.apply(DeskMessage::State { clock: c(1, 5), present: false, busy: false }), DeskUpdate::Stale);
        assert_eq!(r.apply(DeskMessage::State { clock: c(1, 4), present: false, busy: true }), DeskUpdate::Stale);
        assert_eq!(r.apply(DeskMessage::State { clock: c(0, 99), present: false, busy: true }), DeskUpdate::Stale);
        let DeskUpdate::Applied { record, visible } =
            r.apply(DeskMessage::State { clock: c(2, 0), present: false, busy: false })
        else {
            panic!("a new boot must apply");
        };
        assert!(visible && !record.present);
    }

    #[test]
    fn heartbeat_overtaking_a_state_does_not_hide_it() {
        let hb_first = apply_all(&[
            DeskMessage::Heartbeat { clock: c(1, 43) },
            DeskMessage::State { clock: c(1, 42), present: true, busy: true },
        ]);
        assert!(hb_first.present && hb_first.busy);
        assert_eq!(hb_first.last, Some(c(1, 43)));
    }

    #[test]
    fn will_ends_its_own_connection_but_not_a_later_one() {
        let will = DeskMessage::Online { clock: c(7, 0), online: false };
        let hello = DeskMessage::Online { clock: c(7, 1), online: true };
        // The will outranks the announcement it was reserved with, in either arrival order.
        assert!(!apply_all(&[hello, will]).online);
        assert!(!apply_all(&[will, hello]).online);
        // Reconnection in the same boot: a new will reserved at 10, announcement at 11.
        let hello2 = DeskMessage::Online { clock: c(7, 11), online: true };
        assert!(apply_all(&[hello, hello2, will]).online);
        assert!(apply_all(&[will, hello2]).online);
        // A will from a previous boot, delivered late, changes nothing.
        let next_boot = DeskMessage::Online { clock: c(8, 1), online: true };
        assert_eq!(apply_all(&[next_boot]).apply(will), DeskUpdate::Stale);
    }

    #[test]
    fn heartbeat_is_invisible_and_repeated_heartbeat_is_stale() {
        let r = apply_all(&[DeskMessage::Online { clock: c(1, 1), online: true }]);
        let DeskUpdate::Applied { record, visible } = r.apply(DeskMessage::Heartbeat { clock: c(1, 2) }) else {
            panic!("newer heartbeat applies");
        };
        assert!(!visible);
        assert_eq!(record.apply(DeskMessage::Heartbeat { clock: c(1, 2) }), DeskUpdate::Stale);
    }

    #[test]
    fn same_values_with_newer_clock_apply_invisibly() {
        let r = apply_all(&[DeskMessage::State { clock: c(1, 2), present: true, busy: false }]);
        let DeskUpdate::Applied { visible, .. } =
            r.apply(DeskMessage::State { clock: c(1, 3), present: true, busy: false })
        else {
            panic!("newer state applies");
        };
        assert!(!visible);
    }

    #[test]
    fn timeout_acts_like_the_will() {
        let r = apply_all(&[
            DeskMessage::Online { clock: c(3, 1), online: true },
            DeskMessage::Heartbeat { clock: c(3, 9) },
        ]);
        let timed_out = r.time_out().expect("online desk times out");
        assert!(!timed_out.online);
        assert_eq!(timed_out.time_out(), None);
        // The old connection's late messages cannot revive it...
        assert_eq!(timed_out.apply(DeskMessage::Online { clock: c(3, 1), online: true }), DeskUpdate::Stale);
        // ...a reconnection can.
        let DeskUpdate::Applied { record, .. } = timed_out.apply(DeskMessage::Online { clock: c(3, 11), online: true })
        else {
            panic!("reconnection applies");
        };
        assert!(record.online);
    }

    fn message() -> impl Strategy<Value = DeskMessage> {
        let clock = (0u32..3, 0u64..6).prop_map(|(b, s)| c(b, s));
        prop_oneof![
            (clock.clone(), any::<bool>(), any::<bool>()).prop_map(|(clock, present, busy)| DeskMessage::State {
                clock,
                present,
                busy
            }),
            (clock.clone(), any::<bool>()).prop_map(|(clock, online)| DeskMessage::Online { clock, online }),
            clock.prop_map(|clock| DeskMessage::Heartbeat { clock }),
        ]
    }

    /// A desk never sends two different messages with one clock; make a history that honours that.
    fn history() -> impl Strategy<Value = Vec<DeskMessage>> {
        prop::collection::vec(message(), 0..24).prop_map(|msgs| {
            let mut seen = std::collections::HashSet::new();
            msgs.into_iter().filter(|m| seen.insert(m.clock())).collect()
        })
    }

    #[test]
    fn a_boot_jump_past_the_limit_is_implausible_whatever_the_fact() {
        let rec = apply_all(&[DeskMessage::Online { clock: c(5, 1), online: true }]);
        let far = c(5 + MAX_BOOT_JUMP + 1, 0);
        for msg in [
            DeskMessage::State { clock: far, present: true, busy: true },
            DeskMessage::Online { clock: far, online: false },
            DeskMessage::Heartbeat { clock: far },
        ] {
            assert_eq!(rec.apply(msg), DeskUpdate::Implausible, "{msg:?}");
        }
        let near = DeskMessage::State { clock: c(5 + MAX_BOOT_JUMP, 0), present: true, busy: true };
        assert!(matches!(rec.apply(near), DeskUpdate::Applied { .. }));
        // Nothing known yet (a new desk, or one whose clock an admin reset): any boot applies.
        assert!(matches!(
            DeskRecord::default().apply(DeskMessage::Heartbeat { clock: c(u32::MAX, 0) }),
            DeskUpdate::Applied { .. }
        ));
    }

    proptest! {
        #[test]
        fn any_permutation_with_duplicates_ends_in_the_in_order_state(
            msgs in history(),
            order in prop::collection::vec(any::<prop::sample::Index>(), 0..64),
        ) {
            let mut in_order = msgs.clone();
            in_order.sort_by_key(|m| m.clock());
            let expected = apply_all(&in_order);
            // Every message at least once, plus duplicates, in an arbitrary order.
            let mut shuffled = msgs.clone();
            for ix in &order {
                if !msgs.is_empty() {
                    shuffled.push(msgs[ix.index(msgs.len())]);
                }
            }
            let len = shuffled.len();
            for (i, ix) in order.iter().enumerate() {
                if len > 1 {
                    shuffled.swap(i % len, ix.index(len));
                }
            }
            prop_assert_eq!(apply_all(&shuffled), expected);
        }

        #[test]
        fn applying_the_result_again_is_stale(msgs in history()) {
            let rec = apply_all(&msgs);
            for m in &msgs {
                prop_assert_eq!(rec.apply(*m), DeskUpdate::Stale);
            }
        }
    }
}
