//! The bus layer against a simulated configuration space: bridges, multi-function
//! devices, BAR sizing (32/64-bit, I/O, above 4 GiB), capabilities and garbage.

use std::cell::RefCell;
use std::collections::BTreeMap;

use rexo_acpi::McfgSegment;
use rexo_pci::{
    Access, Address, Bar, BarError, BarKind, BarSlot, Capabilities, ConfigSpace, Function,
    Hardware, Header, Msi, PciError, enumerate, probe_bars,
};

/// One simulated function: 4 KiB of registers and the writable bits of each BAR.
#[derive(Clone)]
struct Dev {
    regs: [u32; 1024],
    masks: [u32; 6],
    /// Registers (by offset) that ignore writes.
    read_only: Vec<u16>,
}

/// A configuration space of simulated functions; absent ones read as all ones.
#[derive(Default)]
struct Sim {
    devs: BTreeMap<Address, Dev>,
    /// All-ones BAR writes made while the function decoded memory or I/O.
    decoding_writes: u32,
    /// Every value written to a command register, in order.
    command_writes: Vec<(Address, u16)>,
}

fn at(bus: u8, device: u8, function: u8) -> Address {
    Address::new(0, bus, device, function).unwrap()
}

impl Sim {
    /// Adds a function: class word (class << 24 | sub << 16 | prog_if << 8) and header type.
    fn add(&mut self, a: Address, id: u32, class: u32, header_type: u8) -> &mut Dev {
        let mut regs = [0u32; 1024];
        regs[0] = id;
        regs[1] = 0x3; // memory and I/O decode on
        regs[2] = class;
        regs[3] = u32::from(header_type) << 16;
        self.devs.entry(a).or_insert(Dev {
            regs,
            masks: [0; 6],
            read_only: Vec::new(),
        })
    }

    fn bridge(&mut self, a: Address, secondary: u8) {
        let dev = self.add(a, 0x0001_8086, 0x0604_0000, 1);
        dev.regs[6] = u32::from(secondary) << 8 | u32::from(secondary) << 16 | u32::from(a.bus);
    }
}

impl Dev {
    fn bar(&mut self, index: usize, value: u32, mask: u32) -> &mut Self {
        self.regs[4 + index] = value;
        self.masks[index] = mask;
        self
    }

    /// Adds a capability at `offset` (status bit and list head set by the first one).
    fn cap(&mut self, offset: u16, word0: u32, more: &[u32]) -> &mut Self {
        self.regs[1] |= 0x10 << 16;
        if self.regs[13] & 0xFF == 0 {
            self.regs[13] = u32::from(offset);
        }
        let i = usize::from(offset / 4);
        self.regs[i] = word0;
        self.regs[i + 1..i + 1 + more.len()].copy_from_slice(more);
        self
    }
}

impl ConfigSpace for Sim {
    fn read32(&self, a: Address, offset: u16) -> Result<u32, PciError> {
        if !offset.is_multiple_of(4) || offset >= 4096 {
            return Err(PciError::BadOffset(offset));
        }
        Ok(self
            .devs
            .get(&a)
            .map_or(u32::MAX, |d| d.regs[usize::from(offset / 4)]))
    }

    fn write32(&mut self, a: Address, offset: u16, value: u32) -> Result<(), PciError> {
        if !offset.is_multiple_of(4) || offset >= 4096 {
            return Err(PciError::BadOffset(offset));
        }
        let Some(dev) = self.devs.get_mut(&a) else {
            return Ok(());
        };
        let i = usize::from(offset / 4);
        if dev.read_only.contains(&offset) {
            return Ok(());
        }
        match i {
            1 => {
                self.command_writes.push((a, value as u16));
                dev.regs[1] = (dev.regs[1] & 0xFFFF_0000) | (value & 0xFFFF);
            }
            4..=9 => {
                if value == u32::MAX && dev.regs[1] & 3 != 0 {
                    self.decoding_writes += 1;
                }
                let mask = dev.masks[i - 4];
                dev.regs[i] = (value & mask) | (dev.regs[i] & !mask & 0xF); // flags are read-only
            }
            _ => dev.regs[i] = value,
        }
        Ok(())
    }
}

fn walk(sim: &mut Sim) -> (Vec<Address>, rexo_pci::Report) {
    let mut found = Vec::new();
    let report = enumerate(sim, 0, 0..=255, |_, h| found.push(h.address)).unwrap();
    (found, report)
}

#[test]
fn follows_bridges_and_scans_only_buses_that_answer() {
    let mut sim = Sim::default();
    sim.add(at(0, 0, 0), 0x29c0_8086, 0x0600_0000, 0);
    sim.bridge(at(0, 1, 0), 2);
    sim.bridge(at(2, 0, 0), 5);
    sim.add(at(5, 3, 0), 0x1000_1af4, 0x0200_0000, 0);
    sim.add(at(7, 0, 0), 0x1111_1234, 0x0300_0000, 0); // no bridge leads here
    let (found, report) = walk(&mut sim);
    let through_bridges = [at(0, 0, 0), at(0, 1, 0), at(2, 0, 0), at(5, 3, 0)];
    assert_eq!(found[..4], through_bridges);
    assert_eq!(found[4..], [at(7, 0, 0)], "bus 7 answers: a peer root bus");
    assert_eq!(report.buses_scanned, 4, "the silent buses are only probed");
    assert_eq!(report.functions, 5);
    assert!(!report.brute_force);
}

#[test]
fn peer_root_buses_and_the_buses_behind_them_are_scanned() {
    // Two host bridges (as on two-socket Xeon or EPYC, or QEMU's pxb-pcie with
    // bus_nr=0x80): no bridge leads to the second one's root bus.
    let mut sim = Sim::default();
    sim.add(at(0, 0, 0), 0x29c0_8086, 0x0600_0000, 0);
    sim.add(at(0x80, 0, 0), 0x29c0_8086, 0x0600_0000, 0);
    sim.add(at(0x80, 1, 0), 0x0010_1b36, 0x0108_0200, 0); // NVMe
    sim.bridge(at(0x80, 2, 0), 0x81);
    sim.add(at(0x81, 0, 0), 0x1000_1af4, 0x0200_0000, 0);
    // A peer root bus whose only device is not device 0.
    sim.add(at(0xC0, 0x1F, 0), 0x2918_8086, 0x0601_0000, 0);
    let (found, report) = walk(&mut sim);
    let expected = [
        at(0, 0, 0),
        at(0x80, 0, 0),
        at(0x80, 1, 0),
        at(0x80, 2, 0),
        at(0x81, 0, 0),
        at(0xC0, 0x1F, 0),
    ];
    assert_eq!(found, expected);
    assert_eq!(report.buses_scanned, 4);
    assert!(!report.brute_force);
}

#[test]
fn unnumbered_bridges_fall_back_to_brute_force() {
    let mut sim = Sim::default();
    sim.bridge(at(0, 1, 0), 0); // left unnumbered
    sim.bridge(at(0, 2, 0), 0); // points back at bus 0: unnumbered too, no loop
    sim.add(at(7, 0, 0), 0x1111_1234, 0x0300_0000, 0);
    let (found, report) = walk(&mut sim);
    assert_eq!(found, [at(0, 1, 0), at(0, 2, 0), at(7, 0, 0)]);
    assert_eq!(report.unnumbered_bridges, 2);
    assert!(report.brute_force);
    assert_eq!(report.buses_scanned, 256);
}

/// A configuration space whose every function is the same unnumbered multi-function
/// PCI-to-PCI bridge (secondary bus 0).
struct BridgesEverywhere;

impl ConfigSpace for BridgesEverywhere {
    fn read32(&self, _: Address, offset: u16) -> Result<u32, PciError> {
        Ok(match offset {
            0x00 => 0x0001_8086,
            0x08 => 0x0604_0000,
            0x0C => 0x0081_0000,
            _ => 0,
        })
    }

    fn write32(&mut self, _: Address, _: u16, _: u32) -> Result<(), PciError> {
        Ok(())
    }
}

#[test]
fn a_segment_of_nothing_but_unnumbered_bridges_is_counted() {
    let report = enumerate(&mut BridgesEverywhere, 0, 0..=255, |_, _| {}).unwrap();
    assert_eq!(report.functions, 65_536);
    assert_eq!(report.unnumbered_bridges, 65_536);
    assert_eq!(report.buses_scanned, 256);
}

#[test]
fn multi_function_devices_and_host_bridge_roots() {
    let mut sim = Sim::default();
    sim.add(at(0, 0, 0), 0x29c0_8086, 0x0600_0000, 0x80);
    sim.add(at(0, 0, 1), 0x29c0_8086, 0x0600_0000, 0); // host bridge of root bus 1
    sim.add(at(1, 4, 0), 0x0010_1b36, 0x0108_0200, 0);
    sim.add(at(0, 2, 0), 0x2918_8086, 0x0601_0000, 0x80);
    sim.add(at(0, 2, 3), 0x2922_8086, 0x0106_0100, 0);
    sim.add(at(0, 2, 7), 0x2930_8086, 0x0c05_0000, 0);
    sim.add(at(0, 3, 0), 0x100e_8086, 0x0200_0000, 0);
    sim.add(at(0, 3, 1), 0x100e_8086, 0x0200_0000, 0); // single-function: not probed
    let (found, _) = walk(&mut sim);
    let expected = [
        at(0, 0, 0),
        at(0, 0, 1),
        at(0, 2, 0),
        at(0, 2, 3),
        at(0, 2, 7),
    ];
    assert_eq!(found[..5], expected);
    assert_eq!(found[5..], [at(0, 3, 0), at(1, 4, 0)]);
}

fn header(sim: &Sim, a: Address) -> Header {
    Header::read(sim, a).unwrap().unwrap()
}

#[test]
fn sizes_bars_with_decode_off_and_restores_everything() {
    let mut sim = Sim::default();
    let a = at(0, 4, 0);
    sim.add(a, 0x0010_1b36, 0x0108_0200, 0)
        .bar(0, 0xfebd_0000, 0xFFFF_F000) // 4 KiB mem32
        .bar(1, 0xc001, 0xFFE0) // 32 ports, 16-bit decoder
        .bar(2, 0x0000_000C, 0) // 64-bit prefetchable, 4 GiB, above 4 GiB
        .bar(3, 0x8, 0xFFFF_FFFF)
        .bar(5, 0xfe00_0008, 0xFFFF_C000); // 16 KiB mem32 prefetchable
    sim.devs.get_mut(&a).unwrap().regs[7] = 0x8; // upper half: 0x8_0000_0000
    let before = sim.devs[&a].regs;
    let h = header(&sim, a);
    let bars = probe_bars(&mut sim, &h).unwrap();
    let mem = |kind, address, size| {
        BarSlot::Bar(Bar {
            kind,
            address,
            size,
        })
    };
    assert_eq!(
        bars[0],
        mem(
            BarKind::Memory32 {
                prefetchable: false
            },
            0xfebd_0000,
            0x1000
        )
    );
    assert_eq!(bars[1], mem(BarKind::Io, 0xc000, 0x20));
    let high = BarKind::Memory64 { prefetchable: true };
    assert_eq!(bars[2], mem(high, 0x8_0000_0000, 0x1_0000_0000));
    assert_eq!(bars[3], BarSlot::Upper);
    assert_eq!(bars[4], BarSlot::Unused);
    let prefetch32 = BarKind::Memory32 { prefetchable: true };
    assert_eq!(bars[5], mem(prefetch32, 0xfe00_0000, 0x4000));
    assert_eq!(sim.decoding_writes, 0, "all ones written while decoding");
    assert_eq!(sim.devs[&a].regs, before, "registers not restored");
    let text = Function::describe(&mut sim, h).unwrap().to_string();
    assert!(
        text.contains("bar2 mem64 0x800000000 size 0x100000000 prefetchable"),
        "{text}"
    );
}

#[test]
fn a_host_bridge_is_sized_with_its_decode_left_on() {
    let mut sim = Sim::default();
    let host = at(0, 0, 0);
    sim.add(host, 0x1450_1022, 0x0600_0000, 0)
        .bar(0, 0xfe00_0000, 0xFFF0_0000); // 1 MiB mem32
    let isa = at(0, 0x1f, 0);
    sim.add(isa, 0x2918_8086, 0x0601_0000, 0)
        .bar(0, 0xfed0_0000, 0xFFFF_F000);
    let before = sim.devs[&host].regs;
    let h = header(&sim, host);
    let bars = probe_bars(&mut sim, &h).unwrap();
    let mem32 = BarKind::Memory32 {
        prefetchable: false,
    };
    let sized = Bar {
        kind: mem32,
        address: 0xfe00_0000,
        size: 0x10_0000,
    };
    assert_eq!(bars[0], BarSlot::Bar(sized));
    assert_eq!(
        sim.command_writes,
        [],
        "a host bridge's command register written"
    );
    assert_eq!(sim.devs[&host].regs, before, "registers not restored");
    // Any other bridge (here an ISA bridge, class 06.01) has its decode turned off.
    let h = header(&sim, isa);
    probe_bars(&mut sim, &h).unwrap();
    assert_eq!(sim.command_writes, [(isa, 0), (isa, 3)]);
}

#[test]
fn impossible_bars_are_errors() {
    let mut sim = Sim::default();
    let a = at(0, 5, 0);
    sim.add(a, 0x1234_5678, 0x0200_0000, 0)
        .bar(0, 0x6, 0xFFFF_FFF0) // memory type 3: reserved
        .bar(1, 0xfeb0_0000, 0xFF0F_F000) // holes in the size mask
        .bar(2, 0xfeb0_1000, 0xFFFF_0000) // 64 KiB at a 4 KiB boundary
        .bar(5, 0x4, 0xFFFF_FFF0); // 64-bit in the last slot
    let h = header(&sim, a);
    let bars = probe_bars(&mut sim, &h).unwrap();
    assert_eq!(bars[0], BarSlot::Invalid(BarError::ReservedType));
    assert!(matches!(
        bars[1],
        BarSlot::Invalid(BarError::BadSizeMask(_))
    ));
    let misaligned = BarError::Misaligned {
        address: 0xfeb0_1000,
        size: 0x1_0000,
    };
    assert_eq!(bars[2], BarSlot::Invalid(misaligned));
    assert_eq!(bars[5], BarSlot::Invalid(BarError::NoUpperHalf));
    assert_eq!(sim.devs[&a].regs[1] & 3, 3, "command not restored");
}

#[test]
fn decodes_msi_and_msix() {
    let mut sim = Sim::default();
    let a = at(0, 3, 0);
    sim.add(a, 0x1000_1af4, 0x0200_0000, 0)
        .bar(1, 0xfebd_9000, 0xFFFF_F000)
        .cap(0x40, 0x0010_5010, &[]) // PCIe, next 0x50
        .cap(0x50, 0x0186_6005, &[]) // MSI: 64-bit, masking, 8 vectors; next 0x60
        .cap(0x60, 0x8002_0011, &[0x1, 0x801]); // MSI-X: 3 entries, enabled
    let h = header(&sim, a);
    let f = Function::describe(&mut sim, h).unwrap();
    let caps = f.capabilities;
    assert_eq!((caps.count, caps.pcie, caps.error), (3, true, None));
    let msi = caps.msi.unwrap();
    assert!(msi.address64 && msi.per_vector_masking && !msi.enabled);
    assert_eq!(msi.vectors, 8);
    let x = caps.msix.unwrap();
    assert_eq!((x.table_size, x.table_bar, x.table_offset), (3, 1, 0));
    assert_eq!((x.pba_bar, x.pba_offset, x.enabled), (1, 0x800, true));
    let text = f.to_string();
    assert!(text.contains(" msi 64-bit masking vectors 8 msix 3 table bar1+0x0 pba bar1+0x800"));
}

#[test]
fn an_msix_capability_running_past_256_bytes_is_an_error() {
    // At 0xF8 its table and pending-bit registers would be at 0x100 and 0x104: the
    // extended configuration space, not the capability.
    let mut sim = Sim::default();
    let a = at(0, 3, 0);
    sim.add(a, 0x1000_1af4, 0x0200_0000, 0)
        .bar(0, 0xfebd_9000, 0xFFFF_F000)
        .cap(0xF8, 0x0000_0011, &[0, 0x800]);
    let caps = caps_of(&mut sim, a);
    assert_eq!(
        (caps.msix, caps.error),
        (None, Some(PciError::BadCapability(0xF8)))
    );
    // Through the legacy ports, which reach only 256 bytes, the same capability is the
    // same error: its registers past 0xFF are not read.
    let h = header(&sim, a);
    let bars = probe_bars(&mut sim, &h).unwrap();
    let caps = Capabilities::read(&PortsOnly(sim), &h, &bars);
    assert_eq!(caps.error, Some(PciError::BadCapability(0xF8)));
}

/// [`Sim`] through the legacy configuration ports: 256 bytes a function.
struct PortsOnly(Sim);

impl ConfigSpace for PortsOnly {
    fn read32(&self, a: Address, offset: u16) -> Result<u32, PciError> {
        if offset >= 0x100 {
            return Err(PciError::BadOffset(offset));
        }
        self.0.read32(a, offset)
    }

    fn write32(&mut self, a: Address, offset: u16, value: u32) -> Result<(), PciError> {
        self.0.write32(a, offset, value)
    }
}

/// A function with only an MSI capability at 0x50 whose control word is `control`.
fn msi_function(sim: &mut Sim, a: Address, control: u16) -> Msi {
    sim.add(a, 0x2922_8086, 0x0106_0100, 0)
        .cap(0x50, u32::from(control) << 16 | 0x05, &[]);
    let h = header(sim, a);
    Function::describe(sim, h)
        .unwrap()
        .capabilities
        .msi
        .unwrap()
}

#[test]
fn programs_a_64_bit_msi_with_masking() {
    let mut sim = Sim::default();
    let a = at(0, 0x1f, 2);
    // 64-bit, per-vector masking, 4 vectors capable; firmware left 2 enabled and MSI on.
    let msi = msi_function(&mut sim, a, 0x0185 | 1 << 4);
    assert_eq!(
        (msi.address64, msi.per_vector_masking, msi.bytes()),
        (true, true, 0x18)
    );
    msi.program(&mut sim, a, 0x1_FEE0_1000, 0x41).unwrap();
    let regs = &sim.devs[&a].regs;
    assert_eq!(
        regs[0x50 / 4] >> 16 & 0x71,
        0,
        "enable and Multiple Message Enable cleared"
    );
    assert_eq!(regs[0x50 / 4] & 0xFFFF, 0x05, "ID and next pointer kept");
    assert_eq!(regs[0x54 / 4], 0xFEE0_1000);
    assert_eq!(regs[0x58 / 4], 1);
    assert_eq!(regs[0x5C / 4], 0x41);
    assert_eq!(
        regs[0x60 / 4],
        u32::MAX,
        "every vector masked while programming"
    );
    assert!(msi.set_masked(&mut sim, a, false).unwrap());
    msi.set_enabled(&mut sim, a, true).unwrap();
    let regs = &sim.devs[&a].regs;
    assert_eq!(regs[0x60 / 4], !1, "vector 0 unmasked, the rest masked");
    assert_eq!(regs[0x50 / 4] >> 16, 0x0185, "on, one message");
    msi.set_enabled(&mut sim, a, false).unwrap();
    assert_eq!(sim.devs[&a].regs[0x50 / 4] >> 16 & 1, 0);
}

#[test]
fn programs_a_32_bit_msi_without_masking() {
    let mut sim = Sim::default();
    let a = at(0, 0x1f, 2);
    let msi = msi_function(&mut sim, a, 0x0000);
    assert_eq!(
        (msi.address64, msi.per_vector_masking, msi.bytes()),
        (false, false, 0x0C)
    );
    sim.devs.get_mut(&a).unwrap().regs[0x58 / 4] = 0xABCD_0000; // reserved upper half
    msi.program(&mut sim, a, 0xFEE0_3000, 0x30).unwrap();
    let regs = &sim.devs[&a].regs;
    assert_eq!(regs[0x54 / 4], 0xFEE0_3000);
    assert_eq!(
        regs[0x58 / 4],
        0x30,
        "data in the third register, not an upper address"
    );
    assert_eq!(regs[0x5C / 4], 0, "nothing written past the capability");
    assert!(!msi.set_masked(&mut sim, a, false).unwrap(), "no mask bits");
    // A 32-bit capability cannot reach above 4 GiB; a message address is dword-aligned.
    for bad in [0x1_FEE0_0000, 0xFEE0_0002] {
        assert_eq!(
            msi.program(&mut sim, a, bad, 0x30),
            Err(PciError::MsiAddress(bad))
        );
    }
    assert_eq!(
        sim.devs[&a].regs[0x54 / 4],
        0xFEE0_3000,
        "refused before any write"
    );
}

#[test]
fn malformed_msi_capabilities_are_errors() {
    // Multiple Message Capable 6 (64 vectors) does not exist.
    let mut sim = Sim::default();
    let a = at(0, 2, 0);
    sim.add(a, 0x2922_8086, 0x0106_0100, 0)
        .cap(0x50, 0x000C_0005, &[]);
    assert_eq!(
        caps_of(&mut sim, a).error,
        Some(PciError::BadCapability(0x50))
    );
    // A 64-bit capability with mask bits (24 bytes) at 0xF0 runs past 256 bytes.
    let b = at(0, 3, 0);
    sim.add(b, 0x2922_8086, 0x0106_0100, 0)
        .cap(0xF0, 0x0180_0005, &[]);
    let caps = caps_of(&mut sim, b);
    assert_eq!(
        (caps.msi, caps.error),
        (None, Some(PciError::BadCapability(0xF0)))
    );
    assert!(
        caps.to_string()
            .contains("caps error (capability at 0xf0 holds impossible values)")
    );
    // A capability that says 64-bit but whose upper address register is read-only.
    let c = at(0, 4, 0);
    let msi = msi_function(&mut sim, c, 0x0080);
    sim.devs.get_mut(&c).unwrap().read_only.push(0x58);
    let error = msi.program(&mut sim, c, 0x1_FEE0_0000, 0x41).unwrap_err();
    assert_eq!(
        error,
        PciError::RegisterStuck {
            offset: 0x58,
            wrote: 1,
            read: 0
        }
    );
    assert_eq!(
        error.to_string(),
        "configuration register 0x58 reads 0x0 after 0x1 was written"
    );
    assert_eq!(sim.devs[&c].regs[0x50 / 4] >> 16 & 1, 0, "MSI left off");
}

fn caps_of(sim: &mut Sim, a: Address) -> Capabilities {
    let h = header(sim, a);
    let bars = probe_bars(sim, &h).unwrap();
    Capabilities::read(sim, &h, &bars)
}

#[test]
fn capability_cycles_and_bad_pointers_are_errors() {
    let mut sim = Sim::default();
    let cycle = at(0, 1, 0);
    sim.add(cycle, 0x1, 0x0200_0000, 0)
        .cap(0x40, 0x5010, &[])
        .cap(0x50, 0x4009, &[]);
    let caps = caps_of(&mut sim, cycle);
    assert_eq!(
        (caps.count, caps.error),
        (2, Some(PciError::CapabilityCycle(0x40)))
    );

    let into_header = at(0, 2, 0);
    sim.add(into_header, 0x1, 0x0200_0000, 0)
        .cap(0x40, 0x2010, &[]);
    let caps = caps_of(&mut sim, into_header);
    assert_eq!(caps.error, Some(PciError::CapabilityPointer(0x20)));
    assert!(caps.pcie);

    let bad_bir = at(0, 3, 0);
    sim.add(bad_bir, 0x1, 0x0200_0000, 0)
        .cap(0x40, 0x0002_0011, &[0x7, 0x0]);
    let caps = caps_of(&mut sim, bad_bir);
    assert_eq!(caps.error, Some(PciError::BadBarIndicator(7)));

    let too_big = at(0, 4, 0);
    sim.add(too_big, 0x1, 0x0200_0000, 0)
        .bar(0, 0xfe00_0000, 0xFFFF_F000)
        .cap(0x40, 0x07FF_0011, &[0x0, 0x800]); // 2048 entries do not fit 4 KiB
    let caps = caps_of(&mut sim, too_big);
    assert_eq!(caps.error, Some(PciError::BadCapability(0x40)));
    assert!(caps.to_string().contains("caps error"));
}

/// Every register of every function holds noise.
struct Garbage(RefCell<u64>);

impl ConfigSpace for Garbage {
    fn read32(&self, _: Address, _: u16) -> Result<u32, PciError> {
        let mut x = self.0.borrow_mut();
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        Ok((*x >> 16) as u32)
    }

    fn write32(&mut self, _: Address, _: u16, _: u32) -> Result<(), PciError> {
        Ok(())
    }
}

#[test]
fn garbage_terminates_without_panicking() {
    for seed in 1..20u64 {
        let mut cs = Garbage(RefCell::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        let report = enumerate(&mut cs, 0, 0..=255, |cs, h| {
            let f = Function::describe(cs, h).unwrap();
            let _ = f.to_string();
        })
        .unwrap();
        assert!(report.buses_scanned <= 256);
    }
}

#[test]
fn addresses_and_offsets_are_checked() {
    assert_eq!(Address::new(0, 0, 32, 0), Err(PciError::BadAddress));
    assert_eq!(Address::new(0, 0, 0, 8), Err(PciError::BadAddress));
    let a = Address::new(0, 1, 2, 3).unwrap();
    assert_eq!(a.legacy(0x10), Ok(0x8001_1310));
    assert_eq!(a.legacy(0x100), Err(PciError::BadOffset(0x100)));
    assert_eq!(a.legacy(2), Err(PciError::BadOffset(2)));
    assert_eq!(a.ecam_offset(0xFFC), Ok(0x11_3FFC));
    assert_eq!(a.ecam_offset(0x1000), Err(PciError::BadOffset(0x1000)));
    assert_eq!(
        Address::new(1, 2, 3, 4).unwrap().to_string(),
        "0001:02:03.4"
    );
}

/// Records the machine operations `Access` makes.
#[derive(Default)]
struct Log(RefCell<Vec<(char, u64)>>);

impl Hardware for &Log {
    fn port_read(&self, address: u32) -> u32 {
        self.0.borrow_mut().push(('p', u64::from(address)));
        u32::MAX
    }
    fn port_write(&self, address: u32, _: u32) {
        self.0.borrow_mut().push(('P', u64::from(address)));
    }
    fn mmio_read(&self, phys: u64) -> Option<u32> {
        self.0.borrow_mut().push(('m', phys));
        (phys < 0xC000_0000).then_some(u32::MAX)
    }
    fn mmio_write(&self, phys: u64, _: u32) -> bool {
        self.0.borrow_mut().push(('M', phys));
        phys < 0xC000_0000
    }
}

#[test]
fn access_routes_to_ecam_windows_or_ports() {
    let log = Log::default();
    let mut ports = Access::new(&log, &[]);
    assert_eq!(ports.read32(at(1, 2, 3), 0x10), Ok(u32::MAX));
    ports.write32(at(0, 0, 0), 4, 0).unwrap();
    let other = Address::new(1, 0, 0, 0).unwrap();
    assert_eq!(
        ports.read32(other, 0),
        Err(PciError::NoSuchBus { segment: 1, bus: 0 })
    );
    assert_eq!(
        ports.read32(at(0, 0, 0), 0x100),
        Err(PciError::BadOffset(0x100))
    );
    assert_eq!(*log.0.borrow(), [('p', 0x8001_1310), ('P', 0x8000_0004)]);

    let windows = [McfgSegment {
        base: 0xB000_0000,
        segment: 0,
        start_bus: 0,
        end_bus: 0x3F,
    }];
    let log = Log::default();
    let mut ecam = Access::new(&log, &windows);
    assert_eq!(ecam.read32(at(1, 2, 3), 0x100), Ok(u32::MAX));
    assert_eq!(
        ecam.read32(at(0x40, 0, 0), 0),
        Err(PciError::NoSuchBus {
            segment: 0,
            bus: 0x40
        })
    );
    assert_eq!(*log.0.borrow(), [('m', 0xB011_3100)]);
    let report = ecam.scan(|_, _| panic!("nothing is there")).unwrap();
    assert_eq!((report.functions, report.buses_scanned), (0, 1));

    let beyond = [McfgSegment {
        base: 0xC000_0000,
        segment: 0,
        start_bus: 0,
        end_bus: 0,
    }];
    let log = Log::default();
    let mut broken = Access::new(&log, &beyond);
    assert_eq!(
        broken.write32(at(0, 0, 0), 0, 1),
        Err(PciError::Access(0xC000_0000))
    );
    assert_eq!(
        broken.scan(|_, _| {}).unwrap_err(),
        PciError::Access(0xC000_0000)
    );
}
