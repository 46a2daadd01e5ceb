//! Blocks as the file system sees them: the disk, overlaid by the blocks committed to
//! the journal but not yet written home, overlaid by the blocks the transaction being
//! built has changed.

use alloc::collections::BTreeMap;

use crate::disk::BlockStore;
use crate::error::FsError;
use crate::format::{Block, zeroed};

/// The disk and the two layers of changes above it.
#[derive(Debug)]
pub(crate) struct Store<D> {
    /// The disk.
    pub(crate) disk: D,
    /// Blocks committed to the journal whose home copies are not written yet.
    pub(crate) pending: BTreeMap<u64, Block>,
    /// Blocks changed by the transaction being built (not yet in the journal).
    pub(crate) staged: BTreeMap<u64, Block>,
}

impl<D: BlockStore> Store<D> {
    /// The disk with `pending` committed blocks above it.
    pub(crate) fn new(disk: D, pending: BTreeMap<u64, Block>) -> Self {
        Self {
            disk,
            pending,
            staged: BTreeMap::new(),
        }
    }

    /// The current contents of block `number`.
    pub(crate) fn read(&mut self, number: u64) -> Result<Block, FsError> {
        if let Some(block) = self
            .staged
            .get(&number)
            .or_else(|| self.pending.get(&number))
        {
            return Ok(block.clone());
        }
        read_disk(&mut self.disk, number)
    }

    /// Makes `block` the new contents of block `number` in the transaction being built.
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

/// Makes every write so far durable.
pub(crate) fn flush_disk<D: BlockStore>(disk: &mut D) -> Result<(), FsError> {
    disk.flush()
        .map_err(|message| FsError::Disk(alloc::format!("flushing: {message}")))
}
