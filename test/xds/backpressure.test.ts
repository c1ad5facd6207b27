import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ReceivedResponse } from '../../src/xds/client';
import { CLUSTER } from '../../src/xds/resource-types';
import { cluster, startAds, type TestAds } from './util';

/** A snapshot of 300 clusters with long names: about 100 KB per CDS response. */
function big(version: number) {
  return {
    [CLUSTER]: Array.from({ length: 300 }, (_, i) =>
      cluster(`${'x'.repeat(200)}-${i}`, { alt_stat_name: `v${version}` }),
    ),
  };
}

describe('backpressure', () => {
  let t: TestAds;
  before(async () => {
    t = await startAds();
  });
  after(async () => {
    await t.stop();
  });

  it('a proxy that stops reading neither blocks others nor gets a backlog', async () => {
    t.set('bp', big(0));
    const slow = t.client({ nodeId: 'slow', cluster: 'bp', ownConnection: true });
    const fast = t.client({ nodeId: 'fast', cluster: 'bp', ownConnection: true });
    const slowSeen: ReceivedResponse[] = [];
    slow.on('response', (r: ReceivedResponse) => slowSeen.push(r));
    slow.subscribe(CLUSTER, []);
    fast.subscribe(CLUSTER, []);
    await slow.waitFor(() => slow.resources(CLUSTER).size === 300);
    await fast.waitFor(() => fast.resources(CLUSTER).size === 300);
    slow.pause();
    const changes = 100;
    for (let v = 1; v <= changes; v++) {
      t.set('bp', big(v));
      const target = t.server.cache.get('bp')!.of(CLUSTER).version;
      // The fast proxy gets every version while the slow one is stalled.
      await fast.waitFor(() => fast.version(CLUSTER) === target, 10_000, `fast at v${v}`);
    }
    const final = t.server.cache.get('bp')!.of(CLUSTER).version;
    slow.resume();
    await slow.waitFor(() => slow.version(CLUSTER) === final, 10_000, 'slow catches up');
    // 100 changes of ~100 KB each: a queue would deliver all of them. Coalescing delivers only
    // what fit in the buffers when the transport stalled (grpc-js buffers 16 messages on each
    // side) plus the newest state.
    assert.ok(
      slowSeen.length < changes / 2,
      `slow proxy received ${slowSeen.length} responses for ${changes} changes`,
    );
    assert.equal(slow.version(CLUSTER), final);
  });
});
