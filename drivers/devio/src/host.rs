//! The host tests' kernel: DMA pages from the host heap (counted), no devices, a clock
//! the test moves, and a machine of [`HostPlatform::CORES`] cores whose wake messages
//! are the kernel's form; [`registers`], plain memory standing for a device's
//! registers when a test plays the device; and [`completions`], one poll of a disk.
#![allow(unsafe_code)] // a `Platform` promises what its memory is; register windows are raw allocations

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rexo_api::{BlockDevice, DeviceError, Tag};

use crate::{Mmio, Platform};

/// Zeroed host memory of `len` bytes as a device's register window (a test plays the
/// device), 4 KiB-aligned as a BAR is, so that a register aligned in the window is
/// aligned in memory; it lives for the rest of the test run.
pub fn registers(len: usize) -> Mmio {
    let base = zeroed_pages(len).expect("a register window's size fits a layout");
    // SAFETY: `base` is a fresh zeroed allocation of at least `len` bytes, never freed,
    // and this slice is the only reference made to it.
    Mmio::new(unsafe { core::slice::from_raw_parts_mut(base, len) })
}

/// A fresh zeroed allocation from the host heap of `len` bytes (at least one),
/// 4096-aligned, or `None` when no layout is that large; running out of memory ends
/// the test run as any allocation's failure does.
fn zeroed_pages(len: usize) -> Option<*mut u8> {
    let layout = std::alloc::Layout::from_size_align(len.max(1), 4096).ok()?;
    // SAFETY: the layout has a non-zero size.
    let base = unsafe { std::alloc::alloc_zeroed(layout) };
    if base.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    Some(base)
}

/// Polls queue `queue` of `disk` once: the requests it finished, as (tag, data or
/// error), checked to be as many as the poll says it handed out.
pub fn completions(
    disk: &mut dyn BlockDevice,
    queue: usize,
) -> Vec<(Tag, Result<Vec<u8>, DeviceError>)> {
    let mut seen = Vec::new();
    let count = disk
        .poll(queue, &mut |tag, result| {
            seen.push((tag, result.map(<[u8]>::to_vec)))
        })
        .expect("the poll succeeds");
    assert_eq!(count, seen.len(), "a poll returns how many it handed out");
    seen
}

/// Pages from the host heap, counted, and a clock that moves
/// [`CLOCK_TICK_NS`](Self::CLOCK_TICK_NS) on at each reading and as far as
/// [`advance_clock`](Self::advance_clock) says.
pub struct HostPlatform {
    /// DMA allocations not given back.
    live: Mutex<usize>,
    /// The lines armed, as (IRQ, core).
    armed: Mutex<alloc::vec::Vec<(u8, usize)>>,
    /// The clock's next reading, in nanoseconds.
    clock_ns: AtomicU64,
}

impl HostPlatform {
    /// Cores the host machine pretends to have.
    pub const CORES: usize = 2;
    /// The wake vector in its messages.
    pub const WAKE_VECTOR: u32 = 0x41;
    /// How far the clock moves at each reading: a bounded wait or a settling pause ends
    /// after a bounded number of readings, as on a machine whose time passes.
    pub const CLOCK_TICK_NS: u64 = 1_000;

    /// A platform for one test, living as long as the test's `Dma` and tables.
    pub fn leaked() -> &'static Self {
        Box::leak(Box::new(Self {
            live: Mutex::new(0),
            armed: Mutex::new(alloc::vec::Vec::new()),
            clock_ns: AtomicU64::new(0),
        }))
    }

    /// Moves the clock `ns` nanoseconds on (a test's way to let a deadline pass).
    pub fn advance_clock(&self, ns: u64) {
        self.clock_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// DMA allocations not given back.
    pub fn live(&self) -> usize {
        *self.live.lock().unwrap()
    }

    /// The lines armed so far, as (IRQ, core).
    pub fn armed(&self) -> alloc::vec::Vec<(u8, usize)> {
        self.armed.lock().unwrap().clone()
    }
}

// SAFETY: on the host the "physical" address is the heap address; each allocation is
// fresh, zeroed and page-aligned, used only by the `Dma` that owns it.
unsafe impl Platform for HostPlatform {
    fn dma_allocate(&self, bytes: usize) -> Option<u64> {
        let base = zeroed_pages(bytes)?;
        *self.live.lock().unwrap() += 1;
        Some(base as u64)
    }
    fn dma_free(&self, phys: u64, bytes: usize) {
        *self.live.lock().unwrap() -= 1;
        let layout = std::alloc::Layout::from_size_align(bytes, 4096).unwrap();
        // SAFETY: allocated by `zeroed_pages` with the same layout (`bytes` is whole
        // pages, never 0).
        unsafe { std::alloc::dealloc(phys as *mut u8, layout) };
    }
    fn claim_mmio(&self, _: u64, _: u64) -> Result<&'static mut [u8], String> {
        Err(String::from("no devices on the host"))
    }
    /// Starts at 0 and moves [`Self::CLOCK_TICK_NS`] on at each reading, and as far as
    /// [`Self::advance_clock`] says.
    fn now_ns(&self) -> u64 {
        self.clock_ns
            .fetch_add(Self::CLOCK_TICK_NS, Ordering::Relaxed)
    }
    /// Core `core`'s local APIC is `core`, as the kernel names it in a message.
    fn wake_message(&self, core: usize) -> Option<(u64, u32)> {
        (core < Self::CORES).then_some((0xFEE0_0000 | (core as u64) << 12, Self::WAKE_VECTOR))
    }
    /// QEMU's MADT: IRQs 5, 9, 10 and 11 level-triggered, the others edge.
    fn line_level(&self, irq: u8) -> Result<bool, &'static str> {
        (irq < 16)
            .then_some(matches!(irq, 5 | 9 | 10 | 11))
            .ok_or("an IO-APIC serving the line")
    }
    fn wake_on_line(&self, irq: u8, core: usize) -> Result<(), &'static str> {
        if core >= Self::CORES {
            return Err("a route to that core");
        }
        self.armed.lock().unwrap().push((irq, core));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_windows_start_on_a_page() {
        for len in [0, 1, 4, 0x80, 0x2000] {
            let window = registers(len);
            assert_eq!((window.phys() % 4096, window.len()), (0, len));
        }
    }
}
