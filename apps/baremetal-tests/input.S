# Reads a line through b_input as BareMetal's programs do: keys until Enter (0x1C),
# counting them and the Backspaces (0x0E) among them, and prints both counts after the
# line, polled (pause, then AL tested). Returns RAX = 0.

.include "common.inc"

# Reads one line and prints its counts.
.macro READ_LINE
    xor ebx, ebx                        # keys
    xor r12d, r12d                      # Backspaces
1:  pause
    call qword ptr [B_INPUT]
    test al, al
    jz 1b
    inc rbx
    cmp al, 0x0E
    jne 2f
    inc r12
2:  cmp al, 0x1C
    jne 1b
    PRINT m_keys
    mov rax, rbx
    SYS 0x71
    PRINT m_backspaces
    mov rax, r12
    SYS 0x71
    PRINT m_newline
.endm

.text
.global _start
_start:
    push rbx
    push r12
    PRINT m_ready
    READ_LINE
    xor eax, eax
    pop r12
    pop rbx
    ret

STR m_ready, "baremetal-input: type a line\n"
STR m_keys, "baremetal-input: keys="
STR m_backspaces, " backspaces="
STR m_newline, "\n"
