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
/// recorded in its per-core data, and the IDT (which the boot core, index 0, fills first).
pub fn load_core_tables(index: usize) {
    let core = percpu::core(index);
    // SAFETY: each core loads its own tables exactly once, at its start, after its
    // interrupt stacks were allocated and recorded.
    unsafe { gdt::load(core.tables.get(), core.ist_tops()) };
    if index == 0 {
        idt::build();
    }
    idt::load();
}
