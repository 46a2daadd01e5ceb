use super::*;
use core::cell::Cell;

/// A CMOS clock in memory: its registers, and how many more status A reads say "update
/// in progress".
struct Cmos {
    registers: [u8; 128],
    updating_reads: u32,
    reads: u32,
    /// Called after each read with the registers and the read count (a clock that ticks).
    tick: fn(&mut [u8; 128], u32),
}

impl Cmos {
    /// A clock showing `time` (second, minute, hour, day, month, year) with status B.
    fn new(time: [u8; 6], status_b: u8) -> Self {
        let mut registers = [0; 128];
        for (index, value) in [0x00, 0x02, 0x04, 0x07, 0x08, 0x09].into_iter().zip(time) {
            registers[index] = value;
        }
        registers[0x0B] = status_b;
        Self {
            registers,
            updating_reads: 0,
            reads: 0,
            tick: |_, _| {},
        }
    }

    fn read(&mut self, index: u8) -> u8 {
        self.reads += 1;
        (self.tick)(&mut self.registers, self.reads);
        if index == 0x0A && self.updating_reads > 0 {
            self.updating_reads -= 1;
            return UPDATE_IN_PROGRESS;
        }
        self.registers[usize::from(index)]
    }

    fn time(&mut self, century: Option<u8>) -> Result<u64, RtcError> {
        self.time_and_unset_century(century)
            .map(|(unix_s, _)| unix_s)
    }

    fn time_and_unset_century(
        &mut self,
        century: Option<u8>,
    ) -> Result<(u64, Option<u8>), RtcError> {
        // A clock that never moves: the wait for an update is bounded by reads alone.
        unix_time(&mut |index| self.read(index), century, &|| 0)
    }
}

/// 2026-11-24 17:42:05 UTC, by `date -u -d '2026-11-24 17:42:05' +%s`.
const WHEN: u64 = 1_795_542_125;

#[test]
fn a_bcd_24_hour_clock_reads_as_unix_time() {
    let mut cmos = Cmos::new([0x05, 0x42, 0x17, 0x24, 0x11, 0x26], HOURS_24);
    assert_eq!(cmos.time(None), Ok(WHEN));
}

#[test]
fn a_binary_clock_and_the_century_register() {
    let mut cmos = Cmos::new([5, 42, 17, 24, 11, 26], HOURS_24 | BINARY);
    cmos.registers[0x32] = 20;
    assert_eq!(cmos.time(Some(0x32)), Ok(WHEN));
    cmos.registers[0x32] = 19;
    cmos.registers[0x09] = 70;
    cmos.registers[0x08] = 1;
    cmos.registers[0x07] = 1;
    cmos.registers[0x04] = 0;
    cmos.registers[0x02] = 0;
    cmos.registers[0x00] = 0;
    assert_eq!(cmos.time(Some(0x32)), Ok(0), "the epoch");
}

/// A century register that holds no century (0x00 where the firmware never set it, a
/// value below 19, a byte that is no BCD number) counts as no register: the years are
/// 2000-2099 and the wall clock warns once. The reading failed before (Invalid
/// "century"), and the machine had no wall clock.
#[test]
fn a_century_register_holding_no_century_is_taken_as_the_2000s() {
    for value in [0x00, 0x18, 0xFF, 0x1A] {
        let mut cmos = Cmos::new([0x05, 0x42, 0x17, 0x24, 0x11, 0x26], HOURS_24);
        cmos.registers[0x32] = value;
        let read = cmos.time_and_unset_century(Some(0x32));
        assert_eq!(read, Ok((WHEN, Some(value))), "{value:#x}");
    }
    let mut cmos = Cmos::new([0x05, 0x42, 0x17, 0x24, 0x11, 0x26], HOURS_24);
    cmos.registers[0x32] = 0x20;
    assert_eq!(cmos.time_and_unset_century(Some(0x32)), Ok((WHEN, None)));
    // The running clock's century register (0x32) reads 0x00.
    let clock = RunningClock::new(WHEN * NS_PER_S);
    let wall = WallClock::new();
    let mut warned = Vec::new();
    let mut warn = |why: fmt::Arguments| warned.push(why.to_string());
    let now = || clock.now_ns.get();
    for _ in 0..3 {
        let unix_s = wall.unix_time_s(&mut |i| clock.read(i), Some(0x32), &now, &mut warn);
        assert_eq!(
            unix_s,
            Ok((WHEN * NS_PER_S + clock.now_ns.get()) / NS_PER_S)
        );
    }
    assert_eq!(
        warned,
        [
            "the century register (CMOS 0x32) holds 0x00, no century: the years are taken as \
          2000-2099"
        ]
    );
}

#[test]
fn twelve_hour_clocks_know_midnight_from_noon() {
    // 5:42:05 PM.
    let mut cmos = Cmos::new([0x05, 0x42, 0x85, 0x24, 0x11, 0x26], 0);
    assert_eq!(cmos.time(None), Ok(WHEN));
    // 12:00:00 AM is midnight, 12:00:00 PM noon.
    let midnight = Cmos::new([0, 0, 0x12, 0x24, 0x11, 0x26], 0)
        .time(None)
        .unwrap();
    let noon = Cmos::new([0, 0, 0x92, 0x24, 0x11, 0x26], 0)
        .time(None)
        .unwrap();
    assert_eq!(midnight % 86_400, 0);
    assert_eq!(noon - midnight, 12 * 3600);
    assert_eq!(
        Cmos::new([0, 0, 0x13, 0x24, 0x11, 0x26], 0).time(None),
        Err(RtcError::Invalid {
            field: "hours",
            value: 0x13
        }),
        "no 13 o'clock on a 12-hour clock"
    );
}

#[test]
fn leap_days_count() {
    // 2024-02-29 00:00:00 and 2024-03-01 00:00:00 (`date -u -d 2024-02-29 +%s`).
    let leap_day = Cmos::new([0, 0, 0, 0x29, 0x02, 0x24], HOURS_24).time(None);
    assert_eq!(leap_day, Ok(1_709_164_800));
    let march = Cmos::new([0, 0, 0, 0x01, 0x03, 0x24], HOURS_24).time(None);
    assert_eq!(march, Ok(1_709_164_800 + 86_400));
    assert_eq!(
        Cmos::new([0, 0, 0, 0x29, 0x02, 0x25], HOURS_24).time(None),
        Err(RtcError::Invalid {
            field: "day",
            value: 0x29
        }),
        "2025 has no 29 February"
    );
    // 2000 is a leap year (divisible by 400); 2100 would not be.
    assert!(leap(2000) && !leap(2100) && leap(2096));
}

#[test]
fn impossible_registers_are_refused_by_name() {
    let cases = [
        ([0x60, 0, 0, 1, 1, 0x26], "seconds", 0x60),
        ([0, 0x5A, 0, 1, 1, 0x26], "minutes", 0x5A),
        ([0, 0, 0x24, 1, 1, 0x26], "hours", 0x24),
        ([0, 0, 0, 0x32, 1, 0x26], "day", 0x32),
        ([0, 0, 0, 0, 1, 0x26], "day", 0),
        ([0, 0, 0, 1, 0x13, 0x26], "month", 0x13),
        ([0, 0, 0, 1, 0, 0x26], "month", 0),
        ([0, 0, 0, 1, 1, 0xA0], "year", 0xA0),
    ];
    for (time, field, value) in cases {
        assert_eq!(
            Cmos::new(time, HOURS_24).time(None),
            Err(RtcError::Invalid { field, value }),
            "{field} {value:#x}"
        );
    }
    let mut cmos = Cmos::new([0, 0, 0, 1, 1, 0x26], HOURS_24);
    cmos.registers[0x32] = 0x19;
    assert_eq!(
        cmos.time(Some(0x32)),
        Err(RtcError::Invalid {
            field: "year",
            value: 0x26
        }),
        "1926 is before 1970"
    );
}

#[test]
fn no_clock_and_a_clock_stuck_in_its_update_are_errors() {
    let mut absent = Cmos::new([0xFF; 6], 0xFF);
    assert_eq!(absent.time(None), Err(RtcError::Absent));
    let mut stuck = Cmos::new([0x05, 0x42, 0x17, 0x24, 0x11, 0x26], HOURS_24);
    stuck.updating_reads = u32::MAX;
    assert_eq!(stuck.time(None), Err(RtcError::StuckInUpdate));
    assert_eq!(
        stuck.reads,
        1 + UPDATE_READS,
        "given up on after a million reads"
    );
    assert!(RtcError::StuckInUpdate.to_string().contains("update"));
}

#[test]
fn a_reading_waits_out_an_update_and_takes_two_that_agree() {
    let mut cmos = Cmos::new([0x05, 0x42, 0x17, 0x24, 0x11, 0x26], HOURS_24);
    cmos.updating_reads = 500;
    assert_eq!(cmos.time(None), Ok(WHEN));
    assert!(cmos.reads > 500, "status A was read until the update ended");
    // A clock that ticks to the next second between the seconds and the minutes of the
    // first reading (17:42:59 -> 17:43:00; read 4 is the minutes, after status B, status A
    // and the seconds): the torn reading 17:43:59 is never returned.
    let mut ticking = Cmos::new([0x59, 0x42, 0x17, 0x24, 0x11, 0x26], HOURS_24);
    ticking.tick = |registers, reads| {
        if reads == 4 {
            registers[0x00] = 0x00;
            registers[0x02] = 0x43;
        }
    };
    assert_eq!(ticking.time(None), Ok(WHEN + 55));
}

#[test]
fn a_clock_that_never_reads_the_same_twice_is_unsettled() {
    let mut cmos = Cmos::new([0, 0, 0, 1, 1, 0x26], HOURS_24 | BINARY);
    cmos.tick = |registers, _| registers[0x00] = (registers[0x00] + 1) % 60;
    assert_eq!(cmos.time(None), Err(RtcError::Unsettled));
}

#[test]
fn unix_time_reads_back_as_the_date_and_time() {
    // `date -u -d @SECONDS`: the epoch, leap days, the end of a year.
    for (seconds, text) in [
        (0, "1970-01-01 00:00:00"),
        (951_782_400, "2000-02-29 00:00:00"),
        (1_709_251_199, "2024-02-29 23:59:59"),
        (1_709_251_200, "2024-03-01 00:00:00"),
        (WHEN, "2026-11-24 17:42:05"),
        (1_798_761_599, "2026-12-31 23:59:59"),
    ] {
        assert_eq!(DateTime::from_unix(seconds).to_string(), text);
    }
    // And the clock's registers of a moment decode to its seconds again.
    let moment = DateTime::from_unix(WHEN);
    let bcd = |value: u8| ((value / 10) << 4) | (value % 10);
    let registers = [
        moment.second,
        moment.minute,
        moment.hour,
        moment.day,
        moment.month,
    ];
    let [second, minute, hour, day, month] = registers.map(bcd);
    let year = bcd((moment.year % 100) as u8);
    let mut cmos = Cmos::new([second, minute, hour, day, month, year], HOURS_24);
    assert_eq!(cmos.time(None), Ok(WHEN));
}

#[test]
fn the_farthest_moments_are_dated_at_once() {
    // The last second of signed 64-bit time (its well-known date), and of unsigned.
    assert_eq!(
        DateTime::from_unix(i64::MAX as u64).to_string(),
        "292277026596-12-04 15:30:07"
    );
    assert_eq!(
        DateTime::from_unix(u64::MAX).to_string(),
        "584554051223-11-09 07:00:15"
    );
}

/// A CMOS clock that runs: its registers (BCD, 24-hour) show the wall time
/// `wall_at_boot_ns` plus the time since boot, which the monotonic clock counts
/// `monotonic_ppm` parts per million fast (negative: slow), and which each register read
/// moves on by `READ_NS`; status A says "update in progress" in the 244 us before each
/// second.
/// While `stuck_in_update`, status A says "update in progress".
/// While `absent`, every register reads 0xFF. Its registers show `set_ns` more (set
/// ahead; negative: back).
struct RunningClock {
    wall_at_boot_ns: u64,
    set_ns: Cell<i64>,
    now_ns: Cell<u64>,
    reads: Cell<u64>,
    absent: Cell<bool>,
    stuck_in_update: Cell<bool>,
    monotonic_ppm: i64,
}

/// How long one register read takes on a [`RunningClock`].
const READ_NS: u64 = 2_000;

impl RunningClock {
    fn new(wall_at_boot_ns: u64) -> Self {
        Self {
            wall_at_boot_ns,
            set_ns: Cell::new(0),
            now_ns: Cell::new(0),
            reads: Cell::new(0),
            absent: Cell::new(false),
            stuck_in_update: Cell::new(false),
            monotonic_ppm: 0,
        }
    }

    /// The wall time in nanoseconds, by the CMOS clock, at monotonic time `now_ns`.
    fn wall_ns(&self, now_ns: u64) -> u64 {
        let since_boot_ns =
            i128::from(now_ns) * 1_000_000 / (1_000_000 + i128::from(self.monotonic_ppm));
        let wall_ns = i128::from(self.wall_at_boot_ns) + since_boot_ns;
        u64::try_from(wall_ns + i128::from(self.set_ns.get())).unwrap()
    }

    /// The CMOS clock's second at monotonic time `now_ns`.
    fn shown_s(&self, now_ns: u64) -> u64 {
        self.wall_ns(now_ns) / NS_PER_S
    }

    fn read(&self, index: u8) -> u8 {
        let now_ns = self.now_ns.get() + READ_NS;
        self.now_ns.set(now_ns);
        self.reads.set(self.reads.get() + 1);
        if self.absent.get() {
            return 0xFF;
        }
        let wall_ns = self.wall_ns(now_ns);
        let time = DateTime::from_unix(wall_ns / NS_PER_S);
        let bcd = |value: u8| ((value / 10) << 4) | (value % 10);
        match index {
            0x00 => bcd(time.second),
            0x02 => bcd(time.minute),
            0x04 => bcd(time.hour),
            0x07 => bcd(time.day),
            0x08 => bcd(time.month),
            0x09 => bcd((time.year % 100) as u8),
            0x0A if self.stuck_in_update.get() => UPDATE_IN_PROGRESS,
            0x0A if wall_ns % NS_PER_S >= NS_PER_S - 244_000 => UPDATE_IN_PROGRESS,
            0x0B => HOURS_24,
            _ => 0,
        }
    }

    /// The wall clock's seconds at `now_ns` (the monotonic clock moved on to it), read
    /// through `wall` (which may read this clock), and what `wall` warned of.
    fn unix_time_s(&self, wall: &WallClock, now_ns: u64) -> (Result<u64, RtcError>, Vec<String>) {
        self.now_ns.set(self.now_ns.get().max(now_ns));
        let mut warned = Vec::new();
        let mut warn = |why: fmt::Arguments| warned.push(why.to_string());
        let now = || self.now_ns.get();
        let unix_s = wall.unix_time_s(&mut |i| self.read(i), None, &now, &mut warn);
        (unix_s, warned)
    }
}

/// The boot time is kept to the nanosecond and the seconds are counted from it: 3.7 s
/// after a boot at WHEN + 0.3 s it is WHEN + 4, not WHEN + 3 as when the boot time was
/// kept in whole seconds (the reading's second less the whole seconds since boot).
#[test]
fn the_boot_time_keeps_the_part_of_a_second() {
    let boot = BootTime::by_second_start(WHEN + 3, 2_700_000_000);
    assert_eq!(
        boot,
        BootTime {
            seconds: WHEN,
            subsec_ns: 300_000_000
        }
    );
    assert_eq!(boot.unix_time_s(0), WHEN);
    assert_eq!(boot.unix_time_s(699_999_999), WHEN);
    assert_eq!(boot.unix_time_s(700_000_000), WHEN + 1);
    assert_eq!(boot.unix_time_s(3_700_000_000), WHEN + 4);
    // A whole second since boot, a clock showing less than the time since boot, and the
    // last year a century register can give (9999) with the longest uptime.
    let whole = BootTime::by_second_start(WHEN, 5 * NS_PER_S);
    assert_eq!(whole.unix_time_s(5 * NS_PER_S), WHEN);
    assert_eq!(
        BootTime::by_second_start(3, 5_500_000_000).unix_time_s(0),
        0
    );
    let last = 253_402_300_799;
    let boot = BootTime::by_second_start(last, 1);
    assert_eq!(boot.unix_time_s(1), last);
    assert_eq!(boot.unix_time_s(u64::MAX), last + u64::MAX / NS_PER_S);
}

/// The clock is read once, at once (no wait for its seconds to change), and its reading
/// placed at the start of its second: the wall clock then shows the CMOS clock's
/// second or the one before, never one ahead. Before, the boot time was the reading's
/// second less the whole seconds since boot and each call added the whole seconds
/// since boot again: a reading just after the clock's second began, 0.9 s into a boot,
/// put the wall clock a second ahead 0.1 s later.
#[test]
fn the_wall_clock_shows_the_clock_s_second_or_the_one_before() {
    for (wall_at_boot_ns, first_ns) in [
        (WHEN * NS_PER_S + 300_000_000, 0),
        (WHEN * NS_PER_S + 100_000_000, 900_000_000),
        (WHEN * NS_PER_S + 999_000_000, 400_000_000),
    ] {
        let clock = RunningClock::new(wall_at_boot_ns);
        let wall = WallClock::new();
        clock.unix_time_s(&wall, first_ns).0.unwrap();
        let (read_ns, reads) = (clock.now_ns.get(), clock.reads.get());
        assert!(
            read_ns - first_ns < 1_000_000,
            "waited {} ns",
            read_ns - first_ns
        );
        for now_ns in (read_ns..read_ns + 3 * NS_PER_S).step_by(10_000_001) {
            let shown_s = (wall_at_boot_ns + now_ns) / NS_PER_S;
            let unix_s = clock.unix_time_s(&wall, now_ns).0.unwrap();
            assert!(
                unix_s == shown_s || unix_s + 1 == shown_s,
                "{unix_s} s where the clock shows {shown_s} s"
            );
        }
        assert_eq!(clock.reads.get(), reads, "the clock was read once");
    }
}

/// A failed reading is not kept for good: the calls in the next 60 s return its error
/// without reading the clock, the first after them reads it again, and a reading that
/// succeeds is kept. Before, the first reading's error was the answer until reboot.
#[test]
fn a_failed_reading_is_tried_again_a_minute_later() {
    let clock = RunningClock::new(WHEN * NS_PER_S + 500_000_000);
    let wall = WallClock::new();
    clock.absent.set(true);
    let (unix_s, warned) = clock.unix_time_s(&wall, 0);
    assert_eq!(unix_s, Err(RtcError::Absent));
    assert_eq!(
        warned,
        [
            "no wall clock: no CMOS clock (its registers read 0xFF) (read again at a call 60 s or more later)"
        ]
    );
    let failed_at_ns = clock.now_ns.get();
    clock.absent.set(false);
    let reads = clock.reads.get();
    for now_ns in [failed_at_ns, failed_at_ns + RETRY_AFTER_NS - 1] {
        let (unix_s, warned) = clock.unix_time_s(&wall, now_ns);
        assert_eq!((unix_s, warned.len()), (Err(RtcError::Absent), 0));
    }
    assert_eq!(clock.reads.get(), reads, "not read again within the minute");
    let again_ns = failed_at_ns + RETRY_AFTER_NS;
    let (unix_s, warned) = clock.unix_time_s(&wall, again_ns);
    let read_ns = clock.now_ns.get();
    assert_eq!(
        unix_s,
        Ok((WHEN * NS_PER_S + 500_000_000 + read_ns) / NS_PER_S)
    );
    assert!(warned.is_empty());
    // Kept: the clock is not read again within 10 minutes, gone or not, and a check
    // that fails then leaves the answers counting on, with a warning.
    clock.absent.set(true);
    let reads = clock.reads.get();
    let within_ns = read_ns + CHECK_AFTER_NS - 1;
    assert_eq!(
        clock.unix_time_s(&wall, within_ns).0,
        unix_s.map(|s| s + 599)
    );
    assert_eq!(clock.reads.get(), reads);
    let later_ns = read_ns + 10 * RETRY_AFTER_NS;
    let (later_s, warned) = clock.unix_time_s(&wall, later_ns);
    assert_eq!(later_s, unix_s.map(|s| s + 600));
    assert!(clock.reads.get() > reads, "read again after 10 minutes");
    assert_eq!(
        warned,
        [
            "the wall clock goes on uncorrected: no CMOS clock (its registers read 0xFF) \
             (read again at a call 10 minutes or more later)"
        ]
    );
}

/// A monotonic clock whose measured rate is 0.1% off (the PIT's error; the HPET's is
/// 0.04%) has the wall clock read the CMOS clock again every 10 minutes: over 40 minutes
/// of calls every 0.1 s each answer is within the drift since the last reading (0.6 s)
/// of the CMOS clock's second or the one before, and none is less than one before it.
/// Before, the clock was read once: 0.1% fast, it was 2 s ahead at 2,000 s (and 86 s a
/// day); 0.1% slow, 2 s behind and more.
#[test]
fn a_wall_clock_on_a_monotonic_clock_off_by_0_1_percent_keeps_to_the_cmos_clock() {
    let boot_parts_ns = (0..10).map(|tenth| tenth * 100_000_000 + 7);
    for (monotonic_ppm, boot_part_ns) in boot_parts_ns.flat_map(|ns| [(1000, ns), (-1000, ns)]) {
        let mut clock = RunningClock::new(WHEN * NS_PER_S + boot_part_ns);
        clock.monotonic_ppm = monotonic_ppm;
        let wall = WallClock::new();
        let mut last_s = 0;
        let mut warned = Vec::new();
        for now_ns in (0..2_400 * NS_PER_S).step_by(100_000_007) {
            let (unix_s, warnings) = clock.unix_time_s(&wall, now_ns);
            warned.extend(warnings);
            let (unix_s, now_ns) = (unix_s.unwrap(), clock.now_ns.get());
            let shown_s = clock.shown_s(now_ns);
            let ppm = monotonic_ppm;
            assert!(
                unix_s + 2 >= shown_s && unix_s <= shown_s + 1,
                "{ppm} ppm: {unix_s} s where the clock shows {shown_s} s at {now_ns} ns"
            );
            assert!(unix_s >= last_s, "{ppm} ppm: {unix_s} s after {last_s} s");
            last_s = unix_s;
        }
        assert!(warned.is_empty(), "{warned:?}");
    }
}

/// A clock stuck in its update is given up on after 10 ms of the monotonic clock, five
/// times the longest update: the call that reads it (a serving core's, once a minute)
/// waited a million reads before, 2 s here at 2 us a read.
#[test]
fn a_clock_stuck_in_its_update_costs_its_reader_10_ms() {
    let clock = RunningClock::new(WHEN * NS_PER_S);
    clock.stuck_in_update.set(true);
    let (unix_s, warned) = clock.unix_time_s(&WallClock::new(), 0);
    assert_eq!(unix_s, Err(RtcError::StuckInUpdate));
    assert_eq!(warned.len(), 1);
    let spent_ns = clock.now_ns.get();
    assert!(
        (UPDATE_WAIT_NS..UPDATE_WAIT_NS + 10 * READ_NS).contains(&spent_ns),
        "{spent_ns} ns"
    );
}

/// A reading that shows the clock was ahead places it back, but no answer goes back:
/// they hold at the last second given until the corrected count passes it (a core may
/// have answered from the old count while another read the clock); one that shows it
/// behind moves it on at once.
#[test]
fn a_reading_that_puts_the_clock_back_holds_the_last_second_given() {
    let boot = BootTime::by_second_start(WHEN, 0);
    let correction = Correction::new();
    let now = Cell::new(600_500_000_000);
    let now_ns = || now.get();
    assert_eq!(correction.unix_time_s(boot, now.get()), WHEN + 600);
    // The CMOS clock shows a second less there: the count ran 0.5 s or more fast.
    correction.place(boot, WHEN + 599, &now_ns).unwrap();
    for (at_ns, answer) in [
        (600_500_000_000, WHEN + 600),
        (602_499_999_999, WHEN + 600),
        (602_500_000_000, WHEN + 601),
    ] {
        now.set(at_ns);
        assert_eq!(
            correction.unix_time_s(boot, now.get()),
            answer,
            "at {at_ns} ns"
        );
    }
    correction.place(boot, WHEN + 603, &now_ns).unwrap();
    assert_eq!(correction.unix_time_s(boot, now.get()), WHEN + 603);
}

/// A CMOS clock set back or ahead an hour (by a BMC, another system; a dead battery's
/// reset to 2000) is no drift of the count: the check at minute 10 warns of it once and
/// the answers count on from the first reading, the later checks still correcting the
/// count's drift (0.1% either way here) against the clock as set, the answer within a
/// second more of it than without a set (the step taken holds the drift before it and
/// its reading's part of a second). Before, a clock set
/// back held every answer at one second for the hour (or for the decades back to
/// 2000), and one set ahead moved the answers on by the hour.
#[test]
fn a_cmos_clock_set_back_or_ahead_is_warned_of_and_the_count_goes_on() {
    const HOUR_NS: i64 = 3_600_000_000_000;
    const TO_2000_NS: i64 = -((WHEN - 946_684_800) * NS_PER_S).cast_signed();
    for (set_ns, monotonic_ppm) in [HOUR_NS, -HOUR_NS, TO_2000_NS]
        .into_iter()
        .flat_map(|set_ns| [(set_ns, 0), (set_ns, 1000), (set_ns, -1000)])
    {
        let mut clock = RunningClock::new(WHEN * NS_PER_S + 300_000_000);
        clock.monotonic_ppm = monotonic_ppm;
        let wall = WallClock::new();
        let (mut last_s, mut warned) = (0, Vec::new());
        for now_ns in (0..2_400 * NS_PER_S).step_by(100_000_007) {
            if now_ns >= 570 * NS_PER_S {
                clock.set_ns.set(set_ns);
            }
            let (unix_s, warnings) = clock.unix_time_s(&wall, now_ns);
            warned.extend(warnings);
            let (unix_s, now_ns) = (unix_s.unwrap(), clock.now_ns.get());
            // The clock's second as it would show unset.
            let unset_ns = clock
                .wall_ns(now_ns)
                .checked_add_signed(-clock.set_ns.get());
            let unset_s = unset_ns.unwrap() / NS_PER_S;
            let case = format!("set by {set_ns} ns, {monotonic_ppm} ppm");
            assert!(
                unix_s + 2 >= unset_s && unix_s <= unset_s + 2,
                "{case}: {unix_s} s where the clock unset shows {unset_s} s at {now_ns} ns"
            );
            assert!(unix_s >= last_s, "{case}: {unix_s} s after {last_s} s");
            last_s = unix_s;
        }
        let way = if set_ns < 0 { "back" } else { "ahead" };
        assert_eq!(warned.len(), 1, "set by {set_ns} ns: {warned:?}");
        assert!(
            warned[0].starts_with(&format!("the CMOS clock was set {way} by about ")),
            "{warned:?}"
        );
    }
}

/// The sequence lock under two threads on one monotonic clock: one moves it on 10
/// minutes and asks the time, and so reads the CMOS clock again at nearly every call (the
/// CMOS clock 0.1% slower, so each reading puts the count back some 0.6 s and the floor
/// holds the answers); the other moves it on 1 us at a time and asks the time meanwhile
/// (reading the CMOS clock itself when it finds a check due first; the first thread
/// waits for that reading to end before it moves the clock on again). Neither thread's
/// answers ever go back (an answer made of one correction's shift and an earlier one's
/// floor, a torn read, would), and each lies between the CMOS clock's second, or the two
/// before it, at the call's start and the one after its second at the end.
#[test]
fn the_wall_clock_read_while_another_thread_reads_the_cmos_clock_never_goes_back() {
    use std::sync::atomic::AtomicBool;
    const WALL_AT_BOOT_NS: u64 = WHEN * NS_PER_S + 300_000_000;
    const REREADS: u32 = 20_000;
    let monotonic_ns = AtomicU64::new(0);
    let rereading = AtomicBool::new(true);
    let wall = WallClock::new();
    // The CMOS clock's second at monotonic time `now_ns` (0.1% slower).
    let cmos_s = |now_ns: u64| (WALL_AT_BOOT_NS + now_ns - now_ns / 1000) / NS_PER_S;
    let now = || monotonic_ns.load(Ordering::Relaxed);
    let calls = |advance_ns: u64, rounds: Option<u32>| {
        let mut cmos = |index: u8| {
            let time = DateTime::from_unix(cmos_s(now()));
            match index {
                0x00 => time.second,
                0x02 => time.minute,
                0x04 => time.hour,
                0x07 => time.day,
                0x08 => time.month,
                0x09 => (time.year % 100) as u8,
                0x0B => BINARY | HOURS_24,
                _ => 0,
            }
        };
        let (mut last_s, mut round) = (0, 0);
        while rounds.map_or(rereading.load(Ordering::Relaxed), |rounds| round < rounds) {
            // The other thread's reading of the CMOS clock ends before the clock moves 10
            // minutes (it would take its second for the clock set).
            while rounds.is_some() && wall.check_at_ns.load(Ordering::Relaxed) == u64::MAX {
                std::hint::spin_loop();
            }
            let before_ns = monotonic_ns.fetch_add(advance_ns, Ordering::Relaxed) + advance_ns;
            let mut warn = |why: fmt::Arguments| panic!("warned: {why}");
            let unix_s = wall.unix_time_s(&mut cmos, None, &now, &mut warn).unwrap();
            let (least_s, most_s) = (cmos_s(before_ns), cmos_s(now()) + 1);
            assert!(unix_s >= last_s, "{unix_s} s after {last_s} s");
            assert!(
                unix_s + 2 >= least_s && unix_s <= most_s,
                "{unix_s} s where the clock showed {least_s} s to {most_s} s"
            );
            (last_s, round) = (unix_s, round + 1);
        }
        round
    };
    let reads = std::thread::scope(|scope| {
        let reader = scope.spawn(|| calls(1_000, None));
        calls(CHECK_AFTER_NS, Some(REREADS));
        rereading.store(false, Ordering::Relaxed);
        reader.join().unwrap()
    });
    assert!(reads > 0, "no reads");
}

/// A call between checks reads the monotonic clock once (kv asks the time every poll on
/// every core, and the kernel's read is an LFENCE and an RDTSC); it read it twice, for
/// whether a check was due and again for the answer.
#[test]
fn a_call_between_checks_reads_the_monotonic_clock_once() {
    let clock = RunningClock::new(WHEN * NS_PER_S);
    let wall = WallClock::new();
    clock.unix_time_s(&wall, 0).0.unwrap();
    let reads = Cell::new(0);
    let now = || {
        reads.set(reads.get() + 1);
        NS_PER_S
    };
    let unix_s = wall.unix_time_s(&mut |i| clock.read(i), None, &now, &mut |_| {});
    assert_eq!((unix_s, reads.get()), (Ok(WHEN), 1));
}
