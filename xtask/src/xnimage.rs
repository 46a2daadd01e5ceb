//! The host's reading of a disk image's extent table (`libs/xn`), for the QEMU case
//! that drives the monitor's `extents` on a fresh disk: after the run the table on the
//! image must be the one the monitor listed last, the table a reboot would find.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use rexo_xn::{COPIES, Table};

use crate::Result;

/// Bytes per sector of the disks QEMU emulates for the case.
const SECTOR_BYTES: u64 = 512;

/// The extent table on the disk image at `path`, read by `libs/xn`'s own parser; an
/// image too small to hold one, or whose locator's copies do not both name its size (the
/// table would be lost if the disk grew), is an error.
pub fn read_table(path: &Path) -> Result<Table> {
    let mut file =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let length = file
        .metadata()
        .map_err(|e| format!("cannot size {}: {e}", path.display()))?
        .len();
    let sectors = length / SECTOR_BYTES;
    if !rexo_xn::holds_a_table(sectors, SECTOR_BYTES) {
        return Err(format!(
            "{} is too small ({length} bytes) to hold an extent table",
            path.display()
        ));
    }
    let mut read = |what: &str, sector: u64, len: u64| {
        let mut bytes = vec![0u8; len as usize];
        file.seek(SeekFrom::Start(sector * SECTOR_BYTES))
            .and_then(|_| file.read_exact(&mut bytes))
            .map(|_| bytes)
            .map_err(|e| format!("cannot read the {what} of {}: {e}", path.display()))
    };
    let (start, count) = rexo_xn::table_area(sectors, SECTOR_BYTES);
    let bytes = read("table", start, count * SECTOR_BYTES)?;
    let (a, b) = bytes.split_at(bytes.len() / COPIES);
    let table = Table::parse([a, b], sectors, SECTOR_BYTES)
        .map_err(|e| format!("the extent table of {}: {e}", path.display()))?;
    let (start, count) = rexo_xn::locator_area(SECTOR_BYTES);
    let locator = read("locator", start, count * SECTOR_BYTES)?;
    match rexo_xn::read_locators(&locator, SECTOR_BYTES) {
        [Ok(Some(first)), Ok(Some(second))] if first == sectors && second == sectors => Ok(table),
        found => Err(format!(
            "the extent table's locator on {} is {found:?}, not two copies naming its {sectors} \
             sectors",
            path.display()
        )),
    }
}

/// Writes an image of `bytes` at `path` holding `table` (made for `bytes` or fewer) at
/// the end of the disk it was made for, and its locator.
fn write_image(path: &Path, bytes: u64, table: &Table) -> Result<()> {
    let mut image = vec![0u8; bytes as usize];
    let copy = (table.copy_start(table.copy()) * SECTOR_BYTES) as usize;
    let locator = (rexo_xn::locator_area(SECTOR_BYTES).0 * SECTOR_BYTES) as usize;
    for (at, what) in [(copy, table.to_bytes()), (locator, table.locator())] {
        image
            .get_mut(at..at + what.len())
            .ok_or_else(|| format!("a table made for a larger disk than {bytes} bytes"))?
            .copy_from_slice(&what);
    }
    std::fs::write(path, image).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Writes an image of `bytes` at `path` as a disk that grew after its format: an extent
/// table made for half its size, with sectors 0+64 held by the monitor, and its locator.
pub fn create_grown(path: &Path, bytes: u64) -> Result<()> {
    let mut table = Table::format(bytes / 2 / SECTOR_BYTES, SECTOR_BYTES)
        .map_err(|e| format!("an extent table for half of {bytes} bytes: {e}"))?;
    table
        .allocate("monitor", 64)
        .map_err(|e| format!("an extent for the monitor: {e}"))?;
    write_image(path, bytes, &table)
}

/// The table's extents as the monitor's `extents` lists them, one line each.
fn listing(table: &Table) -> Vec<String> {
    table
        .entries()
        .iter()
        .map(|e| {
            let rights = if e.is_share() {
                "read-only share"
            } else {
                "read-write"
            };
            format!("sectors {}+{} {} {rights}", e.start, e.count, e.holder)
        })
        .collect()
}

/// The last listing of disk `disk` in the monitor's output `serial`: the lines after
/// its last `disk N: K extent(s)` line, trimmed.
fn last_listing(serial: &[&str], disk: usize) -> Result<Vec<String>> {
    let head = format!("disk {disk}: ");
    let (at, count) = serial
        .iter()
        .enumerate()
        .rev()
        .find_map(|(at, line)| {
            let after = &line[line.find(&head)? + head.len()..];
            let count = after
                .trim()
                .strip_suffix(" extent(s)")?
                .parse::<usize>()
                .ok()?;
            Some((at, count))
        })
        .ok_or_else(|| format!("the monitor never listed disk {disk}'s extents"))?;
    let lines: Vec<String> = serial
        .iter()
        .skip(at + 1)
        .take(count)
        .map(|line| line.trim().to_string())
        .collect();
    if lines.len() < count {
        return Err(format!(
            "the monitor's last listing of disk {disk} names {count} extent(s) but shows {}",
            lines.len()
        ));
    }
    Ok(lines)
}

/// Checks that the extent table on the image at `path` (disk `disk`) holds exactly the
/// extents of the monitor's last listing of that disk in `serial`.
pub fn check_after_monitor(path: &Path, disk: usize, serial: &[&str]) -> Result<()> {
    let on_disk = listing(&read_table(path)?);
    let listed = last_listing(serial, disk)?;
    if on_disk != listed {
        return Err(format!(
            "the image's extent table holds [{}], the monitor listed [{}]",
            on_disk.join("; "),
            listed.join("; ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sectors of the test images (8 MiB).
    const SECTORS: u64 = 16384;

    /// A test image in a folder of its own, removed with it.
    struct TestImage(std::path::PathBuf);

    impl std::ops::Deref for TestImage {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl AsRef<Path> for TestImage {
        fn as_ref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TestImage {
        fn drop(&mut self) {
            if let Some(dir) = self.0.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    /// An image of [`SECTORS`] in a fresh folder holding `table` at its end and its
    /// locator.
    fn image_with(name: &str, table: &Table) -> TestImage {
        let dir = std::env::temp_dir().join(format!("rexo-xnimage-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("disk.img");
        write_image(&path, SECTORS * SECTOR_BYTES, table).unwrap();
        TestImage(path)
    }

    /// The table the case's input makes: 0+64 owned by the monitor, 0+8 shared with
    /// hello (64+8 allocated, then freed).
    fn the_cases_table() -> Table {
        let mut table = Table::format(SECTORS, SECTOR_BYTES).unwrap();
        table.allocate("monitor", 64).unwrap();
        table.allocate("monitor", 8).unwrap();
        table.share("monitor", 0, 8, "hello").unwrap();
        table.free("monitor", 64).unwrap();
        table
    }

    /// Serial output as the monitor prints it (with the typed commands echoed).
    const SERIAL: &[&str] = &[
        "> extents 0 alloc 8",
        "disk 0: 2 extent(s)",
        "  sectors 0+64 monitor read-write",
        "  sectors 64+8 monitor read-write",
        "> extents 0",
        "disk 0: 2 extent(s)\r",
        "  sectors 0+64 monitor read-write\r",
        "  sectors 0+8 hello read-only share\r",
        "> poweroff",
    ];

    #[test]
    fn the_table_on_the_image_matches_the_last_listing() {
        let path = image_with("match", &the_cases_table());
        assert_eq!(check_after_monitor(&path, 0, SERIAL), Ok(()));
    }

    #[test]
    fn a_table_that_differs_from_the_last_listing_is_refused() {
        let mut table = the_cases_table();
        table.revoke("monitor", "hello").unwrap();
        let path = image_with("differs", &table);
        let why = check_after_monitor(&path, 0, SERIAL).unwrap_err();
        assert!(why.contains("the monitor listed"), "{why}");
        // An earlier listing is not the one compared.
        let mut earlier = the_cases_table();
        earlier.allocate("monitor", 8).unwrap();
        earlier.revoke("monitor", "hello").unwrap();
        let path = image_with("earlier", &earlier);
        assert!(check_after_monitor(&path, 0, SERIAL).is_err());
    }

    #[test]
    fn an_image_without_a_table_or_a_run_without_a_listing_is_refused() {
        let path = image_with("raw", &the_cases_table());
        std::fs::write(&path, vec![0u8; (SECTORS * SECTOR_BYTES) as usize]).unwrap();
        let why = check_after_monitor(&path, 0, SERIAL).unwrap_err();
        assert!(why.contains("no extent table"), "{why}");
        let path = image_with("unlisted", &the_cases_table());
        let why = check_after_monitor(&path, 1, SERIAL).unwrap_err();
        assert!(why.contains("never listed disk 1"), "{why}");
        let cut = &SERIAL[..SERIAL.len() - 2];
        let why = check_after_monitor(&path, 0, cut).unwrap_err();
        assert!(why.contains("shows 1"), "{why}");
    }

    #[test]
    fn an_image_missing_one_copy_of_its_locator_is_refused() {
        for copy in [0, 2048] {
            let path = image_with("unlocated", &the_cases_table());
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[(1 << 20) - 4096 + copy] = 0;
            std::fs::write(&path, bytes).unwrap();
            let why = read_table(&path).unwrap_err();
            assert!(why.contains("locator"), "copy at {copy}: {why}");
        }
    }

    /// The grown image holds a table the host finds only through its locator: at the
    /// image's end there is none.
    #[test]
    fn a_grown_image_holds_its_table_at_the_end_of_its_first_half() {
        let path = image_with("grown", &the_cases_table());
        create_grown(&path, SECTORS * SECTOR_BYTES).unwrap();
        let why = read_table(&path).unwrap_err();
        assert!(why.contains("no extent table"), "{why}");
        let image = std::fs::read(&path).unwrap();
        let (locator, count) = rexo_xn::locator_area(SECTOR_BYTES);
        let at = |sector: u64| (sector * SECTOR_BYTES) as usize;
        let (sectors, found) = (SECTORS, &image[at(locator)..at(locator + count)]);
        let located = rexo_xn::find(found, sectors, SECTOR_BYTES, |made_for| {
            let (start, count) = rexo_xn::table_area(made_for, SECTOR_BYTES);
            let (a, b) = image[at(start)..at(start + count)].split_at(rexo_xn::COPY_BYTES);
            Ok::<_, ()>(Table::parse([a, b], made_for, SECTOR_BYTES))
        })
        .unwrap()
        .unwrap();
        assert!(!located.mend_locator, "both copies name the first half");
        assert_eq!(located.table.sectors(), sectors / 2);
        assert_eq!(listing(&located.table), ["sectors 0+64 monitor read-write"]);
    }

    #[test]
    fn an_image_too_small_for_a_table_is_refused() {
        let path = image_with("small", &the_cases_table());
        std::fs::write(&path, vec![0u8; (8 * SECTOR_BYTES) as usize]).unwrap();
        let why = read_table(&path).unwrap_err();
        assert!(why.contains("too small"), "{why}");
    }
}
