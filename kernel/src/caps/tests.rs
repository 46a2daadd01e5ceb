//! Kernel tests of the capability layer (run in QEMU by `cargo xtask test`).
use super::*;
use crate::apps::App;
use crate::kernel_test;
use rexo_api::ApiError;

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

kernel_test!(
    fn a_quota_grants_up_to_its_size_and_returned_memory_makes_room() {
        const QUOTA_OWNER: OwnerId = OwnerId(29);
        let free = crate::mem::frames::free_bytes();
        set_quota(QUOTA_OWNER, Some(16 * 1024)).expect("a quota");
        let a = allocate_memory(QUOTA_OWNER, 8 * 1024).expect("half the quota");
        // 5000 bytes take two whole frames: exactly the rest of the quota.
        let b = allocate_memory(QUOTA_OWNER, 5000).expect("the rest of the quota");
        assert_eq!(held_bytes(QUOTA_OWNER), 16 * 1024);
        assert_eq!(
            allocate_memory(QUOTA_OWNER, 1).err(),
            Some(MemoryError::QuotaExceeded),
            "one more byte is past the quota"
        );
        assert_eq!(
            allocate_memory(QUOTA_OWNER, u64::MAX).err(),
            Some(MemoryError::OutOfMemory),
            "a size that overflows whole frames"
        );
        assert_eq!(
            held_bytes(QUOTA_OWNER),
            16 * 1024,
            "refusals charge nothing"
        );
        // Another owner is not limited by this quota.
        let other = allocate_memory(OTHER_OWNER, 64 * 1024).expect("no quota");
        return_cap(OTHER_OWNER, other).expect("return");
        return_cap(QUOTA_OWNER, a).expect("return");
        assert_eq!(held_bytes(QUOTA_OWNER), 8 * 1024);
        let c = allocate_memory(QUOTA_OWNER, 8 * 1024).expect("room again after a return");
        revoke(c.id()).expect("revoke");
        assert_eq!(held_bytes(QUOTA_OWNER), 8 * 1024, "revocation uncharges");
        assert_eq!(release_owner(QUOTA_OWNER), Ok(1));
        assert_eq!(held_bytes(QUOTA_OWNER), 0, "release uncharges");
        assert_eq!(
            write_memory(QUOTA_OWNER, &b, 0, &[1]),
            Err(CapError::Revoked)
        );
        set_quota(QUOTA_OWNER, None).expect("no quota");
        let big = allocate_memory(QUOTA_OWNER, 64 * 1024).expect("no limit any more");
        return_cap(QUOTA_OWNER, big).expect("return");
        assert_eq!(crate::mem::frames::free_bytes(), free);
        assert_eq!(
            set_quota(OwnerId(OWNERS as u16), Some(1)),
            Err(CapError::Full)
        );
    }
);

/// A run on another core whose app panics there: caught by that core's abort point.
mod apps_on_other_cores {
    use super::*;
    use crate::apps::{App, CoreSpan, run_as};
    use alloc::sync::Arc;
    use rexo_api::{ApiError, Kernel};

    fn confined_panicker(kernel: &dyn Kernel) -> Result<(), ApiError> {
        assert_eq!(
            (kernel.cores(), kernel.core_index()),
            (1, 1),
            "its one core"
        );
        let _held = kernel.allocate_memory(8192)?;
        assert_eq!(
            kernel.allocate_memory(1).err(),
            Some(ApiError::QuotaExceeded),
            "the quota holds for an app run"
        );
        panic!("an app panics on its own core (not the boot core)");
    }

    crate::kernel_test!(
        fn a_run_on_another_core_that_panics_ends_alone() {
            if crate::smp_cores() < 2 {
                return;
            }
            let app: &'static App = &App {
                name: "confined-panicker",
                about: "panics on core 1",
                main: confined_panicker,
            };
            let owner = OwnerId(20);
            let free = crate::mem::frames::free_bytes();
            let result = Arc::new(spin::Mutex::new(None));
            let slot = result.clone();
            let cores = CoreSpan { first: 1, count: 1 };
            let batch = crate::sched::batch();
            let queue = crate::sched::machine_queue();
            batch
                .submit_to(queue, 1, move || {
                    *slot.lock() = Some(run_as(app, owner, cores, Some(8192)));
                })
                .expect("submitted");
            batch.wait(queue, crate::arch::percpu::core_index());
            assert_eq!(*result.lock(), Some(Err(ApiError::Panicked)));
            assert_eq!(held_bytes(owner), 0, "its charge went back");
            assert_eq!(
                crate::mem::frames::free_bytes(),
                free,
                "its memory went back"
            );
            crate::sched::run_on_cores(crate::smp_cores(), |_| {}).expect("every core answers");
        }
    );
}

/// Capability operations between apps: derive, delegate, take back; split and merge.
mod sharing {
    use super::*;
    use crate::apps::{App, CoreSpan, api_as, run_as};
    use alloc::sync::Arc;
    use core::sync::atomic::{AtomicU64, Ordering};
    use rexo_api::{ApiError, Kernel, MemoryOp, Rights};

    /// What the receiver read from the memory delegated to it (0: nothing yet).
    static RECEIVED: AtomicU64 = AtomicU64::new(0);
    /// What the receiver saw when it wrote to the read-only child.
    static WRITE_REFUSED: AtomicU64 = AtomicU64::new(0);

    /// Waits (up to 5 s) for a delegated capability, reads it, tries to write it.
    fn receiver(kernel: &dyn Kernel) -> Result<(), ApiError> {
        let start = kernel.now_ns();
        while kernel.now_ns() - start < 5_000_000_000 {
            if let Some(cap) = kernel.received_memory().pop() {
                let mut word = [0u8; 8];
                kernel.read_memory(&cap, 0, &mut word)?;
                let refused = kernel.write_memory(&cap, 0, &[1])
                    == Err(ApiError::Refused(CapError::NoRight(Rights::WRITE)));
                WRITE_REFUSED.store(u64::from(refused), Ordering::Relaxed);
                RECEIVED.store(u64::from_le_bytes(word), Ordering::Relaxed);
                return Ok(());
            }
            core::hint::spin_loop();
        }
        Err(ApiError::NoSuchApp)
    }

    crate::kernel_test!(
        fn a_derived_read_only_child_is_delegated_read_and_taken_back() {
            if crate::smp_cores() < 2 {
                return;
            }
            let app: &'static App = &App {
                name: "cap-receiver",
                about: "receives memory",
                main: receiver,
            };
            let result = Arc::new(spin::Mutex::new(None));
            let slot = result.clone();
            let batch = crate::sched::batch();
            let queue = crate::sched::machine_queue();
            let cores = CoreSpan { first: 1, count: 1 };
            batch
                .submit_to(queue, 1, move || {
                    *slot.lock() = Some(run_as(app, OwnerId(23), cores, None))
                })
                .expect("submitted");
            let kernel = api_as(OwnerId(22));
            let parent = kernel.allocate_memory(8192).expect("memory");
            kernel
                .write_memory(&parent, 0, &0x5EED_CAFE_u64.to_le_bytes())
                .expect("written");
            let start = kernel
                .capabilities()
                .iter()
                .find(|e| e.id == parent.cap().id())
                .expect("listed")
                .resource
                .start();
            let too_much = MemoryOp::Derive {
                start,
                len: 4096,
                rights: Rights::READ | Rights::EXECUTE,
            };
            assert_eq!(
                kernel.memory_op(&parent, too_much).err(),
                Some(ApiError::Refused(CapError::NoRight(Rights::EXECUTE)))
            );
            let child = kernel
                .memory_op(
                    &parent,
                    MemoryOp::Derive {
                        start,
                        len: 4096,
                        rights: Rights::READ | Rights::DELEGATE,
                    },
                )
                .expect("derived")
                .expect("a child");
            let entry = child.cap().id();
            // The receiver may not be running yet: delegation names a running app, and a
            // refused one gives the capability back.
            let mut child = child;
            let begin = crate::time::now_ns();
            loop {
                match kernel.delegate_memory(child, "cap-receiver") {
                    Ok(()) => break,
                    Err((ApiError::NoSuchApp, back))
                        if crate::time::now_ns() - begin < 5_000_000_000 =>
                    {
                        child = back
                    }
                    Err((error, _)) => panic!("delegation refused: {error}"),
                }
            }
            batch.wait(queue, crate::arch::percpu::core_index());
            assert_eq!(*result.lock(), Some(Ok(())));
            assert_eq!(
                RECEIVED.load(Ordering::Relaxed),
                0x5EED_CAFE,
                "the receiver read the parent's memory"
            );
            assert_eq!(
                WRITE_REFUSED.load(Ordering::Relaxed),
                1,
                "read-only for the receiver"
            );
            assert!(
                kernel.capabilities().iter().all(|e| e.id != entry),
                "the child went when the receiver ended"
            );
            // Split and merge give back one capability over the same range; a cut must
            // fall on a frame.
            let half = kernel
                .memory_op(&parent, MemoryOp::Split { offset: 4096 })
                .expect("split")
                .expect("the high half");
            assert_eq!(
                kernel
                    .memory_op(&parent, MemoryOp::Split { offset: 4095 })
                    .err(),
                Some(ApiError::Refused(CapError::BadRange))
            );
            kernel
                .memory_op(&parent, MemoryOp::Merge { other: half })
                .expect("merged");
            // The parent's holder takes back a child it lent, by force.
            let lent = kernel
                .memory_op(
                    &parent,
                    MemoryOp::Derive {
                        start,
                        len: 4096,
                        rights: Rights::READ,
                    },
                )
                .expect("derived")
                .expect("a child");
            let mut word = [0u8; 8];
            kernel
                .read_memory(&lent, 0, &mut word)
                .expect("readable before");
            kernel
                .memory_op(
                    &parent,
                    MemoryOp::RevokeDerived {
                        entry: lent.cap().id(),
                    },
                )
                .expect("taken back");
            assert_eq!(
                kernel.read_memory(&lent, 0, &mut word).err(),
                Some(ApiError::Refused(CapError::Revoked))
            );
            kernel.return_memory(parent).expect("returned");
        }
    );
}

/// An app that gets a revocation request for its memory and gives the memory back in time.
fn compliant_app(kernel: &dyn rexo_api::Kernel) -> Result<(), ApiError> {
    let memory = kernel.allocate_memory(4096)?;
    // The kernel wants it back within 2 s (as it would when another app needs memory).
    request_revocation(memory.cap().id(), crate::time::now_ns() + 2_000_000_000).expect("request");
    let requests = kernel.revocation_requests();
    assert!(
        requests.iter().any(|r| r.id == memory.cap().id()),
        "the app sees the request: {requests:?}"
    );
    kernel.write_memory(&memory, 0, b"still mine until I return it")?;
    kernel.return_memory(memory)?;
    assert!(kernel.revocation_requests().is_empty(), "answered");
    Ok(())
}

/// An app that ignores a revocation request and uses the memory after the deadline.
fn stubborn_app(kernel: &dyn rexo_api::Kernel) -> Result<(), ApiError> {
    let memory = kernel.allocate_memory(4096)?;
    let deadline = crate::time::now_ns() + 1_000_000;
    request_revocation(memory.cap().id(), deadline).expect("request");
    while crate::time::now_ns() <= deadline {
        core::hint::spin_loop();
    }
    // Past the deadline: this use breaks the abort protocol and ends the app here.
    let _ = kernel.write_memory(&memory, 0, b"too late");
    panic!("the app went on after touching repossessed memory");
}

crate::kernel_test!(
    fn a_compliant_app_returns_memory_when_asked() {
        let app = App {
            name: "compliant",
            about: "returns memory when asked",
            main: compliant_app,
        };
        let free = crate::mem::frames::free_bytes();
        assert_eq!(crate::apps::run(&app), Ok(()));
        assert_eq!(crate::mem::frames::free_bytes(), free);
    }
);

crate::kernel_test!(
    fn an_app_that_ignores_revocation_loses_the_memory_and_ends_alone() {
        let app = App {
            name: "stubborn",
            about: "ignores revocation",
            main: stubborn_app,
        };
        let free = crate::mem::frames::free_bytes();
        assert_eq!(crate::apps::run(&app), Err(ApiError::Repossessed));
        assert_eq!(
            crate::mem::frames::free_bytes(),
            free,
            "the memory went back"
        );
        assert!(entries().is_empty(), "nothing is left in the table");
        // The kernel goes on.
        crate::sched::run_on_cores(crate::smp_cores(), |_| {}).expect("every core answers");
    }
);
