//! `netqueues`: every queue pair of every network interface with more than one, against
//! the host of the `net::virtio-mq` and `net::e1000e-mq` tests (xtask/src/queuepeer.rs,
//! on a multi-queue tap):
//!
//! 1. a queue number past the last is refused for sending and receiving;
//! 2. [`QUEUE_FRAMES`] frames go out on each transmit queue ([`pattern::fill_frame`] with
//!    [`pattern::queue_seq`]; the host checks them byte-exact, per queue in order);
//! 3. the host's [`DATAGRAMS`] UDP datagrams in [`pattern::FLOWS`] flows (each from its
//!    own address, [`pattern::flow_source`], to its own port) come in on the receive
//!    queues the device's flow hash picks (the tap's on virtio-net, RSS on the 82574):
//!    each must arrive once, from its flow's address, byte-exact (IPv4 header checksum
//!    and UDP length too), and every receive queue must get some;
//! 4. with receive queue 1 armed to wake the core (`wake_on_receive(1, ..)`), the app asks
//!    the host for [`WAKE_DATAGRAMS`] datagrams of a flow that landed on queue 1 and
//!    sleeps in naps of up to `NAP_NS` until they are in: it fails if it never slept or
//!    the naps ran their full length (queue 1's interrupt did not wake the core).

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use rexo_api::{ApiError, DeviceError, Kernel, NetDevice};

use crate::net::{on_every_nic, send};

use crate::pattern::{
    self, DATAGRAMS, DATAGRAMS_PER_FLOW, ETHERTYPE_FROM_REXO, FLOW_PORT, FLOWS, QUEUE_FRAMES,
    WAKE_DATAGRAMS, datagram_flow,
};

/// How long the host may stay silent before the check gives up.
const SILENCE_NS: u64 = 20_000_000_000;
/// How long the device may take to finish sending what is queued.
const DRAIN_NS: u64 = 5_000_000_000;
/// The guest's address on the test's tap network (the host sends there).
const GUEST_IP: [u8; 4] = [10, 0, 2, 15];
/// Frames taken from one queue before the next is looked at.
const BUDGET: usize = 32;
/// The longest nap while waiting for receive queue 1; its interrupt ends it early.
const NAP_NS: u64 = 200_000_000;
/// The receive queue whose interrupt the wake-up check shows waking the core.
const WAKE_QUEUE: usize = 1;

/// The app's entry point.
pub fn main(kernel: &Kernel) -> Result<(), ApiError> {
    on_every_nic(kernel, "netqueues", &mut |device, nic| {
        let queues = nic.info().queues;
        kernel.log(format_args!(
            "netqueues: nic {}: {} at {}: {queues} queue pair(s)",
            device.index, device.driver, device.address
        ));
        if queues < 2 {
            return Err(format!("{queues} queue pair(s): nothing to check"));
        }
        check(kernel, nic, device.index)
    })
}

/// The four steps on one interface.
fn check(kernel: &Kernel, nic: &mut dyn NetDevice, index: usize) -> Result<(), String> {
    let info = nic.info();
    let queues = info.queues;
    // 1. A queue past the last is refused both ways, naming it.
    match nic.transmit(queues, 60, &mut |_| {}) {
        Err(error @ DeviceError::NoSuchQueue(q)) if q == queues => kernel.log(format_args!(
            "netqueues: nic {index}: sending on queue {queues} refused: {error}"
        )),
        other => return Err(format!("sending on queue {queues}: {other:?}")),
    }
    match nic.receive(queues, 1, &mut |_| {}) {
        Err(error @ DeviceError::NoSuchQueue(q)) if q == queues => kernel.log(format_args!(
            "netqueues: nic {index}: receiving on queue {queues} refused: {error}"
        )),
        other => return Err(format!("receiving on queue {queues}: {other:?}")),
    }
    // 2. Frames out on every transmit queue, interleaved.
    for i in 0..QUEUE_FRAMES {
        for queue in 0..queues {
            let seq = pattern::queue_seq(queue, i);
            send(kernel, nic, queue, pattern::frame_len(seq), &mut |frame| {
                pattern::fill_frame(frame, seq, info.mac, ETHERTYPE_FROM_REXO)
            })?;
        }
    }
    let start = kernel.now_ns();
    for queue in 0..queues {
        loop {
            match nic.transmit_pending(queue) {
                Ok(0) => break,
                Ok(left) if kernel.now_ns() - start > DRAIN_NS => {
                    return Err(format!("{left} frames still queued on {queue} after 5 s"));
                }
                Ok(_) => core::hint::spin_loop(),
                Err(error) => return Err(format!("transmit queue {queue}: {error}")),
            }
        }
    }
    kernel.log(format_args!(
        "netqueues: nic {index}: sent {QUEUE_FRAMES} frames on each of {queues} transmit queues"
    ));
    // 3. The host's datagrams, on whichever receive queue each flow lands.
    let mut seen = vec![false; DATAGRAMS as usize];
    let mut per_queue: Vec<u32> = vec![0; queues];
    let mut flow_queue: Vec<Option<usize>> = vec![None; usize::from(FLOWS)];
    let mut received = 0;
    let mut wrong: Option<String> = None;
    let mut last = kernel.now_ns();
    while received < DATAGRAMS {
        let mut got = 0;
        for (queue, count) in per_queue.iter_mut().enumerate() {
            got += nic
                .receive(queue, BUDGET, &mut |frame| {
                    let Some(payload) = test_datagram(frame) else {
                        return; // Not the test's (the host's own traffic): ignored.
                    };
                    match payload {
                        Ok((port, id)) if datagram_flow(id) != port - FLOW_PORT => {
                            wrong.get_or_insert(format!(
                                "datagram {id} came to port {port}, not its flow's"
                            ));
                        }
                        Ok((_, id)) if seen[id as usize] => {
                            wrong.get_or_insert(format!("datagram {id} came twice"));
                        }
                        Ok((_, id)) => {
                            seen[id as usize] = true;
                            flow_queue[usize::from(datagram_flow(id))] = Some(queue);
                            *count += 1;
                            received += 1;
                        }
                        Err(why) => {
                            wrong.get_or_insert(why);
                        }
                    }
                })
                .map_err(|error| format!("receiving on queue {queue}: {error}"))?;
        }
        if got > 0 {
            last = kernel.now_ns();
        } else if kernel.now_ns() - last > SILENCE_NS {
            return Err(format!(
                "the host went silent after {received} of {DATAGRAMS} datagrams ({per_queue:?} per queue)"
            ));
        }
        if let Some(why) = &wrong {
            return Err(format!("a received datagram is wrong: {why}"));
        }
    }
    let counts: Vec<String> = per_queue
        .iter()
        .enumerate()
        .map(|(queue, n)| format!("queue {queue} {n}"))
        .collect();
    kernel.log(format_args!(
        "netqueues: nic {index}: received {DATAGRAMS} datagrams of {FLOWS} flows byte-exact: {}",
        counts.join(", ")
    ));
    if let Some(queue) = per_queue.iter().position(|&n| n == 0) {
        return Err(format!(
            "receive queue {queue} got none of the {FLOWS} flows"
        ));
    }
    // 4. A flow of queue 1 again, while the core sleeps.
    let flow = flow_queue
        .iter()
        .position(|&queue| queue == Some(WAKE_QUEUE))
        .ok_or("no flow landed on receive queue 1")?;
    wake_check(kernel, nic, index, flow as u16)
}

/// Step 4: arms receive queue [`WAKE_QUEUE`] to wake this core, asks the host for
/// [`WAKE_DATAGRAMS`] datagrams of `flow` (which lands on that queue) and sleeps until
/// they are in: arm, poll once more, nap. Fails if no nap happened or the naps ran their
/// full length (the queue's MSI-X message did not wake the core).
fn wake_check(
    kernel: &Kernel,
    nic: &mut dyn NetDevice,
    index: usize,
    flow: u16,
) -> Result<(), String> {
    let core = kernel.core_index();
    nic.wake_on_receive(WAKE_QUEUE, Some(core))
        .map_err(|error| format!("arming receive queue {WAKE_QUEUE}'s wake-up: {error}"))?;
    let mac = nic.info().mac;
    send(kernel, nic, 0, 60, &mut |frame| {
        pattern::fill_wake_request(frame, mac, flow)
    })?;
    let first = u32::from(flow) * DATAGRAMS_PER_FLOW;
    let mut seen = [false; WAKE_DATAGRAMS as usize];
    let (mut received, mut naps, mut napped_ns, mut armed) = (0u32, 0u64, 0u64, true);
    let mut wrong: Option<String> = None;
    let mut last = kernel.now_ns();
    while received < WAKE_DATAGRAMS {
        let got = nic
            .receive(
                WAKE_QUEUE,
                BUDGET,
                &mut |frame| match test_datagram(frame) {
                    None => {} // Not the test's (the host's own traffic): ignored.
                    Some(Ok((_, id))) if !(first..first + WAKE_DATAGRAMS).contains(&id) => {
                        wrong.get_or_insert(format!("datagram {id}, not one of flow {flow}'s"));
                    }
                    Some(Ok((_, id))) if seen[(id - first) as usize] => {
                        wrong.get_or_insert(format!("datagram {id} came twice"));
                    }
                    Some(Ok((_, id))) => {
                        seen[(id - first) as usize] = true;
                        received += 1;
                    }
                    Some(Err(why)) => {
                        wrong.get_or_insert(why);
                    }
                },
            )
            .map_err(|error| format!("receiving on queue {WAKE_QUEUE}: {error}"))?;
        if let Some(why) = &wrong {
            return Err(format!("a datagram of the wake-up check is wrong: {why}"));
        }
        if got > 0 {
            last = kernel.now_ns();
        } else if kernel.now_ns() - last > SILENCE_NS {
            return Err(format!(
                "the host went silent after {received} of {WAKE_DATAGRAMS} datagrams of flow {flow}"
            ));
        } else if !armed {
            // Armed again before every nap (a wake may have been spent on an earlier
            // datagram), then the ring is looked at once more before sleeping.
            nic.wake_on_receive(WAKE_QUEUE, Some(core))
                .map_err(|error| format!("arming the wake-up: {error}"))?;
            armed = true;
        } else {
            let before = kernel.now_ns();
            kernel.sleep_ns(NAP_NS);
            naps += 1;
            napped_ns += kernel.now_ns() - before;
            armed = false;
        }
    }
    nic.wake_on_receive(WAKE_QUEUE, None)
        .map_err(|error| format!("stopping wake-ups: {error}"))?;
    let average_us = napped_ns / naps.max(1) / 1000;
    kernel.log(format_args!(
        "netqueues: nic {index}: slept {naps} times waiting for {WAKE_DATAGRAMS} datagrams on receive queue {WAKE_QUEUE} (flow {flow}), {average_us} us on average (naps of up to {} ms)",
        NAP_NS / 1_000_000
    ));
    if naps == 0 {
        return Err(String::from(
            "every datagram was in before the core could sleep: nothing was shown",
        ));
    }
    // Without queue 1's message every nap would last its full length.
    if napped_ns / naps > NAP_NS / 2 {
        return Err(format!(
            "receive queue {WAKE_QUEUE}'s interrupt did not wake the core ({average_us} us per nap)"
        ));
    }
    Ok(())
}

/// A frame of the test: an IPv4 UDP datagram to the guest on one of the flows' ports.
/// `None` when it is not one (other traffic); else its port and id, or what is wrong
/// with it (header checksum, lengths, payload).
fn test_datagram(frame: &[u8]) -> Option<Result<(u16, u32), String>> {
    let ip = frame.get(pattern::HEADER..)?;
    if frame[12..14] != [0x08, 0x00] || ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != 17 {
        return None;
    }
    let header = usize::from(ip[0] & 0x0F) * 4;
    let udp = ip.get(header..header + 8)?;
    let port = u16::from_be_bytes([udp[2], udp[3]]);
    if ip[16..20] != GUEST_IP || !(FLOW_PORT..FLOW_PORT + FLOWS).contains(&port) {
        return None;
    }
    let flow = port - FLOW_PORT;
    if ip[12..16] != pattern::flow_source(flow) {
        return Some(Err(format!(
            "a datagram of flow {flow} from {:?}, not from {:?}",
            &ip[12..16],
            pattern::flow_source(flow)
        )));
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    // Frames may carry padding after the datagram, never less than it.
    if total > ip.len() || header + udp_len != total {
        return Some(Err(format!(
            "IPv4 length {total}, UDP length {udp_len} in a {}-byte frame",
            frame.len()
        )));
    }
    if rexo_api::device::internet_checksum(&ip[..header]) != 0 {
        return Some(Err("an IPv4 header checksum that does not add up".into()));
    }
    Some(pattern::check_datagram(&ip[header + 8..total]).map(|id| (port, id)))
}
