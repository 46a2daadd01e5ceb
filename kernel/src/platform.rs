//! The machine's description from ACPI (cores, interrupt controllers, timers, power
//! registers), parsed by `rexo-acpi` over the identity map and kept for the kernel's life.

use rexo_acpi::AcpiInfo;
use rexo_bootinfo::Rsdp;
use rexo_memmap::MemoryMap;

use crate::arch::apic::IoApic;
use crate::arch::idt::FIRST_LINE_VECTOR;
use crate::arch::percpu;
use crate::mem::phys::IdentityMemory;
use core::sync::atomic::Ordering::Relaxed;

static ACPI: spin::Once<Option<AcpiInfo>> = spin::Once::new();

/// Finds and parses the ACPI tables (the RSDP from the boot loader, else the BIOS areas;
/// of a copy of its ACPI 1.0 part alone, only that is read). Broken tables are skipped with
/// a warning; no usable tables at all is a warning too, and the machine then runs on one
/// core. The APICs' registers must be device memory by `map` within the identity map
/// (`AcpiInfo::check_apic_registers`), or are not used.
pub fn init_acpi(rsdp_from_loader: Option<Rsdp>, map: &MemoryMap) -> Option<&'static AcpiInfo> {
    ACPI.call_once(|| {
        let from_bios = || rexo_acpi::find_rsdp_bios(&IdentityMemory).map(|a| (a, false));
        let loader = rsdp_from_loader.map(|rsdp| (rsdp.address, rsdp.acpi1_only));
        let Some((rsdp, acpi1_only)) = loader.or_else(from_bios) else {
            log::warn!("acpi: no RSDP found: no ACPI tables, running on the boot core only");
            return None;
        };
        let parse = if acpi1_only { rexo_acpi::parse_acpi1 } else { rexo_acpi::parse };
        match parse(&IdentityMemory, rsdp) {
            Ok(mut info) => {
                info.check_apic_registers(map, crate::arch::paging::mapped_top());
                info.warnings().for_each(|warning| log::warn!("acpi: {warning}"));
                Some(info)
            }
            Err(error) => {
                log::warn!("acpi: unusable tables at RSDP {rsdp:#x}: {error}; running on the boot core only");
                None
            }
        }
    })
    .as_ref()
}

/// The parsed ACPI tables, if the machine has usable ones.
pub fn acpi() -> Option<&'static AcpiInfo> {
    ACPI.get().and_then(Option::as_ref)
}

/// The physical ranges ACPI tables occupy (never handed out by the frame allocator).
pub fn acpi_table_ranges(info: &AcpiInfo) -> impl Iterator<Item = core::ops::Range<u64>> + '_ {
    info.tables()
        .iter()
        .map(|t| t.address..t.address + u64::from(t.length))
        .chain(core::iter::once(info.rsdp..info.rsdp + 36))
}

/// The machine's IO-APICs.
pub fn io_apics(info: &AcpiInfo) -> impl Iterator<Item = IoApic> + '_ {
    info.io_apics().iter().map(|io| IoApic {
        base: u64::from(io.address),
        gsi_base: io.gsi_base,
    })
}

/// ISA IRQ `irq`'s route (the MADT's overrides: GSI, polarity, trigger) and its IO-APIC.
pub fn isa_route(irq: u8) -> Result<(rexo_acpi::IsaRoute, IoApic), &'static str> {
    let info = acpi().ok_or("an IO-APIC (the machine has no ACPI tables)")?;
    let route = info.isa_route(irq);
    let io = io_apics(info)
        .find(|io| io.serves(route.gsi))
        .ok_or("an IO-APIC serving the line")?;
    Ok((route, io))
}

/// Masks ISA IRQ `irq` at its IO-APIC.
pub fn mask_isa_irq(irq: u8) {
    if let Ok((route, io)) = isa_route(irq) {
        io.mask(route.gsi);
    }
}

/// The cores waiting on each ISA IRQ line: the drivers' INTx and IDE wake-ups.
static LINES: rexo_devio::LineWaiters = rexo_devio::LineWaiters::new();

/// Records core `core` as waiting on ISA IRQ `irq`, then routes the line to its wake
/// vector on that core, unmasked. Refused for a core the IO-APIC's 8-bit destination
/// cannot name alone (`rexo_acpi::interrupt_destination`).
pub fn arm_line(irq: u8, core: usize) -> Result<(), &'static str> {
    let apic = (core < crate::smp_cores()).then(|| percpu::core(core).apic_id.load(Relaxed));
    let apic = apic.and_then(|id| rexo_acpi::interrupt_destination(id).ok());
    let (apic, (route, io)) = (apic.ok_or("a route to that core")?, isa_route(irq)?);
    LINES.add(irq, core)?;
    io.route(route, FIRST_LINE_VECTOR + irq, apic);
    Ok(())
}

/// ISA IRQ `irq` fired: masked until a driver arms it again (a level-triggered line stays
/// asserted until the driver acknowledges its device), and every core waiting on it woken
/// (this one at once, the others by a wake IPI).
pub fn on_line_interrupt(irq: u8) {
    mask_isa_irq(irq);
    for core in LINES.take(irq) {
        if core == percpu::core_index() {
            crate::time::on_wake_interrupt();
        } else {
            rexo_workqueue::Waker::wake(&crate::sched::IpiWaker, core);
        }
    }
}
