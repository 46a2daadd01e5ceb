//! The machine's devices as the kernel keeps them: configuration space, the functions the
//! bus walk found (walked once, on first use: sizing BARs briefly turns a device's
//! decoding off, which must not happen under a running driver), and the registry bound
//! to them (also once).

use rexo_acpi::McfgSegment;
use rexo_devio::{PciBus, Platform};
use rexo_pci::Function;

use crate::appcode::calling_app;
use crate::{Leaving, Registry, ShutDown, Sweep};

/// The PCI bus, its functions and the drivers bound to them.
pub struct Machine {
    /// The kernel's half of interrupt bindings.
    binder: &'static dyn crate::Binder,
    /// Configuration space, with the ECAM windows claimed.
    bus: PciBus,
    /// The drivers bound to them.
    registry: spin::Once<Registry>,
}

impl Machine {
    /// The machine reached through `platform`, with the MCFG table's ECAM `windows`
    /// (none: the legacy ports), recording interrupt bindings through `binder`. A window
    /// that is malformed or cannot be claimed is logged and left out (its buses are not
    /// reached through the ports either). Panics when made twice: the
    /// machine has one configuration space ([`PciBus::new`]).
    pub fn new(
        platform: &'static dyn Platform,
        binder: &'static dyn crate::Binder,
        windows: &[McfgSegment],
    ) -> Self {
        let (bus, refused) = PciBus::new(platform, windows).expect("the machine's one PCI bus");
        for (segment, why) in refused {
            log::warn!(
                "pci: ECAM window of segment {} at {:#x} refused ({why}): its buses are unreachable",
                segment.segment,
                segment.base
            );
        }
        Self {
            binder,
            bus,
            registry: spin::Once::new(),
        }
    }

    /// Every function on every segment, in the order the walk found them; one that
    /// cannot be described is logged and left out ([`PciBus::functions`]).
    pub fn functions(&self) -> &[Function] {
        self.bus.functions()
    }

    /// Takes back every device the app of owner number `owner` holds (it ended); none
    /// when no driver was bound yet (this binds nothing).
    pub fn revoke_all_of(&self, owner: u16) -> usize {
        self.registry
            .get()
            .map_or(0, |registry| registry.revoke_all_of(owner))
    }

    /// Disarms the sources of bindings the kernel revoked by force
    /// ([`Registry::disarm_revoked`]); none when no driver was bound yet.
    pub fn disarm_revoked(&self) -> Sweep {
        self.registry
            .get()
            .map_or(Sweep::default(), Registry::disarm_revoked)
    }

    /// Tells every disk the machine is `leaving` (powering off or rebooting:
    /// [`Registry::shut_down_disks`]); none when no driver was bound yet (this binds
    /// nothing). An app's `power_off` or `reboot` reaches it: it runs as a kernel section
    /// ([`Binder::kernel_section`](crate::Binder::kernel_section)).
    pub fn shut_down_disks(&self, leaving: Leaving) -> ShutDown {
        self.registry.get().map_or(ShutDown::default(), |registry| {
            calling_app(self.binder, |_| {
                registry.shut_down_disks(leaving, || self.binder.now_ns())
            })
        })
    }

    /// Configuration space (BareMetal's PCI calls reach it through the legacy ports).
    pub fn bus(&self) -> &PciBus {
        &self.bus
    }

    /// The bound devices (binding them on the first call, which may be an app's: a
    /// kernel section, [`Binder::kernel_section`](crate::Binder::kernel_section), so that
    /// no abort leaves the binding half done).
    pub fn registry(&'static self) -> &'static Registry {
        let bind = || calling_app(self.binder, |_| Registry::bind(self.binder, &self.bus));
        self.registry.call_once(bind)
    }
}
