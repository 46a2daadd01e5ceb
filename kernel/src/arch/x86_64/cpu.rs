//! Safe wrappers for single CPU instructions: port I/O, MSRs, CPUID, control registers.
//!
//! Port I/O and MSR writes can affect the whole machine; the kernel is the only caller
//! (apps never see this module), so the wrappers are safe functions in the kernel and
//! each device module is responsible for touching only its own ports.

use core::arch::asm;
use core::arch::x86_64::{__cpuid_count, _rdrand64_step, _rdseed64_step, CpuidResult};
pub use rexo_cpuid::Features;

/// Reads a byte from an I/O port.
pub fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: the kernel owns every port it reads. Not `nomem`: port accesses stay in
    // order with the memory accesses around them (a device may use that memory).
    unsafe { asm!("in al, dx", out("al") value, in("dx") port, options(nostack, preserves_flags)) };
    value
}

/// Writes a byte to an I/O port.
pub fn outb(port: u16, value: u8) {
    // SAFETY: callers own the port (ordered with memory as for `inb`).
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nostack, preserves_flags)) };
}

/// Reads a 16-bit word from an I/O port.
pub fn inw(port: u16) -> u16 {
    let value: u16;
    // SAFETY: as for `inb`.
    unsafe { asm!("in ax, dx", out("ax") value, in("dx") port, options(nostack, preserves_flags)) };
    value
}

/// Writes a 16-bit word to an I/O port.
pub fn outw(port: u16, value: u16) {
    // SAFETY: as for `outb`.
    unsafe { asm!("out dx, ax", in("dx") port, in("ax") value, options(nostack, preserves_flags)) };
}

/// Reads a model-specific register.
pub fn rdmsr(msr: u32) -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: callers pass MSRs that exist on this CPU (checked through CPUID).
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") low, out("edx") high, options(nomem, nostack, preserves_flags))
    };
    (u64::from(high) << 32) | u64::from(low)
}

/// Writes a model-specific register.
pub fn wrmsr(msr: u32, value: u64) {
    // SAFETY: callers pass MSRs that exist on this CPU and values the kernel owns.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nostack, preserves_flags))
    };
}

/// Waits until this core's earlier loads and stores are globally visible and its earlier
/// instructions done (MFENCE, LFENCE), before a WRMSR that is not serializing.
pub fn fence_before_wrmsr() {
    // SAFETY: MFENCE and LFENCE only order this core's memory accesses and instructions.
    unsafe { asm!("mfence", "lfence", options(nostack, preserves_flags)) };
}

/// Waits until this core's earlier stores are globally visible, write-combined ones too
/// (SFENCE drains the write-combining buffers): the framebuffer's pixels reach the screen.
pub fn store_fence() {
    // SAFETY: SFENCE only orders this core's stores.
    unsafe { asm!("sfence", options(nostack, preserves_flags)) };
}

/// Executes CPUID for a leaf and sub-leaf.
pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    __cpuid_count(leaf, subleaf)
}

/// A random number: RDSEED's where the CPU has it ([`Features::rdseed`]), tried 10 times
/// while it answers CF=0 (none ready), then RDRAND's where it has that
/// ([`Features::rdrand`]), tried 10 times as Intel's DRNG guide advises (try `n` is step
/// `n / 10`); `None` without either, or when every try failed.
pub fn random_u64() -> Option<u64> {
    let (has, mut out) = ([features().rdseed, features().rdrand], 0);
    let steps = [_rdseed64_step, _rdrand64_step];
    // SAFETY: step `n / 10` runs only where CPUID said the CPU has its instruction
    // (`has`); it writes `out` only.
    (0..20).find_map(|n| (has[n / 10] && unsafe { steps[n / 10](&mut out) } == 1).then_some(out))
}

/// Reads the time stamp counter, unordered: for cycle counts and spin deadlines, where a
/// read a few instructions early does not matter ([`rdtsc_ordered`] for the clock and
/// for the TSC reads around a reference timer's read, which must follow it).
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC is always available in ring 0 and has no memory effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Reads the time stamp counter once every earlier instruction has executed and every
/// earlier load is globally visible (LFENCE just before RDTSC, as the Intel SDM's RDTSC
/// page says; Linux's `rdtsc_ordered`): a plain RDTSC may run before a load it follows,
/// so a core that read another core's flag could read a time earlier than the one that
/// core read before setting it. On AMD, LFENCE orders RDTSC so where CPUID 0x80000021
/// EAX bit 2 says it always serializes (family 19h on), on families 0Fh and 11h, and on
/// families 10h-17h where MSR C001_1029 bit 1 is set (by the firmware, or by Linux
/// before a warm boot; Linux sets it, with MFENCE where it cannot): Rexo does not write
/// that MSR, so on those parts with the bit clear the order is not guaranteed (a read
/// tens of cycles early, at worst).
#[inline(always)]
pub fn rdtsc_ordered() -> u64 {
    // SAFETY: LFENCE (SSE2, in every x86-64 CPU) waits for earlier instructions only.
    unsafe { asm!("lfence", options(nostack, preserves_flags)) };
    rdtsc()
}

/// Reads CR2 (the address of the last page fault).
pub fn cr2() -> u64 {
    let value: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// Reads CR3 (the page-table root).
pub fn cr3() -> u64 {
    let value: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// Reads CR0.
pub fn cr0() -> u64 {
    let value: u64;
    // SAFETY: reading CR0 has no side effects.
    unsafe { asm!("mov {}, cr0", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// Reads CR4.
pub fn cr4() -> u64 {
    let value: u64;
    // SAFETY: reading CR4 has no side effects.
    unsafe { asm!("mov {}, cr4", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// Enables interrupts.
pub fn enable_interrupts() {
    // SAFETY: the IDT is loaded before any caller enables interrupts. Not `nomem`: the
    // compiler must not move memory accesses (a lock's release) across the `sti`.
    unsafe { asm!("sti", options(nostack)) };
}

/// Disables interrupts.
pub fn disable_interrupts() {
    // SAFETY: masking interrupts is always allowed in ring 0. Not `nomem`: memory
    // accesses (a lock's acquire) must stay after the `cli`.
    unsafe { asm!("cli", options(nostack)) };
}

/// Runs `f` with interrupts off, then turns them back on if they were on.
pub fn without_interrupts<T>(f: impl FnOnce() -> T) -> T {
    let flags: u64;
    // SAFETY: reading RFLAGS through the stack, then masking interrupts (always allowed);
    // not `nomem`, so that `f`'s memory accesses stay after the `cli`.
    unsafe { asm!("pushfq", "pop {}", "cli", out(reg) flags) };
    let result = f();
    let _ = (flags & 1 << 9 != 0).then(enable_interrupts);
    result
}

/// Enables interrupts and halts until one arrives, atomically (no wake-up is lost
/// between the two instructions: `sti` takes effect after `hlt` begins).
pub fn enable_interrupts_and_halt() {
    // SAFETY: the IDT is loaded; halting with interrupts on is the idle state. Not
    // `nomem`: what the caller checked before (a wake flag) must be read before the halt.
    unsafe { asm!("sti; hlt", options(nostack)) };
}

/// Halts this core forever, with interrupts off (NMIs still wake it: it halts again).
pub fn halt_forever() -> ! {
    disable_interrupts();
    loop {
        // SAFETY: halting has no memory effects.
        unsafe { asm!("hlt", options(nomem, nostack)) };
    }
}

/// Tells the CPU that this is a spin-wait loop.
#[inline(always)]
pub fn pause() {
    core::hint::spin_loop();
}

/// The CPU's vendor, family and model (CPUID leaves 0 and 1).
pub fn signature() -> rexo_cpuid::Signature {
    let leaf0 = cpuid(0, 0);
    let vendor = rexo_cpuid::Vendor::from_leaf_0(leaf0.ebx, leaf0.edx, leaf0.ecx);
    rexo_cpuid::Signature::new(vendor, cpuid(1, 0).eax)
}

/// The CPU's features, read through CPUID on the first call (on the boot core, early in
/// the boot; every core is taken to have the same) and kept: later calls (one per random
/// number an app asks for) run no CPUID.
pub fn features() -> &'static Features {
    static FEATURES: spin::Once<Features> = spin::Once::new();
    let registers = |CpuidResult { eax, ebx, ecx, edx }| [eax, ebx, ecx, edx];
    FEATURES.call_once(|| Features::from_leaves(|n| registers(cpuid(n, 0))))
}

/// Model-specific register numbers the kernel uses.
pub mod msr {
    /// GS base: the current core's per-core data.
    pub const GS_BASE: u32 = 0xC000_0101;
    /// Local APIC base and mode.
    pub const APIC_BASE: u32 = 0x1B;
    /// TSC deadline of the local APIC timer.
    pub const TSC_DEADLINE: u32 = 0x6E0;
    /// The core's TSC adjustment, IA32_TSC_ADJUST (CPUID.7.0:EBX bit 1).
    pub const TSC_ADJUST: u32 = 0x3B;
}

/// Moves this core onto the stack whose top is `top` and calls `next` there, ending the
/// frame-pointer chain (the old stack is abandoned).
pub fn switch_stack(top: u64, next: extern "C" fn() -> !) -> ! {
    // SAFETY: `top` is the 16-byte aligned top of a mapped stack owned by this core (the
    // callers allocate it); `next` never returns, so nothing needs the old stack.
    unsafe {
        asm!("mov rsp, {top}", "xor ebp, ebp", "call {next}", "ud2", top = in(reg) top, next = in(reg) next, options(noreturn))
    }
}
