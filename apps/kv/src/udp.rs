//! memcached over UDP, with the answer bounded: a request fits in one datagram, but a
//! `get` naming one large value hundreds of times would make an answer of hundreds of
//! megabytes, so the answer is built here (with the engine's pieces) into a bounded
//! output rather than by `rexo_memcache::udp::serve_datagram`.

use alloc::vec::Vec;

use rexo_memcache::udp::{MULTI_PACKET_REPLY, UdpDrop, UdpHeader};
use rexo_memcache::{Parsed, ServerInfo, Session, Store, parse};

use crate::connection::{Bounded, OUTPUT_LIMIT, OUTPUT_TOO_LARGE};

/// Serves the requests of one datagram into `answer` (cleared first) and returns the
/// request id its answer carries. As memcached does: a request spread over several
/// datagrams is refused; a request cut off at the end, the data of a refused storage
/// command, and `quit` end the datagram's requests (no later datagram continues them).
/// An answer past [`OUTPUT_LIMIT`] becomes memcached's out-of-memory error.
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
        let mut out = Bounded::new(answer, OUTPUT_LIMIT);
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
