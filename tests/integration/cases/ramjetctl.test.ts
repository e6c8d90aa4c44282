// ramjetctl against a live ramjetd: status and stats over the admin socket, config
// check and default without one, and a clear error when the daemon is down.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { binaryPath, connect, makeTempDir, run, startDaemon, startEchoServer, tcpEndpoint, test } from '../lib/index.ts';

const ctl = (args: string[]) => run(binaryPath('ramjetctl'), args, { timeoutMs: 10_000 });

test('status and stats read the running daemon', async (t) => {
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, {
    config: { egress: { allow_private: ['127.0.0.0/8'] }, endpoints: [tcpEndpoint('tcp-demo', echo.address)] },
  });
  const status = await ctl(['--admin-socket', daemon.adminSocket, '--json', 'status']);
  assert.equal(status.code, 0, status.output);
  const s = JSON.parse(status.stdout);
  assert.equal(s.pid, daemon.pid);
  const ep = daemon.endpoint('tcp-demo');
  assert.equal(s.endpoints['tcp-demo'], `${ep.host}:${ep.port}`);

  const client = await connect(t, ep);
  assert.equal((await client.roundTrip('ping')).toString(), 'ping');
  await client.end();
  await client.waitForPeerClose();
  await daemon.waitForCounter('connections_closed', 1);

  const stats = await ctl(['--admin-socket', daemon.adminSocket, '--json', 'stats']);
  assert.equal(stats.code, 0, stats.output);
  const counters = JSON.parse(stats.stdout).counters;
  assert.equal(counters.connections_accepted, 1);
  assert.equal(counters.bytes_from_client, 4);

  const table = await ctl(['--admin-socket', daemon.adminSocket, 'stats']);
  assert.equal(table.code, 0);
  assert.match(table.stdout, /^engine\n/);
  assert.match(table.stdout, /^  connections_accepted\s+1$/m);
});

test('a stopped daemon is reported as such, with exit code 1', async (t) => {
  const dir = await makeTempDir(t);
  const r = await ctl(['--admin-socket', join(dir, 'admin.sock'), 'status']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /ramjetd is not running/);
});

test('config check names file, line, column and key; config default is a valid file', async (t) => {
  const dir = await makeTempDir(t);
  const bad = join(dir, 'bad.yaml');
  await writeFile(bad, 'server:\n  wrokers: 2\n');
  const r = await ctl(['config', 'check', bad]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2:3: server\\.wrokers: unknown key`));

  const def = await ctl(['config', 'default']);
  assert.equal(def.code, 0);
  const file = join(dir, 'default.yaml');
  await writeFile(file, def.stdout);
  const ok = await ctl(['config', 'check', file]);
  assert.equal(ok.code, 0, ok.output);
});
