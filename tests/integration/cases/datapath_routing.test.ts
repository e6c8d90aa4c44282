// The routing table escalated packets use is ramjet's alone:
//  - by default it is table 21066 (not Tailscale's 52), holding ramjet's
//    `local default dev lo proto 82` and selected by its fwmark rule;
//  - ramjetd refuses to start when the table holds a route or is looked up by a
//    rule that ramjet did not add, naming both (an unrelated route, a look-alike
//    of its own route, Tailscale's `from all lookup` rule), before it attaches
//    anything: a datapath kept running by --keep-datapath stays as it was;
//  - a stop removes only ramjet's own entries: routes another tool added to the
//    table meanwhile, even look-alikes, stay.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from '../lib/index.ts';
import { datapathInstance, forcedFastPathAttached, forcedXdpHook, gatewayConfig, PIN_ROOT, pinsExist, startGatewayDaemon, type DatapathRule } from '../lib/datapath.ts';
import { startDaemonExpectingExit } from '../lib/daemon.ts';
import { canCreateNetns, createGatewayTopology, type GatewayTopology } from '../lib/netns.ts';
import { run } from '../lib/process.ts';

const netns = await canCreateNetns();
const skip = netns.ok ? false : netns.why;

/** The default datapath.route_table. */
const TABLE = 21066;
const ESCALATE: DatapathRule[] = [{ name: 'web', proto: 'tcp', dst_port: 80, action: 'escalate', endpoint: 'web' }];

/** The routes of the table as `ip` prints them ([] when the kernel has no such table). */
async function table(topo: GatewayTopology, family: '-4' | '-6'): Promise<string[]> {
  const res = await run('ip', ['-n', topo.gateway.name, family, 'route', 'show', 'table', String(TABLE)], { timeoutMs: 10_000 });
  if (res.code !== 0) {
    if (/FIB table does not exist/.test(res.stderr)) return [];
    throw new Error(`ip route show table ${TABLE} failed:\n${res.output}`);
  }
  return res.stdout.split('\n').map((l) => l.trim()).filter((l) => l !== '');
}

async function rulesFor(topo: GatewayTopology, family: '-4' | '-6'): Promise<string[]> {
  const out = await topo.gateway.ip(family, 'rule', 'show');
  return out.split('\n').map((l) => l.trim()).filter((l) => l.includes(`lookup ${TABLE}`));
}

test('the escalation route lives in table 21066, marked as ramjet\'s, and goes with a stop', { skip, timeout: 20_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  const daemon = await startGatewayDaemon(t, topo, { rules: ESCALATE });
  assert.deepEqual(await table(topo, '-4'), ['local default dev lo proto 82 scope host']);
  assert.deepEqual(await table(topo, '-6'), ['local default dev lo proto 82 metric 1024 pref medium']);
  for (const family of ['-4', '-6'] as const) {
    const rules = await rulesFor(topo, family);
    assert.equal(rules.length, 1, rules.join('\n'));
    assert.match(rules[0]!, /^\d+:\s+from all fwmark 0x524a0000 lookup 21066 proto 82$/);
  }
  assert.equal((await topo.gateway.ip('rule', 'show')).includes('lookup 52'), false);
  assert.equal((await daemon.stop()).code, 0);
  assert.deepEqual(await table(topo, '-4'), []);
  assert.deepEqual(await table(topo, '-6'), []);
  assert.deepEqual(await rulesFor(topo, '-4'), []);
  assert.deepEqual(await rulesFor(topo, '-6'), []);
});

const FOREIGN = [
  { what: 'an unrelated route', add: ['route', 'add', 'unreachable', '198.51.100.0/24', 'table', String(TABLE)], named: 'unreachable 198.51.100.0/24 proto boot' },
  { what: 'a look-alike of ramjet\'s route (EEXIST)', add: ['route', 'add', 'local', 'default', 'dev', 'lo', 'table', String(TABLE), 'proto', 'static'], named: 'local default dev lo proto static' },
  { what: 'a rule that looks the table up (Tailscale\'s shape)', add: ['rule', 'add', 'pref', '5270', 'lookup', String(TABLE)], named: '5270: from all lookup 21066' },
];

for (const foreign of FOREIGN) {
  test(`refuses to start when table ${TABLE} holds ${foreign.what}, and leaves it alone`, { skip, timeout: 20_000 }, async (t) => {
    const topo = await createGatewayTopology(t);
    await topo.gateway.ip(...foreign.add);
    const entriesBefore = [...(await table(topo, '-4')), ...(await rulesFor(topo, '-4'))];
    const instance = datapathInstance(t);
    const exit = await startDaemonExpectingExit(t, { netns: topo.gateway.name, config: gatewayConfig(instance, { rules: ESCALATE }) });
    assert.equal(exit.code, 1, exit.output);
    assert.equal(exit.wroteReadyFile, false);
    assert.ok(
      exit.stderr.includes(`routing table ${TABLE} is not ramjet's alone: it holds or is looked up by \`${foreign.named}\``),
      `the error must name the table and the entry:\n${exit.output}`,
    );
    assert.deepEqual([...(await table(topo, '-4')), ...(await rulesFor(topo, '-4'))], entriesBefore, 'the foreign entry must stay as it was');
    assert.deepEqual(await table(topo, '-6'), [], 'nothing of ramjet\'s may be left behind');
    assert.deepEqual(await rulesFor(topo, '-6'), []);
    assert.equal(pinsExist(instance), false, 'a refused start removes what it pinned');
  });
}

test('a refused start leaves the datapath a --keep-datapath stop left running as it was', { skip, timeout: 20_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  const instance = datapathInstance(t);
  // The XDP hook, forced (auto picks tc on veth): the check below looks for its link.
  const kept = await startGatewayDaemon(t, topo, { instance, default_action: 'fastpath', config: { datapath: { fastpath_hook: 'xdp' } }, args: ['--keep-datapath'] });
  assert.equal((await kept.stop()).code, 0);
  await topo.gateway.ip('route', 'add', 'unreachable', '198.51.100.0/24', 'table', String(TABLE));
  const exit = await startDaemonExpectingExit(t, { netns: topo.gateway.name, config: gatewayConfig(instance, { rules: ESCALATE }) });
  assert.equal(exit.code, 1, exit.output);
  assert.ok(exit.stderr.includes(`routing table ${TABLE} is not ramjet's alone`), exit.output);
  assert.equal(pinsExist(instance), true, 'the kept pins must stay');
  assert.ok(existsSync(`${PIN_ROOT}/${instance}/links/${(await forcedXdpHook()).link}-gw-c`), 'the kept links must stay pinned');
  assert.ok(await forcedFastPathAttached(topo, instance, 'gw-c'), 'the fast path (XDP) must stay attached');
});

test('a stop removes only ramjet\'s entries: routes another tool added to the table meanwhile stay', { skip, timeout: 20_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  // The table spelled out: what this tests is the removal, whatever the default.
  const daemon = await startGatewayDaemon(t, topo, { rules: ESCALATE, config: { datapath: { route_table: TABLE } } });
  // Another tool's routes: one unrelated, one like ramjet's but its own (IPv6
  // allows a second default route with another metric; it sorts first).
  await topo.gateway.ip('route', 'add', 'unreachable', '198.51.100.0/24', 'table', String(TABLE));
  await topo.gateway.ip('-6', 'route', 'add', 'local', 'default', 'dev', 'lo', 'table', String(TABLE), 'proto', 'static', 'metric', '10');
  assert.equal((await daemon.stop()).code, 0);
  assert.deepEqual(await table(topo, '-4'), ['unreachable 198.51.100.0/24']);
  assert.deepEqual(await table(topo, '-6'), ['local default dev lo proto static metric 10 pref medium']);
  assert.deepEqual(await rulesFor(topo, '-4'), []);
  assert.deepEqual(await rulesFor(topo, '-6'), []);
});
