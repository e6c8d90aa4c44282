// Trace context (telemetry.tracing): W3C traceparent continued or started, passed to the
// origin with our span as its parent, and one OpenTelemetry JSON line per sampled request
// or tunnel with the hooks that ran as child spans (docs/tracing.md).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { connect as h2connect } from 'node:http2';
import { join } from 'node:path';
import {
  defer,
  echoThroughConnectTunnel,
  httpEndpoint,
  makeTempDir,
  requestViaProxy,
  runDaemonCommand,
  startDaemon,
  startEchoServer,
  startHttpOrigin,
  test,
  waitFor,
  type DaemonHandle,
} from '../lib/index.ts';
import { ramjetctl, type CtlFlow } from '../lib/ramjetctl.ts';

const CLIENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_SPAN = '00f067aa0ba902b7';
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/;

interface OtlpAttribute { key: string; value: { stringValue?: string; intValue?: string } }
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: OtlpAttribute[];
  status: { code?: number };
}

function attr(span: OtlpSpan, key: string): string | undefined {
  const a = span.attributes.find((x) => x.key === key);
  return a?.value.stringValue ?? a?.value.intValue;
}

/** A line's request span and its hook children. */
function split(line: OtlpSpan[] | undefined): [OtlpSpan, OtlpSpan[]] {
  assert.ok(line && line.length > 0, 'a line holds at least the request span');
  const [span, ...hooks] = line;
  return [span!, hooks];
}

async function tracedDaemon(t: Parameters<typeof startDaemon>[0], sample: number, extra: Record<string, unknown> = {}): Promise<{ daemon: DaemonHandle; spans: () => Promise<OtlpSpan[][]> }> {
  const dir = await makeTempDir(t);
  const path = join(dir, 'spans.jsonl');
  const daemon = await startDaemon(t, {
    binary: 'example-l7-firewall',
    config: {
      dns: { servers: ['127.0.0.1:1'] },
      egress: { allow_private: ['127.0.0.0/8'] },
      endpoints: [httpEndpoint('fwd', extra)],
      app: { blocked_paths: ['/admin'] },
      telemetry: { tracing: { path, sample } },
    },
  });
  // One line per span tree: the request's span first, its hooks after it.
  const spans = async (): Promise<OtlpSpan[][]> => {
    let text = '';
    try {
      text = await readFile(path, 'utf8');
    } catch {
      return [];
    }
    return text.split('\n').filter((l) => l !== '').map((l) => {
      const line = JSON.parse(l) as { resourceSpans: Array<{ resource: { attributes: OtlpAttribute[] }; scopeSpans: Array<{ spans: OtlpSpan[] }> }> };
      const resource = line.resourceSpans[0]!;
      assert.equal(resource.resource.attributes[0]?.value.stringValue, 'ramjetd');
      return resource.scopeSpans[0]!.spans;
    });
  };
  return { daemon, spans };
}

test('a sampled traceparent is continued: the origin sees our span as its parent, and the span and its hooks are written', async (t) => {
  const origin = await startHttpOrigin(t);
  const { daemon, spans } = await tracedDaemon(t, 0);
  const proxy = daemon.endpoint('fwd');
  const res = await requestViaProxy(proxy, origin.url('/page'), {
    headers: { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`, tracestate: 'vendor=abc' },
  });
  assert.equal(res.status, 200);
  const seen = origin.requests[0]!.headers;
  const m = TRACEPARENT.exec(String(seen.traceparent));
  assert.ok(m, `the origin got a traceparent: ${String(seen.traceparent)}`);
  assert.equal(m[1], CLIENT_TRACE, 'the same trace');
  assert.notEqual(m[2], CLIENT_SPAN, 'with our span as the parent');
  assert.equal(m[3], '01');
  assert.equal(seen.tracestate, 'vendor=abc', 'tracestate passes untouched');

  const lines = await waitFor(async () => { const s = await spans(); return s.length > 0 ? s : undefined; }, { what: 'a span line' });
  assert.equal(lines.length, 1);
  const [span, hooks] = split(lines[0]);
  assert.equal(span.traceId, CLIENT_TRACE);
  assert.equal(span.parentSpanId, CLIENT_SPAN);
  assert.equal(span.spanId, m[2]);
  assert.equal(span.name, 'GET');
  assert.equal(span.kind, 2);
  assert.equal(attr(span, 'http.response.status_code'), '200');
  assert.equal(attr(span, 'url.full'), origin.url('/page'));
  assert.equal(attr(span, 'ramjet.endpoint'), 'fwd');
  assert.ok(BigInt(span.endTimeUnixNano) >= BigInt(span.startTimeUnixNano));
  assert.deepEqual(hooks.map((h) => h.name), ['hook http.handle_request', 'hook http.handle_response']);
  for (const h of hooks) {
    assert.equal(h.traceId, CLIENT_TRACE);
    assert.equal(h.parentSpanId, span.spanId, 'hooks are children of the request span');
    assert.equal(h.kind, 1);
    assert.ok(BigInt(h.startTimeUnixNano) >= BigInt(span.startTimeUnixNano));
  }
  const flow = Number(attr(span, 'ramjet.flow_id'));
  const access = await daemon.waitForAccessLog((x) => x.endpoint === 'fwd');
  assert.equal(flow, access.flow, 'the span names the flow of the access log');
});

test('an answer from a hook is the span status; unsampled and invalid contexts are handled as W3C says', async (t) => {
  const origin = await startHttpOrigin(t);
  const { daemon, spans } = await tracedDaemon(t, 0);
  const proxy = daemon.endpoint('fwd');
  const blocked = await requestViaProxy(proxy, origin.url('/admin/x'), { headers: { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` } });
  assert.equal(blocked.status, 403);
  // The parent did not sample: no line, but the context still goes on, unsampled.
  const unsampled = await requestViaProxy(proxy, origin.url('/quiet'), { headers: { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-00` } });
  assert.equal(unsampled.status, 200);
  const quiet = TRACEPARENT.exec(String(origin.requests[0]!.headers.traceparent));
  assert.ok(quiet);
  assert.equal(quiet[1], CLIENT_TRACE);
  assert.equal(quiet[3], '00');
  // An invalid traceparent (uppercase) is dropped with its tracestate: a new trace.
  const invalid = await requestViaProxy(proxy, origin.url('/invalid'), {
    headers: { traceparent: `00-${CLIENT_TRACE.toUpperCase()}-${CLIENT_SPAN}-01`, tracestate: 'vendor=abc' },
  });
  assert.equal(invalid.status, 200);
  const fresh = TRACEPARENT.exec(String(origin.requests[1]!.headers.traceparent));
  assert.ok(fresh, `a new traceparent: ${String(origin.requests[1]!.headers.traceparent)}`);
  assert.notEqual(fresh[1], CLIENT_TRACE);
  assert.equal(fresh[3], '00', 'sample 0: the new trace is not sampled');
  assert.equal(origin.requests[1]!.headers.tracestate, undefined);

  await daemon.waitForCounter('http_requests', 3);
  const lines = await waitFor(async () => { const s = await spans(); return s.length > 0 ? s : undefined; }, { what: 'a span line' });
  await new Promise((r) => setTimeout(r, 200));
  assert.equal((await spans()).length, 1, 'only the sampled request has a line');
  const [span, hooks] = split(lines[0]);
  assert.equal(attr(span, 'http.response.status_code'), '403');
  assert.deepEqual(hooks.map((h) => h.name), ['hook http.handle_request']);
  assert.equal(attr(hooks[0]!, 'ramjet.hook.decision'), 'respond');
});

test('sample 1 starts traces: a root span per request, CONNECT tunnels and HTTP/2 streams included', async (t) => {
  const origin = await startHttpOrigin(t);
  const echo = await startEchoServer(t);
  const { daemon, spans } = await tracedDaemon(t, 1, { http: { h2c: true } });
  const proxy = daemon.endpoint('fwd');
  assert.equal((await requestViaProxy(proxy, origin.url('/root'))).status, 200);
  const root = TRACEPARENT.exec(String(origin.requests[0]!.headers.traceparent));
  assert.ok(root);
  assert.equal(root[3], '01');

  await echoThroughConnectTunnel(t, proxy, echo.address, 'ping through the tunnel');

  const session = h2connect(`http://${proxy.host}:${proxy.port}`);
  defer(t, 'h2 session', () => session.close());
  const req = session.request({
    ':method': 'GET', ':scheme': 'http', ':authority': origin.address, ':path': '/over-h2',
    traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`,
  });
  const [headers] = (await once(req, 'response')) as [Record<string, string | number>];
  req.resume();
  await once(req, 'end');
  assert.equal(headers[':status'], 200);
  const h2seen = TRACEPARENT.exec(String(origin.requests[1]!.headers.traceparent));
  assert.ok(h2seen);
  assert.equal(h2seen[1], CLIENT_TRACE);

  const lines = await waitFor(async () => { const s = await spans(); return s.length >= 3 ? s : undefined; }, { what: 'three span lines' }).catch(async (e: unknown) => {
    throw new Error(`${String(e)}: ${JSON.stringify((await spans()).map((l) => l.map((s) => s.name)))}`);
  });
  const byName = (name: string, trace?: string) => lines.find((l) => l[0]!.name === name && (trace === undefined || l[0]!.traceId === trace));
  const get = byName('GET', root[1]);
  assert.ok(get, 'the HTTP/1.1 request span');
  assert.equal(get[0]!.parentSpanId, undefined, 'a new trace has a root span');
  assert.equal(get[0]!.spanId, root[2]);
  const tunnel = byName('CONNECT');
  assert.ok(tunnel, 'the tunnel span');
  assert.equal(attr(tunnel[0]!, 'server.address'), echo.address);
  assert.equal(attr(tunnel[0]!, 'http.response.status_code'), '200');
  assert.ok(tunnel.some((s) => s.name === 'hook http.handle_proxy_connect_request'));
  const h2 = byName('GET', CLIENT_TRACE);
  assert.ok(h2, 'the HTTP/2 stream span');
  assert.equal(h2[0]!.parentSpanId, CLIENT_SPAN);
  assert.equal(h2[0]!.spanId, h2seen[2]);
  assert.equal(attr(h2[0]!, 'http.response.status_code'), '200');
  assert.deepEqual(h2.slice(1).map((h) => h.name), ['hook http.handle_request', 'hook http.handle_response']);

  // The other way round: the flow (its HTTP/2 connection, still open) names its last span.
  const flow = Number(attr(h2[0]!, 'ramjet.flow_id'));
  const ctl = ramjetctl({ adminSocket: daemon.adminSocket });
  const shown = await ctl.json<CtlFlow>(['flows', 'show', String(flow)], 'flow-show.json');
  assert.equal(shown.engine?.trace_id, CLIENT_TRACE);
  assert.equal(shown.engine?.span_id, h2[0]!.spanId);
  const human = await ctl.run(['flows', 'show', String(flow)]);
  assert.equal(human.code, 0, human.output);
  assert.match(human.stdout, new RegExp(`trace\\s+${CLIENT_TRACE} span ${h2[0]!.spanId}`));
});

test('tracing off: a traceparent, valid or not, reaches the origin as the client sent it', async (t) => {
  const origin = await startHttpOrigin(t);
  const daemon = await startDaemon(t, {
    config: { dns: { servers: ['127.0.0.1:1'] }, egress: { allow_private: ['127.0.0.0/8'] }, endpoints: [httpEndpoint('fwd')] },
  });
  const proxy = daemon.endpoint('fwd');
  const sent = [`00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`, 'not a trace context'];
  for (const value of sent) assert.equal((await requestViaProxy(proxy, origin.url('/x'), { headers: { traceparent: value } })).status, 200);
  assert.deepEqual(origin.requests.map((r) => r.headers.traceparent), sent);
  assert.equal((await requestViaProxy(proxy, origin.url('/none'))).status, 200);
  assert.equal(origin.requests[2]!.headers.traceparent, undefined, 'none is added');
});

test('telemetry.tracing.sample outside 0..1 is a config error with its place', async (t) => {
  const dir = await makeTempDir(t);
  const file = join(dir, 'bad.yaml');
  await writeFile(file, ['telemetry:', '  tracing:', '    path: /tmp/x.jsonl', '    sample: 1.5', 'endpoints: []', ''].join('\n'));
  const result = await runDaemonCommand(['--check-config', file]);
  assert.equal(result.code, 2, result.output);
  assert.match(result.stderr, /bad\.yaml:4:\d+: /, result.stderr);
  assert.match(result.stderr, /telemetry\.tracing\.sample/, result.stderr);
});
