//! PCI configuration space: ECAM windows (from the MCFG table) claimed as [`Mmio`], else
//! the legacy ports 0xCF8/0xCFC; `rexo-pci` does the walking and decoding on top.
#![allow(unsafe_code)] // the configuration ports are fixed, machine-wide ports

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use rexo_acpi::McfgSegment;
use rexo_pci::{Access, Address, ConfigSpace, Function, Hardware, Header, PciError};

use crate::{DeviceFunction, Mmio, Platform, PortWindow};

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
/// through the legacy ports.
fn read_legacy(address: u32) -> u32 {
    let _pair = PORTS.lock();
    ports().write32(0, address);
    ports().read32(4)
}

/// Writes the configuration register at `address` through the legacy ports.
fn write_legacy(address: u32, value: u32) {
    let _pair = PORTS.lock();
    ports().write32(0, address);
    ports().write32(4, value);
}

/// Whether the machine's one [`PciBus`] was made.
static BUS_MADE: AtomicBool = AtomicBool::new(false);

/// Configuration space of the whole machine: each MCFG window claimed once, the ports
/// for segment 0 when there are none; and the functions its walk found, each handed to
/// one driver ([`bind`](Self::bind)).
///
/// It is the capability to the machine's configuration space and its functions: there
/// is one (the kernel's, made before any driver runs, so [`new`](Self::new) refuses a
/// second), drivers never get it (their [`DeviceFunction`] reaches its own function
/// only), and a [`DeviceFunction`] is made only here, for a function of the walk, so a
/// driver cannot forge one with an I/O BAR over another device's ports:
///
/// ```compile_fail,E0624
/// fn forged(function: rexo_pci::Function, platform: &'static dyn rexo_devio::Platform,
///           bus: &'static rexo_devio::PciBus) -> rexo_devio::DeviceFunction {
///     rexo_devio::DeviceFunction::new(function, platform, bus)
/// }
/// ```
///
/// nor reach the configuration ports for any function:
///
/// ```compile_fail,E0603
/// let _ = rexo_devio::config::read_legacy(0x8000_0000);
/// ```
pub struct PciBus {
    /// The ECAM windows with their register windows.
    ecam: Vec<(McfgSegment, Mmio)>,
    /// The windows alone, for `rexo-pci`'s access.
    segments: Vec<McfgSegment>,
    /// The kernel, for the drivers of the functions found.
    platform: &'static dyn Platform,
    /// The functions the walk found, each with whether it was bound to a driver.
    found: spin::Mutex<Vec<(Function, bool)>>,
}

impl PciBus {
    /// The machine's configuration space, with the ECAM windows `segments` (one MiB per
    /// bus) claimed through `platform`; a window that cannot be claimed is left out and
    /// returned as the second value, so its segment is unreachable rather than wrongly
    /// reached through the ports. `None` when the bus was made before: there is one.
    pub fn new(
        platform: &'static dyn Platform,
        segments: &[McfgSegment],
    ) -> Option<(Self, Vec<McfgSegment>)> {
        let first = !BUS_MADE.swap(true, Ordering::AcqRel);
        first.then(|| Self::claim(platform, segments))
    }

    /// [`new`](Self::new) without the check that it is the first.
    fn claim(
        platform: &'static dyn Platform,
        segments: &[McfgSegment],
    ) -> (Self, Vec<McfgSegment>) {
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
        let found = spin::Mutex::new(Vec::new());
        let bus = Self {
            ecam,
            segments,
            platform,
            found,
        };
        (bus, refused)
    }

    /// Walks every segment, sizing and decoding each function found, recording it for
    /// [`bind`](Self::bind) and handing it to `visit` (see `rexo_pci::Access::scan`).
    pub fn scan(
        &self,
        mut visit: impl FnMut(Header, Result<Function, PciError>),
    ) -> Result<rexo_pci::Report, PciError> {
        Access::new(self, &self.segments).scan(|header, function| {
            if let Ok(function) = function {
                self.found.lock().push((function, false));
            }
            visit(header, function);
        })
    }

    /// The function at `at` for its driver, as the walk found it; `None` when the walk
    /// found none there, or it was bound already (one [`DeviceFunction`] per function,
    /// so its windows go to one driver).
    pub fn bind(&'static self, at: Address) -> Option<DeviceFunction> {
        let mut found = self.found.lock();
        let (function, bound) = found
            .iter_mut()
            .find(|(function, _)| function.header.address == at)?;
        (!*bound).then(|| {
            *bound = true;
            DeviceFunction::new(*function, self.platform, self)
        })
    }

    /// Reads the configuration register at `address` (the 0xCF8 layout, enable bit
    /// set) through the legacy ports, whatever way the bus reaches it otherwise
    /// (BareMetal's `b_system` PCI calls).
    pub fn read_legacy(&self, address: u32) -> u32 {
        read_legacy(address)
    }

    /// Writes the configuration register at `address` through the legacy ports.
    pub fn write_legacy(&self, address: u32, value: u32) {
        write_legacy(address, value);
    }

    /// Configuration space as `rexo-pci` reaches it (for its decoders that write, such
    /// as MSI programming).
    pub(crate) fn access(&self) -> Access<'_, &PciBus> {
        Access::new(self, &self.segments)
    }

    /// Reads register `offset` of the function at `at`.
    pub(crate) fn read(&self, at: Address, offset: u16) -> Result<u32, PciError> {
        Access::new(self, &self.segments).read32(at, offset)
    }

    /// Writes register `offset` of the function at `at`.
    pub(crate) fn write(&self, at: Address, offset: u16, value: u32) -> Result<(), PciError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostPlatform;
    use alloc::boxed::Box;
    use rexo_pci::{BarSlot, Capabilities};

    /// Device `device` of bus 0.
    fn address(device: u8) -> Address {
        Address::new(0, 0, device, 0).unwrap()
    }

    /// A virtio-net function at device `device` of bus 0, without BARs or capabilities.
    fn function_at(device: u8) -> Function {
        let mut raw = [0; 16];
        raw[0] = 0x1000_1AF4;
        let capabilities = Capabilities {
            count: 0,
            pcie: false,
            msi: None,
            msix: None,
            error: None,
        };
        Function {
            header: Header {
                address: address(device),
                raw,
            },
            bars: [BarSlot::Unused; 6],
            capabilities,
        }
    }

    #[test]
    fn a_function_is_bound_once_and_only_if_the_walk_found_it() {
        let bus: &'static PciBus =
            Box::leak(Box::new(PciBus::claim(HostPlatform::leaked(), &[]).0));
        bus.found.lock().push((function_at(3), false));
        assert!(bus.bind(address(4)).is_none(), "not found by the walk");
        let bound = bus.bind(address(3)).expect("found by the walk");
        assert_eq!(bound.function(), &function_at(3));
        assert!(bus.bind(address(3)).is_none(), "bound already");
    }

    #[test]
    fn the_machine_has_one_bus() {
        let platform = HostPlatform::leaked();
        assert!(PciBus::new(platform, &[]).is_some());
        assert!(PciBus::new(platform, &[]).is_none(), "a second bus");
    }
}
