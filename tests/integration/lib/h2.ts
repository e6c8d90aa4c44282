/**
 * Helpers for the HTTP/2 on-ramp (h2c by prior knowledge on `onramp: http` endpoints).
 *
 *   const { daemon, proxy } = await startH2cProxy(t);
 *   const r = await runNghttp(t, proxy, origin.address, '/path');    // nghttp, prior knowledge
 *   const abuse = await runH2Abuse(t, proxy, 'ping_flood');         // frames written by hand
 *
 * - startH2cProxy: startHttpProxy with `http: {h2c: true}` (plus any other http settings).
 * - runNghttp: nghttp (nghttp2-client) sending a request whose :authority is the origin,
 *   so the proxy forwards it; its verbose frame log is returned for asserts.
 * - h2Exchange: one request on a node http2 client session (body, request trailers),
 *   resolving with status, fields, body, response trailers and the RST_STREAM code.
 * - runH2Abuse: lib/h2_abuse.py (python3-h2's hyperframe and hpack) sending one abuse
 *   case; returns the GOAWAY, resets and statuses the proxy answered with.
 */
import type { ClientHttp2Session, IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Address } from './client.ts';
import { startHttpProxy, type HttpProxy, type HttpProxyOptions } from './http.ts';
import { run } from './process.ts';

const ABUSE_PY = fileURLToPath(new URL('./h2_abuse.py', import.meta.url));

export async function startH2cProxy(
  t: TestContext,
  http: Record<string, unknown> = {},
  options: HttpProxyOptions = {},
): Promise<HttpProxy> {
  return startHttpProxy(t, { ...options, endpoint: { ...options.endpoint, http: { h2c: true, ...http } } });
}

export interface NghttpResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** nghttp against the proxy with :authority set to `authority`, so the request is forwarded. */
export async function runNghttp(
  t: TestContext,
  proxy: Address,
  authority: string,
  path: string,
  extra: string[] = [],
): Promise<NghttpResult> {
  void t;
  const r = await run('nghttp', ['-H', `:authority: ${authority}`, ...extra, `http://${proxy.host}:${proxy.port}${path}`], {
    timeoutMs: 20_000,
  });
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
}

export interface H2AbuseResult {
  goaway: { error_code: number; last_stream_id: number } | null;
  resets: Record<string, number>;
  statuses: Record<string, number>;
  closed: boolean;
}

export async function runH2Abuse(t: TestContext, proxy: Address, kase: string, arg = ''): Promise<H2AbuseResult> {
  void t;
  const r = await run('/usr/bin/python3', [ABUSE_PY, proxy.host, String(proxy.port), kase, ...(arg ? [arg] : [])], {
    timeoutMs: 20_000,
  });
  if (r.code !== 0) throw new Error(`h2_abuse.py ${kase} failed: ${r.output}`);
  return JSON.parse(r.stdout) as H2AbuseResult;
}

/** RFC 9113 7 error codes. */
export const H2 = { NO_ERROR: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2, REFUSED_STREAM: 7, CANCEL: 8, ENHANCE_YOUR_CALM: 0xb } as const;

/** What came back on one HTTP/2 stream, however it ended. */
export interface H2Reply {
  /** 0 when no response head arrived. */
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  trailers: Record<string, string>;
  /** RST_STREAM code the stream closed with (0: ended normally). */
  rstCode: number;
  /** The stream's error, if any (e.g. ERR_HTTP2_STREAM_ERROR). */
  error: string | undefined;
}

/**
 * One request on `session`: `headers` (pseudo-headers included), then `body`, then
 * `trailers` (sent with waitForTrailers). Resolves when the stream closes, normally or not.
 */
export function h2Exchange(
  session: ClientHttp2Session,
  headers: OutgoingHttpHeaders,
  options: { body?: Buffer | string; trailers?: Record<string, string> } = {},
): Promise<H2Reply> {
  const trailers = options.trailers;
  const stream = session.request(headers, trailers !== undefined ? { waitForTrailers: true } : {});
  if (trailers !== undefined) stream.on('wantTrailers', () => stream.sendTrailers(trailers));
  const reply: H2Reply = { status: 0, headers: {}, body: Buffer.alloc(0), trailers: {}, rstCode: 0, error: undefined };
  const chunks: Buffer[] = [];
  stream.on('response', (h) => {
    reply.headers = h;
    reply.status = Number(h[':status']);
  });
  stream.on('trailers', (h) => {
    for (const [name, value] of Object.entries(h)) if (typeof value === 'string') reply.trailers[name] = value;
  });
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  stream.on('error', (error: Error) => (reply.error = `${(error as NodeJS.ErrnoException).code ?? ''} ${error.message}`));
  stream.end(options.body);
  return new Promise((resolve) => {
    stream.once('close', () => {
      reply.body = Buffer.concat(chunks);
      reply.rstCode = stream.rstCode ?? 0;
      resolve(reply);
    });
  });
}
