"""Helpers shared by the side-by-side benchmarks: ports, readiness, CPU accounting."""

import os
import socket
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


def cpu_seconds(pids):
    """User + system CPU time of processes (a pid or a list), all their threads."""
    if isinstance(pids, int):
        pids = [pids]
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        except FileNotFoundError:
            pass
    return total
