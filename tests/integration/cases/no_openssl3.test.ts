// BoringSSL and OpenSSL 3 must never share a process (the process crashes):
// no binary we build may link libssl.so.3 or libcrypto.so.3, even through
// another library (libcurl, libssh2, libldap pull them in), and a running
// daemon serving TLS maps Debian's BoringSSL (android/libssl.so.0) and nothing
// of OpenSSL 3. Each detector is first shown to fire on a process or binary
// that does load OpenSSL 3 (socat), so a pass means something.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import {
  buildDir,
  run,
  sharedPki,
  startDaemon,
  startEchoServer,
  startSocatEcho,
  tcpEndpoint,
  test,
  tlsConnect,
} from '../lib/index.ts';

const OPENSSL3 = ['libssl.so.3', 'libcrypto.so.3'];
const BORINGSSL_DIR = '/usr/lib/x86_64-linux-gnu/android';
const BORINGSSL = [`${BORINGSSL_DIR}/libssl.so.0`, `${BORINGSSL_DIR}/libcrypto.so.0`];

/** Every library `ldd` resolves for `binary` (the whole closure): soname -> path. */
async function linkedLibraries(binary: string): Promise<Map<string, string>> {
  const result = await run('ldd', [binary]);
  assert.equal(result.code, 0, `ldd ${binary}: ${result.output}`);
  const libs = new Map<string, string>();
  for (const line of result.stdout.split('\n')) {
    const m = /^\s*(\S+)\s+=>\s+(\S+)/.exec(line);
    if (m !== null) libs.set(m[1]!, m[2]!);
  }
  return libs;
}

/** Paths of the files a process maps (/proc/PID/maps), without duplicates. */
async function mappedFiles(pid: number): Promise<Set<string>> {
  const maps = await readFile(`/proc/${pid}/maps`, 'utf8');
  return new Set(
    maps
      .split('\n')
      .map((l) => l.split(/\s+/).slice(5).join(' '))
      .filter((p) => p.startsWith('/')),
  );
}

const openssl3Among = (paths: Iterable<string>): string[] => [...paths].filter((p) => OPENSSL3.includes(basename(p)));

async function elfBinaries(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of (await readdir(dir)).sort()) {
    const path = join(dir, name);
    const head = await readFile(path).then((b) => b.subarray(0, 4)).catch(() => Buffer.alloc(0));
    if (head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) out.push(path);
  }
  return out;
}

test('the detectors see OpenSSL 3 where it is: socat links and maps libssl.so.3', async (t) => {
  const libs = await linkedLibraries('/usr/bin/socat');
  assert.deepEqual(openssl3Among(libs.keys()).sort(), ['libcrypto.so.3', 'libssl.so.3']);
  const socat = await startSocatEcho(t);
  assert.ok(openssl3Among(await mappedFiles(socat.process.pid!)).length > 0, 'socat maps libssl.so.3');
});

test('no binary in $RAMJET_BUILD_DIR/bin links OpenSSL 3', async () => {
  const bin = join(buildDir(), 'bin');
  const binaries = await elfBinaries(bin);
  const names = binaries.map((b) => basename(b));
  for (const required of ['ramjetd', 'ramjetctl']) assert.ok(names.includes(required), `${required} is not in ${bin} (have ${names.join(', ')})`);
  assert.ok(names.some((n) => n.startsWith('example-')), `no example app in ${bin}`);
  const offenders: string[] = [];
  for (const binary of binaries) {
    const libs = await linkedLibraries(binary);
    const bad = openssl3Among(libs.keys());
    if (bad.length > 0) offenders.push(`${basename(binary)}: ${bad.map((s) => `${s} => ${libs.get(s)!}`).join(', ')}`);
  }
  assert.deepEqual(offenders, [], 'binaries that would load OpenSSL 3 next to BoringSSL');
});

test('ramjetd links Debian\'s BoringSSL (android/libssl.so.0, libcrypto.so.0)', async () => {
  const ramjetd = await linkedLibraries(join(buildDir(), 'bin', 'ramjetd'));
  const resolved = new Set(ramjetd.values());
  for (const lib of BORINGSSL) assert.ok(resolved.has(lib), `ramjetd does not link ${lib}; ldd resolves: ${[...ramjetd.entries()].map(([k, v]) => `${k} => ${v}`).join(', ')}`);
});

test('a running ramjetd serving TLS maps BoringSSL and no OpenSSL 3', async (t) => {
  const pki = await sharedPki();
  const cert = await pki.server('maps', { dns: ['secure.example.test'] });
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, {
    config: {
      egress: { allow_private: ['127.0.0.0/8'] },
      endpoints: [tcpEndpoint('secure', echo.address, { tls: { certificates: [{ cert: cert.cert, key: cert.key }] } })],
    },
  });
  // A full handshake and a relayed round trip: whatever TLS loads lazily is loaded now.
  const client = await tlsConnect(t, { ...daemon.endpoint('secure'), servername: 'secure.example.test', ca: pki.ca });
  assert.equal((await client.tcp.roundTrip('ping')).toString(), 'ping');
  await daemon.waitForCounter('tls_handshakes', 1);

  const mapped = await mappedFiles(daemon.pid);
  assert.deepEqual(openssl3Among(mapped), [], 'the daemon maps OpenSSL 3');
  for (const lib of BORINGSSL) assert.ok(mapped.has(lib), `the daemon does not map ${lib}`);
});
