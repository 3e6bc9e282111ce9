//! The rules of accounts and sign-in, without any I/O: what a password, PIN, user name, student
//! number and card UID may be; how failed sign-ins lock an account (and a client address) out; how
//! long a session lives.

use serde::{Deserialize, Serialize};

/// Who a session belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Student,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Student => "student",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "student" => Some(Role::Student),
            _ => None,
        }
    }
}

/// An admin's password: 12 to 128 characters (any characters; length is what makes it strong).
pub fn check_password(p: &str) -> Result<(), &'static str> {
    match p.chars().count() {
        0..12 => Err("The password must be at least 12 characters long."),
        129.. => Err("The password must be at most 128 characters long."),
        _ => Ok(()),
    }
}

/// A student's PIN: 6 to 12 digits.
pub fn check_pin(p: &str) -> Result<(), &'static str> {
    if !(6..=12).contains(&p.len()) || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err("The PIN must be 6 to 12 digits.");
    }
    Ok(())
}

/// An admin's user name: 1 to 64 of `a-z 0-9 . _ -` (compared as given, lowercase).
pub fn check_username(u: &str) -> Result<(), &'static str> {
    if !(1..=64).contains(&u.len())
        || !u.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    {
        return Err("The user name must be 1 to 64 of a-z, 0-9, '.', '_' and '-'.");
    }
    Ok(())
}

/// A student number: 1 to 32 of `A-Z a-z 0-9 -`.
pub fn check_student_number(n: &str) -> Result<(), &'static str> {
    if !(1..=32).contains(&n.len()) || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err("The student number must be 1 to 32 letters, digits or '-'.");
    }
    Ok(())
}

/// A card UID as a keyboard-wedge reader types it: hex digits (or decimal), perhaps with spaces or
/// colons between bytes. Normalised to uppercase without separators; 4 to 32 characters.
pub fn normalize_card_uid(raw: &str) -> Option<String> {
    let uid: String = raw.chars().filter(|c| !matches!(c, ' ' | ':' | '-')).collect::<String>().to_ascii_uppercase();
    ((4..=32).contains(&uid.len()) && uid.bytes().all(|b| b.is_ascii_hexdigit())).then_some(uid)
}

/// How failed sign-ins are held against a key: an account name (whether or not it exists), or a
/// client address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures allowed within `window_ms` before a wait is imposed.
    pub free: u32,
    pub window_ms: i64,
    /// The first wait; each further failure doubles it, up to `max_ms`.
    pub base_ms: i64,
    pub max_ms: i64,
}

impl LockoutPolicy {
    /// Per account: after 5 failures within 15 minutes, a wait of 30 s, doubling, at most 15 min.
    pub const ACCOUNT: LockoutPolicy =
        LockoutPolicy { free: 5, window_ms: 15 * 60_000, base_ms: 30_000, max_ms: 15 * 60_000 };
    /// Per client address: more room (a kiosk is one address for many students), the same shape.
    /// One address cycling through student numbers is slowed after 30 failures.
    pub const ADDRESS: LockoutPolicy =
        LockoutPolicy { free: 30, window_ms: 15 * 60_000, base_ms: 30_000, max_ms: 15 * 60_000 };
}

/// Failed sign-ins recorded against one key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempts {
    pub failures: u32,
    /// When the first failure of the current window happened (Unix ms).
    pub window_start: i64,
    /// No sign-in is even tried before this (Unix ms).
    pub locked_until: i64,
}

impl Attempts {
    /// Milliseconds left to wait, if the key is locked at `now`.
    pub fn wait(&self, now: i64) -> Option<i64> {
        (self.locked_until > now).then(|| self.locked_until - now)
    }

    /// The record after one more failure at `now`.
    pub fn fail(self, policy: LockoutPolicy, now: i64) -> Attempts {
        let mut next = if now - self.window_start > policy.window_ms && self.wait(now).is_none() {
            Attempts { failures: 0, window_start: now, locked_until: 0 }
        } else {
            self
        };
        next.failures = next.failures.saturating_add(1);
        if next.failures >= policy.free {
            let doublings = (next.failures - policy.free).min(30);
            let wait = policy.base_ms.saturating_mul(1i64 << doublings).min(policy.max_ms);
            next.locked_until = now + wait;
        }
        next
    }
}

/// How long sessions live: a session ends after `idle_ms` without a request, and `absolute_ms`
/// after it began, whichever comes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionPolicy {
    pub idle_ms: i64,
    pub absolute_ms: i64,
}

impl SessionPolicy {
    pub const ADMIN: SessionPolicy = SessionPolicy { idle_ms: 30 * 60_000, absolute_ms: 12 * 3_600_000 };
    pub const STUDENT: SessionPolicy = SessionPolicy { idle_ms: 30 * 60_000, absolute_ms: 24 * 3_600_000 };
    /// A student signed in at a shared kiosk: two minutes without input end it.
    pub const KIOSK_STUDENT: SessionPolicy = SessionPolicy { idle_ms: 120_000, absolute_ms: 24 * 3_600_000 };

    /// Whether a session created at `created` and last used at `last_seen` is still alive at `now`.
    pub fn alive(&self, created: i64, last_seen: i64, now: i64) -> bool {
        now - last_seen < self.idle_ms && now - created < self.absolute_ms
    }

    /// When it ends if not used again.
    pub fn ends_at(&self, created: i64, last_seen: i64) -> i64 {
        (last_seen + self.idle_ms).min(created + self.absolute_ms)
    }

    /// How old a session's recorded last use may grow before a request writes it again: a
    /// thirtieth of the idle limit, between 1 s and 30 s. A session may thus end up to that much
    /// before its exact idle limit (4 s of a kiosk's 120 s), never after it.
    ///
    /// Why not every second: that was a database write for nearly every request of a busy
    /// student (measured: ~1 write per `POST /api/requests` in `loadgen --consult`), each waiting
    /// for SQLite's one writer.
    pub fn touch_every_ms(&self) -> i64 {
        (self.idle_ms / 30).clamp(1_000, 30_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_session_is_touched_often_enough_to_end_on_time() {
        assert_eq!(SessionPolicy::KIOSK_STUDENT.touch_every_ms(), 4_000);
        assert_eq!(SessionPolicy::STUDENT.touch_every_ms(), 30_000);
        let short = SessionPolicy { idle_ms: 6_000, absolute_ms: 60_000 };
        assert_eq!(short.touch_every_ms(), 1_000, "never more often than once a second");
        for p in [SessionPolicy::ADMIN, SessionPolicy::STUDENT, SessionPolicy::KIOSK_STUDENT, short] {
            assert!(p.touch_every_ms() * 5 <= p.idle_ms, "{p:?}: the idle limit errs by at most a fifth");
        }
    }

    #[test]
    fn credentials() {
        assert!(check_password("correct horse").is_ok());
        assert!(check_password("short").is_err());
        assert!(check_password(&"é".repeat(12)).is_ok(), "characters, not bytes");
        assert!(check_password(&"x".repeat(129)).is_err());
        assert!(check_pin("123456").is_ok() && check_pin("123456789012").is_ok());
        for bad in ["12345", "1234567890123", "12345a", "", "１２３４５６"] {
            assert!(check_pin(bad).is_err(), "{bad}");
        }
        assert!(check_username("ada.lovelace").is_ok());
        assert!(check_username("Ada").is_err() && check_username("").is_err() && check_username("a b").is_err());
        assert!(check_student_number("S-2024-001").is_ok() && check_student_number("a/b").is_err());
        assert_eq!(normalize_card_uid(" 04:a3:1b:2c ").as_deref(), Some("04A31B2C"));
        assert_eq!(normalize_card_uid("123"), None);
        assert_eq!(normalize_card_uid("04zz1b2c"), None);
    }

    #[test]
    fn five_failures_lock_and_the_wait_doubles_up_to_the_cap() {
        let p = LockoutPolicy::ACCOUNT;
        let mut a = Attempts::default();
        for i in 0..4 {
            a = a.fail(p, 1_000 + i);
            assert_eq!(a.wait(1_000 + i), None, "failure {} is free", i + 1);
        }
        a = a.fail(p, 2_000);
        assert_eq!(a.wait(2_000), Some(30_000));
        a = a.fail(p, 40_000);
        assert_eq!(a.wait(40_000), Some(60_000));
        for _ in 0..20 {
            a = a.fail(p, 200_000);
        }
        assert_eq!(a.wait(200_000), Some(15 * 60_000), "capped at 15 minutes");
    }

    #[test]
    fn failures_spread_over_more_than_the_window_do_not_add_up() {
        let p = LockoutPolicy::ACCOUNT;
        let mut a = Attempts::default();
        for i in 0..20 {
            a = a.fail(p, i * 16 * 60_000);
            assert_eq!(a.wait(i * 16 * 60_000), None);
        }
    }

    #[test]
    fn sessions_end_when_idle_or_old() {
        let k = SessionPolicy::KIOSK_STUDENT;
        assert!(k.alive(0, 0, 119_999));
        assert!(!k.alive(0, 0, 120_000));
        let s = SessionPolicy::STUDENT;
        assert!(s.alive(0, 23 * 3_600_000, 23 * 3_600_000 + 1));
        assert!(!s.alive(0, 24 * 3_600_000 - 1, 24 * 3_600_000), "absolute limit");
        assert_eq!(s.ends_at(0, 24 * 3_600_000 - 10), 24 * 3_600_000);
    }

    proptest! {
        /// Whatever the pattern of failures, the wait never exceeds the cap, and a key is never
        /// locked before its `free` failures within one window.
        #[test]
        fn lockout_is_bounded_and_never_early(gaps in prop::collection::vec(0i64..20 * 60_000, 1..40)) {
            let p = LockoutPolicy::ACCOUNT;
            let mut a = Attempts::default();
            let mut now = 1_000_000i64;
            for g in gaps {
                now += g;
                a = a.fail(p, now);
                if let Some(w) = a.wait(now) {
                    prop_assert!(w <= p.max_ms);
                    prop_assert!(a.failures >= p.free);
                }
            }
        }
    }
}
