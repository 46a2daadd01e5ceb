//! `cargo xtask fs`: make and inspect Rexo file system images on the host, with the
//! crate (`rexo-fs`) the monitor's `fs` commands use in Rexo: one on-disk format.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use rexo_fs::{BLOCK_SIZE, BlockStore, FileKind, FileSystem};

use crate::Result;

/// The usage of `fs`.
pub const USAGE: &str = "\
  fs IMAGE create SIZE           a new image of SIZE (e.g. 64M, 1G) holding an empty file system
  fs IMAGE ls [DIR]              the entries of DIR (default /)
  fs IMAGE mkdir DIR             make a directory
  fs IMAGE put FILE PATH         copy the host's FILE in as PATH (replacing a file there)
  fs IMAGE get PATH OUT          copy PATH out to the host's OUT
  fs IMAGE rm PATH               remove a file or an empty directory
  fs IMAGE check                 check everything (exit 0 when consistent)
";

/// An image file as 4 KiB blocks.
pub struct FileStore {
    /// The image.
    file: File,
    /// Whole blocks in it.
    blocks: u64,
}

impl BlockStore for FileStore {
    fn blocks(&self) -> u64 {
        self.blocks
    }

    fn read(&mut self, block: u64, buf: &mut [u8]) -> std::result::Result<(), String> {
        self.file
            .read_exact_at(buf, block * BLOCK_SIZE as u64)
            .map_err(|e| format!("reading block {block}: {e}"))
    }

    fn write(&mut self, block: u64, data: &[u8]) -> std::result::Result<(), String> {
        self.file
            .write_all_at(data, block * BLOCK_SIZE as u64)
            .map_err(|e| format!("writing block {block}: {e}"))
    }

    fn flush(&mut self) -> std::result::Result<(), String> {
        self.file.sync_data().map_err(|e| format!("flushing: {e}"))
    }
}

/// The image at `path` as blocks; a new one of `create` bytes when given.
fn store(path: &Path, create: Option<u64>) -> Result<FileStore> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create.is_some())
        .truncate(create.is_some())
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(size) = create {
        file.set_len(size)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let size = file
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    Ok(FileStore {
        file,
        blocks: size / BLOCK_SIZE as u64,
    })
}

/// The file system of the image at `path`, mounted (the journal replayed).
pub fn mount(path: &Path) -> Result<FileSystem<FileStore>> {
    FileSystem::mount(store(path, None)?).map_err(|e| format!("{}: {e}", path.display()))
}

/// `cargo xtask fs ARGS`.
pub fn command(argv: &[String]) -> Result<()> {
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    let fail = |e: rexo_fs::FsError| e.to_string();
    match args.as_slice() {
        [image, "create", size] => {
            let bytes = crate::disk::parse_size(size)?;
            let fs = FileSystem::format(store(Path::new(image), Some(bytes))?).map_err(fail)?;
            let s = fs.statfs();
            println!("{image}: {} data blocks of 4 KiB", s.total_blocks);
            Ok(())
        }
        [image, "ls", rest @ ..] => {
            let dir = rest.first().copied().unwrap_or("/");
            for entry in mount(Path::new(image))?.list(dir).map_err(fail)? {
                match entry.kind {
                    FileKind::Directory => println!("{}/", entry.name),
                    FileKind::File => println!("{:<40} {:>12} bytes", entry.name, entry.size),
                }
            }
            Ok(())
        }
        [image, "mkdir", dir] => mount(Path::new(image))?.mkdir(dir).map_err(fail),
        [image, "put", file, path] => {
            let data = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
            let mut fs = mount(Path::new(image))?;
            put(&mut fs, path, &data)?;
            fs.sync().map_err(fail)?;
            println!("{path}: {} bytes", data.len());
            Ok(())
        }
        [image, "get", path, out] => {
            let data = mount(Path::new(image))?.read_all(path).map_err(fail)?;
            std::fs::write(out, &data).map_err(|e| format!("{out}: {e}"))?;
            println!("{path}: {} bytes to {out}", data.len());
            Ok(())
        }
        [image, "rm", path] => {
            let mut fs = mount(Path::new(image))?;
            match fs.stat(path).map_err(fail)?.kind {
                FileKind::Directory => fs.rmdir(path),
                FileKind::File => fs.unlink(path),
            }
            .map_err(fail)
        }
        [image, "check"] => {
            let r = FileSystem::fsck(&mut store(Path::new(image), None)?)
                .map_err(|e| format!("{image}: {e}"))?;
            println!(
                "{image}: consistent, {} directories, {} files, {} blocks used, {} free, {} journal transactions to replay",
                r.directories, r.files, r.used_blocks, r.free_blocks, r.journal_transactions
            );
            Ok(())
        }
        _ => Err(format!("usage:\n{USAGE}")),
    }
}

/// Makes `path` hold exactly `data` (created if missing).
fn put(fs: &mut FileSystem<FileStore>, path: &str, data: &[u8]) -> Result<()> {
    let fail = |e: rexo_fs::FsError| format!("{path}: {e}");
    match fs.create(path) {
        Ok(()) | Err(rexo_fs::FsError::Exists(_)) => {}
        Err(error) => return Err(fail(error)),
    }
    fs.truncate(path, 0).map_err(fail)?;
    fs.write(path, 0, data).map_err(fail)
}

/// A nested page of the `net::httpd-rexofs` case's image, beside the site files.
pub const NESTED: (&str, &[u8]) = (
    "/docs/guide/index.html",
    b"<p>a page two directories down</p>\n",
);

/// Writes a fresh 16 MiB image at `path` holding `disk::site_files()` at the root and
/// [`NESTED`], for httpd to serve.
pub fn image_of_site(path: &Path) -> Result<()> {
    let mut fs = FileSystem::format(store(path, Some(16 << 20))?).map_err(|e| e.to_string())?;
    for (name, data) in crate::disk::site_files() {
        put(&mut fs, &format!("/{name}"), &data)?;
    }
    fs.mkdir("/docs").map_err(|e| e.to_string())?;
    fs.mkdir("/docs/guide").map_err(|e| e.to_string())?;
    put(&mut fs, NESTED.0, NESTED.1)?;
    fs.sync().map_err(|e| e.to_string())
}

/// The host's text file of the `storage::rexofs-monitor` case.
pub const HELLO: (&str, &str) = ("/docs/hello.txt", "hello from the host tool\nline two\n");
/// Its 300 KiB file, removed in Rexo.
pub const BIG: &str = "/big.bin";

/// Writes a fresh 16 MiB image at `path` holding [`HELLO`] and [`BIG`].
pub fn image_for_monitor(path: &Path) -> Result<()> {
    let mut fs = FileSystem::format(store(path, Some(16 << 20))?).map_err(|e| e.to_string())?;
    fs.mkdir("/docs").map_err(|e| e.to_string())?;
    put(&mut fs, HELLO.0, HELLO.1.as_bytes())?;
    let big: Vec<u8> = (0..300 * 1024u32).map(|i| (i % 251) as u8).collect();
    put(&mut fs, BIG, &big)?;
    fs.sync().map_err(|e| e.to_string())
}

/// What the `storage::rexofs-monitor` case's input must have left on the image at
/// `path`: the copy and the file written in Rexo, the big file gone, a consistent tree.
pub fn check_after_monitor(path: &Path) -> Result<()> {
    let mut fs = mount(path)?;
    let read = |fs: &mut FileSystem<FileStore>, file: &str| {
        fs.read_all(file)
            .map_err(|e| format!("{file} after the run: {e}"))
    };
    if read(&mut fs, "/new/copy.txt")? != HELLO.1.as_bytes() {
        return Err("/new/copy.txt differs from the host's file".into());
    }
    if read(&mut fs, "/new/written.txt")? != b"written in Rexo\n" {
        return Err("/new/written.txt does not hold what Rexo wrote".into());
    }
    if fs.stat(BIG).is_ok() {
        return Err(format!("{BIG} is still there, removed in Rexo"));
    }
    fs.check()
        .map(|_| ())
        .map_err(|e| format!("after the run: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_made_here_reads_back_and_the_check_names_what_is_missing() {
        let path = std::env::temp_dir().join(format!("rexo-fs-test-{}.img", std::process::id()));
        image_for_monitor(&path).unwrap();
        let mut fs = mount(&path).unwrap();
        assert_eq!(fs.read_all(HELLO.0).unwrap(), HELLO.1.as_bytes());
        assert_eq!(fs.read_all(BIG).unwrap().len(), 300 * 1024);
        drop(fs);
        let missing = check_after_monitor(&path).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(missing.contains("/new/copy.txt"), "{missing}");
    }
}
