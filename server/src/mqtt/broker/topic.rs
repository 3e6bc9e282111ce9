//! MQTT 3.1.1 topic names and filters (§4.7): what is valid, and what matches.

/// A topic a client may publish to: non-empty, UTF-8 (the codec checks), no wildcard, no NUL.
/// Regression (outside test run): the previous embedded broker passed `+`, `#` and NUL in published
/// topics on to subscribers.
pub fn valid_name(topic: &str) -> bool {
    !topic.is_empty() && topic.len() <= 65_535 && !topic.contains(['+', '#', '\0'])
}

/// A filter a client may subscribe to: `+` only as a whole level, `#` only as the whole last level,
/// no NUL.
pub fn valid_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.contains('\0') {
        return false;
    }
    let levels: Vec<&str> = filter.split('/').collect();
    levels.iter().enumerate().all(|(i, level)| match *level {
        "+" => true,
        "#" => i == levels.len() - 1,
        l => !l.contains(['+', '#']),
    })
}

/// Whether a filter holds a wildcard.
pub fn has_wildcard(filter: &str) -> bool {
    filter.contains(['+', '#'])
}

/// Whether `topic` (a valid name) matches `filter` (a valid filter). Wildcards at the first level
/// do not match topics starting with `$` (§4.7.2).
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "a/b", "/a", "a//b", "consultease/desk/d1/state", "$SYS/x"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "a/+", "#", "a/#/b", "a\0b", "+/desk/d1/state"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn filters() {
        for ok in ["#", "+", "a/+/c", "a/#", "+/+", "/+", "a/b"] {
            assert!(valid_filter(ok), "{ok}");
        }
        for bad in ["", "a/#/c", "a+", "a/b#", "#/a", "a/+b", "a\0"] {
            assert!(!valid_filter(bad), "{bad:?}");
        }
    }

    #[test]
    fn matching() {
        let cases = [
            ("a/b", "a/b", true),
            ("a/+", "a/b", true),
            ("a/+", "a/b/c", false),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("#", "a/b", true),
            ("+/+", "a/b", true),
            ("+", "/a", false),
            ("+/a", "/a", true),
            ("p/desk/+/+", "p/desk/d1/state", true),
            ("p/desk/+/+", "p/desk/d1/state/x", false),
            ("p/desk/d1/queue", "p/desk/d2/queue", false),
            ("#", "$SYS/uptime", false),
            ("+/uptime", "$SYS/uptime", false),
            ("$SYS/#", "$SYS/uptime", true),
        ];
        for (filter, topic, want) in cases {
            assert_eq!(matches(filter, topic), want, "{filter} ~ {topic}");
        }
    }
}
