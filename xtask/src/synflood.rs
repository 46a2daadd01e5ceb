//! The `badinput::syn-flood` case's peer, on QEMU's UDP `socket` backend: a TCP/IP
//! host (Rexo's own `rexo-net`, built for the host, at 10.0.2.2) holds a keep-alive
//! connection to `httpd-test` at 10.0.2.15, then sends [`SYNS`] SYNs to port 80 from
//! spoofed addresses while it keeps using that connection, and afterwards opens a new
//! one and stops the server with its test hook.
//!
//! The spoofed addresses are answered for at the ARP level (as hosts that exist but
//! never finish a handshake), so every answer Rexo sends them comes back here and is
//! counted: a reset for a SYN past the backlog, a SYN-ACK for one that took a slot.

use crate::Result;
use rexo_api::device::ETHERNET_MAX_FRAME;
use rexo_api::{DeviceError, NetDevice, NetInfo};
use rexo_net::{Config, Connection, Endpoint, Stack, TcpOptions};
use rexo_pktfilter::checksum;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// SYNs sent.
pub const SYNS: u32 = 100_000;
/// Rexo's address (`ip=` in the case).
const GUEST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
/// The peer's own address.
const HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// The spoofed sources: 10.0.2.100 and the next [`SPOOFED`] - 1.
const SPOOFED: u8 = 4;
/// SYNs sent and not yet answered before the peer waits for answers (QEMU drops what
/// the guest's ring cannot take, and the loopback socket's buffer is finite).
const WINDOW: u32 = 256;
/// How long the peer waits for answers when the window is full before it counts the
/// outstanding SYNs as unanswered and goes on.
const PATIENCE: Duration = Duration::from_millis(200);
/// SYNs between two requests on the established connection.
const REQUEST_EVERY: u32 = 10_000;
/// The longest one request may take, flood or not.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);

/// Whether `address` is one of the spoofed sources.
fn spoofed(address: [u8; 4]) -> bool {
    address[..3] == [10, 0, 2] && (100..100 + SPOOFED).contains(&address[3])
}

/// What came back for the spoofed sources.
#[derive(Default)]
struct Answers {
    /// Resets (SYNs refused past the backlog).
    resets: u32,
    /// SYN-ACKs (SYNs that took a slot, and their retransmissions).
    syn_acks: u32,
    /// ARP requests for a spoofed address, answered.
    arp: u32,
    /// Rexo's MAC address, from its first frame.
    guest_mac: Option<[u8; 6]>,
}

/// The host end of the interface as a `NetDevice` for a host `rexo-net` stack: frames
/// for the spoofed sources are answered (ARP) or counted here, the rest go to the stack.
struct PeerNic {
    socket: UdpSocket,
    qemu: SocketAddr,
    mac: [u8; 6],
    answers: Arc<Mutex<Answers>>,
}

impl PeerNic {
    /// Counts or answers `frame` if it is for a spoofed source; true when it was.
    fn intercept(&self, frame: &[u8]) -> bool {
        let mut answers = self.answers.lock().expect("the answers' lock");
        if frame.len() >= 12 && answers.guest_mac.is_none() {
            answers.guest_mac = Some(frame[6..12].try_into().expect("6 bytes"));
        }
        match frame.get(12..14) {
            Some([0x08, 0x06])
                if frame.len() >= 42 && frame[21] == 1 && spoofed(target(frame, 38)) =>
            {
                let mut reply = frame[..42].to_vec();
                reply[0..6].copy_from_slice(&frame[6..12]);
                reply[6..12].copy_from_slice(&self.mac);
                reply[21] = 2;
                reply[22..28].copy_from_slice(&self.mac);
                reply[28..32].copy_from_slice(&frame[38..42]);
                reply[32..42].copy_from_slice(&frame[22..32]);
                let _ = self.socket.send_to(&reply, self.qemu);
                answers.arp += 1;
                true
            }
            Some([0x08, 0x00]) if frame.len() >= 54 && spoofed(target(frame, 30)) => {
                let flags = frame[14 + usize::from(frame[14] & 0x0F) * 4 + 13];
                if flags & 0x04 != 0 {
                    answers.resets += 1;
                } else if flags & 0x12 == 0x12 {
                    answers.syn_acks += 1;
                }
                true
            }
            _ => false,
        }
    }
}

/// The four bytes of `frame` at `at` (an IPv4 address).
fn target(frame: &[u8], at: usize) -> [u8; 4] {
    frame[at..at + 4].try_into().expect("4 bytes")
}

impl NetDevice for PeerNic {
    fn info(&self) -> NetInfo {
        NetInfo {
            mac: self.mac,
            max_frame: ETHERNET_MAX_FRAME,
            queues: 1,
            link_up: true,
            checksum_offload: false,
            tcp_segmentation: None,
            receive_steering: None,
            pair: None,
        }
    }

    fn receive(
        &mut self,
        _queue: usize,
        budget: usize,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> std::result::Result<usize, DeviceError> {
        let mut buffer = [0u8; 2048];
        let mut count = 0;
        while count < budget {
            let Ok(len) = self.socket.recv(&mut buffer) else {
                break;
            };
            // Longer than a frame may be (or cut to the buffer by `recv`): dropped.
            if len > ETHERNET_MAX_FRAME {
                continue;
            }
            if !self.intercept(&buffer[..len]) {
                deliver(&buffer[..len]);
                count += 1;
            }
        }
        Ok(count)
    }

    fn send_segments(
        &mut self,
        _queue: usize,
        segments: &[usize],
        offload: bool,
        fill: &mut dyn FnMut(&mut [&mut [u8]]) -> bool,
    ) -> std::result::Result<(), DeviceError> {
        if offload {
            return Err(DeviceError::Unsupported("checksum offload"));
        }
        let len = DeviceError::check_segments(segments, ETHERNET_MAX_FRAME)?;
        let mut frame = vec![0u8; len];
        let filled = rexo_api::device::lend_consecutive(&mut frame, segments, |parts| fill(parts));
        if filled != Some(true) {
            return Err(DeviceError::Withdrawn);
        }
        self.socket
            .send_to(&frame, self.qemu)
            .map(|_| ())
            .map_err(|_| DeviceError::Failed("the loopback socket refused a frame"))
    }

    fn transmit_pending(&mut self, _queue: usize) -> std::result::Result<usize, DeviceError> {
        Ok(0)
    }

    fn wake_on_receive(
        &mut self,
        _queue: usize,
        _core: Option<usize>,
    ) -> std::result::Result<(), DeviceError> {
        Err(DeviceError::Unsupported("waking on the host"))
    }
}

/// SYN number `i`: from a spoofed address and port, to Rexo's port 80.
fn syn(i: u32, from_mac: [u8; 6], to_mac: [u8; 6]) -> Vec<u8> {
    let mut frame = vec![0u8; 54];
    frame[0..6].copy_from_slice(&to_mac);
    frame[6..12].copy_from_slice(&from_mac);
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    frame[14] = 0x45;
    frame[16..18].copy_from_slice(&40u16.to_be_bytes());
    frame[22] = 64;
    frame[23] = 6;
    frame[26..30].copy_from_slice(&[10, 0, 2, 100 + (i % u32::from(SPOOFED)) as u8]);
    frame[30..34].copy_from_slice(&GUEST.octets());
    let ip = checksum(&frame[14..34]);
    frame[24..26].copy_from_slice(&ip.to_be_bytes());
    let port = 1024 + (i / u32::from(SPOOFED)) as u16;
    frame[34..36].copy_from_slice(&port.to_be_bytes());
    frame[36..38].copy_from_slice(&80u16.to_be_bytes());
    frame[38..42].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
    frame[46] = 5 << 4;
    frame[47] = 0x02;
    frame[48..50].copy_from_slice(&64240u16.to_be_bytes());
    let mut pseudo = frame[26..34].to_vec();
    pseudo.extend_from_slice(&[0, 6, 0, 20]);
    pseudo.extend_from_slice(&frame[34..54]);
    let tcp = checksum(&pseudo);
    frame[50..52].copy_from_slice(&tcp.to_be_bytes());
    frame
}

/// The host stack and its clock.
struct Host<'a> {
    stack: Stack,
    started: Instant,
    stop: &'a AtomicBool,
}

impl Host<'_> {
    fn poll(&mut self) -> Result<()> {
        if self.stop.load(Ordering::Acquire) {
            return Err("QEMU ended before the peer was done".into());
        }
        let now = self.started.elapsed().as_nanos() as u64;
        self.stack
            .poll(now)
            .map_err(|e| format!("host stack: {e}"))?;
        Ok(())
    }

    /// A connection to httpd, retried (resets while it is not listening yet) until
    /// `limit`.
    fn connect(&mut self, limit: Duration) -> Result<Connection> {
        let deadline = Instant::now() + limit;
        let options = TcpOptions {
            receive_buffer: 64 * 1024,
            send_buffer: 16 * 1024,
            ..TcpOptions::default()
        };
        while Instant::now() < deadline {
            let to = Endpoint {
                address: GUEST,
                port: 80,
            };
            let connection = self
                .stack
                .connect(to, options)
                .map_err(|e| format!("connect: {e}"))?;
            let tried = Instant::now();
            while tried.elapsed() < Duration::from_secs(2) {
                self.poll()?;
                // The connection is this stack's own: no error but ForeignHandle.
                let own = |e| format!("connection state: {e}");
                if self.stack.is_established(&connection).map_err(own)? {
                    return Ok(connection);
                }
                if self.stack.is_finished(&connection).map_err(own)? {
                    break;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            self.stack
                .abort(connection)
                .map_err(|e| format!("abort: {e}"))?;
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("no connection to {GUEST}:80 within {limit:?}"))
    }

    /// `GET path` on `connection`: the status and the body's length.
    fn get(&mut self, connection: &Connection, path: &str) -> Result<(u16, usize)> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {GUEST}\r\n\r\n");
        let started = Instant::now();
        let mut sent = 0;
        let mut answer = Vec::new();
        while started.elapsed() < REQUEST_LIMIT {
            self.poll()?;
            if sent < request.len() {
                sent += self
                    .stack
                    .write(connection, &request.as_bytes()[sent..])
                    .map_err(|e| format!("GET {path}: {e}"))?;
            }
            let mut buffer = [0u8; 8192];
            let n = self
                .stack
                .read(connection, &mut buffer)
                .map_err(|e| format!("GET {path}: {e} after {} bytes", answer.len()))?;
            answer.extend_from_slice(&buffer[..n]);
            if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&answer[..end]).to_string();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or_else(|| format!("GET {path}: no Content-Length in {head:?}"))?;
                if answer.len() >= end + 4 + length {
                    let status = head
                        .get(9..12)
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| format!("GET {path}: status line {head:?}"))?;
                    return Ok((status, length));
                }
            }
            if n == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        Err(format!(
            "GET {path}: no whole answer within {REQUEST_LIMIT:?}"
        ))
    }
}

/// The peer: see the module's documentation. Its notes say what was sent and answered.
pub fn run(
    socket: &UdpSocket,
    qemu: SocketAddr,
    mac: [u8; 6],
    stop: &AtomicBool,
) -> Result<Vec<String>> {
    let sender = socket.try_clone().map_err(|e| e.to_string())?;
    socket
        .set_nonblocking(true)
        .map_err(|e| format!("a non-blocking socket: {e}"))?;
    let answers = Arc::new(Mutex::new(Answers::default()));
    let nic = PeerNic {
        socket: socket.try_clone().map_err(|e| e.to_string())?,
        qemu,
        mac,
        answers: Arc::clone(&answers),
    };
    let config = Config::Static {
        address: HOST,
        prefix: 24,
        gateway: None,
        dns: None,
    };
    // On the host the seed is std's per-process random hasher key, in place of the
    // kernel's random number.
    let seed = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), mac);
    let stack = Stack::start(Box::new(nic), 0, config, 0, Ok(seed)).map_err(|e| e.to_string())?;
    let mut host = Host {
        stack,
        started: Instant::now(),
        stop,
    };
    let kept = host.connect(Duration::from_secs(60))?;
    let (status, len) = host.get(&kept, "/1k.txt")?;
    if (status, len) != (200, 1024) {
        return Err(format!(
            "GET /1k.txt before the flood: {status}, {len} bytes"
        ));
    }
    let guest_mac = answers
        .lock()
        .expect("the answers' lock")
        .guest_mac
        .ok_or("no frame from Rexo yet")?;
    let flood_started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut unanswered = 0u32;
    let answered = |answers: &Mutex<Answers>| {
        let a = answers.lock().expect("the answers' lock");
        a.resets + a.syn_acks
    };
    for i in 0..SYNS {
        sender
            .send_to(&syn(i, mac, guest_mac), qemu)
            .map_err(|e| format!("sending SYN {i}: {e}"))?;
        if i % 32 == 31 {
            host.poll()?;
        }
        let waited = Instant::now();
        while (i + 1).saturating_sub(answered(&answers) + unanswered) > WINDOW {
            host.poll()?;
            if waited.elapsed() > PATIENCE {
                unanswered = (i + 1).saturating_sub(answered(&answers));
                break;
            }
        }
        if i % REQUEST_EVERY == REQUEST_EVERY - 1 {
            let asked = Instant::now();
            let (status, len) = host
                .get(&kept, "/1k.txt")
                .map_err(|e| format!("during the flood, after {} SYNs: {e}", i + 1))?;
            if (status, len) != (200, 1024) {
                return Err(format!(
                    "GET /1k.txt during the flood: {status}, {len} bytes"
                ));
            }
            slowest = slowest.max(asked.elapsed());
        }
    }
    let flood_time = flood_started.elapsed();
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_millis(500) {
        host.poll()?;
    }
    let fresh = host.connect(Duration::from_secs(10))?;
    let (status, _) = host.get(&fresh, "/1k.txt")?;
    if status != 200 {
        return Err(format!("GET /1k.txt after the flood: {status}"));
    }
    let (status, _) = host.get(&fresh, "/__shutdown")?;
    if status != 200 {
        return Err(format!("GET /__shutdown: {status}"));
    }
    let a = answers.lock().expect("the answers' lock");
    let notes = vec![format!(
        "{SYNS} SYNs from {SPOOFED} spoofed addresses in {:.1} s: {} answered with a reset, {} SYN-ACKs, {} ARP requests for them answered; the established connection answered {} requests meanwhile, the slowest in {:.1} ms; a new connection after the flood was served",
        flood_time.as_secs_f64(),
        a.resets,
        a.syn_acks,
        a.arp,
        SYNS / REQUEST_EVERY,
        slowest.as_secs_f64() * 1000.0
    )];
    if a.resets + a.syn_acks < SYNS * 9 / 10 {
        return Err(format!(
            "only {} of {SYNS} SYNs were answered ({} resets, {} SYN-ACKs)",
            a.resets + a.syn_acks,
            a.resets,
            a.syn_acks
        ));
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_syns_have_right_checksums_and_spoofed_sources() {
        let frame = syn(5, [2; 6], [4; 6]);
        assert_eq!(checksum(&frame[14..34]), 0);
        let mut pseudo = frame[26..34].to_vec();
        pseudo.extend_from_slice(&[0, 6, 0, 20]);
        pseudo.extend_from_slice(&frame[34..54]);
        assert_eq!(checksum(&pseudo), 0);
        assert!(spoofed(target(&frame, 26)));
        assert!(!spoofed(HOST.octets()));
        assert_eq!(frame[47], 0x02, "SYN alone");
    }

    #[test]
    fn the_peers_nic_drops_datagrams_longer_than_its_max_frame() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let peer = socket.local_addr().unwrap();
        let qemu = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut nic = PeerNic {
            socket,
            qemu: qemu.local_addr().unwrap(),
            mac: [2, 0, 0, 0, 0, 2],
            answers: Arc::default(),
        };
        let max = nic.info().max_frame;
        // Frames of no protocol the peer intercepts; the 60-byte one comes last.
        for len in [max + 1, max, 3000, 60] {
            qemu.send_to(&vec![0; len], peer).unwrap();
        }
        let mut delivered = Vec::new();
        let started = Instant::now();
        while delivered.last() != Some(&60) && started.elapsed() < Duration::from_secs(5) {
            nic.receive(0, 8, &mut |frame| delivered.push(frame.len()))
                .unwrap();
        }
        assert_eq!(delivered, [max, 60], "the longer ones are not delivered");
    }
}
