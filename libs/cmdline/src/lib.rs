//! The kernel command line: `key` or `key=value` words separated by whitespace.
//!
//! The words are listed in `docs/kernel-interface.md` ("Kernel command line"). [`parse`] turns
//! the line into [`Options`] without allocating: string values borrow from the input. A word
//! that is not understood gives a [`CmdlineError`] whose `Display` names the word and lists what
//! would have been accepted, so that the kernel can print it and stop the boot.
#![cfg_attr(target_os = "none", no_std)]

use core::fmt;

/// The most cores the kernel runs, and so the largest value `cores=` accepts.
pub const MAX_CORES: usize = 64;

/// Every key the command line knows, in the order of the documentation table.
pub const KEYS: [&str; 7] = [
    "log",
    "app",
    "cores",
    "test",
    "test.after",
    "crash",
    "bench",
];

/// The application run when `app=` is not given.
pub const DEFAULT_APP: &str = "hello";

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
    /// Recurse until the stack runs into its guard page.
    StackOverflow,
    /// Call `panic!` in a task on the last core (not the boot core).
    PanicOnOtherCore,
}

impl Crash {
    /// The accepted `crash=` values.
    pub const NAMES: [&str; 5] = [
        "pagefault",
        "divide",
        "panic",
        "stackoverflow",
        "panic-other-core",
    ];

    /// The crash's name as written on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::PageFault => "pagefault",
            Self::Divide => "divide",
            Self::Panic => "panic",
            Self::StackOverflow => "stackoverflow",
            Self::PanicOnOtherCore => "panic-other-core",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "pagefault" => Self::PageFault,
            "divide" => Self::Divide,
            "panic" => Self::Panic,
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

/// The parsed command line. String values borrow from the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options<'a> {
    /// Console log level (`log=`, default [`LogLevel::Info`]).
    pub log: LogLevel,
    /// The app to run after boot (`app=`, default [`DEFAULT_APP`]).
    pub app: &'a str,
    /// Use at most this many cores (`cores=`, 1..=[`MAX_CORES`]); `None`: all of them.
    pub cores: Option<usize>,
    /// Run the kernel tests whose names contain this filter instead of the app (`test` or
    /// `test=FILTER`); `Some("")` runs every test, `None` runs the app.
    pub test: Option<&'a str>,
    /// Skip the tests up to and including this one (`test.after=NAME`).
    pub test_after: Option<&'a str>,
    /// Provoke this crash after boot (`crash=`).
    pub crash: Option<Crash>,
    /// Run this benchmark instead of the app (`bench=`).
    pub bench: Option<Bench>,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Self {
            log: LogLevel::Info,
            app: DEFAULT_APP,
            cores: None,
            test: None,
            test_after: None,
            crash: None,
            bench: None,
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
        }
    }
}

impl core::error::Error for CmdlineError<'_> {}

const LOG_VALUES: &str = "one of error, warn, info, debug, trace";
const APP_VALUES: &str = "an app name (letters, digits, '-', '_')";
const CORES_VALUES: &str = "a decimal number from 1 to 64";
const TEST_AFTER_VALUES: &str = "a test name";
const CRASH_VALUES: &str = "one of pagefault, divide, panic, stackoverflow, panic-other-core";
const BENCH_VALUES: &str = "api";

/// Parses a kernel command line. An empty (or all-whitespace) line gives the defaults.
///
/// Words are separated by any amount of whitespace; each is `key` or `key=value` (the value
/// is everything after the first `=`). `log`, `app`, `cores`, `crash`, `bench` and `test.after` need a
/// value; `test` may stand alone (every test) or carry a filter. A key may appear only once.
pub fn parse(cmdline: &str) -> Result<Options<'_>, CmdlineError<'_>> {
    let mut options = Options::default();
    // One flag per entry of KEYS: was the key given already?
    let mut seen = [false; KEYS.len()];
    for word in cmdline.split_whitespace() {
        let (key, value) = match word.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (word, None),
        };
        let Some(index) = KEYS.iter().position(|known| *known == key) else {
            return Err(CmdlineError::UnknownKey { word });
        };
        if core::mem::replace(&mut seen[index], true) {
            return Err(CmdlineError::Duplicate { word });
        }
        let need = |expected: &'static str| match value {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(CmdlineError::MissingValue { word, expected }),
        };
        match key {
            "log" => {
                let value = need(LOG_VALUES)?;
                options.log = LogLevel::from_name(value).ok_or(CmdlineError::BadValue {
                    word,
                    expected: LOG_VALUES,
                })?;
            }
            "app" => {
                let value = need(APP_VALUES)?;
                if !value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Err(CmdlineError::BadValue {
                        word,
                        expected: APP_VALUES,
                    });
                }
                options.app = value;
            }
            "cores" => {
                let value = need(CORES_VALUES)?;
                let cores = parse_cores(value).ok_or(CmdlineError::BadValue {
                    word,
                    expected: CORES_VALUES,
                })?;
                options.cores = Some(cores);
            }
            "test" => options.test = Some(value.unwrap_or("")),
            "test.after" => options.test_after = Some(need(TEST_AFTER_VALUES)?),
            "crash" => {
                let value = need(CRASH_VALUES)?;
                options.crash = Some(Crash::from_name(value).ok_or(CmdlineError::BadValue {
                    word,
                    expected: CRASH_VALUES,
                })?);
            }
            _ => {
                // The only key left in KEYS.
                let value = need(BENCH_VALUES)?;
                options.bench = Some(Bench::from_name(value).ok_or(CmdlineError::BadValue {
                    word,
                    expected: BENCH_VALUES,
                })?);
            }
        }
    }
    Ok(options)
}

/// A plain decimal number in 1..=MAX_CORES (no sign, no spaces).
fn parse_cores(value: &str) -> Option<usize> {
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let cores: usize = value.parse().ok()?;
    (1..=MAX_CORES).contains(&cores).then_some(cores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_gives_defaults() {
        let defaults = Options {
            log: LogLevel::Info,
            app: "hello",
            cores: None,
            test: None,
            test_after: None,
            crash: None,
            bench: None,
        };
        assert_eq!(parse(""), Ok(defaults));
        assert_eq!(parse(" \t\n  "), Ok(defaults));
    }

    #[test]
    fn every_key() {
        let options =
            parse("log=trace app=web-server_2 cores=4 test=net test.after=net::arp crash=divide bench=api")
                .unwrap();
        assert_eq!(
            options,
            Options {
                log: LogLevel::Trace,
                app: "web-server_2",
                cores: Some(4),
                test: Some("net"),
                test_after: Some("net::arp"),
                crash: Some(Crash::Divide),
                bench: Some(Bench::Api),
            }
        );
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
}
