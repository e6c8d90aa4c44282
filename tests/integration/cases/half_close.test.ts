// Case 6: a client half-close (FIN after its data) is relayed to the upstream,
// which only answers after seeing EOF; the answer still reaches the client.
import assert from 'node:assert/strict';
import { connect, randomPayload, sha256, startDaemon, startReplyOnEofServer, tcpEndpoint, test } from '../lib/index.ts';

for (const relay of ['splice', 'buffer', 'auto'] as const) {
  test(`relay ${relay}: client half-close reaches the upstream and the reply comes back`, async (t) => {
    const upstream = await startReplyOnEofServer(t, (data) => `got ${data.length} bytes, sha256 ${sha256(data)}\n`);
    const daemon = await startDaemon(t, {
      config: { egress: { allow_private: ['127.0.0.0/8'] }, endpoints: [tcpEndpoint('tcp-demo', upstream.address, { relay })] },
    });
    const client = await connect(t, daemon.endpoint('tcp-demo'));
    const payload = randomPayload(256 * 1024);
    await client.write(payload);
    await client.end();
    const close = await client.waitForPeerClose(10_000);
    assert.equal(close.kind, 'eof', 'the upstream closed with a FIN; the client must see a FIN, not a reset');
    assert.equal(client.received().toString(), `got ${payload.length} bytes, sha256 ${sha256(payload)}\n`);
    await daemon.waitForCounter('connections_closed', 1);
    const entry = await daemon.waitForAccessLog((e) => e.endpoint === 'tcp-demo');
    assert.equal(entry.reason, 'completed');
  });
}
