//! The drivers' device access: the only crate under `drivers/` with `unsafe` (in [`mmio`],
//! [`port`], [`dma`], [`config`], [`line`](mod@line) and [`platform`], each block with its
//! `// SAFETY:` line). Drivers are `#![deny(unsafe_code)]` and reach hardware only through
//! the values made here:
//!
//! - [`Mmio`]: a device's memory window, built from the exclusive slice the kernel's
//!   claim hands out; volatile, bounds-checked register access.
//! - [`PortWindow`]: a device's I/O port range, built by trusted code from a BAR (or an
//!   IDE channel's fixed ports), claimed once: never the kernel's ports, nor another
//!   function's.
//! - [`Dma`]: zeroed RAM whose physical address is known (the identity map), for
//!   descriptor rings and data buffers, from the kernel's [`Platform`];
//!   [`abandon_to_device`] keeps the memory of a device that would not stop from ever
//!   going back.
//! - [`Platform`]: what the kernel lends a driver: DMA memory, device windows, the
//!   clock, the message that wakes a core, and configuration space of the function being
//!   bound. What hands out memory or reaches past the driver's own device is `unsafe`
//!   and called only from inside this crate; drivers use the clock and the wake-ups.
//! - [`MsixTable`]: a device's MSI-X vectors, pointed at cores' wake vectors;
//!   [`MsiVector`], the one MSI message of a device without MSI-X; [`Vectors`], either;
//!   [`QueueWakes`], one-shot wake-ups of a device's queues through their entries.
//! - [`LineWake`]: a legacy interrupt line (PCI INTx, an IDE channel's ISA IRQ) as the
//!   wake-up of a device without MSI; [`LineWaiters`], the kernel's half of it.
//! - `host` (tests, and the `host` feature off the kernel target): `HostPlatform`, a
//!   [`Platform`] of host heap pages and a clock the test moves, `registers`, a
//!   page-aligned register window of plain memory (its accesses recorded with the
//!   clock's time once a test asks: `record_accesses`), and `FakePorts`, a port window whose
//!   reads the test answers and whose writes it takes (in these builds every
//!   [`PortWindow`] access goes to the host's fake port space), for drivers' host tests.
//! - [`pairs`]: one queue pair of a network interface handed out on its own
//!   ([`QueuePair`], the frame path the drivers that split implement).
//! - [`drain_abandoned`]: the polling that drains a block device's abandoned requests.
//! - [`wait_until`]: the bounded wait for a device's register to say something, with a
//!   last look past the deadline ([`wait_for`] when it yields a value); [`pause`], a
//!   settling delay; [`Stall`], how long a device has held work without finishing any.
//!
//! `unsafe` lives here rather than in the kernel so that the kernel proper stays small
//! and drivers stay outside it (issue 4's budget); the crate depends on no kernel code.
#![cfg_attr(target_os = "none", no_std)]

extern crate alloc;

pub mod config;
pub mod dma;
#[cfg(any(test, all(feature = "host", not(target_os = "none"))))]
pub mod host;
pub mod line;
pub mod mmio;
pub mod msi;
pub mod msix;
pub mod pairs;
pub mod platform;
pub mod port;
pub mod wait;

pub use config::PciBus;
pub use dma::{Dma, abandon_to_device};
pub use line::{LineWaiters, LineWake, Routed};
pub use mmio::Mmio;
pub use msi::{MsiVector, Vectors};
pub use msix::{MsixTable, QueueWakes};
pub use pairs::QueuePair;
pub use platform::{DeviceFunction, Found, Platform};
pub use port::PortWindow;
pub use wait::{NS_PER_MS, Stall, pause, wait_for, wait_until, wait_until_or_fault};

/// The drain of a block device's [`abandon_requests`](rexo_api::BlockDevice::abandon_requests):
/// polls each of its `queues` in turn, completions dropped, while `draining` says the
/// device is still usable and holds an abandoned request.
pub fn drain_abandoned<D: rexo_api::BlockDevice>(
    device: &mut D,
    queues: usize,
    draining: impl Fn(&D) -> bool,
) {
    while draining(device) {
        for queue in 0..queues {
            // A poll's error does not stop the drain: time moves it on to a reset if the
            // device never answers.
            let _ = device.poll(queue, &mut |_, _| {});
        }
    }
}

/// Orders this core's memory accesses to DMA memory before a following doorbell write
/// (and the device's writes before the reads after it). x86 keeps stores in order, so
/// this is a compiler barrier plus `mfence` for write-combining mappings.
pub fn barrier() {
    core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
}
