//! The CMOS real-time clock (the MC146818 and its successors in every PC chipset) read as
//! seconds since 1970-01-01 00:00:00 UTC ([`WallClock`]: read at the first call and
//! counted on the monotonic clock since, read again every 10 minutes to correct that
//! count's drift, a step no drift explains taken for the clock set and warned of), and
//! such seconds as a date and time
//! again ([`DateTime`]). The kernel passes the register reads (index to port 0x70, data
//! from 0x71) and its monotonic clock; the rest is here, where the host tests reach it.
//!
//! The registers: seconds 0x00, minutes 0x02, hours 0x04, day of month 0x07, month 0x08,
//! year 0x09 (two digits), status A 0x0A (bit 7: an update is in progress or starts
//! within 244 us, during which the time registers must not be read), status B 0x0B
//! (bit 2: binary, else BCD; bit 1: 24-hour, else 12-hour with bit 7 of the hours
//! meaning PM), and the century at the index the FADT gives, if it gives one (without it,
//! or when it holds no century from 19 to 99, as 0x00 where the firmware never set it,
//! the years are 2000-2099). A reading is taken once no update is in progress, and
//! taken again until two in a row agree, so an update between two registers never
//! yields a time that never was. The clock is assumed to keep UTC, as Linux's default.
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

use core::fmt;
use core::sync::atomic::{AtomicI64, AtomicU64, Ordering, fence};

/// Status A: an update is in progress (or begins within 244 us).
const UPDATE_IN_PROGRESS: u8 = 0x80;
/// Status B: the time registers are binary, not BCD.
const BINARY: u8 = 0x04;
/// Status B: 24-hour clock, not 12-hour.
const HOURS_24: u8 = 0x02;
/// How long status A may say "update in progress" before the clock is given up on: an
/// update lasts at most 2 ms (244 us of warning plus 1984 us).
const UPDATE_WAIT_NS: u64 = 10_000_000;
/// Reads of status A after which a clock that stays in its update is given up on even
/// if the monotonic clock did not move (far more than [`UPDATE_WAIT_NS`] takes).
const UPDATE_READS: u32 = 1_000_000;
/// Readings taken before a clock whose registers never agree twice in a row is given up
/// on (it changes at most once a second).
const READINGS: u32 = 8;
/// Nanoseconds in a second.
const NS_PER_S: u64 = 1_000_000_000;
/// How long after a failed reading the clock is read again (at the first call after
/// that): the calls between return the failure at once, since a failed reading costs
/// its caller time (a clock stuck in its update, 10 ms).
const RETRY_AFTER_NS: u64 = 60 * NS_PER_S;
/// How long after a reading that succeeded the clock is read again (at the first call
/// after that), to correct the wall clock's count on the monotonic clock, whose rate was
/// measured at boot (to 0.1% against the PIT, 0.04% against the HPET, where CPUID does
/// not give it exactly): 0.1% off, the count drifts 0.6 s in 10 minutes, 86 s a day.
const CHECK_AFTER_NS: u64 = 600 * NS_PER_S;
/// The most a later reading may move the count, per nanosecond since the last reading
/// placed, before it is taken for the CMOS clock set rather than the count's drift:
/// 1/500 (0.2%, twice the PIT's measuring error).
const DRIFT_PER_NS: u64 = 500;
/// The most a later reading may move the count beyond its drift: 2 s, the whole seconds
/// of a reading placed at its second's start and of the answers.
const SET_SLACK_NS: u64 = 2 * NS_PER_S;

/// Why the clock gave no time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtcError {
    /// Every register reads 0xFF: no clock answers at these ports.
    Absent,
    /// Status A said "update in progress" for 10 ms (five times the longest update).
    StuckInUpdate,
    /// No two readings in a row agreed.
    Unsettled,
    /// A register held a value no date or time has (`value` as read, before decoding).
    Invalid {
        /// Which field.
        field: &'static str,
        /// What the register held.
        value: u8,
    },
}

impl fmt::Display for RtcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Absent => f.write_str("no CMOS clock (its registers read 0xFF)"),
            Self::StuckInUpdate => f.write_str("the CMOS clock never left its update cycle"),
            Self::Unsettled => f.write_str("the CMOS clock's registers never read the same twice"),
            Self::Invalid { field, value } => {
                write!(f, "the CMOS clock's {field} register holds {value:#04x}")
            }
        }
    }
}

/// The registers of one reading, as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Reading {
    second: u8,
    minute: u8,
    hour: u8,
    day: u8,
    month: u8,
    year: u8,
    century: Option<u8>,
    status_b: u8,
}

/// The wall clock: the CMOS clock read at the first [`WallClock::unix_time_s`], plus the
/// monotonic clock since, read again at the first call 10 minutes or more after the last
/// reading to correct the drift of that count; one for the machine, shared by its cores.
pub struct WallClock {
    /// The boot time by the first reading that succeeded.
    boot: spin::Once<BootTime>,
    /// Why the last reading failed, and the monotonic time from which the clock is read
    /// again.
    failed: spin::Mutex<Option<(RtcError, u64)>>,
    /// The corrections of the later readings.
    correction: Correction,
    /// The monotonic time from which the next call reads the clock again (`u64::MAX`:
    /// before the first reading, and while a core reads it).
    check_at_ns: AtomicU64,
}

impl WallClock {
    /// A wall clock whose CMOS clock is not read yet.
    pub const fn new() -> Self {
        Self {
            boot: spin::Once::new(),
            failed: spin::Mutex::new(None),
            correction: Correction::new(),
            check_at_ns: AtomicU64::new(u64::MAX),
        }
    }

    /// Seconds since 1970-01-01 00:00:00 UTC at `now_ns()` (the monotonic clock,
    /// nanoseconds since boot). The first call reads the CMOS clock through `cmos`
    /// (register index to value; `century` is the FADT's century register index, if
    /// any), waiting out an update in progress (about 2 ms at most) but not the next
    /// second: waiting for the clock's seconds to change would know the boot time to
    /// microseconds but cost the first call up to a second, the start of every app that
    /// dates its answers (httpd, kv). Cores calling meanwhile wait for that reading. A
    /// reading that succeeded is kept (a century register that held no century, taken as
    /// 20, goes to `warn` then); why one failed goes to `warn`, and calls in the next
    /// 60 s return it without reading, the first call after them reads the clock again.
    ///
    /// The reading is placed at the start of its second (the clock counts whole seconds),
    /// so the answer is the CMOS clock's second or the one before, give or take how far
    /// the monotonic clock's measured rate has drifted since. To bound that drift, the
    /// first call 10 minutes or more after the last reading reads the clock again (a
    /// reading as the first, some 20 register reads, each an I/O port write and read:
    /// tens of microseconds, up to 2 ms in an update) and places its second likewise;
    /// other cores calling meanwhile answer at once, uncorrected. No answer is less than
    /// one already given: a reading that puts the clock back holds the answers at the
    /// last second given until the clock passes it. So at 0.1% off, the answer stays
    /// within 0.6 s of the CMOS clock's second or the one before (one second either
    /// side at worst). A check that fails goes to `warn`, the count going on uncorrected
    /// until the next. So does a reading that would move the count by more than 2 s plus
    /// 0.2% of the time since the last reading placed (twice the PIT's measuring error),
    /// which no drift explains: the CMOS clock was set (by a BMC, another system, a dead
    /// battery's reset to 2000), and the count goes on, the wall clock staying the first
    /// reading plus the time since; later readings are taken less that step, so the
    /// drift is still corrected (the answer then up to a second further off: the step
    /// taken holds the drift since the last reading placed and that reading's part of a
    /// second).
    pub fn unix_time_s(
        &self,
        cmos: &mut dyn FnMut(u8) -> u8,
        century: Option<u8>,
        now_ns: &dyn Fn() -> u64,
        warn: &mut dyn FnMut(fmt::Arguments),
    ) -> Result<u64, RtcError> {
        let boot = *self.boot.try_call_once(|| {
            let mut failed = self.failed.lock();
            if let Some((why, again_ns)) = *failed
                && now_ns() < again_ns
            {
                return Err(why);
            }
            let read = unix_time(cmos, century, now_ns)
                .map(|(unix_s, unset)| (BootTime::by_second_start(unix_s, now_ns()), unset));
            let (boot, unset_century) = read.inspect_err(|&why| {
                warn(format_args!(
                    "no wall clock: {why} (read again at a call 60 s or more later)"
                ));
                *failed = Some((why, now_ns().saturating_add(RETRY_AFTER_NS)));
            })?;
            if let (Some(index), Some(value)) = (century, unset_century) {
                warn(format_args!(
                    "the century register (CMOS {index:#04x}) holds {value:#04x}, no \
                     century: the years are taken as 2000-2099"
                ));
            }
            let check_at_ns = now_ns().saturating_add(CHECK_AFTER_NS);
            (self.correction.placed_at_ns).store(now_ns(), Ordering::Relaxed);
            self.check_at_ns.store(check_at_ns, Ordering::Release);
            Ok(boot)
        })?;
        // The monotonic clock read once a call (an LFENCE and RDTSC in the kernel).
        let now = now_ns();
        let check_at_ns = self.check_at_ns.load(Ordering::Relaxed);
        // One core reads the clock: the one that swaps the time for `u64::MAX`. Its swap
        // acquires what the last reader stored before releasing the time (`version`,
        // `shift_ns`, `floor_s`, `placed_at_ns`, `set_ns`), so it starts from them.
        let claimed = |at_ns| {
            let (claim, lost) = (Ordering::Acquire, Ordering::Relaxed);
            self.check_at_ns
                .compare_exchange(at_ns, u64::MAX, claim, lost)
        };
        if now >= check_at_ns && claimed(check_at_ns).is_ok() {
            match unix_time(cmos, century, now_ns) {
                Ok((unix_s, _)) => {
                    if let Err(step_ns) = self.correction.place(boot, unix_s, now_ns) {
                        let (way, by_s) = (
                            if step_ns < 0 { "back" } else { "ahead" },
                            step_ns.unsigned_abs() / u128::from(NS_PER_S),
                        );
                        warn(format_args!(
                            "the CMOS clock was set {way} by about {by_s} s, more than the \
                             count can drift: the wall clock keeps its count (the CMOS \
                             clock read again at a call 10 minutes or more later)"
                        ));
                    }
                }
                Err(why) => warn(format_args!(
                    "the wall clock goes on uncorrected: {why} (read again at a call 10 \
                     minutes or more later)"
                )),
            }
            let check_at_ns = now_ns().saturating_add(CHECK_AFTER_NS);
            self.check_at_ns.store(check_at_ns, Ordering::Release);
        }
        Ok(self.correction.unix_time_s(boot, now))
    }
}

/// The corrections the readings after the first made, read by every call without a
/// lock: a sequence lock (a version, odd while the one core that read the clock writes
/// them; a reader that saw it change reads again).
struct Correction {
    version: AtomicU64,
    /// Nanoseconds added to the monotonic clock before the first reading's boot time is
    /// added to it (negative: the monotonic clock ran fast).
    shift_ns: AtomicI64,
    /// The least second answered: the last one given before a reading put the clock
    /// back.
    floor_s: AtomicU64,
    /// The monotonic time of the last reading placed (or taken for a set of the CMOS
    /// clock); the reading core's alone.
    placed_at_ns: AtomicU64,
    /// How far the CMOS clock was set since the first reading, in all: later readings are
    /// taken less this; the reading core's alone.
    set_ns: AtomicI64,
}

impl Correction {
    const fn new() -> Self {
        Self {
            version: AtomicU64::new(0),
            shift_ns: AtomicI64::new(0),
            floor_s: AtomicU64::new(0),
            placed_at_ns: AtomicU64::new(0),
            set_ns: AtomicI64::new(0),
        }
    }

    /// Seconds since 1970 at `now_ns` (the monotonic clock, read before this call: an
    /// answer from a correction a writer then replaces comes from a time read before it
    /// began, before the time whose answer its floor holds; one from the new correction
    /// is at least that floor), from `boot` as corrected.
    fn unix_time_s(&self, boot: BootTime, now_ns: u64) -> u64 {
        loop {
            let version = self.version.load(Ordering::Acquire);
            let shift_ns = self.shift_ns.load(Ordering::Relaxed);
            let floor_s = self.floor_s.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if version.is_multiple_of(2) && self.version.load(Ordering::Relaxed) == version {
                return boot
                    .unix_time_s(now_ns.saturating_add_signed(shift_ns))
                    .max(floor_s);
            }
            core::hint::spin_loop();
        }
    }

    /// Places a reading of `unix_s`, taken just before `now_ns()`, at the start of its
    /// second, holding the answers at the last second given until it passes that; or,
    /// when (less the sets seen before) it would move the count by more than its drift
    /// since the last reading placed can explain ([`DRIFT_PER_NS`], [`SET_SLACK_NS`]),
    /// takes it for the CMOS clock set, leaves the count as it is and returns by how
    /// many nanoseconds the clock was set (negative: back).
    fn place(&self, boot: BootTime, unix_s: u64, now_ns: &dyn Fn() -> u64) -> Result<(), i128> {
        let read_at_ns = now_ns();
        let since_ns = read_at_ns.saturating_sub(self.placed_at_ns.load(Ordering::Relaxed));
        self.placed_at_ns.store(read_at_ns, Ordering::Relaxed);
        let set_ns = i128::from(self.set_ns.load(Ordering::Relaxed));
        let shift_ns = (i128::from(unix_s) - i128::from(boot.seconds)) * i128::from(NS_PER_S)
            - i128::from(boot.subsec_ns)
            - i128::from(read_at_ns)
            - set_ns;
        let step_ns = shift_ns - i128::from(self.shift_ns.load(Ordering::Relaxed));
        if step_ns.unsigned_abs() > u128::from(since_ns / DRIFT_PER_NS + SET_SLACK_NS) {
            let set_ns = (set_ns + step_ns).clamp(i128::from(i64::MIN), i128::from(i64::MAX));
            // Clamped to i64's range, so the cast keeps every bit.
            self.set_ns.store(set_ns as i64, Ordering::Relaxed);
            return Err(step_ns);
        }
        let version = self.version.load(Ordering::Relaxed);
        self.version.store(version + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        let old_shift_ns = self.shift_ns.load(Ordering::Relaxed);
        // The most any call answered: each read the monotonic clock before this.
        let given_s = boot
            .unix_time_s(now_ns().saturating_add_signed(old_shift_ns))
            .max(self.floor_s.load(Ordering::Relaxed));
        let shift_ns = shift_ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX));
        // Clamped to i64's range, so the cast keeps every bit.
        self.shift_ns.store(shift_ns as i64, Ordering::Relaxed);
        self.floor_s.store(given_s, Ordering::Relaxed);
        self.version.store(version + 2, Ordering::Release);
        Ok(())
    }
}

impl Default for WallClock {
    fn default() -> Self {
        Self::new()
    }
}

/// The boot (the monotonic clock's zero) as a wall-clock time: seconds since 1970 and
/// nanoseconds past that second, kept apart so that any year the clock can show fits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BootTime {
    seconds: u64,
    subsec_ns: u64,
}

impl BootTime {
    /// The boot time by a reading of `unix_s` taken at the start of that second,
    /// `at_ns` after boot; 1970 for a clock that shows less time than has passed since
    /// boot.
    fn by_second_start(unix_s: u64, at_ns: u64) -> Self {
        let (whole_s, part_ns) = (at_ns / NS_PER_S, at_ns % NS_PER_S);
        let seconds = unix_s.saturating_sub(whole_s);
        match (seconds, part_ns) {
            (seconds, 0) => Self {
                seconds,
                subsec_ns: 0,
            },
            (1.., part_ns) => Self {
                seconds: seconds - 1,
                subsec_ns: NS_PER_S - part_ns,
            },
            (0, _) => Self {
                seconds: 0,
                subsec_ns: 0,
            },
        }
    }

    /// Seconds since 1970 at `now_ns` after boot.
    fn unix_time_s(self, now_ns: u64) -> u64 {
        let carried_s = (self.subsec_ns + now_ns % NS_PER_S) / NS_PER_S;
        self.seconds
            .saturating_add(now_ns / NS_PER_S)
            .saturating_add(carried_s)
    }
}

/// Reads the clock through `cmos` (register index to value) and returns seconds since
/// 1970; `century` is the FADT's century register index, if any. With them, what that
/// register held if it held no century (19 to 99), the years then taken as 2000-2099.
/// `now_ns` (the monotonic clock) bounds the wait for an update to end.
fn unix_time(
    cmos: &mut dyn FnMut(u8) -> u8,
    century: Option<u8>,
    now_ns: &dyn Fn() -> u64,
) -> Result<(u64, Option<u8>), RtcError> {
    if cmos(0x0B) == 0xFF && cmos(0x00) == 0xFF {
        return Err(RtcError::Absent);
    }
    let mut last = None;
    for _ in 0..READINGS {
        wait_for_no_update(cmos, now_ns)?;
        let reading = Reading {
            second: cmos(0x00),
            minute: cmos(0x02),
            hour: cmos(0x04),
            day: cmos(0x07),
            month: cmos(0x08),
            year: cmos(0x09),
            century: century.map(&mut *cmos),
            status_b: cmos(0x0B),
        };
        if last == Some(reading) {
            return reading.decode();
        }
        last = Some(reading);
    }
    Err(RtcError::Unsettled)
}

/// Waits until status A says no update is in progress, for [`UPDATE_WAIT_NS`] of `now_ns`
/// at most: a clock stuck in its update (or whose port reads are slow) costs its caller
/// 10 ms, not a million reads (a second or more).
fn wait_for_no_update(
    cmos: &mut dyn FnMut(u8) -> u8,
    now_ns: &dyn Fn() -> u64,
) -> Result<(), RtcError> {
    let give_up_ns = now_ns().saturating_add(UPDATE_WAIT_NS);
    for _ in 0..UPDATE_READS {
        if cmos(0x0A) & UPDATE_IN_PROGRESS == 0 {
            return Ok(());
        }
        if now_ns() > give_up_ns {
            break;
        }
    }
    Err(RtcError::StuckInUpdate)
}

impl Reading {
    /// Seconds since 1970 by this reading, and the century register's value if it held
    /// no century (19 to 99; 0x00 where the firmware never set it), 20 taken instead.
    fn decode(&self) -> Result<(u64, Option<u8>), RtcError> {
        let binary = self.status_b & BINARY != 0;
        let number = |field: &'static str, value: u8, range: core::ops::RangeInclusive<u8>| {
            let invalid = RtcError::Invalid { field, value };
            let decoded = if binary {
                value
            } else if value & 0x0F <= 9 && value >> 4 <= 9 {
                (value >> 4) * 10 + (value & 0x0F)
            } else {
                return Err(invalid);
            };
            if range.contains(&decoded) {
                Ok(decoded)
            } else {
                Err(invalid)
            }
        };
        let hour = if self.status_b & HOURS_24 != 0 {
            number("hours", self.hour, 0..=23)?
        } else {
            // 12 AM is midnight, 12 PM noon.
            let pm = self.hour & 0x80 != 0;
            let hour =
                number("hours", self.hour & 0x7F, 1..=12).map_err(|_| RtcError::Invalid {
                    field: "hours",
                    value: self.hour,
                })?;
            hour % 12 + if pm { 12 } else { 0 }
        };
        let (century, unset_century) = match self.century {
            Some(value) => match number("century", value, 19..=99) {
                Ok(century) => (century, None),
                Err(_) => (20, Some(value)),
            },
            None => (20, None),
        };
        let year = u64::from(century) * 100 + u64::from(number("year", self.year, 0..=99)?);
        if year < 1970 {
            return Err(RtcError::Invalid {
                field: "year",
                value: self.year,
            });
        }
        let month = number("month", self.month, 1..=12)?;
        let day = number("day", self.day, 1..=days_in_month(year, month))?;
        let days = days_since_1970(year, month, day);
        let seconds = u64::from(hour) * 3600
            + u64::from(number("minutes", self.minute, 0..=59)?) * 60
            + u64::from(number("seconds", self.second, 0..=59)?);
        Ok((days * 86_400 + seconds, unset_century))
    }
}

/// A moment as the calendar shows it: UTC, the Gregorian calendar, 1970 or later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime {
    /// The year.
    pub year: u64,
    /// The month, 1 to 12.
    pub month: u8,
    /// The day of the month, from 1.
    pub day: u8,
    /// The hour, 0 to 23.
    pub hour: u8,
    /// The minute, 0 to 59.
    pub minute: u8,
    /// The second, 0 to 59.
    pub second: u8,
}

impl DateTime {
    /// The moment `seconds` after 1970-01-01 00:00:00 UTC.
    pub fn from_unix(seconds: u64) -> Self {
        let (days, time) = (seconds / 86_400, seconds % 86_400);
        // The calendar repeats every 400 years, so whole cycles are skipped at once
        // rather than walked a year at a time (u64::MAX seconds is some 585 billion years).
        let mut year = 1970 + 400 * (days / DAYS_PER_400_YEARS);
        let mut days = days % DAYS_PER_400_YEARS;
        let days_in_year = |year| if leap(year) { 366 } else { 365 };
        while days >= days_in_year(year) {
            days -= days_in_year(year);
            year += 1;
        }
        let mut month = 1;
        while days >= u64::from(days_in_month(year, month)) {
            days -= u64::from(days_in_month(year, month));
            month += 1;
        }
        // Each part is below its modulus, so the narrowing casts keep every bit.
        Self {
            year,
            month,
            day: days as u8 + 1,
            hour: (time / 3600) as u8,
            minute: (time % 3600 / 60) as u8,
            second: (time % 60) as u8,
        }
    }
}

impl fmt::Display for DateTime {
    /// `YYYY-MM-DD HH:MM:SS`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// Days in 400 Gregorian years, after which the calendar repeats.
const DAYS_PER_400_YEARS: u64 = 146_097;

/// Whether `year` (Gregorian) has a 29 February.
fn leap(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

/// Days in `month` (1-12) of `year`.
fn days_in_month(year: u64, month: u8) -> u8 {
    match month {
        2 if leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to `year`-`month`-`day` (a valid date, 1970 or later).
fn days_since_1970(year: u64, month: u8, day: u8) -> u64 {
    let years: u64 = (1970..year).map(|y| if leap(y) { 366 } else { 365 }).sum();
    let months: u64 = (1..month).map(|m| u64::from(days_in_month(year, m))).sum();
    years + months + u64::from(day) - 1
}

#[cfg(test)]
mod tests;
