//! [`Resource`]: a validated range of one kind of physical resource.

use core::fmt;

/// The page sizes of x86-64 (shared with the frame allocator).
pub use rexo_memmap::PageSize;

use crate::CapError;

/// The kinds of resource the kernel hands out. Each is a range of units: bytes for the
/// memory-like kinds, indices for the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// Physical RAM, in bytes, on 4 KiB frames (2 MiB and 1 GiB frames are aligned ranges).
    Memory,
    /// Cores, by core index.
    Core,
    /// A device's register window (MMIO), in bytes of physical address space, 4 KiB pages.
    DeviceWindow,
    /// Memory a device may reach by DMA, in bytes, 4 KiB pages.
    DmaBuffer,
    /// Interrupt vectors, 0..256.
    InterruptVector,
    /// Timers, by timer index.
    Timer,
    /// NIC queues (and the packet filters attached to them), by queue index.
    NicQueue,
    /// Disk extents, in blocks.
    DiskExtent,
}

impl ResourceKind {
    /// Every kind, in declaration order.
    pub const ALL: [ResourceKind; 8] = [
        ResourceKind::Memory,
        ResourceKind::Core,
        ResourceKind::DeviceWindow,
        ResourceKind::DmaBuffer,
        ResourceKind::InterruptVector,
        ResourceKind::Timer,
        ResourceKind::NicQueue,
        ResourceKind::DiskExtent,
    ];

    /// The granule every range of this kind starts on and is a multiple of: 4096 for the
    /// memory-like kinds (frames, pages), 1 for the others.
    pub const fn granule(self) -> u64 {
        match self {
            ResourceKind::Memory | ResourceKind::DeviceWindow | ResourceKind::DmaBuffer => 4096,
            _ => 1,
        }
    }

    /// The exclusive upper bound of ranges of this kind (256 for interrupt vectors; the
    /// others are bounded only by `u64`).
    pub const fn limit(self) -> u64 {
        match self {
            ResourceKind::InterruptVector => 256,
            _ => u64::MAX,
        }
    }

    /// Whether ranges are in bytes of physical address space (and shown in hex).
    pub const fn is_memory_like(self) -> bool {
        self.granule() > 1
    }

    /// A short lower-case name, as the monitor prints it.
    pub const fn name(self) -> &'static str {
        match self {
            ResourceKind::Memory => "memory",
            ResourceKind::Core => "core",
            ResourceKind::DeviceWindow => "device-window",
            ResourceKind::DmaBuffer => "dma-buffer",
            ResourceKind::InterruptVector => "vector",
            ResourceKind::Timer => "timer",
            ResourceKind::NicQueue => "nic-queue",
            ResourceKind::DiskExtent => "disk-extent",
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A non-empty range `start..start + len` of one kind, aligned to the kind's granule and
/// within its limit. The fields are private so that every `Resource` is a valid one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Resource {
    kind: ResourceKind,
    start: u64,
    len: u64,
}

impl Resource {
    /// The range, or [`CapError::BadRange`] if it is empty, wraps around `u64`, is not
    /// aligned to [`ResourceKind::granule`] or ends past [`ResourceKind::limit`].
    pub const fn new(kind: ResourceKind, start: u64, len: u64) -> Result<Resource, CapError> {
        let granule = kind.granule();
        if len == 0 || !start.is_multiple_of(granule) || !len.is_multiple_of(granule) {
            return Err(CapError::BadRange);
        }
        match start.checked_add(len) {
            Some(end) if end <= kind.limit() => Ok(Resource { kind, start, len }),
            _ => Err(CapError::BadRange),
        }
    }

    /// The kind.
    pub const fn kind(&self) -> ResourceKind {
        self.kind
    }

    /// The first unit.
    pub const fn start(&self) -> u64 {
        self.start
    }

    /// The number of units (bytes for memory-like kinds).
    pub const fn len(&self) -> u64 {
        self.len
    }

    /// Always `false`: a resource is never empty. Present for the `len`/`is_empty` pair.
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// One past the last unit (never overflows: checked by [`Resource::new`]).
    pub const fn end(&self) -> u64 {
        self.start + self.len
    }

    /// Whether `other` is of the same kind and lies entirely inside `self`.
    pub const fn contains(&self, other: &Resource) -> bool {
        self.kind as u8 == other.kind as u8
            && other.start >= self.start
            && other.end() <= self.end()
    }

    /// Whether `other` is of the same kind and shares at least one unit with `self`.
    pub const fn overlaps(&self, other: &Resource) -> bool {
        self.kind as u8 == other.kind as u8 && other.start < self.end() && self.start < other.end()
    }

    /// For memory-like kinds, the largest page size that both the start and the length
    /// are multiples of (so the range can be mapped with pages of that size); `None` for
    /// the other kinds.
    pub const fn page_size(&self) -> Option<PageSize> {
        if !self.kind.is_memory_like() {
            return None;
        }
        let both = self.start | self.len;
        if both.is_multiple_of(PageSize::Size1G.bytes()) {
            Some(PageSize::Size1G)
        } else if both.is_multiple_of(PageSize::Size2M.bytes()) {
            Some(PageSize::Size2M)
        } else {
            Some(PageSize::Size4K)
        }
    }
}

impl fmt::Display for Resource {
    /// `memory 0x100000..0x200000` (hex for memory-like kinds), `core 2..4`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind.is_memory_like() {
            write!(f, "{} {:#x}..{:#x}", self.kind, self.start, self.end())
        } else {
            write!(f, "{} {}..{}", self.kind, self.start, self.end())
        }
    }
}
