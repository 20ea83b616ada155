#!/usr/bin/env python3
"""A real server's UDP service for the test network: answers every datagram with
"<name> <local address> <payload>" on IPv4 and IPv6. Usage: udp_responder.py NAME PORT"""
import selectors
import socket
import sys

name, port = sys.argv[1], int(sys.argv[2])
sel = selectors.DefaultSelector()
for family, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
    s = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, port))
    sel.register(s, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        sock = key.fileobj
        data, peer = sock.recvfrom(2048)
        local = sock.getsockname()[0]
        sock.sendto(b"%s %s %s" % (name.encode(), local.encode(), data), peer)
