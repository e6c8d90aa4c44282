"""Helpers shared by the side-by-side benchmarks: ports, readiness, CPU accounting."""

import os
import signal
import socket
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
# The proxy under test gets one core; the load and the origin get the other.
PROXY_CPU = "1"
LOAD_CPU = "0"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port}")


def cpu_seconds(pids, children=False):
    """User + system CPU time of processes (a pid or a list), all their threads; with
    children, also that of the children they reaped (a proxy that forks per session)."""
    if isinstance(pids, int):
        pids = [pids]
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
            if children:
                total += (int(fields[13]) + int(fields[14])) / CLK_TCK
        except FileNotFoundError:
            pass
    return total


def process_tree(pid):
    """The pid and its children (squid forks its workers)."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    kids = [int(p) for p in out.stdout.split()]
    return [pid] + [k for c in kids for k in process_tree(c)]


class Proc:
    def __init__(self, name, argv, port, workdir, cpu=PROXY_CPU):
        self.name, self.argv, self.port, self.workdir, self.cpu = name, argv, port, workdir, cpu
        self.proc = None

    def start(self):
        log = open(os.path.join(self.workdir, f"{self.name}.log"), "w")
        self.proc = subprocess.Popen(["taskset", "-c", self.cpu] + self.argv, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        wait_port(self.port)

    def pids(self):
        return process_tree(self.proc.pid)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def ramjet_tcp(build_dir, workdir, upstream_port, relay):
    """ramjetd, one worker, with one TCP endpoint relaying to 127.0.0.1:upstream_port."""
    port = free_port()
    cfg = os.path.join(workdir, f"ramjet-{relay}.yaml")
    with open(cfg, "w") as f:
        f.write(f"""server: {{workers: 1, admin_socket: ""}}
telemetry: {{metrics: {{listen: ""}}}}
logging: {{level: warn, access_log: "off"}}
egress: {{allow_private: [127.0.0.0/8]}}
endpoints:
  - {{name: bench, listen: "127.0.0.1:{port}", onramp: tcp,
      upstream: "127.0.0.1:{upstream_port}", relay: {relay}}}
""")
    return Proc(f"ramjet-{relay}", [os.path.join(build_dir, "bin", "ramjetd"), "--config", cfg],
                port, workdir)


def ramjet_daemon(build_dir, workdir, name, port, endpoints):
    """ramjetd, one worker, quiet, no DNS beyond loopback, egress to loopback allowed, with
    `endpoints` (the YAML list under `endpoints:`, one "- {...}" item a line or more)."""
    cfg = os.path.join(workdir, f"{name}.yaml")
    with open(cfg, "w") as f:
        f.write(f"""server: {{workers: 1, admin_socket: ""}}
telemetry: {{metrics: {{listen: ""}}}}
logging: {{level: warn, access_log: "off"}}
dns: {{servers: ["127.0.0.1:1"]}}
egress: {{allow_private: [127.0.0.0/8]}}
endpoints:
{endpoints}""")
    return Proc(name, [os.path.join(build_dir, "bin", "ramjetd"), "--config", cfg], port, workdir)


def haproxy(workdir, name, mode, upstream_port, options="", bind="", server="", cpu=PROXY_CPU):
    """haproxy, one thread, one frontend and one server; `options` go in both sections,
    `bind` and `server` at the end of those lines (" accept-proxy", " send-proxy-v2")."""
    port = free_port()
    cfg = os.path.join(workdir, f"{name}.cfg")
    with open(cfg, "w") as f:
        f.write(f"""global
    nbthread 1
    maxconn 1000
defaults
    mode {mode}
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend fe
    bind 127.0.0.1:{port}{bind}
{options}    default_backend be
backend be
{options}    server s1 127.0.0.1:{upstream_port}{server}
""")
    return Proc(name, ["haproxy", "-f", cfg], port, workdir, cpu)


NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"


def nginx_stream(workdir, name, port, servers):
    """nginx, one worker, with the stream module and `servers` (the body of its stream
    block); `port` is the one Proc.start waits for (a TCP listener among them)."""
    cfg = os.path.join(workdir, f"{name}.conf")
    with open(cfg, "w") as f:
        f.write(f"""load_module {NGINX_STREAM_MODULE};
daemon off;
worker_processes 1;
pid {workdir}/{name}.pid;
error_log {workdir}/{name}-error.log;
events {{ worker_connections 4096; }}
stream {{
{servers}}}
""")
    return Proc(name, ["nginx", "-c", cfg, "-p", workdir, "-e", f"{workdir}/{name}-error.log"],
                port, workdir)


def start_proxies(proxies, failed, check=None):
    """Starts each proxy and runs check(proxy) if given; one that fails is stopped and
    its reason (with the end of its log) goes to failed[name], so the run goes on with
    the others and reports it. Returns those that started."""
    live = []
    for p in proxies:
        try:
            p.start()
            if check:
                check(p)
            live.append(p)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            log = os.path.join(p.workdir, f"{p.name}.log")
            tail = open(log).read()[-400:] if os.path.exists(log) else ""
            failed[p.name] = f"{e} {tail}".strip()
            p.stop()
    return live


# An echo server: `python3 -c ECHO_SERVER host port[,port...]`; prints READY once
# listening and exits when its stdin closes.
ECHO_SERVER = r"""
import socket, sys, threading
host, ports = sys.argv[1], [int(p) for p in sys.argv[2].split(',')]
def serve(conn):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        data = conn.recv(65536)
        if not data:
            break
        conn.sendall(data)
    conn.close()
def listen(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(1024)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
for p in ports:
    threading.Thread(target=listen, args=(p,), daemon=True).start()
print('READY', flush=True)
sys.stdin.read()
"""
