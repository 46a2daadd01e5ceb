use super::*;

/// The bytes `codes` give, one scan code after the other, with whatever each leaves
/// pending handed out before the next (as the kernel's polling does).
fn typed(decoder: &Decoder, codes: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for &code in codes {
        bytes.extend(decoder.translate(code));
        bytes.extend(core::iter::from_fn(|| decoder.pending()));
    }
    bytes
}

/// The release of the key whose press is `code`.
const fn up(code: u8) -> u8 {
    code | 0x80
}

const LEFT_SHIFT: u8 = 0x2A;
const RIGHT_SHIFT: u8 = 0x36;
const CONTROL: u8 = 0x1D;
/// The grey keys' fake Shift press (after [`EXTENDED`]); its release is `up(FAKE_SHIFT)`.
const FAKE_SHIFT: u8 = 0x2A;
const EXTENDED: u8 = 0xE0;

#[test]
fn keys_give_their_characters_and_releases_give_nothing() {
    let decoder = Decoder::new();
    // h, i, 1, =, ;, \, /, each pressed and released.
    let keys = [0x23, 0x17, 0x02, 0x0D, 0x27, 0x2B, 0x35];
    let codes: Vec<u8> = keys.iter().flat_map(|&k| [k, up(k)]).collect();
    assert_eq!(typed(&decoder, &codes), b"hi1=;\\/");
}

#[test]
fn enter_backspace_escape_tab_and_space_are_what_terminals_send() {
    let decoder = Decoder::new();
    assert_eq!(
        typed(&decoder, &[0x1C, 0x0E, 0x01, 0x0F, 0x39]),
        [b'\r', 0x7F, 0x1B, b'\t', b' ']
    );
}

#[test]
fn either_shift_held_gives_the_shifted_characters_until_released() {
    let decoder = Decoder::new();
    let codes = [
        LEFT_SHIFT,
        0x1E,
        0x02,
        up(LEFT_SHIFT),
        0x1E,
        RIGHT_SHIFT,
        0x28,
    ];
    assert_eq!(typed(&decoder, &codes), b"A!a\"");
    assert_eq!(typed(&decoder, &[up(RIGHT_SHIFT), 0x28]), b"'");
}

#[test]
fn control_with_a_letter_gives_its_control_character_and_others_unchanged() {
    let decoder = Decoder::new();
    // Control-C, Control-A, Control-1, then C with Control released.
    let codes = [CONTROL, 0x2E, 0x1E, 0x02, up(CONTROL), 0x2E];
    assert_eq!(typed(&decoder, &codes), [0x03, 0x01, b'1', b'c']);
}

#[test]
fn arrow_keys_give_their_escape_sequences() {
    let decoder = Decoder::new();
    let arrows = [0x48, 0x50, 0x4D, 0x4B].map(|key| [EXTENDED, key, EXTENDED, up(key)]);
    assert_eq!(
        typed(&decoder, arrows.as_flattened()),
        b"\x1b[A\x1b[B\x1b[C\x1b[D"
    );
    // The sequence waits for its reader: ESC first, then '[' and the letter.
    assert_eq!(decoder.translate(EXTENDED), None);
    assert_eq!(decoder.translate(0x48), Some(0x1B));
    assert_eq!(decoder.pending(), Some(b'['));
    assert_eq!(decoder.pending(), Some(b'A'));
    assert_eq!(decoder.pending(), None);
}

#[test]
fn the_extended_prefix_marks_only_the_next_code_and_other_extended_keys_give_nothing() {
    let decoder = Decoder::new();
    // The keypad's Enter (E0 1C) and Delete (E0 53) give nothing; the prefix is spent,
    // so the next Enter and A are the main keys'.
    let codes = [EXTENDED, 0x1C, 0x1C, EXTENDED, 0x53, 0x1E];
    assert_eq!(typed(&decoder, &codes), b"\ra");
}

#[test]
fn keys_without_a_byte_give_nothing() {
    let decoder = Decoder::new();
    // F1, F10, Caps Lock, the keypad's 7, and a code past set 1's keys.
    assert_eq!(typed(&decoder, &[0x3B, 0x44, 0x3A, 0x47, 0x7F]), b"");
    assert_eq!(decoder.pending(), None);
}

#[test]
fn control_gives_the_control_character_after_shift_and_for_at_to_underscore() {
    let decoder = Decoder::new();
    // Control-Shift-C, then Control-[ and Control-] (Shift released), Control-Shift-2 ('@').
    let codes = [CONTROL, LEFT_SHIFT, 0x2E, up(LEFT_SHIFT), 0x1A, 0x1B];
    assert_eq!(typed(&decoder, &codes), [0x03, 0x1B, 0x1D]);
    assert_eq!(typed(&decoder, &[RIGHT_SHIFT, 0x03]), [0x00]);
}

#[test]
fn releasing_one_shift_or_control_leaves_the_other_held() {
    let decoder = Decoder::new();
    let codes = [LEFT_SHIFT, RIGHT_SHIFT, up(RIGHT_SHIFT), 0x1E];
    assert_eq!(typed(&decoder, &codes), b"A");
    assert_eq!(typed(&decoder, &[up(LEFT_SHIFT), 0x1E]), b"a");
    // Left Control, then Right Control (E0 1D) pressed and released.
    let codes = [CONTROL, EXTENDED, CONTROL, EXTENDED, up(CONTROL), 0x2E];
    assert_eq!(typed(&decoder, &codes), [0x03]);
    assert_eq!(typed(&decoder, &[up(CONTROL), 0x2E]), b"c");
    // Right Control alone, and the other way round.
    let codes = [EXTENDED, CONTROL, CONTROL, up(CONTROL), 0x2E];
    assert_eq!(typed(&decoder, &codes), [0x03]);
}

#[test]
fn the_grey_keys_fake_shifts_are_not_shift() {
    let decoder = Decoder::new();
    // Up pressed (E0 2A E0 48, Num Lock on), A typed while it is held: no Shift.
    let codes = [EXTENDED, FAKE_SHIFT, EXTENDED, 0x48, 0x1E];
    assert_eq!(typed(&decoder, &codes), b"\x1b[Aa");
    let codes = [EXTENDED, up(0x48), EXTENDED, up(FAKE_SHIFT)];
    assert_eq!(typed(&decoder, &codes), b"");
    // Left Shift held, Up pressed (E0 AA E0 48), A typed while it is held: still Shift.
    let codes = [LEFT_SHIFT, EXTENDED, up(FAKE_SHIFT), EXTENDED, 0x48, 0x1E];
    assert_eq!(typed(&decoder, &codes), b"\x1b[AA");
}
