//! `monitor`: an interactive command line on the Rexo consoles (the serial line and the
//! framebuffer with a PS/2 keyboard), with line editing and history.
//!
//! Commands: `help`, `cores`, `mem`, `caps`, `apps`, `run APP`, `pci`, `devices`, `load`,
//! `ls`, `cat`, `rm`, `df`, `fsck`, `extents`, `exec`, `net`, `ping`, `time`, `reboot`,
//! `poweroff`. An argument holding spaces (a BMFS file name) is given in double quotes
//! ([`QUOTING`]).
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod disk;
pub mod editor;
mod net;
mod rexofs;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use editor::{Editor, Event};
use rexo_api::{ApiError, BinaryError, DeviceKind, Kernel, KeyboardDevice};
use rexo_net::Ipv4Addr;

/// The prompt.
pub const PROMPT: &str = "rexo> ";

/// How long the monitor naps between looks at the input (it halts its core meanwhile).
const POLL_NS: u64 = 1_000_000;
/// Ctrl-C, which stops a command that runs until stopped (`ping`).
const CTRL_C: u8 = 0x03;
/// The most bytes of a file the monitor writes with one console call: the kernel holds
/// the consoles' lock for a call's whole text, and a KiB takes about 90 ms at 115200
/// baud, while other cores' log lines wait.
const CONSOLE_PIECE: usize = 1024;
/// The most bytes of a file `cat`, `fs cat` and `fs cp` read at once: the one buffer
/// they hold whatever the file's size (apps allocate from the kernel's shared heap,
/// which keeps the memory it grew by).
const FILE_PIECE: usize = 64 << 10;
/// The most bytes of a UTF-8 character that a piece's end can cut short.
const MAX_CUT_CHARACTER: usize = 3;

/// The commands, with their one-line help.
pub const COMMANDS: &[(&str, &str)] = &[
    ("help", "list the commands"),
    (
        "cores",
        "the cores running the work loop, and a round trip to each",
    ),
    ("mem", "usable and free memory"),
    (
        "caps",
        "every capability: who holds what, with which rights",
    ),
    ("apps", "the apps linked into this image"),
    (
        "run APP",
        "run an app and come back when it ends (not one that never does: httpd, monitor)",
    ),
    (
        "pci",
        "the PCI functions: bus:dev.fn vendor:device class, BARs, driver bound",
    ),
    (
        "devices",
        "the devices drivers are bound to: network interfaces and disks, with holders",
    ),
    (
        "load [FILE]",
        "load a BareMetal binary (at most 64 MiB): FILE from the BMFS disk, else the first boot module",
    ),
    ("ls", "the files of the BMFS disk"),
    (
        "cat FILE",
        "a text file of the BMFS disk (control characters shown, as ^[ for ESC)",
    ),
    ("rm FILE", "delete a file of the BMFS disk"),
    ("cp FILE NEW", "copy a file of the BMFS disk to a new file"),
    ("df", "the BMFS disk's free and used blocks"),
    ("fsck", "check the BMFS disk's directory"),
    (
        "extents [DISK [format [force]|alloc SECTORS|free START|share START COUNT APP|revoke APP|grow [force]|unprotect]]",
        "the disks' extent tables (protected blocks), or a change to one",
    ),
    ("exec", "run the loaded BareMetal binary and show its RAX"),
    (
        rexofs::USAGE,
        "the Rexo file system on the first disk that holds one",
    ),
    (
        "net",
        "the network interfaces and holders; the first free one configured by DHCP",
    ),
    (
        "ping HOST [COUNT]",
        "ICMP echo requests (4, at most 100) to an address or a name, from the first free interface",
    ),
    (
        "resolve NAME",
        "the IPv4 addresses of NAME, from the DNS server of DHCP or ip=",
    ),
    (
        "time",
        "time since boot, and the date and time by the machine's clock",
    ),
    ("reboot", "reboot the machine"),
    ("poweroff", "power the machine off"),
];

/// The image's apps that never end, which `run` refuses (the monitor would wait for
/// them for ever, its core and the console's input theirs), each with what it says
/// instead.
const NEVER_ENDING: &[(&str, &str)] = &[
    (
        "httpd",
        "httpd serves until the machine stops, so the monitor would never come back: boot it \
         beside the monitor (`cargo xtask run`'s default, apps=monitor:0:64M,httpd:1:64M) or \
         alone (app=httpd); `run httpd-test` ends at a GET of /__shutdown",
    ),
    (
        "httpd-smoltcp",
        "httpd-smoltcp serves until the machine stops, so the monitor would never come back: \
         boot it (app=httpd-smoltcp, or in apps= beside the monitor); `run httpd-test-smoltcp` \
         ends at a GET of /__shutdown",
    ),
    (
        "monitor",
        "this is the monitor: a monitor run from it never ends, so this one would never come back",
    ),
];

/// How to give an argument holding spaces, shown after the commands by `help`.
pub const QUOTING: &str =
    "a name holding spaces goes in double quotes (it cannot hold one): cat \"my notes.txt\"";

/// What a command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// Nothing (an empty line).
    Nothing,
    /// `help`.
    Help,
    /// `cores`.
    Cores,
    /// `mem`.
    Mem,
    /// `caps`.
    Caps,
    /// `apps`.
    Apps,
    /// `run APP`.
    Run(&'a str),
    /// `devices`.
    Devices,
    /// `pci`.
    Pci,
    /// `load [FILE]`: `None` loads the boot module.
    Load(Option<&'a str>),
    /// `ls`.
    Ls,
    /// `cat FILE`.
    Cat(&'a str),
    /// `rm FILE`.
    Rm(&'a str),
    /// `cp FILE NEW`.
    Cp {
        /// The file copied.
        from: &'a str,
        /// The new file.
        to: &'a str,
    },
    /// `df`.
    Df,
    /// `fsck`.
    Fsck,
    /// `extents ...`, with the words after `extents`.
    Extents(&'a str),
    /// `fs ...`, with the words after `fs`.
    Fs(&'a str),
    /// `exec`.
    Exec,
    /// `net`.
    Net,
    /// `ping HOST [COUNT]`.
    Ping {
        /// Where to.
        to: Host<'a>,
        /// How many requests.
        count: u16,
    },
    /// `resolve NAME`.
    Resolve(&'a str),
    /// `time`.
    Time,
    /// `reboot`.
    Reboot,
    /// `poweroff`.
    PowerOff,
}

/// Where a command sends to: an address, or a name to resolve first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host<'a> {
    /// An IPv4 address.
    Address(Ipv4Addr),
    /// A DNS name.
    Name(&'a str),
}

/// `text` as a host: an IPv4 address, else a name of letters, digits, `-` and `.`.
fn parse_host(text: &str) -> Option<Host<'_>> {
    if let Ok(address) = text.parse::<Ipv4Addr>() {
        return Some(Host::Address(address));
    }
    let name_like = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    // Digits and dots alone are a mistyped address, not a name.
    let has_letter = text.bytes().any(|b| b.is_ascii_alphabetic());
    (name_like && has_letter).then_some(Host::Name(text))
}

/// The words of `line`: runs of non-blank characters, or the text between two double
/// quotes, blanks and all (the quotes are not part of the word). A quote left open, or
/// text right after a closing quote, is an error naming it.
fn split_words(line: &str) -> Result<Vec<&str>, String> {
    let mut words = Vec::new();
    let mut rest = line;
    while let Some((word, after)) = next_word(rest)? {
        words.push(word);
        rest = after;
    }
    Ok(words)
}

/// The first word of `text` (as [`split_words`] splits) and the text after it, as it is;
/// `None` when `text` holds only blanks.
fn next_word(text: &str) -> Result<Option<(&str, &str)>, String> {
    let rest = text.trim_start();
    if rest.is_empty() {
        return Ok(None);
    }
    let word_and_after = match rest.strip_prefix('"') {
        Some(quoted) => {
            let end = quoted
                .find('"')
                .ok_or_else(|| format!("no closing quote in {rest}"))?;
            let after = &quoted[end + 1..];
            if after.starts_with(|c: char| !c.is_whitespace()) {
                return Err(format!("a closing quote must end its word: {rest}"));
            }
            (&quoted[..end], after)
        }
        None => {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            rest.split_at(end)
        }
    };
    Ok(Some(word_and_after))
}

/// Parses a command line; the error is the message to show. Words are split at blanks,
/// except inside double quotes ([`QUOTING`]); `extents` and `fs` take the rest of the line
/// as it is (`fs` splits it as the others are split, and refuses a word past those its verb
/// takes, but for `write`'s text).
pub fn parse(line: &str) -> Result<Command<'_>, String> {
    let Some(first) = line.split_whitespace().next() else {
        return Ok(Command::Nothing);
    };
    if first == "extents" {
        return Ok(Command::Extents(
            line.trim_start()["extents".len()..].trim(),
        ));
    }
    if first == "fs" {
        let words = line.trim_start()["fs".len()..].trim();
        rexofs::refuse_extra_words(words)?;
        return Ok(Command::Fs(words));
    }
    let mut words = split_words(line)?.into_iter();
    let word = words.next().unwrap_or_default();
    let argument = words.next();
    if word == "ping" {
        return parse_ping(argument, words.next(), words.next());
    }
    let command = match (word, argument) {
        ("run", Some(app)) => match NEVER_ENDING.iter().find(|(name, _)| *name == app) {
            Some((_, why)) => return Err(format!("run: {why}")),
            None => Command::Run(app),
        },
        ("run", None) => return Err(String::from("run: which app? (`apps` lists them)")),
        ("load", file) => Command::Load(file),
        ("ls", None) => Command::Ls,
        ("cat", Some(file)) => Command::Cat(file),
        ("rm", Some(file)) => Command::Rm(file),
        ("cp", Some(from)) => match words.next() {
            Some(to) => Command::Cp { from, to },
            None => return Err(format!("cp: copy {from} to which new file?")),
        },
        ("cp", None) => return Err(String::from("cp: which file? (`cp FILE NEW`)")),
        ("cat" | "rm", None) => return Err(format!("{word}: which file? (`ls` lists them)")),
        ("df", None) => Command::Df,
        ("fsck", None) => Command::Fsck,
        ("pci", None) => Command::Pci,
        ("devices", None) => Command::Devices,
        ("exec", None) => Command::Exec,
        ("net", None) => Command::Net,
        ("resolve", Some(name)) => match parse_host(name) {
            Some(Host::Name(name)) => Command::Resolve(name),
            _ => return Err(format!("resolve: '{name}' is not a name")),
        },
        ("resolve", None) => return Err(String::from("resolve: which name?")),
        ("help", None) => Command::Help,
        ("cores", None) => Command::Cores,
        ("mem", None) => Command::Mem,
        ("caps", None) => Command::Caps,
        ("apps", None) => Command::Apps,
        ("time", None) => Command::Time,
        ("reboot", None) => Command::Reboot,
        ("poweroff", None) => Command::PowerOff,
        (known, Some(_)) if COMMANDS.iter().any(|(c, _)| *c == known) => {
            return Err(format!("{known} takes no argument"));
        }
        (unknown, _) => {
            return Err(format!(
                "unknown command '{unknown}' (`help` lists the commands)"
            ));
        }
    };
    match words.next() {
        Some(extra) => Err(format!("{word}: unexpected '{extra}'")),
        None => Ok(command),
    }
}

/// `ping ADDRESS [COUNT]`, from its words.
fn parse_ping<'a>(
    address: Option<&'a str>,
    count: Option<&str>,
    extra: Option<&str>,
) -> Result<Command<'a>, String> {
    let address = address.ok_or("ping: which address? (`ping 10.0.2.2`)")?;
    let to = parse_host(address)
        .ok_or_else(|| format!("ping: '{address}' is not an IPv4 address or a name"))?;
    let count = match count {
        None => 4,
        Some(text) => match text.parse::<u16>() {
            Ok(n) if (1..=net::MAX_PINGS).contains(&n) => n,
            _ => {
                return Err(format!(
                    "ping: the count '{text}' is not 1 to {}",
                    net::MAX_PINGS
                ));
            }
        },
    };
    match extra {
        Some(extra) => Err(format!("ping: unexpected '{extra}'")),
        None => Ok(Command::Ping { to, count }),
    }
}

/// Adds `c` to `shown` as `cat` shows it on a terminal: `\n` as `\r\n`, tabs and
/// printable characters as they are, and every other control character shown instead of
/// acted on (a file holding `ESC c` would reset the terminal): the C0 ones and DEL in
/// caret notation (`^[` for ESC, `^@` for NUL, `^M` for CR, `^?` for DEL), the C1 ones
/// (U+0080 to U+009F) as `\u{9b}`.
fn push_shown(shown: &mut String, c: char) {
    match c {
        '\n' => shown.push_str("\r\n"),
        '\t' => shown.push('\t'),
        c => push_visible(shown, c),
    }
}

/// `text` shown as one line, as [`push_shown`] shows it but with `\n` and tabs in caret
/// notation too (`^J`, `^I`): a name or an error naming a path (a file may be named
/// `a\nb`, which would fake a line of its own, or `ESC c`, which would reset the
/// terminal).
fn visible_line(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    text.chars().for_each(|c| push_visible(&mut shown, c));
    shown
}

/// Adds `c` to `shown` as [`push_shown`] shows it: a control character in caret notation
/// or escaped, any other as it is.
fn push_visible(shown: &mut String, c: char) {
    match c {
        '\u{7f}' => shown.push_str("^?"),
        '\0'..='\u{1f}' => {
            shown.push('^');
            shown.push(char::from(c as u8 + b'@'));
        }
        c if c.is_control() => shown.extend(c.escape_default()),
        c => shown.push(c),
    }
}

/// `text` in pieces for the console: a line at a time (with its `\n`), and a line
/// longer than [`CONSOLE_PIECE`] bytes cut into pieces of at most that (at character
/// boundaries).
fn console_pieces(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive('\n').flat_map(|line| {
        let mut rest = line;
        core::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let (piece, after) = rest.split_at(piece_end(rest));
            rest = after;
            Some(piece)
        })
    })
}

/// Where the first console piece of `text` ends: at [`CONSOLE_PIECE`] bytes, or the
/// character boundary before it (all of `text` when shorter).
fn piece_end(text: &str) -> usize {
    let mut end = text.len().min(CONSOLE_PIECE);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// How showing a file ended.
#[derive(Debug, PartialEq, Eq)]
enum Shown {
    /// All of it was shown: `bytes` bytes.
    Whole {
        /// The file's bytes.
        bytes: u64,
    },
    /// Ctrl-C stopped it.
    Stopped,
}

/// A text file being shown as `cat` shows it ([`push_shown`]): the console line it
/// builds, written through `say` a line at a time (with its `\r\n`), or [`CONSOLE_PIECE`]
/// bytes of a longer one at a time, as [`console_pieces`] cuts a whole text; `stop` is
/// asked after each write (Ctrl-C), and once it says so nothing more is written.
struct FileView<'a> {
    /// Writes to the console.
    say: &'a dyn Fn(&str),
    /// Whether to stop now.
    stop: &'a mut dyn FnMut() -> bool,
    /// The line being built, not written yet: less than a console piece.
    line: String,
    /// Whether the last character shown was not a `\n` (a line to end).
    line_open: bool,
    /// Whether `stop` said to stop.
    stopped: bool,
}

impl FileView<'_> {
    /// Shows `c`.
    fn push(&mut self, c: char) {
        if self.stopped {
            return;
        }
        push_shown(&mut self.line, c);
        self.line_open = c != '\n';
        while self.line.len() > CONSOLE_PIECE && !self.stopped {
            self.write(piece_end(&self.line));
        }
        if c == '\n' && !self.stopped {
            self.write(self.line.len());
        }
    }

    /// Writes the line's first `end` bytes, and asks whether to stop.
    fn write(&mut self, end: usize) {
        (self.say)(&self.line[..end]);
        self.line.drain(..end);
        self.stopped = (self.stop)();
    }

    /// Writes what is left of the line (unless stopped) and ends it if it is open.
    fn end_line(&mut self) {
        if !self.stopped && !self.line.is_empty() {
            (self.say)(&self.line);
        }
        if self.line_open {
            (self.say)("\r\n");
        }
    }
}

/// Hands the characters of `bytes` to `take` as `String::from_utf8_lossy` reads them
/// (each invalid sequence as U+FFFD), but a character that the end of `bytes` cuts short
/// (unless it is the file's `last` piece): the count of its bytes is returned, to be read
/// again at the start of the next piece.
fn decode(bytes: &[u8], last: bool, take: &mut dyn FnMut(char)) -> usize {
    let mut chunks = bytes.utf8_chunks().peekable();
    while let Some(chunk) = chunks.next() {
        chunk.valid().chars().for_each(&mut *take);
        let invalid = chunk.invalid();
        // Only the last chunk's invalid bytes can be the start of a character that goes
        // on (an invalid sequence before other bytes is one, however it starts).
        let goes_on = chunks.peek().is_none()
            && core::str::from_utf8(invalid).is_err_and(|e| e.error_len().is_none());
        if goes_on && !last {
            return invalid.len();
        }
        if !invalid.is_empty() {
            take(char::REPLACEMENT_CHARACTER);
        }
    }
    0
}

/// Reads a file's bytes from an offset into a buffer: the bytes read, fewer than the
/// buffer only at the file's end.
type ReadAt<'a, E> = dyn FnMut(u64, &mut [u8]) -> Result<usize, E> + 'a;

/// Shows a text file as `cat` does, reading it [`FILE_PIECE`] bytes at a time through
/// `read_at(offset, buffer)` (the bytes read, fewer only at the file's end), so that
/// the one buffer it holds is a piece whatever the file's size: its characters as
/// `String::from_utf8_lossy` reads the whole ([`decode`]), shown as [`push_shown`] shows
/// them, through `say` a line or [`CONSOLE_PIECE`] bytes at a time ([`FileView`]), the
/// last line ended when the file does not end it. `stop` is asked after each write:
/// when it says so (Ctrl-C), the line is ended and nothing more read. A failed read ends
/// the line before the error is returned.
fn show_file<E>(
    read_at: &mut ReadAt<'_, E>,
    say: &dyn Fn(&str),
    stop: &mut dyn FnMut() -> bool,
) -> Result<Shown, E> {
    let mut view = FileView {
        say,
        stop,
        line: String::new(),
        line_open: false,
        stopped: false,
    };
    // A character cut by a piece's end (at most 3 bytes) is moved to the front, and the
    // next piece read after it.
    let mut buffer = alloc::vec![0u8; MAX_CUT_CHARACTER + FILE_PIECE];
    let (mut offset, mut cut) = (0u64, 0usize);
    let shown = loop {
        let read = match read_at(offset, &mut buffer[cut..cut + FILE_PIECE]) {
            Ok(read) => read,
            Err(error) => {
                view.end_line();
                return Err(error);
            }
        };
        offset += read as u64;
        let (filled, last) = (cut + read, read < FILE_PIECE);
        cut = decode(&buffer[..filled], last, &mut |c| view.push(c));
        if view.stopped {
            break Shown::Stopped;
        }
        if last {
            break Shown::Whole { bytes: offset };
        }
        buffer.copy_within(filled - cut..filled, 0);
    };
    view.end_line();
    Ok(shown)
}

/// What is typed at the monitor: the consoles' input (serial line, PS/2) and the
/// keyboards that are devices (USB through xHCI), with the bytes typed while a command
/// ran kept for the command line after it.
pub struct Input<'k> {
    kernel: &'k Kernel,
    keyboards: Vec<Box<dyn KeyboardDevice>>,
    /// Typed while a command ran, for the command line.
    ahead: VecDeque<u8>,
}

impl<'k> Input<'k> {
    /// The input of `kernel`'s consoles and of every keyboard device it can open.
    pub fn open(kernel: &'k Kernel) -> Self {
        let keyboards = kernel
            .devices()
            .iter()
            .filter(|device| device.kind == DeviceKind::Keyboard)
            .filter_map(|device| kernel.open_keyboard(device.index).ok())
            .collect();
        Self {
            kernel,
            keyboards,
            ahead: VecDeque::new(),
        }
    }

    /// The next byte for the command line: one typed while a command ran first.
    pub fn next_byte(&mut self) -> Option<u8> {
        let Self {
            kernel,
            keyboards,
            ahead,
        } = self;
        ahead.pop_front().or_else(|| typed_now(kernel, keyboards))
    }

    /// Whether Ctrl-C was typed since the last look, for a command that runs until
    /// stopped; the other bytes typed meanwhile are kept for the command line.
    pub fn interrupted(&mut self) -> bool {
        let Self {
            kernel,
            keyboards,
            ahead,
        } = self;
        take_ctrl_c(core::iter::from_fn(|| typed_now(kernel, keyboards)), ahead)
    }
}

/// The next byte typed on `kernel`'s consoles or on one of the `keyboards`, if any.
fn typed_now(kernel: &Kernel, keyboards: &mut [Box<dyn KeyboardDevice>]) -> Option<u8> {
    kernel.read_byte().or_else(|| {
        keyboards
            .iter_mut()
            .find_map(|k| k.read_byte().ok().flatten())
    })
}

/// Reads `typed` up to its first Ctrl-C (whether there was one), keeping every other
/// byte in `ahead`; with no Ctrl-C, reads it all.
fn take_ctrl_c(typed: impl Iterator<Item = u8>, ahead: &mut VecDeque<u8>) -> bool {
    for byte in typed {
        if byte == CTRL_C {
            return true;
        }
        ahead.push_back(byte);
    }
    false
}

/// `count` and the noun it counts, `one` for 1, else `many` ("1 core", "2 cores").
fn counted(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

/// The `apps` command's listing: a line per app, its name padded to the longest one's so
/// that every description starts in one column (a fixed 10 left names longer than 10,
/// `httpd-test-smoltcp`'s, out of line).
fn app_listing(apps: &[rexo_api::AppInfo]) -> String {
    let width = apps.iter().map(|app| app.name.len()).max().unwrap_or(0);
    apps.iter()
        .map(|app| format!("  {:<width$} {}\r\n", app.name, app.about))
        .collect()
}

/// Runs one command, writing its output through `kernel`; a command that runs until
/// stopped (`ping`) or may run long (`resolve`, `cat`, `fs cat`) watches `input` for
/// Ctrl-C.
pub fn execute(kernel: &Kernel, command: Command<'_>, input: &mut Input<'_>) {
    let say = |text: &str| kernel.write_str(text);
    match command {
        Command::Nothing => {}
        Command::Help => {
            for (name, about) in COMMANDS {
                say(&format!("  {name:<10} {about}\r\n"));
            }
            say(&format!("{QUOTING}\r\n"));
        }
        Command::Cores => {
            let cores = kernel.cores();
            let start = kernel.now_ns();
            let answered = Arc::new(AtomicU64::new(0));
            let count = Arc::clone(&answered);
            let result = kernel.run_on_every_core(Arc::new(move |_, _| {
                count.fetch_add(1, Ordering::Relaxed);
            }));
            let micros = (kernel.now_ns() - start) / 1000;
            match result {
                Ok(()) => say(&format!(
                    "{}; one task on each answered ({} of {cores}) in {micros} us\r\n",
                    counted(cores, "core", "cores"),
                    answered.load(Ordering::Relaxed)
                )),
                Err(error) => say(&format!("cores: {error}\r\n")),
            }
        }
        Command::Mem => {
            let memory = kernel.memory();
            let waiting = match memory.waiting {
                0 => String::new(),
                bytes => format!(", {} KiB freed, waiting for room", bytes >> 10),
            };
            say(&format!(
                "{} MiB usable, {} MiB free{waiting}\r\n",
                memory.usable >> 20,
                memory.free >> 20
            ));
        }
        Command::Caps => {
            let caps = kernel.capabilities();
            if caps.is_empty() {
                say("no capabilities are held\r\n");
            }
            let devices = kernel.devices();
            for cap in caps {
                // An interrupt binding: the device and queue whose source it binds.
                let source = devices.iter().find_map(|d| {
                    let bound = d.interrupts.iter().find(|b| b.entry == cap.id)?;
                    let (kind, index, queue) = (d.kind, d.index, bound.queue);
                    Some(format!(
                        " from {kind:?} {index} ({}) queue {queue}",
                        d.address
                    ))
                });
                say(&format!(
                    "  {} held by {}: {} rights {} ({:?}){}\r\n",
                    cap.id,
                    cap.owner,
                    cap.resource,
                    cap.rights,
                    cap.state,
                    source.unwrap_or_default()
                ));
            }
        }
        Command::Apps => say(&app_listing(&kernel.apps())),
        Command::Run(name) => match kernel.run_app(name) {
            Ok(()) => say(&format!("{name}: done\r\n")),
            Err(error) => say(&format!("{name}: {error}\r\n")),
        },
        Command::Pci => {
            let functions = kernel.pci_functions();
            if functions.is_empty() {
                say("no PCI functions answer (this machine may have no PCI bus)\r\n");
            }
            let devices = kernel.devices();
            for function in &functions {
                let address = function.header.address;
                match devices.iter().find(|d| d.address == address) {
                    Some(device) => say(&format!("{function} driver {}\r\n", device.driver)),
                    None => say(&format!("{function}\r\n")),
                }
            }
        }
        Command::Devices => {
            let devices = kernel.devices();
            if devices.is_empty() {
                say("no devices: no driver found a device it drives\r\n");
            }
            for d in &devices {
                let holder = d
                    .holder
                    .map_or(String::from("free"), |app| format!("held by {app}"));
                say(&format!(
                    "{:?} {} {} {}: {}, {holder}\r\n",
                    d.kind, d.index, d.address, d.driver, d.about
                ));
            }
        }
        Command::Load(file) => {
            let binary = match file.map(|name| disk::read_binary(kernel, name)) {
                Some(Ok(bytes)) => Some(bytes),
                Some(Err(why)) => return say(&format!("load: {why}\r\n")),
                None => None,
            };
            match kernel.load_baremetal(binary.as_deref()) {
                Ok(info) => say(&format!(
                    "load: {} bytes at {:#x}; `exec` runs it\r\n",
                    info.size, info.entry
                )),
                Err(error) => say(&format!("load: {error}\r\n")),
            }
        }
        Command::Fs(words) => match rexofs::run(kernel, words, &say, &mut || input.interrupted()) {
            // A path in a line may be long.
            Ok(lines) => lines
                .iter()
                .for_each(|line| console_pieces(&format!("{line}\r\n")).for_each(say)),
            Err(why) => say(&format!("{why}\r\n")),
        },
        Command::Extents(words) => match disk::extents(kernel, words) {
            Ok(lines) => lines.iter().for_each(|line| say(&format!("{line}\r\n"))),
            Err(why) => say(&format!("extents: {why}\r\n")),
        },
        Command::Ls => match disk::list(kernel) {
            Ok(lines) => lines.iter().for_each(|line| say(&format!("{line}\r\n"))),
            Err(why) => say(&format!("ls: {why}\r\n")),
        },
        Command::Cat(name) => {
            match disk::show_file(kernel, name, &say, &mut || input.interrupted()) {
                // An empty file is an empty line.
                Ok(Shown::Whole { bytes: 0 }) => say("\r\n"),
                Ok(Shown::Whole { .. }) => {}
                Ok(Shown::Stopped) => say("^C\r\n"),
                Err(why) => say(&format!("cat: {why}\r\n")),
            }
        }
        Command::Rm(name) => match disk::remove(kernel, name) {
            Ok(()) => say(&format!("rm: {name} deleted\r\n")),
            Err(why) => say(&format!("rm: {why}\r\n")),
        },
        Command::Cp { from, to } => match disk::copy(kernel, from, to) {
            Ok(bytes) => say(&format!("cp: {from} copied to {to} ({bytes} bytes)\r\n")),
            Err(why) => say(&format!("cp: {why}\r\n")),
        },
        Command::Df => match disk::usage(kernel) {
            Ok(line) => say(&format!("{line}\r\n")),
            Err(why) => say(&format!("df: {why}\r\n")),
        },
        Command::Fsck => match disk::usage(kernel) {
            Ok(_) => say("fsck: the BMFS directory is sound\r\n"),
            Err(why) => say(&format!("fsck: {why}\r\n")),
        },
        Command::Exec => match kernel.exec_baremetal() {
            Ok(rax) => say(&format!("exec: returned rax={rax:#x}\r\n")),
            Err(BinaryError::NotLoaded) => say("exec: nothing is loaded; `load` first\r\n"),
            Err(error) => say(&format!("exec: {error}\r\n")),
        },
        Command::Time => {
            let ns = kernel.now_ns();
            say(&format!(
                "{}.{:06} s since boot\r\n",
                ns / 1_000_000_000,
                ns % 1_000_000_000 / 1000
            ));
            match kernel.unix_time_s() {
                Ok(seconds) => {
                    let now = rexo_rtc::DateTime::from_unix(seconds);
                    say(&format!("{now} UTC (the CMOS clock)\r\n"));
                }
                Err(why) => say(&format!("time: {why}\r\n")),
            }
        }
        Command::Net => net::show(kernel)
            .iter()
            .for_each(|line| say(&format!("{line}\r\n"))),
        Command::Ping { to, count } => {
            if let Err(why) = net::ping(kernel, to, count, &say, input) {
                say(&format!("ping: {why}\r\n"));
            }
        }
        Command::Resolve(name) => match net::resolve(kernel, name, input) {
            Ok(line) => say(&format!("{line}\r\n")),
            Err(why) => say(&format!("resolve: {why}\r\n")),
        },
        Command::Reboot => kernel.reboot(),
        Command::PowerOff => {
            let error = kernel.power_off();
            say(&format!("poweroff: {error}\r\n"));
        }
    }
}

/// The app's entry point: prompt, read a line, run it, forever (until `reboot` or
/// `poweroff`).
pub fn main(kernel: &Kernel) -> Result<(), ApiError> {
    let mut editor = Editor::new();
    kernel.write_str("Rexo monitor: `help` lists the commands.\r\n");
    kernel.write_str(PROMPT);
    // Keyboards that are devices (USB through xHCI) type too, beside the consoles' own
    // input (serial line, PS/2).
    let mut input = Input::open(kernel);
    loop {
        let Some(byte) = input.next_byte() else {
            kernel.sleep_ns(POLL_NS);
            continue;
        };
        match editor.feed(byte) {
            Event::Edit { echo } => kernel.write_str(&echo),
            Event::Line { echo, line } => {
                kernel.write_str(&echo);
                match parse(&line) {
                    Ok(command) => execute(kernel, command, &mut input),
                    Err(message) => kernel.write_str(&format!("{message}\r\n")),
                }
                kernel.write_str(PROMPT);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `apps` pads every name to the longest, so the descriptions line up past 10
    /// characters; `cores` says "1 core" (it said "1 cores").
    #[test]
    fn listings_line_up_and_counts_agree_with_their_nouns() {
        let apps = [
            rexo_api::AppInfo {
                name: "kv",
                about: "the cache",
            },
            rexo_api::AppInfo {
                name: "httpd-test-smoltcp",
                about: "a test server",
            },
        ];
        assert_eq!(
            app_listing(&apps),
            "  kv                 the cache\r\n  httpd-test-smoltcp a test server\r\n"
        );
        assert_eq!(counted(1, "core", "cores"), "1 core");
        assert_eq!(counted(4, "core", "cores"), "4 cores");
    }

    #[test]
    fn parses_every_command() {
        assert_eq!(parse(""), Ok(Command::Nothing));
        assert_eq!(parse("   "), Ok(Command::Nothing));
        assert_eq!(parse("help"), Ok(Command::Help));
        assert_eq!(parse(" cores "), Ok(Command::Cores));
        assert_eq!(parse("mem"), Ok(Command::Mem));
        assert_eq!(parse("caps"), Ok(Command::Caps));
        assert_eq!(parse("apps"), Ok(Command::Apps));
        assert_eq!(parse("run hello"), Ok(Command::Run("hello")));
        assert_eq!(parse("pci"), Ok(Command::Pci));
        assert_eq!(parse(" load"), Ok(Command::Load(None)));
        assert_eq!(
            parse("load hello.app"),
            Ok(Command::Load(Some("hello.app")))
        );
        assert_eq!(parse("ls"), Ok(Command::Ls));
        assert_eq!(parse("cat notes.txt"), Ok(Command::Cat("notes.txt")));
        assert_eq!(parse("rm old.app"), Ok(Command::Rm("old.app")));
        assert_eq!(parse("df"), Ok(Command::Df));
        assert_eq!(parse("fsck"), Ok(Command::Fsck));
        assert!(parse("cat").unwrap_err().contains("which file"));
        assert_eq!(
            parse(" extents 0 alloc 100 "),
            Ok(Command::Extents("0 alloc 100"))
        );
        assert_eq!(parse("extents"), Ok(Command::Extents("")));
        assert_eq!(parse("exec "), Ok(Command::Exec));
        assert_eq!(parse("net"), Ok(Command::Net));
        assert_eq!(
            parse("cp a.txt b.txt"),
            Ok(Command::Cp {
                from: "a.txt",
                to: "b.txt"
            })
        );
        assert_eq!(
            parse("ping 10.0.2.2"),
            Ok(Command::Ping {
                to: Host::Address(Ipv4Addr::new(10, 0, 2, 2)),
                count: 4
            })
        );
        assert_eq!(
            parse(" ping 10.0.2.2 100 "),
            Ok(Command::Ping {
                to: Host::Address(Ipv4Addr::new(10, 0, 2, 2)),
                count: 100
            })
        );
        assert_eq!(
            parse("ping rexo.test 1"),
            Ok(Command::Ping {
                to: Host::Name("rexo.test"),
                count: 1
            })
        );
        assert_eq!(
            parse("resolve a-b.rexo.test"),
            Ok(Command::Resolve("a-b.rexo.test"))
        );
        assert_eq!(parse("time"), Ok(Command::Time));
        assert_eq!(parse("reboot"), Ok(Command::Reboot));
        assert_eq!(parse("poweroff"), Ok(Command::PowerOff));
    }

    #[test]
    fn bad_lines_get_messages() {
        assert!(
            parse("frob")
                .unwrap_err()
                .contains("unknown command 'frob'")
        );
        assert!(parse("run").unwrap_err().contains("which app"));
        // An app that never ends would never give the monitor back.
        for app in ["httpd", "httpd-smoltcp", "monitor"] {
            let why = parse(&format!("run {app}")).unwrap_err();
            assert!(why.contains("never come back"), "{why}");
        }
        assert!(parse("run httpd").unwrap_err().contains("run httpd-test"));
        assert_eq!(parse("run httpd-test"), Ok(Command::Run("httpd-test")));
        assert!(parse("mem now").unwrap_err().contains("takes no argument"));
        assert!(parse("run a b").unwrap_err().contains("unexpected 'b'"));
        assert!(parse("pci 0").unwrap_err().contains("takes no argument"));
        assert!(parse("exec now").unwrap_err().contains("takes no argument"));
        assert!(parse("ls x").unwrap_err().contains("takes no argument"));
        assert!(parse("net eth0").unwrap_err().contains("takes no argument"));
        assert!(parse("ping").unwrap_err().contains("which address"));
        assert!(
            parse("ping exa_mple.org")
                .unwrap_err()
                .contains("not an IPv4 address or a name")
        );
        assert!(parse("resolve").unwrap_err().contains("which name"));
        assert!(parse("cp").unwrap_err().contains("which file"));
        assert!(parse("cp a").unwrap_err().contains("to which new file"));
        assert!(parse("cp a b c").unwrap_err().contains("unexpected 'c'"));
        assert!(
            parse("resolve 10.0.2.2")
                .unwrap_err()
                .contains("not a name")
        );
        assert!(parse("resolve a b").unwrap_err().contains("unexpected 'b'"));
        assert!(
            parse("ping 10.0.2.256")
                .unwrap_err()
                .contains("not an IPv4")
        );
        assert!(
            parse("ping 10.0.2.2 0")
                .unwrap_err()
                .contains("not 1 to 100")
        );
        assert!(
            parse("ping 10.0.2.2 101")
                .unwrap_err()
                .contains("not 1 to 100")
        );
        assert!(parse("ping 10.0.2.2 x").unwrap_err().contains("'x'"));
        assert!(
            parse("ping 10.0.2.2 3 z")
                .unwrap_err()
                .contains("unexpected 'z'")
        );
    }

    #[test]
    fn names_with_spaces_are_given_in_double_quotes() {
        assert_eq!(
            parse("cat \"my notes.txt\""),
            Ok(Command::Cat("my notes.txt"))
        );
        assert_eq!(
            parse(" cp  \"a  b\" \"c d\" "),
            Ok(Command::Cp {
                from: "a  b",
                to: "c d"
            })
        );
        assert_eq!(parse("rm \"x\""), Ok(Command::Rm("x")));
        assert_eq!(
            parse("load \"a b.app\""),
            Ok(Command::Load(Some("a b.app")))
        );
        // A quote inside a word is part of it.
        assert_eq!(parse("cat it\"s"), Ok(Command::Cat("it\"s")));
        assert_eq!(
            parse("cat \"my notes.txt"),
            Err(String::from("no closing quote in \"my notes.txt"))
        );
        assert_eq!(
            parse("cat \"a\"b"),
            Err(String::from("a closing quote must end its word: \"a\"b"))
        );
        assert!(
            parse("cat \"a b\" c")
                .unwrap_err()
                .contains("unexpected 'c'")
        );
    }

    #[test]
    fn fs_paths_with_spaces_are_given_in_double_quotes() {
        for line in [
            "fs cat \"/my notes.txt\"",
            "fs mv \"/a b\" \"/c d\"",
            "fs ls \"/my docs\"",
            "fs write \"/my notes.txt\" text \"quoted\" as  typed",
        ] {
            let words = line["fs ".len()..].trim();
            assert_eq!(parse(line), Ok(Command::Fs(words)), "{line}");
        }
        assert_eq!(
            parse("fs cat \"/a b\" /c"),
            Err(String::from("fs cat: unexpected '/c'"))
        );
        assert_eq!(
            parse("fs rm \"/a b"),
            Err(String::from("no closing quote in \"/a b"))
        );
    }

    /// What `cat` showed before it read a file a piece at a time: the whole file read
    /// as `String::from_utf8_lossy` reads it, each character as [`push_shown`] shows it,
    /// and a line end added when the file has none.
    fn shown_whole(file: &[u8]) -> String {
        let text = String::from_utf8_lossy(file);
        let mut shown = String::new();
        text.chars().for_each(|c| push_shown(&mut shown, c));
        if !text.ends_with('\n') {
            shown.push_str("\r\n");
        }
        shown
    }

    /// `file` shown by [`show_file`], with `stop` asked after each write: how it ended,
    /// what it wrote a write at a time, and the largest buffer it read into.
    fn show(file: &[u8], stop: &mut dyn FnMut() -> bool) -> (Shown, Vec<String>, usize) {
        let said = core::cell::RefCell::new(Vec::new());
        let mut largest = 0;
        let mut read_at = |offset: u64, buffer: &mut [u8]| {
            largest = largest.max(buffer.len());
            let rest = file.get(offset as usize..).ok_or("read past the end")?;
            let read = rest.len().min(buffer.len());
            buffer[..read].copy_from_slice(&rest[..read]);
            Ok::<_, &str>(read)
        };
        let say = |text: &str| said.borrow_mut().push(String::from(text));
        let shown = show_file(&mut read_at, &say, stop).unwrap();
        (shown, said.into_inner(), largest)
    }

    #[test]
    fn cat_shows_control_characters_instead_of_sending_them() {
        let cat = |file: &str| show(file.as_bytes(), &mut || false).1.concat();
        assert_eq!(cat("line\n\tindented\n"), "line\r\n\tindented\r\n");
        assert_eq!(cat("reset: \x1bc"), "reset: ^[c\r\n");
        assert_eq!(
            cat("\0\x07\x08\r\x1f\x7f \u{9b}2J é"),
            "^@^G^H^M^_^? \\u{9b}2J é\r\n"
        );
        // A CR before a line end is shown as ^M; an empty file shows nothing (`cat`
        // says an empty line for it).
        assert_eq!(cat("dos\r\nunix\n"), "dos^M\r\nunix\r\n");
        assert_eq!(cat("a\r\n\r\n"), "a^M\r\n^M\r\n");
        assert_eq!(cat("a\n\nb"), "a\r\n\r\nb\r\n");
        assert_eq!(
            show(b"", &mut || false),
            (Shown::Whole { bytes: 0 }, Vec::new(), FILE_PIECE)
        );
        assert_eq!(visible_line("a\nb\tc\x1bc\u{9b}"), "a^Jb^Ic^[c\\u{9b}");
    }

    #[test]
    fn cat_writes_a_line_or_a_piece_at_a_time() {
        let long = "é".repeat(1500);
        let file = format!("first\n{long}\nlast, no line end");
        let (shown, said, _) = show(file.as_bytes(), &mut || false);
        assert_eq!(
            shown,
            Shown::Whole {
                bytes: file.len() as u64
            }
        );
        assert_eq!(said.concat(), shown_whole(file.as_bytes()));
        assert!(said.iter().all(|piece| piece.len() <= CONSOLE_PIECE));
        // The long line (3000 bytes and its line end) in three pieces.
        assert_eq!(
            said.iter().map(String::len).collect::<Vec<_>>(),
            [7, 1024, 1024, 954, 17, 2]
        );
    }

    /// A file of several pieces, with a CR, a line end, a character of 2, 3 and 4
    /// bytes and invalid UTF-8 each cut by a piece's end: shown byte for byte as it was
    /// shown whole, read into one buffer of a piece.
    #[test]
    fn cat_reads_a_piece_at_a_time_and_shows_what_it_showed_whole() {
        let cuts: Vec<&[u8]> = vec![
            b"\r\n",
            "é".as_bytes(),
            "€".as_bytes(),
            "😀".as_bytes(),
            b"\xe2\x82",
            b"\xff\xfe",
            b"\xf0\x9f\x98",
            b"\n\r",
        ];
        let mut file = Vec::new();
        for at in 1..=12 {
            let piece_end = at * FILE_PIECE;
            let cut = cuts[at % cuts.len()];
            // The cut sequence starts 1, 2 or 3 bytes before the piece's end.
            let before = (at % cut.len().max(1)).max(1).min(cut.len());
            file.resize(piece_end - before, b'x');
            file.extend_from_slice(cut);
            file.extend_from_slice(b"line\n");
        }
        // The last piece ends cutting a character: shown as U+FFFD, as whole.
        file.extend_from_slice(b"end \xe2\x82");
        let (shown, said, largest) = show(&file, &mut || false);
        assert_eq!(
            shown,
            Shown::Whole {
                bytes: file.len() as u64
            }
        );
        let (said_all, whole) = (said.concat(), shown_whole(&file));
        let differ = said_all
            .bytes()
            .zip(whole.bytes())
            .position(|(a, b)| a != b);
        assert_eq!((differ, said_all.len()), (None, whole.len()));
        assert!(said.iter().all(|piece| piece.len() <= CONSOLE_PIECE));
        assert_eq!(largest, FILE_PIECE);
        // A file ending right at a piece's end, one empty read after it.
        let exact = vec![b'y'; 2 * FILE_PIECE];
        assert!(show(&exact, &mut || false).1.concat() == shown_whole(&exact));
    }

    #[test]
    fn ctrl_c_stops_cat_at_the_next_write() {
        let file = "a line\n".repeat(3 * FILE_PIECE / 7);
        let mut writes = 0;
        let (shown, said, _) = show(file.as_bytes(), &mut || {
            writes += 1;
            writes == 5
        });
        assert_eq!(shown, Shown::Stopped);
        assert_eq!(said.concat(), "a line\r\n".repeat(5));
        // Stopped within a line: the line is ended.
        let long = "z".repeat(5000);
        let (shown, said, _) = show(long.as_bytes(), &mut || true);
        assert_eq!(shown, Shown::Stopped);
        assert_eq!(said.concat(), "z".repeat(CONSOLE_PIECE) + "\r\n");
    }

    #[test]
    fn ctrl_c_is_taken_and_the_other_bytes_kept_for_the_command_line() {
        let mut ahead = VecDeque::from([b'm']);
        let mut typed = b"em\x03\rx".iter().copied();
        assert!(take_ctrl_c(&mut typed, &mut ahead));
        assert_eq!(ahead, b"mem");
        // What follows the Ctrl-C is left unread; without one, everything is kept.
        assert!(!take_ctrl_c(&mut typed, &mut ahead));
        assert_eq!(ahead, b"mem\rx");
    }

    #[test]
    fn fs_refuses_a_word_past_its_arguments() {
        for (line, message) in [
            ("fs rm /a /b", "fs rm: unexpected '/b'"),
            ("fs mkdir /a /b", "fs mkdir: unexpected '/b'"),
            ("fs cat /a /b", "fs cat: unexpected '/b'"),
            ("fs ls / /docs", "fs ls: unexpected '/docs'"),
            ("fs cp /a /b /c", "fs cp: unexpected '/c'"),
            ("fs mv /a /b /c", "fs mv: unexpected '/c'"),
            ("fs df now", "fs df: unexpected 'now'"),
            (" fs  fsck  -y ", "fs fsck: unexpected '-y'"),
        ] {
            assert_eq!(parse(line), Err(String::from(message)), "{line}");
        }
        for (line, words) in [
            ("fs", ""),
            ("fs ls", "ls"),
            ("fs ls /docs", "ls /docs"),
            ("fs rm /a", "rm /a"),
            ("fs cp /a /b", "cp /a /b"),
            ("fs mv /a /b", "mv /a /b"),
            ("fs df", "df"),
            ("fs fsck", "fsck"),
            ("fs write /a text of  words ", "write /a text of  words"),
            // An unknown verb is for `fs` to name, with its usage.
            ("fs frob a b c", "frob a b c"),
        ] {
            assert_eq!(parse(line), Ok(Command::Fs(words)), "{line}");
        }
    }

    #[test]
    fn every_command_has_help() {
        for word in [
            "help", "cores", "mem", "apps", "run", "pci", "devices", "load", "ls", "exec", "net",
            "ping", "time", "reboot", "poweroff",
        ] {
            assert!(
                COMMANDS
                    .iter()
                    .any(|(name, _)| name.split(' ').next() == Some(word)),
                "{word}"
            );
        }
    }
}
