// Self-test of the blackhole helper: SYNs to it must go unanswered (a connect
// times out) rather than be refused, while other addresses on the same port
// keep working. The happy-eyeballs case depends on exactly this.
import assert from 'node:assert/strict';
import { startBlackhole, startEchoServer, test, tryConnect, connect } from '../lib/index.ts';

test('connects to a blackhole time out instead of being refused', async (t) => {
  const hole = await startBlackhole(t);
  assert.equal(hole.host, '127.0.0.3');
  const start = performance.now();
  assert.equal(await tryConnect({ host: hole.host, port: hole.port, timeoutMs: 1_000 }), 'timeout');
  assert.ok(performance.now() - start >= 900, 'the connect must hang until our own timeout');
  // Still a blackhole on the second try (the accept queue stays full).
  assert.equal(await tryConnect({ host: hole.host, port: hole.port, timeoutMs: 500 }), 'timeout');
});

test('a blackhole can share the port of a live server on another address', async (t) => {
  const echo = await startEchoServer(t, { host: '127.0.0.1' });
  const hole = await startBlackhole(t, { host: '127.0.0.3', port: echo.port });
  assert.equal(hole.port, echo.port);
  assert.equal(await tryConnect({ host: '127.0.0.3', port: echo.port, timeoutMs: 700 }), 'timeout');
  const client = await connect(t, { host: '127.0.0.1', port: echo.port });
  assert.equal((await client.roundTrip('ping')).toString(), 'ping');
});

test('after close the address refuses again', async (t) => {
  const hole = await startBlackhole(t);
  await hole.close();
  assert.equal(await tryConnect({ host: hole.host, port: hole.port, timeoutMs: 1_000 }), 'refused');
});
