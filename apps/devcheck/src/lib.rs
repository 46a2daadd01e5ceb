//! The driver tests' apps, written only against `rexo-api`, so they check every driver
//! the same way:
//!
//! - `netcheck`: on every network interface, sends [`pattern::FRAMES`] frames of 60 to
//!   1514 bytes to the test's peer, checks that a frame too long and one too short are
//!   refused, then echoes the peer's [`pattern::FRAMES`] frames back, checking each
//!   byte-exact on the way in.
//! - `diskcheck`: on every disk, writes [`pattern::sector`] over every sector with several
//!   requests in flight (spread over the disk's queues), reads it all back and compares,
//!   checks that a read past the end is refused, and flushes.
//! - `netqueues` ([`queues`]): on every interface with several queue pairs, sends on
//!   every transmit queue and takes the host's flows from every receive queue,
//!   byte-exact; a queue past the last is refused.
//!
//! - `netbench` and `diskbench` ([`mod@bench`]): the figures of `cargo xtask bench drivers`.
//! - `noise` ([`mod@noise`]): OS noise on every core and the memory in use, for the
//!   benchmark suite (`cargo xtask bench`).
//!
//! Each prints one line per step; the test harness (`cargo xtask test drivers::`) checks
//! the lines, runs the network peer and checks the disk images afterwards with the same
//! [`pattern`] functions.
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod bench;
pub mod disk;
pub mod net;
pub mod noise;
pub mod pattern;
pub mod queues;

pub use bench::{diskbench, netbench};
pub use disk::main as diskcheck;
pub use net::main as netcheck;
pub use noise::main as noise;
pub use queues::main as netqueues;
