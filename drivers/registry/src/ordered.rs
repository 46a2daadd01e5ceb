//! Ordered writes, XN's ordering primitive, for the disks the kernel lends
//! ([`BlockDevice::submit_write_ordered`]).
//!
//! An ordered write waits, in the block layer and not in the app, until every request
//! the holder submitted before it on the same queue has completed; then the layer
//! flushes the disk (so what came before is durable), writes, and flushes again, and
//! only then completes the ordered write to the app. A library file system can so
//! submit a commit block, or a pointer to blocks it just wrote, right behind the writes
//! it depends on and go on working: the disk never holds the pointer without what it
//! points to. Requests submitted after an ordered write are not held back by it.
//! Ordered writes on a queue run one after the other, in the order submitted. When a
//! request submitted before an ordered write fails, the ordered write is not written:
//! it completes with [`DeviceError::DependencyFailed`]. An ordered write that fails
//! (a step of its own, or so) fails every ordered write queued behind it on that queue
//! the same way, as each was submitted after it; those submitted later run as usual.
//!
//! The data is copied once, when the write is submitted, because the request reaches
//! the driver later; a queue holds at most [`MAX_ORDERED_PER_QUEUE`] ordered writes
//! not yet completed, and a holder's ordered writes at most [`MAX_ORDERED_BYTES`] of
//! such copies over all its queues (more are refused with `QueueFull`; the bytes are
//! given back as ordered writes complete, fail or are given up). Tags from
//! [`FIRST_ORDERED_TAG`] up are the layer's; the app gets a driver's tags without that
//! bit ([`app_tag`]), so a driver that counts its tags up past 2^31 never hands out an
//! ordered write's.
//!
//! The writes are kept in the disk's slot, not in the app's lease: before the machine
//! powers off or reboots, the walk that shuts the disks down sends those still queued
//! ([`OrderedWrites::poll_before_shutdown`]) and logs each one it could not, and the
//! disk takes no more ([`OrderedWrites::shut_down`]).

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

use rexo_api::device::DISK_SHUT_DOWN;
use rexo_api::{
    BlockDevice, Completion, DeviceError, MAX_ORDERED_BYTES, MAX_ORDERED_PER_QUEUE, Tag,
};

use crate::exact::submit_write_exact;

/// The first tag of an ordered write: the layer's tags have this bit set. A driver
/// may hand out tags of 2^31 and up too; the app knows those without the bit
/// ([`app_tag`]), so they never meet an ordered write's.
pub(crate) const FIRST_ORDERED_TAG: Tag = 1 << 31;

/// The tag the app knows a driver's request `tag` by: without the bit that marks the
/// layer's own (two requests of a driver that counts its tags are 2^31 apart, so no two
/// in flight at once get the same one).
pub(crate) fn app_tag(tag: Tag) -> Tag {
    tag & !FIRST_ORDERED_TAG
}

/// Where an ordered write is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Waiting for the requests before it.
    Waiting,
    /// The flush before it is in flight.
    Flushing(Tag),
    /// The flush before it is done: the write is next.
    ReadyToWrite,
    /// The write is in flight.
    Writing(Tag),
    /// The write is done: the flush after it is next.
    ReadyToSync,
    /// The flush after it is in flight.
    Syncing(Tag),
}

/// One ordered write.
struct Ordered {
    /// The tag the app was given.
    tag: Tag,
    /// First sector.
    lba: u64,
    /// Sectors.
    sectors: u32,
    /// The bytes to write.
    data: Vec<u8>,
    /// The app's requests still in flight that were submitted before it.
    before: BTreeSet<Tag>,
    /// Whether a request submitted before it failed: it is not written.
    dependency_failed: bool,
    /// Where it is.
    stage: Stage,
}

/// One queue's requests as the layer tracks them.
#[derive(Default)]
struct Queue {
    /// The app's requests in flight, by the tags the app knows them by ([`app_tag`]).
    in_flight: BTreeSet<Tag>,
    /// Ordered writes not completed yet, oldest first; only the oldest moves.
    ordered: VecDeque<Ordered>,
}

impl Queue {
    /// Whether it has requests of the app in flight or ordered writes queued.
    fn busy(&self) -> bool {
        !self.in_flight.is_empty() || !self.ordered.is_empty()
    }
}

/// The ordered writes of one holder of one disk.
#[derive(Default)]
pub(crate) struct OrderedWrites {
    /// Per queue number.
    queues: BTreeMap<usize, Queue>,
    /// The next ordered write's tag.
    next_tag: Tag,
    /// The disk was shut down ([`OrderedWrites::shut_down`]): no more are taken.
    shut_down: bool,
    /// How many ordered writes are queued over all queues, readable without the slot's
    /// lock ([`OrderedWrites::queued_count`]).
    queued: Arc<AtomicUsize>,
}

/// What became of the ordered writes still queued when the disk was shut down
/// ([`OrderedWrites::poll_before_shutdown`], [`OrderedWrites::shut_down`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sent {
    /// Written, flushed on both sides.
    pub(crate) written: usize,
    /// Not written: failed (a step of their own, or a request before them), or still
    /// queued when a poll of the disk failed or the walk's wait ran out.
    pub(crate) not_written: usize,
    /// Why the first of those was not.
    pub(crate) why: Option<DeviceError>,
}

impl OrderedWrites {
    /// How many ordered writes are queued, kept up to date as they are queued, complete,
    /// fail or are given up: the walk at power-off and reboot reads it for a disk whose
    /// lock another call holds, whose ordered writes it cannot send (a snapshot: that
    /// call may change it meanwhile).
    pub(crate) fn queued_count(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.queued)
    }

    /// Notes that the app's request went to the driver on `queue` as its request `tag`;
    /// the tag the app knows it by ([`app_tag`]).
    pub(crate) fn submitted(&mut self, queue: usize, tag: Tag) -> Tag {
        let tag = app_tag(tag);
        self.queues.entry(queue).or_default().in_flight.insert(tag);
        tag
    }

    /// Whether `queue` may take one more ordered write of `bytes`:
    /// [`DeviceError::QueueFull`] when it holds [`MAX_ORDERED_PER_QUEUE`] not yet
    /// completed, or when the copies of every queue's would pass [`MAX_ORDERED_BYTES`]
    /// with it (one write of any size passes when none is held); [`DISK_SHUT_DOWN`]
    /// once the disk was shut down.
    pub(crate) fn room(&self, queue: usize, bytes: usize) -> Result<(), DeviceError> {
        if self.shut_down {
            return Err(DISK_SHUT_DOWN);
        }
        let held = self
            .queues
            .get(&queue)
            .map_or(0, |state| state.ordered.len());
        let held_bytes: usize = self
            .queues
            .values()
            .flat_map(|state| &state.ordered)
            .map(|ordered| ordered.data.len())
            .sum();
        let too_many_bytes = held_bytes > 0 && held_bytes.saturating_add(bytes) > MAX_ORDERED_BYTES;
        if held >= MAX_ORDERED_PER_QUEUE || too_many_bytes {
            return Err(DeviceError::QueueFull);
        }
        Ok(())
    }

    /// Queues an ordered write of `data` (whole sectors) at `lba`; its tag. It goes to
    /// the driver from [`OrderedWrites::poll`]. The caller checked its
    /// [`room`](OrderedWrites::room).
    pub(crate) fn queue_write(
        &mut self,
        queue: usize,
        lba: u64,
        sectors: u32,
        data: Vec<u8>,
    ) -> Tag {
        let tag = FIRST_ORDERED_TAG | (self.next_tag & (FIRST_ORDERED_TAG - 1));
        self.next_tag = self.next_tag.wrapping_add(1);
        self.queued.fetch_add(1, Ordering::Relaxed);
        let state = self.queues.entry(queue).or_default();
        state.ordered.push_back(Ordered {
            tag,
            lba,
            sectors,
            data,
            before: state.in_flight.clone(),
            dependency_failed: false,
            stage: Stage::Waiting,
        });
        tag
    }

    /// Polls `disk`'s `queue`: hands the app's completions to `done` (ordered writes'
    /// among them, once durable), moves the oldest ordered write on, and returns how
    /// many completions `done` got. When the disk's poll fails after it handed
    /// completions out (a driver giving the device up in that poll), what it handed
    /// out still counts, the oldest ordered write's step among them (its write
    /// completes if that was its last flush), and the error is returned, nothing more
    /// submitted.
    pub(crate) fn poll(
        &mut self,
        disk: &mut dyn BlockDevice,
        queue: usize,
        done: Completion<'_>,
    ) -> Result<usize, DeviceError> {
        let state = self.queues.entry(queue).or_default();
        let queued = state.ordered.len();
        let mut count = 0;
        let mut internal = None;
        let busy = state.ordered.front().and_then(|head| match head.stage {
            Stage::Flushing(tag) | Stage::Writing(tag) | Stage::Syncing(tag) => Some(tag),
            _ => None,
        });
        let polled = disk.poll(queue, &mut |tag, result| {
            if Some(tag) == busy {
                internal = Some(result.map(|_| ()));
                return;
            }
            let tag = app_tag(tag);
            state.in_flight.remove(&tag);
            for ordered in &mut state.ordered {
                if ordered.before.remove(&tag) && result.is_err() {
                    ordered.dependency_failed = true;
                }
            }
            done(tag, result);
            count += 1;
        });
        if let (Some(result), Some(head)) = (internal, state.ordered.front_mut()) {
            match (result, head.stage) {
                (Err(error), _) => count += state.fail_oldest(error, done),
                (Ok(()), Stage::Flushing(_)) => head.stage = Stage::ReadyToWrite,
                (Ok(()), Stage::Writing(_)) => head.stage = Stage::ReadyToSync,
                (Ok(()), _) => {
                    done(head.tag, Ok(&[]));
                    count += 1;
                    state.ordered.pop_front();
                }
            }
        }
        if polled.is_ok() {
            count += advance(state, disk, queue, done);
        }
        self.queued
            .fetch_sub(queued - state.ordered.len(), Ordering::Relaxed);
        polled.map(|_| count)
    }

    /// The holder changed, or gave up on its requests: everything tracked belongs to no
    /// one. Returns how many ordered writes were still queued: they will not be written.
    pub(crate) fn clear(&mut self) -> usize {
        self.queues.clear();
        self.queued.swap(0, Ordering::Relaxed)
    }

    /// Whether the holder has requests in flight or ordered writes queued, on any queue.
    pub(crate) fn busy(&self) -> bool {
        self.queues.values().any(Queue::busy)
    }

    /// Moves everything on once before `disk` is shut down (the machine powering off or
    /// rebooting: the walk calls it round after round, `crate::shutdown`): polls each
    /// queue with requests in flight or ordered writes queued, the completions of the
    /// app's requests dropped (nobody polls after the shutdown), the ordered writes'
    /// counted in `sent`. The first poll that fails stops it, with its error.
    pub(crate) fn poll_before_shutdown(
        &mut self,
        disk: &mut dyn BlockDevice,
        sent: &mut Sent,
    ) -> Result<(), DeviceError> {
        let busy: Vec<usize> = self
            .queues
            .iter()
            .filter(|(_, state)| state.busy())
            .map(|(&queue, _)| queue)
            .collect();
        for queue in busy {
            self.poll(
                disk,
                queue,
                &mut |tag, result| match (tag >= FIRST_ORDERED_TAG, result) {
                    (false, _) => {}
                    (true, Ok(_)) => sent.written += 1,
                    (true, Err(error)) => {
                        sent.not_written += 1;
                        sent.why.get_or_insert(error);
                    }
                },
            )?;
        }
        Ok(())
    }

    /// The disk is being shut down: what is tracked is forgotten, and no more ordered
    /// writes are taken ([`Self::room`] answers [`DISK_SHUT_DOWN`]). Returns how many
    /// were still queued: they will not be written.
    pub(crate) fn shut_down(&mut self) -> usize {
        self.shut_down = true;
        self.clear()
    }
}

impl Queue {
    /// Completes the oldest ordered write with `error` through `done`; every ordered
    /// write queued behind it depends on it, so none of them is written. Returns the
    /// completions handed to `done`.
    fn fail_oldest(&mut self, error: DeviceError, done: Completion<'_>) -> usize {
        let Some(oldest) = self.ordered.pop_front() else {
            return 0;
        };
        done(oldest.tag, Err(error));
        for later in &mut self.ordered {
            later.dependency_failed = true;
        }
        1
    }
}

/// Submits the next step of the oldest ordered writes whose turn it is; a step the
/// queue has no room for waits for the next poll, a step the driver refuses completes
/// its write with that error, and one whose dependency failed completes with
/// [`DeviceError::DependencyFailed`] unwritten. Returns the completions handed to
/// `done`.
fn advance(
    state: &mut Queue,
    disk: &mut dyn BlockDevice,
    queue: usize,
    done: Completion<'_>,
) -> usize {
    let mut count = 0;
    while let Some(head) = state.ordered.front_mut() {
        let submitted = match head.stage {
            Stage::Waiting if head.dependency_failed => Err(DeviceError::DependencyFailed),
            Stage::Waiting if head.before.is_empty() => {
                disk.submit_flush(queue).map(Stage::Flushing)
            }
            Stage::ReadyToWrite => {
                let data = &head.data;
                let at = (head.lba, head.sectors);
                submit_write_exact(disk, queue, at, data.len(), &mut |buffer| {
                    buffer.copy_from_slice(data)
                })
                .map(Stage::Writing)
            }
            Stage::ReadyToSync => disk.submit_flush(queue).map(Stage::Syncing),
            _ => return count,
        };
        match submitted {
            Ok(stage) => head.stage = stage,
            Err(DeviceError::QueueFull) => return count,
            Err(error) => count += state.fail_oldest(error, done),
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec;

    /// What reached the disk, in order.
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Event {
        Read(Tag),
        Write(Tag, u64, u8),
        Flush(Tag),
    }

    /// A disk whose requests complete only when the test says so.
    #[derive(Default)]
    struct HeldDisk {
        events: Vec<Event>,
        in_flight: Vec<Tag>,
        release: Vec<Tag>,
        fail_flushes: bool,
        /// Requests that complete with an error when released.
        failing: Vec<Tag>,
        full: bool,
        next: Tag,
        /// Shut down: every later request and poll refused.
        shut_down: bool,
        /// The next poll fails with this after handing out its completions (a driver
        /// giving the device up in that poll).
        fail_after_completions: Option<DeviceError>,
    }

    impl HeldDisk {
        fn take(&mut self) -> Result<Tag, DeviceError> {
            if self.shut_down {
                return Err(rexo_api::device::DISK_SHUT_DOWN);
            }
            if self.full {
                return Err(DeviceError::QueueFull);
            }
            self.next += 1;
            self.in_flight.push(self.next);
            Ok(self.next)
        }

        /// Lets `tags` complete at the next poll.
        fn release(&mut self, tags: &[Tag]) {
            self.in_flight.retain(|tag| !tags.contains(tag));
            self.release.extend_from_slice(tags);
        }

        /// Lets every request in flight complete at the next poll.
        fn release_all(&mut self) {
            self.release.append(&mut self.in_flight);
        }
    }

    impl BlockDevice for HeldDisk {
        fn info(&self) -> rexo_api::BlockInfo {
            rexo_api::BlockInfo {
                sectors: 64,
                sector_size: 512,
                max_sectors: 8,
                queues: 1,
                depth: 8,
                model: String::new(),
            }
        }
        fn submit_read(&mut self, _: usize, _: u64, _: u32) -> Result<Tag, DeviceError> {
            let tag = self.take()?;
            self.events.push(Event::Read(tag));
            Ok(tag)
        }
        fn submit_write_checked(
            &mut self,
            _: usize,
            lba: u64,
            sectors: u32,
            fill: &mut dyn FnMut(&mut [u8]) -> bool,
        ) -> Result<Tag, DeviceError> {
            if self.full {
                return Err(DeviceError::QueueFull);
            }
            let mut buffer = vec![0; sectors as usize * 512];
            if !fill(&mut buffer) {
                return Err(DeviceError::Withdrawn);
            }
            let tag = self.take()?;
            self.events.push(Event::Write(tag, lba, buffer[0]));
            Ok(tag)
        }
        fn submit_flush(&mut self, _: usize) -> Result<Tag, DeviceError> {
            let tag = self.take()?;
            self.events.push(Event::Flush(tag));
            Ok(tag)
        }
        fn poll(&mut self, _: usize, done: Completion<'_>) -> Result<usize, DeviceError> {
            if self.shut_down {
                return Err(rexo_api::device::DISK_SHUT_DOWN);
            }
            let finished = core::mem::take(&mut self.release);
            for &tag in &finished {
                let flush = self.events.contains(&Event::Flush(tag));
                if (flush && self.fail_flushes) || self.failing.contains(&tag) {
                    done(
                        tag,
                        Err(DeviceError::Status {
                            what: "flush",
                            status: 2,
                        }),
                    );
                } else {
                    done(tag, Ok(&[]));
                }
            }
            match self.fail_after_completions.take() {
                Some(error) => Err(error),
                None => Ok(finished.len()),
            }
        }
        fn wake_on_completion(&mut self, _: usize, _: Option<usize>) -> Result<(), DeviceError> {
            Err(DeviceError::Unsupported("wake-ups on a simulated disk"))
        }
        fn abandon_requests(&mut self) {}
        /// The requests it holds are dropped, and it refuses everything after.
        fn shut_down(&mut self, _: rexo_api::Leaving) -> Result<(), DeviceError> {
            self.in_flight.clear();
            self.release.clear();
            self.shut_down = true;
            Ok(())
        }
    }

    /// Polls once; the tags completed and whether each succeeded.
    fn poll(ordered: &mut OrderedWrites, disk: &mut HeldDisk) -> Vec<(Tag, bool)> {
        let mut seen = Vec::new();
        let count = ordered
            .poll(disk, 0, &mut |tag, result| seen.push((tag, result.is_ok())))
            .unwrap();
        assert_eq!(count, seen.len());
        seen
    }

    /// Submits an app write through the layer's bookkeeping.
    fn write(ordered: &mut OrderedWrites, disk: &mut HeldDisk, lba: u64, byte: u8) -> Tag {
        let tag = disk.submit_write(0, lba, 1, &mut |b| b.fill(byte)).unwrap();
        ordered.submitted(0, tag);
        tag
    }

    #[test]
    fn an_ordered_write_waits_for_what_came_before_and_is_flushed_on_both_sides() {
        let (mut ordered, mut disk) = (OrderedWrites::default(), HeldDisk::default());
        let first = write(&mut ordered, &mut disk, 1, 0xA1);
        let second = write(&mut ordered, &mut disk, 2, 0xA2);
        let commit = ordered.queue_write(0, 9, 1, vec![0xC0; 512]);
        assert!(commit >= FIRST_ORDERED_TAG);
        // A read submitted after it is not held back.
        let later = disk.submit_read(0, 5, 1).unwrap();
        ordered.submitted(0, later);
        assert!(poll(&mut ordered, &mut disk).is_empty());
        assert_eq!(disk.events.len(), 3, "nothing of the ordered write yet");

        disk.release(&[first, later]);
        assert_eq!(
            poll(&mut ordered, &mut disk),
            [(first, true), (later, true)]
        );
        assert_eq!(disk.events.len(), 3, "the second write is still in flight");

        disk.release(&[second]);
        assert_eq!(poll(&mut ordered, &mut disk), [(second, true)]);
        let flush_before = disk.next;
        assert_eq!(disk.events.last(), Some(&Event::Flush(flush_before)));
        for step in 0..2 {
            disk.release_all();
            assert!(poll(&mut ordered, &mut disk).is_empty(), "step {step}");
        }
        disk.release_all();
        assert_eq!(poll(&mut ordered, &mut disk), [(commit, true)]);
        assert_eq!(
            disk.events[3..],
            [
                Event::Flush(flush_before),
                Event::Write(flush_before + 1, 9, 0xC0),
                Event::Flush(flush_before + 2),
            ]
        );
    }

    #[test]
    fn an_ordered_write_whose_last_flush_came_in_a_poll_that_failed_completes() {
        let (mut ordered, mut disk) = (OrderedWrites::default(), HeldDisk::default());
        let commit = ordered.queue_write(0, 9, 1, vec![0xC0; 512]);
        // Flushed, written, then synced.
        for step in 0..3 {
            disk.release_all();
            assert!(poll(&mut ordered, &mut disk).is_empty(), "step {step}");
        }
        assert!(matches!(
            ordered.queues[&0].ordered[0].stage,
            Stage::Syncing(_)
        ));
        // The sync completes in the poll in which the driver gives the device up.
        let given_up = DeviceError::Failed("the device was given up");
        disk.release_all();
        disk.fail_after_completions = Some(given_up);
        let mut seen = Vec::new();
        let polled = ordered.poll(&mut disk, 0, &mut |tag, result| {
            seen.push((tag, result.is_ok()))
        });
        assert_eq!(polled, Err(given_up));
        assert_eq!(seen, [(commit, true)], "durable: completed");
        assert_eq!(ordered.queued_count().load(Ordering::Relaxed), 0);
        assert_eq!(ordered.clear(), 0, "nothing left to give up unwritten");
    }

    #[test]
    fn the_bytes_held_count_over_every_queue_and_come_back_as_writes_complete() {
        let (mut ordered, mut disk) = (OrderedWrites::default(), HeldDisk::default());
        assert_eq!(ordered.room(0, 2 * MAX_ORDERED_BYTES), Ok(()), "none held");
        let half = MAX_ORDERED_BYTES / 2;
        let sectors = (half / 512) as u32;
        for queue in 0..2 {
            assert_eq!(ordered.room(queue, half), Ok(()));
            ordered.queue_write(queue, 0, sectors, vec![1; half]);
        }
        assert_eq!(ordered.room(2, 512), Err(DeviceError::QueueFull));
        let mut completed = Vec::new();
        for _ in 0..4 {
            completed.extend(poll(&mut ordered, &mut disk));
            disk.release_all();
        }
        assert_eq!(completed.len(), 1, "queue 0's");
        assert_eq!(ordered.room(2, half), Ok(()));
        assert_eq!(ordered.room(2, half + 1), Err(DeviceError::QueueFull));
        ordered.clear();
        assert_eq!(ordered.room(2, MAX_ORDERED_BYTES), Ok(()), "given up");
    }

    /// The count read without the lock follows the writes queued, completed, failed
    /// and given up.
    #[test]
    fn the_queued_count_follows_the_ordered_writes() {
        let (mut ordered, mut disk) = (OrderedWrites::default(), HeldDisk::default());
        let count = ordered.queued_count();
        let queued = || count.load(Ordering::Relaxed);
        let data = write(&mut ordered, &mut disk, 1, 0xD1);
        for lba in [2, 3] {
            ordered.queue_write(0, lba, 1, vec![0xB2; 512]);
        }
        ordered.queue_write(1, 4, 1, vec![0xB4; 512]);
        assert_eq!(queued(), 3);
        // Queue 1's goes through: flush, write, flush.
        for _ in 0..4 {
            ordered.poll(&mut disk, 1, &mut |_, _| {}).unwrap();
            disk.release_all();
        }
        assert_eq!(queued(), 2);
        // Queue 0's fail behind the failed write.
        disk.failing.push(data);
        disk.release(&[data]);
        poll(&mut ordered, &mut disk);
        assert_eq!(queued(), 0);
        ordered.queue_write(0, 5, 1, vec![0xB5; 512]);
        assert_eq!(queued(), 1);
        ordered.clear();
        assert_eq!(queued(), 0, "given up");
    }

    #[test]
    fn an_ordered_write_behind_a_failed_request_is_not_written_nor_are_those_after_it() {
        let (mut ordered, mut disk) = (OrderedWrites::default(), HeldDisk::default());
        let data = write(&mut ordered, &mut disk, 1, 0xD1);
        let pointer = ordered.queue_write(0, 2, 1, vec![0xB2; 512]);
        let behind = ordered.queue_write(0, 3, 1, vec![0xB3; 512]);
        assert!(poll(&mut ordered, &mut disk).is_empty());
        disk.failing.push(data);
        disk.release(&[data]);
        let mut seen = Vec::new();
        ordered
            .poll(&mut disk, 0, &mut |tag, result| {
                seen.push((tag, result.map(<[u8]>::to_vec)))
            })
            .unwrap();
        let failed = DeviceError::Status {
            what: "flush",
            status: 2,
        };
        assert_eq!(
            seen,
            [
                (data, Err(failed)),
                (pointer, Err(DeviceError::DependencyFailed)),
                (behind, Err(DeviceError::DependencyFailed)),
            ]
        );
        assert_eq!(
            disk.events,
            [Event::Write(data, 1, 0xD1)],
            "nothing more reached the disk"
        );
        // An ordered write submitted after the failure was told of runs as usual.
        let later = ordered.queue_write(0, 4, 1, vec![0xB4; 512]);
        let mut completed = Vec::new();
        for _ in 0..4 {
            completed.extend(poll(&mut ordered, &mut disk));
            disk.release_all();
        }
        assert_eq!(completed, [(later, true)]);
        assert!(disk.events.contains(&Event::Write(disk.next - 1, 4, 0xB4)));
    }

    #[test]
    fn an_ordered_write_through_a_buffer_of_another_length_fails_unwritten() {
        for skew in [-1, 1] {
            let mut disk = rexo_api::testing::MemoryDisk::new(vec![0xEE; 16 * 512]);
            disk.depth = 4;
            disk.write_skew = skew;
            let mut ordered = OrderedWrites::default();
            let tag = ordered.queue_write(0, 2, 1, vec![0xC0; 512]);
            let mut seen = Vec::new();
            for _ in 0..4 {
                ordered
                    .poll(&mut disk, 0, &mut |done, result| {
                        seen.push((done, result.map(<[u8]>::to_vec)))
                    })
                    .unwrap();
            }
            let handed = 512_usize.saturating_add_signed(skew);
            assert_eq!(seen, [(tag, Err(crate::exact::wrong_length(handed)))]);
            assert!(
                disk.data().iter().all(|&byte| byte == 0xEE),
                "nothing written"
            );
        }
    }

    #[test]
    fn before_a_shutdown_every_ordered_write_is_sent_and_each_one_not_written_is_counted() {
        // Sent on its queue, behind a write in flight, round after round; then nothing
        // is busy and nothing more is taken.
        let mut disk = rexo_api::testing::MemoryDisk::new(vec![0; 16 * 512]);
        disk.depth = 4;
        let mut ordered = OrderedWrites::default();
        let tag = disk.submit_write(0, 1, 1, &mut |b| b.fill(1)).unwrap();
        ordered.submitted(0, tag);
        ordered.queue_write(0, 2, 1, vec![2; 512]);
        ordered.queue_write(0, 3, 1, vec![3; 512]);
        let mut sent = Sent::default();
        while ordered.busy() {
            ordered.poll_before_shutdown(&mut disk, &mut sent).unwrap();
        }
        let all_written = Sent {
            written: 2,
            not_written: 0,
            why: None,
        };
        assert_eq!(sent, all_written);
        let written = [[2; 512], [3; 512]];
        assert_eq!(&disk.data()[2 * 512..4 * 512], written.as_flattened());
        assert_eq!(ordered.shut_down(), 0);
        assert_eq!(ordered.room(0, 512), Err(DISK_SHUT_DOWN));

        // A failed flush fails its write and the one behind it.
        let (mut ordered, mut disk) = (OrderedWrites::default(), HeldDisk::default());
        disk.fail_flushes = true;
        ordered.queue_write(0, 3, 1, vec![3; 512]);
        ordered.queue_write(0, 5, 1, vec![5; 512]);
        let mut sent = Sent::default();
        ordered.poll_before_shutdown(&mut disk, &mut sent).unwrap();
        disk.release_all();
        ordered.poll_before_shutdown(&mut disk, &mut sent).unwrap();
        assert_eq!((sent.written, sent.not_written), (0, 2));
        assert!(matches!(sent.why, Some(DeviceError::Status { .. })));
        assert!(!ordered.busy());

        // One whose flush never completes is still queued at the shutdown.
        let (mut ordered, mut disk) = (OrderedWrites::default(), HeldDisk::default());
        ordered.queue_write(0, 3, 1, vec![3; 512]);
        ordered
            .poll_before_shutdown(&mut disk, &mut Sent::default())
            .unwrap();
        assert!(ordered.busy());
        assert_eq!(ordered.shut_down(), 1);
        assert_eq!(
            disk.events,
            [Event::Flush(1)],
            "its first step, never completed"
        );
    }

    #[test]
    fn ordered_writes_run_in_turn_and_errors_and_full_queues_are_handled() {
        let (mut ordered, mut disk) = (OrderedWrites::default(), HeldDisk::default());
        let one = ordered.queue_write(0, 1, 1, vec![1; 512]);
        let two = ordered.queue_write(0, 2, 1, vec![2; 512]);
        assert_ne!(one, two);
        disk.full = true;
        assert!(poll(&mut ordered, &mut disk).is_empty());
        assert!(disk.events.is_empty(), "a full queue is retried later");
        disk.full = false;
        let mut completed = Vec::new();
        for _ in 0..12 {
            completed.extend(poll(&mut ordered, &mut disk));
            disk.release_all();
        }
        assert_eq!(completed, [(one, true), (two, true)]);
        let writes: Vec<u64> = disk
            .events
            .iter()
            .filter_map(|event| match event {
                Event::Write(_, lba, _) => Some(*lba),
                _ => None,
            })
            .collect();
        assert_eq!(writes, [1, 2], "the second waits for the first");

        // A failed flush fails the ordered write, and the one queued behind it; nothing
        // is written.
        let (mut ordered, mut disk) = (OrderedWrites::default(), HeldDisk::default());
        disk.fail_flushes = true;
        let failing = ordered.queue_write(0, 3, 1, vec![3; 512]);
        let behind = ordered.queue_write(0, 5, 1, vec![5; 512]);
        poll(&mut ordered, &mut disk);
        disk.release_all();
        assert_eq!(
            poll(&mut ordered, &mut disk),
            [(failing, false), (behind, false)]
        );
        assert!(!disk.events.iter().any(|e| matches!(e, Event::Write(..))));

        // A new holder starts clean.
        let mut ordered = OrderedWrites::default();
        ordered.queue_write(0, 4, 1, vec![4; 512]);
        ordered.clear();
        let mut disk = HeldDisk::default();
        assert!(poll(&mut ordered, &mut disk).is_empty());
        assert!(disk.events.is_empty());
    }
}
