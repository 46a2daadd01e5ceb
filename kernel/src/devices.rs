//! The machine's devices: the PCI bus (`rexo-devio`'s configuration access, ECAM from the
//! MCFG table, else the ports), walked once on first use (sizing BARs briefly turns a
//! device's decoding off, which must not happen under a running driver), then the
//! drivers bound to what it found (`rexo-drivers`), also once.

use alloc::vec::Vec;

use rexo_devio::PciBus;
use rexo_drivers::Registry;
use rexo_pci::Function;

use crate::{mem::phys::DRIVER_PLATFORM, platform};

/// Configuration space, with the ECAM windows claimed.
static BUS: spin::Once<PciBus> = spin::Once::new();
/// The functions the walk found.
static FOUND: spin::Once<Vec<Function>> = spin::Once::new();
/// The drivers bound to them.
static REGISTRY: spin::Once<Registry> = spin::Once::new();

/// Configuration space.
fn bus() -> &'static PciBus {
    BUS.call_once(|| {
        let windows = platform::acpi().map_or(&[][..], |acpi| acpi.mcfg_segments());
        let (bus, refused) = PciBus::new(&DRIVER_PLATFORM, windows);
        for segment in refused {
            log::warn!(
                "pci: ECAM window of segment {} at {:#x} cannot be claimed",
                segment.segment,
                segment.base
            );
        }
        bus
    })
}

/// Every function on every segment, in the order the walk found them; one that cannot
/// be described is logged and left out.
pub fn functions() -> &'static [Function] {
    FOUND.call_once(|| {
        let mut found = Vec::new();
        let report = bus().scan(|header, function| match function {
            Ok(function) => found.push(function),
            Err(error) => log::warn!("pci: {}: {error}", header.address),
        });
        if let Err(error) = report {
            log::warn!("pci: walk stopped: {error}");
        }
        found
    })
}

/// The bound devices (binding them on the first call).
pub fn registry() -> &'static Registry {
    REGISTRY.call_once(|| Registry::bind(functions(), &DRIVER_PLATFORM, bus()))
}
