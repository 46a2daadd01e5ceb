//! Read access to physical memory, for code that parses what firmware and boot loaders leave
//! in RAM (ACPI tables, boot information) before the kernel heap exists.
//!
//! The kernel implements [`PhysMemory`] over its identity map; host tests use
//! `SparseMemory` (feature `host`), which holds recorded or synthetic chunks of memory.
//! The `read_*` helpers fetch little-endian fields from a byte slice and return `None`
//! instead of panicking when the field does not fit.
#![cfg_attr(target_os = "none", no_std)]

#[cfg(any(test, feature = "host"))]
extern crate alloc;

#[cfg(any(test, feature = "host"))]
mod sparse;
#[cfg(any(test, feature = "host"))]
pub use sparse::{OverlapError, SparseMemory};

/// Read access to physical memory. The kernel implements it over its identity map; host tests
/// over recorded memory images.
pub trait PhysMemory {
    /// The `len` bytes at physical address `phys`, or `None` if any of them is not readable
    /// memory (or the range wraps around the address space).
    fn read(&self, phys: u64, len: usize) -> Option<&[u8]>;
}

impl<T: PhysMemory + ?Sized> PhysMemory for &T {
    fn read(&self, phys: u64, len: usize) -> Option<&[u8]> {
        (**self).read(phys, len)
    }
}

/// The `N` bytes at `offset` of `bytes`, or `None` if they do not all fit.
pub fn read_array<const N: usize>(bytes: &[u8], offset: usize) -> Option<[u8; N]> {
    let end = offset.checked_add(N)?;
    bytes.get(offset..end)?.try_into().ok()
}

/// The byte at `offset` of `bytes`, or `None` past the end.
pub fn read_u8(bytes: &[u8], offset: usize) -> Option<u8> {
    bytes.get(offset).copied()
}

/// The little-endian `u16` at `offset` of `bytes`, or `None` if it does not fit.
pub fn read_u16(bytes: &[u8], offset: usize) -> Option<u16> {
    read_array(bytes, offset).map(u16::from_le_bytes)
}

/// The little-endian `u32` at `offset` of `bytes`, or `None` if it does not fit.
pub fn read_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    read_array(bytes, offset).map(u32::from_le_bytes)
}

/// The little-endian `u64` at `offset` of `bytes`, or `None` if it does not fit.
pub fn read_u64(bytes: &[u8], offset: usize) -> Option<u64> {
    read_array(bytes, offset).map(u64::from_le_bytes)
}

/// The `len` bytes at `offset` of `bytes`, or `None` if they do not all fit.
pub fn read_bytes(bytes: &[u8], offset: usize, len: usize) -> Option<&[u8]> {
    bytes.get(offset..offset.checked_add(len)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_reads_are_little_endian() {
        let b = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(read_u8(&b, 8), Some(9));
        assert_eq!(read_u16(&b, 1), Some(0x0302));
        assert_eq!(read_u32(&b, 0), Some(0x0403_0201));
        assert_eq!(read_u64(&b, 1), Some(0x0908_0706_0504_0302));
        assert_eq!(read_array::<3>(&b, 6), Some([7, 8, 9]));
        assert_eq!(read_bytes(&b, 7, 2), Some(&[8u8, 9][..]));
    }

    #[test]
    fn field_reads_past_the_end_are_none() {
        let b = [1, 2, 3, 4];
        assert_eq!(read_u8(&b, 4), None);
        assert_eq!(read_u16(&b, 3), None);
        assert_eq!(read_u32(&b, 1), None);
        assert_eq!(read_u64(&b, 0), None);
        assert_eq!(read_u32(&b, usize::MAX), None);
        assert_eq!(read_bytes(&b, usize::MAX, 2), None);
        assert_eq!(read_bytes(&b, 2, 3), None);
        assert_eq!(read_array::<1>(&[], 0), None);
    }
}
