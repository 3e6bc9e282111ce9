//! A consultation request's life, as a pure state machine, and the rules around it (what a student
//! may ask, how often, where they are in the queue, how long they may wait).
//!
//! ```text
//!  held ──release──▶ queued ──ack──▶ delivered ──accept──▶ accepted ──done / no_show──▶ (end)
//!                      │  ▲              │                     ▲
//!                      │  └──────────────┴──busy──▶ busy ──────┘
//!                      └── decline (from queued, delivered, busy) ──▶ declined
//!  any open state ──cancel──▶ cancelled      any open state ──expire──▶ expired
//! ```
//!
//! A request is created `held` (the faculty member is away or offline and the student chose to
//! wait) or `queued`. Terminal states never change. Every input that does not fit the current state
//! — a late `busy` after a cancel, a second `accept`, an ack for an item already answered — changes
//! nothing: [`next`] returns `None`. `done` and `no_show` are taken from any state a desk shows the
//! request in, so that a desk's `accept` lost or overtaken by its `done` does not lose the `done`.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Held,
    Queued,
    Delivered,
    Busy,
    Accepted,
    Declined,
    Done,
    NoShow,
    Cancelled,
    Expired,
}

impl State {
    pub const ALL: [State; 10] = [
        State::Held,
        State::Queued,
        State::Delivered,
        State::Busy,
        State::Accepted,
        State::Declined,
        State::Done,
        State::NoShow,
        State::Cancelled,
        State::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Held => "held",
            State::Queued => "queued",
            State::Delivered => "delivered",
            State::Busy => "busy",
            State::Accepted => "accepted",
            State::Declined => "declined",
            State::Done => "done",
            State::NoShow => "no_show",
            State::Cancelled => "cancelled",
            State::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, State::Declined | State::Done | State::NoShow | State::Cancelled | State::Expired)
    }

    pub fn is_open(self) -> bool {
        !self.is_terminal()
    }

    /// Shown on the faculty member's desk unit.
    pub fn on_desk(self) -> bool {
        matches!(self, State::Queued | State::Delivered | State::Busy | State::Accepted)
    }

    /// Waiting in line (counts for positions and the board's "waiting" number).
    pub fn waiting(self) -> bool {
        matches!(self, State::Held | State::Queued | State::Delivered | State::Busy)
    }

    /// How far along its life a state is: a request's rank never goes down.
    pub fn rank(self) -> u8 {
        match self {
            State::Held => 0,
            State::Queued => 1,
            State::Delivered => 2,
            State::Busy => 3,
            State::Accepted => 4,
            _ => 5,
        }
    }

    /// The words a student reads.
    pub fn label(self) -> &'static str {
        match self {
            State::Held => "Held until they are back",
            State::Queued => "Sent",
            State::Delivered => "On the desk",
            State::Busy => "Not now — please wait",
            State::Accepted => "Accepted — go in",
            State::Declined => "Declined",
            State::Done => "Done",
            State::NoShow => "Missed",
            State::Cancelled => "Cancelled",
            State::Expired => "Expired",
        }
    }
}

/// A faculty member's answer from the desk's buttons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Accept,
    Busy,
    Decline,
    Done,
    NoShow,
}

impl Action {
    pub const ALL: [Action; 5] = [Action::Accept, Action::Busy, Action::Decline, Action::Done, Action::NoShow];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Busy => "busy",
            Action::Decline => "decline",
            Action::Done => "done",
            Action::NoShow => "no_show",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// What can happen to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    /// The faculty member became available: a held request joins the queue.
    Release,
    /// The desk acknowledged a queue snapshot holding the request.
    Delivered,
    Reply(Action),
    /// The student (or an admin) withdrew it.
    Cancel,
    /// It waited too long.
    Expire,
}

/// The state after `input`, or `None` when the input does not apply (nothing changes).
pub fn next(state: State, input: Input) -> Option<State> {
    use Action::*;
    use State::*;
    if state.is_terminal() {
        return None;
    }
    let to = match (state, input) {
        (_, Input::Cancel) => Cancelled,
        (_, Input::Expire) => Expired,
        (Held, Input::Release) => Queued,
        (Queued, Input::Delivered) => State::Delivered,
        (Queued | State::Delivered | State::Busy, Input::Reply(Accept)) => Accepted,
        (Queued | State::Delivered, Input::Reply(Action::Busy)) => State::Busy,
        (Queued | State::Delivered | State::Busy, Input::Reply(Decline)) => Declined,
        (Queued | State::Delivered | State::Busy | Accepted, Input::Reply(Action::Done)) => State::Done,
        (Queued | State::Delivered | State::Busy | Accepted, Input::Reply(Action::NoShow)) => State::NoShow,
        _ => return None,
    };
    Some(to)
}

/// A course code: 2-4 letters, 3-4 digits, an optional letter (`CS101`, `MATH2040A`).
pub fn check_course(course: &str) -> Result<(), &'static str> {
    let b = course.as_bytes();
    let letters = b.iter().take_while(|c| c.is_ascii_alphabetic()).count();
    let digits = b[letters..].iter().take_while(|c| c.is_ascii_digit()).count();
    let rest = &b[letters + digits..];
    let ok = (2..=4).contains(&letters)
        && (3..=4).contains(&digits)
        && (rest.is_empty() || (rest.len() == 1 && rest[0].is_ascii_alphabetic()));
    if ok { Ok(()) } else { Err("A course code is 2-4 letters, 3-4 digits and an optional letter, like CS101.") }
}

/// What the student writes: 10 to 500 characters.
pub fn check_message(message: &str) -> Result<(), &'static str> {
    match message.trim().chars().count() {
        0..10 => Err("Please say what it is about in at least 10 characters."),
        501.. => Err("Please keep it to 500 characters."),
        _ => Ok(()),
    }
}

/// A faculty member's note on an answer: at most 140 characters.
pub fn check_note(note: &str) -> Result<(), &'static str> {
    if note.chars().count() > 140 { Err("at most 140 characters") } else { Ok(()) }
}

/// How many requests a student may have.
pub const MAX_OPEN_PER_FACULTY: usize = 1;
pub const MAX_OPEN: usize = 3;
pub const MAX_PER_HOUR: usize = 10;

/// Which limit a new request breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    OnePerFaculty,
    OpenTotal,
    PerHour,
}

impl Limit {
    pub fn message(self) -> &'static str {
        match self {
            Limit::OnePerFaculty => "You already have an open request with this faculty member.",
            Limit::OpenTotal => "You have 3 open requests; cancel one or wait for an answer first.",
            Limit::PerHour => "That is 10 requests in the last hour; please wait a while.",
        }
    }
}

/// Checks a new request against the student's current ones.
pub fn check_limits(open_with_faculty: usize, open_total: usize, in_last_hour: usize) -> Result<(), Limit> {
    if open_with_faculty >= MAX_OPEN_PER_FACULTY {
        Err(Limit::OnePerFaculty)
    } else if open_total >= MAX_OPEN {
        Err(Limit::OpenTotal)
    } else if in_last_hour >= MAX_PER_HOUR {
        Err(Limit::PerHour)
    } else {
        Ok(())
    }
}

/// With fewer recent consultations than this, the estimate uses the default duration.
pub const MIN_HISTORY: usize = 3;
/// The consultation length assumed without history: 5 to 15 minutes.
pub const DEFAULT_MINUTES: (i64, i64) = (5, 15);

/// A wait estimate in minutes for someone `position`-th in line (1 = next), from recent
/// accept→done durations of that faculty member (ms): each person ahead takes between the lower and
/// upper quartile of those durations. Honest and simple; the default range until there is history.
pub fn wait_estimate(position: usize, recent_ms: &[i64]) -> (i64, i64) {
    let (lo, hi) = if recent_ms.len() < MIN_HISTORY {
        (DEFAULT_MINUTES.0 * 60_000, DEFAULT_MINUTES.1 * 60_000)
    } else {
        let mut d = recent_ms.to_vec();
        d.sort_unstable();
        (d[d.len() / 4], d[(d.len() * 3) / 4])
    };
    let ahead = position.saturating_sub(1) as i64;
    let minutes = |ms: i64| (ms + 59_999) / 60_000;
    (minutes(ahead * lo), minutes(ahead * hi).max(minutes(ahead * lo)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_happy_paths() {
        let run = |start: State, inputs: &[Input]| inputs.iter().fold(start, |s, i| next(s, *i).unwrap_or(s));
        use Input::*;
        assert_eq!(run(State::Held, &[Release, Delivered, Reply(Action::Accept), Reply(Action::Done)]), State::Done);
        assert_eq!(run(State::Queued, &[Delivered, Reply(Action::Busy), Reply(Action::Accept)]), State::Accepted);
        assert_eq!(run(State::Queued, &[Reply(Action::Decline)]), State::Declined);
        assert_eq!(run(State::Held, &[Expire]), State::Expired);
    }

    #[test]
    fn original_defect5_a_late_busy_after_cancel_and_a_second_accept_change_nothing() {
        assert_eq!(next(State::Cancelled, Input::Reply(Action::Busy)), None);
        assert_eq!(next(State::Accepted, Input::Reply(Action::Accept)), None);
        assert_eq!(next(State::Accepted, Input::Reply(Action::Busy)), None);
        assert_eq!(next(State::Done, Input::Delivered), None);
        assert_eq!(next(State::Held, Input::Delivered), None, "a held request is not on any desk");
    }

    #[test]
    fn a_done_overtaking_its_accept_is_kept() {
        assert_eq!(next(State::Delivered, Input::Reply(Action::Done)), Some(State::Done));
        assert_eq!(next(State::Done, Input::Reply(Action::Accept)), None);
    }

    #[test]
    fn names_round_trip() {
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(a));
        }
    }

    #[test]
    fn courses_messages_limits() {
        for ok in ["CS101", "MATH2040", "ee1234A", "ab123"] {
            assert!(check_course(ok).is_ok(), "{ok}");
        }
        for bad in ["C101", "COMPS101", "CS10", "CS10101", "CS101AB", "101CS", "", "CS 101"] {
            assert!(check_course(bad).is_err(), "{bad}");
        }
        assert!(check_message("too short").is_err());
        assert!(check_message("  Help with recursion  ").is_ok());
        assert!(check_message(&"x".repeat(501)).is_err());
        assert_eq!(check_limits(1, 1, 1), Err(Limit::OnePerFaculty));
        assert_eq!(check_limits(0, 3, 3), Err(Limit::OpenTotal));
        assert_eq!(check_limits(0, 2, 10), Err(Limit::PerHour));
        assert_eq!(check_limits(0, 2, 9), Ok(()));
    }

    #[test]
    fn waits() {
        assert_eq!(wait_estimate(1, &[]), (0, 0), "next in line");
        assert_eq!(wait_estimate(3, &[]), (10, 30), "the default until there is history");
        let ten_min = [600_000; 8];
        assert_eq!(wait_estimate(2, &ten_min), (10, 10));
    }

    fn input() -> impl Strategy<Value = Input> {
        prop_oneof![
            Just(Input::Release),
            Just(Input::Delivered),
            Just(Input::Cancel),
            Just(Input::Expire),
            prop::sample::select(Action::ALL.to_vec()).prop_map(Input::Reply),
        ]
    }

    proptest! {
        /// Whatever happens, in whatever order: the rank never goes down, a terminal state never
        /// changes, and an input applied twice in a row is applied once.
        #[test]
        fn requests_only_move_forward(start in prop::sample::select(vec![State::Held, State::Queued]), inputs in prop::collection::vec(input(), 0..30)) {
            let mut s = start;
            for i in inputs {
                if let Some(to) = next(s, i) {
                    prop_assert!(!s.is_terminal());
                    prop_assert!(to.rank() >= s.rank(), "{s:?} -> {to:?}");
                    prop_assert_eq!(next(to, i), None, "{:?} twice", i);
                    s = to;
                }
            }
        }
    }
}
