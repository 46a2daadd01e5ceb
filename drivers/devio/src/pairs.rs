//! One queue pair of a network interface handed out on its own
//! ([`NetDevice::split_queues`]): a `PairHandle` holds the pair behind the pair's own
//! lock, which only the core driving that pair takes on the frame path, and answers as
//! an interface of one queue. The drivers that split (virtio-net, e1000e) implement
//! [`QueuePair`] for their pair's frame path and share this handle.
//!
//! A handle's calls bypass the device, so a fault its pair meets (virtio-net: a used
//! ring broken, or a transmit queue the device stopped returning; e1000e: a transmit
//! unit hang, or frames held with the link down) cannot reset the device from there: the
//! pair keeps a [`PairHealth`], marked broken and answering [`PAIR_BROKEN`], until the
//! next call through the device ([`PairedDevice::run_on_pair`]) resets it.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use rexo_api::device::PAIR_BROKEN;
use rexo_api::{DeviceError, NetDevice, NetInfo};

/// The frame path of one queue pair: what the device and the pair's handle call alike.
pub trait QueuePair: Send {
    /// What every frame of the device shares and the pair needs to move one (virtio-net's
    /// header and chain layout; `()` where nothing is).
    type Layout: Copy + Send + 'static;
    /// [`NetDevice::receive`] on this pair.
    fn receive(
        &mut self,
        layout: Self::Layout,
        budget: usize,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, DeviceError>;
    /// [`NetDevice::send_segments`] on this pair.
    fn send_segments(
        &mut self,
        layout: Self::Layout,
        segments: &[usize],
        offload: bool,
        fill: &mut dyn FnMut(&mut [&mut [u8]]) -> bool,
    ) -> Result<(), DeviceError>;
    /// [`NetDevice::send_tcp_segmented`] on this pair: [`DeviceError::Unsupported`]
    /// without TCP segmentation offload (the default).
    fn send_tcp_segmented(
        &mut self,
        _layout: Self::Layout,
        _len: usize,
        _fill: &mut dyn FnMut(&mut [u8]) -> Option<usize>,
    ) -> Result<(), DeviceError> {
        Err(DeviceError::Unsupported("TCP segmentation offload"))
    }
    /// [`NetDevice::transmit_pending`] on this pair.
    fn transmit_pending(&mut self, layout: Self::Layout) -> Result<usize, DeviceError>;
}

/// Where a pair's device is, as the pair's own handle sees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PairState {
    /// Started: the rings are the device's.
    Running,
    /// Being reset: the rings are left alone (nothing received, sends `QueueFull`).
    Resetting,
    /// The device failed on this pair: [`PAIR_BROKEN`] until the device is reset.
    Broken,
    /// It did not come back from a reset: the driver's given-up error.
    GivenUp,
}

/// A pair's [`PairState`], and the reset request it shares with its device and the
/// device's other pairs.
pub struct PairHealth {
    /// Where the device is.
    state: PairState,
    /// Set when the pair breaks, so that the next call through the device resets it
    /// even if the pair's own handle met the fault.
    reset_wanted: Arc<AtomicBool>,
    /// Every call's answer once the device was given up.
    given_up: DeviceError,
}

impl PairHealth {
    /// A running pair's health, breaking into `reset_wanted` (the device's flag),
    /// answering `given_up` once the device was given up.
    pub fn new(reset_wanted: Arc<AtomicBool>, given_up: DeviceError) -> Self {
        Self {
            state: PairState::Running,
            reset_wanted,
            given_up,
        }
    }

    /// Whether the pair's rings may be used: `false` while the device is being reset,
    /// [`PAIR_BROKEN`] once the device failed on this pair (until the device is reset),
    /// the given-up error once it was given up.
    pub fn usable(&self) -> Result<bool, DeviceError> {
        match self.state {
            PairState::Running => Ok(true),
            PairState::Resetting => Ok(false),
            PairState::Broken => Err(PAIR_BROKEN),
            PairState::GivenUp => Err(self.given_up),
        }
    }

    /// Marks the pair broken and asks the device for a reset: [`PAIR_BROKEN`], for the
    /// driver to return once it logged why.
    pub fn mark_broken(&mut self) -> DeviceError {
        self.state = PairState::Broken;
        self.reset_wanted.store(true, Ordering::Release);
        PAIR_BROKEN
    }
}

/// A device whose pairs each keep a [`PairHealth`] (virtio-net, e1000e): its receive,
/// send and `transmit_pending` go through [`run_on_pair`](Self::run_on_pair), which
/// resets it when a pair broke; its other calls do not reset it.
pub trait PairedDevice {
    /// One queue pair.
    type Pair: AsMut<PairHealth>;
    /// The pairs, each behind its own lock.
    fn pairs(&self) -> &[Arc<spin::Mutex<Self::Pair>>];
    /// The reset request every pair's health shares.
    fn reset_wanted(&self) -> &AtomicBool;
    /// Resets the device and renews every pair's rings (the pairs are left alone
    /// meanwhile); an error gives the device up, and is returned by this call.
    fn reset_device(&mut self) -> Result<(), DeviceError>;

    /// Runs `call` on pair `queue`: first resets the device if a pair's own handle
    /// found it failing since the last reset. When this call breaks the pair
    /// ([`PAIR_BROKEN`]), resets the device and runs `call` once more on the renewed
    /// pair.
    fn run_on_pair<T>(
        &mut self,
        queue: usize,
        mut call: impl FnMut(&mut Self::Pair) -> Result<T, DeviceError>,
    ) -> Result<T, DeviceError> {
        if self.reset_wanted().load(Ordering::Acquire) {
            self.reset_broken()?;
        }
        // The pair's lock is released before a reset takes every pair's.
        let result = call(&mut pair_at(self.pairs(), queue)?.lock());
        match result {
            Err(PAIR_BROKEN) => {
                self.reset_broken()?;
                call(&mut pair_at(self.pairs(), queue)?.lock())
            }
            result => result,
        }
    }

    /// Resets the device ([`reset_device`](Self::reset_device)), every pair
    /// [`PairState::Resetting`] meanwhile, and marks the pairs running again, or given
    /// up.
    #[cold]
    #[inline(never)]
    fn reset_broken(&mut self) -> Result<(), DeviceError> {
        // Each pair's lock is taken in turn: a handle's call in progress ends first, and
        // none touches the rings (or finds them failing) until the device runs again.
        self.mark_pairs(PairState::Resetting);
        self.reset_wanted().store(false, Ordering::Release);
        let reset = self.reset_device();
        self.mark_pairs(match reset {
            Ok(()) => PairState::Running,
            Err(_) => PairState::GivenUp,
        });
        reset
    }

    /// Tells every pair (and so its own handle) where the device is.
    fn mark_pairs(&self, state: PairState) {
        for pair in self.pairs() {
            pair.lock().as_mut().state = state;
        }
    }
}

/// Pair `queue` of a device's `pairs` (its `NetDevice` queue `queue`), or
/// [`DeviceError::NoSuchQueue`].
pub fn pair_at<P>(
    pairs: &[Arc<spin::Mutex<P>>],
    queue: usize,
) -> Result<&spin::Mutex<P>, DeviceError> {
    pairs
        .get(queue)
        .map(|pair| &**pair)
        .ok_or(DeviceError::NoSuchQueue(queue))
}

/// One handle per pair of `pairs`, each an interface of one queue: `info` with one
/// queue and the pair's index ([`NetInfo::pair`]). `no_wake` says why a handle's own `wake_on_receive` is refused
/// ([`DeviceError::Unsupported`]): the wake-up is the device's, armed through it or
/// through the lease.
pub fn split<P: QueuePair + 'static>(
    pairs: &[Arc<spin::Mutex<P>>],
    layout: P::Layout,
    mut info: NetInfo,
    no_wake: &'static str,
) -> Vec<Box<dyn NetDevice>> {
    info.queues = 1;
    pairs
        .iter()
        .enumerate()
        .map(|(index, pair)| {
            Box::new(PairHandle {
                pair: pair.clone(),
                layout,
                info: NetInfo {
                    pair: Some(index),
                    ..info.clone()
                },
                no_wake,
            }) as Box<dyn NetDevice>
        })
        .collect()
}

/// One pair of a device as an interface of one queue ([`split`]).
struct PairHandle<P: QueuePair> {
    /// The pair, shared with the device.
    pair: Arc<spin::Mutex<P>>,
    /// Its frames' layout.
    layout: P::Layout,
    /// The interface as it was when split, with one queue.
    info: NetInfo,
    /// Why the handle's own `wake_on_receive` is refused.
    no_wake: &'static str,
}

impl<P: QueuePair> PairHandle<P> {
    /// The pair, for queue 0 (its only one).
    fn queue(&self, queue: usize) -> Result<spin::MutexGuard<'_, P>, DeviceError> {
        Ok(pair_at(core::slice::from_ref(&self.pair), queue)?.lock())
    }
}

impl<P: QueuePair> NetDevice for PairHandle<P> {
    fn info(&self) -> NetInfo {
        self.info.clone()
    }

    fn receive(
        &mut self,
        queue: usize,
        budget: usize,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, DeviceError> {
        self.queue(queue)?.receive(self.layout, budget, deliver)
    }

    fn send_segments(
        &mut self,
        queue: usize,
        segments: &[usize],
        offload: bool,
        fill: &mut dyn FnMut(&mut [&mut [u8]]) -> bool,
    ) -> Result<(), DeviceError> {
        self.queue(queue)?
            .send_segments(self.layout, segments, offload, fill)
    }

    fn send_tcp_segmented(
        &mut self,
        queue: usize,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> Option<usize>,
    ) -> Result<(), DeviceError> {
        self.queue(queue)?
            .send_tcp_segmented(self.layout, len, fill)
    }

    fn transmit_pending(&mut self, queue: usize) -> Result<usize, DeviceError> {
        self.queue(queue)?.transmit_pending(self.layout)
    }

    /// The wake-up is the device's (its interrupt registers and MSI-X table): armed
    /// through the device, or through the lease that handed this handle out.
    fn wake_on_receive(&mut self, _queue: usize, _core: Option<usize>) -> Result<(), DeviceError> {
        Err(DeviceError::Unsupported(self.no_wake))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// A pair that hands out frames of its own number and counts what it sent.
    struct Numbered {
        number: u8,
        sent: usize,
    }

    impl QueuePair for Numbered {
        type Layout = u8;
        fn receive(
            &mut self,
            layout: u8,
            budget: usize,
            deliver: &mut dyn FnMut(&[u8]),
        ) -> Result<usize, DeviceError> {
            for _ in 0..budget {
                deliver(&[self.number, layout]);
            }
            Ok(budget)
        }
        fn send_segments(
            &mut self,
            _layout: u8,
            segments: &[usize],
            _offload: bool,
            fill: &mut dyn FnMut(&mut [&mut [u8]]) -> bool,
        ) -> Result<(), DeviceError> {
            let mut frame = vec![0u8; segments.iter().sum()];
            if !fill(&mut [frame.as_mut_slice()]) {
                return Err(DeviceError::Withdrawn);
            }
            self.sent += 1;
            Ok(())
        }
        fn transmit_pending(&mut self, _layout: u8) -> Result<usize, DeviceError> {
            Ok(self.sent)
        }
    }

    fn pairs(count: u8) -> Vec<Arc<spin::Mutex<Numbered>>> {
        (0..count)
            .map(|number| Arc::new(spin::Mutex::new(Numbered { number, sent: 0 })))
            .collect()
    }

    fn info(queues: usize) -> NetInfo {
        NetInfo {
            mac: [2, 0, 0, 0, 0, 1],
            max_frame: rexo_api::device::ETHERNET_MAX_FRAME,
            queues,
            link_up: true,
            checksum_offload: false,
            tcp_segmentation: None,
            receive_steering: None,
            pair: None,
        }
    }

    #[test]
    fn a_device_queue_past_its_pairs_is_no_such_queue() {
        let pairs = pairs(2);
        assert!(pair_at(&pairs, 1).is_ok_and(|pair| pair.lock().number == 1));
        assert!(matches!(
            pair_at(&pairs, 2),
            Err(DeviceError::NoSuchQueue(2))
        ));
        assert!(matches!(
            pair_at(&pairs[..0], 0),
            Err(DeviceError::NoSuchQueue(0))
        ));
    }

    #[test]
    fn each_handle_is_its_own_pair_as_queue_zero_of_one() {
        let pairs = pairs(3);
        let mut handles = split(&pairs, 7, info(3), "the device's");
        assert_eq!(handles.len(), 3);
        for (number, handle) in handles.iter_mut().enumerate() {
            assert_eq!(handle.info().queues, 1);
            let mut frames = Vec::new();
            assert_eq!(
                handle.receive(0, 2, &mut |f| frames.push(f.to_vec())),
                Ok(2)
            );
            assert_eq!(frames, vec![vec![number as u8, 7]; 2]);
            assert_eq!(handle.transmit(0, 60, &mut |_| {}), Ok(()));
            assert_eq!(handle.transmit_pending(0), Ok(1));
            assert!(matches!(
                handle.receive(1, 1, &mut |_| {}),
                Err(DeviceError::NoSuchQueue(1))
            ));
            assert!(matches!(
                handle.wake_on_receive(0, None),
                Err(DeviceError::Unsupported("the device's"))
            ));
        }
        // The handles share the device's pairs: what a handle sent, the device's pair counts.
        assert!(pairs.iter().all(|pair| pair.lock().sent == 1));
    }
}
