// Reload (SIGHUP, POST /v1/reload, ramjetctl reload) says what it did: every key that
// changed in the file is either applied or named as needing a restart, and the
// daemon keeps serving on the running config.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { binaryPath, connect, mergeConfig, run, runCurl, startDaemon, startEchoServer, startHttpOrigin, startHttpProxy, tcpEndpoint, test } from '../lib/index.ts';

interface ReloadBody {
  reloaded: boolean;
  rules: number;
  applied: string[];
  restart_required: string[];
}

test('reload applies logging.level and egress, and names each other changed key as needing a restart', async (t) => {
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, {
    config: { logging: { level: 'info' }, egress: { allow_private: ['127.0.0.0/8'] }, endpoints: [tcpEndpoint('web', echo.address)] },
  });
  const unchanged = await daemon.admin('POST', '/v1/reload');
  assert.equal(unchanged.status, 200, unchanged.body);
  assert.deepEqual(JSON.parse(unchanged.body), { ...JSON.parse(unchanged.body), applied: [], restart_required: [] }, 'an unchanged file changes nothing');

  const [web] = daemon.config.endpoints!;
  const edited = mergeConfig(daemon.config, {
    logging: { level: 'debug' },
    egress: { allow_private: ['127.0.0.0/8', '10.0.0.0/8'] },
  });
  edited.endpoints = [{ ...web!, idle_timeout: '7s' }, tcpEndpoint('extra', echo.address)];
  await writeFile(daemon.configPath, `${JSON.stringify(edited, null, 2)}\n`);

  const res = await daemon.admin('POST', '/v1/reload');
  assert.equal(res.status, 200, res.body);
  const body = JSON.parse(res.body) as ReloadBody;
  assert.equal(body.reloaded, true);
  assert.deepEqual(body.applied.sort(), ['egress.allow_private', 'logging.level']);
  assert.deepEqual(body.restart_required.sort(), ['endpoints[extra]', 'endpoints[web].idle_timeout']);

  // ramjetctl prints the same, one key per line.
  const ctl = await run(binaryPath('ramjetctl'), ['--admin-socket', daemon.adminSocket, 'reload'], { timeoutMs: 10_000 });
  assert.equal(ctl.code, 0, ctl.output);
  assert.match(ctl.stdout, /^needs a restart: endpoints\[extra\]$/m);
  assert.match(ctl.stdout, /^needs a restart: endpoints\[web\]\.idle_timeout$/m);
  assert.doesNotMatch(ctl.stdout, /logging\.level/, 'already applied by the first reload: no change the second time');

  // Still serving on the running endpoints; the new one is not opened until a restart.
  const status = JSON.parse((await daemon.admin('GET', '/v1/status')).body) as { endpoints: Record<string, string> };
  assert.deepEqual(Object.keys(status.endpoints), ['web']);
  const client = await connect(t, daemon.endpoint('web'));
  assert.equal((await client.roundTrip('still here')).toString(), 'still here');
});

test('a broken file on reload changes nothing and says where it is broken', async (t) => {
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, { config: { egress: { allow_private: ['127.0.0.0/8'] }, endpoints: [tcpEndpoint('web', echo.address)] } });
  await writeFile(daemon.configPath, 'logging:\n  level: loud\n');
  const res = await daemon.admin('POST', '/v1/reload');
  assert.equal(res.status, 400, res.body);
  assert.match(res.body, /ramjet\.yaml:2:\d+: .*logging\.level/);
  const client = await connect(t, daemon.endpoint('web'));
  assert.equal((await client.roundTrip('ok')).toString(), 'ok');
});

test('a reload puts egress settings into effect for the next requests', async (t) => {
  const origin = await startHttpOrigin(t);
  const { daemon, url } = await startHttpProxy(t, { allowLoopback: false });
  const refused = await runCurl(t, ['-x', url, origin.url('/before')]);
  assert.equal(refused.last!.status, 403, 'loopback origins are refused without egress.allow_private');

  const edited = mergeConfig(daemon.config, { egress: { allow_private: ['127.0.0.0/8'] } });
  await writeFile(daemon.configPath, `${JSON.stringify(edited, null, 2)}\n`);
  const res = await daemon.admin('POST', '/v1/reload');
  assert.equal(res.status, 200, res.body);
  assert.deepEqual((JSON.parse(res.body) as ReloadBody).applied, ['egress.allow_private']);
  const allowed = await runCurl(t, ['-x', url, origin.url('/after')]);
  assert.equal(allowed.last!.status, 200, 'the reloaded allow_private lets the request through');
});
