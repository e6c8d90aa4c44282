// The datapath across control-plane changes, with a live fast-path stream:
//  - a rule reload (config file edited + SIGHUP) takes effect for new flows
//    while the stream goes on undisturbed;
//  - a restart with --keep-datapath leaves programs and maps in place: the
//    stream keeps flowing while no daemon runs, the next daemon adopts the
//    pinned state (same flow), and a normal stop then detaches and unpins.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { mergeConfig, test, waitFor } from '../lib/index.ts';
import { datapathInstance, datapathStatus, forcedFastPathAttached, pinsExist, startGatewayDaemon, waitForKernelFlow } from '../lib/datapath.ts';
import { canCreateNetns, createGatewayTopology, startEchoInNetns, startStreamProbe, TOPOLOGY, type GatewayTopology } from '../lib/netns.ts';

// These cases are about the XDP links and parser on veth: the XDP hook is forced
// (fastpath_hook auto picks tc on veth; datapath_veth_defaults.test.ts covers that). On a
// kernel that refuses XDP metadata ramjetd runs tc even so (forcedXdpHook).
const XDP_HOOK = { datapath: { fastpath_hook: 'xdp' } };

const netns = await canCreateNetns();
const skip = netns.ok ? false : netns.why;
const { server } = TOPOLOGY;

/** Whether a TCP connect from `source` (in the client namespace) to the server's port 5001 succeeds within 1 s. */
async function reachable(topo: GatewayTopology, source: string): Promise<boolean> {
  const res = await topo.client.exec('socat', ['-T1', '/dev/null', `TCP4:${server.ipv4}:5001,bind=${source},connect-timeout=1`], { allowFailure: true });
  return res.code === 0;
}

test('rule reload (SIGHUP) applies new rules while a fast-path stream keeps flowing', { skip, timeout: 25_000 }, async (t) => {
  const topo = await createGatewayTopology(t, { extraClientAddresses: ['10.10.1.66'] });
  await startEchoInNetns(t, topo.server, server.ipv4, 5001);
  const daemon = await startGatewayDaemon(t, topo, { default_action: 'fastpath' });
  assert.equal(await reachable(topo, '10.10.1.66'), true, 'before the reload 10.10.1.66 is on the fast path');

  const probe = await startStreamProbe(t, topo.client, { host: server.ipv4, port: 5001 }, { seconds: 5 });
  await probe.waitForMoreRounds(30);
  const flowBefore = await waitForKernelFlow(daemon, (f) => f.src.endsWith(`:${probe.local.port}`));
  assert.equal(flowBefore.verdict, 'FASTPATH');

  const reloaded = mergeConfig(daemon.config, {
    datapath: { ...(daemon.config.datapath as Record<string, unknown>), rules: [{ name: 'bad-host', src: '10.10.1.66/32', action: 'drop' }] },
  });
  await writeFile(daemon.configPath, `${JSON.stringify(reloaded, null, 2)}\n`);
  daemon.signal('SIGHUP');
  await waitFor(async () => !(await reachable(topo, '10.10.1.66')), { timeoutMs: 5_000, intervalMs: 100, what: 'the reloaded drop rule to take effect' });
  assert.equal(await reachable(topo, TOPOLOGY.client.ipv4), true, 'new flows of other clients still pass');

  await probe.waitForMoreRounds(30);
  const result = await probe.result();
  assert.equal(result.error, null, 'the live stream broke across the reload');
  assert.equal(result.received, result.sent);
  assert.ok(result.max_gap_ms < 500, `the stream stalled for ${result.max_gap_ms} ms across the reload`);
  const flowAfter = await waitForKernelFlow(daemon, (f) => f.src.endsWith(`:${probe.local.port}`));
  assert.equal(flowAfter.flow_id, flowBefore.flow_id, 'the live flow must keep its kernel entry');
  assert.equal(flowAfter.verdict, 'FASTPATH');
  assert.equal(daemon.exited, false);
});

test('restart with --keep-datapath: the stream keeps flowing with no daemon, the next daemon adopts it', { skip, timeout: 30_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  await startEchoInNetns(t, topo.server, server.ipv4, 5001);
  const instance = datapathInstance(t);
  const first = await startGatewayDaemon(t, topo, { instance, default_action: 'fastpath', config: XDP_HOOK, args: ['--keep-datapath'] });

  const probe = await startStreamProbe(t, topo.client, { host: server.ipv4, port: 5001 }, { seconds: 8 });
  await probe.waitForMoreRounds(30);
  const flowBefore = await waitForKernelFlow(first, (f) => f.src.endsWith(`:${probe.local.port}`));
  assert.equal(flowBefore.verdict, 'FASTPATH');

  const stopped = await first.stop();
  assert.equal(stopped.code, 0, `the first daemon did not exit cleanly: ${first.output()}`);
  assert.ok(pinsExist(instance), 'the pins must survive a --keep-datapath stop');
  assert.ok(await forcedFastPathAttached(topo, instance, 'gw-c'), 'the fast path (XDP) must stay attached to gw-c');
  const forwardedBefore = await topo.forwardingCounters();
  await probe.waitForMoreRounds(50); // no daemon is running now
  assert.equal((await topo.forwardingCounters()).ipv4 - forwardedBefore.ipv4, 0, 'with no daemon the kernel stack took over the stream');

  const second = await startGatewayDaemon(t, topo, { instance, default_action: 'fastpath', config: XDP_HOOK });
  const status = await datapathStatus(second);
  assert.equal(status.adopted, true, 'the second daemon must adopt the pinned datapath');
  const flowAfter = await waitForKernelFlow(second, (f) => f.src.endsWith(`:${probe.local.port}`));
  assert.equal(flowAfter.flow_id, flowBefore.flow_id, 'the adopted flow table must hold the same flow');
  assert.ok(flowAfter.packets[0] > flowBefore.packets[0]);
  await probe.waitForMoreRounds(30);

  const result = await probe.result();
  assert.equal(result.error, null, 'the stream broke across the restart');
  assert.equal(result.received, result.sent);
  assert.ok(result.max_gap_ms < 500, `the stream stalled for ${result.max_gap_ms} ms across the restart`);

  // A normal stop (no --keep-datapath) detaches and unpins.
  const stoppedAgain = await second.stop();
  assert.equal(stoppedAgain.code, 0);
  assert.equal(pinsExist(instance), false, 'a normal stop must remove the pins');
  assert.equal(await forcedFastPathAttached(topo, instance, 'gw-c'), false, 'a normal stop must detach the fast path');
});
