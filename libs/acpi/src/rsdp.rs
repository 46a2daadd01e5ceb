//! Finding and checking the Root System Description Pointer.

use rexo_physmem::{PhysMemory, read_array, read_u8, read_u16, read_u32, read_u64};

use crate::{AcpiError, checksum_ok, fetch};

/// Size of the ACPI 1.0 RSDP, the part the first checksum covers.
const V1_LEN: usize = 20;
/// Size of the ACPI 2.0+ RSDP (the minimum its length field may say).
const V2_LEN: usize = 36;
/// The longest RSDP read, 4,096 bytes: it is 36 in every revision to date (ACPI 6.5), and
/// this leaves room for fields a later one may add. A longer length is a broken RSDP, whose
/// bytes are not read: a length of gigabytes had its extended checksum summed over device
/// space.
const MAX_LEN: usize = 4096;

/// What a valid RSDP says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rsdp {
    pub revision: u8,
    pub oem_id: [u8; 6],
    pub rsdt: u32,
    pub xsdt: Option<u64>,
    /// What is wrong with the revision 2+ part (length, extended checksum), which then
    /// names no XSDT: the ACPI 1.0 part and its RSDT stay usable.
    pub v2_error: Option<AcpiError>,
}

/// How much of an RSDP a copy of one holds, valid ([`check_copy`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RsdpCopy {
    /// Its ACPI 1.0 part (20 bytes, naming the RSDT), and no more of it: a revision 0
    /// RSDP, or one whose revision 2+ part is missing or broken.
    Acpi1Part,
    /// A revision 2+ RSDP whole (naming the XSDT): its length and extended checksum right.
    Whole,
}

/// How much of an RSDP `copy` holds valid (signature and checksum of its first 20 bytes;
/// for [`RsdpCopy::Whole`] a revision of 2 or more, a length of at least 36 within `copy`
/// and the extended checksum over it), or `None` when not even its ACPI 1.0 part: the
/// check of a boot loader's copy (Multiboot2's tags 14 and 15), which reads nothing past it.
pub fn check_copy(copy: &[u8]) -> Option<RsdpCopy> {
    let v1: &[u8; V1_LEN] = copy.get(..V1_LEN)?.try_into().ok()?;
    check_v1(v1, 0).ok()?;
    let length = read_u32(copy, 20).and_then(|length| usize::try_from(length).ok());
    let whole = length
        .filter(|&length| read_u8(v1, 15) >= Some(2) && length >= V2_LEN)
        .and_then(|length| copy.get(..length))
        .is_some_and(checksum_ok);
    Some(if whole {
        RsdpCopy::Whole
    } else {
        RsdpCopy::Acpi1Part
    })
}

/// Checks the RSDP's ACPI 1.0 part, at `addr`: its signature and checksum.
fn check_v1(v1: &[u8; V1_LEN], addr: u64) -> Result<(), AcpiError> {
    if read_array(v1, 0) != Some(*b"RSD PTR ") {
        return Err(AcpiError::RsdpBadSignature { address: addr });
    }
    if !checksum_ok(v1) {
        return Err(AcpiError::RsdpBadChecksum { address: addr });
    }
    Ok(())
}

/// Checks the RSDP at `addr`: signature and checksum, an error if wrong; for revision 2+
/// the length and the extended checksum, recorded in [`Rsdp::v2_error`] if wrong. With
/// `acpi1_only`, only its ACPI 1.0 part is read, whatever its revision (a copy of those 20
/// bytes alone): it names no XSDT then.
pub(crate) fn check(mem: &impl PhysMemory, addr: u64, acpi1_only: bool) -> Result<Rsdp, AcpiError> {
    // Fixed-size arrays: the field reads below cannot fail, so they compile to no checks.
    let v1: &[u8; V1_LEN] = fetch(mem, addr, V1_LEN)
        .and_then(|b| b.try_into().ok())
        .ok_or(AcpiError::RsdpUnreadable { address: addr })?;
    check_v1(v1, addr)?;
    let revision = read_u8(v1, 15).unwrap_or(0);
    let (xsdt, v2_error) = match revision {
        2.. if !acpi1_only => match check_v2(mem, addr) {
            Ok(xsdt) => (xsdt, None),
            Err(error) => (None, Some(error)),
        },
        _ => (None, None),
    };
    Ok(Rsdp {
        revision,
        oem_id: read_array(v1, 9).unwrap_or([0; 6]),
        rsdt: read_u32(v1, 16).unwrap_or(0),
        xsdt,
        v2_error,
    })
}

/// Checks the revision 2+ part of the RSDP at `addr` (its length, 36 to [`MAX_LEN`], and
/// extended checksum) and returns the XSDT's address it gives, if not 0.
fn check_v2(mem: &impl PhysMemory, addr: u64) -> Result<Option<u64>, AcpiError> {
    let head: &[u8; V2_LEN] = fetch(mem, addr, V2_LEN)
        .and_then(|b| b.try_into().ok())
        .ok_or(AcpiError::RsdpUnreadable { address: addr })?;
    let length = read_u32(head, 20).unwrap_or(0);
    let bad_length = AcpiError::RsdpBadLength {
        address: addr,
        length,
    };
    let len = usize::try_from(length).unwrap_or(usize::MAX);
    if !(V2_LEN..=MAX_LEN).contains(&len) {
        return Err(bad_length);
    }
    let full = fetch(mem, addr, len).ok_or(bad_length)?;
    if !checksum_ok(full) {
        return Err(AcpiError::RsdpBadExtendedChecksum { address: addr });
    }
    Ok(read_u64(head, 24).filter(|&a| a != 0))
}

/// Scans the BIOS areas for a valid RSDP: the first KiB of the Extended BIOS Data Area (its
/// segment is the word at 0x40E), then 0xE0000..0x100000, on 16-byte boundaries. Returns the
/// physical address of the first candidate whose signature and checksum(s) are valid, else
/// of the first whose ACPI 1.0 part is (its revision 2+ part broken: [`crate::parse`] then
/// uses its RSDT), in one pass.
pub fn find_rsdp_bios(mem: &impl PhysMemory) -> Option<u64> {
    let ebda = fetch(mem, 0x40E, 2)
        .and_then(|b| read_u16(b, 0))
        .map(|seg| u64::from(seg) << 4)
        .filter(|&a| a != 0);
    let ebda_scan = ebda.into_iter().flat_map(|a| (a..a + 1024).step_by(16));
    let mut acpi1_part_only = None;
    let candidates = ebda_scan.chain((0xE_0000..0x10_0000).step_by(16));
    for address in candidates.filter(|&a| is_rsdp_candidate(mem, a)) {
        match check(mem, address, false) {
            Ok(rsdp) if rsdp.v2_error.is_none() => return Some(address),
            Ok(_) => _ = acpi1_part_only.get_or_insert(address),
            Err(_) => {}
        }
    }
    acpi1_part_only
}

/// Cheap pre-check before the full [`check`]: the signature's first byte is there.
fn is_rsdp_candidate(mem: &impl PhysMemory, addr: u64) -> bool {
    fetch(mem, addr, 1).and_then(|b| read_u8(b, 0)) == Some(b'R')
}
