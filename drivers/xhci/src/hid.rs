//! Boot keyboard reports (HID 1.11 appendix B.1) to the bytes a terminal sends: a
//! report is the modifier bits, a reserved byte and up to six pressed keys' usage IDs
//! (HID Usage Tables, Keyboard/Keypad page 0x07); a key is typed when it appears in a
//! report without being in the one before, its bytes those `rexo_scancode::key_bytes`
//! gives, as the PS/2 keyboard's are.
//!
//! A key held repeats as on a PS/2 keyboard (its typematic): the last key pressed,
//! [`REPEAT_DELAY_NS`] after its press and then every [`REPEAT_INTERVAL_NS`], until it is
//! released or another key, a modifier too, is pressed. A boot keyboard set to idle rate
//! 0 (SET_IDLE(0)) reports changes only, so the repeats are made here, on the host's
//! clock, when the keyboard device is read ([`BootKeyboard::repeat`]), as Linux's input
//! core repeats USB keys. A nonzero idle rate would have the device resend its report
//! instead, but at one rate (no longer first delay), with no key held too, not at all on
//! a keyboard that STALLs SET_IDLE (used all the same), and its resends, waiting in the
//! queued TRBs while nobody reads, would come out at the next read as a burst of stale
//! repeats.

use rexo_scancode::{CAPS_LOCK, key_bytes};

/// The usages that fill the key slots of a report that says nothing of the keys:
/// ErrorRollOver (too many keys down), POSTFail and ErrorUndefined.
const ERROR_USAGES: core::ops::RangeInclusive<u8> = 0x01..=0x03;

/// How long a key is held before it repeats: a PS/2 keyboard's typematic delay after
/// its reset (500 ms).
pub const REPEAT_DELAY_NS: u64 = 500_000_000;
/// The time between a held key's repeats: 30 a second (33.3 ms), the fastest PS/2
/// typematic rate.
pub const REPEAT_INTERVAL_NS: u64 = 1_000_000_000 / 30;

/// The key that repeats while held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Repeat {
    /// Its usage.
    usage: u8,
    /// The clock reading at which it repeats next.
    due: u64,
}

/// The keyboard's state between reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootKeyboard {
    /// The keys of the previous report.
    previous: [u8; 6],
    /// The modifier bits of the previous report: those a repeat is typed with.
    modifiers: u8,
    /// Whether Caps Lock is on (toggled by its key; the LED is left alone).
    caps_lock: bool,
    /// The last key pressed, while held.
    repeating: Option<Repeat>,
}

impl BootKeyboard {
    /// A keyboard with nothing pressed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one report, come at clock reading `now`, and hands the bytes of each newly
    /// pressed key to `typed`, in report order; the last of them repeats from `now` +
    /// [`REPEAT_DELAY_NS`] while held. A key that types nothing (F1, Caps Lock, ...)
    /// sets no repeat, as a PS/2 one's typematic presses type nothing, but its press
    /// still ends an earlier key's repeats, as a modifier pressed, or the repeating key
    /// released, does. Reports shorter than 8 bytes are
    /// ignored; so are error reports (roll-over, POST failure, undefined error), the
    /// keys held staying held, but a repeat ends (a roll-over is a key pressed that the
    /// report does not name).
    pub fn report(&mut self, report: &[u8], now: u64, typed: &mut impl FnMut(u8)) {
        let Some(&[modifiers, _, ref keys @ ..]) = report.get(..8) else {
            return;
        };
        let keys: [u8; 6] = keys.try_into().unwrap_or_default();
        if keys.iter().any(|key| ERROR_USAGES.contains(key)) {
            self.repeating = None;
            return;
        }
        let mut last_pressed = None;
        for &usage in keys.iter().filter(|&&k| k != 0) {
            if self.previous.contains(&usage) {
                continue;
            }
            last_pressed = Some(usage);
            if usage == CAPS_LOCK {
                self.caps_lock = !self.caps_lock;
                continue;
            }
            for &byte in key_bytes(usage, modifiers, self.caps_lock) {
                typed(byte);
            }
        }
        let modifier_pressed = modifiers & !self.modifiers != 0;
        if let Some(usage) = last_pressed {
            // Whether a key types anything depends on its usage alone, not on the
            // modifiers or Caps Lock.
            let types_something = !key_bytes(usage, 0, false).is_empty();
            self.repeating = types_something.then(|| Repeat {
                usage,
                due: now.saturating_add(REPEAT_DELAY_NS),
            });
        } else if modifier_pressed
            || self
                .repeating
                .is_some_and(|repeat| !keys.contains(&repeat.usage))
        {
            self.repeating = None;
        }
        self.previous = keys;
        self.modifiers = modifiers;
    }

    /// Hands the held key's bytes to `typed` once if its repeat is due at clock reading
    /// `now` (with the modifiers and Caps Lock of now), the next one due
    /// [`REPEAT_INTERVAL_NS`] after; one repeat per call, so a reader who came late gets
    /// one, not those it missed.
    pub fn repeat(&mut self, now: u64, typed: &mut impl FnMut(u8)) {
        let Some(repeat) = &mut self.repeating else {
            return;
        };
        if now < repeat.due {
            return;
        }
        for &byte in key_bytes(repeat.usage, self.modifiers, self.caps_lock) {
            typed(byte);
        }
        let next = repeat.due.saturating_add(REPEAT_INTERVAL_NS);
        repeat.due = if next > now {
            next
        } else {
            now.saturating_add(REPEAT_INTERVAL_NS)
        };
    }

    /// Whether a held key repeats, now or later.
    pub fn repeats(&self) -> bool {
        self.repeating.is_some()
    }

    /// Ends a repeat: the reports that would release the key may be lost (an endpoint
    /// restarted).
    pub fn stop_repeating(&mut self) {
        self.repeating = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(keyboard: &mut BootKeyboard, report: [u8; 8]) -> Vec<u8> {
        typed_at(keyboard, report, 0)
    }

    /// The bytes `report`, come at clock reading `now`, types.
    fn typed_at(keyboard: &mut BootKeyboard, report: [u8; 8], now: u64) -> Vec<u8> {
        let mut out = Vec::new();
        keyboard.report(&report, now, &mut |b| out.push(b));
        out
    }

    /// The bytes repeated when the keyboard is read at each clock reading of `reads`.
    fn repeated(keyboard: &mut BootKeyboard, reads: impl IntoIterator<Item = u64>) -> Vec<u8> {
        let mut out = Vec::new();
        for now in reads {
            keyboard.repeat(now, &mut |b| out.push(b));
        }
        out
    }

    /// A millisecond in clock readings.
    const MS: u64 = 1_000_000;

    /// Every millisecond of `from_ms..to_ms`, as clock readings.
    fn each_ms(from_ms: u64, to_ms: u64) -> impl Iterator<Item = u64> {
        (from_ms..to_ms).map(|ms| ms * MS)
    }

    #[test]
    fn a_held_key_repeats_after_the_delay_at_the_interval_until_released() {
        let mut keyboard = BootKeyboard::new();
        let down = [0, 0, 0x2A, 0, 0, 0, 0, 0];
        assert_eq!(typed_at(&mut keyboard, down, 1_000 * MS), [0x7F]);
        assert_eq!(
            repeated(&mut keyboard, each_ms(1_000, 1_500)),
            b"",
            "before 500 ms"
        );
        assert_eq!(repeated(&mut keyboard, [1_500 * MS]), [0x7F]);
        assert_eq!(repeated(&mut keyboard, [1_500 * MS]), b"", "once");
        // 30 a second: at 1,533.3 ms, 1,566.7 ms and 1,600 ms, read every millisecond.
        let reads = each_ms(1_501, 1_601).collect::<Vec<_>>();
        assert_eq!(repeated(&mut keyboard, reads), [0x7F; 3]);
        // Held in another report still: it goes on; then released, it stops.
        assert_eq!(typed_at(&mut keyboard, down, 1_610 * MS), b"");
        assert_eq!(repeated(&mut keyboard, [1_634 * MS]), [0x7F]);
        assert_eq!(typed_at(&mut keyboard, [0; 8], 1_640 * MS), b"");
        assert_eq!(repeated(&mut keyboard, each_ms(1_640, 3_000)), b"");
    }

    #[test]
    fn a_repeat_is_typed_with_the_modifiers_of_now_and_a_late_reader_gets_one() {
        let mut keyboard = BootKeyboard::new();
        // Shift and A, then Shift released: the repeats are a's.
        assert_eq!(
            typed_at(&mut keyboard, [0x02, 0, 0x04, 0, 0, 0, 0, 0], 0),
            b"A"
        );
        assert_eq!(
            typed_at(&mut keyboard, [0, 0, 0x04, 0, 0, 0, 0, 0], 100 * MS),
            b""
        );
        assert_eq!(repeated(&mut keyboard, [10_000 * MS]), b"a");
        // Read 10 s late: one repeat, the next one an interval on.
        assert_eq!(
            repeated(&mut keyboard, [10_000 * MS + REPEAT_INTERVAL_NS - 1]),
            b""
        );
        assert_eq!(
            repeated(&mut keyboard, [10_000 * MS + REPEAT_INTERVAL_NS]),
            b"a"
        );
        // The Up arrow repeats its whole sequence.
        typed_at(&mut keyboard, [0, 0, 0x04, 0x52, 0, 0, 0, 0], 11_000 * MS);
        assert_eq!(repeated(&mut keyboard, [11_500 * MS]), b"\x1b[A");
    }

    #[test]
    fn only_the_last_key_pressed_repeats_and_another_press_stops_it() {
        let mut keyboard = BootKeyboard::new();
        // A, then B pressed while A is held: B repeats, from B's press.
        typed_at(&mut keyboard, [0, 0, 0x04, 0, 0, 0, 0, 0], 0);
        assert_eq!(
            typed_at(&mut keyboard, [0, 0, 0x04, 0x05, 0, 0, 0, 0], 300 * MS),
            b"b"
        );
        assert_eq!(repeated(&mut keyboard, each_ms(0, 800)), b"");
        assert_eq!(repeated(&mut keyboard, [800 * MS]), b"b");
        // B released, A still held: nothing repeats.
        typed_at(&mut keyboard, [0, 0, 0x04, 0, 0, 0, 0, 0], 900 * MS);
        assert_eq!(repeated(&mut keyboard, each_ms(900, 3_000)), b"");
        // C held, then Control pressed: C stops, and Control repeats nothing.
        typed_at(&mut keyboard, [0, 0, 0x06, 0, 0, 0, 0, 0], 3_000 * MS);
        typed_at(&mut keyboard, [0x01, 0, 0x06, 0, 0, 0, 0, 0], 3_100 * MS);
        assert_eq!(repeated(&mut keyboard, each_ms(3_000, 5_000)), b"");
        // D held, then F1 (types nothing) or Caps Lock pressed: nothing repeats.
        for other in [0x3A, CAPS_LOCK] {
            typed_at(&mut keyboard, [0, 0, 0x07, 0, 0, 0, 0, 0], 5_000 * MS);
            typed_at(&mut keyboard, [0, 0, 0x07, other, 0, 0, 0, 0], 5_100 * MS);
            assert_eq!(
                repeated(&mut keyboard, each_ms(5_000, 7_000)),
                b"",
                "{other:#x}"
            );
            typed_at(&mut keyboard, [0; 8], 7_000 * MS);
        }
    }

    #[test]
    fn a_key_that_types_nothing_held_sets_no_repeat_and_ends_an_earlier_one() {
        // F1 and Caps Lock held alone, each in a fresh keyboard.
        for silent in [0x3A, CAPS_LOCK] {
            let mut keyboard = BootKeyboard::new();
            typed_at(&mut keyboard, [0, 0, silent, 0, 0, 0, 0, 0], 0);
            assert!(!keyboard.repeats(), "{silent:#x} held");
        }
        // A held, then F1 pressed with it (Shift and Caps Lock on, which type nothing
        // more for F1): nothing repeats.
        let mut keyboard = BootKeyboard::new();
        typed_at(&mut keyboard, [0, 0, CAPS_LOCK, 0, 0, 0, 0, 0], 0);
        typed_at(&mut keyboard, [0x02, 0, 0x04, 0, 0, 0, 0, 0], 100 * MS);
        assert!(keyboard.repeats(), "A held");
        typed_at(&mut keyboard, [0x02, 0, 0x04, 0x3A, 0, 0, 0, 0], 200 * MS);
        assert!(!keyboard.repeats(), "F1 pressed while A is held");
    }

    #[test]
    fn modifiers_alone_never_repeat_and_a_roll_over_or_a_stop_ends_a_repeat() {
        let mut keyboard = BootKeyboard::new();
        // Every modifier held for 2 s.
        typed_at(&mut keyboard, [0xFF, 0, 0, 0, 0, 0, 0, 0], 0);
        assert_eq!(repeated(&mut keyboard, each_ms(0, 2_000)), b"");
        let mut keyboard = BootKeyboard::new();
        typed_at(&mut keyboard, [0, 0, 0x04, 0, 0, 0, 0, 0], 0);
        typed_at(&mut keyboard, [0, 0, 1, 1, 1, 1, 1, 1], 100 * MS);
        assert_eq!(repeated(&mut keyboard, each_ms(0, 2_000)), b"", "roll-over");
        typed_at(&mut keyboard, [0, 0, 0x05, 0, 0, 0, 0, 0], 2_000 * MS);
        keyboard.stop_repeating();
        assert_eq!(
            repeated(&mut keyboard, each_ms(2_000, 4_000)),
            b"",
            "stopped"
        );
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
        keyboard.report(&[0, 0, 0x05], 0, &mut |b| out.push(b));
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
