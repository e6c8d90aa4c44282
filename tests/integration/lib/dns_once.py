#!/usr/bin/python3
"""One DNS query over UDP, then the socket closes: run in a client's namespace.

usage: dns_once.py SERVER NAME

Prints `answer from IP:PORT` for the first answer. With the responder of
dns_responder.py and a NAME starting with `twice.`, the second answer reaches a closed
port, and the client's kernel sends back an ICMP port unreachable about it.
"""
import socket
import struct
import sys

server, name = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
q = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(label)]) + label.encode() for label in name.split("."))
q += b"\0" + struct.pack("!HH", 1, 1)
s.sendto(q, (server, 53))
data, peer = s.recvfrom(512)
print("answer from %s:%d" % (peer[0], peer[1]), flush=True)
s.close()
