//! memdemo: an app on the memory and time library OS (`rexo-mem`). It allocates across
//! several arenas, checks every byte, frees, has bad requests refused, runs into its
//! quota (`apps=memdemo:0:8M`), then holds its arenas while it answers the kernel's
//! revocation requests, and gives everything back. Every step logs one `memdemo:` line;
//! a failed check logs `memdemo: FAILED: ...` and the app fails.
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use rexo_api::{ApiError, Kernel};
use rexo_mem::{Deadlines, Handle, Heap, HeapError, KernelClock, KernelFrames};

/// How long `memdemo-revocable` holds its arenas waiting for a revocation request.
const REVOCABLE_WAIT_NS: u64 = 60_000_000_000;
/// How often it looks for revocation requests meanwhile.
const POLL_NS: u64 = 1_000_000;
/// Small blocks of step 1.
const SMALL: usize = 64;
/// The large blocks of step 1: each too large to share an arena with another.
const LARGE: u64 = 1280 << 10;
const KIB: u64 = 1024;
const MIB: u64 = 1 << 20;

/// The app `memdemo`: every step, and at the end the revocation requests already made
/// answered (without waiting for one).
pub fn main(kernel: &Kernel) -> Result<(), ApiError> {
    run(kernel, 0)
}

/// The app `memdemo-revocable`: the same, holding its arenas up to 60 s until the kernel
/// asks for one back (the kernel test `caps::tests::memlibos` asks).
pub fn main_revocable(kernel: &Kernel) -> Result<(), ApiError> {
    run(kernel, REVOCABLE_WAIT_NS)
}

fn run(kernel: &Kernel, wait_ns: u64) -> Result<(), ApiError> {
    match steps(kernel, wait_ns) {
        Ok(()) => Ok(()),
        Err(why) => {
            kernel.log(format_args!("memdemo: FAILED: {why}"));
            Err(ApiError::AppFailed(1))
        }
    }
}

/// Byte `i` of block `tag`.
fn byte(tag: usize, i: usize) -> u8 {
    (i * 13 + tag * 7) as u8
}

/// Whether `bytes` are the first bytes of block `tag`.
fn holds(bytes: &[u8], tag: usize) -> bool {
    bytes.iter().enumerate().all(|(i, &b)| b == byte(tag, i))
}

/// Checks, in place, that every block in `blocks` (with its tag) holds its bytes.
fn check(heap: &mut Heap<KernelFrames<'_>>, blocks: &[(Handle, usize)]) -> Result<(), String> {
    for &(handle, tag) in blocks {
        let same = heap
            .with_bytes(handle, |bytes| holds(bytes, tag))
            .map_err(|e| format!("block {tag}: {e}"))?;
        if !same {
            return Err(format!("block {tag} does not hold its bytes"));
        }
    }
    Ok(())
}

/// A new block of `len` bytes holding the bytes of `tag`, written in place.
fn block(
    heap: &mut Heap<KernelFrames<'_>>,
    tag: usize,
    len: u64,
) -> Result<(Handle, usize), HeapError> {
    let handle = heap.allocate(len)?;
    heap.with_bytes(handle, |bytes| {
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = byte(tag, i);
        }
    })?;
    Ok((handle, tag))
}

/// Says `what` was refused with `error`, or fails if it was not refused so.
fn refused(
    kernel: &Kernel,
    what: &str,
    got: Result<impl core::fmt::Debug, HeapError>,
    error: HeapError,
) -> Result<(), String> {
    match got {
        Err(e) if e == error => {
            kernel.log(format_args!("memdemo: {what} refused: {e}"));
            Ok(())
        }
        other => Err(format!("{what}: expected {error:?}, got {other:?}")),
    }
}

fn steps(kernel: &Kernel, wait_ns: u64) -> Result<(), String> {
    let e = |error: HeapError| format!("{error}");
    let mut heap = Heap::new(kernel);
    // 1. Small and large blocks across several arenas, every byte checked.
    let mut small = Vec::new();
    for tag in 0..SMALL {
        small.push(block(&mut heap, tag, 16 + tag as u64 * 61).map_err(e)?);
    }
    let mut large = Vec::new();
    for tag in SMALL..SMALL + 3 {
        large.push(block(&mut heap, tag, LARGE).map_err(e)?);
    }
    let stats = heap.stats();
    kernel.log(format_args!(
        "memdemo: {} allocations across {} arenas ({} KiB)",
        stats.allocations,
        stats.arenas,
        stats.arena_bytes / KIB
    ));
    check(&mut heap, &small)?;
    check(&mut heap, &large)?;
    kernel.log(format_args!(
        "memdemo: read back {} allocations byte-exact",
        small.len() + large.len()
    ));
    // 2. Reallocation keeps the bytes and the handle.
    for &(handle, tag) in &small[..8] {
        let len = heap.len(handle).map_err(e)?;
        heap.reallocate(handle, len * 3).map_err(e)?;
        let kept = heap
            .with_bytes(handle, |bytes| holds(&bytes[..len as usize], tag))
            .map_err(e)?;
        if !kept {
            return Err(format!("reallocated block {tag} lost its bytes"));
        }
        heap.reallocate(handle, len).map_err(e)?;
    }
    check(&mut heap, &small)?;
    kernel.log(format_args!(
        "memdemo: reallocated 8 blocks, their bytes kept"
    ));
    // 3. Frees: arenas left wholly free go back to the kernel.
    let before = heap.stats().arenas;
    for (handle, _) in large.drain(1..) {
        heap.free(handle).map_err(e)?;
    }
    let stats = heap.stats();
    kernel.log(format_args!(
        "memdemo: freed 2 blocks of {} KiB: {} arenas given back, {} held",
        LARGE / KIB,
        before - stats.arenas,
        stats.arenas
    ));
    // 4. Bad requests are refused by name and change nothing.
    let freed = block(&mut heap, 99, 100).map_err(e)?.0;
    heap.free(freed).map_err(e)?;
    refused(kernel, "double free", heap.free(freed), HeapError::Freed)?;
    let mut other = Heap::new(kernel);
    let foreign = other.allocate(100).map_err(e)?;
    refused(
        kernel,
        "another heap's handle",
        heap.free(foreign),
        HeapError::ForeignHandle,
    )?;
    other.free(foreign).map_err(e)?;
    other.trim().map_err(e)?;
    refused(kernel, "0 bytes", heap.allocate(0), HeapError::ZeroSize)?;
    refused(
        kernel,
        "2 GiB",
        heap.allocate(2 << 30),
        HeapError::TooLarge {
            bytes: 2 << 30,
            max: rexo_mem::MAX_ALLOCATION,
        },
    )?;
    // 5. The quota: blocks of 1 MiB until the kernel refuses; nothing held is lost.
    let mut filler = Vec::new();
    let error = loop {
        match heap.allocate(MIB) {
            Ok(handle) => filler.push(handle),
            Err(error) => break error,
        }
        if filler.len() == 64 {
            return Err(String::from(
                "no quota error within 64 MiB: run memdemo with a quota (apps=memdemo:0:8M)",
            ));
        }
    };
    if error != HeapError::Kernel(ApiError::QuotaExceeded) {
        return Err(format!("the quota: expected QuotaExceeded, got {error}"));
    }
    check(&mut heap, &small)?;
    check(&mut heap, &large)?;
    kernel.log(format_args!(
        "memdemo: quota reached after {} more MiB: {error}; the {} earlier allocations intact",
        filler.len(),
        small.len() + large.len()
    ));
    for handle in filler {
        heap.free(handle).map_err(e)?;
    }
    for (handle, _) in large.drain(..) {
        heap.free(handle).map_err(e)?;
    }
    // 6. Visible revocation: small blocks in one arena, a large one in another; the
    // kernel's requests are answered by moving blocks and giving the arena back.
    let big = block(&mut heap, 200, 3 * MIB).map_err(e)?;
    let stats = heap.stats();
    kernel.log(format_args!(
        "memdemo: holding {} allocations in {} arenas ({} KiB); answering revocation requests",
        stats.allocations,
        stats.arenas,
        stats.arena_bytes / KIB
    ));
    let answered = serve_revocations(kernel, &mut heap, wait_ns)?;
    check(&mut heap, &small)?;
    check(&mut heap, &[big])?;
    if answered > 0 {
        kernel.log(format_args!(
            "memdemo: {} allocations read back byte-exact after the revocation",
            small.len() + 1
        ));
    } else if wait_ns > 0 {
        return Err(format!(
            "no revocation request within {} s",
            wait_ns / 1_000_000_000
        ));
    } else {
        kernel.log(format_args!("memdemo: no revocation request pending"));
    }
    // 7. Everything back.
    for (handle, _) in small.into_iter().chain([big]) {
        heap.free(handle).map_err(e)?;
    }
    let trimmed = heap.trim().map_err(e)?;
    if heap.stats().arenas != 0 {
        return Err(String::from("arenas held after trim"));
    }
    kernel.log(format_args!(
        "memdemo: done: every allocation freed, the last arena ({} KiB) given back",
        trimmed / KIB
    ));
    Ok(())
}

/// What the deadline list holds while memdemo waits for revocation requests.
enum Tick {
    Poll,
    GiveUp,
}

/// Polls for revocation requests every millisecond until one was answered or `wait_ns`
/// passed (with 0: once); returns how many were answered.
fn serve_revocations(
    kernel: &Kernel,
    heap: &mut Heap<KernelFrames<'_>>,
    wait_ns: u64,
) -> Result<usize, String> {
    let clock = KernelClock(kernel);
    let mut timers = Deadlines::new();
    timers.after(&clock, 0, Tick::Poll);
    timers.after(&clock, wait_ns, Tick::GiveUp);
    let mut answered = 0;
    loop {
        for tick in timers.wait(&clock) {
            match tick {
                Tick::Poll => {
                    let answers = heap.poll_revocations();
                    for answer in &answers {
                        kernel.log(format_args!(
                            "memdemo: revocation of arena {} ({} KiB) answered: {} allocations moved, {} lost",
                            answer.arena,
                            answer.bytes / KIB,
                            answer.moved,
                            answer.lost.len()
                        ));
                        answer.returned.map_err(|e| format!("{e}"))?;
                        if !answer.lost.is_empty() {
                            return Err(format!("lost {:?}", answer.lost));
                        }
                    }
                    answered += answers.len();
                    if answered > 0 {
                        return Ok(answered);
                    }
                    timers.after(&clock, POLL_NS, Tick::Poll);
                }
                Tick::GiveUp => return Ok(answered),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_hold_different_bytes() {
        let one: alloc::vec::Vec<u8> = (0..64).map(|i| byte(1, i)).collect();
        assert!(holds(&one, 1));
        assert!(!holds(&one, 2));
    }
}
