//! "Usually back around 13:10": an estimate from a faculty member's own history, kept simple and
//! honest. From the board's event log we keep each return (the status becoming available after
//! away or offline); on the same weekday of recent weeks, each day's first return after the
//! current time of day is a sample; with at least [`MIN_DAYS`] such days the estimate is their
//! median, else there is none.

use crate::Status;
use std::collections::HashMap;

/// Fewer days with a return than this: no estimate (two coincidences are not a habit).
pub const MIN_DAYS: usize = 3;

/// How far back the history goes (four weeks: four samples per weekday at most).
pub const WEEKS: i64 = 4;

/// The returns in a run of status events, in order: `(faculty, at)` for each event that makes a
/// faculty member available after any other status. `last` holds each one's status before the
/// run and is brought up to date.
pub fn returns(last: &mut HashMap<i64, Status>, events: &[(i64, Status, i64)]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for &(faculty, status, at) in events {
        let before = last.insert(faculty, status);
        if status == Status::Available && before.is_some_and(|b| b != Status::Available) {
            out.push((faculty, at));
        }
    }
    out
}

/// The minute of day of each return (Unix ms) that fell on `weekday` (0 = Monday) before today,
/// grouped by day, with the local time `offset_min` ahead of UTC.
pub fn same_weekday(returns: &[i64], weekday: u8, today: i64, offset_min: i32) -> Vec<Vec<u16>> {
    let mut days: std::collections::BTreeMap<i64, Vec<u16>> = std::collections::BTreeMap::new();
    for &at in returns {
        let local = at + i64::from(offset_min) * 60_000;
        let day = local.div_euclid(86_400_000);
        let (w, minute) = crate::schedule::local(at, offset_min);
        if w == weekday && day < today {
            days.entry(day).or_default().push(minute);
        }
    }
    days.into_values().collect()
}

/// The estimate at `now_min` (minutes after local midnight) from `days` (each day's return
/// minutes): the median of each day's first return after `now_min`, when at least [`MIN_DAYS`]
/// days had one.
pub fn usually_back(days: &[Vec<u16>], now_min: u16) -> Option<u16> {
    let mut firsts: Vec<u16> = days.iter().filter_map(|d| d.iter().copied().filter(|&m| m > now_min).min()).collect();
    if firsts.len() < MIN_DAYS {
        return None;
    }
    firsts.sort_unstable();
    Some(firsts[firsts.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_a_change_to_available_is_a_return() {
        let mut last = HashMap::from([(1, Status::Away)]);
        let events = [
            (1, Status::Available, 10),
            (1, Status::Available, 11),
            (2, Status::Available, 12), // first seen: not known to be a return
            (2, Status::Busy, 13),
            (2, Status::Available, 14),
            (1, Status::Offline, 15),
            (1, Status::Available, 16),
        ];
        assert_eq!(returns(&mut last, &events), [(1, 10), (2, 14), (1, 16)]);
        assert_eq!(last[&1], Status::Available);
    }

    #[test]
    fn an_estimate_needs_a_habit() {
        // Three Mondays back around 13:05–13:20; it is 12:00 now.
        let days = vec![vec![785], vec![790, 960], vec![800]];
        assert_eq!(usually_back(&days, 720), Some(790));
        assert_eq!(usually_back(&days[..2], 720), None, "two days are not a habit");
        assert_eq!(usually_back(&days, 805), None, "after the usual time only one day had a later return");
        // Returns grouped by Monday, today's left out: 2026-11-30 is a Monday.
        let monday = 1_796_000_000_000 - 1_796_000_000_000 % 86_400_000;
        let at = |weeks_ago: i64, h: i64, m: i64| monday - weeks_ago * 7 * 86_400_000 + (h * 60 + m) * 60_000;
        let history =
            [at(3, 13, 5), at(2, 13, 10), at(2, 16, 0), at(1, 13, 20), at(0, 9, 0), at(1, 10, 0) + 86_400_000];
        let today = monday.div_euclid(86_400_000);
        assert_eq!(same_weekday(&history, 0, today, 0), [vec![785], vec![790, 960], vec![800]]);
    }

    proptest! {
        #[test]
        fn the_estimate_is_a_later_return_of_a_real_day(
            days in proptest::collection::vec(proptest::collection::vec(0u16..1440, 0..4), 0..6),
            now in 0u16..1440,
        ) {
            let firsts: Vec<u16> =
                days.iter().filter_map(|d| d.iter().copied().filter(|&m| m > now).min()).collect();
            match usually_back(&days, now) {
                None => prop_assert!(firsts.len() < MIN_DAYS),
                Some(m) => {
                    prop_assert!(m > now);
                    prop_assert!(firsts.contains(&m));
                    let below = firsts.iter().filter(|&&f| f < m).count();
                    let above = firsts.iter().filter(|&&f| f > m).count();
                    prop_assert!(below <= firsts.len() / 2 && above <= firsts.len() / 2, "a median");
                }
            }
        }
    }
}
