//! The apps linked into this image, and the kernel's side of `rexo-api`. `app=NAME` on
//! the command line picks one; it runs on the boot core once every core is in the work
//! loop, and the machine powers off when it returns.

use rexo_api::{ApiError, CoreTask, Kernel};

/// An app: its name, a one-line description and its entry point.
pub struct App {
    /// The name `app=` selects it by.
    pub name: &'static str,
    /// What it does, for error messages and the monitor.
    pub about: &'static str,
    /// Runs the app.
    pub main: fn(),
}

/// Every built-in app.
pub const APPS: &[App] = &[
    App {
        name: "hello",
        about: "greets from every core through the work queue (apps/hello)",
        main: hello,
    },
    App {
        name: "reboot",
        about: "reboots the machine (ACPI reset register, keyboard controller, triple fault)",
        main: reboot,
    },
];

/// The app called `name`.
pub fn find(name: &str) -> Option<&'static App> {
    APPS.iter().find(|app| app.name == name)
}

fn reboot() {
    log::info!("reboot: resetting the machine");
    crate::power::reboot();
}

fn hello() {
    if let Err(error) = rexo_hello::main(&KernelApi) {
        log::error!("hello: {error}");
    }
}

/// The kernel's implementation of the app API.
struct KernelApi;

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
        crate::sched::run_on_cores(crate::smp_cores(), move |core| task(&KernelApi, core))
            .map_err(|_| ApiError::QueueFull)
    }
}
