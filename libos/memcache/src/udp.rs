//! memcached over UDP: each datagram starts with an 8-byte frame header (request id,
//! sequence number, datagram count, reserved; big-endian 16-bit fields). A request must
//! fit in one datagram; an answer is cut into datagrams of at most
//! [`UDP_MAX_DATAGRAM`] bytes, header included, as memcached cuts them. The app serves
//! a datagram's requests itself (with [`parse`](crate::parse) and
//! [`Session`](crate::Session)), so that it bounds the answer as it sees fit before
//! cutting it.

/// Bytes of the frame header.
pub const UDP_HEADER_LEN: usize = 8;
/// The largest datagram payload memcached sends (`UDP_MAX_PAYLOAD_SIZE`), header included.
pub const UDP_MAX_DATAGRAM: usize = 1400;
/// Answer bytes per datagram: what [`Datagrams`] puts after each frame header, all but
/// the last datagram of an answer full.
pub const DATA_PER_DATAGRAM: usize = UDP_MAX_DATAGRAM - UDP_HEADER_LEN;
/// memcached's answer to a request spread over several datagrams.
pub const MULTI_PACKET_REPLY: &[u8] = b"SERVER_ERROR multi-packet request not supported\r\n";

/// Why a datagram gets no answer (the caller counts these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpDrop {
    /// Shorter than the frame header.
    Truncated,
    /// The answer needs more datagrams than the 16-bit count can say.
    ResponseTooLarge,
}

/// The frame header of a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpHeader {
    /// Chosen by the client, echoed in every datagram of the answer.
    pub request_id: u16,
    /// This datagram's place in its message, from 0.
    pub sequence: u16,
    /// Datagrams in the message.
    pub total: u16,
}

impl UdpHeader {
    /// The header at the front of `datagram` and the payload after it.
    pub fn parse(datagram: &[u8]) -> Result<(Self, &[u8]), UdpDrop> {
        let Some((header, payload)) = datagram.split_first_chunk::<UDP_HEADER_LEN>() else {
            return Err(UdpDrop::Truncated);
        };
        let field = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
        let header = Self {
            request_id: field(0),
            sequence: field(2),
            total: field(4),
        };
        Ok((header, payload))
    }

    /// The header's bytes (the reserved field 0).
    pub fn bytes(self) -> [u8; UDP_HEADER_LEN] {
        let [id_high, id_low] = self.request_id.to_be_bytes();
        let [sequence_high, sequence_low] = self.sequence.to_be_bytes();
        let [total_high, total_low] = self.total.to_be_bytes();
        [
            id_high,
            id_low,
            sequence_high,
            sequence_low,
            total_high,
            total_low,
            0,
            0,
        ]
    }
}

/// The datagrams of one answer, each as its header and its part of the answer.
#[derive(Clone, Debug)]
pub struct Datagrams<'a> {
    request_id: u16,
    rest: &'a [u8],
    sequence: u16,
    total: u16,
}

impl<'a> Datagrams<'a> {
    /// Cuts `answer` to the request `request_id` into datagrams (none for an empty answer).
    pub fn new(request_id: u16, answer: &'a [u8]) -> Result<Self, UdpDrop> {
        let total = u16::try_from(answer.len().div_ceil(DATA_PER_DATAGRAM))
            .map_err(|_| UdpDrop::ResponseTooLarge)?;
        Ok(Self {
            request_id,
            rest: answer,
            sequence: 0,
            total,
        })
    }
}

impl<'a> Iterator for Datagrams<'a> {
    type Item = ([u8; UDP_HEADER_LEN], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let (part, rest) = self.rest.split_at(self.rest.len().min(DATA_PER_DATAGRAM));
        self.rest = rest;
        let header = UdpHeader {
            request_id: self.request_id,
            sequence: self.sequence,
            total: self.total,
        };
        self.sequence += 1;
        Some((header.bytes(), part))
    }
}
