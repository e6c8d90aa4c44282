#!/usr/bin/env python3
"""Bulk TCP through a gateway whose veths keep their defaults (tx checksum offload,
TSO, GSO on; GRO off), as every container has them: the kernel's IP forwarding
against ramjet's fast path, which `datapath.fastpath_hook: auto` runs in tcx ingress
on veth (the skb is forwarded as it is, GSO and checksum state included).

Topology (network namespaces of its own, removed at the end; no offload touched):

  client ns                gateway ns                 server ns
  eth0 10.10.1.2 ---- gw-c 10.10.1.1 | gw-s 10.10.2.1 ---- eth0 10.10.2.2

Load: iperf3 (client in the client ns, server in the server ns), 1 and 4 streams,
both pinned to core LOAD_CPU with ramjetd's own threads.

Where the gateway's work runs, and how its CPU is measured: with GRO off a veth has
no NAPI, so a received packet goes through the per-CPU backlog of the CPU that
queued it. RPS steers gw-c's and gw-s's backlog to core PROXY_CPU and the client's
and server's eth0 backlog to LOAD_CPU. So everything the gateway does per packet
(the stack's forwarding, or ramjet's tc program and the redirect, and the transmit
into the next veth) runs in PROXY_CPU's softirq, and nothing else does: the gateway
CPU is PROXY_CPU's softirq + irq time from /proc/stat (this kernel samples it at
tick resolution: no CONFIG_IRQ_TIME_ACCOUNTING), per wall second; 1.0 = one core.
Other processes on that core (builds) show up as user/system time there, not as
softirq; the run prints what else was busy. RPS only moves work between cores: the
offloads and the path each packet takes stay as the veth defaults make them.

Scenarios, alternated within each repetition:
  kernel fwd   no ramjet; the kernel's IP forwarding (ip_forward=1)
  ramjet tc    ramjetd, datapath on gw-c/gw-s, default_action fastpath, fastpath_hook
               auto (tc on veth)

For each: Gbit/s (iperf3's receiver side), gateway CPU, Gbit/s per gateway core.
Ratios: ramjet / kernel, per gateway core and raw. Target: >= 1.5x per gateway core,
and never below kernel forwarding in raw Gbit/s.

Usage: bench/veth_bulk_tcp.py [--build-dir build/release] [--reps 3] [--seconds 5]
         [--streams 1,4]
Needs root, iperf3, taskset, nsenter.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import CLK_TCK, LOAD_CPU, PROXY_CPU
from xdp_forward import SERVER, Ramjet, Topology, admin_get, sh, terminate

IPERF_PORT = 5201


class VethTopology(Topology):
    """client -- gateway -- server with veth defaults, fixed MACs, permanent neighbours
    and RPS splitting the gateway's receive work from the endpoints'."""

    def __init__(self):
        super().__init__(prefix="rjv")

    def create(self):
        self.add_links()
        for name, dev, addr in self.devices():
            cpu = PROXY_CPU if name == self.gw else LOAD_CPU
            self.ip(name, "addr", "add", f"{addr['ip']}/24", "dev", dev)
            self.ns(name, "sh", "-c", f"echo {1 << int(cpu):x} > /sys/class/net/{dev}/queues/rx-0/rps_cpus")
            self.ip(name, "link", "set", dev, "up")
        self.add_routes()

    def offloads(self, name, dev):
        """The offloads that matter here, as the run found them (printed: nothing was changed)."""
        out = self.ns(name, "ethtool", "-k", dev, capture=True)
        keep = ("tx-checksumming", "tcp-segmentation-offload", "generic-segmentation-offload",
                "generic-receive-offload")
        return ", ".join(line.strip() for line in out.splitlines() if line.split(":")[0] in keep)

    def pin_napi(self):
        """Ramjet calls this after start; veths without NAPI have no threads to pin."""


def cpu_times(cpu):
    """(softirq + irq, user + nice + system) seconds of one core, from /proc/stat."""
    with open("/proc/stat") as f:
        for line in f:
            fields = line.split()
            if fields[0] == f"cpu{cpu}":
                v = [int(x) for x in fields[1:9]]
                return (v[5] + v[6]) / CLK_TCK, (v[0] + v[1] + v[2]) / CLK_TCK
    raise RuntimeError(f"cpu{cpu} not in /proc/stat")


def iperf(topo, streams, seconds, warmup):
    """One iperf3 run; returns (Gbit/s received, gateway CPU, other busy time on the
    gateway core), both measured over the same `seconds` after `warmup`."""
    server = subprocess.Popen(["ip", "netns", "exec", topo.server, "taskset", "-c", LOAD_CPU, "iperf3", "-s", "-1",
                               "-p", str(IPERF_PORT), "-B", SERVER["ip"]],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        client = subprocess.Popen(["ip", "netns", "exec", topo.client, "taskset", "-c", LOAD_CPU, "iperf3", "-c",
                                   SERVER["ip"], "-p", str(IPERF_PORT), "-P", str(streams), "-t",
                                   str(seconds + warmup), "-O", str(warmup), "-J"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(warmup + 0.2)
        s0, o0, w0 = *cpu_times(PROXY_CPU), time.time()
        time.sleep(seconds - 0.4)
        s1, o1, w1 = *cpu_times(PROXY_CPU), time.time()
        out, err = client.communicate(timeout=seconds + warmup + 30)
        if client.returncode != 0:
            raise RuntimeError(f"iperf3 failed ({client.returncode}): {err.strip()} {out[-500:]}")
        result = json.loads(out)
        gbps = result["end"]["sum_received"]["bits_per_second"] / 1e9
        return gbps, (s1 - s0) / (w1 - w0), (o1 - o0) / (w1 - w0)
    finally:
        terminate(server)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="build/release")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--streams", default="1,4")
    ap.add_argument("--only", default="", help="run only the scenarios whose name contains this")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: veth_bulk_tcp needs root (network namespaces, BPF)")
    for tool in ("iperf3", "ethtool", "taskset", "nsenter"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is not installed (make deps / make deps-bench install it)")
    ramjetd = os.path.join(args.build_dir, "bin", "ramjetd")
    if not os.path.exists(ramjetd):
        sys.exit(f"bench: {ramjetd} does not exist (make build)")
    streams = [int(s) for s in args.streams.split(",") if s]

    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench: terminated"))
    workdir = tempfile.mkdtemp(prefix="ramjet-bench-veth-")
    topo = VethTopology()
    fwd = None
    results = {}
    try:
        topo.create()
        offloads = topo.offloads(topo.client, "eth0")
        fwd = Ramjet(topo, args.build_dir, workdir, "fwd", topo.gw, ["gw-c", "gw-s"], "fastpath", [])

        def kernel(n):
            return iperf(topo, n, args.seconds, args.warmup)

        def ramjet(n):
            fwd.start()
            try:
                hooks = {i["name"]: i["fastpath_hook"] for i in admin_datapath(fwd)["interfaces"]}
                if set(hooks.values()) != {"tc"}:
                    raise RuntimeError(f"ramjet chose the hooks {hooks}, not tc on both veths")
                before = admin_datapath(fwd)["stats"]["FASTPATH_REDIRECT"]
                r = iperf(topo, n, args.seconds, args.warmup)
                after = admin_datapath(fwd)["stats"]["FASTPATH_REDIRECT"]
                if after["packets"] == before["packets"]:
                    raise RuntimeError("the fast path forwarded nothing")
                return r
            finally:
                fwd.stop()

        scenarios = [((name, n), run) for n in streams for name, run in (("kernel fwd", kernel), ("ramjet tc", ramjet))
                     if args.only in name]
        results = {key: [] for key, _ in scenarios}
        for rep in range(args.reps):
            for key, run in scenarios:
                results[key].append(run(key[1]))
            print(f"rep {rep + 1}/{args.reps} done", file=sys.stderr)
    finally:
        if fwd:
            fwd.stop()
        topo.destroy()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\nBulk TCP through the gateway, veth defaults ({offloads}); iperf3 and ramjetd on core {LOAD_CPU}, "
          f"the gateway's receive work (RPS) on core {PROXY_CPU}; {args.reps} x {args.seconds:g}s alternating (median)")
    print("gw cpu: core %s softirq+irq per second; other: its user+system (other processes)" % PROXY_CPU)
    print(f"{'scenario':<14}{'streams':>8}{'Gbit/s':>9}{'gw cpu':>8}{'other':>7}{'Gbit/s per gw core':>20}")
    gbps, per_core = {}, {}
    for key, runs in results.items():
        gbps[key] = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        other = statistics.median(r[2] for r in runs)
        per_core[key] = statistics.median(r[0] / max(r[1], 1e-3) for r in runs)
        print(f"{key[0]:<14}{key[1]:>8}{gbps[key]:>9.2f}{cpu:>8.2f}{other:>7.2f}{per_core[key]:>20.2f}")
    print("\nratios ramjet tc / kernel fwd: per gateway core (raw Gbit/s); target >= 1.5 per core, raw >= 1.0")
    for n in streams:
        a, b = ("ramjet tc", n), ("kernel fwd", n)
        if a in per_core and b in per_core:
            print(f"  {n} stream{'s' if n > 1 else ''}: {per_core[a] / per_core[b]:.2f} ({gbps[a] / gbps[b]:.2f})")


def admin_datapath(daemon):
    return admin_get(daemon.admin, "/v1/datapath")


if __name__ == "__main__":
    main()
