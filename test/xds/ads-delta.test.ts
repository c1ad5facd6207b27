import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ReceivedResponse } from '../../src/xds/client';
import type { NackRecord } from '../../src/xds/proxy-state';
import { CLUSTER, ENDPOINT, LISTENER } from '../../src/xds/resource-types';
import { cluster, endpoints, startAds, type TestAds, waitUntil } from './util';

describe('delta ADS over real gRPC', () => {
  let ads: TestAds;
  before(async () => {
    ads = await startAds();
  });
  after(async () => {
    await ads.stop();
  });

  it('sends only what changed and removes what vanished', async () => {
    ads.set('d1', { [CLUSTER]: [cluster('a'), cluster('b'), cluster('c')] });
    const c = ads.client({ nodeId: 'dp1', cluster: 'd1', mode: 'delta' });
    const seen: ReceivedResponse[] = [];
    c.on('response', (r: ReceivedResponse) => seen.push(r));
    c.subscribe(CLUSTER, []);
    await c.waitFor(() => c.resources(CLUSTER).size === 3);
    assert.deepEqual(
      seen[0]?.resources.map((r) => r.name),
      ['a', 'b', 'c'],
    );
    ads.set('d1', { [CLUSTER]: [cluster('a'), cluster('b', { alt_stat_name: 'b2' })] });
    await c.waitFor(() => seen.length === 2);
    assert.deepEqual(
      seen[1]?.resources.map((r) => r.name),
      ['b'],
      'only the changed cluster',
    );
    assert.deepEqual(seen[1]?.removed, ['c']);
    assert.deepEqual([...c.resources(CLUSTER).keys()].sort(), ['a', 'b']);
  });

  it('honours initial_resource_versions: an up-to-date reconnect gets nothing, a stale one gets the diff', async () => {
    ads.set('d2', { [CLUSTER]: [cluster('a'), cluster('b')] });
    const first = ads.client({ nodeId: 'dp2', cluster: 'd2', mode: 'delta' });
    first.subscribe(CLUSTER, []);
    await first.waitFor(() => first.resources(CLUSTER).size === 2);
    const versions: Record<string, string> = {};
    for (const [n, r] of first.resources(CLUSTER)) versions[n] = r.version;
    first.close();

    // Reconnect claiming a, b (current) and gone (no longer exists).
    const again = ads.client({
      nodeId: 'dp2',
      cluster: 'd2',
      mode: 'delta',
      initialVersions: { [CLUSTER]: { ...versions, gone: 'v0' } },
    });
    const seen: ReceivedResponse[] = [];
    again.on('response', (r: ReceivedResponse) => seen.push(r));
    again.subscribe(CLUSTER, []);
    await again.waitFor(() => seen.length === 1);
    assert.deepEqual(seen[0]?.resources, [], 'nothing resent');
    assert.deepEqual(seen[0]?.removed, ['gone']);

    // A client claiming an old version of a gets just a.
    const stale = ads.client({
      nodeId: 'dp2b',
      cluster: 'd2',
      mode: 'delta',
      initialVersions: { [CLUSTER]: { a: 'old', b: versions.b ?? '' } },
    });
    const seen2: ReceivedResponse[] = [];
    stale.on('response', (r: ReceivedResponse) => seen2.push(r));
    stale.subscribe(CLUSTER, []);
    await stale.waitFor(() => seen2.length === 1);
    assert.deepEqual(
      seen2[0]?.resources.map((r) => r.name),
      ['a'],
    );
  });

  it('subscribes by name, tells once that a missing name does not exist, and sends it when it appears', async () => {
    ads.set('d3', { [ENDPOINT]: [endpoints('x', [1])] });
    const c = ads.client({ nodeId: 'dp3', cluster: 'd3', mode: 'delta' });
    const seen: ReceivedResponse[] = [];
    c.on('response', (r: ReceivedResponse) => seen.push(r));
    c.subscribe(ENDPOINT, ['x', 'y']);
    await c.waitFor(() => seen.length === 1);
    assert.deepEqual(
      seen[0]?.resources.map((r) => r.name),
      ['x'],
    );
    assert.deepEqual(seen[0]?.removed, ['y']);
    ads.set('d3', { [ENDPOINT]: [endpoints('x', [1]), endpoints('y', [2]), endpoints('z', [3])] });
    await c.waitFor(() => c.resources(ENDPOINT).has('y'));
    assert.deepEqual(
      seen[1]?.resources.map((r) => r.name),
      ['y'],
      'z is not subscribed',
    );
  });

  it('records a delta NACK and does not resend until the snapshot changes', async () => {
    ads.set('d4', { [CLUSTER]: [cluster('ok')] });
    const nacks: NackRecord[] = [];
    ads.server.registry.on('nack', (n: NackRecord) => nacks.push(n));
    const c = ads.client({
      nodeId: 'dp4',
      cluster: 'd4',
      mode: 'delta',
      check: (r) => (r.resources.some((x) => x.name === 'bad') ? 'bad cluster' : undefined),
    });
    const seen: ReceivedResponse[] = [];
    c.on('response', (r: ReceivedResponse) => seen.push(r));
    c.subscribe(CLUSTER, []);
    await c.waitFor(() => c.resources(CLUSTER).has('ok'));
    ads.set('d4', { [CLUSTER]: [cluster('ok'), cluster('bad')] });
    await waitUntil(() => nacks.length === 1);
    assert.deepEqual(nacks[0]?.resourceNames, ['bad']);
    assert.equal(nacks[0]?.message, 'bad cluster');
    assert.ok(!c.resources(CLUSTER).has('bad'));
    ads.set('d4', { [CLUSTER]: [cluster('ok'), cluster('good')] });
    await c.waitFor(() => c.resources(CLUSTER).has('good'));
    assert.equal(seen.length, 3, 'initial, rejected, fixed: no resend in between');
    assert.deepEqual(seen[2]?.removed, ['bad']);
  });

  it('answers a wildcard subscription of an empty type at once with an empty response', async () => {
    // Without an answer Envoy holds its initialization until its initial fetch timeout (15 s).
    ads.set('d6', { [ENDPOINT]: [endpoints('x', [1])] });
    const c = ads.client({ nodeId: 'dp6', cluster: 'd6', mode: 'delta' });
    const seen: ReceivedResponse[] = [];
    c.on('response', (r: ReceivedResponse) => seen.push(r));
    c.subscribe(CLUSTER, []);
    c.subscribe(LISTENER, ['*']);
    await c.waitFor(() => seen.length === 2);
    for (const typeUrl of [CLUSTER, LISTENER]) {
      const r = seen.find((x) => x.typeUrl === typeUrl);
      assert.ok(r, `a response for ${typeUrl}`);
      assert.deepEqual(r.resources, []);
      assert.deepEqual(r.removed, []);
      assert.notEqual(r.nonce, '', 'a fresh nonce');
      assert.notEqual(r.version, '', 'a system version');
    }
    // Once answered, an unchanged empty type is not answered again; new content still arrives.
    ads.set('d6', { [ENDPOINT]: [endpoints('x', [1])], [CLUSTER]: [cluster('x')] });
    await c.waitFor(() => c.resources(CLUSTER).has('x'));
    assert.equal(seen.filter((x) => x.typeUrl === LISTENER).length, 1, 'no repeated empty listener response');
  });

  it('resends endpoints after a cluster update (warming)', async () => {
    ads.set('d5', { [CLUSTER]: [cluster('a')], [ENDPOINT]: [endpoints('a', [1])] });
    const c = ads.client({ nodeId: 'dp5', cluster: 'd5', mode: 'delta' });
    const seen: ReceivedResponse[] = [];
    c.on('response', (r: ReceivedResponse) => seen.push(r));
    c.subscribe(CLUSTER, []);
    c.subscribe(ENDPOINT, ['a']);
    await c.waitFor(() => c.resources(ENDPOINT).has('a') && c.resources(CLUSTER).has('a'));
    const from = seen.length;
    ads.set('d5', { [CLUSTER]: [cluster('a', { alt_stat_name: 'z' })], [ENDPOINT]: [endpoints('a', [1])] });
    await c.waitFor(() => seen.slice(from).some((r) => r.typeUrl === ENDPOINT));
    assert.deepEqual(
      seen.slice(from).map((r) => [r.typeUrl, r.resources.map((x) => x.name)]),
      [
        [CLUSTER, ['a']],
        [ENDPOINT, ['a']],
      ],
    );
  });
});
