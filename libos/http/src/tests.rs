//! Host tests: answers byte for byte, pipelining and partial input, ranges, entity
//! tags, checksums, bounds, and a fuzz run of the parser.

use super::*;
use crate::date::imf_fixdate;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::Cell;

std::thread_local! {
    /// Bytes the parser searched for line ends, on this test's thread.
    static SEARCHED: Cell<usize> = const { Cell::new(0) };
}

/// Counts `bytes` searched by the parser for line ends.
pub(crate) fn count_searched(bytes: usize) {
    SEARCHED.with(|searched| searched.set(searched.get() + bytes));
}

/// The bytes the parser searched while `run` ran.
fn searched_by(run: impl FnOnce()) -> usize {
    let before = SEARCHED.with(Cell::get);
    run();
    SEARCHED.with(Cell::get) - before
}

/// A full TCP segment's payload on Ethernet, the unit the checksum tests cut files in.
const SEGMENT: usize = 1460;

const INDEX: &[u8] = b"<h1>Rexo</h1>\n";

/// A site with an index, a 10-byte text file, an empty file and a JavaScript file.
fn site() -> Site {
    let mut files = FileTable::new();
    files.insert_static("/index.html", INDEX);
    files.insert_static("/digits.txt", b"0123456789");
    files.insert_static("/empty.txt", b"");
    files.insert_static("/app.js", b"run()");
    Site::new(files, Limits::DEFAULT)
}

/// A page hook with a status page at `/status` and a failing page at `/broken`.
fn pages(path: &[u8], _head_only: bool) -> Page {
    match path {
        b"/status" => Page::Ready {
            content_type: "text/plain; charset=utf-8",
            body: b"cores 2\n".to_vec(),
        },
        b"/broken" => Page::Failed,
        _ => Page::Unhandled,
    }
}

/// The bytes of an answer on the wire.
fn wire(response: &Response) -> Vec<u8> {
    let mut bytes = response.head().to_vec();
    bytes.extend_from_slice(response.body().bytes());
    bytes
}

/// Serves a whole input stream as a connection would, returning what goes on the wire
/// and whether the connection closed.
fn converse(site: &Site, mut input: &[u8]) -> (String, bool) {
    let mut out = Vec::new();
    loop {
        match site.serve(input, &mut pages) {
            Step::NeedMore => return (String::from_utf8_lossy(&out).into_owned(), false),
            Step::Continue => {
                // The interim answer, then the body the input lacks.
                out.extend_from_slice(&wire(&Response::interim_continue()));
                return (String::from_utf8_lossy(&out).into_owned(), false);
            }
            Step::Answer { response, consumed } => {
                out.extend_from_slice(&wire(&response));
                if response.closes() {
                    return (String::from_utf8_lossy(&out).into_owned(), true);
                }
                input = &input[consumed..];
            }
        }
    }
}

/// The one answer to one request.
fn answer(request: &str) -> String {
    let (out, _) = converse(&site(), request.as_bytes());
    out
}

/// Asserts that `GET target` is refused 400 and the connection closed.
fn assert_get_refused(target: &str) {
    let (out, closed) = converse(
        &site(),
        format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    );
    assert!(
        out.starts_with("HTTP/1.1 400 Bad Request\r\n") && closed,
        "{target:?}: {out}"
    );
}

fn etag(site: &Site, path: &str) -> String {
    String::from_utf8(site.files.get(path.as_bytes()).unwrap().etag().to_vec()).unwrap()
}

#[test]
fn get_and_head_are_byte_exact() {
    let site = site();
    let tag = etag(&site, "/index.html");
    let head = format!(
        "HTTP/1.1 200 OK\r\nServer: Rexo\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Length: 14\r\nETag: {tag}\r\nAccept-Ranges: bytes\r\n\r\n"
    );
    assert_eq!(
        answer("GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"),
        format!("{head}<h1>Rexo</h1>\n")
    );
    assert_eq!(answer("HEAD /index.html HTTP/1.1\r\nHost: x\r\n\r\n"), head);
    // A directory's index, a query, escapes and the absolute form name the same file.
    for target in [
        "/",
        "/index.html?x=1",
        "/%69ndex.html",
        "http://x/index.html",
    ] {
        let request = format!("HEAD {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(answer(&request), head, "{target}");
    }
}

#[test]
fn the_200_head_is_prebuilt_and_the_body_points_into_the_file() {
    let site = site();
    let Step::Answer { response, .. } =
        site.serve(b"GET /digits.txt HTTP/1.1\r\nHost: x\r\n\r\n", &mut pages)
    else {
        panic!("no answer");
    };
    let file = site.files.get(b"/digits.txt").unwrap();
    assert_eq!(
        response.head().as_ptr(),
        file.ok_head(Persistence::KeepAlive).as_ptr()
    );
    let Body::File {
        file: sent,
        offset: 0,
        len: 10,
    } = response.body()
    else {
        panic!("not a file body: {:?}", response.body());
    };
    assert!(core::ptr::eq(
        sent.content().as_ptr(),
        file.content().as_ptr()
    ));
    assert!(core::ptr::eq(
        response.body().bytes().as_ptr(),
        file.content().as_ptr()
    ));
}

#[test]
fn error_answers_are_byte_exact() {
    let text = |code: &str, extra: &str, connection: &str| {
        format!(
            "HTTP/1.1 {code}\r\nServer: Rexo\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: {}\r\n{extra}{connection}\r\n{code}\n",
            code.len() + 1
        )
    };
    let close = "Connection: close\r\n";
    let cases: [(&str, String); 10] = [
        (
            "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n",
            text("404 Not Found", "", ""),
        ),
        ("GARBAGE\r\n\r\n", text("400 Bad Request", "", close)),
        (
            "GET /index.html HTTP/1.1\r\n\r\n",
            text("400 Bad Request", "", close),
        ),
        (
            "DELETE /index.html HTTP/1.1\r\nHost: x\r\n\r\n",
            text("405 Method Not Allowed", "Allow: GET, HEAD\r\n", ""),
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4097\r\n\r\n",
            text("413 Payload Too Large", "", close),
        ),
        (
            "GET /digits.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=10-\r\n\r\n",
            text(
                "416 Range Not Satisfiable",
                "Content-Range: bytes */10\r\n",
                "",
            ),
        ),
        (
            "GET /broken HTTP/1.1\r\nHost: x\r\n\r\n",
            text("500 Internal Server Error", "", ""),
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            text("501 Not Implemented", "", close),
        ),
        (
            "GET / HTTP/2.0\r\n\r\n",
            text("505 HTTP Version Not Supported", "", close),
        ),
        (
            "GET /bad%zz HTTP/1.1\r\nHost: x\r\n\r\n",
            text("400 Bad Request", "", close),
        ),
    ];
    for (request, expected) in cases {
        assert_eq!(answer(request), expected, "{request:?}");
    }
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(5000));
    assert_eq!(answer(&long_target), text("414 URI Too Long", "", close));
    let big_head = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
        "a".repeat(9000)
    );
    assert_eq!(
        answer(&big_head),
        text("431 Request Header Fields Too Large", "", close)
    );
    // HEAD gets the same head without the text.
    let head_only = text("404 Not Found", "", "");
    assert_eq!(
        answer("HEAD /nothing HTTP/1.1\r\nHost: x\r\n\r\n"),
        head_only.strip_suffix("404 Not Found\n").unwrap()
    );
}

/// RFC 9110 9.1 and 15.6.2: a method the server does not know is not implemented
/// (501); one it knows but serves nothing with is not allowed (405, with `Allow`). The
/// connection stays open either way (the request's framing was read).
#[test]
fn unknown_methods_get_501_and_known_ones_405() {
    for (method, target) in [
        ("POST", "/app.js"),
        ("PUT", "/app.js"),
        ("DELETE", "/app.js"),
        ("PATCH", "/app.js"),
        ("CONNECT", "example.com:443"),
        ("TRACE", "/app.js"),
        ("OPTIONS", "/app.js"),
    ] {
        let (out, closed) = converse(
            &site(),
            format!("{method} {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        );
        assert!(!closed, "{method}");
        assert!(
            out.starts_with("HTTP/1.1 405 Method Not Allowed\r\n")
                && out.contains("\r\nAllow: GET, HEAD\r\n"),
            "{method}: {out}"
        );
    }
    for method in ["BREW", "PROPFIND", "get"] {
        let (out, closed) = converse(
            &site(),
            format!("{method} /app.js HTTP/1.1\r\nHost: x\r\n\r\nGET /app.js HTTP/1.1\r\nHost: x\r\n\r\n")
                .as_bytes(),
        );
        assert!(!closed, "{method}");
        let refusal = "HTTP/1.1 501 Not Implemented\r\nServer: Rexo\r\n\
                       Content-Type: text/plain; charset=utf-8\r\nContent-Length: 20\r\n\r\n\
                       501 Not Implemented\n";
        assert!(out.starts_with(refusal), "{method}: {out}");
        assert!(out.ends_with("run()"), "{method}: the next request served");
    }
}

/// RFC 9112 3.2.3: CONNECT's target is the authority form, `host:port`, and no other
/// method's: a CONNECT to one gets its 405 and keeps the connection, the request after
/// it served; a CONNECT to a path, or to a host without a port, is a bad request.
#[test]
fn connect_takes_the_authority_form_and_only_it() {
    let (out, closed) = converse(
        &site(),
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\
          GET /app.js HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(!closed, "{out}");
    assert!(
        out.starts_with("HTTP/1.1 405 Method Not Allowed\r\n")
            && out.contains("\r\nAllow: GET, HEAD\r\n"),
        "{out}"
    );
    assert!(out.ends_with("\r\n\r\nrun()"), "the GET served: {out}");
    assert!(answer("CONNECT [::1]:8080 HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 405 "));
    for target in [
        "/",
        "/app.js",
        "http://example.com:443/",
        "example.com",
        "example.com:",
        ":443",
        "a/b:443",
        "example.com:44x",
    ] {
        let refusal = answer(&format!("CONNECT {target} HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(refusal.starts_with("HTTP/1.1 400 "), "{target}: {refusal}");
        assert!(refusal.contains("\r\nConnection: close\r\n"), "{target}");
    }
    // The authority form is CONNECT's alone.
    assert!(answer("GET example.com:80 HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 400 "));
}

/// RFC 9112 3.2.4: `OPTIONS *` asks about the server as a whole; it gets 200 with the
/// methods served and keeps the connection. No other method may send the asterisk form.
#[test]
fn options_asterisk_is_answered_with_the_methods_served() {
    let (out, closed) = converse(
        &site(),
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\nGET /app.js HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let options =
        "HTTP/1.1 200 OK\r\nServer: Rexo\r\nAllow: GET, HEAD\r\nContent-Length: 0\r\n\r\n";
    assert!(!closed);
    assert!(out.starts_with(options), "{out}");
    assert!(out[options.len()..].starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(out.ends_with("run()"));
    assert!(answer("GET * HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 400 "));
    assert!(
        answer("OPTIONS /app.js HTTP/1.1\r\nHost: x\r\n\r\n")
            .starts_with("HTTP/1.1 405 Method Not Allowed\r\n")
    );
}

/// RFC 9110 9.3.2: no answer to HEAD has content, a refusal from the head (once its
/// request line was read) included; its head is the GET's.
#[test]
fn refusals_of_a_head_request_carry_no_body() {
    let long_field = format!("X: {}\r\n", "a".repeat(9000));
    for (fields, status) in [
        (
            "Host: x\r\nContent-Length: 99999\r\n",
            "413 Payload Too Large",
        ),
        ("", "400 Bad Request"),
        ("Host: x\r\nHost: y\r\n", "400 Bad Request"),
        (
            "Host: x\r\nTransfer-Encoding: gzip, chunked\r\n",
            "501 Not Implemented",
        ),
        ("Host: x\r\nExpect: x\r\n", "417 Expectation Failed"),
        (long_field.as_str(), "431 Request Header Fields Too Large"),
    ] {
        let request = |method: &str| format!("{method} /digits.txt HTTP/1.1\r\n{fields}\r\n");
        let (get, closed) = converse(&site(), request("GET").as_bytes());
        assert!(
            closed && get.starts_with(&format!("HTTP/1.1 {status}\r\n")),
            "{get}"
        );
        let body = format!("{status}\n");
        let get_head = get.strip_suffix(&body).unwrap();
        let (head, closed) = converse(&site(), request("HEAD").as_bytes());
        assert!(closed);
        assert_eq!(head, get_head, "{status}");
    }
}

/// RFC 9110 9.3.2 again: a request line bad after its method (400, 505, 414) answers a
/// HEAD request without content too, whole or arriving a byte at a time, after blank
/// lines or not; its head is the GET's. A line without a space after its first token
/// named no method, and its refusal keeps the text.
#[test]
fn refusals_of_a_head_request_line_bad_after_its_method_carry_no_body() {
    let long_target = format!("/{}", "a".repeat(5000));
    for (after_method, status) in [
        (" / HTTP/1.1 \r\nHost: x\r\n\r\n", "400 Bad Request"),
        ("  / HTTP/1.1\r\nHost: x\r\n\r\n", "400 Bad Request"),
        (" /\r\n\r\n", "400 Bad Request"),
        (" * HTTP/1.1\r\nHost: x\r\n\r\n", "400 Bad Request"),
        (" / http/1.1\r\nHost: x\r\n\r\n", "400 Bad Request"),
        (" / HTTP/2.0\r\n\r\n", "505 HTTP Version Not Supported"),
        (
            &format!(" {long_target} HTTP/1.1\r\n\r\n"),
            "414 URI Too Long",
        ),
        // Unfinished: refused once the line is past its bound.
        (&format!(" {long_target}"), "414 URI Too Long"),
    ] {
        for blank_lines in ["", "\r\n\n"] {
            let request = |method: &str| format!("{blank_lines}{method}{after_method}");
            let (get, closed) = converse(&site(), request("GET").as_bytes());
            assert!(
                closed && get.starts_with(&format!("HTTP/1.1 {status}\r\n")),
                "{get}"
            );
            let get_head = get.strip_suffix(&format!("{status}\n")).unwrap();
            let head_request = request("HEAD");
            let (head, closed) = converse(&site(), head_request.as_bytes());
            assert!(closed);
            assert_eq!(head, get_head, "{head_request:?}");
            let every_byte: Vec<usize> = (1..head_request.len()).collect();
            let trickled = fed_in_pieces(&site(), head_request.as_bytes(), &every_byte);
            assert_eq!(trickled, get_head, "{head_request:?} a byte at a time");
        }
    }
    for no_method in ["HEAD\r\n\r\n", "HEAD\t/ HTTP/1.1\r\n\r\n"] {
        let (answer, _) = converse(&site(), no_method.as_bytes());
        assert!(answer.ends_with("\r\n400 Bad Request\n"), "{no_method:?}");
    }
}

/// RFC 9110 10.1.1: a request that will be read on gets the interim `100 Continue`
/// before its body; one refused from its head gets its final answer alone.
#[test]
fn expect_100_continue_gets_an_interim_answer_when_the_body_will_be_read() {
    let interim = "HTTP/1.1 100 Continue\r\n\r\n";
    let head = |version: &str, expect: &str, length: usize| {
        format!(
            "GET /digits.txt HTTP/{version}\r\nHost: x\r\nExpect: {expect}\r\nContent-Length: {length}\r\n\r\n"
        )
    };
    let whole = answer(&head("1.1", "", 0).replace("Expect: \r\n", ""));
    assert!(whole.starts_with("HTTP/1.1 200 OK"), "{whole}");
    // The head alone: the client waits for the 100, then the body comes.
    for expect in ["100-continue", "100-Continue", " 100-continue , "] {
        assert_eq!(answer(&head("1.1", expect, 5)), interim, "{expect:?}");
    }
    let (out, closed) = converse(
        &site(),
        format!("{}abc", head("1.1", "100-continue", 5)).as_bytes(),
    );
    assert_eq!(
        (out.as_str(), closed),
        (interim, false),
        "part of the body came"
    );
    // The body with the head: no interim answer is needed.
    assert_eq!(
        answer(&format!("{}12345", head("1.1", "100-continue", 5))),
        whole
    );
    // Without a body there is nothing to wait for.
    assert_eq!(answer(&head("1.1", "100-continue", 0)), whole);
    // HTTP/1.0 clients do not wait for it (the server must ignore the expectation).
    assert_eq!(answer(&head("1.0", "100-continue", 5)), "");
    // A body too large is refused at once, without the 100.
    let refused = answer(&head("1.1", "100-continue", 4097));
    assert!(refused.starts_with("HTTP/1.1 413 "), "{refused}");
    // Any other expectation is 417, final, and closes.
    for expect in ["x-cheese", "100-continue, x-cheese", "100-continue=1"] {
        let (out, closed) = converse(&site(), head("1.1", expect, 5).as_bytes());
        assert!(
            out.starts_with("HTTP/1.1 417 Expectation Failed\r\n"),
            "{expect}: {out}"
        );
        assert!(closed, "{expect}");
    }
}

#[test]
fn dynamic_pages_get_a_fresh_head() {
    assert_eq!(
        answer("GET /status HTTP/1.1\r\nHost: x\r\n\r\n"),
        "HTTP/1.1 200 OK\r\nServer: Rexo\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: 8\r\nCache-Control: no-store\r\n\r\ncores 2\n"
    );
    assert_eq!(
        answer("HEAD /status HTTP/1.0\r\n\r\n"),
        "HTTP/1.1 200 OK\r\nServer: Rexo\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: 8\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
    );
    // RFC 9110 15.4.5: the 304 (a page has no tag, but `*` matches it) keeps the 200's
    // Cache-Control, so no cache stores it either.
    assert_eq!(
        answer("GET /status HTTP/1.1\r\nHost: x\r\nIf-None-Match: *\r\n\r\n"),
        "HTTP/1.1 304 Not Modified\r\nServer: Rexo\r\nCache-Control: no-store\r\n\r\n"
    );
    // The hook is asked first, so it may take `/` from the index.
    let site = site();
    let mut status_at_root = |path: &[u8], _| match path {
        b"/" => Page::Ready {
            content_type: "text/html; charset=utf-8",
            body: b"<p>up</p>".to_vec(),
        },
        _ => Page::Unhandled,
    };
    let Step::Answer { response, .. } =
        site.serve(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", &mut status_at_root)
    else {
        panic!("no answer");
    };
    assert_eq!(response.body().bytes(), b"<p>up</p>");
}

#[test]
fn a_head_request_for_a_dynamic_page_need_not_render_it() {
    let site = site();
    let mut rendered = 0;
    let mut lazy = |path: &[u8], head_only| match path {
        b"/status" if head_only => Page::Unrendered {
            content_type: "text/plain; charset=utf-8",
        },
        b"/status" => {
            rendered += 1;
            Page::Ready {
                content_type: "text/plain; charset=utf-8",
                body: b"cores 2\n".to_vec(),
            }
        }
        // A page that claims to be unrendered for a GET.
        b"/wrong" => Page::Unrendered {
            content_type: "text/plain; charset=utf-8",
        },
        _ => Page::Unhandled,
    };
    let mut ask = |request: &[u8]| match site.serve(request, &mut lazy) {
        Step::Answer { response, .. } => [response.head(), response.body().bytes()].concat(),
        Step::NeedMore | Step::Continue => panic!("no answer"),
    };
    // The head without Content-Length, which only the body would tell.
    assert_eq!(
        ask(b"HEAD /status HTTP/1.1\r\nHost: x\r\n\r\n"),
        b"HTTP/1.1 200 OK\r\nServer: Rexo\r\nContent-Type: text/plain; charset=utf-8\r\n\
          Cache-Control: no-store\r\n\r\n"
    );
    assert!(ask(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n").ends_with(b"\r\n\r\ncores 2\n"));
    assert!(ask(b"GET /wrong HTTP/1.1\r\nHost: x\r\n\r\n").starts_with(b"HTTP/1.1 500 "));
    assert_eq!(rendered, 1, "rendered for the GET alone");
}

#[test]
fn connections_persist_as_the_version_and_connection_field_say() {
    let cases = [
        ("HTTP/1.1", "", "", false),
        (
            "HTTP/1.1",
            "Connection: close\r\n",
            "Connection: close\r\n",
            true,
        ),
        (
            "HTTP/1.1",
            "Connection: keep-alive, Close\r\n",
            "Connection: close\r\n",
            true,
        ),
        ("HTTP/1.0", "", "Connection: close\r\n", true),
        (
            "HTTP/1.0",
            "Connection: Keep-Alive\r\n",
            "Connection: keep-alive\r\n",
            false,
        ),
    ];
    for (version, field, expected_field, closes) in cases {
        let request = format!(
            "GET /app.js {version}\r\nHost: x\r\n{field}\r\nGET /app.js HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        let (out, closed) = converse(&site(), request.as_bytes());
        assert_eq!(closed, closes, "{request:?}");
        assert_eq!(
            out.matches("200 OK").count(),
            if closes { 1 } else { 2 },
            "{request:?}"
        );
        assert!(out.contains(&format!(
            "Accept-Ranges: bytes\r\n{expected_field}\r\nrun()"
        )));
    }
}

/// A pipelined stream covering files, errors, swallowed bodies and conditionals.
fn pipelined_stream(site: &Site) -> String {
    let tag = etag(site, "/digits.txt");
    format!(
        "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n\
         \r\n\
         HEAD /digits.txt HTTP/1.1\nHost: x\n\n\
         POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
         GET /digits.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
         GET /digits.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: {tag}\r\n\r\n\
         GET /digits.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=2-4\r\n\r\n\
         GET /missing HTTP/1.1\r\nHost: x\r\n\r\n\
         GET /status HTTP/1.1\r\nHost: x\r\n\r\n\
         GET /app.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n\
         GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"
    )
}

#[test]
fn pipelined_requests_split_anywhere_give_the_same_answers() {
    let site = site();
    let stream = pipelined_stream(&site);
    let (whole, closed) = converse(&site, stream.as_bytes());
    assert!(closed, "the request asking to close ends the conversation");
    // Bodies do not end in line ends, so status lines are found by their start.
    let statuses: Vec<&str> = whole
        .match_indices("HTTP/1.1 ")
        .map(|(at, _)| whole[at..].split("\r\n").next().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "HTTP/1.1 200 OK",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 405 Method Not Allowed",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 304 Not Modified",
            "HTTP/1.1 206 Partial Content",
            "HTTP/1.1 404 Not Found",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 200 OK",
        ]
    );
    let stream = stream.as_bytes();
    for split in 0..=stream.len() {
        assert_eq!(
            fed_in_pieces(&site, stream, &[split]),
            whole,
            "split at {split}"
        );
    }
    assert_eq!(
        fed_in_pieces(&site, stream, &Vec::from_iter(1..stream.len())),
        whole,
        "byte by byte"
    );
}

/// What a connection sends when `stream` arrives cut at the positions `cuts`, serving
/// after every arrival (resuming the parse where the last arrival left it) and keeping
/// only what is not answered yet.
fn fed_in_pieces(site: &Site, stream: &[u8], cuts: &[usize]) -> String {
    let mut buffer = Vec::new();
    let mut out = Vec::new();
    let mut start = 0;
    let mut progress = ParseProgress::default();
    for end in cuts.iter().copied().chain([stream.len()]) {
        buffer.extend_from_slice(&stream[start..end]);
        start = end;
        while let Step::Answer { response, consumed } =
            site.serve_resumed(&buffer, &mut progress, &mut pages)
        {
            out.extend_from_slice(&wire(&response));
            if response.closes() {
                return String::from_utf8_lossy(&out).into_owned();
            }
            buffer.drain(..consumed);
        }
        assert!(buffer.len() < site.limits.buffer_bound());
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn range(site: &Site, path: &str, range: &str) -> (u16, Vec<u8>, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nRange: {range}\r\n\r\n");
    let Step::Answer { response, .. } = site.serve(request.as_bytes(), &mut pages) else {
        panic!("no answer");
    };
    let head = String::from_utf8(response.head().to_vec()).unwrap();
    let content_range = head
        .lines()
        .find_map(|line| line.strip_prefix("Content-Range: "))
        .unwrap_or("")
        .into();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        length,
        response.body().bytes().len(),
        "Content-Length is the body's"
    );
    (
        response.status().code(),
        response.body().bytes().to_vec(),
        content_range,
    )
}

#[test]
fn ranges_and_their_edges() {
    let site = site();
    let part =
        |body: &str, content_range: &str| (206, body.as_bytes().to_vec(), content_range.into());
    let whole = (200, b"0123456789".to_vec(), String::new());
    let unsatisfiable = (
        416,
        b"416 Range Not Satisfiable\n".to_vec(),
        "bytes */10".into(),
    );
    let cases = [
        ("bytes=0-0", part("0", "bytes 0-0/10")),
        ("bytes=2-4", part("234", "bytes 2-4/10")),
        ("bytes=7-", part("789", "bytes 7-9/10")),
        ("bytes=7-1000", part("789", "bytes 7-9/10")),
        (
            "bytes=8-99999999999999999999999",
            part("89", "bytes 8-9/10"),
        ),
        ("bytes=-3", part("789", "bytes 7-9/10")),
        ("bytes=-10", part("0123456789", "bytes 0-9/10")),
        ("bytes=-11", part("0123456789", "bytes 0-9/10")),
        ("BYTES = 1-1", part("1", "bytes 1-1/10")),
        ("bytes=10-", unsatisfiable.clone()),
        ("bytes=10-20", unsatisfiable.clone()),
        ("bytes=99999999999999999999-", unsatisfiable.clone()),
        ("bytes=-0", unsatisfiable),
        ("bytes=4-2", whole.clone()),
        ("bytes=0-1,4-5", whole.clone()),
        ("bytes=x-1", whole.clone()),
        ("bytes=-", whole.clone()),
        ("items=0-1", whole.clone()),
        ("bytes 0-1", whole),
    ];
    for (value, expected) in cases {
        assert_eq!(range(&site, "/digits.txt", value), expected, "{value}");
    }
    // An empty file: a suffix gets the (empty) whole, anything else 416.
    assert_eq!(
        range(&site, "/empty.txt", "bytes=-5"),
        (200, Vec::new(), String::new())
    );
    assert_eq!(range(&site, "/empty.txt", "bytes=0-").0, 416);
    // HEAD ignores Range; a stale If-Range gets the whole body.
    let (out, _) = converse(
        &site,
        b"HEAD /digits.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=1-2\r\n\r\n",
    );
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"));
    let tag = etag(&site, "/digits.txt");
    for (if_range, status) in [
        (tag.as_str(), "206"),
        ("\"old\"", "200"),
        ("Sat, 29 Oct 1994 19:43:31 GMT", "200"),
    ] {
        let request = format!(
            "GET /digits.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=1-2\r\nIf-Range: {if_range}\r\n\r\n"
        );
        let (out, _) = converse(&site, request.as_bytes());
        assert!(
            out.starts_with(&format!("HTTP/1.1 {status}")),
            "{if_range}: {out}"
        );
    }
}

#[test]
fn entity_tags_and_if_none_match() {
    let site = site();
    assert_eq!(
        etag(&site, "/empty.txt"),
        "\"0-cbf29ce484222325\"",
        "FNV-1a of nothing"
    );
    assert_ne!(etag(&site, "/digits.txt"), etag(&site, "/app.js"));
    let tag = etag(&site, "/digits.txt");
    let not_modified = format!("HTTP/1.1 304 Not Modified\r\nServer: Rexo\r\nETag: {tag}\r\n\r\n");
    let matching = [
        tag.clone(),
        "*".into(),
        format!("W/{tag}"),
        format!("\"a\", {tag}"),
        format!("\"a,b\",,{tag} , \"c\""),
    ];
    for value in matching {
        for method in ["GET", "HEAD"] {
            let request = format!(
                "{method} /digits.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: {value}\r\n\r\n"
            );
            assert_eq!(answer(&request), not_modified, "{value}");
        }
    }
    let split_over_fields = format!(
        "GET /digits.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"a\"\r\nIf-None-Match: {tag}\r\n\r\n"
    );
    assert_eq!(answer(&split_over_fields), not_modified);
    let stale = tag.replace('-', "_");
    for value in [stale.as_str(), "\"\"", "W/", "**", "\"a\" junk", &tag[1..]] {
        let request =
            format!("GET /digits.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: {value}\r\n\r\n");
        assert!(
            answer(&request).starts_with("HTTP/1.1 200 OK\r\n"),
            "{value}"
        );
    }
    // Changing the bytes changes the tag.
    let mut files = FileTable::new();
    files.insert_owned("/f", b"0123456788".to_vec());
    assert_ne!(files.get(b"/f").unwrap().etag(), tag.as_bytes());
}

/// If-Match (RFC 9110 13.1.1) is evaluated before anything else: a resumed download
/// whose tag is not the file's gets 412, not bytes of another file spliced onto its own.
#[test]
fn if_match_refuses_any_tag_but_the_files_own() {
    let site = site();
    let tag = etag(&site, "/digits.txt");
    let ask = |method: &str, path: &str, if_match: &str| {
        answer(&format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nRange: bytes=5-\r\n\
             If-None-Match: \"other\"\r\nIf-Match: {if_match}\r\n\r\n"
        ))
    };
    let failed = "HTTP/1.1 412 Precondition Failed\r\nServer: Rexo\r\n\
                  Content-Type: text/plain; charset=utf-8\r\nContent-Length: 24\r\n\r\n";
    for value in [
        "\"nope\"".into(),
        format!("W/{tag}"),
        format!("\"a\", W/{tag}"),
        "\"\"".into(),
        "**".into(),
        tag[1..].into(),
    ] {
        assert_eq!(
            ask("GET", "/digits.txt", &value),
            format!("{failed}412 Precondition Failed\n"),
            "{value}"
        );
        assert_eq!(ask("HEAD", "/digits.txt", &value), failed, "{value}");
    }
    for value in [tag.clone(), "*".into(), format!("\"a\", {tag} ,\"b\"")] {
        let out = ask("GET", "/digits.txt", &value);
        assert!(
            out.starts_with("HTTP/1.1 206 Partial Content\r\n"),
            "{value}: {out}"
        );
        assert!(out.ends_with("\r\n\r\n56789"), "{value}: {out}");
    }
    // Split over two fields, the list is one.
    let split = format!(
        "GET /digits.txt HTTP/1.1\r\nHost: x\r\nIf-Match: \"a\"\r\nIf-Match: {tag}\r\n\r\n"
    );
    assert!(answer(&split).starts_with("HTTP/1.1 200 OK\r\n"));
    // A dynamic page has no tag: only `*` matches it.
    assert!(ask("GET", "/status", "*").starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(ask("GET", "/status", &tag).starts_with("HTTP/1.1 412 "));
    // A missing file stays a 404: preconditions apply only to what would be served.
    assert!(ask("GET", "/nothing", "\"nope\"").starts_with("HTTP/1.1 404 "));
}

#[test]
fn content_types_follow_the_extension() {
    let cases = [
        ("/a.html", "text/html; charset=utf-8"),
        ("/a.HTM", "text/html; charset=utf-8"),
        ("/s.css", "text/css; charset=utf-8"),
        ("/s.js", "text/javascript; charset=utf-8"),
        ("/d.json", "application/json"),
        ("/t.txt", "text/plain; charset=utf-8"),
        ("/i.png", "image/png"),
        ("/i.jpg", "image/jpeg"),
        ("/i.jpeg", "image/jpeg"),
        ("/i.gif", "image/gif"),
        ("/i.svg", "image/svg+xml"),
        ("/favicon.ico", "image/x-icon"),
        ("/m.wasm", "application/wasm"),
        ("/archive.tar.gz", "application/octet-stream"),
        ("/dir.d/README", "application/octet-stream"),
        ("/", "application/octet-stream"),
    ];
    for (path, expected) in cases {
        assert_eq!(content_type_for(path), expected, "{path}");
    }
}

#[test]
fn a_body_no_buffer_could_hold_is_too_large_even_under_an_unbounded_limit() {
    let limits = Limits {
        body: usize::MAX,
        ..Limits::DEFAULT
    };
    let request = b"GET / HTTP/1.0\r\nContent-Length: 18446744073709551615\r\n\r\n";
    assert_eq!(
        parse(request, &limits),
        Parsed::Invalid {
            status: Status::PayloadTooLarge,
            method: Some(Method::Get),
        }
    );
}

/// A deterministic generator for test data and fuzzing (xorshift64*).
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn bodies_from_0_bytes_to_10_mib_are_served_whole() {
    let mut random = Random(7);
    let mut files = FileTable::new();
    let sizes = [0, 1, 1459, 1460, 1461, 65536, 1 << 20, 10 << 20];
    for size in sizes {
        files.insert_owned(&format!("/f{size}.bin"), random.bytes(size));
    }
    let site = Site::new(files, Limits::DEFAULT);
    for size in sizes {
        let request = format!("GET /f{size}.bin HTTP/1.1\r\nHost: x\r\n\r\n");
        let Step::Answer { response, .. } = site.serve(request.as_bytes(), &mut pages) else {
            panic!("no answer");
        };
        let file = site.files.get(format!("/f{size}.bin").as_bytes()).unwrap();
        assert_eq!(response.body().bytes(), file.content());
        let head = String::from_utf8(response.head().to_vec()).unwrap();
        assert!(
            head.contains(&format!("\r\nContent-Length: {size}\r\n")),
            "{head}"
        );
        assert!(head.contains("Content-Type: application/octet-stream\r\n"));
        // The last byte alone, through a range.
        if size > 0 {
            let (status, body, content_range) = range(&site, &format!("/f{size}.bin"), "bytes=-1");
            assert_eq!(
                (status, body.as_slice()),
                (206, &file.content()[size - 1..])
            );
            assert_eq!(
                content_range,
                format!("bytes {}-{}/{size}", size - 1, size - 1)
            );
        }
    }
}

/// The one's complement sum computed the plain way, one byte at a time.
fn direct_sum(data: &[u8]) -> u16 {
    let mut total: u64 = 0;
    for (i, &byte) in data.iter().enumerate() {
        total += if i % 2 == 0 {
            u64::from(byte) << 8
        } else {
            u64::from(byte)
        };
    }
    while total > 0xffff {
        total = (total & 0xffff) + (total >> 16);
    }
    total as u16
}

#[test]
fn segment_checksums_match_a_direct_computation() {
    let mut random = Random(11);
    let mut files = FileTable::new();
    files.insert_owned("/data", random.bytes(100 * SEGMENT + 777));
    files.insert_owned("/ones", vec![0xff; 3 * SEGMENT + 1]);
    files.insert_owned("/zeros", vec![0; 2 * SEGMENT]);
    for path in ["/data", "/ones", "/zeros"] {
        let file = files.get(path.as_bytes()).unwrap();
        let content = file.content();
        let length = content.len();
        let check = |offset: usize, len: usize| {
            let expected = direct_sum(&content[offset..offset + len]);
            assert_eq!(
                file.segment_checksum(offset, len),
                Some(expected),
                "{path} {offset}+{len}"
            );
        };
        // Every aligned segment, and aligned runs of several.
        for chunk in 0..length.div_ceil(SEGMENT) {
            let offset = chunk * SEGMENT;
            check(offset, SEGMENT.min(length - offset));
            check(offset, (3 * SEGMENT).min(length - offset));
        }
        check(0, length);
        check(0, 0);
        check(length, 0);
        // Unaligned, odd and even starts and lengths.
        for _ in 0..2000 {
            let offset = random.below(length + 1);
            let len = random.below(length - offset + 1).min(4 * SEGMENT + 3);
            check(offset, len);
        }
        assert_eq!(file.segment_checksum(length, 1), None);
        assert_eq!(file.segment_checksum(usize::MAX, 2), None);
    }
    assert_eq!(ones_complement_sum(&[0xff; 2 * SEGMENT]), 0xffff);
}

#[test]
fn file_answers_are_pieces_of_the_file_cache_not_copies() {
    let mut files = FileTable::new();
    let content: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    files.insert_owned("/f.txt", content.clone());
    let site = Site::new(files, Limits::default());
    let file = site.files.get(b"/f.txt").unwrap().clone();
    let answer = |request: &[u8]| match site.serve(request, &mut |_, _| Page::Unhandled) {
        Step::Answer { response, .. } => response,
        Step::NeedMore | Step::Continue => panic!("no answer"),
    };
    // A whole file: the prebuilt head's blob, then the file's own bytes.
    let response = answer(b"GET /f.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = response.head().to_vec();
    let pieces = response.into_pieces();
    assert_eq!(pieces.len(), 2);
    assert_eq!(pieces[0].len(), head.len());
    assert_eq!(pieces[1].len(), content.len());
    let head_blob = file.ok_head_blob(Persistence::KeepAlive);
    assert_eq!(head_blob.bytes(), &head[..]);
    // Shared, not copied: the pieces hold the file's blobs.
    assert_eq!(Arc::strong_count(head_blob), 2);
    assert_eq!(Arc::strong_count(file.blob()), 2);
    // A range: a sub-range of the same blob; its checksum from the stored sums.
    let response = answer(b"GET /f.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=1001-2000\r\n\r\n");
    assert_eq!(response.status(), Status::PartialContent);
    let pieces = response.into_pieces();
    assert_eq!(pieces.len(), 2);
    assert_eq!(pieces[1].len(), 1000);
    assert_eq!(
        file.segment_checksum(1001, 1000),
        Some(direct_sum(&content[1001..2001]))
    );
    // A HEAD answer has no body piece; an error answer owns its bytes.
    assert_eq!(
        answer(b"HEAD /f.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .into_pieces()
            .len(),
        1
    );
    let missing = answer(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    let total = missing.head().len() + missing.body().bytes().len();
    let pieces = missing.into_pieces();
    assert_eq!(pieces.iter().map(|p| p.len()).sum::<usize>(), total);
}

#[test]
fn request_bodies_are_swallowed_or_refused() {
    // A small body is skipped, so the next request is read from the right place.
    let (out, closed) = converse(
        &site(),
        b"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\n\r\n"
            .iter()
            .copied()
            .chain([b'G'; 4096])
            .chain(*b"GET /app.js HTTP/1.1\r\nHost: x\r\n\r\n")
            .collect::<Vec<u8>>()
            .as_slice(),
    );
    assert!(!closed);
    assert!(out.starts_with("HTTP/1.1 405"));
    assert!(out.ends_with("run()"));
    // A body waits for all of its bytes.
    assert!(matches!(
        site().serve(
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabc",
            &mut pages
        ),
        Step::NeedMore
    ));
    for bad in ["-1", "1x", "", "5, 5", "99999999999999999999999"] {
        let request = format!("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: {bad}\r\n\r\n");
        let status = if bad.len() > 20 { "413" } else { "400" };
        assert!(
            answer(&request).starts_with(&format!("HTTP/1.1 {status}")),
            "{bad}"
        );
    }
    let conflicting =
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab";
    assert!(answer(conflicting).starts_with("HTTP/1.1 400"));
}

/// RFC 9112 7.1: a chunked request body is decoded (and discarded, as any body is),
/// within [`Limits::body`] for all of its coding, so the request after it is read from
/// the right place; framing that cannot be trusted is refused and the connection
/// closed.
#[test]
fn chunked_request_bodies_are_read_and_discarded() {
    let site = site();
    let chunked = |version: &str, fields: &str, body: &str| {
        format!("POST /form HTTP/{version}\r\nHost: x\r\n{fields}\r\n{body}")
    };
    let te = "Transfer-Encoding: chunked\r\n";
    let stream = format!(
        "{}GET /digits.txt HTTP/1.1\r\nHost: x\r\n{te}\r\n3\r\nabc\r\n0\r\n\r\n\
         HEAD /app.js HTTP/1.1\r\nHost: x\r\n\r\n",
        chunked(
            "1.1",
            "Transfer-Encoding: \r\nTransfer-Encoding: , CHUNKED\r\n",
            "5\r\nhello\r\nA;name=\"v;a\" ; x\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n"
        )
    );
    let (whole, closed) = converse(&site, stream.as_bytes());
    assert!(!closed, "{whole}");
    let statuses: Vec<&str> = whole
        .match_indices("HTTP/1.1 ")
        .map(|(at, _)| whole[at..].split("\r\n").next().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "HTTP/1.1 405 Method Not Allowed",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 200 OK"
        ]
    );
    assert!(whole.contains("\r\n\r\n0123456789HTTP/1.1 200 OK\r\n"));
    // Fed a byte at a time, each byte is searched for a line end once.
    let stream = stream.as_bytes();
    let mut out = String::new();
    let searched =
        searched_by(|| out = fed_in_pieces(&site, stream, &Vec::from_iter(1..stream.len())));
    assert_eq!(out, whole, "byte by byte");
    assert!(searched <= stream.len(), "{searched} bytes searched");
    // A body not whole yet waits, for the 100 if it was asked.
    let (out, closed) = converse(&site, chunked("1.1", te, "5\r\nhel").as_bytes());
    assert!(!closed && out.is_empty());
    let expect = format!("{te}Expect: 100-continue\r\n");
    let (out, _) = converse(&site, chunked("1.1", &expect, "").as_bytes());
    assert_eq!(out, "HTTP/1.1 100 Continue\r\n\r\n");
    // Framing that cannot be trusted, and codings not understood.
    let long_chunk = format!("1000\r\n{}\r\n0\r\n\r\n", "a".repeat(4096));
    let many_chunks = format!("{}0\r\n\r\n", "1\r\na\r\n".repeat(1000));
    let refused = [
        (
            "1.1",
            format!("{te}Content-Length: 5\r\n"),
            "0\r\n\r\n",
            "400",
        ),
        (
            "1.1",
            format!("Content-Length: 5\r\n{te}"),
            "0\r\n\r\n",
            "400",
        ),
        ("1.0", te.into(), "0\r\n\r\n", "400"),
        (
            "1.1",
            "Transfer-Encoding: chunked, gzip\r\n".into(),
            "",
            "400",
        ),
        ("1.1", format!("{te}Transfer-Encoding: gzip\r\n"), "", "400"),
        ("1.1", "Transfer-Encoding: \r\n".into(), "", "400"),
        ("1.1", "Transfer-Encoding: gzip\r\n".into(), "", "400"),
        (
            "1.1",
            "Transfer-Encoding: chunked;q=1\r\n".into(),
            "0\r\n\r\n",
            "400",
        ),
        (
            "1.1",
            "Transfer-Encoding: chunked ;\r\n".into(),
            "0\r\n\r\n",
            "400",
        ),
        (
            "1.1",
            "Transfer-Encoding: gzip, chunked\r\n".into(),
            "",
            "501",
        ),
        ("1.1", format!("{te}{te}"), "", "501"),
        ("1.1", te.into(), "x\r\n", "400"),
        ("1.1", te.into(), "\r\n", "400"),
        ("1.1", te.into(), "5 x\r\n", "400"),
        ("1.1", te.into(), "5\nhello\r\n0\r\n\r\n", "400"),
        ("1.1", te.into(), "5\r\nhelloXY0\r\n\r\n", "400"),
        ("1.1", te.into(), "0\r\nbad trailer\r\n\r\n", "400"),
        ("1.1", te.into(), "0\r\n\n", "400"),
        ("1.1", te.into(), "ffffffffffffffffffffff\r\n", "413"),
        ("1.1", te.into(), &long_chunk, "413"),
        ("1.1", te.into(), &many_chunks, "413"),
    ];
    for (version, fields, body, status) in refused {
        let request = chunked(version, &fields, body);
        let (out, closed) = converse(&site, request.as_bytes());
        assert!(
            closed && out.starts_with(&format!("HTTP/1.1 {status} ")),
            "{request:?}: {out}"
        );
    }
    // A coding past the bound is refused as soon as the bound is reached, the buffer
    // never holding more.
    let request = chunked("1.1", te, &many_chunks);
    let out = fed_in_pieces(&site, request.as_bytes(), &Vec::from_iter(1..request.len()));
    assert!(out.starts_with("HTTP/1.1 413 "), "{out}");
}

#[test]
fn malformed_requests_are_refused() {
    let bad = [
        "GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1 \r\nHost: x\r\n\r\n",
        "GET /\r\n\r\n",
        "GET / http/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.10\r\nHost: x\r\n\r\n",
        "G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET * HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET ftp://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x/y\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: user@x\r\n\r\n",
        "GET / HTTP/1.0\r\nHost: x\"\r\n\r\n",
    ];
    for request in bad {
        assert!(
            answer(request).starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{request:?}"
        );
    }
    // A bad request line is refused before its headers arrive.
    assert!(answer("BAD\r\nHost: x\r\n").starts_with("HTTP/1.1 400"));
    // Host names, addresses and ports, and the empty Host of a target without one.
    for host in ["x", "rexo.example:8080", "10.0.2.15:80", "[::1]:8080", ""] {
        let request = format!("GET /app.js HTTP/1.1\r\nHost: {host}\r\n\r\n");
        assert!(answer(&request).starts_with("HTTP/1.1 200"), "{host}");
    }
    // HTTP/1.0 needs no Host; obs-text in a value is allowed.
    assert!(answer("GET /app.js HTTP/1.0\r\nX: caf\u{e9}\r\n\r\n").starts_with("HTTP/1.1 200"));
}

/// A head arriving a byte at a time is searched for line ends once, each line judged
/// once, not all of it again on every read (which made an 8 KiB head cost some 30
/// million steps); nor is it read again while its body arrives.
#[test]
fn a_trickled_head_is_searched_once() {
    let site = site();
    let mut head = b"\r\nGET /digits.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n".to_vec();
    head.extend_from_slice(b"X-Long: ");
    head.resize(head.len() + 3000, b'b');
    head.extend_from_slice(b"\r\n");
    while head.len() < 8000 {
        head.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let mut request = head.clone();
    request.resize(head.len() + 100, b'z');
    let (whole, _) = converse(&site, &request);
    assert!(whole.starts_with("HTTP/1.1 200 OK\r\n"), "{whole}");
    let mut progress = ParseProgress::default();
    let mut out = None;
    let searched = searched_by(|| {
        for end in 1..=request.len() {
            match site.serve_resumed(&request[..end], &mut progress, &mut pages) {
                Step::NeedMore => {
                    assert_eq!(progress.searched(), end.min(head.len()), "at {end}");
                }
                Step::Continue => panic!("no 100-continue was asked"),
                Step::Answer { response, consumed } => {
                    assert_eq!((end, consumed), (request.len(), request.len()));
                    assert_eq!(progress, ParseProgress::default());
                    out = Some(String::from_utf8(wire(&response)).unwrap());
                }
            }
        }
    });
    assert_eq!(out.as_deref(), Some(whole.as_str()));
    assert!(searched <= head.len(), "{searched} bytes searched");
}

#[test]
fn a_100_kb_head_is_refused_without_buffering_it() {
    let site = site();
    let mut stream = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    while stream.len() < 100_000 {
        stream.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    stream.extend_from_slice(b"\r\n");
    for piece in [1, 100, 1460, 65536] {
        // A connection reading `piece` bytes at a time, keeping only unanswered bytes.
        let mut buffer = Vec::new();
        let mut answered = None;
        let mut progress = ParseProgress::default();
        for chunk in stream.chunks(piece) {
            buffer.extend_from_slice(chunk);
            assert!(buffer.len() < site.limits.head + piece);
            if let Step::Answer { response, .. } =
                site.serve_resumed(&buffer, &mut progress, &mut pages)
            {
                answered = Some(response);
                break;
            }
        }
        let response = answered.expect("refused before the end");
        assert_eq!(response.status(), Status::HeaderFieldsTooLarge);
        assert!(response.closes());
    }
    // The same for a request line that never ends: 414.
    let endless = vec![b'a'; 100_000];
    let mut line = b"GET /".to_vec();
    line.extend_from_slice(&endless);
    let (out, closed) = converse(&site, &line[..Limits::DEFAULT.request_line + 2]);
    assert!(closed && out.starts_with("HTTP/1.1 414"));
    let (out, closed) = converse(&site, &line[..Limits::DEFAULT.request_line + 1]);
    assert!(!closed && out.is_empty(), "the line may still end in CR LF");
}

/// Leading blank lines count toward the head's bound, not the request line's: a short
/// request line after them that passes the head's bound is a 431, and only a request
/// line longer than its own bound a 414, whatever follows in the buffer.
#[test]
fn blank_lines_before_the_request_line_count_toward_the_head_alone() {
    let limits = Limits {
        request_line: 50,
        head: 100,
        ..Limits::DEFAULT
    };
    let site = Site::new(site().files, limits);
    let blank_lines = "\r\n".repeat(45);
    let stream = format!(
        "{blank_lines}GET /digits.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /digits.txt HTTP/1.1\r\n\
         Host: x\r\n\r\n"
    );
    let (out, closed) = converse(&site, stream.as_bytes());
    assert!(closed && out.starts_with("HTTP/1.1 431 "), "{out}");
    let long_line = format!("{}GET /{} HTTP/1.1\r\n", "\r\n".repeat(10), "a".repeat(60));
    let (out, closed) = converse(&site, long_line.as_bytes());
    assert!(closed && out.starts_with("HTTP/1.1 414 "), "{out}");
}

/// Valid requests the fuzzer mutates.
const SEEDS: [&[u8]; 6] = [
    b"GET /index.html HTTP/1.1\r\nHost: x\r\nRange: bytes=1-3\r\n\r\n",
    b"HEAD /digits.txt HTTP/1.0\r\nConnection: keep-alive\r\nIf-None-Match: W/\"a\", *\r\n\r\n",
    b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    b"GET http://x/%41pp.js?q HTTP/1.1\nHost: x\nIf-Range: \"x\"\nRange: bytes=-4\n\n",
    b"\r\nGET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n0\r\nT: v\r\n\r\n",
];

/// Checks the engine's promises on one input: no panic, progress or a clear need for
/// more bytes, consistent lengths.
fn check_promises(site: &Site, input: &[u8]) {
    let mut rest = input;
    let mut answers = 0;
    loop {
        match site.serve(rest, &mut pages) {
            Step::NeedMore | Step::Continue => {
                assert!(
                    rest.len() < site.limits.buffer_bound(),
                    "needs more past the bound"
                );
                return;
            }
            Step::Answer { response, consumed } => {
                assert!(
                    consumed > 0 && consumed <= rest.len(),
                    "progress within the buffer"
                );
                let head = response.head();
                assert!(head.ends_with(b"\r\n\r\n") && head.len() < 512);
                let body_len = response.body().bytes().len();
                assert!(body_len <= 64, "only the small test files");
                if response.closes() {
                    return;
                }
                rest = &rest[consumed..];
                answers += 1;
                assert!(answers <= input.len(), "every answer consumes bytes");
            }
        }
    }
}

#[test]
fn fuzzed_input_never_panics_and_always_progresses_or_waits() {
    let site = site();
    let mut random = Random(0x5eed);
    for _ in 0..20_000 {
        let len = random.below(300);
        check_promises(&site, &random.bytes(len));
    }
    let alphabet = b"GETHAD /:\r\n-=,*\"%0123456789bytesW/";
    for _ in 0..100_000 {
        let mut input = Vec::new();
        for _ in 0..1 + random.below(3) {
            input.extend_from_slice(SEEDS[random.below(SEEDS.len())]);
        }
        for _ in 0..1 + random.below(4) {
            let at = random.below(input.len() + 1);
            match random.below(4) {
                0 if at < input.len() => {
                    input.remove(at);
                }
                1 => input.insert(at, alphabet[random.below(alphabet.len())]),
                2 if at < input.len() => input[at] = random.next() as u8,
                _ => input.truncate(at),
            }
        }
        check_promises(&site, &input);
        // Fed a byte at a time, resuming the parse, it gets the same answers.
        let cuts = Vec::from_iter(1..input.len());
        assert_eq!(
            fed_in_pieces(&site, &input, &cuts),
            fed_in_pieces(&site, &input, &[]),
            "{input:?}"
        );
    }
}

/// Valid requests the resumed-parse check mutates beside [`SEEDS`]: a GET with a
/// Content-Length body and one waiting for `100 Continue`.
const BODY_SEEDS: [&[u8]; 2] = [
    b"GET /digits.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    b"GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody",
];

/// One or two of the seed requests (a pipelined pair), then up to three mutations of
/// them: a byte changed, a CR, LF, space, colon or NUL put in, a byte taken out, or the
/// stream cut short.
fn mutated_requests(random: &mut Random) -> Vec<u8> {
    let seeds: Vec<&[u8]> = SEEDS.iter().chain(&BODY_SEEDS).copied().collect();
    let mut stream = Vec::new();
    for _ in 0..1 + random.below(2) {
        stream.extend_from_slice(seeds[random.below(seeds.len())]);
    }
    for _ in 0..random.below(4) {
        let at = random.below(stream.len() + 1);
        match random.below(4) {
            0 if at < stream.len() => stream[at] ^= 1 << random.below(8),
            1 => stream.insert(at, b"\r\n :\0"[random.below(5)]),
            2 if at < stream.len() => {
                stream.remove(at);
            }
            _ => stream.truncate(at),
        }
    }
    stream
}

/// Whether `parsed` is an answer for good: a request or a refusal.
fn is_final(parsed: &Parsed) -> bool {
    matches!(parsed, Parsed::Request { .. } | Parsed::Invalid { .. })
}

/// The resumed parse is the fresh parse (seed 0x7e50_ed5e): the seed requests and
/// mutations of them, under small random limits, some padded past their buffer bound,
/// arrive cut at random points into a connection's buffer, which drops each request's
/// bytes once answered. After every arrival `parse_resumed`, given the progress of the
/// calls before, answers as `parse` on the same buffer does, `consumed` within it; a
/// final answer (a request or a refusal) is the one `parse` gives on the rest of the
/// whole stream, and leaves the progress at its default; and a buffer of
/// [`Limits::buffer_bound`] bytes or more is never answered `Incomplete` (nor
/// `ContinueExpected`).
#[test]
fn a_resumed_parse_answers_as_a_fresh_parse_of_the_same_bytes() {
    let mut random = Random(0x7e50_ed5e);
    let (mut requests, mut refusals, mut at_bound) = (0, 0, 0);
    for case in 0..50_000 {
        let mut limits = Limits {
            request_line: 16 + random.below(64),
            head: 40 + random.below(120),
            body: random.below(64),
        };
        let mut stream = mutated_requests(&mut random);
        if random.below(4) == 0 {
            // Half the time a body about as long as the limit in front, often after a
            // head as long as its limit, so that the buffer waits for the body up to the
            // bound; then bytes up to past the bound.
            if random.below(2) == 0 {
                let len = (limits.body + 2).saturating_sub(random.below(4));
                let (field, body) = match random.below(2) {
                    0 => (format!("Content-Length: {len}"), String::new()),
                    _ => ("Transfer-Encoding: chunked".into(), format!("{len:x}\r\n")),
                };
                let head = format!("POST / HTTP/1.1\r\nHost: x\r\n{field}\r\n\r\n");
                if random.below(2) == 0 {
                    limits.head = head.len();
                }
                stream.splice(0..0, (head + &body).into_bytes());
            }
            let filler = b"GET / HTTP/1.1\r\nX: aaaa\r\n";
            while stream.len() <= limits.buffer_bound() {
                stream.push(filler[random.below(filler.len())]);
            }
        }
        let keep = 1 + random.below(16);
        let cut_here = |_: &usize| random.below(keep) == 0;
        let cuts: Vec<usize> = (1..stream.len()).filter(cut_here).collect();
        let (mut buffer, mut progress) = (Vec::new(), ParseProgress::default());
        // Where the buffer's front is in the stream, and the last front whose request
        // was parsed cut at the bound.
        let (mut front, mut bound_checked) = (0, None);
        'arrivals: for end in cuts.into_iter().chain([stream.len()]) {
            buffer.extend_from_slice(&stream[front + buffer.len()..end]);
            loop {
                let resumed = parse_resumed(&buffer, &limits, &mut progress);
                let context = || {
                    format!(
                        "case {case}, {limits:?}, \"{}\" to {end}",
                        stream.escape_ascii()
                    )
                };
                assert_eq!(resumed, parse(&buffer, &limits), "{}", context());
                let whole = &stream[front..];
                if buffer.len() >= limits.buffer_bound() {
                    assert!(
                        is_final(&resumed),
                        "{resumed:?} past the bound: {}",
                        context()
                    );
                }
                if bound_checked != Some(front)
                    && let Some(bounded) = whole.get(..limits.buffer_bound())
                {
                    let parsed = parse(bounded, &limits);
                    assert!(is_final(&parsed), "{parsed:?} at the bound: {}", context());
                    at_bound += 1;
                }
                bound_checked = Some(front);
                if !is_final(&resumed) {
                    break;
                }
                assert_eq!(resumed, parse(whole, &limits), "{}", context());
                assert_eq!(progress, ParseProgress::default(), "{}", context());
                let Parsed::Request { consumed, .. } = resumed else {
                    refusals += 1;
                    break 'arrivals;
                };
                assert!((1..=buffer.len()).contains(&consumed), "{}", context());
                requests += 1;
                buffer.drain(..consumed);
                front += consumed;
            }
        }
    }
    assert!(
        requests > 10_000 && refusals > 10_000 && at_bound > 10_000,
        "{requests} requests, {refusals} refusals, {at_bound} answers at the bound"
    );
}

#[test]
fn the_path_of_an_absolute_target_starts_after_the_authority_not_in_its_query() {
    let path_of = |target: &str| {
        let head = format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n");
        match parse(head.as_bytes(), &Limits::default()) {
            Parsed::Request { request, .. } => String::from_utf8(request.path.to_vec()).unwrap(),
            other => panic!("{target}: {other:?}"),
        }
    };
    for (target, path) in [
        ("http://h?/about.html", "/"),
        ("http://h#/x", "/"),
        ("http://h", "/"),
        ("http://h/a?b=/c", "/a"),
        ("http://h/a#b/c", "/a"),
        ("HTTPS://h:8080/a/b?c", "/a/b"),
        ("/a?b=/c", "/a"),
    ] {
        assert_eq!(path_of(target), path, "{target}");
    }
    // Served as such: the query names no file, the index is answered.
    assert_eq!(
        answer("HEAD http://x?/digits.txt HTTP/1.1\r\nHost: x\r\n\r\n"),
        answer("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    );
}

/// An absolute-form target must name a host (RFC 9110 4.2.1: an http URI with an empty
/// one is refused) and no userinfo (4.2.4); a host with a port, an IPv6 literal and an
/// empty port are served.
#[test]
fn an_absolute_target_without_a_host_or_with_userinfo_is_refused() {
    for target in [
        "http:///digits.txt",
        "http://:80/digits.txt",
        "https://?x",
        "http://user@x/digits.txt",
        "http://user:secret@x/digits.txt",
        "http://x\\y/digits.txt",
    ] {
        assert_get_refused(target);
    }
    for target in [
        "http://x/digits.txt",
        "http://x:8080/digits.txt",
        "http://x:/digits.txt",
        "http://[::1]/digits.txt",
        "http://[::1]:80/digits.txt",
        "http://10.0.2.15/digits.txt",
    ] {
        let out = answer(&format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(
            out.starts_with("HTTP/1.1 200 OK\r\n") && out.ends_with("0123456789"),
            "{target}: {out}"
        );
    }
}

/// Escapes that could reach past the served names do not: a decoded NUL names no file
/// (404, byte-exact, the connection kept), a `%2f` decodes to a `/` before the dot
/// segments are resolved, so `..%2f` climbs no higher than a `../` would (above the
/// root a 400), and a raw NUL or control byte in the target is a bad request.
#[test]
fn nul_and_encoded_slashes_stay_within_the_served_names() {
    let not_found = "HTTP/1.1 404 Not Found\r\nServer: Rexo\r\n\
                     Content-Type: text/plain; charset=utf-8\r\nContent-Length: 14\r\n\r\n\
                     404 Not Found\n";
    for path in [
        "/%00",
        "/digits.txt%00",
        "/digits.txt%00.html",
        "/%2e%2e%00/digits.txt",
    ] {
        let (out, closed) = converse(
            &site(),
            format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        );
        assert_eq!((out.as_str(), closed), (not_found, false), "{path}");
    }
    let out = answer("GET /x%2f..%2fdigits.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(out.ends_with("\r\n\r\n0123456789"), "{out}");
    for target in [
        "/x%2f..%2f..%2fdigits.txt",
        "/%2e%2e%2fdigits.txt",
        "/..%2f",
    ] {
        assert_get_refused(target);
    }
    for target in ["/digits.txt\x00", "/\x01", "/a\tb"] {
        assert_get_refused(target);
    }
}

#[test]
fn dot_segments_are_resolved_before_the_lookup() {
    for path in [
        "/x/../app.js",
        "/./app.js",
        "/x/y/../../app.js",
        "/x/%2E%2e/app.js",
        "/x/..%2Fapp.js",
    ] {
        let out = answer(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(
            out.starts_with("HTTP/1.1 200 OK\r\n") && out.ends_with("run()"),
            "{path}: {out}"
        );
    }
    // A final `..` names the directory above, whose index is served.
    let out = answer("GET /x/.. HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(out.ends_with("<h1>Rexo</h1>\n"), "{out}");
    // Above the root names nothing: refused, encoded or not.
    for path in ["/../app.js", "/%2e%2e/app.js", "/x/../../app.js", "/.."] {
        assert_get_refused(path);
    }
    // Dots within a name are no segments.
    assert!(answer("GET /..app.js HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 404"));
}

#[test]
fn unix_times_are_written_as_imf_fixdates() {
    for (unix_s, date) in [
        (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
        (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
        (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
        (4_102_444_799, "Thu, 31 Dec 2099 23:59:59 GMT"),
    ] {
        assert_eq!(&imf_fixdate(unix_s), date.as_bytes(), "{unix_s}");
    }
}

/// The lengths of `pieces` (httpd's tests check their bytes on the wire).
fn lengths(pieces: &[rexo_tcp::Piece]) -> Vec<usize> {
    pieces.iter().map(|p| p.len()).collect()
}

#[test]
fn dated_answers_carry_the_date_field_before_their_blank_line() {
    let site = site();
    let answer = |request: &[u8]| match site.serve(request, &mut pages) {
        Step::Answer { response, .. } => response,
        Step::NeedMore | Step::Continue => panic!("no answer"),
    };
    let mut date = DateField::new(784_111_777);
    let line = b"Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n";
    assert_eq!(date.line().bytes(), line);
    // A file: its prebuilt head's fields, the shared date line, the file's bytes.
    let plain = answer(b"GET /digits.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    let dated = plain.clone().dated(&date);
    let fields = &plain.head()[..plain.head().len() - 2];
    let expected = [fields, line, b"0123456789"].concat();
    assert_eq!(
        [dated.head_parts().concat(), b"0123456789".to_vec()].concat(),
        expected
    );
    assert_eq!(
        lengths(&dated.into_pieces()),
        [fields.len(), line.len(), 10]
    );
    // The file's head is queued in front of the date line, which is shared, not copied.
    let dated = plain.clone().dated(&date);
    let pieces = dated.into_pieces();
    assert_eq!(Arc::strong_count(date.line()), 2);
    drop(pieces);
    // A built head (an error) takes the line in; so does a status page.
    for request in [
        &b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let plain = answer(request);
        let (head, body) = (plain.head().len(), plain.body().bytes().len());
        let dated = plain.dated(&date);
        let parts = dated.head_parts();
        assert_eq!(parts[0].len(), head - 2);
        assert_eq!(parts[1], line);
        assert_eq!(lengths(&dated.into_pieces()), [head - 2 + line.len(), body]);
    }
    // The interim answer goes without, and undated answers are as built.
    let interim = Response::interim_continue().dated(&date);
    assert_eq!(
        interim.head_parts(),
        [b"HTTP/1.1 100 Continue\r\n\r\n", &b""[..]]
    );
    assert_eq!(lengths(&interim.into_pieces()), [25]);
    let plain = answer(b"GET /digits.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(plain.head_parts(), [plain.head(), &b""[..]]);
    // Formatted once per second.
    let first = date.line().clone();
    date.set(784_111_777);
    assert!(Arc::ptr_eq(&first, date.line()));
    date.set(784_111_778);
    assert_eq!(
        date.line().bytes(),
        b"Date: Sun, 06 Nov 1994 08:49:38 GMT\r\n\r\n"
    );
}

#[test]
fn sent_len_counts_the_head_as_sent_and_the_body() {
    let site = site();
    let Step::Answer { response, .. } =
        site.serve(b"GET /digits.txt HTTP/1.1\r\nHost: x\r\n\r\n", &mut pages)
    else {
        panic!("no answer");
    };
    assert_eq!(response.head_len(), response.head().len());
    assert_eq!(response.sent_len(), response.head().len() + 10);
    let date = DateField::new(784_111_777);
    let dated = response.clone().dated(&date);
    let head = dated.head_parts().concat().len();
    assert_eq!(dated.head_len(), head);
    assert_eq!(
        dated.head_len(),
        response.head().len() - 2 + date.line().bytes().len()
    );
    assert_eq!(dated.sent_len(), head + 10);
}
