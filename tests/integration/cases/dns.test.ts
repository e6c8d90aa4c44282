// Case 4: upstreams given by name are resolved through the configured DNS
// servers (the framework's own authoritative server), cached for the record's
// TTL, retried on fallback servers, and NXDOMAIN closes the connection.
import assert from 'node:assert/strict';
import {
  connect,
  sleep,
  startDaemon,
  startDnsServer,
  startEchoServer,
  startHelloServer,
  startOnSamePort,
  tcpEndpoint,
  test,
  type DnsConfig,
} from '../lib/index.ts';

const LOOPBACK_ALLOWED = { allow_private: ['127.0.0.0/8'] };

function dnsConfig(servers: string[], extra: DnsConfig = {}): DnsConfig {
  return { servers, timeout: '300ms', attempts: 1, min_ttl: '0s', max_ttl: '1h', negative_ttl: '30s', ...extra };
}

test('an upstream name is resolved through dns.servers', async (t) => {
  const echo = await startEchoServer(t);
  const dns = await startDnsServer(t, { records: { 'echo.test': { a: ['127.0.0.1'], ttl: 60 } } });
  const daemon = await startDaemon(t, {
    config: { dns: dnsConfig([dns.address]), egress: LOOPBACK_ALLOWED, endpoints: [tcpEndpoint('by-name', `echo.test:${echo.port}`)] },
  });
  const client = await connect(t, daemon.endpoint('by-name'));
  assert.equal((await client.roundTrip('hello')).toString(), 'hello');
  assert.ok(dns.queryCount('echo.test') >= 1, 'the daemon must ask the configured server');
  assert.ok((await daemon.counter('dns_queries')) >= 1);
  const flows = [...(await daemon.traceByFlow()).values()];
  assert.ok(
    flows[0]?.some((e) => e.hook === 'egress.dns_resolve_override'),
    'egress.dns_resolve_override runs for a name upstream',
  );
});

test('answers are cached for their TTL, then re-resolved (following a changed record)', async (t) => {
  // TTL 2 s rather than 1 s: a cache with whole-second granularity may
  // legitimately expire a 1 s record almost at once.
  const TTL_S = 2;
  const [first, second] = await startOnSamePort(['127.0.0.1', '127.0.0.2'], (host, port) => startHelloServer(t, host, { host, port }));
  assert.ok(first && second);
  const dns = await startDnsServer(t, { records: { 'ttl.test': { a: ['127.0.0.1'], ttl: TTL_S } } });
  const daemon = await startDaemon(t, {
    config: { dns: dnsConfig([dns.address]), egress: LOOPBACK_ALLOWED, endpoints: [tcpEndpoint('by-name', `ttl.test:${first.port}`)] },
  });
  const greeting = async (): Promise<string> => {
    const client = await connect(t, daemon.endpoint('by-name'));
    await client.waitForPeerClose();
    return client.received().toString();
  };

  assert.equal(await greeting(), '127.0.0.1');
  const firstQueryAt = dns.queries().find((q) => q.name === 'ttl.test' && q.type === 'A')?.at;
  assert.ok(firstQueryAt !== undefined, 'no A query for ttl.test');
  const aQueries = dns.queryCount('ttl.test', 'A');
  const hitsBefore = await daemon.counter('dns_cache_hits');

  assert.equal(await greeting(), '127.0.0.1');
  assert.ok(Date.now() - firstQueryAt < TTL_S * 1000, 'the second connection was too slow to test the cache');
  assert.equal(dns.queryCount('ttl.test', 'A'), aQueries, 'a second connection within the TTL must not query again');
  assert.ok((await daemon.counter('dns_cache_hits')) > hitsBefore, 'dns_cache_hits must grow');

  dns.setRecords('ttl.test', { a: ['127.0.0.2'], ttl: TTL_S });
  await sleep(firstQueryAt + TTL_S * 1000 + 600 - Date.now());
  assert.equal(await greeting(), '127.0.0.2', 'after the TTL the daemon must re-resolve and follow the new record');
  assert.ok(dns.queryCount('ttl.test', 'A') > aQueries);
  assert.equal(second.connections, 1);
});

test('a silent primary server falls back to fallback_servers', async (t) => {
  const echo = await startEchoServer(t);
  const primary = await startDnsServer(t, { records: { 'fb.test': { a: ['127.0.0.1'] } }, mode: 'silent' });
  const fallback = await startDnsServer(t, { records: { 'fb.test': { a: ['127.0.0.1'] } } });
  const daemon = await startDaemon(t, {
    config: {
      dns: dnsConfig([primary.address], { fallback_servers: [fallback.address] }),
      egress: LOOPBACK_ALLOWED,
      endpoints: [tcpEndpoint('by-name', `fb.test:${echo.port}`, { connect_timeout: '5s' })],
    },
  });
  const client = await connect(t, daemon.endpoint('by-name'));
  assert.equal((await client.roundTrip('hello', undefined, 10_000)).toString(), 'hello');
  assert.ok(primary.queryCount('fb.test') >= 1, 'the primary server must be tried first');
  assert.ok(fallback.queryCount('fb.test') >= 1, 'the fallback server must be asked');
  await daemon.waitForCounter('dns_fallback_used', (n) => n >= 1);
});

test('NXDOMAIN closes the connection without reaching any upstream', async (t) => {
  const echo = await startEchoServer(t);
  const dns = await startDnsServer(t, { records: {} });
  const daemon = await startDaemon(t, {
    config: { dns: dnsConfig([dns.address]), egress: LOOPBACK_ALLOWED, endpoints: [tcpEndpoint('by-name', `missing.test:${echo.port}`)] },
  });
  const client = await connect(t, daemon.endpoint('by-name'));
  await client.waitForPeerClose();
  await daemon.waitForCounter('dns_failures', (n) => n >= 1);
  assert.ok(dns.queryCount('missing.test') >= 1);
  assert.equal(echo.connections, 0);
  const entry = await daemon.waitForAccessLog((e) => e.endpoint === 'by-name');
  assert.equal(entry.reason, 'dns_failure');
});
