//! Core and timer capabilities from C: `CoreCap`s and `TimerCap`s as handles, with the
//! rules of `Kernel::core_caps`, `return_core`, `arm_timer`, `timer_fired` and
//! `return_timer`.

use core::ffi::c_int;

use rexo_api::{ApiError, Kernel};

use crate::handles::{Object, hand_out_cores, insert, take_as, with_object};
use crate::{REXO_EBADF, REXO_EINVAL, REXO_EPERM, c_bytes_mut, error_code, status, with_app};

/// `int rexo_core_caps(int64_t *handles, size_t max)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_core_caps(handles: *mut i64, max: usize) -> c_int {
    let Some(bytes) = max.checked_mul(size_of::<i64>()) else {
        return REXO_EINVAL;
    };
    let out = match c_bytes_mut(handles.cast(), bytes) {
        Ok(out) => out,
        Err(code) => return code,
    };
    with_app(|kernel, owner| {
        let ids = hand_out_cores(owner, || kernel.core_caps());
        for (slot, id) in out.chunks_exact_mut(size_of::<i64>()).zip(&ids) {
            slot.copy_from_slice(&id.to_ne_bytes());
        }
        c_int::try_from(ids.len()).unwrap_or(c_int::MAX)
    })
}

/// `int rexo_core_cap_index(int64_t handle)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_core_cap_index(handle: i64) -> c_int {
    with_object(handle, |kernel, object| {
        let Object::Core(cap) = object else {
            return Err(REXO_EBADF);
        };
        let entries = kernel.capabilities();
        let entry = entries.iter().find(|entry| entry.id == cap.cap().id());
        let core = entry.ok_or(REXO_EPERM)?.resource.start();
        Ok(c_int::try_from(core).unwrap_or(c_int::MAX))
    })
}

/// `int rexo_core_return(int64_t handle)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_core_return(handle: i64) -> c_int {
    let pick = |object| match object {
        Object::Core(cap) => Ok(cap),
        other => Err((other, REXO_EBADF)),
    };
    give_back(handle, pick, Kernel::return_core)
}

/// `int64_t rexo_timer_arm(uint64_t deadline_ns)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_timer_arm(deadline_ns: u64) -> i64 {
    with_app(|kernel, owner| match kernel.arm_timer(deadline_ns) {
        Ok(timer) => insert(owner, Object::Timer(timer)),
        Err(error) => error_code(error).into(),
    })
}

/// `int rexo_timer_fired(int64_t handle)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_timer_fired(handle: i64) -> c_int {
    with_object(handle, |kernel, object| match object {
        Object::Timer(timer) => kernel
            .timer_fired(timer)
            .map(c_int::from)
            .map_err(error_code),
        _ => Err(REXO_EBADF),
    })
}

/// `int rexo_timer_return(int64_t handle)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_timer_return(handle: i64) -> c_int {
    let pick = |object| match object {
        Object::Timer(timer) => Ok(timer),
        other => Err((other, REXO_EBADF)),
    };
    give_back(handle, pick, Kernel::return_timer)
}

/// Takes handle `handle` of the app on this core out of the table if `pick` takes what
/// it names (a handle of another kind stays as it is: `REXO_EBADF`), and gives that back
/// to the kernel with `give`. A handle names a live capability of its own kind and app
/// or one the kernel took, so a refusal (`Revoked`) gives back nothing to keep.
fn give_back<T>(
    handle: i64,
    pick: fn(Object) -> Result<T, (Object, c_int)>,
    give: Give<T>,
) -> c_int {
    with_app(|kernel, owner| match take_as(handle, owner, pick) {
        Ok(cap) => status(give(kernel, cap).map_err(|(error, _taken)| error)),
        Err(code) => code,
    })
}

/// A kernel call giving a capability back ([`Kernel::return_core`],
/// [`Kernel::return_timer`]): on a refusal, the reason and the capability.
type Give<T> = fn(&Kernel, T) -> Result<(), (ApiError, T)>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_core_list_that_cannot_be_written_is_refused_before_the_kernel_is_asked() {
        // No host is registered here: asking the kernel would panic.
        assert_eq!(rexo_core_caps(core::ptr::null_mut(), 4), REXO_EINVAL);
        let list = core::ptr::dangling_mut();
        assert_eq!(rexo_core_caps(list, usize::MAX / 4), REXO_EINVAL);
    }
}
