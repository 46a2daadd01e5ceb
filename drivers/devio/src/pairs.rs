//! One queue pair of a network interface handed out on its own
//! ([`NetDevice::split_queues`]): a `PairHandle` holds the pair behind the pair's own
//! lock, which only the core driving that pair takes on the frame path, and answers as
//! an interface of one queue. The drivers that split (virtio-net, e1000e) implement
//! [`QueuePair`] for their pair's frame path and share this handle.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;

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

/// One handle per pair of `pairs`, each an interface of one queue: `info` with one
/// queue. `no_wake` says why a handle's own `wake_on_receive` is refused
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
        .map(|pair| {
            Box::new(PairHandle {
                pair: pair.clone(),
                layout,
                info: info.clone(),
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
        match queue {
            0 => Ok(self.pair.lock()),
            _ => Err(DeviceError::NoSuchQueue(queue)),
        }
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
