//! The ready line, `rexo: ready cores=N mem=M MiB boot=T us`: the kernel prints it once,
//! when boot is complete, and tools and tests read it (docs/kernel-interface.md). Both
//! sides use this crate, so the format is written down once.
//!
//! [`Ready::text`] writes the line without `core::fmt`. Under emulation (QEMU's TCG)
//! each piece of guest code costs its translation the first time it runs, and the ready
//! line is the boot's first formatted text: through `core::fmt` it translated the
//! formatting machinery before the line could go out (about 0.5 ms of `boot=` under
//! TCG; docs/boot.md). The boot report is formatted after it.

#![cfg_attr(target_os = "none", no_std)]

/// What the ready line says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ready {
    /// Cores running the work loop.
    pub cores: u32,
    /// Usable RAM in MiB.
    pub mem_mib: u64,
    /// Microseconds from the kernel's first instruction to this line.
    pub boot_us: u64,
}

/// The words before the numbers.
const PREFIX: &str = "rexo: ready ";

/// Bytes of the longest ready line, its line end included.
const MAX_LEN: usize = 96;

/// A ready line's text ([`Ready::text`]).
pub struct Text {
    bytes: [u8; MAX_LEN],
    len: usize,
}

impl Text {
    /// The line, ending in `\n`.
    pub fn as_str(&self) -> &str {
        // Only ASCII was written (`push`), so the bytes are UTF-8.
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }

    fn push(&mut self, text: &str) {
        self.bytes[self.len..self.len + text.len()].copy_from_slice(text.as_bytes());
        self.len += text.len();
    }

    fn push_decimal(&mut self, mut value: u64) {
        let mut digits = [0u8; 20];
        let mut first = digits.len();
        loop {
            first -= 1;
            digits[first] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        for &digit in &digits[first..] {
            self.bytes[self.len] = digit;
            self.len += 1;
        }
    }
}

impl Ready {
    /// The line the kernel prints, with its line end.
    pub fn text(&self) -> Text {
        let mut text = Text {
            bytes: [0; MAX_LEN],
            len: 0,
        };
        text.push(PREFIX);
        text.push("cores=");
        text.push_decimal(u64::from(self.cores));
        text.push(" mem=");
        text.push_decimal(self.mem_mib);
        text.push(" MiB boot=");
        text.push_decimal(self.boot_us);
        text.push(" us\n");
        text
    }

    /// The ready line in `line` (anywhere in it, as in a log line that carries a prefix),
    /// if it holds one.
    pub fn parse(line: &str) -> Option<Ready> {
        let rest = &line[line.find(PREFIX)? + PREFIX.len()..];
        let mut words = rest.split_whitespace();
        let cores = decimal(words.next()?.strip_prefix("cores=")?)?;
        let mem_mib = decimal(words.next()?.strip_prefix("mem=")?)?;
        if words.next()? != "MiB" {
            return None;
        }
        let boot_us = decimal(words.next()?.strip_prefix("boot=")?)?;
        if words.next()? != "us" {
            return None;
        }
        Some(Ready {
            cores,
            mem_mib,
            boot_us,
        })
    }
}

/// A number as [`Ready::text`] writes it: decimal digits only (no sign, which `str::parse`
/// would take).
fn decimal<T: core::str::FromStr>(digits: &str) -> Option<T> {
    if digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_is_the_documented_line() {
        let ready = Ready {
            cores: 8,
            mem_mib: 255,
            boot_us: 6_597,
        };
        assert_eq!(
            ready.text().as_str(),
            "rexo: ready cores=8 mem=255 MiB boot=6597 us\n"
        );
        let zero = Ready {
            cores: 0,
            mem_mib: 0,
            boot_us: 0,
        };
        assert_eq!(
            zero.text().as_str(),
            "rexo: ready cores=0 mem=0 MiB boot=0 us\n"
        );
    }

    #[test]
    fn the_longest_line_fits_and_reads_back() {
        let ready = Ready {
            cores: u32::MAX,
            mem_mib: u64::MAX,
            boot_us: u64::MAX,
        };
        let text = ready.text();
        assert!(text.as_str().ends_with(" boot=18446744073709551615 us\n"));
        assert_eq!(Ready::parse(text.as_str()), Some(ready));
    }

    #[test]
    fn parse_reads_the_line_inside_a_log_line() {
        let line = "[ 12 us c0] rexo: ready cores=4 mem=1023 MiB boot=8123 us";
        assert_eq!(
            Ready::parse(line),
            Some(Ready {
                cores: 4,
                mem_mib: 1023,
                boot_us: 8123
            })
        );
    }

    #[test]
    fn parse_refuses_what_is_not_a_ready_line() {
        for line in [
            "rexo: booted by GRUB",
            "rexo: ready",
            "rexo: tests done passed=3",
            "rexo: ready cores=x mem=1 MiB boot=1 us",
            "rexo: ready cores=1 mem=1 KiB boot=1 us",
            "rexo: ready cores=1 mem=1 MiB boot=1 ms",
            "rexo: ready cores=1 mem=1 MiB boot=1",
            "rexo: ready mem=1 MiB cores=1 boot=1 us",
            "rexo: ready cores=-1 mem=1 MiB boot=1 us",
            "rexo: ready cores=+8 mem=1 MiB boot=1 us",
            "rexo: ready cores=8 mem=+1 MiB boot=1 us",
            "rexo: ready cores=8 mem=1 MiB boot=+1 us",
        ] {
            assert_eq!(Ready::parse(line), None, "{line}");
        }
    }
}
