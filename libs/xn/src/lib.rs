//! Protected disk blocks, after the MIT exokernel's XN: each disk carries a table of
//! extents (runs of sectors) and who holds them; the kernel's block layer checks every
//! request against it, so a library file system owns its blocks and no app can read or
//! write another's. The table is the disk's, persistent: a format step writes it, and
//! the extents survive reboots.
//!
//! On disk the table is kept twice at the end of the disk (so that block 0 stays free
//! for a boot sector or another format such as BMFS): two copies of [`COPY_BYTES`]
//! (each in whole sectors), A then B. A copy is a 32-byte header (the magic `RexoXN03`,
//! the entry count, a CRC-32 of the header and the entries, the disk's sector count, a
//! generation bumped on every change, below 2^63) and up to [`MAX_ENTRIES`] entries of
//! 64 bytes: first sector, sector count, the holder's name (up to 31 bytes,
//! NUL-padded) and its rights (read, write). Generation `g` lives in copy `g % 2`, so each change overwrites
//! the older copy: a write torn by a crash leaves the newer copy's sectors mixed, its
//! CRC fails, and the other copy (the table before the change) is the one read.
//! An extent is granted with both rights to one holder; its holder may share it (or
//! part of it) read-only with other holders, and revoke that. Nothing may overlap
//! except a share inside its owner's extent.
//!
//! A disk that grows keeps its table at its old end, where a reader looking at the new
//! end finds none: without more, it would take the disk for a raw one, open whole to its
//! holder. So a format also writes a locator at a place that does not move, the end of
//! the disk's first MiB (free on a disk partitioned at MiB boundaries and in
//! BMFS's block 0, which uses its first 8 KiB), naming the sector count the table was
//! made for, twice, each copy in sectors of its own ([`locator_area`]): on a disk of
//! sectors up to 2 KiB at the 4 KiB's start and 2 KiB in, on one of larger sectors at
//! the start of the last sector of the first MiB and of the sector before it.
//! [`find`] reads it first (it says where the table is when it names another disk) and
//! decides between its copies when they disagree. A disk whose end holds no table is
//! raw only when neither copy of the locator is found either. The locator's sectors,
//! like the table's, belong to nobody.
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use rexo_crc::Crc32;

/// Bytes of one copy of the table (each copy takes whole sectors).
pub const COPY_BYTES: usize = 4096;
/// Copies of the table at the end of the disk.
pub const COPIES: usize = 2;
/// The most entries a table holds.
pub const MAX_ENTRIES: usize = (COPY_BYTES - HEADER) / ENTRY;
/// The most entries one holder may account for: its extents and the shares it gave (a
/// quarter of the table), so that no one app can fill the table for the others.
pub const MAX_ENTRIES_PER_HOLDER: usize = 16;
/// The magic at the start of each copy.
const MAGIC: &[u8; 8] = b"RexoXN03";
/// The magics of earlier formats: the first (one copy, a CRC of the entries only) and
/// the second (no locator, so extents may cover its place). Such a table is refused as
/// damaged, not taken for a raw disk.
const OLD_MAGICS: [&[u8; 8]; 2] = [b"RexoXN01", b"RexoXN02"];
/// The magic at the start of each copy of the locator.
const LOCATOR_MAGIC: &[u8; 8] = b"RexoXNat";
/// Bytes of one copy of the locator: its magic, the sector count, a CRC-32 of those 16.
const LOCATOR_BYTES: usize = 20;
/// Where the second copy of the locator starts in the first MiB's last 4 KiB on a disk
/// of sectors up to this size: 2 KiB in, in another sector than the first copy.
const LOCATOR_SECOND_COPY: usize = COPY_BYTES / 2;
/// Where the locator ends: the disk's first MiB (or the first sector boundary after it).
const LOCATOR_END: u64 = 1 << 20;
/// The smallest disk that carries a table: its locator is in the first MiB, its copies
/// at the end.
pub const MIN_DISK_BYTES: u64 = 2 << 20;
/// Bytes of the header.
const HEADER: usize = 32;
/// Generations stay below this (2^63: a change a nanosecond for 292 years), as the
/// journal of `rexo-fs` bounds its sequence numbers: a copy read off the disk with a
/// larger one is damaged, and a change that would reach it is refused, so counting on
/// never overflows or wraps round to a generation the next read takes for the older
/// copy (the change silently undone after a reboot).
const MAX_GENERATION: u64 = 1 << 63;
/// Bytes per entry.
const ENTRY: usize = 64;
/// The longest holder name.
pub const MAX_NAME: usize = 31;

/// The right to read an extent.
pub const READ: u8 = 1;
/// The right to write an extent.
pub const WRITE: u8 = 2;

/// One extent and its holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extent {
    /// First sector.
    pub start: u64,
    /// Sectors.
    pub count: u64,
    /// Who holds it (an app's name).
    pub holder: String,
    /// [`READ`], [`WRITE`] or both.
    pub rights: u8,
}

impl Extent {
    /// One past the last sector.
    pub fn end(&self) -> u64 {
        self.start + self.count
    }

    /// Whether it is a read-only share (not an owned extent).
    pub fn is_share(&self) -> bool {
        self.rights & WRITE == 0
    }

    /// Whether sectors `start..end` lie inside it.
    fn contains(&self, start: u64, end: u64) -> bool {
        self.start <= start && end <= self.end()
    }
}

/// Why a table or a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XnError {
    /// No table at the end of the disk (the disk is raw: format it).
    NoTable,
    /// The table is damaged (what is wrong).
    Corrupt(&'static str),
    /// The table was written for a disk of another size.
    WrongDisk {
        /// Sectors the table names.
        table: u64,
        /// Sectors of this disk.
        disk: u64,
    },
    /// The request touches sectors the holder may not (first such sector).
    Denied {
        /// The first sector refused.
        sector: u64,
        /// Whether it was a write.
        write: bool,
    },
    /// A request of 0 sectors: it names no sector to check, so it is refused.
    EmptyRequest,
    /// No free run of that many sectors.
    NoSpace(u64),
    /// The table has no room for another entry.
    TableFull,
    /// The holder accounts for [`MAX_ENTRIES_PER_HOLDER`] entries already (its extents
    /// and the shares it gave).
    HolderFull,
    /// The name is empty, too long or not printable ASCII.
    BadName,
    /// The extent is not the caller's to share or free.
    NotOwner,
    /// No such extent or share.
    NotFound,
    /// The disk is too small to hold a table (under [`MIN_DISK_BYTES`]).
    TooSmall,
    /// The table already spans the whole disk: there is nothing to grow into.
    NothingToGrow,
    /// The disk grew by fewer sectors than the table's two copies take (shown): the new
    /// end's copies would lie over the old table's, which must stay whole until the
    /// locator names the new size.
    GrowthTooSmall(u64),
    /// A format or a grow would write over something else on the disk (what): it is
    /// refused unless forced.
    InUse(&'static str),
    /// The disk is large enough for a table: a damaged one is mended by a format, and its
    /// protection is not given up (which would open every former extent to its holder).
    FormatInstead,
}

impl fmt::Display for XnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoTable => f.write_str("the disk has no extent table (format it for XN)"),
            Self::Corrupt(why) => write!(f, "the extent table is damaged: {why}"),
            Self::WrongDisk { table, disk } => {
                write!(
                    f,
                    "the extent table is for a {table}-sector disk, this one has {disk}"
                )
            }
            Self::Denied { sector, write } => write!(
                f,
                "the extent table does not let the app {} sector {sector}",
                if *write { "write" } else { "read" }
            ),
            Self::EmptyRequest => f.write_str("a request of 0 sectors is refused"),
            Self::NoSpace(count) => write!(f, "no free run of {count} sectors"),
            Self::TableFull => write!(f, "the extent table is full ({MAX_ENTRIES} entries)"),
            Self::HolderFull => write!(
                f,
                "the app accounts for {MAX_ENTRIES_PER_HOLDER} entries of the extent table already \
                 (its extents and the shares it gave)"
            ),
            Self::BadName => write!(f, "holder names are 1 to {MAX_NAME} printable ASCII bytes"),
            Self::NotOwner => f.write_str("the extent is not the caller's"),
            Self::NotFound => f.write_str("no such extent"),
            Self::TooSmall => f.write_str("the disk is too small for an extent table"),
            Self::NothingToGrow => f.write_str("the extent table already spans the whole disk"),
            Self::GrowthTooSmall(sectors) => write!(
                f,
                "the disk grew by less than the extent table's {sectors} sectors: grow it further"
            ),
            Self::InUse(what) => {
                write!(f, "refused: {what} (forced, the table is written over it)")
            }
            Self::FormatInstead => f.write_str(
                "the disk can hold an extent table: format it instead of giving up its protection",
            ),
        }
    }
}

/// A disk's extent table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// Sectors on the disk.
    sectors: u64,
    /// Bytes per sector.
    sector_size: u64,
    /// Bumped on every change.
    generation: u64,
    /// The extents and shares.
    entries: Vec<Extent>,
}

/// Sectors one copy of the table takes on a disk of `sector_size`-byte sectors.
pub fn copy_sectors(sector_size: u64) -> u64 {
    (COPY_BYTES as u64).div_ceil(sector_size.max(1))
}

/// The first sector of copy `copy` (0: A, 1: B) on a disk of `sectors` sectors of
/// `sector_size` bytes that [holds a table](holds_a_table).
pub fn copy_start(sectors: u64, sector_size: u64, copy: usize) -> u64 {
    sectors - (COPIES - copy) as u64 * copy_sectors(sector_size)
}

/// The sectors the table takes on a disk of `sectors` sectors of `sector_size` bytes
/// that [holds a table](holds_a_table): its first (copy A's) and how many (both copies,
/// to the disk's end).
pub fn table_area(sectors: u64, sector_size: u64) -> (u64, u64) {
    let count = COPIES as u64 * copy_sectors(sector_size);
    (sectors - count, count)
}

/// Whether a disk of `sectors` sectors of `sector_size` bytes is large enough to carry
/// a table ([`MIN_DISK_BYTES`] at least, and room for the locator and both copies after
/// it); its size in bytes may be more than a u64 counts.
pub fn holds_a_table(sectors: u64, sector_size: u64) -> bool {
    let (locator, count) = locator_area(sector_size);
    sectors.saturating_mul(sector_size) >= MIN_DISK_BYTES
        && sectors >= locator + count + COPIES as u64 * copy_sectors(sector_size)
}

/// The sectors of the locator on a disk of `sector_size`-byte sectors: its first and how
/// many, ending at the disk's first MiB, never in sector 0. That is one copy's worth (4
/// KiB) where sectors are 2 KiB or less, its two copies in different sectors of it (at its
/// start and 2 KiB in); where sectors are larger, two sectors, one per copy (a disk
/// formatted before the second sector was added has both copies in the last one; its first
/// copy is still read there).
pub fn locator_area(sector_size: u64) -> (u64, u64) {
    let count = copy_sectors(sector_size).max(2);
    let end = LOCATOR_END.div_ceil(sector_size.max(1)).max(1 + count);
    (end - count, count)
}

/// Where each copy of the locator starts in the bytes of its sectors
/// ([`locator_area`]) on a disk of `sector_size`-byte sectors: where sectors are 2 KiB
/// or less, at their start and 2 KiB in (the fifth 512-byte sector); where they are
/// larger, the first at the start of the last sector (where it always was on sectors
/// under 512 KiB) and the second at the start of the sector before it.
fn locator_copies(sector_size: u64) -> [usize; 2] {
    if sector_size <= LOCATOR_SECOND_COPY as u64 {
        [0, LOCATOR_SECOND_COPY]
    } else {
        [sector_size as usize, 0]
    }
}

/// The sector count one copy of the locator (`bytes`, at least its first 20) names:
/// `None` when the bytes are no locator, [`XnError::Corrupt`] when they are a damaged
/// one.
pub fn read_locator(bytes: &[u8]) -> Result<Option<u64>, XnError> {
    if bytes.get(..8) != Some(&LOCATOR_MAGIC[..]) {
        return Ok(None);
    }
    let field = |at: usize, len: usize| bytes.get(at..at + len);
    let (Some(sectors), Some(crc)) = (field(8, 8), field(16, 4)) else {
        return Err(XnError::Corrupt("a locator cut short"));
    };
    if locator_checksum(&bytes[..16]) != crc {
        return Err(XnError::Corrupt("the locator's checksum"));
    }
    Ok(Some(u64::from_le_bytes(
        sectors.try_into().expect("8 bytes"),
    )))
}

/// What both copies of the locator say ([`read_locator`]) on a disk of
/// `sector_size`-byte sectors, from the bytes of its sectors (`region`, cut short on a
/// disk that ends inside them: a copy past the cut is none).
pub fn read_locators(region: &[u8], sector_size: u64) -> [Result<Option<u64>, XnError>; 2] {
    locator_copies(sector_size).map(|at| read_locator(region.get(at..).unwrap_or_default()))
}

/// Whether the locator's sectors (`region`) on a disk of `sector_size`-byte sectors hold
/// a copy of a locator, sound or damaged (a copy starting with its magic).
pub fn holds_a_locator(region: &[u8], sector_size: u64) -> bool {
    locator_copies(sector_size).iter().any(|&at| {
        region
            .get(at..)
            .is_some_and(|copy| copy.starts_with(LOCATOR_MAGIC))
    })
}

/// A table found by [`find`], and whether the locator must be rewritten.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// The table, at the end of the disk it was made for ([`Table::sectors`]: this one,
    /// or a smaller one when the disk grew).
    pub table: Table,
    /// Whether a copy of the locator is damaged, missing or names another size: both
    /// are to be rewritten naming the table's ([`Table::locator`]), unless the locator's
    /// sectors hold something else ([`locator_hazard`]).
    pub mend_locator: bool,
}

/// The disk sizes whose ends a reader of a disk of `sectors` sectors of `sector_size`
/// bytes, with the locator's sectors holding `region`, may look for a table at: the sizes
/// the locator's sound copies name (no larger than the disk, large enough for a table),
/// largest first, or the disk's own when they name none.
fn places(region: &[u8], sectors: u64, sector_size: u64) -> Vec<u64> {
    let mut named: Vec<u64> = read_locators(region, sector_size)
        .into_iter()
        .filter_map(|copy| copy.ok().flatten())
        .filter(|&size| size == sectors || size < sectors && holds_a_table(size, sector_size))
        .collect();
    named.sort_unstable_by(|a, b| b.cmp(a));
    named.dedup();
    if named.is_empty() {
        named.push(sectors);
    }
    named
}

/// Every place a table could be found on a disk of `sectors` sectors of `sector_size`
/// bytes whose locator's sectors hold `region` (as [`find`] looks, and at the disk's end):
/// the disk sizes, each large enough for a table, whose ends a format or the removal of
/// the protection must clear so that no table is found there after a crash.
pub fn table_places(region: &[u8], sectors: u64, sector_size: u64) -> Vec<u64> {
    let mut all = places(region, sectors, sector_size);
    all.push(sectors);
    all.retain(|&size| holds_a_table(size, sector_size));
    all.sort_unstable_by(|a, b| b.cmp(a));
    all.dedup();
    all
}

/// The table of a disk of `sectors` sectors of `sector_size` bytes, whose locator's
/// sectors hold `region` (read before the disk's end, which may hold an older table);
/// `read_table(size)` reads the table made for a disk of `size` sectors at that disk's
/// end ([`table_area`], `size` no larger than this disk and large enough for a table).
///
/// A copy of the locator naming a larger disk makes the disk damaged
/// ([`XnError::WrongDisk`]: it shrank, its table is gone with its end). Otherwise the
/// sizes the sound copies name decide where the table is: when they disagree (a crash
/// tore the write of the locator between its two sectors), the largest whose end holds a
/// sound table wins (a grow writes the table at the new end before the locator, so a
/// copy naming the new size has its table; the old one, with the same extents, is the
/// one read when the new end has none). With no sound copy, the table is at the disk's
/// end. [`XnError::NoTable`] (a raw disk) only when neither copy is found and the end
/// holds no table; no table where a copy says, or a damaged copy and none at the end, is
/// damage. The table found says whether the locator needs rewriting
/// ([`Located::mend_locator`]).
pub fn find<E>(
    region: &[u8],
    sectors: u64,
    sector_size: u64,
    mut read_table: impl FnMut(u64) -> Result<Result<Table, XnError>, E>,
) -> Result<Result<Located, XnError>, E> {
    let copies = read_locators(region, sector_size);
    if let Some(table) =
        (copies.iter()).find_map(|copy| copy.ok().flatten().filter(|&size| size > sectors))
    {
        return Ok(Err(XnError::WrongDisk {
            table,
            disk: sectors,
        }));
    }
    let places = places(region, sectors, sector_size);
    let mut refused = None;
    for &size in &places {
        let found = if holds_a_table(size, sector_size) {
            read_table(size)?
        } else {
            Err(XnError::NoTable)
        };
        match found {
            Ok(table) => {
                let mend_locator = copies.iter().any(|copy| *copy != Ok(Some(size)));
                return Ok(Ok(Located {
                    table,
                    mend_locator,
                }));
            }
            Err(error) => {
                refused.get_or_insert(error);
            }
        }
    }
    let damaged_copy = copies.iter().find_map(|copy| match copy {
        Err(error) => Some(*error),
        Ok(Some(size)) if *size < sectors && !holds_a_table(*size, sector_size) => Some(
            XnError::Corrupt("the locator names a disk too small for a table"),
        ),
        Ok(_) => None,
    });
    let named = (copies.iter()).any(|copy| matches!(copy, Ok(Some(size)) if places.contains(size)));
    Ok(Err(match refused.unwrap_or(XnError::NoTable) {
        XnError::NoTable if named && places[0] == sectors => {
            XnError::Corrupt("the locator names a table at the disk's end, and there is none")
        }
        XnError::NoTable if named => XnError::Corrupt("no table where the locator says"),
        XnError::NoTable => damaged_copy.unwrap_or(XnError::NoTable),
        error => error,
    }))
}

/// The CRC-32 of a locator's first 16 bytes (magic and sector count), as it is stored
/// after them.
fn locator_checksum(head: &[u8]) -> [u8; 4] {
    let mut crc = Crc32::new();
    crc.update(head);
    crc.finish().to_le_bytes()
}

/// The CRC-32 of a copy's header and entries (`bytes`), all but the CRC's own bytes
/// (12..16).
fn checksum(bytes: &[u8]) -> u32 {
    let mut crc = Crc32::new();
    crc.update(&bytes[..12]);
    crc.update(&bytes[16..]);
    crc.finish()
}

/// What a format of a disk of `sector_size`-byte sectors would write over, if anything:
/// `first_sector` is its sector 0, `locator` the locator's sectors, `area` the sectors
/// both copies of the table take. A boot signature (0x55 0xAA at bytes 510..512: an MBR, or a GPT disk's
/// protective one) says the disk is partitioned; a locator's sectors that are neither
/// zeros nor a locator, or a copy that is neither zeros nor an extent table (of this
/// format or an earlier one), are someone's data: a boot loader's, a GPT's backup header
/// and entries, a file system's first or last blocks.
pub fn format_hazard(
    first_sector: &[u8],
    locator: &[u8],
    area: &[u8],
    sector_size: u64,
) -> Option<XnError> {
    if first_sector.get(510..512) == Some(&[0x55, 0xAA]) {
        return Some(XnError::InUse(
            "sector 0 holds a partition table (an MBR or a GPT's protective MBR)",
        ));
    }
    locator_hazard(locator, sector_size).or_else(|| table_area_hazard(area))
}

/// What writing a locator over `locator`, the bytes of the locator's sectors on a disk
/// of `sector_size`-byte sectors, would write over, if anything: sectors that are
/// neither zeros nor a copy of a locator (sound or damaged) are someone's data, a boot
/// loader's in the gap after an MBR or a file system's blocks. So is data in the sector
/// a disk of sectors over 2 KiB whose locator is of the earlier layout (both copies in
/// the last sector) did not reserve for it.
pub fn locator_hazard(locator: &[u8], sector_size: u64) -> Option<XnError> {
    let foreign = !holds_a_locator(locator, sector_size) && locator.iter().any(|&byte| byte != 0)
        || data_beside_an_earlier_locator(locator, sector_size);
    foreign.then_some(XnError::InUse(
        "the locator's sectors (at the end of the first MiB) hold data",
    ))
}

/// Whether the locator's sectors (`locator`) on a disk of `sector_size`-byte sectors, over
/// 2 KiB, hold a locator of the earlier layout (a copy 2 KiB into the last sector) and,
/// in the sector before it, which that layout left to others, neither zeros nor a copy
/// of a locator.
fn data_beside_an_earlier_locator(locator: &[u8], sector_size: u64) -> bool {
    if sector_size <= LOCATOR_SECOND_COPY as u64 {
        return false;
    }
    let [last, before] = locator_copies(sector_size);
    let earlier = (locator.get(last + LOCATOR_SECOND_COPY..))
        .is_some_and(|copy| copy.starts_with(LOCATOR_MAGIC));
    let data = (locator.get(before..last)).is_some_and(|sector| {
        !sector.starts_with(LOCATOR_MAGIC) && sector.iter().any(|&byte| byte != 0)
    });
    earlier && data
}

/// What writing a table over `area`, the sectors both copies take at a disk's end, would
/// write over, if anything: a copy that is neither zeros nor an extent table (of this
/// format or an earlier one) is someone's data.
pub fn table_area_hazard(area: &[u8]) -> Option<XnError> {
    let foreign = area
        .chunks(area.len().div_ceil(COPIES).max(1))
        .any(|copy| !is_a_table(copy) && copy.iter().any(|&byte| byte != 0));
    foreign.then_some(XnError::InUse(
        "the sectors the table takes at the disk's end hold data",
    ))
}

/// Whether `copy`, the bytes of one copy's place, starts with a table's magic (of this
/// format or an earlier one): a table, sound or damaged, that makes the disk no raw one.
pub fn is_a_table(copy: &[u8]) -> bool {
    copy.starts_with(MAGIC) || OLD_MAGICS.iter().any(|old| copy.starts_with(*old))
}

/// Checks a holder name.
fn valid_name(name: &str) -> Result<(), XnError> {
    let ok =
        !name.is_empty() && name.len() <= MAX_NAME && name.bytes().all(|b| b.is_ascii_graphic());
    if ok { Ok(()) } else { Err(XnError::BadName) }
}

impl Table {
    /// A new, empty table for a disk of `sectors` sectors of `sector_size` bytes.
    pub fn format(sectors: u64, sector_size: u64) -> Result<Self, XnError> {
        if sector_size == 0
            || !(COPY_BYTES as u64).is_multiple_of(sector_size) && sector_size < COPY_BYTES as u64
        {
            return Err(XnError::Corrupt("a sector size that does not divide 4 KiB"));
        }
        if !holds_a_table(sectors, sector_size) {
            return Err(XnError::TooSmall);
        }
        Ok(Self {
            sectors,
            sector_size,
            generation: 1,
            entries: Vec::new(),
        })
    }

    /// The first sector of the table itself (its copy A).
    pub fn table_start(&self) -> u64 {
        table_area(self.sectors, self.sector_size).0
    }

    /// Sectors the table itself takes: both copies.
    pub fn table_sectors(&self) -> u64 {
        table_area(self.sectors, self.sector_size).1
    }

    /// The first sector of copy `copy` (0: A, 1: B).
    pub fn copy_start(&self, copy: usize) -> u64 {
        copy_start(self.sectors, self.sector_size, copy)
    }

    /// The copy this generation is written to (0: A, 1: B): the one the previous
    /// generation is not in.
    pub fn copy(&self) -> usize {
        (self.generation % COPIES as u64) as usize
    }

    /// Sectors extents may use: all but the table's.
    pub fn usable_sectors(&self) -> u64 {
        self.table_start()
    }

    /// The entries, owned extents and shares.
    pub fn entries(&self) -> &[Extent] {
        &self.entries
    }

    /// The generation (bumped by every change).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The generation a change takes: the next one, or [`XnError::Corrupt`] for a
    /// table at the last one below [`MAX_GENERATION`] (which only a crafted disk
    /// holds), whose next copy the following read would refuse.
    fn next_generation(&self) -> Result<u64, XnError> {
        self.generation
            .checked_add(1)
            .filter(|&next| next < MAX_GENERATION)
            .ok_or(XnError::Corrupt(
                "the generation is at the end of its range",
            ))
    }

    /// Reads the table from its two copies (`copies[0]` is A, `copies[1]` B, each at
    /// least [`COPY_BYTES`]), for a disk of `sectors` sectors of `sector_size` bytes: the
    /// sound copy of the highest generation, so a copy torn by a crash falls back to the
    /// other. [`XnError::NoTable`] when neither copy is a table; otherwise, when neither
    /// is sound, why copy A (or, when A is no table, B) is refused.
    pub fn parse(copies: [&[u8]; COPIES], sectors: u64, sector_size: u64) -> Result<Self, XnError> {
        let [a, b]: [_; COPIES] =
            core::array::from_fn(|copy| Self::parse_copy(copies[copy], copy, sectors, sector_size));
        match (a, b) {
            (Ok(a), Ok(b)) => Ok(if a.generation > b.generation { a } else { b }),
            (Ok(table), Err(_)) | (Err(_), Ok(table)) => Ok(table),
            (Err(XnError::NoTable), Err(error)) | (Err(error), Err(_)) => Err(error),
        }
    }

    /// Reads copy `copy` of the table.
    fn parse_copy(
        bytes: &[u8],
        copy: usize,
        sectors: u64,
        sector_size: u64,
    ) -> Result<Self, XnError> {
        if bytes.len() < COPY_BYTES {
            return Err(XnError::Corrupt("shorter than a table"));
        }
        if OLD_MAGICS.iter().any(|old| &bytes[..8] == *old) {
            return Err(XnError::Corrupt(
                "a table of an earlier format (without a locator): format it again",
            ));
        }
        if &bytes[..8] != MAGIC {
            return Err(XnError::NoTable);
        }
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let count = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
        let (disk, generation) = (word(16), word(24));
        if count > MAX_ENTRIES {
            return Err(XnError::Corrupt("more entries than fit"));
        }
        if checksum(&bytes[..HEADER + count * ENTRY]) != crc {
            return Err(XnError::Corrupt("checksum mismatch"));
        }
        if disk != sectors {
            return Err(XnError::WrongDisk {
                table: disk,
                disk: sectors,
            });
        }
        if generation >= MAX_GENERATION {
            return Err(XnError::Corrupt("a generation out of range"));
        }
        let mut table = Self::format(sectors, sector_size)?;
        table.generation = generation;
        if table.copy() != copy {
            return Err(XnError::Corrupt("a generation in the other copy's place"));
        }
        for raw in bytes[HEADER..HEADER + count * ENTRY].chunks(ENTRY) {
            let start = u64::from_le_bytes(raw[..8].try_into().expect("8 bytes"));
            let count = u64::from_le_bytes(raw[8..16].try_into().expect("8 bytes"));
            let len = raw[16..48]
                .iter()
                .position(|&b| b == 0)
                .ok_or(XnError::Corrupt("a holder name without its end"))?;
            let holder = core::str::from_utf8(&raw[16..16 + len])
                .map_err(|_| XnError::Corrupt("a holder name that is not text"))?;
            valid_name(holder).map_err(|_| XnError::Corrupt("a bad holder name"))?;
            let rights = raw[48];
            if rights & !(READ | WRITE) != 0 || rights & READ == 0 {
                return Err(XnError::Corrupt("impossible rights"));
            }
            table.entries.push(Extent {
                start,
                count,
                holder: holder.into(),
                rights,
            });
        }
        table.check()?;
        Ok(table)
    }

    /// The table as it goes on disk ([`COPY_BYTES`]), into copy [`Table::copy`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = alloc::vec![0u8; COPY_BYTES];
        for (i, extent) in self.entries.iter().enumerate() {
            let raw = &mut bytes[HEADER + i * ENTRY..HEADER + (i + 1) * ENTRY];
            raw[..8].copy_from_slice(&extent.start.to_le_bytes());
            raw[8..16].copy_from_slice(&extent.count.to_le_bytes());
            raw[16..16 + extent.holder.len()].copy_from_slice(extent.holder.as_bytes());
            raw[48] = extent.rights;
        }
        bytes[..8].copy_from_slice(MAGIC);
        bytes[8..12].copy_from_slice(&(self.entries.len() as u32).to_le_bytes());
        bytes[16..24].copy_from_slice(&self.sectors.to_le_bytes());
        bytes[24..32].copy_from_slice(&self.generation.to_le_bytes());
        let crc = checksum(&bytes[..HEADER + self.entries.len() * ENTRY]);
        bytes[12..16].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    /// The same table made for a disk grown to `sectors` sectors (its copies at the new
    /// end, the sectors between the two ends free), one generation on; the entries are
    /// unchanged. [`XnError::NothingToGrow`] when the table spans `sectors` already,
    /// [`XnError::WrongDisk`] for a smaller disk, [`XnError::GrowthTooSmall`] when the
    /// new end's copies would lie over the old ones.
    pub fn grown(&self, sectors: u64) -> Result<Self, XnError> {
        if sectors == self.sectors {
            return Err(XnError::NothingToGrow);
        }
        if sectors < self.sectors {
            return Err(XnError::WrongDisk {
                table: self.sectors,
                disk: sectors,
            });
        }
        let area = self.table_sectors();
        if sectors - self.sectors < area {
            return Err(XnError::GrowthTooSmall(area));
        }
        Ok(Self {
            sectors,
            generation: self.next_generation()?,
            ..self.clone()
        })
    }

    /// The locator as it goes on disk, the bytes of its sectors ([`locator_area`]): twice,
    /// each copy in sectors of its own, its magic, the sector count the table was made for,
    /// a CRC-32 of those 16 bytes; zeros around.
    pub fn locator(&self) -> Vec<u8> {
        let count = locator_area(self.sector_size).1;
        let mut bytes = alloc::vec![0u8; (count * self.sector_size) as usize];
        for at in locator_copies(self.sector_size) {
            let copy = &mut bytes[at..at + LOCATOR_BYTES];
            copy[..8].copy_from_slice(LOCATOR_MAGIC);
            copy[8..16].copy_from_slice(&self.sectors.to_le_bytes());
            let crc = locator_checksum(&copy[..16]);
            copy[16..].copy_from_slice(&crc);
        }
        bytes
    }

    /// The sector count of the disk the table was made for (its copies at that disk's
    /// end).
    pub fn sectors(&self) -> u64 {
        self.sectors
    }

    /// The locator's sectors: first and one past the last. They belong to nobody.
    fn locator_range(&self) -> (u64, u64) {
        let (start, count) = locator_area(self.sector_size);
        (start, start + count)
    }

    /// Checks the invariants: extents inside the usable sectors and clear of the
    /// locator, owned extents disjoint, every share inside an extent its owner holds.
    fn check(&self) -> Result<(), XnError> {
        let mut owned: Vec<&Extent> = self.entries.iter().filter(|e| !e.is_share()).collect();
        for extent in &self.entries {
            if extent.count == 0
                || extent
                    .start
                    .checked_add(extent.count)
                    .is_none_or(|end| end > self.usable_sectors())
            {
                return Err(XnError::Corrupt("an extent outside the disk"));
            }
            let (locator, locator_end) = self.locator_range();
            if extent.start < locator_end && locator < extent.end() {
                return Err(XnError::Corrupt("an extent over the table's locator"));
            }
        }
        owned.sort_by_key(|e| e.start);
        if owned.windows(2).any(|pair| pair[0].end() > pair[1].start) {
            return Err(XnError::Corrupt("two extents overlap"));
        }
        let orphan = self.entries.iter().filter(|e| e.is_share()).any(|share| {
            !owned
                .iter()
                .any(|o| o.start <= share.start && share.end() <= o.end())
        });
        if orphan {
            return Err(XnError::Corrupt("a share outside every extent"));
        }
        Ok(())
    }

    /// Checks that `holder` may read (or write) sectors `start..start + count`; the table's
    /// own sectors are never readable or writable this way, and a request of 0 sectors is
    /// [`XnError::EmptyRequest`] wherever it points.
    pub fn check_access(
        &self,
        holder: &str,
        start: u64,
        count: u64,
        write: bool,
    ) -> Result<(), XnError> {
        if count == 0 {
            return Err(XnError::EmptyRequest);
        }
        let need = if write { WRITE } else { READ };
        let end = start.saturating_add(count);
        let mut at = start;
        // Walk the range: every sector must lie in some entry of the holder with the right.
        while at < end {
            let covering = self
                .entries
                .iter()
                .filter(|e| {
                    e.holder == holder && e.rights & need != 0 && e.start <= at && at < e.end()
                })
                .map(Extent::end)
                .max();
            match covering {
                Some(next) => at = next,
                None => {
                    return Err(XnError::Denied { sector: at, write });
                }
            }
        }
        Ok(())
    }

    /// Grants `holder` a new extent of `count` sectors (first fit, around the locator),
    /// with both rights. The
    /// table does not touch the sectors: they may hold a previous holder's data, so the
    /// caller wipes them before it writes the table to the disk.
    pub fn allocate(&mut self, holder: &str, count: u64) -> Result<Extent, XnError> {
        valid_name(holder)?;
        self.room_for_one_more(holder)?;
        let mut taken: Vec<(u64, u64)> = self
            .entries
            .iter()
            .filter(|e| !e.is_share())
            .map(|e| (e.start, e.end()))
            .chain([self.locator_range()])
            .collect();
        taken.sort_unstable();
        let mut candidate = 0u64;
        for (start, end) in taken {
            if start >= candidate.saturating_add(count) {
                break;
            }
            candidate = candidate.max(end);
        }
        if count == 0 || candidate.saturating_add(count) > self.usable_sectors() {
            return Err(XnError::NoSpace(count));
        }
        self.generation = self.next_generation()?;
        let extent = Extent {
            start: candidate,
            count,
            holder: holder.into(),
            rights: READ | WRITE,
        };
        self.entries.push(extent.clone());
        Ok(extent)
    }

    /// Shares `start..start + count` of an extent `owner` holds with `reader`, read-only.
    pub fn share(
        &mut self,
        owner: &str,
        start: u64,
        count: u64,
        reader: &str,
    ) -> Result<(), XnError> {
        valid_name(reader)?;
        let inside = self.entries.iter().any(|e| {
            e.holder == owner && !e.is_share() && e.contains(start, start.saturating_add(count))
        });
        if !inside || count == 0 {
            return Err(XnError::NotOwner);
        }
        self.room_for_one_more(owner)?;
        self.generation = self.next_generation()?;
        self.entries.push(Extent {
            start,
            count,
            holder: reader.into(),
            rights: READ,
        });
        Ok(())
    }

    /// Whether the table, and `owner`'s part of it (its extents and the shares inside
    /// them), have room for one more entry.
    fn room_for_one_more(&self, owner: &str) -> Result<(), XnError> {
        if self.entries.len() >= MAX_ENTRIES {
            return Err(XnError::TableFull);
        }
        let owned = || (self.entries.iter()).filter(|e| e.holder == owner && !e.is_share());
        let accounted = self
            .entries
            .iter()
            .filter(|e| {
                !e.is_share() && e.holder == owner
                    || e.is_share() && owned().any(|o| o.contains(e.start, e.end()))
            })
            .count();
        if accounted >= MAX_ENTRIES_PER_HOLDER {
            return Err(XnError::HolderFull);
        }
        Ok(())
    }

    /// Revokes every share `owner` gave `reader` inside `owner`'s extents; how many
    /// (none changes nothing).
    pub fn revoke(&mut self, owner: &str, reader: &str) -> Result<usize, XnError> {
        let owned: Vec<(u64, u64)> = self
            .entries
            .iter()
            .filter(|e| e.holder == owner && !e.is_share())
            .map(|e| (e.start, e.end()))
            .collect();
        let given = |e: &Extent| {
            e.is_share()
                && e.holder == reader
                && owned.iter().any(|&(s, end)| s <= e.start && e.end() <= end)
        };
        let revoked = self.entries.iter().filter(|e| given(e)).count();
        if revoked > 0 {
            self.generation = self.next_generation()?;
            self.entries.retain(|e| !given(e));
        }
        Ok(revoked)
    }

    /// Frees `holder`'s extent starting at `start`, with every share inside it (its data
    /// stays on the disk until the sectors are allocated and wiped again).
    pub fn free(&mut self, holder: &str, start: u64) -> Result<(), XnError> {
        let at = self
            .entries
            .iter()
            .position(|e| e.holder == holder && !e.is_share() && e.start == start)
            .ok_or(XnError::NotFound)?;
        self.generation = self.next_generation()?;
        let extent = self.entries.remove(at);
        self.entries
            .retain(|e| !(e.is_share() && extent.contains(e.start, e.end())));
        Ok(())
    }
}

#[cfg(test)]
mod tests;
