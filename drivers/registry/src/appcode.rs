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

/// Runs `call`, a device call that takes the device's lock and runs the app's code only
/// through the [`AppCode`] it is given, and releases the lock before it returns; then
/// ends the app if its code aborted.
pub(crate) fn calling_app<T>(
    binder: &'static dyn Binder,
    call: impl FnOnce(&mut AppCode) -> T,
) -> T {
    let mut app = AppCode {
        binder,
        aborted: false,
    };
    let result = call(&mut app);
    if app.aborted {
        binder.end_aborted_app();
    }
    result
}
