//! The HTTP/1.1 engine of httpd, built the way Cheetah was: pure logic, no networking.
//!
//! - [`parse`] reads one request from the front of a connection's receive buffer, which
//!   may hold part of a request or several pipelined ones. It never needs more than
//!   [`Limits::buffer_bound`] bytes: a head that does not end within the bound is
//!   answered `431` (`414` for a long request line) as soon as the bound is reached, so
//!   the caller never buffers a 100 KB header. [`parse_resumed`] (and
//!   [`Site::serve_resumed`]) keep a [`ParseProgress`] between a connection's reads, so
//!   a head arriving a byte at a time is searched and judged once, not again on every
//!   read.
//! - [`FileTable`] holds the static files. Each [`StaticFile`] carries, computed once at
//!   insertion, its `Content-Type`, a strong `ETag`, the whole `200` response head (one
//!   per connection disposition, so serving formats nothing), its bytes as a
//!   `rexo_tcp::Blob` holding the one's complement sum of each 64-byte block, from which
//!   [`StaticFile::segment_checksum`] and `rexo-tcp` give the TCP checksum contribution
//!   of any part of the body without reading whole blocks again.
//! - [`Site::serve`] turns buffered bytes into a [`Response`]: a head slice and a
//!   [`Body`] that, for files, names the file and a byte range of it instead of copying,
//!   so the TCP library OS can segment and retransmit straight from the file cache.
//!   Dynamic pages (the status page at `/`) come from a hook the app supplies, told
//!   whether the answer is a head alone (HEAD), for which it need not render the page
//!   ([`Page::Unrendered`]).
//! - [`linked_paths`] lists the local files a page links to, so that the host tool can
//!   place them next to it on disk (Cheetah's grouping).
//!
//! - [`DateField`] is the `Date` field (RFC 9110, 6.6.1) of one second's answers,
//!   formatted once per second from the wall clock (`Kernel::unix_time_s`) and shared by
//!   those answers ([`Response::dated`]): the prebuilt heads stay as built, the field
//!   line goes between their fields and their blank line as a piece of its own. On a
//!   machine without a wall clock the app sends no `Date`, as RFC 9110 requires of an
//!   origin server without a clock.
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod date;
mod files;
mod links;
mod parse;
mod response;

pub use date::DateField;
pub use files::{FileTable, StaticFile, content_type_for};
pub use links::linked_paths;
pub use parse::{
    Fields, Limits, Method, ParseProgress, Parsed, Request, Version, parse, parse_resumed,
};
pub use response::{Body, Page, Persistence, Response, Site, Status, Step};
/// The Internet checksum's one's complement sums (RFC 1071), the TCP library OS's:
/// `ones_complement_sum` of a payload (not complemented, 0 only for zero bytes) and
/// `add_sums` of two parts (exact when the second starts at an even offset; else swap
/// its bytes first).
pub use rexo_tcp::checksum::{add as add_sums, sum as ones_complement_sum};

#[cfg(test)]
mod tests;
