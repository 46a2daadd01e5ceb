//! The C apps' handles: positive numbers, never reused, private to the app (owner) that
//! got them, each naming a memory capability or an open device.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ffi::c_int;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};

use rexo_api::{BlockDevice, CoreCap, Kernel, MemoryCap, TimerCap};
use rexo_captable::{EntryId, OwnerId};
use spin::{Mutex, MutexGuard};

use crate::devices::Interface;
use crate::{REXO_EBADF, REXO_EBUSY, host, with_app};

/// A memory capability of a C app, and whether C holds a view of it.
pub(crate) struct Memory {
    /// The capability.
    pub cap: MemoryCap,
    /// Whether `rexo_map_memory` handed out its address (until `rexo_unmap_memory`).
    pub mapped: bool,
}

impl Memory {
    /// The capability for a copying call or a return: `REXO_EBUSY` while mapped (the
    /// handle stands for the C app's view until `rexo_unmap_memory`).
    pub fn unmapped(&self) -> Result<&MemoryCap, c_int> {
        if self.mapped {
            Err(REXO_EBUSY)
        } else {
            Ok(&self.cap)
        }
    }
}

/// What a handle names.
pub(crate) enum Object {
    /// A memory capability.
    Memory(Memory),
    /// A disk.
    Block(Box<dyn BlockDevice>),
    /// A network interface.
    Net(Interface),
    /// A capability over one core.
    Core(CoreCap),
    /// A capability over one core's timer deadline.
    Timer(TimerCap),
}

/// One handle: `None` once taken (closed or returned) by another core meanwhile.
struct Handle {
    id: i64,
    owner: OwnerId,
    /// Whether it names a core (fixed at `insert`: read without the object's lock).
    core: bool,
    /// The capability-table entry it names, if a capability (fixed at `insert`, as `core`).
    entry: Option<EntryId>,
    object: Arc<Slot>,
}

impl Object {
    /// The capability-table entry of a capability (memory, core, timer); `None` for a
    /// device.
    fn entry(&self) -> Option<EntryId> {
        match self {
            Object::Memory(memory) => Some(memory.cap.cap().id()),
            Object::Core(cap) => Some(cap.cap().id()),
            Object::Timer(timer) => Some(timer.cap().id()),
            Object::Block(_) | Object::Net(_) => None,
        }
    }
}

/// [`Slot::holder_core`] when no call holds the lock.
const NO_CORE: usize = usize::MAX;

/// A handle's object, locked for each call on it. The lock records the core and the frame
/// of the call that holds it, so that a call the kernel ends mid-way (its frames abandoned
/// at the app's abort point) has its lock released ([`release_abandoned`]) instead of
/// holding it for good.
struct Slot {
    object: Mutex<Option<Object>>,
    /// The core of the call holding the lock ([`NO_CORE`]: none).
    holder_core: AtomicUsize,
    /// The address of a local in the frame of the call holding the lock.
    holder_frame: AtomicUsize,
    /// A call holding the lock was abandoned: the next call first gives up the requests
    /// a disk still had in flight for it (their completions belong to no one).
    abandoned: AtomicBool,
}

/// The lock of a [`Slot`], held by one call (which keeps it in its frame).
struct Held<'a> {
    slot: &'a Slot,
    object: MutexGuard<'a, Option<Object>>,
}

impl Slot {
    fn new(object: Object) -> Self {
        Self {
            object: Mutex::new(Some(object)),
            holder_core: AtomicUsize::new(NO_CORE),
            holder_frame: AtomicUsize::new(0),
            abandoned: AtomicBool::new(false),
        }
    }

    /// Locks the object for a call whose frame holds the local at address `frame` (the
    /// frame that keeps the returned lock), waiting for a call on another core.
    fn lock(&self, frame: usize) -> Held<'_> {
        let mut object = self.object.lock();
        self.holder_frame.store(frame, Ordering::Relaxed);
        self.holder_core
            .store((host().core_index)(), Ordering::Relaxed);
        if self.abandoned.swap(false, Ordering::Relaxed)
            && let Some(Object::Block(disk)) = object.as_mut()
        {
            disk.abandon_requests();
        }
        Held { slot: self, object }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // Before the guard (a field, dropped after this) unlocks.
        self.slot.holder_core.store(NO_CORE, Ordering::Relaxed);
    }
}

/// The address of `local`, a variable of the caller's frame: a frame's mark, which each
/// call on a handle records as it locks the handle and which [`release_abandoned`] is given
/// (frames deeper in the stack lie below it).
pub fn frame_mark<T>(local: &T) -> usize {
    core::ptr::from_ref(local) as usize
}

/// Releases the handle locks held by calls on core `core` whose frames lie below `mark`
/// (on the stack, deeper than the kernel's frame that holds the local at `mark`): the
/// kernel calls this at an app's abort point after abandoning the frames below it, so that
/// a call it ended mid-way (memory taken by force during the call, a device call's app
/// code aborted) leaves no handle locked. A disk's requests still in flight for such a
/// call are given up at the handle's next call. Each such call also held its own share of
/// the handle's object (the `Arc` its frame locked it through, never dropped): that share
/// is given up here, so that the object (a device handle's boxes among it) is freed with
/// the handle rather than left on the heap for good. Called with interrupts on: the
/// table's holder on another core may be waiting for this one (a TLB shootdown from its
/// timer).
pub fn release_abandoned(core: usize, mark: usize) {
    for handle in HANDLES.lock().iter() {
        let slot = &handle.object;
        if slot.holder_core.load(Ordering::Relaxed) == core
            && slot.holder_frame.load(Ordering::Relaxed) < mark
        {
            slot.holder_core.store(NO_CORE, Ordering::Relaxed);
            slot.abandoned.store(true, Ordering::Relaxed);
            // SAFETY: a call locks a slot only through a share of its own (`take_as`,
            // `with_object`: the `Arc` whose address is the frame's mark), kept in the frame
            // that holds the lock; that frame was abandoned, so the share is never dropped.
            // The table's share (`handle.object`, alive while the table is locked) keeps
            // the count above zero, so this frees nothing under anyone.
            unsafe { Arc::decrement_strong_count(Arc::as_ptr(slot)) };
            // SAFETY: this core's call that locked the slot had its frames abandoned at an
            // abort point (the caller's promise): the guard in them is never used or
            // dropped, so nothing else releases the lock or touches the object through it.
            unsafe { slot.object.force_unlock() };
        }
    }
}

/// Every C app's handles.
static HANDLES: Mutex<Vec<Handle>> = Mutex::new(Vec::new());
/// Held across a whole [`hand_out_cores`], so that a call on another core at the same time
/// lists every core handle. Not the table's lock, which every C call takes: the kernel's
/// hand-out may wait for every core (a TLB shootdown after memory taken by force).
static HANDING_OUT_CORES: Mutex<()> = Mutex::new(());
/// The next handle number (handles are never reused, so a closed one stays invalid).
static NEXT_HANDLE: AtomicI64 = AtomicI64::new(1);

/// A call's answer: a non-negative value, or a negative code (the same `c_int` space).
pub(crate) type Outcome = Result<c_int, c_int>;

/// Runs `f` as a kernel section ([`Host::kernel_section`](crate::Host)): what takes the
/// table's lock ([`HANDLES`]) or [`HANDING_OUT_CORES`] and allocates or calls the kernel
/// under it runs in one, so that no abort of the app there (its quota refusing the table's
/// growth, a kernel call short of stack) leaves the lock held, every C call on every core
/// then spinning for good.
fn kernel_section<R>(f: impl FnOnce() -> R) -> R {
    let (mut f, mut result) = (Some(f), None);
    (host().kernel_section)(&mut || {
        if let Some(f) = f.take() {
            result = Some(f());
        }
    });
    result.expect("Host::kernel_section calls its function once")
}

/// Gives `object` to `owner` as a new handle.
pub(crate) fn insert(owner: OwnerId, object: Object) -> i64 {
    let id = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed);
    let core = matches!(object, Object::Core(_));
    let entry = object.entry();
    let object = Arc::new(Slot::new(object));
    let handle = Handle {
        id,
        owner,
        core,
        entry,
        object,
    };
    kernel_section(|| HANDLES.lock().push(handle));
    id
}

/// The handles of `owner` whose capabilities the kernel asks back, in `requests` (entry,
/// deadline), each with its deadline, in the order they were given (read without any
/// object's lock, as [`hand_out_cores`]).
pub(crate) fn asked_back(owner: OwnerId, requests: &[(EntryId, u64)]) -> Vec<(i64, u64)> {
    kernel_section(|| asked_back_locked(owner, requests))
}

/// [`asked_back`], in its kernel section.
fn asked_back_locked(owner: OwnerId, requests: &[(EntryId, u64)]) -> Vec<(i64, u64)> {
    let handles = HANDLES.lock();
    let mut asked: Vec<(i64, u64)> = handles
        .iter()
        .filter(|h| h.owner == owner)
        .filter_map(|h| {
            let entry = h.entry?;
            let request = requests.iter().find(|(asked, _)| *asked == entry);
            request.map(|&(_, deadline_ns)| (h.id, deadline_ns))
        })
        .collect();
    asked.sort_unstable();
    asked
}

/// Drops every handle of `owner` (its run ended, however it ended: the kernel calls this
/// at the end of every run and takes back what they name), once they are out of the table
/// and its lock released: a device's end may wait for calls on other cores, which may be
/// waiting for the table's lock.
pub fn forget_handles(owner: OwnerId) {
    let mut handles = HANDLES.lock();
    let forgotten: Vec<Handle> = handles.extract_if(.., |h| h.owner == owner).collect();
    drop(handles);
    drop(forgotten);
}

/// Gives `owner` the core capabilities `take` hands over (the kernel hands each out once:
/// from then on this table holds it) as new handles, and lists all the core handles of
/// `owner`, in the order they were given (read without any object's lock: a call on
/// another core may hold one as long as it runs). The three happen as one
/// ([`HANDING_OUT_CORES`]): a call on another core meanwhile, to which the kernel hands
/// out nothing, lists them all once this one has inserted them.
pub(crate) fn hand_out_cores(owner: OwnerId, take: impl FnOnce() -> Vec<CoreCap>) -> Vec<i64> {
    kernel_section(|| hand_out_cores_locked(owner, take))
}

/// [`hand_out_cores`], in its kernel section.
fn hand_out_cores_locked(owner: OwnerId, take: impl FnOnce() -> Vec<CoreCap>) -> Vec<i64> {
    let _handing_out = HANDING_OUT_CORES.lock();
    for cap in take() {
        insert(owner, Object::Core(cap));
    }
    let handles = HANDLES.lock();
    let mut ids: Vec<i64> = handles
        .iter()
        .filter(|h| h.owner == owner && h.core)
        .map(|h| h.id)
        .collect();
    ids.sort_unstable();
    ids
}

/// Takes handle `id` of `owner` out of the table if `may` allows it.
pub(crate) fn take(
    id: i64,
    owner: OwnerId,
    may: impl FnOnce(&Object) -> Result<(), c_int>,
) -> Result<Object, c_int> {
    take_as(id, owner, |object| match may(&object) {
        Ok(()) => Ok(object),
        Err(code) => Err((object, code)),
    })
}

/// Takes handle `id` of `owner` out of the table if `pick` takes what it names; an object
/// `pick` gives back with a code (of another kind: `REXO_EBADF`) stays under its handle.
/// A call on another core that uses the handle is waited for with the table unlocked
/// (a call that never ends then holds up this one alone, not every C app).
pub(crate) fn take_as<T>(
    id: i64,
    owner: OwnerId,
    pick: impl FnOnce(Object) -> Result<T, (Object, c_int)>,
) -> Result<T, c_int> {
    let object = object_of(id, owner).ok_or(REXO_EBADF)?;
    // Nothing waits for an object's lock while holding the table's, so taking the
    // table's lock below, with this one held, cannot deadlock.
    let mut held = object.lock(frame_mark(&object));
    match pick(held.object.take().ok_or(REXO_EBADF)?) {
        Ok(taken) => {
            HANDLES.lock().retain(|h| h.id != id);
            Ok(taken)
        }
        Err((object, code)) => {
            *held.object = Some(object);
            Err(code)
        }
    }
}

/// The object behind handle `id` of `owner`, shared (the table's lock is held only for
/// the lookup).
fn object_of(id: i64, owner: OwnerId) -> Option<Arc<Slot>> {
    HANDLES
        .lock()
        .iter()
        .find(|h| h.id == id && h.owner == owner)
        .map(|h| Arc::clone(&h.object))
}

/// Runs `f` on handle `id` of the C app running on this core (the table is not locked
/// meanwhile, only the handle).
pub(crate) fn with_object(id: i64, f: impl FnOnce(&Kernel, &mut Object) -> Outcome) -> c_int {
    with_app(|kernel, owner| {
        let Some(object) = object_of(id, owner) else {
            return REXO_EBADF;
        };
        let mut held = object.lock(frame_mark(&object));
        match held.object.as_mut() {
            Some(object) => f(kernel, object).unwrap_or_else(|code| code),
            None => REXO_EBADF,
        }
    })
}

/// Runs `f` on the memory capability `id` of the app running on this core.
pub(crate) fn with_memory(id: i64, f: impl FnOnce(&Kernel, &mut Memory) -> Outcome) -> c_int {
    with_object(id, |kernel, object| match object {
        Object::Memory(memory) => f(kernel, memory),
        _ => Err(REXO_EBADF),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rexo_api::{BlockInfo, Completion, DeviceError, Tag};

    /// A disk that answers nothing (only its handle matters here), counts the times its
    /// requests in flight were given up, and records whether it was dropped with the
    /// handle table locked (not free within a second: other tests lock it only briefly).
    #[derive(Default)]
    struct Idle(Arc<AtomicUsize>, Arc<AtomicBool>);

    impl Drop for Idle {
        fn drop(&mut self) {
            let start = std::time::Instant::now();
            let free = || HANDLES.try_lock().is_some();
            while !free() && start.elapsed() < std::time::Duration::from_secs(1) {
                std::thread::yield_now();
            }
            self.1.store(!free(), Ordering::Relaxed);
        }
    }

    impl BlockDevice for Idle {
        fn info(&self) -> BlockInfo {
            BlockInfo {
                sectors: 0,
                sector_size: 512,
                max_sectors: 1,
                queues: 1,
                depth: 1,
                model: "idle".into(),
            }
        }
        fn submit_read(&mut self, _: usize, _: u64, _: u32) -> Result<Tag, DeviceError> {
            Err(DeviceError::QueueFull)
        }
        fn submit_write_checked(
            &mut self,
            _: usize,
            _: u64,
            _: u32,
            _: &mut dyn FnMut(&mut [u8]) -> bool,
        ) -> Result<Tag, DeviceError> {
            Err(DeviceError::QueueFull)
        }
        fn submit_flush(&mut self, _: usize) -> Result<Tag, DeviceError> {
            Err(DeviceError::QueueFull)
        }
        fn poll(&mut self, _: usize, _: Completion<'_>) -> Result<usize, DeviceError> {
            Ok(0)
        }
        fn wake_on_completion(&mut self, _: usize, _: Option<usize>) -> Result<(), DeviceError> {
            Err(DeviceError::Unsupported("wake-ups"))
        }
        fn abandon_requests(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        /// It takes no request: nothing to write out.
        fn shut_down(&mut self, _: rexo_api::Leaving) -> Result<(), DeviceError> {
            Ok(())
        }
    }

    #[test]
    fn a_forgotten_owners_devices_are_dropped_with_the_table_unlocked() {
        let owner = OwnerId(83);
        let locked = Arc::new(AtomicBool::new(false));
        insert(
            owner,
            Object::Block(Box::new(Idle(Arc::default(), Arc::clone(&locked)))),
        );
        // A lease's end may wait for calls on other cores, one of which may be waiting
        // for the table's lock.
        forget_handles(owner);
        assert!(
            !locked.load(Ordering::Relaxed),
            "the disk was dropped with the table locked"
        );
    }

    #[test]
    fn a_handle_in_use_is_waited_for_without_holding_up_the_table() {
        crate::tests::register_test_host();
        let owner = OwnerId(77);
        let id = insert(owner, Object::Block(Box::<Idle>::default()));
        // A call on another core uses the handle.
        let object = object_of(id, owner).expect("inserted");
        let in_use = object.lock(frame_mark(&object));
        let closing = std::thread::spawn(move || take(id, owner, |_| Ok(())).is_ok());
        // The close waits for the handle alone: the table and other handles work on (on
        // a thread of their own, so that a table held by the close fails the test rather
        // than hanging it).
        std::thread::sleep(std::time::Duration::from_millis(50));
        let (answer, answered) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let listed = hand_out_cores(owner, Vec::new).is_empty();
            let other = insert(owner, Object::Block(Box::<Idle>::default()));
            let _ = answer.send((listed, take(other, owner, |_| Ok(())).is_ok()));
        });
        let (listed, other_taken) = answered
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("the table answers while a handle is in use");
        assert!(listed);
        assert!(other_taken, "other handles work on");
        assert!(!closing.is_finished(), "the close waits for the call");
        drop(in_use);
        assert!(closing.join().unwrap(), "then takes the handle");
        assert_eq!(take(id, owner, |_| Ok(())).err(), Some(REXO_EBADF));
        forget_handles(owner);
    }

    /// Locks handle `id` as a call in a frame below the caller's would, and abandons that
    /// call (its frames never run again, so neither its lock nor its share of the object
    /// is ever dropped): what the kernel's abort point leaves.
    #[inline(never)]
    fn abandon_a_call(id: i64, owner: OwnerId) {
        let object = object_of(id, owner).expect("inserted");
        core::mem::forget(object.lock(frame_mark(&object)));
        core::mem::forget(object);
    }

    #[test]
    fn an_abandoned_calls_share_of_a_handle_goes_with_the_handle() {
        crate::tests::register_test_host();
        let owner = OwnerId(83);
        let id = insert(owner, Object::Block(Box::<Idle>::default()));
        let object = Arc::downgrade(&object_of(id, owner).expect("inserted"));
        let abort_point = 0u8;
        abandon_a_call(id, owner);
        release_abandoned((host().core_index)(), frame_mark(&abort_point));
        forget_handles(owner);
        assert!(
            object.upgrade().is_none(),
            "the handle's object (the disk's handle) is freed with the app's handles"
        );
    }

    #[test]
    fn a_call_abandoned_at_an_abort_point_leaves_its_handle_unlocked() {
        crate::tests::register_test_host();
        let owner = OwnerId(78);
        let given_up = Arc::new(AtomicUsize::new(0));
        let id = insert(
            owner,
            Object::Block(Box::new(Idle(Arc::clone(&given_up), Arc::default()))),
        );
        // The abort point's frame is this test's; the abandoned call ran below it.
        let abort_point = 0u8;
        abandon_a_call(id, owner);
        let core = (host().core_index)();
        release_abandoned(core, frame_mark(&abort_point));
        // The next call on the handle runs (it would wait for good without the release),
        // and first gives up the disk's requests that belonged to the abandoned call.
        let answer = with_unregistered_app(move || {
            let object = object_of(id, owner).expect("still there");
            let held = object.lock(frame_mark(&object));
            held.object.is_some()
        });
        assert_eq!(answer, Some(true), "the handle answers");
        assert_eq!(
            given_up.load(Ordering::Relaxed),
            1,
            "requests given up once"
        );
        assert!(take(id, owner, |_| Ok(())).is_ok(), "and can be closed");
        assert_eq!(given_up.load(Ordering::Relaxed), 1);
        forget_handles(owner);
    }

    #[test]
    fn only_calls_below_the_abort_point_on_its_own_core_are_released() {
        crate::tests::register_test_host();
        let owner = OwnerId(79);
        let id = insert(owner, Object::Block(Box::<Idle>::default()));
        let core = (host().core_index)();
        // A call still running in a frame above the abort point keeps its lock: the abort
        // abandoned only the frames below the point.
        let object = object_of(id, owner).expect("inserted");
        let outer = object.lock(frame_mark(&object));
        release_at_a_deeper_abort_point(core);
        assert!(object.object.is_locked(), "a live call keeps its lock");
        release_abandoned(NO_THREADS_CORE, usize::MAX);
        assert!(
            object.object.is_locked(),
            "another core's abort point releases nothing of this core's"
        );
        drop(outer);
        assert!(!object.object.is_locked());
        forget_handles(owner);
    }

    /// Capabilities over cores `0..count`, minted by a table of the test's own.
    fn core_caps(count: u64) -> Vec<CoreCap> {
        use rexo_captable::{CapTable, Resource, ResourceKind, Rights};
        struct TestKernel;
        let mut table: CapTable<TestKernel, 8, 2, 1> = CapTable::new();
        let mint = |core| {
            let resource = Resource::new(ResourceKind::Core, core, 1).expect("a core");
            let cap = table.mint(&TestKernel, OwnerId(1), resource, Rights::ALL);
            CoreCap::new(cap.expect("minted"))
        };
        (0..count).map(mint).collect()
    }

    #[test]
    fn a_core_list_asked_while_another_core_hands_out_the_cores_names_them_all() {
        crate::tests::register_test_host();
        let owner = OwnerId(80);
        let caps = core_caps(2);
        let (taken, was_taken) = std::sync::mpsc::channel();
        let (listed, was_listed) = std::sync::mpsc::channel();
        // One core is handed the capabilities and inserts them; it waits (up to 200 ms)
        // for the other core's list before it does.
        let first = std::thread::spawn(move || {
            hand_out_cores(owner, || {
                let _ = taken.send(());
                let _ = was_listed.recv_timeout(std::time::Duration::from_millis(200));
                caps
            })
        });
        was_taken.recv().expect("the kernel handed them out");
        // The other core calls meanwhile: the kernel hands it nothing.
        let second = hand_out_cores(owner, Vec::new);
        let _ = listed.send(());
        let first = first.join().expect("the first call answers");
        assert_eq!(first.len(), 2);
        assert_eq!(second, first, "the other core lists every core handle");
        forget_handles(owner);
    }

    #[test]
    fn the_handles_asked_back_are_the_owners_own_with_their_deadlines() {
        crate::tests::register_test_host();
        let (owner, other) = (OwnerId(81), OwnerId(82));
        let mut caps = core_caps(3).into_iter();
        let mut next = || caps.next().expect("minted");
        let (first, second, foreign) = (next(), next(), next());
        let entries = [first.cap().id(), second.cap().id(), foreign.cap().id()];
        let disk = insert(owner, Object::Block(Box::<Idle>::default()));
        let kept = insert(owner, Object::Core(first));
        let asked = insert(owner, Object::Core(second));
        insert(other, Object::Core(foreign));
        // The kernel asks back the second and the other owner's; the first stays.
        let requests = [(entries[2], 7_000), (entries[1], 5_000)];
        assert_eq!(asked_back(owner, &requests), [(asked, 5_000)]);
        assert!(asked_back(owner, &[]).is_empty());
        // Once given back, it is no longer listed.
        assert!(take(asked, owner, |_| Ok(())).is_ok());
        assert!(asked_back(owner, &requests).is_empty());
        assert!(take(kept, owner, |_| Ok(())).is_ok());
        assert!(take(disk, owner, |_| Ok(())).is_ok());
        forget_handles(owner);
        forget_handles(other);
    }

    /// A core index no test thread gets ([`crate::tests::register_test_host`] numbers
    /// them from 0), so an abort point there releases no live test's lock.
    const NO_THREADS_CORE: usize = usize::MAX - 1;

    /// An abort point in a frame below the caller's releases what lies below it.
    #[inline(never)]
    fn release_at_a_deeper_abort_point(core: usize) {
        let abort_point = 0u8;
        release_abandoned(core, frame_mark(&abort_point));
    }

    /// Runs `f` on a thread of its own, `None` if it does not finish within 5 s (a lock
    /// held for good fails the test instead of hanging it).
    fn with_unregistered_app<R: Send + 'static>(
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Option<R> {
        let (answer, answered) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = answer.send(f());
        });
        answered
            .recv_timeout(std::time::Duration::from_secs(5))
            .ok()
    }
}
