#!/usr/bin/python3
"""Malformed (and merely unusual) frames for the datapath tests, crafted with scapy.

Run inside the client namespace; every frame goes out of --iface addressed to the
gateway (--dst-mac) and, where it has an IP header, to the server address, so a
frame the gateway wrongly let through would reach the server:

  packets.py list                        the catalogue as JSON: {kind: {expect, doc}}
  packets.py send --iface eth0 --src-mac M --dst-mac M [--count N] KIND...
                                         sends N frames of each KIND; prints JSON
                                         {kind: {frames, bytes, expect, mark}}; mark is
                                         the kind's IPv4 ID / IPv6 flow label

lib/sniff.py is the other half: run in the server namespace, it shows what got through.

`expect` is the datapath stat (bpf/include/ramjet/abi/stats.h) the frame must be
counted under when the gateway's XDP program sees it with a fast-path verdict.

Frames are built with scapy and then cut or patched as bytes (scapy would
"fix" lengths and checksums otherwise), and sent through a plain AF_PACKET
socket, so what is built is exactly what goes on the wire. Frames shorter than
an Ethernet header cannot be sent (the kernel pads them to 14 bytes).

Needs python3-scapy (Debian); run it with /usr/bin/python3.
"""

import argparse
import json
import socket
import struct
import sys

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

MARK = b"RAMJET-MALFORMED"


def ip4_checksum(header):
    """RFC 791 header checksum of `header` (its checksum field taken as zero)."""
    h = bytearray(header)
    h[10:12] = b"\x00\x00"
    if len(h) % 2:
        h += b"\x00"
    total = sum(struct.unpack("!%dH" % (len(h) // 2), h))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def fix_ip4(frame, l3=14):
    """Recomputes the IPv4 header checksum after a patch, over the header bytes present,
    so that the one defect a frame is about is its only one."""
    f = bytearray(frame)
    ihl = (f[l3] & 0x0F) * 4
    end = min(len(f), l3 + max(ihl, 20))
    struct.pack_into("!H", f, l3 + 10, ip4_checksum(f[l3:end]))
    return bytes(f)


class Frames:
    """Builds the frames of each kind for one source/destination pair."""

    def __init__(self, args):
        self.a = args
        # Carried in the IPv4 ID / IPv6 flow label, so that a sniffer behind the
        # gateway can tell which kind a frame that got through was.
        self.mark = 0

    def eth(self, ethertype=None):
        if ethertype is None:
            return Ether(src=self.a.src_mac, dst=self.a.dst_mac)
        return Ether(src=self.a.src_mac, dst=self.a.dst_mac, type=ethertype)

    def ip4(self, **kw):
        return IP(src=self.a.src, dst=self.a.dst, ttl=kw.pop("ttl", 64), id=self.mark, **kw)

    def ip6(self, **kw):
        return IPv6(src=self.a.src6, dst=self.a.dst6, hlim=kw.pop("hlim", 64), fl=self.mark, **kw)

    def syn(self):
        return TCP(sport=self.a.sport, dport=self.a.dport, flags="S", seq=1)

    def v4_tcp(self):
        return bytes(self.eth() / self.ip4() / self.syn() / Raw(MARK))

    def v6_tcp(self):
        return bytes(self.eth() / self.ip6() / self.syn() / Raw(MARK))

    # ---------------------------------------------------------------- IPv4

    def ipv4_truncated_header(self):
        """12 of the 20 bytes of an IPv4 header."""
        return self.v4_tcp()[: 14 + 12]

    def ipv4_bad_version(self):
        """EtherType IPv4, version field 5."""
        f = bytearray(self.v4_tcp())
        f[14] = (5 << 4) | (f[14] & 0x0F)
        return fix_ip4(f)

    def ipv4_bad_ihl(self):
        """IHL 3 (12 bytes), less than the minimum 5."""
        f = bytearray(self.v4_tcp())
        f[14] = 0x43
        return fix_ip4(f)

    def ipv4_options_truncated(self):
        """IHL 15 (60-byte header with options) in a frame that ends after 40 bytes of IP."""
        f = bytearray(self.v4_tcp()[: 14 + 40])
        f[14] = 0x4F
        struct.pack_into("!H", f, 14 + 2, 40)
        return fix_ip4(f)

    def ipv4_total_length_short(self):
        """Total length 12, shorter than the header itself."""
        f = bytearray(self.v4_tcp())
        struct.pack_into("!H", f, 14 + 2, 12)
        return fix_ip4(f)

    def ipv4_total_length_long(self):
        """Total length 1400 in a frame carrying 56 bytes of IP."""
        f = bytearray(self.v4_tcp())
        struct.pack_into("!H", f, 14 + 2, 1400)
        return fix_ip4(f)

    def tcp_truncated(self):
        """IPv4 + 10 bytes of a TCP header (total length consistent with the frame)."""
        f = bytearray(self.v4_tcp()[: 14 + 20 + 10])
        struct.pack_into("!H", f, 14 + 2, 30)
        return fix_ip4(f)

    def tcp_bad_data_offset(self):
        """TCP data offset 2 (8 bytes), less than the minimum 5."""
        f = bytearray(self.v4_tcp())
        f[14 + 20 + 12] = (2 << 4) | (f[14 + 20 + 12] & 0x0F)
        return fix_ip4(f)

    def udp_truncated(self):
        """IPv4 + 4 bytes of a UDP header."""
        full = bytes(self.eth() / self.ip4() / UDP(sport=self.a.sport, dport=self.a.dport) / Raw(MARK))
        f = bytearray(full[: 14 + 20 + 4])
        struct.pack_into("!H", f, 14 + 2, 24)
        return fix_ip4(f)

    def ipv4_fragment_first(self):
        """First fragment (MF set, offset 0) of a UDP datagram."""
        return bytes(self.eth() / self.ip4(flags="MF", frag=0) / UDP(sport=self.a.sport, dport=self.a.dport) / Raw(MARK * 4))

    def ipv4_fragment_later(self):
        """A non-first fragment (offset 64 bytes, no L4 header)."""
        return bytes(self.eth() / self.ip4(flags=0, frag=8, proto=17) / Raw(MARK * 2))

    def ipv4_ttl_expired(self):
        """A well-formed SYN with TTL 1: the gateway may not forward it (the stack answers with ICMP)."""
        return bytes(self.eth() / self.ip4(ttl=1) / self.syn() / Raw(MARK))

    # ---------------------------------------------------------------- IPv6

    def ipv6_truncated_header(self):
        """30 of the 40 bytes of an IPv6 header."""
        return self.v6_tcp()[: 14 + 30]

    def ipv6_bad_version(self):
        """EtherType IPv6, version field 4."""
        f = bytearray(self.v6_tcp())
        f[14] = (4 << 4) | (f[14] & 0x0F)
        return bytes(f)

    def ipv6_payload_length_long(self):
        """Payload length 1400 in a frame carrying 36 bytes of payload."""
        f = bytearray(self.v6_tcp())
        struct.pack_into("!H", f, 14 + 4, 1400)
        return bytes(f)

    def tcp6_truncated(self):
        """IPv6 + 12 bytes of a TCP header."""
        f = bytearray(self.v6_tcp()[: 14 + 40 + 12])
        struct.pack_into("!H", f, 14 + 4, 12)
        return bytes(f)

    def ipv6_ext_too_deep(self):
        """Eight destination-options headers before TCP (the parser walks at most 6)."""
        layers = self.ip6()
        for _ in range(8):
            layers = layers / IPv6ExtHdrDestOpt()
        return bytes(self.eth() / layers / self.syn() / Raw(MARK))

    def ipv6_ext_truncated(self):
        """A destination-options header claiming 168 bytes in a 24-byte payload."""
        f = bytearray(bytes(self.eth() / self.ip6() / IPv6ExtHdrDestOpt() / self.syn())[: 14 + 40 + 24])
        struct.pack_into("!H", f, 14 + 4, 24)
        f[14 + 40 + 1] = 20  # Hdr Ext Len: (20 + 1) * 8 = 168 bytes
        return bytes(f)

    def ipv6_fragment(self):
        """First fragment (M flag set) of a UDP datagram."""
        return bytes(self.eth() / self.ip6() / IPv6ExtHdrFragment(m=1, offset=0, id=4242) / UDP(sport=self.a.sport, dport=self.a.dport) / Raw(MARK * 4))

    def ipv6_hop_limit_expired(self):
        """A well-formed SYN with hop limit 1."""
        return bytes(self.eth() / self.ip6(hlim=1) / self.syn() / Raw(MARK))

    # ---------------------------------------------------------------- VLAN

    def vlan_truncated(self):
        """EtherType 802.1Q followed by 2 of the 4 tag bytes."""
        return bytes(self.eth(0x8100))[:14] + b"\x00\x0a"

    def vlan_too_deep(self):
        """Three stacked 802.1Q tags (the parser accepts at most 2) around a SYN."""
        return bytes(self.eth() / Dot1Q(vlan=10) / Dot1Q(vlan=20) / Dot1Q(vlan=30) / self.ip4() / self.syn() / Raw(MARK))

    def vlan_tagged(self):
        """One 802.1Q tag (VLAN 10) around a well-formed SYN: valid, but the fast path does not forward tagged frames."""
        return bytes(self.eth() / Dot1Q(vlan=10) / self.ip4() / self.syn() / Raw(MARK))


CATALOGUE = {
    "ipv4_truncated_header": "TRUNCATED_IP",
    "ipv4_bad_version": "BAD_IP_HEADER",
    "ipv4_bad_ihl": "BAD_IP_HEADER",
    "ipv4_options_truncated": "TRUNCATED_IP",
    "ipv4_total_length_short": "BAD_IP_HEADER",
    "ipv4_total_length_long": "TRUNCATED_IP",
    "tcp_truncated": "TRUNCATED_L4",
    "tcp_bad_data_offset": "BAD_L4_HEADER",
    "udp_truncated": "TRUNCATED_L4",
    "ipv4_fragment_first": "FRAGMENT",
    "ipv4_fragment_later": "FRAGMENT",
    "ipv4_ttl_expired": "FIB_TTL_EXPIRED",
    "ipv6_truncated_header": "TRUNCATED_IP",
    "ipv6_bad_version": "BAD_IP_HEADER",
    "ipv6_payload_length_long": "TRUNCATED_IP",
    "tcp6_truncated": "TRUNCATED_L4",
    "ipv6_ext_too_deep": "IPV6_EXT_TOO_DEEP",
    "ipv6_ext_truncated": "TRUNCATED_IPV6_EXT",
    "ipv6_fragment": "FRAGMENT",
    "ipv6_hop_limit_expired": "FIB_TTL_EXPIRED",
    "vlan_truncated": "TRUNCATED_VLAN",
    "vlan_too_deep": "VLAN_TOO_DEEP",
    "vlan_tagged": "FASTPATH_VLAN",
}


def catalogue():
    return {kind: {"expect": expect, "doc": getattr(Frames, kind).__doc__} for kind, expect in CATALOGUE.items()}


def send(args):
    frames = Frames(args)
    unknown = [k for k in args.kinds if k not in CATALOGUE]
    if unknown:
        sys.exit(f"unknown kind(s): {', '.join(unknown)}; see `packets.py list`")
    report = {}
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((args.iface, 0))
        for index, kind in enumerate(args.kinds):
            frames.mark = args.mark + index
            frame = getattr(frames, kind)()
            for _ in range(args.count):
                s.send(frame)
            report[kind] = {"frames": args.count, "bytes": len(frame), "expect": CATALOGUE[kind], "mark": frames.mark}
    print(json.dumps(report))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="print the catalogue as JSON")
    sp = sub.add_parser("send", help="send frames of the given kinds")
    sp.add_argument("--iface", required=True)
    sp.add_argument("--src-mac", required=True)
    sp.add_argument("--dst-mac", required=True)
    sp.add_argument("--src", default="10.10.1.2")
    sp.add_argument("--dst", default="10.10.2.2")
    sp.add_argument("--src6", default="fd00:10:1::2")
    sp.add_argument("--dst6", default="fd00:10:2::2")
    sp.add_argument("--sport", type=int, default=40404)
    sp.add_argument("--dport", type=int, default=9)
    sp.add_argument("--count", type=int, default=3)
    sp.add_argument("--mark", type=int, default=1000,
                    help="IPv4 ID / IPv6 flow label of the first kind; +1 for each further kind")
    sp.add_argument("kinds", nargs="+")
    args = ap.parse_args()
    if args.cmd == "list":
        print(json.dumps(catalogue()))
    else:
        send(args)


if __name__ == "__main__":
    main()
