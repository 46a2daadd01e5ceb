//! Kernel tests of BareMetal compatibility that need no app binary (the QEMU cases
//! `baremetal::*` run real BareMetal-convention programs).

use super::calls::{self, ERROR, SMP_SET_FAILED};
use super::raw::Regs;
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
        assert_eq!(calls::system(0x72, 200, 0), 200, "RAX kept");
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
        assert_eq!(calls::system(0x31, 0, 0), ERROR, "BareMetal has no 0x31");
        assert_eq!(
            calls::system(0x13, 0, me),
            1,
            "present, no job on the calling core"
        );
        assert_eq!(calls::system(0x7D, 0x7D7D, 0), 0x7D7D, "RAX kept");
        for callback in 0x60..=0x62 {
            assert_eq!(calls::system(callback, 0x6060, 0), 0x6060, "RAX kept");
        }
        // Register 0 of 00:00.0 (its ids, read-only) written with what it holds.
        let ids = calls::system(0x50, 0, 0);
        assert_eq!(calls::system(0x51, ids, 0), ids, "RAX kept");
        let bytes = [0x5Au8; 4];
        let addr = bytes.as_ptr() as u64;
        assert_eq!(calls::system(0x70, addr, 4), addr, "RAX kept");
    }
);

kernel_test!(
    fn b_input_writes_al_alone() {
        let rax = 0x1234_5678_9ABC_DEFF;
        let mut regs = Regs {
            rax,
            rbx: 0,
            rcx: 0,
            rdx: 0,
            rsi: 0,
            rdi: 0,
            rbp: 0,
            r8_r15: [0; 8],
            call: 0,
        };
        calls::dispatch(&mut regs);
        assert_eq!(regs.rax & !0xFF, rax & !0xFF, "RAX above AL kept");
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
        assert_eq!(calls::system(0x50, 0, 1 << 32), ERROR, "PCI segment 1");
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
        assert_eq!(calls::system(0x14, addr, 0), addr, "RAX kept");
        assert_eq!(*word & 1, 1);
        assert_eq!(calls::system(0x15, addr, 0), addr, "RAX kept");
        assert_eq!(*word, 0);
    }
);

kernel_test!(
    fn call_table_points_into_the_kernel() {
        super::raw::install_table();
        let kernel = crate::mem::phys::kernel_image();
        let entries: alloc::vec::Vec<u64> =
            (0..super::ENTRIES).map(super::raw::table_entry).collect();
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

/// The APIC id of core `core`.
fn apic_id(core: usize) -> u64 {
    let id = &crate::arch::percpu::core(core).apic_id;
    u64::from(id.load(core::sync::atomic::Ordering::Relaxed))
}

/// As an app on core 0 alone: 0x11 counts its one core, `smp_set` refuses core 1 (not
/// the app's: another app's main may keep its work loop busy) and accepts the calling
/// core, setting no job there.
fn uses_its_own_core_only(_: &rexo_api::Kernel) -> Result<(), rexo_api::ApiError> {
    assert_eq!(calls::system(0x11, 0, 0), 1);
    let code = super::APP_BASE;
    assert_eq!(calls::system(0x12, code, apic_id(1)), SMP_SET_FAILED);
    assert_eq!(calls::system(0x12, code, apic_id(0)), code);
    assert_eq!(calls::JOBS.running(0), 0, "no job set on the calling core");
    Ok(())
}

kernel_test!(
    fn smp_set_gives_jobs_to_the_calling_apps_cores_only() {
        use crate::apps::{App, CoreSpan, run_as};
        // Another core is needed (`boot::kernel-tests-pc-1-core` runs these on one).
        if crate::smp_cores() < 2 {
            return;
        }
        assert_eq!(super::load(Some(&[0xC3; 16]), |_| ()), Ok(16));
        let app = App::new(
            "bm-cores",
            "uses BareMetal's SMP calls on core 0",
            uses_its_own_core_only,
        );
        let owner = crate::caps::tests::top_owner(1);
        assert_eq!(
            run_as(&app, owner, CoreSpan { first: 0, count: 1 }, None),
            Ok(())
        );
        // The kernel (no app) may use every core: core 1 runs the job (`ret`) and ends it.
        let code = super::APP_BASE;
        assert_eq!(calls::system(0x12, code, apic_id(1)), code);
        let start = crate::time::now_ns();
        while calls::JOBS.running(1) != 0 {
            assert!(crate::time::now_ns() - start < 5_000_000_000, "the job ran");
            core::hint::spin_loop();
        }
    }
);

kernel_test!(
    fn the_app_area_leaves_the_kernel_its_reserve() {
        use crate::mem::frames;
        const MIB: u64 = 1 << 20;
        // 5 MiB free, 2 MiB of it aligned: the area would be 2 MiB, leaving 3 MiB.
        let aligned = frames::allocate(2 * MIB, 2 * MIB).expect("2 aligned MiB");
        let held = crate::tests::hold_frames_leaving(crate::caps::KERNEL_RESERVE - MIB);
        frames::free(aligned);
        let free = frames::free_bytes();
        let taken = super::area_frames();
        let refused = taken.as_ref().err().copied();
        taken.into_iter().for_each(frames::free);
        held.into_iter().for_each(frames::free);
        assert_eq!(free, 5 * MIB, "could not bring free memory to 5 MiB");
        assert_eq!(
            refused,
            Some(LoadError::NoArea),
            "the area took the reserve"
        );
    }
);

kernel_test!(
    fn an_app_area_mapping_without_frames_for_its_page_tables_maps_nothing() {
        use crate::arch::paging::{self, PagingError, tests::is_mapped};
        use crate::mem::frames;
        const MIB2: u64 = 2 << 20;
        // The app area's tables map the first GiB at APP_BASE (an area is at most 64 MiB):
        // its last 2 MiB has a page directory, the next one needs a new one.
        drop(super::area().expect("the app area"));
        let last = super::APP_BASE + (1 << 30) - MIB2;
        assert!(
            !is_mapped(last) && !is_mapped(last + MIB2),
            "nothing maps them yet"
        );
        let ram = frames::allocate(2 * MIB2, MIB2).expect("memory for the test");
        let held = crate::tests::hold_every_frame();
        let result = paging::map_ram_at(last, ram.start(), 2 * MIB2);
        let mapped = [last, last + MIB2].map(is_mapped);
        held.into_iter().for_each(frames::free);
        frames::free(ram);
        assert_eq!(result, Err(PagingError::OutOfMemory));
        assert_eq!(
            mapped,
            [false, false],
            "freed RAM stays mapped in the upper half"
        );
    }
);

/// BareMetal code for a job: asks for a job at its own address on the core with APIC id
/// `apic_id` (0x12), then for the core count (0x11), storing each answer at 0x100 and
/// 0x108 past [`super::APP_BASE`].
fn job_asking_for_a_job_on(apic_id: u32) -> alloc::vec::Vec<u8> {
    let base = super::APP_BASE;
    let mut code = alloc::vec![0x48, 0xB8]; // mov rax, base
    code.extend(base.to_le_bytes());
    code.push(0xBA); // mov edx, apic_id
    code.extend(apic_id.to_le_bytes());
    for (function, slot) in [(0x12u32, 0x100u64), (0x11, 0x108)] {
        code.push(0xB9); // mov ecx, function
        code.extend(function.to_le_bytes());
        code.extend([0xFF, 0x14, 0x25, 0x40, 0x00, 0x10, 0x00]); // call [0x100040]
        code.extend([0x48, 0xA3]); // mov [base + slot], rax
        code.extend((base + slot).to_le_bytes());
    }
    code.push(0xC3); // ret
    code
}

/// As an app on core 1 alone, run from core 0: the job it gives core 1 acts for the app,
/// so its `smp_set` refuses core 0 (not the app's) and 0x11 counts the app's one core.
fn jobs_act_for_their_app(_: &rexo_api::Kernel) -> Result<(), rexo_api::ApiError> {
    let code = super::APP_BASE;
    assert_eq!(calls::system(0x12, code, apic_id(1)), code);
    let start = crate::time::now_ns();
    while calls::JOBS.running(1) != 0 {
        assert!(crate::time::now_ns() - start < 5_000_000_000, "the job ran");
        core::hint::spin_loop();
    }
    let answers = super::raw::app_bytes(code + 0x100, 16).expect("the app area");
    let answer = |at: usize| u64::from_le_bytes(answers[at..at + 8].try_into().unwrap());
    assert_eq!(answer(0), SMP_SET_FAILED, "a job was set on core 0");
    assert_eq!(answer(8), 1, "the job counted other cores than its app's");
    assert_eq!(calls::JOBS.running(0), 0);
    Ok(())
}

kernel_test!(
    fn a_job_acts_for_the_app_that_gave_it() {
        use crate::apps::{App, CoreSpan, run_as};
        if crate::smp_cores() < 2 {
            return;
        }
        let apic_0 = u32::try_from(apic_id(0)).expect("an APIC id");
        let binary = job_asking_for_a_job_on(apic_0);
        assert_eq!(super::load(Some(&binary), |_| ()), Ok(binary.len() as u64));
        super::raw::install_table();
        let app = App::new(
            "bm-job",
            "gives core 1 a BareMetal job that asks for core 0",
            jobs_act_for_their_app,
        );
        let owner = crate::caps::tests::top_owner(1);
        assert_eq!(
            run_as(&app, owner, CoreSpan { first: 1, count: 1 }, None),
            Ok(())
        );
    }
);

/// BareMetal code for a job: writes a byte at `addr` and returns.
fn job_writing_at(addr: u64) -> alloc::vec::Vec<u8> {
    let mut code = alloc::vec![0x48, 0xB8]; // mov rax, addr
    code.extend(addr.to_le_bytes());
    code.extend([0xC6, 0x00, 0x33, 0xC3]); // mov byte [rax], 0x33; ret
    code
}

kernel_test!(
    fn a_job_ended_for_using_memory_taken_by_force_leaves_no_reason_behind() {
        use crate::apps::{ENDED_BY_PANIC, acting_as, api_as, run_as_abort_point};
        use core::sync::atomic::{AtomicU8, Ordering};
        if crate::smp_cores() < 2 {
            return;
        }
        let owner = crate::caps::tests::top_owner(2);
        let api = api_as(owner);
        let mut cap = api.allocate_memory(4096).expect("memory");
        let id = cap.cap().id();
        let addr = crate::caps::map(owner, &mut cap).expect("mapped").as_ptr() as u64;
        crate::caps::request_revocation(id, crate::time::now_ns()).expect("requested");
        // The deadline passes; the next capability call enforces it.
        let requests = crate::caps::revocation_requests(owner);
        assert!(
            requests.is_empty() && crate::caps::was_repossessed(owner, id),
            "taken by force"
        );
        let binary = job_writing_at(addr);
        assert_eq!(super::load(Some(&binary), |_| ()), Ok(binary.len() as u64));
        super::raw::install_table();
        // The job acts for the owner on core 1: its write ends it there.
        let code = super::APP_BASE;
        assert_eq!(
            acting_as(&api, || calls::system(0x12, code, apic_id(1))),
            code
        );
        let start = crate::time::now_ns();
        while calls::JOBS.running(1) != 0 {
            assert!(crate::time::now_ns() - start < 5_000_000_000, "the job ran");
            core::hint::spin_loop();
        }
        // The next task on core 1 that panics is reported as a panic.
        static ENDED: AtomicU8 = AtomicU8::new(u8::MAX);
        crate::sched::run_on_core_range(1..2, move |_| {
            let ended = run_as_abort_point(&api_as(owner), || panic!("a task's own panic"));
            ENDED.store(ended.unwrap_or(u8::MAX), Ordering::Relaxed);
        })
        .expect("room in the mailbox");
        assert_eq!(crate::caps::release_owner(owner), Ok(0));
        assert_eq!(
            ENDED.load(Ordering::Relaxed),
            ENDED_BY_PANIC,
            "reported as the job's end"
        );
    }
);

/// An app whose entry does not grant BareMetal code: its load and its exec are refused,
/// naming it.
fn asks_for_baremetal_ungranted(kernel: &rexo_api::Kernel) -> Result<(), rexo_api::ApiError> {
    let refused = Some(LoadError::NotGranted("bm-ungranted"));
    assert_eq!(kernel.load_baremetal(Some(&[0xC3])).err(), refused);
    assert_eq!(kernel.exec_baremetal().err(), refused);
    Ok(())
}

/// An app granted BareMetal code: loads and runs a `ret`.
fn asks_for_baremetal_granted(kernel: &rexo_api::Kernel) -> Result<(), rexo_api::ApiError> {
    let loaded = kernel.load_baremetal(Some(&[0xC3])).map(|info| info.size);
    assert_eq!(loaded, Ok(1), "the granted app's load");
    assert!(kernel.exec_baremetal().is_ok(), "the granted app's exec");
    Ok(())
}

kernel_test!(
    fn only_an_app_granted_baremetal_code_loads_and_runs_it() {
        use crate::apps::{App, CoreSpan, run_as};
        let ungranted = App::new(
            "bm-ungranted",
            "asks to load and run BareMetal code",
            asks_for_baremetal_ungranted,
        );
        let granted = App {
            may_run_baremetal: true,
            ..App::new(
                "bm-granted",
                "loads and runs BareMetal code",
                asks_for_baremetal_granted,
            )
        };
        let owner = crate::caps::tests::top_owner(1);
        for app in [&ungranted, &granted] {
            let run = run_as(app, owner, CoreSpan { first: 0, count: 1 }, None);
            assert_eq!(run, Ok(()), "{}", app.name);
        }
    }
);

/// An app whose entry does not grant BareMetal code: asks to start the kernel's
/// `baremetal` app, which would load the first boot module and run it in ring 0.
fn starts_the_baremetal_app(kernel: &rexo_api::Kernel) -> Result<(), rexo_api::ApiError> {
    let refused = Err(rexo_api::ApiError::NotGranted("bm-starter"));
    assert_eq!(kernel.run_app("baremetal"), refused);
    Ok(())
}

kernel_test!(
    fn an_app_not_granted_baremetal_code_cannot_start_the_baremetal_app() {
        // Without the check the machine has no module here, and the app's load ends the
        // whole run (a fatal error).
        let app = crate::apps::App::new(
            "bm-starter",
            "asks to run the baremetal app",
            starts_the_baremetal_app,
        );
        let owner = crate::caps::tests::top_owner(1);
        let cores = crate::apps::CoreSpan { first: 0, count: 1 };
        assert_eq!(crate::apps::run_as(&app, owner, cores, None), Ok(()));
    }
);

/// The receive buffers of [`a_receive_by_a_program_with_no_heap_left_allocates_its_buffer`],
/// and the address its app's receive returned.
static BUFFERS: rexo_drivers::baremetal::ReceiveBuffers<{ crate::arch::percpu::MAX_CORES }> =
    rexo_drivers::baremetal::ReceiveBuffers::new();
static FIRST_BUFFER: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Takes the heap growth its quota allows ([`crate::tests::take_the_heap`]), then makes
/// its core's first `b_net_rx` on [`BUFFERS`], as a BareMetal program may.
fn app_receiving_with_no_heap_left(_: &rexo_api::Kernel) -> Result<(), rexo_api::ApiError> {
    let kept = crate::tests::take_the_heap();
    let (address, _) = calls::registry().baremetal_receive(0, &BUFFERS);
    FIRST_BUFFER.store(address, core::sync::atomic::Ordering::Relaxed);
    drop(kept);
    Ok(())
}

kernel_test!(
    /// A core's first `b_net_rx` allocates its receive buffer in a kernel section: made
    /// by an app that took the heap growth of its quota, the call is served from the
    /// kernel's reserve, and the core's next call gets the same buffer (without the
    /// section the allocation was refused inside the buffer's `Once`, the app ended
    /// there, and every later call on the core spun for good).
    fn a_receive_by_a_program_with_no_heap_left_allocates_its_buffer() {
        let app = crate::apps::App::new(
            "rx-heap-taker",
            "receives with no heap left",
            app_receiving_with_no_heap_left,
        );
        let owner = crate::caps::tests::top_owner(14);
        let cores = crate::apps::CoreSpan { first: 0, count: 1 };
        let run = crate::apps::run_as(&app, owner, cores, Some(1 << 20));
        assert_eq!(run, Ok(()), "the app was ended in its first receive");
        let first = FIRST_BUFFER.load(core::sync::atomic::Ordering::Relaxed);
        assert_ne!(first, 0, "no buffer address");
        let (second, _) = calls::registry().baremetal_receive(0, &BUFFERS);
        assert_eq!(second, first, "the core's buffer changed");
    }
);
