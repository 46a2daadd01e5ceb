//! Finding the `\_S5` (soft-off) sleep type values in DSDT AML without an interpreter.
//!
//! Firmware declares them as `Name (_S5, Package () { SLP_TYPa, SLP_TYPb, ... })`, which is
//! encoded as `NameOp ('\')? "_S5_" PackageOp PkgLength NumElements elements...`; each element
//! is a `ZeroOp`, `OneOp`, or a `BytePrefix`/`WordPrefix`/`DWordPrefix` constant.

use rexo_physmem::{read_u8, read_u16, read_u32};

/// AML `NameOp`.
const NAME_OP: u8 = 0x08;
/// AML root prefix `\`.
const ROOT_PREFIX: u8 = b'\\';
/// AML `PackageOp`.
const PACKAGE_OP: u8 = 0x12;

/// Result of the `_S5_` search.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// The values of the first decodable `_S5_` package.
    Yes((u8, u8)),
    /// A `Name (_S5, ...)` exists but none could be decoded.
    Malformed,
    /// No `Name (_S5, ...)` in the AML.
    No,
}

/// Scans `aml` (a DSDT body) for `Name (_S5, Package ...)`.
pub(crate) fn find(aml: &[u8]) -> Found {
    let mut found = Found::No;
    let mut at = 0;
    while let Some(pos) = aml
        .get(at..)
        .and_then(|rest| rest.windows(4).position(|w| w == b"_S5_"))
    {
        let name = at + pos;
        at = name + 4;
        let before = |back: usize| name.checked_sub(back).and_then(|i| read_u8(aml, i));
        let is_name = before(1) == Some(NAME_OP)
            || (before(1) == Some(ROOT_PREFIX) && before(2) == Some(NAME_OP));
        if !is_name {
            continue;
        }
        match decode_package(aml, at) {
            Some(v) => return Found::Yes(v),
            None => found = Found::Malformed,
        }
    }
    found
}

/// Decodes the first two integer elements of the package at `at`.
fn decode_package(aml: &[u8], at: usize) -> Option<(u8, u8)> {
    if read_u8(aml, at)? != PACKAGE_OP {
        return None;
    }
    let lead = read_u8(aml, at + 1)?;
    // PkgLength: bits 6-7 of the lead byte count the bytes that follow it.
    let pkg_len_bytes = 1 + usize::from(lead >> 6);
    let num_elements = read_u8(aml, at + 1 + pkg_len_bytes)?;
    if num_elements < 2 {
        return None;
    }
    let mut pos = at + 2 + pkg_len_bytes;
    let (a, used) = integer(aml, pos)?;
    pos += used;
    let (b, _) = integer(aml, pos)?;
    Some((a, b))
}

/// One AML integer constant at `pos` that fits a byte, and how many bytes it took.
fn integer(aml: &[u8], pos: usize) -> Option<(u8, usize)> {
    let (value, used) = match read_u8(aml, pos)? {
        0x00 => (0, 1),
        0x01 => (1, 1),
        0x0A => (u32::from(read_u8(aml, pos + 1)?), 2),
        0x0B => (u32::from(read_u16(aml, pos + 1)?), 3),
        0x0C => (read_u32(aml, pos + 1)?, 5),
        _ => return None,
    };
    Some((u8::try_from(value).ok()?, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_each_encoding() {
        // QEMU's form: Name (_S5, Package (4) { Zero, Zero, Zero, Zero }).
        let qemu = [8, b'_', b'S', b'5', b'_', 0x12, 6, 4, 0, 0, 0, 0];
        assert_eq!(find(&qemu), Found::Yes((0, 0)));
        let root_one_byte = [
            0x10, 8, b'\\', b'_', b'S', b'5', b'_', 0x12, 7, 2, 1, 0x0A, 7,
        ];
        assert_eq!(find(&root_one_byte), Found::Yes((1, 7)));
        let word_dword = [
            8, b'_', b'S', b'5', b'_', 0x12, 0x40, 0, 2, 0x0B, 5, 0, 0x0C, 6, 0, 0, 0,
        ];
        assert_eq!(find(&word_dword), Found::Yes((5, 6)));
    }

    #[test]
    fn skips_non_name_uses_and_reports_bad_packages() {
        // A method named _S5_ (not a NameOp) is not the sleep package.
        assert_eq!(find(&[0x14, 9, b'_', b'S', b'5', b'_', 0]), Found::No);
        assert_eq!(find(b""), Found::No);
        // Truncated, too few elements, a value too big, an unknown opcode.
        assert_eq!(
            find(&[8, b'_', b'S', b'5', b'_', 0x12, 6]),
            Found::Malformed
        );
        assert_eq!(
            find(&[8, b'_', b'S', b'5', b'_', 0x12, 3, 1, 0]),
            Found::Malformed
        );
        assert_eq!(
            find(&[8, b'_', b'S', b'5', b'_', 0x12, 6, 2, 0x0B, 0, 1, 0]),
            Found::Malformed
        );
        assert_eq!(
            find(&[8, b'_', b'S', b'5', b'_', 0x12, 4, 2, 0xFF, 0]),
            Found::Malformed
        );
        // A later good declaration wins over an earlier bad one.
        let both = [
            8, b'_', b'S', b'5', b'_', 0, 8, b'_', b'S', b'5', b'_', 0x12, 4, 2, 1, 1,
        ];
        assert_eq!(find(&both), Found::Yes((1, 1)));
    }
}
