//! When a keyboard's halted report endpoint is restarted. A keyboard that keeps failing
//! (unplugged, its queued reports ending in USB Transaction Errors; or broken) would
//! otherwise be restarted by every poll, the monitor's every millisecond: so the first
//! halt after a good report is restarted at once, each further one in a row only after
//! a delay that doubles from [`FIRST_DELAY_NS`], and after [`MAX_IN_A_ROW`] restarts in
//! a row without a good report the keyboard is given up. Its halts are logged at the
//! 1st, 2nd, 4th, 8th... of them, as stray events are.

/// The delay after the first restart in a row before the next (16 ms); it doubles with
/// each restart after it.
pub const FIRST_DELAY_NS: u64 = 16_000_000;
/// Restarts in a row without a good report during which a USB Transaction Error is
/// soft retried (xHCI 4.6.8.1 asks for a limit; Linux's is 3): after them the endpoint
/// is reset hard.
const SOFT_RETRIES: u32 = 3;
/// Restarts in a row without a good report before the keyboard is given up: about 2 s
/// of delays between them (16 ms, doubling, to 1 s).
pub const MAX_IN_A_ROW: u32 = 8;

/// What to do with a halted report endpoint now ([`Restarts::decide`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Restart it.
    Restart,
    /// Not yet: the delay after the last restart has not passed.
    Wait,
    /// Give the keyboard up: it failed [`MAX_IN_A_ROW`] restarts in a row.
    GiveUp,
}

/// A keyboard's halts and restarts since its last good report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Restarts {
    /// Restarts since the last good report.
    in_a_row: u32,
    /// The clock reading before which the endpoint is not restarted again.
    not_before: u64,
    /// Halts seen in all, for their logging.
    halts: u32,
}

impl Restarts {
    /// A good report came: the next halt is restarted at once.
    pub fn good_report(&mut self) {
        self.in_a_row = 0;
        self.not_before = 0;
    }

    /// Counts one halt; returns how many there were so far when this one is to be
    /// logged (the 1st, 2nd, 4th, 8th...).
    pub fn halted(&mut self) -> Option<u32> {
        self.halts = self.halts.saturating_add(1);
        self.halts.is_power_of_two().then_some(self.halts)
    }

    /// Whether a USB Transaction Error may still be soft retried ([`SOFT_RETRIES`]).
    pub fn may_soft_retry(&self) -> bool {
        self.in_a_row < SOFT_RETRIES
    }

    /// What to do with the halted endpoint at clock reading `now`.
    pub fn decide(&self, now: u64) -> Decision {
        if self.in_a_row >= MAX_IN_A_ROW {
            Decision::GiveUp
        } else if now < self.not_before {
            Decision::Wait
        } else {
            Decision::Restart
        }
    }

    /// The endpoint was restarted at clock reading `now` (as [`decide`](Self::decide)
    /// said): the next restart waits.
    pub fn restarted(&mut self, now: u64) {
        self.in_a_row += 1;
        let doublings = (self.in_a_row - 1).min(MAX_IN_A_ROW);
        self.not_before = now.saturating_add(FIRST_DELAY_NS << doublings);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_until_the_keyboard_is_given_up() {
        let mut restarts = Restarts::default();
        let mut now = 5;
        let mut delays = Vec::new();
        for _ in 1..MAX_IN_A_ROW {
            assert_eq!(restarts.decide(now), Decision::Restart);
            restarts.restarted(now);
            let next = restarts.not_before;
            assert_eq!(restarts.decide(next - 1), Decision::Wait);
            delays.push((next - now) / 1_000_000);
            now = next;
        }
        assert_eq!(delays, [16, 32, 64, 128, 256, 512, 1024]);
        assert_eq!(restarts.decide(now), Decision::Restart);
        restarts.restarted(now);
        assert_eq!(restarts.decide(now), Decision::GiveUp, "at once");
        assert_eq!(restarts.decide(u64::MAX), Decision::GiveUp);
    }

    #[test]
    fn a_good_report_ends_the_run() {
        let mut restarts = Restarts::default();
        for _ in 0..MAX_IN_A_ROW {
            restarts.restarted(0);
        }
        assert_eq!(restarts.decide(u64::MAX), Decision::GiveUp);
        assert!(!restarts.may_soft_retry());
        restarts.good_report();
        assert_eq!(restarts.decide(0), Decision::Restart);
        assert!(restarts.may_soft_retry());
    }

    #[test]
    fn halts_are_logged_at_powers_of_two() {
        let mut restarts = Restarts::default();
        let logged: Vec<u32> = (0..10).filter_map(|_| restarts.halted()).collect();
        assert_eq!(logged, [1, 2, 4, 8]);
    }
}
