/**
 * The daemon's YAML config, as typed objects. Tests build a config object and
 * the framework writes it as JSON (JSON is valid YAML). Every section is
 * optional; unknown keys can be added (the daemon validates them, not us).
 * Durations are strings with units ("300ms", "2s", "1h").
 */

export type Duration = `${number}${'ms' | 's' | 'm' | 'h'}`;

export interface ServerConfig {
  workers?: number | 'auto';
  drain_timeout?: Duration;
  /** Filled in by startDaemon. */
  admin_socket?: string;
  /** Filled in by startDaemon. */
  ready_file?: string;
  crash_dir?: string;
  [key: string]: unknown;
}

export interface LoggingConfig {
  level?: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  access_log?: 'text' | 'json' | 'off';
  access_log_path?: string;
  [key: string]: unknown;
}

export interface DnsConfig {
  /** "ip:port" of each resolver. */
  servers?: string[];
  fallback_servers?: string[];
  timeout?: Duration;
  attempts?: number;
  cache_size?: number;
  min_ttl?: Duration;
  max_ttl?: Duration;
  negative_ttl?: Duration;
  [key: string]: unknown;
}

export interface EgressConfig {
  /** CIDRs that the private-range guard lets through. */
  allow_private?: string[];
  connect_timeout?: Duration;
  happy_eyeballs?: {
    resolution_delay?: Duration;
    connection_attempt_delay?: Duration;
    prefer?: 'ipv6' | 'ipv4';
  };
  [key: string]: unknown;
}

/** One certificate of a TLS endpoint: PEM paths (the cert file carries the chain). */
export interface TlsCertificateConfig {
  cert: string;
  key: string;
  /** A DER OCSP response to staple. */
  ocsp?: string;
}

/** `tls:` of an endpoint: it terminates TLS. */
export interface TlsServerConfig {
  /** Chosen by SNI (exact, then wildcard); the first is the default. */
  certificates: TlsCertificateConfig[];
  /** Server preference order, e.g. ['h2', 'http/1.1']. */
  alpn?: string[];
  min_version?: '1.2' | '1.3';
  max_version?: '1.2' | '1.3';
  /** An unknown name fails the handshake instead of getting the default certificate. */
  strict_sni?: boolean;
  client_auth?: { mode: 'off' | 'optional' | 'required'; ca?: string };
  session_tickets?: { enabled?: boolean; rotate?: Duration };
  handshake_timeout?: Duration;
  /** NSS key log (for Wireshark); off by default. */
  keylog_file?: string;
  [key: string]: unknown;
}

/** `upstream_tls:` of an endpoint: TLS towards the upstream (tcp) or https:// upstreams (http). */
export interface UpstreamTlsConfig {
  /** Default: the target host name. */
  sni?: string;
  verify?: boolean;
  /** 'system' (/etc/ssl/certs/ca-certificates.crt) or a PEM path. */
  ca?: string;
  alpn?: string[];
  client_cert?: { cert: string; key: string };
  [key: string]: unknown;
}

/** A `tls:` section with `certs` (in order: the first is the default) and other settings. */
export function serverTls(certs: ReadonlyArray<{ cert: string; key: string; ocsp?: string }>, extra: Partial<TlsServerConfig> = {}): TlsServerConfig {
  return { certificates: certs.map((c) => ({ cert: c.cert, key: c.key, ...(c.ocsp !== undefined ? { ocsp: c.ocsp } : {}) })), ...extra };
}

export interface EndpointConfig {
  name: string;
  /** "ip:port"; port 0 binds an ephemeral port (see DaemonHandle.endpoint). */
  listen: string;
  onramp: 'tcp' | (string & {});
  /**
   * tcp: "host:port"; host may be an IP literal or a name resolved through `dns`.
   * http (optional, reverse-proxy mode): "http://host:port" or "https://host:port".
   */
  upstream?: string;
  connect_timeout?: Duration;
  idle_timeout?: Duration;
  max_lifetime?: Duration;
  relay?: 'splice' | 'buffer' | 'auto';
  tls?: TlsServerConfig;
  upstream_tls?: UpstreamTlsConfig;
  /** Per-endpoint settings of the application. */
  app?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface RamjetConfig {
  server?: ServerConfig;
  logging?: LoggingConfig;
  dns?: DnsConfig;
  egress?: EgressConfig;
  telemetry?: {
    hook_trace?: boolean;
    /** "ip:port" of GET /metrics; "" disables it (startDaemon picks 127.0.0.1:0). */
    metrics?: { listen?: string };
    /** The audit log file; "" disables it. */
    audit_log?: { path?: string };
    [key: string]: unknown;
  };
  endpoints?: EndpointConfig[];
  /** The application's own settings. */
  app?: Record<string, unknown>;
  [key: string]: unknown;
}

/** A plain TCP endpoint on 127.0.0.1 and an ephemeral port. */
export function tcpEndpoint(name: string, upstream: string, extra: Partial<EndpointConfig> = {}): EndpointConfig {
  return { name, listen: '127.0.0.1:0', onramp: 'tcp', upstream, ...extra };
}

/** A UDP endpoint (docs/udp.md) on 127.0.0.1 and an ephemeral port. */
export function udpEndpoint(name: string, upstream: string, extra: Partial<EndpointConfig> = {}): EndpointConfig {
  return { name, listen: '127.0.0.1:0', onramp: 'udp', upstream, ...extra };
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Deep-merges plain objects; arrays and scalars in `override` replace those in `base`. */
export function mergeConfig<T extends Record<string, unknown>>(base: T, override: Record<string, unknown>): T {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) {
    if (value === undefined) continue;
    const current = out[key];
    out[key] = isPlainObject(current) && isPlainObject(value) ? mergeConfig(current, value) : value;
  }
  return out as T;
}
