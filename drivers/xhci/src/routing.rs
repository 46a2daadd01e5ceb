//! The port switch of Intel's 7, 8 and 9-series PCH and Bay Trail xHCI controllers:
//! their USB 2 ports are shared with an EHCI controller and stay routed to it, and their
//! SuperSpeed terminations off, until the OS switches them (the PCH datasheets' xHCI
//! configuration registers XUSB2PR, XUSB2PRM, USB3_PSSEN and USB3PRM; Linux's
//! `usb_enable_intel_xhci_ports`, coreboot's and Intel's reference code do the same).
//! Rexo has no EHCI driver, so an unswitched port shows nothing, keyboards included.

use rexo_api::DeviceError;
use rexo_pci::Address;

/// Intel's PCI vendor ID.
const INTEL: u16 = 0x8086;
/// The xHCI controllers whose ports are switched: Panther Point (7-series), Lynx Point
/// (8-series) and Lynx Point-LP, Wildcat Point (9-series) and Wildcat Point-LP, and Bay
/// Trail. Later PCHs have no EHCI to share ports with.
const SWITCHABLE: [u16; 6] = [0x1E31, 0x8C31, 0x9C31, 0x8CB1, 0x9CB1, 0x0F35];

/// XUSB2PR: which USB 2 ports the xHCI controller drives (a 1 per port; the rest go
/// to EHCI).
pub(crate) const XUSB2PR: u16 = 0xD0;
/// XUSB2PRM: the USB 2 ports the OS may give to the xHCI controller.
pub(crate) const USB2PRM: u16 = 0xD4;
/// USB3_PSSEN: the ports whose SuperSpeed terminations are on.
pub(crate) const USB3_PSSEN: u16 = 0xD8;
/// USB3PRM: the ports whose SuperSpeed terminations the OS may turn on.
pub(crate) const USB3PRM: u16 = 0xDC;

/// A function's configuration registers (dword `offset`s), as the switch reaches them.
pub(crate) trait Config {
    /// Reads the register at `offset`.
    fn read(&self, offset: u16) -> Result<u32, DeviceError>;
    /// Writes the register at `offset`.
    fn write(&self, offset: u16, value: u32) -> Result<(), DeviceError>;
}

impl Config for rexo_devio::DeviceFunction {
    fn read(&self, offset: u16) -> Result<u32, DeviceError> {
        self.config_read(offset)
    }

    fn write(&self, offset: u16, value: u32) -> Result<(), DeviceError> {
        self.config_write(offset, value)
    }
}

/// Switches every port the firmware lets go to the xHCI controller `vendor`:`device`
/// when it is one that shares its ports with EHCI: SuperSpeed first (USB3_PSSEN from
/// USB3PRM), so that a USB 3 device connects at its speed, then USB 2 (XUSB2PR from
/// XUSB2PRM). Returns the ports now routed, as (USB 2, SuperSpeed) read back; `None`
/// for any other controller, whose registers are not touched.
pub(crate) fn switch_ports(
    vendor: u16,
    device: u16,
    config: &impl Config,
) -> Result<Option<(u32, u32)>, DeviceError> {
    if vendor != INTEL || !SWITCHABLE.contains(&device) {
        return Ok(None);
    }
    config.write(USB3_PSSEN, config.read(USB3PRM)?)?;
    config.write(XUSB2PR, config.read(USB2PRM)?)?;
    Ok(Some((config.read(XUSB2PR)?, config.read(USB3_PSSEN)?)))
}

/// Switches the ports of the controller at `address` as [`switch_ports`] does and logs
/// the ports routed. A configuration-space error is warned of and left at that: the
/// switch only decides which ports the controller drives, so it is started all the same
/// (a keyboard on a port left to EHCI is not seen).
pub(crate) fn switch_ports_or_warn(
    address: Address,
    vendor: u16,
    device: u16,
    config: &impl Config,
) {
    match switch_ports(vendor, device, config) {
        Ok(Some((usb2, superspeed))) => log::info!(
            "{address} xhci: ports switched over from EHCI: USB 2 {usb2:#x}, SuperSpeed {superspeed:#x}"
        ),
        Ok(None) => {}
        Err(error) => log::warn!(
            "{address} xhci: ports not all switched over from EHCI ({error}); starting it \
             anyway: a keyboard on a port left to EHCI is not seen"
        ),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    /// Configuration space in memory: registers read back what was written (0 if
    /// never), and every write is kept; an access to the register `failing` fails.
    #[derive(Default)]
    pub(crate) struct FakeConfig {
        /// The registers' values.
        registers: RefCell<BTreeMap<u16, u32>>,
        /// The writes made, as (offset, value), oldest first.
        writes: RefCell<Vec<(u16, u32)>>,
        /// The register whose reads and writes fail (`PciError::Access` of its offset).
        failing: Option<u16>,
    }

    impl FakeConfig {
        /// The error of an access to the `failing` register at `offset`, if it is it.
        fn fails(&self, offset: u16) -> Result<(), DeviceError> {
            match self.failing {
                Some(failing) if failing == offset => Err(DeviceError::Config(
                    rexo_pci::PciError::Access(u64::from(offset)),
                )),
                _ => Ok(()),
            }
        }
    }

    impl Config for FakeConfig {
        fn read(&self, offset: u16) -> Result<u32, DeviceError> {
            self.fails(offset)?;
            Ok(self.registers.borrow().get(&offset).copied().unwrap_or(0))
        }

        fn write(&self, offset: u16, value: u32) -> Result<(), DeviceError> {
            self.fails(offset)?;
            self.writes.borrow_mut().push((offset, value));
            self.registers.borrow_mut().insert(offset, value);
            Ok(())
        }
    }

    /// A controller whose firmware lets the OS have ports 0 to 3, USB 2 and SuperSpeed
    /// alike, and routed none of them.
    fn four_switchable_ports() -> FakeConfig {
        four_switchable_ports_failing_at(None)
    }

    /// [`four_switchable_ports`] whose accesses to the register at `failing` fail.
    pub(crate) fn four_switchable_ports_failing_at(failing: Option<u16>) -> FakeConfig {
        let config = FakeConfig {
            failing,
            ..FakeConfig::default()
        };
        config
            .registers
            .borrow_mut()
            .extend([(USB2PRM, 0xF), (USB3PRM, 0xF)]);
        config
    }

    #[test]
    fn a_panther_points_ports_are_switched_to_xhci_and_another_controller_is_untouched() {
        let config = four_switchable_ports();
        assert_eq!(switch_ports(0x8086, 0x1E31, &config), Ok(Some((0xF, 0xF))));
        assert_eq!(
            (config.read(XUSB2PR), config.read(USB3_PSSEN)),
            (Ok(0xF), Ok(0xF))
        );
        assert_eq!(
            *config.writes.borrow(),
            [(USB3_PSSEN, 0xF), (XUSB2PR, 0xF)],
            "SuperSpeed first"
        );
        for (vendor, device) in [(0x1912, 0x0014), (0x8086, 0xA12F), (0x1B36, 0x0D)] {
            let config = four_switchable_ports();
            assert_eq!(switch_ports(vendor, device, &config), Ok(None));
            assert_eq!(*config.writes.borrow(), [], "{vendor:04x}:{device:04x}");
        }
    }
}
