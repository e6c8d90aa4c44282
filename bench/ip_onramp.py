#!/usr/bin/env python3
"""The IP on-ramp: packets per gateway core when ramjet forwards every flow through its
TUN device, against the kernel forwarding the same traffic by itself.

Topology (bench/veth_bulk_tcp.py's: network namespaces of its own, removed at the end,
veth defaults, RPS putting the gateway's receive work on core PROXY_CPU and the
client's and server's on LOAD_CPU):

  client ns                gateway ns                 server ns
  eth0 10.10.1.2 ---- gw-c 10.10.1.1 | gw-s 10.10.2.1 ---- eth0 10.10.2.2

Scenarios, alternated within each repetition, same client, server and load:
  kernel fwd   no ramjet: the gateway's kernel forwards gw-c -> gw-s (ip_forward=1)
  ramjet ip    ramjetd (one worker, pinned to PROXY_CPU) in the gateway with an ip
               endpoint whose TUN device takes 10.10.2.0/24: the kernel routes each
               client packet into the device, the engine reads it, decides its flow
               (IpFlowHook, the default: forward) and sends it on through the IP
               off-ramp (a raw socket), and the kernel routes it out of gw-s.
Only the client -> server direction goes through the TUN device (the client's prefix
is not in `routes`, as in docs/ip_onramp.md); the replies (TCP ACKs, iperf3's
control) are forwarded by the kernel in both scenarios. So "the kernel forwarding the
same TUN traffic" is: the same packets, on the same veths, forwarded by plain routing
instead of through the device and the engine.

Loads (iperf3, client in the client ns, server in the server ns, both on LOAD_CPU):
  udp 64B   iperf3 -u -l 64 -b 0 -P 8: small packets, 8 flows (+ the control flow)
  udp 40k   the same at 40000 packets/s in all, a rate both can carry: at full speed a
            gateway that cannot keep up also pays for the packets it drops (the
            kernel's forwarding into a full TUN queue), so this row compares the
            cost per packet without drops
  tcp       iperf3 -P 4 bulk TCP. The client's veth makes GSO packets; the kernel
            forwards them whole, while a TUN device without IFF_VNET_HDR (ramjet's,
            see docs/ip_onramp.md "Not yet") takes only MTU-sized packets, so the
            kernel segments them on the way in.
  tcp mtu   the same with TSO and GSO off on the client's eth0 (for that run only):
            MTU-sized packets from the start, so both forward the same packets.

Gateway CPU: core PROXY_CPU's softirq + irq time (the forwarding, the TUN writes and
the off-ramp's routing; tick-sampled, see veth_bulk_tcp.py) + ramjetd's own CPU time
(user + system), per wall second; other processes that run on that core (builds) are
not counted. Reported: pps received by the server (UDP: packets its eth0 received; TCP:
iperf3's bytes / 1448, the MSS), loss (UDP: against the packets the client's eth0
sent), Gbit/s, gateway CPU, and pps per gateway core. For ramjet
the engine's `ip_forwarded` counter is checked to have grown by at least what the
server received (every flow went through the engine). Ratios: ramjet / kernel per
gateway core.

Usage: bench/ip_onramp.py [--build-dir build/release] [--reps 2] [--seconds 3]
Needs root, iperf3, taskset, nsenter, ethtool.
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

from benchlib import LOAD_CPU, PROXY_CPU, cpu_seconds, process_tree
from veth_bulk_tcp import IPERF_PORT, VethTopology, cpu_times
from xdp_forward import SERVER, Ramjet, admin_get, terminate

TUN_ROUTES = ["10.10.2.0/24"]
MSS = 1448
MIN_CPU = 0.05
# iperf3 -b is per stream: "udp 40k" offers 8 x 5000 = 40000 packets/s.
LOADS = {"udp 64B": ["-u", "-l", "64", "-b", "0", "-P", "8"],
         "udp 40k": ["-u", "-l", "64", "-b", f"{5000 * 64 * 8}", "-P", "8"], "tcp": ["-P", "4"],
         "tcp mtu": ["-P", "4"]}
# Loads run with the client's eth0 segmenting itself (TSO and GSO off): MTU-sized packets.
NO_GSO = {"tcp mtu"}


class IpOnramp(Ramjet):
    """ramjetd in the gateway with one ip endpoint and no datapath, on PROXY_CPU (its work
    is the gateway's): xdp_forward's Ramjet (start, ready file, admin socket, stop) with
    this config instead."""

    def __init__(self, topo, build_dir, workdir):
        super().__init__(topo, build_dir, workdir, "ipr", topo.gw, [], "pass", [], cpu=PROXY_CPU)
        with open(self.cfg, "w") as f:
            json.dump({
                "server": {"workers": 1, "admin_socket": self.admin, "ready_file": self.ready},
                "logging": {"level": "warn", "access_log": "off"},
                "telemetry": {"metrics": {"listen": ""}},
                "endpoints": [{"name": "ipr", "onramp": "ip", "tun": {"name": "rjb0", "routes": TUN_ROUTES}}],
            }, f)

    def forwarded(self):
        return admin_get(self.admin, "/v1/stats")["counters"]["ip_forwarded"]

    def cpu(self):
        return cpu_seconds(process_tree(self.proc.pid))


def link_packets(topo, ns, direction):
    """Packets the veth end eth0 in namespace `ns` has received ("rx") or sent ("tx")."""
    out = subprocess.run(["ip", "-n", ns, "-s", "-j", "link", "show", "dev", "eth0"], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)[0]["stats64"][direction]["packets"]


def iperf(topo, load, seconds, warmup, daemon=None):
    """One iperf3 run; returns (pps received, loss, Gbit/s, gateway CPU per second, engine
    CPU per second).
    Counters and CPU are read over `seconds` after `warmup`, inside iperf3's interval:
    for UDP the packets the server's eth0 received against those the client's sent."""
    server = subprocess.Popen(["ip", "netns", "exec", topo.server, "taskset", "-c", LOAD_CPU, "iperf3", "-s",
                               "-1", "-p", str(IPERF_PORT), "-B", SERVER["ip"]],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    own_cpu = daemon.cpu if daemon else (lambda: 0.0)

    if load in NO_GSO:
        topo.ns(topo.client, "ethtool", "-K", "eth0", "tso", "off", "gso", "off")

    def sample():
        return (cpu_times(PROXY_CPU)[0], own_cpu(), link_packets(topo, topo.server, "rx"),
                link_packets(topo, topo.client, "tx"), time.time())
    try:
        time.sleep(0.3)
        forwarded0 = daemon.forwarded() if daemon else 0
        client = subprocess.Popen(["ip", "netns", "exec", topo.client, "taskset", "-c", LOAD_CPU, "iperf3",
                                   "-c", SERVER["ip"], "-p", str(IPERF_PORT), *LOADS[load], "-t",
                                   str(seconds + warmup), "-O", str(warmup), "-J"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(warmup + 0.2)
        s0, p0, rx0, tx0, w0 = sample()
        time.sleep(seconds - 0.4)
        s1, p1, rx1, tx1, w1 = sample()
        out, err = client.communicate(timeout=seconds + warmup + 30)
        if client.returncode != 0:
            raise RuntimeError(f"iperf3 {load} failed ({client.returncode}): {err.strip()} {out[-500:]}")
        received = json.loads(out)["end"]["sum_received"]
        gbps = received["bits_per_second"] / 1e9
        if load.startswith("udp"):
            pps, loss = (rx1 - rx0) / (w1 - w0), 1 - (rx1 - rx0) / max(tx1 - tx0, 1)
            count = received["bytes"] / int(LOADS[load][2])
        else:
            pps, loss = gbps * 1e9 / 8 / MSS, None
            count = received["bytes"] / MSS
        if daemon and daemon.forwarded() - forwarded0 < count:
            raise RuntimeError(f"ramjet forwarded {daemon.forwarded() - forwarded0} packets, the server "
                               f"received {count:.0f}: not everything went through the engine")
        return pps, max(loss, 0.0) if loss is not None else None, gbps, \
            ((s1 - s0) + (p1 - p0)) / (w1 - w0), (p1 - p0) / (w1 - w0)
    finally:
        terminate(server)
        if load in NO_GSO:
            topo.ns(topo.client, "ethtool", "-K", "eth0", "tso", "on", "gso", "on")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="build/release")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: ip_onramp needs root (network namespaces, a TUN device)")
    for tool in ("iperf3", "taskset", "nsenter", "ethtool"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is not installed (make deps / make deps-bench install it)")
    if not os.path.exists(os.path.join(args.build_dir, "bin", "ramjetd")):
        sys.exit(f"bench: {args.build_dir}/bin/ramjetd does not exist (make build)")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench: terminated"))
    workdir = tempfile.mkdtemp(prefix="ramjet-bench-ip-")
    topo = VethTopology()
    daemon = None
    results = {}
    try:
        topo.create()
        daemon = IpOnramp(topo, args.build_dir, workdir)

        def kernel(load):
            return iperf(topo, load, args.seconds, args.warmup)

        def ramjet(load):
            daemon.start()
            try:
                return iperf(topo, load, args.seconds, args.warmup, daemon)
            finally:
                daemon.stop()

        results = {(name, load): [] for load in LOADS for name in ("kernel fwd", "ramjet ip")}
        for rep in range(args.reps):
            for load in LOADS:
                for name, run in (("kernel fwd", kernel), ("ramjet ip", ramjet)):
                    results[(name, load)].append(run(load))
            print(f"rep {rep + 1}/{args.reps} done", file=sys.stderr)
    finally:
        if daemon:
            daemon.stop()
        topo.destroy()
        shutil.rmtree(workdir, ignore_errors=True)
    report(results, args)


def report(results, args):
    print(f"\nIP forwarding through the gateway, client -> server: the kernel alone vs ramjet's IP on-ramp "
          f"(TUN + engine + raw off-ramp); iperf3 on core {LOAD_CPU}, the gateway's work on core "
          f"{PROXY_CPU}; "
          f"{args.reps} x {args.seconds:g}s alternating (median)")
    print(f"gw cpu: core {PROXY_CPU} softirq+irq + ramjetd's CPU, per second (engine: ramjetd's part); "
          f"tcp pps = bytes / {MSS}")
    print(f"{'scenario':<12}{'load':<9}{'pps':>10}{'loss':>7}{'Gbit/s':>8}{'gw cpu':>8}{'engine':>8}"
          f"{'pps per gw core':>17}")
    per_core = {}
    for (name, load), runs in results.items():
        if not runs:
            continue
        pps = statistics.median(r[0] for r in runs)
        loss = "-" if runs[0][1] is None else f"{statistics.median(r[1] for r in runs):.1%}"
        gbps = statistics.median(r[2] for r in runs)
        cpu = statistics.median(r[3] for r in runs)
        engine = statistics.median(r[4] for r in runs)
        per_core[(name, load)] = statistics.median(r[0] / max(r[3], 1e-3) for r in runs)
        cell = f"{per_core[(name, load)]:>17.0f}" if cpu >= MIN_CPU else f"{'(cpu too small)':>17}"
        print(f"{name:<12}{load:<9}{pps:>10.0f}{loss:>7}{gbps:>8.2f}{cpu:>8.2f}{engine:>8.2f}{cell}")
    print("\nratios ramjet ip / kernel fwd, packets per gateway core")
    for load in LOADS:
        a, b = ("ramjet ip", load), ("kernel fwd", load)
        if a not in per_core or b not in per_core:
            continue
        if statistics.median(r[3] for r in results[b]) < MIN_CPU:
            # /proc/stat counts softirq time in whole ticks: a few ticks are no measurement.
            print(f"  {load}: n/a (the kernel's forwarding took under {MIN_CPU} of a core, too few "
                  "ticks of softirq time to measure)")
            continue
        print(f"  {load}: {per_core[a] / per_core[b]:.2f}")


if __name__ == "__main__":
    main()
