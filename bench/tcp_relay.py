#!/usr/bin/env python3
"""TCP relay throughput: ramjet's TCP endpoint against haproxy, side by side.

Every proxy runs pinned to one core (ramjet `workers: 1`, haproxy `nbthread 1`)
and iperf3 (client and server) is pinned to the other, so "per proxy core" means
what it says. Repetitions alternate between the proxies within one run, so slow
drifts of the machine hit all of them alike. For each run we read the proxy's CPU
time (all its threads, user + system) from /proc and report:

  Gbit/s           iperf3's received rate through the proxy
  cpu              proxy CPU seconds per wall second (1.0 = one core busy)
  Gbit/s per core  Gbit/s / cpu: throughput one fully used proxy core would carry

and the ratios of ramjet to each haproxy variant. Usage:
  bench/tcp_relay.py [--build-dir build/release] [--reps 3] [--seconds 5]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import LOAD_CPU, cpu_seconds, free_port, haproxy, ramjet_tcp, wait_port


def haproxy_proxy(workdir, upstream_port, splice):
    if splice:
        return haproxy(workdir, "haproxy-splice", "tcp", upstream_port,
                       "    option splice-request\n    option splice-response\n")
    return haproxy(workdir, "haproxy", "tcp", upstream_port)


def iperf(port, seconds):
    out = subprocess.run(["taskset", "-c", LOAD_CPU, "iperf3", "-c", "127.0.0.1", "-p", str(port),
                          "-t", str(seconds), "-J"], capture_output=True, text=True, timeout=seconds + 30)
    data = json.loads(out.stdout)
    if "error" in data:
        raise RuntimeError(data["error"])
    return data["end"]["sum_received"]["bits_per_second"] / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="build/release")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    args = ap.parse_args()
    for tool in ("iperf3", "haproxy", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is not installed (make deps installs it)")

    workdir = tempfile.mkdtemp(prefix="ramjet-bench-")
    server_port = free_port()
    server = subprocess.Popen(["taskset", "-c", LOAD_CPU, "iperf3", "-s", "-p", str(server_port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proxies = [
        ramjet_tcp(args.build_dir, workdir, server_port, "auto"),
        ramjet_tcp(args.build_dir, workdir, server_port, "splice"),
        ramjet_tcp(args.build_dir, workdir, server_port, "buffer"),
        haproxy_proxy(workdir, server_port, splice=True),
        haproxy_proxy(workdir, server_port, splice=False),
    ]
    results = {"direct": []}
    results.update({p.name: [] for p in proxies})
    try:
        wait_port(server_port)
        for p in proxies:
            p.start()
        for rep in range(args.reps):
            results["direct"].append((iperf(server_port, args.seconds), None))
            for p in proxies:
                c0, t0 = cpu_seconds(p.proc.pid), time.time()
                gbps = iperf(p.port, args.seconds)
                cpu = (cpu_seconds(p.proc.pid) - c0) / (time.time() - t0)
                results[p.name].append((gbps, cpu))
            print(f"rep {rep + 1}/{args.reps} done", file=sys.stderr)
    finally:
        for p in proxies:
            p.stop()
        server.terminate()
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\nTCP relay through one proxy core, iperf3 on loopback, {args.reps} x {args.seconds}s "
          "alternating (median)")
    print(f"{'proxy':<16}{'Gbit/s':>10}{'cpu':>8}{'Gbit/s per core':>18}")
    per_core = {}
    for name, runs in results.items():
        gbps = statistics.median(r[0] for r in runs)
        if runs[0][1] is None:
            print(f"{name:<16}{gbps:>10.2f}{'-':>8}{'-':>18}")
            continue
        cpu = statistics.median(r[1] for r in runs)
        per_core[name] = statistics.median(r[0] / max(r[1], 1e-6) for r in runs)
        print(f"{name:<16}{gbps:>10.2f}{cpu:>8.2f}{per_core[name]:>18.2f}")
    print("\nratios (Gbit/s per proxy core)")
    for ours in ("ramjet-auto", "ramjet-splice", "ramjet-buffer"):
        for peer in ("haproxy-splice", "haproxy"):
            print(f"  {ours} / {peer}: {per_core[ours] / per_core[peer]:.2f}")


if __name__ == "__main__":
    main()
