//! The HTTP test client for `httpd-test` (apps/httpd), over `std::net` only: every
//! answer the server gives checked byte for byte (status line, fields, body) against
//! what the site in `apps/httpd/site/` and the `rexo-http` engine must produce, over
//! keep-alive, pipelined and broken connections. [`check_httpd`] runs it all against
//! a server reachable at `127.0.0.1:PORT` and stops the server at the end; [`load`]
//! measures requests per second.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long any one read or write may wait: TCG is slow, and a 10 MiB body through QEMU
/// user networking takes seconds.
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest response head the client accepts.
const HEAD_LIMIT: usize = 64 * 1024;

/// The files of `apps/httpd/site/` as the server has them.
const FILES: [(&str, &str, &[u8]); 7] = [
    (
        "/about.html",
        "text/html; charset=utf-8",
        include_bytes!("../../apps/httpd/site/about.html"),
    ),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../apps/httpd/site/style.css"),
    ),
    (
        "/rexo.png",
        "image/png",
        include_bytes!("../../apps/httpd/site/rexo.png"),
    ),
    (
        "/empty.txt",
        "text/plain; charset=utf-8",
        include_bytes!("../../apps/httpd/site/empty.txt"),
    ),
    (
        "/1k.txt",
        "text/plain; charset=utf-8",
        include_bytes!("../../apps/httpd/site/1k.txt"),
    ),
    (
        "/100k.txt",
        "text/plain; charset=utf-8",
        include_bytes!("../../apps/httpd/site/100k.txt"),
    ),
    (
        "/1m.txt",
        "text/plain; charset=utf-8",
        include_bytes!("../../apps/httpd/site/1m.txt"),
    ),
];

/// The path of the file httpd generates at start.
const GENERATED_PATH: &str = "/10m.bin";
/// Its length.
const GENERATED_LEN: usize = 10 << 20;

/// The generated file's bytes, as `apps/httpd/src/site.rs` makes them: the xorshift64
/// (13, 7, 17) stream from the seed, each state after a step as 8 little-endian bytes.
fn generated_content() -> Vec<u8> {
    let mut state: u64 = 0x5265_786f_4874_7470;
    let mut content = Vec::with_capacity(GENERATED_LEN);
    while content.len() < GENERATED_LEN {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        content.extend_from_slice(&state.to_le_bytes());
    }
    content.truncate(GENERATED_LEN);
    content
}

/// The entity tag `rexo-http` gives `content`: its length and 64-bit FNV-1a hash in
/// hexadecimal, quoted.
fn etag(content: &[u8]) -> String {
    let hash = content
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |hash, &byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("\"{:x}-{hash:x}\"", content.len())
}

/// The head of a `200 OK` for a file; `close` adds `Connection: close`.
fn ok_head(content_type: &str, content: &[u8], close: bool) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nServer: Rexo\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nETag: {}\r\nAccept-Ranges: bytes\r\n{}\r\n",
        content.len(),
        etag(content),
        if close { "Connection: close\r\n" } else { "" }
    )
}

/// The head and body of an error answer with a text body naming the status, plus
/// `extra` field lines (each ended by CRLF).
fn error_answer(code: u16, reason: &str, extra: &str, close: bool) -> (String, Vec<u8>) {
    let body = format!("{code} {reason}\n");
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nServer: Rexo\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{extra}{}\r\n",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    );
    (head, body.into_bytes())
}

/// One answer as received.
struct Answer {
    /// The head, blank line included.
    head: String,
    /// The body.
    body: Vec<u8>,
}

impl Answer {
    /// The value of the field `name` (compared without case), if present.
    fn field(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (field, value) = line.split_once(':')?;
            field.eq_ignore_ascii_case(name).then_some(value.trim())
        })
    }

    /// The status code.
    fn code(&self) -> u16 {
        self.head
            .get(9..12)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0)
    }
}

/// A connection to the server with the bytes read past the last answer.
struct Client {
    stream: TcpStream,
    buffered: Vec<u8>,
}

impl Client {
    /// Connects to the server at `127.0.0.1:port`.
    fn connect(port: u16) -> Result<Client, String> {
        Self::connect_to(local(port))
    }

    /// Connects to the server at `address`.
    fn connect_to(address: SocketAddr) -> Result<Client, String> {
        let stream =
            TcpStream::connect(address).map_err(|e| format!("connecting to {address}: {e}"))?;
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
            .and_then(|()| stream.set_nodelay(true))
            .map_err(|e| format!("setting up the socket: {e}"))?;
        Ok(Client {
            stream,
            buffered: Vec::new(),
        })
    }

    /// Sends `bytes`.
    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .map_err(|e| format!("sending {} bytes: {e}", bytes.len()))
    }

    /// Reads more bytes into the buffer; false at the end of the stream.
    fn fill(&mut self) -> Result<bool, String> {
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => Ok(false),
            Ok(len) => {
                self.buffered.extend_from_slice(&chunk[..len]);
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(false),
            Err(e) => Err(format!("reading: {e}")),
        }
    }

    /// Reads one answer; `has_body` is false for answers to HEAD, whose
    /// `Content-Length` describes a body not sent.
    fn answer(&mut self, has_body: bool) -> Result<Answer, String> {
        let head_len = loop {
            if let Some(end) = self.buffered.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            if self.buffered.len() > HEAD_LIMIT {
                return Err(format!("a response head above {HEAD_LIMIT} bytes"));
            }
            if !self.fill()? {
                return Err(format!(
                    "the server closed the connection within a response head ({} bytes: {:?})",
                    self.buffered.len(),
                    String::from_utf8_lossy(&self.buffered)
                ));
            }
        };
        let head = String::from_utf8(self.buffered.drain(..head_len).collect())
            .map_err(|_| "a response head that is not UTF-8".to_string())?;
        let mut answer = Answer {
            head: without_date(&head)?,
            body: Vec::new(),
        };
        let length = match answer.field("content-length") {
            Some(value) => value
                .parse::<usize>()
                .map_err(|_| format!("a bad Content-Length in {:?}", answer.head))?,
            None => 0,
        };
        let length = if has_body && answer.code() != 304 {
            length
        } else {
            0
        };
        while self.buffered.len() < length {
            if !self.fill()? {
                return Err(format!(
                    "the server closed the connection after {} of {length} body bytes of {:?}",
                    self.buffered.len(),
                    answer.head.lines().next().unwrap_or("")
                ));
            }
        }
        answer.body = self.buffered.drain(..length).collect();
        Ok(answer)
    }

    /// Whether the server closes the connection with nothing more sent.
    fn expect_closed(&mut self) -> Result<(), String> {
        if self.fill()? || !self.buffered.is_empty() {
            return Err(format!(
                "{} unexpected bytes after the last answer",
                self.buffered.len()
            ));
        }
        Ok(())
    }
}

/// `head` without its `Date` field, which every final answer carries (the machines QEMU
/// emulates have a wall clock; Rexo sends it last, nginx second) and which must be an
/// IMF-fixdate (RFC 9110, 5.6.7), so that the rest compares byte for byte; an interim
/// (1xx) head as it is.
fn without_date(head: &str) -> Result<String, String> {
    if head.starts_with("HTTP/1.1 1") {
        return Ok(head.to_string());
    }
    let line = head
        .find("\r\nDate: ")
        .ok_or_else(|| format!("no Date field in {head:?}"))?;
    let value = &head[line + 8..];
    let end = value.find("\r\n").unwrap_or(value.len());
    if !is_imf_fixdate(&value[..end]) {
        return Err(format!(
            "a Date field that is not an IMF-fixdate in {head:?}"
        ));
    }
    Ok(format!("{}{}", &head[..line], &value[end..]))
}

/// Whether `date` reads as `Sun, 06 Nov 1994 08:49:37 GMT` (compared as bytes: a
/// malformed value is no IMF-fixdate, never a panic).
fn is_imf_fixdate(date: &str) -> bool {
    const DAYS: [&[u8]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let bytes = date.as_bytes();
    let digits = |range: core::ops::Range<usize>| bytes[range].iter().all(u8::is_ascii_digit);
    bytes.len() == 29
        && DAYS.contains(&&bytes[..3])
        && &bytes[3..5] == b", "
        && digits(5..7)
        && MONTHS.contains(&&bytes[8..11])
        && [7, 11, 16].iter().all(|&at| bytes[at] == b' ')
        && digits(12..16)
        && digits(17..19)
        && digits(20..22)
        && digits(23..25)
        && bytes[19] == b':'
        && bytes[22] == b':'
        && &bytes[25..] == b" GMT"
}

/// A GET request for `path` with `fields` (each line ended by CRLF).
fn get(path: &str, fields: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: rexo\r\n{fields}\r\n")
}

/// Checks that `answer` is `head` followed by `body`, byte for byte.
fn expect(what: &str, answer: &Answer, head: &str, body: &[u8]) -> Result<(), String> {
    if answer.head != head {
        return Err(format!(
            "{what}: head\n{:?}\nexpected\n{head:?}",
            answer.head
        ));
    }
    if answer.body != body {
        let first_difference = answer
            .body
            .iter()
            .zip(body)
            .position(|(got, want)| got != want)
            .unwrap_or(answer.body.len().min(body.len()));
        return Err(format!(
            "{what}: a body of {} bytes differing from the expected {} at byte {first_difference}",
            answer.body.len(),
            body.len()
        ));
    }
    Ok(())
}

/// The content of a file of the site.
fn file(path: &str) -> (&'static str, &'static [u8]) {
    FILES
        .iter()
        .find(|(name, _, _)| *name == path)
        .map(|(_, content_type, content)| (*content_type, *content))
        .expect("a file of the site")
}

/// Runs every check against the server at `127.0.0.1:tcp_port`, then stops it with the
/// test hook (`GET /__shutdown`, which `httpd-test` answers before returning). Returns
/// a summary, or the first failure.
pub fn check_httpd(tcp_port: u16) -> Result<String, String> {
    let started = Instant::now();
    let mut done = Vec::new();
    check_files_keep_alive(tcp_port)?;
    done.push("every file byte-exact (0 B to 1 MiB) and HEAD on one keep-alive connection");
    check_generated(tcp_port)?;
    done.push("10 MiB");
    check_conditional_and_ranges(tcp_port)?;
    done.push("304, 206, 416");
    check_errors(tcp_port)?;
    done.push("404, 405, 400, 413, 431 (100 KB head), 505");
    check_pipelined(tcp_port)?;
    done.push("10 pipelined requests");
    check_http10(tcp_port)?;
    done.push("HTTP/1.0 close and keep-alive");
    check_broken_clients(tcp_port)?;
    done.push("a client gone mid-body and a stalled one do not stop others");
    check_mutated(tcp_port)?;
    done.push("mutated requests");
    check_status_page(tcp_port)?;
    done.push("status page");
    check_with_curl(tcp_port)?;
    done.push("curl");
    let python = check_with_python(tcp_port)?;
    done.push(&python);
    // A short load, for the log only (a figure, never a pass/fail threshold: the
    // machine is shared); `cargo xtask bench` is where figures are compared.
    let loaded = load(local(tcp_port), "/1k.txt", 8, Duration::from_secs(1))?;
    let load_note = format!(
        "8 keep-alive clients: {} requests of 1 KiB, {:.0}/s",
        loaded.requests, loaded.per_second
    );
    shut_down(local(tcp_port))?;
    done.push("shutdown hook");
    Ok(format!(
        "httpd: {} in {} ms; {load_note}",
        done.join("; "),
        started.elapsed().as_millis()
    ))
}

/// Every file, then HEAD of some, on one connection.
fn check_files_keep_alive(port: u16) -> Result<(), String> {
    let mut client = Client::connect(port)?;
    for (path, content_type, content) in FILES {
        client.send(get(path, "").as_bytes())?;
        let answer = client.answer(true)?;
        expect(
            &format!("GET {path}"),
            &answer,
            &ok_head(content_type, content, false),
            content,
        )?;
    }
    for path in ["/1k.txt", "/empty.txt", "/1m.txt"] {
        let (content_type, content) = file(path);
        client.send(format!("HEAD {path} HTTP/1.1\r\nHost: rexo\r\n\r\n").as_bytes())?;
        let answer = client.answer(false)?;
        expect(
            &format!("HEAD {path}"),
            &answer,
            &ok_head(content_type, content, false),
            b"",
        )?;
    }
    // Absolute form, a query and percent-encoding name the same file.
    let (content_type, content) = file("/1k.txt");
    for target in ["http://rexo/1k.txt", "/1k.txt?x=1", "/%31k.txt"] {
        client.send(get(target, "").as_bytes())?;
        let answer = client.answer(true)?;
        expect(
            &format!("GET {target}"),
            &answer,
            &ok_head(content_type, content, false),
            content,
        )?;
    }
    Ok(())
}

/// The 10 MiB generated file, whole.
fn check_generated(port: u16) -> Result<(), String> {
    let content = generated_content();
    let mut client = Client::connect(port)?;
    client.send(get(GENERATED_PATH, "").as_bytes())?;
    let answer = client.answer(true)?;
    expect(
        "GET /10m.bin",
        &answer,
        &ok_head("application/octet-stream", &content, false),
        &content,
    )
}

/// `If-None-Match`, `Range` and `If-Range`.
fn check_conditional_and_ranges(port: u16) -> Result<(), String> {
    let (content_type, content) = file("/100k.txt");
    let tag = etag(content);
    let length = content.len();
    let mut client = Client::connect(port)?;
    let mut ask = |fields: String| -> Result<Answer, String> {
        client.send(get("/100k.txt", &fields).as_bytes())?;
        client.answer(true)
    };
    let not_modified = format!("HTTP/1.1 304 Not Modified\r\nServer: Rexo\r\nETag: {tag}\r\n\r\n");
    for list in [tag.clone(), format!("\"other\", W/{tag}"), "*".to_string()] {
        let answer = ask(format!("If-None-Match: {list}\r\n"))?;
        expect(
            &format!("If-None-Match: {list}"),
            &answer,
            &not_modified,
            b"",
        )?;
    }
    let answer = ask("If-None-Match: \"other\"\r\n".to_string())?;
    expect(
        "a stale If-None-Match",
        &answer,
        &ok_head(content_type, content, false),
        content,
    )?;
    let partial = |first: usize, last: usize| {
        format!(
            "HTTP/1.1 206 Partial Content\r\nServer: Rexo\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nContent-Range: bytes {first}-{last}/{length}\r\nETag: {tag}\r\nAccept-Ranges: bytes\r\n\r\n",
            last - first + 1
        )
    };
    for (range, first, last) in [
        ("bytes=0-0", 0, 0),
        ("bytes=100-1999", 100, 1999),
        ("bytes=-500", length - 500, length - 1),
        ("bytes=102000-", 102_000, length - 1),
        ("bytes=50000-999999999", 50_000, length - 1),
    ] {
        let answer = ask(format!("Range: {range}\r\n"))?;
        expect(
            &format!("Range: {range}"),
            &answer,
            &partial(first, last),
            &content[first..=last],
        )?;
    }
    let answer = ask(format!("Range: bytes=10-19\r\nIf-Range: {tag}\r\n"))?;
    expect(
        "a matching If-Range",
        &answer,
        &partial(10, 19),
        &content[10..20],
    )?;
    let answer = ask("Range: bytes=10-19\r\nIf-Range: \"old\"\r\n".to_string())?;
    expect(
        "a stale If-Range",
        &answer,
        &ok_head(content_type, content, false),
        content,
    )?;
    let (head, body) = error_answer(
        416,
        "Range Not Satisfiable",
        &format!("Content-Range: bytes */{length}\r\n"),
        false,
    );
    let answer = ask(format!("Range: bytes={length}-\r\n"))?;
    expect("a range past the end", &answer, &head, &body)
}

/// Refusals, each on a fresh connection; those that close the connection must close it.
fn check_errors(port: u16) -> Result<(), String> {
    let mut client = Client::connect(port)?;
    client.send(get("/no/such/file", "").as_bytes())?;
    let (head, body) = error_answer(404, "Not Found", "", false);
    expect("a missing file", &client.answer(true)?, &head, &body)?;
    client.send(b"POST /1k.txt HTTP/1.1\r\nHost: rexo\r\nContent-Length: 5\r\n\r\nhello")?;
    let (head, body) = error_answer(405, "Method Not Allowed", "Allow: GET, HEAD\r\n", false);
    expect("POST", &client.answer(true)?, &head, &body)?;
    // The connection survives both.
    let (content_type, content) = file("/1k.txt");
    client.send(get("/1k.txt", "").as_bytes())?;
    expect(
        "GET after 404 and 405",
        &client.answer(true)?,
        &ok_head(content_type, content, false),
        content,
    )?;

    let huge_field = format!("X-Filler: {}\r\n", "a".repeat(100_000));
    let refusals: [(&str, Vec<u8>, u16, &str); 5] = [
        (
            "a bad request line",
            b"GARBAGE\r\n\r\n".to_vec(),
            400,
            "Bad Request",
        ),
        (
            "HTTP/1.1 without Host",
            b"GET /1k.txt HTTP/1.1\r\n\r\n".to_vec(),
            400,
            "Bad Request",
        ),
        (
            "a 10 MB request body",
            b"POST /1k.txt HTTP/1.1\r\nHost: rexo\r\nContent-Length: 10000000\r\n\r\n".to_vec(),
            413,
            "Payload Too Large",
        ),
        (
            "a 100 KB head",
            get("/1k.txt", &huge_field).into_bytes(),
            431,
            "Request Header Fields Too Large",
        ),
        (
            "HTTP/2.0",
            b"GET /1k.txt HTTP/2.0\r\nHost: rexo\r\n\r\n".to_vec(),
            505,
            "HTTP Version Not Supported",
        ),
    ];
    for (what, request, code, reason) in refusals {
        let mut client = Client::connect(port)?;
        // A writer thread: the server answers a long head before reading all of it.
        let mut writer = client
            .stream
            .try_clone()
            .map_err(|e| format!("cloning the socket: {e}"))?;
        let sending = std::thread::spawn(move || writer.write_all(&request));
        let (head, body) = error_answer(code, reason, "", true);
        expect(what, &client.answer(true)?, &head, &body)?;
        client.expect_closed().map_err(|e| format!("{what}: {e}"))?;
        // The server may reset a peer that keeps sending: a write error is fine.
        let _ = sending.join();
    }
    Ok(())
}

/// Ten requests sent at once, the ten answers read in order.
fn check_pipelined(port: u16) -> Result<(), String> {
    let paths = [
        "/1k.txt",
        "/empty.txt",
        "/style.css",
        "/missing",
        "/100k.txt",
        "/rexo.png",
        "/1k.txt",
        "/about.html",
        "/1m.txt",
        "/1k.txt",
    ];
    let mut client = Client::connect(port)?;
    let requests: String = paths.iter().map(|path| get(path, "")).collect();
    client.send(requests.as_bytes())?;
    for (index, path) in paths.iter().enumerate() {
        let answer = client.answer(true)?;
        let what = format!("pipelined request {index} ({path})");
        if *path == "/missing" {
            let (head, body) = error_answer(404, "Not Found", "", false);
            expect(&what, &answer, &head, &body)?;
        } else {
            let (content_type, content) = file(path);
            expect(
                &what,
                &answer,
                &ok_head(content_type, content, false),
                content,
            )?;
        }
    }
    Ok(())
}

/// HTTP/1.0: closed after the answer unless the client asks to keep it.
fn check_http10(port: u16) -> Result<(), String> {
    let (content_type, content) = file("/1k.txt");
    let mut client = Client::connect(port)?;
    client.send(b"GET /1k.txt HTTP/1.0\r\n\r\n")?;
    expect(
        "HTTP/1.0",
        &client.answer(true)?,
        &ok_head(content_type, content, true),
        content,
    )?;
    client
        .expect_closed()
        .map_err(|e| format!("HTTP/1.0: {e}"))?;

    let mut client = Client::connect(port)?;
    let keep = "HTTP/1.1 200 OK\r\nServer: Rexo\r\nContent-Type: text/plain; charset=utf-8\r\n";
    for _ in 0..2 {
        client.send(b"GET /1k.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")?;
        let answer = client.answer(true)?;
        let head = ok_head(content_type, content, false)
            .replace("\r\n\r\n", "\r\nConnection: keep-alive\r\n\r\n");
        if !answer.head.starts_with(keep) {
            return Err(format!("HTTP/1.0 keep-alive: head {:?}", answer.head));
        }
        expect("HTTP/1.0 keep-alive", &answer, &head, content)?;
    }
    let mut client = Client::connect(port)?;
    client.send(get("/1k.txt", "Connection: close\r\n").as_bytes())?;
    expect(
        "Connection: close",
        &client.answer(true)?,
        &ok_head(content_type, content, true),
        content,
    )?;
    client
        .expect_closed()
        .map_err(|e| format!("Connection: close: {e}"))
}

/// A client that stops reading mid-body and one that disconnects mid-body: a normal
/// request meanwhile and afterwards is served.
fn check_broken_clients(port: u16) -> Result<(), String> {
    let (content_type, content) = file("/1k.txt");
    let mut stalled = Client::connect(port)?;
    stalled.send(get(GENERATED_PATH, "").as_bytes())?;
    let mut gone = Client::connect(port)?;
    gone.send(get(GENERATED_PATH, "").as_bytes())?;
    // Read part of the body, then go away with most of it unread (a reset).
    let mut received = 0;
    while received < 200_000 {
        let before = gone.buffered.len();
        if !gone.fill()? {
            return Err("the server closed a connection mid-body".into());
        }
        received += gone.buffered.len() - before;
    }
    let _ = gone.stream.shutdown(Shutdown::Both);
    drop(gone);
    for attempt in 0..3 {
        let mut client = Client::connect(port)?;
        client.send(get("/1k.txt", "").as_bytes())?;
        expect(
            &format!("GET beside a stalled client and after one gone mid-body ({attempt})"),
            &client.answer(true)?,
            &ok_head(content_type, content, false),
            content,
        )?;
    }
    drop(stalled);
    let mut client = Client::connect(port)?;
    client.send(get("/1k.txt", "").as_bytes())?;
    expect(
        "GET after the stalled client left",
        &client.answer(true)?,
        &ok_head(content_type, content, false),
        content,
    )
}

/// Connections carrying mutated requests.
const MUTATED_CONNECTIONS: usize = 60;

/// Requests mutated by a deterministic generator, one or more pipelined per connection,
/// each connection half-closed after sending: whatever the bytes, the server answers
/// with well-formed answers or nothing, closes the connection, and serves the next
/// client.
fn check_mutated(port: u16) -> Result<(), String> {
    let seeds = [
        get("/1k.txt", "Range: bytes=1-2\r\n"),
        get("/100k.txt", "If-None-Match: \"x\", *\r\n"),
        "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc".to_string(),
        get("/%2e%2e/style.css", "Connection: keep-alive, close\r\n"),
    ];
    let mut random = XorShift(0x6d75_7461_7465_6421);
    for case in 0..MUTATED_CONNECTIONS {
        let mut bytes = Vec::new();
        for _ in 0..1 + random.below(3) {
            bytes.extend_from_slice(seeds[random.below(seeds.len())].as_bytes());
        }
        for _ in 0..1 + random.below(6) {
            mutate(&mut bytes, &mut random);
        }
        let mut client = Client::connect(port)?;
        client.send(&bytes)?;
        let _ = client.stream.shutdown(Shutdown::Write);
        while client.fill()? {
            if client.buffered.len() > 16 << 20 {
                return Err(format!("mutated case {case}: more than 16 MiB of answers"));
            }
        }
        let answers = &client.buffered;
        if !answers.is_empty() && !answers.starts_with(b"HTTP/1.1 ") {
            return Err(format!(
                "mutated case {case}: {:?} answered {:?}",
                String::from_utf8_lossy(&bytes),
                String::from_utf8_lossy(&answers[..answers.len().min(200)])
            ));
        }
    }
    let (content_type, content) = file("/1k.txt");
    let mut client = Client::connect(port)?;
    client.send(get("/1k.txt", "").as_bytes())?;
    expect(
        "GET after the mutated requests",
        &client.answer(true)?,
        &ok_head(content_type, content, false),
        content,
    )
}

/// Changes `bytes` in one random way: a byte replaced, inserted or removed, a line end
/// inserted, a run repeated, or the end cut off.
fn mutate(bytes: &mut Vec<u8>, random: &mut XorShift) {
    let at = random.below(bytes.len() + 1);
    match random.below(6) {
        0 if at < bytes.len() => bytes[at] = random.next() as u8,
        1 => bytes.insert(at, random.next() as u8),
        2 if at < bytes.len() => {
            bytes.remove(at);
        }
        3 => {
            bytes.splice(at..at, *b"\r\n");
        }
        4 => {
            let end = (at + random.below(64)).min(bytes.len());
            let run = bytes[at..end].repeat(1 + random.below(200));
            bytes.splice(at..at, run);
        }
        _ => bytes.truncate(at),
    }
}

/// A small deterministic generator (xorshift64) for the mutations.
struct XorShift(u64);

impl XorShift {
    /// The next value.
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value below `bound` (which must not be 0).
    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// The status page at `/`: fresh (not cached), naming the machine and the counters.
fn check_status_page(port: u16) -> Result<(), String> {
    let mut client = Client::connect(port)?;
    client.send(get("/", "").as_bytes())?;
    let answer = client.answer(true)?;
    let start = "HTTP/1.1 200 OK\r\nServer: Rexo\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: ";
    if !answer.head.starts_with(start)
        || !answer.head.ends_with("\r\nCache-Control: no-store\r\n\r\n")
    {
        return Err(format!("the status page's head {:?}", answer.head));
    }
    let page = String::from_utf8_lossy(&answer.body);
    for expected in [
        "<th>cores given to httpd</th>",
        "MiB usable",
        "mac 52:54:00",
        "<td>200: ",
        "<td>404: ",
        "<th>accepted</th>",
    ] {
        if !page.contains(expected) {
            return Err(format!("the status page lacks {expected:?}:\n{page}"));
        }
    }
    Ok(())
}

/// Fetches the status page until it shows every one of `wanted` (retrying for up to
/// 20 s: the server may not listen yet, and the page changes as apps bind); the page.
pub fn status_page_showing(port: u16, wanted: &[&str]) -> Result<String, String> {
    let started = Instant::now();
    loop {
        let page = status_page_at(local(port));
        match page {
            Ok(page) if wanted.iter().all(|w| page.contains(w)) => return Ok(page),
            Ok(page) if started.elapsed() > Duration::from_secs(20) => {
                return Err(format!("the status page never showed {wanted:?}:\n{page}"));
            }
            Err(e) if started.elapsed() > Duration::from_secs(20) => return Err(e),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Fetches a file with `curl` (an independent client: [`Need::HttpClients`]).
///
/// [`Need::HttpClients`]: crate::deps::Need::HttpClients
fn check_with_curl(port: u16) -> Result<(), String> {
    let output = std::process::Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "60"])
        .arg(format!("http://127.0.0.1:{port}/100k.txt"))
        .output()
        .map_err(|e| format!("running curl: {e}"))?;
    if !output.status.success() || output.stdout != file("/100k.txt").1 {
        return Err(format!(
            "curl: {} with {} bytes: {}",
            output.status,
            output.stdout.len(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

/// Python's `http.client` against the server (`httpd_check.py`, a client independent of
/// ours): every file of the site and the 10 MiB one on one keep-alive connection, each
/// body compared here byte for byte, then 304, 206, HEAD, 404, 405, 431 and a client
/// gone mid-body. What it checked.
fn check_with_python(port: u16) -> Result<String, String> {
    let out = std::env::temp_dir().join(format!("rexo-httpd-py-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let generated = generated_content();
    let mut expected: Vec<(&str, &[u8])> = FILES.iter().map(|(p, _, c)| (*p, *c)).collect();
    expected.push((GENERATED_PATH, &generated));
    let output = std::process::Command::new("python3")
        .args(["-c", include_str!("httpd_check.py")])
        .arg(port.to_string())
        .arg(&out)
        .args(expected.iter().map(|(path, _)| path))
        .output()
        .map_err(|e| format!("running python3: {e}"));
    let checked = output.and_then(|output| {
        let said = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if !output.status.success() {
            return Err(format!(
                "Python's http.client: {said} {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let range = &file("/1k.txt").1[100..200];
        for (name, (path, content)) in expected
            .iter()
            .enumerate()
            .map(|(i, e)| (i.to_string(), *e))
            .chain([(String::from("range"), ("/1k.txt bytes 100-199", range))])
        {
            let got = std::fs::read(out.join(&name)).map_err(|e| format!("{name}: {e}"))?;
            if got != content {
                return Err(format!(
                    "Python's http.client: {path}: {} bytes differ from the {} expected",
                    got.len(),
                    content.len()
                ));
            }
        }
        Ok(format!("Python's http.client: {said}"))
    });
    let _ = std::fs::remove_dir_all(&out);
    checked
}

/// Asks `httpd-test` at `address` to stop.
fn shut_down(address: SocketAddr) -> Result<(), String> {
    let mut client = Client::connect_to(address)?;
    client.send(get("/__shutdown", "").as_bytes())?;
    let answer = client.answer(true)?;
    if answer.code() != 200 || answer.body != b"shutting down\n" {
        return Err(format!("the shutdown hook answered {:?}", answer.head));
    }
    Ok(())
}

/// The server at `127.0.0.1:port` (QEMU's forward to the guest).
fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// How long one GET of `path` takes on a fresh connection (connect, request, the whole
/// answer), for the suite's time to the first served request.
pub fn first_response(address: SocketAddr, path: &str) -> Result<Duration, String> {
    let started = Instant::now();
    let mut client = Client::connect_to(address)?;
    client.send(get(path, "").as_bytes())?;
    let answer = client.answer(true)?;
    if answer.code() != 200 {
        return Err(format!("the first GET {path}: {:?}", answer.head));
    }
    Ok(started.elapsed())
}

/// What [`load`] measured.
#[derive(Debug)]
pub struct Load {
    /// Answers received, all `200` with the right length.
    pub requests: u64,
    /// Requests per second.
    pub per_second: f64,
    /// The 99th-percentile request latency (request sent to answer read).
    pub p99: Duration,
}

/// `connections` clients each send GET `path` on one keep-alive connection, one
/// request after the other, for `duration`. The clients connect one after the other,
/// each waiting for a first answer, before the clock starts: QEMU's user networking
/// listens on the host with a backlog of one, so connections opened all at once wait
/// (or time out) in the host's accept queue before the guest ever sees them.
pub fn load(
    address: SocketAddr,
    path: &str,
    connections: usize,
    duration: Duration,
) -> Result<Load, String> {
    let request = get(path, "");
    let ask = move |client: &mut Client| -> Result<(), String> {
        client.send(request.as_bytes())?;
        let answer = client.answer(true)?;
        if answer.code() != 200 {
            return Err(format!("load: {:?}", answer.head));
        }
        Ok(())
    };
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections {
        let mut client = Client::connect_to(address)?;
        ask(&mut client)?;
        clients.push(client);
    }
    let started = Instant::now();
    let workers: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let ask = ask.clone();
            std::thread::spawn(move || -> Result<Vec<Duration>, String> {
                let mut latencies = Vec::new();
                while started.elapsed() < duration {
                    let sent = Instant::now();
                    ask(&mut client)?;
                    latencies.push(sent.elapsed());
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.join().map_err(|_| "a load worker panicked")??);
    }
    let elapsed = started.elapsed();
    if latencies.is_empty() {
        return Err("the load made no requests".into());
    }
    latencies.sort();
    Ok(Load {
        requests: latencies.len() as u64,
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p99: latencies[(latencies.len() - 1) * 99 / 100],
    })
}

/// The `net::httpd-disk` case's client: every file of the disk byte-exact (the disk's
/// `about.html` instead of the built-in one), a built-in file still served, then the
/// shutdown hook.
pub const HTTPD_DISK: crate::netclient::Client = crate::netclient::Client {
    name: "httpd disk client",
    needs: &[],
    after: "httpd: serving",
    run: |ports| check_disk_site(ports.tcp(80)?.port(), &[]),
};

/// The `net::httpd-rexofs` case's client: [`HTTPD_DISK`]'s checks and the nested page.
pub const HTTPD_REXOFS: crate::netclient::Client = crate::netclient::Client {
    name: "httpd Rexo file system client",
    needs: &[],
    after: "httpd: serving",
    run: |ports| check_disk_site(ports.tcp(80)?.port(), &[crate::fsimage::NESTED]),
};

/// Every site file of the disk byte-exact (the disk's `about.html` instead of the
/// built-in one) and `extra` ones, a built-in file still served, then the shutdown hook.
fn check_disk_site(port: u16, extra: &[(&str, &[u8])]) -> Result<Vec<String>, String> {
    let mut client = Client::connect(port)?;
    let mut checked = Vec::new();
    let site = crate::disk::site_files();
    let files = site
        .iter()
        .map(|(name, content)| (format!("/{name}"), content.as_slice()))
        .chain(
            extra
                .iter()
                .map(|(path, content)| (path.to_string(), *content)),
        );
    for (path, content) in files {
        client.send(get(&path, "").as_bytes())?;
        let answer = client.answer(true)?;
        let content_type = if path.ends_with(".html") {
            "text/html; charset=utf-8"
        } else {
            "application/octet-stream"
        };
        expect(
            &format!("GET {path}"),
            &answer,
            &ok_head(content_type, content, false),
            content,
        )?;
        checked.push(format!("{path} ({} bytes)", content.len()));
    }
    let (content_type, content) = file("/1k.txt");
    client.send(get("/1k.txt", "").as_bytes())?;
    let answer = client.answer(true)?;
    expect(
        "GET /1k.txt",
        &answer,
        &ok_head(content_type, content, false),
        content,
    )?;
    shut_down(local(port))?;
    Ok(vec![format!(
        "from disk byte-exact: {}; built-in /1k.txt still served",
        checked.join(", ")
    )])
}

/// The `net::httpd` cases' client: every check of [`check_httpd`] through the port
/// forwarded to the guest's port 80, once httpd says it serves.
pub const HTTPD: crate::netclient::Client = crate::netclient::Client {
    name: "httpd client",
    needs: &[crate::deps::Need::HttpClients],
    after: "httpd: serving",
    run: |ports| {
        let port = ports.tcp(80)?.port();
        check_httpd(port).map(|summary| vec![summary])
    },
};

/// The `monitor::default-run` case's client (`cargo xtask run` without `--app`): httpd's
/// status page through the forwarded port, with httpd's packet filter on the interface it
/// shares with the monitor.
pub const DEFAULT_RUN: crate::netclient::Client = crate::netclient::Client {
    name: "the default run's status page",
    needs: &[],
    after: "httpd: serving",
    run: |ports| {
        let port = ports.tcp(80)?.port();
        status_page_showing(
            port,
            &[
                "<th>cores given to httpd</th>",
                "MiB usable",
                "mac 52:54:00",
                "<td>200: ",
                "<th>accepted</th>",
                "<h2>Packet filters</h2>",
                "<th>filter of httpd</th>",
            ],
        )?;
        Ok(vec![String::from(
            "the status page, with httpd's packet filter",
        )])
    },
};

/// The `net::httpd-tso` case's client, inside the tap's namespace: [`check_tso`]
/// against the guest's port 80, once httpd says it serves.
pub const HTTPD_TSO: crate::netclient::Client = crate::netclient::Client {
    name: "httpd TSO client",
    needs: &[],
    after: "httpd: serving",
    run: |_| on_tap_then_shut_down(check_tso),
};

/// The `net::httpd-per-core` case's client, inside the tap's namespace:
/// [`check_per_core`] against the guest's port 80, once httpd says it serves.
pub const HTTPD_PER_CORE: crate::netclient::Client = crate::netclient::Client {
    name: "httpd per-core client",
    needs: &[],
    after: "httpd: serving",
    run: |_| on_tap_then_shut_down(check_per_core),
};

/// The `net::httpd-narrow-path` case's client, in the namespace behind the narrow path
/// ([`TapNet::with_narrow_path`](crate::tapnet::TapNet::with_narrow_path)):
/// [`check_narrow_path`] against the guest's port 80, once httpd says it serves.
pub const HTTPD_NARROW_PATH: crate::netclient::Client = crate::netclient::Client {
    name: "httpd narrow-path client",
    needs: &[],
    after: "httpd: serving",
    run: |_| on_tap_then_shut_down(check_narrow_path),
};

/// Runs `check` against the guest's port 80 on the tap network, then stops the server
/// with the test hook even after a failure, so that the case ends before its timeout.
fn on_tap_then_shut_down(
    check: fn(SocketAddr) -> Result<Vec<String>, String>,
) -> Result<Vec<String>, String> {
    let address = SocketAddr::from((crate::tapnet::GUEST, 80));
    let checked = check(address);
    let stopped = shut_down(address);
    let notes = checked?;
    stopped?;
    Ok(notes)
}

/// Answers across a path narrower than the link: from behind a router whose route takes
/// 1,400-byte datagrams (this end announcing an MSS of 1460), one connection fetches
/// `/100k.txt` and `/1m.txt` byte-exact within [`IO_TIMEOUT`] per read, which needs the
/// server to lower its MSS when the router refuses its full segments (Path MTU
/// Discovery: a server that does not waits for its retransmissions to time out, and
/// the same segments are refused again).
pub fn check_narrow_path(address: SocketAddr) -> Result<Vec<String>, String> {
    let started = Instant::now();
    let mut client = Client::connect_to(address)?;
    let mut bytes = 0;
    for path in ["/100k.txt", "/1m.txt"] {
        let (content_type, content) = file(path);
        client.send(get(path, "").as_bytes())?;
        let answer = client.answer(true)?;
        let head = ok_head(content_type, content, false);
        expect(&format!("GET {path}"), &answer, &head, content)?;
        bytes += content.len();
    }
    Ok(vec![format!(
        "through a router whose route takes {}-byte datagrams: {bytes} bytes byte-exact in {} ms",
        crate::tapnet::NARROW_PATH_MTU,
        started.elapsed().as_millis()
    )])
}

/// Connections fetching at once in [`check_tso`]: as many as the benchmarks', so that
/// their large frames outnumber the NIC's buffers for them.
const TSO_CONNECTIONS: usize = 32;

/// What [`fetch_at_once`] fetched.
struct Fetched {
    /// Requests answered.
    requests: u64,
    /// Body bytes, all byte-exact.
    bytes: usize,
}

/// `connections` keep-alive connections at once (each from its own source port) each
/// fetch every file of `paths` in turn, and the first also `/10m.bin`;
/// every answer must be byte-exact.
fn fetch_at_once(
    address: SocketAddr,
    connections: usize,
    paths: &'static [&'static str],
) -> Result<Fetched, String> {
    let content = std::sync::Arc::new(generated_content());
    let workers: Vec<_> = (0..connections)
        .map(|index| {
            let content = content.clone();
            std::thread::spawn(move || -> Result<Fetched, String> {
                let mut client = Client::connect_to(address)?;
                let mut bytes = 0;
                for path in paths {
                    let (content_type, content) = file(path);
                    client.send(get(path, "").as_bytes())?;
                    let answer = client.answer(true)?;
                    let head = ok_head(content_type, content, false);
                    expect(&format!("GET {path}"), &answer, &head, content)?;
                    bytes += content.len();
                }
                let requests = paths.len() as u64;
                if index > 0 {
                    return Ok(Fetched { requests, bytes });
                }
                client.send(get(GENERATED_PATH, "").as_bytes())?;
                let answer = client.answer(true)?;
                let head = ok_head("application/octet-stream", &content, false);
                expect("GET /10m.bin", &answer, &head, &content)?;
                Ok(Fetched {
                    requests: requests + 1,
                    bytes: bytes + content.len(),
                })
            })
        })
        .collect();
    let mut all = Fetched {
        requests: 0,
        bytes: 0,
    };
    for worker in workers {
        let fetched = worker
            .join()
            .map_err(|_| "a client thread panicked".to_string())??;
        all.requests += fetched.requests;
        all.bytes += fetched.bytes;
    }
    Ok(all)
}

/// The status page of the server at `address`.
fn status_page_at(address: SocketAddr) -> Result<String, String> {
    let mut client = Client::connect_to(address)?;
    client.send(get("/", "").as_bytes())?;
    Ok(String::from_utf8_lossy(&client.answer(true)?.body).into_owned())
}

/// Large files through TCP segmentation offload: [`TSO_CONNECTIONS`] keep-alive
/// connections at once each fetch `/100k.txt` three times and `/1m.txt` once, and the
/// first `/10m.bin` too, every body byte-exact; then the status page must show large segments cut by
/// the NIC (its offload was used) and no frame dropped (none lost after smoltcp
/// handed it over).
pub fn check_tso(address: SocketAddr) -> Result<Vec<String>, String> {
    let started = Instant::now();
    let paths = &["/100k.txt", "/100k.txt", "/1m.txt", "/100k.txt"];
    let bytes = fetch_at_once(address, TSO_CONNECTIONS, paths)?.bytes;
    let elapsed = started.elapsed();
    let page = status_page_at(address)?;
    let (by_nic, by_stack) = status_row(&page, "large segments cut by the NIC / by the stack")
        .and_then(|value| value.split_once(" / "))
        .and_then(|(nic, stack)| Some((nic.parse::<u64>().ok()?, stack.parse::<u64>().ok()?)))
        .ok_or_else(|| format!("the status page has no count of large segments:\n{page}"))?;
    let dropped = status_row(&page, "dropped")
        .and_then(|value| value.parse::<u64>().ok())
        .ok_or_else(|| format!("the status page has no count of dropped frames:\n{page}"))?;
    if by_nic == 0 {
        return Err(format!(
            "the NIC cut no large segment ({by_stack} cut by the stack): no TCP segmentation offload"
        ));
    }
    if dropped != 0 {
        return Err(format!(
            "{dropped} frames dropped after the stack handed them over ({by_nic} large segments cut by the NIC, {by_stack} by the stack)"
        ));
    }
    Ok(vec![format!(
        "{TSO_CONNECTIONS} connections at once, 100 KiB and 1 MiB files (and one 10 MiB): {bytes} bytes byte-exact in {} ms; {by_nic} large segments cut by the NIC, {by_stack} by the stack, 0 dropped",
        elapsed.as_millis()
    )])
}

/// Connections of [`check_per_core`], each from its own source port: the tap spreads
/// them over its two queues by a hash of their ports, so the chance that all land on
/// one queue (and one core) is 2^-15.
const PER_CORE_CONNECTIONS: usize = 16;

/// httpd on every core: [`PER_CORE_CONNECTIONS`] keep-alive connections at once each
/// fetch the 1 KiB, 100 KiB and 1 MiB files and the first `/10m.bin` too, byte-exact;
/// then the status page must say two cores serve, count every one of those answers
/// (the cores' counters summed), and show answers on each core adding up to that sum.
pub fn check_per_core(address: SocketAddr) -> Result<Vec<String>, String> {
    let started = Instant::now();
    let paths = &["/1k.txt", "/100k.txt", "/1m.txt", "/1k.txt"];
    let fetched = fetch_at_once(address, PER_CORE_CONNECTIONS, paths)?;
    let elapsed = started.elapsed();
    let page = status_page_at(address)?;
    let number = |name: &str| {
        status_row(&page, name)
            .and_then(|value| value.parse::<u64>().ok())
            .ok_or_else(|| format!("the status page has no number `{name}`:\n{page}"))
    };
    if number("serving cores")? != 2 {
        return Err(format!(
            "the status page does not say 2 serving cores:\n{page}"
        ));
    }
    let answers = number("answers")?;
    if answers != fetched.requests {
        return Err(format!(
            "the status page counts {answers} answers; the clients got {} (the cores' counters are not summed)",
            fetched.requests
        ));
    }
    let per_core = status_row(&page, "answers per core")
        .ok_or_else(|| format!("the status page has no answers per core:\n{page}"))?;
    let counts = per_core
        .split(" + ")
        .map(|n| n.parse::<u64>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| format!("answers per core `{per_core}` are not numbers"))?;
    if counts.len() != 2 || counts.contains(&0) || counts.iter().sum::<u64>() != answers {
        return Err(format!(
            "answers per core `{per_core}`: expected two non-zero counts adding up to {answers}"
        ));
    }
    Ok(vec![format!(
        "{PER_CORE_CONNECTIONS} connections at once: {} answers, {} bytes byte-exact in {} ms; the status page sums them ({per_core})",
        fetched.requests,
        fetched.bytes,
        elapsed.as_millis()
    )])
}

/// The value of the status page's row `name` (`<tr><th>NAME</th><td>VALUE</td></tr>`).
fn status_row<'a>(page: &'a str, name: &str) -> Option<&'a str> {
    let start = page.find(&format!("<th>{name}</th><td>"))? + name.len() + 13;
    let len = page[start..].find("</td>")?;
    Some(&page[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expected_heads_are_those_of_the_engine() {
        assert_eq!(etag(b""), "\"0-cbf29ce484222325\"");
        assert_eq!(
            ok_head("text/plain; charset=utf-8", b"", true),
            "HTTP/1.1 200 OK\r\nServer: Rexo\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 0\r\nETag: \"0-cbf29ce484222325\"\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n"
        );
        let (head, body) = error_answer(404, "Not Found", "", false);
        assert_eq!(body, b"404 Not Found\n");
        assert!(head.ends_with("Content-Length: 14\r\n\r\n"));
    }

    #[test]
    fn the_date_field_is_checked_and_taken_out() {
        let head = "HTTP/1.1 404 Not Found\r\nServer: Rexo\r\nContent-Length: 14\r\n";
        let dated = format!("{head}Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n");
        assert_eq!(without_date(&dated), Ok(format!("{head}\r\n")));
        // nginx's order: Date second, after Server.
        let second = "HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(
            without_date(second),
            Ok("HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 2\r\n\r\n".to_string())
        );
        for bad in [
            format!("{head}\r\n"),
            format!("{head}Date: Sun, 06 Nov 1994 08:49:37 UTC\r\n\r\n"),
            format!("{head}Date: Sunday, 06-Nov-94 08:49:37 GMT\r\n\r\n"),
            format!("Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n{head}\r\n"),
            format!("{head}Date: Sun, 06 Nov 1994 08:49:3\u{e9}GMT\r\n\r\n"),
        ] {
            assert!(without_date(&bad).is_err(), "{bad:?}");
        }
        let interim = "HTTP/1.1 100 Continue\r\n\r\n";
        assert_eq!(without_date(interim), Ok(interim.to_string()));
    }

    #[test]
    fn status_rows_are_read_by_name() {
        let page = "<tr><th>dropped</th><td>3</td></tr>\n<tr><th>large segments cut by the NIC / by the stack</th><td>12 / 0</td></tr>";
        assert_eq!(status_row(page, "dropped"), Some("3"));
        assert_eq!(
            status_row(page, "large segments cut by the NIC / by the stack"),
            Some("12 / 0")
        );
        assert_eq!(status_row(page, "accepted"), None);
    }

    #[test]
    fn the_site_files_have_their_sizes() {
        assert_eq!(file("/empty.txt").1.len(), 0);
        assert_eq!(file("/1m.txt").1.len(), 1 << 20);
        assert_eq!(generated_content().len(), GENERATED_LEN);
    }

    /// Against a running `httpd-test`: `REXO_HTTPD_PORT=8080 cargo test -p xtask
    /// httpclient -- --ignored --nocapture` after starting QEMU with
    /// `hostfwd=tcp:127.0.0.1:8080-:80`. With `REXO_HTTPD_LOAD_SECONDS=N` it first
    /// measures for N seconds per file and per count of `REXO_HTTPD_CONNECTIONS` (a
    /// comma-separated list, default `1,8`); then it checks (which stops the server).
    #[test]
    #[ignore]
    fn against_a_running_server() {
        let port: u16 = std::env::var("REXO_HTTPD_PORT")
            .expect("REXO_HTTPD_PORT")
            .parse()
            .expect("a port");
        let seconds: u64 = std::env::var("REXO_HTTPD_LOAD_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let connections: Vec<usize> = std::env::var("REXO_HTTPD_CONNECTIONS")
            .unwrap_or_else(|_| "1,8".into())
            .split(',')
            .map(|n| n.parse().expect("a number of connections"))
            .collect();
        for path in ["/1k.txt", "/100k.txt"] {
            for &connections in &connections {
                if seconds > 0 {
                    let measured =
                        load(local(port), path, connections, Duration::from_secs(seconds))
                            .unwrap_or_else(|e| panic!("{e}"));
                    println!(
                        "{path} with {connections} connections: {} requests, {:.0}/s",
                        measured.requests, measured.per_second
                    );
                }
            }
        }
        match check_httpd(port) {
            Ok(summary) => println!("{summary}"),
            Err(failure) => panic!("{failure}"),
        }
    }
}
