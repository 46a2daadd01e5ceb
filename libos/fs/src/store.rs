//! Blocks as the file system sees them: the disk, overlaid by the blocks committed to
//! the journal but not yet written home, overlaid by the running transaction (completed
//! operations not yet committed), overlaid by the blocks the operation in progress has
//! changed.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::ops::Range;

use crate::cache::Cache;
use crate::disk::{BLOCK_SIZE, BlockStore};
use crate::error::FsError;
use crate::format::{
    Block, Layout, Trust, ZEROS, seal_checksum, try_block, try_run_buffer, zeroed,
};

/// The disk, the read cache and the three layers of changes above it.
#[derive(Debug)]
pub(crate) struct Store<D> {
    /// The disk.
    pub(crate) disk: D,
    /// Blocks committed to the journal whose home copies are not written yet.
    pub(crate) pending: BTreeMap<u64, Block>,
    /// Blocks changed by completed operations not yet committed to the journal: the
    /// running transaction.
    pub(crate) running: BTreeMap<u64, Block>,
    /// The metadata blocks of `staged` and of `running`: stamped but not sealed, their
    /// CRCs written once, at commit ([`Store::seal_running`]).
    staged_metadata: BTreeSet<u64>,
    running_metadata: BTreeSet<u64>,
    /// Blocks changed by the operation in progress (dropped if it fails).
    pub(crate) staged: BTreeMap<u64, Block>,
    /// Clean blocks as the disk holds them.
    pub(crate) cache: Cache,
    /// The data region: a miss there reads its neighbours after it together.
    data: Range<u64>,
    /// Blocks read together on a miss (1: just the one).
    pub(crate) together: u64,
}

/// What the running transaction held before a rehearsal's blocks joined it (see
/// [`Store::absorb_staged_noting`]): for each block they replaced, its image and
/// whether it was a metadata block, or `None` where it held none.
pub(crate) type Displaced = BTreeMap<u64, Option<(Block, bool)>>;

/// Blocks the read cache holds unless told otherwise (8 MiB).
pub const DEFAULT_CACHE_BLOCKS: usize = 2048;

/// Blocks read together unless told otherwise (128 KiB): a directory block and the
/// small files placed after it.
pub const DEFAULT_READ_TOGETHER: u64 = 32;

impl<D: BlockStore> Store<D> {
    /// The disk of `layout` with `pending` committed blocks above it.
    pub(crate) fn new(disk: D, pending: BTreeMap<u64, Block>, layout: &Layout) -> Self {
        Self {
            disk,
            pending,
            running: BTreeMap::new(),
            staged_metadata: BTreeSet::new(),
            running_metadata: BTreeSet::new(),
            staged: BTreeMap::new(),
            cache: Cache::new(DEFAULT_CACHE_BLOCKS),
            data: layout.data_start..layout.blocks,
            together: DEFAULT_READ_TOGETHER,
        }
    }

    /// The current contents of block `number`, read together with its neighbours if
    /// it is in the data region (metadata, and small files' data) and cached.
    pub(crate) fn read(&mut self, number: u64) -> Result<Block, FsError> {
        self.read_data(number, true)
    }

    /// Parses metadata block `number` with `decode`, in place (no copy), telling it
    /// whether the CRC must be verified: not if the block is one of this mount's changes
    /// (sealed here) or a cached block that passed before. A block that passes is
    /// marked so in the cache.
    pub(crate) fn with_metadata<T>(
        &mut self,
        number: u64,
        decode: impl FnOnce(&Block, Trust) -> Result<T, FsError>,
    ) -> Result<T, FsError> {
        if let Some(block) = self.changed(number) {
            return decode(block, Trust::Sealed);
        }
        if let Some((block, true)) = self.cache.get_verified(number) {
            return decode(block, Trust::Sealed);
        }
        let parsed = decode(&self.read(number)?, Trust::Verify)?;
        self.cache.verified(number);
        Ok(parsed)
    }

    /// Parses metadata block `number` as the last commit left it (the journal's pending
    /// image, else the disk's), below the running transaction and the operation in
    /// progress, with `decode` told whether to verify the CRC (as
    /// [`Store::with_metadata`]).
    pub(crate) fn with_committed_metadata<T>(
        &mut self,
        number: u64,
        decode: impl FnOnce(&Block, Trust) -> Result<T, FsError>,
    ) -> Result<T, FsError> {
        if let Some(block) = self.pending.get(&number) {
            return decode(block, Trust::Sealed);
        }
        if let Some((block, verified)) = self.cache.get_verified(number) {
            let trust = if verified {
                Trust::Sealed
            } else {
                Trust::Verify
            };
            let parsed = decode(block, trust)?;
            self.cache.verified(number);
            return Ok(parsed);
        }
        let mut block = try_block(&ZEROS).ok_or_else(|| FsError::NoMemory {
            what: alloc::format!("reading block {number}"),
            bytes: BLOCK_SIZE as u64,
        })?;
        self.dropping_cache_on_error(|disk| read_disk_into(disk, number, &mut block[..]))?;
        let parsed = decode(&block, Trust::Verify)?;
        self.cache.insert(number, block);
        self.cache.verified(number);
        Ok(parsed)
    }

    /// The block the changes above the disk hold as block `number`, if any.
    fn changed(&self, number: u64) -> Option<&Block> {
        self.staged
            .get(&number)
            .or_else(|| self.running.get(&number))
            .or_else(|| self.pending.get(&number))
    }

    /// The current contents of block `number`. When `together`, a cache miss in the
    /// data region reads the run of blocks from it (up to `together` blocks, ending
    /// before the first one cached) in one request, and keeps them all in the cache (if
    /// that run cannot be read, the block is read alone: a neighbour's error is not
    /// this block's);
    /// otherwise (a large file's data) a miss reads the block alone and keeps nothing.
    pub(crate) fn read_data(&mut self, number: u64, together: bool) -> Result<Block, FsError> {
        let no_memory = |blocks: u64| FsError::NoMemory {
            what: alloc::format!("reading block {number}"),
            bytes: blocks * BLOCK_SIZE as u64,
        };
        if let Some(block) = self.changed(number) {
            return try_block(&block[..]).ok_or_else(|| no_memory(1));
        }
        if let Some(block) = self.cache.get(number) {
            return try_block(&block[..]).ok_or_else(|| no_memory(1));
        }
        if !together || self.cache.capacity() == 0 {
            let mut block = try_block(&ZEROS).ok_or_else(|| no_memory(1))?;
            self.dropping_cache_on_error(|disk| read_disk_into(disk, number, &mut block[..]))?;
            return Ok(block);
        }
        let mut end = number + 1;
        if self.data.contains(&number) {
            let limit = self.data.end.min(number.saturating_add(self.together));
            while end < limit && !self.cache.contains(end) {
                end += 1;
            }
        }
        // Every block this needs is had before the disk is read: the run's buffer, a
        // block for each block of it the cache keeps, and the one returned.
        let count = (end - number) as usize;
        let needed = 2 * count as u64 + 1;
        let mut run = try_run_buffer(count).ok_or_else(|| no_memory(needed))?;
        run.resize(count * BLOCK_SIZE, 0);
        let mut blocks: Vec<Block> = Vec::new();
        blocks
            .try_reserve_exact(count)
            .map_err(|_| no_memory(needed))?;
        for _ in 0..count {
            blocks.push(try_block(&ZEROS).ok_or_else(|| no_memory(needed))?);
        }
        let mut wanted = try_block(&ZEROS).ok_or_else(|| no_memory(needed))?;
        if end > number + 1 && read_disk_run(&mut self.disk, number, &mut run).is_err() {
            // A neighbour may be what is unreadable: the block alone decides.
            end = number + 1;
            run.truncate(BLOCK_SIZE);
            blocks.truncate(1);
        }
        if end == number + 1 {
            self.dropping_cache_on_error(|disk| read_disk_into(disk, number, &mut run))?;
        }
        // The wanted block last, so it is the most recently used.
        for (index, (chunk, mut block)) in run.chunks(BLOCK_SIZE).zip(blocks).enumerate().rev() {
            block.copy_from_slice(chunk);
            if index == 0 {
                wanted.copy_from_slice(chunk);
            }
            self.cache.insert(number + index as u64, block);
        }
        Ok(wanted)
    }

    /// Reads the run of `count` blocks from `first` (a large file's, in place) and hands
    /// them to `take` with their byte offsets in the run: changed or cached blocks from
    /// memory, the others from the disk in runs, in the disk's buffers where it offers
    /// them; nothing is cached.
    pub(crate) fn read_run_in_place(
        &mut self,
        first: u64,
        count: usize,
        take: &mut dyn FnMut(usize, &[u8]),
    ) -> Result<(), FsError> {
        let mut index = 0;
        while index < count {
            let number = first + index as u64;
            let at = index * BLOCK_SIZE;
            if let Some(block) = self.changed(number) {
                take(at, &block[..]);
                index += 1;
                continue;
            }
            if let Some(block) = self.cache.get(number) {
                take(at, &block[..]);
                index += 1;
                continue;
            }
            let mut end = index + 1;
            while end < count
                && self.changed(first + end as u64).is_none()
                && !self.cache.contains(first + end as u64)
            {
                end += 1;
            }
            let blocks = end - index;
            self.dropping_cache_on_error(|disk| {
                let mut shifted = |offset: usize, data: &[u8]| take(at + offset, data);
                disk.read_run_in_place(number, blocks, &mut shifted)
                    .map_err(|message| {
                        let last = number + blocks as u64;
                        FsError::Disk(alloc::format!("reading blocks {number}..{last}: {message}"))
                    })
            })?;
            index = end;
        }
        Ok(())
    }

    /// Runs `read` on the disk; if it fails, the cache is dropped too.
    fn dropping_cache_on_error<T>(
        &mut self,
        read: impl FnOnce(&mut D) -> Result<T, FsError>,
    ) -> Result<T, FsError> {
        let result = read(&mut self.disk);
        if result.is_err() {
            self.cache.clear();
        }
        result
    }

    /// Makes `block` the new contents of block `number` in the operation in progress.
    ///
    /// The block maps (`staged`, `running`, `pending`) grow infallibly: stable Rust has
    /// no fallible `BTreeMap` insert. Their nodes are small (a few hundred bytes, each
    /// holding up to eleven entries) against the 4 KiB blocks they index, whose
    /// images are all had fallibly before they are inserted.
    pub(crate) fn stage(&mut self, number: u64, block: Block) {
        self.staged_metadata.remove(&number);
        self.staged.insert(number, block);
    }

    /// [`Store::stage`] for a stamped metadata block, sealed at commit.
    pub(crate) fn stage_metadata(&mut self, number: u64, block: Block) {
        self.staged_metadata.insert(number);
        self.staged.insert(number, block);
    }

    /// Forgets what the failed operation staged.
    pub(crate) fn drop_staged(&mut self) {
        self.staged.clear();
        self.staged_metadata.clear();
    }

    /// Moves what the operation staged into the running transaction.
    pub(crate) fn absorb_staged(&mut self) {
        let staged = core::mem::take(&mut self.staged);
        for number in staged.keys() {
            if self.staged_metadata.contains(number) {
                self.running_metadata.insert(*number);
            } else {
                self.running_metadata.remove(number);
            }
        }
        self.staged_metadata.clear();
        self.running.extend(staged);
    }

    /// [`Store::absorb_staged`] for a rehearsal or a commit that may fail: moves into
    /// `displaced` what each staged block replaces in the running transaction (the
    /// first time only; no copy), so that [`Store::restore_running`] can put it back
    /// as it was.
    pub(crate) fn absorb_staged_noting(&mut self, displaced: &mut Displaced) {
        let Self {
            staged,
            running,
            running_metadata,
            ..
        } = self;
        for number in staged.keys() {
            if let alloc::collections::btree_map::Entry::Vacant(entry) = displaced.entry(*number) {
                let metadata = running_metadata.contains(number);
                entry.insert(running.remove(number).map(|block| (block, metadata)));
            }
        }
        self.absorb_staged();
    }

    /// Puts the running transaction back as it was before the blocks `displaced`
    /// noted ([`Store::absorb_staged_noting`]) joined it.
    pub(crate) fn restore_running(&mut self, displaced: Displaced) {
        for (number, held) in displaced {
            match held {
                Some((block, metadata)) => {
                    self.running.insert(number, block);
                    if metadata {
                        self.running_metadata.insert(number);
                    } else {
                        self.running_metadata.remove(&number);
                    }
                }
                None => {
                    self.running.remove(&number);
                    self.running_metadata.remove(&number);
                }
            }
        }
    }

    /// Writes the CRC of every metadata block of the running transaction (before it
    /// goes to the journal, or before a check reads it).
    pub(crate) fn seal_running(&mut self) {
        for number in core::mem::take(&mut self.running_metadata) {
            if let Some(block) = self.running.get_mut(&number) {
                seal_checksum(block);
            }
        }
    }
}

/// Reads block `number` straight from the disk.
pub(crate) fn read_disk<D: BlockStore>(disk: &mut D, number: u64) -> Result<Block, FsError> {
    let mut block = zeroed();
    read_disk_into(disk, number, &mut block[..])?;
    Ok(block)
}

/// Reads block `number` straight from the disk into `buf` (one block).
fn read_disk_into<D: BlockStore>(disk: &mut D, number: u64, buf: &mut [u8]) -> Result<(), FsError> {
    disk.read(number, buf)
        .map_err(|message| FsError::Disk(alloc::format!("reading block {number}: {message}")))
}

/// Writes block `number` straight to the disk.
pub(crate) fn write_disk<D: BlockStore>(
    disk: &mut D,
    number: u64,
    block: &Block,
) -> Result<(), FsError> {
    disk.write(number, &block[..])
        .map_err(|message| FsError::Disk(alloc::format!("writing block {number}: {message}")))
}

/// Blocks the file system hands a store in one run at most (1 MiB), so that a run's
/// buffer stays small while a store still gets requests long enough to keep a disk busy.
pub(crate) const RUN_BLOCKS: usize = 256;

/// Reads the run of blocks from `first` straight from the disk into `buf` (whole blocks).
pub(crate) fn read_disk_run<D: BlockStore>(
    disk: &mut D,
    first: u64,
    buf: &mut [u8],
) -> Result<(), FsError> {
    disk.read_run(first, buf).map_err(|message| {
        let end = first + (buf.len() / BLOCK_SIZE) as u64;
        FsError::Disk(alloc::format!("reading blocks {first}..{end}: {message}"))
    })
}

/// Writes `data` (whole blocks) straight to the disk as the run of blocks from `first`.
pub(crate) fn write_disk_run<D: BlockStore>(
    disk: &mut D,
    first: u64,
    data: &[u8],
) -> Result<(), FsError> {
    disk.write_run(first, data).map_err(|message| {
        let end = first + (data.len() / BLOCK_SIZE) as u64;
        FsError::Disk(alloc::format!("writing blocks {first}..{end}: {message}"))
    })
}

/// Writes `blocks` (block number and image, in increasing order, at most `most` of
/// them) to their places, each run of consecutive numbers as one `write_run` of at
/// most [`RUN_BLOCKS`]. The run's buffer (up to [`RUN_BLOCKS`] blocks, fewer when
/// `most` is less) is had before anything is written: `NoMemory` without it, nothing
/// written.
pub(crate) fn write_sorted<'a, D: BlockStore>(
    disk: &mut D,
    most: usize,
    blocks: impl Iterator<Item = (u64, &'a Block)>,
) -> Result<(), FsError> {
    let room = most.min(RUN_BLOCKS);
    let mut run = try_run_buffer(room).ok_or_else(|| FsError::NoMemory {
        what: alloc::format!("writing a run of {room} blocks"),
        bytes: (room * BLOCK_SIZE) as u64,
    })?;
    let mut first = 0;
    for (number, block) in blocks {
        let length = (run.len() / BLOCK_SIZE) as u64;
        if !run.is_empty() && (number != first + length || length == room as u64) {
            write_disk_run(disk, first, &run)?;
            run.clear();
        }
        if run.is_empty() {
            first = number;
        }
        // Within the room reserved: `most` bounds the blocks, `room` a run.
        run.extend_from_slice(&block[..]);
    }
    if run.is_empty() {
        return Ok(());
    }
    write_disk_run(disk, first, &run)
}

/// Makes every write so far durable.
pub(crate) fn flush_disk<D: BlockStore>(disk: &mut D) -> Result<(), FsError> {
    disk.flush()
        .map_err(|message| FsError::Disk(alloc::format!("flushing: {message}")))
}
