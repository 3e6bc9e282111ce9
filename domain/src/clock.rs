//! A desk's logical clock. The desk persists `boot` and bumps it at every power-up; `seq` restarts
//! at 0 each boot and grows by one per message. Per desk, messages are ordered by (boot, seq)
//! lexicographically, which is exactly the derived `Ord` (fields compare in declaration order).

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeskClock {
    pub boot: u32,
    pub seq: u64,
}

impl DeskClock {
    pub const fn new(boot: u32, seq: u64) -> Self {
        Self { boot, seq }
    }
}

impl std::fmt::Display for DeskClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.boot, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_dominates_seq() {
        assert!(DeskClock::new(2, 0) > DeskClock::new(1, u64::MAX));
        assert!(DeskClock::new(1, 5) > DeskClock::new(1, 4));
        assert_eq!(DeskClock::new(3, 3), DeskClock::new(3, 3));
        assert_eq!(DeskClock::new(1, 9).to_string(), "1:9");
    }
}
