//! The request parser: one request at a time from the front of a receive buffer,
//! borrowing from it (no copy), within fixed bounds.
//!
//! Our own rather than `httparse`: the engine needs the bounds to decide *which* error
//! to answer (414 for the request line, 431 for the head) from a prefix of the stream,
//! before the head is complete, and needs no fixed-size header array: the fields are
//! validated once and re-read on demand from the borrowed head.

use crate::response::Status;

/// Bounds on what one request may occupy in a connection's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line (method, target and version, without the line end); longer
    /// is answered `414 URI Too Long`.
    pub request_line: usize,
    /// Most bytes of the head: leading blank lines, the request line, the header fields
    /// and the blank line ending them; more is answered `431`.
    pub head: usize,
    /// Largest request body accepted (and discarded: GET and HEAD need none); larger is
    /// answered `413 Payload Too Large`.
    pub body: usize,
}

impl Limits {
    /// 4 KiB request lines, 8 KiB heads, 4 KiB bodies.
    pub const DEFAULT: Limits = Limits {
        request_line: 4096,
        head: 8192,
        body: 4096,
    };

    /// The most bytes the caller ever needs to buffer for one request: [`parse`] never
    /// answers [`Parsed::Incomplete`] for a buffer this long.
    pub fn buffer_bound(&self) -> usize {
        self.head.saturating_add(self.body)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// A request method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method<'b> {
    /// `GET`.
    Get,
    /// `HEAD`.
    Head,
    /// Any other method token (case matters: `get` is not `GET`), answered `405`.
    Other(&'b [u8]),
}

/// The protocol version of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: connections close unless the client asks `keep-alive`.
    Http10,
    /// HTTP/1.1 (and any later 1.x, which a 1.1 server answers as 1.1).
    Http11,
}

/// A parsed request, borrowing the receive buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'b> {
    /// The method.
    pub method: Method<'b>,
    /// The request target as sent.
    pub target: &'b [u8],
    /// The path of the target: the origin form without its query, or the path of an
    /// absolute form (`http://host/path`); still percent-encoded.
    pub path: &'b [u8],
    /// The version.
    pub version: Version,
    /// The `Host` field's value, if sent (HTTP/1.1 requests without one, and requests
    /// with one holding a byte no host or port has, are refused; its form is not
    /// checked further).
    pub host: Option<&'b [u8]>,
    /// Whether the connection stays open after the answer: HTTP/1.1 unless
    /// `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
    pub keep_alive: bool,
    /// The body's length (the body itself is skipped).
    pub content_length: usize,
    /// Whether the client waits for an interim `100 Continue` before it sends the body
    /// (`Expect: 100-continue` in an HTTP/1.1 request; RFC 9110 10.1.1 has servers
    /// ignore it in HTTP/1.0 ones).
    pub expects_continue: bool,
    /// The header field lines, validated, each ended by LF (CRLF or bare LF).
    fields: &'b [u8],
}

impl<'b> Request<'b> {
    /// Every header field as (name, value), the value without surrounding whitespace.
    pub fn fields(&self) -> Fields<'b> {
        Fields { rest: self.fields }
    }

    /// The values of every field named `name` (compared without case), in order.
    pub fn values(&self, name: &'static [u8]) -> impl Iterator<Item = &'b [u8]> + use<'b> {
        self.fields()
            .filter(move |(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }
}

/// The header fields of a [`Request`], as (name, value).
#[derive(Clone, Debug)]
pub struct Fields<'b> {
    rest: &'b [u8],
}

impl<'b> Iterator for Fields<'b> {
    type Item = (&'b [u8], &'b [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (line, next) = split_line(self.rest, 0)?;
        self.rest = &self.rest[next..];
        // The parser validated every line: each has a colon after a non-empty name.
        let colon = line.iter().position(|&b| b == b':')?;
        Some((&line[..colon], trim_whitespace(&line[colon + 1..])))
    }
}

/// What [`parse`] found at the front of the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed<'b> {
    /// No complete request yet and no bound broken: read more and call again with the
    /// bytes appended (the buffer stays below [`Limits::buffer_bound`]).
    Incomplete,
    /// A whole head, within the bounds, that asks `Expect: 100-continue`, with its body
    /// still to come: send the interim `100 Continue` (once for the request), then read
    /// more as for [`Incomplete`](Parsed::Incomplete). A request refused from its head
    /// alone (a body above [`Limits::body`], another expectation) gets its final answer
    /// as [`Invalid`](Parsed::Invalid) instead, without the 100.
    ContinueExpected,
    /// A request; `consumed` bytes (its head and body) belong to it, and the next
    /// pipelined request starts after them.
    Request {
        /// The request.
        request: Request<'b>,
        /// Its length in the buffer.
        consumed: usize,
    },
    /// The stream cannot be read on: answer this status and close the connection.
    Invalid(Status),
}

/// Reads one request from the front of `buf`.
pub fn parse<'b>(buf: &'b [u8], limits: &Limits) -> Parsed<'b> {
    match parse_head(buf, limits) {
        Ok(Some((request, head_len))) => {
            // A body no buffer can follow the head with is too large whatever the bound.
            let consumed = match head_len.checked_add(request.content_length) {
                Some(consumed) if request.content_length <= limits.body => consumed,
                _ => return Parsed::Invalid(Status::PayloadTooLarge),
            };
            if buf.len() < consumed && request.expects_continue {
                Parsed::ContinueExpected
            } else if buf.len() < consumed {
                Parsed::Incomplete
            } else {
                Parsed::Request { request, consumed }
            }
        }
        Ok(None) => Parsed::Incomplete,
        Err(status) => Parsed::Invalid(status),
    }
}

/// Parses the head at the front of `buf`: the request and the head's length, `None`
/// if it is not complete yet, or the error status. Each line is judged as soon as it is
/// complete, so a bad request line is refused before its headers arrive.
fn parse_head<'b>(buf: &'b [u8], limits: &Limits) -> Result<Option<(Request<'b>, usize)>, Status> {
    let bounded = &buf[..buf.len().min(limits.head)];
    // RFC 7230 3.5: a server should ignore blank lines before the request line.
    let mut start = 0;
    while let Some((b"", next)) = split_line(bounded, start) {
        start = next;
    }
    let Some((request_line, fields_start)) = split_line(bounded, start) else {
        let partial = buf.len() - start;
        // One more byte than the bound may still be the CR of a line of bound length.
        return if partial > limits.request_line.saturating_add(1) {
            Err(Status::UriTooLong)
        } else if buf.len() >= limits.head {
            Err(Status::HeaderFieldsTooLarge)
        } else {
            Ok(None)
        };
    };
    if request_line.len() > limits.request_line {
        return Err(Status::UriTooLong);
    }
    let RequestLine {
        method,
        target,
        path,
        version,
    } = parse_request_line(request_line)?;

    let mut position = fields_start;
    let mut host = None;
    let mut content_length = None;
    let mut close = false;
    let mut keep_alive_asked = false;
    let mut continue_asked = false;
    let (fields_end, head_len) = loop {
        let Some((line, next)) = split_line(bounded, position) else {
            return if buf.len() >= limits.head {
                Err(Status::HeaderFieldsTooLarge)
            } else {
                Ok(None)
            };
        };
        if line.is_empty() {
            break (position, next);
        }
        let (name, value) = parse_field(line)?;
        if name.eq_ignore_ascii_case(b"host") {
            // RFC 9112 3.2: more than one Host is a bad request, and so is one holding a
            // byte no host or port has (the bytes are checked, not their form).
            if host.replace(value).is_some() || !value.iter().all(|&b| is_host_byte(b)) {
                return Err(Status::BadRequest);
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let length = parse_content_length(value)?;
            if content_length.is_some_and(|earlier| earlier != length) {
                return Err(Status::BadRequest);
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Request bodies are never used; refusing coded ones keeps framing simple,
            // and the connection closes, so nothing is left to misread.
            return Err(Status::NotImplemented);
        } else if name.eq_ignore_ascii_case(b"expect") {
            // RFC 9110 10.1.1: 100-continue is the only expectation; another may be
            // answered 417 (and the connection closes, as for any refused head).
            for expectation in value.split(|&b| b == b',').map(trim_whitespace) {
                if expectation.eq_ignore_ascii_case(b"100-continue") {
                    continue_asked = true;
                } else if !expectation.is_empty() {
                    return Err(Status::ExpectationFailed);
                }
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in value.split(|&b| b == b',').map(trim_whitespace) {
                close |= option.eq_ignore_ascii_case(b"close");
                keep_alive_asked |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        position = next;
    };
    if version == Version::Http11 && host.is_none() {
        return Err(Status::BadRequest);
    }
    let keep_alive = !close && (version == Version::Http11 || keep_alive_asked);
    let request = Request {
        method,
        target,
        path,
        version,
        host,
        keep_alive,
        content_length: content_length.unwrap_or(0),
        expects_continue: continue_asked && version == Version::Http11,
        fields: &buf[fields_start..fields_end],
    };
    Ok(Some((request, head_len)))
}

/// The line starting at `start` without its line end (LF, or CR LF), and where the next
/// line starts; `None` if no LF follows yet.
fn split_line(buf: &[u8], start: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(start..)?;
    let newline = rest.iter().position(|&b| b == b'\n')?;
    let line = &rest[..newline];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Some((line, start + newline + 1))
}

/// The parts of a request line.
struct RequestLine<'b> {
    method: Method<'b>,
    target: &'b [u8],
    path: &'b [u8],
    version: Version,
}

/// Splits and checks a request line.
fn parse_request_line(line: &[u8]) -> Result<RequestLine<'_>, Status> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Status::BadRequest);
    };
    if method.is_empty() || !method.iter().all(|&b| is_token(b)) {
        return Err(Status::BadRequest);
    }
    let method = match method {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        other => Method::Other(other),
    };
    let version = match version {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'0'] => Version::Http10,
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor] if minor.is_ascii_digit() => {
            Version::Http11
        }
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(Status::VersionNotSupported);
        }
        _ => return Err(Status::BadRequest),
    };
    Ok(RequestLine {
        method,
        target,
        path: target_path(target)?,
        version,
    })
}

/// The path of a request target (origin or absolute form), without query or fragment.
fn target_path(target: &[u8]) -> Result<&[u8], Status> {
    if target.is_empty() || !target.iter().all(|&b| b > b' ' && b != 0x7f) {
        return Err(Status::BadRequest);
    }
    let path = if target.starts_with(b"/") {
        target
    } else {
        // RFC 7230 5.3.2: a server must accept the absolute form.
        let after_scheme = strip_prefix_ignore_case(target, b"http://")
            .or_else(|| strip_prefix_ignore_case(target, b"https://"))
            .ok_or(Status::BadRequest)?;
        // The authority ends at the first `/`, `?` or `#` (RFC 3986 3.2); a slash in
        // the query or fragment begins no path. An empty path is `/` (RFC 7230 5.3.2).
        let authority_end = after_scheme
            .iter()
            .position(|&b| b == b'/' || b == b'?' || b == b'#')
            .unwrap_or(after_scheme.len());
        match after_scheme[authority_end..] {
            [b'/', ..] => &after_scheme[authority_end..],
            _ => b"/",
        }
    };
    let end = path
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(path.len());
    Ok(&path[..end])
}

/// `bytes` without `prefix`, compared without case.
fn strip_prefix_ignore_case<'a>(bytes: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = bytes.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &bytes[prefix.len()..])
}

/// The name and trimmed value of a header field line.
fn parse_field(line: &[u8]) -> Result<(&[u8], &[u8]), Status> {
    // A name must follow the colon directly (RFC 7230 3.2.4); a line starting with
    // whitespace is an obsolete fold, which a server may refuse, and does.
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(Status::BadRequest)?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
        return Err(Status::BadRequest);
    }
    if !value
        .iter()
        .all(|&b| b == b'\t' || (b >= b' ' && b != 0x7f))
    {
        return Err(Status::BadRequest);
    }
    Ok((name, trim_whitespace(value)))
}

/// A `Content-Length` value: decimal digits only; too large for memory is too large.
fn parse_content_length(value: &[u8]) -> Result<usize, Status> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(Status::BadRequest);
    }
    value.iter().try_fold(0usize, |total, &digit| {
        total
            .checked_mul(10)
            .and_then(|total| total.checked_add(usize::from(digit - b'0')))
            .ok_or(Status::PayloadTooLarge)
    })
}

/// `bytes` without leading and trailing spaces and tabs.
pub(crate) fn trim_whitespace(bytes: &[u8]) -> &[u8] {
    let is_space = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes
        .iter()
        .position(|b| !is_space(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// Whether some host or port has `b` (RFC 3986 3.2.2 and 3.2.3): a byte of a registered
/// name (unreserved characters, percent escapes, sub-delimiters), of an IP address (in
/// brackets for IPv6) or of a port after a colon; no space, `/`, `@`, `?` or `#`. A
/// byte, not a form: `Host: ]:a[` passes.
fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:[]".contains(&b)
}

/// Whether `b` may appear in a token (RFC 7230 3.2.6): methods and field names.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
