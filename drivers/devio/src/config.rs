//! PCI configuration space: ECAM windows (from the MCFG table) claimed as [`Mmio`], else
//! the legacy ports 0xCF8/0xCFC; `rexo-pci` does the walking and decoding on top.
#![allow(unsafe_code)] // the configuration ports are fixed, machine-wide ports

use alloc::string::String;
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
    /// Whether segment 0 is reached through the legacy ports: only on a machine without
    /// MCFG windows, never for a segment whose window was refused.
    ports: bool,
    /// The kernel, for the drivers of the functions found.
    platform: &'static dyn Platform,
    /// The functions the walk found (walked once, on first use).
    found: spin::Once<Vec<Function>>,
    /// The addresses of the functions among them bound to a driver.
    bound: spin::Mutex<Vec<Address>>,
}

impl PciBus {
    /// The machine's configuration space, with the ECAM windows `segments` (one MiB per
    /// bus) claimed through `platform`. A window that is malformed (a base off a MiB,
    /// buses running backwards or past the end of the address space) or cannot be claimed
    /// is left out and returned as the second value with the reason; its segment is then
    /// unreachable rather than wrongly reached through the ports (with MCFG windows, the
    /// ports reach nothing: a walk there finds no function). `None` when the bus was made
    /// before: there is one.
    pub fn new(
        platform: &'static dyn Platform,
        segments: &[McfgSegment],
    ) -> Option<(Self, Vec<(McfgSegment, String)>)> {
        let first = !BUS_MADE.swap(true, Ordering::AcqRel);
        first.then(|| Self::claim(platform, segments))
    }

    /// [`new`](Self::new) without the check that it is the first.
    fn claim(
        platform: &'static dyn Platform,
        segments: &[McfgSegment],
    ) -> (Self, Vec<(McfgSegment, String)>) {
        let mut ecam = Vec::new();
        let mut refused = Vec::new();
        for segment in segments {
            match claim_window(platform, segment) {
                Ok(window) => ecam.push((*segment, window)),
                Err(why) => refused.push((*segment, why)),
            }
        }
        let bus = Self {
            segments: ecam.iter().map(|(segment, _)| *segment).collect(),
            ports: segments.is_empty(),
            ecam,
            platform,
            found: spin::Once::new(),
            bound: spin::Mutex::new(Vec::new()),
        };
        (bus, refused)
    }

    /// Every function on every segment, in the order the walk found them (walked on the
    /// first call only: sizing BARs briefly turns a device's decoding off, which must
    /// not happen under a running driver); one that cannot be described is logged and
    /// left out.
    pub fn functions(&self) -> &[Function] {
        self.found.call_once(|| {
            let mut found = Vec::new();
            let report = self.scan(|header, function| match function {
                Ok(function) => found.push(function),
                Err(error) => log::warn!("pci: {}: {error}", header.address),
            });
            if let Err(error) = report {
                log::warn!("pci: walk stopped: {error}");
            }
            found
        })
    }

    /// Walks every segment, sizing and decoding each function found and handing it to
    /// `visit` (see `rexo_pci::Access::scan`).
    fn scan(
        &self,
        visit: impl FnMut(Header, Result<Function, PciError>),
    ) -> Result<rexo_pci::Report, PciError> {
        Access::new(self, &self.segments).scan(visit)
    }

    /// The function at `at` for its driver, as the walk ([`functions`](Self::functions))
    /// found it; `None` when the walk found none there, or it was bound already (one
    /// [`DeviceFunction`] per function, so its windows go to one driver).
    pub fn bind(&'static self, at: Address) -> Option<DeviceFunction> {
        let function = self
            .found
            .get()?
            .iter()
            .find(|function| function.header.address == at)?;
        let mut bound = self.bound.lock();
        (!bound.contains(&at)).then(|| {
            bound.push(at);
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

/// The register window of ECAM window `segment`, claimed through `platform`, or why not.
fn claim_window(platform: &dyn Platform, segment: &McfgSegment) -> Result<Mmio, String> {
    if !segment.base.is_multiple_of(1 << 20) {
        return Err(String::from("its base is not aligned to a MiB"));
    }
    if segment.start_bus > segment.end_bus {
        return Err(String::from("its buses run backwards"));
    }
    let buses = u64::from(segment.end_bus - segment.start_bus) + 1;
    let base = segment.base.checked_add(u64::from(segment.start_bus) << 20);
    let base = base.filter(|base| base.checked_add(buses << 20).is_some());
    let base = base.ok_or_else(|| String::from("it runs past the end of the address space"))?;
    // SAFETY: the window is the MCFG table's configuration window of the segment.
    let window = unsafe { platform.claim_mmio(base, buses << 20) }?;
    Ok(Mmio::new(window))
}

impl Hardware for &PciBus {
    /// All ones, as where nothing answers, on a machine with MCFG windows.
    fn port_read(&self, address: u32) -> u32 {
        if self.ports {
            read_legacy(address)
        } else {
            u32::MAX
        }
    }

    /// Dropped on a machine with MCFG windows.
    fn port_write(&self, address: u32, value: u32) {
        if self.ports {
            write_legacy(address, value);
        }
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
    use rexo_api::DeviceError;
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

    /// A bus on the host whose walk found `functions`, none of them bound.
    fn host_bus(functions: &[Function]) -> &'static PciBus {
        let bus = Box::leak(Box::new(PciBus::claim(HostPlatform::leaked(), &[]).0));
        bus.found.call_once(|| functions.to_vec());
        bus
    }

    #[test]
    fn a_function_is_bound_once_and_only_if_the_walk_found_it() {
        let bus = host_bus(&[function_at(3)]);
        assert!(bus.bind(address(4)).is_none(), "not found by the walk");
        let bound = bus.bind(address(3)).expect("found by the walk");
        assert_eq!(bound.function(), &function_at(3));
        assert!(bus.bind(address(3)).is_none(), "bound already");
    }

    /// The MCFG window of segment 0 for buses `start_bus..=end_bus`, at `base`.
    fn window(base: u64, start_bus: u8, end_bus: u8) -> McfgSegment {
        McfgSegment {
            base,
            segment: 0,
            start_bus,
            end_bus,
        }
    }

    #[test]
    fn malformed_ecam_windows_are_refused_before_they_are_claimed() {
        let windows = [
            window(0xB000_0004, 0, 255),
            window(0xB000_0000, 2, 1),
            window(u64::MAX - 0xF_FFFF, 0, 0),
            window(0xFFFF_FFFF_FFF0_0000, 1, 1),
            window(0xB000_0000, 0, 255),
        ];
        let (bus, refused) = PciBus::claim(HostPlatform::leaked(), &windows);
        let reasons: Vec<_> = refused.iter().map(|(_, why)| why.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "its base is not aligned to a MiB",
                "its buses run backwards",
                "it runs past the end of the address space",
                "it runs past the end of the address space",
                "no devices on the host",
            ]
        );
        assert!(bus.ecam.is_empty());
    }

    #[test]
    fn a_segment_whose_ecam_window_was_refused_is_not_reached_through_the_ports() {
        let (bus, refused) = PciBus::claim(HostPlatform::leaked(), &[window(0xB000_0004, 0, 255)]);
        assert_eq!(refused.len(), 1);
        assert_eq!(bus.read(address(0), 0), Ok(u32::MAX), "nothing answers");
        assert_eq!(bus.scan(|_, _| ()).map(|report| report.functions), Ok(0));
    }

    #[test]
    fn functions_get_no_port_window_over_another_functions_or_the_kernels_ports() {
        let io = |address| {
            BarSlot::Bar(rexo_pci::Bar {
                kind: rexo_pci::BarKind::Io,
                address,
                size: 0x20,
            })
        };
        let functions = [(20, 0xD000), (21, 0xD010), (22, 0x60)].map(|(device, bar)| {
            let mut function = function_at(device);
            function.header.address = Address::new(0, 9, device, 0).unwrap();
            function.bars[0] = io(bar);
            function
        });
        let bus = host_bus(&functions);
        let bind = |device| bus.bind(Address::new(0, 9, device, 0).unwrap()).unwrap();
        let (first, overlapping, keyboard) = (bind(20), bind(21), bind(22));
        assert!(first.ports(0).is_ok());
        assert!(first.ports(0).is_ok(), "its own BAR again");
        assert!(matches!(
            overlapping.ports(0),
            Err(DeviceError::BadBar { .. })
        ));
        assert!(matches!(keyboard.ports(0), Err(DeviceError::BadBar { .. })));
    }

    #[test]
    fn intx_is_the_line_the_walk_read_whatever_the_driver_writes_there() {
        let mut function = function_at(23);
        function.header.address = Address::new(0, 10, 23, 0).unwrap();
        function.header.raw[15] = 0x0000_010B; // INTA routed to IRQ 11
        let bus = host_bus(&[function]);
        let bound = bus.bind(function.header.address).unwrap();
        bound.config_write(0x3C, 0x0000_0105).unwrap(); // IRQ 5 instead
        assert_eq!(bound.intx().map(|wake| wake.irq()).ok(), Some(11));
    }

    #[test]
    fn an_ide_channel_claims_its_ports_once_both_blocks_or_neither_and_its_line_none() {
        let at = |device| Address::new(0, 11, device, 0).unwrap();
        let ide_function = |device| {
            let mut function = function_at(device);
            function.header.address = at(device);
            function.header.raw[2] = 0x0101_8000; // IDE, both channels in compatibility mode
            function
        };
        let mut other = function_at(26);
        other.header.address = at(26);
        other.bars[0] = BarSlot::Bar(rexo_pci::Bar {
            kind: rexo_pci::BarKind::Io,
            address: 0x374,
            size: 4,
        });
        let bus = host_bus(&[ide_function(24), ide_function(25), other]);
        let (ide, next, other) = (
            bus.bind(at(24)).unwrap(),
            bus.bind(at(25)).unwrap(),
            bus.bind(at(26)).unwrap(),
        );
        let claims = crate::port::tests::claims_of;
        assert_eq!(ide.legacy_ide_line(1).map(|line| line.irq()).ok(), Some(15));
        assert_eq!(claims(at(24)), 0, "the line claims no ports");
        other.ports(0).unwrap(); // the secondary channel's control port
        assert!(matches!(
            ide.legacy_ide_ports(1),
            Err(DeviceError::Unsupported(_))
        ));
        assert_eq!(claims(at(24)), 0, "nothing kept of the refused channel");
        assert!(ide.legacy_ide_ports(0).is_ok());
        assert!(ide.legacy_ide_ports(0).is_ok(), "its own channel again");
        assert_eq!(claims(at(24)), 2, "each block recorded once");
        assert!(
            next.legacy_ide_ports(0).is_err(),
            "another function's channel"
        );
    }

    #[test]
    fn the_machine_has_one_bus() {
        let platform = HostPlatform::leaked();
        assert!(PciBus::new(platform, &[]).is_some());
        assert!(PciBus::new(platform, &[]).is_none(), "a second bus");
    }
}
