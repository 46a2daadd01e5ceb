//! The machine-level half of BareMetal compatibility: the assembly entry stubs that keep
//! BareMetal's register convention, the call table at its fixed address, calling app
//! code, and turning the addresses an app passes into memory.

#![allow(unsafe_code)] // entry stubs, the fixed call table, jumping into app code, app-given addresses

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU8, Ordering};

use crate::arch::paging;

/// Physical address of the first pointer of the call table (`b_input`).
pub const TABLE: u64 = 0x10_0010;
/// Pointers in the call table: BareMetal's seven calls and `b_user` at 0x100048.
pub const ENTRIES: u64 = 8;
/// The page holding the call table, kept from the frame allocator.
pub const TABLE_PAGE: core::ops::Range<u64> = 0x10_0000..0x10_1000;
/// The largest buffer a call reads or dumps at once (storage calls go in pieces of it).
pub const MAX_ACCESS: u64 = rexo_drivers::baremetal::PIECE_BYTES;

/// A BareMetal call's registers as its entry stub saved them. The stub reloads every
/// register from here on return, so a call changes exactly the fields Rust writes.
#[repr(C)]
pub struct Regs {
    /// RAX.
    pub rax: u64,
    /// RBX.
    pub rbx: u64,
    /// RCX.
    pub rcx: u64,
    /// RDX.
    pub rdx: u64,
    /// RSI.
    pub rsi: u64,
    /// RDI.
    pub rdi: u64,
    /// RBP.
    pub rbp: u64,
    /// R8 to R15.
    pub r8_r15: [u64; 8],
    /// Which call: 0 `b_input`, 1 `b_output`, ... 6 `b_system` (table order).
    pub call: u64,
}

// Each stub but `b_user`'s (a bare `ret`, as BareMetal's stub for a user function)
// pushes its call number and joins the common path, which saves all fifteen
// general registers as a `Regs`, aligns the stack for Rust, calls `dispatch_from_stub`
// and reloads every register (changed or not) before returning to the app, ZF set when
// AL is 0 (BareMetal's `b_input` returns so, and its programs `jz` on it).
global_asm!(
    ".pushsection .text.rexo_baremetal, \"ax\"",
    ".balign 16",
    "rexo_bm_input: push 0",
    "jmp rexo_bm_common",
    ".balign 16",
    "rexo_bm_output: push 1",
    "jmp rexo_bm_common",
    ".balign 16",
    "rexo_bm_net_tx: push 2",
    "jmp rexo_bm_common",
    ".balign 16",
    "rexo_bm_net_rx: push 3",
    "jmp rexo_bm_common",
    ".balign 16",
    "rexo_bm_nvs_read: push 4",
    "jmp rexo_bm_common",
    ".balign 16",
    "rexo_bm_nvs_write: push 5",
    "jmp rexo_bm_common",
    ".balign 16",
    "rexo_bm_system: push 6",
    "jmp rexo_bm_common",
    ".balign 16",
    "rexo_bm_user: ret",
    ".balign 16",
    "rexo_bm_common:",
    "push r15",
    "push r14",
    "push r13",
    "push r12",
    "push r11",
    "push r10",
    "push r9",
    "push r8",
    "push rbp",
    "push rdi",
    "push rsi",
    "push rdx",
    "push rcx",
    "push rbx",
    "push rax",
    "mov rdi, rsp",
    "mov rbx, rsp",
    "cld",
    "and rsp, -16",
    "call {dispatch}",
    "mov rsp, rbx",
    "pop rax",
    "pop rbx",
    "pop rcx",
    "pop rdx",
    "pop rsi",
    "pop rdi",
    "pop rbp",
    "pop r8",
    "pop r9",
    "pop r10",
    "pop r11",
    "pop r12",
    "pop r13",
    "pop r14",
    "pop r15",
    "lea rsp, [rsp + 8]",
    "test al, al",
    "ret",
    ".popsection",
    dispatch = sym dispatch_from_stub,
);

unsafe extern "C" {
    fn rexo_bm_input();
    fn rexo_bm_output();
    fn rexo_bm_net_tx();
    fn rexo_bm_net_rx();
    fn rexo_bm_nvs_read();
    fn rexo_bm_nvs_write();
    fn rexo_bm_system();
    fn rexo_bm_user();
}

extern "C" fn dispatch_from_stub(regs: *mut Regs) {
    // SAFETY: the common stub passes the `Regs` it just pushed on this core's stack; it
    // lives until the stub pops it, after this function returns.
    let regs = unsafe { &mut *regs };
    super::calls::dispatch(regs);
}

/// Writes the [`ENTRIES`] code pointers of the call table at [`TABLE`].
pub fn install_table() {
    let stubs: [unsafe extern "C" fn(); ENTRIES as usize] = [
        rexo_bm_input,
        rexo_bm_output,
        rexo_bm_net_tx,
        rexo_bm_net_rx,
        rexo_bm_nvs_read,
        rexo_bm_nvs_write,
        rexo_bm_system,
        rexo_bm_user,
    ];
    for (i, stub) in stubs.iter().enumerate() {
        let slot = (TABLE + 8 * i as u64) as *mut u64;
        // SAFETY: TABLE_PAGE is reserved from the frame allocator at boot and
        // identity-mapped; nothing but this module writes it.
        unsafe { slot.write_volatile(*stub as usize as u64) };
    }
}

/// The pointer in slot `index` of the call table (0 = `b_input`).
pub fn table_entry(index: u64) -> u64 {
    let slot = (TABLE + 8 * index.min(ENTRIES - 1)) as *const u64;
    // SAFETY: as in `install_table`; reading the page has no side effects.
    unsafe { slot.read_volatile() }
}

/// Calls BareMetal code at `entry` (in ring 0, on this core's kernel stack, with a
/// 16-byte aligned stack) and returns its RAX. The app may change any register: all of
/// them are saved around the call.
pub fn call_app(entry: u64) -> u64 {
    let result: u64;
    // SAFETY: BareMetal apps run trusted, as on BareMetal: `entry` lies in the loaded
    // app's mapped area (checked by the callers). RBX and RBP are pushed, the caller's
    // RSP is kept on the stack across the call, and every other register is declared
    // clobbered; the direction flag is cleared again for Rust.
    unsafe {
        asm!(
            "push rbx",
            "push rbp",
            "mov rax, rsp",
            "and rsp, -16",
            "sub rsp, 8",
            "push rax",
            "call rdi",
            "mov rsp, [rsp]",
            "pop rbp",
            "pop rbx",
            "cld",
            in("rdi") entry,
            lateout("rax") result,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
            clobber_abi("C"),
        );
    }
    result
}

/// Whether `[addr, addr + len)` is at most [`MAX_ACCESS`] bytes and lies in the identity
/// map above page 0 or in the app's window at 0xFFFF_8000_0000_0000. (The page tables
/// are not walked: they are locked while another core changes them. A trusted app that
/// points at a stack guard page faults, as it would on BareMetal.)
pub fn accessible(addr: u64, len: u64) -> bool {
    let Some(end) = addr.checked_add(len) else {
        return false;
    };
    let window = super::app_window();
    len <= MAX_ACCESS
        && ((addr >= 0x1000 && end <= paging::mapped_top())
            || (addr >= window.start && end <= window.end))
}

/// The bytes an app points at, if they are mapped (see [`accessible`]).
pub fn app_bytes(addr: u64, len: u64) -> Option<&'static [u8]> {
    if len == 0 {
        return Some(&[]);
    }
    if !accessible(addr, len) {
        return None;
    }
    // SAFETY: the range is mapped (checked above). BareMetal apps run trusted and own
    // the memory they pass; the slice is only read during the call that received it.
    Some(unsafe { core::slice::from_raw_parts(addr as *const u8, len as usize) })
}

/// The app's buffer `[addr, addr + len)` to fill, if it is mapped.
pub fn app_bytes_mut(addr: u64, len: u64) -> Option<&'static mut [u8]> {
    if len == 0 || !accessible(addr, len) {
        return None;
    }
    // SAFETY: the range is mapped (checked above); BareMetal apps run trusted and hand
    // the buffer to the call that fills it, which is the only user while it runs.
    Some(unsafe { core::slice::from_raw_parts_mut(addr as *mut u8, len as usize) })
}

/// The lock byte at `addr` (BareMetal's lock word: bit 0 is the lock).
pub fn lock_byte(addr: u64) -> Option<&'static AtomicU8> {
    if !accessible(addr, 1) {
        return None;
    }
    // SAFETY: the byte is mapped (checked above); a lock word is shared between cores
    // by design and only ever accessed atomically here.
    Some(unsafe { AtomicU8::from_ptr(addr as *mut u8) })
}

/// Spins until bit 0 of the lock byte at `lock` is ours.
pub fn spin_lock(lock: &AtomicU8) {
    while lock.fetch_or(1, Ordering::Acquire) & 1 != 0 {
        while lock.load(Ordering::Relaxed) & 1 != 0 {
            core::hint::spin_loop();
        }
    }
}

/// The app area's frames as bytes, taken over for good (the area is allocated once and
/// reused by every BareMetal app of this boot).
pub fn take_area(frames: rexo_memmap::FrameRange) -> &'static mut [u8] {
    let range = frames.leak();
    // SAFETY: the frames were just allocated (so nothing else refers to them), are
    // identity-mapped RAM, and are leaked here: this slice is their only owner.
    unsafe {
        core::slice::from_raw_parts_mut(range.start as *mut u8, (range.end - range.start) as usize)
    }
}
