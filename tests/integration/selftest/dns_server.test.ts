// Self-test of the framework's DNS server and wire codec, queried through
// node's own resolver (c-ares), independent of ramjetd.
import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { createSocket } from 'node:dgram';
import {
  decodeMessage,
  encodeMessage,
  ipv6ToBytes,
  ipv6ToText,
  Rcode,
  RRClass,
  RRType,
  startDnsServer,
  test,
  type DnsServer,
} from '../lib/index.ts';

function resolverFor(server: DnsServer, timeoutMs = 1_000): Resolver {
  const resolver = new Resolver({ timeout: timeoutMs, tries: 1 });
  resolver.setServers([server.address]);
  return resolver;
}

/** Sends one raw query and returns the decoded reply (or undefined on timeout). */
async function rawQuery(server: DnsServer, query: Buffer, timeoutMs = 1_000): Promise<ReturnType<typeof decodeMessage> | undefined> {
  const socket = createSocket('udp4');
  try {
    return await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(undefined), timeoutMs);
      socket.on('message', (msg) => {
        clearTimeout(timer);
        resolve(decodeMessage(msg));
      });
      socket.send(query, server.port, server.host);
    });
  } finally {
    socket.close();
  }
}

test('answers A and AAAA with the configured TTL and order', async (t) => {
  const dns = await startDnsServer(t, { records: { 'svc.test': { a: ['127.0.0.9', '127.0.0.1'], aaaa: ['::1', '2001:db8::5'], ttl: 7 } } });
  const resolver = resolverFor(dns);
  assert.deepEqual(await resolver.resolve4('svc.test', { ttl: true }), [
    { address: '127.0.0.9', ttl: 7 },
    { address: '127.0.0.1', ttl: 7 },
  ]);
  assert.deepEqual(await resolver.resolve6('svc.test', { ttl: true }), [
    { address: '::1', ttl: 7 },
    { address: '2001:db8::5', ttl: 7 },
  ]);
  assert.equal(dns.queryCount('svc.test'), 2);
  assert.equal(dns.queryCount('svc.test', 'A'), 1);
  assert.equal(dns.queryCount('SVC.TEST.', 'AAAA'), 1);
});

test('unknown names are NXDOMAIN; known names without the type are NODATA', async (t) => {
  const dns = await startDnsServer(t, { records: { 'v4only.test': { a: ['127.0.0.1'] } } });
  const resolver = resolverFor(dns);
  await assert.rejects(resolver.resolve4('missing.test'), { code: 'ENOTFOUND' });
  await assert.rejects(resolver.resolve6('v4only.test'), { code: 'ENODATA' });
  assert.equal(dns.queryCount('missing.test'), 1);
});

test('matches names case-insensitively and echoes the question as sent', async (t) => {
  const dns = await startDnsServer(t, { records: { 'mixed.test': { a: ['127.0.0.1'], ttl: 5 } } });
  const reply = await rawQuery(dns, encodeMessage({ id: 0x1234, rd: true, questions: [{ name: 'MiXeD.TeSt', type: RRType.A, class: RRClass.IN }] }));
  assert.ok(reply);
  assert.equal(reply.id, 0x1234);
  assert.equal(reply.qr, true);
  assert.equal(reply.aa, true);
  assert.equal(reply.rd, true);
  assert.equal(reply.rcode, Rcode.NOERROR);
  assert.deepEqual(reply.questions, [{ name: 'MiXeD.TeSt', type: RRType.A, class: RRClass.IN }]);
  assert.deepEqual(reply.answers, [{ name: 'MiXeD.TeSt', type: RRType.A, class: RRClass.IN, ttl: 5, data: '127.0.0.1' }]);
});

test('records change at runtime', async (t) => {
  const dns = await startDnsServer(t, { records: { 'moving.test': { a: ['127.0.0.1'], ttl: 1 } } });
  const resolver = resolverFor(dns);
  assert.deepEqual(await resolver.resolve4('moving.test'), ['127.0.0.1']);
  dns.setRecords('moving.test', { a: ['127.0.0.2'], ttl: 1 });
  assert.deepEqual(await resolver.resolve4('moving.test'), ['127.0.0.2']);
  dns.removeRecords('moving.test');
  await assert.rejects(resolver.resolve4('moving.test'), { code: 'ENOTFOUND' });
  assert.equal(dns.queryCount('moving.test'), 3);
});

test('silent mode never answers (but counts); servfail mode fails', async (t) => {
  const dns = await startDnsServer(t, { records: { 'quiet.test': { a: ['127.0.0.1'] } }, mode: 'silent' });
  await assert.rejects(resolverFor(dns, 200).resolve4('quiet.test'), { code: 'ETIMEOUT' });
  assert.ok(dns.queryCount('quiet.test') >= 1);
  dns.setMode('servfail');
  await assert.rejects(resolverFor(dns).resolve4('quiet.test'), { code: 'ESERVFAIL' });
  dns.setMode('answer');
  assert.deepEqual(await resolverFor(dns).resolve4('quiet.test'), ['127.0.0.1']);
});

test('delayed answers still arrive', async (t) => {
  const dns = await startDnsServer(t, { records: { 'slow.test': { a: ['127.0.0.1'] } } });
  dns.setDelay(150);
  const start = performance.now();
  assert.deepEqual(await resolverFor(dns).resolve4('slow.test'), ['127.0.0.1']);
  assert.ok(performance.now() - start >= 140);
});

test('garbage gets FORMERR, not a crash', async (t) => {
  const dns = await startDnsServer(t, { records: { 'ok.test': { a: ['127.0.0.1'] } } });
  // Header claiming one question, followed by a label that runs past the end.
  const junk = Buffer.from([0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0x3f, 0x61]);
  const reply = await rawQuery(dns, junk);
  assert.ok(reply);
  assert.equal(reply.id, 0xabcd);
  assert.equal(reply.rcode, Rcode.FORMERR);
  assert.deepEqual(await resolverFor(dns).resolve4('ok.test'), ['127.0.0.1']);
});

test('wire codec: compression pointers, loops, IPv6 text', () => {
  // Response with the answer name compressed to the question name (0xc00c).
  const msg = Buffer.concat([
    Buffer.from([0x00, 0x07, 0x84, 0x00, 0, 1, 0, 1, 0, 0, 0, 0]),
    Buffer.from([3, 0x77, 0x77, 0x77, 4, 0x74, 0x65, 0x73, 0x74, 0, 0, 1, 0, 1]),
    Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 0, 0, 1]),
  ]);
  const decoded = decodeMessage(msg);
  assert.equal(decoded.questions[0]?.name, 'www.test');
  assert.deepEqual(decoded.answers, [{ name: 'www.test', type: RRType.A, class: RRClass.IN, ttl: 30, data: '10.0.0.1' }]);
  // A pointer to itself must be rejected, not loop forever.
  const loop = Buffer.concat([Buffer.from([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])]);
  assert.throws(() => decodeMessage(loop), /loop/);
  for (const text of ['::', '::1', '2001:db8::5', 'fe80::1:2:3:4', '1:2:3:4:5:6:7:8', '2001:db8:0:0:1::1']) {
    assert.equal(ipv6ToText(ipv6ToBytes(text)), text === '2001:db8:0:0:1::1' ? '2001:db8::1:0:0:1' : text);
  }
  assert.equal(ipv6ToText(ipv6ToBytes('::ffff:1.2.3.4')), '::ffff:102:304');
});
