//! Zero-copy views from C: a memory capability's frames as an address and a length,
//! with the rules of `Kernel::map_memory` (the handle is busy while mapped).

use core::ffi::{c_int, c_void};

use crate::handles::with_memory;
use crate::{REXO_EBUSY, REXO_EINVAL, REXO_OK, error_code, out_params, store_both};

/// `int rexo_map_memory(int64_t handle, void **ptr, uint64_t *len)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_map_memory(handle: i64, ptr: *mut *mut c_void, len: *mut u64) -> c_int {
    // Both checked before anything is mapped.
    let (ptr, len) = match out_params(ptr.cast::<u64>(), len) {
        Ok(both) => both,
        Err(code) => return code,
    };
    with_memory(handle, |kernel, memory| {
        if memory.mapped {
            return Err(REXO_EBUSY);
        }
        let view = |bytes: &mut [u8]| (bytes.as_mut_ptr() as u64, bytes.len() as u64);
        let (start, bytes) = kernel
            .map_memory(&mut memory.cap, view)
            .map_err(error_code)?;
        // An out-parameter taken by force since the call started: REXO_EFAULT, neither
        // written, not mapped.
        store_both((ptr, len), (start, bytes))?;
        // The C app keeps the address past the call (C is beyond the borrow checker):
        // `mapped` stands for the view until rexo_unmap_memory.
        memory.mapped = true;
        Ok(REXO_OK)
    })
}

/// `int rexo_unmap_memory(int64_t handle)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_unmap_memory(handle: i64) -> c_int {
    with_memory(handle, |_, memory| {
        if !memory.mapped {
            return Err(REXO_EINVAL);
        }
        memory.mapped = false;
        Ok(REXO_OK)
    })
}
