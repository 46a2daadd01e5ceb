"""Python's http.client against Rexo's httpd: the second independent client of the
`net::httpd` cases (xtask/src/httpclient.rs runs it; the first is our own).

Usage: python3 httpd_check.py PORT OUTDIR PATH...

GETs every PATH on one keep-alive connection and writes each body to OUTDIR/N (N is the
path's position) for the caller to compare byte for byte; then If-None-Match (304),
a Range (206, body to OUTDIR/range), HEAD, 404, 405 and a 100 KB header (431) on fresh
connections, and a client that hangs up mid-body of the first path followed by one
that is still served. Prints one line of what passed; on the first failure prints
`FAIL` and the reason and exits with status 1.
"""

import http.client
import os
import sys


def fail(reason):
    print("FAIL " + reason)
    sys.exit(1)


def connect(port):
    return http.client.HTTPConnection("127.0.0.1", port, timeout=60)


def main():
    port = int(sys.argv[1])
    out = sys.argv[2]
    paths = sys.argv[3:]
    keep = connect(port)
    sock = None
    etags = {}
    for index, path in enumerate(paths):
        keep.request("GET", path)
        answer = keep.getresponse()
        body = answer.read()
        if answer.status != 200:
            fail("GET %s: status %d" % (path, answer.status))
        if int(answer.getheader("Content-Length", "-1")) != len(body):
            fail("GET %s: Content-Length %s, %d bytes read"
                 % (path, answer.getheader("Content-Length"), len(body)))
        etags[path] = answer.getheader("ETag")
        with open(os.path.join(out, str(index)), "wb") as f:
            f.write(body)
        if sock is None:
            sock = keep.sock
        elif keep.sock is not sock:
            fail("GET %s: the connection was not kept alive" % path)

    first = paths[0]
    keep.request("GET", first, headers={"If-None-Match": etags[first]})
    answer = keep.getresponse()
    if answer.status != 304 or answer.read() != b"":
        fail("If-None-Match on %s: status %d" % (first, answer.status))

    keep.request("GET", "/1k.txt", headers={"Range": "bytes=100-199"})
    answer = keep.getresponse()
    body = answer.read()
    if answer.status != 206 or answer.getheader("Content-Range") != "bytes 100-199/1024":
        fail("Range: status %d, Content-Range %s"
             % (answer.status, answer.getheader("Content-Range")))
    with open(os.path.join(out, "range"), "wb") as f:
        f.write(body)

    keep.request("HEAD", "/1k.txt")
    answer = keep.getresponse()
    if answer.status != 200 or answer.getheader("Content-Length") != "1024" \
            or answer.read() != b"":
        fail("HEAD /1k.txt: status %d" % answer.status)
    if keep.sock is not sock:
        fail("the connection was not kept alive through 304, 206 and HEAD")
    keep.close()

    for method, path, headers, status in [
        ("GET", "/no/such/file", {}, 404),
        ("DELETE", "/1k.txt", {}, 405),
        ("GET", "/1k.txt", {"X-Padding": "a" * 100000}, 431),
    ]:
        conn = connect(port)
        try:
            conn.request(method, path, headers=headers)
            answer = conn.getresponse()
            answer.read()
        except (ConnectionError, http.client.HTTPException) as error:
            fail("%s %s: %r" % (method, path, error))
        if answer.status != status:
            fail("%s %s: status %d, not %d" % (method, path, answer.status, status))
        conn.close()

    gone = connect(port)
    gone.request("GET", first)
    answer = gone.getresponse()
    answer.read(65536)
    gone.sock.close()
    gone.close()
    after = connect(port)
    after.request("GET", "/1k.txt")
    answer = after.getresponse()
    if answer.status != 200 or len(answer.read()) != 1024:
        fail("GET /1k.txt after a client hung up mid-body: status %d" % answer.status)
    after.close()

    print("%d files on one keep-alive connection, 304, 206, HEAD, 404, 405, 431, "
          "a client gone mid-body" % len(paths))


main()
