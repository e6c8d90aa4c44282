// ramjetctl against a live ramjetd on the gateway topology: one flow id across the
// kernel and the engine, and the controls that act on both halves.
//  - a fast-path TCP stream, a UDP flow and an escalated tunnel (tcp/80 -> the
//    transparent endpoint `web`) are listed with counters that move; the tunnel is
//    one row with both halves under one id; filters select the right rows, in the
//    CLI and in the daemon's GET /v1/flows; `flows show` carries the hook trace;
//  - `flows top` in a real terminal (tmux) and as plain periodic output;
//  - /metrics parses and its datapath family counts the fast-path flow;
//  - `events --follow` streams engine and kernel events as they happen;
//  - `flows kill` closes the tunnel's client connection and removes the kernel
//    entry of a fast-path flow; `block --for 5s` stops a source at the server and
//    expires; `rules add/del` and `reload` change what the kernel does, and a broken
//    config file leaves the running rules alone;
//  - `drain` stops accepting and exits 0 once the open connection closes.
// A second test runs a daemon without the datapath: engine-only flows, kill of an
// engine connection, 409 for the kernel features, error statuses of the API.
// Every JSON output is validated against tools/ramjetctl/schemas.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import {
  binaryPath,
  connect,
  defer,
  ManagedProcess,
  run,
  sleep,
  startDaemon,
  startEchoServer,
  step,
  tcpEndpoint,
  test,
  waitFor,
  type DaemonHandle,
  type TestContext,
} from '../lib/index.ts';
import { datapathInstance, datapathPackets, pinsExist, startGatewayDaemon, type DatapathRule } from '../lib/datapath.ts';
import { canCreateNetns, createGatewayTopology, startEchoInNetns, startSniffer, startStreamProbe, TOPOLOGY, type GatewayTopology, type Netns, type StreamProbe } from '../lib/netns.ts';
import { assertSchema, ramjetctl, type CtlFlow } from '../lib/ramjetctl.ts';

const netns = await canCreateNetns();
const skip = netns.ok ? false : netns.why;
const { client, server } = TOPOLOGY;
const OTHER_HOST = '10.10.1.66';
const WEB_RULE: DatapathRule = { name: 'web', proto: 'tcp', dst_port: 80, action: 'escalate', endpoint: 'web' };

interface HookLine {
  seq: number;
  hook: string;
  flow: number;
  decision: string;
  detail?: string;
}
type ShownFlow = CtlFlow & { hooks: HookLine[] | null };

interface EventLine {
  type: 'flow_new' | 'escalate' | 'drop_sample' | 'connection_open' | 'connection_close';
  time: string;
  flow_id?: number;
  proto?: string;
  src?: string;
  dst?: string;
  verdict?: string;
  endpoint?: string | null;
  close_reason?: string;
  bytes_from_client?: number;
  bytes_to_client?: number;
  [key: string]: unknown;
}

interface RuleRow {
  slot: number;
  rule_id: number;
  name: string | null;
  action: string;
  proto: string | null;
  dst_port: string | null;
  [key: string]: unknown;
}
interface RulesListing {
  source?: string;
  default_action: string;
  generation: number;
  runtime_edits?: boolean;
  rules: RuleRow[];
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** NDJSON body -> parsed lines. */
function ndjson<T>(body: string, what: string): T[] {
  return body
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      try {
        return JSON.parse(l) as T;
      } catch {
        throw new Error(`${what}: a line is not JSON: ${l.slice(0, 300)}`);
      }
    });
}

/** GET an NDJSON route of the admin API; each line must match `schema`. */
async function adminLines<T>(daemon: DaemonHandle, path: string, schema: string): Promise<T[]> {
  const res = await daemon.admin('GET', path);
  assert.equal(res.status, 200, `GET ${path}: ${res.status} ${res.body.slice(0, 500)}`);
  const lines = ndjson<T>(res.body, `GET ${path}`);
  for (const line of lines) assertSchema(schema, line);
  return lines;
}

/** An admin request that must fail with `status` and a {"error": "..."} body; returns the message. */
async function adminError(daemon: DaemonHandle, method: string, path: string, status: number, body?: unknown): Promise<string> {
  const res = await daemon.admin(method, path, body);
  assert.equal(res.status, status, `${method} ${path}: expected ${status}, got ${res.status} ${res.body.slice(0, 300)}`);
  const parsed = JSON.parse(res.body) as { error?: unknown };
  assert.equal(typeof parsed.error, 'string', `${method} ${path}: error body ${res.body}`);
  return parsed.error as string;
}

const UDP_STREAM = String.raw`
import socket, sys, time
src, host, port, interval, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 0))
print('BOUND %s %d' % s.getsockname(), flush=True)
payload = b'u' * size
while True:
    try:
        s.sendto(payload, (host, port))
    except OSError:
        pass
    time.sleep(interval)
`;

const UDP_SINK = String.raw`
import select, socket, sys
socks = []
for p in sys.argv[2].split(','):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sys.argv[1], int(p)))
    socks.append(s)
print('READY', flush=True)
while True:
    ready, _, _ = select.select(socks, [], [])
    for s in ready:
        s.recv(65535)
`;

/** Datagrams from `src` (an address of the client namespace) to the server every `intervalMs`. */
async function startUdpStream(t: TestContext, ns: Netns, options: { src: string; port: number; intervalMs: number; size?: number }): Promise<{ port: number }> {
  const proc = ns.spawn(t, 'python3', ['-u', '-c', UDP_STREAM, options.src, server.ipv4, String(options.port), String(options.intervalMs / 1000), String(options.size ?? 100)], {
    what: `udp stream ${options.src} -> ${server.ipv4}:${options.port}`,
  });
  const bound = await proc.waitForOutput(/^BOUND \S+ (\d+)$/m, 10_000);
  return { port: Number(bound[1]) };
}

/** A TCP connect from `source` to the server's `port` that must complete within 1 s. */
async function reachable(topo: GatewayTopology, port: number, source: string = client.ipv4): Promise<boolean> {
  const res = await topo.client.exec('socat', ['-T1', '/dev/null', `TCP4:${server.ipv4}:${port},bind=${source},connect-timeout=1`], { allowFailure: true });
  return res.code === 0;
}

const ONE_ROUND_TRIP = String.raw`
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.5)
    s.sendall(b'ping')
    print('ECHO' if s.recv(4) else 'EOF', flush=True)
except OSError as e:
    print('FAILED %s' % e, flush=True)
`;

/** The stream probe's flow in a listing: the client's side of its connection sent first. */
const probeFlow = (flows: CtlFlow[], probe: StreamProbe | { port: number }): CtlFlow | undefined => {
  const port = 'local' in probe ? probe.local.port : probe.port;
  return flows.find((f) => f.src === `${client.ipv4}:${port}` && f.kernel !== null);
};

/** "12.3K/s" -> bytes per second. */
function parseRate(text: string): number {
  const m = /^(\d+(?:\.\d)?)([KMGTPE]?)\/s$/.exec(text);
  assert.ok(m, `not a rate: ${text}`);
  return Number(m[1]) * 1024 ** ' KMGTPE'.indexOf(m[2] === '' ? ' ' : m[2]!);
}

/** The rows of a flows table (as printed by `flows list` and `flows top`), by the header's columns. */
function tableRows(lines: string[]): Array<{ id: number; verdict: string; rate: number; line: string }> {
  const rows: Array<{ id: number; verdict: string; rate: number; line: string }> = [];
  for (const line of lines) {
    const cells = line.trim().split(/\s+/);
    if (cells.length < 11 || !/^\d+$/.test(cells[0]!)) continue;
    // ID PROTO SOURCE DESTINATION VERDICT ENDPOINT PACKETS BYTES RATE AGE IDLE ENGINE...
    rows.push({ id: Number(cells[0]), verdict: cells[4]!, rate: parseRate(cells[8]!), line });
  }
  return rows;
}

/** Rates in printed order must not increase (allowing for the one-decimal rounding). */
function assertSortedByRate(rates: number[], what: string): void {
  for (let i = 1; i < rates.length; i++) assert.ok(rates[i]! <= rates[i - 1]! * 1.06 + 1, `${what}: row ${i} (${rates[i]} B/s) is faster than the row above (${rates[i - 1]} B/s): ${rates.join(', ')}`);
}

test('ramjetctl against a live ramjetd: flows across kernel and engine, kill, block, rules, reload, events, top, metrics, drain', { skip, timeout: 150_000 }, async (t) => {
  const topo = await createGatewayTopology(t, { extraClientAddresses: [OTHER_HOST] });
  await startEchoInNetns(t, topo.server, server.ipv4, 80); // reached through the engine (rule web)
  await startEchoInNetns(t, topo.server, server.ipv4, 5001); // the fast path
  await startEchoInNetns(t, topo.server, server.ipv4, 5002); // what the rules steps drop and allow
  const sink = topo.server.spawn(t, 'python3', ['-u', '-c', UDP_SINK, server.ipv4, '5003,5004'], { what: 'udp sink' });
  await sink.waitForOutput(/^READY$/m, 10_000);
  const instance = datapathInstance(t, 'live');
  const daemon = await startGatewayDaemon(t, topo, {
    instance,
    default_action: 'fastpath',
    rules: [WEB_RULE],
    config: { server: { drain_timeout: '15s' } },
  });
  const ctl = ramjetctl({ adminSocket: daemon.adminSocket });
  const list = (args: string[] = []): Promise<CtlFlow[]> => ctl.json<CtlFlow[]>(['flows', 'list', ...args], 'flows-list.json');

  // Three flows that live through most steps, at clearly different rates.
  const fast = await startStreamProbe(t, topo.client, { host: server.ipv4, port: 5001 }, { seconds: 140, intervalMs: 5 });
  const tunnel = await startStreamProbe(t, topo.client, { host: server.ipv4, port: 80 }, { seconds: 140, intervalMs: 40 });
  const udp = await startUdpStream(t, topo.client, { src: client.ipv4, port: 5003, intervalMs: 50 });
  await fast.waitForMoreRounds(20);
  await tunnel.waitForMoreRounds(5);

  /** The three flows as listed now (the tunnel once both halves are there). */
  const current = async (args: string[] = []): Promise<{ all: CtlFlow[]; a: CtlFlow; b: CtlFlow; u: CtlFlow }> => {
    let all: CtlFlow[] = [];
    try {
      return await waitFor(
        async () => {
          all = await list(args);
          const a = probeFlow(all, fast);
          const b = probeFlow(all, tunnel);
          const u = probeFlow(all, udp);
          return a && b && b.engine !== null && u ? { all, a, b, u } : undefined;
        },
        { timeoutMs: 5_000, intervalMs: 100, what: 'the fast-path stream, the tunnel (both halves) and the UDP flow in flows list' },
      );
    } catch (error) {
      throw new Error(`${String(error)}\nlisted:\n${all.map((f) => JSON.stringify(f)).join('\n')}`);
    }
  };

  await step(t, 'status, stats, endpoints and connections describe the running daemon', async () => {
    const status = await ctl.json<{ pid: number; workers: number; endpoints: Record<string, string> }>(['status'], 'status.json');
    assert.equal(status.pid, daemon.pid);
    assert.equal(status.workers, 1);
    assert.equal(status.endpoints.web, daemon.ready.endpoints.web);

    const stats = await ctl.json<{ engine_running: boolean; counters: Record<string, number>; datapath: { source: string; stats: Record<string, { packets: number }> } }>(['stats'], 'stats.json');
    assert.equal(stats.engine_running, true);
    assert.equal(stats.datapath.source, 'daemon');
    assert.ok(stats.counters.connections_accepted! >= 1, 'the tunnel was accepted by the engine');
    assert.ok(stats.datapath.stats.FASTPATH_REDIRECT!.packets > 0);
    assert.ok(stats.datapath.stats.ESCALATE!.packets > 0);
    const raw = JSON.parse((await daemon.admin('GET', '/v1/stats')).body) as { endpoints: Record<string, Record<string, number>> };
    assert.ok(raw.endpoints.web!.connections_accepted! >= 1, 'GET /v1/stats counts per endpoint');

    const endpoints = JSON.parse((await daemon.admin('GET', '/v1/endpoints')).body) as Array<Record<string, unknown>>;
    assert.equal(endpoints.length, 1, JSON.stringify(endpoints));
    const web = endpoints[0]!;
    assert.deepEqual([web.id, web.name, web.onramp, web.listen, web.transparent], [1, 'web', 'tcp', daemon.ready.endpoints.web, true]);
    assert.ok((web.connections_active as number) >= 1, `connections_active ${String(web.connections_active)} with the tunnel open`);

    const connections = JSON.parse((await daemon.admin('GET', '/v1/connections')).body) as Array<{ id: number; client: string; local: string; escalated: boolean; endpoint: string }>;
    assert.ok(Array.isArray(connections));
    for (const c of connections) assertSchema('connection.json', c);
    const mine = connections.find((c) => c.client === `${client.ipv4}:${tunnel.local.port}`);
    assert.ok(mine, `the tunnel is not among the engine's connections: ${JSON.stringify(connections)}`);
    assert.equal(mine.local, `${server.ipv4}:80`, 'local is the original destination');
    assert.equal(mine.escalated, true);
    assert.equal(mine.endpoint, 'web');
  });

  await step(t, 'flows list: a fast-path stream, a UDP flow and an escalated tunnel, counters moving between two listings', async () => {
    const first = await current();
    const { a, b, u } = first;
    assert.equal(a.proto, 'tcp');
    assert.equal(a.dst, `${server.ipv4}:5001`);
    assert.equal(a.verdict, 'FASTPATH');
    assert.equal(a.kernel!.verdict, 'FASTPATH');
    assert.equal(a.rule, null, 'the default action decided the fast-path flow');
    assert.equal(a.engine, null, 'a fast-path flow never reaches the engine');

    assert.equal(u.proto, 'udp');
    assert.equal(u.dst, `${server.ipv4}:5003`);
    assert.equal(u.verdict, 'FASTPATH');

    // The tunnel: one row, both halves, one id.
    assert.equal(b.dst, `${server.ipv4}:80`);
    assert.equal(b.verdict, 'ESCALATE');
    assert.equal(b.rule, 'web');
    assert.equal(b.endpoint, 'web');
    assert.equal(b.kernel!.verdict, 'ESCALATE');
    assert.equal(b.kernel!.rule, 'web');
    assert.equal(b.kernel!.escalated, true);
    const e = b.engine!;
    assert.equal(e.id, b.id, 'the engine connection carries the kernel flow id');
    assert.equal(e.endpoint, 'web');
    assert.equal(e.escalated, true);
    assert.equal(e.client, b.src);
    assert.equal(e.local, b.dst, "the engine's local address is the original destination");
    assert.equal(e.upstream, `${server.ipv4}:80`);
    assert.equal(e.state, 'relaying');
    assert.equal(first.all.filter((f) => f.id === b.id).length, 1, 'the tunnel must be one row, not one per half');
    const ids = first.all.map((f) => f.id);
    assert.equal(new Set(ids).size, ids.length, `duplicate ids in the listing: ${ids.join(' ')}`);

    await fast.waitForMoreRounds(20);
    await tunnel.waitForMoreRounds(5);
    const second = await current();
    assert.equal(second.a.id, a.id);
    assert.equal(second.b.id, b.id);
    assert.equal(second.u.id, u.id);
    assert.ok(second.a.kernel!.packets[0] > a.kernel!.packets[0] && second.a.kernel!.packets[1] > a.kernel!.packets[1], `fast-path packets: ${JSON.stringify(a.kernel!.packets)} -> ${JSON.stringify(second.a.kernel!.packets)}`);
    assert.ok(second.a.bytes > a.bytes && second.a.packets > a.packets);
    assert.ok(second.b.kernel!.packets[0] > b.kernel!.packets[0], `tunnel kernel packets: ${b.kernel!.packets[0]} -> ${second.b.kernel!.packets[0]}`);
    assert.ok(second.b.engine!.bytes_from_client > e.bytes_from_client && second.b.engine!.bytes_to_client > e.bytes_to_client, 'the engine half relays');
    assert.ok(second.u.packets > u.packets, `udp packets: ${u.packets} -> ${second.u.packets}`);

    // The human table: one row per flow, the engine column for the tunnel.
    const table = await ctl.run(['flows', 'list', '--src', `${client.ipv4}/32`, '--dst', `${server.ipv4}/32`]);
    assert.equal(table.code, 0, table.output);
    assert.equal(table.stderr, '', 'with ramjetd running there is no "not running" note');
    assert.match(table.stdout, /^\s+ID\s+PROTO\s+SOURCE\s+DESTINATION\s+VERDICT\s+ENDPOINT\s+PACKETS\s+BYTES\s+RATE\s+AGE\s+IDLE\s+ENGINE$/m);
    assert.match(table.stdout, new RegExp(`^\\s*${a.id}\\s+tcp\\s+${escapeRe(a.src)}\\s+${escapeRe(a.dst)}\\s+FASTPATH\\s+-\\s`, 'm'));
    assert.match(table.stdout, new RegExp(`^\\s*${b.id}\\s+tcp\\s+${escapeRe(b.src)}\\s+${escapeRe(b.dst)}\\s+ESCALATE\\s+web\\s.*\\sw0 relaying$`, 'm'));

    // --sort bytes --limit 1: the flow with the most bytes.
    const top = await list(['--sort', 'bytes', '--limit', '1']);
    assert.equal(top.length, 1);
    assert.ok(top[0]!.bytes >= Math.max(...second.all.map((f) => f.bytes)), `--sort bytes --limit 1 gave ${top[0]!.bytes} bytes, the listing before had ${Math.max(...second.all.map((f) => f.bytes))}`);
  });

  await step(t, "the daemon's merged view (GET /v1/flows, flows list --source api) agrees with the pinned maps", async () => {
    const { a, b, u } = await current();
    const api = await current(['--source', 'api']);
    assert.deepEqual([api.a.id, api.b.id, api.u.id], [a.id, b.id, u.id]);
    assert.equal(api.b.engine!.id, b.id);
    assert.equal(api.b.kernel!.verdict, 'ESCALATE');
    assert.equal(api.b.endpoint, 'web');
    assert.equal(api.b.rule, 'web');

    const lines = await adminLines<CtlFlow>(daemon, '/v1/flows', 'flow.json');
    assertSchema('flows-list.json', lines);
    const tunnelLine = lines.find((f) => f.id === b.id);
    assert.ok(tunnelLine, 'GET /v1/flows lists the tunnel');
    assert.ok(tunnelLine.kernel !== null && tunnelLine.engine !== null, `GET /v1/flows merges both halves of the tunnel: ${JSON.stringify(tunnelLine)}`);
    assert.equal(lines.filter((f) => f.id === b.id).length, 1);
    assert.ok(lines.some((f) => f.id === a.id && f.engine === null));
  });

  await step(t, 'filters (--proto, --port, --verdict, --endpoint, --src/--dst) select the right rows, in ramjetctl and in GET /v1/flows', async () => {
    const { a, b, u } = await current();
    const cases: Array<{ args: string[]; query: string; row: (f: CtlFlow) => boolean; include: CtlFlow[]; exclude: CtlFlow[] }> = [
      { args: ['--proto', 'udp'], query: 'proto=udp', row: (f) => f.proto === 'udp', include: [u], exclude: [a, b] },
      { args: ['--port', '80'], query: 'port=80', row: (f) => f.src.endsWith(':80') || f.dst.endsWith(':80'), include: [b], exclude: [a, u] },
      { args: ['--port', '5001', '--proto', 'tcp'], query: 'port=5001&proto=tcp', row: (f) => f.proto === 'tcp' && (f.src.endsWith(':5001') || f.dst.endsWith(':5001')), include: [a], exclude: [b, u] },
      { args: ['--verdict', 'escalate'], query: 'verdict=ESCALATE', row: (f) => f.verdict === 'ESCALATE', include: [b], exclude: [a, u] },
      { args: ['--verdict', 'fastpath'], query: 'verdict=FASTPATH', row: (f) => f.verdict === 'FASTPATH', include: [a, u], exclude: [b] },
      { args: ['--verdict', 'engine'], query: 'verdict=ENGINE', row: (f) => f.verdict === 'ENGINE' && f.kernel === null, include: [], exclude: [a, b, u] },
      { args: ['--endpoint', 'web'], query: 'endpoint=web', row: (f) => f.endpoint === 'web', include: [b], exclude: [a, u] },
      {
        args: ['--src', `${client.ipv4}/32`, '--dst', `${server.ipv4}`, '--proto', 'tcp'],
        query: `src=${encodeURIComponent(`${client.ipv4}/32`)}&dst=${server.ipv4}&proto=tcp`,
        row: (f) => f.src.startsWith(`${client.ipv4}:`) && f.dst.startsWith(`${server.ipv4}:`) && f.proto === 'tcp',
        include: [a, b],
        exclude: [u],
      },
      { args: ['--src', `${server.ipv4}/32`], query: `src=${encodeURIComponent(`${server.ipv4}/32`)}`, row: (f) => f.src.startsWith(`${server.ipv4}:`), include: [], exclude: [a, b, u] },
    ];
    for (const c of cases) {
      const sources: Array<[string, () => Promise<CtlFlow[]>]> = [
        [`flows list ${c.args.join(' ')}`, () => list(c.args)],
        [`flows list --source api ${c.args.join(' ')}`, () => list(['--source', 'api', ...c.args])],
        // The daemon filters by itself (ramjetctl filters the stream again, so check the route directly).
        [`GET /v1/flows?${c.query}`, () => adminLines<CtlFlow>(daemon, `/v1/flows?${c.query}`, 'flow.json')],
      ];
      for (const [what, read] of sources) {
        const rows = await read();
        for (const f of rows) assert.ok(c.row(f), `${what} listed a row it should not have: ${JSON.stringify(f)}`);
        for (const f of c.include) assert.ok(rows.some((r) => r.id === f.id), `${what} is missing flow ${f.id} (${f.src} -> ${f.dst}): got ids ${rows.map((r) => r.id).join(' ')}`);
        for (const f of c.exclude) assert.ok(!rows.some((r) => r.id === f.id), `${what} listed flow ${f.id} (${f.src} -> ${f.dst})`);
      }
    }
    const bad = await adminError(daemon, 'GET', '/v1/flows?port=eighty', 400);
    assert.match(bad, /port/);
    assert.match(await adminError(daemon, 'GET', '/v1/flows?colour=red', 400), /colour/);
  });

  await step(t, 'flows show: kernel counters, engine state and the hook decisions of one flow id', async () => {
    const { a, b } = await current();
    const shown = await ctl.json<ShownFlow>(['flows', 'show', String(b.id)], 'flow-show.json');
    assert.equal(shown.id, b.id);
    assert.equal(shown.kernel!.verdict, 'ESCALATE');
    assert.equal(shown.engine!.id, b.id);
    assert.ok(Array.isArray(shown.hooks) && shown.hooks.length > 0, `hooks of the tunnel: ${JSON.stringify(shown.hooks)}`);
    assert.ok(shown.hooks.every((h) => h.flow === b.id), 'flows show lists only that flow\'s hooks');
    const hooks = shown.hooks.map((h) => h.hook);
    assert.equal(hooks[0], 'ingress.handle_connection');
    assert.equal(shown.hooks[0]!.decision, 'allow');
    assert.ok(hooks.includes('egress.handle_connection'), hooks.join(', '));
    const seqs = shown.hooks.map((h) => h.seq);
    assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), 'hooks in invocation order');

    const raw = JSON.parse((await daemon.admin('GET', `/v1/flows/${b.id}`)).body) as ShownFlow;
    assertSchema('flow-show.json', raw);
    assert.equal(raw.id, b.id);

    const fastShown = await ctl.json<ShownFlow>(['flows', 'show', String(a.id)], 'flow-show.json');
    assert.equal(fastShown.engine, null);
    assert.deepEqual(fastShown.hooks, [], 'no hook runs for a fast-path flow');

    const human = await ctl.run(['flows', 'show', String(b.id)]);
    assert.equal(human.code, 0, human.output);
    assert.match(human.stdout, new RegExp(`^flow ${b.id}$`, 'm'));
    assert.match(human.stdout, /^kernel\n\s+reason\s+\S+/m);
    assert.match(human.stdout, /^engine\n\s+endpoint\s+web \(worker 0\)$/m);
    assert.match(human.stdout, /^hooks\n\s+#\d+ ingress\.handle_connection\s+allow/m);

    const missing = await ctl.run(['flows', 'show', '987654321']);
    assert.equal(missing.code, 3, missing.output);
    assert.match(missing.stderr, /987654321/);
    await adminError(daemon, 'GET', '/v1/flows/987654321', 404);
  });

  await step(t, 'flows top: a live view sorted by rate in a real terminal (tmux), plain blocks when not a tty, JSON lines', async (s) => {
    const { a } = await current();

    // Not a tty: one plain block per refresh.
    const startedAt = Date.now();
    const plain = await ctl.run(['flows', 'top', '--interval', '500ms', '--iterations', '2']);
    assert.equal(plain.code, 0, plain.output);
    assert.ok(Date.now() - startedAt >= 500, 'two refreshes 500 ms apart');
    assert.ok(!plain.stdout.includes('\x1b['), 'no terminal escapes when stdout is not a tty');
    const blocks = plain.stdout.split(/^(?=ramjet flows top )/m).filter((b) => b.trim() !== '');
    assert.equal(blocks.length, 2, plain.stdout);
    for (const block of blocks) {
      const lines = block.split('\n');
      assert.match(lines[0]!, /^ramjet flows top {2}\d\d:\d\d:\d\d {2}\d+ flows, \d+ engine connections {2}\(by rate, every 500ms\)$/);
      assert.match(lines[1]!, /^\s+ID\s+PROTO\s+SOURCE\s+DESTINATION\s+VERDICT/);
      const rows = tableRows(lines);
      assert.ok(rows.length >= 3, block);
      assertSortedByRate(rows.map((r) => r.rate), 'flows top (plain)');
    }
    assert.equal(tableRows(blocks[1]!.split('\n'))[0]!.id, a.id, `the fastest flow (${a.id}) goes first:\n${blocks[1]}`);

    // --json: one line per refresh.
    const json = await ctl.run(['--json', 'flows', 'top', '--interval', '500ms', '--iterations', '3']);
    assert.equal(json.code, 0, json.output);
    const refreshes = ndjson<{ iteration: number; flows_total: number; engine_running: boolean; flows: CtlFlow[] }>(json.stdout, 'flows top --json');
    assert.deepEqual(refreshes.map((r) => r.iteration), [1, 2, 3]);
    for (const r of refreshes) {
      assertSchema('flows-top.json', r);
      assert.equal(r.engine_running, true);
      assert.ok(r.flows_total >= 3 && r.flows.length >= 3, JSON.stringify(r).slice(0, 500));
      const rates = r.flows.map((f) => f.rate_bps);
      assert.deepEqual(rates, [...rates].sort((x, y) => y - x), `iteration ${r.iteration} is not sorted by rate`);
    }
    assert.equal(refreshes[2]!.flows[0]!.id, a.id, 'the fastest flow goes first');

    // A real terminal: tmux with a fixed size; the screen is redrawn in place.
    const socket = `rjtop-${randomBytes(3).toString('hex')}`;
    const tmux = (...args: string[]) => run('tmux', ['-L', socket, '-f', '/dev/null', ...args], { env: { TERM: 'xterm-256color' }, timeoutMs: 10_000 });
    const command = `${binaryPath('ramjetctl')} --admin-socket ${daemon.adminSocket} flows top --interval 500ms; echo "EXITED $?"; sleep 60`;
    const started = await tmux('new-session', '-d', '-s', 'top', '-x', '200', '-y', '30', command);
    assert.equal(started.code, 0, started.output);
    defer(s, `tmux server ${socket}`, async () => void (await tmux('kill-server')));
    const capture = async (): Promise<string[]> => {
      const r = await tmux('capture-pane', '-p', '-t', 'top');
      assert.equal(r.code, 0, r.output);
      return r.stdout.split('\n');
    };
    let screen: string[] = [];
    await waitFor(
      async () => {
        screen = await capture();
        if (screen.some((l) => l.startsWith('EXITED'))) throw new Error(`flows top exited in the terminal:\n${screen.join('\n')}`);
        return tableRows(screen).length >= 3;
      },
      { timeoutMs: 5_000, intervalMs: 100, what: 'flows top to draw its table in tmux' },
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}\nscreen:\n${screen.join('\n')}`);
    });
    const title = /^ramjet flows top {2}(\d\d:\d\d:\d\d) {2}\d+ flows, \d+ engine connections {2}\(by rate, every 500ms\)$/;
    assert.match(screen[0]!, title, screen.join('\n'));
    assert.match(screen[1]!, /^\s+ID\s+PROTO\s+SOURCE\s+DESTINATION\s+VERDICT\s+ENDPOINT\s+PACKETS\s+BYTES\s+RATE\s+AGE\s+IDLE\s+ENGINE$/);
    const rows = tableRows(screen);
    assert.ok(rows.length <= 30 - 3, 'rows fit the terminal');
    assertSortedByRate(rows.map((r) => r.rate), 'flows top (tty)');
    assert.equal(rows[0]!.id, a.id, `the fastest flow (${a.id}) goes first:\n${screen.join('\n')}`);
    const firstTime = title.exec(screen[0]!)![1];
    // A later refresh replaces the screen: one title, at the top, with a new time.
    await waitFor(
      async () => {
        screen = await capture();
        return title.exec(screen[0] ?? '')?.[1] !== firstTime;
      },
      { timeoutMs: 4_000, intervalMs: 200, what: 'flows top to redraw' },
    );
    assert.equal(screen.filter((l) => l.startsWith('ramjet flows top')).length, 1, `the view scrolled instead of redrawing:\n${screen.join('\n')}`);
    assert.ok(!screen.some((l) => l.startsWith('EXITED')));
  });

  await step(t, '/metrics of the same daemon parses and its datapath family counts the fast-path flow', async () => {
    const { a } = await current();
    const fastpathPackets = (m: Awaited<ReturnType<DaemonHandle['metrics']>>): number =>
      m.samples('ramjet_datapath_packets_total').filter((x) => x.labels.verdict === 'fastpath').reduce((sum, x) => sum + x.value, 0);
    const flowPackets = async (): Promise<number> => {
      const f = await ctl.json<ShownFlow>(['flows', 'show', String(a.id)], 'flow-show.json');
      return f.kernel!.packets[0] + f.kernel!.packets[1];
    };
    // m1 <= k1 < k2 <= m2: the family moves at least as much as the flow did in between.
    const m1 = await daemon.metrics();
    const k1 = await flowPackets();
    await fast.waitForMoreRounds(20);
    const k2 = await flowPackets();
    const m2 = await daemon.metrics();
    assert.ok(k2 - k1 >= 20, `the fast-path flow moved ${k2 - k1} packets in 10+ round trips (one data segment each way per round trip)`);
    const moved = fastpathPackets(m2) - fastpathPackets(m1);
    assert.ok(moved >= k2 - k1, `ramjet_datapath_packets_total{verdict="fastpath"} moved ${moved}, the flow alone ${k2 - k1}`);
    assert.equal(m2.familyOf('ramjet_datapath_packets_total')?.type, 'counter');
    assert.ok(m2.value('ramjet_connections_active', { endpoint: 'web' }) >= 1, 'the tunnel is an active connection of web');
    await waitFor(async () => (await daemon.metrics()).value('ramjet_datapath_flows') >= 3, { timeoutMs: 5_000, intervalMs: 250, what: 'ramjet_datapath_flows >= 3' });
  });

  await step(t, 'events --follow --json: connection_open/close through the endpoint and flow_new for a new fast-path flow, as they happen', async (s) => {
    const follow = new ManagedProcess(binaryPath('ramjetctl'), ['--admin-socket', daemon.adminSocket, '--json', 'events', '--follow']);
    defer(s, 'ramjetctl events --follow', async () => void (await follow.terminate(2_000)));
    const lines = (): EventLine[] => {
      const text = follow.stdout();
      return ndjson<EventLine>(text.slice(0, text.lastIndexOf('\n') + 1), 'events --follow');
    };
    // The recent events come first (the flows started above): then the stream is live.
    await waitFor(
      () => {
        if (follow.exited) throw new Error(`events --follow exited: ${follow.output()}`);
        return lines().length > 0;
      },
      { timeoutMs: 5_000, what: 'the recent events' },
    );
    const replayed = lines().length;

    const escalated = await startStreamProbe(s, topo.client, { host: server.ipv4, port: 80 }, { seconds: 0.3, intervalMs: 10 });
    const newFast = await startStreamProbe(s, topo.client, { host: server.ipv4, port: 5001 }, { seconds: 0.3, intervalMs: 10 });
    const escalatedResult = await escalated.result();
    await newFast.result();
    const src = `${client.ipv4}:${escalated.local.port}`;
    const fastSrc = `${client.ipv4}:${newFast.local.port}`;
    let live: EventLine[] = [];
    await waitFor(
      () => {
        live = lines().slice(replayed);
        return live.some((e) => e.type === 'connection_close' && e.src === src) && live.some((e) => e.type === 'flow_new' && e.src === fastSrc);
      },
      { timeoutMs: 5_000, intervalMs: 50, what: 'connection_close of the escalated connection and flow_new of the fast-path one' },
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}\nevents after the replay:\n${live.map((e) => JSON.stringify(e)).join('\n')}`);
    });
    for (const e of lines()) {
      assertSchema('event.json', e);
      assert.match(e.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, `time ${e.time}`);
    }
    const openAt = live.findIndex((e) => e.type === 'connection_open' && e.src === src);
    const closeAt = live.findIndex((e) => e.type === 'connection_close' && e.src === src);
    assert.ok(openAt >= 0 && openAt < closeAt, `connection_open must come before connection_close:\n${live.map((e) => JSON.stringify(e)).join('\n')}`);
    const open = live[openAt]!;
    const close = live[closeAt]!;
    assert.equal(open.endpoint, 'web');
    assert.equal(open.dst, `${server.ipv4}:80`, 'dst is the original destination');
    assert.equal(close.flow_id, open.flow_id);
    assert.equal(close.endpoint, 'web');
    assert.equal(typeof close.close_reason, 'string');
    assert.equal(close.bytes_from_client, escalatedResult.sent);
    assert.equal(close.bytes_to_client, escalatedResult.received);
    // The kernel saw the same flow first, under the same id.
    const kernelSide = live.filter((e) => (e.type === 'flow_new' || e.type === 'escalate') && e.src === src);
    assert.ok(kernelSide.length > 0, 'no kernel event for the escalated flow');
    for (const e of kernelSide) assert.equal(e.flow_id, open.flow_id, `kernel event ${JSON.stringify(e)} has another id than the engine's ${String(open.flow_id)}`);

    const flowNew = live.find((e) => e.type === 'flow_new' && e.src === fastSrc)!;
    assert.equal(flowNew.dst, `${server.ipv4}:5001`);
    assert.equal(flowNew.proto, 'tcp');
    assert.equal(flowNew.verdict, 'FASTPATH');
    assert.equal(typeof flowNew.flow_id, 'number');

    // Without --follow: the recent events, then the command ends by itself.
    const recent = await ctl.run(['--json', 'events'], { timeoutMs: 10_000 });
    assert.equal(recent.code, 0, recent.output);
    const recentLines = ndjson<EventLine>(recent.stdout, 'events --json');
    for (const e of recentLines) assertSchema('event.json', e);
    assert.ok(recentLines.some((e) => e.type === 'connection_close' && e.src === src));
    assert.ok(recentLines.length <= 1024 + 64, `${recentLines.length} recent events`);
    const human = await ctl.run(['events']);
    assert.equal(human.code, 0, human.output);
    assert.match(human.stdout, new RegExp(`^\\S+ {2}connection_close\\s+flow ${String(open.flow_id)} .*src=${escapeRe(src)} `, 'm'));

    // The client going away ends the stream; the daemon carries on.
    await follow.terminate(2_000);
    await ctl.json(['status'], 'status.json');
  });

  await step(t, 'flows kill ID on the escalated tunnel: the client connection closes, both halves go', async () => {
    const { b } = await current();
    const killedAt = Date.now();
    const r = await ctl.run(['flows', 'kill', String(b.id)]);
    assert.equal(r.code, 0, r.output);
    assert.match(r.stdout, /^killed 1 kernel flow, 1 engine connection$/m);
    const result = await tunnel.result(5_000);
    assert.ok(result.error !== null, 'the tunnel kept running after the kill');
    assert.doesNotMatch(result.error, /timed out/, `the client connection must be closed, not left hanging: ${result.error}`);
    assert.ok(Date.now() - killedAt < 3_000, `the client saw the close ${Date.now() - killedAt} ms after the kill`);

    await waitFor(
      async () => {
        const flows = await list();
        return !flows.some((f) => f.id === b.id) && !flows.some((f) => f.engine?.client === b.src);
      },
      { timeoutMs: 3_000, intervalMs: 100, what: `flow ${b.id} (both halves) to leave the listing` },
    );
    const shown = await ctl.run(['flows', 'show', String(b.id)]);
    assert.equal(shown.code, 3, shown.output);
    const connections = JSON.parse((await daemon.admin('GET', '/v1/connections')).body) as Array<{ id: number }>;
    assert.ok(!connections.some((c) => c.id === b.id));
    const again = await ctl.run(['flows', 'kill', String(b.id)]);
    assert.equal(again.code, 3, `a second kill finds nothing: ${again.output}`);
    assert.match(again.stderr, new RegExp(`no flow ${b.id}`));
  });

  await step(t, 'flows kill on fast-path flows (by id, by filter): the kernel entries go, the streams do not notice', async () => {
    const before = await list();
    const a = probeFlow(before, fast)!;
    const u = probeFlow(before, udp)!;
    assert.ok(a && u);
    const killed = await ctl.json<{ kernel: number; engine: number }>(['flows', 'kill', String(a.id)], 'flows-kill.json');
    assert.deepEqual(killed, { kernel: 1, engine: 0 });
    // The next packet of the stream makes a new entry, with a new id.
    const reborn = await waitFor(
      async () => {
        const flows = await list();
        assert.ok(!flows.some((f) => f.id === a.id), `flow ${a.id} is still listed after the kill`);
        return probeFlow(flows, fast);
      },
      { timeoutMs: 5_000, intervalMs: 100, what: 'the stream to make a new kernel flow' },
    );
    assert.notEqual(reborn.id, a.id);
    await fast.waitForMoreRounds(20);
    assert.equal(fast.process.exited, false, 'the fast-path stream broke when its entry was killed');

    const byFilter = await ctl.json<{ kernel: number; engine: number }>(['flows', 'kill', '--proto', 'udp', '--port', '5003'], 'flows-kill.json');
    assert.ok(byFilter.kernel >= 1 && byFilter.engine === 0, JSON.stringify(byFilter));
    const after = await list(['--proto', 'udp']);
    assert.ok(!after.some((f) => f.id === u.id), `flow ${u.id} survived the filtered kill`);
    const none = await ctl.run(['flows', 'kill', '--port', '4444']);
    assert.equal(none.code, 3, none.output);
    assert.match(none.stderr, /no flow matches port=4444/);
  });

  await step(t, 'block SRC/32 --for 5s: nothing from the source reaches the server until it expires; unblock of an unknown prefix exits 3', async (s) => {
    const sniffer = await startSniffer(s, topo.server, 'eth0', [`${OTHER_HOST}/32`]);
    await startUdpStream(s, topo.client, { src: OTHER_HOST, port: 5004, intervalMs: 20 });
    const seen = (): number => sniffer.frames().length;
    await waitFor(() => seen() >= 5, { timeoutMs: 5_000, what: `datagrams from ${OTHER_HOST} at the server` });
    const deniedBefore = (await datapathPackets(daemon)).DENYLIST ?? 0;

    const callStart = Date.now();
    const blocked = await ctl.json<{ prefix: string; expires_in_ms: number; set_by: string }>(['block', `${OTHER_HOST}/32`, '--for', '5s'], 'block.json');
    const blockedAt = Date.now();
    assert.equal(blocked.prefix, `${OTHER_HOST}/32`);
    assert.equal(blocked.set_by, 'operator');
    assert.ok(blocked.expires_in_ms > 4_000 && blocked.expires_in_ms <= 5_000, String(blocked.expires_in_ms));
    const listed = await ctl.json<Array<{ prefix: string; expires_in_ms: number | null; set_by: string }>>(['blocks', 'list'], 'blocks-list.json');
    const entry = listed.find((b) => b.prefix === `${OTHER_HOST}/32`);
    assert.ok(entry && entry.set_by === 'operator' && entry.expires_in_ms !== null && entry.expires_in_ms <= 5_000, JSON.stringify(listed));
    const table = await ctl.run(['blocks', 'list']);
    assert.match(table.stdout, new RegExp(`^${escapeRe(OTHER_HOST)}/32\\s+in \\d+s\\s+operator$`, 'm'));

    await sleep(300); // frames already past the gateway
    const during = seen();
    await sleep(2_000);
    assert.ok(Date.now() - callStart < 5_000, 'the steps above took too long to observe the block');
    assert.equal(seen(), during, `${seen() - during} frames from ${OTHER_HOST} reached the server while it was blocked`);
    assert.ok((await datapathPackets(daemon)).DENYLIST! > deniedBefore, 'the blocked datagrams count as DENYLIST');
    assert.equal(await reachable(topo, 5001), true, 'other sources are not blocked');

    await waitFor(() => seen() > during, { timeoutMs: 10_000, intervalMs: 100, what: 'datagrams to reach the server again once the block expires' });
    const resumedAfter = Date.now() - callStart;
    assert.ok(resumedAfter >= 5_000, `traffic resumed ${resumedAfter} ms after the block was set, before its 5 s`);
    assert.ok(Date.now() - blockedAt < 8_000, `the block took ${Date.now() - blockedAt} ms to expire`);
    // The daemon's sweeper removes the expired entry.
    await waitFor(async () => !(await ctl.json<Array<{ prefix: string }>>(['blocks', 'list'], 'blocks-list.json')).some((b) => b.prefix === `${OTHER_HOST}/32`), {
      timeoutMs: 3_000,
      intervalMs: 250,
      what: 'the expired block to leave blocks list',
    });

    const unknown = await ctl.run(['unblock', '10.99.0.0/16']);
    assert.equal(unknown.code, 3, unknown.output);
    assert.match(unknown.stderr, /10\.99\.0\.0\/16 is not blocked/);
    await adminError(daemon, 'DELETE', `/v1/blocks/${encodeURIComponent('10.99.0.0/16')}`, 404);

    // Without --for: until removed.
    const forever = await ctl.json<{ prefix: string; expires_in_ms: number | null }>(['block', '10.10.1.77'], 'block.json');
    assert.deepEqual([forever.prefix, forever.expires_in_ms], ['10.10.1.77/32', null]);
    const removed = await ctl.json<{ prefix: string; removed: boolean }>(['unblock', '10.10.1.77/32'], 'unblock.json');
    assert.deepEqual(removed, { prefix: '10.10.1.77/32', removed: true });
    assert.equal((await ctl.run(['unblock', '10.10.1.77/32'])).code, 3);
    assert.match(await adminError(daemon, 'POST', '/v1/blocks', 400, { prefix: '10.0.0.0/99' }), /prefix/);
  });

  await step(t, 'rules add / list / del on the live daemon change what the kernel does', async () => {
    const names = (l: RulesListing): Array<string | null> => l.rules.map((r) => r.name);
    const initial = await ctl.json<RulesListing>(['rules', 'list'], 'rules-list.json');
    assert.equal(initial.source, 'daemon');
    assert.equal(initial.default_action, 'fastpath');
    assert.deepEqual(names(initial), ['web']);
    assert.equal(initial.runtime_edits, false);
    assert.equal(await reachable(topo, 5002), true);

    const dropsBefore = (await datapathPackets(daemon)).RULE_DROP ?? 0;
    const added = await ctl.json<RulesListing>(['rules', 'add', 'no-5002', '--action', 'drop', '--proto', 'tcp', '--dst-port', '5002'], 'rules-list.json');
    assert.deepEqual(names(added), ['web', 'no-5002']);
    const rule = added.rules[1]!;
    assert.deepEqual([rule.action, rule.proto, rule.dst_port], ['drop', 'tcp', '5002']);
    assert.equal(added.runtime_edits, true);
    assert.ok(added.generation > initial.generation, `generation ${initial.generation} -> ${added.generation}`);
    assert.deepEqual(names(await ctl.json<RulesListing>(['rules', 'list'], 'rules-list.json')), ['web', 'no-5002']);
    assert.equal(await reachable(topo, 5002), false, 'the drop rule must stop new connections to 5002');
    assert.ok((await datapathPackets(daemon)).RULE_DROP! > dropsBefore, 'the SYNs count as RULE_DROP');
    assert.equal(await reachable(topo, 5001), true, 'other ports are not affected');
    const table = await ctl.run(['rules', 'list']);
    assert.match(table.stdout, /^\s*1\s+no-5002\s+drop\s+tcp\s+-\s+-\s+5002\s/m);
    assert.match(table.stdout, /^default action: fastpath$/m);

    // --position puts a rule in front.
    const first = await ctl.json<RulesListing>(['rules', 'add', 'early', '--action', 'pass', '--proto', 'udp', '--dst-port', '9000-9100', '--position', '0'], 'rules-list.json');
    assert.deepEqual(names(first), ['early', 'web', 'no-5002']);
    assert.equal(first.rules[0]!.dst_port, '9000-9100');
    assert.deepEqual(names(await ctl.json<RulesListing>(['rules', 'del', 'early'], 'rules-list.json')), ['web', 'no-5002']);


    // Invalid rules are refused with the field named (exit 2); unknown names exit 3.
    const badAction = await ctl.run(['rules', 'add', 'bad', '--action', 'explode']);
    assert.equal(badAction.code, 2, badAction.output);
    assert.match(badAction.stderr, /action/);
    const badPort = await ctl.run(['rules', 'add', 'bad', '--action', 'drop', '--dst-port', '70000']);
    assert.equal(badPort.code, 2, badPort.output);
    assert.match(badPort.stderr, /dst_port/);
    const badEndpoint = await ctl.run(['rules', 'add', 'bad', '--action', 'escalate', '--endpoint', 'nowhere']);
    assert.equal(badEndpoint.code, 2, badEndpoint.output);
    assert.match(badEndpoint.stderr, /endpoint/);
    assert.deepEqual(names(await ctl.json<RulesListing>(['rules', 'list'], 'rules-list.json')), ['web', 'no-5002'], 'refused rules change nothing');
    const unknown = await ctl.run(['rules', 'del', 'no-such-rule']);
    assert.equal(unknown.code, 3, unknown.output);
    assert.match(unknown.stderr, /no-such-rule/);

    const deleted = await ctl.json<RulesListing>(['rules', 'del', 'no-5002'], 'rules-list.json');
    assert.deepEqual(names(deleted), ['web']);
    assert.equal(await reachable(topo, 5002), true, 'deleting the rule lets connections to 5002 through again');

    // The other keys a rule can have come back as given.
    const limited = await ctl.json<RulesListing>(['rules', 'add', 'dns-flood', '--action', 'ratelimit', '--proto', 'udp', '--dst-port', '53', '--rate-pps', '100', '--burst', '200'], 'rules-list.json');
    const rl = limited.rules.find((r) => r.name === 'dns-flood')!;
    assert.deepEqual([rl.action, rl.rate_pps, rl.burst], ['ratelimit', 100, 200]);
    const onIface = await ctl.json<RulesListing>(['rules', 'add', 'client-side', '--action', 'drop', '--proto', 'udp', '--dst-port', '9', '--interface', 'gw-c'], 'rules-list.json');
    const ir = onIface.rules.find((r) => r.name === 'client-side')!;
    for (const name of ['dns-flood', 'client-side']) await ctl.json(['rules', 'del', name], 'rules-list.json');
    const badIface = await ctl.run(['rules', 'add', 'bad', '--action', 'drop', '--interface', 'nosuch0']);
    assert.equal(badIface.code, 2, badIface.output);
    assert.match(badIface.stderr, /interface/);
    assert.equal(typeof ir.ifindex, 'number');
    assert.equal(ir.interface, 'gw-c', 'the daemon knows the interface name of its rules');
  });

  await step(t, 'reload swaps in the edited config file; a broken file fails with file:line:col and the running rules stay', async () => {
    const names = async (): Promise<Array<string | null>> => (await ctl.json<RulesListing>(['rules', 'list'], 'rules-list.json')).rules.map((r) => r.name);
    const original = await readFile(daemon.configPath, 'utf8');
    const config = JSON.parse(original) as { datapath: { rules: DatapathRule[] } };
    try {
      await ctl.json(['rules', 'add', 'runtime-only', '--action', 'drop', '--proto', 'udp', '--dst-port', '9999'], 'rules-list.json');
      config.datapath.rules.push({ name: 'cfg-no-5002', proto: 'tcp', dst_port: 5002, action: 'drop' });
      await writeFile(daemon.configPath, `${JSON.stringify(config, null, 2)}\n`);
      const reloaded = await ctl.json<{ reloaded: boolean; config: string; rules: number; applied: string[]; restart_required: string[] }>(['reload'], 'reload.json');
      assert.deepEqual(reloaded, {
        reloaded: true,
        config: daemon.configPath,
        rules: 2,
        applied: ['datapath.rules[runtime-only]', 'datapath.rules[cfg-no-5002]'], // the runtime rule goes, the file's new one comes
        restart_required: [],
      });
      assert.deepEqual(await names(), ['web', 'cfg-no-5002'], 'the file\'s rules replace the running ones (runtime rules end at a reload)');
      assert.equal((await ctl.json<RulesListing>(['rules', 'list'], 'rules-list.json')).runtime_edits, false);
      assert.equal(await reachable(topo, 5002), false, 'the reloaded drop rule is in force');
      await fast.waitForMoreRounds(10); // flows survive a reload

      // A broken file: the same message `config check` gives, and nothing changes.
      config.datapath.rules[1]!.action = 'explode' as DatapathRule['action'];
      const broken = `${JSON.stringify(config, null, 2)}\n`;
      await writeFile(daemon.configPath, broken);
      const line = broken.split('\n').findIndex((l) => l.includes('"explode"')) + 1;
      const check = await ctl.run(['config', 'check', daemon.configPath]);
      assert.equal(check.code, 2, check.output);
      const message = check.stderr.trim();
      assert.match(message, new RegExp(`^${escapeRe(daemon.configPath)}:${line}:\\d+: datapath\\.rules.*action`));
      const failed = await ctl.run(['reload']);
      assert.equal(failed.code, 2, failed.output);
      assert.ok(failed.stderr.includes(message), `reload must report the config error as config check does:\n  reload: ${failed.stderr.trim()}\n  check:  ${message}`);
      assert.deepEqual(await names(), ['web', 'cfg-no-5002'], 'a failed reload keeps the running rules');
      assert.equal(await reachable(topo, 5002), false);
    } finally {
      await writeFile(daemon.configPath, original);
    }
    const restored = await ctl.json<{ rules: number }>(['reload'], 'reload.json');
    assert.equal(restored.rules, 1);
    assert.deepEqual(await names(), ['web']);
    assert.equal(await reachable(topo, 5002), true);
  });

  await step(t, 'drain: new connections are not accepted, the open one keeps relaying, exit 0 once it closes', async (s) => {
    const held = await startStreamProbe(s, topo.client, { host: server.ipv4, port: 80 }, { seconds: 60, intervalMs: 50 });
    await held.waitForMoreRounds(5);
    const accepted = await daemon.counter('connections_accepted');
    const drain = await ctl.json<{ draining: boolean; deadline_ms: number }>(['drain'], 'drain.json');
    assert.equal(drain.draining, true);
    assert.ok(drain.deadline_ms > 10_000 && drain.deadline_ms <= 15_000, `deadline_ms ${drain.deadline_ms} (drain_timeout 15s)`);

    const attempt = await topo.client.exec('python3', ['-c', ONE_ROUND_TRIP, server.ipv4, '80'], { allowFailure: true, timeoutMs: 10_000 });
    assert.doesNotMatch(attempt.stdout, /ECHO/, 'a new connection was served while draining');
    await held.waitForMoreRounds(5);
    assert.equal(daemon.exited, false, 'the daemon must wait for the open connection');
    const status = await daemon.admin('GET', '/v1/stats').catch(() => undefined);
    if (status?.status === 200) {
      const counters = (JSON.parse(status.body) as { counters: Record<string, number> }).counters;
      assert.equal(counters.connections_accepted, accepted, 'the engine accepted a connection while draining');
    }

    await held.process.terminate(2_000);
    const closedAt = Date.now();
    const exit = await daemon.waitExit(10_000);
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(Date.now() - closedAt < 5_000, `exited ${Date.now() - closedAt} ms after the last connection closed (drain_timeout 15 s)`);
    assert.equal(pinsExist(instance), false, 'a normal exit removes the pinned datapath');
    const down = await ctl.run(['status']);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /ramjetd is not running/);
  });
});

test('ramjetd without the datapath: engine-only flows, kill of an engine connection, 409 for kernel features, API errors', { timeout: 30_000 }, async (t) => {
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, {
    config: { egress: { allow_private: ['127.0.0.0/8'] }, endpoints: [tcpEndpoint('front', echo.address, { idle_timeout: '60s' })] },
  });
  const ctl = ramjetctl({ adminSocket: daemon.adminSocket, instance: `never-${process.pid}` });
  const conn = await connect(t, daemon.endpoint('front'));
  assert.equal((await conn.roundTrip('hello')).toString(), 'hello');
  const local = `${conn.socket.localAddress!}:${conn.socket.localPort!}`;

  const flows = await ctl.json<CtlFlow[]>(['flows', 'list'], 'flows-list.json');
  const mine = flows.find((f) => f.src === local);
  assert.ok(mine, `the connection is not listed: ${JSON.stringify(flows)}`);
  assert.equal(mine.verdict, 'ENGINE');
  assert.equal(mine.kernel, null);
  assert.equal(mine.endpoint, 'front');
  assert.equal(mine.engine!.id, mine.id);
  assert.equal(mine.engine!.escalated, false);
  assert.equal(mine.engine!.bytes_from_client, 5);
  const api = await adminLines<CtlFlow>(daemon, '/v1/flows?verdict=ENGINE', 'flow.json');
  assert.ok(api.some((f) => f.id === mine.id));
  const shown = await ctl.json<ShownFlow>(['flows', 'show', String(mine.id)], 'flow-show.json');
  assert.ok(shown.hooks!.some((h) => h.hook === 'ingress.handle_connection'));

  const killed = await ctl.run(['flows', 'kill', String(mine.id)]);
  assert.equal(killed.code, 0, killed.output);
  assert.match(killed.stdout, /^killed 0 kernel flows, 1 engine connection$/m);
  await conn.waitForPeerClose(3_000);
  const entry = await daemon.waitForAccessLog((e) => e.flow === mine.id);
  assert.equal(entry.endpoint, 'front');
  await waitFor(async () => (await ctl.json<CtlFlow[]>(['flows', 'list'], 'flows-list.json')).length === 0, { timeoutMs: 3_000, what: 'the killed connection to leave flows list' });

  // The kernel features say they are off.
  const block = await ctl.run(['block', '10.0.0.1']);
  assert.equal(block.code, 1, block.output);
  assert.match(block.stderr, /the datapath is not enabled in the running ramjetd/);
  await adminError(daemon, 'GET', '/v1/blocks', 409);
  await adminError(daemon, 'POST', '/v1/blocks', 409, { prefix: '10.0.0.1/32', duration_ms: 0 });
  await adminError(daemon, 'GET', '/v1/rules', 409);
  await adminError(daemon, 'POST', '/v1/rules', 409, { name: 'x', action: 'drop' });
  const rules = await ctl.run(['rules', 'add', 'x', '--action', 'drop']);
  assert.equal(rules.code, 1, rules.output);
  await adminError(daemon, 'POST', '/v1/audit/reopen', 409);

  // reload without the datapath: the file is still read and checked (the logs reopen).
  const reloaded = await ctl.json<{ reloaded: boolean; config: string; rules: number }>(['reload'], 'reload.json');
  assert.deepEqual(reloaded, { reloaded: true, config: daemon.configPath, rules: 0, applied: [], restart_required: [] });
  const original = await readFile(daemon.configPath, 'utf8');
  try {
    await writeFile(daemon.configPath, original.replace('"workers": 1', '"wrokers": 1'));
    const check = await ctl.run(['config', 'check', daemon.configPath]);
    assert.equal(check.code, 2, check.output);
    const failed = await ctl.run(['reload']);
    assert.equal(failed.code, 2, `a broken config file must fail the reload: ${failed.output}`);
    assert.ok(failed.stderr.includes(check.stderr.trim()), `reload: ${failed.stderr.trim()}\ncheck:  ${check.stderr.trim()}`);
  } finally {
    await writeFile(daemon.configPath, original);
  }

  // Error statuses of the API.
  await adminError(daemon, 'GET', '/v1/flows/12345', 404);
  await adminError(daemon, 'POST', '/v1/flows/kill', 400);
  await adminError(daemon, 'POST', '/v1/flows/12345/kill', 404);
  await adminError(daemon, 'POST', '/v1/status', 405);
  await adminError(daemon, 'GET', '/v1/reload', 405);
  await adminError(daemon, 'GET', '/v1/no-such-route', 404);
  assert.match(await adminError(daemon, 'GET', '/v1/flows?proto=bogus', 400), /proto/);

  // The engine's events of that connection.
  const events = ndjson<EventLine>((await ctl.run(['--json', 'events'])).stdout, 'events --json');
  for (const e of events) assertSchema('event.json', e);
  const close = events.find((e) => e.type === 'connection_close' && e.src === local);
  assert.ok(close, JSON.stringify(events));
  assert.equal(close.flow_id, mine.id);
  assert.equal(close.endpoint, 'front');
  assert.ok(events.some((e) => e.type === 'connection_open' && e.flow_id === mine.id));
  assert.ok(!events.some((e) => e.type === 'flow_new'), 'no kernel events without the datapath');
});
