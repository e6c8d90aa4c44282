// Hook decisions that reach into the kernel (hooks/examples/kernel_verdicts):
//  - a connection to original destination port 81 is blocked by the
//    IngressHook, which also blocks the client's /32 in XDP for
//    app.block_seconds: the source stops within a packet or two of the
//    decision, even on a flow that was already on the fast path, and comes
//    back when the block expires;
//  - a connection to port 82 is allowed and its (src, dst, port) class is
//    marked fast path: the next connection of that class never reaches the
//    engine.
import assert from 'node:assert/strict';
import { test, waitFor } from '../lib/index.ts';
import { datapathPackets, startGatewayDaemon, statDelta, waitForDatapathStat, waitForKernelFlow } from '../lib/datapath.ts';
import { canCreateNetns, createGatewayTopology, startEchoInNetns, startOrigin, startSniffer, startStreamProbe, TOPOLOGY } from '../lib/netns.ts';

const netns = await canCreateNetns();
const skip = netns.ok ? false : netns.why;
const { client, server } = TOPOLOGY;
const BINARY = 'example-kernel-verdicts';
const ESCALATE_81_82 = [{ name: 'hooked', proto: 'tcp' as const, dst_port: '81-82', action: 'escalate' as const, endpoint: 'web' }];

test('a hook-issued block stops the source within a packet or two, fast-path flows included, until it expires', { skip, timeout: 25_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  const origin = await startOrigin(t, topo.server);
  await startEchoInNetns(t, topo.server, server.ipv4, 5001);
  const daemon = await startGatewayDaemon(t, topo, {
    binary: BINARY,
    default_action: 'fastpath',
    rules: ESCALATE_81_82,
    config: { app: { block_seconds: 3 } },
  });
  const sniffer = await startSniffer(t, topo.server);

  // A fast-path stream from the client that is about to be blocked.
  const probe = await startStreamProbe(t, topo.client, { host: server.ipv4, port: 5001 }, { seconds: 15, intervalMs: 5 });
  await probe.waitForMoreRounds(20);
  const statsBefore = await datapathPackets(daemon);

  const blocked = await topo.client.exec('curl', ['-sS', '--max-time', '5', `http://${server.ipv4}:81/`], { allowFailure: true });
  assert.notEqual(blocked.code, 0, `the hook must refuse port 81: ${blocked.output}`);
  // The block is in the kernel before the engine closes the connection, so
  // from here on nothing of the client's may cross the gateway.
  const framesAtDecision = sniffer.frames().filter((f) => f.src === client.ipv4).length;
  const roundsAtDecision = probe.rounds();

  await waitForDatapathStat(daemon, 'DENYLIST', (n) => n > (statsBefore.DENYLIST ?? 0));
  await new Promise((resolve) => setTimeout(resolve, 500));
  const leaked = sniffer.frames().filter((f) => f.src === client.ipv4).length - framesAtDecision;
  assert.ok(leaked <= 2, `${leaked} frames from the blocked client reached the server after the decision`);
  assert.ok(probe.rounds() - roundsAtDecision <= 1, `the blocked client's stream went on for ${probe.rounds() - roundsAtDecision} round trips`);
  assert.ok(!origin.accepted().some((c) => c.port === 81), 'a blocked connection reached the origin');
  const trace = await daemon.trace();
  assert.ok(
    trace.some((e) => e.hook === 'ingress.handle_connection' && e.decision === 'block'),
    'the IngressHook decision must be in the hook trace',
  );

  // New connections are dropped in XDP too (the engine never sees them).
  const accepted = await daemon.counter('connections_accepted');
  const again = await topo.client.exec('curl', ['-sS', '--max-time', '1', `http://${server.ipv4}:82/`], { allowFailure: true });
  assert.equal(again.code, 28, 'a new connection from the blocked source must time out');
  assert.equal(await daemon.counter('connections_accepted'), accepted);

  // The block expires on its own (block_seconds: 3).
  await waitFor(
    async () => {
      const res = await topo.client.exec('curl', ['-sS', '--max-time', '1', `http://${server.ipv4}:80/`], { allowFailure: true });
      return res.code === 0;
    },
    { timeoutMs: 8_000, intervalMs: 200, what: 'the block to expire' },
  );
  const delta = statDelta(statsBefore, await datapathPackets(daemon), ['DENYLIST']);
  assert.ok(delta.DENYLIST! >= 2, `DENYLIST moved by ${delta.DENYLIST}`);
});

test('a hook-marked fast-path class: the next connection of that class never reaches the engine', { skip, timeout: 20_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  const origin = await startOrigin(t, topo.server);
  const daemon = await startGatewayDaemon(t, topo, { binary: BINARY, default_action: 'fastpath', rules: ESCALATE_81_82 });

  const first = await topo.client.exec('curl', ['-sS', '--max-time', '5', `http://${server.ipv4}:82/first`]);
  assert.match(first.stdout, /^origin port=82 .* request=GET \/first HTTP\/1\.1$/m);
  const entry = await daemon.waitForAccessLog((e) => e.endpoint === 'web');
  assert.equal(entry.upstream, `${server.ipv4}:82`);
  assert.equal(await daemon.counter('connections_accepted'), 1);

  const forwardedBefore = await topo.forwardingCounters();
  const second = await topo.client.exec('curl', ['-sS', '--max-time', '5', `http://${server.ipv4}:82/second`]);
  assert.match(second.stdout, /^origin port=82 peer=10\.10\.1\.2:\d+ request=GET \/second HTTP\/1\.1$/m, 'the second connection must reach the origin from the client itself');
  assert.equal(await daemon.counter('connections_accepted'), 1, 'the second connection of a fast-path class reached the engine');
  assert.equal(origin.served().filter((c) => c.port === 82).length, 2);

  const flow = await waitForKernelFlow(
    daemon,
    (f) => f.proto === 'tcp' && f.dst === `${server.ipv4}:82` && f.verdict === 'FASTPATH' && f.packets[1] > 0,
  );
  assert.ok(flow.packets[0] >= 3, `fast-path class flow: ${JSON.stringify(flow)}`);
  const forwardedAfter = await topo.forwardingCounters();
  assert.equal(forwardedAfter.ipv4 - forwardedBefore.ipv4, 0, 'the fast-path class connection was IP-forwarded by the kernel');
});
