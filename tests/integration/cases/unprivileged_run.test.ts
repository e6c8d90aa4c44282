// Issue 10, item 7: `make run` for a user without root. The demo config
// (config/ramjet.yaml) keeps the default admin socket /run/ramjet/admin.sock,
// whose directory such a user cannot create: the daemon must still start, with
// the socket under $XDG_RUNTIME_DIR (or beside the config when that is unset),
// and say so once in its log. A directory that cannot be created is reported
// with its path and errno.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { canRunAs } from '../lib/ramjetctl.ts';
import { adminRequest, binaryPath, defer, makeTempDir, ManagedProcess, REPO_ROOT, run, test, waitFor, type ReadyInfo } from '../lib/index.ts';

const asNobody = await canRunAs('nobody');
const skip = asNobody.ok ? false : asNobody.why;
const FALLBACK_LINE = /the admin socket is (\S+) instead/g;

async function nobody(): Promise<{ uid: number; gid: number }> {
  const uid = await run('id', ['-u', 'nobody']);
  const gid = await run('getent', ['group', 'nogroup']);
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.split(':')[2]) };
}

/** A directory owned by nobody, holding the demo config with ephemeral ports and a ready file. */
async function demoAsNobody(t: TestContext): Promise<{ dir: string; config: string; ready: string }> {
  const { uid, gid } = await nobody();
  const dir = await makeTempDir(t, 'ramjet-it-nobody-');
  await chown(dir, uid, gid);
  const demo = await readFile(join(REPO_ROOT, 'config/ramjet.yaml'), 'utf8');
  const text = demo.replace('listen: 127.0.0.1:9000', 'listen: 127.0.0.1:0');
  assert.notEqual(text, demo, 'the demo config no longer listens on 127.0.0.1:9000: update this test');
  assert.doesNotMatch(demo, /^(server|telemetry):/m, 'the demo now has a server or telemetry section: update this test');
  const ready = join(dir, 'ready.json');
  // Only what a test needs on a shared machine: ports and the ready file. The admin socket stays the default.
  const config = join(dir, 'ramjet.yaml');
  await writeFile(config, `${text}\nserver: {ready_file: ${ready}}\ntelemetry: {metrics: {listen: "127.0.0.1:0"}}\n`);
  await chown(config, uid, gid);
  return { dir, config, ready };
}

function startAsNobody(t: TestContext, config: string, env: Record<string, string | undefined>): ManagedProcess {
  const proc = new ManagedProcess('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', binaryPath('ramjetd'), '--config', config], { env });
  defer(t, 'ramjetd as nobody', async () => void (await proc.terminate(2_000)));
  return proc;
}

async function readyOf(proc: ManagedProcess, ready: string): Promise<ReadyInfo> {
  return waitFor(
    async () => {
      if (proc.exited) throw new Error(`ramjetd exited before becoming ready:\n${proc.output()}`);
      return existsSync(ready) ? (JSON.parse(await readFile(ready, 'utf8')) as ReadyInfo) : undefined;
    },
    { timeoutMs: 10_000, what: 'the ready file' },
  );
}

test('without root and with XDG_RUNTIME_DIR: the demo starts, its admin socket under $XDG_RUNTIME_DIR/ramjet, said once', { skip }, async (t) => {
  const { dir, config, ready } = await demoAsNobody(t);
  const runtimeDir = join(dir, 'xdg');
  await mkdir(runtimeDir, { mode: 0o700 });
  const { uid, gid } = await nobody();
  await chown(runtimeDir, uid, gid);
  const proc = startAsNobody(t, config, { XDG_RUNTIME_DIR: runtimeDir });
  const info = await readyOf(proc, ready);
  assert.equal(info.admin_socket, join(runtimeDir, 'ramjet/admin.sock'), proc.output());
  assert.equal((await adminRequest(info.admin_socket, 'GET', '/v1/status')).status, 200);
  const said = [...proc.output().matchAll(FALLBACK_LINE)];
  assert.equal(said.length, 1, `the fallback must be said exactly once:\n${proc.output()}`);
  assert.equal(said[0]![1], info.admin_socket);
  assert.match(proc.output(), /cannot create directory \/run\/ramjet: Permission denied \(errno 13\)|cannot create files in \/run\/ramjet/);
  proc.signal('SIGTERM');
  assert.equal((await proc.waitExit(10_000)).code, 0, proc.output());
});

test('without root and without XDG_RUNTIME_DIR: the admin socket goes beside the config', { skip }, async (t) => {
  const { dir, config, ready } = await demoAsNobody(t);
  const proc = startAsNobody(t, config, { XDG_RUNTIME_DIR: undefined });
  const info = await readyOf(proc, ready);
  assert.equal(info.admin_socket, join(dir, 'admin.sock'), proc.output());
  assert.equal((await adminRequest(info.admin_socket, 'GET', '/v1/status')).status, 200);
  assert.equal([...proc.output().matchAll(FALLBACK_LINE)].length, 1, proc.output());
});

test('an admin socket directory the user cannot create: exit 1 naming the directory and errno', { skip }, async (t) => {
  const { config } = await demoAsNobody(t);
  const missing = `/run/ramjet-it-${randomBytes(3).toString('hex')}`;
  await writeFile(config, `${await readFile(config, 'utf8')}`.replace('server: {', `server: {admin_socket: ${missing}/sub/admin.sock, `));
  const proc = startAsNobody(t, config, {});
  const status = await proc.waitExit(10_000);
  assert.equal(status.code, 1, proc.output());
  assert.match(proc.stderr(), new RegExp(`server\\.admin_socket: cannot create directory ${missing}: Permission denied \\(errno 13\\)`));
  assert.equal(existsSync(missing), false);
});
