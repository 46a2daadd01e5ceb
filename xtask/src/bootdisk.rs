//! Bootable disk images (`cargo xtask disk partition ... --boot`): GRUB installed for
//! both firmwares on an MBR disk, loading the kernel through Multiboot2.
//!
//! - BIOS: GRUB's `boot.img` is the MBR's code (the partition table kept), and its core
//!   image (`diskboot.img` first, then the decompressor, the kernel and the modules
//!   ([`MODULES`] and `biosdisk`), made by `grub-mkimage`) sits in the sectors between the MBR and
//!   the first partition, as `grub-install` would put it. Two numbers tie them
//!   together: the MBR's LBA of the core's first sector, and the core's block list
//!   (the sectors after its first one).
//! - UEFI: partition 1 is an EFI system partition (MBR type 0xEF, FAT, made by
//!   `mformat`) whose `/EFI/BOOT/BOOTX64.EFI` is GRUB for x86-64 UEFI, the removable
//!   media path every firmware tries.
//!
//! Both GRUBs read `/boot/grub/grub.cfg` and the kernel `/boot/rexo` from that
//! partition: the BIOS one through the prefix `(,msdos1)/boot/grub` (the boot drive's
//! first partition), the UEFI one relative to the partition it was loaded from. The
//! modules both need are built into their images, so the partition holds no module
//! folders.
//!
//! Facts from GRUB's i386-pc boot sector layout: the core's LBA is a little-endian u64
//! at byte 0x5C of `boot.img`; bytes 0x1B8-0x1FF (disk signature, table, 0x55AA) are
//! the disk's own; the last 12 bytes of `diskboot.img` are a block list entry (start
//! LBA u64, sector count u16, load segment u16 = 0x0820), preset to start at LBA 2.

use crate::Result;
use crate::staged::WorkTree;
use std::path::Path;
use std::process::Command;

/// The modules both GRUB images hold: MBR partitions, FAT, the configuration file, the
/// serial console, Multiboot2 and video for a framebuffer (the BIOS one adds `biosdisk`,
/// the disk through the BIOS; under UEFI the firmware reads the disk).
const MODULES: &[&str] = &[
    "part_msdos",
    "fat",
    "normal",
    "configfile",
    "serial",
    "terminal",
    "multiboot2",
    "all_video",
];
/// GRUB's BIOS boot sector.
const BOOT_IMG: &str = "/usr/lib/grub/i386-pc/boot.img";

/// Bytes in a sector.
const SECTOR: usize = 512;
/// Where `boot.img` keeps the LBA of the core image's first sector.
const KERNEL_SECTOR: usize = 0x5C;
/// Where the disk's own bytes of the MBR start (disk signature, then the table).
const DISK_OWN: usize = 0x1B8;
/// The block list entry at the end of the core's first sector.
const BLOCK_LIST: usize = SECTOR - 12;
/// The load segment `diskboot.img`'s block list carries.
const LOAD_SEGMENT: u16 = 0x0820;

/// The MBR partition type of an EFI system partition.
pub const TYPE_EFI_SYSTEM: u8 = 0xEF;

/// Room for GRUB's UEFI image, the configuration and the FAT's own tables, beyond the
/// kernel.
const BOOT_ROOM: u64 = 8 << 20;

/// The size of a boot partition for a kernel of `kernel_bytes`, in whole MiB.
pub fn partition_bytes(kernel_bytes: u64) -> u64 {
    (kernel_bytes + BOOT_ROOM).next_multiple_of(1 << 20)
}

/// [`partition_bytes`] for the kernel ELF at `elf`.
pub fn partition_bytes_for(elf: &Path) -> Result<u64> {
    let metadata = std::fs::metadata(elf).map_err(|e| format!("{}: {e}", elf.display()))?;
    Ok(partition_bytes(metadata.len()))
}

/// The MBR for `sector0` (the disk's sector 0, holding its partition table) with
/// `boot_img`'s code in front, pointing at a core image at LBA 1.
pub fn boot_sector(boot_img: &[u8], sector0: &[u8]) -> Result<[u8; SECTOR]> {
    if boot_img.len() != SECTOR || boot_img[SECTOR - 2..] != [0x55, 0xAA] {
        return Err(format!(
            "{BOOT_IMG} is not GRUB's 512-byte boot sector; reinstall grub-pc-bin"
        ));
    }
    let mut mbr: [u8; SECTOR] = sector0
        .try_into()
        .map_err(|_| "sector 0 must be 512 bytes".to_string())?;
    mbr[..DISK_OWN].copy_from_slice(&boot_img[..DISK_OWN]);
    mbr[KERNEL_SECTOR..KERNEL_SECTOR + 8].copy_from_slice(&1u64.to_le_bytes());
    Ok(mbr)
}

/// `core` (as `grub-mkimage -O i386-pc` wrote it) padded to whole sectors, with its
/// block list naming the sectors after its first, for a core at LBA 1 that must end
/// before `first_partition` (an LBA).
pub fn core_image(core: &[u8], first_partition: u64) -> Result<Vec<u8>> {
    let segment_at = BLOCK_LIST + 10;
    if core.len() < SECTOR
        || u64::from_le_bytes(core[BLOCK_LIST..BLOCK_LIST + 8].try_into().unwrap()) != 2
        || u16::from_le_bytes([core[segment_at], core[segment_at + 1]]) != LOAD_SEGMENT
    {
        return Err(
            "grub-mkimage's core image does not start with diskboot.img's block list".into(),
        );
    }
    let sectors = core.len().div_ceil(SECTOR);
    if 1 + sectors as u64 > first_partition {
        return Err(format!(
            "GRUB's core image ({sectors} sectors) does not fit before the first partition (LBA {first_partition})"
        ));
    }
    let rest = u16::try_from(sectors - 1).map_err(|_| "GRUB's core image is too large")?;
    let mut image = core.to_vec();
    image.resize(sectors * SECTOR, 0);
    image[BLOCK_LIST + 8..BLOCK_LIST + 10].copy_from_slice(&rest.to_le_bytes());
    Ok(image)
}

/// Runs `program` with `args`, naming it and its error output when it fails.
fn run(program: &str, args: &[&str]) -> Result<()> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program} ({e}); install grub-common and mtools"))?;
    if !output.status.success() {
        return Err(format!(
            "{program} {} failed ({}):\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

/// `grub-mkimage` for `format` with `prefix`, [`MODULES`] and `more`, written to `out`.
fn mkimage(format: &str, prefix: &str, more: &[&str], out: &Path) -> Result<()> {
    let out = out.to_str().ok_or("the image's path is not UTF-8")?;
    let mut args = vec!["-O", format, "-p", prefix, "-o", out];
    args.extend(MODULES.iter().chain(more));
    run("grub-mkimage", &args)
}

/// Installs GRUB and `kernel` (with the command line `append`, which
/// `image::check_append` accepted) on the image at `path`, whose sector 0 already holds
/// a partition table with partition 1 of `sectors` sectors from LBA `first`, reserved
/// for booting (its bytes are replaced by a FAT).
pub fn install(path: &Path, kernel: &Path, append: &str, first: u64, sectors: u64) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let io =
        |what: &str, at: &Path, e: std::io::Error| format!("cannot {what} {}: {e}", at.display());
    // Removed when dropped, so on every path out (a GRUB or mtools tool that fails too).
    let tree = WorkTree::create(path.with_extension("boot-tree"))?;
    let work = tree.path();
    let core_path = work.join("core.img");
    let efi = work.join("BOOTX64.EFI");
    let cfg = work.join("grub.cfg");
    let fat = work.join("boot.fat");
    mkimage("i386-pc", "(,msdos1)/boot/grub", &["biosdisk"], &core_path)?;
    mkimage("x86_64-efi", "/boot/grub", &[], &efi)?;
    std::fs::write(&cfg, crate::image::grub_cfg(append, &[])).map_err(|e| io("write", &cfg, e))?;

    // The FAT, made apart and then copied into partition 1.
    let file = std::fs::File::create(&fat).map_err(|e| io("create", &fat, e))?;
    file.set_len(sectors * SECTOR as u64)
        .map_err(|e| io("size", &fat, e))?;
    let fat_arg = fat.to_str().ok_or("the image's path is not UTF-8")?;
    let (total, hidden) = (sectors.to_string(), first.to_string());
    run(
        "mformat",
        &[
            "-i", fat_arg, "-T", &total, "-h", "64", "-s", "32", "-H", &hidden, "::",
        ],
    )?;
    run(
        "mmd",
        &[
            "-i",
            fat_arg,
            "::/boot",
            "::/boot/grub",
            "::/EFI",
            "::/EFI/BOOT",
        ],
    )?;
    let text = |p: &Path| p.to_str().map(String::from).ok_or("a path is not UTF-8");
    for (from, to) in [
        (text(kernel)?, "::/boot/rexo"),
        (text(&cfg)?, "::/boot/grub/grub.cfg"),
        (text(&efi)?, "::/EFI/BOOT/BOOTX64.EFI"),
    ] {
        run("mcopy", &["-i", fat_arg, &from, to])?;
    }

    let disk = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io("open", path, e))?;
    let mut sector0 = [0u8; SECTOR];
    disk.read_exact_at(&mut sector0, 0)
        .map_err(|e| io("read", path, e))?;
    let boot_img = std::fs::read(BOOT_IMG).map_err(|e| io("read", Path::new(BOOT_IMG), e))?;
    let mbr = boot_sector(&boot_img, &sector0)?;
    let core = std::fs::read(&core_path).map_err(|e| io("read", &core_path, e))?;
    let core = core_image(&core, first)?;
    let fat_bytes = std::fs::read(&fat).map_err(|e| io("read", &fat, e))?;
    disk.write_all_at(&core, SECTOR as u64)
        .and_then(|()| disk.write_all_at(&fat_bytes, first * SECTOR as u64))
        .and_then(|()| disk.write_all_at(&mbr, 0))
        .map_err(|e| io("write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_boot_img() -> Vec<u8> {
        let mut img = vec![0x90u8; SECTOR];
        img[SECTOR - 2..].copy_from_slice(&[0x55, 0xAA]);
        img
    }

    fn fake_core(sectors: usize) -> Vec<u8> {
        let mut core = vec![7u8; sectors * SECTOR - 100];
        core[BLOCK_LIST..BLOCK_LIST + 8].copy_from_slice(&2u64.to_le_bytes());
        core[BLOCK_LIST + 8..BLOCK_LIST + 10].copy_from_slice(&0u16.to_le_bytes());
        core[BLOCK_LIST + 10..BLOCK_LIST + 12].copy_from_slice(&LOAD_SEGMENT.to_le_bytes());
        core
    }

    #[test]
    fn the_boot_sector_keeps_the_table_and_points_at_lba_1() {
        let mut sector0 = [0u8; SECTOR];
        sector0[DISK_OWN..].fill(0xAB);
        let mbr = boot_sector(&fake_boot_img(), &sector0).unwrap();
        assert_eq!(mbr[..KERNEL_SECTOR], [0x90; KERNEL_SECTOR]);
        assert_eq!(mbr[KERNEL_SECTOR..KERNEL_SECTOR + 8], 1u64.to_le_bytes());
        assert!(
            mbr[DISK_OWN..].iter().all(|&b| b == 0xAB),
            "the table is the disk's"
        );
    }

    #[test]
    fn a_wrong_boot_sector_is_refused() {
        let sector0 = [0u8; SECTOR];
        assert!(
            boot_sector(&[0u8; SECTOR], &sector0)
                .unwrap_err()
                .contains("grub-pc-bin")
        );
        assert!(boot_sector(&fake_boot_img()[..100], &sector0).is_err());
        assert!(boot_sector(&fake_boot_img(), &sector0[..10]).is_err());
    }

    #[test]
    fn the_core_names_its_other_sectors() {
        let image = core_image(&fake_core(300), 2048).unwrap();
        assert_eq!(image.len(), 300 * SECTOR);
        assert_eq!(image[BLOCK_LIST..BLOCK_LIST + 8], 2u64.to_le_bytes());
        assert_eq!(image[BLOCK_LIST + 8..BLOCK_LIST + 10], 299u16.to_le_bytes());
        assert_eq!(
            image[BLOCK_LIST + 10..BLOCK_LIST + 12],
            LOAD_SEGMENT.to_le_bytes()
        );
    }

    #[test]
    fn a_core_that_does_not_fit_or_is_not_grubs_is_refused() {
        assert!(
            core_image(&fake_core(2048), 2048)
                .unwrap_err()
                .contains("does not fit")
        );
        assert!(core_image(&fake_core(2047), 2048).is_ok());
        let mut other = fake_core(10);
        other[BLOCK_LIST] = 5;
        assert!(core_image(&other, 2048).unwrap_err().contains("diskboot"));
        assert!(core_image(&[0u8; 100], 2048).is_err());
    }

    /// A tool that fails part way (here `mcopy`, given a kernel that is not there, after
    /// both `grub-mkimage` runs) leaves no `IMAGE.boot-tree` behind: it was removed only
    /// after a complete install.
    #[test]
    fn a_failing_install_leaves_no_boot_tree() {
        let dir = std::env::temp_dir().join(format!("rexo-boot-tree-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let image = dir.join("disk.img");
        std::fs::write(&image, vec![0u8; 1 << 20]).unwrap();
        let err = install(&image, &dir.join("no-kernel"), "", 2048, 16384).unwrap_err();
        assert!(err.contains("failed"), "{err}");
        assert!(!dir.join("disk.boot-tree").exists(), "the tree was left");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn boot_partitions_hold_the_kernel_and_grub() {
        assert_eq!(partition_bytes(0), 8 << 20);
        assert_eq!(partition_bytes((20 << 20) + 1), 29 << 20);
    }
}
