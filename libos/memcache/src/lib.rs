//! The memcached engine, as a library OS: the pieces a memcached-compatible server app
//! needs, without the network (the app feeds it the bytes its TCP and UDP sockets
//! receive and sends what it writes).
//!
//! - [`parse`]: the text protocol, one request at a time from a buffer that may hold
//!   part of a request or several pipelined ones, keys and data borrowed from it
//!   ([`parse_resumed`] searches each byte of a line arriving in many reads once), the
//!   meta commands (`mg`, `ms`, `md`, `ma`, `me`, `mn`) among them ([`meta`]);
//! - [`Cache`]: items with flags, expiry and cas uniques, `incr`/`decr`, `touch`,
//!   `flush_all`, LRU eviction within a byte budget, memcached's `stats` counters;
//! - [`reply`]: memcached's answers byte for byte, a hit's value copied once, from the
//!   item to the output;
//! - [`Session`]: a TCP connection's loop over the three (or its two steps, for an app
//!   that looks at each request before it runs: [`Session::next`] finds it,
//!   [`Session::run`] answers it); [`udp`]: the UDP frame header and the cutting of
//!   answers into datagrams.
//!
//! A [`Cache`] is single-threaded, used through `&mut self`: no locks, no atomics,
//! nothing shared. Several cores share [`Shards`]: caches by key hash, each behind its
//! own lock held for one command; the protocol runs on either through [`Store`]. Time
//! is passed in (Unix seconds), so the caller picks the clock.
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod cache;
pub mod meta;
mod parse;
pub mod reply;
mod session;
mod store;
mod table;
pub mod udp;

pub use cache::{
    Cache, Config, DeleteOutcome, DeltaOutcome, Expiry, Found, ITEM_OVERHEAD, Inspection, Key,
    MAX_KEY, MetaDelete, MetaDelta, MetaDeltaOutcome, MetaGet, MetaHit, MetaStore, MetaStored,
    RELATIVE_EXPTIME_MAX, Retime, Stats, StoreMode, StoreOutcome,
};
pub use parse::{
    BINARY_REQUEST_MAGIC, Command, Keys, MAX_LINE, MIN_MULTIGET_LINE, Parsed, ProtocolError,
    StatsGroup, max_request_len, parse, parse_resumed,
};
pub use reply::{Output, Reply, ServerInfo, Sink};
pub use session::{Next, Served, Session};
pub use store::{Shards, Store};

#[cfg(test)]
mod shard_tests;
#[cfg(test)]
mod tests;
