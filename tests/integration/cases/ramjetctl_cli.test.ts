// ramjetctl's command line without a live datapath: the bash completion script
// (sourced in a real bash, its function called as bash would), usage errors
// (exit 2), and what an unprivileged user is told (exit 4).
import assert from 'node:assert/strict';
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { binaryPath, REPO_ROOT, run, startDaemon, test } from '../lib/index.ts';
import { canRunAs, ramjetctl } from '../lib/ramjetctl.ts';

const COMPLETION = join(REPO_ROOT, 'tools/ramjetctl/ramjetctl.bash-completion');

/** COMPREPLY after completing the last word of `line` (a trailing space starts a new word). */
async function complete(line: string): Promise<string[]> {
  const words = line.split(' ');
  const script = [
    `source ${JSON.stringify(COMPLETION)}`,
    `COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')})`,
    `COMP_CWORD=${words.length - 1}`,
    `COMP_LINE=${JSON.stringify(line)}`,
    '_ramjetctl',
    'printf "%s\\n" "${COMPREPLY[@]}"',
  ].join('\n');
  const r = await run('bash', ['--noprofile', '--norc', '-c', script]);
  assert.equal(r.code, 0, r.output);
  return r.stdout.split('\n').filter((w) => w !== '');
}

test('bash completion: commands, subcommands, options and closed value sets', async () => {
  const top = await complete('ramjetctl ');
  for (const cmd of ['status', 'stats', 'flows', 'block', 'unblock', 'blocks', 'rules', 'events', 'config', 'reload', 'drain', '--json']) {
    assert.ok(top.includes(cmd), `"ramjetctl " should offer ${cmd}: ${top.join(' ')}`);
  }
  assert.deepEqual(await complete('ramjetctl fl'), ['flows']);
  assert.deepEqual(await complete('ramjetctl flows '), ['list', 'show', 'kill', 'top']);
  assert.deepEqual(await complete('ramjetctl --admin-socket /run/x.sock --json flows t'), ['top']);
  assert.deepEqual(await complete('ramjetctl flows list --sort b'), ['bytes']);
  assert.deepEqual(await complete('ramjetctl flows list --verdict e'), ['escalate', 'engine']);
  assert.ok((await complete('ramjetctl flows list --')).includes('--limit'));
  assert.ok((await complete('ramjetctl flows top --')).includes('--iterations'));
  assert.deepEqual(await complete('ramjetctl rules '), ['list', 'add', 'del']);
  assert.deepEqual(await complete('ramjetctl rules add web --action es'), ['escalate']);
  assert.deepEqual(await complete('ramjetctl block 10.0.0.1 --'), ['--for', '--json']);
  assert.deepEqual(await complete('ramjetctl events -'), ['--follow', '--json']);
  assert.deepEqual(await complete('ramjetctl config '), ['check', 'default']);
  // `config check FILE` completes file names.
  const files = await complete(`ramjetctl config check ${join(REPO_ROOT, 'config')}/ramjet.ya`);
  assert.deepEqual(files, [join(REPO_ROOT, 'config/ramjet.yaml')]);
});

test('usage errors exit 2 and say what is wrong; --help exits 0', async () => {
  const ctl = ramjetctl({ adminSocket: '/nonexistent/admin.sock', instance: 'never-was' });
  const cases: Array<[string[], RegExp]> = [
    [['flows', 'list', '--sort', 'colour'], /invalid --sort "colour" \(none, id, bytes, packets, age, idle or rate\)/],
    [['flows', 'list', '--src', '10.0.0.0/33'], /invalid --src "10\.0\.0\.0\/33": expected an address or CIDR/],
    [['flows', 'list', '--verdict', 'maybe'], /invalid --verdict "maybe"/],
    [['flows', 'kill'], /flows kill needs a flow id or at least one filter/],
    [['flows', 'top', '--interval', '5'], /invalid --interval "5"/],
    [['block', 'not-an-address'], /invalid CIDR "not-an-address"/],
    [['block', '10.0.0.1', '--for', 'ever'], /invalid --for "ever"/],
    [['frobnicate'], /unknown command "frobnicate"/],
  ];
  for (const [args, message] of cases) {
    const r = await ctl.run(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.output}`);
    assert.match(r.stderr, message, args.join(' '));
  }
  const help = await ctl.run(['flows', 'list', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--sort/);
});

const asNobody = await canRunAs('nobody');

test('without privileges: the admin socket and the pinned maps say what is missing (exit 4)', { skip: asNobody.ok ? false : asNobody.why }, async (t) => {
  const daemon = await startDaemon(t, { config: { endpoints: [] } });
  await chmod(daemon.dir, 0o755); // so the socket itself, not its directory, is what refuses
  const ctl = ramjetctl({ adminSocket: daemon.adminSocket, asUser: 'nobody' });
  for (const args of [['status'], ['stats'], ['flows', 'list'], ['block', '10.0.0.1'], ['reload']]) {
    const r = await ctl.run(args);
    assert.equal(r.code, 4, `${args.join(' ')}: ${r.output}`);
    assert.match(r.stderr, new RegExp(`permission denied on ${daemon.adminSocket.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(0600, owned by root\\): run as root`), args.join(' '));
  }

  // With no daemon, the pinned maps are root's: the message names the path and CAP_BPF.
  const instance = `ctl-nobody-${process.pid}`;
  const gen = binaryPath('ramjet-flowgen');
  const made = await run(gen, ['--instance', instance, '--flows', '10']);
  assert.equal(made.code, 0, made.output);
  t.after(() => run(gen, ['--instance', instance, '--remove']).then(() => undefined));
  const offline = ramjetctl({ adminSocket: join(daemon.dir, 'gone.sock'), instance, asUser: 'nobody' });
  for (const args of [['flows', 'list'], ['flows', 'kill', '1'], ['block', '10.0.0.1'], ['stats']]) {
    const r = await offline.run(args);
    assert.equal(r.code, 4, `${args.join(' ')}: ${r.output}`);
    assert.match(r.stderr, new RegExp(`cannot open pinned map /sys/fs/bpf/ramjet/${instance}/\\w+: permission denied on \\S+ \\(\\d{4}, owned by root\\): needs root \\(CAP_BPF`), args.join(' '));
  }
  // As root the same pins read fine.
  const asRoot = await ramjetctl({ adminSocket: join(daemon.dir, 'gone.sock'), instance }).run(['flows', 'list', '--json']);
  assert.equal(asRoot.code, 0, asRoot.output);
  assert.equal((JSON.parse(asRoot.stdout) as unknown[]).length, 10);
});
