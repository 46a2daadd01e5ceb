//! The stack's UDP sockets. smoltcp keeps a datagram it cannot send (its next hop does
//! not answer ARP, or there is no route) at the head of its socket's queue for good,
//! trying again each second (smoltcp issues 594 and 1101), and each try takes the
//! interface's one ARP request a second before any other socket's: one forged datagram
//! from a silent address of the link, answered by a server, stopped the server's socket
//! and every later neighbour resolution of the stack. So a socket's datagrams wait in a
//! queue of its own and smoltcp's socket is lent one at a time; one that waits for its
//! neighbour [`UNRESOLVED_NS`] is dropped and counted, with those queued before then to
//! the same next hop (they would wait for it as long), and smoltcp's socket is replaced
//! by a fresh one on the same port, the datagrams it had received kept for the app (as
//! many as its receive buffer holds beside those kept before, the rest dropped and
//! counted).

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::udp;
use smoltcp::storage::{PacketBuffer, PacketMetadata};
use smoltcp::wire::{IpAddress, IpEndpoint};

use crate::stack::{Endpoint, NetError, UdpOptions};

/// How long a datagram smoltcp holds may wait for its next hop's MAC address, from the
/// first poll that found it unsent with room in the NIC, before it is dropped: three ARP
/// requests a second apart, as Linux asks before it gives a neighbour up.
pub(crate) const UNRESOLVED_NS: u64 = 3_000_000_000;

/// What a socket of ours has lent smoltcp's sending socket (a UDP datagram, a ping's
/// request) and how long that has waited for its next hop, shared by `udp.rs` and
/// `ping.rs`.
pub(crate) struct Lending<D> {
    /// What smoltcp's socket holds, if anything.
    lent: Option<D>,
    /// When a poll first found it unsent with room in the NIC (waiting for its next
    /// hop's MAC address, or with no route).
    waiting_since: Option<u64>,
}

impl<D: Copy> Lending<D> {
    /// Nothing lent.
    pub(crate) fn new() -> Self {
        Self {
            lent: None,
            waiting_since: None,
        }
    }

    /// Whether smoltcp's socket holds something of ours.
    pub(crate) fn is_lent(&self) -> bool {
        self.lent.is_some()
    }

    /// Notes `lent` handed to smoltcp's socket, which held nothing.
    pub(crate) fn lend(&mut self, lent: D) {
        self.lent = Some(lent);
    }

    /// Ends the lending: smoltcp's socket sent what it held (or dropped it with no
    /// address to send from), or it was given up.
    pub(crate) fn end(&mut self) {
        self.lent = None;
        self.waiting_since = None;
    }

    /// Before lending: ends the lending if smoltcp's socket has room again
    /// (`can_send`), what it held gone.
    pub(crate) fn note_sent(&mut self, can_send: bool) {
        if self.lent.is_some() && can_send {
            self.end();
        }
    }

    /// After the sending rounds at `now_ns`: what smoltcp's socket still holds (it
    /// cannot `can_send`) though the NIC had room (`nic_had_room`) waits for its next
    /// hop, from this poll on unless it already did.
    pub(crate) fn note_waiting(&mut self, can_send: bool, now_ns: u64, nic_had_room: bool) {
        if can_send {
            self.end();
        } else if nic_had_room {
            self.waiting_since.get_or_insert(now_ns);
        }
    }

    /// What smoltcp's socket holds if, at `now_ns`, it has waited for its next hop
    /// [`UNRESOLVED_NS`], to be given up.
    pub(crate) fn overdue(&self, now_ns: u64) -> Option<D> {
        let (Some(lent), Some(since)) = (self.lent, self.waiting_since) else {
            return None;
        };
        (now_ns.saturating_sub(since) >= UNRESOLVED_NS).then_some(lent)
    }
}

/// Puts `slot` in the first free place of `slots` (one a closed socket or an unlistened
/// listener left), else after the last; its index. Shared by the UDP and ping sockets
/// and the stack's listeners.
pub(crate) fn place_in_first_free<T>(slots: &mut Vec<Option<T>>, slot: T) -> usize {
    match slots.iter().position(Option::is_none) {
        Some(free) => {
            slots[free] = Some(slot);
            free
        }
        None => {
            slots.push(Some(slot));
            slots.len() - 1
        }
    }
}

/// A datagram queued to be sent: where to, and when it was queued.
#[derive(Clone, Copy, Debug)]
struct Queued {
    /// The destination.
    to: IpEndpoint,
    /// When [`UdpSockets::send`] queued it.
    queued_ns: u64,
}

/// One UDP socket.
struct Slot {
    /// smoltcp's socket: the datagrams received, and room for one to send.
    handle: SocketHandle,
    /// The port it is bound to.
    port: u16,
    /// Its buffers' sizes, to build a fresh socket with.
    options: UdpOptions,
    /// The datagrams to send after the one smoltcp holds, oldest first.
    queue: PacketBuffer<'static, Queued>,
    /// The datagram smoltcp's socket holds, if any, and how long it has waited.
    lending: Lending<Queued>,
    /// Next hops given up on and when: a datagram queued to one before then is
    /// dropped unsent. Only entries a datagram still queued could match are kept.
    given_up: Vec<(Ipv4Addr, u64)>,
    /// Datagrams received by a socket that was replaced, for the app before the new
    /// socket's: at most `options.datagrams` of `options.buffer` bytes in all.
    kept: VecDeque<(Endpoint, Vec<u8>)>,
}

/// The stack's UDP sockets, by the index a [`crate::UdpSocket`] holds.
pub(crate) struct UdpSockets {
    /// The sockets; a closed one leaves its index free.
    slots: Vec<Option<Slot>>,
    /// The largest datagram one frame carries (its payload).
    max_payload: usize,
}

/// A smoltcp socket bound to `port`, receiving into `options`' buffers, with room to
/// send one datagram of `max_payload` bytes.
fn smoltcp_socket(
    port: u16,
    options: UdpOptions,
    max_payload: usize,
) -> Result<udp::Socket<'static>, NetError> {
    let receive = udp::PacketBuffer::new(
        vec![udp::PacketMetadata::EMPTY; options.datagrams.max(1)],
        vec![0u8; options.buffer],
    );
    let send = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 1], vec![0u8; max_payload]);
    let mut socket = udp::Socket::new(receive, send);
    socket.bind(port).map_err(|_| NetError::PortZero)?;
    Ok(socket)
}

impl UdpSockets {
    /// No sockets yet, for a link whose frames carry datagrams of up to `max_payload`
    /// bytes.
    pub(crate) fn new(max_payload: usize) -> Self {
        Self {
            slots: Vec::new(),
            max_payload,
        }
    }

    /// The largest datagram one frame carries (its payload).
    pub(crate) fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Whether a socket is bound to `port`.
    pub(crate) fn is_bound(&self, port: u16) -> bool {
        self.slots.iter().flatten().any(|slot| slot.port == port)
    }

    /// Binds a socket to `port` (not checked against the others: the stack's to do) with
    /// `options`' buffers each way; its index.
    pub(crate) fn bind(
        &mut self,
        sockets: &mut SocketSet<'static>,
        port: u16,
        options: UdpOptions,
    ) -> Result<usize, NetError> {
        let socket = smoltcp_socket(port, options, self.max_payload)?;
        let slot = Slot {
            handle: sockets.add(socket),
            port,
            options,
            queue: PacketBuffer::new(
                vec![PacketMetadata::EMPTY; options.datagrams.max(1)],
                vec![0u8; options.buffer],
            ),
            lending: Lending::new(),
            given_up: Vec::new(),
            kept: VecDeque::new(),
        };
        Ok(place_in_first_free(&mut self.slots, slot))
    }

    /// The socket at `index`; a [`crate::UdpSocket`] is given back only by closing it,
    /// so its index always names a bound socket.
    fn slot(&mut self, index: usize) -> &mut Slot {
        self.slots[index]
            .as_mut()
            .expect("a UdpSocket's index names a bound socket")
    }

    /// The room for datagrams to send of the socket at `index`, in bytes.
    pub(crate) fn send_capacity(&mut self, index: usize) -> usize {
        self.slot(index).queue.payload_capacity()
    }

    /// Queues `data` to `to` on the socket at `index` at `now_ns`:
    /// [`NetError::WouldBlock`] while its queue has no room for it.
    pub(crate) fn send(
        &mut self,
        index: usize,
        data: &[u8],
        to: Endpoint,
        now_ns: u64,
    ) -> Result<(), NetError> {
        let queued = Queued {
            to: IpEndpoint::new(IpAddress::Ipv4(to.address), to.port),
            queued_ns: now_ns,
        };
        let room = self
            .slot(index)
            .queue
            .enqueue(data.len(), queued)
            .map_err(|_| NetError::WouldBlock)?;
        room.copy_from_slice(data);
        Ok(())
    }

    /// The oldest datagram the socket at `index` received, copied into `buffer` as far as
    /// it fits: its length there and its sender.
    pub(crate) fn recv(
        &mut self,
        index: usize,
        sockets: &mut SocketSet<'static>,
        buffer: &mut [u8],
    ) -> Option<(usize, Endpoint)> {
        let slot = self.slot(index);
        let mut copy = |data: &[u8], from| {
            let len = data.len().min(buffer.len());
            buffer[..len].copy_from_slice(&data[..len]);
            (len, from)
        };
        if let Some((from, data)) = slot.kept.pop_front() {
            return Some(copy(&data, from));
        }
        let socket = sockets.get_mut::<udp::Socket>(slot.handle);
        let (data, meta) = socket.recv().ok()?;
        Some(copy(data, Endpoint::from_smoltcp(meta.endpoint)))
    }

    /// Closes the socket at `index`, dropping what it holds; its port is free again.
    pub(crate) fn close(&mut self, index: usize, sockets: &mut SocketSet<'static>) {
        if let Some(slot) = self.slots[index].take() {
            sockets.remove(slot.handle);
        }
    }

    /// Lends each socket's smoltcp socket its next datagram if it holds none; drops
    /// (and counts in `dropped`) those queued to a next hop given up on since, as `hop`
    /// names each destination's.
    pub(crate) fn lend(
        &mut self,
        sockets: &mut SocketSet<'static>,
        hop: impl Fn(Ipv4Addr) -> Ipv4Addr,
        dropped: &mut u64,
    ) {
        for slot in self.slots.iter_mut().flatten() {
            let socket = sockets.get_mut::<udp::Socket>(slot.handle);
            slot.lending.note_sent(socket.can_send());
            if slot.lending.is_lent() {
                continue;
            }
            while let Ok((queued, data)) = slot.queue.dequeue() {
                // Only next hops given up on after this datagram was queued can match it
                // or any queued after it.
                slot.given_up.retain(|&(_, at)| at > queued.queued_ns);
                let IpAddress::Ipv4(address) = queued.to.addr;
                let next_hop = hop(address);
                if slot
                    .given_up
                    .iter()
                    .any(|&(given_up, _)| given_up == next_hop)
                {
                    *dropped += 1;
                    continue;
                }
                // Cannot fail: smoltcp's socket holds nothing and has room for a
                // datagram one frame carries, and the stack refused port 0 and
                // unspecified destinations before queuing.
                let _ = socket.send_slice(data, queued.to);
                slot.lending.lend(queued);
                break;
            }
            if slot.queue.is_empty() {
                slot.given_up.clear();
            }
        }
    }

    /// After the sending rounds at `now_ns`: a datagram smoltcp still holds though the
    /// NIC had room (`nic_had_room`) waits for its next hop, from this poll on unless it
    /// already did.
    pub(crate) fn note_waiting(
        &mut self,
        sockets: &SocketSet<'static>,
        now_ns: u64,
        nic_had_room: bool,
    ) {
        for slot in self.slots.iter_mut().flatten() {
            let can_send = sockets.get::<udp::Socket>(slot.handle).can_send();
            slot.lending.note_waiting(can_send, now_ns, nic_had_room);
        }
    }

    /// Gives up, at `now_ns`, on each datagram that waited for its next hop
    /// [`UNRESOLVED_NS`] (counted in `dropped`): its next hop (`hop` names each
    /// destination's) is given up on for the datagrams queued before now, and their
    /// smoltcp socket, which would try it again each second, is replaced by a fresh one,
    /// the datagrams it received kept for the app (as many as its receive buffer holds
    /// beside those kept from an earlier replacement; the rest counted in
    /// `unread_dropped`).
    pub(crate) fn give_up_unresolved(
        &mut self,
        sockets: &mut SocketSet<'static>,
        now_ns: u64,
        hop: impl Fn(Ipv4Addr) -> Ipv4Addr,
        dropped: &mut u64,
        unread_dropped: &mut u64,
    ) {
        for slot in self.slots.iter_mut().flatten() {
            let Some(lent) = slot.lending.overdue(now_ns) else {
                continue;
            };
            // Binding fails only for port 0, which no socket is bound to.
            let Ok(fresh) = smoltcp_socket(slot.port, slot.options, self.max_payload) else {
                continue;
            };
            let IpAddress::Ipv4(address) = lent.to.addr;
            slot.given_up.push((hop(address), now_ns));
            slot.lending.end();
            *dropped += 1;
            let old = sockets.get_mut::<udp::Socket>(slot.handle);
            let mut kept_bytes: usize = slot.kept.iter().map(|(_, data)| data.len()).sum();
            while let Ok((data, meta)) = old.recv() {
                let fits = slot.kept.len() < slot.options.datagrams.max(1)
                    && kept_bytes + data.len() <= slot.options.buffer;
                if fits {
                    kept_bytes += data.len();
                    let from = Endpoint::from_smoltcp(meta.endpoint);
                    slot.kept.push_back((from, data.to_vec()));
                } else {
                    *unread_dropped += 1;
                }
            }
            sockets.remove(slot.handle);
            slot.handle = sockets.add(fresh);
        }
    }
}
