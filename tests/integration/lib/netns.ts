/**
 * Network-namespace topologies for gateway (transparent) tests: a client, a
 * gateway and a server, each in a namespace of its own, wired with veth pairs.
 *
 *   client ns                 gateway ns                      server ns
 *   eth0 10.10.1.2/24 ---- gw-c 10.10.1.1/24
 *        fd00:10:1::2/64        fd00:10:1::1/64
 *                               gw-s 10.10.2.1/24 ---- eth0 10.10.2.2/24
 *                                    fd00:10:2::1/64        fd00:10:2::2/64
 *
 *   const topo = await createGatewayTopology(t);
 *   const daemon = await startDaemon(t, { netns: topo.gateway.name, config: ... });
 *   const server = topo.server.spawn(t, 'socat', ['TCP-LISTEN:80,fork', 'EXEC:cat']);
 *   const res = await topo.client.exec('curl', ['-s', 'http://10.10.2.2/']);
 *   const fwd = await topo.gateway.forwardingCounters();
 *
 * Names are unique per topology (`rj<4 hex>-c`, `-gw`, `-s`), so test files
 * running concurrently never collide; the interface names inside the
 * namespaces are fixed (`eth0` in client and server, `gw-c`/`gw-s` in the
 * gateway): every namespace has its own interface names. The namespaces are
 * deleted after the test (and, as a last resort, when the test process
 * exits), which also destroys the veths and kills nothing else: processes
 * spawned in them are stopped first, by pid, through their own teardown.
 *
 * Determinism: every interface has a fixed MAC and every neighbour entry is
 * permanent, so no ARP/ND happens and the first packet of a flow already finds
 * its next hop (a fast path that has to pass the first packets up to the
 * stack for neighbour resolution would move the kernel's forwarding counters).
 * DAD is off (`nodad`), router solicitations are off.
 *
 * XDP on veth, measured on this kernel (6.18):
 *  - A frame redirected (XDP_REDIRECT, ndo_xdp_xmit) into a veth is delivered
 *    only if the *receiving* peer runs NAPI. `ethtool -K <peer> gro on` is
 *    enough (since 5.13 GRO enables veth NAPI); no XDP_PASS program is needed
 *    on the client/server ends. Without either, redirected frames vanish.
 *  - The sending ends must not use checksum offload: a veth transmits with
 *    CHECKSUM_PARTIAL (only the pseudo-header sum in the TCP/UDP checksum
 *    field), and XDP_REDIRECT turns the skb into an xdp_frame that loses that
 *    state, so the receiver sees a bad L4 checksum (TcpInCsumErrors) and drops
 *    the packet. `ethtool -K eth0 tx off` (which also turns TSO off, so no
 *    frame exceeds the MTU) makes the senders put real checksums on the wire,
 *    as a physical NIC would deliver them.
 * Both are applied to the client's and the server's eth0 unless
 * `xdpReady: false`. The gateway's own ends (gw-c, gw-s) are left as they
 * are: the daemon attaches its programs there.
 *
 * Commands run in a namespace with `ip netns exec` (its own /sys, so
 * /sys/class/net shows that namespace's devices). The daemon is started with
 * `nsenter --net` instead (see startDaemon's `netns` option): `ip netns exec`
 * also gives the process a fresh /sys without the host's bpffs at
 * /sys/fs/bpf, where ramjetd pins its maps, and pins made there would not
 * survive the process (so --keep-datapath could not be tested).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';
import { addFailureReporter, defer } from './lifecycle.ts';
import { ManagedProcess, run, type SpawnOptions } from './process.ts';
import { StopWaiting, waitFor } from './wait.ts';

/** Addresses of the gateway topology. */
export const TOPOLOGY = {
  client: { ipv4: '10.10.1.2', ipv6: 'fd00:10:1::2', mac: '02:00:0a:0a:01:02', iface: 'eth0' },
  gatewayClientSide: { ipv4: '10.10.1.1', ipv6: 'fd00:10:1::1', mac: '02:00:0a:0a:01:01', iface: 'gw-c' },
  gatewayServerSide: { ipv4: '10.10.2.1', ipv6: 'fd00:10:2::1', mac: '02:00:0a:0a:02:01', iface: 'gw-s' },
  server: { ipv4: '10.10.2.2', ipv6: 'fd00:10:2::2', mac: '02:00:0a:0a:02:02', iface: 'eth0' },
} as const;

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  output: string;
}

export interface ExecOptions extends SpawnOptions {
  /** Kill the command after this long (default 30 000 ms). */
  timeoutMs?: number;
  /** Resolve with a non-zero exit status instead of throwing. */
  allowFailure?: boolean;
}

/** Counters from /proc/net/snmp ("Ip.ForwDatagrams", "Tcp.InSegs", ...) and /proc/net/snmp6 ("Ip6OutForwDatagrams", ...). */
export type SnmpCounters = Record<string, number>;

/** Parses /proc/net/snmp (header line + value line per protocol) and /proc/net/snmp6 (name value per line). */
export function parseSnmp(text: string): SnmpCounters {
  const counters: SnmpCounters = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    const header = /^(\w+): (.*)$/.exec(line);
    if (header !== null) {
      // snmp: "Ip: Forwarding DefaultTTL ..." followed by "Ip: 1 64 ...".
      const values = /^(\w+): (.*)$/.exec(lines[i + 1]?.trim() ?? '');
      if (values === null || values[1] !== header[1]) continue;
      const names = header[2]!.split(/\s+/);
      const numbers = values[2]!.split(/\s+/);
      if (!/^-?\d/.test(numbers[0] ?? '')) continue; // this was the value line of a pair already read
      names.forEach((name, k) => (counters[`${header[1]}.${name}`] = Number(numbers[k])));
      i++;
      continue;
    }
    const pair = /^(\S+)\s+(-?\d+)$/.exec(line);
    if (pair !== null) counters[pair[1]!] = Number(pair[2]);
  }
  return counters;
}

/** Namespaces created by this process and not yet deleted (deleted at exit if a test crashed). */
const liveNamespaces = new Set<string>();
process.on('exit', () => {
  for (const name of liveNamespaces) {
    try {
      execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
});

/** One network namespace (`/run/netns/<name>`). */
export class Netns {
  constructor(readonly name: string) {}

  /** Creates the namespace with lo up; deleted after the test. */
  static async create(t: TestContext, name: string): Promise<Netns> {
    await runChecked('ip', ['netns', 'add', name]);
    liveNamespaces.add(name);
    const ns = new Netns(name);
    defer(t, `netns ${name}`, () => ns.delete());
    await ns.ip('link', 'set', 'lo', 'up');
    return ns;
  }

  /** Deletes the namespace (idempotent). */
  async delete(): Promise<void> {
    if (!liveNamespaces.has(this.name)) return;
    liveNamespaces.delete(this.name);
    const result = await run('ip', ['netns', 'del', this.name], { timeoutMs: 10_000 });
    if (result.code !== 0 && !/No such file/.test(result.stderr)) throw new Error(`ip netns del ${this.name} failed: ${result.output}`);
  }

  /** argv prefix that runs a command inside this namespace. */
  wrap(file: string, args: readonly string[] = []): [string, string[]] {
    return ['ip', ['netns', 'exec', this.name, file, ...args]];
  }

  /** Runs a command in the namespace to completion; throws on a non-zero exit unless allowFailure. */
  async exec(file: string, args: readonly string[] = [], options: ExecOptions = {}): Promise<ExecResult> {
    const [wrapped, wrappedArgs] = this.wrap(file, args);
    const result = await run(wrapped, wrappedArgs, { timeoutMs: options.timeoutMs ?? 30_000, env: options.env, cwd: options.cwd });
    if (result.code !== 0 && options.allowFailure !== true) {
      throw new Error(`[netns ${this.name}] ${file} ${args.join(' ')} failed (${result.signal ?? `code ${String(result.code)}`}):\n${result.output}`);
    }
    return result;
  }

  /** `ip ARGS` in the namespace (ip -n, no exec needed). */
  async ip(...args: string[]): Promise<string> {
    return (await runChecked('ip', ['-n', this.name, ...args])).stdout;
  }

  /** Writes a sysctl in the namespace, e.g. sysctl('net.ipv4.ip_forward', 1). */
  async sysctl(key: string, value: string | number): Promise<void> {
    await this.exec('sysctl', ['-qw', `${key}=${String(value)}`]);
  }

  /**
   * Starts a long-running process in the namespace for the test `t`; it is
   * stopped (SIGTERM, then SIGKILL) after the test, before the namespace is
   * deleted, and its output is printed if the test fails. The pid is the
   * command's own (`ip netns exec` execs it).
   */
  spawn(t: TestContext, file: string, args: readonly string[] = [], options: SpawnOptions & { what?: string } = {}): ManagedProcess {
    const [wrapped, wrappedArgs] = this.wrap(file, args);
    const proc = new ManagedProcess(wrapped, wrappedArgs, options);
    const what = options.what ?? `${file} in ${this.name}`;
    defer(t, what, async () => void (await proc.terminate(2_000)));
    addFailureReporter(t, `${what} (pid ${String(proc.pid)}) output`, () => proc.output());
    return proc;
  }

  /** /proc/net/snmp and /proc/net/snmp6 of this namespace. */
  async snmp(): Promise<SnmpCounters> {
    const result = await this.exec('cat', ['/proc/net/snmp', '/proc/net/snmp6']);
    return parseSnmp(result.stdout);
  }

  /** Packets the kernel's IP stack forwarded: Ip: ForwDatagrams and Ip6: OutForwDatagrams. */
  async forwardingCounters(): Promise<{ ipv4: number; ipv6: number }> {
    const snmp = await this.snmp();
    const ipv4 = snmp['Ip.ForwDatagrams'];
    const ipv6 = snmp.Ip6OutForwDatagrams;
    if (ipv4 === undefined || ipv6 === undefined) throw new Error(`[netns ${this.name}] no forwarding counters in /proc/net/snmp{,6}`);
    return { ipv4, ipv6 };
  }

  /** rx/tx statistics of one interface (from /sys/class/net/IFACE/statistics). */
  async linkStats(iface: string): Promise<Record<string, number>> {
    const json = JSON.parse(await this.ip('-s', '-j', 'link', 'show', 'dev', iface)) as Array<{ stats64?: { rx: Record<string, number>; tx: Record<string, number> } }>;
    const stats = json[0]?.stats64;
    if (stats === undefined) throw new Error(`[netns ${this.name}] no stats64 for ${iface}`);
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(stats.rx)) out[`rx_${k}`] = v;
    for (const [k, v] of Object.entries(stats.tx)) out[`tx_${k}`] = v;
    return out;
  }
}

async function runChecked(file: string, args: string[]): Promise<ExecResult> {
  const result = await run(file, args, { timeoutMs: 15_000 });
  if (result.code !== 0) throw new Error(`${file} ${args.join(' ')} failed (code ${String(result.code)}):\n${result.output}`);
  return result;
}

export interface GatewayTopologyOptions {
  /** Namespace name prefix (default `rj` + 4 random hex digits). */
  prefix?: string;
  /** Prepare the client/server veth ends for XDP redirect into them (GRO on, tx checksum offload off). Default true. */
  xdpReady?: boolean;
  /** Extra client addresses (on the client's eth0, /24, with a permanent neighbour entry in the gateway). */
  extraClientAddresses?: string[];
}

export class GatewayTopology {
  /** Extra client addresses added so far. */
  readonly extraClientAddresses: string[] = [];

  constructor(
    readonly prefix: string,
    readonly client: Netns,
    readonly gateway: Netns,
    readonly server: Netns,
  ) {}

  /**
   * Adds another address to the client (e.g. 10.10.1.66 to be "another
   * host"), with a permanent neighbour entry on the gateway. IPv6 addresses
   * go into fd00:10:1::/64.
   */
  async addClientAddress(address: string): Promise<void> {
    const v6 = address.includes(':');
    await this.client.ip('addr', 'add', `${address}/${v6 ? 64 : 24}`, 'dev', TOPOLOGY.client.iface, ...(v6 ? ['nodad'] : []));
    await this.gateway.ip(...(v6 ? ['-6'] : []), 'neigh', 'replace', address, 'lladdr', TOPOLOGY.client.mac, 'dev', TOPOLOGY.gatewayClientSide.iface, 'nud', 'permanent');
    this.extraClientAddresses.push(address);
  }

  /** The gateway's forwarding counters (see Netns.forwardingCounters). */
  forwardingCounters(): Promise<{ ipv4: number; ipv6: number }> {
    return this.gateway.forwardingCounters();
  }

  /**
   * Deletes both veth pairs and creates them again with the same names,
   * addresses and settings, as a container restart does: the gateway's gw-c and
   * gw-s are new devices (new ifindexes); whatever was attached to the old ones
   * went with them.
   */
  async recreateLinks(options: GatewayTopologyOptions = {}): Promise<{ before: Record<string, number>; after: Record<string, number> }> {
    const ifindexes = async (): Promise<Record<string, number>> => {
      const links = JSON.parse(await this.gateway.ip('-j', 'link', 'show')) as Array<{ ifname: string; ifindex: number }>;
      return Object.fromEntries(links.map((l) => [l.ifname, l.ifindex]));
    };
    const before = await ifindexes();
    // Deleting one end of a veth deletes its peer.
    await this.gateway.ip('link', 'del', TOPOLOGY.gatewayClientSide.iface);
    await this.gateway.ip('link', 'del', TOPOLOGY.gatewayServerSide.iface);
    await wireLinks(this, options);
    const extra = this.extraClientAddresses.splice(0);
    for (const address of extra) await this.addClientAddress(address);
    return { before, after: await ifindexes() };
  }

  /** Deletes the three namespaces (also done after the test). */
  async destroy(): Promise<void> {
    for (const ns of [this.client, this.server, this.gateway]) await ns.delete();
  }
}

/** A fresh namespace prefix: `rj` + 4 hex digits not currently in use. */
export async function uniquePrefix(): Promise<string> {
  const existing = (await run('ip', ['netns', 'list'], { timeoutMs: 5_000 })).stdout;
  for (;;) {
    const prefix = `rj${randomBytes(2).toString('hex')}`;
    if (!existing.includes(`${prefix}-`)) return prefix;
  }
}

/**
 * Builds client ns —veth— gateway ns —veth— server ns for the test `t` (see
 * the file header). The gateway forwards IPv4 and IPv6; client and server
 * route everything through it. Torn down after the test.
 */
export async function createGatewayTopology(t: TestContext, options: GatewayTopologyOptions = {}): Promise<GatewayTopology> {
  const prefix = options.prefix ?? (await uniquePrefix());
  const { client: c, gatewayClientSide: gc, gatewayServerSide: gs, server: s } = TOPOLOGY;
  // Deleted last-created first; each deletion also removes its veth ends.
  const client = await Netns.create(t, `${prefix}-c`);
  const gateway = await Netns.create(t, `${prefix}-gw`);
  const server = await Netns.create(t, `${prefix}-s`);
  const topo = new GatewayTopology(prefix, client, gateway, server);

  for (const ns of [client, gateway, server]) {
    // No router solicitations / DAD chatter on the links.
    await ns.sysctl('net.ipv6.conf.all.router_solicitations', 0);
    await ns.sysctl('net.ipv6.conf.default.router_solicitations', 0);
    await ns.sysctl('net.ipv6.conf.all.accept_dad', 0);
    await ns.sysctl('net.ipv6.conf.default.accept_dad', 0);
  }
  await gateway.sysctl('net.ipv4.ip_forward', 1);
  await gateway.sysctl('net.ipv6.conf.all.forwarding', 1);

  await wireLinks(topo, options);

  for (const address of options.extraClientAddresses ?? []) await topo.addClientAddress(address);

  addFailureReporter(
    t,
    `topology ${prefix}: gateway links, counters`,
    async () => {
      const links = await gateway.exec('ip', ['-s', 'link'], { allowFailure: true });
      const snmp = await gateway.snmp().catch(() => ({}) as SnmpCounters);
      const picked = Object.entries(snmp).filter(([k, v]) => v !== 0 && /^(Ip\.|Ip6(In|Out)(Receives|Forw|Discards|NoRoutes|HdrErrors|AddrErrors|TruncatedPkts))/.test(k));
      return `${links.stdout}\n${picked.map(([k, v]) => `${k}=${v}`).join(' ')}`;
    },
    'live',
  );
  return topo;
}

/**
 * Creates the two veth pairs of a topology whose namespaces exist, with their
 * addresses, offload settings, routes and permanent neighbours.
 */
async function wireLinks(topo: GatewayTopology, options: GatewayTopologyOptions): Promise<void> {
  const { client: c, gatewayClientSide: gc, gatewayServerSide: gs, server: s } = TOPOLOGY;
  const { client, gateway, server } = topo;
  // Each end is created directly in its namespace (no name clash with the host's eth0).
  await runChecked('ip', ['link', 'add', c.iface, 'netns', client.name, 'address', c.mac, 'type', 'veth', 'peer', 'name', gc.iface, 'netns', gateway.name, 'address', gc.mac]);
  await runChecked('ip', ['link', 'add', s.iface, 'netns', server.name, 'address', s.mac, 'type', 'veth', 'peer', 'name', gs.iface, 'netns', gateway.name, 'address', gs.mac]);

  await client.ip('addr', 'add', `${c.ipv4}/24`, 'dev', c.iface);
  await client.ip('addr', 'add', `${c.ipv6}/64`, 'dev', c.iface, 'nodad');
  await gateway.ip('addr', 'add', `${gc.ipv4}/24`, 'dev', gc.iface);
  await gateway.ip('addr', 'add', `${gc.ipv6}/64`, 'dev', gc.iface, 'nodad');
  await gateway.ip('addr', 'add', `${gs.ipv4}/24`, 'dev', gs.iface);
  await gateway.ip('addr', 'add', `${gs.ipv6}/64`, 'dev', gs.iface, 'nodad');
  await server.ip('addr', 'add', `${s.ipv4}/24`, 'dev', s.iface);
  await server.ip('addr', 'add', `${s.ipv6}/64`, 'dev', s.iface, 'nodad');

  if (options.xdpReady !== false) {
    await client.exec('ethtool', ['-K', c.iface, 'gro', 'on', 'tx', 'off']);
    await server.exec('ethtool', ['-K', s.iface, 'gro', 'on', 'tx', 'off']);
  }

  await client.ip('link', 'set', c.iface, 'up');
  await gateway.ip('link', 'set', gc.iface, 'up');
  await gateway.ip('link', 'set', gs.iface, 'up');
  await server.ip('link', 'set', s.iface, 'up');

  await client.ip('route', 'add', 'default', 'via', gc.ipv4);
  await client.ip('-6', 'route', 'add', 'default', 'via', gc.ipv6);
  await server.ip('route', 'add', 'default', 'via', gs.ipv4);
  await server.ip('-6', 'route', 'add', 'default', 'via', gs.ipv6);

  const neigh = (ns: Netns, address: string, mac: string, dev: string): Promise<string> =>
    ns.ip(...(address.includes(':') ? ['-6'] : []), 'neigh', 'replace', address, 'lladdr', mac, 'dev', dev, 'nud', 'permanent');
  await neigh(client, gc.ipv4, gc.mac, c.iface);
  await neigh(client, gc.ipv6, gc.mac, c.iface);
  await neigh(gateway, c.ipv4, c.mac, gc.iface);
  await neigh(gateway, c.ipv6, c.mac, gc.iface);
  await neigh(gateway, s.ipv4, s.mac, gs.iface);
  await neigh(gateway, s.ipv6, s.mac, gs.iface);
  await neigh(server, gs.ipv4, gs.mac, s.iface);
  await neigh(server, gs.ipv6, gs.mac, s.iface);
}

/** True when this process can create network namespaces (root with CAP_NET_ADMIN and iproute2). */
export async function canCreateNetns(): Promise<{ ok: boolean; why?: string }> {
  if (process.getuid?.() !== 0) return { ok: false, why: 'needs root (network namespaces, BPF)' };
  const name = `rjprobe${randomBytes(2).toString('hex')}`;
  const add = await run('ip', ['netns', 'add', name], { timeoutMs: 5_000 }).catch((e: unknown) => ({ code: 1, output: String(e) }));
  if (add.code !== 0) return { ok: false, why: `ip netns add failed: ${add.output.trim()}` };
  await run('ip', ['netns', 'del', name], { timeoutMs: 5_000 });
  return { ok: true };
}

// ---------------------------------------------------------------- peers inside namespaces

const ORIGIN = String.raw`
import socket, sys, threading
hosts = sys.argv[1].split(',')
ports = [int(p) for p in sys.argv[2].split(',')]
lock = threading.Lock()
def say(line):
    with lock:
        print(line, flush=True)
def serve_conn(conn, port, peer):
    try:
        conn.settimeout(10)
        data = b''
        while b'\r\n\r\n' not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        lines = data.split(b'\r\n\r\n', 1)[0].decode('latin-1').split('\r\n')
        host = [l.split(':', 1)[1].strip() for l in lines[1:] if l.lower().startswith('host:')]
        body = ('origin port=%d peer=%s request=%s\norigin host=%s\n' % (port, peer, lines[0], ','.join(host) or '-')).encode()
        conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: %d\r\n\r\n' % len(body) + body)
        say('SERVED %d %s' % (port, peer))
    except OSError:
        pass
    finally:
        conn.close()
def listen(host, port):
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(128)
    while True:
        conn, addr = s.accept()
        peer = ('[%s]:%d' if family == socket.AF_INET6 else '%s:%d') % (addr[0], addr[1])
        say('ACCEPT %d %s' % (port, peer))
        threading.Thread(target=serve_conn, args=(conn, port, peer), daemon=True).start()
for h in hosts:
    for p in ports:
        threading.Thread(target=listen, args=(h, p), daemon=True).start()
say('READY')
sys.stdin.read()
`;

export interface OriginConnection {
  port: number;
  /** "ip:port" of the connecting peer as the origin saw it. */
  peer: string;
}

export interface OriginServer {
  process: ManagedProcess;
  /** Connections accepted so far (in order). */
  accepted(): OriginConnection[];
  /** Requests answered so far. */
  served(): OriginConnection[];
}

/**
 * A tiny HTTP origin inside `ns` (default: the server's addresses, ports 80,
 * 81, 82). It answers every request with 200 and a body naming the port and
 * the peer it saw ("origin port=80 peer=10.10.1.2:41234 request=GET / HTTP/1.1"),
 * then the Host it got on a line of its own ("origin host=www.example"), and reports each accepted connection, so a test can assert that a packet
 * flow never reached the server.
 */
export async function startOrigin(
  t: TestContext,
  ns: Netns,
  options: { hosts?: string[]; ports?: number[] } = {},
): Promise<OriginServer> {
  const hosts = options.hosts ?? [TOPOLOGY.server.ipv4, TOPOLOGY.server.ipv6];
  const ports = options.ports ?? [80, 81, 82];
  const proc = ns.spawn(t, 'python3', ['-u', '-c', ORIGIN, hosts.join(','), ports.join(',')], { stdinPipe: true, what: `origin in ${ns.name}` });
  await proc.waitForOutput(/^READY$/m, 10_000);
  const parse = (kind: string): OriginConnection[] =>
    [...proc.stdout().matchAll(new RegExp(`^${kind} (\\d+) (\\S+)$`, 'gm'))].map((m) => ({ port: Number(m[1]), peer: m[2]! }));
  return { process: proc, accepted: () => parse('ACCEPT'), served: () => parse('SERVED') };
}

const STREAM_PROBE = String.raw`
import json, signal, socket, sys, time
host, port, seconds, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
# SIGUSR1 ends the run early (StreamProbe.finish), as if the time were up.
stop = []
signal.signal(signal.SIGUSR1, lambda *_: stop.append(1))
family = socket.AF_INET6 if ':' in host else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.settimeout(5)
s.connect((host, port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
local = s.getsockname()
print('CONNECTED %s %d' % (local[0], local[1]), flush=True)
chunk = b'x' * 1024
start = last = time.monotonic()
sent = received = rounds = 0
max_gap = 0.0
error = None
try:
    while not stop and time.monotonic() - start < seconds:
        s.sendall(chunk)
        sent += len(chunk)
        got = 0
        while got < len(chunk):
            data = s.recv(len(chunk) - got)
            if not data:
                raise OSError('peer closed')
            got += len(data)
        received += got
        rounds += 1
        now = time.monotonic()
        max_gap = max(max_gap, now - last)
        last = now
        if rounds % 10 == 0:
            print('PROGRESS %d %d' % (rounds, received), flush=True)
        time.sleep(interval)
except OSError as e:
    error = str(e)
s.close()
print('RESULT ' + json.dumps({'rounds': rounds, 'sent': sent, 'received': received,
                              'max_gap_ms': round(max_gap * 1000, 1), 'error': error}), flush=True)
`;

export interface StreamProbeResult {
  rounds: number;
  sent: number;
  received: number;
  /** Longest time between two completed round trips. */
  max_gap_ms: number;
  error: string | null;
}

export interface StreamProbe {
  process: ManagedProcess;
  /** Local "ip port" of the probe's connection. */
  local: { host: string; port: number };
  /** Round trips completed so far. */
  rounds(): number;
  /** Waits until `n` more round trips completed than now. */
  waitForMoreRounds(n: number, timeoutMs?: number): Promise<void>;
  /** Waits for the probe to finish and returns its summary. */
  result(timeoutMs?: number): Promise<StreamProbeResult>;
  /** Ends the probe now (SIGUSR1) and returns its summary. */
  finish(): Promise<StreamProbeResult>;
}

/**
 * A long-lived TCP stream from inside `ns` to an echo server: 1 KiB round
 * trips every `intervalMs` for `seconds`, reporting progress, so a test can
 * change something under a live flow (reload, restart) and then check that
 * the same connection kept working and how long it stalled at most.
 */
export async function startStreamProbe(
  t: TestContext,
  ns: Netns,
  target: { host: string; port: number },
  options: { seconds?: number; intervalMs?: number } = {},
): Promise<StreamProbe> {
  const seconds = options.seconds ?? 8;
  const proc = ns.spawn(
    t,
    'python3',
    ['-u', '-c', STREAM_PROBE, target.host, String(target.port), String(seconds), String((options.intervalMs ?? 10) / 1000)],
    { what: `stream probe in ${ns.name}` },
  );
  const connected = await proc.waitForOutput(/^CONNECTED (\S+) (\d+)$/m, 10_000);
  const result = async (timeoutMs = (seconds + 10) * 1000): Promise<StreamProbeResult> => {
    const match = await proc.waitForOutput(/^RESULT (.*)$/m, timeoutMs);
    return JSON.parse(match[1]!) as StreamProbeResult;
  };
  const rounds = (): number => {
    const all = [...proc.stdout().matchAll(/^PROGRESS (\d+) /gm)];
    return all.length === 0 ? 0 : Number(all[all.length - 1]![1]);
  };
  return {
    process: proc,
    local: { host: connected[1]!, port: Number(connected[2]) },
    rounds,
    async waitForMoreRounds(n: number, timeoutMs = 5_000): Promise<void> {
      const target = rounds() + n;
      await waitFor(
        () => {
          if (proc.exited) throw new StopWaiting(`stream probe exited early:\n${proc.output()}`);
          return rounds() >= target;
        },
        { timeoutMs, intervalMs: 20, what: `${n} more round trips of the stream probe (at ${rounds()})` },
      );
    },
    result,
    async finish(): Promise<StreamProbeResult> {
      proc.signal('SIGUSR1');
      return result();
    },
  };
}

/** `socat` echo server (fork per connection) inside `ns` on host:port. */
/**
 * Runs a stream probe to its end and asserts it worked: no error, at least 20
 * round trips, every byte echoed. Returns the probe (its local port names the flow).
 */
export async function runStreamProbe(t: TestContext, ns: Netns, target: { host: string; port: number }, seconds: number): Promise<{ probe: StreamProbe; result: StreamProbeResult }> {
  const probe = await startStreamProbe(t, ns, target, { seconds });
  const result = await probe.result();
  assert.equal(result.error, null, 'the stream through the fast path failed');
  assert.ok(result.rounds >= 20, `only ${result.rounds} round trips`);
  assert.equal(result.received, result.sent);
  return { probe, result };
}

export async function startEchoInNetns(t: TestContext, ns: Netns, host: string, port: number): Promise<ManagedProcess> {
  const bind = host.includes(':') ? `TCP6-LISTEN:${port},bind=[${host}]` : `TCP4-LISTEN:${port},bind=${host}`;
  const proc = ns.spawn(t, 'socat', ['-d', '-d', `${bind},reuseaddr,fork`, 'EXEC:cat'], { what: `socat echo ${host}:${port} in ${ns.name}` });
  await proc.waitForOutput(/listening on/, 10_000);
  return proc;
}

/** Path of lib/packets.py (the scapy frame crafter). */
export const PACKETS_PY = new URL('./packets.py', import.meta.url).pathname;

/** Python with scapy (Debian's python3-scapy is installed for /usr/bin/python3, not for other pythons on PATH). */
export const SCAPY_PYTHON = '/usr/bin/python3';

/** Path of lib/sniff.py (what got through the gateway). */
export const SNIFF_PY = new URL('./sniff.py', import.meta.url).pathname;

export interface MalformedKind {
  expect: string;
  doc: string;
}

/** The catalogue of lib/packets.py: kind -> expected datapath stat. */
export async function malformedCatalogue(): Promise<Record<string, MalformedKind>> {
  const result = await run(SCAPY_PYTHON, [PACKETS_PY, 'list'], { timeoutMs: 30_000 });
  if (result.code !== 0) throw new Error(`packets.py list failed:\n${result.output}`);
  return JSON.parse(result.stdout) as Record<string, MalformedKind>;
}

export interface SentFrames {
  frames: number;
  /** Frame length. */
  bytes: number;
  /** The datapath stat the frames must be counted under. */
  expect: string;
  /** IPv4 ID / IPv6 flow label of this kind's frames (see SniffedFrame.mark). */
  mark: number;
}

/** Sends `count` frames of each kind from the client's eth0 to the gateway (see lib/packets.py). */
export async function sendMalformed(
  topo: GatewayTopology,
  kinds: string[],
  options: { count?: number; src?: string; dport?: number } = {},
): Promise<Record<string, SentFrames>> {
  const args = [PACKETS_PY, 'send', '--iface', TOPOLOGY.client.iface, '--src-mac', TOPOLOGY.client.mac, '--dst-mac', TOPOLOGY.gatewayClientSide.mac, '--count', String(options.count ?? 3)];
  if (options.src !== undefined) args.push('--src', options.src);
  if (options.dport !== undefined) args.push('--dport', String(options.dport));
  const result = await topo.client.exec(SCAPY_PYTHON, [...args, ...kinds], { timeoutMs: 60_000 });
  return JSON.parse(result.stdout) as Record<string, SentFrames>;
}

export interface SniffedFrame {
  src: string;
  dst: string;
  proto: number;
  length: number;
  /** IPv4 ID / IPv6 flow label (lib/packets.py numbers each kind of frame with it). */
  mark: number;
}

export interface Sniffer {
  process: ManagedProcess;
  /** Frames seen so far. */
  frames(): SniffedFrame[];
}

/**
 * Watches `iface` in `ns` (AF_PACKET, both directions) and records every frame
 * whose IP source is in `from` (default: the client's prefixes). Run it in the
 * server namespace to see exactly what got through the gateway, whatever the
 * server's stack does with it afterwards.
 */
export async function startSniffer(t: TestContext, ns: Netns, iface = 'eth0', from: string[] = ['10.10.1.0/24', 'fd00:10:1::/64']): Promise<Sniffer> {
  const proc = ns.spawn(t, 'python3', ['-u', SNIFF_PY, '--iface', iface, '--from', ...from], { stdinPipe: true, what: `sniffer on ${iface} in ${ns.name}` });
  await proc.waitForOutput(/^READY$/m, 10_000);
  return {
    process: proc,
    frames: () =>
      [...proc.stdout().matchAll(/^FRAME (\S+) (\S+) (\d+) (\d+) (\d+)$/gm)].map((m) => ({
        src: m[1]!,
        dst: m[2]!,
        proto: Number(m[3]),
        length: Number(m[4]),
        mark: Number(m[5]),
      })),
  };
}
