//! The apps linked into this image, and the kernel's side of `rexo-api`. `app=NAME` on
//! the command line picks one; it runs on the boot core once every core is in the work
//! loop, and the machine powers off when it returns.

use alloc::vec::Vec;

use rexo_api::{
    ApiError, AppInfo, AppMain, BinaryError, CapInfo, CoreTask, Kernel, LoadedInfo, MemoryCap,
    MemoryInfo, PciFunction,
};
use rexo_captable::OwnerId;

/// An app: its name, a one-line description and its entry point.
pub struct App {
    /// The name `app=` selects it by.
    pub name: &'static str,
    /// What it does, for error messages and the monitor.
    pub about: &'static str,
    /// Runs the app.
    pub main: AppMain,
}

/// Every app linked into the image.
pub const APPS: &[App] = &[
    App {
        name: "hello",
        about: "greets from every core through the work queue (apps/hello)",
        main: rexo_hello::main,
    },
    App {
        name: "monitor",
        about: "an interactive command line on the consoles (apps/monitor)",
        main: rexo_monitor::main,
    },
    App {
        name: "reboot",
        about: "reboots the machine (ACPI reset register, keyboard controller, triple fault)",
        main: reboot,
    },
    App {
        name: "baremetal",
        about: "runs the BareMetal binary given as the first boot module (-initrd FILE)",
        main: crate::baremetal::app,
    },
    App {
        name: "c-hello",
        about: "the C hello world on rexo.h (api/c/examples/c-hello.c)",
        main: crate::c_abi::c_hello,
    },
    App {
        name: "c-cores",
        about: "a C app on every core, with a memory capability (api/c/examples/c-cores.c)",
        main: crate::c_abi::c_cores,
    },
];

/// The app called `name`.
pub fn find(name: &str) -> Option<&'static App> {
    APPS.iter().find(|app| app.name == name)
}

/// Runs `app` on the calling core with the kernel's API. The app is a capability owner
/// of its own (its index in [`APPS`] + 1); whatever it still holds when it returns goes
/// back to the kernel. A panic in the app on this core ends the app alone
/// ([`ApiError::Panicked`]).
pub fn run(app: &App) -> Result<(), ApiError> {
    let index = APPS
        .iter()
        .position(|a| core::ptr::eq(a, app))
        .unwrap_or(APPS.len());
    let owner = OwnerId(index as u16 + 1);
    // An abort point: if the app panics, only the app ends (see `arch::abort`).
    let mut result = Err(ApiError::Panicked);
    if crate::arch::abort::run_abortable(|| result = (app.main)(&KernelApi { owner })).is_err() {
        log::error!("app '{}' panicked and was ended", app.name);
    }
    match crate::caps::release_owner(owner) {
        Ok(0) => {}
        Ok(taken) => log::info!(
            "app '{}' ended holding {taken} capabilities: returned to the kernel",
            app.name
        ),
        Err(error) => log::error!(
            "app '{}': its capabilities could not be released: {error}",
            app.name
        ),
    }
    result
}

fn reboot(kernel: &dyn Kernel) -> Result<(), ApiError> {
    kernel.log(format_args!("reboot: resetting the machine"));
    kernel.reboot()
}

/// The kernel's implementation of the app API, for one app (the owner its calls act as).
struct KernelApi {
    owner: OwnerId,
}

impl Kernel for KernelApi {
    fn cores(&self) -> usize {
        crate::smp_cores()
    }

    fn core_index(&self) -> usize {
        crate::arch::percpu::core_index()
    }

    fn now_ns(&self) -> u64 {
        crate::time::now_ns()
    }

    fn log(&self, line: core::fmt::Arguments<'_>) {
        log::info!("{line}");
    }

    fn run_on_every_core(&self, task: CoreTask) -> Result<(), ApiError> {
        let owner = self.owner;
        crate::sched::run_on_cores(crate::smp_cores(), move |core| {
            task(&KernelApi { owner }, core)
        })
        .map_err(|_| ApiError::QueueFull)
    }

    fn read_byte(&self) -> Option<u8> {
        crate::console::read_byte()
    }

    fn write_str(&self, text: &str) {
        crate::kprint!("{text}");
    }

    fn sleep_ns(&self, ns: u64) {
        crate::time::sleep_until(crate::time::now_ns().saturating_add(ns));
    }

    fn memory(&self) -> MemoryInfo {
        let usable = crate::mem::memory_map().map_or(0, |map| map.usable_bytes());
        MemoryInfo {
            usable,
            free: crate::mem::frames::free_bytes(),
        }
    }

    fn apps(&self) -> Vec<AppInfo> {
        APPS.iter()
            .map(|app| AppInfo {
                name: app.name,
                about: app.about,
            })
            .collect()
    }

    fn run_app(&self, name: &str) -> Result<(), ApiError> {
        run(find(name).ok_or(ApiError::NoSuchApp)?)
    }

    fn reboot(&self) -> ! {
        crate::power::reboot()
    }

    fn power_off(&self) -> ApiError {
        ApiError::PowerOffFailed(crate::power::power_off())
    }

    fn allocate_memory(&self, bytes: u64) -> Result<MemoryCap, ApiError> {
        crate::caps::allocate_memory(self.owner, bytes)
            .map(MemoryCap::new)
            .map_err(|error| match error {
                crate::caps::MemoryError::OutOfMemory => ApiError::OutOfMemory,
                crate::caps::MemoryError::Cap(error) => ApiError::Refused(error),
            })
    }

    fn write_memory(&self, cap: &MemoryCap, offset: u64, data: &[u8]) -> Result<(), ApiError> {
        crate::caps::write_memory(self.owner, cap.cap(), offset, data).map_err(ApiError::Refused)
    }

    fn read_memory(&self, cap: &MemoryCap, offset: u64, buffer: &mut [u8]) -> Result<(), ApiError> {
        crate::caps::read_memory(self.owner, cap.cap(), offset, buffer).map_err(ApiError::Refused)
    }

    fn return_memory(&self, cap: MemoryCap) -> Result<(), ApiError> {
        crate::caps::return_cap(self.owner, cap.into_cap()).map_err(ApiError::Refused)
    }

    fn capabilities(&self) -> Vec<CapInfo> {
        crate::caps::entries()
    }

    fn pci_functions(&self) -> Vec<PciFunction> {
        crate::pci::functions()
    }

    fn load_baremetal(&self) -> Result<LoadedInfo, BinaryError> {
        use crate::baremetal::{APP_BASE, LoadError};
        let size = crate::baremetal::load().map_err(|error| match error {
            LoadError::NoModule => BinaryError::NoModule,
            LoadError::Empty => BinaryError::Empty,
            LoadError::TooLarge { size, capacity } => BinaryError::TooLarge { size, capacity },
            LoadError::NotFlat(format) => BinaryError::NotFlat(format),
            LoadError::NoArea => BinaryError::NoArea,
        })?;
        let info = LoadedInfo {
            size,
            entry: APP_BASE,
        };
        *LOADED.lock() = Some(info);
        Ok(info)
    }

    fn exec_baremetal(&self) -> Result<u64, BinaryError> {
        let LoadedInfo { size, entry } = (*LOADED.lock()).ok_or(BinaryError::NotLoaded)?;
        log::info!("baremetal: running {size} bytes at {entry:#x}");
        crate::baremetal::run_loaded().ok_or(BinaryError::NotLoaded)
    }
}

/// The BareMetal binary the last successful `load_baremetal` put in the app area.
static LOADED: spin::Mutex<Option<LoadedInfo>> = spin::Mutex::new(None);

/// The capability owner the app called `name` runs as in [`run`] (one more than its
/// index in [`APPS`]), for the C ABI, whose calls carry no `KernelApi`.
pub(crate) fn owner_of(name: &str) -> Option<OwnerId> {
    APPS.iter()
        .position(|app| app.name == name)
        .map(|index| OwnerId(index as u16 + 1))
}

/// The kernel's API acting for `owner` (the C ABI's calls go through it).
pub(crate) fn api_for(owner: OwnerId) -> impl Kernel {
    KernelApi { owner }
}
