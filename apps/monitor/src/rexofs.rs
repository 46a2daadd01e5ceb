//! The monitor's `fs` commands: the Rexo file system (`rexo-fs`) on the first disk that
//! holds one, mounted for each command (mount replays the journal and checks the tree)
//! and given back afterwards. Every change is durable when the command returns.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use rexo_api::Kernel;
use rexo_fs::{DirEntry, FileKind, FsError, on_first_file_system};

use crate::Shown;

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
                if fs.stat(to).is_ok() {
                    return Err(FsError::Exists(String::from(to)));
                }
                let data = fs.read_all(from)?;
                fs.replace(to, &data)?;
                Ok(data.len())
            })?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
