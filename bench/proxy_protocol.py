#!/usr/bin/env python3
"""PROXY protocol v2 on TCP: new connections per proxy core, ramjet against haproxy.

Each proxy under test runs on one core (ramjet `workers: 1`, haproxy `nbthread 1`) and
accepts connections that start with a PROXY v2 header (ramjet: a tcp endpoint with
`proxy_protocol: {mode: required, versions: [2], trusted: [127.0.0.0/8]}`; haproxy:
mode tcp, `bind ... accept-proxy`), then relays them to a local nginx origin. The
header comes from what sends it in production, a load balancer: a front haproxy
(`server ... send-proxy-v2`, one thread) per proxy under test. The front, the origin
and the load (wrk, one thread, 50 connections, `Connection: close`, so every request
is a new connection through every hop: the origin closes it after a 100-byte answer)
all run on the other core.

  client (wrk) -> front haproxy (send-proxy-v2) -> proxy under test -> nginx /100b
  '--------------- core LOAD_CPU ---------------'  core PROXY_CPU      LOAD_CPU

Measured, with the proxy's CPU time (all threads, user + system):

  conn/s       connections per wall second (requests wrk completed)
  cpu          proxy CPU seconds per wall second
  conn/core    connections per proxy CPU-second
  errors       wrk's socket errors, all repetitions (connect, read, write, timeout)

For reference, the same two proxies and load without the header (rows `-nopp`: the
front sends none, the proxy expects none) show what the PROXY protocol itself costs.

Before the run each proxy is checked: a request through its front is answered, and a
connection without the header is refused (so the header really is required and read).
Ratio: ramjet / haproxy per core; target >= 1.0.

Usage: bench/proxy_protocol.py [--build-dir build/release] [--reps 2] [--seconds 4]
"""

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import LOAD_CPU, cpu_seconds, free_port, haproxy, ramjet_daemon, start_proxies
from http_forward import nginx_origin

NO_PP = "-nopp"  # the reference rows: the same proxy and load without PROXY headers


def ramjet(build_dir, workdir, origin_port, pp=True):
    port = free_port()
    setting = (",\n      proxy_protocol: {mode: required, versions: [2], trusted: [127.0.0.0/8]}"
               if pp else "")
    return ramjet_daemon(build_dir, workdir, "ramjet" if pp else f"ramjet{NO_PP}", port, f"""\
  - {{name: pp, listen: "127.0.0.1:{port}", onramp: tcp, upstream: "127.0.0.1:{origin_port}"{setting}}}
""")


def close_request(port, seconds):
    """wrk with a new connection per request; returns the requests that completed and
    wrk's socket errors (connect, read, write, timeout: all counted)."""
    out = subprocess.run(["taskset", "-c", LOAD_CPU, "wrk", "-t1", "-c50", f"-d{seconds}s", "-H",
                          "Connection: close", f"http://127.0.0.1:{port}/100b"],
                         capture_output=True, text=True, timeout=seconds + 30)
    m = re.search(r"(\d+) requests in", out.stdout)
    if not m or "Non-2xx" in out.stdout or int(m.group(1)) == 0:
        raise RuntimeError(f"wrk through port {port}: {out.stdout}{out.stderr}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       out.stdout)
    return int(m.group(1)), sum(int(g) for g in errors.groups()) if errors else 0


def check(front, proxy):
    """Starts the front; a request through it gets the origin's 100 bytes; a proxy that
    takes PROXY headers refuses a request that comes without one."""
    front.start()
    out = subprocess.run(["curl", "-s", "-o", "-", "-w", " %{http_code}",
                          f"http://127.0.0.1:{front.port}/100b"],
                         capture_output=True, text=True, timeout=10)
    if out.stdout != "x" * 100 + " 200":
        raise RuntimeError(f"{proxy.name} through its front: {out.stdout[:200]!r} {out.stderr}")
    if proxy.name.endswith(NO_PP):
        return
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        s.sendall(b"GET /100b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        try:
            answer = s.recv(1024)
        except (ConnectionResetError, socket.timeout):
            answer = b""
    if answer.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"{proxy.name} answered a connection without a PROXY header")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="build/release")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=4)
    args = ap.parse_args()
    for tool in ("nginx", "haproxy", "wrk", "curl", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is not installed (make deps deps-bench installs it)")

    workdir = tempfile.mkdtemp(prefix="ramjet-ppbench-")
    os.chmod(workdir, 0o755)  # nginx workers run unprivileged and read www/
    origin = nginx_origin(workdir)
    origin.name = "origin"
    proxies = [ramjet(args.build_dir, workdir, origin.port),
               haproxy(workdir, "haproxy", "tcp", origin.port, bind=" accept-proxy"),
               ramjet(args.build_dir, workdir, origin.port, pp=False),
               haproxy(workdir, f"haproxy{NO_PP}", "tcp", origin.port)]
    fronts = {p.name: haproxy(workdir, f"front-{p.name}", "tcp", p.port, cpu=LOAD_CPU,
                              server="" if p.name.endswith(NO_PP) else " send-proxy-v2")
              for p in proxies}
    res = {p.name: [] for p in proxies}
    failed = {}
    try:
        origin.start()
        live = start_proxies(proxies, failed, lambda p: check(fronts[p.name], p))
        for rep in range(args.reps):
            for p in live:
                if p.name in failed:
                    continue
                try:
                    c0, t0 = cpu_seconds(p.pids()), time.time()
                    n, errors = close_request(fronts[p.name].port, args.seconds)
                    cpu, wall = cpu_seconds(p.pids()) - c0, time.time() - t0
                    res[p.name].append((n / wall, cpu / wall, n / max(cpu, 1e-6), errors))
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    failed[p.name] = str(e)
            print(f"rep {rep + 1}/{args.reps} done", file=sys.stderr)
    finally:
        for p in proxies + list(fronts.values()) + [origin]:
            p.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\nPROXY v2 TCP connections through one proxy core, {args.reps} x {args.seconds}s "
          "alternating (median; a new connection per request, 100-byte answer)")
    print(f"{'proxy':<14}{'conn/s':>10}{'cpu':>7}{'conn/core':>12}{'errors':>8}")
    per_core = {}
    for name, runs in res.items():
        if not runs or name in failed:
            continue
        per_core[name] = statistics.median(r[2] for r in runs)
        print(f"{name:<14}{statistics.median(r[0] for r in runs):>10.0f}"
              f"{statistics.median(r[1] for r in runs):>7.2f}{per_core[name]:>12.0f}"
              f"{sum(r[3] for r in runs):>8}")
    for name, why in failed.items():
        print(f"{name:<14}failed: {why}")
    if "ramjet" in per_core and "haproxy" in per_core:
        print(f"\nratio ramjet / haproxy, connections per proxy core: "
              f"{per_core['ramjet'] / per_core['haproxy']:.2f} (target >= 1.0)")
    ours, peer = f"ramjet{NO_PP}", f"haproxy{NO_PP}"
    if ours in per_core and peer in per_core:
        print(f"reference, without PROXY headers: {per_core[ours] / per_core[peer]:.2f}")


if __name__ == "__main__":
    main()
