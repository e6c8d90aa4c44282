/**
 * A connect-udp client (RFC 9298, UDP proxying over HTTP/1.1 and HTTP/2) for the tests:
 * Debian has no MASQUE client, so this one speaks the upgrade and the Capsule Protocol by
 * hand, from the RFCs (RFC 9000 16 variable-length integers, RFC 9297 3.2 capsules, RFC 9298
 * 3.2-3.5/5). On HTTP/2 the extended CONNECT (RFC 8441) is node's http2 client's.
 * It shares no code with the daemon's codecs, on purpose: a test written against the
 * proxy's own encoder would agree with any mistake in it.
 *
 *   const tunnel = await openConnectUdp(t, proxy, { host: '127.0.0.1', port: 5353 });
 *   assert.equal(tunnel.response.status, 101);
 *   await tunnel.send(Buffer.from('hello'));        // one DATAGRAM capsule, context 0
 *   const reply = await tunnel.receive();           // the next context-0 payload back
 *
 * openConnectUdp never throws on a refusal: `response` is the proxy's answer (a 4xx/5xx
 * with Proxy-Status) and the tunnel methods are not used then.
 *
 *   const session = await connectH2(t, proxy);                       // h2c, or { tls } for h2
 *   const tunnel = await openConnectUdpH2(t, session, { host: '127.0.0.1', port: 5353 });
 *   assert.equal(tunnel.status, 200);
 *   await tunnel.send(Buffer.from('hello'));                          // the same capsules, in DATA
 */
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { connect as h2connect, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import type { TestContext } from 'node:test';
import type { Address, PeerClose } from './client.ts';
import { RawHttpClient, rawHttpClient, type HttpResponse } from './http.ts';
import { tlsConnect } from './tls_client.ts';
import { defer } from './lifecycle.ts';
import { StopWaiting, waitFor, withTimeout } from './wait.ts';

/** RFC 9298 2: the template every client can assume. */
export const DEFAULT_CONNECT_UDP_TEMPLATE = '/.well-known/masque/udp/{target_host}/{target_port}/';

export const CAPSULE_DATAGRAM = 0x00;

const MAX_VARINT = (1n << 62n) - 1n;

/** The shortest encoding of `value` (RFC 9000 16): 1, 2, 4 or 8 bytes. */
export function encodeVarint(value: number | bigint): Buffer {
  const v = BigInt(value);
  if (v < 0n || v > MAX_VARINT) throw new RangeError(`not a QUIC varint: ${v}`);
  if (v < 64n) return Buffer.from([Number(v)]);
  if (v < 16384n) {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(Number(v) | 0x4000);
    return b;
  }
  if (v < 1073741824n) {
    const b = Buffer.alloc(4);
    b.writeUInt32BE((Number(v) | 0x80000000) >>> 0);
    return b;
  }
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(v | (3n << 62n));
  return b;
}

/** The varint at `offset`: its value and size, or undefined when `buf` ends inside it. */
export function decodeVarint(buf: Buffer, offset = 0): { value: bigint; size: number } | undefined {
  if (offset >= buf.length) return undefined;
  const size = 1 << (buf[offset]! >> 6);
  if (offset + size > buf.length) return undefined;
  let value = BigInt(buf[offset]! & 0x3f);
  for (let i = 1; i < size; i++) value = (value << 8n) | BigInt(buf[offset + i]!);
  return { value, size };
}

/** A capsule (RFC 9297 3.2): Type, Length, Value. */
export function encodeCapsule(type: number | bigint, value: Buffer): Buffer {
  return Buffer.concat([encodeVarint(type), encodeVarint(value.length), value]);
}

/** A DATAGRAM capsule carrying an HTTP Datagram: Context ID, then the UDP payload (RFC 9298 5). */
export function datagramCapsule(payload: Buffer, contextId: number | bigint = 0): Buffer {
  return encodeCapsule(CAPSULE_DATAGRAM, Buffer.concat([encodeVarint(contextId), payload]));
}

/** Level-1 expansion of a connect-udp template (RFC 6570 3.2.2): values percent-encoded. */
export function expandConnectUdpTemplate(template: string, target: Address): string {
  const encode = (s: string): string => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return template.replace('{target_host}', encode(target.host)).replace('{target_port}', String(target.port));
}

export interface Capsule {
  type: bigint;
  value: Buffer;
}

/** The size of the capsule at the front of `rest`, once all of it is there. */
function completeCapsuleSize(rest: Buffer): number | undefined {
  const type = decodeVarint(rest, 0);
  const length = type && decodeVarint(rest, type.size);
  if (type && length && rest.length >= type.size + length.size + Number(length.value)) return type.size + length.size + Number(length.value);
  return undefined;
}

/** The capsule that `bytes` is, whole. */
function decodeCapsule(bytes: Buffer): Capsule {
  const type = decodeVarint(bytes, 0)!;
  const length = decodeVarint(bytes, type.size)!;
  return { type: type.value, value: bytes.subarray(type.size + length.size) };
}

/** The UDP payload of a DATAGRAM capsule, which must carry context 0. */
function contextZeroPayload(c: Capsule): Buffer {
  if (c.type !== BigInt(CAPSULE_DATAGRAM)) throw new Error(`expected a DATAGRAM capsule, got type ${c.type}`);
  const id = decodeVarint(c.value, 0);
  if (id === undefined) throw new Error('a DATAGRAM capsule without a Context ID');
  if (id.value !== 0n) throw new Error(`a DATAGRAM capsule of context ${id.value}`);
  return c.value.subarray(id.size);
}

export interface ConnectUdpOptions {
  /** The template to expand (default: RFC 9298's well-known one). */
  template?: string;
  /** The request target as sent, instead of the expanded template. */
  path?: string;
  /** Field lines replacing Connection/Upgrade/Capsule-Protocol (each ending in \r\n). */
  upgradeFields?: string;
  /** More field lines (each ending in \r\n), e.g. Proxy-Authorization. */
  extraFields?: string;
  /** Bytes sent in the same write, right behind the request head (early capsules). */
  early?: Buffer;
  /** Speak TLS to the proxy (an https:// proxy, `tls:` on its endpoint). */
  tls?: { servername?: string; ca?: string };
  timeoutMs?: number;
}

/** One connect-udp request, and the tunnel when the proxy answered 101. */
export class ConnectUdpTunnel {
  private capsulesRead = 0;

  constructor(
    readonly http: RawHttpClient,
    readonly response: HttpResponse,
  ) {}

  /** Sends `payload` as one DATAGRAM capsule (context 0 unless told otherwise). */
  send(payload: Buffer, contextId: number | bigint = 0): Promise<void> {
    return this.http.send(datagramCapsule(payload, contextId));
  }

  /** Sends bytes as they are (capsules of other types, malformed ones). */
  sendRaw(bytes: Buffer): Promise<void> {
    return this.http.send(bytes);
  }

  /** The next capsule from the proxy. */
  async nextCapsule(timeoutMs = 5_000): Promise<Capsule> {
    // How many bytes the next capsule takes, once they are all there.
    const size = await waitFor(
      () => {
        const rest = this.http.rest();
        const complete = completeCapsuleSize(rest);
        if (complete !== undefined) return complete;
        if (this.http.closedByPeer !== undefined) throw new StopWaiting(`the proxy closed the tunnel (${this.http.closedByPeer.kind}) after ${this.capsulesRead} capsules; ${rest.length} bytes left`);
        return undefined;
      },
      { timeoutMs, intervalMs: 2, what: 'a capsule from the proxy' },
    );
    const bytes = await this.http.take(size);
    this.capsulesRead++;
    return decodeCapsule(bytes);
  }

  /** The payload of the next DATAGRAM capsule, which must carry context 0. */
  async receive(timeoutMs = 5_000): Promise<Buffer> {
    return contextZeroPayload(await this.nextCapsule(timeoutMs));
  }

  /** Bytes the proxy sent that were not read as capsules. */
  unread(): Buffer {
    return this.http.rest();
  }

  waitForClose(timeoutMs = 10_000): Promise<PeerClose> {
    return this.http.waitForClose(timeoutMs);
  }

  /** Ends the client's capsule stream (FIN). */
  end(): Promise<void> {
    return this.http.end();
  }
}

/** Sends a connect-udp request for `target` through `proxy` and reads the answer. */
export async function openConnectUdp(t: TestContext, proxy: Address, target: Address, options: ConnectUdpOptions = {}): Promise<ConnectUdpTunnel> {
  const path = options.path ?? expandConnectUdpTemplate(options.template ?? DEFAULT_CONNECT_UDP_TEMPLATE, target);
  const upgrade = options.upgradeFields ?? 'Connection: Upgrade\r\nUpgrade: connect-udp\r\nCapsule-Protocol: ?1\r\n';
  const head = `GET ${path} HTTP/1.1\r\nHost: ${proxy.host}:${proxy.port}\r\n${upgrade}${options.extraFields ?? ''}\r\n`;
  const http = options.tls ? new RawHttpClient((await tlsConnect(t, { ...proxy, ...options.tls })).tcp) : await rawHttpClient(t, proxy);
  await http.send(Buffer.concat([Buffer.from(head, 'latin1'), options.early ?? Buffer.alloc(0)]));
  const response = await http.response({ timeoutMs: options.timeoutMs ?? 10_000 });
  return new ConnectUdpTunnel(http, response);
}

// ---------------------------------------------------------------------------------------
// HTTP/2: extended CONNECT (RFC 9298 3.4, 3.5; RFC 8441)
// ---------------------------------------------------------------------------------------

/**
 * A node http2 client session to the proxy: h2c by prior knowledge, or h2 over TLS (ALPN)
 * with `tls` (`ca`: a PEM file, as tlsConnect takes it). Resolves once the proxy's SETTINGS arrived, so that extended CONNECT may be
 * used when they enable it (node refuses a :protocol request before that).
 */
export async function connectH2(t: TestContext, proxy: Address, tls?: { servername?: string; ca?: string }): Promise<ClientHttp2Session> {
  const session = tls
    ? h2connect(`https://${proxy.host}:${proxy.port}`, { servername: tls.servername, ...(tls.ca ? { ca: await readFile(tls.ca) } : {}) })
    : h2connect(`http://${proxy.host}:${proxy.port}`);
  defer(t, 'h2 session', () => void session.destroy());
  session.on('error', () => {}); // a test asserts on streams; a session error ends them
  await withTimeout(once(session, 'remoteSettings'), 10_000, "the proxy's SETTINGS");
  return session;
}

export interface ConnectUdpH2Options {
  /** The template to expand (default: RFC 9298's well-known one). */
  template?: string;
  /** :path as sent, instead of the expanded template. */
  path?: string;
  /** :scheme (default https). */
  scheme?: string;
  /** Leave out capsule-protocol: ?1. */
  noCapsuleProtocol?: boolean;
  /** More request fields (e.g. proxy-authorization). */
  headers?: OutgoingHttpHeaders;
  /** DATA sent right behind the request HEADERS, before any answer (early capsules). */
  early?: Buffer;
  timeoutMs?: number;
}

/** One connect-udp stream: the answer, then (on a 2xx) capsules both ways in DATA frames. */
export class ConnectUdpH2Tunnel {
  status = 0;
  headers: IncomingHttpHeaders = {};
  /** Set once the stream closed: its RST_STREAM code (0: ended normally). */
  rstCode: number | undefined;
  /** The proxy ended its side (END_STREAM). */
  ended = false;
  /** Bytes of DATA received, and the stream offset at the end of each chunk node delivered (one per DATA frame, or less of one). */
  bytesIn = 0;
  readonly chunkEnds: number[] = [];
  private buf = Buffer.alloc(0);
  private capsulesRead = 0;
  private readonly closed: Promise<number>;

  constructor(readonly stream: ClientHttp2Stream) {
    stream.on('data', (d: Buffer) => {
      this.bytesIn += d.length;
      this.chunkEnds.push(this.bytesIn);
      this.buf = Buffer.concat([this.buf, d]);
    });
    stream.on('end', () => (this.ended = true));
    stream.on('error', () => {}); // a reset is read from rstCode
    this.closed = new Promise((resolve) =>
      stream.once('close', () => {
        this.rstCode = stream.rstCode ?? 0;
        resolve(this.rstCode);
      }),
    );
  }

  /** The body the proxy sent (an error answer's text). */
  body(): string {
    return this.buf.toString('utf8');
  }

  send(payload: Buffer, contextId: number | bigint = 0): Promise<void> {
    return this.sendRaw(datagramCapsule(payload, contextId));
  }

  sendRaw(bytes: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.stream.write(bytes, (err) => (err ? reject(err) : resolve())));
  }

  async nextCapsule(timeoutMs = 5_000): Promise<Capsule> {
    const size = await waitFor(
      () => {
        const complete = completeCapsuleSize(this.buf);
        if (complete !== undefined) return complete;
        if (this.rstCode !== undefined || this.ended) throw new StopWaiting(`the proxy ended the stream (rst ${this.rstCode}, end ${this.ended}) after ${this.capsulesRead} capsules; ${this.buf.length} bytes left`);
        return undefined;
      },
      { timeoutMs, intervalMs: 2, what: 'a capsule from the proxy' },
    );
    const bytes = this.buf.subarray(0, size);
    this.buf = this.buf.subarray(size);
    this.capsulesRead++;
    return decodeCapsule(bytes);
  }

  async receive(timeoutMs = 5_000): Promise<Buffer> {
    return contextZeroPayload(await this.nextCapsule(timeoutMs));
  }

  /** Ends the client's capsule stream (END_STREAM). */
  end(): Promise<void> {
    return new Promise((resolve) => this.stream.end(() => resolve()));
  }

  /** Resets the stream (RST_STREAM with `code`, CANCEL by default). */
  reset(code = 8): void {
    this.stream.close(code);
  }

  /** Resolves with the RST_STREAM code (0: both sides ended normally) when the stream closes. */
  waitForClose(timeoutMs = 10_000): Promise<number> {
    return withTimeout(this.closed, timeoutMs, 'the connect-udp stream to close');
  }
}

/** Sends a connect-udp extended CONNECT for `target` on `session` and waits for the answer. */
export async function openConnectUdpH2(session: ClientHttp2Session, proxy: Address, target: Address, options: ConnectUdpH2Options = {}): Promise<ConnectUdpH2Tunnel> {
  const path = options.path ?? expandConnectUdpTemplate(options.template ?? DEFAULT_CONNECT_UDP_TEMPLATE, target);
  const headers: OutgoingHttpHeaders = {
    ':method': 'CONNECT',
    ':protocol': 'connect-udp',
    ':scheme': options.scheme ?? 'https',
    ':authority': `${proxy.host}:${proxy.port}`,
    ':path': path,
    ...(options.noCapsuleProtocol ? {} : { 'capsule-protocol': '?1' }),
    ...options.headers,
  };
  const tunnel = new ConnectUdpH2Tunnel(session.request(headers, { endStream: false }));
  if (options.early) void tunnel.sendRaw(options.early);
  const answered = new Promise<void>((resolve) => {
    tunnel.stream.once('response', (h) => {
      tunnel.headers = h;
      tunnel.status = Number(h[':status']);
      resolve();
    });
    tunnel.stream.once('close', () => resolve());
  });
  await withTimeout(answered, options.timeoutMs ?? 10_000, 'the answer to a connect-udp request');
  if (tunnel.status >= 300) {
    // The error body, whole; then the stream is done with.
    await waitFor(() => tunnel.ended || tunnel.rstCode !== undefined, { timeoutMs: 10_000, what: 'the end of an error answer' });
    tunnel.stream.close();
  }
  return tunnel;
}
