//! What the end-to-end tests and the benchmark share: smoltcp interfaces on queues of
//! Ethernet frames, and the link layer of a `rexo-tcp` server (which takes and makes
//! IPv4 packets) at 10.0.0.1: its frames wrapped and unwrapped, ARP answered.

use smoltcp::iface::{Config, Interface};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};
use std::collections::VecDeque;

/// A smoltcp device over two packet queues.
#[derive(Default)]
pub struct QueueDevice {
    /// Packets to receive, in order.
    pub rx: VecDeque<Vec<u8>>,
    /// Packets sent.
    pub tx: Vec<Vec<u8>>,
}

/// A received packet.
pub struct Rx(Vec<u8>);

/// Room for a packet to send.
pub struct Tx<'a>(&'a mut Vec<Vec<u8>>);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut packet = vec![0; len];
        let result = f(&mut packet);
        self.0.push(packet);
        result
    }
}

impl Device for QueueDevice {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(Rx, Tx<'_>)> {
        let packet = self.rx.pop_front()?;
        Some((Rx(packet), Tx(&mut self.tx)))
    }

    fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
        Some(Tx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1500;
        caps
    }
}

/// The smoltcp instant of `now` simulated milliseconds.
pub fn millis(now: u64) -> Instant {
    Instant::from_millis(now.cast_signed())
}

/// The MAC address of host 10.0.0.`host`.
pub fn mac(host: u8) -> [u8; 6] {
    [2, 0, 0, 0, 0, host]
}

/// A smoltcp interface at 10.0.0.`host`/24 over `device`.
pub fn interface(device: &mut QueueDevice, host: u8, seed: u64) -> Interface {
    let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac(host))));
    config.random_seed = seed;
    let mut iface = Interface::new(config, device, millis(0));
    iface.update_ip_addrs(|addrs| {
        addrs
            .push(IpCidr::new(IpAddress::v4(10, 0, 0, host), 24))
            .expect("one address");
    });
    iface
}

/// What a frame to the `rexo-tcp` server at 10.0.0.1 holds: its IPv4 packet, or, for
/// an ARP request for 10.0.0.1, the reply frame (None for anything else).
pub enum ToServer<'a> {
    /// The IPv4 packet, for the server.
    Ip(&'a [u8]),
    /// The ARP reply, for the asker.
    ArpReply(Vec<u8>),
    /// Nothing for the server.
    Other,
}

/// Unwraps a frame sent to the `rexo-tcp` server.
pub fn to_server(frame: &[u8]) -> ToServer<'_> {
    match frame.get(12..14) {
        Some([0x08, 0x00]) => ToServer::Ip(&frame[14..]),
        Some([0x08, 0x06])
            if frame.len() >= 42 && frame[20..22] == [0, 1] && frame[38..42] == [10, 0, 0, 1] =>
        {
            let mut reply = frame[6..12].to_vec();
            reply.extend_from_slice(&mac(1));
            reply.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 2]);
            reply.extend_from_slice(&mac(1));
            reply.extend_from_slice(&[10, 0, 0, 1]);
            reply.extend_from_slice(&frame[22..32]);
            ToServer::ArpReply(reply)
        }
        _ => ToServer::Other,
    }
}

/// The Ethernet header of an IPv4 frame from the `rexo-tcp` server to 10.0.0.`host`.
pub fn ethernet_header(host: u8) -> [u8; 14] {
    let mut header = [0x08; 14];
    header[..6].copy_from_slice(&mac(host));
    header[6..12].copy_from_slice(&mac(1));
    header[13] = 0x00;
    header
}
