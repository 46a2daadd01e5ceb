//! The monitor's view of the BMFS disk: the first disk whose block 0 holds BMFS.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use rexo_api::{BAREMETAL_AREA_MAX, DeviceKind, ExtentOp, Kernel};
use rexo_bmfs::{BlockDisk, BmfsError, Disk, Volume};

use crate::Shown;

/// Runs `work` on the first disk that holds BMFS ([`rexo_bmfs::on_first_volume`]).
fn with_bmfs<T>(
    kernel: &Kernel,
    work: impl FnMut(&mut Volume<BlockDisk<'_>>) -> Result<T, BmfsError>,
) -> Result<T, String> {
    rexo_bmfs::on_first_volume(kernel, work)
}

/// One line per file of the BMFS disk, then the free space.
pub fn list(kernel: &Kernel) -> Result<Vec<String>, String> {
    with_bmfs(kernel, |volume| {
        let mut lines: Vec<String> = volume
            .files()
            .map(|f| {
                format!(
                    "{:<31} {:>12} bytes  blocks {}+{}",
                    f.name, f.size, f.start, f.reserved
                )
            })
            .collect();
        lines.push(format!(
            "{} of {} 2 MiB blocks free",
            volume.free_blocks(),
            volume.file_blocks()
        ));
        Ok(lines)
    })
}

/// Deletes the file `name` from the BMFS disk.
pub fn remove(kernel: &Kernel, name: &str) -> Result<(), String> {
    with_bmfs(kernel, |volume| volume.delete(name))
}

/// Copies file `from` of the BMFS disk to a new file `to` with as many blocks, a piece
/// at a time ([`Volume::copy`]); returns the bytes copied. An existing `to` is refused
/// (`rm` it first).
pub fn copy(kernel: &Kernel, from: &str, to: &str) -> Result<u64, String> {
    with_bmfs(kernel, |volume| volume.copy(from, to))
}

/// The BMFS disk's blocks: used, free, files (the directory checked on the way).
pub fn usage(kernel: &Kernel) -> Result<String, String> {
    with_bmfs(kernel, |volume| {
        let (total, free) = (volume.file_blocks(), volume.free_blocks());
        let files = volume.files().count();
        Ok(format!(
            "{} MiB in {total} blocks of 2 MiB: {} used, {free} free; {files} of 64 files",
            total * 2,
            total - free
        ))
    })
}

/// Shows the text file `name` of the BMFS disk a piece at a time through `say`, as `cat`
/// does ([`crate::show_file`]), until `stop` says to stop.
pub fn show_file(
    kernel: &Kernel,
    name: &str,
    say: &dyn Fn(&str),
    stop: &mut dyn FnMut() -> bool,
) -> Result<Shown, String> {
    with_bmfs(kernel, |volume| {
        crate::show_file(
            &mut |offset, buffer| volume.read_at(name, offset, buffer),
            say,
            stop,
        )
    })
}

/// The whole of the file `name` on the BMFS disk, for `load FILE` ([`binary`]).
pub fn read_binary(kernel: &Kernel, name: &str) -> Result<Vec<u8>, String> {
    with_bmfs(kernel, |volume| Ok(binary(volume, name)))?
}

/// The whole of the file `name` on `volume`, refused before a byte of it is read (or
/// memory taken for it) when the directory gives it more bytes than the largest app
/// area ([`BAREMETAL_AREA_MAX`]), which the kernel would refuse after the read.
fn binary<D: Disk>(volume: &mut Volume<D>, name: &str) -> Result<Vec<u8>, String> {
    let size = volume.find(name).map_err(|why| why.to_string())?.size;
    if size > BAREMETAL_AREA_MAX {
        return Err(format!(
            "'{name}' is too large: {size} bytes, the app area holds at most {BAREMETAL_AREA_MAX}"
        ));
    }
    volume.read(name).map_err(|why| why.to_string())
}

/// `extents` alone: every disk's extent table; `extents DISK` one disk's;
/// `extents DISK OP ...` a change made as the monitor (its name is the holder).
pub fn extents(kernel: &Kernel, words: &str) -> Result<Vec<String>, String> {
    let words: Vec<&str> = words.split_whitespace().collect();
    let number = |word: &str| {
        word.parse::<u64>()
            .map_err(|_| format!("'{word}' is not a number"))
    };
    let disks: Vec<usize> = match words.first() {
        Some(disk) => vec![number(disk)? as usize],
        None => kernel
            .devices()
            .iter()
            .filter(|d| d.kind == DeviceKind::Block)
            .map(|d| d.index)
            .collect(),
    };
    let op = match words.get(1..).unwrap_or_default() {
        [] => None,
        ["format"] => Some(ExtentOp::Format { force: false }),
        ["format", "force"] => Some(ExtentOp::Format { force: true }),
        ["alloc", sectors] => Some(ExtentOp::Allocate {
            sectors: number(sectors)?,
        }),
        ["free", start] => Some(ExtentOp::Free {
            start: number(start)?,
        }),
        ["share", start, count, app] => Some(ExtentOp::Share {
            start: number(start)?,
            count: number(count)?,
            reader: String::from(*app),
        }),
        ["revoke", app] => Some(ExtentOp::Revoke {
            reader: String::from(*app),
        }),
        ["grow"] => Some(ExtentOp::Grow { force: false }),
        ["grow", "force"] => Some(ExtentOp::Grow { force: true }),
        ["unprotect"] => Some(ExtentOp::Unprotect),
        _ => {
            return Err(String::from(
                "usage: extents [DISK [format [force]|alloc SECTORS|free START|share START COUNT APP|revoke APP|grow [force]|unprotect]]",
            ));
        }
    };
    if disks.is_empty() {
        return Err(String::from("no disk (`devices` lists them)"));
    }
    let mut lines = Vec::new();
    for disk in disks {
        match kernel.disk_extents(disk, op.clone()) {
            Ok(extents) => {
                lines.push(format!("disk {disk}: {} extent(s)", extents.len()));
                lines.extend(extents.iter().map(|e| {
                    let rights = if e.is_share() {
                        "read-only share"
                    } else {
                        "read-write"
                    };
                    format!("  sectors {}+{} {} {rights}", e.start, e.count, e.holder)
                }));
            }
            Err(error) => lines.push(format!("disk {disk}: {error}")),
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rexo_bmfs::BLOCK;

    /// A BMFS disk of `size` bytes that keeps only its first 4 MiB (block 0, the
    /// directory, and the first file block): the rest reads as zeros and takes writes
    /// without keeping them. Counts the bytes read past the directory's block.
    struct Sparse {
        head: Vec<u8>,
        size: u64,
        file_bytes_read: u64,
    }

    impl Disk for Sparse {
        fn size(&self) -> u64 {
            self.size
        }
        fn read(&mut self, offset: u64, buffer: &mut [u8]) -> Result<(), String> {
            if offset >= BLOCK {
                self.file_bytes_read += buffer.len() as u64;
            }
            buffer.fill(0);
            let kept = self.head.len() as u64;
            let (start, end) = (offset.min(kept), (offset + buffer.len() as u64).min(kept));
            buffer[..(end - start) as usize]
                .copy_from_slice(&self.head[start as usize..end as usize]);
            Ok(())
        }
        fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), String> {
            let kept = self.head.len() as u64;
            let (start, end) = (offset.min(kept), (offset + data.len() as u64).min(kept));
            self.head[start as usize..end as usize]
                .copy_from_slice(&data[..(end - start) as usize]);
            Ok(())
        }
        fn flush(&mut self) -> Result<(), String> {
            Ok(())
        }
    }

    /// A file of the largest app area is read whole for `load`; one a byte larger is
    /// refused, naming its size and the limit, without a byte of it read.
    #[test]
    fn load_refuses_a_file_past_the_app_area_before_reading_it() {
        let disk = Sparse {
            head: vec![0; 4 << 20],
            size: 2 << 30,
            file_bytes_read: 0,
        };
        let mut volume = Volume::format(disk).unwrap();
        let blocks = BAREMETAL_AREA_MAX / BLOCK + 1;
        for (name, size) in [
            ("fits.app", BAREMETAL_AREA_MAX),
            ("big.img", BAREMETAL_AREA_MAX + 1),
        ] {
            volume.create(name, blocks).unwrap();
            let mut piece = vec![0u8; 1 << 20];
            let filled = volume.write_in_pieces(name, size, &mut piece, |_, _| Ok(()));
            filled.unwrap();
        }
        let mut disk = volume.into_disk();
        disk.file_bytes_read = 0;
        let mut volume = Volume::open(disk).unwrap();
        let refused = binary(&mut volume, "big.img").map(|bytes| bytes.len());
        let disk = volume.into_disk();
        assert_eq!(
            (refused, disk.file_bytes_read),
            (
                Err(String::from(
                    "'big.img' is too large: 67108865 bytes, the app area holds at most 67108864"
                )),
                0
            )
        );
        let mut volume = Volume::open(disk).unwrap();
        let read = binary(&mut volume, "fits.app").map(|bytes| bytes.len() as u64);
        assert_eq!(read, Ok(BAREMETAL_AREA_MAX));
    }
}
