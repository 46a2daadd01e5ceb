//! An app's log line, formatted into a fixed buffer of the kernel's before the kernel
//! takes its console lock: the app's own `Display` code (which may log again, loop or
//! panic) then never runs while the lock is held. A line that does not fit is cut at a
//! character boundary and ends with [`CUT_MARKER`]. Control characters are shown, never
//! copied: a newline would start a line that looks like the kernel's, an escape sequence
//! would act on the operator's terminal ([`LogLine`]).

#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

use core::fmt;

/// What ends a line that was cut short.
pub const CUT_MARKER: &str = " [...]";

/// The longest app log line, in bytes: [`LogLine`]'s length unless said.
pub const APP_LINE_BYTES: usize = 512;

/// A line of at most `N` bytes (`N` must exceed [`CUT_MARKER`]'s length;
/// [`APP_LINE_BYTES`] unless said), filled through [`fmt::Write`]; writes past the room
/// are dropped and the line marked as cut. Each control character (C0, DEL, C1) is
/// written as it would be shown, counted at that length: C0 and DEL in caret notation
/// (`^J` for a newline, `^[` for ESC, `^?` for DEL), C1 as `\u{9b}`; an escape that
/// does not fit whole is cut with the rest.
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

    /// Appends as much of `text` as fits, cut at a character boundary (the rest dropped
    /// and the line marked as cut).
    fn append(&mut self, text: &str) {
        let room = Self::ROOM - self.len;
        let mut take = text.len().min(room);
        while !text.is_char_boundary(take) {
            take -= 1;
        }
        self.bytes[self.len..self.len + take].copy_from_slice(&text.as_bytes()[..take]);
        self.len += take;
        if take < text.len() {
            self.mark_cut();
        }
    }

    /// Ends the line here with [`CUT_MARKER`]; later writes are dropped.
    fn mark_cut(&mut self) {
        self.cut = true;
        let end = self.len + CUT_MARKER.len();
        self.bytes[self.len..end].copy_from_slice(CUT_MARKER.as_bytes());
        self.len = end;
    }
}

impl<const N: usize> Default for LogLine<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// How `control` (a control character) is shown in a line: `^` and the character 64
/// above it for C0 (`^[` for ESC), `^?` for DEL, `\u{XX}` for C1.
fn shown(control: char, buffer: &mut [u8; 6]) -> &str {
    let len = match control {
        '\u{7f}' => {
            buffer[..2].copy_from_slice(b"^?");
            2
        }
        '\0'..='\u{1f}' => {
            buffer[..2].copy_from_slice(&[b'^', control as u8 + b'@']);
            2
        }
        _ => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let code = usize::from(control as u8);
            *buffer = [b'\\', b'u', b'{', HEX[code >> 4], HEX[code & 0xF], b'}'];
            6
        }
    };
    // Only ASCII was written.
    core::str::from_utf8(&buffer[..len]).unwrap_or_default()
}

impl<const N: usize> fmt::Write for LogLine<N> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while !self.cut && !rest.is_empty() {
            let plain = rest.find(char::is_control).unwrap_or(rest.len());
            self.append(&rest[..plain]);
            rest = &rest[plain..];
            if let Some(control) = rest.chars().next().filter(|_| !self.cut) {
                let mut buffer = [0; 6];
                let escape = shown(control, &mut buffer);
                if escape.len() > Self::ROOM - self.len {
                    // Cut before the escape rather than inside it.
                    self.mark_cut();
                } else {
                    self.append(escape);
                }
                rest = &rest[control.len_utf8()..];
            }
        }
        Ok(())
    }
}

/// The most bytes of an app's text (`Kernel::write_str`) the kernel writes under one
/// taking of its console lock: a longer text goes in [`pieces`], so that other cores'
/// lines, and the revocation timer's enforcement, which waits for a free console, get in
/// between, however long the text.
pub const TEXT_PIECE_BYTES: usize = 4096;

/// `text` in pieces of at most `max` bytes (at least 4, a character's most), which make
/// `text` again in order: each cut just after the last newline within its first `max`
/// bytes, so that shorter lines stay whole, else at the last character boundary there.
pub fn pieces(text: &str, max: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    core::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = rest.floor_char_boundary(max.max(4));
        if end < rest.len() {
            end = rest[..end].rfind('\n').map_or(end, |newline| newline + 1);
        }
        let (piece, after) = rest.split_at(end);
        rest = after;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_text_goes_in_pieces_cut_after_a_newline_or_at_a_character() {
        let pieces_of = |text, max| pieces(text, max).collect::<Vec<_>>();
        assert_eq!(pieces_of("", 8), [""; 0], "nothing to write");
        assert_eq!(pieces_of("short", 8), ["short"]);
        assert_eq!(pieces_of("ab\ncd\nefghij", 8), ["ab\ncd\n", "efghij"]);
        assert_eq!(pieces_of("abcdefghij", 8), ["abcdefgh", "ij"], "no newline");
        // 'é' is 2 bytes: the 8th and 9th.
        assert_eq!(pieces_of("abcdefg\u{e9}h", 8), ["abcdefg", "\u{e9}h"]);
        assert_eq!(
            pieces_of("\u{1F600}\u{1F600}", 2),
            ["\u{1F600}", "\u{1F600}"]
        );
        let long = "line of text\n".repeat(1000);
        let cut = pieces_of(&long, TEXT_PIECE_BYTES);
        assert_eq!(cut.concat(), long);
        assert!(cut.iter().all(|piece| piece.len() <= TEXT_PIECE_BYTES));
        assert!(
            cut.iter().all(|piece| piece.ends_with('\n')),
            "lines stay whole"
        );
    }

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

    #[test]
    fn control_characters_are_shown_not_copied() {
        let line = LogLine::<64>::format(format_args!("a\nb\x1bc\x7f\0\t\u{9b}[2J d\u{e9}"));
        assert!(
            !line.as_str().chars().any(char::is_control),
            "{:?}",
            line.as_str()
        );
        assert_eq!(line.as_str(), "a^Jb^[c^?^@^I\\u{9b}[2J d\u{e9}");
    }

    #[test]
    fn an_escape_counts_at_its_shown_length_and_is_never_split() {
        // 10 bytes of room: "abcdefghi" and "^J" would make 11, so the line is cut before
        // the newline's escape.
        let line = LogLine::<16>::format(format_args!("abcdefghi\nj"));
        assert_eq!(line.as_str(), format!("abcdefghi{CUT_MARKER}"));
        let line = LogLine::<16>::format(format_args!("abcdefgh\nj"));
        assert_eq!(line.as_str(), format!("abcdefgh^J{CUT_MARKER}"));
    }
}
