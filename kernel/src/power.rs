//! Leaving the machine: power-off and reboot through ACPI (the keyboard controller and a
//! triple fault are the reboot fallbacks), every disk told before either, and QEMU's
//! `isa-debug-exit` port for test results (only under a hypervisor; on hardware a
//! failure halts every core, the disks not told).

#![allow(unsafe_code)] // the deliberate triple fault

use rexo_acpi::{ByteRegister, GenericAddress, SleepRegister};
use rexo_drivers::Leaving::{PowerOff, Reboot};

use crate::arch::cpu::{self, inw, outb, outw};
use crate::devices::MACHINE;

/// QEMU's debug-exit port (`-device isa-debug-exit,iobase=0xf4,iosize=4`).
const DEBUG_EXIT_PORT: u16 = 0xF4;
/// Written to the port for success: QEMU exits with status 33.
const DEBUG_EXIT_SUCCESS: u8 = 0x10;
/// Written for failure: QEMU exits with status 35.
const DEBUG_EXIT_FAILURE: u8 = 0x11;

fn debug_exit(value: u8) {
    if cpu::features().hypervisor {
        outb(DEBUG_EXIT_PORT, value);
    }
}

/// Halts this core for good while a crash report is under way, just before one of the
/// writes that end the run without it (the success exit, the sleep request, a reset):
/// the crashing core ends the run, as failed, once its report is whole.
fn halt_if_crashing() {
    if crate::console::crashing_core().is_some() {
        cpu::halt_forever()
    }
}

/// Ends the run successfully (QEMU status 33), or halts on hardware (also used when the
/// machine cannot power off). With another core's crash report under way it only halts
/// ([`halt_if_crashing`]).
pub fn exit_success() -> ! {
    halt_if_crashing();
    debug_exit(DEBUG_EXIT_SUCCESS);
    cpu::halt_forever()
}

/// Ends the run as failed (QEMU status 35), or halts every core on hardware.
pub fn exit_failure() -> ! {
    debug_exit(DEBUG_EXIT_FAILURE);
    crate::kprintln!("rexo: halting every core");
    // Marked as a crash, so that the other cores halt quietly on the NMI (which a crash
    // report has sent already, and which goes now otherwise).
    if crate::console::begin_crash_report() {
        crate::arch::smp::nmi_other_cores();
    }
    cpu::halt_forever()
}

/// Writes `value` to a one-byte ACPI register (the reset or the sleep control register,
/// one byte whatever width it says: `GenericAddress::byte_register`); false if it is
/// not one Rexo can write.
fn write_register(register: &GenericAddress, value: u8) -> bool {
    match register.byte_register() {
        Some(ByteRegister::Port(port)) => {
            outb(port, value);
            true
        }
        Some(ByteRegister::Memory(address)) => {
            crate::mem::phys::mmio_write8(address, value).is_ok()
        }
        None => false,
    }
}

/// Powers the machine off through ACPI (`\_S5`), every disk told first (and refusing
/// requests from then on, even if the sleep request then fails; not when the machine has
/// no way to ask for it, checked before). Returns only if that failed, saying why. The
/// sleep request runs with interrupts off ([`cpu::without_interrupts`], which turns them
/// back on if it returns), so that nothing runs between it and the power going; the
/// disks are told before, with them on (a core waiting for a disk another core holds
/// still answers that core's TLB shootdowns). With another core's crash report under way
/// it halts instead of the sleep request ([`halt_if_crashing`]).
pub fn power_off() -> &'static str {
    let Some(info) = crate::platform::acpi() else {
        return "no ACPI tables";
    };
    let Some(fadt) = info.fadt.as_ref() else {
        return "no FADT";
    };
    let s5 = info.find_s5(&crate::mem::phys::IdentityMemory);
    let Ok(Some((slp_typa, slp_typb))) = s5.inspect_err(|w| log::warn!("acpi: {w}")) else {
        return "the DSDT has no \\_S5 sleep type";
    };
    log::debug!("power: S5 sleep type {slp_typa}/{slp_typb}, {fadt:?}");
    let register = match fadt.sleep_register() {
        Ok(register) => register,
        Err(missing) => return missing,
    };
    let _disks = MACHINE.get().map(|bound| bound.shut_down_disks(PowerOff));
    cpu::without_interrupts(|| {
        halt_if_crashing();
        match register {
            SleepRegister::Control(control) => {
                const SLP_EN_HW_REDUCED: u8 = 1 << 5;
                if !write_register(control, (slp_typa & 7) << 2 | SLP_EN_HW_REDUCED) {
                    return "the sleep control register is not writable";
                }
            }
            SleepRegister::Pm1a(pm1a) => {
                enable_acpi_mode(fadt);
                const SLP_EN: u16 = 1 << 13;
                let keep = inw(pm1a) & !(0x7 << 10 | SLP_EN);
                outw(pm1a, keep | u16::from(slp_typa & 7) << 10 | SLP_EN);
                if let Some(pm1b) = fadt.pm1b_control_block {
                    outw(pm1b, u16::from(slp_typb & 7) << 10 | SLP_EN);
                }
            }
        }
        crate::time::delay_us(100_000);
        "the machine did not power off after the ACPI sleep request"
    })
}

/// Switches the chipset into ACPI mode through the SMI command port if firmware left it in
/// legacy mode (SCI_EN clear).
fn enable_acpi_mode(fadt: &rexo_acpi::Fadt) {
    let (Some(pm1a), Ok(smi)) = (
        fadt.pm1a_control_block,
        u16::try_from(fadt.smi_command_port),
    ) else {
        return;
    };
    if inw(pm1a) & 1 != 0 || smi == 0 || fadt.acpi_enable == 0 {
        return;
    }
    outb(smi, fadt.acpi_enable);
    let deadline = crate::time::tsc_after_micros(300_000);
    while inw(pm1a) & 1 == 0 && cpu::rdtsc() < deadline {
        cpu::pause();
    }
}

/// Reboots: every disk told first, as at a power-off (a reset may cut their power or
/// reset them, and a disk's write cache goes with either), with interrupts on, as in
/// [`power_off`]; then, with them off, the ACPI reset register, the keyboard controller,
/// a triple fault, each halting instead with another core's crash report under way
/// ([`halt_if_crashing`]).
pub fn reboot() -> ! {
    let _disks = MACHINE.get().map(|bound| bound.shut_down_disks(Reboot));
    cpu::disable_interrupts();
    halt_if_crashing();
    let fadt = crate::platform::acpi().and_then(|info| info.fadt.as_ref());
    if let Some(reset) = fadt.and_then(|fadt| fadt.reset) {
        if write_register(&reset.register, reset.value) {
            crate::time::delay_us(50_000);
        } else {
            let register = reset.register;
            log::warn!("power: the ACPI reset register is not one Rexo can write: {register:?}");
        }
    }
    // The 8042's pulse-reset command, once its input buffer is empty (up to 1000 reads).
    (0..1000)
        .take_while(|_| cpu::inb(0x64) & 0x02 != 0)
        .for_each(|_| cpu::pause());
    halt_if_crashing();
    outb(0x64, 0xFE);
    crate::time::delay_us(50_000);
    halt_if_crashing();
    // An empty IDT: the next exception cannot be delivered and the CPU resets.
    let empty = [0u16; 5];
    // SAFETY: deliberately ends the machine; nothing runs after the triple fault.
    unsafe { core::arch::asm!("lidt [{}]", "int3", in(reg) &empty, options(noreturn)) }
}
