//! Blocks as the file system sees them: the disk, overlaid by the blocks committed to
//! the journal but not yet written home, overlaid by the running transaction (completed
//! operations not yet committed), overlaid by the blocks the operation in progress has
//! changed.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::disk::{BLOCK_SIZE, BlockStore};
use crate::error::FsError;
use crate::format::{Block, zeroed};

/// The disk and the three layers of changes above it.
#[derive(Debug)]
pub(crate) struct Store<D> {
    /// The disk.
    pub(crate) disk: D,
    /// Blocks committed to the journal whose home copies are not written yet.
    pub(crate) pending: BTreeMap<u64, Block>,
    /// Blocks changed by completed operations not yet committed to the journal: the
    /// running transaction.
    pub(crate) running: BTreeMap<u64, Block>,
    /// Blocks changed by the operation in progress (dropped if it fails).
    pub(crate) staged: BTreeMap<u64, Block>,
}

impl<D: BlockStore> Store<D> {
    /// The disk with `pending` committed blocks above it.
    pub(crate) fn new(disk: D, pending: BTreeMap<u64, Block>) -> Self {
        Self {
            disk,
            pending,
            running: BTreeMap::new(),
            staged: BTreeMap::new(),
        }
    }

    /// The current contents of block `number`.
    pub(crate) fn read(&mut self, number: u64) -> Result<Block, FsError> {
        if let Some(block) = self
            .staged
            .get(&number)
            .or_else(|| self.running.get(&number))
            .or_else(|| self.pending.get(&number))
        {
            return Ok(block.clone());
        }
        read_disk(&mut self.disk, number)
    }

    /// Makes `block` the new contents of block `number` in the operation in progress.
    pub(crate) fn stage(&mut self, number: u64, block: Block) {
        self.staged.insert(number, block);
    }
}

/// Reads block `number` straight from the disk.
pub(crate) fn read_disk<D: BlockStore>(disk: &mut D, number: u64) -> Result<Block, FsError> {
    let mut block = zeroed();
    disk.read(number, &mut block[..])
        .map_err(|message| FsError::Disk(alloc::format!("reading block {number}: {message}")))?;
    Ok(block)
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

/// Writes `blocks` (block number and image, in increasing order) to their places,
/// each run of consecutive numbers as one `write_run` of at most [`RUN_BLOCKS`].
pub(crate) fn write_sorted<'a, D: BlockStore>(
    disk: &mut D,
    blocks: impl Iterator<Item = (u64, &'a Block)>,
) -> Result<(), FsError> {
    let mut run: Vec<u8> = Vec::new();
    let mut first = 0;
    for (number, block) in blocks {
        let length = (run.len() / BLOCK_SIZE) as u64;
        if !run.is_empty() && (number != first + length || length == RUN_BLOCKS as u64) {
            write_disk_run(disk, first, &run)?;
            run.clear();
        }
        if run.is_empty() {
            first = number;
        }
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
