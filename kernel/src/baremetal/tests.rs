//! Kernel tests of BareMetal compatibility that need no app binary (the QEMU cases
//! `baremetal::*` run real BareMetal-convention programs).

use super::calls::{self, ERROR, SMP_SET_FAILED};
use super::{LoadError, check_image};
use crate::kernel_test;

kernel_test!(
    fn refuses_what_is_not_a_flat_binary() {
        assert_eq!(check_image(&[], 4096), Err(LoadError::Empty));
        assert_eq!(
            check_image(b"\x7fELF\x02\x01\x01", 4096),
            Err(LoadError::NotFlat("ELF"))
        );
        assert_eq!(
            check_image(b"MZ\x90\x00", 4096),
            Err(LoadError::NotFlat("PE (MZ header)"))
        );
        assert_eq!(
            check_image(&[0x90; 10], 8),
            Err(LoadError::TooLarge {
                size: 10,
                capacity: 8
            })
        );
        assert_eq!(check_image(&[0xC3], 8), Ok(()));
        let text = alloc::format!("{}", LoadError::NotFlat("ELF"));
        assert_eq!(text, "not a flat binary: ELF");
    }
);

kernel_test!(
    fn table_page_is_never_handed_out() {
        let frames = crate::mem::frames::allocate(4096, 4096).expect("a frame");
        assert!(frames.end() <= super::TABLE_PAGE.start || frames.start() >= super::TABLE_PAGE.end);
        crate::mem::frames::free(frames);
    }
);

kernel_test!(
    fn system_functions_answer() {
        assert_eq!(calls::system(0x11, 0, 0), crate::smp_cores() as u64);
        let t0 = calls::system(0x00, 0, 0);
        assert_eq!(calls::system(0x72, 200, 0), 0);
        assert!(
            calls::system(0x00, 0, 0) - t0 >= 200_000,
            "delay shorter than asked"
        );
        let tsc = calls::system(0x1F, 0, 0);
        assert!(calls::system(0x1F, 0, 0) > tsc);
        let me = calls::system(0x10, 0, 0);
        assert_eq!(
            me,
            u64::from(
                crate::arch::percpu::current()
                    .apic_id
                    .load(core::sync::atomic::Ordering::Relaxed)
            )
        );
        assert_eq!(calls::system(0x99, 0, 0), ERROR, "unknown function");
        assert_eq!(
            calls::system(0x13, 0, 0x1_0000),
            ERROR,
            "no core has that APIC id"
        );
    }
);

kernel_test!(
    fn system_rejects_bad_arguments() {
        assert_eq!(calls::system(0x14, 0, 0), ERROR, "lock at address 0");
        assert_eq!(
            calls::system(0x15, u64::MAX, 0),
            ERROR,
            "unlock beyond memory"
        );
        assert_eq!(calls::system(0x70, 0, 16), ERROR, "dump of page 0");
        assert_eq!(calls::system(0x50, 0, 64), ERROR, "PCI register 64");
        assert_eq!(
            calls::system(0x50, 0, 1 << 24),
            ERROR,
            "PCI address above bus"
        );
        assert_eq!(
            calls::system(0x51, 1 << 32, 0),
            ERROR,
            "PCI value above 32 bits"
        );
        // Code outside the app window, or misaligned, is never run on another core.
        assert_eq!(calls::system(0x12, 0x20_0000, 0), SMP_SET_FAILED);
        assert_eq!(calls::system(0x12, super::APP_BASE + 1, 0), SMP_SET_FAILED);
    }
);

kernel_test!(
    fn lock_word_locks_and_unlocks() {
        let word = alloc::boxed::Box::new(0u64);
        let addr = &*word as *const u64 as u64;
        assert_eq!(calls::system(0x14, addr, 0), 0);
        assert_eq!(*word & 1, 1);
        assert_eq!(calls::system(0x15, addr, 0), 0);
        assert_eq!(*word, 0);
    }
);

kernel_test!(
    fn pci_addresses_follow_the_0xcf8_layout() {
        assert_eq!(calls::pci_address(0x00_00_00), Some(0x8000_0000));
        // bus 1, device 2, function 3, register 0x0F (byte offset 0x3C)
        let rdx = (1 << 16) | (2 << 11) | (3 << 8) | 0x0F;
        assert_eq!(
            calls::pci_address(rdx),
            Some(0x8000_0000 | (1 << 16) | (2 << 11) | (3 << 8) | 0x3C)
        );
        assert_eq!(calls::pci_address(0x40), None);
    }
);

kernel_test!(
    fn call_table_points_into_the_kernel() {
        super::raw::install_table();
        let kernel = crate::mem::phys::kernel_image();
        let entries: alloc::vec::Vec<u64> = (0..7).map(super::raw::table_entry).collect();
        for (i, entry) in entries.iter().enumerate() {
            assert!(kernel.contains(entry), "slot {i} points outside the kernel");
            assert!(!entries[..i].contains(entry), "slot {i} repeats a stub");
        }
    }
);

kernel_test!(
    fn upper_half_mapping_refuses_bad_ranges() {
        use crate::arch::paging::{PagingError, map_ram_at};
        let mib2 = 2 << 20;
        assert_eq!(
            map_ram_at(super::APP_BASE + 4096, mib2, mib2),
            Err(PagingError::Misaligned(super::APP_BASE + 4096))
        );
        assert_eq!(
            map_ram_at(mib2, mib2, mib2),
            Err(PagingError::NotUpperHalf(mib2))
        );
    }
);
