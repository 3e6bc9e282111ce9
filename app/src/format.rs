//! How times are shown on the board: relative ages that tick in the browser without server traffic.

use domain::{FacultyView, Status};

/// A short duration: "under a minute", "4 min", "2 h", "3 d".
pub fn ago(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => "under a minute".into(),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86400),
    }
}

/// The age line of a card at time `now` (Unix ms): how long the status has held, and how
/// recently the desk was heard from.
pub fn age_line(f: &FacultyView, now: i64) -> String {
    let held = ago(now - f.changed_at);
    match (f.status, f.last_seen) {
        (Status::Offline, None) => "no desk unit reporting".into(),
        (Status::Offline, Some(_)) => format!("desk offline for {held}"),
        (_, Some(seen)) if now - seen < 60_000 => format!("for {held} · seen just now"),
        (_, Some(seen)) => format!("for {held} · seen {} ago", ago(now - seen)),
        (_, None) => format!("for {held}"),
    }
}

/// An admin's override as the card says it: its note and when it ends ("In class · ends in
/// 25 min"); `None` without one.
pub fn override_line(f: &FacultyView, now: i64) -> Option<String> {
    let ends = f.until.map(|u| if u > now { format!("ends in {}", ago(u - now)) } else { "ending now".into() });
    match (f.note.as_deref(), ends) {
        (Some(n), Some(e)) => Some(format!("{n} · {e}")),
        (Some(n), None) => Some(n.to_owned()),
        (None, Some(e)) => Some(format!("Set by the office · {e}")),
        (None, None) => None,
    }
}

/// What the card says of office hours at `now` (local time `offset_min` ahead of UTC): today's
/// that are not over ("Office hours today 14:00–16:00, B-204"), else, for someone not available,
/// the next ones ("Next office hours Wed 09:30–11:00"); `None` without a schedule.
pub fn hours_line(f: &FacultyView, now: i64, offset_min: i32) -> Option<String> {
    use domain::schedule::{local, next, today, when};
    let (weekday, minute) = local(now, offset_min);
    let slots = today(&f.hours, weekday, minute);
    if !slots.is_empty() {
        let times: Vec<String> = slots.iter().map(|s| s.times()).collect();
        return Some(format!("Office hours today {}", times.join("; ")));
    }
    if f.status == Status::Available {
        return None;
    }
    next(&f.hours, weekday, minute).map(|(ahead, s)| format!("Next office hours {}", when(ahead, s)))
}

pub fn icon(status: Status) -> &'static str {
    match status {
        Status::Available => "✓",
        Status::Busy => "⊘",
        Status::Away => "↗",
        Status::Offline => "○",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(status: Status, last_seen: Option<i64>, changed_at: i64) -> FacultyView {
        FacultyView {
            id: 1,
            name: "A".into(),
            department: "D".into(),
            status,
            present: false,
            busy: false,
            desk_online: status != Status::Offline,
            last_seen,
            changed_at,
            waiting: 0,
            note: None,
            until: None,
            active: true,
            hours: vec![],
            version: 1,
        }
    }

    #[test]
    fn ages() {
        assert_eq!(ago(-5), "under a minute");
        assert_eq!(ago(59_999), "under a minute");
        assert_eq!(ago(120_000), "2 min");
        assert_eq!(ago(7_200_000), "2 h");
        assert_eq!(ago(3 * 86_400_000), "3 d");
    }

    #[test]
    fn age_lines() {
        let now = 10_000_000;
        assert_eq!(age_line(&view(Status::Offline, None, 0), now), "no desk unit reporting");
        assert_eq!(age_line(&view(Status::Offline, Some(1), now - 720_000), now), "desk offline for 12 min");
        assert_eq!(
            age_line(&view(Status::Available, Some(now - 120_000), now - 7_200_000), now),
            "for 2 h · seen 2 min ago"
        );
        assert_eq!(age_line(&view(Status::Busy, Some(now - 1_000), now - 300_000), now), "for 5 min · seen just now");
    }

    #[test]
    fn an_override_line_says_the_note_and_when_it_ends() {
        let mut f = view(Status::Busy, Some(0), 0);
        assert_eq!(override_line(&f, 0), None);
        f.note = Some("In class".into());
        assert_eq!(override_line(&f, 0).as_deref(), Some("In class"));
        f.until = Some(25 * 60_000);
        assert_eq!(override_line(&f, 0).as_deref(), Some("In class · ends in 25 min"));
        f.note = None;
        assert_eq!(override_line(&f, 30 * 60_000).as_deref(), Some("Set by the office · ending now"));
    }

    #[test]
    fn office_hours_say_today_or_the_next_ones() {
        // 2026-11-30, a Monday, 13:05 UTC = 14:05 an hour east.
        let now = 1_796_043_900_000;
        let mut f = view(Status::Away, None, 0);
        assert_eq!(hours_line(&f, now, 60), None, "no schedule, nothing said");
        f.hours = domain::schedule::parse("Mon 14:00-16:00 B-204\nWed 09:30-11:00").unwrap();
        assert_eq!(hours_line(&f, now, 60).as_deref(), Some("Office hours today 14:00–16:00, B-204"));
        assert_eq!(hours_line(&f, now, 180).as_deref(), Some("Next office hours Wed 09:30–11:00"), "16:05: over");
        f.status = Status::Available;
        assert_eq!(hours_line(&f, now, 180), None, "available: the next ones are not news");
    }
}
