//! Packet filters in the manner of the MIT exokernel's DPF: an app binds to incoming
//! traffic with a declarative filter, a conjunction of *atoms* (`offset`, `width`, `mask`,
//! `value`: "the 2 bytes at 12, masked with 0xFFFF, equal 0x0800"). Because filters are
//! data, not code, the kernel can do what it could not with code:
//!
//! - check a new filter against the installed ones and refuse one that overlaps (some
//!   frame would match both), naming the owner it collides with ([`Filters::insert`]);
//! - merge them into one decision tree that reads each tested field once per level and
//!   picks the child by value, so demultiplexing costs about the depth of the tree, not
//!   the number of filters ([`Filters::classify`]).
//!
//! Filters are written in a small language ([`Filter::parse`]): atoms `OFFSET:WIDTH=VALUE`
//! or `OFFSET:WIDTH/MASK=VALUE` joined by `&`, and words for the common headers (`ipv4`,
//! `arp`, `udp`, `tcp`, `icmp`, `dport N`, `sport N`, `dst A.B.C.D`, `src A.B.C.D`).
#![cfg_attr(target_os = "none", no_std)]

extern crate alloc;

mod filter;
mod tree;

pub use filter::{Atom, Filter, ParseError};
pub use tree::{Filters, InsertError};
