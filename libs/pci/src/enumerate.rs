//! Finding every function of a segment.
//!
//! The walk starts at the segment's first bus (and, when function 0 of device 0 there
//! is a multi-function host bridge, at the root bus each of its functions stands for)
//! and follows the secondary bus number of every PCI-to-PCI bridge it meets, so only
//! buses that exist are scanned. Each bus is scanned at most once, whatever the bridges
//! say, so bridges that point at each other cannot make it loop.
//!
//! Firmware that left bridges unnumbered (secondary bus 0, or a number not above the
//! bridge's own bus or outside the segment's range) is tolerated: such a bridge is
//! counted in [`Report::unnumbered_bridges`], and once the walk is done every remaining
//! bus of the range is scanned by brute force, so functions the firmware did number are
//! still found. Buses behind an unnumbered bridge stay unreachable: this layer does not
//! renumber bridges, since that would move the windows the firmware assigned.

use core::ops::RangeInclusive;

use crate::{Address, ConfigSpace, Header, PciError};

/// What a walk did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Functions found.
    pub functions: u32,
    /// Buses scanned.
    pub buses_scanned: u32,
    /// PCI-to-PCI bridges without a usable secondary bus number (every one of a
    /// segment's 65,536 functions can be one, so the count is wider than 16 bits).
    pub unnumbered_bridges: u32,
    /// The remaining buses were scanned by brute force (because of such bridges).
    pub brute_force: bool,
}

/// A set of bus numbers.
#[derive(Clone, Copy, Default)]
struct BusSet([u64; 4]);

impl BusSet {
    fn insert(&mut self, bus: u8) {
        self.0[usize::from(bus / 64)] |= 1 << (bus % 64);
    }

    fn contains(&self, bus: u8) -> bool {
        self.0[usize::from(bus / 64)] & 1 << (bus % 64) != 0
    }
}

/// Finds every function of segment `segment` whose buses are `buses` (the MCFG range;
/// 0..=255 for the legacy ports), calling `visit` with each function's header, in the
/// order found. `visit` gets the configuration space back, to size BARs or read
/// capabilities ([`crate::Function::describe`]). A failed access stops the walk.
pub fn enumerate<C: ConfigSpace>(
    cs: &mut C,
    segment: u16,
    buses: RangeInclusive<u8>,
    mut visit: impl FnMut(&mut C, Header),
) -> Result<Report, PciError> {
    let (first, last) = (*buses.start(), *buses.end());
    let mut report = Report::default();
    let mut pending = BusSet::default();
    let mut scanned = BusSet::default();
    pending.insert(first);
    let root = Address::new(segment, first, 0, 0)?;
    if let Some(host) = Header::read(cs, root)?
        && host.class().0 == 6
        && host.class().1 == 0
        && host.multifunction()
    {
        for function in 1..8u8 {
            let Some(bus) = first.checked_add(function) else {
                break;
            };
            let address = Address::new(segment, first, 0, function)?;
            if bus <= last && Header::read(cs, address)?.is_some() {
                pending.insert(bus);
            }
        }
    }
    while let Some(bus) = (first..=last).find(|&b| pending.contains(b) && !scanned.contains(b)) {
        scanned.insert(bus);
        scan_bus(
            cs,
            segment,
            bus,
            &buses,
            &mut pending,
            &mut report,
            &mut visit,
        )?;
    }
    if report.unnumbered_bridges > 0 {
        report.brute_force = true;
        for bus in buses.clone() {
            if !scanned.contains(bus) {
                scanned.insert(bus);
                scan_bus(
                    cs,
                    segment,
                    bus,
                    &buses,
                    &mut pending,
                    &mut report,
                    &mut visit,
                )?;
            }
        }
    }
    Ok(report)
}

/// Scans the 32 devices of `bus`, visiting every function and noting bridges' buses.
fn scan_bus<C: ConfigSpace>(
    cs: &mut C,
    segment: u16,
    bus: u8,
    buses: &RangeInclusive<u8>,
    pending: &mut BusSet,
    report: &mut Report,
    visit: &mut impl FnMut(&mut C, Header),
) -> Result<(), PciError> {
    report.buses_scanned += 1;
    for device in 0..32 {
        let Some(first) = Header::read(cs, Address::new(segment, bus, device, 0)?)? else {
            continue;
        };
        let count = if first.multifunction() { 8 } else { 1 };
        for function in 0..count {
            let header = if function == 0 {
                first
            } else {
                match Header::read(cs, Address::new(segment, bus, device, function)?)? {
                    Some(header) => header,
                    None => continue,
                }
            };
            if let Some((secondary, _)) = header.bridge_buses() {
                if secondary > bus && buses.contains(&secondary) {
                    pending.insert(secondary);
                } else {
                    report.unnumbered_bridges += 1;
                }
            }
            report.functions += 1;
            visit(cs, header);
        }
    }
    Ok(())
}
