//! `cargo xtask`: build, image, run, test and bench Rexo.
//!
//! Commands (see `cargo xtask help` and docs/testing.md):
//! `build`, `run`, `image`, `test [FILTER]`, `bench [NAME...]`, `bench boot|api|drivers|fs`, `linux`, `loc`, `disk`, `fs`.

mod appcheck;
mod args;
mod baremetal;
mod bench;
mod bench_report;
mod bench_suite;
mod benchclient;
mod bootdisk;
mod build;
mod cursor;
mod deps;
mod devbench;
mod disk;
mod diskimage;
mod echoclient;
mod fsbench;
mod fsimage;
mod gdb;
mod harness;
mod hmp;
mod hostrt;
mod httpclient;
mod image;
mod imagelock;
mod kvtests;
mod linux;
mod loadgen;
mod loc;
mod netclient;
mod netpeer;
mod proctree;
mod pvh;
mod qemu;
mod queuepeer;
mod run;
mod rustdoc;
mod staged;
mod synflood;
mod tapnet;
mod testcases;
mod usbkeys;
mod xnimage;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

/// Errors are messages for a person: they say what went wrong and what to do.
pub type Result<T> = std::result::Result<T, String>;

/// The workspace root (the folder above `xtask/`).
pub fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map_or(manifest.clone(), PathBuf::from)
}

/// The first line of the usage.
const USAGE_HEAD: &str = "usage: cargo xtask COMMAND [OPTIONS]\n\n";

/// The last line of the usage.
const USAGE_TAIL: &str = "  help, COMMAND --help (or -h)   this usage, or one command's
";

/// Each command's part of the usage, in the order `cargo xtask help` shows them.
const COMMAND_USAGES: &[(&str, &str)] = &[
    (
        "build",
        "  build                          build the kernel and write its symbol table
                                 (takes no flags)
",
    ),
    (
        "run",
        "  run [OPTIONS] [-- QEMU ARGS]   build and boot in QEMU, serial on this terminal
      --cores N  --mem SIZE  --boot pvh|bios|uefi  --machine microvm|q35|pc
      --accel auto|kvm|tcg  --app NAME  --append \"WORDS\"  [--module FILE]...  --gdb
",
    ),
    (
        "image",
        "  image [--append WORDS] [--module FILE]... [-o PATH]
                                 build a hybrid BIOS/UEFI ISO (default target/rexo.iso)
                                 that boots the monitor, or the apps WORDS choose
",
    ),
    (
        "test",
        "  test [FILTER]                  run the host, kernel, boot, crash and bad-input tests
                                 (those whose names contain FILTER; takes no flags)
",
    ),
    (
        "bench",
        "  bench [NAME...] [--quick] [--rounds N] [--pairs N] [--accel tcg|kvm]
                                 the suite: Rexo against a Debian Linux guest on the same
                                 machine, report in target/bench/report.md (docs/bench.md)
  bench boot [--runs N] [--quick]
                                 measure boot time against QEMU's floor
  bench api                      measure API calls, frames, cross-core round trips,
                                 revocation (takes no flags)
  bench drivers [DEVICE...] [--rounds N] [--quick]
                                 measure NICs (frames/s, empty poll) and disks (IOPS, MiB/s),
                                 each beside a Linux guest on the same machine and device
  bench fs [--quick] [--rounds N]
                                 the suite's file-system rows (small-files, fs-randread)
",
    ),
    (
        "linux",
        "  linux [--service none|nginx|memcached|fio|bench|fsbench|drivers]
        [--cores N] [--mem SIZE] [--append WORDS]
        [--build-only]           build the Linux baseline from Debian packages (cached in
                                 target/linux/) and boot it under TCG until it is ready
",
    ),
    (
        "loc",
        "  loc                            count lines of Rust per layer against the kernel budget
                                 (takes no flags)
",
    ),
    (
        "disk",
        "  disk ...                       make and inspect BMFS disk images (`cargo xtask disk
                                 --help` lists)
",
    ),
    (
        "fs",
        "  fs IMAGE ...                   make and inspect Rexo file system images (`cargo xtask
                                 fs --help` lists)
",
    ),
];

/// The whole usage: every command's part.
fn usage() -> String {
    let commands: String = COMMAND_USAGES.iter().map(|(_, lines)| *lines).collect();
    format!("{USAGE_HEAD}{commands}{USAGE_TAIL}")
}

/// What `cargo xtask COMMAND --help` prints: that command's usage (`disk` and `fs` list
/// their commands), the whole usage for `help`; `None` for a command `cargo xtask` does
/// not know.
fn command_usage(command: &str) -> Option<String> {
    match command {
        "disk" => Some(format!("usage: cargo xtask disk ...\n\n{}", disk::USAGE)),
        "fs" => Some(format!(
            "usage: cargo xtask fs IMAGE ...\n\n{}",
            fsimage::USAGE
        )),
        "help" | "--help" | "-h" => Some(usage()),
        _ => COMMAND_USAGES
            .iter()
            .find(|(name, _)| *name == command)
            .map(|(_, lines)| format!("usage:\n{lines}")),
    }
}

/// Whether a command's words ask for its usage: `--help` or `-h` before any `--` (after
/// which `run`'s words are QEMU's).
fn asks_for_help(words: &[String]) -> bool {
    words
        .iter()
        .take_while(|word| *word != "--")
        .any(|word| word == "--help" || word == "-h")
}

/// The words of a command line (after the program's name), which must be UTF-8: a
/// word that is not is named in the error (`std::env::args` panics on it).
fn utf8_words(words: impl Iterator<Item = OsString>) -> Result<Vec<String>> {
    words
        .map(|word| {
            word.into_string().map_err(|word| {
                format!("the argument {word:?} is not UTF-8; give every argument in UTF-8")
            })
        })
        .collect()
}

/// Runs `command` with its `words` (a `--help` or `-h` among them prints its usage
/// instead); returns the exit status.
fn dispatch(command: &str, words: Vec<String>) -> Result<u8> {
    if let Some(usage) = command_usage(command).filter(|_| asks_for_help(&words)) {
        print!("{usage}");
        return Ok(0);
    }
    match command {
        "build" => build::command(words).map(|()| 0),
        "run" => run::command(words),
        "image" => image::command(words).map(|()| 0),
        "test" => harness::command(words),
        "bench" => bench::command(words).map(|()| 0),
        // The suite's clients inside the tap transport's namespace (not for users).
        "bench-client" => benchclient::command(words).map(|()| 0),
        "linux" => linux::command(words).map(|()| 0),
        "loc" => loc::command(words).map(|()| 0),
        "disk" => disk::command(words).map(|()| 0),
        "fs" => fsimage::command(&words).map(|()| 0),
        "help" | "--help" | "-h" => {
            print!("{}", usage());
            Ok(0)
        }
        other => {
            let names: Vec<&str> = COMMAND_USAGES.iter().map(|(name, _)| *name).collect();
            Err(format!(
                "unknown command `{other}`; valid commands: {}, help",
                names.join(", ")
            ))
        }
    }
}

fn main() -> ExitCode {
    let mut argv = match utf8_words(std::env::args_os().skip(1)) {
        Ok(argv) => argv,
        Err(message) => {
            eprintln!("xtask: error: {message}");
            return ExitCode::from(2);
        }
    };
    if argv.is_empty() {
        eprint!("{}", usage());
        return ExitCode::from(2);
    }
    let command = argv.remove(0);
    let result = dispatch(&command, argv);
    match result {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("xtask: error: {message}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{COMMAND_USAGES, asks_for_help, command_usage, dispatch};
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    /// An argument that is not UTF-8 is a usage error naming it, not a panic.
    #[test]
    fn an_argument_that_is_not_utf8_is_named() {
        let words = [
            OsString::from("fs"),
            OsString::from_vec(b"im\xffg".to_vec()),
        ];
        let err = super::utf8_words(words.into_iter()).unwrap_err();
        assert!(err.contains(r#""im\xFFg" is not UTF-8"#), "{err}");
        let words = ["disk", "ls"].map(OsString::from);
        assert_eq!(
            super::utf8_words(words.into_iter()).unwrap(),
            ["disk", "ls"]
        );
    }

    /// `--help` prints every command's usage and succeeds: it was an error for each
    /// ("has no flag `--help`", "takes one optional FILTER and no flags", `disk` and `fs`
    /// printing their usage as an error, its first line unindented), and runs nothing
    /// else.
    #[test]
    fn every_command_answers_help_with_its_usage() {
        for (name, _) in COMMAND_USAGES.iter().chain([&("help", "")]) {
            assert_eq!(
                dispatch(name, vec!["--help".into()]),
                Ok(0),
                "{name} --help"
            );
        }
        for (name, lines) in COMMAND_USAGES {
            let usage = command_usage(name).unwrap();
            assert!(usage.starts_with("usage:"), "{name}: {usage}");
            assert!(usage.contains(&format!("  {name} ")), "{name}: {usage}");
            if !["disk", "fs"].contains(name) {
                assert!(usage.ends_with(lines), "{name}: {usage}");
            }
            // Every line under the first is indented: `disk`'s and `fs`'s first lost it.
            for line in usage.lines().skip(1).filter(|line| !line.is_empty()) {
                assert!(line.starts_with("  "), "{name}: `{line}` in\n{usage}");
            }
        }
        assert!(
            command_usage("disk")
                .unwrap()
                .contains("  disk create IMAGE SIZE")
        );
        assert!(
            command_usage("fs")
                .unwrap()
                .contains("  fs IMAGE create SIZE")
        );
        for name in ["build", "loc"] {
            assert!(
                command_usage(name).unwrap().contains("(takes no flags)"),
                "{name}"
            );
        }
        // `--module` may be given again for each file: both commands say so, as
        // docs/testing.md does.
        for name in ["run", "image"] {
            assert!(
                command_usage(name).unwrap().contains("[--module FILE]..."),
                "{name}"
            );
        }
        assert!(command_usage("bench-client").is_none());
        let words = |w: &[&str]| w.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        assert!(asks_for_help(&words(&["-h"])));
        assert!(asks_for_help(&words(&["--cores", "2", "--help"])));
        assert!(!asks_for_help(&words(&["--", "-h"])), "QEMU's words");
        assert!(!asks_for_help(&words(&["boot::"])));
    }

    /// Issue 3 asks for a reason per lint: in the workspace's lint tables each lint line
    /// directly follows its comment, or is one of a group under a comment that names it.
    #[test]
    fn every_workspace_lint_has_a_reason() {
        let manifest = std::fs::read_to_string(super::root().join("Cargo.toml")).unwrap();
        let mut in_lints = false;
        let mut comment = String::new();
        let mut after_comment = false;
        for line in manifest.lines().map(str::trim) {
            if let Some(text) = line.strip_prefix('#') {
                comment.push_str(text);
                after_comment = true;
                continue;
            }
            if line.starts_with('[') {
                in_lints = line.starts_with("[workspace.lints.");
            } else if in_lints && !line.is_empty() {
                let lint = line.split('=').next().unwrap_or_default().trim();
                let named = comment.contains(lint.trim_end_matches("_macro"));
                assert!(
                    after_comment || named,
                    "the workspace lint `{lint}` has no reason"
                );
                after_comment = false;
                continue;
            }
            comment.clear();
            after_comment = false;
        }
    }

    /// docs/testing.md says the host tests run every crate under `apps/`, `libs/`,
    /// `libos/` and `drivers/`: `cargo test` at the root runs the default members, so
    /// each crate folder there must be one, and so must a crate added later
    /// (`apps/myapp`), with no step in the manifest that a new user would miss.
    #[test]
    fn every_crate_of_the_open_layers_is_a_default_member() {
        let root = super::root();
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        let line = manifest
            .lines()
            .find_map(|line| line.strip_prefix("default-members = "))
            .expect("a default-members line");
        let members: Vec<&str> = line
            .trim_matches(['[', ']'])
            .split(',')
            .map(|word| word.trim().trim_matches('"'))
            .collect();
        let covered = |folder: &str| {
            let (layer, _) = folder.split_once('/').unwrap();
            members.contains(&folder) || members.contains(&format!("{layer}/*").as_str())
        };
        for layer in ["apps", "libs", "libos", "drivers"] {
            let new_crate = format!("{layer}/a-crate-added-later");
            assert!(covered(&new_crate), "{new_crate} in {members:?}");
            for entry in std::fs::read_dir(root.join(layer)).unwrap() {
                let path = entry.unwrap().path();
                if path.join("Cargo.toml").is_file() {
                    let folder = path.strip_prefix(&root).unwrap().to_str().unwrap();
                    assert!(covered(folder), "{folder} in {members:?}");
                }
            }
        }
    }
}
