#!/usr/bin/env python3
"""HTTP forward proxy: ramjet's http endpoint against squid and tinyproxy, side by side.

Each proxy is pinned to one core with one worker; the origin (nginx) and the load
(wrk, or iperf3 through a socat CONNECT client) run on the other core. Repetitions
alternate between proxies within one run. The proxy's CPU time (all threads, user +
system, from /proc) gives:

  us/req     proxy CPU microseconds per request (wrk -c50 keep-alive, absolute-form)
  us/MiB     proxy CPU microseconds per MiB for 1 MiB objects
  CONNECT    Gbit/s per proxy core through a CONNECT tunnel (iperf3)

Usage: bench/http_forward.py [--build-dir build/release] [--reps 2] [--seconds 5]
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import LOAD_CPU, Proc, cpu_seconds, free_port, haproxy, ramjet_daemon, wait_port


def nginx_origin(workdir):
    port = free_port()
    root = os.path.join(workdir, "www")
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "100b"), "wb") as f:
        f.write(b"x" * 100)
    with open(os.path.join(root, "1m"), "wb") as f:
        f.write(os.urandom(1 << 20))
    cfg = os.path.join(workdir, "nginx.conf")
    with open(cfg, "w") as f:
        f.write(f"""daemon off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{port}; root {root}; }}
}}
""")
    return Proc("nginx", ["nginx", "-c", cfg, "-p", workdir], port, workdir, cpu=LOAD_CPU)


def ramjet(build_dir, workdir):
    port = free_port()
    return ramjet_daemon(build_dir, workdir, "ramjet", port,
                         f'  - {{name: fwd, listen: "127.0.0.1:{port}", onramp: http}}\n')


def squid(workdir):
    port = free_port()
    cfg = os.path.join(workdir, "squid.conf")
    with open(cfg, "w") as f:
        f.write(f"""http_port 127.0.0.1:{port}
workers 1
http_access allow all
cache deny all
cache_mem 0 MB
access_log none
cache_log {workdir}/squid-cache.log
pid_filename {workdir}/squid.pid
coredump_dir {workdir}
shutdown_lifetime 1 seconds
""")
    return Proc("squid", ["squid", "-N", "-f", cfg], port, workdir)


def tinyproxy(workdir):
    port = free_port()
    cfg = os.path.join(workdir, "tinyproxy.conf")
    with open(cfg, "w") as f:
        f.write(f"""Port {port}
Listen 127.0.0.1
Timeout 60
MaxClients 200
LogLevel Critical
DisableViaHeader Yes
""")
    return Proc("tinyproxy", ["tinyproxy", "-d", "-c", cfg], port, workdir)


def nginx_reverse(workdir, origin_port, name="nginx-rev", tls="", after_http="", listen=""):
    """nginx as a reverse proxy with a keep-alive upstream pool: the same per-request work
    (parse, forward, pooled upstream, stream the response back) in origin-form. `tls`:
    ssl_* directives (the listener then speaks TLS); `after_http`: more top-level blocks
    (with their load_module lines first); `listen`: more listen parameters (" http2")."""
    port = free_port()
    cfg = os.path.join(workdir, f"{name}.conf")
    modules = "".join(f"{line}\n" for line in after_http.splitlines() if line.startswith("load_module"))
    blocks = "".join(f"{line}\n" for line in after_http.splitlines() if not line.startswith("load_module"))
    with open(cfg, "w") as f:
        f.write(f"""{modules}daemon off;
worker_processes 1;
pid {workdir}/{name}.pid;
error_log {workdir}/{name}-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  upstream origin {{ server 127.0.0.1:{origin_port}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port}{" ssl" if tls else ""}{listen};
    {tls}
    location / {{ proxy_pass http://origin; proxy_http_version 1.1;
                 proxy_set_header Connection ""; }}
  }}
}}
{blocks}""")
    return Proc(name, ["nginx", "-c", cfg, "-p", workdir, "-e", f"{workdir}/{name}-error.log"],
                port, workdir)


def haproxy_reverse(workdir, origin_port):
    return haproxy(workdir, "haproxy-rev", "http", origin_port, "    http-reuse always\n")


def wrk(proxy_port, origin_port, path, seconds, workdir, name="", origin_form=False):
    """Requests completed in `seconds`: absolute-form through a forward proxy, or
    origin-form (origin_form=True) to a reverse proxy."""
    script = os.path.join(workdir, f"abs{path.replace('/', '_')}.lua")
    with open(script, "w") as f:
        f.write(f'wrk.path = "http://127.0.0.1:{origin_port}{path}"\n'
                f'wrk.headers["Host"] = "127.0.0.1:{origin_port}"\n')
    target = ["-s", script, f"http://127.0.0.1:{proxy_port}"]
    if origin_form:
        target = [f"http://127.0.0.1:{proxy_port}{path}"]
    out = subprocess.run(["taskset", "-c", LOAD_CPU, "wrk", "-t1", "-c50", f"-d{seconds}s"] + target,
                         capture_output=True, text=True, timeout=seconds + 30)
    m = re.search(r"(\d+) requests in", out.stdout)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout)
    if not m or errors:
        raise RuntimeError(f"wrk failed through {name} (port {proxy_port}): {out.stdout}{out.stderr}")
    return int(m.group(1))


def connect_gbps(proxy, iperf_port, seconds, workdir):
    local = free_port()
    sock = subprocess.Popen(["taskset", "-c", LOAD_CPU, "socat",
                             f"TCP-LISTEN:{local},bind=127.0.0.1,reuseaddr,fork",
                             f"PROXY:127.0.0.1:127.0.0.1:{iperf_port},proxyport={proxy.port}"],
                            stderr=subprocess.DEVNULL)
    try:
        wait_port(local)
        c0, t0 = cpu_seconds(proxy.pids()), time.time()
        out = subprocess.run(["taskset", "-c", LOAD_CPU, "iperf3", "-c", "127.0.0.1", "-p",
                              str(local), "-t", str(seconds), "-J"], capture_output=True,
                             text=True, timeout=seconds + 30)
        cpu = (cpu_seconds(proxy.pids()) - c0) / (time.time() - t0)
        gbps = json.loads(out.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9
        return gbps, cpu
    finally:
        sock.terminate()
        sock.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="build/release")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=5)
    args = ap.parse_args()
    for tool in ("nginx", "squid", "tinyproxy", "wrk", "iperf3", "socat", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is not installed (make deps installs it)")

    workdir = tempfile.mkdtemp(prefix="ramjet-httpbench-")
    os.chmod(workdir, 0o755)  # nginx workers run unprivileged and must read www/
    origin = nginx_origin(workdir)
    iperf_port = free_port()
    iperf = subprocess.Popen(["taskset", "-c", LOAD_CPU, "iperf3", "-s", "-p", str(iperf_port)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proxies = [ramjet(args.build_dir, workdir), squid(workdir), tinyproxy(workdir)]
    res = {p.name: {"us_req": [], "us_mib": [], "connect": []} for p in proxies}
    # Not forward proxies: their per-request cost, origin-form, is the bar for ours.
    reverse = [nginx_reverse(workdir, origin.port), haproxy_reverse(workdir, origin.port)]
    rev_us = {p.name: [] for p in reverse}
    try:
        origin.start()
        wait_port(iperf_port)
        for p in proxies:
            p.start()
            check = subprocess.run(["curl", "-sS", "-x", f"http://127.0.0.1:{p.port}", "-D", "-",
                                    f"http://127.0.0.1:{origin.port}/100b"],
                                   capture_output=True, text=True, timeout=10)
            if not check.stdout.startswith("HTTP/1.1 200"):
                raise RuntimeError(f"{p.name} does not proxy: {check.stdout}{check.stderr}")
        for p in reverse:
            p.start()
        for rep in range(args.reps):
            for p in proxies:
                c0 = cpu_seconds(p.pids())
                n = wrk(p.port, origin.port, "/100b", args.seconds, workdir, p.name)
                res[p.name]["us_req"].append((cpu_seconds(p.pids()) - c0) * 1e6 / n)
                c0 = cpu_seconds(p.pids())
                n = wrk(p.port, origin.port, "/1m", args.seconds, workdir, p.name)
                res[p.name]["us_mib"].append((cpu_seconds(p.pids()) - c0) * 1e6 / n)
                gbps, cpu = connect_gbps(p, iperf_port, args.seconds, workdir)
                res[p.name]["connect"].append(gbps / max(cpu, 1e-6))
            for p in reverse:
                c0 = cpu_seconds(p.pids())
                n = wrk(p.port, origin.port, "/100b", args.seconds, workdir, p.name, origin_form=True)
                rev_us[p.name].append((cpu_seconds(p.pids()) - c0) * 1e6 / n)
            print(f"rep {rep + 1}/{args.reps} done", file=sys.stderr)
    finally:
        for p in proxies + reverse:
            p.stop()
        origin.stop()
        iperf.terminate()
        iperf.wait()
        shutil.rmtree(workdir, ignore_errors=True)

    med = {name: {k: statistics.median(v) for k, v in r.items()} for name, r in res.items()}
    print(f"\nHTTP forward proxy, one proxy core, {args.reps} x {args.seconds}s alternating "
          "(median; CPU of the proxy process only)")
    print(f"{'proxy':<12}{'us/req 100B':>13}{'us/MiB':>10}{'CONNECT Gbit/s/core':>22}")
    for name, m in med.items():
        print(f"{name:<12}{m['us_req']:>13.1f}{m['us_mib']:>10.1f}{m['connect']:>22.2f}")
    print("\nratios (ramjet / peer; lower is better for us, higher for Gbit/s)")
    for peer in ("squid", "tinyproxy"):
        r, q = med["ramjet"], med[peer]
        print(f"  vs {peer}: us/req {r['us_req'] / q['us_req']:.2f}, "
              f"us/MiB {r['us_mib'] / q['us_mib']:.2f}, CONNECT {r['connect'] / q['connect']:.2f}")
    print("\nreverse proxies, origin-form, same origin and load: us/req 100B (the bar)")
    for name, runs in rev_us.items():
        us = statistics.median(runs)
        print(f"  {name:<12}{us:>8.1f}   ramjet / {name}: {med['ramjet']['us_req'] / us:.2f}")


if __name__ == "__main__":
    main()
