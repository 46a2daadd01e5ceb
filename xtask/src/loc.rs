//! `cargo xtask loc`: lines of Rust per layer, without blank lines and comments, with
//! test code in its own column, the kernel's biggest files, and whether the kernel
//! proper is under the 5,000-line budget of issue 4.
//!
//! A small lexer finds the comments: line comments (`//`, `///`, `//!`), nested block
//! comments, and it skips strings, raw strings, byte and C strings, character literals
//! and lifetimes so that `"// not a comment"` or `'"'` do not confuse it. A line counts
//! as code when a token covers it and it is not blank; as a comment when it holds only
//! comment text. Test code is every file under a `tests/` or `benches/` folder, every
//! file named `tests.rs` (the kernel's tests run in QEMU), every module declared by
//! `#[cfg(test)] mod name;`, and every `#[cfg(test)] mod name { ... }` block.

use crate::Result;
use crate::cursor::Cursor;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The budget of issue 4 for the kernel proper, in lines of code.
pub const KERNEL_BUDGET: usize = 5000;

/// The layers, in the order of the table: folder and what it holds.
pub const LAYERS: [(&str, &str); 7] = [
    ("kernel", "kernel proper"),
    ("drivers", "drivers"),
    ("libos", "library OSes"),
    ("apps", "apps"),
    ("api", "kernel API"),
    ("libs", "libraries"),
    ("xtask", "host tool"),
];

/// How many of the kernel's files the report lists.
const BIGGEST: usize = 10;

/// What a token is, as far as counting needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    /// An identifier or keyword (raw identifiers without their `r#`).
    Ident(String),
    /// A lifetime or loop label, without its quote.
    Lifetime(String),
    /// A string, raw string, byte string, C string, character, byte or number.
    Literal,
    /// Any other character.
    Punct(char),
}

/// A token and the lines (0-based, inclusive) it spans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// The token.
    pub tok: Tok,
    /// The line it starts on.
    pub first: usize,
    /// The line it ends on.
    pub last: usize,
}

/// Walks the characters of a source file, counting lines.
struct Lexer {
    cur: Cursor,
}

impl Lexer {
    fn ident(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.cur.peek(0).filter(|&c| is_ident_char(c)) {
            name.push(c);
            self.cur.pos += 1;
        }
        name
    }

    /// A block comment whose `/*` is at the cursor; they nest.
    fn block_comment(&mut self, start: usize) -> Result<()> {
        self.cur.pos += 2;
        let mut depth = 1usize;
        while depth > 0 {
            match (self.cur.bump(), self.cur.peek(0)) {
                (Some('/'), Some('*')) => {
                    self.cur.pos += 1;
                    depth += 1;
                }
                (Some('*'), Some('/')) => {
                    self.cur.pos += 1;
                    depth -= 1;
                }
                (Some(_), _) => {}
                (None, _) => {
                    return Err(format!("line {}: unterminated block comment", start + 1));
                }
            }
        }
        Ok(())
    }

    /// A string whose opening `"` is at the cursor; `\` escapes the next character.
    fn string(&mut self, start: usize) -> Result<()> {
        self.cur.pos += 1;
        loop {
            match self.cur.bump() {
                Some('"') => return Ok(()),
                Some('\\') => {
                    self.cur.bump();
                }
                Some(_) => {}
                None => {
                    return Err(format!("line {}: unterminated string literal", start + 1));
                }
            }
        }
    }

    /// A raw string body: the cursor is on the opening `"`, `hashes` `#`s close it.
    fn raw_string(&mut self, hashes: usize, start: usize) -> Result<()> {
        self.cur.pos += 1;
        loop {
            match self.cur.bump() {
                Some('"') if (0..hashes).all(|k| self.cur.peek(k) == Some('#')) => {
                    self.cur.pos += hashes;
                    return Ok(());
                }
                Some(_) => {}
                None => {
                    return Err(format!(
                        "line {}: unterminated raw string literal",
                        start + 1
                    ));
                }
            }
        }
    }

    /// A character literal or a lifetime whose `'` is at the cursor.
    fn quote(&mut self, start: usize) -> Result<Tok> {
        let unterminated = || format!("line {}: unterminated character literal", start + 1);
        match (self.cur.peek(1), self.cur.peek(2)) {
            (Some('\\'), _) => {
                // '\n', '\'', '\\', '\x41', '\u{1F600}': the closing quote ends it.
                self.cur.pos += 2;
                match self.cur.peek(0) {
                    Some('\n') | None => return Err(unterminated()),
                    Some(_) => self.cur.pos += 1,
                }
                loop {
                    match self.cur.peek(0) {
                        Some('\'') => {
                            self.cur.pos += 1;
                            return Ok(Tok::Literal);
                        }
                        Some('\n') | None => return Err(unterminated()),
                        Some(_) => self.cur.pos += 1,
                    }
                }
            }
            (Some(c), Some('\'')) if c != '\n' => {
                self.cur.pos += 3;
                Ok(Tok::Literal)
            }
            (Some(c), _) if is_ident_start(c) => {
                self.cur.pos += 1;
                Ok(Tok::Lifetime(self.ident()))
            }
            _ => Err(format!(
                "line {}: a `'` that starts neither a character literal nor a lifetime",
                start + 1
            )),
        }
    }

    /// The token after an identifier that may be a literal's prefix (`b"`, `r#"`, `b'`,
    /// `c"`, `br"`, `cr#"`) or a raw identifier (`r#match`).
    fn after_ident(&mut self, name: String, start: usize) -> Result<Tok> {
        let next = self.cur.peek(0);
        match (name.as_str(), next) {
            ("b" | "c", Some('"')) => {
                self.string(start)?;
                return Ok(Tok::Literal);
            }
            ("b", Some('\'')) => {
                return match self.quote(start)? {
                    Tok::Literal => Ok(Tok::Literal),
                    _ => Err(format!(
                        "line {}: `b'` does not start a byte literal",
                        start + 1
                    )),
                };
            }
            ("r" | "br" | "cr", Some('"' | '#')) => {
                let hashes = (0..).take_while(|&k| self.cur.peek(k) == Some('#')).count();
                if self.cur.peek(hashes) == Some('"') {
                    self.cur.pos += hashes;
                    self.raw_string(hashes, start)?;
                    return Ok(Tok::Literal);
                }
                if name == "r" && hashes == 1 && self.cur.peek(1).is_some_and(is_ident_start) {
                    self.cur.pos += 1;
                    return Ok(Tok::Ident(self.ident()));
                }
            }
            _ => {}
        }
        Ok(Tok::Ident(name))
    }
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Splits Rust source into tokens, dropping whitespace and comments.
pub fn lex(source: &str) -> Result<Vec<Token>> {
    let mut lx = Lexer {
        cur: Cursor::new(source, 0),
    };
    let mut tokens = Vec::new();
    while let Some(c) = lx.cur.peek(0) {
        let first = lx.cur.line;
        let tok = match (c, lx.cur.peek(1)) {
            (c, _) if c.is_whitespace() => {
                lx.cur.bump();
                continue;
            }
            ('/', Some('/')) => {
                while lx.cur.peek(0).is_some_and(|c| c != '\n') {
                    lx.cur.pos += 1;
                }
                continue;
            }
            ('/', Some('*')) => {
                lx.block_comment(first)?;
                continue;
            }
            ('"', _) => {
                lx.string(first)?;
                Tok::Literal
            }
            ('\'', _) => lx.quote(first)?,
            (c, _) if c.is_ascii_digit() => {
                lx.ident();
                Tok::Literal
            }
            (c, _) if is_ident_start(c) => {
                let name = lx.ident();
                lx.after_ident(name, first)?
            }
            (c, _) => {
                lx.cur.pos += 1;
                Tok::Punct(c)
            }
        };
        tokens.push(Token {
            tok,
            first,
            last: lx.cur.line,
        });
    }
    Ok(tokens)
}

/// What one line of a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line {
    /// Only whitespace.
    Blank,
    /// Only comment text (and whitespace).
    Comment,
    /// Code outside test modules.
    Code,
    /// Code inside a `#[cfg(test)]` module.
    Test,
}

/// One file's lines and the out-of-line test modules it declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Analysis {
    /// Each line's kind.
    pub lines: Vec<Line>,
    /// Names of the modules declared as `#[cfg(test)] mod name;`.
    pub test_modules: Vec<String>,
}

/// Classifies every line of `source`.
pub fn analyse(source: &str) -> Result<Analysis> {
    let tokens = lex(source)?;
    let texts: Vec<&str> = source.lines().collect();
    let mut covered = vec![false; texts.len()];
    for token in &tokens {
        if let Some(span) = covered.get_mut(token.first..=token.last) {
            span.fill(true);
        }
    }
    let (regions, test_modules) = test_regions(&tokens)?;
    let lines = texts
        .iter()
        .enumerate()
        .map(|(n, text)| {
            if text.trim().is_empty() {
                Line::Blank
            } else if !covered[n] {
                Line::Comment
            } else if regions.iter().any(|&(a, b)| (a..=b).contains(&n)) {
                Line::Test
            } else {
                Line::Code
            }
        })
        .collect();
    Ok(Analysis {
        lines,
        test_modules,
    })
}

fn is_punct(tokens: &[Token], i: usize, c: char) -> bool {
    tokens.get(i).is_some_and(|t| t.tok == Tok::Punct(c))
}

fn ident_at(tokens: &[Token], i: usize) -> Option<&str> {
    match tokens.get(i).map(|t| &t.tok) {
        Some(Tok::Ident(name)) => Some(name),
        _ => None,
    }
}

/// The index just past the bracket that closes the one at `open`.
fn closing(tokens: &[Token], open: usize, (o, c): (char, char)) -> Option<usize> {
    let mut depth = 0usize;
    for (i, token) in tokens.iter().enumerate().skip(open) {
        if token.tok == Tok::Punct(o) {
            depth += 1;
        } else if token.tok == Tok::Punct(c) {
            depth -= 1;
            if depth == 0 {
                return Some(i + 1);
            }
        }
    }
    None
}

/// Whether `[cfg(test)]` starts at `i`.
fn is_cfg_test(tokens: &[Token], i: usize) -> bool {
    is_punct(tokens, i, '[')
        && ident_at(tokens, i + 1) == Some("cfg")
        && is_punct(tokens, i + 2, '(')
        && ident_at(tokens, i + 3) == Some("test")
        && is_punct(tokens, i + 4, ')')
        && is_punct(tokens, i + 5, ']')
}

/// First and last line (0-based, inclusive).
type LineRange = (usize, usize);

/// Line ranges of `#[cfg(test)] mod name { ... }` blocks (the whole file for an inner
/// `#![cfg(test)]`), and the names of `#[cfg(test)] mod name;` declarations.
fn test_regions(tokens: &[Token]) -> Result<(Vec<LineRange>, Vec<String>)> {
    let mut regions = Vec::new();
    let mut modules = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if !is_punct(tokens, i, '#') {
            i += 1;
            continue;
        }
        if is_punct(tokens, i + 1, '!') && is_cfg_test(tokens, i + 2) {
            regions.push((0, usize::MAX));
            break;
        }
        if !is_cfg_test(tokens, i + 1) {
            i += 1;
            continue;
        }
        let start = tokens[i].first;
        let mut j = i + 7;
        // Further attributes, then a visibility.
        while is_punct(tokens, j, '#') && is_punct(tokens, j + 1, '[') {
            j = closing(tokens, j + 1, ('[', ']')).unwrap_or(tokens.len());
        }
        if ident_at(tokens, j) == Some("pub") {
            j += 1;
            if is_punct(tokens, j, '(') {
                j = closing(tokens, j, ('(', ')')).unwrap_or(tokens.len());
            }
        }
        match (ident_at(tokens, j), ident_at(tokens, j + 1)) {
            (Some("mod"), Some(name)) if is_punct(tokens, j + 2, ';') => {
                modules.push(name.to_string());
                i = j + 3;
            }
            (Some("mod"), Some(_)) if is_punct(tokens, j + 2, '{') => {
                let end = closing(tokens, j + 2, ('{', '}')).ok_or_else(|| {
                    format!(
                        "line {}: the `#[cfg(test)]` module's `{{` is never closed",
                        tokens[j + 2].first + 1
                    )
                })?;
                regions.push((start, tokens[end - 1].last));
                i = end;
            }
            _ => i = j.max(i + 1),
        }
    }
    Ok((regions, modules))
}

/// Line counts of a set of files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Files counted.
    pub files: usize,
    /// Lines of code outside tests.
    pub code: usize,
    /// Lines of test code.
    pub test: usize,
    /// Comment-only lines.
    pub comment: usize,
    /// Blank lines.
    pub blank: usize,
}

impl Tally {
    /// Adds another tally to this one.
    pub fn add(&mut self, other: &Tally) {
        self.files += other.files;
        self.code += other.code;
        self.test += other.test;
        self.comment += other.comment;
        self.blank += other.blank;
    }

    /// The tally of one file; every code line is test code if `all_test`.
    pub fn of(lines: &[Line], all_test: bool) -> Tally {
        let mut tally = Tally {
            files: 1,
            ..Tally::default()
        };
        for line in lines {
            match line {
                Line::Blank => tally.blank += 1,
                Line::Comment => tally.comment += 1,
                Line::Code if !all_test => tally.code += 1,
                Line::Code | Line::Test => tally.test += 1,
            }
        }
        tally
    }
}

/// One file's place and counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileTally {
    /// The path relative to the workspace root.
    pub path: PathBuf,
    /// Its counts.
    pub tally: Tally,
}

/// The count of a whole workspace: each layer of [`LAYERS`] with its files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Per layer, in the order of [`LAYERS`]: the total and each file.
    pub layers: Vec<(Tally, Vec<FileTally>)>,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> String {
    format!("cannot {what} {}: {e}", path.display())
}

/// Every `.rs` file under `dir`, skipping `target` and hidden folders; none if `dir`
/// does not exist.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).map_err(|e| io("read folder", dir, e))? {
        let path = entry.map_err(|e| io("read folder", dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
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

/// The folder where the modules that `file` declares live.
fn module_dir(file: &Path) -> PathBuf {
    let parent = file.parent().unwrap_or(Path::new("")).to_path_buf();
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let in_bin = parent.file_name().is_some_and(|n| n == "bin");
    if matches!(stem, "main" | "lib" | "mod" | "build") || in_bin {
        parent
    } else {
        parent.join(stem)
    }
}

/// Whether `path` (relative to its layer) is test code by its place alone.
fn is_test_path(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "tests.rs")
        || path
            .components()
            .any(|c| c.as_os_str() == "tests" || c.as_os_str() == "benches")
}

/// Counts the Rust of every layer under `root`.
pub fn count(root: &Path) -> Result<Report> {
    let mut layers = Vec::new();
    for (folder, _) in LAYERS {
        let base = root.join(folder);
        let mut paths = Vec::new();
        rust_files(&base, &mut paths)?;
        paths.sort();
        let mut analyses = Vec::new();
        let mut test_files = BTreeSet::new();
        for path in paths {
            let source = std::fs::read_to_string(&path).map_err(|e| io("read", &path, e))?;
            let analysis = analyse(&source).map_err(|e| format!("{}: {e}", path.display()))?;
            let dir = module_dir(&path);
            for name in &analysis.test_modules {
                test_files.insert(dir.join(format!("{name}.rs")));
                test_files.insert(dir.join(name));
            }
            analyses.push((path, analysis));
        }
        let mut total = Tally::default();
        let mut files = Vec::new();
        for (path, analysis) in analyses {
            let relative = path.strip_prefix(&base).unwrap_or(&path);
            let all_test = is_test_path(relative) || test_files.iter().any(|t| path.starts_with(t));
            let tally = Tally::of(&analysis.lines, all_test);
            total.add(&tally);
            files.push(FileTally {
                path: path.strip_prefix(root).unwrap_or(&path).to_path_buf(),
                tally,
            });
        }
        layers.push((total, files));
    }
    Ok(Report { layers })
}

impl Report {
    /// The table, the kernel's biggest files and the budget verdict, as printed.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Rust lines without blanks and comments; test code (tests/, tests.rs, \
             #[cfg(test)] modules) in its own column\n"
        );
        let _ = writeln!(
            out,
            "{:<10}{:<15}{:>6}{:>8}{:>8}{:>10}{:>8}",
            "layer", "what", "files", "code", "test", "comments", "blank"
        );
        let row = |out: &mut String, name: &str, what: &str, t: &Tally| {
            let _ = writeln!(
                out,
                "{name:<10}{what:<15}{:>6}{:>8}{:>8}{:>10}{:>8}",
                t.files, t.code, t.test, t.comment, t.blank
            );
        };
        let mut total = Tally::default();
        for ((folder, what), (tally, _)) in LAYERS.iter().zip(&self.layers) {
            row(&mut out, &format!("{folder}/"), what, tally);
            total.add(tally);
        }
        row(&mut out, "total", "", &total);

        if let Some((_, files)) = self.layers.first() {
            let mut biggest: Vec<&FileTally> = files.iter().collect();
            biggest.sort_by(|a, b| b.tally.code.cmp(&a.tally.code).then(a.path.cmp(&b.path)));
            let _ = writeln!(
                out,
                "\nthe kernel's biggest files{:>23}{:>8}",
                "code", "test"
            );
            for file in biggest.iter().take(BIGGEST) {
                let _ = writeln!(
                    out,
                    "  {:<42}{:>6}{:>8}",
                    file.path.display(),
                    file.tally.code,
                    file.tally.test
                );
            }
        }

        let kernel = self.layers.first().map_or(0, |(t, _)| t.code);
        let _ = writeln!(
            out,
            "\nkernel proper (kernel/ without test code): {kernel} lines, {}",
            verdict(kernel)
        );
        // For reference, the issue's literal wording: everything but drivers, library
        // OSes, apps and host tools, so kernel/, api/ and libs/.
        let wider: usize = LAYERS
            .iter()
            .zip(&self.layers)
            .filter(|((folder, _), _)| matches!(*folder, "kernel" | "api" | "libs"))
            .map(|(_, (t, _))| t.code)
            .sum();
        let _ = writeln!(
            out,
            "for reference, kernel/ + api/ + libs/: {wider} lines, {}",
            verdict(wider)
        );
        out
    }
}

/// "under the budget" or "NOT under the budget", with the margin: under 5,000 lines means
/// at most 4,999, so 4,999 has none to spare and 5,000 is one over.
fn verdict(lines: usize) -> String {
    let most = KERNEL_BUDGET - 1;
    if lines <= most {
        format!(
            "under the {KERNEL_BUDGET}-line budget of issue 4 (at most {most}: {} to spare)",
            most - lines
        )
    } else {
        format!(
            "NOT under the {KERNEL_BUDGET}-line budget of issue 4 (at most {most}: {} over)",
            lines - most
        )
    }
}

/// `cargo xtask loc`: prints the table; succeeds whether or not the kernel is in budget.
pub fn command(argv: Vec<String>) -> Result<()> {
    if let Some(word) = argv.first() {
        return Err(format!(
            "`cargo xtask loc` takes no arguments, got `{word}`"
        ));
    }
    print!("{}", count(&crate::root())?.render());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Line::{Blank, Code, Comment, Test};

    fn kinds(source: &str) -> Vec<Line> {
        analyse(source).expect("valid source").lines
    }

    fn toks(source: &str) -> Vec<Tok> {
        lex(source)
            .expect("valid source")
            .into_iter()
            .map(|t| t.tok)
            .collect()
    }

    #[test]
    fn line_and_doc_comments_are_comments() {
        let src = "//! crate doc\n/// item doc\n// note\nfn f() {} // trailing\n\n   \n";
        assert_eq!(kinds(src), [Comment, Comment, Comment, Code, Blank, Blank]);
    }

    #[test]
    fn comment_markers_inside_strings_are_code() {
        let src = "let a = \"// not a comment\";\nlet b = \"/* nor\nthis */\";\n// real\n";
        assert_eq!(kinds(src), [Code, Code, Code, Comment]);
        assert_eq!(
            toks("\"a \\\" // b\" x"),
            [Tok::Literal, Tok::Ident("x".into())]
        );
    }

    #[test]
    fn block_comments_nest() {
        let src = "/* outer\n/* inner */\nstill comment\n*/\nfn f() {}\nx /* a */ y\n";
        assert_eq!(kinds(src), [Comment, Comment, Comment, Comment, Code, Code]);
        assert_eq!(toks("/* /* */ */ z"), [Tok::Ident("z".into())]);
        assert_eq!(toks("/** doc */ /*! inner */ z"), [Tok::Ident("z".into())]);
    }

    #[test]
    fn raw_strings_end_at_their_own_hashes() {
        let src = "let s = r#\"a \"quoted\" // x\n/* y */\"#;\n// c\n";
        assert_eq!(kinds(src), [Code, Code, Comment]);
        assert_eq!(
            toks("r##\"\"#\"## e"),
            [Tok::Literal, Tok::Ident("e".into())]
        );
        assert_eq!(
            toks("br\"x\" cr#\"y\"# b\"z\" c\"w\""),
            vec![Tok::Literal; 4]
        );
        assert_eq!(toks("r#match"), [Tok::Ident("match".into())]);
    }

    #[test]
    fn char_literals_and_lifetimes() {
        assert_eq!(
            toks("'\"' '/' '\\'' '\\\\' '\\u{1F600}' b'\"' 'a'"),
            vec![Tok::Literal; 7]
        );
        assert_eq!(
            toks("fn f<'a>(x: &'a str) -> &'static str { 'outer: loop {} }")
                .into_iter()
                .filter(|t| matches!(t, Tok::Lifetime(_)))
                .collect::<Vec<_>>(),
            [
                Tok::Lifetime("a".into()),
                Tok::Lifetime("a".into()),
                Tok::Lifetime("static".into()),
                Tok::Lifetime("outer".into()),
            ]
        );
        // A quote in a char literal does not open a string that hides the comment.
        assert_eq!(kinds("let q = '\"';\n// comment\n"), [Code, Comment]);
        assert_eq!(kinds("let s = '/'; // c\n// d\n"), [Code, Comment]);
    }

    #[test]
    fn cfg_test_blocks_are_test_code() {
        let src = "fn f() {}\n\n#[cfg(test)]\n#[allow(unused)]\nmod tests {\n    \
                   // c\n    fn g() { let s = \"}\"; }\n}\nfn h() {}\n";
        assert_eq!(
            kinds(src),
            [Code, Blank, Test, Test, Test, Comment, Test, Test, Code]
        );
        let out_of_line =
            analyse("#[cfg(test)]\npub(crate) mod checks;\nmod real;\n").expect("valid source");
        assert_eq!(out_of_line.test_modules, ["checks"]);
        assert_eq!(out_of_line.lines, [Code, Code, Code]);
        assert_eq!(kinds("#![cfg(test)]\nfn f() {}\n"), [Test, Test]);
        // Other cfgs are not tests.
        assert_eq!(
            kinds("#[cfg(any(test, feature = \"x\"))]\nmod m {}\n"),
            [Code, Code]
        );
    }

    #[test]
    fn bad_input_is_an_error_with_its_line() {
        for (src, message) in [
            (
                "fn f() {}\n/* open /* nested */\n",
                "line 2: unterminated block comment",
            ),
            ("let s = \"open\n\n", "line 1: unterminated string literal"),
            ("x\nr#\"open\"\n", "line 2: unterminated raw string literal"),
            ("'\\n\n", "line 1: unterminated character literal"),
            ("let c = ' ;", "line 1: a `'` that starts neither"),
            (
                "#[cfg(test)]\nmod t {\n",
                "line 2: the `#[cfg(test)]` module's `{` is never",
            ),
        ] {
            let err = analyse(src).expect_err(src);
            assert!(err.starts_with(message), "{src:?}: {err}");
        }
    }

    #[test]
    fn module_dirs_follow_rust_rules() {
        assert_eq!(module_dir(Path::new("a/src/lib.rs")), Path::new("a/src"));
        assert_eq!(
            module_dir(Path::new("a/src/m/mod.rs")),
            Path::new("a/src/m")
        );
        assert_eq!(module_dir(Path::new("a/src/m.rs")), Path::new("a/src/m"));
        assert_eq!(
            module_dir(Path::new("a/src/bin/t.rs")),
            Path::new("a/src/bin")
        );
        assert!(is_test_path(Path::new("x/tests/a.rs")));
        assert!(is_test_path(Path::new("x/src/tests.rs")));
        assert!(!is_test_path(Path::new("x/src/ktest.rs")));
    }

    #[test]
    fn counts_a_tree_by_layer() {
        let root = std::env::temp_dir().join(format!("rexo-loc-{}", std::process::id()));
        let write = |path: &str, text: &str| {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        };
        write("kernel/src/main.rs", "// k\nmod a;\n\nfn main() {}\n");
        write("kernel/src/a.rs", "fn a() {}\n#[cfg(test)]\nmod t {\n}\n");
        write("kernel/target/debug/skip.rs", "fn skipped() {}\n");
        write("libs/x/src/lib.rs", "#[cfg(test)]\nmod unit;\nfn x() {}\n");
        write("libs/x/src/unit.rs", "fn u() {}\n");
        write("libs/x/tests/it.rs", "fn it() {}\n");
        let report = count(&root).expect("counts");
        std::fs::remove_dir_all(&root).expect("clean up");

        let kernel = report.layers[0].0;
        assert_eq!(
            kernel,
            Tally {
                files: 2,
                code: 3,
                test: 3,
                comment: 1,
                blank: 1
            }
        );
        let libs = report.layers[5].0;
        assert_eq!((libs.files, libs.code, libs.test), (3, 3, 2));
        assert_eq!(report.layers[1].0, Tally::default());
        let text = report.render();
        assert!(text.contains("kernel proper (kernel/ without test code): 3 lines, under"));
        assert!(text.contains("kernel/src/main.rs"));
        assert_eq!(
            verdict(KERNEL_BUDGET),
            "NOT under the 5000-line budget of issue 4 (at most 4999: 1 over)"
        );
        assert_eq!(
            verdict(4999),
            "under the 5000-line budget of issue 4 (at most 4999: 0 to spare)"
        );
        assert_eq!(
            verdict(4997),
            "under the 5000-line budget of issue 4 (at most 4999: 2 to spare)"
        );
    }

    #[test]
    fn refuses_arguments() {
        let err = command(vec!["--all".into()]).expect_err("no arguments");
        assert!(err.contains("takes no arguments"));
    }
}
