//! The site httpd serves: the files in `apps/httpd/site/`, built into the app image,
//! one large file generated at start, and the files of the first BMFS disk.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use rexo_api::Kernel;
use rexo_http::{FileTable, Limits, Site};

/// The files embedded in the image, by the path requests name them with.
const EMBEDDED: [(&str, &[u8]); 6] = [
    ("/about.html", include_bytes!("../site/about.html")),
    ("/style.css", include_bytes!("../site/style.css")),
    ("/rexo.png", include_bytes!("../site/rexo.png")),
    ("/empty.txt", include_bytes!("../site/empty.txt")),
    ("/1k.txt", include_bytes!("../site/1k.txt")),
    ("/100k.txt", include_bytes!("../site/100k.txt")),
];

/// The text file made at start instead of embedded (1 MiB in the image would be 1 MiB
/// of the kernel image and of the memory an idle machine holds): `site/1m.txt`'s
/// numbered lines, checked equal to it by a host test.
const NUMBERED_PATH: &str = "/1m.txt";
/// Its length.
const NUMBERED_LEN: usize = 1 << 20;

/// `len` bytes of lines `TAG line NNNNNNN: the quick brown fox jumps over the lazy dog`,
/// the last one cut short and still ended by a newline.
fn numbered_lines(tag: &str, len: usize) -> Vec<u8> {
    let mut text = Vec::with_capacity(len + 64);
    let mut line = 0;
    while text.len() < len {
        text.extend_from_slice(
            alloc::format!("{tag} line {line:07}: the quick brown fox jumps over the lazy dog\n")
                .as_bytes(),
        );
        line += 1;
    }
    text.truncate(len.saturating_sub(1));
    if len > 0 {
        text.push(b'\n');
    }
    text
}

/// The path of the generated file.
pub const GENERATED_PATH: &str = "/10m.bin";
/// The generated file's length: 10 MiB, too large to embed without bloating the image.
pub const GENERATED_LEN: usize = 10 << 20;
/// The seed of the generated file's xorshift64 stream.
pub const GENERATED_SEED: u64 = 0x5265_786f_4874_7470;

/// The bytes of the generated file: the xorshift64 (13, 7, 17) stream from
/// [`GENERATED_SEED`], each state after a step written as 8 little-endian bytes. The
/// test client (`xtask/src/httpclient.rs`) makes the same bytes to compare.
pub fn generated_content(len: usize) -> Vec<u8> {
    let mut state = GENERATED_SEED;
    let mut content = Vec::with_capacity(len.next_multiple_of(8));
    while content.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        content.extend_from_slice(&state.to_le_bytes());
    }
    content.truncate(len);
    content
}

/// The most bytes of disk files httpd keeps in its file cache (the kernel heap holds
/// them, with the generated files and the connections' buffers), each file counted with
/// [`FILE_COST`] beside its bytes.
pub const MAX_DISK_BYTES: u64 = 16 << 20;

/// What a disk file costs the file cache beside its bytes, counted against
/// [`MAX_DISK_BYTES`]: its path, tag and three prebuilt heads with their block sums,
/// about 1 KiB. So a disk of many empty files gets at most [`MAX_DISK_FILES`] of them
/// into the table, not one entry per file it lists.
pub const FILE_COST: u64 = 1024;

/// The most disk files the file cache can take: [`MAX_DISK_BYTES`] of empty ones.
pub const MAX_DISK_FILES: usize = (MAX_DISK_BYTES / FILE_COST) as usize;

/// Files left on disk for want of room named one by one in the log; the rest are
/// counted in one line.
const MAX_NAMED_LEFT: usize = 8;

/// A file of the disk: its path (`/NAME`) and its bytes.
pub type DiskFile = (String, Vec<u8>);

/// The most directories the walk of a disk's site lists: a damaged file system (mounted
/// read-only) can make a directory its own descendant, and the walk would never end.
const MAX_DIRECTORIES: usize = 1024;

/// What [`walk`] found: each file's path and size, in order, and what it skipped.
type Walked = (Vec<(String, u64)>, Vec<String>);

/// Walks the site's tree from `/`, directory by directory (each directory's files in a
/// row: the file system places a directory's small files together, so they are read
/// together), through `list` (a directory's entries). On a `read_only` (damaged) file
/// system a directory that cannot be listed is skipped; past [`MAX_DIRECTORIES`] or
/// once [`MAX_DISK_FILES`] files were found (no more could enter the cache) the walk
/// stops. Returns each file's path and size, in that order, and what was skipped.
fn walk(
    list: &mut dyn FnMut(&str) -> Result<Vec<rexo_fs::DirEntry>, rexo_fs::FsError>,
    read_only: bool,
) -> Result<Walked, rexo_fs::FsError> {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    let mut directories = alloc::vec![String::from("/")];
    let mut listed = 0;
    let mut unlisted_files = 0;
    while let Some(directory) = directories.pop() {
        if listed == MAX_DIRECTORIES {
            skipped.push(format!(
                "{} directories left unread: the walk stops after {MAX_DIRECTORIES} (a loop in a damaged file system?)",
                directories.len() + 1
            ));
            break;
        }
        listed += 1;
        let entries = match list(&directory) {
            Ok(entries) => entries,
            Err(error) if read_only => {
                skipped.push(format!("{directory} skipped: {error}"));
                continue;
            }
            Err(error) => return Err(error),
        };
        for entry in entries {
            if entry.kind == rexo_fs::FileKind::File && files.len() == MAX_DISK_FILES {
                unlisted_files += 1;
                continue;
            }
            let path = match directory.as_str() {
                "/" => format!("/{}", entry.name),
                _ => format!("{directory}/{}", entry.name),
            };
            match entry.kind {
                rexo_fs::FileKind::Directory => directories.push(path),
                rexo_fs::FileKind::File => files.push((path, entry.size)),
            }
        }
        if files.len() == MAX_DISK_FILES && (unlisted_files > 0 || !directories.is_empty()) {
            skipped.push(format!(
                "{unlisted_files} more files and {} directories left unread: the file cache takes at most {MAX_DISK_FILES} disk files ({FILE_COST} bytes each beside their bytes)",
                directories.len()
            ));
            break;
        }
    }
    Ok((files, skipped))
}

/// Reads the `listed` files (path, size) with `read`, in order, up to [`MAX_DISK_BYTES`]
/// in all, each file counted with [`FILE_COST`] beside its size (a size no budget holds,
/// even one near `u64::MAX` from a damaged disk, is left unread); a file past that, or
/// (with `skip_errors`) one that cannot be read, is left with a line in `notes` (past
/// [`MAX_NAMED_LEFT`] files left for want of room, one line counts the rest); another
/// read error is returned.
fn read_within_budget<E: core::fmt::Display>(
    listed: Vec<(String, u64)>,
    read: &mut dyn FnMut(&str) -> Result<Vec<u8>, E>,
    skip_errors: bool,
    notes: &mut Vec<String>,
) -> Result<Vec<DiskFile>, E> {
    let mut files = Vec::new();
    let mut total: u64 = 0;
    let mut named_left = 0;
    let (mut unnamed_left, mut unnamed_bytes) = (0u64, 0u64);
    for (path, size) in listed {
        let Some(after) = size
            .checked_add(FILE_COST)
            .and_then(|cost| total.checked_add(cost))
            .filter(|&after| after <= MAX_DISK_BYTES)
        else {
            if named_left < MAX_NAMED_LEFT {
                named_left += 1;
                notes.push(format!(
                    "{path} ({size} bytes) left on disk: the file cache takes {MAX_DISK_BYTES} bytes of disk files, {FILE_COST} for each file beside its bytes"
                ));
            } else {
                unnamed_left += 1;
                unnamed_bytes = unnamed_bytes.saturating_add(size);
            }
            continue;
        };
        match read(&path) {
            Ok(bytes) => {
                total = after;
                files.push((path, bytes));
            }
            Err(error) if skip_errors => notes.push(format!("{path} skipped: {error}")),
            Err(error) => return Err(error),
        }
    }
    if unnamed_left > 0 {
        notes.push(format!(
            "{unnamed_left} more files ({unnamed_bytes} bytes) left on disk: the file cache is full"
        ));
    }
    Ok(files)
}

/// The files of the first disk holding the Rexo file system, each at its path (every
/// directory walked), else of the first holding BMFS, each as `/NAME`; up to
/// [`MAX_DISK_BYTES`] in all; each line of the second part says what was skipped or
/// why no disk was read, for the log.
pub fn from_disk(kernel: &Kernel) -> (Vec<DiskFile>, Vec<String>) {
    let mut notes = Vec::new();
    let mut read_only_why = None;
    let rexo_fs = rexo_fs::on_first_file_system_to_read(
        kernel,
        &mut |why| read_only_why = Some(format!("{why}")),
        |fs| {
            let read_only = fs.is_read_only();
            let (walked, mut skipped) = walk(&mut |directory| fs.list(directory), read_only)?;
            let files = read_within_budget(
                walked,
                &mut |path| fs.read_all(path),
                read_only,
                &mut skipped,
            )?;
            Ok((files, skipped))
        },
    );
    if let Some(why) = read_only_why {
        notes.push(format!(
            "the Rexo file system is mounted read-only ({why}): serving what reads"
        ));
    }
    let rexo_fs = rexo_fs.map(|(files, skipped)| {
        notes.extend(skipped);
        files
    });
    let why_not_rexo_fs = match rexo_fs {
        Ok(files) => return (files, notes),
        Err(why) => why,
    };
    let read = rexo_bmfs::on_first_volume(kernel, |volume| {
        let listed = volume
            .files()
            .map(|f| (format!("/{}", f.name), f.size))
            .collect();
        let mut read = |path: &str| volume.read(&path[1..]);
        read_within_budget(listed, &mut read, true, &mut notes)
    });
    match read {
        Ok(files) => (files, notes),
        Err(why) => (
            Vec::new(),
            alloc::vec![if why == why_not_rexo_fs {
                format!("no site files from disk: {why}")
            } else {
                format!("no site files from disk: {why_not_rexo_fs}; {why}")
            }],
        ),
    }
}

/// The site: every embedded file and the generated ones, then `disk` (a disk file
/// replaces an embedded one of the same path; each such path is returned), within
/// the engine's default request bounds (8 KiB heads, so a 100 KB header is answered
/// 431 after 8 KiB).
pub fn build(disk: Vec<DiskFile>) -> (Site, Vec<String>) {
    let mut files = FileTable::new();
    for (path, content) in EMBEDDED {
        files.insert_static(path, content);
    }
    files.insert_owned(NUMBERED_PATH, numbered_lines("1m", NUMBERED_LEN));
    files.insert_owned(GENERATED_PATH, generated_content(GENERATED_LEN));
    let mut replaced = Vec::new();
    for (path, content) in disk {
        if files.insert_owned(&path, content).is_some() {
            replaced.push(path);
        }
    }
    (Site::new(files, Limits::DEFAULT), replaced)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rexo_http::{Page, Status, Step};

    /// Serves `request` on `site` with no dynamic pages.
    fn serve(site: &Site, request: &[u8]) -> (Status, Vec<u8>) {
        match site.serve(request, &mut |_, _| Page::Unhandled) {
            Step::Answer { response, .. } => (response.status(), response.body().bytes().to_vec()),
            Step::NeedMore | Step::Continue => panic!("incomplete request"),
        }
    }

    fn entry(name: &str, kind: rexo_fs::FileKind, size: u64) -> rexo_fs::DirEntry {
        rexo_fs::DirEntry {
            name: name.into(),
            kind,
            size,
        }
    }

    #[test]
    fn the_walk_of_a_directory_that_holds_itself_ends() {
        use rexo_fs::FileKind::{Directory, File};
        // A damaged file system where /loop lists what the root lists (its block is the
        // root's): /loop/loop/loop/... without end.
        let mut listings = 0;
        let mut list = |_: &str| {
            listings += 1;
            Ok(alloc::vec![
                entry("index.html", File, 5),
                entry("loop", Directory, 4096)
            ])
        };
        let (files, skipped) = walk(&mut list, true).unwrap();
        assert_eq!(listings, MAX_DIRECTORIES);
        assert_eq!(files.len(), MAX_DIRECTORIES);
        assert_eq!(files[1], ("/loop/index.html".into(), 5));
        assert_eq!(skipped.len(), 1);
        assert!(
            skipped[0].contains("the walk stops after 1024"),
            "{skipped:?}"
        );
    }

    #[test]
    fn a_walk_skips_an_unlistable_directory_only_when_read_only() {
        use rexo_fs::FileKind::{Directory, File};
        let mut list = |path: &str| match path {
            "/" => Ok(alloc::vec![
                entry("a", Directory, 4096),
                entry("b.txt", File, 3)
            ]),
            _ => Err(rexo_fs::FsError::NotFound(path.into())),
        };
        let (files, skipped) = walk(&mut list, true).unwrap();
        assert_eq!(files, [("/b.txt".into(), 3)]);
        assert_eq!(skipped, ["/a skipped: /a: not found"]);
        assert!(walk(&mut list, false).is_err());
    }

    #[test]
    fn a_walk_stops_at_the_files_the_cache_can_take() {
        use rexo_fs::FileKind::{Directory, File};
        // A damaged (or hostile) disk whose root lists more empty files than the file
        // cache takes, and a directory after them.
        let mut list = |path: &str| {
            assert_eq!(path, "/", "the walk went on past the cap");
            let mut entries: Vec<_> = (0..MAX_DISK_FILES + 3616)
                .map(|i| entry(&format!("f{i}"), File, 0))
                .collect();
            entries.push(entry("more", Directory, 4096));
            Ok(entries)
        };
        let (files, skipped) = walk(&mut list, true).unwrap();
        assert_eq!(files.len(), MAX_DISK_FILES);
        assert_eq!(
            skipped,
            [format!(
                "3616 more files and 1 directories left unread: the file cache takes at most {MAX_DISK_FILES} disk files (1024 bytes each beside their bytes)"
            )]
        );
    }

    #[test]
    fn a_size_near_the_top_of_u64_is_left_on_disk() {
        // A damaged directory entry's size: `total + size` wrapped past the budget check.
        let listed = alloc::vec![
            (String::from("/a"), 10),
            (String::from("/huge"), u64::MAX - 5),
            (String::from("/b"), 20),
        ];
        let mut read = |path: &str| match path {
            "/a" => Ok(alloc::vec![1; 10]),
            "/b" => Ok(alloc::vec![2; 20]),
            _ => Err("read a file past the budget"),
        };
        let mut notes = Vec::new();
        let files = read_within_budget(listed, &mut read, false, &mut notes).unwrap();
        let paths: Vec<_> = files.iter().map(|(path, _)| path.as_str()).collect();
        assert_eq!(paths, ["/a", "/b"]);
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].starts_with("/huge (18446744073709551610 bytes) left on disk"),
            "{notes:?}"
        );
    }

    #[test]
    fn each_file_costs_the_budget_and_what_is_left_is_noted_in_few_lines() {
        // 100,000 empty files: each takes a table entry, so at most MAX_DISK_FILES fit.
        let listed: Vec<_> = (0..100_000).map(|i| (format!("/f{i}"), 0)).collect();
        let mut reads = 0;
        let mut read = |_: &str| {
            reads += 1;
            Ok::<_, &str>(Vec::new())
        };
        let mut notes = Vec::new();
        let files = read_within_budget(listed, &mut read, false, &mut notes).unwrap();
        assert_eq!(files.len(), MAX_DISK_FILES);
        assert_eq!(reads, MAX_DISK_FILES);
        assert_eq!(notes.len(), MAX_NAMED_LEFT + 1, "{notes:?}");
        assert!(
            notes[0].starts_with(&format!("/f{MAX_DISK_FILES} (0 bytes) left on disk")),
            "{notes:?}"
        );
        assert_eq!(
            notes[MAX_NAMED_LEFT],
            format!(
                "{} more files (0 bytes) left on disk: the file cache is full",
                100_000 - MAX_DISK_FILES - MAX_NAMED_LEFT
            )
        );
        // A file that fits the room left is still read after one that did not.
        let listed = alloc::vec![
            (String::from("/big"), MAX_DISK_BYTES - FILE_COST + 1),
            (String::from("/fits"), MAX_DISK_BYTES - FILE_COST),
        ];
        let mut read = |_: &str| Ok::<_, &str>(alloc::vec![0; 3]);
        let mut notes = Vec::new();
        let files = read_within_budget(listed, &mut read, false, &mut notes).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].0, "/fits");
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn the_made_text_file_is_the_one_in_the_site_folder() {
        assert_eq!(
            numbered_lines("1m", NUMBERED_LEN),
            include_bytes!("../site/1m.txt")
        );
    }

    #[test]
    fn every_embedded_file_is_served_whole() {
        let (site, _) = build(Vec::new());
        for (path, content) in EMBEDDED {
            let request = alloc::format!("GET {path} HTTP/1.1\r\nHost: rexo\r\n\r\n");
            assert_eq!(
                serve(&site, request.as_bytes()),
                (Status::Ok, content.to_vec())
            );
        }
    }

    #[test]
    fn embedded_files_have_the_sizes_the_tests_expect() {
        let size = |name| {
            EMBEDDED
                .iter()
                .find(|(path, _)| *path == name)
                .unwrap()
                .1
                .len()
        };
        assert_eq!(size("/empty.txt"), 0);
        assert_eq!(size("/1k.txt"), 1024);
        assert_eq!(size("/100k.txt"), 100 * 1024);
    }

    #[test]
    fn the_generated_file_is_deterministic_and_not_constant() {
        let content = generated_content(GENERATED_LEN);
        assert_eq!(content.len(), GENERATED_LEN);
        assert_eq!(generated_content(1000), content[..1000]);
        // The first xorshift64 step from the seed, as the client computes it.
        let mut state = GENERATED_SEED;
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        assert_eq!(content[..8], state.to_le_bytes());
        let distinct = content[..4096]
            .iter()
            .collect::<alloc::collections::BTreeSet<_>>()
            .len();
        assert!(distinct > 200, "only {distinct} distinct bytes");
    }

    #[test]
    fn the_generated_file_is_served_by_range() {
        let (site, _) = build(Vec::new());
        let (status, body) = serve(
            &site,
            b"GET /10m.bin HTTP/1.1\r\nHost: rexo\r\nRange: bytes=10485000-\r\n\r\n",
        );
        assert_eq!(status, Status::PartialContent);
        assert_eq!(body, generated_content(GENERATED_LEN)[10_485_000..]);
    }
}

#[cfg(test)]
mod disk_tests {
    use super::*;
    use rexo_http::{Page, Status, Step};

    #[test]
    fn disk_files_are_served_and_replace_built_in_ones() {
        let disk = alloc::vec![
            (String::from("/about.html"), b"<p>from disk</p>".to_vec()),
            (String::from("/data.bin"), alloc::vec![7u8; 5000]),
        ];
        let (site, replaced) = build(disk);
        assert_eq!(replaced, ["/about.html"]);
        for (path, want) in [
            ("/about.html", &b"<p>from disk</p>"[..]),
            ("/data.bin", &[7u8; 5000][..]),
        ] {
            let request = alloc::format!("GET {path} HTTP/1.1\r\nHost: rexo\r\n\r\n");
            match site.serve(request.as_bytes(), &mut |_, _| Page::Unhandled) {
                Step::Answer { response, .. } => {
                    assert_eq!(response.status(), Status::Ok);
                    assert_eq!(response.body().bytes(), want);
                }
                Step::NeedMore | Step::Continue => panic!("incomplete request"),
            }
        }
    }
}
