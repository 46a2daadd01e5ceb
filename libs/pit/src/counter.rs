//! A free-running counter of known period (the HPET's main counter) as the TSC's
//! reference: each reading of it taken between two reads of the TSC, as the PIT's are,
//! and a window's rate refused while the reads at its ends took too long to time it to
//! 1% (a core held up between a TSC read and the counter's: an SMI, a vCPU descheduled).
//! The kernel reads the register; the arithmetic is here, where the host tests reach it.

use super::spoils;

/// One reading of the counter: its count, read between two reads of the TSC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterReading {
    /// The TSC just before the counter was read.
    pub tsc_before: u64,
    /// The count read.
    pub count: u64,
    /// The TSC just after the counter was read.
    pub tsc_after: u64,
}

impl CounterReading {
    /// Reads the counter with `read_count` between two reads of the TSC with `tsc`;
    /// `None` if the counter's register does not answer.
    pub fn take(tsc: impl Fn() -> u64, read_count: impl FnOnce() -> Option<u64>) -> Option<Self> {
        let tsc_before = tsc();
        let count = read_count()?;
        Some(Self {
            tsc_before,
            count,
            tsc_after: tsc(),
        })
    }

    /// The TSC ticks between the reading's two TSC reads, around the counter's.
    fn took(&self) -> u64 {
        self.tsc_after.saturating_sub(self.tsc_before)
    }
}

/// The counts of a counter of a known period from a first reading, and the TSC's rate
/// over them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterWindow {
    first: CounterReading,
    period_fs: u64,
    mask: u64,
}

impl CounterWindow {
    /// A window that starts at `first`, of a counter that counts once every `period_fs`
    /// femtoseconds in the bits of `mask` (a 32-bit counter's upper half does not count).
    pub fn new(first: CounterReading, period_fs: u64, mask: u64) -> Self {
        Self {
            first,
            period_fs,
            mask,
        }
    }

    /// The TSC's rate in Hz over the window from the first reading to `last`, timed by
    /// the TSC just before each count was read (the counter wraps at most once in it);
    /// `None` while the window holds fewer than `micros` microseconds of counts, or while
    /// the reads at its two ends took so long that the counts could lie more than 1% of
    /// the window away from those TSC reads (a core held up 100 us between its TSC read
    /// and the counter's at one end of a 1 ms window put the rate 10% off): a later
    /// reading, read quickly, is asked for instead. When the first reading's read alone
    /// spoils the window so and `last` was read in under a quarter of its time, the
    /// window starts again at `last` (`None`), as [`Window::add`](crate::Window::add)
    /// does: a start held up 10 ms would otherwise need a window of a second.
    pub fn tsc_hz(&mut self, last: CounterReading, micros: u64) -> Option<u64> {
        let counted = last.count.wrapping_sub(self.first.count) & self.mask;
        let elapsed_fs = u128::from(counted) * u128::from(self.period_fs);
        let ticks = last.tsc_before.checked_sub(self.first.tsc_before)?;
        if spoils(self.first.took(), ticks) && last.took() < self.first.took() / 4 {
            self.first = last;
            return None;
        }
        let slack = self.first.took().saturating_add(last.took());
        if elapsed_fs < u128::from(micros) * 1_000_000_000 || spoils(slack, ticks) {
            return None;
        }
        let hz = (u128::from(ticks) * 1_000_000_000_000_000).checked_div(elapsed_fs)?;
        u64::try_from(hz).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU's HPET: 100 MHz, 10^7 fs a count.
    const PERIOD_FS: u64 = 10_000_000;
    /// A TSC of 3 GHz: 3,000 ticks a microsecond.
    const TSC_HZ: u64 = 3_000_000_000;
    const TICKS_PER_US: u64 = TSC_HZ / 1_000_000;

    /// A reading whose counter is read at `at_us` microseconds (the counter 0 at 0), its
    /// TSC read `before_us` before that and `after_us` after.
    fn reading(at_us: u64, before_us: u64, after_us: u64) -> CounterReading {
        CounterReading {
            tsc_before: (at_us - before_us) * TICKS_PER_US,
            count: at_us * 100,
            tsc_after: (at_us + after_us) * TICKS_PER_US,
        }
    }

    /// A reading read promptly, its TSC reads 1 us either side.
    fn prompt(at_us: u64) -> CounterReading {
        reading(at_us, 1, 1)
    }

    fn window(first: CounterReading) -> CounterWindow {
        CounterWindow::new(first, PERIOD_FS, u64::MAX)
    }

    #[test]
    fn a_reading_reads_the_counter_between_its_two_tsc_reads() {
        let tsc = core::cell::Cell::new(100);
        let next_tsc = || tsc.replace(tsc.get() + 10);
        let read_count = || (tsc.get() == 110).then_some(7);
        let reading = CounterReading::take(next_tsc, read_count);
        let expected = CounterReading {
            tsc_before: 100,
            count: 7,
            tsc_after: 110,
        };
        assert_eq!(reading, Some(expected));
        assert_eq!(CounterReading::take(next_tsc, || None), None);
    }

    #[test]
    fn a_window_read_promptly_gives_the_tsc_rate_once_it_is_long_enough() {
        let mut window = window(prompt(10));
        assert_eq!(window.tsc_hz(prompt(1009), 1000), None, "999 us");
        assert_eq!(window.tsc_hz(prompt(1010), 1000), Some(TSC_HZ));
    }

    #[test]
    fn an_end_held_up_between_its_tsc_read_and_the_counters_is_refused() {
        // The end's core held up 100 us (an SMI, the vCPU descheduled) between its TSC
        // read and the counter's read, at the end of a 1 ms window: timed by that TSC read
        // the rate came out 9% low (and held up after the counter's read, timed by the
        // TSC read after it as before, 10% high).
        let mut window = window(prompt(10));
        let held_before = reading(1110, 101, 1);
        assert_eq!(window.tsc_hz(held_before, 1000), None);
        let held_after = reading(1110, 1, 101);
        assert_eq!(window.tsc_hz(held_after, 1000), None);
        // The next reading, read promptly, is taken.
        assert_eq!(window.tsc_hz(prompt(1120), 1000), Some(TSC_HZ));
        // A start held up so starts the window again at the first prompt reading, whose
        // rate is exact 1 ms on.
        let mut window = self::window(reading(110, 101, 1));
        assert_eq!(window.tsc_hz(prompt(1110), 1000), None);
        assert_eq!(window.tsc_hz(prompt(2109), 1000), None);
        assert_eq!(window.tsc_hz(prompt(2110), 1000), Some(TSC_HZ));
    }

    #[test]
    fn a_start_held_up_10_ms_starts_the_window_again_at_a_prompt_reading() {
        // The first reading's core held up 10 ms between its TSC read and the counter's
        // (a vCPU descheduled, an SMI), then prompt readings every 10 us: a rate within
        // 1% comes 1 ms into the window started again, where the held-up start needed a
        // window 100 times its slack, a second.
        let mut window = window(reading(10_010, 10_000, 1));
        let (at_us, hz) = (10_020..2_000_000)
            .step_by(10)
            .find_map(|at_us| Some((at_us, window.tsc_hz(prompt(at_us), 1000)?)))
            .unwrap();
        assert!(at_us <= 10_020 + 1_010, "a rate at {at_us} us");
        assert!(hz.abs_diff(TSC_HZ) < TSC_HZ / 100, "{hz} Hz");
    }

    #[test]
    fn a_32_bit_counter_that_wraps_in_the_window_counts_on() {
        let mask = u64::from(u32::MAX);
        let mut first = prompt(10);
        first.count = u64::from(u32::MAX) - 999;
        let mut last = prompt(1010);
        last.count = 99_000;
        let mut window = CounterWindow::new(first, PERIOD_FS, mask);
        // From 2^32 - 1000 to 2^32 + 99,000 in the low 32 bits: 100,000 counts.
        assert_eq!(window.tsc_hz(last, 1000), Some(TSC_HZ));
    }

    #[test]
    fn a_counter_that_stands_still_or_tsc_reads_out_of_order_give_no_rate() {
        let mut window = window(prompt(10));
        let still = CounterReading {
            count: prompt(10).count,
            ..prompt(5000)
        };
        assert_eq!(window.tsc_hz(still, 0), None);
        let earlier = CounterReading {
            tsc_before: 0,
            ..prompt(2000)
        };
        assert_eq!(window.tsc_hz(earlier, 1000), None);
    }
}
