//! ATA/IDE disks on a PCI IDE controller (PIIX of -machine pc): PIO and bus-master DMA.
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;

use rexo_api::DeviceError;
use rexo_devio::{DeviceFunction, Found};
use rexo_pci::Function;

/// Whether this driver takes `function`.
pub fn matches(_function: &Function) -> bool {
    false
}

/// Starts the device(s) on `function`.
pub fn probe(_function: DeviceFunction) -> Result<Vec<Found>, DeviceError> {
    Err(DeviceError::Unsupported("a driver (being written)"))
}
