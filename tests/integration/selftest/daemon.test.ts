// Self-test of startDaemon and the DaemonHandle against a fake daemon that
// speaks the contract (selftest/fixtures/fake_ramjetd.mjs), so the framework's
// daemon handling is verified without a ramjetd build.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import {
  connect,
  DaemonHandle,
  groupByFlow,
  mergeConfig,
  parseHostPort,
  run,
  startDaemon,
  startDaemonExpectingExit,
  startEchoServer,
  tcpEndpoint,
  test,
  testConfig,
  tryConnect,
} from '../lib/index.ts';

const FAKE = fileURLToPath(new URL('./fixtures/fake_ramjetd.mjs', import.meta.url));

test('config defaults merge under the test config', () => {
  const config = testConfig({ server: { workers: 2 }, telemetry: { hook_trace: false }, endpoints: [tcpEndpoint('a', '127.0.0.1:1')] }, '/tmp/x');
  assert.equal(config.server?.workers, 2);
  assert.equal(config.server?.admin_socket, '/tmp/x/admin.sock');
  assert.equal(config.server?.ready_file, '/tmp/x/ready.json');
  assert.equal(config.telemetry?.hook_trace, false);
  assert.equal(config.logging?.access_log, 'json');
  assert.deepEqual(config.endpoints, [{ name: 'a', listen: '127.0.0.1:0', onramp: 'tcp', upstream: '127.0.0.1:1' }]);
  assert.deepEqual(mergeConfig({ a: [1, 2], b: { c: 1 } }, { a: [3], b: { d: 2 } }), { a: [3], b: { c: 1, d: 2 } });
  assert.deepEqual(parseHostPort('127.0.0.1:80'), { host: '127.0.0.1', port: 80 });
  assert.deepEqual(parseHostPort('[::1]:443'), { host: '::1', port: 443 });
});

test('startDaemon: ready file, endpoints, stats, trace, access log, SIGTERM', async (t) => {
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, { binary: FAKE, config: { endpoints: [tcpEndpoint('ep', echo.address)] } });
  assert.ok(daemon instanceof DaemonHandle);
  assert.throws(() => daemon.endpoint('nope'), /no endpoint named "nope"/);
  const client = await connect(t, daemon.endpoint('ep'));
  assert.equal((await client.roundTrip('hello')).toString(), 'hello');
  assert.equal(await daemon.counter('connections_accepted'), 1);
  await assert.rejects(daemon.counter('no_such_counter'), /missing from \/v1\/stats/);
  client.destroy();
  await daemon.waitForCounter('connections_closed', 1);
  const flows = await daemon.traceByFlow();
  assert.deepEqual(
    [...flows.values()].map((events) => events.map((e) => e.hook)),
    [['ingress.handle_connection', 'ingress.handle_connection_close']],
  );
  const entry = await daemon.waitForAccessLog((e) => e.endpoint === 'ep');
  assert.equal(entry.reason, 'completed');
  daemon.signal('SIGTERM');
  assert.deepEqual(await daemon.waitExit(5_000), { code: 0, signal: null });
  assert.equal(await tryConnect(daemon.endpoint('ep')), 'refused');
  assert.match(daemon.output(), /fake ramjetd ready/);
  assert.equal(groupByFlow([]).size, 0);
});

test('startDaemon fails fast with the output when the daemon dies at start', async (t) => {
  const start = performance.now();
  await assert.rejects(
    startDaemon(t, { binary: FAKE, config: { endpoints: [] }, env: { FAKE_RAMJETD_CRASH_AT_START: '1' } }),
    /did not become ready: .*exited before becoming ready \(signal SIGABRT\)/s,
  );
  assert.ok(performance.now() - start < 5_000, 'must not wait for the ready timeout');
});

test('startDaemon names the missing binary', async (t) => {
  await assert.rejects(startDaemon(t, { binary: 'no-such-binary', config: {} }), /no-such-binary does not exist: build it first/);
});

test('a failing test prints the daemon output and config', async () => {
  const fixture = fileURLToPath(new URL('./fixtures/failing_fixture.ts', import.meta.url));
  const result = await run(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', fixture], {
    timeoutMs: 30_000,
    env: { NODE_TEST_CONTEXT: undefined }, // a top-level runner, not a child of ours
  });
  assert.notEqual(result.code, 0, result.output);
  assert.match(result.output, /intentional failure/);
  assert.match(result.output, /test failed: .* output -----\n\s+\| fake ramjetd ready: \{"fixture-ep"/);
  assert.match(result.output, /"name": "fixture-ep"/);
  assert.match(result.output, /fake ramjetd ready: \{"timeout-ep"/, 'a timed-out test prints the daemon output too');
  assert.match(result.output, /tests 2/);
});

test('the access log reader tolerates a missing file', async (t) => {
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, { binary: FAKE, config: { endpoints: [tcpEndpoint('ep', echo.address)] } });
  assert.deepEqual(await daemon.accessLog(), []);
  assert.ok((await readFile(daemon.configPath, 'utf8')).includes('"hook_trace": true'));
});

test('startDaemonExpectingExit reports the exit and output', async (t) => {
  const busy = await startEchoServer(t);
  const result = await startDaemonExpectingExit(t, {
    binary: FAKE,
    config: { endpoints: [{ name: 'busy-ep', listen: busy.address, onramp: 'tcp', upstream: '127.0.0.1:1' }] },
  });
  assert.deepEqual({ code: result.code, signal: result.signal }, { code: 1, signal: null });
  assert.match(result.output, /busy-ep/);
  assert.equal(result.wroteReadyFile, false);
});
