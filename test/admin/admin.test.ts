import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { Metrics } from '../../src/admin/metrics';
import { buildAdmin, registerXdsMetrics } from '../../src/admin/server';
import { CLUSTER } from '../../src/xds/resource-types';
import { cluster, startAds, type TestAds } from '../xds/util';

describe('admin server', () => {
  let t: TestAds;
  let app: FastifyInstance;
  let base: string;
  let ready = false;
  const metrics = new Metrics();

  before(async () => {
    t = await startAds();
    registerXdsMetrics(metrics, t.server);
    app = buildAdmin({
      metrics,
      xds: t.server,
      ready: () => ready,
      notReadyReason: () => 'inputs not synced',
    });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
  });
  after(async () => {
    await app.close();
    await t.stop();
  });

  it('is live at once and ready only when told', async () => {
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    const r = await fetch(`${base}/readyz`);
    assert.equal(r.status, 503);
    assert.deepEqual(await r.json(), { status: 'not ready', reason: 'inputs not synced' });
    ready = true;
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
  });

  it('exports xDS metrics and debug views of real proxies', async () => {
    t.set('g', { [CLUSTER]: [cluster('a')] });
    const c = t.client({ nodeId: 'p1', cluster: 'g' });
    c.subscribe(CLUSTER, []);
    await c.waitFor(() => c.resources(CLUSTER).size === 1);
    const deadline = Date.now() + 5000;
    let text = '';
    while (Date.now() < deadline) {
      text = await (await fetch(`${base}/metrics`)).text();
      if (text.includes('weft_xds_acks_total{type="cds"} 1')) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.match(text, /# TYPE weft_xds_acks_total counter/);
    assert.match(text, /weft_xds_acks_total\{type="cds"\} 1/);
    assert.match(text, /weft_xds_connected_proxies 1/);
    const proxies = (await (await fetch(`${base}/debug/proxies`)).json()) as {
      node: { id: string };
      group: string;
    }[];
    assert.deepEqual(
      proxies.map((p) => [p.node.id, p.group]),
      [['p1', 'g']],
    );
    const snaps = (await (await fetch(`${base}/debug/snapshots`)).json()) as {
      group: string;
      types: { cds: { names: string[] } };
    }[];
    assert.deepEqual(snaps[0]?.types.cds.names, ['a']);
  });
});
