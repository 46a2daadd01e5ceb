//! AHCI SATA controllers with native command queuing.
//!
//! The HBA (ABAR = BAR 5) is taken from the firmware (BIOS/OS handoff), reset (its
//! CAP, CAP2 and PI kept across it), and put in AHCI mode; its one interrupt message (MSI-X if it has it, else MSI: ICH9's) is
//! pointed at a core only while a port is armed to wake it. Every implemented port with a linked ATA disk
//! becomes its own block device (ATAPI, enclosure and port-multiplier signatures and
//! empty ports are logged and skipped). A disk runs READ/WRITE FPDMA QUEUED with up to
//! 32 commands in flight when it and the HBA have NCQ, else READ/WRITE DMA EXT one at a
//! time. At power-off and reboot each disk gets FLUSH CACHE (EXT), then at a power-off
//! STANDBY IMMEDIATE (`BlockDevice::shut_down`). Register layout: AHCI 1.3.1 (sections 3 and 4); the ATA
//! command set comes from `rexo-ata`.
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

extern crate alloc;

mod fis;
mod port;

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;

use rexo_api::DeviceError;
use rexo_devio::{DeviceFunction, Found, Mmio, Platform, Vectors};
use rexo_pci::Function;

pub use port::AhciDisk;

/// PCI class 01 (mass storage), subclass 06 (SATA), programming interface 01 (AHCI).
const CLASS_AHCI: (u8, u8, u8) = (0x01, 0x06, 0x01);
/// The BAR holding the HBA's registers (ABAR).
const BAR_ABAR: usize = 5;

/// HBA capabilities (AHCI 3.1.1).
const REG_CAP: usize = 0x00;
/// Global HBA control (AHCI 3.1.2).
const REG_GHC: usize = 0x04;
/// Interrupt status (AHCI 3.1.3): a port's bit (IPS) says it raised the HBA's
/// interrupt; write 1 to clear.
const REG_IS: usize = 0x08;
/// Ports implemented (AHCI 3.1.4): one bit per port.
const REG_PI: usize = 0x0C;
/// AHCI version (AHCI 3.1.5).
const REG_VS: usize = 0x10;
/// Extended capabilities (AHCI 3.1.10).
const REG_CAP2: usize = 0x24;
/// The first AHCI version (VS) with CAP2: 1.2.
const VERSION_WITH_CAP2: u32 = 0x0001_0200;
/// BIOS/OS handoff control and status (AHCI 3.1.11).
const REG_BOHC: usize = 0x28;

/// CAP: 64-bit addressing.
pub(crate) const CAP_S64A: u32 = 1 << 31;
/// CAP: native command queuing.
pub(crate) const CAP_SNCQ: u32 = 1 << 30;
/// CAP: staggered spin-up (software spins each port up with PxCMD.SUD).
const CAP_SSS: u32 = 1 << 27;
/// CAP bits 12:8: command slots per port, minus one.
const CAP_NCS_SHIFT: u32 = 8;
/// GHC: AHCI enable.
const GHC_AE: u32 = 1 << 31;
/// GHC: interrupt enable (ports' enabled interrupt causes raise the HBA's message).
const GHC_IE: u32 = 1 << 1;
/// GHC: HBA reset (self-clearing).
const GHC_HR: u32 = 1 << 0;
/// CAP2: BIOS/OS handoff supported.
const CAP2_BOH: u32 = 1 << 0;
/// BOHC: the OS owns the HBA (OOS).
const BOHC_OOS: u32 = 1 << 1;
/// BOHC: the BIOS owns the HBA (BOS).
const BOHC_BOS: u32 = 1 << 0;

/// Where port 0's registers start, and the stride between ports (AHCI 3.3).
const PORT_REGISTERS: usize = 0x100;
/// Bytes of registers per port.
const PORT_STRIDE: usize = 0x80;

/// How long the BIOS may take to hand the HBA over (AHCI 10.6.3 allows 25 ms, plus
/// 2 s when it is busy).
const HANDOFF_TIMEOUT_MS: u64 = 2_025;
/// How long the HBA reset may take (AHCI 10.4.3: 1 s).
const RESET_TIMEOUT_MS: u64 = 1_000;

/// Whether this driver takes `function`: an AHCI SATA controller (class 01.06.01).
pub fn matches(function: &Function) -> bool {
    function.header.class() == CLASS_AHCI
}

/// Resets the HBA on `function` and returns a block device per ATA disk on its ports.
pub fn probe(mut function: DeviceFunction) -> Result<Vec<Found>, DeviceError> {
    function.enable()?;
    let abar = function.mmio(BAR_ABAR)?;
    let platform = function.platform();
    take_from_firmware(&abar, platform)?;
    let (cap, implemented) = reset(&abar, platform)?;
    let wake = match function.vectors() {
        Ok(vectors) => {
            log::info!(
                "ahci: {}: completions can wake a core through {}",
                function.address(),
                vectors.kind()
            );
            // Every port's PxIE stays 0 until the port is armed.
            abar.write32(REG_GHC, GHC_AE | GHC_IE);
            Some(Arc::new(Wake::new(vectors, abar.clone())))
        }
        Err(DeviceError::Unsupported(what)) => {
            log::info!(
                "ahci: {}: no {what}: completions are polled only",
                function.address()
            );
            None
        }
        Err(error) => {
            log::warn!(
                "ahci: {}: no MSI: {error}; completions are polled only",
                function.address()
            );
            None
        }
    };
    disks(&abar, cap, implemented, platform, wake)
}

/// The HBA `abar` (capabilities `cap`, ports `implemented`), reset and in AHCI mode, with
/// its interrupt message `wake`: a block device per ATA disk on its ports.
fn disks(
    abar: &Mmio,
    cap: u32,
    implemented: u32,
    platform: &'static dyn Platform,
    wake: Option<Arc<Wake>>,
) -> Result<Vec<Found>, DeviceError> {
    let slots = ((cap >> CAP_NCS_SHIFT) & 0x1F) + 1;
    let version = abar.read32(REG_VS);
    log::info!(
        "ahci: version {}.{}, ports {implemented:#x}, {slots} slots, NCQ {}, 64-bit {}",
        version >> 16,
        (version >> 8) & 0xFF,
        if cap & CAP_SNCQ != 0 { "yes" } else { "no" },
        if cap & CAP_S64A != 0 { "yes" } else { "no" },
    );
    let mut ports = Vec::new();
    for number in (0..32u8).filter(|n| implemented & (1 << n) != 0) {
        let registers = abar
            .window(
                PORT_REGISTERS + usize::from(number) * PORT_STRIDE,
                PORT_STRIDE,
            )
            .ok_or(DeviceError::BadBar {
                index: BAR_ABAR as u8,
                why: "too small for its implemented ports",
            })?;
        port::spin_up(&registers, cap & CAP_SSS != 0);
        ports.push((number, registers));
    }
    // Links come up and devices spin up in parallel; one wait covers every port, and one
    // spin-up deadline too.
    port::wait_for_links(platform, &ports);
    let spin_up_by = port::spin_up_deadline(platform);
    let mut found = Vec::new();
    for (number, registers) in ports {
        let wake = wake.clone();
        match AhciDisk::start(registers, number, cap, slots, platform, wake, spin_up_by) {
            Ok(Some(disk)) => found.push(Found::Block(Box::new(disk))),
            Ok(None) => {}
            Err(error) => log::warn!("ahci: port {number}: not used: {error}"),
        }
    }
    Ok(found)
}

/// The HBA's one interrupt message, shared by its ports: it points at one core at a
/// time, the core of the ports armed (a port's PxIE is its own switch).
pub(crate) struct Wake {
    /// The message.
    vectors: Vectors,
    /// The HBA's global registers (ABAR), for IS.
    hba: Mmio,
    /// The core it points at (if any yet) and the ports armed for that core.
    armed: spin::Mutex<(Option<usize>, u32)>,
}

impl Wake {
    /// The message `vectors` of the HBA whose global registers are `hba`, pointing
    /// nowhere yet.
    pub(crate) fn new(vectors: Vectors, hba: Mmio) -> Self {
        Self {
            vectors,
            hba,
            armed: spin::Mutex::new((None, 0)),
        }
    }

    /// Clears port `port`'s bit in IS, once the port cleared its PxIS (AHCI 1.3.1
    /// 10.7.2: PxIS first, then IS.IPS): an HBA with one message for all its ports may
    /// send a new one only when an IS bit goes from 0 to 1, so a bit left set would let
    /// later completions wake no one.
    pub(crate) fn clear_pending(&self, port: u8) {
        self.hba.write32(REG_IS, 1 << port);
    }

    /// Points the message at `core` for port `port`; refused (nothing changed) while
    /// other ports are armed for another core. The kernel is asked for the message at
    /// every arm, even one for the core it already names, as every MSI-X arm asks: that
    /// is what tells the kernel which vector the port's lease arms, so that it binds the
    /// source to each lease that arms it.
    pub(crate) fn arm(&self, port: u8, core: usize) -> Result<(), DeviceError> {
        let mut armed = self.armed.lock();
        let others = armed.1 & !(1 << port);
        if armed.0 != Some(core) && others != 0 {
            return Err(DeviceError::Unsupported(
                "one message per controller: another port waits to wake another core",
            ));
        }
        self.vectors.wake(0, core)?;
        *armed = (Some(core), armed.1 | 1 << port);
        Ok(())
    }

    /// Port `port` no longer waits.
    pub(crate) fn disarm(&self, port: u8) {
        self.armed.lock().1 &= !(1 << port);
    }
}

/// Takes the HBA from the firmware when it supports the handoff (AHCI 10.6.3).
fn take_from_firmware(abar: &Mmio, platform: &dyn Platform) -> Result<(), DeviceError> {
    if abar.read32(REG_CAP2) & CAP2_BOH == 0 {
        return Ok(());
    }
    abar.write32(REG_BOHC, abar.read32(REG_BOHC) | BOHC_OOS);
    rexo_devio::wait_until(
        platform,
        "the BIOS to release the HBA",
        HANDOFF_TIMEOUT_MS,
        || abar.read32(REG_BOHC) & BOHC_BOS == 0,
    )
}

/// Resets the HBA (GHC.HR) and enables AHCI mode with interrupts off (AHCI 10.4.3);
/// returns CAP and PI. CAP, CAP2 (AHCI 1.2 on) and PI are write-once registers the
/// firmware fills in, and some HBAs return them to their defaults on a reset (PI 0: no
/// port at all), so they are read before it and written back after (as Linux's libahci
/// saves and restores them), PI read back.
fn reset(abar: &Mmio, platform: &dyn Platform) -> Result<(u32, u32), DeviceError> {
    let cap = abar.read32(REG_CAP);
    let cap2 = (abar.read32(REG_VS) >= VERSION_WITH_CAP2).then(|| abar.read32(REG_CAP2));
    let implemented = abar.read32(REG_PI);
    abar.write32(REG_GHC, GHC_AE);
    abar.write32(REG_GHC, GHC_AE | GHC_HR);
    rexo_devio::wait_until(platform, "the HBA reset", RESET_TIMEOUT_MS, || {
        abar.read32(REG_GHC) & GHC_HR == 0
    })?;
    // The reset may clear AE; interrupts (GHC.IE) stay off: the driver polls.
    abar.write32(REG_GHC, GHC_AE);
    abar.write32(REG_CAP, cap);
    if let Some(cap2) = cap2 {
        abar.write32(REG_CAP2, cap2);
    }
    abar.write32(REG_PI, implemented);
    Ok((cap, abar.read32(REG_PI)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rexo_devio::NS_PER_MS;
    use rexo_devio::host::HostPlatform;

    #[test]
    fn a_hba_whose_reset_clears_cap_and_pi_keeps_them_and_finds_its_disk() {
        let platform = HostPlatform::leaked();
        let abar = rexo_devio::host::registers(PORT_REGISTERS + PORT_STRIDE);
        let cap = CAP_S64A | CAP_SNCQ | 31 << CAP_NCS_SHIFT;
        abar.write32(REG_CAP, cap);
        abar.write32(REG_VS, 0x0001_0300);
        abar.write32(REG_CAP2, 1 << 2);
        abar.write32(REG_PI, 1);
        let port = abar.window(PORT_REGISTERS, PORT_STRIDE).unwrap();
        let disk = port::tests::play_disk(platform, port, 0);
        let hba = abar.clone();
        platform.on_clock_reading(move || {
            // The reset finishes at once and returns CAP, CAP2 and PI to 0.
            if hba.read32(REG_GHC) & GHC_HR != 0 {
                for register in [REG_GHC, REG_CAP, REG_CAP2, REG_PI] {
                    hba.write32(register, 0);
                }
            }
            disk();
        });
        let (kept_cap, implemented) = reset(&abar, platform).unwrap();
        let found = disks(&abar, kept_cap, implemented, platform, None).unwrap();
        assert_eq!(found.len(), 1, "the disk on port 0");
        assert_eq!((kept_cap, implemented), (cap, 1));
        let registers = [REG_CAP, REG_CAP2, REG_PI].map(|register| abar.read32(register));
        assert_eq!(registers, [cap, 1 << 2, 1], "written back");
    }

    /// Every port's device spins up at once, from the probe's SUD and POD, but each
    /// port's start gave it the whole 31 s in turn: two devices wedged busy cost 72 s of
    /// boot. One deadline now covers every port.
    #[test]
    fn ports_busy_past_the_spin_up_bound_cost_the_boot_it_once() {
        let platform = HostPlatform::leaked();
        let abar = rexo_devio::host::registers(PORT_REGISTERS + 2 * PORT_STRIDE);
        abar.write32(REG_VS, 0x0001_0300);
        // Both devices stay busy, the COMRESET notwithstanding.
        let busy_for_good = u64::MAX;
        let played: Vec<_> = (0..2)
            .map(|number| {
                let port = abar
                    .window(PORT_REGISTERS + number * PORT_STRIDE, PORT_STRIDE)
                    .unwrap();
                port::tests::play_disk(platform, port, busy_for_good)
            })
            .collect();
        platform.on_clock_reading(move || played.iter().for_each(|disk| disk()));
        let found = disks(&abar, CAP_S64A, 0b11, platform, None).unwrap();
        assert_eq!(found.len(), 0, "both ports given up");
        let took_s = platform.clock() / (1_000 * NS_PER_MS);
        assert!(
            took_s <= 31 + 2 * 5 + 1,
            "the probe took {took_s} s for two ports busy past the bound"
        );
    }
}
