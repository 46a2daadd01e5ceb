//! Answers: statuses, response heads, bodies that point into the file cache, and the
//! [`Site`] that turns buffered requests into them.

use crate::date::DateField;
use crate::files::{FileTable, StaticFile};
use crate::parse::{
    Limits, Method, ParseProgress, Parsed, Request, Version, parse_resumed, trim_whitespace,
};
use alloc::borrow::Cow;
use alloc::sync::Arc;
use alloc::vec::Vec;
use rexo_tcp::{Blob, Piece};

/// The methods other than GET and HEAD that the engine knows (RFC 9110 9.3, RFC 5789's
/// PATCH) and answers `405 Method Not Allowed`; any other method is not implemented
/// (`501`, RFC 9110 9.1).
const KNOWN_METHODS: [&[u8]; 7] = [
    b"POST", b"PUT", b"DELETE", b"PATCH", b"CONNECT", b"TRACE", b"OPTIONS",
];

/// The `Cache-Control` of a dynamic page's answers: each is rendered fresh, and no
/// cache may keep it.
const DYNAMIC_CACHE_CONTROL: &[u8] = b"no-store";

/// The blank line that ends a head.
const BLANK_LINE: &[u8] = b"\r\n";

/// The statuses the engine answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// 100: the interim answer to `Expect: 100-continue`, before the body is read.
    Continue,
    /// 200: the whole body.
    Ok,
    /// 206: one range of the body.
    PartialContent,
    /// 304: the client's copy (`If-None-Match`) is current.
    NotModified,
    /// 400: malformed request; the connection closes.
    BadRequest,
    /// 404: no such file or page.
    NotFound,
    /// 405: a method the engine knows but serves no resource with (POST, PUT, DELETE,
    /// PATCH, CONNECT to a `host:port`, TRACE, OPTIONS but `OPTIONS *`), with
    /// `Allow: GET, HEAD`.
    MethodNotAllowed,
    /// 408: a request that did not come whole in time; the connection closes.
    RequestTimeout,
    /// 412: an `If-Match` that holds neither `*` nor the representation's entity tag.
    PreconditionFailed,
    /// 413: a request body above [`Limits::body`]; the connection closes.
    PayloadTooLarge,
    /// 414: a request line above [`Limits::request_line`]; the connection closes.
    UriTooLong,
    /// 416: a range wholly past the end of the body.
    RangeNotSatisfiable,
    /// 417: an `Expect` field with an expectation other than `100-continue`; the
    /// connection closes.
    ExpectationFailed,
    /// 431: a head above [`Limits::head`]; the connection closes.
    HeaderFieldsTooLarge,
    /// 500: the app's page hook failed.
    InternalServerError,
    /// 501: a method the engine does not know (RFC 9110 9.1), the connection kept; or a
    /// request body with a transfer coding before `chunked`, which the engine does not
    /// know, and the connection closes.
    NotImplemented,
    /// 505: an HTTP major version other than 1; the connection closes.
    VersionNotSupported,
}

impl Status {
    /// The status code.
    pub fn code(self) -> u16 {
        match self {
            Status::Continue => 100,
            Status::Ok => 200,
            Status::PartialContent => 206,
            Status::NotModified => 304,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::PreconditionFailed => 412,
            Status::PayloadTooLarge => 413,
            Status::UriTooLong => 414,
            Status::RangeNotSatisfiable => 416,
            Status::ExpectationFailed => 417,
            Status::HeaderFieldsTooLarge => 431,
            Status::InternalServerError => 500,
            Status::NotImplemented => 501,
            Status::VersionNotSupported => 505,
        }
    }

    /// The reason phrase.
    pub fn reason(self) -> &'static str {
        match self {
            Status::Continue => "Continue",
            Status::Ok => "OK",
            Status::PartialContent => "Partial Content",
            Status::NotModified => "Not Modified",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::RequestTimeout => "Request Timeout",
            Status::PreconditionFailed => "Precondition Failed",
            Status::PayloadTooLarge => "Payload Too Large",
            Status::UriTooLong => "URI Too Long",
            Status::RangeNotSatisfiable => "Range Not Satisfiable",
            Status::ExpectationFailed => "Expectation Failed",
            Status::HeaderFieldsTooLarge => "Request Header Fields Too Large",
            Status::InternalServerError => "Internal Server Error",
            Status::NotImplemented => "Not Implemented",
            Status::VersionNotSupported => "HTTP Version Not Supported",
        }
    }
}

/// What happens to the connection after an answer, and the `Connection` field saying so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persistence {
    /// Stays open; HTTP/1.1 needs no field for it.
    KeepAlive = 0,
    /// Stays open for an HTTP/1.0 client, which must be told: `Connection: keep-alive`.
    KeepAliveHttp10 = 1,
    /// Closes after the answer: `Connection: close`.
    Close = 2,
}

impl Persistence {
    /// All of them, in the order of their values (the index of prebuilt heads).
    pub const ALL: [Persistence; 3] = [
        Persistence::KeepAlive,
        Persistence::KeepAliveHttp10,
        Persistence::Close,
    ];

    /// What a request asked for.
    pub fn of(request: &Request<'_>) -> Persistence {
        match (request.keep_alive, request.version) {
            (false, _) => Persistence::Close,
            (true, Version::Http10) => Persistence::KeepAliveHttp10,
            (true, Version::Http11) => Persistence::KeepAlive,
        }
    }
}

/// Writes a response head: status line, fields, the `Connection` field, blank line.
pub(crate) struct HeadBuilder {
    bytes: Vec<u8>,
}

impl HeadBuilder {
    /// Starts a head with the status line and the `Server` field.
    pub(crate) fn new(status: Status) -> HeadBuilder {
        let mut bytes = Vec::with_capacity(192);
        bytes.extend_from_slice(b"HTTP/1.1 ");
        push_decimal(&mut bytes, u64::from(status.code()));
        bytes.push(b' ');
        bytes.extend_from_slice(status.reason().as_bytes());
        bytes.extend_from_slice(b"\r\nServer: Rexo\r\n");
        HeadBuilder { bytes }
    }

    /// Adds a field.
    pub(crate) fn field(&mut self, name: &[u8], value: &[u8]) {
        self.bytes.extend_from_slice(name);
        self.bytes.extend_from_slice(b": ");
        self.bytes.extend_from_slice(value);
        self.bytes.extend_from_slice(b"\r\n");
    }

    /// Adds a field whose value is a decimal number.
    pub(crate) fn number(&mut self, name: &[u8], value: u64) {
        let mut digits = Vec::with_capacity(20);
        push_decimal(&mut digits, value);
        self.field(name, &digits);
    }

    /// Ends the head with the `Connection` field `persistence` needs.
    pub(crate) fn finish(mut self, persistence: Persistence) -> Vec<u8> {
        match persistence {
            Persistence::KeepAlive => {}
            Persistence::KeepAliveHttp10 => self.field(b"Connection", b"keep-alive"),
            Persistence::Close => self.field(b"Connection", b"close"),
        }
        self.bytes.extend_from_slice(b"\r\n");
        self.bytes
    }
}

/// Appends `value` in decimal.
fn push_decimal(out: &mut Vec<u8>, value: u64) {
    let mut digits = [0u8; 20];
    let mut rest = value;
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// The body of an answer.
#[derive(Clone, Debug)]
pub enum Body {
    /// No body (HEAD, 304).
    Empty,
    /// `len` bytes of a file from `offset`: the TCP layer sends (and resends) them from
    /// the file itself and takes their checksum from
    /// [`StaticFile::segment_checksum`]; holding the `Arc` keeps the bytes alive until
    /// acknowledged, even if the file leaves the table.
    File {
        /// The file.
        file: Arc<StaticFile>,
        /// Where the body starts in the file.
        offset: usize,
        /// The body's length.
        len: usize,
    },
    /// Bytes made for this answer (dynamic pages, error text).
    Owned(Vec<u8>),
}

impl Body {
    /// The body's bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Body::Empty => &[],
            Body::File { file, offset, len } => &file.content()[*offset..*offset + *len],
            Body::Owned(bytes) => bytes,
        }
    }
}

/// The head of an answer.
#[derive(Clone, Debug)]
enum Head {
    /// A file's prebuilt `200 OK` head.
    Prebuilt(Arc<StaticFile>),
    /// A head built for this answer.
    Built(Vec<u8>),
}

/// An answer: send [`head`](Self::head) then [`body`](Self::body), then close the
/// connection if [`closes`](Self::closes).
#[derive(Clone, Debug)]
pub struct Response {
    status: Status,
    persistence: Persistence,
    head: Head,
    /// The `Date` field line and blank line that end the head, if [`dated`](Self::dated).
    date: Option<Arc<Blob>>,
    body: Body,
}

impl Response {
    /// The status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// What happens to the connection after it.
    pub fn persistence(&self) -> Persistence {
        self.persistence
    }

    /// Whether the connection closes after it; no later request is read.
    pub fn closes(&self) -> bool {
        self.persistence == Persistence::Close
    }

    /// The head's bytes, blank line included, without the `Date` field
    /// ([`head_parts`](Self::head_parts) has the head as sent).
    pub fn head(&self) -> &[u8] {
        match &self.head {
            Head::Prebuilt(file) => file.ok_head(self.persistence),
            Head::Built(bytes) => bytes,
        }
    }

    /// The body.
    pub fn body(&self) -> &Body {
        &self.body
    }

    /// The answer with the `Date` field `date` (RFC 9110, 6.6.1), except an interim
    /// (1xx) one, which goes without: the field line is shared, not copied, and goes
    /// between the head's fields and its blank line ([`head_parts`](Self::head_parts)).
    pub fn dated(mut self, date: &DateField) -> Response {
        if self.status.code() >= 200 {
            self.date = Some(date.line().clone());
        }
        self
    }

    /// The head as sent, in two parts to send one after the other: its fields, and the
    /// `Date` field line with the blank line; or the whole [`head`](Self::head) and
    /// nothing when the answer is not [`dated`](Self::dated).
    pub fn head_parts(&self) -> [&[u8]; 2] {
        let head = self.head();
        match &self.date {
            Some(date) => [&head[..head.len() - BLANK_LINE.len()], date.bytes()],
            None => [head, &[]],
        }
    }

    /// The head's length as sent ([`head_parts`](Self::head_parts) together).
    pub fn head_len(&self) -> usize {
        self.head_parts().iter().map(|part| part.len()).sum()
    }

    /// The answer's length as sent: [`head_len`](Self::head_len) and the body's.
    pub fn sent_len(&self) -> usize {
        self.head_len() + self.body.bytes().len()
    }

    /// The answer as the pieces a TCP connection sends, head then body, none empty: a
    /// prebuilt head and a file body as ranges of the file's blobs (shared, not
    /// copied, their checksums precomputed), built heads and bodies as owned bytes. A
    /// [`dated`](Self::dated) answer's `Date` line is a piece of its own, shared, after
    /// a prebuilt head's fields; a built head takes it in.
    pub fn into_pieces(self) -> Vec<Piece> {
        // The blank line ends the head after the `Date` line instead.
        let fields_end = |len: usize| match self.date {
            Some(_) => len - BLANK_LINE.len(),
            None => len,
        };
        let (head, date) = match self.head {
            Head::Prebuilt(file) => {
                let blob = file.ok_head_blob(self.persistence).clone();
                let end = fields_end(blob.bytes().len());
                let date = self.date.and_then(|date| {
                    let len = date.bytes().len();
                    Piece::shared(date, 0, len)
                });
                (Piece::shared(blob, 0, end), date)
            }
            Head::Built(mut bytes) => {
                bytes.truncate(fields_end(bytes.len()));
                if let Some(date) = &self.date {
                    bytes.extend_from_slice(date.bytes());
                }
                (Some(Piece::owned(bytes)), None)
            }
        };
        let body = match self.body {
            Body::Empty => None,
            Body::File { file, offset, len } => {
                Piece::shared(file.blob().clone(), offset, offset + len)
            }
            Body::Owned(bytes) => Some(Piece::owned(bytes)),
        };
        head.into_iter()
            .chain(date)
            .chain(body)
            .filter(|piece| !piece.is_empty())
            .collect()
    }

    /// A built answer.
    fn built(status: Status, persistence: Persistence, head: HeadBuilder, body: Body) -> Self {
        Response {
            status,
            persistence,
            head: Head::Built(head.finish(persistence)),
            date: None,
            body,
        }
    }

    /// The interim `100 Continue` ([`Step::Continue`]): a status line alone, the
    /// connection staying open for the body and the final answer.
    pub fn interim_continue() -> Self {
        Response {
            status: Status::Continue,
            persistence: Persistence::KeepAlive,
            head: Head::Built(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec()),
            date: None,
            body: Body::Empty,
        }
    }

    /// `408 Request Timeout`, closing: the answer to a request that did not come whole
    /// within the server's deadline; its text left out (`head_only`) when the request
    /// is a HEAD one ([`ParseProgress::method`]), RFC 9110 9.3.2.
    pub fn request_timeout(head_only: bool) -> Self {
        Response::error(Status::RequestTimeout, Persistence::Close, head_only, &[])
    }

    /// `200 OK` to `OPTIONS *` (RFC 9110 9.3.7): the methods the server serves
    /// (`Allow: GET, HEAD`), no content.
    fn server_options(persistence: Persistence) -> Self {
        let mut head = HeadBuilder::new(Status::Ok);
        head.field(b"Allow", b"GET, HEAD");
        head.number(b"Content-Length", 0);
        Response::built(Status::Ok, persistence, head, Body::Empty)
    }

    /// An answer with a short text body naming the status (none for HEAD), plus `extra`
    /// fields.
    fn error(
        status: Status,
        persistence: Persistence,
        head_only: bool,
        extra: &[(&[u8], &[u8])],
    ) -> Self {
        let mut text = Vec::with_capacity(48);
        push_decimal(&mut text, u64::from(status.code()));
        text.push(b' ');
        text.extend_from_slice(status.reason().as_bytes());
        text.push(b'\n');
        let mut head = HeadBuilder::new(status);
        head.field(b"Content-Type", b"text/plain; charset=utf-8");
        head.number(b"Content-Length", text.len() as u64);
        for (name, value) in extra {
            head.field(name, value);
        }
        let body = if head_only {
            Body::Empty
        } else {
            Body::Owned(text)
        };
        Response::built(status, persistence, head, body)
    }
}

/// What the app's page hook says about a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Page {
    /// Not a dynamic page: serve the file table's.
    Unhandled,
    /// A fresh body, served `200` with its own head and `Cache-Control: no-store`
    /// (which a `304` for it, to `If-None-Match: *`, carries too).
    Ready {
        /// Its `Content-Type`.
        content_type: &'static str,
        /// Its bytes.
        body: Vec<u8>,
    },
    /// The page's head alone, its body not rendered: the answer to a HEAD request
    /// (the hook's `head_only`), without `Content-Length`, which only the rendered body
    /// would tell (RFC 9110, 8.6). To a GET it is a hook's mistake, answered `500`.
    Unrendered {
        /// Its `Content-Type`.
        content_type: &'static str,
    },
    /// The page exists but could not be made: `500`.
    Failed,
}

/// What [`Site::serve`] made of the buffered bytes.
#[derive(Clone, Debug)]
pub enum Step {
    /// No complete request yet: read more (the buffer never needs to exceed
    /// [`Limits::buffer_bound`]).
    NeedMore,
    /// As [`NeedMore`](Step::NeedMore), but the request's head asks
    /// `Expect: 100-continue` and its body will be read: send
    /// [`Response::interim_continue`] first, once for the request
    /// ([`Parsed::ContinueExpected`]).
    Continue,
    /// Send `response`; drop the first `consumed` bytes and serve again, unless the
    /// response closes the connection.
    Answer {
        /// The answer.
        response: Response,
        /// Bytes of the buffer the request occupied (all of it after a refusal that
        /// closes).
        consumed: usize,
    },
}

/// A web site: the file table and the request bounds.
#[derive(Debug, Default)]
pub struct Site {
    /// The files served.
    pub files: FileTable,
    /// The bounds on requests.
    pub limits: Limits,
}

impl Site {
    /// A site serving `files` within `limits`.
    pub fn new(files: FileTable, limits: Limits) -> Site {
        Site { files, limits }
    }

    /// Answers the first request in `buf`. `pages` is asked first about every path
    /// (percent-decoded, its `.` and `..` segments resolved, without query), and
    /// whether the answer is a head alone (HEAD), and may supply a dynamic page, like
    /// the status page at `/` ([`Page::Unrendered`] for a head alone).
    pub fn serve(&self, buf: &[u8], pages: &mut dyn FnMut(&[u8], bool) -> Page) -> Step {
        self.serve_resumed(buf, &mut ParseProgress::default(), pages)
    }

    /// [`serve`](Self::serve) for a connection that reads a request in many pieces:
    /// `progress` is how far the calls before got with the request at the front of
    /// `buf` (see [`parse_resumed`]); keep it between calls, with the same front and the
    /// bytes appended since.
    pub fn serve_resumed(
        &self,
        buf: &[u8],
        progress: &mut ParseProgress,
        pages: &mut dyn FnMut(&[u8], bool) -> Page,
    ) -> Step {
        match parse_resumed(buf, &self.limits, progress) {
            Parsed::Incomplete => Step::NeedMore,
            Parsed::ContinueExpected => Step::Continue,
            Parsed::Request { request, consumed } => Step::Answer {
                response: self.answer(&request, pages),
                consumed,
            },
            Parsed::Invalid { status, method } => Step::Answer {
                response: Response::error(
                    status,
                    Persistence::Close,
                    method == Some(Method::Head),
                    &[],
                ),
                consumed: buf.len(),
            },
        }
    }

    /// Answers a parsed request (see [`serve`](Self::serve) for `pages`).
    pub fn answer(
        &self,
        request: &Request<'_>,
        pages: &mut dyn FnMut(&[u8], bool) -> Page,
    ) -> Response {
        let persistence = Persistence::of(request);
        let head_only = match request.method {
            Method::Get => false,
            Method::Head => true,
            Method::Other(b"OPTIONS") if request.target == b"*" => {
                return Response::server_options(persistence);
            }
            Method::Other(method) if KNOWN_METHODS.contains(&method) => {
                let allow: [(&[u8], &[u8]); 1] = [(b"Allow", b"GET, HEAD")];
                return Response::error(Status::MethodNotAllowed, persistence, false, &allow);
            }
            Method::Other(_) => {
                return Response::error(Status::NotImplemented, persistence, false, &[]);
            }
        };
        let Some(path) = percent_decode(request.path).and_then(remove_dot_segments) else {
            return Response::error(Status::BadRequest, Persistence::Close, head_only, &[]);
        };
        match pages(&path, head_only) {
            Page::Ready { content_type, body } => {
                return dynamic(request, persistence, head_only, content_type, Some(body));
            }
            Page::Unrendered { content_type } if head_only => {
                return dynamic(request, persistence, head_only, content_type, None);
            }
            Page::Failed | Page::Unrendered { .. } => {
                return Response::error(Status::InternalServerError, persistence, head_only, &[]);
            }
            Page::Unhandled => {}
        }
        let file = self.files.get(&path).or_else(|| {
            // A directory's index, as web servers have always served it.
            path.ends_with(b"/").then(|| {
                let mut index = path.to_vec();
                index.extend_from_slice(b"index.html");
                self.files.get(&index)
            })?
        });
        let Some(file) = file else {
            return Response::error(Status::NotFound, persistence, head_only, &[]);
        };
        serve_file(request, persistence, head_only, file)
    }
}

/// The answer for a file: 412, 304, 206, 416 or 200, in the order RFC 9110 13.2.2 asks
/// (`If-Unmodified-Since` and `If-Modified-Since` are ignored: files carry no
/// `Last-Modified`).
fn serve_file(
    request: &Request<'_>,
    persistence: Persistence,
    head_only: bool,
    file: &Arc<StaticFile>,
) -> Response {
    if if_match_fails(request, Some(file.etag())) {
        return Response::error(Status::PreconditionFailed, persistence, head_only, &[]);
    }
    if request
        .values(b"if-none-match")
        .any(|list| tag_list_holds(list, Some(file.etag()), Comparison::Weak))
    {
        let mut head = HeadBuilder::new(Status::NotModified);
        head.field(b"ETag", file.etag());
        return Response::built(Status::NotModified, persistence, head, Body::Empty);
    }
    let length = file.content().len();
    // RFC 7233 3.1: Range applies to GET only; If-Range must match strongly.
    let range = match (request.method, single_value(request, b"range")) {
        (Method::Get, Some(range)) if if_range_holds(request, file.etag()) => {
            evaluate_range(range, length)
        }
        _ => RangeAnswer::Whole,
    };
    match range {
        RangeAnswer::Whole => Response {
            status: Status::Ok,
            persistence,
            head: Head::Prebuilt(file.clone()),
            date: None,
            body: if head_only {
                Body::Empty
            } else {
                Body::File {
                    file: file.clone(),
                    offset: 0,
                    len: length,
                }
            },
        },
        RangeAnswer::Part { first, last } => {
            let mut content_range = Vec::with_capacity(64);
            content_range.extend_from_slice(b"bytes ");
            push_decimal(&mut content_range, first as u64);
            content_range.push(b'-');
            push_decimal(&mut content_range, last as u64);
            content_range.push(b'/');
            push_decimal(&mut content_range, length as u64);
            let mut head = HeadBuilder::new(Status::PartialContent);
            head.field(b"Content-Type", file.content_type().as_bytes());
            head.number(b"Content-Length", (last - first + 1) as u64);
            head.field(b"Content-Range", &content_range);
            head.field(b"ETag", file.etag());
            head.field(b"Accept-Ranges", b"bytes");
            let body = Body::File {
                file: file.clone(),
                offset: first,
                len: last - first + 1,
            };
            Response::built(Status::PartialContent, persistence, head, body)
        }
        RangeAnswer::Unsatisfiable => {
            let mut content_range = b"bytes */".to_vec();
            push_decimal(&mut content_range, length as u64);
            let extra: [(&[u8], &[u8]); 1] = [(b"Content-Range", &content_range)];
            Response::error(Status::RangeNotSatisfiable, persistence, false, &extra)
        }
    }
}

/// The answer for a dynamic page (`body`: `None` when not rendered, for a head alone).
fn dynamic(
    request: &Request<'_>,
    persistence: Persistence,
    head_only: bool,
    content_type: &'static str,
    body: Option<Vec<u8>>,
) -> Response {
    // A dynamic page has no entity tag, but `*` still matches it (RFC 9110 13.1.1-2).
    if if_match_fails(request, None) {
        return Response::error(Status::PreconditionFailed, persistence, head_only, &[]);
    }
    if request
        .values(b"if-none-match")
        .any(|list| tag_list_holds(list, None, Comparison::Weak))
    {
        // RFC 9110 15.4.5: a 304 carries the fields the 200 would have among
        // Cache-Control, Content-Location, Date, ETag, Expires and Vary.
        let mut head = HeadBuilder::new(Status::NotModified);
        head.field(b"Cache-Control", DYNAMIC_CACHE_CONTROL);
        return Response::built(Status::NotModified, persistence, head, Body::Empty);
    }
    let mut head = HeadBuilder::new(Status::Ok);
    head.field(b"Content-Type", content_type.as_bytes());
    if let Some(body) = &body {
        head.number(b"Content-Length", body.len() as u64);
    }
    head.field(b"Cache-Control", DYNAMIC_CACHE_CONTROL);
    let body = match body {
        Some(body) if !head_only => Body::Owned(body),
        _ => Body::Empty,
    };
    Response::built(Status::Ok, persistence, head, body)
}

/// The value of a field that must appear once; `None` if absent or repeated (a repeated
/// `Range` is not one range, and is ignored like any malformed one).
fn single_value<'b>(request: &Request<'b>, name: &'static [u8]) -> Option<&'b [u8]> {
    let mut values = request.values(name);
    let value = values.next()?;
    values.next().is_none().then_some(value)
}

/// How two entity tags are compared (RFC 9110 8.8.3.2); both need equal opaque tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Comparison {
    /// Either may be weak (`W/`): `If-None-Match`.
    Weak,
    /// Neither may be weak: `If-Match`, which guards against any change of the bytes.
    Strong,
}

/// Whether the request carries `If-Match` and no value of it holds `etag` (`None`: a
/// representation without one) under strong comparison (RFC 9110 13.1.1): answer 412.
fn if_match_fails(request: &Request<'_>, etag: Option<&[u8]>) -> bool {
    let mut lists = request.values(b"if-match").peekable();
    lists.peek().is_some() && !lists.any(|list| tag_list_holds(list, etag, Comparison::Strong))
}

/// Whether an `If-Match` or `If-None-Match` list holds the entity tag `etag` (`None`: a
/// representation without one) under `comparison` (`*` holds any existing
/// representation). The engine's own tags are strong. A malformed list holds what it
/// holds up to where it breaks.
fn tag_list_holds(list: &[u8], etag: Option<&[u8]>, comparison: Comparison) -> bool {
    let mut rest = list;
    loop {
        rest = trim_whitespace(rest);
        while let Some(after) = rest.strip_prefix(b",") {
            rest = trim_whitespace(after);
        }
        if rest.is_empty() {
            return false;
        }
        if let Some(after) = rest.strip_prefix(b"*") {
            return trim_whitespace(after).first().is_none_or(|&b| b == b',');
        }
        let weak = rest.starts_with(b"W/");
        let opaque = if weak { &rest[2..] } else { rest };
        let Some(tag_len) = quoted_len(opaque) else {
            return false;
        };
        if etag == Some(&opaque[..tag_len]) && !(weak && comparison == Comparison::Strong) {
            return true;
        }
        rest = &opaque[tag_len..];
    }
}

/// The length of the quoted string at the start of `bytes`, quotes included.
fn quoted_len(bytes: &[u8]) -> Option<usize> {
    let after_quote = bytes.strip_prefix(b"\"")?;
    let closing = after_quote.iter().position(|&b| b == b'"')?;
    Some(closing + 2)
}

/// Whether the Range may be honoured: no `If-Range`, or one that is the file's strong
/// tag. A date never matches, since files carry no `Last-Modified`.
fn if_range_holds(request: &Request<'_>, etag: &[u8]) -> bool {
    let mut values = request.values(b"if-range");
    match (values.next(), values.next()) {
        (None, _) => true,
        (Some(value), None) => value == etag,
        (Some(_), Some(_)) => false,
    }
}

/// How to answer a `Range` field for a body of some length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RangeAnswer {
    /// Ignore it: the whole body, `200` (malformed, or several ranges).
    Whole,
    /// Bytes `first..=last`, `206`.
    Part { first: usize, last: usize },
    /// No byte of it exists, `416`.
    Unsatisfiable,
}

/// Judges a `Range` value (RFC 7233 2.1) against a body of `length` bytes. A single
/// range is served; several ranges get the whole body (allowed: a server may ignore
/// Range), which spares multipart bodies. A zero-length body answers a suffix range
/// with the whole (empty) body, since no `Content-Range` can describe an empty part,
/// and any other range with 416.
fn evaluate_range(value: &[u8], length: usize) -> RangeAnswer {
    let Some(unit_end) = value.iter().position(|&b| b == b'=') else {
        return RangeAnswer::Whole;
    };
    if !trim_whitespace(&value[..unit_end]).eq_ignore_ascii_case(b"bytes") {
        return RangeAnswer::Whole;
    }
    let spec = trim_whitespace(&value[unit_end + 1..]);
    if spec.contains(&b',') {
        return RangeAnswer::Whole;
    }
    let Some(dash) = spec.iter().position(|&b| b == b'-') else {
        return RangeAnswer::Whole;
    };
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    match (parse_position(first), parse_position(last)) {
        // `-n`: the last n bytes.
        (None, Some(suffix)) if first.is_empty() => {
            if suffix == 0 {
                RangeAnswer::Unsatisfiable
            } else if length == 0 {
                RangeAnswer::Whole
            } else {
                let first = length - suffix.min(length as u64) as usize;
                RangeAnswer::Part {
                    first,
                    last: length - 1,
                }
            }
        }
        // `a-` and `a-b`.
        (Some(first), last_position) if last.is_empty() || last_position.is_some() => {
            if last_position.is_some_and(|last| last < first) {
                return RangeAnswer::Whole;
            }
            if first >= length as u64 {
                return RangeAnswer::Unsatisfiable;
            }
            let last =
                last_position.map_or(length - 1, |last| last.min(length as u64 - 1) as usize);
            RangeAnswer::Part {
                first: first as usize,
                last,
            }
        }
        _ => RangeAnswer::Whole,
    }
}

/// A byte position: decimal digits, saturating (a position past any file is past this
/// one's end all the same).
fn parse_position(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |total, &digit| {
        total
            .saturating_mul(10)
            .saturating_add(u64::from(digit - b'0'))
    }))
}

/// The path with its `%XX` escapes decoded (borrowed when it has none); `None` if an
/// escape is malformed.
fn percent_decode(path: &[u8]) -> Option<Cow<'_, [u8]>> {
    if !path.contains(&b'%') {
        return Some(Cow::Borrowed(path));
    }
    let mut decoded = Vec::with_capacity(path.len());
    let mut rest = path;
    while let Some((&byte, after)) = rest.split_first() {
        if byte == b'%' {
            let [high, low, ..] = *after else {
                return None;
            };
            let value = (hex_digit(high)? << 4) | hex_digit(low)?;
            decoded.push(value);
            rest = &after[2..];
        } else {
            decoded.push(byte);
            rest = after;
        }
    }
    Some(Cow::Owned(decoded))
}

/// The decoded path with its `.` and `..` segments resolved (RFC 3986 6.2.2.3, as
/// 5.2.4 does it): `/a/./b/../c` is `/a/c`, and a `%2e%2e` counts as a `..` since
/// it was decoded before. `None` for a `..` above the root, which names nothing (a
/// `400`, as nginx and Apache answer it).
fn remove_dot_segments(path: Cow<'_, [u8]>) -> Option<Cow<'_, [u8]>> {
    let is_dot = |segment: &[u8]| segment == b"." || segment == b"..";
    let Some(relative) = path.strip_prefix(b"/") else {
        return Some(path);
    };
    if !relative.split(|&byte| byte == b'/').any(is_dot) {
        return Some(path);
    }
    let mut kept: Vec<&[u8]> = Vec::new();
    let mut segments = relative.split(|&byte| byte == b'/').peekable();
    while let Some(segment) = segments.next() {
        if segment == b".." {
            kept.pop()?;
        }
        if !is_dot(segment) {
            kept.push(segment);
        } else if segments.peek().is_none() {
            // A final `.` or `..` leaves the path naming a directory: `/a/..` is `/`.
            kept.push(b"");
        }
    }
    let mut resolved = Vec::with_capacity(path.len());
    for segment in kept {
        resolved.push(b'/');
        resolved.extend_from_slice(segment);
    }
    Some(Cow::Owned(resolved))
}

/// The value of a hexadecimal digit.
fn hex_digit(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|value| value as u8)
}
