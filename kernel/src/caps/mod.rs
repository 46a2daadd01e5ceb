//! The kernel's secure bindings: one capability table (`rexo-captable`) for the machine,
//! and memory capabilities over frames from the frame allocator.
//!
//! An app holds a `Cap` (unforgeable, not `Clone`); every use goes through the table,
//! which checks the holder, the rights and the generation, so a returned or revoked
//! capability answers an error and never touches the memory. A grant's frames go back to
//! the allocator, frame by frame, once no live capability names them (returned, revoked,
//! or held by an app that ended): a split-off part another app still holds keeps its own
//! frames only.
//!
//! Memory is accounted per owner (`rexo-memledger`): the bytes of every grant count
//! against the owner that was granted it (delegation does not move the charge) until its
//! frames go back. An owner may have a quota (an app run of the boot manifest, or one that
//! `run_app` started, lent by its caller); a grant that would take it past the quota (or,
//! for a lender, into what it lent) is refused before any frame is taken. When a lent run
//! ends, its lender takes over the charges of its grants still alive (delegated away), so
//! a run cannot carry memory past its caller's quota by handing it to another app.
//!
//! Zero copy: a holder may map a memory capability ([`map`]) and touch its frames
//! directly. When such a capability is taken by force, its identity-map entries are
//! cleared on every core and its frames stay out of the free pool until the holder ends
//! ([`release_owner`] maps them back and frees them); a touch in between faults, and the
//! page-fault handler ends the holder's task ([`revoked_region`]).
//!
//! Revocation deadlines are enforced at the next use of the table and, failing that, by
//! the timer ([`on_timer_interrupt`]): the earliest pending deadline is the kernel's
//! deadline, which every arming of a core's local APIC timer covers.

#![allow(unsafe_code)] // copying between an app's buffer and the frames it holds

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use rexo_captable::{
    Cap, CapError, CapTable, EntryId, EntryInfo, OwnerId, Resource, ResourceKind, RevokeReason,
    Rights,
};
use rexo_memledger::{Ledger, LedgerError, Quota, Reclaim};
use rexo_memmap::FrameRange;
use spin::Mutex;

/// The proof of kernel authority the table asks for; only this module can make one.
pub struct Authority(());

const AUTHORITY: Authority = Authority(());

/// Entries in the machine's table (on the heap, `rexo-captable`): room for every app's
/// owner at its limit (`rexo_api::MAX_APP_ENTRIES`) while the kernel's own mints (cores,
/// timers, bindings) hold their most, `rexo_api::KERNEL_CAP_ENTRIES`, kept as its reserve
/// ([`init`]; `rexo_api::cap_table_entries`).
const ENTRIES: usize = rexo_api::cap_table_entries(OWNERS);
/// Owners: the kernel (0), one per app of the image (its index + 1) and one per run of the
/// largest boot manifest (`rexo_cmdline::MAX_MANIFEST_APPS`): [`rexo_cmdline::owners_needed`].
pub(crate) const OWNERS: usize = rexo_cmdline::owners_needed(crate::apps::APP_COUNT);
/// Repossession records kept per owner.
const LOG: usize = 8;

type Table = CapTable<Authority, ENTRIES, OWNERS, LOG>;

struct State {
    table: Table,
    /// Charges, quotas, grants, mappings and revoked regions.
    ledger: Ledger<FrameRange>,
    /// Pages were unmapped: flush every core's TLB once the lock is dropped.
    flush: bool,
    /// The earliest pending revocation deadline (`u64::MAX`: none), so that enforcing
    /// deadlines costs one comparison when there is nothing to do.
    earliest_deadline: u64,
    /// Armed timers: entry, core, deadline.
    timers: Vec<(EntryId, usize, u64)>,
    /// The kernel's root over the vectors of device interrupts (32..256), whose shares
    /// bind interrupt sources to apps ([`bind_interrupt`]).
    vectors: Result<EntryId, CapError>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// `f` of the state under the lock, without enforcing deadlines (`None` before [`init`]);
/// a kernel section, as [`with_state`] is.
fn locked<T>(f: impl FnOnce(&mut State) -> T) -> Option<T> {
    crate::arch::abort::kernel_section(|| STATE.lock().as_mut().map(f))
}

/// Creates the table (once, at boot, after the heap, where its storage goes directly: the
/// boot core's first frame, under every app it runs, holds none of it).
pub fn init() {
    let mut table = Table::with_limits(rexo_api::MAX_APP_ENTRIES, rexo_api::KERNEL_CAP_ENTRIES);
    let vectors = Resource::new(ResourceKind::InterruptVector, 32, 224).and_then(|all| {
        table
            .mint(&AUTHORITY, OwnerId(0), all, Rights::READ)
            .map(|c| c.id())
    });
    *STATE.lock() = Some(State {
        vectors,
        table,
        ledger: Ledger::new(OWNERS),
        flush: false,
        earliest_deadline: u64::MAX,
        timers: Vec::new(),
    });
}

/// Starts `owner`'s run: marks it running (delegation reaches only running owners, until
/// [`release_owner`], which also ends its quota) and sets its memory quota, fixed or lent
/// (`rexo_memledger::Quota`), under one lock, so that no core sees it running without its
/// quota. Returns the quota set.
pub fn start_owner(owner: OwnerId, quota: Quota) -> Result<Option<u64>, CapError> {
    with_state(|state| {
        state.table.start_owner(&AUTHORITY, owner)?;
        let started = state.ledger.start_run(owner, quota);
        started.map_err(|_| CapError::BadOwner(owner))
    })
}

/// Runs `f` on the table, after enforcing every revocation deadline that has passed (the
/// abort protocol: what was not returned in time is taken before anyone uses it again).
/// Pages unmapped meanwhile are flushed from every core's TLB before it returns, with
/// the lock dropped (a core that faults on them takes it in the page-fault handler). A
/// kernel section: a panic in it (a kernel bug, or the heap exhausted) is a crash report,
/// not an abort to the calling app's abort point that would leave the table locked. (No
/// app memory it touches can fault: an app's buffer in revoked memory is refused first.)
fn with_state<T>(f: impl FnOnce(&mut State) -> Result<T, CapError>) -> Result<T, CapError> {
    crate::arch::abort::kernel_section(|| {
        let mut guard = STATE.lock();
        let state = guard.as_mut().ok_or(CapError::Full)?;
        enforce_deadlines(state);
        let result = f(state);
        let flush = core::mem::take(&mut state.flush);
        drop(guard);
        if flush {
            crate::arch::paging::flush_every_core();
        }
        queue_sweep();
        result
    })
}

/// Revokes, with reason "deadline passed", every entry whose revocation deadline is over,
/// frees what it held and sets the kernel's timer deadline to the next one.
fn enforce_deadlines(state: &mut State) {
    let now = crate::time::now_ns();
    if now < state.earliest_deadline {
        return;
    }
    while let Some(taken) = state.table.revoke_next_expired(&AUTHORITY, now) {
        log::warn!(
            "caps: revocation deadline passed: took {} ({} entries) by force",
            taken.resource,
            taken.entries
        );
    }
    state.earliest_deadline = state.table.earliest_deadline().unwrap_or(u64::MAX);
    crate::time::set_kernel_deadline(state.earliest_deadline);
    reclaim_frames(state, true, None);
}

/// How long the timer waits before it tries again to enforce a deadline that came while a
/// lock it needs was held (50 us).
const RETRY_NS: u64 = 50_000;

/// Called on every timer interrupt (with interrupts off): once the kernel's deadline has
/// come, takes by force what was not returned by the revocation deadlines that passed,
/// unmaps it and flushes every core's TLB, so that a holder that never calls the kernel
/// again loses it all the same. The interrupted code may hold a lock this needs (the
/// table's, the heap's, the frame allocator's, the page tables', the console's, the
/// shootdown's); then it tries again [`RETRY_NS`] later rather than wait for itself.
pub fn on_timer_interrupt() {
    let (now, due) = (crate::time::now_ns(), crate::time::kernel_deadline());
    if now < due {
        // Another deadline of this core's came first (`time` armed it again).
        return;
    }
    let retry = || crate::time::set_kernel_deadline(now + RETRY_NS);
    let free = crate::mem::heap::is_free()
        && crate::mem::frames::is_free()
        && crate::arch::paging::is_free()
        && crate::console::is_free();
    let Some(mut guard) = STATE.try_lock().filter(|_| free) else {
        return retry();
    };
    let Some(state) = guard.as_mut() else {
        return;
    };
    enforce_deadlines(state);
    if crate::time::kernel_deadline() != state.earliest_deadline {
        // A retry: back to the earliest pending revocation deadline.
        crate::time::set_kernel_deadline(state.earliest_deadline);
    }
    if !state.flush {
        return;
    }
    // The shootdown lock is taken before the table's is dropped, without waiting: its
    // holder may be waiting for this core, whose interrupts are off.
    let Some(shootdown) = crate::arch::paging::Shootdown::try_begin() else {
        return retry();
    };
    state.flush = false;
    drop(guard);
    shootdown.flush();
}

/// Asks the holder of `entry` to give it back by `deadline_ns` (monotonic time; for a root,
/// every piece split from it, each holder for its own: `CapTable::request_revocation`).
/// The holder sees the request ([`revocation_requests`]); if it has not returned the
/// capability by then, the kernel takes it (with everything derived from it) and records the
/// repossession, and the holder's next use of it ends the holder's task.
pub fn request_revocation(entry: EntryId, deadline_ns: u64) -> Result<(), CapError> {
    with_state(|state| {
        state
            .table
            .request_revocation(&AUTHORITY, entry, deadline_ns)?;
        state.earliest_deadline = state.earliest_deadline.min(deadline_ns);
        // The timer enforces it even if nobody calls the kernel again.
        crate::time::set_kernel_deadline(state.earliest_deadline);
        Ok(())
    })
}

/// The revocation requests addressed to `owner`.
pub fn revocation_requests(owner: OwnerId) -> Vec<EntryInfo> {
    with_state(|state| Ok(state.table.pending_revocations(owner).collect())).unwrap_or_default()
}

/// Whether `owner` lost `entry` because it missed a revocation deadline (so touching it
/// again breaks the abort protocol), as the table records it until `owner` is released;
/// presumed for every gone entry once `owner` gave up a record for room in the table's
/// `ENTRIES` records (`Forfeit::RecordsLost`): the protocol fails closed.
pub fn was_repossessed(owner: OwnerId, entry: EntryId) -> bool {
    locked(|state| state.table.forfeited(owner, entry).presumed()) == Some(true)
}

/// Why a memory request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryError {
    /// The capability was refused.
    Cap(CapError),
    /// No frames left.
    OutOfMemory,
    /// The grant would take the owner past its memory quota.
    QuotaExceeded,
}

/// Gives `owner` `bytes` of fresh, zeroed memory (4 KiB frames), as a capability with
/// read, write, derive and delegate rights, charged to `owner` in whole frames; 0 bytes
/// is refused as `CapError::BadRange`, after the table's limits (an owner at its entry
/// limit is refused for that whatever it asks).
pub fn allocate_memory(owner: OwnerId, bytes: u64) -> Result<Cap, MemoryError> {
    // Reserved before the frames are taken (outside the lock), so that two cores of one
    // app cannot both pass the quota. 0 bytes is a bad range, not a lack of memory. An app
    // at its entry limit is refused first, before frames are taken and zeroed for nothing.
    let reserve = |state: &mut State| state.ledger.reserve_frames(owner, bytes);
    let whole = with_state(|state| state.table.can_grant(owner).map(|()| reserve(state)))
        .map_err(MemoryError::Cap)?
        .map_err(|error| match error {
            LedgerError::QuotaExceeded => MemoryError::QuotaExceeded,
            LedgerError::BadOwner(owner) => MemoryError::Cap(CapError::BadOwner(owner)),
            LedgerError::ZeroSize => MemoryError::Cap(CapError::BadRange),
            LedgerError::TooLarge => MemoryError::OutOfMemory,
        })?;
    // A kernel section, as every use of the table is: `grant` locks it.
    let granted = crate::arch::abort::kernel_section(|| grant(owner, bytes, whole));
    if granted.is_err() {
        locked(|state| state.ledger.uncharge(owner, whole));
    }
    granted
}

/// Free memory that app grants, the BareMetal app area and the heap's growth for code in
/// an abort point (`mem::heap`) leave to the kernel.
pub(crate) const KERNEL_RESERVE: u64 = 4 << 20;

/// Takes frames for `bytes`, zeroes them and mints the capability; `reserved` bytes are
/// already charged to `owner`, and the charge becomes the frames' length. Called in a
/// kernel section (it locks the table).
fn grant(owner: OwnerId, bytes: u64, reserved: u64) -> Result<Cap, MemoryError> {
    // Apps never take the kernel's reserve: its heap grows into it, and an allocation
    // that failed in the kernel, maybe with a lock held, would end in a panic.
    let frames = crate::mem::frames::allocate_leaving(bytes, 4096, KERNEL_RESERVE)
        .map_err(|_| MemoryError::OutOfMemory)?;
    let resource = match Resource::new(ResourceKind::Memory, frames.start(), frames.len()) {
        Ok(resource) => resource,
        Err(error) => {
            crate::mem::frames::free(frames);
            return Err(MemoryError::Cap(error));
        }
    };
    // SAFETY: the frames were just handed out by the allocator to the kernel alone and are
    // identity-mapped RAM; zeroing them leaks nothing of their previous user.
    unsafe { core::ptr::write_bytes(frames.start() as *mut u8, 0, frames.len() as usize) };
    let rights = Rights::READ
        .union(Rights::WRITE)
        .union(Rights::DELEGATE)
        .union(Rights::REVOKE);
    let mut guard = STATE.lock();
    let Some(state) = guard.as_mut() else {
        crate::mem::frames::free(frames);
        return Err(MemoryError::Cap(CapError::Full));
    };
    match state.table.grant(&AUTHORITY, owner, resource, rights) {
        Ok(cap) => {
            state.ledger.record_grant(owner, frames, reserved);
            Ok(cap)
        }
        Err(error) => {
            crate::mem::frames::free(frames);
            Err(MemoryError::Cap(error))
        }
    }
}

/// Where the memory `cap` names from `offset` on is copied to or from the app's buffer
/// `buf`, checked for `owner` and `right`. `Revoked` if `buf` lies in memory taken by
/// force from its holder (a view's bytes past its deadline): the copy would fault with the
/// table's lock held; the holder's next touch of them ends its task.
fn checked_range(
    state: &State,
    (owner, cap, right): (OwnerId, &Cap, Rights),
    offset: u64,
    buf: *mut [u8],
) -> Result<*mut u8, CapError> {
    let info = state
        .table
        .check_kind(owner, cap, right, ResourceKind::Memory)?;
    let end = offset.checked_add(buf.len() as u64);
    if end.is_none_or(|end| end > info.resource.len()) {
        return Err(CapError::OutOfRange);
    }
    if state
        .ledger
        .touches_revoked(buf as *mut u8 as u64, buf.len() as u64)
    {
        return Err(CapError::Revoked);
    }
    Ok((info.resource.start() + offset) as *mut u8)
}

/// Whether the ledger holds a revoked region: [`touches_revoked`] needs no lock while
/// none is (it runs for every buffer a C app hands the kernel).
static ANY_REVOKED: AtomicBool = AtomicBool::new(false);

/// Whether any of the `len` bytes from `start` lies in memory taken by force from its
/// holder.
pub fn touches_revoked(start: u64, len: u64) -> bool {
    ANY_REVOKED.load(Ordering::Acquire)
        && locked(|state| state.ledger.touches_revoked(start, len)) == Some(true)
}

/// Copies between the app's buffer `buf` and the memory `cap` names, at `offset`: into
/// it (`write`, checked for the write right) or out of it (the read right). `Revoked` for a
/// `buf` in revoked memory ([`checked_range`]).
///
/// # Safety
///
/// `buf` is valid for reads (`write`) or writes during the call, and no reference to its
/// bytes is live across it. It may overlap the capability's memory (a C app may pass a
/// pointer it kept from a view of it): the copy is a memmove through raw pointers.
pub unsafe fn copy(
    (owner, cap, offset): (OwnerId, &Cap, u64),
    buf: *mut [u8],
    write: bool,
) -> Result<(), CapError> {
    with_state(|state| {
        let right = if write { Rights::WRITE } else { Rights::READ };
        let at = checked_range(state, (owner, cap, right), offset, buf)?;
        let start = buf.cast::<u8>();
        let (from, to) = if write { (start, at) } else { (at, start) };
        // SAFETY: the `buf.len()` bytes from `at` lie in frames the table says `owner` may
        // read or write, reached only through this module under the lock (never through a
        // reference); `buf` is valid as the caller promises and may overlap them, hence
        // `copy`, a memmove.
        unsafe { core::ptr::copy(from, to, buf.len()) };
        Ok(())
    })
}

/// Copies a Rust app's `data` into the memory `cap` names, at `offset` ([`copy`]).
pub fn write_memory(owner: OwnerId, cap: &Cap, offset: u64, data: &[u8]) -> Result<(), CapError> {
    // SAFETY: `data` is readable for the call, and only read. A Rust app's slice never lies
    // in a capability's frames: the only references to them, `map`'s views, are refused
    // while another capability names the memory and borrow their own for the view's life.
    unsafe { copy((owner, cap, offset), (&raw const *data).cast_mut(), true) }
}

/// Copies from the memory `cap` names, at `offset`, into a Rust app's `buf` ([`copy`]).
pub fn read_memory(owner: OwnerId, cap: &Cap, offset: u64, buf: &mut [u8]) -> Result<(), CapError> {
    // SAFETY: `buf` is writable for the call; it lies in no capability's frames, as in
    // `write_memory`.
    unsafe { copy((owner, cap, offset), buf, false) }
}

/// Brings the ledger up to date with the table (`forced`: entries went by force;
/// `ended`: that owner ended) and does what it says: unmaps ranges revoked from a holder
/// that may still touch them (every core's TLB is flushed when the lock is dropped), maps
/// back those of an owner that ended, then frees frames no capability names. After a
/// forced revocation it also asks for the sweep that disarms the interrupt sources of the
/// bindings taken ([`SWEEP`]).
fn reclaim_frames(state: &mut State, forced: bool, ended: Option<OwnerId>) {
    if forced {
        SWEEP.request();
    }
    let table = &state.table;
    state.timers.retain(|&(id, core, deadline)| {
        let live = table.is_live(id);
        if !live {
            crate::time::cancel_app_timer(core, deadline);
        }
        live
    });
    let live: Vec<_> = state
        .table
        .entries()
        .filter(|e| e.resource.kind() == ResourceKind::Memory)
        .map(|e| (e.id, e.resource.start()..e.resource.end()))
        .collect();
    let Reclaim { unmap, remap, free } = state.ledger.reclaim(&live, forced, ended);
    ANY_REVOKED.store(!state.ledger.revoked().is_empty(), Ordering::Release);
    for (range, present) in unmap
        .into_iter()
        .map(|r| (r, false))
        .chain(remap.into_iter().map(|r| (r, true)))
    {
        state.flush |= !present;
        // Safe either way: frames that stay mapped stay out of the free pool until the
        // holder ends, so it can only ever see its own data.
        if let Err(error) = crate::arch::paging::set_present(range.clone(), present) {
            log::error!("caps: could not change the mapping of {range:#x?}: {error}");
        }
    }
    for frames in free {
        crate::mem::frames::free(frames);
    }
}

/// The sweep of [`crate::devices::disarm_revoked`], which calls drivers that the timer's
/// enforcement may interrupt: asked for there with a flag only (the work queue is not
/// safe to enter from a handler), queued by [`queue_sweep`]; asked for again by a sweep
/// that had to pass a device by.
pub(crate) static SWEEP: rexo_workqueue::Pending = rexo_workqueue::Pending::new();

/// Queues the sweep if it was asked for (never from an interrupt handler: after a use of
/// the table, and in the work loop when it runs dry); a full queue leaves it asked for.
pub fn queue_sweep() {
    SWEEP.submit_if_requested(|| crate::sched::submit(crate::devices::disarm_revoked));
}

/// Maps `cap` for `owner`'s direct access, for as long as the borrow of `cap` lasts: it
/// needs the read and write rights, and no other live capability may name its memory (a
/// parent or derived ones: their holders could reach it too). The mapping is recorded,
/// so that a forced revocation unmaps the frames and keeps them until `owner` ends.
pub fn map(owner: OwnerId, cap: &mut rexo_api::MemoryCap) -> Result<&mut [u8], CapError> {
    let range = with_state(|state| {
        let rights = Rights::READ | Rights::WRITE;
        let info = state
            .table
            .check_kind(owner, cap.cap(), rights, ResourceKind::Memory)?;
        let r = info.resource;
        if state
            .table
            .entries()
            .any(|e| e.id != info.id && e.resource.overlaps(&r))
        {
            return Err(CapError::Overlaps);
        }
        state
            .ledger
            .record_mapping(info.id, r.start()..r.end(), owner);
        Ok(r.start()..r.end())
    })?;
    // SAFETY: the range is identity-mapped RAM granted as raw frames (no Rust object
    // lives there) that only this capability names, so nothing else reaches it: other
    // holders have no capability over it, and this holder's copying calls need `cap`,
    // which the returned borrow holds. If the entry is taken by force while the borrow
    // lasts, the frames are unmapped and kept from everyone until `owner` has ended, so
    // the slice never shows another owner's data; a touch faults and ends the task.
    Ok(unsafe {
        core::slice::from_raw_parts_mut(range.start as *mut u8, (range.end - range.start) as usize)
    })
}

/// The revoked region (as a resource) holding `addr`, and its holder: memory taken by
/// force from a holder that mapped it and has not ended.
pub fn revoked_region(addr: u64) -> Option<(Resource, OwnerId)> {
    let region = locked(|state| state.ledger.revoked_at(addr).cloned()).flatten()?;
    let (start, len) = (region.range.start, region.range.end - region.range.start);
    let resource = Resource::new(ResourceKind::Memory, start, len).ok()?;
    Some((resource, region.holder))
}

/// The holder gives `cap`, a capability of `kind`, back (with everything derived from it);
/// a refusal gives it back with the reason.
pub fn return_cap(owner: OwnerId, cap: Cap, kind: ResourceKind) -> Result<(), (CapError, Cap)> {
    let returned = with_state(|state| {
        state.table.check_kind(owner, &cap, Rights::NONE, kind)?;
        state.table.return_cap(owner, &cap)?;
        reclaim_frames(state, false, None);
        Ok(())
    });
    returned.map_err(|error| (error, cap))
}

/// Revokes `entry` by force (with its descendants; a root with every piece split from it,
/// `CapTable::revoke`) and frees what it held.
pub fn revoke(entry: EntryId) -> Result<(), CapError> {
    with_state(|state| {
        state
            .table
            .revoke(&AUTHORITY, entry, RevokeReason::Kernel)?;
        reclaim_frames(state, true, None);
        Ok(())
    })
}

/// Takes back everything `owner` holds (the app ended), ends its quota (a loan goes back
/// to its lender, which takes over the charges and entries `owner` delegated away) and
/// frees its frames.
pub fn release_owner(owner: OwnerId) -> Result<usize, CapError> {
    with_state(|state| {
        let lender = state.ledger.end_run(owner);
        let taken = state.table.release_owner(&AUTHORITY, owner, lender)?;
        reclaim_frames(state, false, Some(owner));
        Ok(taken)
    })
}

/// Derives, splits, merges or takes back (`op`) with the memory capability `cap` of
/// `owner`; derive and split give the new capability.
pub fn memory_op(
    owner: OwnerId,
    cap: &Cap,
    op: rexo_api::MemoryOp<'_>,
) -> Result<Option<Cap>, CapError> {
    use rexo_api::MemoryOp;
    with_state(|state| {
        // `MemoryCap::new` takes any capability: a core's, a timer's or an interrupt's is
        // not to be split, merged or derived here.
        state
            .table
            .check_kind(owner, cap, Rights::NONE, ResourceKind::Memory)?;
        // The holder uses the capability, so no view of it is alive: forget the mapping
        // (split and merge change its range).
        state.ledger.forget_mapping(cap.id());
        match op {
            MemoryOp::Derive { start, len, rights } => {
                state.table.derive(owner, cap, start, len, rights).map(Some)
            }
            MemoryOp::Split { offset } => state.table.split(owner, cap, offset).map(Some),
            MemoryOp::Merge { other } => {
                state.table.merge(owner, cap, other.cap())?;
                state.ledger.forget_mapping(other.cap().id());
                Ok(None)
            }
            MemoryOp::RevokeDerived { entry } => {
                state.table.revoke_derived(owner, cap, entry)?;
                reclaim_frames(state, true, None);
                Ok(None)
            }
        }
    })
}

/// Hands `cap` from `owner` to `to` (refused with `NotRunning` unless `to` runs: the table
/// checks it after the handle, under the lock [`release_owner`] takes), which finds it in
/// its inbox ([`take_delegated`]: the table keeps it, so an entry revoked meanwhile leaves
/// nothing there); a refusal gives `cap` back.
pub fn delegate(owner: OwnerId, cap: Cap, to: OwnerId) -> Result<(), (CapError, Cap)> {
    let mut held = Some(cap);
    let result = with_state(|state| {
        let cap = held.take().ok_or(CapError::Full)?;
        if let Err(error) = state.table.delegate(owner, &cap, to) {
            held = Some(cap);
            return Err(error);
        }
        state.ledger.forget_mapping(cap.id());
        state.table.park(&AUTHORITY, cap);
        Ok(())
    });
    // A refusal always gives the capability back to `held`.
    match (result, held) {
        (Err(error), Some(cap)) => Err((error, cap)),
        _ => Ok(()),
    }
}

/// Mints, for `owner`, a capability over each core of `cores` (machine indices) and puts
/// it in `owner`'s inbox.
pub fn grant_cores(owner: OwnerId, cores: core::ops::Range<usize>) -> Result<(), CapError> {
    with_state(|state| {
        for core in cores {
            let resource = Resource::new(ResourceKind::Core, core as u64, 1)?;
            let rights = Rights::EXECUTE.union(Rights::REVOKE);
            let cap = state.table.mint(&AUTHORITY, owner, resource, rights)?;
            state.table.park(&AUTHORITY, cap);
        }
        Ok(())
    })
}

/// Mints for `owner` a share of the kernel's root over the vectors: the binding of an
/// interrupt source of a device it leases, routed to `vector` (its `interrupt_caps`
/// hands it out). Shares of one vector may coexist: the source is what is exclusive.
/// Past `rexo_api::MAX_INTERRUPT_BINDINGS` at once, `CapError::TooManyShares`: the
/// kernel's reserve counts no more, and the apps' room is theirs.
pub fn bind_interrupt(owner: OwnerId, vector: u8) -> Result<EntryId, CapError> {
    with_state(|state| {
        let (kind, root) = (ResourceKind::InterruptVector, state.vectors?);
        let one = Resource::new(kind, u64::from(vector), 1)?;
        let most = rexo_api::MAX_INTERRUPT_BINDINGS;
        let cap = (state.table).mint_child(&AUTHORITY, root, owner, one, Rights::READ, most)?;
        let id = cap.id();
        state.table.park(&AUTHORITY, cap);
        Ok(id)
    })
}

/// Whether `owner` holds a live capability over core `core`.
pub fn holds_core(owner: OwnerId, core: usize) -> bool {
    with_state(|state| Ok(core_held(state, owner, core))).unwrap_or(false)
}

/// Whether `owner` holds a live capability over core `core`, in `state`.
fn core_held(state: &State, owner: OwnerId, core: usize) -> bool {
    (state.table.entries()).any(|entry| is_core_cap(&entry, owner, core))
}

/// Whether `entry` is `owner`'s capability over core `core`.
fn is_core_cap(entry: &EntryInfo, owner: OwnerId, core: usize) -> bool {
    entry.owner == owner && Ok(entry.resource) == Resource::new(ResourceKind::Core, core as u64, 1)
}

/// Whether `entry` is live: one slot read (the registry asks at every arm of a wake-up).
pub fn is_live(entry: EntryId) -> bool {
    with_state(|state| Ok(state.table.is_live(entry))).unwrap_or(false)
}

/// Arms this core's timer for `owner` at `deadline_ns`, if `holder` (the owner or the
/// app that lent it its cores) holds the core: checked under the lock that mints the
/// timer, so a core given back meanwhile (by another of the app's cores) is not armed.
pub fn arm_timer(
    owner: OwnerId,
    holder: OwnerId,
    deadline_ns: u64,
) -> Result<Cap, rexo_api::ApiError> {
    use rexo_api::ApiError;
    let core = crate::arch::percpu::core_index();
    let armed = with_state(|state| {
        if !core_held(state, holder, core) {
            return Ok(Err(ApiError::CoreNotHeld(core)));
        }
        if deadline_ns <= crate::time::now_ns() {
            return Ok(Err(ApiError::DeadlinePassed));
        }
        let resource = Resource::new(ResourceKind::Timer, core as u64, 1)?;
        let rights = Rights::READ.union(Rights::REVOKE);
        // The table holds one timer capability per core: a second overlaps.
        let cap = state.table.mint(&AUTHORITY, owner, resource, rights)?;
        crate::time::set_app_timer(deadline_ns);
        state.timers.push((cap.id(), core, deadline_ns));
        Ok(Ok(cap))
    });
    armed.unwrap_or_else(|error| match error {
        CapError::Overlaps => Err(ApiError::TimerBusy),
        error => Err(ApiError::Refused(error)),
    })
}

/// Whether `timer`, held by `owner`, has fired: its core took a timer interrupt at or
/// after its deadline.
pub fn timer_fired(owner: OwnerId, timer: &Cap) -> Result<bool, CapError> {
    with_state(|state| {
        let kind = ResourceKind::Timer;
        (state.table).check_kind(owner, timer, Rights::READ, kind)?;
        let &(_, core, deadline) = state
            .timers
            .iter()
            .find(|t| t.0 == timer.id())
            .ok_or(CapError::WrongKind)?;
        Ok(crate::time::last_timer_interrupt_ns(core) >= deadline)
    })
}

/// The capabilities of `kind` delegated to `owner` (or minted for it) that it has not
/// picked up yet.
pub fn take_delegated(owner: OwnerId, kind: ResourceKind) -> Vec<Cap> {
    let pick_up = |state: &mut State| state.table.pick_up(&AUTHORITY, owner, kind);
    with_state(|state| Ok(core::iter::from_fn(|| pick_up(state)).collect())).unwrap_or_default()
}

/// Every live capability (for the monitor's `caps`).
pub fn entries() -> Vec<EntryInfo> {
    locked(|state| state.table.entries().collect()).unwrap_or_default()
}

pub(crate) mod tests;
