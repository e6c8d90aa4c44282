// An HTTP/3 (QUIC) front for the tests: an https reverse- or forward-proxy endpoint with `quic:` on
// an ephemeral UDP port, one worker, a certificate for www.example.test, and the SPKI
// hash Chromium needs to accept it (it takes a QUIC server's certificate only by its
// key's hash or a trusted CA).
import { createHash, createPublicKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { TestContext } from 'node:test';
import { sharedPki } from './certs.ts';
import { serverTls } from './config.ts';
import { startHttpProxy } from './http.ts';

export async function startQuicProxy(t: TestContext, options: {
    /** The origin of a reverse proxy; without it the endpoint is a forward proxy. */
    upstream?: string;
    /** More keys of the endpoint (connect_udp, ...). */
    endpoint?: Record<string, unknown>;
    drainTimeout?: `${number}s`;
    workers?: number;
    /** More keys of the endpoint's `quic:` section (retry, retry_rate, ...). */
    quic?: Record<string, unknown>;
  },) {
  const pki = await sharedPki();
  const front = await pki.server('quic-front', { dns: ['www.example.test'] });
  const spki = createHash('sha256')
    .update(createPublicKey(await readFile(front.cert)).export({ type: 'spki', format: 'der' }))
    .digest('base64');
  const proxy = await startHttpProxy(t, {
    endpoint: {
      tls: serverTls([front], { alpn: ['h2', 'http/1.1'] }),
      ...(options.upstream !== undefined ? { upstream: options.upstream } : {}),
      ...options.endpoint,
      quic: { listen: '127.0.0.1:0', idle_timeout: '10s', ...options.quic },
    },
    config: { server: { workers: options.workers ?? 1, drain_timeout: options.drainTimeout ?? '1s' } },
  });
  return { ...proxy, quic: proxy.daemon.endpoint('fwd/quic'), spki };
}
