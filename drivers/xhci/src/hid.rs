//! Boot keyboard reports (HID 1.11 appendix B.1) to the bytes a terminal sends: a
//! report is the modifier bits, a reserved byte and up to six pressed keys' usage IDs
//! (HID Usage Tables, Keyboard/Keypad page 0x07); a key is typed when it appears in a
//! report without being in the one before.

/// Modifier bits of byte 0: left and right Control.
const CONTROL: u8 = 0x01 | 0x10;
/// Left and right Shift.
const SHIFT: u8 = 0x02 | 0x20;
/// The usages that fill the key slots of a report that says nothing of the keys:
/// ErrorRollOver (too many keys down), POSTFail and ErrorUndefined.
const ERROR_USAGES: core::ops::RangeInclusive<u8> = 0x01..=0x03;
/// Caps Lock's usage.
const CAPS_LOCK: u8 = 0x39;
/// The escape byte that starts the cursor keys' sequences.
const ESC: u8 = 0x1B;

/// The keyboard's state between reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootKeyboard {
    /// The keys of the previous report.
    previous: [u8; 6],
    /// Whether Caps Lock is on (toggled by its key; the LED is left alone).
    caps_lock: bool,
}

impl BootKeyboard {
    /// A keyboard with nothing pressed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one report and hands the bytes of each newly pressed key to `typed`, in
    /// report order. Reports shorter than 8 bytes and error reports (roll-over, POST
    /// failure, undefined error) are ignored: the keys held stay held.
    pub fn report(&mut self, report: &[u8], typed: &mut impl FnMut(u8)) {
        let Some(&[modifiers, _, ref keys @ ..]) = report.get(..8) else {
            return;
        };
        let keys: [u8; 6] = keys.try_into().unwrap_or_default();
        if keys.iter().any(|key| ERROR_USAGES.contains(key)) {
            return;
        }
        for &usage in keys.iter().filter(|&&k| k != 0) {
            if self.previous.contains(&usage) {
                continue;
            }
            if usage == CAPS_LOCK {
                self.caps_lock = !self.caps_lock;
                continue;
            }
            for &byte in key_bytes(usage, modifiers, self.caps_lock) {
                typed(byte);
            }
        }
        self.previous = keys;
    }
}

/// The bytes for pressing key `usage` with `modifiers` down and Caps Lock `caps_lock`:
/// nothing for keys that type nothing.
pub fn key_bytes(usage: u8, modifiers: u8, caps_lock: bool) -> &'static [u8] {
    let shift = modifiers & SHIFT != 0;
    let control = modifiers & CONTROL != 0;
    let sequence: Option<&'static [u8]> = match usage {
        0x4F => Some(&[ESC, b'[', b'C']),
        0x50 => Some(&[ESC, b'[', b'D']),
        0x51 => Some(&[ESC, b'[', b'B']),
        0x52 => Some(&[ESC, b'[', b'A']),
        0x4A => Some(&[ESC, b'[', b'H']),
        0x4D => Some(&[ESC, b'[', b'F']),
        0x4C => Some(&[ESC, b'[', b'3', b'~']),
        _ => None,
    };
    if let Some(sequence) = sequence {
        return sequence;
    }
    let Some(mut byte) = character(usage, shift) else {
        return &[];
    };
    if byte.is_ascii_alphabetic() && caps_lock {
        byte ^= 0x20;
    }
    if control {
        byte = rexo_scancode::with_control(byte);
    }
    single(byte)
}

/// The character key `usage` types, shifted or not (US layout).
fn character(usage: u8, shift: bool) -> Option<u8> {
    /// Usages 0x1E..=0x38: digits, Enter, Escape, Backspace, Tab, Space, punctuation.
    const PLAIN: &[u8; 27] = b"1234567890\r\x1b\x7f\t -=[]\\#;'`,./";
    /// The same with Shift.
    const SHIFTED: &[u8; 27] = b"!@#$%^&*()\r\x1b\x7f\t _+{}|~:\"~<>?";
    /// Keypad usages 0x54..=0x63 (Num Lock taken as on).
    const KEYPAD: &[u8; 16] = b"/*-+\r1234567890.";
    match usage {
        0x04..=0x1D => {
            let letter = b'a' + (usage - 0x04);
            Some(if shift {
                letter.to_ascii_uppercase()
            } else {
                letter
            })
        }
        0x1E..=0x38 => {
            let table = if shift { SHIFTED } else { PLAIN };
            Some(table[usize::from(usage - 0x1E)])
        }
        0x54..=0x63 => Some(KEYPAD[usize::from(usage - 0x54)]),
        _ => None,
    }
}

/// `byte` as a one-byte slice with a static lifetime.
fn single(byte: u8) -> &'static [u8] {
    /// Every byte value, so any byte can be lent as `&'static [u8]`.
    static BYTES: [u8; 256] = {
        let mut bytes = [0; 256];
        let mut i = 0;
        while i < 256 {
            bytes[i] = i as u8;
            i += 1;
        }
        bytes
    };
    let at = usize::from(byte);
    &BYTES[at..=at]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(keyboard: &mut BootKeyboard, report: [u8; 8]) -> Vec<u8> {
        let mut out = Vec::new();
        keyboard.report(&report, &mut |b| out.push(b));
        out
    }

    #[test]
    fn new_keys_type_once_and_releases_type_nothing() {
        let mut keyboard = BootKeyboard::new();
        assert_eq!(typed(&mut keyboard, [0, 0, 0x0B, 0, 0, 0, 0, 0]), b"h");
        assert_eq!(
            typed(&mut keyboard, [0, 0, 0x0B, 0, 0, 0, 0, 0]),
            b"",
            "held"
        );
        assert_eq!(typed(&mut keyboard, [0, 0, 0x0B, 0x08, 0, 0, 0, 0]), b"e");
        assert_eq!(typed(&mut keyboard, [0, 0, 0, 0, 0, 0, 0, 0]), b"");
        assert_eq!(typed(&mut keyboard, [0, 0, 0x0B, 0, 0, 0, 0, 0]), b"h");
    }

    #[test]
    fn modifiers_shift_and_control() {
        let mut keyboard = BootKeyboard::new();
        assert_eq!(
            typed(&mut keyboard, [0x02, 0, 0x04, 0x1F, 0, 0, 0, 0]),
            b"A@"
        );
        assert_eq!(typed(&mut keyboard, [0x10, 0, 0x06, 0, 0, 0, 0, 0]), [3]);
        assert_eq!(
            typed(&mut keyboard, [0x20, 0, 0x38, 0x2D, 0, 0, 0, 0]),
            b"?_"
        );
    }

    #[test]
    fn special_keys_type_terminal_sequences() {
        let mut keyboard = BootKeyboard::new();
        assert_eq!(typed(&mut keyboard, [0, 0, 0x28, 0, 0, 0, 0, 0]), b"\r");
        assert_eq!(typed(&mut keyboard, [0, 0, 0x2A, 0, 0, 0, 0, 0]), [0x7F]);
        assert_eq!(typed(&mut keyboard, [0, 0, 0x52, 0, 0, 0, 0, 0]), b"\x1b[A");
        assert_eq!(typed(&mut keyboard, [0, 0, 0x50, 0, 0, 0, 0, 0]), b"\x1b[D");
        assert_eq!(typed(&mut keyboard, [0, 0, 0x2C, 0x59, 0, 0, 0, 0]), b" 1");
        assert_eq!(typed(&mut keyboard, [0, 0, 0x3A, 0, 0, 0, 0, 0]), b"", "F1");
    }

    #[test]
    fn caps_lock_toggles_letters_only() {
        let mut keyboard = BootKeyboard::new();
        assert_eq!(typed(&mut keyboard, [0, 0, 0x39, 0, 0, 0, 0, 0]), b"");
        assert_eq!(typed(&mut keyboard, [0, 0, 0x04, 0x1E, 0, 0, 0, 0]), b"A1");
        assert_eq!(typed(&mut keyboard, [0x02, 0, 0x05, 0, 0, 0, 0, 0]), b"b");
    }

    #[test]
    fn roll_over_and_short_reports_are_ignored() {
        let mut keyboard = BootKeyboard::new();
        assert_eq!(typed(&mut keyboard, [0, 0, 0x04, 0, 0, 0, 0, 0]), b"a");
        assert_eq!(typed(&mut keyboard, [0, 0, 1, 1, 1, 1, 1, 1]), b"");
        assert_eq!(
            typed(&mut keyboard, [0, 0, 0x04, 0, 0, 0, 0, 0]),
            b"",
            "still held"
        );
        let mut out = Vec::new();
        keyboard.report(&[0, 0, 0x05], &mut |b| out.push(b));
        assert!(out.is_empty());
    }

    #[test]
    fn post_fail_and_undefined_error_reports_are_ignored_too() {
        for error in [2, 3] {
            let mut keyboard = BootKeyboard::new();
            assert_eq!(typed(&mut keyboard, [0, 0, 0x04, 0, 0, 0, 0, 0]), b"a");
            let report = [0, 0, error, error, error, error, error, error];
            assert_eq!(typed(&mut keyboard, report), b"", "usage {error}");
            assert_eq!(
                typed(&mut keyboard, [0, 0, 0x04, 0, 0, 0, 0, 0]),
                b"",
                "still held after usage {error}"
            );
        }
    }
}
