/**
 * `weft serve --config-dir` end to end: SMI manifests in a folder, real proxyless gRPC servers and
 * clients from @grpc/grpc-js-xds, and real RPCs that follow the folder as it is edited.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setLogLevel } from '../../src/log';
import { freePort } from '../../src/net';
import { type RunningServe, startServe } from '../../src/serve';
import { EchoClient, type EchoServer, proxylessBootstrap, startEchoServer } from '../../src/workload/echo';
import { addresses, BUYER_MAY_CALL, ConfigDir, split, workloads } from './mesh-fixture';

setLogLevel(process.env.WEFT_LOG_LEVEL === 'debug' ? 'debug' : 'silent');
let A: ReturnType<typeof addresses>;

async function tally(
  c: EchoClient,
  n: number,
): Promise<{ counts: Record<string, number>; failed: number; lastError?: string }> {
  const counts: Record<string, number> = {};
  let failed = 0;
  let lastError: string | undefined;
  for (let i = 0; i < n; i++) {
    try {
      const r = await c.call('Get', {}, 3000);
      counts[r.backend] = (counts[r.backend] ?? 0) + 1;
    } catch (e) {
      failed++;
      lastError = (e as { details?: string }).details ?? String(e);
      if (failed >= 3) break;
    }
  }
  return { counts, failed, lastError };
}

describe('weft serve --config-dir with real proxyless gRPC workloads', () => {
  const dir = new ConfigDir();
  let weft: RunningServe;
  let servers: EchoServer[] = [];
  let buyer: EchoClient;
  let thief: EchoClient;

  before(async () => {
    A = addresses(41, await freePort(), await freePort());
    dir.write('workloads.yaml', workloads(A));
    dir.write('access.yaml', BUYER_MAY_CALL);
    dir.write('split.yaml', split(90, 10));
    weft = await startServe({
      configDir: dir.path,
      xdsAddress: '127.0.0.1:0',
      mtls: false,
      insecureXds: true,
    });
    const boot = (id: string) => proxylessBootstrap({ xdsServer: `127.0.0.1:${weft.port}`, nodeId: id });
    servers = await Promise.all([
      startEchoServer({ name: 'v1', address: `${A.v1}:${A.v1Port}`, bootstrap: boot('shop/store-v1') }),
      startEchoServer({ name: 'v2', address: `${A.v2}:${A.v2Port}`, bootstrap: boot('shop/store-v2') }),
    ]);
    buyer = new EchoClient(`xds:///store.shop:${A.port}`, boot('shop/buyer'));
    thief = new EchoClient(`xds:///store.shop:${A.port}`, boot('shop/thief'));
  });
  after(async () => {
    buyer.close();
    thief.close();
    for (const s of servers) await s.stop();
    await weft.stop();
    dir.remove();
  });

  it('splits 90/10 as the TrafficSplit says', async () => {
    const { counts, failed, lastError } = await tally(buyer, 200);
    assert.equal(failed, 0, lastError);
    // Binomial(200, 0.9): mean 180, sd 4.2; 150..199 is more than seven sd below the mean.
    assert.ok((counts.v1 ?? 0) > 150 && (counts.v2 ?? 0) > 0, JSON.stringify(counts));
  });

  it('moves traffic when the split file is edited, without failed calls', async () => {
    const compiled = weft.nextCompile();
    dir.write('split.yaml', split(0, 100));
    await compiled;
    // The proxy ACKs the new routes shortly after the compile; wait for its ACK, then count.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const r = await buyer.call();
      if (r.backend === 'v2') {
        const again = await tally(buyer, 50);
        if (again.counts.v2 === 50) break;
      }
    }
    const { counts, failed } = await tally(buyer, 100);
    assert.equal(failed, 0);
    assert.deepEqual(counts, { v2: 100 });
  });

  it('keeps the last good config when a file stops parsing, and reports it', async () => {
    const compiled = weft.nextCompile();
    dir.write(
      'split.yaml',
      'apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: { name: [broken\n',
    );
    await compiled;
    const cond = weft.compiler?.currentConditions.find((c) => c.reason === 'YamlParseError');
    assert.match(cond?.message ?? '', /split\.yaml/);
    const { counts, failed } = await tally(buyer, 50);
    assert.equal(failed, 0);
    assert.deepEqual(counts, { v2: 50 }, 'the last good split (0/100) still applies');
  });

  it('gives a workload without a TrafficTarget no route to the service (deny by default)', async () => {
    // Its proxy is sent no listener for the service, so the call cannot even resolve it.
    await assert.rejects(thief.call('Get', {}, 2000), (e: { details?: string }) =>
      /name resolution|does not exist|unavailable/i.test(e.details ?? ''),
    );
  });
});
