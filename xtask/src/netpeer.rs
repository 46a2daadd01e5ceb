//! The host end of a guest network interface in the driver tests: QEMU's `socket`
//! backend carries each Ethernet frame as one UDP datagram on 127.0.0.1, and a thread
//! here plays the peer of `netcheck` (apps/devcheck/src/net.rs) on it:
//!
//! 1. receives the [`FRAMES`] frames Rexo sends (EtherType [`ETHERTYPE_FROM_REXO`]) and
//!    checks each byte-exact and in order with [`pattern::check_frame`];
//! 2. sends [`FRAMES`] frames of its own ([`pattern::fill_frame`], EtherType
//!    [`ETHERTYPE_FROM_PEER`], sequence numbers from 0), at most [`WINDOW`] ahead of the
//!    echoes, and checks that each echo comes back byte-exact and in order.
//!
//! The thread never waits long on the socket: it stops when the harness says QEMU
//! ended ([`Peer::finish`]), so a guest that stops talking costs no more than the case's
//! own timeout.

use crate::Result;
use rexo_api::device::ETHERNET_MAX_FRAME;
use rexo_devcheck::bench::{self, Control, FRAME_SIZES};
use rexo_devcheck::pattern::{
    self, ETHERTYPE_FROM_PEER, ETHERTYPE_FROM_REXO, FRAMES, HEADER, frame_len,
};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Frames the peer sends ahead of the echoes it has seen (the guest's receive ring and
/// QEMU's queue hold them; more would only test QEMU's buffering).
pub const WINDOW: u32 = 16;
/// The receive buffer asked for: Rexo's burst of [`FRAMES`] frames (up to 1514 bytes,
/// about 2.3 KiB each in the host kernel's accounting) must not overflow it while this
/// thread waits for a core (the test runs two QEMUs on a 2-core machine).
const RECV_BUFFER: usize = 8 << 20;
/// How long one socket read waits before the thread looks at the stop flag again.
const POLL: Duration = Duration::from_millis(50);
/// The largest datagram read (a frame is at most 1514 bytes; more shows as too long).
const DATAGRAM: usize = 65536;

/// What the peer saw on one interface.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerReport {
    /// Frames from Rexo received byte-exact and in order.
    pub received: u32,
    /// The peer's own frames sent.
    pub sent: u32,
    /// Echoes received byte-exact and in order.
    pub echoed: u32,
    /// The first thing that was wrong, if any.
    pub error: Option<String>,
}

impl PeerReport {
    /// `None` when both directions carried every frame byte-exact, else why not.
    pub fn problem(&self) -> Option<String> {
        if let Some(error) = &self.error {
            return Some(error.clone());
        }
        if self.received < FRAMES {
            return Some(format!(
                "received {} of {FRAMES} frames from Rexo",
                self.received
            ));
        }
        if self.echoed < FRAMES {
            return Some(format!(
                "{} of {FRAMES} echoes came back ({} frames sent)",
                self.echoed, self.sent
            ));
        }
        None
    }

    /// One line for the test's outcome.
    pub fn summary(&self) -> String {
        format!(
            "received {}/{FRAMES} byte-exact, sent {}, echoed {}/{FRAMES}",
            self.received, self.sent, self.echoed
        )
    }
}

/// A running peer thread whose result is an `R`.
pub struct Peer<R = PeerReport> {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<R>>,
}

/// A UDP socket on 127.0.0.1 with a port the system picked.
fn local_socket() -> Result<UdpSocket> {
    UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("cannot bind a UDP socket: {e}"))
}

/// A UDP port on 127.0.0.1 free now, for QEMU to bind (another program could take it
/// before QEMU does; QEMU then fails to start, loudly).
pub fn free_port() -> Result<u16> {
    port_of(&local_socket()?)
}

fn port_of(socket: &UdpSocket) -> Result<u16> {
    socket
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("UDP socket without an address: {e}"))
}

/// The QEMU arguments for NIC number `index` of model `model` (with its properties,
/// e.g. `virtio-net-pci,disable-modern=on`) whose frames go to UDP port `host_port`
/// and come from `qemu_port`.
pub fn nic_args(index: usize, model: &str, host_port: u16, qemu_port: u16) -> Vec<String> {
    vec![
        "-netdev".into(),
        format!("socket,id=n{index},udp=127.0.0.1:{host_port},localaddr=127.0.0.1:{qemu_port}"),
        "-device".into(),
        format!("{model},netdev=n{index}"),
    ]
}

/// A UDP socket on 127.0.0.1 for a peer, with a receive buffer of [`RECV_BUFFER`] where
/// the host allows it (best-effort: without it the test still runs, only with less slack
/// for the peer thread's scheduling).
fn peer_socket() -> Result<UdpSocket> {
    let socket = local_socket()?;
    let _ = rustix::net::sockopt::set_socket_recv_buffer_size_force(&socket, RECV_BUFFER)
        .or_else(|_| rustix::net::sockopt::set_socket_recv_buffer_size(&socket, RECV_BUFFER));
    Ok(socket)
}

/// Binds the peer's socket (with a large receive buffer) and picks QEMU's port: the
/// socket, its port, and QEMU's.
fn sockets() -> Result<(UdpSocket, u16, u16)> {
    let socket = peer_socket()?;
    let host_port = port_of(&socket)?;
    // QEMU binds this one itself: the port is free once the probe socket is gone
    // (another program could take it in between; QEMU then fails to start, loudly).
    let qemu_port = free_port()?;
    socket
        .set_read_timeout(Some(POLL))
        .map_err(|e| format!("cannot set a UDP read timeout: {e}"))?;
    Ok((socket, host_port, qemu_port))
}

/// The peer's source MAC address for NIC `index` (locally administered: 02:...).
fn peer_mac(index: usize) -> [u8; 6] {
    [0x02, 0x52, 0x45, 0x58, 0x4F, index as u8]
}

impl Peer {
    /// Picks two free ports for NIC `index`, starts its `netcheck` peer thread, and
    /// returns the peer with the QEMU arguments that attach a `model` NIC to it.
    pub fn start(index: usize, model: &str) -> Result<(Self, Vec<String>)> {
        let (socket, host_port, qemu_port) = sockets()?;
        let qemu: SocketAddr = ([127, 0, 0, 1], qemu_port).into();
        let peer = Self::on_socket(socket, qemu, peer_mac(index))?;
        Ok((peer, nic_args(index, model, host_port, qemu_port)))
    }

    /// Starts the `netcheck` peer thread on `socket`, sending to `guest`, with source
    /// MAC `mac`.
    pub fn on_socket(socket: UdpSocket, guest: SocketAddr, mac: [u8; 6]) -> Result<Self> {
        socket
            .set_read_timeout(Some(POLL))
            .map_err(|e| format!("cannot set a UDP read timeout: {e}"))?;
        Ok(Self::spawn(move |stop| run(&socket, guest, mac, stop)))
    }
}

impl Peer<BenchReport> {
    /// Like [`Peer::start`], for `netbench`'s peer ([`run_bench`]).
    pub fn start_bench(index: usize, model: &str) -> Result<(Self, Vec<String>)> {
        Self::start_with(index, model, run_bench)
    }
}

impl<R: Send + 'static> Peer<R> {
    /// Like [`Peer::start`], with `body` as the peer: it gets the socket, QEMU's end of
    /// it, the peer's MAC address and the stop flag, and returns the report.
    pub fn start_with(
        index: usize,
        model: &str,
        body: impl FnOnce(&UdpSocket, SocketAddr, [u8; 6], &AtomicBool) -> R + Send + 'static,
    ) -> Result<(Self, Vec<String>)> {
        let (socket, host_port, qemu_port) = sockets()?;
        let qemu: SocketAddr = ([127, 0, 0, 1], qemu_port).into();
        let mac = peer_mac(index);
        let peer = Self::spawn(move |stop| body(&socket, qemu, mac, stop));
        Ok((peer, nic_args(index, model, host_port, qemu_port)))
    }

    /// Runs `body` on its own thread with the stop flag [`finish`](Self::finish) sets.
    pub fn spawn(body: impl FnOnce(&AtomicBool) -> R + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || body(&flag));
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the thread (QEMU has ended: nothing more will come) and returns its report.
    pub fn finish(mut self) -> Result<R> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(report)) => Ok(report),
            _ => Err("the peer thread panicked".into()),
        }
    }
}

impl<R> Drop for Peer<R> {
    /// A peer dropped unfinished (its case stopped with an error before QEMU ran) stops
    /// its thread too.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Reads one datagram into `buf`: its length, or `None` when none came within [`POLL`].
fn receive(socket: &UdpSocket, buf: &mut [u8]) -> std::result::Result<Option<usize>, String> {
    match socket.recv(buf) {
        Ok(len) => Ok(Some(len)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Ok(None)
        }
        // Linux reports an earlier send to a port nobody had bound yet (QEMU starting)
        // on the next call: not this read's problem.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(None),
        Err(e) => Err(format!("reading the peer socket: {e}")),
    }
}

/// The EtherType of a datagram that is at least an Ethernet header.
fn ethertype(frame: &[u8]) -> Option<u16> {
    (frame.len() >= HEADER).then(|| u16::from_be_bytes([frame[12], frame[13]]))
}

/// The peer's two phases; stops early (with what it has) when `stop` is set.
fn run(socket: &UdpSocket, guest: SocketAddr, mac: [u8; 6], stop: &AtomicBool) -> PeerReport {
    let mut report = PeerReport::default();
    let mut buf = vec![0u8; DATAGRAM];
    let stopped = || stop.load(Ordering::Acquire);
    // 1. Rexo's frames. A wrong or missing frame is recorded; the phase ends at the
    //    last sequence number (whatever came before), so phase 2 still runs and the
    //    guest's own lines say how its side went.
    let mut next = 0u32;
    while next < FRAMES && !stopped() {
        let len = match receive(socket, &mut buf) {
            Ok(Some(len)) => len,
            Ok(None) => continue,
            Err(e) => {
                report.error.get_or_insert(e);
                return report;
            }
        };
        let frame = &buf[..len];
        if ethertype(frame) != Some(ETHERTYPE_FROM_REXO) {
            continue;
        }
        // Follow the sequence number the frame carries, so that one lost frame is one
        // error rather than every later one.
        let carried = (len >= HEADER + 4)
            .then(|| u32::from_be_bytes([frame[14], frame[15], frame[16], frame[17]]));
        let seq = match carried {
            Some(seq) if seq >= next && seq < FRAMES => seq,
            _ => next,
        };
        if seq > next {
            report.error.get_or_insert(format!(
                "from Rexo: frames {next}..{seq} missing (lost, or sent out of order)"
            ));
        }
        match pattern::check_frame(frame, seq, ETHERTYPE_FROM_REXO) {
            None => report.received += 1,
            Some(why) => {
                report.error.get_or_insert(format!("from Rexo: {why}"));
            }
        }
        next = seq + 1;
    }
    // 2. The peer's frames, at most WINDOW ahead of their echoes.
    let mut out = vec![0u8; ETHERNET_MAX_FRAME];
    while report.echoed < FRAMES && !stopped() {
        while report.sent < FRAMES && report.sent - report.echoed < WINDOW {
            let seq = report.sent;
            let frame = &mut out[..frame_len(seq)];
            pattern::fill_frame(frame, seq, mac, ETHERTYPE_FROM_PEER);
            if let Err(e) = socket.send_to(frame, guest) {
                report
                    .error
                    .get_or_insert(format!("sending frame {seq} to QEMU: {e}"));
                return report;
            }
            report.sent += 1;
        }
        let len = match receive(socket, &mut buf) {
            Ok(Some(len)) => len,
            Ok(None) => continue,
            Err(e) => {
                report.error.get_or_insert(e);
                return report;
            }
        };
        let frame = &buf[..len];
        if ethertype(frame) != Some(ETHERTYPE_FROM_PEER) {
            continue;
        }
        if let Some(why) = pattern::check_frame(frame, report.echoed, ETHERTYPE_FROM_PEER) {
            report
                .error
                .get_or_insert(format!("echo of frame {}: {why}", report.echoed));
            return report;
        }
        report.echoed += 1;
    }
    report
}

/// What `netbench`'s peer saw and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BenchReport {
    /// Rexo's frames received, per size of [`FRAME_SIZES`].
    pub received: [u64; 2],
    /// Frames sent to Rexo, per size.
    pub sent: [u64; 2],
    /// The first thing that went wrong, if any.
    pub error: Option<String>,
}

/// Frames sent back to back before the streaming thread looks for a stop frame and
/// yields its core once (QEMU's threads share the machine with it).
const BURST: u64 = 256;
/// The longest a stream lasts without a stop frame.
const STREAM_LIMIT: Duration = Duration::from_secs(10);

/// `netbench`'s peer: counts Rexo's frames per size, and answers each send request
/// ([`Control::Send`]) with a stream of frames of that size, sent as fast as the
/// socket takes them, until a [`Control::Stop`] frame (what QEMU cannot take in time
/// it drops, so the guest's queue never runs dry).
fn run_bench(
    socket: &UdpSocket,
    guest: SocketAddr,
    mac: [u8; 6],
    stop: &AtomicBool,
) -> BenchReport {
    let mut report = BenchReport::default();
    let mut buf = vec![0u8; DATAGRAM];
    let mut out = vec![0u8; ETHERNET_MAX_FRAME];
    let mut streaming: Option<(usize, Instant)> = None;
    while !stop.load(Ordering::Acquire) {
        if let Some((size, since)) = streaming {
            let slot = FRAME_SIZES.iter().position(|&s| s == size);
            let frame = &mut out[..size];
            pattern::fill_frame(frame, 0, mac, ETHERTYPE_FROM_PEER);
            for _ in 0..BURST {
                match socket.send_to(frame, guest) {
                    Ok(_) => {
                        if let Some(slot) = slot {
                            report.sent[slot] += 1;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        report.error.get_or_insert(format!("sending to QEMU: {e}"));
                        return report;
                    }
                }
            }
            std::thread::yield_now();
            if since.elapsed() > STREAM_LIMIT {
                report
                    .error
                    .get_or_insert(format!("no stop frame after a {size}-byte stream of 10 s"));
                streaming = None;
            }
        }
        // Streaming: only what is already there; otherwise wait up to POLL.
        let _ = socket.set_nonblocking(streaming.is_some());
        let len = match receive(socket, &mut buf) {
            Ok(Some(len)) => len,
            Ok(None) => continue,
            Err(e) => {
                report.error.get_or_insert(e);
                return report;
            }
        };
        let frame = &buf[..len];
        if ethertype(frame) != Some(ETHERTYPE_FROM_REXO) {
            continue;
        }
        match bench::control(frame) {
            Some(Control::Send(size)) => streaming = Some((size, Instant::now())),
            Some(Control::Stop) => streaming = None,
            None => {
                if let Some(slot) = FRAME_SIZES.iter().position(|&s| s == len) {
                    report.received[slot] += 1;
                }
            }
        }
    }
    report
}

/// The host's own UDP loopback rates for `size`-byte datagrams, with one thread
/// sending `count` back to back and another receiving: datagrams per second sent
/// (QEMU's `socket` backend does one `sendto` per frame the guest sends) and received
/// between the first and the last arrival (one `recv` per frame the guest receives).
pub fn loopback_rates(size: usize, count: u64) -> Result<(f64, f64)> {
    let (receiver, port, _) = sockets()?;
    let sender = local_socket()?;
    let to: SocketAddr = ([127, 0, 0, 1], port).into();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let counter = scope.spawn(|| {
            let mut buf = vec![0u8; DATAGRAM];
            let (mut got, mut first, mut last) = (0u64, None, Instant::now());
            while got < count {
                match receive(&receiver, &mut buf) {
                    Ok(Some(_)) => {
                        last = Instant::now();
                        first.get_or_insert(last);
                        got += 1;
                    }
                    Ok(None) if done.load(Ordering::Acquire) => break,
                    Ok(None) => {}
                    Err(e) => return Err(e),
                }
            }
            let secs = first.map_or(0.0, |f| (last - f).as_secs_f64());
            Ok(got.saturating_sub(1) as f64 / secs.max(1e-9))
        });
        let frame = vec![0u8; size];
        let start = Instant::now();
        for _ in 0..count {
            if let Err(e) = sender.send_to(&frame, to) {
                done.store(true, Ordering::Release);
                return Err(format!("sending on loopback: {e}"));
            }
        }
        let sent = count as f64 / start.elapsed().as_secs_f64().max(1e-9);
        done.store(true, Ordering::Release);
        let received = counter
            .join()
            .map_err(|_| "the loopback receiver panicked".to_string())??;
        Ok((sent, received))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// What a fake guest does wrong.
    #[derive(Clone, Copy, PartialEq)]
    enum Fault {
        None,
        /// Flips a byte of Rexo's frame 700.
        CorruptSent,
        /// Skips Rexo's frame 5.
        LoseSent,
        /// Echoes frame 300 with one byte changed.
        CorruptEcho,
        /// Sends nothing at all.
        Silent,
    }

    /// Plays `netcheck` on `socket` towards `peer`, with `fault`.
    fn fake_guest(socket: &UdpSocket, peer: SocketAddr, fault: Fault) {
        if fault == Fault::Silent {
            return;
        }
        let mac = [2, 0, 0, 0, 0, 9];
        let mut frame = vec![0u8; ETHERNET_MAX_FRAME];
        for seq in 0..FRAMES {
            let len = frame_len(seq);
            pattern::fill_frame(&mut frame[..len], seq, mac, ETHERTYPE_FROM_REXO);
            if fault == Fault::CorruptSent && seq == 700 {
                frame[len - 1] ^= 0x40;
            }
            if fault == Fault::LoseSent && seq == 5 {
                continue;
            }
            socket.send_to(&frame[..len], peer).unwrap();
            if seq % 16 == 0 {
                // The real guest is far slower. A burst at host speed can overflow the
                // host's loopback backlog (net.core.netdev_max_backlog) while the test
                // threads share the cores, and that drops datagrams before any socket.
                std::thread::sleep(Duration::from_micros(500));
            }
        }
        socket
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let mut buf = vec![0u8; DATAGRAM];
        for seq in 0..FRAMES {
            let Ok(len) = socket.recv(&mut buf) else {
                return;
            };
            if fault == Fault::CorruptEcho && seq == 300 {
                buf[20] ^= 1;
            }
            socket.send_to(&buf[..len], peer).unwrap();
        }
    }

    /// Runs a peer against a fake guest; returns the peer's report once the guest is done.
    fn exercise(fault: Fault) -> PeerReport {
        // The peer's socket as the cases make it: a burst the peer thread cannot read
        // while it waits for a core must not overflow a default-sized buffer.
        let peer_socket = peer_socket().unwrap();
        let guest_socket = local_socket().unwrap();
        let peer_addr = peer_socket.local_addr().unwrap();
        let guest_addr = guest_socket.local_addr().unwrap();
        let peer = Peer::on_socket(peer_socket, guest_addr, [2, 0, 0, 0, 0, 1]).unwrap();
        let started = Instant::now();
        fake_guest(&guest_socket, peer_addr, fault);
        // Give the peer a moment for the last echo, as QEMU's exit would.
        std::thread::sleep(Duration::from_millis(200));
        let report = peer.finish().unwrap();
        assert!(started.elapsed() < Duration::from_secs(20));
        report
    }

    #[test]
    fn a_faithful_guest_passes() {
        let report = exercise(Fault::None);
        assert_eq!(report.problem(), None, "{report:?}");
        assert_eq!(
            (report.received, report.sent, report.echoed),
            (FRAMES, FRAMES, FRAMES)
        );
        assert!(report.summary().contains("echoed 2000/2000"));
    }

    #[test]
    fn a_corrupted_frame_is_named() {
        let report = exercise(Fault::CorruptSent);
        let problem = report.problem().unwrap();
        assert!(problem.contains("from Rexo: frame 700: byte"), "{problem}");
        assert!(problem.contains("byte"), "{problem}");
        // Phase 2 still ran.
        assert_eq!(report.echoed, FRAMES);
    }

    #[test]
    fn a_lost_frame_is_one_error_and_the_rest_still_counts() {
        let report = exercise(Fault::LoseSent);
        assert!(
            report.problem().unwrap().contains("frames 5..6 missing"),
            "{report:?}"
        );
        assert_eq!(report.received, FRAMES - 1);
        assert_eq!(report.echoed, FRAMES);
    }

    #[test]
    fn a_corrupted_echo_fails() {
        let report = exercise(Fault::CorruptEcho);
        assert_eq!(report.echoed, 300);
        assert!(
            report.problem().unwrap().contains("echo of frame 300"),
            "{report:?}"
        );
    }

    #[test]
    fn a_silent_guest_does_not_hang() {
        let report = exercise(Fault::Silent);
        assert_eq!(
            report.problem().as_deref(),
            Some("received 0 of 2000 frames from Rexo")
        );
    }

    #[test]
    fn the_bench_peer_counts_and_streams_until_told_to_stop() {
        let peer_socket = local_socket().unwrap();
        let guest = local_socket().unwrap();
        let peer_addr = peer_socket.local_addr().unwrap();
        peer_socket.set_read_timeout(Some(POLL)).unwrap();
        let guest_addr = guest.local_addr().unwrap();
        let mac = [2, 0, 0, 0, 0, 1];
        let peer = Peer::spawn(move |stop| run_bench(&peer_socket, guest_addr, mac, stop));
        let mut frame = vec![0u8; ETHERNET_MAX_FRAME];
        frame[12..14].copy_from_slice(&ETHERTYPE_FROM_REXO.to_be_bytes());
        for len in [64, 64, 64, 1514, 100] {
            guest.send_to(&frame[..len], peer_addr).unwrap();
        }
        let mut control = [0u8; bench::CONTROL_LEN];
        bench::control_frame(&mut control, [2, 0, 0, 0, 0, 9], Control::Send(1514));
        guest.send_to(&control, peer_addr).unwrap();
        guest
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut buf = vec![0u8; DATAGRAM];
        for _ in 0..500 {
            let len = guest.recv(&mut buf).unwrap();
            assert_eq!(len, 1514);
            assert_eq!(ethertype(&buf[..len]), Some(ETHERTYPE_FROM_PEER));
        }
        bench::control_frame(&mut control, [2, 0, 0, 0, 0, 9], Control::Stop);
        guest.send_to(&control, peer_addr).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        // Drain what was sent before the stop; then nothing more comes.
        guest
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        while guest.recv(&mut buf).is_ok() {}
        assert!(guest.recv(&mut buf).is_err());
        let report = peer.finish().unwrap();
        assert_eq!(report.received, [3, 1]);
        assert!(report.sent[1] >= 500, "{report:?}");
        assert_eq!(report.sent[0], 0);
        assert_eq!(report.error, None);
    }

    #[test]
    fn loopback_rates_are_measured() {
        let (sent, received) = loopback_rates(64, 2000).unwrap();
        assert!(sent > 0.0 && received > 0.0, "{sent} {received}");
    }

    #[test]
    fn qemu_arguments() {
        assert_eq!(
            nic_args(1, "virtio-net-pci,disable-modern=on", 4000, 4001).join(" "),
            "-netdev socket,id=n1,udp=127.0.0.1:4000,localaddr=127.0.0.1:4001 \
             -device virtio-net-pci,disable-modern=on,netdev=n1"
        );
    }
}
