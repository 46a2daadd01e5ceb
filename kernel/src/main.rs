//! The Rexo kernel: boots on x86-64 through PVH or Multiboot2, brings up every core into a
//! run-to-completion work loop, and runs the app named on the command line (or the kernel
//! tests). See `docs/boot.md` for the boot path and `docs/kernel-interface.md` for what
//! tools may rely on.

#![no_std]
#![no_main]

extern crate alloc;

mod apps;
mod arch;
mod baremetal;
mod bench;
mod boot;
mod c_abi;
mod caps;
mod console;
mod crash;
mod devices;
mod klog;
mod ktest;
mod mem;
mod platform;
mod power;
mod sched;
mod tests;
mod time;

use core::sync::atomic::{AtomicUsize, Ordering};

use arch::smp;
use arch::{apic, cpu, gdt, paging, percpu};
use rexo_cmdline::Options;
use rexo_memmap::MIN_USABLE_MIB;

/// Bytes of each core's kernel stack.
const STACK_BYTES: u64 = 128 * 1024;
/// Bytes of each interrupt (IST) stack.
const IST_BYTES: u64 = 16 * 1024;
/// How long the boot core waits for the other cores' signs of life.
const CORE_START_TIMEOUT_US: u64 = 2_000_000;

/// Cores the boot core planned to start (tickets at or above this halt at once).
pub(crate) static PLANNED_CORES: AtomicUsize = AtomicUsize::new(1);
/// How many cores run the work loop: 1 until the others have started.
static CORES: AtomicUsize = AtomicUsize::new(1);
/// The core index `smp.stall=` stops before its sign of life (`usize::MAX`: none).
static STALLED_CORE: AtomicUsize = AtomicUsize::new(usize::MAX);

/// How many cores run the work loop (core indices `0..smp_cores()`).
pub fn smp_cores() -> usize {
    CORES.load(Ordering::Acquire)
}

/// What the boot core learnt before it moved to its guarded stack.
struct BootState {
    options: Options<'static>,
    usable_bytes: u64,
    /// What the boot loader handed over, and the command line kept from it.
    boot: rexo_bootinfo::BootInfo<'static>,
    cmdline: &'static str,
    /// How the TSC's rate was found.
    tsc_source: time::TscSource,
    /// The other cores, started before the boot core's last steps (`None`: no MADT, or
    /// no other core to start).
    starting: Option<smp::Starting>,
}

static BOOT_STATE: spin::Once<BootState> = spin::Once::new();

/// The apps' fixed IPv4 configuration from the command line (`ip=`); `None`: DHCP.
pub fn ipv4_config() -> Option<rexo_cmdline::Ipv4Config> {
    BOOT_STATE.get().and_then(|state| state.options.ip)
}

/// The boot modules (none before the boot core's stack switch).
pub fn boot_modules() -> &'static [rexo_bootinfo::Module<'static>] {
    BOOT_STATE.get().map_or(&[], |state| state.boot.modules())
}

/// Stops the boot with a message (exit status "failure" under QEMU).
fn fatal(what: core::fmt::Arguments<'_>) -> ! {
    kprintln!("rexo: error: {what}");
    power::exit_failure()
}

/// Stops the boot because `name` (where: `context`) names no app in this image, and lists
/// the apps it has.
fn no_such_app(context: core::fmt::Arguments<'_>, name: &str) -> ! {
    kprintln!("rexo: error: {context}no app called '{name}' in this image; the apps are:");
    let width = apps::all().map(|app| app.name.len()).max().unwrap_or(0);
    for app in apps::all() {
        kprintln!("  {:<width$} {}", app.name, app.about);
    }
    power::exit_failure()
}

/// Entered from the boot trampoline in long mode, on the boot stack, with the boot
/// protocol, the physical address of its information and (Multiboot2) the magic value.
extern "C" fn kernel_main(protocol: u32, info: u32, magic: u32) -> ! {
    percpu::install(0, apic::id_from_cpuid());
    // The PIT measures the TSC while the boot goes on (no busy wait for it).
    let mut pit_window = time::PitWindow::start();
    console::serial::init();
    klog::init();

    let boot = boot::read(protocol, info, magic).unwrap_or_else(|e| fatal(format_args!("{e}")));
    let cmdline = boot::keep_cmdline(boot.cmdline).unwrap_or_else(|e| fatal(format_args!("{e}")));
    let options = rexo_cmdline::parse(cmdline).unwrap_or_else(|e| fatal(format_args!("{e}")));
    klog::set_level(options.log);
    if options.test.is_none() && apps::find(options.app).is_none() {
        no_such_app(format_args!(""), options.app);
    }

    let features = cpu::features();
    // Memory: the map first (the HPET's and APICs' register checks below need it to tell
    // RAM from devices), then what must never be handed out, the allocator, the page tables.
    let map =
        boot::memory_map(&boot, features.phys_bits).unwrap_or_else(|e| fatal(format_args!("{e}")));
    let acpi = platform::init_acpi(boot.rsdp, map);
    // Unless CPUID gives the TSC's rate exactly, the HPET measures it while the memory is
    // set up, as the PIT does since entry (read here too: the counts since entry tell the
    // turns its count makes while the memory is set up).
    let timing = time::cpuid_timing(features.hypervisor);
    let cpuid_rate = timing.exact_tsc_hz(cpu::signature);
    let hpet = acpi
        .and_then(|a| a.hpet.as_ref())
        .filter(|_| cpuid_rate.is_none());
    let hpet_window = hpet.and_then(|h| time::HpetWindow::start(h.base_address));
    pit_window.sample();

    for r in map.regions() {
        log::debug!("memory: [{:#014x}, {:#014x}) {:?}", r.start, r.end, r.kind);
    }
    let usable = map.usable_bytes();
    if usable < MIN_USABLE_MIB << 20 {
        fatal(format_args!(
            "Rexo needs at least {MIN_USABLE_MIB} MiB of usable RAM; this machine has {} KiB usable",
            usable >> 10
        ));
    }
    let mut reserved = rexo_memmap::ReservedRanges::new();
    reserved.push(0..1 << 20); // real-mode memory: BIOS data, AP trampoline
    // The kernel writes these: no boot data or module may lie there (GRUB under SeaBIOS
    // puts its information at 0x100050, just past BareMetal's 8 pointers at 0x100010).
    // Reserved ranges are widened to whole frames: the call table's page is kept too.
    reserved.push_written(smp::TRAMPOLINE..smp::TRAMPOLINE + 4096);
    reserved.push_written(baremetal::TABLE..baremetal::TABLE + 8 * baremetal::ENTRIES);
    reserved.push(mem::phys::kernel_image());
    boot.info_ranges()
        .iter()
        .cloned()
        .for_each(|r| reserved.push(r));
    for (i, module) in boot.modules().iter().enumerate() {
        let (start, end) = (module.start, module.end);
        if let Err(e) = map.check_module(start..end, mem::phys::kernel_image()) {
            fatal(format_args!(
                "boot module {i} at [{start:#x}, {end:#x}): {e}"
            ));
        }
        reserved.push(start..end);
    }
    if let Some(acpi) = acpi {
        platform::acpi_table_ranges(acpi).for_each(|r| reserved.push(r));
    }
    if let Some(problem) = reserved.problem() {
        fatal(format_args!("{problem}"));
    }
    log::debug!("memory: {} reserved ranges", reserved.as_slice().len());
    mem::frames::init(map, reserved.as_slice())
        .unwrap_or_else(|e| fatal(format_args!("frame allocator: {e}")));
    log::debug!(
        "memory: frame allocator ready, {} KiB free",
        mem::frames::free_bytes() >> 10
    );
    paging::init(map, features).unwrap_or_else(|e| fatal(format_args!("page tables: {e}")));
    paging::unmap_page(arch::entry::boot_stack_guard())
        .unwrap_or_else(|e| fatal(format_args!("boot stack guard: {e}")));
    log::debug!("memory: page tables installed");
    let heap = mem::heap::size_for(usable);
    mem::heap::init(heap).unwrap_or_else(|e| {
        fatal(format_args!(
            "Rexo needs more memory for its heap ({} KiB): {e}",
            heap >> 10
        ))
    });

    let rate = time::init_tsc(cpuid_rate, pit_window, hpet_window, timing.base_hz());
    let tsc_source = rate.unwrap_or_else(|_| {
        fatal(format_args!("no way to measure time: CPUID gives no TSC frequency and there is neither a PIT nor an HPET"))
    });

    // This core's stacks, tables, local APIC and timer come before the other cores start:
    // a core that crashes stops the others with an NMI, which this one must be able to
    // take. Then the other cores start while this one finishes (docs/boot.md).
    let stack = mem::stacks::allocate(STACK_BYTES)
        .unwrap_or_else(|e| fatal(format_args!("boot core stack: {e}")));
    let ist = mem::stacks::allocate_many::<{ gdt::IST_STACKS }>(IST_BYTES)
        .unwrap_or_else(|e| fatal(format_args!("boot core interrupt stacks: {e}")));
    percpu::current().set_stacks(stack, &ist);
    arch::load_core_state(0);
    let local_apic = acpi.map_or(rexo_acpi::DEFAULT_LOCAL_APIC_ADDRESS, |a| {
        a.local_apic_address
    });
    apic::configure(features.x2apic, local_apic);
    apic::disable_legacy_pic();
    apic::init_local();
    let bsp_apic_id = apic::id();
    percpu::install(0, bsp_apic_id);
    time::init_apic_timer(features.tsc_deadline);
    if let Some(acpi) = acpi {
        let warn = |warning| log::warn!("acpi: {warning}");
        platform::io_apics(acpi).for_each(|io| io.mask_all().unwrap_or_else(warn));
    }
    STALLED_CORE.store(options.smp_stall.unwrap_or(usize::MAX), Ordering::Relaxed);
    let starting = start_other_cores(bsp_apic_id, options.cores);

    BOOT_STATE.call_once(|| BootState {
        options,
        usable_bytes: usable,
        boot,
        cmdline,
        tsc_source,
        starting,
    });
    cpu::switch_stack(stack.top, boot_core_on_its_stack)
}

/// The rest of the boot core's start, on its guarded stack.
extern "C" fn boot_core_on_its_stack() -> ! {
    let state = BOOT_STATE.get().expect("set before the stack switch");
    // Its log line waits for the boot report: no formatted text comes before the ready line.
    let framebuffer =
        (state.boot.framebuffer.as_ref()).map(|fb| (fb, console::framebuffer::init(fb)));
    let cores = await_other_cores(state.starting.as_ref());
    // A core that started before the framebuffer's pages were split may still hold the
    // large uncached translation (the LAPIC's 1 GiB device page, touched at every EOI)
    // beside the new 4 KiB write-combining ones: each core flushes its TLB once.
    if let Some((_, Ok((.., paging::Caching::WriteCombining)))) = framebuffer {
        paging::flush_every_core();
    }
    let ready = rexo_readyline::Ready {
        cores: cores as u32,
        mem_mib: state.usable_bytes >> 20,
        boot_us: time::micros_since_boot(),
    };
    console::write_str(ready.text().as_str());
    // Only apps use capabilities: the table is made once the machine is up.
    caps::init();
    c_abi::register();
    // Apps and kernel tests on the boot core run with interrupts on, as tasks in every
    // core's work loop do (a timer an app arms, a revocation deadline, must be able to
    // fire even on a machine with one core).
    cpu::enable_interrupts();
    log_boot_report(state);
    match framebuffer {
        Some((fb, Ok((columns, rows, caching)))) => {
            let (width, height, bpp) = (fb.width, fb.height, fb.bpp);
            log::info!(
                "console: framebuffer {width}x{height}x{bpp} ({columns}x{rows} text, {caching:?})"
            );
        }
        Some((_, Err(why))) => log::warn!("console: framebuffer not used: {why}"),
        None => {}
    }

    if let Some(filter) = state.options.test {
        ktest::run(filter, state.options.test_after);
    }
    if let Some(which) = state.options.bench {
        bench::run(which);
    }
    if let Some(kind) = state.options.crash {
        crash::provoke(kind);
    }
    if let Some(manifest) = state.options.apps {
        run_manifest(&manifest, cores);
    }
    let app = apps::find(state.options.app).expect("checked at boot");
    if let Err(error) = apps::run(app) {
        log::error!("app '{}' failed: {error}", app.name);
        power::exit_failure();
    }
    log::info!("app '{}' returned: powering off", app.name);
    let why = power::power_off();
    log::warn!("power: cannot power off ({why}): halting");
    power::exit_success()
}

/// Checks the boot manifest against the image and the running cores, runs its apps side
/// by side, and powers off (exit status "failure" if one of them failed).
fn run_manifest(manifest: &rexo_cmdline::Manifest<'_>, cores: usize) -> ! {
    if let Err(error) = manifest.check_cores(cores) {
        fatal(format_args!("{error}"));
    }
    if let Some(entry) = manifest.entries().find(|e| apps::find(e.name).is_none()) {
        no_such_app(
            format_args!("manifest entry `{}`: ", entry.text),
            entry.name,
        );
    }
    let failed = apps::run_manifest(manifest);
    if failed > 0 {
        log::error!("manifest: {failed} of {} apps failed", manifest.len());
        power::exit_failure();
    }
    log::info!("manifest: every app returned: powering off");
    let why = power::power_off();
    log::warn!("power: cannot power off ({why}): halting");
    power::exit_success()
}

/// Starts the application processors listed in the MADT, without waiting for them
/// ([`await_other_cores`]).
fn start_other_cores(bsp_apic_id: u32, limit: Option<usize>) -> Option<smp::Starting> {
    let Some(acpi) = platform::acpi() else {
        sched::init(1);
        return None;
    };
    // The other cores' APIC ids in MADT order, from slot 1 (slot 0: the boot core). An
    // id the ICR cannot hold, or the broadcast id, would send INIT to other cores.
    let (mut targets, mut present) = ([0u32; percpu::MAX_CORES], 1);
    for lapic in acpi.local_apics().iter().filter(|l| l.enabled) {
        if let Err(why) = rexo_acpi::ipi_destination(lapic.apic_id, apic::is_x2apic()) {
            log::warn!(
                "smp: core with APIC id {} not started: {why}",
                lapic.apic_id
            );
        } else if lapic.apic_id != bsp_apic_id {
            if let Some(slot) = targets.get_mut(present) {
                *slot = lapic.apic_id;
            }
            present += 1;
        }
    }
    let most = percpu::MAX_CORES;
    let planned = present.min(limit.unwrap_or(most).min(most));
    match limit {
        _ if present <= planned => {}
        Some(n) if n < most => {
            log::info!("smp: {present} cores present, using {planned} (cores={n})")
        }
        _ => log::warn!("smp: {present} cores present, Rexo supports {most}: using {planned}"),
    }
    sched::init(planned);
    if planned == 1 {
        return None; // no other core to start: no trampoline, nothing to wait for
    }
    // Every kernel stack first, then the interrupt stacks: before the ready line a starting
    // core writes only the top of its kernel stack, so the interrupt stacks (written at a
    // core's first interrupt) take the highest frames, and the boot writes no 2 MiB region
    // of guest RAM past those the loader wrote, each a host page fault under QEMU (with 8
    // cores, the last core's stack top was at 0x604000, past 6 MiB: docs/boot.md).
    let mut stacks = [percpu::StackBounds::default(); percpu::MAX_CORES];
    for (index, stack) in (1..planned).zip(&mut stacks[1..]) {
        *stack = mem::stacks::allocate(STACK_BYTES)
            .unwrap_or_else(|e| fatal(format_args!("core {index} stack: {e}")));
    }
    for (index, &stack) in stacks.iter().enumerate().take(planned).skip(1) {
        let ist = mem::stacks::allocate_many::<{ gdt::IST_STACKS }>(IST_BYTES)
            .unwrap_or_else(|e| fatal(format_args!("core {index} interrupt stacks: {e}")));
        percpu::core(index).set_stacks(stack, &ist);
    }
    PLANNED_CORES.store(planned, Ordering::Release);
    smp::prepare(&stacks.map(|s| s.top)[..planned], ap_entry);
    Some(smp::start_cores(
        &targets[1..planned],
        CORE_START_TIMEOUT_US,
    ))
}

/// Waits for the cores [`start_other_cores`] started; returns how many run the work loop.
fn await_other_cores(starting: Option<&smp::Starting>) -> usize {
    let Some(starting) = starting else {
        return 1;
    };
    let planned = PLANNED_CORES.load(Ordering::Acquire);
    let answered = starting.wait();
    while smp::running() < answered + 1 {
        cpu::pause();
    }
    // A core's index is its arrival ticket. One that stopped between its ticket and its
    // sign of life (`smp.stall=` tests it) leaves a hole: the cores are those before it,
    // any later one halts, and late arrivals halt too (the ready line's count is final).
    let first_missing = (1..=answered).find(|&i| !smp::alive(i));
    let cores = first_missing.unwrap_or(answered + 1);
    PLANNED_CORES.store(cores, Ordering::SeqCst);
    for late in (cores..planned).filter(|&i| smp::alive(i)) {
        log::warn!("smp: core {late} stopped, behind core {cores} that never started");
        let _ = sched::submit_to(late, || cpu::halt_forever());
    }
    CORES.store(cores, Ordering::Release);
    cores
}

/// Entered by each application processor from the trampoline, on its own stack, with
/// its ticket (= core index).
extern "C" fn ap_entry(ticket: u64) -> ! {
    smp::adopt_boot_core_tsc_adjust(); // before anything reads the clock
    let index = ticket as usize;
    // Its tables first (a ticket past the plan, which never exceeds MAX_CORES, parked in
    // the trampoline), so that a core halted here takes an NMI and halts again (a stray
    // one: a crash report's go only to the cores that gave their sign of life).
    percpu::install(index, apic::id_from_cpuid());
    arch::load_core_state(index);
    if index >= PLANNED_CORES.load(Ordering::Acquire)
        || index == STALLED_CORE.load(Ordering::Relaxed)
    {
        cpu::halt_forever();
    }
    apic::init_local();
    let apic_id = apic::id();
    percpu::install(index, apic_id);
    smp::mark_alive(index, apic_id);
    // Alive behind a hole the boot core found (not one of the cores), or after a crash
    // began, whose NMI went only to the cores alive then (`smp::nmi_other_cores`).
    if index >= PLANNED_CORES.load(Ordering::SeqCst) || console::crashing_core().is_some() {
        cpu::halt_forever();
    }
    sched::run(index)
}

/// Logs what the boot found. After the ready line: writing to the serial port is the
/// slowest thing a boot does (a VM exit per byte under a hypervisor), and under emulation
/// the first formatted text pays for translating `core::fmt` (docs/boot.md).
fn log_boot_report(state: &BootState) {
    let (boot, features, usable) = (&state.boot, cpu::features(), state.usable_bytes);
    let (loader, protocol, cmdline) = (boot.loader(), boot.protocol, state.cmdline);
    log::info!("rexo: booted by {loader} ({protocol:?}), command line '{cmdline}'");
    let (mhz, source) = (time::tsc_hz() / 1_000_000, state.tsc_source);
    log::info!("time: TSC {mhz} MHz ({source:?})");
    log::info!(
        "cpu: {} physical address bits, 1 GiB pages {}, x2APIC {}, TSC-deadline timer {}, invariant TSC {}",
        features.phys_bits,
        yes_no(features.huge_1g),
        yes_no(features.x2apic),
        yes_no(features.tsc_deadline),
        yes_no(features.invariant_tsc),
    );
    log::info!(
        "memory: {} MiB usable, identity map up to {} GiB ({} pages), heap {} KiB at start (grows by 512 KiB)",
        usable >> 20,
        paging::mapped_top() >> 30,
        if features.huge_1g { "1 GiB" } else { "2 MiB" },
        mem::heap::size_for(usable) >> 10
    );
    for (i, m) in boot.modules().iter().enumerate() {
        log::info!("module {i}: [{:#x}, {:#x}) '{}'", m.start, m.end, m.cmdline);
    }
}

fn yes_no(flag: bool) -> &'static str {
    if flag { "yes" } else { "no" }
}
