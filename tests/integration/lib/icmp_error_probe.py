#!/usr/bin/python3
"""Two DNS queries on one UDP socket with an ICMP error about the first answer between
them, to run in a client's network namespace.

usage: icmp_error_probe.py SERVER KIND

KIND is `frag-needed` (ICMPv4 type 3 code 4, next-hop MTU 1400) or `packet-too-big`
(ICMPv6 type 2, MTU 1280): what a router on the client's side sends when a reply was too
large for its link. The error is addressed to SERVER and quotes a datagram from SERVER:53
to this socket's port, as the client's side would for the answer it got. Prints
`answer N from IP:PORT` per answer and `sent KIND` once the error is out.
"""
import socket
import struct
import sys
import time


def query(ident, name):
    q = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack("!HH", 1, 1)


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def quoted_v4(src, dst, sport, dport):
    udp = struct.pack("!HHHH", sport, dport, 8 + 32, 0) + b"\xab" * 32
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0x4242, 0, 64, 17, 0,
                       socket.inet_aton(src), socket.inet_aton(dst))
    head = head[:10] + struct.pack("!H", checksum(head)) + head[12:]
    return head + udp


def quoted_v6(src, dst, sport, dport):
    udp = struct.pack("!HHHH", sport, dport, 8 + 32, 0) + b"\xab" * 32
    head = struct.pack("!IHBB16s16s", 0x60000000, len(udp), 17, 64,
                       socket.inet_pton(socket.AF_INET6, src),
                       socket.inet_pton(socket.AF_INET6, dst))
    return head + udp


def main():
    server, kind = sys.argv[1], sys.argv[2]
    v6 = ":" in server
    family = socket.AF_INET6 if v6 else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.connect((server, 53))
    local = s.getsockname()
    s.send(query(0x1111, "first.esc.test"))
    data, peer = s.recvfrom(512)
    print("answer 1 from %s:%d" % (peer[0], peer[1]), flush=True)

    if kind == "frag-needed":
        body = quoted_v4(server, local[0], 53, local[1])
        msg = struct.pack("!BBHHH", 3, 4, 0, 0, 1400) + body
        msg = msg[:2] + struct.pack("!H", checksum(msg)) + msg[4:]
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    elif kind == "packet-too-big":
        body = quoted_v6(server, local[0], 53, local[1])
        msg = struct.pack("!BBHI", 2, 0, 0, 1280) + body  # the kernel fills the checksum
        raw = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    else:
        sys.exit("unknown KIND " + kind)
    raw.sendto(msg, (server, 0))
    print("sent " + kind, flush=True)
    time.sleep(0.5)

    s.send(query(0x2222, "second.esc.test"))
    data, peer = s.recvfrom(512)
    print("answer 2 from %s:%d" % (peer[0], peer[1]), flush=True)


main()
