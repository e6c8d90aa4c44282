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
 * - runH2Abuse: lib/h2_abuse.py (python3-h2's hyperframe and hpack) sending one abuse
 *   case; returns the GOAWAY, resets and statuses the proxy answered with.
 */
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
