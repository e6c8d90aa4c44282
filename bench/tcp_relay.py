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
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import CLK_TCK, LOAD_CPU, PROXY_CPU, cpu_seconds, free_port, wait_port  # noqa: F401


class Proxy:
    def __init__(self, name, argv, port, workdir):
        self.name, self.argv, self.port, self.workdir = name, argv, port, workdir
        self.proc = None

    def start(self):
        log = open(os.path.join(self.workdir, f"{self.name}.log"), "w")
        self.proc = subprocess.Popen(["taskset", "-c", PROXY_CPU] + self.argv,
                                     stdout=log, stderr=subprocess.STDOUT)
        wait_port(self.port)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def ramjet_proxy(build_dir, workdir, upstream_port, relay):
    port = free_port()
    cfg = os.path.join(workdir, f"ramjet-{relay}.yaml")
    with open(cfg, "w") as f:
        f.write(f"""server: {{workers: 1, admin_socket: ""}}
telemetry: {{metrics: {{listen: ""}}}}
logging: {{level: warn, access_log: "off"}}
egress: {{allow_private: [127.0.0.0/8]}}
endpoints:
  - name: bench
    listen: 127.0.0.1:{port}
    onramp: tcp
    upstream: 127.0.0.1:{upstream_port}
    relay: {relay}
""")
    return Proxy(f"ramjet-{relay}", [os.path.join(build_dir, "bin", "ramjetd"), "--config", cfg],
                 port, workdir)


def haproxy_proxy(workdir, upstream_port, splice):
    port = free_port()
    name = "haproxy-splice" if splice else "haproxy"
    cfg = os.path.join(workdir, f"{name}.cfg")
    splice_opts = "    option splice-request\n    option splice-response\n" if splice else ""
    with open(cfg, "w") as f:
        f.write(f"""global
    nbthread 1
    maxconn 1000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend fe
    bind 127.0.0.1:{port}
{splice_opts}    default_backend be
backend be
{splice_opts}    server s1 127.0.0.1:{upstream_port}
""")
    return Proxy(name, ["haproxy", "-f", cfg], port, workdir)


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
        ramjet_proxy(args.build_dir, workdir, server_port, "splice"),
        ramjet_proxy(args.build_dir, workdir, server_port, "buffer"),
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
    for ours in ("ramjet-splice", "ramjet-buffer"):
        for peer in ("haproxy-splice", "haproxy"):
            print(f"  {ours} / {peer}: {per_core[ours] / per_core[peer]:.2f}")


if __name__ == "__main__":
    main()
