// Case 10: config validation and startup errors.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { escapeRegExp, makeTempDir, runDaemonCommand, startDaemonExpectingExit, startEchoServer, test, testConfig, tcpEndpoint } from '../lib/index.ts';

test('--check-config rejects a bad value with file:line:col and the key', async (t) => {
  const dir = await makeTempDir(t);
  const file = join(dir, 'bad.yaml');
  await writeFile(
    file,
    ['server:', '  workers: 1', '  drain_timeout: banana', 'endpoints:', '  - name: e', '    listen: 127.0.0.1:0', '    onramp: tcp', '    upstream: 127.0.0.1:9', ''].join('\n'),
  );
  const result = await runDaemonCommand(['--check-config', file]);
  assert.equal(result.code, 2, `exit code; stderr:\n${result.stderr}`);
  assert.match(result.stderr, new RegExp(`${escapeRegExp(file)}:3:\\d+: (server\\.)?drain_timeout: \\S`), result.stderr);
});

test('--check-config accepts a good file', async (t) => {
  const dir = await makeTempDir(t);
  const file = join(dir, 'good.yaml');
  await writeFile(file, JSON.stringify(testConfig({ endpoints: [tcpEndpoint('e', '127.0.0.1:9')] }, dir), null, 2));
  const result = await runDaemonCommand(['--check-config', file]);
  assert.equal(result.code, 0, result.output);
});

test('--print-default-config prints a config that --check-config accepts', async (t) => {
  const dir = await makeTempDir(t);
  const printed = await runDaemonCommand(['--print-default-config']);
  assert.equal(printed.code, 0, printed.stderr);
  assert.match(printed.stdout, /^server:/m);
  const file = join(dir, 'default.yaml');
  await writeFile(file, printed.stdout);
  const checked = await runDaemonCommand(['--check-config', file]);
  assert.equal(checked.code, 0, checked.output);
});

test('a listen port already in use: non-zero exit naming the endpoint', async (t) => {
  const occupant = await startEchoServer(t); // holds 127.0.0.1:PORT without SO_REUSEPORT
  const result = await startDaemonExpectingExit(t, {
    config: { endpoints: [{ name: 'busy-endpoint', listen: occupant.address, onramp: 'tcp', upstream: '127.0.0.1:9' }] },
  });
  assert.notEqual(result.code, 0, `expected a failure exit; output:\n${result.output}`);
  assert.equal(result.signal, null, `must exit, not crash; output:\n${result.output}`);
  assert.match(result.output, /busy-endpoint/);
  assert.equal(result.wroteReadyFile, false, 'a daemon that failed to bind must not report ready');
});
