//! What the kernel reads out of CPUID's registers, as functions of the registers' values
//! (each rule tested on the host with real CPUs' numbers): the features it uses
//! ([`Features`]), the CPU's vendor, family and model ([`Signature`]) and whether
//! starting a core waits after INIT ([`Signature::waits_after_init`]), and the TSC's rate
//! where CPUID gives it exactly ([`TimingLeaves::exact_tsc_hz`]); and the page attribute
//! table the kernel programs where CPUID says the CPU has one ([`pat`]).
//!
//! The TSC's rate (Intel SDM Vol. 2A, CPUID; Vol. 3B, "Determining the Processor Base
//! Frequency"): leaf 15H gives the ratio of the TSC to the core crystal clock and, in ECX,
//! the crystal's rate; where ECX is 0 the SDM's table "Nominal Core Crystal Clock
//! Frequency" names the crystal by model ([`nominal_crystal_hz`]). Leaf 16H's base
//! frequency is no rate of the TSC: by the SDM its data "does not reflect actual values"
//! and is meant for display. A part whose leaf 15H says 284/2 on its 24 MHz crystal
//! (3,408 MHz) says 3,400 MHz there, a clock 0.235% fast; so it is kept apart
//! ([`TimingLeaves::base_hz`]), a last resort when nothing measures the TSC.

#![cfg_attr(target_os = "none", no_std)]

mod features;
pub mod pat;

pub use features::Features;

/// The lowest TSC rate taken: what a leaf gives below 1 MHz is no rate (leaf 15H's ratio
/// under 1 rounds it to 0), and the next source is tried.
pub const MIN_TSC_HZ: u64 = 1_000_000;

/// The CPU's maker, as CPUID leaf 0's vendor string names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    /// "GenuineIntel".
    Intel,
    /// "AuthenticAMD".
    Amd,
    /// "HygonGenuine".
    Hygon,
    /// Any other string (VIA's, Zhaoxin's, a hypervisor's own).
    Other,
}

impl Vendor {
    /// The vendor that leaf 0's EBX, EDX and ECX name (the string's bytes, in that order).
    pub fn from_leaf_0(ebx: u32, edx: u32, ecx: u32) -> Self {
        let mut name = [0u8; 12];
        name[..4].copy_from_slice(&ebx.to_le_bytes());
        name[4..8].copy_from_slice(&edx.to_le_bytes());
        name[8..].copy_from_slice(&ecx.to_le_bytes());
        match &name {
            b"GenuineIntel" => Self::Intel,
            b"AuthenticAMD" => Self::Amd,
            b"HygonGenuine" => Self::Hygon,
            _ => Self::Other,
        }
    }
}

/// The CPU's vendor, family and model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signature {
    /// Who made it.
    pub vendor: Vendor,
    /// The display family: leaf 1's family field, plus its extended family when it is 0xF.
    pub family: u32,
    /// The display model: leaf 1's model field, under its extended model in families 6
    /// and 0xF.
    pub model: u32,
}

impl Signature {
    /// The signature of a CPU of `vendor` whose leaf 1 gives `leaf_1_eax`.
    pub fn new(vendor: Vendor, leaf_1_eax: u32) -> Self {
        let field = |shift: u32, bits: u32| leaf_1_eax >> shift & ((1 << bits) - 1);
        let (family, model) = (field(8, 4), field(4, 4));
        let extended = family == 6 || family == 0xF;
        Self {
            vendor,
            family: family + if family == 0xF { field(20, 8) } else { 0 },
            model: model | if extended { field(16, 4) << 4 } else { 0 },
        }
    }
}

impl Signature {
    /// Whether starting another core takes the 10 ms wait between INIT and the start-up
    /// IPI of the SDM's MP initialization sequence (Vol. 3A, "Typical BSP Initialization
    /// Sequence"): Intel's family 6 and later, AMD's from family 0xF (every 64-bit AMD)
    /// and Hygon's need none; older CPUs and other makers' (VIA, Zhaoxin, one a
    /// hypervisor names) are given it, as Linux gives them.
    pub fn waits_after_init(&self) -> bool {
        let needs_none = matches!(
            (self.vendor, self.family),
            (Vendor::Intel, 6..) | (Vendor::Amd, 0xF..) | (Vendor::Hygon, 0x18..)
        );
        !needs_none
    }
}

/// CPUID's leaves about the TSC's rate, as read (`None`: past the CPU's highest leaf; for
/// the hypervisor's leaf, no hypervisor that has it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimingLeaves {
    /// Leaf 15H's EAX, EBX and ECX: the TSC/crystal ratio's denominator and numerator, and
    /// the crystal's rate in Hz (0: not given).
    pub tsc_crystal: Option<[u32; 3]>,
    /// Leaf 16H's EAX: the processor's base frequency in MHz in bits 15:0 (0: not given).
    pub base_mhz: Option<u32>,
    /// The hypervisor's leaf 4000_0010H's EAX: the TSC's rate in kHz.
    pub hypervisor_tsc_khz: Option<u32>,
}

/// Which leaf gave the TSC's rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TscLeaf {
    /// Leaf 15H, with its crystal's rate.
    Crystal,
    /// Leaf 15H's ratio on the crystal the SDM names for the CPU's model.
    ModelCrystal,
    /// The hypervisor's leaf 4000_0010H.
    Hypervisor,
}

impl TimingLeaves {
    /// The TSC's rate in Hz where CPUID gives it exactly, and the leaf that does: leaf 15H
    /// with its crystal's rate; else the hypervisor's leaf (the rate it runs the guest's
    /// TSC at); else leaf 15H's ratio on the crystal the SDM names for the CPU's model
    /// ([`nominal_crystal_hz`]). `cpu` gives the CPU's signature and is called only for
    /// that last rule, where leaf 15H gives a ratio but no crystal rate: the boot reads no
    /// more CPUID than it needs. `None` when none does (leaf 16H gives no exact rate:
    /// [`Self::base_hz`]), or each gives less than [`MIN_TSC_HZ`]: then it is measured.
    pub fn exact_tsc_hz(&self, cpu: impl FnOnce() -> Signature) -> Option<(u64, TscLeaf)> {
        let [denominator, numerator, crystal_hz] = self.tsc_crystal.unwrap_or_default();
        let on_crystal = |hz: u64| (hz * u64::from(numerator)).checked_div(u64::from(denominator));
        let exact = |hz: Option<u64>, leaf| Some((hz.filter(|&hz| hz >= MIN_TSC_HZ)?, leaf));
        let hypervisor_hz = self.hypervisor_tsc_khz.map(|khz| u64::from(khz) * 1000);
        let ratio = denominator != 0 && numerator != 0;
        exact(on_crystal(u64::from(crystal_hz)), TscLeaf::Crystal)
            .or_else(|| exact(hypervisor_hz, TscLeaf::Hypervisor))
            .or_else(|| {
                let model_hz = ratio.then(cpu).and_then(nominal_crystal_hz);
                exact(model_hz.and_then(on_crystal), TscLeaf::ModelCrystal)
            })
    }

    /// Leaf 16H's base frequency in Hz: nominal (by the SDM not the actual rate of
    /// anything), so no rate of the TSC but the last resort where nothing measures it.
    pub fn base_hz(&self) -> Option<u64> {
        let mhz = u64::from(self.base_mhz? & 0xFFFF);
        (mhz != 0).then_some(mhz * 1_000_000)
    }
}

/// The core crystal clock's rate, by the SDM's table "Nominal Core Crystal Clock
/// Frequency" (Vol. 3B, 19.7.3), of the CPUs whose leaf 15H does not give it (ECX = 0):
/// 24 MHz on 6th and 7th generation Core, Skylake (family 6 models 4EH, 5EH) and Kaby
/// Lake (8EH, 9EH, which Coffee, Whiskey and Amber Lake share), and on Comet Lake (A5H,
/// A6H), their derivative; 19.2 MHz on Goldmont Atoms (5CH). Not Xeon Scalable (55H),
/// though the table says 25 MHz: Xeon W, which it puts at 24 MHz, has that signature too,
/// and a server's crystal runs about 0.25% slow under its spread-spectrum clocking, so
/// that TSC's rate is measured.
pub fn nominal_crystal_hz(cpu: Signature) -> Option<u64> {
    match (cpu.vendor, cpu.family, cpu.model) {
        (Vendor::Intel, 6, 0x4E | 0x5E | 0x8E | 0x9E | 0xA5 | 0xA6) => Some(24_000_000),
        (Vendor::Intel, 6, 0x5C) => Some(19_200_000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Leaf 0's EBX, EDX and ECX for a vendor string.
    fn leaf_0(name: &[u8; 12]) -> (u32, u32, u32) {
        let word = |i: usize| u32::from_le_bytes(name[i..i + 4].try_into().unwrap());
        (word(0), word(4), word(8))
    }

    fn intel(leaf_1_eax: u32) -> Signature {
        Signature::new(Vendor::Intel, leaf_1_eax)
    }

    #[test]
    fn the_vendor_string_names_the_maker() {
        for (name, vendor) in [
            (b"GenuineIntel", Vendor::Intel),
            (b"AuthenticAMD", Vendor::Amd),
            (b"HygonGenuine", Vendor::Hygon),
            (b"CentaurHauls", Vendor::Other),
        ] {
            let (ebx, edx, ecx) = leaf_0(name);
            assert_eq!(Vendor::from_leaf_0(ebx, edx, ecx), vendor);
        }
    }

    #[test]
    fn family_and_model_take_their_extended_fields() {
        // A Core i7-6700 (06_5EH, stepping 3), a Ryzen (17H, model 71H), a Pentium 4 (0FH).
        let skylake = intel(0x0005_06E3);
        assert_eq!((skylake.family, skylake.model), (6, 0x5E));
        let zen2 = Signature::new(Vendor::Amd, 0x0087_0F10);
        assert_eq!((zen2.family, zen2.model), (0x17, 0x71));
        let pentium_4 = intel(0x0000_0F29);
        assert_eq!((pentium_4.family, pentium_4.model), (0xF, 2));
        // Family 5: the extended model does not count.
        assert_eq!(intel(0x0001_0543).model, 4);
    }

    #[test]
    fn only_old_cpus_and_other_makers_wait_after_init() {
        // TCG's -cpu max (AMD family 0xF), a Skylake, a Pentium 4, a family 0x13 Intel, a
        // Zen 3, a Hygon Dhyana: no wait.
        for (vendor, leaf_1_eax) in [
            (Vendor::Amd, 0x0006_0FB1),
            (Vendor::Intel, 0x0005_06E3),
            (Vendor::Intel, 0x0000_0F29),
            (Vendor::Intel, 0x0040_0F00),
            (Vendor::Amd, 0x00A2_0F10),
            (Vendor::Hygon, 0x0090_0F01),
        ] {
            let cpu = Signature::new(vendor, leaf_1_eax);
            assert!(!cpu.waits_after_init(), "{cpu:?}");
        }
        // A Pentium (family 5), an Athlon (AMD family 6), a VIA Nano, a Zhaoxin.
        for (vendor, leaf_1_eax) in [
            (Vendor::Intel, 0x0000_0543),
            (Vendor::Amd, 0x0000_0662),
            (Vendor::Other, 0x0000_06F2),
            (Vendor::Other, 0x0000_07B0),
        ] {
            let cpu = Signature::new(vendor, leaf_1_eax);
            assert!(cpu.waits_after_init(), "{cpu:?}");
        }
    }

    #[test]
    fn a_crystal_rate_of_0_takes_the_crystal_the_sdm_names_for_the_model() {
        // Skylake client (06_5EH): leaf 15H 2/284 and no crystal rate, leaf 16H 3,400 MHz.
        // The TSC runs at 24 MHz * 284 / 2 = 3,408 MHz; the base frequency was taken for
        // it (0.235% slow, the monotonic clock as fast).
        let leaves = TimingLeaves {
            tsc_crystal: Some([2, 284, 0]),
            base_mhz: Some(3400),
            hypervisor_tsc_khz: None,
        };
        let rate = leaves.exact_tsc_hz(|| intel(0x0005_06E3));
        assert_eq!(rate, Some((3_408_000_000, TscLeaf::ModelCrystal)));
        // Goldmont (06_5CH) on its 19.2 MHz crystal.
        let goldmont = TimingLeaves {
            tsc_crystal: Some([1, 100, 0]),
            ..TimingLeaves::default()
        };
        let rate = goldmont.exact_tsc_hz(|| intel(0x0005_06C9));
        assert_eq!(rate, Some((1_920_000_000, TscLeaf::ModelCrystal)));
    }

    #[test]
    fn a_crystal_the_model_does_not_name_gives_no_rate_and_leaf_16h_is_none() {
        // Xeon Scalable and Xeon W share 06_55H (25 and 24 MHz crystals); an unknown
        // model, an AMD CPU and a base frequency alone give no exact rate either.
        let leaves = TimingLeaves {
            tsc_crystal: Some([2, 176, 0]),
            base_mhz: Some(2100),
            hypervisor_tsc_khz: None,
        };
        assert_eq!(leaves.exact_tsc_hz(|| intel(0x0005_0654)), None);
        assert_eq!(leaves.exact_tsc_hz(|| intel(0x0009_06A3)), None);
        assert_eq!(
            leaves.exact_tsc_hz(|| Signature::new(Vendor::Amd, 0x0005_06E3)),
            None
        );
        let base_only = TimingLeaves {
            base_mhz: Some(2100),
            ..TimingLeaves::default()
        };
        assert_eq!(base_only.exact_tsc_hz(|| intel(0x0005_06E3)), None);
        assert_eq!(base_only.base_hz(), Some(2_100_000_000));
        assert_eq!(TimingLeaves::default().base_hz(), None);
        let no_base = TimingLeaves {
            base_mhz: Some(0xFFFF_0000),
            ..TimingLeaves::default()
        };
        assert_eq!(no_base.base_hz(), None, "bits 31:16 are reserved");
    }

    #[test]
    fn the_hypervisor_s_leaf_comes_before_the_model_s_crystal() {
        // Under a hypervisor the guest's TSC runs at the rate its leaf gives.
        let leaves = TimingLeaves {
            tsc_crystal: Some([2, 284, 0]),
            base_mhz: Some(3400),
            hypervisor_tsc_khz: Some(2_999_999),
        };
        let rate = leaves.exact_tsc_hz(|| intel(0x0005_06E3));
        assert_eq!(rate, Some((2_999_999_000, TscLeaf::Hypervisor)));
        // A crystal rate the CPU gives comes first (the VM's own leaf 15H).
        let given = TimingLeaves {
            tsc_crystal: Some([1, 100, 25_000_000]),
            ..leaves
        };
        let rate = given.exact_tsc_hz(|| intel(0x0005_06E3));
        assert_eq!(rate, Some((2_500_000_000, TscLeaf::Crystal)));
    }

    #[test]
    fn a_rate_under_1_mhz_is_no_rate_and_the_next_leaf_is_tried() {
        // A ratio of 1/30 (on its crystal or the model's 24 MHz), a denominator of 0, a
        // hypervisor rate of 999 kHz.
        let leaves = TimingLeaves {
            tsc_crystal: Some([30, 1, 1_000_000]),
            base_mhz: None,
            hypervisor_tsc_khz: Some(999),
        };
        assert_eq!(leaves.exact_tsc_hz(|| intel(0x0005_06E3)), None);
        let no_denominator = TimingLeaves {
            tsc_crystal: Some([0, 284, 24_000_000]),
            hypervisor_tsc_khz: Some(2_000_000),
            ..leaves
        };
        let rate = no_denominator.exact_tsc_hz(|| intel(0x0005_06E3));
        assert_eq!(rate, Some((2_000_000_000, TscLeaf::Hypervisor)));
    }

    #[test]
    fn the_model_is_read_only_where_leaf_15h_gives_a_ratio_without_its_crystal() {
        // No leaf 15H (QEMU's TCG), no ratio, a ratio with its crystal's rate, a
        // hypervisor's rate: the model names no crystal that is used, and is not read.
        let unread = || -> Signature { panic!("the CPU's model was read") };
        assert_eq!(TimingLeaves::default().exact_tsc_hz(unread), None);
        let no_ratio = TimingLeaves {
            tsc_crystal: Some([0, 0, 0]),
            ..TimingLeaves::default()
        };
        assert_eq!(no_ratio.exact_tsc_hz(unread), None);
        let no_numerator = TimingLeaves {
            tsc_crystal: Some([2, 0, 0]),
            ..TimingLeaves::default()
        };
        assert_eq!(no_numerator.exact_tsc_hz(unread), None);
        let crystal = TimingLeaves {
            tsc_crystal: Some([1, 100, 25_000_000]),
            ..TimingLeaves::default()
        };
        let rate = crystal.exact_tsc_hz(unread);
        assert_eq!(rate, Some((2_500_000_000, TscLeaf::Crystal)));
        let hypervisor = TimingLeaves {
            tsc_crystal: Some([2, 284, 0]),
            hypervisor_tsc_khz: Some(2_999_999),
            ..TimingLeaves::default()
        };
        let rate = hypervisor.exact_tsc_hz(unread);
        assert_eq!(rate, Some((2_999_999_000, TscLeaf::Hypervisor)));
    }
}
