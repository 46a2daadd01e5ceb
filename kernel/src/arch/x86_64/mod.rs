//! Everything specific to x86-64: boot entry, CPU tables, paging, APICs, start-up of the
//! other cores. Most of the kernel's `unsafe` lives here, each block with its reason.

#![allow(unsafe_code)] // CPU instructions, tables and registers

pub mod abort;
pub mod apic;
pub mod cpu;
pub mod entry;
pub mod gdt;
pub mod idt;
pub mod paging;
pub mod percpu;
pub mod smp;

/// Gives core `index` (the running core) its GDT, its TSS with the interrupt stacks
/// recorded in its per-core data, the IDT (which the boot core, index 0, fills first),
/// and its x87 unit and MXCSR in their initial states (`fninit`: control word 0x037F;
/// MXCSR 0x1F80: every SIMD exception masked, round to nearest, no flush to zero or
/// denormals as zero), whatever the loader or firmware left there: INIT, which starts
/// the other cores, keeps the SSE state (SDM Vol. 1, 11.6.4). Where the CPU has the PAT,
/// its IA32_PAT gets the kernel's table (`rexo_cpuid::pat::PROGRAMMED`, the same on every
/// core as the SDM asks: entry 1 write-combining, the others at their power-on types,
/// whatever the firmware left), then, on each other core, its caches are written back
/// and invalidated and its TLB flushed, as the SDM asks when an entry's type changes (a
/// core starting while the framebuffer is mapped write-combining may have cached it
/// under the old entry 1, write-through at power-on).
pub fn load_core_state(index: usize) {
    let core = percpu::core(index);
    // SAFETY: each core loads its own tables exactly once, at its start, after its
    // interrupt stacks were allocated and recorded.
    unsafe { gdt::load(core.tables.get(), core.interrupt_stacks().map(|s| s.top)) };
    if index == 0 {
        idt::build();
    }
    idt::load();
    if cpu::features().pat {
        cpu::wrmsr(rexo_cpuid::pat::MSR, rexo_cpuid::pat::PROGRAMMED);
        // Not on the boot core: its write comes before any mapping selects entry 1, and
        // entries 0 and 3, which the identity map uses, keep their types (WB and UC at
        // power-on, as firmware and Linux leave them), so nothing is cached under a type
        // that changed; a WBINVD there is a whole cache written back on the boot path (under
        // KVM with an assigned device, on every physical CPU) for nothing.
        if index != 0 {
            // SAFETY: WBINVD writes dirty lines back before invalidating (nothing is
            // lost); reloading CR3 with its own value only flushes the TLB.
            unsafe {
                core::arch::asm!("wbinvd", "mov {0}, cr3", "mov cr3, {0}", out(reg) _, options(nostack, preserves_flags))
            };
        }
    }
    // SAFETY: both change only the x87 unit's and SSE's state, which the kernel (built
    // soft-float) never uses; CR0 (EM and TS clear) and CR4.OSFXSR allow them.
    unsafe { core::arch::asm!("fninit", "ldmxcsr [{}]", in(reg) &0x1F80_u32, options(nostack)) };
}
