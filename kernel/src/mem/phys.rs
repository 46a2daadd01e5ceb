//! The identity-mapped view of physical memory: read-only windows for the boot and ACPI
//! parsers, and exclusive mutable windows over device memory (the framebuffer).

#![allow(unsafe_code)] // turning physical addresses into slices

use crate::arch::paging;
use core::sync::atomic::Ordering;

use crate::arch::idt::{FIRST_LINE_VECTOR, VECTOR_WAKE};
use alloc::string::String;
use rexo_memmap::{MemoryMap, NotDevice};
use spin::Mutex;

/// The vector each core last routed a device's interrupt source to, for the device
/// registry's interrupt bindings (`devices::Binder`).
pub static ROUTED: rexo_devio::Routed = rexo_devio::Routed::new();

/// Physical memory as the boot-time parsers see it (identity map, read-only).
pub struct IdentityMemory;

const PAGE: u64 = 4096;

impl rexo_physmem::PhysMemory for IdentityMemory {
    fn read(&self, phys: u64, len: usize) -> Option<&[u8]> {
        let end = phys.checked_add(len as u64)?;
        let limit = paging::mapped_top(); // the boot tables' 4 GiB until the kernel's are used
        // Page 0 is unmapped once the kernel's tables are in use.
        let low = if paging::installed() { PAGE } else { 0 };
        if phys < low || end > limit {
            return None;
        }
        // SAFETY: the range is inside the identity map (checked above); the boot loader's
        // structures and ACPI tables it is used for are reserved from the frame allocator,
        // so nothing writes them while the returned shared slice lives.
        Some(unsafe { core::slice::from_raw_parts(phys as *const u8, len) })
    }
}

/// Device windows handed out so far: each at most once, so the `&mut` slices never alias.
static CLAIMED: Mutex<[(u64, u64); 64]> = Mutex::new([(0, 0); 64]);

/// Why a device window cannot be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimError {
    /// It overlaps a window claimed before.
    AlreadyClaimed,
    /// It overlaps RAM (of any kind).
    IsRam,
    /// It cannot be mapped (it starts in page 0, wraps, ends past the CPU's physical
    /// address width or the identity map's 2^47, or its page tables find no memory).
    Unmappable,
    /// Too many windows are claimed.
    TableFull,
}

/// Claims the device memory `[phys, phys + len)` (uncached, identity) for exclusive use
/// and returns it as a byte slice. A window is handed out once for the life of the
/// machine; RAM of any kind (ACPI tables and NVS too) cannot be claimed this way
/// ([`MemoryMap::device_range`]).
pub fn claim_device(phys: u64, len: u64, ram: &MemoryMap) -> Result<&'static mut [u8], ClaimError> {
    let end = match ram.device_range(phys, len, u64::MAX) {
        Ok(range) => range.end,
        Err(NotDevice::Ram) => return Err(ClaimError::IsRam),
        Err(NotDevice::OutOfReach) => return Err(ClaimError::Unmappable),
    };
    let mut claimed = CLAIMED.lock();
    if claimed.iter().any(|&(s, e)| s < end && phys < e) {
        return Err(ClaimError::AlreadyClaimed);
    }
    let slot = claimed
        .iter_mut()
        .find(|(s, e)| s == e)
        .ok_or(ClaimError::TableFull)?;
    if end > paging::mapped_top() {
        paging::map_device(phys, len).map_err(|_| ClaimError::Unmappable)?;
    }
    *slot = (phys, end);
    // SAFETY: the range is mapped (identity), is not RAM that Rust objects live in, and is
    // recorded as claimed, so no other slice over it is ever created.
    Ok(unsafe { core::slice::from_raw_parts_mut(phys as *mut u8, len as usize) })
}

/// Why a device register cannot be accessed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioError {
    /// The address is RAM, not a device register (or no memory map says it is not yet).
    IsRam(u64),
    /// The address is not in the identity map, or not 8-byte aligned.
    BadAddress(u64),
}

fn check_register(addr: u64, width: u64) -> Result<(), MmioError> {
    if !addr.is_multiple_of(width) {
        return Err(MmioError::BadAddress(addr));
    }
    let limit = paging::mapped_top();
    // No map yet: nothing can be told apart from RAM.
    let map = super::memory_map().ok_or(MmioError::IsRam(addr))?;
    match map.device_range(addr, width, limit) {
        Ok(_) => Ok(()),
        Err(NotDevice::Ram) => Err(MmioError::IsRam(addr)),
        Err(NotDevice::OutOfReach) => Err(MmioError::BadAddress(addr)),
    }
}

/// Reads a 64-bit device register (outside RAM, inside the identity map).
pub fn mmio_read64(addr: u64) -> Result<u64, MmioError> {
    check_register(addr, 8)?;
    // SAFETY: `addr` is an aligned, mapped address outside RAM (checked): a device register.
    Ok(unsafe { core::ptr::read_volatile(addr as *const u64) })
}

/// Writes a 64-bit device register (outside RAM, inside the identity map).
pub fn mmio_write64(addr: u64, value: u64) -> Result<(), MmioError> {
    check_register(addr, 8)?;
    // SAFETY: as in `mmio_read64`; device registers are not Rust objects.
    unsafe { core::ptr::write_volatile(addr as *mut u64, value) };
    Ok(())
}

/// Writes an 8-bit device register (outside RAM, inside the identity map).
pub fn mmio_write8(addr: u64, value: u8) -> Result<(), MmioError> {
    check_register(addr, 1)?;
    // SAFETY: as in `mmio_read64`, for a one-byte register.
    unsafe { core::ptr::write_volatile(addr as *mut u8, value) };
    Ok(())
}

/// The kernel image in physical memory (from the linker script).
pub fn kernel_image() -> core::ops::Range<u64> {
    unsafe extern "C" {
        static __kernel_start: u8;
        static __kernel_end: u8;
    }
    (&raw const __kernel_start) as u64..(&raw const __kernel_end) as u64
}

/// The kernel's services to drivers (`rexo-devio`): DMA memory from the frame allocator,
/// device windows through [`claim_device`], the clock.
pub struct DriverPlatform {
    /// The frames lent as DMA memory, by address, until given back.
    lent: Mutex<alloc::collections::BTreeMap<u64, rexo_memmap::FrameRange>>,
}

/// The one [`DriverPlatform`].
pub static DRIVER_PLATFORM: DriverPlatform = DriverPlatform {
    lent: Mutex::new(alloc::collections::BTreeMap::new()),
};

// SAFETY: DMA memory is whole frames from the allocator (RAM in the identity map, owned
// here until freed, zeroed below); device windows come from `claim_device`, which maps
// them uncached and hands each out once.
unsafe impl rexo_devio::Platform for DriverPlatform {
    unsafe fn dma_allocate(&self, bytes: usize) -> Option<u64> {
        let frames = super::frames::allocate(bytes as u64, 4096).ok()?;
        let start = frames.start();
        // SAFETY: the frames are ours (just allocated) and identity-mapped RAM.
        unsafe { core::ptr::write_bytes(start as *mut u8, 0, frames.len() as usize) };
        self.lent.lock().insert(start, frames);
        Some(start)
    }

    unsafe fn dma_free(&self, phys: u64, _bytes: usize) {
        if let Some(frames) = self.lent.lock().remove(&phys) {
            super::frames::free(frames);
        }
    }

    unsafe fn claim_mmio(&self, phys: u64, len: u64) -> Result<&'static mut [u8], String> {
        let ram = super::memory_map().ok_or_else(|| String::from("no memory map yet"))?;
        claim_device(phys, len, ram).map_err(|error| alloc::format!("{error:?}"))
    }

    fn now_ns(&self) -> u64 {
        crate::time::now_ns()
    }

    fn wake_message(&self, core: usize) -> Option<(u64, u32)> {
        ROUTED.record(crate::arch::percpu::core_index(), VECTOR_WAKE);
        let core = (core < crate::smp_cores()).then(|| crate::arch::percpu::core(core))?;
        let apic = rexo_acpi::interrupt_destination(core.apic_id.load(Ordering::Relaxed)).ok()?;
        Some((0xFEE0_0000 | u64::from(apic) << 12, u32::from(VECTOR_WAKE)))
    }

    fn wake_core(&self, core: usize) {
        if core < crate::smp_cores() {
            rexo_workqueue::Waker::wake(&crate::sched::IpiWaker, core);
        }
    }

    fn line_level(&self, irq: u8) -> Result<bool, &'static str> {
        crate::platform::isa_route(irq).map(|(route, _)| route.level)
    }

    unsafe fn wake_on_line(&self, irq: u8, core: usize) -> Result<(), &'static str> {
        ROUTED.record(crate::arch::percpu::core_index(), FIRST_LINE_VECTOR + irq);
        crate::platform::arm_line(irq, core)
    }
}
