//! The heap: allocations as handles into arenas, which are memory capabilities the heap
//! asks the kernel for (through [`Frames`]) and gives back when they are wholly free or
//! when the kernel asks for them.

use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use rexo_api::{ApiError, EntryId, EntryState, Kernel, MemoryCap};

use crate::space::{GRANULE, Space, rounded};

/// The heap grows by arenas of this many bytes (or the multiple of it a large
/// allocation needs; near the quota, the largest half of that the kernel grants).
pub const CHUNK: u64 = 2 << 20;
/// The largest allocation (1 GiB); a larger one is refused before the kernel is asked.
pub const MAX_ALLOCATION: u64 = 1 << 30;
/// The largest alignment: a frame (arenas start on one).
pub const MAX_ALIGN: u64 = 4096;
/// The kernel grants whole frames.
const FRAME: u64 = 4096;

/// Where the heap's arenas come from: the kernel's memory capabilities
/// ([`KernelFrames`]), or a stand-in in the host tests.
pub trait Frames {
    /// A granted region of memory.
    type Region;
    /// The name revocation requests give a region.
    type Key: PartialEq;
    /// Grants `bytes` (whole frames) of zeroed memory.
    fn grant(&self, bytes: u64) -> Result<Self::Region, ApiError>;
    /// Gives `region` back. A refusal hands the region back with the error when the
    /// caller still holds it, and the heap keeps it; without it the region is gone, no
    /// longer the caller's. [`KernelFrames`] never hands it back: the kernel's
    /// `return_memory` refuses an arena's capability only when it is no longer the app's
    /// (taken by force), so with the kernel a refused arena is gone.
    fn give_back(&self, region: Self::Region) -> Result<(), (ApiError, Option<Self::Region>)>;
    /// Runs `work` on the region's bytes, in place, and gives back what it returns.
    fn map<R>(
        &self,
        region: &mut Self::Region,
        work: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, ApiError>;
    /// The region's name in revocation requests.
    fn key(&self, region: &Self::Region) -> Self::Key;
    /// The regions the kernel asks back, each with the deadline (ns on the kernel's
    /// clock) after which it takes the region by force.
    fn requested(&self) -> Vec<(Self::Key, u64)>;
}

/// Arenas as memory capabilities from the kernel: `allocate_memory`, `return_memory`,
/// `map_memory`, `revocation_requests`.
#[derive(Clone, Copy)]
pub struct KernelFrames<'k>(pub &'k Kernel);

impl Frames for KernelFrames<'_> {
    type Region = MemoryCap;
    type Key = EntryId;

    fn grant(&self, bytes: u64) -> Result<MemoryCap, ApiError> {
        self.0.allocate_memory(bytes)
    }

    fn give_back(&self, region: MemoryCap) -> Result<(), (ApiError, Option<MemoryCap>)> {
        // Refused only when the capability is no longer the app's: nothing to keep.
        self.0
            .return_memory(region)
            .map_err(|(error, _gone)| (error, None))
    }

    fn map<R>(
        &self,
        region: &mut MemoryCap,
        work: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, ApiError> {
        self.0.map_memory(region, work)
    }

    fn key(&self, region: &MemoryCap) -> EntryId {
        region.cap().id()
    }

    fn requested(&self) -> Vec<(EntryId, u64)> {
        let deadline_of = |state| match state {
            EntryState::RevokeRequested { deadline_ns } => deadline_ns,
            EntryState::Live => u64::MAX,
        };
        self.0
            .revocation_requests()
            .into_iter()
            .map(|request| (request.id, deadline_of(request.state)))
            .collect()
    }
}

/// One allocation: valid in the heap that made it until it is freed. It names a slot of
/// the heap, which holds the arena, offset and length, so that the heap can move the
/// bytes (to answer a revocation, to grow it) without the handle changing. Copies of a
/// freed handle are refused ([`HeapError::Freed`]), as are handles of another heap
/// ([`HeapError::ForeignHandle`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Handle {
    heap: u64,
    slot: u32,
    generation: u32,
}

/// Why the heap refused a request. A refused request changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeapError {
    /// An allocation of 0 bytes.
    ZeroSize,
    /// An allocation larger than [`MAX_ALLOCATION`].
    TooLarge {
        /// Bytes asked for.
        bytes: u64,
        /// The most one allocation may have.
        max: u64,
    },
    /// An alignment that is not a power of two up to [`MAX_ALIGN`].
    BadAlign(u64),
    /// The handle is another heap's.
    ForeignHandle,
    /// The handle's allocation was freed (a double free, or a use after free).
    Freed,
    /// The allocation's arena was taken back by the kernel and there was no room to move
    /// it ([`Answer::lost`]); only freeing the handle is allowed.
    Lost,
    /// A read or write past the allocation's end.
    OutOfRange {
        /// Where the access started.
        offset: u64,
        /// Its length.
        len: u64,
        /// The allocation's length.
        size: u64,
    },
    /// The kernel refused (e.g. [`ApiError::QuotaExceeded`]: the app's quota is used up).
    Kernel(ApiError),
}

impl From<ApiError> for HeapError {
    fn from(error: ApiError) -> Self {
        HeapError::Kernel(error)
    }
}

impl fmt::Display for HeapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeapError::ZeroSize => f.write_str("an allocation of 0 bytes"),
            HeapError::TooLarge { bytes, max } => {
                write!(f, "{bytes} bytes is more than one allocation may have ({max})")
            }
            HeapError::BadAlign(align) => {
                write!(f, "alignment {align} is not a power of two up to {MAX_ALIGN}")
            }
            HeapError::ForeignHandle => f.write_str("the handle belongs to another heap"),
            HeapError::Freed => f.write_str("the handle's allocation was freed"),
            HeapError::Lost => f.write_str(
                "the allocation was lost: the kernel took its arena back and there was no room to move it",
            ),
            HeapError::OutOfRange { offset, len, size } => write!(
                f,
                "{len} bytes at {offset} reach past the allocation's {size} bytes"
            ),
            HeapError::Kernel(error) => write!(f, "{error}"),
        }
    }
}

/// What the heap did with an arena the kernel asked back ([`Heap::poll_revocations`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The arena's number in the heap.
    pub arena: usize,
    /// Its bytes.
    pub bytes: u64,
    /// Allocations moved to other arenas (their handles stay valid).
    pub moved: usize,
    /// Allocations that could not be moved (no room within the quota): their handles
    /// answer [`HeapError::Lost`] until freed.
    pub lost: Vec<Handle>,
    /// Whether the arena went back to the kernel, or why not. With [`KernelFrames`] a
    /// refused arena is gone (no longer the app's); only a [`Frames`] that hands the
    /// region back with its refusal leaves it in the heap, empty and asked back, to go at
    /// the next poll while the kernel still asks.
    pub returned: Result<(), HeapError>,
}

/// The heap's books ([`Heap::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Arenas held.
    pub arenas: usize,
    /// Their bytes.
    pub arena_bytes: u64,
    /// Live allocations.
    pub allocations: usize,
    /// Bytes in blocks (allocations rounded up to 16 bytes).
    pub used_bytes: u64,
    /// Bytes in no block.
    pub free_bytes: u64,
    /// The longest free range of any arena.
    pub largest_free: u64,
}

#[cfg(test)]
impl<F: Frames> Heap<F> {
    /// Moves the slot of the live `handle` to `generation`, as that many frees and
    /// allocations of it would, and returns the handle that names it now.
    pub(crate) fn age_slot(&mut self, handle: Handle, generation: u32) -> Handle {
        let slot = self.slot(handle).expect("a live handle");
        self.slots[slot].generation = generation;
        Handle {
            generation,
            ..handle
        }
    }
}

/// Where an allocation's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Place {
    arena: usize,
    offset: u64,
}

#[derive(Clone, Copy, Debug)]
enum State {
    Vacant,
    Live { place: Place, len: u64, align: u64 },
    Lost,
}

#[derive(Debug)]
struct Slot {
    generation: u32,
    state: State,
}

struct Arena<R> {
    region: R,
    space: Space,
    /// Asked back by the kernel: nothing new is placed in it.
    leaving: bool,
}

/// Numbers the heaps, so that a handle names the heap that made it: 64 bits, which no
/// run wraps (a 32-bit count wrapped after 2^32 heaps, and a stale handle could pass as
/// a new heap's).
static NEXT_HEAP: AtomicU64 = AtomicU64::new(1);

/// An app's heap over memory capabilities it holds. Allocations are [`Handle`]s; their
/// bytes are read and written in place in the arena's memory (`Kernel::map_memory`)
/// ([`with_bytes`](Heap::with_bytes), [`write`](Heap::write), [`read`](Heap::read)),
/// mapped for the length of the call: a slice never outlives the call, so no view is
/// alive when the heap moves or gives back an arena.
///
/// An arena that becomes wholly free is given back to the kernel unless it is the
/// heap's last one ([`trim`](Heap::trim) gives that one back too). Arenas the heap
/// still holds when it is dropped go back to the kernel when the app ends.
pub struct Heap<F: Frames> {
    frames: F,
    id: u64,
    chunk: u64,
    arenas: Vec<Option<Arena<F::Region>>>,
    slots: Vec<Slot>,
    vacant: Vec<u32>,
}

impl<'k> Heap<KernelFrames<'k>> {
    /// A heap over memory capabilities of the calling app, growing by [`CHUNK`].
    pub fn new(kernel: &'k Kernel) -> Self {
        Self::with_frames(KernelFrames(kernel), CHUNK)
    }
}

impl<F: Frames> Heap<F> {
    /// A heap whose arenas come from `frames`, growing by `chunk` bytes (rounded up to
    /// whole frames, at least one and at most [`MAX_ALLOCATION`]). It asks for nothing
    /// until the first allocation.
    pub fn with_frames(frames: F, chunk: u64) -> Self {
        Self {
            frames,
            id: NEXT_HEAP.fetch_add(1, Ordering::Relaxed),
            chunk: chunk.clamp(FRAME, MAX_ALLOCATION).next_multiple_of(FRAME),
            arenas: Vec::new(),
            slots: Vec::new(),
            vacant: Vec::new(),
        }
    }

    /// Allocates `len` bytes, aligned to 16.
    pub fn allocate(&mut self, len: u64) -> Result<Handle, HeapError> {
        self.allocate_aligned(len, GRANULE)
    }

    /// Allocates `len` bytes at an offset that is a multiple of `align` (a power of two
    /// up to [`MAX_ALIGN`]; arenas start on a frame, so the address is aligned too).
    /// Their contents are unspecified (a block freed earlier keeps its bytes).
    pub fn allocate_aligned(&mut self, len: u64, align: u64) -> Result<Handle, HeapError> {
        check(len, align)?;
        let place = self.place(len, align)?;
        let state = State::Live { place, len, align };
        let slot = match self.vacant.pop() {
            Some(slot) => {
                self.slots[slot as usize].state = state;
                slot
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    state,
                });
                (self.slots.len() - 1) as u32
            }
        };
        Ok(Handle {
            heap: self.id,
            slot,
            generation: self.slots[slot as usize].generation,
        })
    }

    /// Frees `handle`'s allocation (or forgets a lost one). An arena left wholly free is
    /// given back, unless it is the heap's last; the free stands even if the kernel
    /// refuses the arena. With [`KernelFrames`] a refused arena is gone (no longer the
    /// app's); only a [`Frames`] that hands the region back with its refusal leaves it in
    /// the heap (for [`trim`](Heap::trim)). A slot freed in its last generation
    /// (`u32::MAX`) is retired, never reused, so that no old handle is valid again.
    pub fn free(&mut self, handle: Handle) -> Result<(), HeapError> {
        let slot = self.slot(handle)?;
        let state = core::mem::replace(&mut self.slots[slot].state, State::Vacant);
        if let Some(next) = self.slots[slot].generation.checked_add(1) {
            self.slots[slot].generation = next;
            self.vacant.push(slot as u32);
        }
        if let State::Live { place, len, .. } = state {
            self.release(place, len);
        }
        Ok(())
    }

    /// The length of `handle`'s allocation.
    pub fn len(&self, handle: Handle) -> Result<u64, HeapError> {
        self.live(handle).map(|(_, len, _)| len)
    }

    /// Where `handle`'s bytes are: the arena's number, the offset in it, the length.
    pub fn placement(&self, handle: Handle) -> Result<(usize, u64, u64), HeapError> {
        self.live(handle)
            .map(|(place, len, _)| (place.arena, place.offset, len))
    }

    /// Runs `f` on `handle`'s bytes, in place in the arena's memory (mapped for the call).
    pub fn with_bytes<R>(
        &mut self,
        handle: Handle,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, HeapError> {
        let (place, len, _) = self.live(handle)?;
        let Heap { frames, arenas, .. } = self;
        let arena = arenas[place.arena].as_mut().ok_or(HeapError::Lost)?;
        let start = place.offset as usize;
        Ok(frames.map(&mut arena.region, |view| {
            f(&mut view[start..start + len as usize])
        })?)
    }

    /// Copies `data` into `handle`'s allocation at `offset`.
    pub fn write(&mut self, handle: Handle, offset: u64, data: &[u8]) -> Result<(), HeapError> {
        let at = self.span(handle, offset, data.len())?;
        self.with_bytes(handle, |bytes| bytes[at].copy_from_slice(data))
    }

    /// Copies from `handle`'s allocation at `offset` into `buffer`.
    pub fn read(
        &mut self,
        handle: Handle,
        offset: u64,
        buffer: &mut [u8],
    ) -> Result<(), HeapError> {
        let at = self.span(handle, offset, buffer.len())?;
        self.with_bytes(handle, |bytes| buffer.copy_from_slice(&bytes[at]))
    }

    /// Changes the length of `handle`'s allocation to `len`, keeping its first bytes and
    /// the handle: in place when the bytes after it are free, else moved. Refused, with
    /// the allocation unchanged, like an allocation of `len`.
    pub fn reallocate(&mut self, handle: Handle, len: u64) -> Result<(), HeapError> {
        let (place, old, align) = self.live(handle)?;
        check(len, align)?;
        let arena = self.arenas[place.arena].as_mut().ok_or(HeapError::Lost)?;
        let to = if !arena.leaving && arena.space.resize(place.offset, old, len) {
            place
        } else {
            let to = self.place(len, align)?;
            if let Err(error) = self.copy(place, to, old.min(len)) {
                self.release(to, len);
                return Err(error.into());
            }
            to
        };
        self.slots[handle.slot as usize].state = State::Live {
            place: to,
            len,
            align,
        };
        if to != place {
            self.release(place, old);
        }
        Ok(())
    }

    /// Answers the kernel's revocation requests for this heap's arenas: a wholly free
    /// arena is given back; the allocations of another are moved to the heap's other
    /// arenas (or a new one, within the quota) and it is given back; what cannot be moved
    /// is lost and named in the answer. Every arena asked for is answered, the earliest
    /// deadline first, each with whether it went back ([`Answer::returned`]). An arena
    /// costs the same few kernel calls whatever it holds: one map of it, one map of (and
    /// perhaps a grant for) each arena its allocations go to, and its give-back; an app
    /// that calls this early enough for those and the copying to end before the
    /// requests' deadlines never has memory taken by force.
    pub fn poll_revocations(&mut self) -> Vec<Answer> {
        let requests = self.frames.requested();
        let mut asked = Vec::new();
        for (index, arena) in self.arenas.iter_mut().enumerate() {
            let Some(arena) = arena else { continue };
            let key = self.frames.key(&arena.region);
            if let Some(&(_, deadline_ns)) = requests.iter().find(|(asked, _)| *asked == key) {
                arena.leaving = true;
                asked.push((deadline_ns, index));
            }
        }
        asked.sort_unstable();
        asked
            .into_iter()
            .map(|(_, index)| self.surrender(index))
            .collect()
    }

    /// Gives back every wholly free arena, the last one too; returns the bytes.
    pub fn trim(&mut self) -> Result<u64, HeapError> {
        let mut bytes = 0;
        for index in 0..self.arenas.len() {
            if let Some(arena) = &self.arenas[index]
                && arena.space.is_unused()
            {
                bytes += arena.space.size();
                self.give_back(index)?;
            }
        }
        Ok(bytes)
    }

    /// The heap's books.
    pub fn stats(&self) -> Stats {
        let mut stats = Stats::default();
        for arena in self.arenas.iter().flatten() {
            stats.arenas += 1;
            stats.arena_bytes += arena.space.size();
            stats.free_bytes += arena.space.free_bytes();
            stats.largest_free = stats.largest_free.max(arena.space.largest_free());
        }
        for slot in &self.slots {
            if let State::Live { len, .. } = slot.state {
                stats.allocations += 1;
                stats.used_bytes += rounded(len).unwrap_or(len);
            }
        }
        stats
    }

    /// The slot `handle` names, if it is this heap's and not freed.
    fn slot(&self, handle: Handle) -> Result<usize, HeapError> {
        if handle.heap != self.id {
            return Err(HeapError::ForeignHandle);
        }
        let slot = handle.slot as usize;
        match self.slots.get(slot) {
            // A vacant slot's generation names no handle but a retired slot's last.
            Some(s) if s.generation == handle.generation && !matches!(s.state, State::Vacant) => {
                Ok(slot)
            }
            _ => Err(HeapError::Freed),
        }
    }

    /// `handle`'s place, length and alignment.
    fn live(&self, handle: Handle) -> Result<(Place, u64, u64), HeapError> {
        match self.slots[self.slot(handle)?].state {
            State::Live { place, len, align } => Ok((place, len, align)),
            State::Lost => Err(HeapError::Lost),
            State::Vacant => Err(HeapError::Freed),
        }
    }

    /// The byte range `offset..offset + len` of `handle`'s allocation, checked.
    fn span(
        &self,
        handle: Handle,
        offset: u64,
        len: usize,
    ) -> Result<core::ops::Range<usize>, HeapError> {
        let size = self.len(handle)?;
        let len = len as u64;
        match offset.checked_add(len) {
            Some(end) if end <= size => Ok(offset as usize..end as usize),
            _ => Err(HeapError::OutOfRange { offset, len, size }),
        }
    }

    /// Finds room for `len` bytes at `align`: first fit over the arenas not asked back,
    /// else a new arena.
    fn place(&mut self, len: u64, align: u64) -> Result<Place, HeapError> {
        for (arena, slot) in self.arenas.iter_mut().enumerate() {
            if let Some(a) = slot
                && !a.leaving
                && let Some(offset) = a.space.place(len, align)
            {
                return Ok(Place { arena, offset });
            }
        }
        let arena = self.grow(len)?;
        let space = &mut self.arenas[arena].as_mut().ok_or(HeapError::Lost)?.space;
        let offset = space.place(len, align).ok_or(HeapError::Lost)?;
        Ok(Place { arena, offset })
    }

    /// A new arena for at least `len` bytes: a multiple of the chunk or, when the kernel
    /// cannot grant that much (quota or memory), the largest of its halves (in whole
    /// frames, down to the frames `len` needs) that it grants, so that the blocks after
    /// this one fill the same arena instead of each taking one of the app's few
    /// capability entries. Any other refusal (e.g. the entry limit) is final.
    fn grow(&mut self, len: u64) -> Result<usize, HeapError> {
        let need = len.next_multiple_of(FRAME);
        let mut size = need.next_multiple_of(self.chunk);
        let region = loop {
            match self.frames.grant(size) {
                Ok(region) => break region,
                Err(ApiError::QuotaExceeded | ApiError::OutOfMemory) if need < size => {
                    size = (size / 2).next_multiple_of(FRAME).max(need);
                }
                Err(error) => return Err(error.into()),
            }
        };
        let arena = Some(Arena {
            region,
            space: Space::new(size),
            leaving: false,
        });
        match self.arenas.iter().position(Option::is_none) {
            Some(index) => {
                self.arenas[index] = arena;
                Ok(index)
            }
            None => {
                self.arenas.push(arena);
                Ok(self.arenas.len() - 1)
            }
        }
    }

    /// Frees the block at `place`; gives its arena back if that left it wholly free and
    /// it is not the heap's last.
    fn release(&mut self, place: Place, len: u64) {
        let Some(arena) = self.arenas[place.arena].as_mut() else {
            return;
        };
        arena.space.release(place.offset, len);
        if arena.space.is_unused() && !arena.leaving && self.arenas.iter().flatten().count() > 1 {
            // The block is free either way: a refused arena is gone, or stays the heap's,
            // wholly free, for `trim` or a revocation request when `Frames` hands it back.
            let _ = self.give_back(place.arena);
        }
    }

    /// Gives arena `index` back to the kernel. If the kernel refuses, the arena is gone
    /// (with [`KernelFrames`], no longer the app's), or kept as it was when
    /// [`Frames::give_back`] hands the region back.
    fn give_back(&mut self, index: usize) -> Result<(), HeapError> {
        let Some(Arena {
            region,
            space,
            leaving,
        }) = self.arenas[index].take()
        else {
            return Ok(());
        };
        self.frames.give_back(region).map_err(|(error, kept)| {
            self.arenas[index] = kept.map(|region| Arena {
                region,
                space,
                leaving,
            });
            HeapError::Kernel(error)
        })
    }

    /// Copies `len` bytes from `from` to `to`, in place in the arenas' memory.
    fn copy(&mut self, from: Place, to: Place, len: u64) -> Result<(), ApiError> {
        let (a, b, len) = (from.offset as usize, to.offset as usize, len as usize);
        let Heap { frames, arenas, .. } = self;
        if from.arena == to.arena {
            let arena = arenas[from.arena].as_mut().ok_or(ApiError::OutOfMemory)?;
            return frames.map(&mut arena.region, |view| view.copy_within(a..a + len, b));
        }
        let [Some(source), Some(target)] = arenas
            .get_disjoint_mut([from.arena, to.arena])
            .map_err(|_| ApiError::OutOfMemory)?
        else {
            return Err(ApiError::OutOfMemory);
        };
        frames.map(&mut source.region, |source| {
            frames.map(&mut target.region, |target| {
                target[b..b + len].copy_from_slice(&source[a..a + len]);
            })
        })?
    }

    /// Copies each move's bytes out of arena `from`, mapping it once and each target arena
    /// once (not twice per allocation: each map is a kernel call); returns the target
    /// arenas whose bytes could not be copied (all of them if `from` could not be mapped);
    /// with no moves, no map at all.
    fn copy_out(&mut self, from: usize, moves: &[(u64, Place, u64)]) -> Vec<usize> {
        if moves.is_empty() {
            return Vec::new();
        }
        let mut targets: Vec<usize> = moves.iter().map(|&(_, to, _)| to.arena).collect();
        targets.sort_unstable();
        targets.dedup();
        // Out of the list while it is copied from, so that the targets can be borrowed.
        let Some(mut source) = self.arenas[from].take() else {
            return targets;
        };
        let Heap { frames, arenas, .. } = self;
        let copy_into = |source: &[u8], arena: usize, target: &mut Arena<F::Region>| {
            frames.map(&mut target.region, |target| {
                for &(offset, to, len) in moves.iter().filter(|(_, to, _)| to.arena == arena) {
                    let (a, b, len) = (offset as usize, to.offset as usize, len as usize);
                    target[b..b + len].copy_from_slice(&source[a..a + len]);
                }
            })
        };
        let failed = frames.map(&mut source.region, |source| {
            let mut failed = Vec::new();
            for &arena in &targets {
                let target = arenas[arena].as_mut();
                let copied = target.map(|target| copy_into(source, arena, target).is_ok());
                if copied != Some(true) {
                    failed.push(arena);
                }
            }
            failed
        });
        self.arenas[from] = Some(source);
        failed.unwrap_or(targets)
    }

    /// Moves every allocation out of arena `index` (asked back) where there is room and
    /// gives the arena back: the places are found first, then the bytes copied with one
    /// map of the arena and one of each arena they go to ([`copy_out`](Self::copy_out)).
    fn surrender(&mut self, index: usize) -> Answer {
        let bytes = self.arenas[index]
            .as_ref()
            .map_or(0, |arena| arena.space.size());
        let mut answer = Answer {
            arena: index,
            bytes,
            moved: 0,
            lost: Vec::new(),
            returned: Ok(()),
        };
        // Per allocation of the arena: its slot, place, length, alignment and where it goes
        // (`None`: no room).
        let mut leaving = Vec::new();
        for slot in 0..self.slots.len() {
            let State::Live { place, len, align } = self.slots[slot].state else {
                continue;
            };
            if place.arena == index {
                leaving.push((slot, place, len, align, self.place(len, align).ok()));
            }
        }
        let moves: Vec<_> = (leaving.iter())
            .filter_map(|&(_, from, len, _, to)| Some((from.offset, to?, len)))
            .collect();
        let failed = self.copy_out(index, &moves);
        for (slot, _, len, align, to) in leaving {
            let to = to.filter(|to| !failed.contains(&to.arena));
            self.slots[slot].state = match to {
                Some(to) => {
                    answer.moved += 1;
                    State::Live {
                        place: to,
                        len,
                        align,
                    }
                }
                None => {
                    answer.lost.push(Handle {
                        heap: self.id,
                        slot: slot as u32,
                        generation: self.slots[slot].generation,
                    });
                    State::Lost
                }
            };
        }
        for &(_, to, len) in moves.iter().filter(|(_, to, _)| failed.contains(&to.arena)) {
            self.release(to, len);
        }
        answer.returned = self.give_back(index);
        answer
    }
}

/// Refuses a length of 0 or past [`MAX_ALLOCATION`], and a bad alignment.
fn check(len: u64, align: u64) -> Result<(), HeapError> {
    if len == 0 {
        return Err(HeapError::ZeroSize);
    }
    if len > MAX_ALLOCATION {
        return Err(HeapError::TooLarge {
            bytes: len,
            max: MAX_ALLOCATION,
        });
    }
    if !align.is_power_of_two() || align > MAX_ALIGN {
        return Err(HeapError::BadAlign(align));
    }
    Ok(())
}
