//! Kernel tests of the capability layer (run in QEMU by `cargo xtask test`).
use super::*;
use crate::kernel_test;

/// An owner no app of the image uses.
const TEST_OWNER: OwnerId = OwnerId(30);
const OTHER_OWNER: OwnerId = OwnerId(31);

kernel_test!(
    fn memory_capability_reads_back_what_was_written_and_returns_its_frames() {
        let free = crate::mem::frames::free_bytes();
        let cap = allocate_memory(TEST_OWNER, 10_000).expect("memory for the test");
        assert!(free - crate::mem::frames::free_bytes() >= 10_000);
        let mut zeros = [0xFFu8; 64];
        read_memory(TEST_OWNER, &cap, 9_000, &mut zeros).expect("read");
        assert!(zeros.iter().all(|&b| b == 0), "granted memory is zeroed");
        write_memory(TEST_OWNER, &cap, 100, b"exokernel").expect("write");
        let mut back = [0u8; 9];
        read_memory(TEST_OWNER, &cap, 100, &mut back).expect("read");
        assert_eq!(&back, b"exokernel");
        assert_eq!(
            write_memory(TEST_OWNER, &cap, 12_280, &[0; 32]),
            Err(CapError::OutOfRange)
        );
        assert_eq!(
            read_memory(TEST_OWNER, &cap, u64::MAX, &mut back),
            Err(CapError::OutOfRange)
        );
        return_cap(TEST_OWNER, cap).expect("return");
        assert_eq!(
            crate::mem::frames::free_bytes(),
            free,
            "the frames went back"
        );
    }
);

kernel_test!(
    fn another_owner_cannot_use_a_capability() {
        let cap = allocate_memory(TEST_OWNER, 4096).expect("memory for the test");
        let mut byte = [0u8; 1];
        assert_eq!(
            read_memory(OTHER_OWNER, &cap, 0, &mut byte),
            Err(CapError::NotOwner)
        );
        assert_eq!(
            write_memory(OTHER_OWNER, &cap, 0, &byte),
            Err(CapError::NotOwner)
        );
        assert!(
            entries()
                .iter()
                .any(|e| e.id == cap.id() && e.owner == TEST_OWNER),
            "listed for its owner"
        );
        return_cap(TEST_OWNER, cap).expect("return");
    }
);

kernel_test!(
    fn a_revoked_capability_never_touches_the_memory_again() {
        let free = crate::mem::frames::free_bytes();
        let cap = allocate_memory(TEST_OWNER, 4096).expect("memory for the test");
        let id = cap.id();
        revoke(id).expect("the kernel revokes");
        let mut byte = [7u8; 1];
        assert_eq!(
            write_memory(TEST_OWNER, &cap, 0, &byte),
            Err(CapError::Revoked)
        );
        assert_eq!(
            read_memory(TEST_OWNER, &cap, 0, &mut byte),
            Err(CapError::Revoked)
        );
        assert_eq!(byte, [7], "a refused read leaves the buffer alone");
        assert_eq!(return_cap(TEST_OWNER, cap), Err(CapError::Revoked));
        assert!(!entries().iter().any(|e| e.id == id));
        assert_eq!(
            crate::mem::frames::free_bytes(),
            free,
            "revocation freed the frames"
        );
    }
);

kernel_test!(
    fn an_ended_owner_loses_everything_it_held() {
        let free = crate::mem::frames::free_bytes();
        let a = allocate_memory(TEST_OWNER, 4096).expect("memory");
        let b = allocate_memory(TEST_OWNER, 8192).expect("memory");
        assert_eq!(release_owner(TEST_OWNER), Ok(2));
        assert_eq!(
            write_memory(TEST_OWNER, &a, 0, &[1]),
            Err(CapError::Revoked)
        );
        assert_eq!(
            write_memory(TEST_OWNER, &b, 0, &[1]),
            Err(CapError::Revoked)
        );
        assert_eq!(crate::mem::frames::free_bytes(), free);
    }
);
