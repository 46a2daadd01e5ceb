//! The stack's ping (ICMP echo) sockets. smoltcp keeps an echo request it cannot send
//! (its next hop does not answer ARP, or there is no route) at the head of its socket's
//! queue for good, trying again each second, each try taking the stack's one ARP request
//! a second: a ping to a silent address of the link stopped its socket, every later
//! request of it waiting behind, and held up the stack's other neighbour resolutions. So
//! a ping socket is two of smoltcp's: one bound to its identifier receives, and one bound
//! to nothing (it takes no packet) sends, lent one request at a time from a queue of the
//! socket's own, as UDP's datagrams are (`udp.rs`, whose [`Lending`] both keep). A
//! request that waits for its next hop [`crate::udp::UNRESOLVED_NS`] is dropped with
//! those queued to the same next hop, the sending socket is replaced by a fresh one (the
//! receiving one, with the replies the app has not read, stays), and the app's next
//! [`crate::Stack::ping_recv`] on the socket is [`NetError::NoArpAnswer`] naming that
//! next hop and how many requests were dropped.

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::icmp;
use smoltcp::wire::IpAddress;

use crate::stack::{NetError, PING_MAX_DATA};
use crate::udp::{Lending, place_in_first_free};

/// Echo requests a ping socket holds to send (the one lent to smoltcp included), and
/// packets it holds received.
const PING_PACKETS: usize = 8;

/// One ping socket.
struct Slot {
    /// smoltcp's socket bound to the identifier: the packets received.
    receive: SocketHandle,
    /// smoltcp's socket bound to nothing: room for one request to send.
    send: SocketHandle,
    /// The requests (ICMP messages) to send after the one smoltcp holds, oldest first,
    /// with their destinations.
    queue: VecDeque<(Ipv4Addr, Vec<u8>)>,
    /// The destination of the request smoltcp's sending socket holds, if any, and how
    /// long it has waited.
    lending: Lending<Ipv4Addr>,
    /// The next hop last given up on and the requests dropped since the app was last
    /// told (to that next hop and any given up on before it), until the app is told.
    given_up: Option<(Ipv4Addr, usize)>,
}

/// The stack's ping sockets, by the index a [`crate::PingSocket`] holds.
pub(crate) struct PingSockets {
    /// The sockets; a closed one leaves its index free.
    slots: Vec<Option<Slot>>,
}

/// A smoltcp ICMP socket receiving the echo messages of `ident` ([`PING_PACKETS`] of
/// them), sending nothing.
fn receiving_socket(ident: u16) -> icmp::Socket<'static> {
    let receive = icmp::PacketBuffer::new(
        vec![icmp::PacketMetadata::EMPTY; PING_PACKETS],
        vec![0u8; PING_PACKETS * (PING_MAX_DATA + 8)],
    );
    let send = icmp::PacketBuffer::new(Vec::new(), Vec::new());
    let mut socket = icmp::Socket::new(receive, send);
    // Binding fails only for an unspecified endpoint; an identifier is specified.
    let _ = socket.bind(icmp::Endpoint::Ident(ident));
    socket
}

/// A smoltcp ICMP socket bound to nothing, so taking no packet, with room to send one
/// request of [`PING_MAX_DATA`] bytes of data.
fn sending_socket() -> icmp::Socket<'static> {
    let receive = icmp::PacketBuffer::new(Vec::new(), Vec::new());
    let send = icmp::PacketBuffer::new(
        vec![icmp::PacketMetadata::EMPTY; 1],
        vec![0u8; PING_MAX_DATA + 8],
    );
    icmp::Socket::new(receive, send)
}

impl PingSockets {
    /// No sockets yet.
    pub(crate) fn new() -> Self {
        Self { slots: Vec::new() }
    }

    /// How many sockets are open (each holding two of smoltcp's).
    pub(crate) fn open_count(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// Opens a socket whose requests carry `ident`; its index.
    pub(crate) fn open(&mut self, sockets: &mut SocketSet<'static>, ident: u16) -> usize {
        let slot = Slot {
            receive: sockets.add(receiving_socket(ident)),
            send: sockets.add(sending_socket()),
            queue: VecDeque::new(),
            lending: Lending::new(),
            given_up: None,
        };
        place_in_first_free(&mut self.slots, slot)
    }

    /// The socket at `index`; a [`crate::PingSocket`] is given back only by closing it,
    /// so its index always names an open socket.
    fn slot(&mut self, index: usize) -> &mut Slot {
        self.slots[index]
            .as_mut()
            .expect("a PingSocket's index names an open socket")
    }

    /// Queues `message`, an ICMP echo request, to `to` on the socket at `index`:
    /// [`NetError::WouldBlock`] while it holds [`PING_PACKETS`] requests to send.
    pub(crate) fn send(
        &mut self,
        index: usize,
        to: Ipv4Addr,
        message: Vec<u8>,
    ) -> Result<(), NetError> {
        let slot = self.slot(index);
        if slot.queue.len() + usize::from(slot.lending.is_lent()) >= PING_PACKETS {
            return Err(NetError::WouldBlock);
        }
        slot.queue.push_back((to, message));
        Ok(())
    }

    /// The next packet the socket at `index` received that `take` takes (answers `Some`
    /// for), those before it skipped; first [`NetError::NoArpAnswer`] if a next hop was
    /// given up on since the last call.
    pub(crate) fn recv<T>(
        &mut self,
        index: usize,
        sockets: &mut SocketSet<'static>,
        mut take: impl FnMut(&[u8], Ipv4Addr) -> Option<T>,
    ) -> Result<Option<T>, NetError> {
        let slot = self.slot(index);
        if let Some((next_hop, dropped)) = slot.given_up.take() {
            return Err(NetError::NoArpAnswer { next_hop, dropped });
        }
        let socket = sockets.get_mut::<icmp::Socket>(slot.receive);
        while let Ok((packet, IpAddress::Ipv4(from))) = socket.recv() {
            if let Some(taken) = take(packet, from) {
                return Ok(Some(taken));
            }
        }
        Ok(None)
    }

    /// Closes the socket at `index`, dropping what it holds.
    pub(crate) fn close(&mut self, index: usize, sockets: &mut SocketSet<'static>) {
        if let Some(slot) = self.slots[index].take() {
            sockets.remove(slot.receive);
            sockets.remove(slot.send);
        }
    }

    /// Lends each socket's sending socket its next request if it holds none.
    pub(crate) fn lend(&mut self, sockets: &mut SocketSet<'static>) {
        for slot in self.slots.iter_mut().flatten() {
            let socket = sockets.get_mut::<icmp::Socket>(slot.send);
            slot.lending.note_sent(socket.can_send());
            if slot.lending.is_lent() {
                continue;
            }
            if let Some((to, message)) = slot.queue.pop_front() {
                // Cannot fail: smoltcp's socket holds nothing and has room for the
                // largest request, and the stack refused unspecified destinations.
                let _ = socket.send_slice(&message, IpAddress::Ipv4(to));
                slot.lending.lend(to);
            }
        }
    }

    /// After the sending rounds at `now_ns`: a request smoltcp still holds though the NIC
    /// had room (`nic_had_room`) waits for its next hop, from this poll on unless it
    /// already did.
    pub(crate) fn note_waiting(
        &mut self,
        sockets: &SocketSet<'static>,
        now_ns: u64,
        nic_had_room: bool,
    ) {
        for slot in self.slots.iter_mut().flatten() {
            let can_send = sockets.get::<icmp::Socket>(slot.send).can_send();
            slot.lending.note_waiting(can_send, now_ns, nic_had_room);
        }
    }

    /// Gives up, at `now_ns`, on each request that waited for its next hop (`hop` names
    /// each destination's) [`crate::udp::UNRESOLVED_NS`]: it and the requests queued to
    /// the same next hop are dropped, the socket's next receive says so, and its sending socket,
    /// which would try the request again each second, is replaced by a fresh one.
    pub(crate) fn give_up_unresolved(
        &mut self,
        sockets: &mut SocketSet<'static>,
        now_ns: u64,
        hop: impl Fn(Ipv4Addr) -> Ipv4Addr,
    ) {
        for slot in self.slots.iter_mut().flatten() {
            let Some(lent) = slot.lending.overdue(now_ns) else {
                continue;
            };
            let next_hop = hop(lent);
            let queued = slot.queue.len();
            slot.queue.retain(|&(to, _)| hop(to) != next_hop);
            let dropped = 1 + queued - slot.queue.len();
            let before = slot.given_up.map_or(0, |(_, dropped)| dropped);
            slot.given_up = Some((next_hop, before + dropped));
            slot.lending.end();
            sockets.remove(slot.send);
            slot.send = sockets.add(sending_socket());
        }
    }
}
