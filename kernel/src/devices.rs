//! The machine's devices: the PCI bus and the drivers bound to it (`rexo-drivers`), over
//! the kernel's services to drivers (`mem::phys::DRIVER_PLATFORM`).

use rexo_drivers::Machine;

use crate::{mem::phys::DRIVER_PLATFORM, platform};

/// The bus, its functions and their drivers.
static MACHINE: spin::Once<Machine> = spin::Once::new();

/// The bus (its ECAM windows claimed on first use), its functions (walked once) and the
/// drivers bound to them (bound once).
pub fn machine() -> &'static Machine {
    MACHINE.call_once(|| {
        let windows = platform::acpi().map_or(&[][..], |acpi| acpi.mcfg_segments());
        Machine::new(&DRIVER_PLATFORM, windows)
    })
}

/// Takes back every device the app of owner number `owner` holds; binds nothing.
pub fn revoke_all_of(owner: u16) {
    if let Some(machine) = MACHINE.get() {
        machine.revoke_all_of(owner);
    }
}
