//! A Rexo disk (`rexo_api::BlockDevice`) as a [`BlockStore`]: each 4 KiB block is the
//! run of sectors under it, read or written on queue 0 with one request in flight, in
//! place in the request's DMA buffer; `flush` is the device's flush, so the journal's
//! "durable before it returns" is the disk's.

use alloc::format;
use alloc::string::String;

use rexo_api::{BlockDevice, Kernel, device::wait_for};
use rexo_mbr::{Attempt, TYPE_REXO_FS, on_first_disk_holding};

use crate::{BLOCK_SIZE, BlockStore, FileSystem, FsError};

/// A disk an app opened (or one partition of it), seen as 4 KiB blocks.
pub struct DeviceStore<'a> {
    /// The disk.
    device: &'a mut dyn BlockDevice,
    /// Sectors per block.
    sectors: u32,
    /// Whole blocks on the disk or partition.
    blocks: u64,
    /// The first sector (a partition's; 0 for a whole disk).
    first: u64,
}

impl<'a> DeviceStore<'a> {
    /// The disk `device`, or why it cannot hold the file system (a sector size that does
    /// not divide 4096, or requests too small for a block).
    pub fn new(device: &'a mut dyn BlockDevice) -> Result<Self, String> {
        let info = device.info();
        let size = info.sector_size as usize;
        if size == 0 || !BLOCK_SIZE.is_multiple_of(size) {
            return Err(format!("{size}-byte sectors do not divide 4 KiB blocks"));
        }
        let sectors = (BLOCK_SIZE / size) as u32;
        if info.max_sectors < sectors {
            return Err(format!(
                "requests of at most {} sectors cannot carry a 4 KiB block",
                info.max_sectors
            ));
        }
        Ok(Self {
            device,
            sectors,
            blocks: info.sectors / u64::from(sectors),
            first: 0,
        })
    }

    /// The part of `device` from sector `first`, `count` sectors long (a partition).
    pub fn within(device: &'a mut dyn BlockDevice, first: u64, count: u64) -> Result<Self, String> {
        let mut store = Self::new(device)?;
        store.first = first;
        store.blocks = count / u64::from(store.sectors);
        Ok(store)
    }

    /// The first sector of block `block`, if the disk has that block.
    fn lba(&self, block: u64) -> Result<u64, String> {
        if block >= self.blocks {
            return Err(format!(
                "block {block} is past the disk's {} blocks",
                self.blocks
            ));
        }
        Ok(self.first + block * u64::from(self.sectors))
    }
}

impl BlockStore for DeviceStore<'_> {
    fn blocks(&self) -> u64 {
        self.blocks
    }

    fn read(&mut self, block: u64, buf: &mut [u8]) -> Result<(), String> {
        let lba = self.lba(block)?;
        let tag = self
            .device
            .submit_read(0, lba, self.sectors)
            .map_err(|e| format!("{e}"))?;
        wait_for(self.device, 0, tag, &mut |data| buf.copy_from_slice(data))
            .map_err(|e| format!("{e}"))
    }

    fn write(&mut self, block: u64, data: &[u8]) -> Result<(), String> {
        let lba = self.lba(block)?;
        let tag = self
            .device
            .submit_write(0, lba, self.sectors, &mut |buffer| {
                buffer.copy_from_slice(data)
            })
            .map_err(|e| format!("{e}"))?;
        wait_for(self.device, 0, tag, &mut |_| {}).map_err(|e| format!("{e}"))
    }

    fn flush(&mut self) -> Result<(), String> {
        let tag = self.device.submit_flush(0).map_err(|e| format!("{e}"))?;
        wait_for(self.device, 0, tag, &mut |_| {}).map_err(|e| format!("{e}"))
    }
}

/// Runs `work` on the Rexo file system of the first disk that holds one (opening and
/// mounting each disk in turn, and giving it back afterwards); the error says what was
/// found on each disk (held by another app, no Rexo file system, damaged...) or what
/// `work` failed with.
pub fn on_first_file_system<T>(
    kernel: &dyn Kernel,
    mut work: impl FnMut(&mut FileSystem<DeviceStore<'_>>) -> Result<T, FsError>,
) -> Result<T, String> {
    on_first_disk_holding(
        kernel,
        TYPE_REXO_FS,
        "Rexo file system",
        |device, partition| {
            let store = match partition {
                None => DeviceStore::new(device),
                Some(p) => DeviceStore::within(device, p.first, p.sectors),
            };
            match store.and_then(|store| FileSystem::mount(store).map_err(|e| format!("{e}"))) {
                Ok(mut fs) => Attempt::Done(work(&mut fs).map_err(|e| format!("{e}"))),
                Err(why) => Attempt::NotHere(why),
            }
        },
    )
}
