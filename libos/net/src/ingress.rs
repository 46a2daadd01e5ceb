//! What the stack drops before the protocols see a frame: IPv4 whose addresses no host
//! sends from or to (RFC 1122), which smoltcp would take and answer. Its listener
//! accepts a SYN to any destination its interface takes, broadcast and multicast
//! included, and answers it from that destination; it also answers sources in 127/8
//! and 240/4, and unicast IP that came on an Ethernet group address.

use core::net::Ipv4Addr;

use rexo_api::device::ETHERNET_HEADER;

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
///   A DHCP server's answer (UDP from port 67 to port 68) is let through: one may send
///   the offer to the address it offers on the broadcast MAC, and the client, holding
///   no address yet, takes it whatever its destination.
///
/// Anything else, and a frame too short or malformed to read, is left to the protocols.
pub(crate) fn misaddressed(frame: &[u8], local: Option<(Ipv4Addr, u8)>) -> bool {
    let Some((protocol, payload)) = crate::ipv4_payload(frame) else {
        return false;
    };
    let packet = &frame[ETHERNET_HEADER..];
    let source = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    let destination = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
    let network_broadcast = local
        .and_then(|(address, prefix)| smoltcp::wire::Ipv4Cidr::new(address, prefix).broadcast());
    let is_group =
        |ip: Ipv4Addr| ip.is_broadcast() || ip.is_multicast() || network_broadcast == Some(ip);
    let [first, ..] = source.octets();
    if first == 127 || first >= 224 || is_group(source) {
        return true;
    }
    if protocol == TCP && (first == 0 || local.map(|(address, _)| address) != Some(destination)) {
        return true;
    }
    let group_mac = frame[0] & 1 == 1;
    let dhcp_answer = protocol == UDP && payload.get(..4) == Some(&[0, 67, 0, 68]);
    group_mac && !is_group(destination) && !dhcp_answer
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

    const OURS: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const BROADCAST: [u8; 6] = [0xff; 6];
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
                misaddressed(&frame, LOCAL),
                dropped,
                "{protocol} {source:?} to {destination:?} on {to:x?}"
            );
        }
    }

    #[test]
    fn without_an_address_all_tcp_is_misaddressed_but_not_a_dhcp_answer() {
        let syn = frame(BROADCAST, TCP, [10, 0, 0, 2], [255; 4]);
        assert!(misaddressed(&syn, None));
        let dhcp_offer = frame(BROADCAST, UDP, [10, 0, 0, 254], [255; 4]);
        assert!(!misaddressed(&dhcp_offer, None));
        // An offer to the address offered, on the broadcast MAC.
        let mut dhcp_offer = frame(BROADCAST, UDP, [10, 0, 0, 254], [10, 0, 0, 5]);
        dhcp_offer[34..38].copy_from_slice(&[0, 67, 0, 68]);
        assert!(!misaddressed(&dhcp_offer, None));
        dhcp_offer[37] = 69;
        assert!(
            misaddressed(&dhcp_offer, None),
            "not to the DHCP client's port"
        );
        let short = &frame(OURS, TCP, [127, 0, 0, 1], [10, 0, 0, 1])[..30];
        assert!(
            !misaddressed(short, LOCAL),
            "malformed: the protocols' to drop"
        );
    }
}
