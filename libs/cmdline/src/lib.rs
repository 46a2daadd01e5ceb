//! The kernel command line: `key` or `key=value` words separated by whitespace.
//!
//! The words are listed in `docs/kernel-interface.md` ("Kernel command line"). [`parse`] turns
//! the line into [`Options`] without allocating: string values borrow from the input. A word
//! that is not understood gives a [`CmdlineError`] whose `Display` names the word and lists what
//! would have been accepted, so that the kernel can print it and stop the boot.
#![cfg_attr(target_os = "none", no_std)]

use core::fmt;
use core::net::Ipv4Addr;

/// The most cores the kernel runs, and so the largest value `cores=` accepts.
pub const MAX_CORES: usize = 64;

/// Every key the command line knows, in the order of the documentation table.
pub const KEYS: [&str; 10] = [
    "log",
    "app",
    "apps",
    "cores",
    "ip",
    "test",
    "test.after",
    "crash",
    "bench",
    "smp.stall",
];

/// The application run when `app=` is not given.
pub const DEFAULT_APP: &str = "hello";

/// The most entries a boot manifest (`apps=`) may list.
pub const MAX_MANIFEST_APPS: usize = 8;

/// The capability owner of run `place` (from 0) of the boot manifest, in a kernel with
/// `apps` apps linked in: after the kernel (0) and one owner per app (`1..=apps`).
pub const fn manifest_owner(apps: usize, place: usize) -> usize {
    apps + 1 + place
}

/// How many capability owners a kernel with `apps` apps linked in needs: the kernel, one
/// per app, and one per run of the largest boot manifest ([`manifest_owner`]).
pub const fn owners_needed(apps: usize) -> usize {
    manifest_owner(apps, MAX_MANIFEST_APPS)
}

/// How much the consoles print; a level includes every level before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Only errors.
    Error,
    /// Errors and warnings.
    Warn,
    /// Normal boot messages (the default).
    Info,
    /// Details for debugging.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The accepted `log=` values, from the quietest.
    pub const NAMES: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

    /// The level's name as written on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "error" => Self::Error,
            "warn" => Self::Warn,
            "info" => Self::Info,
            "debug" => Self::Debug,
            "trace" => Self::Trace,
            _ => return None,
        })
    }
}

/// A crash the kernel provokes after boot (`crash=`), to test the crash reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crash {
    /// Touch an unmapped address.
    PageFault,
    /// Divide by zero.
    Divide,
    /// Call `panic!`.
    Panic,
    /// Call `panic!` with a message whose formatting panics again, inside the report.
    NestedPanic,
    /// Recurse until the stack runs into its guard page.
    StackOverflow,
    /// Call `panic!` in a task on the last core (not the boot core).
    PanicOnOtherCore,
}

impl Crash {
    /// The accepted `crash=` values.
    pub const NAMES: [&str; 6] = [
        "pagefault",
        "divide",
        "panic",
        "nested-panic",
        "stackoverflow",
        "panic-other-core",
    ];

    /// The crash's name as written on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::PageFault => "pagefault",
            Self::Divide => "divide",
            Self::Panic => "panic",
            Self::NestedPanic => "nested-panic",
            Self::StackOverflow => "stackoverflow",
            Self::PanicOnOtherCore => "panic-other-core",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "pagefault" => Self::PageFault,
            "divide" => Self::Divide,
            "panic" => Self::Panic,
            "nested-panic" => Self::NestedPanic,
            "stackoverflow" => Self::StackOverflow,
            "panic-other-core" => Self::PanicOnOtherCore,
            _ => return None,
        })
    }
}

/// A benchmark the kernel runs after boot instead of the app (`bench=`); it prints its
/// figures and exits (see `docs/bench.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bench {
    /// The kernel API, frame, cross-core and revocation costs (`cargo xtask bench api`).
    Api,
}

impl Bench {
    /// The accepted `bench=` values.
    pub const NAMES: [&str; 1] = ["api"];

    /// The benchmark's name as written on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Api => "api",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "api" => Some(Self::Api),
            _ => None,
        }
    }
}

/// A fixed IPv4 configuration for the apps' TCP/IP library OS (`ip=`), instead of DHCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Config {
    /// The interface's address: a unicast host address, not its network's first or last
    /// address (but on /31 and /32).
    pub address: Ipv4Addr,
    /// The network prefix length, 1 to 32.
    pub prefix: u8,
    /// The default router, if there is one: another host of the address's network.
    pub router: Option<Ipv4Addr>,
    /// The DNS server the apps ask, if there is one.
    pub dns: Option<Ipv4Addr>,
}

/// Parses `ADDRESS/PREFIX[,ROUTER[,DNS]]` (`10.0.2.15/24,10.0.2.2`): `Err(None)` when it
/// is not of that form, `Err(Some(why))` when [`Ipv4Config::check`] refuses it.
fn parse_ipv4_config(value: &str) -> Result<Ipv4Config, Option<&'static str>> {
    let config = ipv4_fields(value).ok_or(None)?;
    config.check().map_err(Some)?;
    Ok(config)
}

/// The fields of `ADDRESS/PREFIX[,ROUTER[,DNS]]`, unchecked (`None`: not of that form).
fn ipv4_fields(value: &str) -> Option<Ipv4Config> {
    let mut parts = value.split(',');
    let network = parts.next()?;
    let mut next_address = || parts.next().map(|a| a.parse::<Ipv4Addr>().ok());
    let router = next_address().map_or(Some(None), |a| a.map(Some))?;
    let dns = next_address().map_or(Some(None), |a| a.map(Some))?;
    if next_address().is_some() {
        return None;
    }
    let (address, prefix) = network.split_once('/')?;
    Some(Ipv4Config {
        address: address.parse().ok()?,
        prefix: u8::try_from(parse_decimal(prefix)?).ok()?,
        router,
        dns,
    })
}

impl Ipv4Config {
    /// Whether a host can use the configuration, or why not: the prefix is 1 to 32, the
    /// address a unicast host address that is not its network's first or last address
    /// (but on /31 and /32, where every address is a host's), the router another such
    /// host of the same network, the DNS server a unicast host address on any network,
    /// on the address's own not that network's first or last address either (its
    /// directed broadcast; but on /31 and /32). A unicast host address is none of 0/8
    /// ("this network"), 127/8 (loopback) and 240/4 (reserved), which RFC 1122
    /// (3.2.1.3) keeps from hosts' addresses. The kernel's `ip=` is checked so, and so
    /// are the apps' own fixed configurations and DHCP leases.
    pub fn check(&self) -> Result<(), &'static str> {
        let Self {
            address,
            prefix,
            router,
            dns,
        } = *self;
        if !(1..=32).contains(&prefix) {
            return Err("the prefix is not 1 to 32 bits");
        }
        let host = |a: Ipv4Addr| !(a.is_unspecified() || a.is_broadcast() || a.is_multicast());
        // 0/8, 127/8 and 240/4: no host's address (RFC 1122 3.2.1.3).
        let in_no_host_block = |a: Ipv4Addr| matches!(a.octets()[0], 0 | 127 | 240..);
        // A host of the address's network: not the network's first or last address (but
        // on /31 and /32, where every address is a host's).
        let mask = u32::MAX << (32 - u32::from(prefix));
        let in_network = |a: Ipv4Addr| (u32::from(a) ^ u32::from(address)) & mask == 0;
        let on_network = |a: Ipv4Addr| {
            let host_bits = u32::from(a) & !mask;
            in_network(a) && (prefix > 30 || host_bits != 0) && Some(a) != self.broadcast()
        };
        if !host(address) {
            return Err("the address is not a unicast host address");
        }
        if in_no_host_block(address) {
            return Err("the address is in 0/8, 127/8 (loopback) or 240/4, no host's address");
        }
        if !on_network(address) {
            return Err("the address is its network's own or broadcast address");
        }
        match router {
            Some(router) if router == address => Err("the router is the address itself"),
            Some(router) if host(router) && in_no_host_block(router) => {
                Err("the router is in 0/8, 127/8 (loopback) or 240/4, no host's address")
            }
            Some(router) if !host(router) || !on_network(router) => {
                Err("the router is not a host of the address's network")
            }
            _ if dns.is_some_and(|dns| !host(dns)) => {
                Err("the DNS server is not a unicast host address")
            }
            _ if dns.is_some_and(in_no_host_block) => {
                Err("the DNS server is in 0/8, 127/8 (loopback) or 240/4, no host's address")
            }
            _ if dns.is_some_and(|dns| in_network(dns) && !on_network(dns)) => {
                Err("the DNS server is the address's network's own or broadcast address")
            }
            _ => Ok(()),
        }
    }

    /// The address's network's broadcast address (all host bits set); `None` on /31
    /// and /32, which have none of their own.
    pub fn broadcast(&self) -> Option<Ipv4Addr> {
        let host_bits = u32::MAX.checked_shr(u32::from(self.prefix)).unwrap_or(0);
        (self.prefix <= 30).then(|| Ipv4Addr::from(self.address.to_bits() | host_bits))
    }
}

/// The parsed command line. String values borrow from the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options<'a> {
    /// Console log level (`log=`, default [`LogLevel::Info`]).
    pub log: LogLevel,
    /// The app to run after boot (`app=`, default [`DEFAULT_APP`]).
    pub app: &'a str,
    /// The boot manifest (`apps=`): several app runs side by side, each with its own
    /// cores and memory quota; `None`: run [`Options::app`] alone.
    pub apps: Option<Manifest<'a>>,
    /// Use at most this many cores (`cores=`, 1..=[`MAX_CORES`]); `None`: all of them.
    pub cores: Option<usize>,
    /// The apps' fixed IPv4 configuration (`ip=ADDRESS/PREFIX[,ROUTER[,DNS]]`); `None`: DHCP.
    pub ip: Option<Ipv4Config>,
    /// Run the kernel tests whose names contain this filter instead of the app (`test` or
    /// `test=FILTER`); `Some("")` runs every test, `None` runs the app.
    pub test: Option<&'a str>,
    /// Skip the tests up to and including this one (`test.after=NAME`).
    pub test_after: Option<&'a str>,
    /// Provoke this crash after boot (`crash=`).
    pub crash: Option<Crash>,
    /// Run this benchmark instead of the app (`bench=`).
    pub bench: Option<Bench>,
    /// The core that takes this index (1..[`MAX_CORES`]; core 0 is the boot core, which does
    /// not start this way) as it starts stops before its
    /// sign of life, as a core that dies while starting (`smp.stall=`): the bad-input test
    /// of the kernel's time-out.
    pub smp_stall: Option<usize>,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Self {
            log: LogLevel::Info,
            app: DEFAULT_APP,
            apps: None,
            cores: None,
            ip: None,
            test: None,
            test_after: None,
            crash: None,
            bench: None,
            smp_stall: None,
        }
    }
}

/// Why a command line was refused. Each error carries the whole offending word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmdlineError<'a> {
    /// The key is not one of [`KEYS`].
    UnknownKey {
        /// The whole word.
        word: &'a str,
    },
    /// The key is known but its value is not acceptable.
    BadValue {
        /// The whole word.
        word: &'a str,
        /// What the key accepts, for the message.
        expected: &'static str,
    },
    /// The key needs a value (`key=value`) but has none.
    MissingValue {
        /// The whole word.
        word: &'a str,
        /// What the key accepts, for the message.
        expected: &'static str,
    },
    /// The key was already given by an earlier word.
    Duplicate {
        /// The second word giving the key.
        word: &'a str,
    },
    /// The word cannot stand with an earlier one (`app=` and `apps=`; two of `test`,
    /// `bench=` and `crash=`).
    Conflict {
        /// The later word.
        word: &'a str,
        /// The earlier word it conflicts with.
        earlier: &'a str,
        /// Why the two exclude each other.
        why: &'static str,
    },
    /// An `ip=` of the right form that [`Ipv4Config::check`] refuses.
    BadAddress {
        /// The offending word.
        word: &'a str,
        /// What is wrong with it ([`Ipv4Config::check`]'s reason).
        why: &'static str,
    },
    /// `test.after=` without `test`: it would be ignored, the app run instead.
    AfterWithoutTest {
        /// The `test.after=` word.
        word: &'a str,
    },
    /// An entry of the boot manifest (`apps=`) is refused.
    Manifest {
        /// The whole `apps=` word.
        word: &'a str,
        /// The entry at fault (`NAME:CORES:MEMORY`), or the empty string for the word as
        /// a whole.
        entry: &'a str,
        /// What is wrong with it.
        problem: ManifestProblem,
    },
}

/// What is wrong with a boot manifest entry ([`CmdlineError::Manifest`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestProblem {
    /// Not three fields `NAME:CORES:MEMORY`, or an empty entry.
    Syntax,
    /// The name is empty or has characters other than letters, digits, `-` and `_`.
    BadName,
    /// The cores are not `a-b` or `a` with `a <= b` and both below [`MAX_CORES`].
    BadCores,
    /// The quota is not a number with an optional `K`, `M` or `G` suffix, or overflows.
    BadQuota,
    /// The quota is zero.
    ZeroQuota,
    /// The entry's cores overlap those of an earlier entry.
    Overlap,
    /// More than [`MAX_MANIFEST_APPS`] entries.
    TooManyEntries,
    /// The entry names a core at or past this count of running cores.
    CoreNotRunning {
        /// How many cores run.
        running: usize,
    },
}

impl fmt::Display for ManifestProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax => f.write_str("expected NAME:CORES:MEMORY[,NAME:CORES:MEMORY...]"),
            Self::BadName => f.write_str("the app name may hold only letters, digits, '-', '_'"),
            Self::BadCores => write!(
                f,
                "cores are a range a-b (a <= b) or one index, below {MAX_CORES}"
            ),
            Self::BadQuota => {
                f.write_str("the memory quota is a number of bytes, or with K, M or G (16M)")
            }
            Self::ZeroQuota => f.write_str("the memory quota is zero"),
            Self::Overlap => f.write_str("its cores overlap those of an earlier entry"),
            Self::TooManyEntries => write!(f, "at most {MAX_MANIFEST_APPS} entries"),
            Self::CoreNotRunning { running } => write!(
                f,
                "it names a core past the {running} running cores (0-{})",
                running.saturating_sub(1)
            ),
        }
    }
}

/// A boot manifest entry: one app run with its cores and memory quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ManifestEntry<'a> {
    /// The entry as written (`hello:0-1:8M`).
    pub text: &'a str,
    /// The app's name (the kernel checks that the image has it).
    pub name: &'a str,
    /// The first core of the run (a machine core index).
    pub first_core: usize,
    /// How many cores, from `first_core` on.
    pub cores: usize,
    /// The most bytes of memory the run may hold at once.
    pub quota: u64,
}

/// A boot manifest (`apps=`), checked by [`parse`]: at least one and at most
/// [`MAX_MANIFEST_APPS`] entries, well formed, with disjoint cores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Manifest<'a> {
    word: &'a str,
    value: &'a str,
}

impl<'a> Manifest<'a> {
    /// The entries, in the order written.
    pub fn entries(&self) -> impl Iterator<Item = ManifestEntry<'a>> + 'a {
        // Every entry was checked by `parse`, so none is dropped here.
        self.value
            .split(',')
            .filter_map(|text| parse_entry(text).ok())
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.value.split(',').count()
    }

    /// Whether the manifest has no entries (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks that every entry's cores are among the `running` cores (0..running).
    pub fn check_cores(&self, running: usize) -> Result<(), CmdlineError<'a>> {
        match self
            .entries()
            .find(|entry| entry.first_core + entry.cores > running)
        {
            Some(entry) => Err(CmdlineError::Manifest {
                word: self.word,
                entry: entry.text,
                problem: ManifestProblem::CoreNotRunning { running },
            }),
            None => Ok(()),
        }
    }
}

/// Parses the value of `apps=` for the word `word`.
fn parse_manifest<'a>(word: &'a str, value: &'a str) -> Result<Manifest<'a>, CmdlineError<'a>> {
    let error = |entry, problem| CmdlineError::Manifest {
        word,
        entry,
        problem,
    };
    // One bit per core index taken by an earlier entry (MAX_CORES is 64).
    let mut taken: u64 = 0;
    for (index, text) in value.split(',').enumerate() {
        if index == MAX_MANIFEST_APPS {
            return Err(error("", ManifestProblem::TooManyEntries));
        }
        let entry = parse_entry(text).map_err(|problem| error(text, problem))?;
        let mask = (u64::MAX >> (64 - entry.cores)) << entry.first_core;
        if taken & mask != 0 {
            return Err(error(text, ManifestProblem::Overlap));
        }
        taken |= mask;
    }
    Ok(Manifest { word, value })
}

/// Parses one `NAME:CORES:MEMORY` entry.
fn parse_entry(text: &str) -> Result<ManifestEntry<'_>, ManifestProblem> {
    let mut fields = text.split(':');
    let (Some(name), Some(cores), Some(quota), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(ManifestProblem::Syntax);
    };
    if !valid_app_name(name) {
        return Err(ManifestProblem::BadName);
    }
    let (first, last) = match cores.split_once('-') {
        Some((first, last)) => (parse_index(first), parse_index(last)),
        None => (parse_index(cores), parse_index(cores)),
    };
    let (Some(first), Some(last)) = (first, last) else {
        return Err(ManifestProblem::BadCores);
    };
    if first > last {
        return Err(ManifestProblem::BadCores);
    }
    let quota = parse_quota(quota).ok_or(ManifestProblem::BadQuota)?;
    if quota == 0 {
        return Err(ManifestProblem::ZeroQuota);
    }
    Ok(ManifestEntry {
        text,
        name,
        first_core: first,
        cores: last - first + 1,
        quota,
    })
}

/// A number of the command line: plain decimal digits (no sign, no spaces) without
/// leading zeros (`0` itself but not `07`), as in the dotted addresses of `ip=`.
fn parse_decimal(text: &str) -> Option<u64> {
    let well_formed = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    well_formed.then(|| text.parse().ok()).flatten()
}

/// A core index: a [`parse_decimal`] number below MAX_CORES.
fn parse_index(text: &str) -> Option<usize> {
    let index = usize::try_from(parse_decimal(text)?).ok()?;
    (index < MAX_CORES).then_some(index)
}

/// Bytes: a [`parse_decimal`] number with an optional `K`, `M` or `G` (powers of 1024).
fn parse_quota(text: &str) -> Option<u64> {
    let (digits, shift) = match text.as_bytes().last()? {
        b'K' => (&text[..text.len() - 1], 10),
        b'M' => (&text[..text.len() - 1], 20),
        b'G' => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    parse_decimal(digits)?.checked_mul(1 << shift)
}

/// Whether `name` is a possible app name: letters, digits, `-` and `_`, not empty.
fn valid_app_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl fmt::Display for CmdlineError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownKey { word } => {
                write!(f, "command line: unknown key in `{word}`; known keys: ")?;
                for (i, key) in KEYS.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(key)?;
                }
                Ok(())
            }
            Self::BadValue { word, expected } => {
                write!(
                    f,
                    "command line: bad value in `{word}`; expected {expected}"
                )
            }
            Self::MissingValue { word, expected } => {
                write!(
                    f,
                    "command line: `{word}` needs a value (key=value); expected {expected}"
                )
            }
            Self::Duplicate { word } => {
                write!(f, "command line: `{word}` repeats a key given earlier")
            }
            Self::Conflict { word, earlier, why } => write!(
                f,
                "command line: `{word}` cannot stand with `{earlier}` ({why})"
            ),
            Self::BadAddress { word, why } => write!(
                f,
                "command line: bad value in `{word}`: {why}; expected {IP_VALUES}"
            ),
            Self::AfterWithoutTest { word } => write!(
                f,
                "command line: `{word}` needs `test` (it resumes the kernel tests after a test)"
            ),
            Self::Manifest {
                word,
                entry: "",
                problem,
            } => write!(f, "command line: bad manifest in `{word}`: {problem}"),
            Self::Manifest {
                word,
                entry,
                problem,
            } => write!(
                f,
                "command line: bad manifest entry `{entry}` in `{word}`: {problem}"
            ),
        }
    }
}

impl core::error::Error for CmdlineError<'_> {}

const LOG_VALUES: &str = "one of error, warn, info, debug, trace";
const APP_VALUES: &str = "an app name (letters, digits, '-', '_')";
const APPS_VALUES: &str = "NAME:CORES:MEMORY[,NAME:CORES:MEMORY...] (hello:0-1:16M)";
const CORES_VALUES: &str = "a decimal number from 1 to 64";
const TEST_AFTER_VALUES: &str = "a test name";
const STALL_VALUES: &str = "a core index from 1 to 63";
const CRASH_VALUES: &str =
    "one of pagefault, divide, panic, nested-panic, stackoverflow, panic-other-core";
const BENCH_VALUES: &str = "api";
const APP_CONFLICT: &str = "app= runs one app, apps= several";
const MODE_CONFLICT: &str = "test, bench= and crash= each run instead of the apps: one at a time";
const IP_VALUES: &str = "ADDRESS/PREFIX[,ROUTER[,DNS]]: a host address (not in 0/8, 127/8 or 240/4), a prefix of 1 to 32 bits, a router on that network, a DNS server (10.0.2.15/24,10.0.2.2,10.0.2.3)";

/// Parses a kernel command line. An empty (or all-whitespace) line gives the defaults.
///
/// Words are separated by any amount of whitespace; each is `key` or `key=value` (the value
/// is everything after the first `=`). `log`, `app`, `apps`, `cores`, `ip`, `crash`, `bench`,
/// `smp.stall` and `test.after` need a value; `test` may stand alone (every test) or carry a
/// filter. A key may appear only once, `app` and `apps` not together, only one of `test`,
/// `bench` and `crash` (each runs instead of the apps), and `test.after` only with `test`.
/// Whether the
/// manifest's apps exist and its cores run is for the kernel to check
/// ([`Manifest::check_cores`]).
pub fn parse(cmdline: &str) -> Result<Options<'_>, CmdlineError<'_>> {
    let mut options = Options::default();
    // One flag per entry of KEYS: was the key given already?
    let mut seen = [false; KEYS.len()];
    // The `app=` or `apps=` word given so far (they exclude each other).
    let mut app_word: Option<&str> = None;
    // The `test`, `bench=` or `crash=` word given so far (each runs instead of the apps).
    let mut mode_word: Option<&str> = None;
    let mut test_after_word: Option<&str> = None;
    for word in cmdline.split_whitespace() {
        // The key runs to the first `=` (an ASCII byte, so a character boundary).
        let (key, value) = match word.bytes().position(|b| b == b'=') {
            Some(at) => (word.get(..at).unwrap_or(word), word.get(at + 1..)),
            None => (word, None),
        };
        let Some(key) = Key::from_name(key) else {
            return Err(CmdlineError::UnknownKey { word });
        };
        if core::mem::replace(&mut seen[key as usize], true) {
            return Err(CmdlineError::Duplicate { word });
        }
        let need = |expected: &'static str| match value {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(CmdlineError::MissingValue { word, expected }),
        };
        // A number in 1..=most (`cores`: a count; `smp.stall`: an index, the last core's
        // being MAX_CORES - 1); `expected` describes it.
        let core_number = |expected: &'static str, most: usize| {
            parse_core_number(need(expected)?, most)
                .ok_or(CmdlineError::BadValue { word, expected })
        };
        let exclusive = match key {
            Key::App | Key::Apps => Some((&mut app_word, APP_CONFLICT)),
            Key::Test | Key::Bench | Key::Crash => Some((&mut mode_word, MODE_CONFLICT)),
            _ => None,
        };
        if let Some((given, why)) = exclusive {
            if let Some(earlier) = *given {
                return Err(CmdlineError::Conflict { word, earlier, why });
            }
            *given = Some(word);
        }
        match key {
            Key::Log => {
                let value = need(LOG_VALUES)?;
                options.log = LogLevel::from_name(value).ok_or(CmdlineError::BadValue {
                    word,
                    expected: LOG_VALUES,
                })?;
            }
            Key::App => {
                let value = need(APP_VALUES)?;
                if !valid_app_name(value) {
                    return Err(CmdlineError::BadValue {
                        word,
                        expected: APP_VALUES,
                    });
                }
                options.app = value;
            }
            Key::Apps => options.apps = Some(parse_manifest(word, need(APPS_VALUES)?)?),
            Key::Cores => options.cores = Some(core_number(CORES_VALUES, MAX_CORES)?),
            Key::Ip => {
                let value = need(IP_VALUES)?;
                options.ip = Some(parse_ipv4_config(value).map_err(|why| match why {
                    Some(why) => CmdlineError::BadAddress { word, why },
                    None => CmdlineError::BadValue {
                        word,
                        expected: IP_VALUES,
                    },
                })?);
            }
            Key::Test => options.test = Some(value.unwrap_or("")),
            Key::TestAfter => {
                options.test_after = Some(need(TEST_AFTER_VALUES)?);
                test_after_word = Some(word);
            }
            Key::Crash => {
                let value = need(CRASH_VALUES)?;
                options.crash = Some(Crash::from_name(value).ok_or(CmdlineError::BadValue {
                    word,
                    expected: CRASH_VALUES,
                })?);
            }
            Key::SmpStall => options.smp_stall = Some(core_number(STALL_VALUES, MAX_CORES - 1)?),
            Key::Bench => {
                let value = need(BENCH_VALUES)?;
                options.bench = Some(Bench::from_name(value).ok_or(CmdlineError::BadValue {
                    word,
                    expected: BENCH_VALUES,
                })?);
            }
        }
    }
    match test_after_word {
        Some(word) if options.test.is_none() => Err(CmdlineError::AfterWithoutTest { word }),
        _ => Ok(options),
    }
}

/// A key of the command line; its value is its index in [`KEYS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Log,
    App,
    Apps,
    Cores,
    Ip,
    Test,
    TestAfter,
    Crash,
    Bench,
    SmpStall,
}

impl Key {
    /// The key called `name` (one match, not a search of [`KEYS`]: less code at boot).
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "log" => Self::Log,
            "app" => Self::App,
            "apps" => Self::Apps,
            "cores" => Self::Cores,
            "ip" => Self::Ip,
            "test" => Self::Test,
            "test.after" => Self::TestAfter,
            "crash" => Self::Crash,
            "bench" => Self::Bench,
            "smp.stall" => Self::SmpStall,
            _ => return None,
        })
    }
}

/// A [`parse_decimal`] number in 1..=`most`.
fn parse_core_number(value: &str, most: usize) -> Option<usize> {
    let number = usize::try_from(parse_decimal(value)?).ok()?;
    (1..=most).contains(&number).then_some(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_manifest_run_has_an_owner() {
        // The image links 24 apps; the last run of a full manifest must still fit.
        for apps in [0, 24, 100] {
            for place in 0..MAX_MANIFEST_APPS {
                assert!(manifest_owner(apps, place) < owners_needed(apps));
            }
            assert!(apps < owners_needed(apps), "every app's own owner fits");
        }
    }

    #[test]
    fn every_key_is_its_index_in_keys() {
        for (index, name) in KEYS.iter().enumerate() {
            assert_eq!(Key::from_name(name).map(|key| key as usize), Some(index));
        }
        assert_eq!(Key::from_name("apps."), None);
        assert_eq!(Key::from_name(""), None);
    }

    #[test]
    fn the_value_runs_from_the_first_equals_sign() {
        let options = parse("test=a=b test.after=é=").unwrap();
        assert_eq!(options.test, Some("a=b"));
        assert_eq!(options.test_after, Some("é="));
        assert_eq!(parse("test=").unwrap().test, Some(""));
        let message = parse("é=1").unwrap_err().to_string();
        assert!(message.contains("`é=1`"), "{message}");
    }

    #[test]
    fn empty_gives_defaults() {
        let defaults = Options {
            log: LogLevel::Info,
            app: "hello",
            apps: None,
            cores: None,
            ip: None,
            test: None,
            test_after: None,
            crash: None,
            bench: None,
            smp_stall: None,
        };
        assert_eq!(parse(""), Ok(defaults));
        assert_eq!(parse(" \t\n  "), Ok(defaults));
    }

    #[test]
    fn every_key() {
        let options =
            parse("log=trace app=web-server_2 cores=4 ip=10.1.2.3/16 test=net test.after=net::arp smp.stall=3")
                .unwrap();
        assert_eq!(
            options,
            Options {
                log: LogLevel::Trace,
                app: "web-server_2",
                apps: None,
                cores: Some(4),
                ip: Some(Ipv4Config {
                    address: Ipv4Addr::new(10, 1, 2, 3),
                    prefix: 16,
                    router: None,
                    dns: None,
                }),
                test: Some("net"),
                test_after: Some("net::arp"),
                crash: None,
                bench: None,
                smp_stall: Some(3),
            }
        );
        assert_eq!(parse("crash=divide").unwrap().crash, Some(Crash::Divide));
        assert_eq!(parse("bench=api").unwrap().bench, Some(Bench::Api));
    }

    #[test]
    fn loopback_this_network_and_reserved_addresses_are_no_hosts() {
        let config = |address, prefix, router, dns| Ipv4Config {
            address,
            prefix,
            router,
            dns,
        };
        let in_no_host_block = |role: &str| {
            format!("the {role} is in 0/8, 127/8 (loopback) or 240/4, no host's address")
        };
        for address in [
            Ipv4Addr::new(127, 0, 0, 1),
            Ipv4Addr::new(0, 1, 2, 3),
            Ipv4Addr::new(240, 0, 0, 1),
            Ipv4Addr::new(254, 255, 255, 1),
        ] {
            let refused = config(address, 8, None, None).check();
            assert_eq!(
                refused.map_err(str::to_string),
                Err(in_no_host_block("address"))
            );
        }
        // A router on a /1 with a host's address: still none of these blocks.
        let address = Ipv4Addr::new(10, 0, 0, 1);
        let refused = config(address, 1, Some(Ipv4Addr::new(127, 0, 0, 1)), None).check();
        assert_eq!(
            refused.map_err(str::to_string),
            Err(in_no_host_block("router"))
        );
        let refused = config(address, 8, None, Some(Ipv4Addr::new(127, 0, 0, 53))).check();
        assert_eq!(
            refused.map_err(str::to_string),
            Err(in_no_host_block("DNS server"))
        );
        // Their neighbours are hosts' addresses.
        for address in [
            Ipv4Addr::new(1, 0, 0, 1),
            Ipv4Addr::new(126, 255, 255, 254),
            Ipv4Addr::new(128, 0, 0, 1),
            Ipv4Addr::new(223, 255, 255, 1),
        ] {
            assert_eq!(config(address, 32, None, Some(address)).check(), Ok(()));
        }
    }

    const NO_HOST_ADDRESS: &str =
        "the address is in 0/8, 127/8 (loopback) or 240/4, no host's address";
    const NO_HOST_DNS: &str =
        "the DNS server is in 0/8, 127/8 (loopback) or 240/4, no host's address";
    const NETWORK_DNS: &str = "the DNS server is the address's network's own or broadcast address";

    #[test]
    fn ip_values() {
        assert_eq!(
            parse("ip=10.0.2.15/24,10.0.2.2").unwrap().ip,
            Some(Ipv4Config {
                address: Ipv4Addr::new(10, 0, 2, 15),
                prefix: 24,
                router: Some(Ipv4Addr::new(10, 0, 2, 2)),
                dns: None,
            })
        );
        assert_eq!(parse("ip=192.168.1.9/32").unwrap().ip.unwrap().prefix, 32);
        // On /31 both addresses are hosts'; a router on a wide network; a DNS server anywhere.
        assert!(parse("ip=10.0.2.0/31,10.0.2.1").is_ok());
        assert!(parse("ip=10.0.2.255/16,10.0.0.1,8.8.8.8").is_ok());
        // Another network's first and last addresses, and on /31 and /32 the network's
        // own, are hosts' addresses a DNS server may have.
        assert!(parse("ip=10.0.2.15/24,10.0.2.2,10.0.3.255").is_ok());
        assert!(parse("ip=10.0.2.15/24,10.0.2.2,10.0.3.0").is_ok());
        assert!(parse("ip=10.0.2.0/31,10.0.2.1,10.0.2.1").is_ok());
        assert!(parse("ip=10.0.2.1/31,10.0.2.0,10.0.2.0").is_ok());
        let point_to_point = |address, prefix, dns| Ipv4Config {
            address,
            prefix,
            router: None,
            dns: Some(dns),
        };
        let (first, last) = (Ipv4Addr::new(10, 0, 2, 0), Ipv4Addr::new(10, 0, 2, 1));
        assert_eq!(point_to_point(last, 31, first).check(), Ok(()));
        assert_eq!(point_to_point(first, 31, last).check(), Ok(()));
        assert_eq!(point_to_point(last, 32, last).check(), Ok(()));
        assert_eq!(
            parse("ip=10.0.2.15/24,10.0.2.2,10.0.2.3")
                .unwrap()
                .ip
                .unwrap()
                .dns,
            Some(Ipv4Addr::new(10, 0, 2, 3))
        );
        for word in [
            "ip=10.0.2.15",
            "ip=10.0.2.15/",
            "ip=10.0.2.15/+8",
            "ip=10.0.2.256/24",
            "ip=10.0.2.15/24,",
            "ip=10.0.2.15/24,router",
            "ip=10.0.2.15/24,10.0.2.2,10.0.2.3,10.0.2.4",
            "ip=10.0.2.15/24,10.0.2.2,dns",
            "ip=dhcp",
        ] {
            assert_eq!(
                parse(word),
                Err(CmdlineError::BadValue {
                    word,
                    expected: IP_VALUES
                }),
                "{word}"
            );
        }
        // Of the right form, refused by `Ipv4Config::check`, whose reason the message gives.
        for (word, why) in [
            ("ip=10.0.2.15/0", "the prefix is not 1 to 32 bits"),
            ("ip=10.0.2.15/33", "the prefix is not 1 to 32 bits"),
            ("ip=0.0.0.0/24", "the address is not a unicast host address"),
            (
                "ip=255.255.255.255/24",
                "the address is not a unicast host address",
            ),
            (
                "ip=224.0.0.1/4",
                "the address is not a unicast host address",
            ),
            (
                "ip=10.0.2.15/24,10.0.2.2,0.0.0.0",
                "the DNS server is not a unicast host address",
            ),
            // The router is off the network, or the address itself.
            (
                "ip=10.0.2.15/24,10.0.3.1",
                "the router is not a host of the address's network",
            ),
            (
                "ip=10.0.2.15/24,10.0.2.15",
                "the router is the address itself",
            ),
            // The network's own first and last addresses are not a host's.
            (
                "ip=10.0.2.0/24",
                "the address is its network's own or broadcast address",
            ),
            (
                "ip=10.0.2.255/24,10.0.2.2",
                "the address is its network's own or broadcast address",
            ),
            (
                "ip=10.0.2.15/24,10.0.2.255",
                "the router is not a host of the address's network",
            ),
            // Loopback, "this network" and reserved addresses are no host's.
            ("ip=127.0.0.1/8", NO_HOST_ADDRESS),
            ("ip=0.0.0.1/8", NO_HOST_ADDRESS),
            ("ip=240.0.0.1/8", NO_HOST_ADDRESS),
            ("ip=10.0.2.15/24,10.0.2.2,127.0.0.53", NO_HOST_DNS),
            // The DNS server is the network's own or (directed) broadcast address.
            ("ip=10.0.2.15/24,10.0.2.2,10.0.2.255", NETWORK_DNS),
            ("ip=10.0.2.15/24,10.0.2.2,10.0.2.0", NETWORK_DNS),
            ("ip=10.0.2.15/16,10.0.2.2,10.0.255.255", NETWORK_DNS),
        ] {
            assert_eq!(
                parse(word),
                Err(CmdlineError::BadAddress { word, why }),
                "{word}"
            );
        }
        let message = parse("ip=10.0.2.0/24").unwrap_err().to_string();
        assert!(
            message.contains("`ip=10.0.2.0/24`: the address is its network's own")
                && message.contains(IP_VALUES),
            "{message}"
        );
        assert!(matches!(
            parse("ip"),
            Err(CmdlineError::MissingValue { .. })
        ));
        assert!(matches!(
            parse("ip=10.0.0.1/8 ip=10.0.0.2/8"),
            Err(CmdlineError::Duplicate { .. })
        ));
    }

    #[test]
    fn bench_values() {
        assert_eq!(parse("bench=api").unwrap().bench, Some(Bench::Api));
        assert_eq!(parse("app=hello").unwrap().bench, None);
        for name in Bench::NAMES {
            let word = ["bench=", name].concat();
            let bench = parse(&word).unwrap().bench.unwrap();
            assert_eq!(bench.name(), name);
        }
        for word in ["bench=boot", "bench=API", "bench=api2"] {
            assert_eq!(
                parse(word),
                Err(CmdlineError::BadValue {
                    word,
                    expected: BENCH_VALUES
                }),
                "{word}"
            );
        }
        for word in ["bench", "bench="] {
            assert_eq!(
                parse(word),
                Err(CmdlineError::MissingValue {
                    word,
                    expected: BENCH_VALUES
                })
            );
        }
        assert_eq!(
            parse("bench=api bench=api"),
            Err(CmdlineError::Duplicate { word: "bench=api" })
        );
        let message = parse("bench=fast").unwrap_err().to_string();
        assert!(
            message.contains("`bench=fast`") && message.contains("api"),
            "{message}"
        );
    }

    #[test]
    fn any_whitespace_separates() {
        let options = parse("\t log=debug \n\n   cores=2\r\n").unwrap();
        assert_eq!(options.log, LogLevel::Debug);
        assert_eq!(options.cores, Some(2));
        assert_eq!(options.app, "hello");
    }

    #[test]
    fn all_log_levels_and_crashes() {
        for (name, level) in LogLevel::NAMES.iter().zip([
            LogLevel::Error,
            LogLevel::Warn,
            LogLevel::Info,
            LogLevel::Debug,
            LogLevel::Trace,
        ]) {
            let word = ["log=", name].concat();
            assert_eq!(parse(&word).unwrap().log, level);
            assert_eq!(level.name(), *name);
        }
        for (name, crash) in Crash::NAMES.iter().zip([
            Crash::PageFault,
            Crash::Divide,
            Crash::Panic,
            Crash::NestedPanic,
            Crash::StackOverflow,
            Crash::PanicOnOtherCore,
        ]) {
            let word = ["crash=", name].concat();
            assert_eq!(parse(&word).unwrap().crash, Some(crash));
            assert_eq!(crash.name(), *name);
        }
        assert!(LogLevel::Error < LogLevel::Trace);
    }

    #[test]
    fn test_alone_means_every_test() {
        assert_eq!(parse("test").unwrap().test, Some(""));
        assert_eq!(parse("test=").unwrap().test, Some(""));
        assert_eq!(parse("test=mem").unwrap().test, Some("mem"));
        // The value is everything after the first '='.
        assert_eq!(parse("test=a=b").unwrap().test, Some("a=b"));
    }

    #[test]
    fn cores_limits() {
        assert_eq!(parse("cores=1").unwrap().cores, Some(1));
        assert_eq!(parse("cores=64").unwrap().cores, Some(64));
        for word in [
            "cores=0",
            "cores=65",
            "cores=x",
            "cores=+4",
            "cores=-1",
            "cores=4x",
            "cores=99999999999999999999999",
        ] {
            assert_eq!(
                parse(word),
                Err(CmdlineError::BadValue {
                    word,
                    expected: CORES_VALUES
                }),
                "{word}"
            );
        }
    }

    /// One rule for every number of the command line, as for the octets of an address:
    /// `0` alone, but no leading zeros.
    #[test]
    fn numbers_have_no_leading_zeros() {
        for word in ["cores=064", "cores=01", "smp.stall=07", "ip=10.0.2.15/024"] {
            assert!(
                matches!(parse(word), Err(CmdlineError::BadValue { .. })),
                "{word}"
            );
        }
        assert!(parse("ip=010.0.2.15/24").is_err());
        for (entry, problem) in [
            ("hello:007:8M", ManifestProblem::BadCores),
            ("hello:07:8M", ManifestProblem::BadCores),
            ("hello:0-01:8M", ManifestProblem::BadCores),
            ("hello:0:08M", ManifestProblem::BadQuota),
            ("hello:0:0064", ManifestProblem::BadQuota),
        ] {
            let line = format!("apps={entry}");
            assert_eq!(manifest_error(&line), (entry, problem), "{line}");
        }
        let options = parse("apps=hello:0:8M,hello:10-20:1G").unwrap();
        let entries: Vec<_> = options.apps.unwrap().entries().collect();
        assert_eq!((entries[0].first_core, entries[0].quota), (0, 8 << 20));
        assert_eq!((entries[1].first_core, entries[1].cores), (10, 11));
        assert_eq!(parse("cores=10").unwrap().cores, Some(10));
        assert_eq!(parse("ip=10.0.2.15/20").unwrap().ip.unwrap().prefix, 20);
    }

    #[test]
    fn stall_takes_a_core_index() {
        assert_eq!(parse("smp.stall=1").unwrap().smp_stall, Some(1));
        assert_eq!(parse("smp.stall=63").unwrap().smp_stall, Some(63));
        for word in ["smp.stall=0", "smp.stall=64", "smp.stall=65", "smp.stall=x"] {
            assert_eq!(
                parse(word),
                Err(CmdlineError::BadValue {
                    word,
                    expected: STALL_VALUES
                }),
                "{word}"
            );
        }
        let message = parse("smp.stall=64").unwrap_err().to_string();
        assert!(message.contains("1 to 63"), "{message}");
    }

    #[test]
    fn bad_values() {
        assert_eq!(
            parse("log=loud"),
            Err(CmdlineError::BadValue {
                word: "log=loud",
                expected: LOG_VALUES
            })
        );
        assert_eq!(
            parse("log=INFO"),
            Err(CmdlineError::BadValue {
                word: "log=INFO",
                expected: LOG_VALUES
            })
        );
        assert_eq!(
            parse("crash=explode"),
            Err(CmdlineError::BadValue {
                word: "crash=explode",
                expected: CRASH_VALUES
            })
        );
        assert_eq!(
            parse("app=../etc"),
            Err(CmdlineError::BadValue {
                word: "app=../etc",
                expected: APP_VALUES
            })
        );
    }

    #[test]
    fn missing_values() {
        for (word, expected) in [
            ("app", APP_VALUES),
            ("app=", APP_VALUES),
            ("cores", CORES_VALUES),
            ("log", LOG_VALUES),
            ("log=", LOG_VALUES),
            ("crash", CRASH_VALUES),
            ("test.after", TEST_AFTER_VALUES),
            ("test.after=", TEST_AFTER_VALUES),
            ("smp.stall", STALL_VALUES),
        ] {
            assert_eq!(
                parse(word),
                Err(CmdlineError::MissingValue { word, expected }),
                "{word}"
            );
        }
    }

    #[test]
    fn unknown_keys() {
        for word in ["verbose", "=x", "LOG=info", "test.before=x", "cores2=1"] {
            let line = ["log=warn ", word].concat();
            assert_eq!(parse(&line), Err(CmdlineError::UnknownKey { word }));
        }
    }

    #[test]
    fn duplicates() {
        assert_eq!(
            parse("log=info log=debug"),
            Err(CmdlineError::Duplicate { word: "log=debug" })
        );
        assert_eq!(
            parse("test test=x"),
            Err(CmdlineError::Duplicate { word: "test=x" })
        );
        // `test` and `test.after` are different keys.
        assert!(parse("test test.after=x").is_ok());
    }

    #[test]
    fn first_error_wins() {
        assert_eq!(
            parse("nope log=loud"),
            Err(CmdlineError::UnknownKey { word: "nope" })
        );
    }

    #[test]
    fn messages_name_the_word_and_the_choices() {
        let message = parse("colour=red").unwrap_err().to_string();
        assert!(message.contains("`colour=red`"), "{message}");
        for key in KEYS {
            assert!(message.contains(key), "{message}");
        }
        let message = parse("log=loud").unwrap_err().to_string();
        assert!(message.contains("`log=loud`"), "{message}");
        for name in LogLevel::NAMES {
            assert!(message.contains(name), "{message}");
        }
        let message = parse("crash").unwrap_err().to_string();
        assert!(message.contains("`crash`"), "{message}");
        for name in Crash::NAMES {
            assert!(message.contains(name), "{message}");
        }
        let message = parse("cores=1 cores=2").unwrap_err().to_string();
        assert!(message.contains("`cores=2`"), "{message}");
        let message = parse("cores=0").unwrap_err().to_string();
        assert!(message.contains("1 to 64"), "{message}");
    }

    fn manifest_error(line: &str) -> (&str, ManifestProblem) {
        match parse(line) {
            Err(CmdlineError::Manifest { entry, problem, .. }) => (entry, problem),
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn manifest_entries() {
        let options = parse("log=debug apps=hello:0-1:8M,monitor:2:512K,c-cores:3-5:1G").unwrap();
        assert_eq!(options.app, DEFAULT_APP);
        let manifest = options.apps.unwrap();
        assert_eq!(manifest.len(), 3);
        assert!(!manifest.is_empty());
        let entries: Vec<_> = manifest.entries().collect();
        assert_eq!(
            entries,
            [
                ManifestEntry {
                    text: "hello:0-1:8M",
                    name: "hello",
                    first_core: 0,
                    cores: 2,
                    quota: 8 << 20
                },
                ManifestEntry {
                    text: "monitor:2:512K",
                    name: "monitor",
                    first_core: 2,
                    cores: 1,
                    quota: 512 << 10
                },
                ManifestEntry {
                    text: "c-cores:3-5:1G",
                    name: "c-cores",
                    first_core: 3,
                    cores: 3,
                    quota: 1 << 30
                },
            ]
        );
        // The same app twice, plain bytes, the last core index.
        let manifest = parse("apps=hello:0:4096,hello:63:1").unwrap().apps.unwrap();
        let entries: Vec<_> = manifest.entries().collect();
        assert_eq!(entries[0].quota, 4096);
        assert_eq!((entries[1].first_core, entries[1].cores), (63, 1));
    }

    #[test]
    fn manifest_cores_must_run() {
        let manifest = parse("apps=hello:0-1:8M,hello:2-3:8M")
            .unwrap()
            .apps
            .unwrap();
        assert_eq!(manifest.check_cores(4), Ok(()));
        assert_eq!(manifest.check_cores(64), Ok(()));
        let error = manifest.check_cores(3).unwrap_err();
        assert_eq!(
            error,
            CmdlineError::Manifest {
                word: "apps=hello:0-1:8M,hello:2-3:8M",
                entry: "hello:2-3:8M",
                problem: ManifestProblem::CoreNotRunning { running: 3 }
            }
        );
        let message = error.to_string();
        assert!(
            message.contains("`hello:2-3:8M`") && message.contains("3 running cores (0-2)"),
            "{message}"
        );
        assert!(manifest.check_cores(1).is_err());
        assert!(manifest.check_cores(0).is_err());
    }

    #[test]
    fn manifest_overlap() {
        for (line, entry) in [
            ("apps=hello:0-1:8M,hello:1-2:8M", "hello:1-2:8M"),
            ("apps=a:0-3:8M,b:2:8M", "b:2:8M"),
            ("apps=a:5:8M,b:0-9:8M", "b:0-9:8M"),
            ("apps=a:0:8M,b:1:8M,c:0-63:1K", "c:0-63:1K"),
        ] {
            assert_eq!(
                manifest_error(line),
                (entry, ManifestProblem::Overlap),
                "{line}"
            );
        }
        let message = parse("apps=hello:0-1:8M,hello:1-2:8M")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("`hello:1-2:8M`") && message.contains("overlap"),
            "{message}"
        );
    }

    #[test]
    fn manifest_bad_syntax() {
        for (line, entry, problem) in [
            ("apps=hello", "hello", ManifestProblem::Syntax),
            ("apps=hello:0-1", "hello:0-1", ManifestProblem::Syntax),
            ("apps=hello:0:8M:x", "hello:0:8M:x", ManifestProblem::Syntax),
            ("apps=hello:0:8M,", "", ManifestProblem::Syntax),
            ("apps=,hello:0:8M", "", ManifestProblem::Syntax),
            ("apps=:0:8M", ":0:8M", ManifestProblem::BadName),
            ("apps=../x:0:8M", "../x:0:8M", ManifestProblem::BadName),
            ("apps=hello::8M", "hello::8M", ManifestProblem::BadCores),
            ("apps=hello:1-:8M", "hello:1-:8M", ManifestProblem::BadCores),
            ("apps=hello:-1:8M", "hello:-1:8M", ManifestProblem::BadCores),
            (
                "apps=hello:3-1:8M",
                "hello:3-1:8M",
                ManifestProblem::BadCores,
            ),
            (
                "apps=hello:0-64:8M",
                "hello:0-64:8M",
                ManifestProblem::BadCores,
            ),
            ("apps=hello:+1:8M", "hello:+1:8M", ManifestProblem::BadCores),
            (
                "apps=hello:007:8M",
                "hello:007:8M",
                ManifestProblem::BadCores,
            ),
            ("apps=hello:0:", "hello:0:", ManifestProblem::BadQuota),
            ("apps=hello:0:M", "hello:0:M", ManifestProblem::BadQuota),
            ("apps=hello:0:8T", "hello:0:8T", ManifestProblem::BadQuota),
            ("apps=hello:0:8m", "hello:0:8m", ManifestProblem::BadQuota),
            ("apps=hello:0:-8M", "hello:0:-8M", ManifestProblem::BadQuota),
            (
                "apps=hello:0:99999999999999999999",
                "hello:0:99999999999999999999",
                ManifestProblem::BadQuota,
            ),
            (
                "apps=hello:0:17179869184G",
                "hello:0:17179869184G",
                ManifestProblem::BadQuota,
            ),
            ("apps=hello:0:0", "hello:0:0", ManifestProblem::ZeroQuota),
            ("apps=hello:0:0M", "hello:0:0M", ManifestProblem::ZeroQuota),
            (
                "apps=a:0:1K,a:1:1K,a:2:1K,a:3:1K,a:4:1K,a:5:1K,a:6:1K,a:7:1K,a:8:1K",
                "",
                ManifestProblem::TooManyEntries,
            ),
        ] {
            assert_eq!(manifest_error(line), (entry, problem), "{line}");
        }
        for word in ["apps", "apps="] {
            assert_eq!(
                parse(word),
                Err(CmdlineError::MissingValue {
                    word,
                    expected: APPS_VALUES
                })
            );
        }
        let message = parse("apps=hello:0:0").unwrap_err().to_string();
        assert!(
            message.contains("`apps=hello:0:0`") && message.contains("zero"),
            "{message}"
        );
        let message = parse("apps=hello").unwrap_err().to_string();
        assert!(message.contains("NAME:CORES:MEMORY"), "{message}");
    }

    #[test]
    fn app_and_apps_exclude_each_other() {
        assert_eq!(
            parse("app=hello apps=hello:0:8M"),
            Err(CmdlineError::Conflict {
                word: "apps=hello:0:8M",
                earlier: "app=hello",
                why: APP_CONFLICT,
            })
        );
        assert_eq!(
            parse("apps=hello:0:8M log=info app=monitor"),
            Err(CmdlineError::Conflict {
                word: "app=monitor",
                earlier: "apps=hello:0:8M",
                why: APP_CONFLICT,
            })
        );
        assert_eq!(
            parse("apps=hello:0:8M apps=hello:1:8M"),
            Err(CmdlineError::Duplicate {
                word: "apps=hello:1:8M"
            })
        );
        let message = parse("app=hello apps=hello:0:8M").unwrap_err().to_string();
        assert!(
            message.contains("`apps=hello:0:8M`") && message.contains("`app=hello`"),
            "{message}"
        );
    }

    /// `test`, `bench=` and `crash=` each replace the apps' run, and the kernel takes
    /// only the first of them it looks at: a second one would be ignored without a word.
    #[test]
    fn test_bench_and_crash_exclude_each_other() {
        for (line, word, earlier) in [
            ("test bench=api", "bench=api", "test"),
            ("crash=panic log=info test=net", "test=net", "crash=panic"),
            ("bench=api crash=divide", "crash=divide", "bench=api"),
        ] {
            assert_eq!(
                parse(line),
                Err(CmdlineError::Conflict {
                    word,
                    earlier,
                    why: MODE_CONFLICT,
                }),
                "{line}"
            );
        }
        let message = parse("test=heap crash=panic").unwrap_err().to_string();
        assert!(
            message.contains("`crash=panic`") && message.contains("`test=heap`"),
            "{message}"
        );
        assert!(parse("app=hello crash=panic smp.stall=2").is_ok());
    }

    /// `test.after=` alone would be ignored and the app run instead of the tests.
    #[test]
    fn test_after_needs_test() {
        assert_eq!(
            parse("test.after=heap::grows app=hello"),
            Err(CmdlineError::AfterWithoutTest {
                word: "test.after=heap::grows"
            })
        );
        let message = parse("test.after=x").unwrap_err().to_string();
        assert!(
            message.contains("`test.after=x`") && message.contains("needs `test`"),
            "{message}"
        );
        assert_eq!(parse("test.after=x test").unwrap().test_after, Some("x"));
    }
}
