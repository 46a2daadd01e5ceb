//! `cargo bench -p rexo-tcp`: the processor time a server spends serving files over
//! TCP, `rexo-tcp` against smoltcp, both measured in the same run against the same
//! smoltcp clients on a clean simulated wire. The server side is timed alone: its
//! stack's packet input and output and its app (read requests, queue answers). Each
//! answer is a prebuilt head plus a file: `rexo-tcp` queues a reference to the shared
//! file (checksums from the stored block sums), smoltcp copies it into its socket
//! buffer and sums it per segment. Both build each packet they send into a fresh buffer
//! (a NIC that does not gather). The rounds alternate between the two; it prints, per
//! workload, the median of the rounds and the ratio smoltcp / rexo-tcp (above 1:
//! `rexo-tcp` spends less). Wall-clock time: on a busy machine, run it twice.

#[path = "../tests/sim/mod.rs"]
mod sim;

use rexo_tcp::{Blob, Config, ConnId, Endpoint, Piece};
use sim::{QueueDevice, ToServer, interface, millis};
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::IpAddress;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One workload: connections, requests on each (one at a time, keep-alive), file size.
struct Workload {
    name: &'static str,
    connections: usize,
    requests: usize,
    file: usize,
}

const WORKLOADS: [Workload; 2] = [
    Workload {
        name: "1 KiB files",
        connections: 8,
        requests: 5000,
        file: 1024,
    },
    Workload {
        name: "100 KiB files",
        connections: 4,
        requests: 400,
        file: 100 * 1024,
    },
];

/// The rounds per workload and server (the median is reported).
const ROUNDS: usize = 7;

/// The head every answer starts with.
const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n";

/// A server under test: packets in, packets out, its app run in between.
trait Server {
    /// Takes a frame from the wire.
    fn input(&mut self, now: u64, frame: Vec<u8>);
    /// Runs the app and the stack at `now`, appending what it sends to `out`.
    fn run(&mut self, now: u64, out: &mut Vec<Vec<u8>>);
}

/// The number of requests (lines) that `buffer` completes, which are dropped from it.
fn take_requests(buffer: &mut Vec<u8>) -> usize {
    let count = buffer.iter().filter(|b| **b == b'\n').count();
    if let Some(last) = buffer.iter().rposition(|b| *b == b'\n') {
        buffer.drain(..=last);
    }
    count
}

/// `rexo-tcp`, answering from a shared blob, behind the test's link layer.
struct Rexo {
    endpoint: Endpoint,
    /// ARP replies to send.
    replies: Vec<Vec<u8>>,
    file: Arc<Blob>,
    connections: Vec<(ConnId, Vec<u8>)>,
}

impl Server for Rexo {
    fn input(&mut self, now: u64, frame: Vec<u8>) {
        match sim::to_server(&frame) {
            ToServer::Ip(packet) => {
                self.endpoint.input(now * 1_000_000, packet);
            }
            ToServer::ArpReply(reply) => self.replies.push(reply),
            ToServer::Other => {}
        }
    }

    fn run(&mut self, now: u64, out: &mut Vec<Vec<u8>>) {
        while let Some(id) = self.endpoint.accept() {
            self.connections.push((id, Vec::new()));
        }
        for (id, buffer) in &mut self.connections {
            let mut chunk = [0; 512];
            while let Ok(n @ 1..) = self.endpoint.recv(*id, &mut chunk) {
                buffer.extend_from_slice(&chunk[..n]);
            }
            for _ in 0..take_requests(buffer) {
                let len = self.file.bytes().len();
                let body = Piece::shared(self.file.clone(), 0, len).expect("whole file");
                self.endpoint
                    .send(*id, Piece::owned(HEAD.to_vec()))
                    .expect("queued");
                self.endpoint.send(*id, body).expect("queued");
            }
        }
        out.append(&mut self.replies);
        self.endpoint.poll(now * 1_000_000, &mut |segment| {
            let mut frame = Vec::with_capacity(14 + segment.len());
            frame.extend_from_slice(&sim::ethernet_header(2));
            segment.copy_to(&mut frame);
            out.push(frame);
            true
        });
    }
}

/// smoltcp, answering by copying into its socket buffers.
struct Smol {
    iface: Interface,
    device: QueueDevice,
    sockets: SocketSet<'static>,
    answer: Vec<u8>,
    /// Per socket: its handle, the request bytes read, the answer bytes left to write.
    connections: Vec<(SocketHandle, Vec<u8>, usize)>,
}

impl Smol {
    fn new(connections: usize, file: &[u8]) -> Smol {
        let mut device = QueueDevice::default();
        let iface = interface(&mut device, 1, 1);
        let mut sockets = SocketSet::new(Vec::new());
        let connections = (0..connections)
            .map(|_| {
                let mut socket = tcp::Socket::new(
                    tcp::SocketBuffer::new(vec![0; 64 * 1024]),
                    tcp::SocketBuffer::new(vec![0; 64 * 1024]),
                );
                socket.set_nagle_enabled(false);
                socket.listen(80).expect("listen");
                (sockets.add(socket), Vec::new(), 0)
            })
            .collect();
        let mut answer = HEAD.to_vec();
        answer.extend_from_slice(file);
        Smol {
            iface,
            device,
            sockets,
            answer,
            connections,
        }
    }
}

impl Server for Smol {
    fn input(&mut self, _: u64, frame: Vec<u8>) {
        self.device.rx.push_back(frame);
    }

    fn run(&mut self, now: u64, out: &mut Vec<Vec<u8>>) {
        self.iface
            .poll(millis(now), &mut self.device, &mut self.sockets);
        for (handle, buffer, left) in &mut self.connections {
            let socket = self.sockets.get_mut::<tcp::Socket>(*handle);
            while socket.can_recv() {
                let mut chunk = [0; 512];
                let n = socket.recv_slice(&mut chunk).expect("recv");
                buffer.extend_from_slice(&chunk[..n]);
            }
            *left += take_requests(buffer) * self.answer.len();
            while *left > 0 && socket.can_send() {
                let at = self.answer.len() - (*left - 1) % self.answer.len() - 1;
                *left -= socket.send_slice(&self.answer[at..]).expect("send");
            }
        }
        self.iface
            .poll(millis(now), &mut self.device, &mut self.sockets);
        out.append(&mut self.device.tx);
    }
}

/// The clients: smoltcp, each connection asking for the file again once the answer
/// to its last request is in.
struct Clients {
    iface: Interface,
    device: QueueDevice,
    sockets: SocketSet<'static>,
    /// Per connection: its handle, requests left to ask, answer bytes still due.
    connections: Vec<(SocketHandle, usize, usize)>,
    answer: usize,
}

impl Clients {
    fn new(workload: &Workload) -> Clients {
        let mut device = QueueDevice::default();
        let mut iface = interface(&mut device, 2, 2);
        let mut sockets = SocketSet::new(Vec::new());
        let connections = (0..workload.connections)
            .map(|i| {
                let mut socket = tcp::Socket::new(
                    tcp::SocketBuffer::new(vec![0; 256 * 1024]),
                    tcp::SocketBuffer::new(vec![0; 4096]),
                );
                socket.set_nagle_enabled(false);
                socket
                    .connect(
                        iface.context(),
                        (IpAddress::v4(10, 0, 0, 1), 80),
                        40_000 + i as u16,
                    )
                    .expect("connect");
                (sockets.add(socket), workload.requests, 0)
            })
            .collect();
        Clients {
            iface,
            device,
            sockets,
            connections,
            answer: HEAD.len() + workload.file,
        }
    }

    /// Runs the clients at `now` on what arrived; returns whether all are done.
    fn run(&mut self, now: u64, arrived: &mut Vec<Vec<u8>>, out: &mut Vec<Vec<u8>>) -> bool {
        self.device.rx.extend(arrived.drain(..));
        self.iface
            .poll(millis(now), &mut self.device, &mut self.sockets);
        let mut done = true;
        for (handle, left, due) in &mut self.connections {
            let socket = self.sockets.get_mut::<tcp::Socket>(*handle);
            while socket.can_recv() {
                let mut chunk = [0; 16 * 1024];
                let n = socket.recv_slice(&mut chunk).expect("recv");
                assert!(n <= *due, "no more than was asked for");
                *due -= n;
            }
            if *due == 0 && *left > 0 && socket.may_send() {
                socket.send_slice(b"GET /file\r\n").expect("request");
                *left -= 1;
                *due = self.answer;
            }
            done &= *left == 0 && *due == 0;
        }
        self.iface
            .poll(millis(now), &mut self.device, &mut self.sockets);
        out.append(&mut self.device.tx);
        done
    }
}

/// Serves `workload` with `server`; returns the time spent in the server.
fn serve(workload: &Workload, server: &mut dyn Server) -> Duration {
    let mut clients = Clients::new(workload);
    let (mut to_server, mut to_client): (Vec<Vec<u8>>, Vec<Vec<u8>>) = (Vec::new(), Vec::new());
    let mut spent = Duration::ZERO;
    for now in 0.. {
        assert!(
            now < 10_000_000,
            "{}: the transfers never finished",
            workload.name
        );
        let start = Instant::now();
        for packet in to_server.drain(..) {
            server.input(now, packet);
        }
        server.run(now, &mut to_client);
        spent += start.elapsed();
        if clients.run(now, &mut to_client, &mut to_server) {
            break;
        }
    }
    spent
}

/// The median of `runs`.
fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn main() {
    println!("| workload | requests | rexo-tcp server | smoltcp server | smoltcp / rexo-tcp |");
    println!("|---|---|---|---|---|");
    for workload in &WORKLOADS {
        let bytes: Vec<u8> = (0..workload.file)
            .map(|i| (i * 7 + i / 300) as u8)
            .collect();
        let file = Arc::new(Blob::new(bytes.clone()));
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let mut endpoint = Endpoint::new(Config::default()).expect("a sound config");
            endpoint.listen(80).expect("listen");
            let mut rexo = Rexo {
                endpoint,
                replies: Vec::new(),
                file: file.clone(),
                connections: Vec::new(),
            };
            ours.push(serve(workload, &mut rexo));
            theirs.push(serve(
                workload,
                &mut Smol::new(workload.connections, &bytes),
            ));
        }
        let (ours, theirs) = (median(ours), median(theirs));
        println!(
            "| {} | {} | {:.1} ms | {:.1} ms | {:.2} |",
            workload.name,
            workload.connections * workload.requests,
            ours.as_secs_f64() * 1e3,
            theirs.as_secs_f64() * 1e3,
            theirs.as_secs_f64() / ours.as_secs_f64()
        );
    }
}
