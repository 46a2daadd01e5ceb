//! The TCP echo server's connections on the host: [`Echoes`] on one `rexo-net` stack,
//! test clients on another, joined by a simulated wire with a simulated clock. Idle
//! clients and clients that never read hold bounded places and sockets.

use std::vec::Vec;

use rexo_net::wire::Wire;
use rexo_net::{Connection, Endpoint, Ipv4Addr, Stack, TcpOptions};

use crate::{ECHO_PORT, Echoes, IDLE_TIMEOUT_NS, MAX_CLOSING, MAX_ECHOES};

/// The server's address.
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The test clients' address.
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// Simulated time per round.
const ROUND_NS: u64 = 100_000;

/// The echo server on its stack and a peer stack for the test clients.
struct World {
    wire: Wire,
    server: Stack,
    peer: Stack,
    echoes: Echoes,
    now_ns: u64,
}

impl World {
    fn new() -> World {
        let (wire, mut server, peer) = Wire::joining(SERVER, PEER);
        let echoes = Echoes::listen(&mut server).unwrap();
        World {
            wire,
            server,
            peer,
            echoes,
            now_ns: 0,
        }
    }

    /// Polls both stacks, accepts and echoes, as the app's loop does.
    fn round(&mut self) {
        self.peer.poll(self.now_ns).unwrap();
        self.wire.carry(|_| true);
        self.server.poll(self.now_ns).unwrap();
        self.echoes.accept(&mut self.server, self.now_ns).unwrap();
        self.echoes
            .step(&mut self.server, self.now_ns, &mut |_, _| {})
            .unwrap();
        self.wire.carry(|_| true);
        self.now_ns += ROUND_NS;
    }

    /// A connection from the peer to the echo port, established.
    fn connect(&mut self, options: TcpOptions) -> Connection {
        let server = Endpoint {
            address: SERVER,
            port: ECHO_PORT,
        };
        let connection = self.peer.connect(server, options).unwrap();
        for _ in 0..100 {
            if self.peer.is_established(&connection).unwrap() {
                return connection;
            }
            self.round();
        }
        panic!("no handshake");
    }

    /// What came back on `connection` so far.
    fn echoed(&mut self, connection: &Connection) -> Vec<u8> {
        let mut buffer = vec![0; 1024];
        let read = self.peer.read(connection, &mut buffer).unwrap();
        buffer.truncate(read);
        buffer
    }
}

/// Clients that connect and send nothing (but keep-alive probes, which keep the
/// stack from timing them out) hold [`MAX_ECHOES`] places, the others waiting in the
/// backlog, and only until [`IDLE_TIMEOUT_NS`] passed: then they are ended (in order:
/// nothing of theirs waits) and the waiting ones are echoed.
#[test]
fn idle_clients_hold_the_places_only_until_the_idle_timeout() {
    let mut world = World::new();
    let keeps_alive = TcpOptions {
        keep_alive_ms: Some(10_000),
        ..TcpOptions::default()
    };
    let _idle: Vec<_> = (0..MAX_ECHOES + 2)
        .map(|_| world.connect(keeps_alive))
        .collect();
    let active = world.connect(keeps_alive);
    world.peer.write(&active, b"ping").unwrap();
    for _ in 0..100 {
        world.round();
    }
    assert_eq!(world.echoes.echoes.len(), MAX_ECHOES);
    assert_eq!(world.echoed(&active), b"", "echoed past the places");
    // A second a round, the probes going and answered, until the timeout passed.
    let started_ns = world.now_ns;
    while world.now_ns - started_ns <= IDLE_TIMEOUT_NS + 1_000_000_000 {
        world.round();
        world.now_ns += 1_000_000_000 - ROUND_NS;
    }
    for _ in 0..100 {
        world.round();
    }
    assert_eq!(world.echoes.idle_ended, MAX_ECHOES);
    assert_eq!(world.echoes.served, MAX_ECHOES);
    assert_eq!(world.echoes.reset, 0);
    assert_eq!(world.echoed(&active), b"ping");
    assert_eq!(world.echoes.echoes.len(), 3);
}

/// Clients that send, close their side and never read what comes back leave sockets
/// closed in order that wait behind their zero windows; at most [`MAX_CLOSING`] are
/// held, the next connections ending being reset.
#[test]
fn peers_that_never_read_hold_a_bounded_number_of_sockets() {
    let mut world = World::new();
    let listening = world.server.sockets_in_use();
    // Each takes 16 bytes and no more.
    let never_reads = TcpOptions {
        receive_buffer: 16,
        ..TcpOptions::default()
    };
    for round in 0..4 {
        for _ in 0..MAX_ECHOES {
            let connection = world.connect(never_reads);
            assert_eq!(world.peer.write(&connection, &[7; 2000]).unwrap(), 2000);
            world.peer.close(connection).unwrap();
        }
        for _ in 0..200 {
            world.round();
        }
        assert!(world.echoes.echoes.is_empty(), "round {round}");
    }
    assert_eq!(world.echoes.served, 4 * MAX_ECHOES);
    let sockets = world.server.sockets_in_use() - listening;
    assert!(sockets <= MAX_CLOSING, "{sockets} sockets held");
    assert!(world.echoes.reset >= 3 * MAX_ECHOES - MAX_CLOSING);
}
