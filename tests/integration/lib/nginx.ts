/**
 * nginx (Debian's nginx-light) as a real TLS origin: a child process of the
 * test with its own prefix, config, logs and pid file in a temp dir, one
 * process (`master_process off`), on an ephemeral port.
 *
 *   const pki = await sharedPki();
 *   const cert = await pki.server('origin', { dns: ['origin.example.test'] });
 *   const nginx = await startNginx(t, { cert, routes: { '/hello': { body: 'hi\n' } } });
 *   // upstream: `https://${nginx.address}` ... then:
 *   const [entry] = await nginx.waitForRequests(1);
 *   assert.equal(entry.ssl_server_name, 'origin.example.test');
 *
 * Every route not listed answers 200 "nginx <METHOD> <URI>\n". Each request is
 * logged as a JSON line (`requests()`): what the origin saw of the TLS
 * handshake (SNI, protocol, cipher, resumption, client certificate) and of the
 * request, so tests assert on the origin's view rather than on log text.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { IssuedCert } from './certs.ts';
import { readJsonLines } from './daemon.ts';
import { addFailureReporter, defer, makeTempDir } from './lifecycle.ts';
import { describeExit, ManagedProcess } from './process.ts';
import { freePort } from './upstreams.ts';
import { sleep, waitFor } from './wait.ts';

/** A fixed answer. Bodies are literal: `$` (an nginx variable) is refused. */
export interface NginxRoute {
  status?: number;
  body: string;
  contentType?: string;
  headers?: Record<string, string>;
}

export interface NginxOriginOptions {
  /** Serve TLS with this certificate (its file holds the chain); plaintext HTTP without. */
  cert?: Pick<IssuedCert, 'cert' | 'key'>;
  /** Offer h2 by ALPN as well as http/1.1. */
  http2?: boolean;
  /** ssl_protocols, default ['TLSv1.2', 'TLSv1.3']. */
  protocols?: Array<'TLSv1.2' | 'TLSv1.3'>;
  /** Staple this DER OCSP response (Pki.ocsp). */
  ocsp?: string;
  /** Require a client certificate that chains to this CA (PEM path). */
  clientCa?: string;
  /** Expect a PROXY protocol (v1 or v2) header before each connection (`listen ... proxy_protocol`). */
  proxyProtocol?: boolean;
  /** Fixed answers by exact path. */
  routes?: Record<string, NginxRoute>;
  /** Files served as is at /files/<name> (e.g. a bulk download). */
  files?: Record<string, Buffer>;
  host?: string;
}

/** One access-log line: the origin's view of a request and its connection. */
export interface NginxRequest {
  method: string;
  uri: string;
  protocol: string;
  status: number;
  host: string;
  /** The connection serial number and how many requests it has carried. */
  connection: number;
  connection_requests: number;
  /** "" on plaintext. */
  ssl_server_name: string;
  ssl_protocol: string;
  ssl_cipher: string;
  ssl_session_reused: string;
  /** RFC 2253 subject of the client certificate, "" without one. */
  ssl_client_s_dn: string;
  ssl_client_verify: string;
  headers: { via: string; x_forwarded_for: string; user_agent: string };
  body_bytes_sent: number;
  /** What the connection's PROXY header said ("" without proxyProtocol). */
  proxy_protocol: { addr: string; port: string; server_addr: string; server_port: string };
}

const LOG_FORMAT = [
  'method:$request_method',
  'uri:$request_uri',
  'protocol:$server_protocol',
  'status:$status',
  'host:$host',
  'connection:$connection',
  'connection_requests:$connection_requests',
  'ssl_server_name:$ssl_server_name',
  'ssl_protocol:$ssl_protocol',
  'ssl_cipher:$ssl_cipher',
  'ssl_session_reused:$ssl_session_reused',
  'ssl_client_s_dn:$ssl_client_s_dn',
  'ssl_client_verify:$ssl_client_verify',
  'via:$http_via',
  'x_forwarded_for:$http_x_forwarded_for',
  'user_agent:$http_user_agent',
  'body_bytes_sent:$body_bytes_sent',
  'proxy_protocol_addr:$proxy_protocol_addr',
  'proxy_protocol_port:$proxy_protocol_port',
  'proxy_protocol_server_addr:$proxy_protocol_server_addr',
  'proxy_protocol_server_port:$proxy_protocol_server_port',
];

/** `"key":"$var",...` as nginx writes it (escape=json); numbers are converted when read. */
const jsonLogFormat = (): string => `{${LOG_FORMAT.map((f) => f.split(':')).map(([k, v]) => `"${k!}":"${v!}"`).join(',')}}`;

function quote(text: string): string {
  if (text.includes('$')) throw new Error(`nginx route bodies are literal: no "$" allowed (${JSON.stringify(text)})`);
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

function routeBlock(path: string, route: NginxRoute): string {
  const headers = Object.entries(route.headers ?? {}).map(([k, v]) => `add_header ${k} ${quote(v)} always; `).join('');
  return `    location = ${path} { default_type ${route.contentType ?? 'text/plain'}; ${headers}return ${route.status ?? 200} ${quote(route.body)}; }`;
}

function nginxConfig(dir: string, host: string, port: number, options: NginxOriginOptions): string {
  const tls = options.cert;
  const flags = `${tls ? ' ssl' : ''}${options.http2 === true ? ' http2' : ''}${options.proxyProtocol === true ? ' proxy_protocol' : ''}`;
  const listen = `listen ${host}:${port}${flags};`;
  const tlsLines = tls
    ? [
        `    ssl_certificate ${tls.cert};`,
        `    ssl_certificate_key ${tls.key};`,
        `    ssl_protocols ${(options.protocols ?? ['TLSv1.2', 'TLSv1.3']).join(' ')};`,
        '    ssl_session_cache shared:origin:1m;',
        ...(options.ocsp !== undefined ? ['    ssl_stapling on;', `    ssl_stapling_file ${options.ocsp};`] : []),
        ...(options.clientCa !== undefined ? [`    ssl_client_certificate ${options.clientCa};`, '    ssl_verify_client on;'] : []),
      ]
    : [];
  const routes = Object.entries(options.routes ?? {}).map(([path, route]) => routeBlock(path, route));
  return [
    'daemon off;',
    'master_process off;',
    'worker_processes 1;',
    `pid ${join(dir, 'nginx.pid')};`,
    `error_log ${join(dir, 'error.log')} info;`,
    'events { worker_connections 1024; }',
    'http {',
    `  client_body_temp_path ${join(dir, 'client_body')};`,
    `  proxy_temp_path ${join(dir, 'proxy')};`,
    `  fastcgi_temp_path ${join(dir, 'fastcgi')};`,
    `  uwsgi_temp_path ${join(dir, 'uwsgi')};`,
    `  scgi_temp_path ${join(dir, 'scgi')};`,
    `  log_format origin escape=json '${jsonLogFormat()}';`,
    `  access_log ${join(dir, 'access.log')} origin;`,
    '  keepalive_requests 10000;',
    '  server {',
    `    ${listen}`,
    '    server_name _;',
    ...tlsLines,
    `    location /files/ { alias ${join(dir, 'files')}/; default_type application/octet-stream; }`,
    ...routes,
    '    location / { default_type text/plain; return 200 "nginx $request_method $request_uri\\n"; }',
    '  }',
    '}',
    '',
  ].join('\n');
}

export class NginxOrigin {
  constructor(
    readonly process: ManagedProcess,
    readonly dir: string,
    readonly host: string,
    readonly port: number,
    readonly tls: boolean,
  ) {}

  /** "host:port". */
  get address(): string {
    return `${this.host}:${this.port}`;
  }

  /** "https://host:port" + path (http:// without TLS). */
  url(path = '/'): string {
    return `${this.tls ? 'https' : 'http'}://${this.address}${path}`;
  }

  /** Requests logged so far, in completion order. */
  async requests(): Promise<NginxRequest[]> {
    const raw = await readJsonLines<Record<string, string>>(join(this.dir, 'access.log'), 'nginx access log');
    return raw.map((r) => ({
      method: r.method ?? '',
      uri: r.uri ?? '',
      protocol: r.protocol ?? '',
      status: Number(r.status),
      host: r.host ?? '',
      connection: Number(r.connection),
      connection_requests: Number(r.connection_requests),
      ssl_server_name: r.ssl_server_name ?? '',
      ssl_protocol: r.ssl_protocol ?? '',
      ssl_cipher: r.ssl_cipher ?? '',
      ssl_session_reused: r.ssl_session_reused ?? '',
      ssl_client_s_dn: r.ssl_client_s_dn ?? '',
      ssl_client_verify: r.ssl_client_verify ?? '',
      headers: { via: r.via ?? '', x_forwarded_for: r.x_forwarded_for ?? '', user_agent: r.user_agent ?? '' },
      body_bytes_sent: Number(r.body_bytes_sent),
      proxy_protocol: {
        addr: r.proxy_protocol_addr ?? '',
        port: r.proxy_protocol_port ?? '',
        server_addr: r.proxy_protocol_server_addr ?? '',
        server_port: r.proxy_protocol_server_port ?? '',
      },
    }));
  }

  /** Waits until at least `n` requests are logged; returns them all. */
  async waitForRequests(n: number, timeoutMs = 10_000): Promise<NginxRequest[]> {
    let last: NginxRequest[] = [];
    return waitFor(
      async () => {
        last = await this.requests();
        return last.length >= n ? last : undefined;
      },
      { timeoutMs, intervalMs: 50, what: `${n} request(s) in the nginx access log (have ${last.length})` },
    );
  }

  /** The error log (handshake failures are logged there at info level). */
  errorLog(): Promise<string> {
    return readFile(join(this.dir, 'error.log'), 'utf8').catch(() => '');
  }
}

/** True if a TCP connection to host:port is accepted. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Starts nginx for the test `t`; it is stopped (SIGTERM, then SIGKILL) at teardown. */
export async function startNginx(t: TestContext, options: NginxOriginOptions = {}): Promise<NginxOrigin> {
  const dir = await makeTempDir(t, 'ramjet-nginx-');
  const host = options.host ?? '127.0.0.1';
  await mkdir(join(dir, 'files'));
  for (const [name, bytes] of Object.entries(options.files ?? {})) await writeFile(join(dir, 'files', name), bytes);
  let failures = '';
  // nginx cannot report an ephemeral port: take a free one, retry if it was taken meanwhile.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort(host);
    const conf = join(dir, 'nginx.conf');
    await writeFile(conf, nginxConfig(dir, host, port, options));
    const proc = new ManagedProcess('nginx', ['-p', dir, '-e', join(dir, 'error.log'), '-c', conf]);
    const up = await waitFor(
      async () => {
        if (proc.exited) return 'exited';
        return (await accepts(host, port)) ? 'listening' : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 50, what: `nginx listening on ${host}:${port}` },
    ).catch((error: unknown) => String(error));
    // Someone else on the port answers the probe too: nginx then exits at bind.
    if (up === 'listening') await sleep(50);
    if (up === 'listening' && !proc.exited) {
      defer(t, `nginx ${host}:${port}`, async () => {
        const status = await proc.terminate(3_000);
        if (status.killed) throw new Error('nginx did not exit within 3 s of SIGTERM');
      });
      addFailureReporter(t, `nginx ${host}:${port} error log`, async () => `${proc.output()}${await readFile(join(dir, 'error.log'), 'utf8').catch(() => '')}`, 'live');
      return new NginxOrigin(proc, dir, host, port, options.cert !== undefined);
    }
    await proc.terminate(2_000);
    failures += `attempt ${attempt + 1} on port ${port}: ${up === 'exited' ? describeExit(proc.exitStatus!) : up}\n${proc.output()}\n`;
    if (!/Address already in use/.test(proc.output())) break; // only a lost port race is worth another try
  }
  throw new Error(`nginx did not start:\n${failures}`);
}
