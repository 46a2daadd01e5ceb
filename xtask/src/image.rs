//! `cargo xtask image`: a hybrid BIOS + UEFI ISO made with `grub-mkrescue`, bootable
//! from a CD or a USB stick, loading the kernel through Multiboot2.

use crate::Result;
use crate::args::Args;
use crate::deps::{self, Need};
use crate::staged::WorkTree;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The default output, relative to the workspace root.
pub const DEFAULT_ISO: &str = "target/rexo.iso";

const FLAGS: &[&str] = &["--append", "--module", "-o"];

/// The app `image` boots when `--append` chooses none: the monitor, a command line on the
/// serial console and the screen. The kernel's own default, hello, greets and powers the
/// machine off, so a machine booted from the stick switched itself off at once.
const ISO_APP: &str = "app=monitor";

/// The word of the kernel command line `append` that chooses the apps (`app=NAME` or a
/// boot manifest `apps=...`), if it has one.
pub fn apps_word(append: &str) -> Option<&str> {
    append
        .split_whitespace()
        .find(|word| word.starts_with("app=") || word.starts_with("apps="))
}

/// The apps a kernel command line `append` chooses, in their order: `app=NAME`'s, or each
/// entry's of a boot manifest `apps=NAME:CORES:MEM,...`; none without either.
pub fn chosen_apps(append: &str) -> Vec<&str> {
    match apps_word(append).and_then(|word| word.split_once('=')) {
        Some(("app", name)) => vec![name],
        Some((_, manifest)) => manifest
            .split(',')
            .map(|entry| entry.split(':').next().unwrap_or(entry))
            .collect(),
        None => Vec::new(),
    }
}

/// The block of `source` from the line holding `start` to the first line after it that
/// is `end`, or an error naming `file` (its table moved: the reader must follow it).
fn table_in<'a>(source: &'a str, file: &str, start: &str, end: &str) -> Result<&'a str> {
    let from = source
        .find(start)
        .ok_or_else(|| format!("{file}: no `{start}` to read the app names from"))?;
    let block = &source[from..];
    let to = block
        .find(end)
        .ok_or_else(|| format!("{file}: `{start}` has no end (`{end}`)"))?;
    Ok(&block[..to])
}

/// The first string literal in `text` (no escapes: app names have none).
fn first_literal(text: &str) -> Option<&str> {
    let (_, rest) = text.split_once('"')?;
    rest.split_once('"').map(|(literal, _)| literal)
}

/// The names of a table of `App` entries in source order, each written as
/// `App::new("NAME", ...)` (the name on its line or a later one) or as
/// `App { name: "NAME", ... }` (on one line or over several).
fn entry_names(table: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut awaiting_built_name = false;
    for line in table.lines().map(str::trim) {
        let rest = match line.split_once("App::new(") {
            Some((_, arguments)) => {
                awaiting_built_name = true;
                arguments
            }
            None => line,
        };
        let name = if awaiting_built_name {
            first_literal(rest)
        } else {
            let fields = line.strip_prefix("App { ").unwrap_or(line);
            fields.strip_prefix("name: ").and_then(first_literal)
        };
        if let Some(name) = name {
            names.push(name);
            awaiting_built_name = false;
        }
    }
    names
}

/// The names of the apps linked into the image, read from the source of the tables that
/// list them, so that no second list can drift from them: the image's
/// (`image/src/lib.rs`, `APPS`), then the kernel's own (`kernel/src/apps.rs`,
/// `KERNEL_APPS`), each entry written either way ([`entry_names`]), then the C apps
/// (`image/src/lib.rs`, `c_apps!`: each entry's first literal, before its `_main`);
/// the kernel's `apps::all` lists them in that order.
pub fn app_names(root: &Path) -> Result<Vec<String>> {
    let read =
        |file: &str| std::fs::read_to_string(root.join(file)).map_err(|e| format!("{file}: {e}"));
    let mut names = Vec::new();
    let image = read("image/src/lib.rs")?;
    let table = table_in(
        &image,
        "image/src/lib.rs",
        "pub const APPS: &[App] = &[",
        "\n];",
    )?;
    names.extend(entry_names(table));
    let kernel = read("kernel/src/apps.rs")?;
    let table = table_in(&kernel, "kernel/src/apps.rs", "const KERNEL_APPS", "\n];")?;
    names.extend(entry_names(table));
    let table = table_in(&image, "image/src/lib.rs", "macro_rules! c_apps {", "\n}")?;
    let entries = table.lines().map(str::trim).filter(|line| {
        line.starts_with('"')
            && line
                .split(',')
                .nth(1)
                .is_some_and(|f| f.trim().ends_with("_main"))
    });
    names.extend(entries.filter_map(first_literal));
    Ok(names.into_iter().map(String::from).collect())
}

/// Refuses a kernel command line `append` that chooses an app the image does not have
/// ([`chosen_apps`], [`app_names`]), naming it and the apps there are, before anything
/// is built: the kernel refused it only at boot, after a build of minutes.
pub fn check_apps(append: &str) -> Result<()> {
    let chosen = chosen_apps(append);
    if chosen.is_empty() {
        return Ok(());
    }
    let names = app_names(&crate::root())?;
    match chosen
        .iter()
        .find(|name| !names.iter().any(|known| known == *name))
    {
        Some(unknown) => Err(format!(
            "no app called '{unknown}' in this image; the apps are: {}",
            names.join(", ")
        )),
        None => Ok(()),
    }
}

/// The command line `image` gives the ISO: `append`, after [`ISO_APP`] unless it chooses
/// the apps itself.
fn iso_cmdline(append: &str) -> String {
    match apps_word(append) {
        Some(_) => append.to_string(),
        None => format!("{ISO_APP} {append}").trim_end().to_string(),
    }
}

/// `cargo xtask image [--append WORDS] [--module FILE]... [-o PATH]`.
pub fn command(words: Vec<String>) -> Result<()> {
    let mut args = Args::new("image", FLAGS, words);
    let mut append = String::new();
    let mut modules = Vec::new();
    let mut out = crate::root().join(DEFAULT_ISO);
    while let Some(word) = args.next_word() {
        match word.as_str() {
            "--append" => append = args.value("--append")?,
            "--module" => modules.push(PathBuf::from(args.value("--module")?)),
            "-o" => out = PathBuf::from(args.value("-o")?),
            _ => return Err(args.unknown(&word)),
        }
    }
    // Every argument is checked before the kernel's build (minutes).
    check_modules(&modules)?;
    let cmdline = iso_cmdline(&append);
    check_append(&cmdline)?;
    check_apps(&cmdline)?;
    module_names(&modules)?;
    let kernel = crate::build::kernel()?;
    build_iso(&kernel, &cmdline, &modules, &out)?;
    println!("{}", out.display());
    Ok(())
}

/// Refuses a `--module` that is not a regular file this user can read, naming it, before
/// anything is built (QEMU's `-initrd` or the ISO's copy failed later, in their words).
pub fn check_modules(modules: &[PathBuf]) -> Result<()> {
    for module in modules {
        let shown = module.display();
        match std::fs::File::open(module).and_then(|file| file.metadata()) {
            Ok(metadata) if metadata.is_file() => {}
            Ok(_) => return Err(format!("--module {shown}: not a regular file")),
            Err(e) => return Err(format!("--module {shown}: cannot read it ({e})")),
        }
    }
    Ok(())
}

/// The file name each module gets on the ISO (its own name); duplicates are an error, as
/// is a name GRUB's configuration would not carry as it is ([`grub_refuses`]).
fn module_names(modules: &[PathBuf]) -> Result<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for module in modules {
        let name = module
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.contains(char::is_whitespace))
            .ok_or_else(|| {
                format!(
                    "module {} needs a UTF-8 file name without spaces",
                    module.display()
                )
            })?
            .to_string();
        if let Some(refused) = name.chars().find(|&c| grub_refuses(c)) {
            return Err(format!(
                "module {}: its name holds {refused:?}, which GRUB's configuration cannot carry \
                 as it is (quotes, backslashes and control characters); rename it",
                module.display()
            ));
        }
        if names.contains(&name) {
            return Err(format!("two modules are named {name}; rename one"));
        }
        names.push(name);
    }
    Ok(names)
}

/// GRUB's configuration: no menu delay, serial console at 115200, the kernel through
/// Multiboot2 with `append` as its command line, one `module2` per module name. Each word
/// and name is in single quotes, so that GRUB's script syntax (`{ } | & < > ; $`, `#` at a
/// word's start) is taken as it is ([`check_append`] refuses what quotes cannot carry).
pub fn grub_cfg(append: &str, modules: &[String]) -> String {
    let mut cfg = String::from(
        "set timeout=0\n\
         set default=0\n\
         serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1\n\
         terminal_input serial console\n\
         terminal_output serial console\n\
         insmod all_video\n\
         set gfxpayload=keep\n\
         menuentry \"Rexo\" {\n",
    );
    cfg.push_str("    multiboot2 /boot/rexo");
    // Split on the space alone, as check_append's doc says (control characters are
    // refused there; other Unicode spaces reach the kernel inside their word).
    for word in append.split(' ').filter(|word| !word.is_empty()) {
        cfg.push_str(&format!(" '{word}'"));
    }
    cfg.push('\n');
    for name in modules {
        cfg.push_str(&format!("    module2 '/boot/modules/{name}' '{name}'\n"));
    }
    cfg.push_str("    boot\n}\n");
    cfg
}

/// Whether GRUB's configuration cannot carry `c` as it is, even in [`grub_cfg`]'s single
/// quotes: a quote (which would end them), a backslash (GRUB's `multiboot2` passes these
/// three on with a backslash before them) or a control character (a line break ends the
/// command).
fn grub_refuses(c: char) -> bool {
    matches!(c, '\'' | '"' | '\\') || c.is_control()
}

/// Refuses a kernel command line that GRUB's configuration would not carry as it is:
/// one holding a quote, a backslash or a control character ([`grub_refuses`]). Words
/// are separated by spaces; every other character reaches the kernel as given.
pub fn check_append(append: &str) -> Result<()> {
    if let Some(refused) = append.chars().find(|&c| grub_refuses(c)) {
        return Err(format!(
            "--append `{}`: {refused:?} is not allowed in the GRUB command line (quotes, \
             backslashes and control characters such as line breaks)",
            crate::fsimage::shown(append)
        ));
    }
    Ok(())
}

/// Builds the ISO at `out` from `kernel`, the command line `append` and `modules`.
pub fn build_iso(kernel: &Path, append: &str, modules: &[PathBuf], out: &Path) -> Result<()> {
    check_append(append)?;
    deps::ensure(&[Need::Iso])?;
    let names = module_names(modules)?;
    let stem = out
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("bad output path {}", out.display()))?;
    // The staging tree sits beside the ISO, so that two ISOs built at once (the test
    // cases run in parallel, each in its own folder) never share one; it is removed
    // when dropped, whether grub-mkrescue made the ISO or failed.
    let work = WorkTree::create(out.with_file_name(format!("{stem}.tree")))?;
    let tree = work.path();
    let io = |what: &str, path: &Path, e: std::io::Error| {
        format!("cannot {what} {}: {e}", path.display())
    };
    let grub = tree.join("boot/grub");
    let mods = tree.join("boot/modules");
    std::fs::create_dir_all(&grub).map_err(|e| io("create", &grub, e))?;
    std::fs::create_dir_all(&mods).map_err(|e| io("create", &mods, e))?;
    std::fs::copy(kernel, tree.join("boot/rexo")).map_err(|e| io("copy", kernel, e))?;
    for (module, name) in modules.iter().zip(&names) {
        std::fs::copy(module, mods.join(name)).map_err(|e| io("copy module", module, e))?;
    }
    let cfg = grub.join("grub.cfg");
    std::fs::write(&cfg, grub_cfg(append, &names)).map_err(|e| io("write", &cfg, e))?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    }
    // grub-mkrescue stages its own files in a folder under TMPDIR (13 MB, an EFI image
    // among them) and leaves it there: a folder beside the ISO, removed when dropped.
    let scratch = WorkTree::create(out.with_file_name(format!("{stem}.tmp")))?;
    let output = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(out)
        .arg(tree)
        .env("TMPDIR", scratch.path())
        .output()
        .map_err(|e| format!("cannot run grub-mkrescue ({e}); install grub-common"))?;
    if !output.status.success() {
        return Err(format!(
            "grub-mkrescue failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ISO boots the monitor unless `--append` chooses the apps: with no command line
    /// the kernel ran hello, which powers the machine off.
    #[test]
    fn the_iso_boots_the_monitor_unless_told_otherwise() {
        assert_eq!(iso_cmdline(""), "app=monitor");
        assert_eq!(iso_cmdline("log=debug"), "app=monitor log=debug");
        assert_eq!(iso_cmdline("log=debug app=httpd"), "log=debug app=httpd");
        assert_eq!(
            iso_cmdline("apps=hello:0:8M,hello:1:8M"),
            "apps=hello:0:8M,hello:1:8M"
        );
        assert_eq!(iso_cmdline("myapp=x"), "app=monitor myapp=x");
    }

    #[test]
    fn config_has_everything() {
        let cfg = grub_cfg("app=hello log=debug", &["a.bin".into(), "b".into()]);
        assert!(cfg.starts_with("set timeout=0\n"));
        assert!(cfg.contains("serial --unit=0 --speed=115200"));
        assert!(cfg.contains("terminal_output serial console"));
        assert!(cfg.contains("    multiboot2 /boot/rexo 'app=hello' 'log=debug'\n"));
        assert!(cfg.contains("    module2 '/boot/modules/a.bin' 'a.bin'\n"));
        assert!(cfg.contains("    module2 '/boot/modules/b' 'b'\n"));
        assert!(cfg.trim_end().ends_with("boot\n}"));
        assert!(grub_cfg("", &[]).contains("    multiboot2 /boot/rexo\n"));
    }

    /// GRUB's script syntax in a word reaches the kernel as it is: each word is quoted.
    /// Unquoted, `#x` began a comment (the word silently lost) and `x={y}` or `a;b` was
    /// GRUB syntax.
    #[test]
    fn words_with_grub_syntax_are_quoted() {
        let append = "log=debug #x x={y} a|b&c a<b>c a;b $x";
        check_append(append).unwrap();
        assert!(grub_cfg(append, &[]).contains(
            "    multiboot2 /boot/rexo 'log=debug' '#x' 'x={y}' 'a|b&c' 'a<b>c' 'a;b' '$x'\n"
        ));
        let modules = [PathBuf::from("/m/#a{b}")];
        let names = module_names(&modules).unwrap();
        assert!(grub_cfg("", &names).contains("    module2 '/boot/modules/#a{b}' '#a{b}'\n"));
    }

    /// The reader finds every app of the three tables: as many names as each table has
    /// entries (`App {`, `App::new(`, the C apps' `_main`s), the first and last of each
    /// among them, and no name twice.
    #[test]
    fn the_app_names_are_read_from_every_table() {
        let root = crate::root();
        let names = app_names(&root).unwrap();
        let read = |file: &str| std::fs::read_to_string(root.join(file)).unwrap();
        let image = read("image/src/lib.rs");
        let image_apps = table_in(&image, "", "pub const APPS: &[App] = &[", "\n];").unwrap();
        let kernel = read("kernel/src/apps.rs");
        let kernel_apps = table_in(&kernel, "", "const KERNEL_APPS", "\n];").unwrap();
        let c_apps = table_in(&image, "", "macro_rules! c_apps {", "\n}").unwrap();
        let entries = image_apps.matches("App {").count()
            + kernel_apps.matches("App::new(").count()
            + kernel_apps.matches("App {").count()
            + c_apps.matches("_main,").count();
        assert_eq!(names.len(), entries, "{names:?}");
        for name in [
            "hello",
            "monitor",
            "httpd-test-smoltcp",
            "kv-small",
            "memdemo-revocable",
            "reboot",
            "baremetal",
            "c-hello",
            "c-timers",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} missing: {names:?}");
        }
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
    }

    /// A table mixing both forms of entry is read in source order, as `apps::all` lists
    /// it: every `App::new` name came first.
    #[test]
    fn entry_names_keep_the_source_order() {
        let table = "const T: &[App] = &[
    App { name: \"first\", about: \"a\", main: a, may_run_baremetal: false },
    App::new(
        \"second\",
        \"b\",
        b,
    ),
    App {
        name: \"third\",
        about: \"c\",
    },
    App::new(\"fourth\", \"d\", d),
";
        assert_eq!(entry_names(table), ["first", "second", "third", "fourth"]);
    }

    /// An app the image does not have is refused before the build, naming it: `image
    /// --append app=nosuchapp` made an ISO that failed at boot.
    #[test]
    fn an_unknown_app_is_refused_before_the_build() {
        for append in [
            "app=nosuchapp log=debug",
            "apps=monitor:0:64M,nosuchapp:1:8M",
        ] {
            let err = check_apps(append).unwrap_err();
            assert!(
                err.starts_with("no app called 'nosuchapp' in this image; the apps are: hello,"),
                "{append}: {err}"
            );
        }
        check_apps("app=httpd-smoltcp").unwrap();
        check_apps("apps=monitor:0:64M,c-cores:1:8M").unwrap();
        check_apps("log=debug").unwrap();
    }

    /// What single quotes cannot carry is refused, naming it: a quote ended them (`x='y`
    /// made a grub.cfg that failed at boot), and GRUB passes quotes and backslashes on
    /// escaped.
    #[test]
    fn quotes_backslashes_and_control_characters_are_refused() {
        for (append, refused) in [
            ("x='y", "'\\''"),
            ("a\"b", "'\"'"),
            ("a\\b", "'\\\\'"),
            ("a\nb", "'\\n'"),
            ("a\u{1b}b", "'\\u{1b}'"),
        ] {
            let err = check_append(append).unwrap_err();
            assert!(err.contains(refused), "{append:?}: {err}");
        }
        // The words are shown as given, control characters alone escaped: `log="x"` was
        // shown Debug-escaped, `log=\"x\"`.
        let err = check_append("log=\"x\"").unwrap_err();
        assert!(err.starts_with("--append `log=\"x\"`: '\"'"), "{err}");
        let err = check_append("a\nb").unwrap_err();
        assert!(err.starts_with("--append `a\\nb`"), "{err}");
        let err = module_names(&[PathBuf::from("/m/it's")]).unwrap_err();
        assert!(err.contains("rename it"), "{err}");
    }

    /// A module that cannot be read is refused by name before the build: `run --module
    /// /nonexistent` got only QEMU's error after it.
    #[test]
    fn a_module_that_cannot_be_read_is_named() {
        let err = check_modules(&[PathBuf::from("/nonexistent/app.bin")]).unwrap_err();
        assert!(
            err.starts_with("--module /nonexistent/app.bin: cannot read it ("),
            "{err}"
        );
        let dir = std::env::temp_dir();
        let err = check_modules(std::slice::from_ref(&dir)).unwrap_err();
        assert!(err.ends_with("not a regular file"), "{err}");
        let file = dir.join(format!("rexo-module-{}", std::process::id()));
        std::fs::write(&file, b"flat").unwrap();
        assert_eq!(check_modules(std::slice::from_ref(&file)), Ok(()));
        std::fs::remove_file(&file).unwrap();
    }

    #[test]
    fn module_names_must_be_unique() {
        let modules = [PathBuf::from("/x/a"), PathBuf::from("/y/a")];
        assert!(module_names(&modules).unwrap_err().contains("named a"));
        assert!(module_names(&[PathBuf::from("/")]).is_err());
        assert_eq!(
            module_names(&[PathBuf::from("/x/a"), PathBuf::from("b")]),
            Ok(vec!["a".to_string(), "b".to_string()])
        );
    }

    /// The staging tree (`ISO.tree`, a copy of the kernel and modules in it) is removed
    /// whether grub-mkrescue makes the ISO or fails (here over a folder in the ISO's
    /// place): it was left on both paths.
    #[test]
    fn the_staging_tree_is_removed_after_grub_mkrescue() {
        let dir = std::env::temp_dir().join(format!("rexo-iso-tree-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("taken.iso")).unwrap();
        let kernel = dir.join("kernel.elf");
        std::fs::write(&kernel, b"not booted").unwrap();
        let err = build_iso(&kernel, "", &[], &dir.join("taken.iso")).unwrap_err();
        assert!(err.contains("grub-mkrescue failed"), "{err}");
        assert!(!dir.join("taken.iso.tree").exists(), "left after a failure");
        build_iso(&kernel, "", &[], &dir.join("made.iso")).unwrap();
        assert!(dir.join("made.iso").is_file());
        assert!(
            !dir.join("made.iso.tree").exists(),
            "left after the ISO was made"
        );
        assert!(!dir.join("made.iso.tmp").exists(), "grub-mkrescue's left");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn hostile_command_lines_are_refused() {
        let out = std::env::temp_dir().join("never.iso");
        let err = build_iso(Path::new("/k"), "a\"b", &[], &out).unwrap_err();
        assert!(err.contains("not allowed"));
    }
}
