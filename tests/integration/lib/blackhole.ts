/**
 * A "blackhole" TCP address: SYNs to it are never answered, so a connect
 * hangs (until the connector's own timeout) instead of being refused. Used to
 * make one of several resolved addresses unreachable for happy-eyeballs tests,
 * without root or firewall rules.
 *
 * How: a helper process listens on host:port with backlog 0 and never calls
 * accept(). It then connects to itself until its accept queue is full (one
 * connection on Linux) and a further connect times out. From then on Linux
 * drops every SYN to that listener (tcp_abort_on_overflow=0, the default), so
 * the connector sees silence and retransmits. node cannot hold a listener
 * without accepting, hence the small python3 helper; it exits when its stdin
 * closes, i.e. when the test process goes away.
 */
import type { TestContext } from 'node:test';
import { addFailureReporter, defer } from './lifecycle.ts';
import { ManagedProcess } from './process.ts';

const HELPER = String.raw`
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
family = socket.AF_INET6 if ':' in host else socket.AF_INET
listener = socket.socket(family, socket.SOCK_STREAM)
listener.bind((host, port))
listener.listen(0)
port = listener.getsockname()[1]
fillers = []
for _ in range(16):
    c = socket.socket(family, socket.SOCK_STREAM)
    c.settimeout(0.5)
    try:
        c.connect((host, port))
        fillers.append(c)
    except (socket.timeout, TimeoutError):
        c.close()
        break
else:
    print("ERROR accept queue never filled", flush=True)
    sys.exit(1)
print("READY %d %d" % (port, len(fillers)), flush=True)
sys.stdin.read()
`;

export interface Blackhole {
  host: string;
  port: number;
  /** "host:port". */
  address: string;
  close(): Promise<void>;
}

/**
 * Makes host:port (default 127.0.0.3 and an ephemeral port) a blackhole for
 * the duration of the test `t`. Pass `port` to blackhole the port another
 * server uses on a different address.
 */
export async function startBlackhole(t: TestContext, options: { host?: string; port?: number } = {}): Promise<Blackhole> {
  const host = options.host ?? '127.0.0.3';
  const proc = new ManagedProcess('python3', ['-c', HELPER, host, String(options.port ?? 0)], { stdinPipe: true });
  const close = async (): Promise<void> => {
    proc.child.stdin?.end();
    await proc.terminate(2_000);
  };
  defer(t, `blackhole ${host}`, close);
  addFailureReporter(t, `blackhole ${host} helper output`, () => proc.output());
  const match = await proc.waitForOutput(/READY (\d+) (\d+)/, 15_000);
  const port = Number(match[1]);
  return { host, port, address: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`, close };
}
