//! What the end-to-end tests and the benchmark share: smoltcp interfaces on queues of
//! raw IPv4 packets (no link layer), one per side of a simulated wire.

use smoltcp::iface::{Config, Interface};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
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
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = 1500;
        caps
    }
}

/// The smoltcp instant of `now` simulated milliseconds.
pub fn millis(now: u64) -> Instant {
    Instant::from_millis(now.cast_signed())
}

/// A smoltcp interface at 10.0.0.`host`/24 over `device`.
pub fn interface(device: &mut QueueDevice, host: u8, seed: u64) -> Interface {
    let mut config = Config::new(HardwareAddress::Ip);
    config.random_seed = seed;
    let mut iface = Interface::new(config, device, millis(0));
    iface.update_ip_addrs(|addrs| {
        addrs
            .push(IpCidr::new(IpAddress::v4(10, 0, 0, host), 24))
            .expect("one address");
    });
    iface
}
