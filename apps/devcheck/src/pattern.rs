//! What the checks send and write, shared with the host side of the tests.

/// Frames each way per interface.
pub const FRAMES: u32 = 2000;

/// The EtherType of frames Rexo sends (IEEE 802 local experimental 1).
pub const ETHERTYPE_FROM_REXO: u16 = 0x88B5;
/// The EtherType of frames the peer sends, and of Rexo's echoes of them (experimental 2).
pub const ETHERTYPE_FROM_PEER: u16 = 0x88B6;

/// Bytes of an Ethernet header.
pub const HEADER: usize = 14;

/// The length of frame `seq`: 60, 1514, then sizes spread between.
pub fn frame_len(seq: u32) -> usize {
    match seq % 3 {
        0 => 60,
        1 => 1514,
        _ => 60 + (seq as usize * 7919) % (1514 - 60 + 1),
    }
}

/// Fills `frame` (of [`frame_len`]`(seq)` bytes) as frame `seq`: broadcast destination,
/// source `mac`, `ethertype`, then the sequence number and a pattern of `seq`.
pub fn fill_frame(frame: &mut [u8], seq: u32, mac: [u8; 6], ethertype: u16) {
    frame[..6].copy_from_slice(&[0xFF; 6]);
    frame[6..12].copy_from_slice(&mac);
    frame[12..14].copy_from_slice(&ethertype.to_be_bytes());
    frame[14..18].copy_from_slice(&seq.to_be_bytes());
    for (i, byte) in frame.iter_mut().enumerate().skip(18) {
        *byte = payload_byte(seq, i);
    }
}

/// Writes frame `seq` (as [`fill_frame`]) across `parts`, the frame's segments in
/// order: each byte from its position in the whole frame.
pub fn fill_segments(parts: &mut [&mut [u8]], seq: u32, mac: [u8; 6], ethertype: u16) {
    let mut header = [0u8; 18];
    header[..6].copy_from_slice(&[0xFF; 6]);
    header[6..12].copy_from_slice(&mac);
    header[12..14].copy_from_slice(&ethertype.to_be_bytes());
    header[14..18].copy_from_slice(&seq.to_be_bytes());
    let bytes = parts.iter_mut().flat_map(|part| part.iter_mut());
    for (i, byte) in bytes.enumerate() {
        *byte = header
            .get(i)
            .copied()
            .unwrap_or_else(|| payload_byte(seq, i));
    }
}

/// The segment lengths a gathered send of frame `seq` (of `len` bytes, at least 60)
/// uses: 2 to 5 segments, every one but the last of odd length (so the cuts fall at odd
/// and even offsets, inside the header and the payload), the first the 14-byte
/// Ethernet header alone for every fourth frame.
pub fn segments(seq: u32, len: usize) -> alloc::vec::Vec<usize> {
    let count = 2 + (seq as usize / 2) % 4;
    let mut lens = alloc::vec::Vec::with_capacity(count);
    let mut at = 0;
    for i in 0..count - 1 {
        let share = if i == 0 && seq % 4 == 1 {
            HEADER
        } else {
            ((len - at) / (count - i)) | 1
        };
        lens.push(share);
        at += share;
    }
    lens.push(len - at);
    lens
}

/// Byte `i` (from 18) of frame `seq`.
fn payload_byte(seq: u32, i: usize) -> u8 {
    (seq as usize * 31 + i * 7 + (i >> 8)) as u8
}

/// Checks `frame` is frame `seq` of `ethertype` (any source): `None` when it is, else
/// what differs.
pub fn check_frame(frame: &[u8], seq: u32, ethertype: u16) -> Option<alloc::string::String> {
    let want = frame_len(seq);
    if frame.len() != want {
        return Some(alloc::format!(
            "frame {seq}: {} bytes, expected {want}",
            frame.len()
        ));
    }
    if frame[12..14] != ethertype.to_be_bytes() {
        return Some(alloc::format!(
            "frame {seq}: EtherType {:02x}{:02x}",
            frame[12],
            frame[13]
        ));
    }
    if frame[14..18] != seq.to_be_bytes() {
        let got = u32::from_be_bytes([frame[14], frame[15], frame[16], frame[17]]);
        return Some(alloc::format!("frame {seq}: carries sequence number {got}"));
    }
    let bad = (18..frame.len()).find(|&i| frame[i] != payload_byte(seq, i));
    bad.map(|i| {
        alloc::format!(
            "frame {seq}: byte {i} is {:#04x}, expected {:#04x}",
            frame[i],
            payload_byte(seq, i)
        )
    })
}

/// Frames Rexo sends on each transmit queue in the multi-queue check (`netqueues`).
pub const QUEUE_FRAMES: u32 = 300;

/// The sequence number `netqueues` gives frame `i` of transmit queue `queue`: the queue
/// in the high 16 bits, so that the host tells the queues' frames apart.
pub fn queue_seq(queue: usize, i: u32) -> u32 {
    ((queue as u32) << 16) | i
}

/// The UDP flows the host sends `netqueues` (one source address and destination port
/// each): enough that the device's flow hash spreads them over every receive queue.
pub const FLOWS: u16 = 16;
/// The destination port of flow 0 (flow `f` goes to `FLOW_PORT + f`).
pub const FLOW_PORT: u16 = 40000;
/// The host's address of flow 0 (flow `f` comes from the next `f`). Each flow has its
/// own, since some devices hash UDP over the addresses only (the 82574's RSS).
pub const FLOW_SOURCE: [u8; 4] = [10, 0, 2, 100];

/// The host's address that flow `flow` comes from.
pub fn flow_source(flow: u16) -> [u8; 4] {
    let [a, b, c, d] = FLOW_SOURCE;
    [a, b, c, d + flow as u8]
}
const _: () = assert!(FLOW_SOURCE[3] as u16 + FLOWS < 255);
/// Datagrams per flow.
pub const DATAGRAMS_PER_FLOW: u32 = 32;
/// Datagrams the host sends in all.
pub const DATAGRAMS: u32 = FLOWS as u32 * DATAGRAMS_PER_FLOW;

/// The flow of datagram `id` (datagrams are numbered flow by flow).
pub fn datagram_flow(id: u32) -> u16 {
    (id / DATAGRAMS_PER_FLOW) as u16
}

/// The payload length of datagram `id`: 4 to 1472 bytes (a whole frame of at most 1514).
pub fn datagram_len(id: u32) -> usize {
    4 + (id as usize * 7919) % 1469
}

/// Datagrams of one flow the host sends `netqueues` while it sleeps waiting for receive
/// queue 1 (the wake-up check): ids `flow * DATAGRAMS_PER_FLOW` onwards, so at most
/// [`DATAGRAMS_PER_FLOW`].
pub const WAKE_DATAGRAMS: u32 = 20;
const _: () = assert!(WAKE_DATAGRAMS <= DATAGRAMS_PER_FLOW);
/// The sequence number of the frame (EtherType [`ETHERTYPE_FROM_REXO`]) by which
/// `netqueues` asks the host for the wake-up check's datagrams (no transmit queue's
/// frames carry it).
pub const WAKE_REQUEST: u32 = 0xFFFF_0000;

/// Fills `frame` (60 bytes) as the wake-up request for the datagrams of `flow`:
/// broadcast destination, source `mac`, [`WAKE_REQUEST`], then the flow.
pub fn fill_wake_request(frame: &mut [u8], mac: [u8; 6], flow: u16) {
    frame.fill(0);
    frame[..6].copy_from_slice(&[0xFF; 6]);
    frame[6..12].copy_from_slice(&mac);
    frame[12..14].copy_from_slice(&ETHERTYPE_FROM_REXO.to_be_bytes());
    frame[14..18].copy_from_slice(&WAKE_REQUEST.to_be_bytes());
    frame[18..20].copy_from_slice(&flow.to_be_bytes());
}

/// The flow a wake-up request of [`fill_wake_request`] asks for; `None` for any other
/// frame or a flow past the last.
pub fn wake_request_flow(frame: &[u8]) -> Option<u16> {
    if frame.len() < 20
        || frame[12..14] != ETHERTYPE_FROM_REXO.to_be_bytes()
        || frame[14..18] != WAKE_REQUEST.to_be_bytes()
    {
        return None;
    }
    Some(u16::from_be_bytes([frame[18], frame[19]])).filter(|&flow| flow < FLOWS)
}

/// Fills `payload` (of [`datagram_len`]`(id)` bytes) as datagram `id`: the id, then a
/// pattern of it.
pub fn fill_datagram(payload: &mut [u8], id: u32) {
    payload[..4].copy_from_slice(&id.to_be_bytes());
    for (i, byte) in payload.iter_mut().enumerate().skip(4) {
        *byte = payload_byte(id, i);
    }
}

/// Checks `payload` is a whole datagram of [`fill_datagram`]: its id, or what differs.
pub fn check_datagram(payload: &[u8]) -> Result<u32, alloc::string::String> {
    let Some(id) = payload.get(..4) else {
        return Err(alloc::format!("a {}-byte datagram", payload.len()));
    };
    let id = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
    if id >= DATAGRAMS {
        return Err(alloc::format!(
            "datagram id {id} (only {DATAGRAMS} are sent)"
        ));
    }
    if payload.len() != datagram_len(id) {
        return Err(alloc::format!(
            "datagram {id}: {} bytes, expected {}",
            payload.len(),
            datagram_len(id)
        ));
    }
    match (4..payload.len()).find(|&i| payload[i] != payload_byte(id, i)) {
        Some(i) => Err(alloc::format!(
            "datagram {id}: byte {i} is {:#04x}, expected {:#04x}",
            payload[i],
            payload_byte(id, i)
        )),
        None => Ok(id),
    }
}

/// Fills `data` (one sector) with the pattern of sector `lba`: the LBA (little-endian)
/// in the first 8 bytes, then bytes that depend on the LBA and the offset.
pub fn sector(lba: u64, data: &mut [u8]) {
    data[..8].copy_from_slice(&lba.to_le_bytes());
    for (i, byte) in data.iter_mut().enumerate().skip(8) {
        *byte = sector_byte(lba, i);
    }
}

/// Byte `i` (from 8) of sector `lba`.
fn sector_byte(lba: u64, i: usize) -> u8 {
    (lba.wrapping_mul(131) as usize ^ (i * 7) ^ (i >> 8)) as u8 ^ 0x5A
}

/// Checks `data` holds the pattern of sector `lba`: `None` when it does, else the
/// first byte that differs.
pub fn check_sector(lba: u64, data: &[u8]) -> Option<alloc::string::String> {
    if data[..8] != lba.to_le_bytes() {
        let mut got = [0; 8];
        got.copy_from_slice(&data[..8]);
        return Some(alloc::format!(
            "sector {lba}: holds the LBA {}",
            u64::from_le_bytes(got)
        ));
    }
    let bad = (8..data.len()).find(|&i| data[i] != sector_byte(lba, i));
    bad.map(|i| {
        alloc::format!(
            "sector {lba}: byte {i} is {:#04x}, expected {:#04x}",
            data[i],
            sector_byte(lba, i)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_check_against_themselves() {
        for id in [0, 1, 31, 32, DATAGRAMS - 1] {
            let mut payload = alloc::vec![0; datagram_len(id)];
            assert!((4..=1472).contains(&payload.len()));
            fill_datagram(&mut payload, id);
            assert_eq!(check_datagram(&payload), Ok(id));
            let last = payload.len() - 1;
            payload[last] ^= 1;
            assert!(check_datagram(&payload).is_err());
        }
        assert_eq!(datagram_flow(DATAGRAMS - 1), FLOWS - 1);
        assert!(check_datagram(&DATAGRAMS.to_be_bytes()).is_err());
        assert!(check_datagram(&[0, 0]).is_err());
        assert_eq!(queue_seq(1, 5), 0x1_0005);
        assert_eq!(flow_source(0), FLOW_SOURCE);
        assert_eq!(flow_source(FLOWS - 1), [10, 0, 2, 115]);
    }

    #[test]
    fn wake_requests_carry_their_flow() {
        let mut frame = [0u8; 60];
        fill_wake_request(&mut frame, [2, 0, 0, 0, 0, 1], 7);
        assert_eq!(wake_request_flow(&frame), Some(7));
        fill_wake_request(&mut frame, [2, 0, 0, 0, 0, 1], FLOWS);
        assert_eq!(wake_request_flow(&frame), None);
        fill_frame(
            &mut frame,
            queue_seq(1, 0),
            [2, 0, 0, 0, 0, 1],
            ETHERTYPE_FROM_REXO,
        );
        assert_eq!(wake_request_flow(&frame), None);
    }

    #[test]
    fn frames_check_against_themselves_and_not_others() {
        for seq in 0..50 {
            let mut frame = alloc::vec![0; frame_len(seq)];
            fill_frame(&mut frame, seq, [2, 0, 0, 0, 0, 1], ETHERTYPE_FROM_PEER);
            assert_eq!(check_frame(&frame, seq, ETHERTYPE_FROM_PEER), None);
            assert!(check_frame(&frame, seq, ETHERTYPE_FROM_REXO).is_some());
            frame[40] ^= 1;
            assert!(
                check_frame(&frame, seq, ETHERTYPE_FROM_PEER)
                    .unwrap()
                    .contains("byte 40")
            );
        }
        assert_eq!((frame_len(0), frame_len(1)), (60, 1514));
        assert!((0..FRAMES).all(|s| (60..=1514).contains(&frame_len(s))));
    }

    #[test]
    fn gathered_frames_match_whole_ones() {
        let mac = [2, 0, 0, 0, 0, 1];
        for seq in 0..FRAMES {
            let len = frame_len(seq);
            let lens = segments(seq, len);
            assert!((2..=5).contains(&lens.len()), "{seq}: {lens:?}");
            assert_eq!(lens.iter().sum::<usize>(), len);
            assert!(lens.iter().all(|&l| l > 0), "{seq}: {lens:?}");
            if seq % 4 == 1 {
                assert_eq!(lens[0], HEADER);
            } else {
                assert!(lens[..lens.len() - 1].iter().all(|l| l % 2 == 1));
            }
            let mut whole = alloc::vec![0; len];
            fill_frame(&mut whole, seq, mac, ETHERTYPE_FROM_REXO);
            let mut gathered = alloc::vec![0xAA; len];
            let mut rest = &mut gathered[..];
            let mut parts = alloc::vec::Vec::new();
            for &l in &lens {
                let (part, tail) = rest.split_at_mut(l);
                parts.push(part);
                rest = tail;
            }
            fill_segments(&mut parts, seq, mac, ETHERTYPE_FROM_REXO);
            assert_eq!(gathered, whole, "frame {seq}");
        }
    }

    #[test]
    fn sectors_check_against_themselves_and_not_others() {
        let mut data = [0; 512];
        sector(77, &mut data);
        assert_eq!(check_sector(77, &data), None);
        assert!(
            check_sector(78, &data)
                .unwrap()
                .contains("holds the LBA 77")
        );
        data[300] ^= 0x80;
        assert!(check_sector(77, &data).unwrap().contains("byte 300"));
    }
}
