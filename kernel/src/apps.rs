//! The apps linked into this image, and the kernel's side of `rexo-api`. `app=NAME` on
//! the command line picks one; it runs on the boot core once every core is in the work
//! loop, and the machine powers off when it returns. A boot manifest
//! (`apps=NAME:CORES:MEMORY,...`) runs several side by side instead ([`run_manifest`]).
//!
//! Capability owners: `run` gives an app its index in [`all`] + 1; run `i` of the boot
//! manifest (from 0) is owner `APP_COUNT + 1 + i` (`rexo_cmdline::manifest_owner`), so
//! that two runs of one app are two owners. Each run has a span of cores (all of them, or
//! its manifest entry's) and maybe a memory quota, which the kernel API (`KernelCalls`)
//! and `caps` enforce.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, Ordering};

use rexo_cmdline::Manifest;

pub(crate) use rexo_api::CoreSpan;
use rexo_api::{
    ApiError, AppInfo, AppRun, BinaryError, CapInfo, CoreCap, CoreTask, DeviceKind, InterruptCap,
    Kernel, LoadedInfo, MemoryCap, MemoryInfo, OpenDevice, PciFunction, TimerCap,
};
use rexo_captable::OwnerId;
use rexo_captable::ResourceKind::{Core, InterruptVector, Memory, Timer};
use rexo_memledger::Quota;

/// An app: its name, a one-line description and its entry point.
pub use rexo_api::AppEntry as App;

/// The kernel's own apps (the image's are in `rexo-image`).
const KERNEL_APPS: &[App] = &[
    App::new(
        "reboot",
        "reboots the machine (ACPI reset register, keyboard controller, triple fault)",
        reboot,
    ),
    // Runs its module in ring 0 through `load_baremetal`: only apps granted that start it.
    App {
        name: "baremetal",
        about: "runs the BareMetal binary given as the first boot module (-initrd FILE)",
        main: crate::baremetal::app,
        may_run_baremetal: true,
    },
];

/// How many apps [`all`] lists.
pub(crate) const APP_COUNT: usize =
    rexo_image::APPS.len() + KERNEL_APPS.len() + crate::c_abi::APPS.len();

/// Every app linked into the image: the image's (`rexo-image`), then the kernel's own,
/// then the C apps (`c_abi::APPS`).
pub fn all() -> impl Iterator<Item = &'static App> {
    let kernel_apps = KERNEL_APPS.iter().chain(crate::c_abi::APPS);
    rexo_image::APPS.iter().chain(kernel_apps)
}

/// The app called `name`.
pub fn find(name: &str) -> Option<&'static App> {
    all().find(|app| app.name == name)
}

/// Runs `app` on the calling core with the kernel's API, on every core and with no
/// memory quota. The app is a capability owner of its own (its index in [`all`] + 1);
/// whatever it still holds when it returns goes back to the kernel. A panic in the app on
/// this core ends the app alone ([`ApiError::Panicked`]).
pub fn run(app: &App) -> Result<(), ApiError> {
    run_as(app, app_owner(app), all_cores(), None)
}

/// Every core in the work loop.
fn all_cores() -> CoreSpan {
    CoreSpan {
        first: 0,
        count: crate::smp_cores(),
    }
}

/// Per core, the app run its code acts for: the innermost [`run_as`] there, or the app
/// whose `run_on_every_core` task runs there; `None`: the kernel. The C ABI, whose calls
/// carry no `Kernel`, reads it ([`current`]).
static CURRENT: [spin::Mutex<Option<AppRun>>; crate::arch::percpu::MAX_CORES] =
    [const { spin::Mutex::new(None) }; crate::arch::percpu::MAX_CORES];

/// Runs `f` on this core acting for `kernel`'s app run, then restores what the core acted
/// for (abort points sit inside `f`, so the restore always runs).
pub(crate) fn acting_as<R>(kernel: &Kernel, f: impl FnOnce() -> R) -> R {
    let slot = &CURRENT[crate::arch::percpu::core_index()];
    let outer = slot.lock().replace(*kernel.run());
    let result = f();
    *slot.lock() = outer;
    result
}

/// Runs `f` acting for `api`'s app run as an abort point of its own: `None` if it
/// returned, else how it was ended ([`ended_reason`]), after releasing the C ABI's handle
/// locks that its abandoned calls held (`rexo_capi::release_abandoned`), with interrupts
/// on: the handles' holder on another core may be waiting for this one (a TLB shootdown).
pub(crate) fn run_as_abort_point(api: &Kernel, f: impl FnOnce()) -> Option<u8> {
    // Every frame `f` runs in lies below this local.
    let mark = 0u8;
    let aborted = acting_as(api, || crate::arch::abort::run_abortable(f)).is_err();
    aborted.then(|| {
        let (reason, core) = (ended_reason(), crate::arch::percpu::core_index());
        rexo_capi::release_abandoned(core, rexo_capi::frame_mark(&mark));
        reason
    })
}

/// The app run this core acts for, if any.
pub(crate) fn current() -> Option<AppRun> {
    *CURRENT[crate::arch::percpu::core_index()].lock()
}

/// The kernel's API acting for `owner` on every core with no quota (the kernel's own
/// benchmarks and tests, which are no app run).
pub(crate) fn api_as(owner: OwnerId) -> Kernel {
    token(AppRun {
        owner,
        core_holder: owner,
        name: "kernel",
        cores: all_cores(),
        quota: None,
        may_run_baremetal: false,
    })
}

/// The owner `run` gives `app`: its index in [`all`] + 1.
fn app_owner(app: &App) -> OwnerId {
    let index = all()
        .position(|a| core::ptr::eq(a, app))
        .unwrap_or(APP_COUNT);
    OwnerId(index as u16 + 1)
}

/// Runs `app` on the calling core as `owner`, on `cores`, within `quota`; then takes back
/// what it holds.
pub(crate) fn run_as(
    app: &App,
    owner: OwnerId,
    cores: CoreSpan,
    quota: Option<u64>,
) -> Result<(), ApiError> {
    run_with(app, owner, cores, Quota::Fixed(quota), None)
}

/// The owners of the runs in progress, with their apps' names (a caller of `run_app`
/// stays here while its core acts for the app it started).
static RUNNING: spin::Mutex<Vec<(OwnerId, &str)>> = spin::Mutex::new(Vec::new());

/// [`run_as`], on the core capabilities of `lender` (the caller of `run_app`, which waits
/// meanwhile) if given, else on capabilities minted for `owner`'s cores. An owner runs
/// once at a time ([`ApiError::AlreadyRunning`]): the end of a run takes back all its
/// owner holds, which would pull memory and devices from under a second run. `run_app`
/// is refused also while any run of the app goes (a manifest entry's, of another owner:
/// only a manifest runs one app twice). The run's setup and release are a kernel section:
/// a panic there (or a failed allocation, the record's, under `RUNNING`'s lock) is a
/// kernel crash, not an abort to the caller's abort point that would leave `owner` marked
/// running, or `RUNNING` locked, for good.
fn run_with(
    app: &App,
    owner: OwnerId,
    cores: CoreSpan,
    quota: Quota,
    lender: Option<OwnerId>,
) -> Result<(), ApiError> {
    crate::arch::abort::kernel_section(|| {
        let mut running = RUNNING.lock();
        let clashes = |&(other, name): &_| other == owner || lender.is_some() && name == app.name;
        if running.iter().any(clashes) {
            return Err(ApiError::AlreadyRunning);
        }
        running.push((owner, app.name));
        drop(running);
        let result = run_alone(app, owner, cores, quota, lender);
        RUNNING.lock().retain(|&(other, _)| other != owner);
        result
    })
}

/// [`run_with`] once the run is known to be its owner's only one.
fn run_alone(
    app: &App,
    owner: OwnerId,
    cores: CoreSpan,
    quota: Quota,
    lender: Option<OwnerId>,
) -> Result<(), ApiError> {
    let span = cores.range();
    let grant = || match lender {
        Some(_) => Ok(()),
        None => crate::caps::grant_cores(owner, span),
    };
    let started = crate::caps::start_owner(owner, quota);
    let quota = started
        .and_then(|quota| grant().map(|()| quota))
        .map_err(|error| {
            log::error!(
                "app '{}': no quota or cores for its owner: {error}",
                app.name
            );
            let _ = crate::caps::release_owner(owner);
            ApiError::Refused(error)
        })?;
    let api = token(AppRun {
        owner,
        core_holder: lender.unwrap_or(owner),
        name: app.name,
        cores,
        quota,
        may_run_baremetal: app.may_run_baremetal,
    });
    // An abort point: if the app panics or breaks the abort protocol, only the app ends.
    let mut result = Ok(());
    if let Some(reason) = run_as_abort_point(&api, || result = (app.main)(&api)) {
        result = Err(match reason {
            ENDED_BY_REPOSSESSION => ApiError::Repossessed,
            ENDED_BY_STACK_OVERFLOW => ApiError::StackOverflow,
            _ => ApiError::Panicked,
        });
        log::error!("app '{}' was ended: {}", app.name, result.unwrap_err());
    }
    match crate::caps::release_owner(owner) {
        Ok(0) => {}
        Ok(taken) => log::info!(
            "app '{}' ended; the kernel took back the {taken} capabilities it still had (its cores' among them)",
            app.name
        ),
        Err(error) => log::error!(
            "app '{}': its capabilities could not be released: {error}",
            app.name
        ),
    }
    rexo_capi::forget_handles(owner);
    crate::devices::revoke_all_of(owner.0);
    crate::mem::heap::APP_GROWTH.clear(owner);
    result
}

/// Runs every entry of the boot manifest side by side: each app's `main` as a task on
/// the first of its cores, as an owner of its own (`APP_COUNT + 1 +` its place) with its
/// cores and memory quota. Waits for all of them; an app that fails or panics is
/// reported and the others go on. The caller has checked the names and the cores.
/// Returns how many runs failed.
pub fn run_manifest(manifest: &Manifest<'_>) -> usize {
    // Per entry, how its run ended (`None`: it has not).
    let results = Arc::new(spin::Mutex::new(alloc::vec![
        None::<Result<(), ApiError>>;
        manifest.len()
    ]));
    let queue = crate::sched::machine_queue();
    let batch = crate::sched::batch();
    for (place, entry) in manifest.entries().enumerate() {
        let Some(app) = find(entry.name) else {
            results.lock()[place] = Some(Err(ApiError::NoSuchApp));
            continue;
        };
        let owner = OwnerId(rexo_cmdline::manifest_owner(APP_COUNT, place) as u16);
        let cores = CoreSpan {
            first: entry.first_core,
            count: entry.cores,
        };
        log::info!(
            "manifest: '{}' as owner {} on cores {}-{} with {} KiB",
            app.name,
            owner.0,
            cores.first,
            cores.first + cores.count - 1,
            entry.quota >> 10
        );
        let slot = results.clone();
        let task = move || {
            let result = run_as(app, owner, cores, Some(entry.quota));
            slot.lock()[place] = Some(result);
        };
        if batch.submit_to(queue, entry.first_core, task).is_err() {
            results.lock()[place] = Some(Err(ApiError::QueueFull));
        }
    }
    batch.wait(queue, crate::arch::percpu::core_index());
    let mut failed = 0;
    for (entry, result) in manifest.entries().zip(results.lock().iter()) {
        match result {
            Some(Ok(())) => log::info!("manifest: '{}' returned", entry.text),
            Some(Err(error)) => {
                failed += 1;
                log::error!("manifest: '{}' failed: {error}", entry.text);
            }
            None => {
                failed += 1;
                log::error!("manifest: '{}' did not run", entry.text);
            }
        }
    }
    failed
}

fn reboot(kernel: &Kernel) -> Result<(), ApiError> {
    kernel.log(format_args!("reboot: resetting the machine"));
    kernel.reboot()
}

/// The kernel API's entry points, and the one place the kernel mints its tokens. The
/// entry points call the kernel's side of each call: `KernelCalls`, a trait made from the
/// same list, implemented below for the app run a token acts for.
#[allow(unsafe_code)] // the entry points' `#[unsafe(export_name)]`; `Kernel::new`
mod entries {
    rexo_api::export_kernel!();

    /// The token of `run`, for the app run the kernel starts (or acts as itself).
    pub(crate) fn token(run: AppRun) -> Kernel {
        // SAFETY: the kernel mints a token only for a run it starts, for each of its core
        // tasks, and for its own tests and benchmarks; it lends it by reference per call.
        unsafe { Kernel::new(run) }
    }
}
use entries::KernelCalls;
pub(crate) use entries::token;

/// Why the app on a core was ended at its abort point.
pub(crate) static ENDED_BY: [AtomicU8; crate::arch::percpu::MAX_CORES] =
    [const { AtomicU8::new(ENDED_BY_PANIC) }; crate::arch::percpu::MAX_CORES];
/// The app panicked (what a core records until told otherwise).
pub(crate) const ENDED_BY_PANIC: u8 = 0;
pub(crate) const ENDED_BY_REPOSSESSION: u8 = 1;
/// The app overflowed its stack (a panic the double-fault handler raised for it), or had
/// too little of it left to enter a kernel section (`arch::abort::kernel_section`).
pub(crate) const ENDED_BY_STACK_OVERFLOW: u8 = 2;
/// No task of a `run_on_every_core` call was ended.
const NOT_ENDED: u8 = u8::MAX;

/// Ends the task of this core's app at its abort point, recorded as ended by `reason` (an
/// `ENDED_BY_` value: it broke the abort protocol, using memory taken back by force, or
/// ran short of stack), if the core is inside an abort point.
pub(crate) fn end_app_for(reason: u8) {
    if crate::arch::abort::can_abort() {
        ENDED_BY[crate::arch::percpu::core_index()].store(reason, Ordering::Relaxed);
        crate::arch::abort::abort_current();
    }
}

/// Called by the page-fault handler: a fault at `addr` inside a region revoked by force
/// from this core's app ends the app's task (not the kernel) with a report; any other
/// fault returns, to the crash report.
pub(crate) fn on_page_fault(addr: u64) {
    // The app may have faulted in the middle of a log line. Released before the table's
    // lock is waited for (`caps` logs holding it); every way on from here is an abort or
    // a crash report, which writes without the console's lock.
    crate::console::release_after_abort();
    let Some((region, holder)) = crate::caps::revoked_region(addr) else {
        return;
    };
    if let Some(api) = current().filter(|api| api.owner == holder) {
        log::error!(
            "app '{}' touched revoked region {region} (at {addr:#x}): ending its task",
            api.name
        );
        end_app_for(ENDED_BY_REPOSSESSION);
    }
}

/// How the app on this core was ended at its abort point (an abort leaves interrupts as
/// the fault or panic left them: off).
pub(crate) fn ended_reason() -> u8 {
    crate::arch::cpu::enable_interrupts();
    ENDED_BY[crate::arch::percpu::core_index()].swap(ENDED_BY_PANIC, Ordering::Relaxed)
}

/// The abort protocol, for every call that takes a capability, when the table refused
/// it with `error`: an app that uses one the kernel took back at a revocation deadline it
/// missed (one of `entries`; presumed so once its forfeit records were lost) is ended
/// (its task, not the kernel), with a report. Else the refusal the app gets.
pub(crate) fn refusal_of(
    owner: OwnerId,
    entries: &[rexo_api::EntryId],
    error: rexo_api::CapError,
) -> ApiError {
    let revoked = error == rexo_api::CapError::Revoked;
    let repossessed = |&&entry: &&_| revoked && crate::caps::was_repossessed(owner, entry);
    if let Some(entry) = entries.iter().find(repossessed) {
        let missed = "taken back at a revocation deadline it missed (or presumed so)";
        log::error!("{owner} touched {entry}, {missed}: ending its task");
        end_app_for(ENDED_BY_REPOSSESSION);
    }
    ApiError::refusal(error)
}

/// `owner` gives `cap` back through `give` (under the abort protocol); a refusal gives it
/// back, made by `wrap`, with the reason.
fn give_back<C>(
    owner: OwnerId,
    (cap, wrap): (rexo_api::Cap, fn(rexo_api::Cap) -> C),
    give: impl FnOnce(rexo_api::Cap) -> Result<(), (rexo_api::CapError, rexo_api::Cap)>,
) -> Result<(), (ApiError, C)> {
    let entry = [cap.id()];
    give(cap).map_err(|(error, cap)| (refusal_of(owner, &entry, error), wrap(cap)))
}

impl KernelCalls for AppRun {
    fn cores(&self) -> usize {
        self.cores.count
    }

    fn ipv4_config(&self) -> Option<rexo_api::Ipv4Config> {
        crate::ipv4_config()
    }

    fn core_index(&self) -> usize {
        crate::arch::percpu::core_index()
    }

    fn now_ns(&self) -> u64 {
        crate::time::now_ns()
    }

    fn unix_time_s(&self) -> Result<u64, ApiError> {
        // A kernel section: the first reading holds the wall clock's `Once` and lock.
        let unix_s = crate::arch::abort::kernel_section(crate::time::unix_time_s);
        unix_s.map_err(|_| ApiError::NoWallClock)
    }

    fn random_u64(&self) -> Result<u64, ApiError> {
        crate::arch::cpu::random_u64().ok_or(ApiError::NoRandom)
    }

    fn log(&self, line: core::fmt::Arguments<'_>) {
        // The app's `Display` code runs here, before the console lock is taken (control
        // characters shown as `^J`-style escapes; text past 506 bytes is cut,
        // `rexo_logline::CUT_MARKER` making the line 512).
        let line = <rexo_logline::LogLine>::format(line);
        log::info!("{}", line.as_str());
    }

    fn run_on_every_core(&self, task: CoreTask) -> Result<(), ApiError> {
        let (this, owner, cores) = (*self, self.owner, self.cores);
        let span = cores.range();
        let held = |core| crate::caps::holds_core(self.core_holder, core);
        if let Some(core) = span.clone().find(|&core| !held(core)) {
            return Err(ApiError::CoreNotHeld(core));
        }
        // Each task runs under an abort point of its own: a task that panics (or breaks the
        // abort protocol) ends alone on its core, and this call reports it.
        let ended = alloc::sync::Arc::new(AtomicU8::new(NOT_ENDED));
        let ended_by = alloc::sync::Arc::clone(&ended);
        crate::sched::run_on_core_range(span, move |core| {
            let api = token(this);
            if let Some(reason) = run_as_abort_point(&api, || task(&api, core - cores.first)) {
                log::error!("{owner}: its task on core {core} was ended");
                ended_by.store(reason, Ordering::Relaxed);
            }
        })
        .map_err(|_| ApiError::QueueFull)?;
        match ended.load(Ordering::Relaxed) {
            NOT_ENDED => Ok(()),
            ENDED_BY_REPOSSESSION => Err(ApiError::Repossessed),
            ENDED_BY_STACK_OVERFLOW => Err(ApiError::StackOverflow),
            _ => Err(ApiError::Panicked),
        }
    }

    fn read_byte(&self) -> Option<u8> {
        crate::console::read_byte()
    }

    fn write_str(&self, text: &str) {
        // A piece at a time under the console lock, however long the text.
        rexo_logline::pieces(text, rexo_logline::TEXT_PIECE_BYTES)
            .for_each(crate::console::write_str);
    }

    fn sleep_ns(&self, ns: u64) {
        crate::time::nap_until(crate::time::now_ns().saturating_add(ns));
    }

    fn memory(&self) -> MemoryInfo {
        let usable = crate::mem::memory_map().map_or(0, |map| map.usable_bytes());
        MemoryInfo {
            usable,
            free: crate::mem::frames::free_bytes(),
            waiting: crate::mem::frames::waiting_bytes(),
        }
    }

    fn apps(&self) -> Vec<AppInfo> {
        all()
            .map(|app| AppInfo {
                name: app.name,
                about: app.about,
            })
            .collect()
    }

    fn run_app(&self, name: &str) -> Result<(), ApiError> {
        // The app runs on the caller's cores and within what is left of the caller's quota,
        // lent to it until it ends (the caller's tasks on other cores cannot take it too).
        let app = find(name).ok_or(ApiError::NoSuchApp)?;
        self.may_start(app)?;
        let lent = Quota::LentBy(self.owner);
        let lender = Some(self.core_holder);
        run_with(app, app_owner(app), self.cores, lent, lender)
    }

    fn reboot(&self) -> ! {
        crate::power::reboot()
    }

    fn power_off(&self) -> ApiError {
        let why = crate::power::power_off();
        ApiError::PowerOffFailed(why)
    }

    fn allocate_memory(&self, bytes: u64) -> Result<MemoryCap, ApiError> {
        crate::caps::allocate_memory(self.owner, bytes)
            .map(MemoryCap::new)
            .map_err(|error| match error {
                crate::caps::MemoryError::OutOfMemory => ApiError::OutOfMemory,
                crate::caps::MemoryError::QuotaExceeded => ApiError::QuotaExceeded,
                crate::caps::MemoryError::Cap(error) => ApiError::Refused(error),
            })
    }

    fn write_memory(&self, cap: &MemoryCap, offset: u64, data: &[u8]) -> Result<(), ApiError> {
        let written = crate::caps::write_memory(self.owner, cap.cap(), offset, data);
        written.map_err(|error| refusal_of(self.owner, &[cap.cap().id()], error))
    }

    fn read_memory(&self, cap: &MemoryCap, offset: u64, buffer: &mut [u8]) -> Result<(), ApiError> {
        let read = crate::caps::read_memory(self.owner, cap.cap(), offset, buffer);
        read.map_err(|error| refusal_of(self.owner, &[cap.cap().id()], error))
    }

    fn revocation_requests(&self) -> Vec<CapInfo> {
        crate::caps::revocation_requests(self.owner)
    }

    fn with_memory(
        &self,
        cap: &mut MemoryCap,
        work: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), ApiError> {
        let entry = [cap.cap().id()];
        let view = crate::caps::map(self.owner, cap);
        work(view.map_err(|error| refusal_of(self.owner, &entry, error))?);
        Ok(())
    }

    fn return_memory(&self, cap: MemoryCap) -> Result<(), (ApiError, MemoryCap)> {
        let give = |cap| crate::caps::return_cap(self.owner, cap, Memory);
        give_back(self.owner, (cap.into_cap(), MemoryCap::new), give)
    }

    fn memory_op(
        &self,
        cap: &MemoryCap,
        op: rexo_api::MemoryOp<'_>,
    ) -> Result<Option<MemoryCap>, ApiError> {
        let used = op.entries_used(cap.cap().id());
        let made = crate::caps::memory_op(self.owner, cap.cap(), op);
        let made = made.map_err(|error| refusal_of(self.owner, &used, error))?;
        Ok(made.map(MemoryCap::new))
    }

    fn delegate_memory(&self, cap: MemoryCap, app: &str) -> Result<(), (ApiError, MemoryCap)> {
        // The runs going, and the owners the kernel acts for (its own tests), searched in
        // place under the lock, in a kernel section: a panic there is no abort of this app
        // that would leave RUNNING locked. So the app's text (perhaps in memory taken back
        // from it) is copied here first, under its abort point ("" names no run).
        let (mut copy, len) = ([0u8; 64], if app.len() <= 64 { app.len() } else { 0 });
        copy[..len].copy_from_slice(&app.as_bytes()[..len]);
        let app = core::str::from_utf8(&copy[..len]).unwrap_or("");
        let acting = CURRENT.iter().filter_map(|slot| *slot.lock());
        let named = acting.map(|run| (run.owner, run.name));
        let search = || rexo_api::running_app(RUNNING.lock().iter().copied().chain(named), app);
        let to = match crate::arch::abort::kernel_section(search) {
            Ok(to) => to,
            Err(error) => return Err((error, cap)),
        };
        // `to` may have ended since: caps::delegate refuses it (`NoSuchApp`).
        let entry = [cap.cap().id()];
        let refused = |(error, cap)| (refusal_of(self.owner, &entry, error), MemoryCap::new(cap));
        crate::caps::delegate(self.owner, cap.into_cap(), to).map_err(refused)
    }

    fn received_memory(&self) -> Vec<MemoryCap> {
        crate::caps::take_delegated(self.owner, Memory)
            .into_iter()
            .map(MemoryCap::new)
            .collect()
    }

    fn capabilities(&self) -> Vec<CapInfo> {
        crate::caps::entries()
    }

    fn core_caps(&self) -> Vec<CoreCap> {
        let kind = Core;
        let caps = crate::caps::take_delegated(self.owner, kind);
        caps.into_iter().map(CoreCap::new).collect()
    }

    fn return_core(&self, cap: CoreCap) -> Result<(), (ApiError, CoreCap)> {
        let give = |cap| crate::caps::return_cap(self.owner, cap, Core);
        give_back(self.owner, (cap.into_cap(), CoreCap::new), give)
    }

    fn arm_timer(&self, deadline_ns: u64) -> Result<TimerCap, ApiError> {
        crate::caps::arm_timer(self.owner, self.core_holder, deadline_ns).map(TimerCap::new)
    }

    fn timer_fired(&self, timer: &TimerCap) -> Result<bool, ApiError> {
        let fired = crate::caps::timer_fired(self.owner, timer.cap());
        fired.map_err(|error| refusal_of(self.owner, &[timer.cap().id()], error))
    }

    fn return_timer(&self, timer: TimerCap) -> Result<(), (ApiError, TimerCap)> {
        let give = |cap| crate::caps::return_cap(self.owner, cap, Timer);
        give_back(self.owner, (timer.into_cap(), TimerCap::new), give)
    }

    fn interrupt_caps(&self) -> Vec<InterruptCap> {
        let caps = crate::caps::take_delegated(self.owner, InterruptVector);
        caps.into_iter().map(InterruptCap::new).collect()
    }

    fn return_interrupt(&self, cap: InterruptCap) -> Result<(), (ApiError, InterruptCap)> {
        let registry = crate::devices::machine().registry();
        let give = |cap| registry.return_interrupt(self.owner.0, cap);
        give_back(self.owner, (cap.into_cap(), InterruptCap::new), give)
    }

    fn pci_functions(&self) -> Vec<PciFunction> {
        crate::devices::machine().functions().to_vec()
    }

    fn devices(&self) -> Vec<rexo_api::DeviceInfo> {
        crate::devices::machine().registry().devices()
    }

    fn disk_extents(
        &self,
        disk: usize,
        op: Option<rexo_api::ExtentOp>,
    ) -> Result<Vec<rexo_api::DiskExtent>, ApiError> {
        crate::devices::machine()
            .registry()
            .extents(disk, self.name, op)
    }

    fn open_device(&self, kind: DeviceKind, index: usize) -> Result<OpenDevice, ApiError> {
        let registry = crate::devices::machine().registry();
        registry.open(kind, index, (self.owner.0, self.name))
    }

    fn bind_net(
        &self,
        index: usize,
        filters: &[rexo_api::Filter],
    ) -> Result<alloc::boxed::Box<dyn rexo_api::NetDevice>, ApiError> {
        let registry = crate::devices::machine().registry();
        let holder = (self.owner.0, self.name);
        registry.bind_net(index, holder, filters, crate::ipv4_config())
    }

    fn net_sharing(&self, index: usize) -> Result<Option<rexo_api::NetSharing>, ApiError> {
        crate::devices::machine().registry().net_sharing(index)
    }

    fn load_baremetal(&self, binary: Option<&[u8]>) -> Result<LoadedInfo, BinaryError> {
        self.baremetal_granted()?;
        let entry = crate::baremetal::APP_BASE;
        let info = |size| LoadedInfo { size, entry };
        let size = crate::baremetal::load(binary, |size| *LOADED.lock() = size.map(info))?;
        Ok(info(size))
    }

    fn exec_baremetal(&self) -> Result<u64, BinaryError> {
        self.baremetal_granted()?;
        let LoadedInfo { size, entry } = (*LOADED.lock()).ok_or(BinaryError::NotLoaded)?;
        log::info!("baremetal: running {size} bytes at {entry:#x}");
        crate::baremetal::run_loaded()
    }
}

/// The BareMetal binary the app area holds (recorded under the area's lock by `load`).
static LOADED: spin::Mutex<Option<LoadedInfo>> = spin::Mutex::new(None);
