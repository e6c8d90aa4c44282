// UDP escalation from the datapath (issue 12 item 3, docs/udp.md "Escalated UDP"): a
// DNS server behind the gateway, dig from the client. A rule `proto: udp, dst_port: 53,
// action: escalate` hands the client's datagrams in TC to the transparent udp endpoint
// `dns` (bpf_sk_assign, original destination kept); the engine keys the session by
// (client, original destination), relays to that destination, and answers from it
// through the session's reply socket, so dig, which drops answers from any other
// source, takes them. With the daemon gone (draining mark kept) the rule's fallback
// applies; an ICMP port unreachable about a reply reaches the session that sent it.
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { checkIperf3UdpRun, test, waitFor, type DaemonHandle, type ManagedProcess } from '../lib/index.ts';
import {
  datapathInstance,
  datapathPackets,
  startGatewayDaemon,
  statDelta,
  waitForKernelFlow,
  type DatapathRule,
  type GatewayDaemonOptions,
} from '../lib/datapath.ts';
import { canCreateNetns, createGatewayTopology, type GatewayTopology, type Netns, TOPOLOGY } from '../lib/netns.ts';
import { ramjetctl } from '../lib/ramjetctl.ts';

const netns = await canCreateNetns();
const skip = netns.ok ? false : netns.why;
const { client, server, gatewayServerSide } = TOPOLOGY;
const ANSWER = '192.0.2.53';
const RESPONDER_PY = new URL('../lib/dns_responder.py', import.meta.url).pathname;
const DNS_ONCE_PY = new URL('../lib/dns_once.py', import.meta.url).pathname;

interface Query {
  name: string;
  from: string;
}

/** The python DNS responder on the server's address, port 53; its queries as they arrive. */
async function startResponder(t: TestContext, ns: Netns, host: string = server.ipv4): Promise<{ proc: ManagedProcess; queries: () => Query[] }> {
  const proc = ns.spawn(t, '/usr/bin/python3', ['-u', RESPONDER_PY, host, '53', ANSWER], { what: `dns responder in ${ns.name}` });
  await proc.waitForOutput(/^listening /m);
  const queries = (): Query[] => [...proc.output().matchAll(/^query (\S+) \d+ from (\S+) (\d+)$/gm)].map((m) => ({ name: m[1]!, from: `${m[2]}:${m[3]}` }));
  return { proc, queries };
}

function rules(fallback: 'pass' | 'drop' = 'drop'): DatapathRule[] {
  return [{ name: 'dns', proto: 'udp', dst_port: 53, action: 'escalate', endpoint: 'dns', on_engine_unavailable: fallback }];
}

function daemonOptions(fallback: 'pass' | 'drop' = 'drop', extra: Partial<GatewayDaemonOptions> = {}): GatewayDaemonOptions {
  return {
    default_action: 'fastpath',
    rules: rules(fallback),
    config: {
      endpoints: [
        { name: 'web', onramp: 'tcp', transparent: true, listen: '127.0.0.1:0' },
        { name: 'dns', onramp: 'udp', transparent: true, listen: '127.0.0.1:0' },
      ],
    },
    ...extra,
  };
}

async function dig(topo: GatewayTopology, name: string): Promise<string> {
  const r = await topo.client.exec('dig', [`@${server.ipv4}`, name, 'A', '+short', '+tries=1', '+time=3'], { allowFailure: true });
  return r.stdout.trim() + (r.code === 0 ? '' : ` (dig exit ${String(r.code)}: ${r.output.trim()})`);
}

interface EngineConnection {
  id: number;
  proto: string;
  endpoint: string;
  client: string;
  local: string;
  upstream?: string;
  escalated: boolean;
}

async function engineConnections(daemon: DaemonHandle): Promise<EngineConnection[]> {
  return JSON.parse((await daemon.admin('GET', '/v1/connections')).body) as EngineConnection[];
}

test('dig through an escalated UDP flow: the engine relays to the original destination and answers from it', { skip, timeout: 30_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  const responder = await startResponder(t, topo.server);
  const instance = datapathInstance(t);
  const daemon = await startGatewayDaemon(t, topo, daemonOptions('drop', { instance }));
  const forwardedBefore = await topo.forwardingCounters();
  const statsBefore = await datapathPackets(daemon);

  // dig ignores an answer from any address or port but the one it asked (";; reply from
  // unexpected source") and would time out: an answer means the source was right.
  assert.equal(await dig(topo, 'www.esc.test'), ANSWER);

  // The server was asked by the engine (the gateway's address), not by the client.
  const q = responder.queries();
  assert.equal(q.length, 1, `queries: ${JSON.stringify(q)}`);
  assert.match(q[0]!.from, new RegExp(`^${gatewayServerSide.ipv4.replaceAll('.', '\\.')}:\\d+$`));

  assert.equal(await daemon.counter('udp_sessions_escalated'), 1);
  assert.equal(await daemon.counter('udp_sessions_opened'), 1);
  assert.equal(await daemon.counter('udp_datagrams_to_client'), 1);
  assert.equal(await daemon.counter('udp_reply_socket_failed'), 0);

  // The session shows its original destination as its local address.
  const conns = (await engineConnections(daemon)).filter((c) => c.endpoint === 'dns');
  assert.equal(conns.length, 1, JSON.stringify(conns));
  const conn = conns[0]!;
  assert.equal(conn.proto, 'udp');
  assert.equal(conn.local, `${server.ipv4}:53`);
  assert.match(conn.client, new RegExp(`^${client.ipv4.replaceAll('.', '\\.')}:\\d+$`));
  assert.equal(conn.escalated, true);

  const flow = await waitForKernelFlow(daemon, (f) => f.proto === 'udp' && f.dst === `${server.ipv4}:53` && f.src === conn.client);
  assert.equal(flow.verdict, 'ESCALATE');
  assert.equal(flow.rule, 'dns');
  assert.equal(flow.endpoint, 'dns');
  assert.equal(flow.flow_id, conn.id, 'the engine keeps the kernel flow id of an escalated flow');
  // ramjetctl joins both halves by that id; the engine half's local is the original destination.
  const merged = (await ramjetctl({ instance, adminSocket: daemon.adminSocket }).json<Array<Record<string, unknown>>>(['flows', 'list'], 'flows-list.json')).find((f) => f.id === conn.id);
  assert.ok(merged !== undefined, `no flow ${conn.id} in ramjetctl flows`);
  assert.equal(merged.proto, 'udp');
  assert.equal(merged.verdict, 'ESCALATE');
  assert.equal((merged.engine as { local?: string } | null)?.local, `${server.ipv4}:53`, JSON.stringify(merged));

  const delta = statDelta(statsBefore, await datapathPackets(daemon), ['ESCALATE', 'TC_ESCALATE_ASSIGNED', 'TC_ESCALATE_UNSUPPORTED']);
  assert.ok(delta.ESCALATE! >= 1, `ESCALATE moved by ${delta.ESCALATE}`);
  assert.ok(delta.TC_ESCALATE_ASSIGNED! >= 1, `TC_ESCALATE_ASSIGNED moved by ${delta.TC_ESCALATE_ASSIGNED}`);
  assert.equal(delta.TC_ESCALATE_UNSUPPORTED, 0);
  const forwardedAfter = await topo.forwardingCounters();
  assert.equal(forwardedAfter.ipv4 - forwardedBefore.ipv4, 0, 'packets of an escalated flow were IP-forwarded');

  // Another client port is another session of the same original destination.
  assert.equal(await dig(topo, 'again.esc.test'), ANSWER);
  assert.equal(await daemon.counter('udp_sessions_escalated'), 2);
});

test('ICMP port unreachable about an escalated flow\'s reply reaches its session, which closes', { skip, timeout: 30_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  await startResponder(t, topo.server);
  const daemon = await startGatewayDaemon(t, topo, daemonOptions());
  const statsBefore = await datapathPackets(daemon);

  // One query, the answer, then the socket closes; the responder answers `twice.*` a
  // second time 300 ms later, which the engine relays to the closed port.
  const r = await topo.client.exec('/usr/bin/python3', [DNS_ONCE_PY, server.ipv4, 'twice.esc.test']);
  assert.match(r.stdout, new RegExp(`^answer from ${server.ipv4.replaceAll('.', '\\.')}:53$`, 'm'));

  await waitFor(async () => ((await daemon.counter('udp_icmp_errors')) >= 1 ? true : undefined), { timeoutMs: 5_000, what: 'udp_icmp_errors >= 1' });
  const entry = await daemon.waitForAccessLog((e) => e.endpoint === 'dns');
  assert.equal(entry.reason, 'downstream_error', 'the session ends when its client is gone');
  const delta = statDelta(statsBefore, await datapathPackets(daemon), ['TC_ESCALATE_ICMP_ERROR']);
  assert.ok(delta.TC_ESCALATE_ICMP_ERROR! >= 1, `TC_ESCALATE_ICMP_ERROR moved by ${delta.TC_ESCALATE_ICMP_ERROR}`);
});

test('daemon stopped with --keep-datapath (draining), on_engine_unavailable=pass: the gateway forwards the query, the server answers the client itself', { skip, timeout: 30_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  const responder = await startResponder(t, topo.server);
  const instance = datapathInstance(t);
  const first = await startGatewayDaemon(t, topo, daemonOptions('pass', { instance, args: ['--keep-datapath'] }));
  assert.equal((await first.stop()).code, 0);

  assert.equal(await dig(topo, 'fallback.esc.test'), ANSWER);
  const q = responder.queries();
  assert.equal(q.length, 1, `queries: ${JSON.stringify(q)}`);
  assert.match(q[0]!.from, new RegExp(`^${client.ipv4.replaceAll('.', '\\.')}:\\d+$`), 'passed on by the kernel: the server saw the client');

  const ctl = ramjetctl({ instance, adminSocket: first.adminSocket });
  const flows = await ctl.json<Array<Record<string, unknown>>>(['flows', 'list'], 'flows-list.json');
  const flow = flows.find((f) => f.proto === 'udp' && f.src === q[0]!.from);
  assert.ok(flow !== undefined, `no udp flow from the client in ${JSON.stringify(flows)}`);
  const fallback = (flow.fallback ?? (flow.kernel as Record<string, unknown> | null)?.fallback) as unknown;
  assert.deepEqual(fallback, { verdict: 'pass', cause: 'draining' }, JSON.stringify(flow));
});

test('iperf3 -u through an escalated flow: the stream goes through the engine, its control connection through the fast path', { skip, timeout: 40_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  const iperf = topo.server.spawn(t, 'iperf3', ['-s', '-1', '-B', server.ipv4, '-p', '5201', '--forceflush'], { what: `iperf3 server in ${topo.server.name}` });
  await iperf.waitForOutput(/Server listening on \d+/);
  const daemon = await startGatewayDaemon(t, topo, {
    ...daemonOptions(),
    rules: [{ name: 'iperf-data', proto: 'udp', dst_port: 5201, action: 'escalate', endpoint: 'dns' }],
  });
  const r = await topo.client.exec('iperf3', ['-c', server.ipv4, '-p', '5201', '-u', '-b', '20M', '-l', '1200', '-t', '2', '-J'], { timeoutMs: 30_000, allowFailure: true });
  // What the server received went through the engine: one escalated session.
  const sum = checkIperf3UdpRun(r, await daemon.counter('udp_datagrams_from_client'));
  assert.equal(await daemon.counter('udp_sessions_escalated'), 1);
  t.diagnostic(`iperf3 -u through the escalation: ${String(sum.packets)} datagrams, ${String(sum.lost_percent)}% lost`);
});

test('IPv6: an endpoint listening on [::1] takes escalated IPv6 flows; dig -6 gets the answer from the original destination', { skip, timeout: 30_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  const responder = await startResponder(t, topo.server, server.ipv6);
  const options = daemonOptions();
  const daemon = await startGatewayDaemon(t, topo, {
    ...options,
    config: { endpoints: [{ name: 'web', onramp: 'tcp', transparent: true, listen: '127.0.0.1:0' }, { name: 'dns', onramp: 'udp', transparent: true, listen: '[::1]:0' }] },
  });
  const r = await topo.client.exec('dig', [`@${server.ipv6}`, 'v6.esc.test', 'A', '+short', '+tries=1', '+time=3'], { allowFailure: true });
  assert.equal(r.stdout.trim(), ANSWER, r.output);
  const q = responder.queries();
  assert.equal(q.length, 1, JSON.stringify(q));
  assert.ok(q[0]!.from.startsWith(`${gatewayServerSide.ipv6}:`), `the server was asked by ${q[0]!.from}`);
  const conns = (await engineConnections(daemon)).filter((c) => c.endpoint === 'dns');
  assert.equal(conns.length, 1, JSON.stringify(conns));
  assert.equal(conns[0]!.local, `[${server.ipv6}]:53`);
  assert.equal(await daemon.counter('udp_sessions_escalated'), 1);
});

test('a datagram or a connection sent straight to a transparent endpoint is refused as addressed to the endpoint itself, not relayed to itself', { skip, timeout: 30_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  // Wildcard listeners: the endpoint's own address is any address of the gateway.
  const daemon = await startGatewayDaemon(t, topo, {
    ...daemonOptions(),
    config: {
      endpoints: [
        { name: 'web', onramp: 'tcp', transparent: true, listen: '0.0.0.0:0' },
        { name: 'dns', onramp: 'udp', transparent: true, listen: '0.0.0.0:0' },
      ],
    },
  });
  const own = gatewayServerSide.ipv4;
  await topo.gateway.exec('dig', [`@${own}`, '-p', String(daemon.endpoint('dns').port), 'self.esc.test', 'A', '+tries=1', '+time=1'], { allowFailure: true });
  const r = await topo.gateway.exec('curl', ['-sS', '-m', '3', `http://${own}:${String(daemon.endpoint('web').port)}/`], { allowFailure: true });
  assert.notEqual(r.code, 0, 'curl got an answer from a transparent endpoint addressed directly');
  await waitFor(async () => ((await daemon.counter('egress_refused_self')) >= 2 ? true : undefined), { timeoutMs: 5_000, what: 'egress_refused_self >= 2' });
  // One session and one connection, each refused once: nothing was relayed to itself
  // (the egress guard, which would have refused the private address, never saw them).
  assert.equal(await daemon.counter('egress_refused_self'), 2);
  assert.equal(await daemon.counter('egress_refused_private'), 0);
  assert.equal(await daemon.counter('udp_sessions_opened'), 1);
  const entry = await daemon.waitForAccessLog((e) => e.endpoint === 'web');
  assert.equal(entry.reason, 'blocked_egress');
});

const PROBE_PY = new URL('../lib/icmp_error_probe.py', import.meta.url).pathname;

for (const v6 of [false, true]) {
  const kind = v6 ? 'packet-too-big' : 'frag-needed';
  test(`${v6 ? 'ICMPv6 packet too big' : 'ICMP fragmentation needed'} about an escalated flow's reply reaches its session, which goes on`, { skip, timeout: 30_000 }, async (t) => {
    const topo = await createGatewayTopology(t);
    const host = v6 ? server.ipv6 : server.ipv4;
    await startResponder(t, topo.server, host);
    const daemon = await startGatewayDaemon(t, topo, {
      ...daemonOptions(),
      config: {
        endpoints: [
          { name: 'web', onramp: 'tcp', transparent: true, listen: '127.0.0.1:0' },
          { name: 'dns', onramp: 'udp', transparent: true, listen: v6 ? '[::1]:0' : '127.0.0.1:0' },
        ],
      },
    });
    const statsBefore = await datapathPackets(daemon);
    const r = await topo.client.exec('/usr/bin/python3', [PROBE_PY, host, kind], { allowFailure: true });
    const from = `${host}:53`;
    assert.match(r.stdout, new RegExp(`^answer 1 from ${from.replaceAll('.', '\\.')}$`, 'm'), r.output);
    assert.match(r.stdout, new RegExp(`^sent ${kind}$`, 'm'), r.output);

    await waitFor(async () => ((await daemon.counter('udp_icmp_errors')) >= 1 ? true : undefined), { timeoutMs: 5_000, what: 'udp_icmp_errors >= 1' });
    const delta = statDelta(statsBefore, await datapathPackets(daemon), ['TC_ESCALATE_ICMP_ERROR']);
    assert.ok(delta.TC_ESCALATE_ICMP_ERROR! >= 1, `TC_ESCALATE_ICMP_ERROR moved by ${delta.TC_ESCALATE_ICMP_ERROR}`);
    // The path MTU shrank; nobody went away: the second query takes the same session.
    assert.match(r.stdout, new RegExp(`^answer 2 from ${from.replaceAll('.', '\\.')}$`, 'm'), r.output);
    assert.equal(await daemon.counter('udp_sessions_opened'), 1);
    assert.equal(await daemon.counter('udp_datagrams_to_client'), 2);
    assert.equal((await engineConnections(daemon)).filter((c) => c.endpoint === 'dns').length, 1);
  });
}
