//! The interrupt descriptor table: one entry stub per vector (256 stubs, 16 bytes
//! apart), a common entry that saves every register into an [`InterruptFrame`], and the
//! Rust dispatcher. Exceptions go to the crash report; device and IPI vectors to their
//! handlers.
//!
//! Stable Rust has no `x86-interrupt` ABI, so the stubs are assembly.

use core::arch::global_asm;
use core::mem::size_of;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::gdt::{IST_DOUBLE_FAULT, IST_INTERRUPTS, IST_MACHINE_CHECK, IST_NMI, KERNEL_CODE};

/// Vector of the local APIC timer.
pub const VECTOR_TIMER: u8 = 0x20;
/// Vector of the wake-up IPI (a core with work waiting).
pub const VECTOR_WAKE: u8 = 0x21;
/// Vector of the TLB shootdown IPI (pages unmapped on another core).
pub const VECTOR_SHOOTDOWN: u8 = 0x22;
/// ISA IRQ `n`'s wake vector (an IO-APIC line a driver armed: `platform::arm_line`) is
/// this plus `n`, up to 0xDF (0xE0-0xEF belong to the masked legacy PICs). Devices'
/// MSI and MSI-X messages use the wake vector.
pub const FIRST_LINE_VECTOR: u8 = 0xD0;
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

/// The gates, two words each; zero (not present) until the boot core fills them.
#[repr(C, align(16))]
struct Table([AtomicU64; 512]);

static IDT: Table = Table([const { AtomicU64::new(0) }; 512]);

/// Fills the IDT: every vector's stub, as a 64-bit interrupt gate (present, ring 0,
/// interrupts off on entry); NMI, double fault, machine check and the interrupts (32 and
/// up) on their IST stacks. The boot core does it once, before any other core starts.
pub fn build() {
    let stubs = (&raw const rexo_isr_stubs) as u64;
    for (vector, gate) in IDT.0.chunks_exact(2).enumerate() {
        let handler = stubs + 16 * vector as u64;
        let (low, mid) = (handler & 0xFFFF, (handler >> 16) & 0xFFFF);
        let ist = match vector as u8 {
            exception::DOUBLE_FAULT => IST_DOUBLE_FAULT,
            exception::NMI => IST_NMI,
            exception::MACHINE_CHECK => IST_MACHINE_CHECK,
            0..32 => 0,
            _ => IST_INTERRUPTS,
        };
        gate[0].store(
            low | u64::from(KERNEL_CODE) << 16 | (u64::from(ist) | 0x8E << 8) << 32 | mid << 48,
            Relaxed,
        );
        gate[1].store(handler >> 32, Relaxed);
    }
}

/// Loads the IDT on this core (built by the boot core, shared by every core).
pub fn load() {
    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let pointer = Pointer {
        limit: (size_of::<Table>() - 1) as u16,
        base: &raw const IDT as u64,
    };
    // SAFETY: the table is 'static and every gate points at a stub in `rexo_isr_stubs`.
    unsafe {
        core::arch::asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack, preserves_flags))
    };
}

/// Entered from the common stub with interrupts off and every register saved. Exceptions
/// go to the crash report (or end the app at its abort point); interrupt handlers are
/// kernel code run as a kernel section, so a panic in one is never taken for the
/// interrupted app's.
extern "C" fn dispatch(frame: &mut InterruptFrame) {
    let vector = frame.vector as u8;
    if vector < 32 {
        return crate::crash::exception(frame);
    }
    super::abort::kernel_section(|| {
        // A line's end of interrupt comes after its mask (a level line would fire again).
        if !matches!(vector, FIRST_LINE_VECTOR..0xE0 | VECTOR_SPURIOUS) {
            super::apic::end_of_interrupt();
        }
        match vector {
            VECTOR_TIMER => {
                crate::time::on_timer_interrupt();
                crate::caps::on_timer_interrupt();
            }
            VECTOR_WAKE => crate::time::on_wake_interrupt(),
            VECTOR_SHOOTDOWN => super::paging::on_shootdown(),
            vector @ FIRST_LINE_VECTOR..0xE0 => {
                crate::platform::on_line_interrupt(vector - FIRST_LINE_VECTOR);
                super::apic::end_of_interrupt();
            }
            // As every handler: no waiting for a console this core's interrupted code holds.
            vector if vector != VECTOR_SPURIOUS && crate::console::is_free() => {
                log::warn!("interrupt on vector {vector:#x}, which has no handler");
            }
            _ => {}
        }
    });
}
