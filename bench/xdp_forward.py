#!/usr/bin/env python3
"""Packets per second through a gateway: the kernel's IP forwarding against ramjet's
XDP fast path, and an XDP drop rule against nftables drop rules, side by side.

Topology (network namespaces of its own, removed at the end):

  client ns                gateway ns                 server ns
  eth0 10.10.1.2 ---- gw-c 10.10.1.1 | gw-s 10.10.2.1 ---- eth0 10.10.2.2

Two inputs, each run through every scenario, alternated within one run:
  frames  tests/bpf/build/xdp_livegen: BPF_PROG_TEST_RUN in live-frames mode (the
          xdp-trafficgen approach) whose program XDP_REDIRECTs 60-byte UDP frames into
          the client's eth0, so gw-c receives xdp_frames, as XDP on a NIC receives raw
          frames. Without an XDP program, gw-c's NAPI (GRO on) builds skbs from them
          for the stack; with ramjet's XDP they are redirected without ever being an skb.
  skbs    trafgen (netsniff-ng, AF_PACKET): gw-c receives skbs, which native XDP on a
          veth must first copy into a page of its own (headroom < 256) - a cost real
          NICs never have. Kept so the old figures stay visible.
The generator runs pinned to core LOAD_CPU, sending 64 flows (UDP source ports) to
10.10.2.2 as fast as it can.
The gateway's receive side runs in its own kernel thread (threaded NAPI on gw-c)
pinned to core PROXY_CPU, so everything the gateway does per packet - XDP, or the
stack's forwarding, or nftables - runs on that one core and nothing else does
(ramjetd's own threads run on LOAD_CPU). The server's receive thread (the sink) is
pinned to LOAD_CPU with the generator, at SCHED_FIFO so it always keeps up.

Scenarios:
  kernel fwd       no XDP; the kernel's IP forwarding (ip_forward=1), in gw-c's
                   NAPI thread like the XDP scenarios
  kernel fwd rps   (skbs only) the same through the classic backlog path: GRO off on
                   gw-c (no NAPI), RPS steering its frames to the gateway core (CPU
                   use: that core's busy time from /proc/stat)
  xdp fwd          ramjetd, datapath on gw-c/gw-s, default_action fastpath
  nft drop ingress nftables `netdev` ingress hook on gw-c: drop
  nft drop prerouting  nftables `inet` prerouting hook (priority raw): drop
  xdp drop         ramjetd with a drop rule for the client's prefix

For each: packets per second forwarded to the server (or dropped, for the drop
scenarios: the dropping rule's own counter), the gateway's CPU use (CPU time of
its NAPI threads, which do all of its per-packet work, per wall second: 1.0 = one
core busy) and pps per gateway core = pps / CPU use. When the gateway is not
saturated, the generator was the limit and pps per core is the figure to compare.
The sink is ramjet's XDP again, on the server's eth0 with default_action drop
(the cheapest way to count what arrived; it runs on the load core).
Ratios, per input: xdp fwd / kernel fwd, xdp drop / nft drop.
Caveat of the frames input: a frame dropped on the gateway goes back to the
generator's page pool from the other core (the locked return: perf shows its
spinlock at 3-4x the XDP program's time in the XDP drop run, and nftables' drops
pay it too), while a forwarded one is freed by the sink on the generator's own
core; a NIC driver's own XDP drop recycles locally. Drops on frames are therefore
charged more than they would be on a NIC.

trafgen's packet socket needs a bigger send buffer than the default (frames
waiting in the veth ring count against it); the global net.core.wmem_default is
raised for the run and restored.

Usage: bench/xdp_forward.py [--build-dir build/release] [--reps 3] [--seconds 4]
         [--inputs frames,skbs] [--only NAME] [--perf PREFIX]
Needs root, trafgen (netsniff-ng, for skbs), nft, ethtool, taskset, chrt, clang and
bpftool (xdp_livegen is built on demand).
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import CLK_TCK, LOAD_CPU, PROXY_CPU, cpu_seconds

CLIENT = {"ip": "10.10.1.2", "mac": "02:00:0a:0a:01:02"}
GW_C = {"ip": "10.10.1.1", "mac": "02:00:0a:0a:01:01"}
GW_S = {"ip": "10.10.2.1", "mac": "02:00:0a:0a:02:01"}
SERVER = {"ip": "10.10.2.2", "mac": "02:00:0a:0a:02:02"}
FLOWS = 64


def sh(*argv, check=True, capture=False):
    res = subprocess.run(argv, check=False, text=True, capture_output=True)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res.stdout if capture else res


class Topology:
    """client -- gateway -- server, fixed MACs and permanent neighbours (no ARP during a run)."""

    def __init__(self, prefix="rjb"):
        self.prefix = f"{prefix}{random.randrange(16**4):04x}"
        self.client, self.gw, self.server = (f"{self.prefix}-c", f"{self.prefix}-gw", f"{self.prefix}-s")
        self.created = []

    def ns(self, name, *argv, **kw):
        return sh("ip", "netns", "exec", name, *argv, **kw)

    def ip(self, name, *argv):
        return sh("ip", "-n", name, *argv)

    def add_links(self):
        """The namespaces, both veth pairs (no addresses yet) and forwarding on the gateway."""
        for name in (self.client, self.gw, self.server):
            sh("ip", "netns", "add", name)
            self.created.append(name)
            self.ip(name, "link", "set", "lo", "up")
        sh("ip", "link", "add", "eth0", "netns", self.client, "address", CLIENT["mac"], "type", "veth",
           "peer", "name", "gw-c", "netns", self.gw, "address", GW_C["mac"])
        sh("ip", "link", "add", "eth0", "netns", self.server, "address", SERVER["mac"], "type", "veth",
           "peer", "name", "gw-s", "netns", self.gw, "address", GW_S["mac"])
        self.ns(self.gw, "sysctl", "-qw", "net.ipv4.ip_forward=1")

    def devices(self):
        """(namespace, device, address) of the four veth ends."""
        return ((self.client, "eth0", CLIENT), (self.gw, "gw-c", GW_C), (self.gw, "gw-s", GW_S),
                (self.server, "eth0", SERVER))

    def add_routes(self):
        """Default routes through the gateway and permanent neighbours (no ARP in a run)."""
        self.ip(self.client, "route", "add", "default", "via", GW_C["ip"])
        self.ip(self.server, "route", "add", "default", "via", GW_S["ip"])
        for name, addr, mac, dev in ((self.client, GW_C["ip"], GW_C["mac"], "eth0"),
                                     (self.gw, CLIENT["ip"], CLIENT["mac"], "gw-c"),
                                     (self.gw, SERVER["ip"], SERVER["mac"], "gw-s"),
                                     (self.server, GW_S["ip"], GW_S["mac"], "eth0")):
            self.ip(name, "neigh", "replace", addr, "lladdr", mac, "dev", dev, "nud", "permanent")

    def create(self):
        self.napi_before = set(napi_threads())
        self.add_links()
        for name, dev, addr in self.devices():
            self.ip(name, "addr", "add", f"{addr['ip']}/24", "dev", dev)
            # GRO on: NAPI on every end (XDP_REDIRECT into a veth needs it on the
            # receiver; the gateway's receive work then runs in a NAPI thread we
            # can pin). tx off: real checksums (redirected frames lose
            # CHECKSUM_PARTIAL state).
            self.ns(name, "ethtool", "-K", dev, "gro", "on", "tx", "off")
            self.ip(name, "link", "set", dev, "up")
        # A veth has no qdisc (noqueue) and stops its queue while the peer's ring
        # is full; with no qdisc to wait in, trafgen's sends fail (EAGAIN).
        self.ns(self.client, "tc", "qdisc", "replace", "dev", "eth0", "root", "pfifo", "limit", "1024")
        self.add_routes()
        # GRO set before the link came up does not start a veth's NAPI; toggled now, it
        # does, and gw-c then takes redirected xdp_frames with no XDP program of its own.
        self.ns(self.gw, "ethtool", "-K", "gw-c", "gro", "off")
        self.ns(self.gw, "ethtool", "-K", "gw-c", "gro", "on")
        # Threaded NAPI: each veth end's receive work in a kernel thread of its own,
        # which pin_napi() puts on the gateway core (gw-*) or the load core (eth0).
        for name, dev in ((self.client, "eth0"), (self.gw, "gw-c"), (self.gw, "gw-s"), (self.server, "eth0")):
            self.ns(name, "sh", "-c", f"echo 1 > /sys/class/net/{dev}/threaded")
        self.pin_napi()

    def gateway_napi_pids(self):
        return [pid for pid, comm in napi_threads().items()
                if pid not in self.napi_before and comm.startswith("napi/gw-")]

    def pin_napi(self):
        """Pins the NAPI threads of our veths (those that appeared since create() began);
        called again whenever attaching XDP may have re-created them."""
        ours = {pid: comm for pid, comm in napi_threads().items() if pid not in self.napi_before}
        if not any(comm.startswith("napi/gw-c-") for comm in ours.values()):
            raise RuntimeError("no NAPI thread for gw-c: threaded NAPI on veth is not available")
        for pid, comm in ours.items():
            gateway = comm.startswith("napi/gw-")
            sh("taskset", "-pc", PROXY_CPU if gateway else LOAD_CPU, str(pid), check=False)
            if not gateway:
                # The sink (and the idle client receive side) preempt the generator on the
                # load core: what the gateway forwards is never lost for want of a sink.
                sh("chrt", "-f", "-p", "10", str(pid), check=False)

    def destroy(self):
        for name in reversed(self.created):
            sh("ip", "netns", "del", name, check=False)
        self.created = []


def terminate(proc, group=False):
    """SIGTERM a process we started, SIGKILL if it is still there after 10 s. With
    group, its whole process group (it was started with start_new_session=True):
    trafgen's sending worker is a child process that outlives a SIGTERM-ed parent,
    keeps its namespace alive and goes on sending (earlier runs of this bench leaked
    one per measurement, each eating CPU for the rest of the run)."""
    if proc is None:
        return
    def signal_it(sig):
        try:
            if group:
                os.killpg(proc.pid, sig)
            elif proc.poll() is None:
                proc.send_signal(sig)
        except ProcessLookupError:
            pass
    signal_it(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        signal_it(signal.SIGKILL)
        proc.wait()
    if group:
        # The group outlives its leader when a child ignores SIGTERM: make sure.
        time.sleep(0.2)
        signal_it(signal.SIGKILL)


def napi_threads():
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm.startswith("napi/"):
            out[int(pid)] = comm
    return out


def read_sysctl(path):
    with open(f"/proc/sys/{path}") as f:
        return int(f.read())


def write_sysctl(path, value):
    with open(f"/proc/sys/{path}", "w") as f:
        f.write(str(value))


def nft(topo, name, ruleset):
    res = subprocess.run(["ip", "netns", "exec", name, "nft", "-f", "-"], input=ruleset, text=True,
                         capture_output=True)
    if res.returncode != 0:
        raise RuntimeError(f"nft in {name} failed: {res.stderr.strip()}\n{ruleset}")


def nft_counter(topo, name, family, table, counter):
    out = topo.ns(name, "nft", "-j", "list", "counter", family, table, counter, capture=True)
    for item in json.loads(out)["nftables"]:
        if "counter" in item:
            return item["counter"]["packets"]
    raise RuntimeError(f"no counter {family} {table} {counter} in {name}")


def gateway_cpu_seconds(topo):
    """CPU time of the gateway's NAPI threads (gw-c, gw-s): all of the gateway's
    per-packet work (XDP, forwarding, nftables) runs in them."""
    return cpu_seconds(topo.gateway_napi_pids())


class Generator:
    """trafgen in the client namespace on LOAD_CPU, through the qdisc path (-q): a veth
    stops its queue when the peer's ring is full, which the qdisc path waits out and
    the default (qdisc bypass) path reports as a fatal send error."""

    def __init__(self, topo, workdir):
        self.topo = topo
        self.cfg = os.path.join(workdir, "udp64.trafgen")
        with open(self.cfg, "w") as f:
            f.write("{ eth(da=%s, sa=%s), ipv4(saddr=%s, daddr=%s, ttl=64), udp(sp=dinc(10000, %d), dp=9), "
                    "fill(0x41, 18) }\n" % (GW_C["mac"], CLIENT["mac"], CLIENT["ip"], SERVER["ip"],
                                           10000 + FLOWS - 1))
        self.proc = None

    def start(self):
        self.log = open(self.cfg + ".log", "w")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.topo.client, "taskset", "-c", LOAD_CPU, "trafgen", "-o", "eth0",
             "-c", self.cfg, "-P", "1", "-q", "-C"], stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        time.sleep(0.3)
        if self.proc.poll() is not None:
            with open(self.log.name) as f:
                raise RuntimeError(f"trafgen exited:\n{f.read()}")

    def stop(self):
        # SIGTERM: trafgen spinning on a full queue does not act on SIGINT. The group:
        # trafgen sends from a child process.
        terminate(self.proc, group=True)
        self.proc = None


class LiveGenerator:
    """tests/bpf/build/xdp_livegen in the client namespace on LOAD_CPU: BPF_PROG_TEST_RUN in
    live-frames mode, whose program XDP_REDIRECTs 60-byte UDP frames (FLOWS source ports)
    into eth0, so gw-c receives xdp_frames, as XDP on a NIC receives raw frames, not the
    skbs an AF_PACKET sender makes (which veth's native XDP must copy into a page first).
    It shares the load core with the sink's NAPI thread, which pin_napi() makes SCHED_FIFO
    so the sink always keeps up and the generator gets the rest of the core."""

    def __init__(self, topo, livegen):
        self.topo, self.livegen, self.proc = topo, livegen, None

    def start(self):
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.topo.client, "taskset", "-c", LOAD_CPU, self.livegen, "eth0", "3600",
             str(FLOWS), CLIENT["mac"], GW_C["mac"], CLIENT["ip"], SERVER["ip"]],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.3)
        if self.proc.poll() is not None:
            raise RuntimeError(f"xdp_livegen exited: {self.proc.stderr.read()}")

    def stop(self):
        terminate(self.proc)
        self.proc = None


class Ramjet:
    """ramjetd with only its datapath, in a namespace of the topology (nsenter --net keeps
    the host's bpffs), pinned to LOAD_CPU: the gateway core only runs the kernel's
    per-packet work."""

    def __init__(self, topo, build_dir, workdir, name, netns, interfaces, default_action, rules,
                 endpoints=(), extra=None, cpu=LOAD_CPU, fastpath_hook="auto"):
        self.topo, self.workdir, self.name = topo, workdir, name
        self.instance = f"bench-{topo.prefix}-{name}"
        self.admin = os.path.join(workdir, f"{name}.sock")
        self.ready = os.path.join(workdir, f"{name}.ready")
        self.cfg = os.path.join(workdir, f"{name}.yaml")
        with open(self.cfg, "w") as f:
            json.dump({
                "server": {"workers": 1, "admin_socket": self.admin, "ready_file": self.ready},
                "logging": {"level": "warn", "access_log": "off"},
                "endpoints": list(endpoints),
                "datapath": {"enabled": True, "instance": self.instance, "interfaces": interfaces,
                             "fastpath_hook": fastpath_hook, "default_action": default_action,
                             "rules": rules},
                **(extra or {}),
            }, f)
        self.argv = ["nsenter", f"--net=/run/netns/{netns}", "--", "taskset", "-c", cpu,
                     os.path.join(build_dir, "bin", "ramjetd"), "--config", self.cfg]
        self.proc = None

    def start(self):
        for path in (self.ready, self.admin):
            if os.path.exists(path):
                os.unlink(path)
        self.log = open(os.path.join(self.workdir, f"{self.name}.log"), "w")
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        while not os.path.exists(self.ready):
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                with open(os.path.join(self.workdir, f"{self.name}.log")) as f:
                    raise RuntimeError(f"ramjetd ({self.name}) did not become ready:\n{f.read()}")
            time.sleep(0.05)
        # Attaching XDP may have re-created the veth NAPI instance: re-pin.
        self.topo.pin_napi()

    def stat(self, name):
        body = admin_get(self.admin, "/v1/datapath")
        return body["stats"][name]["packets"]

    def stop(self):
        terminate(self.proc)
        self.proc = None


def admin_get_text(sock_path, path):
    """The body of GET path on the admin socket, read to the end (NDJSON bodies end there)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(sock_path)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: ramjet\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(f"admin GET {path}: {head[:200]!r}")
    return body


def admin_get(sock_path, path):
    return json.loads(admin_get_text(sock_path, path))


def core_busy_seconds(cpu):
    """Busy time of one core (user+nice+system+irq+softirq+steal) from /proc/stat."""
    with open("/proc/stat") as f:
        for line in f:
            fields = line.split()
            if fields[0] == f"cpu{cpu}":
                v = [int(x) for x in fields[1:9]]
                return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / CLK_TCK
    raise RuntimeError(f"cpu{cpu} not in /proc/stat")


PERF_PREFIX, PERF_RUNS = "", 0


def measure(gen, count, seconds, warmup=1.0, cpu=None):
    """Runs the generator; returns (pps, gateway CPU seconds per second) over `seconds`
    after `warmup`. `cpu` reads the gateway's CPU seconds (default: its NAPI threads)."""
    cpu = cpu or (lambda: gateway_cpu_seconds(gen.topo))
    gen.start()
    try:
        time.sleep(warmup)
        c0, g0, w0 = count(), cpu(), time.time()
        if PERF_PREFIX:
            global PERF_RUNS
            PERF_RUNS += 1
            sh("perf", "record", "-q", "-C", PROXY_CPU, "-o", f"{PERF_PREFIX}.{PERF_RUNS}", "--", "sleep", str(seconds))
        else:
            time.sleep(seconds)
        c1, g1, w1 = count(), cpu(), time.time()
    finally:
        gen.stop()
    return (c1 - c0) / (w1 - w0), (g1 - g0) / (w1 - w0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="build/release")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--inputs", default="frames,skbs",
                    help="frames: xdp_livegen (xdp_frames into the gateway); skbs: trafgen (AF_PACKET)")
    ap.add_argument("--only", default="", help="run only the scenarios whose name contains this")
    ap.add_argument("--perf", default="", help="perf record the gateway core during each measurement "
                    "into PREFIX.<n> (to see where its time goes)")
    args = ap.parse_args()
    inputs = [i for i in args.inputs.split(",") if i]
    global PERF_PREFIX
    PERF_PREFIX = args.perf
    if not inputs or any(i not in ("frames", "skbs") for i in inputs):
        sys.exit("bench: --inputs takes frames, skbs or both")
    if os.geteuid() != 0:
        sys.exit("bench: xdp_forward needs root (network namespaces, XDP)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    livegen = os.path.join(root, "tests", "bpf", "build", "xdp_livegen")
    if "frames" in inputs:
        sh("make", "-s", "-C", os.path.join(root, "tests", "bpf"), "livegen")
    for tool in ("nft", "ethtool", "taskset", "nsenter") + (("trafgen",) if "skbs" in inputs else ()):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is not installed (make deps / make deps-bench install it)")
    ramjetd = os.path.join(args.build_dir, "bin", "ramjetd")
    if not os.path.exists(ramjetd):
        sys.exit(f"bench: {ramjetd} does not exist (make build)")

    # SIGTERM (e.g. a timeout) unwinds like an exception: the finally below restores
    # the sysctl and removes the namespaces.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench: terminated"))
    workdir = tempfile.mkdtemp(prefix="ramjet-bench-xdp-")
    topo = Topology()
    daemons = []
    results = {}
    wmem_default = read_sysctl("net/core/wmem_default")
    try:
        # trafgen's packet socket has the default send buffer, and the frames queued in
        # a veth ring waiting for the gateway's NAPI thread fill it: sends fail with
        # EAGAIN and trafgen stops. trafgen would raise the limit itself but cannot from
        # inside a namespace; this sysctl is global, so it is raised here and restored.
        write_sysctl("net/core/wmem_default", max(wmem_default, 4 << 20))
        topo.create()
        skbs = Generator(topo, workdir)
        frames = LiveGenerator(topo, livegen)
        # The sink: ramjet's XDP on the server's eth0 drops everything (default_action
        # drop), the cheapest place to count what got through; it runs in the server's
        # NAPI thread on the load core.
        # fastpath_hook xdp: this bench measures XDP on xdp_frames (auto would pick tc
        # on veth; bench/veth_bulk_tcp.py measures that).
        sink = Ramjet(topo, args.build_dir, workdir, "sink", topo.server, ["eth0"], "drop", [],
                      fastpath_hook="xdp")
        xdp_fwd = Ramjet(topo, args.build_dir, workdir, "fwd", topo.gw, ["gw-c", "gw-s"], "fastpath", [],
                         fastpath_hook="xdp")
        xdp_drop = Ramjet(topo, args.build_dir, workdir, "drop", topo.gw, ["gw-c", "gw-s"], "fastpath",
                          [{"name": "bench-drop", "src": "10.10.1.0/24", "action": "drop"}],
                          fastpath_hook="xdp")
        daemons = [sink, xdp_fwd, xdp_drop]
        sink.start()
        server_rx = lambda: sink.stat("DEFAULT_DROP")  # noqa: E731

        def kernel_fwd(gen):
            return measure(gen, server_rx, args.seconds)

        def kernel_fwd_rps(gen):
            # The stack's classic receive path: GRO off, so gw-c has no NAPI and frames
            # go through the per-CPU backlog, steered by RPS to the gateway core. Its
            # work then runs in that core's softirq: CPU use is the core's busy time.
            # (skbs only: without NAPI a veth refuses redirected xdp_frames.)
            topo.ns(topo.gw, "ethtool", "-K", "gw-c", "gro", "off")
            topo.ns(topo.gw, "sh", "-c", f"echo {1 << int(PROXY_CPU):x} > /sys/class/net/gw-c/queues/rx-0/rps_cpus")
            try:
                return measure(gen, server_rx, args.seconds, cpu=lambda: core_busy_seconds(PROXY_CPU))
            finally:
                topo.ns(topo.gw, "sh", "-c", "echo 0 > /sys/class/net/gw-c/queues/rx-0/rps_cpus")
                topo.ns(topo.gw, "ethtool", "-K", "gw-c", "gro", "on")
                topo.ns(topo.gw, "sh", "-c", "echo 1 > /sys/class/net/gw-c/threaded")
                topo.pin_napi()

        def nft_drop(gen, family, hook, priority):
            dev = ' device "gw-c"' if family == "netdev" else ""
            nft(topo, topo.gw, f"""
table {family} bench {{
  counter dropped {{}}
  chain c {{ type filter hook {hook}{dev} priority {priority}; ip saddr 10.10.1.0/24 counter name "dropped" drop; }}
}}""")
            try:
                return measure(gen, lambda: nft_counter(topo, topo.gw, family, "bench", "dropped"), args.seconds)
            finally:
                topo.ns(topo.gw, "nft", "delete", "table", family, "bench")

        def ramjet(gen, daemon, count):
            daemon.start()
            try:
                return measure(gen, count, args.seconds)
            finally:
                daemon.stop()

        def rows(gen, with_rps):
            return [
                ("kernel fwd", lambda: kernel_fwd(gen)),
                *([("kernel fwd rps", lambda: kernel_fwd_rps(gen))] if with_rps else []),
                ("xdp fwd", lambda: ramjet(gen, xdp_fwd, server_rx)),
                ("nft drop ingress", lambda: nft_drop(gen, "netdev", "ingress", 0)),
                ("nft drop prerouting", lambda: nft_drop(gen, "inet", "prerouting", -300)),
                ("xdp drop", lambda: ramjet(gen, xdp_drop, lambda: xdp_drop.stat("RULE_DROP"))),
            ]

        scenarios = []
        if "frames" in inputs:
            scenarios += [((name, "frames"), run) for name, run in rows(frames, False)]
        if "skbs" in inputs:
            scenarios += [((name, "skbs"), run) for name, run in rows(skbs, True)]
        scenarios = [(key, run) for key, run in scenarios if args.only in key[0]]
        results = {key: [] for key, _ in scenarios}
        for rep in range(args.reps):
            for key, run in scenarios:
                results[key].append(run())
            print(f"rep {rep + 1}/{args.reps} done", file=sys.stderr)
    finally:
        for d in daemons:
            d.stop()
        topo.destroy()
        write_sysctl("net/core/wmem_default", wmem_default)
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\nGateway packets/s, 60-byte UDP frames, {FLOWS} flows, veth, gateway NAPI threads on core "
          f"{PROXY_CPU}, generator on core {LOAD_CPU}; {args.reps} x {args.seconds:g}s alternating (median)")
    print("input frames: xdp_livegen, xdp_frames into gw-c (what XDP gets from a NIC); "
          "input skbs: trafgen, AF_PACKET skbs into gw-c")
    print(f"{'scenario':<22}{'input':<8}{'Mpps':>8}{'gw cpu':>9}{'Mpps per gw core':>19}")
    per_core, pps = {}, {}
    for key, runs in results.items():
        pps[key] = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        per_core[key] = statistics.median(r[0] / max(r[1], 1e-3) for r in runs)
        print(f"{key[0]:<22}{key[1]:<8}{pps[key] / 1e6:>8.3f}{cpu:>9.2f}{per_core[key] / 1e6:>19.3f}")
    print("\nratios (pps per gateway core; raw pps in parentheses); target: xdp fwd >= 2x kernel fwd")
    for inp in inputs:
        for ours, peers in (("xdp fwd", ("kernel fwd", "kernel fwd rps")),
                            ("xdp drop", ("nft drop ingress", "nft drop prerouting"))):
            peers = [p for p in peers if (p, inp) in per_core]
            if (ours, inp) not in per_core or not peers:
                continue
            best = max(peers, key=lambda n: per_core[(n, inp)])
            for peer in peers:
                mark = "  <- best peer" if peer == best else ""
                a, b = (ours, inp), (peer, inp)
                print(f"  [{inp}] {ours} / {peer}: {per_core[a] / per_core[b]:.2f} "
                      f"({pps[a] / pps[b]:.2f}){mark}")


if __name__ == "__main__":
    main()
