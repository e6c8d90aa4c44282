// HTTP forward proxy authentication: Basic against an htpasswd file (sha512-crypt,
// bcrypt, yescrypt) and pre-shared keys; missing or wrong credentials get 407
// with a challenge, nothing reaches the origin, credentials are never forwarded
// and a wrong password never shows up in the daemon's output or access log.
import assert from 'node:assert/strict';
import { copyFile, appendFile, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  assertProxyError,
  makeTempDir,
  rawExchangeExpectingClose,
  rawHttpClient,
  run,
  runCurl,
  startHttpOrigin,
  startHttpProxy,
  test,
  type HttpResponse,
  type TestContext,
} from '../lib/index.ts';

const FIXTURE = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/http/htpasswd');
const REALM = 'ramjet-test';
const PSK = 'psk-0123456789abcdef-XYZ';
/** Users in fixtures/http/htpasswd, plus bob generated with openssl at test time. */
const USERS: Record<string, string> = { alice: 'alice-secret', carol: 'carol-secret', dave: 'dave-secret', bob: 'bob-secret' };

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/** The fixture plus a sha512-crypt line made by `openssl passwd -6` now. */
async function htpasswdFile(t: TestContext): Promise<string> {
  const dir = await makeTempDir(t);
  const path = join(dir, 'htpasswd');
  await copyFile(FIXTURE, path);
  const hashed = await run('openssl', ['passwd', '-6', '-salt', 'abcdefgh', USERS.bob!]);
  assert.equal(hashed.code, 0, hashed.output);
  assert.match(hashed.stdout.trim(), /^\$6\$abcdefgh\$/);
  await appendFile(path, `bob:${hashed.stdout.trim()}\n`);
  return path;
}

async function startAuthProxy(t: TestContext, extraConfig: Record<string, unknown> = {}) {
  const htpasswd = await htpasswdFile(t);
  const origin = await startHttpOrigin(t);
  const proxy = await startHttpProxy(t, {
    endpoint: { auth: { htpasswd, preshared_keys: [PSK], realm: REALM } },
    config: extraConfig,
  });
  return { ...proxy, origin };
}

function assertChallenge(res: HttpResponse): void {
  assertProxyError(res, 407, 'http_request_denied');
  const challenge = res.get('proxy-authenticate') ?? '';
  assert.ok(challenge.includes(`Basic realm="${REALM}", charset="UTF-8"`), `Basic challenge missing: ${JSON.stringify(challenge)}`);
  assert.ok(challenge.includes(`Preshared realm="${REALM}"`), `Preshared challenge missing: ${JSON.stringify(challenge)}`);
}

test('Basic auth: every htpasswd hash kind logs in; the origin never sees Proxy-Authorization', async (t) => {
  const { daemon, origin, url: proxyUrl } = await startAuthProxy(t);
  for (const [user, password] of Object.entries(USERS)) {
    const r = await runCurl(t, ['-x', proxyUrl, '--proxy-user', `${user}:${password}`, origin.url(`/${user}`)]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.last?.status, 200, `${user}: ${r.last?.summary() ?? r.stderr}`);
    assert.equal(r.body.toString(), `GET /${user}\n`);
  }
  assert.equal(origin.requests.length, Object.keys(USERS).length);
  for (const seen of origin.requests) assert.equal(seen.headers['proxy-authorization'], undefined, 'credentials must not be forwarded');
  assert.equal(await daemon.counter('http_client_errors'), 0);
});

test('missing, wrong or malformed credentials: 407 with a challenge, nothing reaches the origin', async (t) => {
  const { daemon, origin, proxy, url: proxyUrl } = await startAuthProxy(t);

  const viaCurl = await runCurl(t, ['-x', proxyUrl, '--proxy-user', 'alice:not-her-password', origin.url('/wrong')]);
  assert.equal(viaCurl.last?.status, 407, viaCurl.stderr);
  assert.match(viaCurl.last?.get('proxy-authenticate') ?? '', /Basic realm="ramjet-test"/);

  const request = (auth?: string): string =>
    `GET ${origin.url('/x')} HTTP/1.1\r\nHost: a.test\r\n${auth === undefined ? '' : `Proxy-Authorization: ${auth}\r\n`}\r\n`;
  const cases: Array<[string, string | undefined]> = [
    ['missing', undefined],
    ['wrong password', basic('alice', 'nope')],
    ['unknown user', basic('mallory', 'alice-secret')],
    ['password of another user', basic('alice', 'carol-secret')],
    ['malformed base64', 'Basic !!!notbase64'],
    ['no colon', `Basic ${Buffer.from('alicealice-secret').toString('base64')}`],
    ['wrong pre-shared key', 'Preshared psk-0123456789abcdef-XYy'],
    ['unsupported scheme', 'Bearer abcdefghijklmnopqrstuvwxyz'],
    ['Authorization instead of Proxy-Authorization', undefined],
  ];
  for (const [name, auth] of cases) {
    const bytes = name.startsWith('Authorization')
      ? `GET ${origin.url('/x')} HTTP/1.1\r\nHost: a.test\r\nAuthorization: ${basic('alice', 'alice-secret')}\r\n\r\n`
      : request(auth);
    const { response, close } = await rawExchangeExpectingClose(t, proxy, bytes);
    try {
      assertChallenge(response);
    } catch (error) {
      throw new Error(`${name}: ${error instanceof Error ? error.message : String(error)}`);
    }
    assert.ok(['eof', 'reset'].includes(close.kind));
  }

  // CONNECT is guarded the same way.
  const connect = await rawExchangeExpectingClose(t, proxy, `CONNECT ${origin.address} HTTP/1.1\r\nHost: ${origin.address}\r\nProxy-Authorization: ${basic('alice', 'nope')}\r\n\r\n`);
  assertChallenge(connect.response);

  assert.equal(origin.connections, 0, 'no unauthenticated request may reach the origin');
  await daemon.waitForCounter('http_client_errors', cases.length + 2);
  assert.equal(await daemon.counter('http_connect_tunnels'), 0);
});

test('pre-shared key: "Proxy-Authorization: Preshared <key>" works for requests and CONNECT', async (t) => {
  const { daemon, origin, proxy, url: proxyUrl } = await startAuthProxy(t);
  const client = await rawHttpClient(t, proxy);
  await client.send(`GET ${origin.url('/psk')} HTTP/1.1\r\nHost: a.test\r\nProxy-Authorization: Preshared ${PSK}\r\n\r\n`);
  const res = await client.response();
  assert.equal(res.status, 200, res.summary());
  assert.equal(res.body.toString(), 'GET /psk\n');
  // Credentials are per request: the next one on the same connection needs them too.
  await client.send(`GET ${origin.url('/again')} HTTP/1.1\r\nHost: a.test\r\n\r\n`);
  assertChallenge(await client.response());
  assert.equal(origin.requests[0]!.headers['proxy-authorization'], undefined);

  const tunnel = await runCurl(t, ['-p', '-x', proxyUrl, '--proxy-header', `Proxy-Authorization: Preshared ${PSK}`, origin.url('/tunnelled')]);
  assert.equal(tunnel.code, 0, tunnel.stderr);
  assert.equal(tunnel.heads[0]?.status, 200, 'CONNECT answer');
  assert.equal(tunnel.body.toString(), 'GET /tunnelled\n');
  const basicTunnel = await runCurl(t, ['-p', '-x', proxyUrl, '--proxy-user', 'alice:alice-secret', origin.url('/tunnelled-basic')]);
  assert.equal(basicTunnel.code, 0, basicTunnel.stderr);
  assert.equal(basicTunnel.body.toString(), 'GET /tunnelled-basic\n');
  assert.equal(await daemon.counter('http_connect_tunnels'), 2);
  assert.deepEqual(
    origin.requests.map((r) => r.url),
    ['/psk', '/tunnelled', '/tunnelled-basic'],
  );
});

test('a wrong password or key never appears in the daemon output or the access log', async (t) => {
  const CANARY_PASSWORD = 'Canary-Pa55word-7f3a9c';
  const CANARY_KEY = 'CanaryPresharedKey-0123456789';
  const { daemon, origin, proxy, url: proxyUrl } = await startAuthProxy(t, { logging: { level: 'trace' } });
  const r = await runCurl(t, ['-x', proxyUrl, '--proxy-user', `alice:${CANARY_PASSWORD}`, origin.url('/leak')]);
  assert.equal(r.last?.status, 407);
  for (const auth of [basic('alice', CANARY_PASSWORD), basic('nobody', CANARY_PASSWORD), `Preshared ${CANARY_KEY}`]) {
    const { response } = await rawExchangeExpectingClose(t, proxy, `GET ${origin.url('/leak')} HTTP/1.1\r\nHost: a.test\r\nProxy-Authorization: ${auth}\r\n\r\n`);
    assertChallenge(response);
    assert.ok(!response.raw.toString('latin1').includes(CANARY_PASSWORD), 'the 407 must not echo the password');
  }
  // A good login too: its password must not be logged either.
  const good = await runCurl(t, ['-x', proxyUrl, '--proxy-user', 'alice:alice-secret', origin.url('/ok')]);
  assert.equal(good.last?.status, 200);
  await daemon.waitForCounter('connections_closed', 5);
  const accessLog = await readFile(daemon.accessLogPath!, 'utf8');
  const trace = JSON.stringify(await daemon.trace());
  await daemon.stop();
  const output = daemon.output();
  assert.ok(accessLog.length > 0 && output.length > 0, 'there is something to search');
  const secrets = [
    CANARY_PASSWORD,
    CANARY_KEY,
    'alice-secret',
    Buffer.from(`alice:${CANARY_PASSWORD}`).toString('base64'),
    Buffer.from(`nobody:${CANARY_PASSWORD}`).toString('base64'),
    Buffer.from('alice:alice-secret').toString('base64'),
  ];
  for (const secret of secrets) {
    assert.ok(!output.includes(secret), `daemon output contains ${secret}`);
    assert.ok(!accessLog.includes(secret), `access log contains ${secret}`);
    assert.ok(!trace.includes(secret), `hook trace contains ${secret}`);
  }
});

test('reload re-reads the htpasswd file and the running endpoint\'s auth settings; open connections keep theirs', async (t) => {
  const { daemon, proxy, origin } = await startAuthProxy(t);
  const htpasswd = (daemon.config.endpoints![0]!.auth as { htpasswd: string }).htpasswd;
  const get = (auth: string): string => `GET ${origin.url('/r')} HTTP/1.1\r\nHost: a.test\r\nProxy-Authorization: ${auth}\r\n\r\n`;

  // A connection that logged in before the reload.
  const before = await rawHttpClient(t, proxy);
  await before.send(get(basic('alice', USERS.alice!)));
  assert.equal((await before.response()).status, 200);

  // alice is removed from the file, erin is added, and the realm changes in the config.
  const erin = await run('openssl', ['passwd', '-6', '-salt', 'ijklmnop', 'erin-secret']);
  const lines = (await readFile(htpasswd, 'utf8')).split('\n').filter((l) => l !== '' && !l.startsWith('alice:'));
  await writeFile(htpasswd, `${[...lines, `erin:${erin.stdout.trim()}`].join('\n')}\n`);
  const edited = JSON.parse(await readFile(daemon.configPath, 'utf8')) as { endpoints: Array<{ auth: { realm: string } }> };
  edited.endpoints[0]!.auth.realm = 'renamed';
  await writeFile(daemon.configPath, `${JSON.stringify(edited, null, 2)}\n`);
  const res = await daemon.admin('POST', '/v1/reload');
  assert.equal(res.status, 200, res.body);
  const body = JSON.parse(res.body) as { applied: string[]; restart_required: string[] };
  assert.deepEqual(body.applied, ['endpoints[fwd].auth.realm']);
  assert.deepEqual(body.restart_required, []);

  const erinRes = await rawExchangeExpectingClose(t, proxy, get(basic('erin', 'erin-secret')).replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'));
  assert.equal(erinRes.response.status, 200, `a user added to the file logs in after the reload: ${erinRes.response.summary()}`);
  const aliceRes = await rawExchangeExpectingClose(t, proxy, get(basic('alice', USERS.alice!)));
  assertProxyError(aliceRes.response, 407, 'http_request_denied');
  assert.match(aliceRes.response.get('proxy-authenticate') ?? '', /realm="renamed"/);

  // The connection opened before the reload keeps the authenticator it started with.
  await before.send(get(basic('alice', USERS.alice!)));
  assert.equal((await before.response()).status, 200);

  // An unreadable file: the reload fails, naming the endpoint, and nothing changes.
  edited.endpoints[0]!.auth = { ...edited.endpoints[0]!.auth, htpasswd: `${htpasswd}.missing` } as typeof edited.endpoints[0]['auth'];
  await writeFile(daemon.configPath, `${JSON.stringify(edited, null, 2)}\n`);
  const failed = await daemon.admin('POST', '/v1/reload');
  assert.equal(failed.status, 400, failed.body);
  assert.match(failed.body, /endpoints\.fwd\.auth/);
  const still = await rawExchangeExpectingClose(t, proxy, get(basic('erin', 'erin-secret')).replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'));
  assert.equal(still.response.status, 200);
});
