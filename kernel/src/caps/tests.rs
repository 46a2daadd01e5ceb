//! Kernel tests of the capability layer (run in QEMU by `cargo xtask test`).
use super::*;
use crate::apps::App;
use crate::kernel_test;
use rexo_api::ApiError;

/// The reason of a refused return, the capability it gave back dropped.
fn refused<C>((error, _given_back): (ApiError, C)) -> ApiError {
    error
}

/// Whether the table holds only what the kernel keeps for itself (its root over the
/// interrupt vectors): every app's capabilities are gone.
pub(crate) fn only_the_kernels_left() -> bool {
    entries().iter().all(|e| e.owner == OwnerId(0))
}

/// Owner `OWNERS - from_top`: tests count their owners down from the table's last one, so
/// that they name owners the table has whatever the number of apps linked in.
pub(crate) const fn top_owner(from_top: usize) -> OwnerId {
    OwnerId((OWNERS - from_top) as u16)
}

/// Sets `owner`'s memory quota (`None`: no limit), as a run of a fixed quota starts.
/// Memory it already holds stays.
fn set_quota(owner: OwnerId, quota: Option<u64>) -> Result<(), CapError> {
    with_state(|state| {
        let set = state.ledger.start_run(owner, Quota::Fixed(quota));
        set.map(|_| ()).map_err(|_| CapError::BadOwner(owner))
    })
}

/// The bytes of memory charged to `owner` (0 for an owner the table cannot hold).
fn held_bytes(owner: OwnerId) -> u64 {
    locked(|state| state.ledger.held(owner)).unwrap_or(0)
}

/// An owner no app of the image uses.
const TEST_OWNER: OwnerId = top_owner(2);
const OTHER_OWNER: OwnerId = top_owner(1);

kernel_test!(
    fn the_capability_table_is_never_abandoned_at_an_app_abort_point() {
        use crate::arch::abort::{can_abort, run_abortable};
        let mut inside = None;
        let ran = run_abortable(|| inside = Some(with_state(|_| Ok(can_abort()))));
        assert_eq!(ran, Ok(()));
        assert_eq!(
            inside,
            Some(Ok(false)),
            "a panic with the table locked would be the kernel's crash"
        );
    }
);

/// An app run started on core 1 by [`on_core_1`].
struct OnCore1 {
    batch: rexo_workqueue::Batch,
    result: alloc::sync::Arc<spin::Mutex<Option<Result<(), ApiError>>>>,
}

/// Starts `app` on core 1 as `owner` within `quota`, then `also` there when it returns.
fn on_core_1(app: &'static App, owner: OwnerId, quota: Option<u64>, also: fn()) -> OnCore1 {
    let result = alloc::sync::Arc::new(spin::Mutex::new(None));
    let slot = result.clone();
    let batch = crate::sched::batch();
    let cores = crate::apps::CoreSpan { first: 1, count: 1 };
    batch
        .submit_to(crate::sched::machine_queue(), 1, move || {
            *slot.lock() = Some(crate::apps::run_as(app, owner, cores, quota));
            also();
        })
        .expect("submitted");
    OnCore1 { batch, result }
}

impl OnCore1 {
    /// How the run ended, if it has.
    fn result(&self) -> Option<Result<(), ApiError>> {
        *self.result.lock()
    }

    /// Waits for the run (running queued work meanwhile) and says how it ended.
    fn finish(self) -> Option<Result<(), ApiError>> {
        let queue = crate::sched::machine_queue();
        self.batch.wait(queue, crate::arch::percpu::core_index());
        self.result()
    }
}

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
        return_cap(TEST_OWNER, cap, ResourceKind::Memory).expect("return");
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
        return_cap(TEST_OWNER, cap, ResourceKind::Memory).expect("return");
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
        assert_eq!(
            return_cap(TEST_OWNER, cap, ResourceKind::Memory).map_err(|(error, _)| error),
            Err(CapError::Revoked)
        );
        assert!(!entries().iter().any(|e| e.id == id));
        assert_eq!(
            crate::mem::frames::free_bytes(),
            free,
            "revocation freed the frames"
        );
    }
);

kernel_test!(
    fn an_interrupt_binding_taken_by_force_queues_the_sweep_that_disarms_its_source() {
        let queued = || crate::sched::machine_queue().stats().submitted;
        let entry = bind_interrupt(TEST_OWNER, 33).expect("a binding of the wake vector");
        let before = queued();
        revoke(entry).expect("the kernel revokes");
        assert!(!is_live(entry), "taken");
        assert!(
            queued() > before,
            "the sweep (devices::disarm_revoked) was queued"
        );
        take_delegated(TEST_OWNER, ResourceKind::InterruptVector);
    }
);

kernel_test!(
    fn a_binding_past_the_kernels_budget_is_refused() {
        let root = locked(|state| state.vectors).and_then(Result::ok);
        let root = root.expect("the kernel's root over the vectors");
        let bound = || entries().iter().filter(|e| e.parent == Some(root)).count();
        let max = rexo_api::MAX_INTERRUPT_BINDINGS;
        for _ in bound()..max {
            bind_interrupt(TEST_OWNER, 33).expect("a binding within the budget");
        }
        let refused = bind_interrupt(TEST_OWNER, 33);
        assert_eq!(refused, Err(CapError::TooManyShares { max }));
        assert_eq!(
            bound(),
            max,
            "the kernel's reserve holds them, the apps' room is theirs"
        );
        let return_all = || {
            for cap in take_delegated(TEST_OWNER, ResourceKind::InterruptVector) {
                let returned = return_cap(TEST_OWNER, cap, ResourceKind::InterruptVector);
                assert!(returned.is_ok(), "returned");
            }
        };
        return_all();
        bind_interrupt(TEST_OWNER, 33).expect("room again, once bindings went");
        return_all();
    }
);

kernel_test!(
    fn delegating_or_returning_a_binding_forfeited_at_a_deadline_ends_the_task() {
        use crate::arch::abort::{Aborted, run_abortable};
        let api = crate::apps::api_as(TEST_OWNER);
        let memory = api.allocate_memory(4096).expect("memory");
        bind_interrupt(TEST_OWNER, 33).expect("a binding of the wake vector");
        let binding = api.interrupt_caps().pop().expect("picked up");
        for id in [memory.cap().id(), binding.cap().id()] {
            request_revocation(id, crate::time::now_ns()).expect("requested");
        }
        assert!(revocation_requests(TEST_OWNER).is_empty(), "taken by force");
        // `api_as` acts as the app "kernel", so the receiver runs: the capability is used.
        let delegated = crate::apps::acting_as(&api, || {
            run_abortable(|| {
                let _refused = api.delegate_memory(memory, "kernel");
            })
        });
        assert_eq!(delegated, Err(Aborted), "ended, not refused");
        let ended = crate::apps::ENDED_BY_REPOSSESSION;
        assert_eq!(crate::apps::ended_reason(), ended);
        let returned = crate::apps::acting_as(&api, || {
            run_abortable(|| {
                let _refused = api.return_interrupt(binding);
            })
        });
        assert_eq!(returned, Err(Aborted), "ended, not refused");
        assert_eq!(crate::apps::ended_reason(), ended);
        assert_eq!(release_owner(TEST_OWNER), Ok(0));
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
    fn grants_leave_the_kernel_its_reserve() {
        use crate::mem::frames;
        // Hold frames until one frame more than the reserve is free.
        let target = KERNEL_RESERVE + 4096;
        let mut held = Vec::new();
        let mut chunk = 1u64 << 20;
        while frames::free_bytes() > target && chunk >= 4096 {
            let want = chunk.min(frames::free_bytes() - target);
            match frames::allocate(want, 4096) {
                Ok(range) => held.push(range),
                Err(_) => chunk /= 2,
            }
        }
        let at_edge = frames::free_bytes() == target;
        // Two frames fit in what is free, but not with the reserve left; one does.
        let two = allocate_memory(TEST_OWNER, 8192).err();
        let one = allocate_memory(TEST_OWNER, 4096);
        let one_ok = one.is_ok();
        if let Ok(cap) = one {
            return_cap(TEST_OWNER, cap, ResourceKind::Memory).expect("return");
        }
        held.into_iter().for_each(frames::free);
        assert!(at_edge, "could not bring free memory to the reserve's edge");
        assert_eq!(two, Some(MemoryError::OutOfMemory));
        assert!(one_ok, "a grant that leaves exactly the reserve");
        assert_eq!(held_bytes(TEST_OWNER), 0);
    }
);

kernel_test!(
    fn a_quota_grants_up_to_its_size_and_returned_memory_makes_room() {
        const QUOTA_OWNER: OwnerId = top_owner(3);
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
            Some(MemoryError::QuotaExceeded),
            "a size that overflows whole frames is past any quota"
        );
        assert_eq!(
            allocate_memory(QUOTA_OWNER, 0).err(),
            Some(MemoryError::Cap(CapError::BadRange)),
            "no bytes: a bad range, whatever the quota"
        );
        assert_eq!(
            held_bytes(QUOTA_OWNER),
            16 * 1024,
            "refusals charge nothing"
        );
        // Another owner is not limited by this quota.
        let other = allocate_memory(OTHER_OWNER, 64 * 1024).expect("no quota");
        return_cap(OTHER_OWNER, other, ResourceKind::Memory).expect("return");
        return_cap(QUOTA_OWNER, a, ResourceKind::Memory).expect("return");
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
        return_cap(QUOTA_OWNER, big, ResourceKind::Memory).expect("return");
        assert_eq!(crate::mem::frames::free_bytes(), free);
        assert_eq!(
            set_quota(OwnerId(OWNERS as u16), Some(1)),
            Err(CapError::BadOwner(OwnerId(OWNERS as u16)))
        );
    }
);

kernel_test!(
    fn a_grant_returned_but_for_a_page_handed_away_gives_the_rest_back_at_once() {
        const QUOTA_OWNER: OwnerId = top_owner(3);
        let free = crate::mem::frames::free_bytes();
        set_quota(QUOTA_OWNER, Some(64 * 1024)).expect("a quota");
        start_owner(OTHER_OWNER, Quota::Fixed(None)).expect("the receiver runs");
        let big = allocate_memory(QUOTA_OWNER, 64 * 1024).expect("the whole quota");
        let split = rexo_api::MemoryOp::Split { offset: 60 * 1024 };
        let page = memory_op(QUOTA_OWNER, &big, split)
            .expect("split")
            .expect("the last page");
        delegate(QUOTA_OWNER, page, OTHER_OWNER)
            .map_err(|(error, _)| error)
            .expect("delegated");
        let before = crate::mem::frames::free_bytes();
        return_cap(QUOTA_OWNER, big, ResourceKind::Memory)
            .map_err(|(error, _)| error)
            .expect("returned");
        assert_eq!(
            crate::mem::frames::free_bytes() - before,
            60 * 1024,
            "all but the page handed away went back"
        );
        assert_eq!(held_bytes(QUOTA_OWNER), 4096, "charged for that page only");
        let again = allocate_memory(QUOTA_OWNER, 60 * 1024);
        assert!(again.is_ok(), "room again for all it gave back");
        release_owner(OTHER_OWNER).expect("the receiver ends");
        assert_eq!(held_bytes(QUOTA_OWNER), 60 * 1024, "the page went back");
        release_owner(QUOTA_OWNER).expect("ends");
        assert_eq!(held_bytes(QUOTA_OWNER), 0);
        assert_eq!(crate::mem::frames::free_bytes(), free);
    }
);

/// A run on another core whose app panics there: caught by that core's abort point.
mod apps_on_other_cores {
    use super::*;
    use crate::apps::App;
    use rexo_api::{ApiError, Kernel};

    fn confined_panicker(kernel: &Kernel) -> Result<(), ApiError> {
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
            let app: &'static App =
                &const { App::new("confined-panicker", "panics on core 1", confined_panicker) };
            let owner = top_owner(12);
            let free = crate::mem::frames::free_bytes();
            let run = on_core_1(app, owner, Some(8192), || {});
            assert_eq!(run.finish(), Some(Err(ApiError::Panicked)));
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

/// Holds its run open until [`LET_GO`] is set.
static LET_GO: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
/// Runs of `held_open` started: only the first waits (a second, were it let run, ends at
/// once and its end takes back what the owner holds).
static STARTED: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

fn held_open(kernel: &rexo_api::Kernel) -> Result<(), ApiError> {
    if STARTED.fetch_add(1, core::sync::atomic::Ordering::AcqRel) > 0 {
        return Ok(());
    }
    let memory = kernel.allocate_memory(4096)?;
    while !LET_GO.load(core::sync::atomic::Ordering::Acquire) {
        core::hint::spin_loop();
    }
    kernel.write_memory(&memory, 0, b"still mine")
}

kernel_test!(
    fn an_owner_runs_once_at_a_time() {
        if crate::smp_cores() < 2 {
            return;
        }
        let app: &'static App = &const { App::new("held-open", "runs until let go", held_open) };
        let owner = top_owner(13);
        LET_GO.store(false, core::sync::atomic::Ordering::Release);
        STARTED.store(0, core::sync::atomic::Ordering::Release);
        let run = on_core_1(app, owner, None, || {});
        while held_bytes(owner) == 0 {
            core::hint::spin_loop();
        }
        // A second run of the same owner would take the first one's memory back at its end.
        let second = crate::apps::run_as(
            app,
            owner,
            crate::apps::CoreSpan { first: 0, count: 1 },
            None,
        );
        assert_eq!(second, Err(ApiError::AlreadyRunning));
        LET_GO.store(true, core::sync::atomic::Ordering::Release);
        assert_eq!(run.finish(), Some(Ok(())), "the first run kept its memory");
        assert_eq!(held_bytes(owner), 0);
    }
);

/// Runs the app of its own name with `run_app`, as an app calling
/// `k.run_app(k.run().name)`, and returns how that went.
fn runs_itself(kernel: &rexo_api::Kernel) -> Result<(), ApiError> {
    kernel.run_app(kernel.run().name)
}

kernel_test!(
    fn run_app_is_refused_while_a_manifest_entry_runs_the_app() {
        // Named as the image's hello, so that run_app finds an app of its name: a second
        // run of it would greet and return Ok.
        let app: &'static App =
            &const { App::new("hello", "runs the app of its own name", runs_itself) };
        let first_entry = rexo_cmdline::manifest_owner(crate::apps::APP_COUNT, 0) as u16;
        let cores = crate::apps::CoreSpan { first: 0, count: 1 };
        let run = crate::apps::run_as(app, OwnerId(first_entry), cores, Some(1 << 20));
        assert_eq!(run, Err(ApiError::AlreadyRunning), "a second hello ran");
    }
);

/// With 8 MiB of quota (memdemo's own need), holds 7.5 MiB and runs memdemo: it gets only
/// what is left; with the memory given back, memdemo has room.
fn runs_memdemo_on_what_is_left(kernel: &rexo_api::Kernel) -> Result<(), ApiError> {
    let most = kernel.allocate_memory(15 << 19)?;
    assert_eq!(kernel.run_app("memdemo"), Err(ApiError::AppFailed(1)));
    kernel.return_memory(most).map_err(refused)?;
    kernel.run_app("memdemo")
}

kernel_test!(
    fn run_app_gives_the_child_what_is_left_of_the_callers_quota() {
        let app: &'static App = &const {
            App::new(
                "quota-parent",
                "runs memdemo within its quota",
                runs_memdemo_on_what_is_left,
            )
        };
        let boot_core = crate::apps::CoreSpan { first: 0, count: 1 };
        let result = crate::apps::run_as(app, top_owner(14), boot_core, Some(8 << 20));
        assert_eq!(result, Ok(()));
    }
);

/// Capability operations between apps: derive, delegate, take back; split and merge.
mod sharing {
    use super::*;
    use crate::apps::{App, api_as};
    use core::sync::atomic::{AtomicU64, Ordering};
    use rexo_api::{ApiError, Kernel, MemoryOp, Rights};

    /// What the receiver read from the memory delegated to it (0: nothing yet).
    static RECEIVED: AtomicU64 = AtomicU64::new(0);
    /// What the receiver saw when it wrote to the read-only child.
    static WRITE_REFUSED: AtomicU64 = AtomicU64::new(0);

    /// Waits (up to 5 s) for a delegated capability, reads it, tries to write it.
    fn receiver(kernel: &Kernel) -> Result<(), ApiError> {
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
            let app: &'static App =
                &const { App::new("cap-receiver", "receives memory", receiver) };
            let run = on_core_1(app, top_owner(9), None, || {});
            let kernel = api_as(top_owner(10));
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
            assert_eq!(run.finish(), Some(Ok(())));
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
                .memory_op(&parent, MemoryOp::Merge { other: &half })
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
            kernel
                .return_memory(parent)
                .map_err(refused)
                .expect("returned");
        }
    );
}

/// An app that gets a revocation request for its memory and gives the memory back in time.
fn compliant_app(kernel: &rexo_api::Kernel) -> Result<(), ApiError> {
    let memory = kernel.allocate_memory(4096)?;
    // The kernel wants it back within 2 s (as it would when another app needs memory).
    request_revocation(memory.cap().id(), crate::time::now_ns() + 2_000_000_000).expect("request");
    let requests = kernel.revocation_requests();
    assert!(
        requests.iter().any(|r| r.id == memory.cap().id()),
        "the app sees the request: {requests:?}"
    );
    kernel.write_memory(&memory, 0, b"still mine until I return it")?;
    kernel.return_memory(memory).map_err(refused)?;
    assert!(kernel.revocation_requests().is_empty(), "answered");
    Ok(())
}

/// An app that ignores a revocation request and uses the memory after the deadline.
fn stubborn_app(kernel: &rexo_api::Kernel) -> Result<(), ApiError> {
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
        let app = App::new("compliant", "returns memory when asked", compliant_app);
        let free = crate::mem::frames::free_bytes();
        assert_eq!(crate::apps::run(&app), Ok(()));
        assert_eq!(crate::mem::frames::free_bytes(), free);
    }
);

crate::kernel_test!(
    fn an_app_that_ignores_revocation_loses_the_memory_and_ends_alone() {
        let app = App::new("stubborn", "ignores revocation", stubborn_app);
        let free = crate::mem::frames::free_bytes();
        assert_eq!(crate::apps::run(&app), Err(ApiError::Repossessed));
        assert_eq!(
            crate::mem::frames::free_bytes(),
            free,
            "the memory went back"
        );
        assert!(only_the_kernels_left(), "nothing is left in the table");
        // The kernel goes on.
        crate::sched::run_on_cores(crate::smp_cores(), |_| {}).expect("every core answers");
    }
);

/// Zero copy: views of memory capabilities, and what a forced revocation does to them.
mod views {
    use super::*;
    use crate::apps::{App, CoreSpan, api_as, run_as};
    use crate::arch::abort::{Aborted, run_abortable};
    use crate::arch::paging::tests::is_mapped;
    use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use rexo_api::{ApiError, Kernel, MemoryOp, Rights};

    /// Maps, writes, reads; is refused a second mapping of shared memory; returns in time.
    fn compliant_mapper(kernel: &Kernel) -> Result<(), ApiError> {
        let mut cap = kernel.allocate_memory(8192)?;
        let id = cap.cap().id();
        kernel.map_memory(&mut cap, |view| {
            assert_eq!(view.len(), 8192);
            assert!(view.iter().all(|&b| b == 0), "granted memory is zeroed");
            view[8000..8009].copy_from_slice(b"zero copy");
        })?;
        request_revocation(id, u64::MAX - 1).expect("request");
        let mut word = [0u8; 9];
        kernel.read_memory(&cap, 8000, &mut word)?;
        assert_eq!(
            &word, b"zero copy",
            "the copying calls see what the view wrote"
        );
        kernel.return_memory(cap).map_err(refused)?;
        assert!(kernel.revocation_requests().is_empty(), "answered");
        // Memory another capability also names is not mapped for one holder alone.
        let mut parent = kernel.allocate_memory(8192)?;
        let start = kernel
            .capabilities()
            .iter()
            .find(|e| e.id == parent.cap().id())
            .map(|e| e.resource.start())
            .expect("listed");
        let derive = MemoryOp::Derive {
            start,
            len: 4096,
            rights: Rights::READ | Rights::WRITE,
        };
        let mut child = kernel.memory_op(&parent, derive)?.expect("a child");
        let overlaps = Some(ApiError::Refused(CapError::Overlaps));
        assert_eq!(kernel.map_memory(&mut parent, |_| ()).err(), overlaps);
        assert_eq!(kernel.map_memory(&mut child, |_| ()).err(), overlaps);
        let read_only = MemoryOp::Derive {
            start,
            len: 4096,
            rights: Rights::READ,
        };
        let mut reader = kernel.memory_op(&child, read_only)?.expect("a grandchild");
        assert_eq!(
            kernel.map_memory(&mut reader, |_| ()).err(),
            Some(ApiError::Refused(CapError::NoRight(Rights::WRITE)))
        );
        kernel.return_memory(parent).map_err(refused)?;
        assert_eq!(
            kernel.map_memory(&mut child, |_| ()).err(),
            Some(ApiError::Refused(CapError::Revoked)),
            "a returned capability is not mapped"
        );
        Ok(())
    }

    crate::kernel_test!(
        fn a_compliant_app_maps_writes_reads_and_returns_memory() {
            let app = App::new(
                "compliant-mapper",
                "maps memory and returns it",
                compliant_mapper,
            );
            let free = crate::mem::frames::free_bytes();
            assert_eq!(crate::apps::run(&app), Ok(()));
            assert_eq!(crate::mem::frames::free_bytes(), free);
        }
    );

    crate::kernel_test!(
        fn a_view_of_a_revoked_capability_never_reaches_the_memory() {
            let owner = top_owner(4);
            let api = api_as(owner);
            let free = crate::mem::frames::free_bytes();
            let mut cap = api.allocate_memory(8192).expect("memory");
            let id = cap.cap().id();
            // The kernel's own view (an app's cannot outlive its call): it stays while the
            // capability is taken by force, as a view an app holds inside its call does.
            let view = map(owner, &mut cap).expect("mapped");
            view[0] = 0x11;
            view[4096] = 0x22;
            let start = view.as_ptr() as u64;
            // The deadline passes; the next capability call enforces it.
            request_revocation(id, crate::time::now_ns()).expect("requested");
            assert!(revocation_requests(owner).is_empty(), "taken by force");
            assert!(was_repossessed(owner, id), "recorded as forfeited");
            assert!(!is_mapped(start) && !is_mapped(start + 4096), "unmapped");
            let region = revoked_region(start + 4096).map(|(r, o)| (r.start(), r.len(), o));
            assert_eq!(region, Some((start, 8192, owner)));
            assert!(
                crate::mem::frames::free_bytes() < free,
                "kept out of the free pool"
            );
            // A write and a read through the view each end the task at its abort point.
            let write = crate::apps::acting_as(&api, || {
                run_abortable(|| core::hint::black_box(&mut *view)[0] = 0x33)
            });
            assert_eq!(write, Err(Aborted), "the write faulted");
            assert_eq!(
                crate::apps::ended_reason(),
                crate::apps::ENDED_BY_REPOSSESSION
            );
            let read = crate::apps::acting_as(&api, || {
                run_abortable(|| {
                    let byte = core::hint::black_box(&*view)[4096];
                    panic!("read {byte:#x} through a revoked view");
                })
            });
            assert_eq!(read, Err(Aborted));
            assert_eq!(
                crate::apps::ended_reason(),
                crate::apps::ENDED_BY_REPOSSESSION
            );
            assert_eq!(release_owner(owner), Ok(0), "nothing left but the region");
            assert!(
                is_mapped(start) && revoked_region(start).is_none(),
                "mapped back"
            );
            // SAFETY: identity-mapped RAM just freed, which nothing has taken since (this
            // test is the only thing running); reading it changes nothing.
            let bytes = unsafe {
                (
                    core::ptr::read_volatile(start as *const u8),
                    core::ptr::read_volatile((start + 4096) as *const u8),
                )
            };
            assert_eq!(
                bytes,
                (0x11, 0x22),
                "the write through the revoked view never landed"
            );
            assert_eq!(
                crate::mem::frames::free_bytes(),
                free,
                "freed once the owner ended"
            );
        }
    );

    /// Text of an app's that the console reads as the framebuffer's copy does: with this
    /// core holding the framebuffer console (under the console lock).
    struct ReadForTheFramebuffer<'a>(&'a [u8]);

    impl core::fmt::Display for ReadForTheFramebuffer<'_> {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            let _held = crate::console::framebuffer::CONSOLE.lock();
            let byte = core::hint::black_box(self.0)[0];
            write!(f, "tests: read {byte:#x} through a revoked view")
        }
    }

    crate::kernel_test!(
        fn a_fault_on_revoked_text_in_the_framebuffer_copy_leaves_both_consoles_free() {
            let owner = top_owner(15);
            let api = api_as(owner);
            let mut cap = api.allocate_memory(4096).expect("memory");
            let id = cap.cap().id();
            let view = map(owner, &mut cap).expect("mapped");
            view[0] = b'x';
            // The view's deadline passes mid-write: the copy faults and ends the task.
            request_revocation(id, crate::time::now_ns()).expect("requested");
            assert!(revocation_requests(owner).is_empty(), "taken by force");
            let written = crate::apps::acting_as(&api, || {
                run_abortable(|| crate::kprintln!("{}", ReadForTheFramebuffer(view)))
            });
            assert_eq!(written, Err(Aborted), "the read faulted");
            assert_eq!(
                crate::apps::ended_reason(),
                crate::apps::ENDED_BY_REPOSSESSION
            );
            assert!(crate::console::is_free(), "the console lock was released");
            assert!(
                !crate::console::framebuffer::CONSOLE.is_locked(),
                "the framebuffer console was left locked: it would show nothing more"
            );
            assert_eq!(release_owner(owner), Ok(0), "nothing left but the region");
        }
    );

    /// Passes the bytes of its own view, revoked by then, to the copying calls.
    fn copies_through_its_revoked_view(kernel: &Kernel) -> Result<(), ApiError> {
        let mut view_cap = kernel.allocate_memory(4096)?;
        let other = kernel.allocate_memory(4096)?;
        let id = view_cap.cap().id();
        kernel.map_memory(&mut view_cap, |bytes| {
            bytes[0] = 1;
            request_revocation(id, crate::time::now_ns()).expect("requested");
            // Each call enforces the deadline first, then would copy from or into memory
            // just unmapped, with the table's lock held: refused instead.
            let refused = Err(ApiError::Refused(CapError::Revoked));
            assert_eq!(kernel.write_memory(&other, 0, bytes), refused);
            assert_eq!(kernel.read_memory(&other, 0, bytes), refused);
        })?;
        kernel.return_memory(other).map_err(refused)
    }

    crate::kernel_test!(
        fn copying_calls_refuse_a_buffer_in_revoked_memory() {
            let app = App::new(
                "revoked-copier",
                "copies through its own revoked view",
                copies_through_its_revoked_view,
            );
            let free = crate::mem::frames::free_bytes();
            assert_eq!(crate::apps::run(&app), Ok(()));
            assert_eq!(crate::mem::frames::free_bytes(), free, "all went back");
        }
    );

    /// The stubborn mapper's capability and the address of its memory, once mapped.
    static STUBBORN: spin::Mutex<Option<(EntryId, u64)>> = spin::Mutex::new(None);
    static STUBBORN_TOUCHES: AtomicU64 = AtomicU64::new(0);
    static STUBBORN_ENDED: AtomicBool = AtomicBool::new(false);
    /// How many touches the stubborn app had made when the bystander saw the deadline
    /// enforced.
    static SEEN: spin::Mutex<Option<u64>> = spin::Mutex::new(None);
    const STUBBORN_OWNER: OwnerId = top_owner(8);
    const TEN_SECONDS: u64 = 10_000_000_000;

    /// Maps memory and keeps touching it, revocation request or not (up to 10 s).
    fn stubborn_mapper(kernel: &Kernel) -> Result<(), ApiError> {
        let mut cap = kernel.allocate_memory(8192)?;
        let id = cap.cap().id();
        kernel.map_memory(&mut cap, |view| {
            view.fill(0x5A);
            *STUBBORN.lock() = Some((id, view.as_ptr() as u64));
            let begin = kernel.now_ns();
            while kernel.now_ns() - begin < TEN_SECONDS {
                let bytes = core::hint::black_box(&mut *view);
                bytes[100] = bytes[100].wrapping_add(1);
                STUBBORN_TOUCHES.fetch_add(1, Ordering::Relaxed);
            }
        })?;
        Err(ApiError::AppFailed(1))
    }

    /// Waits up to 10 s for `done`.
    fn wait_for(kernel: &Kernel, done: impl Fn() -> bool) -> Result<(), ApiError> {
        let begin = kernel.now_ns();
        while !done() {
            if kernel.now_ns() - begin > TEN_SECONDS {
                return Err(ApiError::AppFailed(2));
            }
            core::hint::spin_loop();
        }
        Ok(())
    }

    /// Runs beside the stubborn mapper with memory of its own: asks for the stubborn
    /// app's memory, lets the deadline pass, and goes on while the kernel ends it.
    fn bystander(kernel: &Kernel) -> Result<(), ApiError> {
        let mut cap = kernel.allocate_memory(4096)?;
        kernel.map_memory(&mut cap, |view| {
            view[..6].copy_from_slice(b"mine!!");
            wait_for(kernel, || STUBBORN.lock().is_some())?;
            let (id, start) = STUBBORN.lock().expect("mapped");
            let deadline = kernel.now_ns() + 20_000_000;
            request_revocation(id, deadline).expect("request");
            // The kernel's timer takes the memory at the deadline, while the stubborn app
            // keeps touching it; its next touch ends it.
            wait_for(kernel, || !entries().iter().any(|e| e.id == id))?;
            // From here on no touch of the stubborn app reaches its memory: at most the one
            // whose write landed before the revocation is still to be counted.
            *SEEN.lock() = Some(STUBBORN_TOUCHES.load(Ordering::Relaxed));
            wait_for(kernel, || STUBBORN_ENDED.load(Ordering::Relaxed))?;
            assert!(is_mapped(start), "mapped back once the stubborn app ended");
            assert_eq!(&view[..6], b"mine!!", "the bystander's memory is untouched");
            Ok(())
        })??;
        kernel.return_memory(cap).map_err(refused)
    }

    crate::kernel_test!(
        fn a_stubborn_app_that_touches_revoked_memory_is_ended_while_another_runs_on() {
            if crate::smp_cores() < 2 {
                return;
            }
            let stubborn: &'static App = &const {
                App::new(
                    "stubborn-mapper",
                    "keeps touching memory after its revocation deadline",
                    stubborn_mapper,
                )
            };
            let other = App::new("bystander", "runs beside the stubborn mapper", bystander);
            let free = crate::mem::frames::free_bytes();
            let run = on_core_1(stubborn, STUBBORN_OWNER, None, || {
                STUBBORN_ENDED.store(true, Ordering::Release)
            });
            let here = CoreSpan { first: 0, count: 1 };
            assert_eq!(run_as(&other, top_owner(7), here, None), Ok(()));
            assert_eq!(run.finish(), Some(Err(ApiError::Repossessed)));
            let touches = SEEN.lock().expect("the bystander looked");
            assert!(
                STUBBORN_TOUCHES.load(Ordering::Relaxed) <= touches + 1,
                "no touch got through after the revocation"
            );
            assert_eq!(
                crate::mem::frames::free_bytes(),
                free,
                "freed after it ended"
            );
            assert!(only_the_kernels_left(), "nothing is left in the table");
            crate::sched::run_on_cores(crate::smp_cores(), |_| {}).expect("every core answers");
        }
    );

    crate::kernel_test!(
        fn a_load_whose_source_is_taken_mid_copy_leaves_no_lock_held() {
            let owner = top_owner(5);
            let api = api_as(owner);
            let start_of = |cap: &rexo_api::MemoryCap| {
                let entries = entries();
                let entry = entries.iter().find(|e| e.id == cap.cap().id());
                entry.map(|e| e.resource.start()).expect("listed")
            };
            // Two pages next to each other: the binary starts in the first, which stays, and
            // runs on into the second, which is taken by force while the app has it mapped.
            let mut caps = alloc::vec::Vec::new();
            let (first, mut second) = loop {
                let cap = api.allocate_memory(4096).expect("memory");
                let start = start_of(&cap);
                let after = caps.iter().position(|c| start_of(c) + 4096 == start);
                let before = caps.iter().position(|c| start_of(c) == start + 4096);
                match (after, before) {
                    (Some(at), _) => break (caps.swap_remove(at), cap),
                    (None, Some(at)) => break (cap, caps.swap_remove(at)),
                    (None, None) => caps.push(cap),
                }
            };
            let start = start_of(&first);
            // `ret` everywhere: a half-copied binary run by mistake returns.
            api.write_memory(&first, 0, &[0xC3; 4096]).expect("written");
            let view = map(owner, &mut second).expect("mapped");
            view.fill(0x90);
            request_revocation(second.cap().id(), crate::time::now_ns()).expect("asked");
            assert!(revocation_requests(owner).is_empty(), "taken by force");
            // SAFETY: the two pages are identity-mapped frames `owner` holds (the second one
            // taken by force and unmapped: the copy faults there, as an app's would); nothing
            // writes them while the slice lives.
            let image = unsafe { core::slice::from_raw_parts(start as *const u8, 8192) };
            let mut recorded = Some(Some(1));
            let aborted = crate::apps::acting_as(&api, || {
                run_abortable(|| {
                    let _ = crate::baremetal::load(Some(image), |size| recorded = Some(size));
                })
            });
            assert_eq!(aborted, Err(Aborted), "the copy faulted");
            assert_eq!(
                crate::apps::ended_reason(),
                crate::apps::ENDED_BY_REPOSSESSION
            );
            assert_eq!(
                recorded,
                Some(None),
                "the binary before is gone, none recorded"
            );
            assert_eq!(
                crate::baremetal::run_loaded(),
                Err(rexo_api::BinaryError::NotLoaded),
                "half a binary is not run, though exec looked before the load began"
            );
            // Without the abort point around the copy this would wait forever for the area.
            assert_eq!(
                crate::baremetal::load(Some(&[0xC3]), |size| recorded = Some(size)),
                Ok(1),
                "the area is free again"
            );
            assert_eq!(recorded, Some(Some(1)), "a finished copy is recorded");
            drop((first, second, caps));
            assert!(release_owner(owner).is_ok());
        }
    );

    crate::kernel_test!(
        fn a_baremetal_program_ended_in_a_call_leaves_no_run_counted_and_no_device_held() {
            let owner = top_owner(16);
            let api = api_as(owner);
            let mut cap = api.allocate_memory(4096).expect("memory");
            let start = map(owner, &mut cap).expect("mapped").as_ptr() as u64;
            request_revocation(cap.cap().id(), crate::time::now_ns()).expect("asked");
            assert!(revocation_requests(owner).is_empty(), "taken by force");
            // b_net_tx of 60 bytes at `start`, then a read of its first byte: with an
            // interface (q35's e1000e) the copy inside the call faults and the app ends once
            // the call is done with the device, which its lease still holds; without one,
            // the read faults.
            let mut binary = alloc::vec![0x48, 0xBE]; // mov rsi, start
            binary.extend(start.to_le_bytes());
            binary.extend([0xB9, 60, 0, 0, 0]); // mov ecx, 60
            binary.extend([0x31, 0xD2]); // xor edx, edx
            binary.extend([0xFF, 0x14, 0x25, 0x20, 0x00, 0x10, 0x00]); // call [b_net_tx]
            binary.extend([0x8A, 0x06, 0xC3]); // mov al, [rsi]; ret
            let size = binary.len() as u64;
            assert_eq!(crate::baremetal::load(Some(&binary), |_| ()), Ok(size));
            let run = crate::apps::acting_as(&api, || {
                run_abortable(|| {
                    let _ = crate::baremetal::run_loaded();
                })
            });
            assert_eq!(run, Err(Aborted), "the program faulted");
            assert_eq!(
                crate::apps::ended_reason(),
                crate::apps::ENDED_BY_REPOSSESSION
            );
            assert_eq!(
                crate::baremetal::load(Some(&[0xC3]), |_| ()),
                Ok(1),
                "no run of the ended program is counted"
            );
            let registry = crate::devices::machine().registry();
            let nic = registry.open(rexo_api::DeviceKind::Net, 0, (owner.0, "test"));
            assert!(
                !matches!(nic, Err(ApiError::DeviceBusy(_))),
                "the interface is not held by the ended call"
            );
            drop((nic, cap));
            assert!(release_owner(owner).is_ok());
        }
    );
}

/// The timer enforces a revocation deadline that nobody calls the kernel after.
mod timer {
    use super::*;
    use crate::apps::{App, CoreSpan, run_as};
    use crate::arch::paging::tests::is_mapped;
    use core::sync::atomic::{AtomicBool, Ordering};
    use rexo_api::Kernel;

    /// The spinner's capability and the address of its memory, once mapped.
    static SPINNER: spin::Mutex<Option<(EntryId, u64)>> = spin::Mutex::new(None);
    /// Set once the deadline was enforced (or the bystander gave up): touch the memory.
    static TOUCH: AtomicBool = AtomicBool::new(false);
    const SPINNER_OWNER: OwnerId = top_owner(10);
    const TEN_SECONDS: u64 = 10_000_000_000;

    /// Maps memory, then spins in its own code, calling the kernel no more, and touches
    /// the memory once told to (its revocation deadline has passed by then).
    fn spinner(kernel: &Kernel) -> Result<(), ApiError> {
        let mut cap = kernel.allocate_memory(8192)?;
        let id = cap.cap().id();
        kernel.map_memory(&mut cap, |view| {
            view.fill(0x5A);
            *SPINNER.lock() = Some((id, view.as_ptr() as u64));
            let mut spins = 0u64;
            while !TOUCH.load(Ordering::Acquire) {
                spins = core::hint::black_box(spins.wrapping_add(1));
            }
            let bytes = core::hint::black_box(&mut *view);
            bytes[4100] = bytes[4100].wrapping_add(spins as u8 | 1);
        })?;
        Err(ApiError::AppFailed(1))
    }

    /// Waits up to 10 s for `done`, calling no capability function (only the clock).
    fn wait_for(kernel: &Kernel, done: impl Fn() -> bool) -> bool {
        let begin = kernel.now_ns();
        while !done() {
            if kernel.now_ns() - begin > TEN_SECONDS {
                return false;
            }
            core::hint::spin_loop();
        }
        true
    }

    /// Runs beside the spinner with memory of its own: asks for the spinner's memory
    /// with a deadline 20 ms away and waits, calling no capability function, until the
    /// table no longer holds it (which only the timer can do then); then lets the spinner
    /// touch its memory and checks its own is untouched.
    fn bystander(kernel: &Kernel) -> Result<(), ApiError> {
        let mut cap = kernel.allocate_memory(4096)?;
        kernel.map_memory(&mut cap, |view| {
            view[..6].copy_from_slice(b"mine!!");
            assert!(wait_for(kernel, || SPINNER.lock().is_some()), "mapped");
            let (id, start) = SPINNER.lock().expect("mapped");
            request_revocation(id, kernel.now_ns() + 20_000_000).expect("request");
            let gone = || !entries().iter().any(|e| e.id == id);
            let taken = wait_for(kernel, gone);
            let unmapped = !is_mapped(start) && !is_mapped(start + 4096);
            TOUCH.store(true, Ordering::Release);
            assert!(taken, "the timer took the memory with no capability call");
            assert!(unmapped, "and cleared its identity-map entries");
            assert!(was_repossessed(SPINNER_OWNER, id), "recorded as forfeited");
            assert_eq!(&view[..6], b"mine!!", "the bystander's memory is untouched");
        })?;
        kernel.return_memory(cap).map_err(refused)
    }

    crate::kernel_test!(
        fn a_spinning_app_that_never_calls_the_kernel_loses_its_memory_at_the_deadline() {
            if crate::smp_cores() < 2 {
                return;
            }
            let spinner: &'static App = &const {
                App::new(
                    "spinner",
                    "spins past its revocation deadline without calling the kernel",
                    spinner,
                )
            };
            let other = App::new("bystander", "runs beside the spinner", bystander);
            let free = crate::mem::frames::free_bytes();
            let run = on_core_1(spinner, SPINNER_OWNER, None, || {});
            let here = CoreSpan { first: 0, count: 1 };
            assert_eq!(run_as(&other, top_owner(9), here, None), Ok(()));
            assert_eq!(
                run.finish(),
                Some(Err(ApiError::Repossessed)),
                "its touch faulted and ended its task"
            );
            let start = SPINNER.lock().expect("mapped").1;
            assert!(is_mapped(start), "mapped back once the spinner ended");
            assert_eq!(crate::mem::frames::free_bytes(), free, "freed");
            assert!(only_the_kernels_left(), "nothing is left in the table");
            crate::sched::run_on_cores(crate::smp_cores(), |_| {}).expect("every core answers");
        }
    );
}

/// The memory library OS (`rexo-mem`) in an app: `memdemo-revocable` answers the kernel's
/// revocation request for one of its arenas by moving its allocations, and is not ended.
mod memlibos {
    use super::*;

    const OWNER: OwnerId = top_owner(6);
    const MIB: u64 = 1 << 20;
    const MINUTE: u64 = 60_000_000_000;

    /// The owner's memory capabilities of `len` bytes.
    fn held(len: u64) -> Vec<EntryId> {
        entries()
            .iter()
            .filter(|e| e.owner == OWNER && e.resource.len() == len)
            .map(|e| e.id)
            .collect()
    }

    crate::kernel_test!(
        fn memdemo_answers_a_revocation_request_and_runs_on() {
            if crate::smp_cores() < 2 {
                return;
            }
            let app = crate::apps::find("memdemo-revocable").expect("in the image");
            let free = crate::mem::frames::free_bytes();
            let run = on_core_1(app, OWNER, Some(8 * MIB), || {});
            // Its last step holds small blocks in a 2 MiB arena and a 3 MiB block in a
            // 4 MiB one: ask for the 2 MiB one back, with a deadline it cannot miss
            // while it polls.
            let begin = crate::time::now_ns();
            while held(4 * MIB).is_empty() {
                assert!(
                    crate::time::now_ns() - begin < MINUTE,
                    "memdemo never reached its revocation step: {:?}",
                    run.result()
                );
                core::hint::spin_loop();
            }
            let asked = held(2 * MIB);
            assert_eq!(asked.len(), 1, "one 2 MiB arena");
            request_revocation(asked[0], crate::time::now_ns() + MINUTE).expect("request");
            assert_eq!(run.finish(), Some(Ok(())), "answered, not ended");
            assert!(!was_repossessed(OWNER, asked[0]), "nothing taken by force");
            assert_eq!(held_bytes(OWNER), 0, "everything went back");
            assert_eq!(crate::mem::frames::free_bytes(), free);
        }
    );
}

/// Capabilities over cores and timers, through the API.
mod cores_and_timers {
    use super::*;
    use crate::apps::{App, CoreSpan, run_as};
    use rexo_api::{CoreCap, InterruptCap, Kernel, MemoryCap, TimerCap};

    const OWNER: OwnerId = top_owner(11);
    const TEN_SECONDS: u64 = 10_000_000_000;

    /// Spins (no nap, so no other timer interrupt) until `timer` fired; false after 10 s.
    fn fired(kernel: &Kernel, timer: &TimerCap) -> Result<bool, ApiError> {
        let begin = kernel.now_ns();
        while kernel.now_ns() - begin < TEN_SECONDS {
            if kernel.timer_fired(timer)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn core_and_timer_app(kernel: &Kernel) -> Result<(), ApiError> {
        let mut cores = kernel.core_caps();
        assert_eq!(cores.len(), kernel.cores(), "one capability per core");
        assert!(kernel.core_caps().is_empty(), "handed out once");
        let mine = |kind| {
            let entries = kernel.capabilities().into_iter();
            entries
                .filter(|e| e.owner == OWNER && e.resource.kind() == kind)
                .count()
        };
        assert_eq!(mine(ResourceKind::Core), kernel.cores(), "listed");
        // A one-shot deadline on this core: bad deadlines and a second timer are refused.
        let now = kernel.now_ns();
        assert_eq!(kernel.arm_timer(now).err(), Some(ApiError::DeadlinePassed));
        // From a fresh reading: the refused call above may take milliseconds under emulation.
        let timer = kernel.arm_timer(kernel.now_ns() + 2_000_000)?;
        assert_eq!(mine(ResourceKind::Timer), 1, "listed");
        assert_eq!(
            kernel.arm_timer(now + 1).err(),
            Some(ApiError::DeadlinePassed)
        );
        let busy = kernel.arm_timer(kernel.now_ns() + TEN_SECONDS).err();
        assert_eq!(busy, Some(ApiError::TimerBusy));
        assert!(fired(kernel, &timer)?, "the core's timer fired");
        let id = timer.cap().id();
        kernel.return_timer(timer).map_err(refused)?;
        let returned =
            TimerCap::new(MemoryCap::new(kernel.allocate_memory(4096)?.into_cap()).into_cap());
        assert_eq!(
            kernel.timer_fired(&returned),
            Err(ApiError::Refused(CapError::WrongKind))
        );
        kernel
            .return_memory(MemoryCap::new(returned.into_cap()))
            .map_err(refused)?;
        assert!(kernel.capabilities().iter().all(|e| e.id != id), "returned");
        // Returning a timer that has not fired cancels it, and the core is free again.
        let far = kernel.arm_timer(kernel.now_ns() + TEN_SECONDS)?;
        // A timer's capability passed off as memory is not split, derived or merged.
        let posing = MemoryCap::new(far.into_cap());
        let split = rexo_api::MemoryOp::Split { offset: 4096 };
        assert_eq!(
            kernel.memory_op(&posing, split).err(),
            Some(ApiError::Refused(CapError::WrongKind))
        );
        kernel
            .return_timer(TimerCap::new(posing.into_cap()))
            .map_err(refused)?;
        let near = kernel.arm_timer(kernel.now_ns() + 1_000_000)?;
        assert!(fired(kernel, &near)?, "armed again after the cancel");
        kernel.return_timer(near).map_err(refused)?;
        // Work goes to the cores the app holds, and only while it holds them all.
        kernel.run_on_every_core(alloc::sync::Arc::new(|_, _| {}))?;
        let last = cores.pop().expect("a core");
        let last_core = crate::smp_cores() - 1;
        kernel.return_core(last).map_err(refused)?;
        let not_held = kernel.run_on_every_core(alloc::sync::Arc::new(|_, _| {
            panic!("ran on a core the app gave back")
        }));
        assert_eq!(not_held, Err(ApiError::CoreNotHeld(last_core)));
        if last_core != 0 {
            let first = cores.remove(0);
            kernel.return_core(first).map_err(refused)?;
        }
        let here = kernel.arm_timer(kernel.now_ns() + 1_000_000).err();
        assert_eq!(
            here,
            Some(ApiError::CoreNotHeld(0)),
            "no timer on a core given back"
        );
        Ok(())
    }

    /// Arms a timer 20 ms away, gets a revocation request for its memory due in 2 ms that
    /// it never answers, and spins 200 ms calling nothing but the clock (no nap, no other
    /// timer interrupt): the kernel takes the memory at 2 ms by the timer, and the app's
    /// timer must still fire (the interrupt at the kernel's deadline re-armed nothing).
    fn timer_under_a_revocation_app(kernel: &Kernel) -> Result<(), ApiError> {
        let memory = kernel.allocate_memory(4096)?;
        let timer = kernel.arm_timer(kernel.now_ns() + 20_000_000)?;
        request_revocation(memory.cap().id(), kernel.now_ns() + 2_000_000).expect("request");
        let until = kernel.now_ns() + 200_000_000;
        while kernel.now_ns() < until {
            core::hint::spin_loop();
        }
        let taken = !kernel
            .capabilities()
            .iter()
            .any(|e| e.id == memory.cap().id());
        assert!(taken, "the timer took the memory at its deadline");
        assert!(
            kernel.timer_fired(&timer)?,
            "the app's timer fired after it"
        );
        kernel.return_timer(timer).map_err(refused)
    }

    crate::kernel_test!(
        fn an_app_timer_later_than_a_revocation_deadline_still_fires() {
            let app = App::new(
                "timer-under-revocation",
                "a timer armed past a revocation deadline the kernel enforces",
                timer_under_a_revocation_app,
            );
            let here = CoreSpan { first: 0, count: 1 };
            assert_eq!(run_as(&app, OWNER, here, None), Ok(()));
            assert!(only_the_kernels_left(), "nothing is left in the table");
        }
    );

    /// Hands each return call a capability of another kind, re-wrapped: each is refused
    /// with `WrongKind` and gives the capability back, the same live entry, which its own
    /// call then returns.
    fn wrong_kind_return_app(kernel: &Kernel) -> Result<(), ApiError> {
        let listed = |id| kernel.capabilities().iter().any(|e| e.id == id);
        let memory = kernel.allocate_memory(4096)?;
        let id = memory.cap().id();
        let Err((ApiError::Refused(CapError::WrongKind), back)) =
            kernel.return_interrupt(InterruptCap::new(memory.into_cap()))
        else {
            panic!("memory returned as an interrupt binding was not refused and given back");
        };
        let Err((ApiError::Refused(CapError::WrongKind), back)) =
            kernel.return_timer(TimerCap::new(back.into_cap()))
        else {
            panic!("memory returned as a timer was not refused and given back");
        };
        let Err((ApiError::Refused(CapError::WrongKind), back)) =
            kernel.return_core(CoreCap::new(back.into_cap()))
        else {
            panic!("memory returned as a core was not refused and given back");
        };
        assert!(back.cap().id() == id && listed(id), "the same live entry");
        kernel
            .return_memory(MemoryCap::new(back.into_cap()))
            .map_err(refused)?;
        assert!(!listed(id), "returned");
        let timer = kernel.arm_timer(kernel.now_ns() + TEN_SECONDS)?;
        let id = timer.cap().id();
        let Err((ApiError::Refused(CapError::WrongKind), back)) =
            kernel.return_memory(MemoryCap::new(timer.into_cap()))
        else {
            panic!("a timer returned as memory was not refused and given back");
        };
        assert!(back.cap().id() == id && listed(id), "the same live entry");
        kernel
            .return_timer(TimerCap::new(back.into_cap()))
            .map_err(refused)?;
        assert!(!listed(id), "returned");
        Ok(())
    }

    crate::kernel_test!(
        fn a_return_of_the_wrong_kind_gives_the_capability_back() {
            let app = App::new(
                "wrong-kind-return",
                "capabilities returned through another kind's call",
                wrong_kind_return_app,
            );
            let here = CoreSpan { first: 0, count: 1 };
            assert_eq!(run_as(&app, OWNER, here, None), Ok(()));
            assert!(only_the_kernels_left(), "nothing is left in the table");
        }
    );

    crate::kernel_test!(
        fn an_app_arms_timers_on_cores_it_holds_and_loses_cores_it_returns() {
            let app = App::new(
                "core-timer",
                "core and timer capabilities",
                core_and_timer_app,
            );
            let every = CoreSpan {
                first: 0,
                count: crate::smp_cores(),
            };
            assert_eq!(run_as(&app, OWNER, every, None), Ok(()));
            assert!(only_the_kernels_left(), "nothing is left in the table");
        }
    );
}

kernel_test!(
    fn the_table_is_only_ever_locked_in_a_kernel_section() {
        use crate::arch::abort::{can_abort, run_abortable};
        // Called from an app (inside its abort point), a panic with the table locked must
        // be the kernel's crash, not the app's end that leaves the lock held for good.
        let mut abortable_inside = None;
        run_abortable(|| abortable_inside = locked(|_| can_abort())).expect("no abort");
        assert_eq!(abortable_inside, Some(false));
    }
);
