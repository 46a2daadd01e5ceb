//! Time: the TSC as the monotonic clock (frequency from CPUID, or calibrated against the
//! PIT or the HPET), microsecond delays, and per-core deadlines on the local APIC timer
//! (TSC-deadline mode where the CPU has it, else one-shot mode calibrated against the TSC).

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::arch::apic;
use crate::arch::cpu::{self, inb, outb, rdtsc, rdtsc_ordered};
use crate::arch::percpu::{self, MAX_CORES};
use rexo_cpuid::{MIN_TSC_HZ, TimingLeaves, TscLeaf};
use rexo_pit::counter::{CounterReading, CounterWindow};

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds per TSC tick, as a 32.32 fixed-point factor.
static NS_PER_TICK_FP: AtomicU64 = AtomicU64::new(0);
static APIC_TIMER_HZ: AtomicU64 = AtomicU64::new(0);
static TSC_DEADLINE: AtomicBool = AtomicBool::new(false);

/// Where the TSC frequency came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TscSource {
    /// CPUID, exactly (through the leaf named).
    Cpuid(TscLeaf),
    /// Measured against the PIT.
    Pit,
    /// Measured against the HPET.
    Hpet,
    /// CPUID leaf 0x16's base frequency: nominal, taken only when nothing measured the rate.
    CpuidBase,
}

/// Why the TSC frequency could not be found.
#[derive(Clone, Copy, Debug)]
pub enum TimeError {
    /// Neither CPUID nor a reference timer (PIT, HPET) gave a frequency.
    NoReferenceTimer,
}

fn set_tsc_hz(hz: u64) {
    TSC_HZ.store(hz, Ordering::Relaxed);
    NS_PER_TICK_FP.store(
        ((1_000_000_000u128 << 32) / u128::from(hz)) as u64,
        Ordering::Relaxed,
    );
}

/// CPUID's leaves about the TSC's rate (the hypervisor's 0x40000010 only when the CPU runs
/// under one, `hypervisor`): [`TimingLeaves::exact_tsc_hz`] says when no measurement is
/// needed.
pub fn cpuid_timing(hypervisor: bool) -> TimingLeaves {
    let max = cpu::cpuid(0, 0).eax;
    let leaf = |n| (max >= n).then(|| cpu::cpuid(n, 0));
    let hypervisor_leaf = hypervisor && cpu::cpuid(0x4000_0000, 0).eax >= 0x4000_0010;
    TimingLeaves {
        tsc_crystal: leaf(0x15).map(|l| [l.eax, l.ebx, l.ecx]),
        base_mhz: leaf(0x16).map(|l| l.eax),
        hypervisor_tsc_khz: hypervisor_leaf.then(|| cpu::cpuid(0x4000_0010, 0).eax),
    }
}

/// The PIT's channel 0 count, latched and read between two reads of the TSC (works
/// without the port-0x61 gate, which `microvm` lacks). Both are ordered reads
/// ([`cpu::rdtsc_ordered`]), as the HPET's are: a plain RDTSC after the count's read
/// could run before that read completes, and the bracket would not hold the count.
pub(crate) fn pit_reading() -> rexo_pit::Reading {
    let tsc_before = rdtsc_ordered();
    outb(0x43, 0x00); // latch channel 0
    let count = u16::from_le_bytes([inb(0x40), inb(0x40)]);
    rexo_pit::Reading {
        tsc_before,
        count,
        tsc_after: rdtsc_ordered(),
    }
}

/// A TSC measurement against the PIT that runs while the kernel does other boot work:
/// [`PitWindow::start`] reads the count and the TSC, [`PitWindow::sample`] adds the
/// counts since the last reading, [`PitWindow::finish`] reads them again (waiting only if
/// the window is still shorter than asked). Channel 0 counts down at 1.193182 MHz and
/// turns every 65,536 counts (55 ms); the TSC ticks between two readings tell how often
/// ([`rexo_pit::Window`]), so once the first readings have counted the rate a window
/// spans boot steps of any length.
pub struct PitWindow(rexo_pit::Window);

/// Reads of a reference timer after which a window gives up: far more than a 1 ms window
/// takes, so a counter still short of it stands still (no PIT, a broken HPET).
const WINDOW_READS: u32 = 200_000;

impl PitWindow {
    /// Starts channel 0 counting turns of 65,536 and reads where it and the TSC stand.
    pub fn start() -> Self {
        outb(0x43, 0b0011_0100); // channel 0, lobyte/hibyte, mode 2, binary
        outb(0x40, 0); // a count of 0 stands for 65,536
        outb(0x40, 0);
        Self(rexo_pit::Window::new(pit_reading()))
    }

    /// Reads the PIT and adds the counts since the last reading (if the TSC ticks since
    /// cannot tell how often the count turned, the window starts afresh here).
    pub fn sample(&mut self) {
        self.0.add(pit_reading());
    }

    /// The TSC frequency over a window of at least `micros` whose ends were read quickly
    /// enough to time it to 1% ([`rexo_pit::Window::tsc_hz`]). `None` if the PIT's count
    /// does not move (no PIT).
    pub(crate) fn finish(mut self, micros: u64) -> Option<u64> {
        let wanted = rexo_pit::PIT_HZ * micros / 1_000_000;
        (0..WINDOW_READS).find_map(|_| {
            self.sample();
            self.0.tsc_hz().filter(|_| self.0.counted() >= wanted)
        })
    }
}

/// A TSC measurement against the HPET's main counter (its period, in femtoseconds, is in
/// its capabilities register), opened once ACPI has named the HPET and read when the
/// boot needs the TSC's rate, so the boot goes on meanwhile instead of waiting for it.
pub struct HpetWindow {
    /// The main counter's register.
    counter: u64,
    window: CounterWindow,
}

impl HpetWindow {
    /// Enables the counter of the HPET at `base` and notes where it and the TSC stand;
    /// `None` if its period is implausible (the specification's limit is 10^8 fs, and
    /// under 10^5 fs, above 10 GHz, is no real counter) or its registers do not answer.
    pub fn start(base: u64) -> Option<Self> {
        use crate::mem::phys::{mmio_read64, mmio_write64};
        let capabilities = mmio_read64(base).ok()?;
        let period_fs = capabilities >> 32;
        // That read found base + 8 inside the identity map (below 2^47): these cannot wrap.
        let (config, counter) = (base + 0x10, base + 0xF0);
        if !(100_000..=100_000_000).contains(&period_fs) {
            return None;
        }
        mmio_write64(config, mmio_read64(config).ok()? | 1).ok()?; // enable the counter
        // COUNT_SIZE_CAP (bit 13) clear: a 32-bit counter, which wraps within minutes.
        let mask = u64::MAX >> if capabilities & 1 << 13 != 0 { 0 } else { 32 };
        let first = CounterReading::take(rdtsc_ordered, || mmio_read64(counter).ok())?;
        let window = CounterWindow::new(first, period_fs, mask);
        Some(Self { counter, window })
    }

    /// The TSC frequency over a window of at least `micros` whose ends were read quickly
    /// enough to time it to 1% ([`CounterWindow::tsc_hz`]; each reading of the counter
    /// between two reads of the TSC; the window started again at a quick reading when its
    /// first was slow), waiting only if the window is still shorter. `None` if the
    /// counter does not move (or its register does not answer), or no reading was quick
    /// enough: then the PIT is the reference.
    pub(crate) fn finish(mut self, micros: u64) -> Option<u64> {
        let count = || crate::mem::phys::mmio_read64(self.counter).ok();
        let mut taken = (0..WINDOW_READS).map_while(|_| CounterReading::take(rdtsc_ordered, count));
        taken.find_map(|reading| self.window.tsc_hz(reading, micros))
    }
}

/// Sets the TSC frequency: CPUID's exact rate (`cpuid`, [`TimingLeaves::exact_tsc_hz`])
/// first; else the HPET window (its 10-100 MHz counter is read as one register, the most
/// precise reference); else the PIT window started at boot; else, nothing having measured
/// it, CPUID leaf 0x16's nominal base frequency (`base_hz`). Each window is at least 1 ms
/// long, and has usually run that long by now.
pub fn init_tsc(
    cpuid: Option<(u64, TscLeaf)>,
    pit: PitWindow,
    hpet: Option<HpetWindow>,
    base_hz: Option<u64>,
) -> Result<TscSource, TimeError> {
    const WINDOW_US: u64 = 1000;
    // A rate under 1 MHz is a broken reference, not a clock: the next reference is tried.
    let plausible = |rate: Option<(u64, TscSource)>| rate.filter(|&(hz, _)| hz >= MIN_TSC_HZ);
    let (hz, source) = plausible(cpuid.map(|(hz, leaf)| (hz, TscSource::Cpuid(leaf))))
        .or_else(|| plausible(Some((hpet?.finish(WINDOW_US)?, TscSource::Hpet))))
        .or_else(|| plausible(Some((pit.finish(WINDOW_US)?, TscSource::Pit))))
        .or_else(|| plausible(Some((base_hz?, TscSource::CpuidBase))))
        .ok_or(TimeError::NoReferenceTimer)?;
    set_tsc_hz(hz);
    Ok(source)
}

/// The TSC frequency in Hz (0 before [`init_tsc`]).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Nanoseconds since the kernel's first instruction: the monotonic clock, read after every
/// earlier load ([`cpu::rdtsc_ordered`]), so never earlier than a time another core read
/// before setting a flag this core has since read.
pub fn now_ns() -> u64 {
    ticks_to_ns(rdtsc_ordered().saturating_sub(crate::arch::entry::boot_tsc()))
}

/// Nanoseconds in `ticks` TSC ticks.
pub fn ticks_to_ns(ticks: u64) -> u64 {
    ((u128::from(ticks) * u128::from(NS_PER_TICK_FP.load(Ordering::Relaxed))) >> 32) as u64
}

/// Microseconds since the kernel's first instruction.
pub fn micros_since_boot() -> u64 {
    now_ns() / 1000
}

/// The TSC value `micros` from now (saturating: a delay past the TSC's range never ends).
pub fn tsc_after_micros(micros: u64) -> u64 {
    tsc_at_ns(now_ns().saturating_add(micros.saturating_mul(1000)))
}

/// The TSC value at monotonic time `ns`: the first tick [`now_ns`] reads as `ns` or later
/// (the inverse of [`ticks_to_ns`], rounded up, so that a deadline never fires before its
/// time); `u64::MAX` past the TSC's range, so that a far deadline never wraps into the past.
/// Before the TSC's rate is known, the boot's first tick (every deadline is due).
pub fn tsc_at_ns(ns: u64) -> u64 {
    let factor = u128::from(NS_PER_TICK_FP.load(Ordering::Relaxed));
    let ticks = ((u128::from(ns) << 32) + factor.saturating_sub(1)).checked_div(factor);
    let ticks = ticks.map_or(0, |ticks| u64::try_from(ticks).unwrap_or(u64::MAX));
    crate::arch::entry::boot_tsc().saturating_add(ticks)
}

/// The CMOS clock, read at the first [`unix_time_s`] (after a failed reading, again at the
/// first call a minute later), then every 10 minutes to correct the count's drift.
static WALL_CLOCK: rexo_rtc::WallClock = rexo_rtc::WallClock::new();

/// Seconds since 1970-01-01 UTC: the CMOS clock as read, plus the monotonic clock since
/// (its second or the one before, give or take 10 minutes' drift, [`rexo_rtc::WallClock`]);
/// the reason when the machine has no readable clock.
pub fn unix_time_s() -> Result<u64, rexo_rtc::RtcError> {
    let century = crate::platform::acpi().and_then(|a| a.fadt.as_ref()?.century);
    let cmos = &mut |i| (outb(0x70, i), inb(0x71)).1;
    WALL_CLOCK.unix_time_s(cmos, century, &now_ns, &mut |why| log::warn!("time: {why}"))
}

/// Busy-waits `micros` microseconds.
pub fn delay_us(micros: u64) {
    let end = tsc_after_micros(micros);
    while rdtsc() < end {
        cpu::pause();
    }
}

/// Where the one-shot APIC timer's calibration started: (TSC, 0 = not started).
static APIC_TIMER_START_TSC: AtomicU64 = AtomicU64::new(0);

/// Prepares the local APIC timer: TSC-deadline mode if the CPU has it, else starts the
/// timer counting down so that its rate can be measured against the TSC later, over the
/// rest of the boot, without waiting now. Called once, on the boot core.
pub fn init_apic_timer(tsc_deadline: bool) {
    TSC_DEADLINE.store(tsc_deadline, Ordering::Relaxed);
    if tsc_deadline {
        apic::enter_tsc_deadline_mode();
    } else {
        apic::start_free_running();
        APIC_TIMER_START_TSC.store(rdtsc(), Ordering::Relaxed);
    }
}

/// The one-shot timer's rate, measured on first use (the count started at
/// [`init_apic_timer`]; a measurement window under 100 us is lengthened by waiting).
fn apic_timer_hz() -> u64 {
    let known = APIC_TIMER_HZ.load(Ordering::Relaxed);
    if known != 0 {
        return known;
    }
    let mut start = APIC_TIMER_START_TSC.load(Ordering::Relaxed);
    let minimum = tsc_hz() / 10_000; // 100 us of TSC ticks
    while rdtsc() - start < minimum {
        cpu::pause();
    }
    let (mut elapsed, mut remaining) = (rdtsc() - start, apic::timer_current());
    if remaining == 0 {
        // The count ran out (more than 2^32 ticks went by): measure about 200 us afresh,
        // by the TSC (a vCPU descheduled in the wait makes it longer).
        apic::start_free_running();
        start = rdtsc();
        delay_us(200);
        (elapsed, remaining) = (rdtsc() - start, apic::timer_current());
    }
    let hz = u128::from(u32::MAX - remaining)
        .saturating_mul(u128::from(tsc_hz()))
        .checked_div(u128::from(elapsed))
        .unwrap_or(0) as u64;
    APIC_TIMER_HZ.store(hz, Ordering::Relaxed);
    hz
}

/// Whether deadlines use the TSC-deadline mode.
pub fn uses_tsc_deadline() -> bool {
    TSC_DEADLINE.load(Ordering::Relaxed)
}

/// Timer interrupts taken by each core (read by the kernel tests).
pub(crate) static TIMER_INTERRUPTS: [AtomicU32; MAX_CORES] =
    [const { AtomicU32::new(0) }; MAX_CORES];
/// When each core last took a timer interrupt.
static LAST_TIMER_NS: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];

/// The kernel's own next deadline (a revocation deadline, or a retry of its enforcement),
/// which every arming of a core's timer also covers (`u64::MAX`: none).
static KERNEL_DEADLINE: AtomicU64 = AtomicU64::new(u64::MAX);

/// Sets the kernel's next deadline (`u64::MAX`: none) and arms this core's timer for it.
pub fn set_kernel_deadline(deadline_ns: u64) {
    KERNEL_DEADLINE.store(deadline_ns, Ordering::Relaxed);
    if deadline_ns != u64::MAX {
        arm_deadline(deadline_ns);
    }
}

/// The kernel's next deadline (`u64::MAX`: none).
pub fn kernel_deadline() -> u64 {
    KERNEL_DEADLINE.load(Ordering::Relaxed)
}

/// Per core, the deadline of an app's timer that has not fired (`u64::MAX`: none).
static APP_TIMER: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(u64::MAX) }; MAX_CORES];

/// Sets this core's app timer to `deadline_ns` and arms the core for it.
pub fn set_app_timer(deadline_ns: u64) {
    APP_TIMER[percpu::core_index()].store(deadline_ns, Ordering::Release);
    arm_deadline(deadline_ns);
}

/// Cancels core `core`'s app timer if it is still `deadline_ns` (not fired).
pub fn cancel_app_timer(core: usize, deadline_ns: u64) {
    let _ = APP_TIMER[core].compare_exchange(
        deadline_ns,
        u64::MAX,
        Ordering::AcqRel,
        Ordering::Relaxed,
    );
}

/// Per core: the period its timer also fires at (`u64::MAX`: none), while BareMetal code
/// runs there, which waits with `hlt` for an interrupt, as BareMetal's timer and devices
/// give.
static TICK_NS: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(u64::MAX) }; MAX_CORES];

/// Has this core's timer fire every `period_ns` from now on ([`TICK_NS`]; `u64::MAX`:
/// stops it, the timer armed for the core's other deadlines alone).
pub fn set_tick(period_ns: u64) {
    TICK_NS[percpu::core_index()].store(period_ns, Ordering::Relaxed);
    arm_deadline(u64::MAX);
}

/// Arms this core's timer to interrupt at monotonic time `deadline_ns` (at once if that
/// has passed), or at the kernel's next deadline, the core's app timer or its next tick
/// ([`set_tick`], a period from now) if one comes first: no arming puts off a deadline,
/// and the tick comes at most a period after the last arming.
pub fn arm_deadline(deadline_ns: u64) {
    let (core, now) = (percpu::core_index(), now_ns());
    let deadline_ns = deadline_ns
        .min(kernel_deadline())
        .min(APP_TIMER[core].load(Ordering::Relaxed))
        .min(now.saturating_add(TICK_NS[core].load(Ordering::Relaxed)));
    if uses_tsc_deadline() {
        apic::arm_tsc_deadline(tsc_at_ns(deadline_ns).max(1));
    } else {
        let wait_ns = deadline_ns.saturating_sub(now).max(1);
        let ticks = u128::from(wait_ns) * u128::from(apic_timer_hz()) / 1_000_000_000;
        apic::arm_one_shot(ticks.clamp(1, u128::from(u32::MAX)) as u32);
    }
}

/// Per core: a wake-up IPI or device wake message came since the core's last nap.
static WAKE_PENDING: [AtomicBool; MAX_CORES] = [const { AtomicBool::new(false) }; MAX_CORES];

/// Called by the interrupt dispatcher for the wake vector (IPIs and devices' MSI-X
/// wake messages): remembered, so that a nap that begins after it ends at once.
pub fn on_wake_interrupt() {
    WAKE_PENDING[percpu::core_index()].store(true, Ordering::Relaxed);
}

/// Whether a wake came to core `core` since its last nap (forgotten now).
pub fn take_wake(core: usize) -> bool {
    WAKE_PENDING[core].swap(false, Ordering::Relaxed)
}

/// A nap (an app's `Kernel::sleep_ns`; the boot core's wait for starting cores): halts
/// until `deadline_ns` or an interrupt, but not at all when a wake came since the last
/// nap: a device's message, or a core's sign of life, that arrived between the caller's
/// last look and this call is not lost. The interrupt that ends the halt is taken even
/// with interrupts off; they are as the caller had them when it returns.
pub fn nap_until(deadline_ns: u64) {
    cpu::without_interrupts(|| {
        if !take_wake(percpu::core_index()) && now_ns() < deadline_ns {
            arm_deadline(deadline_ns);
            cpu::enable_interrupts_and_halt();
            cpu::disable_interrupts();
        }
        WAKE_PENDING[percpu::core_index()].store(false, Ordering::Relaxed);
    });
}

/// Called by the interrupt dispatcher for the timer vector.
/// An app timer that is due fires (its slot empties); the core's timer is armed again for
/// what it still covers (the kernel's deadline, a pending app timer, the next tick).
pub fn on_timer_interrupt() {
    let (core, now) = (percpu::core_index(), now_ns());
    LAST_TIMER_NS[core].store(now, Ordering::Relaxed);
    TIMER_INTERRUPTS[core].fetch_add(1, Ordering::Relaxed);
    let app = APP_TIMER[core].load(Ordering::Relaxed);
    if app <= now {
        cancel_app_timer(core, app);
    }
    // A kernel deadline that has passed is the `caps` handler's (which clears or moves it,
    // arming nothing when none is left): the app timer and the tick must be armed all the
    // same; with none of them pending the timer stays unarmed.
    let due = [kernel_deadline(), APP_TIMER[core].load(Ordering::Relaxed)];
    let ticking = TICK_NS[core].load(Ordering::Relaxed) < u64::MAX;
    if ticking || due.into_iter().any(|d| now < d && d < u64::MAX) {
        arm_deadline(u64::MAX);
    }
}

/// When core `core` last took a timer interrupt (monotonic ns; 0: never).
pub fn last_timer_interrupt_ns(core: usize) -> u64 {
    LAST_TIMER_NS[core].load(Ordering::Relaxed)
}
