//! End to end against an independent TCP: smoltcp clients talk to a `rexo-tcp` server
//! over a simulated wire that loses, duplicates and reorders packets as a seeded
//! generator says. Every byte of every transfer must arrive exactly once and in order,
//! both ways, every connection must close cleanly, and every segment the server sends
//! must carry the checksum a byte-by-byte computation gives. With segmentation offload
//! the server's super-segments are cut at the MSS here, as a NIC does ([`cut`]), and
//! each piece goes on the wire alone (and may be lost alone).

use rexo_tcp::{Blob, Config, ConnId, Endpoint, Error, MAX_SEGMENTATION, Outgoing, Piece};
mod sim;

use sim::{QueueDevice, ToServer, millis};
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::IpAddress;
use std::sync::Arc;

/// xorshift64*: small, seeded, good enough to drive faults.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// `true` with probability `per_mille` / 1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.next() % 1000 < per_mille
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Fault rates, per mille of packets.
#[derive(Clone, Copy)]
struct Faults {
    loss: u64,
    duplicate: u64,
    reorder: u64,
}

impl Faults {
    /// Loss, duplication and reordering, per mille of packets.
    const fn per_mille(loss: u64, duplicate: u64, reorder: u64) -> Faults {
        Faults {
            loss,
            duplicate,
            reorder,
        }
    }
}

/// No fault.
const CLEAN: Faults = Faults::per_mille(0, 0, 0);

/// Some of each fault.
const FAULTY: Faults = Faults::per_mille(30, 20, 50);

/// Much loss and reordering.
const HEAVY: Faults = Faults::per_mille(150, 0, 100);

/// A little of each fault.
const LIGHT: Faults = Faults::per_mille(10, 10, 10);

/// One direction of the wire: packets with the millisecond they arrive.
#[derive(Default)]
struct Link(Vec<(u64, Vec<u8>)>);

impl Link {
    fn push(&mut self, now: u64, packet: Vec<u8>, rng: &mut Rng, faults: Faults) {
        if rng.chance(faults.loss) {
            return;
        }
        let delay = |rng: &mut Rng| {
            1 + if rng.chance(faults.reorder) {
                rng.below(8)
            } else {
                0
            }
        };
        if rng.chance(faults.duplicate) {
            self.0.push((now + delay(rng), packet.clone()));
        }
        self.0.push((now + delay(rng), packet));
    }

    /// The packets due by `now`, in the order they arrive.
    fn due(&mut self, now: u64) -> Vec<Vec<u8>> {
        let mut due: Vec<(u64, Vec<u8>)> = Vec::new();
        self.0.retain(|(at, packet)| {
            if *at <= now {
                due.push((*at, packet.clone()));
                false
            } else {
                true
            }
        });
        due.sort_by_key(|(at, _)| *at);
        due.into_iter().map(|(_, p)| p).collect()
    }

    fn next_arrival(&self) -> Option<u64> {
        self.0.iter().map(|(at, _)| *at).min()
    }
}

/// Both directions of the wire and what drives their faults.
struct Wire {
    to_server: Link,
    to_client: Link,
    rng: Rng,
    faults: Faults,
}

/// Polls the clients' interface at `now` and puts what it sent on the wire.
fn poll_clients(
    iface: &mut Interface,
    device: &mut QueueDevice,
    sockets: &mut SocketSet<'_>,
    now: u64,
    wire: &mut Wire,
) {
    iface.poll(millis(now), device, sockets);
    for frame in std::mem::take(&mut device.tx) {
        match sim::to_server(&frame) {
            ToServer::Ip(packet) => {
                wire.to_server
                    .push(now, packet.to_vec(), &mut wire.rng, wire.faults)
            }
            ToServer::ArpReply(reply) => device.rx.push_back(reply),
            ToServer::Other => {}
        }
    }
}

/// The one's complement sum of `bytes` computed byte by byte, independently of the
/// crate (not complemented).
fn naive_sum(bytes: &[u8]) -> u16 {
    let mut total: u32 = 0;
    for (i, byte) in bytes.iter().enumerate() {
        total += u32::from(*byte) << if i % 2 == 0 { 8 } else { 0 };
        total = (total & 0xffff) + (total >> 16);
    }
    total as u16
}

/// The sum of an IPv4 packet's TCP pseudo-header.
fn naive_pseudo_header(packet: &[u8]) -> u16 {
    let tcp_len = packet.len() - usize::from(packet[0] & 0xf) * 4;
    let mut bytes = packet[12..20].to_vec();
    bytes.extend_from_slice(&[0, 6]);
    bytes.extend_from_slice(&(tcp_len as u16).to_be_bytes());
    naive_sum(&bytes)
}

/// The TCP checksum of an IPv4 packet computed byte by byte: 0 when the packet's
/// checksum is right (with the field zeroed: the checksum to store).
fn naive_tcp_checksum(packet: &[u8]) -> u16 {
    let ihl = usize::from(packet[0] & 0xf) * 4;
    let sum = naive_sum(&packet[ihl..]);
    !naive_sum(&[naive_pseudo_header(packet).to_be_bytes(), sum.to_be_bytes()].concat())
}

/// Cuts the IPv4 super-segment `packet` into packets of `mss` payload bytes (the last
/// the rest), as a NIC with TCP segmentation offload does: the headers repeated with
/// the IPv4 total length, identification (one more per packet) and header checksum,
/// the sequence number and the TCP checksum made for each, FIN and PSH kept on the
/// last only.
fn cut(packet: &[u8], mss: usize) -> Vec<Vec<u8>> {
    let ihl = usize::from(packet[0] & 0xf) * 4;
    let headers = ihl + usize::from(packet[ihl + 12] >> 4) * 4;
    let seq = u32::from_be_bytes(packet[ihl + 4..ihl + 8].try_into().unwrap());
    let id = u16::from_be_bytes([packet[4], packet[5]]);
    let chunks: Vec<&[u8]> = packet[headers..].chunks(mss).collect();
    let last = chunks.len() - 1;
    let mut packets = Vec::new();
    for (i, chunk) in chunks.into_iter().enumerate() {
        let mut p = packet[..headers].to_vec();
        p.extend_from_slice(chunk);
        let total = p.len() as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[4..6].copy_from_slice(&id.wrapping_add(i as u16).to_be_bytes());
        p[10..12].fill(0);
        let ip_sum = !naive_sum(&p[..ihl]);
        p[10..12].copy_from_slice(&ip_sum.to_be_bytes());
        let at = seq.wrapping_add((i * mss) as u32);
        p[ihl + 4..ihl + 8].copy_from_slice(&at.to_be_bytes());
        if i < last {
            p[ihl + 13] &= !(rexo_tcp::FIN | rexo_tcp::PSH);
        }
        p[ihl + 16..ihl + 18].fill(0);
        let tcp_sum = naive_tcp_checksum(&p);
        p[ihl + 16..ihl + 18].copy_from_slice(&tcp_sum.to_be_bytes());
        packets.push(p);
    }
    packets
}

/// The packets a NIC puts on the wire for `segment`: a super-segment checked (its
/// checksum field holds the pseudo-header's sum) and [`cut`], every packet checked
/// to fit a 1500-byte MTU and carry a right checksum, their payloads the segment's.
fn on_the_wire(segment: &Outgoing<'_>, seed: u64) -> Vec<Vec<u8>> {
    let mut packet = Vec::new();
    segment.copy_to(&mut packet);
    let Some(mss) = segment.cut else {
        assert_eq!(naive_tcp_checksum(&packet), 0, "seed {seed}: checksum");
        return vec![packet];
    };
    let field = u16::from_be_bytes([packet[36], packet[37]]);
    assert_eq!(field, naive_pseudo_header(&packet), "seed {seed}: seed sum");
    assert!(packet.len() - 40 > mss, "seed {seed}: longer than the MSS");
    let packets = cut(&packet, mss);
    let mut payload = Vec::new();
    for p in &packets {
        assert!(p.len() <= 1500, "seed {seed}: {} bytes", p.len());
        assert_eq!(naive_tcp_checksum(p), 0, "seed {seed}: a cut checksum");
        payload.extend_from_slice(&p[40..]);
    }
    assert!(payload == packet[40..], "seed {seed}: the cut payload");
    packets
}

/// The bytes client `i` uploads: a 4-byte length, then a pattern.
fn upload(i: usize) -> Vec<u8> {
    let len = 20_000 + i * 17_771;
    let mut bytes = (len as u32).to_be_bytes().to_vec();
    bytes.extend((0..len).map(|k| (k * 31 + i * 7 + k / 251) as u8));
    bytes
}

/// The response to client `i` as pieces over the shared file, and its bytes.
fn response(i: usize, file: &Arc<Blob>) -> (Vec<Piece>, Vec<u8>) {
    let head = format!("HTTP/1.1 200 OK\r\nX-Client: {i}{}\r\n\r\n", "!".repeat(i));
    let len = file.bytes().len();
    let (a, b) = (i * 333 + 1, len - i * 1000);
    let (c, d) = (i * 77, i * 77 + 4097);
    let pieces = vec![
        Piece::owned(head.clone().into_bytes()),
        Piece::shared(file.clone(), a, b).expect("in the file"),
        Piece::owned(b"--".to_vec()),
        Piece::shared(file.clone(), c, d).expect("in the file"),
    ];
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&file.bytes()[a..b]);
    bytes.extend_from_slice(b"--");
    bytes.extend_from_slice(&file.bytes()[c..d]);
    (pieces, bytes)
}

/// What the server app holds for one connection.
struct ServerConn {
    id: ConnId,
    received: Vec<u8>,
    answered: bool,
}

/// What one client holds.
struct Client {
    handle: SocketHandle,
    upload: Vec<u8>,
    uploaded: usize,
    expected: Vec<u8>,
    received: Vec<u8>,
    closed: bool,
}

/// How a run goes.
#[derive(Clone, Copy)]
struct Scenario {
    seed: u64,
    clients: usize,
    faults: Faults,
    /// Each client's receive buffer (over 64 KiB: window scaling).
    client_buffer: usize,
    /// The most bytes a client reads each time it looks, and how often it looks (ms).
    read_chunk: usize,
    read_every_ms: u64,
    /// A client that aborts (RST) once it has read this many bytes of the answer.
    abort_after: Option<usize>,
    /// Spoofed SYNs injected each millisecond during the first [`FLOOD_MS`].
    flood_per_ms: u64,
    /// The server's [`Config::segmentation`] (super-segments cut by [`cut`]).
    segmentation: Option<usize>,
    /// The most segments the server's sender takes per poll (a small transmit ring).
    room: usize,
}

/// How long a SYN flood lasts, in simulated milliseconds.
const FLOOD_MS: u64 = 2000;

/// A SYN to the server's port 80 from a spoofed address and port picked by `rng`, with
/// valid checksums.
fn spoofed_syn(rng: &mut Rng) -> Vec<u8> {
    let r = rng.next().to_be_bytes();
    let src = [172, 16, r[0], r[1]];
    let mut packet = vec![
        0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, src[0], src[1], src[2], src[3], 10, 0, 0, 1,
    ];
    let ip_sum = !rexo_tcp::checksum::sum(&packet);
    packet[10..12].copy_from_slice(&ip_sum.to_be_bytes());
    let mut tcp = vec![
        r[2], r[3], 0, 80, r[4], r[5], r[6], r[7], 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ];
    let sum = rexo_tcp::checksum::add(
        rexo_tcp::checksum::pseudo_header(src, [10, 0, 0, 1], tcp.len()),
        rexo_tcp::checksum::sum(&tcp),
    );
    tcp[16..18].copy_from_slice(&(!sum).to_be_bytes());
    packet.extend_from_slice(&tcp);
    packet
}

/// A scenario of `clients` clients with big buffers reading at once, under `faults`.
fn brisk(seed: u64, clients: usize, faults: Faults) -> Scenario {
    Scenario {
        seed,
        clients,
        faults,
        client_buffer: 256 * 1024,
        read_chunk: usize::MAX,
        read_every_ms: 1,
        abort_after: None,
        flood_per_ms: 0,
        segmentation: None,
        room: usize::MAX,
    }
}

/// [`brisk`] with segmentation offload of up to 64 KiB less headers.
fn offloaded(seed: u64, clients: usize, faults: Faults) -> Scenario {
    Scenario {
        segmentation: Some(MAX_SEGMENTATION),
        ..brisk(seed, clients, faults)
    }
}

/// Runs a scenario; returns how many segments the server sent and its counters.
fn run(scenario: Scenario) -> (u64, rexo_tcp::Stats) {
    let Scenario { seed, faults, .. } = scenario;
    let file_bytes: Vec<u8> = (0..300_000u32)
        .map(|k| (k ^ (k >> 9) ^ seed as u32) as u8)
        .collect();
    let file = Arc::new(Blob::new(file_bytes));
    let mut server = Endpoint::new(Config {
        secret: u128::from(seed),
        segmentation: scenario.segmentation,
        ..Config::default()
    })
    .expect("a sound config");
    server.listen(80).expect("listen");
    let mut server_conns: Vec<ServerConn> = Vec::new();

    let mut device = QueueDevice::default();
    let mut iface = sim::interface(&mut device, 2, seed);
    let mut sockets = SocketSet::new(Vec::new());
    let mut state: Vec<Client> = (0..scenario.clients)
        .map(|i| {
            let mut socket = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; scenario.client_buffer]),
                tcp::SocketBuffer::new(vec![0; 64 * 1024]),
            );
            socket
                .connect(
                    iface.context(),
                    (IpAddress::v4(10, 0, 0, 1), 80),
                    49_152 + i as u16,
                )
                .expect("connect");
            Client {
                handle: sockets.add(socket),
                upload: upload(i),
                uploaded: 0,
                expected: response(i, &file).1,
                received: Vec::new(),
                closed: false,
            }
        })
        .collect();

    let mut wire = Wire {
        to_server: Link::default(),
        to_client: Link::default(),
        rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
        faults,
    };
    let mut segments = 0u64;
    let mut now = 0u64;
    loop {
        assert!(
            now < 1_000_000,
            "seed {seed}: not done after 1000 s of simulated time"
        );
        if now < FLOOD_MS {
            for _ in 0..scenario.flood_per_ms {
                let syn = spoofed_syn(&mut wire.rng);
                server.input(now * 1_000_000, &syn);
            }
        }
        for packet in wire.to_server.due(now) {
            server.input(now * 1_000_000, &packet);
        }
        device.rx.extend(wire.to_client.due(now));
        poll_clients(&mut iface, &mut device, &mut sockets, now, &mut wire);

        // The server app: read each request, check it, answer from the file, close.
        while let Some(id) = server.accept() {
            server_conns.push(ServerConn {
                id,
                received: Vec::new(),
                answered: false,
            });
        }
        for conn in server_conns.iter_mut().filter(|c| !c.answered) {
            let mut buf = [0u8; 4096];
            loop {
                match server.recv(conn.id, &mut buf) {
                    Ok(0) => break,
                    Ok(n) => conn.received.extend_from_slice(&buf[..n]),
                    Err(e) => panic!("seed {seed}: server recv: {e:?}"),
                }
            }
            if conn.received.len() < 4 {
                continue;
            }
            let len = u32::from_be_bytes(conn.received[..4].try_into().unwrap()) as usize;
            if conn.received.len() < 4 + len {
                continue;
            }
            let i = (len - 20_000) / 17_771;
            assert_eq!(
                conn.received,
                upload(i),
                "seed {seed}: upload {i} arrived whole"
            );
            for piece in response(i, &file).0 {
                server.send(conn.id, piece).expect("queued");
            }
            server.close(conn.id).expect("close");
            conn.answered = true;
        }
        let mut room = scenario.room;
        server.poll(now * 1_000_000, &mut |segment: &Outgoing<'_>| {
            if room == 0 {
                return false;
            }
            room -= 1;
            segments += 1;
            for packet in on_the_wire(segment, seed) {
                let mut frame = sim::ethernet_header(2).to_vec();
                frame.extend_from_slice(&packet);
                wire.to_client.push(now, frame, &mut wire.rng, wire.faults);
            }
            true
        });

        // The clients: upload, read the answer, close after the server did.
        for client in state.iter_mut() {
            let socket = sockets.get_mut::<tcp::Socket>(client.handle);
            if socket.can_send() && client.uploaded < client.upload.len() {
                client.uploaded += socket
                    .send_slice(&client.upload[client.uploaded..])
                    .expect("send");
            }
            let mut budget = scenario.read_chunk;
            while socket.can_recv() && budget > 0 && now.is_multiple_of(scenario.read_every_ms) {
                let mut buf = [0u8; 8192];
                let want = budget.min(buf.len());
                let n = socket.recv_slice(&mut buf[..want]).expect("recv");
                client.received.extend_from_slice(&buf[..n]);
                budget -= n;
            }
            if let Some(limit) = scenario.abort_after
                && !client.closed
                && client.received.len() >= limit
            {
                assert!(client.expected.starts_with(&client.received), "seed {seed}");
                socket.abort();
                client.closed = true;
            }
            if !client.closed && !socket.may_recv() && socket.state() != tcp::State::SynSent {
                assert_eq!(
                    client.received.len(),
                    client.expected.len(),
                    "seed {seed}: response length"
                );
                assert!(
                    client.received == client.expected,
                    "seed {seed}: response bytes"
                );
                socket.close();
                client.closed = true;
            }
        }
        poll_clients(&mut iface, &mut device, &mut sockets, now, &mut wire);

        let done = state.iter().all(|c| {
            c.closed
                && matches!(
                    sockets.get::<tcp::Socket>(c.handle).state(),
                    tcp::State::Closed | tcp::State::TimeWait
                )
        });
        if done && server.connections() == 0 && server.half_open() == 0 {
            break;
        }
        // Jump to the next thing that can happen (a client with unread data reads at
        // its next turn).
        let flooding = (now < FLOOD_MS && scenario.flood_per_ms > 0).then_some(now + 1);
        let reader = state
            .iter()
            .any(|c| sockets.get::<tcp::Socket>(c.handle).can_recv())
            .then(|| now + scenario.read_every_ms - now % scenario.read_every_ms);
        let next = [
            flooding,
            reader,
            wire.to_server.next_arrival(),
            wire.to_client.next_arrival(),
            server.next_deadline().map(|ns| ns.div_ceil(1_000_000)),
            iface
                .poll_at(millis(now), &sockets)
                .map(|at| at.total_millis() as u64),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now + 1);
        now = next.max(now + 1);
    }
    assert_eq!(server.stats().bad_checksum, 0);
    assert!(matches!(
        server.recv(server_conns[0].id, &mut [0; 4]),
        Err(Error::BadId)
    ));
    (segments, server.stats().clone())
}

#[test]
fn transfers_over_a_clean_wire_arrive_whole_and_close() {
    let (segments, stats) = run(brisk(1, 3, CLEAN));
    assert_eq!(
        stats.segments_retransmitted, 0,
        "nothing lost, nothing sent twice"
    );
    assert!(segments > 3 * 200, "{segments} segments");
}

#[test]
fn transfers_survive_loss_duplication_and_reordering_for_many_seeds() {
    let mut retransmitted = 0;
    for seed in 0..24 {
        retransmitted += run(brisk(seed, 3, FAULTY)).1.segments_retransmitted;
    }
    assert!(retransmitted > 0, "the faults made the server retransmit");
}

#[test]
fn heavy_loss_still_delivers_every_byte() {
    for seed in 100..104 {
        run(brisk(seed, 2, HEAVY));
    }
}

#[test]
fn a_slow_reader_with_a_small_window_gets_every_byte() {
    let scenario = Scenario {
        client_buffer: 4096,
        read_chunk: 1024,
        read_every_ms: 20,
        ..brisk(
            7,
            2,
            Faults {
                loss: 20,
                duplicate: 10,
                reorder: 20,
            },
        )
    };
    let (_, stats) = run(scenario);
    assert!(
        stats.segments_out > 2 * 300_000 / 1460,
        "windows of 4 KiB at most"
    );
}

#[test]
fn a_client_that_aborts_mid_answer_frees_the_server_connection() {
    for seed in 0..4 {
        let scenario = Scenario {
            abort_after: Some(50_000),
            ..brisk(
                seed,
                3,
                Faults {
                    loss: 10,
                    duplicate: 0,
                    reorder: 10,
                },
            )
        };
        let (_, stats) = run(scenario);
        assert!(
            stats.rst_received >= 1,
            "seed {seed}: the aborts reached the server"
        );
    }
}

#[test]
fn transfers_complete_through_a_flood_of_100000_spoofed_syns() {
    let scenario = Scenario {
        flood_per_ms: 50,
        ..brisk(11, 3, LIGHT)
    };
    let (_, stats) = run(scenario);
    assert!(stats.syns >= 100_000, "{} SYNs", stats.syns);
    assert!(stats.half_open_evicted > 90_000, "the table stayed bounded");
}

#[test]
fn super_segments_cut_as_a_nic_does_arrive_whole_over_a_clean_wire() {
    let (segments, stats) = run(offloaded(1, 3, CLEAN));
    assert_eq!(stats.segments_retransmitted, 0);
    assert!(stats.segments_offloaded > 0, "{stats:?}");
    // The same bytes as without offload in far fewer segments handed out.
    let (plain, _) = run(brisk(1, 3, CLEAN));
    assert!(segments * 4 < plain, "{segments} against {plain}");
}

#[test]
fn super_segments_survive_loss_of_their_pieces_for_many_seeds() {
    let (mut offloaded_segments, mut retransmitted) = (0, 0);
    for seed in 0..16 {
        let stats = run(offloaded(seed, 3, FAULTY)).1;
        offloaded_segments += stats.segments_offloaded;
        retransmitted += stats.segments_retransmitted;
    }
    assert!(offloaded_segments > 0 && retransmitted > 0);
    for seed in 100..103 {
        run(offloaded(seed, 2, HEAVY));
    }
}

#[test]
fn a_small_transmit_ring_shared_in_turn_loses_nothing() {
    for seed in 0..4 {
        for segmentation in [None, Some(MAX_SEGMENTATION)] {
            let scenario = Scenario {
                room: 3,
                segmentation,
                ..brisk(seed, 6, LIGHT)
            };
            run(scenario);
        }
    }
}
