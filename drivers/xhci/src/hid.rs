//! Boot keyboard reports (HID 1.11 appendix B.1) to the bytes a terminal sends: a
//! report is the modifier bits, a reserved byte and up to six pressed keys' usage IDs
//! (HID Usage Tables, Keyboard/Keypad page 0x07); a key is typed when it appears in a
//! report without being in the one before, its bytes those `rexo_scancode::key_bytes`
//! gives, as the PS/2 keyboard's are.

use rexo_scancode::{CAPS_LOCK, key_bytes};

/// The usages that fill the key slots of a report that says nothing of the keys:
/// ErrorRollOver (too many keys down), POSTFail and ErrorUndefined.
const ERROR_USAGES: core::ops::RangeInclusive<u8> = 0x01..=0x03;

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
        // Insert, Page Up and Page Down, one after the other.
        assert_eq!(
            typed(&mut keyboard, [0, 0, 0x49, 0, 0, 0, 0, 0]),
            b"\x1b[2~"
        );
        assert_eq!(
            typed(&mut keyboard, [0, 0, 0x4B, 0, 0, 0, 0, 0]),
            b"\x1b[5~"
        );
        assert_eq!(
            typed(&mut keyboard, [0, 0, 0x4E, 0, 0, 0, 0, 0]),
            b"\x1b[6~"
        );
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
