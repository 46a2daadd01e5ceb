//! What an app's `fill` finds in the DMA memory a driver lends it for a disk write or a
//! frame to send: zeros, or bytes that same app put there during its lease, never an
//! earlier request's bytes of another holder. Drivers lend their buffers as the last
//! request left them (a disk slot's buffer still holds the sectors a read just brought,
//! perhaps of another app's extent; a transmit buffer an earlier frame, perhaps another
//! app's payload), and safe Rust may read a `&mut [u8]`, so the registry clears each
//! range before the app's code sees it, on the app paths only (the kernel's own sends
//! and writes go to the driver directly and skip it).
//!
//! The cost is a memset of the lent bytes, not of the whole buffer: one frame per send
//! (1,514 bytes, or up to 64 KiB for a TCP segmentation frame, which a shared interface
//! passes through too), at most one request (64 KiB with Rexo's drivers) per disk
//! write, each about what the `fill` writes over the same bytes right after (and leaving
//! them in the cache for it). A shared interface and a disk clear every time: their
//! buffers pass between holders (apps and the kernel take turns on a shared queue; a
//! disk's reads, the kernel's included, land in the buffers its writes lend). An
//! interface held whole has one holder for the lease's whole life, so a TCP
//! segmentation frame (up to 64 KiB, many of them a second for a web server) is cleared
//! only the first time its range is lent under the lease: [`ClearedForHolder`].

use alloc::vec::Vec;

use rexo_api::device::ETHERNET_MAX_FRAME;

/// The ranges of transmit memory (by address) cleared for one holder under one
/// exclusive lease of a network interface (or one queue pair of it). Only that holder
/// writes them while the lease lasts, so a range cleared once holds only zeros or that
/// holder's bytes until the lease ends, with it this record. That rests on what every
/// driver does: it lends transmit memory from DMA blocks of its own, zeroed when
/// allocated ([`rexo_devio::Dma`]), that nothing but the holder's sends writes while
/// the holder has it (the driver's own headers and checksum seeds aside, which are not
/// another holder's bytes).
///
/// Frames of up to [`ETHERNET_MAX_FRAME`] bytes are cleared every time: their memset
/// costs about what a look-up here would, and they would fill the record (a driver has
/// hundreds of such buffers). Longer ranges, a driver's few segmentation buffers
/// (virtio-net: 16 a queue), are looked up and recorded, up to [`Self::MOST`].
#[derive(Default)]
pub(crate) struct ClearedForHolder {
    /// Cleared ranges: first address, bytes.
    ranges: Vec<(usize, usize)>,
}

impl ClearedForHolder {
    /// The most ranges recorded; past it, longer ranges are cleared every time too.
    const MOST: usize = 64;

    /// Makes every part hold zeros or this holder's own bytes.
    pub(crate) fn clear_parts(&mut self, parts: &mut [&mut [u8]]) {
        for part in parts.iter_mut() {
            self.clear(part);
        }
    }

    /// Makes `part` hold zeros or this holder's own bytes: clears it unless a range
    /// recorded here covers it.
    pub(crate) fn clear(&mut self, part: &mut [u8]) {
        if part.len() <= ETHERNET_MAX_FRAME {
            part.fill(0);
            return;
        }
        // The address only names the memory; it is never read through.
        let (start, len) = (part.as_ptr() as usize, part.len());
        let covered = |&(first, bytes): &(usize, usize)| {
            first <= start && start + len <= first.saturating_add(bytes)
        };
        if self.ranges.iter().any(covered) {
            return;
        }
        part.fill(0);
        let within = |&(first, bytes): &(usize, usize)| {
            start <= first && first.saturating_add(bytes) <= start + len
        };
        self.ranges.retain(|range| !within(range));
        if self.ranges.len() < Self::MOST {
            self.ranges.push((start, len));
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::boxed::Box;
    use alloc::vec;
    use alloc::vec::Vec;

    use rexo_api::{
        DeviceError, Filter, Ipv4Config, NetDevice, NetInfo, device::ETHERNET_MAX_FRAME,
    };
    use rexo_devio::Found;

    use crate::Registry;
    use crate::tests::{lease_disk_to, lease_net, registry_with};

    /// Bytes of each of [`Stale`]'s transmit buffers.
    const BUFFER: usize = 2048;
    /// The largest frame [`Stale`] cuts into segments.
    const SEGMENTED: usize = 65_535;
    /// An earlier holder's byte.
    const SECRET: u8 = 0x5E;

    /// A network interface that lends its transmit memory as the last send left it, as
    /// drivers do: segment `i` of a frame in buffer `i`, a frame to cut into segments in
    /// one buffer of its own. Its one queue pair's handle starts with a copy of its
    /// memory.
    #[derive(Clone)]
    struct Stale {
        /// [`rexo_api::MAX_SEGMENTS`] buffers of [`BUFFER`] bytes.
        buffers: Vec<u8>,
        /// The segmentation buffer.
        segmented: Vec<u8>,
    }

    impl NetDevice for Stale {
        fn info(&self) -> NetInfo {
            NetInfo {
                tcp_segmentation: Some(SEGMENTED),
                ..crate::tests::Counting(0, crate::tests::Wake::Never).info()
            }
        }
        fn receive(
            &mut self,
            _: usize,
            _: usize,
            _: &mut dyn FnMut(&[u8]),
        ) -> Result<usize, DeviceError> {
            Ok(0)
        }
        fn send_segments(
            &mut self,
            _: usize,
            segments: &[usize],
            _: bool,
            fill: &mut dyn FnMut(&mut [&mut [u8]]) -> bool,
        ) -> Result<(), DeviceError> {
            DeviceError::check_segments(segments, ETHERNET_MAX_FRAME)?;
            let ranges: Vec<_> = segments
                .iter()
                .enumerate()
                .map(|(i, &len)| (i * BUFFER, len))
                .collect();
            let sent =
                rexo_api::device::lend_ranges(&mut self.buffers, &ranges, |parts| fill(parts));
            sent.filter(|&sent| sent)
                .map(|_| ())
                .ok_or(DeviceError::Withdrawn)
        }
        fn send_tcp_segmented(
            &mut self,
            _: usize,
            len: usize,
            fill: &mut dyn FnMut(&mut [u8]) -> Option<usize>,
        ) -> Result<(), DeviceError> {
            DeviceError::check_frame(len, SEGMENTED)?;
            fill(&mut self.segmented[..len])
                .map(|_| ())
                .ok_or(DeviceError::Withdrawn)
        }
        fn transmit_pending(&mut self, _: usize) -> Result<usize, DeviceError> {
            Ok(0)
        }
        fn wake_on_receive(&mut self, _: usize, _: Option<usize>) -> Result<(), DeviceError> {
            Err(DeviceError::Unsupported("wake-ups"))
        }
        fn split_queues(&mut self) -> Result<Vec<Box<dyn NetDevice>>, DeviceError> {
            Ok(vec![Box::new(self.clone())])
        }
    }

    /// A registry with one [`Stale`] interface.
    fn stale_registry() -> &'static Registry {
        let nic = Stale {
            buffers: vec![0; rexo_api::MAX_SEGMENTS * BUFFER],
            segmented: vec![0; SEGMENTED],
        };
        registry_with(Found::Net(Box::new(nic)), "stale-net")
    }

    /// The sizes of every send path's lent memory: a frame, a gathered frame, a frame
    /// the device cuts into segments.
    const FRAME: usize = 100;
    const GATHERED: [usize; 2] = [14, 1000];
    const CUT: usize = 30_000;

    /// Sends on every path, each `fill` writing `byte` over what it is lent; returns
    /// what each found there, the sends' results aside (a withdrawn frame's bytes stay
    /// in the buffer too).
    fn send_every_way(nic: &mut dyn NetDevice, byte: u8) -> Vec<Vec<u8>> {
        let mut found = Vec::new();
        let _ = nic.transmit(0, FRAME, &mut |frame| {
            found.push(frame.to_vec());
            frame.fill(byte);
        });
        let _ = nic.transmit_gather(0, &GATHERED, &mut |parts| {
            for part in parts.iter_mut() {
                found.push(part.to_vec());
                part.fill(byte);
            }
        });
        let _ = nic.send_tcp_segmented(0, CUT, &mut |frame| {
            found.push(frame.to_vec());
            frame.fill(byte);
            Some(1460)
        });
        found
    }

    /// Whether every lent range held only zeros.
    fn all_zeros(found: &[Vec<u8>]) -> bool {
        found.len() == 4 && found.iter().all(|bytes| bytes.iter().all(|&b| b == 0))
    }

    #[test]
    fn an_interface_held_whole_lends_its_next_holder_no_earlier_frame() {
        let registry = stale_registry();
        let mut first = lease_net(registry, (1, "first"));
        send_every_way(first.as_mut(), SECRET);
        drop(first);
        let mut next = lease_net(registry, (2, "next"));
        let mut pair = next.split_queues().unwrap().remove(0);
        assert!(all_zeros(&send_every_way(pair.as_mut(), 7)), "a queue pair");
        assert!(all_zeros(&send_every_way(next.as_mut(), 7)));
        let found = send_every_way(next.as_mut(), 7);
        assert!(
            found[..3].iter().all(|bytes| bytes.iter().all(|&b| b == 0)),
            "a frame's memory is cleared every time"
        );
        assert!(
            found[3].iter().all(|&b| b == 7),
            "a segmentation buffer holds the holder's own bytes, cleared once a lease"
        );
        let _ = next.send_tcp_segmented(0, CUT + 1, &mut |frame| {
            assert!(frame.iter().all(|&b| b == 0), "a longer range is cleared");
            None
        });
    }

    #[test]
    fn a_shared_interface_lends_each_app_no_others_frame() {
        let registry = stale_registry();
        let address = Some(Ipv4Config {
            address: [10, 0, 2, 15].into(),
            prefix: 24,
            router: None,
            dns: None,
        });
        let bind = |owner, name, filter| {
            let filters = [Filter::parse(filter).unwrap()];
            registry
                .bind_net(0, (owner, name), &filters, address)
                .unwrap()
        };
        let mut first = bind(1, "first", "udp dport 7");
        let mut second = bind(2, "second", "udp dport 9");
        send_every_way(first.as_mut(), SECRET);
        assert!(all_zeros(&send_every_way(second.as_mut(), 7)));
        assert!(
            all_zeros(&send_every_way(second.as_mut(), 7)),
            "cleared every time, the app's own bytes too"
        );
    }

    #[test]
    fn a_disk_lends_its_holder_no_earlier_requests_bytes() {
        let mut disk = rexo_api::testing::MemoryDisk::new(vec![0; 64 * 512]);
        disk.stale_write_bytes = Some(SECRET);
        let registry = registry_with(Found::Block(Box::new(disk)), "memory");
        let mut disk = lease_disk_to(registry, (2, "next"));
        let mut found = Vec::new();
        let tag = disk
            .submit_write(0, 8, 8, &mut |buffer| found = buffer.to_vec())
            .unwrap();
        rexo_api::device::wait_for(disk.as_mut(), 0, tag, &mut |_| {}).unwrap();
        assert_eq!(found, [0; 8 * 512]);
        // This half cannot fail today (the lease zero-fills an ordered write's copy
        // before `fill`): it guards a future change that would lend the driver's buffer.
        let tag = disk
            .submit_write_ordered(0, 16, 8, &mut |buffer| found = buffer.to_vec())
            .unwrap();
        rexo_api::device::wait_for(disk.as_mut(), 0, tag, &mut |_| {}).unwrap();
        assert_eq!(found, [0; 8 * 512], "an ordered write's copy");
    }
}
