//! The two boot entries (PVH and Multiboot2) and the 32-bit trampoline into long mode.
//!
//! Both loaders enter in 32-bit protected mode with paging off. The trampoline reads the
//! time stamp counter first (the boot clock starts at the kernel's first instruction),
//! records which protocol brought us here, identity-maps the first 4 GiB with 2 MiB
//! pages, enables long mode and calls [`crate::kernel_main`] on the boot stack. The
//! kernel then builds its real page tables (all RAM, device holes uncached).
//!
//! `.bss` is not zeroed here: it is the part of the kernel's writable `PT_LOAD` segment
//! past its file size, which the ELF format defines to read as zero, and every loader
//! Rexo boots from loads the ELF that way (QEMU's PVH loader, GRUB's Multiboot2 loader,
//! Firecracker's and cloud-hypervisor's into fresh guest memory). Zeroing it again cost
//! 0.11 ms of every boot under TCG (1 core, median of 15), where each step of a `rep stos`
//! is a loop turn.

use core::arch::global_asm;

/// Bytes of the boot core's first stack (in `.bss`); the boot core moves to a guarded
/// stack as soon as the frame allocator runs.
pub const BOOT_STACK_BYTES: usize = 64 * 1024;

/// Which loader started the kernel (the value the trampoline passes in `edi`).
pub const PROTOCOL_PVH: u32 = 1;
/// Multiboot2 (GRUB).
pub const PROTOCOL_MULTIBOOT2: u32 = 2;

/// CR0 in long mode, which both trampolines (this one and the other cores', in `smp`)
/// load whole: PE (bit 0, protected mode), MP (1, WAIT obeys TS), ET (4), NE (5, x87
/// errors reported natively), WP (16, read-only pages bind ring 0 too) and PG (31,
/// paging); EM (2), NW (29) and CD (30), which INIT keeps as they were, stay clear: x87
/// and SSE instructions run, caching is on.
pub const CR0_LONG_MODE: u32 = 1 | (1 << 1) | (1 << 4) | (1 << 5) | (1 << 16) | (1 << 31);
/// The CR4 bits both trampolines set: PAE (bit 5, needed by long mode), MCE (6: a machine
/// check reaches vector 18, where with it clear it shuts the core down), OSFXSR (9, SSE
/// and FXSAVE) and OSXMMEXCPT (10, SIMD exceptions as #XM).
pub const CR4_BOOT_BITS: u32 = (1 << 5) | (1 << 6) | (1 << 9) | (1 << 10);

global_asm!(
    r#"
    // ---- Multiboot2 header (GRUB) ------------------------------------------------
    .section .multiboot2_header, "a"
    .balign 8
rexo_mb2_header:
    .long 0xE85250D6                                  // magic
    .long 0                                           // architecture: i386 protected mode
    .long rexo_mb2_header_end - rexo_mb2_header       // header length
    .long 0x100000000 - (0xE85250D6 + (rexo_mb2_header_end - rexo_mb2_header))
    // framebuffer tag (optional): ask for 1024x768x32, the loader may give another mode
    .balign 8
    .short 5
    .short 1
    .long 20
    .long 1024
    .long 768
    .long 32
    // module alignment tag: modules start on page boundaries
    .balign 8
    .short 6
    .short 0
    .long 8
    // end tag
    .balign 8
    .short 0
    .short 0
    .long 8
rexo_mb2_header_end:

    // ---- PVH note (QEMU -kernel, Firecracker, cloud-hypervisor) ------------------------
    .section .note.Xen, "a", @note
    .balign 4
    .long 4                                           // name size ("Xen\0")
    .long 4                                           // descriptor size
    .long 18                                          // XEN_ELFNOTE_PHYS32_ENTRY
    .asciz "Xen"
    .balign 4
    .long rexo_pvh_entry
    .balign 4

    // ---- Boot data ------------------------------------------------------------------------
    .section .data.rexo_boot, "aw"
    .balign 8
    .global rexo_boot_tsc
rexo_boot_tsc:
    .quad 0
rexo_boot_protocol:
    .long 0
rexo_boot_info:
    .long 0
rexo_boot_magic:
    .long 0
    .balign 8
rexo_boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF                          // 0x08: 64-bit code, ring 0
    .quad 0x00CF92000000FFFF                          // 0x10: data, ring 0
rexo_boot_gdt_end:
rexo_boot_gdt_ptr:
    .short rexo_boot_gdt_end - rexo_boot_gdt - 1
    .long rexo_boot_gdt

    // ---- Boot page tables and stack ---------------------------------------------------
    .section .bss.rexo_boot, "aw", @nobits
    .balign 4096
    .global rexo_boot_pml4
rexo_boot_pml4:
    .skip 4096
rexo_boot_pdpt:
    .skip 4096
rexo_boot_pd:
    .skip 4096 * 4
    // A page below the boot stack that the kernel unmaps once its own page tables are in:
    // an overflow of the boot stack then faults instead of overwriting the page tables.
    .balign 4096
    .global rexo_boot_stack_guard
rexo_boot_stack_guard:
    .skip 4096
rexo_boot_stack_bottom:
    .skip {stack_bytes}
    .global rexo_boot_stack_top
rexo_boot_stack_top:

    // ---- 32-bit entries ---------------------------------------------------------------
    .section .boot.text, "ax"
    .code32
    .global rexo_pvh_entry
rexo_pvh_entry:
    // PVH: ebx = physical address of hvm_start_info. eax is free.
    rdtsc
    mov dword ptr [rexo_boot_tsc], eax
    mov dword ptr [rexo_boot_tsc + 4], edx
    mov dword ptr [rexo_boot_protocol], {pvh}
    mov dword ptr [rexo_boot_info], ebx
    jmp rexo_common32

    .global rexo_multiboot2_entry
rexo_multiboot2_entry:
    // Multiboot2: eax = magic, ebx = physical address of the boot information.
    mov esi, eax
    rdtsc
    mov dword ptr [rexo_boot_tsc], eax
    mov dword ptr [rexo_boot_tsc + 4], edx
    mov dword ptr [rexo_boot_protocol], {mb2}
    mov dword ptr [rexo_boot_info], ebx
    mov dword ptr [rexo_boot_magic], esi

rexo_common32:
    cli
    cld
    // Identity map 0..4 GiB with 2 MiB pages: 4 page directories of 512 entries.
    mov edi, offset rexo_boot_pd
    mov eax, 0x83                                     // present | writable | 2 MiB page
    xor edx, edx                                      // high half of the entry
    mov ecx, 2048
2:
    mov dword ptr [edi], eax
    mov dword ptr [edi + 4], edx
    add eax, 0x200000
    adc edx, 0
    add edi, 8
    dec ecx
    jnz 2b
    // PDPT entries 0..3 point at the 4 page directories.
    mov edi, offset rexo_boot_pdpt
    mov eax, offset rexo_boot_pd
    or eax, 0x3
    mov ecx, 4
3:
    mov dword ptr [edi], eax
    add eax, 4096
    add edi, 8
    dec ecx
    jnz 3b
    mov eax, offset rexo_boot_pdpt
    or eax, 0x3
    mov dword ptr [rexo_boot_pml4], eax

    // PAE, MCE, SSE (OSFXSR, OSXMMEXCPT), CR3, EFER.LME, CR0 loaded whole with paging on.
    mov eax, cr4
    or eax, {cr4}
    mov cr4, eax
    mov eax, offset rexo_boot_pml4
    mov cr3, eax
    mov ecx, 0xC0000080
    rdmsr
    or eax, 1 << 8
    wrmsr
    mov eax, {cr0}
    mov cr0, eax

    lgdt [rexo_boot_gdt_ptr]
    // Far jump to the 64-bit code segment, encoded by bytes (see MACHINE-FACTS).
    .byte 0xEA
    .long rexo_long_mode
    .short 0x08

    .code64
rexo_long_mode:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    lea rsp, [rip + rexo_boot_stack_top]
    xor ebp, ebp                                      // ends the frame-pointer chain
    mov edi, dword ptr [rip + rexo_boot_protocol]
    mov esi, dword ptr [rip + rexo_boot_info]
    mov edx, dword ptr [rip + rexo_boot_magic]
    call {main}
    ud2
    "#,
    stack_bytes = const BOOT_STACK_BYTES,
    pvh = const PROTOCOL_PVH,
    mb2 = const PROTOCOL_MULTIBOOT2,
    cr0 = const CR0_LONG_MODE, cr4 = const CR4_BOOT_BITS,
    main = sym crate::kernel_main,
);

unsafe extern "C" {
    /// TSC value read by the kernel's first instruction.
    static rexo_boot_tsc: u64;
    /// The page below the boot stack.
    static rexo_boot_stack_guard: u8;
}

/// The page below the boot stack, to be unmapped as its guard.
pub fn boot_stack_guard() -> u64 {
    (&raw const rexo_boot_stack_guard) as u64
}

/// The time stamp counter at the kernel's first instruction.
pub fn boot_tsc() -> u64 {
    // SAFETY: written once by the trampoline before any Rust code runs, read-only after.
    unsafe { core::ptr::read_volatile(&raw const rexo_boot_tsc) }
}
