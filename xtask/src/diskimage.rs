//! Disk images for the driver tests: raw files created fresh for each run, attached to
//! QEMU as a case says, and checked afterwards sector by sector against what
//! `diskcheck` (apps/devcheck/src/disk.rs) writes: [`pattern::sector`] of its LBA in
//! every 512-byte sector.

use crate::Result;
use rexo_devcheck::pattern;
use std::path::Path;

/// Bytes per sector of the images (every emulated controller in the tests uses 512).
pub const SECTOR: usize = 512;

/// How an image is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attach {
    /// `-drive file=IMG,if=none,id=dK,format=raw -device DEVICE,drive=dK`: `DEVICE` is
    /// the model with its properties (`nvme,serial=rexo0`, `virtio-blk-pci`,
    /// `ide-hd,bus=ide.0` for the q35's AHCI).
    Device(&'static str),
    /// As [`Attach::Device`], with QEMU's I/O throttling at [`THROTTLED_IOPS`] requests
    /// per second: each request stays in the device for milliseconds, so a core can be
    /// seen sleeping until a completion's interrupt wakes it (QEMU's own completions
    /// from the page cache come before the guest's next look).
    Throttled(&'static str),
    /// `-drive file=IMG,if=ide,index=K,format=raw`: the PIIX IDE controller of `-machine
    /// pc` (index 0 primary master, 1 primary slave, 2 secondary master, ...), throttled
    /// as [`Attach::Throttled`] (so a core is seen sleeping until IRQ 14 wakes it).
    LegacyIde,
    /// As [`Attach::Device`], through QEMU's `blkdebug` layer, which fails every write
    /// that reaches sector [`FAULTY_SECTOR`] with EIO (`werror=report`, so the guest
    /// sees the error), as a bad sector does: the device completes that request with an
    /// error status, and again if a driver retries it. The image is not checked
    /// afterwards.
    Faulty(&'static str),
}

/// Requests per second of a [`Attach::Throttled`] disk.
pub const THROTTLED_IOPS: u32 = 200;

/// The sector at which a [`Attach::Faulty`] disk fails a write.
pub const FAULTY_SECTOR: u64 = 4096;

/// `blkdebug`'s rules for an [`Attach::Faulty`] disk: EIO on every write at
/// [`FAULTY_SECTOR`].
fn blkdebug_rules() -> String {
    format!("[inject-error]\nevent = \"write_aio\"\nerrno = \"5\"\nsector = \"{FAULTY_SECTOR}\"\n")
}

/// QEMU's arguments that attach the image `path` as disk number `index`.
pub fn args(index: usize, attach: Attach, path: &Path) -> Result<Vec<String>> {
    let file = crate::qemu::option_path(path)?;
    Ok(match attach {
        Attach::Device(device) => vec![
            "-drive".into(),
            format!("file={file},if=none,id=d{index},format=raw"),
            "-device".into(),
            format!("{device},drive=d{index}"),
        ],
        Attach::Throttled(device) => vec![
            "-drive".into(),
            format!(
                "file={file},if=none,id=d{index},format=raw,throttling.iops-total={THROTTLED_IOPS}"
            ),
            "-device".into(),
            format!("{device},drive=d{index}"),
        ],
        Attach::LegacyIde => vec![
            "-drive".into(),
            format!(
                "file={file},if=ide,index={index},format=raw,throttling.iops-total={THROTTLED_IOPS}"
            ),
        ],
        Attach::Faulty(device) => {
            let rules = path.with_extension("blkdebug");
            std::fs::write(&rules, blkdebug_rules())
                .map_err(|e| format!("cannot write {}: {e}", rules.display()))?;
            let rules = crate::qemu::option_path(&rules)?;
            vec![
                "-drive".into(),
                format!(
                    "file=blkdebug:{rules}:{file},if=none,id=d{index},format=raw,werror=report,rerror=report"
                ),
                "-device".into(),
                format!("{device},drive=d{index}"),
            ]
        }
    })
}

/// Creates (or truncates) `path` as a zeroed image of `bytes` bytes.
pub fn create(path: &Path, bytes: u64) -> Result<()> {
    let file = std::fs::File::create(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.set_len(bytes)
        .map_err(|e| format!("cannot size {} to {bytes} bytes: {e}", path.display()))
}

/// What the check of one image found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageReport {
    /// Sectors in the image.
    pub sectors: u64,
    /// Sectors that do not hold their pattern.
    pub bad: u64,
    /// What is wrong with the first of them.
    pub first: Option<String>,
}

impl ImageReport {
    /// `None` when every sector holds its pattern, else a line saying what does not.
    pub fn problem(&self) -> Option<String> {
        self.first.as_ref().map(|first| {
            format!(
                "{} of {} sectors do not hold their pattern; first: {first}",
                self.bad, self.sectors
            )
        })
    }
}

/// Checks every sector of the image bytes `data` (a partial last sector counts as bad).
pub fn check_bytes(data: &[u8]) -> ImageReport {
    let mut report = ImageReport {
        sectors: data.len().div_ceil(SECTOR) as u64,
        bad: 0,
        first: None,
    };
    for (lba, sector) in data.chunks(SECTOR).enumerate() {
        let why = if sector.len() < SECTOR {
            Some(format!(
                "sector {lba}: only {} bytes (the image is not whole sectors)",
                sector.len()
            ))
        } else {
            pattern::check_sector(lba as u64, sector)
        };
        if let Some(why) = why {
            report.bad += 1;
            report.first.get_or_insert(why);
        }
    }
    report
}

/// Reads and checks the image at `path`.
pub fn check(path: &Path) -> Result<ImageReport> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if data.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(check_bytes(&data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(sectors: usize) -> Vec<u8> {
        let mut data = vec![0u8; sectors * SECTOR];
        for (lba, sector) in data.chunks_mut(SECTOR).enumerate() {
            pattern::sector(lba as u64, sector);
        }
        data
    }

    #[test]
    fn a_fully_written_image_passes() {
        let report = check_bytes(&written(64));
        assert_eq!(report.problem(), None);
        assert_eq!((report.sectors, report.bad), (64, 0));
    }

    #[test]
    fn damage_is_counted_and_the_first_named() {
        let mut data = written(64);
        data[10 * SECTOR + 100] ^= 1;
        data[20 * SECTOR..21 * SECTOR].fill(0);
        let report = check_bytes(&data);
        assert_eq!(report.bad, 2);
        let problem = report.problem().unwrap();
        assert!(
            problem.starts_with(
                "2 of 64 sectors do not hold their pattern; first: sector 10: byte 100"
            ),
            "{problem}"
        );
        // A zeroed image (the guest wrote nothing, or nothing reached the file).
        let report = check_bytes(&vec![0; 8 * SECTOR]);
        assert_eq!(report.bad, 8);
        assert!(report.first.unwrap().starts_with("sector 0: byte 8"));
        // A sector written at the wrong place.
        let mut data = written(8);
        data.copy_within(3 * SECTOR..4 * SECTOR, 5 * SECTOR);
        assert_eq!(
            check_bytes(&data).first.as_deref(),
            Some("sector 5: holds the LBA 3")
        );
        let report = check_bytes(&written(2)[..SECTOR + 10]);
        assert!(report.first.unwrap().contains("only 10 bytes"));
    }

    #[test]
    fn images_are_created_and_read_back() {
        let dir = crate::root().join("target/test-scratch");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("diskimage-unit.img");
        std::fs::write(&path, written(16)).unwrap();
        assert_eq!(check(&path).unwrap().problem(), None);
        create(&path, 16 * SECTOR as u64).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 16 * SECTOR as u64);
        assert_eq!(check(&path).unwrap().bad, 16);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn qemu_arguments() {
        let path = Path::new("/logs/a,b.img");
        assert_eq!(
            args(1, Attach::Device("nvme,serial=rexo1"), path)
                .unwrap()
                .join(" "),
            "-drive file=/logs/a,,b.img,if=none,id=d1,format=raw -device nvme,serial=rexo1,drive=d1"
        );
        assert_eq!(
            args(
                0,
                Attach::Throttled("ide-hd,bus=ide.0"),
                Path::new("/x.img")
            )
            .unwrap()
            .join(" "),
            "-drive file=/x.img,if=none,id=d0,format=raw,throttling.iops-total=200 -device ide-hd,bus=ide.0,drive=d0"
        );
        assert_eq!(
            args(0, Attach::LegacyIde, Path::new("/x.img"))
                .unwrap()
                .join(" "),
            "-drive file=/x.img,if=ide,index=0,format=raw,throttling.iops-total=200"
        );
    }
}
