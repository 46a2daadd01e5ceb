# A BareMetal-convention program that leaves the machine through b_system function
# EXIT_FUNCTION (given with --defsym: 0x7E reboot, 0x7F power off). If the call comes
# back it says so and spins, so a test sees a timeout rather than a normal return.

.include "common.inc"

.text
.global _start
_start:
    PRINT calling
    mov ecx, OFFSET EXIT_FUNCTION
    call qword ptr [B_SYSTEM]
    PRINT returned
1:  pause
    jmp 1b

STR calling, "baremetal-exit: calling b_system to leave the machine\n"
STR returned, "baremetal-exit: FAILED: b_system came back\n"
