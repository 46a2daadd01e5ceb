//! Memory a device reads and writes by physical address.
#![allow(unsafe_code)] // the memory is shared with a device

use core::ptr::NonNull;

use crate::Platform;
use rexo_api::DeviceError;

/// Zeroed, page-aligned RAM whose physical address is its address (the identity map),
/// lent by the kernel's [`Platform`] and given back on drop. Descriptor rings and
/// completion entries are read and written with the volatile accessors (the device
/// changes them behind the compiler's back); data buffers the device is not using are
/// lent out as slices. A driver must drop a `Dma` only after the device stopped using it
/// (reset, or the request completed); memory of a device that would not confirm it
/// stopped goes through [`abandon_to_device`] first, and is then never given back.
pub struct Dma {
    /// The first byte.
    base: NonNull<u8>,
    /// Bytes.
    len: usize,
    /// Where it goes back.
    platform: &'static dyn Platform,
    /// Left to a device that may still use it ([`abandon_to_device`]): never given back.
    abandoned: bool,
}

// SAFETY: `Dma` owns its memory exclusively (the platform's contract); moving it to
// another core moves that ownership.
unsafe impl Send for Dma {}
// SAFETY: shared access is read-only (`&self` methods only read, volatile).
unsafe impl Sync for Dma {}

impl core::fmt::Debug for Dma {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Dma({:#x}, {} bytes)", self.phys(), self.len)
    }
}

impl Dma {
    /// `bytes` of zeroed DMA memory (whole 4 KiB pages) from `platform`;
    /// [`DeviceError::NoMemory`] when memory is short or `bytes` rounded up to pages
    /// does not fit in a `usize`.
    pub fn new(platform: &'static dyn Platform, bytes: usize) -> Result<Self, DeviceError> {
        let len = bytes.max(1).checked_next_multiple_of(4096);
        let len = len.ok_or(DeviceError::NoMemory)?;
        // SAFETY: the memory goes into the `Dma` made here, whose drop gives it back once
        // (or never, once abandoned).
        let phys = unsafe { platform.dma_allocate(len) }.ok_or(DeviceError::NoMemory)?;
        let base = NonNull::new(phys as *mut u8).ok_or(DeviceError::NoMemory)?;
        Ok(Self {
            base,
            len,
            platform,
            abandoned: false,
        })
    }

    /// Whether it was lent by `platform` (the same object).
    #[cfg(any(test, all(feature = "host", not(target_os = "none"))))]
    pub(crate) fn lent_by(&self, platform: &dyn Platform) -> bool {
        core::ptr::addr_eq(self.platform, platform)
    }

    /// The physical (and virtual) address of byte 0.
    pub fn phys(&self) -> u64 {
        self.base.as_ptr() as u64
    }

    /// Bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it has no bytes (never: allocations are whole pages).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The address for an access of `width` bytes at `offset`, checked.
    /// Values (`align` = `width`) must be aligned; byte slices (`align` 1) need not.
    fn at(&self, offset: usize, width: usize, align: usize) -> *mut u8 {
        assert!(
            offset.is_multiple_of(align)
                && offset.checked_add(width).is_some_and(|e| e <= self.len),
            "DMA access at {offset:#x} ({width} bytes) outside {} bytes",
            self.len
        );
        // SAFETY: inside the allocation (checked).
        unsafe { self.base.as_ptr().add(offset) }
    }

    /// Reads the 16-bit value at `offset` (volatile: the device may have written it).
    pub fn read16(&self, offset: usize) -> u16 {
        // SAFETY: in bounds and aligned (`at`); the memory is ours and plain RAM.
        unsafe { self.at(offset, 2, 2).cast::<u16>().read_volatile() }
    }

    /// Reads the 32-bit value at `offset` (volatile).
    pub fn read32(&self, offset: usize) -> u32 {
        // SAFETY: as for `read16`.
        unsafe { self.at(offset, 4, 4).cast::<u32>().read_volatile() }
    }

    /// Reads the 64-bit value at `offset` (volatile).
    pub fn read64(&self, offset: usize) -> u64 {
        // SAFETY: as for `read16`.
        unsafe { self.at(offset, 8, 8).cast::<u64>().read_volatile() }
    }

    /// Writes the 8-bit value at `offset` (volatile: the device will read it).
    pub fn write8(&mut self, offset: usize, value: u8) {
        // SAFETY: as for `read16`; `&mut self` excludes other Rust accesses.
        unsafe { self.at(offset, 1, 1).write_volatile(value) }
    }

    /// Writes the 16-bit value at `offset` (volatile).
    pub fn write16(&mut self, offset: usize, value: u16) {
        // SAFETY: as for `write8`.
        unsafe { self.at(offset, 2, 2).cast::<u16>().write_volatile(value) }
    }

    /// Writes the 32-bit value at `offset` (volatile).
    pub fn write32(&mut self, offset: usize, value: u32) {
        // SAFETY: as for `write8`.
        unsafe { self.at(offset, 4, 4).cast::<u32>().write_volatile(value) }
    }

    /// Writes the 64-bit value at `offset` (volatile).
    pub fn write64(&mut self, offset: usize, value: u64) {
        // SAFETY: as for `write8`.
        unsafe { self.at(offset, 8, 8).cast::<u64>().write_volatile(value) }
    }

    /// The bytes `[offset, offset + len)`, for data the device finished writing.
    ///
    /// The driver must ask only for bytes the device no longer writes (a completed
    /// request's buffer, a received frame it took back) while the slice lives: that
    /// rests on the driver's completion protocol, which this crate cannot check. A
    /// driver that lends bytes the device still owns hands out a `&[u8]` that changes
    /// under it (and the device may write any memory a descriptor names: there is no
    /// IOMMU). docs/drivers.md, "What rexo-devio guarantees".
    pub fn bytes(&self, offset: usize, len: usize) -> &[u8] {
        if len == 0 {
            return &[];
        }
        let start = self.at(offset, len, 1);
        // The slice's loads stay after the completion the driver saw (a volatile read
        // before this call): LLVM may hoist ordinary loads above volatile ones.
        core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
        // SAFETY: in bounds (`at`); the driver lends only buffers the device is done with,
        // so nothing writes them while the shared slice lives.
        unsafe { core::slice::from_raw_parts(start, len) }
    }

    /// The bytes `[offset, offset + len)`, for data to hand to the device.
    ///
    /// As for [`bytes`](Self::bytes): the driver must fill only bytes the device does
    /// not own at the time (not yet posted, or completed), which this crate cannot check.
    pub fn bytes_mut(&mut self, offset: usize, len: usize) -> &mut [u8] {
        if len == 0 {
            return &mut [];
        }
        let start = self.at(offset, len, 1);
        // As in `bytes`: the slice's accesses stay after what the driver saw complete.
        core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
        // SAFETY: in bounds (`at`); `&mut self` excludes other Rust accesses, and the
        // driver fills only buffers the device does not own at the time.
        unsafe { core::slice::from_raw_parts_mut(start, len) }
    }
}

impl Drop for Dma {
    fn drop(&mut self) {
        if !self.abandoned {
            // SAFETY: the memory came from this platform's `dma_allocate` with this size,
            // is given back only here, and this `Dma`, its one owner, is going; the device
            // is done with it (the type's contract, else it was abandoned).
            unsafe { self.platform.dma_free(self.phys(), self.len) };
        }
    }
}

/// Keeps `memory`, everything a device was given, out of the allocator for good: its
/// drop no longer gives it back. For a device that did not confirm it stopped (a stop or
/// reset that timed out, a status that never read back): such a device may still write
/// (or read) that memory at any time, and memory given back would be handed to another
/// driver, app or the kernel, across every protection boundary. Losing those pages until
/// the next boot is the smaller harm. `device` names the device in the log, which says
/// which memory was kept (a warning with the total, each block at info level).
pub fn abandon_to_device<'a>(
    device: &dyn core::fmt::Display,
    memory: impl IntoIterator<Item = &'a mut Dma>,
) {
    let (mut blocks, mut bytes) = (0, 0);
    for dma in memory {
        dma.abandoned = true;
        blocks += 1;
        bytes += dma.len;
        log::info!(
            "{device}: DMA memory {:#x}..{:#x} kept from the allocator",
            dma.phys(),
            dma.phys() + dma.len as u64
        );
    }
    log::warn!(
        "{device}: did not confirm it stopped: its {bytes} bytes of DMA memory ({blocks} \
         blocks) are never given back"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostPlatform;

    #[test]
    fn dma_memory_is_zeroed_whole_pages_given_back_on_drop() {
        let platform = HostPlatform::leaked();
        let mut dma = Dma::new(platform, 100).unwrap();
        assert_eq!(dma.len(), 4096);
        assert_eq!(dma.phys() % 4096, 0);
        assert!(dma.bytes(0, 4096).iter().all(|&b| b == 0));
        dma.write32(8, 0xA5A5_0001);
        dma.bytes_mut(100, 3).copy_from_slice(b"abc");
        assert_eq!(
            (dma.read32(8), dma.read16(8), dma.bytes(100, 3)),
            (0xA5A5_0001, 1, &b"abc"[..])
        );
        assert_eq!(platform.live(), 1);
        drop(dma);
        assert_eq!(platform.live(), 0);
    }

    #[test]
    fn memory_abandoned_to_a_device_is_never_given_back() {
        let platform = HostPlatform::leaked();
        let mut kept = [
            Dma::new(platform, 1).unwrap(),
            Dma::new(platform, 8192).unwrap(),
        ];
        let freed = Dma::new(platform, 1).unwrap();
        abandon_to_device(&"test device", &mut kept);
        drop((kept, freed));
        assert_eq!(platform.live(), 2, "the abandoned blocks stay allocated");
    }

    #[test]
    fn a_size_that_does_not_round_up_to_pages_is_refused() {
        let platform = HostPlatform::leaked();
        for bytes in [usize::MAX, usize::MAX - 4094] {
            assert!(matches!(
                Dma::new(platform, bytes),
                Err(DeviceError::NoMemory)
            ));
        }
        assert_eq!(platform.live(), 0);
    }

    #[test]
    #[should_panic(expected = "outside 4096 bytes")]
    fn an_access_past_the_end_is_refused() {
        let platform = HostPlatform::leaked();
        Dma::new(platform, 1).unwrap().read64(4096);
    }
}
