//! The text of Rexo's crash reports, apart from the kernel so that it is tested on the
//! host: the registers an interrupt saves ([`InterruptFrame`], whose layout the kernel's
//! entry stubs push), the names of the CPU's exceptions, what a page fault's error code
//! means, and the register dump.
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

use core::fmt;

/// The registers saved on interrupt entry, lowest address first: the kernel's common
/// stub pushes the general registers after the per-vector stub pushed the vector and
/// (for vectors without one) a zero error code, on top of what the CPU pushed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)] // the registers are named by the architecture
pub struct InterruptFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// The vector number (pushed by the per-vector stub).
    pub vector: u64,
    /// The CPU's error code, or 0 for vectors without one.
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// The CPU's exceptions (vectors 0-31), by vector (Intel SDM vol. 3, table 6-1).
const EXCEPTION_NAMES: [&str; 32] = [
    "divide error",
    "debug",
    "non-maskable interrupt",
    "breakpoint",
    "overflow",
    "bound range exceeded",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor segment overrun",
    "invalid TSS",
    "segment not present",
    "stack-segment fault",
    "general protection fault",
    "page fault",
    "reserved (15)",
    "x87 floating-point error",
    "alignment check",
    "machine check",
    "SIMD floating-point error",
    "virtualization exception",
    "control protection exception",
    "reserved (22)",
    "reserved (23)",
    "reserved (24)",
    "reserved (25)",
    "reserved (26)",
    "reserved (27)",
    "hypervisor injection exception",
    "VMM communication exception",
    "security exception",
    "reserved (31)",
];

/// The name of exception `vector` (its low 5 bits).
pub fn exception_name(vector: u64) -> &'static str {
    EXCEPTION_NAMES[(vector & 31) as usize]
}

/// What a page fault with `error_code` at `cr2` was: `write of an unmapped page at
/// 0x10 (null pointer)`.
pub struct PageFault {
    /// The CPU's error code.
    pub error_code: u64,
    /// The address touched.
    pub cr2: u64,
}

impl fmt::Display for PageFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.error_code;
        let access = if e & 0x10 != 0 {
            "instruction fetch"
        } else if e & 2 != 0 {
            "write"
        } else {
            "read"
        };
        let why = if e & 1 != 0 {
            "violating protection"
        } else {
            "of an unmapped page"
        };
        let what = if self.cr2 < 4096 {
            "null pointer"
        } else {
            "address"
        };
        write!(f, "{access} {why} at {:#x} ({what})", self.cr2)
    }
}

/// The register dump of a report: the frame and the control registers, six lines.
pub struct Registers<'a> {
    /// The saved registers.
    pub frame: &'a InterruptFrame,
    /// Control registers 0, 2, 3 and 4.
    pub cr: [u64; 4],
}

impl fmt::Display for Registers<'_> {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let f = self.frame;
        let [cr0, cr2, cr3, cr4] = self.cr;
        writeln!(
            out,
            "rip={:#018x} rsp={:#018x} rflags={:#018x} cr2={cr2:#018x}",
            f.rip, f.rsp, f.rflags
        )?;
        writeln!(
            out,
            "rax={:#018x} rbx={:#018x} rcx={:#018x} rdx={:#018x}",
            f.rax, f.rbx, f.rcx, f.rdx
        )?;
        writeln!(
            out,
            "rsi={:#018x} rdi={:#018x} rbp={:#018x} r8 ={:#018x}",
            f.rsi, f.rdi, f.rbp, f.r8
        )?;
        writeln!(
            out,
            "r9 ={:#018x} r10={:#018x} r11={:#018x} r12={:#018x}",
            f.r9, f.r10, f.r11, f.r12
        )?;
        writeln!(
            out,
            "r13={:#018x} r14={:#018x} r15={:#018x} cr3={cr3:#018x}",
            f.r13, f.r14, f.r15
        )?;
        write!(
            out,
            "cs={:#x} ss={:#x} cr0={cr0:#x} cr4={cr4:#x}",
            f.cs, f.ss
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exceptions_are_named_by_vector() {
        assert_eq!(exception_name(0), "divide error");
        assert_eq!(exception_name(14), "page fault");
        assert_eq!(exception_name(8), "double fault");
        assert_eq!(
            exception_name(32 + 13),
            "general protection fault",
            "low 5 bits"
        );
    }

    #[test]
    fn page_faults_say_what_was_touched() {
        let text = |error_code, cr2| format!("{}", PageFault { error_code, cr2 });
        assert_eq!(
            text(2, 0x10),
            "write of an unmapped page at 0x10 (null pointer)"
        );
        assert_eq!(
            text(0x11, 0x20_0000),
            "instruction fetch violating protection at 0x200000 (address)"
        );
        assert_eq!(
            text(0, 0xdead_0000),
            "read of an unmapped page at 0xdead0000 (address)"
        );
    }

    #[test]
    fn the_dump_has_every_register_once() {
        let frame = InterruptFrame {
            rax: 0xA,
            r15: 0xF,
            rip: 0x20_0123,
            cs: 8,
            ..Default::default()
        };
        let text = format!(
            "{}",
            Registers {
                frame: &frame,
                cr: [0x11, 0x22, 0x33, 0x44]
            }
        );
        assert_eq!(text.lines().count(), 6);
        for needle in [
            "rax=0x000000000000000a",
            "r15=0x000000000000000f",
            "rip=0x0000000000200123",
            "cr2=0x0000000000000022",
            "cr3=0x0000000000000033",
            "cs=0x8",
            "cr0=0x11 cr4=0x44",
        ] {
            assert!(text.contains(needle), "{needle} in\n{text}");
        }
        assert_eq!(
            core::mem::size_of::<InterruptFrame>(),
            22 * 8,
            "the stubs push 22 words"
        );
    }
}
