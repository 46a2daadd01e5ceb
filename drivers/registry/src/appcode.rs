//! The app's own code inside a device call. A lease or a binding on a shared interface
//! calls the app's closures (a frame's `deliver`, a send's `fill`, a disk write's `fill`,
//! a request's completion) with the slot's lock held, or a queue pair's gate. An app
//! that panics there, or breaks the abort protocol, must not end there: its abort point
//! would skip the unlock, and the end of the app, which takes that lock to end its
//! leases, would wait forever, with every app sharing the interface. So each closure runs
//! under an abort point of its own ([`Binder::run_app_code`]); once one aborts, the call
//! hands the app nothing more, finishes with the device as it would have, unlocks, and
//! only then ends the app ([`Binder::end_aborted_app`]). A frame or disk write whose
//! `fill` aborted is withdrawn, not sent: the device never sees a half-filled buffer,
//! and the disk keeps what it held.
//!
//! The registry's own code in such a call, and in every other call an app makes (a
//! question about the devices, an open, a bind, a drop), runs as a kernel section
//! ([`Binder::kernel_section`]): a panic or a failed allocation there is the kernel's, a
//! crash report, never the app ended in the middle of it with a slot's lock or a queue
//! pair's gate held, which no later caller would get back. Sections nest; the app's code
//! runs only through the outermost call's [`AppCode`], so its end comes once no section
//! is left.

use crate::Binder;

/// The app's code within one device call ([`calling_app`]).
pub(crate) struct AppCode {
    /// The kernel's abort points.
    binder: &'static dyn Binder,
    /// Whether the app's code aborted during this call.
    aborted: bool,
}

impl AppCode {
    /// Runs `code` under its own abort point; `None` if it aborts, or without running it
    /// if the app's code already aborted during this call.
    pub(crate) fn run<R>(&mut self, code: impl FnOnce() -> R) -> Option<R> {
        if self.aborted {
            return None;
        }
        let mut code = Some(code);
        let mut output = None;
        self.aborted = self
            .binder
            .run_app_code(&mut || output = code.take().map(|code| code()));
        output
    }
}

/// Runs `call`, registry code an app's call reached, which runs the app's code only
/// through the [`AppCode`] it is given and releases every lock it takes before it
/// returns, as a kernel section; then, the section over, ends the app if its code
/// aborted.
pub(crate) fn calling_app<T>(
    binder: &'static dyn Binder,
    call: impl FnOnce(&mut AppCode) -> T,
) -> T {
    let mut app = AppCode {
        binder,
        aborted: false,
    };
    let mut call = Some(call);
    let mut result = None;
    binder.kernel_section(&mut || result = call.take().map(|call| call(&mut app)));
    if app.aborted {
        binder.end_aborted_app();
    }
    result.expect("a kernel section runs its call")
}
