// The QUIC on-ramp (issue 13, item 1), first stage: ramjetd serves QUIC on an http
// endpoint's `quic.listen` with the endpoint's tls certificates, and ngtcp2's own client
// (gtlsclient, Debian's ngtcp2-client) completes a handshake with ALPN h3; an unknown
// version gets Version Negotiation and the client retries with v1; a short-header
// packet for no connection gets a Stateless Reset; Retry (address validation) is sent
// always, under load, or never, and its tokens are checked. HTTP/3 requests cross QUIC into the
// request pipeline (cases/h3.test.ts has the proxied ones); here the endpoint's upstream
// refuses connections, so each is answered 502 with a Proxy-Status at once.
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir, run, startQuicProxy, test } from '../lib/index.ts';

/** gtlsclient against `port`, idle-closing after 1 s. */
async function gtlsclient(port: number, extra: string[] = []) {
  const result = await run('gtlsclient', ['--timeout=1s', ...extra, '127.0.0.1', String(port), 'https://www.example.test/'], {
    timeoutMs: 15_000,
  });
  return result.output;
}

test('gtlsclient completes a QUIC handshake with ALPN h3; the id the server chose names worker 0', async (t) => {
  const { quic, daemon } = await startQuicProxy(t, { upstream: 'http://127.0.0.1:9' });
  const out = await gtlsclient(quic.port);
  assert.match(out, /QUIC handshake has completed/, out);
  assert.match(out, /Negotiated ALPN is h3/, out);
  assert.match(out, /QUIC handshake has been confirmed/, out);
  // The server's source id on its Handshake packets: 8 bytes, byte 1 the worker (abi/quic.h).
  const ids = [...out.matchAll(/pkt rx .* scid=0x([0-9a-f]+) .*type=Handshake/g)].map((m) => m[1]!);
  assert.ok(ids.length > 0, out);
  for (const id of ids) {
    assert.equal(id.length, 16, `an 8-byte id: ${id}`);
    assert.equal(id.slice(2, 4), '00', `byte 1 names worker 0: ${id}`);
  }
  await daemon.waitForCounter('quic_connections_accepted', 1);
});

test('an unknown QUIC version gets Version Negotiation listing v1, and the client completes with v1', async (t) => {
  const { quic, daemon } = await startQuicProxy(t, { upstream: 'http://127.0.0.1:9' });
  const out = await gtlsclient(quic.port, ['-v', '0x1a2a3a4a', '--preferred-versions', 'v1']);
  assert.match(out, /version=0x00000000 type=VN/, out);
  assert.match(out, /Client selected version 0x1/, out);
  assert.match(out, /QUIC handshake has completed/, out);
  await daemon.waitForCounter('quic_version_negotiations', (n) => n >= 1); // one per Initial it sent first
});

test('a short-header packet for no connection gets a Stateless Reset, smaller than the trigger; a tiny one is dropped and counted', async (t) => {
  const { quic, daemon } = await startQuicProxy(t, { upstream: 'http://127.0.0.1:9' });
  const socket = createSocket('udp4');
  t.after(() => socket.close());
  const answer = new Promise<Buffer>((resolve) => socket.once('message', (m) => resolve(m)));
  const packet = Buffer.alloc(60, 0x5a);
  packet[0] = 0x40; // short header, fixed bit; an 8-byte id nobody was given
  socket.send(packet, quic.port, quic.host);
  const reset = await Promise.race([answer, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no answer')), 3000))]);
  assert.equal(reset.length, 43, 'at most 43 bytes and under the 60 of the trigger');
  assert.equal(reset[0]! & 0xc0, 0x40, 'looks like a short-header packet');
  await daemon.waitForCounter('quic_stateless_resets', 1);
  const tiny = Buffer.alloc(21, 0x5a);
  tiny[0] = 0x40;
  socket.send(tiny, quic.port, quic.host);
  await daemon.waitForCounter('quic_dropped_too_small_for_reset', 1);
});

test('HTTP/3 requests (a GET, a POST with a 200 kB body) cross QUIC and get the proxy\'s 502 with Proxy-Status at once', async (t) => {
  const { quic, daemon } = await startQuicProxy(t, { upstream: 'http://127.0.0.1:9' });
  const started = Date.now();
  const get = await gtlsclient(quic.port, ['--exit-on-first-stream-close']);
  assert.match(get, /http: stream 0x0 \[:status: 502\]/, get);
  assert.match(get, /proxy-status: ramjet; error=connection_refused/, get);
  const dir = await makeTempDir(t);
  const body = join(dir, 'body');
  await writeFile(body, Buffer.alloc(200_000, 0x70));
  const post = await gtlsclient(quic.port, ['--exit-on-first-stream-close', '-m', 'POST', '-d', body]);
  assert.match(post, /\[:method: POST\]/, post);
  assert.match(post, /http: stream 0x0 \[:status: 502\]/, post);
  assert.ok(Date.now() - started < 5000, 'answered at once, not at the idle timeout');
  await daemon.waitForCounter('quic_h3_requests', 2);
});

test('chromium-headless-shell with QUIC forced on gets its HTTP/3 answer (502 with Proxy-Status)', async (t) => {
  const { quic, daemon, spki } = await startQuicProxy(t, { upstream: 'http://127.0.0.1:9' });
  const dir = await makeTempDir(t);
  const netlog = join(dir, 'netlog.json');
  const origin = `www.example.test:${quic.port}`;
  const r = await run('chromium-headless-shell', [
    '--no-sandbox', '--disable-gpu', '--no-first-run', `--user-data-dir=${join(dir, 'profile')}`,
    `--origin-to-force-quic-on=${origin}`,
    '--host-resolver-rules=MAP www.example.test 127.0.0.1',
    `--ignore-certificate-errors-spki-list=${spki}`,
    `--log-net-log=${netlog}`,
    '--dump-dom', `https://${origin}/page`,
  ], { timeoutMs: 30_000 });
  const log = await readFile(netlog, 'utf8');
  assert.match(log, /":status: 502"/, `no HTTP/3 response in the net log; chromium said:\n${r.output}`);
  assert.match(log, /proxy-status: ramjet; error=connection_refused/);
  await daemon.waitForCounter('quic_h3_requests', (n) => n >= 1);
});

// Address validation (RFC 9000 8.1). A Retry carries a token that only this server can
// check (an AEAD over the client's address and port, the original destination id and a
// timestamp); the client sends its Initial again with it, and only then is a connection
// kept. ngtcp2's client checks the Retry's integrity tag and the transport parameters
// that must name both ids, so a completed handshake proves both sides of the exchange.
test('quic.retry: always sends every new client a Retry first; it comes back with the token and completes', async (t) => {
  const { quic, daemon } = await startQuicProxy(t, { upstream: 'http://127.0.0.1:9', quic: { retry: 'always' } });
  const out = await gtlsclient(quic.port);
  assert.match(out, /pkt rx .*type=Retry/, out);
  assert.match(out, /QUIC handshake has completed/, out);
  await daemon.waitForCounter('quic_retries', 1);
  await daemon.waitForCounter('quic_connections_accepted', 1);
});

test('quic.retry: auto sends Retries only above retry_rate new connections a second', async (t) => {
  const { quic, daemon } = await startQuicProxy(t, { upstream: 'http://127.0.0.1:9', quic: { retry: 'auto', retry_rate: 1 } });
  const first = gtlsclient(quic.port);
  const second = gtlsclient(quic.port);
  const outs = await Promise.all([first, second]);
  for (const out of outs) assert.match(out, /QUIC handshake has completed/, out);
  const retried = outs.filter((out) => /pkt rx .*type=Retry/.test(out)).length;
  assert.equal(retried, 1, 'one of two connections in the same second is over the rate');
  await daemon.waitForCounter('quic_retries', 1);
  await daemon.waitForCounter('quic_connections_accepted', 2);
});

/**
 * A client Initial as far as the server reads it before any decryption: the long header
 * (version 1, 8-byte ids, `token`) and a payload of padding to the 1200 bytes an Initial
 * must fill. The server judges the token from the header alone.
 */
function initialWithToken(token: Buffer): Buffer {
  const dcid = Buffer.alloc(8, 0x11);
  const scid = Buffer.alloc(8, 0x22);
  const head = Buffer.concat([
    Buffer.from([0xc3, 0, 0, 0, 1]), // Initial, 4-byte packet number; version 1
    Buffer.from([dcid.length]), dcid, Buffer.from([scid.length]), scid,
    Buffer.from([0x40 | (token.length >> 8), token.length & 0xff]), token, // 2-byte varint
  ]);
  const rest = 1200 - head.length - 2;
  return Buffer.concat([head, Buffer.from([0x40 | (rest >> 8), rest & 0xff]), Buffer.alloc(rest, 0x5a)]);
}

/** The token of a Retry packet (RFC 9000 17.2.5): after both ids, before the 16-byte tag. */
function retryToken(packet: Buffer): Buffer {
  assert.equal(packet[0]! & 0xf0, 0xf0, 'a Retry');
  const dcidLen = packet[5]!;
  const scidLen = packet[6 + dcidLen]!;
  return packet.subarray(7 + dcidLen + scidLen, packet.length - 16);
}

function udpClient(t: { after: (fn: () => void) => void }) {
  const socket = createSocket('udp4');
  t.after(() => socket.close());
  const next = () =>
    Promise.race([
      new Promise<Buffer>((resolve) => socket.once('message', (m) => resolve(m))),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no answer')), 3000)),
    ]);
  return { socket, next };
}

test('an Initial with a forged Retry token is dropped and counted; a real one works only from the address it was given to', async (t) => {
  const { quic, daemon } = await startQuicProxy(t, { upstream: 'http://127.0.0.1:9', quic: { retry: 'always' } });
  // Forged: the layout of a Retry token (its first byte) with a body no key sealed.
  const forger = udpClient(t);
  forger.socket.send(initialWithToken(Buffer.concat([Buffer.from([0xb6]), Buffer.alloc(60, 0x42)])), quic.port, quic.host);
  await daemon.waitForCounter('quic_invalid_tokens', 1);
  // A real token, asked for from one port and presented from another.
  const asker = udpClient(t);
  const answer = asker.next();
  asker.socket.send(initialWithToken(Buffer.alloc(0)), quic.port, quic.host);
  const token = retryToken(await answer);
  assert.equal(token[0], 0xb6, 'a Retry token');
  await daemon.waitForCounter('quic_retries', 1);
  const thief = udpClient(t);
  thief.socket.send(initialWithToken(token), quic.port, quic.host);
  await daemon.waitForCounter('quic_invalid_tokens', 2);
  assert.equal(await daemon.counter('quic_retries'), 1, 'a token that fails gets no second Retry');
  assert.equal(await daemon.counter('quic_connections_accepted'), 0);
});
