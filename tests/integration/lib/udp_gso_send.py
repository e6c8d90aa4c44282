#!/usr/bin/python3
"""Sends datagrams to a UDP server in one write with UDP_SEGMENT (GSO), as QUIC stacks
do, and prints the replies.

usage: udp_gso_send.py HOST PORT SEGMENT TOTAL [REPLIES]

Datagram k of the write is SEGMENT bytes of the letter 'a' + k (the last one shorter
when TOTAL is not a multiple). Prints `sent N` for the N datagrams, then for each of up
to REPLIES replies (2 s at most each) `reply LEN BYTES` with the bytes as ASCII.
"""
import socket
import sys

SOL_UDP, UDP_SEGMENT = 17, 103

host, port, segment, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
replies = int(sys.argv[5]) if len(sys.argv) > 5 else 0
payload = b"".join(bytes([ord("a") + k]) * min(segment, total - off)
                   for k, off in enumerate(range(0, total, segment)))
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(SOL_UDP, UDP_SEGMENT, segment)
s.connect((host, port))
s.send(payload)
print("sent %d" % ((total + segment - 1) // segment), flush=True)
s.settimeout(2)
for _ in range(replies):
    try:
        data = s.recv(65536)
    except socket.timeout:
        break
    print("reply %d %s" % (len(data), data.decode("ascii", "replace")), flush=True)
