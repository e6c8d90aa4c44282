/**
 * What a new TCP client sees: one connect from inside a namespace, timed, with
 * its outcome as the client's kernel reports it, and (when it connected) an
 * optional request whose whole answer is returned. Plus a holder that keeps
 * connections open, e.g. to fill a listener's accept queue.
 */
import type { TestContext } from 'node:test';
import type { ManagedProcess } from './process.ts';
import type { Netns } from './netns.ts';

const CONNECT_PROBE = String.raw`
import json, socket, sys, time
host, port, timeout, request = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
family = socket.AF_INET6 if ':' in host else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.bind(('::' if family == socket.AF_INET6 else '0.0.0.0', 0))
out = {'local_port': s.getsockname()[1]}
s.settimeout(timeout)
t0 = time.monotonic()
try:
    s.connect((host, port))
    out['outcome'] = 'connected'
except ConnectionRefusedError:
    out['outcome'] = 'refused'
except socket.timeout:
    out['outcome'] = 'timeout'
except OSError as e:
    out['outcome'] = 'error'
    out['error'] = str(e)
out['ms'] = round((time.monotonic() - t0) * 1000, 3)
if out['outcome'] == 'connected' and request:
    s.sendall(request.encode())
    data = b''
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError as e:
        out['error'] = str(e)
    out['response'] = data.decode(errors='replace')
s.close()
print(json.dumps(out), flush=True)
`;

export interface ConnectOutcome {
  /** connected; refused (an RST answered the SYN); timeout (nothing answered); error (e.g. ICMP unreachable). */
  outcome: 'connected' | 'refused' | 'timeout' | 'error';
  /** connect() duration as the client measured it. */
  ms: number;
  /** The client's source port (bound before connecting). */
  local_port: number;
  /** The whole answer to `request`, when connected and a request was given. */
  response?: string;
  error?: string;
}

/** One connect from `ns` to host:port within `timeoutMs`; sends `request` (then reads to EOF) if connected. */
export async function connectOnce(ns: Netns, host: string, port: number, options: { timeoutMs?: number; request?: string } = {}): Promise<ConnectOutcome> {
  const timeoutS = (options.timeoutMs ?? 2_000) / 1000;
  const res = await ns.exec('python3', ['-c', CONNECT_PROBE, host, String(port), String(timeoutS), options.request ?? ''], { timeoutMs: (options.timeoutMs ?? 2_000) + 10_000 });
  return JSON.parse(res.stdout.trim()) as ConnectOutcome;
}

const HOLDER = String.raw`
import socket, sys
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
family = socket.AF_INET6 if ':' in host else socket.AF_INET
held = []
for i in range(count):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect((host, port))
    held.append(s)
    print('HELD %d' % (i + 1), flush=True)
sys.stdin.read()
`;

/**
 * Opens `count` connections from `ns` to host:port one after another (each must
 * complete its handshake) and keeps them open until the test ends.
 */
export async function holdConnections(t: TestContext, ns: Netns, host: string, port: number, count: number): Promise<ManagedProcess> {
  const proc = ns.spawn(t, 'python3', ['-u', '-c', HOLDER, host, String(port), String(count)], { stdinPipe: true, what: `${count} held connections to ${host}:${port}` });
  await proc.waitForOutput(new RegExp(`^HELD ${count}$`, 'm'), 10_000);
  return proc;
}
