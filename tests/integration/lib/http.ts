/**
 * Helpers for the HTTP forward proxy (`onramp: http` endpoints).
 *
 *   const { daemon, proxy, dns } = await startHttpProxy(t, { dnsRecords: { 'origin.test': { a: ['127.0.0.1'] } } });
 *   const origin = await startHttpOrigin(t, { routes: { '/big': (req, res) => void streamRandomBody(res, 1 << 20) } });
 *   const raw = await rawHttpClient(t, proxy);
 *   await raw.send(`GET http://origin.test:${origin.port}/ HTTP/1.1\r\nHost: x\r\n\r\n`);
 *   const res = await raw.response();           // parsed from the exact bytes received
 *   assertProxyError(res, 502, 'dns_error');     // for answers the proxy gives itself
 *
 * - startHttpOrigin: a node:http origin server that records every request it
 *   receives (method, target, headers as received, trailers, body bytes or their
 *   sha256) and the connections it accepted; routes can stream large bodies,
 *   reply chunked with trailers, reply without framing, send garbage or close.
 * - RawHttpClient: exact bytes out, responses parsed from exact bytes in
 *   (Content-Length, chunked with trailers, until-close), plus how the peer closed.
 * - requestViaProxy: node's http client through the proxy (absolute-form), with
 *   an optional keep-alive Agent and streamed random upload/download bodies.
 * - runCurl: curl with a clean proxy environment, response heads and body.
 * - startHttpProxy: a ramjetd with one http endpoint whose resolver points at a
 *   framework DNS server, so that no name is ever looked up outside loopback.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  createServer,
  request as httpRequest,
  type Agent,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { connect, type Address, type PeerClose, type TcpClient } from './client.ts';
import { mergeConfig, type EndpointConfig, type RamjetConfig } from './config.ts';
import { startDaemon, type DaemonHandle } from './daemon.ts';
import { startDnsServer, type DnsRecordSet, type DnsServer } from './dns_server.ts';
import { addFailureReporter, defer, makeTempDir } from './lifecycle.ts';
import { run } from './process.ts';
import { StopWaiting, waitFor } from './wait.ts';

// ---------------------------------------------------------------- config / daemon

/** An `onramp: http` endpoint on 127.0.0.1 and an ephemeral port (http endpoints take no upstream). */
export function httpEndpoint(name: string, extra: Partial<EndpointConfig> = {}): EndpointConfig {
  return { name, listen: '127.0.0.1:0', onramp: 'http', ...extra };
}

export interface HttpProxyOptions {
  /** Extra endpoint settings (http limits, auth, timeouts). */
  endpoint?: Partial<EndpointConfig>;
  /** Extra daemon config, merged over the defaults here. */
  config?: RamjetConfig;
  /** Records of the framework DNS server the daemon resolves through. */
  dnsRecords?: Record<string, DnsRecordSet>;
  /** Let the egress guard through to loopback (default true). */
  allowLoopback?: boolean;
}

export interface HttpProxy {
  daemon: DaemonHandle;
  /** Where the http endpoint listens. */
  proxy: Address;
  /** The DNS server the daemon resolves names through. */
  dns: DnsServer;
  /** "http://host:port" of the proxy (for curl -x). */
  url: string;
}

/**
 * A ramjetd with one http endpoint named 'fwd'. Its resolver always points at a
 * framework DNS server (300 ms timeout, one attempt), so names used by a test
 * never leave 127.0.0.0/8.
 */
export async function startHttpProxy(t: TestContext, options: HttpProxyOptions = {}): Promise<HttpProxy> {
  const dns = await startDnsServer(t, { records: options.dnsRecords ?? {} });
  const base: RamjetConfig = {
    dns: { servers: [dns.address], timeout: '300ms', attempts: 1, min_ttl: '0s', negative_ttl: '1s' },
    ...(options.allowLoopback === false ? {} : { egress: { allow_private: ['127.0.0.0/8'] } }),
    endpoints: [httpEndpoint('fwd', options.endpoint ?? {})],
  };
  const config = mergeConfig(base, options.config ?? {});
  config.dns = { ...config.dns, servers: [dns.address] }; // never a resolver outside loopback
  const daemon = await startDaemon(t, { config });
  const proxy = daemon.endpoint('fwd');
  return { daemon, proxy, dns, url: `http://${proxy.host}:${proxy.port}` };
}

/** "ramjet; error=dns_error; details=\"...\"" -> its parts (RFC 9209). */
export interface ProxyStatus {
  proxy: string;
  error?: string;
  details?: string;
  params: Record<string, string>;
}

export function parseProxyStatus(value: string | undefined): ProxyStatus | undefined {
  if (value === undefined) return undefined;
  const [proxy, ...rest] = splitOutsideQuotes(value, ';');
  const params: Record<string, string> = {};
  for (const part of rest) {
    const eq = part.indexOf('=');
    const key = (eq < 0 ? part : part.slice(0, eq)).trim();
    let val = eq < 0 ? '?1' : part.slice(eq + 1).trim();
    if (val.startsWith('"') && val.endsWith('"')) val = val.slice(1, -1).replace(/\\(.)/g, '$1');
    params[key] = val;
  }
  return { proxy: (proxy ?? '').trim(), error: params.error, details: params.details, params };
}

function splitOutsideQuotes(text: string, sep: string): string[] {
  const out: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted && c === '\\' && i + 1 < text.length) {
      current += c + text[++i]!;
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (c === sep && !quoted) {
      out.push(current);
      current = '';
    } else {
      current += c;
    }
  }
  out.push(current);
  return out;
}

/**
 * Asserts that `res` is an answer the proxy gave itself: `status`, a
 * Proxy-Status naming ramjet and `errorType`, Connection: close, and a
 * text/plain body of exactly Content-Length bytes.
 */
export function assertProxyError(res: HttpResponse, status: number, errorType: string, what = ''): ProxyStatus {
  const ctx = `${what ? `${what}: ` : ''}${res.summary()}`;
  assert.equal(res.status, status, `status: ${ctx}`);
  const ps = parseProxyStatus(res.get('proxy-status'));
  assert.ok(ps !== undefined, `no Proxy-Status field: ${ctx}`);
  assert.equal(ps.proxy, 'ramjet', `Proxy-Status names the proxy: ${ctx}`);
  assert.equal(ps.error, errorType, `Proxy-Status error type: ${ctx}`);
  assert.ok(tokens(res.get('connection')).includes('close'), `Connection: close expected: ${ctx}`);
  assert.match(res.get('content-type') ?? '', /^text\/plain/, `content-type: ${ctx}`);
  assert.equal(res.framing, 'content-length', `framing: ${ctx}`);
  assert.ok(res.body.length > 0, `empty error body: ${ctx}`);
  return ps;
}

/** Comma-separated list elements, trimmed and lower-cased. */
export function tokens(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '');
}

// ---------------------------------------------------------------- origin server

export interface RecordedRequest {
  /** Index (0-based, accept order) of the origin connection it arrived on. */
  connection: number;
  method: string;
  /** The request-target exactly as received (origin-form for a proxied request). */
  url: string;
  httpVersion: string;
  /** Lower-cased, node-merged headers. */
  headers: IncomingHttpHeaders;
  /** [name, value, name, value, ...] as received (case and duplicates kept). */
  rawHeaders: string[];
  /** Trailer fields of a chunked body (lower-cased names). */
  trailers: Record<string, string>;
  /** The first `keepBodyBytes` bytes of the body. */
  body: Buffer;
  bodyLength: number;
  /** sha256 (hex) of the whole body; final once `complete`. */
  bodySha256: string;
  /** The whole body arrived. */
  complete: boolean;
}

export type OriginHandler = (req: IncomingMessage, res: ServerResponse, rec: RecordedRequest) => void | Promise<void>;

export interface HttpOriginOptions {
  host?: string;
  port?: number;
  /** Handlers by path (the target without its query); others get defaultReply. */
  routes?: Record<string, OriginHandler>;
  /** Keep at most this many body bytes per request (default 1 MiB); the sha256 covers all. */
  keepBodyBytes?: number;
}

/**
 * The default answer: 200, text/plain, Content-Length, body "<METHOD> <target>\n".
 * Handlers run once the request body has been read completely.
 */
export const defaultReply: OriginHandler = (req, res) => {
  const body = `${req.method ?? ''} ${req.url ?? ''}\n`;
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
  res.end(body);
};

export class HttpOrigin {
  /** Requests in arrival order (recorded as soon as their head arrives). */
  readonly requests: RecordedRequest[] = [];
  /** Connections accepted so far. */
  connections = 0;
  /** Parse errors node reported on client connections (e.g. smuggled bytes). */
  readonly clientErrors: string[] = [];
  private readonly sockets = new Map<Socket, number>();
  readonly routes: Map<string, OriginHandler>;

  private constructor(
    private readonly server: Server,
    readonly host: string,
    readonly port: number,
    routes: Record<string, OriginHandler>,
  ) {
    this.routes = new Map(Object.entries(routes));
  }

  static async listen(options: HttpOriginOptions = {}): Promise<HttpOrigin> {
    const host = options.host ?? '127.0.0.1';
    const keep = options.keepBodyBytes ?? 1 << 20;
    let self: HttpOrigin | undefined;
    const server = createServer({ keepAliveTimeout: 30_000, requestTimeout: 0, headersTimeout: 30_000 }, (req, res) => {
      const origin = self!;
      const rec: RecordedRequest = {
        connection: origin.sockets.get(req.socket) ?? -1,
        method: req.method ?? '',
        url: req.url ?? '',
        httpVersion: req.httpVersion,
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        trailers: {},
        body: Buffer.alloc(0),
        bodyLength: 0,
        bodySha256: '',
        complete: false,
      };
      origin.requests.push(rec);
      const hash = createHash('sha256');
      const kept: Buffer[] = [];
      let keptLength = 0;
      req.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        rec.bodyLength += chunk.length;
        if (keptLength < keep) {
          const part = chunk.subarray(0, keep - keptLength);
          kept.push(part);
          keptLength += part.length;
        }
      });
      req.on('error', () => {});
      req.on('end', () => {
        rec.body = Buffer.concat(kept);
        rec.bodySha256 = hash.digest('hex');
        rec.complete = true;
        for (const [name, value] of Object.entries(req.trailers)) if (value !== undefined) rec.trailers[name] = value;
        const path = (req.url ?? '').split('?')[0] ?? '';
        const handler = origin.routes.get(path) ?? defaultReply;
        Promise.resolve()
          .then(() => handler(req, res, rec))
          .catch(() => req.socket.destroy());
      });
    });
    server.on('connection', (socket: Socket) => {
      const origin = self!;
      origin.sockets.set(socket, origin.connections++);
      socket.on('close', () => origin.sockets.delete(socket));
    });
    server.on('clientError', (error: Error, socket: Socket) => {
      self?.clientErrors.push(error.message);
      socket.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port: options.port ?? 0, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('unexpected server address');
    self = new HttpOrigin(server, host, address.port, options.routes ?? {});
    return self;
  }

  /** "host:port". */
  get address(): string {
    return `${this.host}:${this.port}`;
  }

  /** "http://host:port" + path. */
  url(path = '/'): string {
    return `http://${this.address}${path}`;
  }

  /** Connections currently open. */
  get openConnections(): number {
    return this.sockets.size;
  }

  route(path: string, handler: OriginHandler): void {
    this.routes.set(path, handler);
  }

  /** Waits until `n` requests arrived completely; returns them all. */
  async waitForRequests(n: number, timeoutMs = 10_000): Promise<RecordedRequest[]> {
    await waitFor(() => this.requests.filter((r) => r.complete).length >= n, {
      timeoutMs,
      what: `${n} complete request(s) at the origin ${this.address} (have ${this.requests.length})`,
    });
    return this.requests;
  }

  /** One line per request, for failure reports. */
  describe(): string {
    const lines = this.requests.map(
      (r) => `#conn${r.connection} ${r.method} ${r.url} HTTP/${r.httpVersion} body=${r.bodyLength}${r.complete ? '' : ' (incomplete)'} headers=${JSON.stringify(r.rawHeaders)}`,
    );
    return [`origin ${this.address}: ${this.connections} connection(s), client errors ${JSON.stringify(this.clientErrors)}`, ...lines].join('\n');
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** Starts a recording HTTP origin for the test `t` (127.0.0.1, ephemeral port). */
export async function startHttpOrigin(t: TestContext, options: HttpOriginOptions = {}): Promise<HttpOrigin> {
  const origin = await HttpOrigin.listen(options);
  defer(t, `http origin ${origin.address}`, () => origin.close());
  addFailureReporter(t, `http origin ${origin.address} requests`, () => origin.describe(), 'live');
  return origin;
}

/** Writes `total` random bytes in `chunkSize` pieces honouring back-pressure; resolves with their sha256. */
export async function writeRandom(stream: NodeJS.WritableStream, total: number, chunkSize = 256 * 1024): Promise<string> {
  const hash = createHash('sha256');
  let left = total;
  while (left > 0) {
    const chunk = randomBytes(Math.min(chunkSize, left));
    hash.update(chunk);
    left -= chunk.length;
    if (!stream.write(chunk)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = (): void => {
          stream.removeListener('error', onError);
          resolve();
        };
        const onError = (error: Error): void => {
          stream.removeListener('drain', onDrain);
          reject(error);
        };
        stream.once('drain', onDrain);
        stream.once('error', onError);
      });
    }
  }
  return hash.digest('hex');
}

/**
 * Replies 200 with `total` random bytes, streamed (Content-Length framing, or
 * chunked if `chunked`); resolves with the sha256 of what was sent.
 */
export async function streamRandomBody(res: ServerResponse, total: number, options: { chunked?: boolean; headers?: OutgoingHttpHeaders } = {}): Promise<string> {
  res.writeHead(200, { 'content-type': 'application/octet-stream', ...(options.chunked === true ? {} : { 'content-length': total }), ...options.headers });
  const digest = await writeRandom(res, total);
  await new Promise<void>((resolve) => res.end(resolve));
  return digest;
}

/** Replies 200 chunked: each of `parts` as written, then `trailers` (announced in Trailer). */
export function replyChunked(res: ServerResponse, parts: Array<Buffer | string>, trailers: Record<string, string> = {}, headers: OutgoingHttpHeaders = {}): void {
  const names = Object.keys(trailers);
  res.writeHead(200, { 'content-type': 'application/octet-stream', ...(names.length > 0 ? { trailer: names.join(', ') } : {}), ...headers });
  for (const part of parts) res.write(part);
  if (names.length > 0) res.addTrailers(trailers);
  res.end();
}

/**
 * Bypasses node's response writer: writes `bytes` straight to the connection,
 * then ends it ('end', default), resets it ('destroy') or leaves it open ('keep').
 */
export function replyRaw(req: IncomingMessage, bytes: Buffer | string, then: 'end' | 'destroy' | 'keep' = 'end'): void {
  const socket = req.socket;
  if (then === 'end') socket.end(bytes);
  else if (then === 'destroy') socket.write(bytes, () => socket.destroy());
  else socket.write(bytes);
}

/** A response without framing: a head with neither Content-Length nor chunked, the body, then the close. */
export function replyUntilClose(req: IncomingMessage, body: Buffer | string, extraHead = 'Content-Type: text/plain\r\n'): void {
  replyRaw(req, Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\n${extraHead}\r\n`), Buffer.isBuffer(body) ? body : Buffer.from(body)]), 'end');
}

/** Closes the connection without sending a byte. */
export function closeWithoutResponse(req: IncomingMessage): void {
  req.socket.end();
}

// ---------------------------------------------------------------- parsing responses

export type Framing = 'content-length' | 'chunked' | 'close' | 'none';

export class HttpResponse {
  constructor(
    readonly version: string,
    readonly status: number,
    readonly reason: string,
    /** Fields in arrival order, names as received. */
    readonly headers: Array<[string, string]>,
    readonly body: Buffer,
    readonly trailers: Array<[string, string]>,
    readonly framing: Framing,
    /** The exact bytes of this response. */
    readonly raw: Buffer,
  ) {}

  /** All values of `name` (case-insensitive), in order. */
  getAll(name: string): string[] {
    const lower = name.toLowerCase();
    return this.headers.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v);
  }

  /** The values of `name` joined with ", ", or undefined. */
  get(name: string): string | undefined {
    const all = this.getAll(name);
    return all.length === 0 ? undefined : all.join(', ');
  }

  trailer(name: string): string | undefined {
    const lower = name.toLowerCase();
    return this.trailers.find(([n]) => n.toLowerCase() === lower)?.[1];
  }

  /** The head and the start of the body, for assertion messages. */
  summary(): string {
    const text = this.raw.subarray(0, 600).toString('latin1');
    return JSON.stringify(text + (this.raw.length > 600 ? '...' : ''));
  }
}

export class HttpParseError extends Error {
  override name = 'HttpParseError';
}

const CRLF = Buffer.from('\r\n');

function parseHead(text: string): { version: string; status: number; reason: string; headers: Array<[string, string]> } {
  const lines = text.split('\r\n');
  const statusLine = lines.shift() ?? '';
  const m = /^(HTTP\/\d\.\d) (\d{3})(?: (.*))?$/.exec(statusLine);
  if (m === null) throw new HttpParseError(`bad status line ${JSON.stringify(statusLine)}`);
  const headers: Array<[string, string]> = [];
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new HttpParseError(`bad field line ${JSON.stringify(line)}`);
    headers.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
  }
  return { version: m[1]!, status: Number(m[2]), reason: m[3] ?? '', headers };
}

/**
 * Parses one response from `buf` at `offset`. Returns the response and the
 * offset after it, or undefined if more bytes are needed. `eof`: the peer
 * closed, so an until-close body ends at the end of `buf`. `method`: the
 * request's method (HEAD and CONNECT responses have no body).
 */
export function parseResponse(buf: Buffer, offset: number, eof: boolean, method = 'GET'): { response: HttpResponse; end: number } | undefined {
  const headEnd = buf.indexOf('\r\n\r\n', offset);
  if (headEnd < 0) {
    if (eof && buf.length > offset) throw new HttpParseError(`connection closed inside a response head: ${JSON.stringify(buf.subarray(offset, offset + 300).toString('latin1'))}`);
    return undefined;
  }
  const head = parseHead(buf.subarray(offset, headEnd).toString('latin1'));
  const bodyStart = headEnd + 4;
  const make = (body: Buffer, trailers: Array<[string, string]>, framing: Framing, end: number) => ({
    response: new HttpResponse(head.version, head.status, head.reason, head.headers, body, trailers, framing, buf.subarray(offset, end)),
    end,
  });
  const field = (name: string): string | undefined => head.headers.find(([n]) => n.toLowerCase() === name)?.[1];
  const noBody = method === 'HEAD' || (method === 'CONNECT' && head.status >= 200 && head.status < 300) || head.status < 200 || head.status === 204 || head.status === 304;
  if (noBody) return make(Buffer.alloc(0), [], 'none', bodyStart);
  const te = field('transfer-encoding');
  if (te !== undefined && tokens(te).at(-1) === 'chunked') {
    const parts: Buffer[] = [];
    let pos = bodyStart;
    for (;;) {
      const lineEnd = buf.indexOf(CRLF, pos);
      if (lineEnd < 0) return needMore(eof, 'inside a chunk-size line');
      const sizeText = buf.subarray(pos, lineEnd).toString('latin1').split(';')[0]!.trim();
      if (!/^[0-9a-fA-F]+$/.test(sizeText)) throw new HttpParseError(`bad chunk size ${JSON.stringify(sizeText)}`);
      const size = parseInt(sizeText, 16);
      pos = lineEnd + 2;
      if (size === 0) break;
      if (buf.length < pos + size + 2) return needMore(eof, 'inside chunk data');
      parts.push(buf.subarray(pos, pos + size));
      if (!buf.subarray(pos + size, pos + size + 2).equals(CRLF)) throw new HttpParseError('chunk data not followed by CRLF');
      pos += size + 2;
    }
    const trailers: Array<[string, string]> = [];
    for (;;) {
      const lineEnd = buf.indexOf(CRLF, pos);
      if (lineEnd < 0) return needMore(eof, 'inside the trailer section');
      const line = buf.subarray(pos, lineEnd).toString('latin1');
      pos = lineEnd + 2;
      if (line === '') break;
      const colon = line.indexOf(':');
      if (colon <= 0) throw new HttpParseError(`bad trailer line ${JSON.stringify(line)}`);
      trailers.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
    }
    return make(Buffer.concat(parts), trailers, 'chunked', pos);
  }
  const cl = field('content-length');
  if (te === undefined && cl !== undefined) {
    if (!/^\d+$/.test(cl)) throw new HttpParseError(`bad Content-Length ${JSON.stringify(cl)}`);
    const end = bodyStart + Number(cl);
    if (buf.length < end) return needMore(eof, `inside a Content-Length body (${buf.length - bodyStart} of ${cl} bytes)`);
    return make(buf.subarray(bodyStart, end), [], 'content-length', end);
  }
  if (!eof) return undefined;
  return make(buf.subarray(bodyStart), [], 'close', buf.length);
}

function needMore(eof: boolean, where: string): undefined {
  if (eof) throw new HttpParseError(`connection closed ${where}`);
  return undefined;
}

/** Parses every complete response in `buf` (`methods[i]`: the method of the i-th request). */
export function parseResponses(buf: Buffer, eof = true, methods: string[] = []): HttpResponse[] {
  const out: HttpResponse[] = [];
  let offset = 0;
  while (offset < buf.length) {
    const r = parseResponse(buf, offset, eof, methods[out.length]);
    if (r === undefined) break;
    out.push(r.response);
    offset = r.end;
  }
  return out;
}

// ---------------------------------------------------------------- raw client

/** Exact bytes to the proxy; responses parsed from the exact bytes that come back. */
export class RawHttpClient {
  private offset = 0;

  constructor(readonly tcp: TcpClient) {}

  send(data: Buffer | string): Promise<void> {
    return this.tcp.write(data);
  }

  /**
   * Sends `data` in writes of `size` bytes, each its own TCP segment (Nagle off,
   * a pause after each), so the proxy reads it the way a slow or hostile client
   * delivers it. Stops quietly when the proxy closes first.
   */
  async sendInPieces(data: Buffer | string, size: number, pauseMs = 1): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
    this.tcp.socket.setNoDelay(true);
    for (let at = 0; at < bytes.length && this.tcp.closedByPeer === undefined; at += size) {
      await this.tcp.write(bytes.subarray(at, at + size)).catch(() => {});
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  }

  /**
   * Waits for the next complete response (an until-close body completes when
   * the peer closes). `method` is the request's method (HEAD, CONNECT).
   */
  async response(options: { timeoutMs?: number; method?: string } = {}): Promise<HttpResponse> {
    let lastError: unknown;
    const got = await waitFor(
      () => {
        const closed = this.tcp.closedByPeer !== undefined;
        try {
          const r = parseResponse(this.tcp.received(), this.offset, closed, options.method);
          if (r !== undefined) {
            this.offset = r.end;
            return r.response;
          }
        } catch (error) {
          lastError = error;
          throw new StopWaiting(String(error));
        }
        if (closed && this.tcp.receivedLength() <= this.offset) throw new StopWaiting(`peer closed (${this.tcp.closedByPeer!.kind}) before a response`);
        return undefined;
      },
      { timeoutMs: options.timeoutMs ?? 10_000, intervalMs: 5, what: 'a complete HTTP response' },
    ).catch((error: unknown) => {
      const have = this.tcp.received().subarray(this.offset);
      throw new Error(`${error instanceof StopWaiting ? error.message : String(lastError ?? error)}; unparsed bytes (${have.length}): ${JSON.stringify(have.subarray(0, 400).toString('latin1'))}`);
    });
    return got;
  }

  /** Bytes received after the last parsed response. */
  rest(): Buffer {
    return this.tcp.received().subarray(this.offset);
  }

  /** Waits for `n` bytes after the last parsed response; returns them (and consumes them). */
  async take(n: number, timeoutMs = 10_000): Promise<Buffer> {
    const all = await this.tcp.waitForBytes(this.offset + n, timeoutMs);
    const out = Buffer.from(all.subarray(this.offset, this.offset + n));
    this.offset += n;
    return out;
  }

  waitForClose(timeoutMs = 10_000): Promise<PeerClose> {
    return this.tcp.waitForPeerClose(timeoutMs);
  }

  get closedByPeer(): PeerClose | undefined {
    return this.tcp.closedByPeer;
  }

  end(): Promise<void> {
    return this.tcp.end();
  }
}

/** Connects a raw HTTP client to `address` for the test `t`. */
export async function rawHttpClient(t: TestContext, address: Address): Promise<RawHttpClient> {
  return new RawHttpClient(await connect(t, address));
}

/**
 * Opens a CONNECT tunnel through `proxy` to the echo server at `echoAddress`
 * ("host:port"), sends `payload` right behind the CONNECT head, checks the 200
 * and the echo, then closes the tunnel and waits for the proxy's close.
 */
export async function echoThroughConnectTunnel(t: TestContext, proxy: Address, echoAddress: string, payload: string): Promise<void> {
  const tunnel = await rawHttpClient(t, proxy);
  await tunnel.send(`CONNECT ${echoAddress} HTTP/1.1\r\nHost: ${echoAddress}\r\n\r\n${payload}`);
  assert.equal((await tunnel.response({ method: 'CONNECT' })).status, 200);
  assert.equal((await tunnel.take(Buffer.byteLength(payload))).toString(), payload);
  await tunnel.end();
  await tunnel.waitForClose();
}

/**
 * Sends `bytes` on a fresh connection, reads one response and waits for the
 * proxy to close the connection. Returns the response, how it closed, and any
 * bytes after the response.
 */
export async function rawExchangeExpectingClose(t: TestContext, address: Address, bytes: Buffer | string, timeoutMs = 10_000): Promise<{ response: HttpResponse; close: PeerClose; rest: Buffer }> {
  const client = await rawHttpClient(t, address);
  await client.send(bytes).catch(() => {}); // the proxy may close before reading everything
  const response = await client.response({ timeoutMs });
  const close = await client.waitForClose(timeoutMs);
  return { response, close, rest: client.rest() };
}

// ---------------------------------------------------------------- node http client through the proxy

export interface ProxiedRequestOptions {
  method?: string;
  headers?: OutgoingHttpHeaders;
  /** A body to send as is, or `{ random: n }` to stream n random bytes (Content-Length unless chunked). */
  body?: Buffer | string | { random: number; chunked?: boolean };
  agent?: Agent | false;
  /** Keep the response body (default) or only hash it. */
  keepBody?: boolean;
  timeoutMs?: number;
}

export interface ProxiedResponse {
  status: number;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  trailers: Record<string, string>;
  body: Buffer;
  bodyLength: number;
  bodySha256: string;
  /** sha256 of the random body sent, when `body` was `{ random }`. */
  sentSha256?: string;
  /** Local port of the client connection to the proxy (tells connection reuse). */
  localPort: number | undefined;
}

/**
 * One request with node's http client through the forward proxy `proxy`, in
 * absolute-form (`path` is the full http:// URL; Host is the URL's authority).
 */
export function requestViaProxy(proxy: Address, url: string, options: ProxiedRequestOptions = {}): Promise<ProxiedResponse> {
  const target = new URL(url);
  const random = typeof options.body === 'object' && !Buffer.isBuffer(options.body) ? options.body : undefined;
  const fixed = random === undefined ? (options.body as Buffer | string | undefined) : undefined;
  const headers: OutgoingHttpHeaders = { host: target.host, ...options.headers };
  if (fixed !== undefined && headers['content-length'] === undefined && headers['transfer-encoding'] === undefined) headers['content-length'] = Buffer.byteLength(fixed);
  if (random !== undefined && random.chunked !== true) headers['content-length'] = random.random;
  return new Promise((resolve, reject) => {
    let sentSha256: string | undefined;
    const req = httpRequest(
      { host: proxy.host, port: proxy.port, method: options.method ?? (options.body === undefined ? 'GET' : 'POST'), path: url, headers, agent: options.agent ?? false, timeout: options.timeoutMs ?? 30_000 },
      (res) => {
        const hash = createHash('sha256');
        const kept: Buffer[] = [];
        let length = 0;
        res.on('data', (chunk: Buffer) => {
          hash.update(chunk);
          length += chunk.length;
          if (options.keepBody !== false) kept.push(chunk);
        });
        res.on('error', reject);
        res.on('end', () => {
          const trailers: Record<string, string> = {};
          for (const [name, value] of Object.entries(res.trailers)) if (value !== undefined) trailers[name] = value;
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            rawHeaders: res.rawHeaders,
            trailers,
            body: Buffer.concat(kept),
            bodyLength: length,
            bodySha256: hash.digest('hex'),
            sentSha256,
            localPort: res.socket?.localPort ?? undefined,
          });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`request ${url} via ${proxy.host}:${proxy.port} timed out`)));
    req.on('error', reject);
    if (random !== undefined) {
      writeRandom(req, random.random)
        .then((digest) => {
          sentSha256 = digest;
          req.end();
        })
        .catch(reject);
    } else {
      req.end(fixed);
    }
  });
}

// ---------------------------------------------------------------- curl

export interface CurlResult {
  code: number | null;
  /** Every response head curl printed (-D), in order: a CONNECT's own answer first. */
  heads: HttpResponse[];
  /** The last head (the final response), if any. */
  last: HttpResponse | undefined;
  body: Buffer;
  stderr: string;
}

const PROXY_ENV: Record<string, undefined> = {
  http_proxy: undefined,
  HTTP_PROXY: undefined,
  https_proxy: undefined,
  HTTPS_PROXY: undefined,
  all_proxy: undefined,
  ALL_PROXY: undefined,
  no_proxy: undefined,
  NO_PROXY: undefined,
};

/**
 * Runs curl (ignoring ~/.curlrc and proxy variables of the environment) with
 * `args`; -D and -o go to files in a temp dir and are parsed. Pass -x/-p
 * yourself. Non-zero exit codes are returned, not thrown.
 */
export async function runCurl(t: TestContext, args: string[], timeoutMs = 20_000): Promise<CurlResult> {
  const dir = await makeTempDir(t, 'ramjet-curl-');
  const headFile = join(dir, 'heads');
  const bodyFile = join(dir, 'body');
  const result = await run('curl', ['-q', '-sS', '--max-time', String(Math.ceil(timeoutMs / 1000)), '-D', headFile, '-o', bodyFile, ...args], {
    env: PROXY_ENV,
    timeoutMs: timeoutMs + 5_000,
  });
  const read = (path: string): Promise<Buffer> => readFile(path).catch(() => Buffer.alloc(0));
  const headText = (await read(headFile)).toString('latin1');
  const heads = headText
    .split('\r\n\r\n')
    .filter((block) => block.startsWith('HTTP/'))
    .map((block) => {
      const h = parseHead(block);
      return new HttpResponse(h.version, h.status, h.reason, h.headers, Buffer.alloc(0), [], 'none', Buffer.from(block, 'latin1'));
    });
  return { code: result.code, heads, last: heads.at(-1), body: await read(bodyFile), stderr: result.stderr };
}

// ---------------------------------------------------------------- process memory

export interface ProcMemory {
  /** Resident set size now, in bytes. */
  rss: number;
  /** Peak resident set size ("high water mark"), in bytes. */
  hwm: number;
}

/** VmRSS and VmHWM of `pid` from /proc/PID/status. */
export async function procMemory(pid: number): Promise<ProcMemory> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
    if (m === null) throw new Error(`no ${name} in /proc/${pid}/status`);
    return Number(m[1]) * 1024;
  };
  return { rss: kib('VmRSS'), hwm: kib('VmHWM') };
}
