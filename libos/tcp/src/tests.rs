//! The mechanisms one by one, against a scripted peer that writes segments by hand.

use super::*;
use crate::wire::{FIN, MAX_HEADERS, write_headers};
use alloc::collections::BTreeSet;
use alloc::sync::Arc;
use alloc::vec;
use core::cell::Cell;

const SERVER: [u8; 4] = [10, 0, 0, 1];
const CLIENT: [u8; 4] = [10, 0, 0, 2];
const MS: u64 = 1_000_000;

std::thread_local! {
    /// TIME-WAIT entries, half-open entries and connections a poll, a retire or an
    /// eviction looked at, on this test's thread.
    static VISITED: Cell<usize> = const { Cell::new(0) };
    /// Searches of the connection table by tuple, on this test's thread.
    static LOOKED_UP: Cell<usize> = const { Cell::new(0) };
}

/// Counts one TIME-WAIT entry, half-open entry or connection looked at.
pub(crate) fn count_visited() {
    VISITED.with(|visited| visited.set(visited.get() + 1));
}

/// The TIME-WAIT entries, half-open entries and connections looked at while `run` ran.
fn visited_by(run: impl FnOnce()) -> usize {
    let before = VISITED.with(Cell::get);
    run();
    VISITED.with(Cell::get) - before
}

/// Counts one search of the connection table by tuple.
pub(crate) fn count_looked_up() {
    LOOKED_UP.with(|looked_up| looked_up.set(looked_up.get() + 1));
}

/// The searches of the connection table by tuple while `run` ran.
fn looked_up_by(run: impl FnOnce()) -> usize {
    let before = LOOKED_UP.with(Cell::get);
    run();
    LOOKED_UP.with(Cell::get) - before
}

/// A scripted peer: its port, next sequence number, what it acknowledges, its window.
struct Peer {
    port: u16,
    seq: Seq,
    ack: Seq,
    window: u16,
}

/// A packet from `port` to the server's port 80.
#[allow(clippy::too_many_arguments)]
fn packet(
    port: u16,
    flags: u8,
    seq: Seq,
    ack: Seq,
    window: u16,
    payload: &[u8],
    mss: Option<u16>,
    window_scale: Option<u8>,
) -> Vec<u8> {
    let header = Header {
        src: CLIENT,
        dst: SERVER,
        src_port: port,
        dst_port: 80,
        seq,
        ack,
        flags,
        window,
        mss,
        window_scale,
    };
    let mut out = [0; MAX_HEADERS];
    let n = write_headers(&header, 1, payload.len(), checksum::sum(payload), &mut out);
    let mut packet = out[..n].to_vec();
    packet.extend_from_slice(payload);
    packet
}

impl Peer {
    /// A segment with `flags` and `payload` at the peer's sequence number (not advanced).
    fn segment(&self, flags: u8, payload: &[u8]) -> Vec<u8> {
        packet(
            self.port,
            flags,
            self.seq,
            self.ack,
            self.window,
            payload,
            None,
            None,
        )
    }

    /// Its FIN again (one before its sequence number, which the FIN advanced), with ACK.
    fn fin_again(&self) -> Vec<u8> {
        packet(
            self.port,
            ACK | FIN,
            self.seq.plus(usize::MAX),
            self.ack,
            self.window,
            b"",
            None,
            None,
        )
    }

    /// Sends `payload` with ACK and advances the sequence number.
    fn send(&mut self, ep: &mut Endpoint, now: u64, payload: &[u8]) {
        ep.input(now, &self.segment(ACK, payload));
        self.seq = self.seq.plus(payload.len());
    }
}

/// Every segment the server sends at `now`, checked to parse with valid checksums
/// (a super-segment's checksum field must hold the pseudo-header's sum instead), with
/// the MSS to cut it at.
fn poll_cut(ep: &mut Endpoint, now: u64) -> Vec<(Vec<u8>, Option<usize>)> {
    let mut sent = Vec::new();
    ep.poll(now, &mut |segment| {
        let mut packet = Vec::new();
        segment.copy_to(&mut packet);
        match segment.cut {
            None => assert!(parse(&packet, true).is_ok(), "a valid segment"),
            Some(mss) => {
                let seg = parse(&packet, false).expect("a valid super-segment");
                assert!(seg.payload.len() > mss, "longer than the MSS it is cut at");
                let seed = checksum::pseudo_header(seg.src, seg.dst, packet.len() - 20);
                assert_eq!(
                    packet[36..38],
                    seed.to_be_bytes(),
                    "the pseudo-header's sum"
                );
            }
        }
        sent.push((packet, segment.cut));
        true
    });
    sent
}

/// Every segment the server sends at `now`, none a super-segment.
fn poll(ep: &mut Endpoint, now: u64) -> Vec<Vec<u8>> {
    poll_cut(ep, now)
        .into_iter()
        .map(|(packet, cut)| {
            assert_eq!(cut, None, "no super-segment without segmentation offload");
            packet
        })
        .collect()
}

fn view(packet: &[u8]) -> Segment<'_> {
    parse(packet, true).expect("valid")
}

/// A listening endpoint with `config`.
fn server(config: Config) -> Endpoint {
    let mut ep = Endpoint::new(config).expect("a sound config");
    ep.listen(80).expect("listen");
    ep
}

/// A default endpoint with one accepted connection from port 5000 (no options,
/// window 1000).
fn established() -> (Endpoint, ConnId, Peer) {
    let mut ep = server(Config::default());
    let (id, peer) = connect(&mut ep, 0, 5000, None, None, 1000);
    (ep, id, peer)
}

/// A listening endpoint with the default configuration changed by `edit`.
fn server_with(edit: impl FnOnce(&mut Config)) -> Endpoint {
    let mut config = Config::default();
    edit(&mut config);
    server(config)
}

/// Opens a connection from `port` with the given options and window and accepts it;
/// returns it and the peer, which acknowledges everything the handshake sent.
fn connect(
    ep: &mut Endpoint,
    now: u64,
    port: u16,
    mss: Option<u16>,
    shift: Option<u8>,
    window: u16,
) -> (ConnId, Peer) {
    ep.input(
        now,
        &packet(port, SYN, Seq(1000), Seq(0), window, b"", mss, shift),
    );
    let sent = poll(ep, now);
    assert_eq!(sent.len(), 1, "one SYN-ACK");
    let synack = view(&sent[0]);
    assert!(synack.has(SYN | ACK));
    assert_eq!(synack.ack, Seq(1001));
    let mut peer = Peer {
        port,
        seq: Seq(1001),
        ack: synack.seq.plus(1),
        window,
    };
    peer.send(ep, now, b"");
    (ep.accept().expect("an established connection"), peer)
}

/// A blob of `len` patterned bytes.
fn blob(len: usize) -> Arc<Blob> {
    Arc::new(Blob::new(
        (0..len)
            .map(|i| (i * 13 + i / 256) as u8)
            .collect::<Vec<u8>>(),
    ))
}

#[test]
fn the_handshake_exchanges_mss_and_window_scale_and_both_are_honoured() {
    let mut ep = server(Config::default());
    ep.input(
        0,
        &packet(5000, SYN, Seq(7), Seq(0), 1000, b"", Some(1000), Some(2)),
    );
    let sent = poll(&mut ep, 0);
    let synack = view(&sent[0]);
    assert_eq!((synack.mss, synack.window_scale), (Some(1460), Some(1)));
    assert_eq!(synack.window, 0xffff, "SYN windows are never scaled");
    let (id, peer) = connect(&mut ep, 0, 5001, Some(1000), Some(2), 1000);
    assert_eq!(ep.mss(id), Ok(1000));
    ep.send(id, Piece::shared(blob(20_000), 0, 20_000).unwrap())
        .unwrap();
    let sent = poll(&mut ep, 0);
    let lens: Vec<usize> = sent.iter().map(|p| view(p).payload.len()).collect();
    // The peer's window is 1000 << 2 bytes: four full segments.
    assert_eq!(lens, vec![1000; 4]);
    assert_eq!(view(&sent[0]).seq, peer.ack);
    // Our window is scaled by 1: 64 KiB free is sent as 32768.
    assert_eq!(view(&sent[0]).window, 32768);
}

#[test]
fn the_isn_is_a_4_us_clock_plus_siphash_of_the_addresses_and_ports() {
    let secret = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210;
    let mut ep = server_with(|c| c.secret = secret);
    let now = 4000 * 12_345 + 3999;
    ep.input(
        now,
        &packet(5000, SYN, Seq(7), Seq(0), 1000, b"", None, None),
    );
    let sent = poll(&mut ep, now);
    // F from core's SipHasher (SipHash-2-4, written apart from ours), over our address
    // and port, then the peer's.
    let connection = [
        &SERVER[..],
        &80u16.to_be_bytes(),
        &CLIENT,
        &5000u16.to_be_bytes(),
    ]
    .concat();
    #[allow(deprecated)]
    let mut f = core::hash::SipHasher::new_with_keys(secret as u64, (secret >> 64) as u64);
    core::hash::Hasher::write(&mut f, &connection);
    let f = core::hash::Hasher::finish(&f) as u32;
    assert_eq!(view(&sent[0]).seq, Seq(f.wrapping_add(12_345)));
}

#[test]
fn an_mss_below_the_least_is_refused_and_the_least_takes_any_peer() {
    for mss in [0, 1, MIN_MSS - 1] {
        let refused = Endpoint::new(Config {
            mss,
            ..Config::default()
        });
        assert_eq!(refused.err(), Some(ConfigError::MssTooSmall(mss)));
    }
    let crossed = Endpoint::new(Config {
        rto_min_ns: 2,
        rto_max_ns: 1,
        ..Config::default()
    });
    assert_eq!(crossed.err(), Some(ConfigError::RtoBounds(2, 1)));
    let mut ep = server_with(|c| c.mss = MIN_MSS);
    let (small, _) = connect(&mut ep, 0, 5000, Some(1), None, 60_000);
    let (large, _) = connect(&mut ep, 0, 5001, Some(9000), None, 60_000);
    assert_eq!(
        (ep.mss(small), ep.mss(large)),
        (Ok(64), Ok(64)),
        "held between the least and our own"
    );
}

#[test]
fn an_mss_above_max_segmentation_is_refused_and_the_largest_sends_whole_datagrams() {
    for mss in [MAX_SEGMENTATION as u16 + 1, u16::MAX] {
        let refused = Endpoint::new(Config {
            mss,
            ..Config::default()
        });
        assert_eq!(refused.err(), Some(ConfigError::MssTooLarge(mss)));
    }
    let mut ep = server_with(|c| c.mss = MAX_SEGMENTATION as u16);
    let (id, _) = connect(&mut ep, 0, 5000, Some(u16::MAX), Some(7), u16::MAX);
    ep.send(id, Piece::shared(blob(200_000), 0, 200_000).unwrap())
        .unwrap();
    // `poll` parses each: an IPv4 total length that wrapped would not.
    let sent = poll(&mut ep, 0);
    assert_eq!(
        lengths(&sent),
        [MAX_SEGMENTATION; 2],
        "RFC 6928: 2 segments this large"
    );
    assert!(sent.iter().all(|p| p.len() == 65_535));
}

#[test]
fn receive_buffers_of_0_or_above_rfc_7323s_largest_window_are_refused() {
    for recv_buffer in [0, MAX_RECV_BUFFER + 1, 1 << 31] {
        let refused = Endpoint::new(Config {
            recv_buffer,
            ..Config::default()
        });
        assert_eq!(refused.err(), Some(ConfigError::RecvBuffer(recv_buffer)));
    }
    for recv_buffer in [1, MAX_RECV_BUFFER] {
        let config = Config {
            recv_buffer,
            ..Config::default()
        };
        assert!(Endpoint::new(config).is_ok(), "{recv_buffer} bytes");
    }
}

#[test]
fn without_the_mss_option_segments_carry_at_most_536_bytes() {
    let mut ep = server(Config::default());
    let (id, _) = connect(&mut ep, 0, 5000, None, None, 60_000);
    assert_eq!(ep.mss(id), Ok(536));
    ep.send(id, Piece::owned(vec![7; 2000])).unwrap();
    let lens: Vec<usize> = poll(&mut ep, 0)
        .iter()
        .map(|p| view(p).payload.len())
        .collect();
    assert_eq!(lens, vec![536, 536, 536, 392]);
}

#[test]
fn a_syn_flood_never_grows_the_half_open_table_and_handshakes_still_complete() {
    let mut ep = server_with(|c| c.half_open = 16);
    for i in 0..1000u16 {
        ep.input(
            u64::from(i),
            &packet(10_000 + i, SYN, Seq(1), Seq(0), 100, b"", None, None),
        );
        assert!(ep.half_open() <= 16);
    }
    assert_eq!(ep.stats().syns, 1000);
    assert_eq!(ep.stats().half_open_evicted, 984);
    assert_eq!(
        poll(&mut ep, 1000).len(),
        16,
        "SYN-ACKs for the survivors only"
    );
    // A late SYN still gets through (the oldest half-open entry makes room).
    let (id, _) = connect(&mut ep, 2000, 80, None, None, 1000);
    assert_eq!(ep.state(id), Ok(State::Established));
    assert_eq!(ep.stats().half_open_evicted, 985);
    // Unanswered SYN-ACKs are sent again 3 times (1, 2, 4 s later), then dropped.
    let mut resent = 0;
    for second in 1..=20 {
        resent += poll(&mut ep, second * 1000 * MS).len();
    }
    assert_eq!(resent, 15 * 3);
    assert_eq!(ep.half_open(), 0);
    assert_eq!(ep.stats().half_open_expired, 15);
}

/// Sends a SYN at 50 from `port` and takes the SYN-ACK: the handshake's last ACK
/// (window 1000), not yet sent.
fn handshake_up_to_its_last_ack(ep: &mut Endpoint, port: u16) -> Vec<u8> {
    ep.input(
        0,
        &packet(port, SYN, Seq(50), Seq(0), 1000, b"", None, None),
    );
    let iss = view(&poll(ep, 0)[0]).seq;
    packet(port, ACK, Seq(51), iss.plus(1), 1000, b"", None, None)
}

#[test]
fn a_full_backlog_leaves_the_handshake_half_open() {
    let mut ep = server_with(|c| c.backlog = 1);
    let acks = [5000, 5001].map(|port| handshake_up_to_its_last_ack(&mut ep, port));
    ep.input(0, &acks[0]);
    ep.input(0, &acks[1]);
    assert_eq!(ep.stats().backlog_full, 1, "the backlog holds one");
    assert_eq!(ep.half_open(), 1);
    assert!(ep.accept().is_some());
    assert!(ep.accept().is_none());
    ep.input(0, &acks[1]);
    assert!(ep.accept().is_some(), "accepted once there was room");
}

/// A half-open connection from port 5000 whose SYN was at 1000: our ISN.
fn half_open_from_5000(ep: &mut Endpoint) -> Seq {
    ep.input(
        0,
        &packet(5000, SYN, Seq(1000), Seq(0), 1000, b"", None, None),
    );
    let synack = poll(ep, 0);
    assert!(view(&synack[0]).has(SYN | ACK));
    view(&synack[0]).seq
}

/// The one segment sent at `now`, which must be an ACK of the peer's SYN (at 1000)
/// from the sequence number after our SYN, `iss`, offering a window.
fn assert_challenge_ack(ep: &mut Endpoint, now: u64, iss: Seq) {
    let sent = poll(ep, now);
    assert_eq!(sent.len(), 1, "one ACK");
    let ack = view(&sent[0]);
    assert_eq!((ack.flags, ack.seq, ack.ack), (ACK, iss.plus(1), Seq(1001)));
    assert_eq!(ack.window, 0xffff);
}

#[test]
fn the_handshakes_last_ack_must_be_in_the_window() {
    let mut ep = server(Config::default());
    let iss = half_open_from_5000(&mut ep);
    let ack = |seq| packet(5000, ACK, seq, iss.plus(1), 1000, b"", None, None);
    ep.input(0, &ack(Seq(1001 + 200_000)));
    assert!(ep.accept().is_none(), "out of the window");
    assert_eq!(ep.half_open(), 1);
    assert_challenge_ack(&mut ep, 0, iss);
    ep.input(0, &ack(Seq(1001)));
    assert!(ep.accept().is_some());
}

/// The peer's SYN again (our SYN-ACK lost) is answered with the same SYN-ACK, once,
/// at the next poll, not before its retransmission timer.
#[test]
fn the_peers_syn_again_gets_its_syn_ack_again_once() {
    let mut ep = server(Config::default());
    let iss = half_open_from_5000(&mut ep);
    ep.input(
        MS,
        &packet(5000, SYN, Seq(1000), Seq(0), 1000, b"", None, None),
    );
    let sent = poll(&mut ep, MS);
    assert_eq!(sent.len(), 1, "one SYN-ACK again");
    let synack = view(&sent[0]);
    assert_eq!(
        (synack.flags, synack.seq, synack.ack),
        (SYN | ACK, iss, Seq(1001))
    );
    assert!(poll(&mut ep, 2 * MS).is_empty(), "owed once");
    assert_eq!(ep.half_open(), 1);
}

#[test]
fn a_half_open_connection_challenges_an_inexact_reset_and_a_new_syn() {
    let mut ep = server(Config::default());
    let iss = half_open_from_5000(&mut ep);
    ep.input(0, &packet(5000, RST, Seq(1011), Seq(0), 0, b"", None, None));
    assert_eq!(ep.half_open(), 1, "in the window but not exact");
    assert_challenge_ack(&mut ep, 0, iss);
    // The peer restarted with a new ISN: challenged, it resets the stale entry.
    let new_syn = packet(5000, SYN, Seq(90_000), Seq(0), 1000, b"", None, None);
    ep.input(MS, &new_syn);
    assert_challenge_ack(&mut ep, MS, iss);
    assert_eq!(ep.stats().challenge_acks, 2);
    ep.input(
        MS,
        &packet(5000, RST, Seq(1001), Seq(0), 0, b"", None, None),
    );
    assert_eq!(ep.half_open(), 0);
    ep.input(MS, &new_syn);
    let synack = poll(&mut ep, MS);
    assert_eq!(view(&synack[0]).ack, Seq(90_001));
}

#[test]
fn a_half_open_connections_acks_offer_its_window_scaled_once_both_offered_scaling() {
    // A receive buffer of 65,536 bytes takes a shift of 1; the peer offers 7.
    let mut ep = server(Config::default());
    let syn = packet(5000, SYN, Seq(1000), Seq(0), 1000, b"", None, Some(7));
    ep.input(0, &syn);
    let sent = poll(&mut ep, 0);
    let synack = view(&sent[0]);
    assert_eq!(
        (synack.window, synack.window_scale),
        (0xffff, Some(1)),
        "a SYN's window is never scaled"
    );
    let iss = synack.seq;
    // A RST in the window, a new SYN and data out of the window: each gets an ACK,
    // which the peer scales (RFC 7323, 2.2), so 65,535 would offer twice the buffer.
    let answered = [
        packet(5000, RST, Seq(1011), Seq(0), 0, b"", None, None),
        packet(5000, SYN, Seq(90_000), Seq(0), 1000, b"", None, Some(7)),
        packet(5000, ACK, Seq(201_001), iss.plus(1), 1000, b"x", None, None),
    ];
    for segment in answered {
        ep.input(MS, &segment);
        let sent = poll(&mut ep, MS);
        assert_eq!(sent.len(), 1, "one ACK");
        let ack = view(&sent[0]);
        assert_eq!((ack.flags, usize::from(ack.window) << 1), (ACK, 65_536));
    }
}

#[test]
fn out_of_order_data_is_reassembled_and_answered_with_duplicate_acks() {
    let (mut ep, id, mut peer) = established();
    let start = peer.seq;
    peer.seq = start.plus(5);
    peer.send(&mut ep, 0, b"world");
    peer.seq = start.plus(12);
    peer.send(&mut ep, 0, b"!!");
    let acks = poll(&mut ep, 0);
    assert_eq!(acks.len(), 1);
    assert_eq!(view(&acks[0]).ack, start, "a duplicate ACK for the hole");
    assert_eq!(ep.recv(id, &mut [0; 16]), Ok(0));
    peer.seq = start;
    peer.send(&mut ep, 0, b"hello");
    let acks = poll(&mut ep, 0);
    assert_eq!(view(&acks[0]).ack, start.plus(10), "up to the second hole");
    peer.seq = start.plus(10);
    peer.send(&mut ep, 0, b"??");
    assert_eq!(view(&poll(&mut ep, 0)[0]).ack, start.plus(14));
    let mut buf = [0; 32];
    let n = ep.recv(id, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"helloworld??!!");
    assert_eq!(ep.stats().out_of_order_kept, 2);
}

/// Sends `early` with a FIN 5 bytes ahead, then the 5 missing bytes: the FIN must be
/// acknowledged at once (a duplicate ACK for the hole), kept, and taken when the gap
/// fills.
fn fin_ahead_of_a_gap(early: &[u8]) {
    let (mut ep, id, mut peer) = established();
    let start = peer.seq;
    peer.seq = start.plus(5);
    ep.input(0, &peer.segment(ACK | FIN, early));
    let acks = poll(&mut ep, 0);
    assert_eq!(acks.len(), 1, "a duplicate ACK for the hole");
    assert_eq!(view(&acks[0]).ack, start);
    peer.seq = start;
    peer.send(&mut ep, 0, b"hello");
    assert_eq!(ep.state(id), Ok(State::CloseWait), "the kept FIN is taken");
    let end = start.plus(5 + early.len() + 1);
    assert_eq!(view(&poll(&mut ep, 0)[0]).ack, end);
    let mut buf = [0; 16];
    let n = ep.recv(id, &mut buf).unwrap();
    assert_eq!(&buf[..n], [&b"hello"[..], early].concat());
    assert_eq!(ep.recv(id, &mut buf), Err(Error::Finished));
}

#[test]
fn a_fin_with_data_ahead_of_a_gap_closes_the_connection_once_the_gap_fills() {
    fin_ahead_of_a_gap(b"world");
}

#[test]
fn a_bare_fin_ahead_of_a_gap_is_acknowledged_and_kept() {
    fin_ahead_of_a_gap(b"");
}

/// How a broken peer sends 5 bytes, "JUNK!", right after its FIN.
#[derive(Clone, Copy, PartialEq)]
enum Junk {
    /// Before anything else, kept out of order.
    First,
    /// In order, with the bytes that fill the gap before the FIN.
    AfterTheGap,
    /// Out of order, with a second FIN after it.
    WithASecondFin,
}

/// The peer sends "world" and a FIN 5 bytes ahead, the junk as `junk` says, then
/// "hello" fills the gap: only "helloworld" may be read, then the end.
fn data_beyond_the_fin(junk: Junk) {
    let (mut ep, id, mut peer) = established();
    let start = peer.seq;
    if junk == Junk::First {
        peer.seq = start.plus(10);
        peer.send(&mut ep, 0, b"JUNK!");
    }
    peer.seq = start.plus(5);
    ep.input(0, &peer.segment(ACK | FIN, b"world"));
    if junk == Junk::WithASecondFin {
        peer.seq = start.plus(10);
        ep.input(0, &peer.segment(ACK | FIN, b"JUNK!"));
    }
    peer.seq = start;
    let gap: &[u8] = match junk {
        Junk::AfterTheGap => b"helloworldJUNK!",
        Junk::First | Junk::WithASecondFin => b"hello",
    };
    peer.send(&mut ep, 0, gap);
    assert_eq!(ep.state(id), Ok(State::CloseWait), "the FIN is taken");
    let acks = poll(&mut ep, 0);
    assert_eq!(
        view(acks.last().unwrap()).ack,
        start.plus(11),
        "up to the FIN"
    );
    let mut buf = [0; 32];
    let n = ep.recv(id, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"helloworld");
    assert_eq!(ep.recv(id, &mut buf), Err(Error::Finished));
}

#[test]
fn data_beyond_the_fin_kept_out_of_order_is_never_delivered() {
    data_beyond_the_fin(Junk::First);
}

#[test]
fn data_beyond_a_fin_ahead_of_a_gap_is_never_delivered_in_order() {
    data_beyond_the_fin(Junk::AfterTheGap);
}

#[test]
fn a_second_fin_further_on_does_not_let_data_beyond_the_first_through() {
    data_beyond_the_fin(Junk::WithASecondFin);
}

#[test]
fn runs_kept_beyond_a_fin_are_dropped_when_it_comes_and_leave_room_for_data_before_it() {
    let (mut ep, id, mut peer) = established();
    let start = peer.seq;
    // Eight runs, every one taken: six beyond where the FIN will be, one across it,
    // one after the one across it.
    for at in [100, 200, 300, 400, 500, 600, 10, 40] {
        peer.seq = start.plus(at);
        let run: &[u8] = if at == 10 {
            b"klmnopqrstJUNKJUNKJU"
        } else {
            b"JUNK"
        };
        peer.send(&mut ep, 0, run);
    }
    assert_eq!(ep.stats().out_of_order_kept, 8);
    peer.seq = start.plus(20);
    ep.input(0, &peer.segment(ACK | FIN, b""));
    // Before the FIN, out of order: there must be room for it.
    peer.seq = start.plus(5);
    peer.send(&mut ep, 0, b"fghij");
    assert_eq!(ep.stats().out_of_order_dropped, 0, "room before the FIN");
    peer.seq = start;
    peer.send(&mut ep, 0, b"abcde");
    assert_eq!(ep.state(id), Ok(State::CloseWait), "the FIN is taken");
    let mut buf = [0; 64];
    let n = ep.recv(id, &mut buf).unwrap();
    assert_eq!(
        &buf[..n],
        b"abcdefghijklmnopqrst",
        "everything before the FIN"
    );
    assert_eq!(ep.recv(id, &mut buf), Err(Error::Finished));
}

#[test]
fn data_arriving_in_descending_order_is_reassembled_at_a_cost_linear_in_its_bytes() {
    let (mut ep, id, mut peer) = established();
    // 16,000 one-byte segments, the last first, behind a one-byte gap: each lands just
    // before the run the ones before it made.
    let count = 16_000;
    let byte = |i: usize| (i * 7 + i / 251) as u8;
    for i in (1..=count).rev() {
        let seg = packet(
            5000,
            ACK,
            peer.seq.plus(i),
            peer.ack,
            1000,
            &[byte(i)],
            None,
            None,
        );
        ep.input(MS, &seg);
    }
    assert_eq!(ep.stats().out_of_order_dropped, 0);
    let conn = ep.slots[id.index as usize].conn.as_ref().unwrap();
    let copied = conn.reassembly_copied;
    assert!(copied <= 4 * count, "{copied} bytes copied for {count}");
    // The gap filled, all of it arrives in order.
    peer.send(&mut ep, MS, &[byte(0)]);
    let mut buf = vec![0; count + 10];
    assert_eq!(ep.recv(id, &mut buf), Ok(count + 1));
    let expected: Vec<u8> = (0..=count).map(byte).collect();
    assert_eq!(buf[..=count], expected[..]);
    assert_eq!(view(&poll(&mut ep, MS)[0]).ack, peer.seq.plus(count));
}

#[test]
fn early_data_sent_again_takes_no_more_reassembly_room() {
    let (mut ep, id, peer) = established();
    let at = |offset: usize, data: &[u8]| {
        let seq = peer.seq.plus(offset);
        packet(peer.port, ACK, seq, peer.ack, 1000, data, None, None)
    };
    let bytes: Vec<u8> = (0..120).collect();
    for _ in 0..8 {
        ep.input(0, &at(10, &bytes[10..20]));
    }
    // Runs that overlap or touch the one held become one with it.
    ep.input(0, &at(15, &bytes[15..30]));
    ep.input(0, &at(5, &bytes[5..12]));
    ep.input(0, &at(30, &bytes[30..40]));
    // Seven more runs apart from it and each other still fit.
    for offset in (50..120).step_by(10) {
        ep.input(0, &at(offset, &bytes[offset..offset + 5]));
    }
    assert_eq!(ep.stats().out_of_order_dropped, 0);
    ep.input(0, &at(0, &bytes[..5]));
    let mut buf = [0; 200];
    assert_eq!(ep.recv(id, &mut buf), Ok(40));
    assert_eq!(&buf[..40], &bytes[..40]);
}

#[test]
fn overlapping_retransmissions_deliver_each_byte_once() {
    let (mut ep, id, mut peer) = established();
    let start = peer.seq;
    peer.send(&mut ep, 0, b"abcdef");
    peer.seq = start.plus(3);
    peer.send(&mut ep, 0, b"defghi");
    peer.seq = start;
    peer.send(&mut ep, 0, b"abc");
    let mut buf = [0; 32];
    let n = ep.recv(id, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"abcdefghi");
}

#[test]
fn retransmission_timeouts_back_off_exponentially_then_reset() {
    let mut ep = server_with(|c| c.max_retransmits = 4);
    let (id, peer) = connect(&mut ep, 0, 5000, None, None, 10_000);
    ep.send(id, Piece::owned(b"lost".to_vec())).unwrap();
    assert_eq!(poll(&mut ep, 0).len(), 1);
    let mut times = Vec::new();
    for ms in 1..=40_000 {
        for p in poll(&mut ep, ms * MS) {
            let seg = view(&p);
            if seg.has(RST) {
                times.push((ms, "rst"));
            } else {
                assert_eq!((seg.seq, seg.payload), (peer.ack, &b"lost"[..]));
                times.push((ms, "data"));
            }
        }
    }
    // The initial RTO of 1 s, doubled each time; the fifth timeout resets.
    let expected = [
        (1000, "data"),
        (3000, "data"),
        (7000, "data"),
        (15_000, "data"),
        (31_000, "rst"),
    ];
    assert_eq!(times, expected);
    assert_eq!(ep.recv(id, &mut [0; 4]), Err(Error::TimedOut));
    assert_eq!(ep.stats().retransmit_timeouts, 1);
    assert_eq!(ep.connections(), 0, "gone from the table once its RST went");
}

#[test]
fn the_rto_follows_the_measured_round_trip() {
    let mut ep = server(Config::default());
    let (id, mut peer) = connect(&mut ep, 0, 5000, None, None, 10_000);
    ep.send(id, Piece::owned(b"one".to_vec())).unwrap();
    poll(&mut ep, 0);
    // 100 ms round trip: SRTT 100 ms, RTTVAR 50 ms, RTO 300 ms.
    peer.ack = peer.ack.plus(3);
    peer.send(&mut ep, 100 * MS, b"");
    ep.send(id, Piece::owned(b"two".to_vec())).unwrap();
    assert_eq!(poll(&mut ep, 100 * MS).len(), 1);
    assert!(poll(&mut ep, 399 * MS).is_empty());
    assert_eq!(
        poll(&mut ep, 400 * MS).len(),
        1,
        "retransmitted after 300 ms"
    );
}

/// Sends one byte at `now` and returns the RTO its retransmission timer was armed with.
fn rto_of_next_send(ep: &mut Endpoint, id: ConnId, now: u64) -> u64 {
    ep.send(id, Piece::owned(vec![1])).unwrap();
    assert_eq!(poll(ep, now).len(), 1);
    ep.next_deadline().expect("a retransmission timer") - now
}

#[test]
fn a_clock_that_jumps_by_centuries_neither_overflows_the_rto_nor_holds_it_at_its_largest() {
    let rto_max = Config::default().rto_max_ns;
    let mut ep = server(Config::default());
    let (id, mut peer) = connect(&mut ep, 0, 5000, None, None, 10_000);
    ep.send(id, Piece::owned(vec![1])).unwrap();
    poll(&mut ep, 0);
    // Acknowledged 292 years later: a round trip of half of u64::MAX.
    let mut now = u64::MAX / 2;
    peer.ack = peer.ack.plus(1);
    peer.send(&mut ep, now, b"");
    assert_eq!(rto_of_next_send(&mut ep, id, now), rto_max);
    // Round trips of 100 ms bring it down as from a sample of the largest RTO.
    let mut round_trips = 0;
    loop {
        now += 100 * MS;
        peer.ack = peer.ack.plus(1);
        peer.send(&mut ep, now, b"");
        round_trips += 1;
        if rto_of_next_send(&mut ep, id, now) < 1_000 * MS {
            break;
        }
    }
    assert!(
        round_trips <= 50,
        "{round_trips} round trips to fall below 1 s"
    );
}

#[test]
fn the_rtt_estimator_saturates_when_the_largest_rto_is_u64_max() {
    let mut ep = server_with(|c| c.rto_max_ns = u64::MAX);
    let (id, mut peer) = connect(&mut ep, 0, 5000, None, None, 10_000);
    let mut now = 0;
    // Round trips of half and a quarter of u64::MAX: each overflowed unsaturated sums.
    for round_trip in [u64::MAX / 2, u64::MAX / 4] {
        ep.send(id, Piece::owned(vec![1])).unwrap();
        poll(&mut ep, now);
        now += round_trip;
        peer.ack = peer.ack.plus(1);
        peer.send(&mut ep, now, b"");
    }
    ep.send(id, Piece::owned(vec![1])).unwrap();
    poll(&mut ep, now);
    assert_eq!(
        ep.next_deadline(),
        Some(u64::MAX),
        "the RTO saturated: the end of time"
    );
}

#[test]
fn the_rtt_estimate_of_huge_samples_is_rfc_6298s_without_overflow() {
    let max = u64::MAX;
    // SRTT MAX/2 and RTTVAR MAX/4, then a sample of MAX/4: 7/16 + 1/32 of MAX, and
    // 3/16 + 1/16 of MAX (saturated sums made these 1/8 and 1/4 of MAX).
    let (srtt, rttvar) = crate::conn::smoothed(max / 2, max / 4, max / 4);
    assert_eq!(srtt / (max / 1024), 480, "15/32 of MAX");
    assert_eq!(rttvar / (max / 1024), 256, "1/4 of MAX");
    assert_eq!(crate::conn::smoothed(max, max, 0), (max - max / 8, max));
    assert_eq!(crate::conn::smoothed(800, 200, 400), (750, 250));
}

/// A connection with an MSS of 1000 and a window of 60,000 that queued `bytes` and
/// sent what its initial congestion window allows (10 segments) at 0: the number of
/// segments sent.
fn sent_into_a_wide_window(bytes: usize) -> (Endpoint, Peer, usize) {
    let mut ep = server(Config::default());
    let (id, peer) = connect(&mut ep, 0, 5000, Some(1000), None, 60_000);
    ep.send(id, Piece::shared(blob(bytes), 0, bytes).unwrap())
        .unwrap();
    let sent = poll(&mut ep, 0).len();
    (ep, peer, sent)
}

#[test]
fn three_duplicate_acks_trigger_a_fast_retransmit() {
    let (mut ep, mut peer, sent) = sent_into_a_wide_window(5000);
    assert_eq!(sent, 5);
    peer.ack = peer.ack.plus(1000);
    for _ in 0..2 {
        peer.send(&mut ep, MS, b"");
    }
    assert!(poll(&mut ep, MS).is_empty(), "one duplicate is not enough");
    peer.send(&mut ep, MS, b"");
    peer.send(&mut ep, MS, b"");
    let sent = poll(&mut ep, MS);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        view(&sent[0]).seq,
        peer.ack,
        "the segment after the ACK, long before the RTO"
    );
    assert_eq!(view(&sent[0]).payload.len(), 1000);
    assert_eq!(ep.stats().fast_retransmits, 1);
    assert_eq!(ep.stats().duplicate_acks, 3);
}

#[test]
fn duplicate_acks_after_a_timeout_start_no_second_fast_retransmit() {
    let (mut ep, mut peer, sent) = sent_into_a_wide_window(10_000);
    assert_eq!(sent, 10);
    let resent = poll(&mut ep, 1000 * MS);
    assert_eq!(lengths(&resent), [1000], "the timeout resends the first");
    assert_eq!(view(&resent[0]).seq, peer.ack);
    // The rest of the old flight draws duplicate ACKs: no loss since the timeout.
    for _ in 0..3 {
        peer.send(&mut ep, 1001 * MS, b"");
    }
    assert!(poll(&mut ep, 1001 * MS).is_empty(), "nothing sent again");
    assert_eq!(ep.stats().duplicate_acks, 3);
    assert_eq!(ep.stats().fast_retransmits, 0, "RFC 6582: recover was set");
}

#[test]
fn duplicate_acks_after_a_partial_ack_inflate_the_window_at_once() {
    let (mut ep, mut peer, sent) = sent_into_a_wide_window(20_000);
    assert_eq!(sent, 10);
    let first = peer.ack;
    // The first two segments are lost: three duplicate ACKs resend the first...
    for _ in 0..3 {
        peer.send(&mut ep, MS, b"");
    }
    assert_eq!(lengths(&poll(&mut ep, MS)), [1000]);
    assert_eq!(ep.stats().fast_retransmits, 1);
    // ...whose partial ACK resends the second (9 segments in flight, a window of 8).
    peer.ack = peer.ack.plus(1000);
    peer.send(&mut ep, 2 * MS, b"");
    let resent = poll(&mut ep, 2 * MS);
    assert_eq!(lengths(&resent), [1000]);
    assert_eq!(view(&resent[0]).seq, peer.ack);
    // Each further duplicate ACK lets one more segment out: new data from the second.
    let new_after_each: Vec<usize> = (3..6)
        .map(|ms| {
            peer.send(&mut ep, ms * MS, b"");
            poll(&mut ep, ms * MS)
                .iter()
                .filter(|p| view(p).seq >= first.plus(10_000))
                .count()
        })
        .collect();
    assert_eq!(new_after_each, [0, 1, 1]);
}

/// Plays, from `now` on, a peer that gets `flight` and every segment sent after it a
/// millisecond later and acknowledges each at once (duplicate ACKs past a gap), but
/// loses the first copy of the segment at `lost`, until nothing more is sent and `lost`
/// went again, or 100 ms: when the segment at `lost` was sent again, if it was (an
/// RTO, at least 200 ms, is later), and when the play ended.
fn acking_each_segment(
    ep: &mut Endpoint,
    peer: &mut Peer,
    mut flight: Vec<Vec<u8>>,
    mut now: u64,
    lost: Option<Seq>,
) -> (Option<u64>, u64) {
    let mut held: Vec<(Seq, Seq)> = Vec::new();
    let mut dropped = false;
    let mut resent_at = None;
    for _ in 0..100 {
        for packet in &flight {
            let seg = view(packet);
            if Some(seg.seq) == lost {
                if !dropped {
                    dropped = true;
                    continue;
                }
                resent_at.get_or_insert(now);
            }
            held.push((seg.seq, seg.seq.plus(seg.seq_len())));
            while let Some(&(_, end)) = held
                .iter()
                .find(|(start, end)| *start <= peer.ack && peer.ack < *end)
            {
                peer.ack = end;
            }
        }
        now += MS;
        for _ in 0..flight.len() {
            peer.send(ep, now, b"");
        }
        flight = poll(ep, now);
        if flight.is_empty() && (lost.is_none() || resent_at.is_some()) {
            break;
        }
    }
    (resent_at, now)
}

/// Queues an answer of `bytes` on `id` at `now` and plays a peer that loses its first
/// segment, as [`acking_each_segment`] does: when that segment went again and when the
/// play ended.
fn answer_losing_its_first_segment(
    ep: &mut Endpoint,
    id: ConnId,
    peer: &mut Peer,
    now: u64,
    bytes: usize,
) -> (Option<u64>, u64) {
    ep.send(id, Piece::shared(blob(bytes), 0, bytes).unwrap())
        .unwrap();
    let flight = poll(ep, now);
    let first = view(&flight[0]).seq;
    acking_each_segment(ep, peer, flight, now, Some(first))
}

#[test]
fn a_loss_at_the_end_of_the_last_fast_recovery_gets_a_fast_retransmit() {
    let mut ep = server(Config::default());
    let (id, mut peer) = connect(&mut ep, 0, 5000, Some(1000), None, 60_000);
    let recover = peer.ack.plus(10_000);
    let (resent_at, now) = answer_losing_its_first_segment(&mut ep, id, &mut peer, 0, 10_000);
    assert!(resent_at.is_some());
    assert_eq!(ep.stats().fast_retransmits, 1);
    assert_eq!(peer.ack, recover, "all acknowledged, the recovery over");
    // The next answer starts exactly at `recover`: its first segment lost, the
    // duplicate ACKs acknowledge all that was sent before the last loss.
    let start = now + 10 * MS;
    let (resent_at, _) = answer_losing_its_first_segment(&mut ep, id, &mut peer, start, 5000);
    assert_eq!(
        ep.stats().fast_retransmits,
        2,
        "RFC 6582: above the highest sent"
    );
    assert!(resent_at.is_some_and(|at| at < start + 10 * MS));
}

#[test]
fn a_loss_at_the_end_of_the_last_timeouts_recovery_gets_a_fast_retransmit() {
    let mut ep = server(Config::default());
    let (id, mut peer) = connect(&mut ep, 0, 5000, Some(1000), None, 60_000);
    ep.send(id, Piece::shared(blob(10_000), 0, 10_000).unwrap())
        .unwrap();
    assert_eq!(poll(&mut ep, 0).len(), 10, "the whole flight lost");
    let resent = poll(&mut ep, 1000 * MS);
    assert_eq!(lengths(&resent), [1000], "the timeout resends the first");
    let recover = view(&resent[0]).seq.plus(10_000);
    let (_, now) = acking_each_segment(&mut ep, &mut peer, resent, 1000 * MS, None);
    assert_eq!(
        peer.ack, recover,
        "all sent again in slow start and acknowledged"
    );
    let start = now + 10 * MS;
    let (resent_at, _) = answer_losing_its_first_segment(&mut ep, id, &mut peer, start, 5000);
    assert_eq!(
        ep.stats().fast_retransmits,
        1,
        "RFC 6582: above the highest sent"
    );
    assert!(resent_at.is_some_and(|at| at < start + 10 * MS));
}

#[test]
fn data_after_a_retransmitted_syn_ack_starts_with_an_rto_of_3_s() {
    let mut ep = server(Config::default());
    ep.input(
        0,
        &packet(5000, SYN, Seq(1000), Seq(0), 10_000, b"", None, None),
    );
    assert_eq!(poll(&mut ep, 0).len(), 1);
    let again = poll(&mut ep, 1000 * MS);
    assert!(
        view(&again[0]).has(SYN | ACK),
        "the SYN-ACK's timer expired"
    );
    let mut peer = Peer {
        port: 5000,
        seq: Seq(1001),
        ack: view(&again[0]).seq.plus(1),
        window: 10_000,
    };
    peer.send(&mut ep, 1100 * MS, b"");
    let id = ep.accept().expect("an established connection");
    let start = 1100 * MS;
    assert_eq!(
        rto_of_next_send(&mut ep, id, start),
        3000 * MS,
        "RFC 6298, 5.7"
    );
    assert_eq!(lengths(&poll(&mut ep, start + 3000 * MS)), [1]);
}

/// The payload lengths of `packets`.
fn lengths(packets: &[Vec<u8>]) -> Vec<usize> {
    packets.iter().map(|p| view(p).payload.len()).collect()
}

#[test]
fn small_windows_draw_no_runts_until_half_the_largest_fits_or_the_override_fires() {
    let (mut ep, id, mut peer) = established();
    ep.send(id, Piece::shared(blob(5000), 0, 5000).unwrap())
        .unwrap();
    assert_eq!(
        lengths(&poll(&mut ep, 0)),
        [536],
        "a full segment; the 464 bytes left of the window would be a runt"
    );
    // The peer takes it and offers 10 bytes, again and again: no 10-byte segments.
    peer.ack = peer.ack.plus(536);
    peer.window = 10;
    for ms in (10..100).step_by(10) {
        peer.send(&mut ep, ms * MS, b"");
        assert!(poll(&mut ep, ms * MS).is_empty(), "no runt at {ms} ms");
    }
    // Half the largest window it offered (1000) may go.
    peer.window = 500;
    peer.send(&mut ep, 100 * MS, b"");
    assert_eq!(lengths(&poll(&mut ep, 100 * MS)), [500]);
    // Back at 10 bytes: they go only when the override timeout (0.1 to 1 s) fires.
    peer.ack = peer.ack.plus(500);
    peer.window = 10;
    peer.send(&mut ep, 110 * MS, b"");
    assert!(poll(&mut ep, 110 * MS).is_empty());
    let at = ep.next_deadline().expect("the override timeout");
    assert!((210 * MS..=1110 * MS).contains(&at), "{at}");
    assert!(poll(&mut ep, at - 1).is_empty());
    assert_eq!(lengths(&poll(&mut ep, at)), [10]);
    // The last piece of what is queued goes at once, however small.
    peer.ack = peer.ack.plus(10);
    peer.window = 60_000;
    peer.send(&mut ep, at + MS, b"");
    assert_eq!(payload_bytes(&poll(&mut ep, at + MS)), 5000 - 1046);
    ep.send(id, Piece::owned(vec![1; 7])).unwrap();
    assert_eq!(lengths(&poll(&mut ep, at + MS)), [7]);
}

#[test]
fn a_zero_window_is_probed_until_it_opens() {
    let mut ep = server(Config::default());
    let (id, mut peer) = connect(&mut ep, 0, 5000, None, None, 0);
    ep.send(id, Piece::owned(vec![1; 100])).unwrap();
    assert!(poll(&mut ep, 0).is_empty(), "nothing fits a zero window");
    let probe = poll(&mut ep, 1000 * MS);
    assert_eq!(probe.len(), 1);
    assert_eq!(view(&probe[0]).payload.len(), 1, "a one-byte probe");
    assert_eq!(view(&probe[0]).seq, peer.ack);
    // Still zero: the peer acknowledges nothing; the next probe backs off.
    peer.send(&mut ep, 1001 * MS, b"");
    assert!(poll(&mut ep, 2999 * MS).is_empty());
    assert_eq!(poll(&mut ep, 3000 * MS).len(), 1);
    // The window opens (the probe's byte accepted): the rest goes at once.
    peer.window = 1000;
    peer.ack = peer.ack.plus(1);
    peer.send(&mut ep, 3001 * MS, b"");
    let rest = poll(&mut ep, 3001 * MS);
    assert_eq!(view(&rest[0]).payload.len(), 99);
    assert_eq!(view(&rest[0]).seq, peer.ack);
    assert_eq!(ep.stats().window_probes, 2);
}

/// An endpoint whose connections send keep-alives every 10 s, resetting after
/// `probes` unanswered, and one connection from port 5000 (window 1000) opened at 0.
fn keepalive_every_10_s(probes: u32) -> (Endpoint, ConnId, Peer) {
    let mut ep = server_with(|c| {
        c.keepalive_ns = Some(10_000 * MS);
        c.keepalive_probes = probes;
    });
    let (id, peer) = connect(&mut ep, 0, 5000, None, None, 1000);
    (ep, id, peer)
}

#[test]
fn keepalive_probes_an_idle_peer_and_resets_a_silent_one() {
    let (mut ep, id, mut peer) = keepalive_every_10_s(2);
    assert!(poll(&mut ep, 9_999 * MS).is_empty());
    let probe = poll(&mut ep, 10_000 * MS);
    assert_eq!(
        view(&probe[0]).seq,
        Seq(peer.ack.0.wrapping_sub(1)),
        "one byte behind"
    );
    // An answer restarts the idle time.
    peer.send(&mut ep, 10_001 * MS, b"");
    assert!(poll(&mut ep, 20_000 * MS).is_empty());
    assert_eq!(poll(&mut ep, 20_001 * MS).len(), 1);
    assert_eq!(poll(&mut ep, 30_001 * MS).len(), 1);
    let last = poll(&mut ep, 40_001 * MS);
    assert!(view(&last[0]).has(RST));
    assert_eq!(ep.recv(id, &mut [0; 4]), Err(Error::TimedOut));
    assert_eq!(ep.stats().keepalive_probes, 3);
    assert_eq!(ep.stats().keepalive_timeouts, 1);
}

#[test]
fn a_segment_whose_ack_is_refused_does_not_answer_keepalives() {
    let (mut ep, id, peer) = keepalive_every_10_s(5);
    for probe in 1..=4 {
        assert_eq!(poll(&mut ep, probe * 10_000 * MS).len(), 1);
    }
    // In the window, but acknowledging a million bytes never sent: a challenge ACK.
    let forged = packet(
        peer.port,
        ACK,
        peer.seq,
        peer.ack.plus(1_000_000),
        1000,
        b"",
        None,
        None,
    );
    ep.input(45_000 * MS, &forged);
    assert_eq!(ep.stats().challenge_acks, 1);
    assert_eq!(poll(&mut ep, 45_000 * MS).len(), 1);
    assert_eq!(poll(&mut ep, 50_000 * MS).len(), 1, "the fifth probe");
    assert!(view(&poll(&mut ep, 60_000 * MS)[0]).has(RST));
    assert_eq!(ep.state(id), Ok(State::Closed));
}

#[test]
fn active_close_goes_through_fin_wait_and_a_compact_time_wait() {
    let (mut ep, id, mut peer) = established();
    ep.send(id, Piece::owned(b"bye".to_vec())).unwrap();
    ep.shutdown(id).unwrap();
    assert_eq!(ep.state(id), Ok(State::FinWait1));
    let sent = poll(&mut ep, 0);
    assert_eq!(sent.len(), 1);
    assert!(view(&sent[0]).has(FIN), "the FIN rides on the last data");
    peer.ack = peer.ack.plus(4);
    peer.send(&mut ep, 0, b"");
    assert_eq!(ep.state(id), Ok(State::FinWait2));
    peer.send(&mut ep, 0, b"late");
    ep.input(0, &peer.segment(ACK | FIN, b""));
    peer.seq = peer.seq.plus(1);
    assert_eq!(ep.state(id), Ok(State::TimeWait));
    let mut buf = [0; 8];
    assert_eq!(ep.recv(id, &mut buf), Ok(4));
    assert_eq!(ep.recv(id, &mut buf), Err(Error::Finished));
    assert_eq!(view(&poll(&mut ep, 0)[0]).ack, peer.seq);
    ep.close(id).unwrap();
    poll(&mut ep, 0);
    assert_eq!(
        (ep.connections(), ep.time_wait()),
        (0, 1),
        "only the compact entry is left"
    );
    // A retransmitted FIN is acknowledged from the entry.
    peer.seq = peer.seq.plus(usize::MAX);
    ep.input(MS, &peer.segment(ACK | FIN, b""));
    let again = poll(&mut ep, MS);
    assert_eq!(
        (view(&again[0]).ack, view(&again[0]).flags),
        (peer.seq.plus(1), ACK)
    );
    // A SYN that also closes or resets is no new connection: the entry stays (it used
    // to end it, and the SYN was then dropped).
    let above = |flags| {
        let seq = peer.seq.plus(100_000);
        packet(5000, flags, seq, Seq(0), 1000, b"", None, None)
    };
    for flags in [SYN | FIN, SYN | RST] {
        ep.input(2 * MS, &above(flags));
        assert_eq!((ep.time_wait(), ep.half_open()), (1, 0), "flags {flags:#x}");
    }
    // A new SYN above the old sequence space ends it at once.
    ep.input(2 * MS, &above(SYN));
    assert_eq!((ep.time_wait(), ep.half_open()), (0, 1));
    assert_eq!(ep.stats().time_wait_reused, 1);
}

#[test]
fn time_wait_of_a_connection_the_app_holds_answers_as_the_compact_entry() {
    let (mut ep, id, mut peer) = established();
    ep.shutdown(id).unwrap();
    poll(&mut ep, 0);
    peer.ack = peer.ack.plus(1);
    ep.input(0, &peer.segment(ACK | FIN, b""));
    peer.seq = peer.seq.plus(1);
    assert_eq!(ep.state(id), Ok(State::TimeWait));
    poll(&mut ep, 0);
    // A retransmitted FIN near the end: acknowledged, and the 2 MSL timer restarts.
    let wait = Config::default().time_wait_ns;
    ep.input(wait - MS, &peer.fin_again());
    let again = poll(&mut ep, wait - MS);
    assert_eq!(again.len(), 1);
    assert_eq!(view(&again[0]).ack, peer.seq);
    assert_eq!(ep.next_deadline(), Some(2 * wait - MS), "restarted");
    // A new SYN above the old sequence space ends it and opens a new connection.
    assert_new_syn_ends_time_wait(&mut ep, &peer, wait);
    assert_eq!(ep.stats().time_wait_reused, 1);
    assert_eq!(ep.state(id), Ok(State::Closed));
    assert_eq!(ep.recv(id, &mut [0; 4]), Err(Error::Finished));
}

/// A connection from `port` that sent `bytes` at `now` (all acknowledged) and closed
/// first, left in the compact TIME-WAIT table (evicting the oldest entry if it was
/// full); returns the peer, whose `ack` is the old connection's last sequence number
/// sent.
fn in_time_wait_after(ep: &mut Endpoint, now: u64, port: u16, bytes: usize) -> Peer {
    let entries = (ep.time_wait() + 1).min(ep.config.time_wait_entries);
    let (id, mut peer) = connect(ep, now, port, None, None, 0xffff);
    ep.send(id, Piece::shared(blob(bytes), 0, bytes).unwrap())
        .unwrap();
    ep.close(id).unwrap();
    loop {
        let sent = poll(ep, now);
        let Some(last) = sent.last() else {
            break;
        };
        let last = view(last);
        peer.ack = last.seq.plus(last.seq_len());
        peer.send(ep, now, b"");
    }
    ep.input(now, &peer.segment(ACK | FIN, b""));
    peer.seq = peer.seq.plus(1);
    poll(ep, now);
    assert_eq!((ep.connections(), ep.time_wait()), (0, entries));
    peer
}

#[test]
fn a_syn_that_ends_a_time_wait_starts_above_the_old_sequence_space() {
    let mut ep = server(Config::default());
    // 300 KB within a millisecond: far more than the ISN clock's 250 KB/s.
    let peer = in_time_wait_after(&mut ep, 0, 5000, 300_000);
    assert_new_syn_ends_time_wait(&mut ep, &peer, MS);
}

/// Sends at `now` a new SYN above the sequence space of `peer`'s connection in
/// TIME-WAIT (whose `ack` is the old connection's last sequence number sent) and
/// checks that it ends the TIME-WAIT: a SYN-ACK answers it, its ISN above the old
/// sequence space and window.
fn assert_new_syn_ends_time_wait(ep: &mut Endpoint, peer: &Peer, now: u64) {
    let syn = packet(
        5000,
        SYN,
        peer.seq.plus(1000),
        Seq(0),
        1000,
        b"",
        None,
        None,
    );
    ep.input(now, &syn);
    let synack = poll(ep, now);
    assert!(
        view(&synack[0]).has(SYN | ACK),
        "a SYN-ACK, no challenge ACK"
    );
    assert!(
        view(&synack[0]).seq > peer.ack.plus(0xffff),
        "the new ISN is above the old connection's sequence space and window"
    );
}

#[test]
fn time_wait_acknowledges_only_a_retransmitted_fin_or_an_unacceptable_segment() {
    let mut ep = server(Config::default());
    let mut peer = in_time_wait_after(&mut ep, 0, 5000, 10);
    let wait = Config::default().time_wait_ns;
    peer.send(&mut ep, MS, b"");
    assert!(poll(&mut ep, MS).is_empty(), "the last ACK again: dropped");
    // A retransmitted FIN near the end: acknowledged, and the 2MSL timer restarts.
    ep.input(wait - MS, &peer.fin_again());
    let ack = poll(&mut ep, wait - MS);
    assert_eq!((view(&ack[0]).flags, view(&ack[0]).ack), (ACK, peer.seq));
    poll(&mut ep, wait);
    assert_eq!(ep.time_wait(), 1, "the FIN restarted the timer");
    // Data past the FIN is unacceptable: acknowledged.
    ep.input(wait, &peer.segment(ACK, b"late"));
    assert_eq!(view(&poll(&mut ep, wait)[0]).ack, peer.seq);
    poll(&mut ep, 2 * wait - MS);
    assert_eq!(ep.time_wait(), 0);
}

#[test]
fn time_wait_acknowledges_with_the_window_the_connection_last_offered() {
    let mut ep = server(Config::default());
    // Window scaling on (our shift 1), and 1000 bytes the app never reads, dropped
    // when it closes.
    let (id, mut peer) = connect(&mut ep, 0, 5000, None, Some(2), 1000);
    peer.send(&mut ep, 0, &[7; 1000]);
    ep.close(id).unwrap();
    let fin = poll(&mut ep, 0);
    let offered = view(&fin[0]).window;
    assert_eq!(usize::from(offered), (64 * 1024) >> 1);
    peer.ack = peer.ack.plus(1);
    ep.input(0, &peer.segment(ACK | FIN, b""));
    peer.seq = peer.seq.plus(1);
    assert_eq!(view(&poll(&mut ep, 0)[0]).window, offered);
    assert_eq!((ep.connections(), ep.time_wait()), (0, 1));
    // The compact entry answers a retransmitted FIN and data past it with that window.
    ep.input(MS, &peer.fin_again());
    ep.input(MS, &peer.segment(ACK, b"late"));
    let acks = poll(&mut ep, MS);
    assert_eq!(acks.len(), 2);
    for ack in &acks {
        assert_eq!((view(ack).flags, view(ack).window), (ACK, offered));
    }
}

#[test]
fn bytes_unread_at_close_are_dropped_and_what_follows_is_acknowledged() {
    let mut ep = server_with(|c| c.recv_buffer = 4000);
    let (id, mut peer) = connect(&mut ep, 0, 5000, None, None, 1000);
    for _ in 0..4 {
        peer.send(&mut ep, 0, &[7; 1000]);
    }
    assert_eq!(view(&poll(&mut ep, 0)[0]).window, 0, "the buffer is full");
    ep.close(id).unwrap();
    let fin = poll(&mut ep, 0);
    assert_eq!(fin.len(), 1);
    assert!(view(&fin[0]).has(FIN));
    assert_eq!(view(&fin[0]).window, 4000, "the unread bytes are dropped");
    // The peer acknowledges the FIN and sends more: acknowledged (and dropped).
    peer.ack = peer.ack.plus(1);
    peer.send(&mut ep, MS, &[8; 500]);
    let answer = poll(&mut ep, MS);
    assert_eq!(answer.len(), 1);
    assert_eq!(
        (view(&answer[0]).ack, view(&answer[0]).window),
        (peer.seq, 4000)
    );
    // Its FIN: the compact TIME-WAIT entry offers the open window too.
    ep.input(MS, &peer.segment(ACK | FIN, b""));
    peer.seq = peer.seq.plus(1);
    poll(&mut ep, MS);
    assert_eq!((ep.connections(), ep.time_wait()), (0, 1));
    ep.input(2 * MS, &peer.fin_again());
    let again = poll(&mut ep, 2 * MS);
    assert_eq!(
        (view(&again[0]).ack, view(&again[0]).window),
        (peer.seq, 4000)
    );
}

#[test]
fn a_window_closed_by_unread_bytes_opens_when_the_app_closes_after_its_fin() {
    let mut ep = server_with(|c| c.recv_buffer = 4000);
    let (id, mut peer) = connect(&mut ep, 0, 5000, None, None, 1000);
    ep.shutdown(id).unwrap();
    poll(&mut ep, 0);
    peer.ack = peer.ack.plus(1);
    for _ in 0..4 {
        peer.send(&mut ep, 0, &[7; 1000]);
    }
    assert_eq!(ep.state(id), Ok(State::FinWait2));
    assert_eq!(view(&poll(&mut ep, 0)[0]).window, 0, "the buffer is full");
    // Our FIN went long ago: a window update tells the peer it may send again.
    ep.close(id).unwrap();
    let update = poll(&mut ep, MS);
    assert_eq!(update.len(), 1);
    assert_eq!(
        (view(&update[0]).ack, view(&update[0]).window),
        (peer.seq, 4000)
    );
}

#[test]
fn time_wait_ends_by_itself_and_its_table_is_bounded() {
    let mut ep = server_with(|c| c.time_wait_entries = 2);
    for port in 6000..6003 {
        let (id, mut peer) = connect(&mut ep, 0, port, None, None, 1000);
        ep.input(0, &peer.segment(ACK | FIN, b""));
        peer.seq = peer.seq.plus(1);
        ep.close(id).unwrap();
        poll(&mut ep, 0);
        peer.ack = peer.ack.plus(1);
        peer.send(&mut ep, 0, b"");
        poll(&mut ep, 0);
    }
    assert_eq!(
        ep.stats().time_wait_evicted,
        0,
        "passive closes leave no TIME-WAIT"
    );
    for port in 6003..6006 {
        let (id, mut peer) = connect(&mut ep, u64::from(port) * MS, port, None, None, 1000);
        ep.close(id).unwrap();
        poll(&mut ep, u64::from(port) * MS);
        peer.ack = peer.ack.plus(1);
        ep.input(u64::from(port) * MS, &peer.segment(ACK | FIN, b""));
        poll(&mut ep, u64::from(port) * MS);
    }
    assert_eq!((ep.time_wait(), ep.stats().time_wait_evicted), (2, 1));
    poll(&mut ep, 6005 * MS + Config::default().time_wait_ns);
    assert_eq!(ep.time_wait(), 0);
}

/// With the TIME-WAIT table full (1,024 entries), a poll with nothing due looks at one
/// entry, the one that expires first, not all of them (a `retain` over the table on
/// every poll before: 1,024 each), a close that evicts the oldest looks at it alone
/// and its connection (a search of the whole table before), and expiry takes just the
/// entries due.
#[test]
fn time_wait_expiry_and_eviction_look_only_at_the_entries_due() {
    let mut ep = server(Config::default());
    let full = Config::default().time_wait_entries;
    for i in 0..full as u16 {
        in_time_wait_after(&mut ep, u64::from(i) * MS, 10_000 + i, 10);
    }
    assert_eq!(ep.time_wait(), full);
    let quiet = visited_by(|| assert!(poll(&mut ep, 1_500 * MS).is_empty()));
    assert!(
        quiet <= 1,
        "{quiet} entries looked at by a poll with nothing due"
    );
    let close = visited_by(|| _ = in_time_wait_after(&mut ep, 1_600 * MS, 20_000, 10));
    assert!(close <= 32, "{close} looked at by a close and its polls");
    assert_eq!((ep.time_wait(), ep.stats().time_wait_evicted), (full, 1));
    let tuple = |remote_port| Tuple {
        local: SERVER,
        local_port: 80,
        remote: CLIENT,
        remote_port,
    };
    assert!(!ep.time_wait.contains(&tuple(10_000)), "the oldest evicted");
    assert!(ep.time_wait.contains(&tuple(10_001)) && ep.time_wait.contains(&tuple(20_000)));
    // 10,001 and 10,002 expire (closed at 1 and 2 ms).
    let wait = Config::default().time_wait_ns;
    let expiry = visited_by(|| assert!(poll(&mut ep, 2 * MS + wait).is_empty()));
    assert_eq!(ep.time_wait(), full - 2);
    assert!(expiry <= 3, "{expiry} entries looked at to expire 2");
}

/// An endpoint with keep-alive every `keepalive` ns, its TIME-WAIT table full (1,024
/// entries, closed at 0 to 1,023 ms) and 256 idle connections (the first opened at 2 s,
/// returned, the others at 2.001 s).
fn idle_beside_a_full_time_wait(keepalive: u64) -> (Endpoint, ConnId) {
    let mut ep = server_with(|c| c.keepalive_ns = Some(keepalive));
    for i in 0..1024 {
        in_time_wait_after(&mut ep, u64::from(i) * MS, 10_000 + i, 10);
    }
    let (first, _) = connect(&mut ep, 2_000 * MS, 30_000, None, None, 1000);
    for i in 1..256 {
        connect(&mut ep, 2_001 * MS, 30_000 + i, None, None, 1000);
    }
    assert_eq!(ep.connections(), 256);
    (ep, first)
}

/// 256 idle connections with keep-alive timers (and 1,024 TIME-WAIT entries): the
/// timers of a poll with nothing due and `next_deadline` compute no connection's
/// deadline (before: all 256, each of seven timers, on every poll and every call), and
/// a poll when one keep-alive is due computes that connection's alone.
#[test]
fn timers_look_only_at_the_connections_due() {
    let keepalive = 60_000 * MS;
    let (mut ep, first) = idle_beside_a_full_time_wait(keepalive);
    let mut next = None;
    assert_eq!(visited_by(|| next = ep.next_deadline()), 0);
    assert_eq!(
        next,
        Some(Config::default().time_wait_ns),
        "the first TIME-WAIT's end"
    );
    let quiet = visited_by(|| ep.run_timers(3_000 * MS));
    assert!(quiet <= 1, "{quiet} looked at by timers with nothing due");
    poll(&mut ep, 20_000 * MS);
    assert_eq!(ep.time_wait(), 0);
    assert_eq!(ep.next_deadline(), Some(2_000 * MS + keepalive));
    let one = visited_by(|| ep.run_timers(2_000 * MS + keepalive));
    assert!(one <= 2, "{one} looked at by timers with one due");
    assert_eq!(ep.stats().keepalive_probes, 1);
    let sent = poll(&mut ep, 2_000 * MS + keepalive);
    assert_eq!(sent.len(), 1, "the probe");
    assert_eq!(
        view(&sent[0]).dst_port,
        ep.tuple(first).unwrap().remote_port
    );
    assert_eq!(ep.next_deadline(), Some(2_001 * MS + keepalive));
}

/// 256 idle connections (and 1,024 TIME-WAIT entries): a poll with nothing due gives
/// no connection a turn (before: every one, each sending nothing), and a poll after
/// one connection took data gives that one alone its turn, which sends the data.
#[test]
fn a_poll_gives_turns_only_to_the_connections_owed_one() {
    let (mut ep, first) = idle_beside_a_full_time_wait(60_000 * MS);
    // The last handshake's ACK came after the last poll: that connection's turn.
    poll(&mut ep, 2_500 * MS);
    // An app reads every connection each loop; a read of nothing owes no turn.
    assert_eq!(ep.recv(first, &mut [0; 8]), Ok(0));
    let quiet = visited_by(|| assert!(poll(&mut ep, 3_000 * MS).is_empty()));
    assert!(quiet <= 1, "{quiet} looked at by a poll with nothing due");
    ep.send(first, Piece::owned(b"hello".to_vec())).unwrap();
    let mut sent = Vec::new();
    let one = visited_by(|| sent = poll(&mut ep, 3_001 * MS));
    assert!(
        one <= 4,
        "{one} looked at by a poll with one connection owed a turn"
    );
    assert_eq!(sent.len(), 1);
    assert_eq!(view(&sent[0]).payload, b"hello");
}

/// A connection sending its window in turns of one segment (the default burst) has
/// its deadline computed once in the poll, after its last turn (before: after each
/// turn, so once a segment), and one left with data when the emitter refuses has it
/// computed too, its retransmission timer in the order.
#[test]
fn a_sender_is_rescheduled_once_a_poll() {
    let mut ep = server(Config::default());
    let (id, _) = connect(&mut ep, 0, 5000, Some(1460), None, 0xffff);
    ep.send(id, Piece::shared(blob(100_000), 0, 100_000).unwrap())
        .unwrap();
    let mut sent = Vec::new();
    let looked_at = visited_by(|| sent = poll(&mut ep, MS));
    assert_eq!(sent.len(), 10, "the initial window");
    // A turn for each segment (the last finds the window full after its segment), one
    // deadline, and the TIME-WAIT table looked at.
    assert!(
        looked_at <= sent.len() + 2,
        "{looked_at} looked at by a poll sending {}",
        sent.len()
    );
    // Two senders, the second refused in the second round: the first, left with data,
    // is in the order of timers too.
    let mut ep = server(Config::default());
    let ids = [5000, 5001].map(|port| connect(&mut ep, 0, port, Some(1460), None, 0xffff).0);
    for id in ids {
        let piece = Piece::shared(blob(100_000), 0, 100_000).unwrap();
        ep.send(id, piece).unwrap();
    }
    assert_eq!(poll_room(&mut ep, MS, Some(3)).len(), 3);
    let rto = Config::default().rto_initial_ns;
    let timers: Vec<u64> = ep.timers.iter().map(|&(at, _)| at).collect();
    assert_eq!(timers, [MS + rto, MS + rto], "both retransmission timers");
}

/// A segment for a connection, and a timer due, search the connection table for it
/// once (before: `follow` searched again for what the caller had just found), a send
/// of the app's none, and a read from a closed connection once (before: `recv` and
/// `bury_if_read` searched each).
#[test]
fn a_segment_and_a_timer_look_their_connection_up_once() {
    let (mut ep, id, mut peer) = established();
    assert_eq!(looked_up_by(|| peer.send(&mut ep, 0, b"request")), 1);
    let piece = Piece::owned(b"answer".to_vec());
    assert_eq!(looked_up_by(|| ep.send(id, piece).unwrap()), 0);
    assert_eq!(poll(&mut ep, 0).len(), 1, "the answer");
    let rto = Config::default().rto_initial_ns;
    assert_eq!(looked_up_by(|| ep.run_timers(rto)), 1);
    assert_eq!(ep.stats().retransmits, 1);
    // Reset with the request unread: the connection left the table, kept for the read.
    ep.input(rto, &peer.segment(RST, b""));
    assert_eq!(ep.state(id), Ok(State::Closed));
    let mut buf = [0; 16];
    assert_eq!(looked_up_by(|| assert_eq!(ep.recv(id, &mut buf), Ok(7))), 1);
    assert_eq!(ep.recv(id, &mut buf), Err(Error::Reset), "buried once read");
}

/// With the half-open table full (256 entries, their SYN-ACKs sent), a poll with
/// nothing due looks at one entry, the one whose SYN-ACK goes again first, and
/// `next_deadline` at none (before: a retain over the whole table, a search of it for
/// SYN-ACKs owed on every poll, and a scan of it for every deadline asked); a poll
/// when one SYN-ACK is due again looks at that entry and the next.
#[test]
fn half_open_timers_look_only_at_the_entries_due() {
    let mut ep = server(Config::default());
    let full = Config::default().half_open;
    for i in 0..full as u16 {
        let syn = packet_with(10_000 + i, SYN, Seq(1000), Seq(0), 1000);
        ep.input(u64::from(i) * MS, &syn);
    }
    assert_eq!(poll(&mut ep, 300 * MS).len(), full, "the SYN-ACKs");
    let quiet = visited_by(|| assert!(poll(&mut ep, 500 * MS).is_empty()));
    assert!(quiet <= 2, "{quiet} looked at by a poll with nothing due");
    let mut next = None;
    assert_eq!(visited_by(|| next = ep.next_deadline()), 0);
    let rto = Config::default().rto_initial_ns;
    assert_eq!(next, Some(rto), "the first SYN-ACK's retransmission");
    let mut sent = Vec::new();
    let one = visited_by(|| sent = poll(&mut ep, rto));
    assert!(one <= 4, "{one} looked at by a poll with one SYN-ACK due");
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (view(&sent[0]).dst_port, view(&sent[0]).flags),
        (10_000, SYN | ACK)
    );
    assert_eq!(ep.next_deadline(), Some(rto + MS));
}

/// A SYN to a full half-open table (256 entries, their SYNs come out of tuple order)
/// evicts the entry whose SYN came first, and finds it at the front of the order by
/// age, looking at one entry (before: a scan of the whole table on every such SYN, the
/// path a SYN flood takes on every packet).
#[test]
fn a_syn_to_a_full_half_open_table_looks_only_at_the_oldest_entry() {
    let mut ep = server(Config::default());
    let full = Config::default().half_open;
    let port_of = |i: usize| 10_000 + ((i * 97 + 13) % full) as u16;
    for i in 0..full {
        let syn = packet_with(port_of(i), SYN, Seq(1000), Seq(0), 1000);
        ep.input(i as u64 * MS, &syn);
    }
    let tuple = |remote_port| Tuple {
        local: SERVER,
        local_port: 80,
        remote: CLIENT,
        remote_port,
    };
    for (i, port) in [20_000, 20_001].into_iter().enumerate() {
        let oldest = tuple(port_of(i));
        assert!(ep.half_open.contains(&oldest));
        let syn = packet_with(port, SYN, Seq(1000), Seq(0), 1000);
        let looked_at = visited_by(|| _ = ep.input(300 * MS, &syn));
        assert!(looked_at <= 1, "{looked_at} looked at by a SYN evicting");
        assert!(!ep.half_open.contains(&oldest), "the oldest evicted");
        assert!(ep.half_open.contains(&tuple(port)));
        assert_eq!(ep.half_open(), full);
    }
    assert_eq!(ep.stats().half_open_evicted, 2);
    assert_orders_are_a_scan(&ep);
}

#[test]
fn a_handle_of_another_endpoint_is_refused_and_reaches_nothing_there() {
    // One endpoint per core (httpd): each's first connection has the same slot and
    // generation, so without the endpoint's identity in the handle one core's handle
    // read, wrote and closed the other's connection.
    let (mut a, id_a, _) = established();
    let (mut b, id_b, _) = established();
    let mut buf = [0; 4];
    assert_eq!(b.state(id_a), Err(Error::ForeignId));
    assert_eq!(b.tuple(id_a), Err(Error::ForeignId));
    assert_eq!(b.unacknowledged(id_a), Err(Error::ForeignId));
    assert_eq!(b.recv(id_a, &mut buf), Err(Error::ForeignId));
    assert_eq!(
        b.send(id_a, Piece::owned(b"x".to_vec())),
        Err(Error::ForeignId)
    );
    assert_eq!(b.shutdown(id_a), Err(Error::ForeignId));
    assert_eq!(b.close(id_a), Err(Error::ForeignId));
    assert_eq!(b.abort(id_a), Err(Error::ForeignId));
    assert_eq!(b.state(id_b), Ok(State::Established), "b's own left alone");
    assert_eq!(b.unacknowledged(id_b), Ok(0), "nothing queued on it");
    assert_eq!(a.state(id_a), Ok(State::Established));
    assert_eq!(a.close(id_a), Ok(()), "its own endpoint takes it");
}

#[test]
fn passive_close_goes_through_close_wait_and_last_ack() {
    let (mut ep, id, mut peer) = established();
    ep.input(0, &peer.segment(ACK | FIN, b"end"));
    peer.seq = peer.seq.plus(4);
    assert_eq!(ep.state(id), Ok(State::CloseWait));
    let mut buf = [0; 8];
    assert_eq!(ep.recv(id, &mut buf), Ok(3));
    assert_eq!(ep.recv(id, &mut buf), Err(Error::Finished));
    ep.send(id, Piece::owned(b"ok".to_vec())).unwrap();
    ep.close(id).unwrap();
    assert_eq!(
        ep.recv(id, &mut buf),
        Err(Error::BadId),
        "the handle is given up"
    );
    let sent = poll(&mut ep, 0);
    assert!(view(&sent[0]).has(FIN | ACK));
    assert_eq!(view(&sent[0]).ack, peer.seq);
    assert_eq!(ep.connections(), 1, "LAST-ACK");
    peer.ack = peer.ack.plus(3);
    peer.send(&mut ep, 0, b"");
    poll(&mut ep, 0);
    assert_eq!((ep.connections(), ep.time_wait()), (0, 0));
}

#[test]
fn a_connection_closed_by_both_sides_while_the_app_holds_it_answers_finished() {
    let (mut ep, id, mut peer) = established();
    ep.input(0, &peer.segment(ACK | FIN, b""));
    peer.seq = peer.seq.plus(1);
    ep.shutdown(id).unwrap();
    assert!(view(&poll(&mut ep, 0)[0]).has(FIN | ACK));
    assert_eq!(ep.state(id), Ok(State::LastAck));
    peer.ack = peer.ack.plus(1);
    peer.send(&mut ep, 0, b"");
    // Gone from the table, its handle still held: the ends of a clean close.
    assert_eq!(ep.connections(), 0);
    assert_eq!(ep.state(id), Ok(State::Closed));
    assert_eq!(ep.recv(id, &mut [0; 4]), Err(Error::Finished));
    assert_eq!(ep.send(id, Piece::owned(b"x".to_vec())), Err(Error::Closed));
    assert_eq!(ep.shutdown(id), Ok(()));
    assert_eq!(ep.close(id), Ok(()));
    assert_eq!(ep.recv(id, &mut [0; 4]), Err(Error::BadId), "given up");
    assert_eq!(ep.close(id), Err(Error::BadId));
}

#[test]
fn an_abort_keeps_a_timeouts_rst_the_full_emitter_held_back() {
    let mut ep = server_with(|c| c.max_retransmits = 0);
    let (id, peer) = connect(&mut ep, 0, 5000, None, None, 10_000);
    ep.send(id, Piece::owned(b"lost".to_vec())).unwrap();
    assert_eq!(poll(&mut ep, 0).len(), 1);
    // The first timeout resets the connection; the emitter takes nothing.
    ep.poll(1000 * MS, &mut |_| false);
    ep.abort(id).unwrap();
    let sent = poll(&mut ep, 1000 * MS);
    assert_eq!(sent.len(), 1, "the RST still owed");
    let rst = view(&sent[0]);
    assert!(rst.has(RST));
    assert_eq!(rst.seq, peer.ack.plus(4), "after the data sent");
    assert_eq!(ep.connections(), 0);
}

#[test]
fn simultaneous_close_goes_through_closing() {
    let (mut ep, id, mut peer) = established();
    ep.shutdown(id).unwrap();
    let fin = poll(&mut ep, 0);
    assert!(view(&fin[0]).has(FIN));
    // The peer's FIN crosses ours: it does not acknowledge ours yet.
    ep.input(0, &peer.segment(ACK | FIN, b""));
    peer.seq = peer.seq.plus(1);
    assert_eq!(ep.state(id), Ok(State::Closing));
    peer.ack = peer.ack.plus(1);
    peer.send(&mut ep, 0, b"");
    assert_eq!(ep.state(id), Ok(State::TimeWait));
}

/// A connection whose FIN the peer acknowledged, closed (`release`) or only shut down.
fn in_fin_wait_2(release: bool) -> (Endpoint, ConnId, Peer) {
    let (mut ep, id, mut peer) = established();
    if release {
        ep.close(id).unwrap();
    } else {
        ep.shutdown(id).unwrap();
    }
    poll(&mut ep, 0);
    peer.ack = peer.ack.plus(1);
    peer.send(&mut ep, 0, b"");
    poll(&mut ep, 0);
    (ep, id, peer)
}

#[test]
fn fin_wait_2_gives_up_on_a_peer_that_never_closes() {
    let (mut ep, _, _) = in_fin_wait_2(true);
    assert_eq!(ep.connections(), 1);
    poll(&mut ep, Config::default().fin_wait2_ns);
    assert_eq!(ep.connections(), 0);
    assert_eq!(ep.stats().fin_wait2_timeouts, 1);
}

#[test]
fn a_reset_counts_only_at_the_exact_sequence_number() {
    let (mut ep, id, mut peer) = established();
    let exact = peer.seq;
    peer.seq = exact.plus(10);
    ep.input(0, &peer.segment(RST, b""));
    assert_eq!(ep.state(id), Ok(State::Established), "in window, not exact");
    let challenge = poll(&mut ep, 0);
    assert_eq!(
        (view(&challenge[0]).flags, view(&challenge[0]).ack),
        (ACK, exact)
    );
    peer.seq = exact.plus(1_000_000);
    ep.input(0, &peer.segment(RST, b""));
    assert!(
        poll(&mut ep, 0).is_empty(),
        "out of window: dropped silently"
    );
    assert_eq!(ep.stats().out_of_window, 1);
    // A SYN in window gets a challenge ACK too.
    peer.seq = exact;
    ep.input(0, &peer.segment(SYN, b""));
    assert_eq!(view(&poll(&mut ep, 0)[0]).flags, ACK);
    assert_eq!(ep.stats().challenge_acks, 2);
    ep.input(0, &peer.segment(RST, b""));
    assert_eq!(ep.recv(id, &mut [0; 4]), Err(Error::Reset));
    assert_eq!(ep.state(id), Ok(State::Closed));
    ep.close(id).unwrap();
    assert!(poll(&mut ep, 0).is_empty(), "no RST for a reset connection");
    assert_eq!(ep.connections(), 0);
}

#[test]
fn a_reset_connection_leaves_the_table_and_its_port_may_connect_again() {
    let mut ep = server_with(|c| c.max_connections = 1);
    let (old, peer) = connect(&mut ep, 0, 5000, None, None, 1000);
    ep.input(0, &peer.segment(RST, b""));
    assert_eq!(ep.connections(), 0, "gone from the table at once");
    // The same port again, the table full but for the reset connection's slot.
    let (new, mut again) = connect(&mut ep, MS, 5000, None, None, 1000);
    assert_eq!(new.index, old.index, "the same slot");
    again.send(&mut ep, MS, b"hello");
    assert_eq!(ep.recv(old, &mut [0; 8]), Err(Error::Reset));
    assert_eq!(ep.send(old, Piece::owned(vec![1])), Err(Error::Reset));
    assert_eq!(ep.state(old), Ok(State::Closed));
    let mut buf = [0; 8];
    assert_eq!(ep.recv(new, &mut buf), Ok(5), "the new connection's data");
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(ep.close(old), Ok(()));
    assert_eq!(ep.recv(old, &mut buf), Err(Error::BadId), "released");
    assert_eq!(ep.state(new), Ok(State::Established));
}

#[test]
fn a_kept_handle_never_reaches_a_stranger_in_its_slot_2_to_the_32_connections_later() {
    let mut ep = server_with(|c| c.max_connections = 2);
    let (kept, peer) = connect(&mut ep, 0, 5000, None, None, 1000);
    ep.input(0, &peer.segment(RST, b""));
    assert_eq!(ep.connections(), 0, "a record: the slot is free");
    // As after u32::MAX more connections through the slot (the free list is a stack, so
    // a lightly loaded server reuses it for almost every one): the next is the 2^32nd.
    let slot = &mut ep.slots[kept.index as usize];
    slot.generation = slot.generation.wrapping_add(u32::MAX.into());
    let (stranger, mut other) = connect(&mut ep, MS, 6000, None, None, 1000);
    assert_eq!(stranger.index, kept.index, "the same slot");
    other.send(&mut ep, MS, b"private");
    let mut buf = [0; 8];
    assert_eq!(ep.recv(kept, &mut buf), Err(Error::Reset), "its own ending");
    assert_eq!(ep.tuple(kept).map(|t| t.remote_port), Ok(5000));
    assert_eq!(ep.recv(stranger, &mut buf), Ok(7));
    assert_eq!(&buf[..7], b"private");
    // The stranger's connection ends too: its record does not replace the kept one's.
    ep.input(MS, &other.segment(RST, b""));
    assert_eq!(ep.connections(), 0, "both recorded");
    assert_eq!(ep.tuple(kept).map(|t| t.remote_port), Ok(5000));
    assert_eq!(ep.tuple(stranger).map(|t| t.remote_port), Ok(6000));
    ep.close(kept).unwrap();
    assert_eq!(ep.recv(kept, &mut buf), Err(Error::BadId), "released");
    assert_eq!(ep.recv(stranger, &mut buf), Err(Error::Reset));
}

#[test]
fn a_reset_connection_holds_its_slot_until_its_bytes_are_read() {
    let mut ep = server_with(|c| c.max_connections = 1);
    let (old, mut peer) = connect(&mut ep, 0, 5000, None, None, 1000);
    peer.send(&mut ep, 0, b"hello");
    ep.input(0, &peer.segment(RST, b""));
    assert_eq!(ep.connections(), 1, "its bytes still wait");
    let ack = handshake_up_to_its_last_ack(&mut ep, 5001);
    ep.input(0, &ack);
    assert_eq!(ep.stats().backlog_full, 1, "no slot yet");
    let mut buf = [0; 8];
    assert_eq!(ep.recv(old, &mut buf), Ok(5));
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(ep.connections(), 0, "read: the slot is free");
    ep.input(0, &ack);
    assert!(ep.accept().is_some(), "the new peer has it");
    assert_eq!(ep.recv(old, &mut buf), Err(Error::Reset));
}

#[test]
fn ended_connections_whose_handles_are_held_are_bounded_by_max_connections() {
    let mut ep = server_with(|c| c.max_connections = 1);
    let (first, peer) = connect(&mut ep, 0, 5000, None, None, 1000);
    ep.input(0, &peer.segment(RST, b""));
    assert_eq!(ep.connections(), 0, "a record: the slot is free");
    let (second, peer) = connect(&mut ep, 0, 5001, None, None, 1000);
    ep.input(0, &peer.segment(RST, b""));
    assert_eq!(
        ep.connections(),
        1,
        "the records are full: it keeps its slot"
    );
    for (id, port) in [(first, 5000), (second, 5001)] {
        assert_eq!(ep.recv(id, &mut [0; 8]), Err(Error::Reset));
        assert_eq!(ep.tuple(id).map(|t| t.remote_port), Ok(port));
    }
    let ack = handshake_up_to_its_last_ack(&mut ep, 5002);
    ep.input(0, &ack);
    assert_eq!(ep.stats().backlog_full, 1, "refused while both are held");
    ep.close(first).unwrap();
    assert_eq!(ep.recv(second, &mut [0; 8]), Err(Error::Reset));
    assert_eq!(ep.connections(), 0, "a record again once one was released");
    ep.input(0, &ack);
    let third = ep.accept().expect("the new peer has the slot");
    assert_eq!(ep.tuple(third).map(|t| t.remote_port), Ok(5002));
    assert_eq!(ep.recv(second, &mut [0; 8]), Err(Error::Reset));
    assert_eq!(ep.recv(first, &mut [0; 8]), Err(Error::BadId), "released");
}

#[test]
fn connections_released_into_fin_wait_2_leave_room_for_new_handshakes() {
    let mut ep = server_with(|c| {
        c.max_connections = 2;
        c.max_released = 2;
    });
    // Two clients served, then given up: their FINs acknowledged, FIN-WAIT-2 waits
    // 30 s for peers that never close.
    for (i, port) in [5000, 5001].into_iter().enumerate() {
        let now = i as u64 * MS;
        let (id, mut peer) = connect(&mut ep, now, port, None, None, 1000);
        ep.close(id).unwrap();
        poll(&mut ep, now);
        peer.ack = peer.ack.plus(1);
        peer.send(&mut ep, now, b"");
    }
    assert_eq!((ep.connections(), ep.released()), (2, 2));
    // Two more are served, as many as max_connections, a third is not.
    let (third, _) = connect(&mut ep, 2 * MS, 5002, None, None, 1000);
    let (fourth, _) = connect(&mut ep, 2 * MS, 5003, None, None, 1000);
    assert_eq!(
        ep.stats().backlog_full,
        0,
        "the released ones take no place"
    );
    let ack = handshake_up_to_its_last_ack(&mut ep, 5004);
    ep.input(2 * MS, &ack);
    assert_eq!(ep.stats().backlog_full, 1, "max_connections are served");
    // One more released than max_released: the one released longest ago is reset.
    ep.close(third).unwrap();
    let sent = poll(&mut ep, 3 * MS);
    let resets: Vec<u16> = sent
        .iter()
        .map(|p| view(p))
        .filter(|seg| seg.has(RST))
        .map(|seg| seg.dst_port)
        .collect();
    assert_eq!(resets, [5000]);
    assert_eq!(ep.stats().released_evicted, 1);
    assert_eq!((ep.connections(), ep.released()), (3, 2));
    assert_eq!(ep.state(fourth), Ok(State::Established));
}

#[test]
fn past_max_released_one_in_fin_wait_2_is_reset_before_an_older_one_still_sending() {
    let mut ep = server_with(|c| c.max_released = 2);
    // The oldest released connection still has its answer and FIN unacknowledged.
    let (sending, mut sending_peer) = connect(&mut ep, 0, 5000, None, None, 1000);
    ep.send(sending, Piece::owned(vec![7; 100])).unwrap();
    ep.close(sending).unwrap();
    assert_eq!(lengths(&poll(&mut ep, 0)), [100]);
    // A younger one has nothing left to send: its FIN acknowledged, FIN-WAIT-2.
    let (drained, mut drained_peer) = connect(&mut ep, MS, 5001, None, None, 1000);
    ep.close(drained).unwrap();
    poll(&mut ep, MS);
    drained_peer.ack = drained_peer.ack.plus(1);
    drained_peer.send(&mut ep, MS, b"");
    // A third released is one past the bound: the FIN-WAIT-2 one goes.
    let (third, _) = connect(&mut ep, 2 * MS, 5002, None, None, 1000);
    ep.close(third).unwrap();
    let resets: Vec<u16> = poll(&mut ep, 2 * MS)
        .iter()
        .map(|p| view(p))
        .filter(|seg| seg.has(RST))
        .map(|seg| seg.dst_port)
        .collect();
    assert_eq!(resets, [5001]);
    assert_eq!(ep.stats().released_evicted, 1);
    // The one still sending finishes: its answer and FIN acknowledged, the peer's FIN
    // taken into TIME-WAIT.
    sending_peer.ack = sending_peer.ack.plus(101);
    sending_peer.send(&mut ep, 3 * MS, b"");
    ep.input(3 * MS, &sending_peer.segment(ACK | FIN, b""));
    let sent = poll(&mut ep, 3 * MS);
    assert_eq!(sent.len(), 1);
    assert!(!view(&sent[0]).has(RST));
    assert_eq!(view(&sent[0]).ack, sending_peer.seq.plus(1));
    assert_eq!(ep.released(), 1, "the third alone still finishing");
}

#[test]
fn a_connection_reset_before_it_was_accepted_leaves_the_backlog() {
    let mut ep = server_with(|c| c.backlog = 1);
    let ack = handshake_up_to_its_last_ack(&mut ep, 5000);
    ep.input(0, &ack);
    ep.input(0, &packet(5000, RST, Seq(51), Seq(0), 0, b"", None, None));
    assert_eq!(ep.connections(), 0);
    let (id, _) = connect(&mut ep, 0, 5001, None, None, 1000);
    assert_eq!(ep.tuple(id).map(|t| t.remote_port), Ok(5001));
    assert!(ep.accept().is_none(), "the reset one is not handed out");
}

/// 100 moments 10 ms apart from `from`.
fn every_10ms(from: u64) -> impl Iterator<Item = u64> {
    (0..100).map(move |i| from + i * 10 * MS)
}

/// The data bytes `packets` carry.
fn payload_bytes(packets: &[Vec<u8>]) -> usize {
    packets.iter().map(|p| view(p).payload.len()).sum()
}

/// How many bare ACKs the server sends when the `forged` segments arrive in turn, one
/// at each of `times`, each followed by a poll.
fn acks_to(ep: &mut Endpoint, forged: &[&[u8]], times: impl Iterator<Item = u64>) -> usize {
    let mut acks = 0;
    for (now, segment) in times.zip(forged.iter().cycle()) {
        ep.input(now, segment);
        acks += poll(ep, now)
            .iter()
            .filter(|p| view(p).flags == ACK)
            .count();
    }
    acks
}

#[test]
fn a_flood_of_in_window_resets_and_syns_gets_a_limited_number_of_challenge_acks() {
    let limit = CHALLENGE_ACKS_PER_SECOND as usize;
    let (mut ep, id, mut peer) = established();
    let exact = peer.seq;
    peer.seq = exact.plus(10);
    let reset = peer.segment(RST, b"");
    peer.seq = exact;
    let syn = peer.segment(SYN, b"");
    // For one second, every 10 ms a reset or a SYN in turn.
    let second = |from: u64| (0..100).map(move |i| from + i * 10 * MS);
    let acks = acks_to(&mut ep, &[&reset, &syn], second(0));
    assert_eq!(acks, limit, "at most the limit in a second");
    assert_eq!(ep.stats().challenge_acks, limit as u64);
    assert_eq!(ep.stats().challenge_acks_limited, 100 - limit as u64);
    // The next second has an allowance of its own.
    assert_eq!(acks_to(&mut ep, &[&reset, &syn], second(1000 * MS)), limit);
    assert_eq!(ep.state(id), Ok(State::Established));
    // An ACK of data never sent is challenged within the same limit.
    peer.ack = peer.ack.plus(1 << 20);
    let wild = peer.segment(ACK, b"");
    assert_eq!(acks_to(&mut ep, &[&wild], second(2000 * MS)), limit);
    // A reset at the exact number still ends the connection at once.
    ep.input(
        2000 * MS,
        &packet(5000, RST, exact, Seq(0), 0, b"", None, None),
    );
    assert_eq!(ep.state(id), Ok(State::Closed));
}

#[test]
fn out_of_window_acks_are_limited_but_retransmitted_data_is_always_acknowledged() {
    let (mut ep, id, mut peer) = established();
    let exact = peer.seq;
    // A desynchronized peer's bare ACKs, far outside the window: one ACK per interval
    // (else the two ends would ACK each other's ACKs for ever).
    peer.seq = exact.plus(1 << 30);
    let stray = peer.segment(ACK, b"");
    let interval = OUT_OF_WINDOW_ACK_INTERVAL_NS;
    assert_eq!(
        acks_to(&mut ep, &[&stray], every_10ms(0)),
        2,
        "one per 500 ms"
    );
    assert_eq!(ep.stats().out_of_window_acks_limited, 98);
    // Data already taken, sent again, is acknowledged every time: its sender needs it.
    peer.seq = exact;
    peer.send(&mut ep, 1000 * MS, b"taken");
    poll(&mut ep, 1000 * MS);
    let again = peer.segment(ACK, b"taken");
    assert_eq!(acks_to(&mut ep, &[&again], every_10ms(1000 * MS)), 100);
    // An out-of-window SYN draws a challenge ACK, within the challenge limit.
    peer.seq = exact.plus(1 << 30);
    let syn = peer.segment(SYN, b"");
    let limit = CHALLENGE_ACKS_PER_SECOND as usize;
    assert_eq!(acks_to(&mut ep, &[&syn], every_10ms(2000 * MS)), limit);
    assert_eq!(ep.state(id), Ok(State::Established));
    // After an interval without one, a stray ACK is answered again.
    ep.input(3000 * MS + interval, &stray);
    assert_eq!(poll(&mut ep, 3000 * MS + interval).len(), 1);
}

#[test]
fn time_wait_limits_its_acks_to_stray_acks_but_not_to_a_retransmitted_fin() {
    let mut ep = server(Config::default());
    let mut peer = in_time_wait_after(&mut ep, 0, 5000, 10);
    let closed_at = peer.seq;
    peer.seq = closed_at.plus(1 << 30);
    let stray = peer.segment(ACK, b"");
    assert_eq!(
        acks_to(&mut ep, &[&stray], every_10ms(MS)),
        2,
        "one per 500 ms"
    );
    assert_eq!(ep.stats().out_of_window_acks_limited, 98);
    peer.seq = closed_at;
    let fin = peer.fin_again();
    assert_eq!(acks_to(&mut ep, &[&fin], every_10ms(1001 * MS)), 100);
}

#[test]
fn a_half_open_connection_limits_its_challenge_acks_too() {
    let limit = CHALLENGE_ACKS_PER_SECOND as usize;
    let mut ep = server(Config::default());
    half_open_from_5000(&mut ep);
    let syn = packet(5000, SYN, Seq(90_000), Seq(0), 1000, b"", None, None);
    let reset = packet(5000, RST, Seq(1011), Seq(0), 0, b"", None, None);
    // Batches of forged segments before a poll, each owed a reply of its own.
    let mut acks_to_batch = |now| {
        for _ in 0..50 {
            ep.input(now, &syn);
            ep.input(now, &reset);
        }
        let sent = poll(&mut ep, now);
        sent.iter().filter(|p| view(p).flags == ACK).count()
    };
    assert_eq!(acks_to_batch(0), limit);
    assert_eq!(acks_to_batch(500 * MS), 0, "the same second");
    assert_eq!(acks_to_batch(1000 * MS), limit, "the next second");
    assert_eq!(ep.half_open(), 1);
    assert_eq!(ep.stats().challenge_acks_limited, 300 - 2 * limit as u64);
    // Bare ACKs out of its window: one answered per 500 ms.
    let stray = packet(
        5000,
        ACK,
        Seq(1001 + (1 << 30)),
        Seq(0),
        1000,
        b"",
        None,
        None,
    );
    assert_eq!(acks_to(&mut ep, &[&stray], every_10ms(2000 * MS)), 2);
    assert_eq!(ep.stats().out_of_window_acks_limited, 98);
}

#[test]
fn segments_out_of_window_are_dropped_counted_and_acknowledged() {
    let mut ep = server_with(|c| c.recv_buffer = 100);
    let (id, mut peer) = connect(&mut ep, 0, 5000, None, None, 1000);
    let start = peer.seq;
    peer.seq = start.plus(100);
    peer.send(&mut ep, 0, b"beyond");
    peer.seq = start.plus(usize::MAX - 20);
    peer.send(&mut ep, 0, b"before");
    let acks = poll(&mut ep, 0);
    assert_eq!(acks.len(), 1);
    assert_eq!(view(&acks[0]).ack, start);
    assert_eq!(ep.stats().out_of_window, 2);
    // Data past the window's end is cut to it.
    peer.seq = start;
    peer.send(&mut ep, 0, &[5; 150]);
    assert_eq!(ep.recv(id, &mut [0; 200]), Ok(100));
    // An ACK of data never sent is dropped and answered.
    peer.ack = peer.ack.plus(50);
    peer.send(&mut ep, 0, b"");
    assert_eq!(ep.stats().out_of_window, 3);
}

#[test]
fn the_receive_window_closes_as_data_waits_and_reopens_when_read() {
    let mut ep = server_with(|c| c.recv_buffer = 4000);
    let (id, mut peer) = connect(&mut ep, 0, 5000, None, None, 1000);
    peer.send(&mut ep, 0, &[1; 1000]);
    assert_eq!(view(&poll(&mut ep, 0)[0]).window, 3000);
    peer.send(&mut ep, 0, &[2; 3000]);
    assert_eq!(view(&poll(&mut ep, 0)[0]).window, 0);
    // A zero-window probe is answered, its byte not taken.
    peer.send(&mut ep, 0, &[3]);
    let answer = poll(&mut ep, 0);
    assert_eq!(view(&answer[0]).ack, peer.seq.plus(usize::MAX));
    let mut buf = [0; 4000];
    assert_eq!(ep.recv(id, &mut buf[..100]), Ok(100));
    assert!(
        poll(&mut ep, 0).is_empty(),
        "100 bytes is too small an update"
    );
    assert_eq!(ep.recv(id, &mut buf), Ok(3900));
    let update = poll(&mut ep, 0);
    assert_eq!(view(&update[0]).window, 4000);
}

#[test]
fn segments_for_no_connection_are_answered_with_resets() {
    let mut ep = server(Config::default());
    let mut closed_port = packet(5000, SYN, Seq(10), Seq(0), 100, b"", None, None);
    closed_port[22..24].copy_from_slice(&81u16.to_be_bytes());
    let mut header = [0; MAX_HEADERS];
    let fixed = Header {
        dst_port: 81,
        ..Header {
            src: CLIENT,
            dst: SERVER,
            src_port: 5000,
            dst_port: 80,
            seq: Seq(10),
            ack: Seq(0),
            flags: SYN,
            window: 100,
            mss: None,
            window_scale: None,
        }
    };
    let n = write_headers(&fixed, 1, 0, 0, &mut header);
    ep.input(0, &header[..n]);
    ep.input(
        0,
        &packet(5001, ACK, Seq(10), Seq(777), 100, b"x", None, None),
    );
    ep.input(0, &packet(5002, RST, Seq(10), Seq(0), 100, b"", None, None));
    let sent = poll(&mut ep, 0);
    assert_eq!(sent.len(), 2, "no answer to a RST");
    let (a, b) = (view(&sent[0]), view(&sent[1]));
    assert_eq!((a.flags, a.seq, a.ack), (RST | ACK, Seq(0), Seq(11)));
    assert_eq!((b.flags, b.seq), (RST, Seq(777)));
    assert_eq!(ep.stats().no_connection, 3);
}

#[test]
fn resets_for_no_connection_go_back_to_the_link_address_of_their_segment() {
    const LINK: LinkAddress = [2, 0, 0, 0, 0, 0x22];
    let mut ep = server(Config::default());
    let stray = packet(5001, ACK, Seq(10), Seq(777), 100, b"x", None, None);
    ep.input_from(0, &stray, LINK);
    // A SYN, then an ACK that does not acknowledge the SYN-ACK.
    ep.input_from(
        0,
        &packet(5002, SYN, Seq(10), Seq(0), 100, b"", None, None),
        LINK,
    );
    let wrong_ack = packet(5002, ACK, Seq(11), Seq(12345), 100, b"", None, None);
    ep.input_from(0, &wrong_ack, LINK);
    // Without its link-layer source, the caller finds the way itself.
    ep.input(
        0,
        &packet(5003, ACK, Seq(10), Seq(888), 100, b"", None, None),
    );
    let mut sent = Vec::new();
    ep.poll(0, &mut |segment| {
        let mut packet = Vec::new();
        segment.copy_to(&mut packet);
        let seg = view(&packet);
        sent.push((seg.dst_port, seg.flags, segment.reply_to));
        true
    });
    sent.sort();
    assert_eq!(
        sent,
        [
            (5001, RST, Some(LINK)),
            (5002, RST, Some(LINK)),
            (5002, SYN | ACK, None),
            (5003, RST, None),
        ],
        "only the resets answering a segment go back its way"
    );
}

#[test]
fn abort_sends_a_reset_and_gives_the_handle_up() {
    let mut ep = server(Config::default());
    let (id, peer) = connect(&mut ep, 0, 5000, None, None, 1000);
    ep.send(id, Piece::owned(b"never".to_vec())).unwrap();
    ep.abort(id).unwrap();
    let sent = poll(&mut ep, 0);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (view(&sent[0]).flags, view(&sent[0]).seq),
        (RST | ACK, peer.ack)
    );
    assert_eq!(ep.connections(), 0);
    assert_eq!(ep.send(id, Piece::owned(vec![1])), Err(Error::BadId));
}

#[test]
fn a_reset_after_a_retransmission_timeout_is_sent_at_the_highest_number_sent() {
    let mut ep = server(Config::default());
    let (id, peer) = connect(&mut ep, 0, 5000, None, None, 10_000);
    ep.send(id, Piece::shared(blob(3000), 0, 3000).unwrap())
        .unwrap();
    let sent = poll(&mut ep, 0);
    let last = view(sent.last().unwrap());
    let snd_max = last.seq.plus(last.seq_len());
    assert_eq!(snd_max, peer.ack.plus(3000));
    // The timeout rewinds to the first unacknowledged byte and resends one segment.
    let again = poll(&mut ep, Config::default().rto_initial_ns);
    assert_eq!(view(&again[0]).seq, peer.ack);
    ep.abort(id).unwrap();
    let rst = poll(&mut ep, Config::default().rto_initial_ns);
    assert_eq!(
        (view(&rst[0]).flags, view(&rst[0]).seq),
        (RST | ACK, snd_max)
    );
}

#[test]
fn a_reset_behind_a_zero_window_is_sent_where_the_peer_takes_it() {
    // A zero window and a probe's byte outstanding: a RST past RCV.NXT is dropped by a
    // peer whose window is zero (RFC 9293 3.10.7.4), so it goes at the window's end.
    let mut ep = server(Config::default());
    let (id, peer) = connect(&mut ep, 0, 5000, None, None, 0);
    ep.send(id, Piece::owned(vec![1; 100])).unwrap();
    assert!(poll(&mut ep, 0).is_empty(), "nothing fits a zero window");
    assert_eq!(lengths(&poll(&mut ep, 1000 * MS)), [1], "a probe");
    ep.abort(id).unwrap();
    let rst = poll(&mut ep, 1001 * MS);
    assert_eq!(
        (view(&rst[0]).flags, view(&rst[0]).seq),
        (RST | ACK, peer.ack)
    );
}

/// The sequence number of the ACK `ep` sends at `now` for a request the peer sends then.
fn ack_of_a_request(ep: &mut Endpoint, peer: &mut Peer, now: u64) -> Seq {
    peer.send(ep, now, b"GET / HTTP/1.1\r\n\r\n");
    let sent = poll(ep, now);
    assert_eq!(sent.len(), 1);
    let ack = view(&sent[0]);
    assert_eq!((ack.payload.len(), ack.ack), (0, peer.seq), "a pure ACK");
    ack.seq
}

#[test]
fn a_pure_ack_after_a_retransmission_timeout_is_sent_at_the_highest_number_sent() {
    let mut ep = server(Config::default());
    let (id, mut peer) = connect(&mut ep, 0, 5000, Some(1000), None, 60_000);
    ep.send(id, Piece::shared(blob(5000), 0, 5000).unwrap())
        .unwrap();
    assert_eq!(poll(&mut ep, 0).len(), 5);
    let snd_max = peer.ack.plus(5000);
    // The peer got the flight, but its ACKs were lost: the timeout resends the first.
    let again = poll(&mut ep, 1000 * MS);
    assert_eq!(lengths(&again), [1000]);
    // A request the peer sent before the flight reached it: its RCV.NXT is SND.MAX,
    // and a segment below it is dropped (RFC 9293, 3.10.7.4).
    assert_eq!(ack_of_a_request(&mut ep, &mut peer, 1001 * MS), snd_max);
}

#[test]
fn a_pure_ack_past_the_peers_window_is_sent_at_its_end_or_at_snd_nxt() {
    // Behind a zero window, at the probe's byte, which the peer did not take.
    let mut ep = server(Config::default());
    let (id, mut peer) = connect(&mut ep, 0, 5000, None, None, 0);
    ep.send(id, Piece::owned(vec![1; 100])).unwrap();
    assert!(poll(&mut ep, 0).is_empty(), "nothing fits a zero window");
    assert_eq!(lengths(&poll(&mut ep, 1000 * MS)), [1], "a probe");
    assert_eq!(ack_of_a_request(&mut ep, &mut peer, 1001 * MS), peer.ack);
    // A window shrunk below what was sent (rounded down under the peer's scale): at
    // `snd_nxt`, which a peer that got it all holds.
    let mut ep = server(Config::default());
    let (id, mut peer) = connect(&mut ep, 0, 5000, Some(1000), None, 3000);
    ep.send(id, Piece::shared(blob(5000), 0, 5000).unwrap())
        .unwrap();
    assert_eq!(lengths(&poll(&mut ep, 0)), [1000; 3]);
    peer.window = 2000;
    assert_eq!(
        ack_of_a_request(&mut ep, &mut peer, MS),
        peer.ack.plus(3000)
    );
}

#[test]
fn the_send_queue_is_bounded_and_closes_with_the_connection() {
    let mut ep = server_with(|c| c.max_send_pieces = 2);
    let (id, _) = connect(&mut ep, 0, 5000, None, None, 1000);
    let file = blob(10);
    assert!(
        Piece::shared(file.clone(), 5, 11).is_none(),
        "a range past the end"
    );
    assert!(Piece::shared(file.clone(), 6, 5).is_none());
    ep.send(id, Piece::shared(file.clone(), 0, 10).unwrap())
        .unwrap();
    ep.send(id, Piece::owned(vec![1])).unwrap();
    assert_eq!(ep.send(id, Piece::owned(vec![2])), Err(Error::QueueFull));
    assert_eq!(ep.unacknowledged(id), Ok(11));
    ep.shutdown(id).unwrap();
    assert_eq!(ep.send(id, Piece::owned(vec![2])), Err(Error::Closed));
    assert_eq!(ep.listen(80), Err(Error::PortInUse));
}

#[test]
fn listens_names_the_ports_listen_took() {
    let mut ep = Endpoint::new(Config::default()).expect("a sound config");
    assert!(!ep.listens(80));
    ep.listen(80).unwrap();
    assert!(ep.listens(80));
    assert!(!ep.listens(81));
    assert_eq!(ep.listen(80), Err(Error::PortInUse));
    assert!(ep.listens(80));
}

#[test]
fn segments_are_filled_to_the_mss_across_pieces_without_copies() {
    let mut ep = server(Config::default());
    let (id, _) = connect(&mut ep, 0, 5000, Some(1000), None, 60_000);
    let file = blob(3000);
    ep.send(id, Piece::owned(b"HTTP/1.1 200 OK\r\n\r\n".to_vec()))
        .unwrap();
    ep.send(id, Piece::shared(file.clone(), 1, 2501).unwrap())
        .unwrap();
    let range = file.bytes().as_ptr_range();
    let mut shapes = Vec::new();
    ep.poll(0, &mut |segment| {
        let lens: Vec<usize> = segment.payload.iter().map(|p| p.len()).collect();
        let borrowed = segment
            .payload
            .iter()
            .filter(|p| range.contains(&p.as_ptr()))
            .count();
        shapes.push((lens, borrowed));
        true
    });
    assert_eq!(
        shapes,
        vec![(vec![19, 981], 1), (vec![1000], 1), (vec![519], 1)],
        "full segments across the head/body boundary, the body in place"
    );
}

#[test]
fn an_emitter_that_refuses_loses_nothing() {
    let mut ep = server(Config::default());
    let (id, _) = connect(&mut ep, 0, 5000, None, None, 60_000);
    ep.send(id, Piece::owned(vec![9; 1000])).unwrap();
    ep.poll(0, &mut |_| false);
    let sent = poll(&mut ep, 0);
    assert_eq!(view(&sent[0]).payload, &[9; 536][..]);
    assert_eq!(ep.stats().segments_retransmitted, 0);
}

#[test]
fn a_full_emitter_is_shared_by_the_connections_in_turn() {
    let mut ep = server(Config::default());
    let ports = [5000, 5001, 5002];
    let ids: Vec<ConnId> = ports
        .iter()
        .map(|&port| connect(&mut ep, 0, port, Some(1000), None, 60_000).0)
        .collect();
    for id in ids {
        // Ten segments' worth each, more than one poll's room.
        ep.send(id, Piece::shared(blob(10_000), 0, 10_000).unwrap())
            .unwrap();
    }
    // An emitter with room for four segments per poll, as a small transmit ring.
    let mut served = Vec::new();
    for _ in 0..3 {
        let mut room = 4;
        ep.poll(0, &mut |segment| {
            if room == 0 {
                return false;
            }
            room -= 1;
            served.push(u16::from_be_bytes([
                segment.headers[22],
                segment.headers[23],
            ]));
            true
        });
    }
    // Every connection got segments within the three polls, not only the first.
    for port in ports {
        assert!(served.contains(&port), "{port} waited: {served:?}");
    }
}

#[test]
fn a_connection_done_with_the_network_leaves_its_slot_while_the_emitter_is_full() {
    let mut ep = server(Config::default());
    let (closing, mut a) = connect(&mut ep, 0, 5000, Some(1000), None, 60_000);
    let (busy, mut b) = connect(&mut ep, 0, 5001, Some(1000), None, 60_000);
    // A is released and reaches TIME-WAIT; its last ACK is still owed.
    ep.close(closing).unwrap();
    poll(&mut ep, 0);
    a.ack = a.ack.plus(1);
    ep.input(0, &a.segment(ACK | FIN, b""));
    // B has far more queued than a transmit ring of four segments takes per poll,
    // and its peer acknowledges all it got after each poll: every poll ends refused.
    let bytes = 1_000_000;
    ep.send(busy, Piece::shared(blob(bytes), 0, bytes).unwrap())
        .unwrap();
    for round in 1..=100 {
        let now = round * MS;
        let mut room = 4;
        let mut b_sent_up_to = None;
        ep.poll(now, &mut |segment| {
            if room == 0 {
                return false;
            }
            room -= 1;
            let mut packet = Vec::new();
            segment.copy_to(&mut packet);
            let seg = view(&packet);
            if seg.dst_port == 5001 {
                b_sent_up_to = Some(seg.seq.plus(seg.seq_len()));
            }
            true
        });
        assert_eq!(room, 0, "round {round}: the ring was full");
        if let Some(end) = b_sent_up_to {
            b.ack = end;
            b.send(&mut ep, now, b"");
        }
    }
    assert_eq!(
        (ep.connections(), ep.time_wait()),
        (1, 1),
        "A left its slot for the compact TIME-WAIT table"
    );
}

#[test]
fn malformed_packets_are_counted_and_never_panic() {
    let mut ep = server(Config::default());
    let (_, peer) = connect(&mut ep, 0, 5000, None, None, 60_000);
    let good = peer.segment(ACK, b"payload");
    let mut bad_sum = good.clone();
    bad_sum[45] ^= 1;
    ep.input(0, &bad_sum);
    ep.input(0, &good[..30]);
    ep.input(0, &[0x45]);
    let mut udp = good.clone();
    udp[9] = 17;
    ep.input(0, &udp);
    let s = ep.stats();
    assert_eq!((s.bad_checksum, s.truncated, s.not_tcp), (1, 2, 1));
    // Random bytes and random mutations of a valid segment.
    let mut state = 0x1234_5678_9abc_def1u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..100_000u64 {
        let mut packet = if round % 2 == 0 {
            good.clone()
        } else {
            (0..next() % 80).map(|_| next() as u8).collect()
        };
        for _ in 0..next() % 4 {
            if !packet.is_empty() {
                let at = (next() as usize) % packet.len();
                packet[at] = next() as u8;
            }
        }
        ep.input(round, &packet);
        if round % 1000 == 0 {
            poll(&mut ep, round);
        }
    }
    assert_eq!(ep.stats().segments_in, 100_006);
    // The endpoint still serves: a new connection carries data.
    while ep.accept().is_some() {}
    poll(&mut ep, 200_000);
    let (id, mut fresh) = connect(&mut ep, 200_000, 7000, None, None, 60_000);
    fresh.send(&mut ep, 200_000, b"still here");
    let mut buf = [0; 16];
    assert_eq!(ep.recv(id, &mut buf), Ok(10));
}

#[test]
fn a_fin_is_taken_at_a_zero_window() {
    let mut ep = server_with(|c| c.recv_buffer = 100);
    let (id, mut peer) = connect(&mut ep, 0, 5000, None, None, 1000);
    peer.send(&mut ep, 0, &[4; 100]);
    assert_eq!(view(&poll(&mut ep, 0)[0]).window, 0);
    ep.input(0, &peer.segment(ACK | FIN, b""));
    assert_eq!(ep.state(id), Ok(State::CloseWait));
    assert_eq!(view(&poll(&mut ep, 0)[0]).ack, peer.seq.plus(1));
    assert_eq!(ep.recv(id, &mut [0; 200]), Ok(100));
    assert_eq!(ep.recv(id, &mut [0; 200]), Err(Error::Finished));
}

#[test]
fn a_keepalive_waits_while_data_is_outstanding() {
    let mut ep = server_with(|c| c.keepalive_ns = Some(10_000 * MS));
    let (id, _) = connect(&mut ep, 0, 5000, None, None, 1000);
    ep.send(id, Piece::owned(b"unanswered".to_vec())).unwrap();
    poll(&mut ep, 0);
    for ms in [10_000, 12_000] {
        poll(&mut ep, ms * MS);
        assert!(
            ep.next_deadline().is_some_and(|at| at > ms * MS),
            "no timer left due"
        );
    }
    assert_eq!(ep.stats().keepalive_probes, 0);
}

#[test]
fn fin_wait_2_waits_for_a_connection_still_reading_and_its_timeout_starts_at_the_close() {
    let (mut ep, id, mut peer) = in_fin_wait_2(false);
    let wait = Config::default().fin_wait2_ns;
    let later = wait + MS;
    poll(&mut ep, later);
    assert_eq!(ep.state(id), Ok(State::FinWait2));
    peer.send(&mut ep, later, b"more");
    assert_eq!(ep.recv(id, &mut [0; 8]), Ok(4));
    // Released only now, long after FIN-WAIT-2 began: its 30 s start now.
    ep.close(id).unwrap();
    poll(&mut ep, later);
    assert_eq!(ep.connections(), 1, "not dropped at once");
    assert_eq!(ep.next_deadline(), Some(later + wait));
    poll(&mut ep, later + wait - MS);
    assert_eq!(ep.connections(), 1);
    // The peer's FIN within them: acknowledged, and TIME-WAIT, not a reset.
    ep.input(later + wait - MS, &peer.segment(ACK | FIN, b""));
    let ack = poll(&mut ep, later + wait - MS);
    assert_eq!(view(&ack[0]).flags, ACK);
    assert_eq!((ep.connections(), ep.time_wait()), (0, 1));
    assert_eq!(ep.stats().fin_wait2_timeouts, 0);
}

#[test]
fn a_fin_first_sent_by_a_fast_retransmit_can_be_acknowledged() {
    let mut ep = server(Config::default());
    let (id, mut peer) = connect(&mut ep, 0, 5000, Some(1000), None, 60_000);
    ep.send(id, Piece::owned(vec![1; 500])).unwrap();
    let first = poll(&mut ep, 0);
    assert_eq!(view(&first[0]).payload.len(), 500);
    assert!(!view(&first[0]).has(FIN), "not shut down yet");
    // Shut down between the duplicate ACKs and the next poll: the retransmission is
    // the first to carry the FIN.
    for _ in 0..3 {
        peer.send(&mut ep, MS, b"");
    }
    ep.shutdown(id).unwrap();
    let again = poll(&mut ep, MS);
    assert_eq!(view(&again[0]).payload.len(), 500);
    assert!(view(&again[0]).has(FIN));
    peer.ack = peer.ack.plus(501);
    peer.send(&mut ep, 2 * MS, b"");
    assert_eq!(ep.state(id), Ok(State::FinWait2));
}

#[test]
fn a_fast_retransmit_stays_within_the_send_window() {
    let mut ep = server(Config::default());
    let (id, mut peer) = connect(&mut ep, 0, 5000, Some(1000), None, 300);
    ep.send(id, Piece::owned(vec![1; 500])).unwrap();
    ep.shutdown(id).unwrap();
    let first = poll(&mut ep, 0);
    assert_eq!(
        view(&first[0]).payload.len(),
        300,
        "the window's worth, no FIN yet"
    );
    for _ in 0..3 {
        peer.send(&mut ep, MS, b"");
    }
    let again = poll(&mut ep, MS);
    assert_eq!(again.len(), 1);
    assert_eq!(
        (view(&again[0]).seq, view(&again[0]).payload.len()),
        (peer.ack, 300),
        "the window's worth again, not the 500 queued"
    );
    assert!(!view(&again[0]).has(FIN));
    assert_eq!(ep.stats().fast_retransmits, 1);
}

/// A connection from port 5000 (MSS 1000, a window of 60,000: an initial congestion
/// window of 10 segments) that sent `answers` answers of `size` bytes, `gap` apart from
/// `gap` on, each acknowledged 5 ms after it went: the connection, its peer and the
/// time of the last ACK.
fn after_answers(ep: &mut Endpoint, answers: u64, size: usize, gap: u64) -> (ConnId, Peer, u64) {
    let (id, mut peer) = connect(ep, 0, 5000, Some(1000), None, 60_000);
    let mut now = 0;
    for _ in 0..answers {
        now += gap;
        ep.send(id, Piece::shared(blob(size), 0, size).unwrap())
            .unwrap();
        for packet in poll(ep, now) {
            let seg = view(&packet);
            peer.ack = seg.seq.plus(seg.seq_len());
        }
        peer.send(ep, now + 5 * MS, b"");
    }
    assert_eq!(ep.unacknowledged(id), Ok(0));
    (id, peer, now + 5 * MS)
}

#[test]
fn acks_of_a_flight_below_half_the_congestion_window_do_not_grow_it() {
    let mut ep = server(Config::default());
    // 100 answers of 100 bytes, 10 ms apart (well within the RTO): a flight of 100
    // bytes each time, far below the 10,000-byte window.
    let (id, mut peer, now) = after_answers(&mut ep, 100, 100, 10 * MS);
    ep.send(id, Piece::shared(blob(1_000_000), 0, 1_000_000).unwrap())
        .unwrap();
    let burst = poll(&mut ep, now);
    assert_eq!(
        payload_bytes(&burst),
        10_000,
        "the initial window, not grown"
    );
    // A flight that fills it grows it: slow start, one segment per segment acknowledged.
    for _ in 0..10 {
        peer.ack = peer.ack.plus(1000);
        peer.send(&mut ep, now + 5 * MS, b"");
    }
    assert_eq!(payload_bytes(&poll(&mut ep, now + 5 * MS)), 20_000);
}

/// Sends `bytes` queued on `id` at `now`, `peer` acknowledging each segment on its
/// own as it arrives (slow start grows the window by a segment for each); the payload
/// bytes of the first poll's burst.
fn sent_and_acknowledged(
    ep: &mut Endpoint,
    id: ConnId,
    peer: &mut Peer,
    bytes: usize,
    now: u64,
) -> usize {
    ep.send(id, Piece::shared(blob(bytes), 0, bytes).unwrap())
        .unwrap();
    let mut first = None;
    while ep.unacknowledged(id) != Ok(0) {
        let sent = poll(ep, now);
        first.get_or_insert(payload_bytes(&sent));
        for packet in sent {
            let seg = view(&packet);
            peer.ack = seg.seq.plus(seg.seq_len());
            peer.send(ep, now, b"");
        }
    }
    first.unwrap_or(0)
}

#[test]
fn an_idle_connection_restarts_from_the_initial_window() {
    let mut ep = server(Config::default());
    let (id, mut peer) = connect(&mut ep, 0, 5000, Some(1000), Some(0), 60_000);
    // 100 KB, each segment acknowledged: the window grows far past 10 segments.
    assert_eq!(
        sent_and_acknowledged(&mut ep, id, &mut peer, 100_000, 0),
        10_000
    );
    // Within the RTO (1 s) of the last data: the grown window still holds.
    let burst = sent_and_acknowledged(&mut ep, id, &mut peer, 30_000, 10 * MS);
    assert_eq!(burst, 30_000);
    // A minute idle: the first burst is the initial window again.
    let now = 60_000 * MS;
    ep.send(id, Piece::shared(blob(1_000_000), 0, 1_000_000).unwrap())
        .unwrap();
    assert_eq!(payload_bytes(&poll(&mut ep, now)), 10_000);
}

/// Runs `ep`'s timers from deadline to deadline up to `until` while `peer` keeps a
/// zero window, answering every segment with an ACK (`answer`) or silent, and polls
/// again after its answers (which may draw a RST); returns the time (ms), payload
/// length and flags of every segment sent.
fn behind_a_zero_window(
    ep: &mut Endpoint,
    peer: &Peer,
    until: u64,
    answer: bool,
) -> Vec<(u64, usize, u8)> {
    assert_eq!(peer.window, 0);
    let mut sent = Vec::new();
    let mut last = None;
    while let Some(at) = ep.next_deadline().filter(|&at| at <= until) {
        assert!(last.is_none_or(|last| at > last), "the timers move on");
        last = Some(at);
        let mut due = poll(ep, at);
        while !due.is_empty() {
            for packet in due {
                let seg = view(&packet);
                sent.push((at / MS, seg.payload.len(), seg.flags));
                if answer && !seg.has(RST) {
                    ep.input(at, &peer.segment(ACK, b""));
                }
            }
            due = poll(ep, at);
        }
    }
    sent
}

/// The one-byte zero-window probes among `sent` and the time of the first RST.
fn probes_and_reset(sent: &[(u64, usize, u8)]) -> (usize, Option<u64>) {
    let probes = sent.iter().filter(|s| s.1 == 1 && s.2 & RST == 0).count();
    let reset = sent.iter().find(|s| s.2 & RST != 0).map(|s| s.0);
    (probes, reset)
}

#[test]
fn a_silent_peer_behind_a_zero_window_is_reset_after_max_retransmits_probes() {
    let mut ep = server_with(|c| c.max_retransmits = 4);
    let (id, peer) = connect(&mut ep, 0, 5000, None, None, 0);
    ep.send(id, Piece::owned(vec![1; 100])).unwrap();
    ep.shutdown(id).unwrap();
    assert!(poll(&mut ep, 0).is_empty(), "nothing fits a zero window");
    let sent = behind_a_zero_window(&mut ep, &peer, 3_600_000 * MS, false);
    // Probes 1, 2, 4, 8 s apart (the RTO backed off), unanswered; the fifth time resets.
    let probe = ACK | PSH;
    let expected = [
        (1000, 1, probe),
        (3000, 1, probe),
        (7000, 1, probe),
        (15_000, 1, probe),
        (31_000, 0, RST | ACK),
    ];
    assert_eq!(sent, expected);
    assert_eq!(ep.recv(id, &mut [0; 4]), Err(Error::TimedOut));
    assert_eq!(ep.stats().zero_window_timeouts, 1);
    assert_eq!(ep.next_deadline(), None, "no timer left");
}

#[test]
fn a_closed_connection_behind_a_silent_zero_window_is_reset_and_its_slot_freed() {
    let mut ep = server_with(|c| c.max_connections = 1);
    let (id, mut peer) = connect(&mut ep, 0, 5000, None, None, 0);
    peer.send(&mut ep, 0, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(ep.recv(id, &mut [0; 64]), Ok(18));
    ep.send(id, Piece::owned(vec![1; 1000])).unwrap();
    ep.close(id).unwrap();
    assert_eq!(poll(&mut ep, 0).len(), 1, "the request's ACK");
    assert_eq!(ep.connections(), 1);
    let sent = behind_a_zero_window(&mut ep, &peer, 3_600_000 * MS, false);
    // Released: probes at most 15 s apart (a quarter of `released_zero_window_ns`),
    // one at once when the 60 s ran out, and reset after `max_retransmits` (10)
    // unanswered.
    assert_eq!(probes_and_reset(&sent), (10, Some(120_000)));
    assert_eq!(ep.connections(), 0, "the slot is free");
    let (again, _) = connect(&mut ep, 120_000 * MS, 5001, None, None, 1000);
    assert_eq!(ep.state(again), Ok(State::Established));
}

#[test]
fn a_closed_connection_is_reset_behind_a_zero_window_even_if_its_peer_answers() {
    let mut ep = server(Config::default());
    let (id, peer) = connect(&mut ep, 0, 5000, None, None, 0);
    ep.send(id, Piece::owned(vec![1; 1000])).unwrap();
    ep.close(id).unwrap();
    assert!(poll(&mut ep, 0).is_empty());
    let sent = behind_a_zero_window(&mut ep, &peer, 3_600_000 * MS, true);
    // Probes 1, 2, 4, 8, then 15 s apart (a quarter of `released_zero_window_ns`),
    // and one at once when the 60 s ran out: its answer still shows a zero window.
    assert_eq!(probes_and_reset(&sent), (7, Some(60_000)));
    assert_eq!(sent.len(), 8, "probes, then the RST: {sent:?}");
    assert_eq!(ep.connections(), 0);
    assert_eq!(ep.stats().zero_window_timeouts, 1);
}

/// Runs `ep`'s timers from deadline to deadline up to `until` while `peer` takes every
/// segment in order, whatever its window (a probe's byte too), and acknowledges it,
/// polling again after its answers; returns the payload bytes it took and whether a
/// RST came.
fn taken_in_order(ep: &mut Endpoint, peer: &mut Peer, until: u64) -> (usize, bool) {
    let (mut taken, mut reset) = (0, false);
    while let Some(at) = ep.next_deadline().filter(|&at| at <= until) {
        let mut due = poll(ep, at);
        while !due.is_empty() {
            for packet in due {
                let seg = view(&packet);
                reset |= seg.has(RST);
                if seg.has(RST) || seg.seq != peer.ack {
                    continue;
                }
                taken += seg.payload.len();
                peer.ack = peer.ack.plus(seg.seq_len());
                peer.send(ep, at, b"");
            }
            due = poll(ep, at);
        }
    }
    (taken, reset)
}

#[test]
fn a_closed_connection_probes_when_its_wait_runs_out_so_a_lost_window_update_costs_nothing() {
    let mut ep = server(Config::default());
    let (id, mut peer) = connect(&mut ep, 0, 5000, None, None, 4000);
    ep.send(id, Piece::shared(blob(100_000), 0, 100_000).unwrap())
        .unwrap();
    ep.close(id).unwrap();
    let first = payload_bytes(&poll(&mut ep, 0));
    // A second later (the round trip: the RTO is 3 s) the peer takes it and its
    // window closes; it answers each probe so until 55 s later.
    let t0 = 1000 * MS;
    peer.window = 0;
    peer.ack = peer.ack.plus(first);
    peer.send(&mut ep, t0, b"");
    let sent = behind_a_zero_window(&mut ep, &peer, t0 + 55_000 * MS, true);
    assert!(sent.iter().all(|s| s.1 == 1 && s.2 & RST == 0), "{sent:?}");
    // Then the peer reads, and its window update is lost: the next probe, due at
    // 66 s, would learn of it too late. The wait runs out at 60 s: a probe goes at
    // once, and its answer opens the window.
    peer.window = 4000;
    assert_eq!(ep.next_deadline(), Some(t0 + 60_000 * MS));
    let (rest, reset) = taken_in_order(&mut ep, &mut peer, t0 + 61_000 * MS);
    assert!(!reset, "never reset while the peer reads");
    assert_eq!(first + rest, 100_000, "everything delivered");
    assert_eq!(ep.stats().zero_window_timeouts, 0);
}

#[test]
fn a_closed_connection_whose_peer_takes_each_probe_behind_a_zero_window_is_kept_within_the_cap() {
    let mut ep = server(Config::default());
    let (id, mut peer) = connect(&mut ep, 0, 5000, None, None, 0);
    ep.send(id, Piece::owned(vec![1; 1000])).unwrap();
    ep.close(id).unwrap();
    assert!(poll(&mut ep, 0).is_empty(), "nothing fits a zero window");
    // The peer reads a little at a time, too little to open its window (receiver
    // silly-window avoidance) but enough to take each probe's byte: it makes
    // progress, and the released connection's 60 s count from its last, up to the
    // cap of 4 waits (240 s) from when the window closed.
    let (taken, reset) = taken_in_order(&mut ep, &mut peer, 239_000 * MS);
    assert!(
        !reset,
        "never reset within the cap while the peer takes more"
    );
    assert!(taken > 10, "a byte a probe: {taken}");
    assert_eq!(ep.stats().zero_window_timeouts, 0);
}

#[test]
fn a_closed_connection_whose_peer_takes_each_probe_at_a_zero_window_is_reset_by_the_cap() {
    let mut ep = server(Config::default());
    let (id, mut peer) = connect(&mut ep, 0, 5000, None, None, 0);
    ep.send(id, Piece::owned(vec![1; 300_000])).unwrap();
    ep.close(id).unwrap();
    assert!(poll(&mut ep, 0).is_empty(), "nothing fits a zero window");
    // A peer that acknowledges each probe's byte and keeps its window at 0 would
    // otherwise hold the released slot for some 300,000 probes: 4 waits (240 s)
    // after the window closed a probe goes at once, and its answer (a byte more,
    // the window still 0) resets the connection.
    let (taken, reset) = taken_in_order(&mut ep, &mut peer, 240_000 * MS);
    assert!(reset, "reset by the cap");
    assert!(taken < 100, "a byte a probe for 240 s: {taken}");
    assert_eq!(ep.stats().zero_window_timeouts, 1);
    assert_eq!(ep.connections(), 0, "the slot is free");
    assert_eq!(ep.next_deadline(), None, "no timer left");
}

#[test]
fn a_peer_that_answers_every_probe_keeps_its_zero_window_connection() {
    let mut ep = server(Config::default());
    let (id, mut peer) = connect(&mut ep, 0, 5000, None, None, 1072);
    ep.send(id, Piece::owned(vec![1; 3000])).unwrap();
    let lens: Vec<usize> = poll(&mut ep, 0)
        .iter()
        .map(|p| view(p).payload.len())
        .collect();
    assert_eq!(lens, [536, 536]);
    // The peer takes the first segment and closes its window, the second in flight.
    peer.window = 0;
    peer.ack = peer.ack.plus(536);
    peer.send(&mut ep, 10 * MS, b"");
    let two_hours = 7_200_000 * MS;
    let sent = behind_a_zero_window(&mut ep, &peer, two_hours, true);
    let (probes, reset) = probes_and_reset(&sent);
    assert_eq!(
        reset, None,
        "RFC 1122: never closed while probes are answered"
    );
    assert_eq!(probes, sent.len(), "nothing but probes: {sent:?}");
    assert!(probes > 100);
    assert_eq!(ep.state(id), Ok(State::Established));
    assert_eq!(
        ep.stats().retransmits,
        0,
        "no retransmission timer meanwhile"
    );
    // The window opens: the rest flows from the first unacknowledged byte.
    peer.window = 60_000;
    peer.send(&mut ep, two_hours + MS, b"");
    let rest = poll(&mut ep, two_hours + MS);
    assert_eq!(view(&rest[0]).seq, peer.ack);
    let total = payload_bytes(&rest);
    assert_eq!(total, 2464);
    peer.ack = peer.ack.plus(2464);
    peer.send(&mut ep, two_hours + 2 * MS, b"");
    assert_eq!(ep.unacknowledged(id), Ok(0));
    assert_eq!(ep.state(id), Ok(State::Established));
}

#[test]
fn answers_to_probes_are_not_duplicate_acks() {
    let mut ep = server(Config::default());
    let (id, peer) = connect(&mut ep, 0, 5000, None, None, 0);
    ep.send(id, Piece::owned(vec![1; 5000])).unwrap();
    assert!(poll(&mut ep, 0).is_empty());
    let sent = behind_a_zero_window(&mut ep, &peer, 600_000 * MS, true);
    assert!(sent.len() >= 10);
    assert!(
        sent.iter()
            .all(|&(_, len, flags)| len == 1 && flags & RST == 0),
        "one-byte probes only, nothing more beyond the window: {sent:?}"
    );
    let stats = ep.stats();
    assert_eq!((stats.duplicate_acks, stats.fast_retransmits), (0, 0));
    assert_eq!(ep.state(id), Ok(State::Established));
}

#[test]
fn back_off_doubles_up_to_its_cap_without_overflow() {
    assert_eq!(backed_off(1000, 3, 60_000), 8000);
    assert_eq!(backed_off(1000, 10, 60_000), 60_000);
    assert_eq!(backed_off(u64::MAX / 2, 64, u64::MAX), u64::MAX);
    // SYN-ACKs retried far past any sane count still wait at most the RTO cap.
    let mut ep = server_with(|c| c.syn_retries = 100);
    ep.input(0, &packet(5000, SYN, Seq(1), Seq(0), 100, b"", None, None));
    poll(&mut ep, 0);
    for _ in 0..80 {
        let next = ep.next_deadline().expect("a SYN-ACK to resend");
        assert_eq!(poll(&mut ep, next).len(), 1);
    }
}

/// The payload lengths and cut sizes of what the server sends at `now`.
fn shapes(ep: &mut Endpoint, now: u64) -> Vec<(usize, Option<usize>)> {
    poll_cut(ep, now)
        .iter()
        .map(|(packet, cut)| (view_unchecked(packet).payload.len(), *cut))
        .collect()
}

fn view_unchecked(packet: &[u8]) -> Segment<'_> {
    parse(packet, false).expect("valid headers")
}

/// A server whose NIC cuts super-segments of up to 64 KiB less headers.
fn offloading() -> Endpoint {
    server_with(|c| c.segmentation = Some(MAX_SEGMENTATION))
}

#[test]
fn super_segments_fill_the_windows_in_whole_segments() {
    let mut ep = offloading();
    let (id, mut peer) = connect(&mut ep, 0, 5000, Some(1000), Some(0), 3500);
    ep.send(id, Piece::shared(blob(100_000), 0, 100_000).unwrap())
        .unwrap();
    // The peer's 3500 bytes: three whole segments in one super-segment; the rest of
    // the window, less than half of it, waits (silly-window avoidance, as without
    // offload).
    assert_eq!(shapes(&mut ep, 0), vec![(3000, Some(1000))]);
    // A wide window: the congestion window (10 segments, not grown by the ACK: the
    // peer's window held the flight below half of it) bounds the next one.
    peer.window = 60_000;
    peer.ack = peer.ack.plus(3000);
    peer.send(&mut ep, MS, b"");
    assert_eq!(shapes(&mut ep, MS), vec![(10_000, Some(1000))]);
    assert_eq!(ep.stats().segments_offloaded, 2);
    // The tail of the queue goes whole, whatever its length.
    let (id, mut peer) = connect(&mut ep, 0, 5001, Some(1000), Some(0), 60_000);
    ep.send(id, Piece::owned(vec![5; 2345])).unwrap();
    ep.shutdown(id).unwrap();
    let sent = poll_cut(&mut ep, 0);
    assert_eq!(sent.len(), 1);
    let seg = view_unchecked(&sent[0].0);
    assert_eq!((seg.payload.len(), sent[0].1), (2345, Some(1000)));
    assert!(
        seg.has(FIN | PSH),
        "FIN and PSH for the NIC to put on the last"
    );
    peer.ack = peer.ack.plus(2346);
    peer.send(&mut ep, MS, b"");
    assert_eq!(ep.state(id), Ok(State::FinWait2));
    // Without offload the same data goes in MSS-sized segments.
    let mut plain = server(Config::default());
    let (id, _) = connect(&mut plain, 0, 5000, Some(1000), Some(0), 60_000);
    plain
        .send(id, Piece::shared(blob(100_000), 0, 100_000).unwrap())
        .unwrap();
    assert_eq!(shapes(&mut plain, 0), vec![(1000, None); 10]);
}

#[test]
fn a_wire_segment_lost_from_a_super_segment_is_sent_again_alone() {
    let mut ep = offloading();
    let (id, mut peer) = connect(&mut ep, 0, 5000, Some(1000), Some(0), 60_000);
    let file = blob(100_000);
    ep.send(id, Piece::shared(file.clone(), 0, 100_000).unwrap())
        .unwrap();
    let start = peer.ack;
    assert_eq!(shapes(&mut ep, 0), vec![(10_000, Some(1000))]);
    // The NIC's second segment is lost: the peer acknowledges the first, then three
    // times again for the eight after the hole.
    peer.ack = start.plus(1000);
    peer.send(&mut ep, MS, b"");
    let sent = poll_cut(&mut ep, MS);
    assert_eq!(sent.len(), 1, "slow start: the next super-segment");
    for _ in 0..3 {
        peer.send(&mut ep, 2 * MS, b"");
    }
    let sent = poll_cut(&mut ep, 2 * MS);
    let again = view(&sent[0].0);
    assert_eq!(sent[0].1, None, "one MSS, complete with its checksum");
    assert_eq!(
        (again.seq, again.payload),
        (start.plus(1000), &file.bytes()[1000..2000])
    );
    assert_eq!(ep.stats().fast_retransmits, 1);
    // A timeout sends one MSS again from the first unacknowledged byte.
    let sent = poll_cut(&mut ep, 2000 * MS);
    assert_eq!(sent.len(), 1);
    let again = view(&sent[0].0);
    assert_eq!((again.seq, again.payload.len()), (start.plus(1000), 1000));
    assert!(ep.stats().retransmits >= 1);
}

/// `connections` connections from ports 5000 on, each with `bytes` queued.
fn busy(ep: &mut Endpoint, connections: u16, bytes: usize) -> Vec<ConnId> {
    let ids: Vec<ConnId> = (0..connections)
        .map(|i| connect(ep, 0, 5000 + i, Some(1000), Some(0), 60_000).0)
        .collect();
    for &id in &ids {
        ep.send(id, Piece::shared(blob(bytes), 0, bytes).unwrap())
            .unwrap();
    }
    ids
}

/// The port and sequence number of each segment `ep` sends at `now`, at most `room`.
fn served(ep: &mut Endpoint, room: usize) -> Vec<(u16, u32)> {
    let mut served = Vec::new();
    ep.poll(0, &mut |segment| {
        if served.len() == room {
            return false;
        }
        let port = u16::from_be_bytes([segment.headers[22], segment.headers[23]]);
        let seq = u32::from_be_bytes(segment.headers[24..28].try_into().unwrap());
        served.push((port, seq));
        true
    });
    served
}

#[test]
fn connections_take_turns_within_a_poll() {
    let mut ep = server(Config::default());
    busy(&mut ep, 4, 20_000);
    // Room for everything: one segment each in turn, round after round, until each
    // sent its congestion window (10 segments).
    let ports: Vec<u16> = served(&mut ep, usize::MAX).iter().map(|s| s.0).collect();
    let round = [5000, 5001, 5002, 5003];
    assert_eq!(ports, round.repeat(10));
    // With offload a turn is one super-segment; a burst of 3 plain segments per turn.
    let mut ep = offloading();
    busy(&mut ep, 3, 20_000);
    let ports: Vec<u16> = served(&mut ep, usize::MAX).iter().map(|s| s.0).collect();
    assert_eq!(ports, [5000, 5001, 5002]);
    let mut ep = server_with(|c| c.burst = 3);
    busy(&mut ep, 2, 20_000);
    let ports: Vec<u16> = served(&mut ep, usize::MAX).iter().map(|s| s.0).collect();
    let turns = [[5000; 3], [5001; 3]].concat();
    assert_eq!(ports, [turns.repeat(3), vec![5000, 5001]].concat());
}

#[test]
fn a_full_emitter_stops_a_turn_and_loses_nothing_and_starves_no_one() {
    let mut ep = server(Config::default());
    let ids = busy(&mut ep, 5, 20_000);
    let mut next: Vec<Option<u32>> = vec![None; 5];
    let mut counts = [0usize; 5];
    // Room for 7 segments per poll: 50 segments in all over 8 polls.
    for poll in 0..8 {
        for (port, seq) in served(&mut ep, 7) {
            let i = usize::from(port - 5000);
            if let Some(expected) = next[i] {
                assert_eq!(seq, expected, "connection {i}: contiguous, nothing skipped");
            }
            next[i] = Some(seq.wrapping_add(1000));
            counts[i] += 1;
        }
        // In turn: after each poll no connection is more than a segment ahead of another.
        let (least, most) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(most - least <= 1, "poll {poll}: {counts:?}");
    }
    assert_eq!(counts, [10; 5], "each sent its congestion window");
    assert_eq!(ep.stats().segments_retransmitted, 0);
    for id in ids {
        assert_eq!(ep.unacknowledged(id), Ok(20_000));
    }
}

#[test]
fn segmentation_can_be_turned_off_between_polls() {
    let mut ep = offloading();
    assert_eq!(ep.segmentation(), Some(65_495));
    let (id, _) = connect(&mut ep, 0, 5000, Some(1000), Some(0), 60_000);
    ep.send(id, Piece::shared(blob(5000), 0, 5000).unwrap())
        .unwrap();
    // The NIC refused the super-segment: nothing was sent, and the next poll makes
    // plain segments of the same bytes.
    ep.poll(0, &mut |segment| segment.cut.is_none());
    ep.set_segmentation(None);
    assert_eq!(shapes(&mut ep, 0), vec![(1000, None); 5]);
    assert_eq!(ep.stats().segments_retransmitted, 0);
}

#[test]
fn input_says_which_segments_prove_their_sender_is_the_peer() {
    let mut ep = server(Config::default());
    let syn = packet(5000, SYN, Seq(1000), Seq(0), 1000, b"", None, None);
    assert_eq!(
        ep.input(0, &syn),
        Sender::Caller,
        "a SYN opens, proves nothing"
    );
    assert_eq!(ep.input(0, &syn), Sender::Unknown, "its retransmission");
    let synack = view(&poll(&mut ep, 0)[0]).seq;
    let guess = packet(5000, ACK, Seq(1001), synack.plus(7), 1000, b"", None, None);
    assert_eq!(
        ep.input(0, &guess),
        Sender::Unknown,
        "an ACK of a guessed ISN"
    );
    let ack = packet(5000, ACK, Seq(1001), synack.plus(1), 1000, b"", None, None);
    assert_eq!(ep.input(0, &ack), Sender::Peer, "the handshake's last ACK");
    let mut peer = Peer {
        port: 5000,
        seq: Seq(1001),
        ack: synack.plus(1),
        window: 1000,
    };
    assert_eq!(ep.input(0, &peer.segment(ACK, b"data")), Sender::Peer);
    peer.seq = peer.seq.plus(4);
    // A blind spoofer knows the addresses and ports, not the sequence numbers.
    let mut blind = peer.segment(ACK, b"x");
    peer.ack = peer.ack.plus(1 << 20);
    assert_eq!(
        ep.input(0, &peer.segment(ACK, b"x")),
        Sender::Unknown,
        "an ACK of data never sent"
    );
    peer.ack = synack.plus(1);
    peer.seq = peer.seq.plus(1 << 30);
    assert_eq!(
        ep.input(0, &peer.segment(ACK, b"x")),
        Sender::Unknown,
        "out of window"
    );
    assert_eq!(
        ep.input(0, &peer.segment(RST, b"")),
        Sender::Unknown,
        "a reset"
    );
    let last = blind.len() - 1;
    blind[last] ^= 0xff;
    assert_eq!(ep.input(0, &blind), Sender::Unknown, "a bad checksum");
    let stray = packet(6000, ACK, Seq(1), Seq(1), 1000, b"", None, None);
    assert_eq!(ep.input(0, &stray), Sender::Unknown, "for no connection");
}

#[test]
fn talks_with_knows_peers_of_half_open_and_established_connections_only() {
    let mut ep = server(Config::default());
    assert!(!ep.talks_with(SERVER, CLIENT), "no connection yet");
    let syn = packet(5000, SYN, Seq(1000), Seq(0), 1000, b"", None, None);
    ep.input(0, &syn);
    assert!(ep.talks_with(SERVER, CLIENT), "half-open");
    assert!(!ep.talks_with(SERVER, [10, 0, 0, 3]), "another peer");
    assert!(
        !ep.talks_with([10, 0, 0, 9], CLIENT),
        "another local address"
    );
    let (mut ep, id, _peer) = established();
    assert!(ep.talks_with(SERVER, CLIENT), "established");
    ep.abort(id).unwrap();
    poll(&mut ep, 0);
    assert!(!ep.talks_with(SERVER, CLIENT), "gone");
}

#[test]
fn an_ack_half_the_sequence_space_away_is_refused() {
    let (mut ep, id, peer) = established();
    ep.send(id, Piece::owned(vec![7; 3000])).unwrap();
    let forged = packet(
        peer.port,
        ACK,
        peer.seq,
        peer.ack.plus(1 << 31),
        0xffff,
        b"",
        None,
        None,
    );
    ep.input(0, &forged);
    assert_eq!(
        ep.stats().out_of_window,
        1,
        "neither ahead nor behind: refused"
    );
    let sent = payload_bytes(&poll(&mut ep, 0));
    assert_eq!(
        sent, 536,
        "its window is not taken: the peer's 1000 bytes hold (less a runt held back)"
    );
}

#[test]
fn keepalive_probes_after_a_late_poll_still_wait_an_interval_each() {
    let (mut ep, id, _) = keepalive_every_10_s(2);
    // The first poll comes five intervals late: one probe, and the next an interval on.
    assert_eq!(poll(&mut ep, 50_000 * MS).len(), 1);
    assert!(
        poll(&mut ep, 50_000 * MS).is_empty(),
        "no second probe at once"
    );
    assert_eq!(ep.next_deadline(), Some(60_000 * MS));
    assert_eq!(ep.state(id), Ok(State::Established));
    assert_eq!(poll(&mut ep, 60_000 * MS).len(), 1);
    assert!(view(&poll(&mut ep, 70_000 * MS)[0]).has(RST));
}

#[test]
fn a_retransmission_that_acknowledges_more_brings_its_window() {
    let (mut ep, id, mut peer) = established();
    ep.send(id, Piece::owned(vec![7; 3000])).unwrap();
    let first = payload_bytes(&poll(&mut ep, 0));
    assert_eq!(
        first, 536,
        "a full segment (the rest of the window would be a runt)"
    );
    // Data ahead of a gap, acknowledging nothing yet, offering 1000 bytes...
    let ahead = packet(
        peer.port,
        ACK,
        peer.seq.plus(10),
        peer.ack,
        1000,
        &[1; 10],
        None,
        None,
    );
    ep.input(0, &ahead);
    // ...then the gap's retransmission, acknowledging all 536 and offering only 520
    // (enough to send: half the largest window).
    peer.ack = peer.ack.plus(536);
    peer.window = 520;
    peer.send(&mut ep, 0, &[1; 10]);
    let sent: Vec<usize> = poll(&mut ep, 0)
        .iter()
        .map(|p| view(p).payload.len())
        .collect();
    assert_eq!(
        sent.iter().sum::<usize>(),
        520,
        "{sent:?}: the edge it offered last"
    );
}

#[test]
fn the_window_of_an_old_ack_is_not_taken() {
    let (mut ep, id, mut peer) = established();
    ep.send(id, Piece::owned(vec![7; 3000])).unwrap();
    poll(&mut ep, 0);
    peer.ack = peer.ack.plus(536);
    peer.window = 100;
    peer.send(&mut ep, 0, &[1; 10]);
    poll(&mut ep, 0);
    // Newer data carrying an ACK 500 bytes old: its window of 1000 ends 500 bytes on.
    peer.ack = peer.ack.plus(usize::MAX - 499);
    peer.window = 1000;
    peer.send(&mut ep, 0, &[1; 10]);
    let sent = payload_bytes(&poll(&mut ep, 0));
    assert_eq!(
        sent, 0,
        "nothing beyond the edge the last acceptable window offered"
    );
}

#[test]
fn durations_of_u64_max_mean_never() {
    let mut ep = server_with(|c| {
        c.time_wait_ns = u64::MAX;
        c.fin_wait2_ns = u64::MAX;
        c.keepalive_ns = Some(u64::MAX);
        c.rto_initial_ns = u64::MAX / 2 + 1;
        c.rto_max_ns = u64::MAX;
    });
    let (id, mut peer) = connect(&mut ep, 1000 * MS, 5000, None, None, 1000);
    assert_eq!(ep.next_deadline(), Some(u64::MAX), "the keep-alive, never");
    ep.send(id, Piece::owned(vec![1; 10])).unwrap();
    assert_eq!(poll(&mut ep, 1000 * MS).len(), 1);
    // The retransmission, past half of u64::MAX, doubles the timeout.
    let now = ep.next_deadline().unwrap();
    assert_eq!(poll(&mut ep, now).len(), 1, "a retransmission");
    assert_eq!(ep.next_deadline(), Some(u64::MAX), "the next");
    peer.ack = peer.ack.plus(10);
    peer.send(&mut ep, now, b"");
    ep.close(id).unwrap();
    assert!(view(&poll(&mut ep, now)[0]).has(FIN));
    peer.ack = peer.ack.plus(1);
    peer.send(&mut ep, now, b"");
    poll(&mut ep, now);
    assert_eq!(ep.connections(), 1, "in FIN-WAIT-2 until the end of time");
    ep.input(now, &peer.segment(ACK | FIN, b""));
    peer.seq = peer.seq.plus(1);
    poll(&mut ep, now);
    assert_eq!(ep.time_wait(), 1, "in TIME-WAIT until the end of time");
    ep.input(now, &peer.fin_again());
    assert_eq!(poll(&mut ep, now).len(), 1, "the FIN again is acknowledged");
    assert_eq!(ep.time_wait(), 1);
}

/// A SYN that also carries FIN opens no connection and draws no answer, on a listening
/// port or a closed one (it used to open a connection and drop the FIN).
#[test]
fn a_syn_with_fin_opens_nothing_and_is_not_answered() {
    let syn_fin = packet(5000, SYN | FIN, Seq(1000), Seq(0), 1000, b"", None, None);
    let listening = server(Config::default());
    let closed = Endpoint::new(Config::default()).expect("a sound config");
    for mut ep in [listening, closed] {
        ep.input(0, &syn_fin);
        assert_eq!(ep.stats().syns, 0, "no half-open connection");
        assert_eq!(ep.stats().no_connection, 1);
        assert!(poll(&mut ep, 0).is_empty(), "no SYN-ACK and no RST");
    }
}

/// A connection whose peer announced an MSS of 1460 and a window of 60,000, that queued
/// 14,600 bytes and sent them all at 0 (its initial window: ten full segments), and
/// those segments.
fn ten_segments_in_flight() -> (Endpoint, ConnId, Peer, Vec<Vec<u8>>) {
    let mut ep = server(Config::default());
    let (id, peer) = connect(&mut ep, 0, 5000, Some(1460), None, 60_000);
    ep.send(id, Piece::shared(blob(14_600), 0, 14_600).unwrap())
        .unwrap();
    let sent = poll(&mut ep, 0);
    assert_eq!(lengths(&sent), [1460; 10]);
    (ep, id, peer, sent)
}

/// A router's "fragmentation needed" naming `mtu` about `segment` (one the server sent),
/// quoting its IPv4 header and first 8 bytes.
fn too_big(segment: &[u8], mtu: u16) -> Vec<u8> {
    icmp::message_about(SERVER, &segment[..28], icmp::FRAGMENTATION_NEEDED, mtu)
}

#[test]
fn a_fragmentation_needed_for_a_segment_in_flight_resends_the_flight_at_the_smaller_size() {
    let (mut ep, id, mut peer, sent) = ten_segments_in_flight();
    // A router on the path forwards 1400 bytes: it refused the first segment.
    assert!(ep.input_icmp(MS, &too_big(&sent[0], 1400)));
    assert_eq!(ep.mss(id), Ok(1360));
    // The whole flight again at once, cut anew, within the congestion window it had (a
    // timeout's would have let one segment go).
    let resent = poll(&mut ep, MS);
    assert_eq!(lengths(&resent), [vec![1360; 10], vec![1000]].concat());
    assert_eq!(view(&resent[0]).seq, peer.ack);
    let stats = ep.stats();
    assert_eq!(stats.icmp_mss_lowered, 1);
    assert_eq!(stats.segments_retransmitted, 11);
    assert_eq!(
        (stats.retransmits, stats.fast_retransmits),
        (0, 0),
        "no loss counted"
    );
    // Its messages about the burst's other segments change nothing more (RFC 1191, 6.4).
    for segment in &sent[1..] {
        assert!(ep.input_icmp(MS, &too_big(segment, 1400)));
    }
    assert!(poll(&mut ep, MS).is_empty(), "nothing sent a third time");
    assert_eq!(ep.stats().icmp_mss_lowered, 1);
    assert_eq!(ep.stats().icmp_dropped, 9);
    assert_eq!(ep.mss(id), Ok(1360));
    // Duplicate ACKs, which segments sent again draw, start no fast retransmit.
    for _ in 0..3 {
        peer.send(&mut ep, 2 * MS, b"");
    }
    assert!(poll(&mut ep, 2 * MS).is_empty());
    assert_eq!(ep.stats().duplicate_acks, 3);
    assert_eq!(ep.stats().fast_retransmits, 0);
    // The flight sent again is timed from then: a whole RTO (1 s) later.
    assert_eq!(ep.next_deadline(), Some(1001 * MS));
}

/// RFC 1191 (6.3): ten minutes after a "fragmentation needed" lowered the MSS, the
/// handshake's MSS is tried again; a path still narrow lowers it again, and the next
/// raise is ten minutes after that. Before, the lowered MSS stayed for the
/// connection's life.
#[test]
fn a_lowered_mss_is_raised_to_the_handshakes_ten_minutes_after_it_fell() {
    let (mut ep, id, mut peer, sent) = ten_segments_in_flight();
    assert!(ep.input_icmp(MS, &too_big(&sent[0], 1400)));
    assert_eq!(
        lengths(&poll(&mut ep, MS)),
        [vec![1360; 10], vec![1000]].concat()
    );
    peer.ack = peer.ack.plus(14_600);
    peer.send(&mut ep, 2 * MS, b"");
    assert!(poll(&mut ep, 2 * MS).is_empty());
    // Nothing else is due: the raise is the next deadline, and not a moment earlier.
    let raise_at = MS + PMTU_RAISE_NS;
    assert_eq!(ep.next_deadline(), Some(raise_at));
    poll(&mut ep, raise_at - 1);
    assert_eq!(ep.mss(id), Ok(1360));
    poll(&mut ep, raise_at);
    assert_eq!(ep.mss(id), Ok(1460));
    assert_eq!(ep.stats().mss_raised, 1);
    assert_eq!(ep.next_deadline(), None);
    // Full segments again; the path still takes 1400 bytes only, so down it goes.
    ep.send(id, Piece::shared(blob(2920), 0, 2920).unwrap())
        .unwrap();
    let sent = poll(&mut ep, raise_at);
    assert_eq!(lengths(&sent), [1460; 2]);
    let again = raise_at + 10 * MS;
    assert!(ep.input_icmp(again, &too_big(&sent[0], 1400)));
    assert_eq!(ep.mss(id), Ok(1360));
    assert_eq!(ep.stats().icmp_mss_lowered, 2);
    peer.ack = peer.ack.plus(2920);
    poll(&mut ep, again);
    peer.send(&mut ep, again + MS, b"");
    assert_eq!(ep.next_deadline(), Some(again + PMTU_RAISE_NS));
    poll(&mut ep, again + PMTU_RAISE_NS);
    assert_eq!(ep.mss(id), Ok(1460));
    assert_eq!(ep.stats().mss_raised, 2);
}

#[test]
fn forged_or_damaged_fragmentation_needed_messages_change_nothing_and_are_counted() {
    let (mut ep, id, peer, sent) = ten_segments_in_flight();
    let first = &sent[0][..28];
    // The first segment's quote with the bytes at `at` replaced.
    let edited = |at: usize, bytes: &[u8]| {
        let mut quote = first.to_vec();
        quote[at..at + bytes.len()].copy_from_slice(bytes);
        quote
    };
    let about =
        |quote: &[u8], mtu| icmp::message_about(SERVER, quote, icmp::FRAGMENTATION_NEEDED, mtu);
    let acknowledged = peer.ack.plus(usize::MAX).0.to_be_bytes();
    let unsent = peer.ack.plus(14_600).0.to_be_bytes();
    let mut wrong_sum = about(first, 1400);
    wrong_sum[30] ^= 1;
    let forged = [
        (
            "the peer's port",
            about(&edited(22, &5001u16.to_be_bytes()), 1400),
        ),
        ("our address", about(&edited(12, &[10, 0, 0, 9]), 1400)),
        (
            "the peer's address",
            about(&edited(16, &[10, 0, 0, 9]), 1400),
        ),
        (
            "sent to another address",
            icmp::message_about([10, 0, 0, 9], first, icmp::FRAGMENTATION_NEEDED, 1400),
        ),
        (
            "a byte acknowledged",
            about(&edited(24, &acknowledged), 1400),
        ),
        ("a byte not sent", about(&edited(24, &unsent), 1400)),
        (
            "a quote cut before the sequence number",
            about(&first[..24], 1400),
        ),
        ("a wrong checksum", wrong_sum),
        ("an MTU below 68", about(first, 67)),
        (
            "an MTU the datagram fits",
            about(&edited(2, &1400u16.to_be_bytes()), 1400),
        ),
        ("the connection's own MTU", about(first, 1500)),
        ("a larger MTU", about(first, 9000)),
    ];
    for (count, (what, message)) in (1..).zip(&forged) {
        assert!(ep.input_icmp(MS, message), "{what}: taken");
        assert_eq!(ep.mss(id), Ok(1460), "{what}");
        assert!(poll(&mut ep, MS).is_empty(), "{what}: nothing sent again");
        assert_eq!(ep.stats().icmp_dropped, count, "{what}: counted");
    }
    // About a port nobody listens on, or about UDP: the caller's, counted nowhere.
    for quote in [edited(20, &81u16.to_be_bytes()), edited(9, &[17])] {
        assert!(!ep.input_icmp(MS, &about(&quote, 1400)));
    }
    let stats = ep.stats();
    assert_eq!(
        (
            stats.icmp_dropped,
            stats.icmp_mss_lowered,
            stats.icmp_unreachable
        ),
        (forged.len() as u64, 0, 0)
    );
    // The genuine message still lowers it.
    assert!(ep.input_icmp(MS, &too_big(&sent[0], 1400)));
    assert_eq!(ep.mss(id), Ok(1360));
}

#[test]
fn a_fragmentation_needed_naming_no_mtu_takes_the_plateau_below_the_refused_datagram() {
    let (mut ep, id, mut peer, sent) = ten_segments_in_flight();
    // From a router older than RFC 1191: 1492 (PPPoE), the plateau below 1500.
    assert!(ep.input_icmp(MS, &too_big(&sent[0], 0)));
    assert_eq!(ep.mss(id), Ok(1452));
    let resent = poll(&mut ep, MS);
    assert_eq!(lengths(&resent), [vec![1452; 10], vec![80]].concat());
    // Its messages about the rest of the first burst say nothing new.
    for segment in &sent[1..] {
        assert!(ep.input_icmp(MS, &too_big(segment, 0)));
    }
    assert_eq!(ep.mss(id), Ok(1452));
    assert!(poll(&mut ep, MS).is_empty());
    // A path narrower still refuses a 1492-byte datagram: the next plateau, 1006.
    assert!(ep.input_icmp(2 * MS, &too_big(&resent[0], 0)));
    assert_eq!(ep.mss(id), Ok(966));
    assert_eq!(ep.stats().icmp_mss_lowered, 2);
    // All acknowledged: no round trip is timed from data sent again (Karn), so the
    // RTO is still the initial 1 s.
    peer.ack = peer.ack.plus(14_600);
    peer.send(&mut ep, 300 * MS, b"");
    assert_eq!(rto_of_next_send(&mut ep, id, 300 * MS), 1000 * MS);
}

#[test]
fn other_unreachable_codes_are_noted_and_end_only_a_half_open_connection() {
    let (mut ep, id, mut peer, sent) = ten_segments_in_flight();
    // Host unreachable (soft) and port unreachable (hard): neither ends a connection.
    for code in [1, icmp::PORT_UNREACHABLE] {
        let message = icmp::message_about(SERVER, &sent[0][..28], code, 0);
        assert!(ep.input_icmp(MS, &message));
        assert_eq!(ep.unreachable(id), Ok(Some(code)));
        assert_eq!(ep.state(id), Ok(State::Established));
    }
    assert!(poll(&mut ep, MS).is_empty(), "nothing sent again");
    assert_eq!(ep.stats().icmp_unreachable, 2);
    // The note holds until the peer acknowledges new data.
    peer.ack = peer.ack.plus(1460);
    peer.send(&mut ep, 2 * MS, b"");
    assert_eq!(ep.unreachable(id), Ok(None));

    let mut ep = server(Config::default());
    ep.input(
        0,
        &packet(5000, SYN, Seq(1000), Seq(0), 1000, b"", None, None),
    );
    let synack = poll(&mut ep, 0).remove(0);
    let about_synack = |code, seq: Seq| {
        let mut quote = synack[..28].to_vec();
        quote[24..28].copy_from_slice(&seq.0.to_be_bytes());
        icmp::message_about(SERVER, &quote, code, 0)
    };
    let iss = view(&synack).seq;
    // A soft error, or a hard one about another sequence number: it stays.
    assert!(ep.input_icmp(MS, &about_synack(0, iss)));
    assert!(ep.input_icmp(MS, &about_synack(icmp::PROTOCOL_UNREACHABLE, iss.plus(1))));
    assert_eq!((ep.half_open(), ep.stats().icmp_dropped), (1, 2));
    // A hard one about its SYN-ACK: gone.
    assert!(ep.input_icmp(MS, &about_synack(icmp::PROTOCOL_UNREACHABLE, iss)));
    assert_eq!((ep.half_open(), ep.stats().icmp_unreachable), (0, 1));
}

#[test]
fn the_last_unreachable_code_is_kept_after_the_connection_times_out() {
    let mut ep = server_with(|c| c.max_retransmits = 0);
    let (id, _) = connect(&mut ep, 0, 5000, None, None, 10_000);
    ep.send(id, Piece::owned(b"lost".to_vec())).unwrap();
    let sent = poll(&mut ep, 0);
    let message = icmp::message_about(SERVER, &sent[0][..28], 1, 0);
    assert!(ep.input_icmp(MS, &message));
    assert!(view(&poll(&mut ep, 1000 * MS)[0]).has(RST), "timed out");
    assert_eq!(ep.recv(id, &mut [0; 4]), Err(Error::TimedOut));
    assert_eq!(ep.connections(), 0, "only its record is left");
    assert_eq!(ep.unreachable(id), Ok(Some(1)), "why, perhaps");
}

#[test]
fn a_fragmentation_needed_behind_a_zero_window_leaves_the_resending_to_the_probes() {
    let (mut ep, id, mut peer, sent) = ten_segments_in_flight();
    // The peer takes the first segment and closes its window on the rest.
    peer.ack = peer.ack.plus(1460);
    peer.window = 0;
    peer.send(&mut ep, MS, b"");
    assert!(ep.input_icmp(2 * MS, &too_big(&sent[1], 1400)));
    assert_eq!(ep.mss(id), Ok(1360));
    assert!(
        poll(&mut ep, 2 * MS).is_empty(),
        "nothing fits a zero window"
    );
    // The persist timer's probe, and no retransmission timeout after it.
    let at = ep.next_deadline().expect("the persist timer");
    assert_eq!(lengths(&poll(&mut ep, at)), [1], "a probe");
    assert!(poll(&mut ep, at + 10 * MS).is_empty());
    assert_eq!((ep.stats().window_probes, ep.stats().retransmits), (1, 0));
}

#[test]
fn a_fragmentation_needed_during_fast_recovery_ends_it_and_resends_within_its_window() {
    let (mut ep, _, mut peer, sent) = ten_segments_in_flight();
    for _ in 0..3 {
        peer.send(&mut ep, MS, b"");
    }
    assert_eq!(lengths(&poll(&mut ep, MS)), [1460], "a fast retransmit");
    // Recovery's window (7,300 bytes, inflated to 11,680 by the duplicates) ends as
    // its last ACK would end it: 7,300 bytes go again (the rest of a segment waits, as
    // silly-window avoidance says).
    assert!(ep.input_icmp(2 * MS, &too_big(&sent[0], 1400)));
    assert_eq!(lengths(&poll(&mut ep, 2 * MS)), [1360; 5]);
    // A further duplicate ACK no longer lets a segment out.
    peer.send(&mut ep, 3 * MS, b"");
    assert!(poll(&mut ep, 3 * MS).is_empty());
    assert_eq!(ep.stats().fast_retransmits, 1);
}

#[test]
fn random_icmp_messages_never_panic_nor_move_the_mss_out_of_its_bounds() {
    let (mut ep, id, mut peer, sent) = ten_segments_in_flight();
    let mut state = 0x0fed_cba9_8765_4321u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..20_000u64 {
        let message = match round % 3 {
            // Random bytes.
            0 => (0..next() % 80).map(|_| next() as u8).collect(),
            // A quote of a segment sent, mutated and cut, its checksums made right.
            1 => {
                let mut quote = sent[(round / 3 % 10) as usize][..28].to_vec();
                for _ in 0..next() % 3 {
                    let at = (next() as usize) % quote.len();
                    quote[at] = next() as u8;
                }
                quote.truncate((next() % 29) as usize);
                icmp::message_about(SERVER, &quote, next() as u8 % 6, next() as u16)
            }
            // A whole message with its bytes mutated.
            _ => {
                let mut message = too_big(&sent[0], next() as u16);
                let at = (next() as usize) % message.len();
                message[at] = next() as u8;
                message
            }
        };
        ep.input_icmp(round, &message);
        let mss = ep.mss(id).unwrap();
        assert!((LEAST_PATH_MSS..=1460).contains(&mss), "MSS {mss}");
        if round % 1000 == 0 {
            poll(&mut ep, round);
        }
    }
    // The connection still delivers: all acknowledged, then the peer's data read.
    peer.ack = peer.ack.plus(14_600);
    peer.send(&mut ep, 30_000, b"still here");
    assert_eq!(ep.unacknowledged(id), Ok(0));
    assert_eq!(ep.recv(id, &mut [0; 16]), Ok(10));
}

/// Whether nothing is left of any connection once every one ended and their timers ran:
/// no slot held or released, no half-open entry, TIME-WAIT entry, queued accept, reply
/// or record of an ended handle left, the orders of released connections within their
/// bound, and every slot free, the table no longer than the most connections held.
fn assert_nothing_left(ep: &Endpoint) {
    assert_eq!(ep.connections(), 0, "slots held");
    assert_eq!((ep.released, ep.finishing), (0, 0), "released connections");
    assert_eq!(ep.half_open(), 0, "half-open entries");
    assert_eq!(ep.time_wait(), 0, "TIME-WAIT entries");
    assert!(ep.accept_queue.is_empty() && ep.by_tuple.is_empty());
    assert!(
        ep.gone.is_empty(),
        "{} records of ended handles",
        ep.gone.len()
    );
    // The orders drop an ended connection's entry when met or at a push (push_pruned):
    // with none left finishing, at most twice the most that were, and 9.
    let most = 2 * ep.config.max_released + 9;
    let orders = (ep.released_order.len(), ep.drained.len());
    assert!(
        orders.0 <= most && orders.1 <= most,
        "release orders {orders:?}"
    );
    assert!(ep.replies.is_empty(), "{} replies owed", ep.replies.len());
    let most = ep.config.max_connections + ep.config.max_released;
    assert!(ep.slots.len() <= most, "{} slots", ep.slots.len());
    assert_eq!(ep.free.len(), ep.slots.len(), "every slot free");
    assert!(
        ep.timers.is_empty() && ep.idle_cuts.is_empty() && ep.owed.is_empty(),
        "timer, idle-cut or turn orders"
    );
}

/// Opens and accepts a connection from `port` while other connections may be sending
/// (their segments are dropped); returns it and the peer, which acknowledged the SYN-ACK.
fn open_among_others(ep: &mut Endpoint, now: u64, port: u16) -> (ConnId, Peer) {
    ep.input(
        now,
        &packet(port, SYN, Seq(1000), Seq(0), 10_000, b"", Some(1460), None),
    );
    let sent = poll(ep, now);
    let synack = sent
        .iter()
        .map(|p| view(p))
        .find(|s| s.dst_port == port && s.has(SYN));
    let mut peer = Peer {
        port,
        seq: Seq(1001),
        ack: synack.expect("a SYN-ACK").seq.plus(1),
        window: 10_000,
    };
    peer.send(ep, now, b"");
    (ep.accept().expect("an established connection"), peer)
}

/// Soak: 10,000 connections opened, given data each way, and ended every way a
/// connection ends (the peer's reset, the app's abort, the app's close then the peer's
/// FIN into TIME-WAIT, the peer's FIN then the app's close, a release with unread data,
/// a handle kept past the peer's reset and released late, a SYN reset while half-open)
/// leave nothing behind once the TIME-WAIT and FIN-WAIT-2 timers ran.
#[test]
fn ten_thousand_connections_ended_every_way_leave_nothing_behind() {
    let mut ep = server(Config::default());
    let mut now = 0;
    let mut kept = None;
    for cycle in 0..10_000u32 {
        now += MS;
        let port = 1024 + (cycle % 50_000) as u16;
        if cycle % 8 == 7 {
            ep.input(
                now,
                &packet(port, SYN, Seq(1000), Seq(0), 1000, b"", None, None),
            );
            let synack = poll(&mut ep, now);
            let ack = view(&synack[0]).seq.plus(1);
            ep.input(now, &packet(port, RST, Seq(1001), ack, 0, b"", None, None));
            continue;
        }
        let (id, mut peer) = open_among_others(&mut ep, now, port);
        peer.send(&mut ep, now, b"request");
        ep.send(id, Piece::owned(b"answer".to_vec())).unwrap();
        poll(&mut ep, now);
        peer.ack = peer.ack.plus(6);
        peer.send(&mut ep, now, b"");
        match cycle % 8 {
            0 => {
                ep.input(now, &peer.segment(RST, b""));
                ep.close(id).unwrap();
            }
            1 => ep.abort(id).unwrap(),
            2 => {
                ep.recv(id, &mut [0; 16]).unwrap();
                ep.close(id).unwrap();
                poll(&mut ep, now);
                peer.ack = peer.ack.plus(1);
                peer.send(&mut ep, now, b"");
                ep.input(now, &peer.segment(ACK | FIN, b""));
            }
            3 => {
                ep.input(now, &peer.segment(ACK | FIN, b""));
                peer.seq = peer.seq.plus(1);
                ep.recv(id, &mut [0; 16]).unwrap();
                ep.close(id).unwrap();
                poll(&mut ep, now);
                peer.ack = peer.ack.plus(1);
                peer.send(&mut ep, now, b"");
            }
            4 => ep.close(id).unwrap(),
            5 => {
                ep.input(now, &peer.segment(RST, b""));
                if let Some(old) = kept.replace(id) {
                    ep.close(old).unwrap();
                }
            }
            _ => {
                ep.recv(id, &mut [0; 16]).unwrap();
                ep.shutdown(id).unwrap();
                poll(&mut ep, now);
                ep.input(now, &peer.segment(RST, b""));
                ep.close(id).unwrap();
            }
        }
        poll(&mut ep, now);
    }
    ep.close(kept.unwrap()).unwrap();
    now += Config::default().fin_wait2_ns + Config::default().time_wait_ns;
    for _ in 0..20 {
        poll(&mut ep, now);
        now += Config::default().rto_max_ns;
    }
    assert_nothing_left(&ep);
}

/// A poll of `ep` at `now` as before the orders of timers, idle cuts and turns: every
/// half-open entry's and connection's deadline looked at and its timers run if due,
/// and every connection given a turn; the segments sent, the first `room` taken
/// (`None`: all).
fn poll_by_scan(ep: &mut Endpoint, now: u64, room: Option<usize>) -> Vec<Vec<u8>> {
    for (at, tuple) in ep.half_open.scan() {
        if at <= now {
            ep.half_open.time_out(tuple, now, &ep.config, &mut ep.stats);
        }
    }
    let indices: Vec<usize> = ep.by_tuple.values().copied().collect();
    for index in indices {
        if let Some(conn) = ep.slots[index].conn.as_mut()
            && conn.deadline(&ep.config).is_some_and(|at| at <= now)
        {
            let finishing = conn.finishing();
            conn.on_timer(now, &ep.config, &mut ep.stats);
            if finishing && !conn.finishing() {
                ep.finishing -= 1;
            }
            ep.follow(index, true);
        }
    }
    ep.owed.extend(ep.by_tuple.keys().copied());
    poll_room(ep, now, room)
}

/// The segments `ep` sends at `now`, the first `room` taken (`None`: all).
fn poll_room(ep: &mut Endpoint, now: u64, room: Option<usize>) -> Vec<Vec<u8>> {
    let mut sent = Vec::new();
    ep.poll(now, &mut |segment| {
        if room.is_some_and(|room| sent.len() >= room) {
            return false;
        }
        let mut packet = Vec::new();
        segment.copy_to(&mut packet);
        sent.push(packet);
        true
    });
    sent
}

/// SplitMix64: a seeded pseudo-random generator, so that a failing round reproduces
/// (docs/layout.md's app rules keep rexo-testkit out of a library OS's dependencies).
struct SplitMix(u64);

impl SplitMix {
    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

/// `ep`'s orders checked against a scan of its connections: the timer order holds
/// every connection in the table with a deadline, under it, the order of idle cuts
/// likewise, the half-open table's orders hold what a scan of its entries finds, and
/// `next_deadline` is the least deadline of a connection, a half-open one and a
/// TIME-WAIT entry.
fn assert_orders_are_a_scan(ep: &Endpoint) {
    let mut timers = BTreeSet::new();
    let mut idle_cuts = BTreeSet::new();
    for (tuple, &index) in &ep.by_tuple {
        let conn = ep.slots[index].conn.as_ref().expect("a connection");
        timers.extend(conn.deadline(&ep.config).map(|at| (at, *tuple)));
        idle_cuts.extend(conn.idle_cut_at().map(|at| (at, *tuple)));
    }
    assert_eq!(ep.timers, timers, "the timer order");
    assert_eq!(ep.idle_cuts, idle_cuts, "the order of idle cuts");
    assert!(ep.half_open.orders_hold(), "the half-open table's orders");
    let conns = timers.iter().map(|&(at, _)| at);
    let half = ep.half_open.scan().into_iter().map(|(at, _)| at);
    let scanned = conns.chain(half).chain(ep.time_wait.next_expiry()).min();
    assert_eq!(ep.next_deadline(), scanned, "the next deadline");
}

/// The orders of timers, idle cuts and turns, and the half-open table's, change
/// nothing a poll does: two endpoints given the same random events (handshakes, some
/// left half-open, SYNs again, a full half-open table evicting, data, ACKs opening and
/// closing the window, FINs, RSTs, ICMP "fragmentation needed", the app's sends,
/// reads, shutdowns, closes and aborts, the clock moving by up to 20 s, emitters that
/// refuse after a few segments), one polled as it is and one polled by a scan of every
/// half-open entry's and connection's timers and a turn for every connection
/// (`poll_by_scan`), send the same segments, count the same and give the same next
/// deadline, and the first's orders hold what a scan finds (300 rounds of 300 events).
#[test]
fn the_orders_of_timers_and_turns_change_nothing_a_poll_does() {
    let mut rng = SplitMix(0x7133_0a5e_d00d);
    for round in 0..300 {
        let config = Config {
            keepalive_ns: [None, Some(3_000 * MS)][rng.below(2)],
            time_wait_entries: 1 + rng.below(4),
            half_open: 1 + rng.below(4),
            max_released: 1 + rng.below(4),
            backlog: 8,
            max_connections: 8,
            segmentation: [None, Some(8_000)][rng.below(2)],
            burst: 1 + rng.below(3),
            recv_buffer: [2_000, 64 * 1024][rng.below(2)],
            ..Config::default()
        };
        let (mut a, mut b) = (server(config.clone()), server(config));
        let mut peers: BTreeMap<u16, Peer> = BTreeMap::new();
        // Each connection's handle on a and on b: the same slot and generation, each
        // naming its own endpoint.
        let mut ids: Vec<(ConnId, ConnId)> = Vec::new();
        let mut last_sent: BTreeMap<u16, Vec<u8>> = BTreeMap::new();
        let mut now = 0;
        let body = blob(40_000);
        for step in 0..300 {
            let port = 5000 + rng.below(6) as u16;
            let mut packet = None;
            match rng.below(16) {
                0 if rng.below(3) == 0 => {
                    // The peer's SYN again (its SYN-ACK lost, or late).
                    if let Some(peer) = peers.get(&port) {
                        let irs = peer.seq.plus(usize::MAX);
                        packet = Some(packet_with(port, SYN, irs, Seq(0), 4000));
                    }
                }
                0 => {
                    let syn = packet_with(port, SYN, Seq(1000 + step), Seq(0), 4000);
                    peers.insert(
                        port,
                        Peer {
                            port,
                            seq: Seq(1001 + step),
                            ack: Seq(0),
                            window: 4000,
                        },
                    );
                    packet = Some(syn);
                }
                1..=3 => {
                    if let Some(peer) = peers.get_mut(&port) {
                        peer.window = [0, 1000, 4000, 60_000][rng.below(4)];
                        packet = Some(peer.segment(ACK, b""));
                    }
                }
                4 | 5 => {
                    if let Some(peer) = peers.get_mut(&port) {
                        let data = vec![b'x'; 1 + rng.below(3000)];
                        packet = Some(peer.segment(ACK, &data));
                        peer.seq = peer.seq.plus(data.len());
                    }
                }
                6 => {
                    if let Some(peer) = peers.get_mut(&port) {
                        packet = Some(peer.segment(ACK | FIN, b""));
                        peer.seq = peer.seq.plus(1);
                    }
                }
                7 => {
                    if let Some(peer) = peers.remove(&port) {
                        packet = Some(peer.segment(RST, b""));
                    }
                }
                8 => {
                    if let Some(sent) = last_sent.get(&port) {
                        let quote = &sent[..28.min(sent.len())];
                        let mtu = [576, 1000, 1400][rng.below(3)];
                        let message =
                            icmp::message_about(SERVER, quote, icmp::FRAGMENTATION_NEEDED, mtu);
                        assert_eq!(a.input_icmp(now, &message), b.input_icmp(now, &message));
                    }
                }
                9 | 10 => {
                    while let (Some(id), Some(other)) = (a.accept(), b.accept()) {
                        assert_eq!((id.index, id.generation), (other.index, other.generation));
                        ids.push((id, other));
                    }
                    if !ids.is_empty() {
                        let (id, other) = ids[rng.below(ids.len())];
                        let (start, len) = (rng.below(20_000), rng.below(20_000));
                        let piece = || Piece::shared(body.clone(), start, start + len).unwrap();
                        let mut buf = [0; 1500];
                        let (x, y) = match rng.below(6) {
                            0 | 1 => (a.send(id, piece()), b.send(other, piece())),
                            2 => (
                                a.recv(id, &mut buf).map(|_| ()),
                                b.recv(other, &mut buf).map(|_| ()),
                            ),
                            3 => (a.shutdown(id), b.shutdown(other)),
                            4 => (a.close(id), b.close(other)),
                            _ => (a.abort(id), b.abort(other)),
                        };
                        assert_eq!(x, y);
                    }
                }
                11 | 12 => {
                    let steps = [
                        MS,
                        50 * MS,
                        250 * MS,
                        1_100 * MS,
                        20_000 * MS,
                        PMTU_RAISE_NS,
                    ];
                    now += steps[rng.below(steps.len())];
                }
                _ => {
                    let room = [None, Some(0), Some(1), Some(3)][rng.below(4)];
                    let sent = poll_room(&mut a, now, room);
                    let scanned = poll_by_scan(&mut b, now, room);
                    assert_eq!(sent, scanned, "round {round} step {step}: the segments");
                    for segment in &sent {
                        let seg = parse(segment, false).expect("a segment");
                        last_sent.insert(seg.dst_port, segment.clone());
                        if let Some(peer) = peers.get_mut(&seg.dst_port) {
                            let end = seg.seq.plus(seg.seq_len());
                            if seg.has(RST) {
                                peers.remove(&seg.dst_port);
                            } else if seg.has(SYN) {
                                // Some handshakes stay half-open: the SYN-ACK goes
                                // again, a later ACK may end it, or it expires.
                                peer.ack = end;
                                if rng.below(3) > 0 {
                                    packet = Some(peer.segment(ACK, b""));
                                }
                            } else if end > peer.ack && rng.below(2) == 0 {
                                peer.ack = end;
                            }
                        }
                    }
                }
            }
            if let Some(packet) = packet {
                assert_eq!(a.input(now, &packet), b.input(now, &packet));
            }
            assert_eq!(
                a.stats(),
                b.stats(),
                "round {round} step {step}: the counters"
            );
            assert_eq!(a.next_deadline(), b.next_deadline());
            assert_orders_are_a_scan(&a);
        }
    }
}

/// A packet from `port` to the server's port 80 without data or options.
fn packet_with(port: u16, flags: u8, seq: Seq, ack: Seq, window: u16) -> Vec<u8> {
    packet(port, flags, seq, ack, window, b"", None, None)
}

/// Polls `ep` at `now` and has `peer` acknowledge every segment as it comes, until all
/// is acknowledged.
fn acknowledge_all(ep: &mut Endpoint, peer: &mut Peer, now: u64) {
    loop {
        let sent = poll(ep, now);
        if sent.is_empty() {
            return;
        }
        for segment in &sent {
            let seg = view(segment);
            peer.ack = seg.seq.plus(seg.seq_len());
            peer.send(ep, now, b"");
        }
    }
}

/// A connection idle for longer than the RTO has its congestion window cut to the
/// initial window at the first poll after that, as when every poll gave every
/// connection a turn, though nothing is owed it: so a lowered MSS raised later does
/// not raise the cut (the initial window of the lowered MSS, 5,360 bytes, not that of
/// the MSS raised again, 14,600): the order of idle cuts owes it that turn.
#[test]
fn an_idle_connection_is_given_its_turn_to_cut_its_window_when_the_rto_passed() {
    let mut ep = server(Config::default());
    let (id, mut peer) = connect(&mut ep, 0, 5000, Some(1460), None, 0xffff);
    ep.send(id, Piece::shared(blob(200_000), 0, 200_000).unwrap())
        .unwrap();
    acknowledge_all(&mut ep, &mut peer, 0);
    ep.send(id, Piece::shared(blob(20_000), 0, 20_000).unwrap())
        .unwrap();
    let sent = poll(&mut ep, MS);
    assert!(ep.input_icmp(MS, &too_big(&sent[0], 576)));
    assert_eq!(ep.mss(id), Ok(536));
    acknowledge_all(&mut ep, &mut peer, MS);
    assert_eq!(ep.unacknowledged(id), Ok(0));
    // Idle past the RTO: this poll cuts the window to 10 x 536 bytes.
    assert!(poll(&mut ep, 3_000 * MS).is_empty());
    assert!(poll(&mut ep, MS + PMTU_RAISE_NS).is_empty());
    assert_eq!(ep.mss(id), Ok(1460));
    ep.send(id, Piece::shared(blob(50_000), 0, 50_000).unwrap())
        .unwrap();
    let flight: usize = poll(&mut ep, MS + PMTU_RAISE_NS)
        .iter()
        .map(|segment| view(segment).payload.len())
        .sum();
    // Three whole segments fit the cut window (the rest of it is held back as a runt);
    // cut after the raise, ten would go.
    assert_eq!(flight, 3 * 1460, "the initial window of the lowered MSS");
}
