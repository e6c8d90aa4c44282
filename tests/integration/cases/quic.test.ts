// The QUIC on-ramp (issue 13, item 1), first stage: ramjetd serves QUIC on an http
// endpoint's `quic.listen` with the endpoint's tls certificates, and ngtcp2's own client
// (gtlsclient, Debian's ngtcp2-client) completes a handshake with ALPN h3; an unknown
// version gets Version Negotiation and the client retries with v1; a short-header
// packet for no connection gets a Stateless Reset. HTTP/3 requests cross QUIC into the
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
