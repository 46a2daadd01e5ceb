//! memcached's answers, byte for byte, written to any output.

use crate::cache::{Found, Key, Stats, decimal};
use alloc::vec::Vec;

/// The version `version` and `stats` report: memcached's protocol level, then this engine.
pub const VERSION: &str = "1.6.21-rexo";

/// Where answers go: a `Vec<u8>`, or a closure (wrapped in [`Sink`]) that copies each
/// piece straight into a transmit buffer.
pub trait Output {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);

    /// How many more bytes it takes: an output that drops an answer longer than this
    /// (kv's bounded one) says so, for a command that changes what it reports (`mg`'s
    /// win) to change nothing when its answer is dropped, and for a read (`get`, `gat`)
    /// to look up no key once its answer can no longer end. Unbounded by default.
    fn room(&self) -> usize {
        usize::MAX
    }
}

impl Output for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// An [`Output`] made of a closure.
pub struct Sink<F>(pub F);

impl<F: FnMut(&[u8])> Output for Sink<F> {
    fn put(&mut self, bytes: &[u8]) {
        (self.0)(bytes);
    }
}

/// The fixed answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `STORED`
    Stored,
    /// `NOT_STORED`
    NotStored,
    /// `EXISTS`
    Exists,
    /// `NOT_FOUND`
    NotFound,
    /// `DELETED`
    Deleted,
    /// `TOUCHED`
    Touched,
    /// `OK`
    Ok,
    /// `END`
    End,
    /// `RESET`
    Reset,
    /// `SERVER_ERROR object too large for cache`
    TooLarge,
    /// `SERVER_ERROR out of memory storing object`
    NoMemory,
    /// `CLIENT_ERROR cannot increment or decrement non-numeric value`
    NonNumeric,
    /// `CLIENT_ERROR bad data chunk`
    BadDataChunk,
}

impl Reply {
    /// The answer's line, with its `\r\n`.
    pub fn bytes(self) -> &'static [u8] {
        match self {
            Self::Stored => b"STORED\r\n",
            Self::NotStored => b"NOT_STORED\r\n",
            Self::Exists => b"EXISTS\r\n",
            Self::NotFound => b"NOT_FOUND\r\n",
            Self::Deleted => b"DELETED\r\n",
            Self::Touched => b"TOUCHED\r\n",
            Self::Ok => b"OK\r\n",
            Self::End => b"END\r\n",
            Self::Reset => b"RESET\r\n",
            Self::TooLarge => b"SERVER_ERROR object too large for cache\r\n",
            Self::NoMemory => b"SERVER_ERROR out of memory storing object\r\n",
            Self::NonNumeric => b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
            Self::BadDataChunk => b"CLIENT_ERROR bad data chunk\r\n",
        }
    }
}

/// What `stats` reports that the cache cannot know: the caller's process and connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerInfo {
    /// `pid`: the app's identifier.
    pub pid: u64,
    /// `threads`: cores serving requests.
    pub threads: u64,
    /// `curr_connections`: open connections.
    pub curr_connections: u64,
    /// `total_connections`: connections accepted since start.
    pub total_connections: u64,
}

/// `VALUE key flags bytes [cas]\r\n` + the value + `\r\n`: one hit of a read; the value is
/// copied once, from the item to the output.
pub fn write_value(out: &mut impl Output, key: Key<'_>, found: Found<'_>, with_cas: bool) {
    let mut digits = [0u8; 20];
    out.put(b"VALUE ");
    out.put(key.bytes());
    out.put(b" ");
    out.put(decimal(u64::from(found.flags), &mut digits));
    out.put(b" ");
    out.put(decimal(found.value.len() as u64, &mut digits));
    if with_cas {
        out.put(b" ");
        out.put(decimal(found.cas, &mut digits));
    }
    out.put(b"\r\n");
    out.put(found.value);
    out.put(b"\r\n");
}

/// A number and `\r\n`: the answer to `incr`/`decr`.
pub fn write_number(out: &mut impl Output, number: u64) {
    let mut digits = [0u8; 20];
    out.put(decimal(number, &mut digits));
    out.put(b"\r\n");
}

/// `VERSION x\r\n`.
pub fn write_version(out: &mut impl Output) {
    out.put(b"VERSION ");
    out.put(VERSION.as_bytes());
    out.put(b"\r\n");
}

/// The `STAT name value` lines of `stats`, in memcached's order, then `END`.
pub fn write_stats(out: &mut impl Output, stats: &Stats, info: &ServerInfo) {
    let numbers: [(&str, u64); 33] = [
        ("pid", info.pid),
        ("uptime", stats.uptime),
        ("time", stats.time),
        ("pointer_size", usize::BITS.into()),
        ("curr_connections", info.curr_connections),
        ("total_connections", info.total_connections),
        ("cmd_get", stats.cmd_get),
        ("cmd_set", stats.cmd_set),
        ("cmd_flush", stats.cmd_flush),
        ("cmd_touch", stats.cmd_touch),
        ("get_hits", stats.get_hits),
        ("get_misses", stats.get_misses),
        ("get_expired", stats.get_expired),
        ("delete_misses", stats.delete_misses),
        ("delete_hits", stats.delete_hits),
        ("incr_misses", stats.incr_misses),
        ("incr_hits", stats.incr_hits),
        ("decr_misses", stats.decr_misses),
        ("decr_hits", stats.decr_hits),
        ("cas_misses", stats.cas_misses),
        ("cas_hits", stats.cas_hits),
        ("cas_badval", stats.cas_badval),
        ("touch_hits", stats.touch_hits),
        ("touch_misses", stats.touch_misses),
        ("store_too_large", stats.store_too_large),
        ("store_no_memory", stats.store_no_memory),
        ("limit_maxbytes", stats.limit_maxbytes),
        ("threads", info.threads),
        ("bytes", stats.bytes),
        ("curr_items", stats.curr_items),
        ("total_items", stats.total_items),
        ("evictions", stats.evictions),
        ("reclaimed", stats.reclaimed),
    ];
    let mut digits = [0u8; 20];
    for (index, (name, value)) in numbers.iter().enumerate() {
        out.put(b"STAT ");
        out.put(name.as_bytes());
        out.put(b" ");
        out.put(decimal(*value, &mut digits));
        out.put(b"\r\n");
        // memcached reports the version fourth, after `time`.
        if index == 2 {
            out.put(b"STAT version ");
            out.put(VERSION.as_bytes());
            out.put(b"\r\n");
        }
    }
    out.put(Reply::End.bytes());
}
