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
    BITMAP_MAGIC, BITS_PER_BITMAP_BLOCK, BODY_AT, Block, CRC_AT, bit_is_set, bitmap_position,
    check_header_as, copy_to_change, set_bit, stamp,
};

impl<D: BlockStore> FileSystem<D> {
    /// What `read` makes of bitmap block `number`, read in place (no copy) and checked
    /// first (the CRC only if it was not checked or sealed before: see
    /// `Store::with_metadata`).
    fn read_bitmap<T>(
        &mut self,
        number: u64,
        read: impl FnOnce(&Block) -> Result<T, FsError>,
    ) -> Result<T, FsError> {
        self.read_sealed(number, |block, trust| {
            check_header_as(block, BITMAP_MAGIC, number, "bitmap block", trust)?;
            read(block)
        })
    }

    /// Allocates a run of 1 to `max` blocks at or after `goal`; returns its first block
    /// and length, or `NoSpace`.
    pub(crate) fn allocate_run(&mut self, goal: u64, max: u64) -> Result<(u64, u64), FsError> {
        let start = self.find_free(goal)?;
        let end = self.layout.blocks.min(start.saturating_add(max));
        let count = 1 + self.free_from(start + 1, end)?;
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
        for (from, to) in [(goal, layout.blocks), (layout.data_start, goal)] {
            if let Some(block) = self.first_free_in(from, to)? {
                return Ok(block);
            }
        }
        Err(FsError::NoSpace)
    }

    /// The first free block in `from..to`, a bitmap block at a time
    /// ([`first_clear_bit`]).
    fn first_free_in(&mut self, from: u64, to: u64) -> Result<Option<u64>, FsError> {
        let mut block = from;
        while block < to {
            let group_start = block / BITS_PER_BITMAP_BLOCK * BITS_PER_BITMAP_BLOCK;
            let group_end = to.min(group_start + BITS_PER_BITMAP_BLOCK);
            let (number, _, _) = bitmap_position(&self.layout, block);
            let within = |block: u64| (block - group_start) as usize;
            let clear = self.read_bitmap(number, |contents| {
                let bits = contents.get(BODY_AT..CRC_AT).unwrap_or_default();
                Ok(first_clear_bit(bits, within(block), within(group_end)))
            })?;
            if let Some(bit) = clear {
                return Ok(Some(group_start + bit as u64));
            }
            block = group_end;
        }
        Ok(None)
    }

    /// How many blocks from `from` on, before `to`, are free before the first used
    /// one: a bitmap block at a time, each read once, in place.
    fn free_from(&mut self, from: u64, to: u64) -> Result<u64, FsError> {
        let layout = self.layout;
        let mut block = from;
        while block < to {
            let group_end = to.min((block / BITS_PER_BITMAP_BLOCK + 1) * BITS_PER_BITMAP_BLOCK);
            let (number, _, _) = bitmap_position(&layout, block);
            let used = self.read_bitmap(number, |contents| {
                Ok((block..group_end).find(|&at| {
                    let (_, byte, bit) = bitmap_position(&layout, at);
                    bit_is_set(contents, byte, bit)
                }))
            })?;
            if let Some(used) = used {
                return Ok(used - from);
            }
            block = group_end;
        }
        Ok(block - from)
    }

    /// Marks `count` blocks from `start` used or free; marking a block that already is
    /// says the bitmap is corrupt.
    fn mark(&mut self, start: u64, count: u64, used: bool) -> Result<(), FsError> {
        let mut block = start;
        let end = start + count;
        while block < end {
            let (number, _, _) = bitmap_position(&self.layout, block);
            let mut contents =
                self.read_bitmap(number, |contents| copy_to_change(&contents[..], number))?;
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

/// The first clear bit of bits `from..to` of `bits` (bit `i` is bit `i % 8` of byte
/// `i / 8`): a word of 64 set bits (a full region of the bitmap) is stepped over at
/// once, then a byte of 8, and only the rest is tested a bit at a time.
fn first_clear_bit(bits: &[u8], from: usize, to: usize) -> Option<usize> {
    let mut at = from;
    while at < to {
        #[cfg(test)]
        tests::LOOKS.with(|looks| looks.set(looks.get() + 1));
        let full = |width: usize| {
            at.is_multiple_of(width)
                && at + width <= to
                && bits
                    .get(at / 8..(at + width) / 8)
                    .is_some_and(|bytes| bytes.iter().all(|&byte| byte == 0xFF))
        };
        if full(64) {
            at += 64;
        } else if full(8) {
            at += 8;
        } else if bits
            .get(at / 8)
            .is_some_and(|&byte| byte & (1 << (at % 8)) == 0)
        {
            return Some(at);
        } else {
            at += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryDisk;
    use crate::disk::BLOCK_SIZE;
    use crate::tests::app_memory::with_blocks_left;

    std::thread_local! {
        /// Steps [`first_clear_bit`] took on this thread (a word, a byte or a bit looked at).
        pub(super) static LOOKS: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
    }

    #[test]
    fn the_first_clear_bit_is_found_past_full_words_and_bytes() {
        let mut bits = [0xFFu8; 32];
        assert_eq!(first_clear_bit(&bits, 0, 256), None);
        bits[20] = 0b1101_1111;
        assert_eq!(first_clear_bit(&bits, 0, 256), Some(165));
        assert_eq!(first_clear_bit(&bits, 3, 256), Some(165));
        assert_eq!(first_clear_bit(&bits, 165, 166), Some(165));
        assert_eq!(first_clear_bit(&bits, 166, 256), None);
        assert_eq!(first_clear_bit(&bits, 0, 165), None);
        bits[0] = 0b0111_1111;
        assert_eq!(first_clear_bit(&bits, 0, 256), Some(7));
        assert_eq!(first_clear_bit(&bits, 8, 256), Some(165));
    }

    /// A nearly full disk's free block is found stepping over full words of the bitmap:
    /// the scan stepped over a full byte as one bit (its `continue` went on to the next
    /// block, tested alone), so it tested every used block, 0.9 ms per small file made
    /// on a nearly full 1 GiB disk.
    #[test]
    fn a_full_region_is_stepped_over_a_word_at_a_time() {
        let mut fs = FileSystem::format(MemoryDisk::new(70_000)).unwrap();
        let data = fs.layout.data_start;
        let last = fs.layout.blocks - 1;
        fs.claim_run(data, last - data).unwrap();
        LOOKS.with(|looks| looks.set(0));
        assert_eq!(fs.find_free(data).unwrap(), last);
        let looks = LOOKS.with(|looks| looks.get());
        // 70,000 blocks over 3 bitmap blocks: a word of 64 at a time, and a few bits
        // and bytes at each bitmap block's end.
        assert!(looks < 70_000 / 64 + 100, "{looks} steps");
    }

    /// An allocation copies only the bitmap block it changes: the scans for a free
    /// block and for the run after it read the bitmap in place. They copied every
    /// bitmap block they looked at, a 4 KiB copy per block scanned on every allocation,
    /// and under memory pressure refused it as "changing block N" though a scan changes
    /// nothing.
    #[test]
    fn allocating_copies_only_the_bitmap_block_it_changes() {
        let mut fs = FileSystem::format(MemoryDisk::new(1024)).unwrap();
        let bitmap = fs.layout.bitmap_start;
        // The bitmap block read (into the cache) with memory.
        let first = fs.find_free(fs.layout.data_start).unwrap();
        assert_eq!(with_blocks_left(0, || fs.find_free(first)), Ok(first));
        let no_memory = FsError::NoMemory {
            what: format!("changing block {bitmap}"),
            bytes: BLOCK_SIZE as u64,
        };
        assert_eq!(
            with_blocks_left(0, || fs.allocate_run(first, 8)),
            Err(no_memory)
        );
        assert_eq!(
            with_blocks_left(1, || fs.allocate_run(first, 8)),
            Ok((first, 8))
        );
        assert_eq!(fs.find_free(first), Ok(first + 8));
    }
}
