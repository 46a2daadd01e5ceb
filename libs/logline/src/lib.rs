//! An app's log line, formatted into a fixed buffer of the kernel's before the kernel
//! takes its console lock: the app's own `Display` code (which may log again, loop or
//! panic) then never runs while the lock is held. A line that does not fit is cut at a
//! character boundary and ends with [`CUT_MARKER`].

#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

use core::fmt;

/// What ends a line that was cut short.
pub const CUT_MARKER: &str = " [...]";

/// The longest app log line, in bytes: [`LogLine`]'s length unless said.
pub const APP_LINE_BYTES: usize = 512;

/// A line of at most `N` bytes (`N` must exceed [`CUT_MARKER`]'s length;
/// [`APP_LINE_BYTES`] unless said), filled through [`fmt::Write`]; writes past the room
/// are dropped and the line marked as cut.
pub struct LogLine<const N: usize = APP_LINE_BYTES> {
    bytes: [u8; N],
    len: usize,
    cut: bool,
}

impl<const N: usize> LogLine<N> {
    const ROOM: usize = N - CUT_MARKER.len();

    /// An empty line.
    pub const fn new() -> Self {
        Self {
            bytes: [0; N],
            len: 0,
            cut: false,
        }
    }

    /// Formats `args` into a new line (an error of the app's `Display` code ends the
    /// text where it happened).
    pub fn format(args: fmt::Arguments<'_>) -> Self {
        let mut line = Self::new();
        let _ = fmt::Write::write_fmt(&mut line, args);
        line
    }

    /// The text so far, with [`CUT_MARKER`] at its end if it was cut.
    pub fn as_str(&self) -> &str {
        // Only whole `str`s and prefixes cut at character boundaries are copied in.
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl<const N: usize> Default for LogLine<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for LogLine<N> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        if self.cut {
            return Ok(());
        }
        let room = Self::ROOM - self.len;
        let mut take = text.len().min(room);
        while !text.is_char_boundary(take) {
            take -= 1;
        }
        self.bytes[self.len..self.len + take].copy_from_slice(&text.as_bytes()[..take]);
        self.len += take;
        if take < text.len() {
            self.cut = true;
            let end = self.len + CUT_MARKER.len();
            self.bytes[self.len..end].copy_from_slice(CUT_MARKER.as_bytes());
            self.len = end;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_line_is_kept_whole() {
        let line = LogLine::<64>::format(format_args!("core {} of {}", 1, 4));
        assert_eq!(line.as_str(), "core 1 of 4");
    }

    #[test]
    fn a_line_that_fills_the_room_exactly_is_not_cut() {
        let text = "x".repeat(16 - CUT_MARKER.len());
        let line = LogLine::<16>::format(format_args!("{text}"));
        assert_eq!(line.as_str(), text);
    }

    #[test]
    fn a_long_line_is_cut_and_marked() {
        let line = LogLine::<16>::format(format_args!("{}{}", "abcdefgh", "ijklmnop"));
        assert_eq!(line.as_str(), format!("abcdefghij{CUT_MARKER}"));
        assert_eq!(line.as_str().len(), 16);
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        // 10 bytes of room: the cut falls inside the two bytes of 'é', left out whole.
        let line = LogLine::<16>::format(format_args!("abcdefghié"));
        assert_eq!(line.as_str(), format!("abcdefghi{CUT_MARKER}"));
    }

    #[test]
    fn writes_after_a_cut_are_dropped() {
        let line = LogLine::<12>::format(format_args!("{}{}", "abcdefgh", "z"));
        assert_eq!(line.as_str(), format!("abcdef{CUT_MARKER}"));
    }
}
