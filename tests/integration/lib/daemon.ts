/**
 * Starting ramjetd (or an application built on libramjet) for a test.
 *
 *   const d = await startDaemon(t, { config: { endpoints: [tcpEndpoint('e', up.address)] } });
 *   const client = await connect(t, d.endpoint('e'));
 *   assert.equal(await d.counter('connections_accepted'), 1);
 *
 * startDaemon writes the config into a temp dir of its own, fills in the admin
 * socket and ready file, puts the metrics endpoint on a free port, and enables
 * the hook trace and a JSON access log unless the config says otherwise. It resolves once the daemon wrote its
 * ready file (every listener bound). After the test the daemon is stopped
 * with SIGTERM; the test fails if it crashed, exited on its own, or did not
 * shut down cleanly. If the test fails, the daemon's output is printed.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { adminGetJson, adminRequest, type AdminResponse, type CounterName, type Counters, type HookEvent } from './admin.ts';
import type { Address } from './client.ts';
import { mergeConfig, type RamjetConfig } from './config.ts';
import type { KernelFlow } from './datapath.ts';
import { addFailureReporter, defer, makeTempDir } from './lifecycle.ts';
import { scrapeMetrics, type MetricsSnapshot } from './metrics.ts';
import { describeExit, ManagedProcess, run, type ExitStatus } from './process.ts';
import { StopWaiting, waitFor } from './wait.ts';

export type DaemonBinary = 'ramjetd' | 'example-egress-allowlist' | 'example-context-demo' | (string & {});

/** Repository root (tests/integration/lib/ -> ../../..). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** $RAMJET_BUILD_DIR, default <repo>/build/release. */
export function buildDir(): string {
  return resolve(process.env.RAMJET_BUILD_DIR ?? join(REPO_ROOT, 'build/release'));
}

/** Path of a binary: absolute paths as given, names under $RAMJET_BUILD_DIR/bin. */
export function binaryPath(binary: DaemonBinary): string {
  return isAbsolute(binary) ? binary : join(buildDir(), 'bin', binary);
}

function requireBinary(binary: DaemonBinary): string {
  const path = binaryPath(binary);
  if (!existsSync(path)) {
    throw new Error(`${path} does not exist: build it first (make build), or point RAMJET_BUILD_DIR at a build dir`);
  }
  return path;
}

/** Contents of the ready file the daemon writes once every listener is bound. */
export interface ReadyInfo {
  pid: number;
  /** Endpoint name -> "ip:port" actually bound. */
  endpoints: Record<string, string>;
  admin_socket: string;
  /** "ip:port" of the Prometheus endpoint; null when telemetry.metrics.listen is "". */
  metrics?: string | null;
}

/** One line of the JSON access log (one per closed connection). */
export interface AccessLogEntry {
  flow: number;
  endpoint: string;
  client: string;
  upstream: string;
  bytes_from_client: number;
  bytes_to_client: number;
  duration_ms: number;
  reason:
    | 'completed'
    | 'blocked_ingress'
    | 'blocked_egress'
    | 'dns_failure'
    | 'connect_failure'
    | 'idle_timeout'
    | 'max_lifetime'
    | 'downstream_error'
    | 'upstream_error'
    | 'shutdown'
    | (string & {});
  [key: string]: unknown;
}

/** One line of the audit log (telemetry.audit_log.path); see docs/audit-log.md. */
export interface AuditLogEntry {
  flow: number;
  kind: 'tcp' | 'connect' | 'websocket' | 'connect-udp' | 'http' | (string & {});
  endpoint: string;
  client: string;
  local: string;
  target: string | null;
  upstream: string | null;
  bytes_from_client: number;
  bytes_to_client: number;
  /** RFC 3339, UTC, microseconds. */
  start: string;
  duration_ms: number;
  close_reason: AccessLogEntry['reason'];
  decisions: {
    ingress: { decision: 'allow' | 'block'; reason?: string } | null;
    connect: { decision: 'allow' | 'deny'; status?: number; reason?: string } | null;
    egress: { decision: 'direct' | 'block'; target: string | null; upstream_ips: string | null; block_reasons: string[] } | null;
  };
  /** null unless the datapath escalated the flow: then its kernel flow entry, or only its id if the entry was gone. */
  kernel: KernelFlow | { flow_id: number } | null;
  [key: string]: unknown;
}

/** Parsed JSON lines of `path` so far (a partial last line is ignored; a missing file is empty). */
export async function readJsonLines<T>(path: string, what = path): Promise<T[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const lines = text.split('\n');
  lines.pop(); // '' after the final newline, or a line still being written
  return lines.filter((l) => l.trim() !== '').map((l, i) => {
    try {
      return JSON.parse(l) as T;
    } catch {
      throw new Error(`${what} line ${i + 1} is not JSON: ${l}`);
    }
  });
}

/** Polls `read` until `predicate` holds for some entry; the error shows the log as last read. */
async function waitForLogEntry<T>(read: () => Promise<T[]>, predicate: (entry: T) => boolean, what: string, timeoutMs: number): Promise<T> {
  let last: T[] = [];
  try {
    return await waitFor(
      async () => {
        last = await read();
        return last.find(predicate);
      },
      { timeoutMs, intervalMs: 50, what: `${what} entry` },
    );
  } catch (error) {
    throw new Error(`${String(error)}; ${what} was:\n${last.map((e) => JSON.stringify(e)).join('\n')}`);
  }
}

export interface StartDaemonOptions {
  /** Binary name under $RAMJET_BUILD_DIR/bin, or an absolute path (default 'ramjetd'). */
  binary?: DaemonBinary;
  config: RamjetConfig;
  /** Extra environment variables; `undefined` removes one from the daemon's environment. */
  env?: Record<string, string | undefined>;
  /** Extra command-line arguments (after --config FILE). */
  args?: string[];
  /** How long to wait for the ready file (default 10 000 ms). */
  readyTimeoutMs?: number;
  /**
   * Run the daemon inside this network namespace (a name under /run/netns,
   * e.g. a GatewayTopology's gateway). It is entered with `nsenter --net`, which
   * keeps the host's mounts (the bpffs at /sys/fs/bpf where the datapath pins
   * its maps); the pid stays the daemon's own.
   */
  netns?: string;
  /**
   * A command the daemon runs under: its argv, before the daemon's. E.g.
   * ['setpriv', '--reuid=nobody', ...] (see asUnprivileged) or
   * [binaryPath('ramjet-seccomp-deny'), 'io_uring_setup', '--'].
   */
  wrap?: string[];
}

/** Parses "1.2.3.4:80" or "[::1]:80". */
export function parseHostPort(text: string): Address {
  const match = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  if (match === null) throw new Error(`not a host:port: ${text}`);
  return { host: match[1]!, port: Number(match[2]) };
}

class DaemonStartError extends StopWaiting {
  override name = 'DaemonStartError';
}

const CRASH_SIGNALS = new Set<string>(['SIGSEGV', 'SIGABRT', 'SIGBUS', 'SIGILL', 'SIGFPE', 'SIGTRAP', 'SIGSYS']);

export class DaemonHandle {
  /** True once the test observed the exit through waitExit()/stop(). */
  private exitObserved = false;
  /** True once the test observed a crash it caused on purpose (waitCrash). */
  private crashExpected = false;

  constructor(
    readonly process: ManagedProcess,
    /** The test's temp dir (config, admin socket, ready file, access log live here). */
    readonly dir: string,
    readonly configPath: string,
    /** The config exactly as written. */
    readonly config: RamjetConfig,
    readonly ready: ReadyInfo,
    /** The network namespace the daemon runs in (StartDaemonOptions.netns), if not the host's. */
    readonly netns?: string,
  ) {}

  get pid(): number {
    return this.ready.pid;
  }

  get adminSocket(): string {
    return this.ready.admin_socket;
  }

  /** Where the endpoint `name` listens (from the ready file). */
  endpoint(name: string): Address {
    const address = this.ready.endpoints[name];
    if (address === undefined) throw new Error(`no endpoint named ${JSON.stringify(name)}; the daemon reported ${JSON.stringify(this.ready.endpoints)}`);
    return parseHostPort(address);
  }

  // ---------------------------------------------------------------- admin API

  /** Any admin API request (for endpoints without a helper here). */
  admin(method: string, path: string, body?: unknown): Promise<AdminResponse> {
    return adminRequest(this.adminSocket, method, path, body);
  }

  /** GET /v1/stats -> counters. */
  async stats(): Promise<Counters> {
    const body = await adminGetJson<{ counters?: Record<string, number> }>(this.adminSocket, '/v1/stats');
    if (body.counters === undefined || typeof body.counters !== 'object') throw new Error(`/v1/stats has no "counters" object: ${JSON.stringify(body)}`);
    return body.counters as Counters;
  }

  /** One counter; throws if the daemon does not export it (a missing counter is not 0). */
  async counter(name: CounterName | (string & {})): Promise<number> {
    const counters = await this.stats();
    const value = counters[name];
    if (typeof value !== 'number') throw new Error(`counter ${name} missing from /v1/stats (have: ${Object.keys(counters).join(', ')})`);
    return value;
  }

  /**
   * Polls a counter until `expected` holds (a number means "equals"); returns
   * its value. Counters may be updated just after the client-visible event
   * (e.g. the close), so assert on counters through this.
   */
  async waitForCounter(name: CounterName | (string & {}), expected: number | ((value: number) => boolean), timeoutMs = 5_000): Promise<number> {
    const ok = typeof expected === 'number' ? (v: number) => v === expected : expected;
    let last: number | undefined;
    try {
      return await waitFor(
        async () => {
          last = await this.counter(name);
          return ok(last) ? last : undefined;
        },
        { timeoutMs, intervalMs: 50, what: `counter ${name}` },
      );
    } catch (error) {
      const want = typeof expected === 'number' ? `== ${expected}` : `to satisfy ${expected.toString()}`;
      throw new Error(`counter ${name} is ${String(last)}, expected ${want} (${String(error)})`);
    }
  }

  /** GET /v1/hooks/trace -> hook invocations in order. */
  async trace(): Promise<HookEvent[]> {
    const body = await adminGetJson<{ events?: HookEvent[] }>(this.adminSocket, '/v1/hooks/trace');
    if (!Array.isArray(body.events)) throw new Error(`/v1/hooks/trace has no "events" array: ${JSON.stringify(body).slice(0, 500)}`);
    return body.events;
  }

  /** Trace events grouped by flow id, each group in invocation order. */
  async traceByFlow(): Promise<Map<number, HookEvent[]>> {
    return groupByFlow(await this.trace());
  }

  /** Polls the trace until `predicate` holds; returns the events. */
  async waitForTrace(predicate: (events: HookEvent[]) => boolean, timeoutMs = 5_000): Promise<HookEvent[]> {
    let last: HookEvent[] = [];
    try {
      return await waitFor(
        async () => {
          last = await this.trace();
          return predicate(last) ? last : undefined;
        },
        { timeoutMs, intervalMs: 50, what: 'hook trace condition' },
      );
    } catch (error) {
      throw new Error(`${String(error)}; trace was:\n${formatTrace(last)}`);
    }
  }

  // ---------------------------------------------------------------- access log

  /** Path of the JSON access log, if the config enables one. */
  get accessLogPath(): string | undefined {
    const logging = this.config.logging;
    return logging?.access_log === 'json' && typeof logging.access_log_path === 'string' ? logging.access_log_path : undefined;
  }

  /** Parsed access log lines so far (a partial last line is ignored). */
  async accessLog(): Promise<AccessLogEntry[]> {
    const path = this.accessLogPath;
    if (path === undefined) throw new Error('the access log is not enabled as json with access_log_path in this config');
    return readJsonLines<AccessLogEntry>(path, 'access log');
  }

  /** Polls the access log until `predicate` holds for some entry; returns that entry. */
  waitForAccessLog(predicate: (entry: AccessLogEntry) => boolean, timeoutMs = 5_000): Promise<AccessLogEntry> {
    return waitForLogEntry(() => this.accessLog(), predicate, 'access log', timeoutMs);
  }

  // ---------------------------------------------------------------- audit log

  /** Path of the audit log, if the config enables one. */
  get auditLogPath(): string | undefined {
    const path = this.config.telemetry?.audit_log?.path;
    return typeof path === 'string' && path !== '' ? path : undefined;
  }

  /** Parsed audit log lines so far, from the configured path or `path` (e.g. a rotated file). */
  async auditLog(path = this.auditLogPath): Promise<AuditLogEntry[]> {
    if (path === undefined) throw new Error('the audit log is not enabled (telemetry.audit_log.path) in this config');
    return readJsonLines<AuditLogEntry>(path, `audit log ${path}`);
  }

  /** Polls the audit log until `predicate` holds for some entry; returns that entry. */
  waitForAuditLog(predicate: (entry: AuditLogEntry) => boolean, timeoutMs = 5_000): Promise<AuditLogEntry> {
    return waitForLogEntry(() => this.auditLog(), predicate, 'audit log', timeoutMs);
  }

  // ---------------------------------------------------------------- metrics

  /** Where GET /metrics is served (from the ready file); throws if metrics are off. */
  get metricsAddress(): Address {
    if (typeof this.ready.metrics !== 'string') throw new Error(`the daemon serves no metrics (ready file: ${JSON.stringify(this.ready)})`);
    return parseHostPort(this.ready.metrics);
  }

  /** Scrapes /metrics (from inside the daemon's netns, if it has one) and parses it with prometheus_client's parser. */
  metrics(): Promise<MetricsSnapshot> {
    return scrapeMetrics(this.metricsAddress, this.netns);
  }

  // ---------------------------------------------------------------- process

  /** Captured stdout+stderr so far. */
  output(): string {
    return this.process.output();
  }

  get exited(): boolean {
    return this.process.exited;
  }

  signal(signal: NodeJS.Signals): void {
    this.process.signal(signal);
  }

  /** Waits for the daemon to exit (default up to 10 s). */
  async waitExit(timeoutMs = 10_000): Promise<ExitStatus> {
    const status = await this.process.waitExit(timeoutMs);
    this.exitObserved = true;
    return status;
  }

  /** Waits for the daemon to die by a signal, as a test that crashes it on purpose expects; teardown then accepts the crash. */
  async waitCrash(timeoutMs = 20_000): Promise<ExitStatus> {
    const status = await this.waitExit(timeoutMs);
    if (status.signal === null || !CRASH_SIGNALS.has(status.signal)) throw new Error(`expected a crash; the daemon ${describeExit(status)}`);
    this.crashExpected = true;
    return status;
  }

  /** SIGTERM and wait (SIGKILL after `graceMs`). */
  async stop(graceMs = 5_000): Promise<ExitStatus & { killed: boolean }> {
    const status = await this.process.terminate(graceMs);
    this.exitObserved = true;
    return status;
  }

  /** Teardown: stop if running; complain about crashes and unclean exits. */
  async teardown(): Promise<void> {
    if (this.process.exited) {
      const status = this.process.exitStatus!;
      if (!this.exitObserved) throw new Error(`daemon exited on its own during the test (${describeExit(status)})`);
      if (status.signal !== null && CRASH_SIGNALS.has(status.signal) && !this.crashExpected) throw new Error(`daemon crashed (${describeExit(status)})`);
      return;
    }
    const status = await this.process.terminate(5_000);
    this.exitObserved = true;
    if (status.killed) throw new Error('daemon did not exit within 5 s of SIGTERM at teardown (killed with SIGKILL)');
    if (status.code !== 0) throw new Error(`daemon did not shut down cleanly at teardown (${describeExit(status)})`);
  }
}

/**
 * Groups trace events by flow id, keeping invocation order. Events that belong
 * to no connection (lifecycle.* hooks, flow 0 or absent) are left out.
 */
export function groupByFlow(events: HookEvent[]): Map<number, HookEvent[]> {
  const flows = new Map<number, HookEvent[]>();
  for (const event of [...events].sort((a, b) => a.seq - b.seq)) {
    if (typeof event.flow !== 'number' || event.flow === 0 || event.hook.startsWith('lifecycle.')) continue;
    const list = flows.get(event.flow) ?? [];
    list.push(event);
    flows.set(event.flow, list);
  }
  return flows;
}

/**
 * The kind of a hook decision: one word ("allow", "block", "direct", "continue", ...);
 * the reason or address it concerns is in event.detail.
 */
export function decisionKind(event: HookEvent): string {
  return event.decision ?? '';
}

export function formatTrace(events: HookEvent[]): string {
  return events
    .map((e) => {
      const { seq, flow, hook, ...rest } = e;
      return `#${seq} flow=${String(flow)} ${hook} ${JSON.stringify(rest)}`;
    })
    .join('\n');
}

/** The config startDaemon would write for `config` in `dir`. */
export function testConfig(config: RamjetConfig, dir: string): RamjetConfig {
  const defaults: RamjetConfig = {
    server: {
      workers: 1,
      drain_timeout: '1s',
      admin_socket: join(dir, 'admin.sock'),
      ready_file: join(dir, 'ready.json'),
      // Never the host's /var/lib/ramjet/crash.
      crash_dir: join(dir, 'crash'),
    },
    logging: { access_log: 'json', access_log_path: join(dir, 'access.log') },
    // Port 0: parallel tests never collide; the ready file names the port.
    telemetry: { hook_trace: true, metrics: { listen: '127.0.0.1:0' } },
  };
  return mergeConfig(defaults, config);
}

interface Launched {
  proc: ManagedProcess;
  dir: string;
  config: RamjetConfig;
  configPath: string;
  name: string;
}

async function launch(t: TestContext, options: StartDaemonOptions): Promise<Launched> {
  const binary = requireBinary(options.binary ?? 'ramjetd');
  const name = options.binary ?? 'ramjetd';
  const dir = await makeTempDir(t);
  const config = testConfig(options.config, dir);
  const configPath = join(dir, 'ramjet.yaml');
  await writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`);
  const inner = [...(options.wrap ?? []), binary, '--config', configPath, ...(options.args ?? [])];
  const [command, ...argv] = options.netns === undefined ? inner : ['nsenter', `--net=/run/netns/${options.netns}`, '--', ...inner];
  const proc = new ManagedProcess(command!, argv, { env: options.env, cwd: dir });
  // Registered before the reporters so that it runs last: the process is gone
  // by the time the temp dir is removed, even if the test never stops it.
  defer(t, `${name} process`, async () => void (await proc.terminate(2_000)));
  addFailureReporter(t, `${name} (pid ${String(proc.pid)}) output`, () => proc.output());
  addFailureReporter(t, `${name} config ${configPath}`, () => JSON.stringify(config, null, 2));
  return { proc, dir, config, configPath, name };
}

/** Starts a daemon for the test `t` and waits until it is ready. */
export async function startDaemon(t: TestContext, options: StartDaemonOptions): Promise<DaemonHandle> {
  const { proc, dir, config, configPath, name } = await launch(t, options);
  const readyFile = config.server!.ready_file!;
  let ready: ReadyInfo;
  try {
    ready = await waitFor(
      async () => {
        if (proc.exited) throw new DaemonStartError(`daemon exited before becoming ready (${describeExit(proc.exitStatus!)})`);
        try {
          return JSON.parse(await readFile(readyFile, 'utf8')) as ReadyInfo;
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
          throw error;
        }
      },
      { timeoutMs: options.readyTimeoutMs ?? 10_000, intervalMs: 20, what: `ready file ${readyFile}` },
    );
  } catch (error) {
    if (!proc.exited) await proc.terminate(2_000);
    throw new Error(`${name} did not become ready: ${String(error)}\n--- daemon output ---\n${proc.output()}`);
  }
  if (typeof ready.admin_socket !== 'string' || typeof ready.endpoints !== 'object' || ready.endpoints === null) {
    await proc.terminate(2_000);
    throw new Error(`ready file has an unexpected shape: ${JSON.stringify(ready)}`);
  }
  const handle = new DaemonHandle(proc, dir, configPath, config, ready, options.netns);
  defer(t, `daemon ${name}`, () => handle.teardown());
  addFailureReporter(t, `${name} stats`, async () => (handle.exited ? '<daemon exited>' : JSON.stringify(await handle.stats())), 'live');
  if (config.telemetry?.hook_trace === true) {
    addFailureReporter(t, `${name} hook trace`, async () => (handle.exited ? '<daemon exited>' : formatTrace(await handle.trace())), 'live');
  }
  if (handle.accessLogPath !== undefined) {
    addFailureReporter(t, `${name} access log`, async () => (await handle.accessLog()).map((e) => JSON.stringify(e)).join('\n'), 'live');
  }
  if (handle.auditLogPath !== undefined) {
    addFailureReporter(t, `${name} audit log`, async () => (await handle.auditLog()).map((e) => JSON.stringify(e)).join('\n'), 'live');
  }
  return handle;
}

/**
 * Starts a daemon that is expected to fail (e.g. a port already in use) and
 * waits for it to exit. Resolves with how it exited, its output, and whether
 * it wrote the ready file anyway. Rejects if it is still running after
 * `timeoutMs`.
 */
export async function startDaemonExpectingExit(
  t: TestContext,
  options: StartDaemonOptions & { timeoutMs?: number },
): Promise<ExitStatus & { output: string; stderr: string; wroteReadyFile: boolean }> {
  const { proc, config } = await launch(t, options);
  let status: ExitStatus;
  try {
    status = await proc.waitExit(options.timeoutMs ?? 10_000);
  } catch {
    await proc.terminate(2_000);
    throw new Error(`daemon was expected to exit but is still running after ${options.timeoutMs ?? 10_000} ms:\n${proc.output()}`);
  }
  return { ...status, output: proc.output(), stderr: proc.stderr(), wroteReadyFile: existsSync(config.server!.ready_file!) };
}

/**
 * Runs a binary with arbitrary arguments to completion (e.g. --check-config,
 * --print-default-config) and returns its status and output.
 */
export async function runDaemonCommand(
  args: string[],
  options: { binary?: DaemonBinary; env?: Record<string, string | undefined>; timeoutMs?: number } = {},
): Promise<ExitStatus & { stdout: string; stderr: string; output: string }> {
  return run(requireBinary(options.binary ?? 'ramjetd'), args, { env: options.env, timeoutMs: options.timeoutMs ?? 10_000 });
}
