//! The kernel API as a C ABI (`api/c/rexo.h`): the `rexo_*` functions that C apps linked
//! into the image call, over the same [`Kernel`] calls as the Rust API.
//!
//! The kernel registers a [`Host`] once at boot: the kernel API of the app run each core
//! acts for (a C call carries no `&Kernel`), and the check that a pointer range lies
//! in usable RAM that the kernel's page tables map. A C app is a capability owner like a
//! Rust app; its capabilities stay here, in a handle table: C sees positive handle
//! numbers, never reused, private to the app; whatever the app still holds when it
//! returns goes back to the kernel (which releases its owner).
//!
//! Every function checks its arguments before anything else and answers bad ones with a
//! negative code of `rexo.h`, never a crash: a NULL pointer with a non-zero length, a
//! buffer that is not inside one region of usable RAM (page 0, past the end of RAM,
//! wrapping) or not mapped there (a kernel stack's guard page), an unknown handle or one
//! of another kind, a range past the end of the memory, a timer deadline that is not in
//! the future.
#![cfg_attr(target_os = "none", no_std)]
#![allow(unsafe_code)] // exporting the `rexo_*` symbols, C's pointers as slices

extern crate alloc;

use alloc::sync::Arc;
use core::ffi::{c_char, c_int, c_uint, c_void};

use rexo_api::{ApiError, CapError, EntryState, Kernel, MemoryCap};
pub use rexo_captable::OwnerId;
use spin::Once;

/// `REXO_OK`: success.
pub const REXO_OK: c_int = 0;
/// `REXO_EINVAL`: NULL pointer with a non-zero length, NULL function or out-parameter,
/// zero size.
pub const REXO_EINVAL: c_int = -1;
/// `REXO_EFAULT`: a buffer outside usable RAM, in a page of it that is not mapped (a
/// stack's guard page), or in memory taken back by force.
pub const REXO_EFAULT: c_int = -2;
/// `REXO_EBADF`: no such handle for this app.
pub const REXO_EBADF: c_int = -3;
/// `REXO_ERANGE`: offset and length past the end.
pub const REXO_ERANGE: c_int = -4;
/// `REXO_ENOMEM`: no memory (or capability-table entry, or binding on a shared
/// interface, in all or for the app, or field test a frame may cost its filters) left.
pub const REXO_ENOMEM: c_int = -5;
/// `REXO_EBUSY`: a core's work queue was full (`rexo_run_on_every_core` may have run its
/// function on the cores before that one), a device or filter another app holds, a ring
/// full, the memory mapped, or the core's timer held.
pub const REXO_EBUSY: c_int = -6;
/// `REXO_EPERM`: the kernel refused the request.
pub const REXO_EPERM: c_int = -7;
/// `REXO_ENOAPP`: the call needs a C app and none runs on this core.
pub const REXO_ENOAPP: c_int = -8;
/// `REXO_ENODEV`: no device of that kind and index (or no wall clock, or no random
/// number from the CPU).
pub const REXO_ENODEV: c_int = -9;
/// `REXO_EIO`: the device or its driver failed the request.
pub const REXO_EIO: c_int = -10;
/// `REXO_EMSGSIZE`: a frame longer than the interface carries, or shorter than an
/// Ethernet header.
pub const REXO_EMSGSIZE: c_int = -11;
/// `REXO_ETIME`: a deadline that is not in the future.
pub const REXO_ETIME: c_int = -12;

/// `rexo_read_byte`'s answer when no input is waiting.
const NO_BYTE: c_int = -1;

/// What [`Host::acting_for`] calls: the kernel API and the owner a core acts for.
pub type ActingFn<'a> = &'a mut dyn FnMut(&Kernel, Option<OwnerId>);

/// What [`Host::copy_memory`] is: `(kernel, cap, offset, buf, write)`.
pub type CopyFn = unsafe fn(&Kernel, &MemoryCap, u64, *mut [u8], bool) -> Result<(), ApiError>;

/// What the kernel lends the C ABI ([`register`]).
pub struct Host {
    /// Calls `f` once with the kernel API of the app run this core acts for and that
    /// run's owner; outside an app run, with the kernel's own API and `None`.
    pub acting_for: fn(f: ActingFn<'_>),
    /// Whether `start..end` (non-empty, `start` < `end`) lies inside one region of
    /// usable RAM, outside memory the kernel took back by force, and every page of it is
    /// mapped (the kernel walks its page tables: a stack's guard page is RAM too).
    pub usable_ram: fn(start: u64, end: u64) -> bool,
    /// Copies between the C app's buffer `buf` and the memory `cap` names, at `offset`,
    /// for the app run `kernel` acts for: into it (`write`) or out of it, refused as
    /// [`Kernel::write_memory`] and [`Kernel::read_memory`] are. A raw slice, not a
    /// reference: the buffer may lie in the capability's own frames (C may keep a pointer
    /// from a view), and a reference to it across the copy would break Rust's aliasing
    /// rules. Unsafe to call: `buf` must be usable RAM, every page mapped (as `check_ram`
    /// checks it).
    pub copy_memory: CopyFn,
    /// The index of the core running the caller (a handle's lock records it: see
    /// [`release_abandoned`]).
    pub core_index: fn() -> usize,
    /// Calls `f` once as kernel code no abort of the app ends half done (the kernel's
    /// kernel section): an app short of stack is ended before `f` starts, and `f`'s
    /// allocations are the kernel's, never refused by the app's quota. The handle
    /// table's locks are held only inside one ([`release_abandoned`] frees only a
    /// handle's own lock).
    pub kernel_section: fn(f: &mut dyn FnMut()),
}

/// The kernel's registration.
static HOST: Once<Host> = Once::new();

/// Registers the kernel's side, once at boot before any C app runs (later calls are
/// ignored).
pub fn register(host: Host) {
    HOST.call_once(|| host);
}

/// The registered host.
fn host() -> &'static Host {
    HOST.get()
        .expect("the kernel registers the C ABI's host at boot (rexo_capi::register)")
}

/// Runs `f` with the kernel API and owner this core acts for ([`Host::acting_for`]).
fn with_kernel<R>(f: impl FnOnce(&Kernel, Option<OwnerId>) -> R) -> R {
    let (mut f, mut result) = (Some(f), None);
    (host().acting_for)(&mut |kernel, owner| {
        if let Some(f) = f.take() {
            result = Some(f(kernel, owner));
        }
    });
    result.expect("Host::acting_for calls its function once")
}

/// Runs `f` with the kernel API of the C app running on this core, for calls that act
/// on its behalf; `REXO_ENOAPP` outside one.
fn with_app<R: From<c_int>>(f: impl FnOnce(&Kernel, OwnerId) -> R) -> R {
    with_kernel(|kernel, owner| match owner {
        Some(owner) => f(kernel, owner),
        None => REXO_ENOAPP.into(),
    })
}

mod cores;
mod devices;
mod handles;
mod views;

pub use cores::*;
pub use devices::*;
use handles::{Object, insert, with_memory};
pub use handles::{forget_handles, frame_mark, release_abandoned};
pub use views::*;

/// Runs a C app's `main` (called on its own run, the core acting for it); a non-zero
/// return is the app's failure code ([`ApiError::AppFailed`]). Its handles go when the
/// run ends, however it ends ([`forget_handles`]); the capabilities themselves go back
/// when the kernel releases the owner.
pub fn run_app(kernel: &Kernel, name: &str, main: impl FnOnce() -> c_int) -> Result<(), ApiError> {
    let code = main();
    if code == REXO_OK {
        return Ok(());
    }
    kernel.log(format_args!("{name}: the C app returned {code}"));
    Err(ApiError::AppFailed(code))
}

/// The code of `rexo.h` for a kernel error.
fn error_code(error: ApiError) -> c_int {
    match error {
        ApiError::QueueFull
        | ApiError::DeviceBusy(_)
        | ApiError::FilterOverlap(_)
        | ApiError::TimerBusy
        | ApiError::AlreadyRunning => REXO_EBUSY,
        ApiError::DeadlinePassed => REXO_ETIME,
        // A filter list empty or past a limit is a bad argument whatever else holds the
        // interface (rexo_net_bind passes one filter of at most MAX_ATOMS atoms, so C
        // never meets them).
        ApiError::TooManyFilters { .. } | ApiError::NoFilters | ApiError::TooManyAtoms { .. } => {
            REXO_EINVAL
        }
        // A full table, like the capability table's: an entry frees when a binding ends;
        // and a merged filter tree at the most tests a frame may cost.
        ApiError::OutOfMemory
        | ApiError::QuotaExceeded
        | ApiError::Refused(CapError::Full | CapError::TooManyEntries { .. })
        | ApiError::TooManyBindings { .. }
        | ApiError::TooManyFilterTests { .. }
        | ApiError::FilterTestShare { .. } => REXO_ENOMEM,
        ApiError::Refused(CapError::OutOfRange) => REXO_ERANGE,
        ApiError::NoSuchDevice | ApiError::NoWallClock | ApiError::NoRandom => REXO_ENODEV,
        ApiError::Device(error) => devices::device_code(error),
        ApiError::Refused(_)
        | ApiError::NoSuchApp
        | ApiError::PowerOffFailed(_)
        | ApiError::AppFailed(_)
        | ApiError::Binary(_)
        | ApiError::Panicked
        | ApiError::StackOverflow
        | ApiError::Repossessed
        | ApiError::Extents(_)
        | ApiError::AmbiguousApp
        | ApiError::NotGranted(_)
        | ApiError::NoAddress
        | ApiError::CoreNotHeld(_) => REXO_EPERM,
    }
}

/// `REXO_OK` or the error's code.
fn status(result: Result<(), ApiError>) -> c_int {
    result.map_or_else(error_code, |()| REXO_OK)
}

/// The code of a copying call's answer (`read_memory`, `write_memory`) over the C app's
/// `buffer`. The kernel answers `Revoked` for a revoked capability (`REXO_EPERM`) and as
/// well for a buffer in memory taken by force from the app after [`c_bytes`] checked it
/// (another core, or the timer, past the revocation deadline): `buffer_revoked` says
/// which, and a buffer in such memory is `REXO_EFAULT`, as rexo.h has it.
fn copy_status(result: Result<(), ApiError>, buffer_revoked: impl FnOnce() -> bool) -> c_int {
    match result {
        Err(ApiError::Refused(CapError::Revoked)) if buffer_revoked() => REXO_EFAULT,
        result => status(result),
    }
}

/// Whether the C app's buffer `buf` (checked by [`c_buffer`]) lies, now, outside usable
/// RAM: in memory taken by force since.
fn taken_since_checked(buf: *mut [u8]) -> bool {
    !buf.is_empty() && check_ram(buf.cast::<u8>() as usize, buf.len()).is_err()
}

/// Whether `[addr, addr + len)` (`len` > 0) lies above page 0 inside one region of usable
/// RAM, none of it taken back by force, every page of it mapped ([`Host::usable_ram`]).
fn check_ram(addr: usize, len: usize) -> Result<(), c_int> {
    let start = addr as u64;
    let end = start.checked_add(len as u64).ok_or(REXO_EFAULT)?;
    if start >= 0x1000 && (host().usable_ram)(start, end) {
        Ok(())
    } else {
        Err(REXO_EFAULT)
    }
}

/// The `len` bytes C passes at `ptr`, checked (not NULL, usable RAM, every page mapped), as
/// a raw slice: empty (and dangling, never read) for `len` 0, whatever `ptr` is.
fn c_buffer(ptr: *const c_void, len: usize) -> Result<*mut [u8], c_int> {
    if len == 0 {
        return Ok(core::ptr::slice_from_raw_parts_mut(
            core::ptr::dangling_mut(),
            0,
        ));
    }
    if ptr.is_null() {
        return Err(REXO_EINVAL);
    }
    check_ram(ptr as usize, len)?;
    Ok(core::ptr::slice_from_raw_parts_mut(
        ptr.cast::<u8>().cast_mut(),
        len,
    ))
}

/// The `len` bytes C passes at `ptr`, checked ([`c_buffer`]).
fn c_bytes<'a>(ptr: *const c_void, len: usize) -> Result<&'a [u8], c_int> {
    let buf = c_buffer(ptr, len)?;
    // SAFETY: `buf` is usable RAM, every page mapped, or empty (checked by `c_buffer`). The
    // C app hands the buffer to the kernel for this call only; the slice does not outlive it.
    Ok(unsafe { &*buf })
}

/// The `len` bytes C lends at `ptr` for the kernel to fill, checked ([`c_buffer`]).
fn c_bytes_mut<'a>(ptr: *mut c_void, len: usize) -> Result<&'a mut [u8], c_int> {
    let buf = c_buffer(ptr, len)?;
    // SAFETY: as in `c_bytes`; the C app lends the buffer for writing during this call.
    Ok(unsafe { &mut *buf })
}

/// A `uint64_t` out-parameter C passed, checked when the call starts (not NULL, inside
/// usable RAM), so that a call checks all of them before it writes any, and checked again
/// as it is written ([`OutParam::store`]).
struct OutParam(*mut u64);

impl OutParam {
    /// `ptr`, checked: `REXO_EINVAL` for NULL, `REXO_EFAULT` outside usable RAM.
    fn new(ptr: *mut u64) -> Result<Self, c_int> {
        if ptr.is_null() {
            return Err(REXO_EINVAL);
        }
        Self(ptr).still_usable()?;
        Ok(Self(ptr))
    }

    /// `REXO_EFAULT` if it lies outside usable RAM now (taken back by force since the call
    /// started).
    fn still_usable(&self) -> Result<(), c_int> {
        check_ram(self.0 as usize, size_of::<u64>())
    }

    /// Stores `value` in it, unless it lies in memory taken back by force since the call
    /// started (`REXO_EFAULT`, nothing written).
    fn store(self, value: u64) -> Result<(), c_int> {
        self.still_usable()?;
        // SAFETY: the C app's out-parameter, 8 bytes of usable RAM not taken back by force
        // when checked just above. That narrows the window but does not close it: another
        // core (or the timer) taking the memory by force between the check and the write
        // is not excluded, and the write then faults, as any access by the trusted C app
        // would. It may be unaligned, hence the unaligned write.
        unsafe { self.0.write_unaligned(value) };
        Ok(())
    }
}

/// Two out-parameters, both checked before the call writes either: an error changes
/// nothing.
fn out_params(first: *mut u64, second: *mut u64) -> Result<(OutParam, OutParam), c_int> {
    Ok((OutParam::new(first)?, OutParam::new(second)?))
}

/// Stores two values in two out-parameters ([`out_params`]), both checked again before
/// either is written: one taken back by force since the call started is `REXO_EFAULT`,
/// neither written.
fn store_both((first, second): (OutParam, OutParam), values: (u64, u64)) -> Result<(), c_int> {
    second.still_usable()?;
    first.store(values.0)?;
    second.store(values.1)
}

/// `unsigned rexo_cores(void)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_cores() -> c_uint {
    with_kernel(|kernel, _| c_uint::try_from(kernel.cores()).unwrap_or(c_uint::MAX))
}

/// `unsigned rexo_core_index(void)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_core_index() -> c_uint {
    with_kernel(|kernel, _| c_uint::try_from(kernel.core_index()).unwrap_or(c_uint::MAX))
}

/// `uint64_t rexo_now_ns(void)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_now_ns() -> u64 {
    with_kernel(|kernel, _| kernel.now_ns())
}

/// `int64_t rexo_unix_time(void)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_unix_time() -> i64 {
    with_kernel(|kernel, _| match kernel.unix_time_s() {
        Ok(seconds) => i64::try_from(seconds).unwrap_or(i64::MAX),
        Err(error) => i64::from(error_code(error)),
    })
}

/// `int rexo_random_u64(uint64_t *out)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_random_u64(out: *mut u64) -> c_int {
    store_random(out, || with_kernel(|kernel, _| kernel.random_u64()))
}

/// Stores the number `random` gives in C's `out`, checked before `random` runs
/// (`REXO_EINVAL`, `REXO_EFAULT`); its error's code, nothing stored, when it gives none.
fn store_random(out: *mut u64, random: impl FnOnce() -> Result<u64, ApiError>) -> c_int {
    let out = match OutParam::new(out) {
        Ok(out) => out,
        Err(code) => return code,
    };
    match random() {
        Ok(value) => out.store(value).map_or_else(|code| code, |()| REXO_OK),
        Err(error) => error_code(error),
    }
}

/// The longest log line the kernel keeps, its cut marker included (text past this less
/// `rexo_logline::CUT_MARKER`'s 6 bytes is cut): `rexo_log` converts no more of the C
/// app's text.
const LOG_LINE: usize = rexo_logline::APP_LINE_BYTES;

/// C's bytes as text, part by part: its valid UTF-8 as it is and each invalid sequence as
/// one U+FFFD (as `String::from_utf8_lossy` has it), with nothing allocated, whatever the
/// length.
fn lossy_parts(bytes: &[u8]) -> impl Iterator<Item = &str> {
    bytes.utf8_chunks().flat_map(|chunk| {
        let replaced = if chunk.invalid().is_empty() {
            ""
        } else {
            "\u{FFFD}"
        };
        [chunk.valid(), replaced]
            .into_iter()
            .filter(|part| !part.is_empty())
    })
}

/// C's bytes shown as [`lossy_parts`].
struct Lossy<'a>(&'a [u8]);

impl core::fmt::Display for Lossy<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        lossy_parts(self.0).try_for_each(|part| f.write_str(part))
    }
}

/// What `rexo_log` logs of C's `bytes`: as much as a log line holds, [`lossy_parts`]
/// (a sequence cut at the end shows as U+FFFD past the line's room, where it is cut off).
fn log_text(bytes: &[u8]) -> impl core::fmt::Display + '_ {
    Lossy(&bytes[..bytes.len().min(LOG_LINE)])
}

/// `int rexo_write(const void *buf, size_t len)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_write(buf: *const c_void, len: usize) -> c_int {
    match c_bytes(buf, len) {
        Ok(bytes) => with_kernel(|kernel, _| {
            lossy_parts(bytes).for_each(|part| kernel.write_str(part));
            REXO_OK
        }),
        Err(code) => code,
    }
}

/// `int rexo_log(const char *text, size_t len)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_log(text: *const c_char, len: usize) -> c_int {
    match c_bytes(text.cast(), len) {
        Ok(bytes) => with_kernel(|kernel, _| {
            kernel.log(format_args!("{}", log_text(bytes)));
            REXO_OK
        }),
        Err(code) => code,
    }
}

/// The `arg` of `rexo_run_on_every_core`, passed to C on every core as it is.
struct SharedArg(*mut c_void);

impl SharedArg {
    fn get(&self) -> *mut c_void {
        self.0
    }
}

// SAFETY: the kernel never dereferences the pointer; it only hands it back to the C
// function, and rexo.h tells C that the argument is shared between cores.
unsafe impl Send for SharedArg {}
// SAFETY: as for `Send`: shared only as an opaque value.
unsafe impl Sync for SharedArg {}

/// A C function run on every core: `void (*)(void *arg, unsigned core)`, `core` the
/// core's place among the app's cores.
pub type CoreFn = unsafe extern "C" fn(*mut c_void, c_uint);

/// `int rexo_run_on_every_core(rexo_core_fn fn, void *arg)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_run_on_every_core(function: Option<CoreFn>, arg: *mut c_void) -> c_int {
    let Some(function) = function else {
        return REXO_EINVAL;
    };
    let arg = SharedArg(arg);
    let task = Arc::new(move |_: &Kernel, core: usize| {
        let core = c_uint::try_from(core).unwrap_or(c_uint::MAX);
        // SAFETY: `function` is the non-NULL function pointer the C app passed, with the
        // signature rexo.h gives; `run_on_every_core` runs it acting for the same app.
        unsafe { function(arg.get(), core) };
    });
    with_app(|kernel, _| status(kernel.run_on_every_core(task)))
}

/// `int rexo_read_byte(void)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_read_byte() -> c_int {
    with_kernel(|kernel, _| kernel.read_byte().map_or(NO_BYTE, c_int::from))
}

/// `void rexo_sleep_ns(uint64_t ns)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_sleep_ns(ns: u64) {
    with_kernel(|kernel, _| kernel.sleep_ns(ns));
}

/// `int rexo_memory(uint64_t *usable, uint64_t *free_bytes)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_memory(usable: *mut u64, free_bytes: *mut u64) -> c_int {
    let (usable, free_bytes) = match out_params(usable, free_bytes) {
        Ok(both) => both,
        Err(code) => return code,
    };
    let memory = with_kernel(|kernel, _| kernel.memory());
    let stored = store_both((usable, free_bytes), (memory.usable, memory.free));
    stored.map_or_else(|code| code, |()| REXO_OK)
}

/// `int64_t rexo_mem_alloc(uint64_t bytes)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_mem_alloc(bytes: u64) -> i64 {
    if bytes == 0 {
        return REXO_EINVAL.into();
    }
    with_app(|kernel, owner| match kernel.allocate_memory(bytes) {
        Ok(memory) => {
            let object = Object::Memory(handles::Memory {
                cap: memory,
                mapped: false,
            });
            insert(owner, object)
        }
        Err(error) => error_code(error).into(),
    })
}

/// `int rexo_mem_write(int64_t handle, uint64_t offset, const void *data, size_t len)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_mem_write(
    handle: i64,
    offset: u64,
    data: *const c_void,
    len: usize,
) -> c_int {
    copy_memory(handle, offset, c_buffer(data, len), true)
}

/// `int rexo_mem_read(int64_t handle, uint64_t offset, void *buf, size_t len)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_mem_read(handle: i64, offset: u64, buf: *mut c_void, len: usize) -> c_int {
    copy_memory(handle, offset, c_buffer(buf, len), false)
}

/// `rexo_mem_write`'s copy (`write`) or `rexo_mem_read`'s, with the C app's buffer as
/// `c_buffer` checked it: never a reference, for it may lie in the capability's frames.
fn copy_memory(handle: i64, offset: u64, buf: Result<*mut [u8], c_int>, write: bool) -> c_int {
    match buf {
        Ok(buf) => with_memory(handle, |kernel, memory| {
            let cap = memory.unmapped()?;
            // SAFETY: `c_buffer` checked `buf`: usable RAM, every page mapped (or empty).
            let copied = unsafe { (host().copy_memory)(kernel, cap, offset, buf, write) };
            Ok(copy_status(copied, || taken_since_checked(buf)))
        }),
        Err(code) => code,
    }
}

/// Bytes of `struct rexo_revocation`.
pub const REVOCATION_ENTRY: usize = 16;

/// `struct rexo_revocation` for the app's handle `handle` asked back by `deadline_ns`
/// (native byte order, as C reads it).
pub fn encode_revocation((handle, deadline_ns): (i64, u64)) -> [u8; REVOCATION_ENTRY] {
    let mut out = [0u8; REVOCATION_ENTRY];
    out[..8].copy_from_slice(&handle.to_ne_bytes());
    out[8..].copy_from_slice(&deadline_ns.to_ne_bytes());
    out
}

/// `int rexo_revocation_requests(struct rexo_revocation *list, size_t max)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_revocation_requests(list: *mut c_void, max: usize) -> c_int {
    let Some(bytes) = max.checked_mul(REVOCATION_ENTRY) else {
        return REXO_EINVAL;
    };
    let out = match c_bytes_mut(list, bytes) {
        Ok(out) => out,
        Err(code) => return code,
    };
    with_app(|kernel, owner| {
        // Core capabilities the kernel still keeps for the app become handles first, so
        // that a request for one names its handle.
        handles::hand_out_cores(owner, || kernel.core_caps());
        let requests: alloc::vec::Vec<_> = kernel
            .revocation_requests()
            .into_iter()
            .filter_map(|request| match request.state {
                EntryState::RevokeRequested { deadline_ns } => Some((request.id, deadline_ns)),
                EntryState::Live => None,
            })
            .collect();
        let asked = handles::asked_back(owner, &requests);
        for (slot, &request) in out.chunks_exact_mut(REVOCATION_ENTRY).zip(&asked) {
            slot.copy_from_slice(&encode_revocation(request));
        }
        c_int::try_from(asked.len()).unwrap_or(c_int::MAX)
    })
}

/// `int rexo_mem_return(int64_t handle)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_mem_return(handle: i64) -> c_int {
    with_app(|kernel, owner| {
        let taken = handles::take(handle, owner, |object| match object {
            Object::Memory(memory) => memory.unmapped().map(|_| ()),
            _ => Err(REXO_EBADF),
        });
        match taken {
            // As `cores::give_back`: a refusal (`Revoked`) gives back nothing to keep.
            Ok(Object::Memory(memory)) => status(
                kernel
                    .return_memory(memory.cap)
                    .map_err(|(error, _taken)| error),
            ),
            Ok(_) => REXO_EBADF,
            Err(code) => code,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The addresses the test host's RAM check says were taken back by force.
    static TAKEN: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());

    /// Registers the test host: all RAM usable but the addresses in [`TAKEN`]; each
    /// thread a core of its own.
    pub(crate) fn register_test_host() {
        register(Host {
            acting_for: |_| {},
            copy_memory: |_, _, _, _, _| unreachable!("the host tests copy no memory"),
            usable_ram: |start, end| {
                let taken = TAKEN.lock().expect("not poisoned");
                !taken.iter().any(|at| (start..end).contains(at))
            },
            core_index: || {
                static NEXT: core::sync::atomic::AtomicUsize =
                    core::sync::atomic::AtomicUsize::new(0);
                std::thread_local!(static CORE: usize =
                    NEXT.fetch_add(1, core::sync::atomic::Ordering::Relaxed));
                CORE.with(|core| *core)
            },
            kernel_section: |f| f(),
        });
    }

    /// Marks `value`'s memory as taken back by force (`taken`) or usable again.
    fn take_by_force(value: &u64, taken: bool) {
        let at = core::ptr::from_ref(value) as u64;
        let mut all = TAKEN.lock().expect("not poisoned");
        all.retain(|&other| other != at);
        if taken {
            all.push(at);
        }
    }

    #[test]
    fn rexo_random_u64_checks_its_out_parameter_before_asking_and_stores_only_a_number() {
        register_test_host();
        let never = || -> Result<u64, ApiError> { panic!("asked the kernel") };
        assert_eq!(store_random(core::ptr::null_mut(), never), REXO_EINVAL);
        let mut value = 7u64;
        take_by_force(&value, true);
        assert_eq!(store_random(&mut value, never), REXO_EFAULT);
        take_by_force(&value, false);
        assert_eq!(
            store_random(&mut value, || Err(ApiError::NoRandom)),
            REXO_ENODEV
        );
        assert_eq!(value, 7, "nothing written");
        assert_eq!(store_random(&mut value, || Ok(0x5eed)), REXO_OK);
        assert_eq!(value, 0x5eed);
    }

    #[test]
    fn an_out_parameter_taken_by_force_after_the_call_started_is_efault_and_not_written() {
        register_test_host();
        let mut value = 7u64;
        let out = OutParam::new(&mut value).expect("usable RAM");
        take_by_force(&value, true);
        assert_eq!(out.store(9), Err(REXO_EFAULT));
        assert_eq!(value, 7, "nothing written");
        take_by_force(&value, false);
        let out = OutParam::new(&mut value).expect("usable RAM");
        assert_eq!(out.store(9), Ok(()));
        assert_eq!(value, 9);
    }

    #[test]
    fn two_out_parameters_are_both_written_or_neither() {
        register_test_host();
        let (mut first, mut second) = (1u64, 2u64);
        let both = out_params(&mut first, &mut second).expect("usable RAM");
        take_by_force(&second, true);
        assert_eq!(store_both(both, (10, 20)), Err(REXO_EFAULT));
        take_by_force(&second, false);
        assert_eq!((first, second), (1, 2), "neither written");
        let both = out_params(&mut first, &mut second).expect("usable RAM");
        assert_eq!(store_both(both, (10, 20)), Ok(()));
        assert_eq!((first, second), (10, 20));
    }

    /// Bytes the global allocator handed out on each thread (the tests run in parallel).
    mod allocations {
        use std::alloc::{GlobalAlloc, Layout, System};
        use std::cell::Cell;

        std::thread_local! {
            static ALLOCATED: Cell<usize> = const { Cell::new(0) };
        }

        /// The system allocator, counting.
        struct Counting;

        // SAFETY: every call goes to the system allocator as it came; the count is a
        // thread-local `Cell` with a constant initializer, which itself never allocates.
        unsafe impl GlobalAlloc for Counting {
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                ALLOCATED.with(|bytes| bytes.set(bytes.get() + layout.size()));
                // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
                unsafe { System.alloc(layout) }
            }

            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                // SAFETY: `ptr` came from `alloc` above, with this layout.
                unsafe { System.dealloc(ptr, layout) }
            }
        }

        #[global_allocator]
        static COUNTING: Counting = Counting;

        /// The bytes allocated on this thread while `f` ran.
        pub fn during(f: impl FnOnce()) -> usize {
            let before = ALLOCATED.with(Cell::get);
            f();
            ALLOCATED.with(Cell::get) - before
        }
    }

    /// A `fmt::Write` that counts the bytes written to it, keeping none.
    struct Measure(usize);

    impl core::fmt::Write for Measure {
        fn write_str(&mut self, text: &str) -> core::fmt::Result {
            self.0 += text.len();
            Ok(())
        }
    }

    #[test]
    fn text_from_c_is_converted_without_allocating_in_proportion_to_its_length() {
        use core::fmt::Write;
        let invalid = alloc::vec![0xFF; 1 << 20];
        let (mut logged, mut written) = (Measure(0), Measure(0));
        let allocated = allocations::during(|| {
            write!(logged, "{}", log_text(&invalid)).expect("measured");
            lossy_parts(&invalid).for_each(|part| written.0 += part.len());
        });
        assert_eq!(allocated, 0, "nothing allocated for a 1 MiB buffer");
        assert_eq!(
            logged.0,
            3 * LOG_LINE,
            "only what a log line holds is converted"
        );
        assert_eq!(
            written.0,
            3 * invalid.len(),
            "every byte written, as U+FFFD"
        );
    }

    #[test]
    fn text_from_c_reads_as_from_utf8_lossy_has_it() {
        let mixed = b"ok \xE2\x82 caf\xC3\xA9 \xFF\xFE end\xF0\x9F";
        let mut written = alloc::string::String::new();
        lossy_parts(mixed).for_each(|part| written.push_str(part));
        assert_eq!(written, alloc::string::String::from_utf8_lossy(mixed));
        // A sequence cut at the end of what is converted shows as U+FFFD (past the room
        // of the kernel's log line, which cuts it off).
        let mut long = alloc::vec![b'a'; LOG_LINE - 1];
        long.extend_from_slice("\u{20AC}".as_bytes());
        let logged = alloc::format!("{}", log_text(&long));
        assert_eq!(
            logged,
            alloc::format!("{}\u{FFFD}", "a".repeat(LOG_LINE - 1))
        );
    }

    #[test]
    fn a_revocation_request_has_the_layout_of_struct_rexo_revocation() {
        let entry = encode_revocation((-3, 0x0102_0304_0506_0708));
        assert_eq!(entry.len(), 16);
        assert_eq!(entry[..8], (-3i64).to_ne_bytes());
        assert_eq!(entry[8..], 0x0102_0304_0506_0708u64.to_ne_bytes());
    }

    #[test]
    fn a_revocation_list_that_cannot_be_written_is_refused_before_the_kernel_is_asked() {
        // No kernel answers here: asking it would panic.
        assert_eq!(
            rexo_revocation_requests(core::ptr::null_mut(), 1),
            REXO_EINVAL
        );
        let list = core::ptr::dangling_mut();
        assert_eq!(rexo_revocation_requests(list, usize::MAX / 8), REXO_EINVAL);
    }

    #[test]
    fn an_app_out_of_capability_entries_is_enomem() {
        let limit = ApiError::Refused(CapError::TooManyEntries {
            max: rexo_api::MAX_APP_ENTRIES,
        });
        assert_eq!(error_code(limit), REXO_ENOMEM);
        assert_eq!(error_code(ApiError::Refused(CapError::Full)), REXO_ENOMEM);
    }
}
