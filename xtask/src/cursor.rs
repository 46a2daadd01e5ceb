//! A cursor over the characters of a text that counts lines: the shared base of the Rust
//! lexer (`loc`) and the TOML reader (`appcheck`).

/// The characters, the position in them, and the line the position is on.
pub struct Cursor {
    /// The text, as characters.
    pub chars: Vec<char>,
    /// The index of the next character.
    pub pos: usize,
    /// The line of `pos` (counted from `first_line`).
    pub line: usize,
}

impl Cursor {
    /// A cursor at the start of `text`, whose first line is numbered `first_line`.
    pub fn new(text: &str, first_line: usize) -> Self {
        Self {
            chars: text.chars().collect(),
            pos: 0,
            line: first_line,
        }
    }

    /// The character `ahead` places past the position, if any.
    pub fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    /// Takes the character at the position, counting a newline.
    pub fn bump(&mut self) -> Option<char> {
        let c = self.peek(0)?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }
}
