// Recovery from stale pinned state:
//  - ramjetd is SIGKILLed and its interfaces are deleted and recreated (a
//    container restart): its pinned links are severed, and the next start
//    replaces them and forwards on the fast path again; with the interfaces left
//    alone, the next start adopts every live link instead, and releases the
//    links of an interface the config no longer lists, and a switch of an
//    interface's fast-path hook swaps the program in the pinned tcx link;
//  - pins left by another build (another ABI stamp, a map of another layout) or
//    by a ramjet from before stamps are not adopted but re-created, and the
//    status says why; ramjetctl refuses to read pins of another build.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { TestContext } from 'node:test';
import { test } from '../lib/index.ts';
import { datapathInstance, datapathStatus, forcedFastPathAttached, forcedXdpHook, PIN_ROOT, pinsExist, startGatewayDaemon, waitForKernelFlow, type DatapathRule, type DatapathStatus } from '../lib/datapath.ts';
import type { DaemonHandle } from '../lib/daemon.ts';
import { canCreateNetns, createGatewayTopology, startEchoInNetns, startStreamProbe, TOPOLOGY, type GatewayTopology } from '../lib/netns.ts';
import { run } from '../lib/process.ts';
import { ramjetctl } from '../lib/ramjetctl.ts';

// These cases are about the XDP links and parser on veth: the XDP hook is forced
// (fastpath_hook auto picks tc on veth; datapath_veth_defaults.test.ts covers that).
// On a kernel that refuses XDP metadata ramjetd runs tc even so: the same cases then
// follow the tcx ingress link in place of the XDP one (forcedXdpHook).
const XDP_HOOK = { datapath: { fastpath_hook: 'xdp' } };
const forced = await forcedXdpHook();
/** The kinds of link ramjetd pins per interface with XDP_HOOK. */
const LINK_KINDS = forced.hook === 'xdp' ? ['xdp', 'tcx-ingress', 'tcx-egress'] : ['tcx-ingress', 'tcx-egress'];

const netns = await canCreateNetns();
const skip = netns.ok ? false : netns.why;
const { server } = TOPOLOGY;

interface PinnedMapInfo {
  id: number;
  max_entries: number;
}

async function bpftool(args: string[]): Promise<string> {
  const res = await run('bpftool', args, { timeoutMs: 10_000 });
  if (res.code !== 0) throw new Error(`bpftool ${args.join(' ')} failed:\n${res.output}`);
  return res.stdout;
}

async function pinnedMap(path: string): Promise<PinnedMapInfo> {
  return JSON.parse(await bpftool(['-j', 'map', 'show', 'pinned', path])) as PinnedMapInfo;
}

async function xdpProgramOn(topo: GatewayTopology, iface: string): Promise<boolean> {
  return /\bprog\/xdp\b/.test(await topo.gateway.ip('-d', 'link', 'show', 'dev', iface));
}

/** Whether the XDP_HOOK fast path is attached to `iface` (forcedFastPathAttached). */
function fastPathOn(topo: GatewayTopology, instance: string, iface: string): Promise<boolean> {
  return forcedFastPathAttached(topo, instance, iface);
}

/**
 * A stream through the gateway on the fast path: the flow is FASTPATH in the
 * daemon's flow table and the gateway's kernel forwarded none of its packets.
 */
async function assertFastPath(t: TestContext, topo: GatewayTopology, daemon: DaemonHandle): Promise<void> {
  const forwardedBefore = await topo.forwardingCounters();
  const probe = await startStreamProbe(t, topo.client, { host: server.ipv4, port: 5001 }, { seconds: 2 });
  await probe.waitForMoreRounds(30);
  const flow = await waitForKernelFlow(daemon, (f) => f.src.endsWith(`:${probe.local.port}`));
  assert.equal(flow.verdict, 'FASTPATH');
  assert.ok(flow.packets[0] >= 30 && flow.packets[1] >= 30, `the flow's packets must be counted in the kernel: ${JSON.stringify(flow.packets)}`);
  const result = await probe.result();
  assert.equal(result.error, null);
  assert.equal(result.received, result.sent);
  const forwarded = await topo.forwardingCounters();
  assert.equal(forwarded.ipv4 - forwardedBefore.ipv4, 0, 'the kernel stack forwarded the stream: the fast path did not');
}

test('SIGKILL, veths deleted and recreated: the next start replaces the severed links and the fast path works', { skip, timeout: 40_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  const instance = datapathInstance(t);
  // With an escalate rule, so that the crash also leaves ramjet's policy route behind.
  const rules: DatapathRule[] = [{ name: 'web', proto: 'tcp', dst_port: 80, action: 'escalate', endpoint: 'web' }];
  const first = await startGatewayDaemon(t, topo, { instance, default_action: 'fastpath', config: XDP_HOOK, rules });
  await startEchoInNetns(t, topo.server, server.ipv4, 5001);
  await assertFastPath(t, topo, first);
  const routes = await topo.gateway.ip('route', 'show', 'table', '21066');
  assert.match(routes, /^local default dev lo /m);

  first.signal('SIGKILL');
  assert.equal((await first.waitExit()).signal, 'SIGKILL');
  assert.ok(existsSync(`${PIN_ROOT}/${instance}/links/${forced.link}-gw-c`), 'a killed daemon leaves its links pinned');
  const { before, after } = await topo.recreateLinks();
  assert.notEqual(after['gw-c'], before['gw-c'], 'gw-c must be a new device');
  // (A severed tcx link keeps its pin; only XDP shows on the device itself.)
  if (forced.hook === 'xdp') assert.equal(await xdpProgramOn(topo, 'gw-c'), false, 'nothing is attached to the new gw-c yet');

  assert.equal(await topo.gateway.ip('route', 'show', 'table', '21066'), routes, 'the killed daemon\'s route is left behind');

  // Its own leftover route is adopted, not refused as foreign.
  const second = await startGatewayDaemon(t, topo, { instance, default_action: 'fastpath', config: XDP_HOOK, rules });
  const status = await datapathStatus(second);
  assert.equal(status.adopted, true, 'the maps are of this build: adopted');
  assert.deepEqual(
    status.interfaces.map((i) => [i.name, i.ifindex]),
    [
      ['gw-c', after['gw-c']],
      ['gw-s', after['gw-s']],
    ],
  );
  assert.equal(await fastPathOn(topo, instance, 'gw-c'), true, 'the fast path must be attached to the new gw-c');
  await assertFastPath(t, topo, second);

  assert.equal((await second.stop()).code, 0);
  assert.equal(pinsExist(instance), false, 'a normal stop removes the pins');
  assert.equal(await fastPathOn(topo, instance, 'gw-c'), false, 'a normal stop detaches');
  assert.doesNotMatch(await topo.gateway.ip('rule', 'show'), /lookup 21066/, 'and removes the adopted rule');
});

/** The kernel ids of the links pinned for gw-c and gw-s. */
async function pinnedLinkIds(instance: string): Promise<Record<string, number>> {
  const ids: Record<string, number> = {};
  for (const kind of LINK_KINDS) {
    for (const iface of ['gw-c', 'gw-s']) {
      const name = `${kind}-${iface}`;
      ids[name] = (JSON.parse(await bpftool(['-j', 'link', 'show', 'pinned', `${PIN_ROOT}/${instance}/links/${name}`])) as { id: number }).id;
    }
  }
  return ids;
}

test('SIGKILL with the interfaces left alone: the next start adopts the live links, none is replaced', { skip, timeout: 30_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  const instance = datapathInstance(t);
  await startEchoInNetns(t, topo.server, server.ipv4, 5001);
  const first = await startGatewayDaemon(t, topo, { instance, default_action: 'fastpath', config: XDP_HOOK });
  const before = await pinnedLinkIds(instance);
  assert.ok(Object.values(before).every((id) => Number.isInteger(id) && id > 0), JSON.stringify(before));
  assert.equal(new Set(Object.values(before)).size, LINK_KINDS.length * 2, 'a link of each kind on each interface');
  first.signal('SIGKILL');
  assert.equal((await first.waitExit()).signal, 'SIGKILL');

  const second = await startGatewayDaemon(t, topo, { instance, default_action: 'fastpath', config: XDP_HOOK });
  assert.equal((await datapathStatus(second)).adopted, true);
  assert.deepEqual(await pinnedLinkIds(instance), before, 'every link (XDP and both tcx) must be adopted, not re-created');
  await assertFastPath(t, topo, second);
});

test('an interface dropped from the config between restarts is released: its links are unpinned and detached', { skip, timeout: 30_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  const instance = datapathInstance(t);
  const first = await startGatewayDaemon(t, topo, { instance, default_action: 'fastpath', config: XDP_HOOK, args: ['--keep-datapath'] });
  assert.equal((await first.stop()).code, 0);
  assert.equal(await fastPathOn(topo, instance, 'gw-s'), true, 'kept attached by --keep-datapath');

  const second = await startGatewayDaemon(t, topo, { instance, default_action: 'fastpath', config: { datapath: { fastpath_hook: 'xdp', interfaces: ['gw-c'] } } });
  assert.deepEqual((await datapathStatus(second)).interfaces.map((i) => i.name), ['gw-c']);
  assert.equal(await fastPathOn(topo, instance, 'gw-s'), false, 'gw-s is no longer configured: its fast path must go');
  for (const kind of LINK_KINDS) {
    assert.equal(existsSync(`${PIN_ROOT}/${instance}/links/${kind}-gw-s`), false, `${kind}-gw-s must be unpinned`);
    assert.equal(existsSync(`${PIN_ROOT}/${instance}/links/${kind}-gw-c`), true);
  }
  assert.equal((await second.stop()).code, 0);
  assert.equal(pinsExist(instance), false, 'a normal stop leaves nothing pinned');
});

test('a restart that switches an interface from xdp to tc (fastpath_hook): the XDP link is released, the pinned tcx link runs the tc program, the fast path works', { skip, timeout: 40_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  await startEchoInNetns(t, topo.server, server.ipv4, 5001);
  const instance = datapathInstance(t);
  const first = await startGatewayDaemon(t, topo, { instance, default_action: 'fastpath', config: XDP_HOOK, args: ['--keep-datapath'] });
  assert.equal((await first.stop()).code, 0);
  assert.equal(await fastPathOn(topo, instance, 'gw-c'), true, 'kept attached by --keep-datapath');
  const ingressLink = JSON.parse(await bpftool(['-j', 'link', 'show', 'pinned', `${PIN_ROOT}/${instance}/links/tcx-ingress-gw-c`])) as { id: number };

  const second = await startGatewayDaemon(t, topo, { instance, default_action: 'fastpath', config: { datapath: { fastpath_hook: 'tc' } } });
  assert.deepEqual(
    (await datapathStatus(second)).interfaces.map((i) => [i.name, i.fastpath_hook, i.xdp_mode]),
    [
      ['gw-c', 'tc', null],
      ['gw-s', 'tc', null],
    ],
  );
  for (const iface of ['gw-c', 'gw-s']) {
    assert.equal(await xdpProgramOn(topo, iface), false, `${iface}: the XDP program must go`);
    assert.equal(existsSync(`${PIN_ROOT}/${instance}/links/xdp-${iface}`), false, `xdp-${iface} must be unpinned`);
  }
  const adopted = JSON.parse(await bpftool(['-j', 'link', 'show', 'pinned', `${PIN_ROOT}/${instance}/links/tcx-ingress-gw-c`])) as { id: number; prog_id: number };
  assert.equal(adopted.id, ingressLink.id, 'the tcx link is adopted: the tc program was swapped into it');
  const prog = JSON.parse(await bpftool(['-j', 'prog', 'show', 'id', String(adopted.prog_id)])) as { name: string };
  assert.equal(prog.name, 'tc_classify');
  await assertFastPath(t, topo, second);
});

/** Leaves `instance` pinned by a daemon stopped with --keep-datapath; returns the status it reported. */
async function pinnedByAStoppedDaemon(t: TestContext, topo: GatewayTopology, instance: string): Promise<DatapathStatus> {
  const first = await startGatewayDaemon(t, topo, { instance, default_action: 'fastpath', config: XDP_HOOK, args: ['--keep-datapath'] });
  const status = await datapathStatus(first);
  assert.equal((await first.stop()).code, 0);
  assert.ok(pinsExist(instance));
  return status;
}

test('pins of another build are detected and re-created; ramjetctl refuses to read them', { skip, timeout: 40_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  await startEchoInNetns(t, topo.server, server.ipv4, 5001);
  const instance = datapathInstance(t);
  const dir = `${PIN_ROOT}/${instance}`;
  const first = await pinnedByAStoppedDaemon(t, topo, instance);

  // What another build would have left: its own stamp, a stats array of its size.
  await rm(`${dir}/abi`, { force: true });
  await bpftool(['map', 'create', `${dir}/abi`, 'type', 'array', 'key', '4', 'value', '8', 'entries', '1', 'name', 'ramjet_abi']);
  await bpftool(['map', 'update', 'pinned', `${dir}/abi`, 'key', '0', '0', '0', '0', 'value', '0x34', '0x12', '0', '0', '0', '0', '0', '0']);
  await rm(`${dir}/stats`);
  await bpftool(['map', 'create', `${dir}/stats`, 'type', 'percpu_array', 'key', '4', 'value', '16', 'entries', '8', 'name', 'stats']);
  const oldStats = await pinnedMap(`${dir}/stats`);

  const ctl = await ramjetctl({ adminSocket: '/nonexistent/admin.sock', pinRoot: PIN_ROOT, instance }).run(['stats']);
  assert.equal(ctl.code, 1, ctl.output);
  assert.match(ctl.stderr, new RegExp(`the pins in ${dir} are from another ramjet build \\(ABI stamp 0000000000001234, this ramjetctl's is [0-9a-f]{16}\\)`));

  const second = await startGatewayDaemon(t, topo, { instance, default_action: 'fastpath', config: XDP_HOOK });
  const status = await datapathStatus(second);
  assert.equal(status.adopted, false, 'pins of another build must not be adopted');
  assert.match(String(status.abi_stamp), /^[0-9a-f]{16}$/);
  assert.equal(status.abi_stamp, first.abi_stamp, 'one build, one stamp');
  assert.equal(status.recreated_because, `they were pinned by a build with ABI stamp 0000000000001234, this build's is ${status.abi_stamp}`);
  assert.ok(ctl.stderr.includes(`this ramjetctl's is ${status.abi_stamp}`), 'ramjetctl and ramjetd of one build share the stamp');
  const newStats = await pinnedMap(`${dir}/stats`);
  assert.notEqual(newStats.id, oldStats.id, 'the stats map must be a new one');
  assert.notEqual(newStats.max_entries, 8);
  assert.equal((await pinnedMap(`${dir}/abi`)).max_entries, 1);
  await assertFastPath(t, topo, second);
  assert.equal((await second.stop()).code, 0);
});

test('pins from a ramjet before ABI stamps are re-created, not adopted', { skip, timeout: 40_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  await startEchoInNetns(t, topo.server, server.ipv4, 5001);
  const instance = datapathInstance(t);
  await pinnedByAStoppedDaemon(t, topo, instance);
  await rm(`${PIN_ROOT}/${instance}/abi`, { force: true });

  const second = await startGatewayDaemon(t, topo, { instance, default_action: 'fastpath', config: XDP_HOOK });
  const status = await datapathStatus(second);
  assert.equal(status.adopted, false, 'pins without a stamp must not be adopted');
  assert.match(String(status.recreated_because), /^they carry no ABI stamp/);
  await assertFastPath(t, topo, second);
  assert.ok(existsSync(`${PIN_ROOT}/${instance}/abi`), 'the re-created pins carry a stamp');
});
