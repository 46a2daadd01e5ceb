//! What the kernel tests read of the page tables.

use core::sync::atomic::Ordering;

use super::{ADDRESS_MASK, GIB4, HUGE, LOCK, PRESENT, ROOT, installed, table};

/// Whether `addr` is mapped (what the kernel tests check of guard pages and the map).
pub fn is_mapped(addr: u64) -> bool {
    if !installed() {
        return addr < GIB4;
    }
    let Some(_guard) = LOCK.try_lock() else {
        return false;
    };
    let pml4e = table(ROOT.load(Ordering::Relaxed))[(addr >> 39) as usize & 511];
    if pml4e & PRESENT == 0 {
        return false;
    }
    let pdpte = table(pml4e & ADDRESS_MASK)[(addr >> 30) as usize & 511];
    if pdpte & PRESENT == 0 || pdpte & HUGE != 0 {
        return pdpte & PRESENT != 0;
    }
    let pde = table(pdpte & ADDRESS_MASK)[(addr >> 21) as usize & 511];
    if pde & PRESENT == 0 || pde & HUGE != 0 {
        return pde & PRESENT != 0;
    }
    table(pde & ADDRESS_MASK)[(addr >> 12) as usize & 511] & PRESENT != 0
}
