#!/usr/bin/env python3
"""Long-lived flows for the active/active test (control/tests/e2e_bgp.rs).

keepalive_flows.py HOST PORT N INTERVAL MAX_SECONDS

Opens N HTTP/1.1 keep-alive connections to HOST:PORT (kernel TCP, one source port each)
and asks each for / every INTERVAL seconds, on the same connection, until its standard
input closes or MAX_SECONDS pass. Prints one JSON line when every connection is open,
{"ready": [local ports]}, and one at the end: per connection its local port, the distinct
bodies it received (nginx in the test network names its real server in the body), the
requests answered, the longest wait for an answer in seconds, and the error that ended
it, if any. A connection that breaks is not reopened: the test wants to see it.
"""

import json
import socket
import sys
import threading
import time


def read_response(sock, buf):
    """One response (head + Content-Length body); returns (body, rest of buf)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed by the peer")
        buf += chunk
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/1.1 200"):
        raise ConnectionError("status: " + lines[0])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(buf) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed mid-body")
        buf += chunk
    return buf[:length].decode("latin-1"), buf[length:]


def main():
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    interval, max_seconds = float(sys.argv[4]), float(sys.argv[5])
    stop = threading.Event()
    deadline = time.monotonic() + max_seconds
    socks = []
    for _ in range(n):
        s = socket.create_connection((host, port), timeout=3)
        # A lost segment is retransmitted by TCP; a flow that goes nowhere for this long
        # is broken.
        s.settimeout(5)
        socks.append(s)
    results = [
        {"port": s.getsockname()[1], "bodies": [], "answers": 0, "max_wait": 0.0, "error": None}
        for s in socks
    ]

    def run(s, r):
        buf = b""
        request = ("GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: uvs-keepalive\r\n\r\n" % host).encode()
        next_at = time.monotonic()
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                t0 = time.monotonic()
                s.sendall(request)
                body, buf = read_response(s, buf)
                r["max_wait"] = max(r["max_wait"], time.monotonic() - t0)
                r["answers"] += 1
                if body not in r["bodies"]:
                    r["bodies"].append(body)
                next_at += interval
                stop.wait(max(0.0, next_at - time.monotonic()))
        except (OSError, ValueError) as e:
            r["error"] = "%s after %d answers" % (e, r["answers"])
        finally:
            s.close()

    threads = [threading.Thread(target=run, args=(s, r)) for s, r in zip(socks, results)]
    for t in threads:
        t.start()
    print(json.dumps({"ready": [r["port"] for r in results]}), flush=True)

    def watch_stdin():
        sys.stdin.read()
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    for t in threads:
        t.join()
    print(json.dumps({"conns": results}), flush=True)


if __name__ == "__main__":
    main()
