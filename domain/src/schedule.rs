//! Office hours: a faculty member's weekly schedule, written one slot per line the way people
//! write it (`Mon 14:00-16:00 Room B-204`), and what the board says from it at a local time
//! ("office hours today 14:00–16:00", the next ones for a request to someone away). Pure: the
//! caller gives the local weekday and minute (the server's `--timezone`).

use serde::{Deserialize, Serialize};

/// Monday first, as the schedule is written.
pub const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// At most this many slots a week.
pub const MAX_SLOTS: usize = 20;

/// One weekly slot: `weekday` 0 = Monday; minutes after local midnight, `start < end`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub weekday: u8,
    pub start: u16,
    pub end: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// "14:05".
pub fn hm(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

impl Slot {
    /// "14:00–16:00" and the location, if any: "14:00–16:00, Room B-204".
    pub fn times(&self) -> String {
        let t = format!("{}–{}", hm(self.start), hm(self.end));
        match &self.location {
            Some(l) => format!("{t}, {l}"),
            None => t,
        }
    }
}

fn parse_hm(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 || !(h.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m) = (h.parse::<u16>().ok()?, m.parse::<u16>().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m).or((h == 24 && m == 0).then_some(24 * 60))
}

/// Reads a schedule, one slot per line (`Mon 14:00-16:00 Room B-204`; the day in English, three
/// letters or in full, any case; blank lines skipped). Returns the slots sorted by day and time,
/// or every bad line with what is wrong with it.
pub fn parse(text: &str) -> Result<Vec<Slot>, Vec<String>> {
    let mut slots = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.splitn(3, char::is_whitespace);
        let (day, times, rest) = (words.next().unwrap_or(""), words.next().unwrap_or(""), words.next());
        let lower = day.to_ascii_lowercase();
        // Three letters at least, of one day's name ("mon", "mond", "monday").
        let weekday = lower
            .get(..3)
            .and_then(|prefix| DAYS.iter().position(|d| d.eq_ignore_ascii_case(prefix)))
            .filter(|&w| day_name(DAYS[w]).starts_with(&lower));
        let span = times.split_once(['-', '–']).and_then(|(a, b)| Some((parse_hm(a)?, parse_hm(b)?)));
        let location = rest.map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned);
        match (weekday, span) {
            (None, _) => errors.push(format!("line {}: {day:?} is not a day (Mon … Sun)", i + 1)),
            (_, None) => errors.push(format!("line {}: {times:?} is not a time span like 14:00-16:00", i + 1)),
            (Some(_), Some((start, end))) if start >= end => {
                errors.push(format!("line {}: the end must be after the start", i + 1))
            }
            (Some(_), _)
                if location.as_ref().is_some_and(|l| l.chars().count() > 60 || l.chars().any(char::is_control)) =>
            {
                errors.push(format!("line {}: the place must be at most 60 characters", i + 1))
            }
            (Some(w), Some((start, end))) => slots.push(Slot { weekday: w as u8, start, end, location }),
        }
    }
    if slots.len() > MAX_SLOTS {
        errors.push(format!("at most {MAX_SLOTS} slots a week"));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    slots.sort_by_key(|s| (s.weekday, s.start, s.end));
    Ok(slots)
}

fn day_name(short: &str) -> &'static str {
    match short {
        "Mon" => "monday",
        "Tue" => "tuesday",
        "Wed" => "wednesday",
        "Thu" => "thursday",
        "Fri" => "friday",
        "Sat" => "saturday",
        _ => "sunday",
    }
}

/// The schedule as [`parse`] reads it back, one slot per line.
pub fn format(slots: &[Slot]) -> String {
    slots
        .iter()
        .map(|s| {
            let line = format!("{} {}-{}", DAYS[usize::from(s.weekday % 7)], hm(s.start), hm(s.end));
            match &s.location {
                Some(l) => format!("{line} {l}"),
                None => line,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The local weekday (0 = Monday) and minute of the day at `now` (Unix ms) with the local time
/// `offset_min` minutes ahead of UTC.
pub fn local(now: i64, offset_min: i32) -> (u8, u16) {
    let local = now + i64::from(offset_min) * 60_000;
    let days = local.div_euclid(86_400_000);
    // 1970-01-01 was a Thursday (3 when Monday is 0).
    let weekday = (days + 3).rem_euclid(7) as u8;
    let minute = (local.rem_euclid(86_400_000) / 60_000) as u16;
    (weekday, minute)
}

/// Today's slots that have not ended yet.
pub fn today(slots: &[Slot], weekday: u8, minute: u16) -> Vec<&Slot> {
    slots.iter().filter(|s| s.weekday == weekday && s.end > minute).collect()
}

/// The next slot that has not ended, from (`weekday`, `minute`) on: how many days ahead
/// (0 = today) and the slot.
pub fn next(slots: &[Slot], weekday: u8, minute: u16) -> Option<(u8, &Slot)> {
    slots
        .iter()
        .map(|s| {
            let ahead = (s.weekday + 7 - weekday) % 7;
            // A slot earlier today (already over) is next week's.
            let ahead = if ahead == 0 && s.end <= minute { 7 } else { ahead };
            (ahead, s)
        })
        .min_by_key(|(ahead, s)| (*ahead, s.start))
}

/// "today 14:00–16:00", "tomorrow 10:00–11:30", "Wed 10:00–11:30" for [`next`]'s answer.
pub fn when(ahead: u8, slot: &Slot) -> String {
    let day = match ahead {
        0 => "today".to_owned(),
        1 => "tomorrow".to_owned(),
        _ => DAYS[usize::from(slot.weekday % 7)].to_owned(),
    };
    format!("{day} {}", slot.times())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn slot(weekday: u8, start: u16, end: u16) -> Slot {
        Slot { weekday, start, end, location: None }
    }

    #[test]
    fn schedules_read_as_people_write_them() {
        let s = parse("mon 14:00-16:00 Room B-204\n\n  Wednesday 9:30–11:00\nFRI 16:00-24:00").unwrap();
        assert_eq!(
            s,
            [
                Slot { weekday: 0, start: 840, end: 960, location: Some("Room B-204".into()) },
                slot(2, 570, 660),
                slot(4, 960, 1440),
            ]
        );
        assert_eq!(format(&s), "Mon 14:00-16:00 Room B-204\nWed 09:30-11:00\nFri 16:00-24:00");
        let errors =
            parse("Mo 14:00-16:00\nTue 16:00-14:00\nThu 9-10\nSat 25:00-26:00\nMonkey 10:00-11:00\naé€ 10:00-11:00")
                .unwrap_err();
        assert_eq!(errors.len(), 6, "{errors:?}");
        assert!(errors[1].contains("line 2") && errors[1].contains("after the start"));
        assert_eq!(parse("").unwrap(), []);
    }

    #[test]
    fn local_time_and_the_next_slot() {
        // 2026-11-30 (a Monday) 13:05 UTC; an hour ahead: 14:05 local.
        let now = 1_796_043_900_000;
        assert_eq!(local(now, 60), (0, 14 * 60 + 5));
        assert_eq!(local(now, -14 * 60), (6, 23 * 60 + 5), "still Sunday far west");
        let week = [slot(0, 600, 660), slot(0, 840, 960), slot(2, 570, 660)];
        let (ahead, s) = next(&week, 0, 14 * 60 + 5).unwrap();
        assert_eq!((ahead, s.start), (0, 840), "in progress counts");
        assert_eq!(when(ahead, s), "today 14:00–16:00");
        let (ahead, s) = next(&week, 0, 16 * 60).unwrap();
        assert_eq!(when(ahead, s), "Wed 09:30–11:00");
        assert_eq!(next(&[slot(0, 600, 660)], 0, 700).map(|(a, _)| a), Some(7), "next week");
        assert_eq!(today(&week, 0, 700).len(), 1);
    }

    fn arb_slot() -> impl Strategy<Value = Slot> {
        (0u8..7, 0u16..1439, 1u16..240, proptest::option::of("[A-Za-z0-9-]{1,8}( [A-Za-z0-9]{1,4})?"))
            .prop_map(|(weekday, start, len, location)| Slot { weekday, start, end: (start + len).min(1440), location })
    }

    proptest! {
        #[test]
        fn a_schedule_reads_back_as_itself(mut slots in proptest::collection::vec(arb_slot(), 0..MAX_SLOTS)) {
            slots.sort_by_key(|s| (s.weekday, s.start, s.end));
            prop_assert_eq!(parse(&format(&slots)).unwrap(), slots);
        }

        /// `next` is the first slot not yet over, counting minute by minute through the week.
        #[test]
        fn the_next_slot_is_the_first_not_over(
            slots in proptest::collection::vec(arb_slot(), 1..6),
            weekday in 0u8..7,
            minute in 0u16..1440,
        ) {
            let (ahead, s) = next(&slots, weekday, minute).unwrap();
            let start_of = |a: u8, s: &Slot| u32::from(a) * 1440 + u32::from(s.start);
            for other in &slots {
                let a = (other.weekday + 7 - weekday) % 7;
                let a = if a == 0 && other.end <= minute { 7 } else { a };
                prop_assert!(start_of(ahead, s) <= start_of(a, other));
            }
            prop_assert!(ahead < 7 || (s.weekday == weekday && s.end <= minute));
        }
    }
}
