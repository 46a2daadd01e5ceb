//! The Rexo file system (`rexo-fs`): a library file system in the C-FFS tradition,
//! over any [`BlockStore`] of 4 KiB blocks.
//!
//! # Design
//!
//! - **Embedded inodes.** There is no inode table: each file's inode (kind, size, the
//!   number of the transaction that last wrote it, four extents and a pointer to more)
//!   lives inside its directory entry, and the root directory's inode inside the
//!   superblock. Looking a file up reads its directory's blocks and nothing else. The
//!   trade-off, as in C-FFS: no hard links (a file has exactly one name).
//! - **Extents.** A file maps runs of logical blocks to runs of physical blocks; four
//!   extents fit in the inode, more go to a chain of overflow extent blocks (169 each).
//!   Logical blocks without an extent are holes and read as zeros, so files are sparse;
//!   sizes and block numbers are u64, and a file may be as large as the disk (its
//!   size, holes included, up to [`MAX_FILE_SIZE`]).
//! - **Grouping.** New blocks are placed at or after a goal: a file's next block after
//!   its previous one, a new file's first block just after the directory block holding
//!   its entry; so the small files of a directory sit together next to it.
//! - **Journal.** Every change is physical block journaling: an operation stages the
//!   new images of every block it changes, then they join the running transaction,
//!   which is committed to the journal (descriptor blocks, the images, a commit block
//!   with a CRC-32C over the whole transaction) and flushed. Ordered writes: a commit
//!   with at least [`MIN_IN_PLACE_BLOCKS`] fresh blocks (free when the last commit
//!   left the bitmap, and not in the journal: new files' data, new directory blocks)
//!   writes those home and flushes first, and journals only the rest.
//!   By default ([`CommitPolicy::EachOperation`]) that happens before each operation
//!   returns, so a completed operation is durable and atomic; with
//!   [`CommitPolicy::OnCommit`] operations are grouped until [`FileSystem::commit`]
//!   (or the journal or [`MAX_RUNNING_BLOCKS`] says so). Home locations are written at
//!   a checkpoint ([`FileSystem::sync`], or when the journal is full or the committed
//!   blocks waiting for it pass [`DEFAULT_MAX_PENDING_BLOCKS`]). Mount replays
//!   every committed transaction and ignores a torn tail, so a crash at any write
//!   leaves the tree as it was after some operation (at or after the last commit),
//!   also where it tears a block's write at the boundaries of 512-byte sectors.
//! - **Reading together.** A bounded cache of clean blocks ([`DEFAULT_CACHE_BLOCKS`],
//!   [`FileSystem::set_cache_blocks`]) sits under the journal's layers; a miss on
//!   metadata or a small file's data reads the run of blocks after it (up to
//!   [`DEFAULT_READ_TOGETHER`], [`FileSystem::set_read_together`]) in one request, so a
//!   directory block brings the small files placed after it (C-FFS's grouping, read as
//!   Cheetah does). Runs of blocks go to the disk as runs ([`BlockStore::read_run`],
//!   [`BlockStore::write_run`]): journal transactions, checkpoints, large files. An
//!   open file ([`FileSystem::open`], [`File`]) keeps its extent map, so
//!   [`FileSystem::read_at`] reads a large file's blocks from the disk into the
//!   caller's buffer and nothing else.
//! - **Checksums.** Every metadata block carries its kind's magic, its own block
//!   number (a block written to the wrong place is caught) and a CRC-32. File data is
//!   not checksummed.
//! - **Checked on mount.** Mount replays the journal in memory, checks the whole file
//!   system ([`FileSystem::fsck`]) and refuses a damaged one without writing anything;
//!   no parser panics on bad data, each error names the block and path.
//!
//! # On disk (version 2)
//!
//! Block 0 is the superblock; blocks `1..1 + J` the journal (J = blocks / 64, at least
//! 64 and at most 16384; its header block all in its first 512-byte sector); then the
//! allocation bitmap (one bit per disk block, 32608 per bitmap block); then data blocks
//! (directory blocks, overflow extent blocks and file data) to the end of the disk. `docs/storage.md` describes every field.
//!
//! Paths are absolute and `/`-separated; names are 1 to 255 bytes, without NUL, and
//! not `.` or `..` (which are not stored).
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod allocator;
mod cache;
mod device;
mod dir;
mod disk;
mod error;
mod extents;
mod file;
mod format;
mod fs;
mod fsck;
mod journal;
mod path;
mod repair;
mod store;

#[cfg(test)]
mod tests;

use alloc::string::String;

pub use device::{DeviceStore, on_first_file_system, on_first_file_system_to_read};
pub use disk::{BLOCK_SIZE, BlockStore, MemoryDisk};
pub use error::FsError;
pub use file::File;
pub use format::{FileKind, MAX_NAME, MIN_DISK_BLOCKS};
pub use fs::{
    CommitPolicy, DEFAULT_MAX_PENDING_BLOCKS, FileSystem, MAX_RUNNING_BLOCKS, MIN_IN_PLACE_BLOCKS,
};
pub use fsck::FsckReport;
pub use repair::{MAX_COPIED_BLOCKS, RepairReport};
pub use store::{DEFAULT_CACHE_BLOCKS, DEFAULT_READ_TOGETHER};

/// The largest file size, in bytes (1 EiB; holes included).
pub const MAX_FILE_SIZE: u64 = 1 << 60;

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The name.
    pub name: String,
    /// File or directory.
    pub kind: FileKind,
    /// Bytes (a directory: its blocks times 4096).
    pub size: u64,
}

/// What [`FileSystem::stat`] says about a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// File or directory.
    pub kind: FileKind,
    /// Bytes (a directory: its blocks times 4096).
    pub size: u64,
    /// Blocks holding its data (a directory: its directory blocks); holes take none.
    pub blocks: u64,
    /// The journal transaction that last wrote its inode (a clock-free modification
    /// stamp: larger is later).
    pub changed: u64,
}

/// Space on the file system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatFs {
    /// Bytes per block.
    pub block_size: u64,
    /// Data blocks (the disk less the superblock, journal and bitmap).
    pub total_blocks: u64,
    /// Data blocks free.
    pub free_blocks: u64,
}
