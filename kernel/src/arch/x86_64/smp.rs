//! Starting the application processors: INIT-SIPI-SIPI through a trampoline copied to
//! physical 0x8000, which goes from real mode to long mode on the boot page tables, takes a
//! ticket (the core's index), loads that core's stack and calls
//! [`ap_entry`](crate::ap_entry) (a ticket past the planned cores parks instead). The boot
//! core waits for each core's own sign of life (never a fixed sleep) and re-sends the
//! start-up IPI to a core that has not answered.

#![allow(unsafe_code)] // copying and patching the trampoline in low memory

use core::arch::global_asm;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::apic::{self, Ipi};
use super::cpu::{features, msr, rdmsr, wrmsr};
use super::percpu::MAX_CORES;

/// Physical address the trampoline runs at (SIPI vector 0x08).
pub const TRAMPOLINE: u64 = 0x8000;
/// The start-up IPI's vector: the trampoline's page number.
const SIPI_PAGE: u8 = (TRAMPOLINE >> 12) as u8;

// Offsets of the data the boot core fills in, relative to the trampoline's start.
//
// A parked core loads the park IDT: vectors 0 to 18 (every exception, the NMI and the
// machine check; a vector past it is a #GP, vector 13) are interrupt gates in the
// trampoline's 64-bit code segment to `rexo_ap_halt`, which halts for good and never
// returns, on a stack at the top of the trampoline's page (0x9000 down; parked cores may
// share it, since nothing reads what the CPU pushes there). Without it, an NMI (a crash
// report's, sent to every other core) reached the real-mode IDT register left by INIT
// (base 0, unmapped page 0) and triple-faulted, resetting the machine.
global_asm!(
    r#"
    .section .rodata.rexo_ap_trampoline, "a"
    .balign 16
    .global rexo_ap_trampoline_start
    .global rexo_ap_trampoline_end
rexo_ap_trampoline_start:
    .code16
    cli
    cld
    xorw %ax, %ax
    movw %ax, %ds
    lgdtl (0x8000 + rexo_ap_gdt_ptr - rexo_ap_trampoline_start)
    movl $({cr0} & ~((1 << 31) | (1 << 16))), %eax  // without PG and WP until paging
    movl %eax, %cr0
    // jmp 0x18:ap32 (32-bit offset)
    .byte 0x66, 0xEA
    .long 0x8000 + rexo_ap_32 - rexo_ap_trampoline_start
    .short 0x18

    .code32
rexo_ap_32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl %cr4, %eax
    orl ${cr4}, %eax
    movl %eax, %cr4
    movl (0x8000 + rexo_ap_cr3 - rexo_ap_trampoline_start), %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx
    rdmsr
    orl $(1 << 8), %eax
    wrmsr
    movl ${cr0}, %eax
    movl %eax, %cr0
    .byte 0xEA
    .long 0x8000 + rexo_ap_64 - rexo_ap_trampoline_start
    .short 0x08

    .code64
rexo_ap_64:
    // The park IDT and stack until the core loads its own (ap_entry): an NMI (a crash
    // report's) to a core starting up halts it instead of triple-faulting the machine.
    lidt (0x8000 + rexo_ap_park_idt - rexo_ap_trampoline_start)
    movl $0x9000, %esp
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorl %eax, %eax
    movw %ax, %fs
    movw %ax, %gs
    // Switch to the kernel's own tables (they may live above 4 GiB, as may the stacks).
    movq (0x8000 + rexo_ap_cr3_final - rexo_ap_trampoline_start), %rax
    movq %rax, %cr3
    movl $1, %eax
    lock xaddl %eax, (0x8000 + rexo_ap_ticket - rexo_ap_trampoline_start)
    // A core past the plan (one the kernel did not start, a stray start-up IPI) has no
    // stack: it parks here before reading one, on the park IDT and stack it loaded.
    cmpl (0x8000 + rexo_ap_planned - rexo_ap_trampoline_start), %eax
    jae rexo_ap_halt
    movl %eax, %edi
    movq (0x8000 + rexo_ap_stacks - rexo_ap_trampoline_start), %rbx
    movq (%rbx, %rdi, 8), %rsp
    xorl %ebp, %ebp
    movq (0x8000 + rexo_ap_entry - rexo_ap_trampoline_start), %rax
    callq *%rax
    ud2
rexo_ap_halt:
    cli
    hlt
    jmp rexo_ap_halt

    .balign 8
rexo_ap_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF        // 0x08: 64-bit code
    .quad 0x00CF92000000FFFF        // 0x10: data
    .quad 0x00CF9A000000FFFF        // 0x18: 32-bit code
rexo_ap_gdt_end:
rexo_ap_gdt_ptr:
    .short rexo_ap_gdt_end - rexo_ap_gdt - 1
    .long 0x8000 + (rexo_ap_gdt - rexo_ap_trampoline_start)
    .balign 8
    .global rexo_ap_cr3
rexo_ap_cr3:
    .quad 0
    .global rexo_ap_cr3_final
rexo_ap_cr3_final:
    .quad 0
    .global rexo_ap_entry
rexo_ap_entry:
    .quad 0
    .global rexo_ap_stacks
rexo_ap_stacks:
    .quad 0
    .global rexo_ap_planned
rexo_ap_planned:
    .quad 0
    .global rexo_ap_ticket
rexo_ap_ticket:
    .quad 0
rexo_ap_park_idt:
    .short 19 * 16 - 1
    .quad 0x8000 + rexo_ap_park_gates - rexo_ap_trampoline_start
rexo_ap_park_gates:
    .rept 19
    .short 0x8000 + rexo_ap_halt - rexo_ap_trampoline_start, 0x08, 0x8E00, 0, 0, 0, 0, 0
    .endr
rexo_ap_trampoline_end:
    .text
    "#,
    cr0 = const super::entry::CR0_LONG_MODE, cr4 = const super::entry::CR4_BOOT_BITS,
    options(att_syntax)
);

unsafe extern "C" {
    static rexo_ap_trampoline_start: u8;
    static rexo_ap_trampoline_end: u8;
    static rexo_ap_cr3: u8;
    static rexo_ap_cr3_final: u8;
    static rexo_ap_entry: u8;
    static rexo_ap_stacks: u8;
    static rexo_ap_planned: u8;
    static rexo_ap_ticket: u8;
    static rexo_boot_pml4: u8;
}

/// Initial stack pointer of each core, indexed by ticket (core index).
static STACK_TOPS: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];
/// Each core's sign of life: its APIC id + 1; the boot core's written by [`prepare`], each
/// other core's by [`mark_alive`] in its entry, before its work loop.
static ALIVE: [AtomicU32; MAX_CORES] = [const { AtomicU32::new(0) }; MAX_CORES];
/// Cores in the work loop, the boot core included.
static RUNNING: AtomicUsize = AtomicUsize::new(1);
/// The cores running once every core started has answered: the last to answer wakes the
/// boot core.
static EXPECTED: AtomicUsize = AtomicUsize::new(1);

fn offset(symbol: *const u8) -> u64 {
    symbol as u64 - (&raw const rexo_ap_trampoline_start) as u64
}

/// Copies the trampoline to [`TRAMPOLINE`] and fills in its data; tickets from
/// `planned` on park in the trampoline.
fn install_trampoline(entry: extern "C" fn(u64) -> !, planned: usize) {
    let start = (&raw const rexo_ap_trampoline_start) as u64;
    let len = (&raw const rexo_ap_trampoline_end) as u64 - start;
    let patch = |symbol: *const u8, value: u64| {
        let at = TRAMPOLINE + offset(symbol);
        // SAFETY: `at` lies inside the trampoline page, which the frame allocator never
        // hands out (low memory is reserved) and no core executes yet.
        unsafe { core::ptr::write_volatile(at as *mut u64, value) };
    };
    // SAFETY: the destination page at 0x8000 is reserved for the trampoline; the source
    // is the trampoline's image in the kernel's read-only data; they do not overlap.
    unsafe {
        core::ptr::copy_nonoverlapping(start as *const u8, TRAMPOLINE as *mut u8, len as usize)
    };
    patch(&raw const rexo_ap_cr3, (&raw const rexo_boot_pml4) as u64);
    patch(&raw const rexo_ap_cr3_final, super::paging::root());
    patch(&raw const rexo_ap_entry, entry as usize as u64);
    patch(&raw const rexo_ap_stacks, STACK_TOPS.as_ptr() as u64);
    patch(&raw const rexo_ap_planned, planned as u64);
    // The ticket is 32 bits, followed by padding: the first core to arrive gets index 1.
    patch(&raw const rexo_ap_ticket, 1);
}

/// The boot core's IA32_TSC_ADJUST, which each starting core writes into its own
/// ([`adopt_boot_core_tsc_adjust`]); `None`: the CPU has no such MSR.
static BOOT_TSC_ADJUST: spin::Once<Option<u64>> = spin::Once::new();

/// Copies the trampoline to low memory and records each core's stack (`stack_tops[i]` for
/// core index `i`; index 0, the boot core, is unused), the boot core's TSC adjustment and
/// its sign of life (for a crash's NMIs, [`nmi_other_cores`]); a core whose ticket has no
/// stack here parks in the trampoline. Called once, before [`start_cores`].
pub fn prepare(stack_tops: &[u64], entry: extern "C" fn(u64) -> !) {
    BOOT_TSC_ADJUST.call_once(|| features().tsc_adjust.then(|| rdmsr(msr::TSC_ADJUST)));
    ALIVE[0].store(apic::id() + 1, Ordering::SeqCst); // the boot core, for a crash's NMI
    for (i, &top) in stack_tops.iter().enumerate() {
        STACK_TOPS[i].store(top, Ordering::Relaxed);
    }
    install_trampoline(entry, stack_tops.len());
}

/// Makes this starting core's TSC read as the boot core's: firmware may leave the cores'
/// IA32_TSC_ADJUST apart (SDM Vol. 3B, 17.17.3), and their TSCs with them, while their
/// counters started together at reset; so each writes the boot core's value into its own.
pub fn adopt_boot_core_tsc_adjust() {
    if let Some(&Some(adjust)) = BOOT_TSC_ADJUST.get() {
        wrmsr(msr::TSC_ADJUST, adjust);
    }
}

/// Cores sent their start-up IPIs by [`start_cores`]; [`Starting::wait`] waits for them.
pub struct Starting {
    /// The started cores' APIC ids (the first `count`).
    targets: [u32; MAX_CORES],
    count: usize,
    /// When the start-up IPIs went out (monotonic nanoseconds).
    sent_ns: u64,
    /// How long to wait for every core's sign of life.
    timeout_us: u64,
}

/// Sends INIT and a start-up IPI to the cores with APIC ids `targets` (at most
/// [`MAX_CORES`] - 1 of them) and returns at once: they start while the boot core goes on.
/// Between the two comes the MP initialization sequence's 10 ms wait, on a CPU that needs
/// it only ([`rexo_cpuid::Signature::waits_after_init`]: older than Intel's family 6 or
/// AMD's 0xF, or of another maker).
pub fn start_cores(targets: &[u32], timeout_us: u64) -> Starting {
    let mut starting = Starting {
        targets: [0; MAX_CORES],
        count: targets.len(),
        sent_ns: 0,
        timeout_us,
    };
    starting.targets[..targets.len()].copy_from_slice(targets);
    EXPECTED.store(
        RUNNING.load(Ordering::Acquire) + targets.len(),
        Ordering::Release,
    );
    for &id in targets {
        apic::send_ipi(id, Ipi::Init);
    }
    let cpu = super::cpu::signature();
    if cpu.waits_after_init() {
        log::debug!("smp: waiting 10 ms between INIT and the start-up IPI ({cpu:?})");
        crate::time::delay_us(10_000);
    }
    for &id in targets {
        apic::send_ipi(id, Ipi::Startup(SIPI_PAGE));
    }
    starting.sent_ns = crate::time::now_ns();
    starting
}

impl Starting {
    /// Waits for the started cores' own signs of life, up to the time-out counted from
    /// their start-up IPIs, re-sending that IPI to a core that has not answered after
    /// 200 us (Intel's protocol). Returns how many answered.
    pub fn wait(&self) -> usize {
        let targets = &self.targets[..self.count];
        // Only tickets 1..=count give a sign of life (a later one, at or past the plan,
        // parks in the trampoline).
        // Scanning just those, a bound known at run time, also keeps the compiler from
        // unrolling the scan over every slot: each unrolled test was a block for the
        // emulator to translate (8 cores: 150 more blocks before the ready line).
        let signs = &ALIVE[1..=self.count];
        let started = |id: u32| signs.iter().any(|a| a.load(Ordering::Acquire) == id + 1);
        let resend_at = self.sent_ns + 200_000;
        let deadline = self.sent_ns + self.timeout_us * 1000;
        let mut resent = false;
        loop {
            let answered = targets.iter().filter(|&&id| started(id)).count();
            let now = crate::time::now_ns();
            if answered == targets.len() {
                let us = (now - self.sent_ns) / 1000;
                log::debug!("smp: {answered} cores answered {us} us after their start-up IPIs");
                return answered;
            }
            if !resent && now >= resend_at {
                for &id in targets.iter().filter(|&&id| !started(id)) {
                    apic::send_ipi(id, Ipi::Startup(SIPI_PAGE));
                }
                resent = true;
            }
            if now >= deadline {
                for &id in targets.iter().filter(|&&id| !started(id)) {
                    let timeout = self.timeout_us;
                    log::error!("smp: core with APIC id {id} did not start within {timeout} us");
                }
                return answered;
            }
            // Halt rather than spin: under emulation the starting cores need the host's
            // CPUs. The last core's sign of life comes with a wake-up IPI; the timer only
            // bounds the nap by the next thing to do (the second start-up IPI, or the
            // time-out). A nap, which remembers a wake-up IPI taken after the count above:
            // a plain halt then slept to the time-out (2 s) with every core running.
            crate::time::nap_until(if resent { deadline } else { resend_at });
        }
    }
}

/// Records that core `index` (APIC id `apic_id`) runs: its sign of life for the boot core.
/// The last of the cores started to answer wakes the boot core: one wake-up, not one per
/// core, since under emulation each costs the boot core's thread a turn on the host's
/// CPUs while the other cores start (8 cores: `boot=` median 9.3 ms against 13-14.5).
pub fn mark_alive(index: usize, apic_id: u32) {
    ALIVE[index].store(apic_id + 1, Ordering::SeqCst);
    if RUNNING.fetch_add(1, Ordering::AcqRel) + 1 == EXPECTED.load(Ordering::Acquire) {
        rexo_workqueue::Waker::wake(&crate::sched::IpiWaker, 0);
    }
}

/// Sends an NMI to every other core that has loaded its own IDT (the crash path's): the
/// boot core and each core that gave its sign of life. A core still starting may have no
/// IDT yet (an NMI in the trampoline's real or protected mode would vector through
/// INIT's, at 0): it gets none, and halts at its sign of life once it sees the crash.
pub fn nmi_other_cores() {
    let this_core = ALIVE[super::percpu::core_index()].load(Ordering::SeqCst);
    let signs = ALIVE.iter().map(|alive| alive.load(Ordering::SeqCst));
    for sign in signs.filter(|&sign| sign != 0 && sign != this_core) {
        apic::send_nmi(sign - 1);
    }
}

/// Whether core `index` has given its sign of life (ordered with the boot core's count
/// of the cores: both sides are sequentially consistent).
pub fn alive(index: usize) -> bool {
    ALIVE[index].load(Ordering::SeqCst) != 0
}

/// How many cores have given their sign of life (the boot core included).
pub fn running() -> usize {
    RUNNING.load(Ordering::Acquire)
}
