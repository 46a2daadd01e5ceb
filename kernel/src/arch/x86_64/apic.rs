//! The local APIC (xAPIC through MMIO, or x2APIC through MSRs where the CPU has it), the
//! IO-APICs, and the legacy 8259 PICs (remapped and masked).

#![allow(unsafe_code)] // MMIO register access

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::cpu::{self, msr, outb, rdmsr, wrmsr};
use super::idt::{VECTOR_SPURIOUS, VECTOR_TIMER};

static X2APIC: AtomicBool = AtomicBool::new(false);
static XAPIC_BASE: AtomicU64 = AtomicU64::new(0xFEE0_0000);
/// Serialises IO-APIC register pairs (select, then window) across cores; taken with
/// interrupts off, since a line's handler (`platform::on_line_interrupt`) takes it.
static IOAPIC_LOCK: spin::Mutex<()> = spin::Mutex::new(());

const REG_ID: u32 = 0x20;
const REG_TPR: u32 = 0x80;
const REG_EOI: u32 = 0xB0;
const REG_SVR: u32 = 0xF0;
const REG_ESR: u32 = 0x280;
const REG_ICR_LOW: u32 = 0x300;
const REG_ICR_HIGH: u32 = 0x310;
const REG_LVT_TIMER: u32 = 0x320;
const REG_LVT_LINT0: u32 = 0x350;
const REG_LVT_LINT1: u32 = 0x360;
const REG_LVT_ERROR: u32 = 0x370;
const REG_TIMER_INITIAL: u32 = 0x380;
const REG_TIMER_CURRENT: u32 = 0x390;
const REG_TIMER_DIVIDE: u32 = 0x3E0;

/// An LVT entry's mask bit.
pub(crate) const LVT_MASKED: u32 = 1 << 16;
const TIMER_TSC_DEADLINE: u32 = 0b10 << 17;
const ICR_DELIVERY_PENDING: u32 = 1 << 12;

/// Reads local APIC register `reg` (its xAPIC offset).
pub(crate) fn read(reg: u32) -> u32 {
    if X2APIC.load(Ordering::Relaxed) {
        rdmsr(0x800 + (reg >> 4)) as u32
    } else {
        let addr = XAPIC_BASE.load(Ordering::Relaxed) + u64::from(reg);
        // SAFETY: the xAPIC page is identity-mapped uncached; `reg` is a register offset.
        unsafe { core::ptr::read_volatile(addr as *const u32) }
    }
}

/// Writes local APIC register `reg` (its xAPIC offset).
pub(crate) fn write(reg: u32, value: u32) {
    if X2APIC.load(Ordering::Relaxed) {
        wrmsr(0x800 + (reg >> 4), u64::from(value));
    } else {
        let addr = XAPIC_BASE.load(Ordering::Relaxed) + u64::from(reg);
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_volatile(addr as *mut u32, value) };
    }
}

/// Chooses the APIC mode for every core (x2APIC where the CPU has it) and records the
/// xAPIC base address (from ACPI's MADT, or the architectural default).
pub fn configure(x2apic: bool, xapic_base: u64) {
    X2APIC.store(x2apic, Ordering::Relaxed);
    XAPIC_BASE.store(xapic_base, Ordering::Relaxed);
}

/// Whether the local APICs run in x2APIC mode.
pub fn is_x2apic() -> bool {
    X2APIC.load(Ordering::Relaxed)
}

/// Enables this core's local APIC: software enable, spurious vector, LINT pins, timer,
/// and the performance-counter, thermal and CMCI entries firmware may have armed masked,
/// error status cleared, all priorities accepted.
pub fn init_local() {
    let base = rdmsr(msr::APIC_BASE);
    let enable = 1 << 11 | if is_x2apic() { 1 << 10 } else { 0 };
    wrmsr(msr::APIC_BASE, base | enable);
    write(REG_SVR, 0x100 | u32::from(VECTOR_SPURIOUS));
    write(REG_LVT_LINT0, LVT_MASKED);
    write(REG_LVT_LINT1, LVT_MASKED);
    write(REG_LVT_ERROR, LVT_MASKED);
    write(REG_LVT_TIMER, LVT_MASKED);
    // The performance-counter (0x340), thermal (0x330) and CMCI (0x2F0) entries exist
    // only if the version register's last LVT index (bits 16-23) reaches 4, 5 and 6 (SDM
    // vol. 3A, "Local Vector Table"): writing a missing one is a #GP in x2APIC mode.
    let last_lvt = read(0x30) >> 16 & 0xFF;
    let present = [(0x340, 4), (0x330, 5), (0x2F0, 6)]
        .into_iter()
        .filter(|e| last_lvt >= e.1);
    present.for_each(|(register, _)| write(register, LVT_MASKED));
    write(REG_ESR, 0);
    write(REG_TPR, 0);
    end_of_interrupt();
    // The boot core's mode, for the other cores (the boot core's own is set after this).
    if crate::time::uses_tsc_deadline() {
        enter_tsc_deadline_mode();
    }
}

/// This core's local APIC id.
pub fn id() -> u32 {
    if is_x2apic() {
        read(REG_ID)
    } else {
        read(REG_ID) >> 24
    }
}

/// The APIC id of the running core, from CPUID (usable before the APIC is enabled).
pub fn id_from_cpuid() -> u32 {
    let leaf0 = cpu::cpuid(0, 0);
    if leaf0.eax >= 0xB && cpu::cpuid(0xB, 0).ebx != 0 {
        cpu::cpuid(0xB, 0).edx
    } else {
        cpu::cpuid(1, 0).ebx >> 24
    }
}

/// Signals the end of the interrupt being handled.
pub fn end_of_interrupt() {
    write(REG_EOI, 0);
}

/// How an IPI is delivered.
#[derive(Clone, Copy, Debug)]
pub enum Ipi {
    /// A normal interrupt on the given vector.
    Fixed(u8),
    /// INIT (level assert).
    Init,
    /// Start-up at physical address `page * 4096`.
    Startup(u8),
}

/// Sends an IPI to the core with local APIC id `apic_id`.
pub fn send_ipi(apic_id: u32, ipi: Ipi) {
    let low: u32 = match ipi {
        Ipi::Fixed(vector) => u32::from(vector),
        Ipi::Init => 0b101 << 8 | 1 << 14,
        Ipi::Startup(page) => 0b110 << 8 | u32::from(page),
    };
    write_icr(apic_id, low);
}

/// Sends a non-maskable interrupt (vector 2) to the core with local APIC id `apic_id`
/// (the crash path's: [`write_icr`] takes no lock another core may hold).
pub fn send_nmi(apic_id: u32) {
    write_icr(apic_id, 0b100 << 8 | 1 << 14);
}

/// Writes this core's interrupt command register: IPI `low` to `apic_id`. In xAPIC mode
/// that is two writes (destination, then command) and a wait until it has gone (the
/// register must be idle before the next), with interrupts off: handlers send IPIs too,
/// and one between the two writes would retarget this one. No lock: each core's ICR is
/// its own, so only its own handlers can interleave.
fn write_icr(apic_id: u32, low: u32) {
    if is_x2apic() {
        // A WRMSR to an x2APIC register may send the IPI before this core's earlier
        // stores are visible (SDM vol. 3A 11.12.3): a shootdown's count, a task queued.
        cpu::fence_before_wrmsr();
        wrmsr(0x830, u64::from(apic_id) << 32 | u64::from(low));
    } else {
        cpu::without_interrupts(|| {
            write(REG_ICR_HIGH, apic_id << 24);
            write(REG_ICR_LOW, low);
            while read(REG_ICR_LOW) & ICR_DELIVERY_PENDING != 0 {
                cpu::pause();
            }
        });
    }
}

/// Puts this core's timer in TSC-deadline mode, unarmed: once per core, since nothing
/// writes the timer's LVT again in that mode.
pub fn enter_tsc_deadline_mode() {
    write(REG_LVT_TIMER, TIMER_TSC_DEADLINE | u32::from(VECTOR_TIMER));
    // The SDM (10.5.4.1): in xAPIC mode an MFENCE must order the LVT's memory-mapped write
    // before a deadline's WRMSR, or the deadline may be ignored.
    core::sync::atomic::fence(Ordering::SeqCst);
}

/// Arms the timer, in TSC-deadline mode ([`enter_tsc_deadline_mode`]), to fire at TSC
/// value `deadline` (0 disarms).
pub fn arm_tsc_deadline(deadline: u64) {
    wrmsr(msr::TSC_DEADLINE, deadline);
}

/// Arms the timer in one-shot mode to fire after `ticks` timer ticks (divide by 1).
pub fn arm_one_shot(ticks: u32) {
    write(REG_TIMER_DIVIDE, 0b1011);
    write(REG_LVT_TIMER, u32::from(VECTOR_TIMER));
    write(REG_TIMER_INITIAL, ticks);
}

/// Starts the timer counting down from the maximum, masked (for calibration).
pub fn start_free_running() {
    write(REG_TIMER_DIVIDE, 0b1011);
    write(REG_LVT_TIMER, LVT_MASKED);
    write(REG_TIMER_INITIAL, u32::MAX);
}

/// The timer's current count.
pub fn timer_current() -> u32 {
    read(REG_TIMER_CURRENT)
}

/// Remaps the legacy 8259 PICs to vectors 0xE0-0xEF (away from the exceptions) and masks
/// every line: the IO-APIC delivers device interrupts.
pub fn disable_legacy_pic() {
    for (command, data, offset, cascade) in [(0x20, 0x21, 0xE0, 4), (0xA0, 0xA1, 0xE8, 2)] {
        outb(command, 0x11); // initialise, expect ICW4
        outb(data, offset);
        outb(data, cascade);
        outb(data, 0x01); // 8086 mode
        outb(data, 0xFF); // mask all
    }
}

/// One IO-APIC: its register window.
#[derive(Clone, Copy, Debug)]
pub struct IoApic {
    /// Physical base of the register window.
    pub base: u64,
    /// First GSI it serves.
    pub gsi_base: u32,
}

impl IoApic {
    fn read(&self, reg: u32) -> u32 {
        cpu::without_interrupts(|| {
            let _pair = IOAPIC_LOCK.lock();
            // SAFETY: the IO-APIC window (from the MADT) is identity-mapped uncached below
            // 4 GiB; IOREGSEL at +0 selects, IOWIN at +0x10 transfers.
            unsafe {
                core::ptr::write_volatile(self.base as *mut u32, reg);
                core::ptr::read_volatile((self.base + 0x10) as *const u32)
            }
        })
    }

    fn write(&self, reg: u32, value: u32) {
        cpu::without_interrupts(|| {
            let _pair = IOAPIC_LOCK.lock();
            // SAFETY: as in `read`.
            unsafe {
                core::ptr::write_volatile(self.base as *mut u32, reg);
                core::ptr::write_volatile((self.base + 0x10) as *mut u32, value);
            }
        })
    }

    /// How many redirection entries (GSIs) it has: none where its registers read all ones
    /// (`rexo_acpi::io_apic_entries`: no IO-APIC answers there).
    pub fn entries(&self) -> u32 {
        rexo_acpi::io_apic_entries(self.base, self.read(1)).unwrap_or(0)
    }

    /// Masks every redirection entry; the warning when no IO-APIC answers at its address.
    pub fn mask_all(&self) -> Result<(), rexo_acpi::Warning> {
        for i in 0..rexo_acpi::io_apic_entries(self.base, self.read(1))? {
            self.write(0x10 + 2 * i, 1 << 16);
        }
        Ok(())
    }

    /// Routes the GSI of `route` (which this IO-APIC must serve) to `vector` on the core
    /// the 8-bit physical destination `apic_id` names, unmasked, with its polarity and
    /// trigger mode.
    pub fn route(&self, route: rexo_acpi::IsaRoute, vector: u8, apic_id: u8) {
        let entry = 0x10 + 2 * (route.gsi - self.gsi_base);
        let flags = u32::from(route.active_low) << 13 | u32::from(route.level) << 15;
        self.write(entry + 1, u32::from(apic_id) << 24);
        self.write(entry, u32::from(vector) | flags);
    }

    /// Masks one GSI.
    pub fn mask(&self, gsi: u32) {
        let index = gsi - self.gsi_base;
        self.write(0x10 + 2 * index, 1 << 16);
    }

    /// Whether this IO-APIC serves `gsi`.
    pub fn serves(&self, gsi: u32) -> bool {
        rexo_acpi::io_apic_serves(self.gsi_base, self.entries(), gsi)
    }
}
