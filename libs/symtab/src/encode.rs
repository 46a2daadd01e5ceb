//! Host side: building a table from the kernel ELF's function symbols.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Reverse;
use core::fmt;

use crate::{HEADER_LEN, MAGIC, MAX_NAME_BYTES, RECORD_LEN, VERSION, checksum};

/// A function symbol (host side, encoding input).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    /// Start address.
    pub addr: u64,
    /// Size in bytes; 0 if the ELF does not say (e.g. an assembly label).
    pub size: u64,
    /// The (demangled) name.
    pub name: String,
}

/// Why [`encode`] could not build a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The table would not fit.
    TooLarge {
        /// Bytes the table needs.
        needed: usize,
        /// Bytes allowed (the caller's limit, capped at 4 GiB by the format).
        limit: usize,
    },
    /// A symbol lies more than 4 GiB above the lowest one.
    SpanTooWide {
        /// The lowest symbol address.
        base: u64,
        /// The address too far above it.
        addr: u64,
    },
    /// A symbol states a size of 4 GiB or more.
    SymbolTooLarge {
        /// The symbol's name.
        name: String,
        /// Its stated size.
        size: u64,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { needed, limit } => write!(
                f,
                "symbol table needs {needed} bytes but only {limit} are reserved"
            ),
            Self::SpanTooWide { base, addr } => write!(
                f,
                "symbol at {addr:#x} is more than 4 GiB above the lowest one at {base:#x}"
            ),
            Self::SymbolTooLarge { name, size } => {
                write!(f, "symbol {name} has an impossible size of {size} bytes")
            }
        }
    }
}

impl core::error::Error for EncodeError {}

/// `name` cut to at most [`MAX_NAME_BYTES`] bytes, at a char boundary.
fn cut_name(name: &str) -> &str {
    let mut end = name.len().min(MAX_NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// Encodes symbols into the table format, ready to be written at the start of the
/// [`SECTION`](crate::SECTION).
///
/// The input needs no order. Symbols are sorted by address and made disjoint:
/// - of several symbols at one address (aliases), the largest is kept (ties: the
///   alphabetically first name);
/// - a symbol that runs into the next one is cut where the next one starts;
/// - a zero-size symbol extends to the next symbol's start; a zero-size symbol with no
///   symbol after it is dropped, as are symbols with an empty name.
///
/// Names longer than [`MAX_NAME_BYTES`] are cut at a char boundary; equal names are stored
/// once. Fails if the table would exceed `limit` bytes, naming the bytes needed.
pub fn encode(symbols: &[Symbol], limit: usize) -> Result<Vec<u8>, EncodeError> {
    let mut sorted: Vec<&Symbol> = symbols.iter().filter(|s| !s.name.is_empty()).collect();
    sorted.sort_by_key(|s| (s.addr, Reverse(s.size), cut_name(&s.name)));
    sorted.dedup_by_key(|s| s.addr);

    // (addr, size, name) with sizes resolved so that no two overlap.
    let mut entries: Vec<(u64, u32, &str)> = Vec::with_capacity(sorted.len());
    for (i, s) in sorted.iter().enumerate() {
        let next = sorted.get(i + 1).map(|n| n.addr);
        // Room up to the next symbol, or to the end of the address space.
        let room = next.unwrap_or(u64::MAX) - s.addr;
        let size = match (s.size, next) {
            (0, None) => continue,
            (0, Some(_)) => u32::try_from(room).unwrap_or(u32::MAX),
            (stated, _) => {
                u32::try_from(stated.min(room)).map_err(|_| EncodeError::SymbolTooLarge {
                    name: s.name.clone(),
                    size: stated,
                })?
            }
        };
        if size > 0 {
            entries.push((s.addr, size, cut_name(&s.name)));
        }
    }

    let base = entries.first().map_or(0, |e| e.0);
    let mut records = Vec::with_capacity(entries.len() * RECORD_LEN);
    let mut strings = Vec::new();
    let mut offsets: BTreeMap<&str, usize> = BTreeMap::new();
    for &(addr, size, name) in &entries {
        let delta =
            u32::try_from(addr - base).map_err(|_| EncodeError::SpanTooWide { base, addr })?;
        let offset = *offsets.entry(name).or_insert_with(|| {
            let at = strings.len();
            // `cut_name` keeps names at most 200 bytes, so the length fits one byte.
            strings.push(name.len() as u8);
            strings.extend_from_slice(name.as_bytes());
            at
        });
        records.extend_from_slice(&delta.to_le_bytes());
        records.extend_from_slice(&size.to_le_bytes());
        // Offsets past 4 GiB are caught by the size check below; truncation here cannot
        // reach the output.
        records.extend_from_slice(&(offset as u32).to_le_bytes());
    }

    let needed = HEADER_LEN + records.len() + strings.len();
    let limit = limit.min(u32::MAX as usize);
    if needed > limit {
        return Err(EncodeError::TooLarge { needed, limit });
    }
    let mut out = Vec::with_capacity(needed);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&base.to_le_bytes());
    // Both fit: the whole table is at most `u32::MAX` bytes.
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
    let payload_start = out.len() + 4;
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&records);
    out.extend_from_slice(&strings);
    let sum = checksum(&out[payload_start..]);
    out[payload_start - 4..payload_start].copy_from_slice(&sum.to_le_bytes());
    Ok(out)
}
