//! virtio-net and virtio-blk over the modern (virtio 1.x PCI capabilities) and legacy/transitional (I/O BAR) transports, split virtqueues.
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod blk;
pub mod net;
pub mod queue;
mod recovery;
pub mod transport;
