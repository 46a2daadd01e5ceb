//! memcached over UDP, with the answer bounded: a request fits in one datagram, but a
//! `get` naming one large value hundreds of times would make an answer of hundreds of
//! megabytes, so the answer is built here (with the engine's pieces) into a bounded
//! output. The bound is much lower than a TCP answer's: UDP has no handshake, so a
//! datagram's source address may be forged, and a few bytes of `get k k k` would make
//! kv send megabytes to whoever it names (memcached's UDP amplification attacks).

use alloc::vec::Vec;

use rexo_memcache::udp::{DATA_PER_DATAGRAM, MULTI_PACKET_REPLY, UdpDrop, UdpHeader};
use rexo_memcache::{Parsed, ServerInfo, Session, Store, parse};

use crate::connection::{Bounded, OUTPUT_TOO_LARGE};

/// The most datagrams one UDP answer fills: a 20000-byte value's 15 (as `kv::protocol`
/// checks) fit, and a forged request (a frame of about 60 bytes) makes at most about
/// 22 KB of answer, not megabytes: the amplification is bounded, not gone
/// (docs/network.md says how far).
pub const UDP_ANSWER_DATAGRAMS: usize = 16;
/// The most answer bytes one datagram's requests may make: [`UDP_ANSWER_DATAGRAMS`] full
/// datagrams, past which the answer is memcached's out-of-memory error.
pub const UDP_OUTPUT_LIMIT: usize = UDP_ANSWER_DATAGRAMS * DATA_PER_DATAGRAM;

/// Serves the requests of one datagram into `answer` (cleared first) and returns the
/// request id its answer carries. As memcached does: a request spread over several
/// datagrams is refused; a request cut off at the end, the data of a refused storage
/// command, and `quit` end the datagram's requests (no later datagram continues them).
/// An answer past [`UDP_OUTPUT_LIMIT`] becomes memcached's out-of-memory error (an `mg`
/// whose answer is dropped so leaves its item as it was: its win goes to a later reader).
pub fn answer_datagram(
    cache: &mut impl Store,
    datagram: &[u8],
    now: u64,
    info: &ServerInfo,
    answer: &mut Vec<u8>,
) -> Result<u16, UdpDrop> {
    answer.clear();
    let (header, mut payload) = UdpHeader::parse(datagram)?;
    // memcached looks only at the count: a request is one datagram.
    if header.total != 1 {
        answer.extend_from_slice(MULTI_PACKET_REPLY);
        return Ok(header.request_id);
    }
    let mut session = Session::new();
    let max_value = cache.max_value();
    while let Parsed::Request {
        consumed, swallow, ..
    } = parse(payload, max_value)
    {
        let mut out = Bounded::new(answer, UDP_OUTPUT_LIMIT);
        let served = session.serve(cache, &payload[..consumed], now, info, &mut out);
        if out.overflowed() {
            answer.clear();
            answer.extend_from_slice(OUTPUT_TOO_LARGE);
            break;
        }
        payload = &payload[consumed..];
        if served.close || swallow > 0 {
            break;
        }
    }
    Ok(header.request_id)
}
