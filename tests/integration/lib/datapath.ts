/**
 * Helpers for tests of the eBPF datapath in the gateway shape: ramjetd runs in
 * the gateway namespace of a GatewayTopology (lib/netns.ts) with `datapath`
 * enabled on gw-c and gw-s, and the tests read its kernel-side view through
 * the admin API:
 *
 *   GET /v1/datapath        -> { enabled, interfaces: [{name, ifindex, xdp_mode, fastpath_hook, ...}],
 *                                stats: { RULE_DROP: {packets, bytes}, ... }, ... }
 *   GET /v1/datapath/flows  -> [{ flow_id, proto, src, dst, verdict, reason, rule,
 *                                 endpoint, packets: [orig, reply], bytes, ... }]
 *
 * Stat names are the ones of bpf/include/ramjet/abi/stats.h.
 */
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';
import { adminGetJson } from './admin.ts';
import type { RamjetConfig } from './config.ts';
import { join } from 'node:path';
import { REPO_ROOT, startDaemon, type DaemonHandle, type StartDaemonOptions } from './daemon.ts';
import { run } from './process.ts';
import { addFailureReporter, defer } from './lifecycle.ts';
import type { GatewayTopology } from './netns.ts';
import { waitFor } from './wait.ts';

/** Where ramjetd pins an instance's maps and links. */
export const PIN_ROOT = '/sys/fs/bpf/ramjet';

export type DatapathAction = 'fastpath' | 'pass' | 'drop' | 'escalate' | 'ratelimit';

export interface DatapathRule {
  name: string;
  proto?: 'tcp' | 'udp' | 'icmp' | 'icmpv6' | 'any';
  src?: string;
  dst?: string;
  dst_port?: number | string;
  interface?: string;
  action: DatapathAction;
  endpoint?: string;
  rate_pps?: number;
  burst?: number;
  [key: string]: unknown;
}

export interface DatapathConfig {
  enabled: boolean;
  instance: string;
  interfaces: string[];
  default_action?: DatapathAction;
  rules?: DatapathRule[];
  [key: string]: unknown;
}

export interface StatValue {
  packets: number;
  bytes: number;
}

export interface DatapathStatus {
  enabled: boolean;
  /** fastpath_hook: where the interface's fast path runs (datapath.fastpath_hook); xdp_mode is null on tc. */
  interfaces: Array<{ name: string; ifindex: number; xdp_mode: 'native' | 'generic' | null | (string & {}); fastpath_hook: 'xdp' | 'tc'; fastpath_hook_reason: string }>;
  stats: Record<string, StatValue>;
  adopted?: boolean;
  /** Why the pins found at start were re-created instead of adopted; null if they were not. */
  recreated_because?: string | null;
  /** This build's ABI stamp (16 hex digits), stored with the pins. */
  abi_stamp?: string;
  pin_dir?: string;
  [key: string]: unknown;
}

export interface KernelFlow {
  flow_id: number;
  proto: string;
  /** "ip:port" of the side that sent the first packet. */
  src: string;
  dst: string;
  verdict: 'FASTPATH' | 'ESCALATE' | 'DROP' | 'PASS' | 'RATELIMIT' | (string & {});
  reason: string;
  rule: string | null;
  endpoint: string | null;
  /** [original direction, reply direction]. */
  packets: [number, number];
  bytes: [number, number];
  age_ms: number;
  idle_ms: number;
  [key: string]: unknown;
}

/**
 * A datapath instance name unique to this test; whatever ramjetd leaves
 * pinned under it (a test that stops with --keep-datapath, or fails) is
 * removed after the test, after the daemons are gone.
 */
export function datapathInstance(t: TestContext, prefix = 'it'): string {
  const instance = `${prefix}-${randomBytes(3).toString('hex')}`;
  defer(t, `datapath pins of ${instance}`, async () => {
    await rm(`${PIN_ROOT}/${instance}`, { recursive: true, force: true });
  });
  return instance;
}

/** True while pins of `instance` exist. */
export function pinsExist(instance: string): boolean {
  return existsSync(`${PIN_ROOT}/${instance}`);
}

export interface GatewayDaemonOptions extends Omit<StartDaemonOptions, 'config' | 'netns'> {
  /** Instance name (default: a fresh datapathInstance(t)). */
  instance?: string;
  default_action?: DatapathAction;
  rules?: DatapathRule[];
  /** Merged over the generated config (datapath keys here override). */
  config?: RamjetConfig;
}

/** The config of a gateway daemon: datapath on gw-c and gw-s, a transparent tcp endpoint `web`. */
export function gatewayConfig(instance: string, options: Pick<GatewayDaemonOptions, 'default_action' | 'rules' | 'config'> = {}): RamjetConfig {
  const base: RamjetConfig = {
    egress: { allow_private: ['10.0.0.0/8', 'fd00::/8'] },
    endpoints: [{ name: 'web', onramp: 'tcp', transparent: true, listen: '127.0.0.1:0' }],
    datapath: {
      enabled: true,
      instance,
      interfaces: ['gw-c', 'gw-s'],
      default_action: options.default_action ?? 'fastpath',
      rules: options.rules ?? [],
    } satisfies DatapathConfig,
  };
  const extra = options.config ?? {};
  return {
    ...base,
    ...extra,
    datapath: { ...(base.datapath as DatapathConfig), ...((extra.datapath as Partial<DatapathConfig> | undefined) ?? {}) },
  };
}

/** Starts ramjetd (or `binary`) in the topology's gateway namespace with the datapath on. */
export async function startGatewayDaemon(t: TestContext, topo: GatewayTopology, options: GatewayDaemonOptions = {}): Promise<DaemonHandle> {
  const instance = options.instance ?? datapathInstance(t);
  const { instance: _i, default_action: _d, rules: _r, config: _c, ...rest } = options;
  const daemon = await startDaemon(t, { ...rest, netns: topo.gateway.name, config: gatewayConfig(instance, options) });
  addFailureReporter(
    t,
    `datapath of ${instance} (pid ${daemon.pid})`,
    async () => {
      if (daemon.exited) return '<daemon exited>';
      const status = await datapathStatus(daemon);
      const stats = Object.entries(status.stats)
        .filter(([, v]) => v.packets > 0)
        .map(([k, v]) => `${k}=${v.packets}`)
        .join(' ');
      const flows = await kernelFlows(daemon);
      return `interfaces: ${JSON.stringify(status.interfaces)}\nstats: ${stats}\nflows:\n${flows.map((f) => JSON.stringify(f)).join('\n')}`;
    },
    'live',
  );
  return daemon;
}

export function datapathStatus(daemon: DaemonHandle): Promise<DatapathStatus> {
  return adminGetJson<DatapathStatus>(daemon.adminSocket, '/v1/datapath');
}

export function kernelFlows(daemon: DaemonHandle): Promise<KernelFlow[]> {
  return adminGetJson<KernelFlow[]>(daemon.adminSocket, '/v1/datapath/flows');
}

/** Packet counts of every datapath stat (a missing stat reads as absent, not 0). */
export async function datapathPackets(daemon: DaemonHandle): Promise<Record<string, number>> {
  const status = await datapathStatus(daemon);
  return Object.fromEntries(Object.entries(status.stats).map(([k, v]) => [k, v.packets]));
}

/** after - before for every stat in `after`; throws for names the daemon does not export. */
export function statDelta(before: Record<string, number>, after: Record<string, number>, names: string[] = Object.keys(after)): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of names) {
    if (after[name] === undefined) throw new Error(`datapath stat ${name} missing from /v1/datapath (have: ${Object.keys(after).join(', ')})`);
    out[name] = after[name]! - (before[name] ?? 0);
  }
  return out;
}

/** Polls a datapath stat until `ok(value)`; returns the value. */
export async function waitForDatapathStat(daemon: DaemonHandle, name: string, ok: (packets: number) => boolean, timeoutMs = 5_000): Promise<number> {
  let last: number | undefined;
  try {
    return await waitFor(
      async () => {
        last = (await datapathPackets(daemon))[name];
        return last !== undefined && ok(last) ? last : undefined;
      },
      { timeoutMs, intervalMs: 50, what: `datapath stat ${name}` },
    );
  } catch (error) {
    throw new Error(`datapath stat ${name} is ${String(last)}, expected ${ok.toString()} (${String(error)})`);
  }
}

/** Polls the kernel flow table until a flow matches; returns it. */
export async function waitForKernelFlow(daemon: DaemonHandle, predicate: (flow: KernelFlow) => boolean, timeoutMs = 5_000): Promise<KernelFlow> {
  let last: KernelFlow[] = [];
  try {
    return await waitFor(
      async () => {
        last = await kernelFlows(daemon);
        return last.find(predicate);
      },
      { timeoutMs, intervalMs: 50, what: 'kernel flow' },
    );
  } catch (error) {
    throw new Error(`${String(error)}; flows were:\n${last.map((f) => JSON.stringify(f)).join('\n')}`);
  }
}

let xdpMetadata: Promise<boolean> | undefined;

/**
 * Whether this kernel lets XDP programs call bpf_xdp_adjust_meta, the note XDP leaves
 * TC. Probed apart from ramjetd's own probe: bpftool loads the datapath object as built
 * (xdp_metadata on). Where the kernel refuses, ramjetd runs every fast path in tcx
 * ingress, `fastpath_hook: xdp` included; `forcedXdpHook()` is what a test that forces
 * XDP gets.
 */
export function kernelAllowsXdpMetadata(): Promise<boolean> {
  xdpMetadata ??= (async () => {
    const dir = `/sys/fs/bpf/ramjet-xdp-probe-${process.pid}`;
    const r = await run('bpftool', ['prog', 'loadall', join(REPO_ROOT, 'bpf/build/datapath.bpf.o'), dir], { timeoutMs: 30_000 });
    await rm(dir, { recursive: true, force: true });
    return !/cannot use helper bpf_xdp_adjust_meta/.test(r.output);
  })();
  return xdpMetadata;
}

/** What `fastpath_hook: xdp` gives on this kernel (see kernelAllowsXdpMetadata). */
export async function forcedXdpHook(): Promise<{ hook: 'xdp' | 'tc'; mode: 'native' | null; link: 'xdp' | 'tcx-ingress'; reason: RegExp }> {
  return (await kernelAllowsXdpMetadata())
    ? { hook: 'xdp', mode: 'native', link: 'xdp', reason: /^configured$/ }
    : { hook: 'tc', mode: null, link: 'tcx-ingress', reason: /^xdp configured: this kernel refuses XDP metadata/ };
}

/**
 * Whether the fast path `fastpath_hook: xdp` gives (forcedXdpHook) is attached to
 * `iface`: an XDP program on the device, or, on a kernel without XDP metadata, the
 * tcx ingress link the instance pinned (a tcx link lives as long as its pin).
 */
export async function forcedFastPathAttached(topo: GatewayTopology, instance: string, iface: string): Promise<boolean> {
  if ((await forcedXdpHook()).hook === 'xdp') return /\bprog\/xdp\b/.test(await topo.gateway.ip('-d', 'link', 'show', 'dev', iface));
  return existsSync(`${PIN_ROOT}/${instance}/links/tcx-ingress-${iface}`);
}
