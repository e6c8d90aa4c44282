#!/usr/bin/python3
"""HTTP/3 on ramjet against HTTP/2 and HTTP/1.1 on ramjet: the same client load, the same
100 B responses, requests per proxy CPU-second (issue 13).

ramjetd runs on one core (one worker) with one https endpoint in reverse-proxy mode
(`onramp: http`, `upstream: http://...` to a local nginx origin on the other core with
the load), TLS with an ECDSA P-256 certificate, ALPN h2 and http/1.1 on TCP and h3 on
its `quic:` listener. Three columns, each M connections (default 50) with one request in
flight per connection, N requests in all:

  h3   ramjet-h3client load (QUIC + HTTP/3; Debian's h2load is built without ngtcp2)
  h2   h2load -c M -m 1 over TLS, ALPN h2 (checked)
  h1   h2load --h1 -c M over TLS, keep-alive HTTP/1.1

"Per CPU-second" is per core: the proxy's CPU time (all threads, user + system, from
/proc) over the run, handshakes included. Ratios h3/h2 and h3/h1 (higher is better;
target: h3/h2 >= 0.7).

Usage: bench/h3.py [--build-dir build/release] [--reps 2] [--requests 100000]
                   [--connections 50]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

from benchlib import LOAD_CPU, free_port, ramjet_daemon
from http_forward import nginx_origin
from tls import check, h2load, make_cert, measured

PROTOCOLS = ("h3", "h2", "h1")


def ramjet(build_dir, workdir, origin_port, cert, key):
    """ramjetd with one https endpoint: TCP (h2, http/1.1) on proxy.port, QUIC on proxy.quic_port
    (its default limits: 100 request streams at once per connection)."""
    port, quic_port = free_port(), free_port()
    proc = ramjet_daemon(build_dir, workdir, "ramjet", port, f"""\
  - {{name: https, listen: "127.0.0.1:{port}", onramp: http,
      upstream: "http://127.0.0.1:{origin_port}",
      tls: {{certificates: [{{cert: {cert}, key: {key}}}], alpn: [h2, http/1.1]}},
      quic: {{listen: "127.0.0.1:{quic_port}"}}}}
""")
    proc.quic_port = quic_port
    return proc


def h3load(build_dir, port, path, requests, connections, check_only=False):
    """ramjet-h3client load; returns the requests answered with a 2xx. Raises unless all were."""
    argv = ["taskset", "-c", LOAD_CPU, os.path.join(build_dir, "bin", "ramjet-h3client"),
            "--connect", f"127.0.0.1:{port}", "--insecure", "load",
            f"https://127.0.0.1:{port}{path}", "--connections", str(connections),
            "--requests", str(requests)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120 + requests / 1000)
    try:
        tally = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise RuntimeError(f"ramjet-h3client load failed (exit {out.returncode}): "
                           f"{out.stdout[-300:]} {out.stderr[-500:]}") from None
    if out.returncode != 0 or tally["status_2xx"] != requests:
        raise RuntimeError(f"ramjet-h3client load through UDP port {port}: {tally} "
                           f"{out.stderr[-500:]}")
    if check_only and tally["body_bytes"] != 100 * requests:
        raise RuntimeError(f"ramjet-h3client load: {tally['body_bytes']} body bytes for "
                           f"{requests} responses of /100b")
    return tally["status_2xx"]


def run_once(proxy, args, res, failed):
    loads = {
        "h3": lambda: h3load(args.build_dir, proxy.quic_port, "/100b", args.requests,
                             args.connections),
        "h2": lambda: h2load(proxy.port, "/100b", requests=args.requests,
                             clients=args.connections, protocol="h2"),
        "h1": lambda: h2load(proxy.port, "/100b", requests=args.requests,
                             clients=args.connections, protocol="http/1.1"),
    }
    for proto in PROTOCOLS:
        if proto in failed:
            continue
        try:
            per_cpu, per_wall = measured(proxy, loads[proto])
            res[proto]["cpu"].append(per_cpu)
            res[proto]["wall"].append(per_wall)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            failed[proto] = str(e)


def report(res, failed, args):
    nan = float("nan")
    med = {p: {k: statistics.median(v) if v and p not in failed else nan for k, v in r.items()}
           for p, r in res.items()}

    def cell(value, width):
        return f"{'failed':>{width}}" if value != value else f"{value:>{width}.0f}"

    def ratio(a, b):
        return "n/a" if a != a or b != b else f"{a / b:.2f}"

    print(f"\nHTTP/3 vs HTTP/2 vs HTTP/1.1 on ramjet, one proxy core, {args.connections} "
          f"connections x 1 request in flight, {args.requests} requests of 100 B, "
          f"{args.reps} reps (median)")
    print(f"{'protocol':<10}{'req/CPU-s':>11}{'req/s':>9}")
    for proto in PROTOCOLS:
        print(f"{proto:<10}{cell(med[proto]['cpu'], 11)}{cell(med[proto]['wall'], 9)}")
    for proto, why in failed.items():
        print(f"{proto:<10}failed: {why}")
    h3, h2, h1 = (med[p]["cpu"] for p in PROTOCOLS)
    print(f"\nratios per proxy CPU-second: h3/h2 {ratio(h3, h2)} (target >= 0.70)  "
          f"h3/h1 {ratio(h3, h1)}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="build/release")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--requests", type=int, default=100000, help="requests per measurement")
    ap.add_argument("--connections", type=int, default=50)
    args = ap.parse_args()
    for tool in ("nginx", "h2load", "openssl", "curl", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is not installed (make deps deps-bench installs it)")
    client = os.path.join(args.build_dir, "bin", "ramjet-h3client")
    if not os.access(client, os.X_OK):
        sys.exit(f"bench: {client} is missing (cmake --build {args.build_dir} "
                 "--target ramjet-h3client)")

    workdir = tempfile.mkdtemp(prefix="ramjet-h3bench-")
    os.chmod(workdir, 0o755)  # nginx workers run unprivileged and must read www/
    cert, key, _ = make_cert(workdir)
    origin = nginx_origin(workdir)
    origin.name = "origin"  # its log file is then origin.log
    proxy = ramjet(args.build_dir, workdir, origin.port, cert, key)
    res = {p: {"cpu": [], "wall": []} for p in PROTOCOLS}
    failed = {}
    try:
        origin.start()
        proxy.start()
        proxy.tcp_port = proxy.port  # tls.check() tries both of a TlsProxy's listeners
        check(proxy)
        h3load(args.build_dir, proxy.quic_port, "/100b", 10, 2, check_only=True)
        for rep in range(args.reps):
            run_once(proxy, args, res, failed)
            print(f"rep {rep + 1}/{args.reps} done", file=sys.stderr)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        log = os.path.join(workdir, f"{proxy.name}.log")
        tail = open(log).read()[-400:] if os.path.exists(log) else ""
        sys.exit(f"bench: ramjet did not start or answer: {e} {tail}".strip())
    finally:
        proxy.stop()
        origin.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    report(res, failed, args)


if __name__ == "__main__":
    main()
