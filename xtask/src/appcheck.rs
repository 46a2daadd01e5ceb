//! The app rules of issue 4, checked before every kernel build: each crate in `apps/`
//! and `libos/` (each folder with a `Cargo.toml`; `apps/baremetal-tests/` holds
//! assembly programs and has none, so it is skipped) must
//!
//! - carry `#![forbid(unsafe_code)]` in its crate root (`src/lib.rs`, `src/main.rs`),
//! - hold no `unsafe` token in any of its `.rs` files (the lexer of `loc.rs` decides
//!   what a token is, so `unsafe` in comments and strings does not count),
//! - name none of rexo-api's kernel-side macros ([`KERNEL_SIDE`]: they define the
//!   kernel's entry points, and Rust's `unsafe_code` lint does not see what another
//!   crate's macro expands to),
//! - have no build script and not be a procedural macro (both run any code at build time),
//!   and keep its crate roots where the check looks for them,
//! - depend only on the kernel API (`api/`), the library OSes (the crates in `libos/`),
//!   the shared libraries in [`SHARED`] and the crates in [`VETTED`], in every
//!   dependency table: `[dependencies]`, `[build-dependencies]`, `[dev-dependencies]`
//!   and their `[target.*.…]` forms.
//!
//! The shared libraries are crates of `libs/` that apps and library OSes may link; each
//! is checked by the same rules.
//!
//! The manifests are read by a small TOML reader that knows exactly what these rules
//! need (tables, array tables, dotted and quoted keys, strings of all four kinds, inline
//! tables, arrays); it keeps xtask free of another dependency and refuses what it cannot
//! read with the line number.

use crate::Result;
use crate::cursor::Cursor;
use crate::loc::{self, Tok, Token};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// External crates (from crates.io) that apps and library OSes may depend on, each
/// with the reason it is safe to link beside the kernel. `log` stays out: an app that
/// links it shares the kernel's logger and could call `log::set_max_level` to silence
/// the kernel's own log; apps log through `rexo-api`.
pub const VETTED: &[(&str, &str)] = &[
    (
        "smoltcp",
        "the TCP/IP protocols of the network library OS (libos/net); no_std, `#![deny(unsafe_code)]` except the host interfaces of `phy::sys` (raw socket, TAP), which need its `std` and `phy-*` features that Rexo does not enable",
    ),
    (
        "spin",
        "the locks of state an app shares between its cores (rexo-memcache's cache shards); no_std, its `unsafe` is the lock's own (an atomic flag guarding an `UnsafeCell`), the same crate the kernel and the registry lock with",
    ),
];

/// Crates of `libs/` that apps and library OSes may depend on (their folders, relative
/// to the workspace root), each with the reason. Each is checked by the app rules too.
pub const SHARED: &[(&str, &str)] = &[
    (
        "libs/crc",
        "rexo-crc: the CRC-32 and CRC-32C of rexo-fs and rexo-mbr, shared with rexo-xn on the kernel's side; plain arithmetic on slices, no dependencies",
    ),
    (
        "libs/rtc",
        "rexo-rtc: the kernel's wall clock and its calendar (Unix time to date and time), which the monitor shows; arithmetic on the CMOS clock's registers the kernel reads, and spin's Once and Mutex to share the reading (or a failed one's error) between cores",
    ),
    (
        "libs/testkit",
        "rexo-testkit: helpers of host tests only (a dev-dependency: a seeded generator, the crate docs' example as the reader sees it); plain code on integers and strings, no dependencies, never linked into an image",
    ),
];

/// The folders whose crates follow the rules, and what messages call their crates.
const LAYERS: [(&str, &str); 2] = [("apps", "apps"), ("libos", "library OSes")];

/// The names of dependency tables (the underscore spellings are Cargo's old aliases).
const DEP_TABLES: [&str; 5] = [
    "dependencies",
    "build-dependencies",
    "build_dependencies",
    "dev-dependencies",
    "dev_dependencies",
];

/// rexo-api's macros for the kernel's side of the API (`api/src/kernel.rs`): expanded in
/// an app they would define the kernel's entry-point symbols (`#[unsafe(export_name)]`)
/// without the word `unsafe` in the app's source.
const KERNEL_SIDE: [&str; 3] = ["export_kernel", "kernel_calls", "kernel_call_items"];

/// Checks every app and library OS crate under `root` against the rules with the
/// [`VETTED`] crates and the [`SHARED`] libraries; returns how many crates it checked
/// (the shared libraries among them), or every broken rule, one per line, each naming
/// the crate and the file and line or the dependency.
pub fn check(root: &Path) -> Result<usize> {
    check_with(root, VETTED, SHARED)
}

/// [`check`] with `vetted` as the list of allowed external crates and `shared` as the
/// list of allowed crates of `libs/`.
fn check_with(root: &Path, vetted: &[(&str, &str)], shared: &[(&str, &str)]) -> Result<usize> {
    let mut problems = Vec::new();
    let checker = Checker::new(root, vetted, shared, &mut problems);
    let count = match checker {
        Some(checker) => checker.run(),
        None => 0,
    };
    if problems.is_empty() {
        Ok(count)
    } else {
        Err(format!(
            "apps, library OSes and shared libraries break the app rules (docs/layout.md, \"App rules\"):\n  {}",
            problems.join("\n  ")
        ))
    }
}

/// The crate folders of one layer (`apps` or `libos`) under `root`, sorted; folders
/// without a `Cargo.toml` are not crates and are skipped.
fn crate_dirs(root: &Path, layer: &str) -> std::result::Result<Vec<PathBuf>, String> {
    let base = root.join(layer);
    if !base.is_dir() {
        return Ok(Vec::new());
    }
    let entries =
        std::fs::read_dir(&base).map_err(|e| format!("cannot read {}: {e}", base.display()))?;
    let mut dirs = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot read {}: {e}", base.display()))?
            .path();
        if path.join("Cargo.toml").is_file() {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// What the rules are checked against: the workspace and the allowed targets.
struct Checker<'a> {
    root: PathBuf,
    vetted: &'a [(&'a str, &'a str)],
    /// The shared libraries: each one's folder, relative to `root`, and why it is shared.
    shared: &'a [(&'a str, &'a str)],
    /// The canonical folders of `api/`, of every crate in `libos/` and of the shared
    /// libraries.
    allowed: Vec<PathBuf>,
    /// The root manifest, for `workspace = true` dependencies.
    workspace: Vec<Entry>,
    problems: &'a mut Vec<String>,
}

impl<'a> Checker<'a> {
    /// Reads the workspace; `None` (with the reason in `problems`) if it cannot.
    fn new(
        root: &Path,
        vetted: &'a [(&'a str, &'a str)],
        shared: &'a [(&'a str, &'a str)],
        problems: &'a mut Vec<String>,
    ) -> Option<Checker<'a>> {
        let manifest = root.join("Cargo.toml");
        let workspace = match std::fs::read_to_string(&manifest) {
            Ok(text) => match parse_toml(&text) {
                Ok(entries) => entries,
                Err(e) => {
                    problems.push(format!("Cargo.toml:{e}"));
                    return None;
                }
            },
            Err(e) => {
                problems.push(format!("cannot read {}: {e}", manifest.display()));
                return None;
            }
        };
        let mut allowed: Vec<PathBuf> = root.join("api").canonicalize().into_iter().collect();
        match crate_dirs(root, "libos") {
            Ok(dirs) => allowed.extend(dirs.iter().filter_map(|d| d.canonicalize().ok())),
            Err(e) => problems.push(e),
        }
        for (folder, _) in shared {
            match root.join(folder).join("Cargo.toml").canonicalize() {
                Ok(manifest) => allowed.extend(manifest.parent().map(Path::to_path_buf)),
                Err(_) => problems.push(format!(
                    "{folder}: named in SHARED in xtask/src/appcheck.rs but has no Cargo.toml"
                )),
            }
        }
        Some(Checker {
            root: root.to_path_buf(),
            vetted,
            shared,
            allowed,
            workspace,
            problems,
        })
    }

    /// Checks every crate; returns how many there were.
    fn run(mut self) -> usize {
        let mut count = 0;
        for (layer, label) in LAYERS {
            let dirs = match crate_dirs(&self.root, layer) {
                Ok(dirs) => dirs,
                Err(e) => {
                    self.problems.push(e);
                    continue;
                }
            };
            for dir in dirs {
                let name = dir.file_name().map_or_else(
                    || dir.display().to_string(),
                    |n| format!("{layer}/{}", n.to_string_lossy()),
                );
                self.check_crate(&name, label, &dir);
                count += 1;
            }
        }
        for &(folder, _) in self.shared {
            let dir = self.root.join(folder);
            if dir.join("Cargo.toml").is_file() {
                self.check_crate(folder, "shared libraries", &dir);
                count += 1;
            }
        }
        count
    }

    /// Records a problem of the crate `name`.
    fn problem(&mut self, name: &str, what: String) {
        self.problems.push(format!("{name}: {what}"));
    }

    fn check_crate(&mut self, name: &str, label: &str, dir: &Path) {
        if dir.join("build.rs").exists() {
            self.problem(
                name,
                format!("build.rs: build scripts are not allowed in {label} (they run any code at build time)"),
            );
        }
        let manifest = dir.join("Cargo.toml");
        match std::fs::read_to_string(&manifest) {
            Ok(text) => match parse_toml(&text) {
                Ok(entries) => self.check_manifest(name, label, dir, &entries),
                Err(e) => self.problem(name, format!("Cargo.toml:{e}")),
            },
            Err(e) => self.problem(name, format!("cannot read Cargo.toml: {e}")),
        }
        self.check_sources(name, label, dir);
    }

    fn check_manifest(&mut self, name: &str, label: &str, dir: &Path, entries: &[Entry]) {
        for entry in entries {
            let key: Vec<&str> = entry.path.iter().map(String::as_str).collect();
            let refusal = match (key.as_slice(), &entry.value) {
                (["package", "build"], Value::Bool(false)) => None,
                (["package", "build"], _) => Some(format!(
                    "`package.build` names a build script; build scripts are not allowed in {label} (they run any code at build time)"
                )),
                (["lib", "proc-macro" | "proc_macro"], Value::Bool(true)) => Some(format!(
                    "procedural macros are not allowed in {label} (they run any code at build time)"
                )),
                ([target @ ("lib" | "bin"), "path"], _) => Some(format!(
                    "`{target}.path` moves a crate root; {label} keep theirs at src/lib.rs or src/main.rs, where the check finds them"
                )),
                _ => None,
            };
            if let Some(refusal) = refusal {
                self.problem(name, format!("Cargo.toml:{}: {refusal}", entry.line));
            }
        }
        for dep in dependencies(entries) {
            if let Err(why) = self.allowed(&dep, dir, false) {
                self.problem(
                    name,
                    format!(
                        "Cargo.toml:{}: dependency `{}` in [{}] is not allowed in {label}: {why}; \
                         allowed are rexo-api (api/), the library OSes in libos/, the shared \
                         libraries of SHARED and the vetted crates of VETTED in \
                         xtask/src/appcheck.rs",
                        dep.line, dep.key, dep.table
                    ),
                );
            }
        }
    }

    /// Whether the dependency `dep`, whose paths are relative to `base`, is on the
    /// allow-list; if not, why.
    fn allowed(
        &self,
        dep: &Dep,
        base: &Path,
        in_workspace: bool,
    ) -> std::result::Result<(), String> {
        if matches!(dep.attrs.get("workspace"), Some(Value::Bool(true))) {
            if in_workspace {
                return Err("the workspace's entry says `workspace = true` itself".into());
            }
            let entries: Vec<Entry> = self
                .workspace
                .iter()
                .filter(|e| e.path.len() >= 3 && e.path[..2] == ["workspace", "dependencies"])
                .map(|e| Entry {
                    path: e.path[1..].to_vec(),
                    value: e.value.clone(),
                    line: e.line,
                })
                .collect();
            return match dependencies(&entries)
                .into_iter()
                .find(|d| d.key == dep.key)
            {
                Some(entry) => self.allowed(&entry, &self.root, true),
                None => Err(format!(
                    "the workspace's [workspace.dependencies] has no `{}`",
                    dep.key
                )),
            };
        }
        let string = |key: &str| match dep.attrs.get(key) {
            Some(Value::Str(s)) => Some(s.as_str()),
            _ => None,
        };
        if let Some(path) = string("path") {
            let dir = base.join(path);
            let dir = dir
                .canonicalize()
                .map_err(|_| format!("its path `{path}` does not exist"))?;
            return if self.allowed.contains(&dir) {
                Ok(())
            } else {
                Err(format!(
                    "its path `{path}` is neither the kernel API nor a library OS nor a shared library"
                ))
            };
        }
        if dep.attrs.contains_key("git") {
            return Err("git dependencies are not vetted".into());
        }
        if dep.attrs.contains_key("registry") || dep.attrs.contains_key("registry-index") {
            return Err("only crates.io crates can be vetted".into());
        }
        let package = string("package").unwrap_or(&dep.key);
        if self.vetted.iter().any(|(vetted, _)| *vetted == package) {
            Ok(())
        } else {
            Err(format!("the crates.io crate `{package}` is not vetted"))
        }
    }

    /// The `unsafe` tokens in every `.rs` file and the attribute in the crate roots.
    fn check_sources(&mut self, name: &str, label: &str, dir: &Path) {
        let mut files = Vec::new();
        if let Err(e) = rust_files(dir, &mut files) {
            self.problem(name, e);
        }
        files.sort();
        let roots = ["src/lib.rs", "src/main.rs"];
        if !roots.iter().any(|r| dir.join(r).is_file()) {
            self.problem(name, "has neither src/lib.rs nor src/main.rs".into());
        }
        for file in files {
            let shown = file
                .strip_prefix(dir)
                .unwrap_or(&file)
                .to_string_lossy()
                .replace('\\', "/");
            let tokens = match std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read it: {e}"))
                .and_then(|text| loc::lex(&text))
            {
                Ok(tokens) => tokens,
                Err(e) => {
                    self.problem(name, format!("{shown}: {e}"));
                    continue;
                }
            };
            for token in &tokens {
                if token.tok == Tok::Ident("unsafe".into()) {
                    self.problem(
                        name,
                        format!(
                            "{shown}:{}: `unsafe` is not allowed in {label} ({label} are #![forbid(unsafe_code)])",
                            token.first + 1
                        ),
                    );
                }
                if let Tok::Ident(word) = &token.tok
                    && KERNEL_SIDE.contains(&word.as_str())
                {
                    self.problem(
                        name,
                        format!(
                            "{shown}:{}: `{word}` is the kernel's (it defines the kernel's entry points) and not allowed in {label}",
                            token.first + 1
                        ),
                    );
                }
            }
            if roots.contains(&shown.as_str()) && !forbids_unsafe(&tokens) {
                self.problem(
                    name,
                    format!("{shown}: the crate root lacks #![forbid(unsafe_code)] (every crate in {label} carries it)"),
                );
            }
        }
    }
}

/// Every `.rs` file under `dir`, skipping `target` and hidden folders.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::result::Result<(), String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&path, out)?;
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// Whether the tokens hold `#![forbid(..., unsafe_code, ...)]` outside any braces.
fn forbids_unsafe(tokens: &[Token]) -> bool {
    let punct = |i: usize, c: char| tokens.get(i).is_some_and(|t| t.tok == Tok::Punct(c));
    let ident = |i: usize, s: &str| tokens.get(i).is_some_and(|t| t.tok == Tok::Ident(s.into()));
    let mut depth = 0usize;
    for (i, token) in tokens.iter().enumerate() {
        match token.tok {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth == 0
            && punct(i, '#')
            && punct(i + 1, '!')
            && punct(i + 2, '[')
            && ident(i + 3, "forbid")
            && punct(i + 4, '(')
        {
            let mut parens = 1usize;
            for token in &tokens[i + 5..] {
                match &token.tok {
                    Tok::Punct('(') => parens += 1,
                    Tok::Punct(')') => parens -= 1,
                    Tok::Ident(name) if name == "unsafe_code" => return true,
                    _ => {}
                }
                if parens == 0 {
                    break;
                }
            }
        }
    }
    false
}

/// A dependency: where it was declared and its keys (`path`, `package`, `git`, ...).
#[derive(Debug)]
struct Dep {
    /// The table it is in, as in the manifest: `dependencies`, `target.X.dependencies`.
    table: String,
    /// Its key (the name the code uses).
    key: String,
    /// The line it starts on (1-based).
    line: usize,
    /// Its keys and their values; empty for `name = "version"`.
    attrs: BTreeMap<String, Value>,
}

/// The dependencies in the dependency tables of a manifest's entries, in order.
fn dependencies(entries: &[Entry]) -> Vec<Dep> {
    let mut deps: Vec<Dep> = Vec::new();
    for entry in entries {
        let p = &entry.path;
        let Some(first) = p.first() else {
            continue;
        };
        let table_len = if DEP_TABLES.contains(&first.as_str()) {
            1
        } else if first == "target" && p.len() >= 3 && DEP_TABLES.contains(&p[2].as_str()) {
            3
        } else {
            continue;
        };
        let Some(key) = p.get(table_len) else {
            continue;
        };
        let table = p[..table_len].join(".");
        let index = match deps.iter().position(|d| d.table == table && &d.key == key) {
            Some(index) => index,
            None => {
                deps.push(Dep {
                    table,
                    key: key.clone(),
                    line: entry.line,
                    attrs: BTreeMap::new(),
                });
                deps.len() - 1
            }
        };
        if let [attr] = &p[table_len + 1..] {
            deps[index].attrs.insert(attr.clone(), entry.value.clone());
        }
    }
    deps
}

/// A TOML value, as far as the rules need to know.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    /// A string of any of the four kinds, escapes decoded.
    Str(String),
    /// `true` or `false`.
    Bool(bool),
    /// A table (header or inline); its keys are entries of their own.
    Table,
    /// An array (its elements are entries at the same key), number or date.
    Other,
}

/// One key of a TOML document: its full path of keys, value and line (1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    path: Vec<String>,
    value: Value,
    line: usize,
}

/// Reads a TOML document into entries; errors start with the line number (`12: ...`).
fn parse_toml(text: &str) -> std::result::Result<Vec<Entry>, String> {
    let mut reader = Toml {
        cur: Cursor::new(text, 1),
        entries: Vec::new(),
    };
    reader
        .document()
        .map_err(|e| format!("{}: {e}", reader.cur.line))?;
    Ok(reader.entries)
}

/// A TOML reader over the characters of a document.
struct Toml {
    cur: Cursor,
    entries: Vec<Entry>,
}

type Parse<T> = std::result::Result<T, String>;

impl Toml {
    fn expect(&mut self, c: char, what: &str) -> Parse<()> {
        if self.cur.peek(0) == Some(c) {
            self.cur.pos += 1;
            Ok(())
        } else {
            Err(format!("expected `{c}` {what}"))
        }
    }

    /// Skips spaces and tabs (and `\r`).
    fn spaces(&mut self) {
        while matches!(self.cur.peek(0), Some(' ' | '\t' | '\r')) {
            self.cur.pos += 1;
        }
    }

    /// Skips whitespace, newlines and comments.
    fn blank(&mut self) {
        loop {
            self.spaces();
            match self.cur.peek(0) {
                Some('\n') => {
                    self.cur.bump();
                }
                Some('#') => self.comment(),
                _ => return,
            }
        }
    }

    fn comment(&mut self) {
        while self.cur.peek(0).is_some_and(|c| c != '\n') {
            self.cur.pos += 1;
        }
    }

    /// After a key/value pair or a table header: only a comment may follow on the line.
    fn end_of_line(&mut self) -> Parse<()> {
        self.spaces();
        if self.cur.peek(0) == Some('#') {
            self.comment();
        }
        match self.cur.peek(0) {
            None | Some('\n') => Ok(()),
            Some(c) => Err(format!("unexpected `{c}` after a value (one key per line)")),
        }
    }

    fn document(&mut self) -> Parse<()> {
        let mut table: Vec<String> = Vec::new();
        loop {
            self.blank();
            let line = self.cur.line;
            match self.cur.peek(0) {
                None => return Ok(()),
                Some('[') => {
                    let array = self.cur.peek(1) == Some('[');
                    self.cur.pos += if array { 2 } else { 1 };
                    table = self.key()?;
                    self.expect(']', "to close a table header")?;
                    if array {
                        self.expect(']', "to close an array table header")?;
                    }
                    self.entries.push(Entry {
                        path: table.clone(),
                        value: Value::Table,
                        line,
                    });
                }
                Some(_) => {
                    let mut path = table.clone();
                    path.extend(self.key()?);
                    self.expect('=', "after a key")?;
                    self.value(path, line)?;
                }
            }
            self.end_of_line()?;
        }
    }

    /// A dotted key: bare, `"basic"` or `'literal'` parts joined by dots.
    fn key(&mut self) -> Parse<Vec<String>> {
        let mut parts = Vec::new();
        loop {
            self.spaces();
            let part = match self.cur.peek(0) {
                Some('"') => self.basic_string()?,
                Some('\'') => self.literal_string()?,
                _ => {
                    let start = self.cur.pos;
                    while self
                        .cur
                        .peek(0)
                        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    {
                        self.cur.pos += 1;
                    }
                    if self.cur.pos == start {
                        return Err(match self.cur.peek(0) {
                            Some(c) if c != '\n' => format!("expected a key, found `{c}`"),
                            _ => "expected a key".to_string(),
                        });
                    }
                    self.cur.chars[start..self.cur.pos].iter().collect()
                }
            };
            parts.push(part);
            self.spaces();
            if self.cur.peek(0) != Some('.') {
                return Ok(parts);
            }
            self.cur.pos += 1;
        }
    }

    /// The value at the cursor, recorded at `path` (a table's keys and an array's
    /// elements as entries of their own).
    fn value(&mut self, path: Vec<String>, line: usize) -> Parse<()> {
        self.spaces();
        let value = match self.cur.peek(0) {
            Some('"') => Value::Str(self.basic_string()?),
            Some('\'') => Value::Str(self.literal_string()?),
            Some('{') => {
                self.cur.pos += 1;
                self.entries.push(Entry {
                    path: path.clone(),
                    value: Value::Table,
                    line,
                });
                loop {
                    self.blank();
                    if self.cur.peek(0) == Some('}') {
                        self.cur.pos += 1;
                        return Ok(());
                    }
                    let key_line = self.cur.line;
                    let mut inner = path.clone();
                    inner.extend(self.key()?);
                    self.expect('=', "after a key")?;
                    self.value(inner, key_line)?;
                    self.blank();
                    match self.cur.bump() {
                        Some(',') => {}
                        Some('}') => return Ok(()),
                        _ => return Err("expected `,` or `}` in an inline table".into()),
                    }
                }
            }
            Some('[') => {
                self.cur.pos += 1;
                self.entries.push(Entry {
                    path: path.clone(),
                    value: Value::Other,
                    line,
                });
                loop {
                    self.blank();
                    if self.cur.peek(0) == Some(']') {
                        self.cur.pos += 1;
                        return Ok(());
                    }
                    let element_line = self.cur.line;
                    self.value(path.clone(), element_line)?;
                    self.blank();
                    match self.cur.bump() {
                        Some(',') => {}
                        Some(']') => return Ok(()),
                        _ => return Err("expected `,` or `]` in an array".into()),
                    }
                }
            }
            _ => {
                let start = self.cur.pos;
                while self
                    .cur
                    .peek(0)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || "_+-.:".contains(c))
                {
                    self.cur.pos += 1;
                }
                let word: String = self.cur.chars[start..self.cur.pos].iter().collect();
                match word.as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    w if w.starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-')
                        || w == "inf"
                        || w == "nan" =>
                    {
                        Value::Other
                    }
                    "" => return Err("expected a value".into()),
                    w => return Err(format!("`{w}` is not a value (strings need quotes)")),
                }
            }
        };
        self.entries.push(Entry { path, value, line });
        Ok(())
    }

    /// A `"basic"` or `"""multi-line basic"""` string at the cursor.
    fn basic_string(&mut self) -> Parse<String> {
        let start = self.cur.line;
        let multi = self.cur.peek(1) == Some('"') && self.cur.peek(2) == Some('"');
        self.cur.pos += if multi { 3 } else { 1 };
        if multi {
            self.newline_after_opening();
        }
        let mut out = String::new();
        loop {
            match self.cur.bump() {
                None => return Err(self.unterminated(start)),
                Some('\n') if !multi => return Err(self.unterminated(start)),
                Some('"') if !multi => return Ok(out),
                Some('"') if self.closes_multi('"', &mut out) => return Ok(out),
                Some('\\') => match self.cur.bump() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some('b') => out.push('\u{8}'),
                    Some('f') => out.push('\u{c}'),
                    Some('e') => out.push('\u{1b}'),
                    Some(c @ ('"' | '\\')) => out.push(c),
                    Some(kind @ ('u' | 'U' | 'x')) => {
                        let digits = match kind {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let hex: String = (0..digits).filter_map(|_| self.cur.bump()).collect();
                        let c = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| format!("`\\{kind}{hex}` is not a character"))?;
                        out.push(c);
                    }
                    Some(' ' | '\t' | '\r' | '\n') if multi => {
                        // A line-ending backslash: the whitespace up to the next text goes.
                        while matches!(self.cur.peek(0), Some(' ' | '\t' | '\r' | '\n')) {
                            self.cur.bump();
                        }
                    }
                    Some(c) => return Err(format!("unknown escape `\\{c}` in a string")),
                    None => return Err(self.unterminated(start)),
                },
                Some(c) => out.push(c),
            }
        }
    }

    /// A `'literal'` or `'''multi-line literal'''` string at the cursor.
    fn literal_string(&mut self) -> Parse<String> {
        let start = self.cur.line;
        let multi = self.cur.peek(1) == Some('\'') && self.cur.peek(2) == Some('\'');
        self.cur.pos += if multi { 3 } else { 1 };
        if multi {
            self.newline_after_opening();
        }
        let mut out = String::new();
        loop {
            match self.cur.bump() {
                None => return Err(self.unterminated(start)),
                Some('\n') if !multi => return Err(self.unterminated(start)),
                Some('\'') if !multi => return Ok(out),
                Some('\'') if self.closes_multi('\'', &mut out) => return Ok(out),
                Some(c) => out.push(c),
            }
        }
    }

    /// The error of a string that starts on line `start` and never ends; the error
    /// names that line.
    fn unterminated(&mut self, start: usize) -> String {
        self.cur.line = start;
        "unterminated string".to_string()
    }

    /// A newline right after `"""` or `'''` is not part of the string.
    fn newline_after_opening(&mut self) {
        if self.cur.peek(0) == Some('\r') && self.cur.peek(1) == Some('\n') {
            self.cur.pos += 1;
        }
        if self.cur.peek(0) == Some('\n') {
            self.cur.bump();
        }
    }

    /// Whether the `quote` just read starts the closing triple of a multi-line string;
    /// if so, consumes it, with up to two more quotes that belong to the text.
    fn closes_multi(&mut self, quote: char, out: &mut String) -> bool {
        if self.cur.peek(0) == Some(quote) && self.cur.peek(1) == Some(quote) {
            self.cur.pos += 2;
            for _ in 0..2 {
                if self.cur.peek(0) == Some(quote) {
                    self.cur.pos += 1;
                    out.push(quote);
                }
            }
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A temporary workspace: the kernel, the API, one library OS and a clean app.
    struct Tree(PathBuf);

    impl Tree {
        fn new() -> Tree {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let root =
                std::env::temp_dir().join(format!("rexo-appcheck-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            let tree = Tree(root);
            tree.write(
                "Cargo.toml",
                "[workspace]\nmembers = [\"kernel\", \"api\", \"apps/*\", \"libos/*\"]\n\n\
                 [workspace.dependencies]\nrexo-api = { path = \"api\" }\n\
                 rexo-kernel = { path = \"kernel\" }\n",
            );
            tree.write("kernel/Cargo.toml", "[package]\nname = \"rexo-kernel\"\n");
            tree.write("kernel/src/main.rs", "fn main() { unsafe {} }\n");
            tree.write("api/Cargo.toml", "[package]\nname = \"rexo-api\"\n");
            tree.write("api/src/lib.rs", "#![forbid(unsafe_code)]\n");
            tree.write(
                "libos/mem/Cargo.toml",
                "[package]\nname = \"rexo-libos-mem\"\n\n[dependencies]\nrexo-api.workspace = true\n",
            );
            tree.write(
                "libos/mem/src/lib.rs",
                "#![forbid(unsafe_code)]\npub fn f() {}\n",
            );
            tree.write("libos/README.md", "library OSes\n");
            tree.write("apps/baremetal-tests/test.S", "nop\n");
            tree.app("");
            tree.write(
                "apps/good/src/lib.rs",
                "//! An app.\n#![forbid(unsafe_code)]\n\npub fn main() {}\n",
            );
            tree
        }

        fn write(&self, path: &str, text: &str) {
            let path = self.0.join(path);
            std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }

        /// Writes `apps/good/Cargo.toml` with `extra` appended.
        fn app(&self, extra: &str) {
            self.write(
                "apps/good/Cargo.toml",
                &format!(
                    "[package]\nname = \"rexo-good\"\nversion.workspace = true\n\n\
                     [dependencies]\nrexo-api.workspace = true\n\
                     rexo-libos-mem = {{ path = \"../../libos/mem\" }}\n{extra}"
                ),
            );
        }

        fn check(&self) -> Result<usize> {
            check_with(&self.0, &[("log", "vetted in this test")], &[])
        }

        /// The check's error, which must contain every one of `parts`.
        fn fails(&self, parts: &[&str]) -> String {
            let err = self.check().expect_err("the check refuses the tree");
            for part in parts {
                assert!(err.contains(part), "`{part}` not in:\n{err}");
            }
            err
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_clean_tree_passes_and_folders_without_a_manifest_are_skipped() {
        let tree = Tree::new();
        assert_eq!(tree.check(), Ok(2), "apps/good and libos/mem");
    }

    #[test]
    fn the_real_tree_passes() {
        let checked = check(&crate::root()).expect("the repository follows the app rules");
        assert!(checked >= 2, "apps/hello and apps/monitor at least");
    }

    #[test]
    fn unsafe_in_comments_and_strings_is_not_code() {
        let tree = Tree::new();
        tree.write(
            "apps/good/src/lib.rs",
            "//! unsafe\n#![forbid(unsafe_code)]\n// unsafe { }\n/* unsafe /* nested unsafe */ */\n\
             /// unsafe fn\npub fn f() -> &'static str { \"unsafe {\" }\n\
             pub const S: &str = r#\"unsafe impl \"#;\npub const C: char = 'u';\n",
        );
        assert_eq!(tree.check(), Ok(2));
    }

    #[test]
    fn every_unsafe_token_and_kernel_side_macro_is_refused_with_its_file_and_line() {
        let unsafe_at = |line| {
            format!(
                "apps/good: src/lib.rs:{line}: `unsafe` is not allowed in apps (apps are #![forbid(unsafe_code)])"
            )
        };
        let kernel_side = |word| {
            format!(
                "apps/good: src/lib.rs:3: `{word}` is the kernel's (it defines the kernel's entry points) and not allowed in apps"
            )
        };
        for (code, expected) in [
            ("pub fn f() { unsafe { g() } }", unsafe_at(3)),
            ("pub unsafe fn f() {}", unsafe_at(3)),
            ("struct S;\nunsafe impl Send for S {}", unsafe_at(4)),
            (
                "#[unsafe(no_mangle)]\npub extern \"C\" fn f() {}",
                unsafe_at(3),
            ),
            ("unsafe extern \"C\" {\n fn g();\n}", unsafe_at(3)),
            ("rexo_api::export_kernel!();", kernel_side("export_kernel")),
            (
                "use rexo_api::kernel_calls as k;",
                kernel_side("kernel_calls"),
            ),
            (
                "rexo_api::kernel_call_items! { [export] }",
                kernel_side("kernel_call_items"),
            ),
        ] {
            let tree = Tree::new();
            tree.write(
                "apps/good/src/lib.rs",
                &format!("//! An app.\n#![forbid(unsafe_code)]\n{code}\n"),
            );
            tree.fails(&[&expected]);
        }
    }

    #[test]
    fn unsafe_in_a_module_and_in_a_library_os_is_refused() {
        let tree = Tree::new();
        tree.write(
            "apps/good/src/deep/inner.rs",
            "fn f() {\n    unsafe {}\n}\n",
        );
        tree.write(
            "libos/mem/src/lib.rs",
            "#![forbid(unsafe_code)]\nunsafe fn f() {}\n",
        );
        tree.fails(&[
            "apps/good: src/deep/inner.rs:2: `unsafe` is not allowed in apps",
            "libos/mem: src/lib.rs:2: `unsafe` is not allowed in library OSes (library OSes are #![forbid(unsafe_code)])",
        ]);
    }

    #[test]
    fn a_crate_root_without_the_forbid_attribute_is_refused() {
        for root in [
            "pub fn main() {}\n",
            "#![deny(unsafe_code)]\n",
            "#![cfg_attr(test, forbid(unsafe_code))]\n",
            "// #![forbid(unsafe_code)]\n",
            "mod m {\n    #![forbid(unsafe_code)]\n}\n",
        ] {
            let tree = Tree::new();
            tree.write("apps/good/src/lib.rs", root);
            tree.fails(&["apps/good: src/lib.rs: the crate root lacks #![forbid(unsafe_code)]"]);
        }
        let tree = Tree::new();
        tree.write(
            "apps/good/src/lib.rs",
            "#![forbid(missing_docs, unsafe_code)]\n",
        );
        tree.write("apps/good/src/main.rs", "fn main() {}\n");
        tree.fails(&["apps/good: src/main.rs: the crate root lacks"]);
        std::fs::remove_file(tree.0.join("apps/good/src/main.rs")).expect("rm");
        assert_eq!(
            tree.check(),
            Ok(2),
            "a list of lints with unsafe_code is enough"
        );
        std::fs::remove_file(tree.0.join("apps/good/src/lib.rs")).expect("rm");
        tree.fails(&["apps/good: has neither src/lib.rs nor src/main.rs"]);
    }

    #[test]
    fn dependencies_off_the_allow_list_are_refused() {
        for (extra, parts) in [
            (
                "serde = \"1\"\n",
                &[
                    "apps/good: Cargo.toml:8: dependency `serde` in [dependencies] is not allowed in apps: the crates.io crate `serde` is not vetted",
                ][..],
            ),
            (
                "kernel = { path = \"../../kernel\" }\n",
                &[
                    "dependency `kernel` in [dependencies]",
                    "its path `../../kernel` is neither the kernel API nor a library OS",
                ],
            ),
            (
                "rexo-kernel.workspace = true\n",
                &[
                    "dependency `rexo-kernel`",
                    "its path `kernel` is neither the kernel API nor a library OS",
                ],
            ),
            (
                "\n[target.'cfg(target_os = \"none\")'.dependencies]\nspin = \"0.9\"\n",
                &[
                    "Cargo.toml:10: dependency `spin` in [target.cfg(target_os = \"none\").dependencies]",
                ],
            ),
            (
                "\n[build-dependencies]\ncc = \"1\"\n",
                &[
                    "dependency `cc` in [build-dependencies]",
                    "`cc` is not vetted",
                ],
            ),
            (
                "\n[dev-dependencies.proptest]\nversion = \"1\"\n",
                &["dependency `proptest` in [dev-dependencies]"],
            ),
            (
                "api = { package = \"rexo-api\", version = \"0.1\" }\n",
                &["the crates.io crate `rexo-api` is not vetted"],
            ),
            (
                "log = { package = \"evil\", version = \"1\" }\n",
                &[
                    "dependency `log`",
                    "the crates.io crate `evil` is not vetted",
                ],
            ),
            (
                "log = { git = \"https://example.com/log\" }\n",
                &["git dependencies are not vetted"],
            ),
            (
                "log = { version = \"0.4\", registry = \"mine\" }\n",
                &["only crates.io crates can be vetted"],
            ),
            (
                "gone = { path = \"../nowhere\" }\n",
                &["its path `../nowhere` does not exist"],
            ),
            (
                "other.workspace = true\n",
                &["the workspace's [workspace.dependencies] has no `other`"],
            ),
            (
                "monitor = { path = \"../good\" }\n",
                &["its path `../good` is neither the kernel API nor a library OS"],
            ),
        ] {
            let tree = Tree::new();
            tree.app(extra);
            tree.fails(parts);
        }
    }

    #[test]
    fn allowed_dependencies_pass_in_every_form() {
        let tree = Tree::new();
        tree.app(
            "log = \"0.4\"\nalias = { package = \"rexo-api\", path = \"../../api\" }\n\
             [target.x86_64-unknown-none.dependencies.mem2]\npath = \"../../libos/mem\"\n\
             [dev-dependencies]\nlog = { version = \"0.4\", features = [\n  \"std\",\n] }\n",
        );
        assert_eq!(tree.check(), Ok(2));
        assert_eq!(
            check_with(&tree.0, &[], &[]).map_err(|e| e.contains("`log` is not vetted")),
            Err(true),
            "without the vetted list, log is refused"
        );
    }

    #[test]
    fn shared_libraries_are_allowed_and_follow_the_rules_themselves() {
        let tree = Tree::new();
        tree.write("libs/crc/Cargo.toml", "[package]\nname = \"rexo-crc\"\n");
        tree.write(
            "libs/crc/src/lib.rs",
            "#![forbid(unsafe_code)]\npub fn f() {}\n",
        );
        tree.write(
            "libs/other/Cargo.toml",
            "[package]\nname = \"rexo-other\"\n",
        );
        tree.write("libs/other/src/lib.rs", "#![forbid(unsafe_code)]\n");
        tree.app("crc = { path = \"../../libs/crc\" }\n");
        let shared = [("libs/crc", "shared in this test")];
        assert_eq!(check_with(&tree.0, &[], &shared), Ok(3), "with libs/crc");
        let refused = check_with(&tree.0, &[], &[]).expect_err("not shared");
        assert!(
            refused.contains("apps/good: Cargo.toml:8: dependency `crc` in [dependencies] is not allowed in apps: its path `../../libs/crc` is neither the kernel API nor a library OS nor a shared library"),
            "{refused}"
        );
        tree.app("other = { path = \"../../libs/other\" }\n");
        let refused = check_with(&tree.0, &[], &shared).expect_err("libs/other is not shared");
        assert!(
            refused.contains("`../../libs/other` is neither"),
            "{refused}"
        );
        tree.app("");
        tree.write("libs/crc/src/lib.rs", "pub fn f() { unsafe {} }\n");
        let refused = check_with(&tree.0, &[], &shared).expect_err("unsafe in libs/crc");
        assert!(
            refused.contains("libs/crc: src/lib.rs:1: `unsafe` is not allowed in shared libraries"),
            "{refused}"
        );
        assert!(
            refused.contains("libs/crc: src/lib.rs: the crate root lacks #![forbid(unsafe_code)]"),
            "{refused}"
        );
        let missing = check_with(&tree.0, &[], &[("libs/gone", "not there")])
            .expect_err("a shared library that does not exist");
        assert!(
            missing.contains(
                "libs/gone: named in SHARED in xtask/src/appcheck.rs but has no Cargo.toml"
            ),
            "{missing}"
        );
    }

    #[test]
    fn code_that_runs_at_build_time_is_refused() {
        let tree = Tree::new();
        tree.write("apps/good/build.rs", "fn main() {}\n");
        tree.fails(&["apps/good: build.rs: build scripts are not allowed in apps (they run any code at build time)"]);
        for (extra, part) in [
            (
                "[package.metadata]\nx = 1\n[lib]\nproc-macro = true\n",
                "Cargo.toml:11: procedural macros are not allowed in apps",
            ),
            (
                "[lib]\npath = \"../../kernel/src/main.rs\"\n",
                "Cargo.toml:9: `lib.path` moves a crate root",
            ),
            (
                "[[bin]]\nname = \"x\"\npath = \"elsewhere.rs\"\n",
                "`bin.path` moves a crate root",
            ),
        ] {
            let tree = Tree::new();
            tree.app(extra);
            tree.fails(&[part]);
        }
        let tree = Tree::new();
        tree.write(
            "apps/good/Cargo.toml",
            "[package]\nname = \"x\"\nbuild = \"gen.rs\"\n",
        );
        tree.fails(&["Cargo.toml:3: `package.build` names a build script"]);
        tree.write("apps/good/Cargo.toml", "package.build = false\n");
        assert_eq!(tree.check(), Ok(2));
    }

    #[test]
    fn unreadable_files_are_errors_with_their_place() {
        let tree = Tree::new();
        tree.write(
            "apps/good/src/lib.rs",
            "#![forbid(unsafe_code)]\nconst S: &str = \"open\n",
        );
        tree.fails(&["apps/good: src/lib.rs: line 2: unterminated string literal"]);
        let tree = Tree::new();
        tree.write("apps/good/Cargo.toml", "[package]\nname = rexo\n");
        tree.fails(&["apps/good: Cargo.toml:2: `rexo` is not a value (strings need quotes)"]);
        let tree = Tree::new();
        tree.write("Cargo.toml", "[workspace\n");
        tree.fails(&["Cargo.toml:1: expected `]` to close a table header"]);
    }

    fn paths(text: &str) -> Vec<(String, Value, usize)> {
        parse_toml(text)
            .expect("valid TOML")
            .into_iter()
            .map(|e| (e.path.join("/"), e.value, e.line))
            .collect()
    }

    #[test]
    fn toml_keys_strings_and_tables() {
        let text = "# c\ndescription = \"\"\"\n[dependencies]\nx = \"y\"\"\"\" # not a table\n\
                    'a.b'.\"c\\u0041\" = 'lit' # comment\n[ t . u ]\nv = { w = true, n = 1, \
                    arr = [1, [2], {k = 'z'}] }\n[[bin]]\npath = '''\nraw\\'''\n";
        assert_eq!(
            paths(text),
            [
                (
                    "description".into(),
                    Value::Str("[dependencies]\nx = \"y\"".into()),
                    2
                ),
                ("a.b/cA".into(), Value::Str("lit".into()), 5),
                ("t/u".into(), Value::Table, 6),
                ("t/u/v".into(), Value::Table, 7),
                ("t/u/v/w".into(), Value::Bool(true), 7),
                ("t/u/v/n".into(), Value::Other, 7),
                ("t/u/v/arr".into(), Value::Other, 7),
                ("t/u/v/arr".into(), Value::Other, 7),
                ("t/u/v/arr".into(), Value::Other, 7),
                ("t/u/v/arr".into(), Value::Other, 7),
                ("t/u/v/arr".into(), Value::Table, 7),
                ("t/u/v/arr/k".into(), Value::Str("z".into()), 7),
                ("bin".into(), Value::Table, 8),
                ("bin/path".into(), Value::Str("raw\\".into()), 9),
            ]
        );
        let escaped = paths("s = \"a\\\"b\\\\\\n\"\nm = \"\"\"x \\\n   y\"\"\"\n");
        assert_eq!(escaped[0].1, Value::Str("a\"b\\\n".into()));
        assert_eq!(escaped[1].1, Value::Str("x y".into()));
    }

    #[test]
    fn bad_toml_is_an_error_with_its_line() {
        for (text, err) in [
            ("a = \"open\n", "1: unterminated string"),
            ("\n\nkey\n", "3: expected `=` after a key"),
            (
                "a = 1 b = 2\n",
                "1: unexpected `b` after a value (one key per line)",
            ),
            ("a = [1 2]\n", "1: expected `,` or `]` in an array"),
            (
                "a = { b = 1 c }\n",
                "1: expected `,` or `}` in an inline table",
            ),
            ("a = \"\\q\"\n", "1: unknown escape `\\q` in a string"),
            ("a = \"\\uD800\"\n", "1: `\\uD800` is not a character"),
            ("= 1\n", "1: expected a key, found `=`"),
            ("a =\n", "1: expected a value"),
            ("[[t]\n", "1: expected `]` to close an array table header"),
            ("a = '''never\nclosed\n", "1: unterminated string"),
        ] {
            assert_eq!(
                parse_toml(text).map(|_| ()),
                Err(err.to_string()),
                "{text:?}"
            );
        }
    }
}
