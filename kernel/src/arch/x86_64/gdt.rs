//! The GDT and TSS of each core. The TSS gives the double-fault, NMI and machine-check
//! handlers stacks of their own (IST), so a kernel stack overflow still gets a report, and
//! one to the interrupts (vectors 32 and up), so that one taken while an app has all but
//! used up the kernel stack it runs on is served.

use core::arch::asm;
use core::mem::size_of;

/// Kernel code segment selector.
pub const KERNEL_CODE: u16 = 0x08;
/// Kernel data segment selector.
pub const KERNEL_DATA: u16 = 0x10;
const TSS_SELECTOR: u16 = 0x18;

/// IST slot of the double-fault handler (1-based, as the IDT encodes it).
pub const IST_DOUBLE_FAULT: u8 = 1;
/// IST slot of the NMI handler.
pub const IST_NMI: u8 = 2;
/// IST slot of the machine-check handler.
pub const IST_MACHINE_CHECK: u8 = 3;
/// IST slot of the interrupts (vectors 32 and up: their gates clear IF, so none nests).
pub const IST_INTERRUPTS: u8 = 4;
/// Number of IST stacks each core gets.
pub const IST_STACKS: usize = 4;

/// The 64-bit task state segment.
#[repr(C, packed(4))]
pub struct Tss {
    reserved0: u32,
    rsp: [u64; 3],
    reserved1: u64,
    ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    iomap_base: u16,
}

/// A core's GDT (null, code, data, TSS low, TSS high) and TSS.
#[repr(C, align(16))]
pub struct CoreTables {
    gdt: [u64; 5],
    tss: Tss,
}

impl CoreTables {
    /// Zeroed tables, filled by [`load`].
    // SAFETY: both tables are integers only, for which all zeros is a valid value.
    pub const EMPTY: Self = unsafe { core::mem::zeroed() };
}

/// Fills `tables` with the kernel segments and a TSS whose IST slots hold `ist_tops`,
/// then loads them on this core (reloading every segment register and the task register).
///
/// # Safety
/// `tables` must be this core's own tables, not loaded on any core yet, and must live
/// forever; `ist_tops` must be the tops of mapped stacks owned by this core.
pub unsafe fn load(tables: *mut CoreTables, ist_tops: [u64; IST_STACKS]) {
    // SAFETY: the caller gives us exclusive access to tables nobody has loaded yet.
    let tables = unsafe { &mut *tables };
    let mut ist = [0u64; 7];
    ist[..IST_STACKS].copy_from_slice(&ist_tops);
    tables.tss.ist = ist;
    tables.tss.iomap_base = size_of::<Tss>() as u16; // no I/O permission bitmap
    let tss = &raw const tables.tss as u64;
    let limit = (size_of::<Tss>() - 1) as u64;
    tables.gdt = [
        0,
        0x00AF_9A00_0000_FFFF, // 64-bit code, ring 0
        0x00CF_9200_0000_FFFF, // data, ring 0
        (limit & 0xFFFF) | ((tss & 0xFF_FFFF) << 16) | (0x89 << 40) | (((tss >> 24) & 0xFF) << 56),
        tss >> 32,
    ];
    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let pointer = Pointer {
        limit: (size_of::<[u64; 5]>() - 1) as u16,
        base: tables.gdt.as_ptr() as u64,
    };
    // SAFETY: the GDT above is valid and 'static; the far return reloads CS with the
    // same kernel code segment, the data selectors are valid, and the TSS descriptor
    // is available (not busy) because these tables were never loaded.
    unsafe {
        asm!(
            "lgdt [{pointer}]",
            "push {code}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ds, {data:x}",
            "mov es, {data:x}",
            "mov ss, {data:x}",
            "ltr {tss:x}",
            pointer = in(reg) &pointer,
            code = in(reg) u64::from(KERNEL_CODE),
            tmp = lateout(reg) _,
            data = in(reg) KERNEL_DATA,
            tss = in(reg) TSS_SELECTOR,
        );
    }
}
