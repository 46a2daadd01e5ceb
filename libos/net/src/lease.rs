//! The DHCP client's rest after a lease it refused, the DHCPDECLINE of a leased address
//! given up ([`decline`]), and keeping a DHCP lease on the stacks of one interface's
//! queue pairs ([`crate::attach_cores`]): pair 0's stack runs the DHCP client (the
//! renewer), the others hand it the server's answers that land on their pairs and take
//! every lease it learns or loses from it.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::net::Ipv4Addr;
use core::sync::atomic::{AtomicU64, Ordering};

use rexo_api::device::ETHERNET_HEADER;
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::{Socket, dhcpv4};
use smoltcp::wire::{
    DHCP_CLIENT_PORT, DHCP_SERVER_PORT, DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress,
    EthernetFrame, EthernetProtocol, EthernetRepr, IpProtocol, Ipv4Cidr, Ipv4Packet, Ipv4Repr,
    UDP_HEADER_LEN, UdpPacket, UdpRepr,
};

use crate::board::{Board, Seat};

/// How long the DHCP client rests after its first refused lease before it discovers
/// again (RFC 2131 3.1 step 5: a client that declines an address waits at least ten
/// seconds before it starts again). Each refusal in a row doubles the rest, up to
/// [`MAX_REFUSED_LEASE_REST_NS`]; a lease taken brings it back to this.
pub(crate) const REFUSED_LEASE_REST_NS: u64 = 10_000_000_000;
/// The longest rest after refused leases: 320 s, five doublings.
pub(crate) const MAX_REFUSED_LEASE_REST_NS: u64 = 32 * REFUSED_LEASE_REST_NS;

/// A stack's DHCP client: smoltcp's, kept out of the stack's sockets, sending nothing,
/// while it rests after a refused lease. smoltcp's client, reset, discovers again at
/// once, and a server that offers the same lease again has it refused again, every
/// other poll.
pub(crate) struct DhcpClient {
    /// Where smoltcp's client is.
    socket: ClientSocket,
    /// How long the client rests after its next refused lease.
    next_rest_ns: u64,
    /// The server that leased the address the client holds (its identifier, option
    /// 54), to which a DHCPDECLINE of it goes; `None` without a lease.
    server: Option<Ipv4Addr>,
}

/// Where a DHCP client's smoltcp socket is.
enum ClientSocket {
    /// In the socket set of the stack that runs it.
    Running(SocketHandle),
    /// Out of every socket set, sending nothing, until the clock reaches `until_ns`:
    /// reset after a refused lease and resting, or (`until_ns` 0) taken from the stack
    /// that leased the address for another ([`crate::attach_cores`]).
    Out {
        /// The client (boxed: a socket is large beside a handle).
        socket: Box<dhcpv4::Socket<'static>>,
        /// When it may run again.
        until_ns: u64,
    },
}

impl DhcpClient {
    /// A client that runs in `sockets`, discovering.
    pub(crate) fn new(sockets: &mut SocketSet<'static>) -> Self {
        let mut socket = dhcpv4::Socket::new();
        // A new client reports it has no lease at its first poll; any later such report
        // is of a lease gone.
        let _ = socket.poll();
        Self {
            socket: ClientSocket::Running(sockets.add(socket)),
            next_rest_ns: REFUSED_LEASE_REST_NS,
            server: None,
        }
    }

    /// The client's handle in its stack's sockets while it runs there.
    pub(crate) fn handle(&self) -> Option<SocketHandle> {
        match self.socket {
            ClientSocket::Running(handle) => Some(handle),
            ClientSocket::Out { .. } => None,
        }
    }

    /// The client, running in `sockets` if it was out of them and its rest is over at
    /// `now_ns` (or it had none).
    pub(crate) fn woken(self, sockets: &mut SocketSet<'static>, now_ns: u64) -> Self {
        match self.socket {
            ClientSocket::Out { socket, until_ns } if until_ns <= now_ns => Self {
                socket: ClientSocket::Running(sockets.add(*socket)),
                ..self
            },
            _ => self,
        }
    }

    /// The client taken out of `sockets`, with no rest, to run in another stack's.
    pub(crate) fn taken_out(self, sockets: &mut SocketSet<'static>) -> Self {
        match self.socket {
            ClientSocket::Running(handle) => Self {
                socket: ClientSocket::Out {
                    socket: Box::new(removed(sockets, handle)),
                    until_ns: 0,
                },
                ..self
            },
            ClientSocket::Out { .. } => self,
        }
    }

    /// The client after a lease refused at `now_ns`: reset, its report of the lease
    /// gone taken (the stack drops the lease itself), out of `sockets` and resting for
    /// its rest, which the next refusal doubles (up to [`MAX_REFUSED_LEASE_REST_NS`]).
    pub(crate) fn rested(self, sockets: &mut SocketSet<'static>, now_ns: u64) -> Self {
        let mut socket = match self.socket {
            ClientSocket::Running(handle) => Box::new(removed(sockets, handle)),
            ClientSocket::Out { socket, .. } => socket,
        };
        socket.reset();
        // A reset client reports its lease gone at its next poll; the stack drops the
        // lease as it refuses it.
        let _ = socket.poll();
        Self {
            socket: ClientSocket::Out {
                socket,
                until_ns: now_ns.saturating_add(self.next_rest_ns),
            },
            next_rest_ns: (self.next_rest_ns * 2).min(MAX_REFUSED_LEASE_REST_NS),
            server: None,
        }
    }

    /// A lease from `server` (its identifier) was taken: the next refusal rests the
    /// client [`REFUSED_LEASE_REST_NS`].
    pub(crate) fn lease_taken(&mut self, server: Ipv4Addr) {
        self.next_rest_ns = REFUSED_LEASE_REST_NS;
        self.server = Some(server);
    }

    /// The server that leased the address the client holds, if it holds one.
    pub(crate) fn server(&self) -> Option<Ipv4Addr> {
        self.server
    }
}

/// The DHCPDECLINE (RFC 2131 4.4.4 and table 5) the client of MAC address `mac` sends
/// `server` (its identifier) for `address`, which the server leased it and another host
/// turned out to use, with transaction ID `transaction_id` (the client's choice): a
/// BOOTREQUEST whose chaddr is `mac` and whose ciaddr, yiaddr, siaddr and giaddr are
/// zero, with options 53 (DHCPDECLINE), 61 (the client identifier smoltcp's client sends
/// in every message: hardware type 1 and `mac`), 54 (`server`) and 50 (`address`) and
/// none other, in UDP from port 68 to 67, from 0.0.0.0 to 255.255.255.255 on the
/// Ethernet broadcast address. The IPv4 and UDP checksums are computed, so the frame is
/// sent without the NIC's checksum offload.
pub(crate) fn decline(
    mac: [u8; 6],
    address: Ipv4Addr,
    server: Ipv4Addr,
    transaction_id: u32,
) -> Vec<u8> {
    let message = DhcpRepr {
        message_type: DhcpMessageType::Decline,
        transaction_id,
        secs: 0,
        client_hardware_address: EthernetAddress(mac),
        client_ip: Ipv4Addr::UNSPECIFIED,
        your_ip: Ipv4Addr::UNSPECIFIED,
        server_ip: Ipv4Addr::UNSPECIFIED,
        router: None,
        subnet_mask: None,
        relay_agent_ip: Ipv4Addr::UNSPECIFIED,
        broadcast: false,
        requested_ip: Some(address),
        client_identifier: Some(EthernetAddress(mac)),
        server_identifier: Some(server),
        parameter_request_list: None,
        dns_servers: None,
        max_size: None,
        lease_duration: None,
        renew_duration: None,
        rebind_duration: None,
        additional_options: &[],
    };
    let message_len = message.buffer_len();
    let ip = Ipv4Repr {
        src_addr: Ipv4Addr::UNSPECIFIED,
        dst_addr: Ipv4Addr::BROADCAST,
        next_header: IpProtocol::Udp,
        payload_len: UDP_HEADER_LEN + message_len,
        hop_limit: 64,
    };
    let mut frame = alloc::vec![0; ETHERNET_HEADER + ip.buffer_len() + ip.payload_len];
    let ethernet = EthernetRepr {
        src_addr: EthernetAddress(mac),
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Ipv4,
    };
    ethernet.emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
    let checksums = ChecksumCapabilities::default();
    let packet = &mut frame[ETHERNET_HEADER..];
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut *packet), &checksums);
    let ports = UdpRepr {
        src_port: DHCP_CLIENT_PORT,
        dst_port: DHCP_SERVER_PORT,
    };
    ports.emit(
        &mut UdpPacket::new_unchecked(&mut packet[ip.buffer_len()..]),
        &ip.src_addr.into(),
        &ip.dst_addr.into(),
        message_len,
        |payload| {
            message
                .emit(&mut DhcpPacket::new_unchecked(payload))
                .expect("the payload is the message's buffer_len")
        },
        &checksums,
    );
    frame
}

/// The DHCP client `handle` names, removed from `sockets`.
fn removed(sockets: &mut SocketSet<'static>, handle: SocketHandle) -> dhcpv4::Socket<'static> {
    match sockets.remove(handle) {
        Socket::Dhcpv4(socket) => socket,
        _ => unreachable!("a DHCP client's handle names a DHCP socket"),
    }
}

/// The queue pair whose stack runs the DHCP client.
pub(crate) const RENEWER_PAIR: usize = 0;
/// Answers from DHCP servers the board keeps for the renewer: a renewer that polls less
/// often than this many arrive misses the older ones, and its client asks again.
const ANSWERS_KEPT: usize = 8;

/// A lease the renewer's DHCP client holds: the address with its prefix, the router and
/// the DNS servers.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DhcpLease {
    /// The address and prefix.
    pub(crate) cidr: Ipv4Cidr,
    /// The default router, if the lease names one.
    pub(crate) router: Option<Ipv4Addr>,
    /// The DNS servers, in the lease's order.
    pub(crate) dns_servers: Vec<Ipv4Addr>,
}

/// The DHCP servers' answers the other stacks post for the renewer.
type AnswerBoard = Board<Vec<u8>, ANSWERS_KEPT>;

/// What the stacks of one interface share to keep its lease. Off the fast path: a stack
/// looks at the lease changes' count and the answers' (one atomic load each) on each
/// poll and takes a lock only when something was posted.
#[derive(Default)]
pub(crate) struct LeaseBoard {
    /// How many times the renewer posted a lease change.
    changes: AtomicU64,
    /// The lease the renewer holds now (`None`: none, lost or not yet renewed).
    lease: spin::Mutex<Option<DhcpLease>>,
    /// The last [`ANSWERS_KEPT`] server answers, whole frames, for the renewer.
    answers: Arc<AnswerBoard>,
}

/// A stack's place on its interface's [`LeaseBoard`].
pub(crate) struct LeaseShare {
    /// The board.
    board: Arc<LeaseBoard>,
    /// The stack's place on the board's answers.
    answers: Seat<Vec<u8>, ANSWERS_KEPT>,
    /// Whether this stack runs the DHCP client.
    renewer: bool,
    /// The number of the last lease change taken (a stack other than the renewer).
    seen: u64,
}

impl LeaseShare {
    /// The place on `board` of the stack of queue pair `pair`: the renewer's if it runs
    /// the DHCP client.
    pub(crate) fn new(board: Arc<LeaseBoard>, pair: usize, renewer: bool) -> Self {
        Self {
            answers: Seat::new(board.answers.clone(), pair),
            board,
            renewer,
            seen: 0,
        }
    }

    /// Keeps `frame` for the renewer if this stack is not the renewer and the frame is
    /// a DHCP server's answer (UDP from port 67 to port 68); says whether it was kept
    /// (the stack then leaves it alone: it has no DHCP client to give it to).
    pub(crate) fn post_answer(&mut self, frame: &[u8]) -> bool {
        if self.renewer || !is_dhcp_answer(frame) {
            return false;
        }
        self.answers.post(frame.to_vec());
        true
    }

    /// Hands the renewer every answer the other stacks posted since the last call.
    pub(crate) fn take_answers(&mut self, mut deliver: impl FnMut(&[u8])) {
        if self.renewer {
            self.answers.take(|frame| deliver(&frame));
        }
    }

    /// The renewer's news for the others: `lease` is what it holds now.
    pub(crate) fn post_lease(&self, lease: Option<DhcpLease>) {
        let mut held = self.board.lease.lock();
        *held = lease;
        let number = self.board.changes.load(Ordering::Relaxed) + 1;
        self.board.changes.store(number, Ordering::Release);
    }

    /// For a stack other than the renewer, the lease the renewer holds if it changed
    /// since the last call (`Some(None)`: the lease is gone).
    pub(crate) fn take_lease(&mut self) -> Option<Option<DhcpLease>> {
        if self.renewer || self.board.changes.load(Ordering::Acquire) == self.seen {
            return None;
        }
        let held = self.board.lease.lock();
        self.seen = self.board.changes.load(Ordering::Relaxed);
        Some(held.clone())
    }
}

/// Whether `frame` is a DHCP server's answer to a client: IPv4, UDP from port 67 to
/// port 68.
fn is_dhcp_answer(frame: &[u8]) -> bool {
    crate::ingress::dhcp_answer_datagram(frame).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 UDP frame from `source` to `destination` port.
    fn udp(source: u16, destination: u16) -> Vec<u8> {
        let mut frame = alloc::vec![0u8; 14 + 20 + 8 + 4];
        frame[12..14].copy_from_slice(&crate::ETHERTYPE_IPV4);
        frame[14] = 0x45;
        frame[14 + 9] = 17;
        frame[34..36].copy_from_slice(&source.to_be_bytes());
        frame[36..38].copy_from_slice(&destination.to_be_bytes());
        frame
    }

    #[test]
    fn server_answers_reach_the_renewer_only_and_the_board_keeps_the_last_few() {
        let board = Arc::new(LeaseBoard::default());
        let (mut renewer, mut other) = (
            LeaseShare::new(board.clone(), 0, true),
            LeaseShare::new(board, 1, false),
        );
        // The renewer keeps its own; another port or a client's request is no answer.
        assert!(!renewer.post_answer(&udp(67, 68)));
        assert!(!other.post_answer(&udp(68, 67)));
        assert!(!other.post_answer(&udp(67, 69)));
        let mut tcp = udp(67, 68);
        tcp[14 + 9] = 6;
        assert!(!other.post_answer(&tcp));
        assert!(other.post_answer(&udp(67, 68)));
        let mut taken = Vec::new();
        renewer.take_answers(|frame| taken.push(frame.to_vec()));
        assert_eq!(taken, [udp(67, 68)]);
        renewer.take_answers(|frame| taken.push(frame.to_vec()));
        assert_eq!(taken.len(), 1);
        for _ in 0..20 {
            other.post_answer(&udp(67, 68));
        }
        taken.clear();
        renewer.take_answers(|frame| taken.push(frame.to_vec()));
        assert_eq!(taken.len(), ANSWERS_KEPT);
    }

    #[test]
    fn the_others_take_each_lease_change_once() {
        let board = Arc::new(LeaseBoard::default());
        let (renewer, mut other) = (
            LeaseShare::new(board.clone(), 0, true),
            LeaseShare::new(board, 1, false),
        );
        assert_eq!(other.take_lease(), None);
        let lease = DhcpLease {
            cidr: Ipv4Cidr::new(Ipv4Addr::new(10, 0, 0, 5), 24),
            router: None,
            dns_servers: Vec::new(),
        };
        renewer.post_lease(Some(lease.clone()));
        assert_eq!(other.take_lease(), Some(Some(lease)));
        assert_eq!(other.take_lease(), None);
        renewer.post_lease(None);
        assert_eq!(other.take_lease(), Some(None));
    }
}
