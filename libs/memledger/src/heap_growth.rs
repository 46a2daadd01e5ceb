//! The kernel heap's growth for app code, per owner: every app's `Vec`s and `Box`es come
//! from the kernel's one heap, which takes frames when it runs out. The growth a run's own
//! code causes is counted against the run's quota here, apart from the ledger's grants
//! and without a lock: the heap grows with its own lock held, where the ledger's (held
//! around allocations) cannot be taken.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use rexo_captable::OwnerId;

/// Per owner, the bytes its current run's code made the kernel heap grow by.
pub struct HeapGrowth<const OWNERS: usize> {
    grown: [AtomicU64; OWNERS],
}

impl<const OWNERS: usize> HeapGrowth<OWNERS> {
    /// No growth counted for anyone.
    pub const fn new() -> Self {
        Self {
            grown: [const { AtomicU64::new(0) }; OWNERS],
        }
    }

    /// Counts `bytes` more growth for the run `run` (its owner and quota, `None`: no
    /// limit) if its count stays within the quota, then runs `take` (which takes the
    /// frames); the count is taken back if `take` gives `None` (no further than 0: the
    /// run's end may have cleared the count meanwhile). `None` without calling
    /// `take` past the quota, or for an owner beyond the books. Without a run (`None`: the
    /// kernel's own code) nothing is counted.
    pub fn charged<T>(
        &self,
        run: Option<(OwnerId, Option<u64>)>,
        bytes: u64,
        take: impl FnOnce() -> Option<T>,
    ) -> Option<T> {
        let Some((owner, quota)) = run else {
            return take();
        };
        let grown = self.grown.get(usize::from(owner.0))?;
        let within = |grown: u64| {
            let total = grown.checked_add(bytes)?;
            quota.is_none_or(|quota| total <= quota).then_some(total)
        };
        grown.fetch_update(Relaxed, Relaxed, within).ok()?;
        let taken = take();
        if taken.is_none() {
            let back = |grown: u64| Some(grown.saturating_sub(bytes));
            let _always_some = grown.fetch_update(Relaxed, Relaxed, back);
        }
        taken
    }

    /// Forgets `owner`'s count: its run ended (what the heap took stays in the heap, for
    /// every later allocation; it never gives frames back).
    pub fn clear(&self, owner: OwnerId) {
        if let Some(grown) = self.grown.get(usize::from(owner.0)) {
            grown.store(0, Relaxed);
        }
    }
}

impl<const OWNERS: usize> Default for HeapGrowth<OWNERS> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn growth_is_refused_past_the_quota_and_counted_per_owner() {
        let growth: HeapGrowth<4> = HeapGrowth::new();
        let (app, other) = (Some((OwnerId(1), Some(MIB))), Some((OwnerId(2), Some(MIB))));
        let take = || Some(());
        assert_eq!(growth.charged(app, MIB / 2, take), Some(()));
        assert_eq!(
            growth.charged(app, MIB / 2, take),
            Some(()),
            "up to the quota"
        );
        let mut called = false;
        let past = growth.charged(app, 1, || {
            called = true;
            Some(())
        });
        assert_eq!(
            (past, called),
            (None, false),
            "one byte past it takes nothing"
        );
        assert_eq!(growth.charged(other, MIB, take), Some(()), "its own count");
        let unlimited = Some((OwnerId(3), None));
        assert_eq!(
            growth.charged(unlimited, u64::MAX, take),
            Some(()),
            "no limit"
        );
        assert_eq!(growth.charged(unlimited, 1, take), None, "but no overflow");
        let beyond = Some((OwnerId(4), None));
        assert_eq!(growth.charged(beyond, 1, take), None, "beyond the books");
        assert_eq!(
            growth.charged(None, u64::MAX, take),
            Some(()),
            "the kernel's"
        );
    }

    #[test]
    fn a_failed_growth_taken_back_after_the_runs_clear_leaves_the_count_at_0() {
        let growth: HeapGrowth<2> = HeapGrowth::new();
        let app = Some((OwnerId(1), Some(MIB)));
        let cleared_meanwhile = growth.charged(app, MIB / 2, || {
            growth.clear(OwnerId(1));
            None::<()>
        });
        assert_eq!(cleared_meanwhile, None);
        assert_eq!(
            growth.charged(app, MIB, || Some(())),
            Some(()),
            "the count did not wrap past the quota"
        );
    }

    #[test]
    fn growth_without_frames_and_a_cleared_count_make_room_again() {
        let growth: HeapGrowth<2> = HeapGrowth::new();
        let app = Some((OwnerId(1), Some(MIB)));
        assert_eq!(growth.charged(app, MIB, || None::<()>), None, "no frames");
        assert_eq!(
            growth.charged(app, MIB, || Some(())),
            Some(()),
            "nothing was counted"
        );
        assert_eq!(growth.charged(app, 1, || Some(())), None);
        growth.clear(OwnerId(1));
        assert_eq!(
            growth.charged(app, MIB, || Some(())),
            Some(()),
            "a new run starts at 0"
        );
    }
}
