//! The PIT's channel 0 as the TSC's reference: its 16-bit count, read now and then while
//! the boot goes on, added up across its turns ([`Window`]), and the TSC's rate over the
//! counts ([`Window::tsc_hz`]). The kernel does the port I/O (channel 0 in mode 2 with
//! the count loaded with 0, which stands for 65,536: a turn of 65,536 counts, about 55 ms;
//! each reading latched between two reads of the TSC); the arithmetic is here, where the
//! host tests reach it.
//!
//! Between two readings the count may have turned any number of times, so the counts
//! between them are known only up to whole turns. The TSC ticks between the readings
//! tell the turns apart, given bounds on the ticks a count takes: before anything is
//! counted, no TSC is slower than [`SLOWEST_TSC_HZ`]; after, the window's own counts and
//! ticks bound them on both sides (each reading's latch lies between its two TSC reads,
//! and a count read is its true progress to within one count). A gap is added when a
//! single number of turns fits those bounds, so once the first readings have counted the
//! rate, a window spans boot steps many turns long; when more than one fits (a long
//! first gap, readings spread by a core held up between its TSC reads), or none (readings
//! that cannot be), the window starts again at the new reading.
//!
//! A counter that does not turn within a window, of a known period (the HPET's main
//! counter), is read the same way: [`counter`].

#![cfg_attr(target_os = "none", no_std)]

pub mod counter;

/// The rate channel 0 counts at, in Hz.
pub const PIT_HZ: u64 = 1_193_182;

/// The slowest TSC a window assumes before it has counted the rate (at 500 MHz a count
/// takes 419 ticks).
pub const SLOWEST_TSC_HZ: u64 = 500_000_000;

/// Counts in one turn of the count loaded with 0.
const TURN: u64 = 1 << 16;

/// One reading of channel 0: its count, latched between two reads of the TSC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    /// The TSC just before the latch command.
    pub tsc_before: u64,
    /// The count latched (0 stands for 65,536, the count loaded).
    pub count: u16,
    /// The TSC just after the count was read.
    pub tsc_after: u64,
}

impl Reading {
    /// The TSC ticks between the reading's two TSC reads, around its latch.
    fn took(&self) -> u64 {
        self.tsc_after.saturating_sub(self.tsc_before)
    }
}

/// Whether `slack` TSC ticks of not knowing when the latches were is over 1% of a
/// window of `ticks`.
fn spoils(slack: u64, ticks: u64) -> bool {
    u128::from(slack) * 100 > u128::from(ticks)
}

/// TSC ticks per PIT count, as a fraction.
#[derive(Clone, Copy, Debug)]
struct TicksPerCount {
    ticks: u64,
    counts: u64,
}

impl TicksPerCount {
    /// Whether a count takes more ticks at this rate than at `other`.
    fn exceeds(self, other: Self) -> bool {
        u128::from(self.ticks) * u128::from(other.counts)
            > u128::from(other.ticks) * u128::from(self.counts)
    }

    /// The counts in `ticks` at this rate, rounded down (`u64::MAX` past that).
    fn counts_in(self, ticks: u64) -> u64 {
        let counts =
            (u128::from(ticks) * u128::from(self.counts)).checked_div(u128::from(self.ticks));
        counts.map_or(u64::MAX, |counts| u64::try_from(counts).unwrap_or(u64::MAX))
    }
}

/// The counts from a first reading to the last, added up across the count's turns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    first: Reading,
    last: Reading,
    counted: u64,
}

impl Window {
    /// A window that starts at `first`.
    pub fn new(first: Reading) -> Self {
        Self {
            first,
            last: first,
            counted: 0,
        }
    }

    /// The counts between the first reading's latch and the last one's.
    pub fn counted(&self) -> u64 {
        self.counted
    }

    /// Adds the counts since the last reading and returns true, if one number of turns
    /// alone fits the TSC ticks between the two (none fits a reading whose TSC reads come
    /// before the last reading's first, or after each other in the wrong order); else
    /// starts the window again at `reading` and returns false. It also starts again at `reading` (false) when the
    /// first reading's own read took so long (the core held up between its TSC reads and
    /// the latch) that it alone keeps the rate from [`tsc_hz`](Self::tsc_hz)'s 1% while
    /// `reading` was read in a quarter of that time.
    pub fn add(&mut self, reading: Reading) -> bool {
        // `&`, not `&&`, here and below, and no branch on how much the window has counted:
        // one path through the arithmetic for every reading, so that the boot runs (and an
        // emulator translates) its code once.
        let first_spoils = (self.first.took() > 4 * reading.took())
            & spoils(
                self.first.took(),
                reading.tsc_before.saturating_sub(self.first.tsc_before),
            );
        match self.counts_since_last(reading) {
            Some(counts) if !first_spoils => {
                self.counted += counts;
                self.last = reading;
                true
            }
            _ => {
                *self = Self::new(reading);
                false
            }
        }
    }

    /// The counts between the last reading's latch and `reading`'s, if one number of
    /// turns alone fits the ticks between them.
    fn counts_since_last(&self, reading: Reading) -> Option<u64> {
        let within_turn = u64::from(self.last.count.wrapping_sub(reading.count));
        // Each TSC read after the one before it (an earlier `tsc_before` than the last
        // reading's would make the window's ticks negative).
        let in_order = (reading.tsc_before >= self.last.tsc_before)
            & (reading.tsc_after >= reading.tsc_before);
        let most_ticks = reading.tsc_after.saturating_sub(self.last.tsc_before);
        let least_ticks = reading.tsc_before.saturating_sub(self.last.tsc_after);
        let (fewest_per_count, most_per_count) = self.ticks_per_count();
        // The counts read differ from the count's true progress by less than one.
        let most = fewest_per_count.counts_in(most_ticks).saturating_add(1);
        let least = most_per_count.counts_in(least_ticks).saturating_sub(1);
        let first_fit = least + (within_turn + TURN - least % TURN) % TURN;
        let fits = in_order & (first_fit <= most) & (most.wrapping_sub(first_fit) < TURN);
        fits.then_some(first_fit)
    }

    /// Bounds on the ticks a count takes: the fewest (the readings' slowest TSC, never one
    /// slower than [`SLOWEST_TSC_HZ`]) and the most (once two counts are counted; before
    /// then no counts in any ticks, which bounds nothing).
    fn ticks_per_count(&self) -> (TicksPerCount, TicksPerCount) {
        let (first, last, counted) = (self.first, self.last, self.counted);
        let assumed = TicksPerCount {
            ticks: SLOWEST_TSC_HZ,
            counts: PIT_HZ,
        };
        let slowest = TicksPerCount {
            ticks: last.tsc_before.saturating_sub(first.tsc_after),
            counts: counted + 1,
        };
        let fastest = match counted {
            0 | 1 => TicksPerCount {
                ticks: 1,
                counts: 0,
            },
            _ => TicksPerCount {
                ticks: last.tsc_after - first.tsc_before,
                counts: counted - 1,
            },
        };
        (
            if slowest.exceeds(assumed) {
                slowest
            } else {
                assumed
            },
            fastest,
        )
    }

    /// The TSC's rate over the window in Hz, timed by the TSC just before each latch (the
    /// read nearest it); `None` before a count is counted, and while the reads at the
    /// window's two ends took so long that the latches could lie more than 1% of the
    /// window away from those TSC reads (a vCPU descheduled in a read: one held up 214 ms
    /// at the end of a 1 ms window gave 12 MHz for a 2,600 MHz TSC).
    pub fn tsc_hz(&self) -> Option<u64> {
        let ticks = self.last.tsc_before - self.first.tsc_before;
        if spoils(self.first.took() + self.last.took(), ticks) {
            return None;
        }
        let ticks = u128::from(ticks);
        let hz = (ticks * u128::from(PIT_HZ)).checked_div(u128::from(self.counted))?;
        u64::try_from(hz).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A machine whose TSC runs at `tsc_hz` and whose channel 0 was loaded with 0 at TSC
    /// 0; its readings take `read_ticks` from the latch to the TSC read after it.
    struct Machine {
        tsc_hz: u64,
        read_ticks: u64,
    }

    impl Machine {
        const AT_3_GHZ: Self = Self {
            tsc_hz: 3_000_000_000,
            read_ticks: 3000,
        };

        /// The counts channel 0 has made by TSC `tsc`.
        fn counts_at(&self, tsc: u64) -> u64 {
            (u128::from(tsc) * u128::from(PIT_HZ) / u128::from(self.tsc_hz)) as u64
        }

        /// A reading latched at TSC `tsc`.
        fn reading_at(&self, tsc: u64) -> Reading {
            Reading {
                tsc_before: tsc,
                count: 0u16.wrapping_sub(self.counts_at(tsc) as u16),
                tsc_after: tsc + self.read_ticks,
            }
        }

        /// The TSC `micros` microseconds in.
        fn tsc_at_us(&self, micros: u64) -> u64 {
            self.tsc_hz / 1_000_000 * micros
        }
    }

    #[test]
    fn a_window_spans_a_gap_of_many_turns_once_it_has_counted_the_rate() {
        // The kernel's readings: at entry, after ACPI (2 ms), then 200 ms of memory set up
        // (3.6 turns) before the window is finished. A gap over 40 ms at 500 MHz (6.7 ms
        // at 3 GHz) started the window again, which then measured 1 ms.
        let machine = Machine::AT_3_GHZ;
        let mut window = Window::new(machine.reading_at(1000));
        for micros in [2_000, 202_000, 202_001] {
            assert!(window.add(machine.reading_at(machine.tsc_at_us(micros))));
        }
        let end = machine.tsc_at_us(202_001);
        assert_eq!(
            window.counted(),
            machine.counts_at(end) - machine.counts_at(1000)
        );
        let hz = window.tsc_hz().unwrap();
        // Within one count of 241,000 (4 ppm).
        assert!(hz.abs_diff(machine.tsc_hz) < 13_000, "{hz} Hz");
    }

    #[test]
    fn a_first_gap_that_could_hold_another_turn_starts_the_window_again() {
        // 60 ms before anything is counted: at the slowest TSC the ticks could hold
        // several turns more.
        let machine = Machine::AT_3_GHZ;
        let mut window = Window::new(machine.reading_at(0));
        let later = machine.reading_at(machine.tsc_at_us(60_000));
        assert!(!window.add(later));
        assert_eq!((window.counted(), window.tsc_hz()), (0, None));
        assert_eq!(window, Window::new(later));
        // A short first gap is counted: 5 ms is 5,965 counts.
        let mut window = Window::new(machine.reading_at(0));
        assert!(window.add(machine.reading_at(machine.tsc_at_us(5_000))));
        assert_eq!(window.counted(), 5_965);
    }

    #[test]
    fn a_turn_is_65536_counts_and_0_is_the_count_loaded() {
        // Readings 2 ms in, then 20 ms apart over two turns, and one at the third turn.
        let machine = Machine::AT_3_GHZ;
        let turn_tsc = (TURN * machine.tsc_hz).div_ceil(PIT_HZ);
        assert_eq!(machine.reading_at(turn_tsc).count, 0);
        let mut window = Window::new(machine.reading_at(0));
        let mut tsc = machine.tsc_at_us(2_000);
        assert!(window.add(machine.reading_at(tsc)));
        while tsc < 2 * turn_tsc {
            tsc += machine.tsc_at_us(20_000);
            assert!(window.add(machine.reading_at(tsc)));
        }
        assert!(window.add(machine.reading_at(turn_tsc * 3)));
        assert_eq!(window.counted(), machine.counts_at(turn_tsc * 3));
        assert_eq!(window.counted(), 3 * TURN);
    }

    #[test]
    fn readings_held_up_between_their_tsc_reads_do_not_guess_the_turns() {
        // The core lost 6 ms between the TSC read and the latch of the second reading (a
        // vCPU descheduled): the rate is then known too loosely to tell the turns in a
        // 200 ms gap, so the window starts again rather than guess.
        let machine = Machine::AT_3_GHZ;
        let mut window = Window::new(machine.reading_at(0));
        let latch = machine.tsc_at_us(8_000);
        let held_up = Reading {
            tsc_before: machine.tsc_at_us(2_000),
            ..machine.reading_at(latch)
        };
        assert!(window.add(held_up));
        let later = machine.reading_at(latch + machine.tsc_at_us(200_000));
        assert!(!window.add(later));
        assert_eq!(window, Window::new(later));
    }

    #[test]
    fn a_window_whose_ends_were_read_slowly_has_no_rate_until_they_are_read_quickly() {
        // The last reading's core held up 38 ms between its TSC read and its latch, at
        // the end of a 2 ms window: its counts are right (the ticks after bound them),
        // but timed by the read before, the rate came out at 1/20 of the TSC's.
        let machine = Machine::AT_3_GHZ;
        let mut window = Window::new(machine.reading_at(0));
        assert!(window.add(machine.reading_at(machine.tsc_at_us(1_000))));
        let latch = machine.tsc_at_us(40_000);
        let held_up = Reading {
            tsc_before: machine.tsc_at_us(2_000),
            ..machine.reading_at(latch)
        };
        assert!(window.add(held_up));
        assert_eq!(window.tsc_hz(), None);
        // Readings read quickly after it give the rate again (the held-up reading's early
        // TSC read leaves the ticks too loose to tell the next gap's turns: the window
        // starts again there).
        window.add(machine.reading_at(latch + machine.tsc_at_us(1_000)));
        assert!(window.add(machine.reading_at(latch + machine.tsc_at_us(2_000))));
        let hz = window.tsc_hz().unwrap();
        assert!(
            hz.abs_diff(machine.tsc_hz) < machine.tsc_hz / 1000,
            "{hz} Hz"
        );
        // A first reading held up 30 ms starts the window again at the first quick one.
        let slow_first = Reading {
            tsc_before: 0,
            ..machine.reading_at(machine.tsc_at_us(30_000))
        };
        let mut window = Window::new(slow_first);
        let quick = machine.reading_at(machine.tsc_at_us(31_000));
        assert!(!window.add(quick));
        assert_eq!(window, Window::new(quick));
        assert!(window.add(machine.reading_at(machine.tsc_at_us(33_000))));
        let hz = window.tsc_hz().unwrap();
        assert!(
            hz.abs_diff(machine.tsc_hz) < machine.tsc_hz / 1000,
            "{hz} Hz"
        );
    }

    #[test]
    fn a_reading_whose_tsc_reads_are_out_of_order_starts_the_window_again() {
        // One whose first TSC read came before the last reading's was added, its later
        // second read passing the only check, and the window's ticks went below zero: a
        // debug build panicked in tsc_hz (a release one wrapped).
        let machine = Machine::AT_3_GHZ;
        let first = machine.reading_at(1_000_000);
        let mut window = Window::new(first);
        let earlier = Reading {
            tsc_before: 900_000,
            ..first
        };
        assert!(!window.add(earlier));
        assert_eq!(window, Window::new(earlier));
        assert_eq!(window.tsc_hz(), None);
        // Nor one whose second read comes before its first.
        let later = machine.reading_at(1_100_000);
        let inverted = Reading {
            tsc_after: later.tsc_before - 1,
            ..later
        };
        assert!(!window.add(inverted));
        assert_eq!(window, Window::new(inverted));
    }

    #[test]
    fn a_count_that_stands_still_counts_nothing() {
        // No PIT: the count reads the same (all ones on an empty bus) at every reading.
        let mut window = Window::new(Reading {
            tsc_before: 0,
            count: 0xFFFF,
            tsc_after: 3000,
        });
        for tsc in (1..100).map(|i| i * 3_000_000) {
            window.add(Reading {
                tsc_before: tsc,
                count: 0xFFFF,
                tsc_after: tsc + 3000,
            });
        }
        assert_eq!((window.counted(), window.tsc_hz()), (0, None));
    }
}
