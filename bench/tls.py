#!/usr/bin/python3
"""TLS termination: ramjet against nginx and haproxy doing the same job, side by side.

Each proxy runs on one core (one worker or thread) and terminates TLS with the same
ECDSA P-256 certificate in front of one local plaintext origin (nginx, on the other
core with the load). Two jobs per proxy:

  https   reverse proxy: TLS in (ALPN h2 and http/1.1), HTTP/1.1 to the origin over a
          keep-alive pool (ramjet: `onramp: http` + `upstream: http://...`; nginx:
          proxy_pass, `listen ... ssl http2`; haproxy: mode http, http-reuse always,
          `alpn h2,http/1.1`)
  tlstcp  TLS in, plain TCP to the origin (ramjet: `onramp: tcp` + tls; nginx:
          stream ssl; haproxy: mode tcp, bind ... ssl)

Measured, with the proxy's CPU time (all threads, user + system, from /proc):

  full/s     full handshakes per proxy CPU-second (TLS 1.3, X25519, ECDSA P-256;
             `openssl s_time -new`, one small GET per connection, several clients)
  resumed/s  resumed handshakes per proxy CPU-second (TLS 1.2 session resumption:
             `openssl s_time -reuse`; its TLS 1.3 reuse mode does not work)
  req/s      HTTPS requests per proxy CPU-second on keep-alive HTTP/1.1
             (h2load --h1 -c50, 100 B responses)
  h2 req/s   the same over HTTP/2 (h2load -c50, one stream at a time per connection
             like the HTTP/1.1 column; ALPN h2, checked: a proxy that does not
             negotiate h2 is reported as failed)
  us/MiB     proxy CPU microseconds per MiB of TLS bulk data through tlstcp
             (h2load --h1 downloading 1 MiB objects through the TLS TCP listener)

"Per CPU-second" is per core: a proxy that saturates its core does that many per
second. Ratios are ramjet / peer (higher is better for rates, lower for us/MiB).
A proxy that fails to start or to answer is reported as such and left out.

Usage: bench/tls.py [--build-dir build/release] [--reps 2] [--seconds 5] [--clients 2]
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import LOAD_CPU, Proc, cpu_seconds, free_port, ramjet_daemon, wait_port
from http_forward import nginx_origin, nginx_reverse

NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"


def make_cert(workdir):
    """A self-signed ECDSA P-256 certificate for 127.0.0.1 (clients do not verify)."""
    cert, key = os.path.join(workdir, "cert.pem"), os.path.join(workdir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-subj",
                    "/CN=bench.example.test", "-addext", "subjectAltName=IP:127.0.0.1", "-days", "2"],
                   check=True, capture_output=True)
    os.chmod(key, 0o644)  # nginx workers and haproxy read it as other users
    combined = os.path.join(workdir, "combined.pem")
    with open(combined, "wb") as f:
        for part in (cert, key):
            with open(part, "rb") as p:
                f.write(p.read())
    return cert, key, combined


class TlsProxy(Proc):
    """A proxy with two listeners: `port` (https reverse proxy) and `tcp_port` (TLS -> TCP)."""

    def __init__(self, name, argv, port, tcp_port, workdir):
        super().__init__(name, argv, port, workdir)
        self.tcp_port = tcp_port

    def start(self):
        super().start()
        wait_port(self.tcp_port)


def ramjet(build_dir, workdir, origin_port, cert, key):
    port, tcp_port = free_port(), free_port()
    tls = f"certificates: [{{cert: {cert}, key: {key}}}], session_tickets: {{enabled: true}}"
    proc = ramjet_daemon(build_dir, workdir, "ramjet", port, f"""\
  - {{name: https, listen: "127.0.0.1:{port}", onramp: http,
      upstream: "http://127.0.0.1:{origin_port}", tls: {{{tls}, alpn: [h2, http/1.1]}}}}
  - {{name: tlstcp, listen: "127.0.0.1:{tcp_port}", onramp: tcp,
      upstream: "127.0.0.1:{origin_port}", tls: {{{tls}}}}}
""")
    return TlsProxy(proc.name, proc.argv, port, tcp_port, workdir)


def nginx(workdir, origin_port, cert, key):
    """The http_forward reverse proxy with TLS, plus a stream (TLS -> TCP) server."""
    tcp_port = free_port()
    ssl = (f"ssl_certificate {cert}; ssl_certificate_key {key}; ssl_protocols TLSv1.2 TLSv1.3; "
           "ssl_session_tickets on; ssl_session_cache off;")
    stream = (f"load_module {NGINX_STREAM_MODULE};\n"
              f"stream {{ server {{ listen 127.0.0.1:{tcp_port} ssl; {ssl} "
              f"proxy_pass 127.0.0.1:{origin_port}; }} }}")
    # Its files are nginx-tls.*: nginx.conf is the origin's.
    proc = nginx_reverse(workdir, origin_port, "nginx-tls", tls=ssl, after_http=stream,
                         listen=" http2")
    return TlsProxy("nginx", proc.argv, proc.port, tcp_port, workdir)


def haproxy(workdir, origin_port, combined):
    port, tcp_port = free_port(), free_port()
    cfg = os.path.join(workdir, "haproxy-tls.cfg")
    with open(cfg, "w") as f:
        f.write(f"""global
    nbthread 1
    maxconn 4000
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend https
    mode http
    bind 127.0.0.1:{port} ssl crt {combined} alpn h2,http/1.1
    default_backend origin_http
backend origin_http
    mode http
    http-reuse always
    server s1 127.0.0.1:{origin_port}
frontend tlstcp
    mode tcp
    bind 127.0.0.1:{tcp_port} ssl crt {combined}
    default_backend origin_tcp
backend origin_tcp
    mode tcp
    server s1 127.0.0.1:{origin_port}
""")
    return TlsProxy("haproxy", ["haproxy", "-f", cfg], port, tcp_port, workdir)


def check(proxy):
    """One HTTPS request through each listener; raises unless both answer 200 with the 100 B body.
    Over HTTP/1.1: HTTP/2 has its own column, which fails on its own."""
    for port in (proxy.port, proxy.tcp_port):
        out = subprocess.run(["curl", "-sk", "--http1.1", "-o", "-", "-w", " %{http_code}",
                              f"https://127.0.0.1:{port}/100b"],
                             capture_output=True, text=True, timeout=10)
        if not out.stdout.endswith(" 200") or len(out.stdout) != 104:
            raise RuntimeError(f"{proxy.name} port {port} does not serve /100b: "
                               f"{out.stdout[:200]!r} {out.stderr}")


def measured(proxy, run):
    """Runs `run()` -> count; returns count per proxy CPU-second and the raw rate."""
    c0, t0 = cpu_seconds(proxy.pids()), time.time()
    count = run()
    cpu, wall = cpu_seconds(proxy.pids()) - c0, time.time() - t0
    return count / max(cpu, 1e-6), count / wall


def s_time(port, mode, seconds, clients):
    """Connections made by `clients` parallel `openssl s_time` runs; the share reused."""
    version = "-tls1_3" if mode == "-new" else "-tls1_2"
    argv = ["taskset", "-c", LOAD_CPU, "openssl", "s_time", "-connect", f"127.0.0.1:{port}",
            mode, version, "-time", str(seconds), "-www", "/100b"]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(clients)]
    total, reused = 0, 0
    for p in procs:
        out, _ = p.communicate(timeout=seconds + 30)
        m = re.search(r"(\d+) connections in [\d.]+ real seconds", out)
        if not m:
            raise RuntimeError(f"s_time {mode} on port {port} failed: {out[-500:]}")
        total += int(m.group(1))
        # s_time prints a line of one character per connection: 'r' when the session was reused.
        progress = re.findall(r"^[*.rn]+$", out, re.M)
        reused += sum(line.count("r") for line in progress) if mode == "-reuse" else 0
    return total, reused


def h2load(port, path, seconds=None, requests=None, clients=50, protocol="http/1.1"):
    """h2load over TLS speaking `protocol` (ALPN "http/1.1" or "h2"); returns requests that
    succeeded. Raises unless every connection negotiated `protocol`."""
    limit = ["-D", str(seconds)] if seconds else ["-n", str(requests)]
    h1 = ["--h1"] if protocol == "http/1.1" else []
    out = subprocess.run(["taskset", "-c", LOAD_CPU, "h2load"] + h1 + ["-c", str(clients)] + limit +
                         [f"https://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True, timeout=(seconds or 60) + 60)
    m = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed",
                  out.stdout)
    codes = re.search(r"status codes: .*", out.stdout)
    if not m or int(m.group(2)) > 0 or int(m.group(1)) == 0:
        why = f"{m.group(0)}; {codes.group(0)}" if m and codes else out.stdout[-800:] + out.stderr
        raise RuntimeError(f"h2load through port {port} failed: {why}")
    # An answer is a success to h2load whatever its status: the origin serves only 200s.
    ok = re.search(r"status codes: (\d+) 2xx", out.stdout)
    if not ok or int(ok.group(1)) != int(m.group(1)):
        raise RuntimeError(f"h2load through port {port}: not every answer was 2xx "
                           f"({codes.group(0) if codes else 'no status codes'})")
    # h2load prints the protocol it spoke ("No protocol negotiated" before it when ALPN
    # chose nothing and it fell back to HTTP/1.1, as on the tlstcp listeners).
    alpn = re.findall(r"^Application protocol: (\S+)", out.stdout, re.M)
    if not alpn or any(a != protocol for a in alpn):
        raise RuntimeError(f"h2load through port {port} did not negotiate {protocol}: "
                           f"{alpn or 'no application protocol'}")
    return int(m.group(1))


def run_proxy(proxy, args, res, column_failed):
    """One repetition of every measurement for `proxy`, appended to res[proxy.name]. A
    column that fails leaves the others standing: its reason goes to column_failed."""
    r = res[proxy.name]
    full = {}

    def handshakes(mode):
        n, reused = s_time(proxy.port, mode, args.seconds, args.clients)
        full[mode] = (n, reused)
        return n

    r["full"].append(measured(proxy, lambda: handshakes("-new"))[0])
    r["resumed"].append(measured(proxy, lambda: handshakes("-reuse"))[0])
    n, reused = full["-reuse"]
    r["reused_share"].append(reused / max(n, 1))
    r["req"].append(measured(proxy, lambda: h2load(proxy.port, "/100b", seconds=args.seconds))[0])
    if "h2_req" not in column_failed.get(proxy.name, {}):
        try:
            r["h2_req"].append(measured(proxy, lambda: h2load(
                proxy.port, "/100b", seconds=args.seconds, protocol="h2"))[0])
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            column_failed.setdefault(proxy.name, {})["h2_req"] = str(e)
    per_cpu_s, _ = measured(proxy, lambda: h2load(proxy.tcp_port, "/1m", requests=args.bulk_mib,
                                                  clients=4))
    r["us_mib"].append(1e6 / per_cpu_s)  # 1 MiB objects: per CPU-second -> us per MiB


def report(res, failed, column_failed, args):
    keys = ("full", "resumed", "req", "h2_req", "us_mib")
    nan = float("nan")
    med = {name: {k: statistics.median(r[k]) if r[k] and k not in column_failed.get(name, {})
                  else nan for k in keys + ("reused_share",)}
           for name, r in res.items() if r["full"]}

    def cell(value, width, fmt=".0f"):
        return f"{'failed':>{width}}" if value != value else f"{value:>{width}{fmt}}"

    def ratio(a, b):
        return "n/a" if a != a or b != b else f"{a / b:.2f}"

    print(f"\nTLS termination, one proxy core each, {args.reps} x {args.seconds}s alternating "
          "(median; per proxy CPU-second; CPU of the proxy process only)")
    print(f"{'proxy':<10}{'full hs/s':>11}{'resumed/s':>11}{'(reused)':>10}{'https req/s':>13}"
          f"{'h2 req/s':>10}{'us/MiB':>9}")
    for name, m in med.items():
        print(f"{name:<10}{cell(m['full'], 11)}{cell(m['resumed'], 11)}"
              f"{cell(m['reused_share'], 10, '.0%')}{cell(m['req'], 13)}{cell(m['h2_req'], 10)}"
              f"{cell(m['us_mib'], 9)}")
    for name, why in failed.items():
        print(f"{name:<10}failed: {why}")
    for name, columns in column_failed.items():
        for column, why in columns.items():
            print(f"{name:<10}{column} failed: {why}")
    if "ramjet" not in med:
        return
    print("\nratios ramjet / peer (rates: higher is better; us/MiB: lower is better)")
    for peer in (p for p in med if p != "ramjet"):
        r, q = med["ramjet"], med[peer]
        print(f"  vs {peer:<8} full {ratio(r['full'], q['full'])}  resumed "
              f"{ratio(r['resumed'], q['resumed'])}  req {ratio(r['req'], q['req'])}  "
              f"h2_req {ratio(r['h2_req'], q['h2_req'])}  us/MiB {ratio(r['us_mib'], q['us_mib'])}")
    peers = [m for p, m in med.items() if p != "ramjet"]
    if peers:
        r = med["ramjet"]
        best = {k: max((p[k] for p in peers if p[k] == p[k]), default=nan)
                for k in ("full", "resumed", "req", "h2_req")}
        best_mib = min(p["us_mib"] for p in peers)
        print("  vs the better peer: " + "  ".join(f"{k} {ratio(r[k], best[k])}" for k in best) +
              f"  us/MiB {ratio(r['us_mib'], best_mib)}   (targets: >= 1.2 for rates, <= 1.0 "
              "for us/MiB)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="build/release")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--clients", type=int, default=2, help="parallel s_time clients")
    ap.add_argument("--bulk-mib", type=int, default=400, help="MiB downloaded for us/MiB")
    args = ap.parse_args()
    for tool in ("nginx", "haproxy", "h2load", "openssl", "curl", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is not installed (make deps deps-bench installs it)")
    if not os.path.exists(NGINX_STREAM_MODULE):
        sys.exit(f"bench: {NGINX_STREAM_MODULE} is missing (libnginx-mod-stream)")

    workdir = tempfile.mkdtemp(prefix="ramjet-tlsbench-")
    os.chmod(workdir, 0o755)  # nginx workers run unprivileged and must read www/ and the key
    cert, key, combined = make_cert(workdir)
    origin = nginx_origin(workdir)
    origin.name = "origin"  # its log file is then origin.log, not the nginx proxy's
    proxies = [ramjet(args.build_dir, workdir, origin.port, cert, key),
               nginx(workdir, origin.port, cert, key), haproxy(workdir, origin.port, combined)]
    res = {p.name: {k: [] for k in ("full", "resumed", "reused_share", "req", "h2_req", "us_mib")}
           for p in proxies}
    failed, column_failed = {}, {}
    try:
        origin.start()
        live = []
        for p in proxies:
            try:
                p.start()
                check(p)
                live.append(p)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                log = os.path.join(workdir, f"{p.name}.log")
                tail = open(log).read()[-400:] if os.path.exists(log) else ""
                failed[p.name] = f"{e} {tail}".strip()
                p.stop()
        for rep in range(args.reps):
            for p in live:
                try:
                    run_proxy(p, args, res, column_failed)
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    failed[p.name] = str(e)
            print(f"rep {rep + 1}/{args.reps} done", file=sys.stderr)
    finally:
        for p in proxies:
            p.stop()
        origin.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    report({n: r for n, r in res.items() if n not in failed}, failed, column_failed, args)


if __name__ == "__main__":
    main()
