//! The two ways to configuration space, chosen per access: ECAM where an MCFG window
//! covers the segment and bus, else the legacy ports (segment 0, 256 bytes per function).

use rexo_acpi::McfgSegment;

use crate::{Address, ConfigSpace, Function, Header, PciError, Report, enumerate};

/// The machine operations configuration access needs; the kernel supplies them.
pub trait Hardware {
    /// Writes `address` (the 0xCF8 layout) to port 0xCF8 and reads port 0xCFC.
    fn port_read(&self, address: u32) -> u32;
    /// Writes `address` (the 0xCF8 layout) to port 0xCF8 and `value` to port 0xCFC.
    fn port_write(&self, address: u32, value: u32);
    /// Reads the 32-bit device register at physical address `phys`; `None` when it is
    /// not device memory the kernel can reach.
    fn mmio_read(&self, phys: u64) -> Option<u32>;
    /// Writes the 32-bit device register at `phys`; false when it is not device memory.
    fn mmio_write(&self, phys: u64, value: u32) -> bool;
}

/// Configuration space through `ecam` windows (the MCFG table's), else the ports.
pub struct Access<'a, H> {
    /// The machine.
    hw: H,
    /// The ECAM windows, possibly none.
    ecam: &'a [McfgSegment],
}

impl<'a, H: Hardware> Access<'a, H> {
    /// Access through `hw`, with the MCFG windows `ecam` (empty: ports only).
    pub fn new(hw: H, ecam: &'a [McfgSegment]) -> Self {
        Self { hw, ecam }
    }

    /// The physical address of register `offset` of `at` in an ECAM window, if one
    /// covers it.
    fn ecam_register(&self, at: Address, offset: u16) -> Result<Option<u64>, PciError> {
        let window = self
            .ecam
            .iter()
            .find(|w| w.segment == at.segment && (w.start_bus..=w.end_bus).contains(&at.bus));
        let Some(window) = window else {
            if at.segment != 0 || !self.ecam.is_empty() {
                return Err(PciError::NoSuchBus {
                    segment: at.segment,
                    bus: at.bus,
                });
            }
            return Ok(None);
        };
        let register = window.base.checked_add(at.ecam_offset(offset)?);
        register.map(Some).ok_or(PciError::Access(window.base))
    }

    /// Walks every segment (each MCFG window, or segment 0 through the ports), sizing
    /// and decoding each function found and handing it to `visit` with its header. Stops
    /// at the first failed access; the report sums the segments (saturating).
    pub fn scan(
        &mut self,
        mut visit: impl FnMut(Header, Result<Function, PciError>),
    ) -> Result<Report, PciError> {
        let ports = [McfgSegment {
            base: 0,
            segment: 0,
            start_bus: 0,
            end_bus: 255,
        }];
        let windows = if self.ecam.is_empty() {
            &ports[..]
        } else {
            self.ecam
        };
        let mut total = Report::default();
        for w in windows {
            let report = enumerate(self, w.segment, w.start_bus..=w.end_bus, |cs, header| {
                visit(header, Function::describe(cs, header));
            })?;
            // MCFG can list any number of windows, so the sums saturate.
            total.functions = total.functions.saturating_add(report.functions);
            total.buses_scanned = total.buses_scanned.saturating_add(report.buses_scanned);
            total.unnumbered_bridges = total
                .unnumbered_bridges
                .saturating_add(report.unnumbered_bridges);
            total.brute_force |= report.brute_force;
        }
        Ok(total)
    }
}

impl<H: Hardware> ConfigSpace for Access<'_, H> {
    fn read32(&self, at: Address, offset: u16) -> Result<u32, PciError> {
        match self.ecam_register(at, offset)? {
            Some(phys) => self.hw.mmio_read(phys).ok_or(PciError::Access(phys)),
            None => Ok(self.hw.port_read(at.legacy(offset)?)),
        }
    }

    fn write32(&mut self, at: Address, offset: u16, value: u32) -> Result<(), PciError> {
        match self.ecam_register(at, offset)? {
            Some(phys) if self.hw.mmio_write(phys, value) => Ok(()),
            Some(phys) => Err(PciError::Access(phys)),
            None => {
                self.hw.port_write(at.legacy(offset)?, value);
                Ok(())
            }
        }
    }
}
