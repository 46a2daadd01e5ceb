# Reads two lines through b_input as BareMetal's programs do: keys until Enter (0x1C),
# counting them and the Backspaces (0x0E) among them, and prints both counts after each
# line. The first line is polled (pause, then AL tested); the second waits with hlt
# before each call, as BareMetal's monitor (ui_input_halt) and kbm's b_in, relying on an
# interrupt to wake the core and on b_input leaving ZF set when AL is 0. Returns RAX = 0.

.include "common.inc"

# Reads one line (\halt: hlt, then ZF as b_input left it; else pause, then AL tested)
# and prints its counts.
.macro READ_LINE halt
    xor ebx, ebx                        # keys
    xor r12d, r12d                      # Backspaces
1:
.if \halt
    hlt
    call qword ptr [B_INPUT]
.else
    pause
    call qword ptr [B_INPUT]
    test al, al
.endif
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
    READ_LINE 0
    READ_LINE 1
    xor eax, eax
    pop r12
    pop rbx
    ret

STR m_ready, "baremetal-input: type two lines\n"
STR m_keys, "baremetal-input: keys="
STR m_backspaces, " backspaces="
STR m_newline, "\n"
