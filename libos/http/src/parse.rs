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
    /// Largest request body accepted (and discarded: GET and HEAD need none), as sent:
    /// a chunked body's whole coding, its chunk-size lines and trailer included; larger
    /// is answered `413 Payload Too Large`.
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
    /// Any other method token (case matters: `get` is not `GET`), answered `405` if the
    /// engine knows it (POST, PUT, DELETE, PATCH, CONNECT, TRACE, OPTIONS), `501` if
    /// not. A CONNECT whose target is not `host:port` is a bad request (400).
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
    /// absolute form (`http://host/path`); still percent-encoded. `*` for the asterisk
    /// form, which only `OPTIONS` may send (RFC 9112 3.2.4); empty for the authority
    /// form (`host:port`), which `CONNECT` alone sends, and must (RFC 9112 3.2.3).
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
    /// The body's length: its `Content-Length`, or the sum of its chunks' sizes when it
    /// came chunked (the body itself is skipped).
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
    /// The stream cannot be read on: answer `status` and close the connection.
    Invalid {
        /// The answer.
        status: Status,
        /// The request's method, if it was read: that of a valid request line, or the
        /// token a refused or unfinished request line begins with, if a space follows
        /// it (see [`ParseProgress::method`]); a refusal of a HEAD request has no
        /// content, RFC 9110 9.3.2.
        method: Option<Method<'b>>,
    },
}

/// Reads one request from the front of `buf`.
pub fn parse<'b>(buf: &'b [u8], limits: &Limits) -> Parsed<'b> {
    parse_resumed(buf, limits, &mut ParseProgress::default())
}

/// How far [`parse_resumed`] got with the request at the front of a buffer, kept
/// between its calls while the request is unfinished: the complete lines of its head
/// were judged once (and what they said noted), the bytes after them were searched for
/// a line end once, and a head found whole is not read again while its body arrives.
/// Start a request with the default; after a request or a refusal it is the default
/// again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParseProgress {
    /// Where the search for the next line end resumes: no LF lies before it after
    /// `judged`.
    searched: usize,
    /// Where the first line not yet judged starts.
    judged: usize,
    /// The request line, once judged.
    request_line: Option<JudgedRequestLine>,
    /// Where the value of the `Host` field lies, once one was judged.
    host: Option<Span>,
    /// The `Content-Length` judged so far.
    content_length: Option<usize>,
    /// Whether a `Connection` field asked `close`.
    close_asked: bool,
    /// Whether a `Connection` field asked `keep-alive`.
    keep_alive_asked: bool,
    /// Whether an `Expect` field asked `100-continue`.
    continue_asked: bool,
    /// The transfer codings the `Transfer-Encoding` fields judged so far listed, if any
    /// was.
    transfer_codings: Option<TransferCodings>,
    /// The head, once its blank line was found.
    whole_head: Option<WholeHead>,
    /// Where the decoding of a chunked body got, once it began.
    chunked_body: Option<ChunkedBody>,
}

/// The transfer codings of a request's `Transfer-Encoding` fields, one list in order
/// (RFC 9112 6.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct TransferCodings {
    /// How many were listed.
    listed: usize,
    /// Whether the last is `chunked`.
    chunked_last: bool,
}

/// Where the decoding of a chunked body (RFC 9112 7.1) got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ChunkedBody {
    /// Where its next part starts in the buffer.
    at: usize,
    /// What that part is.
    next: ChunkPart,
    /// The bytes of chunk data before it.
    data_len: usize,
}

/// A part of a chunked body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkPart {
    /// A chunk-size line, with any extensions.
    SizeLine,
    /// This many bytes of chunk data, then CR LF.
    Data(usize),
    /// A trailer field line, or the blank line that ends the body.
    Trailer,
}

/// A head found whole: where its fields and it end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct WholeHead {
    /// Where the blank line after the header fields starts.
    fields_end: usize,
    /// The head's length, its blank line included.
    len: usize,
}

/// Where the parts of a judged request line lie in the buffer, and its version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct JudgedRequestLine {
    /// The method.
    method: Span,
    /// The request target.
    target: Span,
    /// The target's path (empty for CONNECT's authority form); `None` for an absolute
    /// form without one, whose path is `/`.
    path: Option<Span>,
    /// Where the line after it (the first header field's) starts.
    fields_start: usize,
    /// Its version.
    version: Version,
}

/// Where some bytes lie in the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    /// The first.
    start: usize,
    /// The end.
    end: usize,
}

impl Span {
    /// Where `part`, a slice of `outer`, lies, `outer` starting at `at` in the buffer.
    fn of(outer: &[u8], at: usize, part: &[u8]) -> Span {
        let start = at + (part.as_ptr().addr() - outer.as_ptr().addr());
        Span {
            start,
            end: start + part.len(),
        }
    }

    /// Its bytes in `buf`.
    fn bytes(self, buf: &[u8]) -> &[u8] {
        &buf[self.start..self.end]
    }
}

impl ParseProgress {
    /// Bytes at the front of the buffer already searched for line ends: not searched
    /// again by the next call.
    pub fn searched(&self) -> usize {
        self.searched
    }

    /// The method of the request at the front of `buf` (the buffer this progress was
    /// made on), once known: its request line's once judged valid, before that the
    /// method token that begins its request line if a space follows it, however the
    /// rest is unfinished or bad. So a refusal of the request line (400, 414, 505) or a
    /// timeout of an unfinished request can leave out the content of an answer to HEAD
    /// (RFC 9110 9.3.2). `None` while the request line has no such token.
    pub fn method<'b>(&self, buf: &'b [u8]) -> Option<Method<'b>> {
        if let Some(request_line) = self.request_line {
            return Some(method(request_line.method.bytes(buf)));
        }
        // Before the request line is judged, `judged` is where it starts.
        let line = buf.get(self.judged..)?;
        let token_len = line.iter().position(|&b| !is_token(b))?;
        (token_len > 0 && line[token_len] == b' ').then(|| method(&line[..token_len]))
    }

    /// Judges the head's lines completed since the last call, each as soon as it is
    /// complete (so a bad request line is refused before its fields arrive): the
    /// request line and the head once its blank line came, `None` if it has not yet, or
    /// the error status.
    fn judge_new_lines(
        &mut self,
        buf: &[u8],
        limits: &Limits,
    ) -> Result<Option<(JudgedRequestLine, WholeHead)>, Status> {
        let bounded = &buf[..buf.len().min(limits.head)];
        loop {
            let start = self.judged;
            let from = self.searched;
            let found = bounded[from..].iter().position(|&b| b == b'\n');
            #[cfg(test)]
            crate::tests::count_searched(found.map_or(bounded.len() - from, |at| at + 1));
            let Some(newline) = found.map(|at| from + at) else {
                self.searched = bounded.len();
                return self
                    .judge_unfinished_line(buf, start, limits)
                    .map(|()| None);
            };
            let line = &bounded[start..newline];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let next = newline + 1;
            (self.judged, self.searched) = (next, next);
            match self.request_line {
                // RFC 7230 3.5: a server should ignore blank lines before the request line.
                None if line.is_empty() => {}
                None => {
                    let judged = if line.len() > limits.request_line {
                        Err(Status::UriTooLong)
                    } else {
                        parse_request_line(line, start, next)
                    };
                    match judged {
                        Ok(request_line) => self.request_line = Some(request_line),
                        Err(status) => {
                            // Back at the refused line's start, for its method (`method`).
                            self.judged = start;
                            return Err(status);
                        }
                    }
                }
                Some(request_line) if line.is_empty() => {
                    if request_line.version == Version::Http11 && self.host.is_none() {
                        return Err(Status::BadRequest);
                    }
                    if let Some(codings) = self.transfer_codings {
                        // RFC 9112 6.1 and 6.3: codings beside a Content-Length, in an
                        // HTTP/1.0 request or not ending in chunked leave the body's
                        // length unknown (a way to smuggle a request past a proxy);
                        // codings before chunked are ones the server does not know.
                        if self.content_length.is_some()
                            || request_line.version == Version::Http10
                            || !codings.chunked_last
                        {
                            return Err(Status::BadRequest);
                        }
                        if codings.listed > 1 {
                            return Err(Status::NotImplemented);
                        }
                    }
                    let whole_head = WholeHead {
                        fields_end: start,
                        len: next,
                    };
                    return Ok(Some((request_line, whole_head)));
                }
                Some(_) => self.judge_field(line, start)?,
            }
        }
    }

    /// Judges the unfinished line at `start`, the rest of `buf`: whether it has already
    /// broken a bound. Only its bytes within the head's bound are the request line's:
    /// the rest of the buffer may be anything (a 431 when the head is past its bound).
    fn judge_unfinished_line(
        &self,
        buf: &[u8],
        start: usize,
        limits: &Limits,
    ) -> Result<(), Status> {
        if self.request_line.is_none() {
            let partial = buf.len().min(limits.head) - start;
            // One more byte than the bound may still be the CR of a line of bound length.
            if partial > limits.request_line.saturating_add(1) {
                return Err(Status::UriTooLong);
            }
        }
        if buf.len() >= limits.head {
            Err(Status::HeaderFieldsTooLarge)
        } else {
            Ok(())
        }
    }

    /// Judges one header field line, starting at `start` in the buffer, noting what the
    /// request needs of it.
    fn judge_field(&mut self, line: &[u8], start: usize) -> Result<(), Status> {
        let (name, value) = parse_field(line)?;
        if name.eq_ignore_ascii_case(b"host") {
            // RFC 9112 3.2: more than one Host is a bad request, and so is one holding a
            // byte no host or port has (the bytes are checked, not their form).
            if self.host.is_some() || !value.iter().all(|&b| is_host_byte(b)) {
                return Err(Status::BadRequest);
            }
            self.host = Some(Span::of(line, start, value));
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let length = parse_content_length(value)?;
            if self.content_length.is_some_and(|earlier| earlier != length) {
                return Err(Status::BadRequest);
            }
            self.content_length = Some(length);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Judged once the head is whole, when all the fields' codings are known.
            let codings = self.transfer_codings.get_or_insert_default();
            for coding in value.split(|&b| b == b',').map(trim_whitespace) {
                // A coding's name, without its parameters.
                let name = coding
                    .split(|&b| b == b';')
                    .next()
                    .map_or(coding, trim_whitespace);
                if !name.is_empty() {
                    codings.listed += 1;
                    // RFC 9112 7 defines `chunked` without parameters: `chunked;x=1`
                    // is no coding the server knows, and a proxy before it may not
                    // take it as chunked either (a way to smuggle a request).
                    codings.chunked_last = coding.eq_ignore_ascii_case(b"chunked");
                }
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            // RFC 9110 10.1.1: 100-continue is the only expectation; another may be
            // answered 417 (and the connection closes, as for any refused head).
            for expectation in value.split(|&b| b == b',').map(trim_whitespace) {
                if expectation.eq_ignore_ascii_case(b"100-continue") {
                    self.continue_asked = true;
                } else if !expectation.is_empty() {
                    return Err(Status::ExpectationFailed);
                }
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in value.split(|&b| b == b',').map(trim_whitespace) {
                self.close_asked |= option.eq_ignore_ascii_case(b"close");
                self.keep_alive_asked |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        Ok(())
    }

    /// Decodes the chunked body after a head of `head_len` bytes as far as `buf` holds
    /// it, resuming where the last call got: where it ends once whole, `None` before,
    /// or the error status. All of its coding must lie within [`Limits::body`] bytes.
    fn decode_chunked(
        &mut self,
        buf: &[u8],
        head_len: usize,
        limits: &Limits,
    ) -> Result<Option<usize>, Status> {
        let bound = head_len.saturating_add(limits.body);
        let bounded = &buf[..buf.len().min(bound)];
        let mut body = self.chunked_body.unwrap_or(ChunkedBody {
            at: head_len,
            next: ChunkPart::SizeLine,
            data_len: 0,
        });
        let decoded = loop {
            if let ChunkPart::Data(len) = body.next {
                let end = body.at.checked_add(len).and_then(|end| end.checked_add(2));
                let Some(end) = end.filter(|&end| end <= bound) else {
                    break Err(Status::PayloadTooLarge);
                };
                if buf.len() < end {
                    break Ok(None);
                }
                if &buf[end - 2..end] != b"\r\n" {
                    break Err(Status::BadRequest);
                }
                body = ChunkedBody {
                    at: end,
                    next: ChunkPart::SizeLine,
                    data_len: body.data_len + len,
                };
                continue;
            }
            let from = self.searched.max(body.at);
            let found = bounded[from..].iter().position(|&b| b == b'\n');
            #[cfg(test)]
            crate::tests::count_searched(found.map_or(bounded.len() - from, |at| at + 1));
            let Some(newline) = found.map(|at| from + at) else {
                self.searched = bounded.len();
                break if buf.len() >= bound {
                    Err(Status::PayloadTooLarge)
                } else {
                    Ok(None)
                };
            };
            self.searched = newline + 1;
            // The coding's lines end in CR LF: a bare LF, which another reader of the
            // stream might not take as a line end, is refused.
            let Some(line) = bounded[body.at..newline].strip_suffix(b"\r") else {
                break Err(Status::BadRequest);
            };
            body.at = newline + 1;
            match body.next {
                ChunkPart::SizeLine => match chunk_size(line) {
                    Ok(0) => body.next = ChunkPart::Trailer,
                    Ok(size) => body.next = ChunkPart::Data(size),
                    Err(status) => break Err(status),
                },
                ChunkPart::Trailer if line.is_empty() => break Ok(Some(body.at)),
                // A trailer field, checked and discarded (RFC 9112 7.1.2).
                _ => {
                    if let Err(status) = parse_field(line) {
                        break Err(status);
                    }
                }
            }
        };
        self.chunked_body = Some(body);
        decoded
    }
}

/// The size a chunk-size line (RFC 9112 7.1) gives: hexadecimal digits, then any chunk
/// extensions, each after a `;`, ignored (as RFC 9112 7.1.1 asks of a recipient that
/// does not know them) but for their bytes, which must be visible or blanks. A size
/// past any buffer is too large.
fn chunk_size(line: &[u8]) -> Result<usize, Status> {
    let digits = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    let extensions = &line[digits..];
    let after_blanks = extensions
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .map_or(&b""[..], |start| &extensions[start..]);
    let extensions_valid = extensions.is_empty()
        || (after_blanks.starts_with(b";")
            && extensions
                .iter()
                .all(|&b| b == b'\t' || (b >= b' ' && b != 0x7f)));
    if digits == 0 || !extensions_valid {
        return Err(Status::BadRequest);
    }
    line[..digits]
        .iter()
        .try_fold(0usize, |size, &digit| {
            let value = char::from(digit).to_digit(16)?;
            size.checked_mul(16)?.checked_add(value as usize)
        })
        .ok_or(Status::PayloadTooLarge)
}

/// [`parse`] for a request that may arrive in many reads: `progress` says how far the
/// calls before got with the request at the front of `buf`, so that each byte of a head
/// arriving a byte at a time is searched and judged once, not again on every read
/// (quadratic in the head's length). Call again with the same front and the bytes
/// appended since.
pub fn parse_resumed<'b>(
    buf: &'b [u8],
    limits: &Limits,
    progress: &mut ParseProgress,
) -> Parsed<'b> {
    let mut head = core::mem::take(progress);
    if head.searched > buf.len() {
        // Not the buffer the progress was made on: start over.
        head = ParseProgress::default();
    }
    // Resumed after a head found whole, whose request line was judged before it.
    let (request_line, whole_head) = match (head.request_line, head.whole_head) {
        (Some(request_line), Some(whole_head)) => (request_line, whole_head),
        _ => match head.judge_new_lines(buf, limits) {
            Ok(Some(judged)) => judged,
            Ok(None) => {
                *progress = head;
                return Parsed::Incomplete;
            }
            Err(status) => return refusal(buf, &head, status),
        },
    };
    let WholeHead {
        fields_end,
        len: head_len,
    } = whole_head;
    let version = request_line.version;
    let body_end = if head.transfer_codings.is_some() {
        head.decode_chunked(buf, head_len, limits)
    } else {
        // A body no buffer can follow the head with is too large whatever the bound.
        let content_length = head.content_length.unwrap_or(0);
        match head_len.checked_add(content_length) {
            Some(end) if content_length <= limits.body => Ok((buf.len() >= end).then_some(end)),
            _ => Err(Status::PayloadTooLarge),
        }
    };
    let expects_continue = head.continue_asked && version == Version::Http11;
    let consumed = match body_end {
        Ok(Some(consumed)) => consumed,
        Ok(None) => {
            head.whole_head = Some(whole_head);
            *progress = head;
            return if expects_continue {
                Parsed::ContinueExpected
            } else {
                Parsed::Incomplete
            };
        }
        Err(status) => return refusal(buf, &head, status),
    };
    let content_length = match head.chunked_body {
        Some(chunked) => chunked.data_len,
        None => head.content_length.unwrap_or(0),
    };
    let request = Request {
        method: method(request_line.method.bytes(buf)),
        target: request_line.target.bytes(buf),
        path: request_line.path.map_or(b"/", |path| path.bytes(buf)),
        version,
        host: head.host.map(|host| host.bytes(buf)),
        keep_alive: !head.close_asked && (version == Version::Http11 || head.keep_alive_asked),
        content_length,
        expects_continue,
        fields: &buf[request_line.fields_start..fields_end],
    };
    Parsed::Request { request, consumed }
}

/// The refusal `status`, with the request's method if `head` read it.
fn refusal<'b>(buf: &'b [u8], head: &ParseProgress, status: Status) -> Parsed<'b> {
    Parsed::Invalid {
        status,
        method: head.method(buf),
    }
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

/// Splits and checks a request line that starts at `start` in the buffer, the next line
/// at `fields_start`: where its parts lie.
fn parse_request_line(
    line: &[u8],
    start: usize,
    fields_start: usize,
) -> Result<JudgedRequestLine, Status> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Status::BadRequest);
    };
    if method.is_empty() || !method.iter().all(|&b| is_token(b)) {
        return Err(Status::BadRequest);
    }
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
    let target_span = Span::of(line, start, target);
    // RFC 9112 3.2.4: the asterisk form, for a server-wide OPTIONS only; RFC 9112 3.2.3:
    // the authority form, for CONNECT only, which takes no other.
    let path = match target {
        b"*" if method == b"OPTIONS" => Some(target),
        _ if method == b"CONNECT" => Some(authority_form_path(target)?),
        _ => target_path(target)?,
    };
    Ok(JudgedRequestLine {
        method: Span::of(line, start, method),
        target: target_span,
        path: path.map(|path| Span::of(target, target_span.start, path)),
        fields_start,
        version,
    })
}

/// The method a valid method token names.
fn method(token: &[u8]) -> Method<'_> {
    match token {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        other => Method::Other(other),
    }
}

/// The path of a request target (origin or absolute form), without query or fragment;
/// `None` for an absolute form without one, whose path is `/` (RFC 7230 5.3.2).
fn target_path(target: &[u8]) -> Result<Option<&[u8]>, Status> {
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
        // the query or fragment begins no path.
        let authority_end = after_scheme
            .iter()
            .position(|&b| b == b'/' || b == b'?' || b == b'#')
            .unwrap_or(after_scheme.len());
        let authority = &after_scheme[..authority_end];
        // RFC 9110 4.2.1: an http(s) URI with an empty host is invalid and must be
        // refused; 4.2.4: userinfo (`user@`) should be treated as an error, and `@` is
        // no host byte. The port, after the last colon outside an IPv6 literal's
        // brackets, may be empty; its form is not checked further, as for `Host`.
        let host = match authority.iter().rposition(|&b| b == b':') {
            Some(colon) if !authority[colon..].contains(&b']') => &authority[..colon],
            _ => authority,
        };
        if host.is_empty() || !authority.iter().all(|&b| is_host_byte(b)) {
            return Err(Status::BadRequest);
        }
        match after_scheme[authority_end..] {
            [b'/', ..] => &after_scheme[authority_end..],
            _ => return Ok(None),
        }
    };
    let end = path
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(path.len());
    Ok(Some(&path[..end]))
}

/// The path of CONNECT's target, which must be in the authority form (RFC 9112 3.2.3):
/// a host, a colon and a port of decimal digits, the host's bytes ones a host has (so
/// no `/`; its form is not checked further). Empty: the form names no path.
fn authority_form_path(target: &[u8]) -> Result<&[u8], Status> {
    let colon = target
        .iter()
        .rposition(|&b| b == b':')
        .ok_or(Status::BadRequest)?;
    let (host, port) = (&target[..colon], &target[colon + 1..]);
    let valid = !host.is_empty()
        && host.iter().all(|&b| is_host_byte(b))
        && !port.is_empty()
        && port.iter().all(u8::is_ascii_digit);
    if valid {
        Ok(&target[target.len()..])
    } else {
        Err(Status::BadRequest)
    }
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
