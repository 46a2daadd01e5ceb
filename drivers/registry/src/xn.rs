//! Protected disk blocks (XN's idea, `rexo-xn`): a disk's extent table is read when the
//! disk is first opened, every request of a lease is checked against it for the lease's
//! holder, changes to it are written through to the disk and flushed, and a newly
//! allocated extent is zeroed before the table that grants it is written.

use alloc::vec;
use alloc::vec::Vec;

use rexo_api::{
    ApiError, BlockDevice, BlockInfo, DeviceError, DeviceKind, DiskExtent, ExtentOp,
    device::{run_windowed, wait_for},
};
use rexo_xn::{COPIES, Table, XnError};
use spin::MutexGuard;

use crate::appcode::calling_app;
use crate::away::outside_the_lock;
use crate::exact::{submit_write_exact, wait_for_read_exact};
use crate::{Registry, Slot, SlotState};

/// What protects a disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Protection {
    /// Not read yet, the last read failed, or the last write of the table failed (the
    /// disk may hold the old table or the new one): no request passes, and the next open
    /// reads again.
    Unknown,
    /// No table: the disk is raw, its holder has all of it.
    Raw,
    /// The table every request is checked against.
    Table(Table),
    /// The table every request is checked against, whose locator is damaged, missing or
    /// names another size and could not be rewritten: the next use tries again.
    Unmended(Table),
    /// A table that cannot be trusted: no request passes until it is formatted again.
    Damaged(XnError),
}

impl Protection {
    /// The table requests are checked against, if there is one.
    fn table(&self) -> Option<&Table> {
        match self {
            Self::Table(table) | Self::Unmended(table) => Some(table),
            _ => None,
        }
    }
}

/// A disk described by `info`: its sectors and the bytes of one (a sector size of 0
/// taken as 1).
fn geometry(info: &BlockInfo) -> (u64, u64) {
    (info.sectors, u64::from(info.sector_size.max(1)))
}

/// The requests that move sectors `start..start + count` of a disk whose requests
/// carry up to `max_sectors`: each one's first sector, its sectors, and how many
/// sectors of the run come before it.
fn requests(start: u64, count: u64, max_sectors: u32) -> impl Iterator<Item = (u64, u32, u64)> {
    let most = u64::from(max_sectors.max(1));
    (0..count).step_by(most as usize).map(move |done| {
        let sectors = most.min(count - done);
        (start + done, sectors as u32, done)
    })
}

/// The bytes of sectors `start..start + count` of `disk` (idle: nobody holds it), read
/// in requests of up to the device's `max_sectors`.
fn read_sectors(
    disk: &mut dyn BlockDevice,
    start: u64,
    count: u64,
) -> Result<Vec<u8>, DeviceError> {
    let info = disk.info();
    let size = geometry(&info).1 as usize;
    let mut bytes = vec![0u8; count as usize * size];
    for (lba, sectors, done) in requests(start, count, info.max_sectors) {
        let part = &mut bytes[done as usize * size..][..sectors as usize * size];
        let tag = disk.submit_read(0, lba, sectors)?;
        wait_for_read_exact(disk, 0, tag, part)?;
    }
    Ok(bytes)
}

/// The locator's sectors on `disk`: the first one and how many.
fn locator_area(disk: &dyn BlockDevice) -> (u64, u64) {
    rexo_xn::locator_area(geometry(&disk.info()).1)
}

/// What writing a locator over the locator's sectors of `disk` (idle: nobody holds it)
/// would write over, if anything ([`rexo_xn::locator_hazard`]).
fn locator_hazard(disk: &mut dyn BlockDevice) -> Result<Option<XnError>, DeviceError> {
    let locator = read_locator_sectors(disk)?;
    Ok(rexo_xn::locator_hazard(&locator, geometry(&disk.info()).1))
}

/// What a format of `disk` (idle: nobody holds it, large enough for a table) would
/// write over ([`rexo_xn::format_hazard`]), from its sector 0, the locator's sectors (as
/// read: `locator`) and the table's.
fn format_hazard(
    disk: &mut dyn BlockDevice,
    locator: &[u8],
) -> Result<Option<XnError>, DeviceError> {
    let first_sector = read_sectors(disk, 0, 1)?;
    let (sectors, size) = geometry(&disk.info());
    let area = read_area(disk, sectors, size)?;
    Ok(rexo_xn::format_hazard(&first_sector, locator, &area, size))
}

/// The sectors both copies of a table made for a disk of `sectors` sectors of `size`
/// bytes take at that disk's end, read from `disk`.
fn read_area(disk: &mut dyn BlockDevice, sectors: u64, size: u64) -> Result<Vec<u8>, DeviceError> {
    let (start, count) = rexo_xn::table_area(sectors, size);
    read_sectors(disk, start, count)
}

/// Reads both copies of the table of `disk` (idle: nobody holds it) made for a disk of
/// `sectors` sectors of `size` bytes, in requests of up to the device's `max_sectors`,
/// and takes the sound one of the highest generation ([`Table::parse`]).
fn read_table(
    disk: &mut dyn BlockDevice,
    sectors: u64,
    size: u64,
) -> Result<Result<Table, XnError>, DeviceError> {
    let area = read_area(disk, sectors, size)?;
    let (a, b) = area.split_at(area.len() / COPIES);
    Ok(Table::parse([a, b], sectors, size))
}

/// The locator's sectors on `disk` as far as the disk reaches (a disk cut inside them
/// still holds a copy of the locator whole in their first sector): the first one and
/// how many.
fn reachable_locator(disk: &dyn BlockDevice) -> (u64, u64) {
    let sectors = disk.info().sectors;
    let (start, count) = locator_area(disk);
    (start, count.min(sectors.saturating_sub(start)))
}

/// The bytes of the locator's sectors of `disk` (idle: nobody holds it), as far as the
/// disk reaches ([`reachable_locator`]).
fn read_locator_sectors(disk: &mut dyn BlockDevice) -> Result<Vec<u8>, DeviceError> {
    let (start, count) = reachable_locator(disk);
    read_sectors(disk, start, count)
}

/// The locator's sectors of `disk` (idle: nobody holds it) as [`read_locator_sectors`]
/// reads them, for finding its table: when that read fails, each sector is read on its
/// own, one that fails logged and taken as zeros (no copy there), so that a bad sector
/// under one copy leaves the other; with the error of the first read when one did.
fn read_locator_copies(
    disk: &mut dyn BlockDevice,
) -> Result<(Vec<u8>, Option<DeviceError>), DeviceError> {
    let error = match read_locator_sectors(disk) {
        Ok(bytes) => return Ok((bytes, None)),
        Err(error) => error,
    };
    let size = geometry(&disk.info()).1;
    let (start, count) = reachable_locator(disk);
    let mut bytes = Vec::new();
    let mut any_failed = false;
    for sector in start..start + count {
        match read_sectors(disk, sector, 1) {
            Ok(one) => bytes.extend(one),
            Err(failed) => {
                log::warn!(
                    "disk extent table: the locator's sector {sector} is unreadable ({failed}): \
                     the copy there is skipped"
                );
                bytes.resize(bytes.len() + size as usize, 0);
                any_failed = true;
            }
        }
    }
    Ok((bytes, any_failed.then_some(error)))
}

/// The table of `disk` (idle: nobody holds it), found by [`rexo_xn::find`] from its
/// locator's copies, whatever the disk's end holds when they name another disk (an
/// older table left there, or another disk's data): at the end of the smaller disk they
/// name (the disk grew: the table stays where it was made, and the sectors past it
/// belong to nobody), nowhere (a copy names a larger disk: it shrank,
/// [`XnError::WrongDisk`]), or at the disk's end; no table and no locator is a raw disk.
/// A disk too small for a table is read for its locator all the same (while it reaches
/// it): one that shrank under [`rexo_xn::MIN_DISK_BYTES`] is damaged, not raw. When a
/// sector of the locator cannot be read ([`read_locator_copies`]), only a table a copy
/// read whole sends the reader to is taken; anything else is that read's error (the
/// unread copy may have named a larger disk, or been the only one).
fn find_table(
    disk: &mut dyn BlockDevice,
) -> Result<Result<rexo_xn::Located, XnError>, DeviceError> {
    let (sectors, size) = geometry(&disk.info());
    let (region, unreadable) = read_locator_copies(disk)?;
    let found = rexo_xn::find(&region, sectors, size, |made_for| {
        read_table(disk, made_for, size)
    })?;
    if let Some(error) = unreadable {
        let named = |located: &rexo_xn::Located| {
            let copies = rexo_xn::read_locators(&region, size);
            copies.contains(&Ok(Some(located.table.sectors())))
        };
        if !found.as_ref().is_ok_and(named) {
            return Err(error);
        }
    }
    if let Ok(located) = &found
        && located.table.sectors() < sectors
    {
        log::info!(
            "disk of {sectors} sectors grew from {}: its extent table stays at its old end, \
             the sectors past it belong to nobody until it is grown",
            located.table.sectors()
        );
    }
    Ok(found)
}

/// Reads the protection of `disk` (idle: nobody holds it): its table ([`find_table`],
/// its locator rewritten when a copy of it is damaged, missing or names another size:
/// [`mend_locator`]), raw, or damaged. A read that fails is an error, not a disk without
/// a table: the table may be there.
fn read(disk: &mut dyn BlockDevice) -> Result<Protection, DeviceError> {
    let unreadable = |error: &DeviceError| {
        log::warn!(
            "disk extent table unreadable: {error}: the disk is refused until a read succeeds"
        );
    };
    Ok(match find_table(disk).inspect_err(unreadable)? {
        Ok(located) if located.mend_locator => mend_locator(disk, located.table),
        Ok(located) => Protection::Table(located.table),
        Err(XnError::NoTable) => Protection::Raw,
        Err(error) => {
            log::warn!("disk extent table: {error}: no request passes until it is formatted");
            Protection::Damaged(error)
        }
    })
}

/// Rewrites the locator of `disk` naming where `table`, found sound, is (a copy of it
/// was damaged, missing or named another size: the disk would be lost if it grew, or
/// taken for a raw one if the other copy were damaged too), and flushes, unless the
/// locator's sectors hold something else ([`locator_hazard`]: a boot loader in the gap
/// after an MBR, which a format without force refuses, so it is left as it is). The
/// table is what protects the disk either way: when the read of those sectors or the
/// write fails it is [`Protection::Unmended`], and the next use tries again.
fn mend_locator(disk: &mut dyn BlockDevice, table: Table) -> Protection {
    let written = locator_hazard(disk).and_then(|hazard| match hazard {
        None => write_locator(disk, &table).map(|()| None),
        Some(hazard) => Ok(Some(hazard)),
    });
    match written {
        Ok(Some(hazard)) => {
            log::warn!(
                "disk extent table: its locator is damaged, missing or names another size, \
                 and is not rewritten: {hazard}"
            );
            Protection::Table(table)
        }
        Ok(None) => {
            log::info!(
                "disk extent table: its locator was damaged, missing or naming another size: \
                 rewritten, naming {} sectors",
                table.sectors()
            );
            Protection::Table(table)
        }
        Err(error) => {
            log::warn!(
                "disk extent table: its locator is damaged, missing or names another size, and \
                 rewriting it failed ({error}): the table protects the disk, and the next use \
                 tries again"
            );
            Protection::Unmended(table)
        }
    }
}

/// Zeroes, at the end of each disk size in `places` (each large enough for a table),
/// the sectors of both copies of the table made for it; flushes.
fn clear_tables(disk: &mut dyn BlockDevice, places: &[u64]) -> Result<(), DeviceError> {
    let size = geometry(&disk.info()).1;
    for &place in places {
        let (start, count) = rexo_xn::table_area(place, size);
        zero(disk, start, count)?;
    }
    Ok(())
}

/// Writes `table` over its copy at the end of `disk` (the older one: [`Table::copy`]),
/// the rest of the copy's sectors zeros, in requests of up to the device's
/// `max_sectors`, and flushes. A crash part way leaves that copy torn and the other
/// one, the table before, is read.
fn write(disk: &mut dyn BlockDevice, table: &Table) -> Result<(), DeviceError> {
    write_sectors(disk, table.copy_start(table.copy()), table.to_bytes())
}

/// Writes `table`'s locator ([`Table::locator`]) over the locator's sectors of `disk`,
/// and flushes.
fn write_locator(disk: &mut dyn BlockDevice, table: &Table) -> Result<(), DeviceError> {
    let (start, _) = locator_area(disk);
    write_sectors(disk, start, table.locator())
}

/// `written`, the result of writing the table, its locator or the zeros under its
/// copies to the disk `protection` protects;
/// when it failed, the protection becomes [`Protection::Unknown`]: part of the new
/// table, or all of it unflushed, may be on the disk, so what the disk holds is read
/// again before the next use, and the table checked is the one found after a reboot.
fn unless_torn(
    protection: &mut Protection,
    written: Result<(), DeviceError>,
) -> Result<(), ApiError> {
    if written.is_err() {
        *protection = Protection::Unknown;
    }
    written.map_err(ApiError::Device)
}

/// Writes `bytes` (a copy of the table, [`rexo_xn::COPY_BYTES`], or the locator's
/// sectors) from sector `start` of `disk`, the rest of their last sector zeros, in
/// requests of up to the device's `max_sectors`, and flushes.
fn write_sectors(
    disk: &mut dyn BlockDevice,
    start: u64,
    mut bytes: Vec<u8>,
) -> Result<(), DeviceError> {
    let info = disk.info();
    let size = geometry(&info).1;
    let count = (bytes.len() as u64).div_ceil(size);
    bytes.resize(count as usize * size as usize, 0);
    for (lba, sectors, done) in requests(start, count, info.max_sectors) {
        let part = &bytes[(done * size) as usize..][..sectors as usize * size as usize];
        let tag = submit_write_exact(disk, 0, (lba, sectors), part.len(), &mut |buffer| {
            buffer.copy_from_slice(part);
        })?;
        wait_for(disk, 0, tag, &mut |_| {})?;
    }
    let tag = disk.submit_flush(0)?;
    wait_for(disk, 0, tag, &mut |_| {})
}

/// The bytes of a request of `sectors` sectors of `size` bytes.
fn request_bytes(sectors: u32, size: u64) -> usize {
    usize::try_from(u64::from(sectors).saturating_mul(size)).unwrap_or(usize::MAX)
}

/// Writes zeros over sectors `start..start + count` of `disk` (idle: nobody holds it), in
/// requests of up to the device's `max_sectors` with up to its `depth` in flight, as
/// [`device::run_windowed`](run_windowed), then flushes, so the zeros are on the disk
/// before anything written after them.
fn zero(disk: &mut dyn BlockDevice, start: u64, count: u64) -> Result<(), DeviceError> {
    let info = disk.info();
    let size = geometry(&info).1;
    let chunk = u64::from(info.max_sectors.max(1));
    let end = start.saturating_add(count);
    let mut at = start;
    run_windowed(
        disk,
        0,
        info.depth,
        &mut Vec::new(),
        &mut |disk| {
            if at >= end {
                return None;
            }
            let sectors = (end - at).min(chunk) as u32;
            let length = request_bytes(sectors, size);
            let tag =
                submit_write_exact(disk, 0, (at, sectors), length, &mut |buffer| buffer.fill(0));
            at += u64::from(sectors);
            Some(tag.map(|tag| (tag, ())))
        },
        &mut |(), result| result.map(|_| ()),
    )??;
    let tag = disk.submit_flush(0)?;
    wait_for(disk, 0, tag, &mut |_| {})
}

/// Whether bringing `protection` up to date needs its disk: it is not read yet, or its
/// locator is still to be rewritten.
fn needs_the_disk(protection: &Protection) -> bool {
    matches!(protection, Protection::Unknown | Protection::Unmended(_))
}

/// Brings `protection`, that of `disk` (idle: nobody holds it), up to date: reads it
/// when unknown ([`read`]; when that fails it stays [`Protection::Unknown`], and the
/// next use reads again), tries again to rewrite its locator when unmended
/// ([`mend_locator`]).
fn refresh(disk: &mut dyn BlockDevice, protection: &mut Protection) -> Result<(), DeviceError> {
    match protection {
        Protection::Unknown => *protection = read(disk)?,
        Protection::Unmended(table) => *protection = mend_locator(disk, table.clone()),
        _ => {}
    }
    Ok(())
}

/// Brings the protection of the disk in `slot` (whose lock is `state`; nobody holds the
/// disk) up to date ([`refresh`]) before it is used, reading or writing the disk
/// outside the slot's lock ([`outside_the_lock`], the slot marked held by
/// [`TABLE_IO`] meanwhile). Returns the lock and the read's error when it failed.
pub(crate) fn refreshed<'a>(
    slot: &'a Slot,
    state: MutexGuard<'a, SlotState>,
) -> (MutexGuard<'a, SlotState>, Result<(), DeviceError>) {
    if !needs_the_disk(&state.protection) {
        return (state, Ok(()));
    }
    let mut protection = state.protection.clone();
    let (mut state, refreshed) =
        outside_the_lock(slot, state, TABLE_IO, |disk| refresh(disk, &mut protection));
    state.protection = protection;
    (state, refreshed.unwrap_or(Ok(())))
}

/// Checks a request of `holder` for `sectors` at `lba` against the table; a request of 0
/// sectors on a disk with a table is out of range, as the drivers answer it.
pub(crate) fn check(
    state: &SlotState,
    holder: &str,
    lba: u64,
    sectors: u32,
    write: bool,
) -> Result<(), DeviceError> {
    let denied = |sector| DeviceError::Denied { sector, write };
    match &state.protection {
        Protection::Raw => Ok(()),
        Protection::Unknown | Protection::Damaged(_) => Err(denied(lba)),
        Protection::Table(table) | Protection::Unmended(table) => table
            .check_access(holder, lba, u64::from(sectors), write)
            .map_err(|error| match error {
                XnError::Denied { sector, .. } => denied(sector),
                XnError::EmptyRequest => DeviceError::OutOfRange {
                    lba,
                    sectors: 0,
                    capacity: table.table_start() + table.table_sectors(),
                },
                _ => denied(lba),
            }),
    }
}

/// The table `protection` checks requests against, or why there is none: the table's
/// damage, or [`XnError::NoTable`].
fn table_of(protection: &Protection) -> Result<&Table, ApiError> {
    match protection {
        Protection::Table(table) | Protection::Unmended(table) => Ok(table),
        Protection::Damaged(error) => Err(ApiError::Extents(*error)),
        Protection::Raw | Protection::Unknown => Err(ApiError::Extents(XnError::NoTable)),
    }
}

/// The name a disk's slot shows as its holder while the kernel zeroes a new extent of
/// it and writes the table that grants it, outside the slot's lock
/// ([`outside_the_lock`]).
const ZEROING: &str = "the kernel (zeroing a new extent)";

/// The name a disk's slot shows as its holder while the kernel reads or writes its
/// extent table (or its locator) outside the slot's lock ([`outside_the_lock`]).
const TABLE_IO: &str = "the kernel (reading or writing the extent table)";

/// Applies `op` to the extent table of `disk` (idle: nobody holds it, and it is out of
/// its slot) as `holder`, `protection` being the disk's: brought up to date first
/// ([`refresh`]), then left as the disk holds it after the change (or its failure);
/// returns the table's extents.
fn change(
    disk: &mut dyn BlockDevice,
    protection: &mut Protection,
    holder: &str,
    op: Option<ExtentOp>,
) -> Result<Vec<DiskExtent>, ApiError> {
    refresh(disk, protection).map_err(ApiError::Device)?;
    let refuse = |error: XnError| ApiError::Extents(error);
    let grow = matches!(op, Some(ExtentOp::Grow { .. }));
    let mut table = match (protection.clone(), &op) {
        (Protection::Raw | Protection::Damaged(_), Some(ExtentOp::Format { force })) => {
            let (sectors, size) = geometry(&disk.info());
            let table = Table::format(sectors, size).map_err(refuse)?;
            let locator = read_locator_sectors(disk).map_err(ApiError::Device)?;
            if !force
                && let Some(hazard) = format_hazard(disk, &locator).map_err(ApiError::Device)?
            {
                return Err(refuse(hazard));
            }
            // Both copies' sectors are zeroed (a sound older table there, of a disk
            // shrunk back to an earlier size, would otherwise be taken after a crash
            // before the new table is written, or win over it by generation) and the
            // locator written, in the order that leaves a damaged disk after a crash
            // at any point, never a raw one nor an older table: a disk with a locator
            // keeps it while its end is zeroed (it names a larger disk, or this one
            // with no table at its end); one without gets its locator first (no
            // sound table can be at its end: the disk would not be raw or damaged).
            let has_locator = rexo_xn::holds_a_locator(&locator, size);
            // Every end a copy of the locator sends a reader to is zeroed with the
            // disk's own (a torn write of the new locator may leave a copy naming it).
            let places = rexo_xn::table_places(&locator, sectors, size);
            if has_locator {
                let written = clear_tables(disk, &places);
                unless_torn(protection, written)?;
                let written = write_locator(disk, &table);
                unless_torn(protection, written)?;
            } else {
                let written = write_locator(disk, &table);
                unless_torn(protection, written)?;
                let written = clear_tables(disk, &places);
                unless_torn(protection, written)?;
            }
            table
        }
        (Protection::Damaged(_), Some(ExtentOp::Unprotect)) => {
            let (sectors, size) = geometry(&disk.info());
            // A format mends a disk that can hold a table; made raw instead, it would
            // open every former extent of every app to whoever opens it.
            if rexo_xn::holds_a_table(sectors, size) {
                return Err(refuse(XnError::FormatInstead));
            }
            // Every sector is zeroed, so no app reads another's once the disk is raw;
            // the locator's last, so a crash part way leaves the disk damaged (no table
            // fits on it for a copy of the locator to send a reader to).
            let (locator, count) = locator_area(disk);
            let after_locator = (locator + count).min(sectors);
            for (start, end) in [
                (0, locator),
                (after_locator, sectors),
                (locator, after_locator),
            ] {
                let written = zero(disk, start, end.saturating_sub(start));
                unless_torn(protection, written)?;
            }
            log::info!("disk extent table: protection given up, the disk zeroed and raw");
            *protection = Protection::Raw;
            return Ok(Vec::new());
        }
        (
            Protection::Table(_) | Protection::Unmended(_),
            Some(ExtentOp::Format { .. } | ExtentOp::Unprotect),
        ) => {
            return Err(refuse(XnError::Corrupt(
                "the disk has a sound table already",
            )));
        }
        (
            Protection::Table(table) | Protection::Unmended(table),
            Some(ExtentOp::Grow { force }),
        ) => {
            let (sectors, size) = geometry(&disk.info());
            let grown = table.grown(sectors).map_err(refuse)?;
            // The locator is written too, after the table: left as it was over data
            // in its sectors, it would send a reader after a reboot to the old end's
            // table, without the changes made since.
            if !force {
                let area = read_area(disk, sectors, size).map_err(ApiError::Device)?;
                let locator = locator_hazard(disk).map_err(ApiError::Device)?;
                if let Some(hazard) = locator.or_else(|| rexo_xn::table_area_hazard(&area)) {
                    return Err(refuse(hazard));
                }
            }
            // The new end's copies are zeroed first (they lie past the old table,
            // `grown` makes sure): a table left there from an earlier life of the
            // disk at this size would win over the grown one by generation.
            let written = clear_tables(disk, &[sectors]);
            unless_torn(protection, written)?;
            grown
        }
        (current, _) => table_of(&current)?.clone(),
    };
    match op {
        None | Some(ExtentOp::Format { .. } | ExtentOp::Grow { .. } | ExtentOp::Unprotect) => {}
        Some(ExtentOp::Allocate { sectors }) => {
            let extent = table.allocate(holder, sectors).map_err(refuse)?;
            // Its sectors may hold a previous owner's data: they are wiped and flushed
            // before the table that grants them is written, so a crash in between
            // leaves them free, and a failed wipe refuses the allocation with the
            // table unchanged.
            zero(disk, extent.start, extent.count).map_err(ApiError::Device)?;
        }
        Some(ExtentOp::Share {
            start,
            count,
            reader,
        }) => table.share(holder, start, count, &reader).map_err(refuse)?,
        Some(ExtentOp::Revoke { reader }) => {
            table.revoke(holder, &reader).map_err(refuse)?;
        }
        // Not wiped here: zeroing at allocation covers every way sectors become free (a
        // free, by the app or after it ended; a format over a raw disk or a damaged
        // table) and a crash right after a free; a revoke frees no sectors.
        Some(ExtentOp::Free { start }) => table.free(holder, start).map_err(refuse)?,
    }
    if Some(&table) != protection.table() {
        let written = write(disk, &table);
        unless_torn(protection, written)?;
        // The locator names the old size until it is written: a crash before that
        // leaves the table at the old end, with the same extents, read (the grow
        // undone; done again, it writes over the table it left at the new end).
        if grow {
            let written = write_locator(disk, &table);
            unless_torn(protection, written)?;
        }
        // A locator still to be rewritten stays so, unless the grow wrote it.
        *protection = match protection {
            Protection::Unmended(_) if !grow => Protection::Unmended(table.clone()),
            _ => Protection::Table(table.clone()),
        };
    }
    Ok(table.entries().to_vec())
}

impl Registry {
    /// Applies `op` to disk `index`'s extent table as `holder` (an app's name), then
    /// returns the table's extents. The disk must be idle (nobody holds it). Listing a
    /// table already read is answered under the slot's lock; anything that reads or
    /// writes the disk (the table, its locator, a wipe) runs outside it, the disk taken
    /// out of its slot and the slot marked held by the kernel ("the kernel (zeroing a
    /// new extent)" for an allocation, "the kernel (reading or writing the extent
    /// table)" otherwise): opening the disk or changing its table meanwhile is refused
    /// as [`ApiError::DeviceBusy`] with that name, and calls that walk every slot do not
    /// wait for the disk. The protection read or written is put in force when the disk
    /// is back.
    pub fn extents(
        &'static self,
        index: usize,
        holder: &str,
        op: Option<ExtentOp>,
    ) -> Result<Vec<DiskExtent>, ApiError> {
        calling_app(self.binder, |_| {
            let slot = self.slot(DeviceKind::Block, index)?;
            let core = self.binder.core_index();
            let state = crate::reentry::lock(slot, core).map_err(ApiError::Device)?;
            if let Some((_, current)) = state.holder {
                return Err(ApiError::DeviceBusy(current));
            }
            if op.is_none() && !needs_the_disk(&state.protection) {
                return table_of(&state.protection).map(|table| table.entries().to_vec());
            }
            let why = match op {
                Some(ExtentOp::Allocate { .. }) => ZEROING,
                _ => TABLE_IO,
            };
            let mut protection = state.protection.clone();
            let (mut state, changed) = outside_the_lock(slot, state, why, |disk| {
                change(disk, &mut protection, holder, op)
            });
            state.protection = protection;
            changed.ok_or(ApiError::NoSuchDevice)?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{disk_of_sectors_holding, raw_sectors};
    use alloc::boxed::Box;
    use rexo_api::testing::{MemoryDisk, SECTOR_SIZE};
    use rexo_devio::Found;

    /// Sectors of the test disks: enough to hold a table.
    const SECTORS: usize = 16384;

    /// A disk of [`SECTORS`] sectors, every byte 0xEE.
    fn disk() -> MemoryDisk {
        MemoryDisk::new(vec![0xEE; SECTORS * SECTOR_SIZE])
    }

    #[test]
    fn a_table_moved_through_buffers_of_another_length_is_an_error_not_a_cut_copy() {
        let table = Table::format(SECTORS as u64, SECTOR_SIZE as u64).unwrap();
        for skew in [-1, -512] {
            let mut disk = disk();
            disk.write_skew = skew;
            let short = write(&mut disk, &table);
            assert!(
                matches!(short, Err(DeviceError::Status { .. })),
                "{short:?}"
            );
            assert!(
                disk.data().iter().all(|&byte| byte == 0xEE),
                "nothing written"
            );
            disk.write_skew = 0;
            write(&mut disk, &table).unwrap();
            disk.read_skew = skew;
            let short = read(&mut disk);
            assert!(
                matches!(short, Err(DeviceError::Status { .. })),
                "{short:?}"
            );
            disk.read_skew = 0;
            assert_eq!(read(&mut disk), Ok(Protection::Table(table.clone())));
        }
    }

    #[test]
    fn zeroing_through_a_buffer_of_another_length_is_an_error_and_writes_nothing() {
        for skew in [-1, 1] {
            let mut disk = disk();
            disk.write_skew = skew;
            let refused = zero(&mut disk, 0, 16);
            assert_eq!(
                refused,
                Err(crate::exact::wrong_length(
                    (8 * SECTOR_SIZE).saturating_add_signed(skew)
                ))
            );
            assert!(
                disk.data().iter().all(|&byte| byte == 0xEE),
                "nothing written"
            );
        }
    }

    /// A read error on one sector of the locator (on disks of 512-byte and of 4 KiB
    /// sectors) leaves the other copy to find the table, and the locator is not
    /// rewritten over the sector that could not be read (the next use tries again); a
    /// read error on both copies' sectors is the disk's error, not a raw disk. The
    /// locator's sectors used to be read in one request only, so one bad sector refused
    /// the disk though the other copy would have served.
    #[test]
    fn a_read_error_on_one_copy_of_the_locator_leaves_the_other() {
        for sector_size in [SECTOR_SIZE as u64, 4096] {
            let split = sector_size / SECTOR_SIZE as u64;
            let mut table = Table::format(SECTORS as u64 / split, sector_size).unwrap();
            table.allocate("fs", 64).unwrap();
            let holding = || disk_of_sectors_holding(&table, table.sectors(), sector_size as usize);
            let (locator, count) = rexo_xn::locator_area(sector_size);
            let read_with = |failing| {
                let mut disk = holding();
                disk.bad_reads = failing;
                read(&mut disk)
            };
            let written = table.locator();
            for bad in locator..locator + count {
                let at = ((bad - locator) * sector_size) as usize;
                let holds_a_copy = written[at..][..sector_size as usize]
                    .iter()
                    .any(|&byte| byte != 0);
                let expected = match holds_a_copy {
                    true => Protection::Unmended(table.clone()),
                    false => Protection::Table(table.clone()),
                };
                assert_eq!(
                    read_with(bad..bad + 1),
                    Ok(expected),
                    "{sector_size}-byte sectors, sector {bad} unreadable"
                );
            }
            let mut unformatted = holding();
            unformatted.data.fill(0);
            unformatted.bad_reads = locator..locator + 1;
            let unknown = read(&mut unformatted);
            assert!(
                matches!(unknown, Err(DeviceError::Status { .. })),
                "{sector_size}-byte sectors, no table, a locator sector unreadable: {unknown:?}"
            );
            let both = read_with(locator..locator + count);
            assert!(
                matches!(both, Err(DeviceError::Status { .. })),
                "{sector_size}-byte sectors, every locator sector unreadable: {both:?}"
            );
        }
    }

    /// A disk of 4 KiB sectors that shrank under 1 MiB, reaching only the first of the
    /// locator's two sectors (the second copy's), is damaged like any disk that shrank,
    /// not raw; one that reaches none of them holds nothing that says it had a table.
    #[test]
    fn a_4_kib_sector_disk_shrunk_under_1_mib_is_damaged_while_it_holds_a_locator() {
        let table = Table::format(2048, 4096).unwrap();
        let (locator, _) = rexo_xn::locator_area(4096);
        let shrunk_to = |sectors: u64| {
            let mut disk = disk_of_sectors_holding(&table, table.sectors(), 4096);
            disk.data.truncate(sectors as usize * 4096);
            read(&mut disk)
        };
        assert_eq!(
            shrunk_to(locator + 1),
            Ok(Protection::Damaged(XnError::WrongDisk {
                table: 2048,
                disk: locator + 1
            }))
        );
        assert_eq!(shrunk_to(locator), Ok(Protection::Raw));
    }

    /// A grow of a disk of 4 KiB sectors whose locator is of the earlier layout (both
    /// copies in its last sector) beside data in the sector before it is refused
    /// without force, that data left as it is, and writes the locator over it when
    /// forced, as a format does. The grow used to write the locator over that data,
    /// which a read of the table leaves as it is.
    #[test]
    fn a_grow_beside_data_in_the_locators_sectors_leaves_it_unless_forced() {
        let mut table = Table::format(1024, 4096).unwrap();
        table.allocate("fs", 64).unwrap();
        let mut disk = disk_of_sectors_holding(&table, 2048, 4096);
        let (locator, count) = rexo_xn::locator_area(4096);
        let (before, last) = (locator as usize * 4096, (locator as usize + 1) * 4096);
        let copy = &table.locator()[4096..6144];
        disk.data[last..last + 2048].copy_from_slice(copy);
        disk.data[last + 2048..last + 4096].copy_from_slice(copy);
        disk.data[before..last].fill(0xB0);
        let held = disk.data[before..last + 4096].to_vec();
        let registry = crate::tests::registry_with(Found::Block(Box::new(disk)), "memory");
        let locators = || raw_sectors(registry, locator, count);
        assert_eq!(
            registry.extents(0, "fs", None),
            Ok(table.entries().to_vec())
        );
        assert_eq!(locators(), held, "read: left as it is");
        let grow = |force| registry.extents(0, "fs", Some(ExtentOp::Grow { force }));
        assert_eq!(
            grow(false),
            Err(ApiError::Extents(XnError::InUse(
                "the locator's sectors (at the end of the first MiB) hold data"
            )))
        );
        assert_eq!(locators(), held, "refused: left as it is");
        assert_eq!(grow(true), Ok(table.entries().to_vec()));
        let grown = table.grown(2048).unwrap();
        assert_eq!(locators(), grown.locator(), "forced: written over");
    }
}
