// The gateway topology itself (lib/netns.ts), without ramjet: the kernel
// forwards IPv4 and IPv6 between client and server, the forwarding counters
// move with it, the malformed frames of lib/packets.py never reach the server
// even without XDP, and the namespaces are gone after teardown. The datapath
// tests rely on all of this.
import assert from 'node:assert/strict';
import { run, test } from '../lib/index.ts';
import {
  canCreateNetns,
  createGatewayTopology,
  malformedCatalogue,
  parseSnmp,
  sendMalformed,
  startEchoInNetns,
  startOrigin,
  startSniffer,
  startStreamProbe,
  TOPOLOGY,
} from '../lib/netns.ts';

const netns = await canCreateNetns();
const skip = netns.ok ? false : netns.why;

test('parseSnmp reads /proc/net/snmp pairs and /proc/net/snmp6 lines', () => {
  const counters = parseSnmp(
    'Ip: Forwarding DefaultTTL ForwDatagrams\nIp: 1 64 42\nTcp: InSegs OutSegs\nTcp: 7 8\nIp6InReceives 9\nIp6OutForwDatagrams                	3\n',
  );
  assert.equal(counters['Ip.ForwDatagrams'], 42);
  assert.equal(counters['Tcp.OutSegs'], 8);
  assert.equal(counters.Ip6OutForwDatagrams, 3);
  assert.equal(counters.Ip6InReceives, 9);
});

test('the kernel forwards IPv4 and IPv6 through the gateway and counts it', { skip, timeout: 20_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  const origin = await startOrigin(t, topo.server);
  const before = await topo.forwardingCounters();

  const v4 = await topo.client.exec('curl', ['-sS', '--max-time', '5', `http://${TOPOLOGY.server.ipv4}:80/v4`]);
  assert.match(v4.stdout, /^origin port=80 peer=10\.10\.1\.2:\d+ request=GET \/v4 HTTP\/1\.1$/m);
  const v6 = await topo.client.exec('curl', ['-sS', '--max-time', '5', `http://[${TOPOLOGY.server.ipv6}]:81/v6`]);
  assert.match(v6.stdout, /^origin port=81 peer=\[fd00:10:1::2\]:\d+ request=GET \/v6 HTTP\/1\.1$/m);

  const after = await topo.forwardingCounters();
  // Each exchange is at least SYN, ACK, request, FIN one way and as many back.
  assert.ok(after.ipv4 - before.ipv4 >= 6, `ForwDatagrams moved by ${after.ipv4 - before.ipv4}`);
  assert.ok(after.ipv6 - before.ipv6 >= 6, `Ip6OutForwDatagrams moved by ${after.ipv6 - before.ipv6}`);
  assert.deepEqual(
    origin.accepted().map((c) => c.port),
    [80, 81],
  );
});

test('an extra client address reaches the server with its own source', { skip, timeout: 20_000 }, async (t) => {
  const topo = await createGatewayTopology(t, { extraClientAddresses: ['10.10.1.66'] });
  await startOrigin(t, topo.server, { ports: [80] });
  const res = await topo.client.exec('curl', ['-sS', '--max-time', '5', '--interface', '10.10.1.66', `http://${TOPOLOGY.server.ipv4}/`]);
  assert.match(res.stdout, /peer=10\.10\.1\.66:/);
});

test('a stream probe runs round trips through the gateway', { skip, timeout: 20_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  await startEchoInNetns(t, topo.server, TOPOLOGY.server.ipv4, 5001);
  const probe = await startStreamProbe(t, topo.client, { host: TOPOLOGY.server.ipv4, port: 5001 }, { seconds: 1 });
  const result = await probe.result();
  assert.equal(result.error, null);
  assert.ok(result.rounds > 10, `only ${result.rounds} round trips`);
  assert.equal(result.received, result.sent);
});

// What a plain Linux router (no XDP) forwards of lib/packets.py's catalogue: it
// checks IP headers but not L4 headers, and forwards fragments and IPv6
// extension chains of any depth. These are the kinds where the datapath's own
// drop reasons make the difference at the server.
const KERNEL_FORWARDS = [
  'tcp_truncated',
  'tcp_bad_data_offset',
  'udp_truncated',
  'ipv4_fragment_first',
  'ipv4_fragment_later',
  'tcp6_truncated',
  'ipv6_ext_too_deep',
  'ipv6_ext_truncated',
  'ipv6_fragment',
];

test('without XDP, the kernel drops bad IP headers but forwards bad L4 headers, fragments and deep IPv6 chains', { skip, timeout: 30_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  const sniffer = await startSniffer(t, topo.server);
  const catalogue = await malformedCatalogue();
  const sent = await sendMalformed(topo, Object.keys(catalogue), { count: 2 });
  assert.deepEqual(Object.keys(sent), Object.keys(catalogue));
  // A forwarded frame shows up within microseconds; 300 ms is plenty.
  await new Promise((resolve) => setTimeout(resolve, 300));
  const marks = new Set(sniffer.frames().map((f) => f.mark));
  const forwarded = Object.entries(sent)
    .filter(([, s]) => marks.has(s.mark))
    .map(([kind]) => kind);
  assert.deepEqual(forwarded, KERNEL_FORWARDS);
});

test('namespaces are deleted on teardown', { skip, timeout: 20_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  const names = [topo.client.name, topo.gateway.name, topo.server.name];
  const listed = (await run('ip', ['netns', 'list'])).stdout;
  for (const name of names) assert.match(listed, new RegExp(`^${name}\\b`, 'm'));
  await topo.destroy();
  const after = (await run('ip', ['netns', 'list'])).stdout;
  for (const name of names) assert.doesNotMatch(after, new RegExp(`^${name}\\b`, 'm'));
});
