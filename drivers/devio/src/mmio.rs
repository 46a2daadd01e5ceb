//! Memory-mapped device registers.
#![allow(unsafe_code)] // volatile access to device memory

use core::ptr::NonNull;

/// A window of device memory (a BAR or part of one), identity-mapped and uncached.
/// Every access is volatile and bounds-checked; an access outside the window or
/// misaligned (its address, wherever the window starts) is a driver bug and panics
/// with the offset: drivers check device-given offsets before making windows of them.
/// Copies of a window alias the same registers, which is sound: registers are not Rust
/// objects, and no reference to them is ever made. Windows are made only inside this
/// crate, over device memory the kernel's claim handed out (and, in host tests, over
/// plain memory standing for a device): a window over RAM would let safe code race on
/// it from two cores, so a driver cannot make one of a slice:
///
/// ```compile_fail,E0624
/// let ram: &'static mut [u8] = Box::leak(Box::new([0u8; 64]));
/// let _ = rexo_devio::Mmio::new(ram);
/// ```
#[derive(Clone, Debug)]
pub struct Mmio {
    /// The first register.
    base: NonNull<u8>,
    /// Bytes in the window.
    len: usize,
}

// SAFETY: the window is device memory (`new`'s contract) reached only through volatile
// accesses; the device serialises them itself, so sharing between cores is no data race
// in Rust's sense.
unsafe impl Send for Mmio {}
// SAFETY: as for `Send`.
unsafe impl Sync for Mmio {}

impl Mmio {
    /// The window over `device`, the exclusive slice the kernel's device claim returned
    /// (so nothing else in the machine holds a Rust reference to it). Crate-internal:
    /// the slice must be device memory, not RAM, for copies of the window to be shared
    /// between cores (host tests' plain memory stands for a device's, used by one test).
    pub(crate) fn new(device: &'static mut [u8]) -> Self {
        Self {
            len: device.len(),
            base: NonNull::from(device).cast(),
        }
    }

    /// Bytes in the window.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the window has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The physical address of the window (identity map).
    pub fn phys(&self) -> u64 {
        self.base.as_ptr() as u64
    }

    /// The part `[offset, offset + len)` of the window, or `None` when it does not fit.
    pub fn window(&self, offset: usize, len: usize) -> Option<Mmio> {
        let end = offset.checked_add(len)?;
        (end <= self.len).then(|| Mmio {
            // SAFETY: `offset <= self.len`, so the pointer stays inside (or one past) the window.
            base: unsafe { self.base.add(offset) },
            len,
        })
    }

    /// The register address for an access of `width` bytes at `offset`: inside the
    /// window and aligned in memory (a window may start at any device-given offset, so
    /// the address, not the offset, is checked). Every register access is also a compiler
    /// barrier: LLVM may move ordinary loads and stores across volatile ones, so without
    /// it the stores filling a buffer could sink below the doorbell write that hands the
    /// buffer over, whether or not the driver called [`crate::barrier`]. `written` is the
    /// value of a write (`None` for a read), for host tests that record accesses
    /// (`host::record_accesses`).
    fn at(&self, offset: usize, width: usize, written: Option<u64>) -> *mut u8 {
        core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
        assert!(
            // Inside the window first: then the address cannot overflow (the window
            // itself fits in the address space).
            offset.checked_add(width).is_some_and(|e| e <= self.len)
                && (self.phys() + offset as u64).is_multiple_of(width as u64),
            "register {offset:#x} ({width} bytes) misaligned or outside the {:#x}-byte window at {:#x}",
            self.len,
            self.phys()
        );
        #[cfg(any(test, all(feature = "host", not(target_os = "none"))))]
        crate::host::note_access(self.phys() + offset as u64, written);
        #[cfg(not(any(test, all(feature = "host", not(target_os = "none")))))]
        let _ = written;
        // SAFETY: checked above: the access lies inside the window.
        unsafe { self.base.as_ptr().add(offset) }
    }

    /// Reads the 8-bit register at `offset`.
    pub fn read8(&self, offset: usize) -> u8 {
        // SAFETY: `at` checked the register lies in this device window (mapped, uncached).
        unsafe { self.at(offset, 1, None).read_volatile() }
    }

    /// Reads the 16-bit register at `offset`.
    pub fn read16(&self, offset: usize) -> u16 {
        // SAFETY: as for `read8`; `at` checked the alignment.
        unsafe { self.at(offset, 2, None).cast::<u16>().read_volatile() }
    }

    /// Reads the 32-bit register at `offset`.
    pub fn read32(&self, offset: usize) -> u32 {
        // SAFETY: as for `read16`.
        unsafe { self.at(offset, 4, None).cast::<u32>().read_volatile() }
    }

    /// Reads the 64-bit register at `offset`.
    pub fn read64(&self, offset: usize) -> u64 {
        // SAFETY: as for `read16`.
        unsafe { self.at(offset, 8, None).cast::<u64>().read_volatile() }
    }

    /// Writes the 8-bit register at `offset`.
    pub fn write8(&self, offset: usize, value: u8) {
        // SAFETY: as for `read8`; device registers are not Rust objects.
        unsafe { self.at(offset, 1, Some(value.into())).write_volatile(value) }
    }

    /// Writes the 16-bit register at `offset`.
    pub fn write16(&self, offset: usize, value: u16) {
        // SAFETY: as for `write8`, aligned.
        unsafe {
            self.at(offset, 2, Some(value.into()))
                .cast::<u16>()
                .write_volatile(value)
        }
    }

    /// Writes the 32-bit register at `offset`.
    pub fn write32(&self, offset: usize, value: u32) {
        // SAFETY: as for `write16`.
        unsafe {
            self.at(offset, 4, Some(value.into()))
                .cast::<u32>()
                .write_volatile(value)
        }
    }

    /// Writes the 64-bit register at `offset`.
    pub fn write64(&self, offset: usize, value: u64) {
        // SAFETY: as for `write16`.
        unsafe {
            self.at(offset, 8, Some(value))
                .cast::<u64>()
                .write_volatile(value)
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::host::registers as window;

    #[test]
    fn registers_read_back_what_was_written() {
        let regs = window(64);
        regs.write32(8, 0xDEAD_BEEF);
        regs.write16(16, 0x1234);
        regs.write64(24, u64::MAX - 1);
        assert_eq!(
            (regs.read32(8), regs.read16(16), regs.read64(24)),
            (0xDEAD_BEEF, 0x1234, u64::MAX - 1)
        );
        assert_eq!(regs.read8(8), 0xEF, "little-endian");
    }

    #[test]
    fn sub_windows_are_offsets_into_the_same_registers() {
        let regs = window(64);
        let part = regs.window(32, 16).unwrap();
        part.write32(4, 7);
        assert_eq!(regs.read32(36), 7);
        assert_eq!(part.phys(), regs.phys() + 32);
        assert!(regs.window(60, 8).is_none(), "past the end");
        assert!(regs.window(usize::MAX, 2).is_none(), "overflowing");
    }

    #[test]
    #[should_panic(expected = "outside the 0x40-byte window")]
    fn an_access_past_the_window_is_refused() {
        window(64).read32(64);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn a_misaligned_access_is_refused() {
        window(64).read32(2);
    }

    #[test]
    #[should_panic(expected = "misaligned")]
    fn an_access_aligned_in_a_misaligned_window_is_refused_too() {
        // A window at a device-given offset (a virtio capability's, say) of 2: its
        // register 0 is at an odd address for a 32-bit access.
        window(64).window(2, 16).unwrap().read32(0);
    }
}
