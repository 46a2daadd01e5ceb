//! [`SparseMemory`]: chunks of bytes at chosen physical addresses, for host tests.

use alloc::vec::Vec;
use core::fmt;

use crate::PhysMemory;

/// A physical memory made of separate chunks, each a run of bytes at a base address.
///
/// Everything outside the chunks is unreadable, and so is a range that crosses from one
/// chunk into another: a read succeeds only inside a single chunk.
#[derive(Clone, Debug, Default)]
pub struct SparseMemory {
    chunks: Vec<(u64, Vec<u8>)>,
}

/// [`SparseMemory::insert`] was given a chunk that overlaps one already present, or that
/// wraps around the end of the address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverlapError {
    /// Base address of the rejected chunk.
    pub base: u64,
}

impl fmt::Display for OverlapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "memory chunk at {:#x} overlaps another or wraps around",
            self.base
        )
    }
}

impl SparseMemory {
    /// An empty memory: nothing is readable.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `bytes` at physical address `base`.
    pub fn insert(&mut self, base: u64, bytes: impl Into<Vec<u8>>) -> Result<(), OverlapError> {
        let bytes = bytes.into();
        let end = base
            .checked_add(bytes.len() as u64)
            .ok_or(OverlapError { base })?;
        let overlaps = self.chunks.iter().any(|(b, c)| {
            let e = b + c.len() as u64;
            base < e && *b < end
        });
        if overlaps {
            return Err(OverlapError { base });
        }
        self.chunks.push((base, bytes));
        Ok(())
    }

    /// Builder form of [`insert`](Self::insert), for tests that lay out fixed memory.
    pub fn with(mut self, base: u64, bytes: impl Into<Vec<u8>>) -> Result<Self, OverlapError> {
        self.insert(base, bytes)?;
        Ok(self)
    }

    /// Mutable access to the `len` bytes at `phys`, if they lie inside one chunk (used by
    /// tests to corrupt recorded structures).
    pub fn read_mut(&mut self, phys: u64, len: usize) -> Option<&mut [u8]> {
        let (base, chunk) = self
            .chunks
            .iter_mut()
            .find(|(b, c)| contains(*b, c, phys, len))?;
        let start = usize::try_from(phys - *base).ok()?;
        chunk.get_mut(start..start.checked_add(len)?)
    }

    /// Overwrites the bytes at `phys` with `data`; `None` if they do not lie inside one chunk.
    pub fn write(&mut self, phys: u64, data: &[u8]) -> Option<()> {
        self.read_mut(phys, data.len())?.copy_from_slice(data);
        Some(())
    }

    /// The chunks, as (base address, bytes) pairs in insertion order.
    pub fn chunks(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.chunks.iter().map(|(b, c)| (*b, c.as_slice()))
    }
}

/// Whether `phys..phys+len` lies inside the chunk at `base`.
fn contains(base: u64, chunk: &[u8], phys: u64, len: usize) -> bool {
    let Some(end) = phys.checked_add(len as u64) else {
        return false;
    };
    phys >= base && end <= base + chunk.len() as u64
}

impl PhysMemory for SparseMemory {
    fn read(&self, phys: u64, len: usize) -> Option<&[u8]> {
        let (base, chunk) = self
            .chunks
            .iter()
            .find(|(b, c)| contains(*b, c, phys, len))?;
        let start = usize::try_from(phys - *base).ok()?;
        chunk.get(start..start.checked_add(len)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_inside_one_chunk_only() {
        let mem = SparseMemory::new()
            .with(0x1000, [1u8, 2, 3, 4])
            .unwrap()
            .with(0x1004, [5u8, 6])
            .unwrap();
        assert_eq!(mem.read(0x1000, 4), Some(&[1u8, 2, 3, 4][..]));
        assert_eq!(mem.read(0x1005, 1), Some(&[6u8][..]));
        assert_eq!(mem.read(0x1004, 0), Some(&[][..]));
        // Crossing from one chunk into the next, or past the last, is unreadable.
        assert_eq!(mem.read(0x1002, 4), None);
        assert_eq!(mem.read(0x1005, 2), None);
        assert_eq!(mem.read(0xfff, 1), None);
        assert_eq!(mem.read(u64::MAX, 2), None);
        fn first_byte(m: impl PhysMemory) -> Option<u8> {
            m.read(0x1000, 1).map(|b| b[0])
        }
        assert_eq!(first_byte(&mem), Some(1));
        assert_eq!(mem.chunks().count(), 2);
    }

    #[test]
    fn rejects_overlap_and_wrap() {
        let mut mem = SparseMemory::new();
        mem.insert(0x100, [0u8; 16]).unwrap();
        assert_eq!(
            mem.insert(0x10f, [0u8; 1]),
            Err(OverlapError { base: 0x10f })
        );
        assert_eq!(
            mem.insert(0xf0, [0u8; 17]),
            Err(OverlapError { base: 0xf0 })
        );
        assert_eq!(
            mem.insert(u64::MAX, [0u8; 2]),
            Err(OverlapError { base: u64::MAX })
        );
        assert!(mem.insert(0x110, [0u8; 1]).is_ok());
        assert!(OverlapError { base: 1 }.to_string().contains("0x1"));
    }

    #[test]
    fn write_patches_bytes() {
        let mut mem = SparseMemory::new().with(0x10, [0u8; 4]).unwrap();
        assert_eq!(mem.write(0x11, &[7, 8]), Some(()));
        assert_eq!(mem.read(0x10, 4), Some(&[0u8, 7, 8, 0][..]));
        assert_eq!(mem.write(0x13, &[1, 2]), None);
        assert_eq!(mem.read_mut(0x20, 1), None);
    }
}
