//! The block-device abstraction the file system runs on, and a disk in memory.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Bytes per block, on disk and in every buffer passed to a [`BlockStore`].
pub const BLOCK_SIZE: usize = 4096;

/// A disk seen as numbered blocks of [`BLOCK_SIZE`] (4096) bytes.
///
/// A crash may tear a write of one block at the boundaries of the disk's sectors (a
/// disk of 512-byte sectors writes a block as eight): each sector is assumed written
/// whole, holding its old or its new contents, but some may be new and others old.
/// The file system's guarantees hold over that (a torn journal block fails its
/// transaction's CRC, every block a checkpoint writes home is still in the journal, and
/// the journal header lies in its first sector; `format` writes the superblock's magic,
/// block 0's first sector alone, last; repair commits its rebuilt tree through the
/// journal).
/// Writes may reach the medium in any order until `flush`.
pub trait BlockStore {
    /// Blocks on the disk.
    fn blocks(&self) -> u64;
    /// Reads block `block` into `buf` (`buf.len() == BLOCK_SIZE`).
    fn read(&mut self, block: u64, buf: &mut [u8]) -> Result<(), String>;
    /// Writes `data` (`data.len() == BLOCK_SIZE`) to block `block`.
    fn write(&mut self, block: u64, data: &[u8]) -> Result<(), String>;
    /// Every write before it is durable when it returns.
    fn flush(&mut self) -> Result<(), String>;

    /// Reads the run of `buf.len() / BLOCK_SIZE` blocks from `first` into `buf` (a
    /// whole number of blocks, at least one). Provided as one `read` per block; a store
    /// that can move a run in fewer requests overrides it.
    fn read_run(&mut self, first: u64, buf: &mut [u8]) -> Result<(), String> {
        whole_blocks(buf.len())?;
        for (index, block) in buf.chunks_mut(BLOCK_SIZE).enumerate() {
            self.read(first + index as u64, block)?;
        }
        Ok(())
    }

    /// Reads the run of `count` blocks (at least one) from `first` and hands the bytes
    /// to `take` where they are, in pieces of whole blocks in any order, each with its
    /// byte offset in the run: a store that reads into its device's buffers passes
    /// those, with no copy. Provided as one [`read_run`](Self::read_run) into a buffer.
    fn read_run_in_place(
        &mut self,
        first: u64,
        count: usize,
        take: &mut dyn FnMut(usize, &[u8]),
    ) -> Result<(), String> {
        let mut buf = alloc::vec![0u8; count * BLOCK_SIZE];
        self.read_run(first, &mut buf)?;
        take(0, &buf);
        Ok(())
    }

    /// Writes `data` (a whole number of blocks, at least one) to the run of blocks from
    /// `first`. Like separate writes, the blocks may reach the medium in any order until
    /// `flush`. Provided as one `write` per block; a store that can move a run in fewer
    /// requests overrides it.
    fn write_run(&mut self, first: u64, data: &[u8]) -> Result<(), String> {
        whole_blocks(data.len())?;
        for (index, block) in data.chunks(BLOCK_SIZE).enumerate() {
            self.write(first + index as u64, block)?;
        }
        Ok(())
    }
}

/// Blocks in a run buffer of `len` bytes, or why it is not a run.
pub(crate) fn whole_blocks(len: usize) -> Result<u64, String> {
    if len == 0 || !len.is_multiple_of(BLOCK_SIZE) {
        return Err(format!(
            "a run buffer of {len} bytes, not whole 4 KiB blocks"
        ));
    }
    Ok((len / BLOCK_SIZE) as u64)
}

impl<T: BlockStore + ?Sized> BlockStore for &mut T {
    fn blocks(&self) -> u64 {
        (**self).blocks()
    }
    fn read(&mut self, block: u64, buf: &mut [u8]) -> Result<(), String> {
        (**self).read(block, buf)
    }
    fn write(&mut self, block: u64, data: &[u8]) -> Result<(), String> {
        (**self).write(block, data)
    }
    fn flush(&mut self) -> Result<(), String> {
        (**self).flush()
    }
    fn read_run(&mut self, first: u64, buf: &mut [u8]) -> Result<(), String> {
        (**self).read_run(first, buf)
    }
    fn read_run_in_place(
        &mut self,
        first: u64,
        count: usize,
        take: &mut dyn FnMut(usize, &[u8]),
    ) -> Result<(), String> {
        (**self).read_run_in_place(first, count, take)
    }
    fn write_run(&mut self, first: u64, data: &[u8]) -> Result<(), String> {
        (**self).write_run(first, data)
    }
}

/// A disk held in memory: a vector of blocks, where a block never written takes no
/// memory and reads as zeros (so large, mostly empty disks are cheap).
#[derive(Clone, Default)]
pub struct MemoryDisk {
    /// One entry per block: empty until the block is first written.
    blocks: Vec<Vec<u8>>,
}

impl MemoryDisk {
    /// A zeroed disk of `blocks` blocks.
    pub fn new(blocks: u64) -> Self {
        let count = usize::try_from(blocks).unwrap_or(usize::MAX);
        let mut all = Vec::new();
        all.resize_with(count, Vec::new);
        Self { blocks: all }
    }

    /// The block, or an error naming why it cannot be used.
    fn slot(&mut self, block: u64, len: usize) -> Result<&mut Vec<u8>, String> {
        if len != BLOCK_SIZE {
            return Err(format!("buffer of {len} bytes, not {BLOCK_SIZE}"));
        }
        let total = self.blocks.len();
        usize::try_from(block)
            .ok()
            .and_then(|index| self.blocks.get_mut(index))
            .ok_or_else(|| format!("block {block} is past the end of a {total}-block disk"))
    }
}

impl core::fmt::Debug for MemoryDisk {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "MemoryDisk({} blocks)", self.blocks.len())
    }
}

impl BlockStore for MemoryDisk {
    fn blocks(&self) -> u64 {
        self.blocks.len() as u64
    }

    fn read(&mut self, block: u64, buf: &mut [u8]) -> Result<(), String> {
        let slot = self.slot(block, buf.len())?;
        if slot.is_empty() {
            buf.fill(0);
        } else {
            buf.copy_from_slice(slot);
        }
        Ok(())
    }

    fn write(&mut self, block: u64, data: &[u8]) -> Result<(), String> {
        let slot = self.slot(block, data.len())?;
        slot.clear();
        slot.extend_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
}
