//! The machine's description from ACPI (cores, interrupt controllers, timers, power
//! registers), parsed by `rexo-acpi` over the identity map and kept for the kernel's life.

use rexo_acpi::AcpiInfo;

use crate::arch::apic::IoApic;
use crate::mem::phys::IdentityMemory;

static ACPI: spin::Once<Option<AcpiInfo>> = spin::Once::new();

/// Finds and parses the ACPI tables (the RSDP from the boot loader, else the BIOS areas).
/// Broken tables are skipped with a warning; no usable tables at all is a warning too, and
/// the machine then runs on one core.
pub fn init_acpi(rsdp_from_loader: Option<u64>) -> Option<&'static AcpiInfo> {
    ACPI.call_once(|| {
        let Some(rsdp) = rsdp_from_loader.or_else(|| rexo_acpi::find_rsdp_bios(&IdentityMemory)) else {
            log::warn!("acpi: no RSDP found: no ACPI tables, running on the boot core only");
            return None;
        };
        match rexo_acpi::parse(&IdentityMemory, rsdp) {
            Ok(info) => {
                for warning in info.warnings() {
                    log::warn!("acpi: {warning}");
                }
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

/// Why an ISA interrupt cannot be routed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// The machine has no ACPI tables (so no known IO-APIC).
    NoAcpi,
    /// No IO-APIC serves the GSI the IRQ maps to.
    NoIoApicFor(u32),
}

/// Routes ISA IRQ `irq` (through the MADT's interrupt source overrides: its GSI, polarity
/// and trigger mode) to `vector` on the core with APIC id `apic_id`. Returns the GSI.
pub fn route_isa_irq(irq: u8, vector: u8, apic_id: u32) -> Result<u32, RouteError> {
    let info = acpi().ok_or(RouteError::NoAcpi)?;
    let gsi = isa_gsi(info, irq);
    let (active_low, level) = info
        .interrupt_overrides()
        .iter()
        .find(|o| o.irq == irq)
        .map_or((false, false), |o| {
            (
                o.polarity == rexo_acpi::Polarity::ActiveLow,
                o.trigger == rexo_acpi::TriggerMode::Level,
            )
        });
    let io = io_apics(info)
        .find(|io| io.serves(gsi))
        .ok_or(RouteError::NoIoApicFor(gsi))?;
    io.route(gsi, vector, apic_id, active_low, level);
    Ok(gsi)
}

/// The GSI of ISA IRQ `irq`. PC chipsets wire the PIT (IRQ 0) to IO-APIC pin 2; a MADT
/// without the IRQ 0 override (QEMU's `microvm` has none) still has that wiring, so IRQ 0
/// maps to GSI 2 then too, with a warning, as other kernels do.
fn isa_gsi(info: &AcpiInfo, irq: u8) -> u32 {
    if irq == 0 && info.interrupt_overrides().iter().all(|o| o.irq != 0) {
        log::warn!("acpi: the MADT has no IRQ 0 override; using GSI 2, the PC wiring of the PIT");
        return 2;
    }
    info.isa_irq_to_gsi(irq)
}

/// Masks ISA IRQ `irq` at its IO-APIC.
pub fn mask_isa_irq(irq: u8) {
    if let Some(info) = acpi() {
        let gsi = isa_gsi(info, irq);
        if let Some(io) = io_apics(info).find(|io| io.serves(gsi)) {
            io.mask(gsi);
        }
    }
}
