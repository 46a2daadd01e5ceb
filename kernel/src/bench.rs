//! `bench=api`: the costs `cargo xtask bench api` reports (docs/bench.md), measured with
//! the TSC on the boot core after the ready line, each as many rounds whose median and
//! spread are printed as one parseable line (`rexo_benchfigure`: a round times K
//! operations back to back and divides), then `bench done` and exit status 33.

use alloc::vec::Vec;
use core::hint::black_box;
use core::sync::atomic::{AtomicBool, Ordering};

use rexo_api::Kernel;
use rexo_benchfigure::Figure;
use rexo_captable::OwnerId;
use rexo_cmdline::Bench;

use crate::arch::cpu::{self, rdtsc};
use crate::kprintln;

/// The core that receives the cross-core tasks.
const TARGET_CORE: usize = 1;
/// Bytes of the frame range allocated and freed.
const FRAME_BYTES: u64 = 2 << 20;
/// The capability owner the benchmark acts as: the kernel itself.
const OWNER: OwnerId = OwnerId(0);
/// How long the target core is left after it marked itself idle, so that it is halted.
const SETTLE_US: u64 = 20;

/// Set by the empty task on the target core: the round trip's end.
static DONE: AtomicBool = AtomicBool::new(false);
/// Set while the polling task runs on the target core.
static POLLING: AtomicBool = AtomicBool::new(false);
/// Tells the polling task to return.
static STOP_POLLING: AtomicBool = AtomicBool::new(false);

/// Runs benchmark `which`, prints its lines, and ends the run (QEMU status 33).
pub fn run(which: Bench) -> ! {
    match which {
        Bench::Api => api(),
    }
    kprintln!("bench done");
    crate::power::exit_success()
}

/// Times `f` called `n` times back to back.
fn timed(n: u64, mut f: impl FnMut()) -> u64 {
    let start = rdtsc();
    for _ in 0..n {
        f();
    }
    rdtsc().saturating_sub(start)
}

/// The work of the API call being compared, done by a plain direct call.
#[inline(never)]
fn plain_cores() -> usize {
    crate::smp_cores()
}

/// Submits the empty task to the target core and spins until it ran; returns the ticks,
/// or `None` if the target's mailbox was full.
fn round_trip() -> Option<u64> {
    DONE.store(false, Ordering::Release);
    let start = rdtsc();
    crate::sched::submit_to(TARGET_CORE, || DONE.store(true, Ordering::Release)).ok()?;
    while !DONE.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    Some(rdtsc().saturating_sub(start))
}

/// On the target core: run queued tasks by polling, never halting, until told to stop.
fn poll_until_stopped() {
    POLLING.store(true, Ordering::Release);
    while !STOP_POLLING.load(Ordering::Acquire) {
        crate::sched::run_one(TARGET_CORE);
    }
    POLLING.store(false, Ordering::Release);
}

/// Waits until the target core is in its idle halt.
fn wait_target_halted() {
    while !crate::sched::machine_queue().is_idle(TARGET_CORE) {
        cpu::pause();
    }
    crate::time::delay_us(SETTLE_US);
}

fn api() {
    let tsc_hz = crate::time::tsc_hz();
    let cores = crate::smp_cores();
    kprintln!("bench start tsc_hz={tsc_hz} cores={cores}");
    let api = crate::apps::api_as(OWNER);
    // Opaque to the optimiser: the calls below read the token, as an app's calls do.
    let kernel: &Kernel = black_box(&api);
    let mut figures = Vec::new();

    figures.push(Figure::measure("plain-call", 301, 1000, |n| {
        timed(n, || _ = black_box(plain_cores()))
    }));
    figures.push(Figure::measure("api-call", 301, 1000, |n| {
        timed(n, || _ = black_box(kernel.cores()))
    }));
    figures.push(Figure::measure("frame-2m", 301, 8, |n| {
        timed(n, || {
            if let Ok(frames) = crate::mem::frames::allocate(FRAME_BYTES, FRAME_BYTES) {
                crate::mem::frames::free(black_box(frames));
            }
        })
    }));
    // Check once, outside the timing, that the allocation succeeds at all.
    match crate::mem::frames::allocate(FRAME_BYTES, FRAME_BYTES) {
        Ok(frames) => crate::mem::frames::free(frames),
        Err(error) => kprintln!("bench frame-2m error=allocation-failed ({error:?})"),
    }

    let mut refused = 0u32;
    if cores > TARGET_CORE {
        // The target core polls: a task on it runs queued work in a loop.
        STOP_POLLING.store(false, Ordering::Release);
        if crate::sched::submit_to(TARGET_CORE, poll_until_stopped).is_ok() {
            while !POLLING.load(Ordering::Acquire) {
                core::hint::spin_loop();
            }
            figures.push(Figure::measure("roundtrip-polling", 501, 1, |_| {
                round_trip().unwrap_or_else(|| {
                    refused += 1;
                    0
                })
            }));
            STOP_POLLING.store(true, Ordering::Release);
            while POLLING.load(Ordering::Acquire) {
                core::hint::spin_loop();
            }
        } else {
            kprintln!("bench roundtrip-polling error=queue-full");
        }
        // The target core halts between rounds and is woken by an IPI.
        figures.push(Figure::measure("roundtrip-halted", 201, 1, |_| {
            wait_target_halted();
            round_trip().unwrap_or_else(|| {
                refused += 1;
                0
            })
        }));
    } else {
        kprintln!("bench roundtrip-polling error=needs-two-cores");
        kprintln!("bench roundtrip-halted error=needs-two-cores");
    }

    figures.push(Figure::measure("revoke", 201, 8, |n| {
        let caps: Vec<_> = (0..n)
            .filter_map(|_| crate::caps::allocate_memory(OWNER, 4096).ok())
            .collect();
        if caps.len() as u64 != n {
            refused += 1;
        }
        let start = rdtsc();
        for cap in &caps {
            if crate::caps::revoke(cap.id()).is_err() {
                refused += 1;
            }
        }
        rdtsc().saturating_sub(start)
    }));
    if refused > 0 {
        kprintln!("bench error=refused-{refused}-times (a full queue or capability table)");
    }

    for figure in &figures {
        kprintln!("{}", figure.line(tsc_hz));
    }
}
