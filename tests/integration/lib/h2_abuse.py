#!/usr/bin/python3
"""HTTP/2 abuse cases written frame by frame (hyperframe + hpack, no validation).

Usage: h2_abuse.py HOST PORT CASE [ARG]
Prints one JSON object: what the server answered before it closed or went quiet:
  goaway: {error_code, last_stream_id} or null
  resets: {stream_id: error_code}
  statuses: {stream_id: status}
  closed: whether the server closed the connection
Run with Debian's python3 (/usr/bin/python3), which has python3-h2.
"""
import json
import socket
import sys
import time

from hpack import Encoder
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame,
                              PingFrame, RstStreamFrame, SettingsFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
PROTOCOL_ERROR, CANCEL = 0x1, 0x8


class Conn:
    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=5)
        self.enc = Encoder()
        self.buf = b""
        self.result = {"goaway": None, "resets": {}, "statuses": {}, "closed": False}
        self.sock.sendall(PREFACE + SettingsFrame(0).serialize())

    def send(self, *frames):
        data = b"".join(f.serialize() for f in frames)
        try:
            self.sock.sendall(data)
        except OSError:
            self.result["closed"] = True

    def block(self, fields):
        return self.enc.encode(fields)

    def headers(self, sid, fields, end_stream=True, end_headers=True):
        f = HeadersFrame(sid)
        f.data = self.block(fields)
        if end_stream:
            f.flags.add("END_STREAM")
        if end_headers:
            f.flags.add("END_HEADERS")
        return f

    def read(self, seconds=2.0):
        """Reads frames until the server closes or says nothing for `seconds`."""
        self.sock.settimeout(seconds)
        from hpack import Decoder
        dec = getattr(self, "dec", None) or Decoder()
        self.dec = dec
        while True:
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                return
            except OSError:
                self.result["closed"] = True
                return
            if not chunk:
                self.result["closed"] = True
                return
            self.buf += chunk
            while len(self.buf) >= 9:
                frame, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
                if len(self.buf) < 9 + length:
                    break
                frame.parse_body(memoryview(self.buf[9:9 + length]))
                self.buf = self.buf[9 + length:]
                self.on_frame(frame)

    def on_frame(self, frame):
        if isinstance(frame, GoAwayFrame):
            self.result["goaway"] = {"error_code": frame.error_code,
                                     "last_stream_id": frame.last_stream_id}
        elif isinstance(frame, RstStreamFrame):
            self.result["resets"][str(frame.stream_id)] = frame.error_code
        elif isinstance(frame, HeadersFrame):
            for name, value in self.dec.decode(frame.data):
                if name in (":status", b":status"):
                    self.result["statuses"][str(frame.stream_id)] = int(value)
        elif isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
            ack = SettingsFrame(0)
            ack.flags.add("ACK")
            self.send(ack)


def get(path="/", authority="a.test"):
    return [(":method", "GET"), (":scheme", "http"), (":authority", authority), (":path", path)]


def rapid_reset(c, n):
    frames = []
    for i in range(n):
        sid = 1 + 2 * i
        frames.append(c.headers(sid, get(), end_stream=False))
        frames.append(RstStreamFrame(sid, error_code=CANCEL))
    c.send(*frames)


def continuation_flood(c, n):
    first = HeadersFrame(1)
    first.data = c.block(get())
    first.flags.add("END_STREAM")
    frames = [first]
    for _ in range(n):
        cont = ContinuationFrame(1)
        cont.data = c.block([("x-pad", "a" * 16)])
        frames.append(cont)
    c.send(*frames)


def ping_flood(c, n):
    c.send(*[PingFrame(0, opaque_data=i.to_bytes(8, "big")) for i in range(n)])


def settings_flood(c, n):
    c.send(*[SettingsFrame(0) for _ in range(n)])


def big_headers(c, n, authority):
    c.send(c.headers(1, get("/", authority) + [(f"x-field-{i}", "v") for i in range(n)]))


def too_many_streams(c, n, authority):
    post = [(":method", "POST"), (":scheme", "http"), (":authority", authority), (":path", "/")]
    c.send(*[c.headers(1 + 2 * i, post, end_stream=False) for i in range(n)])


def smuggling(c, authority):
    """One malformed request per stream; each should be reset, none forwarded."""
    base = get("/smuggled", authority)
    cases = [
        base + [("Upper-Case", "1")],
        base + [("connection", "keep-alive")],
        base + [("transfer-encoding", "chunked")],
        base + [(":path", "/again")],
        [(":method", "GET"), (":scheme", "http"), (":authority", authority), ("x", "1"),
         (":path", "/late-pseudo")],
        get("/with space", authority),
        [(":method", "GET"), (":scheme", "http"), (":authority", authority)],
    ]
    sid = 1
    for fields in cases:
        c.send(c.headers(sid, fields))
        sid += 2
    # content-length disagreeing with DATA
    post = [(":method", "POST"), (":scheme", "http"), (":authority", authority),
            (":path", "/cl"), ("content-length", "10")]
    data = DataFrame(sid, data=b"short")
    data.flags.add("END_STREAM")
    c.send(c.headers(sid, post, end_stream=False), data)
    return sid


def main():
    host, port, case = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    arg = sys.argv[4] if len(sys.argv) > 4 else ""
    c = Conn(host, port)
    c.read(0.3)  # the server's SETTINGS
    if case == "rapid_reset":
        rapid_reset(c, int(arg or 200))
    elif case == "continuation_flood":
        continuation_flood(c, int(arg or 50))
    elif case == "ping_flood":
        ping_flood(c, int(arg or 2000))
    elif case == "settings_flood":
        settings_flood(c, int(arg or 2000))
    elif case == "big_headers":
        big_headers(c, 300, arg)
    elif case == "too_many_streams":
        too_many_streams(c, 8, arg)
    elif case == "smuggling":
        smuggling(c, arg)
    else:
        raise SystemExit(f"unknown case {case}")
    c.read(2.0)
    print(json.dumps(c.result))


if __name__ == "__main__":
    main()
