//! The C apps' handles: positive numbers, never reused, private to the app (owner) that
//! got them, each naming a memory capability or an open device.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ffi::c_int;
use core::sync::atomic::{AtomicI64, Ordering};

use rexo_api::{BlockDevice, CoreCap, Kernel, MemoryCap, NetDevice, TimerCap};
use rexo_captable::OwnerId;
use spin::Mutex;

use crate::{REXO_EBADF, REXO_EBUSY, with_app};

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
    /// A network interface, with its largest frame.
    Net {
        /// The interface.
        nic: Box<dyn NetDevice>,
        /// Its largest frame in bytes.
        max_frame: usize,
    },
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
    object: Arc<Mutex<Option<Object>>>,
}

/// Every C app's handles.
static HANDLES: Mutex<Vec<Handle>> = Mutex::new(Vec::new());
/// The next handle number (handles are never reused, so a closed one stays invalid).
static NEXT_HANDLE: AtomicI64 = AtomicI64::new(1);

/// A call's answer: a non-negative value, or a negative code (the same `c_int` space).
pub(crate) type Outcome = Result<c_int, c_int>;

/// Gives `object` to `owner` as a new handle.
pub(crate) fn insert(owner: OwnerId, object: Object) -> i64 {
    let id = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed);
    let core = matches!(object, Object::Core(_));
    let object = Arc::new(Mutex::new(Some(object)));
    HANDLES.lock().push(Handle {
        id,
        owner,
        core,
        object,
    });
    id
}

/// Drops every handle of `owner` (its run ended; the kernel takes back what they name).
pub(crate) fn forget(owner: OwnerId) {
    HANDLES.lock().retain(|handle| handle.owner != owner);
}

/// The core handles of `owner`, in the order they were given (read without any object's
/// lock: a call on another core may hold one as long as it runs).
pub(crate) fn core_handles(owner: OwnerId) -> Vec<i64> {
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
    let mut slot = object.lock();
    match pick(slot.take().ok_or(REXO_EBADF)?) {
        Ok(taken) => {
            HANDLES.lock().retain(|h| h.id != id);
            Ok(taken)
        }
        Err((object, code)) => {
            *slot = Some(object);
            Err(code)
        }
    }
}

/// The object behind handle `id` of `owner`, shared (the table's lock is held only for
/// the lookup).
fn object_of(id: i64, owner: OwnerId) -> Option<Arc<Mutex<Option<Object>>>> {
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
        let mut slot = object.lock();
        match slot.as_mut() {
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

    /// A disk that answers nothing: only its handle matters here.
    struct Idle;

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
        fn abandon_requests(&mut self) {}
    }

    #[test]
    fn a_handle_in_use_is_waited_for_without_holding_up_the_table() {
        let owner = OwnerId(77);
        let id = insert(owner, Object::Block(Box::new(Idle)));
        // A call on another core uses the handle (or an ended task left its lock taken).
        let object = object_of(id, owner).expect("inserted");
        let in_use = object.lock();
        let closing = std::thread::spawn(move || take(id, owner, |_| Ok(())).is_ok());
        // The close waits for the handle alone: the table and other handles work on (on
        // a thread of their own, so that a table held by the close fails the test rather
        // than hanging it).
        std::thread::sleep(std::time::Duration::from_millis(50));
        let (answer, answered) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let listed = core_handles(owner).is_empty();
            let other = insert(owner, Object::Block(Box::new(Idle)));
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
        forget(owner);
    }
}
