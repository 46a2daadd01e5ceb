//! `cargo xtask fs`: make and inspect Rexo file system images on the host, with the
//! crate (`rexo-fs`) the monitor's `fs` commands use in Rexo: one on-disk format.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rexo_fs::{BLOCK_SIZE, BlockStore, FileKind, FileSystem};

use crate::Result;
use crate::staged::Staged;

/// The usage of `fs`.
pub const USAGE: &str = "  fs IMAGE create SIZE [--force]  a new image of SIZE (e.g. 64M, 1G) holding an empty file system
                                 (--force: replace a file IMAGE that holds anything)
  fs IMAGE ls [DIR]              the entries of DIR (default /)
  fs IMAGE mkdir DIR             make a directory
  fs IMAGE put FILE PATH         copy the host's FILE in as PATH (replacing a file there);
                                 a host directory is copied with everything under it
  fs IMAGE get PATH OUT          copy PATH out to the host's OUT; a directory with
                                 everything under it
  fs IMAGE rm PATH               remove a file or an empty directory
  fs IMAGE check                 check everything (exit 0 when consistent)
  fs IMAGE repair                repair a damaged file system, saying what was lost
                                 (checked first; a copy is repaired, then put in the
                                 image's place)
";

/// An image file as 4 KiB blocks.
pub struct FileStore {
    /// The image.
    file: File,
    /// Whole blocks in it (in its partition, in a partitioned image).
    blocks: u64,
    /// Where the file system starts (a partition's first byte; 0 for a whole image).
    offset: u64,
}

impl BlockStore for FileStore {
    fn blocks(&self) -> u64 {
        self.blocks
    }

    fn read(&mut self, block: u64, buf: &mut [u8]) -> std::result::Result<(), String> {
        self.file
            .read_exact_at(buf, self.offset + block * BLOCK_SIZE as u64)
            .map_err(|e| format!("reading block {block}: {e}"))
    }

    fn write(&mut self, block: u64, data: &[u8]) -> std::result::Result<(), String> {
        self.file
            .write_all_at(data, self.offset + block * BLOCK_SIZE as u64)
            .map_err(|e| format!("writing block {block}: {e}"))
    }

    fn flush(&mut self) -> std::result::Result<(), String> {
        self.file.sync_data().map_err(|e| format!("flushing: {e}"))
    }
}

/// The image at `path` as blocks (its Rexo file system partition, if it has one),
/// locked against other processes while it is open (`imagelock`: refused when a QEMU
/// has it).
fn store(path: &Path) -> Result<FileStore> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    crate::imagelock::hold(&file, path)?;
    let size = file
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    let (offset, size) =
        crate::disk::partition_of(&file, size, rexo_mbr::TYPE_REXO_FS, "Rexo file system")
            .map_err(|e| format!("{}: {e}", path.display()))?
            .unwrap_or((0, size));
    Ok(FileStore {
        file,
        blocks: size / BLOCK_SIZE as u64,
        offset,
    })
}

/// Formats the Rexo file system partition of the partitioned image at `path`.
pub fn format_partition(path: &Path) -> Result<FileSystem<FileStore>> {
    let store = store(path)?;
    if store.offset == 0 {
        return Err(format!("{}: no Rexo file system partition", path.display()));
    }
    FileSystem::format(store).map_err(|e| format!("the Rexo file system partition: {e}"))
}

/// A partitioned 48 MiB image for `storage::partitioned`: BMFS holding
/// `disk::NOTES` and the Rexo file system holding [`HELLO`].
pub fn partitioned_for_monitor(path: &Path) -> Result<()> {
    crate::disk::partitioned(path, 48 << 20, 16 << 20, None)?;
    crate::disk::put_notes(path)?;
    let mut fs = mount(path)?;
    fs.mkdir("/docs").map_err(|e| e.to_string())?;
    fs.replace(HELLO.0, HELLO.1.as_bytes())
        .map_err(|e| e.to_string())?;
    fs.sync().map_err(|e| e.to_string())
}

/// A new image of `bytes` at `path`, formatted whole, replacing any file there once it
/// is made: a size too small for the file system, or past the host's file system
/// holding it (`Staged::create_sized`), is refused before anything is written, and an
/// image that cannot be made (past the largest file the host allows, ...) leaves the
/// old file as it was.
pub fn format_new(path: &Path, bytes: u64) -> Result<FileSystem<FileStore>> {
    let name = path.display();
    let min_bytes = rexo_fs::MIN_DISK_BLOCKS * BLOCK_SIZE as u64;
    if bytes < min_bytes {
        return Err(format!(
            "{name}: {bytes} bytes are too small for a Rexo file system ({} KiB at least); \
             nothing was written",
            min_bytes >> 10
        ));
    }
    let staged = Staged::create_sized(path, "creating", bytes)?;
    let disk = FileStore {
        file: staged.handle()?,
        blocks: bytes / BLOCK_SIZE as u64,
        offset: 0,
    };
    let fs = FileSystem::format(disk).map_err(|e| format!("{name}: {e}"))?;
    staged.commit()?;
    Ok(fs)
}

/// The file system of the image at `path`, mounted (the journal replayed).
pub fn mount(path: &Path) -> Result<FileSystem<FileStore>> {
    FileSystem::mount(store(path)?).map_err(|e| format!("{}: {e}", path.display()))
}

/// `text` for the terminal, each control character escaped (`\u{1b}` for ESC, `\n` for
/// a line end): a name in the file system holds any character but `/` and NUL, and
/// printed as it is one could reset the terminal or fake a line of the listing.
pub fn shown(text: &str) -> String {
    text.chars()
        .fold(String::with_capacity(text.len()), |mut shown, c| {
            if c.is_control() {
                shown.extend(c.escape_debug());
            } else {
                shown.push(c);
            }
            shown
        })
}

/// The error `e` about `path`, naming `path` once: most of the file system's errors name
/// the path they are about ("/a: not found"), others are prefixed with it.
fn about(path: &str, e: rexo_fs::FsError) -> String {
    let said = e.to_string();
    if said.contains(path) {
        said
    } else {
        format!("{path}: {said}")
    }
}

/// The line `fs IMAGE ls` prints for `entry`, its name [`shown`].
fn listing_line(entry: &rexo_fs::DirEntry) -> String {
    let name = shown(&entry.name);
    match entry.kind {
        FileKind::Directory => format!("{name}/"),
        FileKind::File => format!("{name:<40} {:>12} bytes", entry.size),
    }
}

/// `cargo xtask fs ARGS`; an error, which may name a path of the file system, has its
/// control characters escaped ([`shown`]), but for the usage's lines.
pub fn command(argv: &[String]) -> Result<()> {
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    run(&args).map_err(|e| if e.ends_with(USAGE) { e } else { shown(&e) })
}

/// Each `fs IMAGE` command and the words it cannot do without, as [`USAGE`] writes them.
const NEEDED: &[(&str, &[&str])] = &[
    ("create", &["SIZE"]),
    ("mkdir", &["DIR"]),
    ("put", &["FILE", "PATH"]),
    ("get", &["PATH", "OUT"]),
    ("rm", &["PATH"]),
];

/// The error of a line `fs` does not take (`args`, after `fs`): the image or the command
/// it lacks (then [`USAGE`]) or the words its command lacks ([`crate::args::missing`]),
/// else that it is no `fs` line, then [`USAGE`]. It holds none of the line's words.
fn usage(args: &[&str]) -> String {
    if args.len() < 2 {
        let shape = ["fs", "IMAGE", "COMMAND"];
        let missing = crate::args::missing(&shape, args.len() + 1);
        return format!("{missing}; its commands:\n{USAGE}");
    }
    let needed = NEEDED.iter().find(|(name, _)| *name == args[1]);
    if let Some((command, needs)) = needed
        && args.len() < needs.len() + 2
    {
        let shape: Vec<&str> = ["fs", "IMAGE", command]
            .iter()
            .chain(*needs)
            .copied()
            .collect();
        return crate::args::missing(&shape, args.len() + 1);
    }
    format!("not a `cargo xtask fs` command line; its commands:\n{USAGE}")
}

/// [`command`]'s work.
fn run(args: &[&str]) -> Result<()> {
    let fail = |e: rexo_fs::FsError| e.to_string();
    match args {
        [image, "create", size]
        | [image, "create", size, "--force"]
        | [image, "create", "--force", size] => {
            let bytes = crate::disk::parse_size(size)?;
            Staged::may_replace(Path::new(image), args.len() == 4)?;
            let fs = format_new(Path::new(image), bytes)?;
            let s = fs.statfs();
            println!("{image}: {} data blocks of 4 KiB", s.total_blocks);
            Ok(())
        }
        [image, "ls", rest @ ..] => {
            let dir = rest.first().copied().unwrap_or("/");
            for entry in mount(Path::new(image))?.list(dir).map_err(fail)? {
                println!("{}", listing_line(&entry));
            }
            Ok(())
        }
        [image, "mkdir", dir] => mount(Path::new(image))?.mkdir(dir).map_err(fail),
        [image, "put", file, path] => {
            // Listed whole first: a tree it refuses, or one holding the image, changes nothing.
            let tree = host_tree(Path::new(file), path)?;
            for (_, host) in &tree.files {
                refuse_putting_the_image(host, Path::new(image))?;
            }
            let mut fs = mount(Path::new(image))?;
            // One image, all or nothing per file: group the copies into few journal
            // transactions, made durable and written home by the sync at the end.
            fs.set_commit_policy(rexo_fs::CommitPolicy::OnCommit)
                .map_err(fail)?;
            let (files, bytes) = put_host_tree(&mut fs, &tree)?;
            fs.sync().map_err(fail)?;
            println!("{path}: {files} files, {bytes} bytes");
            Ok(())
        }
        [image, "get", path, out] => {
            let mut fs = mount(Path::new(image))?;
            let (files, bytes) = get_tree(&mut fs, path, Path::new(out), Path::new(image))?;
            println!("{path}: {files} files, {bytes} bytes to {out}");
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
            let r = FileSystem::fsck(&mut store(Path::new(image))?)
                .map_err(|e| format!("{image}: {e}"))?;
            println!(
                "{image}: consistent, {} directories, {} files, {} blocks used, {} free, {} journal transactions to replay",
                r.directories, r.files, r.used_blocks, r.free_blocks, r.journal_transactions
            );
            Ok(())
        }
        [image, "repair"] => repair(Path::new(image)),
        _ => Err(usage(args)),
    }
}

/// `fs IMAGE repair`: checks the image first and, only when the check refuses it,
/// repairs a copy (`IMAGE.repairing`, made keeping the image's holes) and renames it over
/// the image, so that an interrupted repair leaves the image as it was; the copy is
/// removed on every error, and a consistent image is left untouched.
fn repair(image: &Path) -> Result<()> {
    let name = image.display();
    // Held (and with it the image's lock) until the repaired copy replaces the image;
    // the copy is read through it, as closing another descriptor of the image would
    // end the lock.
    let mut original = store(image)?;
    if FileSystem::fsck(&mut original).is_ok() {
        println!("{name}: consistent, nothing to repair");
        return Ok(());
    }
    let copy = Staged::create(image, "repairing")?;
    copy_keeping_holes(&original.file, copy.file())
        .map_err(|e| format!("{name}: copying it to repair: {e}"))?;
    let disk = store(copy.path())?;
    let (fs, report) = FileSystem::repair(disk).map_err(|e| format!("{name}: {e}"))?;
    drop(fs);
    if report.fixes.is_empty() {
        println!("{name}: consistent, nothing to repair");
        return Ok(());
    }
    copy.commit()?;
    for fix in &report.fixes {
        println!("{name}: {}", shown(fix));
    }
    let r = report.result;
    println!(
        "{name}: repaired ({} problems), {} directories, {} files, {} blocks used, {} free",
        report.fixes.len(),
        r.directories,
        r.files,
        r.used_blocks,
        r.free_blocks
    );
    Ok(())
}

/// How much `fs` (and `disk put`) copies at a time, in and out: the most of a file held
/// in memory.
pub const CHUNK: usize = 1 << 20;

/// The runs of whole 4 KiB blocks of `piece` (which starts at byte `at` of its file) that
/// are not all zeros, each with where it starts: what a copy writes, leaving the blocks
/// of zeros between them holes.
fn nonzero_runs(piece: &[u8], at: u64) -> Vec<(u64, &[u8])> {
    let mut runs = Vec::new();
    let mut run_start = None;
    for (index, block) in piece.chunks(BLOCK_SIZE).enumerate() {
        let offset = index * BLOCK_SIZE;
        match (block.iter().any(|&byte| byte != 0), run_start) {
            (true, None) => run_start = Some(offset),
            (false, Some(start)) => {
                runs.push((at + start as u64, &piece[start..offset]));
                run_start = None;
            }
            _ => {}
        }
    }
    if let Some(start) = run_start {
        runs.push((at + start as u64, &piece[start..]));
    }
    runs
}

/// Writes the 4 KiB blocks of `piece` that are not all zeros to `to` at `at` onwards,
/// leaving the others as holes (the file's length set by the caller).
fn write_nonzero_blocks(to: &File, piece: &[u8], at: u64) -> std::io::Result<()> {
    for (at, run) in nonzero_runs(piece, at) {
        to.write_all_at(run, at)?;
    }
    Ok(())
}

/// The next range of bytes at or after `at` (and before `len`) that the host's file
/// system holds data for in `file` (`SEEK_DATA`, `SEEK_HOLE`), its start rounded down
/// to a 4 KiB boundary; `None` when only a hole is left.
fn next_data(file: &File, at: u64, len: u64) -> std::io::Result<Option<std::ops::Range<u64>>> {
    use rustix::fs::{SeekFrom, seek};
    let start = match seek(file, SeekFrom::Data(at)) {
        Ok(start) if start < len => start,
        Ok(_) | Err(rustix::io::Errno::NXIO) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let end = seek(file, SeekFrom::Hole(start))?.min(len);
    let start = (start - start % BLOCK_SIZE as u64).max(at);
    Ok(Some(start..end))
}

/// Copies all of `from` into the empty file `to`, leaving holes where `from` has them:
/// only the ranges the host's file system holds data for ([`next_data`]) are read, and
/// the 4 KiB blocks of zeros in them are not written either.
fn copy_keeping_holes(from: &File, to: &File) -> std::io::Result<()> {
    let len = from.metadata()?.len();
    to.set_len(len)?;
    let mut buffer = vec![0u8; CHUNK];
    let mut at = 0;
    while let Some(data) = next_data(from, at, len)? {
        let mut offset = data.start;
        while offset < data.end {
            let piece = &mut buffer[..(data.end - offset).min(CHUNK as u64) as usize];
            from.read_exact_at(piece, offset)?;
            write_nonzero_blocks(to, piece, offset)?;
            offset += piece.len() as u64;
        }
        at = data.end;
    }
    to.sync_data()
}

/// A file for [`put_grouped`] (and `disk put`) to copy in, read a piece at a time.
pub trait PutSource {
    /// Its length in bytes.
    fn len(&self) -> u64;
    /// Its length now: a host file's may have changed since it was opened.
    fn len_now(&self) -> Result<u64>;
    /// Fills `buf` with its bytes from `at` on.
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> Result<()>;
    /// The next range at or after `at` that may hold bytes other than zeros (the bytes
    /// before it are zeros); `None` when only zeros are left.
    fn next_data(&self, at: u64) -> Result<Option<std::ops::Range<u64>>>;
}

/// Bytes in memory (the test images' files).
impl PutSource for &[u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn len_now(&self) -> Result<u64> {
        Ok(PutSource::len(self))
    }

    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> Result<()> {
        let bytes = usize::try_from(at)
            .ok()
            .and_then(|at| self.get(at..at.checked_add(buf.len())?))
            .ok_or_else(|| format!("{} bytes from {at}: past the end", buf.len()))?;
        buf.copy_from_slice(bytes);
        Ok(())
    }

    fn next_data(&self, at: u64) -> Result<Option<std::ops::Range<u64>>> {
        let len = PutSource::len(self);
        Ok((at < len).then_some(at..len))
    }
}

/// A regular file of the host, open; its length as it was when opened is what is copied.
pub struct HostFile {
    /// The file.
    file: File,
    /// Its path, for errors.
    path: std::path::PathBuf,
    /// Its length when opened.
    len: u64,
}

impl HostFile {
    /// Opens the host's regular file `path` (anything else is refused before it is
    /// opened: `crate::disk::host_file_size`).
    pub fn open(path: &Path) -> Result<Self> {
        crate::disk::host_file_size(path)?;
        let fail = |e: std::io::Error| format!("{}: {e}", path.display());
        let file = File::open(path).map_err(fail)?;
        let len = file.metadata().map_err(fail)?.len();
        Ok(HostFile {
            file,
            path: path.to_path_buf(),
            len,
        })
    }
}

impl PutSource for HostFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn len_now(&self) -> Result<u64> {
        let metadata = self.file.metadata();
        Ok(metadata
            .map_err(|e| format!("{}: {e}", self.path.display()))?
            .len())
    }

    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> Result<()> {
        let name = self.path.display();
        self.file.read_exact_at(buf, at).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                format!("{name} shrank below {} bytes while it was read", self.len)
            } else {
                format!("{name}: {e}")
            }
        })
    }

    fn next_data(&self, at: u64) -> Result<Option<std::ops::Range<u64>>> {
        next_data(&self.file, at, self.len).map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

/// Copies the host's `from` (a file, or a directory with everything under it) in as
/// `to`; the files and bytes copied. The host's tree is listed whole first
/// ([`host_tree`]: one it refuses changes nothing), then the directories are made, then
/// the files are written in [`put_grouped`]'s order.
pub fn put_tree<D: BlockStore>(
    fs: &mut FileSystem<D>,
    from: &Path,
    to: &str,
) -> Result<(u64, u64)> {
    put_host_tree(fs, &host_tree(from, to)?)
}

/// [`put_tree`] of a host tree already listed.
fn put_host_tree<D: BlockStore>(fs: &mut FileSystem<D>, tree: &HostTree) -> Result<(u64, u64)> {
    make_directories(fs, &tree.directories)?;
    let paths: Vec<String> = tree.files.iter().map(|(path, _)| path.clone()).collect();
    put_grouped(fs, &paths, &|index| {
        Ok(Box::new(HostFile::open(&tree.files[index].1)?))
    })
}

/// A host tree as [`put_tree`] puts it.
struct HostTree {
    /// The directories to make, each after its parent.
    directories: Vec<String>,
    /// The files: path in the file system, path on the host; in name order.
    files: Vec<(String, PathBuf)>,
}

/// The host's `from` (a file, or a directory with everything under it, symbolic links
/// followed) as it is to be put under `to`. A directory met again below itself (a
/// symbolic link to it or to a directory above it), whose walk would never end, is
/// refused, naming the link.
fn host_tree(from: &Path, to: &str) -> Result<HostTree> {
    let mut tree = HostTree {
        directories: Vec::new(),
        files: Vec::new(),
    };
    walk_host_tree(from, to, &mut Vec::new(), &mut tree)?;
    Ok(tree)
}

/// [`host_tree`]'s walk of `from`, below the host directories `above` (device and
/// inode, and path).
fn walk_host_tree(
    from: &Path,
    to: &str,
    above: &mut Vec<((u64, u64), PathBuf)>,
    tree: &mut HostTree,
) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(from).map_err(|e| format!("{}: {e}", from.display()))?;
    if !meta.is_dir() {
        crate::disk::host_file_size(from)?;
        tree.files.push((to.to_string(), from.to_path_buf()));
        return Ok(());
    }
    let id = (meta.dev(), meta.ino());
    if let Some((_, first)) = above.iter().find(|(seen, _)| *seen == id) {
        return Err(format!(
            "{} leads back to {} above it (a loop of symbolic links, never ending); \
             nothing was put",
            from.display(),
            first.display()
        ));
    }
    tree.directories.push(to.to_string());
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .map_err(|e| format!("{}: {e}", from.display()))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| format!("{}: {e}", from.display()))?;
    entries.sort_by_key(|e| e.file_name());
    above.push((id, from.to_path_buf()));
    for entry in entries {
        let name = entry.file_name();
        let name = name
            .to_str()
            .ok_or_else(|| format!("{}: a name that is not UTF-8", entry.path().display()))?;
        let path = format!("{}/{name}", to.trim_end_matches('/'));
        walk_host_tree(&entry.path(), &path, above, tree)?;
    }
    above.pop();
    Ok(())
}

/// Makes the `directories` of a host tree, each after its parent; one there already is
/// kept.
fn make_directories<D: BlockStore>(fs: &mut FileSystem<D>, directories: &[String]) -> Result<()> {
    for to in directories {
        match fs.mkdir(to) {
            Ok(()) | Err(rexo_fs::FsError::Exists(_)) => {}
            Err(e) => return Err(format!("{to}: {e}")),
        }
    }
    Ok(())
}

/// Writes the files `paths` (their parents exist; `open(i)` gives the bytes of
/// `paths[i]`, each copied by [`put_file`]) with Cheetah's grouping: the HTML pages
/// first, in order, each followed on disk by the files it links to that are among
/// `paths` and not written yet (`rexo_http::linked_paths` over the page's first MiB,
/// [`LINKS_LOOKED_FOR_IN`]; `FileSystem::write_after`), so that httpd reading the page
/// reads them with it; then the rest in order. Links resolve in the file system's
/// namespace (httpd serves its root), so absolute links of a tree put under a
/// subdirectory do not group. Returns the files and bytes written.
pub fn put_grouped<'a, D: BlockStore>(
    fs: &mut FileSystem<D>,
    paths: &[String],
    open: &dyn Fn(usize) -> Result<Box<dyn PutSource + 'a>>,
) -> Result<(u64, u64)> {
    let index_of: std::collections::HashMap<&str, usize> = paths
        .iter()
        .enumerate()
        .map(|(index, path)| (path.as_str(), index))
        .collect();
    let mut written = vec![false; paths.len()];
    let mut total = (0, 0);
    let mut put = |fs: &mut FileSystem<D>,
                   written: &mut [bool],
                   index: usize,
                   source: &dyn PutSource,
                   after: Option<&str>|
     -> Result<()> {
        let bytes = put_file(fs, &paths[index], source, after)?;
        written[index] = true;
        total = (total.0 + 1, total.1 + bytes);
        Ok(())
    };
    let is_page = |path: &str| {
        let lower = path.to_ascii_lowercase();
        lower.ends_with(".html") || lower.ends_with(".htm")
    };
    for (index, page) in paths.iter().enumerate() {
        if !is_page(page) {
            continue;
        }
        let source = open(index)?;
        if !written[index] {
            put(fs, &mut written, index, &*source, None)?;
        }
        let mut start = vec![0u8; source.len().min(LINKS_LOOKED_FOR_IN) as usize];
        source.read_exact_at(&mut start, 0)?;
        drop(source);
        let mut previous = page.as_str();
        for link in rexo_http::linked_paths(page, &start) {
            if let Some(&linked) = index_of.get(link.as_str())
                && !written[linked]
            {
                put(fs, &mut written, linked, &*open(linked)?, Some(previous))?;
                previous = &paths[linked];
            }
        }
    }
    for index in 0..paths.len() {
        if !written[index] {
            put(fs, &mut written, index, &*open(index)?, None)?;
        }
    }
    Ok(total)
}

/// How much of a page [`put_grouped`] looks for links in: its first MiB. A page past
/// `rexo_fs::DEFAULT_READ_TOGETHER` blocks (128 KiB) is not read together with its
/// neighbours anyway, and a link missed costs placement only.
const LINKS_LOOKED_FOR_IN: u64 = CHUNK as u64;

/// Makes `path` of `fs` hold the bytes of `source`, copied [`CHUNK`] bytes at a time so
/// that a file as large as the disk is never held whole, a 4 KiB block of zeros (or a
/// hole the host's file system keeps) left a hole; with `after`, the file's first block
/// is placed after that file's last (`FileSystem::write_after`). As
/// `FileSystem::replace` does, the file is made or emptied first, then written in order.
/// A source whose data takes more blocks ([`data_blocks`]: holes take none) than
/// [`room_for`] is refused before anything is read or written; a failure midway (a read
/// of the host's file, or room short by the blocks a directory or an extent map takes,
/// which the check does not count), as a crash would, leaves the file holding part of
/// the bytes. Returns the bytes copied.
fn put_file<D: BlockStore>(
    fs: &mut FileSystem<D>,
    path: &str,
    source: &dyn PutSource,
    after: Option<&str>,
) -> Result<u64> {
    let fail = |e: rexo_fs::FsError| about(path, e);
    let (len, needed, most) = (source.len(), data_blocks(source)?, room_for(fs, path));
    if needed > most {
        return Err(format!(
            "{path}: the data of its {len} bytes takes {needed} blocks of {BLOCK_SIZE} \
             bytes, and there is room for {most}; nothing was read"
        ));
    }
    match fs.create(path) {
        Ok(()) | Err(rexo_fs::FsError::Exists(_)) => {}
        Err(e) => return Err(fail(e)),
    }
    fs.truncate(path, 0).map_err(fail)?;
    let mut buffer = vec![0u8; CHUNK];
    let mut neighbour = after;
    let mut at = 0;
    while let Some(data) = source.next_data(at)? {
        let mut offset = data.start;
        while offset < data.end {
            let piece = &mut buffer[..(data.end - offset).min(CHUNK as u64) as usize];
            source
                .read_exact_at(piece, offset)
                .map_err(|e| format!("{e}; {path} is left holding part of it"))?;
            for (run_at, run) in nonzero_runs(piece, offset) {
                match neighbour.take() {
                    Some(neighbour) => fs.write_after(path, run_at, run, neighbour),
                    None => fs.write(path, run_at, run),
                }
                .map_err(fail)?;
            }
            offset += piece.len() as u64;
        }
        at = data.end;
    }
    fs.truncate(path, len).map_err(fail)?;
    Ok(len)
}

/// The most data blocks a file written at `path` of `fs` can take: the free blocks, and
/// the blocks of the file there, which it replaces.
fn room_for<D: BlockStore>(fs: &mut FileSystem<D>, path: &str) -> u64 {
    let replaced = match fs.stat(path) {
        Ok(file) if file.kind == FileKind::File => file.blocks,
        _ => 0,
    };
    fs.statfs().free_blocks.saturating_add(replaced)
}

/// The blocks of [`BLOCK_SIZE`] bytes that `source` takes at most once put in: those of
/// the ranges that may hold bytes other than zeros ([`PutSource::next_data`]), found
/// without reading it. A hole takes none, as rexo-fs keeps it (only the blocks written
/// are allocated), nor does a block of zeros in a range, which [`put_file`] leaves a
/// hole too.
fn data_blocks(source: &dyn PutSource) -> Result<u64> {
    let block = BLOCK_SIZE as u64;
    let (mut blocks, mut counted_to, mut at) = (0, 0, 0);
    while let Some(data) = source.next_data(at)? {
        let first = (data.start / block).max(counted_to);
        counted_to = data.end.div_ceil(block);
        blocks += counted_to.saturating_sub(first);
        at = data.end;
    }
    Ok(blocks)
}

/// Copies `from` (a file, or a directory with everything under it) out to the host's
/// `to`; the files and bytes copied. A file is copied a MiB at a time ([`get_file`]).
pub fn get_tree(
    fs: &mut FileSystem<FileStore>,
    from: &str,
    to: &Path,
    image: &Path,
) -> Result<(u64, u64)> {
    let fail = |e: rexo_fs::FsError| about(from, e);
    if fs.stat(from).map_err(fail)?.kind == FileKind::File {
        return Ok((1, get_file(fs, from, to, image)?));
    }
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let mut total = (0, 0);
    for entry in fs.list(from).map_err(fail)? {
        let path = format!("{}/{}", from.trim_end_matches('/'), entry.name);
        let (files, bytes) = get_tree(fs, &path, &to.join(&entry.name), image)?;
        total = (total.0 + files, total.1 + bytes);
    }
    Ok(total)
}

/// Copies the file `from` out to the host's new file `to` a MiB at a time, so that a file
/// as large as the disk is never held whole; a 4 KiB block of zeros (a hole, or zeros written)
/// is left a hole in `to`. Returns the bytes copied.
fn get_file(fs: &mut FileSystem<FileStore>, from: &str, to: &Path, image: &Path) -> Result<u64> {
    let fail = |e: rexo_fs::FsError| about(from, e);
    let host = |e: std::io::Error| format!("{}: {e}", to.display());
    let mut file = fs.open(from).map_err(fail)?;
    refuse_the_image(to, image)?;
    let out = File::create(to).map_err(host)?;
    let mut buffer = vec![0u8; CHUNK];
    let mut at = 0;
    loop {
        let read = fs.read_at(&mut file, at, &mut buffer).map_err(fail)?;
        if read == 0 {
            break;
        }
        write_nonzero_blocks(&out, &buffer[..read], at).map_err(host)?;
        at += read as u64;
    }
    out.set_len(at).map_err(host)?;
    Ok(at)
}

/// Refuses `out`, a host file a command is about to write what it reads from `image`
/// to, when it is the image itself under any name (same device and inode): creating it
/// would empty the image before its file was read.
pub fn refuse_the_image(out: &Path, image: &Path) -> Result<()> {
    match (file_id(out), file_id(image)) {
        (Some(out_id), Some(image_id)) if out_id == image_id => Err(format!(
            "{} is the image {} itself: writing the file out there would empty the \
             image; the image is left as it was",
            out.display(),
            image.display()
        )),
        _ => Ok(()),
    }
}

/// The device and inode of the file at `path` (links followed), if it can be read.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Refuses to put the host's file `host` into `image` when it is the image itself under
/// any name (same device and inode): the copy would read the image while it changes, a
/// file of whatever the image held part-way.
pub fn refuse_putting_the_image(host: &Path, image: &Path) -> Result<()> {
    match (file_id(host), file_id(image)) {
        (Some(host_id), Some(image_id)) if host_id == image_id => Err(format!(
            "{} is the image {} itself: it cannot be put into itself; nothing was put",
            host.display(),
            image.display()
        )),
        _ => Ok(()),
    }
}

/// A nested page of the `net::httpd-rexofs` case's image, beside the site files.
pub const NESTED: (&str, &[u8]) = (
    "/docs/guide/index.html",
    b"<p>a page two directories down</p>\n",
);

/// Writes a fresh 16 MiB image at `path` holding `disk::site_files()` at the root and
/// [`NESTED`], for httpd to serve.
pub fn image_of_site(path: &Path) -> Result<()> {
    put_site(format_new(path, 16 << 20)?)
}

/// A bootable image at `path` (`cargo xtask disk partition ... --boot`'s code) that
/// starts `elf` with the command line `append`: the boot partition the kernel needs, a
/// 6 MiB BMFS and a Rexo file system of the rest (26 MiB in all beside the boot
/// partition) holding the site of [`image_of_site`] (`boot::disk-*` cases).
pub fn bootable_site(path: &Path, elf: &Path, append: &str) -> Result<()> {
    let boot = crate::disk::BootKernel { elf, append };
    let bytes = crate::bootdisk::partition_bytes_for(elf)?;
    crate::disk::partitioned(path, bytes + (26 << 20), 6 << 20, Some(boot))?;
    put_site(mount(path)?)
}

/// Puts `disk::site_files()` at the root of `fs` and [`NESTED`] below, grouped.
fn put_site(mut fs: FileSystem<FileStore>) -> Result<()> {
    fs.mkdir("/docs").map_err(|e| e.to_string())?;
    fs.mkdir("/docs/guide").map_err(|e| e.to_string())?;
    let mut files: Vec<(String, Vec<u8>)> = crate::disk::site_files()
        .into_iter()
        .map(|(name, data)| (format!("/{name}"), data))
        .collect();
    files.push((NESTED.0.to_string(), NESTED.1.to_vec()));
    let paths: Vec<String> = files.iter().map(|(path, _)| path.clone()).collect();
    put_grouped(&mut fs, &paths, &|index| {
        Ok(Box::new(files[index].1.as_slice()))
    })?;
    fs.sync().map_err(|e| e.to_string())
}

/// The block of [`image_of_site`]'s bitmap: its 16 MiB hold 4096 blocks, so the
/// superblock and a 64-block journal come first.
const SITE_BITMAP_BLOCK: u64 = 65;

/// [`image_of_site`] with a bit of its bitmap block flipped: the check (and mount)
/// refuse it, but every file reads (`badinput::httpd-rexofs-damaged`).
pub fn damaged_image_of_site(path: &Path) -> Result<()> {
    image_of_site(path)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let at = SITE_BITMAP_BLOCK * BLOCK_SIZE as u64 + 3000;
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at)
        .and_then(|()| file.write_all_at(&[byte[0] ^ 1], at))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The host's text file of the `storage::rexofs-monitor` case; its second line ends in
/// `ESC c` (a terminal reset), which `fs cat` must show as `^[c`.
pub const HELLO: (&str, &str) = (
    "/docs/hello.txt",
    "hello from the host tool\nline two\x1bc\n",
);
/// Its 300 KiB file, removed in Rexo.
pub const BIG: &str = "/big.bin";

/// Writes a fresh 16 MiB image at `path` holding [`HELLO`] and [`BIG`].
pub fn image_for_monitor(path: &Path) -> Result<()> {
    let mut fs = format_new(path, 16 << 20)?;
    fs.mkdir("/docs").map_err(|e| e.to_string())?;
    fs.replace(HELLO.0, HELLO.1.as_bytes())
        .map_err(|e| e.to_string())?;
    let big: Vec<u8> = (0..300 * 1024u32).map(|i| (i % 251) as u8).collect();
    fs.replace(BIG, &big).map_err(|e| e.to_string())?;
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

    /// A name holding ESC c (a terminal reset) or a line end is escaped in `fs IMAGE ls`
    /// and in an error naming it; both were printed as they are.
    #[test]
    fn names_with_control_characters_are_shown_escaped() {
        let entry = |name: &str, kind| rexo_fs::DirEntry {
            name: name.into(),
            kind,
            size: 3,
        };
        assert_eq!(
            listing_line(&entry("a\x1bc", FileKind::File)),
            format!("{:<40} {:>12} bytes", "a\\u{1b}c", 3)
        );
        assert_eq!(listing_line(&entry("x\ny", FileKind::Directory)), "x\\ny/");
        let path = std::env::temp_dir().join(format!("rexo-fs-names-{}.img", std::process::id()));
        drop(format_new(&path, 4 << 20).unwrap());
        let img = path.display().to_string();
        let err = command(&[img.clone(), "ls".into(), "/a\x1bc".into()]).unwrap_err();
        assert_eq!(err, "/a\\u{1b}c: not found");
        let out = std::env::temp_dir().join(format!("rexo-fs-names-{}.out", std::process::id()));
        let get = [
            img.clone(),
            "get".into(),
            "/nothing".into(),
            out.display().to_string(),
        ];
        assert_eq!(
            command(&get).unwrap_err(),
            "/nothing: not found",
            "the path once: it was `/nothing: /nothing: not found`"
        );
        let usage = command(&[img, "frob".into()]).unwrap_err();
        assert!(
            usage.ends_with(&format!("its commands:\n{USAGE}")),
            "{usage}"
        );
        std::fs::remove_file(&path).unwrap();
    }

    /// A line that stops short names what it lacks: each gave "not a `cargo xtask fs`
    /// command line".
    #[test]
    fn a_short_line_names_what_it_lacks() {
        let error =
            |line: &[&str]| command(&line.iter().map(|w| w.to_string()).collect::<Vec<_>>());
        for (line, said) in [
            (
                &[][..],
                "`cargo xtask fs IMAGE COMMAND`: IMAGE and COMMAND are missing",
            ),
            (
                &["IMG"],
                "`cargo xtask fs IMAGE COMMAND`: COMMAND is missing",
            ),
            (
                &["IMG", "create"],
                "`cargo xtask fs IMAGE create SIZE`: SIZE is missing",
            ),
            (
                &["IMG", "get", "/a"],
                "`cargo xtask fs IMAGE get PATH OUT`: OUT is missing",
            ),
        ] {
            let err = error(line).unwrap_err();
            assert!(err.starts_with(said), "{line:?}: {err}");
        }
        assert!(
            error(&["IMG"]).unwrap_err().ends_with(USAGE),
            "the commands are listed"
        );
    }

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

    #[test]
    fn each_tool_finds_its_partition_in_a_partitioned_image() {
        let path = std::env::temp_dir().join(format!("rexo-part-{}.img", std::process::id()));
        partitioned_for_monitor(&path).unwrap();
        let files = crate::disk::files_of(&path).unwrap();
        assert_eq!(files, [crate::disk::NOTES.0]);
        let mut fs = mount(&path).unwrap();
        assert_eq!(fs.read_all(HELLO.0).unwrap(), HELLO.1.as_bytes());
        let file = File::open(&path).unwrap();
        let size = file.metadata().unwrap().len();
        let bmfs = crate::disk::partition_of(&file, size, rexo_mbr::TYPE_BMFS, "BMFS").unwrap();
        let rexo = crate::disk::partition_of(&file, size, rexo_mbr::TYPE_REXO_FS, "Rexo").unwrap();
        assert_eq!(bmfs, Some((1 << 20, 16 << 20)));
        assert_eq!(rexo, Some((17 << 20, 31 << 20)));
        std::fs::remove_file(&path).unwrap();
        assert!(
            crate::disk::partitioned(&path, 2 << 20, 6 << 20, None).is_err(),
            "too small for both"
        );
        // A boot partition takes the kernel's size and GRUB's room first.
        let elf = path.with_extension("elf");
        std::fs::write(&elf, vec![0u8; 3 << 20]).unwrap();
        let boot = crate::disk::BootKernel {
            elf: &elf,
            append: "app=httpd",
        };
        let err = crate::disk::partitioned(&path, 16 << 20, 6 << 20, Some(boot)).unwrap_err();
        assert!(err.contains("the kernel's boot partition"), "{err}");
        let _ = std::fs::remove_file(&elf);
        let _ = std::fs::remove_file(&path);
    }

    /// A partition table the tools refuse, or one without a partition of the tool's
    /// type, is an error naming it: both used to mount the whole image instead, which
    /// then said it held no file system. An image with no table, or a table of no used
    /// entry (a boot sector's), is still one file system whole.
    #[test]
    fn a_bad_partition_table_is_named_not_taken_for_the_whole_image() {
        let path = std::env::temp_dir().join(format!("rexo-bad-table-{}.img", std::process::id()));
        drop(format_new(&path, 8 << 20).unwrap());
        let sound = std::fs::read(&path).unwrap();
        let with_table = |entries: &[(u8, u32, u32)]| {
            let mut image = sound.clone();
            for (index, &(kind, first, sectors)) in entries.iter().enumerate() {
                let entry = &mut image[446 + 16 * index..462 + 16 * index];
                entry[4] = kind;
                entry[8..12].copy_from_slice(&first.to_le_bytes());
                entry[12..16].copy_from_slice(&sectors.to_le_bytes());
            }
            image[510..512].copy_from_slice(&[0x55, 0xAA]);
            std::fs::write(&path, image).unwrap();
        };
        let check = || command(&[path.display().to_string(), "check".into()]);
        let rexo = rexo_mbr::TYPE_REXO_FS;
        with_table(&[(rexo, 2048, 8192), (rexo, 4096, 8192)]);
        let err = check().unwrap_err();
        assert!(
            err.contains("bad partition table") && err.contains("overlaps partition 1"),
            "{err}"
        );
        // A FAT partition.
        with_table(&[(0x0C, 2048, 8192)]);
        let err = check().unwrap_err();
        assert!(
            err.contains("no Rexo file system partition (type 0x7f) among the 1"),
            "{err}"
        );
        let err = crate::disk::command(vec!["ls".into(), path.display().to_string()]).unwrap_err();
        assert!(err.contains("no BMFS partition (type 0x7e)"), "{err}");
        with_table(&[]);
        let file = File::open(&path).unwrap();
        let whole = crate::disk::partition_of(&file, 8 << 20, rexo, "Rexo");
        assert_eq!(whole, Ok(None), "a boot sector's empty table");
        std::fs::remove_file(&path).unwrap();
    }

    /// `fs IMAGE create SIZE` refuses a size under the file system's minimum, naming it,
    /// before the image there is touched, and one the host cannot hold (2^64 bytes)
    /// leaves the image as it was: both used to truncate it first.
    #[test]
    fn a_create_that_fails_leaves_the_image_there_as_it_was() {
        let base = std::env::temp_dir().join(format!("rexo-fs-create-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let image = base.join("keep.img");
        image_for_monitor(&image).unwrap();
        let before = std::fs::read(&image).unwrap();
        let img = image.display().to_string();
        let create =
            |size: &str| command(&[img.clone(), "create".into(), size.into(), "--force".into()]);
        let err = command(&[img.clone(), "create".into(), "8M".into()]).unwrap_err();
        assert!(err.contains("give --force to replace it"), "{err}");
        let err = create("1K").unwrap_err();
        assert!(err.contains("392 KiB at least"), "{err}");
        assert!(
            std::fs::read(&image).unwrap() == before,
            "1K: the image changed"
        );
        let err = create(&u64::MAX.to_string()).unwrap_err();
        assert!(err.contains("could ever store"), "{err}");
        assert!(
            std::fs::read(&image).unwrap() == before,
            "2^64: the image changed"
        );
        assert!(
            !base.join("keep.img.creating").exists(),
            "the half-made image is removed"
        );
        create("392K").unwrap();
        assert!(mount(&image).unwrap().list("/").unwrap().is_empty());
        // --force may come before the size too, as docs/storage.md says.
        command(&[img.clone(), "create".into(), "--force".into(), "1M".into()]).unwrap();
        assert_eq!(std::fs::metadata(&image).unwrap().len(), 1 << 20);
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// `fs IMAGE create`, `disk create` and `disk partition` refuse a size past the whole
    /// of the host's file system that would hold the image before the image is made:
    /// such an image was made sparse and formatted, and could never be filled.
    #[test]
    fn a_size_past_the_host_file_system_is_refused() {
        let base = std::env::temp_dir().join(format!("rexo-past-host-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let host = rustix::fs::statvfs(&base).unwrap();
        let past = (host.f_blocks * host.f_frsize + (1 << 20)).to_string();
        let image = base.join("big.img");
        let img = image.display().to_string();
        let disk = |words: &[&str]| {
            crate::disk::command(words.iter().map(|w| w.to_string()).collect()).unwrap_err()
        };
        for (what, err) in [
            (
                "fs create",
                command(&[img.clone(), "create".into(), past.clone()]).unwrap_err(),
            ),
            ("disk create", disk(&["create", &img, &past])),
            ("disk partition", disk(&["partition", &img, &past, "6M"])),
        ] {
            // A host file system past 2 TiB: the MBR's limit refuses the partitions first.
            let mbr = what == "disk partition" && err.contains("what an MBR can describe");
            assert!(err.contains("could ever store") || mbr, "{what}: {err}");
            assert!(!image.exists(), "{what}: an image was made");
            assert!(
                !base.join("big.img.creating").exists(),
                "{what}: one was left"
            );
        }
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn repair_mends_a_damaged_image_and_leaves_a_sound_one_alone() {
        let base = std::env::temp_dir().join(format!("rexo-fs-repair-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let image = base.join("fs.img");
        let mut fs = format_new(&image, 4 << 20).unwrap();
        fs.mkdir("/d").unwrap();
        fs.replace("/d/kept.txt", b"kept through the repair")
            .unwrap();
        fs.sync().unwrap();
        drop(fs);
        let args = |verb: &str| vec![image.display().to_string(), verb.to_string()];
        let sound = std::fs::read(&image).unwrap();
        command(&args("repair")).unwrap();
        assert!(
            std::fs::read(&image).unwrap() == sound,
            "a sound image was changed"
        );

        // Block 65 is the bitmap of a 1024-block disk (after the superblock and a
        // 64-block journal): damage it.
        let mut damaged = sound.clone();
        damaged[65 * BLOCK_SIZE + 3000] ^= 1;
        std::fs::write(&image, &damaged).unwrap();
        let refused = command(&args("check")).unwrap_err();
        assert!(
            refused.contains("bitmap block checksum mismatch"),
            "{refused}"
        );
        command(&args("repair")).unwrap();
        command(&args("check")).unwrap();
        assert_eq!(
            mount(&image).unwrap().read_all("/d/kept.txt").unwrap(),
            b"kept through the repair"
        );

        // Without a superblock there is nothing to repair from: the image is kept.
        let mut blank = sound;
        blank[..BLOCK_SIZE].fill(0);
        std::fs::write(&image, &blank).unwrap();
        let refused = command(&args("repair")).unwrap_err();
        assert!(refused.contains("no Rexo file system"), "{refused}");
        assert!(std::fs::read(&image).unwrap() == blank);
        assert!(
            !base.join("fs.img.repairing").exists(),
            "the copy is removed"
        );
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// `fs IMAGE repair` checks before it copies, and copies keeping holes: a sound
    /// image is not copied (a directory where the copy would go does not stop it), and
    /// the repaired copy of a sparse 64 MiB image holds little more than its blocks
    /// written. The whole image was copied, holes written out, before anything else.
    #[test]
    fn repair_copies_only_a_damaged_image_and_keeps_its_holes() {
        use std::os::unix::fs::MetadataExt;
        let base = std::env::temp_dir().join(format!("rexo-fs-sparse-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let image = base.join("fs.img");
        let mut fs = format_new(&image, 64 << 20).unwrap();
        fs.replace("/kept.txt", b"kept through the repair").unwrap();
        fs.sync().unwrap();
        drop(fs);
        let args = [image.display().to_string(), "repair".to_string()];
        let in_the_way = base.join("fs.img.repairing");
        std::fs::create_dir(&in_the_way).unwrap();
        command(&args).unwrap();
        std::fs::remove_dir(&in_the_way).unwrap();

        // A 64 MiB disk's journal is 256 blocks after the superblock: the bitmap is
        // block 257.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&image)
            .unwrap();
        let at = 257 * BLOCK_SIZE as u64 + 3000;
        let mut byte = [0u8];
        file.read_exact_at(&mut byte, at).unwrap();
        file.write_all_at(&[byte[0] ^ 1], at).unwrap();
        drop(file);
        assert!(command(&[args[0].clone(), "check".into()]).is_err());
        command(&args).unwrap();
        command(&[args[0].clone(), "check".into()]).unwrap();
        let meta = std::fs::metadata(&image).unwrap();
        assert_eq!(meta.len(), 64 << 20);
        let held = meta.blocks() * 512;
        assert!(held < 16 << 20, "the repaired image holds {held} bytes");
        assert_eq!(
            mount(&image).unwrap().read_all("/kept.txt").unwrap(),
            b"kept through the repair"
        );
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// `fs IMAGE put` refuses a host file that is not a regular file (`/dev/zero` was
    /// read until memory ran out; `/dev/null` made an empty file) and one whose data is
    /// larger than the room for it before reading it: each file was read whole first.
    #[test]
    fn a_put_checks_each_host_file_before_reading_it() {
        let base = std::env::temp_dir().join(format!("rexo-fs-host-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let image = base.join("fs.img");
        drop(format_new(&image, 4 << 20).unwrap());
        let put = |file: &str, path: &str| {
            command(&[
                image.display().to_string(),
                "put".into(),
                file.into(),
                path.into(),
            ])
        };
        for device in ["/dev/null", "/dev/zero"] {
            let err = put(device, "/device").unwrap_err();
            assert!(err.contains("not a regular file"), "{err}");
        }
        let big = base.join("big.bin");
        std::fs::write(&big, vec![5u8; 5 << 20]).unwrap();
        let err = put(big.to_str().unwrap(), "/big").unwrap_err();
        assert!(err.contains("nothing was read"), "{err}");
        let mut fs = mount(&image).unwrap();
        assert!(fs.list("/").unwrap().is_empty());
        // A file fits in the blocks of the one it replaces.
        let free = fs.statfs().free_blocks * BLOCK_SIZE as u64;
        drop(fs);
        let large = base.join("large.bin");
        std::fs::write(&large, vec![5u8; free as usize - (64 << 10)]).unwrap();
        put(large.to_str().unwrap(), "/large").unwrap();
        put(large.to_str().unwrap(), "/large").unwrap();
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// A memory disk that counts read requests (a run is one).
    struct CountingDisk {
        disk: rexo_fs::MemoryDisk,
        reads: std::rc::Rc<std::cell::Cell<u64>>,
    }

    impl BlockStore for CountingDisk {
        fn blocks(&self) -> u64 {
            self.disk.blocks()
        }
        fn read(&mut self, block: u64, buf: &mut [u8]) -> std::result::Result<(), String> {
            self.reads.set(self.reads.get() + 1);
            self.disk.read(block, buf)
        }
        fn read_run(&mut self, first: u64, buf: &mut [u8]) -> std::result::Result<(), String> {
            self.reads.set(self.reads.get() + 1);
            self.disk.read_run(first, buf)
        }
        fn write(&mut self, block: u64, data: &[u8]) -> std::result::Result<(), String> {
            self.disk.write(block, data)
        }
        fn flush(&mut self) -> std::result::Result<(), String> {
            self.disk.flush()
        }
    }

    /// Read requests to read `paths` from a cold cache, after `put` wrote a site into a
    /// fresh 16 MiB file system and it was mounted again.
    fn cold_reads(paths: &[&str], put: impl FnOnce(&mut FileSystem<CountingDisk>)) -> u64 {
        let reads = std::rc::Rc::new(std::cell::Cell::new(0));
        let disk = CountingDisk {
            disk: rexo_fs::MemoryDisk::new(4096),
            reads: reads.clone(),
        };
        let mut fs = FileSystem::format(disk).unwrap();
        put(&mut fs);
        fs.sync().unwrap();
        let mut fs = FileSystem::mount(fs.into_disk()).unwrap();
        fs.drop_cache();
        let start = reads.get();
        for path in paths {
            fs.read_all(path).unwrap();
        }
        reads.get() - start
    }

    #[test]
    fn a_page_and_the_files_it_links_to_are_read_together() {
        let base = std::env::temp_dir().join(format!("rexo-fs-cheetah-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        for dir in ["css", "img", "js", "zzz"] {
            std::fs::create_dir_all(base.join(dir)).unwrap();
        }
        // Files that sort between the page and what it links to.
        for index in 0..40u8 {
            let name = format!("img/filler-{index:02}");
            std::fs::write(base.join(name), vec![index; 9000]).unwrap();
        }
        std::fs::write(
            base.join("index.html"),
            br#"<link href="css/site.css"><img src="/img/logo.png"><script src="js/app.js"></script>"#,
        )
        .unwrap();
        std::fs::write(base.join("css/site.css"), vec![b'c'; 3000]).unwrap();
        std::fs::write(base.join("img/logo.png"), vec![b'i'; 9000]).unwrap();
        std::fs::write(base.join("js/app.js"), vec![b'j'; 5000]).unwrap();
        std::fs::write(
            base.join("zzz/other.html"),
            b"<a href=\"/index.html\">home</a>",
        )
        .unwrap();
        let site = [
            "/index.html",
            "/css/site.css",
            "/img/logo.png",
            "/js/app.js",
        ];
        let grouped = cold_reads(&site, |fs| {
            assert_eq!(put_tree(fs, &base, "/").unwrap(), (45, 377_114));
        });
        // The same files written one by one in name order, each next to its directory.
        let plain = cold_reads(&site, |fs| {
            let tree = host_tree(&base, "/").unwrap();
            make_directories(fs, &tree.directories).unwrap();
            for (path, host) in tree.files {
                fs.replace(&path, &std::fs::read(host).unwrap()).unwrap();
            }
        });
        std::fs::remove_dir_all(&base).unwrap();
        assert!(
            grouped < plain,
            "{grouped} grouped vs {plain} plain requests"
        );
        assert!(
            grouped <= 3,
            "{grouped} requests for a page and its three links"
        );
    }

    #[test]
    fn the_damaged_site_image_is_refused_but_reads_read_only() {
        let path = std::env::temp_dir().join(format!("rexo-damaged-{}.img", std::process::id()));
        damaged_image_of_site(&path).unwrap();
        let refused = mount(&path).map(|_| ()).unwrap_err();
        assert!(
            refused.contains("corrupt block 65: bitmap block checksum mismatch"),
            "{refused}"
        );
        let (mut fs, found) = FileSystem::mount_read_only(store(&path).unwrap()).unwrap();
        assert!(found.is_some());
        assert_eq!(fs.read_all(NESTED.0).unwrap(), NESTED.1);
        for (name, data) in crate::disk::site_files() {
            assert_eq!(fs.read_all(&format!("/{name}")).unwrap(), data);
        }
        std::fs::remove_file(&path).unwrap();
    }

    /// `fs IMAGE get` copies a file a MiB at a time and leaves its holes holes: a 256 MiB
    /// sparse file comes out exact and taking little room. It was read whole into memory
    /// (a file as large as the disk held at once) and written out with its zeros.
    #[test]
    fn a_get_streams_a_sparse_file_and_keeps_its_holes() {
        use std::os::unix::fs::MetadataExt;
        let base = std::env::temp_dir().join(format!("rexo-fs-get-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let image = base.join("fs.img");
        let mut fs = format_new(&image, 4 << 20).unwrap();
        fs.create("/sparse").unwrap();
        fs.write("/sparse", 5, b"start").unwrap();
        fs.write("/sparse", (256 << 20) - 3, b"end").unwrap();
        let out = base.join("sparse.out");
        assert_eq!(
            get_tree(&mut fs, "/sparse", &out, &image).unwrap(),
            (1, 256 << 20)
        );
        let meta = std::fs::metadata(&out).unwrap();
        assert_eq!(meta.len(), 256 << 20);
        let held = meta.blocks() * 512;
        // Two 4 KiB blocks hold data; a MiB written whole for a few bytes would show.
        assert!(held < 1 << 20, "the copy holds {held} bytes");
        let copy = File::open(&out).unwrap();
        let mut ends = [0u8; 10];
        copy.read_exact_at(&mut ends, 0).unwrap();
        assert_eq!(&ends, b"\0\0\0\0\0start");
        copy.read_exact_at(&mut ends[..3], (256 << 20) - 3).unwrap();
        assert_eq!(&ends[..3], b"end");
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// `fs IMAGE put` copies a host file a MiB at a time and keeps its holes: a 256 MiB
    /// sparse file with a few bytes in it comes back byte-exact and takes a few blocks.
    /// It was read whole into memory (a host file as large as the disk held at once)
    /// and written with all its zeros. That memory stays bounded shows in the
    /// structure (`put_file`'s one buffer of `CHUNK` bytes), not measured here.
    #[test]
    fn a_put_streams_a_sparse_file_and_keeps_its_holes() {
        let base = std::env::temp_dir().join(format!("rexo-fs-put-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let image = base.join("fs.img");
        let free_before = format_new(&image, 300 << 20).unwrap().statfs().free_blocks;
        let sparse = base.join("sparse.bin");
        let host = File::create(&sparse).unwrap();
        host.set_len(256 << 20).unwrap();
        for (at, bytes) in [
            (5, &b"start"[..]),
            ((100 << 20) - 2, b"across"),
            ((256 << 20) - 3, b"end"),
        ] {
            host.write_all_at(bytes, at).unwrap();
        }
        drop(host);
        command(&[
            image.display().to_string(),
            "put".into(),
            sparse.display().to_string(),
            "/sparse".into(),
        ])
        .unwrap();
        let mut fs = mount(&image).unwrap();
        let used = free_before - fs.statfs().free_blocks;
        assert!(used <= 8, "the copy takes {used} blocks");
        let mut file = fs.open("/sparse").unwrap();
        let host = File::open(&sparse).unwrap();
        let (mut copied, mut original) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
        for at in (0..256u64 << 20).step_by(CHUNK) {
            assert_eq!(fs.read_at(&mut file, at, &mut copied).unwrap(), CHUNK);
            host.read_exact_at(&mut original, at).unwrap();
            assert!(copied == original, "the MiB at {at} differs");
        }
        assert_eq!(fs.read_at(&mut file, 256 << 20, &mut copied).unwrap(), 0);
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// A sparse host file whose data fits is put in, however long it is: rexo-fs keeps
    /// its holes, so a 1 GiB file with 4 KiB of data takes a block of a 4 MiB image. It
    /// was refused, its whole length compared with the room. One whose data does not
    /// fit is refused and changes nothing.
    #[test]
    fn a_sparse_file_whose_data_fits_is_put_however_long() {
        let base = std::env::temp_dir().join(format!("rexo-fs-holes-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let image = base.join("fs.img");
        let free_before = format_new(&image, 4 << 20).unwrap().statfs().free_blocks;
        let put = |file: &Path, path: &str| {
            command(&[
                image.display().to_string(),
                "put".into(),
                file.display().to_string(),
                path.into(),
            ])
        };
        let sparse = base.join("sparse.bin");
        let host = File::create(&sparse).unwrap();
        host.set_len(1 << 30).unwrap();
        host.write_all_at(&[7u8; BLOCK_SIZE], 512 << 20).unwrap();
        drop(host);
        put(&sparse, "/sparse").unwrap();
        let mut fs = mount(&image).unwrap();
        assert_eq!(fs.stat("/sparse").unwrap().size, 1 << 30);
        let mut file = fs.open("/sparse").unwrap();
        let mut block = [0u8; BLOCK_SIZE];
        fs.read_at(&mut file, 512 << 20, &mut block).unwrap();
        assert_eq!(block, [7u8; BLOCK_SIZE]);
        fs.read_at(&mut file, (512 << 20) - BLOCK_SIZE as u64, &mut block)
            .unwrap();
        assert_eq!(block, [0u8; BLOCK_SIZE]);
        let free = fs.statfs().free_blocks;
        assert!(free_before - free <= 2, "{} blocks", free_before - free);
        drop(fs);
        // Data in as many blocks as are free, one more than the room left.
        let host = File::options().write(true).open(&sparse).unwrap();
        for index in 0..=free {
            host.write_all_at(&[9u8; BLOCK_SIZE], index * 2 * BLOCK_SIZE as u64)
                .unwrap();
        }
        drop(host);
        let err = put(&sparse, "/second").unwrap_err();
        assert!(err.contains("nothing was read"), "{err}");
        let mut fs = mount(&image).unwrap();
        assert_eq!(fs.statfs().free_blocks, free);
        assert!(fs.stat("/second").is_err());
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// A host tree holding a symbolic link to a directory above it is refused before
    /// anything is put, naming the link: it was walked through the link again and again,
    /// a directory made in the image at each turn, until the host refused the path 40
    /// links deep ("Too many levels of symbolic links"; two such links double the walk
    /// at every turn).
    #[test]
    fn a_host_tree_with_a_link_loop_is_refused_before_anything_is_put() {
        let base = std::env::temp_dir().join(format!("rexo-fs-loop-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let source = base.join("in");
        std::fs::create_dir_all(source.join("sub")).unwrap();
        std::fs::write(source.join("top.txt"), b"top\n").unwrap();
        std::os::unix::fs::symlink("..", source.join("sub/up")).unwrap();
        let image = base.join("fs.img");
        let mut fs = format_new(&image, 4 << 20).unwrap();
        let free = fs.statfs().free_blocks;
        let err = put_tree(&mut fs, &source, "/site").unwrap_err();
        let link = source.join("sub/up");
        assert_eq!(
            err,
            format!(
                "{} leads back to {} above it (a loop of symbolic links, never ending); \
                 nothing was put",
                link.display(),
                source.display()
            )
        );
        assert!(fs.stat("/site").is_err(), "a directory was made");
        assert_eq!(fs.statfs().free_blocks, free);
        // A link to a directory beside it, not above, is followed.
        std::fs::remove_file(&link).unwrap();
        std::fs::create_dir(source.join("other")).unwrap();
        std::fs::write(source.join("other/o.txt"), b"o").unwrap();
        std::os::unix::fs::symlink("../other", source.join("sub/side")).unwrap();
        assert_eq!(put_tree(&mut fs, &source, "/site").unwrap(), (3, 6));
        assert_eq!(fs.read_all("/site/sub/side/o.txt").unwrap(), b"o");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_host_tree_goes_in_and_comes_out_the_same() {
        let base = std::env::temp_dir().join(format!("rexo-fs-tree-{}", std::process::id()));
        let source = base.join("in");
        std::fs::create_dir_all(source.join("a/b")).unwrap();
        std::fs::create_dir_all(source.join("empty")).unwrap();
        std::fs::write(source.join("top.txt"), b"top\n").unwrap();
        std::fs::write(source.join("a/b/deep.bin"), vec![7u8; 70_000]).unwrap();
        let image = base.join("fs.img");
        let mut fs = format_new(&image, 4 << 20).unwrap();
        assert_eq!(put_tree(&mut fs, &source, "/site").unwrap(), (2, 70_004));
        fs.sync().unwrap();
        drop(fs);
        let mut fs = mount(&image).unwrap();
        let out = base.join("out");
        assert_eq!(
            get_tree(&mut fs, "/site", &out, &image).unwrap(),
            (2, 70_004)
        );
        assert_eq!(std::fs::read(out.join("top.txt")).unwrap(), b"top\n");
        assert_eq!(
            std::fs::read(out.join("a/b/deep.bin")).unwrap(),
            vec![7u8; 70_000]
        );
        assert!(out.join("empty").is_dir());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
