//! One filter: atoms, their normal form, the language, and the overlap test.

use alloc::vec::Vec;
use core::fmt;

/// One masked compare: the `width`-byte big-endian field at `offset`, masked with `mask`,
/// equals `value`. A frame too short to hold the field does not match, nor an IPv4 frame
/// whose datagram (by its total length) ends before the field does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Atom {
    /// Byte offset from the start of the Ethernet frame; from [`TCP_PAYLOAD`] on, in a
    /// TCP frame, from its TCP payload's start, wherever its TCP options put it.
    pub offset: u16,
    /// 1, 2 or 4 bytes.
    pub width: u8,
    /// The bits compared.
    pub mask: u32,
    /// What they must be (no bits outside `mask`).
    pub value: u32,
}

/// The first byte past a 20-byte IPv4 header and a 20-byte TCP header. An atom reads
/// byte `k` below it at the frame's byte `k`, and byte `TCP_PAYLOAD + k` at the frame's
/// byte `TCP_PAYLOAD + k` too, except in a TCP frame (IPv4 with a 20-byte header,
/// protocol 6, a first fragment or whole), where it is TCP payload byte `k`, past the
/// TCP options its data offset counts: a peer's TCP timestamps (12 bytes on every Linux
/// segment) would otherwise stand where a filter reads payload, and an app could slip
/// another app's payload tag past its transmit rule behind options of its own. A TCP
/// frame whose data offset is under 5 words has no payload byte to read (no atom there
/// matches it), and no atom reads a TCP option byte. In an IPv4 frame no atom reads
/// past the datagram's end (14 bytes and its total length): Ethernet padding is no
/// payload.
pub const TCP_PAYLOAD: u16 = 54;

/// The TCP data offset field (the TCP header's length in 32-bit words, high nibble).
const TCP_DATA_OFFSET: usize = 46;

/// A frame as atoms read it: its TCP payload where [`TCP_PAYLOAD`] says.
#[derive(Clone, Copy)]
pub(crate) struct FrameView<'a> {
    /// The frame.
    frame: &'a [u8],
    /// Where the byte read at [`TCP_PAYLOAD`] is in `frame` (`None`: nowhere).
    payload: Option<usize>,
}

impl<'a> FrameView<'a> {
    /// `frame` as atoms read it: an IPv4 frame up to its datagram's end.
    pub(crate) fn of(frame: &'a [u8]) -> Self {
        let frame = &frame[..datagram_end(frame)];
        let tcp = TCP_FRAME
            .iter()
            .all(|atom| atom.raw(frame) == Some(atom.value));
        let payload = match frame.get(TCP_DATA_OFFSET) {
            Some(&byte) if tcp => {
                let words = usize::from(byte >> 4);
                (words >= 5).then(|| 14 + 20 + 4 * words)
            }
            _ => Some(usize::from(TCP_PAYLOAD)),
        };
        Self { frame, payload }
    }

    /// The byte atoms read at `offset`, if there is one.
    fn byte(&self, offset: usize) -> Option<u8> {
        let payload = usize::from(TCP_PAYLOAD);
        match offset.checked_sub(payload) {
            None => self.frame.get(offset).copied(),
            Some(into) => self.frame.get(self.payload? + into).copied(),
        }
    }
}

/// Where the bytes atoms read in `frame` end: for IPv4 (EtherType 0x0800, version 4) at
/// the datagram's end, 14 bytes and its total length, where the frame is that long; for
/// anything else at the frame's end. Past an IPv4 datagram is Ethernet padding (a
/// sender pads every frame to 60 bytes: a bare TCP ACK, 54 bytes, carries 6 zeros that
/// are no payload) or nothing the datagram holds, so no atom reads it, and a datagram
/// whose total length ends before its headers do has no such header bytes: before, a
/// padded bare ACK matched `tcp dport 5000 & 54:1=0`, taking another app's segments
/// that carry no tag, and a padded ACK or RST with its tag in the padding passed the
/// transmit rule of `54:1=1` onto another app's connections.
fn datagram_end(frame: &[u8]) -> usize {
    let ipv4 = frame.get(12..14) == Some(&IPV4_ETHERTYPE.to_be_bytes())
        && frame.get(14).is_some_and(|b| b >> 4 == 4);
    match frame.get(16..18) {
        Some(&[high, low]) if ipv4 => frame
            .len()
            .min(14 + usize::from(u16::from_be_bytes([high, low]))),
        _ => frame.len(),
    }
}

impl Atom {
    /// The field of `frame` this atom reads, masked; `None` when the frame is too short
    /// (or, for a TCP payload byte, has no such byte: [`TCP_PAYLOAD`]; or the byte lies
    /// past an IPv4 datagram's end).
    pub fn field(&self, frame: &[u8]) -> Option<u32> {
        self.read(&FrameView::of(frame))
    }

    /// The field this atom reads in `view`, masked; `None` when it has no such bytes.
    /// A field that ends by [`TCP_PAYLOAD`] (almost every one) is one slice of the frame.
    pub(crate) fn read(&self, view: &FrameView) -> Option<u32> {
        let start = usize::from(self.offset);
        let bytes = start..start + usize::from(self.width);
        if bytes.end <= usize::from(TCP_PAYLOAD) {
            return self.raw(view.frame);
        }
        let field = bytes
            .map(|at| view.byte(at))
            .try_fold(0u32, |acc, byte| Some((acc << 8) | u32::from(byte?)))?;
        Some(field & self.mask)
    }

    /// The field at the atom's offset in `frame` itself, masked (no TCP payload view);
    /// `None` when the frame is too short.
    fn raw(&self, frame: &[u8]) -> Option<u32> {
        let start = usize::from(self.offset);
        let bytes = frame.get(start..start + usize::from(self.width))?;
        Some(bytes.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)) & self.mask)
    }

    /// Whether `frame` satisfies the atom.
    pub fn matches(&self, frame: &[u8]) -> bool {
        self.field(frame) == Some(self.value)
    }

    /// The atom's per-byte constraints: (offset, mask, value) for each byte it tests.
    fn bytes(&self) -> impl Iterator<Item = (u16, u8, u8)> + '_ {
        (0..self.width).filter_map(move |i| {
            let shift = 8 * u32::from(self.width - 1 - i);
            let mask = (self.mask >> shift) as u8;
            (mask != 0).then(|| {
                (
                    self.offset + u16::from(i),
                    mask,
                    (self.value >> shift) as u8,
                )
            })
        })
    }
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mask == full_mask(self.width) {
            write!(f, "{}:{}={:#x}", self.offset, self.width, self.value)
        } else {
            write!(
                f,
                "{}:{}/{:#x}={:#x}",
                self.offset, self.width, self.mask, self.value
            )
        }
    }
}

/// Why a filter's text was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The filter has no atoms (it would match every frame).
    Empty,
    /// A term is neither an atom nor a known word (the term).
    BadTerm(alloc::string::String),
    /// A width other than 1, 2 or 4.
    BadWidth(u32),
    /// A value or mask does not fit the width, or the value has bits outside the mask.
    BadValue(alloc::string::String),
    /// Two atoms demand different values of the same bits: nothing could match.
    Contradiction,
    /// More atoms than a filter may have.
    TooManyAtoms,
    /// A port word (the term, `dport 80`) in a filter that does not name TCP or UDP:
    /// other protocols have no ports at those bytes (an ICMP checksum, say).
    PortWithoutTcpOrUdp(alloc::string::String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => {
                f.write_str("a filter needs at least one atom (it would take every frame)")
            }
            Self::BadTerm(term) => write!(
                f,
                "'{term}' is not OFFSET:WIDTH[/MASK]=VALUE or a known word"
            ),
            Self::BadWidth(width) => write!(f, "width {width}: fields are 1, 2 or 4 bytes"),
            Self::BadValue(term) => write!(f, "'{term}': the value or mask does not fit the field"),
            Self::Contradiction => {
                f.write_str("two atoms contradict each other: no frame could match")
            }
            Self::TooManyAtoms => write!(f, "more than {MAX_ATOMS} atoms"),
            Self::PortWithoutTcpOrUdp(term) => write!(
                f,
                "'{term}' needs 'tcp' or 'udp' in the same filter: only they have ports"
            ),
        }
    }
}

/// The most atoms in one filter (bounds the kernel's work per filter): [`Filter::new`]
/// keeps to it, a transmit rule may not, so the kernel checks it again where it
/// accepts a filter (the registry's `bind_net`).
pub const MAX_ATOMS: usize = 16;
/// The last byte an atom may reach (a jumbo frame's length).
const MAX_OFFSET: u32 = 9018;

/// A filter: atoms joined by AND, in normal form (sorted, one atom per field).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Filter {
    /// Sorted by (offset, width, mask); no two with the same field.
    atoms: Vec<Atom>,
}

/// The EtherType field.
const ETHERTYPE: (u16, u8) = (12, 2);
/// The EtherType of IPv4.
const IPV4_ETHERTYPE: u16 = 0x0800;
/// The EtherType of ARP.
const ARP_ETHERTYPE: u16 = 0x0806;
/// EtherTypes whose frames carry another protocol's frame, IPv4 or Ethernet, behind a
/// header of their own: VLAN tags (802.1Q 0x8100, 802.1ad 0x88A8, the older stackings
/// 0x9100, 0x9200, 0x9300), PPPoE sessions (0x8864), MPLS (0x8847, 0x8848), 802.1ah
/// backbone bridging (0x88E7) and transparent Ethernet bridging (0x6558). No link rule
/// lets an app send them, as the kernel would not see the addresses and ports inside.
/// No such list can be complete: a filter on a rarer carrier lets its app send what it
/// carries, to the MACs the app receives from.
const ENCAPSULATING_ETHERTYPES: [u16; 10] = [
    0x8100, 0x88A8, 0x9100, 0x9200, 0x9300, 0x8864, 0x8847, 0x8848, 0x88E7, 0x6558,
];
/// IPv4 with a 20-byte header: version 4, IHL 5 (the ports are then at fixed offsets).
const IPV4_V_IHL: (u16, u8) = (14, 1);
/// The IPv4 protocol field.
const IP_PROTOCOL: (u16, u8) = (23, 1);
/// The IP protocol number of TCP.
const TCP_PROTOCOL: u8 = 6;
/// The IP protocol numbers of TCP and UDP, the protocols with ports at bytes 34..38.
const PORT_PROTOCOLS: [u8; 2] = [TCP_PROTOCOL, 17];
/// An IPv4 datagram's first fragment, or an unfragmented one: the fragment offset (the
/// low 13 bits of bytes 20..22) is 0. More Fragments stays outside the mask, so a first
/// fragment matches; a later one carries payload where the ports would be.
pub const FIRST_FRAGMENT: Atom = Atom {
    offset: 20,
    width: 2,
    mask: 0x1fff,
    value: 0,
};
/// A TCP frame, whose payload atoms read past its TCP options ([`TCP_PAYLOAD`]): IPv4
/// with a 20-byte header, protocol TCP, a first fragment or whole (what `tcp` names).
const TCP_FRAME: [Atom; 4] = [
    whole_field(ETHERTYPE, IPV4_ETHERTYPE as u32),
    whole_field(IPV4_V_IHL, 0x45),
    whole_field(IP_PROTOCOL, TCP_PROTOCOL as u32),
    FIRST_FRAGMENT,
];

/// The mask of a whole field `width` bytes wide (1, 2 or 4).
const fn full_mask(width: u8) -> u32 {
    if width == 4 {
        u32::MAX
    } else {
        (1 << (8 * width as u32)) - 1
    }
}

/// The atom: the whole `(offset, width)` field equals `value`.
const fn whole_field((offset, width): (u16, u8), value: u32) -> Atom {
    let mask = full_mask(width);
    Atom {
        offset,
        width,
        mask,
        value,
    }
}

impl Filter {
    /// A filter of `atoms` (put in normal form), or why it is refused.
    pub fn new(mut atoms: Vec<Atom>) -> Result<Self, ParseError> {
        if atoms.is_empty() {
            return Err(ParseError::Empty);
        }
        for atom in &atoms {
            if ![1, 2, 4].contains(&atom.width) {
                return Err(ParseError::BadWidth(u32::from(atom.width)));
            }
            let full = full_mask(atom.width);
            if atom.mask & !full != 0 || atom.value & !atom.mask != 0 || atom.mask == 0 {
                return Err(ParseError::BadValue(alloc::format!("{atom}")));
            }
            if u32::from(atom.offset) + u32::from(atom.width) > MAX_OFFSET {
                return Err(ParseError::BadValue(alloc::format!("{atom}")));
            }
        }
        atoms.sort();
        atoms.dedup();
        // Two atoms on the same field and mask with different values: a contradiction.
        if atoms
            .windows(2)
            .any(|w| (w[0].offset, w[0].width, w[0].mask) == (w[1].offset, w[1].width, w[1].mask))
        {
            return Err(ParseError::Contradiction);
        }
        if atoms.len() > MAX_ATOMS {
            return Err(ParseError::TooManyAtoms);
        }
        let filter = Self { atoms };
        if !filter.satisfiable() {
            return Err(ParseError::Contradiction);
        }
        Ok(filter)
    }

    /// Parses the filter language: terms joined by `&` (or whitespace), each an atom
    /// `OFFSET:WIDTH=VALUE` or `OFFSET:WIDTH/MASK=VALUE` (decimal or `0x` hex) or a word:
    /// `arp`, `ipv4` (version 4 with a 20-byte header), `icmp`, `udp`, `tcp` (each implies
    /// `ipv4`; `udp` and `tcp` only first fragments, whose fragment offset is 0),
    /// `dport N`, `sport N` (UDP/TCP ports, first fragments only: a filter with one
    /// must name `tcp` or `udp`), `dst A.B.C.D`, `src A.B.C.D`.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut atoms = Vec::new();
        // The first port word, which needs TCP or UDP named.
        let mut port_term = None;
        let mut words = text
            .split(|c: char| c == '&' || c.is_whitespace())
            .filter(|w| !w.is_empty());
        while let Some(word) = words.next() {
            let ipv4 = [
                whole_field(ETHERTYPE, u32::from(IPV4_ETHERTYPE)),
                whole_field(IPV4_V_IHL, 0x45),
            ];
            match word {
                "arp" => atoms.push(whole_field(ETHERTYPE, u32::from(ARP_ETHERTYPE))),
                "ipv4" => atoms.extend(ipv4),
                "icmp" => {
                    atoms.extend(ipv4);
                    atoms.push(whole_field(IP_PROTOCOL, 1));
                }
                "udp" | "tcp" => {
                    atoms.extend(ipv4);
                    atoms.push(FIRST_FRAGMENT);
                    let protocol = if word == "tcp" { TCP_PROTOCOL } else { 17 };
                    atoms.push(whole_field(IP_PROTOCOL, u32::from(protocol)));
                }
                "dport" | "sport" | "dst" | "src" => {
                    let argument = words
                        .next()
                        .ok_or_else(|| ParseError::BadTerm(word.into()))?;
                    let bad = || ParseError::BadTerm(alloc::format!("{word} {argument}"));
                    match word {
                        "dport" | "sport" => {
                            let port: u16 = argument.parse().map_err(|_| bad())?;
                            port_term.get_or_insert_with(|| alloc::format!("{word} {argument}"));
                            atoms.extend(ipv4);
                            atoms.push(FIRST_FRAGMENT);
                            atoms.push(whole_field(
                                (if word == "sport" { 34 } else { 36 }, 2),
                                u32::from(port),
                            ));
                        }
                        _ => {
                            let mut octets = [0u8; 4];
                            let mut parts = argument.split('.');
                            for octet in &mut octets {
                                *octet =
                                    parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
                            }
                            if parts.next().is_some() {
                                return Err(bad());
                            }
                            atoms.extend(ipv4);
                            atoms.push(whole_field(
                                (if word == "src" { 26 } else { 30 }, 4),
                                u32::from_be_bytes(octets),
                            ));
                        }
                    }
                }
                atom => atoms.push(parse_atom(atom)?),
            }
            if atoms.len() > 4 * MAX_ATOMS {
                return Err(ParseError::TooManyAtoms);
            }
        }
        let filter = Self::new(atoms)?;
        match port_term {
            Some(term) if !filter.names_tcp_or_udp() => Err(ParseError::PortWithoutTcpOrUdp(term)),
            _ => Ok(filter),
        }
    }

    /// Whether the filter takes only TCP or only UDP: it names the whole protocol byte,
    /// as one of them.
    fn names_tcp_or_udp(&self) -> bool {
        let (offset, _) = IP_PROTOCOL;
        self.byte_constraints().is_some_and(|bytes| {
            bytes.iter().any(|&(at, mask, value)| {
                at == offset && mask == 0xFF && PORT_PROTOCOLS.contains(&value)
            })
        })
    }

    /// The atoms, in normal form.
    pub fn atoms(&self) -> &[Atom] {
        &self.atoms
    }

    /// Whether `frame` matches every atom (TCP payload read as [`TCP_PAYLOAD`] says).
    pub fn matches(&self, frame: &[u8]) -> bool {
        Self::any_matches(core::slice::from_ref(self), frame)
    }

    /// Whether `frame` matches one of `filters` ([`matches`](Self::matches)), the frame's
    /// TCP payload found once for them all.
    pub fn any_matches(filters: &[Self], frame: &[u8]) -> bool {
        let view = FrameView::of(frame);
        filters.iter().any(|filter| {
            filter
                .atoms
                .iter()
                .all(|atom| atom.read(&view) == Some(atom.value))
        })
    }

    /// Per-byte constraints of the whole filter, merged: (offset, mask, value), sorted
    /// by offset, one per byte; `None` when two atoms disagree on a bit.
    pub(crate) fn byte_constraints(&self) -> Option<Vec<(u16, u8, u8)>> {
        let mut bytes: Vec<(u16, u8, u8)> = self.atoms.iter().flat_map(Atom::bytes).collect();
        bytes.sort_unstable_by_key(|&(offset, _, _)| offset);
        let mut merged: Vec<(u16, u8, u8)> = Vec::with_capacity(bytes.len());
        for (offset, mask, value) in bytes {
            match merged.last_mut() {
                Some(last) if last.0 == offset => {
                    if (last.2 ^ value) & last.1 & mask != 0 {
                        return None;
                    }
                    last.1 |= mask;
                    last.2 |= value;
                }
                _ => merged.push((offset, mask, value)),
            }
        }
        Some(merged)
    }

    /// Whether some frame matches (no two atoms disagree on a bit).
    fn satisfiable(&self) -> bool {
        self.byte_constraints().is_some()
    }

    /// Whether some frame matches both filters: exactly when no byte both constrain has
    /// a bit they want different.
    pub fn overlaps(&self, other: &Filter) -> bool {
        let (Some(mine), Some(theirs)) = (self.byte_constraints(), other.byte_constraints()) else {
            return false;
        };
        let (mut i, mut j) = (0, 0);
        while i < mine.len() && j < theirs.len() {
            let (a, b) = (mine[i], theirs[j]);
            match a.0.cmp(&b.0) {
                core::cmp::Ordering::Less => i += 1,
                core::cmp::Ordering::Greater => j += 1,
                core::cmp::Ordering::Equal => {
                    if (a.2 ^ b.2) & a.1 & b.1 != 0 {
                        return false;
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
        true
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, atom) in self.atoms.iter().enumerate() {
            if i > 0 {
                f.write_str(" & ")?;
            }
            write!(f, "{atom}")?;
        }
        Ok(())
    }
}

/// The Ethernet destination and source: the only endpoint bytes of a frame that is not
/// IPv4 (the kernel knows no other protocol's).
const MACS: (u16, u16, u16) = (0, 6, 6);

/// Bytes that name an endpoint, one pair per field: (first byte of the destination,
/// first byte of the source, length). A frame an app sends mirrors the frames it
/// receives: its source is their destination and its destination their source.
const ENDPOINTS: [(u16, u16, u16); 3] = [
    MACS,
    // IPv4 destination and source addresses.
    (30, 26, 4),
    // UDP/TCP destination and source ports (20-byte IPv4 header).
    (36, 34, 2),
];

/// Where the byte at `offset` of a received frame is in a frame sent the other way: a
/// byte of one of `endpoints` trades places with the same byte of the other end, any
/// other byte (EtherType, protocol, TTL, payload...) stays where it is.
fn mirror(offset: u16, endpoints: &[(u16, u16, u16)]) -> u16 {
    for &(destination, source, len) in endpoints {
        if (destination..destination + len).contains(&offset) {
            return source + (offset - destination);
        }
        if (source..source + len).contains(&offset) {
            return destination + (offset - source);
        }
    }
    offset
}

impl Filter {
    /// The rule for frames the owner of this receive filter may send: a frame passes
    /// exactly when its mirror image, its two ends traded (Ethernet addresses, IPv4
    /// addresses, UDP/TCP ports), matches the filter. So every bit the filter
    /// constrains constrains sending: a destination bit the same bit of the source (the
    /// port it receives on is the only port it sends from), a bit of the peer's source
    /// the same bit of the destination (`udp sport 53` sends only to port 53), and
    /// every other bit, payload bytes included, in place (two apps told apart by a
    /// payload byte each send only their own). An app whose protocol answers with
    /// other values in such a byte (an ICMP type, a flag) must leave it out of its
    /// filter to send them. The bytes are joined into fields again (`fields`), as the
    /// rule is matched per frame sent; trading places can cut a field in two, so the
    /// rule may have more atoms than a filter may ([`MAX_ATOMS`]: the kernel refuses it
    /// as a filter to bind), never more than the filter constrains bytes.
    pub fn transmit_rule(&self) -> Filter {
        self.mirrored(&ENDPOINTS)
    }

    /// The rule for frames of another EtherType than IPv4 and ARP (whose frames keep
    /// [`transmit_rule`](Self::transmit_rule) and the kernel's ARP rule): a frame passes
    /// exactly when the filter matches it with only its Ethernet addresses traded, as
    /// such a frame has no IPv4 addresses or ports to trade. `None`, so nothing of
    /// another EtherType passes, unless the filter names the whole EtherType field, an
    /// EtherType (0x0600 or more, not a length) other than IPv4, ARP and those that carry
    /// other frames (VLAN tags, PPPoE, MPLS: `ENCAPSULATING_ETHERTYPES`, whose frames
    /// would carry IPv4 past the IPv4 rule): a filter naming
    /// only a MAC or a payload byte would otherwise let its owner send every protocol it
    /// does not receive. Bytes past the Ethernet header stay in place whatever they mean
    /// to the protocol, so two apps sharing an EtherType are kept apart only by bytes the
    /// peer's answers keep in place (a tag), not by fields they trade (IPv6 ports).
    pub fn link_transmit_rule(&self) -> Option<Filter> {
        let bytes = self.byte_constraints()?;
        let whole = |offset| {
            bytes
                .iter()
                .find(|&&(at, mask, _)| at == offset && mask == 0xFF)
        };
        let (&(_, _, high), &(_, _, low)) = (whole(ETHERTYPE.0)?, whole(ETHERTYPE.0 + 1)?);
        let ethertype = u16::from_be_bytes([high, low]);
        let own_rules = [IPV4_ETHERTYPE, ARP_ETHERTYPE].contains(&ethertype);
        (ethertype >= 0x0600 && !own_rules && !ENCAPSULATING_ETHERTYPES.contains(&ethertype))
            .then(|| self.mirrored(&[MACS]))
    }

    /// The filter on frames sent the other way: each byte it constrains moved by
    /// [`mirror`] over `endpoints`, joined into fields again.
    fn mirrored(&self, endpoints: &[(u16, u16, u16)]) -> Filter {
        // A filter no frame matches (never built: `new` refuses it) stays one.
        let Some(received) = self.byte_constraints() else {
            return self.clone();
        };
        let mut bytes: Vec<(u16, u8, u8)> = received
            .into_iter()
            .map(|(offset, mask, value)| (mirror(offset, endpoints), mask, value))
            .collect();
        // Mirroring trades bytes in pairs, so no two land on one offset.
        bytes.sort_unstable_by_key(|&(offset, _, _)| offset);
        Filter {
            atoms: fields(&bytes),
        }
    }
}

/// Byte constraints (offset, mask, value), sorted by offset with one per byte, as
/// atoms that match the same frames: each run of adjacent bytes cut into fields of 4,
/// 2 and 1 bytes, their masks and values side by side. A field covers only constrained
/// bytes, so it asks no more of a frame's length than its bytes did.
fn fields(bytes: &[(u16, u8, u8)]) -> Vec<Atom> {
    let mut atoms = Vec::new();
    let mut rest = bytes;
    while let Some(&(offset, _, _)) = rest.first() {
        let run = rest
            .iter()
            .enumerate()
            .take_while(|&(i, byte)| usize::from(byte.0 - offset) == i)
            .count();
        let width = match run {
            4.. => 4,
            2 | 3 => 2,
            _ => 1,
        };
        let (field, tail) = rest.split_at(width);
        let join = |pick: fn(&(u16, u8, u8)) -> u8| {
            field
                .iter()
                .fold(0u32, |acc, byte| (acc << 8) | u32::from(pick(byte)))
        };
        atoms.push(Atom {
            offset,
            width: width as u8,
            mask: join(|byte| byte.1),
            value: join(|byte| byte.2),
        });
        rest = tail;
    }
    atoms
}

/// A number in decimal or `0x` hex.
fn number(text: &str) -> Option<u32> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// `OFFSET:WIDTH=VALUE` or `OFFSET:WIDTH/MASK=VALUE`.
fn parse_atom(term: &str) -> Result<Atom, ParseError> {
    let bad = || ParseError::BadTerm(term.into());
    let (field, value) = term.split_once('=').ok_or_else(bad)?;
    let (offset, rest) = field.split_once(':').ok_or_else(bad)?;
    let (width, mask) = match rest.split_once('/') {
        Some((width, mask)) => (width, Some(mask)),
        None => (rest, None),
    };
    let offset = number(offset)
        .and_then(|o| u16::try_from(o).ok())
        .ok_or_else(bad)?;
    let width = number(width).ok_or_else(bad)?;
    let width = u8::try_from(width)
        .ok()
        .filter(|w| [1, 2, 4].contains(w))
        .ok_or(ParseError::BadWidth(width))?;
    let full = full_mask(width);
    let mask = match mask {
        Some(mask) => number(mask).ok_or_else(bad)?,
        None => full,
    };
    let value = number(value).ok_or_else(bad)?;
    Ok(Atom {
        offset,
        width,
        mask,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn udp_frame(dport: u16) -> Vec<u8> {
        let mut frame = alloc::vec![0u8; 60];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[14] = 0x45;
        frame[16..18].copy_from_slice(&46u16.to_be_bytes());
        frame[23] = 17;
        frame[30..34].copy_from_slice(&[10, 0, 2, 15]);
        frame[36..38].copy_from_slice(&dport.to_be_bytes());
        frame
    }

    #[test]
    fn words_and_atoms_mean_the_same() {
        let words = Filter::parse("udp & dport 11211").unwrap();
        let atoms = Filter::parse("12:2=0x0800 & 14:1=0x45 & 20:2/0x1fff=0 & 23:1=17 & 36:2=11211")
            .unwrap();
        assert_eq!(words, atoms);
        assert!(words.matches(&udp_frame(11211)));
        assert!(!words.matches(&udp_frame(80)));
        assert!(
            !words.matches(&udp_frame(11211)[..37]),
            "too short for the port"
        );
        assert_eq!(
            Filter::parse(&words.to_string()).unwrap(),
            words,
            "Display parses back"
        );
        assert!(
            Filter::parse("udp dst 10.0.2.15")
                .unwrap()
                .matches(&udp_frame(1))
        );
    }

    #[test]
    fn bad_filters_say_why() {
        assert_eq!(Filter::parse(""), Err(ParseError::Empty));
        assert_eq!(Filter::parse("12:3=1"), Err(ParseError::BadWidth(3)));
        assert!(matches!(
            Filter::parse("12:1=0x100"),
            Err(ParseError::BadValue(_))
        ));
        assert!(matches!(
            Filter::parse("12:2/0xff00=0x1"),
            Err(ParseError::BadValue(_))
        ));
        assert!(matches!(
            Filter::parse("udp tcp"),
            Err(ParseError::Contradiction)
        ));
        assert!(matches!(
            Filter::parse("12:2=0x0800 & 12:1=0x09"),
            Err(ParseError::Contradiction)
        ));
        assert!(matches!(
            Filter::parse("dport"),
            Err(ParseError::BadTerm(_))
        ));
        assert!(matches!(
            Filter::parse("dst 1.2.3"),
            Err(ParseError::BadTerm(_))
        ));
        assert!(matches!(
            Filter::parse("hello"),
            Err(ParseError::BadTerm(_))
        ));
        assert!(Filter::parse("udp dport 11211").is_ok());
    }

    #[test]
    fn a_port_needs_tcp_or_udp() {
        for (text, term) in [
            ("dport 80", "dport 80"),
            ("sport 53 dst 10.0.2.15 dport 7", "sport 53"),
            ("icmp dport 80", "dport 80"),
            ("ipv4 & 23:1=1 & sport 7", "sport 7"),
        ] {
            let refused = Filter::parse(text);
            assert_eq!(
                refused,
                Err(ParseError::PortWithoutTcpOrUdp(term.into())),
                "{text}"
            );
            assert!(refused.unwrap_err().to_string().contains(term));
        }
        // An ICMP echo request whose checksum is 0x0050 is no frame for port 80.
        let mut echo = udp_frame(80);
        echo[23] = 1;
        let ping = Filter::parse("icmp dst 10.0.2.15").unwrap();
        for text in [
            "tcp dport 80",
            "dport 80 udp",
            "23:1=17 & sport 1 & dport 80",
        ] {
            let port = Filter::parse(text).unwrap();
            assert!(!port.matches(&echo), "{text}");
            assert!(!port.overlaps(&ping), "{text}");
        }
    }

    #[test]
    fn ports_take_no_later_fragment() {
        let mut frame = udp_frame(11211);
        let set_fragment_field = |frame: &mut Vec<u8>, flags_and_offset: u16| {
            frame[20..22].copy_from_slice(&flags_and_offset.to_be_bytes());
        };
        for text in [
            "udp dport 11211",
            "udp",
            "23:1=17 & dport 11211",
            "udp dst 10.0.2.15",
        ] {
            let filter = Filter::parse(text).unwrap();
            for first in [0, 0x2000, 0x4000] {
                set_fragment_field(&mut frame, first);
                assert!(filter.matches(&frame), "{text}: {first:#x}");
            }
            for later in [0x2000 | 185, 185, 1, 0x1000] {
                set_fragment_field(&mut frame, later);
                assert!(!filter.matches(&frame), "{text}: {later:#x}");
            }
        }
        assert!(
            !Filter::parse("tcp dport 11211")
                .unwrap()
                .matches(&udp_frame(11211)),
            "the protocol still counts"
        );
        // The app's own datagrams, first fragments or whole, still go out.
        let send = Filter::parse("udp dport 11211").unwrap().transmit_rule();
        let mut reply = udp_frame(40000);
        reply[34..36].copy_from_slice(&11211u16.to_be_bytes());
        for first in [0, 0x2000, 0x4000] {
            set_fragment_field(&mut reply, first);
            assert!(send.matches(&reply), "{first:#x}");
        }
        set_fragment_field(&mut reply, 0x2000 | 185);
        assert!(!send.matches(&reply), "a later fragment names no port");
    }

    #[test]
    fn overlap_is_exact_per_bit() {
        let f = |t: &str| Filter::parse(t).unwrap();
        assert!(f("udp dport 53").overlaps(&f("udp")));
        assert!(f("udp dport 53").overlaps(&f("ipv4 dst 10.0.2.15")));
        assert!(!f("udp dport 53").overlaps(&f("udp dport 54")));
        assert!(!f("udp").overlaps(&f("tcp")));
        assert!(!f("arp").overlaps(&f("ipv4")));
        assert!(
            f("14:1/0xf0=0x40").overlaps(&f("14:1/0x0f=0x05")),
            "different bits of one byte"
        );
        assert!(!f("14:1/0xf0=0x40").overlaps(&f("14:1=0x55")));
        assert!(
            f("12:4/0x0000ff00=0x00000800").overlaps(&f("13:1=0x08")),
            "different widths"
        );
    }

    #[test]
    fn transmit_rules_mirror_the_endpoint_of_the_receive_filter() {
        let receive = Filter::parse("udp dport 11211 dst 10.0.2.15").unwrap();
        let send = receive.transmit_rule();
        assert_eq!(
            send.byte_constraints(),
            Filter::parse("udp sport 11211 src 10.0.2.15")
                .unwrap()
                .byte_constraints()
        );
        let mut reply = udp_frame(40000);
        reply[26..30].copy_from_slice(&[10, 0, 2, 15]);
        reply[34..36].copy_from_slice(&11211u16.to_be_bytes());
        assert!(send.matches(&reply), "a reply from its own port goes out");
        reply[35] ^= 1;
        assert!(!send.matches(&reply), "another app's port does not");
        for no_endpoint in ["udp", "12:2=0x88b5 & 20:1=7"] {
            let filter = Filter::parse(no_endpoint).unwrap();
            assert_eq!(
                filter.transmit_rule(),
                filter,
                "{no_endpoint}: its own rule"
            );
        }
    }

    #[test]
    fn transmit_rules_keep_payload_bytes_in_place() {
        let tagged = Filter::parse("udp dport 5000 & 42:1=1").unwrap();
        let send = tagged.transmit_rule();
        let mut reply = udp_frame(40000);
        reply[34..36].copy_from_slice(&5000u16.to_be_bytes());
        reply[42] = 1;
        assert!(send.matches(&reply), "its own tag goes out");
        reply[42] = 2;
        assert!(!send.matches(&reply), "another app's tag does not");
        assert!(!send.matches(&reply[..42]), "nor a frame too short for it");
    }

    /// A TCP frame to port `dport` with `options` (a multiple of 4 bytes) then `payload`.
    fn tcp_frame(dport: u16, options: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut frame = udp_frame(dport);
        frame.truncate(54);
        frame[23] = 6;
        frame[46] = ((5 + options.len() / 4) as u8) << 4;
        frame.extend_from_slice(options);
        frame.extend_from_slice(payload);
        let total = frame.len() as u16 - 14;
        frame[16..18].copy_from_slice(&total.to_be_bytes());
        frame
    }

    #[test]
    fn no_atom_reads_past_an_ipv4_datagram() {
        // A bare ACK padded to Ethernet's 60 bytes: six bytes past the datagram's 40.
        let mut bare_ack = tcp_frame(5000, &[], &[]);
        bare_ack.resize(60, 0);
        let zero_tag = Filter::parse("tcp dport 5000 & 54:1=0").unwrap();
        assert!(!zero_tag.matches(&bare_ack), "padding is no payload");
        let mut filters = crate::Filters::new();
        filters.insert(zero_tag.clone(), 0).unwrap();
        assert_eq!(filters.classify(&bare_ack), None);
        assert!(zero_tag.matches(&tcp_frame(5000, &[], &[0])), "a real 0");
        // Nor does a tag in the padding pass the transmit rule: an ACK or RST with no
        // payload would go onto another app's connections on the port.
        let send = Filter::parse("tcp sport 5000 & 54:1=1").unwrap();
        let mut ack = tcp_frame(40000, &[], &[]);
        ack[34..36].copy_from_slice(&5000u16.to_be_bytes());
        ack.resize(60, 1);
        assert!(!send.matches(&ack));
        // UDP: an empty datagram padded; a datagram whose total length ends in its
        // own header has no ports.
        let mut empty = udp_frame(5000);
        empty[16..18].copy_from_slice(&28u16.to_be_bytes());
        assert!(
            !Filter::parse("udp dport 5000 & 42:1=0")
                .unwrap()
                .matches(&empty)
        );
        assert!(Filter::parse("udp dport 5000").unwrap().matches(&empty));
        let mut headless = udp_frame(5000);
        headless[16..18].copy_from_slice(&20u16.to_be_bytes());
        assert!(!Filter::parse("udp dport 5000").unwrap().matches(&headless));
        assert!(Filter::parse("udp").unwrap().matches(&headless));
        // A frame shorter than its total length (cut) is read to its end; a frame of
        // another EtherType to its end, whatever bytes 16..18 hold.
        assert!(
            Filter::parse("udp dport 5000")
                .unwrap()
                .matches(&udp_frame(5000)[..38])
        );
        let mut raw = alloc::vec![0u8; 60];
        raw[12..14].copy_from_slice(&[0x88, 0xb5]);
        raw[14] = 0x45;
        raw[59] = 7;
        assert!(Filter::parse("12:2=0x88b5 & 59:1=7").unwrap().matches(&raw));
    }

    #[test]
    fn any_matches_is_one_of_the_filters_matching() {
        let rules = [
            Filter::parse("udp dport 53").unwrap(),
            Filter::parse("tcp dport 5000 & 54:1=1").unwrap(),
        ];
        let timestamps = [1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9];
        let frames = [
            udp_frame(53),
            udp_frame(54),
            tcp_frame(5000, &timestamps, &[1]),
            tcp_frame(5000, &timestamps, &[2]),
            Vec::new(),
        ];
        let answers: Vec<bool> = frames
            .iter()
            .map(|frame| Filter::any_matches(&rules, frame))
            .collect();
        assert_eq!(answers, [true, false, true, false, false]);
        assert!(
            !Filter::any_matches(&[], &frames[0]),
            "no rules: nothing matches"
        );
    }

    #[test]
    fn tcp_payload_bytes_are_read_past_the_tcp_options() {
        let tagged = Filter::parse("tcp dport 5000 & 54:1=1 & 55:2=0x0203").unwrap();
        let timestamps = [1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9];
        assert!(tagged.matches(&tcp_frame(5000, &[], &[1, 2, 3])));
        assert!(
            tagged.matches(&tcp_frame(5000, &timestamps, &[1, 2, 3])),
            "a peer's timestamps stand before the payload"
        );
        assert!(!tagged.matches(&tcp_frame(5000, &timestamps, &[2, 2, 3])));
        assert!(
            !tagged.matches(&tcp_frame(5000, &[1, 2, 3, 1], &[2, 2, 3])),
            "option bytes that spell the tag are no payload"
        );
        let straddling = Filter::parse("tcp & 52:4=0x00000102").unwrap();
        assert!(
            straddling.matches(&tcp_frame(5000, &timestamps, &[1, 2])),
            "a field over the header's end and the payload's start"
        );
        assert!(!straddling.matches(&tcp_frame(5000, &timestamps, &[1])));
        let mut short_header = tcp_frame(5000, &[], &[1, 2, 3]);
        short_header[46] = 0x40;
        assert!(
            !tagged.matches(&short_header),
            "a data offset under 5 words"
        );
        let mut past_the_end = tcp_frame(5000, &[], &[1, 2, 3]);
        past_the_end[46] = 0xF0;
        assert!(
            !tagged.matches(&past_the_end),
            "a header longer than the frame"
        );
        // UDP's header is 8 bytes, whatever byte 46 holds: its payload stays in place.
        let udp = Filter::parse("udp dport 5000 & 54:1=1").unwrap();
        let mut datagram = udp_frame(5000);
        (datagram[46], datagram[54]) = (0x60, 1);
        assert!(udp.matches(&datagram));
        // And so does a later fragment's, which carries no TCP header.
        let raw = Filter::parse("12:2=0x0800 & 23:1=6 & 54:1=1").unwrap();
        let mut tail = tcp_frame(5000, &[9, 9, 9, 9], &[1]);
        tail[20..22].copy_from_slice(&185u16.to_be_bytes());
        assert!(!raw.matches(&tail));
        tail[54] = 1;
        assert!(raw.matches(&tail));
    }

    #[test]
    fn the_tree_reads_tcp_payload_past_the_options() {
        let mut filters = crate::Filters::new();
        for tag in 1..=2 {
            let text = alloc::format!("tcp dport 5000 & 54:1={tag}");
            filters.insert(Filter::parse(&text).unwrap(), tag).unwrap();
        }
        let timestamps = [1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9];
        assert_eq!(
            filters.classify(&tcp_frame(5000, &timestamps, &[2])),
            Some(2)
        );
        assert_eq!(filters.classify(&tcp_frame(5000, &[], &[1])), Some(1));
        assert_eq!(filters.classify(&tcp_frame(5000, &timestamps, &[])), None);
    }

    #[test]
    fn a_tcp_payload_tag_cannot_pass_a_transmit_rule_behind_options() {
        let send = Filter::parse("tcp dport 5000 & 54:1=1")
            .unwrap()
            .transmit_rule();
        let mut own = tcp_frame(40000, &[1, 1, 1, 1], &[1]);
        own[34..36].copy_from_slice(&5000u16.to_be_bytes());
        assert!(send.matches(&own), "its own tag behind options");
        let mut others = tcp_frame(40000, &[1, 1, 1, 1], &[2]);
        others[34..36].copy_from_slice(&5000u16.to_be_bytes());
        assert!(
            !send.matches(&others),
            "NOPs at 54 spell its tag, the payload is 2"
        );
    }

    #[test]
    fn transmit_rules_send_to_the_source_the_filter_receives_from() {
        let dns = Filter::parse("udp sport 53 dst 10.0.2.15")
            .unwrap()
            .transmit_rule();
        assert_eq!(
            dns.byte_constraints(),
            Filter::parse("udp dport 53 src 10.0.2.15")
                .unwrap()
                .byte_constraints()
        );
        let mut query = udp_frame(53);
        query[26..30].copy_from_slice(&[10, 0, 2, 15]);
        query[34..36].copy_from_slice(&40000u16.to_be_bytes());
        assert!(dns.matches(&query), "a query to port 53");
        query[36..38].copy_from_slice(&40001u16.to_be_bytes());
        query[34..36].copy_from_slice(&11211u16.to_be_bytes());
        assert!(!dns.matches(&query), "not from kv's port to anywhere");
        let from_mac = Filter::parse("6:4=0x02000000 & 10:2=0x0001 & ipv4")
            .unwrap()
            .transmit_rule();
        let mut frame = udp_frame(1);
        frame[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        assert!(from_mac.matches(&frame), "to the MAC it receives from");
        frame[5] = 2;
        assert!(!from_mac.matches(&frame));
    }

    #[test]
    fn link_transmit_rules_trade_only_the_macs_of_a_named_ethertype() {
        let raw = Filter::parse("12:2=0x88b5 & 0:4=0x02000000 & 4:2=0x0001 & 30:1=7")
            .unwrap()
            .link_transmit_rule()
            .unwrap();
        let mut frame = alloc::vec![0u8; 60];
        frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        frame[12..14].copy_from_slice(&[0x88, 0xb5]);
        frame[30] = 7;
        assert!(raw.matches(&frame), "from its MAC, byte 30 in place");
        frame[26] = 7;
        frame[30] = 0;
        assert!(!raw.matches(&frame), "no IPv4 address to trade");
        let split = Filter::parse("12:1=0x88 & 13:1=0xb5").unwrap();
        assert!(split.link_transmit_rule().is_some(), "named in two atoms");
        for unnamed in [
            "0:4=0x02000000 & 4:2=0x0001",
            "12:2/0xff00=0x8800",
            "42:1=1",
        ] {
            let filter = Filter::parse(unnamed).unwrap();
            assert_eq!(filter.link_transmit_rule(), None, "{unnamed}");
        }
        for own_rules in [
            "udp dport 80",
            "12:2=0x0800",
            "arp",
            "12:2=0x002e",
            "12:2=0x8100",
            "12:2=0x88a8",
            "12:2=0x9100",
            "12:2=0x8864",
            "12:2=0x8847",
            "12:2=0x6558",
        ] {
            let filter = Filter::parse(own_rules).unwrap();
            assert_eq!(filter.link_transmit_rule(), None, "{own_rules}");
        }
    }

    /// `frame` with its two ends traded, as [`mirror`] says byte by byte (a frame
    /// holding every endpoint byte).
    fn mirrored(frame: &[u8]) -> Vec<u8> {
        (0..frame.len() as u16)
            .map(|offset| frame[usize::from(mirror(offset, &ENDPOINTS))])
            .collect()
    }

    #[test]
    fn a_frame_passes_the_transmit_rule_exactly_when_its_mirror_matches_the_filter() {
        let mut rng = rexo_testkit::Rng(0x5eed_f11e_7e55_0001);
        let (mut passed, mut refused) = (0, 0);
        for _ in 0..5_000 {
            let atoms: Vec<Atom> = (0..1 + rng.below(5))
                .map(|_| {
                    let width = [1u8, 2, 4][rng.below(3)];
                    let mask = (rng.next_u64() as u32 | 1) & (u32::MAX >> (32 - 8 * width));
                    Atom {
                        offset: rng.below(46) as u16,
                        width,
                        mask,
                        value: rng.next_u64() as u32 & mask,
                    }
                })
                .collect();
            let Ok(filter) = Filter::new(atoms) else {
                continue;
            };
            let rule = filter.transmit_rule();
            // A frame long enough for every atom that the rule asks for, then a few of
            // its bits changed, half the time one the rule constrains.
            let mut frame = alloc::vec![0u8; 50];
            let constraints = rule.byte_constraints().unwrap();
            for &(offset, mask, value) in &constraints {
                let byte = &mut frame[usize::from(offset)];
                *byte = (*byte & !mask) | value;
            }
            for _ in 0..rng.below(3) {
                frame[rng.below(50)] ^= 1 << rng.below(8);
            }
            if rng.below(2) == 0 {
                let (offset, mask, _) = constraints[rng.below(constraints.len())];
                frame[usize::from(offset)] ^= mask & mask.wrapping_neg();
            }
            let sent = rule.matches(&frame);
            assert_eq!(
                sent,
                filter.matches(&mirrored(&frame)),
                "{filter}: {frame:?}"
            );
            if sent {
                passed += 1;
            } else {
                refused += 1;
            }
        }
        assert!(
            passed > 1_000 && refused > 1_000,
            "{passed} passed, {refused} refused"
        );
    }

    #[test]
    fn transmit_rules_join_their_bytes_into_fields() {
        let send = Filter::parse("udp dport 11211 dst 10.0.2.15")
            .unwrap()
            .transmit_rule();
        let direct = Filter::parse("udp sport 11211 src 10.0.2.15").unwrap();
        assert_eq!(send.atoms().len(), direct.atoms().len());
        assert_eq!(send, direct, "the same fields");
        let kv = Filter::parse("udp dport 11211").unwrap();
        assert_eq!(kv.transmit_rule().atoms().len(), kv.atoms().len());
        // Six bytes of a MAC: a field of 4 and one of 2; three bytes: 2 and 1.
        let mac = Filter::parse("0:2=0x0200 & 2:4=0x01").unwrap();
        let widths = |f: &Filter| f.atoms().iter().map(|a| a.width).collect::<Vec<_>>();
        assert_eq!(widths(&mac.transmit_rule()), [4, 2]);
        let partial = Filter::parse("ipv4 & 30:4/0x00ffffff=0x000215").unwrap();
        let rule = partial.transmit_rule();
        assert_eq!(widths(&rule), [2, 1, 2, 1]);
        assert_eq!(
            rule.byte_constraints(),
            Filter::parse("ipv4 & 26:4/0x00ffffff=0x000215")
                .unwrap()
                .byte_constraints()
        );
    }

    #[test]
    fn transmit_rules_mirror_every_endpoint_byte_whatever_its_atom() {
        let rule = |text: &str| Filter::parse(text).unwrap().transmit_rule();
        let mut reply = udp_frame(40000);
        reply[34..36].copy_from_slice(&0x8001u16.to_be_bytes());
        // One byte of the port: the same byte of the source port.
        let high_ports = rule("udp & 36:1=0x80");
        assert!(high_ports.matches(&reply));
        reply[34..36].copy_from_slice(&11211u16.to_be_bytes());
        assert!(!high_ports.matches(&reply), "kv's port is not among them");
        // A wide atom reaching over the port: its port bytes, and no more.
        let port = rule("udp & 34:4/0xffff=11211");
        assert!(port.matches(&reply));
        reply[35] ^= 1;
        assert!(!port.matches(&reply));
        assert_eq!(
            port.byte_constraints(),
            Filter::parse("udp sport 11211").unwrap().byte_constraints(),
            "the peer's port bytes, masked out, constrain nothing"
        );
        // All six bytes of the Ethernet destination, in any pieces.
        let mac = rule("0:2=0x0200 & 2:4=0x01");
        let mut frame = udp_frame(1);
        frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        assert!(mac.matches(&frame));
        frame[11] = 2;
        assert!(!mac.matches(&frame), "the last byte of the MAC counts too");
        // Partial masks stay partial.
        let subnet = rule("ipv4 & 30:4/0xffffff00=0x0a000200");
        frame[26..30].copy_from_slice(&[10, 0, 2, 99]);
        assert!(subnet.matches(&frame));
        frame[28] = 3;
        assert!(!subnet.matches(&frame));
    }

    #[test]
    fn the_parser_never_panics_on_noise() {
        let mut rng = rexo_testkit::Rng(0x9E37_79B9_7F4A_7C15);
        let alphabet = b"0123456789x:/=& .abcdefgiprtuvsn\xff";
        for _ in 0..20_000 {
            let len = rng.below(40);
            let text: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.below(alphabet.len())])
                .collect();
            let text = alloc::string::String::from_utf8_lossy(&text);
            if let Ok(filter) = Filter::parse(&text) {
                assert_eq!(
                    Filter::parse(&filter.to_string()).as_ref(),
                    Ok(&filter),
                    "{text}"
                );
            }
        }
    }
}
