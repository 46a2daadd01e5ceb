//! I/O port windows. The `in` and `out` instructions are in `instructions`; in the
//! host tests (where they cannot run) the host's fake port space stands in for them
//! (`crate::host::FakePorts`), chosen at build time, so the kernel's accesses have no
//! branch for it.
#![allow(unsafe_code)] // the `in` and `out` instructions

use alloc::vec::Vec;
use core::ops::Range;

use rexo_pci::Address;

#[cfg(any(test, all(feature = "host", not(target_os = "none"))))]
use crate::host::instructions;

/// Ports in the machine's I/O space: 0 to 0xFFFF.
const PORT_SPACE: u32 = 0x1_0000;

/// The ports the kernel drives itself, as (first, count): the 8259 PICs, the PIT, the
/// keyboard controller, the CMOS clock, QEMU's debug exit, COM1 and the PCI
/// configuration ports (with the reset control register at 0xCF9). No driver's window
/// covers one of them.
const KERNEL_PORTS: [(u16, u16); 9] = [
    (0x20, 2),
    (0x40, 4),
    (0x60, 1),
    (0x64, 1),
    (0x70, 2),
    (0xA0, 2),
    (0xF4, 1),
    (0x3F8, 8),
    (0xCF8, 8),
];

/// The port windows handed to drivers, each with the function it went to.
static CLAIMED: spin::Mutex<Vec<(Range<u32>, Address)>> = spin::Mutex::new(Vec::new());
/// The ports the kernel drives where the firmware says ([`hold_for_kernel`]), kept from
/// drivers as [`KERNEL_PORTS`] are.
static HELD_FOR_KERNEL: spin::Mutex<Vec<Range<u32>>> = spin::Mutex::new(Vec::new());

/// Why no window may cover a port the kernel drives.
const KERNELS: &str = "its ports are the kernel's";
/// Why no window may cover a port another function's window covers.
const ANOTHER_FUNCTIONS: &str = "another function holds its ports";

/// Keeps the ports of `windows` ((first port, count) each; an empty one keeps none) from
/// every driver from now on, as the kernel's own: the ports the firmware's tables name for
/// the kernel, such as ACPI's fixed hardware (a driver given the PM1a control block could
/// power the machine off). Called before the bus binds a driver: a window a function was
/// given already stays with it.
pub fn hold_for_kernel(windows: impl IntoIterator<Item = (u16, u16)>) {
    let ports = windows
        .into_iter()
        .map(|(first, count)| range(first, count));
    HELD_FOR_KERNEL
        .lock()
        .extend(ports.filter(|ports| !ports.is_empty()));
}

/// Whether a driver could be given the ports `[base, base + len)` now, or why not, as
/// [`DeviceFunction::ports`](crate::DeviceFunction::ports) says: they run past the last
/// port, cover a port the kernel drives (its fixed ones, or those it holds:
/// [`hold_for_kernel`]), or share a port with a window a function was given.
pub fn check_free(base: u16, len: u16) -> Result<(), &'static str> {
    let ports = checked(base, len)?;
    if CLAIMED.lock().iter().any(|(held, _)| overlap(held, &ports)) {
        return Err(ANOTHER_FUNCTIONS);
    }
    Ok(())
}

/// The ports `[first, first + count)`, as `u32`: a range may end at [`PORT_SPACE`].
fn range(first: u16, count: u16) -> Range<u32> {
    u32::from(first)..u32::from(first) + u32::from(count)
}

/// Whether the port ranges `a` and `b` share a port.
fn overlap(a: &Range<u32>, b: &Range<u32>) -> bool {
    a.start < b.end && b.start < a.end
}

/// The ports `[base, base + len)`, or why no window may cover them: they run past the
/// last port or cover a port the kernel drives (a fixed one, or one it holds).
fn checked(base: u16, len: u16) -> Result<Range<u32>, &'static str> {
    let ports = range(base, len);
    if ports.end > PORT_SPACE {
        return Err("it runs past port 0xFFFF");
    }
    let fixed = KERNEL_PORTS
        .iter()
        .map(|&(first, count)| range(first, count));
    let held = HELD_FOR_KERNEL.lock();
    if fixed
        .chain(held.iter().cloned())
        .any(|kernel| overlap(&ports, &kernel))
    {
        return Err(KERNELS);
    }
    Ok(ports)
}

/// The windows `[base, base + len)` of `windows` for the driver of the function at
/// `owner` (its I/O BAR, or its IDE channel's two blocks), all or none, or why not: one
/// runs past the last port, covers a port the kernel drives, or shares a port with a
/// window another function claimed (the same function may claim its ports again, which
/// records nothing more).
pub(crate) fn claim<const N: usize>(
    owner: Address,
    windows: [(u16, u16); N],
) -> Result<[PortWindow; N], &'static str> {
    let ranges = windows.map(|(base, len)| checked(base, len));
    let mut claimed = CLAIMED.lock();
    for ports in &ranges {
        let ports = ports.as_ref().map_err(|why| *why)?;
        let other =
            |(held, holder): &(Range<u32>, Address)| *holder != owner && overlap(held, ports);
        if claimed.iter().any(other) {
            return Err(ANOTHER_FUNCTIONS);
        }
    }
    for ports in ranges.into_iter().flatten() {
        let entry = (ports, owner);
        if !claimed.contains(&entry) {
            claimed.push(entry);
        }
    }
    // SAFETY: every range fits the port space and is not the kernel's nor another
    // function's (checked above, under the lock of the claims), and `owner`'s one
    // `DeviceFunction` asks for them for its one driver (the caller's contract as
    // `pub(crate)`).
    Ok(windows.map(|(base, len)| unsafe { PortWindow::new(base, len) }.expect("checked")))
}

/// A device's range of I/O ports (an I/O BAR, or the fixed ports of a legacy
/// controller). Accesses are bounds-checked; one outside the window is a driver bug and
/// panics with the offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortWindow {
    /// The first port.
    base: u16,
    /// Ports in the window.
    len: u16,
}

impl PortWindow {
    /// The window `[base, base + len)`.
    ///
    /// # Safety
    ///
    /// The ports must belong to one device and be handed to one driver: accesses to
    /// other ports (the PCI configuration ports, the interrupt controllers) can break
    /// the kernel. Only this crate's port claims (a function's I/O BAR or IDE channel,
    /// checked against the kernel's ports and other functions' windows), its configuration
    /// ports and the host's fake ports call this.
    /// `None` when it runs past port 0xFFFF (it may end exactly there: an I/O BAR at
    /// 0xFFF0 of 16 ports).
    pub(crate) unsafe fn new(base: u16, len: u16) -> Option<Self> {
        (u32::from(base) + u32::from(len) <= PORT_SPACE).then_some(Self { base, len })
    }

    /// The first port.
    pub fn base(&self) -> u16 {
        self.base
    }

    /// The ports of the window, for the host's fake port space (as `u32`: a window
    /// may end at [`PORT_SPACE`]).
    #[cfg(any(test, all(feature = "host", not(target_os = "none"))))]
    pub(crate) fn ports(&self) -> core::ops::Range<u32> {
        u32::from(self.base)..u32::from(self.base) + u32::from(self.len)
    }

    /// The port for an access of `width` bytes at `offset`; panics outside the window.
    pub(crate) fn port(&self, offset: u16, width: u16) -> u16 {
        assert!(
            offset.checked_add(width).is_some_and(|end| end <= self.len),
            "port offset {offset:#x} ({width} bytes) outside the {}-port window at {:#x}",
            self.len,
            self.base
        );
        self.base + offset
    }

    /// Reads the 8-bit port at `offset`.
    pub fn read8(&self, offset: u16) -> u8 {
        let port = self.port(offset, 1);
        // SAFETY: the port is in this device's window (checked), given by `new`'s contract.
        unsafe { instructions::in8(port) }
    }

    /// Reads the 16-bit port at `offset`.
    pub fn read16(&self, offset: u16) -> u16 {
        let port = self.port(offset, 2);
        // SAFETY: as for `read8`.
        unsafe { instructions::in16(port) }
    }

    /// Reads the 32-bit port at `offset`.
    pub fn read32(&self, offset: u16) -> u32 {
        let port = self.port(offset, 4);
        // SAFETY: as for `read8`.
        unsafe { instructions::in32(port) }
    }

    /// Writes the 8-bit port at `offset`.
    pub fn write8(&self, offset: u16, value: u8) {
        let port = self.port(offset, 1);
        // SAFETY: as for `read8`.
        unsafe { instructions::out8(port, value) }
    }

    /// Writes the 16-bit port at `offset`.
    pub fn write16(&self, offset: u16, value: u16) {
        let port = self.port(offset, 2);
        // SAFETY: as for `read8`.
        unsafe { instructions::out16(port, value) }
    }

    /// Writes the 32-bit port at `offset`.
    pub fn write32(&self, offset: u16, value: u32) {
        let port = self.port(offset, 4);
        // SAFETY: as for `read8`.
        unsafe { instructions::out32(port, value) }
    }
}

/// The `in` and `out` instructions, one function per width; each is as unsafe as the
/// port it reaches. None is `nomem`: a port write may be a doorbell telling a device to
/// read descriptors in memory, so the compiler must not move memory accesses across it.
#[cfg(not(any(test, all(feature = "host", not(target_os = "none")))))]
mod instructions {
    use core::arch::asm;

    /// `in al, dx`.
    ///
    /// # Safety
    ///
    /// `port` belongs to a device handed to the caller (see [`super::PortWindow::new`]).
    #[inline(always)]
    pub unsafe fn in8(port: u16) -> u8 {
        let value: u8;
        // SAFETY: the caller's contract.
        unsafe {
            asm!("in al, dx", out("al") value, in("dx") port, options(nostack, preserves_flags))
        };
        value
    }

    /// `in ax, dx`.
    ///
    /// # Safety
    ///
    /// As for [`in8`].
    #[inline(always)]
    pub unsafe fn in16(port: u16) -> u16 {
        let value: u16;
        // SAFETY: the caller's contract.
        unsafe {
            asm!("in ax, dx", out("ax") value, in("dx") port, options(nostack, preserves_flags))
        };
        value
    }

    /// `in eax, dx`.
    ///
    /// # Safety
    ///
    /// As for [`in8`].
    #[inline(always)]
    pub unsafe fn in32(port: u16) -> u32 {
        let value: u32;
        // SAFETY: the caller's contract.
        unsafe {
            asm!("in eax, dx", out("eax") value, in("dx") port, options(nostack, preserves_flags))
        };
        value
    }

    /// `out dx, al`.
    ///
    /// # Safety
    ///
    /// As for [`in8`].
    #[inline(always)]
    pub unsafe fn out8(port: u16, value: u8) {
        // SAFETY: the caller's contract.
        unsafe {
            asm!("out dx, al", in("dx") port, in("al") value, options(nostack, preserves_flags))
        };
    }

    /// `out dx, ax`.
    ///
    /// # Safety
    ///
    /// As for [`in8`].
    #[inline(always)]
    pub unsafe fn out16(port: u16, value: u16) {
        // SAFETY: the caller's contract.
        unsafe {
            asm!("out dx, ax", in("dx") port, in("ax") value, options(nostack, preserves_flags))
        };
    }

    /// `out dx, eax`.
    ///
    /// # Safety
    ///
    /// As for [`in8`].
    #[inline(always)]
    pub unsafe fn out32(port: u16, value: u32) {
        // SAFETY: the caller's contract.
        unsafe {
            asm!("out dx, eax", in("dx") port, in("eax") value, options(nostack, preserves_flags))
        };
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::{CLAIMED, PortWindow};
    use rexo_pci::Address;

    /// The entries the claim table holds for `owner`.
    pub(crate) fn claims_of(owner: Address) -> usize {
        CLAIMED.lock().iter().filter(|(_, of)| *of == owner).count()
    }

    /// One window claimed for `owner`.
    fn claim(owner: Address, base: u16, len: u16) -> Result<PortWindow, &'static str> {
        super::claim(owner, [(base, len)]).map(|[window]| window)
    }

    #[test]
    fn ports_are_claimed_by_one_function_and_never_the_kernels() {
        let (first, second) = (
            Address::new(0, 7, 1, 0).unwrap(),
            Address::new(0, 7, 2, 0).unwrap(),
        );
        let window = claim(first, 0xE000, 0x20).unwrap();
        assert_eq!(
            claim(first, 0xE000, 0x20),
            Ok(window),
            "the same function again"
        );
        assert_eq!(
            claim(second, 0xE010, 0x20),
            Err("another function holds its ports")
        );
        assert!(claim(second, 0xE020, 0x20).is_ok(), "next to it");
        for (base, len) in [
            (0x60, 1),
            (0x3F0, 0x10),
            (0xCF8, 4),
            (0xC0, 0x40),
            (0x1E, 4),
        ] {
            assert_eq!(
                claim(second, base, len),
                Err("its ports are the kernel's"),
                "{base:#x}"
            );
        }
        assert_eq!(claim(second, 0xFFF8, 16), Err("it runs past port 0xFFFF"));
        assert_eq!(claims_of(first), 1, "claimed twice, recorded once");
    }

    #[test]
    fn ports_held_for_the_kernel_go_to_no_function() {
        let function = Address::new(0, 12, 1, 0).unwrap();
        // The ACPI fixed hardware as q35's FADT names it: PM1a events and control, the PM
        // timer, GPE0; an empty window holds nothing.
        super::hold_for_kernel([(0x600, 4), (0x604, 2), (0x608, 4), (0x620, 16), (0x700, 0)]);
        for (base, len) in [(0x604, 2), (0x5F0, 0x20), (0x60C, 0x20), (0x620, 1)] {
            assert_eq!(
                claim(function, base, len),
                Err("its ports are the kernel's")
            );
            assert_eq!(
                super::check_free(base, len),
                Err("its ports are the kernel's")
            );
        }
        assert_eq!(claims_of(function), 0);
        assert_eq!(super::check_free(0x700, 0x10), Ok(()), "the empty window");
        assert!(claim(function, 0x630, 0x10).is_ok(), "just past GPE0");
        assert_eq!(
            super::check_free(0x630, 1),
            Err("another function holds its ports")
        );
        assert_eq!(
            super::check_free(0xFFF8, 16),
            Err("it runs past port 0xFFFF")
        );
    }

    #[test]
    fn windows_claimed_together_are_claimed_all_or_none() {
        let [first, second, third] = [1, 2, 3].map(|device| Address::new(0, 8, device, 0).unwrap());
        claim(second, 0xE206, 1).unwrap();
        assert_eq!(
            super::claim(first, [(0xE100, 8), (0xE206, 1)]),
            Err("another function holds its ports")
        );
        assert_eq!(claims_of(first), 0, "nothing kept of the refused claim");
        assert!(
            claim(third, 0xE100, 8).is_ok(),
            "the first block still free"
        );
    }

    #[test]
    fn a_window_may_end_at_the_last_port_but_not_past_it() {
        // SAFETY: no port of these windows is accessed.
        let (last, past) = unsafe { (PortWindow::new(0xFFF0, 16), PortWindow::new(0xFFF1, 16)) };
        let last = last.expect("an I/O BAR at 0xFFF0 of 16 ports");
        assert_eq!(last.port(15, 1), 0xFFFF);
        assert_eq!(past, None, "past port 0xFFFF");
        // SAFETY: as above.
        assert_eq!(unsafe { PortWindow::new(0xFFFF, u16::MAX) }, None);
    }
}
