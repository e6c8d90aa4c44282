/**
 * Client for the daemon's admin API: HTTP/1.1 + JSON over a unix socket.
 */
import { request } from 'node:http';

/** Counter names the daemon must export (the admin API may export more). */
export const COUNTER_NAMES = [
  'connections_accepted',
  'connections_active',
  'connections_closed',
  'ingress_blocked',
  'egress_blocked',
  'egress_refused_private',
  'dns_queries',
  'dns_cache_hits',
  'dns_cache_misses',
  'dns_failures',
  'dns_fallback_used',
  'connect_attempts',
  'connect_failures',
  'connect_timeouts',
  'idle_timeouts',
  'max_lifetime_closes',
  'drain_forced_closes',
  'bytes_from_client',
  'bytes_to_client',
  'accept_paused',
] as const;

export type CounterName = (typeof COUNTER_NAMES)[number];

export type Counters = Record<CounterName, number> & Record<string, number>;

/** One hook invocation, as recorded by the hook trace (telemetry.hook_trace). */
export interface HookEvent {
  seq: number;
  hook: HookName | (string & {});
  /** Flow (connection) id; 0 or absent for hooks outside a connection (lifecycle.*). */
  flow?: number;
  endpoint?: string;
  /** One word: allow, block, direct, continue, redirect, refuse, guarded, ... */
  decision?: string;
  /** What the decision is about: a reason, an address, a list of addresses. */
  detail?: string;
  duration_us?: number;
  [key: string]: unknown;
}

export type HookName =
  | 'lifecycle.start'
  | 'ingress.handle_connection'
  | 'egress.handle_connection'
  | 'egress.dns_resolve_override'
  | 'egress.handle_upstream_ips'
  | 'egress.tcp_connect_override'
  | 'egress.udp_connect_override'
  | 'egress.handle_connection_established'
  | 'ingress.handle_connection_close'
  | 'lifecycle.stop';

export class AdminError extends Error {
  override name = 'AdminError';
  constructor(
    message: string,
    readonly status?: number,
    readonly body?: string,
  ) {
    super(message);
  }
}

export interface AdminResponse {
  status: number;
  body: string;
}

/** One HTTP request to the admin socket. */
export function adminRequest(socketPath: string, method: string, path: string, body?: unknown, timeoutMs = 5_000): Promise<AdminResponse> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request(
      {
        socketPath,
        method,
        path,
        agent: false,
        headers: { host: 'ramjet', accept: 'application/json', ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}) },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new AdminError(`admin ${method} ${path} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** GET `path` and parse the JSON body; non-2xx statuses throw an AdminError. */
export async function adminGetJson<T>(socketPath: string, path: string): Promise<T> {
  const res = await adminRequest(socketPath, 'GET', path);
  if (res.status < 200 || res.status > 299) throw new AdminError(`admin GET ${path}: HTTP ${res.status}: ${res.body}`, res.status, res.body);
  try {
    return JSON.parse(res.body) as T;
  } catch {
    throw new AdminError(`admin GET ${path}: body is not JSON: ${res.body.slice(0, 500)}`, res.status, res.body);
  }
}
