#!/usr/bin/python3
"""A tiny DNS responder over UDP, to run inside a network namespace.

usage: dns_responder.py HOST PORT ANSWER_IPV4

Answers every A query with ANSWER_IPV4 (TTL 60), anything else with NOERROR and no
answers. A name whose first label is `twice` is answered twice, the second time
TWICE_DELAY seconds later: a client that closed its socket after the first answer
makes its kernel send back an ICMP port unreachable for the second.

Prints `listening HOST PORT` once bound and `query NAME TYPE from IP PORT` per query
(flushed), for the test to follow.
"""
import socket
import struct
import sys
import threading

TWICE_DELAY = 0.3
TYPE_A = 1


def parse_question(data):
    """(name, qtype, end offset of the question) of a query, or None."""
    if len(data) < 12:
        return None
    pos, labels = 12, []
    while pos < len(data):
        n = data[pos]
        pos += 1
        if n == 0:
            break
        if n & 0xC0 or pos + n > len(data):
            return None
        labels.append(data[pos:pos + n].decode("ascii", "replace"))
        pos += n
    if pos + 4 > len(data):
        return None
    qtype = struct.unpack("!H", data[pos:pos + 2])[0]
    return ".".join(labels), qtype, pos + 4


def answer(data, qtype, question_end, ipv4):
    ident, flags = struct.unpack("!HH", data[:4])
    rd = flags & 0x0100
    ancount = 1 if qtype == TYPE_A else 0
    header = struct.pack("!HHHHHH", ident, 0x8400 | rd, 1, ancount, 0, 0)  # QR AA
    out = header + data[12:question_end]
    if ancount:
        # The name as a pointer to the question (offset 12).
        out += struct.pack("!HHHIH", 0xC00C, TYPE_A, 1, 60, 4) + socket.inet_aton(ipv4)
    return out


def main():
    host, port, ipv4 = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((host, port))
    print(f"listening {host} {port}", flush=True)
    while True:
        data, peer = s.recvfrom(65535)
        q = parse_question(data)
        if q is None:
            print(f"malformed from {peer[0]} {peer[1]}", flush=True)
            continue
        name, qtype, end = q
        print(f"query {name} {qtype} from {peer[0]} {peer[1]}", flush=True)
        reply = answer(data, qtype, end, ipv4)
        s.sendto(reply, peer)
        if name.split(".")[0] == "twice":
            threading.Timer(TWICE_DELAY, s.sendto, args=(reply, peer)).start()


if __name__ == "__main__":
    main()
