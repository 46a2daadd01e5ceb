//! `fsbench`: the Rexo side of `cargo xtask bench fs` (docs/bench.md, "File system").
//!
//! On the first disk holding the Rexo file system (which the harness made with `big`, a
//! [`BIG_FILE_BYTES`] file, in its root) it times, with the kernel's clock:
//!
//! 1. **create**: [`DIRECTORIES`] directories under `/bench`, [`FILES_PER_DIRECTORY`]
//!    files of [`FILE_BYTES`] in each (create, write [`file_byte`]'s pattern), then
//!    `sync`: everything durable and written home;
//! 2. **read**: every file read back and checked byte by byte, from a cold cache;
//! 3. **delete**: every file unlinked, every directory removed, then `sync`;
//! 4. **randread-file**: [`RANDOM_READS`] reads of 4 KiB at random 4 KiB-aligned offsets
//!    of `big`, one at a time, through a handle (`FileSystem::open`,
//!    `read_at_in_place`: the bytes looked at in the device's buffers, as the raw reads
//!    below look at theirs), each turn from a cold cache;
//! 5. **randread-raw**: as many reads of 4 KiB at the same offsets of the first
//!    [`BIG_FILE_BYTES`] of the disk the file system is on (of its partition, when it is
//!    in one), straight from the device, one at a time.
//!
//! The two random-read phases take turns of [`TURN_READS`] reads (the file's, then the
//! disk's over the same offsets) and each sums its own time, so that the host's load
//! changing during the run weighs on both alike.
//!
//! Each phase prints `fsbench PHASE files=N ns=T` (or `reads=N`); a failure prints
//! `fsbench PHASE FAILED: why` and the app fails. The Linux side
//! (`xtask/src/bench/fsbench.c`) does the same steps on ext4 and prints the same lines.
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec;

use rexo_api::device::wait_for;
use rexo_api::{ApiError, BlockDevice, Kernel};
use rexo_fs::{BlockStore, CommitPolicy, DeviceStore, FileSystem, FsError, on_first_file_system};
use rexo_mbr::{Attempt, Partition, TYPE_REXO_FS, on_first_disk_holding};

/// Directories the small files are spread over.
pub const DIRECTORIES: u32 = 100;
/// Files in each directory.
pub const FILES_PER_DIRECTORY: u32 = 100;
/// Bytes in each small file.
pub const FILE_BYTES: usize = 1024;
/// The large file's name in the root directory.
pub const BIG_FILE: &str = "/big";
/// The large file's size: 1 GiB.
pub const BIG_FILE_BYTES: u64 = 1 << 30;
/// Random 4 KiB reads of each kind.
pub const RANDOM_READS: u64 = 10_000;
/// Reads of one kind in a turn (the two kinds take turns).
pub const TURN_READS: u64 = 1_000;
/// The bytes one random read takes.
const READ_BYTES: u64 = 4096;

/// Byte `at` of small file `file` (0-based over all directories): what create writes
/// and read checks.
pub fn file_byte(file: u32, at: usize) -> u8 {
    (file.wrapping_mul(7).wrapping_add(at as u32) % 251) as u8
}

/// A reproducible sequence of 4 KiB-aligned offsets below a limit (xorshift64*).
#[derive(Clone, Debug)]
pub struct Offsets(u64);

impl Offsets {
    /// The sequence both sides use.
    pub fn new() -> Self {
        Self(0x9E37_79B9_7F4A_7C15)
    }

    /// The next offset, a multiple of 4096 below `limit`.
    pub fn next_below(&mut self, limit: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let slots = (limit / READ_BYTES).max(1);
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) % slots * READ_BYTES
    }
}

impl Default for Offsets {
    fn default() -> Self {
        Self::new()
    }
}

/// The path of small file `file` and of its directory.
fn paths(file: u32) -> (String, String) {
    let directory = format!("/bench/d{:03}", file / FILES_PER_DIRECTORY);
    let name = format!("{directory}/f{:03}", file % FILES_PER_DIRECTORY);
    (directory, name)
}

/// All the small files.
fn files() -> core::ops::Range<u32> {
    0..DIRECTORIES * FILES_PER_DIRECTORY
}

/// Runs `phase` and prints its line: `count` items in the nanoseconds it took.
fn timed(
    kernel: &Kernel,
    name: &str,
    unit: &str,
    count: u64,
    phase: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    let start = kernel.now_ns();
    match phase() {
        Ok(()) => {
            let ns = kernel.now_ns().saturating_sub(start);
            kernel.log(format_args!("fsbench {name} {unit}={count} ns={ns}"));
            Ok(())
        }
        Err(why) => {
            kernel.log(format_args!("fsbench {name} FAILED: {why}"));
            Err(why)
        }
    }
}

/// The file-system phases on a mounted file system.
fn file_system_phases<D: BlockStore>(
    kernel: &Kernel,
    fs: &mut FileSystem<D>,
) -> Result<(), String> {
    let text = |e: FsError| format!("{e}");
    let big = fs.stat(BIG_FILE).map_err(text)?.size;
    if big < BIG_FILE_BYTES {
        return Err(format!(
            "{BIG_FILE} holds {big} bytes, not the {BIG_FILE_BYTES} the harness writes"
        ));
    }
    fs.set_commit_policy(CommitPolicy::OnCommit).map_err(text)?;
    let count = u64::from(DIRECTORIES * FILES_PER_DIRECTORY);
    timed(kernel, "create", "files", count, || {
        fs.mkdir("/bench").map_err(text)?;
        let mut data = vec![0u8; FILE_BYTES];
        for file in files() {
            let (directory, path) = paths(file);
            if file % FILES_PER_DIRECTORY == 0 {
                fs.mkdir(&directory).map_err(text)?;
            }
            for (at, byte) in data.iter_mut().enumerate() {
                *byte = file_byte(file, at);
            }
            fs.create(&path).map_err(text)?;
            fs.write(&path, 0, &data).map_err(text)?;
        }
        fs.sync().map_err(text)
    })?;
    fs.drop_cache();
    timed(kernel, "read", "files", count, || {
        let mut buf = vec![0u8; 4096];
        for file in files() {
            let (_, path) = paths(file);
            let got = fs.read(&path, 0, &mut buf).map_err(text)?;
            let wrong = (0..FILE_BYTES).find(|&at| buf[at] != file_byte(file, at));
            if got != FILE_BYTES || wrong.is_some() {
                return Err(format!(
                    "{path}: read {got} bytes, first wrong byte at {wrong:?}"
                ));
            }
        }
        Ok(())
    })?;
    timed(kernel, "delete", "files", count, || {
        for file in files() {
            let (directory, path) = paths(file);
            fs.unlink(&path).map_err(text)?;
            if file % FILES_PER_DIRECTORY == FILES_PER_DIRECTORY - 1 {
                fs.rmdir(&directory).map_err(text)?;
            }
        }
        fs.rmdir("/bench").map_err(text)?;
        fs.sync().map_err(text)
    })?;
    Ok(())
}

/// The random reads of the file and of the raw disk, taken in turns of [`TURN_READS`]
/// (the file's turn, then the disk's, over the same offsets), each kind's time summed:
/// a change in the host's load between two long phases cannot tilt their ratio. Each
/// turn opens the first disk holding the Rexo file system (as `on_first_file_system`
/// does), reads the file on it, then reads the same offsets straight from that disk
/// (from the partition's first sector when the file system is in one).
fn random_reads(kernel: &Kernel) -> Result<(), String> {
    let mut offsets = Offsets::new();
    let mut ns = [0u64; 2];
    let mut first = 0u8;
    for _ in 0..RANDOM_READS / TURN_READS {
        let took = on_first_disk_holding(
            kernel,
            TYPE_REXO_FS,
            "Rexo file system",
            |disk, partition| reads_on(kernel, disk, partition, &mut offsets, &mut first),
        )
        .map_err(|why| ("randread-file", why))
        .and_then(|took| took)
        .map_err(|(name, why)| failed(kernel, name, why))?;
        ns[0] += took[0];
        ns[1] += took[1];
    }
    core::hint::black_box(first);
    for (name, ns) in ["randread-file", "randread-raw"].iter().zip(ns) {
        kernel.log(format_args!("fsbench {name} reads={RANDOM_READS} ns={ns}"));
    }
    Ok(())
}

/// What one turn on `disk` (in `partition`, when there is one) took: [`file_turn`] on
/// its Rexo file system, then [`raw_turn`] over the same offsets from the file system's
/// first sector, each read's first byte XORed into `first`. `NotHere` when no Rexo file
/// system mounts there; the nanoseconds of each kind, or the failed phase and why.
fn reads_on(
    kernel: &Kernel,
    disk: &mut dyn BlockDevice,
    partition: Option<&Partition>,
    offsets: &mut Offsets,
    first: &mut u8,
) -> Attempt<Result<[u64; 2], (&'static str, String)>> {
    let store = match partition {
        None => DeviceStore::new(&mut *disk),
        Some(p) => DeviceStore::within(&mut *disk, p.first, p.sectors),
    };
    let mut fs = match store.and_then(|s| FileSystem::mount(s).map_err(|e| format!("{e}"))) {
        Ok(fs) => fs,
        Err(why) => return Attempt::NotHere(why),
    };
    let turn = offsets.clone();
    let file = file_turn(kernel, &mut fs, offsets);
    drop(fs);
    Attempt::Done(Ok(file.map_err(|why| ("randread-file", why)).and_then(
        |file_ns| {
            let start = partition.map_or(0, |p| p.first);
            let began = kernel.now_ns();
            let mut look = |data: &[u8]| *first ^= data.first().copied().unwrap_or(0);
            raw_turn(disk, start, turn, BIG_FILE_BYTES, &mut look)
                .map(|()| [file_ns, kernel.now_ns().saturating_sub(began)])
                .map_err(|why| ("randread-raw", why))
        },
    )))
}

/// Prints phase `name`'s failure and gives `why` back.
fn failed(kernel: &Kernel, name: &str, why: String) -> String {
    kernel.log(format_args!("fsbench {name} FAILED: {why}"));
    why
}

/// One turn of the file's reads through a handle (`FileSystem::open`, `read_at_in_place`) from a
/// cold cache; the nanoseconds the reads took.
fn file_turn<D: BlockStore>(
    kernel: &Kernel,
    fs: &mut FileSystem<D>,
    offsets: &mut Offsets,
) -> Result<u64, String> {
    let mut big = fs.open(BIG_FILE).map_err(|e| format!("{e}"))?;
    fs.drop_cache();
    let mut first = 0u8;
    let start = kernel.now_ns();
    for _ in 0..TURN_READS {
        let at = offsets.next_below(BIG_FILE_BYTES);
        let mut look = |_: usize, data: &[u8]| first ^= data.first().copied().unwrap_or(0);
        let got = fs
            .read_at_in_place(&mut big, at, READ_BYTES as usize, &mut look)
            .map_err(|e| format!("{e}"))?;
        if got != READ_BYTES as usize {
            return Err(format!("{BIG_FILE} at {at}: read {got} bytes"));
        }
    }
    let took = kernel.now_ns().saturating_sub(start);
    core::hint::black_box(first);
    Ok(took)
}

/// One turn of the same reads ([`TURN_READS`] of 4 KiB at `offsets` below `span`)
/// straight from `disk`, counted from its sector `start` (the file system's partition's
/// first, 0 for a whole disk), one at a time, each read's data handed to `look`. A
/// sector size that does not divide 4 KiB is refused before anything is read.
fn raw_turn(
    disk: &mut dyn BlockDevice,
    start: u64,
    mut offsets: Offsets,
    span: u64,
    look: &mut dyn FnMut(&[u8]),
) -> Result<(), String> {
    let sectors = sectors_per_read(disk.info().sector_size)?;
    let sector = READ_BYTES / u64::from(sectors);
    for _ in 0..TURN_READS {
        let lba = start + offsets.next_below(span) / sector;
        let tag = disk
            .submit_read(0, lba, sectors)
            .map_err(|e| format!("sector {lba}: {e}"))?;
        wait_for(disk, 0, tag, look).map_err(|e| format!("sector {lba}: {e}"))?;
    }
    Ok(())
}

/// The sectors of `sector_size` bytes one 4 KiB read takes, or why none can: sizes that
/// do not divide 4 KiB (0, or above it: the read would be of no sector).
fn sectors_per_read(sector_size: u32) -> Result<u32, String> {
    let size = u64::from(sector_size);
    if size == 0 || !READ_BYTES.is_multiple_of(size) {
        return Err(format!(
            "{size}-byte sectors do not divide a {READ_BYTES}-byte read"
        ));
    }
    Ok((READ_BYTES / size) as u32)
}

/// `fsbench`'s entry point.
pub fn main(kernel: &Kernel) -> Result<(), ApiError> {
    let outcome = on_first_file_system(kernel, |fs| Ok(file_system_phases(kernel, fs)))
        .and_then(|phases| phases)
        .and_then(|()| random_reads(kernel));
    match outcome {
        Ok(()) => {
            kernel.log(format_args!("fsbench done"));
            Ok(())
        }
        Err(why) => {
            kernel.log(format_args!("fsbench FAILED: {why}"));
            Err(ApiError::AppFailed(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_aligned_below_the_limit_and_spread() {
        let mut offsets = Offsets::new();
        let seen: alloc::collections::BTreeSet<u64> = (0..1000)
            .map(|_| offsets.next_below(BIG_FILE_BYTES))
            .collect();
        assert!(seen.iter().all(|&o| o % 4096 == 0 && o < BIG_FILE_BYTES));
        assert!(seen.len() > 990, "{} distinct offsets of 1000", seen.len());
    }

    /// The raw reads come from the file system's own sectors: `start` (its partition's
    /// first sector) on, at the turn's offsets. Before, they read the first disk from
    /// sector 0, whichever disk and partition the file system was mounted from.
    #[test]
    fn raw_reads_start_at_the_file_systems_first_sector() {
        const START: u64 = 40;
        const SPAN: u64 = 64 << 10;
        let sectors = START + SPAN / 512;
        let data = (0..sectors).flat_map(|s| [s as u8; 512]).collect();
        let mut disk = rexo_api::testing::MemoryDisk::new(data);
        let mut seen = Vec::new();
        raw_turn(&mut disk, START, Offsets::new(), SPAN, &mut |data| {
            seen.push((data.len(), data[0]))
        })
        .unwrap();
        let mut offsets = Offsets::new();
        let expected: Vec<_> = (0..TURN_READS)
            .map(|_| (4096, (START + offsets.next_below(SPAN) / 512) as u8))
            .collect();
        assert_eq!(seen, expected);
    }

    /// A sector size above 4 KiB (or not dividing it, or 0) is refused with its size
    /// named: a 4 KiB read of 8 KiB sectors was a read of 0 sectors, and its empty
    /// data's first byte a panic.
    #[test]
    fn sector_sizes_that_do_not_divide_a_read_are_refused() {
        assert_eq!(sectors_per_read(512), Ok(8));
        assert_eq!(sectors_per_read(4096), Ok(1));
        assert_eq!(
            sectors_per_read(8192),
            Err("8192-byte sectors do not divide a 4096-byte read".into())
        );
        assert!(sectors_per_read(0).is_err());
        assert!(sectors_per_read(520).is_err());
    }

    #[test]
    fn paths_spread_files_over_directories() {
        assert_eq!(paths(0), ("/bench/d000".into(), "/bench/d000/f000".into()));
        assert_eq!(
            paths(9999),
            ("/bench/d099".into(), "/bench/d099/f099".into())
        );
        assert_ne!(file_byte(1, 0), file_byte(2, 0));
    }
}
