//! The kernel's own symbol table, for symbolized crash backtraces.
//!
//! The kernel ELF reserves a zero-filled section [`SECTION`] of [`RESERVED_BYTES`]. After
//! linking, the host tool (`xtask`, with the `encode` feature) reads the ELF's function
//! symbols, demangles them and writes the output of `encode` into that section in place. At
//! a crash the kernel wraps the section's bytes in a [`SymbolTable`] and asks
//! [`SymbolTable::lookup`] for the function around each return address.
//!
//! # Format (version 1, all integers little-endian)
//!
//! ```text
//! offset  size  field
//!      0     4  magic  b"RXSY"
//!      4     4  version (1)
//!      8     8  base: the lowest function address
//!     16     4  count: number of records
//!     20     4  strings_len: bytes in the string area
//!     24     4  checksum: FNV-1a (32 bit) of the records and the string area
//!     28  12*count  records, sorted by address, never overlapping:
//!                     addr - base (u32), size (u32, > 0), name offset (u32)
//!      .  strings_len  string area: each name is one length byte, then that many
//!                      bytes of UTF-8; records may share a name
//! ```
//!
//! Bytes after the string area (the rest of the reserved section) are ignored.
//! [`SymbolTable::parse`] checks all of the above before any lookup runs.
#![cfg_attr(target_os = "none", no_std)]

#[cfg(feature = "encode")]
extern crate alloc;

#[cfg(feature = "encode")]
mod encode;
#[cfg(feature = "encode")]
pub use encode::{EncodeError, Symbol, encode};

use core::fmt;

/// The name of the ELF section that holds the table.
pub const SECTION: &str = ".rexo_symtab";
/// How many bytes the kernel reserves for the table.
pub const RESERVED_BYTES: usize = 192 * 1024;
/// The longest name kept, in bytes; longer names are cut at a char boundary.
pub const MAX_NAME_BYTES: usize = 200;

/// The first four bytes of a table.
const MAGIC: [u8; 4] = *b"RXSY";
/// The format version this crate writes and reads.
const VERSION: u32 = 1;
/// Bytes in the header.
const HEADER_LEN: usize = 28;
/// Bytes in one record.
const RECORD_LEN: usize = 12;

/// Why a table's bytes were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymtabError {
    /// The bytes are all zero: no table was ever written into the section.
    Empty,
    /// The bytes do not start with the table's magic.
    BadMagic,
    /// The table has a format version this crate does not read.
    UnsupportedVersion(u32),
    /// The header promises more bytes than there are.
    Truncated {
        /// Bytes the header says the table needs.
        needed: usize,
        /// Bytes given.
        available: usize,
    },
    /// The records and strings do not match the header's checksum.
    ChecksumMismatch,
    /// A record's name lies (partly) outside the string area.
    NameOutOfRange {
        /// Index of the record.
        index: usize,
    },
    /// A record's name is not valid UTF-8.
    NameNotUtf8 {
        /// Index of the record.
        index: usize,
    },
    /// A record has size zero.
    ZeroSize {
        /// Index of the record.
        index: usize,
    },
    /// A record's end address does not fit in 64 bits.
    AddressOverflow {
        /// Index of the record.
        index: usize,
    },
    /// A record starts before the end of the record before it.
    Unsorted {
        /// Index of the record.
        index: usize,
    },
}

impl fmt::Display for SymtabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Empty => write!(f, "symbol table is empty (section never written)"),
            Self::BadMagic => write!(f, "symbol table has a bad magic"),
            Self::UnsupportedVersion(v) => write!(f, "symbol table has unsupported version {v}"),
            Self::Truncated { needed, available } => write!(
                f,
                "symbol table truncated: needs {needed} bytes, {available} available"
            ),
            Self::ChecksumMismatch => write!(f, "symbol table checksum mismatch"),
            Self::NameOutOfRange { index } => {
                write!(f, "symbol {index}: name outside the string area")
            }
            Self::NameNotUtf8 { index } => write!(f, "symbol {index}: name is not UTF-8"),
            Self::ZeroSize { index } => write!(f, "symbol {index}: size is zero"),
            Self::AddressOverflow { index } => {
                write!(f, "symbol {index}: end address overflows")
            }
            Self::Unsorted { index } => {
                write!(
                    f,
                    "symbol {index}: not after the end of the symbol before it"
                )
            }
        }
    }
}

impl core::error::Error for SymtabError {}

/// FNV-1a, 32 bit: a cheap check that the payload was written whole.
fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, &b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Reads a little-endian `u32` at `at`, if the bytes are there.
fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Reads a little-endian `u64` at `at`, if the bytes are there.
fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

/// Why a record's name could not be read.
enum NameError {
    /// The name lies (partly) outside the string area.
    OutOfRange,
    /// The name is not UTF-8.
    NotUtf8,
}

/// One decoded record.
#[derive(Clone, Copy)]
struct Record {
    /// Absolute start address.
    start: u64,
    /// Size in bytes (> 0 in a validated table).
    size: u64,
    /// Offset of the name's length byte in the string area.
    name: usize,
}

/// A parsed, validated table over the section's bytes. Parsing and lookups never allocate.
#[derive(Clone, Copy)]
pub struct SymbolTable<'a> {
    /// The lowest function address.
    base: u64,
    /// The record array (`count * RECORD_LEN` bytes).
    records: &'a [u8],
    /// The string area.
    strings: &'a [u8],
}

impl fmt::Debug for SymbolTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The raw bytes would run to many kilobytes; the shape is what helps.
        f.debug_struct("SymbolTable")
            .field("base", &format_args!("{:#x}", self.base))
            .field("len", &self.len())
            .field("strings_len", &self.strings.len())
            .finish()
    }
}

impl<'a> SymbolTable<'a> {
    /// Parses and completely validates a table: header, checksum, every record's name
    /// (in range and UTF-8), sizes and order. Trailing bytes are ignored.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, SymtabError> {
        if bytes.iter().all(|&b| b == 0) {
            return Err(SymtabError::Empty);
        }
        if bytes.get(..4) != Some(&MAGIC[..]) {
            return Err(SymtabError::BadMagic);
        }
        let truncated = |needed| SymtabError::Truncated {
            needed,
            available: bytes.len(),
        };
        let header = bytes.get(..HEADER_LEN).ok_or(truncated(HEADER_LEN))?;
        // The header is in range, so these reads succeed; `unwrap_or` keeps it panic-free.
        let version = read_u32(header, 4).unwrap_or(0);
        if version != VERSION {
            return Err(SymtabError::UnsupportedVersion(version));
        }
        let base = read_u64(header, 8).unwrap_or(0);
        let count = read_u32(header, 16).unwrap_or(0) as usize;
        let strings_len = read_u32(header, 20).unwrap_or(0) as usize;
        let expected = read_u32(header, 24).unwrap_or(0);

        let records_len = count.checked_mul(RECORD_LEN).ok_or(truncated(usize::MAX))?;
        let total = HEADER_LEN
            .checked_add(records_len)
            .and_then(|n| n.checked_add(strings_len))
            .ok_or(truncated(usize::MAX))?;
        let payload = bytes.get(HEADER_LEN..total).ok_or(truncated(total))?;
        if checksum(payload) != expected {
            return Err(SymtabError::ChecksumMismatch);
        }
        let (records, strings) = payload.split_at(records_len);
        let table = Self {
            base,
            records,
            strings,
        };

        let mut previous_end = 0u64;
        for index in 0..count {
            // The record bytes are in range (`records_len` was cut from `payload`), so the
            // only failure left is a start address past 2^64.
            let r = table
                .record(index)
                .ok_or(SymtabError::AddressOverflow { index })?;
            table.name_at(r.name).map_err(|e| match e {
                NameError::NotUtf8 => SymtabError::NameNotUtf8 { index },
                NameError::OutOfRange => SymtabError::NameOutOfRange { index },
            })?;
            if r.size == 0 {
                return Err(SymtabError::ZeroSize { index });
            }
            let end = r
                .start
                .checked_add(r.size)
                .ok_or(SymtabError::AddressOverflow { index })?;
            if r.start < previous_end {
                return Err(SymtabError::Unsorted { index });
            }
            previous_end = end;
        }
        Ok(table)
    }

    /// The function that contains `addr`, and `addr`'s offset into it; `None` when `addr`
    /// lies outside every function.
    pub fn lookup(&self, addr: u64) -> Option<(&'a str, u64)> {
        // Records are sorted and disjoint: find the last one starting at or below `addr`.
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.record(mid)?.start <= addr {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let r = self.record(lo.checked_sub(1)?)?;
        let offset = addr - r.start;
        if offset >= r.size {
            return None;
        }
        Some((self.name_at(r.name).ok()?, offset))
    }

    /// The number of functions in the table.
    pub fn len(&self) -> usize {
        self.records.len() / RECORD_LEN
    }

    /// Whether the table names no function at all.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Decodes record `index`; `None` if it does not exist or its start address does
    /// not fit in 64 bits.
    fn record(&self, index: usize) -> Option<Record> {
        let at = index.checked_mul(RECORD_LEN)?;
        let delta = read_u32(self.records, at)?;
        let size = read_u32(self.records, at.checked_add(4)?)?;
        let name = read_u32(self.records, at.checked_add(8)?)?;
        Some(Record {
            start: self.base.checked_add(u64::from(delta))?,
            size: u64::from(size),
            name: name as usize,
        })
    }

    /// The name whose length byte is at `offset` in the string area.
    fn name_at(&self, offset: usize) -> Result<&'a str, NameError> {
        let strings: &'a [u8] = self.strings;
        let len = usize::from(*strings.get(offset).ok_or(NameError::OutOfRange)?);
        let start = offset.checked_add(1).ok_or(NameError::OutOfRange)?;
        let end = start.checked_add(len).ok_or(NameError::OutOfRange)?;
        let bytes = strings.get(start..end).ok_or(NameError::OutOfRange)?;
        core::str::from_utf8(bytes).map_err(|_| NameError::NotUtf8)
    }
}

#[cfg(test)]
mod tests;
