//! The monitor's `fs` commands: the Rexo file system (`rexo-fs`) on the first disk that
//! holds one, mounted for each command (mount replays the journal and checks the tree)
//! and given back afterwards. Every change is durable when the command returns.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use rexo_api::Kernel;
use rexo_fs::{BlockStore, DirEntry, File, FileKind, FileSystem, FsError, on_first_file_system};

use crate::{FILE_PIECE, Shown};

/// What `fs` takes, for `help` and for a wrong line.
pub const USAGE: &str = "fs ls [DIR] | cat FILE | mkdir DIR | write FILE TEXT | cp FILE NEW | mv PATH NEW | rm PATH | df | fsck";

/// Runs `fs WORDS`; the lines to show, or what went wrong (naming the command, every
/// control character shown: [`failure`]). `fs cat` shows the file through `say` as it
/// reads it, until `stop` says to stop (then its line is `^C`).
pub fn run(
    kernel: &Kernel,
    words: &str,
    say: &dyn Fn(&str),
    stop: &mut dyn FnMut() -> bool,
) -> Result<Vec<String>, String> {
    let verb = split(words).map_or("", |(verb, _, _)| verb);
    dispatch(kernel, words, say, stop).map_err(|why| failure(verb, &why))
}

/// What `fs VERB` failed with, as shown: `why` named by the command, on one line with
/// every control character shown ([`crate::visible_line`]), since an error may name a
/// path holding any character but `/` and NUL.
fn failure(verb: &str, why: &str) -> String {
    if why.starts_with("fs") || why.starts_with("usage") {
        crate::visible_line(why)
    } else {
        crate::visible_line(&format!("fs {verb}: {why}"))
    }
}

/// `fs ls`'s lines for the `entries` of `dir`: a name holds any character but `/` and
/// NUL, so each is shown on its line with every control character shown
/// ([`crate::visible_line`]).
fn listing(entries: &[DirEntry], dir: &str) -> Vec<String> {
    let mut lines: Vec<String> = entries
        .iter()
        .map(|e| {
            let name = crate::visible_line(&e.name);
            match e.kind {
                FileKind::Directory => format!("{name}/"),
                FileKind::File => format!("{name:<40} {:>12} bytes", e.size),
            }
        })
        .collect();
    lines.push(format!(
        "{} entries in {}",
        entries.len(),
        crate::visible_line(dir)
    ));
    lines
}

/// The words `verb` takes after it: all of them needed but `ls`'s directory, and
/// `write`'s text, after its one, not counted (it takes any words); none for a verb
/// `fs` does not know.
fn arity(verb: &str) -> Option<usize> {
    match verb {
        "df" | "fsck" => Some(0),
        "ls" | "cat" | "mkdir" | "rm" | "write" => Some(1),
        "cp" | "mv" => Some(2),
        _ => None,
    }
}

/// `fs WORDS` split as the monitor splits a line's words (a path holding spaces in
/// double quotes: [`crate::QUOTING`]): the verb, as many arguments as it takes
/// ([`arity`]; none for a verb `fs` does not know) and the text after them as typed,
/// trimmed (`write`'s text).
fn split(words: &str) -> Result<(&str, Vec<&str>, &str), String> {
    let Some((verb, mut rest)) = crate::next_word(words)? else {
        return Ok(("", Vec::new(), ""));
    };
    let mut arguments = Vec::new();
    for _ in 0..arity(verb).unwrap_or(0) {
        let Some((argument, after)) = crate::next_word(rest)? else {
            break;
        };
        arguments.push(argument);
        rest = after;
    }
    Ok((verb, arguments, rest.trim()))
}

/// Refuses a word past the arguments the line's verb takes (`fs rm a b`), which would
/// otherwise be dropped unseen, and a quote left open; `write`'s text and unknown verbs
/// take any words.
pub fn refuse_extra_words(words: &str) -> Result<(), String> {
    let (verb, _, rest) = split(words)?;
    if verb == "write" || arity(verb).is_none() {
        return Ok(());
    }
    match crate::next_word(rest)? {
        Some((extra, _)) => Err(format!("fs {verb}: unexpected '{extra}'")),
        None => Ok(()),
    }
}

/// [`run`]'s work.
fn dispatch(
    kernel: &Kernel,
    words: &str,
    say: &dyn Fn(&str),
    stop: &mut dyn FnMut() -> bool,
) -> Result<Vec<String>, String> {
    let (verb, arguments, text) = split(words)?;
    if verb.is_empty() {
        return Err(format!("usage: {USAGE}"));
    }
    // An unknown verb takes none, and is refused below.
    let wanted = arity(verb).unwrap_or(0);
    if arguments.len() < wanted && verb != "ls" {
        return Err(format!("fs {verb}: usage: {USAGE}"));
    }
    // From here every verb has all the arguments its arity names.
    match verb {
        "ls" => {
            let dir = arguments.first().copied().unwrap_or("/");
            on_first_file_system(kernel, |fs| Ok(listing(&fs.list(dir)?, dir)))
        }
        "cat" => {
            let file = arguments[0];
            let shown = on_first_file_system(kernel, |fs| {
                let mut handle = fs.open(file)?;
                crate::show_file(
                    &mut |offset, buffer| fs.read_at(&mut handle, offset, buffer),
                    say,
                    &mut *stop,
                )
            })?;
            Ok(match shown {
                Shown::Stopped => vec![String::from("^C")],
                Shown::Whole { .. } => Vec::new(),
            })
        }
        "mkdir" => {
            let dir = arguments[0];
            on_first_file_system(kernel, |fs| fs.mkdir(dir))?;
            Ok(vec![format!("{dir} made")])
        }
        "write" => {
            let file = arguments[0];
            // The text is the rest of the line after the path, as typed, with a newline.
            let data = format!("{text}\n");
            on_first_file_system(kernel, |fs| fs.replace(file, data.as_bytes()))?;
            Ok(vec![format!("{file}: {} bytes written", data.len())])
        }
        "cp" => {
            let (from, to) = (arguments[0], arguments[1]);
            let bytes = on_first_file_system(kernel, |fs| {
                Ok(copy(fs, from, to, &mut FileSystem::read_at))
            })??;
            Ok(vec![format!("{from} copied to {to} ({bytes} bytes)")])
        }
        "mv" => {
            let (from, to) = (arguments[0], arguments[1]);
            on_first_file_system(kernel, |fs| fs.rename(from, to))?;
            Ok(vec![format!("{from} is now {to}")])
        }
        "rm" => {
            let path = arguments[0];
            on_first_file_system(kernel, |fs| match fs.stat(path)?.kind {
                FileKind::Directory => fs.rmdir(path),
                FileKind::File => fs.unlink(path),
            })?;
            Ok(vec![format!("{path} removed")])
        }
        "df" => on_first_file_system(kernel, |fs| {
            let s = fs.statfs();
            Ok(vec![format!(
                "{} KiB in {} blocks of {} bytes: {} used, {} free",
                s.total_blocks * s.block_size / 1024,
                s.total_blocks,
                s.block_size,
                s.total_blocks - s.free_blocks,
                s.free_blocks
            )])
        }),
        "fsck" => on_first_file_system(kernel, |fs| {
            let r = fs.check()?;
            Ok(vec![format!(
                "the Rexo file system is consistent: {} directories, {} files, {} blocks used, {} free",
                r.directories, r.files, r.used_blocks, r.free_blocks
            )])
        }),
        other => Err(format!("fs: unknown '{other}'; usage: {USAGE}")),
    }
}

/// Reads a piece of a file through its handle: [`FileSystem::read_at`] (a test counts
/// the pieces).
type ReadPiece<'a, D> =
    dyn FnMut(&mut FileSystem<D>, &mut File, u64, &mut [u8]) -> Result<usize, FsError> + 'a;

/// `fs cp FROM TO`: creates the file `to` (refused if it exists) and copies `from` into
/// it [`FILE_PIECE`] bytes at a time, each piece read through `read_piece` into the one
/// buffer of a piece and written at its offset (each write committed, as every change:
/// durable when it returns); the bytes copied. A failure after `to` was created deletes
/// it, and the error says so, or that deleting failed too and to `fs rm` it.
fn copy<D: BlockStore>(
    fs: &mut FileSystem<D>,
    from: &str,
    to: &str,
    read_piece: &mut ReadPiece<'_, D>,
) -> Result<u64, String> {
    let mut source = fs.open(from).map_err(|why| why.to_string())?;
    fs.create(to).map_err(|why| why.to_string())?;
    let mut buffer = vec![0u8; FILE_PIECE];
    let mut offset = 0u64;
    let copied = loop {
        let piece = match read_piece(fs, &mut source, offset, &mut buffer) {
            Ok(read) => buffer.get(..read).unwrap_or_default(),
            Err(why) => break Err(why),
        };
        if let Err(why) = fs.write(to, offset, piece) {
            break Err(why);
        }
        offset += piece.len() as u64;
        if piece.len() < FILE_PIECE {
            break Ok(offset);
        }
    };
    copied.map_err(|why| match fs.unlink(to) {
        Ok(()) => format!("copying to '{to}' failed ({why}); '{to}' deleted"),
        Err(undo) => format!(
            "copying to '{to}' failed ({why}), and deleting '{to}' failed too ({undo}): `fs rm` it"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rexo_fs::MemoryDisk;

    /// `fs cp`'s copy on `fs`, with the sizes of the buffers it read into.
    fn copy_counting(
        fs: &mut FileSystem<MemoryDisk>,
        from: &str,
        to: &str,
    ) -> (Result<u64, String>, Vec<usize>) {
        let mut reads = Vec::new();
        let copied = copy(fs, from, to, &mut |fs, file, offset, buffer| {
            reads.push(buffer.len());
            fs.read_at(file, offset, buffer)
        });
        (copied, reads)
    }

    /// A file of several pieces, its last one short, and one ending right at a piece's
    /// end: copied byte for byte, read a piece at a time into one buffer of a piece,
    /// durable (the copy is there after a mount); an existing new file is refused.
    #[test]
    fn cp_copies_a_piece_at_a_time() {
        let mut fs = FileSystem::format(MemoryDisk::new(4096)).unwrap();
        let file: Vec<u8> = (0..3 * FILE_PIECE + 1000)
            .map(|i| (i % 251) as u8)
            .collect();
        fs.replace("/a", &file).unwrap();
        let (copied, reads) = copy_counting(&mut fs, "/a", "/b");
        assert_eq!(copied, Ok(file.len() as u64));
        assert_eq!(reads, [FILE_PIECE; 4]);
        let exact = vec![7u8; 2 * FILE_PIECE];
        fs.replace("/c", &exact).unwrap();
        let (copied, reads) = copy_counting(&mut fs, "/c", "/d");
        assert_eq!((copied, reads.len()), (Ok(exact.len() as u64), 3));
        let mut fs = FileSystem::mount(fs.into_disk()).unwrap();
        assert!(fs.read_all("/b").unwrap() == file);
        assert!(fs.read_all("/d").unwrap() == exact);
        let (refused, reads) = copy_counting(&mut fs, "/a", "/d");
        assert_eq!(
            (refused, reads.len()),
            (Err(String::from("/d: already exists")), 0)
        );
        assert!(fs.read_all("/d").unwrap() == exact);
    }

    /// A copy that runs out of room after its first piece deletes the new file and says
    /// so, the disk's free blocks as before.
    #[test]
    fn a_cp_that_fails_midway_deletes_the_new_file() {
        let mut fs = FileSystem::format(MemoryDisk::new(512)).unwrap();
        let file = vec![1u8; 3 * FILE_PIECE];
        fs.replace("/a", &file).unwrap();
        // Room for a piece and a half of the copy.
        let piece_blocks = (FILE_PIECE as u64) / fs.statfs().block_size;
        let filler = fs.statfs().free_blocks - piece_blocks * 3 / 2;
        let filler_bytes = usize::try_from(filler * fs.statfs().block_size).unwrap();
        fs.replace("/filler", &vec![2u8; filler_bytes]).unwrap();
        let free = fs.statfs().free_blocks;
        let (copied, reads) = copy_counting(&mut fs, "/a", "/b");
        assert_eq!(
            copied,
            Err(String::from(
                "copying to '/b' failed (no free block left); '/b' deleted"
            ))
        );
        assert_eq!(reads.len(), 2);
        let mut fs = FileSystem::mount(fs.into_disk()).unwrap();
        assert_eq!(fs.stat("/b"), Err(FsError::NotFound(String::from("/b"))));
        assert_eq!(fs.statfs().free_blocks, free);
        assert!(fs.read_all("/a").unwrap() == file);
    }

    #[test]
    fn fs_splits_quoted_paths_and_keeps_writes_text_as_typed() {
        assert_eq!(
            split("cat \"/my notes.txt\""),
            Ok(("cat", vec!["/my notes.txt"], ""))
        );
        assert_eq!(split("cp \"/a b\" /c"), Ok(("cp", vec!["/a b", "/c"], "")));
        assert_eq!(
            split(" write \"/my notes.txt\"  say \"hi\"  twice "),
            Ok(("write", vec!["/my notes.txt"], "say \"hi\"  twice"))
        );
        assert_eq!(split("write /a"), Ok(("write", vec!["/a"], "")));
        assert_eq!(split("ls"), Ok(("ls", vec![], "")));
        assert_eq!(split("frob \"a b"), Ok(("frob", vec![], "\"a b")));
        assert_eq!(split(""), Ok(("", vec![], "")));
        assert!(split("rm \"/a").unwrap_err().contains("no closing quote"));
    }

    /// A name holding ESC c (a terminal reset) or a line end is shown, not sent: `fs
    /// ls` and an error naming the path (here `fs.create("/a\x1bc")` succeeds).
    #[test]
    fn fs_ls_and_errors_show_the_control_characters_of_names() {
        let entries = [
            DirEntry {
                name: String::from("a\x1bc"),
                kind: FileKind::File,
                size: 3,
            },
            DirEntry {
                name: String::from("fake\n2 entries in /"),
                kind: FileKind::Directory,
                size: 4096,
            },
        ];
        assert_eq!(
            listing(&entries, "/"),
            [
                format!("{:<40} {:>12} bytes", "a^[c", 3),
                String::from("fake^J2 entries in //"),
                String::from("2 entries in /"),
            ]
        );
        let missing = FsError::NotFound(String::from("/a\x1bc")).to_string();
        assert_eq!(failure("cat", &missing), "fs cat: /a^[c: not found");
        assert_eq!(failure("ls", "fs ls: /x\ny"), "fs ls: /x^Jy");
    }
}
