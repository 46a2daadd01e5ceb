//! `cargo xtask disk`: make and inspect BMFS disk images on the host, with the same
//! format crate (`rexo-bmfs`) the monitor's `ls` and `load FILE` use in Rexo.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use rexo_bmfs::{BLOCK, BmfsError, Disk, MIN_BLOCKS, Volume};

use crate::Result;
use crate::fsimage::{CHUNK, HostFile, PutSource};
use crate::staged::Staged;

/// The usage of `disk`.
pub const USAGE: &str = "  disk create IMAGE SIZE [--force]
                                 a new image of SIZE (e.g. 64M, 1G) holding an empty BMFS
                                 (--force: replace a file IMAGE that holds anything)
  disk partition IMAGE SIZE BMFS [--force]
                                 a new image of SIZE with a partition table: BMFS of
                                 BMFS bytes, then the Rexo file system (`cargo xtask fs`)
                                 in the rest; the other commands find their partition
  disk partition IMAGE SIZE BMFS --boot [--append WORDS] [--force]
                                 the same after a boot partition: GRUB for BIOS and UEFI
                                 and the kernel (`cargo xtask build`'s), started with the
                                 command line WORDS (e.g. app=httpd); boots from any disk
                                 the firmware can read (IDE, AHCI, virtio-blk, NVMe)
  disk ls IMAGE                  the files, their sizes and blocks, the free blocks
  disk put IMAGE FILE [NAME] [--blocks N]
                                 copy FILE in (as NAME; N 2 MiB blocks reserved, default
                                 what it needs); replaces a file of that name that fits,
                                 keeping its blocks (N is then ignored)
  disk get IMAGE NAME OUT        copy NAME out to OUT
  disk rm IMAGE NAME             delete NAME
  disk check IMAGE               check the directory (exit 0 when it is sound)
";

/// Each `disk` command and the words it cannot do without, as [`USAGE`] writes them.
const NEEDED: &[(&str, &[&str])] = &[
    ("create", &["IMAGE", "SIZE"]),
    ("partition", &["IMAGE", "SIZE", "BMFS"]),
    ("ls", &["IMAGE"]),
    ("put", &["IMAGE", "FILE"]),
    ("get", &["IMAGE", "NAME", "OUT"]),
    ("rm", &["IMAGE", "NAME"]),
    ("check", &["IMAGE"]),
];

/// The error for the line `words` (after `disk`), which `disk` does not take: the words a
/// known command lacks ([`crate::args::missing`]), an `--append` without the `--boot` it
/// belongs to, or else that it is no `disk` line, then [`USAGE`].
fn usage_error(words: &[&str]) -> String {
    let needed = words
        .first()
        .and_then(|command| NEEDED.iter().find(|(name, _)| name == command));
    if let Some((command, needs)) = needed
        && words.len() <= needs.len()
    {
        let shape: Vec<&str> = ["disk", command].iter().chain(*needs).copied().collect();
        return crate::args::missing(&shape, words.len() + 1);
    }
    if words.first() == Some(&"partition")
        && words.contains(&"--append")
        && !words.contains(&"--boot")
    {
        return "`disk partition`: `--append` gives the boot partition's command line, so it \
                needs `--boot` before it: `disk partition IMAGE SIZE BMFS --boot --append WORDS`"
            .into();
    }
    format!("not a `cargo xtask disk` command line; its commands:\n{USAGE}")
}

/// An image file as a BMFS disk.
struct FileDisk {
    /// The image.
    file: File,
    /// Its size in bytes (the partition's, in a partitioned image).
    size: u64,
    /// Where it starts in the image (a partition's first byte; 0 for a whole image).
    offset: u64,
}

impl Disk for FileDisk {
    fn size(&self) -> u64 {
        self.size
    }

    fn read(&mut self, offset: u64, buffer: &mut [u8]) -> std::result::Result<(), String> {
        self.file
            .read_exact_at(buffer, self.offset + offset)
            .map_err(|e| format!("reading at {offset}: {e}"))
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> std::result::Result<(), String> {
        self.file
            .write_all_at(data, self.offset + offset)
            .map_err(|e| format!("writing at {offset}: {e}"))
    }

    fn flush(&mut self) -> std::result::Result<(), String> {
        self.file.sync_data().map_err(|e| format!("flushing: {e}"))
    }
}

/// The text file the BMFS test disk carries beside the programs ([`image_of_programs`]).
pub const NOTES: (&str, &str) = ("notes.txt", "put here by the host tool\nread in Rexo\n");

/// The files of the `net::httpd-disk` case's BMFS disk: a page, 300 KiB of bytes of
/// every value, and an `about.html` that replaces httpd's built-in one.
pub fn site_files() -> Vec<(&'static str, Vec<u8>)> {
    let data: Vec<u8> = (0..300 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    vec![
        (
            "disk.html",
            b"<!DOCTYPE html>\n<title>from disk</title>\n<p>Served from a BMFS disk.</p>\n"
                .to_vec(),
        ),
        ("data.bin", data),
        ("about.html", b"<p>about, from the disk</p>\n".to_vec()),
    ]
}

/// Writes a fresh 16 MiB BMFS image at `path` holding [`site_files`].
pub fn image_of_site(path: &Path) -> Result<()> {
    let mut volume = new_volume(path, 16 << 20)?;
    for (name, data) in site_files() {
        volume.create(name, 1).map_err(|e| about(name, e))?;
        volume.write(name, &data).map_err(|e| about(name, e))?;
    }
    Ok(())
}

/// Writes a fresh 16 MiB BMFS image at `path` holding every `*.bin` of `programs` as
/// `NAME.app` (the BareMetal test programs, for the cases that load them from a disk),
/// and the text file [`NOTES`].
pub fn image_of_programs(path: &Path, programs: &Path) -> Result<()> {
    let mut volume = new_volume(path, 16 << 20)?;
    let entries =
        std::fs::read_dir(programs).map_err(|e| format!("{}: {e}", programs.display()))?;
    for entry in entries {
        let file = entry.map_err(|e| e.to_string())?.path();
        let (Some(stem), Some("bin")) = (
            file.file_stem().and_then(|s| s.to_str()),
            file.extension().and_then(|e| e.to_str()),
        ) else {
            continue;
        };
        let data = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        if data.is_empty() || data.len() as u64 > BLOCK {
            continue;
        }
        let name = format!("{stem}.app");
        volume.create(&name, 1).map_err(|e| about(&name, e))?;
        volume.write(&name, &data).map_err(|e| about(&name, e))?;
    }
    write_notes(&mut volume)
}

/// The error `e` about the file `name`, naming it once: most of BMFS's errors name the
/// file they are about ("'a': exists already"), others are prefixed with it.
fn about(name: &str, e: BmfsError) -> String {
    let said = e.to_string();
    if said.contains(&format!("'{name}'")) {
        said
    } else {
        format!("{name}: {said}")
    }
}

/// Puts [`NOTES`] on `volume`.
fn write_notes(volume: &mut Volume<FileDisk>) -> Result<()> {
    let (name, text) = NOTES;
    volume.create(name, 1).map_err(|e| about(name, e))?;
    volume
        .write(name, text.as_bytes())
        .map_err(|e| about(name, e))
}

/// Puts [`NOTES`] on the BMFS of the image at `path` (its partition, if partitioned).
pub fn put_notes(path: &Path) -> Result<()> {
    write_notes(&mut open(path)?)
}

/// The files of the BMFS image at `path` (checking its directory).
pub fn files_of(path: &Path) -> Result<Vec<String>> {
    Ok(open(path)?.files().map(|file| file.name.clone()).collect())
}

/// The bytes of file `name` of the BMFS image at `path`.
pub fn read_file(path: &Path, name: &str) -> Result<Vec<u8>> {
    open(path)?.read(name).map_err(|e| about(name, e))
}

/// A new image of `bytes` at `path` holding an empty BMFS, replacing any file there once
/// it is made: a size too small for BMFS, or past the host's file system holding it
/// (`Staged::create_sized`), is refused before anything is written, and an image that
/// cannot be made (past the largest file the host allows, ...) leaves the old file as
/// it was.
fn new_volume(path: &Path, bytes: u64) -> Result<Volume<FileDisk>> {
    let name = path.display();
    large_enough_for_bmfs(bytes).map_err(|e| format!("{name}: {e}"))?;
    let staged = Staged::create_sized(path, "creating", bytes)?;
    let disk = FileDisk {
        file: staged.handle()?,
        size: bytes,
        offset: 0,
    };
    let volume = Volume::format(disk).map_err(|e| format!("{name}: {e}"))?;
    staged.commit()?;
    Ok(volume)
}

/// Opens `image` as a disk (its BMFS partition, if it has one), locked against other
/// processes while it is open (`imagelock`: refused when a QEMU has it).
fn open_disk(image: &Path) -> Result<FileDisk> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .map_err(|e| format!("{}: {e}", image.display()))?;
    crate::imagelock::hold(&file, image)?;
    let size = file
        .metadata()
        .map_err(|e| format!("{}: {e}", image.display()))?
        .len();
    let (offset, size) = partition_of(&file, size, rexo_mbr::TYPE_BMFS, "BMFS")
        .map_err(|e| format!("{}: {e}", image.display()))?
        .unwrap_or((0, size));
    Ok(FileDisk { file, size, offset })
}

/// The first byte and the length of the `size`-byte image's first partition of type
/// `kind` (MBR, or GPT with the GUID standing for it), named `what` in the error;
/// `None` when the image is one
/// file system whole: sector 0 holds no partition table, or one without a used entry (a
/// boot sector's). A table that is refused (overlapping partitions, a GPT with both
/// copies bad, ...) or that holds no partition of that type is an error naming it: the
/// whole image is not what it describes. An image shorter than a sector (an empty one)
/// holds no table either: its file system says what is wrong with it.
pub fn partition_of(file: &File, size: u64, kind: u8, what: &str) -> Result<Option<(u64, u64)>> {
    const SECTOR: u64 = rexo_mbr::SECTOR as u64;
    if size < SECTOR {
        return Ok(None);
    }
    let read = rexo_mbr::read_table(SECTOR as u32, size / SECTOR, &mut |lba, sectors| {
        let mut bytes = vec![0; sectors as usize * rexo_mbr::SECTOR];
        file.read_exact_at(&mut bytes, lba * SECTOR)
            .map_err(|e| e.to_string())?;
        Ok(bytes)
    });
    let table = match read {
        Ok(table) => table,
        Err(rexo_mbr::MbrError::NoTable) => return Ok(None),
        Err(error) => return Err(error.to_string()),
    };
    if table.partitions.is_empty() {
        return Ok(None);
    }
    let Some(p) = table.first_holding(kind) else {
        let backup = table
            .from_backup
            .map(|why| format!(" (GPT read from its backup header: {why})"))
            .unwrap_or_default();
        return Err(format!(
            "no {what} partition (type {kind:#04x}) among the {} of the partition \
             table{backup}",
            table.partitions.len()
        ));
    };
    Ok(Some((p.first * SECTOR, p.sectors * SECTOR)))
}

/// What a bootable image starts: the kernel ELF and its command line.
pub struct BootKernel<'a> {
    /// The kernel.
    pub elf: &'a Path,
    /// Its command line.
    pub append: &'a str,
}

/// Where [`partitioned`]'s partitions lie.
struct PartitionLayout {
    /// Sector 0: the partition table.
    table: [u8; rexo_mbr::SECTOR],
    /// The BMFS partition's first byte.
    bmfs_start: u64,
    /// Its bytes.
    bmfs_bytes: u64,
}

/// The layout of a `size`-byte image holding a boot partition of `boot_bytes` (none
/// when 0), a BMFS of `bmfs` bytes and the Rexo file system in the rest, each aligned to
/// 1 MiB; or why they do not fit (`path` names the image in the error).
fn partition_layout(path: &Path, size: u64, bmfs: u64, boot_bytes: u64) -> Result<PartitionLayout> {
    const MIB: u64 = 1 << 20;
    let bmfs_start = MIB + boot_bytes;
    let Some(bmfs_end) = bmfs
        .checked_next_multiple_of(MIB)
        .and_then(|whole| bmfs_start.checked_add(whole))
    else {
        return Err(format!(
            "{}: a BMFS partition of {bmfs} bytes from byte {bmfs_start} ends past 2^64 bytes",
            path.display()
        ));
    };
    let bmfs = bmfs_end - bmfs_start;
    large_enough_for_bmfs(bmfs)
        .map_err(|e| format!("{}: the BMFS partition: {e}", path.display()))?;
    let rest = size.saturating_sub(bmfs_end) / MIB * MIB;
    if rest < MIB {
        let what = if boot_bytes > 0 {
            "the kernel's boot partition, BMFS and the Rexo file system"
        } else {
            "both partitions"
        };
        return Err(format!("{size} bytes leave no room for {what}"));
    }
    let mut partitions = Vec::new();
    if boot_bytes > 0 {
        partitions.push((
            crate::bootdisk::TYPE_EFI_SYSTEM,
            MIB / 512,
            boot_bytes / 512,
        ));
    }
    partitions.push((rexo_mbr::TYPE_BMFS, bmfs_start / 512, bmfs / 512));
    partitions.push((rexo_mbr::TYPE_REXO_FS, bmfs_end / 512, rest / 512));
    let table = rexo_mbr::table(&partitions)
        .map_err(|e| format!("{}: {size} bytes: {e}", path.display()))?;
    Ok(PartitionLayout {
        table,
        bmfs_start,
        bmfs_bytes: bmfs,
    })
}

/// Writes a fresh image of `size` bytes at `path` holding a partition table, an empty
/// BMFS of `bmfs` bytes and an empty Rexo file system in the rest, each aligned to
/// 1 MiB; with `boot`, a boot partition comes first (partition 1, so BMFS is 2 and the
/// Rexo file system 3) with GRUB and the kernel installed (`bootdisk`). Sizes whose
/// partitions do not fit or an MBR cannot describe (past 2 TiB) or past the host's file
/// system holding the image, and a command line GRUB would not carry, are refused
/// before anything is written; the image is built
/// beside the path (`PATH.creating`, removed on every error) and renamed over any file
/// there once complete.
pub fn partitioned(path: &Path, size: u64, bmfs: u64, boot: Option<BootKernel>) -> Result<()> {
    const MIB: u64 = 1 << 20;
    let boot_bytes = match &boot {
        Some(kernel) => {
            crate::image::check_append(kernel.append)?;
            crate::bootdisk::partition_bytes_for(kernel.elf)?
        }
        None => 0,
    };
    let layout = partition_layout(path, size, bmfs, boot_bytes)?;
    let staged = Staged::create_sized(path, "creating", size)?;
    (staged.file().write_all_at(&layout.table, 0))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let disk = FileDisk {
        file: staged.handle()?,
        size: layout.bmfs_bytes,
        offset: layout.bmfs_start,
    };
    Volume::format(disk).map_err(|e| format!("the BMFS partition: {e}"))?;
    crate::fsimage::format_partition(staged.path())?;
    if let Some(kernel) = boot {
        crate::bootdisk::install(
            staged.path(),
            kernel.elf,
            kernel.append,
            MIB / 512,
            boot_bytes / 512,
        )?;
    }
    staged.commit()
}

/// Refuses a BMFS of `bytes` before an image is made: what [`Volume::format`] would
/// refuse ([`MIN_BLOCKS`] blocks at least).
fn large_enough_for_bmfs(bytes: u64) -> Result<()> {
    if bytes < MIN_BLOCKS * BLOCK {
        return Err(BmfsError::TooSmall(bytes).to_string());
    }
    Ok(())
}

/// Opens the BMFS on `image`.
fn open(image: &Path) -> Result<Volume<FileDisk>> {
    Volume::open(open_disk(image)?).map_err(|e| format!("{}: {e}", image.display()))
}

/// `64M`, `1G`, `1T`, `4096`: bytes ([`crate::args::parse_bytes`], a bare number in bytes).
pub fn parse_size(text: &str) -> Result<u64> {
    crate::args::parse_bytes(text, 1)
}

/// `words` without the `--force` that lets `create` and `partition` replace a file
/// holding anything ([`Staged::may_replace`]), and whether it was there; other commands'
/// words are kept whole (a `--force` among them is refused with the line), as is the
/// value of `--append`.
fn take_force<'a>(words: &[&'a str]) -> (Vec<&'a str>, bool) {
    let mut kept = words.to_vec();
    if !matches!(words.first(), Some(&"create" | &"partition")) {
        return (kept, false);
    }
    let flag = (1..words.len()).find(|&at| words[at] == "--force" && words[at - 1] != "--append");
    if let Some(at) = flag {
        kept.remove(at);
    }
    (kept, flag.is_some())
}

/// Runs `cargo xtask disk ARGS`.
pub fn command(args: Vec<String>) -> Result<()> {
    let given: Vec<&str> = args.iter().map(String::as_str).collect();
    let (words, force) = take_force(&given);
    match words.as_slice() {
        ["create", image, size] => {
            let size = parse_size(size)?;
            Staged::may_replace(Path::new(image), force)?;
            let volume = new_volume(Path::new(image), size)?;
            println!(
                "{image}: BMFS, {} blocks of 2 MiB for files",
                volume.file_blocks()
            );
            Ok(())
        }
        ["partition", image, size, bmfs] => {
            let (size, bmfs) = (parse_size(size)?, parse_size(bmfs)?);
            Staged::may_replace(Path::new(image), force)?;
            partitioned(Path::new(image), size, bmfs, None)?;
            println!("{image}: partition 1 BMFS, partition 2 the Rexo file system");
            Ok(())
        }
        ["partition", image, size, bmfs, "--boot", rest @ ..] => {
            let append = match rest {
                [] => "",
                ["--append", words] => words,
                _ => return Err(usage_error(&words)),
            };
            // Everything the arguments decide is checked before the kernel is built: the
            // sizes with the smallest boot partition, and the command line.
            let (size, bmfs) = (parse_size(size)?, parse_size(bmfs)?);
            let smallest_boot = crate::bootdisk::partition_bytes(0);
            partition_layout(Path::new(image), size, bmfs, smallest_boot)?;
            crate::image::check_append(append)?;
            crate::image::check_apps(append)?;
            Staged::may_replace(Path::new(image), force)?;
            crate::deps::ensure(&[crate::deps::Need::Iso])?;
            let elf = crate::build::kernel()?;
            let boot = BootKernel { elf: &elf, append };
            partitioned(Path::new(image), size, bmfs, Some(boot))?;
            println!(
                "{image}: partition 1 boots Rexo (GRUB for BIOS and UEFI, command line `{append}`), partition 2 BMFS, partition 3 the Rexo file system"
            );
            Ok(())
        }
        ["ls", image] => {
            let volume = open(Path::new(image))?;
            for file in volume.files() {
                println!(
                    "{:<31} {:>12} bytes  blocks {}+{}",
                    file.name, file.size, file.start, file.reserved
                );
            }
            println!(
                "{} of {} blocks free",
                volume.free_blocks(),
                volume.file_blocks()
            );
            Ok(())
        }
        ["put", image, file, rest @ ..] => {
            println!("{}", put(image, file, rest)?);
            Ok(())
        }
        ["get", image, name, out] => {
            let mut volume = open(Path::new(image))?;
            volume.find(name).map_err(|e| about(name, e))?;
            crate::fsimage::refuse_the_image(Path::new(out), Path::new(image))?;
            let mut file = File::create(out).map_err(|e| format!("{out}: {e}"))?;
            let bytes = get_to(&mut volume, name, &mut file, out)?;
            println!("{name}: {bytes} bytes to {out}");
            Ok(())
        }
        ["rm", image, name] => open(Path::new(image))?
            .delete(name)
            .map_err(|e| e.to_string()),
        ["check", image] => {
            let volume = open(Path::new(image))?;
            println!("{image}: sound, {} files", volume.files().count());
            Ok(())
        }
        _ => Err(usage_error(&words)),
    }
}

/// `disk put IMAGE FILE [NAME] [--blocks N]`; what it did, to print.
fn put(image: &str, file: &str, rest: &[&str]) -> Result<String> {
    let (name, blocks) = match rest {
        [] => (None, None),
        ["--blocks", n] => (None, Some(n)),
        [name] => (Some(*name), None),
        [name, "--blocks", n] => (Some(*name), Some(n)),
        _ => {
            let line: Vec<&str> = ["put", image, file].iter().chain(rest).copied().collect();
            return Err(usage_error(&line));
        }
    };
    let blocks = match blocks {
        Some(n) => Some(
            n.parse::<u64>()
                .map_err(|_| format!("--blocks {n}: not a number"))?,
        ),
        None => None,
    };
    let host = Path::new(file);
    crate::fsimage::refuse_putting_the_image(host, Path::new(image))?;
    let source = HostFile::open(host)?;
    let name = name.unwrap_or_else(|| host.file_name().and_then(|n| n.to_str()).unwrap_or(file));
    put_on(&mut open(Path::new(image))?, name, blocks, &source)
}

/// Writes the bytes of `source` ([`write_source`]: a piece at a time) as the file `name`
/// of `volume`: over the file of that name, whose reservation is kept (`blocks`, if
/// given, is ignored, and the text says so), or as a new file reserving `blocks`
/// (default what its size needs). Data that does not fit is refused before it is read
/// or anything changes; a read that fails midway leaves the file there empty, and a new
/// file whose read or write fails is removed again. Returns what it did, to print.
fn put_on<D: Disk>(
    volume: &mut Volume<D>,
    name: &str,
    blocks: Option<u64>,
    source: &dyn PutSource,
) -> Result<String> {
    let size = source.len();
    let needed = size.div_ceil(BLOCK).max(1);
    let mut said = String::new();
    if let Ok(entry) = volume.find(name) {
        let (reserved, capacity) = (entry.reserved, entry.capacity());
        if let Some(asked) = blocks.filter(|&asked| asked != reserved) {
            said.push_str(&format!(
                "{name} exists with {reserved} blocks reserved: --blocks {asked} is ignored \
                 (`disk rm` it first to reserve another number)\n"
            ));
        }
        if size > capacity {
            return Err(format!(
                "{name}: {size} bytes do not fit its {reserved} reserved blocks of 2 MiB; \
                 `disk rm` it first, then put it with --blocks {needed} or more"
            ));
        }
        write_source(volume, name, source, capacity).map_err(|e| match e {
            BmfsError::Source(_) => format!("{name}: {e}; {name} is left empty"),
            e => about(name, e),
        })?;
    } else {
        let blocks = blocks.unwrap_or(needed).max(1);
        if blocks < needed {
            return Err(format!(
                "{name}: {size} bytes need {needed} blocks of 2 MiB, --blocks {blocks} reserves \
                 {}; nothing was written",
                blocks * BLOCK
            ));
        }
        let capacity = volume
            .create(name, blocks)
            .map_err(|e| about(name, e))?
            .capacity();
        let written = write_source(volume, name, source, capacity).map_err(|e| about(name, e));
        if let Err(error) = written {
            return Err(match volume.delete(name) {
                Ok(()) => format!("{error} (the new file {name} is removed)"),
                Err(undo) => format!(
                    "{error}, and removing the new, empty file {name} failed ({undo}): `disk rm` it"
                ),
            });
        }
    }
    said.push_str(&format!("{name}: {size} bytes"));
    Ok(said)
}

/// Writes the file `name` of `volume` to `out` (the host's file `out_name`), read
/// [`CHUNK`] bytes at a time so that a file as large as the disk is never held whole;
/// returns its bytes.
fn get_to<D: Disk>(
    volume: &mut Volume<D>,
    name: &str,
    out: &mut dyn std::io::Write,
    out_name: &str,
) -> Result<u64> {
    let size = volume.find(name).map_err(|e| about(name, e))?.size;
    let mut buffer = vec![0u8; size.min(CHUNK as u64) as usize];
    let mut at = 0;
    while at < size {
        let read = (volume.read_at(name, at, &mut buffer)).map_err(|e| about(name, e))?;
        out.write_all(&buffer[..read])
            .map_err(|e| format!("{out_name}: {e}"))?;
        at += read as u64;
    }
    out.flush().map_err(|e| format!("{out_name}: {e}"))?;
    Ok(size)
}

/// The size of the host's file `path`, which must be a regular file: a directory, a
/// device or a pipe is refused before it is opened (`/dev/zero` never ends).
pub fn host_file_size(path: &Path) -> Result<u64> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!(
            "{} is not a regular file (a directory, a device or a pipe); copy what it holds \
             into a file and put that",
            path.display()
        ));
    }
    Ok(meta.len())
}

/// Writes the bytes of `source` (its length when opened, known to fit in `room`) as the
/// file `name` of `volume`, read [`CHUNK`] bytes at a time so that a file as large as
/// the disk is never held whole; a `source` that grew past `room` while it was read is
/// refused ([`BmfsError::Source`]) before its size is stored.
fn write_source<D: Disk>(
    volume: &mut Volume<D>,
    name: &str,
    source: &dyn PutSource,
    room: u64,
) -> std::result::Result<(), BmfsError> {
    let size = source.len();
    let mut buffer = vec![0u8; size.min(CHUNK as u64) as usize];
    let mut fill = |piece: &mut [u8], at: u64| {
        source.read_exact_at(piece, at)?;
        if at + piece.len() as u64 == size && source.len_now()? > room {
            return Err(format!(
                "it grew past the {room} bytes there is room for while it was read"
            ));
        }
        Ok(())
    };
    volume.write_in_pieces(name, size, &mut buffer, &mut fill)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line that stops short names what it lacks, and an `--append` without `--boot`
    /// says it needs it: each gave "not a `cargo xtask disk` command line".
    #[test]
    fn a_short_line_names_what_it_lacks() {
        let error = |line: &[&str]| command(line.iter().map(|w| w.to_string()).collect());
        for (line, said) in [
            (
                &["create", "IMG"][..],
                "`cargo xtask disk create IMAGE SIZE`: SIZE is missing",
            ),
            (
                &["create"],
                "`cargo xtask disk create IMAGE SIZE`: IMAGE and SIZE are missing",
            ),
            (
                &["get", "IMG", "NAME"],
                "`cargo xtask disk get IMAGE NAME OUT`: OUT is missing",
            ),
            (
                &["partition", "IMG", "64M", "6M", "--append", "app=httpd"],
                "needs `--boot` before it",
            ),
        ] {
            let err = error(line).unwrap_err();
            assert!(err.contains(said), "{line:?}: {err}");
        }
        let err = error(&["frob"]).unwrap_err();
        assert!(
            err.starts_with("not a `cargo xtask disk` command line"),
            "{err}"
        );
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        // One parser for every size: T, which --mem took, was "the unit is K, M or G".
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert!(parse_size("12X").unwrap_err().contains("unit"));
        assert!(parse_size("M").is_err());
        assert!(
            parse_size("99999999999999G")
                .unwrap_err()
                .contains("too large")
        );
    }

    /// The error of `disk partition IMAGE SIZE BMFS`, which must refuse them before an
    /// image is made.
    fn refused(size: &str, bmfs: &str) -> String {
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("rexo-disk-refused-{}-{call}.img", std::process::id());
        let image = std::env::temp_dir().join(name);
        let words = ["partition", image.to_str().unwrap(), size, bmfs].map(String::from);
        let err = command(words.to_vec()).unwrap_err();
        assert!(!image.exists(), "{size} {bmfs}: an image was made");
        err
    }

    #[test]
    fn a_disk_past_what_an_mbr_describes_is_refused_before_it_is_made() {
        let disk_of_2_to_the_64 = u64::MAX.to_string();
        for (size, bmfs, partition) in [
            ("2100G", "2050G", 1),
            ("2100G", "2040G", 2),
            (&disk_of_2_to_the_64, "6M", 2),
        ] {
            let err = refused(size, bmfs);
            assert!(
                err.contains(&format!("partition {partition} "))
                    && err.contains("past what an MBR can describe (2 TiB)"),
                "{err}"
            );
        }
    }

    /// `create` and `partition` refuse a file that holds anything unless `--force` is
    /// given, naming it: `disk create README.md 64M` replaced the source file. An empty
    /// file is made over freely; `--force` anywhere after the command word counts, but as
    /// `--append`'s value.
    #[test]
    fn a_file_that_holds_anything_is_replaced_only_with_force() {
        let dir = std::env::temp_dir().join(format!("rexo-disk-force-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let source = dir.join("README.md");
        std::fs::write(&source, b"# a source file\n").unwrap();
        let src = source.to_str().unwrap();
        let run = |line: &[&str]| command(line.iter().map(|w| w.to_string()).collect());
        for line in [&["create", src, "8M"][..], &["partition", src, "64M", "6M"]] {
            let err = run(line).unwrap_err();
            assert!(
                err.contains("is there already (16 bytes); give --force"),
                "{line:?}: {err}"
            );
            assert_eq!(std::fs::read(&source).unwrap(), b"# a source file\n");
        }
        run(&["create", src, "--force", "8M"]).unwrap();
        assert!(files_of(&source).unwrap().is_empty());
        run(&["partition", src, "64M", "6M", "--force"]).unwrap();
        let empty = dir.join("empty.img");
        std::fs::write(&empty, b"").unwrap();
        run(&["create", empty.to_str().unwrap(), "8M"]).unwrap();
        let taken_as_append_words = [
            "partition",
            "i",
            "64M",
            "6M",
            "--boot",
            "--append",
            "--force",
        ];
        assert_eq!(
            take_force(&taken_as_append_words),
            (taken_as_append_words.to_vec(), false)
        );
        assert_eq!(
            take_force(&["ls", "--force"]),
            (vec!["ls", "--force"], false)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A BMFS size near 2^64 bytes is refused with an error, before the image is made:
    /// rounding it up to whole MiB, or adding the first MiB before it, used to overflow
    /// (a panic).
    #[test]
    fn a_bmfs_partition_ending_past_2_to_the_64_bytes_is_refused() {
        let rounds_over = u64::MAX.to_string();
        let ends_over = (u64::MAX - (1 << 20) + 1).to_string();
        for (size, bmfs) in [
            ("1G", &rounds_over),
            ("1G", &ends_over),
            (&rounds_over, &ends_over),
        ] {
            let err = refused(size, bmfs);
            assert!(err.contains("ends past 2^64 bytes"), "{size} {bmfs}: {err}");
        }
    }

    /// BMFS keeps its first and last 2 MiB blocks, so it needs three: a smaller one is
    /// refused by `create` and `partition` before an image is made.
    #[test]
    fn a_bmfs_under_three_blocks_is_refused_before_the_image_is_made() {
        let err = refused("64M", "5M");
        assert!(err.contains("too small for BMFS (6 MiB at least)"), "{err}");
        let image =
            std::env::temp_dir().join(format!("rexo-disk-small-{}.img", std::process::id()));
        let s = image.to_str().unwrap().to_string();
        let err = command(vec!["create".into(), s.clone(), "5M".into()]).unwrap_err();
        assert!(err.contains("too small for BMFS (6 MiB at least)"), "{err}");
        assert!(!image.exists(), "an image was made");
        command(vec!["create".into(), s.clone(), "6M".into()]).unwrap();
        assert_eq!(open(&image).unwrap().file_blocks(), 1);
        std::fs::remove_file(&image).unwrap();
    }

    /// A `disk create` the host cannot hold (2^64 bytes) leaves the image there as it
    /// was, and no half-made one: it used to be truncated first.
    #[test]
    fn a_create_that_fails_leaves_the_image_there_as_it_was() {
        let dir = std::env::temp_dir().join(format!("rexo-disk-create-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let image = dir.join("keep.img");
        image_of_site(&image).unwrap();
        let before = std::fs::read(&image).unwrap();
        let s = image.to_str().unwrap().to_string();
        for size in ["5M".to_string(), u64::MAX.to_string()] {
            let words = vec!["create".into(), s.clone(), size.clone(), "--force".into()];
            let err = command(words).unwrap_err();
            assert!(
                err.contains("too small") || err.contains("could ever store"),
                "{err}"
            );
            assert!(
                std::fs::read(&image).unwrap() == before,
                "{size}: the image changed"
            );
        }
        assert!(!dir.join("keep.img.creating").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A put whose file does not fit the blocks it asks for is refused before its entry
    /// is made, so a retry with more blocks is not ignored (the empty entry of the
    /// failed put was kept, and the retry wrote into its one block); `--blocks` for a
    /// file that exists is ignored, and the put says so.
    #[test]
    fn a_put_that_does_not_fit_its_blocks_leaves_no_entry() {
        let dir = std::env::temp_dir().join(format!("rexo-disk-put-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let image = dir.join("bmfs.img");
        let source = dir.join("big.bin");
        let data: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 253) as u8).collect();
        std::fs::write(&source, &data).unwrap();
        let (img, src) = (image.to_str().unwrap(), source.to_str().unwrap());
        new_volume(&image, 16 << 20).unwrap();
        let err = put(img, src, &["--blocks", "1"]).unwrap_err();
        assert!(err.contains("need 2 blocks"), "{err}");
        assert!(files_of(&image).unwrap().is_empty(), "an entry was left");
        put(img, src, &["--blocks", "3"]).unwrap();
        assert_eq!(open(&image).unwrap().find("big.bin").unwrap().reserved, 3);
        assert!(read_file(&image, "big.bin").unwrap() == data);
        let said = put(img, src, &["--blocks", "5"]).unwrap();
        assert!(said.contains("--blocks 5 is ignored"), "{said}");
        assert!(!put(img, src, &[]).unwrap().contains("ignored"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `disk put` refuses a host file that is not a regular file (`/dev/zero` was read
    /// until memory ran out; `/dev/null` made an empty file) and one larger than the
    /// room for it before reading it: it was read whole first.
    #[test]
    fn a_put_checks_the_host_file_before_reading_it() {
        let dir = std::env::temp_dir().join(format!("rexo-disk-host-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let image = dir.join("bmfs.img");
        new_volume(&image, 16 << 20).unwrap();
        let img = image.to_str().unwrap();
        for device in ["/dev/null", "/dev/zero"] {
            let err = put(img, device, &[]).unwrap_err();
            assert!(err.contains("not a regular file"), "{err}");
        }
        assert!(files_of(&image).unwrap().is_empty());
        let mut volume = open(&image).unwrap();
        let err = put_on(&mut volume, "big", Some(1), &Unread(3 << 20)).unwrap_err();
        assert!(err.contains("need 2 blocks"), "{err}");
        let err = put_on(&mut volume, "big", None, &Unread(64 << 20)).unwrap_err();
        assert!(err.contains("no run of 32 free"), "{err}");
        put_on(&mut volume, "small", None, &&b"small"[..]).unwrap();
        let err = put_on(&mut volume, "small", None, &Unread(3 << 20)).unwrap_err();
        assert!(err.contains("do not fit its 1 reserved"), "{err}");
        drop(volume);
        let sparse = dir.join("sparse.bin");
        File::create(&sparse).unwrap().set_len(1 << 30).unwrap();
        let err = put(img, sparse.to_str().unwrap(), &[]).unwrap_err();
        assert!(err.contains("no run of 512 free"), "{err}");
        assert_eq!(read_file(&image, "small").unwrap(), b"small");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A source of `self.0` bytes that must not be read: a put refuses it first.
    struct Unread(u64);

    impl PutSource for Unread {
        fn len(&self) -> u64 {
            self.0
        }
        fn len_now(&self) -> Result<u64> {
            Ok(self.0)
        }
        fn read_exact_at(&self, _: &mut [u8], _: u64) -> Result<()> {
            panic!("read before the size was checked")
        }
        fn next_data(&self, _: u64) -> Result<Option<std::ops::Range<u64>>> {
            panic!("read before the size was checked")
        }
    }

    /// Bytes in memory that note the largest piece read of them, and may say that they
    /// grew to `grown` while they were read.
    struct Watched<'a> {
        data: &'a [u8],
        largest_read: std::cell::Cell<usize>,
        grown: Option<u64>,
    }

    impl PutSource for Watched<'_> {
        fn len(&self) -> u64 {
            self.data.len() as u64
        }
        fn len_now(&self) -> Result<u64> {
            Ok(self.grown.unwrap_or(self.len()))
        }
        fn read_exact_at(&self, buf: &mut [u8], at: u64) -> Result<()> {
            self.largest_read
                .set(self.largest_read.get().max(buf.len()));
            self.data.read_exact_at(buf, at)
        }
        fn next_data(&self, at: u64) -> Result<Option<std::ops::Range<u64>>> {
            self.data.next_data(at)
        }
    }

    /// `disk put` copies a file a MiB at a time, never holding it whole (it was read
    /// whole into memory, a multi-GiB file taking that much of the host's): a file of
    /// three and a half MiB lands byte for byte, new and over an existing file, read in
    /// pieces of `CHUNK` bytes at most. One that grew past the room while it was read is
    /// refused before its size is stored: a new file is removed, one there left empty.
    #[test]
    fn a_put_streams_a_file_larger_than_a_chunk() {
        let mut volume = Volume::format(vec![0u8; 16 << 20]).unwrap();
        let data: Vec<u8> = (0..(7 << 19) + 3).map(|i: u32| (i % 251) as u8).collect();
        for name in ["new", "new"] {
            let source = Watched {
                data: &data,
                largest_read: 0.into(),
                grown: None,
            };
            put_on(&mut volume, name, None, &source).unwrap();
            assert_eq!(source.largest_read.get(), CHUNK);
            assert!(volume.read(name).unwrap() == data, "{name} differs");
        }
        let growing = Watched {
            data: &data,
            largest_read: 0.into(),
            grown: Some((4 << 20) + 1),
        };
        let err = put_on(&mut volume, "grown", Some(2), &growing).unwrap_err();
        assert!(
            err.contains("grew past") && err.contains("removed"),
            "{err}"
        );
        assert!(volume.find("grown").is_err());
        let err = put_on(&mut volume, "new", None, &growing).unwrap_err();
        assert!(
            err.contains("grew past") && err.contains("left empty"),
            "{err}"
        );
        assert_eq!(volume.find("new").unwrap().size, 0);
    }

    /// An image shorter than a sector (an empty one) is said to be no BMFS, or too
    /// small for the Rexo file system, and left as it is: each command said "partition
    /// table unreadable: failed to fill whole buffer", as if a read had failed.
    #[test]
    fn an_image_shorter_than_a_sector_is_named_for_what_it_lacks() {
        let dir = std::env::temp_dir().join(format!("rexo-disk-short-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for bytes in [0, 1, 511] {
            let image = dir.join(format!("short-{bytes}.img"));
            std::fs::write(&image, vec![0x55; bytes]).unwrap();
            let img = image.to_str().unwrap().to_string();
            let err = command(vec!["ls".into(), img.clone()]).unwrap_err();
            assert_eq!(
                err,
                format!("{img}: not a BMFS disk (no BMFS marker at byte 1024)")
            );
            for words in [["ls"], ["check"]] {
                let line: Vec<String> = [img.as_str()]
                    .iter()
                    .chain(&words)
                    .map(|w| w.to_string())
                    .collect();
                let err = crate::fsimage::command(&line).unwrap_err();
                assert_eq!(err, format!("{img}: a disk of 0 blocks is too small"));
            }
            assert_eq!(std::fs::read(&image).unwrap(), vec![0x55; bytes]);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A partitioned image cut short at every boundary of its layout (the table, BMFS's
    /// marker and directory, the Rexo file system's superblock, journal, bitmap and
    /// directories, each partition's ends) and with random bits of those flipped: every
    /// `disk` and `fs` command that reads it answers, an error naming the image, and
    /// leaves it as it was.
    #[test]
    fn damaged_partitioned_images_are_refused_by_name_and_left_as_they_were() {
        const MIB: usize = 1 << 20;
        let dir = std::env::temp_dir().join(format!("rexo-disk-damage-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let image = dir.join("damaged.img");
        partitioned(&image, 8 << 20, 6 << 20, None).unwrap();
        put_notes(&image).unwrap();
        let mut fs = crate::fsimage::mount(&image).unwrap();
        fs.mkdir("/d").unwrap();
        fs.replace("/d/x", b"hello").unwrap();
        fs.sync().unwrap();
        drop(fs);
        let whole = std::fs::read(&image).unwrap();
        let (img, out) = (image.to_str().unwrap(), dir.join("out"));
        let check_all = |what: &str| {
            let before = std::fs::read(&image).unwrap();
            let out = out.to_str().unwrap();
            for result in [
                command(["ls", img].map(String::from).to_vec()),
                command(["check", img].map(String::from).to_vec()),
                crate::fsimage::command(&[img, "ls"].map(String::from)),
                crate::fsimage::command(&[img, "check"].map(String::from)),
                crate::fsimage::command(&[img, "get", "/", out].map(String::from)),
            ] {
                if let Err(error) = result {
                    assert!(error.starts_with(&format!("{img}: ")), "{what}: {error}");
                }
            }
            let _ = std::fs::remove_dir_all(out);
            assert!(std::fs::read(&image).unwrap() == before, "{what}: changed");
        };
        let (bmfs, rexo_fs) = (MIB, 7 * MIB);
        let mut cuts = vec![0, 1, 511, 512, 513, MIB - 1, MIB];
        cuts.extend([1027, 1028, 4096, 4096 + 64, 8192, 3 * MIB].map(|at| bmfs + at));
        cuts.extend([0, 100, 1, 2, 65, 66, 67, 68].map(|block| rexo_fs + block * 4096));
        cuts.extend([8 * MIB - 4096, 8 * MIB - 1]);
        for cut in cuts {
            std::fs::write(&image, &whole[..cut]).unwrap();
            check_all(&format!("cut at {cut}"));
        }
        let mut rng = rexo_testkit::Rng(0x1234_5678_9ABC_DEF1);
        let regions = [
            (0, 512),
            (bmfs, bmfs + 8192),
            (rexo_fs, rexo_fs + 70 * 4096),
        ];
        for round in 0..60 {
            let mut bytes = whole.clone();
            for _ in 0..3 {
                let (low, high) = regions[rng.below(regions.len())];
                bytes[low + rng.below(high - low)] ^= 1 << rng.below(8);
            }
            std::fs::write(&image, &bytes).unwrap();
            check_all(&format!("flips of round {round}"));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `disk get` and `fs IMAGE get` refuse an OUT that is the image itself, under any
    /// name, and leave the image whole: OUT was created (emptied) before the file was
    /// read, so the image was lost and the read failed past its new end.
    #[test]
    fn a_get_onto_the_image_itself_is_refused() {
        let dir = std::env::temp_dir().join(format!("rexo-disk-onto-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let image = dir.join("both.img");
        crate::fsimage::partitioned_for_monitor(&image).unwrap();
        let whole = std::fs::read(&image).unwrap();
        let img = image.to_str().unwrap();
        let other_name = format!("{}/./both.img", dir.display());
        for out in [img, other_name.as_str()] {
            let bmfs = command(["get", img, NOTES.0, out].map(String::from).to_vec());
            let fs = crate::fsimage::command(
                &[img, "get", crate::fsimage::HELLO.0, out].map(String::from),
            );
            for err in [bmfs.unwrap_err(), fs.unwrap_err()] {
                assert_eq!(
                    err,
                    format!(
                        "{out} is the image {img} itself: writing the file out there would \
                         empty the image; the image is left as it was"
                    )
                );
            }
            assert!(std::fs::read(&image).unwrap() == whole, "the image changed");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `disk put IMAGE IMAGE` and `fs IMAGE put DIR PATH` with the image under DIR are
    /// refused before anything is written: the copy would read the image as it changes.
    #[test]
    fn a_put_of_the_image_into_itself_is_refused() {
        let dir = std::env::temp_dir().join(format!("rexo-disk-into-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let image = dir.join("both.img");
        crate::fsimage::partitioned_for_monitor(&image).unwrap();
        let whole = std::fs::read(&image).unwrap();
        let (img, folder) = (image.to_str().unwrap(), dir.to_str().unwrap());
        let bmfs = command(["put", img, img, "self"].map(String::from).to_vec());
        let fs = crate::fsimage::command(&[img, "put", folder, "/copy"].map(String::from));
        for err in [bmfs.unwrap_err(), fs.unwrap_err()] {
            assert_eq!(
                err,
                format!(
                    "{img} is the image {img} itself: it cannot be put into itself; nothing was put"
                )
            );
        }
        assert!(std::fs::read(&image).unwrap() == whole, "the image changed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A BMFS disk in memory that notes the largest piece read of it.
    struct ReadWatched {
        disk: Vec<u8>,
        largest_read: usize,
    }

    impl Disk for ReadWatched {
        fn size(&self) -> u64 {
            self.disk.size()
        }
        fn read(&mut self, offset: u64, buffer: &mut [u8]) -> std::result::Result<(), String> {
            self.largest_read = self.largest_read.max(buffer.len());
            self.disk.read(offset, buffer)
        }
        fn write(&mut self, offset: u64, data: &[u8]) -> std::result::Result<(), String> {
            self.disk.write(offset, data)
        }
        fn flush(&mut self) -> std::result::Result<(), String> {
            Ok(())
        }
    }

    /// `disk get` copies a file out a MiB at a time, never holding it whole: it read the
    /// file whole into memory, so a multi-GiB file took that much of the host's (and a
    /// directory claiming a size up to the disk's asked for all of it). A file of three
    /// and a half MiB comes out byte for byte, read in pieces of `CHUNK` bytes at most.
    #[test]
    fn a_get_streams_a_file_larger_than_a_chunk() {
        let mut volume = Volume::format(vec![0u8; 16 << 20]).unwrap();
        let data: Vec<u8> = (0..(7 << 19) + 3).map(|i: u32| (i % 251) as u8).collect();
        put_on(&mut volume, "big", None, &&data[..]).unwrap();
        put_on(&mut volume, "empty", None, &&b""[..]).unwrap();
        let disk = ReadWatched {
            disk: volume.into_disk(),
            largest_read: 0,
        };
        let mut volume = Volume::open(disk).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            get_to(&mut volume, "big", &mut out, "out").unwrap(),
            data.len() as u64
        );
        assert!(out == data, "the copy differs");
        let mut out = Vec::new();
        assert_eq!(get_to(&mut volume, "empty", &mut out, "out").unwrap(), 0);
        assert!(out.is_empty());
        let err = get_to(&mut volume, "none", &mut out, "out").unwrap_err();
        assert_eq!(err, "no file 'none'");
        assert_eq!(volume.into_disk().largest_read, CHUNK);
    }

    /// A BMFS disk in memory whose file data cannot be written (its directory can).
    struct DataWritesFail(Vec<u8>);

    impl Disk for DataWritesFail {
        fn size(&self) -> u64 {
            self.0.size()
        }
        fn read(&mut self, offset: u64, buffer: &mut [u8]) -> std::result::Result<(), String> {
            self.0.read(offset, buffer)
        }
        fn write(&mut self, offset: u64, data: &[u8]) -> std::result::Result<(), String> {
            if offset >= BLOCK {
                return Err("the disk refused the write".into());
            }
            self.0.write(offset, data)
        }
        fn flush(&mut self) -> std::result::Result<(), String> {
            Ok(())
        }
    }

    /// A name BMFS refuses is named once: it was "aaaa…: 'aaaa…': names are 1 to 31
    /// printable ASCII bytes".
    #[test]
    fn a_refused_name_is_named_once() {
        let mut volume = Volume::format(vec![0u8; 8 << 20]).unwrap();
        let long = "a".repeat(40);
        let err = put_on(&mut volume, &long, None, &&b"data"[..]).unwrap_err();
        assert_eq!(
            err,
            format!("'{long}': names are 1 to 31 printable ASCII bytes")
        );
    }

    /// A new file whose data cannot be written is removed again: it was left, empty.
    #[test]
    fn a_new_file_whose_write_fails_is_removed() {
        let mut volume = Volume::format(DataWritesFail(vec![0; 8 << 20])).unwrap();
        let err = put_on(&mut volume, "a.bin", None, &&b"data"[..]).unwrap_err();
        assert!(
            err.contains("refused the write") && err.contains("removed"),
            "{err}"
        );
        let volume = Volume::open(volume.into_disk()).unwrap();
        assert_eq!(volume.files().count(), 0, "the new file was left");
    }

    /// A bootable image whose command line GRUB would not carry, or whose sizes cannot
    /// hold it, is refused before the image there is touched (and `disk partition
    /// --boot` refuses it before building the kernel): it was truncated and partitioned
    /// first and refused by the installer, leaving a half-made image.
    #[test]
    fn a_boot_disk_refused_late_leaves_the_image_there_as_it_was() {
        let dir = std::env::temp_dir().join(format!("rexo-disk-boot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let image = dir.join("boot.img");
        image_of_site(&image).unwrap();
        let before = std::fs::read(&image).unwrap();
        let elf = dir.join("kernel.elf");
        std::fs::write(&elf, vec![0u8; 1 << 20]).unwrap();
        let boot = BootKernel {
            elf: &elf,
            append: "log=debug\"",
        };
        let err = partitioned(&image, 64 << 20, 6 << 20, Some(boot)).unwrap_err();
        assert!(err.contains("not allowed"), "{err}");
        assert!(
            std::fs::read(&image).unwrap() == before,
            "the image changed"
        );
        assert!(!dir.join("boot.img.creating").exists());
        let img = image.to_str().unwrap();
        for (words, refusal) in [
            (
                &[
                    "partition",
                    img,
                    "64M",
                    "6M",
                    "--force",
                    "--boot",
                    "--append",
                    "a\"b",
                ][..],
                "not allowed",
            ),
            (
                &["partition", img, "64M", "4M", "--boot", "--force"],
                "too small for BMFS",
            ),
            (&["partition", img, "12M", "6M", "--boot"], "leave no room"),
            (&["partition", img, "64M", "6M", "--boot"], "give --force"),
            (
                &[
                    "partition",
                    img,
                    "64M",
                    "6M",
                    "--boot",
                    "--force",
                    "--append",
                    "app=nosuchapp",
                ],
                "no app called 'nosuchapp'",
            ),
        ] {
            let err = command(words.iter().map(|w| w.to_string()).collect()).unwrap_err();
            assert!(err.contains(refusal), "{words:?}: {err}");
            assert!(std::fs::read(&image).unwrap() == before, "{words:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn files_go_in_and_come_out_of_an_image() {
        let dir = std::env::temp_dir().join(format!("rexo-disk-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let image = dir.join("bmfs.img");
        let source = dir.join("hello.app");
        std::fs::write(&source, b"\x48\x31\xc0\xc3").unwrap();
        let s = |p: &Path| p.to_str().unwrap().to_string();
        command(vec!["create".into(), s(&image), "8M".into()]).unwrap();
        command(vec!["put".into(), s(&image), s(&source)]).unwrap();
        let out = dir.join("out.app");
        command(vec!["get".into(), s(&image), "hello.app".into(), s(&out)]).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"\x48\x31\xc0\xc3");
        command(vec!["check".into(), s(&image)]).unwrap();
        command(vec!["rm".into(), s(&image), "hello.app".into()]).unwrap();
        assert!(
            command(vec!["get".into(), s(&image), "hello.app".into(), s(&out)])
                .unwrap_err()
                .contains("no file")
        );
        std::fs::write(&image, vec![0u8; 8 << 20]).unwrap();
        assert!(
            command(vec!["ls".into(), s(&image)])
                .unwrap_err()
                .contains("not a BMFS disk")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
