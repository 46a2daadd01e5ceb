//! A Rexo disk (`rexo_api::BlockDevice`) as a [`BlockStore`]: each 4 KiB block is the
//! run of sectors under it, on queue 0, in place in the requests' DMA buffers. A run of
//! blocks goes in requests of up to the device's `max_sectors`, with up to its `depth`
//! (at most 8) in flight at once; `flush` is the device's flush, so the
//! journal's "durable when it returns" is the disk's.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Range;

use rexo_api::device::{ExactError, run_windowed, submit_write_exact, wait_for};
use rexo_api::{BlockDevice, Kernel, Tag};
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
    /// Blocks one request may carry (the device's `max_sectors`, in whole blocks).
    per_request: usize,
    /// Requests kept in flight in a run (the device's depth, 1 to [`MAX_IN_FLIGHT`]).
    in_flight: usize,
    /// The current run's requests in flight and the blocks of the run each carries
    /// (kept from run to run, so that a run allocates nothing).
    queued: Vec<(Tag, Range<usize>)>,
}

/// The most requests a run keeps in flight at once.
const MAX_IN_FLIGHT: usize = 8;

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
            per_request: (info.max_sectors / sectors) as usize,
            in_flight: info.depth.clamp(1, MAX_IN_FLIGHT),
            queued: Vec::with_capacity(MAX_IN_FLIGHT),
        })
    }

    /// The part of `device` from sector `first`, `count` sectors long (a partition).
    /// A range past the device's end is cut to it, so that no block's sector number
    /// lies past the device (or overflows).
    pub fn within(device: &'a mut dyn BlockDevice, first: u64, count: u64) -> Result<Self, String> {
        let mut store = Self::new(device)?;
        let device_sectors = store.blocks * u64::from(store.sectors);
        store.first = first;
        store.blocks = count.min(device_sectors.saturating_sub(first)) / u64::from(store.sectors);
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

    /// Moves the `count` blocks from `first` (all on the disk) in requests of up to
    /// `per_request` blocks, keeping up to `in_flight` of them queued: `submit` queues
    /// the request for the blocks `range` (of the run) at `lba` or says why not, `done`
    /// takes a finished one's data.
    /// After an error it queues no more requests and still waits for every request it
    /// queued (so none is left to complete into a later caller's wait), then returns the
    /// first error; when polling itself fails, it abandons the requests in flight to the
    /// device (`abandon_requests`) and returns that error, so none of them completes
    /// afterwards (all as [`run_windowed`] does).
    fn run(
        &mut self,
        first: u64,
        count: usize,
        submit: Submit<'_>,
        done: Done<'_>,
    ) -> Result<(), String> {
        let last = first
            .checked_add((count as u64).saturating_sub(1))
            .ok_or_else(|| format!("a run of {count} blocks from {first} overflows"))?;
        self.lba(last)?;
        let lba = self.lba(first)?;
        let (sectors_per_block, per_request) = (self.sectors, self.per_request);
        let mut next = 0;
        let outcome = run_windowed(
            self.device,
            0,
            self.in_flight,
            &mut self.queued,
            &mut |device| {
                if next >= count {
                    return None;
                }
                let blocks = (count - next).min(per_request);
                let range = next..next + blocks;
                let at = lba + next as u64 * u64::from(sectors_per_block);
                let sectors = blocks as u32 * sectors_per_block;
                next += blocks;
                Some(submit(device, at, sectors, range.clone()).map(|tag| (tag, range)))
            },
            &mut |range, result| match result {
                Ok(data) => done(range, data),
                Err(e) => Err(format!("{e}")),
            },
        );
        // A failed poll: the device cannot tell us about the rest, and `run_windowed`
        // gave them up to it, so that none completes into the caller's buffers after the
        // run returned.
        outcome.map_err(|e| format!("{e}"))?
    }
}

/// Queues one request of a run: the device, the request's first sector, its sectors and
/// the blocks of the run it carries; gives the request's tag, or why it was not queued
/// (the run then queues no more).
type Submit<'a> =
    &'a mut dyn FnMut(&mut dyn BlockDevice, u64, u32, Range<usize>) -> Result<Tag, String>;

/// Takes a finished request of a run: the blocks of the run it carried and its data.
type Done<'a> = &'a mut dyn FnMut(Range<usize>, &[u8]) -> Result<(), String>;

/// The bytes of the blocks `range` of a run buffer.
fn bytes(range: Range<usize>) -> Range<usize> {
    range.start * BLOCK_SIZE..range.end * BLOCK_SIZE
}

impl BlockStore for DeviceStore<'_> {
    fn blocks(&self) -> u64 {
        self.blocks
    }

    fn read(&mut self, block: u64, buf: &mut [u8]) -> Result<(), String> {
        self.read_run(block, buf)
    }

    fn write(&mut self, block: u64, data: &[u8]) -> Result<(), String> {
        self.write_run(block, data)
    }

    fn flush(&mut self) -> Result<(), String> {
        let tag = self.device.submit_flush(0).map_err(|e| format!("{e}"))?;
        wait_for(self.device, 0, tag, &mut |_| {}).map_err(|e| format!("{e}"))
    }

    fn read_run(&mut self, first: u64, buf: &mut [u8]) -> Result<(), String> {
        let count = crate::disk::whole_blocks(buf.len())? as usize;
        self.read_run_in_place(first, count, &mut |at, data| {
            if let Some(target) = buf.get_mut(at..at + data.len()) {
                target.copy_from_slice(data);
            }
        })
    }

    fn read_run_in_place(
        &mut self,
        first: u64,
        count: usize,
        take: &mut dyn FnMut(usize, &[u8]),
    ) -> Result<(), String> {
        self.run(
            first,
            count,
            &mut |device, lba, sectors, _| {
                device
                    .submit_read(0, lba, sectors)
                    .map_err(|e| format!("{e}"))
            },
            &mut |range, data| {
                if bytes(range.clone()).len() != data.len() {
                    return Err(format!("the device returned {} bytes", data.len()));
                }
                take(range.start * BLOCK_SIZE, data);
                Ok(())
            },
        )
    }

    /// A request whose buffer the device hands over at another length than asked is
    /// withdrawn before the device sees it (nothing of it reaches the disk) and fails the
    /// run at once with an error naming the lengths; requests already queued are waited
    /// for.
    fn write_run(&mut self, first: u64, data: &[u8]) -> Result<(), String> {
        let count = crate::disk::whole_blocks(data.len())? as usize;
        self.run(
            first,
            count,
            &mut |device, lba, sectors, range| {
                let source = data.get(bytes(range)).unwrap_or_default();
                submit_write_exact(device, 0, (lba, sectors), source.len(), &mut |buffer| {
                    buffer.copy_from_slice(source)
                })
                .map_err(|failed| match failed {
                    ExactError::WrongLength(handed) => format!(
                        "the device handed over {handed} bytes for a write of {} bytes; not written",
                        source.len()
                    ),
                    ExactError::Device(e) => format!("{e}"),
                })
            },
            &mut |_, _| Ok(()),
        )
    }
}

/// Runs `work` on the Rexo file system of the first disk that holds one (opening and
/// mounting each disk in turn, and giving it back afterwards); the error says what was
/// found on each disk (held by another app, no Rexo file system, damaged...) or what
/// `work` failed with.
pub fn on_first_file_system<T>(
    kernel: &Kernel,
    mut work: impl FnMut(&mut FileSystem<DeviceStore<'_>>) -> Result<T, FsError>,
) -> Result<T, String> {
    on_first_mounted(kernel, &mut |store| FileSystem::mount(store), &mut work)
}

/// [`on_first_file_system`] for work that only reads: a file system whose check fails,
/// or whose journal cannot be written home (a lease without write access, a disk
/// error), is mounted read-only ([`FileSystem::mount_read_only`]) rather than passed
/// over, and `read_only` is told why (what the check found, or the failed write); every
/// change is then refused with [`FsError::ReadOnly`] and nothing more is written to that
/// disk.
pub fn on_first_file_system_to_read<T>(
    kernel: &Kernel,
    read_only: &mut dyn FnMut(&FsError),
    mut work: impl FnMut(&mut FileSystem<DeviceStore<'_>>) -> Result<T, FsError>,
) -> Result<T, String> {
    on_first_mounted(
        kernel,
        &mut |store| FileSystem::mount_to_read(store, read_only),
        &mut work,
    )
}

/// Opens each disk holding the Rexo file system in turn, mounts it with `mount` and
/// runs `work` on the first that mounts.
fn on_first_mounted<T>(
    kernel: &Kernel,
    mount: &mut dyn FnMut(DeviceStore<'_>) -> Result<FileSystem<DeviceStore<'_>>, FsError>,
    work: &mut dyn FnMut(&mut FileSystem<DeviceStore<'_>>) -> Result<T, FsError>,
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
            match store.and_then(|store| mount(store).map_err(|e| format!("{e}"))) {
                Ok(mut fs) => Attempt::Done(work(&mut fs).map_err(|e| format!("{e}"))),
                Err(why) => Attempt::NotHere(why),
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use rexo_api::testing::MemoryDisk;

    /// A disk in memory of `sectors` 512-byte sectors, each holding its number (mod
    /// 256), with requests of at most 3 blocks and 4 in flight, finishing them newest
    /// first, one per poll (so a run that stopped polling early would leave the others
    /// in flight).
    fn device(sectors: usize) -> MemoryDisk {
        let mut device = MemoryDisk::new((0..sectors * 512).map(|i| (i / 512) as u8).collect());
        device.max_sectors = 24;
        device.depth = 4;
        device.newest_first = true;
        device
    }

    #[test]
    fn a_partition_past_the_device_is_cut_to_it() {
        let mut device = device(64 * 8);
        assert_eq!(
            DeviceStore::within(&mut device, 8, u64::MAX)
                .unwrap()
                .blocks(),
            63
        );
        let mut store = DeviceStore::within(&mut device, u64::MAX, u64::MAX).unwrap();
        assert_eq!(store.blocks(), 0);
        assert!(
            store.read(0, &mut [0; BLOCK_SIZE]).is_err(),
            "an error, not an overflow"
        );
    }

    #[test]
    fn runs_go_in_requests_of_max_sectors_several_in_flight() {
        let mut device = device(64 * 8);
        let mut store = DeviceStore::new(&mut device).unwrap();
        assert_eq!(store.blocks(), 64);
        let data: Vec<u8> = (0..20 * BLOCK_SIZE).map(|i| (i * 7 / 5) as u8).collect();
        store.write_run(10, &data).unwrap();
        let mut back = vec![0; 20 * BLOCK_SIZE];
        store.read_run(10, &mut back).unwrap();
        assert!(back == data, "a run reads back what was written");
        let mut in_place = vec![0; 20 * BLOCK_SIZE];
        let mut take =
            |at: usize, piece: &[u8]| in_place[at..at + piece.len()].copy_from_slice(piece);
        store.read_run_in_place(10, 20, &mut take).unwrap();
        assert!(in_place == data, "and in place, in the device's buffers");
        let mut one = vec![0; BLOCK_SIZE];
        store.read(9, &mut one).unwrap();
        assert_eq!((one[0], one[511], one[512], one[4095]), (72, 72, 73, 79));
        assert_eq!(
            device.request_sizes().len(),
            7 + 7 + 7 + 1,
            "20 blocks in 3-block requests, three times"
        );
        assert_eq!(device.most_in_flight(), 4, "up to the depth in flight");
        assert_eq!(
            device.data()[80 * 512 - 1],
            79,
            "the block before is untouched"
        );
        assert_eq!(
            device.data()[30 * 8 * 512],
            240,
            "the block after is untouched"
        );
    }

    #[test]
    fn a_failed_request_fails_the_run_after_the_others_finish() {
        let mut device = device(64 * 8);
        device.failing_reads = 8 * 14..8 * 14 + 1;
        let mut store = DeviceStore::new(&mut device).unwrap();
        let mut buf = vec![0; 20 * BLOCK_SIZE];
        let error = store.read_run(10, &mut buf).unwrap_err();
        assert!(error.contains("status"), "{error}");
        assert!(store.read_run(60, &mut buf).unwrap_err().contains("past"));
        let error = store.read_run(0, &mut buf[..100]).unwrap_err();
        assert!(error.contains("100 bytes"), "{error}");
        assert!(device.in_flight() == 0, "nothing left in flight");
    }

    #[test]
    fn a_failed_poll_abandons_the_runs_requests_to_the_device() {
        let mut device = device(64 * 8);
        device.polls_before_failing = Some(2);
        let mut store = DeviceStore::new(&mut device).unwrap();
        let mut buf = vec![0; 20 * BLOCK_SIZE];
        let error = store.read_run(10, &mut buf).unwrap_err();
        assert!(error.contains("no answer"), "{error}");
        assert!(
            device.in_flight() == 0,
            "no request of the run is left to complete later"
        );
        device.polls_before_failing = None;
        let mut store = DeviceStore::new(&mut device).unwrap();
        store.read_run(10, &mut buf).unwrap();
        assert_eq!((buf[0], buf[20 * BLOCK_SIZE - 1]), (80, 239));
    }

    #[test]
    fn a_write_buffer_of_another_length_is_withdrawn_and_fails_the_run() {
        for skew in [100, -100] {
            let mut device = device(64 * 8);
            device.write_skew = skew;
            device.stale_write_bytes = Some(0xDD);
            let before = device.data().to_vec();
            let mut store = DeviceStore::new(&mut device).unwrap();
            let error = store.write_run(10, &[7; 20 * BLOCK_SIZE]).unwrap_err();
            let handed = 12288 + skew;
            assert!(
                error.contains(&format!(
                    "handed over {handed} bytes for a write of 12288 bytes; not written"
                )),
                "{error}"
            );
            let error = store.write(30, &[7; BLOCK_SIZE]).unwrap_err();
            assert!(error.contains("handed over"), "{error}");
            assert_eq!(
                device.request_sizes(),
                [],
                "each write was withdrawn before the device saw it, and the run queued no more"
            );
            assert!(device.in_flight() == 0, "nothing left in flight");
            assert!(device.data() == before, "nothing written");
        }
    }

    #[test]
    fn a_file_system_lives_on_a_device() {
        let mut device = device(256 * 8);
        let mut fs = FileSystem::format(DeviceStore::new(&mut device).unwrap()).unwrap();
        fs.mkdir("/d").unwrap();
        fs.replace("/d/f", &[5; 50_000]).unwrap();
        fs.sync().unwrap();
        let mut fs = FileSystem::mount(DeviceStore::new(&mut device).unwrap()).unwrap();
        assert_eq!(fs.read_all("/d/f").unwrap(), [5; 50_000]);
        fs.check().unwrap();
    }
}
