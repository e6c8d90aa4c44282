// The gateway shape of the datapath: ramjetd in the gateway namespace between a
// client and a server, its XDP/TC programs on gw-c and gw-s.
//  - a fast-path flow is forwarded by XDP: the kernel's IP forwarding counters
//    do not move and the engine sees nothing;
//  - an escalated flow (rule: tcp/80 -> endpoint web) reaches the engine with its
//    original destination and runs the hooks;
//  - a dropped source (rule: 10.10.1.66/32 drop) never reaches the server.
// /metrics exports the same datapath counters as /v1/datapath, and the audit line
// of an escalated flow carries its kernel flow entry.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { makeTempDir, test, waitFor, type DaemonHandle } from '../lib/index.ts';
import {
  type KernelFlow,
  datapathPackets,
  datapathStatus,
  forcedXdpHook,
  kernelFlows,
  startGatewayDaemon,
  statDelta,
  waitForKernelFlow,
} from '../lib/datapath.ts';
import { canCreateNetns, createGatewayTopology, startEchoInNetns, startOrigin, startSniffer, runStreamProbe, TOPOLOGY } from '../lib/netns.ts';

/**
 * A datapath stat as /metrics exports it (ramjet_datapath_{packets,bytes}_total with
 * labels verdict and reason), checked against /v1/datapath read just before and
 * just after the scrape: both read the same per-CPU map, so the scrape lies between.
 */
async function scrapedStat(daemon: DaemonHandle, name: string, verdict: string): Promise<{ packets: number; bytes: number }> {
  const before = (await datapathStatus(daemon)).stats[name]!;
  const m = await daemon.metrics();
  const after = (await datapathStatus(daemon)).stats[name]!;
  const labels = { verdict, reason: name.toLowerCase() };
  const scraped = { packets: m.value('ramjet_datapath_packets_total', labels), bytes: m.value('ramjet_datapath_bytes_total', labels) };
  for (const k of ['packets', 'bytes'] as const) {
    assert.ok(before[k] <= scraped[k] && scraped[k] <= after[k], `/metrics ${name} ${k} ${scraped[k]} is not between /v1/datapath's ${before[k]} and ${after[k]}`);
  }
  return scraped;
}

const netns = await canCreateNetns();
const skip = netns.ok ? false : netns.why;
const { client, server } = TOPOLOGY;

for (const family of ['ipv4', 'ipv6'] as const) {
  test(`fast path (${family}): XDP forwards a TCP stream both ways; the kernel's forwarding counters and the engine see nothing`, { skip, timeout: 20_000 }, async (t) => {
    const topo = await createGatewayTopology(t);
    await startEchoInNetns(t, topo.server, server[family], 5001);
    // The XDP hook, forced: auto would pick tc on veth (datapath_veth_defaults.test.ts).
    const daemon = await startGatewayDaemon(t, topo, { default_action: 'fastpath', config: { datapath: { fastpath_hook: 'xdp' } } });

    const status = await datapathStatus(daemon);
    assert.equal(status.enabled, true);
    // xdp native, or tc where the kernel refuses XDP metadata (ramjetd falls back).
    const forced = await forcedXdpHook();
    assert.deepEqual(
      status.interfaces.map((i) => [i.name, i.fastpath_hook, i.xdp_mode]),
      [
        ['gw-c', forced.hook, forced.mode],
        ['gw-s', forced.hook, forced.mode],
      ],
    );
    for (const i of status.interfaces) assert.match(i.fastpath_hook_reason, forced.reason);

    const forwardedBefore = await topo.forwardingCounters();
    const statsBefore = await datapathPackets(daemon);
    const { probe, result } = await runStreamProbe(t, topo.client, { host: server[family], port: 5001 }, 1.5);

    const flow = await waitForKernelFlow(daemon, (f) => f.proto === 'tcp' && f.src.endsWith(`:${probe.local.port}`));
    assert.equal(flow.verdict, 'FASTPATH');
    assert.equal(flow.dst, family === 'ipv4' ? `${server.ipv4}:5001` : `[${server.ipv6}]:5001`);
    // Every round trip is at least one data segment each way.
    assert.ok(flow.packets[0] >= result.rounds && flow.packets[1] >= result.rounds, `flow packets ${JSON.stringify(flow.packets)} for ${result.rounds} round trips`);

    const statsAfter = await datapathPackets(daemon);
    const delta = statDelta(statsBefore, statsAfter, ['FASTPATH_REDIRECT']);
    assert.ok(delta.FASTPATH_REDIRECT! >= 2 * result.rounds, `FASTPATH_REDIRECT moved by ${delta.FASTPATH_REDIRECT} for ${result.rounds} round trips`);

    const forwardedAfter = await topo.forwardingCounters();
    assert.equal(forwardedAfter[family] - forwardedBefore[family], 0, `the kernel forwarded ${forwardedAfter[family] - forwardedBefore[family]} ${family} packets of a fast-path flow`);
    assert.equal(await daemon.counter('connections_accepted'), 0, 'the engine saw a fast-path flow');
  });
}

test('escalated flow: curl to 10.10.2.2:80 reaches the engine with its original destination and runs the hooks', { skip, timeout: 20_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  const origin = await startOrigin(t, topo.server);
  const auditLog = join(await makeTempDir(t), 'audit.log');
  const daemon = await startGatewayDaemon(t, topo, {
    default_action: 'fastpath',
    rules: [{ name: 'web', proto: 'tcp', dst_port: 80, action: 'escalate', endpoint: 'web' }],
    config: { telemetry: { audit_log: { path: auditLog } } },
  });
  const forwardedBefore = await topo.forwardingCounters();
  const statsBefore = await datapathPackets(daemon);

  const res = await topo.client.exec('curl', ['-sS', '--max-time', '5', `http://${server.ipv4}/escalated`]);
  assert.match(res.stdout, /^origin port=80 peer=\S+ request=GET \/escalated HTTP\/1\.1$/m);

  const entry = await daemon.waitForAccessLog((e) => e.endpoint === 'web');
  assert.equal(entry.upstream, `${server.ipv4}:80`, 'the engine must connect to the original destination');
  assert.match(entry.client, /^10\.10\.1\.2:\d+$/);
  assert.equal(entry.reason, 'completed');
  const trace = await daemon.waitForTrace((events) => events.some((e) => e.hook === 'ingress.handle_connection_close'));
  const hooks = trace.filter((e) => e.flow === entry.flow).map((e) => e.hook);
  assert.equal(hooks[0], 'ingress.handle_connection');
  assert.ok(hooks.includes('egress.handle_connection'), `hooks of the escalated flow: ${hooks.join(', ')}`);
  assert.equal(await daemon.counter('connections_accepted'), 1);
  assert.equal(origin.accepted().length, 1);

  const flow = await waitForKernelFlow(daemon, (f) => f.proto === 'tcp' && f.dst === `${server.ipv4}:80` && f.src.startsWith(`${client.ipv4}:`));
  assert.equal(flow.verdict, 'ESCALATE');
  assert.equal(flow.rule, 'web');
  assert.equal(flow.endpoint, 'web');
  assert.equal(flow.flow_id, entry.flow, 'the engine keeps the kernel flow id of an escalated flow');

  // The audit line holds the kernel's entry as read at close: the same flow, and
  // counters no greater than the entry's now.
  const audit = await daemon.waitForAuditLog((e) => e.flow === entry.flow);
  assert.equal(audit.kind, 'tcp');
  assert.equal(audit.target, `${server.ipv4}:80`);
  assert.equal(audit.upstream, `${server.ipv4}:80`);
  assert.ok(audit.kernel !== null && 'verdict' in audit.kernel, `kernel: ${JSON.stringify(audit.kernel)}`);
  const k: KernelFlow = audit.kernel;
  assert.equal(k.flow_id, audit.flow);
  assert.equal(k.verdict, 'ESCALATE');
  assert.equal(k.rule, 'web');
  assert.equal(k.endpoint, 'web');
  assert.equal(k.src, audit.client);
  assert.equal(k.dst, audit.local);
  assert.ok(k.packets[0] >= 3, `kernel packets from the client: ${k.packets[0]} (SYN, ACK and the request at least)`);
  assert.ok(k.bytes[0] >= audit.bytes_from_client, `kernel bytes ${k.bytes[0]} < ${audit.bytes_from_client} relayed from the client`);
  const later = await waitForKernelFlow(daemon, (f) => f.flow_id === k.flow_id);
  for (const dir of [0, 1] as const) {
    assert.ok(later.packets[dir] >= k.packets[dir] && later.bytes[dir] >= k.bytes[dir], `kernel counters went back: ${JSON.stringify(k)} then ${JSON.stringify(later)}`);
  }
  const delta = statDelta(statsBefore, await datapathPackets(daemon), ['ESCALATE']);
  assert.ok(delta.ESCALATE! >= 3, `ESCALATE moved by ${delta.ESCALATE}`);
  const escalated = await scrapedStat(daemon, 'ESCALATE', 'escalate');
  assert.ok(escalated.packets >= statsBefore.ESCALATE! + 3, `/metrics ESCALATE packets ${escalated.packets}`);
  // The flow table gauge follows the sweeper (once a second): it sees this flow.
  await waitFor(async () => ((await daemon.metrics()).value('ramjet_datapath_flows') >= 1 ? true : undefined), { what: 'ramjet_datapath_flows >= 1' });
  // The client's packets were delivered to the engine, the engine's connection
  // to the origin was its own: nothing was routed through.
  const forwardedAfter = await topo.forwardingCounters();
  assert.equal(forwardedAfter.ipv4 - forwardedBefore.ipv4, 0, 'packets of an escalated flow were IP-forwarded');
});

test('escalated flow to a transparent http endpoint: each request goes to the original destination whatever its Host names, with the HTTP hooks; CONNECT is refused with 405', { skip, timeout: 20_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  const origin = await startOrigin(t, topo.server);
  const daemon = await startGatewayDaemon(t, topo, {
    default_action: 'fastpath',
    rules: [{ name: 'web', proto: 'tcp', dst_port: 80, action: 'escalate', endpoint: 'web' }],
    config: {
      telemetry: { hook_trace: true },
      endpoints: [{ name: 'web', onramp: 'http', transparent: true, listen: '127.0.0.1:0' }],
    },
  });

  // Host names a site that does not resolve here: it is not used for routing.
  const res = await topo.client.exec('curl', ['-sS', '--max-time', '5', '-H', 'Host: elsewhere.example', `http://${server.ipv4}/esc-http`]);
  assert.match(res.stdout, /^origin port=80 peer=10\.10\.2\.1:\d+ request=GET \/esc-http HTTP\/1\.1$/m, 'the engine sent the request on its own connection to the original destination');
  assert.match(res.stdout, /^origin host=elsewhere\.example$/m, 'Host goes on as the client sent it');

  const entry = await daemon.waitForAccessLog((e) => e.endpoint === 'web');
  assert.equal(entry.upstream, `${server.ipv4}:80`, 'the engine must connect to the original destination');
  assert.match(entry.client, /^10\.10\.1\.2:\d+$/);
  const flow = await waitForKernelFlow(daemon, (f) => f.proto === 'tcp' && f.dst === `${server.ipv4}:80` && f.src.startsWith(`${client.ipv4}:`));
  assert.equal(flow.verdict, 'ESCALATE');
  assert.equal(flow.flow_id, entry.flow);
  const trace = await daemon.waitForTrace((events) => events.some((e) => e.flow === entry.flow && e.hook === 'ingress.handle_connection_close'));
  const own = trace.filter((e) => e.flow === entry.flow);
  const hooks = own.map((e) => e.hook);
  assert.equal(hooks[0], 'ingress.handle_connection');
  for (const h of ['http.handle_request', 'egress.handle_connection', 'http.handle_response'])
    assert.ok(hooks.includes(h), `hooks of the escalated flow: ${hooks.join(', ')}`);
  assert.equal(own.find((e) => e.hook === 'http.handle_request')!.detail, 'elsewhere.example:80/esc-http', 'hooks see the Host as the authority');

  // A CONNECT on an intercepted connection: refused by the endpoint, nothing reaches the origin.
  const connect = await topo.client.exec('curl', ['-sS', '-i', '--max-time', '5', '-X', 'CONNECT', '--request-target', 'elsewhere.example:443', `http://${server.ipv4}/`], { allowFailure: true });
  assert.match(connect.stdout, /^HTTP\/1\.1 405 Method Not Allowed\r$/m, connect.output);
  assert.match(connect.stdout, /^Allow: GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH\r$/m, connect.output);
  assert.match(connect.stdout, /^Proxy-Status: ramjet; error=http_request_denied; details="CONNECT is for explicit proxies/m, connect.output);
  assert.equal(origin.accepted().length, 1);
  assert.equal(await daemon.counter('connections_accepted'), 2);
});

test('dropped source: nothing from 10.10.1.66 reaches the server, other clients still pass', { skip, timeout: 20_000 }, async (t) => {
  const topo = await createGatewayTopology(t, { extraClientAddresses: ['10.10.1.66'] });
  const origin = await startOrigin(t, topo.server);
  const sniffer = await startSniffer(t, topo.server);
  const daemon = await startGatewayDaemon(t, topo, {
    default_action: 'fastpath',
    rules: [{ name: 'bad-host', src: '10.10.1.66/32', action: 'drop' }],
  });
  const statsBefore = await datapathPackets(daemon);

  const bad = await topo.client.exec('curl', ['-sS', '--max-time', '2', '--interface', '10.10.1.66', `http://${server.ipv4}/`], { allowFailure: true });
  assert.equal(bad.code, 28, `curl from the dropped source must time out (exit 28), got ${String(bad.code)}: ${bad.output}`);
  const good = await topo.client.exec('curl', ['-sS', '--max-time', '5', `http://${server.ipv4}/`]);
  assert.match(good.stdout, /^origin port=80 peer=10\.10\.1\.2:/m, 'the fast path must still carry the other client');

  const delta = statDelta(statsBefore, await datapathPackets(daemon), ['RULE_DROP']);
  assert.ok(delta.RULE_DROP! >= 1, 'the SYN(s) from 10.10.1.66 must be counted as RULE_DROP');
  const dropped = await scrapedStat(daemon, 'RULE_DROP', 'drop');
  // Every dropped frame is at least Ethernet + IPv4 + TCP headers.
  assert.ok(dropped.bytes >= dropped.packets * (14 + 20 + 20), `${dropped.bytes} bytes for ${dropped.packets} dropped SYNs`);
  assert.deepEqual(
    sniffer.frames().filter((f) => f.src === '10.10.1.66'),
    [],
    'frames from the dropped source reached the server',
  );
  assert.ok(!origin.accepted().some((c) => c.peer.startsWith('10.10.1.66:')));
  // Drops keep no flow state (a flood must not churn the table).
  assert.ok(!(await kernelFlows(daemon)).some((f) => f.src.startsWith('10.10.1.66:')));
});
