//! What the stack does with a frame before the protocols see it. It drops IPv4 whose
//! addresses no host sends from or to (RFC 1122), which smoltcp would take and answer:
//! its listener accepts a SYN to any destination its interface takes, broadcast and
//! multicast included, and answers it from that destination; it also answers sources in
//! 127/8 and 240/4, and unicast IP that came on an Ethernet group address. And it
//! handles the ARP smoltcp does not: smoltcp learns only from ARP whose target is the
//! stack's address, so a neighbour announcing a new MAC address went unheard until the
//! old entry expired, and it answers no probe (sender address 0.0.0.0, RFC 5227). It
//! also reads a DHCP server's answer to the stack's client as smoltcp's client will
//! ([`DhcpAnswer`]), to drop one whose timers would make that client panic.

use core::net::Ipv4Addr;

use rexo_api::device::ETHERNET_HEADER;
use smoltcp::wire::{DhcpMessageType, DhcpPacket, DhcpRepr, Ipv4Cidr};

use crate::cores::{ARP_FRAME, ARP_OPERATION, ARP_REPLY};

/// The IP protocol number of TCP.
const TCP: u8 = 6;
/// The IP protocol number of UDP.
const UDP: u8 = 17;

/// Whether `frame`, received by a stack whose address and prefix length are `local`
/// (`None` without an address), is IPv4 to drop unseen:
///
/// - from a source no host has (RFC 1122 3.2.1.3): loopback (127/8), multicast (224/4),
///   reserved (240/4, the limited broadcast with it) or the network's broadcast address;
/// - TCP to another address than the stack's (a SYN to a broadcast or multicast address
///   MUST be discarded, 4.2.3.10), or from 0/8 ("this network", a source only while a
///   host learns its address, never of a connection);
/// - to a unicast address on an Ethernet group address (broadcast or multicast), which
///   3.3.6 says to discard: only a broadcast or multicast IP destination comes that way.
///   A DHCP server's answer (UDP from port 67 to port 68) is let through when
///   `takes_dhcp_answers` (the stack runs a DHCP client or shares a lease): a server may
///   send the offer to the address it offers on the broadcast MAC, and the client,
///   holding no address yet, takes it whatever its destination. A stack of a fixed
///   address has no socket on port 68, and smoltcp would answer such a datagram with
///   an ICMP port unreachable to whatever source it claims, which 3.2.2 forbids for a
///   datagram that came on a link-layer broadcast or multicast.
///
/// Or ARP for IPv4 whose sender address names a group ([`is_group`]): smoltcp takes the
/// network's broadcast address for a neighbour's, so an ARP request from it for the
/// stack's address took a slot of the neighbour cache and got a reply.
///
/// Anything else, and a frame too short or malformed to read, is left to the protocols.
pub(crate) fn misaddressed(
    frame: &[u8],
    local: Option<(Ipv4Addr, u8)>,
    takes_dhcp_answers: bool,
) -> bool {
    if let Some(sender) = arp_sender(frame) {
        return is_group(sender, local);
    }
    let Some((protocol, payload)) = crate::ipv4_payload(frame) else {
        return false;
    };
    let packet = &frame[ETHERNET_HEADER..];
    let source = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    let destination = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
    // Worked out once for both addresses.
    let network_broadcast = network_broadcast(local);
    let is_group = |ip: Ipv4Addr| is_group_of(ip, network_broadcast);
    let [first, ..] = source.octets();
    if first == 127 || first >= 224 || is_group(source) {
        return true;
    }
    if protocol == TCP && (first == 0 || local.map(|(address, _)| address) != Some(destination)) {
        return true;
    }
    let group_mac = frame[0] & 1 == 1;
    let dhcp_answer =
        takes_dhcp_answers && protocol == UDP && payload.get(..4) == Some(&[0, 67, 0, 68]);
    group_mac && !is_group(destination) && !dhcp_answer
}

/// Whether `ip` names a group of hosts, not one: the limited broadcast, a multicast
/// address, or the broadcast of the network of `local` (an address and prefix length).
pub(crate) fn is_group(ip: Ipv4Addr, local: Option<(Ipv4Addr, u8)>) -> bool {
    is_group_of(ip, network_broadcast(local))
}

/// The broadcast address of the network of `local` (an address and prefix length), if
/// it has one (a /31 or /32 has none).
fn network_broadcast(local: Option<(Ipv4Addr, u8)>) -> Option<Ipv4Addr> {
    local.and_then(|(address, prefix)| Ipv4Cidr::new(address, prefix).broadcast())
}

/// [`is_group`] with the network's broadcast address, `network_broadcast`, worked out.
fn is_group_of(ip: Ipv4Addr, network_broadcast: Option<Ipv4Addr>) -> bool {
    ip.is_broadcast() || ip.is_multicast() || network_broadcast == Some(ip)
}

/// Whether `ip` is the own address of `network`: its first address, which is no host's
/// on a network of prefix 30 or less (RFC 1122 3.2.1.3; both addresses of a /31 are
/// hosts', RFC 3021).
pub(crate) fn is_network_own(ip: Ipv4Addr, network: Ipv4Cidr) -> bool {
    network.prefix_len() <= 30 && ip == network.network().address()
}

/// Where an ARP frame's sender MAC address starts.
const ARP_SENDER_MAC: usize = 22;
/// Where an ARP frame's sender IPv4 address starts.
const ARP_SENDER: usize = 28;
/// Where an ARP frame's target MAC address starts.
const ARP_TARGET_MAC: usize = 32;
/// Where an ARP frame's target IPv4 address starts (to the frame's end).
const ARP_TARGET: usize = 38;
/// The fixed start of ARP for IPv4 over Ethernet: hardware type 1, protocol type IPv4,
/// address lengths 6 and 4.
const ARP_IPV4_OVER_ETHERNET: [u8; 6] = [0, 1, 8, 0, 6, 4];
/// ARP's request operation.
const ARP_REQUEST: [u8; 2] = [0, 1];

/// The sender address of `frame` if it is ARP for IPv4 over Ethernet.
fn arp_sender(frame: &[u8]) -> Option<Ipv4Addr> {
    if frame.get(12..14)? != [0x08, 0x06] || frame.get(14..20)? != ARP_IPV4_OVER_ETHERNET {
        return None;
    }
    let sender: [u8; 4] = frame.get(ARP_SENDER..ARP_SENDER + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(sender))
}

/// ARP for IPv4 over Ethernet, a request or a reply, from a unicast MAC address other
/// than the stack's: the first [`ARP_FRAME`] bytes of a received frame, read once for
/// both [`probe_reply`] and [`announcement_as_reply`].
pub(crate) struct ArpFromAnother([u8; ARP_FRAME]);

impl ArpFromAnother {
    /// `frame` as such ARP, if it is, for a stack whose MAC address is `mac`.
    pub(crate) fn read(frame: &[u8], mac: [u8; 6]) -> Option<Self> {
        // Every frame comes here: the EtherType first, before copying anything.
        if frame.get(12..14)? != [0x08, 0x06] {
            return None;
        }
        let arp: [u8; ARP_FRAME] = frame.get(..ARP_FRAME)?.try_into().ok()?;
        let operation = &arp[ARP_OPERATION..ARP_OPERATION + 2];
        let sender_mac = &arp[ARP_SENDER_MAC..ARP_SENDER];
        let is_arp = arp[14..20] == ARP_IPV4_OVER_ETHERNET;
        let operation_known = operation == ARP_REQUEST || operation == ARP_REPLY;
        let other = sender_mac[0] & 1 == 0 && sender_mac != mac;
        (is_arp && operation_known && other).then_some(Self(arp))
    }

    /// Whether this ARP claims `address` (its sender address is `address`): another
    /// host uses it, a conflict (RFC 5227 2.4). A probe, from 0.0.0.0, claims nothing.
    pub(crate) fn claims(&self, address: Ipv4Addr) -> bool {
        self.address(ARP_SENDER) == address
    }

    /// The address at `at`.
    fn address(&self, at: usize) -> Ipv4Addr {
        let arp = &self.0;
        Ipv4Addr::new(arp[at], arp[at + 1], arp[at + 2], arp[at + 3])
    }
}

/// `arp` as a reply to the stack (its MAC `mac`, its address and prefix length
/// `local`) if it is a neighbour's ARP announcement (RFC 5227 2.3: a request or reply
/// whose sender and target address are both the neighbour's, as a host sends when it
/// takes an address or its MAC changes): smoltcp then learns the neighbour's MAC from it
/// as from an answer to its own request, and answers nothing. smoltcp ignores ARP
/// whose target is not the stack's address, so a neighbour's new MAC went unheard
/// until the old entry expired (60 s). RFC 826 updates an entry the table already holds
/// from any ARP frame; smoltcp's table cannot be asked what it holds, so an
/// announcement is learnt whether the neighbour was known or not. The neighbour must be
/// a host of the stack's network, not the stack's address.
pub(crate) fn announcement_as_reply(
    arp: &ArpFromAnother,
    local: Option<(Ipv4Addr, u8)>,
    mac: [u8; 6],
) -> Option<[u8; ARP_FRAME]> {
    let (address, prefix) = local?;
    let sender = arp.address(ARP_SENDER);
    let network = Ipv4Cidr::new(address, prefix);
    let host_of_network = network.contains_addr(&sender)
        && Some(sender) != network.broadcast()
        && !is_network_own(sender, network);
    if sender != arp.address(ARP_TARGET) || sender == address || !host_of_network {
        return None;
    }
    let mut reply = arp.0;
    reply[..6].copy_from_slice(&mac);
    reply[ARP_OPERATION..ARP_OPERATION + 2].copy_from_slice(&ARP_REPLY);
    reply[ARP_TARGET_MAC..ARP_TARGET].copy_from_slice(&mac);
    reply[ARP_TARGET..].copy_from_slice(&address.octets());
    Some(reply)
}

/// The ARP announcement (RFC 5227 2.3) of `address` by the stack of MAC `mac`: a
/// broadcast request whose sender and target address are both `address`, its target
/// MAC zero. The link's hosts learn the stack's MAC for the address, and one that
/// holds it too sees the conflict.
pub(crate) fn announcement(mac: [u8; 6], address: Ipv4Addr) -> [u8; ARP_FRAME] {
    let mut frame = [0; ARP_FRAME];
    frame[..6].copy_from_slice(&[0xff; 6]);
    frame[6..12].copy_from_slice(&mac);
    frame[12..14].copy_from_slice(&[0x08, 0x06]);
    frame[14..20].copy_from_slice(&ARP_IPV4_OVER_ETHERNET);
    frame[ARP_OPERATION..ARP_OPERATION + 2].copy_from_slice(&ARP_REQUEST);
    frame[ARP_SENDER_MAC..ARP_SENDER].copy_from_slice(&mac);
    frame[ARP_SENDER..ARP_TARGET_MAC].copy_from_slice(&address.octets());
    frame[ARP_TARGET..].copy_from_slice(&address.octets());
    frame
}

/// The stack's reply (its MAC `mac`, its address and prefix length `local`) to `arp`
/// if it is an ARP probe for the stack's address (RFC 5227 2.1.1: a request from sender
/// address 0.0.0.0 by a host about to take the address), sent to the prober's MAC: the
/// prober sees the address is in use. smoltcp drops ARP from a sender address that is
/// not unicast, so a host probing for the stack's address took it.
pub(crate) fn probe_reply(
    arp: &ArpFromAnother,
    local: Option<(Ipv4Addr, u8)>,
    mac: [u8; 6],
) -> Option<[u8; ARP_FRAME]> {
    let (address, _) = local?;
    let probe = &arp.0;
    let is_probe = probe[ARP_OPERATION..ARP_OPERATION + 2] == ARP_REQUEST
        && arp.address(ARP_SENDER).is_unspecified()
        && arp.address(ARP_TARGET) == address;
    if !is_probe {
        return None;
    }
    let prober = &probe[ARP_SENDER_MAC..ARP_SENDER];
    let mut reply = *probe;
    reply[..6].copy_from_slice(prober);
    reply[6..12].copy_from_slice(&mac);
    reply[ARP_OPERATION..ARP_OPERATION + 2].copy_from_slice(&ARP_REPLY);
    reply[ARP_SENDER_MAC..ARP_SENDER].copy_from_slice(&mac);
    reply[ARP_SENDER..ARP_TARGET_MAC].copy_from_slice(&address.octets());
    reply[ARP_TARGET_MAC..ARP_TARGET].copy_from_slice(prober);
    reply[ARP_TARGET..].copy_from_slice(&[0; 4]);
    Some(reply)
}

/// A DHCP server's answer to this stack's client, read as smoltcp's client reads it
/// (`smoltcp::wire::DhcpRepr::parse` of the UDP payload), before smoltcp sees it.
pub(crate) struct DhcpAnswer {
    /// The message type (option 53).
    kind: DhcpMessageType,
    /// The transaction ID (xid).
    transaction_id: u32,
    /// Whether it names its server (option 54), without which smoltcp ignores it.
    names_server: bool,
    /// The lease time in seconds (option 51), if given.
    lease_s: Option<u32>,
    /// T1, the renewal time in seconds (option 58), if given.
    renew_s: Option<u32>,
    /// T2, the rebinding time in seconds (option 59), if given.
    rebind_s: Option<u32>,
    /// Whether it carries option 52 (option overload, RFC 2132 9.3): more options in
    /// its `file` or `sname` field, which smoltcp never reads.
    overloaded: bool,
}

/// DHCP's option overload (RFC 2132 9.3).
const OPTION_OVERLOAD: u8 = 52;

/// The lease smoltcp's DHCP client assumes when an acknowledgement gives no lease time
/// (option 51): 120 s (its `DEFAULT_LEASE_DURATION`).
const SMOLTCP_DEFAULT_LEASE_S: u32 = 120;

impl DhcpAnswer {
    /// `frame` read as a DHCP server's answer (IPv4, UDP from port 67 to port 68) to the
    /// client of MAC address `mac`, if it is one smoltcp's parser takes; anything else
    /// is left to smoltcp, which drops what it cannot parse.
    pub(crate) fn read(frame: &[u8], mac: [u8; 6]) -> Option<Self> {
        let udp = dhcp_answer_datagram(frame)?;
        // smoltcp reads the payload the UDP length gives (it drops a datagram longer
        // than its packet).
        let length = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
        let payload = udp.get(8..length)?;
        let packet = DhcpPacket::new_checked(payload).ok()?;
        // Another client's answer is not parsed.
        if packet.client_hardware_address().0 != mac {
            return None;
        }
        let answer = DhcpRepr::parse(&packet).ok()?;
        Some(Self {
            kind: answer.message_type,
            transaction_id: answer.transaction_id,
            names_server: answer.server_identifier.is_some(),
            lease_s: answer.lease_duration,
            renew_s: answer.renew_duration,
            rebind_s: answer.rebind_duration,
            overloaded: packet
                .options()
                .any(|option| option.kind == OPTION_OVERLOAD),
        })
    }

    /// Whether smoltcp 0.12's client would have panicked taking this answer's timers:
    /// with T1 and no T2 it computed T2 as T1 + (lease - T1) * 3/4, whose subtraction
    /// panicked when T1 is past the lease (smoltcp issue 1028; 0.13 takes its own
    /// defaults for such timers, and the stack still refuses the answer); the lease is
    /// 120 s when the answer names none, so T1 alone above 120 s does it. An offer with
    /// such timers is refused too: its server would acknowledge them. smoltcp's other
    /// arithmetic on an answer's values cannot fail: T1, T2 and the lease are each at
    /// most 2^32 - 1 s, which its microsecond durations and instants hold many times
    /// over, and its differences between instants take their absolute value.
    pub(crate) fn has_timers_smoltcp_cannot_take(&self) -> bool {
        let offer_or_ack = matches!(self.kind, DhcpMessageType::Offer | DhcpMessageType::Ack);
        let lease_s = self.lease_s.unwrap_or(SMOLTCP_DEFAULT_LEASE_S);
        offer_or_ack
            && self.rebind_s.is_none()
            && self.renew_s.is_some_and(|renew_s| renew_s > lease_s)
    }

    /// Whether the answer puts options in its `file` or `sname` field (option 52),
    /// which smoltcp's client never reads: a subnet mask there, say, is missed and the
    /// acknowledgement ignored.
    pub(crate) fn is_overloaded(&self) -> bool {
        self.overloaded
    }

    /// Whether this is a NAK smoltcp's client would act on: naming its server, to the
    /// REQUEST of transaction ID `request` (the client's last message,
    /// [`note_dhcp_request`]; `None` when its last was no REQUEST). smoltcp's client,
    /// NAKed, starts over at once and says nothing of it, so a server that NAKs every
    /// REQUEST had it discover and request again every poll, forever; the stack rests
    /// it instead.
    pub(crate) fn is_nak_to(&self, request: Option<u32>) -> bool {
        self.kind == DhcpMessageType::Nak
            && self.names_server
            && Some(self.transaction_id) == request
    }
}

/// The UDP datagram of `frame` if it is a DHCP server's answer to a client: IPv4, UDP
/// from port 67 to port 68, with a whole UDP header (8 bytes).
pub(crate) fn dhcp_answer_datagram(frame: &[u8]) -> Option<&[u8]> {
    let (UDP, udp) = crate::ipv4_payload(frame)? else {
        return None;
    };
    (udp.len() >= 8 && udp[..4] == [0, 67, 0, 68]).then_some(udp)
}

/// Notes in `request` the transaction ID of `frame` if it is a DHCP client's REQUEST
/// (IPv4, UDP from port 68 to port 67), or `None` if it is another client message: the
/// stack's client sends one at a time, and acts only on a NAK to its last, a REQUEST.
/// Any other frame leaves `request` alone.
pub(crate) fn note_dhcp_request(frame: &[u8], request: &mut Option<u32>) {
    let Some((UDP, udp)) = crate::ipv4_payload(frame) else {
        return;
    };
    if udp.get(..4) != Some(&[0, 68, 0, 67]) {
        return;
    }
    *request = udp.get(8..).and_then(|payload| {
        let packet = DhcpPacket::new_checked(payload).ok()?;
        let message = DhcpRepr::parse(&packet).ok()?;
        (message.message_type == DhcpMessageType::Request).then_some(message.transaction_id)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stack's address in these tests.
    const LOCAL: Option<(Ipv4Addr, u8)> = Some((Ipv4Addr::new(10, 0, 0, 1), 24));

    /// An IPv4 frame of `protocol` from `source` to `destination`, to Ethernet `to`.
    fn frame(to: [u8; 6], protocol: u8, source: [u8; 4], destination: [u8; 4]) -> Vec<u8> {
        let mut frame = vec![0u8; ETHERNET_HEADER + 20 + 20];
        frame[..6].copy_from_slice(&to);
        frame[12..14].copy_from_slice(&crate::ETHERTYPE_IPV4);
        frame[14] = 0x45;
        frame[23] = protocol;
        frame[26..30].copy_from_slice(&source);
        frame[30..34].copy_from_slice(&destination);
        frame
    }

    /// The stack's MAC address in these tests.
    const OURS: [u8; 6] = [2, 0, 0, 0, 0, 1];
    /// Ethernet's broadcast address.
    const BROADCAST: [u8; 6] = [0xff; 6];
    /// A multicast MAC address (224.0.0.1's).
    const MULTICAST: [u8; 6] = [1, 0, 0x5e, 0, 0, 1];

    #[test]
    fn frames_no_host_sends_are_misaddressed_and_the_rest_are_not() {
        let peer = [10, 0, 0, 2];
        let us = [10, 0, 0, 1];
        for (to, protocol, source, destination, dropped) in [
            (OURS, TCP, peer, us, false),
            (OURS, UDP, peer, us, false),
            (BROADCAST, UDP, peer, [255; 4], false),
            (BROADCAST, UDP, peer, [10, 0, 0, 255], false),
            (MULTICAST, UDP, peer, [224, 0, 0, 1], false),
            // A DHCP client's request, from 0.0.0.0: UDP from "this network" is fine.
            (BROADCAST, UDP, [0; 4], [255; 4], false),
            (BROADCAST, TCP, peer, [10, 0, 0, 255], true),
            (BROADCAST, TCP, peer, [255; 4], true),
            (MULTICAST, TCP, peer, [224, 0, 0, 1], true),
            (OURS, TCP, peer, [10, 0, 0, 3], true),
            (OURS, TCP, [0, 0, 0, 5], us, true),
            (OURS, UDP, [127, 0, 0, 1], us, true),
            (OURS, UDP, [240, 0, 0, 1], us, true),
            (OURS, UDP, [255; 4], us, true),
            (OURS, UDP, [10, 0, 0, 255], us, true),
            (OURS, UDP, [224, 0, 0, 9], us, true),
            (BROADCAST, UDP, peer, us, true),
            (MULTICAST, TCP, peer, us, true),
        ] {
            let frame = frame(to, protocol, source, destination);
            assert_eq!(
                misaddressed(&frame, LOCAL, false),
                dropped,
                "{protocol} {source:?} to {destination:?} on {to:x?}"
            );
        }
    }

    /// An ARP frame of `operation` (1 request, 2 reply) from `sender` (its MAC and
    /// address) for the address `target`, broadcast.
    fn arp(operation: u8, sender: ([u8; 6], [u8; 4]), target: [u8; 4]) -> Vec<u8> {
        let mut frame = vec![0xff; 6];
        frame.extend_from_slice(&sender.0);
        frame.extend_from_slice(&[0x08, 0x06]);
        frame.extend_from_slice(&ARP_IPV4_OVER_ETHERNET);
        frame.extend_from_slice(&[0, operation]);
        frame.extend_from_slice(&sender.0);
        frame.extend_from_slice(&sender.1);
        frame.extend_from_slice(&[0; 6]);
        frame.extend_from_slice(&target);
        frame
    }

    /// [`announcement_as_reply`] to `frame` read as ARP, for the stack of `local` and
    /// [`OURS`].
    fn announcement(frame: &[u8], local: Option<(Ipv4Addr, u8)>) -> Option<[u8; ARP_FRAME]> {
        announcement_as_reply(&ArpFromAnother::read(frame, OURS)?, local, OURS)
    }

    /// [`probe_reply`] to `frame` read as ARP, for the stack of `local` and [`OURS`].
    fn probe_answer(frame: &[u8], local: Option<(Ipv4Addr, u8)>) -> Option<[u8; ARP_FRAME]> {
        probe_reply(&ArpFromAnother::read(frame, OURS)?, local, OURS)
    }

    #[test]
    fn only_a_neighbours_own_announcement_is_learnt() {
        let neighbour = [2, 0, 0, 0, 0, 9];
        let learnt = |frame: &[u8]| announcement(frame, LOCAL).is_some();
        assert!(learnt(&arp(1, (neighbour, [10, 0, 0, 9]), [10, 0, 0, 9])));
        assert!(learnt(&arp(2, (neighbour, [10, 0, 0, 9]), [10, 0, 0, 9])));
        let reply = announcement(&arp(1, (neighbour, [10, 0, 0, 9]), [10, 0, 0, 9]), LOCAL);
        let reply = reply.expect("learnt");
        assert_eq!(reply[..6], OURS, "to the stack");
        assert_eq!(reply[ARP_OPERATION..ARP_OPERATION + 2], ARP_REPLY);
        assert_eq!(reply[ARP_SENDER_MAC..ARP_SENDER], neighbour);
        assert_eq!(reply[ARP_SENDER..ARP_TARGET_MAC], [10, 0, 0, 9]);
        assert_eq!(reply[ARP_TARGET_MAC..ARP_TARGET], OURS);
        assert_eq!(reply[ARP_TARGET..], [10, 0, 0, 1]);
        for (frame, why) in [
            (
                arp(1, (neighbour, [10, 0, 0, 9]), [10, 0, 0, 7]),
                "a request for another host",
            ),
            (
                arp(1, (neighbour, [10, 0, 0, 1]), [10, 0, 0, 1]),
                "the stack's own address",
            ),
            (
                arp(1, (neighbour, [10, 0, 1, 9]), [10, 0, 1, 9]),
                "off the network",
            ),
            (
                arp(1, (neighbour, [10, 0, 0, 255]), [10, 0, 0, 255]),
                "the broadcast address",
            ),
            (
                arp(1, (neighbour, [10, 0, 0, 0]), [10, 0, 0, 0]),
                "the network's own address",
            ),
            (
                arp(1, ([3, 0, 0, 0, 0, 9], [10, 0, 0, 9]), [10, 0, 0, 9]),
                "a group MAC",
            ),
            (
                arp(1, (OURS, [10, 0, 0, 9]), [10, 0, 0, 9]),
                "the stack's own MAC",
            ),
            (
                arp(3, (neighbour, [10, 0, 0, 9]), [10, 0, 0, 9]),
                "no request or reply",
            ),
        ] {
            assert!(!learnt(&frame), "{why}");
        }
        let short = arp(1, (neighbour, [10, 0, 0, 9]), [10, 0, 0, 9]);
        assert!(!learnt(&short[..41]), "too short");
        let from_broadcast = arp(1, (neighbour, [10, 0, 0, 255]), [10, 0, 0, 1]);
        assert!(
            misaddressed(&from_broadcast, LOCAL, false),
            "from the broadcast"
        );
        let probe = arp(1, (neighbour, [0; 4]), [10, 0, 0, 1]);
        assert!(!misaddressed(&probe, LOCAL, false), "a probe");
        assert!(!misaddressed(&short, LOCAL, false), "a neighbour's");
        assert_eq!(announcement(&short, None), None, "no address");
    }

    #[test]
    fn only_another_macs_arp_from_the_stacks_address_claims_it() {
        let us = Ipv4Addr::new(10, 0, 0, 1);
        let other = [2, 0, 0, 0, 0, 9];
        let claims = |frame: &[u8]| ArpFromAnother::read(frame, OURS).is_some_and(|a| a.claims(us));
        assert!(claims(&arp(1, (other, [10, 0, 0, 1]), [10, 0, 0, 1])));
        assert!(claims(&arp(2, (other, [10, 0, 0, 1]), [10, 0, 0, 7])));
        assert!(claims(&arp(1, (other, [10, 0, 0, 1]), [10, 0, 0, 7])));
        assert!(
            !claims(&arp(1, (OURS, [10, 0, 0, 1]), [10, 0, 0, 1])),
            "our MAC"
        );
        assert!(
            !claims(&arp(1, (other, [10, 0, 0, 9]), [10, 0, 0, 1])),
            "asks for us"
        );
        assert!(!claims(&arp(1, (other, [0; 4]), [10, 0, 0, 1])), "a probe");
        let ours = super::announcement(OURS, us);
        assert_eq!(ours[..], arp(1, (OURS, [10, 0, 0, 1]), [10, 0, 0, 1])[..]);
    }

    #[test]
    fn only_a_probe_for_the_stacks_address_is_answered() {
        let prober = [2, 0, 0, 0, 0, 9];
        let answered = |frame: &[u8]| probe_answer(frame, LOCAL).is_some();
        assert!(answered(&arp(1, (prober, [0; 4]), [10, 0, 0, 1])));
        for (frame, why) in [
            (arp(1, (prober, [0; 4]), [10, 0, 0, 2]), "another address"),
            (arp(2, (prober, [0; 4]), [10, 0, 0, 1]), "a reply"),
            (
                arp(1, (prober, [10, 0, 0, 9]), [10, 0, 0, 1]),
                "a request from an address",
            ),
            (
                arp(1, (OURS, [0; 4]), [10, 0, 0, 1]),
                "the stack's own probe",
            ),
        ] {
            assert!(!answered(&frame), "{why}");
        }
        let probe = arp(1, (prober, [0; 4]), [10, 0, 0, 1]);
        assert_eq!(probe_answer(&probe, None), None, "no address to defend");
    }

    #[test]
    fn without_an_address_all_tcp_is_misaddressed_but_not_a_dhcp_answer() {
        let syn = frame(BROADCAST, TCP, [10, 0, 0, 2], [255; 4]);
        assert!(misaddressed(&syn, None, true));
        let dhcp_offer = frame(BROADCAST, UDP, [10, 0, 0, 254], [255; 4]);
        assert!(!misaddressed(&dhcp_offer, None, true));
        // An offer to the address offered, on the broadcast MAC.
        let mut dhcp_offer = frame(BROADCAST, UDP, [10, 0, 0, 254], [10, 0, 0, 5]);
        dhcp_offer[34..38].copy_from_slice(&[0, 67, 0, 68]);
        assert!(!misaddressed(&dhcp_offer, None, true));
        let mut to_a_fixed_address = dhcp_offer.clone();
        to_a_fixed_address[30..34].copy_from_slice(&[10, 0, 0, 1]);
        assert!(
            misaddressed(&to_a_fixed_address, LOCAL, false),
            "no DHCP client to take it"
        );
        assert!(
            !misaddressed(&to_a_fixed_address, LOCAL, true),
            "a client's"
        );
        dhcp_offer[37] = 69;
        assert!(
            misaddressed(&dhcp_offer, None, true),
            "not to the DHCP client's port"
        );
        let short = &frame(OURS, TCP, [127, 0, 0, 1], [10, 0, 0, 1])[..30];
        assert!(
            !misaddressed(short, LOCAL, false),
            "malformed: the protocols' to drop"
        );
    }
}
