# A BareMetal-convention program for Rexo's storage calls: writes one 4096-byte sector
# (b_nvs_write) at sector 3840 of drive 0 (15 MiB in: the last block of the 16 MiB test
# disk, past its files), reads it back (b_nvs_read) into another buffer, compares, and
# checks that a read past the end of the disk does nothing (RCX = 0). Prints one line
# per step and returns RAX = 0x5107 when every step passed, 0 otherwise.

.include "common.inc"

.set SECTOR, 3840

.text
.global _start
_start:
    push rbx
    # The pattern: byte i = i * 7 + 3.
    lea rdi, [rip + out]
    xor ecx, ecx
1:  lea eax, [rcx * 8]
    sub eax, ecx
    add eax, 3
    mov [rdi + rcx], al
    inc ecx
    cmp ecx, 4096
    jne 1b

    mov eax, SECTOR
    mov ecx, 1
    xor edx, edx
    lea rsi, [rip + out]
    call qword ptr [B_NVS_WRITE]
    cmp rcx, 1
    jne fail_write

    mov eax, SECTOR
    mov ecx, 1
    xor edx, edx
    lea rdi, [rip + in]
    call qword ptr [B_NVS_READ]
    cmp rcx, 1
    jne fail_read

    lea rsi, [rip + out]
    lea rdi, [rip + in]
    mov ecx, 4096
    repe cmpsb
    jne fail_compare
    PRINT wrote

    mov rax, 0x40000000
    mov ecx, 1
    xor edx, edx
    lea rdi, [rip + in]
    call qword ptr [B_NVS_READ]
    test rcx, rcx
    jnz fail_past_end
    PRINT refused

    PRINT ok
    mov eax, 0x5107
    pop rbx
    ret

fail_write:
    PRINT write_failed
    jmp failed
fail_read:
    PRINT read_failed
    jmp failed
fail_compare:
    PRINT compare_failed
    jmp failed
fail_past_end:
    PRINT past_end_failed
failed:
    xor eax, eax
    pop rbx
    ret

STR wrote, "baremetal-storage: sector 3840 written and read back byte-exact\n"
STR refused, "baremetal-storage: a read past the end of the disk did nothing\n"
STR ok, "baremetal-storage: ok\n"
STR write_failed, "baremetal-storage: FAILED: b_nvs_write did not write the sector\n"
STR read_failed, "baremetal-storage: FAILED: b_nvs_read did not read the sector\n"
STR compare_failed, "baremetal-storage: FAILED: the sector read back differs\n"
STR past_end_failed, "baremetal-storage: FAILED: a read past the end returned sectors\n"

.bss
.balign 4096
out: .skip 4096
in: .skip 4096
