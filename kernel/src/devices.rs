//! The machine's devices: the PCI bus and the drivers bound to it (`rexo-drivers`), over
//! the kernel's services to drivers (`mem::phys::DRIVER_PLATFORM`).

use rexo_captable::{OwnerId, ResourceKind::InterruptVector};
use rexo_drivers::Machine;

use crate::{mem::phys::DRIVER_PLATFORM, platform};

/// The bus, its functions and their drivers (unset until first used: [`machine`] binds
/// them; [`crate::power::power_off`] and [`crate::power::reboot`] only tell the disks of
/// a machine bound already).
pub(crate) static MACHINE: spin::Once<Machine> = spin::Once::new();

/// The bus (its ECAM windows claimed on first use), its functions (walked once) and the
/// drivers bound to them (bound once); first, the ports of ACPI's fixed hardware are kept
/// from every driver (`rexo_acpi::Fadt::io_ports`). The first use may be an app's call: a
/// kernel section around the `Once` (its stack check ends a short-stacked app before the
/// `Once` starts), so that no abort leaves the `Once` running for good; once bound, no
/// section (BareMetal's calls reach the machine on every call).
pub fn machine() -> &'static Machine {
    if let Some(machine) = MACHINE.get() {
        return machine;
    }
    crate::arch::abort::kernel_section(|| {
        MACHINE.call_once(|| {
            let fadt = platform::acpi().and_then(|acpi| acpi.fadt);
            rexo_devio::port::hold_for_kernel(fadt.iter().flat_map(rexo_acpi::Fadt::io_ports));
            let windows = platform::acpi().map_or(&[][..], |acpi| acpi.mcfg_segments());
            Machine::new(&DRIVER_PLATFORM, &BINDER, windows)
        })
    })
}

/// Takes back every device the app of owner number `owner` holds; binds nothing.
pub fn revoke_all_of(owner: u16) {
    let _taken = MACHINE.get().map(|machine| machine.revoke_all_of(owner));
}

/// Disarms the sources of interrupt bindings taken by force; a work-loop task that
/// [`crate::caps`] submits after a forced revocation (never run in an interrupt handler).
/// A device another core holds in a call is disarmed as that call returns; one this core
/// holds in a call is passed by and the sweep asked for again (queued when work runs dry).
pub fn disarm_revoked() {
    let sweep = MACHINE.get().map(Machine::disarm_revoked);
    if sweep.is_some_and(|sweep| sweep.passed_by > 0) {
        crate::caps::SWEEP.request();
    }
}

/// The kernel's half of leases: the vector a driver routed on the calling core
/// (`mem::phys`), the capabilities (`caps`; a binding already gone when its app ended is
/// not taken back twice), the kernel section every call an app makes into the registry
/// runs in, an abort point for each call of the app's code inside it, whose app ends
/// once the call has unlocked the device and left the section, and the clock BareMetal
/// calls wait for their device by.
static BINDER: rexo_drivers::BinderFns = rexo_drivers::BinderFns {
    take_routed: || crate::mem::phys::ROUTED.take(crate::arch::percpu::core_index()),
    bind: |owner, vector| crate::caps::bind_interrupt(OwnerId(owner), vector),
    live: crate::caps::is_live,
    give_back: |owner, cap| crate::caps::return_cap(OwnerId(owner), cap, InterruptVector),
    take_back: |entry| crate::caps::revoke(entry).unwrap_or(()),
    run_app_code,
    end_aborted_app: crate::arch::abort::abort_current,
    kernel_section: |call| crate::arch::abort::kernel_section(call),
    core_index: crate::arch::percpu::core_index,
    now_ns: crate::time::now_ns,
};

/// [`rexo_drivers::Binder::run_app_code`]: the app's `code` as an abort point of its own
/// inside the app's (put aside by the registry's kernel section). It ran with interrupts
/// on, and an abort leaves them off: the device call goes on with them on again (a core
/// with interrupts off would not answer another core's TLB shootdown). Outside any app
/// (the kernel's own use of a device) it is a plain call: a panic there is the kernel's,
/// reported as such. (A BareMetal load copies from the app's memory through it too, and
/// a BareMetal program runs under it.)
pub(crate) fn run_app_code(code: &mut dyn FnMut()) -> bool {
    if !crate::arch::abort::serves_app() {
        code();
        return false;
    }
    let aborted = crate::arch::abort::run_abortable(code).is_err();
    if aborted {
        crate::arch::cpu::enable_interrupts();
    }
    aborted
}
