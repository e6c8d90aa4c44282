// Source addresses on the way out (`source:` per endpoint, EgressDecision::from per
// connection): upstream connections leave from the chosen address, upstream addresses
// of another family are not tried, and idle connections are reused only for the same
// source, so one tenant's requests never leave from another tenant's address.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  connect,
  httpEndpoint,
  makeTempDir,
  parseProxyStatus,
  rawHttpClient,
  runDaemonCommand,
  startDaemon,
  startEchoServer,
  startRawOrigin,
  tcpEndpoint,
  test,
} from '../lib/index.ts';

const LOOPBACK_ALLOWED = { allow_private: ['127.0.0.0/8', '::1/128'] };

const hostOf = (peer: string): string => peer.slice(0, peer.lastIndexOf(':'));

test('tcp endpoint with source 127.0.0.2: the upstream sees the connection from that address', async (t) => {
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, {
    config: { egress: LOOPBACK_ALLOWED, endpoints: [tcpEndpoint('out', echo.address, { source: ['127.0.0.2'] })] },
  });
  const client = await connect(t, daemon.endpoint('out'));
  const back = await client.roundTrip(Buffer.from('ping'), 4, 5000);
  assert.equal(back.toString(), 'ping');
  assert.equal(echo.peers.length, 1);
  assert.equal(hostOf(echo.peers[0]!), '127.0.0.2');
});

test('two http endpoints with their own source share no pooled connection: each request leaves from its endpoint\'s address', async (t) => {
  const origin = await startRawOrigin(t);
  const daemon = await startDaemon(t, {
    config: {
      server: { workers: 1 },
      egress: LOOPBACK_ALLOWED,
      endpoints: [httpEndpoint('tenant-a', { source: ['127.0.0.2'] }), httpEndpoint('tenant-b', { source: ['127.0.0.3'] })],
    },
  });
  for (const [round, name] of [[1, 'tenant-a'], [1, 'tenant-b'], [2, 'tenant-a'], [2, 'tenant-b']] as const) {
    // A new client connection each time: only the worker's pool could carry a connection over.
    const client = await rawHttpClient(t, daemon.endpoint(name));
    await client.send(`GET http://${origin.address}/${name}/${round} HTTP/1.1\r\nHost: a.test\r\n\r\n`);
    const r = await client.response();
    assert.equal(r.status, 200, r.summary());
    await client.end();
  }
  const from = origin.requests.map((q) => [q.line, hostOf(origin.upstream.peers[q.connection]!)]);
  assert.deepEqual(from, [
    ['GET /tenant-a/1 HTTP/1.1', '127.0.0.2'],
    ['GET /tenant-b/1 HTTP/1.1', '127.0.0.3'],
    ['GET /tenant-a/2 HTTP/1.1', '127.0.0.2'],
    ['GET /tenant-b/2 HTTP/1.1', '127.0.0.3'],
  ]);
  // The second round reused each endpoint's own idle connection.
  assert.equal(origin.upstream.connections, 2);
  assert.equal(await daemon.counter('upstream_reused'), 2);
});

test('an IPv4 source and an IPv6-only upstream: 502 destination_ip_unroutable, no connection attempt', async (t) => {
  const echo = await startEchoServer(t, { host: '::1' });
  const daemon = await startDaemon(t, {
    config: { egress: LOOPBACK_ALLOWED, endpoints: [httpEndpoint('v4only', { source: ['127.0.0.2'] })] },
  });
  const client = await rawHttpClient(t, daemon.endpoint('v4only'));
  await client.send(`GET http://${echo.address}/ HTTP/1.1\r\nHost: a.test\r\n\r\n`);
  const r = await client.response();
  assert.equal(r.status, 502, r.summary());
  assert.equal(parseProxyStatus(r.get('proxy-status'))?.error, 'destination_ip_unroutable', r.summary());
  assert.equal(echo.connections, 0);
  assert.equal(await daemon.counter('connect_attempts'), 0);
});

test('source: two addresses of one family, or the wildcard, are config errors with file:line:col and the key', async (t) => {
  const dir = await makeTempDir(t);
  for (const [bad, why] of [
    ['[127.0.0.2, 127.0.0.3]', /endpoints\[0\]\.source\[1\]: at most one source address per family/],
    ['[0.0.0.0]', /endpoints\[0\]\.source\[0\]: a source address is one of this host's addresses/],
  ] as const) {
    const file = join(dir, 'bad.yaml');
    await writeFile(file, ['endpoints:', '  - name: e', '    listen: 127.0.0.1:0', '    onramp: tcp', '    upstream: 127.0.0.1:9', `    source: ${bad}`, ''].join('\n'));
    const result = await runDaemonCommand(['--check-config', file]);
    assert.equal(result.code, 2, result.output);
    assert.match(result.stderr, new RegExp(`bad\\.yaml:6:\\d+: `), result.stderr);
    assert.match(result.stderr, why, result.stderr);
  }
});
