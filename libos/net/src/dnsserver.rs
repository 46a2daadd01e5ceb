//! A small DNS responder for tests on the host: it answers A queries from a table, as
//! an authoritative server would, and says NXDOMAIN for names not in it. The stack's
//! host tests and `cargo xtask test`'s `monitor::dns` case put it at the other end.

use alloc::string::String;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

/// Query type A (an IPv4 address) and class IN.
const TYPE_A: u16 = 1;
/// Class IN.
const CLASS_IN: u16 = 1;
/// The response code for a name that does not exist.
const NXDOMAIN: u16 = 3;

/// The most bytes a name takes in a message, its length bytes and final zero included
/// (RFC 1035, 2.3.4).
const MAX_NAME_BYTES: usize = 255;

/// Appends `label` to `name` as a master file writes it (RFC 1035, 5.1): a dot or
/// backslash inside the label as `\.` or `\\`, any other byte but printable ASCII as
/// `\DDD`; so that one label holding a dot is not taken for two labels.
fn push_label(name: &mut String, label: &[u8]) {
    for &byte in label {
        match byte {
            b'.' | b'\\' => {
                name.push('\\');
                name.push(char::from(byte));
            }
            b'!'..=b'~' => name.push(char::from(byte)),
            _ => name.push_str(&alloc::format!("\\{byte:03}")),
        }
    }
}

/// The question of a DNS query: its name (lowercase, dot-separated, written as
/// [`push_label`] says), its type and the offset just past it; `None` for anything but
/// one well-formed question.
fn question(query: &[u8]) -> Option<(String, u16, usize)> {
    let field = |at: usize| Some(u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]));
    let is_query = field(2)? & 0x8000 == 0;
    if !is_query || field(4)? != 1 {
        return None;
    }
    let mut name = String::new();
    let mut at = 12;
    loop {
        let len = usize::from(*query.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        if !name.is_empty() {
            name.push('.');
        }
        push_label(&mut name, query.get(at..at + len)?);
        at += len;
    }
    if at - 12 > MAX_NAME_BYTES {
        return None;
    }
    let kind = field(at)?;
    (field(at + 2)? == CLASS_IN).then_some((name.to_ascii_lowercase(), kind, at + 4))
}

/// The answer to `query` from `table` (names with their addresses): every address of a
/// known name for an A query, none for another type, NXDOMAIN for an unknown name;
/// `None` when `query` is not a well-formed single-question query (dropped, as a server
/// drops garbage).
pub fn answer(query: &[u8], table: &[(&str, &[Ipv4Addr])]) -> Option<Vec<u8>> {
    let (name, kind, end) = question(query)?;
    let found = table
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(&name));
    let addresses: &[Ipv4Addr] = match found {
        Some((_, addresses)) if kind == TYPE_A => addresses,
        _ => &[],
    };
    let rcode = if found.is_some() { 0 } else { NXDOMAIN };
    let mut reply = Vec::with_capacity(end + 16 * addresses.len());
    reply.extend_from_slice(&query[0..2]);
    // A response, authoritative, recursion desired (as asked) and available.
    reply.extend_from_slice(
        &(0x8580 | (u16::from_be_bytes([query[2], query[3]]) & 0x0100) | rcode).to_be_bytes(),
    );
    reply.extend_from_slice(&1u16.to_be_bytes());
    reply.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
    reply.extend_from_slice(&[0, 0, 0, 0]);
    reply.extend_from_slice(&query[12..end]);
    for address in addresses {
        // The name by a pointer to the question's, type A, class IN, 60 s, 4 bytes.
        reply.extend_from_slice(&[0xC0, 12]);
        reply.extend_from_slice(&TYPE_A.to_be_bytes());
        reply.extend_from_slice(&CLASS_IN.to_be_bytes());
        reply.extend_from_slice(&60u32.to_be_bytes());
        reply.extend_from_slice(&4u16.to_be_bytes());
        reply.extend_from_slice(&address.octets());
    }
    Some(reply)
}
