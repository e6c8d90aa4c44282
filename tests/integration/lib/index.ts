/**
 * ramjet integration-test framework. Import everything from here:
 *
 *   import { test, startDaemon, tcpEndpoint, startEchoServer, connect } from '../lib/index.ts';
 *
 * See tests/integration/README.md for a walkthrough.
 */
export * from './admin.ts';
export * from './blackhole.ts';
export * from './certs.ts';
export * from './client.ts';
export * from './config.ts';
export * from './connect_udp.ts';
export * from './daemon.ts';
export * from './dns_server.ts';
export * from './dns_wire.ts';
export * from './h2.ts';
export * from './h2_origin.ts';
export * from './h3client.ts';
export * from './haproxy.ts';
export * from './http.ts';
export * from './lifecycle.ts';
export * from './metrics.ts';
export * from './nginx.ts';
export * from './process.ts';
export * from './quic.ts';
export * from './raw_origin.ts';
export * from './tls_client.ts';
export * from './upstreams.ts';
export * from './wait.ts';
