//! A disk in memory for host tests of code written against [`BlockDevice`] (the
//! `testing` feature; test crates take it as
//! `[dev-dependencies] rexo-api = { workspace = true, features = ["testing"] }`, so no
//! app or kernel build carries it).
//!
//! [`MemoryDisk::new`] makes a plain disk: 512-byte sectors, as many as its data
//! holds, one queue, requests of at most [`MemoryDisk::max_sectors`] sectors and at
//! most [`MemoryDisk::depth`] in flight, tags counting up from 1, every request
//! finished at the next `poll` in the order submitted. A test changes the public settings it needs (a misbehaving disk, a
//! failing sector range, a `poll` that fails) and reads what the disk counted.
//!
//! [`BlockDevice::shut_down`] drops the requests in flight (their writes landed when
//! taken) and refuses every later request and poll with [`DISK_SHUT_DOWN`].
//!
//! A request past `max_sectors`, or past `depth` in flight, panics: those are the
//! caller's bugs, which the test must catch. A write's `fill` gets a copy of the disk's
//! own bytes (or, with [`MemoryDisk::stale_write_bytes`], a buffer of leftovers), so
//! whatever the buffer holds after it (even one of the wrong length) lands on the disk at
//! once unless it withdraws the write; a read's data is taken from the disk when it
//! completes.

use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Range;

use crate::device::DISK_SHUT_DOWN;
use crate::{BlockDevice, BlockInfo, Completion, DeviceError, Leaving, Tag};

/// Asserts what every disk owes once it was shut down ([`BlockDevice::shut_down`]): a
/// read, a write and a flush submitted on queue 0, a poll of it and an arming of its
/// wake-up each refused with [`DISK_SHUT_DOWN`], and a second shutdown too. The block
/// drivers' host tests (and this module's) call it.
pub fn assert_refuses_everything(disk: &mut dyn BlockDevice) {
    assert_eq!(disk.submit_read(0, 0, 1), Err(DISK_SHUT_DOWN));
    assert_eq!(
        disk.submit_write(0, 0, 1, &mut |b| b.fill(1)),
        Err(DISK_SHUT_DOWN)
    );
    assert_eq!(disk.submit_flush(0), Err(DISK_SHUT_DOWN));
    assert_eq!(disk.poll(0, &mut |_, _| {}), Err(DISK_SHUT_DOWN));
    assert_eq!(disk.wake_on_completion(0, Some(0)), Err(DISK_SHUT_DOWN));
    assert_eq!(
        disk.shut_down(Leaving::PowerOff),
        Err(DISK_SHUT_DOWN),
        "told once"
    );
}

/// Bytes per sector of a [`MemoryDisk`].
pub const SECTOR_SIZE: usize = 512;

/// How a request taken by a [`MemoryDisk`] will complete.
#[derive(Clone, Debug)]
enum Outcome {
    /// A read: these bytes of the disk.
    Read(Range<usize>),
    /// A write or flush: no data.
    Done,
    /// A read of a failing sector: a device status error.
    Failed,
}

/// A disk in memory that implements [`BlockDevice`] for tests (see the module's
/// documentation for its default behaviour).
#[derive(Clone, Debug)]
pub struct MemoryDisk {
    /// The disk's bytes: whole sectors (the disk says it holds `len / 512` of them).
    data: Vec<u8>,
    /// Requests taken and not yet handed to `poll`, oldest first.
    in_flight: Vec<(Tag, Outcome)>,
    /// The tag of the next request.
    next_tag: Tag,
    /// The sectors of every read and write taken, in order (flushes carry none).
    request_sizes: Vec<u32>,
    /// The most requests ever in flight at once.
    most_in_flight: usize,
    /// The most sectors one request may cover (default 8).
    pub max_sectors: u32,
    /// Requests the queue holds in flight (default 1).
    pub depth: usize,
    /// Bytes a read hands over beyond what was asked (negative: fewer), as a faulty
    /// device or driver might (default 0). Never past the end of the data.
    pub read_skew: isize,
    /// Bytes a write's buffer has beyond what was asked (negative: fewer) (default 0).
    /// Never past the end of the data.
    pub write_skew: isize,
    /// `Some(byte)`: a write's buffer comes to `fill` holding only `byte`, as a driver's
    /// DMA buffer holds an earlier request's bytes (default `None`: a copy of the disk's
    /// own bytes there).
    pub stale_write_bytes: Option<u8>,
    /// Reads touching these sectors complete with [`DeviceError::Status`] (default
    /// none).
    pub failing_reads: Range<u64>,
    /// `Some(n)`: `poll` works `n` more times, then fails with [`DeviceError::Timeout`]
    /// until set back (default `None`: it never fails).
    pub polls_before_failing: Option<usize>,
    /// When on, each `poll` finishes only the newest request in flight, so that a caller
    /// which stops polling early leaves the others in flight (default off: every
    /// request, in the order submitted).
    pub newest_first: bool,
    /// Shut down ([`BlockDevice::shut_down`]): every later request and poll is refused.
    shut_down: bool,
}

impl MemoryDisk {
    /// A disk holding `data` (whole 512-byte sectors) with the default settings.
    pub fn new(data: Vec<u8>) -> Self {
        assert!(
            data.len().is_multiple_of(SECTOR_SIZE),
            "a disk of whole sectors"
        );
        Self {
            data,
            in_flight: Vec::new(),
            next_tag: 1,
            request_sizes: Vec::new(),
            most_in_flight: 0,
            max_sectors: 8,
            depth: 1,
            read_skew: 0,
            write_skew: 0,
            stale_write_bytes: None,
            failing_reads: 0..0,
            polls_before_failing: None,
            newest_first: false,
            shut_down: false,
        }
    }

    /// The disk's bytes as they are now.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The sectors of every read and write taken so far, in order.
    pub fn request_sizes(&self) -> &[u32] {
        &self.request_sizes
    }

    /// The most requests that were ever in flight at once.
    pub fn most_in_flight(&self) -> usize {
        self.most_in_flight
    }

    /// Requests taken and not yet completed or abandoned.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether the disk was shut down ([`BlockDevice::shut_down`]).
    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }

    /// Checks a request of `sectors` from `lba` on `queue` and returns its bytes, grown
    /// or shrunk by `skew` (within the data).
    fn span(
        &self,
        queue: usize,
        lba: u64,
        sectors: u32,
        skew: isize,
    ) -> Result<Range<usize>, DeviceError> {
        assert!(
            sectors <= self.max_sectors,
            "a request of {sectors} sectors is over max_sectors {}",
            self.max_sectors
        );
        let capacity = (self.data.len() / SECTOR_SIZE) as u64;
        self.usable(queue)?;
        if lba.saturating_add(u64::from(sectors)) > capacity {
            return Err(DeviceError::OutOfRange {
                lba,
                sectors: u64::from(sectors),
                capacity,
            });
        }
        let start = lba as usize * SECTOR_SIZE;
        let end = (start + sectors as usize * SECTOR_SIZE).saturating_add_signed(skew);
        Ok(start..end.clamp(start, self.data.len()))
    }

    /// [`DeviceError::NoSuchQueue`] for a queue but 0, [`DISK_SHUT_DOWN`] once the disk
    /// was shut down.
    fn usable(&self, queue: usize) -> Result<(), DeviceError> {
        if queue != 0 {
            return Err(DeviceError::NoSuchQueue(queue));
        }
        if self.shut_down {
            return Err(DISK_SHUT_DOWN);
        }
        Ok(())
    }

    /// Takes a request that will complete with `outcome`; returns its tag.
    fn take(&mut self, outcome: Outcome) -> Tag {
        assert!(
            self.in_flight.len() < self.depth,
            "more than depth {} requests in flight",
            self.depth
        );
        let tag = self.next_tag;
        self.next_tag = self.next_tag.wrapping_add(1);
        self.in_flight.push((tag, outcome));
        self.most_in_flight = self.most_in_flight.max(self.in_flight.len());
        tag
    }
}

impl BlockDevice for MemoryDisk {
    fn info(&self) -> BlockInfo {
        BlockInfo {
            sectors: (self.data.len() / SECTOR_SIZE) as u64,
            sector_size: SECTOR_SIZE as u32,
            max_sectors: self.max_sectors,
            queues: 1,
            depth: self.depth,
            model: String::from("memory"),
        }
    }

    fn submit_read(&mut self, queue: usize, lba: u64, sectors: u32) -> Result<Tag, DeviceError> {
        let span = self.span(queue, lba, sectors, self.read_skew)?;
        let failing = lba < self.failing_reads.end
            && self.failing_reads.start < lba.saturating_add(u64::from(sectors));
        self.request_sizes.push(sectors);
        Ok(self.take(if failing {
            Outcome::Failed
        } else {
            Outcome::Read(span)
        }))
    }

    /// The fill writes a buffer of its own (a driver's DMA buffer), copied to the disk
    /// only if the write goes.
    fn submit_write_checked(
        &mut self,
        queue: usize,
        lba: u64,
        sectors: u32,
        fill: &mut dyn FnMut(&mut [u8]) -> bool,
    ) -> Result<Tag, DeviceError> {
        let span = self.span(queue, lba, sectors, self.write_skew)?;
        let mut buffer = match self.stale_write_bytes {
            Some(byte) => alloc::vec![byte; span.len()],
            None => self.data[span.clone()].to_vec(),
        };
        if !fill(&mut buffer) {
            return Err(DeviceError::Withdrawn);
        }
        self.data[span].copy_from_slice(&buffer);
        self.request_sizes.push(sectors);
        Ok(self.take(Outcome::Done))
    }

    fn submit_flush(&mut self, queue: usize) -> Result<Tag, DeviceError> {
        self.usable(queue)?;
        Ok(self.take(Outcome::Done))
    }

    fn poll(&mut self, queue: usize, done: Completion<'_>) -> Result<usize, DeviceError> {
        self.usable(queue)?;
        match &mut self.polls_before_failing {
            Some(0) => {
                return Err(DeviceError::Timeout {
                    what: "the completion queue",
                    ms: 5,
                });
            }
            Some(left) => *left -= 1,
            None => {}
        }
        let finished = if self.newest_first {
            self.in_flight.pop().into_iter().collect()
        } else {
            core::mem::take(&mut self.in_flight)
        };
        for (tag, outcome) in &finished {
            match outcome {
                Outcome::Read(span) => done(*tag, Ok(&self.data[span.clone()])),
                Outcome::Done => done(*tag, Ok(&[])),
                Outcome::Failed => done(
                    *tag,
                    Err(DeviceError::Status {
                        what: "read",
                        status: 1,
                    }),
                ),
            }
        }
        Ok(finished.len())
    }

    fn wake_on_completion(&mut self, _: usize, _: Option<usize>) -> Result<(), DeviceError> {
        if self.shut_down {
            return Err(DISK_SHUT_DOWN);
        }
        Err(DeviceError::Unsupported("wake-ups on a disk in memory"))
    }

    fn abandon_requests(&mut self) {
        self.in_flight.clear();
    }

    /// Its writes landed when they were taken: the requests in flight are dropped, and
    /// the disk refuses everything after.
    fn shut_down(&mut self, _: Leaving) -> Result<(), DeviceError> {
        if self.shut_down {
            return Err(DISK_SHUT_DOWN);
        }
        self.in_flight.clear();
        self.shut_down = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// Polls `disk` once; returns each completion's tag and its data or error.
    fn poll(disk: &mut MemoryDisk) -> Vec<(Tag, Result<Vec<u8>, DeviceError>)> {
        let mut finished = Vec::new();
        disk.poll(0, &mut |tag, data| {
            finished.push((tag, data.map(<[u8]>::to_vec)))
        })
        .unwrap();
        finished
    }

    #[test]
    fn requests_finish_at_the_next_poll_in_order_and_bad_ones_are_refused() {
        let mut disk = MemoryDisk::new((0..4 * 512).map(|i| (i / 512) as u8).collect());
        disk.depth = 3;
        assert_eq!(disk.info().sectors, 4);
        assert_eq!(disk.submit_write(0, 1, 1, &mut |b| b.fill(9)), Ok(1));
        assert_eq!(disk.submit_read(0, 1, 2), Ok(2));
        assert_eq!(disk.submit_flush(0), Ok(3));
        let mut expected = vec![9; 512];
        expected.extend([2; 512]);
        assert_eq!(
            poll(&mut disk),
            [(1, Ok(vec![])), (2, Ok(expected)), (3, Ok(vec![]))]
        );
        assert_eq!(
            (disk.request_sizes(), disk.most_in_flight()),
            (&[1, 2][..], 3)
        );
        assert_eq!(
            disk.submit_read(0, 3, 2),
            Err(DeviceError::OutOfRange {
                lba: 3,
                sectors: 2,
                capacity: 4
            })
        );
        assert_eq!(disk.submit_flush(1), Err(DeviceError::NoSuchQueue(1)));
        assert_eq!(disk.in_flight(), 0, "refused requests are not taken");
    }

    #[test]
    fn a_disk_shut_down_refuses_every_later_request_and_poll() {
        let mut disk = MemoryDisk::new(vec![5; 2 * 512]);
        disk.submit_write(0, 0, 1, &mut |b| b.fill(9)).unwrap();
        assert_eq!(disk.shut_down(Leaving::PowerOff), Ok(()));
        assert!(disk.is_shut_down());
        assert_eq!(disk.in_flight(), 0);
        assert_eq!(disk.data[..512], [9; 512], "the write landed");
        assert_refuses_everything(&mut disk);
        assert_eq!(
            disk.data,
            [[9; 512], [5; 512]].concat(),
            "nothing written after"
        );
    }

    #[test]
    fn a_withdrawn_write_leaves_the_disk_as_it_was() {
        let mut disk = MemoryDisk::new(vec![5; 2 * 512]);
        let withdrawn = disk.submit_write_checked(0, 0, 2, &mut |buffer| {
            buffer.fill(9);
            false
        });
        assert_eq!(withdrawn, Err(DeviceError::Withdrawn));
        assert_eq!(disk.data, vec![5; 2 * 512]);
        assert_eq!(poll(&mut disk), []);
    }

    #[test]
    fn a_write_buffer_can_come_with_stale_bytes() {
        let mut disk = MemoryDisk::new(vec![5; 2 * 512]);
        disk.stale_write_bytes = Some(0xDD);
        let mut seen = Vec::new();
        disk.submit_write(0, 1, 1, &mut |buffer| seen = buffer.to_vec())
            .unwrap();
        assert_eq!(seen, vec![0xDD; 512]);
        assert_eq!(disk.data[..512], [5; 512]);
        assert_eq!(disk.data[512..], [0xDD; 512], "what the fill left goes out");
    }

    #[test]
    fn the_settings_skew_fail_and_reorder_completions() {
        let mut disk = MemoryDisk::new(vec![5; 4 * 512]);
        disk.depth = 2;
        disk.read_skew = 600;
        disk.failing_reads = 0..1;
        disk.newest_first = true;
        disk.polls_before_failing = Some(2);
        disk.submit_read(0, 0, 1).unwrap();
        disk.submit_read(0, 3, 1).unwrap();
        let status = DeviceError::Status {
            what: "read",
            status: 1,
        };
        assert_eq!(poll(&mut disk), [(2, Ok(vec![5; 512]))], "within the data");
        assert_eq!(poll(&mut disk), [(1, Err(status))]);
        assert!(matches!(
            disk.poll(0, &mut |_, _| ()),
            Err(DeviceError::Timeout { .. })
        ));
        disk.write_skew = -12;
        let mut handed = 0;
        disk.submit_write(0, 0, 1, &mut |b| handed = b.len())
            .unwrap();
        assert_eq!(handed, 500);
        disk.abandon_requests();
        assert_eq!(disk.in_flight(), 0);
    }
}
