//! Which local APIC ids an interrupt can name alone, in physical destination mode: the
//! MADT lists ids the interrupt controllers' destination fields may not hold, or that
//! they read as "every core".

use core::fmt;

/// The xAPIC broadcast id: an 8-bit physical destination of all ones names every core
/// (Intel SDM vol. 3A, 10.6.2.1), in an IPI, an IO-APIC redirection entry or an MSI.
const XAPIC_BROADCAST: u32 = 0xFF;
/// The x2APIC broadcast id (SDM vol. 3A, 10.12.9).
const X2APIC_BROADCAST: u32 = u32::MAX;

/// Why an interrupt cannot name one core by its local APIC id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unaddressable {
    /// The id does not fit the 8-bit destination field.
    TooWide,
    /// The id is the broadcast id: sent to it, the interrupt reaches every core.
    Broadcast,
}

impl fmt::Display for Unaddressable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooWide => write!(f, "its APIC id does not fit the 8 bits of xAPIC mode"),
            Self::Broadcast => write!(f, "its APIC id is the broadcast id"),
        }
    }
}

/// The destination an IPI (INIT, start-up, fixed) names the core with local APIC id
/// `apic_id` by, in x2APIC mode (`x2apic`: 32 bits, all ones the broadcast) or xAPIC
/// mode (8 bits, 0xFF the broadcast).
pub fn ipi_destination(apic_id: u32, x2apic: bool) -> Result<u32, Unaddressable> {
    match (x2apic, apic_id) {
        (true, X2APIC_BROADCAST) | (false, XAPIC_BROADCAST) => Err(Unaddressable::Broadcast),
        (false, 0x100..) => Err(Unaddressable::TooWide),
        _ => Ok(apic_id),
    }
}

/// The 8-bit destination an IO-APIC redirection entry or an MSI address names the core
/// with local APIC id `apic_id` by: their fields hold 8 bits whatever the APIC mode
/// (without interrupt remapping), and 0xFF is the broadcast.
pub fn interrupt_destination(apic_id: u32) -> Result<u8, Unaddressable> {
    let id = ipi_destination(apic_id, false)?;
    u8::try_from(id).map_err(|_| Unaddressable::TooWide)
}
