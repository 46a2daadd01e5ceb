//! `netcheck`: frames both ways on every network interface.

use alloc::format;
use alloc::string::String;
use alloc::vec;

use rexo_api::{ApiError, DeviceError, DeviceInfo, DeviceKind, Kernel, MAX_SEGMENTS, NetDevice};

use crate::pattern::{self, ETHERTYPE_FROM_PEER, ETHERTYPE_FROM_REXO, FRAMES};

/// How long the peer may stay silent before the check gives up.
const SILENCE_NS: u64 = 20_000_000_000;

/// The app's entry point.
pub fn main(kernel: &Kernel) -> Result<(), ApiError> {
    on_every_nic(kernel, "netcheck", &mut |device, nic| {
        kernel.log(format_args!(
            "netcheck: nic {}: {} at {}: {}",
            device.index, device.driver, device.address, device.about
        ));
        check(kernel, nic)
    })
}

/// Opens every network interface in turn and runs `check` on it; logs `APP: nic N:
/// FAILED: why` for each that fails (one that cannot be opened, held by another app,
/// too, and the others are still checked), then `APP: done, N interface(s)` (with `, FAILED`
/// if one did), and fails if one did or there is none.
pub(crate) fn on_every_nic(
    kernel: &Kernel,
    app: &str,
    check: &mut dyn FnMut(&DeviceInfo, &mut dyn NetDevice) -> Result<(), String>,
) -> Result<(), ApiError> {
    let nics = kernel
        .devices()
        .into_iter()
        .filter(|d| d.kind == DeviceKind::Net);
    let mut failed = false;
    let mut count = 0;
    for device in nics {
        count += 1;
        let checked = kernel
            .open_net(device.index)
            .map_err(|error| format!("opening it: {error}"))
            .and_then(|mut nic| check(&device, nic.as_mut()));
        if let Err(why) = checked {
            kernel.log(format_args!("{app}: nic {}: FAILED: {why}", device.index));
            failed = true;
        }
    }
    if count == 0 {
        kernel.log(format_args!("{app}: FAILED: no network interface"));
        return Err(ApiError::NoSuchDevice);
    }
    kernel.log(format_args!(
        "{app}: done, {count} interface(s){}",
        if failed { ", FAILED" } else { "" }
    ));
    if failed {
        Err(ApiError::AppFailed(1))
    } else {
        Ok(())
    }
}

/// Takes `frame`, received while the peer's frame `seq` is expected, into `echo` (the
/// device's largest frame long) to be sent back: its length, or `None` for a frame that
/// is not the test's (the host's own traffic, ignored). One that differs from frame
/// `seq` is echoed all the same, `wrong` saying how (the first difference kept); one
/// longer than `echo` is refused, naming both lengths.
fn take_peer_frame(
    frame: &[u8],
    seq: u32,
    echo: &mut [u8],
    wrong: &mut Option<String>,
) -> Result<Option<usize>, String> {
    if frame.len() < pattern::HEADER || frame[12..14] != ETHERTYPE_FROM_PEER.to_be_bytes() {
        return Ok(None);
    }
    let Some(copy) = echo.get_mut(..frame.len()) else {
        return Err(format!(
            "received a {}-byte frame, past the device's largest ({} bytes)",
            frame.len(),
            echo.len()
        ));
    };
    if let Some(why) = pattern::check_frame(frame, seq, ETHERTYPE_FROM_PEER) {
        wrong.get_or_insert(why);
    }
    copy.copy_from_slice(frame);
    Ok(Some(frame.len()))
}

/// Sends one frame on `queue`, retrying while its ring is full (up to a second).
pub(crate) fn send(
    kernel: &Kernel,
    nic: &mut dyn NetDevice,
    queue: usize,
    len: usize,
    fill: &mut dyn FnMut(&mut [u8]),
) -> Result<(), String> {
    let start = kernel.now_ns();
    loop {
        match nic.transmit(queue, len, fill) {
            Ok(()) => return Ok(()),
            Err(DeviceError::QueueFull) if kernel.now_ns() - start < 1_000_000_000 => {
                core::hint::spin_loop()
            }
            Err(error) => {
                return Err(format!(
                    "sending a {len}-byte frame on queue {queue}: {error}"
                ));
            }
        }
    }
}

/// Sends one frame on queue 0 gathered from `segments`, retrying while the ring is full
/// (up to a second).
fn send_gather(
    kernel: &Kernel,
    nic: &mut dyn NetDevice,
    segments: &[usize],
    fill: &mut dyn FnMut(&mut [&mut [u8]]),
) -> Result<(), String> {
    let start = kernel.now_ns();
    loop {
        match nic.transmit_gather(0, segments, fill) {
            Ok(()) => return Ok(()),
            Err(DeviceError::QueueFull) if kernel.now_ns() - start < 1_000_000_000 => {
                core::hint::spin_loop()
            }
            Err(error) => {
                return Err(format!("sending a frame in segments {segments:?}: {error}"));
            }
        }
    }
}

/// The longest nap between frames when the device can wake the core.
const NAP_NS: u64 = 200_000_000;

/// How long the device may take to finish sending what is queued.
const DRAIN_NS: u64 = 5_000_000_000;

/// Waits until the device has finished with every queued frame (up to [`DRAIN_NS`]):
/// a frame handed to `transmit` is only on the wire once the device is done with it, and
/// an app that returns earlier may see its last frames dropped with the device.
fn drain(kernel: &Kernel, nic: &mut dyn NetDevice) -> Result<(), String> {
    let start = kernel.now_ns();
    loop {
        match nic.transmit_pending(0) {
            Ok(0) => return Ok(()),
            Ok(left) if kernel.now_ns() - start > DRAIN_NS => {
                return Err(format!("{left} frames still queued after 5 s"));
            }
            Ok(_) => core::hint::spin_loop(),
            Err(error) => return Err(format!("waiting for the transmit queue: {error}")),
        }
    }
}

/// The three steps on one interface.
fn check(kernel: &Kernel, nic: &mut dyn NetDevice) -> Result<(), String> {
    let info = nic.info();
    let mac = info.mac;
    let index_note = format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
    );
    // 1. Frames to the peer.
    let start = kernel.now_ns();
    for seq in 0..FRAMES {
        let len = pattern::frame_len(seq);
        if seq % 2 == 1 {
            // Every other frame gathered from segments written apart.
            let segments = pattern::segments(seq, len);
            send_gather(kernel, nic, &segments, &mut |parts| {
                pattern::fill_segments(parts, seq, mac, ETHERTYPE_FROM_REXO)
            })?;
            continue;
        }
        send(kernel, nic, 0, len, &mut |frame| {
            pattern::fill_frame(frame, seq, mac, ETHERTYPE_FROM_REXO)
        })?;
    }
    drain(kernel, nic)?;
    let sent_us = (kernel.now_ns() - start) / 1000;
    kernel.log(format_args!(
        "netcheck: {index_note}: sent {FRAMES} frames of 60-1514 bytes in {sent_us} us, {} of them gathered from 2-5 segments",
        FRAMES / 2
    ));
    // 2. Bad frames are refused, and nothing is sent.
    let too_long = info.max_frame + 1;
    match nic.transmit(0, too_long, &mut |_| {}) {
        Err(error @ DeviceError::TooLong { .. }) => kernel.log(format_args!(
            "netcheck: {index_note}: {too_long}-byte frame refused: {error}"
        )),
        other => {
            return Err(format!(
                "a {too_long}-byte frame was not refused: {other:?}"
            ));
        }
    }
    match nic.transmit(0, 10, &mut |_| {}) {
        Err(error @ DeviceError::TooShort { .. }) => kernel.log(format_args!(
            "netcheck: {index_note}: 10-byte frame refused: {error}"
        )),
        other => return Err(format!("a 10-byte frame was not refused: {other:?}")),
    }
    let nine = [60; MAX_SEGMENTS + 1];
    match nic.transmit_gather(0, &nine, &mut |_| {}) {
        Err(error @ DeviceError::TooManySegments { .. }) => kernel.log(format_args!(
            "netcheck: {index_note}: gathered frame refused: {error}"
        )),
        other => return Err(format!("a frame in 9 segments was not refused: {other:?}")),
    }
    let over = [701, info.max_frame + 1 - 701];
    match nic.transmit_gather(0, &over, &mut |_| {}) {
        Err(error @ DeviceError::TooLong { .. }) => kernel.log(format_args!(
            "netcheck: {index_note}: gathered frame refused: {error}"
        )),
        other => {
            return Err(format!(
                "a gathered {too_long}-byte frame was not refused: {other:?}"
            ));
        }
    }
    // 3. The peer's frames, checked and echoed. Between frames the core sleeps when the
    // device can wake it (MSI-X), else it polls.
    let waking = nic.wake_on_receive(0, Some(kernel.core_index()));
    if let Err(error) = waking {
        kernel.log(format_args!(
            "netcheck: {index_note}: polling between frames: {error}"
        ));
    }
    let (mut naps, mut napped_ns, mut armed) = (0u64, 0u64, false);
    let mut received = 0u32;
    let mut wrong: Option<String> = None;
    let mut last = kernel.now_ns();
    let mut echo = vec![0u8; info.max_frame];
    while received < FRAMES {
        let mut taken = Ok(None);
        let got = nic
            .receive(0, 1, &mut |frame| {
                taken = take_peer_frame(frame, received, &mut echo, &mut wrong);
            })
            .map_err(|error| format!("receiving: {error}"))?;
        if let Some(len) = taken? {
            received += 1;
            send(kernel, nic, 0, len, &mut |frame| {
                frame.copy_from_slice(&echo[..len])
            })?;
            last = kernel.now_ns();
        } else if got == 0 && kernel.now_ns() - last > SILENCE_NS {
            return Err(format!("the peer went silent after {received} frames"));
        } else if got == 0 && waking.is_ok() && !armed {
            // Armed again before every nap (a wake may have been spent on an earlier
            // frame), then the ring is looked at once more before sleeping.
            nic.wake_on_receive(0, Some(kernel.core_index()))
                .map_err(|error| format!("arming the wake-up: {error}"))?;
            armed = true;
        } else if got == 0 && armed {
            let before = kernel.now_ns();
            kernel.sleep_ns(NAP_NS);
            naps += 1;
            napped_ns += kernel.now_ns() - before;
            armed = false;
        }
    }
    if waking.is_ok() {
        nic.wake_on_receive(0, None)
            .map_err(|error| format!("stopping wake-ups: {error}"))?;
        let average_us = napped_ns / naps.max(1) / 1000;
        kernel.log(format_args!(
            "netcheck: {index_note}: slept {naps} times between frames, {average_us} us on average (naps of up to {} ms)",
            NAP_NS / 1_000_000
        ));
        // Without the device's wake message every nap would last its full length.
        if naps > 0 && napped_ns / naps > NAP_NS / 2 {
            return Err(format!(
                "the device's interrupt did not wake the core ({average_us} us per nap)"
            ));
        }
    }
    if let Some(why) = wrong {
        return Err(format!("a received frame differs: {why}"));
    }
    drain(kernel, nic)?;
    kernel.log(format_args!(
        "netcheck: {index_note}: received {received} frames byte-exact, echoed {received}"
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The peer's frame `seq`, `len` bytes long (its pattern cut or carried on).
    fn peer_frame(seq: u32, len: usize) -> Vec<u8> {
        let mut frame = vec![0u8; len.max(pattern::frame_len(seq))];
        pattern::fill_frame(
            &mut frame[..pattern::frame_len(seq)],
            seq,
            [2; 6],
            ETHERTYPE_FROM_PEER,
        );
        frame.truncate(len);
        frame
    }

    /// A frame longer than the device's largest is refused with both lengths named, the
    /// echo left as it was: the echo was a 1514-byte array, and copying a longer frame
    /// into it panicked. The test's frames are echoed whole, one that differs with why
    /// kept, and other traffic ignored.
    #[test]
    fn the_peers_frames_are_taken_for_the_echo_up_to_the_devices_largest() {
        let mut echo = vec![0u8; 1514];
        let mut wrong = None;
        let seq = (0..FRAMES)
            .find(|&s| pattern::frame_len(s) == 1514)
            .unwrap();
        let longest = peer_frame(seq, 1514);
        assert_eq!(
            take_peer_frame(&longest, seq, &mut echo, &mut wrong),
            Ok(Some(1514))
        );
        assert_eq!(
            (echo.as_slice(), wrong.as_ref()),
            (longest.as_slice(), None)
        );
        let too_long = peer_frame(seq, 1515);
        assert_eq!(
            take_peer_frame(&too_long, seq, &mut echo, &mut wrong),
            Err(String::from(
                "received a 1515-byte frame, past the device's largest (1514 bytes)"
            ))
        );
        assert_eq!(echo, longest);
        let short = peer_frame(seq, 100);
        assert_eq!(
            take_peer_frame(&short, seq, &mut echo, &mut wrong),
            Ok(Some(100))
        );
        assert!(wrong.is_some_and(|why| why.contains("100 bytes, expected 1514")));
        let mut other = short.clone();
        other[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        assert_eq!(take_peer_frame(&other, seq, &mut echo, &mut None), Ok(None));
    }
}
