# The BareMetal compatibility test: calls every entry of the call table and every
# b_system function that has meaning on Rexo (all but reboot and power-off, which
# exit.S covers), checks the results, and prints "baremetal-test: ok" or
# "baremetal-test: FAILED <what>" through b_output. Returns RAX = 0 (ok) or 1.
# Written for Rexo's tests; linked at 0xFFFF800000000000 like every BareMetal app.

.include "common.inc"

# Fails with message \name unless condition \cc holds (after a cmp/test).
.macro CHECK cc, name
    j\cc 9f
    lea rsi, [rip + \name]
    mov ecx, OFFSET \name\()_len
    jmp fail
9:
.endm

# Known values in every register but RSI and RCX (the output calls' inputs).
.macro SET_REGS
    mov eax, 0xA0
    mov ebx, 0xB0
    mov edx, 0xD0
    mov edi, 0xD1
    mov ebp, 0xB1
    mov r8d, 0x108
    mov r9d, 0x109
    mov r10d, 0x10A
    mov r11d, 0x10B
    mov r12d, 0x10C
    mov r13d, 0x10D
    mov r14d, 0x10E
    mov r15d, 0x10F
.endm

# Checks the SET_REGS values, except in RAX when \rax is 0.
.macro CHECK_REGS rax=1
.if \rax
    cmp rax, 0xA0
    CHECK e, e_clobbered
.endif
    cmp rbx, 0xB0
    CHECK e, e_clobbered
    cmp rdx, 0xD0
    CHECK e, e_clobbered
    cmp rdi, 0xD1
    CHECK e, e_clobbered
    cmp rbp, 0xB1
    CHECK e, e_clobbered
    cmp r8, 0x108
    CHECK e, e_clobbered
    cmp r9, 0x109
    CHECK e, e_clobbered
    cmp r10, 0x10A
    CHECK e, e_clobbered
    cmp r11, 0x10B
    CHECK e, e_clobbered
    cmp r12, 0x10C
    CHECK e, e_clobbered
    cmp r13, 0x10D
    CHECK e, e_clobbered
    cmp r14, 0x10E
    CHECK e, e_clobbered
    cmp r15, 0x10F
    CHECK e, e_clobbered
.endm

# Waits until no other core has a job (b_system 0x16), at most 5 s.
.macro WAIT_IDLE
    SYS 0x00
    mov r14, rax
8:  SYS 0x16
    test rax, rax
    jz 7f
    SYS 0x00
    sub rax, r14
    mov r15, 5000000000
    cmp rax, r15
    CHECK b, e_busy_timeout
    jmp 8b
7:
.endm

.text
.global _start
_start:
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    mov [rip + saved_rsp], rsp
    PRINT m_start

    # b_output keeps every register.
    SET_REGS
    lea rsi, [rip + m_regs]
    mov ecx, OFFSET m_regs_len
    call qword ptr [B_OUTPUT]
    CHECK_REGS
    lea rbx, [rip + m_regs]
    cmp rsi, rbx
    CHECK e, e_clobbered
    cmp rcx, OFFSET m_regs_len
    CHECK e, e_clobbered
    # ... and an unmapped buffer prints nothing and does not crash.
    xor esi, esi
    mov ecx, 16
    call qword ptr [B_OUTPUT]
    # Bytes go to the serial line unchanged: a character split across two calls arrives
    # whole.
    PRINT m_split
    PRINT m_smile_start
    PRINT m_smile_end
    # A buffer over 1 MiB is printed whole: 1 MiB of zeros (the app area is zeroed) and a
    # line after them.
    lea rdi, [rip + big + (1 << 20)]
    lea rsi, [rip + m_big]
    mov ecx, OFFSET m_big_len
    rep movsb
    lea rsi, [rip + big]
    mov ecx, (1 << 20) + OFFSET m_big_len
    call qword ptr [B_OUTPUT]

    # b_user, the table's eighth entry: BareMetal's stub for a user function, which
    # returns at once; every register kept.
    SET_REGS
    lea rsi, [rip + m_regs]
    mov ecx, 0xC0
    call qword ptr [B_USER]
    CHECK_REGS
    lea rbx, [rip + m_regs]
    cmp rsi, rbx
    CHECK e, e_clobbered
    cmp rcx, 0xC0
    CHECK e, e_clobbered

    # b_input: a byte or 0 in AL; nothing else changes.
    SET_REGS
    call qword ptr [B_INPUT]
    cmp rax, 0x100
    CHECK b, e_input
    CHECK_REGS rax=0
    # ... with ZF set exactly when AL is 0, as BareMetal's b_input leaves it (its
    # programs jz on it).
    call qword ptr [B_INPUT]
    setz bl
    test al, al
    setz bh
    cmp bl, bh
    CHECK e, e_input_zf

    # An unmapped frame is refused before any device (the test case looks for the
    # warning).
    xor esi, esi
    mov ecx, 60
    call qword ptr [B_NET_TX]

    # A frame longer than BareMetal's 1522 bytes is refused as such, not as an unmapped
    # buffer, however long (the test case looks for the warning).
    lea rsi, [rip + big]
    mov ecx, 0x200000
    call qword ptr [B_NET_TX]

    # No network or storage device: nothing sent, nothing received, 0 sectors done.
    SET_REGS
    lea rsi, [rip + m_start]
    mov ecx, 60
    call qword ptr [B_NET_TX]
    CHECK_REGS
    SET_REGS
    call qword ptr [B_NET_RX]
    test rcx, rcx
    CHECK z, e_net_rx
    SET_REGS
    lea rdi, [rip + sector]
    mov ecx, 1
    call qword ptr [B_NVS_READ]
    test rcx, rcx
    CHECK z, e_nvs
    SET_REGS
    lea rsi, [rip + sector]
    mov ecx, 1
    call qword ptr [B_NVS_WRITE]
    test rcx, rcx
    CHECK z, e_nvs

    # b_system keeps every register but RAX (RCX stays the function number).
    SET_REGS
    mov ecx, 0x1F
    call qword ptr [B_SYSTEM]
    cmp rcx, 0x1F
    CHECK e, e_clobbered
    CHECK_REGS rax=0

    # 0x00 timecounter and 0x72 delay: 10 ms pass.
    SYS 0x00
    mov r12, rax
    mov eax, 10000
    SYS 0x72
    cmp rax, 10000
    CHECK e, e_kept_rax
    SYS 0x00
    sub rax, r12
    cmp rax, 10000000
    CHECK ae, e_delay
    # 0x1F TSC advances.
    SYS 0x1F
    mov r12, rax
    SYS 0x1F
    cmp rax, r12
    CHECK a, e_tsc
    # 0x01 free memory: at least the 2 MiB the app sits in.
    SYS 0x01
    cmp rax, 2
    CHECK ae, e_mem
    # 0x20-0x24 screen: an answer (0 without a framebuffer), never the error value.
    mov r12d, 0x20
1:  mov rcx, r12
    call qword ptr [B_SYSTEM]
    cmp rax, -1
    CHECK ne, e_screen
    inc r12
    cmp r12, 0x25
    jb 1b
    # An unknown function gives the error value (the test case looks for the warning,
    # given once for the two calls), and so do the functions BareMetal has that Rexo
    # does not provide: 0x02 the mouse, 0x52 and 0x53 the output routine (b_output
    # stays the kernel's), 0x63 the mouse callback.
    SYS 0x99
    cmp rax, -1
    CHECK e, e_unknown
    mov r12d, 0x99
    call unprovided
    mov r12d, 0x02
    call unprovided
    mov r12d, 0x52
    call unprovided
    mov r12d, 0x53
    call unprovided
    mov r12d, 0x63
    call unprovided
    PRINT m_still_output

    # 0x30 the MAC address of interface 0 (0 without one): printed for the test to compare.
    PRINT m_mac
    xor edx, edx
    SYS 0x30
    SYS 0x71
    PRINT m_newline

    # With an interface (a MAC above): an ARP request for QEMU's gateway 10.0.2.2 from
    # 10.0.2.15 goes out through b_net_tx, and b_net_rx hands its answer back where it
    # left it (RDI, an output, as BareMetal's driver buffer) with its length in RCX.
    xor edx, edx
    SYS 0x30
    test rax, rax
    jz 4f
    bswap rax
    shr rax, 16                         # the MAC's six bytes in memory order
    mov [rip + arp_frame + 6], rax      # the source, and the sender's hardware address
    mov [rip + arp_frame + 22], rax     # (each store runs 2 bytes over: put back below)
    mov word ptr [rip + arp_frame + 12], 0x0608
    mov dword ptr [rip + arp_frame + 28], 0x0F02000A
    lea rsi, [rip + arp_frame]
    mov ecx, 60
    xor edx, edx
    call qword ptr [B_NET_TX]
    SYS 0x00
    mov r14, rax
2:  mov rdi, 0xD1                       # a sentinel: b_net_rx sets RDI
    mov rsi, 0x51
    mov ebx, 0xB0
    xor edx, edx
    call qword ptr [B_NET_RX]
    cmp rbx, 0xB0
    CHECK e, e_clobbered
    cmp rsi, 0x51
    CHECK e, e_clobbered
    test rdx, rdx
    CHECK z, e_clobbered
    test rcx, rcx
    jz 1f
    cmp rdi, 0xD1
    CHECK ne, e_net_rx_rdi
    cmp rcx, 42
    jb 1f
    cmp word ptr [rdi + 12], 0x0608     # ARP
    jne 1f
    cmp word ptr [rdi + 20], 0x0200     # a reply
    jne 1f
    cmp dword ptr [rdi + 28], 0x0202000A  # from 10.0.2.2
    je 3f
1:  SYS 0x00                            # none yet, or another frame: poll for 2 s
    sub rax, r14
    mov r15, 2000000000
    cmp rax, r15
    CHECK b, e_arp
    jmp 2b
3:
    PRINT m_arp
4:

    # 0x14/0x15 lock and unlock keep RAX (BareMetal: all registers preserved).
    lea rbx, [rip + lock_word]
    mov rax, rbx
    SYS 0x14
    cmp rax, rbx
    CHECK e, e_kept_rax
    SYS 0x15
    cmp rax, rbx
    CHECK e, e_kept_rax

    # 0x10 core id, 0x11 cores: print the count for the test to compare.
    SYS 0x10
    mov [rip + my_apic], rax
    SYS 0x11
    mov [rip + cores], rax
    cmp rax, 1
    CHECK ae, e_cores
    PRINT m_cores
    mov rax, [rip + cores]
    SYS 0x71
    PRINT m_newline

    # 0x14/0x15 lock, 0x12 smp_set: every other core runs `worker`, which adds 1000
    # to a counter under the lock; this core does the same.
    lea rax, [rip + worker + 1]
    mov rdx, [rip + my_apic]
    SYS 0x12
    test rax, rax
    CHECK z, e_misaligned
    # As BareMetal's smptest: RAX loaded once, then every APIC id 0..255 (this core's
    # too: accepted, and not run there); an accepted call returns the code address in
    # RAX, so RAX stays loaded for the next (after the last core, 0).
    lea r12, [rip + worker]
    xor r13d, r13d                      # calls accepted
    mov rax, r12
    xor edx, edx
2:  SYS 0x12
    cmp rax, r12
    jne 3f
    inc r13
    cmp rdx, [rip + my_apic]
    je 3f
    mov [rip + other_apic], rdx
3:  inc edx
    cmp edx, 256
    jb 2b
    cmp r13, [rip + cores]
    CHECK e, e_smp_set
    call worker
    WAIT_IDLE
    mov rax, [rip + cores]
    imul rax, rax, 1000
    cmp rax, [rip + counter]
    CHECK e, e_lock
    mov rax, [rip + cores]
    cmp rax, [rip + done]
    CHECK e, e_jobs
    popcnt rax, [rip + seen]
    cmp rax, [rip + cores]
    CHECK e, e_seen

    # With a second core: smp_set refuses a busy core, smp_get and busy see the job.
    cmp qword ptr [rip + cores], 2
    jb 5f
    lea rax, [rip + spinner]
    mov rdx, [rip + other_apic]
    SYS 0x12
    lea rbx, [rip + spinner]
    cmp rax, rbx
    CHECK e, e_smp_set_idle
    lea rax, [rip + worker]
    mov rdx, [rip + other_apic]
    SYS 0x12
    test rax, rax
    CHECK z, e_not_refused
    SYS 0x16
    cmp rax, 1
    CHECK e, e_busy
    mov byte ptr [rip + release], 1
    WAIT_IDLE
    lea rbx, [rip + spinner]
    or rbx, 3                           # present and active, as BareMetal's slot
    cmp rbx, [rip + spinner_job]
    CHECK e, e_smp_get
    cmp qword ptr [rip + spinner_busy], 1
    CHECK e, e_busy_entry
5:  # 0x13 smp_get: this core's own slot, the entry it runs (present and active), as
    # BareMetal's boot core's names the payload it runs.
    SYS 0x13
    mov rbx, 0xFFFF800000000003
    cmp rax, rbx
    CHECK e, e_smp_get

    # 0x50/0x51 PCI configuration space through 0xCF8/0xCFC (skipped without PCI).
    xor edx, edx
    SYS 0x50
    cmp eax, 0xFFFFFFFF
    je 6f
    cmp ax, 0xFFFF
    CHECK ne, e_pci
    mov edx, 0x0F                       # 00:00.0, dword 0x3C: interrupt line
    SYS 0x50
    mov r12, rax
    and eax, 0xFFFFFF00
    or eax, 0x5A
    mov rbx, rax
    mov edx, 0x0F
    SYS 0x51
    cmp rax, rbx                        # RAX kept, as BareMetal's os_bus_write
    CHECK e, e_kept_rax
    mov edx, 0x0F
    SYS 0x50
    cmp al, 0x5A
    CHECK e, e_pci
    mov rax, r12
    mov edx, 0x0F
    SYS 0x51
    PRINT m_pci
    # RDX = bus << 24 | device << 19 | function << 16 | register, as BareMetal's
    # os_pci_convert: 00:1F.0 (q35's LPC bridge) register 0, printed for the test.
    PRINT m_pci_lpc
    mov edx, 0x1F << 19
    SYS 0x50
    SYS 0x71
    PRINT m_newline
6:  mov edx, 64
    SYS 0x50
    cmp rax, -1
    CHECK e, e_pci_bad
    mov rdx, 1 << 32                    # segment 1: the ports reach segment 0 alone
    SYS 0x50
    cmp rax, -1
    CHECK e, e_pci_segment

    # 0x60-0x62 callbacks and 0x7D reset keep RAX (BareMetal's callbacks are a bare ret).
    mov r12d, 0x60
1:  lea rax, [rip + worker]
    mov rcx, r12
    call qword ptr [B_SYSTEM]
    lea rbx, [rip + worker]
    cmp rax, rbx
    CHECK e, e_kept_rax
    inc r12
    cmp r12, 0x63
    jb 1b
    mov eax, 0x7D7D
    SYS 0x7D
    cmp rax, 0x7D7D
    CHECK e, e_kept_rax

    # 0x70 dump memory, 0x71 dump RAX (the test case looks for both in the output).
    lea rax, [rip + dump_me]
    mov edx, 16
    SYS 0x70
    lea rbx, [rip + dump_me]
    cmp rax, rbx
    CHECK e, e_kept_rax
    PRINT m_rax
    mov rax, 0x0123456789ABCDEF
    SYS 0x71
    mov rbx, 0x0123456789ABCDEF
    cmp rax, rbx
    CHECK e, e_dump
    PRINT m_newline

    PRINT m_ok
    xor eax, eax
    jmp finish

# RSI, RCX: what failed.
fail:
    push rsi
    push rcx
    PRINT m_failed
    pop rcx
    pop rsi
    call qword ptr [B_OUTPUT]
    PRINT m_newline
    mov eax, 1
finish:
    mov rsp, [rip + saved_rsp]
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    ret

# Calls b_system function R12 with RAX holding a code address; fails unless it returns
# the error value.
unprovided:
    lea rax, [rip + worker]
    mov rcx, r12
    call qword ptr [B_SYSTEM]
    cmp rax, -1
    CHECK e, e_unknown
    ret

# Runs on every core: SSE (on by BareMetal's loader; gcc -m64 code uses it), 1000
# increments under the lock, then marks its APIC id.
.balign 16
worker:
    xorps xmm0, xmm0
    addps xmm0, xmm0
    push r12
    mov r12d, 1000
1:  lea rax, [rip + lock_word]
    SYS 0x14
    mov rax, [rip + counter]
    inc rax
    mov [rip + counter], rax
    lea rax, [rip + lock_word]
    SYS 0x15
    dec r12d
    jnz 1b
    SYS 0x10
    lock bts qword ptr [rip + seen], rax
    lock inc qword ptr [rip + done]
    pop r12
    ret

# Records its own job (0x13 smp_get) and whether another core is busy (0x16: the entry
# core is), then runs until the main program releases it.
.balign 16
spinner:
    SYS 0x13
    mov [rip + spinner_job], rax
    SYS 0x16
    mov [rip + spinner_busy], rax
1:  pause
    cmp byte ptr [rip + release], 0
    je 1b
    ret

.balign 8
saved_rsp: .quad 0
my_apic:   .quad 0
other_apic: .quad 0
cores:     .quad 0
counter:   .quad 0
done:      .quad 0
seen:      .quad 0
lock_word: .quad 0
release:   .quad 0
spinner_job: .quad 0
spinner_busy: .quad 0
sector:    .fill 4096, 1, 0
# An ARP request (who has 10.0.2.2?), 60 bytes; the program writes in its MAC and
# sender address 10.0.2.15.
arp_frame:
    .byte 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0x08, 0x06
    .byte 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01
    .fill 10, 1, 0
    .fill 6, 1, 0
    .byte 10, 0, 2, 2
    .fill 18, 1, 0

STR dump_me, "BAREMETAL-DUMP!!"
STR m_start, "baremetal-test: start\n"
STR m_split, "baremetal-test: split UTF-8 "
STR m_smile_start, "\xF0\x9F"
STR m_smile_end, "\x98\x80\n"
STR m_big, "baremetal-test: output over 1 MiB\n"
STR m_regs, "baremetal-test: registers\n"
STR m_cores, "baremetal-test: cores="
STR m_rax, "baremetal-test: rax="
STR m_mac, "baremetal-test: mac="
STR m_still_output, "baremetal-test: b_output after 0x52\n"
STR m_pci, "baremetal-test: pci ok\n"
STR m_pci_lpc, "baremetal-test: pci 00:1f.0="
STR m_arp, "baremetal-test: arp ok\n"
STR m_newline, "\n"
STR m_ok, "baremetal-test: ok\n"
STR m_failed, "baremetal-test: FAILED "
STR e_clobbered, "a call changed a register that is not its output"
STR e_input, "b_input returned more than a byte"
STR e_input_zf, "b_input left ZF unlike AL"
STR e_net_rx, "b_net_rx received a frame without a device"
STR e_arp, "b_net_rx: no ARP answer from 10.0.2.2 within 2 s"
STR e_net_rx_rdi, "b_net_rx returned a frame but left RDI unchanged"
STR e_nvs, "b_nvs_read/write did sectors without a device"
STR e_delay, "0x72 delay 10 ms: the timecounter moved less"
STR e_tsc, "0x1F TSC did not advance"
STR e_mem, "0x01 free memory below 2 MiB"
STR e_screen, "0x20-0x24 returned the error value"
STR e_unknown, "unknown function 0x99 or unprovided 0x02/0x52/0x53/0x63 did not return the error value"
STR e_cores, "0x11 no cores"
STR e_misaligned, "0x12 accepted misaligned code"
STR e_smp_set, "0x12 smp_set did not accept every core with RAX loaded once"
STR e_smp_set_idle, "0x12 smp_set refused an idle core"
STR e_kept_rax, "0x14/0x15/0x51/0x60-0x62/0x70/0x72/0x7D changed RAX"
STR e_busy_timeout, "0x16 busy for 5 s"
STR e_lock, "0x14/0x15 lock: the counter lost increments"
STR e_jobs, "0x12 not every job ran"
STR e_seen, "0x10 core ids of the jobs are not distinct"
STR e_not_refused, "0x12 smp_set accepted a busy core"
STR e_smp_get, "0x13 smp_get did not give the calling core's own slot"
STR e_busy, "0x16 busy missed a running job"
STR e_busy_entry, "0x16 busy in a job missed the core running the entry"
STR e_pci, "0x50/0x51 PCI configuration read or write"
STR e_pci_bad, "0x50 accepted register 64"
STR e_pci_segment, "0x50 accepted PCI segment 1"
STR e_dump, "0x70/0x71 dump"

.bss
big: .skip (1 << 20) + 64
