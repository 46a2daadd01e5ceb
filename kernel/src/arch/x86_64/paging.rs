//! The kernel's one address space: an identity map of all RAM (write-back) and of the
//! device holes below 4 GiB (uncached), with 1 GiB pages where the CPU has them and a
//! whole gigabyte is of one kind, else 2 MiB pages, split into 4 KiB pages where one holds
//! both RAM and device space. Page 0 stays unmapped so that a null
//! pointer faults. Finer 4 KiB mappings are made on demand (stack guard pages, memory
//! revoked by force from an app that mapped it).
//!
//! Page tables are frames taken from the frame allocator and never returned: they are
//! part of the address space for the life of the machine.

use core::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use core::sync::atomic::{AtomicBool, AtomicU64};

use rexo_memmap::{Contents, MemoryMap};

use super::cpu::{self, Features};
use crate::mem::frames;

/// What the kernel tests read of the tables.
pub mod tests;

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const WRITE_THROUGH: u64 = 1 << 3;
const CACHE_DISABLE: u64 = 1 << 4;
const HUGE: u64 = 1 << 7;
const ADDRESS_MASK: u64 = 0x000F_FFFF_FFFF_F000;

const KIB4: u64 = 4096;
const MIB2: u64 = 2 << 20;
const GIB1: u64 = 1 << 30;
const GIB4: u64 = 4 << 30;

/// Whether an identity mapping is normal memory or a device window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caching {
    /// Write-back: RAM.
    WriteBack,
    /// Uncached: device registers.
    Uncached,
    /// Write-combining: the framebuffer, where the CPU has the PAT (PWT alone selects
    /// entry 1, which every core's IA32_PAT makes WC: `rexo_cpuid::pat`).
    WriteCombining,
}

impl Caching {
    fn bits(self) -> u64 {
        match self {
            Caching::WriteBack => 0,
            Caching::Uncached => CACHE_DISABLE | WRITE_THROUGH,
            Caching::WriteCombining => WRITE_THROUGH,
        }
    }
}

/// Errors of the paging layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagingError {
    /// No frame was left for a page table.
    OutOfMemory,
    /// The address is not mapped at all.
    NotMapped(u64),
    /// The address (or a range from it) lies beyond what the CPU can address or the
    /// identity map reaches (2^47).
    BeyondPhysicalAddressWidth(u64),
    /// The address is not aligned as the mapping needs.
    Misaligned(u64),
    /// The address is not in the upper half (0xFFFF_8000_0000_0000 and above).
    NotUpperHalf(u64),
}

impl core::fmt::Display for PagingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PagingError::OutOfMemory => write!(f, "no memory left for page tables"),
            PagingError::NotMapped(addr) => write!(f, "address {addr:#x} is not mapped"),
            PagingError::BeyondPhysicalAddressWidth(addr) => write!(
                f,
                "address {addr:#x} is beyond the CPU's physical address width"
            ),
            PagingError::Misaligned(addr) => write!(f, "address {addr:#x} is misaligned"),
            PagingError::NotUpperHalf(addr) => {
                write!(f, "address {addr:#x} is not in the upper half")
            }
        }
    }
}

static ROOT: AtomicU64 = AtomicU64::new(0);
static MAPPED_TOP: AtomicU64 = AtomicU64::new(GIB4);
static INSTALLED: AtomicBool = AtomicBool::new(false);
static PHYS_LIMIT: AtomicU64 = AtomicU64::new(1 << 36);
/// Address bits the identity map reaches: the lower half of 4-level paging (128 TiB).
pub const IDENTITY_MAP_BITS: u8 = 47;

/// One page-table page, viewed through the identity map as atomics: writers change its
/// entries under `LOCK` while [`leaf`] (on any core) reads them without it. An entry that
/// links a table already filled is stored with `Release`, so a walk that reads the link
/// (`Acquire`) sees the table's fill; the other stores and the reads under `LOCK` are
/// `Relaxed` (plain `mov`s on x86-64), ordered for the MMUs by the TLB flushes after them.
fn table(phys: u64) -> &'static [AtomicU64; 512] {
    // SAFETY: `phys` is a 4 KiB-aligned page-table frame owned by the paging layer
    // (allocated below and never freed nor reused) and identity-mapped. AtomicU64 has
    // u64's size and 8-byte alignment on x86-64, and every access to the entries is
    // atomic (the MMUs', outside Rust, read and set bits in whole entries), so shared
    // references to them on several cores at once are sound.
    unsafe { &*(phys as *const [AtomicU64; 512]) }
}

/// The entry mapping `addr` (`shift`: 39, 30, 21 or 12, its level) in the table that
/// `parent` links: the root's address, or an entry pointing to a table.
fn entry_in(parent: u64, addr: u64, shift: u32) -> &'static AtomicU64 {
    &table(parent & ADDRESS_MASK)[(addr >> shift) as usize & 511]
}

static LOCK: spin::Mutex<()> = spin::Mutex::new(());

/// A new page table whose entry `i` (0 to 511) is `entry(i)`.
fn new_table(entry: impl Fn(u64) -> u64) -> Result<u64, PagingError> {
    let frame = frames::allocate_page_table().ok_or(PagingError::OutOfMemory)?;
    for (i, slot) in table(frame).iter().enumerate() {
        slot.store(entry(i as u64), Relaxed);
    }
    Ok(frame)
}

/// Device space (no RAM at all) is uncached; anything holding RAM is write-back.
fn caching(holds_ram: bool) -> Caching {
    if holds_ram {
        Caching::WriteBack
    } else {
        Caching::Uncached
    }
}

/// `entry`, a table's entry for the next level down, linked first to a new zeroed table
/// if it is absent (published with `Release`, so a walker on another core that sees it
/// sees the zeroes).
fn linked(entry: &AtomicU64) -> Result<u64, PagingError> {
    if entry.load(Relaxed) & PRESENT == 0 {
        entry.store(new_table(|_| 0)? | PRESENT | WRITABLE, Release);
    }
    Ok(entry.load(Relaxed))
}

/// A page table mapping the 2 MiB at `start`, which hold RAM and device space, in 4 KiB
/// pages: write-back, but uncached where a page holds no RAM (a device's registers).
fn mixed_table(map: &MemoryMap, start: u64) -> Result<u64, PagingError> {
    let pt = new_table(|_| 0)?;
    let pages = map.frames_holding_ram(start..start + MIB2);
    for (entry, (page, ram)) in table(pt).iter().zip(pages) {
        entry.store(page | PRESENT | WRITABLE | caching(ram).bits(), Relaxed);
    }
    Ok(pt)
}

/// Builds the identity map for `map` and switches this core to it (its top:
/// [`mapped_top`]).
pub fn init(map: &MemoryMap, features: &Features) -> Result<(), PagingError> {
    let _guard = LOCK.lock();
    // Past 2^47 an address would index the upper half's entries, whatever the CPU reaches.
    let limit = 1 << features.phys_bits.min(IDENTITY_MAP_BITS);
    PHYS_LIMIT.store(limit, Relaxed);
    let top = map.ram_top().max(GIB4).next_multiple_of(GIB1);
    let root = new_table(|_| 0)?;
    let mut gib = 0;
    while gib < top {
        let pdpte = entry_in(linked(entry_in(root, gib, 39))?, gib, 30);
        let whole = map.contents(gib..gib + GIB1);
        if features.huge_1g && whole != Contents::Mixed {
            let ram = caching(whole == Contents::Ram).bits();
            pdpte.store(gib | PRESENT | WRITABLE | HUGE | ram, Relaxed);
        } else {
            let pd = new_table(|_| 0)?;
            for (i, entry) in table(pd).iter().enumerate() {
                let start = gib + i as u64 * MIB2;
                let kind = match whole {
                    Contents::Mixed => map.contents(start..start + MIB2),
                    one_kind => one_kind,
                };
                let value = match kind {
                    Contents::Mixed => mixed_table(map, start)? | PRESENT | WRITABLE,
                    _ => start | PRESENT | WRITABLE | HUGE | caching(kind == Contents::Ram).bits(),
                };
                entry.store(value, Relaxed);
            }
            pdpte.store(pd | PRESENT | WRITABLE, Relaxed);
        }
        gib += GIB1;
    }
    ROOT.store(root, Relaxed);
    // Page 0 faults: a null pointer dereference is a crash report, not silent corruption.
    unmap_page_locked(0)?;
    // SAFETY: the new tables map everything the kernel uses (its image, stack, boot data
    // and all RAM) at the same addresses as the boot tables did.
    unsafe { core::arch::asm!("mov cr3, {}", in(reg) root, options(nostack, preserves_flags)) };
    // Only now may page tables come from past 4 GiB (`frames::allocate_page_table`).
    MAPPED_TOP.store(top, Relaxed);
    INSTALLED.store(true, Release);
    Ok(())
}

/// Loads the kernel's page tables on an application processor.
pub fn root() -> u64 {
    ROOT.load(Relaxed)
}

/// The end of the identity map made at boot (device windows above it are mapped with
/// [`map_device`]); 4 GiB, the boot tables' map, until the kernel's tables are in use.
pub fn mapped_top() -> u64 {
    MAPPED_TOP.load(Relaxed)
}

/// Whether the kernel's own page tables are in use (before that, the boot tables map
/// the first 4 GiB, page 0 included).
pub fn installed() -> bool {
    INSTALLED.load(Acquire)
}

/// Returns the page-table entry mapping `addr` with a 4 KiB page, splitting the 1 GiB or
/// 2 MiB page that covers it (the split keeps every other address mapped as before).
fn entry_4k(addr: u64) -> Result<&'static AtomicU64, PagingError> {
    let pml4e = entry_in(ROOT.load(Relaxed), addr, 39).load(Relaxed);
    if pml4e & PRESENT == 0 {
        return Err(PagingError::NotMapped(addr));
    }
    let pdpte = entry_in(pml4e, addr, 30);
    let huge = pdpte.load(Relaxed);
    if huge & PRESENT == 0 {
        return Err(PagingError::NotMapped(addr));
    }
    if huge & HUGE != 0 {
        let base = huge & ADDRESS_MASK & !(GIB1 - 1);
        let pd = new_table(|i| (base + i * MIB2) | (huge & !ADDRESS_MASK))?;
        pdpte.store(pd | PRESENT | WRITABLE, Release);
    }
    let pde = entry_in(pdpte.load(Relaxed), addr, 21);
    let huge = pde.load(Relaxed);
    if huge & PRESENT == 0 {
        return Err(PagingError::NotMapped(addr));
    }
    if huge & HUGE != 0 {
        let base = huge & ADDRESS_MASK & !(MIB2 - 1);
        let pt = new_table(|i| (base + i * KIB4) | (huge & !ADDRESS_MASK & !HUGE))?;
        pde.store(pt | PRESENT | WRITABLE, Release);
        flush_all();
    }
    Ok(entry_in(pde.load(Relaxed), addr, 12))
}

fn flush(addr: u64) {
    // SAFETY: invalidating a TLB entry has no effect beyond making the CPU re-read tables.
    unsafe { core::arch::asm!("invlpg [{}]", in(reg) addr, options(nostack, preserves_flags)) };
}

fn flush_all() {
    if installed() {
        // SAFETY: reloading CR3 with its own value only flushes the TLB.
        unsafe {
            core::arch::asm!("mov cr3, {}", in(reg) cpu::cr3(), options(nostack, preserves_flags))
        };
    }
}

fn unmap_page_locked(addr: u64) -> Result<(), PagingError> {
    let entry = entry_4k(addr & !(KIB4 - 1))?;
    entry.store(entry.load(Relaxed) & !PRESENT, Relaxed);
    flush(addr);
    Ok(())
}

/// Clears (`present` false) or sets again the identity-map entries of the 4 KiB pages of
/// `range`, splitting 1 GiB and 2 MiB pages as needed; only this core's TLB is flushed
/// ([`flush_every_core`] does the others). All or nothing: every split is made before any
/// entry changes, so a lack of frames for a page table (`OutOfMemory`) changes no page.
pub fn set_present(range: core::ops::Range<u64>, present: bool) -> Result<(), PagingError> {
    let set = |entry: u64| (entry & !PRESENT) | (u64::from(present) * PRESENT);
    change_4k(range, set)
}

/// Maps the device window `range`, in the identity map, write-combining in 4 KiB pages
/// where the CPU has the PAT (the framebuffer: each store no longer its own bus
/// transaction), and returns how it is mapped: uncached as before without the PAT (PWT
/// alone would then mean write-through), or when no frame is left for a page table (all
/// or nothing, as [`set_present`]). Only the pages mapped uncached change: a page the
/// window's first or last byte shares with RAM mapped write-back (the window is rounded
/// out to whole pages) stays write-back, never a write-combining alias of cached memory.
/// Only this core's TLB is flushed: the boot flushes every core's once the other cores
/// are up ([`flush_every_core`]), since one that started before may keep the large
/// uncached translation beside the 4 KiB write-combining ones (the SDM asks for a flush
/// when a page's size and type change).
pub fn write_combine(range: core::ops::Range<u64>) -> Caching {
    let range = range.start & !(KIB4 - 1)..range.end.next_multiple_of(KIB4);
    // Uncached (PCD and PWT) becomes PWT alone (PAT entry 1); write-back (neither) stays.
    let wc = |entry: u64| entry & !(u64::from(entry & WRITE_THROUGH != 0) * CACHE_DISABLE);
    if !cpu::features().pat || change_4k(range, wc).is_err() {
        return Caching::Uncached;
    }
    Caching::WriteCombining
}

/// Gives each identity-map entry of the 4 KiB pages of `range` the value `change` makes of
/// it, all or nothing as [`set_present`] says, flushing this core's TLB only.
fn change_4k(range: core::ops::Range<u64>, change: impl Fn(u64) -> u64) -> Result<(), PagingError> {
    let _guard = LOCK.lock();
    for at in (range.start & !(MIB2 - 1)..range.end).step_by(MIB2 as usize) {
        entry_4k(at.max(range.start))?; // splits what a 2 MiB region's pages need; no change
    }
    for page in range.step_by(KIB4 as usize) {
        let entry = entry_4k(page & !(KIB4 - 1))?;
        entry.store(change(entry.load(Relaxed)), Relaxed);
        flush(page);
    }
    Ok(())
}

/// The present entry that maps `addr` and the bytes of its page (1 GiB, 2 MiB or 4 KiB),
/// read without the page-table lock as another core's MMU reads them: top down, each
/// entry once, as a whole (an atomic load, as every write to an entry is a store: see
/// [`table`]). The writers, under `LOCK`: `init`, before any other core or app runs;
/// `entry_4k`'s split, which fills its new table and then links it (`Release`, which this
/// load's `Acquire` pairs with, so a table reached through a link is seen filled);
/// `set_present` and `unmap_page_locked`, which flip `PRESENT` alone; `map_device`, which
/// zeroes each new table (`new_table`) and then links it the same way; `map_ram_at`, in
/// the upper half only (PML4 entries 256 up, never reached from `is_present`, whose range
/// ends at 2^47). Each entry is read as before or after a change.
fn leaf(addr: u64) -> Option<(u64, u64)> {
    let mut entry = ROOT.load(Relaxed);
    for shift in [39, 30, 21, 12] {
        entry = entry_in(entry, addr, shift).load(Acquire);
        if entry & PRESENT == 0 || entry & HUGE != 0 || shift == 12 {
            return (entry & PRESENT != 0).then_some((entry, 1 << shift));
        }
    }
    None
}

/// Whether every page of `range` is present in the identity map: RAM the kernel may touch
/// for a C app (a stack's guard page and memory taken by force are RAM but not mapped).
/// Takes no lock (it runs per check of a C app's buffer, on every core): a page whose
/// entry changes meanwhile counts as it was before or after the change (a lock would not
/// keep the answer true until it is used either).
pub fn is_present(range: core::ops::Range<u64>) -> bool {
    if range.end > 1 << IDENTITY_MAP_BITS {
        return false; // the upper half's entries, not the identity map's
    }
    let mut addr = range.start;
    // No entry is read past the range's end (which may be the upper half's first).
    while let Some((_, bytes)) = Some(addr).filter(|&at| at < range.end).and_then(leaf) {
        addr = (addr & !(bytes - 1)) + bytes;
    }
    addr >= range.end
}

/// Cores that have not flushed their TLB for the shootdown under way.
static SHOOTDOWN_PENDING: AtomicU64 = AtomicU64::new(0);
static SHOOTDOWN: spin::Mutex<()> = spin::Mutex::new(());

/// Flushes the TLB of every core in the work loop (an IPI to each other core, whose
/// handler is [`on_shootdown`]) and returns when all have. Callers hold no lock that a
/// core could wait for with interrupts off.
pub fn flush_every_core() {
    Shootdown {
        _lock: SHOOTDOWN.lock(),
    }
    .flush();
}

/// The right to flush every core's TLB (the shootdown lock), taken without waiting.
pub struct Shootdown {
    _lock: spin::MutexGuard<'static, ()>,
}

impl Shootdown {
    /// The shootdown lock if no core holds it (code with interrupts off must not wait for
    /// it: its holder waits for every core to take the shootdown interrupt).
    pub fn try_begin() -> Option<Self> {
        SHOOTDOWN.try_lock().map(|lock| Self { _lock: lock })
    }

    /// Flushes every core's TLB, as [`flush_every_core`].
    pub fn flush(self) {
        flush_all();
        let me = super::percpu::core_index();
        let others = (0..crate::smp_cores()).filter(|&core| core != me);
        SHOOTDOWN_PENDING.store(others.clone().count() as u64, Release);
        for core in others {
            let apic_id = super::percpu::core(core).apic_id.load(Relaxed);
            super::apic::send_ipi(
                apic_id,
                super::apic::Ipi::Fixed(super::idt::VECTOR_SHOOTDOWN),
            );
        }
        while SHOOTDOWN_PENDING.load(Acquire) != 0 {
            core::hint::spin_loop();
        }
    }
}

/// Whether no code holds the page-table lock right now (so code that interrupted this
/// core may change mappings without waiting for itself).
pub fn is_free() -> bool {
    !LOCK.is_locked()
}

/// The shootdown IPI's handler: flush this core's TLB and say so.
pub fn on_shootdown() {
    flush_all();
    SHOOTDOWN_PENDING.fetch_sub(1, AcqRel);
}

/// Unmaps the 4 KiB page at `addr` (a guard page: touching it faults). Only this core's
/// TLB is flushed: callers unmap pages that no other core has used yet.
pub fn unmap_page(addr: u64) -> Result<(), PagingError> {
    let _guard = LOCK.lock();
    unmap_page_locked(addr)
}

/// Maps a device window `[phys, phys + len)` uncached, identity, with 2 MiB pages (for
/// windows above the boot-time map, such as 64-bit PCI BARs). Already-mapped parts keep
/// their mapping. All or nothing: every page table is made before any page is mapped, so
/// a lack of frames for one (`OutOfMemory`) maps nothing.
pub fn map_device(phys: u64, len: u64) -> Result<(), PagingError> {
    let _guard = LOCK.lock();
    let limit = PHYS_LIMIT.load(Relaxed);
    let end = (phys.checked_add(len))
        .filter(|&end| end <= limit)
        .ok_or(PagingError::BeyondPhysicalAddressWidth(phys))?;
    for map in [false, true] {
        for addr in (phys & !(MIB2 - 1)..end).step_by(MIB2 as usize) {
            let pdpte = entry_in(linked(entry_in(ROOT.load(Relaxed), addr, 39))?, addr, 30);
            linked(pdpte)?;
            if map && pdpte.load(Relaxed) & HUGE == 0 {
                let pde = entry_in(pdpte.load(Relaxed), addr, 21);
                if pde.load(Relaxed) & PRESENT == 0 {
                    let device = addr | PRESENT | WRITABLE | HUGE | Caching::Uncached.bits();
                    pde.store(device, Relaxed);
                }
            }
        }
    }
    Ok(())
}

/// Maps `[virt, virt + len)` onto the RAM at `[phys, phys + len)`, write-back, with
/// 2 MiB pages (BareMetal apps run at 0xFFFF_8000_0000_0000). All three must be 2 MiB
/// aligned and `virt` in the upper half (never the identity map). Entries already
/// present are replaced and this core's TLB is flushed; the caller makes sure no other
/// core uses the old mapping. All or nothing: every page table is made before any page
/// is mapped, so a lack of frames for one (`OutOfMemory`) maps nothing.
pub fn map_ram_at(virt: u64, phys: u64, len: u64) -> Result<(), PagingError> {
    let _guard = LOCK.lock();
    if virt < 0xFFFF_8000_0000_0000 || virt.checked_add(len).is_none() {
        return Err(PagingError::NotUpperHalf(virt));
    }
    if let Some(bad) = [virt, phys, len]
        .into_iter()
        .find(|x| !x.is_multiple_of(MIB2))
    {
        return Err(PagingError::Misaligned(bad));
    }
    (phys.checked_add(len))
        .filter(|&end| end <= PHYS_LIMIT.load(Relaxed))
        .ok_or(PagingError::BeyondPhysicalAddressWidth(phys))?;
    for map in [false, true] {
        for offset in (0..len).step_by(MIB2 as usize) {
            let addr = virt.wrapping_add(offset);
            let pdpte = entry_in(linked(entry_in(ROOT.load(Relaxed), addr, 39))?, addr, 30);
            if pdpte.load(Relaxed) & PRESENT == 0 || pdpte.load(Relaxed) & HUGE != 0 {
                pdpte.store(new_table(|_| 0)? | PRESENT | WRITABLE, Release);
            }
            if map {
                let ram = (phys + offset) | PRESENT | WRITABLE | HUGE | Caching::WriteBack.bits();
                entry_in(pdpte.load(Relaxed), addr, 21).store(ram, Relaxed);
            }
        }
    }
    flush_all();
    Ok(())
}
