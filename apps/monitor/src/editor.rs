//! Line editing for a terminal: insertion anywhere in the line, Backspace, Delete-free
//! cursor movement with the left and right arrows, Ctrl-A/Ctrl-E (start/end), Ctrl-U
//! (clear), Ctrl-C (abandon), and a history walked with the up and down arrows. Input is
//! bytes as a terminal sends them; output is the bytes that redraw the line. The arrows
//! come as `ESC [ key` or `ESC O key`; with a modifier (Ctrl-Right `ESC [ 1 ; 5 C`) they
//! act as plain arrows. Other keys' escape sequences (Delete `ESC [ 3 ~`, Home, function
//! keys) ring the bell and change nothing. CR, LF and CR LF (as `nc` and some
//! terminals send Enter) each end one line.

use alloc::string::String;
use alloc::vec::Vec;

/// How many lines the history keeps.
pub const HISTORY: usize = 32;
/// The longest line accepted; further characters are refused (with a bell).
pub const MAX_LINE: usize = 256;

/// What a byte of input did.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// Keep reading; `echo` redraws what changed.
    Edit {
        /// Bytes for the terminal.
        echo: String,
    },
    /// A finished line (Enter), after `echo`.
    Line {
        /// Bytes for the terminal (the newline).
        echo: String,
        /// The line typed.
        line: String,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    Started,
    Bracket,
}

/// The line being typed, its cursor and the history.
pub struct Editor {
    line: Vec<char>,
    cursor: usize,
    history: Vec<String>,
    /// Position while walking the history (`history.len()`: the line being typed).
    browsing: usize,
    escape: Escape,
    /// The last byte was a CR: an LF right after it ends no second line.
    after_cr: bool,
}

impl Default for Editor {
    fn default() -> Self {
        Self::new()
    }
}

impl Editor {
    /// An empty line and history.
    pub fn new() -> Self {
        Self {
            line: Vec::new(),
            cursor: 0,
            history: Vec::new(),
            browsing: 0,
            escape: Escape::None,
            after_cr: false,
        }
    }

    /// The history, oldest first.
    pub fn history(&self) -> &[String] {
        &self.history
    }

    /// Feeds one byte of input.
    pub fn feed(&mut self, byte: u8) -> Event {
        if core::mem::replace(&mut self.after_cr, byte == b'\r') && byte == b'\n' {
            return edit(String::new());
        }
        match (self.escape, byte) {
            (Escape::Started, b'[' | b'O') => {
                self.escape = Escape::Bracket;
                return edit(String::new());
            }
            // A sequence's parameter and intermediate bytes (`ESC [ 3 ~`): wait for its
            // final byte.
            (Escape::Bracket, 0x20..=0x3F) => return edit(String::new()),
            (Escape::Bracket, key @ 0x40..=0x7E) => {
                self.escape = Escape::None;
                return edit(self.arrow(key));
            }
            (Escape::Bracket, _) => self.escape = Escape::None,
            (Escape::Started, _) => self.escape = Escape::None,
            (Escape::None, _) => {}
        }
        match byte {
            0x1B => {
                self.escape = Escape::Started;
                edit(String::new())
            }
            b'\r' | b'\n' => self.enter(),
            0x7F | 0x08 => edit(self.backspace()),
            0x01 => edit(self.move_to(0)),
            0x05 => edit(self.move_to(self.line.len())),
            0x03 => {
                self.set_line(String::new());
                self.browsing = self.history.len();
                Event::Line {
                    echo: String::from("^C\r\n"),
                    line: String::new(),
                }
            }
            0x15 => {
                let echo = self.replace_line(String::new());
                edit(echo)
            }
            b' '..=b'~' => edit(self.insert(char::from(byte))),
            _ => edit(String::from("\x07")),
        }
    }

    fn enter(&mut self) -> Event {
        let line: String = self.line.iter().collect();
        let trimmed = line.trim();
        if !trimmed.is_empty() && self.history.last().map(String::as_str) != Some(trimmed) {
            if self.history.len() == HISTORY {
                self.history.remove(0);
            }
            self.history.push(String::from(trimmed));
        }
        self.set_line(String::new());
        self.browsing = self.history.len();
        Event::Line {
            echo: String::from("\r\n"),
            line,
        }
    }

    fn insert(&mut self, c: char) -> String {
        if self.line.len() == MAX_LINE {
            return String::from("\x07");
        }
        self.line.insert(self.cursor, c);
        self.cursor += 1;
        // Print the rest of the line from the new character, then step back over it.
        let rest: String = self.line[self.cursor - 1..].iter().collect();
        let mut echo = rest;
        for _ in self.cursor..self.line.len() {
            echo.push('\x08');
        }
        echo
    }

    fn backspace(&mut self) -> String {
        if self.cursor == 0 {
            return String::from("\x07");
        }
        self.cursor -= 1;
        self.line.remove(self.cursor);
        // Step back, reprint the rest and a blank over the old last character, step back.
        let mut echo = String::from("\x08");
        echo.extend(self.line[self.cursor..].iter());
        echo.push(' ');
        for _ in self.cursor..=self.line.len() {
            echo.push('\x08');
        }
        echo
    }

    fn move_to(&mut self, position: usize) -> String {
        let mut echo = String::new();
        while self.cursor > position {
            self.cursor -= 1;
            echo.push('\x08');
        }
        while self.cursor < position {
            echo.push(self.line[self.cursor]);
            self.cursor += 1;
        }
        echo
    }

    fn arrow(&mut self, key: u8) -> String {
        match key {
            b'D' if self.cursor > 0 => self.move_to(self.cursor - 1),
            b'C' if self.cursor < self.line.len() => self.move_to(self.cursor + 1),
            b'A' if self.browsing > 0 => {
                self.browsing -= 1;
                let line = self.history[self.browsing].clone();
                self.replace_line(line)
            }
            b'B' if self.browsing < self.history.len() => {
                self.browsing += 1;
                let line = self.history.get(self.browsing).cloned().unwrap_or_default();
                self.replace_line(line)
            }
            _ => String::from("\x07"),
        }
    }

    /// Erases the line on the terminal and shows `line` instead, cursor at its end.
    fn replace_line(&mut self, line: String) -> String {
        let mut echo = self.move_to(self.line.len());
        for _ in 0..self.line.len() {
            echo.push_str("\x08 \x08");
        }
        echo.push_str(&line);
        self.set_line(line);
        echo
    }

    fn set_line(&mut self, line: String) {
        self.line = line.chars().collect();
        self.cursor = self.line.len();
    }
}

fn edit(echo: String) -> Event {
    Event::Edit { echo }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(editor: &mut Editor, bytes: &[u8]) -> Vec<String> {
        bytes
            .iter()
            .filter_map(|&b| match editor.feed(b) {
                Event::Line { line, .. } => Some(line),
                Event::Edit { .. } => None,
            })
            .collect()
    }

    #[test]
    fn typing_and_enter_give_the_line() {
        let mut e = Editor::new();
        assert_eq!(feed_all(&mut e, b"help\r"), ["help"]);
        assert_eq!(feed_all(&mut e, b"mem\n"), ["mem"]);
    }

    #[test]
    fn cr_lf_ends_one_line() {
        let mut e = Editor::new();
        assert_eq!(feed_all(&mut e, b"help\r\nmem\r\n"), ["help", "mem"]);
        assert_eq!(
            e.feed(b'\n'),
            Event::Line {
                echo: String::from("\r\n"),
                line: String::new()
            },
            "an LF after an LF is an empty line"
        );
        assert_eq!(feed_all(&mut e, b"\r\r\n\n"), ["", "", ""]);
    }

    #[test]
    fn backspace_and_cursor_movement_edit_in_the_middle() {
        let mut e = Editor::new();
        assert_eq!(feed_all(&mut e, b"crs\x1b[D\x1b[Dx\x7fo\r"), ["cors"]);
        assert_eq!(feed_all(&mut e, b"abc\x01X\x05Y\r"), ["XabcY"]);
        assert_eq!(
            feed_all(&mut e, b"\x7f\x7fok\r"),
            ["ok"],
            "backspace on an empty line is refused"
        );
    }

    #[test]
    fn ctrl_u_clears_and_ctrl_c_abandons() {
        let mut e = Editor::new();
        assert_eq!(feed_all(&mut e, b"junk\x15time\r"), ["time"]);
        assert_eq!(feed_all(&mut e, b"reboot\x03"), [""]);
        assert_eq!(e.history(), ["time"], "an abandoned line is not remembered");
    }

    #[test]
    fn history_walks_up_and_down() {
        let mut e = Editor::new();
        feed_all(&mut e, b"one\rtwo\rtwo\r  \rthree\r");
        assert_eq!(
            e.history(),
            ["one", "two", "three"],
            "no repeats, no blank lines"
        );
        assert_eq!(feed_all(&mut e, b"\x1b[A\x1b[A\r"), ["two"]);
        assert_eq!(
            e.history(),
            ["one", "two", "three", "two"],
            "a recalled line is the newest again"
        );
        assert_eq!(
            feed_all(&mut e, b"\x1b[A\x1b[A\x1b[A\x1b[A\x1b[A\x1b[B\r"),
            ["two"],
            "up stops at the oldest"
        );
        assert_eq!(
            feed_all(&mut e, b"\x1b[A\x1b[B\r"),
            [""],
            "down past the newest is an empty line"
        );
    }

    #[test]
    fn ctrl_c_while_browsing_starts_over_from_the_newest() {
        let mut e = Editor::new();
        feed_all(&mut e, b"one\rtwo\rthree\r");
        assert_eq!(feed_all(&mut e, b"\x1b[A\x1b[A\x03"), [""]);
        assert_eq!(feed_all(&mut e, b"\x1b[A\r"), ["three"]);
    }

    #[test]
    fn history_is_bounded_and_lines_are_bounded() {
        let mut e = Editor::new();
        for i in 0..HISTORY + 5 {
            feed_all(&mut e, alloc::format!("c{i}\r").as_bytes());
        }
        assert_eq!(e.history().len(), HISTORY);
        assert_eq!(e.history()[0], "c5");
        let long = [b'x'; MAX_LINE + 10];
        feed_all(&mut e, &long);
        assert_eq!(feed_all(&mut e, b"\r")[0].len(), MAX_LINE);
    }

    #[test]
    fn echo_redraws_an_insertion_in_the_middle() {
        let mut e = Editor::new();
        feed_all(&mut e, b"ac\x1b[D");
        assert_eq!(
            e.feed(b'b'),
            Event::Edit {
                echo: String::from("bc\x08")
            }
        );
        assert_eq!(
            e.feed(0x7F),
            Event::Edit {
                echo: String::from("\x08c \x08\x08")
            }
        );
    }

    #[test]
    fn other_keys_escape_sequences_insert_nothing() {
        let mut e = Editor::new();
        // Delete, Home and F5 as xterm sends them: nothing of them is typed.
        assert_eq!(feed_all(&mut e, b"ab\x1b[3~c\x1b[1~\x1b[15~\r"), ["abc"]);
        assert_eq!(
            e.feed(b'~'),
            Event::Edit {
                echo: String::from("~")
            }
        );
        let mut e = Editor::new();
        assert_eq!(
            e.feed(0x1B),
            Event::Edit {
                echo: String::new()
            }
        );
        e.feed(b'[');
        e.feed(b'3');
        assert_eq!(
            e.feed(b'~'),
            Event::Edit {
                echo: String::from("\x07")
            },
            "a key the editor lacks rings the bell"
        );
        // The arrows in application mode (`ESC O A`), as after a full-screen program.
        assert_eq!(
            feed_all(&mut e, b"time\r\x1bOA\x1bOD\x1bODx\r"),
            ["time", "tixme"]
        );
        // With a modifier, as xterm sends Ctrl-Left and Ctrl-Right: plain arrows.
        assert_eq!(
            feed_all(&mut e, b"abc\x1b[1;5D\x1b[1;5D\x1b[1;5Cx\r"),
            ["abxc"]
        );
    }

    #[test]
    fn other_control_bytes_ring_the_bell_and_change_nothing() {
        let mut e = Editor::new();
        assert_eq!(
            e.feed(0x07),
            Event::Edit {
                echo: String::from("\x07")
            }
        );
        assert_eq!(
            feed_all(&mut e, b"\x1bxok\r"),
            ["xok"],
            "a lone escape is dropped"
        );
    }
}
