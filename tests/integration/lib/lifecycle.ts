/**
 * Per-test resource lifecycle.
 *
 * Every helper that starts something (a daemon, an upstream, a DNS server, a
 * client socket, a temp dir) takes the node:test `TestContext` and registers
 * its teardown here. Teardown runs after the test, last-started first, so a
 * daemon is stopped before the upstreams it relays to, and client sockets are
 * closed before the daemon.
 *
 * Helpers also register *failure reporters*: text printed when the test fails
 * or times out (a daemon's stats and hook trace while it still runs; its
 * output and config after it stopped). Use the `test` exported here (a thin
 * wrapper over node:test's `test`) to get that printing and a default
 * per-test timeout; a failing teardown (e.g. the daemon crashed) prints the
 * reports too.
 */
import { test as nodeTest, type TestContext } from 'node:test';
import { appendFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { withTimeout } from './wait.ts';

type Teardown = () => void | Promise<void>;
type Reporter = () => string | Promise<string>;

/**
 * When a failure reporter runs: 'live' before teardown (it may query running
 * daemons: stats, hook trace), 'final' after teardown (process output is then
 * complete, including shutdown messages). 'final' reporters must not need
 * files in the test's temp dir, which teardown removes.
 */
export type ReportPhase = 'live' | 'final';

interface Scope {
  teardowns: Array<{ what: string; run: Teardown }>;
  reporters: Array<{ what: string; report: Reporter; phase: ReportPhase }>;
  /** Set by the `test` wrapper when the test threw or timed out. */
  failed: boolean;
}

const scopes = new WeakMap<TestContext, Scope>();

function scopeOf(t: TestContext): Scope {
  let scope = scopes.get(t);
  if (scope === undefined) {
    const created: Scope = { teardowns: [], reporters: [], failed: false };
    scope = created;
    scopes.set(t, created);
    t.after(() => finish(t, created));
  }
  return scope;
}

async function finish(t: TestContext, scope: Scope): Promise<void> {
  const verbose = process.env.RAMJET_IT_VERBOSE === '1';
  const why = scope.failed ? 'test failed' : 'verbose';
  if (scope.failed || verbose) await printReport(t, scope, 'live', why);
  const errors: unknown[] = [];
  // Last started, first stopped.
  for (const { what, run } of scope.teardowns.reverse()) {
    try {
      await run();
    } catch (error) {
      errors.push(new Error(`teardown of ${what} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error }));
    }
  }
  if (scope.failed || verbose || errors.length > 0) await printReport(t, scope, 'final', errors.length > 0 && !scope.failed ? 'teardown failed' : why);
  if (errors.length > 0) throw errors.length === 1 ? errors[0] : new AggregateError(errors, errors.map((e) => String(e)).join('; '));
}

/** Runs `run` after the test `t` finished (pass or fail), in reverse registration order. */
export function defer(t: TestContext, what: string, run: Teardown): void {
  scopeOf(t).teardowns.push({ what, run });
}

/**
 * Registers text to print if the test `t` fails: e.g. a daemon's output
 * ('final', the default) or its hook trace fetched while it still runs ('live').
 */
export function addFailureReporter(t: TestContext, what: string, report: Reporter, phase: ReportPhase = 'final'): void {
  scopeOf(t).reporters.push({ what, report, phase });
}

async function printReport(t: TestContext, scope: Scope, phase: ReportPhase, why: string): Promise<void> {
  for (const { what, report } of scope.reporters.filter((r) => r.phase === phase)) {
    let text: string;
    try {
      text = await withTimeout(Promise.resolve(report()), 3_000, `failure reporter ${what}`);
    } catch (error) {
      text = `<reporter failed: ${error instanceof Error ? error.message : String(error)}>`;
    }
    const body = text.trimEnd() === '' ? '  <empty>' : text.trimEnd().replace(/^/gm, '  | ');
    console.error(`----- [${t.name}] ${why}: ${what} -----\n${body}\n----- end of ${what} -----`);
  }
}

/** Creates a fresh temp dir for `t`, removed after the test unless RAMJET_IT_KEEP_TMP=1. */
export async function makeTempDir(t: TestContext, prefix = 'ramjet-it-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  defer(t, `temp dir ${dir}`, async () => {
    if (process.env.RAMJET_IT_KEEP_TMP === '1') {
      console.error(`[${t.name}] keeping temp dir ${dir}`);
      return;
    }
    await rm(dir, { recursive: true, force: true });
  });
  return dir;
}

export interface TestOptions {
  /** Per-test timeout in milliseconds (default 30 000). */
  timeout?: number;
  skip?: boolean | string;
  todo?: boolean | string;
  only?: boolean;
}

export type TestFn = (t: TestContext) => Promise<void> | void;

/**
 * A skip is never silent. With RAMJET_NO_SKIP=1 (`.ci/run` sets it: CI runs as
 * root, where every test can run) a test or step that would skip fails instead,
 * naming the reason. Otherwise the skip is appended to $RAMJET_SKIP_LOG (when
 * set) as "integration <file>: <name>: <reason>", the list `make test` prints last.
 */
export function applySkipPolicy(name: string, options: TestOptions, fn: TestFn): { options: TestOptions; fn: TestFn } {
  if (options.skip === undefined || options.skip === false) return { options, fn };
  const why = typeof options.skip === 'string' && options.skip !== '' ? options.skip : 'no reason given';
  if (process.env.RAMJET_NO_SKIP === '1') {
    const refuse: TestFn = () => {
      throw new Error(`this test would be skipped (${why}), and RAMJET_NO_SKIP=1 makes a skip a failure: here every test must run`);
    };
    return { options: { ...options, skip: false }, fn: refuse };
  }
  const log = process.env.RAMJET_SKIP_LOG;
  if (log !== undefined && log !== '') appendFileSync(log, `integration ${basename(process.argv[1] ?? 'unknown file')}: ${name}: ${why}\n`);
  return { options, fn };
}

/**
 * node:test's `test`, plus: a default timeout of 30 s, and on failure (an
 * exception or the timeout) the output of every daemon started by the test is
 * printed. Use it exactly like node:test's `test`.
 */
export function test(name: string, fn: TestFn): Promise<void>;
export function test(name: string, options: TestOptions, fn: TestFn): Promise<void>;
export function test(name: string, a: TestOptions | TestFn, b?: TestFn): Promise<void> {
  const given: TestOptions = typeof a === 'function' ? {} : a;
  const body = typeof a === 'function' ? a : b;
  if (body === undefined) throw new TypeError('test(): missing test function');
  const { options, fn } = applySkipPolicy(name, given, body);
  return nodeTest(name, { timeout: 30_000, ...options }, async (t) => {
    // The scope's after hook prints the failure reports and tears down.
    // A timeout aborts t.signal while fn is still pending.
    const scope = scopeOf(t);
    const onAbort = (): void => {
      scope.failed = true;
    };
    t.signal.addEventListener('abort', onAbort, { once: true });
    try {
      await fn(t);
    } catch (error) {
      scope.failed = true;
      throw error;
    } finally {
      t.signal.removeEventListener('abort', onAbort);
    }
  });
}

/**
 * One step of a larger test: node:test's `t.test()` with what `test` adds (a
 * default timeout of 30 s, teardown of what the step started, failure
 * reports). A failing step also marks `t` failed, so the reports of the
 * parent's daemons (output, config, live state) are printed after the
 * parent, and the following steps still run. Steps that share state run in
 * order when awaited:
 *
 *   test('ramjetctl against one daemon', async (t) => {
 *     const daemon = await startDaemon(t, ...);      // lives for every step
 *     await step(t, 'flows list', async (s) => { ... });  // what s starts ends here
 *     await step(t, 'flows kill', async (s) => { ... });
 *   });
 */
export function step(t: TestContext, name: string, fn: TestFn): Promise<void>;
export function step(t: TestContext, name: string, options: TestOptions, fn: TestFn): Promise<void>;
export function step(t: TestContext, name: string, a: TestOptions | TestFn, b?: TestFn): Promise<void> {
  const given: TestOptions = typeof a === 'function' ? {} : a;
  const body = typeof a === 'function' ? a : b;
  if (body === undefined) throw new TypeError('step(): missing step function');
  const { options, fn } = applySkipPolicy(name, given, body);
  const parent = scopeOf(t);
  return t.test(name, { timeout: 30_000, ...options }, async (s) => {
    const scope = scopeOf(s);
    const onAbort = (): void => {
      scope.failed = true;
      parent.failed = true;
    };
    s.signal.addEventListener('abort', onAbort, { once: true });
    try {
      await fn(s);
    } catch (error) {
      onAbort();
      throw error;
    } finally {
      s.signal.removeEventListener('abort', onAbort);
    }
  });
}

export type { TestContext };
