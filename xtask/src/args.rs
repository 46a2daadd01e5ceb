//! Hand-written command-line parsing: flags with values, sizes and numbers.

use crate::Result;
use std::collections::VecDeque;
use std::str::FromStr;

/// The remaining words of one command's command line.
pub struct Args {
    command: &'static str,
    valid: &'static [&'static str],
    words: VecDeque<String>,
}

impl Args {
    /// Wraps `words` for `command`, whose flags are `valid` (for error messages).
    pub fn new(command: &'static str, valid: &'static [&'static str], words: Vec<String>) -> Self {
        Self {
            command,
            valid,
            words: words.into(),
        }
    }

    /// The next word, if any.
    pub fn next_word(&mut self) -> Option<String> {
        self.words.pop_front()
    }

    /// Everything left (after `--`).
    pub fn rest(&mut self) -> Vec<String> {
        self.words.drain(..).collect()
    }

    /// The value that must follow `flag`.
    pub fn value(&mut self, flag: &str) -> Result<String> {
        self.words
            .pop_front()
            .ok_or_else(|| format!("`{} {flag}` needs a value", self.command))
    }

    /// The value after `flag`, parsed as a number.
    pub fn number<T: FromStr>(&mut self, flag: &str) -> Result<T> {
        let text = self.value(flag)?;
        text.parse()
            .map_err(|_| format!("`{flag} {text}`: expected a number"))
    }

    /// The value after `flag`, which must be one of `choices`.
    pub fn choice(&mut self, flag: &str, choices: &[&str]) -> Result<String> {
        let text = self.value(flag)?;
        if choices.contains(&text.as_str()) {
            Ok(text)
        } else {
            Err(format!(
                "`{flag} {text}`: valid values are {}",
                choices.join(", ")
            ))
        }
    }

    /// The error for a word that is not one of this command's flags (or, for a command
    /// without flags, that it takes none).
    pub fn unknown(&self, word: &str) -> String {
        if self.valid.is_empty() {
            return format!(
                "`cargo xtask {}` takes no flags, got `{word}`",
                self.command
            );
        }
        format!(
            "`cargo xtask {}` has no flag `{word}`; valid flags: {}",
            self.command,
            self.valid.join(" ")
        )
    }
}

/// The error for a `disk` or `fs` line that stops short: `shape` is the whole line as its
/// usage writes it (`["disk", "create", "IMAGE", "SIZE"]`), of which the words from
/// `given` on were not given; it names them, as [`Args::value`] names a flag's value.
pub fn missing(shape: &[&str], given: usize) -> String {
    let lacking = &shape[given.min(shape.len())..];
    let named = match lacking {
        [] => return format!("`cargo xtask {}`: nothing is missing", shape.join(" ")),
        [one] => format!("{one} is"),
        [first @ .., last] => format!("{} and {last} are", first.join(", ")),
    };
    format!("`cargo xtask {}`: {named} missing", shape.join(" "))
}

/// Parses a size, the one parser of every command's sizes: digits, then a unit K, M, G
/// or T (powers of 1024; lower case, and `KiB` or `MB` and the like, too), `B` for
/// bytes, or none for `bare` (bytes for the disk tools, MiB for `--mem`); in bytes.
pub fn parse_bytes(text: &str, bare: u64) -> Result<u64> {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(digits_end);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size; use e.g. 64M, 256M, 1G or 6G"))?;
    let unit = unit.to_ascii_uppercase();
    let prefix = unit
        .strip_suffix("IB")
        .or_else(|| unit.strip_suffix('B'))
        .unwrap_or(&unit);
    let scale = match prefix {
        "" if unit.is_empty() => bare,
        "" if unit == "B" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(format!("`{text}`: the unit is K, M, G or T (64M, 1G)")),
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// Parses a memory size (`256M`, `1G`, `6GiB`, `4096K`, or a plain number of MiB)
/// into MiB ([`parse_bytes`], in whole MiB).
pub fn parse_size_mib(text: &str) -> Result<u64> {
    let bytes = parse_bytes(text, 1 << 20)?;
    if bytes == 0 {
        return Err(format!("memory size `{text}` is zero"));
    }
    if !bytes.is_multiple_of(1 << 20) {
        return Err(format!("memory size `{text}` is not a whole number of MiB"));
    }
    Ok(bytes >> 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Args {
        Args::new(
            "run",
            &["--cores", "--gdb"],
            words.iter().map(|w| w.to_string()).collect(),
        )
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size_mib("256M"), Ok(256));
        assert_eq!(parse_size_mib("256"), Ok(256));
        assert_eq!(parse_size_mib("1G"), Ok(1024));
        assert_eq!(parse_size_mib("6GiB"), Ok(6144));
        assert_eq!(parse_size_mib("8192K"), Ok(8));
        assert_eq!(parse_size_mib("1t"), Ok(1 << 20));
    }

    /// The disk tools and `--mem` read sizes with one parser: the disk tools refused the
    /// T that `--mem` took ("the unit is K, M or G"), and `--mem` the `MiB` spelled
    /// `mib`.
    #[test]
    fn every_size_takes_the_same_units() {
        assert_eq!(parse_bytes("1T", 1), Ok(1 << 40));
        assert_eq!(parse_bytes("2tib", 1), Ok(2 << 40));
        assert_eq!(parse_bytes("4096", 1), Ok(4096));
        assert_eq!(parse_bytes("64MiB", 1), Ok(64 << 20));
        assert!(parse_bytes("12X", 1).unwrap_err().contains("K, M, G or T"));
        assert_eq!(parse_bytes("512B", 1 << 20), Ok(512));
        assert!(
            parse_size_mib("512B")
                .unwrap_err()
                .contains("not a whole number of MiB")
        );
        for doubled in ["64MBB", "1GIBIB", "64IB", "8BB"] {
            assert!(
                parse_bytes(doubled, 1)
                    .unwrap_err()
                    .contains("K, M, G or T"),
                "{doubled} was taken"
            );
        }
        assert!(
            parse_bytes("99999999T", 1)
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn bad_sizes() {
        assert!(parse_size_mib("").is_err());
        assert!(parse_size_mib("G").is_err());
        assert!(parse_size_mib("12X").is_err());
        assert!(parse_size_mib("1000K").is_err());
        assert!(parse_size_mib("0").unwrap_err().contains("zero"));
        assert!(parse_size_mib("99999999999999999999T").is_err());
    }

    #[test]
    fn values_and_errors() {
        let mut a = args(&["--cores", "4", "--cores"]);
        assert_eq!(a.next_word().as_deref(), Some("--cores"));
        assert_eq!(a.number::<u32>("--cores"), Ok(4));
        assert_eq!(a.next_word().as_deref(), Some("--cores"));
        assert!(a.value("--cores").unwrap_err().contains("needs a value"));
        let mut a = args(&["four"]);
        assert!(a.number::<u32>("--cores").unwrap_err().contains("four"));
        let message = a.unknown("--frob");
        assert!(message.contains("--frob") && message.contains("--cores --gdb"));
    }

    /// A command without flags says so: it gave "valid flags: " and an empty list.
    #[test]
    fn a_command_without_flags_says_it_takes_none() {
        let build = Args::new("build", &[], Vec::new());
        assert_eq!(
            build.unknown("--frob"),
            "`cargo xtask build` takes no flags, got `--frob`"
        );
    }

    /// A line that stops short names the words it lacks.
    #[test]
    fn missing_words_are_named() {
        let shape = ["disk", "create", "IMAGE", "SIZE"];
        assert_eq!(
            missing(&shape, 3),
            "`cargo xtask disk create IMAGE SIZE`: SIZE is missing"
        );
        assert_eq!(
            missing(&shape, 2),
            "`cargo xtask disk create IMAGE SIZE`: IMAGE and SIZE are missing"
        );
        let get = ["fs", "IMAGE", "get", "PATH", "OUT"];
        assert!(missing(&get, 2).ends_with(": get, PATH and OUT are missing"));
    }

    #[test]
    fn choices() {
        let mut a = args(&["kvm", "xen"]);
        assert_eq!(a.choice("--accel", &["kvm", "tcg"]), Ok("kvm".to_string()));
        let err = a.choice("--accel", &["kvm", "tcg"]).unwrap_err();
        assert!(err.contains("xen") && err.contains("kvm, tcg"));
    }
}
