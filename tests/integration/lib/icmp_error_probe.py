#!/usr/bin/python3
"""Two DNS queries on one UDP socket with an ICMP error about the first answer between
them, to run in a client's network namespace.

usage: icmp_error_probe.py SERVER KIND

KIND is `frag-needed` (ICMPv4 type 3 code 4, next-hop MTU 1400) or `packet-too-big`
(ICMPv6 type 2, MTU 1280): what a router on the client's side sends when a reply was too
large for its link. The error is addressed to SERVER and quotes a datagram from SERVER:53
to this socket's port, as the client's side would for the answer it got. Prints
`answer N from IP:PORT` per answer and `sent KIND` once the error is out.

Needs python3-scapy (Debian); run it with /usr/bin/python3.
"""
import socket
import struct
import sys
import time

from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import ICMPv6PacketTooBig, IPv6
from scapy.packet import Raw


def query(ident, name):
    q = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack("!HH", 1, 1)


def quoted(src, dst, sport, dport):
    """The datagram the error is about: an answer from SERVER:53 to the client."""
    ip = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
    return ip / UDP(sport=sport, dport=dport) / Raw(b"\xab" * 32)


def main():
    server, kind = sys.argv[1], sys.argv[2]
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.connect((server, 53))
    local = s.getsockname()
    s.send(query(0x1111, "first.esc.test"))
    data, peer = s.recvfrom(512)
    print("answer 1 from %s:%d" % (peer[0], peer[1]), flush=True)

    about = quoted(server, local[0], 53, local[1])
    if kind == "frag-needed":
        msg = bytes(ICMP(type=3, code=4, nexthopmtu=1400) / about)
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    elif kind == "packet-too-big":
        # The kernel computes an ICMPv6 checksum (it needs the pseudo-header) itself.
        msg = bytes(ICMPv6PacketTooBig(mtu=1280) / about)
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
