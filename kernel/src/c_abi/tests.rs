//! Kernel tests of the C ABI (run in QEMU by `cargo xtask test`).
use crate::caps::tests::top_owner;
use core::ffi::{c_char, c_uint, c_void};
use core::sync::atomic::Ordering;
use rexo_capi::*;

crate::kernel_test!(
    fn c_calls_refuse_bad_arguments() {
        use core::ptr::{null, null_mut};
        use core::sync::atomic::AtomicUsize;

        // Outside a C app: the calls that act for an app refuse; the others work.
        assert_eq!(rexo_mem_alloc(4096), i64::from(REXO_ENOAPP));
        assert_eq!(rexo_mem_return(1), REXO_ENOAPP);
        assert_eq!(rexo_core_caps(null_mut(), 0), REXO_ENOAPP);
        assert_eq!(rexo_core_caps(null_mut(), 1), REXO_EINVAL);
        assert_eq!(rexo_core_return(1), REXO_ENOAPP);
        assert_eq!(rexo_timer_arm(u64::MAX), i64::from(REXO_ENOAPP));
        assert_eq!(rexo_timer_fired(1), REXO_ENOAPP);
        assert_eq!(rexo_timer_return(1), REXO_ENOAPP);
        assert_eq!(rexo_run_on_every_core(None, null_mut()), REXO_EINVAL);
        assert!(rexo_cores() >= 1);
        assert_eq!(rexo_core_index(), 0);

        // Two owners no app of the image uses.
        let (app, other) = (top_owner(4), top_owner(3));
        crate::caps::grant_cores(app, 0..crate::smp_cores()).expect("cores");
        fn as_owner<R>(owner: OwnerId, f: impl FnOnce() -> R) -> R {
            crate::apps::acting_as(&crate::apps::api_as(owner), f)
        }
        let handle = as_owner(app, || {
            // Buffers: NULL with a length, page 0, wrapping, past the end of RAM.
            assert_eq!(rexo_write(null(), 3), REXO_EINVAL);
            assert_eq!(rexo_write(null(), 0), REXO_OK);
            assert_eq!(rexo_write(0x10 as *const c_void, 4), REXO_EFAULT);
            assert_eq!(rexo_log(usize::MAX as *const c_char, 2), REXO_EFAULT);
            assert_eq!(rexo_log((1usize << 47) as *const c_char, 1), REXO_EFAULT);
            let (mut usable, mut free) = (0u64, 0u64);
            assert_eq!(rexo_memory(null_mut(), &raw mut free), REXO_EINVAL);
            assert_eq!(rexo_memory(&raw mut usable, 16 as *mut u64), REXO_EFAULT);
            assert_eq!(usable, 0, "an error writes neither out-parameter");
            assert_eq!(rexo_memory(&raw mut usable, &raw mut free), REXO_OK);
            assert!(usable > 0 && free <= usable, "usable {usable} free {free}");

            // Memory capabilities.
            assert_eq!(rexo_mem_alloc(0), i64::from(REXO_EINVAL));
            assert_eq!(rexo_mem_alloc(1 << 62), i64::from(REXO_ENOMEM));
            let handle = rexo_mem_alloc(4096);
            assert!(handle > 0, "rexo_mem_alloc gave {handle}");
            let data = *b"rexo";
            let mut back = [0u8; 4];
            let (data_ptr, back_ptr) = (data.as_ptr().cast(), back.as_mut_ptr().cast());
            assert_eq!(rexo_mem_write(handle, 100, data_ptr, 4), REXO_OK);
            assert_eq!(rexo_mem_read(handle, 100, back_ptr, 4), REXO_OK);
            assert_eq!(back, data);
            assert_eq!(rexo_mem_write(handle, 0, null(), 4), REXO_EINVAL);
            assert_eq!(rexo_mem_read(handle, 4093, back_ptr, 4), REXO_ERANGE);
            assert_eq!(rexo_mem_read(handle, u64::MAX, back_ptr, 2), REXO_ERANGE);
            assert_eq!(rexo_mem_read(0, 0, back_ptr, 1), REXO_EBADF);
            assert_eq!(rexo_mem_read(-5, 0, back_ptr, 1), REXO_EBADF);
            handle
        });
        // Another app cannot use the handle.
        as_owner(other, || {
            let mut byte = [0u8; 1];
            assert_eq!(
                rexo_mem_read(handle, 0, byte.as_mut_ptr().cast(), 1),
                REXO_EBADF
            );
            assert_eq!(rexo_mem_return(handle), REXO_EBADF);
        });
        as_owner(app, || {
            let mut byte = [0u8; 1];
            assert_eq!(rexo_mem_return(handle), REXO_OK);
            assert_eq!(
                rexo_mem_read(handle, 0, byte.as_mut_ptr().cast(), 1),
                REXO_EBADF
            );
            assert_eq!(rexo_mem_return(handle), REXO_EBADF);

            // Every core runs the function once, acting for the app.
            static RAN: AtomicUsize = AtomicUsize::new(0);
            static ACTED_FOR_APP: AtomicUsize = AtomicUsize::new(0);
            extern "C" fn count(arg: *mut c_void, core: c_uint) {
                assert_eq!(arg as usize, 0x1234);
                // The core's place among the app's cores (this test's app has them all).
                assert!(core < rexo_cores(), "core {core} of {}", rexo_cores());
                RAN.fetch_add(1, Ordering::SeqCst);
                if crate::apps::current().is_some() {
                    ACTED_FOR_APP.fetch_add(1, Ordering::SeqCst);
                }
            }
            assert_eq!(
                rexo_run_on_every_core(Some(count), 0x1234 as *mut c_void),
                REXO_OK
            );
            let cores = crate::smp_cores();
            assert_eq!(RAN.load(Ordering::SeqCst), cores);
            assert_eq!(ACTED_FOR_APP.load(Ordering::SeqCst), cores);
        });
        assert!(
            crate::apps::current().is_none(),
            "the core acts for the kernel again"
        );
        assert_eq!(
            crate::caps::release_owner(app),
            Ok(crate::smp_cores()),
            "the test leaked a capability (other than its cores)"
        );
    }
);

crate::kernel_test!(
    fn a_c_view_of_memory_taken_by_force_ends_the_app_on_its_next_touch() {
        use crate::arch::abort::{Aborted, run_abortable};
        let owner = top_owner(5);
        let api = crate::apps::api_as(owner);
        let (mut ptr, mut len) = (core::ptr::null_mut::<c_void>(), 0u64);
        let handle = crate::apps::acting_as(&api, || {
            let handle = rexo_mem_alloc(4096);
            assert!(handle > 0, "rexo_mem_alloc gave {handle}");
            let mapped = rexo_map_memory(handle, &raw mut ptr, &raw mut len);
            assert_eq!(mapped, REXO_OK);
            handle
        });
        assert_eq!(len, 4096);
        let held = crate::caps::entries()
            .into_iter()
            .find(|e| e.owner == owner);
        let entry = held.expect("the C app holds the memory").id;
        // The deadline passes; the next capability call enforces it.
        crate::caps::request_revocation(entry, crate::time::now_ns()).expect("requested");
        assert!(
            crate::caps::revocation_requests(owner).is_empty(),
            "taken by force"
        );
        // A kernel call given the view's bytes refuses them rather than fault inside.
        crate::apps::acting_as(&api, || {
            assert_eq!(rexo_write(ptr.cast_const(), 4), REXO_EFAULT);
        });
        // C's next touch through the view faults and ends the app's task, not the kernel.
        let touch = crate::apps::acting_as(&api, || {
            run_abortable(|| {
                // SAFETY: the address rexo_map_memory gave, as the C app would write it;
                // the frames were unmapped by the revocation, so the write faults and
                // lands nowhere (the abort point catches it).
                unsafe { ptr.cast::<u8>().write_volatile(0x5A) }
            })
        });
        assert_eq!(touch, Err(Aborted), "the touch faulted");
        assert_eq!(
            crate::apps::ended_reason(),
            crate::apps::ENDED_BY_REPOSSESSION
        );
        crate::apps::acting_as(&api, || {
            assert_eq!(rexo_mem_return(handle), REXO_EBUSY, "still mapped");
            assert_eq!(rexo_unmap_memory(handle), REXO_OK);
            assert_eq!(rexo_mem_return(handle), REXO_EPERM, "revoked");
            assert_eq!(rexo_mem_return(handle), REXO_EBADF, "gone");
        });
        assert_eq!(crate::caps::release_owner(owner), Ok(0));
    }
);

crate::kernel_test!(
    fn a_c_call_the_kernel_ends_mid_way_leaves_its_handle_answering() {
        let owner = top_owner(5);
        let api = crate::apps::api_as(owner);
        let handle = crate::apps::acting_as(&api, || rexo_mem_alloc(4096));
        assert!(handle > 0, "rexo_mem_alloc gave {handle}");
        let held = crate::caps::entries()
            .into_iter()
            .find(|e| e.owner == owner);
        let entry = held.expect("the C app holds the memory").id;
        crate::caps::request_revocation(entry, crate::time::now_ns()).expect("requested");
        // A copy from the memory taken by force ends the task inside the call, with the
        // call's handle locked.
        let mut byte = [0u8; 1];
        let ended = crate::apps::run_as_abort_point(&api, || {
            let answer = rexo_mem_read(handle, 0, byte.as_mut_ptr().cast(), 1);
            panic!("the kernel let the copy answer {answer}");
        });
        assert_eq!(ended, Some(crate::apps::ENDED_BY_REPOSSESSION));
        // The app's other tasks and its main go on: a call on the handle answers instead
        // of waiting for good for the abandoned call's lock.
        crate::apps::acting_as(&api, || {
            assert_eq!(rexo_mem_return(handle), REXO_EPERM, "revoked");
            assert_eq!(rexo_mem_return(handle), REXO_EBADF, "gone");
        });
        assert_eq!(crate::caps::release_owner(owner), Ok(0));
    }
);

crate::kernel_test!(
    fn a_c_app_sees_the_kernels_revocation_requests_as_its_handles() {
        use rexo_captable::{EntryState, ResourceKind};
        let owner = top_owner(5);
        let api = crate::apps::api_as(owner);
        crate::caps::grant_cores(owner, 0..1).expect("a core");
        let (kept, asked) =
            crate::apps::acting_as(&api, || (rexo_mem_alloc(4096), rexo_mem_alloc(8192)));
        assert!(
            kept > 0 && asked > 0,
            "rexo_mem_alloc gave {kept} and {asked}"
        );
        let entry_of = |kind, len| {
            let entries = crate::caps::entries().into_iter();
            let mut held = entries.filter(|e| e.owner == owner && e.resource.kind() == kind);
            held.find(|e| e.resource.len() == len).expect("held").id
        };
        let (memory, core) = (
            entry_of(ResourceKind::Memory, 8192),
            entry_of(ResourceKind::Core, 1),
        );
        let deadline = crate::time::now_ns() + 60_000_000_000;
        crate::caps::request_revocation(memory, deadline).expect("requested");
        crate::caps::request_revocation(core, deadline + 1).expect("requested");
        let mut list = [[0u64; 2]; 3];
        crate::apps::acting_as(&api, || {
            assert_eq!(rexo_revocation_requests(core::ptr::null_mut(), 0), 2);
            // The core capability, never listed by rexo_core_caps, became a handle.
            let mut cores = [0i64; 2];
            assert_eq!(rexo_core_caps(cores.as_mut_ptr(), 2), 1);
            assert_eq!(rexo_revocation_requests(list.as_mut_ptr().cast(), 1), 2);
            assert_eq!(list[0], [asked as u64, deadline]);
            assert_eq!(list[1], [0, 0], "nothing written past max");
            assert_eq!(rexo_revocation_requests(list.as_mut_ptr().cast(), 3), 2);
            assert_eq!(list[1], [cores[0] as u64, deadline + 1]);
            // Answered: the requests are gone, the memory not asked for stays.
            assert_eq!(rexo_mem_return(asked), REXO_OK);
            assert_eq!(rexo_core_return(cores[0]), REXO_OK);
            assert_eq!(rexo_revocation_requests(core::ptr::null_mut(), 0), 0);
            assert_eq!(rexo_mem_return(kept), REXO_OK);
        });
        assert!(
            !crate::caps::entries()
                .iter()
                .any(|e| e.owner == owner && matches!(e.state, EntryState::RevokeRequested { .. })),
            "every request answered"
        );
        assert_eq!(crate::caps::release_owner(owner), Ok(0));
    }
);

crate::kernel_test!(
    fn a_buffer_in_a_stack_guard_page_is_refused_as_efault() {
        // Guard pages are RAM from the frame allocator, unmapped: this core's kernel
        // stack's, and the next interrupt stack's right above the first one's top.
        let core = crate::arch::percpu::current();
        let guard = core.stack().bottom - 4096;
        let [first, next, ..] = core.interrupt_stacks();
        assert_eq!(
            first.top,
            next.bottom - 4096,
            "the interrupt stacks are one run"
        );
        crate::apps::acting_as(&crate::apps::api_as(top_owner(6)), || {
            assert_eq!(rexo_write(guard as *const c_void, 16), REXO_EFAULT);
            // Mapped at first, into the guard at its end.
            let across = (first.top - 8) as *const c_char;
            assert_eq!(rexo_log(across, 16), REXO_EFAULT);
            let (mut usable, mut free) = (0u64, 0u64);
            assert_eq!(rexo_memory(&raw mut usable, guard as *mut u64), REXO_EFAULT);
            assert_eq!(usable, 0, "an error writes neither out-parameter");
            assert_eq!(rexo_memory(&raw mut usable, &raw mut free), REXO_OK);
            assert_eq!(rexo_random_u64((guard + 8) as *mut u64), REXO_EFAULT);
        });
    }
);
