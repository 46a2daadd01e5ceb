//! Crash reports: for a CPU exception or a Rust panic, on whichever core it happens. The
//! report names the cause, the core, every register and a symbolized backtrace (frame
//! pointers plus the kernel's own symbol table), stops the other cores with an NMI and
//! exits QEMU with the failure status (or halts every core on hardware).

#![allow(unsafe_code)] // reading the stack and the symbol-table section; provoking faults

use crate::arch::idt::{InterruptFrame, exception};
use crate::arch::{cpu, percpu, smp};
use crate::{kprint, kprintln};
use core::{fmt::Arguments, fmt::Display, panic::PanicInfo, sync::atomic::Ordering::SeqCst};
use rexo_crashreport::{PageFault, Registers, exception_name};

#[used]
#[unsafe(link_section = ".rexo_symtab")]
static SYMTAB_RESERVED: [u8; rexo_symtab::RESERVED_BYTES] = [0; rexo_symtab::RESERVED_BYTES];

unsafe extern "C" {
    static __rexo_symtab_start: u8;
    static __rexo_symtab_end: u8;
    static rexo_boot_stack_top: u8;
}

/// The symbol table `xtask` wrote into the kernel image after linking.
pub(crate) fn symbols() -> Option<rexo_symtab::SymbolTable<'static>> {
    let start = &raw const __rexo_symtab_start;
    let len = &raw const __rexo_symtab_end as usize - start as usize;
    // SAFETY: the linker script brackets the `.rexo_symtab` section with these symbols;
    // the section is read-only data of the kernel image. Reading it through the opaque
    // linker symbols (not through the zero-initialised static) stops the compiler from
    // assuming its contents.
    let bytes = unsafe { core::slice::from_raw_parts(start, len) };
    rexo_symtab::SymbolTable::parse(bytes).ok()
}

/// The stacks a backtrace on this core may read: its kernel stack, each of its interrupt
/// stacks, and the boot stack.
fn readable_stacks() -> [percpu::StackBounds; 2 + crate::arch::gdt::IST_STACKS] {
    let core = percpu::current();
    let boot_top = &raw const rexo_boot_stack_top as u64;
    let boot = percpu::StackBounds {
        bottom: boot_top - crate::arch::entry::BOOT_STACK_BYTES as u64,
        top: boot_top,
    };
    let ist = core.interrupt_stacks();
    core::array::from_fn(|i| match i {
        0 => core.stack(),
        1 => boot,
        _ => ist[i - 2],
    })
}

fn print_frame(index: usize, addr: u64, table: Option<&rexo_symtab::SymbolTable<'_>>) {
    // A return address points after the call: look up the call instruction itself.
    let lookup = if index == 0 {
        addr
    } else {
        addr.saturating_sub(1)
    };
    match table.and_then(|t| t.lookup(lookup)) {
        Some((name, offset)) => kprintln!(
            "  #{index:<2} {addr:#018x} {name}+{:#x}",
            offset + (addr - lookup)
        ),
        None => kprintln!("  #{index:<2} {addr:#018x} ?"),
    }
}

/// Prints the backtrace starting at `rip` with frame pointer `rbp`.
fn print_backtrace(rip: u64, rbp: u64) {
    let table = symbols();
    if table.is_none() {
        kprintln!("backtrace: (no symbol table in this image: build it with `cargo xtask build`)");
    } else {
        kprintln!("backtrace:");
    }
    print_frame(0, rip, table.as_ref());
    let stacks = readable_stacks();
    // SAFETY: the walk reads only aligned words inside `stacks`, this core's mapped stacks.
    let read_word = |addr: u64| unsafe { core::ptr::read(addr as *const u64) };
    for (index, ret) in rexo_crashreport::return_addresses(rbp, &stacks, read_word).enumerate() {
        print_frame(index + 1, ret, table.as_ref());
    }
}

/// Marks this core's crash under way and stops the other cores with an NMI; a core that
/// finds a crash under way already stops here instead ([`stopped_by_other_core`]).
fn start_report() {
    if !crate::console::begin_crash_report() {
        stopped_by_other_core();
    }
    smp::nmi_other_cores();
}

fn finish_report() -> ! {
    kprintln!("!!! rexo: halted");
    crate::power::exit_failure()
}

/// Called by the interrupt dispatcher for vectors 0-31. A fault inside an app (in an abort
/// point, outside any kernel section) that ends it alone returns to its abort point: a
/// page fault in memory taken back from it, a double fault of its stack overflowing.
pub fn exception(frame: &InterruptFrame) {
    let (vector, cr2, core) = (frame.vector as u8, cpu::cr2(), percpu::core_index());
    // A core halted outside the running ones (`smp.stall=`'s, one late behind it, or one
    // not yet alive) halts again on an NMI: a stray one, as a core parked in the trampoline.
    let outside = core >= crate::PLANNED_CORES.load(SeqCst) || (core > 0 && !smp::alive(core));
    if vector == exception::NMI && (crate::console::crashing_core().is_some() || outside) {
        stopped_by_other_core();
    }
    if vector == exception::PAGE_FAULT && crate::arch::abort::can_abort() {
        crate::apps::on_page_fault(cr2);
    }
    // An app (its code runs on this core's stack) that overflowed it: the page fault could
    // not be pushed, a double fault came instead. It ends the app's task as a panic does,
    // recorded as an overflow (`ApiError::StackOverflow`).
    let overflow = vector == exception::DOUBLE_FAULT && percpu::current().stack().guard_holds(cr2);
    if overflow && crate::arch::abort::can_abort() {
        crate::apps::ENDED_BY[core].store(crate::apps::ENDED_BY_STACK_OVERFLOW, SeqCst);
        panic!("the app overflowed its stack ({cr2:#x} is the stack's guard page)");
    }
    start_report();
    crate::ktest::report_failure_if_running();
    let (name, error_code) = (exception_name(frame.vector), frame.error_code);
    kprintln!(
        "!!! rexo: crash on core {core}: {name} (vector {vector}, error code {error_code:#x})"
    );
    if vector == exception::PAGE_FAULT {
        kprintln!("!!! rexo: {}", PageFault { error_code, cr2 });
    }
    if (vector == exception::PAGE_FAULT || vector == exception::DOUBLE_FAULT) && guard_page_hit(cr2)
    {
        kprintln!("!!! rexo: {cr2:#x} is a stack guard page: kernel stack overflow");
    }
    print_registers(frame, cr2);
    print_backtrace(frame.rip, frame.rbp);
    finish_report()
}

/// Whether `addr` is in the guard page of one of this core's stacks (its kernel stack,
/// the boot stack, an interrupt stack).
fn guard_page_hit(addr: u64) -> bool {
    readable_stacks()
        .iter()
        .any(|stack| stack.guard_holds(addr))
}

fn print_registers(frame: &InterruptFrame, cr2: u64) {
    let cr = [cpu::cr0(), cr2, cpu::cr3(), cpu::cr4()];
    kprintln!("{}", Registers { frame, cr });
}

/// The other side of the crash NMI: this core stops because another one crashed. The
/// crashing core comes here only if it crashed again inside its own report: it says so
/// and ends the run at once, without a backtrace (which may be what crashed).
pub fn stopped_by_other_core() -> ! {
    if let Some(core) = crate::console::crashing_core().filter(|&c| c == percpu::core_index()) {
        kprintln!("\n!!! rexo: crash inside the crash report on core {core}");
        crate::power::exit_failure()
    }
    cpu::halt_forever()
}

/// The panic handler: the same report as for an exception, with the message and location.
#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    let registers = registers_here();
    cpu::disable_interrupts();
    if crate::arch::abort::can_abort() && crate::console::crashing_core().is_none() {
        app_panic(info, &registers);
    }
    start_report();
    crate::ktest::report_failure_if_running();
    print_panic_headline(
        format_args!("!!! rexo: panic on core {}", percpu::core_index()),
        info,
        info.message(),
    );
    kprintln!("!!! rexo: registers as the panic handler found them:");
    print_registers(&registers, cpu::cr2());
    print_backtrace(registers.rip, registers.rbp);
    finish_report()
}

/// Prints `what`, then the panic's location and `message`, as one line.
fn print_panic_headline(what: Arguments<'_>, info: &PanicInfo<'_>, message: impl Display) {
    kprint!("{what}");
    if let Some(location) = info.location() {
        kprint!(
            " at {}:{}:{}",
            location.file(),
            location.line(),
            location.column()
        );
    }
    kprintln!(": {message}");
}

/// Every general register, `rip` (this code), `rflags` and the segments, as the caller
/// has them here; the vector and error code stay 0. One register, the one the compiler
/// picks to hold the frame's address, shows that address instead of its own value.
#[inline(always)] // the caller's registers, not a callee's
fn registers_here() -> InterruptFrame {
    use core::mem::offset_of;
    const _: () = assert!(offset_of!(InterruptFrame, rax) == 112);
    const _: () = assert!(offset_of!(InterruptFrame, rip) == 136);
    const _: () = assert!(offset_of!(InterruptFrame, ss) == 168);
    let mut frame = InterruptFrame::default();
    let at: *mut InterruptFrame = &mut frame;
    // SAFETY: writes only `frame` (at the field offsets of its `repr(C)` layout); the
    // push of `rflags` is popped at once (the kernel's target has no red zone).
    unsafe {
        core::arch::asm!(
            "mov [{f}], r15", "mov [{f} + 8], r14", "mov [{f} + 16], r13", "mov [{f} + 24], r12",
            "mov [{f} + 32], r11", "mov [{f} + 40], r10", "mov [{f} + 48], r9", "mov [{f} + 56], r8",
            "mov [{f} + 64], rbp", "mov [{f} + 72], rdi", "mov [{f} + 80], rsi", "mov [{f} + 88], rdx",
            "mov [{f} + 96], rcx", "mov [{f} + 104], rbx", "mov [{f} + 112], rax",
            "lea {t}, [rip]", "mov [{f} + 136], {t}", "mov {t}, cs", "mov [{f} + 144], {t}",
            "pushfq", "pop qword ptr [{f} + 152]", "mov [{f} + 160], rsp",
            "mov {t}, ss", "mov [{f} + 168], {t}",
            f = in(reg) at, t = out(reg) _,
        )
    };
    frame
}

/// A panic inside an app (under an abort point): report it, then end only that app by
/// returning to the abort point `apps::run` set. The kernel and the other cores go on.
fn app_panic(info: &PanicInfo<'_>, registers: &InterruptFrame) -> ! {
    // No app code runs under the console lock (an app's text is formatted before it is
    // taken): this core holds it only if kernel code writing for the app panicked.
    crate::console::release_after_abort();
    // The message is the app's own `Display` code (it may loop): formatted here, before
    // the console lock is taken, as an app's log line is (control characters escaped).
    let message = <rexo_logline::LogLine>::format(format_args!("{}", info.message()));
    // The app may have left a line unfinished (`write_str` text without its newline):
    // start a fresh one.
    print_panic_headline(
        format_args!("\nrexo: an app panicked on core {}", percpu::core_index()),
        info,
        message.as_str(),
    );
    print_backtrace(registers.rip, registers.rbp);
    crate::arch::abort::abort_current()
}

/// Provokes the crash asked for on the command line (`crash=`), to test the reports.
pub fn provoke(kind: rexo_cmdline::Crash) -> ! {
    match kind {
        rexo_cmdline::Crash::PageFault => {
            // SAFETY: not safe at all, on purpose: page 0 is unmapped, so this read faults
            // and the page-fault report is what the crash test checks.
            let value =
                unsafe { core::ptr::read_volatile(core::ptr::without_provenance::<u64>(8)) };
            panic!("reading the null page returned {value:#x} instead of faulting");
        }
        rexo_cmdline::Crash::Divide => {
            // SAFETY: a division by zero in assembly raises #DE (Rust would panic first).
            unsafe {
                core::arch::asm!("xor edx, edx", "xor ecx, ecx", "mov eax, 1", "div ecx", out("eax") _, out("ecx") _, out("edx") _)
            };
            panic!("dividing by zero did not raise a divide error");
        }
        rexo_cmdline::Crash::Panic => panic!("crash test: the kernel panics on request"),
        rexo_cmdline::Crash::NestedPanic => panic!("{}", core::fmt::from_fn(|_| panic!("inside"))),
        rexo_cmdline::Crash::StackOverflow => {
            let depth = recurse(0);
            panic!("recursed {depth} times without reaching the stack guard page");
        }
        rexo_cmdline::Crash::PanicOnOtherCore => {
            let core = crate::smp_cores() - 1;
            crate::sched::submit_to(core, move || {
                panic!("crash test: core {core} panics on request")
            })
            .unwrap_or_else(|_| panic!("could not reach core {core}"));
            // The other core's report stops this one (an NMI); wait for it.
            loop {
                crate::sched::run_one(0);
            }
        }
    }
}

/// Recurses without end (each frame keeps 1 KiB alive), until the guard page stops it.
#[allow(unconditional_recursion)] // the point: the stack guard page must end it
fn recurse(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth as u8; 1024]);
    core::hint::black_box(recurse(depth + 1)) + u64::from(frame[0])
}
