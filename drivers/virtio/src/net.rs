//! virtio-net.

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
