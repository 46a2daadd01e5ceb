//! Abort points: run a function so that code deep inside it can give up and return to
//! the point where it started, skipping everything in between, on the same core. This is
//! how an app that panics ends alone (no unwinding in a `panic = "abort"` kernel): the
//! panic handler jumps back to the abort point `apps::run` set, which reports the app as
//! failed and lets the kernel go on.
//!
//! The jump is done without any "returns twice" function: [`run_abortable`] calls an
//! assembly routine that saves the callee-saved registers on the stack, records the stack
//! pointer, and calls the function; [`abort_current`] puts that stack pointer back, pops
//! the registers and returns from the same routine with 1 instead of 0. Whatever the
//! abandoned frames owned is leaked, never used again.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};

use super::percpu::MAX_CORES;

global_asm!(
    r#"
    .section .text.rexo_abortable, "ax"
    .global rexo_run_abortable
    // rdi = function, rsi = its argument, rdx = where to record the stack pointer.
rexo_run_abortable:
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    sub rsp, 8                      // keep the stack 16-byte aligned for the call
    mov [rdx], rsp
    mov rax, rdi
    mov rdi, rsi
    call rax
    xor eax, eax
rexo_abortable_return:
    add rsp, 8
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    ret

    .global rexo_abort_to
    // rdi = the recorded stack pointer.
rexo_abort_to:
    mov rsp, rdi
    mov eax, 1
    jmp rexo_abortable_return
    "#
);

unsafe extern "C" {
    fn rexo_run_abortable(
        function: extern "C" fn(*mut u8),
        argument: *mut u8,
        record: *mut u64,
    ) -> u64;
    fn rexo_abort_to(stack_pointer: u64) -> !;
}

/// Each core's innermost abort point: the recorded stack pointer (0: none), with
/// [`SET_ASIDE`] while a kernel section puts it aside.
static ABORT_POINT: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];

/// Bit 0 of an abort point (a stack pointer, 8-byte aligned) put aside by a kernel section.
const SET_ASIDE: u64 = 1;

/// The function ran to completion, or was abandoned by [`abort_current`].
#[derive(Debug, PartialEq, Eq)]
pub struct Aborted;

extern "C" fn call_once<F: FnOnce()>(argument: *mut u8) {
    // SAFETY: `argument` is the `Option<F>` that `run_abortable` passes, alive for the call.
    let slot = unsafe { &mut *argument.cast::<Option<F>>() };
    if let Some(f) = slot.take() {
        f();
    }
}

/// Runs `f` on this core as an abort point: `Ok` if it returned, `Err(Aborted)` if code
/// inside it called [`abort_current`]. Abort points nest; the innermost one is used.
pub fn run_abortable<F: FnOnce()>(f: F) -> Result<(), Aborted> {
    let point = &ABORT_POINT[super::percpu::core_index()];
    let outer = point.load(Ordering::Relaxed);
    let mut slot = Some(f);
    // SAFETY: `call_once::<F>` gets a pointer to the `Option<F>` it expects, alive for the
    // whole call; the routine records its stack pointer straight into this core's abort
    // point (only this core uses it) and preserves every callee-saved register on both of
    // its ways out, so the compiler's assumptions about this call hold.
    let result =
        unsafe { rexo_run_abortable(call_once::<F>, (&raw mut slot).cast(), point.as_ptr()) };
    point.store(outer, Ordering::Relaxed);
    if result == 0 { Ok(()) } else { Err(Aborted) }
}

/// Runs `f`, kernel code that must not be abandoned half done (it holds kernel locks or
/// leaves the kernel's books half written), with this core's abort point put aside: a
/// panic or fault inside it is the kernel's, a crash report, not the end of the app
/// whose call it serves. Abort points set inside `f` (the app's own code) still work.
/// App code with too little stack left for it (`mem::heap::stack_short`) is ended
/// instead, as a stack overflow, before `f` runs: `f` would overflow where no abort is.
pub fn kernel_section<T>(f: impl FnOnce() -> T) -> T {
    if crate::mem::heap::stack_short() {
        crate::apps::end_app_for(crate::apps::ENDED_BY_STACK_OVERFLOW);
    }
    // Only this core writes its slot: a load and a store, not an atomic swap.
    let point = &ABORT_POINT[super::percpu::core_index()];
    let outer = point.load(Ordering::Relaxed);
    point.store(outer | SET_ASIDE, Ordering::Relaxed);
    let result = f();
    point.store(outer, Ordering::Relaxed);
    result
}

/// Whether this core is inside an abort point (not put aside by a kernel section).
pub fn can_abort() -> bool {
    let point = ABORT_POINT[super::percpu::core_index()].load(Ordering::Relaxed);
    point != 0 && point & SET_ASIDE == 0
}

/// Whether this core runs for an app: inside an abort point, maybe put aside by kernel
/// sections (the kernel code an app's call reached).
pub fn serves_app() -> bool {
    ABORT_POINT[super::percpu::core_index()].load(Ordering::Relaxed) > SET_ASIDE
}

/// Abandons everything since this core's innermost abort point and returns from it with
/// `Err(Aborted)`; a kernel panic where there is none ([`can_abort`]). Interrupts stay as
/// the abort left them, off after a panic or a fault (the routine does not touch them):
/// a caller of [`run_abortable`] that got `Err(Aborted)` turns them back on when its code
/// runs with them on (`apps::ended_reason`, `devices::run_app_code`).
pub fn abort_current() -> ! {
    assert!(can_abort(), "an abort with no abort point on this core");
    let point = ABORT_POINT[super::percpu::core_index()].load(Ordering::Relaxed);
    // SAFETY: `point` was recorded by `rexo_run_abortable` on this core, whose frame is
    // still live (abort points are cleared when that call returns); everything above it
    // on the stack is abandoned, and the routine restores the callee-saved registers.
    unsafe { rexo_abort_to(point) }
}
