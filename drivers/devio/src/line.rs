//! Legacy interrupt lines as wake-ups, for devices without MSI or MSI-X: a PCI
//! function's INTx (the ISA IRQ the firmware wrote into its interrupt line register,
//! level-triggered and shareable) and an IDE channel's ISA IRQ 14 or 15 (edge) in
//! compatibility mode, both through the IO-APIC.
//!
//! The protocol is the MSI one (arm, poll once more, sleep, arm again), with the
//! kernel's half in [`LineWaiters`]: arming a line records the core as waiting on it and
//! unmasks its IO-APIC pin; the line's interrupt masks the pin again (a level-triggered
//! line stays asserted until the driver acknowledges its device, so it must not fire
//! again meanwhile), wakes every core waiting on it and forgets them. A core woken for
//! another device on a shared line finds nothing, arms again and sleeps: a spurious
//! wake-up costs one look, and a wake-up is never lost, since the pin is unmasked only
//! after the waiting core is recorded. The driver's half: its device raises the line
//! only while armed (its interrupt causes masked otherwise), and arming acknowledges
//! what the device signalled before.
#![allow(unsafe_code)] // arming a device's own line at the kernel

use core::sync::atomic::{AtomicU64, Ordering};

use rexo_api::DeviceError;

use crate::Platform;

/// ISA IRQs, each with a wake vector.
pub const LINES: usize = 16;
/// Cores a line can wake (one bit each).
pub const MAX_LINE_CORES: usize = 64;

/// The kernel's record of which cores wait on which ISA IRQ line.
pub struct LineWaiters {
    /// Per line, a bit per waiting core.
    waiting: [AtomicU64; LINES],
}

impl Default for LineWaiters {
    fn default() -> Self {
        Self::new()
    }
}

impl LineWaiters {
    /// No core waits on any line.
    pub const fn new() -> Self {
        Self {
            waiting: [const { AtomicU64::new(0) }; LINES],
        }
    }

    /// Records core `core` as waiting on line `irq` (before its pin is unmasked). An
    /// IRQ or core out of range is refused, with nothing recorded.
    pub fn add(&self, irq: u8, core: usize) -> Result<(), &'static str> {
        let line = self
            .waiting
            .get(usize::from(irq))
            .ok_or("an ISA IRQ line (0-15)")?;
        if core >= MAX_LINE_CORES {
            return Err("a line wake-up for that core (cores 0-63)");
        }
        line.fetch_or(1 << core, Ordering::AcqRel);
        Ok(())
    }

    /// Line `irq` fired (its pin already masked): the cores that waited on it, now
    /// waiting no more. Nothing for an IRQ out of range.
    pub fn take(&self, irq: u8) -> impl Iterator<Item = usize> {
        let mut cores = self
            .waiting
            .get(usize::from(irq))
            .map_or(0, |line| line.swap(0, Ordering::AcqRel));
        core::iter::from_fn(move || {
            (cores != 0).then(|| {
                let core = cores.trailing_zeros() as usize;
                cores &= cores - 1;
                core
            })
        })
    }
}

/// The vector each core last routed a device's interrupt source to (a wake message or a
/// line), recorded by the kernel as drivers arm sources and taken by the device
/// registry, which binds the source to the lease that armed it.
pub struct Routed {
    /// Per core, the vector (0: none since taken).
    vectors: [core::sync::atomic::AtomicU8; MAX_LINE_CORES],
}

impl Default for Routed {
    fn default() -> Self {
        Self::new()
    }
}

impl Routed {
    /// Nothing routed.
    pub const fn new() -> Self {
        Self {
            vectors: [const { core::sync::atomic::AtomicU8::new(0) }; MAX_LINE_CORES],
        }
    }

    /// Core `core` routed a source to `vector` (a core out of range records nothing).
    pub fn record(&self, core: usize, vector: u8) {
        if let Some(at) = self.vectors.get(core) {
            at.store(vector, Ordering::Relaxed);
        }
    }

    /// What core `core` routed since the last take, taken.
    pub fn take(&self, core: usize) -> Option<u8> {
        let at = self.vectors.get(core)?;
        Some(at.swap(0, Ordering::Relaxed)).filter(|&v| v != 0)
    }
}

/// The ISA IRQ of a PCI function's INTx: interrupt pin `pin` (configuration byte 0x3D:
/// 0 none, 1-4 INTA-INTD) routed by the firmware to interrupt line `line` (byte 0x3C,
/// the ISA IRQ its PIIX/ICH routes the pin to; 0xFF or 0 when it routed none).
pub fn intx_irq(pin: u8, line: u8) -> Result<u8, DeviceError> {
    match (pin, line) {
        (0, _) => Err(DeviceError::Unsupported(
            "INTx (the function has no interrupt pin)",
        )),
        (5.., _) => Err(DeviceError::Unsupported(
            "INTx (an interrupt pin outside INTA-INTD)",
        )),
        (_, 1..=15) => Ok(line),
        _ => Err(DeviceError::Unsupported(
            "an INTx line routed to an ISA IRQ by the firmware",
        )),
    }
}

/// A device's legacy interrupt line, checked to be routable the way the device signals
/// (see the module's documentation). Only [`DeviceFunction`](crate::DeviceFunction) makes
/// one, for its function's own line, so a driver cannot arm a line the kernel drives:
///
/// ```compile_fail,E0624
/// fn keyboard_line(platform: &'static dyn rexo_devio::Platform) {
///     let _ = rexo_devio::LineWake::new(1, false, platform);
/// }
/// ```
pub struct LineWake {
    /// The ISA IRQ.
    irq: u8,
    /// The kernel.
    platform: &'static dyn Platform,
}

impl LineWake {
    /// ISA IRQ `irq`, which the device drives level-triggered (`level`, PCI INTx) or
    /// edge-triggered (an IDE channel in compatibility mode). Refused
    /// ([`DeviceError::Unsupported`]) when the kernel cannot route it (no IO-APIC, no
    /// ACPI tables) or routes it with the other trigger mode (the MADT has no interrupt
    /// source override that makes a PCI line level-triggered). Made by
    /// [`DeviceFunction`](crate::DeviceFunction) for its function's own line only.
    pub(crate) fn new(
        irq: u8,
        level: bool,
        platform: &'static dyn Platform,
    ) -> Result<Self, DeviceError> {
        let routed_level = platform.line_level(irq).map_err(DeviceError::Unsupported)?;
        match (level, routed_level) {
            (true, false) => Err(DeviceError::Unsupported(
                "a level-triggered route for the INTx line (no MADT override makes it so)",
            )),
            (false, true) => Err(DeviceError::Unsupported(
                "an edge-triggered route for the line (the MADT makes it level-triggered)",
            )),
            _ => Ok(Self { irq, platform }),
        }
    }

    /// The ISA IRQ.
    pub fn irq(&self) -> u8 {
        self.irq
    }

    /// Arms the line to wake core `core` at its next interrupt (one-shot: arm again
    /// before each sleep). The driver acknowledges its device first, so that only what
    /// comes after raises the line.
    pub fn arm(&self, core: usize) -> Result<(), DeviceError> {
        // SAFETY: a `LineWake` is made only for its device's own line (`new`'s callers).
        unsafe { self.platform.wake_on_line(self.irq, core) }.map_err(DeviceError::Unsupported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostPlatform;
    use alloc::vec::Vec;

    #[test]
    fn a_line_wakes_every_core_armed_since_it_last_fired_once() {
        let lines = LineWaiters::new();
        lines.add(11, 0).unwrap();
        lines.add(11, 63).unwrap();
        lines.add(11, 0).unwrap();
        lines.add(14, 1).unwrap();
        assert_eq!(lines.take(11).collect::<Vec<_>>(), [0, 63]);
        assert_eq!(lines.take(11).count(), 0, "one-shot: taken once");
        assert_eq!(lines.take(14).collect::<Vec<_>>(), [1]);
        assert_eq!(
            lines.take(15).count(),
            0,
            "a spurious interrupt wakes nobody"
        );
    }

    #[test]
    fn bad_lines_and_cores_are_refused_with_nothing_recorded() {
        let lines = LineWaiters::new();
        assert!(lines.add(16, 0).is_err());
        assert!(lines.add(u8::MAX, 0).is_err());
        assert!(lines.add(5, 64).is_err());
        assert_eq!(lines.take(5).count(), 0);
        assert_eq!(lines.take(16).count(), 0);
    }

    #[test]
    fn a_routed_vector_is_taken_once_per_core() {
        let routed = Routed::new();
        routed.record(3, 0x21);
        routed.record(MAX_LINE_CORES, 0xDB);
        assert_eq!(routed.take(2), None);
        assert_eq!(routed.take(3), Some(0x21));
        assert_eq!(routed.take(3), None, "taken");
        assert_eq!(routed.take(MAX_LINE_CORES), None);
    }

    #[test]
    fn intx_needs_a_pin_and_a_routed_line() {
        assert_eq!(intx_irq(1, 11), Ok(11));
        assert_eq!(intx_irq(4, 5), Ok(5));
        for (pin, line) in [(0, 11), (5, 11), (1, 0xFF), (1, 0), (1, 16)] {
            assert!(
                matches!(intx_irq(pin, line), Err(DeviceError::Unsupported(_))),
                "pin {pin} line {line}"
            );
        }
    }

    #[test]
    fn a_line_is_used_only_with_the_trigger_mode_its_device_drives() {
        let platform = HostPlatform::leaked();
        // The host's MADT makes 5, 9, 10, 11 level-triggered, as QEMU's does.
        let wake = LineWake::new(11, true, platform).unwrap();
        assert_eq!(wake.irq(), 11);
        wake.arm(1).unwrap();
        assert_eq!(platform.armed(), [(11, 1)]);
        assert!(wake.arm(HostPlatform::CORES).is_err());
        assert!(LineWake::new(14, false, platform).is_ok());
        assert!(matches!(
            LineWake::new(12, true, platform),
            Err(DeviceError::Unsupported(_))
        ));
        assert!(matches!(
            LineWake::new(9, false, platform),
            Err(DeviceError::Unsupported(_))
        ));
        assert!(matches!(
            LineWake::new(16, true, platform),
            Err(DeviceError::Unsupported(_))
        ));
        assert_eq!(platform.armed(), [(11, 1)], "nothing armed by refusals");
    }
}
