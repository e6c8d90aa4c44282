/**
 * A raw HTTP/1.1 origin that records every byte it receives, split into the
 * requests it read, and answers each request with bytes the test scripts.
 *
 * It reads framing the simplest way an origin may: the first Transfer-Encoding
 * line (chunked when its last coding is chunked) or Content-Length, nothing
 * else. A proxy that forwards a head whose framing fields disagree with the body
 * it sends therefore shows up here as a garbled next request: the desync itself,
 * not a symptom of it.
 */
import type { Socket } from 'node:net';
import type { TestContext } from 'node:test';

import { tokens } from './http.ts';
import { startTcpUpstream, type TcpUpstream } from './upstreams.ts';

/** One request as the origin read it. */
export interface OriginRequest {
  /** Index of the connection it came on (0 = first accepted). */
  connection: number;
  /** The head exactly, request line to the final CRLFCRLF. */
  head: string;
  /** The request line. */
  line: string;
  /** The body with chunk framing removed. */
  body: Buffer;
  /** The exact bytes of the request, head and framed body. */
  raw: Buffer;
}

/** What to send back for a request: bytes, and whether to close afterwards. */
export type OriginReply = string | Buffer | { bytes: string | Buffer; close: true };

export interface RawOrigin {
  readonly upstream: TcpUpstream;
  /** "127.0.0.1:port". */
  readonly address: string;
  /** Requests in arrival order, over all connections. */
  readonly requests: OriginRequest[];
  /** Every byte received, per connection. */
  received(connection: number): Buffer;
  /** Bytes received after the last complete request on a connection (not a request, or not yet). */
  leftover(connection: number): Buffer;
}

/** Returns the end of the request that starts at `at`, or undefined if incomplete. */
function requestEnd(buf: Buffer, at: number): { headEnd: number; end: number; body: Buffer } | undefined {
  const headEnd = buf.indexOf('\r\n\r\n', at);
  if (headEnd < 0) return undefined;
  const lines = buf.subarray(at, headEnd).toString('latin1').split('\r\n').slice(1);
  const first = (name: string): string | undefined => {
    for (const line of lines) {
      const colon = line.indexOf(':');
      if (colon > 0 && line.slice(0, colon).toLowerCase() === name) return line.slice(colon + 1).trim();
    }
    return undefined;
  };
  const bodyStart = headEnd + 4;
  const te = first('transfer-encoding');
  if (te !== undefined && tokens(te).at(-1) === 'chunked') {
    const parts: Buffer[] = [];
    let pos = bodyStart;
    for (;;) {
      const lineEnd = buf.indexOf('\r\n', pos);
      if (lineEnd < 0) return undefined;
      const size = parseInt(buf.subarray(pos, lineEnd).toString('latin1').split(';')[0]!, 16);
      pos = lineEnd + 2;
      if (Number.isNaN(size)) return { headEnd, end: pos, body: Buffer.concat(parts) }; // garbage: stop here
      if (size === 0) break;
      if (buf.length < pos + size + 2) return undefined;
      parts.push(buf.subarray(pos, pos + size));
      pos += size + 2;
    }
    for (;;) {
      const lineEnd = buf.indexOf('\r\n', pos);
      if (lineEnd < 0) return undefined;
      const empty = lineEnd === pos;
      pos = lineEnd + 2;
      if (empty) return { headEnd, end: pos, body: Buffer.concat(parts) };
    }
  }
  const length = Number(first('content-length') ?? '0');
  if (buf.length < bodyStart + length) return undefined;
  return { headEnd, end: bodyStart + length, body: buf.subarray(bodyStart, bodyStart + length) };
}

/**
 * Starts the origin. `reply(request, n)` gives the answer to the n-th request
 * (over all connections); the default answers `200` with the request line.
 */
export async function startRawOrigin(t: TestContext, reply: (request: OriginRequest, n: number) => OriginReply = defaultRawReply): Promise<RawOrigin> {
  const requests: OriginRequest[] = [];
  const buffers: Buffer[] = [];
  const consumed: number[] = [];
  const upstream = await startTcpUpstream(t, (socket: Socket) => {
    const connection = buffers.length;
    buffers.push(Buffer.alloc(0));
    consumed.push(0);
    socket.on('data', (chunk: Buffer) => {
      buffers[connection] = Buffer.concat([buffers[connection]!, chunk]);
      for (;;) {
        const buf = buffers[connection]!;
        const at = consumed[connection]!;
        const found = requestEnd(buf, at);
        if (found === undefined) return;
        consumed[connection] = found.end;
        const head = buf.subarray(at, found.headEnd + 4).toString('latin1');
        const request: OriginRequest = { connection, head, line: head.slice(0, head.indexOf('\r\n')), body: Buffer.from(found.body), raw: Buffer.from(buf.subarray(at, found.end)) };
        requests.push(request);
        const answer = reply(request, requests.length - 1);
        if (typeof answer === 'string' || Buffer.isBuffer(answer)) {
          socket.write(answer);
        } else {
          socket.end(answer.bytes);
          return;
        }
      }
    });
  });
  return {
    upstream,
    address: upstream.address,
    requests,
    received: (connection) => buffers[connection] ?? Buffer.alloc(0),
    leftover: (connection) => (buffers[connection] ?? Buffer.alloc(0)).subarray(consumed[connection] ?? 0),
  };
}

/** 200 with the request line as a Content-Length body. */
export const defaultRawReply = (request: OriginRequest): string => `HTTP/1.1 200 OK\r\nContent-Length: ${request.line.length}\r\n\r\n${request.line}`;
