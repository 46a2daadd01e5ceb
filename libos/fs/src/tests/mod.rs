//! Host tests of the Rexo file system, and what they share: a small random number
//! generator, snapshots of a tree and a reference model of the file system.

mod corrupt;
mod crash;
mod fuzz;
mod handles;
mod model;
mod ops;
mod property;
mod read_only;
mod repair;
mod soak;
mod workload;

/// An app short of memory, played on one test's thread: how many more blocks
/// [`crate::format::try_block`] may give.
pub(crate) mod app_memory {
    use core::cell::Cell;

    std::thread_local! {
        /// Blocks left to give on this thread; `None`: as many as the host has.
        static BLOCKS_LEFT: Cell<Option<u64>> = const { Cell::new(None) };
    }

    /// Runs `run` with at most `blocks` more blocks from `try_block` on this thread.
    pub(crate) fn with_blocks_left<T>(blocks: u64, run: impl FnOnce() -> T) -> T {
        BLOCKS_LEFT.set(Some(blocks));
        let result = run();
        BLOCKS_LEFT.set(None);
        result
    }

    /// Whether `try_block` may give one more block; counts it when it may.
    pub(crate) fn take_block() -> bool {
        take_blocks(1)
    }

    /// Whether `blocks` more blocks may be given (a run's buffer); counts them when
    /// they may.
    pub(crate) fn take_blocks(blocks: u64) -> bool {
        match BLOCKS_LEFT.get() {
            None => true,
            Some(left) if left < blocks => false,
            Some(left) => {
                BLOCKS_LEFT.set(Some(left - blocks));
                true
            }
        }
    }
}

/// The most blocks a mount held pending (committed, not yet home) on one test's
/// thread: noted by every commit as its blocks join them.
pub(crate) mod pending_watch {
    use core::cell::Cell;

    std::thread_local! {
        /// The most seen since the last [`take_peak`].
        static PEAK: Cell<usize> = const { Cell::new(0) };
    }

    /// Notes that a mount holds `pending` blocks pending.
    pub(crate) fn saw(pending: usize) {
        PEAK.set(PEAK.get().max(pending));
    }

    /// The most noted since the last call, and starts again from 0.
    pub(crate) fn take_peak() -> usize {
        PEAK.replace(0)
    }
}

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::disk::BlockStore;
use crate::extents::physical_of;
use crate::fs::FileSystem;
use crate::path::{child, parse};
use crate::{BLOCK_SIZE, FileKind, FsError};

/// Requests and blocks, each way, as a [`CountingDisk`] saw them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) reads: u64,
    pub(crate) read_blocks: u64,
    pub(crate) writes: u64,
    pub(crate) write_blocks: u64,
    pub(crate) flushes: u64,
}

impl Counts {
    /// Requests of every kind.
    pub(crate) fn requests(&self) -> u64 {
        self.reads + self.writes + self.flushes
    }
}

/// A memory disk that counts requests: each `read`, `write`, `read_run`, `write_run`
/// and `flush` is one.
pub(crate) struct CountingDisk {
    pub(crate) disk: crate::MemoryDisk,
    pub(crate) counts: Counts,
}

impl CountingDisk {
    /// `disk`, nothing counted yet.
    pub(crate) fn new(disk: crate::MemoryDisk) -> Self {
        Self {
            disk,
            counts: Counts::default(),
        }
    }
}

impl BlockStore for CountingDisk {
    fn blocks(&self) -> u64 {
        self.disk.blocks()
    }
    fn read(&mut self, block: u64, buf: &mut [u8]) -> Result<(), String> {
        self.read_run(block, buf)
    }
    fn write(&mut self, block: u64, data: &[u8]) -> Result<(), String> {
        self.write_run(block, data)
    }
    fn flush(&mut self) -> Result<(), String> {
        self.counts.flushes += 1;
        Ok(())
    }
    fn read_run(&mut self, first: u64, buf: &mut [u8]) -> Result<(), String> {
        self.counts.reads += 1;
        self.counts.read_blocks += (buf.len() / BLOCK_SIZE) as u64;
        self.disk.read_run(first, buf)
    }
    fn write_run(&mut self, first: u64, data: &[u8]) -> Result<(), String> {
        self.counts.writes += 1;
        self.counts.write_blocks += (data.len() / BLOCK_SIZE) as u64;
        self.disk.write_run(first, data)
    }
}

/// Xorshift64*: deterministic, seedable, good enough to pick operations.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..bound` (`bound > 0`).
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    /// True with probability `percent`%.
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One of `items`.
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// `length` random bytes.
    pub(crate) fn bytes(&mut self, length: usize) -> Vec<u8> {
        (0..length).map(|_| self.next() as u8).collect()
    }
}

/// A file as the tests compare it: its size and its allocated blocks' contents (the
/// blocks the file system maps; every other block of the file is a hole).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FileImage {
    pub(crate) size: u64,
    pub(crate) blocks: BTreeMap<u64, Vec<u8>>,
}

/// A node of a tree snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    Directory,
    File(FileImage),
}

/// A whole tree: path to node (the root, `/`, included).
pub(crate) type Snapshot = BTreeMap<String, Node>;

/// The tree of a mounted file system, read through its own lookups: every directory
/// by `list`, every file's size, mapped blocks and their contents.
pub(crate) fn snapshot<D: BlockStore>(fs: &mut FileSystem<D>) -> Result<Snapshot, FsError> {
    let mut tree = Snapshot::new();
    let mut directories = alloc::vec![String::from("/")];
    while let Some(directory) = directories.pop() {
        tree.insert(directory.clone(), Node::Directory);
        for entry in fs.list(&directory)? {
            let path = child(&directory, &entry.name);
            match entry.kind {
                FileKind::Directory => directories.push(path),
                FileKind::File => {
                    let image = file_image(fs, &path)?;
                    assert_eq!(image.size, entry.size, "{path}: listing and inode agree");
                    tree.insert(path, Node::File(image));
                }
            }
        }
    }
    Ok(tree)
}

/// One file's size and mapped blocks.
fn file_image<D: BlockStore>(fs: &mut FileSystem<D>, path: &str) -> Result<FileImage, FsError> {
    let names = parse(path)?;
    let found = fs.lookup_file(&names)?;
    let (extents, _) = fs.load_extents(&found.inode)?;
    let mut image = FileImage {
        size: found.inode.size,
        blocks: BTreeMap::new(),
    };
    for extent in &extents {
        for logical in extent.logical..extent.logical_end() {
            assert!(physical_of(&extents, logical).is_some());
            let mut contents = alloc::vec![0; BLOCK_SIZE];
            let offset = logical * BLOCK_SIZE as u64;
            let read = fs.read(path, offset, &mut contents)?;
            assert_eq!(read as u64, (image.size - offset).min(BLOCK_SIZE as u64));
            // Bytes past the end are not readable; the model keeps them zero too.
            image.blocks.insert(logical, contents);
        }
    }
    Ok(image)
}
