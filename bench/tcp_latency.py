#!/usr/bin/env python3
"""Latency one TCP proxy adds: 64-byte ping-pong over one connection, side by side.

One client connection (TCP_NODELAY) sends 64 bytes and waits for the 64-byte echo,
over and over. Paths, each in the same run, repetitions alternating between them so
a drift of the machine hits all alike:

  direct          client -> echo server
  ramjet-buffer   client -> ramjet TCP endpoint (relay: buffer) -> echo server
  ramjet-splice   client -> ramjet TCP endpoint (relay: splice) -> echo server
  haproxy         client -> haproxy (mode tcp, nbthread 1) -> echo server
  nginx-stream    client -> nginx stream proxy_pass (1 worker) -> echo server

Each proxy is pinned to one core, the client and the echo server to the other. The
client and the echo server are Python: their own cost is in every path, direct
included, so what a proxy adds is its p50 (p99) minus direct's. Reported per path:
p50, p99 and the added p50/p99 in microseconds, and ramjet's added p50 over each peer's.

Usage: bench/tcp_latency.py [--build-dir build/release] [--reps 5] [--pings 4000]
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from benchlib import ECHO_SERVER, LOAD_CPU, Proc, free_port, haproxy, ramjet_tcp, wait_port

NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
PAYLOAD = b"p" * 64

def nginx_stream(workdir, echo_port):
    port = free_port()
    cfg = os.path.join(workdir, "nginx.conf")
    with open(cfg, "w") as f:
        f.write(f"""load_module {NGINX_STREAM_MODULE};
daemon off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log;
events {{ worker_connections 1024; }}
stream {{ server {{ listen 127.0.0.1:{port}; proxy_pass 127.0.0.1:{echo_port}; }} }}
""")
    return Proc("nginx-stream", ["nginx", "-c", cfg, "-p", workdir], port, workdir)


def ping_pong(port, pings):
    """Round-trip times in microseconds of `pings` 64-byte exchanges on one connection."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rtts = []
        for i in range(pings + pings // 10):  # the first tenth warms up and is dropped
            t0 = time.perf_counter_ns()
            s.sendall(PAYLOAD)
            got = 0
            while got < len(PAYLOAD):
                chunk = s.recv(len(PAYLOAD) - got)
                if not chunk:
                    raise RuntimeError(f"port {port}: connection closed mid ping-pong")
                got += len(chunk)
            if i >= pings // 10:
                rtts.append((time.perf_counter_ns() - t0) / 1000)
        return rtts


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="build/release")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--pings", type=int, default=4000)
    args = ap.parse_args()
    for tool in ("haproxy", "nginx", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is not installed (make deps-bench installs it)")
    if not os.path.exists(NGINX_STREAM_MODULE):
        sys.exit("bench: nginx's stream module is missing (make deps-bench installs "
                 "libnginx-mod-stream)")
    # The client runs in this process: pin it beside the echo server.
    os.sched_setaffinity(0, {int(LOAD_CPU)})

    workdir = tempfile.mkdtemp(prefix="ramjet-bench-")
    echo_port = free_port()
    echo = subprocess.Popen(["taskset", "-c", LOAD_CPU, sys.executable, "-u", "-c", ECHO_SERVER,
                             "127.0.0.1", str(echo_port)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    echo.stdout.readline()  # READY
    proxies = [ramjet_tcp(args.build_dir, workdir, echo_port, "buffer"),
               ramjet_tcp(args.build_dir, workdir, echo_port, "splice"),
               haproxy(workdir, "haproxy", "tcp", echo_port), nginx_stream(workdir, echo_port)]
    rtts = {"direct": []}
    rtts.update({p.name: [] for p in proxies})
    try:
        wait_port(echo_port)
        for p in proxies:
            p.start()
        for rep in range(args.reps):
            rtts["direct"] += ping_pong(echo_port, args.pings)
            for p in proxies:
                rtts[p.name] += ping_pong(p.port, args.pings)
            print(f"rep {rep + 1}/{args.reps} done", file=sys.stderr)
    finally:
        for p in proxies:
            p.stop()
        echo.stdin.close()
        echo.wait()
        shutil.rmtree(workdir, ignore_errors=True)

    base50, base99 = pct(rtts["direct"], 0.50), pct(rtts["direct"], 0.99)
    print(f"\nTCP ping-pong, 64 B, one connection, {args.reps} x {args.pings} round trips "
          "alternating; microseconds")
    print(f"{'path':<16}{'p50':>8}{'p99':>8}{'added p50':>11}{'added p99':>11}")
    added = {}
    for name, values in rtts.items():
        p50, p99 = pct(values, 0.50), pct(values, 0.99)
        added[name] = p50 - base50
        print(f"{name:<16}{p50:>8.1f}{p99:>8.1f}{p50 - base50:>11.1f}{p99 - base99:>11.1f}")
    print("\nratios (added p50, lower is better)")
    for ours in ("ramjet-buffer", "ramjet-splice"):
        for peer in ("haproxy", "nginx-stream"):
            print(f"  {ours} / {peer}: {added[ours] / max(added[peer], 0.1):.2f}")


if __name__ == "__main__":
    main()
