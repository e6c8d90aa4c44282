#!/usr/bin/env python3
"""UDP proxying: ramjet's UDP on-ramp against nginx `stream` (UDP) and socat, side by side.

Each proxy runs on one core (ramjet `workers: 1`, nginx `worker_processes 1`, socat's
processes pinned there too) and relays to an iperf3 server on the other core, where the
load runs too: iperf3 -u with many parallel streams (-P, one UDP session each through
the proxy, as each stream has its own source port) sending as fast as it can (-b 0),
with 64-byte and 1200-byte payloads. iperf3 needs its TCP control connection on the
same port as the UDP data, so each proxy also relays TCP on that port (ramjet: a tcp
endpoint beside the udp one; nginx: `listen P` and `listen P udp` in one stream
server; socat: a TCP4-LISTEN beside the UDP4-LISTEN); that connection carries a few
hundred bytes per run.
iperf3 asks for 4 MiB socket buffers (-w 4M) on both of its ends, so the origin,
which shares its core with the client, has room to catch up; the proxies keep their
own defaults.

Measured, with the proxy's CPU time (all processes and threads, user + system, reaped
children included: socat forks one per session):

  rx pps     datagrams the iperf3 server received, per wall second
  loss       the share of the datagrams the client sent that never arrived, and
  @proxy     the share the proxy's listening socket(s) dropped for a full receive
  @origin    buffer, and the share the origin's sockets dropped (the kernel's
             per-socket counters in /proc/net/udp, read 0.3 s before the end)
  cpu        proxy CPU seconds per wall second (1.0 = one core busy)
  core       core PROXY_CPU's busy time per second, whoever used it: above the
             proxy's cpu it shows the softirq work of its sends and other processes
  pps/core   received datagrams per proxy CPU-second
  Gbit/s/core  received payload bits per proxy CPU-second

A proxy that drops most of what it is sent is not fast: pps/core counts only what
arrived. Ratios are ramjet / peer per core; target: >= 2.0 against nginx.

Usage: bench/udp_onramp.py [--build-dir build/release] [--reps 2] [--seconds 3]
         [--streams 32] [--sizes 64,1200] [--proxies ramjet,nginx,socat]
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

from benchlib import (LOAD_CPU, NGINX_STREAM_MODULE, PROXY_CPU, Proc, cpu_seconds, free_port,
                      nginx_stream, ramjet_daemon, start_proxies, wait_port)
from xdp_forward import core_busy_seconds


def ramjet(build_dir, workdir, origin_port):
    port = free_port()
    return ramjet_daemon(build_dir, workdir, "ramjet", port, f"""\
  - {{name: ctl, listen: "127.0.0.1:{port}", onramp: tcp, upstream: "127.0.0.1:{origin_port}"}}
  - {{name: udp, listen: "127.0.0.1:{port}", onramp: udp, upstream: "127.0.0.1:{origin_port}",
      udp: {{idle_timeout: 10s, max_sessions: 10000}}}}
""")


def nginx(workdir, origin_port):
    port = free_port()
    return nginx_stream(workdir, "nginx", port, f"""\
  server {{
    listen 127.0.0.1:{port};
    listen 127.0.0.1:{port} udp;
    proxy_pass 127.0.0.1:{origin_port};
    proxy_timeout 10s;
  }}
""")


def socat(workdir, origin_port):
    """Two socat listeners in one process group: UDP (a child per session, -T closes it
    when idle) and TCP for iperf3's control connection."""
    port = free_port()
    udp = (f"socat -T 10 UDP4-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr "
           f"UDP4:127.0.0.1:{origin_port}")
    tcp = f"socat TCP4-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr TCP4:127.0.0.1:{origin_port}"
    return Proc("socat", ["sh", "-c", f"{udp} & {tcp} & wait"], port, workdir)


def udp_drops():
    """{socket inode: (local port, datagrams dropped)} of every IPv4 UDP socket: the kernel
    counts, per socket, what it dropped for a full receive buffer."""
    out = {}
    with open("/proc/net/udp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            out[fields[9]] = (int(fields[1].split(":")[1], 16), int(fields[-1]))
    return out


def dropped_at(before, after, port):
    """Datagrams dropped between two udp_drops() snapshots by the sockets bound to `port`."""
    return sum(n - before.get(inode, (0, 0))[1] for inode, (p, n) in after.items() if p == port)


def measure(proxy, size, args):
    """One iperf3 -u run at full speed: (rx pps, loss, proxy cpu, pps per proxy core, proxy
    core busy, share dropped at the proxy's socket, share dropped at the origin's); proxy
    None: iperf3 straight to the origin. The per-socket drops are read 0.3 s before the
    end (the origin closes its sockets when the run ends)."""
    port = proxy.port if proxy else args.origin_port
    pids = proxy.pids() if proxy else []
    d0, c0, b0, t0 = udp_drops(), cpu_seconds(pids, children=True), core_busy_seconds(PROXY_CPU), time.time()
    client = subprocess.Popen(["taskset", "-c", LOAD_CPU, "iperf3", "-c", "127.0.0.1", "-p", str(port), "-u",
                               "-l", str(size), "-b", "0", "-w", "4M", "-P", str(args.streams), "-t",
                               str(args.seconds), "-J"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(args.seconds - 0.3)
    d1 = udp_drops()
    out, err = client.communicate(timeout=args.seconds + 30)
    wall = time.time() - t0
    busy = (core_busy_seconds(PROXY_CPU) - b0) / wall
    data = json.loads(out or "{}")
    if "end" not in data:
        raise RuntimeError(f"iperf3 -u through port {port}: {data.get('error', err.strip())}")
    sent = data["end"]["sum_received"]["packets"]
    received = sent - data["end"]["sum_received"]["lost_packets"]
    at_proxy = dropped_at(d0, d1, port) / max(sent, 1) if proxy else 0.0
    at_origin = dropped_at(d0, d1, args.origin_port) / max(sent, 1)
    row = [received / args.seconds, 1 - received / max(sent, 1), None, None, busy, at_proxy, at_origin]
    if proxy:
        cpu = cpu_seconds(proxy.pids(), children=True) - c0
        row[2:4] = cpu / wall, received / max(cpu, 1e-6)
    return tuple(row)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="build/release")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--streams", type=int, default=32, help="iperf3 -P: UDP sessions per run")
    ap.add_argument("--sizes", default="64,1200", help="UDP payload bytes (iperf3 -l)")
    ap.add_argument("--proxies", default="ramjet,nginx,socat",
                    help="which proxies to run (a subset, e.g. for profiling one)")
    args = ap.parse_args()
    for tool in ("iperf3", "nginx", "socat", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is not installed (make deps deps-bench installs it)")
    if not os.path.exists(NGINX_STREAM_MODULE):
        sys.exit(f"bench: {NGINX_STREAM_MODULE} is missing (libnginx-mod-stream)")
    sizes = [int(s) for s in args.sizes.split(",") if s]

    workdir = tempfile.mkdtemp(prefix="ramjet-udpbench-")
    args.origin_port = free_port()
    origin = subprocess.Popen(["taskset", "-c", LOAD_CPU, "iperf3", "-s", "-p", str(args.origin_port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    makers = {"ramjet": lambda: ramjet(args.build_dir, workdir, args.origin_port),
              "nginx": lambda: nginx(workdir, args.origin_port),
              "socat": lambda: socat(workdir, args.origin_port)}
    proxies = [makers[name]() for name in args.proxies.split(",") if name]
    res = {(name, size): [] for name in ["direct"] + [p.name for p in proxies] for size in sizes}
    failed = {}
    try:
        wait_port(args.origin_port)
        live = start_proxies(proxies, failed)
        for rep in range(args.reps):
            for size in sizes:
                for p in [None] + live:
                    name = p.name if p else "direct"
                    if name in failed:
                        continue
                    try:
                        res[(name, size)].append(measure(p, size, args))
                    except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
                        failed[name] = f"{size} B: {e}"
            print(f"rep {rep + 1}/{args.reps} done", file=sys.stderr)
    finally:
        for p in proxies:
            p.stop()
        origin.terminate()
        origin.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    report(res, failed, sizes, args)


def report(res, failed, sizes, args):
    print(f"\nUDP through one proxy core, iperf3 -u -b 0 -P {args.streams} on loopback, "
          f"{args.reps} x {args.seconds}s alternating (median; per proxy CPU-second)")
    print(f"core: core {PROXY_CPU}'s busy time per second, all of it (the proxy, the softirq "
          "work of its sends, and whatever else ran there)")
    print(f"{'proxy':<8}{'payload':>8}{'rx pps':>11}{'loss':>7}{'@proxy':>8}{'@origin':>8}{'cpu':>6}"
          f"{'core':>6}{'pps/core':>11}{'Gbit/s/core':>13}")
    per_core = {}
    for (name, size), runs in res.items():
        if not runs or name in failed:
            continue
        pps = statistics.median(r[0] for r in runs)
        loss = statistics.median(r[1] for r in runs)
        busy = statistics.median(r[4] for r in runs)
        drops = "".join(f"{statistics.median(r[i] for r in runs):>8.1%}" for i in (5, 6))
        if runs[0][2] is None:
            print(f"{name:<8}{size:>7}B{pps:>11.0f}{loss:>7.1%}{drops}{'-':>6}{busy:>6.2f}{'-':>11}{'-':>13}")
            continue
        cpu = statistics.median(r[2] for r in runs)
        per_core[(name, size)] = statistics.median(r[3] for r in runs)
        gbps = per_core[(name, size)] * size * 8 / 1e9
        print(f"{name:<8}{size:>7}B{pps:>11.0f}{loss:>7.1%}{drops}{cpu:>6.2f}{busy:>6.2f}"
              f"{per_core[(name, size)]:>11.0f}"
              f"{gbps:>13.2f}")
    for name, why in failed.items():
        print(f"{name:<8}failed: {why}")
    print("\nratios ramjet / peer, datagrams received per proxy core (target: >= 2.0 vs nginx)")
    for peer in ("nginx", "socat"):
        cells = [f"{size} B {per_core[('ramjet', size)] / per_core[(peer, size)]:.2f}"
                 for size in sizes if ("ramjet", size) in per_core and (peer, size) in per_core]
        print(f"  vs {peer:<6} " + ("  ".join(cells) if cells else "n/a"))


if __name__ == "__main__":
    main()
