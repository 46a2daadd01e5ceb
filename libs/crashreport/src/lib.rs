//! The text of Rexo's crash reports, apart from the kernel so that it is tested on the
//! host: the registers an interrupt saves ([`InterruptFrame`], whose layout the kernel's
//! entry stubs push), the names of the CPU's exceptions, what a page fault's error code
//! means, the register dump, and the walk of a frame-pointer chain over the stacks it may
//! read ([`return_addresses`]).
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

/// The bounds of a stack: `[bottom, top)`. The page below `bottom` is the stack's unmapped
/// guard page, so nothing below `bottom` may be read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackBounds {
    /// Lowest usable address (just above the guard page).
    pub bottom: u64,
    /// One past the highest usable address; the initial stack pointer.
    pub top: u64,
}

impl StackBounds {
    /// Whether `[addr, addr + len)` lies inside the stack.
    pub fn contains(&self, addr: u64, len: u64) -> bool {
        addr >= self.bottom && addr.checked_add(len).is_some_and(|end| end <= self.top)
    }

    /// Whether `addr` lies in the stack's guard page, the 4 KiB page just below it (a
    /// stack that was never set up, bottom 0, has none).
    pub fn guard_holds(&self, addr: u64) -> bool {
        self.bottom != 0 && addr < self.bottom && addr >= self.bottom.saturating_sub(4096)
    }
}

/// The most return addresses [`return_addresses`] yields.
pub const MAX_FRAMES: usize = 63;

/// The return addresses along the frame-pointer chain that starts at `rbp`, innermost
/// first, at most [`MAX_FRAMES`]. Each frame record (the caller's frame pointer, then the
/// return address) is read with `read_word` only when it is 8-byte aligned and lies whole
/// inside one of `stacks` (so never in a guard page between them); the walk stops at the
/// first record that does not, at a zero return address, and at a frame pointer that does
/// not climb (a loop or a corrupt chain).
pub fn return_addresses<'a, R>(
    rbp: u64,
    stacks: &'a [StackBounds],
    read_word: R,
) -> impl Iterator<Item = u64> + 'a
where
    R: FnMut(u64) -> u64 + 'a,
{
    FrameChain {
        rbp,
        stacks,
        read_word,
        left: MAX_FRAMES,
    }
}

/// The walk behind [`return_addresses`].
struct FrameChain<'a, R> {
    rbp: u64,
    stacks: &'a [StackBounds],
    read_word: R,
    left: usize,
}

impl<R: FnMut(u64) -> u64> Iterator for FrameChain<'_, R> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let rbp = self.rbp;
        let readable =
            rbp.is_multiple_of(8) && self.stacks.iter().any(|stack| stack.contains(rbp, 16));
        if self.left == 0 || rbp == 0 || !readable {
            return None;
        }
        let (next, ret) = ((self.read_word)(rbp), (self.read_word)(rbp + 8));
        // Ends the walk after this frame unless the chain climbs, and at once at a zero
        // return address (the chain's end).
        self.rbp = if next > rbp && ret != 0 { next } else { 0 };
        self.left -= 1;
        (ret != 0).then_some(ret)
    }
}

impl<R: FnMut(u64) -> u64> core::iter::FusedIterator for FrameChain<'_, R> {}

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

/// What a page fault with `error_code` at `cr2` was: the access, why (an unmapped
/// page, a protection violation, a reserved bit set in a page-table entry; a protection
/// key or the shadow stack, named after it) and the address: `write of an unmapped page
/// at 0x10 (null pointer)`.
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
        // Error code bits (Intel SDM Vol. 3A, 4.7): P (0), W (1), RSVD (3), I (4), PK (5),
        // SS (6).
        let why = if e & 0x8 != 0 {
            "with a reserved bit set in a page-table entry"
        } else if e & 1 != 0 {
            "violating protection"
        } else {
            "of an unmapped page"
        };
        let key = if e & 0x20 != 0 {
            " (protection key)"
        } else {
            ""
        };
        let shadow = if e & 0x40 != 0 { " (shadow stack)" } else { "" };
        let what = if self.cr2 < 4096 {
            "null pointer"
        } else {
            "address"
        };
        write!(f, "{access} {why}{key}{shadow} at {:#x} ({what})", self.cr2)
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
        // A reserved bit comes with P set, and is what went wrong.
        assert_eq!(
            text(0x9, 0x40_0000),
            "read with a reserved bit set in a page-table entry at 0x400000 (address)"
        );
        assert_eq!(
            text(0x23, 0x40_0000),
            "write violating protection (protection key) at 0x400000 (address)"
        );
        assert_eq!(
            text(0x43, 0x40_0000),
            "write violating protection (shadow stack) at 0x400000 (address)"
        );
    }

    /// A core's interrupt stacks as the kernel lays them out: one region of 4 KiB stacks,
    /// each above its own unmapped guard page.
    const IST: [StackBounds; 3] = [
        StackBounds {
            bottom: 0x11000,
            top: 0x12000,
        },
        StackBounds {
            bottom: 0x13000,
            top: 0x14000,
        },
        StackBounds {
            bottom: 0x15000,
            top: 0x16000,
        },
    ];

    /// Walks the chain from `rbp` over `memory` (address, word), panicking on a read of
    /// any address outside `stacks`.
    fn walk(rbp: u64, stacks: &[StackBounds], memory: &[(u64, u64)]) -> Vec<u64> {
        return_addresses(rbp, stacks, |addr| {
            assert!(
                stacks.iter().any(|s| s.contains(addr, 8)),
                "read {addr:#x}, outside the stacks"
            );
            memory
                .iter()
                .find(|(at, _)| *at == addr)
                .map_or(0, |(_, word)| *word)
        })
        .collect()
    }

    #[test]
    fn a_chain_is_followed_up_the_stack() {
        let memory = [
            (0x11f00, 0x11f80),
            (0x11f08, 0x20_0100),
            (0x11f80, 0),
            (0x11f88, 0x20_0200),
        ];
        assert_eq!(walk(0x11f00, &IST, &memory), [0x20_0100, 0x20_0200]);
        // A zero return address ends it; so does a frame pointer that does not climb.
        assert_eq!(walk(0x11f80, &IST, &[(0x11f80, 0x11f90)]), []);
        assert_eq!(
            walk(0x11f00, &IST, &[(0x11f00, 0x11f00), (0x11f08, 0x20_0100)]),
            [0x20_0100]
        );
        // An unaligned frame pointer or none at all reads nothing.
        assert_eq!(walk(0x11f04, &IST, &memory), []);
        assert_eq!(walk(0, &IST, &memory), []);
    }

    #[test]
    fn a_frame_in_a_guard_page_is_not_read() {
        // The guard pages of the second and third stacks lie between the stacks, inside
        // the region the three span; a frame pointer there must end the walk unread.
        for rbp in [
            0x12000, 0x12ff0, 0x14000, 0x14800, 0x10ff8, 0x11ff8, 0x16000,
        ] {
            assert_eq!(walk(rbp, &IST, &[]), [], "{rbp:#x}");
        }
        // A chain that climbs out of one stack into the guard page above it stops there.
        let memory = [(0x11ff0, 0x12010), (0x11ff8, 0x20_0100)];
        assert_eq!(walk(0x11ff0, &IST, &memory), [0x20_0100]);
    }

    #[test]
    fn a_guard_page_is_the_page_below_each_stack() {
        let [first, second, _] = IST;
        assert!(first.guard_holds(0x10000) && first.guard_holds(0x10fff));
        assert!(!first.guard_holds(0xffff) && !first.guard_holds(0x11000));
        assert!(second.guard_holds(0x12000) && !first.guard_holds(0x12000));
        assert!(!StackBounds::default().guard_holds(0));
    }

    #[test]
    fn a_looping_chain_stops_after_the_most_frames() {
        let stack = [StackBounds {
            bottom: 0x1000,
            top: 0x100000,
        }];
        let frames = return_addresses(0x1000, &stack, |addr| {
            if addr.is_multiple_of(16) {
                addr + 16
            } else {
                0x20_0000
            }
        });
        assert_eq!(frames.count(), MAX_FRAMES);
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
