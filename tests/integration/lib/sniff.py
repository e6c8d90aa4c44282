#!/usr/bin/python3
"""Prints one line per frame seen on an interface (either direction) whose IP source
is in one of the given prefixes, until stdin closes:

  sniff.py --iface eth0 [--from 10.10.1.0/24 fd00:10:1::/64]
  READY
  FRAME <src> <dst> <ip proto> <frame length> <mark>

mark is the IPv4 ID or the IPv6 flow label (packets.py numbers each kind of frame with it).

Run in the server namespace, it shows exactly what got through the gateway, before
the server's stack looks at it (a plain AF_PACKET socket; VLAN tags are skipped).
Standard library only, so it starts fast.
"""

import argparse
import ipaddress
import select
import socket
import struct
import sys

ETH_P_ALL = 0x0003


def source_and_dest(frame):
    """(src, dst, proto, mark) of an IPv4/IPv6 frame, or None."""
    at, ethertype = 12, None
    while at + 2 <= len(frame):
        ethertype = struct.unpack_from("!H", frame, at)[0]
        at += 2
        if ethertype not in (0x8100, 0x88A8):
            break
        at += 2
    if ethertype == 0x0800 and len(frame) >= at + 20:
        return frame[at + 12 : at + 16], frame[at + 16 : at + 20], frame[at + 9], struct.unpack_from("!H", frame, at + 4)[0]
    if ethertype == 0x86DD and len(frame) >= at + 40:
        return frame[at + 8 : at + 24], frame[at + 24 : at + 40], frame[at + 6], struct.unpack_from("!I", frame, at)[0] & 0xFFFFF
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iface", required=True)
    ap.add_argument("--from", dest="from_nets", nargs="+", default=["10.10.1.0/24", "fd00:10:1::/64"])
    args = ap.parse_args()
    nets = [ipaddress.ip_network(n) for n in args.from_nets]
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)) as s:
        s.bind((args.iface, 0))
        print("READY", flush=True)
        while True:
            ready, _, _ = select.select([s, sys.stdin], [], [])
            if sys.stdin in ready and not sys.stdin.buffer.read1(4096):
                return
            if s not in ready:
                continue
            frame = s.recv(65536)
            parsed = source_and_dest(frame)
            if parsed is None:
                continue
            src, dst = ipaddress.ip_address(parsed[0]), ipaddress.ip_address(parsed[1])
            if any(src in n for n in nets):
                print(f"FRAME {src} {dst} {parsed[2]} {len(frame)} {parsed[3]}", flush=True)


if __name__ == "__main__":
    main()
