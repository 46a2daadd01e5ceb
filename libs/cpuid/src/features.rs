//! The CPU features the kernel uses, as CPUID's leaves give them.

/// CPU features the kernel uses, read from CPUID's leaves ([`Features::from_leaves`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    /// 1 GiB pages (`pdpe1gb`, `CPUID.8000_0001H:EDX[26]`).
    pub huge_1g: bool,
    /// x2APIC mode of the local APIC (`CPUID.01H:ECX[21]`).
    pub x2apic: bool,
    /// TSC-deadline mode of the local APIC timer (`CPUID.01H:ECX[24]`).
    pub tsc_deadline: bool,
    /// The TSC runs at a constant rate in every power state (`CPUID.8000_0007H:EDX[8]`).
    pub invariant_tsc: bool,
    /// Physical address bits (`CPUID.8000_0008H:EAX[7:0]`; 36 without that leaf).
    pub phys_bits: u8,
    /// Running under a hypervisor (`CPUID.01H:ECX[31]`).
    pub hypervisor: bool,
    /// RDSEED (`CPUID.(EAX=7,ECX=0):EBX[18]`).
    pub rdseed: bool,
    /// RDRAND (`CPUID.01H:ECX[30]`).
    pub rdrand: bool,
    /// The IA32_TSC_ADJUST MSR (`CPUID.(EAX=7,ECX=0):EBX[1]`).
    pub tsc_adjust: bool,
    /// The page attribute table, IA32_PAT (`CPUID.01H:EDX[16]`): where it is absent the
    /// page-table bits PCD and PWT alone choose a page's caching ([`crate::pat`]).
    pub pat: bool,
}

impl Features {
    /// The features that `leaf(n)` tells, `leaf` giving EAX, EBX, ECX and EDX of leaf `n`
    /// (sub-leaf 0). A leaf past its range's highest (leaf 0's or 8000_0000H's EAX) is
    /// not read and gives none of its features; 36 physical address bits without leaf
    /// 8000_0008H.
    pub fn from_leaves(leaf: impl Fn(u32) -> [u32; 4]) -> Self {
        let (max, max_ext) = (leaf(0)[0], leaf(0x8000_0000)[0]);
        let read = |n, highest| (highest >= n).then(|| leaf(n));
        let bit = |register: Option<u32>, n: u32| register.is_some_and(|r| r & (1 << n) != 0);
        let [_, _, ecx_1, edx_1] = leaf(1);
        let ebx_7 = read(7, max).map(|l| l[1]);
        let edx_ext = |n| read(n, max_ext).map(|l| l[3]);
        Self {
            huge_1g: bit(edx_ext(0x8000_0001), 26),
            x2apic: bit(Some(ecx_1), 21),
            tsc_deadline: bit(Some(ecx_1), 24),
            invariant_tsc: bit(edx_ext(0x8000_0007), 8),
            phys_bits: read(0x8000_0008, max_ext).map_or(36, |l| l[0] as u8),
            hypervisor: bit(Some(ecx_1), 31),
            rdseed: bit(ebx_7, 18),
            rdrand: bit(Some(ecx_1), 30),
            tsc_adjust: bit(ebx_7, 1),
            pat: bit(Some(edx_1), 16),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The leaves of an Intel Xeon (06_A7H) under a hypervisor, as read on the host that
    /// wrote these tests; any other leaf reads as zeroes.
    fn xeon(n: u32) -> [u32; 4] {
        match n {
            0 => [0x24, 0x756E_6547, 0x6C65_746E, 0x4965_6E69],
            1 => [0x000A_0671, 0x0102_0800, 0xFFFA_3203, 0x1F8B_FBFF],
            7 => [0x2, 0xF1BF_2FFB, 0x1A41_5F46, 0x23C1_4010],
            0x8000_0000 => [0x8000_0008, 0, 0, 0],
            0x8000_0001 => [0, 0, 0x121, 0x2C10_0800],
            0x8000_0007 => [0, 0, 0, 0x100],
            0x8000_0008 => [0x0030_3930, 0, 0, 0],
            _ => [0; 4],
        }
    }

    #[test]
    fn a_xeon_under_a_hypervisor_has_every_feature_and_48_address_bits() {
        let features = Features::from_leaves(xeon);
        let all = Features {
            huge_1g: true,
            x2apic: true,
            tsc_deadline: true,
            invariant_tsc: true,
            phys_bits: 48,
            hypervisor: true,
            rdseed: true,
            rdrand: true,
            tsc_adjust: true,
            pat: true,
        };
        assert_eq!(features, all);
    }

    #[test]
    fn the_pat_is_leaf_1s_edx_bit_16() {
        let without = |n| xeon(n).map(|r| if n == 1 { r & !(1 << 16) } else { r });
        let features = Features::from_leaves(without);
        assert!(!features.pat);
        assert_eq!(
            Features {
                pat: true,
                ..features
            },
            Features::from_leaves(xeon)
        );
    }

    #[test]
    fn leaves_past_the_highest_are_not_read_and_give_nothing() {
        // The same CPU, its ranges cut to leaves 0-1 and 8000_0000H: leaves 7 and
        // 8000_0001H-8000_0008H would still answer, as some hypervisors' do, but are not
        // the CPU's.
        let cut = |n| match n {
            0 => [1, 0, 0, 0],
            0x8000_0000 => [0x8000_0000, 0, 0, 0],
            _ => xeon(n),
        };
        let features = Features::from_leaves(cut);
        assert_eq!(
            (features.huge_1g, features.invariant_tsc, features.phys_bits),
            (false, false, 36)
        );
        assert_eq!((features.rdseed, features.tsc_adjust), (false, false));
        assert!(
            features.x2apic && features.rdrand && features.pat,
            "leaf 1 is read"
        );
    }
}
