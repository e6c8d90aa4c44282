// The Prometheus endpoint (telemetry.metrics.listen): every scrape parses with
// the reference parser (prometheus_client), names follow Prometheus conventions,
// and the engine counters move by exactly the traffic a test makes, per endpoint.
import assert from 'node:assert/strict';
import {
  COUNTER_NAMES,
  connect,
  echoThroughConnectTunnel,
  httpRequest,
  parseHostPort,
  startDaemon,
  startDaemonExpectingExit,
  startEchoServer,
  startHttpProxy,
  tcpEndpoint,
  test,
  type MetricFamily,
  type MetricsSnapshot,
} from '../lib/index.ts';

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** The conventions docs/metrics.md promises, checked on the parsed families. */
function assertConventions(m: MetricsSnapshot): void {
  assert.ok(m.families.length > 0, 'no families');
  const seen = new Set<string>();
  for (const f of m.families) {
    assert.ok(!seen.has(f.name), `family ${f.name} appears twice`);
    seen.add(f.name);
    assert.ok(f.help.trim().length > 0, `${f.name} has no HELP`);
    assert.ok(f.type === 'counter' || f.type === 'gauge', `${f.name}: TYPE ${f.type}, expected counter or gauge`);
    for (const s of f.samples) {
      assert.match(s.name, METRIC_NAME);
      assert.ok(s.name.startsWith('ramjet_') || s.name.startsWith('process_'), `${s.name}: not ramjet_* (nor the standard process_*)`);
      for (const l of Object.keys(s.labels)) assert.match(l, LABEL_NAME, `${s.name}: label ${l}`);
      assert.ok(Number.isFinite(s.value), `${s.name}: value ${s.value}`);
      if (f.type === 'counter') {
        assert.ok(s.name.endsWith('_total'), `counter ${s.name} must end in _total`);
        assert.ok(s.value >= 0, `counter ${s.name} is negative`);
      } else {
        assert.ok(!s.name.endsWith('_total'), `gauge ${s.name} must not end in _total`);
      }
      if (s.name.includes('bytes')) assert.match(s.name, /_bytes(_total)?$/, `${s.name}: the unit goes last`);
      if (/(_time|_duration|_latency|_seconds)(_|$)/.test(s.name)) assert.match(s.name, /_seconds(_total)?$/, `${s.name}: times in seconds`);
    }
  }
}

const family = (m: MetricsSnapshot, name: string): MetricFamily => {
  const f = m.familyOf(name);
  assert.ok(f, `no family for ${name}; have ${m.families.map((x) => x.name).join(', ')}`);
  return f;
};

test('/metrics parses, follows the naming conventions and counts per endpoint', async (t) => {
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, {
    config: {
      server: { workers: 2 },
      egress: { allow_private: ['127.0.0.0/8'] },
      endpoints: [tcpEndpoint('front', echo.address), tcpEndpoint('back', echo.address)],
    },
  });
  const before = await daemon.metrics();
  assert.equal(before.contentType, 'text/plain; version=0.0.4; charset=utf-8');
  assertConventions(before);

  // Build info and the standard process metrics.
  const info = before.samples('ramjet_build_info');
  assert.equal(info.length, 1);
  assert.equal(info[0]!.labels.app, 'ramjetd');
  assert.match(info[0]!.labels.version ?? '', /^\d+\.\d+\.\d+/);
  assert.equal(info[0]!.value, 1);
  const start = before.value('process_start_time_seconds');
  assert.ok(Math.abs(start - Date.now() / 1000) < 120, `process_start_time_seconds ${start} is not about now`);
  assert.ok(before.value('process_open_fds') > 0);
  assert.ok(before.value('process_resident_memory_bytes') > 1 << 20);

  // Every engine counter is exported for each endpoint, starting at 0.
  for (const name of ['ramjet_connections_accepted_total', 'ramjet_downstream_received_bytes_total', 'ramjet_connections_active']) {
    for (const endpoint of ['front', 'back']) assert.equal(before.value(name, { endpoint }), 0, `${name}{endpoint=${endpoint}}`);
  }
  const engineFamilies = before.families.filter((f) => f.samples.some((s) => s.labels.endpoint === 'front'));
  assert.ok(engineFamilies.length >= COUNTER_NAMES.length, `${engineFamilies.length} families carry endpoint labels`);
  assert.equal(family(before, 'ramjet_connections_active').type, 'gauge');
  assert.equal(family(before, 'ramjet_connections_accepted_total').type, 'counter');

  // Traffic: three connections to front with 5 bytes each, one to back with 3.
  for (let i = 0; i < 3; ++i) {
    const c = await connect(t, daemon.endpoint('front'));
    assert.equal((await c.roundTrip('hello')).toString(), 'hello');
    await c.end();
    await c.waitForPeerClose();
  }
  const open = await connect(t, daemon.endpoint('back'));
  assert.equal((await open.roundTrip('xyz')).toString(), 'xyz');
  await daemon.waitForCounter('bytes_from_client', 15);

  // The back connection is still open: the gauge shows it, on its endpoint only.
  const during = await daemon.metrics();
  assert.equal(during.value('ramjet_connections_active', { endpoint: 'back' }), 1);
  assert.equal(during.value('ramjet_connections_active', { endpoint: 'front' }), 0);

  await open.end();
  await open.waitForPeerClose();
  await daemon.waitForCounter('connections_closed', 4);
  const after = await daemon.metrics();
  assertConventions(after);
  const delta = (name: string, endpoint: string) => after.value(name, { endpoint }) - before.value(name, { endpoint });
  assert.equal(delta('ramjet_connections_accepted_total', 'front'), 3);
  assert.equal(delta('ramjet_connections_accepted_total', 'back'), 1);
  assert.equal(delta('ramjet_connections_closed_total', 'front'), 3);
  assert.equal(delta('ramjet_downstream_received_bytes_total', 'front'), 15);
  assert.equal(delta('ramjet_downstream_sent_bytes_total', 'front'), 15);
  assert.equal(delta('ramjet_downstream_received_bytes_total', 'back'), 3);
  assert.equal(delta('ramjet_downstream_sent_bytes_total', 'back'), 3);
  assert.equal(delta('ramjet_connect_attempts_total', 'front'), 3);
  assert.equal(after.value('ramjet_connections_active', { endpoint: 'back' }), 0);

  // The same numbers as the admin API, which sums the same rows.
  const admin = JSON.parse((await daemon.admin('GET', '/v1/stats')).body) as { counters: Record<string, number>; endpoints: Record<string, Record<string, number>> };
  assert.equal(admin.endpoints.front!.connections_accepted, after.value('ramjet_connections_accepted_total', { endpoint: 'front' }));
  assert.equal(admin.endpoints.back!.bytes_to_client, after.value('ramjet_downstream_sent_bytes_total', { endpoint: 'back' }));
  assert.equal(admin.counters.connections_accepted, 4);
});

test('http endpoint: requests and CONNECT tunnels are counted on that endpoint', async (t) => {
  const echo = await startEchoServer(t);
  const { daemon, proxy } = await startHttpProxy(t);
  await echoThroughConnectTunnel(t, proxy, echo.address, 'ping');
  await daemon.waitForCounter('connections_closed', 1);
  const m = await daemon.metrics();
  assertConventions(m);
  assert.equal(m.value('ramjet_http_requests_total', { endpoint: 'fwd' }), 1);
  assert.equal(m.value('ramjet_http_connect_tunnels_total', { endpoint: 'fwd' }), 1);
  assert.equal(m.value('ramjet_downstream_received_bytes_total', { endpoint: 'fwd' }), 4);
});

test('only GET /metrics is served; other paths 404, other methods 405', async (t) => {
  const daemon = await startDaemon(t, { config: { endpoints: [tcpEndpoint('e', '127.0.0.1:9')] } });
  assert.equal((await httpRequest(daemon.metricsAddress, 'GET', '/')).status, 404);
  const post = await httpRequest(daemon.metricsAddress, 'POST', '/metrics');
  assert.equal(post.status, 405);
  assert.equal(post.headers.allow, 'GET');
  // Still serving after the errors.
  assert.equal((await httpRequest(daemon.metricsAddress, 'GET', '/metrics')).status, 200);
});

test('telemetry.metrics.listen "" turns the endpoint off', async (t) => {
  const daemon = await startDaemon(t, { config: { telemetry: { metrics: { listen: '' } }, endpoints: [tcpEndpoint('e', '127.0.0.1:9')] } });
  assert.equal(daemon.ready.metrics, null);
  const status = JSON.parse((await daemon.admin('GET', '/v1/status')).body) as { metrics: unknown };
  assert.equal(status.metrics, null);
});

test('a metrics address in use: exit 1 naming the setting, no ready file', async (t) => {
  const first = await startDaemon(t, { config: { endpoints: [tcpEndpoint('e', '127.0.0.1:9')] } });
  const taken = first.ready.metrics!;
  assert.ok(parseHostPort(taken).port > 0);
  const second = await startDaemonExpectingExit(t, {
    config: { telemetry: { metrics: { listen: taken } }, endpoints: [tcpEndpoint('e', '127.0.0.1:9')] },
  });
  assert.equal(second.code, 1, second.output);
  assert.match(second.stderr, /telemetry\.metrics\.listen: cannot listen on 127\.0\.0\.1:\d+: Address already in use/);
  assert.equal(second.wroteReadyFile, false);
});
