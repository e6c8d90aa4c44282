/**
 * An HTTP/2 origin over TLS (node's http2.createSecureServer): what ramjet speaks to
 * when it forwards to an https:// upstream that negotiates h2 by ALPN.
 *
 *   const pki = await sharedPki();
 *   const cert = await pki.server('h2-origin', { dns: ['origin.example.test'] });
 *   const origin = await startH2Origin(t, { cert, settings: { maxConcurrentStreams: 2 } });
 *   // ... requests through ramjet to https://origin.example.test:${origin.port}/x
 *   assert.equal(origin.requests[0]!.httpVersion, '2.0');
 *   assert.equal(origin.sessions, 1);
 *
 * Records every request as its head arrives (version, :authority, method, path, the
 * session it came on, then its body, sha256 and trailers once complete), counts the
 * HTTP/2 sessions and the TLS connections, and the most streams open at once on one
 * session. `handler` runs when the head arrives (await `rec.ended` for the body); the
 * default answers 200 "<METHOD> <path> HTTP/<version>\n" with Content-Length once the
 * body is in. With `allowHTTP1` a client that does not offer h2 gets node's HTTP/1.1
 * server (its requests have session -1 and `stream` undefined).
 *
 * startH2UpstreamProxy: such an origin named origin.example.test (a certificate for that
 * name, an A record in the proxy's DNS server) behind a one-worker forward proxy that
 * verifies it against the test root, so connection counts are exact:
 *
 *   const { daemon, proxy, origin, target } = await startH2UpstreamProxy(t);
 *   await raw.send(`GET ${target('/x')} HTTP/1.1\r\nHost: ...`);   // https://origin.example.test:<port>/x
 */
import { createHash } from 'node:crypto';
import {
  constants as h2constants,
  createSecureServer,
  type Http2SecureServer,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type Http2Session,
  type IncomingHttpHeaders,
  type ServerHttp2Stream,
  type Settings,
} from 'node:http2';
import { readFile } from 'node:fs/promises';
import type { TLSSocket } from 'node:tls';
import type { TestContext } from 'node:test';
import { sharedPki, type IssuedCert } from './certs.ts';
import { mergeConfig } from './config.ts';
import { startHttpProxy, type HttpProxy, type HttpProxyOptions } from './http.ts';
import { addFailureReporter, defer } from './lifecycle.ts';
import { waitFor } from './wait.ts';

export interface H2OriginRequest {
  /** Index (0-based, in order of arrival) of the HTTP/2 session; -1 for HTTP/1.1. */
  session: number;
  /** The stream id; 0 for HTTP/1.1. */
  streamId: number;
  /** '2.0' or '1.1'. */
  httpVersion: string;
  /** :authority, or Host for HTTP/1.1. */
  authority: string;
  method: string;
  scheme: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** Request trailers (lower-cased names), once complete. */
  trailers: Record<string, string>;
  body: Buffer;
  bodySha256: string;
  complete: boolean;
  /** Resolves when the body has been read completely (also when the stream was reset). */
  ended: Promise<void>;
}

/** Called when a request's head arrives; the HTTP/2 stream is `req.stream` (undefined for HTTP/1.1). */
export type H2OriginHandler = (req: Http2ServerRequest, res: Http2ServerResponse, rec: H2OriginRequest, origin: H2Origin) => void | Promise<void>;

export interface H2OriginOptions {
  cert: Pick<IssuedCert, 'cert' | 'key'>;
  /** SETTINGS the origin sends (e.g. maxConcurrentStreams). */
  settings?: Settings;
  /** Serve HTTP/1.1 to clients that do not negotiate h2. */
  allowHTTP1?: boolean;
  handler?: H2OriginHandler;
  host?: string;
}

/** The default answer, once the body is in: 200 "<METHOD> <path> HTTP/<version>\n". */
export const defaultH2Reply: H2OriginHandler = async (req, res, rec) => {
  await rec.ended;
  const body = `${rec.method} ${rec.path} HTTP/${rec.httpVersion}\n`;
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
  res.end(body);
  void req;
};

/**
 * Answers once the request body is in: 200, `parts` as DATA without Content-Length,
 * then `trailers` (node sends them in a HEADERS frame when the stream asks for them,
 * waitForTrailers; over HTTP/1.1, chunked with a trailer section).
 */
export async function replyWithTrailers(res: Http2ServerResponse, rec: H2OriginRequest, parts: Array<Buffer | string>, trailers: Record<string, string>): Promise<void> {
  await rec.ended;
  res.writeHead(200, { 'content-type': 'text/plain', trailer: Object.keys(trailers).join(', ') });
  for (const part of parts) res.write(part);
  res.addTrailers(trailers);
  res.end();
}

export class H2Origin {
  readonly requests: H2OriginRequest[] = [];
  /** HTTP/2 sessions opened by clients. */
  sessions = 0;
  /** TLS connections accepted (HTTP/2 or HTTP/1.1). */
  connections = 0;
  /** The most streams open at once on any one session. */
  maxConcurrentStreams = 0;
  /** Sessions in order of arrival (index = H2OriginRequest.session). */
  readonly sessionList: Http2Session[] = [];
  /** Streams opened on each session, by session index (0 for a connection that carried none). */
  readonly streamsPerSession: number[] = [];
  private readonly openStreams = new Map<Http2Session, number>();
  private readonly sockets = new Set<TLSSocket>();

  private constructor(
    private readonly server: Http2SecureServer,
    readonly host: string,
    readonly port: number,
  ) {}

  static async listen(options: H2OriginOptions): Promise<H2Origin> {
    const server = createSecureServer({
      cert: await readFile(options.cert.cert),
      key: await readFile(options.cert.key),
      allowHTTP1: options.allowHTTP1 ?? false,
      ...(options.settings !== undefined ? { settings: options.settings } : {}),
    });
    const host = options.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port: 0, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('unexpected server address');
    const origin = new H2Origin(server, host, address.port);
    origin.attach(options.handler ?? defaultH2Reply);
    return origin;
  }

  private attach(handler: H2OriginHandler): void {
    this.server.on('secureConnection', (socket: TLSSocket) => {
      this.connections++;
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    this.server.on('session', (session: Http2Session) => {
      this.sessions++;
      this.sessionList.push(session);
      this.streamsPerSession.push(0);
      this.openStreams.set(session, 0);
    });
    this.server.on('stream', (stream: ServerHttp2Stream) => {
      const session = stream.session!; // gone from the stream by the time it closes
      this.streamsPerSession[this.sessionList.indexOf(session)]! += 1;
      const open = (this.openStreams.get(session) ?? 0) + 1;
      this.openStreams.set(session, open);
      this.maxConcurrentStreams = Math.max(this.maxConcurrentStreams, open);
      stream.once('close', () => this.openStreams.set(session, (this.openStreams.get(session) ?? 1) - 1));
    });
    this.server.on('request', (req: Http2ServerRequest, res: Http2ServerResponse) => {
      const rec = this.record(req);
      Promise.resolve()
        .then(() => handler(req, res, rec, this))
        .catch(() => (req.stream as ServerHttp2Stream | undefined)?.close(h2constants.NGHTTP2_INTERNAL_ERROR) ?? req.socket.destroy());
    });
  }

  private record(req: Http2ServerRequest): H2OriginRequest {
    const h2 = req.httpVersion === '2.0';
    const chunks: Buffer[] = [];
    let finish: () => void = () => {};
    const rec: H2OriginRequest = {
      session: h2 ? this.sessionList.indexOf(req.stream.session!) : -1,
      streamId: h2 ? (req.stream.id ?? 0) : 0,
      httpVersion: req.httpVersion,
      authority: h2 ? req.authority : (req.headers.host ?? ''),
      method: req.method,
      scheme: h2 ? req.scheme : 'https',
      path: req.url,
      headers: req.headers,
      trailers: {},
      body: Buffer.alloc(0),
      bodySha256: '',
      complete: false,
      ended: new Promise<void>((resolve) => (finish = resolve)),
    };
    this.requests.push(rec);
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('error', () => {});
    req.on('end', () => {
      rec.body = Buffer.concat(chunks);
      rec.bodySha256 = createHash('sha256').update(rec.body).digest('hex');
      rec.complete = true;
      for (const [name, value] of Object.entries(req.trailers ?? {})) if (typeof value === 'string') rec.trailers[name] = value;
      finish();
    });
    req.on('close', () => finish());
    return rec;
  }

  /** "host:port". */
  get address(): string {
    return `${this.host}:${this.port}`;
  }

  /** Requests whose path is `path`, in order of arrival. */
  requestsFor(path: string): H2OriginRequest[] {
    return this.requests.filter((r) => r.path === path);
  }

  /** Waits until `n` requests arrived completely; returns them all. */
  async waitForRequests(n: number, timeoutMs = 10_000): Promise<H2OriginRequest[]> {
    await waitFor(() => this.requests.filter((r) => r.complete).length >= n, {
      timeoutMs,
      what: `${n} complete request(s) at the h2 origin ${this.address} (have ${this.requests.length})`,
    });
    return this.requests;
  }

  /** One line per request, for failure reports. */
  describe(): string {
    const lines = this.requests.map(
      (r) => `session ${r.session} stream ${r.streamId} HTTP/${r.httpVersion} ${r.method} ${r.scheme}://${r.authority}${r.path} body=${r.body.length}${r.complete ? '' : ' (incomplete)'}`,
    );
    const head = `h2 origin ${this.address}: ${this.connections} TLS connection(s), ${this.sessions} h2 session(s) with ${JSON.stringify(this.streamsPerSession)} stream(s), max ${this.maxConcurrentStreams} concurrent stream(s)`;
    return [head, ...lines].join('\n');
  }

  close(): Promise<void> {
    for (const session of this.sessionList) session.destroy();
    for (const socket of this.sockets) socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** Starts an HTTP/2 TLS origin for the test `t` (127.0.0.1, ephemeral port). */
export async function startH2Origin(t: TestContext, options: H2OriginOptions): Promise<H2Origin> {
  const origin = await H2Origin.listen(options);
  defer(t, `h2 origin ${origin.address}`, () => origin.close());
  addFailureReporter(t, `h2 origin ${origin.address} requests`, () => origin.describe(), 'live');
  return origin;
}

/** The name h2 origins are reached by through startH2UpstreamProxy. */
export const H2_ORIGIN_NAME = 'origin.example.test';

let originCert: Promise<IssuedCert> | undefined;

/** A certificate for H2_ORIGIN_NAME from sharedPki(), made once per test file. */
export function h2OriginCert(): Promise<IssuedCert> {
  originCert ??= sharedPki().then((pki) => pki.server('h2-origin', { dns: [H2_ORIGIN_NAME] }));
  return originCert;
}

export interface H2UpstreamProxy extends HttpProxy {
  origin: H2Origin;
  /** "https://origin.example.test:<port>" + path: an absolute-form target (or :authority + :path). */
  target: (path: string) => string;
}

/**
 * An h2 origin (`origin` options) and a one-worker ramjetd with an http endpoint 'fwd'
 * (`proxy` options merged over: upstream_tls.ca = the test root, an A record for the origin).
 */
export async function startH2UpstreamProxy(t: TestContext, options: { origin?: Partial<H2OriginOptions>; proxy?: HttpProxyOptions } = {}): Promise<H2UpstreamProxy> {
  const pki = await sharedPki();
  const origin = await startH2Origin(t, { cert: await h2OriginCert(), ...options.origin });
  const base: HttpProxyOptions = {
    endpoint: { upstream_tls: { ca: pki.ca } },
    dnsRecords: { [H2_ORIGIN_NAME]: { a: ['127.0.0.1'] } },
    config: { server: { workers: 1 } },
  };
  const proxy = await startHttpProxy(t, mergeConfig(base as Record<string, unknown>, (options.proxy ?? {}) as Record<string, unknown>) as HttpProxyOptions);
  return { ...proxy, origin, target: (path: string) => `https://${H2_ORIGIN_NAME}:${origin.port}${path}` };
}
