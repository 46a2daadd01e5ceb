//! `diskcheck`: patterns over every sector of every disk.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use rexo_api::{
    ApiError, BlockDevice, CapError, DeviceError, DeviceKind, InterruptCap, Kernel, Tag,
};

use crate::pattern;

/// The most requests the check keeps in flight per queue.
const IN_FLIGHT: usize = 8;
/// The most sectors per request.
const CHUNK: u32 = 64;
/// How long a request may take before the check gives up.
const REQUEST_NS: u64 = 30_000_000_000;
/// Reads the wake-up check makes, one at a time.
const WAKE_READS: u64 = 20;
/// The most wake-up reads before the check gives up on seeing a nap: on a loaded host
/// QEMU may finish a read before the guest polls it, several times in a row.
const MAX_WAKE_READS: u64 = 8 * WAKE_READS;
/// The longest nap while a read is in flight; a completion's interrupt ends it early.
const NAP_NS: u64 = 200_000_000;

/// The app's entry point: checks every disk in turn, logging `diskcheck: disk N:
/// FAILED: why` for each that fails (one that cannot be opened, held by another app,
/// too, and the others are still checked), then `diskcheck: done, N disk(s)` (with
/// `, FAILED` if one did); fails if one did or there is none.
pub fn main(kernel: &Kernel) -> Result<(), ApiError> {
    let disks = kernel
        .devices()
        .into_iter()
        .filter(|d| d.kind == DeviceKind::Block);
    let mut failed = false;
    let mut count = 0;
    for device in disks {
        count += 1;
        let index = device.index;
        kernel.log(format_args!(
            "diskcheck: disk {index}: {} at {}: {}",
            device.driver, device.address, device.about
        ));
        let checked = kernel
            .open_block(index)
            .map_err(|error| format!("opening it: {error}"))
            .and_then(|mut disk| check(kernel, index, disk.as_mut()));
        if let Err(why) = checked {
            kernel.log(format_args!("diskcheck: disk {index}: FAILED: {why}"));
            failed = true;
        }
    }
    if count == 0 {
        kernel.log(format_args!("diskcheck: FAILED: no disk"));
        return Err(ApiError::NoSuchDevice);
    }
    kernel.log(format_args!(
        "diskcheck: done, {count} disk(s){}",
        if failed { ", FAILED" } else { "" }
    ));
    if failed {
        Err(ApiError::AppFailed(1))
    } else {
        Ok(())
    }
}

/// Queues one request of a sweep: (disk, queue, first sector, sectors).
type Submit<'a> =
    &'a mut dyn FnMut(&mut dyn BlockDevice, usize, u64, u32) -> Result<Tag, DeviceError>;

/// One request in flight: its queue, tag, first sector and sector count.
struct Flight {
    queue: usize,
    tag: Tag,
    lba: u64,
    sectors: u32,
    since: u64,
}

/// Runs requests over the whole disk, `IN_FLIGHT` per queue; `submit` queues one and
/// `verify` checks a completion's data. Returns the sectors done.
fn sweep(
    kernel: &Kernel,
    disk: &mut dyn BlockDevice,
    submit: Submit<'_>,
    verify: &mut dyn FnMut(u64, &[u8]) -> Option<String>,
) -> Result<u64, String> {
    let info = disk.info();
    let chunk = CHUNK.min(info.max_sectors).max(1);
    let depth = IN_FLIGHT.min(info.depth).max(1);
    let queues = info.queues.max(1);
    let mut flights: Vec<Flight> = Vec::new();
    let mut next = 0u64;
    let mut done = 0u64;
    let mut error: Option<String> = None;
    while next < info.sectors || !flights.is_empty() {
        // Fill every queue up to the depth.
        let mut queue = 0;
        while next < info.sectors && flights.len() < depth * queues {
            let sectors = (info.sectors - next).min(u64::from(chunk)) as u32;
            while flights.iter().filter(|f| f.queue == queue).count() >= depth {
                queue = (queue + 1) % queues;
            }
            match submit(disk, queue, next, sectors) {
                Ok(tag) => flights.push(Flight {
                    queue,
                    tag,
                    lba: next,
                    sectors,
                    since: kernel.now_ns(),
                }),
                Err(DeviceError::QueueFull) => break,
                Err(e) => return Err(format!("submitting sectors {next}+{sectors}: {e}")),
            }
            next += u64::from(sectors);
            queue = (queue + 1) % queues;
        }
        for queue in 0..queues {
            disk.poll(queue, &mut |tag, result| {
                let Some(at) = flights
                    .iter()
                    .position(|f| f.queue == queue && f.tag == tag)
                else {
                    error.get_or_insert(format!(
                        "completion of unknown request {tag} on queue {queue}"
                    ));
                    return;
                };
                let flight = flights.swap_remove(at);
                match result {
                    Ok(data) => {
                        if let Some(why) = verify(flight.lba, data) {
                            error.get_or_insert(why);
                        }
                        done += u64::from(flight.sectors);
                    }
                    Err(e) => {
                        error.get_or_insert(format!(
                            "sectors {}+{}: {e}",
                            flight.lba, flight.sectors
                        ));
                    }
                }
            })
            .map_err(|e| format!("polling queue {queue}: {e}"))?;
        }
        if let Some(why) = error.take() {
            return Err(why);
        }
        if let Some(late) = flights
            .iter()
            .find(|f| kernel.now_ns() - f.since > REQUEST_NS)
        {
            return Err(format!(
                "sectors {}+{} not done after 30 s",
                late.lba, late.sectors
            ));
        }
    }
    Ok(done)
}

/// Waits for one request on queue 0 and returns its outcome (data discarded).
fn wait(kernel: &Kernel, disk: &mut dyn BlockDevice, tag: Tag) -> Result<(), DeviceError> {
    let start = kernel.now_ns();
    let mut outcome = None;
    while outcome.is_none() {
        disk.poll(0, &mut |done, result| {
            if done == tag {
                outcome = Some(result.map(|_| ()));
            }
        })?;
        if kernel.now_ns() - start > REQUEST_NS {
            return Err(DeviceError::Timeout {
                what: "the check's request",
                ms: REQUEST_NS / 1_000_000,
            });
        }
    }
    outcome.unwrap_or(Ok(()))
}

/// The steps on one disk.
fn check(kernel: &Kernel, index: usize, disk: &mut dyn BlockDevice) -> Result<(), String> {
    let info = disk.info();
    let size = info.sector_size as usize;
    let start = kernel.now_ns();
    let written = sweep(
        kernel,
        disk,
        &mut |disk, queue, lba, sectors| {
            disk.submit_write(queue, lba, sectors, &mut |data| {
                for (i, sector) in data.chunks_mut(size).enumerate() {
                    pattern::sector(lba + i as u64, sector);
                }
            })
        },
        &mut |_, _| None,
    )?;
    let write_us = (kernel.now_ns() - start) / 1000;
    kernel.log(format_args!(
        "diskcheck: disk {index}: wrote {written} sectors in {write_us} us"
    ));
    let start = kernel.now_ns();
    let read = sweep(
        kernel,
        disk,
        &mut |disk, queue, lba, sectors| disk.submit_read(queue, lba, sectors),
        &mut |lba, data| {
            data.chunks(size)
                .enumerate()
                .find_map(|(i, sector)| pattern::check_sector(lba + i as u64, sector))
        },
    )?;
    let read_us = (kernel.now_ns() - start) / 1000;
    kernel.log(format_args!(
        "diskcheck: disk {index}: read back {read} sectors byte-exact in {read_us} us"
    ));
    match disk.submit_read(0, info.sectors, 1) {
        Err(error @ DeviceError::OutOfRange { .. }) => {
            kernel.log(format_args!(
                "diskcheck: disk {index}: read past the end refused: {error}"
            ));
        }
        other => return Err(format!("a read past the end was not refused: {other:?}")),
    }
    let tag = disk.submit_flush(0).map_err(|e| format!("flush: {e}"))?;
    wait(kernel, disk, tag).map_err(|e| format!("flush: {e}"))?;
    kernel.log(format_args!("diskcheck: disk {index}: flushed"));
    wake_check(kernel, index, disk)
}

/// Where the disk can wake a core (MSI or MSI-X), reads one sector at a time and
/// sleeps while each is in flight: arm, poll once more, nap. Fails if no nap happened
/// or the naps ran their full length (the completion's message did not wake the core).
fn wake_check(kernel: &Kernel, index: usize, disk: &mut dyn BlockDevice) -> Result<(), String> {
    let core = kernel.core_index();
    if let Err(error) = disk.wake_on_completion(0, Some(core)) {
        kernel.log(format_args!(
            "diskcheck: disk {index}: completions polled, no wake-ups: {error}"
        ));
        return Ok(());
    }
    let (mut naps, mut napped_ns) = (0u64, 0u64);
    let mut reads = 0;
    // At least WAKE_READS reads, and more while none was still in flight when polled.
    while reads < WAKE_READS || (naps == 0 && reads < MAX_WAKE_READS) {
        let read = reads;
        reads += 1;
        let tag = disk
            .submit_read(0, read, 1)
            .map_err(|e| format!("wake-up read {read}: {e}"))?;
        let (mut finished, mut armed) = (false, true);
        let start = kernel.now_ns();
        while !finished {
            disk.poll(0, &mut |done, result| {
                if done == tag {
                    finished = true;
                    if let Err(e) = result {
                        kernel.log(format_args!("diskcheck: disk {index}: wake-up read: {e}"));
                    }
                }
            })
            .map_err(|e| format!("polling a wake-up read: {e}"))?;
            if finished {
                break;
            }
            if kernel.now_ns() - start > REQUEST_NS {
                return Err(format!("wake-up read {read} not done after 30 s"));
            }
            if armed {
                let before = kernel.now_ns();
                kernel.sleep_ns(NAP_NS);
                naps += 1;
                napped_ns += kernel.now_ns() - before;
                armed = false;
            } else {
                disk.wake_on_completion(0, Some(core))
                    .map_err(|e| format!("arming the wake-up: {e}"))?;
                armed = true;
            }
        }
        // Armed for the next read before it is submitted.
        disk.wake_on_completion(0, Some(core))
            .map_err(|e| format!("arming the wake-up: {e}"))?;
    }
    binding_check(kernel, index, disk)?;
    disk.wake_on_completion(0, None)
        .map_err(|e| format!("stopping wake-ups: {e}"))?;
    let average_us = napped_ns / naps.max(1) / 1000;
    kernel.log(format_args!(
        "diskcheck: disk {index}: slept {naps} times during {reads} reads, {average_us} us on average (naps of up to {} ms)",
        NAP_NS / 1_000_000
    ));
    if naps == 0 {
        return Err(String::from(
            "every wake-up read finished before the core could sleep: nothing was shown",
        ));
    }
    // Without the device's message every nap would last its full length.
    if napped_ns / naps > NAP_NS / 2 {
        return Err(format!(
            "the completion's interrupt did not wake the core ({average_us} us per nap)"
        ));
    }
    Ok(())
}

/// The wake-ups bound the disk's interrupt source to this app: one `InterruptCap`, in
/// the capability table and in the disk's `DeviceInfo::interrupts`. A core capability
/// handed in its place is refused and stays; once the binding is returned, it is gone
/// from the table, arming answers `Unbound`, and the disk still works by polling.
fn binding_check(kernel: &Kernel, index: usize, disk: &mut dyn BlockDevice) -> Result<(), String> {
    let mut caps = kernel.interrupt_caps();
    let (Some(cap), 1) = (caps.pop(), caps.len() + 1) else {
        return Err(format!("{} interrupt bindings, not one", caps.len()));
    };
    let id = cap.cap().id();
    let entry = kernel.capabilities().into_iter().find(|e| e.id == id);
    let entry = entry.ok_or("the interrupt binding is not in the capability table")?;
    let bound = kernel
        .devices()
        .into_iter()
        .find(|d| d.kind == DeviceKind::Block && d.index == index)
        .is_some_and(|d| d.interrupts.iter().any(|b| (b.entry, b.queue) == (id, 0)));
    if !bound {
        return Err(String::from("the disk does not list its interrupt binding"));
    }
    kernel.log(format_args!(
        "diskcheck: disk {index}: interrupt binding: {} held by {} rights {}",
        entry.resource, entry.owner, entry.rights
    ));
    if let Some(core) = kernel.core_caps().pop() {
        let core_id = core.cap().id();
        match kernel.return_interrupt(InterruptCap::new(core.into_cap())) {
            Err((ApiError::Refused(CapError::WrongKind), back))
                if back.cap().id() == core_id && listed_id(kernel, core_id) => {}
            other => {
                return Err(format!(
                    "a core capability given back as a binding: {other:?}"
                ));
            }
        }
    }
    kernel
        .return_interrupt(cap)
        .map_err(|(e, _)| format!("returning the interrupt binding: {e}"))?;
    if listed_id(kernel, id) {
        return Err(String::from("the returned binding is still in the table"));
    }
    match disk.wake_on_completion(0, Some(kernel.core_index())) {
        Err(DeviceError::Unbound) => {}
        other => return Err(format!("arming a returned binding: {other:?}")),
    }
    let tag = disk
        .submit_read(0, 0, 1)
        .map_err(|e| format!("a polled read: {e}"))?;
    wait(kernel, disk, tag).map_err(|e| format!("a polled read: {e}"))?;
    kernel.log(format_args!(
        "diskcheck: disk {index}: interrupt binding returned: arming refused ({}), polling works",
        DeviceError::Unbound
    ));
    Ok(())
}

/// Whether the capability table lists entry `id`.
fn listed_id(kernel: &Kernel, id: rexo_api::EntryId) -> bool {
    kernel.capabilities().iter().any(|e| e.id == id)
}
