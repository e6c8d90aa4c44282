// Malformed and unusual frames (lib/packets.py, crafted with scapy) sent from
// the client to the gateway: each is counted under its named drop (or pass)
// reason in the datapath stats, none reaches the server (a sniffer on the
// server's link sees nothing of them, although a plain kernel router forwards
// nine of the kinds: see datapath_topology.test.ts), and the daemon neither
// crashes nor stops forwarding.
import assert from 'node:assert/strict';
import { test, waitFor } from '../lib/index.ts';
import { datapathPackets, forcedXdpHook, startGatewayDaemon, statDelta } from '../lib/datapath.ts';
import { canCreateNetns, createGatewayTopology, malformedCatalogue, sendMalformed, startOrigin, startSniffer, TOPOLOGY } from '../lib/netns.ts';

const netns = await canCreateNetns();
const skip = netns.ok ? false : netns.why;
const COUNT = 3;

test('malformed frames are counted under their drop reasons and never reach the server', { skip, timeout: 25_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  await startOrigin(t, topo.server, { ports: [80] });
  const sniffer = await startSniffer(t, topo.server);
  // Fragments are passed by default; dropping them (counted as FRAGMENT) is what this case checks.
  const daemon = await startGatewayDaemon(t, topo, { default_action: 'fastpath', config: { datapath: { fastpath_hook: 'xdp', pass_fragments: false } } });
  const catalogue = await malformedCatalogue();

  const before = await datapathPackets(daemon);
  const sent = await sendMalformed(topo, Object.keys(catalogue), { count: COUNT });
  // On a kernel that refuses XDP metadata the fast path runs in tcx ingress even so
  // (forcedXdpHook), and the stack drops a frame whose VLAN tag is cut off before TC
  // (skb_vlan_untag): nothing is left to count, and nothing reaches the server either.
  const tc = (await forcedXdpHook()).hook === 'tc';
  const expected: Record<string, number> = {};
  for (const s of Object.values(sent)) {
    const counted = tc && s.expect === 'TRUNCATED_VLAN' ? 0 : s.frames;
    expected[s.expect] = (expected[s.expect] ?? 0) + counted;
  }

  // XDP counts synchronously with the frame; the sniffer needs a moment to print.
  await new Promise((resolve) => setTimeout(resolve, 300));
  const delta = statDelta(before, await datapathPackets(daemon), Object.keys(expected));
  assert.deepEqual(delta, expected, 'per-reason counts differ from what was sent');

  const marks = new Map(Object.entries(sent).map(([kind, s]) => [s.mark, kind]));
  const leaked = sniffer.frames().filter((f) => marks.has(f.mark));
  assert.deepEqual(
    leaked.map((f) => marks.get(f.mark)),
    [],
    'malformed frames reached the server',
  );

  // Still alive and forwarding.
  assert.equal(daemon.exited, false);
  const res = await topo.client.exec('curl', ['-sS', '--max-time', '5', `http://${TOPOLOGY.server.ipv4}/after`]);
  assert.match(res.stdout, /request=GET \/after /);
});

test('by default (pass_fragments: true) fragments pass to the stack: not counted as FRAGMENT, forwarded to the server', { skip, timeout: 25_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  await startOrigin(t, topo.server, { ports: [80] });
  const sniffer = await startSniffer(t, topo.server);
  const daemon = await startGatewayDaemon(t, topo, { default_action: 'fastpath' });
  const kinds = ['ipv4_fragment_first', 'ipv4_fragment_later', 'ipv6_fragment'];
  const before = await datapathPackets(daemon);
  const sent = await sendMalformed(topo, kinds, { count: COUNT });
  const marks = new Map(Object.entries(sent).map(([kind, s]) => [s.mark, kind]));
  const arrived = await waitFor(
    () => {
      const seen = new Set(sniffer.frames().filter((f) => marks.has(f.mark)).map((f) => marks.get(f.mark)));
      return kinds.every((k) => seen.has(k)) ? seen : undefined;
    },
    { timeoutMs: 5_000, what: 'every fragment kind at the server' },
  );
  assert.deepEqual([...arrived].sort(), [...kinds].sort());
  assert.deepEqual(statDelta(before, await datapathPackets(daemon), ['FRAGMENT']), { FRAGMENT: 0 });
});
