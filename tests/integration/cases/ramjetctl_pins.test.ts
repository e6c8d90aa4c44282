// ramjetctl with ramjetd down: the kernel half keeps running from the pinned maps
// (ramjetd --keep-datapath), and the kernel-side commands work from there, saying
// so: flows list/show/kill, stats, rules list, block --for / unblock. JSON output
// validates against tools/ramjetctl/schemas.
import assert from 'node:assert/strict';
import { test, waitFor } from '../lib/index.ts';
import { datapathInstance, PIN_ROOT, startGatewayDaemon, waitForKernelFlow } from '../lib/datapath.ts';
import { canCreateNetns, createGatewayTopology, startEchoInNetns, startStreamProbe, TOPOLOGY, type GatewayTopology } from '../lib/netns.ts';
import { ramjetctl, type CtlFlow } from '../lib/ramjetctl.ts';

const netns = await canCreateNetns();
const skip = netns.ok ? false : netns.why;
const { client, server } = TOPOLOGY;

/** Whether a TCP connect from `source` in the client namespace to the server's port 5001 succeeds within 1 s. */
async function reachable(topo: GatewayTopology, source: string): Promise<boolean> {
  const res = await topo.client.exec('socat', ['-T1', '/dev/null', `TCP4:${server.ipv4}:5001,bind=${source},connect-timeout=1`], { allowFailure: true });
  return res.code === 0;
}

test('ramjetd down: flows, kill, stats, rules and block work from the pinned maps', { skip, timeout: 60_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  await startEchoInNetns(t, topo.server, server.ipv4, 5001);
  const instance = datapathInstance(t, 'ctl');
  const daemon = await startGatewayDaemon(t, topo, {
    instance,
    default_action: 'fastpath',
    rules: [{ name: 'bad-host', src: '10.10.1.66/32', action: 'drop' }],
    args: ['--keep-datapath'],
  });
  // Long enough for a loaded machine; finish() ends it once the kill has been seen.
  const probe = await startStreamProbe(t, topo.client, { host: server.ipv4, port: 5001 }, { seconds: 40 });
  await probe.waitForMoreRounds(20);
  await waitForKernelFlow(daemon, (f) => f.src.endsWith(`:${probe.local.port}`));
  assert.equal((await daemon.stop()).code, 0);

  const ctl = ramjetctl({ adminSocket: daemon.adminSocket, pinRoot: PIN_ROOT, instance });
  const note = `ramjetd is not running: kernel view from pinned maps in ${PIN_ROOT}/${instance}`;
  const isProbe = (f: CtlFlow): boolean => f.src === `${client.ipv4}:${probe.local.port}`;

  // Two listings: the same flow, its counters moving (the fast path runs without a daemon).
  const first = (await ctl.json<CtlFlow[]>(['flows', 'list'], 'flows-list.json')).find(isProbe);
  assert.ok(first, 'the probe flow must be listed from the pins');
  assert.equal(first.verdict, 'FASTPATH');
  assert.equal(first.dst, `${server.ipv4}:5001`);
  assert.equal(first.engine, null);
  await probe.waitForMoreRounds(20);
  const second = (await ctl.json<CtlFlow[]>(['flows', 'list'], 'flows-list.json')).find(isProbe);
  assert.ok(second);
  assert.equal(second.id, first.id);
  assert.ok(second.kernel!.packets[0] > first.kernel!.packets[0], `packets must move: ${first.kernel!.packets[0]} -> ${second.kernel!.packets[0]}`);
  assert.ok(second.bytes > first.bytes);

  const listing = await ctl.run(['flows', 'list', '--src', `${client.ipv4}/32`, '--port', '5001']);
  assert.equal(listing.code, 0, listing.output);
  assert.ok(listing.stderr.includes(note), `missing the note: ${listing.stderr}`);
  assert.match(listing.stdout, /^\s+ID\s+PROTO\s+SOURCE\s+DESTINATION\s+VERDICT/);
  assert.match(listing.stdout, new RegExp(`^\\s*${first.id}\\s+tcp\\s+${client.ipv4}:${probe.local.port}\\s+${server.ipv4}:5001\\s+FASTPATH\\s`, 'm'));

  const shown = await ctl.json<CtlFlow & { hooks: unknown }>(['flows', 'show', String(first.id)], 'flow-show.json');
  assert.equal(shown.id, first.id);
  assert.equal(shown.hooks, null, 'the hook trace lives in the daemon');
  const missing = await ctl.run(['flows', 'show', '12345']);
  assert.equal(missing.code, 3, missing.output);
  assert.match(missing.stderr, /no flow 12345 in /);

  const stats = await ctl.json<{ engine_running: boolean; datapath: { source: string; stats: Record<string, { packets: number }> } }>(['stats'], 'stats.json');
  assert.equal(stats.engine_running, false);
  assert.equal(stats.datapath.source, 'pins');
  assert.ok(stats.datapath.stats.FASTPATH_REDIRECT!.packets > 0);

  // Rule names are not in the kernel: --config supplies them.
  const rules = await ctl.json<{ rules: Array<{ name: string | null; action: string; src: string | null }> }>(['--config', daemon.configPath, 'rules', 'list'], 'rules-list.json');
  assert.deepEqual(rules.rules.map((r) => [r.name, r.action, r.src]), [['bad-host', 'drop', '10.10.1.66/32']]);

  // Killing the fast-path flow deletes its entry; the live stream's next packet
  // makes a new one (a new id), and the stream never notices.
  const killed = await ctl.json<{ kernel: number; engine: number }>(['flows', 'kill', String(first.id)], 'flows-kill.json');
  assert.deepEqual(killed, { kernel: 1, engine: 0 });
  const again = await ctl.run(['flows', 'kill', String(first.id)]);
  assert.equal(again.code, 3, 'a second kill finds nothing');
  const reborn = await waitFor(async () => (await ctl.json<CtlFlow[]>(['flows', 'list'], 'flows-list.json')).find(isProbe), { timeoutMs: 5_000, what: 'the stream to create a new kernel flow' });
  assert.notEqual(reborn.id, first.id);
  await probe.waitForMoreRounds(20);
  const result = await probe.finish();
  assert.equal(result.error, null, 'the stream broke when its kernel entry was killed');

  // block --for 5s stops new connections from the source, and expires on its own.
  assert.equal(await reachable(topo, client.ipv4), true);
  const blocked = await ctl.json<{ prefix: string; expires_in_ms: number }>(['block', `${client.ipv4}/32`, '--for', '5s'], 'block.json');
  const blockedAt = Date.now();
  assert.equal(blocked.prefix, `${client.ipv4}/32`);
  assert.ok(blocked.expires_in_ms > 4_000 && blocked.expires_in_ms <= 5_000, String(blocked.expires_in_ms));
  const list = await ctl.json<Array<{ prefix: string; set_by: string }>>(['blocks', 'list'], 'blocks-list.json');
  assert.deepEqual(list.map((b) => [b.prefix, b.set_by]), [[`${client.ipv4}/32`, 'operator']]);
  assert.equal(await reachable(topo, client.ipv4), false, 'a blocked source must not connect');
  const denied = (await ctl.json<{ datapath: { stats: Record<string, { packets: number }> } }>(['stats'], 'stats.json')).datapath.stats.DENYLIST!.packets;
  assert.ok(denied > 0, 'the SYN must count as DENYLIST');
  await waitFor(async () => Date.now() - blockedAt > 5_200 && (await reachable(topo, client.ipv4)), { timeoutMs: 10_000, intervalMs: 250, what: 'the block to expire' });
  assert.ok(Date.now() - blockedAt >= 5_000, 'the block ended early');

  // Without a daemon nobody sweeps the expired entry; unblock removes it, once.
  const unblocked = await ctl.json<{ removed: boolean }>(['unblock', `${client.ipv4}/32`], 'unblock.json');
  assert.equal(unblocked.removed, true);
  const twice = await ctl.run(['unblock', `${client.ipv4}/32`]);
  assert.equal(twice.code, 3);
  assert.match(twice.stderr, /10\.10\.1\.2\/32 is not blocked/);
});

test('ramjetd down and no pins: the kernel-side commands say where they looked', async () => {
  const ctl = ramjetctl({ adminSocket: '/nonexistent/admin.sock', pinRoot: PIN_ROOT, instance: 'never-was' });
  for (const args of [['flows', 'list'], ['block', '10.0.0.1'], ['stats']]) {
    const r = await ctl.run(args);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.output}`);
    assert.match(r.stderr, new RegExp(`no datapath is pinned in ${PIN_ROOT}/never-was`));
  }
  const status = await ctl.run(['status']);
  assert.equal(status.code, 1);
  assert.match(status.stderr, /ramjetd is not running \(nothing listens on \/nonexistent\/admin\.sock\)/);
});
