//! smoltcp's `phy::Device` over a Rexo [`NetDevice`], in two halves, because of how
//! the two token models meet:
//!
//! - Rexo lends a received frame only inside `NetDevice::receive`'s `deliver` closure
//!   (it lives in the driver's DMA buffer, which goes back to the device afterwards), and
//!   the `NetDevice` is borrowed mutably for the whole call.
//! - smoltcp's `Device::receive` hands out a receive token *and* a transmit token, and
//!   sends the reply to a frame (an ARP reply, an ICMP echo reply, a TCP RST or ACK) from
//!   inside the receive token's `consume`, before that returns.
//!
//! So a receive token that reads the frame in place from the NIC cannot come with a
//! transmit token that writes to the same NIC: both would need the `&mut dyn NetDevice`
//! at once. Of the two ways out, copying every received frame into a buffer before
//! smoltcp sees it, or receiving in place and copying only the replies made *while* a
//! frame is being processed, the second is taken: [`LentFrame`] wraps one frame lent by
//! the driver and gives smoltcp a [`ReplyToken`] that writes into [`Staging`]; the staged
//! replies go to the NIC (one copy each) as soon as `NetDevice::receive` returns. Replies
//! made during receive are small (ARP 42 bytes, a TCP ACK or RST 54 bytes) except ICMP
//! echo replies, while received frames are as large as the sender makes them, so this
//! copies far fewer bytes. [`Counters`] records both: in QEMU (netdemo, 500 echo
//! connections and a 10 MiB echo) 16.8 MB were received in place and 14 KB of replies
//! copied, where copying each received frame would have copied all 16.8 MB. Everything the sockets send on their own (data, delayed ACKs,
//! retransmissions, DHCP, ARP requests) goes through [`NicTx`], whose token lets smoltcp
//! build the frame in place in the transmit DMA buffer: no copy.

use alloc::vec::Vec;

use rexo_api::{DeviceError, NetDevice};

use crate::tso::{self, Tso};
use smoltcp::phy::{self, DeviceCapabilities};
use smoltcp::time::Instant;

/// What the adapter moved and dropped, for the app's statistics and for measuring the
/// cost of the reply copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames the NIC delivered (all handed to smoltcp in place).
    pub rx_frames: u64,
    /// Bytes of those frames.
    pub rx_bytes: u64,
    /// Frames sent, built in place or copied from staging.
    pub tx_frames: u64,
    /// Bytes of those frames.
    pub tx_bytes: u64,
    /// Replies made while a received frame was processed, copied from staging to the NIC.
    pub replies_copied: u64,
    /// Bytes of those replies: the only bytes the adapter copies.
    pub reply_bytes_copied: u64,
    /// Frames lost because the transmit ring was full or the NIC refused them (the
    /// protocols recover: TCP retransmits, ARP and DHCP ask again).
    pub tx_dropped: u64,
    /// Handshakes left unfinished past the grace time, their sockets given back to
    /// listening for new SYNs (a SYN flood's spoofed connections).
    pub half_open_recycled: u64,
    /// Large TCP segments the NIC took to cut into MTU-sized ones (segmentation
    /// offload; counted in `tx_frames` too).
    pub segmented_by_nic: u64,
    /// Large TCP segments cut by the stack instead, because the NIC's buffers for them
    /// were all in flight (each of their frames counted in `tx_frames`).
    pub segmented_by_stack: u64,
}

/// Sends a frame `fill` writes on `queue`: through the NIC's checksum offload with
/// `offload` (the stack then leaves TCP and UDP checksums zero for the NIC to compute).
/// With `clamp` (segmentation offload on), a SYN's MSS option goes out as this end's
/// real MSS.
fn send(
    nic: &mut dyn NetDevice,
    queue: usize,
    len: usize,
    offload: bool,
    clamp: Option<u16>,
    fill: &mut dyn FnMut(&mut [u8]),
) -> Result<(), DeviceError> {
    nic.send_frame(queue, len, offload, &mut |buffer| {
        fill(buffer);
        if let Some(mss) = clamp {
            tso::clamp_syn(buffer, mss);
        }
        true
    })
}

/// Whether `capabilities` leave transport checksums to the NIC.
pub(crate) fn offloads(capabilities: &DeviceCapabilities) -> bool {
    !capabilities.checksum.tcp.tx()
}

/// Replies smoltcp wrote while frames were lent by the driver, waiting for the NIC to be
/// free. Bounded: at most one reply per received frame, and the stack receives at most a
/// batch of frames per `NetDevice::receive` call.
pub(crate) struct Staging {
    /// The replies, back to back.
    bytes: Vec<u8>,
    /// The length of each reply in `bytes`, in order.
    lengths: Vec<usize>,
    /// This end's real MSS, with segmentation offload (see [`send`]).
    clamp: Option<u16>,
}

impl Staging {
    /// Room for `frames` replies of up to `max_frame` bytes without reallocating.
    /// `clamp`: see [`send`].
    pub(crate) fn new(frames: usize, max_frame: usize, clamp: Option<u16>) -> Self {
        Self {
            bytes: Vec::with_capacity(frames * max_frame),
            lengths: Vec::with_capacity(frames),
            clamp,
        }
    }

    /// Sends every staged reply on `queue`, in order, and empties the staging area. A
    /// reply the NIC refuses (its ring full) is dropped and counted.
    pub(crate) fn flush(
        &mut self,
        nic: &mut dyn NetDevice,
        queue: usize,
        offload: bool,
        counters: &mut Counters,
    ) -> Result<(), DeviceError> {
        let mut at = 0;
        let mut outcome = Ok(());
        for &len in &self.lengths {
            let reply = &self.bytes[at..at + len];
            at += len;
            match send(nic, queue, len, offload, self.clamp, &mut |buffer| {
                buffer.copy_from_slice(reply)
            }) {
                Ok(()) => {
                    counters.tx_frames += 1;
                    counters.tx_bytes += len as u64;
                    counters.replies_copied += 1;
                    counters.reply_bytes_copied += len as u64;
                }
                Err(DeviceError::Revoked) => outcome = Err(DeviceError::Revoked),
                Err(_) => counters.tx_dropped += 1,
            }
        }
        self.bytes.clear();
        self.lengths.clear();
        outcome
    }
}

/// One received frame, lent by the driver for the time of one `deliver` call, as a
/// smoltcp device that yields it once.
pub(crate) struct LentFrame<'frame, 'staging> {
    /// The frame, until smoltcp takes it.
    pub(crate) frame: Option<&'frame [u8]>,
    /// Where replies go.
    pub(crate) staging: &'staging mut Staging,
    /// The real device's capabilities (smoltcp reads them for every frame it builds).
    pub(crate) capabilities: DeviceCapabilities,
}

impl phy::Device for LentFrame<'_, '_> {
    type RxToken<'a>
        = FrameToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = ReplyToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(FrameToken<'_>, ReplyToken<'_>)> {
        let frame = self.frame.take()?;
        Some((
            FrameToken(frame),
            ReplyToken {
                staging: self.staging,
            },
        ))
    }

    /// smoltcp sends during receive only through the token paired with the frame; it
    /// asks for a separate one only when sockets send, which the stack does through
    /// [`NicTx`] after the frame is given back.
    fn transmit(&mut self, _now: Instant) -> Option<ReplyToken<'_>> {
        None
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.capabilities.clone()
    }
}

/// A received frame, read in place.
pub(crate) struct FrameToken<'a>(&'a [u8]);

impl phy::RxToken for FrameToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.0)
    }
}

/// A reply to the frame being processed, written to [`Staging`].
pub(crate) struct ReplyToken<'a> {
    /// Where it goes.
    staging: &'a mut Staging,
}

impl phy::TxToken for ReplyToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let start = self.staging.bytes.len();
        self.staging.bytes.resize(start + len, 0);
        let result = f(&mut self.staging.bytes[start..]);
        self.staging.lengths.push(len);
        result
    }
}

/// The NIC's transmit side as a smoltcp device: frames are built in place in the
/// transmit DMA buffer.
pub(crate) struct NicTx<'a> {
    /// The NIC.
    pub(crate) nic: &'a mut dyn NetDevice,
    /// The queue sent on.
    pub(crate) queue: usize,
    /// The counters.
    pub(crate) counters: &'a mut Counters,
    /// How many frames the transmit ring holds, learnt the first time it was full:
    /// the NIC does not say, and handing smoltcp a token that then fails loses a frame
    /// smoltcp believes sent (TCP must then wait for a retransmission).
    pub(crate) ring_capacity: &'a mut Option<usize>,
    /// Where a frame goes when the NIC refuses it (smoltcp's closure must still run).
    pub(crate) discard: &'a mut Vec<u8>,
    /// The NIC's capabilities.
    pub(crate) capabilities: DeviceCapabilities,
    /// The largest frame the link carries: longer ones go to the NIC to segment.
    pub(crate) max_frame: usize,
    /// Segmentation offload, when the NIC has it.
    pub(crate) tso: Option<&'a Tso>,
}

impl phy::Device for NicTx<'_> {
    type RxToken<'a>
        = FrameToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = NicTxToken<'a>
    where
        Self: 'a;

    /// Frames are received through [`LentFrame`] only.
    fn receive(&mut self, _now: Instant) -> Option<(FrameToken<'_>, NicTxToken<'_>)> {
        None
    }

    fn transmit(&mut self, _now: Instant) -> Option<NicTxToken<'_>> {
        if let Some(capacity) = *self.ring_capacity {
            // Asking reclaims finished buffers; a full ring makes smoltcp keep the data
            // in the socket and try again at the next poll.
            match self.nic.transmit_pending(self.queue) {
                Ok(pending) if pending < capacity => {}
                _ => return None,
            }
        }
        Some(NicTxToken {
            offload: offloads(&self.capabilities),
            nic: &mut *self.nic,
            queue: self.queue,
            counters: &mut *self.counters,
            ring_capacity: &mut *self.ring_capacity,
            discard: &mut *self.discard,
            max_frame: self.max_frame,
            tso: self.tso,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.capabilities.clone()
    }
}

/// One frame to build in place in a transmit DMA buffer.
pub(crate) struct NicTxToken<'a> {
    /// The NIC.
    nic: &'a mut dyn NetDevice,
    /// The queue.
    queue: usize,
    /// The counters.
    counters: &'a mut Counters,
    /// See [`NicTx::ring_capacity`].
    ring_capacity: &'a mut Option<usize>,
    /// See [`NicTx::discard`].
    discard: &'a mut Vec<u8>,
    /// The NIC computes the transport checksums.
    offload: bool,
    /// See [`NicTx::max_frame`].
    max_frame: usize,
    /// See [`NicTx::tso`].
    tso: Option<&'a Tso>,
}

impl phy::TxToken for NicTxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let mut build = Some(f);
        let mut result = None;
        let mut fill = |buffer: &mut [u8]| {
            if let Some(build) = build.take() {
                result = Some(build(buffer));
            }
        };
        let sent = match self.tso {
            Some(tso) if len > self.max_frame => {
                let sent = self.nic.send_tcp_segmented(self.queue, len, &mut |buffer| {
                    fill(buffer);
                    tso.mss_of(buffer)
                });
                if sent.is_ok() {
                    self.counters.segmented_by_nic += 1;
                }
                sent
            }
            tso => send(
                self.nic,
                self.queue,
                len,
                self.offload,
                tso.map(|tso| tso.local_mss),
                &mut fill,
            ),
        };
        if let (Err(DeviceError::QueueFull), Some(tso), None) = (sent, self.tso, &result) {
            // Every buffer for large segments is in flight: cut this one here, into
            // frames the small buffers take.
            self.discard.clear();
            self.discard.resize(len, 0);
            let result = build.take().map(|build| build(self.discard));
            let (nic, queue, counters) = (&mut *self.nic, self.queue, &mut *self.counters);
            let Some(mss) = tso.mss_of(self.discard) else {
                counters.tx_dropped += 1;
                return result.unwrap_or_else(|| unreachable!("the frame was built"));
            };
            counters.segmented_by_stack += 1;
            tso::segment(self.discard, mss, &mut |frame| match send(
                nic,
                queue,
                frame.len(),
                false,
                None,
                &mut |buffer| buffer.copy_from_slice(frame),
            ) {
                Ok(()) => {
                    counters.tx_frames += 1;
                    counters.tx_bytes += frame.len() as u64;
                }
                Err(_) => counters.tx_dropped += 1,
            });
            // `build` ran just above, once.
            return result.unwrap_or_else(|| unreachable!("the frame was built"));
        }
        match sent {
            Ok(()) => {
                self.counters.tx_frames += 1;
                self.counters.tx_bytes += len as u64;
            }
            Err(error) => {
                self.counters.tx_dropped += 1;
                if error == DeviceError::QueueFull && self.ring_capacity.is_none() {
                    *self.ring_capacity = self.nic.transmit_pending(self.queue).ok();
                }
            }
        }
        match (result, build) {
            (Some(result), _) => result,
            (None, Some(build)) => {
                self.discard.clear();
                self.discard.resize(len, 0);
                build(self.discard)
            }
            // The NIC calls `fill` at most once, and `build` was taken only there.
            (None, None) => unreachable!("the frame was built but gave no result"),
        }
    }
}
