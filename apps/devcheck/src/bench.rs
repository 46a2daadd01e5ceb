//! The driver benchmarks' apps (`cargo xtask bench drivers`, docs/bench.md), written
//! only against `rexo-api` like the checks:
//!
//! - `netbench`: on every network interface, frames/s sent and received for 64- and
//!   1514-byte frames, and the cost of polling an empty receive queue.
//! - `diskbench`: on every disk, sequential write and read MiB/s, and 4 KiB random-read
//!   IOPS at queue depth 1 and 32.
//!
//! Each figure is one line `devbench KIND INDEX NAME count=N ns=T [depth=D]`: `count`
//! operations (frames, polls, requests) or bytes took `T` ns in all; [`parse`] reads
//! them back on the host. A step that fails prints `devbench KIND INDEX FAILED: why`.
//! Before its figures each device is named by its driver, `devbench-device KIND INDEX
//! DRIVER` ([`parse_device`]), so that the host knows whose figure is whose when several
//! devices are attached.
//! The data is not checked (the checks do that): frames carry a header and a sequence
//! number only, and blocks whatever their buffer held, so the figures are the driver's
//! and the device's, not the pattern code's.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use rexo_api::{ApiError, BlockDevice, DeviceError, DeviceKind, Kernel, NetDevice, Tag};

use crate::pattern::{ETHERTYPE_FROM_PEER, ETHERTYPE_FROM_REXO, HEADER};

/// Frames sent per transmit figure, and asked of the peer per receive figure.
pub const BENCH_FRAMES: u32 = 20_000;
/// Receive calls timed on an empty queue.
pub const EMPTY_POLLS: u32 = 100_000;
/// The frame sizes measured.
pub const FRAME_SIZES: [usize; 2] = [64, 1514];
/// Bytes 14..18 of a control frame asking the peer to stream frames of the size in
/// bytes 18..20 (big-endian) until told to stop.
pub const SEND_MAGIC: [u8; 4] = *b"SEND";
/// Bytes 14..18 of a control frame telling the peer to stop streaming.
pub const STOP_MAGIC: [u8; 4] = *b"STOP";
/// A control frame is this long.
pub const CONTROL_LEN: usize = 60;
/// How long the receive figure waits for the first frame.
const FIRST_FRAME_NS: u64 = 10_000_000_000;
/// Silence after which the peer's stream counts as over.
const BURST_END_NS: u64 = 500_000_000;

/// Bytes per random read.
pub const RANDOM_BYTES: u32 = 4096;
/// Random reads per depth-1 figure.
pub const RANDOM_QD1: u32 = 2_000;
/// Random reads per depth-32 figure.
pub const RANDOM_QD32: u32 = 10_000;
/// The deep queue depth.
pub const DEEP: usize = 32;
/// Bytes per sequential request.
pub const SEQUENTIAL_BYTES: u32 = 128 * 1024;
/// The most requests in flight for the sequential figures.
pub const SEQUENTIAL_DEPTH: usize = 8;
/// How long any request may take.
const REQUEST_NS: u64 = 30_000_000_000;

/// One `devbench` figure line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Figure {
    /// `nic` or `disk`.
    pub kind: String,
    /// The device's index among its kind.
    pub index: usize,
    /// What was measured (`tx-64`, `randread-qd32`, ...).
    pub name: String,
    /// Operations or bytes.
    pub count: u64,
    /// Nanoseconds for all of them.
    pub ns: u64,
    /// Requests kept in flight, where that matters.
    pub depth: Option<u64>,
}

impl Figure {
    /// Operations (or bytes) per second.
    pub fn per_second(&self) -> f64 {
        self.count as f64 * 1e9 / (self.ns.max(1)) as f64
    }
}

/// Reads a `devbench` figure out of a log line (anywhere in it): `None` if the line
/// has none, `Some(Err)` if it has a malformed one, or a `FAILED` one.
pub fn parse(line: &str) -> Option<Result<Figure, String>> {
    let rest = &line[line.find("devbench ")? + "devbench ".len()..];
    let mut words = rest.split_whitespace();
    let (Some(kind), Some(index), Some(name)) = (words.next(), words.next(), words.next()) else {
        return Some(Err(format!("`{rest}`: not `KIND INDEX NAME ...`")));
    };
    if name == "FAILED:" {
        return Some(Err(format!(
            "{kind} {index} failed: {}",
            words.collect::<Vec<_>>().join(" ")
        )));
    }
    let Ok(index) = index.parse() else {
        return Some(Err(format!("`{rest}`: `{index}` is not a device index")));
    };
    let (mut count, mut ns, mut depth) = (None, None, None);
    for word in words {
        let parsed = word
            .split_once('=')
            .and_then(|(key, value)| Some((key, value.parse::<u64>().ok()?)));
        match parsed {
            Some(("count", v)) => count = Some(v),
            Some(("ns", v)) => ns = Some(v),
            Some(("depth", v)) => depth = Some(v),
            _ => return Some(Err(format!("`{rest}`: `{word}` is not a known key=number"))),
        }
    }
    let (Some(count), Some(ns)) = (count, ns) else {
        return Some(Err(format!("`{rest}`: needs count= and ns=")));
    };
    Some(Ok(Figure {
        kind: kind.into(),
        index,
        name: name.into(),
        count,
        ns,
        depth,
    }))
}

/// Reads a `devbench-device KIND INDEX DRIVER` line (anywhere in a log line): the
/// device's kind, index and driver name.
pub fn parse_device(line: &str) -> Option<(String, usize, String)> {
    let rest = &line[line.find("devbench-device ")? + "devbench-device ".len()..];
    let mut words = rest.split_whitespace();
    let kind = words.next()?.into();
    let index = words.next()?.parse().ok()?;
    let driver = words.next()?.into();
    Some((kind, index, driver))
}

/// Names device `index` of `kind` by its driver, from the kernel's device list.
fn name_device(kernel: &Kernel, kind: DeviceKind, index: usize) {
    let label = if kind == DeviceKind::Net {
        "nic"
    } else {
        "disk"
    };
    if let Some(device) = kernel
        .devices()
        .into_iter()
        .find(|d| d.kind == kind && d.index == index)
    {
        kernel.log(format_args!(
            "devbench-device {label} {index} {}",
            device.driver
        ));
    }
}

/// Prints one figure line.
fn figure(kernel: &Kernel, kind: &str, index: usize, name: &str, count: u64, ns: u64) {
    kernel.log(format_args!(
        "devbench {kind} {index} {name} count={count} ns={ns}"
    ));
}

/// `netbench`'s entry point.
pub fn netbench(kernel: &Kernel) -> Result<(), ApiError> {
    let nics: Vec<usize> = kernel
        .devices()
        .into_iter()
        .filter(|d| d.kind == DeviceKind::Net)
        .map(|d| d.index)
        .collect();
    if nics.is_empty() {
        kernel.log(format_args!("devbench nic - FAILED: no network interface"));
        return Err(ApiError::NoSuchDevice);
    }
    let mut failed = false;
    for &index in &nics {
        name_device(kernel, DeviceKind::Net, index);
        let mut nic = kernel.open_net(index)?;
        if let Err(why) = net_figures(kernel, index, nic.as_mut()) {
            kernel.log(format_args!("devbench nic {index} FAILED: {why}"));
            failed = true;
        }
    }
    kernel.log(format_args!("netbench: done, {} interface(s)", nics.len()));
    if failed {
        Err(ApiError::AppFailed(1))
    } else {
        Ok(())
    }
}

/// Writes the header of a bench frame: broadcast, `mac`, `ethertype`, `seq`.
fn header(frame: &mut [u8], mac: [u8; 6], ethertype: u16, seq: u32) {
    frame[..6].copy_from_slice(&[0xFF; 6]);
    frame[6..12].copy_from_slice(&mac);
    frame[12..14].copy_from_slice(&ethertype.to_be_bytes());
    frame[14..18].copy_from_slice(&seq.to_be_bytes());
}

/// Sends one frame, retrying while the ring is full (up to a second).
fn send(
    kernel: &Kernel,
    nic: &mut dyn NetDevice,
    len: usize,
    fill: &mut dyn FnMut(&mut [u8]),
) -> Result<(), String> {
    let start = kernel.now_ns();
    loop {
        match nic.transmit(0, len, fill) {
            Ok(()) => return Ok(()),
            Err(DeviceError::QueueFull) if kernel.now_ns() - start < 1_000_000_000 => {
                core::hint::spin_loop()
            }
            Err(error) => return Err(format!("sending a {len}-byte frame: {error}")),
        }
    }
}

/// The figures of one interface.
fn net_figures(kernel: &Kernel, index: usize, nic: &mut dyn NetDevice) -> Result<(), String> {
    let mac = nic.info().mac;
    for len in FRAME_SIZES {
        let start = kernel.now_ns();
        for seq in 0..BENCH_FRAMES {
            send(kernel, nic, len, &mut |frame| {
                header(frame, mac, ETHERTYPE_FROM_REXO, seq)
            })?;
        }
        // Sent means the device is done with every frame.
        while nic.transmit_pending(0).map_err(|e| format!("{e}"))? > 0 {
            if kernel.now_ns() - start > REQUEST_NS {
                return Err("transmits not finished after 30 s".into());
            }
        }
        let ns = kernel.now_ns() - start;
        figure(
            kernel,
            "nic",
            index,
            &format!("tx-{len}"),
            BENCH_FRAMES.into(),
            ns,
        );
    }
    // The peer sends nothing until asked: every poll finds the queue empty (a stray
    // frame is counted, and the figure then says how many polls found one).
    let mut stray = 0;
    let start = kernel.now_ns();
    for _ in 0..EMPTY_POLLS {
        stray += nic
            .receive(0, 1, &mut |_| {})
            .map_err(|e| format!("receiving: {e}"))?;
    }
    let ns = kernel.now_ns() - start;
    figure(kernel, "nic", index, "empty-poll", EMPTY_POLLS.into(), ns);
    if stray > 0 {
        kernel.log(format_args!(
            "netbench: nic {index}: {stray} frames arrived during the empty polls"
        ));
    }
    for len in FRAME_SIZES {
        // The peer streams faster than any guest takes frames (QEMU drops the rest):
        // the figure is the rate the driver drains a queue that never runs dry.
        send(kernel, nic, CONTROL_LEN, &mut |frame| {
            control_frame(frame, mac, Control::Send(len))
        })?;
        // The clock starts at the first frame, which is not counted: `count` frames
        // then took `last - first`.
        let (mut count, mut first, mut last) = (0u64, None, kernel.now_ns());
        while count < u64::from(BENCH_FRAMES) {
            let mut got = 0;
            nic.receive(0, 64, &mut |frame| {
                if frame.len() == len && frame[12..14] == ETHERTYPE_FROM_PEER.to_be_bytes() {
                    got += 1;
                }
            })
            .map_err(|e| format!("receiving: {e}"))?;
            let now = kernel.now_ns();
            if got > 0 {
                if first.is_none() {
                    first = Some(now);
                    got -= 1;
                }
                count += got;
                last = now;
            } else if first.is_none() && now - last > FIRST_FRAME_NS {
                return Err(format!("the peer sent no {len}-byte frames"));
            } else if first.is_some() && now - last > BURST_END_NS {
                break;
            }
        }
        let first = first.unwrap_or(last);
        send(kernel, nic, CONTROL_LEN, &mut |frame| {
            control_frame(frame, mac, Control::Stop)
        })?;
        figure(
            kernel,
            "nic",
            index,
            &format!("rx-{len}"),
            count,
            last - first,
        );
    }
    Ok(())
}

/// `diskbench`'s entry point.
pub fn diskbench(kernel: &Kernel) -> Result<(), ApiError> {
    let disks: Vec<usize> = kernel
        .devices()
        .into_iter()
        .filter(|d| d.kind == DeviceKind::Block)
        .map(|d| d.index)
        .collect();
    if disks.is_empty() {
        kernel.log(format_args!("devbench disk - FAILED: no disk"));
        return Err(ApiError::NoSuchDevice);
    }
    let mut failed = false;
    for &index in &disks {
        name_device(kernel, DeviceKind::Block, index);
        let mut disk = kernel.open_block(index)?;
        if let Err(why) = disk_figures(kernel, index, disk.as_mut()) {
            kernel.log(format_args!("devbench disk {index} FAILED: {why}"));
            failed = true;
        }
    }
    kernel.log(format_args!("diskbench: done, {} disk(s)", disks.len()));
    if failed {
        Err(ApiError::AppFailed(1))
    } else {
        Ok(())
    }
}

/// A reproducible pseudo-random sequence (xorshift64*) for the random reads' LBAs.
pub struct Lbas(u64);

impl Lbas {
    /// The sequence from `seed` (not zero).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next first sector of a `sectors`-long request, aligned to it, below `limit`.
    pub fn next(&mut self, sectors: u64, limit: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let slots = (limit / sectors).max(1);
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) % slots * sectors
    }
}

/// Requests of one figure: `total` of them, `depth` in flight spread over the queues,
/// the `i`th from `lba(i)`, `sectors` long, written (`write`) or read. Returns the ns.
fn run_requests(
    kernel: &Kernel,
    disk: &mut dyn BlockDevice,
    total: u64,
    depth: usize,
    sectors: u32,
    write: bool,
    lba: &mut dyn FnMut(u64) -> u64,
) -> Result<u64, String> {
    let info = disk.info();
    let queues = info.queues.max(1);
    let per_queue = info.depth.max(1);
    // (queue, tag, started) of each request in flight.
    let mut flights: Vec<(usize, Tag, u64)> = Vec::with_capacity(depth);
    let (mut issued, mut done) = (0u64, 0u64);
    let mut error: Option<String> = None;
    let start = kernel.now_ns();
    while done < total {
        while issued < total && flights.len() < depth {
            // The least busy queue, if it has room.
            let busy = |q: usize| flights.iter().filter(|f| f.0 == q).count();
            let Some(queue) = (0..queues)
                .min_by_key(|&q| busy(q))
                .filter(|&q| busy(q) < per_queue)
            else {
                break;
            };
            let first = lba(issued);
            let submitted = if write {
                disk.submit_write(queue, first, sectors, &mut |_| {})
            } else {
                disk.submit_read(queue, first, sectors)
            };
            match submitted {
                Ok(tag) => {
                    flights.push((queue, tag, kernel.now_ns()));
                    issued += 1;
                }
                Err(DeviceError::QueueFull) => break,
                Err(e) => return Err(format!("submitting sectors {first}+{sectors}: {e}")),
            }
        }
        for queue in 0..queues {
            if !flights.iter().any(|f| f.0 == queue) {
                continue;
            }
            disk.poll(queue, &mut |tag, result| {
                if let Some(at) = flights.iter().position(|f| f.0 == queue && f.1 == tag) {
                    flights.swap_remove(at);
                    done += 1;
                    if let Err(e) = result {
                        error.get_or_insert(format!("a request failed: {e}"));
                    }
                } else {
                    error.get_or_insert(format!("completion of unknown request {tag}"));
                }
            })
            .map_err(|e| format!("polling queue {queue}: {e}"))?;
        }
        if let Some(why) = error.take() {
            return Err(why);
        }
        if flights.iter().any(|f| kernel.now_ns() - f.2 > REQUEST_NS) {
            return Err("a request was not done after 30 s".into());
        }
    }
    Ok(kernel.now_ns() - start)
}

/// The figures of one disk.
fn disk_figures(kernel: &Kernel, index: usize, disk: &mut dyn BlockDevice) -> Result<(), String> {
    let info = disk.info();
    let size = u64::from(info.sector_size.max(1));
    let chunk = (SEQUENTIAL_BYTES / info.sector_size.max(1))
        .min(info.max_sectors)
        .max(1);
    let requests = info.sectors / u64::from(chunk);
    if requests == 0 {
        return Err(format!(
            "the disk is smaller than one {SEQUENTIAL_BYTES}-byte request"
        ));
    }
    let bytes = requests * u64::from(chunk) * size;
    for (name, write) in [("seqwrite", true), ("seqread", false)] {
        let ns = run_requests(
            kernel,
            disk,
            requests,
            SEQUENTIAL_DEPTH,
            chunk,
            write,
            &mut |i| i * u64::from(chunk),
        )?;
        figure(kernel, "disk", index, name, bytes, ns);
    }
    let sectors = (RANDOM_BYTES / info.sector_size.max(1)).max(1);
    let capacity = info.queues.max(1) * info.depth.max(1);
    for (name, total, depth) in [
        ("randread-qd1", RANDOM_QD1, 1),
        ("randread-qd32", RANDOM_QD32, DEEP.min(capacity)),
    ] {
        let mut lbas = Lbas::new(0x5EED + depth as u64);
        let ns = run_requests(
            kernel,
            disk,
            total.into(),
            depth,
            sectors,
            false,
            &mut |_| lbas.next(u64::from(sectors), info.sectors),
        )?;
        kernel.log(format_args!(
            "devbench disk {index} {name} count={total} ns={ns} depth={depth}"
        ));
    }
    Ok(())
}

/// What a control frame from Rexo tells `netbench`'s peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Stream frames of this size.
    Send(usize),
    /// Stop streaming.
    Stop,
}

/// Writes the control frame `what` (of [`CONTROL_LEN`] bytes) from `mac`.
pub fn control_frame(frame: &mut [u8], mac: [u8; 6], what: Control) {
    header(frame, mac, ETHERTYPE_FROM_REXO, 0);
    let (magic, size) = match what {
        Control::Send(size) => (SEND_MAGIC, size as u16),
        Control::Stop => (STOP_MAGIC, 0),
    };
    frame[14..18].copy_from_slice(&magic);
    frame[18..20].copy_from_slice(&size.to_be_bytes());
}

/// The control `frame` (from Rexo) carries, if it is one.
pub fn control(frame: &[u8]) -> Option<Control> {
    if frame.len() != CONTROL_LEN || frame[12..14] != ETHERTYPE_FROM_REXO.to_be_bytes() {
        return None;
    }
    let size = usize::from(u16::from_be_bytes([frame[18], frame[19]]));
    match frame[14..18].try_into().ok()? {
        SEND_MAGIC if (HEADER..=1514).contains(&size) => Some(Control::Send(size)),
        STOP_MAGIC => Some(Control::Stop),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figure_lines_parse() {
        let line =
            "[ 12 us c0] INFO  devbench disk 1 randread-qd32 count=10000 ns=2000000 depth=32";
        let f = parse(line).unwrap().unwrap();
        assert_eq!(
            (f.kind.as_str(), f.index, f.name.as_str()),
            ("disk", 1, "randread-qd32")
        );
        assert_eq!((f.count, f.ns, f.depth), (10_000, 2_000_000, Some(32)));
        assert_eq!(f.per_second(), 5_000_000.0);
        assert!(parse("rexo: ready cores=2").is_none());
        assert!(
            parse("devbench nic 0 FAILED: sending: the queue is full")
                .unwrap()
                .unwrap_err()
                .contains("nic 0 failed: sending")
        );
        assert!(parse("devbench nic x tx-64 count=1 ns=1").unwrap().is_err());
        assert!(parse("devbench nic 0 tx-64 count=1").unwrap().is_err());
        assert!(
            parse("devbench nic 0 tx-64 count=1 ns=fast")
                .unwrap()
                .is_err()
        );
        assert!(parse("devbench nic").unwrap().is_err());
    }

    #[test]
    fn device_lines_parse() {
        assert_eq!(
            parse_device("[ 5 us c0] INFO  devbench-device disk 1 virtio-blk"),
            Some(("disk".into(), 1, "virtio-blk".into()))
        );
        assert_eq!(parse_device("devbench-device disk x nvme"), None);
        assert_eq!(parse_device("devbench disk 0 seqread count=1 ns=1"), None);
        // A device line is not a figure line.
        assert!(parse("devbench-device disk 0 nvme").is_none());
    }

    #[test]
    fn control_frames_round_trip() {
        let mut frame = [0u8; CONTROL_LEN];
        control_frame(&mut frame, [2, 0, 0, 0, 0, 1], Control::Send(1514));
        assert_eq!(control(&frame), Some(Control::Send(1514)));
        control_frame(&mut frame, [2, 0, 0, 0, 0, 1], Control::Stop);
        assert_eq!(control(&frame), Some(Control::Stop));
        control_frame(&mut frame, [2, 0, 0, 0, 0, 1], Control::Send(9000));
        assert_eq!(control(&frame), None);
        frame[14] = b'X';
        assert_eq!(control(&frame), None);
        assert_eq!(control(&frame[..20]), None);
    }

    #[test]
    fn random_lbas_are_aligned_and_in_range() {
        let mut lbas = Lbas::new(7);
        let seen: Vec<u64> = (0..1000).map(|_| lbas.next(8, 16384)).collect();
        assert!(seen.iter().all(|&l| l % 8 == 0 && l + 8 <= 16384));
        let distinct: alloc::collections::BTreeSet<_> = seen.iter().collect();
        assert!(distinct.len() > 800);
        assert_eq!(Lbas::new(0).next(8, 4), 0);
    }
}
