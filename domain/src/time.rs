//! Calendar dates and times in UTC, from and to Unix milliseconds (pure; no clock is read). The
//! audit log and its CSV speak UTC, so that two admins in different places read the same times.

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (the inverse of [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Unix ms as ISO 8601 UTC: `2026-11-30T14:05:09.123Z`.
pub fn iso_utc(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (year, month, day) = civil_from_days(days);
    let (h, m, s, milli) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1_000 % 60, rem % 1_000);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

/// Unix ms as `2026-11-30 14:05:09 UTC`, for tables people read.
pub fn short_utc(ms: i64) -> String {
    let iso = iso_utc(ms);
    format!("{} {} UTC", &iso[..10], &iso[11..19])
}

/// The start (00:00 UTC, Unix ms) of a `YYYY-MM-DD` date, as an `<input type="date">` sends it;
/// `None` for anything else, or a date that does not exist.
pub fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num =
        |r: std::ops::Range<usize>| s.get(r).filter(|d| d.bytes().all(|c| c.is_ascii_digit()))?.parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&month) || day < 1 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    // A day past the month's end (02-30) lands in the next month: not a date.
    (civil_from_days(days) == (year, month, day)).then_some(days * 86_400_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn times_read_as_utc() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso_utc(1_796_074_509_123), "2026-11-30T21:35:09.123Z");
        assert_eq!(short_utc(1_796_074_509_123), "2026-11-30 21:35:09 UTC");
    }

    #[test]
    fn dates_parse_or_say_no() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2000-02-29"), Some(951_782_400_000));
        for bad in ["2001-02-29", "2026-13-01", "2026-00-10", "2026-1-01", "26-01-01", "2026-01-01T", "abcd-ef-gh", ""]
        {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn a_day_reads_back_as_itself(days in -100_000i64..200_000) {
            let ms = days * 86_400_000;
            let date = &iso_utc(ms)[..10];
            if !date.starts_with('-') {
                prop_assert_eq!(parse_date(date), Some(ms));
            }
        }
    }
}
