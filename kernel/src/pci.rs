//! A listing of the PCI functions on segment 0 through the legacy configuration ports
//! (0xCF8 address, 0xCFC data): every bus, device and function is tried, functions 1..8
//! only where function 0's header type says the device has several; bridges are not
//! followed (every bus number is tried anyway). Only reads: base address registers are
//! reported as programmed, their sizes are not probed. The drivers issue brings the
//! real bus layer.

use alloc::vec::Vec;

use rexo_api::PciFunction;

use crate::arch::cpu;

/// The configuration address port.
const ADDRESS: u16 = 0xCF8;
/// The configuration data port.
const DATA: u16 = 0xCFC;

/// Serialises the address/data pairs: every configuration access goes through here.
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

/// Reads the 32-bit configuration register `index` (0..64) of bus/device/function.
fn read(bus: u8, device: u8, function: u8, index: u8) -> u32 {
    read_config(
        0x8000_0000
            | u32::from(bus) << 16
            | u32::from(device & 31) << 11
            | u32::from(function & 7) << 8
            | u32::from(index & 63) << 2,
    )
}

/// The function's decoded header, if one answers at bus/device/function.
fn probe(bus: u8, device: u8, function: u8) -> Option<PciFunction> {
    if read(bus, device, function, 0) as u16 == 0xFFFF {
        return None;
    }
    let mut header = [0u32; 16];
    for (index, word) in (0u8..).zip(header.iter_mut()) {
        *word = read(bus, device, function, index);
    }
    Some(PciFunction::from_header(bus, device, function, &header))
}

/// Every function that answers on segment 0, in bus, device, function order.
pub fn functions() -> Vec<PciFunction> {
    let mut found = Vec::new();
    for bus in 0..=255u8 {
        for device in 0..32u8 {
            let Some(first) = probe(bus, device, 0) else {
                continue;
            };
            let functions = if first.header_type & 0x80 != 0 { 8 } else { 1 };
            found.push(first);
            found.extend((1..functions).filter_map(|function| probe(bus, device, function)));
        }
    }
    found
}
