//! PCI configuration space: ECAM windows (from the MCFG table) claimed as [`Mmio`], else
//! the legacy ports 0xCF8/0xCFC; `rexo-pci` does the walking and decoding on top.
#![allow(unsafe_code)] // the configuration ports are fixed, machine-wide ports

use alloc::vec::Vec;

use rexo_acpi::McfgSegment;
use rexo_pci::{Access, Address, ConfigSpace, Function, Hardware, Header, PciError};

use crate::{Mmio, Platform, PortWindow};

/// The configuration address port; the data port follows at +4.
const CONFIG_PORTS: u16 = 0xCF8;

/// Serialises the legacy address/data pairs: every access to the two ports goes through here.
static PORTS: spin::Mutex<()> = spin::Mutex::new(());

/// The two configuration ports.
fn ports() -> PortWindow {
    // SAFETY: 0xCF8..0xD00 are the machine's configuration ports; every use below holds
    // `PORTS`, so address/data pairs never interleave.
    unsafe { PortWindow::new(CONFIG_PORTS, 8) }.expect("0xCF8 + 8 fits in the port space")
}

/// Reads the configuration register at `address` (the 0xCF8 layout, enable bit set)
/// through the legacy ports (BareMetal's `b_system` PCI calls use this).
pub fn read_legacy(address: u32) -> u32 {
    let _pair = PORTS.lock();
    ports().write32(0, address);
    ports().read32(4)
}

/// Writes the configuration register at `address` through the legacy ports.
pub fn write_legacy(address: u32, value: u32) {
    let _pair = PORTS.lock();
    ports().write32(0, address);
    ports().write32(4, value);
}

/// Configuration space of the whole machine: each MCFG window claimed once, the ports
/// for segment 0 when there are none.
pub struct PciBus {
    /// The ECAM windows with their register windows.
    ecam: Vec<(McfgSegment, Mmio)>,
    /// The windows alone, for `rexo-pci`'s access.
    segments: Vec<McfgSegment>,
}

impl PciBus {
    /// Claims the ECAM windows `segments` (one MiB per bus) through `platform`; a window
    /// that cannot be claimed is left out and returned as the second value, so its
    /// segment is unreachable rather than wrongly reached through the ports.
    pub fn new(platform: &dyn Platform, segments: &[McfgSegment]) -> (Self, Vec<McfgSegment>) {
        let mut ecam = Vec::new();
        let mut refused = Vec::new();
        for segment in segments {
            let buses =
                u64::from(segment.end_bus) + 1 - u64::from(segment.start_bus.min(segment.end_bus));
            let base = segment.base + (u64::from(segment.start_bus) << 20);
            // SAFETY: the window is the MCFG table's configuration window of the segment.
            match unsafe { platform.claim_mmio(base, buses << 20) } {
                Ok(window) => ecam.push((*segment, Mmio::new(window))),
                Err(_) => refused.push(*segment),
            }
        }
        let segments = ecam.iter().map(|(segment, _)| *segment).collect();
        (Self { ecam, segments }, refused)
    }

    /// Walks every segment, sizing and decoding each function found and handing it to
    /// `visit` (see `rexo_pci::Access::scan`).
    pub fn scan(
        &self,
        visit: impl FnMut(Header, Result<Function, PciError>),
    ) -> Result<rexo_pci::Report, PciError> {
        Access::new(self, &self.segments).scan(visit)
    }

    /// Configuration space as `rexo-pci` reaches it (for its decoders that write, such
    /// as MSI programming).
    pub fn access(&self) -> Access<'_, &PciBus> {
        Access::new(self, &self.segments)
    }

    /// Reads register `offset` of the function at `at`.
    pub fn read(&self, at: Address, offset: u16) -> Result<u32, PciError> {
        Access::new(self, &self.segments).read32(at, offset)
    }

    /// Writes register `offset` of the function at `at`.
    pub fn write(&self, at: Address, offset: u16, value: u32) -> Result<(), PciError> {
        Access::new(self, &self.segments).write32(at, offset, value)
    }

    /// The ECAM register at physical address `phys`, as (window, offset).
    fn ecam_register(&self, phys: u64) -> Option<(&Mmio, usize)> {
        self.ecam.iter().find_map(|(_, window)| {
            let offset = phys.checked_sub(window.phys())?;
            (offset + 4 <= window.len() as u64).then_some((window, offset as usize))
        })
    }
}

impl Hardware for &PciBus {
    fn port_read(&self, address: u32) -> u32 {
        read_legacy(address)
    }

    fn port_write(&self, address: u32, value: u32) {
        write_legacy(address, value);
    }

    fn mmio_read(&self, phys: u64) -> Option<u32> {
        self.ecam_register(phys)
            .map(|(window, offset)| window.read32(offset))
    }

    fn mmio_write(&self, phys: u64, value: u32) -> bool {
        self.ecam_register(phys)
            .map(|(window, offset)| window.write32(offset, value))
            .is_some()
    }
}
