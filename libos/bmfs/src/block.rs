//! A Rexo disk (`rexo_api::BlockDevice`) as a BMFS [`Disk`]: byte ranges become whole
//! sector requests on queue 0, one in flight, with a read-modify-write of the partial
//! sectors at either end of a write.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use rexo_api::device::{ExactError, submit_write_exact, wait_for, wait_for_read_exact};
use rexo_api::{BlockDevice, Kernel};
use rexo_mbr::{Attempt, TYPE_BMFS, on_first_disk_holding};

use crate::{BmfsError, Disk, Volume};

/// Runs `work` on the BMFS volume of the first disk that holds one (opening each disk
/// in turn, and giving it back afterwards); the error says what was tried on each disk
/// (held by another app, no BMFS, the device's error) or what `work` failed with.
pub fn on_first_volume<T>(
    kernel: &Kernel,
    mut work: impl FnMut(&mut Volume<BlockDisk<'_>>) -> Result<T, BmfsError>,
) -> Result<T, String> {
    on_first_disk_holding(kernel, TYPE_BMFS, "BMFS disk", |device, partition| {
        let disk = match partition {
            None => BlockDisk::new(device),
            Some(p) => BlockDisk::within(device, p.first, p.sectors),
        };
        match Volume::open(disk) {
            Ok(mut volume) => Attempt::Done(work(&mut volume).map_err(|e| format!("{e}"))),
            Err(error) => Attempt::NotHere(format!("{error}")),
        }
    })
}

/// A disk an app opened, seen as bytes.
pub struct BlockDisk<'a> {
    /// The disk.
    device: &'a mut dyn BlockDevice,
    /// Bytes per sector.
    sector: u64,
    /// Sectors on the disk (or partition).
    sectors: u64,
    /// The most sectors per request.
    max: u64,
    /// The first sector (a partition's; 0 for a whole disk).
    first: u64,
}

impl<'a> BlockDisk<'a> {
    /// The disk `device`.
    pub fn new(device: &'a mut dyn BlockDevice) -> Self {
        let info = device.info();
        Self {
            device,
            sector: u64::from(info.sector_size.max(1)),
            sectors: info.sectors,
            max: u64::from(info.max_sectors.max(1)),
            first: 0,
        }
    }

    /// The part of `device` from sector `first`, `count` sectors long (a partition). A
    /// range past the device's end is cut to it, so that no request names a sector past
    /// the device (or overflows).
    pub fn within(device: &'a mut dyn BlockDevice, first: u64, count: u64) -> Self {
        let disk = Self::new(device);
        Self {
            first,
            sectors: count.min(disk.sectors.saturating_sub(first)),
            ..disk
        }
    }

    /// Reads sectors `lba..lba + count` into `buffer` (whole sectors); a request whose
    /// data is not the length asked for is an error (the buffer's bytes for it are kept).
    fn read_sectors(&mut self, lba: u64, buffer: &mut [u8]) -> Result<(), String> {
        for (start, sectors, bytes) in self.requests(lba, buffer.len()) {
            let tag = self
                .device
                .submit_read(0, start, sectors)
                .map_err(|e| format!("{e}"))?;
            let part = &mut buffer[bytes];
            wait_for_read_exact(self.device, 0, tag, part).map_err(|failed| match failed {
                ExactError::WrongLength(returned) => format!(
                    "the device returned {returned} bytes for a read of {} bytes",
                    part.len()
                ),
                ExactError::Device(e) => format!("{e}"),
            })?;
        }
        Ok(())
    }

    /// The requests that move `len` bytes (whole sectors) at `lba`, each of at most
    /// `max` sectors: its first sector on the device, its sector count, and its bytes'
    /// range in the caller's buffer.
    fn requests(
        &self,
        lba: u64,
        len: usize,
    ) -> impl Iterator<Item = (u64, u32, core::ops::Range<usize>)> + use<> {
        let (first, sector, max) = (self.first + lba, self.sector, self.max);
        let count = len as u64 / sector;
        (0..count).step_by(max as usize).map(move |done| {
            let n = (count - done).min(max);
            let at = (done * sector) as usize;
            (first + done, n as u32, at..at + (n * sector) as usize)
        })
    }

    /// Refuses `len` bytes from `offset` unless they lie on the disk (or partition): the
    /// sectors past a partition's end are another's.
    fn check_range(&self, offset: u64, len: usize) -> Result<(), String> {
        let size = self.size();
        match offset.checked_add(len as u64) {
            Some(end) if end <= size => Ok(()),
            _ => Err(format!(
                "{len} bytes at byte {offset} run past the {size} bytes of the disk"
            )),
        }
    }

    /// Reads the one sector `lba` into `partial` (sized to a sector here), for a piece
    /// that is only part of it.
    fn read_partial(&mut self, lba: u64, partial: &mut Vec<u8>) -> Result<(), String> {
        partial.resize(self.sector as usize, 0);
        self.read_sectors(lba, partial)
    }

    /// Writes whole sectors from `data` at `lba`; a request whose buffer the device hands
    /// over at another length than asked is withdrawn before the device sees it (nothing
    /// of it reaches the disk) and is an error naming the lengths, at once.
    fn write_sectors(&mut self, lba: u64, data: &[u8]) -> Result<(), String> {
        for (start, sectors, bytes) in self.requests(lba, data.len()) {
            let part = &data[bytes];
            let tag = submit_write_exact(
                self.device,
                0,
                (start, sectors),
                part.len(),
                &mut |buffer| buffer.copy_from_slice(part),
            )
            .map_err(|failed| match failed {
                ExactError::WrongLength(handed) => format!(
                    "the device handed over {handed} bytes for a write of {} bytes; not written",
                    part.len()
                ),
                ExactError::Device(e) => format!("{e}"),
            })?;
            wait_for(self.device, 0, tag, &mut |_| {}).map_err(|e| format!("{e}"))?;
        }
        Ok(())
    }
}

/// One piece of a byte range on a disk of `sector`-byte sectors ([`pieces`]).
struct Piece {
    /// Its first sector.
    lba: u64,
    /// Where it starts in that sector (0 for a run of whole sectors).
    skip: usize,
    /// Where it starts in the range.
    done: usize,
    /// Its bytes.
    len: usize,
}

impl Piece {
    /// Whether it is a run of whole `sector`-byte sectors (else part of one sector).
    fn whole(&self, sector: u64) -> bool {
        self.skip == 0 && (self.len as u64).is_multiple_of(sector)
    }
}

/// `len` bytes from `offset` as runs of whole sectors and, at either end, partial
/// sectors, in order: what BlockDisk's reads and writes move at once or through a
/// sector of their own.
fn pieces(sector: u64, offset: u64, len: usize) -> impl Iterator<Item = Piece> {
    let size = sector as usize;
    let mut done = 0;
    core::iter::from_fn(move || {
        let left = len.checked_sub(done).filter(|&left| left > 0)?;
        let at = offset + done as u64;
        let (lba, skip) = (at / sector, (at % sector) as usize);
        let n = match skip == 0 && left >= size {
            true => left / size * size,
            false => (size - skip).min(left),
        };
        let piece = Piece {
            lba,
            skip,
            done,
            len: n,
        };
        done += n;
        Some(piece)
    })
}

impl Disk for BlockDisk<'_> {
    fn size(&self) -> u64 {
        self.sectors.saturating_mul(self.sector)
    }

    /// Whole sectors go straight into `buffer`; only a partial first or last sector
    /// goes through a sector of its own (so a large read needs no second buffer). A
    /// range past the disk's (or partition's) end is an error; the device is not asked.
    fn read(&mut self, offset: u64, buffer: &mut [u8]) -> Result<(), String> {
        self.check_range(offset, buffer.len())?;
        let mut partial = Vec::new();
        for piece in pieces(self.sector, offset, buffer.len()) {
            let Piece {
                lba,
                skip,
                done,
                len,
            } = piece;
            let target = &mut buffer[done..done + len];
            if piece.whole(self.sector) {
                self.read_sectors(lba, target)?;
                continue;
            }
            self.read_partial(lba, &mut partial)?;
            target.copy_from_slice(&partial[skip..skip + len]);
        }
        Ok(())
    }

    /// Whole sectors go straight from `data`; a partial first or last sector is read,
    /// changed and written back on its own (its other bytes kept), so a large write
    /// needs no second buffer. A range past the disk's (or partition's) end is an error;
    /// nothing is written.
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), String> {
        self.check_range(offset, data.len())?;
        let mut partial = Vec::new();
        for piece in pieces(self.sector, offset, data.len()) {
            let Piece {
                lba,
                skip,
                done,
                len,
            } = piece;
            let source = &data[done..done + len];
            if piece.whole(self.sector) {
                self.write_sectors(lba, source)?;
                continue;
            }
            self.read_partial(lba, &mut partial)?;
            partial[skip..skip + len].copy_from_slice(source);
            self.write_sectors(lba, &partial)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        let tag = self.device.submit_flush(0).map_err(|e| format!("{e}"))?;
        wait_for(self.device, 0, tag, &mut |_| {}).map_err(|e| format!("{e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use rexo_api::testing::MemoryDisk;

    /// `data` in memory as a disk that takes requests of up to 3 sectors and completes
    /// each at the next poll; its reads return `short_by` bytes fewer than asked, and its
    /// writes hand over a buffer `long_by` bytes longer than asked.
    fn memory_device(data: Vec<u8>, short_by: isize, long_by: isize) -> MemoryDisk {
        let mut device = MemoryDisk::new(data);
        device.max_sectors = 3;
        device.read_skew = -short_by;
        device.write_skew = long_by;
        device
    }

    #[test]
    fn a_partition_past_the_device_is_cut_to_it() {
        let mut device = memory_device(vec![0; 8192], 0, 0);
        assert_eq!(BlockDisk::within(&mut device, 4, u64::MAX).size(), 6144);
        let mut disk = BlockDisk::within(&mut device, u64::MAX, u64::MAX);
        assert_eq!(disk.size(), 0);
        assert!(
            disk.read(0, &mut [0; 512]).is_err(),
            "an error, not an overflow"
        );
    }

    #[test]
    fn unaligned_bytes_round_trip_and_keep_their_neighbours() {
        let mut device = memory_device((0..8192u32).map(|i| i as u8).collect(), 0, 0);
        let mut model = device.data().to_vec();
        let mut disk = BlockDisk::new(&mut device);
        assert_eq!(disk.size(), 8192);
        for (offset, len) in [
            (0, 512),
            (3, 10),
            (500, 30),
            (700, 2000),
            (1024, 1),
            (511, 1),
            (4000, 4192),
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + offset) as u8 ^ 0xA5).collect();
            disk.write(offset as u64, &data).unwrap();
            model[offset..offset + len].copy_from_slice(&data);
            let mut back = vec![0u8; len];
            disk.read(offset as u64, &mut back).unwrap();
            assert_eq!(back, data, "at {offset}+{len}");
        }
        disk.flush().unwrap();
        assert_eq!(device.data(), model, "nothing else changed");
    }

    #[test]
    fn a_range_past_a_partition_is_refused_before_the_device_sees_it() {
        let mut device = memory_device(vec![0xEE; 8192], 0, 0);
        // Sectors 4..8 of 16: the partition after it starts at byte 4096.
        let mut disk = BlockDisk::within(&mut device, 4, 4);
        assert_eq!(disk.size(), 2048);
        let mut byte = [0u8; 1];
        disk.read(2047, &mut byte).unwrap();
        for (offset, len) in [(2048, 1), (2000, 100), (u64::MAX, 1)] {
            let error = disk.read(offset, &mut vec![0; len]).unwrap_err();
            assert!(error.contains("run past the 2048 bytes"), "{error}");
            let error = disk.write(offset, &vec![1; len]).unwrap_err();
            assert!(error.contains("run past the 2048 bytes"), "{error}");
        }
        assert!(device.data().iter().all(|&b| b == 0xEE), "nothing written");
        assert_eq!(
            device.request_sizes(),
            [1],
            "only the read inside was asked for"
        );
    }

    #[test]
    fn a_short_read_is_an_error_not_a_panic() {
        let mut device = memory_device(vec![0xEE; 8192], 100, 0);
        let mut disk = BlockDisk::new(&mut device);
        for (offset, len) in [(0, 1024), (3, 10), (700, 2000)] {
            let mut back = vec![0u8; len];
            let error = disk.read(offset, &mut back).unwrap_err();
            assert!(error.contains("returned"), "{error}");
            assert!(back.iter().all(|&b| b == 0), "nothing half-copied");
        }
        let error = disk.write(3, &[1; 10]).unwrap_err();
        assert!(error.contains("returned 412 bytes"), "{error}");
        assert!(device.data().iter().all(|&b| b == 0xEE), "nothing written");
    }

    #[test]
    fn a_write_buffer_of_another_length_is_withdrawn_and_an_error() {
        for long_by in [100, -100] {
            let mut device = memory_device(vec![0xEE; 8192], 0, long_by);
            device.stale_write_bytes = Some(0xDD);
            let mut disk = BlockDisk::new(&mut device);
            for (offset, len) in [(0, 1024), (3, 10), (700, 2000)] {
                let error = disk.write(offset, &vec![1; len]).unwrap_err();
                assert!(error.contains("handed over"), "{error}");
            }
            let error = disk.write(512, &[1; 512]).unwrap_err();
            let handed = 512 + long_by;
            assert!(
                error.contains(&format!(
                    "handed over {handed} bytes for a write of 512 bytes; not written"
                )),
                "{error}"
            );
            assert!(device.data().iter().all(|&b| b == 0xEE), "nothing written");
            assert!(
                device.request_sizes().iter().all(|&sectors| sectors == 1),
                "only the partial sectors' reads reached the device: {:?}",
                device.request_sizes()
            );
        }
    }
}
