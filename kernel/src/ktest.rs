//! Kernel tests: functions registered through the `.rexo_tests` link section with
//! [`kernel_test!`](crate::kernel_test), run inside QEMU by `test` on the command line.
//! Each prints `test NAME ...` as it starts and `test NAME ... ok` when it passes (once
//! the work it left on any core has run); a failing assertion panics, in the test or in
//! that work, and the crash report starts with `test NAME ... FAILED`.
//! `cargo xtask test` reads these lines: a test that hangs or resets the machine is the
//! one that started last.

#![allow(unsafe_code)] // reading the test table the linker gathered

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::kprintln;

/// One registered kernel test.
pub struct KernelTest {
    /// `module::path::function`, without the crate name.
    pub name: &'static str,
    /// The test body; it fails by panicking.
    pub run: fn(),
}

/// Registers a kernel test: `kernel_test!(fn name() { ... });`.
#[macro_export]
macro_rules! kernel_test {
    ($(#[$meta:meta])* fn $name:ident() $body:block) => {
        $(#[$meta])*
        fn $name() $body
        const _: () = {
            #[used]
            #[allow(unsafe_code)] // placing the entry in the test table section
            #[unsafe(link_section = ".rexo_tests")]
            static TEST: $crate::ktest::KernelTest =
                $crate::ktest::KernelTest { name: concat!(module_path!(), "::", stringify!($name)), run: $name };
        };
    };
}

unsafe extern "C" {
    static __rexo_tests_start: u8;
    static __rexo_tests_end: u8;
}

fn all() -> &'static [KernelTest] {
    let start = (&raw const __rexo_tests_start).cast::<KernelTest>();
    let end = (&raw const __rexo_tests_end).cast::<KernelTest>();
    let count = (end as usize - start as usize) / core::mem::size_of::<KernelTest>();
    // SAFETY: the linker script gathers every `KernelTest` static (and nothing else) into
    // `.rexo_tests` between these two symbols, so they form an array of `count` entries.
    unsafe { core::slice::from_raw_parts(start, count) }
}

fn short_name(test: &KernelTest) -> &'static str {
    test.name
        .split_once("::")
        .map_or(test.name, |(_, rest)| rest)
}

const NONE: usize = usize::MAX;
static CURRENT: AtomicUsize = AtomicUsize::new(NONE);

/// Prints `test NAME ... FAILED` if a test is running (called by the crash report).
pub fn report_failure_if_running() {
    if let Some(test) = all().get(CURRENT.load(Ordering::Relaxed)) {
        kprintln!("test {} ... FAILED", short_name(test));
    }
}

/// Runs every test whose name contains `filter`, skipping those up to and including
/// `after`, then exits QEMU with the success status.
pub fn run(filter: &str, after: Option<&str>) -> ! {
    let tests = all();
    let mut skipping = false;
    if let Some(after) = after {
        if !tests.iter().any(|t| short_name(t) == after) {
            log::error!("test.after={after}: no kernel test has this name");
            crate::power::exit_failure();
        }
        skipping = true;
    }
    let mut passed = 0;
    for (index, test) in tests.iter().enumerate() {
        let name = short_name(test);
        if skipping {
            skipping = after != Some(name);
            continue;
        }
        if !name.contains(filter) {
            continue;
        }
        kprintln!("test {name} ...");
        CURRENT.store(index, Ordering::Relaxed);
        (test.run)();
        // Work the test left on other cores fails under its name, not a later test's: the
        // queued tasks run here, and each core's no-op after the task it is running.
        while crate::sched::run_one(crate::arch::percpu::core_index()) {}
        crate::sched::run_on_cores(crate::smp_cores(), |_| {}).expect("every core answers");
        CURRENT.store(NONE, Ordering::Relaxed);
        kprintln!("test {name} ... ok");
        passed += 1;
    }
    kprintln!("rexo: tests done passed={passed}");
    crate::power::exit_success()
}
