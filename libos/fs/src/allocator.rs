//! Block allocation: one bit per block of the disk in the bitmap region (set = used).
//!
//! The policy is goal-directed first fit: a new block goes to the first free block at
//! or after a goal, wrapping round to the start of the data region, and a run of blocks
//! extends while the blocks after it are free. The goal of a file's data is the block
//! after the one holding the previous logical block, or else after the file's last
//! block, or else (a file without blocks) the block after the directory block that
//! holds its entry; a directory grows after its last block. So the blocks of the small
//! files of a directory land together, just after the directory's own blocks (C-FFS's
//! grouping, by placement rather than by explicit groups).

use alloc::format;

use crate::FileSystem;
use crate::disk::BlockStore;
use crate::error::FsError;
use crate::format::{
    BITMAP_MAGIC, BITS_PER_BITMAP_BLOCK, Block, bit_is_set, bitmap_position, check_header_as,
    set_bit, stamp,
};

/// The bitmap block last read, so that scans read each bitmap block once.
struct BitmapCursor {
    /// The bitmap block held, and its contents.
    held: Option<(u64, Block)>,
}

impl BitmapCursor {
    fn new() -> Self {
        Self { held: None }
    }

    /// Whether `block` is free.
    fn is_free<D: BlockStore>(
        &mut self,
        fs: &mut FileSystem<D>,
        block: u64,
    ) -> Result<bool, FsError> {
        let (number, byte, bit) = bitmap_position(&fs.layout, block);
        let current = match self.held.take() {
            Some((held, contents)) if held == number => contents,
            _ => fs.read_bitmap(number)?,
        };
        let free = !bit_is_set(&current, byte, bit);
        self.held = Some((number, current));
        Ok(free)
    }
}

impl<D: BlockStore> FileSystem<D> {
    /// Reads and checks bitmap block `number` (the CRC only if it was not checked or
    /// sealed before: see `Store::with_metadata`).
    fn read_bitmap(&mut self, number: u64) -> Result<Block, FsError> {
        self.read_sealed(number, |block, trust| {
            check_header_as(block, BITMAP_MAGIC, number, "bitmap block", trust)?;
            Ok(block.clone())
        })
    }

    /// Allocates a run of 1 to `max` blocks at or after `goal`; returns its first block
    /// and length, or `NoSpace`.
    pub(crate) fn allocate_run(&mut self, goal: u64, max: u64) -> Result<(u64, u64), FsError> {
        let start = self.find_free(goal)?;
        let mut cursor = BitmapCursor::new();
        let mut count = 1;
        while count < max
            && start + count < self.layout.blocks
            && cursor.is_free(self, start + count)?
        {
            count += 1;
        }
        self.claim_run(start, count)?;
        Ok((start, count))
    }

    /// Takes the `count` free blocks from `start` (repair adopting a file's blocks
    /// where they are).
    pub(crate) fn claim_run(&mut self, start: u64, count: u64) -> Result<(), FsError> {
        if !self.layout.in_data(start, count) {
            return Err(FsError::corrupt(
                start,
                format!("claiming {count} blocks from {start}, outside the data region"),
            ));
        }
        self.mark(start, count, true)?;
        self.free_blocks = self.free_blocks.saturating_sub(count);
        Ok(())
    }

    /// Returns `count` blocks from `start` to the free pool.
    pub(crate) fn free_run(&mut self, start: u64, count: u64) -> Result<(), FsError> {
        if !self.layout.in_data(start, count) {
            return Err(FsError::corrupt(
                start,
                format!("freeing {count} blocks from {start}, outside the data region"),
            ));
        }
        self.mark(start, count, false)?;
        self.free_blocks = self.free_blocks.saturating_add(count);
        Ok(())
    }

    /// The first free data block at or after `goal`, wrapping round.
    fn find_free(&mut self, goal: u64) -> Result<u64, FsError> {
        let layout = self.layout;
        let goal = if layout.in_data(goal, 1) {
            goal
        } else {
            layout.data_start
        };
        if self.free_blocks == 0 {
            return Err(FsError::NoSpace);
        }
        let mut cursor = BitmapCursor::new();
        for block in (goal..layout.blocks).chain(layout.data_start..goal) {
            if block % 8 == 0
                && block + 8 <= layout.blocks
                && self.byte_is_full(&mut cursor, block)?
            {
                continue;
            }
            if cursor.is_free(self, block)? {
                return Ok(block);
            }
        }
        Err(FsError::NoSpace)
    }

    /// Whether the 8 blocks from `block` (a multiple of 8) are all used.
    fn byte_is_full(&mut self, cursor: &mut BitmapCursor, block: u64) -> Result<bool, FsError> {
        cursor.is_free(self, block)?;
        let (_, byte, _) = bitmap_position(&self.layout, block);
        Ok(cursor
            .held
            .as_ref()
            .and_then(|(_, contents)| contents.get(byte))
            .is_some_and(|&bits| bits == 0xFF))
    }

    /// Marks `count` blocks from `start` used or free; marking a block that already is
    /// says the bitmap is corrupt.
    fn mark(&mut self, start: u64, count: u64, used: bool) -> Result<(), FsError> {
        let mut block = start;
        let end = start + count;
        while block < end {
            let (number, _, _) = bitmap_position(&self.layout, block);
            let mut contents = self.read_bitmap(number)?;
            let group_end = end.min((block / BITS_PER_BITMAP_BLOCK + 1) * BITS_PER_BITMAP_BLOCK);
            while block < group_end {
                let (_, byte, bit) = bitmap_position(&self.layout, block);
                if bit_is_set(&contents, byte, bit) == used {
                    let state = if used { "used" } else { "free" };
                    return Err(FsError::corrupt(
                        number,
                        format!("bitmap already marks block {block} {state}"),
                    ));
                }
                set_bit(&mut contents, byte, bit, used);
                block += 1;
            }
            stamp(&mut contents, BITMAP_MAGIC, number);
            self.store.stage_metadata(number, contents);
        }
        Ok(())
    }
}
