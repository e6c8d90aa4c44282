// HTTP/2 abuse defences, each driven by frames written by hand (lib/h2_abuse.py, python3-h2's
// hyperframe and hpack) and each asserted by its counter: rapid reset, CONTINUATION, SETTINGS
// and PING floods end the connection with GOAWAY; header lists over the limit get 431;
// streams over the concurrency limit are refused; malformed requests (smuggling vectors) are
// stream errors and nothing of them reaches the origin.
import assert from 'node:assert/strict';
import { H2, runH2Abuse, startH2cProxy, startHttpOrigin, test } from '../lib/index.ts';

test('rapid reset: streams opened and cancelled faster than the limit get GOAWAY', async (t) => {
  const { daemon, proxy } = await startH2cProxy(t, { h2_reset_burst: 10, h2_reset_rate: 1 });
  const r = await runH2Abuse(t, proxy, 'rapid_reset', '200');
  assert.ok(r.goaway, `expected a GOAWAY: ${JSON.stringify(r)}`);
  assert.notEqual(r.goaway.error_code, H2.NO_ERROR);
  assert.equal(await daemon.counter('h2_rapid_resets'), 1);
});

test('rapid reset under the limit is fine: a few cancelled streams and no GOAWAY', async (t) => {
  const { daemon, proxy } = await startH2cProxy(t, { h2_reset_burst: 10, h2_reset_rate: 1 });
  const r = await runH2Abuse(t, proxy, 'rapid_reset', '5');
  assert.equal(r.goaway, null, JSON.stringify(r));
  assert.equal(await daemon.counter('h2_rapid_resets'), 0);
});

test('CONTINUATION flood: a header block that never ends is cut', async (t) => {
  const origin = await startHttpOrigin(t);
  const { daemon, proxy } = await startH2cProxy(t);
  const r = await runH2Abuse(t, proxy, 'continuation_flood', '50');
  assert.ok(r.closed || r.goaway, JSON.stringify(r));
  assert.equal(await daemon.counter('h2_continuation_floods'), 1);
  assert.equal(origin.requests.length, 0);
});

test('PING flood: GOAWAY ENHANCE_YOUR_CALM', async (t) => {
  const { daemon, proxy } = await startH2cProxy(t);
  const r = await runH2Abuse(t, proxy, 'ping_flood', '2000');
  assert.equal(r.goaway?.error_code, H2.ENHANCE_YOUR_CALM, JSON.stringify(r));
  assert.equal(await daemon.counter('h2_ping_floods'), 1);
});

test('SETTINGS flood: GOAWAY ENHANCE_YOUR_CALM', async (t) => {
  const { daemon, proxy } = await startH2cProxy(t);
  const r = await runH2Abuse(t, proxy, 'settings_flood', '2000');
  assert.equal(r.goaway?.error_code, H2.ENHANCE_YOUR_CALM, JSON.stringify(r));
  assert.equal(await daemon.counter('h2_settings_floods'), 1);
});

test('a header list over max_fields gets 431 and is not forwarded', async (t) => {
  const origin = await startHttpOrigin(t);
  const { daemon, proxy } = await startH2cProxy(t, { max_fields: 50 });
  const r = await runH2Abuse(t, proxy, 'big_headers', origin.address);
  assert.equal(r.statuses['1'], 431, JSON.stringify(r));
  assert.equal(await daemon.counter('h2_header_lists_too_large'), 1);
  assert.equal(origin.requests.length, 0);
});

test('streams over h2_max_concurrent_streams are refused', async (t) => {
  const origin = await startHttpOrigin(t);
  const { daemon, proxy } = await startH2cProxy(t, { h2_max_concurrent_streams: 2 });
  const r = await runH2Abuse(t, proxy, 'too_many_streams', origin.address);
  const refused = Object.values(r.resets).filter((c) => c === H2.REFUSED_STREAM).length;
  assert.ok(refused > 0 || (r.goaway !== null && r.goaway.error_code === H2.PROTOCOL_ERROR), JSON.stringify(r));
  assert.ok((await daemon.counter('h2_refused_streams')) >= 1);
  assert.ok(origin.requests.length <= 2, `${origin.requests.length} requests reached the origin`);
});

test('stream-level smuggling: each malformed request is reset and none is forwarded', async (t) => {
  const origin = await startHttpOrigin(t);
  const { daemon, proxy } = await startH2cProxy(t);
  const r = await runH2Abuse(t, proxy, 'smuggling', origin.address);
  // Streams 1..13: header-level cases; 15: content-length disagreeing with DATA.
  for (const id of ['1', '3', '5', '7', '9', '11', '13', '15'])
    assert.equal(r.resets[id], H2.PROTOCOL_ERROR, `stream ${id}: ${JSON.stringify(r)}`);
  assert.equal(r.goaway, null, 'stream errors, not a connection error');
  assert.equal(await daemon.counter('h2_malformed_requests'), 7);
  assert.equal(await daemon.counter('h2_content_length_mismatches'), 1);
  // None of the header-level cases reached the origin; the content-length one never completed.
  assert.deepEqual(origin.requests.filter((q) => q.url !== '/cl').map((q) => q.url), []);
  assert.equal(origin.requests.filter((q) => q.complete).length, 0);
});
