// TLS settings that cannot work are config errors, found by --check-config
// (and at start) with file:line:col and the key: a missing certificate file,
// a key that does not match its certificate, an unknown ALPN name, an
// impossible version range, a missing upstream CA file. A complete, valid
// TLS section is accepted.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { escapeRegExp, makeTempDir, runDaemonCommand, sharedPki, startDaemonExpectingExit, test, type TestContext } from '../lib/index.ts';

/**
 * A config file with one http endpoint; `tlsLines` are the lines under `tls:`
 * (indented by the caller), starting at line 8. Returns the file's path.
 */
async function tlsConfigFile(t: TestContext, tlsLines: string[], extra: string[] = []): Promise<string> {
  const dir = await makeTempDir(t);
  const file = join(dir, 'tls.yaml');
  const lines = [
    'server:', //                                  1
    '  workers: 1', //                             2
    `  admin_socket: ${join(dir, 'admin.sock')}`, // 3
    'endpoints:', //                               4
    '  - name: secure', //                         5
    '    listen: 127.0.0.1:0', //                  6
    '    onramp: http', //                         7
    '    tls:', //                                 8
    ...tlsLines, //                                9...
    ...extra,
    '',
  ];
  await writeFile(file, lines.join('\n'));
  return file;
}

/** --check-config exits 2 and names `file:line:col: <key>` for one of `lines`. */
async function assertConfigError(file: string, lines: number[], key: RegExp): Promise<void> {
  const result = await runDaemonCommand(['--check-config', file]);
  assert.equal(result.code, 2, `exit code; output:\n${result.output}`);
  const where = new RegExp(`${escapeRegExp(file)}:(${lines.join('|')}):\\d+: ${key.source}: \\S`);
  assert.match(result.stderr, where, result.stderr);
}

test('a valid tls and upstream_tls section passes --check-config', async (t) => {
  const pki = await sharedPki();
  const a = await pki.server('cfg-a', { dns: ['a.example.test'] });
  const rsa = await pki.server('cfg-rsa', { dns: ['a.example.test'], key: 'rsa' });
  const ocsp = await pki.ocsp(a, 'cfg-ocsp');
  const client = await pki.client('cfg-client', { dns: ['client.example.test'] });
  const dir = await makeTempDir(t);
  const file = await tlsConfigFile(
    t,
    [
      '      certificates:',
      `        - {cert: ${a.cert}, key: ${a.key}, ocsp: ${ocsp}}`,
      `        - {cert: ${rsa.cert}, key: ${rsa.key}}`,
      '      alpn: [http/1.1]',
      '      min_version: "1.2"',
      '      max_version: "1.3"',
      '      strict_sni: false',
      `      client_auth: {mode: optional, ca: ${pki.clientCa}}`,
      '      session_tickets: {enabled: true, rotate: 12h}',
      '      handshake_timeout: 10s',
      `      keylog_file: ${join(dir, 'keys.log')}`,
    ],
    [
      '    upstream: https://127.0.0.1:9',
      '    upstream_tls:',
      '      sni: origin.example.test',
      '      verify: true',
      `      ca: ${pki.ca}`,
      '      alpn: [http/1.1]',
      `      client_cert: {cert: ${client.cert}, key: ${client.key}}`,
    ],
  );
  const result = await runDaemonCommand(['--check-config', file]);
  assert.equal(result.code, 0, result.output);
});

test('a missing certificate file: file:line:col and the key', async (t) => {
  const pki = await sharedPki();
  const a = await pki.server('cfg-missing', { dns: ['a.example.test'] });
  const file = await tlsConfigFile(t, ['      certificates:', `        - {cert: ${a.cert}.missing, key: ${a.key}}`]);
  await assertConfigError(file, [10], /endpoints\[0\]\.tls\.certificates\[0\]\.cert/);
  // The daemon refuses to start on it too, without binding anything.
  const started = await startDaemonExpectingExit(t, { config: { endpoints: [{ name: 'secure', listen: '127.0.0.1:0', onramp: 'http', tls: { certificates: [{ cert: `${a.cert}.missing`, key: a.key }] } }] } });
  assert.notEqual(started.code, 0, started.output);
  assert.equal(started.signal, null, started.output);
  assert.equal(started.wroteReadyFile, false);
});

test('a key that does not match its certificate', async (t) => {
  const pki = await sharedPki();
  const a = await pki.server('cfg-pair-a', { dns: ['a.example.test'] });
  const b = await pki.server('cfg-pair-b', { dns: ['b.example.test'] });
  const file = await tlsConfigFile(t, ['      certificates:', `        - {cert: ${a.cert}, key: ${a.key}}`, `        - {cert: ${b.cert}, key: ${a.key}}`]);
  await assertConfigError(file, [11], /endpoints\[0\]\.tls\.certificates\[1\]\.(key|cert)/);
});

test('an unknown ALPN name', async (t) => {
  const pki = await sharedPki();
  const a = await pki.server('cfg-alpn', { dns: ['a.example.test'] });
  const file = await tlsConfigFile(t, ['      certificates:', `        - {cert: ${a.cert}, key: ${a.key}}`, '      alpn: [http/1.1, spdy/9]']);
  await assertConfigError(file, [11], /endpoints\[0\]\.tls\.alpn(\[1\])?/);
});

test('an impossible version range, and a version that does not exist', async (t) => {
  const pki = await sharedPki();
  const a = await pki.server('cfg-versions', { dns: ['a.example.test'] });
  const cert = ['      certificates:', `        - {cert: ${a.cert}, key: ${a.key}}`];
  const range = await tlsConfigFile(t, [...cert, '      min_version: "1.3"', '      max_version: "1.2"']);
  await assertConfigError(range, [11, 12], /endpoints\[0\]\.tls\.(min|max)_version/);
  const old = await tlsConfigFile(t, [...cert, '      min_version: "1.0"']);
  await assertConfigError(old, [11], /endpoints\[0\]\.tls\.min_version/);
});

test('upstream_tls with a CA file that does not exist', async (t) => {
  const pki = await sharedPki();
  const a = await pki.server('cfg-upstream', { dns: ['a.example.test'] });
  const file = await tlsConfigFile(
    t,
    ['      certificates:', `        - {cert: ${a.cert}, key: ${a.key}}`],
    ['    upstream: https://127.0.0.1:9', '    upstream_tls:', `      ca: ${pki.ca}.missing`],
  );
  await assertConfigError(file, [13], /endpoints\[0\]\.upstream_tls\.ca/);
});
