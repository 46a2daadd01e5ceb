//! Per-core data, reached through the GS base: each core's `GS_BASE` MSR points at its
//! own [`CoreData`], whose first word points at itself and whose second is the core index.

use core::arch::asm;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::cpu::{msr, wrmsr};
use super::gdt::{CoreTables, IST_STACKS};

/// The most cores Rexo runs. More present cores: the rest stay parked, with a warning.
pub const MAX_CORES: usize = rexo_cmdline::MAX_CORES;

pub use rexo_crashreport::StackBounds;

/// One core's kernel data. Fields other than the first two are filled while the core
/// starts and read (by itself or a crash report) afterwards.
#[repr(C)]
pub struct CoreData {
    self_ptr: AtomicU64,
    index: AtomicUsize,
    /// The core's local APIC id.
    pub apic_id: AtomicU32,
    stack_bottom: AtomicU64,
    stack_top: AtomicU64,
    ist_bottoms: [AtomicU64; IST_STACKS],
    ist_tops: [AtomicU64; IST_STACKS],
    /// The GDT and TSS of this core (written once at start, then owned by the CPU).
    pub tables: CoreTablesCell,
}

/// Interior mutability for the CPU tables, written only by the owning core during its
/// start-up, before it loads them.
pub struct CoreTablesCell(UnsafeCell<CoreTables>);

// SAFETY: each core writes only its own cell, once, before loading the tables; later
// accesses are reads (by the CPU, or by a crash report printing them).
unsafe impl Sync for CoreTablesCell {}

impl CoreTablesCell {
    /// The raw tables, for the owning core's one-time set-up.
    pub fn get(&self) -> *mut CoreTables {
        self.0.get()
    }
}

#[allow(clippy::declare_interior_mutable_const)] // used only to initialise the array below
const EMPTY_CORE: CoreData = CoreData {
    self_ptr: AtomicU64::new(0),
    index: AtomicUsize::new(0),
    apic_id: AtomicU32::new(0),
    stack_bottom: AtomicU64::new(0),
    stack_top: AtomicU64::new(0),
    ist_bottoms: [const { AtomicU64::new(0) }; IST_STACKS],
    ist_tops: [const { AtomicU64::new(0) }; IST_STACKS],
    tables: CoreTablesCell(UnsafeCell::new(CoreTables::EMPTY)),
};

static CORES: [CoreData; MAX_CORES] = [EMPTY_CORE; MAX_CORES];

/// Points this core's GS base at the data of core `index`. Called first thing on every core.
pub fn install(index: usize, apic_id: u32) {
    let core = &CORES[index];
    core.self_ptr
        .store(core as *const CoreData as u64, Ordering::Relaxed);
    core.index.store(index, Ordering::Relaxed);
    core.apic_id.store(apic_id, Ordering::Relaxed);
    wrmsr(msr::GS_BASE, core as *const CoreData as u64);
}

/// The index of the core running this code (0 is the boot core).
#[inline]
pub fn core_index() -> usize {
    let index: usize;
    // SAFETY: every core installs its GS base before any code that can call this runs;
    // offset 8 is `CoreData::index` (repr(C)).
    unsafe { asm!("mov {}, gs:[8]", out(reg) index, options(nostack, readonly, preserves_flags)) };
    index
}

/// The data of the core running this code.
pub fn current() -> &'static CoreData {
    &CORES[core_index()]
}

/// The data of core `index`.
pub fn core(index: usize) -> &'static CoreData {
    &CORES[index]
}

impl CoreData {
    /// Records the core's kernel stack and its interrupt stacks (for backtraces).
    pub fn set_stacks(&self, stack: StackBounds, ist: &[StackBounds; IST_STACKS]) {
        self.stack_bottom.store(stack.bottom, Ordering::Relaxed);
        self.stack_top.store(stack.top, Ordering::Relaxed);
        for ((bottom, top), stack) in self.ist_bottoms.iter().zip(&self.ist_tops).zip(ist) {
            bottom.store(stack.bottom, Ordering::Relaxed);
            top.store(stack.top, Ordering::Relaxed);
        }
    }

    /// The core's kernel stack.
    pub fn stack(&self) -> StackBounds {
        StackBounds {
            bottom: self.stack_bottom.load(Ordering::Relaxed),
            top: self.stack_top.load(Ordering::Relaxed),
        }
    }

    /// The core's interrupt stacks, in IST order: each on its own, since the guard pages
    /// between them are unmapped.
    pub fn interrupt_stacks(&self) -> [StackBounds; IST_STACKS] {
        core::array::from_fn(|i| StackBounds {
            bottom: self.ist_bottoms[i].load(Ordering::Relaxed),
            top: self.ist_tops[i].load(Ordering::Relaxed),
        })
    }
}
