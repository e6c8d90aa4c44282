// The skip policy of lib/lifecycle.ts: a skip is listed with its reason, and
// under RAMJET_NO_SKIP=1 (CI as root) it is a failure.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTempDir, run, test } from '../lib/index.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/skipping_fixture.ts', import.meta.url));

function runFixture(env: Record<string, string | undefined>) {
  return run(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', FIXTURE], {
    timeoutMs: 30_000,
    env: { NODE_TEST_CONTEXT: undefined, RAMJET_NO_SKIP: undefined, RAMJET_SKIP_LOG: undefined, ...env },
  });
}

test('a skip is allowed and written to RAMJET_SKIP_LOG with its reason', async (t) => {
  const log = join(await makeTempDir(t), 'skipped.txt');
  const result = await runFixture({ RAMJET_SKIP_LOG: log });
  assert.equal(result.code, 0, result.output);
  assert.deepEqual((await readFile(log, 'utf8')).trimEnd().split('\n').sort(), [
    'integration skipping_fixture.ts: a step that skips: needs a second unicorn',
    'integration skipping_fixture.ts: skips on purpose: needs a unicorn',
  ]);
});

test('under RAMJET_NO_SKIP=1 a skip fails, naming its reason', async () => {
  const result = await runFixture({ RAMJET_NO_SKIP: '1' });
  assert.notEqual(result.code, 0, result.output);
  assert.match(result.output, /would be skipped \(needs a unicorn\), and RAMJET_NO_SKIP=1 makes a skip a failure/);
  assert.match(result.output, /would be skipped \(needs a second unicorn\)/);
  assert.match(result.output, /# pass 1\b|ℹ pass 1\b/, 'the test that runs still passes');
  assert.match(result.output, /ℹ skipped 0|# skipped 0/);
});
