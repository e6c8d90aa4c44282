/**
 * A TLS client (node:tls) that reports what its handshake settled, for tests of
 * TLS endpoints and TLS origins.
 *
 *   const c = await tlsConnect(t, { ...daemon.endpoint('secure'), servername: 'a.example.test', ca: pki.ca });
 *   assert.equal(c.handshake.peer.sha256, cert.sha256);     // which certificate the server chose
 *   assert.equal(c.handshake.protocol, 'TLSv1.3');
 *   await c.tcp.roundTrip('ping');                          // the bytes inside, as a TcpClient
 *   const again = await tlsConnect(t, { ..., session: await c.session() });
 *   assert.equal(again.handshake.reused, true);
 *
 *   const failed = await tlsHandshakeFailure(t, { ..., servername: 'unknown.test' });
 *   // { code: 'ERR_SSL_TLSV1_UNRECOGNIZED_NAME' | ..., message }
 *
 * Options map onto tls.connect: `sigalgs` restricts the signature algorithms
 * the client offers (so the server must pick a certificate of that key type),
 * `minVersion`/`maxVersion` pin the protocol, `session` resumes.
 */
import { readFileSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { connect as tlsConnectRaw, type ConnectionOptions, type TLSSocket } from 'node:tls';
import type { IssuedCert } from './certs.ts';
import { TcpClient, type Address } from './client.ts';
import { defer } from './lifecycle.ts';
import { withTimeout } from './wait.ts';

export type TlsVersion = 'TLSv1.2' | 'TLSv1.3';

export interface TlsConnectOptions extends Address {
  /** SNI to send; omit (or '') to send none. Hostname checks use it, else the address. */
  servername?: string;
  /** PEM path(s) the client trusts; without, verification is off (handshake facts only). */
  ca?: string | string[];
  /** A client certificate. */
  cert?: Pick<IssuedCert, 'cert' | 'key'>;
  minVersion?: TlsVersion;
  maxVersion?: TlsVersion;
  /** e.g. 'ecdsa_secp256r1_sha256' or 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256'. */
  sigalgs?: string;
  /** TLS 1.2 cipher list (OpenSSL names). */
  ciphers?: string;
  alpn?: string[];
  /** A session from an earlier connection's session(): resume it. */
  session?: Buffer;
  /** Ask for an OCSP staple (handshake.ocsp). */
  requestOcsp?: boolean;
  timeoutMs?: number;
}

/** What the handshake settled, as the client saw it. */
export interface TlsHandshake {
  protocol: string;
  /** Standard (IANA) name, e.g. TLS_AES_128_GCM_SHA256. */
  cipher: string;
  alpn: string | false;
  reused: boolean;
  /** The server certificate (the leaf). */
  peer: { sha256: string; subject: string; keyType: string; sans: string };
  /** SHA-256 of the chain as the client built it: leaf first, then what the server sent, then the trusted root (hex, lower case). */
  chain: string[];
  /** The stapled OCSP response, if one was requested and sent. */
  ocsp: Buffer | undefined;
}

export class TlsClient {
  /** Bytes received and how the peer closed, as for plain TCP. */
  readonly tcp: TcpClient;
  /** NSS key-log lines the client's own TLS stack produced. */
  readonly keylog: string[];
  private readonly sessions: Buffer[];

  constructor(
    readonly socket: TLSSocket,
    readonly handshake: TlsHandshake,
    sessions: Buffer[],
    keylog: string[],
  ) {
    this.tcp = TcpClient.adopt(socket);
    this.sessions = sessions;
    this.keylog = keylog;
  }

  /** The first session (ticket) the server sent; TLS 1.3 sends it after the handshake. */
  async session(timeoutMs = 5_000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.sessions.length === 0) {
      if (Date.now() > deadline) throw new Error(`no session ticket from the server within ${timeoutMs} ms`);
      await withTimeout(new Promise((resolve) => this.socket.once('session', resolve)), Math.max(1, deadline - Date.now()), 'a session ticket').catch(() => {});
    }
    return this.sessions[0]!;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

function hex(fingerprint: string): string {
  return fingerprint.replace(/:/g, '').toLowerCase();
}

function connectionOptions(options: TlsConnectOptions): ConnectionOptions {
  const read = (path: string): Buffer => readFileSync(path);
  const cas = options.ca === undefined ? undefined : (Array.isArray(options.ca) ? options.ca : [options.ca]).map(read);
  return {
    host: options.host,
    port: options.port,
    ...(options.servername ? { servername: options.servername } : {}),
    ...(cas ? { ca: cas, rejectUnauthorized: true } : { rejectUnauthorized: false }),
    ...(options.cert ? { cert: read(options.cert.cert), key: read(options.cert.key) } : {}),
    ...(options.minVersion ? { minVersion: options.minVersion } : {}),
    ...(options.maxVersion ? { maxVersion: options.maxVersion } : {}),
    ...(options.sigalgs ? { sigalgs: options.sigalgs } : {}),
    ...(options.ciphers ? { ciphers: options.ciphers } : {}),
    ...(options.alpn ? { ALPNProtocols: options.alpn } : {}),
    ...(options.session ? { session: options.session } : {}),
    ...(options.requestOcsp ? { requestOCSP: true } : {}),
  };
}

/** Handshakes; resolves with the client, or rejects with the handshake error (err.code). */
function open(options: TlsConnectOptions): Promise<TlsClient> {
  return new Promise((resolve, reject) => {
    const sessions: Buffer[] = [];
    const keylog: string[] = [];
    let ocsp: Buffer | undefined;
    const socket = tlsConnectRaw(connectionOptions(options));
    socket.setNoDelay(true);
    socket.on('session', (s: Buffer) => sessions.push(s));
    socket.on('keylog', (line: Buffer) => keylog.push(line.toString('latin1').trimEnd()));
    socket.on('OCSPResponse', (r: Buffer) => {
      ocsp = r;
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error(`TLS handshake with ${options.host}:${options.port} timed out`), { code: 'ETIMEDOUT' }));
    }, options.timeoutMs ?? 10_000);
    const onError = (error: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };
    // A server that closes without an alert ends the socket before secureConnect.
    const onClose = (): void => onError(Object.assign(new Error('the server closed the connection during the handshake'), { code: 'ECONNRESET' }));
    socket.once('error', onError);
    socket.once('close', onClose);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      socket.removeListener('error', onError);
      socket.removeListener('close', onClose);
      // getPeerCertificate first: after getPeerX509Certificate it returns {} (node 20).
      const chain: string[] = [];
      for (let c = socket.getPeerCertificate(true); c !== undefined && c.fingerprint256 !== undefined; c = c.issuerCertificate) {
        chain.push(hex(c.fingerprint256));
        if (c.issuerCertificate === c) break; // a self-signed root points to itself
      }
      const peer = socket.getPeerX509Certificate();
      const handshake: TlsHandshake = {
        protocol: socket.getProtocol() ?? '',
        cipher: socket.getCipher().standardName,
        alpn: socket.alpnProtocol ?? false,
        reused: socket.isSessionReused(),
        peer: {
          sha256: peer ? hex(peer.fingerprint256) : '',
          subject: peer?.subject ?? '',
          keyType: peer?.publicKey.asymmetricKeyType ?? '',
          sans: peer?.subjectAltName ?? '',
        },
        chain,
        ocsp,
      };
      resolve(new TlsClient(socket, handshake, sessions, keylog));
    });
  });
}

/** A TLS connection for the test `t` (destroyed after it); rejects if the handshake fails. */
export async function tlsConnect(t: TestContext, options: TlsConnectOptions): Promise<TlsClient> {
  const client = await open(options);
  defer(t, `tls client -> ${options.host}:${options.port}`, () => client.destroy());
  return client;
}

/**
 * Expects the handshake to fail; returns the client's error. In TLS 1.3 the
 * client finishes before the server has checked a client certificate, so a
 * refusal may arrive just after the client's side completed: an alert or a
 * close within `graceMs` of the handshake (with no application byte) counts
 * as the failure too (`afterHandshake`). Throws if the connection stays up.
 */
export async function tlsHandshakeFailure(
  t: TestContext,
  options: TlsConnectOptions,
  graceMs = 3_000,
): Promise<{ code: string; message: string; afterHandshake: boolean }> {
  let client: TlsClient;
  try {
    client = await open(options);
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    return { code: e.code ?? '', message: e.message, afterHandshake: false };
  }
  defer(t, `tls client -> ${options.host}:${options.port}`, () => client.destroy());
  const error = new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
    client.socket.once('error', resolve);
    client.socket.once('close', () => resolve(undefined));
  });
  const outcome = await withTimeout(error, graceMs, 'a refusal after the handshake').then(
    (e) => ({ closed: true, e }),
    () => ({ closed: false, e: undefined }),
  );
  if (outcome.closed && client.tcp.receivedLength() === 0) {
    return { code: outcome.e?.code ?? 'ECONNRESET', message: outcome.e?.message ?? 'closed after the handshake', afterHandshake: true };
  }
  throw new Error(`the TLS handshake succeeded, expected a failure: ${JSON.stringify({ ...client.handshake, ocsp: undefined })}`);
}
