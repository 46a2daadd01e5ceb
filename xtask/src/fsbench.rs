//! The file-system rows of the benchmark suite (`cargo xtask bench fs`, docs/bench.md):
//! Rexo's `fsbench` app on the Rexo file system against the same steps in C
//! (`bench/fsbench.c`) on ext4 in the Linux guest, each on a virtio-blk disk of
//! [`IMAGE_BYTES`] whose root holds the same 1 GiB file.
//!
//! The two disk images are made once (the 1 GiB file is written through each file
//! system's own host tool: `rexo_fs` here, `mkfs.ext4 -d` from e2fsprogs; about 10 s)
//! and copied afresh for every boot, so each round starts from the same disk. A later
//! run by the same xtask binary reuses them (a stamp names the binary's size and time:
//! a rebuilt xtask, whose `rexo_fs` may write another format, makes them again).

use crate::Result;
use crate::diskimage::{self, Attach};
use crate::fsimage;
use rexo_fsbench::{BIG_FILE, BIG_FILE_BYTES};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Each disk: the 1 GiB file, the small files and room for either file system's
/// journal and metadata.
pub const IMAGE_BYTES: u64 = 1280 << 20;

/// The QEMU device both guests get.
pub const DISK_DEVICE: &str = "virtio-blk-pci";

/// The two images a run copies for each boot.
pub struct Templates {
    /// The Rexo file system with [`BIG_FILE`].
    pub rexo: PathBuf,
    /// ext4 with `big`.
    pub ext4: PathBuf,
}

/// Both templates in `dir`: the ones an earlier run of this xtask binary made, else
/// made now (about 1 GiB of writes each).
pub fn templates(dir: &Path) -> Result<Templates> {
    let templates = Templates {
        rexo: dir.join("fs-template-rexo.img"),
        ext4: dir.join("fs-template-ext4.img"),
    };
    let stamp = dir.join("fs-templates.stamp");
    let maker = std::env::current_exe()
        .and_then(std::fs::metadata)
        .and_then(|m| Ok(format!("{} {:?}", m.len(), m.modified()?)))
        .map_err(|e| format!("no xtask binary: {e}"))?;
    if std::fs::read_to_string(&stamp).is_ok_and(|made_by| made_by == maker)
        && templates.rexo.is_file()
        && templates.ext4.is_file()
    {
        return Ok(templates);
    }
    let _ = std::fs::remove_file(&stamp);
    eprintln!("xtask: writing the file-system benchmark's disk images (1 GiB file on each)");
    make_templates(dir, &templates)?;
    std::fs::write(&stamp, maker).map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    Ok(templates)
}

/// Makes `templates` in `dir`.
fn make_templates(dir: &Path, templates: &Templates) -> Result<()> {
    let source = dir.join("fs-source");
    std::fs::create_dir_all(&source)
        .map_err(|e| format!("cannot create {}: {e}", source.display()))?;
    let big = source.join(BIG_FILE.trim_start_matches('/'));
    write_big(&big)?;
    let rexo = &templates.rexo;
    let mut fs = fsimage::format_new(rexo, IMAGE_BYTES)?;
    fsimage::put_tree(&mut fs, &big, BIG_FILE)?;
    fs.sync().map_err(|e| format!("{}: {e}", rexo.display()))?;
    let ext4 = &templates.ext4;
    let _ = std::fs::remove_file(ext4);
    let output = Command::new("mkfs.ext4")
        .args([
            "-q",
            "-F",
            "-E",
            "lazy_itable_init=0,lazy_journal_init=0",
            "-d",
        ])
        .arg(&source)
        .arg(ext4)
        .arg(format!("{}M", IMAGE_BYTES >> 20))
        .output()
        .map_err(|e| format!("cannot run mkfs.ext4 ({e}); install package e2fsprogs"))?;
    if !output.status.success() {
        return Err(format!(
            "mkfs.ext4 -d {} {}: {}",
            source.display(),
            ext4.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    std::fs::remove_file(&big).map_err(|e| format!("cannot remove {}: {e}", big.display()))?;
    Ok(())
}

/// Writes [`BIG_FILE_BYTES`] of pseudo-random bytes (neither guest reads zeros).
fn write_big(path: &Path) -> Result<()> {
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).map_err(fail)?);
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..BIG_FILE_BYTES / chunk.len() as u64 {
        for word in chunk.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        file.write_all(&chunk).map_err(fail)?;
    }
    file.flush().map_err(fail)
}

/// A fresh copy of `template` at `copy`, on the host's disk before the guest starts,
/// and QEMU's arguments attaching it.
///
/// The copy leaves the host's page cache holding the image's 1.25 GiB as dirty pages:
/// without the `fsync` here, the guest's first flush (QEMU's `fdatasync`) waited for
/// the host to write them out, 0.6 s charged to whichever phase flushed first (a
/// quarter to a half of Rexo's create phase, a fifth of Linux's), and more or less as
/// the host's own write-back had got on.
pub fn disk(template: &Path, copy: &Path) -> Result<Vec<String>> {
    let fail = |e: std::io::Error| {
        format!(
            "cannot copy {} to {}: {e}",
            template.display(),
            copy.display()
        )
    };
    std::fs::copy(template, copy).map_err(fail)?;
    std::fs::File::open(copy)
        .and_then(|file| file.sync_all())
        .map_err(fail)?;
    diskimage::args(0, Attach::Device(DISK_DEVICE), copy)
}

/// One `fsbench PHASE files=N ns=T` (or `reads=N`) line: the phase and its rate per
/// second. `None` for other lines; an error for a failed phase or a malformed figure.
pub fn parse(line: &str) -> Option<Result<(String, f64)>> {
    let rest = &line[line.find("fsbench ")? + "fsbench ".len()..];
    if rest.contains("FAILED") {
        return Some(Err(format!("fsbench: {rest}")));
    }
    let mut words = rest.split_whitespace();
    let phase = words.next()?;
    let count = words.next()?.split_once('=')?.1;
    let ns = words.next()?.strip_prefix("ns=")?;
    Some(match (count.parse::<f64>(), ns.parse::<f64>()) {
        (Ok(count), Ok(ns)) if ns > 0.0 => Ok((phase.to_string(), count * 1e9 / ns)),
        _ => Err(format!("fsbench: malformed figure `{rest}`")),
    })
}

/// Every phase's rate from a boot's lines; fails unless `fsbench done` is among them.
pub fn read<'a>(lines: impl Iterator<Item = &'a str>) -> Result<Vec<(String, f64)>> {
    let mut figures = Vec::new();
    let mut done = false;
    for line in lines {
        if line.contains("fsbench done") {
            done = true;
        } else if let Some(figure) = parse(line) {
            figures.push(figure?);
        }
    }
    if !done {
        return Err("fsbench did not finish (no `fsbench done`)".into());
    }
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_sides_lines() {
        let rexo = [
            "[  1.000000 0] fsbench create files=10000 ns=2000000000",
            "[  2.000000 0] fsbench randread-raw reads=10000 ns=500000000",
            "[  2.100000 0] fsbench done",
        ];
        let figures = read(rexo.iter().copied()).unwrap();
        assert_eq!(
            figures,
            vec![("create".into(), 5000.0), ("randread-raw".into(), 20000.0)]
        );
        let linux = ["fsbench read files=10000 ns=1000000000", "fsbench done"];
        assert_eq!(read(linux.iter().copied()).unwrap()[0].1, 10000.0);
    }

    #[test]
    fn a_failure_or_an_unfinished_run_is_an_error() {
        let failed = ["fsbench create FAILED: /bench: no space", "fsbench done"];
        assert!(
            read(failed.iter().copied())
                .unwrap_err()
                .contains("no space")
        );
        let unfinished = ["fsbench create files=10000 ns=1"];
        assert!(
            read(unfinished.iter().copied())
                .unwrap_err()
                .contains("done")
        );
        let malformed = ["fsbench create files=x ns=1", "fsbench done"];
        assert!(
            read(malformed.iter().copied())
                .unwrap_err()
                .contains("malformed")
        );
    }
}
