//! Finding and checking the Root System Description Pointer.

use rexo_physmem::{PhysMemory, read_array, read_u8, read_u16, read_u32, read_u64};

use crate::{AcpiError, checksum_ok, fetch};

/// Size of the ACPI 1.0 RSDP, the part the first checksum covers.
const V1_LEN: usize = 20;
/// Size of the ACPI 2.0+ RSDP (the minimum its length field may say).
const V2_LEN: usize = 36;

/// What a valid RSDP says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rsdp {
    pub revision: u8,
    pub oem_id: [u8; 6],
    pub rsdt: u32,
    pub xsdt: Option<u64>,
}

/// Checks the RSDP at `addr` (signature, checksum, and for revision 2+ the length and the
/// extended checksum).
pub(crate) fn check(mem: &impl PhysMemory, addr: u64) -> Result<Rsdp, AcpiError> {
    // Fixed-size arrays: the field reads below cannot fail, so they compile to no checks.
    let v1: &[u8; V1_LEN] = fetch(mem, addr, V1_LEN)
        .and_then(|b| b.try_into().ok())
        .ok_or(AcpiError::RsdpUnreadable { address: addr })?;
    if read_array(v1, 0) != Some(*b"RSD PTR ") {
        return Err(AcpiError::RsdpBadSignature { address: addr });
    }
    if !checksum_ok(v1) {
        return Err(AcpiError::RsdpBadChecksum { address: addr });
    }
    let revision = read_u8(v1, 15).unwrap_or(0);
    let oem_id = read_array(v1, 9).unwrap_or([0; 6]);
    let rsdt = read_u32(v1, 16).unwrap_or(0);
    let mut xsdt = None;
    if revision >= 2 {
        let head: &[u8; V2_LEN] = fetch(mem, addr, V2_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(AcpiError::RsdpUnreadable { address: addr })?;
        let length = read_u32(head, 20).unwrap_or(0);
        let len = usize::try_from(length).unwrap_or(usize::MAX);
        if len < V2_LEN {
            return Err(AcpiError::RsdpBadLength {
                address: addr,
                length,
            });
        }
        let full = fetch(mem, addr, len).ok_or(AcpiError::RsdpBadLength {
            address: addr,
            length,
        })?;
        if !checksum_ok(full) {
            return Err(AcpiError::RsdpBadExtendedChecksum { address: addr });
        }
        xsdt = read_u64(head, 24).filter(|&a| a != 0);
    }
    Ok(Rsdp {
        revision,
        oem_id,
        rsdt,
        xsdt,
    })
}

/// Scans the BIOS areas for a valid RSDP: the first KiB of the Extended BIOS Data Area (its
/// segment is the word at 0x40E), then 0xE0000..0x100000, on 16-byte boundaries. Returns the
/// physical address of the first candidate whose signature and checksum(s) are valid.
pub fn find_rsdp_bios(mem: &impl PhysMemory) -> Option<u64> {
    let ebda = fetch(mem, 0x40E, 2)
        .and_then(|b| read_u16(b, 0))
        .map(|seg| u64::from(seg) << 4)
        .filter(|&a| a != 0);
    let ebda_scan = ebda.into_iter().flat_map(|a| (a..a + 1024).step_by(16));
    ebda_scan
        .chain((0xE_0000..0x10_0000).step_by(16))
        .find(|&a| is_rsdp_candidate(mem, a) && check(mem, a).is_ok())
}

/// Cheap pre-check before the full [`check`]: the signature's first byte is there.
fn is_rsdp_candidate(mem: &impl PhysMemory, addr: u64) -> bool {
    fetch(mem, addr, 1).and_then(|b| read_u8(b, 0)) == Some(b'R')
}
