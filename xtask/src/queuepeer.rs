//! The host end of the `net::virtio-mq` and `net::e1000e-mq` tests: a multi-queue tap
//! device (`queues=2`) in a network namespace made for the case (`tapnet`), QEMU inside
//! it, and a thread here, inside it too, playing the peer of `netqueues`
//! (apps/devcheck/src/queues.rs):
//!
//! 1. a packet socket on the tap device receives the [`QUEUE_FRAMES`] frames Rexo sends
//!    on each of its [`QUEUES`] transmit queues (EtherType [`ETHERTYPE_FROM_REXO`]) and
//!    checks each byte-exact, in order per queue ([`pattern::check_frame`]);
//! 2. with the guest's MAC learnt from them (a permanent neighbour entry for 10.0.2.15),
//!    [`DATAGRAMS`] datagrams go out in [`FLOWS`] flows, interleaved, each flow from its
//!    own address on the tap ([`pattern::flow_source`]) to its own port: the device picks
//!    each flow's queue by a hash of them (a multi-queue tap for virtio-net, RSS over the
//!    addresses inside QEMU's e1000e), so the guest's receive queues all get some;
//!    `netqueues` checks them and counts each queue's;
//! 3. on the guest's wake-up request (a frame naming a flow that landed on its receive
//!    queue 1, [`pattern::wake_request_flow`]), [`WAKE_DATAGRAMS`] datagrams of that flow
//!    go out [`WAKE_GAP`] apart, while the guest sleeps until queue 1's interrupt wakes it.

use crate::Result;
use crate::netpeer::Peer;
use rexo_devcheck::pattern::{
    self, DATAGRAMS, DATAGRAMS_PER_FLOW, ETHERTYPE_FROM_REXO, FLOW_PORT, FLOWS, QUEUE_FRAMES,
    WAKE_DATAGRAMS,
};
use rustix::net::{AddressFamily, Protocol, RecvFlags, SocketType};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Queue pairs of the tap device, and so of the guest's NIC.
pub const QUEUES: u16 = 2;
/// How long one socket read waits before the thread looks at the stop flag again.
const POLL: Duration = Duration::from_millis(50);
/// How long the rest of Rexo's frames may take after the first.
const FRAMES_WITHIN: Duration = Duration::from_secs(20);
/// The pause between datagrams (the guest polls under TCG; QEMU and the tap queue hold
/// what it has not taken yet).
const PACE: Duration = Duration::from_micros(200);
/// The receive buffer asked for the packet socket (Rexo's frames come in a burst).
const RECV_BUFFER: usize = 8 << 20;
/// The pause between the wake-up check's datagrams: long enough that the guest sleeps
/// between them, far below its 200 ms naps.
const WAKE_GAP: Duration = Duration::from_millis(20);

/// What the peer saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueReport {
    /// Frames from Rexo received byte-exact and in order, per transmit queue.
    pub received: [u32; QUEUES as usize],
    /// Datagrams sent to Rexo.
    pub sent: u32,
    /// Datagrams of the wake-up check sent to Rexo.
    pub wake_sent: u32,
    /// The first thing that was wrong, if any.
    pub error: Option<String>,
}

impl QueueReport {
    /// `None` when every frame arrived byte-exact and every datagram went out, else why.
    pub fn problem(&self) -> Option<String> {
        if let Some(error) = &self.error {
            return Some(error.clone());
        }
        if let Some(queue) = self.received.iter().position(|&n| n < QUEUE_FRAMES) {
            return Some(format!(
                "received {} of the {QUEUE_FRAMES} frames Rexo sent on transmit queue {queue}",
                self.received[queue]
            ));
        }
        if self.sent < DATAGRAMS {
            return Some(format!("sent {} of {DATAGRAMS} datagrams", self.sent));
        }
        (self.wake_sent < WAKE_DATAGRAMS).then(|| {
            format!(
                "sent {} of the {WAKE_DATAGRAMS} datagrams of the wake-up check",
                self.wake_sent
            )
        })
    }

    /// One line for the test's outcome and log.
    pub fn summary(&self) -> String {
        format!(
            "frames received byte-exact per transmit queue {:?} (of {QUEUE_FRAMES} each), {} of {DATAGRAMS} datagrams sent in {FLOWS} flows, {} of {WAKE_DATAGRAMS} for the wake-up check",
            self.received, self.sent, self.wake_sent
        )
    }
}

/// Starts the peer's thread in the network namespace `netns` (whose tap device QEMU
/// opens).
pub fn start(netns: &str) -> Peer<QueueReport> {
    let netns = netns.to_string();
    Peer::spawn(move |stop| {
        let mut report = QueueReport::default();
        if let Err(error) = run(&netns, stop, &mut report) {
            report.error.get_or_insert(error);
        }
        report
    })
}

/// Follows one frame from Rexo: where it belongs, whether it is byte-exact and in order.
/// Returns the queue it counts for, or what is wrong.
fn follow(frame: &[u8], next: &[u32]) -> std::result::Result<usize, String> {
    let Some(seq) = frame.get(14..18) else {
        return Err(format!("a {}-byte frame", frame.len()));
    };
    let seq = u32::from_be_bytes([seq[0], seq[1], seq[2], seq[3]]);
    let (queue, i) = ((seq >> 16) as usize, seq & 0xFFFF);
    if queue >= next.len() || i >= QUEUE_FRAMES {
        return Err(format!("a frame with sequence number {seq:#x}"));
    }
    if let Some(why) = pattern::check_frame(frame, seq, ETHERTYPE_FROM_REXO) {
        return Err(format!("transmit queue {queue}: {why}"));
    }
    if i != next[queue] {
        return Err(format!(
            "transmit queue {queue}: frame {i} came when {} was next",
            next[queue]
        ));
    }
    Ok(queue)
}

/// The three phases; `report` holds the counts so far whatever happens.
fn run(netns: &str, stop: &AtomicBool, report: &mut QueueReport) -> Result<()> {
    crate::tapnet::enter(netns)?;
    let ethertype = rustix::net::RawProtocol::new(u32::from(ETHERTYPE_FROM_REXO.to_be()))
        .ok_or("EtherType 0")?;
    let raw = rustix::net::socket(
        AddressFamily::PACKET,
        SocketType::RAW,
        Some(Protocol::from_raw(ethertype)),
    )
    .map_err(|e| format!("cannot open a packet socket: {e}"))?;
    let _ = rustix::net::sockopt::set_socket_recv_buffer_size_force(&raw, RECV_BUFFER);
    rustix::net::sockopt::set_socket_timeout(&raw, rustix::net::sockopt::Timeout::Recv, Some(POLL))
        .map_err(|e| format!("cannot set the packet socket's timeout: {e}"))?;
    // 1. Rexo's frames, from every transmit queue.
    let mut buf = vec![0u8; 65536];
    let mut mac = None;
    let mut first = None;
    let mut next = [0u32; QUEUES as usize];
    let all = u32::from(QUEUES) * QUEUE_FRAMES;
    while next.iter().sum::<u32>() < all {
        if stop.load(Ordering::Acquire) {
            return Ok(());
        }
        if first.is_some_and(|at: Instant| at.elapsed() > FRAMES_WITHIN) {
            break;
        }
        let len = match rustix::net::recv(&raw, &mut buf[..], RecvFlags::empty()) {
            Ok((len, _)) => len,
            Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::INTR => continue,
            Err(e) => return Err(format!("reading the packet socket: {e}")),
        };
        first.get_or_insert_with(Instant::now);
        let frame = &buf[..len];
        match follow(frame, &next) {
            Ok(queue) => {
                next[queue] += 1;
                report.received[queue] = next[queue];
                mac.get_or_insert([frame[6], frame[7], frame[8], frame[9], frame[10], frame[11]]);
            }
            Err(why) => {
                report.error.get_or_insert(why);
            }
        }
    }
    let mac = mac.ok_or("no frame from Rexo came byte-exact")?;
    // 2. The flows to Rexo, interleaved so that both queues are busy at once.
    let lladdr = mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let guest = crate::tapnet::GUEST.to_string();
    crate::tapnet::ip_in(
        netns,
        &[
            "neigh",
            "replace",
            &guest,
            "lladdr",
            &lladdr,
            "dev",
            crate::tapnet::TAP,
            "nud",
            "permanent",
        ],
    )?;
    let sockets = (0..FLOWS)
        .map(|flow| flow_socket(netns, flow))
        .collect::<Result<Vec<_>>>()?;
    let mut payload = vec![0u8; 1472];
    for round in 0..DATAGRAMS_PER_FLOW {
        for flow in 0..FLOWS {
            if stop.load(Ordering::Acquire) {
                return Ok(());
            }
            let id = u32::from(flow) * DATAGRAMS_PER_FLOW + round;
            let payload = &mut payload[..pattern::datagram_len(id)];
            pattern::fill_datagram(payload, id);
            sockets[usize::from(flow)]
                .send_to(payload, (crate::tapnet::GUEST, FLOW_PORT + flow))
                .map_err(|e| format!("sending datagram {id}: {e}"))?;
            report.sent += 1;
            std::thread::sleep(PACE);
        }
    }
    // 3. The wake-up check: the flow the guest names, slowly.
    let flow = loop {
        if stop.load(Ordering::Acquire) {
            return Ok(());
        }
        let len = match rustix::net::recv(&raw, &mut buf[..], RecvFlags::empty()) {
            Ok((len, _)) => len,
            Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::INTR => continue,
            Err(e) => return Err(format!("reading the packet socket: {e}")),
        };
        if let Some(flow) = pattern::wake_request_flow(&buf[..len]) {
            break flow;
        }
    };
    let first = u32::from(flow) * DATAGRAMS_PER_FLOW;
    for id in first..first + WAKE_DATAGRAMS {
        if stop.load(Ordering::Acquire) {
            return Ok(());
        }
        std::thread::sleep(WAKE_GAP);
        let payload = &mut payload[..pattern::datagram_len(id)];
        pattern::fill_datagram(payload, id);
        sockets[usize::from(flow)]
            .send_to(payload, (crate::tapnet::GUEST, FLOW_PORT + flow))
            .map_err(|e| format!("sending wake-up datagram {id}: {e}"))?;
        report.wake_sent += 1;
    }
    Ok(())
}

/// A UDP socket at flow `flow`'s own address ([`pattern::flow_source`]), which it adds
/// to the tap device: the 82574 hashes UDP over the addresses only, so flows that
/// differ only in their ports would all land on one of its receive queues.
fn flow_socket(netns: &str, flow: u16) -> Result<UdpSocket> {
    let address = std::net::Ipv4Addr::from(pattern::flow_source(flow));
    let cidr = format!("{address}/32");
    crate::tapnet::ip_in(netns, &["addr", "add", &cidr, "dev", crate::tapnet::TAP])?;
    UdpSocket::bind((address, 0)).map_err(|e| format!("cannot bind {address}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(queue: usize, i: u32) -> Vec<u8> {
        let seq = pattern::queue_seq(queue, i);
        let mut frame = vec![0; pattern::frame_len(seq)];
        pattern::fill_frame(&mut frame, seq, [2, 0, 0, 0, 0, 1], ETHERTYPE_FROM_REXO);
        frame
    }

    #[test]
    fn frames_are_followed_per_queue() {
        assert_eq!(follow(&frame(1, 0), &[5, 0]), Ok(1));
        assert_eq!(follow(&frame(0, 5), &[5, 0]), Ok(0));
        assert!(
            follow(&frame(0, 4), &[5, 0])
                .unwrap_err()
                .contains("5 was next")
        );
        assert!(follow(&frame(2, 0), &[0, 0]).is_err());
        let mut bad = frame(1, 0);
        bad[30] ^= 1;
        assert!(follow(&bad, &[0, 0]).unwrap_err().contains("byte 30"));
        assert!(follow(&[0; 10], &[0, 0]).is_err());
    }

    #[test]
    fn reports_name_what_is_missing() {
        let mut report = QueueReport {
            received: [QUEUE_FRAMES, 3],
            sent: DATAGRAMS,
            wake_sent: WAKE_DATAGRAMS,
            error: None,
        };
        assert!(report.problem().unwrap().contains("transmit queue 1"));
        report.received[1] = QUEUE_FRAMES;
        assert_eq!(report.problem(), None);
        report.wake_sent = 3;
        assert!(report.problem().unwrap().contains("wake-up check"));
        report.sent = 0;
        assert!(report.problem().unwrap().contains("datagrams"));
    }
}
