//! ATA/IDE disks on a PCI IDE controller (PIIX of -machine pc): PIO and bus-master DMA.
//!
//! The ATA command set both this driver and `rexo-ahci` speak lives here too:
//! [`command`] (opcodes, status bits, task-file values, range checks), [`identify`]
//! (IDENTIFY DEVICE decoding) and [`shutdown`] (what a disk is told at power-off and reboot). Settling delays and bounded waits are
//! [`rexo_devio::pause`] and [`rexo_devio::wait_until`].
//!
//! Each channel in compatibility mode is reset, its master and slave identified (ATAPI
//! devices and empty positions skipped), and each ATA disk becomes its own block device
//! with one request in flight (ATA has no queueing below NCQ; the two drives of a
//! channel take turns). Data moves by bus-master DMA (BAR 4) when the controller has it
//! (for one channel's disks only on a simplex-only controller), the drive has a DMA mode
//! selected and its buffer and PRD table lie below 4 GiB, else by PIO through the data
//! port. At power-off and reboot each drive gets FLUSH CACHE (EXT), then at a power-off
//! STANDBY IMMEDIATE (`BlockDevice::shut_down`, [`shutdown`]).
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod command;
mod ide;
pub mod identify;
pub mod shutdown;

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;

use rexo_api::DeviceError;
use rexo_devio::{DeviceFunction, Found};
use rexo_pci::Function;

pub use ide::IdeDisk;

/// PCI class 01 (mass storage), subclass 01 (IDE).
const CLASS_IDE: (u8, u8) = (0x01, 0x01);
/// The BAR holding the bus-master IDE registers.
const BAR_BUS_MASTER: usize = 4;

/// Whether this driver takes `function`: any IDE controller (class 01.01).
pub fn matches(function: &Function) -> bool {
    let (class, subclass, _) = function.header.class();
    (class, subclass) == CLASS_IDE
}

/// Resets both channels of the controller on `function` and returns its ATA disks.
pub fn probe(function: DeviceFunction) -> Result<Vec<Found>, DeviceError> {
    function.enable()?;
    let platform = function.platform();
    let bus_master = function
        .ports(BAR_BUS_MASTER)
        .inspect_err(|error| log::info!("ata: no bus-master DMA ({error}): PIO only"))
        .ok();
    let simplex = bus_master.filter(ide::simplex_only).map(|_| {
        log::info!(
            "ata: the controller is simplex-only (bus-master status bit 7): one channel's \
             disks use DMA, the other's PIO"
        );
        Arc::new(ide::SimplexDma::new())
    });
    let mut found = Vec::new();
    for number in 0..2 {
        let ports = match function.legacy_ide_ports(number) {
            Ok(ports) => ports,
            Err(error) => {
                log::info!("ata: channel {number} not used: {error}");
                continue;
            }
        };
        let line = function.legacy_ide_line(number);
        match &line {
            Ok(line) => log::info!(
                "ata: channel {number}: completions can wake a core through IRQ {}",
                line.irq()
            ),
            Err(error) => log::info!("ata: channel {number}: completions polled: {error}"),
        }
        let channel = Arc::new(ide::Channel::new(
            number,
            ports,
            bus_master,
            simplex.clone(),
            line,
            platform,
        ));
        for disk in ide::detect(&channel, platform) {
            found.push(Found::Block(Box::new(disk)));
        }
    }
    Ok(found)
}
