//! PCI and PCIe configuration access for `rexo-pci`, which does the enumeration (through
//! bridges), BAR sizing and capability decoding. Configuration space is reached through
//! ECAM where the MCFG table lists windows, else through the legacy ports 0xCF8/0xCFC
//! (segment 0). The bus is walked once, on first use: sizing BARs briefly turns a
//! device's decoding off, which must not happen under a running driver. The functions,
//! with their sized BARs and MSI/MSI-X capabilities, go to the monitor's `pci`.

use alloc::vec::Vec;

use rexo_api::PciFunction;
use rexo_pci::{Access, Hardware};

use crate::{arch::cpu, mem, platform};

/// The configuration address port.
const ADDRESS: u16 = 0xCF8;
/// The configuration data port.
const DATA: u16 = 0xCFC;

/// Serialises the address/data pairs: every port access goes through here.
static PORTS: spin::Mutex<()> = spin::Mutex::new(());

/// Reads the configuration register at `address` (the 0xCF8 layout, enable bit set).
pub fn read_config(address: u32) -> u32 {
    let _ports = PORTS.lock();
    cpu::outl(ADDRESS, address);
    cpu::inl(DATA)
}

/// Writes the configuration register at `address` (the 0xCF8 layout, enable bit set).
pub fn write_config(address: u32, value: u32) {
    let _ports = PORTS.lock();
    cpu::outl(ADDRESS, address);
    cpu::outl(DATA, value);
}

/// The machine side of configuration access: the ports above and MMIO for ECAM.
struct Machine;

impl Hardware for Machine {
    fn port_read(&self, address: u32) -> u32 {
        read_config(address)
    }

    fn port_write(&self, address: u32, value: u32) {
        write_config(address, value);
    }

    fn mmio_read(&self, phys: u64) -> Option<u32> {
        mem::phys::mmio_read32(phys).ok()
    }

    fn mmio_write(&self, phys: u64, value: u32) -> bool {
        mem::phys::mmio_write32(phys, value).is_ok()
    }
}

/// The functions found by the walk.
static FOUND: spin::Once<Vec<PciFunction>> = spin::Once::new();

/// Walks every segment once (ECAM where MCFG lists windows, else the ports); a function
/// that cannot be described is logged and left out.
fn walk() -> Vec<PciFunction> {
    let mut found = Vec::new();
    let windows = platform::acpi().map_or(&[][..], |acpi| acpi.mcfg_segments());
    let report = Access::new(Machine, windows).scan(|header, function| match function {
        Ok(function) => found.push(function),
        Err(error) => log::warn!("pci: {}: {error}", header.address),
    });
    if let Err(error) = report {
        log::warn!("pci: walk stopped: {error}");
    }
    found
}

/// Every function the walk found (every segment), in the order it found them.
pub fn functions() -> Vec<PciFunction> {
    FOUND.call_once(walk).clone()
}
