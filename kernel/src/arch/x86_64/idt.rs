//! The interrupt descriptor table: one entry stub per vector (256 stubs, 16 bytes
//! apart), a common entry that saves every register into an [`InterruptFrame`], and the
//! Rust dispatcher. Exceptions go to the crash report; device and IPI vectors to their
//! handlers.
//!
//! Stable Rust has no `x86-interrupt` ABI, so the stubs are assembly.

use core::arch::global_asm;
use core::mem::size_of;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::gdt::{IST_DOUBLE_FAULT, IST_MACHINE_CHECK, IST_NMI, KERNEL_CODE};

/// Vector of the local APIC timer.
pub const VECTOR_TIMER: u8 = 0x20;
/// Vector of the wake-up IPI (a core with work waiting).
pub const VECTOR_WAKE: u8 = 0x21;
/// Vector of the TLB shootdown IPI (pages unmapped on another core).
pub const VECTOR_SHOOTDOWN: u8 = 0x22;
/// First vector for device interrupts (IO-APIC, MSI).
pub const FIRST_DEVICE_VECTOR: u8 = 0x30;
/// Last vector for device interrupts (0xE0-0xEF belong to the masked legacy PICs).
pub const LAST_DEVICE_VECTOR: u8 = 0xDF;
/// Vector of the local APIC spurious interrupt.
pub const VECTOR_SPURIOUS: u8 = 0xFF;

/// Exception vectors.
pub mod exception {
    /// Non-maskable interrupt.
    pub const NMI: u8 = 2;
    /// Double fault.
    pub const DOUBLE_FAULT: u8 = 8;
    /// Page fault.
    pub const PAGE_FAULT: u8 = 14;
    /// Machine check.
    pub const MACHINE_CHECK: u8 = 18;
}

/// The registers saved on interrupt entry (its layout is the stubs' below).
pub use rexo_crashreport::InterruptFrame;

// Vectors with a CPU error code: 8, 10-14, 17, 21, 29, 30. The stubs of all other
// vectors push a zero in its place so that every frame has the same layout.
global_asm!(
    r#"
    .section .text.rexo_isr, "ax"
    .balign 16
    .global rexo_isr_stubs
rexo_isr_stubs:
    .set rexo_vec, 0
    .rept 256
    .balign 16
    .if (rexo_vec == 8) || ((rexo_vec >= 10) && (rexo_vec <= 14)) || (rexo_vec == 17) || (rexo_vec == 21) || (rexo_vec == 29) || (rexo_vec == 30)
    pushq $rexo_vec
    .else
    pushq $0
    pushq $rexo_vec
    .endif
    jmp rexo_isr_common
    .set rexo_vec, rexo_vec + 1
    .endr

rexo_isr_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi
    cld
    call {dispatch}
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp
    iretq
    "#,
    dispatch = sym dispatch,
    options(att_syntax)
);

unsafe extern "C" {
    static rexo_isr_stubs: [u8; 256 * 16];
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    flags: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

#[repr(C, align(16))]
struct Table([Gate; 256]);

static IDT: spin::Once<Table> = spin::Once::new();

fn build() -> Table {
    let stubs = (&raw const rexo_isr_stubs) as u64;
    let mut table = Table(
        [Gate {
            offset_low: 0,
            selector: 0,
            ist: 0,
            flags: 0,
            offset_mid: 0,
            offset_high: 0,
            reserved: 0,
        }; 256],
    );
    for (vector, gate) in table.0.iter_mut().enumerate() {
        let handler = stubs + 16 * vector as u64;
        let ist = match vector as u8 {
            exception::DOUBLE_FAULT => IST_DOUBLE_FAULT,
            exception::NMI => IST_NMI,
            exception::MACHINE_CHECK => IST_MACHINE_CHECK,
            _ => 0,
        };
        *gate = Gate {
            offset_low: handler as u16,
            selector: KERNEL_CODE,
            ist,
            flags: 0x8E, // present, ring 0, 64-bit interrupt gate (interrupts off on entry)
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        };
    }
    table
}

/// Loads the IDT on this core (built once, shared by every core).
pub fn load() {
    let table = IDT.call_once(build);
    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let pointer = Pointer {
        limit: (size_of::<Table>() - 1) as u16,
        base: table as *const Table as u64,
    };
    // SAFETY: the table is 'static and every gate points at a stub in `rexo_isr_stubs`.
    unsafe {
        core::arch::asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack, preserves_flags))
    };
}

/// Entered from the common stub with interrupts off and every register saved.
extern "C" fn dispatch(frame: &mut InterruptFrame) {
    match frame.vector as u8 {
        VECTOR_TIMER => {
            super::apic::end_of_interrupt();
            crate::time::on_timer_interrupt();
            crate::caps::on_timer_interrupt();
        }
        VECTOR_WAKE => {
            super::apic::end_of_interrupt();
            crate::time::on_wake_interrupt();
        }
        VECTOR_SHOOTDOWN => {
            super::apic::end_of_interrupt();
            super::paging::on_shootdown();
        }
        VECTOR_SPURIOUS => {}
        vector if vector < 32 => crate::crash::exception(frame),
        vector => {
            super::apic::end_of_interrupt();
            match HANDLERS[usize::from(vector)].load(Ordering::Acquire) {
                0 => log::warn!("interrupt on vector {vector:#x}, which has no handler"),
                handler => {
                    // SAFETY: only `set_handler` stores non-zero values, and it stores `fn()` pointers.
                    let handler = unsafe { core::mem::transmute::<usize, fn()>(handler) };
                    handler();
                }
            }
        }
    }
}

/// The handler of each device vector (0: none), as `fn()` pointers.
static HANDLERS: [AtomicUsize; 256] = [const { AtomicUsize::new(0) }; 256];

/// Why a vector cannot take a handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VectorError {
    /// Outside the device range.
    NotADeviceVector(u8),
    /// Another handler has it.
    InUse(u8),
}

/// Installs `handler` for device vector `vector` (run with interrupts off, after EOI).
pub fn set_handler(vector: u8, handler: fn()) -> Result<(), VectorError> {
    if !(FIRST_DEVICE_VECTOR..=LAST_DEVICE_VECTOR).contains(&vector) {
        return Err(VectorError::NotADeviceVector(vector));
    }
    HANDLERS[usize::from(vector)]
        .compare_exchange(0, handler as usize, Ordering::AcqRel, Ordering::Acquire)
        .map(|_| ())
        .map_err(|_| VectorError::InUse(vector))
}

/// Removes the handler of `vector`.
pub fn clear_handler(vector: u8) {
    HANDLERS[usize::from(vector)].store(0, Ordering::Release);
}
