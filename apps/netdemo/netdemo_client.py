#!/usr/bin/env python3
"""Drives the netdemo app from the host through QEMU user networking.

Usage: netdemo_client.py TCP_PORT UDP_PORT [CONNECTIONS (500, as the app)]

Waits for the TCP echo server to answer, then: UDP datagrams of 1..1472 bytes, many
short TCP connections (several at once), and one 10 MiB transfer (the last
connection, so that the app has served exactly CONNECTIONS when it ends). Each echo is
checked byte for byte; prints throughput and round-trip figures and exits non-zero on
the first mismatch.
"""
import random
import socket
import sys
import threading
import time

HOST = "127.0.0.1"


def wait_for_server(port, deadline_s=120.0):
    """The first connection also counts as one served: it sends one byte."""
    start = time.time()
    while time.time() - start < deadline_s:
        try:
            with socket.create_connection((HOST, port), timeout=5) as s:
                s.sendall(b"?")
                if s.recv(1) == b"?":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit("FAILED: the TCP echo server never answered")


def echo_once(port, payload, retries):
    """Echoes one payload. QEMU's user networking listens for forwarded connections
    with a backlog of 1, so under concurrent connects the host kernel resets some
    before QEMU accepts them (they never reach the guest: seen in a filter-dump
    capture); such a connection, reset before any byte came back, is retried."""
    for _ in range(4):
        try:
            return echo_attempt(port, payload)
        except ConnectionResetError as e:
            if e.args and e.args[-1] == "nothing echoed":
                retries.append(1)
                continue
            raise
    raise AssertionError("reset four times before reaching the guest")


def echo_attempt(port, payload):
    got = bytearray()
    with socket.create_connection((HOST, port), timeout=30) as s:
        local = s.getsockname()[1]
        try:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        except ConnectionResetError as e:
            if not got:
                raise ConnectionResetError(local, "nothing echoed") from e
            raise AssertionError(f"{len(payload)} bytes from port {local}: reset after {len(got)}") from e
    if bytes(got) != payload:
        raise AssertionError(f"echo of {len(payload)} bytes came back as {len(got)} bytes, different")


def big_transfer(port, size):
    """Sends and reads at once (the echo would fill the windows otherwise)."""
    rng = random.Random(7)
    payload = rng.randbytes(size)
    got = bytearray()
    with socket.create_connection((HOST, port), timeout=60) as s:
        def reader():
            while True:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                got.extend(chunk)
        t = threading.Thread(target=reader)
        start = time.time()
        t.start()
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        t.join()
        elapsed = time.time() - start
    if bytes(got) != payload:
        raise AssertionError(f"10 MiB echo: {len(got)} bytes back, different")
    return elapsed


def udp_check(port, count=200):
    rng = random.Random(11)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    lost = 0
    rtts = []
    for i in range(count):
        payload = rng.randbytes(1 + (i * 37) % 1472)
        start = time.time()
        s.sendto(payload, (HOST, port))
        try:
            data, _ = s.recvfrom(65536)
        except socket.timeout:
            lost += 1
            continue
        rtts.append(time.time() - start)
        if data != payload:
            raise AssertionError(f"UDP datagram {i} of {len(payload)} bytes came back different")
    rtts.sort()
    return lost, rtts


def main():
    tcp_port, udp_port = int(sys.argv[1]), int(sys.argv[2])
    connections = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    wait_for_server(tcp_port)
    served = 1

    lost, rtts = udp_check(udp_port)
    print(f"udp: {len(rtts)} echoed, {lost} lost; round trip median {rtts[len(rtts)//2]*1e6:.0f} us, "
          f"p99 {rtts[int(len(rtts)*0.99)-1]*1e6:.0f} us")

    small = connections - served - 1
    rng = random.Random(3)
    payloads = [rng.randbytes(rng.randrange(1, 20000)) for _ in range(small)]
    errors = []
    retries = []
    start = time.time()
    # Eight at a time: several connections open together in the stack.
    def worker(chunk):
        for p in chunk:
            try:
                echo_once(tcp_port, p, retries)
            except Exception as e:  # noqa: BLE001 - collected and reported
                errors.append(str(e))
    threads = [threading.Thread(target=worker, args=(payloads[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - start
    if errors:
        sys.exit(f"FAILED: {len(errors)} short connections: {errors[0]}")
    print(f"tcp: {small} connections (8 at a time, 1-20000 bytes each) echoed in {elapsed:.2f} s, "
          f"{small/elapsed:.0f} connections/s; {len(retries)} reset by the host before reaching the guest, retried")

    size = 10 << 20
    elapsed = big_transfer(tcp_port, size)
    print(f"tcp: 10 MiB echoed in {elapsed:.2f} s: {size/elapsed/1e6:.2f} MB/s each way")
    print("ok")


if __name__ == "__main__":
    main()
