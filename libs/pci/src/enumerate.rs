//! Finding every function of a segment.
//!
//! The walk starts at the segment's first bus and follows the secondary bus number of
//! every PCI-to-PCI bridge it meets. Each bus is scanned at most once, whatever the
//! bridges say, so bridges that point at each other cannot make it loop.
//!
//! No bridge leads to a peer root bus: the root bus of a second host bridge (bus 0x80 on
//! a two-socket Xeon or EPYC, QEMU's `pxb-pcie`), or of each function of a multi-function
//! host bridge. Without the ACPI namespace (`_BBN`) their numbers are unknown, so once
//! the bridges are followed every bus of the range not yet scanned is probed as Linux
//! does without ACPI (`pcibios_fixup_peer_bridges`): the vendor ID of function 0 of its
//! 32 devices. A bus where one answers is scanned, with the buses behind its bridges;
//! one where none does is left (no function without a function 0).
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
    /// Buses scanned whole (not counting those only probed for a peer root bus).
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
    let mut unprobed = buses.clone();
    loop {
        while let Some(bus) = (first..=last).find(|&b| pending.contains(b) && !scanned.contains(b))
        {
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
            if report.brute_force {
                break;
            }
            // Every bus of the range, in order, by the same loop.
            report.brute_force = true;
            buses.clone().for_each(|bus| pending.insert(bus));
            continue;
        }
        match find_peer_root(cs, segment, &mut unprobed, &scanned)? {
            Some(bus) => pending.insert(bus),
            None => break,
        }
    }
    Ok(report)
}

/// The next bus of `unprobed` not yet scanned where function 0 of some device answers
/// (consuming the buses probed), if any.
fn find_peer_root<C: ConfigSpace>(
    cs: &C,
    segment: u16,
    unprobed: &mut RangeInclusive<u8>,
    scanned: &BusSet,
) -> Result<Option<u8>, PciError> {
    for bus in unprobed.by_ref().filter(|&bus| !scanned.contains(bus)) {
        for device in 0..32 {
            if Header::read(cs, Address::new(segment, bus, device, 0)?)?.is_some() {
                return Ok(Some(bus));
            }
        }
    }
    Ok(None)
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
