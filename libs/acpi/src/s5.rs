//! Finding the `\_S5` (soft-off) sleep type values in DSDT AML without an interpreter.
//!
//! Firmware declares them as `Name (_S5, Package () { SLP_TYPa, SLP_TYPb, ... })`, which is
//! encoded as `NameOp ('\')? "_S5_" PackageOp PkgLength NumElements elements...`; each element
//! is a `ZeroOp`, `OneOp`, or a `BytePrefix`/`WordPrefix`/`DWordPrefix` constant. The two
//! elements read must lie inside the package, as its PkgLength bounds it (a package that runs
//! past the AML is malformed).

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

/// Decodes the first two integer elements of the package at `at`; `None` unless both lie
/// inside the package (and the package inside `aml`).
fn decode_package(aml: &[u8], at: usize) -> Option<(u8, u8)> {
    if read_u8(aml, at)? != PACKAGE_OP {
        return None;
    }
    let (pkg_len, pkg_len_bytes) = pkg_length(aml, at + 1)?;
    // PkgLength counts its own bytes and everything after them in the package.
    let package = aml.get(..(at + 1).checked_add(pkg_len)?)?;
    let num_elements = read_u8(package, at + 1 + pkg_len_bytes)?;
    if num_elements < 2 {
        return None;
    }
    let mut pos = at + 2 + pkg_len_bytes;
    let (a, used) = integer(package, pos)?;
    pos += used;
    let (b, _) = integer(package, pos)?;
    Some((a, b))
}

/// The AML PkgLength at `pos`: its value and how many bytes encode it. Bits 6-7 of the lead
/// byte count the bytes that follow it; without any, bits 0-5 are the length, else bits 0-3
/// are its low nibble and each following byte the next eight bits.
fn pkg_length(aml: &[u8], pos: usize) -> Option<(usize, usize)> {
    let lead = read_u8(aml, pos)?;
    let following = usize::from(lead >> 6);
    if following == 0 {
        return Some((usize::from(lead & 0x3F), 1));
    }
    let mut length = usize::from(lead & 0x0F);
    for i in 0..following {
        length |= usize::from(read_u8(aml, pos + 1 + i)?) << (4 + 8 * i);
    }
    Some((length, 1 + following))
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
            0x10, 8, b'\\', b'_', b'S', b'5', b'_', 0x12, 5, 2, 1, 0x0A, 7,
        ];
        assert_eq!(find(&root_one_byte), Found::Yes((1, 7)));
        let word_dword = [
            8, b'_', b'S', b'5', b'_', 0x12, 0x4B, 0, 2, 0x0B, 5, 0, 0x0C, 6, 0, 0, 0,
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

    #[test]
    fn elements_must_lie_inside_the_package() {
        // PkgLength 3 holds itself, NumElements and one element: the second `One` is not
        // the package's.
        assert_eq!(
            find(&[8, b'_', b'S', b'5', b'_', 0x12, 3, 2, 1, 1]),
            Found::Malformed
        );
        // A package running past the end of the AML.
        assert_eq!(
            find(&[8, b'_', b'S', b'5', b'_', 0x12, 10, 2, 0, 0]),
            Found::Malformed
        );
        // A two-byte PkgLength (0x4B, 0x11: 0x11B bytes) reaching past both elements.
        let mut long = vec![8, b'_', b'S', b'5', b'_', 0x12, 0x4B, 0x11, 2, 1, 0x0A, 5];
        long.resize(6 + 0x11B, 0);
        assert_eq!(find(&long), Found::Yes((1, 5)));
        long.pop();
        assert_eq!(find(&long), Found::Malformed);
    }
}
